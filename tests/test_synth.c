/* test_synth.c - the synthetic weight generator: reproducibility (including a golden hash per
 * distribution, so a run on another platform checks the bytes), the body's scale, exactly
 * outlier_channels columns scaled by outlier_scale, refusal of bad parameters, and names.
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

#include "qf_err.h"
#include "qf_synth.h"

#define assert_near(got, want, tol, what)                                                    \
    do {                                                                                     \
        double g_ = (got), w_ = (want), t_ = (tol);                                          \
        if (!(fabs(g_ - w_) <= t_))                                                          \
            fail_msg("%s: got %.17g, want %.17g (tolerance %.3g)", (what), g_, w_, t_);      \
    } while (0)

static float *fill_new(const qf_synth_params *p, int64_t nrows, int64_t ncols)
{
    float *w = malloc((size_t)(nrows * ncols) * sizeof *w);
    assert_non_null(w);
    assert_int_equal(qf_synth_fill(p, w, nrows, ncols), 0);
    return w;
}

/* FNV-1a 64 over each float's bit pattern taken as little-endian bytes, so the hash is the
 * same on a big-endian host for the same values. */
static uint64_t hash_floats(const float *w, int64_t n)
{
    uint64_t h = 0xcbf29ce484222325u;
    for (int64_t i = 0; i < n; i++) {
        uint32_t u;
        memcpy(&u, &w[i], sizeof u);
        for (int b = 0; b < 4; b++) {
            h ^= (u >> (8 * b)) & 0xffu;
            h *= 0x100000001b3u;
        }
    }
    return h;
}

static void test_defaults(void **state)
{
    (void)state;
    qf_synth_params p = qf_synth_defaults(QF_SYNTH_LAPLACE, 77);
    assert_int_equal(p.dist, QF_SYNTH_LAPLACE);
    assert_int_equal(p.seed, 77);
    assert_near(p.stddev, 0.02, 0, "default stddev");
    assert_int_equal(p.student_nu, 5);
    assert_int_equal(p.outlier_channels, 4);
    assert_near(p.outlier_scale, 20.0, 0, "default outlier_scale");
}

static void test_reproducible(void **state)
{
    (void)state;
    const int64_t R = 64, C = 128;
    for (int d = QF_SYNTH_GAUSSIAN; d <= QF_SYNTH_STUDENT_T; d++) {
        qf_synth_params p = qf_synth_defaults((qf_synth_dist)d, 1234);
        float *a = fill_new(&p, R, C);
        float *b = fill_new(&p, R, C);
        assert_memory_equal(a, b, (size_t)(R * C) * sizeof *a);
        p.seed = 1235;
        float *c = fill_new(&p, R, C);
        int64_t same = 0;
        for (int64_t i = 0; i < R * C; i++)
            same += a[i] == c[i];
        if (same > R * C / 100)
            fail_msg("%s: seeds 1234 and 1235 share %" PRId64 " of %" PRId64 " values",
                     qf_synth_dist_name((qf_synth_dist)d), same, R * C);
        free(a);
        free(b);
        free(c);
    }
}

static void test_golden_hash(void **state)
{
    (void)state;
    /* The exact bytes of a 16 x 64 tensor with default parameters, seed 42. These pin the
     * generator across platforms and compilers; a change here changes every synthetic dataset
     * (and the dataset manifests' sha256), so regenerate only on purpose. */
    static const uint64_t want[] = {
        [QF_SYNTH_GAUSSIAN]  = UINT64_C(0x2dc2edecacc5049d),
        [QF_SYNTH_LAPLACE]   = UINT64_C(0x0589392f493f9d0f),
        [QF_SYNTH_STUDENT_T] = UINT64_C(0x5804a58757649a23),
    };
    for (int d = QF_SYNTH_GAUSSIAN; d <= QF_SYNTH_STUDENT_T; d++) {
        qf_synth_params p = qf_synth_defaults((qf_synth_dist)d, 42);
        float *w = fill_new(&p, 16, 64);
        uint64_t h = hash_floats(w, 16 * 64);
        if (h != want[d])
            fail_msg("%s: hash 0x%016" PRIx64 ", want 0x%016" PRIx64 " (w[0] = %a)",
                     qf_synth_dist_name((qf_synth_dist)d), h, want[d], (double)w[0]);
        free(w);
    }
}

