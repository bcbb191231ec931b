/* neon_kquants.c - the NEON (dotprod) row kernels of the K-quants q2_K .. q6_K and of their
 * activation format q8_K (see qf_kernels.h and kernels/isa/qf_isa_fill.h).
 *
 * Compiled only for AArch64 with -march=armv8.2-a+dotprod+fp16; called only after dispatch.c's
 * detection saw dotprod. Per 256-weight super-block the dot products unpack the sub-block
 * scales once and widen the packed levels to int8 with masks, shifts and bit tests. q2_K, q3_K
 * and q6_K let SDOT sum each sub-block exactly and scale the integer total per super-block
 * (q2_K in the reference's float order, so its result is the reference's bits); q4_K and q5_K
 * rebuild the reference's eight int32 lanes with widening multiplies (see lanes_add32) and are
 * bit-identical to it, because their scaled levels and mins can nearly cancel.
 * The mins of q2_K, q4_K and q5_K go through q8_K's 16-sums, as in the reference.
 * Dequantizers are bit-exact: the same float products in the same order, vectorized.
 * q8_K's quantizer is byte-exact (round to nearest even, as the reference's magic-number
 * rounding); blocks that are not plain (zero, NaN, infinity, an inverse scale that overflows)
 * go to the reference. The K-quant quantizers run the reference's scale searches with one
 * sub-block per vector lane, every lane doing the reference's float operations in its order,
 * so their bytes are the reference's as well (section "K-quant quantizers" below).
 * ref/ref_util.h is borrowed for the one scalar scan the searches share with the reference.
 * The dot products are the matvec inner loops: hot, one call per weight row.
 */
#include <arm_neon.h>
#include <float.h>
#include <assert.h>
#include <math.h>
#include <stdbool.h>

#include "isa/qf_isa_fill.h"
#include "neon_util.h"
#include "ref/qf_ref.h"
#include "ref/ref_util.h"

/* --- q8_K --------------------------------------------------------------------------------------- */

static void quantize_row_q8_K(const float *x, void *vy, int64_t k)
{
    assert(k % QF_QK_K == 0);
    qf_block_q8_K *y = vy;
    for (int64_t b = 0; b < k / QF_QK_K; b++, x += QF_QK_K) {
        float amax, mx, mn;
        qf_neon_stats(x, QF_QK_K, &amax, &mx, &mn);
        const float iscale = qf_neon_plain(amax) ?
            -127.f / qf_neon_signed_max(x, QF_QK_K, amax, mx, mn) : 0.0f;
        if (!(iscale != 0.0f && iscale >= -FLT_MAX && iscale <= FLT_MAX)) {
            qf_quantize_row_q8_K_ref(x, &y[b], QF_QK_K);
            continue;
        }
        const int32x4_t top = vdupq_n_s32(127);
        for (int j = 0; j < 16; j++) {
            int32x4_t q[4];
            for (int i = 0; i < 4; i++)
                q[i] = vminq_s32(vcvtnq_s32_f32(vmulq_n_f32(vld1q_f32(x + 16 * j + 4 * i),
                                                            iscale)), top);
            const int8x16_t v = qf_neon_narrow_s8(q[0], q[1], q[2], q[3]);
            vst1q_s8(y[b].qs + 16 * j, v);
            y[b].bsums[j] = (int16_t)vaddlvq_s8(v);
        }
        y[b].d = 1 / iscale;
    }
}

static void dequantize_row_q8_K(const void *vx, float *y, int64_t k)
{
    const qf_block_q8_K *x = vx;
    for (int64_t b = 0; b < k / QF_QK_K; b++, y += QF_QK_K)
        for (int j = 0; j < 16; j++)
            qf_neon_store_scaled(y + 16 * j, vld1q_s8(x[b].qs + 16 * j), x[b].d);
}

/* --- shared unpacking --------------------------------------------------------------------------- */

/* The four 2-bit fields of 16 packed bytes as levels 0..3: w[s] holds bits 2s..2s+1. */
static inline void unpack_2bit(uint8x16_t q, int8x16_t w[4])
{
    const uint8x16_t three = vdupq_n_u8(3);
    w[0] = vreinterpretq_s8_u8(vandq_u8(q, three));
    w[1] = vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8(q, 2), three));
    w[2] = vreinterpretq_s8_u8(vandq_u8(vshrq_n_u8(q, 4), three));
    w[3] = vreinterpretq_s8_u8(vshrq_n_u8(q, 6));
}

/* q4_K and q5_K's eight 6-bit scales and mins from their 12 bytes (layout in kquants.c). */
static inline void unpack_k4_scales(const uint8_t s[12], uint8_t sc[8], uint8_t m[8])
{
    for (int j = 0; j < 4; j++) {
        sc[j] = s[j] & 63;
        m[j] = s[j + 4] & 63;
        sc[j + 4] = (uint8_t)((s[j + 8] & 0xF) | ((s[j] >> 6) << 4));
        m[j + 4] = (uint8_t)((s[j + 8] >> 4) | ((s[j + 4] >> 6) << 4));
    }
}

/* q3_K's sixteen 6-bit scales minus 32. */
static inline void unpack_q3_scales(const uint8_t s[12], int8_t sc[16])
{
    for (int j = 0; j < 16; j++) {
        const int lo = (s[j % 8] >> (4 * (j / 8))) & 0xF;
        const int hi = (s[8 + j % 4] >> (2 * (j / 4))) & 3;
        sc[j] = (int8_t)((lo | (hi << 4)) - 32);
    }
}

/* sum over the eight 32-sub-blocks of (bsums[2j] + bsums[2j + 1]) * m[j]: the mins' part. */
static inline int32_t mins_dot(const int16_t bsums[16], const uint8_t m[8])
{
    const int16x8_t bs = vpaddq_s16(vld1q_s16(bsums), vld1q_s16(bsums + 8));
    const int16x8_t mv = vreinterpretq_s16_u16(vmovl_u8(vld1_u8(m)));
    const int32x4_t p = vmlal_s16(vmull_s16(vget_low_s16(bs), vget_low_s16(mv)),
                                  vget_high_s16(bs), vget_high_s16(mv));
    return vaddvq_s32(p);
}

/* acc + scale * (SDOT of 16 weight levels with 16 activations), lane by lane. */
static inline int32x4_t dot16_scaled(int32x4_t acc, int8x16_t w, const int8_t *a, int32_t scale)
{
    return vmlaq_n_s32(acc, vdotq_s32(vdupq_n_s32(0), w, vld1q_s8(a)), scale);
}

/* The reference's dot products for q3_K .. q6_K keep eight int32 lanes per super-block, lane l
 * holding sum scale * w_i * a_i over the weights i with i % 8 == l, and scale them into eight
 * float sums that run across the row (kquants.c, lanes_add). For q4_K and q5_K those float
 * steps matter: the scaled levels and the mins can nearly cancel, and any other rounding order
 * then moves the result by far more than 1e-5 of sum |w a|. So their kernels build exactly the
 * reference's lanes, with widening multiplies instead of SDOT (whose lanes would mix weights i
 * and i + 1), and their result is bit-identical to the reference. q3_K and q6_K have no mins:
 * each super-block's term is at most its share of sum |w a|, so SDOT and one float
 * multiply-add per super-block keep them within about 1e-6. */
