/* kernels.cl - the OpenCL C kernels of the OpenCL backend (see qf_opencl.h): dequantize and
 * matvec for q8_0, q4_0, q4_K and int4_g32/g64/g128.
 *
 * The build embeds this file into the host library (kernels/opencl/embed.cmake) with the
 * `#include "qf_blocks.h"` line below replaced by that header's text, so the block structs
 * here are the C reference's, checked by its own static asserts in the device compiler.
 *
 * Work is cut in chunks of 32 consecutive weights of a row: a q8_0/q4_0 block, a 32-weight
 * sub-block of a q4_K super-block, a 32-weight slice of an int4 group. Chunk c of a row pairs
 * with activation block c (q8_0) or sub-block c % 8 of q8_K block c / 8. A matrix is a flat
 * array of blocks (a row is a whole number of them, without padding), so chunk g of the
 * matrix decodes to weights 32g .. 32g + 31 of the row-major output.
 *
 * Dequantize: one work-item per weight, the reference's operations in its order, no
 * contraction, so the floats are bit-exact. Matvec: one work-group of QF_WG work-items per
 * row, each summing the float terms of every QF_WG-th chunk (exact integer dots inside a
 * chunk), then a tree reduction in local memory. Hot: every benchmark sample is one launch.
 */
#pragma OPENCL FP_CONTRACT OFF

typedef uchar  uint8_t;
typedef char   int8_t;
typedef ushort uint16_t;
typedef short  int16_t;
typedef uint   uint32_t;
typedef int    int32_t;

#include "qf_blocks.h"

#ifndef QF_WG
#error "QF_WG (the matvec work-group size) comes from the host's build options"
#endif

/* binary16 bits to binary32, exact (as qf_fp16_to_fp32): no half support needed. */
static float f16_to_f32(ushort h)
{
    const uint sign = (uint)(h & 0x8000u) << 16;
    const uint e = (h >> 10) & 0x1fu, m = h & 0x3ffu;
    if (e == 0x1fu)
        return as_float(sign | 0x7f800000u | (m << 13));
    if (e == 0) {
        const float v = (float)m * 0x1p-24f;     /* subnormal or zero: exact */
        return sign ? -v : v;
    }
    return as_float(sign | ((e + 112u) << 23) | (m << 13));
}

/* The 6-bit scale and min of q4_K sub-block j from the 12 packed bytes (docs/formats.md). */
static void k4_scale(__global const uchar *s, int j, int *sc, int *m)
{
    if (j < 4) {
        *sc = s[j] & 63;
        *m = s[j + 4] & 63;
    } else {
        *sc = (s[j + 4] & 0xF) | ((s[j - 4] >> 6) << 4);
        *m = (s[j + 4] >> 4) | ((s[j] >> 6) << 4);
    }
}

/* ---- per-format chunks: decode 32 weights, or their dot with the activations ------------- */

/* Plain scalar loops over bytes, without branches on the data: a CPU runtime (PoCL)
 * vectorizes them across the work-items of a group, and a GPU runs them as they are. A
 * variant with 16-byte vector loads inside each work-item was no faster on either (PoCL,
 * and NVIDIA's OpenCL on an H100: docs/performance.md). */
static float deq_q8_0(__global const qf_block_q8_0 *b, int j)
{
    return (float)b->qs[j] * f16_to_f32(b->d);
}

static float dot_q8_0(__global const qf_block_q8_0 *b, __global const qf_block_q8_0 *a)
{
    int isum = 0;
    for (int j = 0; j < 32; j++)
        isum += b->qs[j] * a->qs[j];
    return (float)isum * (f16_to_f32(b->d) * f16_to_f32(a->d));
}

/* q4_0 (and int4_g32): byte j holds weight j (low nibble) and weight j + 16 (high). */
static float deq_q4_0(__global const qf_block_q4_0 *b, int j)
{
    return (float)(((b->qs[j % 16] >> (4 * (j / 16))) & 0x0F) - 8) * f16_to_f32(b->d);
}

