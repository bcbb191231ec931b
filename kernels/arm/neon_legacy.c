/* neon_legacy.c - the NEON (dotprod) row kernels of the 32-weight block formats: q8_0, q8_1,
 * q4_0, q4_1, q5_0, q5_1, iq4_nl, and quantfleet's int8_pc and int4_g32/64/128 (see
 * qf_kernels.h and kernels/isa/qf_isa_fill.h).
 *
 * Compiled only for AArch64 with -march=armv8.2-a+dotprod+fp16; called only after dispatch.c's
 * detection saw dotprod. Quantizers are byte-exact with kernels/ref/: the vector path does the
 * reference's float operations lane by lane in the same order (the same divisions, the same
 * multiply-then-add, truncation where the reference truncates, ties away from zero where it uses
 * roundf), and any block that is not plain (NaN, infinity, all zero, a scale whose inverse
 * overflows) goes to the reference kernel for that block. Dequantizers are bit-exact the same
 * way. Dot products sum each block's integer products exactly with SDOT; the symmetric formats
 * accumulate the scaled block sums in four float lanes (only the order of the float sum differs
 * from the reference, and no term can cancel another within a block), while q4_1 and q5_1,
 * whose scale and min terms can cancel, add their blocks in the reference's order (their dot
 * products are bit-identical to it). iq4_nl's quantizer, a 16-candidate scale search, runs
 * four blocks at once, one per vector lane, each lane doing the reference's float operations in
 * its order, so its bytes are the reference's too.
 * These are the matvec inner loops: hot, one call per weight row.
 */
#include <arm_neon.h>
#include <float.h>
#include <assert.h>
#include <math.h>
#include <stdbool.h>

#include "isa/qf_isa_fill.h"
#include "neon_util.h"
#include "ref/qf_ref.h"

/* int8_pc's scale and the q5 bit masks are read and written as the host's words */
QF_STATIC_ASSERT(__BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__, "the NEON kernels assume little-endian");

/* Whether 1/d is finite, i.e. the vector path's products stay within the block's range. */
static bool inverse_ok(float id)
{
    return fabsf(id) <= FLT_MAX;
}

/* Four float32x4 of x[0..16). */
static void load16(const float *x, float32x4_t v[4])
{
    for (int i = 0; i < 4; i++)
        v[i] = vld1q_f32(x + 4 * i);
}

/* Low nibbles in weights 0..15, high nibbles in 16..31, as q4_0 packs them. */
static inline uint8x16_t pack_nibbles(uint8x16_t lo, uint8x16_t hi)
{
    return vorrq_u8(vandq_u8(lo, vdupq_n_u8(0x0F)), vshlq_n_u8(hi, 4));
}

/* trunc(x * id + add) for 16 floats, as uint8 lanes (callers ensure 0..255). */
static uint8x16_t trunc_muladd_u8(const float *x, float id, float add)
{
    float32x4_t v[4];
    uint32x4_t q[4];
    load16(x, v);
    const float32x4_t va = vdupq_n_f32(add);
    for (int i = 0; i < 4; i++)
        q[i] = vcvtq_u32_f32(vaddq_f32(vmulq_n_f32(v[i], id), va));
    return qf_neon_narrow_u8(q[0], q[1], q[2], q[3]);
}

/* trunc((x - min) * id + 0.5) for 16 floats, as uint8 lanes. */
static uint8x16_t trunc_affine_u8(const float *x, float min, float id)
{
    float32x4_t v[4];
    uint32x4_t q[4];
    load16(x, v);
    const float32x4_t vmin = vdupq_n_f32(min), half = vdupq_n_f32(0.5f);
    for (int i = 0; i < 4; i++)
        q[i] = vcvtq_u32_f32(vaddq_f32(vmulq_n_f32(vsubq_f32(v[i], vmin), id), half));
    return qf_neon_narrow_u8(q[0], q[1], q[2], q[3]);
}

static float hsum_f32(float32x4_t v)
{
    return vaddvq_f32(v);
}

/* --- q8_0 and q8_1 ------------------------------------------------------------------------- */

/* One block's values round(x * id) into qs; the caller has checked the block is plain.
 * Returns sum(qs) for q8_1. */
static int quantize_q8_values(const float *x, float id, int8_t qs[32])
{
    int16x8_t sums = vdupq_n_s16(0);
    for (int h = 0; h < 2; h++) {
        float32x4_t v[4];
        int32x4_t q[4];
        load16(x + 16 * h, v);
        for (int i = 0; i < 4; i++)
            q[i] = vcvtaq_s32_f32(vmulq_n_f32(v[i], id));
        const int8x16_t b = qf_neon_narrow_s8(q[0], q[1], q[2], q[3]);
        vst1q_s8(qs + 16 * h, b);
        sums = vpadalq_s8(sums, b);
    }
    return vaddlvq_s16(sums);
}

