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

/* --- frameworks' native schemes: ONNX Runtime MatMulNBits (kernels/ref/fw_ort_qnn.c) ------ */

/* ort_int4_bB, B = 32 or 128: ONNX Runtime's com.microsoft.MatMulNBits with bits = 4 as
 * Microsoft Olive's OnnxBlockWiseRtnQuantization writes it by default (is_symmetric = True,
 * through onnxruntime's quantize_matmul_4bits = MLAS MlasQuantizeBlockwise): symmetric, no
 * zero_points input, so every block's zero point is MatMulNBits' default 8.
 *   w = scale * (q - 8), q in 0..15; scale is an IEEE binary32 stored as 4 little-endian bytes
 *   (scale[0] lowest), so the block has no padding; scale may be negative (MLAS divides the
 *   signed extreme by -8). qs[j] holds weight 2j in its low nibble and weight 2j+1 in its high
 *   nibble (MatMulNBits packs low-first along K; this is NOT q4_0's j / j+B/2 order).
 * ort_int4_b128_asym: ONNX Runtime's own quantizer default (matmul_nbits_quantizer's
 * DefaultWeightOnlyQuantConfig: block_size 128, is_symmetric False): as above plus a zero
 * point per block, w = scale * (q - zp), q and zp in 0..15, zp in the low nibble of its byte
 * (high nibble 0). ORT packs two blocks' zero points per byte; we keep one byte per block so a
 * row stays a sequence of equal blocks (0.03125 bits per weight more than ORT holds).
 *
 * From our matrix to MatMulNBits' inputs. Our weight matrix is nrows x ncols, row-major, one
 * row per output feature: N = nrows, K = ncols (K a multiple of B: we never pad the last block
 * as ORT does for ragged K). Row n of ours is column n of ONNX MatMul's B [K][N]; the node is
 * MatMulNBits(A [M][K] f32, B, scales[, zero_points]) with attributes K, N, bits = 4,
 * block_size = B, and Y [M][N] = A * dequant(B)^T. With kb = K / B and blk = block b of row n:
 *   B           uint8 [N][kb][B/2]      B[n][b][j]   = blk.qs[j]                (same bytes)
 *   scales      float [N * kb]          scales[n*kb + b] = blk.scale            (same 4 bytes)
 *   zero_points uint8 [N * ceil(kb/2)]  (asym only) byte n*ceil(kb/2) + b/2 has blk.zp in its
 *                                        low nibble for even b, high nibble for odd b; an odd
 *                                        kb leaves the last byte's high nibble 8 (as MLAS does).
 * The symmetric formats pass no zero_points input (3 inputs), which means zero point 8.
 * Source of truth: onnxruntime docs/ContribOperators.md (com.microsoft.MatMulNBits) and
 * onnxruntime/core/mlas/lib/q4_dq.cpp (BlockwiseQuantizer::quantizeAndTranspose); rules in
 * docs/formats.md. */
