/* fw_nncf_mlx.c - reference kernels of two frameworks' native weight formats: what OpenVINO
 * NNCF's nncf.compress_weights writes into an IR (INT8_ASYM per output channel, INT4_SYM and
 * INT4_ASYM in groups of 128) and what MLX's mx.quantize writes in its "affine" mode (2, 3, 4,
 * 6 and 8 bits in groups of 32, 64 and 128).
 *
 * Each quantizer reproduces its framework's rules, so a row here holds the bytes the framework
 * would store for the same weights (layouts in qf_blocks.h, the rules for users with their
 * sources in docs/formats.md, "Frameworks' native schemes"). All arithmetic is binary32 in the
 * order written, divisions are true divisions, and there is no fused multiply-add (gcc does not
 * contract under -std=c11, the pragma below covers clang). The two frameworks round
 * differently and that is part of each format: NNCF rounds half to even (numpy's round and
 * OpenVINO's Round, mode half_to_even: C rintf in the default rounding mode, which quantfleet
 * never changes), MLX's Metal kernel rounds half away from zero (C roundf).
 *
 * NNCF (src/nncf/quantization/algorithms/weight_compression/weight_lowering.py,
 * src/nncf/quantization/fake_quantize.py; OpenVINO backend openvino_backend.py), per group
 * (a whole row for INT8_ASYM), lo/hi = min/max of the weights, eps = FLT_EPSILON (2^-23):
 *   ASYM, L = 2^bits - 1:  s = (hi - lo) / L;  s = eps if |s| < eps
 *                          z = clamp(0 - rint(lo / s), 0, L)
 *                          q = clamp(rint(x / s + z), 0, L)        (z added before rounding)
 *   SYM (4 bits, signed):  s = (|lo| >= hi ? |lo| : -hi) / 8;  s = eps if |s| < eps
 *                          q = clamp(rint(x / s), -8, 7)
 * q is computed with the binary32 s; the IR stores fp16(s) (round to nearest even) and
 * decodes w = fp16(s) * (q - z). The range is not widened to hold 0: z is clamped instead, so
 * a group entirely on one side of 0 loses its far end (as NNCF does).
 *
 * MLX (mlx/backend/metal/kernels/quantized.h, kernel affine_quantize; mx.quantize runs it on
 * the default GPU device), on the f16 array: x is first rounded to f16 (the array MLX is
 * given), then per group, n = 2^bits - 1:
 *   w_min = min(65504, min x), w_max = max(0, max x)   (the kernel's starting values)
 *   s = max((w_max - w_min) / n, 1e-7);  side = |w_min| > |w_max|;  s = side ? s : -s
 *   edge = side ? w_min : w_max;  q0 = round(edge / s)
 *   q0 != 0: s = edge / q0, b = edge;   q0 == 0: b = 0
 *   q = clamp(round((x - b) / s), 0, n);  stored scale = fp16(s), bias = fp16(b)
 * so the group's value of largest magnitude sits on code 0 exactly (up to the f16 rounding of
 * b). Decode w = scale * q + bias.
 *
 * NaN weights are ignored by min/max and quantized as 0 would be (NNCF: q = z, decoding to 0
 * exactly; MLX: the code nearest 0); they are not a supported input but cause no undefined
 * behaviour. Groups that overflow f16 (NNCF scales above 65504, MLX inputs of magnitude 65520
 * or more) are outside the formats and decode to inf or NaN.
 *
 * Dot products take q8_0 activations (f16 d_a, 32 int8 per block; groups of 32, 64 and 128
 * are multiples of 32). Per 32-weight block b, isum(b) = sum q_w q_a and asum(b) = sum q_a are
 * exact int32 sums, and a binary32 accumulator sumf starts at 0 and adds in block order:
 *   nncf_int8_asym:   sumf += d_a * (float)(isum - z * asum);     result = d * sumf
 *   nncf_int4_sym:    sumf += (d * d_a) * (float)isum
 *   nncf_int4_asym:   sumf += (d * d_a) * (float)(isum - z * asum)
 *   mlx_affine:       sumf += (scale * d_a) * (float)isum + (bias * d_a) * (float)asum
 * Faster variants may reassociate the float sums and are held to a tolerance, not to bits.
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
QF_STATIC_ASSERT(offsetof(qf_block_nncf_int4_sym_g128, qs) == 2, "nncf_int4_sym_g128 layout");
QF_STATIC_ASSERT(offsetof(qf_block_nncf_int4_asym_g128, z) == 2 &&
                 offsetof(qf_block_nncf_int4_asym_g128, qs) == 3, "nncf_int4_asym_g128 layout");
#define QF_CHECK_MLX_LAYOUT(B, G)                                                           \
    QF_STATIC_ASSERT(offsetof(qf_block_mlx_affine##B##_g##G, bias) == 2 &&                  \
                     offsetof(qf_block_mlx_affine##B##_g##G, qs) == 4,                      \
                     "mlx_affine" #B "_g" #G " layout");
QF_MLX_AFFINE_FORMATS(QF_CHECK_MLX_LAYOUT)
#undef QF_CHECK_MLX_LAYOUT

#define MLX_G_MAX 128   /* the largest MLX group: the per-group scratch arrays' size */

