/* avx2_legacy.c - the AVX2 row kernels of the legacy GGUF formats (q8_0, q8_1, q4_0, q4_1,
 * q5_0, q5_1), iq4_nl and quantfleet's integer formats (int8_pc, int4_g32/64/128).
 *
 * Same contract as kernels/ref/ (qf_kernels.h): the quantizers write the reference's bytes
 * (x86_util.h says how: the reference's operations in its order, lane by lane, roundf rebuilt
 * from truncation, strange blocks handed to the reference); the dequantizers its floats; the
 * dot products exact integer sums per block, scaled and accumulated in float with FMA.
 * Integer dot products are exact for every byte a block may hold, -128 included: unsigned
 * nibbles times signed activations through maddubs never saturate (2 * 31 * 128 < 2^15), a
 * weight's offset (q4_0's 8, q5_0's 16, int4's z) is subtracted as maddubs(offset, a), iq4_nl's
 * codebook values (never -128) go through |a| * sign(w, a), and full int8 weights are widened
 * to int16 first. The legacy quantizers take eight blocks a step (see "quantize" below).
 * Compiled with the avx2 flags (CMakeLists.txt); dispatch.c calls these through its table only
 * after detection. vec_dot runs once per weight row of a matvec and is the hot path; the
 * quantizers run once per row of a quantized tensor, and once per matvec on the activation.
 */
#include <math.h>
#include <stdbool.h>
#include <string.h>

#include "isa/qf_isa_fill.h"
#include "ref/qf_ref.h"
#include "x86/x86_util.h"

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

/* The reference quantizer of fmt on one block: the slow path of blocks holding inf or NaN or
 * a scale too small to invert faithfully (see x86_util.h). */
static void quantize_ref_block(qf_format fmt, const float *x, void *y)
{
    const qf_format_traits *t = qf_format_get(fmt);
    t->quantize_ref(x, y, t->blck);
}

static float inverse(float d)
{
    return d != 0.0f ? 1.0f / d : 0.0f;
}

/* --- quantize ------------------------------------------------------------------------------ */

/* The legacy quantizers take eight blocks a step: each block's statistics (|x| maximum, or
 * minimum and maximum) are reduced into one lane of a vector, so the eight scales, inverses and
 * f16 forms come from a handful of vector instructions instead of eight dependent chains of
 * horizontal reductions and scalar divisions. A batch holding anything the fast path cannot
 * reproduce (inf, NaN, a scale too small to invert, or, for the _1 formats, a zero minimum or
 * maximum, whose sign the reference takes from the first zero of the block) is redone block by
 * block, where the reference takes the blocks that need it. */

/* lane b = the OP-reduction of the 8 lanes of m[b]: a transposing tree of unpacks. */
#define REDUCE_PAIR_(OP, a, b) OP(_mm256_unpacklo_ps(a, b), _mm256_unpackhi_ps(a, b))
#define REDUCE_QUAD_(OP, a, b)                                                              \
    OP(_mm256_castpd_ps(_mm256_unpacklo_pd(_mm256_castps_pd(a), _mm256_castps_pd(b))),      \
       _mm256_castpd_ps(_mm256_unpackhi_pd(_mm256_castps_pd(a), _mm256_castps_pd(b))))
#define DEFINE_REDUCE8(name, OP)                                                            \
    static inline __m256 name(const __m256 m[8])                                            \
    {                                                                                       \
        const __m256 u0 = REDUCE_QUAD_(OP, REDUCE_PAIR_(OP, m[0], m[1]),                    \
                                       REDUCE_PAIR_(OP, m[2], m[3]));                       \
        const __m256 u1 = REDUCE_QUAD_(OP, REDUCE_PAIR_(OP, m[4], m[5]),                    \
                                       REDUCE_PAIR_(OP, m[6], m[7]));                       \
        return OP(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31)); \
    }
#define MAX_BITS(a, b) _mm256_castsi256_ps(_mm256_max_epu32(_mm256_castps_si256(a), \
                                                            _mm256_castps_si256(b)))
DEFINE_REDUCE8(reduce8_max_bits, MAX_BITS)
DEFINE_REDUCE8(reduce8_min, _mm256_min_ps)
DEFINE_REDUCE8(reduce8_max, _mm256_max_ps)
#undef MAX_BITS
#undef DEFINE_REDUCE8
#undef REDUCE_QUAD_
#undef REDUCE_PAIR_

/* One batch's scales, lane b for block b. */
typedef struct batch8 {
    float   d[8];        /* unrounded scales */
    float   id[8];       /* their inverses, 0 for a zero scale */
    float   amax[8];     /* the blocks' |x| maxima */
    float   min[8];      /* _1 formats: the blocks' minima */
    qf_half dh[8];       /* the scales in f16 */
    qf_half mh[8];       /* _1 formats: the minima in f16 */
} batch8;

/* The |x| maxima of the 8 blocks at x into bt->amax; false if a block holds inf or NaN. */
static inline bool batch_absmax(const float *x, batch8 *bt)
{
    const __m256i mask = _mm256_set1_epi32(0x7fffffff);
    __m256 m[8];
    #pragma GCC unroll 8
    for (int b = 0; b < 8; b++) {
        __m256i acc = _mm256_setzero_si256();
        #pragma GCC unroll 8
        for (int i = 0; i < 4; i++) {
            const __m256i v = _mm256_castps_si256(_mm256_loadu_ps(x + 32 * b + 8 * i));
            acc = _mm256_max_epu32(acc, _mm256_and_si256(v, mask));
        }
        m[b] = _mm256_castsi256_ps(acc);
    }
    const __m256 amax = reduce8_max_bits(m);
    _mm256_storeu_ps(bt->amax, amax);
    const __m256i big = _mm256_cmpgt_epi32(_mm256_castps_si256(amax),
                                           _mm256_set1_epi32((int)QF_X86_INF_BITS - 1));
    return _mm256_movemask_ps(_mm256_castsi256_ps(big)) == 0;
}