typedef struct lanes { int32x4_t lo, hi; } lanes;

static inline lanes lanes_zero(void)
{
    return (lanes){ vdupq_n_s32(0), vdupq_n_s32(0) };
}

/* Adds scale * w_i * a_i for 32 weights sharing one scale into the lanes; levels are 0..31,
 * so the four products of a lane fit int16. */
static inline void lanes_add32(lanes *l, int8x16_t w0, int8x16_t w1, const int8_t *a, int16_t scale)
{
    const int8x16_t a0 = vld1q_s8(a), a1 = vld1q_s8(a + 16);
    int16x8_t p = vmlal_high_s8(vmull_s8(vget_low_s8(w0), vget_low_s8(a0)), w0, a0);
    p = vmlal_high_s8(vmlal_s8(p, vget_low_s8(w1), vget_low_s8(a1)), w1, a1);
    l->lo = vmlal_n_s16(l->lo, vget_low_s16(p), scale);
    l->hi = vmlal_high_n_s16(l->hi, p, scale);
}

/* sums[l] += d * (float)lane[l], one product and one sum per lane as the reference. */
static inline void lanes_scale(float32x4_t sums[2], lanes l, float d)
{
    sums[0] = vaddq_f32(sums[0], vmulq_n_f32(vcvtq_f32_s32(l.lo), d));
    sums[1] = vaddq_f32(sums[1], vmulq_n_f32(vcvtq_f32_s32(l.hi), d));
}

/* sumf + sums[0] + ... + sums[7], left to right. */
static float lanes_total(float sumf, const float32x4_t sums[2])
{
    float v[8];
    vst1q_f32(v, sums[0]);
    vst1q_f32(v + 4, sums[1]);
    for (int l = 0; l < 8; l++)
        sumf += v[l];
    return sumf;
}

/* --- q2_K: weight 128h + 32s + 16 half + l is bits 2s of qs[32h + 16 half + l] ------------- */

static void dequantize_row_q2_K(const void *vx, float *y, int64_t k)
{
    const qf_block_q2_K *x = vx;
    for (int64_t b = 0; b < k / QF_QK_K; b++, y += QF_QK_K) {
        const float d = qf_neon_h2f(x[b].d), dmin = qf_neon_h2f(x[b].dmin);
        for (int hh = 0; hh < 4; hh++) {   /* h = hh / 2, half = hh % 2 */
            int8x16_t w[4];
            unpack_2bit(vld1q_u8(x[b].qs + 16 * hh), w);
            for (int s = 0; s < 4; s++) {
                const int i = 128 * (hh / 2) + 32 * s + 16 * (hh % 2);
                const uint8_t sc = x[b].scales[i / 16];
                qf_neon_store_affine(y + i, w[s], d * (float)(sc & 0xF), dmin * (float)(sc >> 4),
                                     false);
            }
        }
    }
}

static void vec_dot_q2_K(int64_t k, const void *w, const void *a, float *s)
{
    const qf_block_q2_K *x = w;
    const qf_block_q8_K *y = a;
    float sumf = 0.0f;
    for (int64_t b = 0; b < k / QF_QK_K; b++) {
        /* mins: sum over 16 sub-blocks of bsums * (scale >> 4) */
        const uint8x16_t sc = vld1q_u8(x[b].scales);
        const int16x8_t m_lo = vreinterpretq_s16_u16(vmovl_u8(vshr_n_u8(vget_low_u8(sc), 4)));
        const int16x8_t m_hi = vreinterpretq_s16_u16(vmovl_u8(vshr_n_u8(vget_high_u8(sc), 4)));
        const int16x8_t bs_lo = vld1q_s16(y[b].bsums), bs_hi = vld1q_s16(y[b].bsums + 8);
        int32x4_t mp = vmull_s16(vget_low_s16(bs_lo), vget_low_s16(m_lo));
        mp = vmlal_s16(mp, vget_high_s16(bs_lo), vget_high_s16(m_lo));
        mp = vmlal_s16(mp, vget_low_s16(bs_hi), vget_low_s16(m_hi));
        mp = vmlal_s16(mp, vget_high_s16(bs_hi), vget_high_s16(m_hi));
        const int32_t summs = vaddvq_s32(mp);

        int32x4_t acc[4] = { vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0) };
        for (int hh = 0; hh < 4; hh++) {
            int8x16_t v[4];
            unpack_2bit(vld1q_u8(x[b].qs + 16 * hh), v);
            const int8_t *q8 = y[b].qs + 128 * (hh / 2) + 16 * (hh % 2);
            const uint8_t *scs = x[b].scales + 8 * (hh / 2) + hh % 2;
            acc[0] = dot16_scaled(acc[0], v[0], q8, scs[0] & 0xF);
            acc[1] = dot16_scaled(acc[1], v[1], q8 + 32, scs[2] & 0xF);
            acc[2] = dot16_scaled(acc[2], v[2], q8 + 64, scs[4] & 0xF);
            acc[3] = dot16_scaled(acc[3], v[3], q8 + 96, scs[6] & 0xF);
        }
        const int32x4_t t = vaddq_s32(vaddq_s32(acc[0], acc[1]), vaddq_s32(acc[2], acc[3]));
        const float dall = y[b].d * qf_neon_h2f(x[b].d);
        const float dmin = y[b].d * qf_neon_h2f(x[b].dmin);
        sumf += dall * (float)vaddvq_s32(t) - dmin * (float)summs;
    }
    *s = sumf;
}

/* --- q3_K: q2_K's low bits plus a high bit in hmask (set: no -4) ------------------------------- */

/* Levels -4..3 of weights 128h + 32s + 16 half + 0..15 for s = 0..3 (hh = 2h + half): the
 * high bit of weight i is bit i / 32 = 4h + s of hmask[16 half + l]. */
static inline void unpack_q3(const qf_block_q3_K *x, int hh, int8x16_t w[4])
{
    const uint8x16_t hm = vld1q_u8(x->hmask + 16 * (hh % 2));
    const uint8x16_t four = vdupq_n_u8(4);
    unpack_2bit(vld1q_u8(x->qs + 16 * hh), w);
    for (int s = 0; s < 4; s++) {
        const uint8x16_t bit = vdupq_n_u8((uint8_t)(1u << (4 * (hh / 2) + s)));
        const uint8x16_t high = vandq_u8(vtstq_u8(hm, bit), four);
        w[s] = vsubq_s8(vorrq_s8(w[s], vreinterpretq_s8_u8(high)), vreinterpretq_s8_u8(four));
    }
}

static void dequantize_row_q3_K(const void *vx, float *y, int64_t k)
{
    const qf_block_q3_K *x = vx;
    for (int64_t b = 0; b < k / QF_QK_K; b++, y += QF_QK_K) {
        const float d_all = qf_neon_h2f(x[b].d);
        int8_t sc[16];
        unpack_q3_scales(x[b].scales, sc);
        for (int hh = 0; hh < 4; hh++) {
            int8x16_t w[4];
            unpack_q3(&x[b], hh, w);
            for (int s = 0; s < 4; s++) {
                const int i = 128 * (hh / 2) + 32 * s + 16 * (hh % 2);
                qf_neon_store_scaled(y + i, w[s], d_all * (float)sc[i / 16]);
            }
        }
    }
}