static void put_f16_le(uint8_t *p, qf_half h)
{
    p[0] = (uint8_t)(h & 0xff);
    p[1] = (uint8_t)(h >> 8);
}

static float get_f16_le(const uint8_t *p)
{
    return qf_fp16_to_fp32((qf_half)(p[0] | p[1] << 8));
}

/* min and max of x[0..n), NaN ignored (it fails every comparison); 0 and 0 when all are NaN. */
static void min_max(const float *x, int64_t n, float *lo, float *hi)
{
    float mn = INFINITY, mx = -INFINITY;
    for (int64_t i = 0; i < n; i++) {
        if (x[i] < mn)
            mn = x[i];
        if (x[i] > mx)
            mx = x[i];
    }
    if (mn > mx)
        mn = mx = 0.0f;
    *lo = mn;
    *hi = mx;
}

/* v, already rounded, clamped to [lo, hi] in float (so the cast never sees an out-of-range
 * value); NaN gives nan_code. */
static int clamp_code(float v, int lo, int hi, int nan_code)
{
    if (isnan(v))
        return nan_code;
    return v < (float)lo ? lo : v > (float)hi ? hi : (int)v;
}

/* The sums over one 32-weight q8_0 block: returns sum qw * qa, *asum gets sum qa. */
static int32_t q8_isum(const int8_t *qa, const int *qw, int32_t *asum)
{
    int32_t is = 0, as = 0;
    for (int j = 0; j < QF_QK8_0; j++) {
        is += qw[j] * (int32_t)qa[j];
        as += qa[j];
    }
    *asum = as;
    return is;
}

/* --- NNCF ---------------------------------------------------------------------------------- */

/* NNCF's asymmetric scale and zero point for levels 0..L (calculate_scale_zero_point). The
 * zero point is clamped in float, as NNCF's OpenVINO path does; its numpy path casts to int32
 * first, which differs only when |lo / s| >= 2^31 (a constant group, where s = eps). */
static float nncf_asym_params(const float *x, int64_t n, int L, int *z)
{
    float lo, hi;
    min_max(x, n, &lo, &hi);
    float s = (hi - lo) / (float)L;
    if (fabsf(s) < FLT_EPSILON)
        s = FLT_EPSILON;
    *z = clamp_code(0.0f - rintf(lo / s), 0, L, 0);
    return s;
}

/* clamp(rint(x / s + z), 0, L): z is added in float before rounding, as NNCF does. */
static int nncf_asym_code(float x, float s, int z, int L)
{
    return clamp_code(rintf(x / s + (float)z), 0, L, z);
}

void qf_quantize_row_nncf_int8_asym_ref(const float *x, void *y, int64_t k)
{
    assert(k > 0);
    uint8_t *out = y;
    int z;
    float s = nncf_asym_params(x, k, 255, &z);
    put_f16_le(out, qf_fp32_to_fp16(s));
    out[2] = (uint8_t)z;
    for (int64_t i = 0; i < k; i++)
        out[QF_NNCF_INT8_ASYM_HEADER + i] = (uint8_t)nncf_asym_code(x[i], s, z, 255);
}

