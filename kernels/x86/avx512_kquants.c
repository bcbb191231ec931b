/* avx512_kquants.c - the AVX-512 (F+BW+VL+DQ+VNNI) row kernels of the K-quants (see
 * qf_kernels.h and kernels/isa/qf_isa_fill.h): the dot products with q8_K, which are what a
 * matvec runs once per weight row. Compiled with the avx512 flags; runs only where dispatch.c's
 * detection said the host has them.
 *
 * Each step takes 64 weights as one register of unsigned levels (q + offset, 0..63), multiplies
 * them with 64 int8 activations by maddubs (pairs into int16, exact: 63 * 128 * 2 < 2^15) and
 * adds the pairs times their sub-block scale into int32 lanes with VNNI's dpwssd. Offsets and
 * mins come out through the activations' 16-sums (bsums), once per super-block. Integer sums
 * are exact, and the float side follows the reference as avx2_kquants.c explains: q2_K, q4_K
 * and q5_K round exactly as it does (their scale and min parts can dwarf the result), q3_K and
 * q6_K take one exact integer total per block.
 * Quantize and dequantize are not written for 512 bits (yet): those slots fall back to
 * avx2_kquants.c (dispatch.c's avx512 -> avx2 fallback), byte- and bit-exact as well.
 */
#include <immintrin.h>
#include <stdint.h>
#include <string.h>

#include "isa/qf_isa_fill.h"

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

#define INLINE static inline __attribute__((always_inline))
#define UNROLL _Pragma("GCC unroll 8")

INLINE float f16_to_f32(qf_half h)
{
    return _cvtsh_ss(h);
}

INLINE int hsum_i32(__m256i v)
{
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}

/* byte 4l + m <- byte l + 8m of each 32 (see avx2_kquants.c): int32 lane l then holds only
 * weights i = l mod 8, the reference's lanes */
INLINE __m256i by_class(__m256i v)
{
    const __m256i dw = _mm256_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7);
    const __m256i by = _mm256_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15,
                                        0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15);
    return _mm256_shuffle_epi8(_mm256_permutevar8x32_epi32(v, dw), by);
}

INLINE __m512i by_class512(__m512i v)
{
    const __m512i dw = _mm512_setr_epi32(0, 2, 4, 6, 1, 3, 5, 7, 8, 10, 12, 14, 9, 11, 13, 15);
    const __m512i by = _mm512_broadcast_i32x4(
        _mm_setr_epi8(0, 4, 8, 12, 1, 5, 9, 13, 2, 6, 10, 14, 3, 7, 11, 15));
    return _mm512_shuffle_epi8(_mm512_permutexvar_epi32(dw, v), by);
}

/* 16 int32 lanes summed down to 8 */
INLINE __m256i fold512(__m512i v)
{
    return _mm256_add_epi32(_mm512_castsi512_si256(v), _mm512_extracti64x4_epi64(v, 1));
}

/* two 32-byte halves as one register */
INLINE __m512i join(__m256i lo, __m256i hi)
{
    return _mm512_inserti64x4(_mm512_castsi256_si512(lo), hi, 1);
}

INLINE __m256i shr16(__m256i v, int n)
{
    return _mm256_srl_epi16(v, _mm_cvtsi32_si128(n));
}

/* acc += (levels x activations), pairs of weights scaled by their sub-block scales */
INLINE __m512i dot64(__m512i acc, __m512i w, __m512i a, __m512i scale16)
{
    return _mm512_dpwssd_epi32(acc, _mm512_maddubs_epi16(w, a), scale16);
}

/* The int16 scales of the four 16-weight sub-blocks 4c .. 4c + 3, one per 128-bit lane (the
 * pairs maddubs makes of weights 16k .. 16k + 15 sit in lane k). sc holds 16 int16 scales. */
INLINE __m512i scales_by16(__m256i sc, int c)
{
    const __m512i idx = _mm512_set_epi16(
        4 * c + 3, 4 * c + 3, 4 * c + 3, 4 * c + 3, 4 * c + 3, 4 * c + 3, 4 * c + 3, 4 * c + 3,
        4 * c + 2, 4 * c + 2, 4 * c + 2, 4 * c + 2, 4 * c + 2, 4 * c + 2, 4 * c + 2, 4 * c + 2,
        4 * c + 1, 4 * c + 1, 4 * c + 1, 4 * c + 1, 4 * c + 1, 4 * c + 1, 4 * c + 1, 4 * c + 1,
        4 * c, 4 * c, 4 * c, 4 * c, 4 * c, 4 * c, 4 * c, 4 * c);
    return _mm512_permutexvar_epi16(idx, _mm512_castsi256_si512(sc));
}

