/* test_suite.c - YAML suites: the shipped suites parse and expand to the product of their
 * lists, defaults apply, expansion order and noop handling are as documented, and every kind
 * of bad input is refused with "FILE:LINE:COL: message" pointing at the offending node while
 * the suite comes back empty. The shipped suites are read from the source tree
 * (QF_SOURCE_DIR, set by tests/CMakeLists.txt).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qf_err.h"
#include "qf_formats.h"
#include "qf_job.h"
#include "qf_suite.h"

#ifndef QF_SOURCE_DIR
#error "QF_SOURCE_DIR must name the source tree (tests/CMakeLists.txt sets it)"
#endif

/* A valid suite of one job; error cases append or replace lines (line 6 is the first free). */
#define BASE "name: t\n"                   \
             "datasets: [synth:gaussian]\n" \
             "formats: [q4_0]\n"           \
             "ops: [quantize]\n"           \
             "shapes: [32x64]\n"

static int parse(const char *text, qf_suite *s, char *why, size_t why_len)
{
    return qf_suite_parse(text, strlen(text), "t.yaml", s, why, why_len);
}

static void parse_ok(const char *text, qf_suite *s)
{
    char why[512] = "";
    int rc = parse(text, s, why, sizeof why);
    if (rc != 0)
        fail_msg("suite refused (%s): %s\n--- text ---\n%s", qf_err_name(rc), why, text);
}

static void assert_all_valid(const qf_suite *s)
{
    for (size_t i = 0; i < s->n_jobs; i++) {
        char why[256] = "", key[QF_JOB_KEY_MAX];
        if (qf_job_spec_validate(&s->jobs[i], why, sizeof why) != 0) {
            qf_job_key(&s->jobs[i], key);
            fail_msg("job %zu (%s) does not validate: %s", i, key, why);
        }
    }
}

static void assert_job(const qf_suite *s, size_t i, const char *key, const char *selector)
{
    char k[QF_JOB_KEY_MAX];
    assert_true(i < s->n_jobs);
    qf_job_key(&s->jobs[i], k);
    assert_string_equal(k, key);
    assert_string_equal(s->jobs[i].selector, selector);
}

static void test_quick_suite(void **state)
{
    (void)state;
    qf_suite s;
    char why[512] = "";
    int rc = qf_suite_load(QF_SOURCE_DIR "/suites/quick.yaml", &s, why, sizeof why);
    if (rc != 0)
        fail_msg("quick.yaml: %s: %s", qf_err_name(rc), why);
    assert_string_equal(s.name, "quick");
    assert_string_equal(s.baseline, "f16");
    assert_int_equal(s.max_attempts, 3);
    assert_int_equal(s.n_jobs, 8 * 2);          /* formats x ops, one shape */
    assert_all_valid(&s);
    /* formats outside ops: f16 quantize, f16 matvec, q8_0 quantize, ... */
    assert_job(&s, 0, "quantize/f16/synth:student-t/256x4096/t1/s42", "");
    assert_job(&s, 1, "matvec/f16/synth:student-t/256x4096/t1/s42", "");
    assert_job(&s, 15, "matvec/iq4_nl/synth:student-t/256x4096/t1/s42", "");
    for (size_t i = 0; i < s.n_jobs; i++) {
        assert_int_equal(s.jobs[i].reps, 3);
        assert_int_equal(s.jobs[i].warmup, 1);
        assert_int_equal(s.jobs[i].timeout_ms, 60000);
    }
    qf_suite_free(&s);
    assert_null(s.jobs);
    assert_int_equal(s.n_jobs, 0);
}