/* The scales d of a batch, their inverses and f16 forms; false if one fails scale_ok. */
static inline bool batch_scales(__m256 d, batch8 *bt)
{
    const __m256 ad = _mm256_andnot_ps(_mm256_set1_ps(-0.0f), d);
    const __m256 zero = _mm256_cmp_ps(ad, _mm256_setzero_ps(), _CMP_EQ_OQ);
    const __m256 in = _mm256_and_ps(_mm256_cmp_ps(ad, _mm256_set1_ps(QF_X86_SAFE_MIN), _CMP_GE_OQ),
                                    _mm256_cmp_ps(ad, _mm256_set1_ps(0x1p100f), _CMP_LE_OQ));
    if (_mm256_movemask_ps(_mm256_or_ps(zero, in)) != 0xFF)
        return false;
    _mm256_storeu_ps(bt->d, d);
    _mm256_storeu_ps(bt->id, _mm256_andnot_ps(zero, _mm256_div_ps(_mm256_set1_ps(1.0f), d)));
    _mm_storeu_si128((__m128i *)bt->dh,
                     _mm256_cvtps_ph(d, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    return true;
}

/* q8 codes round(x * id) of one block as 32 bytes; *sum gets their sum (for q8_1). */
static inline __m256i q8_codes(const float *x, float id, int32_t *sum)
{
    const __m256 vid = _mm256_set1_ps(id);
    __m256i q[4];
    #pragma GCC unroll 8
    for (int i = 0; i < 4; i++)
        q[i] = _mm256_cvttps_epi32(qf_x86_round_away(_mm256_mul_ps(_mm256_loadu_ps(x + 8 * i), vid)));
    *sum = qf_x86_hsum_epi32(_mm256_add_epi32(_mm256_add_epi32(q[0], q[1]),
                                              _mm256_add_epi32(q[2], q[3])));
    return qf_x86_pack_i8(q[0], q[1], q[2], q[3]);
}

/* Symmetric 4/5-bit codes min(trunc(x * id + half + 0.5), 2 half - 1) as bytes. */
static inline __m256i sym_codes(const float *x, float id, int half)
{
    const __m256 vid = _mm256_set1_ps(id), off = _mm256_set1_ps((float)half + 0.5f);
    const __m256i top = _mm256_set1_epi32(2 * half - 1);
    __m256i q[4];
    #pragma GCC unroll 8
    for (int i = 0; i < 4; i++) {
        const __m256 t = _mm256_add_ps(_mm256_mul_ps(_mm256_loadu_ps(x + 8 * i), vid), off);
        q[i] = _mm256_min_epi32(_mm256_cvttps_epi32(t), top);
    }
    return qf_x86_pack_i8(q[0], q[1], q[2], q[3]);
}

/* Asymmetric codes trunc((x - min) * id + 0.5) as bytes, clamped to 15 for 4 bits (the 5-bit
 * reference does not clamp). */
static inline __m256i asym_codes(const float *x, float min, float id, int levels)
{
    const __m256 vid = _mm256_set1_ps(id), vmin = _mm256_set1_ps(min);
    const __m256 half = _mm256_set1_ps(0.5f);
    __m256i q[4];
    #pragma GCC unroll 8
    for (int i = 0; i < 4; i++) {
        const __m256 t = _mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + 8 * i), vmin), vid);
        q[i] = _mm256_cvttps_epi32(_mm256_add_ps(t, half));
        if (levels == 15)
            q[i] = _mm256_min_epi32(q[i], _mm256_set1_epi32(15));
    }
    return qf_x86_pack_i8(q[0], q[1], q[2], q[3]);
}

/* Stores for the 5-bit formats: low nibbles in qs, the fifth bits in qh. */
static inline void store_q5(uint8_t *qs, uint8_t *qh, __m256i b)
{
    qf_x86_store_nibbles32(qs, _mm256_and_si256(b, _mm256_set1_epi8(0x0F)));
    qf_x86_store_bit4(qh, b);
}

/* A batch's scales for the symmetric formats: d = (signed extreme) / -half. */
static inline bool sym_batch(const float *x, int half, batch8 *bt)
{
    if (!batch_absmax(x, bt))
        return false;
    float smax[8];
    #pragma GCC unroll 8
    for (int b = 0; b < 8; b++) {
        __m256 v[4];
        uint32_t bits;
        memcpy(&bits, &bt->amax[b], sizeof bits);
        #pragma GCC unroll 8
        for (int i = 0; i < 4; i++)
            v[i] = _mm256_loadu_ps(x + 32 * b + 8 * i);
        smax[b] = qf_x86_signed_absmax32(v, bits);
    }
    return batch_scales(_mm256_div_ps(_mm256_loadu_ps(smax), _mm256_set1_ps((float)-half)), bt);
}

/* A batch's scales and minima for the _1 formats: d = (max - min) / levels. */
static inline bool asym_batch(const float *x, int levels, batch8 *bt)
{
    if (!batch_absmax(x, bt))
        return false;
    __m256 mn[8], mx[8];
    #pragma GCC unroll 8
    for (int b = 0; b < 8; b++) {
        __m256 v[4];
        #pragma GCC unroll 8
        for (int i = 0; i < 4; i++)
            v[i] = _mm256_loadu_ps(x + 32 * b + 8 * i);
        mn[b] = _mm256_min_ps(_mm256_min_ps(v[0], v[1]), _mm256_min_ps(v[2], v[3]));
        mx[b] = _mm256_max_ps(_mm256_max_ps(v[0], v[1]), _mm256_max_ps(v[2], v[3]));
    }
    const __m256 min = reduce8_min(mn), max = reduce8_max(mx), zero = _mm256_setzero_ps();
    const __m256 zeros = _mm256_or_ps(_mm256_cmp_ps(min, zero, _CMP_EQ_OQ),
                                      _mm256_cmp_ps(max, zero, _CMP_EQ_OQ));
    if (_mm256_movemask_ps(zeros) != 0)
        return false;
    _mm256_storeu_ps(bt->min, min);
    _mm_storeu_si128((__m128i *)bt->mh,
                     _mm256_cvtps_ph(min, _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC));
    return batch_scales(_mm256_div_ps(_mm256_sub_ps(max, min), _mm256_set1_ps((float)levels)), bt);
}

/* One block's scale d (and minimum, for the _1 formats) on its own: a row's last blocks, or
 * a batch that failed. False when the reference must take the block. */
static inline bool q8_stats_one(const float *x, float *d, float *min)
{
    __m256 v[4];
    const uint32_t amax_bits = qf_x86_load32_absmax(x, v);
    float amax;
    memcpy(&amax, &amax_bits, sizeof amax);
    *d = amax / 127;
    *min = 0.0f;
    return amax_bits < QF_X86_INF_BITS && qf_x86_scale_ok(*d);
}