/* The scale of a plain q8 block, or false if the block goes to the reference. */
static bool q8_scale(const float *x, float *d, float *id)
{
    float amax, mx, mn;
    qf_neon_stats(x, 32, &amax, &mx, &mn);
    if (!qf_neon_plain(amax))
        return false;
    *d = amax / 127;
    *id = 1.0f / *d;
    return inverse_ok(*id);
}

static void quantize_row_q8_0(const float *x, void *y, int64_t k)
{
    qf_block_q8_0 *blk = y;
    assert(k % QF_QK8_0 == 0);
    for (int64_t i = 0; i < k / QF_QK8_0; i++, x += QF_QK8_0) {
        float d, id;
        if (!q8_scale(x, &d, &id)) {
            qf_quantize_row_q8_0_ref(x, &blk[i], QF_QK8_0);
            continue;
        }
        blk[i].d = qf_neon_f2h(d);
        (void)quantize_q8_values(x, id, blk[i].qs);
    }
}

static void quantize_row_q8_1(const float *x, void *y, int64_t k)
{
    qf_block_q8_1 *blk = y;
    assert(k % QF_QK8_1 == 0);
    for (int64_t i = 0; i < k / QF_QK8_1; i++, x += QF_QK8_1) {
        float d, id;
        if (!q8_scale(x, &d, &id)) {
            qf_quantize_row_q8_1_ref(x, &blk[i], QF_QK8_1);
            continue;
        }
        blk[i].d = qf_neon_f2h(d);
        const int sum = quantize_q8_values(x, id, blk[i].qs);
        blk[i].s = qf_neon_f2h((float)sum * d);
    }
}

/* The integer dot of 32 weights (two int8x16) with a q8_0/q8_1 block's values. */
static inline int32x4_t dot32(int8x16_t w0, int8x16_t w1, const int8_t *a)
{
    const int32x4_t acc = vdotq_s32(vdupq_n_s32(0), w0, vld1q_s8(a));
    return vdotq_s32(acc, w1, vld1q_s8(a + 16));
}

/* --- q4_0 and q4_1, q5_0 and q5_1 quantize --------------------------------------------------- */

/* Levels of a plain symmetric block, min(trunc(x * id + add), top) with d = signed max / div
 * (q4_0: -8, 8.5, 15; q5_0: -16, 16.5, 31), as the reference; lo holds weights 0..15. False
 * for a block the reference must take. */
static bool symmetric_levels(const float *x, float div, float add, uint8_t top, qf_half *dh,
                             uint8x16_t *lo, uint8x16_t *hi)
{
    float amax, mx, mn;
    qf_neon_stats(x, 32, &amax, &mx, &mn);
    const float d = qf_neon_plain(amax) ? qf_neon_signed_max(x, 32, amax, mx, mn) / div : 0;
    const float id = d != 0.0f ? 1.0f / d : INFINITY;
    if (!inverse_ok(id))
        return false;
    *dh = qf_neon_f2h(d);
    /* the largest magnitude of the other sign lands one past the top, hence the cap */
    *lo = vminq_u8(trunc_muladd_u8(x, id, add), vdupq_n_u8(top));
    *hi = vminq_u8(trunc_muladd_u8(x + 16, id, add), vdupq_n_u8(top));
    return true;
}

static void quantize_row_q4_0(const float *x, void *y, int64_t k)
{
    qf_block_q4_0 *blk = y;
    assert(k % QF_QK4_0 == 0);
    for (int64_t i = 0; i < k / QF_QK4_0; i++, x += QF_QK4_0) {
        uint8x16_t lo, hi;
        if (!symmetric_levels(x, -8, 8.5f, 15, &blk[i].d, &lo, &hi))
            qf_quantize_row_q4_0_ref(x, &blk[i], QF_QK4_0);
        else
            vst1q_u8(blk[i].qs, pack_nibbles(lo, hi));
    }
}

/* Stores 32 levels 0..31 (lo: weights 0..15) as a q5 block's qs and qh. */
static void pack_q5(uint8x16_t lo, uint8x16_t hi, uint8_t qs[16], uint8_t qh[4])
{
    vst1q_u8(qs, pack_nibbles(lo, hi));
    qf_neon_q5_pack_high(lo, hi, qh);
}

static void quantize_row_q5_0(const float *x, void *y, int64_t k)
{
    qf_block_q5_0 *blk = y;
    assert(k % QF_QK5_0 == 0);
    for (int64_t i = 0; i < k / QF_QK5_0; i++, x += QF_QK5_0) {
        uint8x16_t lo, hi;
        if (!symmetric_levels(x, -16, 16.5f, 31, &blk[i].d, &lo, &hi))
            qf_quantize_row_q5_0_ref(x, &blk[i], QF_QK5_0);
        else
            pack_q5(lo, hi, blk[i].qs, blk[i].qh);
    }
}

/* d and min of a plain affine block with nmax levels, or false for the reference. Zero ends
 * go to the reference too: which signed zero is the min depends on element order there. */