static void test_chapter04_suite(void **state)
{
    (void)state;
    qf_suite s;
    char why[512] = "";
    int rc = qf_suite_load(QF_SOURCE_DIR "/suites/chapter04.yaml", &s, why, sizeof why);
    if (rc != 0)
        fail_msg("chapter04.yaml: %s: %s", qf_err_name(rc), why);
    assert_string_equal(s.name, "chapter04");
    assert_string_equal(s.baseline, "f16");
    /* formats x ops x shapes, then each framework's formats x shapes, then the model's formats */
    assert_int_equal(s.n_jobs, 26 * 2 * 2 + (5 + 3 + 4 + 3 + 4) * 2 + 10);
    assert_all_valid(&s);
    assert_job(&s, 0, "quantize/f16/synth:student-t/4096x4096/t1/s42", "");
    assert_job(&s, 103, "matvec/qnn_w4_block/synth:student-t/4096x14336/t1/s42", "");
    assert_job(&s, 104, "framework:llamacpp/f16/synth:student-t/4096x4096/t1/s42",
               "backend=llamacpp");
    assert_job(&s, 141, "framework:qnn/qnn_w4_block/synth:student-t/4096x14336/t1/s42",
               "backend=qnn");
    assert_job(&s, 142, "eval/f16/manifest:tinyllama-1.1b-f16@manifest:wikitext-2-test/512x8/t1/s42",
               "");
    for (size_t i = 0; i < s.n_jobs; i++)
        assert_int_equal(s.jobs[i].reps, i < 142 ? 10 : 3);
    qf_suite_free(&s);
}

/* frameworks: and models: expand next to the main product, with the device selectors. */
static void test_frameworks_models(void **state)
{
    (void)state;
    qf_suite s;
    parse_ok(BASE "devices: [{isa: avx2}, {}]\n"
             "frameworks: {ort: [f32, ort_int4_b32], llamacpp: [q4_0]}\n"
             "models:\n  - {model: manifest:m, text: text:alice, formats: [q4_0, q8_0], ctx: 64,"
             " chunks: 2, repetitions: 4}\n", &s);
    assert_int_equal(s.n_jobs, 2 + 3 * 2 + 2 * 2);
    assert_all_valid(&s);
    assert_job(&s, 2, "framework:ort/f32/synth:gaussian/32x64/t1/s42", "backend=ort isa=avx2");
    assert_job(&s, 3, "framework:ort/f32/synth:gaussian/32x64/t1/s42", "backend=ort");
    assert_job(&s, 7, "framework:llamacpp/q4_0/synth:gaussian/32x64/t1/s42", "backend=llamacpp");
    assert_job(&s, 8, "eval/q4_0/manifest:m@text:alice/64x2/t1/s42", "isa=avx2");
    assert_job(&s, 11, "eval/q8_0/manifest:m@text:alice/64x2/t1/s42", "");
    assert_string_equal(s.jobs[2].kind, "framework");
    assert_int_equal(s.jobs[11].reps, 4);
    assert_int_equal(s.jobs[11].warmup, 0);
    qf_suite_free(&s);
}

static void test_defaults(void **state)
{
    (void)state;
    qf_suite s;
    parse_ok(BASE, &s);
    assert_string_equal(s.name, "t");
    assert_string_equal(s.baseline, "");
    assert_int_equal(s.max_attempts, 3);
    assert_int_equal(s.n_jobs, 1);
    const qf_job_spec *j = &s.jobs[0];
    assert_string_equal(j->kind, "quantize");
    assert_string_equal(j->format, "q4_0");
    assert_string_equal(j->dataset, "synth:gaussian");
    assert_int_equal(j->rows, 32);
    assert_int_equal(j->cols, 64);
    assert_int_equal(j->reps, 5);
    assert_int_equal(j->warmup, 1);
    assert_int_equal(j->timeout_ms, 60000);
    assert_int_equal(j->priority, 0);
    assert_int_equal(j->threads, 1);
    assert_int_equal(j->seed, 42);
    assert_string_equal(j->selector, "");
    qf_suite_free(&s);
    qf_suite_free(&s);   /* idempotent */
    qf_suite_free(NULL);
}

