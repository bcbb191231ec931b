/* test_cuda.c - the CUDA backend (kernels/cuda) against the C reference kernels.
 *
 * Without a usable GPU the program says why on one line and exits 77, which CTest reports as
 * skipped (after checking that the API answers QF_EUNSUP rather than crashing). On a GPU, for
 * every format the backend has and several shapes up to 4096 x 14336 (rows of every byte
 * alignment, partial tiles, one row), each check draws fresh random weights and activations
 * (seed printed; QF_TEST_SEED=N repeats a run), quantizes them with the C reference, poisons
 * the device output with NaN and then checks:
 *   dequantize: bit-exact against qf_dequantize (the same operations in the same order);
 *   matvec:     NMSE <= 1e-8 against qf_matvec_ref (same 8-bit activations, so the same
 *               integer sums; only the order of float additions differs: ~1e-13 seen), and
 *               NMSE <= 1e-3 against the exact product of the decoded weights with the float
 *               activations, accumulated in double (what 8-bit activations cost, ~5e-5);
 *               and every row within 1e-5 * sum_c |w_rc x_c| of qf_matvec_ref's, the
 *               rounding bound that still holds for a row whose terms cancel (a one-row
 *               shape's NMSE is that row's relative error, which cancellation can inflate,
 *               so NMSE is judged on shapes of 7 rows or more).
 * NMSE is qf_metrics_compute's, so a single NaN makes it NaN, and NaN never passes (nor does
 * it pass the per-row bound). Then the error paths (unsupported format, bad shape, mismatched
 * activations) and the timers.
 * The large shape's reference quantization is most of the run time; it runs on all cores.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "qf_cuda.h"
#include "qf_err.h"
#include "qf_formats.h"
#include "qf_metrics.h"
#include "qf_rng.h"

#define NMSE_VS_REF    1e-8
#define NMSE_VS_EXACT  1e-3
#define ROW_VS_REF     1e-5     /* of sum_c |w_rc x_c| */
#define NMSE_MIN_ROWS  7
#define NMSE_MATMUL    1e-5     /* f16 inputs: ~2^-11 relative per weight and activation */

typedef struct shape {
    int64_t rows, cols;
} shape;

/* cols are multiples of 256 (every format's block); 1280 and 2816 leave partial tiles and,
 * with the odd block sizes of int4 and int8_pc's row header, rows of every alignment. */
static const shape k_shapes[] = {
    { 1, 256 }, { 7, 512 }, { 33, 1280 }, { 130, 2816 }, { 4096, 14336 },
};
#define NSHAPES (sizeof k_shapes / sizeof k_shapes[0])

static uint64_t g_seed;

/* The formats to test: every one the backend claims (the backend's table is the truth). */
static int cuda_formats(qf_format out[QF_FMT_COUNT])
{
    int n = 0;
    for (int f = 0; f < QF_FMT_COUNT; f++)
        if (qf_cuda_supports((qf_format)f))
            out[n++] = (qf_format)f;
    return n;
}

/* Fresh inputs per check: the seed mixes the run's seed with what the check is. */
static void fill_weights(float *w, int64_t n, uint64_t salt)
{
    qf_rng r;
    qf_rng_seed(&r, g_seed ^ (salt * UINT64_C(0x9e3779b97f4a7c15)));
    /* LLM-like: a Gaussian body, a heavy tail, and one scale per 64 weights so blocks differ */
    for (int64_t i = 0; i < n; i += 64) {
        double scale = 0.02 * (0.25 + 2.0 * qf_rng_uniform(&r));
        for (int64_t j = i; j < i + 64 && j < n; j++)
            w[j] = (float)(scale * (qf_rng_uniform(&r) < 0.02 ? qf_rng_student_t(&r, 3)
                                                               : qf_rng_normal(&r)));
    }
}

static void fill_acts(float *x, int64_t n, uint64_t salt)
{
    qf_rng r;
    qf_rng_seed(&r, g_seed ^ (salt * UINT64_C(0xd1b54a32d192ed03)) ^ 1);
    for (int64_t i = 0; i < n; i++)
        x[i] = (float)qf_rng_normal(&r);
}

static uint64_t salt_of(qf_format fmt, size_t shape_i, int kind)
{
    return ((uint64_t)fmt << 16 | (uint64_t)shape_i << 4 | (uint64_t)kind) + 1;
}

/* The reference quantizer over a share of the rows, on a thread of its own. */
typedef struct quant_share {
    qf_format fmt;
    const float *src;
    void *dst;
    int64_t rows, cols;
    int rc;
} quant_share;

