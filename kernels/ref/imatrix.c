/* imatrix.c - the importance-weighted reference quantizers (qf_imatrix.h).
 *
 * Each row function reproduces ggml's quantize_row_<fmt>_impl (ggml-quants.c) with
 * quant_weights given, byte for byte: ggml_quantize_chunk calls those whenever an imatrix is
 * passed. They all build a per-weight error weight from the column's importance qw and the
 * weight's own size, w = qw * sqrt(sigma2 + x^2), where sigma2 is a mean square of the
 * surrounding weights (the row's for the legacy formats, 2x the super-block's for q3_K .. q5_K
 * and iq4_nl, 1x the super-block's for q2_K; q6_K uses qw alone), then fit with the searches
 * the plain quantizers use (ref_util.h: make_qx_quants, make_qkx3_quants) plus one of its
 * own here, make_qp_quants, which quantizes the K-quants' sub-block scales weighted by the
 * sub-blocks' total weight instead of mapping the largest to the top level. The packing and
 * the final requantization from the scales as stored are the plain quantizers' (ref_util.h).
 *
 * Float arithmetic is ggml's, in ggml's order, and must not be contracted into fused
 * multiply-adds (see legacy.c). Quantization runs once per tensor; clarity wins over speed.
 */
#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "qf_err.h"
#include "qf_formats.h"
#include "qf_imatrix.h"
#include "qf_ref.h"
#include "ref_util.h"

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

/* make_qkx3_quants' search: from 0.1 below to 1.7 above nmax in steps of 0.05. */
#define QKX3_RMIN   -0.9f
#define QKX3_RDELTA 0.05f
#define QKX3_NSTEP  36

typedef void (*weighted_row_fn)(const float *x, void *y, int64_t k, const float *qw);

/* w[j] = qw[j] * sqrt(sigma2 + x[j]^2) for n weights. */
static void error_weights(const float *x, const float *qw, int n, float sigma2, float *w)
{
    for (int j = 0; j < n; j++)
        w[j] = qw[j] * sqrtf(sigma2 + x[j] * x[j]);
}

static float sum_squares(const float *x, int64_t n)
{
    float s = 0;
    for (int64_t j = 0; j < n; j++)
        s += x[j] * x[j];
    return s;
}

static float sum(const float *x, int n)
{
    float s = 0;
    for (int j = 0; j < n; j++)
        s += x[j];
    return s;
}

/* ggml's make_qp_quants: non-negative x (sub-block scales or mins) to levels 0..nmax with a
 * shared scale, minimizing sum qw (x - scale * l)^2. It tries 9 scales around max / nmax,
 * keeps the best, then runs up to five passes of coordinate descent on single levels and
 * returns the least-squares scale of the levels kept. Levels are stored as ggml stores them,
 * through uint8_t (a negative x, which the fits above do not produce, would wrap). */
static float fit_positive(int n, int nmax, const float *x, uint8_t *L, const float *qw)
{
    float max = 0;
    for (int i = 0; i < n; i++)
        max = max > x[i] ? max : x[i];      /* ggml's MAX(max, x): a NaN is not sticky */
    if (max < QF_REF_GROUP_EPS) {
        memset(L, 0, (size_t)n);
        return 0.f;
    }

    float iscale = (float)nmax / max;
    for (int i = 0; i < n; i++)
        L[i] = (uint8_t)qf_ref_nearest(iscale * x[i]);
    float scale = 1 / iscale;
    float best_mse = 0;
    for (int i = 0; i < n; i++) {
        float diff = x[i] - scale * (float)L[i];
        best_mse += qw[i] * diff * diff;
    }
    for (int step = -4; step <= 4; step++) {
        if (step == 0)
            continue;
        float iscale_is = (0.1f * (float)step + (float)nmax) / max;
        float scale_is = 1 / iscale_is;
        float mse = 0;
        for (int i = 0; i < n; i++) {
            int l = qf_ref_nearest(iscale_is * x[i]);
            l = l < nmax ? l : nmax;
            float diff = x[i] - scale_is * (float)l;
            mse += qw[i] * diff * diff;
        }
        if (mse < best_mse) {
            best_mse = mse;
            iscale = iscale_is;
        }
    }

    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = qf_ref_nearest(iscale * x[i]);
        l = l < nmax ? l : nmax;
        L[i] = (uint8_t)l;
        sumlx += qw[i] * x[i] * (float)l;
        suml2 += qw[i] * (float)l * (float)l;
    }
    for (int pass = 0; pass < 5; pass++) {
        int changed = 0;
        for (int i = 0; i < n; i++) {
            const float w = qw[i];
            /* the sums without level i: its best level given the others is x * sl2 / slx */
            float slx = sumlx - w * x[i] * (float)L[i];
            float sl2 = suml2 - w * (float)L[i] * (float)L[i];
            if (slx > 0 && sl2 > 0) {
                int new_l = qf_ref_nearest(x[i] * sl2 / slx);
                new_l = new_l < nmax ? new_l : nmax;
                if (new_l != L[i]) {
                    slx += w * x[i] * (float)new_l;
                    sl2 += w * (float)new_l * (float)new_l;
                    if (slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = (uint8_t)new_l;
                        sumlx = slx;
                        suml2 = sl2;
                        changed++;
                    }
                }
            }
        }
        if (!changed)
            break;
    }
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

