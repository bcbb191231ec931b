/* stats.c - the statistics of reports: the Mann-Whitney U test, percentile bootstrap
 * intervals of median ratios, the regression verdict, and change points of a history.
 *
 * All of it works on raw samples (seconds per repetition) and makes no assumption of
 * normality: timing samples are skewed and carry outliers (a preempted repetition), which is
 * why medians, ranks and resampling are used. Medians and percentiles are common/stats.c's
 * (type 7), so a median here is the median the run table shows.
 *
 * Determinism: the bootstrap draws from qf_rng seeded by the caller's seed alone, so the same
 * samples always give the same interval, on every platform. docs/reports.md states every rule
 * below for users. Called per compared pair (a few hundred per compare); the bootstrap loop
 * (resamples x 2 medians) is the only cost worth counting.
 */
#include "qf_report.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qf_err.h"
#include "qf_rng.h"
#include "qf_stats.h"

/* Largest side for the exact U distribution: its polynomial has na * nb + 1 terms. */
#define MWU_EXACT_MAX 50

typedef struct ranked {
    double x;
    int    side;   /* 0: a, 1: b */
} ranked;

static int cmp_ranked(const void *pa, const void *pb)
{
    double a = ((const ranked *)pa)->x, b = ((const ranked *)pb)->x;
    return (a > b) - (a < b);
}

/* P(U <= u) for sides m, n without ties: the counts of U are the coefficients of the
 * Gaussian binomial [m+n choose m](q) = prod_{k=1..m} (1 - q^(n+k)) / (1 - q^k). */
static int mwu_exact_cdf(size_t m, size_t n, double u, double *cdf)
{
    size_t deg = m * n;
    double *c = calloc(deg + 1, sizeof *c);
    if (!c)
        return QF_ENOMEM;
    c[0] = 1.0;
    size_t top = 0;                         /* current degree */
    for (size_t k = 1; k <= m; k++) {
        /* times (1 - q^(n+k)) */
        size_t s = n + k;
        for (size_t i = top + s; i >= s; i--)
            if (i <= deg)
                c[i] -= c[i - s];
        top += s;
        /* divided by (1 - q^k): the quotient's coefficients are running sums with step k */
        for (size_t i = k; i <= deg; i++)
            c[i] += c[i - k];
        top -= k;
    }
    double total = 0.0, below = 0.0;
    for (size_t i = 0; i <= deg; i++) {
        total += c[i];
        if ((double)i <= u + 1e-9)
            below += c[i];
    }
    free(c);
    *cdf = below / total;
    return 0;
}

int qf_mannwhitney(const double *a, size_t na, const double *b, size_t nb, double *u,
                   double *p)
{
    assert(a && b && na > 0 && nb > 0 && u && p);
    size_t n = na + nb;
    ranked *v = malloc(n * sizeof *v);
    if (!v)
        return QF_ENOMEM;
    for (size_t i = 0; i < na; i++)
        v[i] = (ranked){ a[i], 0 };
    for (size_t i = 0; i < nb; i++)
        v[na + i] = (ranked){ b[i], 1 };
    qsort(v, n, sizeof *v, cmp_ranked);
    /* average ranks over ties; the tie term sum(t^3 - t) corrects the variance */
    double rank_a = 0.0, ties = 0.0;
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j + 1 < n && v[j + 1].x == v[i].x)
            j++;
        double t = (double)(j - i + 1), mid = ((double)i + (double)j) / 2.0 + 1.0;
        for (size_t k = i; k <= j; k++)
            if (v[k].side == 0)
                rank_a += mid;
        ties += t * t * t - t;
        i = j + 1;
    }
    free(v);
    double m1 = (double)na, m2 = (double)nb;
    *u = rank_a - m1 * (m1 + 1.0) / 2.0;
    double mu = m1 * m2 / 2.0;
    if (ties == 0.0 && na <= MWU_EXACT_MAX && nb <= MWU_EXACT_MAX) {
        /* the distribution is symmetric about mu: the lower tail of min(U, mn - U) */
        double lo = *u <= mu ? *u : m1 * m2 - *u, cdf;
        if (mwu_exact_cdf(na, nb, lo, &cdf))
            return QF_ENOMEM;
        *p = fmin(1.0, 2.0 * cdf);
        return 0;
    }
    double nn = m1 + m2;
    double var = m1 * m2 / 12.0 * ((nn + 1.0) - ties / (nn * (nn - 1.0)));
    if (var <= 0.0) {          /* every value equal: no evidence of any difference */
        *p = 1.0;
        return 0;
    }
    double z = (fabs(*u - mu) - 0.5) / sqrt(var);
    *p = z <= 0.0 ? 1.0 : fmin(1.0, erfc(z / sqrt(2.0)));
    return 0;
}