static bool affine_scale(const float *x, float nmax, float *d, float *id, float *min)
{
    float amax, mx, mn;
    qf_neon_stats(x, 32, &amax, &mx, &mn);
    if (!qf_neon_plain(amax) || mx == 0.0f || mn == 0.0f)
        return false;
    *min = mn;
    *d = (mx - mn) / nmax;
    *id = *d != 0.0f ? 1.0f / *d : INFINITY;
    return fabsf(*d) <= FLT_MAX && inverse_ok(*id);
}

static void quantize_row_q4_1(const float *x, void *y, int64_t k)
{
    qf_block_q4_1 *blk = y;
    assert(k % QF_QK4_1 == 0);
    for (int64_t i = 0; i < k / QF_QK4_1; i++, x += QF_QK4_1) {
        float d, id, min;
        if (!affine_scale(x, 15, &d, &id, &min)) {
            qf_quantize_row_q4_1_ref(x, &blk[i], QF_QK4_1);
            continue;
        }
        blk[i].d = qf_neon_f2h(d);
        blk[i].m = qf_neon_f2h(min);
        const uint8x16_t fifteen = vdupq_n_u8(15);
        const uint8x16_t lo = vminq_u8(trunc_affine_u8(x, min, id), fifteen);
        const uint8x16_t hi = vminq_u8(trunc_affine_u8(x + 16, min, id), fifteen);
        vst1q_u8(blk[i].qs, pack_nibbles(lo, hi));
    }
}

static void quantize_row_q5_1(const float *x, void *y, int64_t k)
{
    qf_block_q5_1 *blk = y;
    assert(k % QF_QK5_1 == 0);
    for (int64_t i = 0; i < k / QF_QK5_1; i++, x += QF_QK5_1) {
        float d, id, min;
        if (!affine_scale(x, 31, &d, &id, &min)) {
            qf_quantize_row_q5_1_ref(x, &blk[i], QF_QK5_1);
            continue;
        }
        blk[i].d = qf_neon_f2h(d);
        blk[i].m = qf_neon_f2h(min);
        /* no cap, as the reference: the top level never exceeds 31 */
        pack_q5(trunc_affine_u8(x, min, id), trunc_affine_u8(x + 16, min, id), blk[i].qs,
                blk[i].qh);
    }
}

/* --- decoding, dequantize and dot of the 32-weight blocks, by kind ----------------------------- */

/* The formats of this file whose blocks are 32 levels and an f16 scale (the _1 kinds also an
 * f16 min): one unpacking per kind serves the dequantizer and the dot product. The functions
 * below are inlined with a constant kind, so each switch folds away. */
enum blk { BLK_Q8_0, BLK_Q8_1, BLK_Q4_0, BLK_Q5_0, BLK_IQ4_NL, BLK_Q4_1, BLK_Q5_1 };

/* The 32 weights of a q4-style nibble block as int8, minus offset. */
static inline void unpack_nibbles(const uint8_t qs[16], int8_t offset, int8x16_t *lo, int8x16_t *hi)
{
    const uint8x16_t v = vld1q_u8(qs);
    const int8x16_t o = vdupq_n_s8(offset);
    *lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(v, vdupq_n_u8(0x0F))), o);
    *hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(v, 4)), o);
}

/* The 32 levels of a q5 block as int8, minus offset. */
static inline void unpack_q5(const uint8_t qs[16], const uint8_t qh[4], int8_t offset, int8x16_t *lo,
                      int8x16_t *hi)
{
    const uint8x16_t v = vld1q_u8(qs);
    const int8x16_t o = vdupq_n_s8(offset);
    uint8x16_t hlo, hhi;
    qf_neon_q5_high(qh, &hlo, &hhi);
    *lo = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(vandq_u8(v, vdupq_n_u8(0x0F)), hlo)), o);
    *hi = vsubq_s8(vreinterpretq_s8_u8(vorrq_u8(vshrq_n_u8(v, 4), hhi)), o);
}

/* iq4_nl's codebook lookup: one TBL per 16 nibbles. */
static inline void unpack_iq4_nl(const uint8_t qs[16], int8x16_t *lo, int8x16_t *hi)
{
    const int8x16_t cb = vld1q_s8(qf_kvalues_iq4nl);
    const uint8x16_t v = vld1q_u8(qs);
    *lo = vqtbl1q_s8(cb, vandq_u8(v, vdupq_n_u8(0x0F)));
    *hi = vqtbl1q_s8(cb, vshrq_n_u8(v, 4));
}

/* Block i of a row of kind: its 32 values as the reference has them before scaling (lo holds
 * weights 0..15), its scale and, for the _1 kinds, its min (else 0). */