static void test_every_key(void **state)
{
    (void)state;
    qf_suite s;
    parse_ok("name: all-keys\n"
             "description: |\n  two lines\n  of text\n"
             "baseline: q8_0\n"
             "repetitions: 7\n"
             "warmup: 0\n"
             "timeout: 2m\n"
             "priority: -4\n"
             "max_attempts: 5\n"
             "seeds: [1, 2]\n"
             "threads: [1, 4]\n"
             "datasets: [synth:gaussian, synth:laplace]\n"
             "formats: [q8_0, q4_K]\n"
             "ops: [quantize, matvec]\n"
             "shapes: [[16, 256], 8x512]\n"
             "devices:\n  - {}\n  - {isa: avx2, arch: x86_64}\n", &s);
    assert_string_equal(s.name, "all-keys");
    assert_string_equal(s.baseline, "q8_0");
    assert_int_equal(s.max_attempts, 5);
    /* datasets 2 x formats 2 x ops 2 x shapes 2 x threads 2 x seeds 2 x devices 2 */
    assert_int_equal(s.n_jobs, 128);
    assert_all_valid(&s);
    for (size_t i = 0; i < s.n_jobs; i++) {
        assert_int_equal(s.jobs[i].reps, 7);
        assert_int_equal(s.jobs[i].warmup, 0);
        assert_int_equal(s.jobs[i].timeout_ms, 120000);
        assert_int_equal(s.jobs[i].priority, -4);
    }
    /* devices innermost, then seeds, threads, shapes, ops, formats; datasets outermost;
     * selector terms sorted */
    assert_job(&s, 0, "quantize/q8_0/synth:gaussian/16x256/t1/s1", "");
    assert_job(&s, 1, "quantize/q8_0/synth:gaussian/16x256/t1/s1", "arch=x86_64 isa=avx2");
    assert_job(&s, 2, "quantize/q8_0/synth:gaussian/16x256/t1/s2", "");
    assert_job(&s, 4, "quantize/q8_0/synth:gaussian/16x256/t4/s1", "");
    assert_job(&s, 8, "quantize/q8_0/synth:gaussian/8x512/t1/s1", "");
    assert_job(&s, 16, "matvec/q8_0/synth:gaussian/16x256/t1/s1", "");
    assert_job(&s, 32, "quantize/q4_K/synth:gaussian/16x256/t1/s1", "");
    assert_job(&s, 64, "quantize/q8_0/synth:laplace/16x256/t1/s1", "");
    assert_job(&s, 127, "matvec/q4_K/synth:laplace/8x512/t4/s2", "arch=x86_64 isa=avx2");
    qf_suite_free(&s);
}

static void test_noop_ignores_formats(void **state)
{
    (void)state;
    qf_suite s;
    parse_ok("name: n\ndatasets: [synth:laplace]\nformats: [q4_0, q8_0, f16]\n"
             "ops: [noop, matvec]\nshapes: [32x32, 64x64]\nseeds: [1, 2]\n", &s);
    /* (noop 1 + matvec 3 formats) x shapes 2 x seeds 2 */
    assert_int_equal(s.n_jobs, (1 + 3) * 2 * 2);
    assert_all_valid(&s);
    assert_job(&s, 0, "noop//synth:laplace/32x32/t1/s1", "");
    assert_job(&s, 4, "matvec/q4_0/synth:laplace/32x32/t1/s1", "");
    assert_job(&s, 8, "matvec/q8_0/synth:laplace/32x32/t1/s1", "");
    size_t noops = 0;
    for (size_t i = 0; i < s.n_jobs; i++) {
        if (strcmp(s.jobs[i].kind, "noop") == 0) {
            noops++;
            assert_string_equal(s.jobs[i].format, "");
        }
    }
    assert_int_equal(noops, 4);
    qf_suite_free(&s);

    /* a noop-only suite needs no formats */
    parse_ok("name: n\ndatasets: [synth:laplace]\nops: [noop]\nshapes: [1x1]\n", &s);
    assert_int_equal(s.n_jobs, 1);
    qf_suite_free(&s);
}

