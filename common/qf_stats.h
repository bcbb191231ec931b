/* qf_stats.h - summary statistics of raw benchmark samples.
 *
 * Benchmarks keep every sample; these summarize them the same way everywhere: the median and
 * percentiles by linear interpolation between order statistics (type 7, as R and numpy do),
 * so p50 of {1,2,3,4} is 2.5. The input array is not modified.
 */
#ifndef QF_STATS_H
#define QF_STATS_H

#include <stddef.h>

typedef struct qf_summary {
    size_t n;
    double median, p10, p90, min, max, mean;
} qf_summary;

/* Percentile p in [0, 100] of n > 0 samples. */
double qf_stats_percentile(const double *x, size_t n, double p);

/* Fills *out from n > 0 samples. QF_ENOMEM if scratch can't be had. */
int qf_stats_summarize(const double *x, size_t n, qf_summary *out);

#endif
