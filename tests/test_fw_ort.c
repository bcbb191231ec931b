/* test_fw_ort.c - the ONNX Runtime adapter (agent/fw_ort.c) against the real libonnxruntime.
 *
 *   - probe finds the library, reports a version no older than 1.20, and prints nothing;
 *   - MatMulNBits over our ort_int4_b32 / ort_int4_b128 rows (no zero_points input) and
 *     ort_int4_b128_asym rows (packed zero_points, an odd block count per row too) matches our
 *     dequantize-then-multiply reference to NMSE <= 1e-6 on a few shapes, one and two threads:
 *     the layout mapping of kernels/include/qf_blocks.h is right (a wrong nibble order, scale
 *     or zero point is noise: swapping B's nibbles gives NMSE 1.6);
 *   - the f32 baseline (MatMul with W^T) matches the exact product (NMSE <= 1e-10);
 *   - samples, bytes, bpw and the kernel name are filled as for our own jobs;
 *   - a format the adapter does not run, and a missing library (in a child process, whose
 *     QF_ORT_DIR points nowhere), come back as FAILED results with a reason, not a crash.
 * Every case drives OrtApi members across the struct (status, memory info, session, values,
 * shapes, the Release* block), so a miscounted OrtApi crashes or fails here.
 * ONNX Runtime comes from the npm package onnxruntime-node (scripts/fetch-ort.sh). Without it
 * the test prints SKIPPED loudly, or fails when QF_REQUIRE_ORT=1 (as in CI).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "qf_formats.h"
#include "qf_framework.h"
#include "fw_test.h"

static qf_job_spec spec_of(const char *format, int64_t rows, int64_t cols, uint32_t threads)
{
    return fw_spec(&qf_fw_ort, format, rows, cols, threads);
}

static bool have_ort(void)
{
    return fw_present(&qf_fw_ort, "f32", "QF_REQUIRE_ORT",
                      "run `make test` (it fetches onnxruntime-node with npm)");
}

static void check_run(const char *format, int64_t rows, int64_t cols, uint32_t threads,
                      double max_nmse)
{
    qf_job_spec s = spec_of(format, rows, cols, threads);
    char why[256];
    assert_int_equal(qf_job_spec_validate(&s, why, sizeof why), 0);
    qf_job_result r = { 0 };
    assert_int_equal(qf_fw_ort.run(&s, &r), 0);
    if (r.status != QF_JOB_OK)
        fail_msg("%s %" PRId64 "x%" PRId64 " t%" PRIu32 ": %s", format, rows, cols, threads,
                 r.error);
    assert_int_equal(r.n_samples, s.reps);
    for (uint32_t i = 0; i < r.n_samples; i++)
        assert_true(r.samples[i] > 0 && r.samples[i] < 60);
    assert_true(r.has_metrics);
    printf("ort %-14s %5" PRId64 "x%-5" PRId64 " t%" PRIu32 ": NMSE %.3g cosine %.9f, %.1f us\n",
           format, rows, cols, threads, r.metrics.nmse, r.metrics.cosine, r.samples[0] * 1e6);
    if (!(r.metrics.nmse <= max_nmse))
        fail_msg("%s %" PRId64 "x%" PRId64 ": NMSE %.3g against the reference, want <= %.3g",
                 format, rows, cols, r.metrics.nmse, max_nmse);
    qf_format fmt;
    assert_int_equal(qf_format_from_name(format, &fmt), 0);
    assert_int_equal(r.bytes, qf_format_row_size(fmt, cols) * (size_t)rows);
    assert_true(fabs(r.bpw - qf_format_bpw(fmt, cols)) < 1e-12);
    assert_int_equal(strncmp(r.kernel, "ort-", 4), 0);
    assert_int_equal(strlen(r.dataset_sha256), 64);   /* the weights' hash, as our jobs give it */
    qf_job_result_clear(&r);
}