static void test_formats_all(void **state)
{
    (void)state;
    size_t weights = 0;
    for (int f = 0; f < QF_FMT_COUNT; f++)
        weights += qf_format_get((qf_format)f)->weight;
    qf_suite s;
    parse_ok("name: a\ndatasets: [synth:gaussian]\nformats: all\nops: [quantize]\n"
             "shapes: [1x256]\nbaseline: f16\n", &s);
    assert_int_equal(s.n_jobs, weights);
    assert_all_valid(&s);
    assert_string_equal(s.jobs[0].format, qf_format_get(QF_FMT_F32)->name);
    for (size_t i = 0; i < s.n_jobs; i++) {
        qf_format f;
        assert_int_equal(qf_format_from_name(s.jobs[i].format, &f), 0);
        assert_true(qf_format_get(f)->weight);
    }
    qf_suite_free(&s);
}

static void test_timeouts_and_selectors(void **state)
{
    (void)state;
    static const struct { const char *text; uint32_t ms; } t[] = {
        { "60s", 60000 }, { "2m", 120000 }, { "500ms", 500 }, { "1h", 3600000 },
        { "90", 90000 }, { "\"45s\"", 45000 }, { "24h", 24u * 3600000u },
    };
    for (size_t i = 0; i < sizeof t / sizeof t[0]; i++) {
        char text[256];
        snprintf(text, sizeof text, BASE "timeout: %s\n", t[i].text);
        qf_suite s;
        parse_ok(text, &s);
        if (s.jobs[0].timeout_ms != t[i].ms)
            fail_msg("timeout %s: %u ms, expected %u", t[i].text, s.jobs[0].timeout_ms, t[i].ms);
        qf_suite_free(&s);
    }
    qf_suite s;
    parse_ok(BASE "devices:\n  - {name: \"lab-*\"}\n  - {backend: cpu, arch: arm64}\n", &s);
    assert_int_equal(s.n_jobs, 2);
    assert_string_equal(s.jobs[0].selector, "name=lab-*");
    assert_string_equal(s.jobs[1].selector, "arch=arm64 backend=cpu");
    qf_suite_free(&s);

    /* a selector over 255 bytes is refused, never cut */
    char text[1024], why[512] = "";
    int n = snprintf(text, sizeof text, BASE "devices: [{name: ");
    memset(text + n, 'a', 251);           /* "name=" + 251 bytes: one too many */
    snprintf(text + n + 251, sizeof text - (size_t)n - 251, "}]\n");
    assert_int_equal(parse(text, &s, why, sizeof why), QF_EINVAL);
    if (strncmp(why, "t.yaml:6:18: devices: the selector is longer than 255 bytes", 59) != 0)
        fail_msg("why: %s", why);
    snprintf(text, sizeof text, BASE "devices: [{isa: a, arch: b, backend: c, name: d, isa: e, "
             "isa: f, isa: g, isa: h, isa: i, isa: j, isa: k, isa: l, isa: m, isa: n, isa: o, "
             "isa: p, isa: q, isa: r, isa: s, isa: t, isa: u, isa: v, isa: w, isa: x, isa: y, "
             "isa: z, isa: aa, isa: ab, isa: ac, isa: ad, isa: ae, isa: af, isa: ag, isa: ah, "
             "isa: ai, isa: aj, isa: ak, isa: al, isa: am, isa: an, isa: ao, isa: ap, isa: aq, "
             "isa: ar, isa: as, isa: at, isa: au, isa: av, isa: aw, isa: ax, isa: ay, isa: az}]\n");
    assert_int_equal(parse(text, &s, why, sizeof why), QF_EINVAL);
    if (strncmp(why, "t.yaml:6:11: devices: the selector is longer than 255 bytes", 59) != 0)
        fail_msg("why: %s", why);
}

