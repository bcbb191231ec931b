/* test_metrics.c - tensor metrics against values worked out by hand, their edge cases (zero
 * vectors, perfect reconstruction, empty input, NaN), an SNR of noise of known power, and
 * the quantize-decode round trip through the format table.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>

#include "qf_err.h"
#include "qf_formats.h"
#include "qf_metrics.h"
#include "qf_rng.h"
#include "qf_synth.h"

/* |got - want| <= tol, or both the same infinity, or both NaN; prints both sides. */
#define assert_near(got, want, tol, what)                                                    \
    do {                                                                                     \
        double g_ = (got), w_ = (want), t_ = (tol);                                          \
        int ok_ = (isnan(g_) && isnan(w_)) || (isinf(w_) && g_ == w_) ||                     \
                  fabs(g_ - w_) <= t_;                                                       \
        if (!ok_)                                                                            \
            fail_msg("%s: got %.17g, want %.17g (tolerance %.3g)", (what), g_, w_, t_);      \
    } while (0)

static void test_identical(void **state)
{
    (void)state;
    const float x[] = { 0.5f, -1.25f, 3.0f, 0.0f, -7.5f };
    qf_tensor_metrics m;
    qf_metrics_compute(x, x, 5, 0, &m);
    assert_int_equal(m.n, 5);
    assert_near(m.rmse, 0.0, 0, "rmse");
    assert_near(m.nmse, 0.0, 0, "nmse");
    assert_near(m.snr_db, INFINITY, 0, "snr_db");
    assert_near(m.max_abs, 0.0, 0, "max_abs");
    assert_near(m.cosine, 1.0, 1e-15, "cosine");
    assert_int_equal(m.bytes, 0);
    assert_near(m.bpw, 0.0, 0, "bpw with bytes unknown");

    /* (1,1,1): 3 / (sqrt(3) sqrt(3)) is 1 + 2^-52 in binary64; cosine is clamped to [-1, 1] */
    const float ones[] = { 1, 1, 1 }, minus[] = { -1, -1, -1 };
    qf_metrics_compute(ones, ones, 3, 0, &m);
    assert_near(m.cosine, 1.0, 0, "cosine of (1,1,1) with itself");
    qf_metrics_compute(ones, minus, 3, 0, &m);
    assert_near(m.cosine, -1.0, 0, "cosine of (1,1,1) with its negation");
}

static void test_known_error(void **state)
{
    (void)state;
    /* x = (1,2,3,4), y = (1,2,3,5): err^2 sums to 1, x^2 to 30, y^2 to 39, x.y to 34. */
    const float x[] = { 1, 2, 3, 4 }, y[] = { 1, 2, 3, 5 };
    qf_tensor_metrics m;
    qf_metrics_compute(x, y, 4, 2, &m);
    assert_near(m.rmse, 0.5, 1e-15, "rmse = sqrt(1/4)");
    assert_near(m.nmse, 1.0 / 30.0, 1e-17, "nmse = 1/30");
    assert_near(m.snr_db, 14.771212547196624, 1e-12, "snr = 10 log10(30)");
    assert_near(m.max_abs, 1.0, 0, "max_abs");
    assert_near(m.cosine, 34.0 / sqrt(30.0 * 39.0), 1e-15, "cosine = 34 / sqrt(30 * 39)");
    assert_near(m.bpw, 4.0, 0, "bpw = 8 * 2 bytes / 4");

    /* y = -x: opposite direction, error 2x */
    const float z[] = { -1, -2, -3, -4 };
    qf_metrics_compute(x, z, 4, 0, &m);
    assert_near(m.cosine, -1.0, 0, "cosine of opposite vectors (clamped to -1)");
    assert_near(m.nmse, 4.0, 0, "nmse of y = -x");
    assert_near(m.snr_db, -10 * log10(4.0), 1e-12, "snr of y = -x");
    assert_near(m.max_abs, 8.0, 0, "max_abs of y = -x");
}

static void test_zero_vectors(void **state)
{
    (void)state;
    const float zero[] = { 0, 0, 0 }, v[] = { 0, 3, -4 };
    qf_tensor_metrics m;

    qf_metrics_compute(zero, zero, 3, 0, &m);
    assert_near(m.nmse, 0.0, 0, "zero vs zero: nmse");
    assert_near(m.snr_db, INFINITY, 0, "zero vs zero: snr");
    assert_near(m.cosine, 1.0, 0, "zero vs zero: cosine");
    assert_near(m.rmse, 0.0, 0, "zero vs zero: rmse");

    qf_metrics_compute(zero, v, 3, 0, &m);
    assert_near(m.nmse, INFINITY, 0, "zero original, nonzero y: nmse");
    assert_near(m.snr_db, -INFINITY, 0, "zero original, nonzero y: snr");
    assert_near(m.cosine, 0.0, 0, "zero original, nonzero y: cosine");
    assert_near(m.rmse, 5.0 / sqrt(3.0), 1e-15, "zero original, nonzero y: rmse");
    assert_near(m.max_abs, 4.0, 0, "zero original, nonzero y: max_abs");

    qf_metrics_compute(v, zero, 3, 0, &m);
    assert_near(m.nmse, 1.0, 0, "y = 0: nmse");
    assert_near(m.snr_db, 0.0, 0, "y = 0: snr");
    assert_near(m.cosine, 0.0, 0, "y = 0: cosine");
}

