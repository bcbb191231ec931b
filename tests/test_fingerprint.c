/* test_fingerprint.c - the machine fingerprint on the host the tests run on.
 *
 * Nothing about the host is hard-coded: the expected arch comes from uname, the expected ISA
 * flags from /proc/cpuinfo (when the host has one), so the same checks hold on an AVX-512
 * server, an AVX2 laptop and an arm64 board. What must always hold: the JSON parses, carries
 * every key the coordinator stores, counts hwloc cannot get wrong are positive, and caps agree
 * with the JSON.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#include "qf_fingerprint.h"
#include "qf_jobs.h"
#include "qf_version.h"

/* True if word is one of the space-separated words of list. */
static bool has_word(const char *list, const char *word)
{
    size_t wl = strlen(word);
    for (const char *p = list; (p = strstr(p, word)) != NULL; p += wl)
        if ((p == list || p[-1] == ' ') && (p[wl] == ' ' || p[wl] == '\0'))
            return true;
    return false;
}

#if defined(__x86_64__)
/* 1/0 if /proc/cpuinfo's flags line has / lacks flag; -1 if there is no such line. */
static int cpuinfo_has(const char *flag)
{
    FILE *f = fopen("/proc/cpuinfo", "r");
    if (!f)
        return -1;
    char *line = NULL;
    size_t cap = 0;
    int found = -1;
    while (found < 0 && getline(&line, &cap, f) > 0) {
        if (strncmp(line, "flags", 5) != 0 || !strchr(line, ':'))
            continue;
        line[strcspn(line, "\n")] = '\0';
        found = has_word(strchr(line, ':') + 2, flag);
    }
    free(line);
    fclose(f);
    return found;
}
#endif

typedef struct fixture {
    qf_agent_caps caps;
    char *text;
    json_t *json;
} fixture;

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    if (!fx)
        return -1;
    int rc = qf_fingerprint_collect("fp-test", &fx->caps, &fx->text);
    if (rc != 0 || !fx->text) {
        fprintf(stderr, "qf_fingerprint_collect returned %d\n", rc);
        free(fx);
        return -1;
    }
    json_error_t err;
    fx->json = json_loads(fx->text, 0, &err);
    if (!fx->json)
        fprintf(stderr, "fingerprint is not JSON: %s at %d: %s\n", err.text, err.position,
                fx->text);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    json_decref(fx->json);
    free(fx->text);
    free(fx);
    return 0;
}

static json_t *get(json_t *obj, const char *key)
{
    json_t *v = json_object_get(obj, key);
    if (!v)
        fail_msg("fingerprint lacks key '%s'", key);
    return v;
}

static void test_json_has_the_keys(void **state)
{
    fixture *fx = *state;
    assert_non_null(fx->json);
    static const char *const keys[] = { "name", "hostname", "arch", "os", "cpu", "caches",
                                        "numa", "memory", "isa", "gpus", "backends", "qfleet" };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        get(fx->json, keys[i]);
    assert_string_equal(json_string_value(get(fx->json, "name")), "fp-test");
    assert_true(json_is_array(get(fx->json, "numa")));
    assert_true(json_is_array(get(fx->json, "gpus")));
    assert_true(json_is_object(get(fx->json, "caches")));

    json_t *q = get(fx->json, "qfleet");
    assert_string_equal(json_string_value(get(q, "version")), QF_VERSION);
    assert_string_equal(json_string_value(get(q, "commit")), QF_GIT_COMMIT);
    assert_true(json_is_boolean(get(q, "dirty")));
    assert_non_null(json_string_value(get(q, "compiler")));
    json_t *kernels = get(q, "kernels");
    assert_true(json_array_size(kernels) >= 1);
    assert_string_equal(json_string_value(json_array_get(kernels, 0)), "ref");
    int nk = 0;
    qf_jobs_table(&nk);
    assert_int_equal(json_array_size(get(q, "job_kinds")), (size_t)nk);
}