/* Each refusal: the error code, the "FILE:LINE:COL: " it must start with, a phrase it must hold. */
static const struct bad_case {
    const char *what, *text;
    int         rc;
    const char *where, *phrase;
} k_bad[] = {
    { "syntax error", "name: t\nformats: [q4_0\nops: [quantize]\n", QF_EPARSE, "t.yaml:3:4: ",
      "invalid YAML" },
    { "tab indentation", "name: t\n\tformats: [q4_0]\n", QF_EPARSE, "t.yaml:2:1: ",
      "invalid YAML" },
    { "bad UTF-8", "name: t\ndescription: \xff\n", QF_EPARSE, "t.yaml:2:14: ", "invalid YAML" },
    { "unknown key", BASE "formts: [q8_0]\n", QF_EINVAL, "t.yaml:6:1: ",
      "unknown key 'formts' (did you mean 'formats'?)" },
    { "unknown framework", BASE "frameworks: {onnx: [f32]}\n", QF_EINVAL, "t.yaml:6:14: ",
      "unknown framework 'onnx'" },
    { "framework format", BASE "frameworks: {ort: [q9_0]}\n", QF_EINVAL, "t.yaml:6:20: ",
      "unknown format 'q9_0'" },
    { "model without text", BASE "models: [{model: manifest:m, formats: [q4_0]}]\n", QF_EINVAL,
      "t.yaml:6:10: ", "each needs model, text and formats" },
    { "model bad text", BASE "models: [{model: manifest:m, text: 'text:a b', formats: [q4_0]}]\n",
      QF_EINVAL, "t.yaml:6:58: ", "text:NAME" },
    { "model ctx", BASE "models: [{model: manifest:m, text: text:a, formats: [q4_0], ctx: 8}]\n",
      QF_EINVAL, "t.yaml:6:66: ", "models: ctx" },
    { "key twice", BASE "ops: [matvec]\n", QF_EINVAL, "t.yaml:6:1: ",
      "key 'ops' given twice (first at 4:1)" },
    { "wrong type: word", BASE "repetitions: five\n", QF_EINVAL, "t.yaml:6:14: ",
      "repetitions: expected an integer in [1, 10000], got 'five'" },
    { "wrong type: quoted", BASE "warmup: \"2\"\n", QF_EINVAL, "t.yaml:6:9: ",
      "got the quoted string '2'" },
    { "wrong type: list", "name: [a]\n", QF_EINVAL, "t.yaml:1:7: ",
      "name: expected a string, got a list" },
    { "wrong type: map for list", "name: t\ndatasets: {a: b}\n", QF_EINVAL, "t.yaml:2:11: ",
      "datasets: expected a list of names, got a map" },
    { "out of range", BASE "threads: [1, 0]\n", QF_EINVAL, "t.yaml:6:14: ",
      "threads: expected an integer in [1, 1024], got '0'" },
    { "bad timeout", BASE "timeout: 5 minutes\n", QF_EINVAL, "t.yaml:6:10: ",
      "timeout: expected a duration" },
    { "timeout over a day", BASE "timeout: 25h\n", QF_EINVAL, "t.yaml:6:10: ",
      "timeout: expected a duration" },
    { "unknown format", "name: t\ndatasets: [synth:gaussian]\nformats: [q4_0, q4k]\n"
      "ops: [quantize]\nshapes: [32x64]\n", QF_EINVAL, "t.yaml:3:17: ",
      "formats: unknown format 'q4k' (did you mean 'q4_K'?)" },
    { "activation format", "name: t\ndatasets: [synth:gaussian]\nformats: [q8_K]\n"
      "ops: [quantize]\nshapes: [32x64]\n", QF_EINVAL, "t.yaml:3:11: ",
      "q8_K is an activation format" },
    { "unknown baseline", BASE "baseline: f17\n", QF_EINVAL, "t.yaml:6:11: ",
      "baseline: unknown format 'f17'" },
    { "baseline not measured", BASE "baseline: f16\n", QF_EINVAL, "t.yaml:6:11: ",
      "baseline: f16 is not among the formats" },
    { "unknown op", "name: t\ndatasets: [synth:gaussian]\nformats: [q4_0]\n"
      "ops: [quantize, matmul]\nshapes: [32x64]\n", QF_EINVAL, "t.yaml:4:17: ",
      "kind: unknown job kind 'matmul'" },
    { "unknown dataset", "name: t\ndatasets: [synth:gaussian, synth:cauchy]\nformats: [q4_0]\n"
      "ops: [quantize]\nshapes: [32x64]\n", QF_EINVAL, "t.yaml:2:28: ",
      "dataset: unknown dataset 'synth:cauchy'" },
    { "bad shape: text", "name: t\ndatasets: [synth:gaussian]\nformats: [q4_0]\n"
      "ops: [quantize]\nshapes: [32by64]\n", QF_EINVAL, "t.yaml:5:10: ",
      "shapes: expected [rows, cols] or \"RxC\"" },
    { "bad shape: three numbers", "name: t\ndatasets: [synth:gaussian]\nformats: [q4_0]\n"
      "ops: [quantize]\nshapes:\n  - [1, 2, 3]\n", QF_EINVAL, "t.yaml:6:5: ",
      "shapes: expected [rows, cols]" },
    { "bad shape: zero rows", "name: t\ndatasets: [synth:gaussian]\nformats: [q4_0]\n"
      "ops: [quantize]\nshapes: [[0, 64]]\n", QF_EINVAL, "t.yaml:5:11: ",
      "shapes: rows: expected an integer in [1, 1048576], got '0'" },
    { "shape does not fit format", "name: t\ndatasets: [synth:gaussian]\nformats: [q4_0, q4_K]\n"
      "ops: [quantize]\nshapes:\n  - 4x256\n  - 4x100\n", QF_EINVAL, "t.yaml:7:5: ",
      "job quantize/q4_0/synth:gaussian/4x100/t1/s42: cols: 100 is not a multiple of 32" },
    { "shape over the element bound", "name: t\ndatasets: [synth:gaussian]\nformats: [q4_0]\n"
      "ops: [quantize]\nshapes: [1048576x1024]\n", QF_EINVAL, "t.yaml:5:10: ",
      "rows x cols" },
    { "bad selector key", BASE "devices:\n  - {}\n  - {cpu: avx2}\n", QF_EINVAL, "t.yaml:8:6: ",
      "devices: " },
    { "selector value with a space", BASE "devices: [{name: \"lab 1\"}]\n", QF_EINVAL,
      "t.yaml:6:18: ", "may not contain spaces" },
    { "selector not a map", BASE "devices: [avx2]\n", QF_EINVAL, "t.yaml:6:11: ",
      "devices: expected a selector map" },
    { "empty list", BASE "seeds: []\n", QF_EINVAL, "t.yaml:6:8: ", "seeds: the list is empty" },
    { "empty value", "name: t\ndatasets:\nformats: [q4_0]\n", QF_EINVAL, "t.yaml:2:10: ",
      "datasets: expected a list of names, got nothing" },
    { "missing name", "datasets: [synth:gaussian]\nformats: [q4_0]\nops: [quantize]\n"
      "shapes: [32x64]\n", QF_EINVAL, "t.yaml:1:1: ", "missing required key 'name'" },
    { "missing formats", "name: t\ndatasets: [synth:gaussian]\nops: [quantize]\n"
      "shapes: [32x64]\n", QF_EINVAL, "t.yaml:1:1: ", "missing required key 'formats'" },
    { "duplicate format", "name: t\ndatasets: [synth:gaussian]\nformats: [q4_0, q8_0, q4_0]\n"
      "ops: [quantize]\nshapes: [32x64]\n", QF_EINVAL, "t.yaml:3:23: ",
      "formats: q4_0 repeats the item at 3:11: job quantize/q4_0/synth:gaussian/32x64/t1/s42 "
      "is listed twice" },
    { "duplicate shape spelled twice", "name: t\ndatasets: [synth:gaussian]\nformats: [q4_0]\n"
      "ops: [quantize]\nshapes: [32x64, [32, 64]]\n", QF_EINVAL, "t.yaml:5:17: ",
      "shapes: 32x64 repeats the item at 5:10" },
    { "duplicate selector in another order", BASE "devices:\n  - {isa: avx2, arch: x86_64}\n"
      "  - {arch: x86_64, isa: avx2}\n", QF_EINVAL, "t.yaml:8:5: ",
      "devices: {arch=x86_64 isa=avx2} repeats the item at 7:5" },
    { "duplicate via all", "name: t\ndatasets: [synth:gaussian]\nformats: [all, q4_0]\n"
      "ops: [quantize]\nshapes: [1x256]\n", QF_EINVAL, "t.yaml:3:16: ",
      "formats: q4_0 repeats the item at 3:11" },
    { "alias", "name: t\ndatasets: &d [synth:gaussian]\nformats: [q4_0]\nops: [quantize]\n"
      "shapes: *d\n", QF_EPARSE, "t.yaml:5:9: ", "aliases (*d) are not allowed" },
    { "billion laughs", "a: &a [x, x, x, x, x, x, x, x, x]\nb: &b [*a, *a, *a, *a, *a, *a]\n"
      "c: &c [*b, *b, *b, *b, *b, *b]\nname: t\n", QF_EPARSE, "t.yaml:2:8: ",
      "aliases (*a) are not allowed" },
    { "two documents", BASE "---\nname: u\n", QF_EPARSE, "t.yaml:6:1: ",
      "holds one YAML document" },
    { "deep nesting", BASE "devices: [[[[[[[[[[1]]]]]]]]]]\n", QF_EPARSE, "t.yaml:6:17: ",
      "nested more than 8 levels" },
    { "not a map", "- name: t\n", QF_EINVAL, "t.yaml:1:1: ", "expected a map of suite keys" },
    { "empty text", "", QF_EINVAL, "t.yaml:1:1: ", "the suite is empty" },
    { "comment only", "# nothing\n", QF_EINVAL, "t.yaml:1:1: ", "the suite is empty" },
    { "NUL in a string", "name: \"a\\0b\"\n", QF_EINVAL, "t.yaml:1:7: ", "NUL byte" },
    { "name too long", "name: aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa\n",
      QF_EINVAL, "t.yaml:1:7: ", "longer than 63 bytes" },
};

