/* test_job.c - job specs: validation (each refusal names its field), the identity key, the
 * JSON forms of specs, metrics and samples, status names and selectors.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qf_err.h"
#include "qf_job.h"

static qf_job_spec good_spec(void)
{
    qf_job_spec s = {
        .kind = "matvec", .format = "q4_K", .dataset = "synth:student-t",
        .rows = 4096, .cols = 4096, .reps = 10, .warmup = 2, .threads = 1, .seed = 42,
        .timeout_ms = 60000, .priority = -3, .selector = "isa=avx2 arch=x86_64",
    };
    return s;
}

static void assert_valid(const qf_job_spec *s)
{
    char why[256] = "";
    int rc = qf_job_spec_validate(s, why, sizeof why);
    if (rc != 0)
        fail_msg("spec %s/%s/%s %lldx%lld refused: %s", s->kind, s->format, s->dataset,
                 (long long)s->rows, (long long)s->cols, why);
}

static void test_validate_accepts(void **state)
{
    (void)state;
    qf_job_spec s = good_spec();
    assert_valid(&s);

    const char *kinds[] = { "quantize", "dequantize", "matvec" };
    const char *formats[] = { "f32", "f16", "bf16", "q8_0", "q4_0", "q4_1", "q5_0", "q5_1",
                              "q2_K", "q3_K", "q4_K", "q5_K", "q6_K", "iq4_nl", "int8_pc",
                              "int4_g32", "int4_g64", "int4_g128" };
    for (size_t k = 0; k < sizeof kinds / sizeof kinds[0]; k++) {
        for (size_t f = 0; f < sizeof formats / sizeof formats[0]; f++) {
            s = good_spec();
            snprintf(s.kind, sizeof s.kind, "%s", kinds[k]);
            snprintf(s.format, sizeof s.format, "%s", formats[f]);
            assert_valid(&s);
        }
    }
    const char *datasets[] = { "synth:gaussian", "synth:laplace", "synth:student-t" };
    for (size_t d = 0; d < 3; d++) {
        s = good_spec();
        snprintf(s.dataset, sizeof s.dataset, "%s", datasets[d]);
        assert_valid(&s);
    }
    /* noop: no format needed, any cols */
    s = good_spec();
    strcpy(s.kind, "noop");
    s.format[0] = '\0';
    s.cols = 7;
    assert_valid(&s);
    /* the edges of every range */
    s = good_spec();
    s.rows = 1; s.cols = 256; s.reps = 1; s.warmup = 0; s.threads = 1; s.timeout_ms = 1;
    s.seed = (uint64_t)INT64_MAX; s.priority = INT32_MIN; s.selector[0] = '\0';
    assert_valid(&s);
    s = good_spec();
    s.rows = 256; s.cols = QF_JOB_MAX_DIM; s.reps = QF_JOB_MAX_REPS; s.warmup = QF_JOB_MAX_REPS;
    s.threads = QF_JOB_MAX_THREADS; s.timeout_ms = QF_JOB_MAX_TIMEOUT_MS; s.priority = INT32_MAX;
    assert_valid(&s);
    s.rows = QF_JOB_MAX_DIM; s.cols = QF_JOB_MAX_ELEMS / QF_JOB_MAX_DIM;
    assert_valid(&s);
}

/* One way to break a spec and the word the reason must contain. */
typedef struct bad_case {
    const char *name;
    void (*mutate)(qf_job_spec *s);
    const char *field;
} bad_case;

