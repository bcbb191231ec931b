/* formats.cuh - how each weight format lives and decodes on the GPU: one struct per format,
 * shared by the repack, dequantize and matvec kernels (kernels.cu).
 *
 * Layout. The C formats are arrays of blocks (qf_blocks.h) whose sizes (18, 22, 110, 210
 * bytes...) leave most fields unaligned. On upload the backend rearranges the same bytes into
 * one array per field (FIELDS: offset and size of each field in the C block; array f holds
 * field f of every block of the matrix, block after block, each array 256-byte aligned), so
 * every field of every block sits at a multiple of its own size: the kernels read 32 weights'
 * bits with one or two aligned 16-byte loads. No byte is added or dropped: a pass reads exactly
 * the bytes the C layout has (int8_pc keeps its per-row scale in an array of its own).
 *
 * The unit of work is a group: 32 consecutive weights of a row, the span of one activation
 * block of 32 and of one dp4a pass (8 words of 4 bytes). A block holds QK / 32 groups; `sub`
 * is the group's index inside its block and `bi` the block's index in the matrix
 * (row * blocks per row + block in the row). Each format struct gives
 *   load(s, bi, sub, r)     the group's fields into registers (struct raw), aligned loads only;
 *   words(r, sub, w)        the 32 levels as unsigned bytes, 4 per word, in weight order (the
 *                           bit layout lives here and only here);
 *   dequant(r, sub, rs, y)  the 32 floats with the C reference decoder's operations in its
 *                           order, as explicit _rn intrinsics so that nvcc cannot fuse a
 *                           multiply-add: the floats are the reference's bits;
 *   dot(r, sub, a)          the group's share of w.a: integer sums by dp4a, then the block's
 *                           float terms (a tolerance, not bits: the order differs from C's).
 * Hot: load + dot run once per 32 weights in every matvec.
 */
#ifndef QF_CUDA_FORMATS_CUH
#define QF_CUDA_FORMATS_CUH

#include <cuda_fp16.h>
#include <stddef.h>
#include <stdint.h>

#include "qf_blocks.h"