static void test_errors(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof k_bad / sizeof k_bad[0]; i++) {
        const struct bad_case *b = &k_bad[i];
        qf_suite s;
        memset(&s, 0x5a, sizeof s);             /* must come back zeroed */
        char why[512] = "";
        int rc = parse(b->text, &s, why, sizeof why);
        if (rc != b->rc)
            fail_msg("%s: rc %s, expected %s (why: %s)", b->what, qf_err_name(rc),
                     qf_err_name(b->rc), why);
        if (strncmp(why, b->where, strlen(b->where)) != 0 || !strstr(why, b->phrase))
            fail_msg("%s: why is\n  '%s'\nexpected it to start with '%s' and hold '%s'", b->what,
                     why, b->where, b->phrase);
        if (s.n_jobs != 0 || s.jobs != NULL || s.name[0] || s.baseline[0] || s.max_attempts)
            fail_msg("%s: the suite is not empty after an error", b->what);
        qf_suite_free(&s);
    }
}

/* The size limit, built as text: seeds x threads over 100000 jobs. */
/* A suite of formats x seeds 0..n_seeds-1 x threads 1..n_threads, as text. */
static void big_suite(char *text, size_t cap, const char *formats, int n_seeds, int n_threads)
{
    size_t used = (size_t)snprintf(text, cap, "name: t\ndatasets: [synth:gaussian]\n"
                                   "ops: [quantize]\nshapes: [32x64]\nformats: [%s]\nseeds: [",
                                   formats);
    for (int i = 0; i < n_seeds; i++)
        used += (size_t)snprintf(text + used, cap - used, "%s%d", i ? ", " : "", i);
    used += (size_t)snprintf(text + used, cap - used, "]\nthreads: [");
    for (int i = 1; i <= n_threads; i++)
        used += (size_t)snprintf(text + used, cap - used, "%s%d", i > 1 ? ", " : "", i);
    used += (size_t)snprintf(text + used, cap - used, "]\n");
    assert_true(used < cap);
}