static float dot_q4_0(__global const qf_block_q4_0 *b, __global const qf_block_q8_0 *a)
{
    int isum = 0;
    for (int j = 0; j < 16; j++)
        isum += ((b->qs[j] & 0x0F) - 8) * a->qs[j] + ((b->qs[j] >> 4) - 8) * a->qs[j + 16];
    return (float)isum * f16_to_f32(b->d) * f16_to_f32(a->d);
}

/* q4_K sub-block s (0..7) is the low (s even) or high nibbles of qs[32 (s / 2) ..]. */
static float deq_q4_K(__global const qf_block_q4_K *b, int s, int j)
{
    int sc, m;
    k4_scale(b->scales, s, &sc, &m);
    const float dl = f16_to_f32(b->d) * (float)sc, ml = f16_to_f32(b->dmin) * (float)m;
    return dl * (float)((b->qs[32 * (s / 2) + j] >> (4 * (s % 2))) & 0xF) - ml;
}

static float dot_q4_K(__global const qf_block_q4_K *b, int s, __global const qf_block_q8_K *a)
{
    int sc, m;
    k4_scale(b->scales, s, &sc, &m);
    __global const uchar *q = b->qs + 32 * (s / 2);
    __global const char *aq = a->qs + 32 * s;
    const int shift = 4 * (s % 2);
    int isum = 0;
    for (int j = 0; j < 32; j++)
        isum += ((q[j] >> shift) & 0xF) * aq[j];
    const int asum = a->bsums[2 * s] + a->bsums[2 * s + 1];
    return (f16_to_f32(b->d) * a->d) * (float)(sc * isum) -
           (f16_to_f32(b->dmin) * a->d) * (float)(m * asum);
}

/* int4_gG: weight i of a group is the low nibble of qs[i] (i < G/2) or the high nibble of
 * qs[i - G/2]. For G = 32 a 32-weight slice is the whole group, laid out as q4_0; for
 * G >= 64 slice k (weights 32k .. 32k + 31) is one nibble of 32 consecutive bytes. The terms
 * are the reference's: w = d * (q - z); dot (d * d_a) * (isum - z * asum). */
static float deq_int4_g32(__global const qf_block_int4_g32 *b, int k, int j)
{
    (void)k;
    const float d = f16_to_f32((ushort)(b->d[0] | b->d[1] << 8));
    return d * (float)(((b->qs[j % 16] >> (4 * (j / 16))) & 0x0F) - (int)b->z);
}

static float dot_int4_g32(__global const qf_block_int4_g32 *b, int k,
                          __global const qf_block_q8_0 *a)
{
    (void)k;
    int isum = 0, asum = 0;
    for (int j = 0; j < 16; j++) {
        isum += (b->qs[j] & 0x0F) * a->qs[j] + (b->qs[j] >> 4) * a->qs[j + 16];
        asum += a->qs[j] + a->qs[j + 16];
    }
    const float d = f16_to_f32((ushort)(b->d[0] | b->d[1] << 8));
    return (d * f16_to_f32(a->d)) * (float)(isum - (int)b->z * asum);
}

#define INT4_FNS(G)                                                                         \
static float deq_int4_g##G(__global const qf_block_int4_g##G *b, int k, int j)             \
{                                                                                           \
    const float d = f16_to_f32((ushort)(b->d[0] | b->d[1] << 8));                           \
    const int shift = 32 * k >= (G) / 2 ? 4 : 0;                                            \
    return d * (float)(((b->qs[(32 * k) % ((G) / 2) + j] >> shift) & 0x0F) - (int)b->z);   \
}                                                                                           \
static float dot_int4_g##G(__global const qf_block_int4_g##G *b, int k,                    \
                           __global const qf_block_q8_0 *a)                                 \
{                                                                                           \
    __global const uchar *q = b->qs + (32 * k) % ((G) / 2);                                 \
    const int shift = 32 * k >= (G) / 2 ? 4 : 0;                                            \
    int isum = 0, asum = 0;                                                                 \
    for (int j = 0; j < 32; j++) {                                                          \
        isum += ((q[j] >> shift) & 0x0F) * a->qs[j];                                        \
        asum += a->qs[j];                                                                   \
    }                                                                                       \
    const float d = f16_to_f32((ushort)(b->d[0] | b->d[1] << 8));                           \
    return (d * f16_to_f32(a->d)) * (float)(isum - (int)b->z * asum);                      \
}
INT4_FNS(64)
INT4_FNS(128)