static void m_kind(qf_job_spec *s) { strcpy(s->kind, "matmul"); }
static void m_kind_empty(qf_job_spec *s) { s->kind[0] = '\0'; }
static void m_kind_unterminated(qf_job_spec *s) { memset(s->kind, 'a', sizeof s->kind); }
static void m_format(qf_job_spec *s) { strcpy(s->format, "q9_9"); }
static void m_format_empty(qf_job_spec *s) { s->format[0] = '\0'; }
static void m_format_act(qf_job_spec *s) { strcpy(s->format, "q8_K"); }
static void m_format_act1(qf_job_spec *s) { strcpy(s->format, "q8_1"); }
static void m_format_unterminated(qf_job_spec *s) { memset(s->format, 'q', sizeof s->format); }
static void m_noop_format(qf_job_spec *s) { strcpy(s->kind, "noop"); strcpy(s->format, "zz"); }
static void m_cols_block(qf_job_spec *s) { s->cols = 4096 + 32; } /* q4_K needs 256 */
static void m_cols_act(qf_job_spec *s) { strcpy(s->format, "int8_pc"); s->cols = 33; }
static void m_dataset(qf_job_spec *s) { strcpy(s->dataset, "synth:cauchy"); }
static void m_dataset_bare(qf_job_spec *s) { strcpy(s->dataset, "gaussian"); }
static void m_dataset_file(qf_job_spec *s) { strcpy(s->dataset, "file:/etc/passwd"); }
static void m_dataset_unterminated(qf_job_spec *s) { memset(s->dataset, 's', sizeof s->dataset); }
static void m_rows0(qf_job_spec *s) { s->rows = 0; }
static void m_rows_neg(qf_job_spec *s) { s->rows = -4; }
static void m_rows_big(qf_job_spec *s) { s->rows = QF_JOB_MAX_DIM + 1; }
static void m_cols0(qf_job_spec *s) { s->cols = 0; }
static void m_cols_big(qf_job_spec *s) { s->cols = (int64_t)QF_JOB_MAX_DIM * 2; }
static void m_elems(qf_job_spec *s) { s->rows = QF_JOB_MAX_DIM; s->cols = 512; }
static void m_reps0(qf_job_spec *s) { s->reps = 0; }
static void m_reps_big(qf_job_spec *s) { s->reps = QF_JOB_MAX_REPS + 1; }
static void m_warmup_big(qf_job_spec *s) { s->warmup = QF_JOB_MAX_REPS + 1; }
static void m_threads0(qf_job_spec *s) { s->threads = 0; }
static void m_threads_big(qf_job_spec *s) { s->threads = QF_JOB_MAX_THREADS + 1; }
static void m_timeout0(qf_job_spec *s) { s->timeout_ms = 0; }
static void m_timeout_big(qf_job_spec *s) { s->timeout_ms = QF_JOB_MAX_TIMEOUT_MS + 1; }
static void m_seed_big(qf_job_spec *s) { s->seed = (uint64_t)INT64_MAX + 1; }
static void m_selector_key(qf_job_spec *s) { strcpy(s->selector, "gpu=yes"); }
static void m_selector_empty(qf_job_spec *s) { strcpy(s->selector, "isa="); }
static void m_selector_noeq(qf_job_spec *s) { strcpy(s->selector, "avx2"); }
static void m_selector_unterminated(qf_job_spec *s) { memset(s->selector, 'x', sizeof s->selector); }
static void m_selector_ctrl(qf_job_spec *s) { strcpy(s->selector, "isa=avx2\tarch=x86_64"); }
static void m_kind_highbit(qf_job_spec *s) { strcpy(s->kind, "matvec\xc3\xa9"); }

static const bad_case k_bad[] = {
    { "unknown kind", m_kind, "kind" },
    { "empty kind", m_kind_empty, "kind" },
    { "unterminated kind", m_kind_unterminated, "kind" },
    { "non-ASCII kind", m_kind_highbit, "kind" },
    { "unknown format", m_format, "format" },
    { "missing format", m_format_empty, "format" },
    { "activation format q8_K", m_format_act, "format" },
    { "activation format q8_1", m_format_act1, "format" },
    { "unterminated format", m_format_unterminated, "format" },
    { "noop with unknown format", m_noop_format, "format" },
    { "cols not a block multiple", m_cols_block, "cols" },
    { "cols not an activation block multiple", m_cols_act, "cols" },
    { "unknown distribution", m_dataset, "dataset" },
    { "dataset without synth:", m_dataset_bare, "dataset" },
    { "file dataset", m_dataset_file, "dataset" },
    { "unterminated dataset", m_dataset_unterminated, "dataset" },
    { "rows 0", m_rows0, "rows" },
    { "rows negative", m_rows_neg, "rows" },
    { "rows too big", m_rows_big, "rows" },
    { "cols 0", m_cols0, "cols" },
    { "cols too big", m_cols_big, "cols" },
    { "too many elements", m_elems, "rows x cols" },
    { "reps 0", m_reps0, "reps" },
    { "reps too big", m_reps_big, "reps" },
    { "warmup too big", m_warmup_big, "warmup" },
    { "threads 0", m_threads0, "threads" },
    { "threads too big", m_threads_big, "threads" },
    { "timeout 0", m_timeout0, "timeout_ms" },
    { "timeout too big", m_timeout_big, "timeout_ms" },
    { "seed >= 2^63", m_seed_big, "seed" },
    { "selector unknown key", m_selector_key, "selector" },
    { "selector empty value", m_selector_empty, "selector" },
    { "selector term without =", m_selector_noeq, "selector" },
    { "selector unterminated", m_selector_unterminated, "selector" },
    { "selector with a tab", m_selector_ctrl, "selector" },
};

