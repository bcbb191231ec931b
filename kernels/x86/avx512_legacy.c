/* avx512_legacy.c - the AVX-512 (F/BW/VL/DQ + VNNI) row kernels of the legacy GGUF formats,
 * iq4_nl and the integer formats: the dot products and iq4_nl's quantizer. The slots not
 * written here (the other quantizers and the dequantizers) fall back to avx2_legacy.c, which
 * is as fast for them on the machines we measured.
 *
 * A dot product takes two 32-weight blocks per 512-bit vector: the weights become unsigned
 * bytes u = w + offset (q4_0's nibbles are w + 8, q5_0's w + 16, int4's w + z, and a full int8
 * weight is flipped to w + 128), VNNI's vpdpbusd sums u * a exactly in int32 for any byte a,
 * and the offset comes back out as a second vpdpbusd of (offset, a). The two blocks' f16 scales
 * are read through a table of all 65,536 halves (one load each, where F16C would cost three
 * instructions a block) and each block's int32 lanes are scaled and accumulated with FMA.
 * iq4_nl's quantizer runs its 16 candidate scales in the 16 lanes of one vector, each lane's
 * sums in the reference's order, so it writes the reference's bytes.
 * Compiled with the avx512 flags; reached only through dispatch.c after detection. vec_dot is
 * the inner loop of every matvec on this ISA.
 */
#include <stdbool.h>
#include <string.h>

#include "isa/qf_isa_fill.h"
#include "ref/qf_ref.h"
#include "x86/x86_util.h"

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

/* f16 scales go through the reference's decode table (qf_f16_table, 256 KiB, of which a row
 * touches a few hundred entries). */

/* [sa x 8, sb x 8]: block A's scale product in the low 8 lanes, block B's in the high. */
static inline __m512 pair_scale(float wa, float aa, float wb, float ab)
{
    const __m512 lo = _mm512_mul_ps(_mm512_set1_ps(wa), _mm512_set1_ps(aa));
    return _mm512_mask_mul_ps(lo, 0xFF00, _mm512_set1_ps(wb), _mm512_set1_ps(ab));
}

/* --- building blocks ----------------------------------------------------------------------- */

/* Two blocks' 16 packed nibble bytes as 64 bytes 0..15: [A 0..31 | B 0..31]. */
static inline __m512i nibbles64(const uint8_t *qa, const uint8_t *qb)
{
    const __m256i a = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)qa));
    const __m256i b = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)qb));
    const __m512i both = _mm512_inserti64x4(_mm512_castsi256_si512(a), b, 1);
    const __m512i s = _mm512_srlv_epi64(both, _mm512_setr_epi64(0, 0, 4, 4, 0, 0, 4, 4));
    return _mm512_and_si512(s, _mm512_set1_epi8(0x0F));
}

/* Two 32-byte runs as one vector. */
static inline __m512i load2x32(const void *pa, const void *pb)
{
    return _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_loadu_si256((const __m256i *)pa)),
                              _mm256_loadu_si256((const __m256i *)pb), 1);
}

/* sum (u - off) * a per int32 lane: exact, u unsigned, off unsigned (broadcast bytes). */
static inline __m512i dot_u_off(__m512i u, __m512i off, __m512i a)
{
    const __m512i zero = _mm512_setzero_si512();
    return _mm512_sub_epi32(_mm512_dpbusd_epi32(zero, u, a), _mm512_dpbusd_epi32(zero, off, a));
}

/* The single-block version for a row's odd last block, in 256 bits. */
static inline int32_t dot_u_off32(__m256i u, __m256i off, const int8_t *aq)
{
    const __m256i a = _mm256_loadu_si256((const __m256i *)aq), zero = _mm256_setzero_si256();
    return qf_x86_hsum_epi32(_mm256_sub_epi32(_mm256_dpbusd_epi32(zero, u, a),
                                              _mm256_dpbusd_epi32(zero, off, a)));
}

/* sum = the sum over blocks i < nb of scale(i) * isum(i): PAIR(i) is blocks i, i + 1 as an
 * int32 vector (low 8 lanes block i), SCALE2(i) their [scale x 8, scale x 8], ONE(i) and
 * SCALE1(i) the odd last block's integer sum and scale. Two pairs a step, two accumulators. */
