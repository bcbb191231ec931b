/* avx2_float.c - the AVX2 row kernels of the float formats: f16 and bf16 conversions, and the
 * dot products of f32, f16 and bf16 rows.
 *
 * f16 goes through F16C, whose conversions round to nearest even and keep subnormals exactly
 * as the reference's bit routines do; the one place they differ is a NaN's payload, which the
 * reference canonicalizes, so a vector holding a NaN is redone with qf_fp32_to_fp16. bf16 is
 * integer arithmetic, the reference's formula lane by lane. f32 quantize and dequantize are a
 * memcpy and stay with the reference. The dot products accumulate products with FMA in four
 * vectors of partial sums (the reference sums float products in double: within the contract's
 * 1e-5 of sum |w a| for any row length the tests use, and far below it in practice).
 * Compiled with the avx2 flags; called only after dispatch.c's detection. The dot products are
 * a float matvec's inner loop, memory-bound from L2 onwards.
 */
#include <string.h>

#include "isa/qf_isa_fill.h"
#include "x86/x86_util.h"

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

/* --- f16 ----------------------------------------------------------------------------------- */

static void quantize_row_f16(const float *x, void *y, int64_t k)
{
    qf_half *h = y;
    int64_t i = 0;
    for (; i + 8 <= k; i += 8) {
        const __m256 v = _mm256_loadu_ps(x + i);
        _mm_storeu_si128((__m128i *)(h + i),
                         _mm256_cvtps_ph(v, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
        if (_mm256_movemask_ps(_mm256_cmp_ps(v, v, _CMP_UNORD_Q)))
            for (int j = 0; j < 8; j++)
                h[i + j] = qf_fp32_to_fp16(x[i + j]);
    }
    for (; i < k; i++)
        h[i] = qf_fp32_to_fp16(x[i]);
}

static void dequantize_row_f16(const void *x, float *y, int64_t k)
{
    const qf_half *h = x;
    int64_t i = 0;
    for (; i + 8 <= k; i += 8)
        _mm256_storeu_ps(y + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(h + i))));
    for (; i < k; i++)
        y[i] = qf_x86_h2f(h[i]);
}

/* --- bf16 ---------------------------------------------------------------------------------- */

/* The reference's qf_fp32_to_bf16 on 8 lanes, as 8 int32 holding the 16-bit results. */
static inline __m256i bf16_round8(__m256 v)
{
    const __m256i u = _mm256_castps_si256(v);
    const __m256i abs = _mm256_and_si256(u, _mm256_set1_epi32(0x7fffffff));
    const __m256i nan = _mm256_cmpgt_epi32(abs, _mm256_set1_epi32(0x7f800000));
    const __m256i odd = _mm256_and_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(1));
    const __m256i r = _mm256_srli_epi32(
        _mm256_add_epi32(u, _mm256_add_epi32(_mm256_set1_epi32(0x7fff), odd)), 16);
    const __m256i q = _mm256_or_si256(_mm256_srli_epi32(u, 16), _mm256_set1_epi32(64));
    return _mm256_blendv_epi8(r, q, nan);
}

static void quantize_row_bf16(const float *x, void *y, int64_t k)
{
    qf_bf16 *h = y;
    int64_t i = 0;
    for (; i + 16 <= k; i += 16) {
        const __m256i a = bf16_round8(_mm256_loadu_ps(x + i));
        const __m256i b = bf16_round8(_mm256_loadu_ps(x + i + 8));
        const __m256i p = _mm256_permute4x64_epi64(_mm256_packus_epi32(a, b),
                                                   _MM_SHUFFLE(3, 1, 2, 0));
        _mm256_storeu_si256((__m256i *)(h + i), p);
    }
    for (; i < k; i++)
        h[i] = qf_fp32_to_bf16(x[i]);
}

static inline __m256 bf16_load8(const qf_bf16 *h)
{
    const __m256i w = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)h));
    return _mm256_castsi256_ps(_mm256_slli_epi32(w, 16));
}

static void dequantize_row_bf16(const void *x, float *y, int64_t k)
{
    const qf_bf16 *h = x;
    int64_t i = 0;
    for (; i + 8 <= k; i += 8)
        _mm256_storeu_ps(y + i, bf16_load8(h + i));
    for (; i < k; i++)
        y[i] = qf_bf16_to_fp32(h[i]);
}

/* --- dot products -------------------------------------------------------------------------- */

/* One dot product body per element type: LOAD8(p, i) gives 8 floats at element i, ONE(p, i)
 * one float. Four accumulators hide the FMA latency. */
#define FLOAT_DOT(name, T, LOAD8, ONE)                                                 \
    static void name(int64_t k, const void *w, const void *a, float *s)                \
    {                                                                                  \
        const T *x = w, *y = a;                                                        \
        __m256 acc[4] = { _mm256_setzero_ps(), _mm256_setzero_ps(),                    \
                          _mm256_setzero_ps(), _mm256_setzero_ps() };                  \
        int64_t i = 0;                                                                 \
        for (; i + 32 <= k; i += 32)                                                   \
            _Pragma("GCC unroll 4")                                                    \
            for (int j = 0; j < 4; j++)                                                \
                acc[j] = _mm256_fmadd_ps(LOAD8(x, i + 8 * j), LOAD8(y, i + 8 * j), acc[j]); \
        for (; i + 8 <= k; i += 8)                                                     \
            acc[0] = _mm256_fmadd_ps(LOAD8(x, i), LOAD8(y, i), acc[0]);                \
        float sum = qf_x86_hsum_ps(_mm256_add_ps(_mm256_add_ps(acc[0], acc[1]),        \
                                                 _mm256_add_ps(acc[2], acc[3])));      \
        for (; i < k; i++)                                                             \
            sum += ONE(x, i) * ONE(y, i);                                              \
        *s = sum;                                                                      \
    }

#define F32_LOAD8(p, i)  _mm256_loadu_ps((p) + (i))
#define F32_ONE(p, i)    ((p)[i])
#define F16_LOAD8(p, i)  _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)((p) + (i))))
#define F16_ONE(p, i)    qf_x86_h2f((p)[i])
#define BF16_LOAD8(p, i) bf16_load8((p) + (i))
#define BF16_ONE(p, i)   qf_bf16_to_fp32((p)[i])

FLOAT_DOT(vec_dot_f32, float, F32_LOAD8, F32_ONE)
FLOAT_DOT(vec_dot_f16, qf_half, F16_LOAD8, F16_ONE)
FLOAT_DOT(vec_dot_bf16, qf_bf16, BF16_LOAD8, BF16_ONE)

void qf_isa_fill_avx2_float(qf_isa_kernels t[QF_FMT_COUNT])
{
    t[QF_FMT_F32].vec_dot = vec_dot_f32;
    t[QF_FMT_F16] = (qf_isa_kernels){ quantize_row_f16, dequantize_row_f16, vec_dot_f16 };
    t[QF_FMT_BF16] = (qf_isa_kernels){ quantize_row_bf16, dequantize_row_bf16, vec_dot_bf16 };
}
