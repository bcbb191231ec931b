/* formats.c - the traits table and the generic matrix operations over it.
 *
 * The table is the single place that knows each format's geometry and reference kernels; the
 * rest of quantfleet asks it. The generic functions check the shape once, then loop over rows
 * calling the row kernels, so adding a format is one table row plus its kernels.
 * Hot paths (benchmarks, jobs) call the row kernels through these pointers once per row, which
 * costs nothing next to a row of work.
 */
#include "qf_formats.h"

#include <assert.h>
#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "qf_err.h"
#include "ref/qf_ref.h"

#define ROW_FNS(f) .quantize_ref = qf_quantize_row_##f##_ref, .dequantize = qf_dequantize_row_##f
#define DOT(f, A, a) .act = QF_FMT_##A, .vec_dot_ref = qf_vec_dot_##f##_##a##_ref

static const qf_format_traits k_traits[QF_FMT_COUNT] = {
    [QF_FMT_F32] = { .name = "f32", .gguf_type = 0,
        .blck = 1, .type_size = 4, .weight = true, .family = "float",
        .summary = "IEEE binary32, the unquantized reference", ROW_FNS(f32), DOT(f32, F32, f32) },
    [QF_FMT_F16] = { .name = "f16", .gguf_type = 1,
        .blck = 1, .type_size = 2, .weight = true, .family = "float",
        .summary = "IEEE binary16, the usual baseline", ROW_FNS(f16), DOT(f16, F16, f16) },
    [QF_FMT_BF16] = { .name = "bf16", .gguf_type = 30,
        .blck = 1, .type_size = 2, .weight = true, .family = "float",
        .summary = "bfloat16, binary32 with 8 mantissa bits", ROW_FNS(bf16), DOT(bf16, BF16, bf16) },
    [QF_FMT_Q8_0] = { .name = "q8_0", .gguf_type = 8,
        .blck = QF_QK8_0, .type_size = sizeof(qf_block_q8_0), .weight = true,
        .family = "gguf", .summary = "8-bit symmetric, 32-weight blocks, f16 scale",
        ROW_FNS(q8_0), DOT(q8_0, Q8_0, q8_0) },
    [QF_FMT_Q8_1] = { .name = "q8_1", .gguf_type = 9,
        .blck = QF_QK8_1, .type_size = sizeof(qf_block_q8_1), .weight = false,
        .act = QF_FMT_Q8_1, .family = "gguf",
        .summary = "activation format of q4_1/q5_1: q8_0 plus block sum", ROW_FNS(q8_1) },
    [QF_FMT_Q4_0] = { .name = "q4_0", .gguf_type = 2,
        .blck = QF_QK4_0, .type_size = sizeof(qf_block_q4_0), .weight = true,
        .family = "gguf", .summary = "4-bit symmetric, 32-weight blocks, f16 scale",
        ROW_FNS(q4_0), DOT(q4_0, Q8_0, q8_0) },
    [QF_FMT_Q4_1] = { .name = "q4_1", .gguf_type = 3,
        .blck = QF_QK4_1, .type_size = sizeof(qf_block_q4_1), .weight = true,
        .family = "gguf", .summary = "4-bit with min, 32-weight blocks, f16 scale and min",
        ROW_FNS(q4_1), DOT(q4_1, Q8_1, q8_1) },
    [QF_FMT_Q5_0] = { .name = "q5_0", .gguf_type = 6,
        .blck = QF_QK5_0, .type_size = sizeof(qf_block_q5_0), .weight = true,
        .family = "gguf", .summary = "5-bit symmetric, 32-weight blocks, f16 scale",
        ROW_FNS(q5_0), DOT(q5_0, Q8_0, q8_0) },
    [QF_FMT_Q5_1] = { .name = "q5_1", .gguf_type = 7,
        .blck = QF_QK5_1, .type_size = sizeof(qf_block_q5_1), .weight = true,
        .family = "gguf", .summary = "5-bit with min, 32-weight blocks, f16 scale and min",
        ROW_FNS(q5_1), DOT(q5_1, Q8_1, q8_1) },
    [QF_FMT_Q2_K] = { .name = "q2_K", .gguf_type = 10,
        .blck = QF_QK_K, .type_size = sizeof(qf_block_q2_K), .weight = true,
        .family = "gguf", .summary = "2-bit K-quant, 16x16 sub-blocks, 4-bit scales and mins",
        ROW_FNS(q2_K), DOT(q2_K, Q8_K, q8_K) },
    [QF_FMT_Q3_K] = { .name = "q3_K", .gguf_type = 11,
        .blck = QF_QK_K, .type_size = sizeof(qf_block_q3_K), .weight = true,
        .family = "gguf", .summary = "3-bit K-quant, 16x16 sub-blocks, 6-bit scales",
        ROW_FNS(q3_K), DOT(q3_K, Q8_K, q8_K) },
    [QF_FMT_Q4_K] = { .name = "q4_K", .gguf_type = 12,
        .blck = QF_QK_K, .type_size = sizeof(qf_block_q4_K), .weight = true,
        .family = "gguf", .summary = "4-bit K-quant, 8x32 sub-blocks, 6-bit scales and mins",
        ROW_FNS(q4_K), DOT(q4_K, Q8_K, q8_K) },
    [QF_FMT_Q5_K] = { .name = "q5_K", .gguf_type = 13,
        .blck = QF_QK_K, .type_size = sizeof(qf_block_q5_K), .weight = true,
        .family = "gguf", .summary = "5-bit K-quant, 8x32 sub-blocks, 6-bit scales and mins",
        ROW_FNS(q5_K), DOT(q5_K, Q8_K, q8_K) },
    [QF_FMT_Q6_K] = { .name = "q6_K", .gguf_type = 14,
        .blck = QF_QK_K, .type_size = sizeof(qf_block_q6_K), .weight = true,
        .family = "gguf", .summary = "6-bit K-quant, 16x16 sub-blocks, 8-bit scales",
        ROW_FNS(q6_K), DOT(q6_K, Q8_K, q8_K) },
    [QF_FMT_Q8_K] = { .name = "q8_K", .gguf_type = 15,
        .blck = QF_QK_K, .type_size = sizeof(qf_block_q8_K), .weight = false,
        .act = QF_FMT_Q8_K, .family = "gguf",
        .summary = "activation format of the K-quants: f32 scale, int8, 16-sums", ROW_FNS(q8_K) },
    [QF_FMT_IQ4_NL] = { .name = "iq4_nl", .gguf_type = 20,
        .blck = QF_QK4_NL, .type_size = sizeof(qf_block_iq4_nl), .weight = true,
        .family = "gguf", .summary = "4-bit non-linear codebook, 32-weight blocks, f16 scale",
        ROW_FNS(iq4_nl), DOT(iq4_nl, Q8_0, q8_0) },
    [QF_FMT_INT8_PC] = { .name = "int8_pc", .gguf_type = -1,
        .blck = 0, .type_size = 1, .row_header = QF_INT8_PC_HEADER,
        .weight = true, .family = "int",
        .summary = "INT8 symmetric, one f32 scale per output row (basic quantization)",
        ROW_FNS(int8_pc), DOT(int8_pc, Q8_0, q8_0) },
    [QF_FMT_INT4_G32] = { .name = "int4_g32", .gguf_type = -1,
        .blck = 32, .type_size = sizeof(qf_block_int4_g32), .weight = true,
        .family = "int", .summary = "INT4 asymmetric, groups of 32, f16 scale + u8 zero point",
        ROW_FNS(int4_g32), DOT(int4_g32, Q8_0, q8_0) },
    [QF_FMT_INT4_G64] = { .name = "int4_g64", .gguf_type = -1,
        .blck = 64, .type_size = sizeof(qf_block_int4_g64), .weight = true,
        .family = "int", .summary = "INT4 asymmetric, groups of 64, f16 scale + u8 zero point",
        ROW_FNS(int4_g64), DOT(int4_g64, Q8_0, q8_0) },
    [QF_FMT_INT4_G128] = { .name = "int4_g128", .gguf_type = -1,
        .blck = 128, .type_size = sizeof(qf_block_int4_g128), .weight = true,
        .family = "int", .summary = "INT4 asymmetric, groups of 128, f16 scale + u8 zero point",
        ROW_FNS(int4_g128), DOT(int4_g128, Q8_0, q8_0) },
    /* frameworks' native schemes: ONNX Runtime (MatMulNBits) and QNN (kernels/ref/fw_ort_qnn.c) */
    [QF_FMT_ORT_INT4_B32] = { .name = "ort_int4_b32", .gguf_type = -1,
        .blck = 32, .type_size = sizeof(qf_block_ort_int4_b32), .weight = true,
        .family = "onnxruntime", .summary = "ONNX Runtime MatMulNBits INT4 (Olive default: "
        "symmetric, zero point 8), blocks of 32, f32 scale",
        ROW_FNS(ort_int4_b32), DOT(ort_int4_b32, Q8_0, q8_0) },
    [QF_FMT_ORT_INT4_B128] = { .name = "ort_int4_b128", .gguf_type = -1,
        .blck = 128, .type_size = sizeof(qf_block_ort_int4_b128), .weight = true,
        .family = "onnxruntime", .summary = "ONNX Runtime MatMulNBits INT4 (Olive default: "
        "symmetric, zero point 8), blocks of 128, f32 scale",
        ROW_FNS(ort_int4_b128), DOT(ort_int4_b128, Q8_0, q8_0) },
    [QF_FMT_ORT_INT4_B128_ASYM] = { .name = "ort_int4_b128_asym", .gguf_type = -1,
        .blck = 128, .type_size = sizeof(qf_block_ort_int4_b128_asym), .weight = true,
        .family = "onnxruntime", .summary = "ONNX Runtime MatMulNBits INT4 asymmetric (its "
        "quantizer's default), blocks of 128, f32 scale + zero point",
        ROW_FNS(ort_int4_b128_asym), DOT(ort_int4_b128_asym, Q8_0, q8_0) },
    [QF_FMT_QNN_INT8_PC] = { .name = "qnn_int8_pc", .gguf_type = -1,
        .blck = 0, .type_size = 1, .row_header = QF_QNN_PC_HEADER,
        .weight = true, .family = "qnn",
        .summary = "Qualcomm QNN INT8 per-channel, f32 scale + i32 offset per row (offset 0)",
        ROW_FNS(qnn_int8_pc), DOT(qnn_int8_pc, Q8_0, q8_0) },
    [QF_FMT_QNN_INT16_PC] = { .name = "qnn_int16_pc", .gguf_type = -1,
        .blck = 0, .type_size = 2, .row_header = QF_QNN_PC_HEADER,
        .weight = true, .family = "qnn",
        .summary = "Qualcomm QNN INT16 per-channel, f32 scale + i32 offset per row, f32 "
        "activations", ROW_FNS(qnn_int16_pc), DOT(qnn_int16_pc, F32, f32) },
    [QF_FMT_QNN_W4_BLOCK] = { .name = "qnn_w4_block", .gguf_type = -1,
        .blck = QF_QNN_W4_BLOCK, .type_size = sizeof(qf_block_qnn_w4), .weight = true,
        .family = "qnn", .summary = "Qualcomm QNN INT4 block encoding, blocks of 32, "
        "f32 scale, signed symmetric", ROW_FNS(qnn_w4_block), DOT(qnn_w4_block, Q8_0, q8_0) },
    /* frameworks' native schemes: OpenVINO NNCF and MLX (kernels/ref/fw_nncf_mlx.c) */
    [QF_FMT_NNCF_INT8_ASYM] = { .name = "nncf_int8_asym", .gguf_type = -1,
        .blck = 0, .type_size = 1, .row_header = QF_NNCF_INT8_ASYM_HEADER,
        .weight = true, .family = "openvino",
        .summary = "NNCF INT8_ASYM: u8 per output channel, f16 scale + u8 zero point",
        ROW_FNS(nncf_int8_asym), DOT(nncf_int8_asym, Q8_0, q8_0) },
    [QF_FMT_NNCF_INT4_SYM_G128] = { .name = "nncf_int4_sym_g128", .gguf_type = -1,
        .blck = QF_NNCF_G, .type_size = sizeof(qf_block_nncf_int4_sym_g128), .weight = true,
        .family = "openvino", .summary = "NNCF INT4_SYM: signed i4, groups of 128, f16 scale",
        ROW_FNS(nncf_int4_sym_g128), DOT(nncf_int4_sym_g128, Q8_0, q8_0) },
    [QF_FMT_NNCF_INT4_ASYM_G128] = { .name = "nncf_int4_asym_g128", .gguf_type = -1,
        .blck = QF_NNCF_G, .type_size = sizeof(qf_block_nncf_int4_asym_g128), .weight = true,
        .family = "openvino",
        .summary = "NNCF INT4_ASYM: u4, groups of 128, f16 scale + zero point",
        ROW_FNS(nncf_int4_asym_g128), DOT(nncf_int4_asym_g128, Q8_0, q8_0) },
#define MLX_AFFINE_ROW(B, G)                                                                \
    [QF_FMT_MLX_AFFINE##B##_G##G] = { .name = "mlx_affine" #B "_g" #G, .gguf_type = -1,      \
        .blck = G, .type_size = sizeof(qf_block_mlx_affine##B##_g##G), .weight = true,       \
        .family = "mlx", .summary = "MLX affine " #B "-bit, groups of " #G ", f16 scale + bias", \
        ROW_FNS(mlx_affine##B##_g##G), DOT(mlx_affine##B##_g##G, Q8_0, q8_0) },
    QF_MLX_AFFINE_FORMATS(MLX_AFFINE_ROW)
#undef MLX_AFFINE_ROW
};

const qf_format_traits *qf_format_get(qf_format fmt)
{
    assert((unsigned)fmt < QF_FMT_COUNT);
    return &k_traits[fmt];
}

int qf_format_from_name(const char *name, qf_format *out)
{
    assert(name && out);
    for (int i = 0; i < QF_FMT_COUNT; i++) {
        if (strcmp(k_traits[i].name, name) == 0) {
            *out = (qf_format)i;
            return 0;
        }
    }
    return QF_EFORMAT;
}

size_t qf_format_row_size(qf_format fmt, int64_t ncols)
{
    const qf_format_traits *t = qf_format_get(fmt);
    if (t->blck == 0)
        return t->row_header + (size_t)ncols * t->type_size;
    return (size_t)(ncols / t->blck) * t->type_size;
}

double qf_format_bpw(qf_format fmt, int64_t ncols)
{
    assert(ncols > 0);
    return 8.0 * (double)qf_format_row_size(fmt, ncols) / (double)ncols;
}

double qf_format_bpw_nominal(qf_format fmt)
{
    const qf_format_traits *t = qf_format_get(fmt);
    if (t->blck == 0)
        return 8.0 * (double)t->type_size;
    return 8.0 * (double)t->type_size / (double)t->blck;
}

static int64_t col_multiple(const qf_format_traits *t)
{
    int64_t w = t->blck ? t->blck : 1;
    if (t->vec_dot_ref) {
        int64_t a = qf_format_get(t->act)->blck;
        if (a > w) /* all block sizes are powers of two, so the larger is the multiple of both */
            w = a;
    }
    return w;
}

int qf_format_check_cols(qf_format fmt, int64_t ncols)
{
    const qf_format_traits *t = qf_format_get(fmt);
    int64_t m = col_multiple(t);
    if (ncols <= 0 || ncols % m != 0)
        return qf_errorf(QF_ESHAPE, "format %s: a row of %" PRId64 " weights is not a positive "
                         "multiple of %" PRId64, t->name, ncols, m);
    return 0;
}

static int check_shape(qf_format fmt, int64_t nrows, int64_t ncols)
{
    if (nrows <= 0)
        return qf_errorf(QF_ESHAPE, "format %s: %" PRId64 " rows (must be positive)",
                         qf_format_get(fmt)->name, nrows);
    return qf_format_check_cols(fmt, ncols);
}

int qf_quantize(qf_format fmt, const float *src, void *dst, int64_t nrows, int64_t ncols)
{
    int err = check_shape(fmt, nrows, ncols);
    if (err)
        return err;
    const qf_format_traits *t = qf_format_get(fmt);
    size_t rs = qf_format_row_size(fmt, ncols);
    for (int64_t r = 0; r < nrows; r++)
        t->quantize_ref(src + r * ncols, (char *)dst + (size_t)r * rs, ncols);
    return 0;
}

int qf_dequantize(qf_format fmt, const void *src, float *dst, int64_t nrows, int64_t ncols)
{
    int err = check_shape(fmt, nrows, ncols);
    if (err)
        return err;
    const qf_format_traits *t = qf_format_get(fmt);
    size_t rs = qf_format_row_size(fmt, ncols);
    for (int64_t r = 0; r < nrows; r++)
        t->dequantize((const char *)src + (size_t)r * rs, dst + r * ncols, ncols);
    return 0;
}

int qf_matvec_ref(qf_format fmt, const void *w, const float *x, float *y,
                  int64_t nrows, int64_t ncols)
{
    const qf_format_traits *t = qf_format_get(fmt);
    if (!t->vec_dot_ref)
        return qf_errorf(QF_EUNSUP, "format %s is an activation format and has no matvec",
                         t->name);
    int err = check_shape(fmt, nrows, ncols);
    if (err)
        return err;
    void *xq = malloc(qf_format_row_size(t->act, ncols));
    if (!xq)
        return QF_ENOMEM;
    qf_format_get(t->act)->quantize_ref(x, xq, ncols);
    size_t rs = qf_format_row_size(fmt, ncols);
    for (int64_t r = 0; r < nrows; r++)
        t->vec_dot_ref(ncols, (const char *)w + (size_t)r * rs, xq, &y[r]);
    free(xq);
    return 0;
}
