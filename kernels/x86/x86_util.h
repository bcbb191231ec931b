/* x86_util.h - AVX2-level helpers shared by the kernel files under kernels/x86/.
 *
 * Everything here is static inline and needs only the avx2 flags (AVX2, FMA, F16C, BMI2), so
 * both the avx2 and the avx512 files may include it; it is compiled once per including file
 * with that file's flags. Nothing here is called before dispatch.c's detection said the host
 * runs AVX2.
 *
 * The quantizers are byte-exact with kernels/ref/, which rests on three facts used below:
 * an IEEE multiply, divide, add or conversion gives the same bits in a vector lane as in a
 * scalar register (no FTZ/DAZ is ever set); x - trunc(x) is exact, so C's roundf (half away
 * from zero) can be rebuilt from truncation; and for non-negative floats the bit patterns
 * order as integers do, which gives a NaN-aware absolute maximum in integer instructions.
 * Blocks the fast path cannot reproduce (non-finite values, scales whose inverse overflows)
 * are handed to the reference quantizer, one block at a time.
 */
#ifndef QF_X86_UTIL_H
#define QF_X86_UTIL_H

#include <immintrin.h>
#include <math.h>
#include <stdbool.h>
#include <stdint.h>
#include <string.h>

#include "qf_blocks.h"
#include "ref/qf_ref.h"

/* Below this block maximum a legacy quantizer's 1/d may lose precision or overflow and its
 * truncations leave int8 range, where the reference's bytes depend on x86 truncation quirks:
 * such blocks (never seen in real weights) take the reference path. */
#define QF_X86_SAFE_MIN 0x1p-100f

/* Bits of +inf: an absolute value's bits at or above this are inf or NaN. */
#define QF_X86_INF_BITS 0x7f800000u

static inline float qf_x86_h2f(qf_half h)
{
    return _cvtsh_ss(h);
}

/* binary16 of a non-NaN float, round to nearest even: qf_fp32_to_fp16's bits. */
static inline qf_half qf_x86_f2h(float f)
{
    return (qf_half)_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
}

static inline float qf_x86_hsum_ps(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline int32_t qf_x86_hsum_epi32(__m256i v)
{
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return _mm_cvtsi128_si32(s);
}

static inline uint32_t qf_x86_hmax_epu32(__m256i v)
{
    __m128i s = _mm_max_epu32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_max_epu32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(1, 0, 3, 2)));
    s = _mm_max_epu32(s, _mm_shuffle_epi32(s, _MM_SHUFFLE(2, 3, 0, 1)));
    return (uint32_t)_mm_cvtsi128_si32(s);
}

static inline float qf_x86_hmin_ps(__m256 v)
{
    __m128 s = _mm_min_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_min_ps(s, _mm_movehl_ps(s, s));
    s = _mm_min_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

static inline float qf_x86_hmax_ps(__m256 v)
{
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

/* C's roundf, lane by lane: truncate, then step away from zero when the exact remainder is at
 * least one half. (Not _mm256_round_ps's nearest-even, which differs on every .5.) */
static inline __m256 qf_x86_round_away(__m256 v)
{
    const __m256 sign_bit = _mm256_set1_ps(-0.0f);
    const __m256 t = _mm256_round_ps(v, _MM_FROUND_TO_ZERO | _MM_FROUND_NO_EXC);
    const __m256 frac = _mm256_andnot_ps(sign_bit, _mm256_sub_ps(v, t));
    const __m256 up = _mm256_cmp_ps(frac, _mm256_set1_ps(0.5f), _CMP_GE_OQ);
    const __m256 step = _mm256_or_ps(_mm256_set1_ps(1.0f), _mm256_and_ps(v, sign_bit));
    return _mm256_add_ps(t, _mm256_and_ps(up, step));
}

/* 16 bytes of packed nibbles (byte j: weight j low, weight j + 16 high) as 32 bytes 0..15 in
 * weight order. */
static inline __m256i qf_x86_nibbles32(const uint8_t *qs)
{
    /* a broadcast load costs no ALU slot; the variable shift treats the two lanes apart */
    const __m256i b = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)qs));
    const __m256i s = _mm256_srlv_epi32(b, _mm256_setr_epi32(0, 0, 0, 0, 4, 4, 4, 4));
    return _mm256_and_si256(s, _mm256_set1_epi8(0x0F));
}

