/* qf_formats.h - the table of weight formats and the generic operations over it.
 *
 * Every format quantfleet knows is one row of a traits table indexed by enum qf_format: its
 * name, its block geometry, the format its activations are quantized to for a dot product, and
 * the reference (scalar, readable) row functions. Suites and the CLI look formats up by name
 * here; nothing else in the code base switches on the format. Fast ISA and GPU variants are
 * separate tables tested against these references.
 *
 * Row functions work on one row of k weights; k has already been checked against the format
 * (qf_format_check_cols), so they assert rather than fail. The generic functions below take
 * whole matrices (nrows x ncols, row-major) and return QF_ESHAPE for a shape the format cannot
 * hold. Nothing here allocates except qf_matvec_ref (one activation row).
 */
#ifndef QF_FORMATS_H
#define QF_FORMATS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qf_blocks.h"

/* The table's order. Names and GGUF type ids are columns of the table in formats.c. */
typedef enum qf_format {
    QF_FMT_F32,
    QF_FMT_F16,
    QF_FMT_BF16,
    QF_FMT_Q8_0,
    QF_FMT_Q8_1,
    QF_FMT_Q4_0,
    QF_FMT_Q4_1,
    QF_FMT_Q5_0,
    QF_FMT_Q5_1,
    QF_FMT_Q2_K,
    QF_FMT_Q3_K,
    QF_FMT_Q4_K,
    QF_FMT_Q5_K,
    QF_FMT_Q6_K,
    QF_FMT_Q8_K,
    QF_FMT_IQ4_NL,
    QF_FMT_INT8_PC,
    QF_FMT_INT4_G32,
    QF_FMT_INT4_G64,
    QF_FMT_INT4_G128,
    /* frameworks' native schemes: ONNX Runtime (MatMulNBits) and QNN (kernels/ref/fw_ort_qnn.c) */
    QF_FMT_ORT_INT4_B32,
    QF_FMT_ORT_INT4_B128,
    QF_FMT_ORT_INT4_B128_ASYM,
    QF_FMT_QNN_INT8_PC,
    QF_FMT_QNN_INT16_PC,
    QF_FMT_QNN_W4_BLOCK,
    /* frameworks' native schemes: OpenVINO NNCF and MLX (kernels/ref/fw_nncf_mlx.c) */
    QF_FMT_NNCF_INT8_ASYM,
    QF_FMT_NNCF_INT4_SYM_G128,
    QF_FMT_NNCF_INT4_ASYM_G128,
    /* QF_FMT_MLX_AFFINE<bits>_G<group>, e.g. QF_FMT_MLX_AFFINE4_G64, from QF_MLX_AFFINE_FORMATS */
#define QF_MLX_AFFINE_ENUM(B, G) QF_FMT_MLX_AFFINE##B##_G##G,
    QF_MLX_AFFINE_FORMATS(QF_MLX_AFFINE_ENUM)
#undef QF_MLX_AFFINE_ENUM
    QF_FMT_COUNT
} qf_format;

/* Quantize k floats into one row of the format. */
typedef void (*qf_quantize_row_fn)(const float *x, void *y, int64_t k);
/* Decode one row of k weights into floats. */
typedef void (*qf_dequantize_row_fn)(const void *x, float *y, int64_t k);
/* Dot product of a weight row (this format) with an activation row (the act format): *s = w.a */
typedef void (*qf_vec_dot_fn)(int64_t k, const void *w, const void *a, float *s);

typedef struct qf_format_traits {
    const char *name;          /* lookup key, as users type it: "q4_K" */
    int         gguf_type;     /* GGUF/ggml tensor type id, -1 if none */
    int64_t     blck;          /* weights per block; 0 = one scale per row (row_header bytes) */
    size_t      type_size;     /* bytes per block; per-row formats: bytes per weight */
    size_t      row_header;    /* per-row formats: bytes of scale data before the values */
    qf_format   act;           /* activation format for vec_dot (itself for float formats) */
    bool        weight;        /* usable as a weight format (false: activation-only q8_1, q8_K) */
    const char *family;        /* "float", "gguf", "int", or the framework: "openvino", ... */
    const char *summary;       /* one line for `qfleet formats` */
    qf_quantize_row_fn   quantize_ref;
    qf_dequantize_row_fn dequantize;
    qf_vec_dot_fn        vec_dot_ref;
} qf_format_traits;

/* Traits of fmt; fmt must be < QF_FMT_COUNT. Static storage. */
const qf_format_traits *qf_format_get(qf_format fmt);

/* Looks a format up by its name (case-sensitive, as in the table). QF_EFORMAT if unknown. */
int qf_format_from_name(const char *name, qf_format *out);

/* Bytes of one row of ncols weights (ncols already checked). */
size_t qf_format_row_size(qf_format fmt, int64_t ncols);

/* Bits per weight of a row of ncols weights: exact for block formats, including the
 * per-row scale for per-row formats. */
double qf_format_bpw(qf_format fmt, int64_t ncols);

/* Nominal bits per weight, as tables print it (per-row formats: the values' bits alone). */
double qf_format_bpw_nominal(qf_format fmt);

/* 0 if a row of ncols weights fits the format and its activation format; QF_ESHAPE otherwise
 * (with a message naming the format, ncols and the block size it must be a multiple of). */
int qf_format_check_cols(qf_format fmt, int64_t ncols);

/* Quantize an nrows x ncols float matrix into dst (nrows * row_size bytes). */
int qf_quantize(qf_format fmt, const float *src, void *dst, int64_t nrows, int64_t ncols);

/* Decode nrows rows back to floats. */
int qf_dequantize(qf_format fmt, const void *src, float *dst, int64_t nrows, int64_t ncols);

/* y = W x with the reference kernels: x is quantized once to the activation format, then each
 * row's vec_dot_ref. W is nrows x ncols in fmt. QF_ENOMEM if the activation row can't be had. */
int qf_matvec_ref(qf_format fmt, const void *w, const float *x, float *y,
                  int64_t nrows, int64_t ncols);

/* binary16 / bfloat16 conversions, bit-exact with ggml's (round to nearest even, NaN kept). */
qf_half qf_fp32_to_fp16(float f);
float   qf_fp16_to_fp32(qf_half h);
qf_bf16 qf_fp32_to_bf16(float f);
float   qf_bf16_to_fp32(qf_bf16 h);

#endif
