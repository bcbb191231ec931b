/* test_report_stats.c - the statistics of reports/stats.c: exact Mann-Whitney p-values
 * against brute-force enumeration, the tie-corrected normal approximation, the regression
 * verdict's error rates on seeded simulated samples, bootstrap intervals and change points.
 *
 * The error-rate tests are the acceptance numbers: 1,000 A/A pairs and 1,000 pairs
 * with a 5% slowdown, each side n = 10 samples with a 2% coefficient of variation, compared
 * at the defaults (alpha 0.01, threshold 5%): fewer than 1% of A/A pairs may be flagged and
 * at least 95% of the slowdowns must be. Samples come from qf_rng with fixed seeds, so the
 * counts are the same on every run and platform; they are printed for the record.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <string.h>

#include "qf_report.h"
#include "qf_rng.h"

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

#define assert_near(actual, expected, tol)                                              \
    do {                                                                                \
        double a_ = (actual), e_ = (expected);                                          \
        if (!(fabs(a_ - e_) <= (tol)))                                                  \
            fail_msg("%s = %.17g, expected %.17g (tolerance %g)", #actual, a_, e_,     \
                     (double)(tol));                                                    \
    } while (0)

/* Expected values enumerate every assignment of the pooled values to the two sides
 * (python3 itertools.combinations), counting U <= observed and U >= observed. */
static void mannwhitney_exact(void **state)
{
    (void)state;
    double u, p;
    const double a1[] = { 1, 2, 3 }, b1[] = { 4, 5, 6 };
    assert_int_equal(qf_mannwhitney(a1, 3, b1, 3, &u, &p), 0);
    assert_near(u, 0, 0);
    assert_near(p, 0.1, 1e-12);   /* 2 / C(6, 3) */

    const double a2[] = { 1, 3, 5, 7, 9 }, b2[] = { 2, 4, 6, 8, 10 };
    assert_int_equal(qf_mannwhitney(a2, 5, b2, 5, &u, &p), 0);
    assert_near(u, 10, 0);
    assert_near(p, 0.6904761904761905, 1e-12);

    const double a3[] = { 1.5, 2.5, 7, 8 }, b3[] = { 3, 4, 5, 6, 9, 10, 11 };
    assert_int_equal(qf_mannwhitney(a3, 4, b3, 7, &u, &p), 0);
    assert_near(u, 8, 0);
    assert_near(p, 0.3151515151515151, 1e-12);

    double a4[10], b4[10];
    for (int i = 0; i < 10; i++) {
        a4[i] = 20 - i;        /* order must not matter */
        b4[i] = i + 1;
    }
    assert_int_equal(qf_mannwhitney(a4, 10, b4, 10, &u, &p), 0);
    assert_near(u, 100, 0);
    assert_near(p, 2.0 / 184756.0, 1e-15);   /* 2 / C(20, 10) */
}

/* With ties: the normal approximation, variance m n / 12 ((N + 1) - sum(t^3 - t) / (N (N - 1)))
 * and a continuity correction of 0.5; expected value worked out by hand:
 * a = {1,1,2,2,3}, b = {2,3,3,4,4}: ranks 1.5 1.5 | 4 4 4 | 7 7 7 | 9.5 9.5, R_a = 18,
 * U = 3, mu = 12.5, ties 6 + 24 + 24 + 6 = 60, var = 25/12 (11 - 60/90) = 21.527...,
 * z = (9.5 - 0.5) / sqrt(var) = 1.9397..., p = erfc(z / sqrt 2). */
static void mannwhitney_ties(void **state)
{
    (void)state;
    const double a[] = { 1, 1, 2, 2, 3 }, b[] = { 2, 3, 3, 4, 4 };
    double u, p;
    assert_int_equal(qf_mannwhitney(a, 5, b, 5, &u, &p), 0);
    assert_near(u, 3, 1e-12);
    double var = 25.0 / 12.0 * (11.0 - 60.0 / 90.0);
    assert_near(p, erfc((9.5 - 0.5) / sqrt(var) / sqrt(2.0)), 1e-12);
    /* every value equal: no evidence at all */
    const double same[] = { 2, 2, 2 };
    assert_int_equal(qf_mannwhitney(same, 3, same, 3, &u, &p), 0);
    assert_near(p, 1.0, 0);
}

/* n samples around mean with a coefficient of variation cv (normal noise). */
static void draw(qf_rng *r, double *x, size_t n, double mean, double cv)
{
    for (size_t i = 0; i < n; i++)
        x[i] = mean * (1.0 + cv * qf_rng_normal(r));
}

static size_t flagged_of_1000(uint64_t seed, double slowdown)
{
    qf_rng r;
    qf_rng_seed(&r, seed);
    qf_change_opts o = QF_CHANGE_OPTS_DEFAULT;
    size_t flagged = 0;
    for (int i = 0; i < 1000; i++) {
        double base[10], head[10];
        draw(&r, base, 10, 1e-3, 0.02);
        draw(&r, head, 10, 1e-3 * (1.0 + slowdown), 0.02);
        qf_change c;
        assert_int_equal(qf_change_test(base, 10, head, 10, &o, &c), 0);
        flagged += c.verdict == QF_VERDICT_REGRESSION;
    }
    return flagged;
}

