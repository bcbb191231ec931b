/* test_fw_llamacpp.c - the llama.cpp adapter (agent/fw_llamacpp.c) against the real ggml.
 *
 *   - probe finds ggml, reports a version, and prints nothing;
 *   - ggml's mul_mat over our q4_0, q8_0 and q4_K rows (and the f16 baseline) matches our
 *     dequantize-then-multiply reference on one and two threads, within a stated NMSE: ggml
 *     quantizes the activation vector to q8_0 / q8_K (f16 for the f16 baseline), which is
 *     all the difference there should be; a wrong block layout is noise (NMSE ~ 1);
 *   - samples, bytes, bpw and the kernel name are filled as for our own jobs;
 *   - without ggml (a child whose QF_GGML_DIR points nowhere) the result is FAILED with the
 *     reason, not a crash;
 *   - a model job (dataset manifest:NAME of kind model, a GGUF file: the tiny llama of
 *     tests/make_tiny_llama.py converted to q4_0 by the real qfleet, placed in a temporary
 *     cache) runs in libllama: tg128 seconds per token as samples, the file's bytes, no
 *     metrics. Needs python3 (else that case says SKIPPED).
 * ggml comes prebuilt from the npm package @node-llama-cpp/linux-x64 (scripts/fetch-ggml.sh).
 * Without it the test prints SKIPPED loudly, or fails when QF_REQUIRE_GGML=1 (as in CI).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "qf_fetch.h"
#include "qf_formats.h"
#include "qf_framework.h"
#include "qf_jobs.h"
#include "fw_test.h"
#include "qf_manifest.h"

/* ggml quantizes the activation vector to its partner format and our reference does not, so
 * that rounding is all the difference there should be. Measured on the synthetic inputs:
 * q8_0/q8_1 activations (one scale per 32: q4_*, q5_*, q8_0, iq4_nl) NMSE 1e-4..2.2e-4; q8_K (one
 * scale per 256, heavy-tailed activations: the K-quants) 1.5e-3..2.2e-3; f16 activations
 * ~1e-7. The limits leave 5-10x room; a wrong block layout is NMSE ~1. */
#define NMSE_Q8_0_ACT 1e-3
#define NMSE_Q8_K_ACT 1e-2
#define NMSE_F16_ACT  1e-6

/* The tolerance for format's activation partner. */
static double tolerance(const char *format)
{
    qf_format f;
    assert_int_equal(qf_format_from_name(format, &f), 0);
    qf_format act = qf_format_get(f)->act;
    return act == QF_FMT_Q8_K ? NMSE_Q8_K_ACT : act == QF_FMT_F16 ? NMSE_F16_ACT
                                                                   : NMSE_Q8_0_ACT;
}

static qf_job_spec spec_of(const char *format, int64_t rows, int64_t cols, uint32_t threads)
{
    return fw_spec(&qf_fw_llamacpp, format, rows, cols, threads);
}

static bool have_ggml(void)
{
    return fw_present(&qf_fw_llamacpp, "q4_0", "QF_REQUIRE_GGML",
                      "run `make test` (it fetches @node-llama-cpp/linux-x64 with npm)");
}