static void *quantize_share(void *arg)
{
    quant_share *q = arg;
    q->rc = qf_quantize(q->fmt, q->src, q->dst, q->rows, q->cols);
    return NULL;
}

/* qf_quantize, the rows cut into one share per core (the K-quants' reference quantizers run
 * at ~60 MB/s, and the large shape is 235 MB of floats). */
static void quantize_parallel(qf_format fmt, const float *src, void *dst, int64_t rows,
                              int64_t cols)
{
    enum { MAX_THREADS = 64 };
    long ncpu = sysconf(_SC_NPROCESSORS_ONLN);
    int n = ncpu < 1 ? 1 : ncpu > MAX_THREADS ? MAX_THREADS : (int)ncpu;
    if (n > rows)
        n = (int)rows;
    quant_share sh[MAX_THREADS];
    pthread_t tid[MAX_THREADS];
    bool started[MAX_THREADS] = { false };
    const size_t rs = qf_format_row_size(fmt, cols);
    for (int i = 0; i < n; i++) {
        const int64_t r0 = rows * i / n, r1 = rows * (i + 1) / n;
        sh[i] = (quant_share){ fmt, src + r0 * cols, (char *)dst + (size_t)r0 * rs, r1 - r0,
                               cols, -1 };
        if (i > 0)
            started[i] = pthread_create(&tid[i], NULL, quantize_share, &sh[i]) == 0;
    }
    for (int i = 0; i < n; i++)
        if (!started[i])
            quantize_share(&sh[i]);              /* share 0, and any without a thread */
    for (int i = 1; i < n; i++)
        if (started[i])
            pthread_join(tid[i], NULL);
    for (int i = 0; i < n; i++)
        assert_int_equal(sh[i].rc, 0);
}

/* The host and device buffers of one check. */
typedef struct check_bufs {
    float *w, *x, *deq, *got, *yref;
    void  *q;
    qf_cuda_weights *d_w;
    void  *d_x, *d_out;
    qf_cuda_act *act;
} check_bufs;

static void bufs_free(check_bufs *b)
{
    free(b->w);
    free(b->x);
    free(b->deq);
    free(b->got);
    free(b->yref);
    free(b->q);
    qf_cuda_weights_destroy(&b->d_w);
    qf_cuda_free(&b->d_x);
    qf_cuda_free(&b->d_out);
    qf_cuda_act_destroy(&b->act);
}

#define CUDA_OK(call)                                                                  \
    do {                                                                               \
        int rc_ = (call);                                                              \
        if (rc_ != 0)                                                                  \
            fail_msg("%s failed: %s (%s)", #call, qf_err_name(rc_), qf_cuda_last_error()); \
    } while (0)

/* Quantizes fresh weights for (fmt, shape) with the reference and uploads them (which also
 * rearranges them on the device). */
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
    fill_weights(b->w, (int64_t)n, salt_of(fmt, si, kind));
    quantize_parallel(fmt, b->w, b->q, s.rows, s.cols);
    assert_int_equal(qf_dequantize(fmt, b->q, b->deq, s.rows, s.cols), 0);
    CUDA_OK(qf_cuda_weights_new(fmt, b->q, s.rows, s.cols, &b->d_w));
    assert_true(qf_cuda_weights_bytes(b->d_w) == (uint64_t)bytes);
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
    CUDA_OK(qf_cuda_alloc(n * sizeof(float), &b.d_out));
    CUDA_OK(qf_cuda_poison(b.d_out, n * sizeof(float)));
    CUDA_OK(qf_cuda_dequantize(b.d_w, (float *)b.d_out));
    CUDA_OK(qf_cuda_sync());
    CUDA_OK(qf_cuda_download(b.got, b.d_out, n * sizeof(float)));
    for (size_t i = 0; i < n; i++) {
        if (memcmp(&b.got[i], &b.deq[i], sizeof(float)) != 0) {
            float g = b.got[i], r = b.deq[i];
            bufs_free(&b);
            fail_msg("dequantize %s %" PRId64 "x%" PRId64 ": weight (%zu, %zu) is %a on the "
                     "device, %a in the reference", name, s.rows, s.cols,
                     i / (size_t)s.cols, i % (size_t)s.cols, (double)g, (double)r);
        }
    }
    bufs_free(&b);
}