static void test_validate_refuses(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof k_bad / sizeof k_bad[0]; i++) {
        qf_job_spec s = good_spec();
        k_bad[i].mutate(&s);
        char why[256] = "";
        int rc = qf_job_spec_validate(&s, why, sizeof why);
        if (rc != QF_EINVAL)
            fail_msg("%s: expected QF_EINVAL, got %s (%s)", k_bad[i].name, qf_err_name(rc), why);
        if (strncmp(why, k_bad[i].field, strlen(k_bad[i].field)) != 0)
            fail_msg("%s: reason '%s' does not start with the field '%s'", k_bad[i].name, why,
                     k_bad[i].field);
    }
    /* a NULL or zero-length why is allowed */
    qf_job_spec s = good_spec();
    s.reps = 0;
    assert_int_equal(qf_job_spec_validate(&s, NULL, 0), QF_EINVAL);
    char tiny[4];
    assert_int_equal(qf_job_spec_validate(&s, tiny, sizeof tiny), QF_EINVAL);
    assert_string_equal(tiny, "rep");
}

static void test_key(void **state)
{
    (void)state;
    qf_job_spec s = good_spec();
    char key[QF_JOB_KEY_MAX];
    qf_job_key(&s, key);
    assert_string_equal(key, "matvec/q4_K/synth:student-t/4096x4096/t1/s42");
    /* reps, warmup, timeout, priority and selector are not identity */
    s.reps = 99; s.warmup = 0; s.timeout_ms = 5; s.priority = 7; s.selector[0] = '\0';
    char key2[QF_JOB_KEY_MAX];
    qf_job_key(&s, key2);
    assert_string_equal(key, key2);
    /* the largest strings still fit */
    memset(s.kind, 'k', sizeof s.kind - 1); s.kind[sizeof s.kind - 1] = '\0';
    memset(s.format, 'f', sizeof s.format - 1); s.format[sizeof s.format - 1] = '\0';
    memset(s.dataset, 'd', sizeof s.dataset - 1); s.dataset[sizeof s.dataset - 1] = '\0';
    s.rows = s.cols = QF_JOB_MAX_DIM; s.threads = QF_JOB_MAX_THREADS; s.seed = (uint64_t)INT64_MAX;
    qf_job_key(&s, key);
    assert_true(strlen(key) < QF_JOB_KEY_MAX - 1);
    assert_non_null(strstr(key, "/s9223372036854775807"));
}

static void assert_spec_equal(const qf_job_spec *a, const qf_job_spec *b)
{
    assert_string_equal(a->kind, b->kind);
    assert_string_equal(a->format, b->format);
    assert_string_equal(a->dataset, b->dataset);
    assert_int_equal(a->rows, b->rows);
    assert_int_equal(a->cols, b->cols);
    assert_int_equal(a->reps, b->reps);
    assert_int_equal(a->warmup, b->warmup);
    assert_int_equal(a->threads, b->threads);
    assert_int_equal(a->seed, b->seed);
    assert_int_equal(a->timeout_ms, b->timeout_ms);
    assert_int_equal(a->priority, b->priority);
    assert_string_equal(a->selector, b->selector);
}

static void test_json_round_trip(void **state)
{
    (void)state;
    qf_job_spec s = good_spec();
    s.seed = (uint64_t)INT64_MAX;
    s.priority = INT32_MIN;
    char *json = qf_job_spec_to_json(&s);
    assert_non_null(json);
    qf_job_spec back;
    char why[256] = "";
    int rc = qf_job_spec_from_json(json, &back, why, sizeof why);
    if (rc != 0)
        fail_msg("from_json(%s): %s", json, why);
    assert_spec_equal(&s, &back);
    free(json);

    qf_job_spec n = good_spec();
    strcpy(n.kind, "noop");
    n.format[0] = '\0';
    json = qf_job_spec_to_json(&n);
    assert_non_null(json);
    assert_int_equal(qf_job_spec_from_json(json, &back, why, sizeof why), 0);
    assert_spec_equal(&n, &back);
    free(json);
}