static void test_empty_and_nan(void **state)
{
    (void)state;
    qf_tensor_metrics m;
    qf_metrics_compute(NULL, NULL, 0, 0, &m);
    assert_int_equal(m.n, 0);
    assert_near(m.rmse, 0.0, 0, "empty: rmse");
    assert_near(m.nmse, 0.0, 0, "empty: nmse");
    assert_near(m.snr_db, INFINITY, 0, "empty: snr");
    assert_near(m.cosine, 1.0, 0, "empty: cosine");
    assert_near(m.bpw, 0.0, 0, "empty: bpw");

    const float x[] = { 1, NAN, 2 }, y[] = { 1, 1, 5 };
    qf_metrics_compute(x, y, 3, 0, &m);
    assert_true(isnan(m.rmse));
    assert_true(isnan(m.nmse));
    assert_true(isnan(m.snr_db));
    assert_true(isnan(m.max_abs));   /* NaN even though a later error (3) is finite */
    assert_true(isnan(m.cosine));
}

static void test_snr_of_known_noise(void **state)
{
    (void)state;
    /* Deterministic: x = +-1, noise = +-0.125 (exact in binary32): NMSE = 1/64, SNR = 18.06 dB */
    enum { N = 4096 };
    static float x[N], y[N];
    for (int i = 0; i < N; i++) {
        x[i] = (i % 3 == 0) ? 1.0f : -1.0f;
        y[i] = x[i] + ((i % 5 < 2) ? 0.125f : -0.125f);
    }
    qf_tensor_metrics m;
    qf_metrics_compute(x, y, N, 0, &m);
    assert_near(m.nmse, 1.0 / 64, 1e-17, "nmse of +-1/8 noise on +-1");
    assert_near(m.snr_db, 10 * log10(64.0), 1e-12, "snr of +-1/8 noise on +-1");
    assert_near(m.rmse, 0.125, 1e-17, "rmse of +-1/8 noise");
    assert_near(m.max_abs, 0.125, 0, "max_abs of +-1/8 noise");

    /* Random: Gaussian signal, independent Gaussian noise at 1/10 the amplitude: 20 dB, and
     * cosine 1/sqrt(1.01). With n = 2^18 the estimates are within ~0.03 dB. */
    enum { M = 1 << 18 };
    float *a = malloc(M * sizeof *a), *b = malloc(M * sizeof *b);
    assert_non_null(a);
    assert_non_null(b);
    qf_rng r;
    qf_rng_seed(&r, 3);
    for (int i = 0; i < M; i++) {
        a[i] = (float)qf_rng_normal(&r);
        b[i] = a[i] + (float)(0.1 * qf_rng_normal(&r));
    }
    qf_metrics_compute(a, b, M, 0, &m);
    assert_near(m.snr_db, 20.0, 0.1, "snr of noise at 1/10 amplitude");
    assert_near(m.rmse, 0.1, 0.001, "rmse of noise with stddev 0.1");
    assert_near(m.cosine, 1.0 / sqrt(1.01), 1e-4, "cosine of signal + 1/10 noise");
    free(a);
    free(b);
}

static void test_roundtrip(void **state)
{
    (void)state;
    enum { R = 16, C = 256 };
    static float x[R * C], y[R * C];
    qf_synth_params p = qf_synth_defaults(QF_SYNTH_GAUSSIAN, 8);
    assert_int_equal(qf_synth_fill(&p, x, R, C), 0);

    qf_tensor_metrics m;
    assert_int_equal(qf_metrics_roundtrip(QF_FMT_F32, x, R, C, &m), 0);
    assert_int_equal(m.n, R * C);
    assert_near(m.nmse, 0.0, 0, "f32 round trip is exact");
    assert_near(m.snr_db, INFINITY, 0, "f32 round trip snr");
    assert_int_equal(m.bytes, R * C * 4);
    assert_near(m.bpw, 32.0, 0, "f32 bpw");

    /* int8_pc: per row the error is at most scale/2, so SNR is well above 30 dB even with
     * the outlier columns setting the scale; and the metrics equal those of the decode. */
    assert_int_equal(qf_metrics_roundtrip(QF_FMT_INT8_PC, x, R, C, &m), 0);
    assert_int_equal(m.bytes, R * qf_format_row_size(QF_FMT_INT8_PC, C));
    assert_near(m.bpw, 8.0 + 32.0 / C, 1e-12, "int8_pc bpw includes the row scale");
    if (!(m.snr_db > 30.0))
        fail_msg("int8_pc round trip snr %.3f dB, want > 30", m.snr_db);
    void *q = malloc(m.bytes);
    assert_non_null(q);
    assert_int_equal(qf_quantize(QF_FMT_INT8_PC, x, q, R, C), 0);
    assert_int_equal(qf_dequantize(QF_FMT_INT8_PC, q, y, R, C), 0);
    qf_tensor_metrics d;
    qf_metrics_compute(x, y, R * C, m.bytes, &d);
    assert_near(m.nmse, d.nmse, 0, "round trip = compute on the decode");
    assert_near(m.max_abs, d.max_abs, 0, "round trip max_abs = compute on the decode");
    free(q);

    /* shapes the format cannot hold are refused before anything is allocated or written */
    assert_int_equal(qf_metrics_roundtrip(QF_FMT_INT4_G32, x, R, 48, &m), QF_ESHAPE);
    assert_int_equal(qf_metrics_roundtrip(QF_FMT_INT4_G128, x, 1, 64, &m), QF_ESHAPE);
    assert_int_equal(qf_metrics_roundtrip(QF_FMT_INT8_PC, x, 0, C, &m), QF_ESHAPE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_identical),
        cmocka_unit_test(test_known_error),
        cmocka_unit_test(test_zero_vectors),
        cmocka_unit_test(test_empty_and_nan),
        cmocka_unit_test(test_snr_of_known_noise),
        cmocka_unit_test(test_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