static inline void blk_unpack(enum blk kind, const void *x, int64_t i, int8x16_t *lo,
                              int8x16_t *hi, qf_half *d, qf_half *m)
{
    *m = 0;
    switch (kind) {
    case BLK_Q8_0: {
        const qf_block_q8_0 *b = (const qf_block_q8_0 *)x + i;
        *lo = vld1q_s8(b->qs);
        *hi = vld1q_s8(b->qs + 16);
        *d = b->d;
        return;
    }
    case BLK_Q8_1: {
        const qf_block_q8_1 *b = (const qf_block_q8_1 *)x + i;
        *lo = vld1q_s8(b->qs);
        *hi = vld1q_s8(b->qs + 16);
        *d = b->d;
        return;
    }
    case BLK_Q4_0: {
        const qf_block_q4_0 *b = (const qf_block_q4_0 *)x + i;
        unpack_nibbles(b->qs, 8, lo, hi);
        *d = b->d;
        return;
    }
    case BLK_Q5_0: {
        const qf_block_q5_0 *b = (const qf_block_q5_0 *)x + i;
        unpack_q5(b->qs, b->qh, 16, lo, hi);
        *d = b->d;
        return;
    }
    case BLK_IQ4_NL: {
        const qf_block_iq4_nl *b = (const qf_block_iq4_nl *)x + i;
        unpack_iq4_nl(b->qs, lo, hi);
        *d = b->d;
        return;
    }
    case BLK_Q4_1: {
        const qf_block_q4_1 *b = (const qf_block_q4_1 *)x + i;
        unpack_nibbles(b->qs, 0, lo, hi);
        *d = b->d;
        *m = b->m;
        return;
    }
    case BLK_Q5_1: {
        const qf_block_q5_1 *b = (const qf_block_q5_1 *)x + i;
        unpack_q5(b->qs, b->qh, 0, lo, hi);
        *d = b->d;
        *m = b->m;
        return;
    }
    }
}

/* The reference's decoding, q * d or q * d + m (never + 0, which would turn -0 into +0).
 * Bit-exact, with one freedom no quantizer's output reaches: where d and m are both NaN, which
 * of the two the add passes on is the compiler's choice (it commutes float +), here and in the
 * reference alike. */
static inline void dequantize_blocks(enum blk kind, const void *x, float *y, int64_t k)
{
    const bool affine = kind == BLK_Q4_1 || kind == BLK_Q5_1;
    for (int64_t i = 0; i < k / 32; i++, y += 32) {
        int8x16_t lo, hi;
        qf_half dh, mh;
        blk_unpack(kind, x, i, &lo, &hi, &dh, &mh);
        const float d = qf_neon_h2f(dh);
        if (affine) {
            qf_neon_store_affine(y, lo, d, qf_neon_h2f(mh), true);
            qf_neon_store_affine(y + 16, hi, d, qf_neon_h2f(mh), true);
        } else {
            qf_neon_store_scaled(y, lo, d);
            qf_neon_store_scaled(y + 16, hi, d);
        }
    }
}

/* acc + (float)(block i's integer dot) * dw * da, in four float lanes. */
static inline float32x4_t dot_step(enum blk kind, const void *w, const qf_block_q8_0 *a,
                                   int64_t i, float32x4_t acc)
{
    int8x16_t lo, hi;
    qf_half dh, mh;
    blk_unpack(kind, w, i, &lo, &hi, &dh, &mh);
    const float d = qf_neon_h2f(dh) * qf_neon_h2f(a[i].d);
    return vmlaq_n_f32(acc, vcvtq_f32_s32(dot32(lo, hi, a[i].qs)), d);
}

/* The symmetric kinds' dot with q8_0 activations: two accumulators, so consecutive blocks'
 * float adds do not wait on each other. */
static inline float dot_symmetric(enum blk kind, int64_t k, const void *w, const void *a)
{
    const int64_t nb = k / 32;
    float32x4_t s0 = vdupq_n_f32(0.0f), s1 = vdupq_n_f32(0.0f);
    int64_t i = 0;
    for (; i + 2 <= nb; i += 2) {
        s0 = dot_step(kind, w, a, i, s0);
        s1 = dot_step(kind, w, a, i + 1, s1);
    }
    if (i < nb)
        s0 = dot_step(kind, w, a, i, s0);
    return hsum_f32(vaddq_f32(s0, s1));
}

/* The _1 kinds' dot with q8_1 activations, block by block in the reference's order:
 * (dw * da) * sumi + m * s, whose two parts can nearly cancel, so the float steps are the
 * reference's own and the result is bit-identical to it. */
static inline float dot_affine(enum blk kind, int64_t k, const void *w, const void *a)
{
    const qf_block_q8_1 *ab = a;
    float sum = 0.0f;
    for (int64_t i = 0; i < k / 32; i++) {
        int8x16_t lo, hi;
        qf_half dh, mh;
        blk_unpack(kind, w, i, &lo, &hi, &dh, &mh);
        const float sumi = (float)vaddvq_s32(dot32(lo, hi, ab[i].qs));
        sum += qf_neon_h2f(dh) * qf_neon_h2f(ab[i].d) * sumi
             + qf_neon_h2f(mh) * qf_neon_h2f(ab[i].s);
    }
    return sum;
}