static void vec_dot_q3_K(int64_t k, const void *w, const void *a, float *s)
{
    const qf_block_q3_K *x = w;
    const qf_block_q8_K *y = a;
    float sumf = 0.0f;
    for (int64_t b = 0; b < k / QF_QK_K; b++) {
        int8_t sc[16];
        unpack_q3_scales(x[b].scales, sc);
        int32x4_t acc[4] = { vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0) };
        for (int hh = 0; hh < 4; hh++) {
            int8x16_t v[4];
            unpack_q3(&x[b], hh, v);
            const int8_t *q8 = y[b].qs + 128 * (hh / 2) + 16 * (hh % 2);
            const int8_t *scs = sc + 8 * (hh / 2) + hh % 2;
            acc[0] = dot16_scaled(acc[0], v[0], q8, scs[0]);
            acc[1] = dot16_scaled(acc[1], v[1], q8 + 32, scs[2]);
            acc[2] = dot16_scaled(acc[2], v[2], q8 + 64, scs[4]);
            acc[3] = dot16_scaled(acc[3], v[3], q8 + 96, scs[6]);
        }
        const int32x4_t t = vaddq_s32(vaddq_s32(acc[0], acc[1]), vaddq_s32(acc[2], acc[3]));
        sumf += qf_neon_h2f(x[b].d) * y[b].d * (float)vaddvq_s32(t);
    }
    *s = sumf;
}

/* --- q4_K and q5_K: weight 64p + 32t + l is nibble t of qs[32p + l] ------------------------- */

/* Levels of weights 64p .. 64p + 63: w[0], w[1] the low nibbles (sub-block 2p), w[2], w[3] the
 * high ones (2p + 1); with qh (q5_K), the fifth bit of weight i is bit i / 32 of qh[i % 32]. */
static inline void unpack_k4(const uint8_t *qs, const uint8_t *qh, int p, int8x16_t w[4])
{
    const uint8x16_t q0 = vld1q_u8(qs + 32 * p), q1 = vld1q_u8(qs + 32 * p + 16);
    const uint8x16_t m4 = vdupq_n_u8(0x0F);
    uint8x16_t v[4] = { vandq_u8(q0, m4), vandq_u8(q1, m4), vshrq_n_u8(q0, 4), vshrq_n_u8(q1, 4) };
    if (qh) {
        const uint8x16_t h0 = vld1q_u8(qh), h1 = vld1q_u8(qh + 16), b4 = vdupq_n_u8(0x10);
        const uint8x16_t lo_bit = vdupq_n_u8((uint8_t)(1u << (2 * p)));
        const uint8x16_t hi_bit = vdupq_n_u8((uint8_t)(2u << (2 * p)));
        v[0] = vorrq_u8(v[0], vandq_u8(vtstq_u8(h0, lo_bit), b4));
        v[1] = vorrq_u8(v[1], vandq_u8(vtstq_u8(h1, lo_bit), b4));
        v[2] = vorrq_u8(v[2], vandq_u8(vtstq_u8(h0, hi_bit), b4));
        v[3] = vorrq_u8(v[3], vandq_u8(vtstq_u8(h1, hi_bit), b4));
    }
    for (int i = 0; i < 4; i++)
        w[i] = vreinterpretq_s8_u8(v[i]);
}

static void dequantize_k4_like(const uint8_t *scales, qf_half dh, qf_half dminh,
                               const uint8_t *qs, const uint8_t *qh, float *y)
{
    const float d = qf_neon_h2f(dh), dmin = qf_neon_h2f(dminh);
    uint8_t sc[8], m[8];
    unpack_k4_scales(scales, sc, m);
    for (int p = 0; p < 4; p++) {
        int8x16_t w[4];
        unpack_k4(qs, qh, p, w);
        for (int i = 0; i < 4; i++) {
            const int j = 2 * p + i / 2;   /* the sub-block of 32 */
            qf_neon_store_affine(y + 32 * j + 16 * (i % 2), w[i], d * (float)sc[j],
                                 dmin * (float)m[j], false);
        }
    }
}

/* One super-block into the lanes; returns sumf less the mins' part, as the reference. */
static inline float dot_k4_like(const uint8_t *scales, qf_half dh, qf_half dminh, const uint8_t *qs,
                         const uint8_t *qh, const qf_block_q8_K *yb, float sumf,
                         float32x4_t sums[2])
{
    uint8_t sc[8], m[8];
    unpack_k4_scales(scales, sc, m);
    const int32_t summs = mins_dot(yb->bsums, m);
    /* two sets of lanes for independent chains; integer sums, so adding them is exact */
    lanes l0 = lanes_zero(), l1 = lanes_zero();
    for (int p = 0; p < 4; p++) {
        int8x16_t v[4];
        unpack_k4(qs, qh, p, v);
        lanes_add32(&l0, v[0], v[1], yb->qs + 64 * p, sc[2 * p]);
        lanes_add32(&l1, v[2], v[3], yb->qs + 64 * p + 32, sc[2 * p + 1]);
    }
    const lanes l = { vaddq_s32(l0.lo, l1.lo), vaddq_s32(l0.hi, l1.hi) };
    lanes_scale(sums, l, qf_neon_h2f(dh) * yb->d);
    const float dm = qf_neon_h2f(dminh) * yb->d;
    return sumf - dm * (float)summs;
}

static void dequantize_row_q4_K(const void *vx, float *y, int64_t k)
{
    const qf_block_q4_K *x = vx;
    for (int64_t b = 0; b < k / QF_QK_K; b++, y += QF_QK_K)
        dequantize_k4_like(x[b].scales, x[b].d, x[b].dmin, x[b].qs, NULL, y);
}

static void vec_dot_q4_K(int64_t k, const void *w, const void *a, float *s)
{
    const qf_block_q4_K *x = w;
    const qf_block_q8_K *y = a;
    float32x4_t sums[2] = { vdupq_n_f32(0.0f), vdupq_n_f32(0.0f) };
    float sumf = 0.0f;
    for (int64_t b = 0; b < k / QF_QK_K; b++)
        sumf = dot_k4_like(x[b].scales, x[b].d, x[b].dmin, x[b].qs, NULL, &y[b], sumf, sums);
    *s = lanes_total(sumf, sums);
}

static void dequantize_row_q5_K(const void *vx, float *y, int64_t k)
{
    const qf_block_q5_K *x = vx;
    for (int64_t b = 0; b < k / QF_QK_K; b++, y += QF_QK_K)
        dequantize_k4_like(x[b].scales, x[b].d, x[b].dmin, x[b].qs, x[b].qh, y);
}

