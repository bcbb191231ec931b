/* neon_util.h - small NEON helpers the kernels/arm/neon_*.c files share (private to them).
 *
 * Included only by files compiled with -march=armv8.2-a+dotprod+fp16, so everything here may
 * use those instructions; nothing here may be called from a fill function. The block-statistics
 * helpers serve the byte-exact quantizers: they say whether a block is "plain" (finite, not all
 * zero), and a quantizer takes its vector path only for plain blocks, handing every other block
 * to the reference kernel, which defines the odd cases (NaN, infinities, signed zeros, scales
 * that under- or overflow). That keeps the vector code short and the bytes equal by
 * construction. The transposes and the per-lane signed maximum serve the scale searches that
 * run one sub-block (or block) per lane (neon_kquants.c, iq4_nl in neon_legacy.c).
 */
#ifndef QF_NEON_UTIL_H
#define QF_NEON_UTIL_H

#include <arm_neon.h>
#include <float.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "qf_blocks.h"

/* Float arithmetic in these files is written in the reference's order; clang must not fuse a
 * multiply and an add into one rounding (gcc does not under -std=c11). */
#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

/* binary16 -> binary32 with the FPU's conversion: the same bits as qf_fp16_to_fp32 for every
 * input, NaN payloads included (FPCR's default-NaN mode is off under Linux and macOS). */
static inline float qf_neon_h2f(qf_half h)
{
    __fp16 f;
    memcpy(&f, &h, sizeof f);
    return (float)f;
}

/* binary32 -> binary16 with the FPU's conversion (round to nearest even, subnormals kept, as
 * FPCR has them under Linux and macOS): the same bits as qf_fp32_to_fp16 for every input but
 * NaN, whose payload the FPU keeps. For scales of plain blocks, which are never NaN. */
static inline qf_half qf_neon_f2h(float f)
{
    const __fp16 h = (__fp16)f;
    qf_half bits;
    memcpy(&bits, &h, sizeof bits);
    return bits;
}

/* Largest |x|, largest and smallest x of n floats (n a multiple of 16). FMAX/FMIN propagate
 * NaN, so a NaN anywhere makes all three NaN. */
static inline void qf_neon_stats(const float *x, int n, float *amax, float *mx, float *mn)
{
    float32x4_t va = vdupq_n_f32(0.0f), vx = vld1q_f32(x), vn = vx;
    for (int j = 0; j < n; j += 16) {
        const float32x4_t a = vld1q_f32(x + j), b = vld1q_f32(x + j + 4);
        const float32x4_t c = vld1q_f32(x + j + 8), d = vld1q_f32(x + j + 12);
        va = vmaxq_f32(va, vmaxq_f32(vmaxq_f32(vabsq_f32(a), vabsq_f32(b)),
                                     vmaxq_f32(vabsq_f32(c), vabsq_f32(d))));
        vx = vmaxq_f32(vx, vmaxq_f32(vmaxq_f32(a, b), vmaxq_f32(c, d)));
        vn = vminq_f32(vn, vminq_f32(vminq_f32(a, b), vminq_f32(c, d)));
    }
    *amax = vmaxvq_f32(va);
    *mx = vmaxvq_f32(vx);
    *mn = vminvq_f32(vn);
}

/* A block the vector quantizers handle: no NaN, no infinity, not all zero. */
static inline bool qf_neon_plain(float amax)
{
    return amax > 0.0f && amax <= FLT_MAX;
}

/* The value of largest magnitude with its sign, the first one winning ties, as
 * qf_ref_signed_absmax; for a plain block whose statistics qf_neon_stats gave. Only when both
 * +amax and -amax occur does the order matter, and then a scalar scan decides. */
static inline float qf_neon_signed_max(const float *x, int n, float amax, float mx, float mn)
{
    if (mx != amax)
        return mn;
    if (mn != -amax)
        return mx;
    for (int j = 0; j < n; j++)
        if (x[j] == amax || x[j] == -amax)
            return x[j];
    return mx;
}

/* Round to nearest with ties away from zero, then narrow 16 int32 lanes to int8 with
 * saturation (callers keep values within int8 beforehand, so saturation never bites). */
static inline int8x16_t qf_neon_narrow_s8(int32x4_t a, int32x4_t b, int32x4_t c, int32x4_t d)
{
    const int16x8_t lo = vcombine_s16(vqmovn_s32(a), vqmovn_s32(b));
    const int16x8_t hi = vcombine_s16(vqmovn_s32(c), vqmovn_s32(d));
    return vcombine_s8(vqmovn_s16(lo), vqmovn_s16(hi));
}

/* Same for unsigned lanes known to be 0..255. */
static inline uint8x16_t qf_neon_narrow_u8(uint32x4_t a, uint32x4_t b, uint32x4_t c,
                                           uint32x4_t d)
{
    const uint16x8_t lo = vcombine_u16(vqmovn_u32(a), vqmovn_u32(b));
    const uint16x8_t hi = vcombine_u16(vqmovn_u32(c), vqmovn_u32(d));
    return vcombine_u8(vqmovn_u16(lo), vqmovn_u16(hi));
}

/* The 32 fifth bits of a q5 block (bit j of the little-endian qh = weight j) as bytes 0x10
 * or 0, weights 0..15 in *lo and 16..31 in *hi. */