static inline bool sym_stats_one(const float *x, int half, float *d, float *min)
{
    __m256 v[4];
    const uint32_t amax_bits = qf_x86_load32_absmax(x, v);
    if (amax_bits >= QF_X86_INF_BITS)
        return false;
    *d = qf_x86_signed_absmax32(v, amax_bits) / (float)-half;
    *min = 0.0f;
    return qf_x86_scale_ok(*d);
}

static inline bool asym_stats_one(const float *x, int levels, float *d, float *min)
{
    __m256 v[4];
    if (qf_x86_load32_absmax(x, v) >= QF_X86_INF_BITS)
        return false;
    float max;
    qf_x86_min_max32(v, min, &max);
    *d = (max - *min) / (float)levels;
    return qf_x86_scale_ok(*d);
}

/* Writers of one block from its scale d (f16 dh, inverse id) and minimum (f16 mh, min). */
static inline void put_q8_0(const float *x, qf_block_q8_0 *y, qf_half dh, float id, float d,
                            qf_half mh, float min)
{
    (void)d, (void)mh, (void)min;
    int32_t sum;
    y->d = dh;
    _mm256_storeu_si256((__m256i *)y->qs, q8_codes(x, id, &sum));
}

static inline void put_q8_1(const float *x, qf_block_q8_1 *y, qf_half dh, float id, float d,
                            qf_half mh, float min)
{
    (void)mh, (void)min;
    int32_t sum;
    y->d = dh;
    _mm256_storeu_si256((__m256i *)y->qs, q8_codes(x, id, &sum));
    /* the min term's activation sum, from the unrounded d as the reference */
    y->s = qf_x86_f2h((float)sum * d);
}

static inline void put_q4_0(const float *x, qf_block_q4_0 *y, qf_half dh, float id, float d,
                            qf_half mh, float min)
{
    (void)d, (void)mh, (void)min;
    y->d = dh;
    qf_x86_store_nibbles32(y->qs, sym_codes(x, id, 8));
}

static inline void put_q5_0(const float *x, qf_block_q5_0 *y, qf_half dh, float id, float d,
                            qf_half mh, float min)
{
    (void)d, (void)mh, (void)min;
    y->d = dh;
    store_q5(y->qs, y->qh, sym_codes(x, id, 16));
}

static inline void put_q4_1(const float *x, qf_block_q4_1 *y, qf_half dh, float id, float d,
                            qf_half mh, float min)
{
    (void)d;
    y->d = dh;
    y->m = mh;
    qf_x86_store_nibbles32(y->qs, asym_codes(x, min, id, 15));
}

static inline void put_q5_1(const float *x, qf_block_q5_1 *y, qf_half dh, float id, float d,
                            qf_half mh, float min)
{
    (void)d;
    y->d = dh;
    y->m = mh;
    store_q5(y->qs, y->qh, asym_codes(x, min, id, 31));
}

/* The batch statistics of the symmetric q8 scale d = amax / 127. */
static inline bool q8_batch(const float *x, batch8 *bt)
{
    return batch_absmax(x, bt) &&
           batch_scales(_mm256_div_ps(_mm256_loadu_ps(bt->amax), _mm256_set1_ps(127.0f)), bt);
}

/* A row quantizer: batches of eight blocks, then the rest (and failed batches) one by one.
 * ONE(x, &d, &min) and BATCH(x, &bt) are the format's statistics. */
#define QUANTIZE_ROW(fmt, T, ONE, BATCH)                                                    \
    static void fmt##_one(const float *x, T *y)                                             \
    {                                                                                       \
        float d, min;                                                                       \
        if (ONE(x, &d, &min))                                                               \
            put_##fmt(x, y, qf_x86_f2h(d), inverse(d), d, qf_x86_f2h(min), min);            \
        else                                                                                \
            quantize_ref_block(QF_FMT_##fmt, x, y);                                         \
    }                                                                                       \
    static void quantize_row_##fmt(const float *x, void *y, int64_t k)                      \
    {                                                                                       \
        T *blk = y;                                                                         \
        const int64_t nb = k / 32;                                                          \
        int64_t i = 0;                                                                      \
        for (; i + 8 <= nb; i += 8) {                                                       \
            batch8 bt = { .min = { 0 } };                                                   \
            if (BATCH(x + 32 * i, &bt)) {                                                   \
                _Pragma("GCC unroll 8")                                                     \
                for (int b = 0; b < 8; b++)                                                 \
                    put_##fmt(x + 32 * (i + b), blk + i + b, bt.dh[b], bt.id[b], bt.d[b],   \
                              bt.mh[b], bt.min[b]);                                         \
            } else {                                                                        \
                for (int b = 0; b < 8; b++)                                                 \
                    fmt##_one(x + 32 * (i + b), blk + i + b);                               \
            }                                                                               \
        }                                                                                   \
        for (; i < nb; i++)                                                                 \
            fmt##_one(x + 32 * i, blk + i);                                                 \
    }
#define SYM8(x, d, min) sym_stats_one(x, 8, d, min)
#define SYM16(x, d, min) sym_stats_one(x, 16, d, min)
#define ASYM15(x, d, min) asym_stats_one(x, 15, d, min)
#define ASYM31(x, d, min) asym_stats_one(x, 31, d, min)
#define SYM8_BATCH(x, bt) sym_batch(x, 8, bt)
#define SYM16_BATCH(x, bt) sym_batch(x, 16, bt)
#define ASYM15_BATCH(x, bt) asym_batch(x, 15, bt)
#define ASYM31_BATCH(x, bt) asym_batch(x, 31, bt)
#define QF_FMT_q8_0 QF_FMT_Q8_0
#define QF_FMT_q8_1 QF_FMT_Q8_1
#define QF_FMT_q4_0 QF_FMT_Q4_0
#define QF_FMT_q5_0 QF_FMT_Q5_0
#define QF_FMT_q4_1 QF_FMT_Q4_1
#define QF_FMT_q5_1 QF_FMT_Q5_1
QUANTIZE_ROW(q8_0, qf_block_q8_0, q8_stats_one, q8_batch)
QUANTIZE_ROW(q8_1, qf_block_q8_1, q8_stats_one, q8_batch)
QUANTIZE_ROW(q4_0, qf_block_q4_0, SYM8, SYM8_BATCH)
QUANTIZE_ROW(q5_0, qf_block_q5_0, SYM16, SYM16_BATCH)
QUANTIZE_ROW(q4_1, qf_block_q4_1, ASYM15, ASYM15_BATCH)
QUANTIZE_ROW(q5_1, qf_block_q5_1, ASYM31, ASYM31_BATCH)
#undef QUANTIZE_ROW
#undef SYM8
#undef SYM16
#undef ASYM15
#undef ASYM31
#undef SYM8_BATCH
#undef SYM16_BATCH
#undef ASYM15_BATCH
#undef ASYM31_BATCH
#undef QF_FMT_q8_0
#undef QF_FMT_q8_1
#undef QF_FMT_q4_0
#undef QF_FMT_q5_0
#undef QF_FMT_q4_1
#undef QF_FMT_q5_1

