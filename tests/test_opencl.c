/* test_opencl.c - the OpenCL backend (kernels/opencl) against the C reference kernels.
 *
 * Without an OpenCL platform the program says so on one line and exits 77, which CTest
 * reports as skipped; with QF_REQUIRE_OPENCL=1 (CI, where PoCL's CPU device is installed) it
 * fails instead. A platform without a usable device is always a failure.
 * First, before anything loads OpenCL into this process, qf_opencl_probe lists the devices
 * from a child of its own, and then a forked child runs a kernel: the agent's order of events
 * (fingerprint, then one forked child per job), which hangs if the probe leaked the runtime
 * into the parent.
 * Then, for every format the backend has and several shapes (one row; rows of every byte
 * alignment, since int4_g32 blocks are 19 bytes; work-groups with idle work-items), each check
 * draws fresh weights from the synthetic generator (datasets/synth: Gaussian, Laplace or
 * Student-t body with outlier channels, its seed mixing the run's seed, printed, with the
 * format and shape;
 * QF_TEST_SEED=N repeats a run) and fresh Gaussian activations, quantizes them with the C
 * reference, poisons the device output with NaN, runs, and checks:
 *   dequantize: bit-exact against qf_dequantize (the same operations in the same order),
 *               with each of the two kernels (per weight, per 32-weight chunk);
 *   matvec:     NMSE <= 1e-8 against qf_matvec_ref (same 8-bit activations, the same integer
 *               sums; only the order of float additions differs), NMSE <= 1e-3 against the
 *               exact product of the decoded weights with the float activations in double
 *               (what 8-bit activations cost), and every row within 1e-5 * sum_c |w_rc x_c|
 *               of qf_matvec_ref's (device_check.h says why these limits).
 * NMSE is qf_metrics_compute's, so one NaN makes it NaN, and every comparison is written so
 * that NaN fails it. Then the poison itself, the error paths and the timers.
 * Seconds on PoCL: the largest shape is 256 x 4096.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <inttypes.h>
#include <math.h>
#include <signal.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "device_check.h"
#include "qf_err.h"
#include "qf_formats.h"
#include "qf_metrics.h"
#include "qf_opencl.h"
#include "qf_synth.h"

typedef struct shape {
    int64_t rows, cols;
} shape;

/* cols are multiples of 256 (every format's block); 1280 and 2816 leave matvec work-groups
 * with idle work-items and give int4_g32/g64 rows of every alignment. */
static const shape k_shapes[] = {
    { 1, 256 }, { 7, 512 }, { 33, 1280 }, { 130, 2816 }, { 256, 4096 },
};
#define NSHAPES (sizeof k_shapes / sizeof k_shapes[0])

static uint64_t g_seed;

static int opencl_formats(qf_format out[QF_FMT_COUNT])
{
    int n = 0;
    for (int f = 0; f < QF_FMT_COUNT; f++)
        if (qf_opencl_supports((qf_format)f))
            out[n++] = (qf_format)f;
    return n;
}


/* Fresh inputs per check: the seed mixes the run's seed with what the check is, and the
 * body's distribution turns with it (Student-t, the slowest to draw, on a third). */
static void fill_weights(float *w, int64_t rows, int64_t cols, uint64_t salt)
{
    static const qf_synth_dist dists[] = { QF_SYNTH_GAUSSIAN, QF_SYNTH_LAPLACE,
                                           QF_SYNTH_STUDENT_T };
    qf_synth_params p = qf_synth_defaults(dists[salt % 3],
                                          g_seed ^ (salt * UINT64_C(0x9e3779b97f4a7c15)));
    p.outlier_channels = cols >= 64 ? 4 : 0;
    assert_int_equal(qf_synth_fill(&p, w, rows, cols), 0);
}