/* The 32 bits of a 5-bit block's qh (little-endian) as bytes: 0x10 where the bit is set. */
static inline __m256i qf_x86_bit4_32(const uint8_t qh[4])
{
    uint32_t bits = (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 |
                    (uint32_t)qh[3] << 24;
    const __m256i spread = _mm256_shuffle_epi8(
        _mm256_set1_epi32((int)bits),
        _mm256_setr_epi64x(0x0000000000000000, 0x0101010101010101,
                           0x0202020202020202, 0x0303030303030303));
    const __m256i bit = _mm256_set1_epi64x((int64_t)0x7fbfdfeff7fbfdfe);
    const __m256i set = _mm256_cmpeq_epi8(_mm256_or_si256(spread, bit), _mm256_set1_epi8(-1));
    return _mm256_and_si256(set, _mm256_set1_epi8(0x10));
}

/* Four vectors of 8 int32 in -128..127 (or 0..255 for packus-safe values below 128) as the
 * 32 int8 bytes in order. */
static inline __m256i qf_x86_pack_i8(__m256i q0, __m256i q1, __m256i q2, __m256i q3)
{
    const __m256i w01 = _mm256_packs_epi32(q0, q1), w23 = _mm256_packs_epi32(q2, q3);
    const __m256i b = _mm256_packs_epi16(w01, w23);
    return _mm256_permutevar8x32_epi32(b, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

/* Bytes 0..31 of b (each 0..15) as 16 nibble-packed bytes: j low, j + 16 high. */
static inline void qf_x86_store_nibbles32(uint8_t *dst, __m256i b)
{
    const __m128i lo = _mm256_castsi256_si128(b), hi = _mm256_extracti128_si256(b, 1);
    _mm_storeu_si128((__m128i *)dst, _mm_or_si128(lo, _mm_slli_epi16(hi, 4)));
}

/* Bit 4 of each of the 32 bytes, as a 5-bit block's qh. */
static inline void qf_x86_store_bit4(uint8_t qh[4], __m256i b)
{
    const uint32_t m = (uint32_t)_mm256_movemask_epi8(_mm256_slli_epi16(b, 3));
    #pragma GCC unroll 8
    for (int i = 0; i < 4; i++)
        qh[i] = (uint8_t)(m >> (8 * i));
}

/* Loads one 32-float block and returns the bits of its largest |x| (inf/NaN: >= INF_BITS). */
static inline uint32_t qf_x86_load32_absmax(const float *x, __m256 v[4])
{
    const __m256i mask = _mm256_set1_epi32(0x7fffffff);
    __m256i m = _mm256_setzero_si256();
    #pragma GCC unroll 8
    for (int i = 0; i < 4; i++) {
        v[i] = _mm256_loadu_ps(x + 8 * i);
        m = _mm256_max_epu32(m, _mm256_and_si256(_mm256_castps_si256(v[i]), mask));
    }
    return qf_x86_hmax_epu32(m);
}

/* Bit masks over the 32 floats v[0..3]: *eq of the elements whose bits, masked, equal
 * pattern, and *neg of the negative ones. Unrolled: it runs once per block. */
static inline void qf_x86_masks32(const __m256 v[4], __m256i mask, uint32_t pattern,
                                  uint32_t *eq, uint32_t *neg)
{
    const __m256i p = _mm256_set1_epi32((int)pattern);
#define QF_X86_EQ_(i) ((uint32_t)_mm256_movemask_ps(_mm256_castsi256_ps(_mm256_cmpeq_epi32(     \
                           _mm256_and_si256(_mm256_castps_si256(v[i]), mask), p))) << (8 * (i)))
#define QF_X86_NEG_(i) ((uint32_t)_mm256_movemask_ps(v[i]) << (8 * (i)))
    *eq = QF_X86_EQ_(0) | QF_X86_EQ_(1) | QF_X86_EQ_(2) | QF_X86_EQ_(3);
    *neg = QF_X86_NEG_(0) | QF_X86_NEG_(1) | QF_X86_NEG_(2) | QF_X86_NEG_(3);
#undef QF_X86_EQ_
#undef QF_X86_NEG_
}

/* The reference's signed absmax (ref_util.h) of a finite block whose |x| maximum has bits
 * amax_bits, as bits: that magnitude with the sign of the first element reaching it; +0 for an
 * all-zero block. */
static inline uint32_t qf_x86_signed_absmax32_bits(const __m256 v[4], uint32_t amax_bits)
{
    uint32_t eq, neg;
    qf_x86_masks32(v, _mm256_set1_epi32(0x7fffffff), amax_bits, &eq, &neg);
    const uint32_t first = eq & (0u - eq);
    return amax_bits | ((neg & first) != 0 && amax_bits != 0 ? 0x80000000u : 0u);
}

static inline float qf_x86_signed_absmax32(const __m256 v[4], uint32_t amax_bits)
{
    const uint32_t bits = qf_x86_signed_absmax32_bits(v, amax_bits);
    float f;
    memcpy(&f, &bits, sizeof f);
    return f;
}

/* The reference's min_max of a finite 32-float block: strict comparisons in block order keep
 * the first of equal values, which matters only for the sign of a zero. */