static void test_counts_are_positive(void **state)
{
    fixture *fx = *state;
    assert_non_null(fx->json);
    json_t *cpu = get(fx->json, "cpu");
    json_int_t cores = json_integer_value(get(cpu, "cores"));
    json_int_t pus = json_integer_value(get(cpu, "pus"));
    assert_true(cores > 0);
    assert_true(pus > 0);
    assert_true(pus >= cores);
    /* hwloc may see no package on odd platforms (the key is then 0, never absent). */
    assert_true(json_integer_value(get(cpu, "packages")) >= 0);
    assert_true(json_integer_value(get(fx->json, "memory")) > 0);
    assert_true(json_array_size(get(fx->json, "numa")) >= 1);
    json_t *node = json_array_get(get(fx->json, "numa"), 0);
    assert_true(json_integer_value(get(node, "memory")) > 0);
    const char *key;
    json_t *c;
    json_object_foreach(get(fx->json, "caches"), key, c) {
        if (json_integer_value(get(c, "size")) <= 0 || json_integer_value(get(c, "count")) <= 0)
            fail_msg("cache %s: size %lld, count %lld", key,
                     (long long)json_integer_value(get(c, "size")),
                     (long long)json_integer_value(get(c, "count")));
    }
}

static void test_caps_match_the_host(void **state)
{
    fixture *fx = *state;
    struct utsname u;
    assert_int_equal(uname(&u), 0);
    assert_string_equal(fx->caps.name, "fp-test");
    assert_string_equal(fx->caps.arch, u.machine);
    assert_true(has_word(fx->caps.backends, "cpu"));
    assert_non_null(fx->json);
    assert_string_equal(json_string_value(get(fx->json, "arch")), u.machine);

    /* The JSON's lists say the same as the caps' words. */
    char joined[512] = "";
    size_t i;
    json_t *w;
    json_array_foreach(get(fx->json, "isa"), i, w) {
        size_t used = strlen(joined);
        snprintf(joined + used, sizeof joined - used, "%s%s", i ? " " : "", json_string_value(w));
    }
    assert_string_equal(joined, fx->caps.isa);
    json_t *backends = get(fx->json, "backends");
    assert_string_equal(json_string_value(json_array_get(backends, 0)), "cpu");
}

static void test_isa_follows_cpuinfo(void **state)
{
    fixture *fx = *state;
#if defined(__x86_64__)
    static const struct { const char *cpuinfo, *ours; } flags[] = {
        { "sse4_2", "sse4_2" }, { "avx2", "avx2" }, { "fma", "fma" }, { "avx512f", "avx512f" },
        { "avx512_vnni", "avx512_vnni" }, { "avx_vnni", "avxvnni" }, { "amx_tile", "amx" },
    };
    if (cpuinfo_has("sse2") < 0)
        skip();   /* no /proc/cpuinfo here: the CPUID fallback is not checked */
    for (size_t i = 0; i < sizeof flags / sizeof flags[0]; i++) {
        bool want = cpuinfo_has(flags[i].cpuinfo) == 1;
        if (has_word(fx->caps.isa, flags[i].ours) != want)
            fail_msg("cpuinfo %s '%s' but caps.isa is '%s'", want ? "has" : "lacks",
                     flags[i].cpuinfo, fx->caps.isa);
    }
    /* Flags we do not care about stay out, however the CPU is. */
    assert_false(has_word(fx->caps.isa, "sse2"));
#elif defined(__aarch64__)
    assert_true(has_word(fx->caps.isa, "asimd"));
#else
    (void)fx;
    skip();
#endif
}

/* A NULL name falls back to the host name; two collections agree on everything else. */
static void test_default_name_and_stability(void **state)
{
    fixture *fx = *state;
    qf_agent_caps caps;
    char *text = NULL;
    assert_int_equal(qf_fingerprint_collect(NULL, &caps, &text), 0);
    assert_non_null(text);
    assert_true(caps.name[0] != '\0');
    assert_string_equal(caps.arch, fx->caps.arch);
    assert_string_equal(caps.isa, fx->caps.isa);
    assert_string_equal(caps.backends, fx->caps.backends);
    json_t *j = json_loads(text, 0, NULL);
    assert_non_null(j);
    assert_string_equal(json_string_value(get(j, "name")), caps.name);
    json_decref(j);
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_json_has_the_keys),
        cmocka_unit_test(test_counts_are_positive),
        cmocka_unit_test(test_caps_match_the_host),
        cmocka_unit_test(test_isa_follows_cpuinfo),
        cmocka_unit_test(test_default_name_and_stability),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
