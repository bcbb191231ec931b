/* kquants.c - reference kernels of the GGUF K-quants q2_K .. q6_K and their activation q8_K.
 *
 * A K-quant row is a run of 256-weight super-blocks. Each super-block splits into sub-blocks of
 * 16 or 32 weights that get their own scale (and min); those sub-block scales are themselves
 * quantized to 4 or 6 bits against one binary16 super-scale. The quantizers here reproduce
 * llama.cpp's quantize_row_<fmt>_ref (ggml-quants.c, no importance matrix) byte for byte: the
 * same searches, constants and iteration counts, and the same float operations in the same
 * order, because a different rounding anywhere can flip one level and so one byte. That is why
 * the code keeps ggml's float (not double) sums, its left-to-right products such as (w * x) * l,
 * and its magic-number rounding, even where a cleaner formula would come to mind.
 * The dot products accumulate like ggml's generic (non-SIMD) vec_dot: exact integer sums per
 * sub-block, then float scaling in ggml's order (eight float lanes for q3_K .. q6_K).
 * One deliberate difference: for an all-zero q8_K block ggml leaves bsums unwritten, we zero them.
 * The sub-block fits and each format's tail (scales stored, levels re-derived, packed) are
 * exported through ref_util.h: the importance-weighted quantizers (imatrix.c) differ from these
 * only in the weights and in how the sub-block scales are chosen.
 * Callers: kernels/formats.c (the traits table), the tests and the benchmarks; quantize runs
 * once per tensor, the dot products once per row of a matvec, so clarity wins over speed here.
 */
#include <assert.h>
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "qf_formats.h"
#include "qf_ref.h"
#include "ref_util.h"

/* Byte-exactness needs a * b + c to round twice, as ggml's reference build does. GCC in ISO C
 * mode (-std=c11, as CMakeLists.txt sets) never fuses; clang fuses within an expression on
 * targets with FMA (arm64, x86 with -mfma) unless told not to. */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

/* --- helpers shared by the quantizers --------------------------------------------------------- */

static int clamp_int(int v, int lo, int hi)
{
    return v < lo ? lo : v > hi ? hi : v;
}

/* Sums of a symmetric trial: levels l = clamp(round(iscale * x), -nmax, nmax - 1) weighted by
 * qw (importance weights) or, without them, by x^2, so that sumlx / suml2 is the least-squares
 * scale for those levels. */