static inline void qf_x86_min_max32(const __m256 v[4], float *min_out, float *max_out)
{
    __m256 mn = _mm256_min_ps(_mm256_min_ps(v[0], v[1]), _mm256_min_ps(v[2], v[3]));
    __m256 mx = _mm256_max_ps(_mm256_max_ps(v[0], v[1]), _mm256_max_ps(v[2], v[3]));
    float min = qf_x86_hmin_ps(mn), max = qf_x86_hmax_ps(mx);
    if (min == 0.0f || max == 0.0f) {
        /* the first zero met is kept: compare with the sign bit masked off */
        uint32_t eq, neg;
        qf_x86_masks32(v, _mm256_set1_epi32(0x7fffffff), 0, &eq, &neg);
        const float z = (neg & eq & (0u - eq)) ? -0.0f : 0.0f;
        if (min == 0.0f)
            min = z;
        if (max == 0.0f)
            max = z;
    }
    *min_out = min;
    *max_out = max;
}

/* Whether 1/d is a faithful inverse and every x * (1/d) of the block stays within the int8
 * range: d is 0 (all-zero block) or a normal float well away from both ends. */
static inline bool qf_x86_scale_ok(float d)
{
    const float ad = d < 0.0f ? -d : d;
    return ad == 0.0f || (ad >= QF_X86_SAFE_MIN && ad <= 0x1p100f);
}

/* The reference's block term of a q4_1/q5_1 block blk (d, m first) against a q8_1 block with
 * integer sum sumi: (dw * da) * sumi + m * s, in its order, without FMA. */
static inline float qf_x86_term_1(const uint8_t *blk, const qf_block_q8_1 *a, int32_t sumi)
{
    qf_half d, m;
    memcpy(&d, blk, sizeof d);
    memcpy(&m, blk + 2, sizeof m);
    return qf_x86_h2f(d) * qf_x86_h2f(a->d) * (float)sumi + qf_x86_h2f(m) * qf_x86_h2f(a->s);
}

/* An int8_pc row: its f32 scale (little-endian, as x86) and its int8 values. */
static inline const int8_t *qf_x86_int8_pc_split(const void *row, float *scale)
{
    memcpy(scale, row, sizeof *scale);
    return (const int8_t *)row + QF_INT8_PC_HEADER;
}

/* --- iq4_nl's quantizer, shared by the avx2 and avx512 files ------------------------------- */

/* The midpoints between neighbouring codebook entries, then +inf. The reference's
 * nearest_index is, for every finite v, the number of midpoints v reaches (v >= m, a tie going
 * up): near a midpoint its two subtractions are exact, and the midpoints, multiples of 0.5,
 * are exact floats. So a bisection over this table gives its indices. */
static inline const float *qf_x86_iq4nl_mid(void)
{
    static const float mid[16] = {
        -115.5f, -93.5f, -74.0f, -57.0f, -42.0f, -28.5f, -16.0f, -4.5f,
        7.0f, 19.0f, 31.5f, 45.5f, 61.0f, 79.0f, 101.0f, INFINITY,
    };
    return mid;
}

/* The start of an iq4_nl block: loads it into v; 0 if the reference must take it (inf or
 * NaN), 1 if it is below the reference's zero threshold (scale 0, no search), 2 if it is
 * searched, *max then its signed extreme. */
static inline int qf_x86_iq4nl_start(const float *x, __m256 v[4], float *max)
{
    const uint32_t amax_bits = qf_x86_load32_absmax(x, v);
    if (amax_bits >= QF_X86_INF_BITS)
        return 0;
    float amax;
    memcpy(&amax, &amax_bits, sizeof amax);
    if (amax < 1e-15f)
        return 1;
    *max = qf_x86_signed_absmax32(v, amax_bits);
    return 2;
}

/* The reference's 16 candidate inverse scales for a block whose signed extreme is max (not
 * tiny): [0] the first (max sent to +127), [1..15] the search's itry = -7..7. */
static inline void qf_x86_iq4nl_candidates(float max, float ids[16])
{
    ids[0] = 1.0f / (-max / qf_kvalues_iq4nl[0]);
    for (int itry = -7; itry <= 7; itry++)
        ids[itry + 8] = (float)(itry + qf_kvalues_iq4nl[0]) / max;
}

/* The scale the reference keeps, from each candidate's sums (sum w q x, sum w q^2) computed in
 * its order: the first candidate's refit, then each better fit in turn. */
static inline float qf_x86_iq4nl_pick(const float sumqx[16], const float sumq2[16])
{
    float scale = sumq2[0] > 0.0f ? sumqx[0] / sumq2[0] : 0.0f;
    float best = scale * sumqx[0];
    for (int c = 1; c < 16; c++)
        if (sumq2[c] > 0.0f && sumqx[c] * sumqx[c] > best * sumq2[c]) {
            scale = sumqx[c] / sumq2[c];
            best = scale * sumqx[c];
        }
    return scale;
}

#endif