/* --- iq4_nl quantize ----------------------------------------------------------------------- */

/* The codebook index (as int32) and entry (as float) nearest to each lane of v, by a
 * four-step bisection over the midpoints. A NaN lane gets index 15, as the reference. */
static inline __m256i iq4nl_nearest8(__m256 v, __m256 *q)
{
    const float *mid = qf_x86_iq4nl_mid();
    const __m256 m8 = _mm256_cmp_ps(v, _mm256_set1_ps(mid[7]), _CMP_GE_OQ);
    __m256i idx = _mm256_and_si256(_mm256_castps_si256(m8), _mm256_set1_epi32(8));
    const __m256 t4 = _mm256_blendv_ps(_mm256_set1_ps(mid[3]),
                                       _mm256_set1_ps(mid[11]), m8);
    idx = _mm256_add_epi32(idx, _mm256_and_si256(_mm256_castps_si256(
              _mm256_cmp_ps(v, t4, _CMP_GE_OQ)), _mm256_set1_epi32(4)));
    /* idx in {0, 4, 8, 12}: the next midpoint is idx + 1, looked up at idx / 2 */
    const __m256 mid_odd = _mm256_setr_ps(mid[1], 0, mid[5], 0,
                                          mid[9], 0, mid[13], 0);
    const __m256 t2 = _mm256_permutevar8x32_ps(mid_odd, _mm256_srli_epi32(idx, 1));
    idx = _mm256_add_epi32(idx, _mm256_and_si256(_mm256_castps_si256(
              _mm256_cmp_ps(v, t2, _CMP_GE_OQ)), _mm256_set1_epi32(2)));
    /* idx even: the last midpoint is idx itself */
    const __m256 mid_even = _mm256_setr_ps(mid[0], mid[2], mid[4],
                                           mid[6], mid[8], mid[10],
                                           mid[12], mid[14]);
    const __m256 t1 = _mm256_permutevar8x32_ps(mid_even, _mm256_srli_epi32(idx, 1));
    idx = _mm256_add_epi32(idx, _mm256_and_si256(_mm256_castps_si256(
              _mm256_cmp_ps(v, t1, _CMP_GE_OQ)), _mm256_set1_epi32(1)));
    idx = _mm256_blendv_epi8(idx, _mm256_set1_epi32(15),
                             _mm256_castps_si256(_mm256_cmp_ps(v, v, _CMP_UNORD_Q)));
    const __m256 cb_lo = _mm256_setr_ps(-127, -104, -83, -65, -49, -35, -22, -10);
    const __m256 cb_hi = _mm256_setr_ps(1, 13, 25, 38, 53, 69, 89, 113);
    *q = _mm256_blendv_ps(_mm256_permutevar8x32_ps(cb_lo, idx),
                          _mm256_permutevar8x32_ps(cb_hi, idx),
                          _mm256_castsi256_ps(_mm256_cmpgt_epi32(idx, _mm256_set1_epi32(7))));
    return idx;
}

/* One iq4_nl block as the reference's quantize_block with its 7-step search: the 16 candidate
 * inverse scales are the lanes of two vectors, so each lane's sums are accumulated in the
 * reference's order and the choice among them is made with its comparisons. */
static bool iq4nl_block(const float *x, qf_block_iq4_nl *y)
{
    __m256 v[4];
    float max, scale = 0.0f;
    const int start = qf_x86_iq4nl_start(x, v, &max);
    if (start == 0)
        return false;
    if (start == 2) {
        float w[32];
        #pragma GCC unroll 8
        for (int i = 0; i < 4; i++)
            _mm256_storeu_ps(w + 8 * i, _mm256_mul_ps(v[i], v[i]));
        float ids[16];
        qf_x86_iq4nl_candidates(max, ids);
        const __m256 id0 = _mm256_loadu_ps(ids), id1 = _mm256_loadu_ps(ids + 8);
        __m256 sqx0 = _mm256_setzero_ps(), sqx1 = sqx0, sq20 = sqx0, sq21 = sqx0;
        for (int j = 0; j < 32; j++) {
            const __m256 xj = _mm256_set1_ps(x[j]), wj = _mm256_set1_ps(w[j]);
            __m256 q0, q1;
            (void)iq4nl_nearest8(_mm256_mul_ps(id0, xj), &q0);
            (void)iq4nl_nearest8(_mm256_mul_ps(id1, xj), &q1);
            const __m256 wq0 = _mm256_mul_ps(wj, q0), wq1 = _mm256_mul_ps(wj, q1);
            sqx0 = _mm256_add_ps(sqx0, _mm256_mul_ps(wq0, xj));
            sqx1 = _mm256_add_ps(sqx1, _mm256_mul_ps(wq1, xj));
            sq20 = _mm256_add_ps(sq20, _mm256_mul_ps(wq0, q0));
            sq21 = _mm256_add_ps(sq21, _mm256_mul_ps(wq1, q1));
        }
        float sumqx[16], sumq2[16];
        _mm256_storeu_ps(sumqx, sqx0);
        _mm256_storeu_ps(sumqx + 8, sqx1);
        _mm256_storeu_ps(sumq2, sq20);
        _mm256_storeu_ps(sumq2 + 8, sq21);
        scale = qf_x86_iq4nl_pick(sumqx, sumq2);
    }
    y->d = qf_fp32_to_fp16(scale);
    const __m256 id = _mm256_set1_ps(scale != 0.0f ? 1.0f / scale : 0.0f);
    __m256i q[4];
    #pragma GCC unroll 8
    for (int i = 0; i < 4; i++) {
        __m256 unused;
        q[i] = iq4nl_nearest8(_mm256_mul_ps(id, v[i]), &unused);
    }
    qf_x86_store_nibbles32(y->qs, qf_x86_pack_i8(q[0], q[1], q[2], q[3]));
    return true;
}

static void quantize_row_iq4_nl(const float *x, void *y, int64_t k)
{
    qf_block_iq4_nl *blk = y;
    for (int64_t i = 0; i < k / QF_QK4_NL; i++)
        if (!iq4nl_block(x + i * QF_QK4_NL, &blk[i]))
            quantize_ref_block(QF_FMT_IQ4_NL, x + i * QF_QK4_NL, &blk[i]);
}

