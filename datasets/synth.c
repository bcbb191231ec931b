/* synth.c - seeded synthetic LLM-like weight tensors (docs/datasets.md is the user's view).
 *
 * w[r][c] = (float)(body * (c is an outlier column ? outlier_scale : 1)), with body a draw
 * from the chosen distribution scaled to the requested standard deviation:
 *   gaussian:   stddev * N(0,1)
 *   laplace:    Laplace(0, b) with b = stddev / sqrt(2)        (variance 2 b^2)
 *   student-t:  stddev * sqrt((nu - 2) / nu) * t_nu            (variance nu / (nu - 2))
 * Two independent qf_rng streams come from the seed: the body stream (seeded with seed) draws
 * the weights in row-major order, one draw per weight; the outlier stream (seeded with
 * seed ^ OUTLIER_STREAM) picks the outlier columns. Keeping them apart means the same seed
 * gives the same body whatever outlier_channels is, so "with and without outliers" compares
 * like with like. Every operation is IEEE-exact or correctly rounded (qf_rng.h), so a seed
 * and parameters give the same bytes on every platform; test_synth checks a golden hash.
 * Called by benchmarks and suites once per tensor; cost is a few draws per weight.
 */
#include "qf_synth.h"

#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "qf_err.h"
#include "qf_rng.h"

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF   /* see rng.c: no fused multiply-add, same bits everywhere */
#endif

/* "outliers" in ASCII: any constant works, it only has to differ from 0. */
#define OUTLIER_STREAM 0x6f75746c69657273u

/* Student-t draws cost nu + 1 normals each, so nu is capped; beyond ~30 the body is
 * indistinguishable from a Gaussian anyway. nu <= 2 has no finite variance to scale. */
#define NU_MIN 3
#define NU_MAX 100

static const char *const k_dist_names[] = {
    [QF_SYNTH_GAUSSIAN]  = "gaussian",
    [QF_SYNTH_LAPLACE]   = "laplace",
    [QF_SYNTH_STUDENT_T] = "student-t",
};
#define N_DISTS ((int)(sizeof k_dist_names / sizeof k_dist_names[0]))

qf_synth_params qf_synth_defaults(qf_synth_dist dist, uint64_t seed)
{
    qf_synth_params p = {
        .dist = dist,
        .stddev = 0.02,
        .student_nu = 5,
        .outlier_channels = 4,
        .outlier_scale = 20.0,
        .seed = seed,
    };
    return p;
}

int qf_synth_dist_from_name(const char *name, qf_synth_dist *out)
{
    assert(name && out);
    for (int i = 0; i < N_DISTS; i++) {
        if (strcmp(name, k_dist_names[i]) == 0) {
            *out = (qf_synth_dist)i;
            return 0;
        }
    }
    return qf_errorf(QF_EPARSE, "synth: unknown distribution '%s' "
                     "(expected gaussian, laplace or student-t)", name);
}

const char *qf_synth_dist_name(qf_synth_dist dist)
{
    assert((unsigned)dist < (unsigned)N_DISTS);
    return k_dist_names[dist];
}

/* Parameters arrive from suite files and the command line, so each is checked and named. */
static int check_params(const qf_synth_params *p, int64_t nrows, int64_t ncols)
{
    if (nrows <= 0)
        return qf_errorf(QF_EINVAL, "synth: nrows = %" PRId64 " (must be positive)", nrows);
    if (ncols <= 0)
        return qf_errorf(QF_EINVAL, "synth: ncols = %" PRId64 " (must be positive)", ncols);
    if (nrows > INT64_MAX / ncols || (uint64_t)(nrows * ncols) > SIZE_MAX / sizeof(float))
        return qf_errorf(QF_EINVAL, "synth: %" PRId64 " x %" PRId64 " elements is too large",
                         nrows, ncols);
    if ((unsigned)p->dist >= (unsigned)N_DISTS)
        return qf_errorf(QF_EINVAL, "synth: dist = %d is not a distribution", (int)p->dist);
    if (!(p->stddev > 0.0) || !isfinite(p->stddev))
        return qf_errorf(QF_EINVAL, "synth: stddev = %g (must be positive and finite)",
                         p->stddev);
    if (p->dist == QF_SYNTH_STUDENT_T && (p->student_nu < NU_MIN || p->student_nu > NU_MAX))
        return qf_errorf(QF_EINVAL, "synth: student_nu = %d (must be %d..%d: the variance "
                         "needs nu > 2)", p->student_nu, NU_MIN, NU_MAX);
    if (p->outlier_channels < 0 || p->outlier_channels > ncols)
        return qf_errorf(QF_EINVAL, "synth: outlier_channels = %d (must be 0..ncols = %"
                         PRId64 ")", p->outlier_channels, ncols);
    if (!(p->outlier_scale > 0.0) || !isfinite(p->outlier_scale))
        return qf_errorf(QF_EINVAL, "synth: outlier_scale = %g (must be positive and finite)",
                         p->outlier_scale);
    return 0;
}

/* Uniform integer in [0, n) without modulo bias: reject the low 2^64 mod n values. */
static uint64_t rand_below(qf_rng *r, uint64_t n)
{
    uint64_t threshold = (0 - n) % n;
    for (;;) {
        uint64_t x = qf_rng_u64(r);
        if (x >= threshold)
            return x % n;
    }
}

/* Marks m distinct columns of n in mark[] with Floyd's algorithm: m draws, no n-sized index
 * array, every m-subset equally likely. */
static void pick_outliers(uint64_t seed, int64_t n, int m, bool *mark)
{
    qf_rng r;
    qf_rng_seed(&r, seed ^ OUTLIER_STREAM);
    for (int64_t j = n - m; j < n; j++) {
        int64_t t = (int64_t)rand_below(&r, (uint64_t)j + 1);
        if (mark[t])
            mark[j] = true;
        else
            mark[t] = true;
    }
}

int qf_synth_fill(const qf_synth_params *p, float *w, int64_t nrows, int64_t ncols)
{
    assert(p && w);
    int err = check_params(p, nrows, ncols);
    if (err)
        return err;

    bool *outlier = calloc((size_t)ncols, sizeof *outlier);
    if (!outlier)
        return qf_errorf(QF_ENOMEM, "synth: no memory for %" PRId64 " column flags", ncols);
    pick_outliers(p->seed, ncols, p->outlier_channels, outlier);

    double scale = p->stddev;
    if (p->dist == QF_SYNTH_LAPLACE)
        scale = p->stddev / sqrt(2.0);
    else if (p->dist == QF_SYNTH_STUDENT_T)
        scale = p->stddev * sqrt((double)(p->student_nu - 2) / (double)p->student_nu);

    qf_rng r;
    qf_rng_seed(&r, p->seed);
    for (int64_t i = 0; i < nrows; i++) {
        float *row = w + i * ncols;
        for (int64_t j = 0; j < ncols; j++) {
            double v;
            switch (p->dist) {
            case QF_SYNTH_LAPLACE:   v = qf_rng_laplace(&r, scale); break;
            case QF_SYNTH_STUDENT_T: v = scale * qf_rng_student_t(&r, p->student_nu); break;
            case QF_SYNTH_GAUSSIAN:
            default:                 v = scale * qf_rng_normal(&r); break;
            }
            if (outlier[j])
                v *= p->outlier_scale;
            row[j] = (float)v;
        }
    }
    free(outlier);
    return 0;
}