typedef struct json_case {
    const char *json;
    int         err;
    const char *needle;     /* must appear in why */
} json_case;

#define SPEC_TAIL "\"rows\":64,\"cols\":256,\"reps\":3,\"warmup\":1,\"threads\":2,\"seed\":7," \
                  "\"timeout_ms\":1000,\"priority\":0,\"selector\":\"\""

static void test_json_refusals(void **state)
{
    (void)state;
    const json_case cases[] = {
        { "", QF_EPARSE, "spec JSON" },
        { "{", QF_EPARSE, "spec JSON" },
        { "[1,2]", QF_EPARSE, "object" },
        { "{\"kind\":\"matvec\",\"format\":\"q4_0\",\"dataset\":\"synth:laplace\"," SPEC_TAIL
          ",\"extra\":1}", QF_EPARSE, "extra" },
        { "{\"format\":\"q4_0\",\"dataset\":\"synth:laplace\"," SPEC_TAIL "}", QF_EPARSE, "kind" },
        { "{\"kind\":5,\"format\":\"q4_0\",\"dataset\":\"synth:laplace\"," SPEC_TAIL "}",
          QF_EPARSE, "kind" },
        { "{\"kind\":\"matvec\",\"format\":\"q4_0\",\"dataset\":\"synth:laplace\","
          "\"rows\":\"64\",\"cols\":256,\"reps\":3,\"warmup\":1,\"threads\":2,\"seed\":7,"
          "\"timeout_ms\":1000,\"priority\":0,\"selector\":\"\"}", QF_EPARSE, "rows" },
        { "{\"kind\":\"matvec\",\"format\":\"q4_0\",\"dataset\":\"synth:laplace\","
          "\"rows\":64.5,\"cols\":256,\"reps\":3,\"warmup\":1,\"threads\":2,\"seed\":7,"
          "\"timeout_ms\":1000,\"priority\":0,\"selector\":\"\"}", QF_EPARSE, "rows" },
        { "{\"kind\":\"matvec\",\"format\":\"q4_0\",\"dataset\":\"synth:laplace\","
          "\"rows\":64,\"cols\":256,\"reps\":-3,\"warmup\":1,\"threads\":2,\"seed\":7,"
          "\"timeout_ms\":1000,\"priority\":0,\"selector\":\"\"}", QF_EPARSE, "reps" },
        { "{\"kind\":\"matvec\",\"format\":\"q4_0\",\"dataset\":\"synth:laplace\","
          "\"rows\":64,\"cols\":256,\"reps\":3,\"warmup\":1,\"threads\":2,\"seed\":-7,"
          "\"timeout_ms\":1000,\"priority\":0,\"selector\":\"\"}", QF_EPARSE, "seed" },
        { "{\"kind\":\"matvec\",\"format\":\"q4_0\",\"dataset\":\"synth:laplace\","
          "\"rows\":64,\"cols\":256,\"reps\":3,\"warmup\":1,\"threads\":2,\"seed\":7,"
          "\"timeout_ms\":1000,\"priority\":3000000000,\"selector\":\"\"}", QF_EPARSE, "priority" },
        { "{\"kind\":\"matvec\",\"format\":\"q4_0\",\"dataset\":\"synth:laplace\","
          "\"rows\":64,\"cols\":256,\"reps\":3,\"warmup\":1,\"threads\":2,\"seed\":7,"
          "\"timeout_ms\":5000000000,\"priority\":0,\"selector\":\"\"}", QF_EPARSE, "timeout_ms" },
        { "{\"kind\":\"matvecmatvecmatvec\",\"format\":\"q4_0\",\"dataset\":\"synth:laplace\","
          SPEC_TAIL "}", QF_EPARSE, "kind" },
        { "{\"kind\":\"mat\\u0000vec\",\"format\":\"q4_0\",\"dataset\":\"synth:laplace\","
          SPEC_TAIL "}", QF_EPARSE, "spec JSON" },
        { "{\"kind\":\"matvec\",\"kind\":\"noop\",\"format\":\"q4_0\",\"dataset\":\"synth:laplace\","
          SPEC_TAIL "}", QF_EPARSE, "spec JSON" },
        /* syntactically fine, semantically refused */
        { "{\"kind\":\"matvec\",\"format\":\"q4_K\",\"dataset\":\"synth:laplace\"," SPEC_TAIL "}",
          0, "" },
        { "{\"kind\":\"matvec\",\"format\":\"q4_K\",\"dataset\":\"synth:laplace\","
          "\"rows\":64,\"cols\":100,\"reps\":3,\"warmup\":1,\"threads\":2,\"seed\":7,"
          "\"timeout_ms\":1000,\"priority\":0,\"selector\":\"\"}", QF_EINVAL, "cols" },
        { "{\"kind\":\"matvec\",\"format\":\"q4_K\",\"dataset\":\"synth:normal\"," SPEC_TAIL "}",
          QF_EINVAL, "dataset" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        qf_job_spec s;
        memset(&s, 0x5a, sizeof s);
        char why[256] = "";
        int rc = qf_job_spec_from_json(cases[i].json, &s, why, sizeof why);
        if (rc != cases[i].err)
            fail_msg("case %zu %s: expected %s, got %s (%s)", i, cases[i].json,
                     qf_err_name(cases[i].err), qf_err_name(rc), why);
        if (rc && !strstr(why, cases[i].needle))
            fail_msg("case %zu: reason '%s' does not name '%s'", i, why, cases[i].needle);
        if (rc) { /* refused: nothing half-filled */
            qf_job_spec zero;
            memset(&zero, 0, sizeof zero);
            assert_memory_equal(&s, &zero, sizeof s);
        }
    }
}

static void test_metrics_samples_json(void **state)
{
    (void)state;
    qf_job_result r = { .has_metrics = true };
    r.metrics = (qf_job_metrics){ .rmse = 0.5, .nmse = 0.25, .snr_db = INFINITY, .max_abs = NAN,
                                  .cosine = 1.0 };
    char *t = qf_job_metrics_to_json(&r);
    assert_non_null(t);
    assert_string_equal(t, "{\"rmse\":0.5,\"nmse\":0.25,\"snr_db\":null,\"max_abs\":null,"
                           "\"cosine\":1.0}");
    free(t);
    /* an eval job: model numbers only, NaN as null */
    r = (qf_job_result){ .has_model = true };
    r.model = (qf_job_model){ .ppl = 12.5, .ppl_err = 0.25, .ppl_base = 12.0, .kld = 0.5,
                              .kld_p99 = NAN, .same_top = 0.75, .dp_rms = 0.125, .pp_tps = 100,
                              .tg_tps = 10, .n_scored = 256 };
    t = qf_job_metrics_to_json(&r);
    assert_non_null(t);
    assert_string_equal(t, "{\"perplexity\":12.5,\"perplexity_err\":0.25,\"perplexity_base\":"
                           "12.0,\"kld\":0.5,\"kld_p99\":null,\"same_top\":0.75,\"dp_rms\":"
                           "0.125,\"pp_tps\":100.0,\"tg_tps\":10.0,\"n_scored\":256}");
    free(t);
    r = (qf_job_result){ 0 };
    assert_null(qf_job_metrics_to_json(&r));
    double samples[] = { 0.125, -INFINITY, 1e-9 };
    t = qf_job_samples_to_json(samples, 3);
    assert_non_null(t);
    assert_string_equal(t, "[0.125,null,1.0000000000000001e-9]");
    free(t);
    t = qf_job_samples_to_json(NULL, 0);
    assert_string_equal(t, "[]");
    free(t);
}

static void test_status(void **state)
{
    (void)state;
    const char *names[] = { "ok", "failed", "timeout", "crashed" };
    for (int i = 0; i < 4; i++) {
        assert_string_equal(qf_job_status_name((qf_job_status)i), names[i]);
        qf_job_status st = (qf_job_status)99;
        assert_int_equal(qf_job_status_from_name(names[i], &st), 0);
        assert_int_equal(st, i);
    }
    qf_job_status st;
    assert_int_equal(qf_job_status_from_name("OK", &st), QF_EINVAL);
    assert_int_equal(qf_job_status_from_name("", &st), QF_EINVAL);
    assert_string_equal(qf_job_status_name((qf_job_status)17), "unknown");

    qf_job_result r = { .status = QF_JOB_FAILED, .n_samples = 3, .bytes = 5 };
    r.samples = calloc(3, sizeof *r.samples);
    assert_non_null(r.samples);
    strcpy(r.error, "boom");
    qf_job_result_clear(&r);
    assert_null(r.samples);
    assert_int_equal(r.n_samples, 0);
    assert_int_equal(r.bytes, 0);
    assert_string_equal(r.error, "");
    qf_job_result_clear(NULL);
}

static void test_selector(void **state)
{
    (void)state;
    const qf_agent_caps caps = { .name = "lab-pixel8", .arch = "aarch64",
                                 .isa = "neon dotprod fp16", .backends = "cpu opencl" };
    const struct { const char *sel; bool match; } cases[] = {
        { "", true },
        { "   ", true },
        { "arch=aarch64", true },
        { "arch=x86_64", false },
        { "arch=aarch", false },
        { "isa=dotprod", true },
        { "isa=dot", false },
        { "isa=fp16 isa=neon", true },
        { "isa=fp16 isa=avx2", false },
        { "backend=opencl", true },
        { "backend=cuda", false },
        { "name=lab-*", true },
        { "name=lab-pixel?", true },
        { "name=lab-iphone*", false },
        { "name=lab-pixel8", true },
        { "  name=lab-*   arch=aarch64  backend=cpu ", true },
        { "name=lab-* arch=aarch64 backend=cuda", false },
        { "gpu=1", false },         /* malformed selectors match nothing */
        { "arch=", false },
        { "arch=arm64", true },     /* the names suites use for what Linux reports */
        { "arch=amd64", false },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        bool got = qf_selector_match(cases[i].sel, &caps);
        if (got != cases[i].match)
            fail_msg("selector '%s': expected %s, got %s", cases[i].sel,
                     cases[i].match ? "match" : "no match", got ? "match" : "no match");
    }
    /* aliases work both ways: avx512 = avx512f, neon = asimd, arm64 = aarch64 */
    const qf_agent_caps x86 = { .name = "lab-epyc", .arch = "x86_64",
                                .isa = "avx2 avx512f fma", .backends = "cpu" };
    const qf_agent_caps arm = { .name = "lab-rpi", .arch = "arm64", .isa = "asimd asimddp",
                                .backends = "cpu" };
    const struct { const qf_agent_caps *c; const char *sel; bool match; } alias[] = {
        { &x86, "isa=avx512", true }, { &x86, "isa=avx512f", true }, { &x86, "arch=amd64", true },
        { &x86, "isa=neon", false }, { &arm, "isa=neon", true }, { &arm, "isa=dotprod", true },
        { &arm, "arch=aarch64", true }, { &arm, "isa=avx512", false },
    };
    for (size_t i = 0; i < sizeof alias / sizeof alias[0]; i++) {
        bool got = qf_selector_match(alias[i].sel, alias[i].c);
        if (got != alias[i].match)
            fail_msg("selector '%s' on %s: expected %s, got %s", alias[i].sel, alias[i].c->name,
                     alias[i].match ? "match" : "no match", got ? "match" : "no match");
    }

    const struct { const char *sel; const char *needle; } bad[] = {
        { "isa", "key=value" },
        { "=avx2", "unknown key" },
        { "cpu=avx2", "unknown key 'cpu'" },
        { "isa=avx2 arch=", "empty value" },
        { "isa=avx2 ARCH=x86_64", "unknown key 'ARCH'" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        char why[256] = "";
        int rc = qf_selector_validate(bad[i].sel, why, sizeof why);
        if (rc != QF_EINVAL || !strstr(why, bad[i].needle))
            fail_msg("selector '%s': expected QF_EINVAL naming '%s', got %s '%s'", bad[i].sel,
                     bad[i].needle, qf_err_name(rc), why);
    }
    const char *good[] = { "", "isa=avx2", "name=lab-* backend=cuda", "arch=x86_64 isa=avx512f" };
    for (size_t i = 0; i < sizeof good / sizeof good[0]; i++) {
        char why[256] = "";
        if (qf_selector_validate(good[i], why, sizeof why) != 0)
            fail_msg("selector '%s' refused: %s", good[i], why);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_validate_accepts),
        cmocka_unit_test(test_validate_refuses),
        cmocka_unit_test(test_key),
        cmocka_unit_test(test_json_round_trip),
        cmocka_unit_test(test_json_refusals),
        cmocka_unit_test(test_metrics_samples_json),
        cmocka_unit_test(test_status),
        cmocka_unit_test(test_selector),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