static void aa_pairs_rarely_flagged(void **state)
{
    (void)state;
    size_t n = flagged_of_1000(1, 0.0);
    printf("A/A: %zu of 1000 pairs flagged as regressions\n", n);
    if (n >= 10)
        fail_msg("A/A: %zu of 1000 pairs flagged, expected fewer than 10 (1%%)", n);
}

static void slowdown_5pct_flagged(void **state)
{
    (void)state;
    size_t n = flagged_of_1000(2, 0.05);
    printf("5%% slowdown: %zu of 1000 pairs flagged as regressions\n", n);
    if (n < 950)
        fail_msg("5%% slowdown: %zu of 1000 pairs flagged, expected at least 950 (95%%)", n);
}

/* A faster head is an improvement, never a regression; a tiny significant change is small. */
static void verdicts(void **state)
{
    (void)state;
    qf_rng r;
    qf_rng_seed(&r, 3);
    double base[20], head[20];
    qf_change_opts o = QF_CHANGE_OPTS_DEFAULT;
    qf_change c;
    draw(&r, base, 20, 1.0, 0.002);
    draw(&r, head, 20, 0.8, 0.002);
    assert_int_equal(qf_change_test(base, 20, head, 20, &o, &c), 0);
    assert_int_equal(c.verdict, QF_VERDICT_IMPROVEMENT);
    assert_true(c.lo <= c.ratio && c.ratio <= c.hi);
    assert_near(c.ratio, 0.8, 0.01);
    draw(&r, head, 20, 1.01, 0.002);   /* +1%: significant, surely under 5% */
    assert_int_equal(qf_change_test(base, 20, head, 20, &o, &c), 0);
    assert_int_equal(c.verdict, QF_VERDICT_SMALL);
    assert_int_equal(qf_change_test(base, 1, head, 20, &o, &c), 0);
    assert_int_equal(c.verdict, QF_VERDICT_FEW);
    assert_int_equal(qf_change_test(base, 0, head, 20, &o, &c), 0);
    assert_true(isnan(c.ratio));
}

/* The interval is deterministic for a seed, contains the point estimate, and narrows as the
 * samples grow. */
static void ratio_interval(void **state)
{
    (void)state;
    qf_rng r;
    qf_rng_seed(&r, 4);
    double a[200], b[200];
    draw(&r, a, 200, 2.0, 0.05);
    draw(&r, b, 200, 1.0, 0.05);
    qf_change_opts o = QF_CHANGE_OPTS_DEFAULT;
    double q, lo, hi, q2, lo2, hi2;
    assert_int_equal(qf_ratio_interval(a, 10, b, 10, &o, &q, &lo, &hi), 0);
    assert_int_equal(qf_ratio_interval(a, 10, b, 10, &o, &q2, &lo2, &hi2), 0);
    assert_near(lo2, lo, 0);
    assert_near(hi2, hi, 0);
    assert_true(lo <= q && q <= hi);
    assert_int_equal(qf_ratio_interval(a, 200, b, 200, &o, &q2, &lo2, &hi2), 0);
    assert_true(lo2 <= q2 && q2 <= hi2);
    assert_near(q2, 2.0, 0.03);
    if (!(hi2 - lo2 < hi - lo))
        fail_msg("interval of n=200 [%g, %g] is not narrower than n=10's [%g, %g]", lo2, hi2,
                 lo, hi);
}

static void changepoints_step_and_flat(void **state)
{
    (void)state;
    qf_rng r;
    qf_rng_seed(&r, 5);
    double y[40];
    size_t cps[40], n;
    /* flat noisy histories of several lengths: no change point */
    for (size_t len = 2; len <= 40; len += 7) {
        draw(&r, y, len, 10.0, 0.01);
        assert_int_equal(qf_changepoints(y, len, cps, &n), 0);
        if (n != 0)
            fail_msg("flat history of %zu points: %zu change points, the first at %zu", len, n,
                     cps[0]);
    }
    /* a 10% step at 12 of 30, 1% noise: exactly one, at 12 */
    draw(&r, y, 30, 10.0, 0.01);
    for (size_t i = 12; i < 30; i++)
        y[i] *= 1.1;
    assert_int_equal(qf_changepoints(y, 30, cps, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(cps[0], 12);
    /* two steps, down then up again */
    draw(&r, y, 30, 10.0, 0.01);
    for (size_t i = 8; i < 20; i++)
        y[i] *= 0.85;
    assert_int_equal(qf_changepoints(y, 30, cps, &n), 0);
    assert_int_equal(n, 2);
    assert_int_equal(cps[0], 8);
    assert_int_equal(cps[1], 20);
    /* exactly constant: none, and one point: none */
    for (size_t i = 0; i < 10; i++)
        y[i] = 3.0;
    assert_int_equal(qf_changepoints(y, 10, cps, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(qf_changepoints(y, 1, cps, &n), 0);
    assert_int_equal(n, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(mannwhitney_exact),
        cmocka_unit_test(mannwhitney_ties),
        cmocka_unit_test(aa_pairs_rarely_flagged),
        cmocka_unit_test(slowdown_5pct_flagged),
        cmocka_unit_test(verdicts),
        cmocka_unit_test(ratio_interval),
        cmocka_unit_test(changepoints_step_and_flat),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