#define SUM_PAIRS(nb, PAIR, SCALE2, ONE, SCALE1, sum)                                       \
    do {                                                                                   \
        __m512 acc0_ = _mm512_setzero_ps(), acc1_ = _mm512_setzero_ps();                   \
        int64_t i_ = 0;                                                                    \
        for (; i_ + 4 <= (nb); i_ += 4) {                                                  \
            acc0_ = _mm512_fmadd_ps(_mm512_cvtepi32_ps(PAIR(i_)), SCALE2(i_), acc0_);      \
            acc1_ = _mm512_fmadd_ps(_mm512_cvtepi32_ps(PAIR(i_ + 2)), SCALE2(i_ + 2), acc1_); \
        }                                                                                  \
        if (i_ + 2 <= (nb)) {                                                              \
            acc0_ = _mm512_fmadd_ps(_mm512_cvtepi32_ps(PAIR(i_)), SCALE2(i_), acc0_);      \
            i_ += 2;                                                                       \
        }                                                                                  \
        (sum) = _mm512_reduce_add_ps(_mm512_add_ps(acc0_, acc1_));                         \
        if (i_ < (nb))                                                                     \
            (sum) += (float)(ONE(i_)) * (SCALE1(i_));                                      \
    } while (0)

/* the scale products of blocks with a qf_half d, the weights in wb and activations in ab */
#define SCALE2_WA(i) pair_scale(t[wb[i].d], t[ab[i].d], t[wb[(i) + 1].d], t[ab[(i) + 1].d])
#define SCALE1_WA(i) (t[wb[i].d] * t[ab[i].d])

/* --- vec_dot ------------------------------------------------------------------------------- */

static void vec_dot_q4_0(int64_t k, const void *w, const void *a, float *s)
{
    const qf_block_q4_0 *wb = w;
    const qf_block_q8_0 *ab = a;
    const float *t = qf_f16_table();
    const __m512i eight = _mm512_set1_epi8(8);
#define PAIR(i) dot_u_off(nibbles64(wb[i].qs, wb[(i) + 1].qs), eight, \
                          load2x32(ab[i].qs, ab[(i) + 1].qs))
#define ONE(i) dot_u_off32(qf_x86_nibbles32(wb[i].qs), _mm256_set1_epi8(8), ab[i].qs)
    SUM_PAIRS(k / QF_QK4_0, PAIR, SCALE2_WA, ONE, SCALE1_WA, *s);
#undef PAIR
#undef ONE
}

/* Two q5_0 blocks' fifth bits (qh, bit j = weight j) as 0x10 bytes in nibbles64's order. */
static inline __m512i bit4_64(const uint8_t *qha, const uint8_t *qhb)
{
    uint32_t ma, mb;
    memcpy(&ma, qha, sizeof ma);      /* little-endian, as the format */
    memcpy(&mb, qhb, sizeof mb);
    return _mm512_maskz_mov_epi8((__mmask64)ma | (__mmask64)mb << 32, _mm512_set1_epi8(0x10));
}

static void vec_dot_q5_0(int64_t k, const void *w, const void *a, float *s)
{
    const qf_block_q5_0 *wb = w;
    const qf_block_q8_0 *ab = a;
    const float *t = qf_f16_table();
    const __m512i sixteen = _mm512_set1_epi8(16);
#define PAIR(i) dot_u_off(_mm512_or_si512(nibbles64(wb[i].qs, wb[(i) + 1].qs),              \
                                          bit4_64(wb[i].qh, wb[(i) + 1].qh)),                \
                          sixteen, load2x32(ab[i].qs, ab[(i) + 1].qs))
#define ONE(i) dot_u_off32(_mm256_or_si256(qf_x86_nibbles32(wb[i].qs), qf_x86_bit4_32(wb[i].qh)), \
                           _mm256_set1_epi8(16), ab[i].qs)
    SUM_PAIRS(k / QF_QK5_0, PAIR, SCALE2_WA, ONE, SCALE1_WA, *s);
#undef PAIR
#undef ONE
}

/* Signed weight bytes flipped to w + 128, so any byte, -128 included, multiplies exactly. */
static inline __m512i flip64(__m512i w)
{
    return _mm512_xor_si512(w, _mm512_set1_epi8((char)0x80));
}

static inline __m256i flip32(const int8_t *w)
{
    return _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)w), _mm256_set1_epi8((char)0x80));
}