namespace qfc {

/* ---- the field arrays ---------------------------------------------------------------------- */

constexpr int MAX_FIELDS = 4;

struct field {
    int off, size;                      /* in the C block */
};

/* The device arrays of one matrix: field f of block bi at f[f] + bi * size_f; rowhdr holds
 * per-row data (int8_pc's scale, 4 bytes a row), else nothing. */
struct soa {
    const uint8_t *f[MAX_FIELDS];
    const uint8_t *rowhdr;
};

/* Weights are read once per pass: stream them past the caches (evict first), so that the
 * activations, read by every row, stay. All addresses are aligned to the load's size. */
__device__ __forceinline__ uint4 ld16(const uint8_t *p)
{
    return __ldcs(reinterpret_cast<const uint4 *>(p));
}

__device__ __forceinline__ uint32_t ld4(const uint8_t *p)
{
    return __ldcs(reinterpret_cast<const unsigned int *>(p));
}

__device__ __forceinline__ uint32_t ld2(const uint8_t *p)
{
    return __ldcs(reinterpret_cast<const unsigned short *>(p));
}

__device__ __forceinline__ uint32_t ld1(const uint8_t *p)
{
    return __ldcs(p);
}

/* The binary16 in the low (hi = 0) or high half of v, as float (exact, as qf_fp16_to_fp32). */
__device__ __forceinline__ float half_of(uint32_t v, int hi = 0)
{
    return __half2float(__ushort_as_half((unsigned short)(hi ? v >> 16 : v & 0xffffu)));
}

/* Byte j of the 8 words. */
__device__ __forceinline__ int lvl(const uint32_t (&w)[8], int j)
{
    return (int)((w[j >> 2] >> (8 * (j & 3))) & 0xffu);
}

/* Byte k (run-time) of the 16 bytes of h. */
__device__ __forceinline__ int byte16(const uint4 &h, int k)
{
    const uint32_t v = k < 8 ? (k < 4 ? h.x : h.y) : (k < 12 ? h.z : h.w);
    return (int)((v >> (8 * (k & 3))) & 0xffu);
}

/* Spreads bits 0..3 of h to bit `to` of bytes 0..3. */
__device__ __forceinline__ uint32_t spread4(uint32_t h, int to)
{
    return ((h & 1u) | (h & 2u) << 7 | (h & 4u) << 14 | (h & 8u) << 21) << to;
}

__device__ __forceinline__ void words_of(const uint4 &a, const uint4 &b, uint32_t (&w)[8])
{
    w[0] = a.x; w[1] = a.y; w[2] = a.z; w[3] = a.w;
    w[4] = b.x; w[5] = b.y; w[6] = b.z; w[7] = b.w;
}

/* ---- the activation side -------------------------------------------------------------------- */

/* An activation row on the device as kernels.cu's quantizers write it: per group of 32 one
 * 48-byte record, the 32 int8 values, the float scale of the block they belong to (q8_K's
 * per-256 scale repeated for its 8 groups), q8_1's f16-rounded d * sum(q) (0 otherwise), and
 * the integer sums of the group's two halves (q8_K's bsums; the _0 formats' offsets too). */
struct act_rec {
    int8_t q[32];
    float  d, s;
    int    s0, s1;
};
static_assert(sizeof(act_rec) == 48, "three 16-byte loads");

struct act_group {
    int   a[8];
    float d, s;
    int   s0, s1;
};

__device__ __forceinline__ void act_load(const act_rec *v, int g, act_group &out)
{
    const int4 *p = reinterpret_cast<const int4 *>(v + g);
    const int4 a0 = __ldg(p), a1 = __ldg(p + 1), m = __ldg(p + 2);
    out.a[0] = a0.x; out.a[1] = a0.y; out.a[2] = a0.z; out.a[3] = a0.w;
    out.a[4] = a1.x; out.a[5] = a1.y; out.a[6] = a1.z; out.a[7] = a1.w;
    out.d = __int_as_float(m.x);
    out.s = __int_as_float(m.y);
    out.s0 = m.z;
    out.s1 = m.w;
}

/* Integer dot products of the 8 words with the activations: the whole group, or each half. */
__device__ __forceinline__ int dot8(const uint32_t (&w)[8], const act_group &a)
{
    int s = 0;
#pragma unroll
    for (int i = 0; i < 8; i++)
        s = __dp4a((int)w[i], a.a[i], s);
    return s;
}

__device__ __forceinline__ int dot4(const uint32_t (&w)[8], const act_group &a, int half)
{
    int s = 0;
#pragma unroll
    for (int i = 0; i < 4; i++)
        s = __dp4a((int)w[4 * half + i], a.a[4 * half + i], s);
    return s;
}

/* Formats whose scale is per row (int8_pc) multiply it in once per row; the rest return 1. */
struct no_row_scale {
    static constexpr int HDR = 0;       /* bytes before a row's first block in the C layout */
    __device__ static float row_scale(const soa &, int64_t) { return 1.0f; }
};

/* ---- legacy GGUF formats: 32 weights per block --------------------------------------------- */

/* Nibbles as q4_0 lays them out: byte j holds weight j (low) and weight j + 16 (high). */
__device__ __forceinline__ void nibbles16(const uint4 &q, uint32_t (&w)[8])
{
    const uint32_t v[4] = { q.x, q.y, q.z, q.w };
#pragma unroll
    for (int i = 0; i < 4; i++) {
        w[i] = v[i] & 0x0f0f0f0fu;
        w[4 + i] = (v[i] >> 4) & 0x0f0f0f0fu;
    }
}

/* The fifth bits of q5_0/q5_1: bit j of the little-endian qh is weight j's. */
__device__ __forceinline__ void fifth_bits(uint32_t h, uint32_t (&w)[8])
{
#pragma unroll
    for (int i = 0; i < 8; i++)
        w[i] |= spread4(h >> (4 * i), 4);
}

struct f_q8_0 : no_row_scale {                    /* d qs[32] */
    static constexpr int QK = 32, B = 34, NF = 2;
    static constexpr field FIELDS[NF] = { { 0, 2 }, { 2, 32 } };
    struct raw { uint4 q0, q1; uint32_t d; };
    __device__ static void load(const soa &s, int64_t bi, int, raw &r)
    {
        r.q0 = ld16(s.f[1] + bi * 32);
        r.q1 = ld16(s.f[1] + bi * 32 + 16);
        r.d = ld2(s.f[0] + bi * 2);
    }
    __device__ static void words(const raw &r, int, uint32_t (&w)[8]) { words_of(r.q0, r.q1, w); }
    __device__ static void dequant(const raw &r, int sub, float, float *y)
    {
        uint32_t w[8];
        words(r, sub, w);
        const float d = half_of(r.d);
#pragma unroll
        for (int j = 0; j < 32; j++)
            y[j] = __fmul_rn((float)(int8_t)lvl(w, j), d);
    }
    __device__ static float dot(const raw &r, int sub, const act_group &a)
    {
        uint32_t w[8];
        words(r, sub, w);
        return (float)dot8(w, a) * (half_of(r.d) * a.d);
    }
};

struct f_q4_0 : no_row_scale {                    /* d qs[16] */
    static constexpr int QK = 32, B = 18, NF = 2;
    static constexpr field FIELDS[NF] = { { 0, 2 }, { 2, 16 } };
    struct raw { uint4 q; uint32_t d; };
    __device__ static void load(const soa &s, int64_t bi, int, raw &r)
    {
        r.q = ld16(s.f[1] + bi * 16);
        r.d = ld2(s.f[0] + bi * 2);
    }
    __device__ static void words(const raw &r, int, uint32_t (&w)[8]) { nibbles16(r.q, w); }
    __device__ static void dequant(const raw &r, int sub, float, float *y)
    {
        uint32_t w[8];
        words(r, sub, w);
        const float d = half_of(r.d);
#pragma unroll
        for (int j = 0; j < 32; j++)
            y[j] = __fmul_rn((float)(lvl(w, j) - 8), d);
    }
    __device__ static float dot(const raw &r, int sub, const act_group &a)
    {
        uint32_t w[8];
        words(r, sub, w);
        return (float)(dot8(w, a) - 8 * (a.s0 + a.s1)) * (half_of(r.d) * a.d);
    }
};

struct f_q4_1 : no_row_scale {                    /* d m qs[16] */
    static constexpr int QK = 32, B = 20, NF = 2;
    static constexpr field FIELDS[NF] = { { 0, 4 }, { 4, 16 } };
    struct raw { uint4 q; uint32_t dm; };
    __device__ static void load(const soa &s, int64_t bi, int, raw &r)
    {
        r.q = ld16(s.f[1] + bi * 16);
        r.dm = ld4(s.f[0] + bi * 4);
    }
    __device__ static void words(const raw &r, int, uint32_t (&w)[8]) { nibbles16(r.q, w); }
    __device__ static void dequant(const raw &r, int sub, float, float *y)
    {
        uint32_t w[8];
        words(r, sub, w);
        const float d = half_of(r.dm), m = half_of(r.dm, 1);
#pragma unroll
        for (int j = 0; j < 32; j++)
            y[j] = __fadd_rn(__fmul_rn((float)lvl(w, j), d), m);
    }
    __device__ static float dot(const raw &r, int sub, const act_group &a)
    {
        uint32_t w[8];
        words(r, sub, w);
        return (float)dot8(w, a) * (half_of(r.dm) * a.d) + half_of(r.dm, 1) * a.s;
    }
};

struct f_q5_0 : no_row_scale {                    /* d qh[4] qs[16] */
    static constexpr int QK = 32, B = 22, NF = 3;
    static constexpr field FIELDS[NF] = { { 0, 2 }, { 2, 4 }, { 6, 16 } };
    struct raw { uint4 q; uint32_t qh, d; };
    __device__ static void load(const soa &s, int64_t bi, int, raw &r)
    {
        r.q = ld16(s.f[2] + bi * 16);
        r.qh = ld4(s.f[1] + bi * 4);
        r.d = ld2(s.f[0] + bi * 2);
    }
    __device__ static void words(const raw &r, int, uint32_t (&w)[8])
    {
        nibbles16(r.q, w);
        fifth_bits(r.qh, w);
    }
    __device__ static void dequant(const raw &r, int sub, float, float *y)
    {
        uint32_t w[8];
        words(r, sub, w);
        const float d = half_of(r.d);
#pragma unroll
        for (int j = 0; j < 32; j++)
            y[j] = __fmul_rn((float)(lvl(w, j) - 16), d);
    }
    __device__ static float dot(const raw &r, int sub, const act_group &a)
    {
        uint32_t w[8];
        words(r, sub, w);
        return (float)(dot8(w, a) - 16 * (a.s0 + a.s1)) * (half_of(r.d) * a.d);
    }
};

struct f_q5_1 : no_row_scale {                    /* d m qh[4] qs[16] */
    static constexpr int QK = 32, B = 24, NF = 3;
    static constexpr field FIELDS[NF] = { { 0, 4 }, { 4, 4 }, { 8, 16 } };
    struct raw { uint4 q; uint32_t qh, dm; };
    __device__ static void load(const soa &s, int64_t bi, int, raw &r)
    {
        r.q = ld16(s.f[2] + bi * 16);
        r.qh = ld4(s.f[1] + bi * 4);
        r.dm = ld4(s.f[0] + bi * 4);
    }
    __device__ static void words(const raw &r, int, uint32_t (&w)[8])
    {
        nibbles16(r.q, w);
        fifth_bits(r.qh, w);
    }
    __device__ static void dequant(const raw &r, int sub, float, float *y)
    {
        uint32_t w[8];
        words(r, sub, w);
        const float d = half_of(r.dm), m = half_of(r.dm, 1);
#pragma unroll
        for (int j = 0; j < 32; j++)
            y[j] = __fadd_rn(__fmul_rn((float)lvl(w, j), d), m);
    }
    __device__ static float dot(const raw &r, int sub, const act_group &a)
    {
        uint32_t w[8];
        words(r, sub, w);
        return (float)dot8(w, a) * (half_of(r.dm) * a.d) + half_of(r.dm, 1) * a.s;
    }
};

/* ---- quantfleet's integer formats ---------------------------------------------------------- */

/* int8_pc: a C row is [f32 scale][k int8]; here the scales are one array (rowhdr, 4 bytes a
 * row) and the values another, in blocks of 32. */
struct f_int8_pc {
    static constexpr int QK = 32, B = 32, HDR = QF_INT8_PC_HEADER, NF = 1;
    static constexpr field FIELDS[NF] = { { 0, 32 } };
    struct raw { uint4 q0, q1; };
    __device__ static float row_scale(const soa &s, int64_t row)
    {
        return __uint_as_float(ld4(s.rowhdr + row * 4));
    }
    __device__ static void load(const soa &s, int64_t bi, int, raw &r)
    {
        r.q0 = ld16(s.f[0] + bi * 32);
        r.q1 = ld16(s.f[0] + bi * 32 + 16);
    }
    __device__ static void words(const raw &r, int, uint32_t (&w)[8]) { words_of(r.q0, r.q1, w); }
    __device__ static void dequant(const raw &r, int sub, float rs, float *y)
    {
        uint32_t w[8];
        words(r, sub, w);
#pragma unroll
        for (int j = 0; j < 32; j++)
            y[j] = __fmul_rn(rs, (float)(int8_t)lvl(w, j));
    }
    /* The row scale is applied once per row by the kernel. */
    __device__ static float dot(const raw &r, int sub, const act_group &a)
    {
        uint32_t w[8];
        words(r, sub, w);
        return a.d * (float)dot8(w, a);
    }
};

/* int4_gG: [d f16][z u8][G/2 bytes], byte j holds weight j (low) and j + G/2 (high). Group
 * sub covers weights 32 sub..: for G = 32 that is q4_0's layout; for G >= 64 it is 32 bytes'
 * low or high nibbles, starting at byte 32 (sub % (G / 64)). */
template <int G>
struct f_int4 : no_row_scale {
    static constexpr int QK = G, B = 3 + G / 2, NF = 3;
    static constexpr field FIELDS[NF] = { { 0, 2 }, { 2, 1 }, { 3, G / 2 } };
    static constexpr int PER_HALF = G / 64 > 0 ? G / 64 : 1;   /* groups in each nibble half */
    struct raw { uint4 q0, q1; uint32_t d, z; };
    __device__ static void load(const soa &s, int64_t bi, int sub, raw &r)
    {
        const uint8_t *q = s.f[2] + bi * (G / 2);
        if constexpr (G == 32) {
            r.q0 = ld16(q);
        } else {
            r.q0 = ld16(q + 32 * (sub % PER_HALF));
            r.q1 = ld16(q + 32 * (sub % PER_HALF) + 16);
        }
        r.d = ld2(s.f[0] + bi * 2);
        r.z = ld1(s.f[1] + bi);
    }
    __device__ static void words(const raw &r, int sub, uint32_t (&w)[8])
    {
        if constexpr (G == 32) {
            nibbles16(r.q0, w);
        } else {
            words_of(r.q0, r.q1, w);
            const int shift = 4 * (sub / PER_HALF);
#pragma unroll
            for (int i = 0; i < 8; i++)
                w[i] = (w[i] >> shift) & 0x0f0f0f0fu;
        }
    }
    __device__ static void dequant(const raw &r, int sub, float, float *y)
    {
        uint32_t w[8];
        words(r, sub, w);
        const float d = half_of(r.d);
        const int z = (int)r.z;
#pragma unroll
        for (int j = 0; j < 32; j++)
            y[j] = __fmul_rn(d, (float)(lvl(w, j) - z));
    }
    __device__ static float dot(const raw &r, int sub, const act_group &a)
    {
        uint32_t w[8];
        words(r, sub, w);
        return (half_of(r.d) * a.d) * (float)(dot8(w, a) - (int)r.z * (a.s0 + a.s1));
    }
};

/* ---- K-quants: 256 weights per super-block, 8 groups ---------------------------------------- */

/* The 32 bytes a group's low bits are in, as 8 words shifted and masked: q2_K/q3_K's two bits of
 * weight 128h + 32s + l are bits 2s.. of qs[32h + l] (group sub: h = sub / 4, s = sub % 4);
 * q4_K/q5_K's four bits of weight 64p + 32t + l are nibble t of qs[32p + l]. */
__device__ __forceinline__ void bits_of(const uint4 &a, const uint4 &b, int shift, uint32_t mask,
                                        uint32_t (&w)[8])
{
    words_of(a, b, w);
#pragma unroll
    for (int i = 0; i < 8; i++)
        w[i] = (w[i] >> shift) & mask;
}

/* One bit of weight 32 sub + l is bit sub of m[l] (q3_K's hmask, q5_K's qh); it goes to bit
 * `to` of the level. */
__device__ __forceinline__ void high_bit(const uint4 &a, const uint4 &b, int sub, int to,
                                         uint32_t (&w)[8])
{
    uint32_t h[8];
    words_of(a, b, h);
#pragma unroll
    for (int i = 0; i < 8; i++)
        w[i] |= ((h[i] >> sub) & 0x01010101u) << to;
}

/* q4_K/q5_K's 6-bit scale and min of sub-block j (as the C unpack_k4_scale); the 12 scale
 * bytes are bytes 4..15 of the 16-byte header [d dmin scales]. */
__device__ __forceinline__ void k4_scale(const uint4 &hdr, int j, int &s, int &m)
{
    if (j < 4) {
        s = byte16(hdr, 4 + j) & 63;
        m = byte16(hdr, 8 + j) & 63;
    } else {
        s = (byte16(hdr, 8 + j) & 0xf) | ((byte16(hdr, j) >> 6) << 4);
        m = (byte16(hdr, 8 + j) >> 4) | ((byte16(hdr, 4 + j) >> 6) << 4);
    }
}

struct f_q2_K : no_row_scale {   /* scales[16] qs[64] d dmin */
    static constexpr int QK = 256, B = 84, NF = 3;
    static constexpr field FIELDS[NF] = { { 0, 16 }, { 16, 64 }, { 80, 4 } };
    struct raw { uint4 q0, q1; uint32_t sc, dm; };
    __device__ static void load(const soa &s, int64_t bi, int sub, raw &r)
    {
        const uint8_t *q = s.f[1] + bi * 64 + 32 * (sub / 4);
        r.q0 = ld16(q);
        r.q1 = ld16(q + 16);
        r.sc = ld2(s.f[0] + bi * 16 + 2 * sub);     /* the scales of its two sub-blocks */
        r.dm = ld4(s.f[2] + bi * 4);
    }
    __device__ static void words(const raw &r, int sub, uint32_t (&w)[8])
    {
        bits_of(r.q0, r.q1, 2 * (sub % 4), 0x03030303u, w);
    }
    __device__ static void dequant(const raw &r, int sub, float, float *y)
    {
        uint32_t w[8];
        words(r, sub, w);
        const float d = half_of(r.dm), dmin = half_of(r.dm, 1);
#pragma unroll
        for (int j = 0; j < 32; j++) {
            const int sc = (int)((r.sc >> (8 * (j / 16))) & 0xffu);
            const float dl = __fmul_rn(d, (float)(sc & 0xf));
            const float ml = __fmul_rn(dmin, (float)(sc >> 4));
            y[j] = __fsub_rn(__fmul_rn(dl, (float)lvl(w, j)), ml);
        }
    }
    __device__ static float dot(const raw &r, int sub, const act_group &a)
    {
        uint32_t w[8];
        words(r, sub, w);
        const int sc0 = (int)(r.sc & 0xffu), sc1 = (int)((r.sc >> 8) & 0xffu);
        const int isum = (sc0 & 0xf) * dot4(w, a, 0) + (sc1 & 0xf) * dot4(w, a, 1);
        const int msum = (sc0 >> 4) * a.s0 + (sc1 >> 4) * a.s1;
        return a.d * (half_of(r.dm) * (float)isum - half_of(r.dm, 1) * (float)msum);
    }
};

struct f_q3_K : no_row_scale {   /* hmask[32] qs[64] scales[12] d */
    static constexpr int QK = 256, B = 110, NF = 4;
    static constexpr field FIELDS[NF] = { { 0, 32 }, { 32, 64 }, { 96, 12 }, { 108, 2 } };
    /* sc: the group's two sub-block scales, unpacked at load time to keep registers few */
    struct raw { uint4 q0, q1, h0, h1; int sc0, sc1; uint32_t d; };
    __device__ static void load(const soa &s, int64_t bi, int sub, raw &r)
    {
        const uint8_t *q = s.f[1] + bi * 64 + 32 * (sub / 4);
        r.q0 = ld16(q);
        r.q1 = ld16(q + 16);
        r.h0 = ld16(s.f[0] + bi * 32);
        r.h1 = ld16(s.f[0] + bi * 32 + 16);
        const uint8_t *sc = s.f[2] + bi * 12;
        const uint32_t s0 = ld4(sc), s1 = ld4(sc + 4), s2 = ld4(sc + 8);
        r.sc0 = scale(s0, s1, s2, 2 * sub);
        r.sc1 = scale(s0, s1, s2, 2 * sub + 1);
        r.d = ld2(s.f[3] + bi * 2);
    }
    /* levels 0..7: the 2-bit part plus 4 where the hmask bit is set; the value is that - 4 */
    __device__ static void words(const raw &r, int sub, uint32_t (&w)[8])
    {
        bits_of(r.q0, r.q1, 2 * (sub % 4), 0x03030303u, w);
        high_bit(r.h0, r.h1, sub, 2, w);
    }
    /* 6-bit scale of sub-block j of 16, minus 32 (as unpack_q3_scale - 32): its low nibble is
     * nibble j / 8 of byte j % 8, its high two bits bits 2 (j / 4).. of byte 8 + j % 4 */
    __device__ static int scale(uint32_t s0, uint32_t s1, uint32_t s2, int j)
    {
        const uint32_t lo_word = j % 8 < 4 ? s0 : s1;
        const int lo = (int)((lo_word >> (8 * (j % 4) + 4 * (j / 8))) & 0xfu);
        const int hi = (int)((s2 >> (8 * (j % 4) + 2 * (j / 4))) & 3u);
        return (lo | hi << 4) - 32;
    }
    __device__ static void dequant(const raw &r, int sub, float, float *y)
    {
        uint32_t w[8];
        words(r, sub, w);
        const float d_all = half_of(r.d);
#pragma unroll
        for (int j = 0; j < 32; j++) {
            const float dl = __fmul_rn(d_all, (float)(j < 16 ? r.sc0 : r.sc1));
            y[j] = __fmul_rn(dl, (float)(lvl(w, j) - 4));
        }
    }
    __device__ static float dot(const raw &r, int sub, const act_group &a)
    {
        uint32_t w[8];
        words(r, sub, w);
        const int isum = r.sc0 * (dot4(w, a, 0) - 4 * a.s0) + r.sc1 * (dot4(w, a, 1) - 4 * a.s1);
        return (half_of(r.d) * a.d) * (float)isum;
    }
};

struct f_q4_K : no_row_scale {   /* [d dmin scales[12]] qs[128] */
    static constexpr int QK = 256, B = 144, NF = 2;
    static constexpr field FIELDS[NF] = { { 0, 16 }, { 16, 128 } };
    /* dm: d and dmin; sc, m: the group's scale and min, unpacked at load time */
    struct raw { uint4 q0, q1; uint32_t dm; int sc, m; };
    __device__ static void load(const soa &s, int64_t bi, int sub, raw &r)
    {
        const uint8_t *q = s.f[1] + bi * 128 + 32 * (sub / 2);
        r.q0 = ld16(q);
        r.q1 = ld16(q + 16);
        const uint4 hdr = ld16(s.f[0] + bi * 16);
        r.dm = hdr.x;
        k4_scale(hdr, sub, r.sc, r.m);
    }
    __device__ static void words(const raw &r, int sub, uint32_t (&w)[8])
    {
        bits_of(r.q0, r.q1, 4 * (sub % 2), 0x0f0f0f0fu, w);
    }
    __device__ static void dequant(const raw &r, int sub, float, float *y)
    {
        uint32_t w[8];
        words(r, sub, w);
        const float dl = __fmul_rn(half_of(r.dm), (float)r.sc);
        const float ml = __fmul_rn(half_of(r.dm, 1), (float)r.m);
#pragma unroll
        for (int j = 0; j < 32; j++)
            y[j] = __fsub_rn(__fmul_rn(dl, (float)lvl(w, j)), ml);
    }
    __device__ static float dot(const raw &r, int sub, const act_group &a)
    {
        uint32_t w[8];
        words(r, sub, w);
        return a.d * (half_of(r.dm) * (float)(r.sc * dot8(w, a)) -
                      half_of(r.dm, 1) * (float)(r.m * (a.s0 + a.s1)));
    }
};

struct f_q5_K : no_row_scale {   /* [d dmin scales[12]] qh[32] qs[128] */
    static constexpr int QK = 256, B = 176, NF = 3;
    static constexpr field FIELDS[NF] = { { 0, 16 }, { 16, 32 }, { 48, 128 } };
    struct raw { uint4 h0, h1, q0, q1; uint32_t dm; int sc, m; };    /* as q4_K's */
    __device__ static void load(const soa &s, int64_t bi, int sub, raw &r)
    {
        const uint8_t *q = s.f[2] + bi * 128 + 32 * (sub / 2);
        r.q0 = ld16(q);
        r.q1 = ld16(q + 16);
        r.h0 = ld16(s.f[1] + bi * 32);
        r.h1 = ld16(s.f[1] + bi * 32 + 16);
        const uint4 hdr = ld16(s.f[0] + bi * 16);
        r.dm = hdr.x;
        k4_scale(hdr, sub, r.sc, r.m);
    }
    __device__ static void words(const raw &r, int sub, uint32_t (&w)[8])
    {
        bits_of(r.q0, r.q1, 4 * (sub % 2), 0x0f0f0f0fu, w);
        high_bit(r.h0, r.h1, sub, 4, w);
    }
    __device__ static void dequant(const raw &r, int sub, float, float *y)
    {
        uint32_t w[8];
        words(r, sub, w);
        const float dl = __fmul_rn(half_of(r.dm), (float)r.sc);
        const float ml = __fmul_rn(half_of(r.dm, 1), (float)r.m);
#pragma unroll
        for (int j = 0; j < 32; j++)
            y[j] = __fsub_rn(__fmul_rn(dl, (float)lvl(w, j)), ml);
    }
    __device__ static float dot(const raw &r, int sub, const act_group &a)
    {
        uint32_t w[8];
        words(r, sub, w);
        return a.d * (half_of(r.dm) * (float)(r.sc * dot8(w, a)) -
                      half_of(r.dm, 1) * (float)(r.m * (a.s0 + a.s1)));
    }
};

struct f_q6_K : no_row_scale {   /* ql[128] qh[64] scales[16] (int8) d */
    static constexpr int QK = 256, B = 210, NF = 4;
    static constexpr field FIELDS[NF] = { { 0, 128 }, { 128, 64 }, { 192, 16 }, { 208, 2 } };
    struct raw { uint4 l0, l1, h0, h1; uint32_t sc, d; };
    /* weight 128h + 32t + l: low nibble t / 2 of ql[64h + 32(t % 2) + l], high two bits
     * 2t.. of qh[32h + l]; levels 0..63, the value is that - 32 */
    __device__ static void load(const soa &s, int64_t bi, int sub, raw &r)
    {
        const int h = sub / 4, t = sub % 4;
        const uint8_t *ql = s.f[0] + bi * 128 + 64 * h + 32 * (t % 2);
        const uint8_t *qh = s.f[1] + bi * 64 + 32 * h;
        r.l0 = ld16(ql);
        r.l1 = ld16(ql + 16);
        r.h0 = ld16(qh);
        r.h1 = ld16(qh + 16);
        r.sc = ld2(s.f[2] + bi * 16 + 2 * sub);
        r.d = ld2(s.f[3] + bi * 2);
    }
    __device__ static void words(const raw &r, int sub, uint32_t (&w)[8])
    {
        const int t = sub % 4;
        uint32_t hi[8];
        bits_of(r.l0, r.l1, 4 * (t / 2), 0x0f0f0f0fu, w);
        bits_of(r.h0, r.h1, 2 * t, 0x03030303u, hi);
#pragma unroll
        for (int i = 0; i < 8; i++)
            w[i] |= hi[i] << 4;
    }
    __device__ static void dequant(const raw &r, int sub, float, float *y)
    {
        uint32_t w[8];
        words(r, sub, w);
        const float d = half_of(r.d);
#pragma unroll
        for (int j = 0; j < 32; j++) {
            const int sc = (int8_t)(uint8_t)(r.sc >> (8 * (j / 16)));
            y[j] = __fmul_rn(__fmul_rn(d, (float)sc), (float)(lvl(w, j) - 32));
        }
    }
    __device__ static float dot(const raw &r, int sub, const act_group &a)
    {
        uint32_t w[8];
        words(r, sub, w);
        const int isum = (int8_t)(uint8_t)r.sc * (dot4(w, a, 0) - 32 * a.s0)
                       + (int8_t)(uint8_t)(r.sc >> 8) * (dot4(w, a, 1) - 32 * a.s1);
        return (half_of(r.d) * a.d) * (float)isum;
    }
};

/* The field tables above are the C layouts' offsets and sizes. */
static_assert(f_q8_0::B == sizeof(qf_block_q8_0) && offsetof(qf_block_q8_0, qs) == 2, "q8_0");
static_assert(f_q4_0::B == sizeof(qf_block_q4_0) && offsetof(qf_block_q4_0, qs) == 2, "q4_0");
static_assert(f_q4_1::B == sizeof(qf_block_q4_1) && offsetof(qf_block_q4_1, qs) == 4, "q4_1");
static_assert(f_q5_0::B == sizeof(qf_block_q5_0) && offsetof(qf_block_q5_0, qs) == 6, "q5_0");
static_assert(f_q5_1::B == sizeof(qf_block_q5_1) && offsetof(qf_block_q5_1, qs) == 8, "q5_1");
static_assert(f_int4<32>::B == sizeof(qf_block_int4_g32), "int4_g32");
static_assert(f_int4<64>::B == sizeof(qf_block_int4_g64), "int4_g64");
static_assert(f_int4<128>::B == sizeof(qf_block_int4_g128), "int4_g128");
static_assert(f_q2_K::B == sizeof(qf_block_q2_K) && offsetof(qf_block_q2_K, qs) == 16 &&
              offsetof(qf_block_q2_K, d) == 80, "q2_K");
static_assert(f_q3_K::B == sizeof(qf_block_q3_K) && offsetof(qf_block_q3_K, qs) == 32 &&
              offsetof(qf_block_q3_K, scales) == 96 && offsetof(qf_block_q3_K, d) == 108, "q3_K");
static_assert(f_q4_K::B == sizeof(qf_block_q4_K) && offsetof(qf_block_q4_K, scales) == 4 &&
              offsetof(qf_block_q4_K, qs) == 16, "q4_K");
static_assert(f_q5_K::B == sizeof(qf_block_q5_K) && offsetof(qf_block_q5_K, qh) == 16 &&
              offsetof(qf_block_q5_K, qs) == 48, "q5_K");
static_assert(f_q6_K::B == sizeof(qf_block_q6_K) && offsetof(qf_block_q6_K, qh) == 128 &&
              offsetof(qf_block_q6_K, scales) == 192 && offsetof(qf_block_q6_K, d) == 208, "q6_K");

} /* namespace qfc */

#endif