/* The same for 32-weight sub-blocks 2c and 2c + 1 (lanes 0-1 and 2-3); sc holds 8 int16. */
INLINE __m512i scales_by32(__m256i sc, int c)
{
    const __m512i idx = _mm512_set_epi16(
        2 * c + 1, 2 * c + 1, 2 * c + 1, 2 * c + 1, 2 * c + 1, 2 * c + 1, 2 * c + 1, 2 * c + 1,
        2 * c + 1, 2 * c + 1, 2 * c + 1, 2 * c + 1, 2 * c + 1, 2 * c + 1, 2 * c + 1, 2 * c + 1,
        2 * c, 2 * c, 2 * c, 2 * c, 2 * c, 2 * c, 2 * c, 2 * c,
        2 * c, 2 * c, 2 * c, 2 * c, 2 * c, 2 * c, 2 * c, 2 * c);
    return _mm512_permutexvar_epi16(idx, _mm512_castsi256_si512(sc));
}

/* The eight 6-bit scales (bytes 0..7) and eight 6-bit mins (bytes 8..15) of a q4_K / q5_K
 * block, built in registers (a 128-bit reload of four 32-bit stores would miss forwarding). */
INLINE __m128i unpack_k4_scales(const uint8_t *scales)
{
    uint32_t u[3];
    memcpy(u, scales, 12);
    const uint32_t m6 = 0x3f3f3f3f, m4 = 0x0f0f0f0f, m2 = 0x03030303;
    const uint32_t mins_hi = ((u[2] >> 4) & m4) | (((u[1] >> 6) & m2) << 4);
    const uint32_t sc_hi = (u[2] & m4) | (((u[0] >> 6) & m2) << 4);
    return _mm_setr_epi32((int)(u[0] & m6), (int)sc_hi, (int)(u[1] & m6), (int)mins_hi);
}

/* The sixteen 6-bit scales of a q3_K block minus 32, as int8. */
INLINE __m128i unpack_q3_scales(const uint8_t *scales)
{
    uint32_t a[3];
    memcpy(a, scales, 12);
    const uint32_t m4 = 0x0f0f0f0f, m2 = 0x03030303, hi = a[2];
    const __m128i v = _mm_setr_epi32((int)((a[0] & m4) | ((hi & m2) << 4)),
                                     (int)((a[1] & m4) | (((hi >> 2) & m2) << 4)),
                                     (int)(((a[0] >> 4) & m4) | (((hi >> 4) & m2) << 4)),
                                     (int)(((a[1] >> 4) & m4) | (((hi >> 6) & m2) << 4)));
    return _mm_sub_epi8(v, _mm_set1_epi8(32));
}

/* sum_j bsums[j] * m[j] for 16 int16 multipliers m, as 8 int32 */
INLINE __m256i bsum_dot(const qf_block_q8_K *yb, __m256i m16)
{
    return _mm256_madd_epi16(m16, _mm256_loadu_si256((const __m256i *)yb->bsums));
}

INLINE __m512i ld64(const void *p)
{
    return _mm512_loadu_si512(p);
}

static void vec_dot_q2_K(int64_t k, const void *w, const void *a, float *s)
{
    const qf_block_q2_K *x = w;
    const qf_block_q8_K *y = a;
    const __m512i m3 = _mm512_set1_epi8(3);
    float sumf = 0;
    for (int64_t b = 0; b < k / QF_QK_K; b++) {
        const float dall = y[b].d * f16_to_f32(x[b].d);
        const float dmin = y[b].d * f16_to_f32(x[b].dmin);
        const __m128i sm = _mm_loadu_si128((const __m128i *)x[b].scales);
        const __m256i mins = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(sm, 4),
                                                                 _mm_set1_epi8(0x0F)));
        const int summs = hsum_i32(bsum_dot(&y[b], mins));
        const __m256i sc = _mm256_cvtepu8_epi16(_mm_and_si128(sm, _mm_set1_epi8(0x0F)));
        __m512i sumi = _mm512_setzero_si512();
        UNROLL
        for (int c = 0; c < 4; c++) {
            /* weights 64c .. 64c + 63: bits 2s.. of qs[32h + l], h = c / 2, s = 2(c % 2) + 0/1 */
            const __m256i q = _mm256_loadu_si256((const __m256i *)(x[b].qs + 32 * (c / 2)));
            const int s0 = 2 * (c % 2);
            const __m512i lv = _mm512_and_si512(join(shr16(q, 2 * s0), shr16(q, 2 * s0 + 2)), m3);
            sumi = dot64(sumi, lv, ld64(y[b].qs + 64 * c), scales_by16(sc, c));
        }
        sumf += dall * (float)hsum_i32(fold512(sumi)) - dmin * (float)summs;
    }
    *s = sumf;
}

