/* qf_synth.h - seeded synthetic LLM-like weight tensors (docs/datasets.md describes them).
 *
 * Real transformer weights are roughly zero-mean with heavier-than-Gaussian tails and a few
 * input channels (columns) whose weights are much larger: the outliers that make 4-bit hard.
 * A generator draws each weight from a body distribution (Gaussian, Laplace or Student-t) with
 * the given standard deviation, then multiplies a few seeded columns by outlier_scale (x20 by
 * default). Same seed, same parameters: bit-identical tensor on every platform (qf_rng).
 */
#ifndef QF_SYNTH_H
#define QF_SYNTH_H

#include <stdint.h>

typedef enum qf_synth_dist {
    QF_SYNTH_GAUSSIAN,
    QF_SYNTH_LAPLACE,
    QF_SYNTH_STUDENT_T,
} qf_synth_dist;

typedef struct qf_synth_params {
    qf_synth_dist dist;
    double   stddev;          /* standard deviation of the body (default 0.02), > 0 */
    int      student_nu;      /* degrees of freedom for Student-t (default 5), 3..100 */
    int      outlier_channels;/* columns scaled by outlier_scale (default 4), 0..ncols */
    double   outlier_scale;   /* default 20, > 0 */
    uint64_t seed;
} qf_synth_params;

/* The defaults above for the given distribution and seed. */
qf_synth_params qf_synth_defaults(qf_synth_dist dist, uint64_t seed);

/* "gaussian" | "laplace" | "student-t" -> dist; QF_EPARSE (with a message) if unknown. */
int qf_synth_dist_from_name(const char *name, qf_synth_dist *out);
const char *qf_synth_dist_name(qf_synth_dist dist);

/* Fills w (nrows x ncols, row-major: rows are output channels, columns input channels).
 * QF_EINVAL with a message naming the parameter for non-positive sizes or parameters out of
 * range (w is then untouched); QF_ENOMEM if the column flags cannot be allocated. */
int qf_synth_fill(const qf_synth_params *p, float *w, int64_t nrows, int64_t ncols);

#endif
