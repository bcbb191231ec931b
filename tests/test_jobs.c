/* test_jobs.c - the job-kind table and qf_jobs_run, in process (agent/jobs.c).
 *
 * Each kind runs on a small spec and must fill the result completely: the right number of
 * positive samples, bytes and bpw from the format table, sane metrics, the kernel, the seed,
 * and the SHA-256 of the generated input, which is checked against a hash of qf_synth_fill's
 * output computed here, so "same input" means the same f32 bytes. The table must agree with
 * the kind list common/job.c validates against. Small shapes: the whole file runs in well
 * under a second.
 */
#include <math.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <setjmp.h>
#include <cmocka.h>

#include <sodium.h>

#include "qf_formats.h"
#include "qf_job.h"
#include "qf_jobs.h"
#include "qf_kernels.h"
#include "qf_synth.h"

static qf_job_spec make_spec(const char *kind, const char *format, const char *dataset,
                             int64_t rows, int64_t cols, uint32_t reps, uint64_t seed)
{
    qf_job_spec s;
    memset(&s, 0, sizeof s);
    snprintf(s.kind, sizeof s.kind, "%s", kind);
    snprintf(s.format, sizeof s.format, "%s", format);
    snprintf(s.dataset, sizeof s.dataset, "%s", dataset);
    s.rows = rows;
    s.cols = cols;
    s.reps = reps;
    s.warmup = 1;
    s.threads = 1;
    s.seed = seed;
    s.timeout_ms = 10000;
    return s;
}