static void vec_dot_q5_K(int64_t k, const void *w, const void *a, float *s)
{
    const qf_block_q5_K *x = w;
    const qf_block_q8_K *y = a;
    float32x4_t sums[2] = { vdupq_n_f32(0.0f), vdupq_n_f32(0.0f) };
    float sumf = 0.0f;
    for (int64_t b = 0; b < k / QF_QK_K; b++)
        sumf = dot_k4_like(x[b].scales, x[b].d, x[b].dmin, x[b].qs, x[b].qh, &y[b], sumf, sums);
    *s = lanes_total(sumf, sums);
}

/* --- q6_K: weight 128h + 32t + l: nibble t / 2 of ql[64h + 32(t % 2) + l], bits 2t of
 * qh[32h + l] ---------------------------------------------------------------------------------- */

/* Levels -32..31 of weights 128h + 32t + 16 half + 0..15 for t = 0..3 (hh = 2h + half). */
static inline void unpack_q6(const qf_block_q6_K *x, int hh, int8x16_t w[4])
{
    const int h = hh / 2, half = hh % 2;
    const uint8x16_t l0 = vld1q_u8(x->ql + 64 * h + 16 * half);
    const uint8x16_t l1 = vld1q_u8(x->ql + 64 * h + 32 + 16 * half);
    const uint8x16_t qh = vld1q_u8(x->qh + 32 * h + 16 * half);
    const uint8x16_t m4 = vdupq_n_u8(0x0F), m30 = vdupq_n_u8(0x30);
    const uint8x16_t v[4] = {
        vorrq_u8(vandq_u8(l0, m4), vandq_u8(vshlq_n_u8(qh, 4), m30)),
        vorrq_u8(vandq_u8(l1, m4), vandq_u8(vshlq_n_u8(qh, 2), m30)),
        vorrq_u8(vshrq_n_u8(l0, 4), vandq_u8(qh, m30)),
        vorrq_u8(vshrq_n_u8(l1, 4), vandq_u8(vshrq_n_u8(qh, 2), m30)),
    };
    for (int t = 0; t < 4; t++)
        w[t] = vsubq_s8(vreinterpretq_s8_u8(v[t]), vdupq_n_s8(32));
}

static void dequantize_row_q6_K(const void *vx, float *y, int64_t k)
{
    const qf_block_q6_K *x = vx;
    for (int64_t b = 0; b < k / QF_QK_K; b++, y += QF_QK_K) {
        const float d = qf_neon_h2f(x[b].d);
        for (int hh = 0; hh < 4; hh++) {
            int8x16_t w[4];
            unpack_q6(&x[b], hh, w);
            for (int t = 0; t < 4; t++) {
                const int i = 128 * (hh / 2) + 32 * t + 16 * (hh % 2);
                /* the reference's d * scale * level, left to right */
                qf_neon_store_scaled(y + i, w[t], d * (float)x[b].scales[i / 16]);
            }
        }
    }
}

static void vec_dot_q6_K(int64_t k, const void *w, const void *a, float *s)
{
    const qf_block_q6_K *x = w;
    const qf_block_q8_K *y = a;
    float sumf = 0.0f;
    for (int64_t b = 0; b < k / QF_QK_K; b++) {
        /* four accumulators, so the multiply-accumulates do not wait on each other */
        int32x4_t acc[4] = { vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0), vdupq_n_s32(0) };
        for (int hh = 0; hh < 4; hh++) {
            int8x16_t v[4];
            unpack_q6(&x[b], hh, v);
            const int8_t *q8 = y[b].qs + 128 * (hh / 2) + 16 * (hh % 2);
            const int8_t *sc = x[b].scales + 8 * (hh / 2) + hh % 2;
            acc[0] = dot16_scaled(acc[0], v[0], q8, sc[0]);
            acc[1] = dot16_scaled(acc[1], v[1], q8 + 32, sc[2]);
            acc[2] = dot16_scaled(acc[2], v[2], q8 + 64, sc[4]);
            acc[3] = dot16_scaled(acc[3], v[3], q8 + 96, sc[6]);
        }
        const int32x4_t t = vaddq_s32(vaddq_s32(acc[0], acc[1]), vaddq_s32(acc[2], acc[3]));
        sumf += qf_neon_h2f(x[b].d) * y[b].d * (float)vaddvq_s32(t);
    }
    *s = sumf;
}

/* --- K-quant quantizers: the reference's searches, four sub-blocks at a time ----------------- */

/* The scale searches of kquants.c run one sub-block at a time through a sequence of float sums
 * whose order decides which candidate wins. Here each of four vector lanes runs one sub-block
 * (the sub-blocks' values are transposed so that vector i holds element i of each), so every
 * lane performs exactly the reference's operations in the reference's order, and the bytes
 * come out identical; the choices the reference makes with if/else become lane selects. */

#define GROUP_EPS 1e-15f   /* kquants.c's: a sub-block below this magnitude is all zero */
#define MAX_SUB 32         /* elements per sub-block, at most */

/* ggml's nearest_int on four lanes: round to nearest even through the 1.5 * 2^23 bias, with
 * the reference's results for out-of-range inputs too. */
static int32x4_t nearest4(float32x4_t v)
{
    const uint32x4_t bits = vreinterpretq_u32_f32(vaddq_f32(v, vdupq_n_f32(12582912.f)));
    return vsubq_s32(vreinterpretq_s32_u32(vandq_u32(bits, vdupq_n_u32(0x007fffffu))),
                     vdupq_n_s32(0x00400000));
}

static int nearest1(float v)
{
    return vgetq_lane_s32(nearest4(vdupq_n_f32(v)), 0);
}

static int32x4_t clamp4(int32x4_t v, int lo, int hi)
{
    return vminq_s32(vmaxq_s32(v, vdupq_n_s32(lo)), vdupq_n_s32(hi));
}

/* One symmetric trial (kquants.c's sym_trial) on four sub-blocks of 16. */
static void sym_trial4(const float *xt, int nmax, float32x4_t iscale, int32x4_t *L,
                       float32x4_t *sumlx, float32x4_t *suml2)
{
    float32x4_t slx = vdupq_n_f32(0), sl2 = vdupq_n_f32(0);
    for (int i = 0; i < 16; i++) {
        const float32x4_t x = vld1q_f32(xt + 4 * i);
        const int32x4_t l = clamp4(nearest4(vmulq_f32(iscale, x)), -nmax, nmax - 1);
        L[i] = vaddq_s32(l, vdupq_n_s32(nmax));
        const float32x4_t lf = vcvtq_f32_s32(l), w = vmulq_f32(x, x);
        slx = vaddq_f32(slx, vmulq_f32(vmulq_f32(w, x), lf));
        sl2 = vaddq_f32(sl2, vmulq_f32(vmulq_f32(w, lf), lf));
    }
    *sumlx = slx;
    *suml2 = sl2;
}

/* kquants.c's fit_symmetric (n = 16) on four sub-blocks: levels offset by nmax into L, the
 * scales returned per lane. */