/* ---- the kernels: one pair per format ----------------------------------------------------- */

/* Sums each work-item's part into y[row]; every work-item of the group must call it. */
static void reduce_row(float part, __local float *sums, __global float *y, int row)
{
    const int lid = (int)get_local_id(0);
    sums[lid] = part;
    barrier(CLK_LOCAL_MEM_FENCE);
    for (int n = QF_WG / 2; n > 0; n /= 2) {
        if (lid < n)
            sums[lid] += sums[lid + n];
        barrier(CLK_LOCAL_MEM_FENCE);
    }
    if (lid == 0)
        y[row] = sums[0];
}

/* NAME: the format; W: its block type; CPB: chunks per block; A: the activation block type;
 * DEQ: weight j of chunk g of the matrix; DOT: the float term of chunk c of the row.
 * This dequantize is one work-item per weight, so that neighbouring work-items write
 * neighbouring floats: coalesced stores on a GPU (twice the speed of a work-item per chunk on
 * an H100). CPU devices get dequantize_chunk_* below instead (qf_opencl.c chooses). */
#define QF_KERNEL_PAIR(NAME, W, CPB, A, DEQ, DOT)                                       \
__kernel void dequantize_##NAME(__global const W *w, __global float *y, ulong n)           \
{                                                                                           \
    const ulong i = get_global_id(0);                                                       \
    if (i >= n)                                                                             \
        return;                                                                             \
    const ulong g = i / 32;                                                                 \
    const int j = (int)(i % 32);                                                            \
    y[i] = DEQ;                                                                             \
}                                                                                           \
__kernel __attribute__((reqd_work_group_size(QF_WG, 1, 1)))                                 \
void matvec_##NAME(__global const W *w, __global const A *act, __global float *y,          \
                   int chunks_per_row)                                                      \
{                                                                                           \
    __local float sums[QF_WG];                                                              \
    const int row = (int)get_group_id(0);                                                   \
    __global const W *wr = w + (ulong)row * (ulong)(chunks_per_row / (CPB));               \
    float part = 0.0f;                                                                      \
    for (int c = (int)get_local_id(0); c < chunks_per_row; c += QF_WG)                      \
        part += DOT;                                                                        \
    reduce_row(part, sums, y, row);                                                         \
}

QF_KERNEL_PAIR(q8_0, qf_block_q8_0, 1, qf_block_q8_0,
               deq_q8_0(w + g, j), dot_q8_0(wr + c, act + c))
QF_KERNEL_PAIR(q4_0, qf_block_q4_0, 1, qf_block_q8_0,
               deq_q4_0(w + g, j), dot_q4_0(wr + c, act + c))
QF_KERNEL_PAIR(q4_K, qf_block_q4_K, 8, qf_block_q8_K,
               deq_q4_K(w + g / 8, (int)(g % 8), j),
               dot_q4_K(wr + c / 8, c % 8, act + c / 8))
QF_KERNEL_PAIR(int4_g32, qf_block_int4_g32, 1, qf_block_q8_0,
               deq_int4_g32(w + g, 0, j), dot_int4_g32(wr + c, 0, act + c))
QF_KERNEL_PAIR(int4_g64, qf_block_int4_g64, 2, qf_block_q8_0,
               deq_int4_g64(w + g / 2, (int)(g % 2), j),
               dot_int4_g64(wr + c / 2, c % 2, act + c))
QF_KERNEL_PAIR(int4_g128, qf_block_int4_g128, 4, qf_block_q8_0,
               deq_int4_g128(w + g / 4, (int)(g % 4), j),
               dot_int4_g128(wr + c / 4, c % 4, act + c))

/* ---- dequantize by chunk: a work-item decodes 32 weights with 16-wide vectors ------------ */

/* What a CPU runtime wants (PoCL: a work-item per weight ran 100x slower there, its cost is
 * per work-item and per group), where a GPU wants neighbouring work-items on neighbouring
 * floats (this ran at half the per-weight kernel's speed on an H100). Same operations as the
 * per-weight functions above, on vectors: bit-exact too. */