void qf_dequantize_row_nncf_int8_asym(const void *x, float *y, int64_t k)
{
    const uint8_t *in = x;
    float d = get_f16_le(in);
    int z = in[2];
    for (int64_t i = 0; i < k; i++)
        y[i] = d * (float)(in[QF_NNCF_INT8_ASYM_HEADER + i] - z);
}

void qf_vec_dot_nncf_int8_asym_q8_0_ref(int64_t k, const void *w, const void *a, float *s)
{
    assert(k % QF_QK8_0 == 0);
    const uint8_t *in = w;
    const qf_block_q8_0 *ab = a;
    float d = get_f16_le(in);
    int32_t z = in[2];
    float sumf = 0.0f;
    for (int64_t b = 0; b < k / QF_QK8_0; b++) {
        int qw[QF_QK8_0];
        int32_t asum;
        for (int j = 0; j < QF_QK8_0; j++)
            qw[j] = in[QF_NNCF_INT8_ASYM_HEADER + b * QF_QK8_0 + j];
        int32_t isum = q8_isum(ab[b].qs, qw, &asum);
        sumf += qf_fp16_to_fp32(ab[b].d) * (float)(isum - z * asum);
    }
    *s = d * sumf;
}

/* The 4-bit value of weight j in OpenVINO's nibble order (2j low, 2j + 1 high). */
static int nib_u4(const uint8_t *qs, int j)
{
    return (qs[j / 2] >> (4 * (j & 1))) & 0x0f;
}

static int nib_i4(const uint8_t *qs, int j)
{
    int v = nib_u4(qs, j);
    return v >= 8 ? v - 16 : v;
}

static void put_nibbles(uint8_t *qs, const int *q, int n)
{
    for (int j = 0; j < n / 2; j++)
        qs[j] = (uint8_t)((q[2 * j] & 0x0f) | (q[2 * j + 1] & 0x0f) << 4);
}

void qf_quantize_row_nncf_int4_sym_g128_ref(const float *x, void *y, int64_t k)
{
    assert(k > 0 && k % QF_NNCF_G == 0);
    qf_block_nncf_int4_sym_g128 *blk = y;
    for (int64_t b = 0; b < k / QF_NNCF_G; b++, x += QF_NNCF_G) {
        float lo, hi;
        min_max(x, QF_NNCF_G, &lo, &hi);
        float s = fabsf(lo) >= hi ? fabsf(lo) : -hi;   /* the signed extreme lands on -8 */
        s = s / 8.0f;
        if (fabsf(s) < FLT_EPSILON)
            s = FLT_EPSILON;
        int q[QF_NNCF_G];
        for (int j = 0; j < QF_NNCF_G; j++)
            q[j] = clamp_code(rintf(x[j] / s), -8, 7, 0);
        put_f16_le(blk[b].d, qf_fp32_to_fp16(s));
        put_nibbles(blk[b].qs, q, QF_NNCF_G);
    }
}

void qf_quantize_row_nncf_int4_asym_g128_ref(const float *x, void *y, int64_t k)
{
    assert(k > 0 && k % QF_NNCF_G == 0);
    qf_block_nncf_int4_asym_g128 *blk = y;
    for (int64_t b = 0; b < k / QF_NNCF_G; b++, x += QF_NNCF_G) {
        int z;
        float s = nncf_asym_params(x, QF_NNCF_G, 15, &z);
        int q[QF_NNCF_G];
        for (int j = 0; j < QF_NNCF_G; j++)
            q[j] = nncf_asym_code(x[j], s, z, 15);
        put_f16_le(blk[b].d, qf_fp32_to_fp16(s));
        blk[b].z = (uint8_t)z;
        put_nibbles(blk[b].qs, q, QF_NNCF_G);
    }
}

/* The two 4-bit formats decode alike: w = d * (q - z) with z = 0 and signed nibbles for SYM.
 * blk points at the row's first block of bytes bytes: d at 0, (z at 2,) nibbles after. */
typedef struct nncf4_layout {
    size_t bytes, qs;                    /* block size, offset of the nibbles */
    int    asym;                         /* z at offset 2, unsigned nibbles */
} nncf4_layout;