static void check_run(const char *format, int64_t rows, int64_t cols, uint32_t threads)
{
    double max_nmse = tolerance(format);
    qf_job_spec s = spec_of(format, rows, cols, threads);
    char why[256];
    assert_int_equal(qf_job_spec_validate(&s, why, sizeof why), 0);
    qf_job_result r = { 0 };
    assert_int_equal(qf_fw_llamacpp.run(&s, &r), 0);
    if (r.status != QF_JOB_OK)
        fail_msg("%s %" PRId64 "x%" PRId64 " t%" PRIu32 ": %s", format, rows, cols, threads,
                 r.error);
    assert_int_equal(r.n_samples, s.reps);
    for (uint32_t i = 0; i < r.n_samples; i++)
        assert_true(r.samples[i] > 0 && r.samples[i] < 60);
    assert_true(r.has_metrics);
    printf("llamacpp %-5s %5" PRId64 "x%-5" PRId64 " t%" PRIu32 ": NMSE %.3g cosine %.9f, "
           "%.1f us\n", format, rows, cols, threads, r.metrics.nmse, r.metrics.cosine,
           r.samples[0] * 1e6);
    if (!(r.metrics.nmse <= max_nmse))
        fail_msg("%s t%" PRIu32 ": NMSE of ggml's output vs our reference %.3g > %.3g", format,
                 threads, r.metrics.nmse, max_nmse);
    qf_format f;
    assert_int_equal(qf_format_from_name(format, &f), 0);
    size_t bytes = qf_format_row_size(f, cols) * (size_t)rows;
    if (r.bytes != bytes || r.throughput_bytes != bytes)
        fail_msg("%s: bytes %" PRIu64 " throughput_bytes %" PRIu64 ", expected %zu", format,
                 r.bytes, r.throughput_bytes, bytes);
    assert_true(fabs(r.bpw - qf_format_bpw(f, cols)) < 1e-9);
    if (strncmp(r.kernel, "llamacpp-", 9) != 0 || strlen(r.kernel) < 10)
        fail_msg("kernel '%s', expected llamacpp-VERSION", r.kernel);
    /* the same tensor as our own matvec job of the same spec: the same dataset_sha256 */
    qf_job_spec ms = s;
    snprintf(ms.kind, sizeof ms.kind, "matvec");
    ms.selector[0] = '\0';
    ms.reps = 1;
    qf_job_result mr = { 0 };
    assert_int_equal(qf_jobs_run(&ms, &mr), 0);
    assert_int_equal(mr.status, QF_JOB_OK);
    assert_int_equal(strlen(r.dataset_sha256), 64);
    assert_string_equal(r.dataset_sha256, mr.dataset_sha256);
    qf_job_result_clear(&mr);
    qf_job_result_clear(&r);
}

static void test_probe(void **state)
{
    (void)state;
    if (!have_ggml())
        skip();
    char version[QF_FRAMEWORK_VERSION_MAX] = "";
    /* nothing on stdout or stderr: the probe runs in the agent's fingerprint */
    fflush(NULL);
    int saved_out = dup(1), saved_err = dup(2);
    char path[] = "/tmp/qf-fw-llamacpp-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0 && saved_out >= 0 && saved_err >= 0);
    dup2(fd, 1);
    dup2(fd, 2);
    bool ok = qf_fw_llamacpp.probe(version, sizeof version);
    fflush(NULL);
    dup2(saved_out, 1);
    dup2(saved_err, 2);
    close(saved_out);
    close(saved_err);
    off_t printed = lseek(fd, 0, SEEK_END);
    close(fd);
    unlink(path);
    assert_true(ok);
    if (printed != 0)
        fail_msg("probe printed %lld bytes", (long long)printed);
    if (!version[0])
        fail_msg("probe gave no version");
    printf("llama.cpp adapter: ggml %s\n", version);
}

/* The Done-when: the adapter on a q4_0 tensor. */
static void test_q4_0(void **state)
{
    (void)state;
    if (!have_ggml())
        skip();
    check_run("q4_0", 64, 512, 1);
    check_run("q4_0", 96, 1024, 2);
}

static void test_q8_0_q4_K_f16(void **state)
{
    (void)state;
    if (!have_ggml())
        skip();
    check_run("q8_0", 64, 512, 1);
    check_run("q8_0", 64, 512, 2);
    check_run("q4_K", 64, 512, 1);
    check_run("q4_K", 128, 1024, 2);
    check_run("f16", 64, 512, 2);
}

/* Every format the adapter lists is one ggml runs and our table has. */
static void test_formats_listed(void **state)
{
    (void)state;
    if (!have_ggml())
        skip();
    char list[256];
    snprintf(list, sizeof list, "%s", qf_fw_llamacpp.formats);
    int n = 0;
    for (char *save = NULL, *f = strtok_r(list, " ", &save); f; f = strtok_r(NULL, " ", &save)) {
        check_run(f, 16, 256, 1);
        n++;
    }
    assert_int_equal(n, 12);
    assert_string_equal(qf_fw_llamacpp.baseline, "f16");
}

/* Without ggml: a FAILED result naming the folder, in a child (the library stays loaded in
 * this process once opened). */
static void test_missing_ggml(void **state)
{
    (void)state;
    fflush(NULL);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        setenv("QF_GGML_DIR", "/nonexistent/qf-no-ggml", 1);
        qf_job_spec s = spec_of("q4_0", 8, 256, 1);
        qf_job_result r = { 0 };
        if (qf_fw_llamacpp.run(&s, &r) != 0 || r.status != QF_JOB_FAILED ||
            !strstr(r.error, "/nonexistent/qf-no-ggml")) {
            fprintf(stderr, "status %d error '%s'\n", r.status, r.error);
            _exit(1);
        }
        _exit(0);
    }
    int st;
    assert_int_equal(waitpid(pid, &st, 0), pid);
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("child: %s %d", WIFEXITED(st) ? "exit" : "signal",
                 WIFEXITED(st) ? WEXITSTATUS(st) : WTERMSIG(st));
}

