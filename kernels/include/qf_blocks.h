/* qf_blocks.h - the block layouts of every block format, declared once.
 *
 * This header is included by the C kernels and by the CUDA/OpenCL backends, so it uses only
 * fixed-width integer types and no C-only features beyond the static-assert macro below.
 * The GGUF block formats (q4_0 .. q6_K, q8_K, iq4_nl) are byte-for-byte llama.cpp's layouts
 * (ggml-common.h): field order and sizes are what a GGUF file holds, and each size is checked
 * at compile time. A qf_half is an IEEE binary16 bit pattern (ggml_half), little-endian in files.
 * docs/formats.md describes each layout and how its values decode.
 */
#ifndef QF_BLOCKS_H
#define QF_BLOCKS_H

#include <stdint.h>

#if defined(__cplusplus)
#define QF_STATIC_ASSERT(c, m) static_assert(c, m)
#else
#define QF_STATIC_ASSERT(c, m) _Static_assert(c, m)
#endif

typedef uint16_t qf_half;    /* IEEE 754 binary16 bits */
typedef uint16_t qf_bf16;    /* bfloat16 bits (upper half of a binary32) */

#define QF_QK4_0  32
#define QF_QK4_1  32
#define QF_QK5_0  32
#define QF_QK5_1  32
#define QF_QK8_0  32
#define QF_QK8_1  32
#define QF_QK4_NL 32
#define QF_QK_K   256
#define QF_K_SCALE_SIZE 12

/* --- legacy GGUF blocks: 32 weights, one scale (and min) --------------------------------- */

/* w = d * (q - 8), q in 0..15; qs[j] holds weight j (low nibble) and weight j+16 (high). */
typedef struct { qf_half d; uint8_t qs[QF_QK4_0 / 2]; } qf_block_q4_0;
QF_STATIC_ASSERT(sizeof(qf_block_q4_0) == 2 + QF_QK4_0 / 2, "q4_0 block size");

/* w = d * q + m, q in 0..15. */
typedef struct { qf_half d; qf_half m; uint8_t qs[QF_QK4_1 / 2]; } qf_block_q4_1;
QF_STATIC_ASSERT(sizeof(qf_block_q4_1) == 4 + QF_QK4_1 / 2, "q4_1 block size");

/* w = d * (q - 16), q in 0..31; the fifth bit of weight j is bit j of qh (little-endian u32). */
typedef struct { qf_half d; uint8_t qh[4]; uint8_t qs[QF_QK5_0 / 2]; } qf_block_q5_0;
QF_STATIC_ASSERT(sizeof(qf_block_q5_0) == 2 + 4 + QF_QK5_0 / 2, "q5_0 block size");

/* w = d * q + m, q in 0..31. */
typedef struct { qf_half d; qf_half m; uint8_t qh[4]; uint8_t qs[QF_QK5_1 / 2]; } qf_block_q5_1;
QF_STATIC_ASSERT(sizeof(qf_block_q5_1) == 4 + 4 + QF_QK5_1 / 2, "q5_1 block size");

/* w = d * q, q in -127..127. Also the activation format of q4_0, q5_0, q8_0, iq4_nl. */
typedef struct { qf_half d; int8_t qs[QF_QK8_0]; } qf_block_q8_0;
QF_STATIC_ASSERT(sizeof(qf_block_q8_0) == 2 + QF_QK8_0, "q8_0 block size");

/* Activation format of q4_1 and q5_1: like q8_0 plus s = d * sum(q). */
typedef struct { qf_half d; qf_half s; int8_t qs[QF_QK8_1]; } qf_block_q8_1;
QF_STATIC_ASSERT(sizeof(qf_block_q8_1) == 4 + QF_QK8_1, "q8_1 block size");

/* w = d * kvalues_iq4nl[q], a fixed non-uniform 16-entry codebook; nibbles as in q4_0. */
typedef struct { qf_half d; uint8_t qs[QF_QK4_NL / 2]; } qf_block_iq4_nl;
QF_STATIC_ASSERT(sizeof(qf_block_iq4_nl) == 2 + QF_QK4_NL / 2, "iq4_nl block size");

/* --- K-quants: super-blocks of 256 weights with quantized sub-block scales ----------------- */