static const nncf4_layout k_nncf4_sym = { sizeof(qf_block_nncf_int4_sym_g128), 2, 0 };
static const nncf4_layout k_nncf4_asym = { sizeof(qf_block_nncf_int4_asym_g128), 3, 1 };

static int nncf4_code(const nncf4_layout *l, const uint8_t *blk, int j)
{
    return l->asym ? nib_u4(blk + l->qs, j) : nib_i4(blk + l->qs, j);
}

static void dequantize_row_nncf4(const nncf4_layout *l, const uint8_t *blk, float *y, int64_t k)
{
    assert(k % QF_NNCF_G == 0);
    for (int64_t b = 0; b < k / QF_NNCF_G; b++, blk += l->bytes) {
        float d = get_f16_le(blk);
        int z = l->asym ? blk[2] : 0;
        for (int j = 0; j < QF_NNCF_G; j++)
            y[b * QF_NNCF_G + j] = d * (float)(nncf4_code(l, blk, j) - z);
    }
}

static void vec_dot_nncf4(const nncf4_layout *l, int64_t k, const uint8_t *blk,
                          const qf_block_q8_0 *ab, float *s)
{
    assert(k % QF_NNCF_G == 0);
    float sumf = 0.0f;
    for (int64_t b = 0; b < k / QF_NNCF_G; b++, blk += l->bytes) {
        float d = get_f16_le(blk);
        int32_t z = l->asym ? blk[2] : 0;
        for (int sb = 0; sb < QF_NNCF_G / QF_QK8_0; sb++, ab++) {
            int qw[QF_QK8_0];
            int32_t asum;
            for (int j = 0; j < QF_QK8_0; j++)
                qw[j] = nncf4_code(l, blk, sb * QF_QK8_0 + j);
            int32_t isum = q8_isum(ab->qs, qw, &asum);
            sumf += (d * qf_fp16_to_fp32(ab->d)) * (float)(isum - z * asum);
        }
    }
    *s = sumf;
}

void qf_dequantize_row_nncf_int4_sym_g128(const void *x, float *y, int64_t k)
{
    dequantize_row_nncf4(&k_nncf4_sym, x, y, k);
}

void qf_vec_dot_nncf_int4_sym_g128_q8_0_ref(int64_t k, const void *w, const void *a, float *s)
{
    vec_dot_nncf4(&k_nncf4_sym, k, w, a, s);
}

void qf_dequantize_row_nncf_int4_asym_g128(const void *x, float *y, int64_t k)
{
    dequantize_row_nncf4(&k_nncf4_asym, x, y, k);
}

void qf_vec_dot_nncf_int4_asym_g128_q8_0_ref(int64_t k, const void *w, const void *a, float *s)
{
    vec_dot_nncf4(&k_nncf4_asym, k, w, a, s);
}

/* --- MLX affine ---------------------------------------------------------------------------- */

/* Bytes of one mlx_affine block: scale, bias, then G * B bits. */
static size_t mlx_block_bytes(int bits, int g)
{
    return 4 + (size_t)(g * bits / 8);
}

/* Code i of a packed group: bits [bits * i, bits * i + bits) of the little-endian byte string,
 * reading the next byte only when the code straddles into it. */
static int mlx_code(const uint8_t *qs, int i, int bits)
{
    unsigned pos = (unsigned)(i * bits), sh = pos % 8;
    unsigned v = qs[pos / 8];
    if (sh + (unsigned)bits > 8)
        v |= (unsigned)qs[pos / 8 + 1] << 8;
    return (int)((v >> sh) & ((1u << bits) - 1));
}

/* One group: the scale and bias MLX's kernel derives (see the top of the file) and the codes,
 * packed LSB first. x is the group already rounded to f16. */
