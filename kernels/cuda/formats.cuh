/* formats.cuh - how each weight format decodes on the GPU: one struct per format, shared by
 * the dequantize and matvec kernels (kernels.cu).
 *
 * The unit of work is a group: 32 consecutive weights of a row, the span of one activation
 * block of 32 and of one dp4a pass (8 words of 4 bytes). A format block holds QK / 32 groups
 * (1 for the 32-weight formats, 2..8 for int4_g64/g128 and the K-quants); `sub` below is the
 * group's index inside its block. Each format struct gives
 *   words(b, sub, w)      the group's 32 levels as unsigned bytes, 4 per word, in weight order
 *                         (the bit layout lives here and only here);
 *   dequant(b, sub, rs, y) the group's 32 floats, computed with the C reference decoder's
 *                         operations in its order with explicit _rn intrinsics, so that nvcc
 *                         cannot fuse a multiply-add and the floats are the reference's bits;
 *   dot(b, sub, a)        the group's contribution to w.a, integer sums by dp4a, then the
 *                         block's float terms (tolerance, not bits: the order differs).
 * b points at the block (in shared or global memory, any alignment: the helpers read aligned
 * words and shift, so up to 4 bytes past a block are read and must be readable). Layouts are
 * those of qf_blocks.h, whose sizes are checked here against the constants the kernels use.
 * Hot: dot runs once per 32 weights in every matvec.
 */
#ifndef QF_CUDA_FORMATS_CUH
#define QF_CUDA_FORMATS_CUH

#include <cuda_fp16.h>
#include <stddef.h>
#include <stdint.h>

#include "qf_blocks.h"