static void test_body_stddev(void **state)
{
    (void)state;
    const int64_t R = 256, C = 1024, n = R * C;
    /* relative tolerance on the sample stddev: Gaussian and Laplace converge fast
     * (standard errors ~0.14% and ~0.2%); Student-t(5) has an infinite fourth moment of x^2,
     * so its sample variance wanders more. */
    static const double tol[] = { 0.01, 0.015, 0.05 };
    for (int d = QF_SYNTH_GAUSSIAN; d <= QF_SYNTH_STUDENT_T; d++) {
        qf_synth_params p = qf_synth_defaults((qf_synth_dist)d, 9);
        p.outlier_channels = 0;
        p.stddev = 0.03;
        float *w = fill_new(&p, R, C);
        double s1 = 0, s2 = 0;
        for (int64_t i = 0; i < n; i++) {
            s1 += w[i];
            s2 += (double)w[i] * w[i];
        }
        double mean = s1 / n, sd = sqrt(s2 / n - mean * mean);
        char what[64];
        snprintf(what, sizeof what, "%s body stddev", qf_synth_dist_name((qf_synth_dist)d));
        assert_near(sd, 0.03, tol[d] * 0.03, what);
        snprintf(what, sizeof what, "%s body mean", qf_synth_dist_name((qf_synth_dist)d));
        assert_near(mean, 0.0, 6 * 0.03 / sqrt((double)n), what);
        free(w);
    }
}

/* Compares a tensor with outliers against the same seed without: the body stream does not
 * depend on the outlier count, so exactly the outlier columns differ, by outlier_scale. */
static void check_outliers(qf_synth_dist dist, int64_t R, int64_t C, int oc, double scale)
{
    qf_synth_params p = qf_synth_defaults(dist, 31337);
    p.outlier_channels = 0;
    float *base = fill_new(&p, R, C);
    p.outlier_channels = oc;
    p.outlier_scale = scale;
    float *w = fill_new(&p, R, C);

    int n_scaled = 0;
    for (int64_t c = 0; c < C; c++) {
        int64_t same = 0, scaled = 0;
        for (int64_t r = 0; r < R; r++) {
            double b = base[r * C + c], v = w[r * C + c];
            same += v == b;
            /* both are float roundings of one double, so the ratio is scale to 2^-23 */
            scaled += b != 0 && fabs(v / b - scale) <= scale * 0x1p-22;
        }
        if (scaled == R && scale != 1.0) {
            n_scaled++;
        } else if (same != R) {
            fail_msg("%s: column %" PRId64 " neither untouched nor scaled by %g "
                     "(%" PRId64 " of %" PRId64 " equal, %" PRId64 " scaled)",
                     qf_synth_dist_name(dist), c, scale, same, R, scaled);
        }
    }
    if (n_scaled != oc)
        fail_msg("%s %" PRId64 "x%" PRId64 ": %d columns scaled by %g, want %d",
                 qf_synth_dist_name(dist), R, C, n_scaled, scale, oc);
    free(base);
    free(w);
}

static void test_outlier_columns(void **state)
{
    (void)state;
    check_outliers(QF_SYNTH_GAUSSIAN, 64, 256, 4, 20.0);
    check_outliers(QF_SYNTH_LAPLACE, 32, 100, 7, 20.0);
    check_outliers(QF_SYNTH_STUDENT_T, 16, 64, 1, 8.0);
    check_outliers(QF_SYNTH_GAUSSIAN, 8, 16, 16, 20.0);   /* every column */
    check_outliers(QF_SYNTH_GAUSSIAN, 8, 16, 15, 20.0);   /* Floyd's algorithm near n */
    check_outliers(QF_SYNTH_GAUSSIAN, 8, 16, 0, 20.0);
}

static void test_outlier_rms(void **state)
{
    (void)state;
    /* The user's view: default parameters give 4 columns whose RMS is ~20x the median's. */
    const int64_t R = 512, C = 256;
    qf_synth_params p = qf_synth_defaults(QF_SYNTH_GAUSSIAN, 5);
    float *w = fill_new(&p, R, C);
    double rms[256], sorted[256];
    for (int64_t c = 0; c < C; c++) {
        double s = 0;
        for (int64_t r = 0; r < R; r++)
            s += (double)w[r * C + c] * w[r * C + c];
        rms[c] = sorted[c] = sqrt(s / R);
    }
    for (int i = 1; i < C; i++)     /* insertion sort: 256 values */
        for (int j = i; j > 0 && sorted[j - 1] > sorted[j]; j--) {
            double t = sorted[j];
            sorted[j] = sorted[j - 1];
            sorted[j - 1] = t;
        }
    double median = sorted[C / 2];
    assert_near(median, 0.02, 0.002, "median column RMS");
    int big = 0;
    for (int64_t c = 0; c < C; c++) {
        double ratio = rms[c] / median;
        if (ratio > 5) {
            big++;
            assert_near(ratio, 20.0, 3.0, "outlier column RMS / median");
        } else {
            assert_near(ratio, 1.0, 0.25, "body column RMS / median");
        }
    }
    assert_int_equal(big, 4);
    free(w);
}