#define QF_DEFINE_ORT_INT4(B)                                                               \
    typedef struct { uint8_t scale[4]; uint8_t qs[(B) / 2]; } qf_block_ort_int4_b##B;        \
    QF_STATIC_ASSERT(sizeof(qf_block_ort_int4_b##B) == 4 + (B) / 2, "ort_int4_b" #B " block size");
QF_DEFINE_ORT_INT4(32)
QF_DEFINE_ORT_INT4(128)
#undef QF_DEFINE_ORT_INT4
typedef struct { uint8_t scale[4]; uint8_t zp; uint8_t qs[128 / 2]; } qf_block_ort_int4_b128_asym;
QF_STATIC_ASSERT(sizeof(qf_block_ort_int4_b128_asym) == 4 + 1 + 128 / 2,
                 "ort_int4_b128_asym block size");

/* --- frameworks' native schemes: Qualcomm QNN (kernels/ref/fw_ort_qnn.c) ------------------- */

/* qnn_int8_pc, qnn_int16_pc are per row (per output channel, QNN's
 * QNN_QUANTIZATION_ENCODING_AXIS_SCALE_OFFSET with the axis on the output features): each row
 * is one Qnn_ScaleOffset_t { float scale; int32_t offset; } as 8 little-endian bytes, then the
 * row's values (int8, or int16 little-endian), and QNN's rule w = scale * (q + offset).
 * Our quantizer writes offset 0 (symmetric, as QNN wants per-channel weights); the decoders
 * honour any offset. Source: QNN SDK QnnTypes.h (Qnn_ScaleOffset_t, Qnn_AxisScaleOffset_t). */
#define QF_QNN_PC_HEADER 8

/* qnn_w4_block: QNN's QNN_QUANTIZATION_ENCODING_BLOCK for 4-bit weights, blocks of 32 along the
 * input features of one output channel: w = scale * q, q in -8..7 (signed, offset 0), scale
 * the block's Qnn_ScaleOffset_t.scale as 4 little-endian bytes (its offset, always 0 for
 * these symmetric weights, is not stored). qs[j] holds weight 2j in its low nibble and weight
 * 2j+1 in its high nibble, each a 4-bit two's complement value. */
#define QF_QNN_W4_BLOCK 32   /* Qualcomm AI Hub Models' default per-block INT4 size */
typedef struct { uint8_t scale[4]; uint8_t qs[QF_QNN_W4_BLOCK / 2]; } qf_block_qnn_w4;
QF_STATIC_ASSERT(sizeof(qf_block_qnn_w4) == 4 + QF_QNN_W4_BLOCK / 2, "qnn_w4_block block size");

/* --- frameworks' native schemes: OpenVINO NNCF and MLX (kernels/ref/fw_nncf_mlx.c) -------- */

/* nncf_*: what nncf.compress_weights writes into an OpenVINO IR (rules in docs/formats.md).
 * nncf_int8_asym is per row (per output channel): [d: f16, 2 bytes LE][z: u8][K x u8 q],
 * w = d * (q - z). The two 4-bit formats have groups of QF_NNCF_G weights; d is the group's f16
 * scale stored as two bytes (d[0] low) so no block has padding. Nibbles are OpenVINO's u4/i4
 * order: qs[j] holds weight 2j in its low nibble and weight 2j+1 in its high nibble.
 *   int4_sym_g128:  w = d * q, q in -8..7, a 4-bit two's complement nibble (OpenVINO i4);
 *                   d may be negative (NNCF divides the signed extreme by 8).
 *   int4_asym_g128: w = d * (q - z), q and z in 0..15 (OpenVINO u4); the IR packs z as u4 two
 *                   groups to a byte, we keep one byte per group (0.03 bits/weight more). */
#define QF_NNCF_INT8_ASYM_HEADER 3
#define QF_NNCF_G 128
typedef struct { uint8_t d[2]; uint8_t qs[QF_NNCF_G / 2]; } qf_block_nncf_int4_sym_g128;
QF_STATIC_ASSERT(sizeof(qf_block_nncf_int4_sym_g128) == 2 + QF_NNCF_G / 2,
                 "nncf_int4_sym_g128 block size");
typedef struct { uint8_t d[2]; uint8_t z; uint8_t qs[QF_NNCF_G / 2]; } qf_block_nncf_int4_asym_g128;
QF_STATIC_ASSERT(sizeof(qf_block_nncf_int4_asym_g128) == 3 + QF_NNCF_G / 2,
                 "nncf_int4_asym_g128 block size");

/* mlx_affineB_gG: one group of G weights of MLX's mx.quantize (mode "affine", bits B, group
 * size G) on a float16 array: w = scale * q + bias, q in 0..2^B-1, scale and bias f16 (scale
 * may be negative). qs is the group's slice of MLX's packed uint32 array read as little-endian
 * bytes: weight i of the group is bits [B*i, B*i + B) of that byte string, least significant
 * bit first, so for B = 3 and 6 a weight may straddle a byte (MLX packs 8 (B = 3) or 4 (B = 6)
 * weights into 3 bytes). The list below is the one definition every MLX table row, struct,
 * prototype and kernel is generated from: X(B, G) for each format. */
#define QF_MLX_AFFINE_FORMATS(X)                                                           \
    X(2, 32) X(2, 64) X(2, 128) X(3, 32) X(3, 64) X(3, 128) X(4, 32) X(4, 64) X(4, 128)     \
    X(6, 32) X(6, 64) X(6, 128) X(8, 32) X(8, 64) X(8, 128)
#define QF_DEFINE_MLX_AFFINE(B, G)                                                         \
    typedef struct { qf_half scale; qf_half bias; uint8_t qs[(G) * (B) / 8]; }              \
        qf_block_mlx_affine##B##_g##G;                                                     \
    QF_STATIC_ASSERT(sizeof(qf_block_mlx_affine##B##_g##G) == 4 + (G) * (B) / 8,            \
                     "mlx_affine" #B "_g" #G " block size");
QF_MLX_AFFINE_FORMATS(QF_DEFINE_MLX_AFFINE)
#undef QF_DEFINE_MLX_AFFINE

#endif