namespace qfc {

/* ---- loads of any alignment ----------------------------------------------------------------- */

/* N little-endian words starting at byte p: N + 1 aligned loads and a funnel shift each. */
template <int N>
__device__ __forceinline__ void ldw(const uint8_t *p, uint32_t (&out)[N])
{
    /* stepping back from p itself (not from an integer) keeps p's address space visible to
     * the compiler, so a tile in shared memory is read with shared loads */
    const unsigned mis = unsigned(reinterpret_cast<uintptr_t>(p) & 3);
    const uint32_t *w = reinterpret_cast<const uint32_t *>(p - mis);
    const unsigned sh = mis * 8;
    uint32_t prev = w[0];
#pragma unroll
    for (int i = 0; i < N; i++) {
        const uint32_t next = w[i + 1];
        out[i] = __funnelshift_r(prev, next, sh);
        prev = next;
    }
}

__device__ __forceinline__ uint32_t ld32(const uint8_t *p)
{
    uint32_t w[1];
    ldw<1>(p, w);
    return w[0];
}

/* The binary16 at p, as float (exact, as qf_fp16_to_fp32). */
__device__ __forceinline__ float ldh(const uint8_t *p)
{
    return __half2float(__ushort_as_half((unsigned short)(ld32(p) & 0xffffu)));
}

/* Byte j of the 8 words. */
__device__ __forceinline__ int lvl(const uint32_t (&w)[8], int j)
{
    return (int)((w[j >> 2] >> (8 * (j & 3))) & 0xffu);
}

/* Spreads bits 0..3 of h to bit `to` of bytes 0..3. */
__device__ __forceinline__ uint32_t spread4(uint32_t h, int to)
{
    return ((h & 1u) | (h & 2u) << 7 | (h & 4u) << 14 | (h & 8u) << 21) << to;
}

/* ---- the activation side -------------------------------------------------------------------- */

/* An activation row on the device, in the layout kernels.cu's quantizers write: int8 values
 * (16-byte aligned), and per group of 32 the float scale of the block they belong to (q8_K's
 * per-256 scale repeated for its 8 groups), q8_1's f16-rounded d * sum(q), and the integer
 * sums of the group's two halves (q8_K's bsums; the _0 formats' offsets need them too). */
struct act_view {
    const int8_t *q;
    const float  *d;
    const float  *s;
    const int2   *sum;
};

/* One group's activations as the dot products take them. */
struct act_group {
    int   a[8];
    float d, s;
    int   s0, s1;      /* sums of a's first and last 16 values */
};

__device__ __forceinline__ void act_load(const act_view &v, int g, act_group &out)
{
    const int4 *p = reinterpret_cast<const int4 *>(v.q + 32 * (size_t)g);
    const int4 a0 = __ldg(p), a1 = __ldg(p + 1);
    out.a[0] = a0.x; out.a[1] = a0.y; out.a[2] = a0.z; out.a[3] = a0.w;
    out.a[4] = a1.x; out.a[5] = a1.y; out.a[6] = a1.z; out.a[7] = a1.w;
    out.d = __ldg(v.d + g);
    out.s = __ldg(v.s + g);
    const int2 s = __ldg(v.sum + g);
    out.s0 = s.x;
    out.s1 = s.y;
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

/* Formats whose scale is per row, not per block, multiply it in here; the rest return 1. */
struct no_row_scale {
    static constexpr int HDR = 0;       /* bytes before a row's first block */
    __device__ static float row_scale(const uint8_t *) { return 1.0f; }
};

/* ---- legacy GGUF formats: 32 weights per block ------------------------------------------------ */

/* Nibbles as q4_0 lays them out: byte j holds weight j (low) and weight j + 16 (high). */
__device__ __forceinline__ void nibbles16(const uint8_t *qs, uint32_t (&w)[8])
{
    uint32_t v[4];
    ldw<4>(qs, v);
#pragma unroll
    for (int i = 0; i < 4; i++) {
        w[i] = v[i] & 0x0f0f0f0fu;
        w[4 + i] = (v[i] >> 4) & 0x0f0f0f0fu;
    }
}

/* The fifth bits of q5_0/q5_1: bit j of the little-endian qh is weight j's. */
__device__ __forceinline__ void fifth_bits(const uint8_t *qh, uint32_t (&w)[8])
{
    const uint32_t h = ld32(qh);
#pragma unroll
    for (int i = 0; i < 8; i++)
        w[i] |= spread4(h >> (4 * i), 4);
}

struct f_q8_0 : no_row_scale {
    static constexpr int QK = 32, B = 34;
    __device__ static void words(const uint8_t *b, int, uint32_t (&w)[8]) { ldw<8>(b + 2, w); }
    __device__ static void dequant(const uint8_t *b, int sub, float, float *y)
    {
        uint32_t w[8];
        words(b, sub, w);
        const float d = ldh(b);
#pragma unroll
        for (int j = 0; j < 32; j++)
            y[j] = __fmul_rn((float)(int8_t)lvl(w, j), d);
    }
    __device__ static float dot(const uint8_t *b, int sub, const act_group &a)
    {
        uint32_t w[8];
        words(b, sub, w);
        return (float)dot8(w, a) * (ldh(b) * a.d);
    }
};

struct f_q4_0 : no_row_scale {
    static constexpr int QK = 32, B = 18;
    __device__ static void words(const uint8_t *b, int, uint32_t (&w)[8]) { nibbles16(b + 2, w); }
    __device__ static void dequant(const uint8_t *b, int sub, float, float *y)
    {
        uint32_t w[8];
        words(b, sub, w);
        const float d = ldh(b);
#pragma unroll
        for (int j = 0; j < 32; j++)
            y[j] = __fmul_rn((float)(lvl(w, j) - 8), d);
    }
    __device__ static float dot(const uint8_t *b, int sub, const act_group &a)
    {
        uint32_t w[8];
        words(b, sub, w);
        return (float)(dot8(w, a) - 8 * (a.s0 + a.s1)) * (ldh(b) * a.d);
    }
};

struct f_q4_1 : no_row_scale {
    static constexpr int QK = 32, B = 20;
    __device__ static void words(const uint8_t *b, int, uint32_t (&w)[8]) { nibbles16(b + 4, w); }
    __device__ static void dequant(const uint8_t *b, int sub, float, float *y)
    {
        uint32_t w[8];
        words(b, sub, w);
        const float d = ldh(b), m = ldh(b + 2);
#pragma unroll
        for (int j = 0; j < 32; j++)
            y[j] = __fadd_rn(__fmul_rn((float)lvl(w, j), d), m);
    }
    __device__ static float dot(const uint8_t *b, int sub, const act_group &a)
    {
        uint32_t w[8];
        words(b, sub, w);
        return (float)dot8(w, a) * (ldh(b) * a.d) + ldh(b + 2) * a.s;
    }
};

struct f_q5_0 : no_row_scale {
    static constexpr int QK = 32, B = 22;
    __device__ static void words(const uint8_t *b, int, uint32_t (&w)[8])
    {
        nibbles16(b + 6, w);
        fifth_bits(b + 2, w);
    }
    __device__ static void dequant(const uint8_t *b, int sub, float, float *y)
    {
        uint32_t w[8];
        words(b, sub, w);
        const float d = ldh(b);
#pragma unroll
        for (int j = 0; j < 32; j++)
            y[j] = __fmul_rn((float)(lvl(w, j) - 16), d);
    }
    __device__ static float dot(const uint8_t *b, int sub, const act_group &a)
    {
        uint32_t w[8];
        words(b, sub, w);
        return (float)(dot8(w, a) - 16 * (a.s0 + a.s1)) * (ldh(b) * a.d);
    }
};

struct f_q5_1 : no_row_scale {
    static constexpr int QK = 32, B = 24;
    __device__ static void words(const uint8_t *b, int, uint32_t (&w)[8])
    {
        nibbles16(b + 8, w);
        fifth_bits(b + 4, w);
    }
    __device__ static void dequant(const uint8_t *b, int sub, float, float *y)
    {
        uint32_t w[8];
        words(b, sub, w);
        const float d = ldh(b), m = ldh(b + 2);
#pragma unroll
        for (int j = 0; j < 32; j++)
            y[j] = __fadd_rn(__fmul_rn((float)lvl(w, j), d), m);
    }
    __device__ static float dot(const uint8_t *b, int sub, const act_group &a)
    {
        uint32_t w[8];
        words(b, sub, w);
        return (float)dot8(w, a) * (ldh(b) * a.d) + ldh(b + 2) * a.s;
    }
};

/* ---- quantfleet's integer formats ---------------------------------------------------------- */

/* int8_pc: a row is [f32 scale][k int8]; the 32-byte "blocks" are the row's values. */
struct f_int8_pc {
    static constexpr int QK = 32, B = 32, HDR = QF_INT8_PC_HEADER;
    __device__ static float row_scale(const uint8_t *row)
    {
        return __uint_as_float(ld32(row));
    }
    __device__ static void words(const uint8_t *b, int, uint32_t (&w)[8]) { ldw<8>(b, w); }
    __device__ static void dequant(const uint8_t *b, int sub, float rs, float *y)
    {
        uint32_t w[8];
        words(b, sub, w);
#pragma unroll
        for (int j = 0; j < 32; j++)
            y[j] = __fmul_rn(rs, (float)(int8_t)lvl(w, j));
    }
    /* The row scale is applied once per row by the kernel. */
    __device__ static float dot(const uint8_t *b, int sub, const act_group &a)
    {
        uint32_t w[8];
        words(b, sub, w);
        return a.d * (float)dot8(w, a);
    }
};

/* int4_gG: [d f16][z u8][G/2 bytes], byte j holds weight j (low) and j + G/2 (high). Group
 * sub covers weights 32 sub..: for G = 32 that is q4_0's layout; for G >= 64 it is 32 bytes'
 * low or high nibbles, starting at byte 32 (sub % (G / 64)). */
template <int G>
struct f_int4 : no_row_scale {
    static constexpr int QK = G, B = 3 + G / 2;
    __device__ static void words(const uint8_t *b, int sub, uint32_t (&w)[8])
    {
        if constexpr (G == 32) {
            nibbles16(b + 3, w);
        } else {
            constexpr int per_half = G / 64;     /* groups in each half of the nibbles */
            const int shift = 4 * (sub / per_half);
            ldw<8>(b + 3 + 32 * (sub % per_half), w);
#pragma unroll
            for (int i = 0; i < 8; i++)
                w[i] = (w[i] >> shift) & 0x0f0f0f0fu;
        }
    }
    __device__ static void dequant(const uint8_t *b, int sub, float, float *y)
    {
        uint32_t w[8];
        words(b, sub, w);
        const float d = ldh(b);
        const int z = b[2];
#pragma unroll
        for (int j = 0; j < 32; j++)
            y[j] = __fmul_rn(d, (float)(lvl(w, j) - z));
    }
    __device__ static float dot(const uint8_t *b, int sub, const act_group &a)
    {
        uint32_t w[8];
        words(b, sub, w);
        return (ldh(b) * a.d) * (float)(dot8(w, a) - (int)b[2] * (a.s0 + a.s1));
    }
};

/* ---- K-quants: 256 weights per super-block, 8 groups ---------------------------------------- */

/* q2_K/q3_K's two bits of weight 128h + 32s + l are bits 2s.. of qs[32h + l]: group sub is
 * h = sub / 4, s = sub % 4. */
__device__ __forceinline__ void two_bits(const uint8_t *qs, int sub, uint32_t (&w)[8])
{
    ldw<8>(qs + 32 * (sub / 4), w);
    const int shift = 2 * (sub % 4);
#pragma unroll
    for (int i = 0; i < 8; i++)
        w[i] = (w[i] >> shift) & 0x03030303u;
}

/* q4_K/q5_K's four bits of weight 64p + 32t + l are nibble t of qs[32p + l]. */
__device__ __forceinline__ void four_bits(const uint8_t *qs, int sub, uint32_t (&w)[8])
{
    ldw<8>(qs + 32 * (sub / 2), w);
    const int shift = 4 * (sub % 2);
#pragma unroll
    for (int i = 0; i < 8; i++)
        w[i] = (w[i] >> shift) & 0x0f0f0f0fu;
}

/* One bit of weight 32 sub + l is bit sub of m[l] (q3_K's hmask, q5_K's qh); it goes to bit
 * `to` of the level. */
__device__ __forceinline__ void high_bit(const uint8_t *m, int sub, int to, uint32_t (&w)[8])
{
    uint32_t h[8];
    ldw<8>(m, h);
#pragma unroll
    for (int i = 0; i < 8; i++)
        w[i] |= ((h[i] >> sub) & 0x01010101u) << to;
}

/* q4_K/q5_K's 6-bit scale and min of sub-block j (as the C unpack_k4_scale). */
__device__ __forceinline__ void k4_scale(const uint8_t *sc, int j, int &s, int &m)
{
    if (j < 4) {
        s = sc[j] & 63;
        m = sc[j + 4] & 63;
    } else {
        s = (sc[j + 4] & 0xf) | ((sc[j - 4] >> 6) << 4);
        m = (sc[j + 4] >> 4) | ((sc[j] >> 6) << 4);
    }
}

/* q3_K's 6-bit scale of sub-block j of 16, minus 32 (as unpack_q3_scale - 32). */
__device__ __forceinline__ int q3_scale(const uint8_t *sc, int j)
{
    const int lo = (sc[j % 8] >> (4 * (j / 8))) & 0xf;
    const int hi = (sc[8 + j % 4] >> (2 * (j / 4))) & 3;
    return (lo | hi << 4) - 32;
}

struct f_q2_K : no_row_scale {   /* scales[16] qs[64] d dmin */
    static constexpr int QK = 256, B = 84;
    __device__ static void words(const uint8_t *b, int sub, uint32_t (&w)[8])
    {
        two_bits(b + 16, sub, w);
    }
    __device__ static void dequant(const uint8_t *b, int sub, float, float *y)
    {
        uint32_t w[8];
        words(b, sub, w);
        const float d = ldh(b + 80), dmin = ldh(b + 82);
#pragma unroll
        for (int j = 0; j < 32; j++) {
            const int sc = b[2 * sub + j / 16];
            const float dl = __fmul_rn(d, (float)(sc & 0xf)), ml = __fmul_rn(dmin, (float)(sc >> 4));
            y[j] = __fsub_rn(__fmul_rn(dl, (float)lvl(w, j)), ml);
        }
    }
    __device__ static float dot(const uint8_t *b, int sub, const act_group &a)
    {
        uint32_t w[8];
        words(b, sub, w);
        const int sc0 = b[2 * sub], sc1 = b[2 * sub + 1];
        const int isum = (sc0 & 0xf) * dot4(w, a, 0) + (sc1 & 0xf) * dot4(w, a, 1);
        const int msum = (sc0 >> 4) * a.s0 + (sc1 >> 4) * a.s1;
        return a.d * (ldh(b + 80) * (float)isum - ldh(b + 82) * (float)msum);
    }
};

struct f_q3_K : no_row_scale {   /* hmask[32] qs[64] scales[12] d */
    static constexpr int QK = 256, B = 110;
    /* levels 0..7: the 2-bit part plus 4 where the hmask bit is set; the value is that - 4 */
    __device__ static void words(const uint8_t *b, int sub, uint32_t (&w)[8])
    {
        two_bits(b + 32, sub, w);
        high_bit(b, sub, 2, w);
    }
    __device__ static void dequant(const uint8_t *b, int sub, float, float *y)
    {
        uint32_t w[8];
        words(b, sub, w);
        const float d_all = ldh(b + 108);
#pragma unroll
        for (int j = 0; j < 32; j++) {
            const float dl = __fmul_rn(d_all, (float)q3_scale(b + 96, 2 * sub + j / 16));
            y[j] = __fmul_rn(dl, (float)(lvl(w, j) - 4));
        }
    }
    __device__ static float dot(const uint8_t *b, int sub, const act_group &a)
    {
        uint32_t w[8];
        words(b, sub, w);
        const int isum = q3_scale(b + 96, 2 * sub) * (dot4(w, a, 0) - 4 * a.s0)
                       + q3_scale(b + 96, 2 * sub + 1) * (dot4(w, a, 1) - 4 * a.s1);
        return (ldh(b + 108) * a.d) * (float)isum;
    }
};

struct f_q4_K : no_row_scale {   /* d dmin scales[12] qs[128] */
    static constexpr int QK = 256, B = 144;
    __device__ static void words(const uint8_t *b, int sub, uint32_t (&w)[8])
    {
        four_bits(b + 16, sub, w);
    }
    __device__ static void dequant(const uint8_t *b, int sub, float, float *y)
    {
        uint32_t w[8];
        words(b, sub, w);
        int sc, m;
        k4_scale(b + 4, sub, sc, m);
        const float dl = __fmul_rn(ldh(b), (float)sc), ml = __fmul_rn(ldh(b + 2), (float)m);
#pragma unroll
        for (int j = 0; j < 32; j++)
            y[j] = __fsub_rn(__fmul_rn(dl, (float)lvl(w, j)), ml);
    }
    __device__ static float dot(const uint8_t *b, int sub, const act_group &a)
    {
        uint32_t w[8];
        words(b, sub, w);
        int sc, m;
        k4_scale(b + 4, sub, sc, m);
        return a.d * (ldh(b) * (float)(sc * dot8(w, a)) - ldh(b + 2) * (float)(m * (a.s0 + a.s1)));
    }
};

struct f_q5_K : no_row_scale {   /* d dmin scales[12] qh[32] qs[128] */
    static constexpr int QK = 256, B = 176;
    __device__ static void words(const uint8_t *b, int sub, uint32_t (&w)[8])
    {
        four_bits(b + 48, sub, w);
        high_bit(b + 16, sub, 4, w);
    }
    __device__ static void dequant(const uint8_t *b, int sub, float, float *y)
    {
        uint32_t w[8];
        words(b, sub, w);
        int sc, m;
        k4_scale(b + 4, sub, sc, m);
        const float dl = __fmul_rn(ldh(b), (float)sc), ml = __fmul_rn(ldh(b + 2), (float)m);
#pragma unroll
        for (int j = 0; j < 32; j++)
            y[j] = __fsub_rn(__fmul_rn(dl, (float)lvl(w, j)), ml);
    }
    __device__ static float dot(const uint8_t *b, int sub, const act_group &a)
    {
        uint32_t w[8];
        words(b, sub, w);
        int sc, m;
        k4_scale(b + 4, sub, sc, m);
        return a.d * (ldh(b) * (float)(sc * dot8(w, a)) - ldh(b + 2) * (float)(m * (a.s0 + a.s1)));
    }
};

struct f_q6_K : no_row_scale {   /* ql[128] qh[64] scales[16] (int8) d */
    static constexpr int QK = 256, B = 210;
    /* weight 128h + 32t + l: low nibble t / 2 of ql[64h + 32(t % 2) + l], high two bits
     * 2t.. of qh[32h + l]; levels 0..63, the value is that - 32 */
    __device__ static void words(const uint8_t *b, int sub, uint32_t (&w)[8])
    {
        const int h = sub / 4, t = sub % 4;
        uint32_t hi[8];
        ldw<8>(b + 64 * h + 32 * (t % 2), w);
        ldw<8>(b + 128 + 32 * h, hi);
#pragma unroll
        for (int i = 0; i < 8; i++)
            w[i] = ((w[i] >> (4 * (t / 2))) & 0x0f0f0f0fu) | ((hi[i] >> (2 * t)) & 0x03030303u) << 4;
    }
    __device__ static void dequant(const uint8_t *b, int sub, float, float *y)
    {
        uint32_t w[8];
        words(b, sub, w);
        const float d = ldh(b + 208);
#pragma unroll
        for (int j = 0; j < 32; j++) {
            const int sc = (int8_t)b[192 + 2 * sub + j / 16];
            y[j] = __fmul_rn(__fmul_rn(d, (float)sc), (float)(lvl(w, j) - 32));
        }
    }
    __device__ static float dot(const uint8_t *b, int sub, const act_group &a)
    {
        uint32_t w[8];
        words(b, sub, w);
        const int isum = (int8_t)b[192 + 2 * sub] * (dot4(w, a, 0) - 32 * a.s0)
                       + (int8_t)b[192 + 2 * sub + 1] * (dot4(w, a, 1) - 32 * a.s1);
        return (ldh(b + 208) * a.d) * (float)isum;
    }
};

/* The constants above are the C layouts' sizes and offsets. */
static_assert(f_q8_0::B == sizeof(qf_block_q8_0), "q8_0");
static_assert(f_q4_0::B == sizeof(qf_block_q4_0), "q4_0");
static_assert(f_q4_1::B == sizeof(qf_block_q4_1), "q4_1");
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