static void vec_dot_q8_0(int64_t k, const void *w, const void *a, float *s)
{
    const qf_block_q8_0 *wb = w, *ab = a;
    const float *t = qf_f16_table();
    const __m512i bias = _mm512_set1_epi8((char)0x80);
#define PAIR(i) dot_u_off(flip64(load2x32(wb[i].qs, wb[(i) + 1].qs)), bias, \
                          load2x32(ab[i].qs, ab[(i) + 1].qs))
#define ONE(i) dot_u_off32(flip32(wb[i].qs), _mm256_set1_epi8((char)0x80), ab[i].qs)
    SUM_PAIRS(k / QF_QK8_0, PAIR, SCALE2_WA, ONE, SCALE1_WA, *s);
#undef PAIR
#undef ONE
}

static void vec_dot_int8_pc(int64_t k, const void *w, const void *a, float *s)
{
    float scale;
    const int8_t *q = qf_x86_int8_pc_split(w, &scale);
    const qf_block_q8_0 *ab = a;
    const float *t = qf_f16_table();
    const __m512i bias = _mm512_set1_epi8((char)0x80);
    float sumf;
#define PAIR(i) dot_u_off(flip64(_mm512_loadu_si512(q + 32 * (i))), bias, \
                          load2x32(ab[i].qs, ab[(i) + 1].qs))
#define SCALE2(i) _mm512_mask_mov_ps(_mm512_set1_ps(t[ab[i].d]), 0xFF00, \
                                     _mm512_set1_ps(t[ab[(i) + 1].d]))
#define ONE(i) dot_u_off32(flip32(q + 32 * (i)), _mm256_set1_epi8((char)0x80), ab[i].qs)
#define SCALE1(i) t[ab[i].d]
    SUM_PAIRS(k / QF_QK8_0, PAIR, SCALE2, ONE, SCALE1, sumf);
#undef PAIR
#undef SCALE2
#undef ONE
#undef SCALE1
    *s = scale * sumf;
}

/* The iq4_nl codebook plus 128 (1..241), as a byte shuffle table in every 128-bit lane. */
static inline __m512i iq4nl_table_u(void)
{
    const __m128i cb = _mm_loadu_si128((const __m128i *)qf_kvalues_iq4nl);
    return _mm512_broadcast_i32x4(_mm_xor_si128(cb, _mm_set1_epi8((char)0x80)));
}

static void vec_dot_iq4_nl(int64_t k, const void *w, const void *a, float *s)
{
    const qf_block_iq4_nl *wb = w;
    const qf_block_q8_0 *ab = a;
    const float *t = qf_f16_table();
    const __m512i table = iq4nl_table_u(), bias = _mm512_set1_epi8((char)0x80);
    const __m256i table32 = _mm512_castsi512_si256(table);
#define PAIR(i) dot_u_off(_mm512_shuffle_epi8(table, nibbles64(wb[i].qs, wb[(i) + 1].qs)), bias, \
                          load2x32(ab[i].qs, ab[(i) + 1].qs))
#define ONE(i) dot_u_off32(_mm256_shuffle_epi8(table32, qf_x86_nibbles32(wb[i].qs)),          \
                           _mm256_set1_epi8((char)0x80), ab[i].qs)
    SUM_PAIRS(k / QF_QK4_NL, PAIR, SCALE2_WA, ONE, SCALE1_WA, *s);
#undef PAIR
#undef ONE
}

/* int4_gG: the pair is two 32-weight sub-blocks. G = 32: two groups side by side; G = 64: one
 * group, its low nibbles then its high; G = 128: sub-blocks (0, 2) and then (1, 3) of a group,
 * as the 32-byte halves of its codes give them. */
static inline float int4_d(const float *t, const uint8_t *blk)
{
    return t[(qf_half)(blk[0] | blk[1] << 8)];
}

static void vec_dot_int4_g32(int64_t k, const void *w, const void *a, float *s)
{
    const uint8_t *row = w;
    const qf_block_q8_0 *ab = a;
    const float *t = qf_f16_table();
    enum { BS = 3 + 16 };
#define PAIR(i) dot_u_off(nibbles64(row + (i) * BS + 3, row + ((i) + 1) * BS + 3),            \
                          _mm512_mask_set1_epi8(_mm512_set1_epi8((char)row[(i) * BS + 2]),      \
                                                (__mmask64)0xFFFFFFFF00000000ull,              \
                                                (char)row[((i) + 1) * BS + 2]),                \
                          load2x32(ab[i].qs, ab[(i) + 1].qs))