#define CL_OK(call)                                                                     \
    do {                                                                                \
        int rc_ = (call);                                                               \
        if (rc_ != 0)                                                                   \
            fail_msg("%s failed: %s (%s)", #call, qf_err_name(rc_), qf_opencl_last_error()); \
    } while (0)

/* The host and device buffers of one check. */
typedef struct check_bufs {
    float *w, *x, *deq, *got;
    void  *q;
    qf_opencl_weights *d_w;
    qf_opencl_buf *d_out;
    qf_opencl_act *act;
} check_bufs;

static void bufs_free(check_bufs *b)
{
    free(b->w);
    free(b->x);
    free(b->deq);
    free(b->got);
    free(b->q);
    qf_opencl_weights_destroy(&b->d_w);
    qf_opencl_buf_destroy(&b->d_out);
    qf_opencl_act_destroy(&b->act);
}

/* Fresh weights for (fmt, shape), quantized and decoded by the reference, on the device. */
static void prepare(qf_format fmt, size_t si, int kind, check_bufs *b)
{
    const shape s = k_shapes[si];
    const size_t n = (size_t)s.rows * (size_t)s.cols;
    const size_t bytes = qf_format_row_size(fmt, s.cols) * (size_t)s.rows;
    memset(b, 0, sizeof *b);
    b->w = malloc(n * sizeof(float));
    b->deq = malloc(n * sizeof(float));
    b->q = malloc(bytes);
    assert_non_null(b->w);
    assert_non_null(b->deq);
    assert_non_null(b->q);
    fill_weights(b->w, s.rows, s.cols, qf_device_salt(fmt, si, kind));
    assert_int_equal(qf_quantize(fmt, b->w, b->q, s.rows, s.cols), 0);
    assert_int_equal(qf_dequantize(fmt, b->q, b->deq, s.rows, s.cols), 0);
    CL_OK(qf_opencl_weights_new(fmt, b->q, s.rows, s.cols, &b->d_w));
    assert_true(qf_opencl_weights_bytes(b->d_w) == (uint64_t)bytes);
}

static void check_dequantize(qf_format fmt, size_t si)
{
    const shape s = k_shapes[si];
    const size_t n = (size_t)s.rows * (size_t)s.cols;
    const char *name = qf_format_get(fmt)->name;
    check_bufs b;
    prepare(fmt, si, 1, &b);
    b.got = malloc(n * sizeof(float));
    assert_non_null(b.got);
    CL_OK(qf_opencl_buf_new(n * sizeof(float), &b.d_out));
    CL_OK(qf_opencl_poison(b.d_out));
    CL_OK(qf_opencl_dequantize(b.d_w, b.d_out, NULL));
    CL_OK(qf_opencl_download(b.got, b.d_out, n * sizeof(float)));
    char what[64];
    snprintf(what, sizeof what, "dequantize %s %" PRId64 "x%" PRId64, name, s.rows, s.cols);
    qf_device_verdict v;
    bool ok = qf_device_judge_exact(what, b.deq, b.got, s.rows, s.cols, &v);
    bufs_free(&b);
    if (!ok)
        fail_msg("%s", v.why);
}

static void check_matvec(qf_format fmt, size_t si)
{
    const shape s = k_shapes[si];
    const char *name = qf_format_get(fmt)->name;
    check_bufs b;
    prepare(fmt, si, 2, &b);
    b.x = malloc((size_t)s.cols * sizeof(float));
    b.got = malloc((size_t)s.rows * sizeof(float));
    assert_non_null(b.x);
    assert_non_null(b.got);
    qf_device_fill_acts(b.x, s.cols, g_seed, qf_device_salt(fmt, si, 3));

    CL_OK(qf_opencl_buf_new((size_t)s.rows * sizeof(float), &b.d_out));
    CL_OK(qf_opencl_act_new(s.cols, &b.act));
    CL_OK(qf_opencl_poison(b.d_out));
    CL_OK(qf_opencl_matvec(b.d_w, b.x, b.act, b.d_out, NULL));
    CL_OK(qf_opencl_download(b.got, b.d_out, (size_t)s.rows * sizeof(float)));

    char what[64];
    snprintf(what, sizeof what, "matvec %s %" PRId64 "x%" PRId64, name, s.rows, s.cols);
    qf_device_verdict v;
    bool ok = qf_device_judge_matvec(what, fmt, b.q, b.deq, b.x, b.got, s.rows, s.cols, &v);
    bufs_free(&b);
    if (si == NSHAPES - 1)
        printf("# %-24s NMSE %.2e vs qf_matvec_ref, %.2e vs exact\n", what, v.nmse_ref,
               v.nmse_exact);
    if (!ok)
        fail_msg("%s", v.why);
}

/* ---- tests ------------------------------------------------------------------------------- */

/* Both dequantize kernels (per weight and per chunk), whichever the device would pick. */
static void test_dequantize_exact(void **state)
{
    (void)state;
    static const qf_opencl_deq_kernel kernels[] = { QF_OPENCL_DEQ_WEIGHT, QF_OPENCL_DEQ_CHUNK };
    qf_format fmts[QF_FMT_COUNT];
    int n = opencl_formats(fmts);
    assert_int_equal(n, 6);
    for (size_t k = 0; k < 2; k++) {
        qf_opencl_set_dequantize_kernel(kernels[k]);
        for (size_t si = 0; si < NSHAPES; si++)
            for (int i = 0; i < n; i++)
                check_dequantize(fmts[i], si);
    }
    qf_opencl_set_dequantize_kernel(QF_OPENCL_DEQ_AUTO);
}

static void test_matvec_nmse(void **state)
{
    (void)state;
    qf_format fmts[QF_FMT_COUNT];
    int n = opencl_formats(fmts);
    for (size_t si = 0; si < NSHAPES; si++)
        for (int i = 0; i < n; i++)
            check_matvec(fmts[i], si);
}

/* The poison is what makes a skipped output fail: it must really be NaN on the device. */
static void test_poison_is_nan(void **state)
{
    (void)state;
    qf_opencl_buf *b = NULL;
    float got[257];
    CL_OK(qf_opencl_buf_new(sizeof got, &b));
    assert_int_equal(qf_opencl_buf_bytes(b), sizeof got);
    CL_OK(qf_opencl_poison(b));
    CL_OK(qf_opencl_download(got, b, sizeof got));
    for (size_t i = 0; i < sizeof got / sizeof got[0]; i++)
        if (!isnan(got[i]))
            fail_msg("poisoned float %zu reads back as %g, not NaN", i, (double)got[i]);
    qf_tensor_metrics tm;
    static const float zeros[257];
    qf_metrics_compute(zeros, got, 257, 0, &tm);
    assert_false(tm.nmse <= QF_DEVICE_NMSE_VS_REF);     /* NaN never passes */
    qf_opencl_buf_destroy(&b);
    qf_opencl_buf_destroy(&b);                   /* NULL-safe */
    assert_null(b);
}

static void test_rejects(void **state)
{
    (void)state;
    qf_opencl_act *a = NULL;
    qf_opencl_weights *w4 = NULL, *wk = NULL, *bad = NULL;
    qf_opencl_buf *y = NULL, *small = NULL;
    static uint8_t zeros[2 * 144];              /* two q4_K blocks, or 1 x 512 of q4_0 */
    static const float ones[1024] = { 1.0f };
    assert_false(qf_opencl_supports(QF_FMT_F32));
    assert_false(qf_opencl_supports(QF_FMT_Q6_K));
    assert_int_equal(qf_opencl_weights_new(QF_FMT_F32, zeros, 1, 32, &bad), QF_EINVAL);
    assert_non_null(strstr(qf_opencl_last_error(), "f32"));
    assert_int_equal(qf_opencl_weights_new(QF_FMT_Q4_K, zeros, 1, 128, &bad), QF_EINVAL);
    assert_int_equal(qf_opencl_weights_new(QF_FMT_Q4_0, zeros, 0, 32, &bad), QF_EINVAL);
    assert_null(bad);
    assert_int_equal(qf_opencl_act_new(33, &a), QF_EINVAL);
    assert_null(a);
    CL_OK(qf_opencl_weights_new(QF_FMT_Q4_0, zeros, 1, 512, &w4));
    CL_OK(qf_opencl_weights_new(QF_FMT_Q4_K, zeros, 1, 512, &wk));
    CL_OK(qf_opencl_act_new(1024, &a));
    CL_OK(qf_opencl_buf_new(4096, &y));
    CL_OK(qf_opencl_buf_new(4, &small));
    /* nothing quantized yet */
    assert_int_equal(qf_opencl_matvec_q(w4, a, y, NULL), QF_EINVAL);
    /* activations quantized for q4_0 (q8_0) cannot feed q4_K (q8_K), nor another length */
    CL_OK(qf_opencl_act_quantize(a, QF_FMT_Q4_0, ones, 512));
    assert_int_equal(qf_opencl_matvec_q(wk, a, y, NULL), QF_EINVAL);
    assert_non_null(strstr(qf_opencl_last_error(), "q8_K"));
    CL_OK(qf_opencl_matvec_q(w4, a, y, NULL));
    CL_OK(qf_opencl_act_quantize(a, QF_FMT_Q4_0, ones, 1024));
    assert_int_equal(qf_opencl_matvec_q(w4, a, y, NULL), QF_EINVAL);
    assert_int_equal(qf_opencl_act_quantize(a, QF_FMT_Q4_0, ones, 2048), QF_EINVAL);
    assert_int_equal(qf_opencl_act_quantize(a, QF_FMT_Q6_K, ones, 512), QF_EINVAL);
    /* an output too small for the result */
    assert_int_equal(qf_opencl_dequantize(w4, small, NULL), QF_EINVAL);
    CL_OK(qf_opencl_sync());
    qf_opencl_weights_destroy(&w4);
    qf_opencl_weights_destroy(&wk);
    qf_opencl_weights_destroy(&wk);              /* NULL-safe */
    qf_opencl_act_destroy(&a);
    qf_opencl_act_destroy(&a);
    qf_opencl_buf_destroy(&y);
    qf_opencl_buf_destroy(&small);
    assert_null(wk);
    assert_null(a);
}

static void test_timer_and_copy(void **state)
{
    (void)state;
    qf_opencl_timer *t = NULL;
    qf_opencl_buf *a = NULL, *b = NULL;
    const size_t bytes = 16u << 20;
    CL_OK(qf_opencl_timer_new(2, &t));
    CL_OK(qf_opencl_buf_new(bytes, &a));
    CL_OK(qf_opencl_buf_new(bytes, &b));
    CL_OK(qf_opencl_poison(a));
    CL_OK(qf_opencl_copy(b, a, bytes, t));
    CL_OK(qf_opencl_copy(a, b, bytes, t));
    assert_int_equal(qf_opencl_copy(b, a, bytes, t), QF_EINVAL);    /* full */
    assert_int_equal(qf_opencl_timer_count(t), 2);
    double secs = 0;
    assert_int_equal(qf_opencl_timer_seconds(t, 2, &secs), QF_EINVAL);
    for (uint32_t i = 0; i < 2; i++) {
        CL_OK(qf_opencl_timer_seconds(t, i, &secs));
        if (!(secs > 0 && secs < 5))
            fail_msg("a 16 MiB device copy took %g s by its profiling event", secs);
    }
    printf("# copy of 16 MiB: %.3f ms by its profiling event, %.1f GB/s read + write\n",
           1e3 * secs, 2.0 * (double)bytes / secs / 1e9);
    qf_opencl_timer_reset(t);
    assert_int_equal(qf_opencl_timer_count(t), 0);
    CL_OK(qf_opencl_copy(b, a, bytes, t));
    CL_OK(qf_opencl_timer_seconds(t, 0, &secs));
    qf_opencl_timer_destroy(&t);
    qf_opencl_timer_destroy(&t);
    assert_null(t);
    qf_opencl_buf_destroy(&a);
    qf_opencl_buf_destroy(&b);
}

/* A child forked after qf_opencl_probe sets the device up and dequantizes one block: it
 * hangs (killed after 60 s) if the probe had loaded the runtime into this process. */
static int probe_then_fork(void)
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        static qf_block_q8_0 blk = { .d = 0x3c00, .qs = { 1, -2, 3 } };   /* d = 1.0 */
        qf_opencl_weights *w = NULL;
        qf_opencl_buf *out = NULL;
        float y[32] = { 0 };
        int ok = qf_opencl_weights_new(QF_FMT_Q8_0, &blk, 1, 32, &w) == 0 &&
                 qf_opencl_buf_new(sizeof y, &out) == 0 &&
                 qf_opencl_dequantize(w, out, NULL) == 0 &&
                 qf_opencl_download(y, out, sizeof y) == 0 && y[1] == -2.0f && y[2] == 3.0f;
        if (!ok)
            printf("test_opencl: the forked child failed: %s\n", qf_opencl_last_error());
        _exit(ok ? 0 : 1);     /* no atexit handlers (LeakSanitizer's) in the child */
    }
    int st = 0;
    for (int waited = 0; waited < 600; waited++) {
        pid_t r = waitpid(pid, &st, WNOHANG);
        if (r == pid)
            return WIFEXITED(st) && WEXITSTATUS(st) == 0 ? 0 : 1;
        struct timespec ts = { 0, 100 * 1000 * 1000 };
        nanosleep(&ts, NULL);
    }
    kill(pid, SIGKILL);
    waitpid(pid, &st, 0);
    return 2;
}

