/* neon_float.c - the NEON (dotprod) row kernels of the float formats f32, f16 and bf16 (see
 * qf_kernels.h and kernels/isa/qf_isa_fill.h).
 *
 * Compiled only for AArch64 with -march=armv8.2-a+dotprod+fp16; called only after dispatch.c's
 * detection saw dotprod. Conversions are bit-exact with kernels/ref/float.c: FCVT rounds to
 * nearest even and keeps subnormals exactly as qf_fp32_to_fp16 does, and only NaN differs (the
 * hardware keeps payload bits), so NaN lanes are patched to the reference's sign | 0x7e00;
 * bfloat16 is integer arithmetic, the reference's own. f32 quantize and dequantize are memcpy
 * and stay the reference's. The dot products multiply and add in binary32 over chunks of 256
 * elements in four accumulators, then add each chunk into a double, so the rounding error
 * stays near 1e-7 of sum |w a| for any row length (the contract allows 1e-5).
 * These are the f16/bf16 baselines of every speed table: hot, one call per weight row.
 */
#include <arm_neon.h>
#include <stdint.h>

#include "isa/qf_isa_fill.h"
#include "neon_util.h"

/* Elements per float chunk before the partial sums go into the double accumulator. */
#define CHUNK 256

/* --- f32 ------------------------------------------------------------------------------------- */

/* The element kinds the dot products read; each loads four lanes as binary32. */
enum kind { KIND_F32, KIND_F16, KIND_BF16 };

static float32x4_t f16_load4(const qf_half *h)
{
    return vcvt_f32_f16(vreinterpret_f16_u16(vld1_u16(h)));
}

static float32x4_t bf16_load4(const qf_bf16 *h)
{
    return vreinterpretq_f32_u32(vshll_n_u16(vld1_u16(h), 16));
}

static inline float32x4_t load4(const void *p, int64_t i, enum kind kind)
{
    switch (kind) {
    case KIND_F16:  return f16_load4((const qf_half *)p + i);
    case KIND_BF16: return bf16_load4((const qf_bf16 *)p + i);
    default:        return vld1q_f32((const float *)p + i);
    }
}

/* sum w[i] a[i] over the first n elements, n a multiple of 16: binary32 FMAs in four
 * accumulators per chunk, chunks added in double. Inlined with a constant kind, the switch in
 * load4 folds away. */
static inline double dot_chunks(const void *w, const void *a, int64_t n, enum kind kind)
{
    double sum = 0.0;
    for (int64_t c = 0; c < n; c += CHUNK) {
        const int64_t end = c + CHUNK < n ? c + CHUNK : n;
        float32x4_t acc[4] = { vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0), vdupq_n_f32(0) };
        for (int64_t i = c; i < end; i += 16)
            for (int j = 0; j < 4; j++)
                acc[j] = vfmaq_f32(acc[j], load4(w, i + 4 * j, kind), load4(a, i + 4 * j, kind));
        sum += (double)vaddvq_f32(vaddq_f32(vaddq_f32(acc[0], acc[1]), vaddq_f32(acc[2], acc[3])));
    }
    return sum;
}

static void vec_dot_f32(int64_t k, const void *w, const void *a, float *s)
{
    const float *x = w, *y = a;
    const int64_t n = k - k % 16;
    double sum = dot_chunks(w, a, n, KIND_F32);
    for (int64_t i = n; i < k; i++)
        sum += (double)(x[i] * y[i]);
    *s = (float)sum;
}

/* --- f16 ------------------------------------------------------------------------------------- */

/* Four floats to binary16 bits, NaN lanes as the reference writes them. */
static uint16x4_t f32_to_f16_bits(float32x4_t v)
{
    const uint16x4_t h = vreinterpret_u16_f16(vcvt_f16_f32(v));
    const uint16x4_t is_num = vmovn_u32(vceqq_f32(v, v));
    const uint16x4_t sign = vshrn_n_u32(vandq_u32(vreinterpretq_u32_f32(v),
                                                  vdupq_n_u32(0x80000000u)), 16);
    const uint16x4_t nan = vorr_u16(sign, vdup_n_u16(0x7e00));
    return vbsl_u16(is_num, h, nan);
}