#define SCALE2(i) pair_scale(int4_d(t, row + (i) * BS), t[ab[i].d],                         \
                             int4_d(t, row + ((i) + 1) * BS), t[ab[(i) + 1].d])
#define ONE(i) dot_u_off32(qf_x86_nibbles32(row + (i) * BS + 3),                              \
                           _mm256_set1_epi8((char)row[(i) * BS + 2]), ab[i].qs)
#define SCALE1(i) (int4_d(t, row + (i) * BS) * t[ab[i].d])
    SUM_PAIRS(k / 32, PAIR, SCALE2, ONE, SCALE1, *s);
#undef PAIR
#undef SCALE2
#undef ONE
#undef SCALE1
}

/* 32 bytes of codes as [low nibbles | high nibbles], each 0..15. */
static inline __m512i split32(const uint8_t *qs)
{
    const __m512i b = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)qs));
    const __m512i s = _mm512_srlv_epi64(b, _mm512_setr_epi64(0, 0, 0, 0, 4, 4, 4, 4));
    return _mm512_and_si512(s, _mm512_set1_epi8(0x0F));
}

static void vec_dot_int4_g64(int64_t k, const void *w, const void *a, float *s)
{
    const uint8_t *row = w;
    const qf_block_q8_0 *ab = a;
    const float *t = qf_f16_table();
    enum { BS = 3 + 32 };
    /* a group is a whole pair; nb (sub-blocks) is even */
#define PAIR(i) dot_u_off(split32(row + ((i) / 2) * BS + 3),                                  \
                          _mm512_set1_epi8((char)row[((i) / 2) * BS + 2]),                     \
                          load2x32(ab[i].qs, ab[(i) + 1].qs))
#define SCALE2(i) pair_scale(int4_d(t, row + ((i) / 2) * BS), t[ab[i].d],                    \
                             int4_d(t, row + ((i) / 2) * BS), t[ab[(i) + 1].d])
#define NONE(i) 0
#define SCALE0(i) 0.0f
    SUM_PAIRS(k / 32, PAIR, SCALE2, NONE, SCALE0, *s);
#undef PAIR
#undef SCALE2
}

static void vec_dot_int4_g128(int64_t k, const void *w, const void *a, float *s)
{
    const uint8_t *row = w;
    const qf_block_q8_0 *ab = a;
    const float *t = qf_f16_table();
    enum { BS = 3 + 64 };
    /* pair i (even) of a group's four sub-blocks: i % 4 == 0 holds sub-blocks 0 and 2 (the
     * first 32 code bytes), i % 4 == 2 holds 1 and 3 (the next 32) */
#define G(i) (row + ((i) / 4) * BS)
#define SB(i) ((i) & ~(int64_t)3)
#define PAIR(i) dot_u_off(split32(G(i) + 3 + 32 * (((i) & 3) >> 1)),                          \
                          _mm512_set1_epi8((char)G(i)[2]),                                      \
                          load2x32(ab[SB(i) + (((i) & 3) >> 1)].qs,                             \
                                   ab[SB(i) + (((i) & 3) >> 1) + 2].qs))
#define SCALE2(i) pair_scale(int4_d(t, G(i)), t[ab[SB(i) + (((i) & 3) >> 1)].d],               \
                             int4_d(t, G(i)), t[ab[SB(i) + (((i) & 3) >> 1) + 2].d])
    SUM_PAIRS(k / 32, PAIR, SCALE2, NONE, SCALE0, *s);
#undef PAIR
#undef SCALE2
#undef G
#undef SB
#undef NONE
#undef SCALE0
}

#undef SCALE2_WA
#undef SCALE1_WA

/* --- q4_1 and q5_1 ------------------------------------------------------------------------- */

/* Their block term (dw * da) * sumi + m * s must be formed per block as the reference forms it
 * (avx2_legacy.c says why), so sixteen blocks' integer sums are first reduced into one vector
 * by a transposing tree of unpacks, which leaves block k_order16[j] in lane j; the blocks'
 * scales are read in that order. */
static const int k_order16[16] = { 0, 2, 4, 6, 1, 3, 5, 7, 8, 10, 12, 14, 9, 11, 13, 15 };