/* --- int8_pc and int4_gG quantize (rules in kernels/ref/intq.c) ---------------------------- */

static void quantize_row_int8_pc(const float *x, void *y, int64_t k)
{
    uint8_t *out = y;
    int8_t *q = (int8_t *)(out + QF_INT8_PC_HEADER);
    const __m256 sign_bit = _mm256_set1_ps(-0.0f);
    /* max(|x|, acc) keeps acc where |x| is NaN, as the reference's strict > does */
    __m256 m = _mm256_setzero_ps();
    for (int64_t i = 0; i < k; i += 8)
        m = _mm256_max_ps(_mm256_andnot_ps(sign_bit, _mm256_loadu_ps(x + i)), m);
    const float scale = qf_x86_hmax_ps(m) / 127.0f;
    memcpy(out, &scale, sizeof scale);      /* x86 is little-endian, as the format */
    if (scale == 0.0f) {
        memset(q, 0, (size_t)k);
        return;
    }
    const __m256 vs = _mm256_set1_ps(scale);
    const __m256 lo = _mm256_set1_ps(-127.0f), hi = _mm256_set1_ps(127.0f);
    for (int64_t i = 0; i < k; i += 32) {
        __m256i qi[4];
        #pragma GCC unroll 8
        for (int j = 0; j < 4; j++) {
            __m256 t = qf_x86_round_away(_mm256_div_ps(_mm256_loadu_ps(x + i + 8 * j), vs));
            const __m256 nan = _mm256_cmp_ps(t, t, _CMP_UNORD_Q);
            t = _mm256_andnot_ps(nan, _mm256_min_ps(_mm256_max_ps(t, lo), hi));
            qi[j] = _mm256_cvttps_epi32(t);
        }
        _mm256_storeu_si256((__m256i *)(q + i), qf_x86_pack_i8(qi[0], qi[1], qi[2], qi[3]));
    }
}

/* round_clamp(v, 0, 15) of intq.c, for the zero point. */
static int round_clamp_15(float v)
{
    if (isnan(v))
        return 0;
    v = roundf(v);
    return v < 0.0f ? 0 : v > 15.0f ? 15 : (int)v;
}

/* 32 codes clamp(round(x / d) + z, 0, 15) as bytes in order; a NaN x gets z. */
static inline __m256i int4_codes32(const float *x, __m256 d, __m256 z)
{
    const __m256 zero = _mm256_setzero_ps(), top = _mm256_set1_ps(15.0f);
    __m256i q[4];
    #pragma GCC unroll 8
    for (int j = 0; j < 4; j++) {
        __m256 t = qf_x86_round_away(_mm256_div_ps(_mm256_loadu_ps(x + 8 * j), d));
        const __m256 nan = _mm256_cmp_ps(t, t, _CMP_UNORD_Q);
        t = _mm256_min_ps(_mm256_max_ps(_mm256_add_ps(t, z), zero), top);
        q[j] = _mm256_cvttps_epi32(_mm256_blendv_ps(t, z, nan));
    }
    return qf_x86_pack_i8(q[0], q[1], q[2], q[3]);
}

static inline void quantize_group_int4(const float *x, uint8_t *blk, int g)
{
    /* min(x, acc) and max(x, acc) keep acc for a NaN x, and acc starts at +0, so a -0 never
     * replaces it: the reference's strict comparisons from 0 */
    __m256 lo = _mm256_setzero_ps(), hi = lo;
    for (int i = 0; i < g; i += 8) {
        const __m256 v = _mm256_loadu_ps(x + i);
        lo = _mm256_min_ps(v, lo);
        hi = _mm256_max_ps(v, hi);
    }
    const float lo_s = qf_x86_hmin_ps(lo), hi_s = qf_x86_hmax_ps(hi);
    const qf_half dh = qf_x86_f2h((hi_s - lo_s) / 15.0f);
    const float d = qf_x86_h2f(dh);
    memset(blk, 0, (size_t)(3 + g / 2));
    if (d == 0.0f || isnan(d))
        return;
    const int z = round_clamp_15(-lo_s / d);
    blk[0] = (uint8_t)(dh & 0xff);
    blk[1] = (uint8_t)(dh >> 8);
    blk[2] = (uint8_t)z;
    uint8_t *qs = blk + 3;
    const __m256 vd = _mm256_set1_ps(d), vz = _mm256_set1_ps((float)z);
    if (g == 32) {
        qf_x86_store_nibbles32(qs, int4_codes32(x, vd, vz));
        return;
    }
    /* byte j holds weight j (low) and j + g/2 (high) */
    for (int j = 0; j < g / 2; j += 32) {
        const __m256i l = int4_codes32(x + j, vd, vz), h = int4_codes32(x + j + g / 2, vd, vz);
        _mm256_storeu_si256((__m256i *)(qs + j), _mm256_or_si256(l, _mm256_slli_epi16(h, 4)));
    }
}

#define INT4_QUANTIZE(G)                                                        \
    static void quantize_row_int4_g##G(const float *x, void *y, int64_t k)     \
    {                                                                           \
        uint8_t *blk = y;                                                       \
        for (int64_t b = 0; b < k / (G); b++)                                   \
            quantize_group_int4(x + b * (G), blk + b * (3 + (G) / 2), (G));     \
    }
INT4_QUANTIZE(32)
INT4_QUANTIZE(64)
INT4_QUANTIZE(128)
#undef INT4_QUANTIZE

/* --- dequantize ---------------------------------------------------------------------------- */

/* y[0..31] = (float)(b - off) * d, where b holds 32 unsigned bytes. */
static inline void store_scaled_u8(float *y, __m256i b, int off, __m256 d)
{
    const __m128i h[2] = { _mm256_castsi256_si128(b), _mm256_extracti128_si256(b, 1) };
    const __m256i o = _mm256_set1_epi32(off);
    #pragma GCC unroll 8
    for (int i = 0; i < 4; i++) {
        const __m128i part = (i & 1) ? _mm_srli_si128(h[i >> 1], 8) : h[i >> 1];
        const __m256i v = _mm256_sub_epi32(_mm256_cvtepu8_epi32(part), o);
        _mm256_storeu_ps(y + 8 * i, _mm256_mul_ps(_mm256_cvtepi32_ps(v), d));
    }
}