static float32x4_t fit_symmetric4(const float *xt, int nmax, int32x4_t L[16])
{
    float32x4_t amax;
    const float32x4_t max = qf_neon_signed_max4(xt, 16, &amax);
    float32x4_t sumlx, suml2;
    sym_trial4(xt, nmax, vdivq_f32(vdupq_n_f32((float)-nmax), max), L, &sumlx, &suml2);
    const uint32x4_t nonzero = vmvnq_u32(vceqq_f32(suml2, vdupq_n_f32(0)));
    float32x4_t scale = vbslq_f32(nonzero, vdivq_f32(sumlx, suml2), vdupq_n_f32(0));
    float32x4_t best = vmulq_f32(scale, sumlx);

    int32x4_t trial[16];
    for (int step = -9; step <= 9; step++) {
        if (step == 0)
            continue;
        const float c = (float)nmax + 0.1f * (float)step;
        sym_trial4(xt, nmax, vdivq_f32(vdupq_n_f32(-c), max), trial, &sumlx, &suml2);
        const uint32x4_t better = vandq_u32(vcgtq_f32(suml2, vdupq_n_f32(0)),
                                            vcgtq_f32(vmulq_f32(sumlx, sumlx),
                                                      vmulq_f32(best, suml2)));
        const float32x4_t s = vdivq_f32(sumlx, suml2);
        for (int i = 0; i < 16; i++)
            L[i] = vbslq_s32(better, trial[i], L[i]);
        scale = vbslq_f32(better, s, scale);
        best = vbslq_f32(better, vmulq_f32(s, sumlx), best);
    }
    const uint32x4_t zero = vcltq_f32(amax, vdupq_n_f32(GROUP_EPS));
    for (int i = 0; i < 16; i++)
        L[i] = vbslq_s32(zero, vdupq_n_s32(0), L[i]);
    return vbslq_f32(zero, vdupq_n_f32(0), scale);
}

/* The settings of one affine search (kquants.c's fit_affine arguments). */
typedef struct affine_search {
    int   n, nmax;
    float rmin, rdelta;
    int   nstep;
    bool  use_mad;
} affine_search;

/* Weighted error of levels l against x: sum w * |diff| or w * diff^2, in element order. */
static float32x4_t affine_error(const affine_search *p, const float *xt, const float *wt,
                                const int32x4_t *l, float32x4_t scale, float32x4_t min)
{
    float32x4_t err = vdupq_n_f32(0);
    for (int i = 0; i < p->n; i++) {
        const float32x4_t x = vld1q_f32(xt + 4 * i);
        float32x4_t diff = vsubq_f32(vaddq_f32(vmulq_f32(scale, vcvtq_f32_s32(l[i])), min), x);
        diff = p->use_mad ? vabsq_f32(diff) : vmulq_f32(diff, diff);
        err = vaddq_f32(err, vmulq_f32(vld1q_f32(wt + 4 * i), diff));
    }
    return err;
}

/* Levels clamp(nearest(iscale * (x - min)), 0, nmax). */
static void affine_levels(const affine_search *p, const float *xt, float32x4_t iscale,
                          float32x4_t min, int32x4_t *l)
{
    for (int i = 0; i < p->n; i++)
        l[i] = clamp4(nearest4(vmulq_f32(iscale, vsubq_f32(vld1q_f32(xt + 4 * i), min))), 0,
                      p->nmax);
}

/* kquants.c's fit_affine on four sub-blocks: levels into L, -min into *the_min, the scale
 * returned, all per lane. */
static float32x4_t fit_affine4(const affine_search *p, const float *xt, const float *wt,
                               int32x4_t *L, float32x4_t *the_min)
{
    float32x4_t min = vld1q_f32(xt), max = min;
    float32x4_t sum_w = vld1q_f32(wt), sum_x = vmulq_f32(sum_w, min);
    for (int i = 1; i < p->n; i++) {
        const float32x4_t x = vld1q_f32(xt + 4 * i), w = vld1q_f32(wt + 4 * i);
        min = vbslq_f32(vcltq_f32(x, min), x, min);
        max = vbslq_f32(vcgtq_f32(x, max), x, max);
        sum_w = vaddq_f32(sum_w, w);
        sum_x = vaddq_f32(sum_x, vmulq_f32(w, x));
    }
    const float32x4_t zero = vdupq_n_f32(0);
    min = vbslq_f32(vcgtq_f32(min, zero), zero, min);
    const float32x4_t min0 = min;
    const uint32x4_t flat = vceqq_f32(max, min);
    float32x4_t iscale = vdivq_f32(vdupq_n_f32((float)p->nmax), vsubq_f32(max, min));
    float32x4_t scale = vdivq_f32(vdupq_n_f32(1), iscale);
    affine_levels(p, xt, iscale, min, L);
    float32x4_t best_error = affine_error(p, xt, wt, L, scale, min);

    int32x4_t trial[MAX_SUB];
    for (int step = 0; step <= p->nstep; step++) {
        const float c = p->rmin + p->rdelta * (float)step + (float)p->nmax;
        /* min moves when a trial wins, and the reference's range moves with it */
        iscale = vdivq_f32(vdupq_n_f32(c), vsubq_f32(max, min));
        affine_levels(p, xt, iscale, min, trial);
        float32x4_t sum_l = zero, sum_l2 = zero, sum_xl = zero;
        for (int i = 0; i < p->n; i++) {
            const float32x4_t w = vld1q_f32(wt + 4 * i), lf = vcvtq_f32_s32(trial[i]);
            const float32x4_t wl = vmulq_f32(w, lf);
            sum_l = vaddq_f32(sum_l, wl);
            sum_l2 = vaddq_f32(sum_l2, vmulq_f32(wl, lf));
            sum_xl = vaddq_f32(sum_xl, vmulq_f32(wl, vld1q_f32(xt + 4 * i)));
        }
        const float32x4_t D = vsubq_f32(vmulq_f32(sum_w, sum_l2), vmulq_f32(sum_l, sum_l));
        float32x4_t this_scale = vdivq_f32(vsubq_f32(vmulq_f32(sum_w, sum_xl),
                                                     vmulq_f32(sum_x, sum_l)), D);
        float32x4_t this_min = vdivq_f32(vsubq_f32(vmulq_f32(sum_l2, sum_x),
                                                   vmulq_f32(sum_l, sum_xl)), D);
        const uint32x4_t pos = vcgtq_f32(this_min, zero);
        this_min = vbslq_f32(pos, zero, this_min);
        this_scale = vbslq_f32(pos, vdivq_f32(sum_xl, sum_l2), this_scale);
        const float32x4_t error = affine_error(p, xt, wt, trial, this_scale, this_min);
        const uint32x4_t better = vandq_u32(vcgtq_f32(D, zero), vcltq_f32(error, best_error));
        for (int i = 0; i < p->n; i++)
            L[i] = vbslq_s32(better, trial[i], L[i]);
        best_error = vbslq_f32(better, error, best_error);
        scale = vbslq_f32(better, this_scale, scale);
        min = vbslq_f32(better, this_min, min);
    }
    for (int i = 0; i < p->n; i++)
        L[i] = vbslq_s32(flat, vdupq_n_s32(0), L[i]);
    *the_min = vnegq_f32(vbslq_f32(flat, min0, min));
    return vbslq_f32(flat, zero, scale);
}

/* Runs fit_affine4 over nsub sub-blocks of p->n weights (nsub a multiple of 4), with weights
 * w (same layout as x). */