/* 16 sub-blocks of 16: w = d * (scales[i] & 0xF) * q - dmin * (scales[i] >> 4), q in 0..3. */
typedef struct {
    uint8_t scales[QF_QK_K / 16];
    uint8_t qs[QF_QK_K / 4];
    qf_half d;
    qf_half dmin;
} qf_block_q2_K;
QF_STATIC_ASSERT(sizeof(qf_block_q2_K) == 2 * 2 + QF_QK_K / 16 + QF_QK_K / 4, "q2_K block size");

/* 16 sub-blocks of 16: w = d * (s - 32) * (q - 4 * !hbit), 6-bit scales packed in 12 bytes. */
typedef struct {
    uint8_t hmask[QF_QK_K / 8];
    uint8_t qs[QF_QK_K / 4];
    uint8_t scales[12];
    qf_half d;
} qf_block_q3_K;
QF_STATIC_ASSERT(sizeof(qf_block_q3_K) == 2 + QF_QK_K / 4 + QF_QK_K / 8 + 12, "q3_K block size");

/* 8 sub-blocks of 32: w = d * sc * q - dmin * m, 6-bit sc and m packed in 12 bytes, q in 0..15. */
typedef struct {
    qf_half d;
    qf_half dmin;
    uint8_t scales[QF_K_SCALE_SIZE];
    uint8_t qs[QF_QK_K / 2];
} qf_block_q4_K;
QF_STATIC_ASSERT(sizeof(qf_block_q4_K) == 2 * 2 + QF_K_SCALE_SIZE + QF_QK_K / 2, "q4_K block size");

/* As q4_K with a fifth bit per weight in qh. */
typedef struct {
    qf_half d;
    qf_half dmin;
    uint8_t scales[QF_K_SCALE_SIZE];
    uint8_t qh[QF_QK_K / 8];
    uint8_t qs[QF_QK_K / 2];
} qf_block_q5_K;
QF_STATIC_ASSERT(sizeof(qf_block_q5_K) == 2 * 2 + QF_K_SCALE_SIZE + QF_QK_K / 2 + QF_QK_K / 8,
                 "q5_K block size");

/* 16 sub-blocks of 16: w = d * scales[i] * (q - 32), q in 0..63 split in ql (4 bits) + qh (2). */
typedef struct {
    uint8_t ql[QF_QK_K / 2];
    uint8_t qh[QF_QK_K / 4];
    int8_t  scales[QF_QK_K / 16];
    qf_half d;
} qf_block_q6_K;
QF_STATIC_ASSERT(sizeof(qf_block_q6_K) == 2 + QF_QK_K / 16 + 3 * QF_QK_K / 4, "q6_K block size");

/* Activation format of the K-quants: float scale, int8 values, sums of each 16 values. */
typedef struct {
    float   d;
    int8_t  qs[QF_QK_K];
    int16_t bsums[QF_QK_K / 16];
} qf_block_q8_K;
QF_STATIC_ASSERT(sizeof(qf_block_q8_K) == 4 + QF_QK_K + QF_QK_K / 16 * 2, "q8_K block size");

/* --- quantfleet's own integer formats ------------------------------------------------------ */

/* int4_gG: INT4 asymmetric group-wise ("group-wise INT4" of GPTQ/AWQ-style checkpoints):
 * w = d * (q - z), q and z in 0..15. d is a binary16 stored as two bytes (d[0] low) so the
 * block has no padding; z is one byte. Nibbles are packed as in q4_0 (j low, j + G/2 high). */
#define QF_DEFINE_INT4_G(G)                                                               \
    typedef struct { uint8_t d[2]; uint8_t z; uint8_t qs[(G) / 2]; } qf_block_int4_g##G;   \
    QF_STATIC_ASSERT(sizeof(qf_block_int4_g##G) == 3 + (G) / 2, "int4_g" #G " block size");
QF_DEFINE_INT4_G(32)
QF_DEFINE_INT4_G(64)
QF_DEFINE_INT4_G(128)
#undef QF_DEFINE_INT4_G

/* int8_pc is per row, not per block: each row is a little-endian binary32 scale followed by the
 * row's int8 values, w = scale * q, q in -127..127 (see QF_INT8_PC_HEADER). */
#define QF_INT8_PC_HEADER 4

#endif