static bool is_hex64(const char *s)
{
    if (strlen(s) != 64)
        return false;
    for (int i = 0; i < 64; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

static void assert_ok(const qf_job_spec *s, const qf_job_result *r)
{
    if (r->status != QF_JOB_OK)
        fail_msg("%s %s %s: status %s, error '%s'", s->kind, s->format, s->dataset,
                 qf_job_status_name(r->status), r->error);
}

/* The table and common/job.c's validation list name the same kinds with the same needs. */
static void test_table_agrees_with_validation(void **state)
{
    (void)state;
    int n = 0;
    const qf_job_kind *t = qf_jobs_table(&n);
    assert_int_equal(n, 6);
    const char *want[] = { "quantize", "dequantize", "matvec", "framework", "eval", "noop" };
    for (int i = 0; i < n; i++) {
        assert_string_equal(t[i].name, want[i]);
        assert_ptr_equal(qf_jobs_find(want[i]), &t[i]);
        assert_non_null(t[i].run);
        assert_true(strlen(t[i].summary) > 0);
        char why[256] = "";
        bool eval = strcmp(t[i].name, "eval") == 0;
        qf_job_spec s = make_spec(t[i].name, t[i].needs_format ? "q8_0" : "",
                                  eval ? "manifest:tiny@text:alice" : "synth:gaussian",
                                  eval ? 64 : 4, 64, 1, 1);
        if (strcmp(t[i].name, "framework") == 0)   /* names its framework */
            strcpy(s.selector, "backend=llamacpp");
        if (qf_job_spec_validate(&s, why, sizeof why) != 0)
            fail_msg("kind %s: a plain spec does not validate: %s", t[i].name, why);
        s.format[0] = '\0';
        int rc = qf_job_spec_validate(&s, why, sizeof why);
        if ((rc == 0) == t[i].needs_format)
            fail_msg("kind %s: needs_format %d here, but validation %s a spec without one",
                     t[i].name, t[i].needs_format, rc == 0 ? "accepts" : "refuses");
    }
    assert_null(qf_jobs_find("bogus"));
    assert_null(qf_jobs_find(""));
}

/* quantize, dequantize and matvec on q4_K: samples, bytes, bpw, throughput, identity. */
static void test_measured_kinds(void **state)
{
    (void)state;
    const char *kinds[] = { "quantize", "dequantize", "matvec" };
    const int64_t rows = 8, cols = 512;
    size_t row_size = qf_format_row_size(QF_FMT_Q4_K, cols);
    for (int k = 0; k < 3; k++) {
        qf_job_spec s = make_spec(kinds[k], "q4_K", "synth:student-t", rows, cols, 3, 42);
        qf_job_result r;
        assert_int_equal(qf_jobs_run(&s, &r), 0);
        assert_ok(&s, &r);
        assert_int_equal(r.n_samples, 3);
        assert_non_null(r.samples);
        for (uint32_t i = 0; i < r.n_samples; i++)
            if (!(r.samples[i] > 0 && r.samples[i] < 10))
                fail_msg("%s: sample %u is %g s", kinds[k], i, r.samples[i]);
        assert_int_equal(r.bytes, rows * row_size);
        assert_int_equal(r.bytes, rows * 2 * 144); /* q4_K: 144 bytes per 256 weights */
        assert_float_equal(r.bpw, qf_format_bpw(QF_FMT_Q4_K, cols), 0.0);
        assert_float_equal(r.bpw, 4.5, 0.0);
        uint64_t want_tp = k == 0 ? (uint64_t)(rows * cols * 4) : r.bytes;
        assert_int_equal(r.throughput_bytes, want_tp);
        /* the best kernels the host runs, or what they fall back to: a supported ISA */
        qf_isa isa;
        assert_int_equal(qf_isa_from_name(r.kernel, &isa), 0);
        assert_true(qf_isa_host_supports(isa));
        assert_int_equal(r.seed, 42);
        assert_true(is_hex64(r.dataset_sha256));
        assert_true(r.has_metrics);
        if (!(r.metrics.cosine > 0.95 && r.metrics.cosine <= 1.0))
            fail_msg("%s: cosine %g", kinds[k], r.metrics.cosine);
        if (!(r.metrics.snr_db > 10 && r.metrics.nmse > 0 && r.metrics.rmse > 0 &&
              r.metrics.max_abs > 0))
            fail_msg("%s: SNR %g dB, NMSE %g, RMSE %g, max abs %g", kinds[k],
                     r.metrics.snr_db, r.metrics.nmse, r.metrics.rmse, r.metrics.max_abs);
        assert_int_equal(r.peak_rss_kb, 0);  /* the runner's to fill */
        qf_job_result_clear(&r);
        assert_null(r.samples);
    }
}

static void test_q8_0_snr_on_gaussian(void **state)
{
    (void)state;
    qf_job_spec s = make_spec("quantize", "q8_0", "synth:gaussian", 32, 256, 2, 7);
    qf_job_result r;
    assert_int_equal(qf_jobs_run(&s, &r), 0);
    assert_ok(&s, &r);
    if (!(r.metrics.snr_db > 30.0))
        fail_msg("q8_0 on gaussian: SNR %g dB, expected > 30", r.metrics.snr_db);
    assert_float_equal(r.bpw, 8.5, 0.0);
    assert_int_equal(r.bytes, 32 * 8 * 34);   /* 8 blocks of 34 bytes per row */
    qf_job_result_clear(&r);
}

/* Several threads split the rows, more threads than rows included. */
static void test_threads(void **state)
{
    (void)state;
    qf_job_spec s = make_spec("matvec", "q8_0", "synth:laplace", 7, 64, 2, 3);
    s.threads = 3;
    qf_job_result r;
    assert_int_equal(qf_jobs_run(&s, &r), 0);
    assert_ok(&s, &r);
    assert_int_equal(r.n_samples, 2);
    qf_job_result_clear(&r);
    s.threads = 9;
    assert_int_equal(qf_jobs_run(&s, &r), 0);
    assert_ok(&s, &r);
    qf_job_result_clear(&r);
}

static void hash_of_synth(qf_synth_dist dist, uint64_t seed, int64_t rows, int64_t cols,
                          char hex[65])
{
    assert_true(sodium_init() >= 0);
    float *w = malloc(sizeof(float) * (size_t)(rows * cols));
    assert_non_null(w);
    qf_synth_params p = qf_synth_defaults(dist, seed);
    assert_int_equal(qf_synth_fill(&p, w, rows, cols), 0);
    unsigned char d[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(d, (const unsigned char *)w, sizeof(float) * (size_t)(rows * cols));
    sodium_bin2hex(hex, 65, d, sizeof d);
    free(w);
}

/* The hash is of the generated input: equal for the same input whatever the kind or format,
 * different for another seed or distribution, and equal to hashing qf_synth_fill's bytes. */
static void test_dataset_sha256(void **state)
{
    (void)state;
    qf_job_result a, b, c, d, e;
    qf_job_spec s = make_spec("quantize", "q4_0", "synth:student-t", 16, 256, 1, 42);
    assert_int_equal(qf_jobs_run(&s, &a), 0);
    assert_ok(&s, &a);
    assert_int_equal(qf_jobs_run(&s, &b), 0);
    assert_string_equal(a.dataset_sha256, b.dataset_sha256);

    qf_job_spec other = make_spec("matvec", "q6_K", "synth:student-t", 16, 256, 1, 42);
    assert_int_equal(qf_jobs_run(&other, &c), 0);
    assert_ok(&other, &c);
    assert_string_equal(a.dataset_sha256, c.dataset_sha256);

    s.seed = 43;
    assert_int_equal(qf_jobs_run(&s, &d), 0);
    assert_ok(&s, &d);
    assert_string_not_equal(a.dataset_sha256, d.dataset_sha256);

    s.seed = 42;
    snprintf(s.dataset, sizeof s.dataset, "synth:gaussian");
    assert_int_equal(qf_jobs_run(&s, &e), 0);
    assert_ok(&s, &e);
    assert_string_not_equal(a.dataset_sha256, e.dataset_sha256);

    char want[65];
    hash_of_synth(QF_SYNTH_STUDENT_T, 42, 16, 256, want);
    assert_string_equal(a.dataset_sha256, want);
    hash_of_synth(QF_SYNTH_GAUSSIAN, 42, 16, 256, want);
    assert_string_equal(e.dataset_sha256, want);

    qf_job_result_clear(&a);
    qf_job_result_clear(&b);
    qf_job_result_clear(&c);
    qf_job_result_clear(&d);
    qf_job_result_clear(&e);
}

static void test_noop(void **state)
{
    (void)state;
    qf_job_spec s = make_spec("noop", "", "synth:gaussian", 1, 1, 5, 9);
    qf_job_result r;
    assert_int_equal(qf_jobs_run(&s, &r), 0);
    assert_ok(&s, &r);
    assert_int_equal(r.n_samples, 1);
    assert_non_null(r.samples);
    assert_true(r.samples[0] > 0 && r.samples[0] < 0.1);
    assert_false(r.has_metrics);
    assert_int_equal(r.bytes, 0);
    assert_int_equal(r.throughput_bytes, 0);
    assert_float_equal(r.bpw, 0.0, 0.0);
    assert_string_equal(r.kernel, "none");
    assert_string_equal(r.dataset_sha256, "");
    assert_int_equal(r.seed, 9);
    qf_job_result_clear(&r);
}

static void expect_failed(qf_job_spec s, const char *needle)
{
    qf_job_result r;
    memset(&r, 0xa5, sizeof r);  /* run must not trust what was there */
    assert_int_equal(qf_jobs_run(&s, &r), 0);
    if (r.status != QF_JOB_FAILED)
        fail_msg("%s/%s: status %s, expected failed (%s)", s.kind, s.format,
                 qf_job_status_name(r.status), needle);
    if (!strstr(r.error, needle))
        fail_msg("reason '%s' does not mention '%s'", r.error, needle);
    assert_int_equal(r.n_samples, 0);
    assert_null(r.samples);
    assert_false(r.has_metrics);
    qf_job_result_clear(&r);
}

static void test_invalid_specs_fail_with_a_reason(void **state)
{
    (void)state;
    qf_job_spec s = make_spec("quantize", "q4_K", "synth:gaussian", 4, 256, 1, 1);
    qf_job_spec t = s;
    t.reps = 0;
    expect_failed(t, "reps");
    t = s;
    snprintf(t.format, sizeof t.format, "q9_Z");
    expect_failed(t, "q9_Z");
    t = s;
    t.cols = 100;
    expect_failed(t, "cols");
    t = s;
    snprintf(t.kind, sizeof t.kind, "train");
    expect_failed(t, "train");
    t = s;
    snprintf(t.dataset, sizeof t.dataset, "synth:uniform");
    expect_failed(t, "synth:uniform");
    t = s;
    snprintf(t.format, sizeof t.format, "q8_K");   /* activation-only */
    t.cols = 256;
    expect_failed(t, "q8_K");
    t = s;
    t.threads = 0;
    expect_failed(t, "threads");
    t = s;
    t.rows = 0;
    expect_failed(t, "rows");
    t = s;
    memset(t.kind, 'x', sizeof t.kind);           /* unterminated */
    expect_failed(t, "kind");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table_agrees_with_validation),
        cmocka_unit_test(test_measured_kinds),
        cmocka_unit_test(test_q8_0_snr_on_gaussian),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_dataset_sha256),
        cmocka_unit_test(test_noop),
        cmocka_unit_test(test_invalid_specs_fail_with_a_reason),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
