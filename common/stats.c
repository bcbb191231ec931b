/* stats.c - percentiles and summaries of raw benchmark samples (see qf_stats.h).
 *
 * Percentiles are R's type 7 (numpy's default "linear"): with the n samples sorted ascending
 * and h = (n - 1) p / 100, the value is x[floor h] + (h - floor h) (x[floor h + 1] - x[floor h]).
 * So p0 is the minimum, p100 the maximum, and the median of an even count is the mean of the
 * middle two. The caller's array is never reordered: both functions sort a private copy.
 * NaN samples sort after every number, so a NaN shows up in the max and upper percentiles
 * instead of making qsort's order undefined.
 * Called once per (format, op) after timing, on at most a few thousand samples: not hot.
 */
#include "qf_stats.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qf_err.h"

/* Copies of up to this many samples live on the stack, so the common case never allocates. */
#define STACK_SAMPLES 64

static int cmp_double(const void *pa, const void *pb)
{
    double a = *(const double *)pa, b = *(const double *)pb;
    if (isnan(a) || isnan(b))
        return isnan(a) - isnan(b);
    return (a > b) - (a < b);
}

/* The value a fraction frac of the way from order statistic a to the next one, b. */
static double interpolate(double a, double b, double frac)
{
    if (frac == 0.0 || a == b) /* also keeps inf - inf out of the sum */
        return a;
    return a + frac * (b - a);
}

/* Type 7 percentile of an ascending array. */
static double percentile_sorted(const double *s, size_t n, double p)
{
    double h = (double)(n - 1) * p / 100.0;
    size_t lo = (size_t)floor(h);
    if (lo >= n - 1)
        return s[n - 1];
    return interpolate(s[lo], s[lo + 1], h - (double)lo);
}

/* The k-th smallest (0-based) of x without a copy: O(n^2), only used when no scratch can be
 * had, so a percentile never fails. */
static double kth_smallest_nocopy(const double *x, size_t n, size_t k)
{
    for (size_t i = 0; i < n; i++) {
        size_t below = 0, equal = 0;
        for (size_t j = 0; j < n; j++) {
            int c = cmp_double(&x[j], &x[i]);
            below += c < 0;
            equal += c == 0;
        }
        if (below <= k && k < below + equal)
            return x[i];
    }
    assert(0 && "cmp_double is a total order, so some element has rank k");
    return x[0];
}

double qf_stats_percentile(const double *x, size_t n, double p)
{
    assert(x && n > 0 && p >= 0.0 && p <= 100.0);
    double stack[STACK_SAMPLES];
    double *s = n <= STACK_SAMPLES ? stack : malloc(n * sizeof *s);
    if (!s) {
        double h = (double)(n - 1) * p / 100.0;
        size_t lo = (size_t)floor(h);
        double a = kth_smallest_nocopy(x, n, lo);
        if (lo >= n - 1 || h == (double)lo)
            return a;
        return interpolate(a, kth_smallest_nocopy(x, n, lo + 1), h - (double)lo);
    }
    memcpy(s, x, n * sizeof *s);
    qsort(s, n, sizeof *s, cmp_double);
    double v = percentile_sorted(s, n, p);
    if (s != stack)
        free(s);
    return v;
}

int qf_stats_summarize(const double *x, size_t n, qf_summary *out)
{
    assert(x && n > 0 && out);
    double stack[STACK_SAMPLES];
    double *s = n <= STACK_SAMPLES ? stack : malloc(n * sizeof *s);
    if (!s)
        return QF_ENOMEM;
    memcpy(s, x, n * sizeof *s);
    qsort(s, n, sizeof *s, cmp_double);

    double sum = 0.0;
    for (size_t i = 0; i < n; i++)
        sum += s[i]; /* ascending order keeps the rounding error of positive sums small */
    out->n = n;
    out->median = percentile_sorted(s, n, 50.0);
    out->p10 = percentile_sorted(s, n, 10.0);
    out->p90 = percentile_sorted(s, n, 90.0);
    out->min = s[0];
    out->max = s[n - 1];
    out->mean = sum / (double)n;
    if (s != stack)
        free(s);
    return 0;
}