static void fit_affine_all(const affine_search *p, const float *x, const float *w, int nsub,
                           uint8_t *L, float *scales, float *mins)
{
    float xt[4 * MAX_SUB], wt[4 * MAX_SUB];
    int32x4_t lv[MAX_SUB];
    for (int g = 0; g < nsub; g += 4) {
        qf_neon_transpose_in(x + g * p->n, p->n, p->n, xt);
        qf_neon_transpose_in(w + g * p->n, p->n, p->n, wt);
        float32x4_t the_min;
        vst1q_f32(scales + g, fit_affine4(p, xt, wt, lv, &the_min));
        vst1q_f32(mins + g, the_min);
        qf_neon_transpose_out(lv, p->n, p->n, L + g * p->n);
    }
}

/* The largest of n affine fits' scales and of their mins, from 0 (both are >= 0 after the
 * fit), as the reference scans them. */
static void largest_fits(const float *scales, const float *mins, int n, float *max_scale,
                         float *max_min)
{
    *max_scale = 0;
    *max_min = 0;
    for (int j = 0; j < n; j++) {
        if (scales[j] > *max_scale)
            *max_scale = scales[j];
        if (mins[j] > *max_min)
            *max_min = mins[j];
    }
}

/* Requantizes 16 weights at a stored scale: L = clamp(nearest((x + dm) / d), lo, hi) + off. */
static void requant16(const float *x, float d, float dm, int lo, int hi, int off, uint8_t *L)
{
    int32x4_t q[4];
    for (int i = 0; i < 4; i++) {
        const float32x4_t v = vaddq_f32(vld1q_f32(x + 4 * i), vdupq_n_f32(dm));
        q[i] = vaddq_s32(clamp4(nearest4(vdivq_f32(v, vdupq_n_f32(d))), lo, hi),
                         vdupq_n_s32(off));
    }
    vst1q_u8(L, vreinterpretq_u8_s8(qf_neon_narrow_s8(q[0], q[1], q[2], q[3])));
}

/* kquants.c's fit_q3 (n = 16, make_q3_quants with rmse) on four sub-blocks: a start from the
 * largest magnitude, then passes of coordinate descent. A lane whose pass changed nothing
 * would change nothing in another pass either (its state is the same), so running passes
 * while any lane changes gives every lane the reference's result. Levels offset by nmax. */
static float32x4_t fit_q3_4(const float *xt, int nmax, int32x4_t L[16])
{
    float32x4_t amax;
    const float32x4_t max = qf_neon_signed_max4(xt, 16, &amax);
    const float32x4_t zero = vdupq_n_f32(0);
    const float32x4_t iscale = vdivq_f32(vdupq_n_f32((float)-nmax), max);
    float32x4_t sumlx = zero, suml2 = zero;
    for (int i = 0; i < 16; i++) {
        const float32x4_t x = vld1q_f32(xt + 4 * i);
        L[i] = clamp4(nearest4(vmulq_f32(iscale, x)), -nmax, nmax - 1);
        const float32x4_t lf = vcvtq_f32_s32(L[i]), w = vmulq_f32(x, x);
        sumlx = vaddq_f32(sumlx, vmulq_f32(vmulq_f32(w, x), lf));
        suml2 = vaddq_f32(suml2, vmulq_f32(vmulq_f32(w, lf), lf));
    }
    for (int pass = 0; pass < 5; pass++) {
        uint32x4_t changed = vdupq_n_u32(0);
        for (int i = 0; i < 16; i++) {
            const float32x4_t x = vld1q_f32(xt + 4 * i), w = vmulq_f32(x, x);
            const float32x4_t lf = vcvtq_f32_s32(L[i]);
            float32x4_t slx = vsubq_f32(sumlx, vmulq_f32(vmulq_f32(w, x), lf));
            float32x4_t sl2 = vsubq_f32(suml2, vmulq_f32(vmulq_f32(w, lf), lf));
            const int32x4_t new_l = clamp4(nearest4(vdivq_f32(vmulq_f32(x, sl2), slx)), -nmax,
                                           nmax - 1);
            const float32x4_t nf = vcvtq_f32_s32(new_l);
            slx = vaddq_f32(slx, vmulq_f32(vmulq_f32(w, x), nf));
            sl2 = vaddq_f32(sl2, vmulq_f32(vmulq_f32(w, nf), nf));
            uint32x4_t take = vandq_u32(vcgtq_f32(vsubq_f32(sumlx, vmulq_f32(vmulq_f32(w, x), lf)),
                                                  zero),
                                        vmvnq_u32(vceqq_s32(new_l, L[i])));
            take = vandq_u32(take, vcgtq_f32(sl2, zero));
            take = vandq_u32(take, vcgtq_f32(vmulq_f32(vmulq_f32(slx, slx), suml2),
                                             vmulq_f32(vmulq_f32(sumlx, sumlx), sl2)));
            L[i] = vbslq_s32(take, new_l, L[i]);
            sumlx = vbslq_f32(take, slx, sumlx);
            suml2 = vbslq_f32(take, sl2, suml2);
            changed = vorrq_u32(changed, take);
        }
        if (vmaxvq_u32(changed) == 0)
            break;
    }
    const uint32x4_t flat = vcltq_f32(amax, vdupq_n_f32(GROUP_EPS));
    for (int i = 0; i < 16; i++)   /* an all-zero sub-block keeps raw zeros, as the reference */
        L[i] = vbslq_s32(flat, vdupq_n_s32(0), vaddq_s32(L[i], vdupq_n_s32(nmax)));
    const float32x4_t scale = vbslq_f32(vcgtq_f32(suml2, zero), vdivq_f32(sumlx, suml2), zero);
    return vbslq_f32(flat, zero, scale);
}

/* The symmetric fits of the 16 sub-blocks of 16 of a super-block, four at a time: q3_K's
 * (fit_q3_4, levels -4..3) or q6_K's (fit_symmetric4, levels -32..31), offset to >= 0. */
static void fit_sub16(const float *x, bool q3, float scales[16], uint8_t L[QF_QK_K])
{
    float xt[64];
    int32x4_t lv[16];
    for (int g = 0; g < 16; g += 4) {
        qf_neon_transpose_in(x + 16 * g, 16, 16, xt);
        vst1q_f32(scales + g, q3 ? fit_q3_4(xt, 4, lv) : fit_symmetric4(xt, 32, lv));
        qf_neon_transpose_out(lv, 16, 16, L + 16 * g);
    }
}

/* --- q6_K quantize --- */