/* y[0..31] = (float)b * d + m (b unsigned bytes): the _1 formats, multiply then add. */
static inline void store_affine_u8(float *y, __m256i b, __m256 d, __m256 m)
{
    const __m128i h[2] = { _mm256_castsi256_si128(b), _mm256_extracti128_si256(b, 1) };
    #pragma GCC unroll 8
    for (int i = 0; i < 4; i++) {
        const __m128i part = (i & 1) ? _mm_srli_si128(h[i >> 1], 8) : h[i >> 1];
        const __m256 f = _mm256_cvtepi32_ps(_mm256_cvtepu8_epi32(part));
        _mm256_storeu_ps(y + 8 * i, _mm256_add_ps(_mm256_mul_ps(f, d), m));
    }
}

/* y[0..31] = (float)q * d for 32 signed bytes at q. */
static inline void store_scaled_i8(float *y, const int8_t *q, __m256 d)
{
    #pragma GCC unroll 8
    for (int i = 0; i < 4; i++) {
        const __m256i v = _mm256_cvtepi8_epi32(_mm_loadl_epi64((const __m128i *)(q + 8 * i)));
        _mm256_storeu_ps(y + 8 * i, _mm256_mul_ps(_mm256_cvtepi32_ps(v), d));
    }
}

static void dequantize_row_q8_0(const void *x, float *y, int64_t k)
{
    const qf_block_q8_0 *blk = x;
    for (int64_t i = 0; i < k / QF_QK8_0; i++)
        store_scaled_i8(y + i * 32, blk[i].qs, _mm256_set1_ps(qf_x86_h2f(blk[i].d)));
}

static void dequantize_row_q4_0(const void *x, float *y, int64_t k)
{
    const qf_block_q4_0 *blk = x;
    for (int64_t i = 0; i < k / QF_QK4_0; i++)
        store_scaled_u8(y + i * 32, qf_x86_nibbles32(blk[i].qs), 8,
                        _mm256_set1_ps(qf_x86_h2f(blk[i].d)));
}

static void dequantize_row_q4_1(const void *x, float *y, int64_t k)
{
    const qf_block_q4_1 *blk = x;
    for (int64_t i = 0; i < k / QF_QK4_1; i++)
        store_affine_u8(y + i * 32, qf_x86_nibbles32(blk[i].qs),
                        _mm256_set1_ps(qf_x86_h2f(blk[i].d)), _mm256_set1_ps(qf_x86_h2f(blk[i].m)));
}

static void dequantize_row_q5_0(const void *x, float *y, int64_t k)
{
    const qf_block_q5_0 *blk = x;
    for (int64_t i = 0; i < k / QF_QK5_0; i++) {
        const __m256i b = _mm256_or_si256(qf_x86_nibbles32(blk[i].qs), qf_x86_bit4_32(blk[i].qh));
        store_scaled_u8(y + i * 32, b, 16, _mm256_set1_ps(qf_x86_h2f(blk[i].d)));
    }
}

static void dequantize_row_q5_1(const void *x, float *y, int64_t k)
{
    const qf_block_q5_1 *blk = x;
    for (int64_t i = 0; i < k / QF_QK5_1; i++) {
        const __m256i b = _mm256_or_si256(qf_x86_nibbles32(blk[i].qs), qf_x86_bit4_32(blk[i].qh));
        store_affine_u8(y + i * 32, b, _mm256_set1_ps(qf_x86_h2f(blk[i].d)),
                        _mm256_set1_ps(qf_x86_h2f(blk[i].m)));
    }
}

/* The iq4_nl codebook as a byte shuffle table, in both 128-bit lanes. */
static inline __m256i iq4nl_table(void)
{
    const __m128i t = _mm_loadu_si128((const __m128i *)qf_kvalues_iq4nl);
    return _mm256_broadcastsi128_si256(t);
}

static void dequantize_row_iq4_nl(const void *x, float *y, int64_t k)
{
    const qf_block_iq4_nl *blk = x;
    const __m256i table = iq4nl_table();
    for (int64_t i = 0; i < k / QF_QK4_NL; i++) {
        int8_t w[32];
        _mm256_storeu_si256((__m256i *)w, _mm256_shuffle_epi8(table, qf_x86_nibbles32(blk[i].qs)));
        store_scaled_i8(y + i * 32, w, _mm256_set1_ps(qf_x86_h2f(blk[i].d)));
    }
}

static void dequantize_row_int8_pc(const void *x, float *y, int64_t k)
{
    float scale;
    const int8_t *q = qf_x86_int8_pc_split(x, &scale);
    for (int64_t i = 0; i < k; i += 32)
        store_scaled_i8(y + i, q + i, _mm256_set1_ps(scale));
}

/* Codes of the weights [32 sb, 32 sb + 32) of an int4 group of g: low nibbles of the first
 * g/2 bytes are weights 0..g/2-1, high nibbles the rest. */
static inline __m256i int4_sub_block(const uint8_t *qs, int g, int sb)
{
    if (g == 32)
        return qf_x86_nibbles32(qs);
    const int half = g / 64;           /* sub-blocks per nibble half */
    const __m256i b = _mm256_loadu_si256((const __m256i *)(qs + 32 * (sb % half)));
    const __m256i s = sb >= half ? _mm256_srli_epi16(b, 4) : b;
    return _mm256_and_si256(s, _mm256_set1_epi8(0x0F));
}

static inline void dequantize_row_int4(const void *x, float *y, int64_t k, int g)
{
    const uint8_t *blk = x;
    for (int64_t b = 0; b < k / g; b++, blk += 3 + g / 2) {
        const __m256 d = _mm256_set1_ps(qf_x86_h2f((qf_half)(blk[0] | blk[1] << 8)));
        for (int sb = 0; sb < g / 32; sb++)
            store_scaled_u8(y + b * g + 32 * sb, int4_sub_block(blk + 3, g, sb), blk[2], d);
    }
}

/* --- vec_dot ------------------------------------------------------------------------------- */

static inline __m256i maddubs_sum(__m256i u, __m256i s)
{
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

/* sum over a block of (u - off) * a as 8 int32 lanes, u unsigned 0..31, off = 8/16/z. */
static inline __m256i dot_u_off(__m256i u, __m256i off, const int8_t *aq)
{
    const __m256i a = _mm256_loadu_si256((const __m256i *)aq);
    const __m256i p = _mm256_sub_epi16(_mm256_maddubs_epi16(u, a), _mm256_maddubs_epi16(off, a));
    return _mm256_madd_epi16(p, _mm256_set1_epi16(1));
}

/* sum of w * a over 32 int8 pairs, any bytes: widened to int16. */
static inline __m256i dot_i8_i8(const int8_t *w, const int8_t *a)
{
    const __m256i w0 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)w));
    const __m256i w1 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(w + 16)));
    const __m256i a0 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)a));
    const __m256i a1 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(a + 16)));
    return _mm256_add_epi32(_mm256_madd_epi16(w0, a0), _mm256_madd_epi16(w1, a1));
}