/* --- the legacy formats: 32-weight blocks, sigma2 the row's mean square -------------------- */

static float row_sigma2(const float *x, int64_t k)
{
    return sum_squares(x, k) / (float)k;
}

static void pack_q4(const uint8_t L[32], uint8_t qs[16])
{
    for (int j = 0; j < 16; j++)
        qs[j] = (uint8_t)(L[j] | L[j + 16] << 4);
}

/* The symmetric legacy formats: x ~ d * (l - nmax), levels in L, d returned. */
static float fit_symmetric_block(const float *xb, const float *qw, int nmax, float sigma2,
                                 int8_t L[32])
{
    float w[32];
    error_weights(xb, qw, 32, sigma2, w);
    return qf_ref_fit_symmetric(xb, w, 32, nmax, L);
}

static void q4_0_weighted(const float *x, void *vy, int64_t k, const float *qw)
{
    qf_block_q4_0 *y = vy;
    const float sigma2 = row_sigma2(x, k);
    for (int64_t b = 0; b < k / QF_QK4_0; b++) {
        int8_t L[QF_QK4_0];
        const float d = fit_symmetric_block(x + b * QF_QK4_0, qw + b * QF_QK4_0, 8, sigma2, L);
        y[b].d = qf_fp32_to_fp16(d);
        pack_q4((const uint8_t *)L, y[b].qs);
    }
}

static void q5_0_weighted(const float *x, void *vy, int64_t k, const float *qw)
{
    qf_block_q5_0 *y = vy;
    const float sigma2 = row_sigma2(x, k);
    for (int64_t b = 0; b < k / QF_QK5_0; b++) {
        int8_t L[QF_QK5_0];
        const float d = fit_symmetric_block(x + b * QF_QK5_0, qw + b * QF_QK5_0, 16, sigma2, L);
        y[b].d = qf_fp32_to_fp16(d);
        qf_ref_pack_q5((const uint8_t *)L, y[b].qs, y[b].qh);
    }
}

/* The affine legacy formats: x ~ d * l - min with levels 0..nmax. */
static float fit_affine_block(const float *xb, const float *qw, int nmax, float sigma2,
                              uint8_t L[32], float *min)
{
    float w[32];
    error_weights(xb, qw, 32, sigma2, w);
    return qf_ref_fit_affine(xb, w, 32, nmax, L, min, QKX3_RMIN, QKX3_RDELTA, QKX3_NSTEP, 0, 1);
}

static void q4_1_weighted(const float *x, void *vy, int64_t k, const float *qw)
{
    qf_block_q4_1 *y = vy;
    const float sigma2 = row_sigma2(x, k);
    for (int64_t b = 0; b < k / QF_QK4_1; b++) {
        uint8_t L[QF_QK4_1];
        float min;
        const float d = fit_affine_block(x + b * QF_QK4_1, qw + b * QF_QK4_1, 15, sigma2, L, &min);
        y[b].d = qf_fp32_to_fp16(d);
        y[b].m = qf_fp32_to_fp16(-min);
        pack_q4(L, y[b].qs);
    }
}

static void q5_1_weighted(const float *x, void *vy, int64_t k, const float *qw)
{
    qf_block_q5_1 *y = vy;
    const float sigma2 = row_sigma2(x, k);
    for (int64_t b = 0; b < k / QF_QK5_1; b++) {
        uint8_t L[QF_QK5_1];
        float min;
        const float d = fit_affine_block(x + b * QF_QK5_1, qw + b * QF_QK5_1, 31, sigma2, L, &min);
        y[b].d = qf_fp32_to_fp16(d);
        y[b].m = qf_fp32_to_fp16(-min);
        qf_ref_pack_q5(L, y[b].qs, y[b].qh);
    }
}