#define BLK_ROW_FNS(name, KIND, DOT)                                                        \
    static void dequantize_row_##name(const void *x, float *y, int64_t k)                   \
    {                                                                                       \
        dequantize_blocks(KIND, x, y, k);                                                   \
    }                                                                                       \
    static void vec_dot_##name(int64_t k, const void *w, const void *a, float *s)           \
    {                                                                                       \
        *s = DOT(KIND, k, w, a);                                                            \
    }
BLK_ROW_FNS(q8_0, BLK_Q8_0, dot_symmetric)
BLK_ROW_FNS(q4_0, BLK_Q4_0, dot_symmetric)
BLK_ROW_FNS(q5_0, BLK_Q5_0, dot_symmetric)
BLK_ROW_FNS(iq4_nl, BLK_IQ4_NL, dot_symmetric)
BLK_ROW_FNS(q4_1, BLK_Q4_1, dot_affine)
BLK_ROW_FNS(q5_1, BLK_Q5_1, dot_affine)
#undef BLK_ROW_FNS

static void dequantize_row_q8_1(const void *x, float *y, int64_t k)
{
    dequantize_blocks(BLK_Q8_1, x, y, k);
}

/* --- iq4_nl quantize: the reference's search with one block per vector lane ---------------- */

/* The codebook as floats, and its entries as int8 for table lookups. */
static float32x4_t cb_lookup(int32x4_t idx)
{
    /* byte 0 of each lane picks the entry; the other bytes pick entry 0 and are shifted out */
    const int8x16_t cb = vld1q_s8(qf_kvalues_iq4nl);
    const int32x4_t b = vreinterpretq_s32_s8(vqtbl1q_s8(cb, vreinterpretq_u8_s32(idx)));
    return vcvtq_f32_s32(vshrq_n_s32(vshlq_n_s32(b, 24), 24));
}

/* iq4_nl.c's nearest_index on four lanes: below the first entry 0, from the last 15 (and NaN
 * 15, as the reference's bisection gives it); otherwise the pair of entries around v, the
 * nearer winning and the upper on a tie, decided by the same two float differences. */
static int32x4_t nearest_index4(float32x4_t v)
{
    int32x4_t lo = vdupq_n_s32(0);
    for (int m = 1; m < 15; m++)   /* sorted: lo = the last entry <= v */
        lo = vsubq_s32(lo, vreinterpretq_s32_u32(vcgeq_f32(v, vdupq_n_f32(qf_kvalues_iq4nl[m]))));
    const int32x4_t hi = vaddq_s32(lo, vdupq_n_s32(1));
    const uint32x4_t lower = vcltq_f32(vsubq_f32(v, cb_lookup(lo)), vsubq_f32(cb_lookup(hi), v));
    int32x4_t idx = vbslq_s32(lower, lo, hi);
    const uint32x4_t low_end = vcleq_f32(v, vdupq_n_f32(qf_kvalues_iq4nl[0]));
    const uint32x4_t high_end = vcgeq_f32(v, vdupq_n_f32(qf_kvalues_iq4nl[15]));
    const uint32x4_t nan = vmvnq_u32(vceqq_f32(v, v));
    idx = vbslq_s32(low_end, vdupq_n_s32(0), idx);
    return vbslq_s32(vorrq_u32(high_end, nan), vdupq_n_s32(15), idx);
}

/* iq4_nl.c's fit_indices for four blocks (xt, wt transposed, 32 elements). */
static void iq4_fit4(const float *xt, const float *wt, float32x4_t id, float32x4_t *sumqx,
                     float32x4_t *sumq2)
{
    float32x4_t sx = vdupq_n_f32(0), s2 = vdupq_n_f32(0);
    for (int j = 0; j < 32; j++) {
        const float32x4_t x = vld1q_f32(xt + 4 * j);
        const float32x4_t q = cb_lookup(nearest_index4(vmulq_f32(id, x)));
        const float32x4_t wq = vmulq_f32(vld1q_f32(wt + 4 * j), q);
        sx = vaddq_f32(sx, vmulq_f32(wq, x));
        s2 = vaddq_f32(s2, vmulq_f32(wq, q));
    }
    *sumqx = sx;
    *sumq2 = s2;
}