static void vec_dot_q3_K(int64_t k, const void *w, const void *a, float *s)
{
    const qf_block_q3_K *x = w;
    const qf_block_q8_K *y = a;
    const __m512i m3 = _mm512_set1_epi8(3), m4 = _mm512_set1_epi8(4);
    float sumf = 0;
    for (int64_t b = 0; b < k / QF_QK_K; b++) {
        const float d = f16_to_f32(x[b].d) * y[b].d;
        const __m256i sc = _mm256_cvtepi8_epi16(unpack_q3_scales(x[b].scales));
        /* levels go in as 0..7 (level + 4): take 4 * scale * (16-sum of the activations) back */
        const __m256i bias = _mm256_slli_epi32(bsum_dot(&y[b], sc), 2);
        const __m256i hm = _mm256_loadu_si256((const __m256i *)x[b].hmask);
        __m512i sumi = _mm512_setzero_si512();
        UNROLL
        for (int c = 0; c < 4; c++) {
            const __m256i q = _mm256_loadu_si256((const __m256i *)(x[b].qs + 32 * (c / 2)));
            const int s0 = 2 * (c % 2);
            const __m512i lo = _mm512_and_si512(join(shr16(q, 2 * s0), shr16(q, 2 * s0 + 2)), m3);
            /* hmask bit t = 2c, 2c + 1 of byte l, moved to bit 2 */
            const __m512i hb = join(shr16(hm, 2 * c), shr16(hm, 2 * c + 1));
            const __m512i lv = _mm512_or_si512(lo, _mm512_and_si512(_mm512_slli_epi16(hb, 2), m4));
            sumi = dot64(sumi, lv, ld64(y[b].qs + 64 * c), scales_by16(sc, c));
        }
        sumf += d * (float)hsum_i32(_mm256_sub_epi32(fold512(sumi), bias));
    }
    *s = sumf;
}

/* q4_K and q5_K, one block, in the by_class order: the reference's eight int32 lanes (both
 * sub-blocks of a register fold onto them), its float lanes into sums, its min step into sumf.
 * lv(c) gives the permuted levels of weights 64c .. 64c + 63. */
#define K4_BLOCK(xb, yb, lv, sumf, sums)                                                      \
    do {                                                                                      \
        const __m128i sm_ = unpack_k4_scales((xb)->scales);                                   \
        const __m256i mins_ = _mm256_cvtepu8_epi16(_mm_unpackhi_epi8(sm_, sm_));              \
        const int summ_ = hsum_i32(bsum_dot((yb), mins_));                                    \
        const __m256i sc_ = _mm256_cvtepu8_epi16(sm_);   /* scales in elements 0..7 */        \
        __m512i acc_ = _mm512_setzero_si512();                                                \
        UNROLL                                                                                \
        for (int c = 0; c < 4; c++)                                                           \
            acc_ = dot64(acc_, lv(c), by_class512(ld64((yb)->qs + 64 * c)),                   \
                         scales_by32(sc_, c));                                                \
        const __m256 d_ = _mm256_set1_ps(f16_to_f32((xb)->d) * (yb)->d);                      \
        (sums) = _mm256_add_ps((sums), _mm256_mul_ps(d_, _mm256_cvtepi32_ps(fold512(acc_)))); \
        (sumf) -= f16_to_f32((xb)->dmin) * (yb)->d * (float)summ_;                            \
    } while (0)

/* the reference's end: sumf, then the eight lanes in order */
INLINE float lanes_total(float sumf, __m256 sums)
{
    float l[8];
    _mm256_storeu_ps(l, sums);
    for (int i = 0; i < 8; i++)
        sumf += l[i];
    return sumf;
}

static void vec_dot_q4_K(int64_t k, const void *w, const void *a, float *s)
{
    const qf_block_q4_K *x = w;
    const qf_block_q8_K *y = a;
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    __m256 sums = _mm256_setzero_ps();
    float sumf = 0;
    for (int64_t b = 0; b < k / QF_QK_K; b++) {
        /* weights 64c + l and 64c + 32 + l: the two nibbles of qs[32c + l] */
#define Q4_LV(c)                                                                              \
    _mm512_and_si512(join(by_class(_mm256_loadu_si256((const __m256i *)(x[b].qs + 32 * (c)))), \
                          _mm256_srli_epi16(by_class(_mm256_loadu_si256(                      \
                              (const __m256i *)(x[b].qs + 32 * (c)))), 4)), m4)
        K4_BLOCK(&x[b], &y[b], Q4_LV, sumf, sums);
#undef Q4_LV
    }
    *s = lanes_total(sumf, sums);
}