/* --- the K-quants: 256-weight super-blocks ----------------------------------------------- */

static void q2_K_weighted(const float *x, void *vy, int64_t k, const float *qw)
{
    qf_block_q2_K *y = vy;
    for (int64_t b = 0; b < k / QF_QK_K; b++, x += QF_QK_K, qw += QF_QK_K) {
        const float sigma2 = sum_squares(x, QF_QK_K) / QF_QK_K;
        uint8_t L[QF_QK_K], Ls[16], Lm[16];
        float scales[16], mins[16], sw[16];
        for (int j = 0; j < 16; j++) {
            float w[16];
            error_weights(x + 16 * j, qw + 16 * j, 16, sigma2, w);
            sw[j] = sum(w, 16);
            scales[j] = qf_ref_fit_affine(x + 16 * j, w, 16, 3, L + 16 * j, &mins[j],
                                          QKX3_RMIN, QKX3_RDELTA, QKX3_NSTEP, 0, 1);
        }
        const float dm = fit_positive(16, 15, scales, Ls, sw);
        const float mm = fit_positive(16, 15, mins, Lm, sw);
        y[b].d = qf_fp32_to_fp16(dm);
        y[b].dmin = qf_fp32_to_fp16(mm);
        for (int j = 0; j < 16; j++)
            y[b].scales[j] = (uint8_t)(Ls[j] | Lm[j] << 4);
        qf_ref_q2_K_finish(x, L, &y[b]);
    }
}

static void q3_K_weighted(const float *x, void *vy, int64_t k, const float *qw)
{
    qf_block_q3_K *y = vy;
    for (int64_t b = 0; b < k / QF_QK_K; b++, x += QF_QK_K, qw += QF_QK_K) {
        const float sigma2 = 2 * sum_squares(x, QF_QK_K) / QF_QK_K;
        int8_t L[QF_QK_K], Ls[16];
        float scales[16], sw[16];
        for (int j = 0; j < 16; j++) {
            float w[16];
            error_weights(x + 16 * j, qw + 16 * j, 16, sigma2, w);
            sw[j] = sum(w, 16);
            scales[j] = qf_ref_fit_symmetric(x + 16 * j, w, 16, 4, L + 16 * j);
        }
        /* the sub-block scales are signed: a symmetric fit of them, levels offset by 32 */
        const float d = qf_ref_fit_symmetric(scales, sw, 16, 32, Ls);
        int sc[16];
        for (int j = 0; j < 16; j++)
            sc[j] = Ls[j];
        qf_ref_q3_K_finish(x, sc, d, L, &y[b]);
    }
}

/* q4_K and q5_K: 8 sub-blocks of 32, affine fits, then 6-bit scales and mins chosen by
 * fit_positive weighted by each sub-block's total weight. */
static void k4_weighted_fit(const float *x, const float *qw, int nmax, uint8_t *L,
                            uint8_t ls[8], uint8_t lm[8], float *d, float *dmin)
{
    const float sigma2 = 2 * sum_squares(x, QF_QK_K) / QF_QK_K;
    float scales[8], mins[8], sw[8];
    for (int j = 0; j < 8; j++) {
        float w[32];
        error_weights(x + 32 * j, qw + 32 * j, 32, sigma2, w);
        sw[j] = sum(w, 32);
        scales[j] = qf_ref_fit_affine(x + 32 * j, w, 32, nmax, L + 32 * j, &mins[j],
                                      QKX3_RMIN, QKX3_RDELTA, QKX3_NSTEP, 0, 1);
    }
    *d = fit_positive(8, 63, scales, ls, sw);
    *dmin = fit_positive(8, 63, mins, lm, sw);
}

static void q4_K_weighted(const float *x, void *vy, int64_t k, const float *qw)
{
    qf_block_q4_K *y = vy;
    for (int64_t b = 0; b < k / QF_QK_K; b++, x += QF_QK_K, qw += QF_QK_K) {
        uint8_t L[QF_QK_K], ls[8], lm[8];
        float d, dmin;
        k4_weighted_fit(x, qw, 15, L, ls, lm, &d, &dmin);
        qf_ref_q4_K_finish(x, L, ls, lm, d, dmin, &y[b]);
    }
}