/* Four blocks as iq4_nl.c's quantize_block with the search on (IQ4NL_NTRY = 7). */
static void quantize_iq4_nl_4(const float *x, qf_block_iq4_nl y[4])
{
    enum { NTRY = 7 };
    float xt[4 * 32], wt[4 * 32];
    qf_neon_transpose_in(x, 32, 32, xt);
    for (int j = 0; j < 4 * 32; j += 4) {
        const float32x4_t v = vld1q_f32(xt + j);
        vst1q_f32(wt + j, vmulq_f32(v, v));
    }
    float32x4_t amax;
    const float32x4_t max = qf_neon_signed_max4(xt, 32, &amax);
    const float32x4_t zero = vdupq_n_f32(0);
    const float32x4_t cb0 = vdupq_n_f32(qf_kvalues_iq4nl[0]);
    const float32x4_t d0 = vdivq_f32(vnegq_f32(max), cb0);
    float32x4_t sumqx, sumq2;
    iq4_fit4(xt, wt, vdivq_f32(vdupq_n_f32(1.0f), d0), &sumqx, &sumq2);
    float32x4_t scale = vbslq_f32(vcgtq_f32(sumq2, zero), vdivq_f32(sumqx, sumq2), zero);
    float32x4_t best = vmulq_f32(scale, sumqx);
    for (int itry = -NTRY; itry <= NTRY; itry++) {
        const float32x4_t id = vdivq_f32(vdupq_n_f32((float)(itry + qf_kvalues_iq4nl[0])), max);
        iq4_fit4(xt, wt, id, &sumqx, &sumq2);
        const uint32x4_t better = vandq_u32(vcgtq_f32(sumq2, zero),
                                            vcgtq_f32(vmulq_f32(sumqx, sumqx),
                                                      vmulq_f32(best, sumq2)));
        const float32x4_t s = vdivq_f32(sumqx, sumq2);
        scale = vbslq_f32(better, s, scale);
        best = vbslq_f32(better, vmulq_f32(s, sumqx), best);
    }
    /* a block below the threshold has scale 0 (and then every index 8) */
    scale = vbslq_f32(vcltq_f32(amax, vdupq_n_f32(1e-15f)), zero, scale);
    float sc[4];
    vst1q_f32(sc, scale);
    for (int r = 0; r < 4; r++)
        y[r].d = qf_fp32_to_fp16(sc[r]);
    const uint32x4_t nonzero = vmvnq_u32(vceqq_f32(scale, zero));
    const float32x4_t id = vbslq_f32(nonzero, vdivq_f32(vdupq_n_f32(1.0f), scale), zero);
    int32x4_t lv[32];
    for (int j = 0; j < 32; j++)
        lv[j] = nearest_index4(vmulq_f32(id, vld1q_f32(xt + 4 * j)));
    uint8_t L[4 * 32];
    qf_neon_transpose_out(lv, 32, 32, L);
    for (int r = 0; r < 4; r++) {
        const uint8x16_t lo = vld1q_u8(L + 32 * r), hi = vld1q_u8(L + 32 * r + 16);
        vst1q_u8(y[r].qs, vorrq_u8(lo, vshlq_n_u8(hi, 4)));
    }
}

static void quantize_row_iq4_nl(const float *x, void *vy, int64_t k)
{
    assert(k % QF_QK4_NL == 0);
    qf_block_iq4_nl *y = vy;
    const int64_t nb = k / QF_QK4_NL;
    int64_t b = 0;
    for (; b + 4 <= nb; b += 4)
        quantize_iq4_nl_4(x + b * QF_QK4_NL, y + b);
    /* blocks are independent with the search on, so the last ones can go one by one */
    for (; b < nb; b++)
        qf_quantize_row_iq4_nl_ref(x + b * QF_QK4_NL, y + b, QF_QK4_NL);
}

/* --- int8_pc: [f32 scale][k x int8], q = clamp(round(x / scale), -127, 127) ---------------- */

static void quantize_row_int8_pc(const float *x, void *y, int64_t k)
{
    if (k % 16 != 0) {                 /* never for a checked row (k % 32 == 0) */
        qf_quantize_row_int8_pc_ref(x, y, k);
        return;
    }
    float amax = 0.0f;
    float32x4_t va = vdupq_n_f32(0.0f);
    for (int64_t i = 0; i < k; i += 4)
        va = vmaxq_f32(va, vabsq_f32(vld1q_f32(x + i)));
    amax = vmaxvq_f32(va);
    const float scale = amax / 127.0f;
    if (!qf_neon_plain(amax) || scale == 0.0f) {
        /* NaN, infinity, all zero or a scale that underflows: the reference decides */
        qf_quantize_row_int8_pc_ref(x, y, k);
        return;
    }
    uint8_t *out = y;
    memcpy(out, &scale, sizeof scale);   /* little-endian, as the format stores it */
    int8_t *q = (int8_t *)(out + QF_INT8_PC_HEADER);
    const float32x4_t vs = vdupq_n_f32(scale);
    const int32x4_t lo = vdupq_n_s32(-127), hi = vdupq_n_s32(127);
    for (int64_t i = 0; i < k; i += 16) {
        int32x4_t r[4];
        for (int j = 0; j < 4; j++) {
            /* a true division, as the format says; FCVTAS saturates, so an x / scale beyond
             * int32 (scale subnormal) still clamps to +-127 as the reference's float clamp */
            const float32x4_t t = vdivq_f32(vld1q_f32(x + i + 4 * j), vs);
            r[j] = vminq_s32(vmaxq_s32(vcvtaq_s32_f32(t), lo), hi);
        }
        vst1q_s8(q + i, qf_neon_narrow_s8(r[0], r[1], r[2], r[3]));
    }
}