/* A model job on the tiny llama: manifest and cache in a temporary folder (the file is
 * placed where the fetcher looks, so nothing is downloaded). */
static void test_model_job(void **state)
{
    (void)state;
    if (!have_ggml())
        skip();
    char dir[] = "/tmp/qf-fw-llamacpp-model-XXXXXX", cmd[4096], path[1200];
    assert_non_null(mkdtemp(dir));
    snprintf(cmd, sizeof cmd, "python3 '%s/tests/make_tiny_llama.py' '%s/tiny' && '%s' quantize "
             "'%s/tiny' '%s/tiny.gguf' --type q4_0 > /dev/null 2>&1", QF_SOURCE_DIR, dir,
             QF_BINARY, dir, dir);
    if (system(cmd) != 0) {
        fprintf(stderr, "*** SKIPPED model job: cannot make the tiny model (python3?)\n");
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        assert_int_equal(system(cmd), 0);
        return;
    }
    struct stat st;
    snprintf(path, sizeof path, "%s/tiny.gguf", dir);
    assert_int_equal(stat(path, &st), 0);
    snprintf(path, sizeof path, "%s/tiny-model.yaml", dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fprintf(f, "name: tiny-model\nkind: model\nformat: gguf\n"
               "url: http://127.0.0.1:9/tiny.gguf\nsize: %lld\nunverified: true\n"
               "license: apache-2.0\ndescription: the tests' tiny llama, q4_0\n",
            (long long)st.st_size);
    assert_int_equal(fclose(f), 0);
    setenv("QF_MANIFEST_DIR", dir, 1);
    snprintf(cmd, sizeof cmd, "%s/cache", dir);
    setenv("QF_CACHE_DIR", cmd, 1);
    qf_manifest m;
    char why[1024], cached[1200];
    assert_int_equal(qf_manifest_find(dir, "tiny-model", &m, why, sizeof why), 0);
    assert_int_equal(qf_fetch_cache_path(&m, NULL, cached, sizeof cached, why, sizeof why), 0);
    snprintf(cmd, sizeof cmd, "mkdir -p \"$(dirname '%s')\" && cp '%s/tiny.gguf' '%s'", cached,
             dir, cached);
    assert_int_equal(system(cmd), 0);

    qf_job_spec s = spec_of("q4_0", 1, 256, 1);
    s.reps = 2;
    snprintf(s.dataset, sizeof s.dataset, "manifest:tiny-model");
    qf_job_result r = { 0 };
    assert_int_equal(qf_fw_llamacpp.run(&s, &r), 0);
    if (r.status != QF_JOB_OK)
        fail_msg("model job: %s", r.error);
    assert_int_equal(r.n_samples, 2);
    for (uint32_t i = 0; i < r.n_samples; i++)
        if (!(r.samples[i] > 0 && r.samples[i] < 1))
            fail_msg("sample %u: %g s per generated token", i, r.samples[i]);
    assert_false(r.has_metrics);
    if (!(r.bytes > 0 && r.bytes <= (uint64_t)st.st_size && r.throughput_bytes == r.bytes))
        fail_msg("bytes %" PRIu64 " throughput %" PRIu64 " (file %lld)", r.bytes,
                 r.throughput_bytes, (long long)st.st_size);
    if (!(r.bpw > 4 && r.bpw < 6))
        fail_msg("bpw %.3f for a q4_0 model", r.bpw);
    printf("llamacpp model job: tg128 %.1f tokens/s, %" PRIu64 " bytes, %.2f bpw, %s\n",
           1 / r.samples[0], r.bytes, r.bpw, r.kernel);
    qf_job_result_clear(&r);
    unsetenv("QF_MANIFEST_DIR");
    unsetenv("QF_CACHE_DIR");
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_missing_ggml),
        cmocka_unit_test(test_probe),
        cmocka_unit_test(test_q4_0),
        cmocka_unit_test(test_q8_0_q4_K_f16),
        cmocka_unit_test(test_formats_listed),
        cmocka_unit_test(test_model_job),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