static void vec_dot_q5_K(int64_t k, const void *w, const void *a, float *s)
{
    const qf_block_q5_K *x = w;
    const qf_block_q8_K *y = a;
    const __m512i m4 = _mm512_set1_epi8(0x0F), m16 = _mm512_set1_epi8(0x10);
    __m256 sums = _mm256_setzero_ps();
    float sumf = 0;
    for (int64_t b = 0; b < k / QF_QK_K; b++) {
        __m256i qp[4];
        UNROLL
        for (int c = 0; c < 4; c++)
            qp[c] = by_class(_mm256_loadu_si256((const __m256i *)(x[b].qs + 32 * c)));
        const __m256i qh = by_class(_mm256_loadu_si256((const __m256i *)x[b].qh));
        /* the fifth bit: bit 2c (first 32) and 2c + 1 (next 32) of qh[l], moved to bit 4 */
#define Q5_LV(c)                                                                              \
    _mm512_or_si512(_mm512_and_si512(join(qp[c], _mm256_srli_epi16(qp[c], 4)), m4),           \
                    _mm512_and_si512(_mm512_slli_epi16(join(shr16(qh, 2 * (c)),               \
                                                            shr16(qh, 2 * (c) + 1)), 4), m16))
        K4_BLOCK(&x[b], &y[b], Q5_LV, sumf, sums);
#undef Q5_LV
    }
    *s = lanes_total(sumf, sums);
}

static void vec_dot_q6_K(int64_t k, const void *w, const void *a, float *s)
{
    const qf_block_q6_K *x = w;
    const qf_block_q8_K *y = a;
    const __m512i m4 = _mm512_set1_epi8(0x0F), m30 = _mm512_set1_epi8(0x30);
    float sumf = 0;
    for (int64_t b = 0; b < k / QF_QK_K; b++) {
        const float d = f16_to_f32(x[b].d) * y[b].d;
        const __m256i sc = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)x[b].scales));
        /* levels go in as 0..63 (level + 32): take 32 * scale * (16-sums) back */
        const __m256i bias = _mm256_slli_epi32(bsum_dot(&y[b], sc), 5);
        __m512i sumi = _mm512_setzero_si512();
        UNROLL
        for (int h = 0; h < 2; h++) {
            /* weights 128h + 32t + l: low nibble t / 2 of ql[64h + 32(t % 2) + l], top bits
             * 2t.. of qh[32h + l]; one register of ql covers t = 0, 1 (low nibbles) and
             * t = 2, 3 (high nibbles) */
            const __m512i ql = ld64(x[b].ql + 64 * h);
            const __m256i qh = _mm256_loadu_si256((const __m256i *)(x[b].qh + 32 * h));
            const __m512i hz = join(qh, _mm256_srli_epi16(qh, 2));   /* t = 0 | t = 1 in bits 0-1 */
            const __m512i lv0 = _mm512_or_si512(_mm512_and_si512(ql, m4),
                                                _mm512_and_si512(_mm512_slli_epi16(hz, 4), m30));
            const __m512i lv1 = _mm512_or_si512(_mm512_and_si512(_mm512_srli_epi16(ql, 4), m4),
                                                _mm512_and_si512(hz, m30));
            sumi = dot64(sumi, lv0, ld64(y[b].qs + 128 * h), scales_by16(sc, 2 * h));
            sumi = dot64(sumi, lv1, ld64(y[b].qs + 128 * h + 64), scales_by16(sc, 2 * h + 1));
        }
        sumf += d * (float)hsum_i32(_mm256_sub_epi32(fold512(sumi), bias));
    }
    *s = sumf;
}

void qf_isa_fill_avx512_kquants(qf_isa_kernels t[QF_FMT_COUNT])
{
    t[QF_FMT_Q2_K].vec_dot = vec_dot_q2_K;
    t[QF_FMT_Q3_K].vec_dot = vec_dot_q3_K;
    t[QF_FMT_Q4_K].vec_dot = vec_dot_q4_K;
    t[QF_FMT_Q5_K].vec_dot = vec_dot_q5_K;
    t[QF_FMT_Q6_K].vec_dot = vec_dot_q6_K;
}