static inline __m256 fmadd_i32(__m256i isum, float scale, __m256 acc)
{
    return _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum), _mm256_set1_ps(scale), acc);
}

/* sum = the sum over blocks i < nb of SCALE(i) * ISUM(i) (an int32 vector), two blocks a step
 * into two accumulators: the FMA latency is hidden and nothing spills to the stack. */
#define SUM_BLOCKS(nb, ISUM, SCALE, sum)                                                   \
    do {                                                                                   \
        __m256 acc0_ = _mm256_setzero_ps(), acc1_ = _mm256_setzero_ps();                   \
        int64_t i_ = 0;                                                                    \
        for (; i_ + 2 <= (nb); i_ += 2) {                                                  \
            acc0_ = fmadd_i32(ISUM(i_), SCALE(i_), acc0_);                                 \
            acc1_ = fmadd_i32(ISUM(i_ + 1), SCALE(i_ + 1), acc1_);                         \
        }                                                                                  \
        if (i_ < (nb))                                                                     \
            acc0_ = fmadd_i32(ISUM(i_), SCALE(i_), acc0_);                                 \
        (sum) = qf_x86_hsum_ps(_mm256_add_ps(acc0_, acc1_));                               \
    } while (0)

/* the product of the two blocks' f16 scales, the reference's dw * da */
#define SCALE_WA(i) (qf_x86_h2f(wb[i].d) * qf_x86_h2f(ab[i].d))

static void vec_dot_q8_0(int64_t k, const void *w, const void *a, float *s)
{
    const qf_block_q8_0 *wb = w, *ab = a;
#define ISUM(i) dot_i8_i8(wb[i].qs, ab[i].qs)
    SUM_BLOCKS(k / QF_QK8_0, ISUM, SCALE_WA, *s);
#undef ISUM
}

static void vec_dot_q4_0(int64_t k, const void *w, const void *a, float *s)
{
    const qf_block_q4_0 *wb = w;
    const qf_block_q8_0 *ab = a;
    const __m256i eight = _mm256_set1_epi8(8);
#define ISUM(i) dot_u_off(qf_x86_nibbles32(wb[i].qs), eight, ab[i].qs)
    SUM_BLOCKS(k / QF_QK4_0, ISUM, SCALE_WA, *s);
#undef ISUM
}

static void vec_dot_q5_0(int64_t k, const void *w, const void *a, float *s)
{
    const qf_block_q5_0 *wb = w;
    const qf_block_q8_0 *ab = a;
    const __m256i sixteen = _mm256_set1_epi8(16);
#define ISUM(i) dot_u_off(_mm256_or_si256(qf_x86_nibbles32(wb[i].qs), qf_x86_bit4_32(wb[i].qh)), \
                          sixteen, ab[i].qs)
    SUM_BLOCKS(k / QF_QK5_0, ISUM, SCALE_WA, *s);
#undef ISUM
}

/* The _1 formats' block term (dw * da) * sumi + m * s is formed as the reference forms it,
 * without FMA, before it is summed: its two products nearly cancel when a block's min is an
 * outlier, and rounding them differently would move the result by far more than the
 * contract's 1e-5 of sum |w a|. Eight blocks at a time: their integer sums are reduced into
 * one vector and the terms computed lane by lane. */
static inline __m256i reduce8_epi32(const __m256i v[8])
{
    const __m256i h0123 = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]),
                                            _mm256_hadd_epi32(v[2], v[3]));
    const __m256i h4567 = _mm256_hadd_epi32(_mm256_hadd_epi32(v[4], v[5]),
                                            _mm256_hadd_epi32(v[6], v[7]));
    return _mm256_add_epi32(_mm256_permute2x128_si256(h0123, h4567, 0x20),
                            _mm256_permute2x128_si256(h0123, h4567, 0x31));
}

/* 8 halves at p, p + stride, ... as floats. */
static inline __m256 load8_half(const uint8_t *p, size_t stride)
{
    qf_half h[8];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++)
        memcpy(&h[i], p + (size_t)i * stride, sizeof h[i]);
    return _mm256_cvtph_ps(_mm_setr_epi16((short)h[0], (short)h[1], (short)h[2], (short)h[3],
                                          (short)h[4], (short)h[5], (short)h[6], (short)h[7]));
}

/* The codes 0..15 (q4_1) or 0..31 (q5_1) of the block at blk: d, m, then qs or qh + qs. */
static inline __m256i unpack_1(const uint8_t *blk, bool five)
{
    if (!five)
        return qf_x86_nibbles32(blk + 4);
    return _mm256_or_si256(qf_x86_nibbles32(blk + 8), qf_x86_bit4_32(blk + 4));
}

static inline void vec_dot_1(int64_t k, const uint8_t *w, size_t ws, bool five,
                             const qf_block_q8_1 *ab, float *s)
{
    const int64_t nb = k / 32;
    __m256 acc = _mm256_setzero_ps();
    int64_t i = 0;
    for (; i + 8 <= nb; i += 8) {
        __m256i v[8];
#pragma GCC unroll 8
        for (int j = 0; j < 8; j++)
            v[j] = maddubs_sum(unpack_1(w + (size_t)(i + j) * ws, five),
                               _mm256_loadu_si256((const __m256i *)ab[i + j].qs));
        const __m256 sumi = _mm256_cvtepi32_ps(reduce8_epi32(v));
        const uint8_t *wp = w + (size_t)i * ws, *ap = (const uint8_t *)&ab[i];
        const __m256 dw = load8_half(wp, ws), mw = load8_half(wp + 2, ws);
        const __m256 da = load8_half(ap, sizeof *ab), sa = load8_half(ap + 2, sizeof *ab);
        acc = _mm256_add_ps(acc, _mm256_add_ps(_mm256_mul_ps(_mm256_mul_ps(dw, da), sumi),
                                               _mm256_mul_ps(mw, sa)));
    }
    float sum = qf_x86_hsum_ps(acc);
    for (; i < nb; i++) {
        const uint8_t *blk = w + (size_t)i * ws;
        const int32_t sumi = qf_x86_hsum_epi32(maddubs_sum(unpack_1(blk, five),
            _mm256_loadu_si256((const __m256i *)ab[i].qs)));
        sum += qf_x86_term_1(blk, &ab[i], sumi);
    }
    *s = sum;
}

