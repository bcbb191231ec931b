/* intq.c - reference kernels of quantfleet's own integer formats: int8_pc and int4_gG.
 *
 * These are the "plain INT8" and "group-wise INT4" schemes of the comparison tables, with
 * layouts in qf_blocks.h and the same rules written for users in docs/formats.md
 * ("quantfleet's own formats"). Every rule below is part of the format: a faster variant must
 * produce the same bytes from the same floats. All arithmetic is binary32 in the order written,
 * "round" is round-half-away-from-zero (C roundf), and divisions are true divisions, not
 * multiplications by a reciprocal.
 *
 * int8_pc (one row = [f32 scale, little-endian][k x int8]):
 *   amax  = max |x_i| over the row
 *   scale = amax / 127                          (stored; decode w = scale * q)
 *   q_i   = clamp(round(x_i / scale), -127, 127), and q_i = 0 for every i when scale == 0
 *
 * int4_gG, G = 32, 64, 128 (one block per group = [d: f16, 2 bytes LE][z: u8][G/2 bytes]):
 *   lo = min(min x_i, 0), hi = max(max x_i, 0)  (the range holds 0, so 0 decodes exactly)
 *   d  = fp16((hi - lo) / 15)                   (qf_fp32_to_fp16: round to nearest even)
 *   z  = clamp(round(-lo / d), 0, 15)
 *   q_i = clamp(round(x_i / d) + z, 0, 15)      (decode w = d * (q - z))
 *   If d is 0 after rounding to f16 (an all-zero group, or a range below f16's resolution),
 *   the block is all zero bytes: d = 0, z = 0, q = 0, and decodes to 0.
 *   Nibbles as q4_0: byte j holds weight j in its low nibble and weight j + G/2 in its high.
 *
 * Dot products against q8_0 activations (f16 d_a, 32 int8 per block), k a multiple of 32:
 *   int8_pc:  sumf = sum over blocks b of d_a(b) * (float)isum(b),  *s = scale * sumf
 *   int4_gG:  sumf = sum over 32-sub-blocks b of (d_w * d_a(b)) * (float)(isum(b) - z * asum(b))
 * where isum(b) = sum q_w q_a and asum(b) = sum q_a are exact int32 sums over the 32 weights of
 * block b, and sumf is a binary32 accumulator starting at 0 and added in block order (as
 * ggml's q8_0 dot does). Faster variants may reassociate the float sums; they are held to a
 * stated tolerance, not to the bits.
 * NaN inputs quantize to a value that decodes as 0; an int4 group whose range hi - lo reaches
 * 15 * 65520 (d overflows f16) is outside the format. Neither triggers undefined behaviour.
 * No fused multiply-add: gcc does not contract under -std=c11, the pragma below covers clang.
 * Called per row through the format table (kernels/formats.c), by tests and benchmarks.
 */
#include <assert.h>
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "qf_formats.h"
#include "qf_ref.h"

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

