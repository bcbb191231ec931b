/* avx512_float.c - the AVX-512 row kernels of the float formats: f16 and bf16 conversions and
 * the f32, f16 and bf16 dot products, 16 lanes at a time with masked tails.
 *
 * The same arithmetic as avx2_float.c, wider: F16C's conversions (round to nearest even,
 * subnormals exact; a NaN's payload redone with qf_fp32_to_fp16, which canonicalizes it), the
 * reference's bf16 rounding as integer instructions, FMA into four accumulators. AVX512-BF16's
 * vdpbf16ps is not used: it flushes subnormal inputs to zero, which the reference does not.
 * f32 quantize and dequantize are a memcpy and stay with the reference.
 * Compiled with the avx512 flags; called only after dispatch.c's detection. The dot products
 * are a float matvec's inner loop.
 */
#include <string.h>

#include "isa/qf_isa_fill.h"
#include "x86/x86_util.h"

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

/* Lanes [0, n) of a 16-lane step, n <= 16. */
static inline __mmask16 tail_mask(int64_t n)
{
    return (__mmask16)((1u << n) - 1u);
}

/* --- f16 ----------------------------------------------------------------------------------- */

static void quantize_row_f16(const float *x, void *y, int64_t k)
{
    qf_half *h = y;
    for (int64_t i = 0; i < k; i += 16) {
        const __mmask16 m = k - i >= 16 ? (__mmask16)0xFFFF : tail_mask(k - i);
        const __m512 v = _mm512_maskz_loadu_ps(m, x + i);
        const __m256i r = _mm512_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
        _mm256_mask_storeu_epi16(h + i, m, r);
        if (_mm512_mask_cmp_ps_mask(m, v, v, _CMP_UNORD_Q))
            for (int64_t j = i; j < i + 16 && j < k; j++)
                h[j] = qf_fp32_to_fp16(x[j]);
    }
}

static void dequantize_row_f16(const void *x, float *y, int64_t k)
{
    const qf_half *h = x;
    for (int64_t i = 0; i < k; i += 16) {
        const __mmask16 m = k - i >= 16 ? (__mmask16)0xFFFF : tail_mask(k - i);
        _mm512_mask_storeu_ps(y + i, m, _mm512_cvtph_ps(_mm256_maskz_loadu_epi16(m, h + i)));
    }
}

/* --- bf16 ---------------------------------------------------------------------------------- */

static void quantize_row_bf16(const float *x, void *y, int64_t k)
{
    qf_bf16 *h = y;
    for (int64_t i = 0; i < k; i += 16) {
        const __mmask16 m = k - i >= 16 ? (__mmask16)0xFFFF : tail_mask(k - i);
        const __m512i u = _mm512_castps_si512(_mm512_maskz_loadu_ps(m, x + i));
        const __m512i abs = _mm512_and_si512(u, _mm512_set1_epi32(0x7fffffff));
        const __mmask16 nan = _mm512_cmpgt_epi32_mask(abs, _mm512_set1_epi32(0x7f800000));
        const __m512i odd = _mm512_and_si512(_mm512_srli_epi32(u, 16), _mm512_set1_epi32(1));
        __m512i r = _mm512_srli_epi32(
            _mm512_add_epi32(u, _mm512_add_epi32(_mm512_set1_epi32(0x7fff), odd)), 16);
        r = _mm512_mask_or_epi32(r, nan, _mm512_srli_epi32(u, 16), _mm512_set1_epi32(64));
        _mm256_mask_storeu_epi16(h + i, m, _mm512_cvtepi32_epi16(r));
    }
}

static inline __m512 bf16_load16(const qf_bf16 *h, __mmask16 m)
{
    const __m512i w = _mm512_cvtepu16_epi32(_mm256_maskz_loadu_epi16(m, h));
    return _mm512_castsi512_ps(_mm512_slli_epi32(w, 16));
}

static void dequantize_row_bf16(const void *x, float *y, int64_t k)
{
    const qf_bf16 *h = x;
    for (int64_t i = 0; i < k; i += 16) {
        const __mmask16 m = k - i >= 16 ? (__mmask16)0xFFFF : tail_mask(k - i);
        _mm512_mask_storeu_ps(y + i, m, bf16_load16(h + i, m));
    }
}

/* --- dot products -------------------------------------------------------------------------- */

/* LOAD16(p, i, m) gives the 16 floats at element i, lanes outside m zero. */
#define FLOAT_DOT(name, T, LOAD16)                                                        \
    static void name(int64_t k, const void *w, const void *a, float *s)                   \
    {                                                                                     \
        const T *x = w, *y = a;                                                           \
        const __mmask16 all = 0xFFFF;                                                     \
        __m512 acc[4] = { _mm512_setzero_ps(), _mm512_setzero_ps(),                       \
                          _mm512_setzero_ps(), _mm512_setzero_ps() };                     \
        int64_t i = 0;                                                                    \
        for (; i + 64 <= k; i += 64)                                                      \
            _Pragma("GCC unroll 4")                                                       \
            for (int j = 0; j < 4; j++)                                                   \
                acc[j] = _mm512_fmadd_ps(LOAD16(x, i + 16 * j, all),                      \
                                         LOAD16(y, i + 16 * j, all), acc[j]);             \
        for (; i < k; i += 16) {                                                          \
            const __mmask16 m = k - i >= 16 ? all : tail_mask(k - i);                     \
            acc[0] = _mm512_fmadd_ps(LOAD16(x, i, m), LOAD16(y, i, m), acc[0]);           \
        }                                                                                 \
        *s = _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(acc[0], acc[1]),            \
                                                _mm512_add_ps(acc[2], acc[3])));          \
    }

#define F32_LOAD16(p, i, m)  _mm512_maskz_loadu_ps((m), (p) + (i))
#define F16_LOAD16(p, i, m)  _mm512_cvtph_ps(_mm256_maskz_loadu_epi16((m), (p) + (i)))
#define BF16_LOAD16(p, i, m) bf16_load16((p) + (i), (m))

FLOAT_DOT(vec_dot_f32, float, F32_LOAD16)
FLOAT_DOT(vec_dot_f16, qf_half, F16_LOAD16)
FLOAT_DOT(vec_dot_bf16, qf_bf16, BF16_LOAD16)

void qf_isa_fill_avx512_float(qf_isa_kernels t[QF_FMT_COUNT])
{
    t[QF_FMT_F32].vec_dot = vec_dot_f32;
    t[QF_FMT_F16] = (qf_isa_kernels){ quantize_row_f16, dequantize_row_f16, vec_dot_f16 };
    t[QF_FMT_BF16] = (qf_isa_kernels){ quantize_row_bf16, dequantize_row_bf16, vec_dot_bf16 };
}