static void quantize_row_q6_K(const float *x, void *vy, int64_t k)
{
    assert(k % QF_QK_K == 0);
    qf_block_q6_K *y = vy;
    for (int64_t b = 0; b < k / QF_QK_K; b++, x += QF_QK_K) {
        uint8_t L[QF_QK_K];
        float scales[16];
        fit_sub16(x, false, scales, L);
        float max_abs_scale;
        const float max_scale = qf_ref_signed_absmax(scales, 16, &max_abs_scale);
        if (max_abs_scale < GROUP_EPS) {
            memset(&y[b], 0, sizeof y[b]);
            y[b].d = qf_fp32_to_fp16(0.f);
            continue;
        }
        const float iscale = -128.f / max_scale;
        y[b].d = qf_fp32_to_fp16(1 / iscale);
        for (int j = 0; j < 16; j++) {
            const int l = nearest1(iscale * scales[j]);
            y[b].scales[j] = (int8_t)(l < 127 ? l : 127);
        }
        const float d_all = qf_neon_h2f(y[b].d);
        for (int j = 0; j < 16; j++) {
            const float d = d_all * (float)y[b].scales[j];
            if (d != 0.0f)
                requant16(x + 16 * j, d, 0.0f, -32, 31, 32, L + 16 * j);
        }
        /* weight 128h + 32t + l: low nibble into ql, top two bits into qh (see q6_levels) */
        for (int h = 0; h < 2; h++)
            for (int half = 0; half < 2; half++) {
                const uint8_t *q = L + 128 * h + 16 * half;
                const uint8x16_t q0 = vld1q_u8(q), q1 = vld1q_u8(q + 32);
                const uint8x16_t q2 = vld1q_u8(q + 64), q3 = vld1q_u8(q + 96);
                const uint8x16_t m4 = vdupq_n_u8(0x0F);
                vst1q_u8(y[b].ql + 64 * h + 16 * half,
                         vorrq_u8(vandq_u8(q0, m4), vshlq_n_u8(q2, 4)));
                vst1q_u8(y[b].ql + 64 * h + 32 + 16 * half,
                         vorrq_u8(vandq_u8(q1, m4), vshlq_n_u8(q3, 4)));
                uint8x16_t hb = vshrq_n_u8(q0, 4);
                hb = vorrq_u8(hb, vshlq_n_u8(vshrq_n_u8(q1, 4), 2));
                hb = vorrq_u8(hb, vshlq_n_u8(vshrq_n_u8(q2, 4), 4));
                hb = vorrq_u8(hb, vshlq_n_u8(vshrq_n_u8(q3, 4), 6));
                vst1q_u8(y[b].qh + 32 * h + 16 * half, hb);
            }
    }
}

/* --- q4_K and q5_K quantize --- */

/* kquants.c's quantize_k4_like: fits, 6-bit scales and mins, then levels from stored scales. */
static void quantize_k4_like(const float *x, const affine_search *p, qf_half *d_out,
                             qf_half *dmin_out, uint8_t scales_out[12], uint8_t L[QF_QK_K])
{
    float w[QF_QK_K];
    for (int j = 0; j < 8; j++) {
        const float *xs = x + 32 * j;
        float sum_x2 = 0;
        for (int l = 0; l < 32; l++)          /* element order, as the reference */
            sum_x2 += xs[l] * xs[l];
        const float av_x = sqrtf(sum_x2 / 32);
        for (int l = 0; l < 32; l += 4)
            vst1q_f32(w + 32 * j + l, vaddq_f32(vdupq_n_f32(av_x), vabsq_f32(vld1q_f32(xs + l))));
    }
    float scales[8], mins[8];
    fit_affine_all(p, x, w, 8, L, scales, mins);

    float max_scale, max_min;
    largest_fits(scales, mins, 8, &max_scale, &max_min);
    const float inv_scale = max_scale > 0 ? 63.f / max_scale : 0.f;
    const float inv_min = max_min > 0 ? 63.f / max_min : 0.f;
    uint8_t ls[8], lm[8];
    for (int j = 0; j < 8; j++) {
        const uint8_t s = (uint8_t)nearest1(inv_scale * scales[j]);
        const uint8_t m = (uint8_t)nearest1(inv_min * mins[j]);
        ls[j] = s < 63 ? s : 63;
        lm[j] = m < 63 ? m : 63;
    }
    for (int j = 0; j < 4; j++) {   /* the layout unpack_k4_scales reads */
        scales_out[j] = (uint8_t)(ls[j] | (ls[j + 4] >> 4) << 6);
        scales_out[j + 4] = (uint8_t)(lm[j] | (lm[j + 4] >> 4) << 6);
        scales_out[j + 8] = (uint8_t)((ls[j + 4] & 0xF) | (lm[j + 4] & 0xF) << 4);
    }
    *d_out = qf_fp32_to_fp16(max_scale / 63.f);
    *dmin_out = qf_fp32_to_fp16(max_min / 63.f);

    const float d_all = qf_neon_h2f(*d_out), dmin_all = qf_neon_h2f(*dmin_out);
    for (int j = 0; j < 8; j++) {
        const float d = d_all * (float)ls[j];
        if (d == 0.0f)
            continue;      /* a zero scale keeps the fit's levels, as the reference */
        const float dm = dmin_all * (float)lm[j];
        requant16(x + 32 * j, d, dm, 0, p->nmax, 0, L + 32 * j);
        requant16(x + 32 * j + 16, d, dm, 0, p->nmax, 0, L + 32 * j + 16);
    }
}

/* Low nibbles of weights 64p + l and 64p + 32 + l into qs[32p + l]. */
static void pack_k4_nibbles(const uint8_t L[QF_QK_K], uint8_t qs[QF_QK_K / 2])
{
    const uint8x16_t m4 = vdupq_n_u8(0x0F);
    for (int p = 0; p < 4; p++)
        for (int half = 0; half < 2; half++) {
            const uint8x16_t lo = vld1q_u8(L + 64 * p + 16 * half);
            const uint8x16_t hi = vld1q_u8(L + 64 * p + 32 + 16 * half);
            vst1q_u8(qs + 32 * p + 16 * half, vorrq_u8(vandq_u8(lo, m4), vshlq_n_u8(hi, 4)));
        }
}

static void quantize_row_q4_K(const float *x, void *vy, int64_t k)
{
    assert(k % QF_QK_K == 0);
    static const affine_search p = { .n = 32, .nmax = 15, .rmin = -1.f, .rdelta = 0.1f,
                                     .nstep = 20, .use_mad = false };
    qf_block_q4_K *y = vy;
    for (int64_t b = 0; b < k / QF_QK_K; b++, x += QF_QK_K) {
        uint8_t L[QF_QK_K];
        quantize_k4_like(x, &p, &y[b].d, &y[b].dmin, y[b].scales, L);
        pack_k4_nibbles(L, y[b].qs);
    }
}

static void quantize_row_q5_K(const float *x, void *vy, int64_t k)
{
    assert(k % QF_QK_K == 0);
    static const affine_search p = { .n = 32, .nmax = 31, .rmin = -0.5f, .rdelta = 0.1f,
                                     .nstep = 15, .use_mad = false };
    qf_block_q5_K *y = vy;
    for (int64_t b = 0; b < k / QF_QK_K; b++, x += QF_QK_K) {
        uint8_t L[QF_QK_K];
        quantize_k4_like(x, &p, &y[b].d, &y[b].dmin, y[b].scales, L);
        /* the fifth bit of weight i is bit i / 32 of qh[i % 32] */
        for (int half = 0; half < 2; half++) {
            uint8x16_t h = vdupq_n_u8(0);
            for (int s = 0; s < 8; s++) {
                const uint8x16_t v = vld1q_u8(L + 32 * s + 16 * half);
                h = vorrq_u8(h, vshlq_u8(vandq_u8(vshrq_n_u8(v, 4), vdupq_n_u8(1)),
                                         vdupq_n_s8((int8_t)s)));
            }
            vst1q_u8(y[b].qh + 16 * half, h);
        }
        pack_k4_nibbles(L, y[b].qs);
    }
}