static inline __m512i reduce_pair_(__m512i a, __m512i b, int wide)
{
    if (!wide)
        return _mm512_add_epi32(_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b));
    return _mm512_add_epi32(_mm512_unpacklo_epi64(a, b), _mm512_unpackhi_epi64(a, b));
}

/* r[p] holds blocks 2p (low 8 lanes) and 2p + 1; lane j of the result is block k_order16[j]. */
static inline __m512i reduce16(const __m512i r[8])
{
    const __m512i u0 = reduce_pair_(reduce_pair_(r[0], r[1], 0), reduce_pair_(r[2], r[3], 0), 1);
    const __m512i u1 = reduce_pair_(reduce_pair_(r[4], r[5], 0), reduce_pair_(r[6], r[7], 0), 1);
    return _mm512_add_epi32(_mm512_shuffle_i64x2(u0, u1, _MM_SHUFFLE(2, 0, 2, 0)),
                            _mm512_shuffle_i64x2(u0, u1, _MM_SHUFFLE(3, 1, 3, 1)));
}

/* The halves at p + stride * k_order16[j], as 16 floats. */
static inline __m512 load16_half(const uint8_t *p, size_t stride)
{
    qf_half h[16];
#pragma GCC unroll 16
    for (int j = 0; j < 16; j++)
        memcpy(&h[j], p + stride * (size_t)k_order16[j], sizeof h[j]);
    return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)h));
}

/* Two blocks' codes: q4_1 (d, m, qs) or q5_1 (d, m, qh, qs). */
static inline __m512i unpack2_1(const uint8_t *a, const uint8_t *b, bool five)
{
    if (!five)
        return nibbles64(a + 4, b + 4);
    return _mm512_or_si512(nibbles64(a + 8, b + 8), bit4_64(a + 4, b + 4));
}