static float int8_pc_scale(const void *x)
{
    float scale;
    memcpy(&scale, x, sizeof scale);
    return scale;
}

static void dequantize_row_int8_pc(const void *x, float *y, int64_t k)
{
    if (k % 16 != 0) {
        qf_dequantize_row_int8_pc(x, y, k);
        return;
    }
    const float scale = int8_pc_scale(x);
    const int8_t *q = (const int8_t *)((const uint8_t *)x + QF_INT8_PC_HEADER);
    for (int64_t i = 0; i < k; i += 16)
        qf_neon_store_scaled(y + i, vld1q_s8(q + i), scale);
}

static void vec_dot_int8_pc(int64_t k, const void *w, const void *a, float *s)
{
    const int8_t *q = (const int8_t *)((const uint8_t *)w + QF_INT8_PC_HEADER);
    const qf_block_q8_0 *ab = a;
    float32x4_t sum = vdupq_n_f32(0.0f);
    for (int64_t b = 0; b < k / QF_QK8_0; b++, q += QF_QK8_0) {
        const int32x4_t p = dot32(vld1q_s8(q), vld1q_s8(q + 16), ab[b].qs);
        sum = vmlaq_n_f32(sum, vcvtq_f32_s32(p), qf_neon_h2f(ab[b].d));
    }
    *s = int8_pc_scale(w) * hsum_f32(sum);
}

/* --- int4_gG: [d f16][z][G/2 nibbles], q = clamp(round(x / d) + z, 0, 15) ------------------ */

#define INT4_HDR 3

/* One group of g; the reference takes NaN groups (whose codes depend on element order) and
 * the all-zero block. */
static void quantize_group_int4(const float *x, uint8_t *blk, int g)
{
    float amax, mx, mn;
    qf_neon_stats(x, g, &amax, &mx, &mn);
    const float lo = mn < 0.0f ? mn : 0.0f, hi = mx > 0.0f ? mx : 0.0f;
    const qf_half dh = qf_fp32_to_fp16((hi - lo) / 15.0f);
    const float d = qf_neon_h2f(dh);
    if (!qf_neon_plain(amax) || !(d > 0.0f) || !(d <= FLT_MAX)) {
        /* the reference quantizes the group alone: a row of one group */
        switch (g) {
        case 32: qf_quantize_row_int4_g32_ref(x, blk, g); break;
        case 64: qf_quantize_row_int4_g64_ref(x, blk, g); break;
        default: qf_quantize_row_int4_g128_ref(x, blk, g); break;
        }
        return;
    }
    /* -lo / d >= 0, finite, so round then clamp to 15 is the reference's round_clamp */
    float zf = roundf(-lo / d);
    const int z = zf > 15.0f ? 15 : (int)zf;
    blk[0] = (uint8_t)(dh & 0xff);
    blk[1] = (uint8_t)(dh >> 8);
    blk[2] = (uint8_t)z;
    const float32x4_t vd = vdupq_n_f32(d), vz = vdupq_n_f32((float)z);
    const float32x4_t zero = vdupq_n_f32(0.0f), top = vdupq_n_f32(15.0f);
    uint8x16_t lv[8];   /* levels of weights 16i .. 16i + 15 */
    for (int i = 0; i < g / 16; i++) {
        uint32x4_t q[4];
        for (int j = 0; j < 4; j++) {
            const float32x4_t t = vrndaq_f32(vdivq_f32(vld1q_f32(x + 16 * i + 4 * j), vd));
            q[j] = vcvtq_u32_f32(vminq_f32(vmaxq_f32(vaddq_f32(t, vz), zero), top));
        }
        lv[i] = qf_neon_narrow_u8(q[0], q[1], q[2], q[3]);
    }
    /* byte j pairs weight j with weight j + g/2 */
    for (int m = 0; m < g / 32; m++)
        vst1q_u8(blk + INT4_HDR + 16 * m, pack_nibbles(lv[m], lv[m + g / 32]));
}

static void quantize_row_int4(const float *x, void *y, int64_t k, int g)
{
    assert(k > 0 && k % g == 0);
    uint8_t *blk = y;
    for (int64_t b = 0; b < k / g; b++, x += g, blk += INT4_HDR + g / 2)
        quantize_group_int4(x, blk, g);
}

/* The reference's dequantizer for one group (a row of g weights). */
static void dequantize_group_ref(const uint8_t *blk, float *y, int g)
{
    switch (g) {
    case 32: qf_dequantize_row_int4_g32(blk, y, g); break;
    case 64: qf_dequantize_row_int4_g64(blk, y, g); break;
    default: qf_dequantize_row_int4_g128(blk, y, g); break;
    }
}