static void sym_trial(const float *x, const float *qw, int n, int nmax, float iscale, int8_t *L,
                      float *sumlx, float *suml2)
{
    float slx = 0, sl2 = 0;
    for (int i = 0; i < n; i++) {
        int l = clamp_int(qf_ref_nearest(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)(l + nmax);
        float w = qw ? qw[i] : x[i] * x[i];
        slx += w * x[i] * (float)l;
        sl2 += w * (float)l * (float)l;
    }
    *sumlx = slx;
    *suml2 = sl2;
}

/* Symmetric scale for n <= 32 values, levels 0..2*nmax-1 (offset by nmax) into L; ggml's
 * make_qx_quants with rmse_type 1 (qw NULL: weights x^2). Starting from the scale that maps
 * the largest magnitude to -nmax, it tries 18 slightly different scales and keeps the one
 * whose least-squares refit explains most of the weighted energy. Returns the scale (which
 * is negative when the largest magnitude is positive: the extreme maps to level -nmax, the
 * side with one more level). Shared with the importance-weighted quantizers (ref_util.h). */
float qf_ref_fit_symmetric(const float *x, const float *qw, int n, int nmax, int8_t *L)
{
    float amax;
    const float max = qf_ref_signed_absmax(x, n, &amax);
    if (amax < QF_REF_GROUP_EPS) {
        memset(L, 0, (size_t)n);
        return 0.f;
    }

    float sumlx, suml2;
    sym_trial(x, qw, n, nmax, (float)-nmax / max, L, &sumlx, &suml2);
    float scale = suml2 != 0 ? sumlx / suml2 : 0.0f;
    float best = scale * sumlx;

    int8_t trial[32];
    for (int step = -9; step <= 9; step++) {
        if (step == 0)
            continue;
        float iscale = -((float)nmax + 0.1f * (float)step) / max;
        sym_trial(x, qw, n, nmax, iscale, trial, &sumlx, &suml2);
        /* sumlx^2 / suml2 is the energy explained; compare without dividing */
        if (suml2 > 0 && sumlx * sumlx > best * suml2) {
            memcpy(L, trial, (size_t)n);
            scale = sumlx / suml2;
            best = scale * sumlx;
        }
    }
    return scale;
}

/* Symmetric scale for q3_K's 16-weight sub-blocks (ggml's make_q3_quants with do_rmse): levels
 * -nmax..nmax-1, then up to five passes of coordinate descent that move one level at a time
 * while the x^2-weighted fit improves. Levels are returned offset by nmax, except that an
 * all-zero sub-block gets raw zeros (level -nmax), as in ggml; its scale is 0 so it decodes to
 * zero either way. */
static float fit_q3(const float *x, int n, int nmax, int8_t *L)
{
    float amax;
    const float max = qf_ref_signed_absmax(x, n, &amax);
    if (amax < QF_REF_GROUP_EPS) {
        memset(L, 0, (size_t)n);
        return 0.f;
    }

    float iscale = (float)-nmax / max;
    float sumlx = 0, suml2 = 0;
    for (int i = 0; i < n; i++) {
        int l = clamp_int(qf_ref_nearest(iscale * x[i]), -nmax, nmax - 1);
        L[i] = (int8_t)l;
        float w = x[i] * x[i];
        sumlx += w * x[i] * (float)l;
        suml2 += w * (float)l * (float)l;
    }

    for (int pass = 0; pass < 5; pass++) {
        int changed = 0;
        for (int i = 0; i < n; i++) {
            float w = x[i] * x[i];
            /* the sums without weight i: its best level given the others is x * sl2 / slx */
            float slx = sumlx - w * x[i] * (float)L[i];
            if (slx > 0) {
                float sl2 = suml2 - w * (float)L[i] * (float)L[i];
                int new_l = clamp_int(qf_ref_nearest(x[i] * sl2 / slx), -nmax, nmax - 1);
                if (new_l != L[i]) {
                    slx += w * x[i] * (float)new_l;
                    sl2 += w * (float)new_l * (float)new_l;
                    if (sl2 > 0 && slx * slx * suml2 > sumlx * sumlx * sl2) {
                        L[i] = (int8_t)new_l;
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
    for (int i = 0; i < n; i++)
        L[i] = (int8_t)(L[i] + nmax);
    return suml2 > 0.0f ? sumlx / suml2 : 0.0f;
}

/* Affine fit x ~ scale * l - the_min with levels 0..nmax for n <= 32 values (ggml's
 * make_qkx2_quants). The min is clamped to <= 0 so that zero stays representable. From the
 * plain min/max fit it tries nstep + 1 scales iscale = (nmax + rmin + rdelta * step) / range,
 * solves weighted least squares for scale and min at each trial's levels, and keeps the trial
 * with the smallest weighted error (absolute if use_mad, else squared). The range uses the
 * best min so far, which can come close to max; with guarded set a trial level is taken as
 * ggml's make_qkx3_quants (the importance-weighted quantizers' fit) takes it, v > 0 ?
 * round(min(v, nmax)) : 0, which differs from the clamp only for huge or NaN v. */
float qf_ref_fit_affine(const float *x, const float *weights, int n, int nmax, uint8_t *L,
                        float *the_min, float rmin, float rdelta, int nstep, int use_mad,
                        int guarded)
{
    float min = x[0], max = x[0];
    float sum_w = weights[0];
    float sum_x = sum_w * x[0];
    for (int i = 1; i < n; i++) {
        if (x[i] < min)
            min = x[i];
        if (x[i] > max)
            max = x[i];
        sum_w += weights[i];
        sum_x += weights[i] * x[i];
    }
    if (min > 0)
        min = 0;
    if (max == min) {          /* all values equal and <= 0: the min alone represents them */
        memset(L, 0, (size_t)n);
        *the_min = -min;
        return 0.f;
    }

    float iscale = (float)nmax / (max - min);
    float scale = 1 / iscale;
    float best_error = 0;
    for (int i = 0; i < n; i++) {
        L[i] = (uint8_t)clamp_int(qf_ref_nearest(iscale * (x[i] - min)), 0, nmax);
        float diff = scale * (float)L[i] + min - x[i];
        diff = use_mad ? fabsf(diff) : diff * diff;
        best_error += weights[i] * diff;
    }

    uint8_t trial[32];
    for (int step = 0; step <= nstep; step++) {
        iscale = (rmin + rdelta * (float)step + (float)nmax) / (max - min);
        float sum_l = 0, sum_l2 = 0, sum_xl = 0;
        for (int i = 0; i < n; i++) {
            const float v = iscale * (x[i] - min);
            int l;
            if (guarded)
                l = v > 0 ? qf_ref_nearest(v < (float)nmax ? v : (float)nmax) : 0;
            else
                l = clamp_int(qf_ref_nearest(v), 0, nmax);
            trial[i] = (uint8_t)l;
            float w = weights[i];
            sum_l += w * (float)l;
            sum_l2 += w * (float)l * (float)l;
            sum_xl += w * (float)l * x[i];
        }
        /* the 2x2 normal equations of min over (scale, min); D is their determinant */
        float D = sum_w * sum_l2 - sum_l * sum_l;
        if (D > 0) {
            float this_scale = (sum_w * sum_xl - sum_x * sum_l) / D;
            float this_min = (sum_l2 * sum_x - sum_l * sum_xl) / D;
            if (this_min > 0) {    /* a positive min would lose zero: refit the scale alone */
                this_min = 0;
                this_scale = sum_xl / sum_l2;
            }
            float error = 0;
            for (int i = 0; i < n; i++) {
                float diff = this_scale * (float)trial[i] + this_min - x[i];
                diff = use_mad ? fabsf(diff) : diff * diff;
                error += weights[i] * diff;
            }
            if (error < best_error) {
                memcpy(L, trial, (size_t)n);
                best_error = error;
                scale = this_scale;
                min = this_min;
            }
        }
    }
    *the_min = -min;
    return scale;
}

/* q2_K and q3_K keep two bits of every weight in qs: weight 128h + 32s + l (h < 2, s < 4,
 * l < 32) is bits 2s..2s+1 of qs[32h + l]. L holds 256 levels 0..3. */
static void pack_2bit(const uint8_t *L, uint8_t *qs)
{
    for (int h = 0; h < 2; h++)
        for (int l = 0; l < 32; l++) {
            const uint8_t *q = L + 128 * h + l;
            qs[32 * h + l] = (uint8_t)(q[0] | (q[32] << 2) | (q[64] << 4) | (q[96] << 6));
        }
}

static int unpack_2bit(const uint8_t *qs, int i)
{
    return (qs[32 * (i / 128) + i % 32] >> (2 * ((i / 32) % 4))) & 3;
}

/* q4_K and q5_K keep the low four bits of weight 64p + 32t + l in nibble t of qs[32p + l]. */
static void pack_4bit(const uint8_t *L, uint8_t *qs)
{
    for (int p = 0; p < 4; p++)
        for (int l = 0; l < 32; l++)
            qs[32 * p + l] = (uint8_t)((L[64 * p + l] & 0xF) | ((L[64 * p + l + 32] & 0xF) << 4));
}

static int unpack_4bit(const uint8_t *qs, int i)
{
    return (qs[32 * (i / 64) + i % 32] >> (4 * ((i / 32) % 2))) & 0xF;
}

/* q3_K's sixteen 6-bit scales in 12 bytes: the low nibble of scale j is nibble j / 8 of byte
 * j % 8, its high two bits are bits 2(j / 4).. of byte 8 + j % 4. */
static void pack_q3_scales(const int *sc, uint8_t *scales)
{
    memset(scales, 0, 12);
    for (int j = 0; j < 16; j++) {
        scales[j % 8] |= (uint8_t)((sc[j] & 0xF) << (4 * (j / 8)));
        scales[8 + j % 4] |= (uint8_t)((sc[j] >> 4) << (2 * (j / 4)));
    }
}

static int unpack_q3_scale(const uint8_t *scales, int j)
{
    int lo = (scales[j % 8] >> (4 * (j / 8))) & 0xF;
    int hi = (scales[8 + j % 4] >> (2 * (j / 4))) & 3;
    return lo | (hi << 4);
}

/* q4_K and q5_K's eight 6-bit scales and eight 6-bit mins in 12 bytes: sub-blocks 0..3 keep
 * theirs in the low six bits of bytes j and j + 4; sub-blocks 4..7 keep their low nibbles in
 * byte j + 4 and their top two bits in the spare high bits of bytes j - 4 and j. */
static void pack_k4_scales(const uint8_t *ls, const uint8_t *lm, uint8_t *scales)
{
    for (int j = 0; j < 8; j++) {
        if (j < 4) {
            scales[j] = ls[j];
            scales[j + 4] = lm[j];
        } else {
            scales[j + 4] = (uint8_t)((ls[j] & 0xF) | ((lm[j] & 0xF) << 4));
            scales[j - 4] |= (uint8_t)((ls[j] >> 4) << 6);
            scales[j] |= (uint8_t)((lm[j] >> 4) << 6);
        }
    }
}

static void unpack_k4_scale(const uint8_t *scales, int j, int *sc, int *m)
{
    if (j < 4) {
        *sc = scales[j] & 63;
        *m = scales[j + 4] & 63;
    } else {
        *sc = (scales[j + 4] & 0xF) | ((scales[j - 4] >> 6) << 4);
        *m = (scales[j + 4] >> 4) | ((scales[j] >> 6) << 4);
    }
}

/* The affine sub-block fits of q4_K and q5_K: 8 sub-blocks of 32, weights |x| + rms(x). */
static void fit_affine_32(const float *x, int nmax, float rmin, float rdelta, int nstep,
                          uint8_t *L, float *scales, float *mins)
{
    for (int j = 0; j < 8; j++) {
        const float *xs = x + 32 * j;
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++)
            sum_x2 += xs[l] * xs[l];
        float av_x = sqrtf(sum_x2 / 32);
        float weights[32];
        for (int l = 0; l < 32; l++)
            weights[l] = av_x + fabsf(xs[l]);
        scales[j] = qf_ref_fit_affine(xs, weights, 32, nmax, L + 32 * j, &mins[j], rmin, rdelta,
                                      nstep, 0, 0);
    }
}

/* q4_K and q5_K share everything but the level range: fit, quantize the sub-block scales and
 * mins to 6 bits against the largest of each (ls, lm; super-scales d, dmin), then k4_finish. */
static void quantize_k4_like(const float *x, int nmax, float rmin, float rdelta, int nstep,
                             uint8_t *L, uint8_t ls[8], uint8_t lm[8], float *d, float *dmin)
{
    float scales[8], mins[8];
    fit_affine_32(x, nmax, rmin, rdelta, nstep, L, scales, mins);

    float max_scale = 0, max_min = 0;  /* scales and mins are >= 0 after removing the min */
    for (int j = 0; j < 8; j++) {
        if (scales[j] > max_scale)
            max_scale = scales[j];
        if (mins[j] > max_min)
            max_min = mins[j];
    }

    float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    for (int j = 0; j < 8; j++) {
        /* ggml narrows to uint8 before capping at 63; keep that order for odd inputs */
        uint8_t s = (uint8_t)qf_ref_nearest(inv_scale * scales[j]);
        uint8_t m = (uint8_t)qf_ref_nearest(inv_min * mins[j]);
        ls[j] = s < 63 ? s : 63;
        lm[j] = m < 63 ? m : 63;
    }
    *d = max_scale / 63.f;
    *dmin = max_min / 63.f;
}

/* Stores the 6-bit sub-block scales and mins (ls, lm, 0..63) and the super-scales, then
 * re-derives every level from the scales as stored (after binary16 rounding), so levels and
 * stored scales agree. L comes in with the fit's levels: a sub-block whose stored scale is 0
 * keeps them. */
static void k4_finish(const float *x, int nmax, const uint8_t ls[8], const uint8_t lm[8],
                      float d, float dmin, qf_half *d_out, qf_half *dmin_out,
                      uint8_t *scales_out, uint8_t *L)
{
    pack_k4_scales(ls, lm, scales_out);
    *d_out = qf_fp32_to_fp16(d);
    *dmin_out = qf_fp32_to_fp16(dmin);

    float d_all = qf_fp16_to_fp32(*d_out), dmin_all = qf_fp16_to_fp32(*dmin_out);
    for (int j = 0; j < 8; j++) {
        int sc, m;
        unpack_k4_scale(scales_out, j, &sc, &m);
        const float dj = d_all * (float)sc;
        if (!dj)
            continue;          /* a zero scale keeps the fit's levels; they decode to -min */
        const float dm = dmin_all * (float)m;
        for (int i = 0; i < 32; i++)
            L[32 * j + i] = (uint8_t)clamp_int(qf_ref_nearest((x[32 * j + i] + dm) / dj), 0, nmax);
    }
}

static void check_row(const void *x, const void *y, int64_t k)
{
    assert(x != NULL && y != NULL);
    assert(k >= 0 && k % QF_QK_K == 0);
    (void)x;
    (void)y;
    (void)k;
}

/* --- q2_K ------------------------------------------------------------------------------------- */

void qf_quantize_row_q2_K_ref(const float *x, void *vy, int64_t k)
{
    check_row(x, vy, k);
    qf_block_q2_K *y = vy;
    const float q4scale = 15.f;

    for (int64_t b = 0; b < k / QF_QK_K; b++, x += QF_QK_K) {
        uint8_t L[QF_QK_K];
        float scales[16], mins[16];
        float max_scale = 0, max_min = 0;
        for (int j = 0; j < 16; j++) {
            float weights[16];
            for (int l = 0; l < 16; l++)
                weights[l] = fabsf(x[16 * j + l]);
            /* absolute error: with only four levels, squared error chases outliers */
            scales[j] = qf_ref_fit_affine(x + 16 * j, weights, 16, 3, L + 16 * j, &mins[j],
                                          -0.5f, 0.1f, 15, 1, 0);
            if (scales[j] > max_scale)
                max_scale = scales[j];
            if (mins[j] > max_min)
                max_min = mins[j];
        }

        /* 4-bit sub-block scales in the low nibbles, 4-bit mins in the high nibbles; unsigned
         * shifts give ggml's bytes without relying on shifting negative ints */
        if (max_scale > 0) {
            float iscale = q4scale / max_scale;
            for (int j = 0; j < 16; j++)
                y[b].scales[j] = (uint8_t)qf_ref_nearest(iscale * scales[j]);
            y[b].d = qf_fp32_to_fp16(max_scale / q4scale);
        } else {
            memset(y[b].scales, 0, sizeof y[b].scales);
            y[b].d = qf_fp32_to_fp16(0.f);
        }
        if (max_min > 0) {
            float iscale = q4scale / max_min;
            for (int j = 0; j < 16; j++)
                y[b].scales[j] |= (uint8_t)((unsigned)qf_ref_nearest(iscale * mins[j]) << 4);
            y[b].dmin = qf_fp32_to_fp16(max_min / q4scale);
        } else {
            y[b].dmin = qf_fp32_to_fp16(0.f);
        }
        qf_ref_q2_K_finish(x, L, &y[b]);
    }
}

/* Levels from the scales as stored, then the 2-bit packing; a sub-block with scale 0 keeps
 * the fit's levels in L. */
void qf_ref_q2_K_finish(const float *x, uint8_t *L, qf_block_q2_K *y)
{
    float d_all = qf_fp16_to_fp32(y->d), dmin_all = qf_fp16_to_fp32(y->dmin);
    for (int j = 0; j < 16; j++) {
        const float d = d_all * (float)(y->scales[j] & 0xF);
        if (!d)
            continue;
        const float dm = dmin_all * (float)(y->scales[j] >> 4);
        for (int i = 0; i < 16; i++)
            L[16 * j + i] = (uint8_t)clamp_int(qf_ref_nearest((x[16 * j + i] + dm) / d), 0, 3);
    }
    pack_2bit(L, y->qs);
}

void qf_dequantize_row_q2_K(const void *vx, float *y, int64_t k)
{
    check_row(vx, y, k);
    const qf_block_q2_K *x = vx;
    for (int64_t b = 0; b < k / QF_QK_K; b++, y += QF_QK_K) {
        const float d = qf_fp16_to_fp32(x[b].d), dmin = qf_fp16_to_fp32(x[b].dmin);
        for (int i = 0; i < QF_QK_K; i++) {
            uint8_t sc = x[b].scales[i / 16];
            const float dl = d * (float)(sc & 0xF), ml = dmin * (float)(sc >> 4);
            y[i] = dl * (float)unpack_2bit(x[b].qs, i) - ml;
        }
    }
}

void qf_vec_dot_q2_K_q8_K_ref(int64_t k, const void *w, const void *a, float *s)
{
    check_row(w, a, k);
    assert(s != NULL);
    const qf_block_q2_K *x = w;
    const qf_block_q8_K *y = a;
    float sumf = 0;
    for (int64_t b = 0; b < k / QF_QK_K; b++) {
        /* the mins multiply whole sub-blocks, so the activations' 16-sums carry them */
        int summs = 0;
        for (int j = 0; j < 16; j++)
            summs += y[b].bsums[j] * (x[b].scales[j] >> 4);

        int isum = 0;
        for (int j = 0; j < 16; j++) {
            int sub = 0;
            for (int i = 16 * j; i < 16 * j + 16; i++)
                sub += y[b].qs[i] * unpack_2bit(x[b].qs, i);
            isum += (x[b].scales[j] & 0xF) * sub;
        }
        const float dall = y[b].d * qf_fp16_to_fp32(x[b].d);
        const float dmin = y[b].d * qf_fp16_to_fp32(x[b].dmin);
        sumf += dall * (float)isum - dmin * (float)summs;
    }
    *s = sumf;
}

/* --- q3_K ------------------------------------------------------------------------------------- */

void qf_quantize_row_q3_K_ref(const float *x, void *vy, int64_t k)
{
    check_row(x, vy, k);
    qf_block_q3_K *y = vy;

    for (int64_t b = 0; b < k / QF_QK_K; b++, x += QF_QK_K) {
        int8_t L[QF_QK_K];
        float scales[16];
        for (int j = 0; j < 16; j++)
            scales[j] = fit_q3(x + 16 * j, 16, 4, L + 16 * j);
        float amax;                          /* the signed scale of largest magnitude */
        const float max_scale = qf_ref_signed_absmax(scales, 16, &amax);

        /* 6-bit signed sub-block scales, offset by 32: the largest maps to -32 */
        int sc[16] = {0};
        float d = 0.f;
        if (max_scale != 0) {
            float iscale = -32.f / max_scale;
            for (int j = 0; j < 16; j++) {
                int8_t l = (int8_t)qf_ref_nearest(iscale * scales[j]);
                sc[j] = clamp_int(l, -32, 31) + 32;
            }
            d = 1 / iscale;
        }
        qf_ref_q3_K_finish(x, sc, d, L, &y[b]);
    }
}

/* Stores the sub-block scales (sc, 0..63) and the super-scale d, re-derives the levels from
 * them as stored (a sub-block with scale 0 keeps the fit's levels in L), and packs. */
void qf_ref_q3_K_finish(const float *x, const int sc[16], float d, int8_t *L, qf_block_q3_K *y)
{
    pack_q3_scales(sc, y->scales);
    y->d = qf_fp32_to_fp16(d);

    float d_all = qf_fp16_to_fp32(y->d);
    for (int j = 0; j < 16; j++) {
        /* ggml goes through int8_t; sc - 32 fits it, so plain int is the same */
        const float dj = d_all * (float)(unpack_q3_scale(y->scales, j) - 32);
        if (!dj)
            continue;
        for (int i = 0; i < 16; i++)
            L[16 * j + i] = (int8_t)(clamp_int(qf_ref_nearest(x[16 * j + i] / dj), -4, 3) + 4);
    }

    /* level 0..7: bit 2 goes to hmask (weight i is bit i / 32 of hmask[i % 32]), the low
     * two bits to qs as in q2_K */
    uint8_t low[QF_QK_K];
    memset(y->hmask, 0, sizeof y->hmask);
    for (int i = 0; i < QF_QK_K; i++) {
        int l = L[i];
        if (l > 3) {
            y->hmask[i % 32] |= (uint8_t)(1u << (i / 32));
            l -= 4;
        }
        low[i] = (uint8_t)l;
    }
    pack_2bit(low, y->qs);
}

/* Weight i of a q3_K block as a signed level -4..3: the hmask bit set means "no -4". */
static int q3_K_level(const qf_block_q3_K *blk, int i)
{
    int hbit = (blk->hmask[i % 32] >> (i / 32)) & 1;
    return unpack_2bit(blk->qs, i) - (hbit ? 0 : 4);
}

void qf_dequantize_row_q3_K(const void *vx, float *y, int64_t k)
{
    check_row(vx, y, k);
    const qf_block_q3_K *x = vx;
    for (int64_t b = 0; b < k / QF_QK_K; b++, y += QF_QK_K) {
        const float d_all = qf_fp16_to_fp32(x[b].d);
        for (int i = 0; i < QF_QK_K; i++) {
            const float dl = d_all * (float)(unpack_q3_scale(x[b].scales, i / 16) - 32);
            y[i] = dl * (float)q3_K_level(&x[b], i);
        }
    }
}

/* ggml's generic dot for q3_K .. q6_K keeps eight int32 lanes per super-block (lane l holds
 * weights i with i % 8 == l, each times its sub-block scale), scales the lanes to eight float
 * accumulators that run across the row, and sums those at the end. Integer sums are exact in
 * any order; the float steps are what must follow ggml's order. */
static void lanes_add(const int8_t *wq, const int *scale16, const int8_t *aq, float d,
                      float sums[8])
{
    int32_t lane[8] = {0};
    for (int i = 0; i < QF_QK_K; i++)
        lane[i % 8] += scale16[i / 16] * (aq[i] * wq[i]);
    for (int l = 0; l < 8; l++)
        sums[l] += d * (float)lane[l];
}

static float lanes_total(float sumf, const float sums[8])
{
    for (int l = 0; l < 8; l++)
        sumf += sums[l];
    return sumf;
}

void qf_vec_dot_q3_K_q8_K_ref(int64_t k, const void *w, const void *a, float *s)
{
    check_row(w, a, k);
    assert(s != NULL);
    const qf_block_q3_K *x = w;
    const qf_block_q8_K *y = a;
    float sums[8] = {0};
    for (int64_t b = 0; b < k / QF_QK_K; b++) {
        int8_t wq[QF_QK_K];
        int scale16[16];
        for (int i = 0; i < QF_QK_K; i++)
            wq[i] = (int8_t)q3_K_level(&x[b], i);
        for (int j = 0; j < 16; j++)
            scale16[j] = unpack_q3_scale(x[b].scales, j) - 32;
        lanes_add(wq, scale16, y[b].qs, qf_fp16_to_fp32(x[b].d) * y[b].d, sums);
    }
    *s = lanes_total(0, sums);
}

/* --- q4_K ------------------------------------------------------------------------------------- */

void qf_quantize_row_q4_K_ref(const float *x, void *vy, int64_t k)
{
    check_row(x, vy, k);
    qf_block_q4_K *y = vy;
    for (int64_t b = 0; b < k / QF_QK_K; b++, x += QF_QK_K) {
        uint8_t L[QF_QK_K], ls[8], lm[8];
        float d, dmin;
        quantize_k4_like(x, 15, -1.f, 0.1f, 20, L, ls, lm, &d, &dmin);
        qf_ref_q4_K_finish(x, L, ls, lm, d, dmin, &y[b]);
    }
}

void qf_ref_q4_K_finish(const float *x, uint8_t *L, const uint8_t ls[8], const uint8_t lm[8],
                        float d, float dmin, qf_block_q4_K *y)
{
    k4_finish(x, 15, ls, lm, d, dmin, &y->d, &y->dmin, y->scales, L);
    pack_4bit(L, y->qs);
}

void qf_dequantize_row_q4_K(const void *vx, float *y, int64_t k)
{
    check_row(vx, y, k);
    const qf_block_q4_K *x = vx;
    for (int64_t b = 0; b < k / QF_QK_K; b++, y += QF_QK_K) {
        const float d = qf_fp16_to_fp32(x[b].d), dmin = qf_fp16_to_fp32(x[b].dmin);
        for (int i = 0; i < QF_QK_K; i++) {
            int sc, m;
            unpack_k4_scale(x[b].scales, i / 32, &sc, &m);
            const float dl = d * (float)sc, ml = dmin * (float)m;
            y[i] = dl * (float)unpack_4bit(x[b].qs, i) - ml;
        }
    }
}

/* The dot of q4_K or q5_K blocks whose levels 0..31 are already in wq: the scaled levels go
 * through the lanes, the mins through the activations' 16-sums, subtracted straight from sumf
 * per block (as ggml does, before the lanes are added in). */
static float k4_like_block(const uint8_t *scales, qf_half d, qf_half dmin, const int8_t *wq,
                           const qf_block_q8_K *yb, float sumf, float sums[8])
{
    int scale16[16], mins[8];
    for (int j = 0; j < 8; j++) {
        unpack_k4_scale(scales, j, &scale16[2 * j], &mins[j]);
        scale16[2 * j + 1] = scale16[2 * j];
    }
    int sumi = 0;
    for (int j = 0; j < 16; j++)
        sumi += yb->bsums[j] * mins[j / 2];
    lanes_add(wq, scale16, yb->qs, qf_fp16_to_fp32(d) * yb->d, sums);
    const float dm = qf_fp16_to_fp32(dmin) * yb->d;
    return sumf - dm * (float)sumi;
}

void qf_vec_dot_q4_K_q8_K_ref(int64_t k, const void *w, const void *a, float *s)
{
    check_row(w, a, k);
    assert(s != NULL);
    const qf_block_q4_K *x = w;
    const qf_block_q8_K *y = a;
    float sums[8] = {0};
    float sumf = 0;
    for (int64_t b = 0; b < k / QF_QK_K; b++) {
        int8_t wq[QF_QK_K];
        for (int i = 0; i < QF_QK_K; i++)
            wq[i] = (int8_t)unpack_4bit(x[b].qs, i);
        sumf = k4_like_block(x[b].scales, x[b].d, x[b].dmin, wq, &y[b], sumf, sums);
    }
    *s = lanes_total(sumf, sums);
}

/* --- q5_K ------------------------------------------------------------------------------------- */

void qf_quantize_row_q5_K_ref(const float *x, void *vy, int64_t k)
{
    check_row(x, vy, k);
    qf_block_q5_K *y = vy;
    for (int64_t b = 0; b < k / QF_QK_K; b++, x += QF_QK_K) {
        uint8_t L[QF_QK_K], ls[8], lm[8];
        float d, dmin;
        quantize_k4_like(x, 31, -0.5f, 0.1f, 15, L, ls, lm, &d, &dmin);
        qf_ref_q5_K_finish(x, L, ls, lm, d, dmin, &y[b]);
    }
}

void qf_ref_q5_K_finish(const float *x, uint8_t *L, const uint8_t ls[8], const uint8_t lm[8],
                        float d, float dmin, qf_block_q5_K *y)
{
    k4_finish(x, 31, ls, lm, d, dmin, &y->d, &y->dmin, y->scales, L);
    /* the fifth bit of weight i is bit i / 32 of qh[i % 32]; the rest packs as q4_K */
    memset(y->qh, 0, sizeof y->qh);
    for (int i = 0; i < QF_QK_K; i++)
        if (L[i] > 15)
            y->qh[i % 32] |= (uint8_t)(1u << (i / 32));
    pack_4bit(L, y->qs);
}

static int q5_K_level(const qf_block_q5_K *blk, int i)
{
    return unpack_4bit(blk->qs, i) | (((blk->qh[i % 32] >> (i / 32)) & 1) << 4);
}

void qf_dequantize_row_q5_K(const void *vx, float *y, int64_t k)
{
    check_row(vx, y, k);
    const qf_block_q5_K *x = vx;
    for (int64_t b = 0; b < k / QF_QK_K; b++, y += QF_QK_K) {
        const float d = qf_fp16_to_fp32(x[b].d), dmin = qf_fp16_to_fp32(x[b].dmin);
        for (int i = 0; i < QF_QK_K; i++) {
            int sc, m;
            unpack_k4_scale(x[b].scales, i / 32, &sc, &m);
            const float dl = d * (float)sc, ml = dmin * (float)m;
            y[i] = dl * (float)q5_K_level(&x[b], i) - ml;
        }
    }
}

void qf_vec_dot_q5_K_q8_K_ref(int64_t k, const void *w, const void *a, float *s)
{
    check_row(w, a, k);
    assert(s != NULL);
    const qf_block_q5_K *x = w;
    const qf_block_q8_K *y = a;
    float sums[8] = {0};
    float sumf = 0;
    for (int64_t b = 0; b < k / QF_QK_K; b++) {
        int8_t wq[QF_QK_K];
        for (int i = 0; i < QF_QK_K; i++)
            wq[i] = (int8_t)q5_K_level(&x[b], i);
        sumf = k4_like_block(x[b].scales, x[b].d, x[b].dmin, wq, &y[b], sumf, sums);
    }
    *s = lanes_total(sumf, sums);
}

/* --- q6_K ------------------------------------------------------------------------------------- */

/* Weight 128h + 32t + l (h < 2, t < 4, l < 32): its low nibble is nibble t / 2 of
 * ql[64h + 32(t % 2) + l], its top two bits are bits 2t.. of qh[32h + l]. */
static void q6_K_pack(const int8_t *L, qf_block_q6_K *blk)
{
    for (int h = 0; h < 2; h++)
        for (int l = 0; l < 32; l++) {
            const int8_t *q = L + 128 * h + l;     /* levels 0..63 */
            blk->ql[64 * h + l] = (uint8_t)((q[0] & 0xF) | ((q[64] & 0xF) << 4));
            blk->ql[64 * h + l + 32] = (uint8_t)((q[32] & 0xF) | ((q[96] & 0xF) << 4));
            blk->qh[32 * h + l] = (uint8_t)((q[0] >> 4) | ((q[32] >> 4) << 2) |
                                            ((q[64] >> 4) << 4) | ((q[96] >> 4) << 6));
        }
}

/* Weight i of a q6_K block as a signed level -32..31. */
static int q6_K_level(const qf_block_q6_K *blk, int i)
{
    int h = i / 128, t = (i / 32) % 4, l = i % 32;
    int lo = (blk->ql[64 * h + 32 * (t % 2) + l] >> (4 * (t / 2))) & 0xF;
    int hi = (blk->qh[32 * h + l] >> (2 * t)) & 3;
    return (lo | (hi << 4)) - 32;
}

void qf_quantize_row_q6_K_ref(const float *x, void *vy, int64_t k)
{
    check_row(x, vy, k);
    qf_block_q6_K *y = vy;

    for (int64_t b = 0; b < k / QF_QK_K; b++, x += QF_QK_K)
        qf_ref_q6_K_block(x, NULL, &y[b]);
}

/* One super-block; qw: importance weights of its 256 weights (ggml passes them to the
 * sub-block fits as they are), NULL for x^2. */
void qf_ref_q6_K_block(const float *x, const float *qw, qf_block_q6_K *y)
{
    int8_t L[QF_QK_K];
    float scales[16];
    for (int j = 0; j < 16; j++)
        scales[j] = qf_ref_fit_symmetric(x + 16 * j, qw ? qw + 16 * j : NULL, 16, 32, L + 16 * j);
    float max_abs_scale;
    const float max_scale = qf_ref_signed_absmax(scales, 16, &max_abs_scale);

    if (max_abs_scale < QF_REF_GROUP_EPS) {   /* nothing to represent: an all-zero block */
        memset(y, 0, sizeof *y);
        y->d = qf_fp32_to_fp16(0.f);
        return;
    }

    /* 8-bit signed sub-block scales: the largest maps to -128; one of the opposite sign
     * and the same size would map to +128, which int8 cannot hold, hence the cap */
    float iscale = -128.f / max_scale;
    y->d = qf_fp32_to_fp16(1 / iscale);
    for (int j = 0; j < 16; j++) {
        int l = qf_ref_nearest(iscale * scales[j]);
        y->scales[j] = (int8_t)(l < 127 ? l : 127);
    }

    float d_all = qf_fp16_to_fp32(y->d);
    for (int j = 0; j < 16; j++) {
        const float d = d_all * (float)y->scales[j];
        if (!d)
            continue;
        for (int i = 0; i < 16; i++)
            L[16 * j + i] = (int8_t)(clamp_int(qf_ref_nearest(x[16 * j + i] / d), -32, 31) + 32);
    }
    q6_K_pack(L, y);
}

void qf_dequantize_row_q6_K(const void *vx, float *y, int64_t k)
{
    check_row(vx, y, k);
    const qf_block_q6_K *x = vx;
    for (int64_t b = 0; b < k / QF_QK_K; b++, y += QF_QK_K) {
        const float d = qf_fp16_to_fp32(x[b].d);
        for (int i = 0; i < QF_QK_K; i++)
            y[i] = d * (float)x[b].scales[i / 16] * (float)q6_K_level(&x[b], i);
    }
}

void qf_vec_dot_q6_K_q8_K_ref(int64_t k, const void *w, const void *a, float *s)
{
    check_row(w, a, k);
    assert(s != NULL);
    const qf_block_q6_K *x = w;
    const qf_block_q8_K *y = a;
    float sums[8] = {0};
    for (int64_t b = 0; b < k / QF_QK_K; b++) {
        int8_t wq[QF_QK_K];
        int scale16[16];
        for (int i = 0; i < QF_QK_K; i++)
            wq[i] = (int8_t)q6_K_level(&x[b], i);
        for (int j = 0; j < 16; j++)
            scale16[j] = x[b].scales[j];
        lanes_add(wq, scale16, y[b].qs, qf_fp16_to_fp32(x[b].d) * y[b].d, sums);
    }
    *s = lanes_total(0, sums);
}

/* --- q8_K: the activations --------------------------------------------------------------------- */

void qf_quantize_row_q8_K_ref(const float *x, void *vy, int64_t k)
{
    check_row(x, vy, k);
    qf_block_q8_K *y = vy;

    for (int64_t b = 0; b < k / QF_QK_K; b++, x += QF_QK_K) {
        float amax;
        const float max = qf_ref_signed_absmax(x, QF_QK_K, &amax);
        if (!amax) {
            /* ggml zeroes d and qs here but leaves bsums as it found them (whatever the
             * caller's buffer held); we write zeros, the only value that means anything, so
             * only a buffer that was zero beforehand compares equal with ggml's here */
            memset(&y[b], 0, sizeof y[b]);
            continue;
        }
        /* -127, not -128: the largest magnitude maps to -127 so that every value fits in
         * +-127 (ggml changed this for its AVX i-quant dot products, which negate int8s) */
        const float iscale = -127.f / max;
        for (int i = 0; i < QF_QK_K; i++) {
            int v = qf_ref_nearest(iscale * x[i]);
            y[b].qs[i] = (int8_t)(v < 127 ? v : 127);
        }
        for (int j = 0; j < 16; j++) {
            int sum = 0;
            for (int i = 16 * j; i < 16 * j + 16; i++)
                sum += y[b].qs[i];
            y[b].bsums[j] = (int16_t)sum;
        }
        y[b].d = 1 / iscale;
    }
}

void qf_dequantize_row_q8_K(const void *vx, float *y, int64_t k)
{
    check_row(vx, y, k);
    const qf_block_q8_K *x = vx;
    for (int64_t b = 0; b < k / QF_QK_K; b++, y += QF_QK_K)
        for (int i = 0; i < QF_QK_K; i++)
            y[i] = x[b].d * (float)x[b].qs[i];
}