static inline void vec_dot_1(int64_t k, const uint8_t *w, size_t ws, bool five,
                             const qf_block_q8_1 *ab, float *s)
{
    const int64_t nb = k / 32;
    __m512 acc = _mm512_setzero_ps();
    int64_t i = 0;
    for (; i + 16 <= nb; i += 16) {
        const uint8_t *wp = w + (size_t)i * ws;
        __m512i r[8];
#pragma GCC unroll 8
        for (int p = 0; p < 8; p++)
            r[p] = _mm512_dpbusd_epi32(_mm512_setzero_si512(),
                                       unpack2_1(wp + 2 * p * ws, wp + (2 * p + 1) * ws, five),
                                       load2x32(ab[i + 2 * p].qs, ab[i + 2 * p + 1].qs));
        const __m512 sumi = _mm512_cvtepi32_ps(reduce16(r));
        const uint8_t *ap = (const uint8_t *)&ab[i];
        const __m512 dw = load16_half(wp, ws), mw = load16_half(wp + 2, ws);
        const __m512 da = load16_half(ap, sizeof *ab), sa = load16_half(ap + 2, sizeof *ab);
        acc = _mm512_add_ps(acc, _mm512_add_ps(_mm512_mul_ps(_mm512_mul_ps(dw, da), sumi),
                                               _mm512_mul_ps(mw, sa)));
    }
    float sum = _mm512_reduce_add_ps(acc);
    for (; i < nb; i++) {
        const uint8_t *blk = w + (size_t)i * ws;
        const __m256i u = five ? _mm256_or_si256(qf_x86_nibbles32(blk + 8), qf_x86_bit4_32(blk + 4))
                               : qf_x86_nibbles32(blk + 4);
        const __m256i a = _mm256_loadu_si256((const __m256i *)ab[i].qs);
        const int32_t sumi = qf_x86_hsum_epi32(_mm256_dpbusd_epi32(_mm256_setzero_si256(), u, a));
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

/* --- iq4_nl quantize ----------------------------------------------------------------------- */

/* The nearest codebook index of each lane of v (NaN: 15, as the reference) by a four-step
 * bisection over the midpoints. */
static inline __m512i iq4nl_nearest16(__m512 v, __m512 mid)
{
    __m512i idx = _mm512_setzero_si512();
    for (int step = 8; step >= 1; step >>= 1) {
        const __m512i probe = _mm512_add_epi32(idx, _mm512_set1_epi32(step - 1));
        const __mmask16 ge = _mm512_cmp_ps_mask(v, _mm512_permutexvar_ps(probe, mid), _CMP_GE_OQ);
        idx = _mm512_mask_add_epi32(idx, ge, idx, _mm512_set1_epi32(step));
    }
    return _mm512_mask_mov_epi32(idx, _mm512_cmp_ps_mask(v, v, _CMP_UNORD_Q),
                                 _mm512_set1_epi32(15));
}

/* One block as the reference's quantize_block (7-step search); false: take the reference. */
static bool iq4nl_block(const float *x, qf_block_iq4_nl *y)
{
    const __m512 mid = _mm512_loadu_ps(qf_x86_iq4nl_mid());
    const __m512 cb = _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(
        _mm_loadu_si128((const __m128i *)qf_kvalues_iq4nl)));
    __m256 v[4];
    float max, scale = 0.0f;
    const int start = qf_x86_iq4nl_start(x, v, &max);
    if (start == 0)
        return false;
    if (start == 2) {
        float ids[16];
        qf_x86_iq4nl_candidates(max, ids);
        const __m512 id = _mm512_loadu_ps(ids);
        __m512 sumqx = _mm512_setzero_ps(), sumq2 = sumqx;
        for (int j = 0; j < 32; j++) {
            const __m512 xj = _mm512_set1_ps(x[j]);
            const __m512 wj = _mm512_set1_ps(x[j] * x[j]);
            const __m512 q = _mm512_permutexvar_ps(iq4nl_nearest16(_mm512_mul_ps(id, xj), mid), cb);
            const __m512 wq = _mm512_mul_ps(wj, q);
            sumqx = _mm512_add_ps(sumqx, _mm512_mul_ps(wq, xj));
            sumq2 = _mm512_add_ps(sumq2, _mm512_mul_ps(wq, q));
        }
        float sqx[16], sq2[16];
        _mm512_storeu_ps(sqx, sumqx);
        _mm512_storeu_ps(sq2, sumq2);
        scale = qf_x86_iq4nl_pick(sqx, sq2);
    }
    y->d = qf_fp32_to_fp16(scale);
    const __m512 id = _mm512_set1_ps(scale != 0.0f ? 1.0f / scale : 0.0f);
    const __m512 x0 = _mm512_insertf32x8(_mm512_castps256_ps512(v[0]), v[1], 1);
    const __m512 x1 = _mm512_insertf32x8(_mm512_castps256_ps512(v[2]), v[3], 1);
    const __m128i lo = _mm512_cvtepi32_epi8(iq4nl_nearest16(_mm512_mul_ps(id, x0), mid));
    const __m128i hi = _mm512_cvtepi32_epi8(iq4nl_nearest16(_mm512_mul_ps(id, x1), mid));
    _mm_storeu_si128((__m128i *)y->qs, _mm_or_si128(lo, _mm_slli_epi16(hi, 4)));
    return true;
}

static void quantize_row_iq4_nl(const float *x, void *y, int64_t k)
{
    qf_block_iq4_nl *blk = y;
    for (int64_t i = 0; i < k / QF_QK4_NL; i++)
        if (!iq4nl_block(x + i * QF_QK4_NL, &blk[i]))
            qf_format_get(QF_FMT_IQ4_NL)->quantize_ref(x + i * QF_QK4_NL, &blk[i], QF_QK4_NL);
}

void qf_isa_fill_avx512_legacy(qf_isa_kernels t[QF_FMT_COUNT])
{
    t[QF_FMT_Q8_0].vec_dot = vec_dot_q8_0;
    t[QF_FMT_Q4_0].vec_dot = vec_dot_q4_0;
    t[QF_FMT_Q5_0].vec_dot = vec_dot_q5_0;
    t[QF_FMT_Q4_1].vec_dot = vec_dot_q4_1;
    t[QF_FMT_Q5_1].vec_dot = vec_dot_q5_1;
    t[QF_FMT_IQ4_NL].quantize = quantize_row_iq4_nl;
    t[QF_FMT_IQ4_NL].vec_dot = vec_dot_iq4_nl;
    t[QF_FMT_INT8_PC].vec_dot = vec_dot_int8_pc;
    t[QF_FMT_INT4_G32].vec_dot = vec_dot_int4_g32;
    t[QF_FMT_INT4_G64].vec_dot = vec_dot_int4_g64;
    t[QF_FMT_INT4_G128].vec_dot = vec_dot_int4_g128;
}
