/* test_stats.c - qf_stats: type 7 percentiles and summaries against values numpy gives.
 *
 * Expected values were computed with numpy.percentile(x, p) (method "linear", R's type 7),
 * so a mismatch here means the interpolation rule drifted, not rounding. The inputs are
 * checked byte for byte after each call: the functions must sort a copy, never the caller's.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <string.h>

#include "qf_stats.h"

#define N_OF(a) (sizeof(a) / sizeof((a)[0]))

/* cmocka's float assertion does not print both sides in older releases; this one does. */
#define assert_close(actual, expected)                                                  \
    do {                                                                                \
        double a_ = (actual), e_ = (expected);                                          \
        if (!(fabs(a_ - e_) <= 1e-12 * (1.0 + fabs(e_))))                               \
            fail_msg("%s = %.17g, expected %.17g", #actual, a_, e_);                    \
    } while (0)

static void percentile_even_count(void **state)
{
    (void)state;
    const double x[] = { 1, 2, 3, 4 };
    assert_close(qf_stats_percentile(x, N_OF(x), 50), 2.5);
    assert_close(qf_stats_percentile(x, N_OF(x), 0), 1.0);
    assert_close(qf_stats_percentile(x, N_OF(x), 100), 4.0);
    assert_close(qf_stats_percentile(x, N_OF(x), 25), 1.75);
    assert_close(qf_stats_percentile(x, N_OF(x), 90), 3.7);
}

static void percentile_one_to_ten(void **state)
{
    (void)state;
    const double x[] = { 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 };
    assert_close(qf_stats_percentile(x, N_OF(x), 10), 1.9);
    assert_close(qf_stats_percentile(x, N_OF(x), 90), 9.1);
    assert_close(qf_stats_percentile(x, N_OF(x), 50), 5.5);
    assert_close(qf_stats_percentile(x, N_OF(x), 33), 3.97);
}

static void percentile_unsorted_input_untouched(void **state)
{
    (void)state;
    double x[] = { 9.5, -1.0, 3.25, 7.0, 0.5, 3.25, 12.0 };
    double copy[N_OF(x)];
    memcpy(copy, x, sizeof x);
    /* sorted: -1, 0.5, 3.25, 3.25, 7, 9.5, 12 */
    assert_close(qf_stats_percentile(x, N_OF(x), 50), 3.25);
    assert_close(qf_stats_percentile(x, N_OF(x), 10), -0.1);
    assert_close(qf_stats_percentile(x, N_OF(x), 90), 10.5);
    assert_memory_equal(x, copy, sizeof x);
}

static void summarize_known_values(void **state)
{
    (void)state;
    double x[] = { 10, 1, 9, 2, 8, 3, 7, 4, 6, 5 };
    double copy[N_OF(x)];
    memcpy(copy, x, sizeof x);
    qf_summary s;
    memset(&s, 0xff, sizeof s);
    assert_int_equal(qf_stats_summarize(x, N_OF(x), &s), 0);
    assert_int_equal(s.n, N_OF(x));
    assert_close(s.median, 5.5);
    assert_close(s.p10, 1.9);
    assert_close(s.p90, 9.1);
    assert_close(s.min, 1.0);
    assert_close(s.max, 10.0);
    assert_close(s.mean, 5.5);
    assert_memory_equal(x, copy, sizeof x);
}

static void summarize_single_sample(void **state)
{
    (void)state;
    const double x[] = { 0.125 };
    qf_summary s;
    assert_int_equal(qf_stats_summarize(x, 1, &s), 0);
    assert_int_equal(s.n, 1);
    assert_close(s.median, 0.125);
    assert_close(s.p10, 0.125);
    assert_close(s.p90, 0.125);
    assert_close(s.min, 0.125);
    assert_close(s.max, 0.125);
    assert_close(s.mean, 0.125);
    for (double p = 0; p <= 100; p += 12.5)
        assert_close(qf_stats_percentile(x, 1, p), 0.125);
}

/* More samples than the stack copy holds, so the heap path runs too: 0, 1, ..., 999 in a
 * scrambled order, whose type 7 percentile p is exactly 9.99 p. */
static void summarize_many_samples(void **state)
{
    (void)state;
    enum { N = 1000 };
    static double x[N];
    for (size_t i = 0; i < N; i++)
        x[i] = (double)((i * 337) % N); /* 337 is coprime with 1000: a permutation */
    double first = x[0], last = x[N - 1];
    qf_summary s;
    assert_int_equal(qf_stats_summarize(x, N, &s), 0);
    assert_close(s.median, 499.5);
    assert_close(s.p10, 99.9);
    assert_close(s.p90, 899.1);
    assert_close(s.min, 0.0);
    assert_close(s.max, 999.0);
    assert_close(s.mean, 499.5);
    assert_close(qf_stats_percentile(x, N, 37), 369.63);
    assert_close(x[0], first);
    assert_close(x[N - 1], last);
}

/* Equal infinite neighbours must not interpolate to inf - inf = NaN. */
static void percentile_infinities(void **state)
{
    (void)state;
    const double x[] = { 1.0, INFINITY, INFINITY };
    assert_true(isinf(qf_stats_percentile(x, N_OF(x), 75)));
    assert_close(qf_stats_percentile(x, N_OF(x), 0), 1.0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(percentile_even_count),
        cmocka_unit_test(percentile_one_to_ten),
        cmocka_unit_test(percentile_unsorted_input_untouched),
        cmocka_unit_test(summarize_known_values),
        cmocka_unit_test(summarize_single_sample),
        cmocka_unit_test(summarize_many_samples),
        cmocka_unit_test(percentile_infinities),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