static void check_matvec(qf_format fmt, size_t si)
{
    const shape s = k_shapes[si];
    const char *name = qf_format_get(fmt)->name;
    check_bufs b;
    prepare(fmt, si, 2, &b);
    b.x = malloc((size_t)s.cols * sizeof(float));
    b.got = malloc((size_t)s.rows * sizeof(float));
    b.yref = malloc((size_t)s.rows * sizeof(float));
    float *yexact = malloc((size_t)s.rows * sizeof(float));
    assert_non_null(b.x);
    assert_non_null(b.got);
    assert_non_null(b.yref);
    assert_non_null(yexact);
    fill_acts(b.x, s.cols, salt_of(fmt, si, 3));

    CUDA_OK(qf_cuda_alloc((size_t)s.cols * sizeof(float), &b.d_x));
    CUDA_OK(qf_cuda_upload(b.d_x, b.x, (size_t)s.cols * sizeof(float)));
    CUDA_OK(qf_cuda_alloc((size_t)s.rows * sizeof(float), &b.d_out));
    CUDA_OK(qf_cuda_act_new(s.cols, &b.act));
    CUDA_OK(qf_cuda_poison(b.d_out, (size_t)s.rows * sizeof(float)));
    CUDA_OK(qf_cuda_matvec(b.d_w, (const float *)b.d_x, b.act, (float *)b.d_out));
    CUDA_OK(qf_cuda_sync());
    CUDA_OK(qf_cuda_download(b.got, b.d_out, (size_t)s.rows * sizeof(float)));

    assert_int_equal(qf_matvec_ref(fmt, b.q, b.x, b.yref, s.rows, s.cols), 0);
    int64_t bad_row = -1;
    double bad_err = 0, bad_mag = 0;
    for (int64_t r = 0; r < s.rows; r++) {
        double acc = 0, mag = 0;
        for (int64_t c = 0; c < s.cols; c++) {
            const double t = (double)b.deq[r * s.cols + c] * (double)b.x[c];
            acc += t;
            mag += fabs(t);
        }
        yexact[r] = (float)acc;
        const double err = fabs((double)b.got[r] - (double)b.yref[r]);
        if (bad_row < 0 && !(err <= ROW_VS_REF * mag)) {
            bad_row = r;
            bad_err = err;
            bad_mag = mag;
        }
    }
    qf_tensor_metrics vs_ref, vs_exact;
    qf_metrics_compute(b.yref, b.got, s.rows, 0, &vs_ref);
    qf_metrics_compute(yexact, b.got, s.rows, 0, &vs_exact);
    float yb = bad_row >= 0 ? b.got[bad_row] : 0, rb = bad_row >= 0 ? b.yref[bad_row] : 0;
    free(yexact);
    bufs_free(&b);
    if (s.rows == 4096)
        printf("# matvec %-9s %" PRId64 "x%" PRId64 ": NMSE %.2e vs qf_matvec_ref, %.2e vs "
               "exact\n", name, s.rows, s.cols, vs_ref.nmse, vs_exact.nmse);
    if (bad_row >= 0)
        fail_msg("matvec %s %" PRId64 "x%" PRId64 ": row %" PRId64 " is %g on the device, %g "
                 "in qf_matvec_ref: off by %g, over %g * sum|w x| = %g", name, s.rows, s.cols,
                 bad_row, (double)yb, (double)rb, bad_err, ROW_VS_REF, ROW_VS_REF * bad_mag);
    if (s.rows < NMSE_MIN_ROWS)
        return;
    if (!(vs_ref.nmse <= NMSE_VS_REF))
        fail_msg("matvec %s %" PRId64 "x%" PRId64 ": NMSE %g against qf_matvec_ref (limit %g)",
                 name, s.rows, s.cols, vs_ref.nmse, NMSE_VS_REF);
    if (!(vs_exact.nmse <= NMSE_VS_EXACT))
        fail_msg("matvec %s %" PRId64 "x%" PRId64 ": NMSE %g against the exact product "
                 "(limit %g)", name, s.rows, s.cols, vs_exact.nmse, NMSE_VS_EXACT);
}

/* Matmul of n fresh activation rows against the exact product of the reference decode: the
 * device rounds weights and activations to f16 and accumulates in f32 on the tensor cores. */
