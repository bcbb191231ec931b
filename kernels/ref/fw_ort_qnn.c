/* fw_ort_qnn.c - reference kernels of two frameworks' native weight schemes: ONNX Runtime's
 * MatMulNBits INT4 (as Microsoft Olive and onnxruntime's quantizer write it) and Qualcomm QNN's
 * per-channel INT8/INT16 and block INT4 encodings.
 *
 * Layouts, and how a matrix of our rows maps to MatMulNBits' inputs, are in qf_blocks.h; the
 * rules are written for users in docs/formats.md ("Frameworks' native schemes"). Every rule
 * below is part of the format: a faster variant must produce the same bytes from the same
 * floats. Arithmetic is binary32 in the order written, "round" is round-half-away-from-zero
 * (C roundf; MLAS calls roundf too), no fused multiply-add (gcc does not contract under
 * -std=c11, the pragma covers clang).
 *
 * ort_int4_bB, B = 32, 128 (MLAS BlockwiseQuantizer::quantizeAndTranspose, zero_points NULL):
 *   lo, hi = min and max of the block's x_i, starting from +FLT_MAX and -FLT_MAX and updated by
 *            strict < and > (so a NaN never enters)
 *   m      = |hi| > |lo| ? hi : lo            (the signed extreme; a tie takes lo)
 *   scale  = m / -8                           (stored: may be negative, or -0 for a zero block)
 *   r      = scale != 0 ? 1 / scale : 0
 *   q_i    = clamp(round(x_i * r + 8), 0, 15)  decode w = scale * (q - 8)
 * ort_int4_b128_asym (the same function with zero points, range2scalezp):
 *   lo = min(lo, 0), hi = max(hi, 0); scale = (hi - lo) / 15
 *   zp = scale != 0 ? clamp(round(0 - lo / scale), 0, 15) : 0
 *   q_i = clamp(round(x_i * r + zp), 0, 15)    decode w = scale * (q - zp)
 * A NaN x_i gets q = zp (MLAS converts the NaN to an integer, undefined behaviour in C), so it
 * decodes to 0. A block holding an infinity is outside the format (it decodes to NaN).
 *
 * qnn_int8_pc, qnn_int16_pc (per row; QMAX = 127 or 32767):
 *   amax   = max |x_i| (strict >, so a NaN never wins), then at least 0.00005: QNN enforces a
 *            minimum encoding range of 0.0001 (= 2 * amax) and scales must be positive
 *   scale  = amax / QMAX, offset = 0          (decode w = scale * (q + offset))
 *   q_i    = clamp(round(x_i / scale), -QMAX, QMAX), NaN -> 0
 * qnn_w4_block (blocks of 32): the same with QMAX = 7 per block, q clamped to -8..7.
 *
 * Dot products, k a multiple of 32 where the activations are q8_0 (f16 d_a, 32 int8 per block);
 * isum(b) = sum q_w q_a and asum(b) = sum q_a are exact integer sums over the 32 weights of
 * activation block b, sumf a binary32 accumulator from 0 added in block order:
 *   ort_int4_*:   sumf += (scale * d_a(b)) * (float)(isum(b) - zp * asum(b));  *s = sumf
 *   qnn_w4_block: sumf += (scale * d_a(b)) * (float)isum(b);                   *s = sumf
 *   qnn_int8_pc:  sumf += d_a(b) * (float)(isum(b) + offset * asum(b));        *s = scale * sumf
 *   qnn_int16_pc: f32 activations (q8_0 would cost the 16-bit weights their extra precision:
 *                 its error, half a step of 1/127 of a block's max, is ~250x the weights');
 *                 the products (q_i + offset) * a_i summed in double, *s = (float)(scale * sum).
 * Faster variants may reassociate the float sums; they are held to a tolerance, not the bits.
 * Called per row through the format table (kernels/formats.c), by tests and benchmarks.
 */
#include <assert.h>
#include <float.h>
#include <math.h>
#include <stddef.h>
#include <string.h>

#include "qf_formats.h"
#include "qf_ref.h"

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

/* The kernels address blocks as bytes; tie them to the declared layouts. */
QF_STATIC_ASSERT(offsetof(qf_block_ort_int4_b32, qs) == 4, "ort_int4_b32 field offsets");
QF_STATIC_ASSERT(offsetof(qf_block_ort_int4_b128, qs) == 4, "ort_int4_b128 field offsets");
QF_STATIC_ASSERT(offsetof(qf_block_ort_int4_b128_asym, zp) == 4 &&
                 offsetof(qf_block_ort_int4_b128_asym, qs) == 5, "ort_int4_b128_asym offsets");