/* --- q2_K quantize --- */

/* Levels 0..3 (only the low two bits are read) of weight 128h + 32s + l into bits 2s of
 * qs[32h + l], as q2_K and q3_K keep them. */
static void pack_2bit_levels(const uint8_t L[QF_QK_K], uint8_t qs[QF_QK_K / 4])
{
    const uint8x16_t three = vdupq_n_u8(3);
    for (int h = 0; h < 2; h++)
        for (int half = 0; half < 2; half++) {
            const uint8_t *q = L + 128 * h + 16 * half;
            uint8x16_t v = vandq_u8(vld1q_u8(q), three);
            v = vorrq_u8(v, vshlq_n_u8(vandq_u8(vld1q_u8(q + 32), three), 2));
            v = vorrq_u8(v, vshlq_n_u8(vandq_u8(vld1q_u8(q + 64), three), 4));
            v = vorrq_u8(v, vshlq_n_u8(vandq_u8(vld1q_u8(q + 96), three), 6));
            vst1q_u8(qs + 32 * h + 16 * half, v);
        }
}

static void quantize_row_q2_K(const float *x, void *vy, int64_t k)
{
    assert(k % QF_QK_K == 0);
    static const affine_search p = { .n = 16, .nmax = 3, .rmin = -0.5f, .rdelta = 0.1f,
                                      .nstep = 15, .use_mad = true };
    const float q4scale = 15.f;
    qf_block_q2_K *y = vy;
    for (int64_t b = 0; b < k / QF_QK_K; b++, x += QF_QK_K) {
        uint8_t L[QF_QK_K];
        float w[QF_QK_K], scales[16], mins[16];
        for (int i = 0; i < QF_QK_K; i += 4)
            vst1q_f32(w + i, vabsq_f32(vld1q_f32(x + i)));
        fit_affine_all(&p, x, w, 16, L, scales, mins);
        float max_scale, max_min;
        largest_fits(scales, mins, 16, &max_scale, &max_min);
        if (max_scale > 0) {
            const float iscale = q4scale / max_scale;
            for (int j = 0; j < 16; j++)
                y[b].scales[j] = (uint8_t)nearest1(iscale * scales[j]);
            y[b].d = qf_fp32_to_fp16(max_scale / q4scale);
        } else {
            memset(y[b].scales, 0, sizeof y[b].scales);
            y[b].d = qf_fp32_to_fp16(0.f);
        }
        if (max_min > 0) {
            const float iscale = q4scale / max_min;
            for (int j = 0; j < 16; j++)
                y[b].scales[j] |= (uint8_t)((unsigned)nearest1(iscale * mins[j]) << 4);
            y[b].dmin = qf_fp32_to_fp16(max_min / q4scale);
        } else {
            y[b].dmin = qf_fp32_to_fp16(0.f);
        }
        const float d_all = qf_neon_h2f(y[b].d), dmin_all = qf_neon_h2f(y[b].dmin);
        for (int j = 0; j < 16; j++) {
            const float d = d_all * (float)(y[b].scales[j] & 0xF);
            if (d != 0.0f)
                requant16(x + 16 * j, d, dmin_all * (float)(y[b].scales[j] >> 4), 0, 3, 0,
                          L + 16 * j);
        }
        pack_2bit_levels(L, y[b].qs);
    }
}

/* --- q3_K quantize --- */

static void quantize_row_q3_K(const float *x, void *vy, int64_t k)
{
    assert(k % QF_QK_K == 0);
    qf_block_q3_K *y = vy;
    for (int64_t b = 0; b < k / QF_QK_K; b++, x += QF_QK_K) {
        uint8_t L[QF_QK_K];
        float scales[16];
        fit_sub16(x, true, scales, L);
        float amax;
        const float max_scale = qf_ref_signed_absmax(scales, 16, &amax);
        int sc[16] = { 0 };
        memset(y[b].scales, 0, sizeof y[b].scales);
        if (max_scale != 0) {
            const float iscale = -32.f / max_scale;
            for (int j = 0; j < 16; j++) {
                const int8_t l = (int8_t)nearest1(iscale * scales[j]);
                sc[j] = (l < -32 ? -32 : l > 31 ? 31 : l) + 32;
                y[b].scales[j % 8] |= (uint8_t)((sc[j] & 0xF) << (4 * (j / 8)));
                y[b].scales[8 + j % 4] |= (uint8_t)((sc[j] >> 4) << (2 * (j / 4)));
            }
            y[b].d = qf_fp32_to_fp16(1 / iscale);
        } else {
            y[b].d = qf_fp32_to_fp16(0.f);
        }
        const float d_all = qf_neon_h2f(y[b].d);
        for (int j = 0; j < 16; j++) {
            const float d = d_all * (float)(sc[j] - 32);
            if (d != 0.0f)
                requant16(x + 16 * j, d, 0.0f, -4, 3, 4, L + 16 * j);
        }
        /* level 0..7: bit 2 into hmask (weight i is bit i / 32 of hmask[i % 32]), the low two
         * bits into qs as q2_K */
        for (int half = 0; half < 2; half++) {
            uint8x16_t h = vdupq_n_u8(0);
            for (int s = 0; s < 8; s++) {
                const uint8x16_t v = vld1q_u8(L + 32 * s + 16 * half);
                h = vorrq_u8(h, vshlq_u8(vandq_u8(vshrq_n_u8(v, 2), vdupq_n_u8(1)),
                                         vdupq_n_s8((int8_t)s)));
            }
            vst1q_u8(y[b].hmask + 16 * half, h);
        }
        pack_2bit_levels(L, y[b].qs);
    }
}

/* Only stores pointers: no NEON instruction runs here (qf_isa_fill.h). */
void qf_isa_fill_neon_kquants(qf_isa_kernels t[QF_FMT_COUNT])
{
    t[QF_FMT_Q8_K] = (qf_isa_kernels){ quantize_row_q8_K, dequantize_row_q8_K, NULL };
    t[QF_FMT_Q2_K] = (qf_isa_kernels){ quantize_row_q2_K, dequantize_row_q2_K, vec_dot_q2_K };
    t[QF_FMT_Q3_K] = (qf_isa_kernels){ quantize_row_q3_K, dequantize_row_q3_K, vec_dot_q3_K };
    t[QF_FMT_Q4_K] = (qf_isa_kernels){ quantize_row_q4_K, dequantize_row_q4_K, vec_dot_q4_K };
    t[QF_FMT_Q5_K] = (qf_isa_kernels){ quantize_row_q5_K, dequantize_row_q5_K, vec_dot_q5_K };
    t[QF_FMT_Q6_K] = (qf_isa_kernels){ quantize_row_q6_K, dequantize_row_q6_K, vec_dot_q6_K };
}