static void check_matmul(qf_format fmt, size_t si, int64_t n)
{
    const shape s = k_shapes[si];
    const char *name = qf_format_get(fmt)->name;
    check_bufs b;
    prepare(fmt, si, 4, &b);
    const size_t nx = (size_t)n * (size_t)s.cols, ny = (size_t)n * (size_t)s.rows;
    b.x = malloc(nx * sizeof(float));
    b.got = malloc(ny * sizeof(float));
    b.yref = malloc(ny * sizeof(float));
    assert_non_null(b.x);
    assert_non_null(b.got);
    assert_non_null(b.yref);
    fill_acts(b.x, (int64_t)nx, salt_of(fmt, si, 5) + (uint64_t)n);
    qf_cuda_gemm *g = NULL;
    CUDA_OK(qf_cuda_gemm_new(b.d_w, n, &g));
    CUDA_OK(qf_cuda_alloc(nx * sizeof(float), &b.d_x));
    CUDA_OK(qf_cuda_upload(b.d_x, b.x, nx * sizeof(float)));
    CUDA_OK(qf_cuda_alloc(ny * sizeof(float), &b.d_out));
    CUDA_OK(qf_cuda_poison(b.d_out, ny * sizeof(float)));
    CUDA_OK(qf_cuda_matmul(g, (const float *)b.d_x, n, (float *)b.d_out));
    CUDA_OK(qf_cuda_sync());
    CUDA_OK(qf_cuda_download(b.got, b.d_out, ny * sizeof(float)));
    qf_cuda_gemm_destroy(&g);
    assert_null(g);
    for (int64_t j = 0; j < n; j++)
        for (int64_t r = 0; r < s.rows; r++) {
            double acc = 0;
            for (int64_t c = 0; c < s.cols; c++)
                acc += (double)b.deq[r * s.cols + c] * (double)b.x[j * s.cols + c];
            b.yref[j * s.rows + r] = (float)acc;
        }
    qf_tensor_metrics m;
    qf_metrics_compute(b.yref, b.got, (int64_t)ny, 0, &m);
    bufs_free(&b);
    if (!(m.nmse <= NMSE_MATMUL))
        fail_msg("matmul %s %" PRId64 "x%" PRId64 ", n = %" PRId64 ": NMSE %g against the "
                 "exact product of the reference decode (limit %g)", name, s.rows, s.cols, n,
                 m.nmse, NMSE_MATMUL);
}

/* ---- tests ------------------------------------------------------------------------------- */

static void test_dequantize_exact(void **state)
{
    (void)state;
    qf_format fmts[QF_FMT_COUNT];
    int n = cuda_formats(fmts);
    assert_int_equal(n, 14);
    for (size_t si = 0; si < NSHAPES; si++)
        for (int i = 0; i < n; i++)
            check_dequantize(fmts[i], si);
}

static void test_matvec_nmse(void **state)
{
    (void)state;
    qf_format fmts[QF_FMT_COUNT];
    int n = cuda_formats(fmts);
    for (size_t si = 0; si < NSHAPES; si++)
        for (int i = 0; i < n; i++)
            check_matvec(fmts[i], si);
}

static void test_matmul_nmse(void **state)
{
    (void)state;
    qf_format fmts[QF_FMT_COUNT];
    int n = cuda_formats(fmts);
    static const int64_t batches[] = { 1, 7, 64 };
    for (size_t si = 0; si + 1 < NSHAPES; si++)    /* the 4096 x 14336 shape: by the bench */
        for (int i = 0; i < n; i++)
            for (size_t k = 0; k < sizeof batches / sizeof batches[0]; k++)
                check_matmul(fmts[i], si, batches[k]);
}