static void vec_dot_q4_1(int64_t k, const void *w, const void *a, float *s)
{
    vec_dot_1(k, w, sizeof(qf_block_q4_1), false, a, s);
}

static void vec_dot_q5_1(int64_t k, const void *w, const void *a, float *s)
{
    vec_dot_1(k, w, sizeof(qf_block_q5_1), true, a, s);
}

/* |a| * sign(w, a): |a| is 128 for a = -128, which maddubs reads unsigned, and the codebook
 * has no -128, so the sign flip never overflows. */
static inline __m256i dot_iq4nl(__m256i table, const uint8_t *qs, const int8_t *aq)
{
    const __m256i wv = _mm256_shuffle_epi8(table, qf_x86_nibbles32(qs));
    const __m256i av = _mm256_loadu_si256((const __m256i *)aq);
    return maddubs_sum(_mm256_abs_epi8(av), _mm256_sign_epi8(wv, av));
}

static void vec_dot_iq4_nl(int64_t k, const void *w, const void *a, float *s)
{
    const qf_block_iq4_nl *wb = w;
    const qf_block_q8_0 *ab = a;
    const __m256i table = iq4nl_table();
#define ISUM(i) dot_iq4nl(table, wb[i].qs, ab[i].qs)
    SUM_BLOCKS(k / QF_QK4_NL, ISUM, SCALE_WA, *s);
#undef ISUM
}

static void vec_dot_int8_pc(int64_t k, const void *w, const void *a, float *s)
{
    float scale;
    const int8_t *q = qf_x86_int8_pc_split(w, &scale);
    const qf_block_q8_0 *ab = a;
    float sumf;
#define ISUM(i) dot_i8_i8(q + 32 * (i), ab[i].qs)
#define SCALE(i) qf_x86_h2f(ab[i].d)
    SUM_BLOCKS(k / QF_QK8_0, ISUM, SCALE, sumf);
#undef ISUM
#undef SCALE
    *s = scale * sumf;
}

/* One int4 group of g weights against its g/32 activation blocks: sub-blocks alternate
 * between the two accumulators. */
static inline void int4_group_dot(const uint8_t *blk, const qf_block_q8_0 *ab, int g,
                                  __m256 *acc0, __m256 *acc1)
{
    const float d = qf_x86_h2f((qf_half)(blk[0] | blk[1] << 8));
    const __m256i z = _mm256_set1_epi8((char)blk[2]);
#pragma GCC unroll 4
    for (int sb = 0; sb < g / 32; sb++) {
        __m256 *acc = (sb & 1) ? acc1 : acc0;
        *acc = fmadd_i32(dot_u_off(int4_sub_block(blk + 3, g, sb), z, ab[sb].qs),
                         d * qf_x86_h2f(ab[sb].d), *acc);
    }
}

static inline void vec_dot_int4(int64_t k, const void *w, const void *a, float *s, int g)
{
    const uint8_t *row = w;
    const qf_block_q8_0 *ab = a;
    const int64_t ng = k / g, bs = 3 + g / 2;
    __m256 acc0 = _mm256_setzero_ps(), acc1 = _mm256_setzero_ps();
    int64_t b = 0;
    if (g == 32)      /* one sub-block a group: two groups a step, one per accumulator */
        for (; b + 2 <= ng; b += 2) {
            int4_group_dot(row + b * bs, ab + b, 32, &acc0, &acc1);
            int4_group_dot(row + (b + 1) * bs, ab + b + 1, 32, &acc1, &acc0);
        }
    for (; b < ng; b++)
        int4_group_dot(row + b * bs, ab + b * (g / 32), g, &acc0, &acc1);
    *s = qf_x86_hsum_ps(_mm256_add_ps(acc0, acc1));
}

#define INT4_ROW_FNS(G)                                                                  \
    static void dequantize_row_int4_g##G(const void *x, float *y, int64_t k)            \
    {                                                                                    \
        dequantize_row_int4(x, y, k, (G));                                               \
    }                                                                                    \
    static void vec_dot_int4_g##G(int64_t k, const void *w, const void *a, float *s)    \
    {                                                                                    \
        vec_dot_int4(k, w, a, s, (G));                                                   \
    }
INT4_ROW_FNS(32)
INT4_ROW_FNS(64)
INT4_ROW_FNS(128)
#undef INT4_ROW_FNS

void qf_isa_fill_avx2_legacy(qf_isa_kernels t[QF_FMT_COUNT])
{
    t[QF_FMT_Q8_0] = (qf_isa_kernels){ quantize_row_q8_0, dequantize_row_q8_0, vec_dot_q8_0 };
    t[QF_FMT_Q8_1].quantize = quantize_row_q8_1;
    t[QF_FMT_Q4_0] = (qf_isa_kernels){ quantize_row_q4_0, dequantize_row_q4_0, vec_dot_q4_0 };
    t[QF_FMT_Q4_1] = (qf_isa_kernels){ quantize_row_q4_1, dequantize_row_q4_1, vec_dot_q4_1 };
    t[QF_FMT_Q5_0] = (qf_isa_kernels){ quantize_row_q5_0, dequantize_row_q5_0, vec_dot_q5_0 };
    t[QF_FMT_Q5_1] = (qf_isa_kernels){ quantize_row_q5_1, dequantize_row_q5_1, vec_dot_q5_1 };
    t[QF_FMT_IQ4_NL] = (qf_isa_kernels){ quantize_row_iq4_nl, dequantize_row_iq4_nl,
                                         vec_dot_iq4_nl };
    t[QF_FMT_INT8_PC] = (qf_isa_kernels){ quantize_row_int8_pc, dequantize_row_int8_pc,
                                          vec_dot_int8_pc };
    t[QF_FMT_INT4_G32] = (qf_isa_kernels){ quantize_row_int4_g32, dequantize_row_int4_g32,
                                           vec_dot_int4_g32 };
    t[QF_FMT_INT4_G64] = (qf_isa_kernels){ quantize_row_int4_g64, dequantize_row_int4_g64,
                                           vec_dot_int4_g64 };
    t[QF_FMT_INT4_G128] = (qf_isa_kernels){ quantize_row_int4_g128, dequantize_row_int4_g128,
                                            vec_dot_int4_g128 };
}