static void quantize_row_f16(const float *x, void *y, int64_t k)
{
    qf_half *h = y;
    int64_t i = 0;
    for (; i + 8 <= k; i += 8) {
        vst1_u16(h + i, f32_to_f16_bits(vld1q_f32(x + i)));
        vst1_u16(h + i + 4, f32_to_f16_bits(vld1q_f32(x + i + 4)));
    }
    for (; i < k; i++)
        h[i] = qf_fp32_to_fp16(x[i]);
}

static void dequantize_row_f16(const void *x, float *y, int64_t k)
{
    const qf_half *h = x;
    int64_t i = 0;
    for (; i + 8 <= k; i += 8) {
        vst1q_f32(y + i, f16_load4(h + i));
        vst1q_f32(y + i + 4, f16_load4(h + i + 4));
    }
    for (; i < k; i++)
        y[i] = qf_neon_h2f(h[i]);
}

static void vec_dot_f16(int64_t k, const void *w, const void *a, float *s)
{
    const qf_half *x = w, *y = a;
    const int64_t n = k - k % 16;
    double sum = dot_chunks(w, a, n, KIND_F16);
    for (int64_t i = n; i < k; i++)
        sum += (double)(qf_neon_h2f(x[i]) * qf_neon_h2f(y[i]));
    *s = (float)sum;
}

/* --- bf16 ------------------------------------------------------------------------------------ */

/* Four floats to bfloat16 bits: round to nearest even on the integer bits; NaN truncated and
 * made quiet, as qf_fp32_to_bf16. */
static uint16x4_t f32_to_bf16_bits(float32x4_t v)
{
    const uint32x4_t u = vreinterpretq_u32_f32(v);
    const uint32x4_t odd = vandq_u32(vshrq_n_u32(u, 16), vdupq_n_u32(1));
    const uint16x4_t rounded = vshrn_n_u32(vaddq_u32(u, vaddq_u32(vdupq_n_u32(0x7fff), odd)), 16);
    const uint16x4_t nan = vorr_u16(vshrn_n_u32(u, 16), vdup_n_u16(64));
    const uint32x4_t is_nan = vcgtq_u32(vandq_u32(u, vdupq_n_u32(0x7fffffffu)),
                                        vdupq_n_u32(0x7f800000u));
    return vbsl_u16(vmovn_u32(is_nan), nan, rounded);
}

static void quantize_row_bf16(const float *x, void *y, int64_t k)
{
    qf_bf16 *h = y;
    int64_t i = 0;
    for (; i + 8 <= k; i += 8) {
        vst1_u16(h + i, f32_to_bf16_bits(vld1q_f32(x + i)));
        vst1_u16(h + i + 4, f32_to_bf16_bits(vld1q_f32(x + i + 4)));
    }
    for (; i < k; i++)
        h[i] = qf_fp32_to_bf16(x[i]);
}

static void dequantize_row_bf16(const void *x, float *y, int64_t k)
{
    const qf_bf16 *h = x;
    int64_t i = 0;
    for (; i + 8 <= k; i += 8) {
        vst1q_f32(y + i, bf16_load4(h + i));
        vst1q_f32(y + i + 4, bf16_load4(h + i + 4));
    }
    for (; i < k; i++)
        y[i] = qf_bf16_to_fp32(h[i]);
}

static void vec_dot_bf16(int64_t k, const void *w, const void *a, float *s)
{
    const qf_bf16 *x = w, *y = a;
    const int64_t n = k - k % 16;
    double sum = dot_chunks(w, a, n, KIND_BF16);
    for (int64_t i = n; i < k; i++)
        sum += (double)(qf_bf16_to_fp32(x[i]) * qf_bf16_to_fp32(y[i]));
    *s = (float)sum;
}

/* Only stores pointers: no NEON instruction runs here (qf_isa_fill.h). */
void qf_isa_fill_neon_float(qf_isa_kernels t[QF_FMT_COUNT])
{
    t[QF_FMT_F32].vec_dot = vec_dot_f32;
    t[QF_FMT_F16] = (qf_isa_kernels){ quantize_row_f16, dequantize_row_f16, vec_dot_f16 };
    t[QF_FMT_BF16] = (qf_isa_kernels){ quantize_row_bf16, dequantize_row_bf16, vec_dot_bf16 };
}