static void quantize_group_mlx(const float *x, uint8_t *blk, int bits, int g)
{
    const int nmax = (1 << bits) - 1;
    float w_min, w_max;
    min_max(x, g, &w_min, &w_max);
    w_min = fminf(w_min, 65504.0f);         /* the kernel starts at Limits<half>::max and 0 */
    w_max = fmaxf(w_max, 0.0f);
    float s = fmaxf((w_max - w_min) / (float)nmax, 1e-7f);
    const int side = fabsf(w_min) > fabsf(w_max);
    if (!side)
        s = -s;
    const float edge = side ? w_min : w_max;
    const float q0 = roundf(edge / s);
    float b = 0.0f;
    if (q0 != 0.0f) {
        s = edge / q0;
        b = edge;
    }
    put_f16_le(blk, qf_fp32_to_fp16(s));
    put_f16_le(blk + 2, qf_fp32_to_fp16(b));

    /* a NaN weight takes the code 0 would get; NaN there too (an overflowed group) gives 0 */
    const int nan_code = clamp_code(roundf((0.0f - b) / s), 0, nmax, 0);
    uint8_t *qs = blk + 4;
    memset(qs, 0, (size_t)(g * bits / 8));
    for (int i = 0; i < g; i++) {
        unsigned q = (unsigned)clamp_code(roundf((x[i] - b) / s), 0, nmax, nan_code);
        unsigned pos = (unsigned)(i * bits), v = q << (pos % 8);
        qs[pos / 8] |= (uint8_t)(v & 0xff);
        if (v > 0xff)
            qs[pos / 8 + 1] |= (uint8_t)(v >> 8);
    }
}

static void quantize_row_mlx(const float *x, void *y, int64_t k, int bits, int g)
{
    assert(k > 0 && k % g == 0 && g <= MLX_G_MAX);
    uint8_t *blk = y;
    float xh[MLX_G_MAX];
    for (int64_t b = 0; b < k / g; b++, blk += mlx_block_bytes(bits, g)) {
        for (int i = 0; i < g; i++)   /* the f16 array mx.quantize is handed */
            xh[i] = qf_fp16_to_fp32(qf_fp32_to_fp16(x[b * g + i]));
        quantize_group_mlx(xh, blk, bits, g);
    }
}

static void dequantize_row_mlx(const void *x, float *y, int64_t k, int bits, int g)
{
    assert(k % g == 0);
    const uint8_t *blk = x;
    for (int64_t b = 0; b < k / g; b++, blk += mlx_block_bytes(bits, g)) {
        float s = get_f16_le(blk), bias = get_f16_le(blk + 2);
        for (int i = 0; i < g; i++)
            y[b * g + i] = s * (float)mlx_code(blk + 4, i, bits) + bias;
    }
}

static void vec_dot_mlx_q8_0(int64_t k, const void *w, const void *a, float *s, int bits, int g)
{
    assert(k % g == 0 && g % QF_QK8_0 == 0);
    const uint8_t *blk = w;
    const qf_block_q8_0 *ab = a;
    float sumf = 0.0f;
    for (int64_t b = 0; b < k / g; b++, blk += mlx_block_bytes(bits, g)) {
        float sc = get_f16_le(blk), bias = get_f16_le(blk + 2);
        for (int sb = 0; sb < g / QF_QK8_0; sb++, ab++) {
            int qw[QF_QK8_0];
            int32_t asum;
            for (int j = 0; j < QF_QK8_0; j++)
                qw[j] = mlx_code(blk + 4, sb * QF_QK8_0 + j, bits);
            int32_t isum = q8_isum(ab->qs, qw, &asum);
            float da = qf_fp16_to_fp32(ab->d);
            sumf += (sc * da) * (float)isum + (bias * da) * (float)asum;
        }
    }
    *s = sumf;
}

#define QF_MLX_ROW_FNS(B, G)                                                                \
    void qf_quantize_row_mlx_affine##B##_g##G##_ref(const float *x, void *y, int64_t k)     \
    {                                                                                       \
        quantize_row_mlx(x, y, k, B, G);                                                    \
    }                                                                                       \
    void qf_dequantize_row_mlx_affine##B##_g##G(const void *x, float *y, int64_t k)         \
    {                                                                                       \
        dequantize_row_mlx(x, y, k, B, G);                                                  \
    }                                                                                       \
    void qf_vec_dot_mlx_affine##B##_g##G##_q8_0_ref(int64_t k, const void *w, const void *a, \
                                                   float *s)                                \
    {                                                                                       \
        vec_dot_mlx_q8_0(k, w, a, s, B, G);                                                 \
    }
QF_MLX_AFFINE_FORMATS(QF_MLX_ROW_FNS)
#undef QF_MLX_ROW_FNS