/* The median of n values drawn with replacement from sorted[0..n), in O(n) without sorting:
 * the draw is a histogram of indexes into the sorted array (counts, room for n), and the
 * median's order statistics are found by walking it. The same value as sorting the drawn
 * values and taking qf_stats_percentile(50) (type 7: the middle one, or the mean of the two
 * middle ones), at a fraction of the cost; this is the bootstrap's inner loop. */
static double resampled_median(qf_rng *rng, const double *sorted, size_t n, size_t *counts)
{
    memset(counts, 0, n * sizeof *counts);
    for (size_t i = 0; i < n; i++)
        counts[qf_rng_u64(rng) % n]++;
    size_t lo_rank = (n - 1) / 2, hi_rank = n / 2, seen = 0;
    double lo = NAN;
    for (size_t k = 0; k < n; k++) {
        seen += counts[k];
        if (isnan(lo) && seen > lo_rank)
            lo = sorted[k];
        if (seen > hi_rank)
            return lo == sorted[k] ? lo : lo + 0.5 * (sorted[k] - lo);
    }
    assert(0 && "the counts add up to n");
    return lo;
}

static int cmp_double(const void *pa, const void *pb)
{
    double a = *(const double *)pa, b = *(const double *)pb;
    return (a > b) - (a < b);
}

int qf_ratio_interval(const double *num, size_t nn, const double *den, size_t nd,
                      const qf_change_opts *o, double *ratio, double *lo, double *hi)
{
    assert(num && den && nn > 0 && nd > 0 && o && o->resamples > 0);
    *ratio = qf_stats_percentile(num, nn, 50.0) / qf_stats_percentile(den, nd, 50.0);
    double *r = malloc(o->resamples * sizeof *r);
    double *sn = malloc(nn * sizeof *sn), *sd = malloc(nd * sizeof *sd);
    size_t *counts = malloc((nn > nd ? nn : nd) * sizeof *counts);
    int err = r && sn && sd && counts ? 0 : QF_ENOMEM;
    if (!err) {
        memcpy(sn, num, nn * sizeof *sn);
        memcpy(sd, den, nd * sizeof *sd);
        qsort(sn, nn, sizeof *sn, cmp_double);
        qsort(sd, nd, sizeof *sd, cmp_double);
        qf_rng rng;
        qf_rng_seed(&rng, o->seed);
        for (unsigned i = 0; i < o->resamples; i++) {
            double a = resampled_median(&rng, sn, nn, counts);
            r[i] = a / resampled_median(&rng, sd, nd, counts);
        }
        double tail = 100.0 * (1.0 - o->level) / 2.0;
        *lo = qf_stats_percentile(r, o->resamples, tail);
        *hi = qf_stats_percentile(r, o->resamples, 100.0 - tail);
    }
    free(r);
    free(sn);
    free(sd);
    free(counts);
    return err;
}

int qf_change_test(const double *base, size_t nb, const double *head, size_t nh,
                   const qf_change_opts *o, qf_change *out)
{
    assert(o && out && o->threshold >= 0 && o->alpha > 0 && o->level > 0 && o->level < 1);
    *out = (qf_change){ .ratio = NAN, .lo = NAN, .hi = NAN, .u = NAN, .p = NAN,
                        .verdict = QF_VERDICT_FEW };
    if (nb == 0 || nh == 0)
        return 0;
    out->ratio = qf_stats_percentile(head, nh, 50.0) / qf_stats_percentile(base, nb, 50.0);
    if (nb < 2 || nh < 2)
        return 0;
    int err = qf_mannwhitney(base, nb, head, nh, &out->u, &out->p);
    if (err)
        return err;
    out->verdict = QF_VERDICT_NOISE;
    /* the interval matters only for significant pairs; skipping it for the rest keeps a
     * compare of hundreds of unchanged keys cheap, and the interval is printed as "-" */
    if (!(out->p < o->alpha))
        return 0;
    err = qf_ratio_interval(head, nh, base, nb, o, &out->ratio, &out->lo, &out->hi);
    if (err)
        return err;
    if (out->ratio > 1.0 && out->hi >= 1.0 + o->threshold)
        out->verdict = QF_VERDICT_REGRESSION;
    else if (out->ratio < 1.0 && out->lo <= 1.0 / (1.0 + o->threshold))
        out->verdict = QF_VERDICT_IMPROVEMENT;
    else
        out->verdict = QF_VERDICT_SMALL;
    return 0;
}