/* The int4 kernels below address a block as bytes; tie them to the declared layout. */
#define QF_CHECK_INT4_LAYOUT(G)                                                             \
    QF_STATIC_ASSERT(offsetof(qf_block_int4_g##G, d) == 0 &&                               \
                     offsetof(qf_block_int4_g##G, z) == 2 &&                               \
                     offsetof(qf_block_int4_g##G, qs) == 3, "int4_g" #G " field offsets");
QF_CHECK_INT4_LAYOUT(32)
QF_CHECK_INT4_LAYOUT(64)
QF_CHECK_INT4_LAYOUT(128)
#undef QF_CHECK_INT4_LAYOUT

#define INT4_HDR 3   /* d (2 bytes) + z */

/* round(v) clamped to [lo, hi]; NaN maps to 0. Clamping happens in float, before the
 * conversion, so the cast never sees an out-of-range value. */
static int round_clamp(float v, int lo, int hi)
{
    if (isnan(v))
        return 0;
    v = roundf(v);
    if (v < (float)lo)
        return lo;
    if (v > (float)hi)
        return hi;
    return (int)v;
}

static void put_f32_le(uint8_t *p, float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    p[0] = (uint8_t)u;
    p[1] = (uint8_t)(u >> 8);
    p[2] = (uint8_t)(u >> 16);
    p[3] = (uint8_t)(u >> 24);
}

static float get_f32_le(const uint8_t *p)
{
    uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                 (uint32_t)p[3] << 24;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* --- int8_pc ----------------------------------------------------------------------------- */

void qf_quantize_row_int8_pc_ref(const float *x, void *y, int64_t k)
{
    assert(k > 0);
    uint8_t *out = y;
    int8_t *q = (int8_t *)(out + QF_INT8_PC_HEADER);

    float amax = 0.0f;
    for (int64_t i = 0; i < k; i++) {
        float a = fabsf(x[i]);
        if (a > amax)
            amax = a;
    }
    float scale = amax / 127.0f;
    put_f32_le(out, scale);
    for (int64_t i = 0; i < k; i++)
        q[i] = (int8_t)(scale == 0.0f ? 0 : round_clamp(x[i] / scale, -127, 127));
}

void qf_dequantize_row_int8_pc(const void *x, float *y, int64_t k)
{
    const uint8_t *in = x;
    const int8_t *q = (const int8_t *)(in + QF_INT8_PC_HEADER);
    float scale = get_f32_le(in);
    for (int64_t i = 0; i < k; i++)
        y[i] = scale * (float)q[i];
}

void qf_vec_dot_int8_pc_q8_0_ref(int64_t k, const void *w, const void *a, float *s)
{
    assert(k % QF_QK8_0 == 0);
    const uint8_t *in = w;
    const int8_t *q = (const int8_t *)(in + QF_INT8_PC_HEADER);
    const qf_block_q8_0 *ab = a;
    float scale = get_f32_le(in);

    float sumf = 0.0f;
    for (int64_t b = 0; b < k / QF_QK8_0; b++) {
        int32_t isum = 0;
        for (int j = 0; j < QF_QK8_0; j++)
            isum += (int32_t)q[b * QF_QK8_0 + j] * (int32_t)ab[b].qs[j];
        sumf += qf_fp16_to_fp32(ab[b].d) * (float)isum;
    }
    *s = scale * sumf;
}

/* --- int4_gG ----------------------------------------------------------------------------- */

/* clamp(round(x / d) + z, 0, 15). A NaN x gives z, which decodes to 0. */
static int int4_code(float x, float d, int z)
{
    float t = roundf(x / d);
    if (isnan(t))
        return z;
    t += (float)z;
    return t < 0.0f ? 0 : t > 15.0f ? 15 : (int)t;
}

static void quantize_group_int4(const float *x, uint8_t *blk, int g)
{
    float lo = 0.0f, hi = 0.0f;    /* starting at 0 puts 0 in the range */
    for (int i = 0; i < g; i++) {
        if (x[i] < lo)
            lo = x[i];
        if (x[i] > hi)
            hi = x[i];
    }
    qf_half dh = qf_fp32_to_fp16((hi - lo) / 15.0f);
    float d = qf_fp16_to_fp32(dh);

    memset(blk, 0, (size_t)(INT4_HDR + g / 2));
    if (d == 0.0f || isnan(d))
        return;                    /* the all-zero block: d = 0, z = 0, q = 0 */
    int z = round_clamp(-lo / d, 0, 15);
    blk[0] = (uint8_t)(dh & 0xff);
    blk[1] = (uint8_t)(dh >> 8);
    blk[2] = (uint8_t)z;
    uint8_t *qs = blk + INT4_HDR;
    for (int j = 0; j < g / 2; j++) {
        int q0 = int4_code(x[j], d, z);
        int q1 = int4_code(x[j + g / 2], d, z);
        qs[j] = (uint8_t)(q0 | q1 << 4);
    }
}

/* The q value of weight j of a group of g (nibble layout as q4_0). */
static int int4_q(const uint8_t *qs, int j, int g)
{
    return j < g / 2 ? qs[j] & 0x0f : qs[j - g / 2] >> 4;
}

static void quantize_row_int4(const float *x, void *y, int64_t k, int g)
{
    assert(k > 0 && k % g == 0);
    uint8_t *blk = y;
    for (int64_t b = 0; b < k / g; b++)
        quantize_group_int4(x + b * g, blk + b * (INT4_HDR + g / 2), g);
}

static void dequantize_row_int4(const void *x, float *y, int64_t k, int g)
{
    assert(k % g == 0);
    const uint8_t *blk = x;
    for (int64_t b = 0; b < k / g; b++, blk += INT4_HDR + g / 2) {
        float d = qf_fp16_to_fp32((qf_half)(blk[0] | blk[1] << 8));
        int z = blk[2];
        for (int j = 0; j < g; j++)
            y[b * g + j] = d * (float)(int4_q(blk + INT4_HDR, j, g) - z);
    }
}

static void vec_dot_int4_q8_0(int64_t k, const void *w, const void *a, float *s, int g)
{
    assert(k % g == 0 && g % QF_QK8_0 == 0);
    const uint8_t *blk = w;
    const qf_block_q8_0 *ab = a;

    float sumf = 0.0f;
    for (int64_t b = 0; b < k / g; b++, blk += INT4_HDR + g / 2) {
        float d = qf_fp16_to_fp32((qf_half)(blk[0] | blk[1] << 8));
        int32_t z = blk[2];
        for (int sb = 0; sb < g / QF_QK8_0; sb++, ab++) {
            int32_t isum = 0, asum = 0;
            for (int j = 0; j < QF_QK8_0; j++) {
                int32_t qa = ab->qs[j];
                isum += int4_q(blk + INT4_HDR, sb * QF_QK8_0 + j, g) * qa;
                asum += qa;
            }
            sumf += (d * qf_fp16_to_fp32(ab->d)) * (float)(isum - z * asum);
        }
    }
    *s = sumf;
}

#define QF_INT4_ROW_FNS(G)                                                                  \
    void qf_quantize_row_int4_g##G##_ref(const float *x, void *y, int64_t k)                \
    {                                                                                       \
        quantize_row_int4(x, y, k, G);                                                      \
    }                                                                                       \
    void qf_dequantize_row_int4_g##G(const void *x, float *y, int64_t k)                    \
    {                                                                                       \
        dequantize_row_int4(x, y, k, G);                                                    \
    }                                                                                       \
    void qf_vec_dot_int4_g##G##_q8_0_ref(int64_t k, const void *w, const void *a, float *s) \
    {                                                                                       \
        vec_dot_int4_q8_0(k, w, a, s, G);                                                   \
    }
QF_INT4_ROW_FNS(32)
QF_INT4_ROW_FNS(64)
QF_INT4_ROW_FNS(128)
#undef QF_INT4_ROW_FNS
