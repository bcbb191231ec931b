/* legacy.c - reference kernels of the legacy GGUF formats: q8_0, q8_1, q4_0, q4_1, q5_0, q5_1.
 *
 * Every block holds 32 weights and one f16 scale (plus an f16 min for the _1 formats). The
 * quantizers give the same bytes as llama.cpp's quantize_row_<fmt>_ref, so a row written here
 * loads in llama.cpp and a row llama.cpp wrote decodes here to the same floats; the dot
 * products reproduce ggml's generic (scalar) vec_dot: integer sums per block, then one float
 * multiply-add per block in the same order. That makes these the yardstick the SIMD and GPU
 * variants are tested against, and the conformance test holds them to ggml byte for byte.
 * Called through the traits table (kernels/formats.c), the tests and the benchmarks, once per
 * row; they are readable, not fast.
 *
 * Float arithmetic is written in ggml's order and must not be contracted into fused
 * multiply-adds: ggml's baseline x86-64 build does not fuse (its AVX2 build does, which moves
 * a dot product by ~1e-7 of sum|w*a|); gcc in ISO C mode does not contract, and the pragma
 * below tells clang the same.
 */
#include <assert.h>
#include <float.h>
#include <math.h>
#include <stdint.h>

#include "qf_formats.h"
#include "qf_ref.h"
#include "ref_util.h"

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

/* --- helpers shared by the formats --------------------------------------------------------- */

/* Blocks in a row of k weights; a k that is not a whole number of blocks is a caller's bug
 * (qf_format_check_cols rejects it before any row function runs). */
static int64_t block_count(int64_t k, int64_t qk)
{
    assert(k >= 0 && k % qk == 0);
    return k / qk;
}

/* ggml converts float to int8_t/uint8_t with a plain cast, and some inputs reach that cast
 * out of range: a block whose scale underflows has 1/d = inf, so x*id is inf or NaN. C leaves
 * that undefined; ggml's x86 build truncates through a 32-bit cvttss2si, which yields
 * INT32_MIN for NaN and anything outside int32, and keeps the low byte. Spelling that out
 * here makes the bytes the same under every compiler and ISA. */
static int32_t trunc_to_i32_like_x86(float v)
{
    if (v > -2147483904.0f && v < 2147483648.0f)   /* exactly the floats that truncate into int32 */
        return (int32_t)v;
    return INT32_MIN;
}

/* (int8_t)v as ggml's x86 build computes it: the low byte of the 32-bit truncation. */
static int trunc_to_i8(float v)
{
    uint8_t b = (uint8_t)(uint32_t)trunc_to_i32_like_x86(v);
    return b < 128 ? b : b - 256;
}

/* (uint8_t)v likewise. */
static int trunc_to_u8(float v)
{
    return (uint8_t)(uint32_t)trunc_to_i32_like_x86(v);
}

/* The symmetric 4/5-bit formats map the block's signed extreme (ref_util.h) to the -8 / -16
 * end of their range, the end with one more level, so it is represented exactly. */
static float signed_absmax(const float *x, int n)
{
    float amax;
    return qf_ref_signed_absmax(x, n, &amax);
}

/* Largest |x|, folded as ggml's MAX(amax, |x|) does: a NaN element is taken and then dropped
 * by the next comparison, never kept sticky. */
static float absmax(const float *x, int n)
{
    float amax = 0.0f;
    for (int j = 0; j < n; j++) {
        float a = fabsf(x[j]);
        amax = amax > a ? amax : a;
    }
    return amax;
}

/* Smallest and largest value, starting from the float extremes as ggml does. */
static void min_max(const float *x, int n, float *min_out, float *max_out)
{
    float min = FLT_MAX, max = -FLT_MAX;
    for (int j = 0; j < n; j++) {
        if (x[j] < min)
            min = x[j];
        if (x[j] > max)
            max = x[j];
    }
    *min_out = min;
    *max_out = max;
}

/* The inverse scale; a zero scale (all-zero or constant block) quantizes everything to 0. */
static float inverse(float d)
{
    return d != 0.0f ? 1.0f / d : 0.0f;
}