const char *qf_verdict_name(qf_verdict v)
{
    switch (v) {
    case QF_VERDICT_NOISE: return "noise";
    case QF_VERDICT_SMALL: return "small";
    case QF_VERDICT_REGRESSION: return "regression";
    case QF_VERDICT_IMPROVEMENT: return "improvement";
    case QF_VERDICT_FEW: return "too few";
    }
    return "?";
}

/* The noise level of a series from its successive differences: 1.4826 MAD / sqrt 2, which a
 * few steps barely move (each step is one difference among n - 1). Floored at 1% of the
 * series' typical magnitude: a few nearly equal commits estimate almost no noise, and would
 * make a 0.5% wiggle a step, while a benchmark's run-to-run noise is rarely below 1%. */
static double noise_sigma(const double *y, size_t n, double *scratch)
{
    double level = qf_stats_percentile(y, n, 50.0);
    double floor_sigma = 1e-2 * fabs(level) + 1e-300;
    for (size_t i = 0; i + 1 < n; i++)
        scratch[i] = y[i + 1] - y[i];
    double med = qf_stats_percentile(scratch, n - 1, 50.0);
    for (size_t i = 0; i + 1 < n; i++)
        scratch[i] = fabs(scratch[i] - med);
    double s = 1.4826 * qf_stats_percentile(scratch, n - 1, 50.0) / sqrt(2.0);
    return s > floor_sigma ? s : floor_sigma;
}

int qf_changepoints(const double *y, size_t n, size_t *cps, size_t *n_cps)
{
    assert(y && cps && n_cps);
    *n_cps = 0;
    if (n < 3)   /* two points: a difference, but no noise to judge it against */
        return 0;
    /* optimal partitioning (Jackson et al. 2005): F[t] = min_s F[s] + cost(s, t) + beta, with
     * cost the squared error about the segment's mean (from prefix sums); O(n^2) for a
     * history of n commits */
    double *s1 = calloc(n + 1, sizeof *s1), *s2 = calloc(n + 1, sizeof *s2);
    double *f = calloc(n + 1, sizeof *f);
    size_t *last = calloc(n + 1, sizeof *last);
    int err = s1 && s2 && f && last ? 0 : QF_ENOMEM;
    if (!err) {
        double sigma = noise_sigma(y, n, f);   /* f is free scratch until the fit */
        double beta = 4.0 * sigma * sigma * log((double)(n > 3 ? n : 3));
        for (size_t i = 0; i < n; i++) {
            s1[i + 1] = s1[i] + y[i];
            s2[i + 1] = s2[i] + y[i] * y[i];
        }
        f[0] = -beta;
        for (size_t t = 1; t <= n; t++) {
            f[t] = INFINITY;
            for (size_t s = 0; s < t; s++) {
                double len = (double)(t - s), sum = s1[t] - s1[s];
                double cost = (s2[t] - s2[s]) - sum * sum / len;
                double v = f[s] + (cost > 0 ? cost : 0) + beta;
                if (v < f[t]) {
                    f[t] = v;
                    last[t] = s;
                }
            }
        }
        size_t k = 0;   /* walk back from n: segment starts, latest first */
        for (size_t t = n; last[t] > 0; t = last[t])
            cps[k++] = last[t];
        for (size_t i = 0; i < k / 2; i++) {
            size_t tmp = cps[i];
            cps[i] = cps[k - 1 - i];
            cps[k - 1 - i] = tmp;
        }
        *n_cps = k;
    }
    free(s1);
    free(s2);
    free(f);
    free(last);
    return err;
}
