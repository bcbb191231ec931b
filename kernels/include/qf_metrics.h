/* qf_metrics.h - tensor-level quality metrics of a reconstruction against its original.
 *
 * All sums are accumulated in double. Definitions (docs/metrics.md is the one place they are
 * written down): err = x - y, RMSE = sqrt(mean(err^2)), NMSE = sum(err^2) / sum(x^2),
 * SNR dB = 10 log10(sum(x^2) / sum(err^2)), max abs error, cosine = x.y / (|x| |y|).
 * Edge cases: a perfect reconstruction has SNR = +inf (reported as such, JSON writes null),
 * an all-zero original gives NMSE = 0 if y is zero too, else +inf (SNR = -10 log10 NMSE
 * throughout, so -inf there); cosine of a zero vector is 0 unless both are zero (then 1), and
 * is clamped to [-1, 1]. n = 0 counts as a perfect reconstruction (bpw 0). NaN inputs give NaN
 * metrics (max_abs included).
 */
#ifndef QF_METRICS_H
#define QF_METRICS_H

#include <stddef.h>
#include <stdint.h>

#include "qf_formats.h"

typedef struct qf_tensor_metrics {
    int64_t n;          /* elements compared */
    double  rmse;
    double  nmse;
    double  snr_db;
    double  max_abs;
    double  cosine;
    size_t  bytes;      /* bytes of the quantized tensor (0 if not given) */
    double  bpw;        /* bits per weight: 8 * bytes / n */
} qf_tensor_metrics;

/* Compares reconstruction y with original x (n elements). bytes may be 0. */
void qf_metrics_compute(const float *x, const float *y, int64_t n, size_t bytes,
                        qf_tensor_metrics *out);

/* Quantizes x (nrows x ncols) to fmt with the reference quantizer, decodes it, and fills *out.
 * Allocates scratch; returns QF_ESHAPE / QF_ENOMEM like qf_quantize. */
int qf_metrics_roundtrip(qf_format fmt, const float *x, int64_t nrows, int64_t ncols,
                         qf_tensor_metrics *out);

#endif