/* The 5-bit formats keep the fifth bit of weight j as bit j of a little-endian u32. Written
 * byte by byte, so the file layout does not depend on the host's byte order. */
static uint32_t load_le32(const uint8_t b[4])
{
    return (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 | (uint32_t)b[3] << 24;
}

static void store_le32(uint8_t b[4], uint32_t v)
{
    for (int i = 0; i < 4; i++)
        b[i] = (uint8_t)(v >> (8 * i));
}

/* Sum of products of one block's int8 activations with 32 small-integer weights; the weights
 * come in as w[0..31] in block order. Exact in int, so the order does not matter. */
static int dot_i8_block(const int w[32], const int8_t a[32])
{
    int sum = 0;
    for (int j = 0; j < 32; j++)
        sum += w[j] * a[j];
    return sum;
}

/* --- q8_0: w = d * q, q in -127..127 ------------------------------------------------------- */

/* Quantizes one block of 32 and returns its unrounded scale; shared with q8_1, whose values
 * and scale are q8_0's. roundf rounds halves away from zero, as ggml does. */
static float quantize_block_q8(const float *x, qf_half *d_out, int8_t qs[32])
{
    const float d = absmax(x, 32) / 127;
    const float id = inverse(d);

    *d_out = qf_fp32_to_fp16(d);
    for (int j = 0; j < 32; j++)
        qs[j] = (int8_t)trunc_to_i8(roundf(x[j] * id));
    return d;
}

void qf_quantize_row_q8_0_ref(const float *x, void *y, int64_t k)
{
    qf_block_q8_0 *blk = y;
    const int64_t nb = block_count(k, QF_QK8_0);

    for (int64_t i = 0; i < nb; i++)
        (void)quantize_block_q8(x + i * QF_QK8_0, &blk[i].d, blk[i].qs);
}

void qf_dequantize_row_q8_0(const void *x, float *y, int64_t k)
{
    const qf_block_q8_0 *blk = x;
    const int64_t nb = block_count(k, QF_QK8_0);

    for (int64_t i = 0; i < nb; i++) {
        const float d = qf_fp16_to_fp32(blk[i].d);
        for (int j = 0; j < QF_QK8_0; j++)
            y[i * QF_QK8_0 + j] = (float)blk[i].qs[j] * d;
    }
}

void qf_vec_dot_q8_0_q8_0_ref(int64_t k, const void *w, const void *a, float *s)
{
    const qf_block_q8_0 *wb = w;
    const qf_block_q8_0 *ab = a;
    const int64_t nb = block_count(k, QF_QK8_0);
    float sum = 0.0f;

    for (int64_t i = 0; i < nb; i++) {
        int sumi = 0;
        for (int j = 0; j < QF_QK8_0; j++)
            sumi += wb[i].qs[j] * ab[i].qs[j];
        /* ggml: sumi * (dw * da) */
        sum += (float)sumi * (qf_fp16_to_fp32(wb[i].d) * qf_fp16_to_fp32(ab[i].d));
    }
    *s = sum;
}

/* --- q8_1: q8_0 plus s = d * sum(q), the activation format of q4_1 and q5_1 ---------------- */

void qf_quantize_row_q8_1_ref(const float *x, void *y, int64_t k)
{
    qf_block_q8_1 *blk = y;
    const int64_t nb = block_count(k, QF_QK8_1);

    for (int64_t i = 0; i < nb; i++) {
        const float d = quantize_block_q8(x + i * QF_QK8_1, &blk[i].d, blk[i].qs);

        /* The min term of a q4_1/q5_1 dot product is m * sum(a); storing d * sum(q) here
         * (from the unrounded d, as ggml does) saves the dot product that sum. */
        int sum = 0;
        for (int j = 0; j < QF_QK8_1; j++)
            sum += blk[i].qs[j];
        blk[i].s = qf_fp32_to_fp16((float)sum * d);
    }
}

void qf_dequantize_row_q8_1(const void *x, float *y, int64_t k)
{
    const qf_block_q8_1 *blk = x;
    const int64_t nb = block_count(k, QF_QK8_1);

    for (int64_t i = 0; i < nb; i++) {
        const float d = qf_fp16_to_fp32(blk[i].d);
        for (int j = 0; j < QF_QK8_1; j++)
            y[i * QF_QK8_1 + j] = (float)blk[i].qs[j] * d;
    }
}

/* --- q4_0: w = d * (q - 8), q in 0..15 ----------------------------------------------------- */

void qf_quantize_row_q4_0_ref(const float *x, void *y, int64_t k)
{
    qf_block_q4_0 *blk = y;
    const int64_t nb = block_count(k, QF_QK4_0);

    for (int64_t i = 0; i < nb; i++) {
        const float *xb = x + i * QF_QK4_0;
        const float d = signed_absmax(xb, QF_QK4_0) / -8;
        const float id = inverse(d);

        blk[i].d = qf_fp32_to_fp16(d);
        for (int j = 0; j < QF_QK4_0 / 2; j++) {
            /* +8.5 then truncation rounds half up into 0..16; 16 (a value as large as the
             * extreme but of the other sign) is clamped to 15. */
            int q0 = trunc_to_i8(xb[j] * id + 8.5f);
            int q1 = trunc_to_i8(xb[j + QF_QK4_0 / 2] * id + 8.5f);
            q0 = q0 < 15 ? q0 : 15;
            q1 = q1 < 15 ? q1 : 15;
            /* ggml ORs the full bytes; the values are 0..15 whenever the input is finite */
            blk[i].qs[j] = (uint8_t)((uint8_t)q0 | (uint8_t)q1 << 4);
        }
    }
}

void qf_dequantize_row_q4_0(const void *x, float *y, int64_t k)
{
    const qf_block_q4_0 *blk = x;
    const int64_t nb = block_count(k, QF_QK4_0);

    for (int64_t i = 0; i < nb; i++) {
        const float d = qf_fp16_to_fp32(blk[i].d);
        for (int j = 0; j < QF_QK4_0 / 2; j++) {
            y[i * QF_QK4_0 + j] = (float)((blk[i].qs[j] & 0x0F) - 8) * d;
            y[i * QF_QK4_0 + j + QF_QK4_0 / 2] = (float)((blk[i].qs[j] >> 4) - 8) * d;
        }
    }
}

void qf_vec_dot_q4_0_q8_0_ref(int64_t k, const void *w, const void *a, float *s)
{
    const qf_block_q4_0 *wb = w;
    const qf_block_q8_0 *ab = a;
    const int64_t nb = block_count(k, QF_QK4_0);
    float sum = 0.0f;

    for (int64_t i = 0; i < nb; i++) {
        int q[32];
        for (int j = 0; j < 16; j++) {
            q[j] = (wb[i].qs[j] & 0x0F) - 8;
            q[j + 16] = (wb[i].qs[j] >> 4) - 8;
        }
        const int sumi = dot_i8_block(q, ab[i].qs);
        /* ggml: sumi * dw * da, left to right */
        sum += (float)sumi * qf_fp16_to_fp32(wb[i].d) * qf_fp16_to_fp32(ab[i].d);
    }
    *s = sum;
}

/* --- q4_1: w = d * q + m, q in 0..15 ------------------------------------------------------- */

void qf_quantize_row_q4_1_ref(const float *x, void *y, int64_t k)
{
    qf_block_q4_1 *blk = y;
    const int64_t nb = block_count(k, QF_QK4_1);

    for (int64_t i = 0; i < nb; i++) {
        const float *xb = x + i * QF_QK4_1;
        float min, max;
        min_max(xb, QF_QK4_1, &min, &max);
        const float d = (max - min) / 15;
        const float id = inverse(d);

        blk[i].d = qf_fp32_to_fp16(d);
        blk[i].m = qf_fp32_to_fp16(min);
        for (int j = 0; j < QF_QK4_1 / 2; j++) {
            /* the offset from the unrounded min, rounded half up */
            int q0 = trunc_to_i8((xb[j] - min) * id + 0.5f);
            int q1 = trunc_to_i8((xb[j + QF_QK4_1 / 2] - min) * id + 0.5f);
            q0 = q0 < 15 ? q0 : 15;
            q1 = q1 < 15 ? q1 : 15;
            blk[i].qs[j] = (uint8_t)((uint8_t)q0 | (uint8_t)q1 << 4);
        }
    }
}

void qf_dequantize_row_q4_1(const void *x, float *y, int64_t k)
{
    const qf_block_q4_1 *blk = x;
    const int64_t nb = block_count(k, QF_QK4_1);

    for (int64_t i = 0; i < nb; i++) {
        const float d = qf_fp16_to_fp32(blk[i].d);
        const float m = qf_fp16_to_fp32(blk[i].m);
        for (int j = 0; j < QF_QK4_1 / 2; j++) {
            y[i * QF_QK4_1 + j] = (float)(blk[i].qs[j] & 0x0F) * d + m;
            y[i * QF_QK4_1 + j + QF_QK4_1 / 2] = (float)(blk[i].qs[j] >> 4) * d + m;
        }
    }
}

void qf_vec_dot_q4_1_q8_1_ref(int64_t k, const void *w, const void *a, float *s)
{
    const qf_block_q4_1 *wb = w;
    const qf_block_q8_1 *ab = a;
    const int64_t nb = block_count(k, QF_QK4_1);
    float sum = 0.0f;

    for (int64_t i = 0; i < nb; i++) {
        int q[32];
        for (int j = 0; j < 16; j++) {
            q[j] = wb[i].qs[j] & 0x0F;
            q[j + 16] = wb[i].qs[j] >> 4;
        }
        const int sumi = dot_i8_block(q, ab[i].qs);
        /* sum_j (dw q_j + m) da a_j = dw da sumi + m (da sum_j a_j), the last factor being
         * the activation block's s. ggml: (dw * da) * sumi + m * s. */
        sum += qf_fp16_to_fp32(wb[i].d) * qf_fp16_to_fp32(ab[i].d) * (float)sumi
             + qf_fp16_to_fp32(wb[i].m) * qf_fp16_to_fp32(ab[i].s);
    }
    *s = sum;
}

/* --- q5_0: w = d * (q - 16), q in 0..31 ---------------------------------------------------- */

void qf_quantize_row_q5_0_ref(const float *x, void *y, int64_t k)
{
    qf_block_q5_0 *blk = y;
    const int64_t nb = block_count(k, QF_QK5_0);

    for (int64_t i = 0; i < nb; i++) {
        const float *xb = x + i * QF_QK5_0;
        const float d = signed_absmax(xb, QF_QK5_0) / -16;
        const float id = inverse(d);
        uint8_t u[QF_QK5_0];

        blk[i].d = qf_fp32_to_fp16(d);
        for (int j = 0; j < QF_QK5_0; j++) {
            int q = trunc_to_i8(xb[j] * id + 16.5f);
            /* ggml clamps in int8, then reads the low five bits of the byte */
            u[j] = (uint8_t)(q < 31 ? q : 31);
        }
        qf_ref_pack_q5(u, blk[i].qs, blk[i].qh);
    }
}

/* Packs 32 level bytes of a 5-bit block: low nibbles of weights j and j + 16 share qs[j],
 * bit 4 of weight j is bit j of qh (little-endian u32). Only the low five bits of each byte
 * are read, as ggml does. Shared with the importance-weighted quantizers (imatrix.c). */
void qf_ref_pack_q5(const uint8_t u[32], uint8_t qs[16], uint8_t qh[4])
{
    uint32_t h = 0;
    for (int j = 0; j < 16; j++) {
        qs[j] = (uint8_t)((u[j] & 0x0F) | (u[j + 16] & 0x0F) << 4);
        h |= (uint32_t)((u[j] >> 4) & 1) << j;
        h |= (uint32_t)((u[j + 16] >> 4) & 1) << (j + 16);
    }
    store_le32(qh, h);
}

/* Weight j of a 5-bit block, 0..31: low nibble from qs, fifth bit from qh. */
static int q5_value(const uint8_t qs[16], uint32_t qh, int j)
{
    const int nibble = j < 16 ? qs[j] & 0x0F : qs[j - 16] >> 4;
    return nibble | (int)((qh >> j) & 1) << 4;
}

void qf_dequantize_row_q5_0(const void *x, float *y, int64_t k)
{
    const qf_block_q5_0 *blk = x;
    const int64_t nb = block_count(k, QF_QK5_0);

    for (int64_t i = 0; i < nb; i++) {
        const float d = qf_fp16_to_fp32(blk[i].d);
        const uint32_t qh = load_le32(blk[i].qh);
        for (int j = 0; j < QF_QK5_0; j++)
            y[i * QF_QK5_0 + j] = (float)(q5_value(blk[i].qs, qh, j) - 16) * d;
    }
}

void qf_vec_dot_q5_0_q8_0_ref(int64_t k, const void *w, const void *a, float *s)
{
    const qf_block_q5_0 *wb = w;
    const qf_block_q8_0 *ab = a;
    const int64_t nb = block_count(k, QF_QK5_0);
    float sum = 0.0f;

    for (int64_t i = 0; i < nb; i++) {
        const uint32_t qh = load_le32(wb[i].qh);
        int q[32];
        for (int j = 0; j < 32; j++)
            q[j] = q5_value(wb[i].qs, qh, j) - 16;
        const int sumi = dot_i8_block(q, ab[i].qs);
        /* ggml: (dw * da) * sumi */
        sum += qf_fp16_to_fp32(wb[i].d) * qf_fp16_to_fp32(ab[i].d) * (float)sumi;
    }
    *s = sum;
}

/* --- q5_1: w = d * q + m, q in 0..31 ------------------------------------------------------- */

void qf_quantize_row_q5_1_ref(const float *x, void *y, int64_t k)
{
    qf_block_q5_1 *blk = y;
    const int64_t nb = block_count(k, QF_QK5_1);

    for (int64_t i = 0; i < nb; i++) {
        const float *xb = x + i * QF_QK5_1;
        float min, max;
        min_max(xb, QF_QK5_1, &min, &max);
        const float d = (max - min) / 31;
        const float id = inverse(d);
        uint8_t u[QF_QK5_1];

        blk[i].d = qf_fp32_to_fp16(d);
        blk[i].m = qf_fp32_to_fp16(min);
        /* unlike q4_1, ggml does not clamp here: (max - min) * id never reaches 31.5 */
        for (int j = 0; j < QF_QK5_1; j++)
            u[j] = (uint8_t)trunc_to_u8((xb[j] - min) * id + 0.5f);
        qf_ref_pack_q5(u, blk[i].qs, blk[i].qh);
    }
}

void qf_dequantize_row_q5_1(const void *x, float *y, int64_t k)
{
    const qf_block_q5_1 *blk = x;
    const int64_t nb = block_count(k, QF_QK5_1);

    for (int64_t i = 0; i < nb; i++) {
        const float d = qf_fp16_to_fp32(blk[i].d);
        const float m = qf_fp16_to_fp32(blk[i].m);
        const uint32_t qh = load_le32(blk[i].qh);
        for (int j = 0; j < QF_QK5_1; j++)
            y[i * QF_QK5_1 + j] = (float)q5_value(blk[i].qs, qh, j) * d + m;
    }
}

void qf_vec_dot_q5_1_q8_1_ref(int64_t k, const void *w, const void *a, float *s)
{
    const qf_block_q5_1 *wb = w;
    const qf_block_q8_1 *ab = a;
    const int64_t nb = block_count(k, QF_QK5_1);
    float sum = 0.0f;

    for (int64_t i = 0; i < nb; i++) {
        const uint32_t qh = load_le32(wb[i].qh);
        int q[32];
        for (int j = 0; j < 32; j++)
            q[j] = q5_value(wb[i].qs, qh, j);
        const int sumi = dot_i8_block(q, ab[i].qs);
        /* as q4_1: (dw * da) * sumi + m * s */
        sum += qf_fp16_to_fp32(wb[i].d) * qf_fp16_to_fp32(ab[i].d) * (float)sumi
             + qf_fp16_to_fp32(wb[i].m) * qf_fp16_to_fp32(ab[i].s);
    }
    *s = sum;
}