static void dequantize_row_int4(const void *x, float *y, int64_t k, int g)
{
    const uint8_t *blk = x;
    for (int64_t b = 0; b < k / g; b++, blk += INT4_HDR + g / 2, y += g) {
        if (blk[2] > 15) {   /* not a block the quantizer writes; q - z leaves int8 */
            dequantize_group_ref(blk, y, g);
            continue;
        }
        const float d = qf_neon_h2f((qf_half)(blk[0] | blk[1] << 8));
        const int8x16_t z = vdupq_n_s8((int8_t)blk[2]);
        for (int m = 0; m < g / 32; m++) {
            const uint8x16_t v = vld1q_u8(blk + INT4_HDR + 16 * m);
            const int8x16_t lo = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(v, vdupq_n_u8(0x0F))), z);
            const int8x16_t hi = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(v, 4)), z);
            qf_neon_store_scaled(y + 16 * m, lo, d);
            qf_neon_store_scaled(y + g / 2 + 16 * m, hi, d);
        }
    }
}

/* The reference's dot of one group with its g / 32 activation blocks. */
static float group_dot_ref(const uint8_t *blk, const qf_block_q8_0 *ab, int g)
{
    float s;
    switch (g) {
    case 32: qf_vec_dot_int4_g32_q8_0_ref(g, blk, ab, &s); break;
    case 64: qf_vec_dot_int4_g64_q8_0_ref(g, blk, ab, &s); break;
    default: qf_vec_dot_int4_g128_q8_0_ref(g, blk, ab, &s); break;
    }
    return s;
}

/* isum - z * asum of a 32-weight sub-block is the dot of (q - z) with the activations, which
 * fits int8 (-15..15), so one SDOT pair per sub-block does it. */
static void vec_dot_int4(int64_t k, const void *w, const void *a, float *s, int g)
{
    const uint8_t *blk = w;
    const qf_block_q8_0 *ab = a;
    float32x4_t sum = vdupq_n_f32(0.0f);
    for (int64_t b = 0; b < k / g; b++, blk += INT4_HDR + g / 2) {
        const float d = qf_neon_h2f((qf_half)(blk[0] | blk[1] << 8));
        if (blk[2] > 15) {   /* not a block the quantizer writes: q - z leaves int8 */
            sum = vsetq_lane_f32(vgetq_lane_f32(sum, 0) + group_dot_ref(blk, ab, g), sum, 0);
            ab += g / 32;
            continue;
        }
        const int8x16_t z = vdupq_n_s8((int8_t)blk[2]);
        int8x16_t lv[8];   /* levels - z of weights 16i .. 16i + 15 */
        for (int m = 0; m < g / 32; m++) {
            const uint8x16_t v = vld1q_u8(blk + INT4_HDR + 16 * m);
            lv[m] = vsubq_s8(vreinterpretq_s8_u8(vandq_u8(v, vdupq_n_u8(0x0F))), z);
            lv[m + g / 32] = vsubq_s8(vreinterpretq_s8_u8(vshrq_n_u8(v, 4)), z);
        }
        for (int sb = 0; sb < g / 32; sb++, ab++) {
            const int32x4_t p = dot32(lv[2 * sb], lv[2 * sb + 1], ab->qs);
            sum = vmlaq_n_f32(sum, vcvtq_f32_s32(p), d * qf_neon_h2f(ab->d));
        }
    }
    *s = hsum_f32(sum);
}

#define INT4_ROW_FNS(G)                                                                     \
    static void quantize_row_int4_g##G(const float *x, void *y, int64_t k)                  \
    {                                                                                       \
        quantize_row_int4(x, y, k, G);                                                      \
    }                                                                                       \
    static void dequantize_row_int4_g##G(const void *x, float *y, int64_t k)                \
    {                                                                                       \
        dequantize_row_int4(x, y, k, G);                                                    \
    }                                                                                       \
    static void vec_dot_int4_g##G(int64_t k, const void *w, const void *a, float *s)        \
    {                                                                                       \
        vec_dot_int4(k, w, a, s, G);                                                        \
    }
INT4_ROW_FNS(32)
INT4_ROW_FNS(64)
INT4_ROW_FNS(128)
#undef INT4_ROW_FNS

/* Only stores pointers: no NEON instruction runs here (qf_isa_fill.h). */
void qf_isa_fill_neon_legacy(qf_isa_kernels t[QF_FMT_COUNT])
{
    t[QF_FMT_Q8_0] = (qf_isa_kernels){ quantize_row_q8_0, dequantize_row_q8_0, vec_dot_q8_0 };
    t[QF_FMT_Q8_1] = (qf_isa_kernels){ quantize_row_q8_1, dequantize_row_q8_1, NULL };
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