static inline void qf_neon_q5_high(const uint8_t qh[4], uint8x16_t *lo, uint8x16_t *hi)
{
    static const uint8_t k_bits[16] = { 1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128 };
    const uint8x16_t bits = vld1q_u8(k_bits);
    const uint8x16_t b01 = vcombine_u8(vdup_n_u8(qh[0]), vdup_n_u8(qh[1]));
    const uint8x16_t b23 = vcombine_u8(vdup_n_u8(qh[2]), vdup_n_u8(qh[3]));
    const uint8x16_t h = vdupq_n_u8(0x10);
    *lo = vandq_u8(vtstq_u8(b01, bits), h);
    *hi = vandq_u8(vtstq_u8(b23, bits), h);
}

/* The inverse of qf_neon_q5_high: bit 4 of each of 32 level bytes, packed into a little-endian
 * u32 (lo holds weights 0..15). */
static inline void qf_neon_q5_pack_high(uint8x16_t lo, uint8x16_t hi, uint8_t qh[4])
{
    static const uint8_t k_bits[16] = { 1, 2, 4, 8, 16, 32, 64, 128, 1, 2, 4, 8, 16, 32, 64, 128 };
    const uint8x16_t bits = vld1q_u8(k_bits);
    const uint8x16_t one = vdupq_n_u8(1);
    const uint8x16_t l = vmulq_u8(vandq_u8(vshrq_n_u8(lo, 4), one), bits);
    const uint8x16_t h = vmulq_u8(vandq_u8(vshrq_n_u8(hi, 4), one), bits);
    qh[0] = vaddv_u8(vget_low_u8(l));
    qh[1] = vaddv_u8(vget_high_u8(l));
    qh[2] = vaddv_u8(vget_low_u8(h));
    qh[3] = vaddv_u8(vget_high_u8(h));
}

/* 16 int8 lanes widened to four float32x4 (exact). */
static inline void qf_neon_s8_to_f32(int8x16_t v, float32x4_t out[4])
{
    const int16x8_t lo = vmovl_s8(vget_low_s8(v)), hi = vmovl_s8(vget_high_s8(v));
    out[0] = vcvtq_f32_s32(vmovl_s16(vget_low_s16(lo)));
    out[1] = vcvtq_f32_s32(vmovl_s16(vget_high_s16(lo)));
    out[2] = vcvtq_f32_s32(vmovl_s16(vget_low_s16(hi)));
    out[3] = vcvtq_f32_s32(vmovl_s16(vget_high_s16(hi)));
}

/* y[0..16) = d * v, one rounding per element, as the reference's (float)q * d. */
static inline void qf_neon_store_scaled(float *y, int8x16_t v, float d)
{
    float32x4_t f[4];
    qf_neon_s8_to_f32(v, f);
    for (int i = 0; i < 4; i++)
        vst1q_f32(y + 4 * i, vmulq_n_f32(f[i], d));
}

/* y[0..16) = d * v - m (the K-quants' dl * q - ml) or, with add, d * v + m (q4_1 and q5_1):
 * two roundings, as the reference. Not d * v + (-m): that flips the sign of a NaN m. */
static inline void qf_neon_store_affine(float *y, int8x16_t v, float d, float m, bool add)
{
    float32x4_t f[4];
    qf_neon_s8_to_f32(v, f);
    const float32x4_t vm = vdupq_n_f32(m);
    for (int i = 0; i < 4; i++) {
        const float32x4_t p = vmulq_n_f32(f[i], d);
        vst1q_f32(y + 4 * i, add ? vaddq_f32(p, vm) : vsubq_f32(p, vm));
    }
}

/* The lane-parallel searches (a sub-block or block per lane, see neon_kquants.c) transpose
 * four groups of n <= 32 floats: xt[4i + r] = x[r * stride + i], element i of each group in
 * one vector. */
static inline void qf_neon_transpose_in(const float *x, int n, int stride, float *xt)
{
    for (int r = 0; r < 4; r++)
        for (int i = 0; i < n; i++)
            xt[4 * i + r] = x[r * stride + i];
}

/* And back, for the levels: L[r * stride + i] = lane r of lv[i] (n <= 32). */
static inline void qf_neon_transpose_out(const int32x4_t *lv, int n, int stride, uint8_t *L)
{
    int32_t t[32][4];
    for (int i = 0; i < n; i++)
        vst1q_s32(t[i], lv[i]);
    for (int r = 0; r < 4; r++)
        for (int i = 0; i < n; i++)
            L[r * stride + i] = (uint8_t)t[i][r];
}

/* Per lane of n transposed vectors (see qf_neon_transpose_in): the element of largest
 * magnitude with its sign, the first winning ties and NaN never, as qf_ref_signed_absmax;
 * *amax gets its magnitude. */
static inline float32x4_t qf_neon_signed_max4(const float *xt, int n, float32x4_t *amax)
{
    float32x4_t best = vdupq_n_f32(0), max = vdupq_n_f32(0);
    for (int i = 0; i < n; i++) {
        const float32x4_t x = vld1q_f32(xt + 4 * i), ax = vabsq_f32(x);
        const uint32x4_t gt = vcgtq_f32(ax, best);
        best = vbslq_f32(gt, ax, best);
        max = vbslq_f32(gt, x, max);
    }
    *amax = best;
    return max;
}

#endif