static void test_invalid_params(void **state)
{
    (void)state;
    enum { R = 4, C = 8 };
    float w[R * C];
    const qf_synth_params ok = qf_synth_defaults(QF_SYNTH_STUDENT_T, 1);
    struct { const char *what; qf_synth_params p; int64_t nrows, ncols; } bad[] = {
        { "nrows 0", ok, 0, C },
        { "nrows -1", ok, -1, C },
        { "ncols 0", ok, R, 0 },
        { "nrows * ncols overflows", ok, INT64_MAX / 2, 4 },
        { "stddev 0", ok, R, C },
        { "stddev -1", ok, R, C },
        { "stddev NaN", ok, R, C },
        { "stddev inf", ok, R, C },
        { "nu 2", ok, R, C },
        { "nu 101", ok, R, C },
        { "outlier_channels -1", ok, R, C },
        { "outlier_channels > ncols", ok, R, C },
        { "outlier_scale 0", ok, R, C },
        { "outlier_scale inf", ok, R, C },
        { "dist 3", ok, R, C },
    };
    bad[4].p.stddev = 0;
    bad[5].p.stddev = -1;
    bad[6].p.stddev = NAN;
    bad[7].p.stddev = INFINITY;
    bad[8].p.student_nu = 2;
    bad[9].p.student_nu = 101;
    bad[10].p.outlier_channels = -1;
    bad[11].p.outlier_channels = C + 1;
    bad[12].p.outlier_scale = 0;
    bad[13].p.outlier_scale = INFINITY;
    bad[14].p.dist = (qf_synth_dist)3;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        for (int j = 0; j < R * C; j++)
            w[j] = 123.0f;
        int err = qf_synth_fill(&bad[i].p, w, bad[i].nrows, bad[i].ncols);
        if (err != QF_EINVAL)
            fail_msg("%s: got %s, want QF_EINVAL", bad[i].what, qf_err_name(err));
        assert_near(w[0], 123.0, 0, "buffer untouched on error");
    }
    /* the boundaries themselves are accepted; nu only matters for Student-t */
    qf_synth_params p = ok;
    p.student_nu = 3;
    assert_int_equal(qf_synth_fill(&p, w, R, C), 0);
    p.student_nu = 100;
    p.outlier_channels = C;
    assert_int_equal(qf_synth_fill(&p, w, R, C), 0);
    p = qf_synth_defaults(QF_SYNTH_GAUSSIAN, 1);
    p.student_nu = 0;
    assert_int_equal(qf_synth_fill(&p, w, R, C), 0);
}

static void test_names(void **state)
{
    (void)state;
    static const char *const names[] = { "gaussian", "laplace", "student-t" };
    for (int d = QF_SYNTH_GAUSSIAN; d <= QF_SYNTH_STUDENT_T; d++) {
        assert_string_equal(qf_synth_dist_name((qf_synth_dist)d), names[d]);
        qf_synth_dist got = (qf_synth_dist)-1;
        assert_int_equal(qf_synth_dist_from_name(names[d], &got), 0);
        assert_int_equal(got, d);
    }
    qf_synth_dist got;
    assert_int_equal(qf_synth_dist_from_name("normal", &got), QF_EPARSE);
    assert_int_equal(qf_synth_dist_from_name("Gaussian", &got), QF_EPARSE);
    assert_int_equal(qf_synth_dist_from_name("", &got), QF_EPARSE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_reproducible),
        cmocka_unit_test(test_golden_hash),
        cmocka_unit_test(test_body_stddev),
        cmocka_unit_test(test_outlier_columns),
        cmocka_unit_test(test_outlier_rms),
        cmocka_unit_test(test_invalid_params),
        cmocka_unit_test(test_names),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