int main(void)
{
    /* Before anything else loads a platform into this process: the agent's order. */
    static qf_opencl_device_info devs[16];
    int ndev = 0;
    int err = qf_opencl_probe(devs, 16, &ndev);
    const char *req = getenv("QF_REQUIRE_OPENCL");
    const bool required = req && req[0] && strcmp(req, "0") != 0;
    if (err == QF_EUNSUP) {
        /* The API must say "unsupported" everywhere, not crash, without a platform. */
        qf_opencl_buf *b = NULL;
        int plats = -1, devices = -1;
        int count_err = qf_opencl_device_count(&plats, &devices);
        int buf_err = qf_opencl_buf_new(16, &b);
        printf("test_opencl: %s: no OpenCL platform (%s)\n", required ? "FAIL" : "SKIP",
               qf_opencl_last_error());
        if (count_err != QF_EUNSUP || plats != 0 || devices != 0 || buf_err != QF_EUNSUP || b) {
            printf("test_opencl: FAIL: without a platform, expected QF_EUNSUP, got %s and %s\n",
                   qf_err_name(count_err), qf_err_name(buf_err));
            return 1;
        }
        return required ? 1 : 77;
    }
    if (err || ndev == 0) {
        printf("test_opencl: FAIL: probe: %s, %d devices (%s)\n", qf_err_name(err), ndev,
               qf_opencl_last_error());
        return 1;
    }
    for (int i = 0; i < ndev; i++)
        printf("# device %d: %s / %s (%s), %s, driver %s, %" PRIu32 " CUs, %" PRIu64 " MiB\n", i,
               devs[i].platform, devs[i].name, devs[i].type, devs[i].version,
               devs[i].driver_version, devs[i].compute_units, devs[i].global_mem >> 20);
    int fork_rc = probe_then_fork();
    if (fork_rc != 0) {
        printf("test_opencl: FAIL: a child forked after qf_opencl_probe %s\n",
               fork_rc == 2 ? "hung (the probe loaded the runtime into this process?)"
                            : "could not run a kernel");
        return 1;
    }
    int plats = 0, devices = 0;
    if (qf_opencl_device_count(&plats, &devices) != 0 || devices != ndev) {
        printf("test_opencl: FAIL: device_count says %d devices, the probe %d\n", devices, ndev);
        return 1;
    }
    qf_opencl_device_info info;
    if (qf_opencl_device_query(&info) != 0) {
        printf("test_opencl: FAIL: device setup: %s\n", qf_opencl_last_error());
        return 1;
    }
    const char *env = getenv("QF_TEST_SEED");
    g_seed = env ? strtoull(env, NULL, 10) : (uint64_t)time(NULL);
    printf("# running on %s / %s; QF_TEST_SEED=%" PRIu64 "\n", info.platform, info.name,
           g_seed);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_poison_is_nan),
        cmocka_unit_test(test_rejects),
        cmocka_unit_test(test_timer_and_copy),
        cmocka_unit_test(test_dequantize_exact),
        cmocka_unit_test(test_matvec_nmse),
    };
    int rc = cmocka_run_group_tests(tests, NULL, NULL);
    qf_opencl_shutdown();
    return rc;
}