static float16 nibbles16(__global const uchar *q, uint shift)
{
    return convert_float16(convert_int16((vload16(0, q) >> (uchar16)(uchar)shift) &
                                         (uchar16)(uchar)0x0F));
}

static void deqc_q8_0(__global const qf_block_q8_0 *b, int s, __global float *y)
{
    (void)s;
    const float d = f16_to_f32(b->d);
    vstore16(convert_float16(vload16(0, b->qs)) * d, 0, y);
    vstore16(convert_float16(vload16(1, b->qs)) * d, 1, y);
}

static void deqc_q4_0(__global const qf_block_q4_0 *b, int s, __global float *y)
{
    (void)s;
    const float d = f16_to_f32(b->d);
    vstore16((nibbles16(b->qs, 0) - 8.0f) * d, 0, y);
    vstore16((nibbles16(b->qs, 4) - 8.0f) * d, 1, y);
}

static void deqc_q4_K(__global const qf_block_q4_K *b, int s, __global float *y)
{
    int sc, m;
    k4_scale(b->scales, s, &sc, &m);
    const float dl = f16_to_f32(b->d) * (float)sc, ml = f16_to_f32(b->dmin) * (float)m;
    __global const uchar *q = b->qs + 32 * (s / 2);
    vstore16(dl * nibbles16(q, 4 * (s % 2)) - ml, 0, y);
    vstore16(dl * nibbles16(q + 16, 4 * (s % 2)) - ml, 1, y);
}

/* int4: q - z is exact in float (both small integers), so this is d * (float)(q - z) */
#define DEQC_INT4(G)                                                                        \
static void deqc_int4_g##G(__global const qf_block_int4_g##G *b, int k, __global float *y) \
{                                                                                           \
    const float d = f16_to_f32((ushort)(b->d[0] | b->d[1] << 8));                           \
    const float z = (float)b->z;                                                            \
    __global const uchar *q = b->qs + ((G) == 32 ? 0 : (32 * k) % ((G) / 2));               \
    const uint s0 = (G) == 32 ? 0 : 32 * k >= (G) / 2 ? 4 : 0;                              \
    const uint s1 = (G) == 32 ? 4 : s0;                                                     \
    vstore16(d * (nibbles16(q, s0) - z), 0, y);                                             \
    vstore16(d * (nibbles16(q + ((G) == 32 ? 0 : 16), s1) - z), 1, y);                      \
}
DEQC_INT4(32)
DEQC_INT4(64)
DEQC_INT4(128)

/* One work-item per 32-weight chunk g of the matrix: block g / CPB, chunk g % CPB of it. */
#define QF_DEQUANTIZE_CHUNK(NAME, W, CPB)                                                   \
__kernel void dequantize_chunk_##NAME(__global const W *w, __global float *y, ulong nchunks) \
{                                                                                           \
    const ulong g = get_global_id(0);                                                       \
    if (g < nchunks)                                                                        \
        deqc_##NAME(w + g / (CPB), (int)(g % (CPB)), y + 32 * g);                           \
}
QF_DEQUANTIZE_CHUNK(q8_0, qf_block_q8_0, 1)
QF_DEQUANTIZE_CHUNK(q4_0, qf_block_q4_0, 1)
QF_DEQUANTIZE_CHUNK(q4_K, qf_block_q4_K, 8)
QF_DEQUANTIZE_CHUNK(int4_g32, qf_block_int4_g32, 1)
QF_DEQUANTIZE_CHUNK(int4_g64, qf_block_int4_g64, 2)
QF_DEQUANTIZE_CHUNK(int4_g128, qf_block_int4_g128, 4)

/* The sizes this compiler gives the block structs, in qf_opencl.c's k_structs order: the host
 * refuses a device whose compiler lays them out differently from the C reference. */
__kernel void block_sizes(__global uint *out)
{
    out[0] = sizeof(qf_block_q8_0);
    out[1] = sizeof(qf_block_q4_0);
    out[2] = sizeof(qf_block_q4_K);
    out[3] = sizeof(qf_block_q8_K);
    out[4] = sizeof(qf_block_int4_g32);
    out[5] = sizeof(qf_block_int4_g64);
    out[6] = sizeof(qf_block_int4_g128);
}