static void q5_K_weighted(const float *x, void *vy, int64_t k, const float *qw)
{
    qf_block_q5_K *y = vy;
    for (int64_t b = 0; b < k / QF_QK_K; b++, x += QF_QK_K, qw += QF_QK_K) {
        uint8_t L[QF_QK_K], ls[8], lm[8];
        float d, dmin;
        k4_weighted_fit(x, qw, 31, L, ls, lm, &d, &dmin);
        for (int j = 0; j < 8; j++) {      /* ggml caps here (and not for q4_K) */
            ls[j] = ls[j] < 63 ? ls[j] : 63;
            lm[j] = lm[j] < 63 ? lm[j] : 63;
        }
        qf_ref_q5_K_finish(x, L, ls, lm, d, dmin, &y[b]);
    }
}

static void q6_K_weighted(const float *x, void *vy, int64_t k, const float *qw)
{
    qf_block_q6_K *y = vy;
    for (int64_t b = 0; b < k / QF_QK_K; b++)
        qf_ref_q6_K_block(x + b * QF_QK_K, qw + b * QF_QK_K, &y[b]);
}

/* --- iq4_nl: each 32-weight block is its own super-block ---------------------------------- */

static void iq4_nl_weighted(const float *x, void *vy, int64_t k, const float *qw)
{
    qf_block_iq4_nl *y = vy;
    uint8_t L[QF_QK4_NL] = {0};
    for (int64_t b = 0; b < k / QF_QK4_NL; b++) {
        const float *xb = x + b * QF_QK4_NL;
        /* ggml: sigma2 = sum x^2, then *= 2/32 (not the same rounding as 2 * sum / 32 for
         * every input, so written its way) */
        float sigma2 = sum_squares(xb, QF_QK4_NL);
        sigma2 *= 2.f / QF_QK4_NL;
        float w[QF_QK4_NL];
        error_weights(xb, qw + b * QF_QK4_NL, QF_QK4_NL, sigma2, w);
        qf_ref_iq4_nl_block(xb, w, L, &y[b], 7);
    }
}

/* The formats ggml weights, by our format enum; the rest quantize unweighted. */
static const weighted_row_fn weighted_rows[QF_FMT_COUNT] = {
    [QF_FMT_Q4_0] = q4_0_weighted,
    [QF_FMT_Q4_1] = q4_1_weighted,
    [QF_FMT_Q5_0] = q5_0_weighted,
    [QF_FMT_Q5_1] = q5_1_weighted,
    [QF_FMT_Q2_K] = q2_K_weighted,
    [QF_FMT_Q3_K] = q3_K_weighted,
    [QF_FMT_Q4_K] = q4_K_weighted,
    [QF_FMT_Q5_K] = q5_K_weighted,
    [QF_FMT_Q6_K] = q6_K_weighted,
    [QF_FMT_IQ4_NL] = iq4_nl_weighted,
};

bool qf_quantize_uses_importance(qf_format fmt)
{
    assert(fmt < QF_FMT_COUNT);
    return weighted_rows[fmt] != NULL;
}

int qf_quantize_weighted(qf_format fmt, const float *src, void *dst, int64_t nrows,
                         int64_t ncols, const float *importance)
{
    assert(fmt < QF_FMT_COUNT && src != NULL && dst != NULL);
    const weighted_row_fn row = weighted_rows[fmt];
    if (!importance || !row)
        return qf_quantize(fmt, src, dst, nrows, ncols);
    if (nrows <= 0)
        return qf_errorf(QF_ESHAPE, "format %s: %" PRId64 " rows (must be positive)",
                         qf_format_get(fmt)->name, nrows);
    int err = qf_format_check_cols(fmt, ncols);
    if (err)
        return err;
    for (int64_t j = 0; j < ncols; j++)
        if (!(importance[j] >= 0.0f) || isinf(importance[j]))
            return qf_errorf(QF_EINVAL, "importance of column %" PRId64 " is %g (must be "
                             "finite and >= 0)", j, (double)importance[j]);

    const size_t rs = qf_format_row_size(fmt, ncols);
    for (int64_t r = 0; r < nrows; r++)
        row(src + r * ncols, (char *)dst + (size_t)r * rs, ncols, importance);
    return 0;
}