QF_STATIC_ASSERT(offsetof(qf_block_qnn_w4, qs) == 4, "qnn_w4_block field offsets");

#define QNN_MIN_AMAX 0.00005f   /* half of QNN's minimum encoding range, 0.0001 */

/* --- shared pieces ------------------------------------------------------------------------- */

static void store_f32(uint8_t *p, float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    for (int i = 0; i < 4; i++)
        p[i] = (uint8_t)(u >> 8 * i);
}

static float load_f32(const uint8_t *p)
{
    uint32_t u = 0;
    for (int i = 0; i < 4; i++)
        u |= (uint32_t)p[i] << 8 * i;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static int32_t load_i32(const uint8_t *p)
{
    uint32_t u = 0;
    for (int i = 0; i < 4; i++)
        u |= (uint32_t)p[i] << 8 * i;
    return (int32_t)u;   /* two's complement on every target we build for */
}

/* clamp(round(v), lo, hi) with NaN -> nan_q; the clamp happens in float, so the conversion
 * never sees an out-of-range value. */
static int round_clamp(float v, int lo, int hi, int nan_q)
{
    if (isnan(v))
        return nan_q;
    v = roundf(v);
    return v < (float)lo ? lo : v > (float)hi ? hi : (int)v;
}

/* max |x_i| by strict >, raised to QNN's minimum. */
static float qnn_amax(const float *x, int64_t n)
{
    float amax = 0.0f;
    for (int64_t i = 0; i < n; i++)
        if (fabsf(x[i]) > amax)
            amax = fabsf(x[i]);
    return amax > QNN_MIN_AMAX ? amax : QNN_MIN_AMAX;
}

/* Weight j of a block whose bytes pack pairs low nibble first: (unsigned) 0..15. */
static int nibble(const uint8_t *qs, int j)
{
    return j & 1 ? qs[j / 2] >> 4 : qs[j / 2] & 0x0f;
}

/* --- ONNX Runtime MatMulNBits INT4 -------------------------------------------------------- */

static size_t ort_block_bytes(int bs, bool asym)
{
    return 4 + (asym ? 1 : 0) + (size_t)bs / 2;
}

static void quantize_block_ort(const float *x, uint8_t *blk, int bs, bool asym)
{
    float lo = FLT_MAX, hi = -FLT_MAX;
    for (int i = 0; i < bs; i++) {
        if (x[i] < lo)
            lo = x[i];
        if (x[i] > hi)
            hi = x[i];
    }
    float scale;
    int zp = 8;
    if (asym) {
        lo = lo < 0.0f ? lo : 0.0f;   /* std::min(lo, 0.0f), std::max(hi, 0.0f) */
        hi = hi > 0.0f ? hi : 0.0f;
        scale = (hi - lo) / 15.0f;
        /* MLAS clamps to [0, 15] and then rounds; rounding first gives the same integer */
        zp = scale != 0.0f ? round_clamp(0.0f - lo / scale, 0, 15, 0) : 0;
    } else {
        float m = fabsf(hi) > fabsf(lo) ? hi : lo;
        scale = m / -8.0f;
    }
    float r = scale != 0.0f ? 1.0f / scale : 0.0f;

    store_f32(blk, scale);
    uint8_t *qs = blk + 4;
    if (asym) {
        blk[4] = (uint8_t)zp;
        qs++;
    }
    for (int j = 0; j < bs / 2; j++) {
        int q0 = round_clamp(x[2 * j] * r + (float)zp, 0, 15, zp);
        int q1 = round_clamp(x[2 * j + 1] * r + (float)zp, 0, 15, zp);
        qs[j] = (uint8_t)(q0 | q1 << 4);
    }
}

static void quantize_row_ort(const float *x, void *y, int64_t k, int bs, bool asym)
{
    assert(k > 0 && k % bs == 0);
    uint8_t *blk = y;
    for (int64_t b = 0; b < k / bs; b++, blk += ort_block_bytes(bs, asym))
        quantize_block_ort(x + b * bs, blk, bs, asym);
}

static void dequantize_row_ort(const void *x, float *y, int64_t k, int bs, bool asym)
{
    assert(k % bs == 0);
    const uint8_t *blk = x;
    for (int64_t b = 0; b < k / bs; b++, blk += ort_block_bytes(bs, asym)) {
        float scale = load_f32(blk);
        int zp = asym ? blk[4] : 8;
        const uint8_t *qs = blk + (asym ? 5 : 4);
        for (int j = 0; j < bs; j++)
            y[b * bs + j] = scale * (float)(nibble(qs, j) - zp);
    }
}

static void vec_dot_ort_q8_0(int64_t k, const void *w, const void *a, float *s, int bs,
                             bool asym)
{
    assert(k % bs == 0 && bs % QF_QK8_0 == 0);
    const uint8_t *blk = w;
    const qf_block_q8_0 *ab = a;
    float sumf = 0.0f;
    for (int64_t b = 0; b < k / bs; b++, blk += ort_block_bytes(bs, asym)) {
        float scale = load_f32(blk);
        int32_t zp = asym ? blk[4] : 8;
        const uint8_t *qs = blk + (asym ? 5 : 4);
        for (int sb = 0; sb < bs / QF_QK8_0; sb++, ab++) {
            int32_t isum = 0, asum = 0;
            for (int j = 0; j < QF_QK8_0; j++) {
                int32_t qa = ab->qs[j];
                isum += nibble(qs, sb * QF_QK8_0 + j) * qa;
                asum += qa;
            }
            sumf += (scale * qf_fp16_to_fp32(ab->d)) * (float)(isum - zp * asum);
        }
    }
    *s = sumf;
}

#define QF_ORT_ROW_FNS(name, bs, asym)                                                     \
    void qf_quantize_row_##name##_ref(const float *x, void *y, int64_t k)                  \
    {                                                                                      \
        quantize_row_ort(x, y, k, bs, asym);                                               \
    }                                                                                      \
    void qf_dequantize_row_##name(const void *x, float *y, int64_t k)                      \
    {                                                                                      \
        dequantize_row_ort(x, y, k, bs, asym);                                             \
    }                                                                                      \
    void qf_vec_dot_##name##_q8_0_ref(int64_t k, const void *w, const void *a, float *s)   \
    {                                                                                      \
        vec_dot_ort_q8_0(k, w, a, s, bs, asym);                                            \
    }
QF_ORT_ROW_FNS(ort_int4_b32, 32, false)
QF_ORT_ROW_FNS(ort_int4_b128, 128, false)
QF_ORT_ROW_FNS(ort_int4_b128_asym, 128, true)
#undef QF_ORT_ROW_FNS

/* --- QNN per-channel INT8 / INT16 --------------------------------------------------------- */

/* The row header is one Qnn_ScaleOffset_t; the quantizer's offset is always 0. */
static float qnn_pc_header(const float *x, int64_t k, int qmax, uint8_t *hdr)
{
    float scale = qnn_amax(x, k) / (float)qmax;
    store_f32(hdr, scale);
    memset(hdr + 4, 0, 4);
    return scale;
}

void qf_quantize_row_qnn_int8_pc_ref(const float *x, void *y, int64_t k)
{
    assert(k > 0);
    uint8_t *out = y;
    float scale = qnn_pc_header(x, k, 127, out);
    int8_t *q = (int8_t *)(out + QF_QNN_PC_HEADER);
    for (int64_t i = 0; i < k; i++)
        q[i] = (int8_t)round_clamp(x[i] / scale, -127, 127, 0);
}

void qf_dequantize_row_qnn_int8_pc(const void *x, float *y, int64_t k)
{
    const uint8_t *in = x;
    const int8_t *q = (const int8_t *)(in + QF_QNN_PC_HEADER);
    float scale = load_f32(in);
    int64_t offset = load_i32(in + 4);
    for (int64_t i = 0; i < k; i++)
        y[i] = scale * (float)(q[i] + offset);
}

void qf_vec_dot_qnn_int8_pc_q8_0_ref(int64_t k, const void *w, const void *a, float *s)
{
    assert(k % QF_QK8_0 == 0);
    const uint8_t *in = w;
    const int8_t *q = (const int8_t *)(in + QF_QNN_PC_HEADER);
    const qf_block_q8_0 *ab = a;
    float scale = load_f32(in);
    int64_t offset = load_i32(in + 4);   /* a file's offset may be anything: sums in int64 */
    float sumf = 0.0f;
    for (int64_t b = 0; b < k / QF_QK8_0; b++) {
        int32_t isum = 0, asum = 0;
        for (int j = 0; j < QF_QK8_0; j++) {
            isum += (int32_t)q[b * QF_QK8_0 + j] * ab[b].qs[j];
            asum += ab[b].qs[j];
        }
        sumf += qf_fp16_to_fp32(ab[b].d) * (float)(isum + offset * asum);
    }
    *s = scale * sumf;
}

void qf_quantize_row_qnn_int16_pc_ref(const float *x, void *y, int64_t k)
{
    assert(k > 0);
    uint8_t *out = y;
    float scale = qnn_pc_header(x, k, 32767, out);
    uint8_t *q = out + QF_QNN_PC_HEADER;
    for (int64_t i = 0; i < k; i++) {
        uint16_t u = (uint16_t)round_clamp(x[i] / scale, -32767, 32767, 0);
        q[2 * i] = (uint8_t)u;
        q[2 * i + 1] = (uint8_t)(u >> 8);
    }
}

/* Value i of a qnn_int16_pc row (little-endian int16). */
static int32_t qnn_i16(const uint8_t *q, int64_t i)
{
    return (int16_t)(uint16_t)(q[2 * i] | q[2 * i + 1] << 8);
}

void qf_dequantize_row_qnn_int16_pc(const void *x, float *y, int64_t k)
{
    const uint8_t *in = x;
    float scale = load_f32(in);
    int64_t offset = load_i32(in + 4);
    for (int64_t i = 0; i < k; i++)
        y[i] = scale * (float)(qnn_i16(in + QF_QNN_PC_HEADER, i) + offset);
}

void qf_vec_dot_qnn_int16_pc_f32_ref(int64_t k, const void *w, const void *a, float *s)
{
    const uint8_t *in = w;
    const float *x = a;
    float scale = load_f32(in);
    int64_t offset = load_i32(in + 4);
    double sum = 0.0;
    for (int64_t i = 0; i < k; i++)
        sum += (double)(qnn_i16(in + QF_QNN_PC_HEADER, i) + offset) * (double)x[i];
    *s = (float)((double)scale * sum);
}

/* --- QNN block INT4 ------------------------------------------------------------------------ */

/* A 4-bit two's complement nibble as an int. */
static int s4(int u)
{
    return u >= 8 ? u - 16 : u;
}

void qf_quantize_row_qnn_w4_block_ref(const float *x, void *y, int64_t k)
{
    assert(k > 0 && k % QF_QNN_W4_BLOCK == 0);
    qf_block_qnn_w4 *blk = y;
    for (int64_t b = 0; b < k / QF_QNN_W4_BLOCK; b++, x += QF_QNN_W4_BLOCK) {
        float scale = qnn_amax(x, QF_QNN_W4_BLOCK) / 7.0f;
        store_f32(blk[b].scale, scale);
        for (int j = 0; j < QF_QNN_W4_BLOCK / 2; j++) {
            int q0 = round_clamp(x[2 * j] / scale, -8, 7, 0);
            int q1 = round_clamp(x[2 * j + 1] / scale, -8, 7, 0);
            blk[b].qs[j] = (uint8_t)((q0 & 0x0f) | (q1 & 0x0f) << 4);
        }
    }
}

void qf_dequantize_row_qnn_w4_block(const void *x, float *y, int64_t k)
{
    assert(k % QF_QNN_W4_BLOCK == 0);
    const qf_block_qnn_w4 *blk = x;
    for (int64_t b = 0; b < k / QF_QNN_W4_BLOCK; b++) {
        float scale = load_f32(blk[b].scale);
        for (int j = 0; j < QF_QNN_W4_BLOCK; j++)
            y[b * QF_QNN_W4_BLOCK + j] = scale * (float)s4(nibble(blk[b].qs, j));
    }
}

void qf_vec_dot_qnn_w4_block_q8_0_ref(int64_t k, const void *w, const void *a, float *s)
{
    assert(k % QF_QNN_W4_BLOCK == 0);
    const qf_block_qnn_w4 *blk = w;
    const qf_block_q8_0 *ab = a;
    float sumf = 0.0f;
    for (int64_t b = 0; b < k / QF_QNN_W4_BLOCK; b++) {
        float scale = load_f32(blk[b].scale);
        for (int sb = 0; sb < QF_QNN_W4_BLOCK / QF_QK8_0; sb++, ab++) {
            int32_t isum = 0;
            for (int j = 0; j < QF_QK8_0; j++)
                isum += s4(nibble(blk[b].qs, sb * QF_QK8_0 + j)) * ab->qs[j];
            sumf += (scale * qf_fp16_to_fp32(ab->d)) * (float)isum;
        }
    }
    *s = sumf;
}