static void test_rejects(void **state)
{
    (void)state;
    void *d = NULL;
    qf_cuda_act *a = NULL;
    qf_cuda_weights *w4 = NULL, *wk = NULL, *bad = NULL;
    static uint8_t zeros[2 * 144];              /* two q4_K blocks, or 1 x 512 of q4_0 */
    CUDA_OK(qf_cuda_alloc(4096, &d));
    CUDA_OK(qf_cuda_poison(d, 4096));
    assert_false(qf_cuda_supports(QF_FMT_F32));
    assert_int_equal(qf_cuda_weights_new(QF_FMT_F32, zeros, 1, 32, &bad), QF_EINVAL);
    assert_non_null(strstr(qf_cuda_last_error(), "f32"));
    assert_int_equal(qf_cuda_weights_new(QF_FMT_Q4_K, zeros, 1, 128, &bad), QF_EINVAL);
    assert_int_equal(qf_cuda_weights_new(QF_FMT_Q4_0, zeros, 0, 32, &bad), QF_EINVAL);
    assert_null(bad);
    assert_int_equal(qf_cuda_act_new(33, &a), QF_EINVAL);
    assert_null(a);
    CUDA_OK(qf_cuda_weights_new(QF_FMT_Q4_0, zeros, 1, 512, &w4));
    CUDA_OK(qf_cuda_weights_new(QF_FMT_Q4_K, zeros, 1, 512, &wk));
    CUDA_OK(qf_cuda_act_new(1024, &a));
    /* activations quantized for q4_0 (q8_0) cannot feed q4_K (q8_K), nor another length */
    static const float ones[1024] = { 1.0f };
    CUDA_OK(qf_cuda_upload(d, ones, sizeof ones));
    CUDA_OK(qf_cuda_act_quantize(a, QF_FMT_Q4_0, (const float *)d, 512));
    assert_int_equal(qf_cuda_matvec_q(wk, a, (float *)d), QF_EINVAL);
    CUDA_OK(qf_cuda_act_quantize(a, QF_FMT_Q4_0, (const float *)d, 1024));
    assert_int_equal(qf_cuda_matvec_q(w4, a, (float *)d), QF_EINVAL);
    assert_int_equal(qf_cuda_act_quantize(a, QF_FMT_Q4_0, (const float *)d, 2048), QF_EINVAL);
    CUDA_OK(qf_cuda_sync());
    qf_cuda_weights_destroy(&w4);
    qf_cuda_weights_destroy(&wk);
    qf_cuda_weights_destroy(&wk);   /* NULL-safe */
    qf_cuda_act_destroy(&a);
    qf_cuda_act_destroy(&a);
    qf_cuda_free(&d);
    qf_cuda_free(&d);
    assert_null(d);
    assert_null(wk);
}

static void test_timer_and_copy(void **state)
{
    (void)state;
    qf_cuda_timer *t = NULL;
    void *a = NULL, *b = NULL;
    const size_t bytes = 64u << 20;
    CUDA_OK(qf_cuda_timer_new(2, &t));
    CUDA_OK(qf_cuda_alloc(bytes, &a));
    CUDA_OK(qf_cuda_alloc(bytes, &b));
    CUDA_OK(qf_cuda_timer_mark(t, 0));
    CUDA_OK(qf_cuda_copy(b, a, bytes));
    CUDA_OK(qf_cuda_timer_mark(t, 1));
    assert_int_equal(qf_cuda_timer_mark(t, 2), QF_EINVAL);
    double secs = 0;
    CUDA_OK(qf_cuda_timer_seconds(t, 0, 1, &secs));
    if (!(secs > 0 && secs < 1))
        fail_msg("a 64 MiB device copy took %g s", secs);
    double gbps = 0;
    CUDA_OK(qf_cuda_copy_bandwidth(bytes, 5, &gbps));
    printf("# copy bandwidth (64 MiB, read + write): %.1f GB/s\n", gbps);
    if (!(gbps > 10 && gbps < 100000))
        fail_msg("copy bandwidth %g GB/s is not plausible", gbps);
    qf_cuda_timer_destroy(&t);
    qf_cuda_timer_destroy(&t);
    qf_cuda_free(&a);
    qf_cuda_free(&b);
}

int main(void)
{
    int count = 0;
    int err = qf_cuda_device_count(&count);
    if (err || count == 0) {
        /* The API must say "unsupported" everywhere, not crash, when there is no GPU. */
        void *d = NULL;
        int alloc_err = qf_cuda_alloc(16, &d);
        printf("test_cuda: SKIP: no usable CUDA device (%s)\n", qf_cuda_last_error());
        if (err != QF_EUNSUP || alloc_err != QF_EUNSUP || d != NULL) {
            printf("test_cuda: FAIL: without a device, expected QF_EUNSUP, got %s and %s\n",
                   qf_err_name(err), qf_err_name(alloc_err));
            return 1;
        }
        return 77;
    }
    qf_cuda_device_info info;
    if (qf_cuda_device_query(&info) != 0) {
        printf("test_cuda: FAIL: device query: %s\n", qf_cuda_last_error());
        return 1;
    }
    const char *env = getenv("QF_TEST_SEED");
    g_seed = env ? strtoull(env, NULL, 10) : (uint64_t)time(NULL);
    printf("# %s, cc %d.%d, %d SMs, driver %d, runtime %d; QF_TEST_SEED=%" PRIu64 "\n",
           info.name, info.cc_major, info.cc_minor, info.sm_count, info.driver_version,
           info.runtime_version, g_seed);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rejects),
        cmocka_unit_test(test_timer_and_copy),
        cmocka_unit_test(test_dequantize_exact),
        cmocka_unit_test(test_matvec_nmse),
        cmocka_unit_test(test_matmul_nmse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
