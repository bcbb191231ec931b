/* qf_gptq.h - GPTQ (Frantar et al. 2022): error-feedback quantization of one linear layer.
 *
 * W is the layer's weight matrix (rows = output channels, cols = input channels, row-major
 * f32), X its calibration activations (n samples x cols, row-major f32). GPTQ quantizes W one
 * input column at a time and pushes each column's rounding error onto the columns not yet
 * quantized, weighted by the inverse Hessian of the layer's output error
 * (H = 2 X^T X / n), so ||W X^T - Ŵ X^T|| ends lower than rounding each weight to nearest.
 * The quantized bytes are an ordinary row-major matrix of one of the format table's 4-bit
 * formats (qf_gptq_supports): qf_dequantize decodes them to exactly the Ŵ the error feedback
 * used. docs/formats.md ("GPTQ") describes the algorithm and the per-format grids.
 *
 * Linear algebra (the Hessian, its Cholesky factors, the lazy batch updates) is OpenBLAS and
 * LAPACKE's. One call at a time per process when threads > 0: it sets OpenBLAS's thread count.
 * Called by `qfleet gptq` and by the suite job kinds; a 4096 x 4096 layer takes seconds.
 */
#ifndef QF_GPTQ_H
#define QF_GPTQ_H

#include <stdbool.h>
#include <stdint.h>

#include "qf_formats.h"

typedef struct qf_gptq_params {
    double percdamp;    /* dampening: percdamp * mean(diag H) added to diag H; >= 0, default 0.01 */
    bool   act_order;   /* quantize columns by decreasing diag H ("static groups": each block's
                         * grid is chosen from the original weights before any column moves) */
    int    threads;     /* threads for BLAS and the column loop; 0 = OpenBLAS's count */
} qf_gptq_params;

/* percdamp 0.01, no act-order, threads 0. */
qf_gptq_params qf_gptq_defaults(void);

typedef struct qf_gptq_stats {
    double  err_gptq;     /* ||W X^T - Ŵ X^T||_F^2, Ŵ = GPTQ's */
    double  err_rtn;      /* the same for round to nearest (qf_quantize, same format) */
    double  ref_norm2;    /* ||W X^T||_F^2, to make the two relative */
    double  seconds;      /* GPTQ: Hessian, factorisation, every column, bytes written */
    double  seconds_hessian;  /* of which 2 X^T X / n */
    double  seconds_factor;   /* of which H^-1's Cholesky factor (and act-order's reordering) */
    double  seconds_rtn;  /* qf_quantize of the same matrix */
    int64_t dead_cols;    /* input columns that are 0 in every sample (their weights are set 0) */
} qf_gptq_stats;

/* Whether GPTQ can write fmt (the table's 4-bit formats with a grid in gptq.c). */
bool qf_gptq_supports(qf_format fmt);

/* Quantizes W into dst (qf_format_row_size(fmt, cols) * rows bytes, caller-owned) with GPTQ
 * on calibration X. w_hat (optional, rows x cols): Ŵ as the error feedback used it. stats
 * (optional): both output errors on X and the times; NULL skips measuring RTN.
 * p NULL means qf_gptq_defaults(). Errors: QF_EFORMAT for a format GPTQ cannot write,
 * QF_ESHAPE for cols the format cannot hold, QF_EINVAL for sizes outside [1, 2^30], threads
 * outside [0, 256], a percdamp outside [0, 1e6) or a non-finite weight or activation, QF_ERANGE when the dampened Hessian is not positive
 * definite, QF_ENOMEM; each with a message. dst is undefined after an error. */
int qf_gptq_quantize(qf_format fmt, const float *w, int64_t rows, int64_t cols,
                     const float *x, int64_t n, const qf_gptq_params *p,
                     void *dst, float *w_hat, qf_gptq_stats *stats);

/* Fills st's err_gptq (dst as qf_dequantize decodes it), err_rtn and seconds_rtn (qf_quantize
 * of w in the same format) and ref_norm2, all on X (n x cols): the calibration set, as
 * qf_gptq_quantize does, or held-out activations. Shapes as qf_gptq_quantize's, already
 * valid. QF_ENOMEM. */
int qf_gptq_compare(qf_format fmt, const float *w, int64_t rows, int64_t cols, const void *dst,
                    const float *x, int64_t n, qf_gptq_stats *st);

/* ||W X^T - V X^T||_F^2 and ||W X^T||_F^2 (either output may be NULL) for W, V rows x cols
 * and X n x cols, in f32 products summed in double. QF_ENOMEM. */
int qf_gptq_output_error(const float *w, const float *v, int64_t rows, int64_t cols,
                         const float *x, int64_t n, double *err, double *ref_norm2);

/* Seeded synthetic calibration activations, n x cols: correlated channels (up to 64 latent
 * factors with a decaying spectrum, plus independent noise) and a few outlier channels with
 * ten times the scale, as real layer inputs have. seed picks the distribution (the loadings
 * and the outlier channels), stream the draws from it: stream 0 for calibration, another for
 * held-out samples of the same distribution. Same arguments, bit-identical values on every
 * platform (qf_rng, plain loops). QF_EINVAL for sizes < 1, QF_ENOMEM. */
int qf_gptq_synth_calib(uint64_t seed, uint64_t stream, int64_t n, int64_t cols, float *x);

#endif