static void test_probe(void **state)
{
    (void)state;
    if (!have_ort())
        skip();
    char version[QF_FRAMEWORK_VERSION_MAX] = "";
    assert_true(qf_fw_ort.probe(version, sizeof version));
    int major = 0, minor = 0;
    if (sscanf(version, "%d.%d", &major, &minor) != 2 || major != 1 || minor < 20)
        fail_msg("ONNX Runtime version '%s', want 1.20 or later", version);
    assert_string_equal(qf_fw_ort.name, "ort");
    assert_string_equal(qf_fw_ort.baseline, "f32");
    /* every listed scheme is a format of the table */
    char formats[128];
    snprintf(formats, sizeof formats, "%s", qf_fw_ort.formats);
    for (char *save = NULL, *f = strtok_r(formats, " ", &save); f;
         f = strtok_r(NULL, " ", &save)) {
        qf_format fmt;
        if (qf_format_from_name(f, &fmt) != 0)
            fail_msg("qf_fw_ort.formats lists '%s', not in the format table", f);
    }
    printf("ONNX Runtime %s\n", version);
}

static void test_baseline_exact(void **state)
{
    (void)state;
    if (!have_ort())
        skip();
    check_run("f32", 64, 256, 1, 1e-10);
    check_run("f32", 100, 768, 1, 1e-10);
    check_run("f32", 257, 512, 2, 1e-10);
}

static void test_matmulnbits(void **state)
{
    (void)state;
    if (!have_ort())
        skip();
    const char *formats[] = { "ort_int4_b32", "ort_int4_b128", "ort_int4_b128_asym" };
    for (size_t i = 0; i < sizeof formats / sizeof formats[0]; i++) {
        check_run(formats[i], 64, 256, 1, 1e-6);
        check_run(formats[i], 100, 1024, 1, 1e-6);
        check_run(formats[i], 33, 768, 2, 1e-6);
        check_run(formats[i], 512, 2048, 2, 1e-6);
    }
    /* an odd number of 128-blocks per row: the last zero-point byte holds one block */
    check_run("ort_int4_b128_asym", 40, 384, 1, 1e-6);
    check_run("ort_int4_b128_asym", 17, 1152, 2, 1e-6);
}

static void test_unlisted_format(void **state)
{
    (void)state;
    if (!have_ort())
        skip();
    qf_job_spec s = spec_of("q4_0", 8, 256, 1);
    qf_job_result r = { 0 };
    assert_int_equal(qf_fw_ort.run(&s, &r), 0);
    assert_int_equal(r.status, QF_JOB_FAILED);
    if (!strstr(r.error, "q4_0") || !strstr(r.error, "ort_int4_b32"))
        fail_msg("reason '%s' should name q4_0 and the formats ort runs", r.error);
    assert_null(r.samples);
    qf_job_result_clear(&r);
}

/* In a child (the library loads once per process): QF_ORT_DIR pointing at an empty folder
 * makes probe false and run a FAILED result naming the file it looked for. */
static void test_missing_library(void **state)
{
    (void)state;
    char dir[] = "/tmp/qf_fw_ort.XXXXXX";
    assert_non_null(mkdtemp(dir));
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setenv("QF_ORT_DIR", dir, 1);
        char version[QF_FRAMEWORK_VERSION_MAX] = "unchanged";
        if (qf_fw_ort.probe(version, sizeof version) || strcmp(version, "unchanged") != 0)
            _exit(1);
        qf_job_spec s = spec_of("f32", 8, 256, 1);
        qf_job_result r = { 0 };
        if (qf_fw_ort.run(&s, &r) != 0 || r.status != QF_JOB_FAILED)
            _exit(2);
        if (!strstr(r.error, dir) || !strstr(r.error, "libonnxruntime.so.1"))
            _exit(3);
        qf_job_result_clear(&r);
        _exit(0);
    }
    int st = 0;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    rmdir(dir);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("child: %s %d (1 probe, 2 run status, 3 reason)",
                 WIFEXITED(st) ? "exit" : "signal", WIFEXITED(st) ? WEXITSTATUS(st)
                                                                  : WTERMSIG(st));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_missing_library),
        cmocka_unit_test(test_probe),
        cmocka_unit_test(test_baseline_exact),
        cmocka_unit_test(test_matmulnbits),
        cmocka_unit_test(test_unlisted_format),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