static void assert_too_big(const char *text, const char *start)
{
    qf_suite s;
    char why[512] = "";
    int rc = parse(text, &s, why, sizeof why);
    if (rc != QF_ETOOBIG || strncmp(why, start, strlen(start)) != 0 ||
        !strstr(why, "over the limit of 100000"))
        fail_msg("rc %s, why '%s', expected QF_ETOOBIG and '%s...'", qf_err_name(rc), why,
                 start);
    assert_null(s.jobs);
    assert_int_equal(s.n_jobs, 0);
}

static void test_too_big(void **state)
{
    (void)state;
    size_t cap = 512 * 1024, used;
    char *text = malloc(cap);
    assert_non_null(text);
    big_suite(text, cap, "q4_0", 1000, 101);
    assert_too_big(text, "t.yaml:1:1: the suite expands to 101000 jobs (datasets 1 x formats 1 "
                   "x ops 1 x shapes 1 x threads 101 x seeds 1000 x devices 1)");
    /* over the limit before formats count: a lower bound, found before ops are probed */
    big_suite(text, cap, "q4_0, q8_0", 1000, 101);
    assert_too_big(text, "t.yaml:1:1: the suite expands to at least 101000 jobs");
    /* over the limit only with formats counted */
    big_suite(text, cap, "q4_0, q8_0", 1000, 60);
    assert_too_big(text, "t.yaml:1:1: the suite expands to 120000 jobs");
    qf_suite s;
    char why[512] = "";
    int rc;

    /* 2000 items on each of the 7 axes: the product overflows 64 bits and is still just too
     * big, not wrapped around to something small */
    static const char *const axes[][2] = {
        { "datasets", "synth:gaussian" }, { "formats", "q4_0" }, { "ops", "quantize" },
        { "shapes", "1x32" }, { "threads", "1" }, { "seeds", "7" }, { "devices", "{}" },
    };
    used = (size_t)snprintf(text, cap, "name: t\n");
    for (size_t a = 0; a < 7; a++) {
        used += (size_t)snprintf(text + used, cap - used, "%s: [", axes[a][0]);
        for (int i = 0; i < 2000; i++)
            used += (size_t)snprintf(text + used, cap - used, "%s%s", i ? "," : "", axes[a][1]);
        used += (size_t)snprintf(text + used, cap - used, "]\n");
    }
    assert_true(used < cap);
    rc = parse(text, &s, why, sizeof why);
    assert_int_equal(rc, QF_ETOOBIG);
    if (!strstr(why, "expands to more than 2^64 jobs"))
        fail_msg("why: %s", why);

    /* exactly at the limit expands */
    big_suite(text, cap, "q4_0", 1000, 100);
    parse_ok(text, &s);
    assert_int_equal(s.n_jobs, 100000);
    assert_all_valid(&s);
    assert_job(&s, 99999, "quantize/q4_0/synth:gaussian/32x64/t100/s999", "");
    qf_suite_free(&s);
    free(text);
}

static void test_load_files(void **state)
{
    (void)state;
    qf_suite s;
    char why[512] = "";
    assert_int_equal(qf_suite_load("/nonexistent/suite.yaml", &s, why, sizeof why), QF_ENOENT);
    assert_non_null(strstr(why, "/nonexistent/suite.yaml"));
    assert_null(s.jobs);

    char dir[] = "/tmp/qf_suite_XXXXXX";
    assert_non_null(mkdtemp(dir));
    char path[64];
    snprintf(path, sizeof path, "%s/bad.yaml", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(BASE "repetitions: 0\n", f);
    fclose(f);
    assert_int_equal(qf_suite_load(path, &s, why, sizeof why), QF_EINVAL);
    char where[80];
    snprintf(where, sizeof where, "%s:6:14: ", path);   /* the path names the file */
    if (strncmp(why, where, strlen(where)) != 0)
        fail_msg("why '%s' does not start with '%s'", why, where);
    assert_int_equal(unlink(path), 0);
    assert_int_equal(rmdir(dir), 0);

    /* a NULL why is allowed */
    assert_int_equal(parse("name: [\n", &s, NULL, 0), QF_EPARSE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quick_suite),
        cmocka_unit_test(test_chapter04_suite),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_every_key),
        cmocka_unit_test(test_noop_ignores_formats),
        cmocka_unit_test(test_formats_all),
        cmocka_unit_test(test_timeouts_and_selectors),
        cmocka_unit_test(test_frameworks_models),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_too_big),
        cmocka_unit_test(test_load_files),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
