/* qf_ref.h - the reference row kernels, one set per format (see qf_formats.h for the contract).
 *
 * These are the readable scalar definitions every faster variant is tested against. The GGUF
 * formats' quantizers reproduce llama.cpp's reference quantizers (quantize_row_*_ref in
 * ggml-quants.c) byte for byte; their dot products quantize the activations to the partner
 * format (q8_0, q8_1, q8_K) and accumulate in the same order as ggml's generic code.
 * Only kernels/formats.c, the tests and the benchmarks call these directly.
 */
#ifndef QF_REF_H
#define QF_REF_H

#include <stdint.h>

/* kernels/ref/float.c */
void qf_quantize_row_f32_ref(const float *x, void *y, int64_t k);
void qf_dequantize_row_f32(const void *x, float *y, int64_t k);
void qf_vec_dot_f32_f32_ref(int64_t k, const void *w, const void *a, float *s);
void qf_quantize_row_f16_ref(const float *x, void *y, int64_t k);
/* Every binary16 bit pattern's value (65,536 floats, built once from qf_fp16_to_fp32): the
 * decode table the f16 rows and the fast kernels' f16 block scales look up. */
const float *qf_f16_table(void);
void qf_dequantize_row_f16(const void *x, float *y, int64_t k);
void qf_vec_dot_f16_f16_ref(int64_t k, const void *w, const void *a, float *s);
void qf_quantize_row_bf16_ref(const float *x, void *y, int64_t k);
void qf_dequantize_row_bf16(const void *x, float *y, int64_t k);
void qf_vec_dot_bf16_bf16_ref(int64_t k, const void *w, const void *a, float *s);

/* kernels/ref/legacy.c */
void qf_quantize_row_q8_0_ref(const float *x, void *y, int64_t k);
void qf_dequantize_row_q8_0(const void *x, float *y, int64_t k);
void qf_vec_dot_q8_0_q8_0_ref(int64_t k, const void *w, const void *a, float *s);
void qf_quantize_row_q8_1_ref(const float *x, void *y, int64_t k);
void qf_dequantize_row_q8_1(const void *x, float *y, int64_t k);
void qf_quantize_row_q4_0_ref(const float *x, void *y, int64_t k);
void qf_dequantize_row_q4_0(const void *x, float *y, int64_t k);
void qf_vec_dot_q4_0_q8_0_ref(int64_t k, const void *w, const void *a, float *s);
void qf_quantize_row_q4_1_ref(const float *x, void *y, int64_t k);
void qf_dequantize_row_q4_1(const void *x, float *y, int64_t k);
void qf_vec_dot_q4_1_q8_1_ref(int64_t k, const void *w, const void *a, float *s);
void qf_quantize_row_q5_0_ref(const float *x, void *y, int64_t k);
void qf_dequantize_row_q5_0(const void *x, float *y, int64_t k);
void qf_vec_dot_q5_0_q8_0_ref(int64_t k, const void *w, const void *a, float *s);
void qf_quantize_row_q5_1_ref(const float *x, void *y, int64_t k);
void qf_dequantize_row_q5_1(const void *x, float *y, int64_t k);
void qf_vec_dot_q5_1_q8_1_ref(int64_t k, const void *w, const void *a, float *s);

/* kernels/ref/kquants.c */
void qf_quantize_row_q2_K_ref(const float *x, void *y, int64_t k);
void qf_dequantize_row_q2_K(const void *x, float *y, int64_t k);
void qf_vec_dot_q2_K_q8_K_ref(int64_t k, const void *w, const void *a, float *s);
void qf_quantize_row_q3_K_ref(const float *x, void *y, int64_t k);
void qf_dequantize_row_q3_K(const void *x, float *y, int64_t k);
void qf_vec_dot_q3_K_q8_K_ref(int64_t k, const void *w, const void *a, float *s);
void qf_quantize_row_q4_K_ref(const float *x, void *y, int64_t k);
void qf_dequantize_row_q4_K(const void *x, float *y, int64_t k);
void qf_vec_dot_q4_K_q8_K_ref(int64_t k, const void *w, const void *a, float *s);
void qf_quantize_row_q5_K_ref(const float *x, void *y, int64_t k);
void qf_dequantize_row_q5_K(const void *x, float *y, int64_t k);
void qf_vec_dot_q5_K_q8_K_ref(int64_t k, const void *w, const void *a, float *s);
void qf_quantize_row_q6_K_ref(const float *x, void *y, int64_t k);
void qf_dequantize_row_q6_K(const void *x, float *y, int64_t k);
void qf_vec_dot_q6_K_q8_K_ref(int64_t k, const void *w, const void *a, float *s);
void qf_quantize_row_q8_K_ref(const float *x, void *y, int64_t k);
void qf_dequantize_row_q8_K(const void *x, float *y, int64_t k);

/* kernels/ref/iq4_nl.c */
void qf_quantize_row_iq4_nl_ref(const float *x, void *y, int64_t k);
void qf_dequantize_row_iq4_nl(const void *x, float *y, int64_t k);
void qf_vec_dot_iq4_nl_q8_0_ref(int64_t k, const void *w, const void *a, float *s);

/* kernels/ref/intq.c */
void qf_quantize_row_int8_pc_ref(const float *x, void *y, int64_t k);
void qf_dequantize_row_int8_pc(const void *x, float *y, int64_t k);
void qf_vec_dot_int8_pc_q8_0_ref(int64_t k, const void *w, const void *a, float *s);
void qf_quantize_row_int4_g32_ref(const float *x, void *y, int64_t k);
void qf_dequantize_row_int4_g32(const void *x, float *y, int64_t k);
void qf_vec_dot_int4_g32_q8_0_ref(int64_t k, const void *w, const void *a, float *s);
void qf_quantize_row_int4_g64_ref(const float *x, void *y, int64_t k);
void qf_dequantize_row_int4_g64(const void *x, float *y, int64_t k);
void qf_vec_dot_int4_g64_q8_0_ref(int64_t k, const void *w, const void *a, float *s);
void qf_quantize_row_int4_g128_ref(const float *x, void *y, int64_t k);
void qf_dequantize_row_int4_g128(const void *x, float *y, int64_t k);
void qf_vec_dot_int4_g128_q8_0_ref(int64_t k, const void *w, const void *a, float *s);

/* kernels/ref/fw_ort_qnn.c: ONNX Runtime MatMulNBits INT4 and Qualcomm QNN encodings */
void qf_quantize_row_ort_int4_b32_ref(const float *x, void *y, int64_t k);
void qf_dequantize_row_ort_int4_b32(const void *x, float *y, int64_t k);
void qf_vec_dot_ort_int4_b32_q8_0_ref(int64_t k, const void *w, const void *a, float *s);
void qf_quantize_row_ort_int4_b128_ref(const float *x, void *y, int64_t k);
void qf_dequantize_row_ort_int4_b128(const void *x, float *y, int64_t k);
void qf_vec_dot_ort_int4_b128_q8_0_ref(int64_t k, const void *w, const void *a, float *s);
void qf_quantize_row_ort_int4_b128_asym_ref(const float *x, void *y, int64_t k);
void qf_dequantize_row_ort_int4_b128_asym(const void *x, float *y, int64_t k);
void qf_vec_dot_ort_int4_b128_asym_q8_0_ref(int64_t k, const void *w, const void *a, float *s);
void qf_quantize_row_qnn_int8_pc_ref(const float *x, void *y, int64_t k);
void qf_dequantize_row_qnn_int8_pc(const void *x, float *y, int64_t k);
void qf_vec_dot_qnn_int8_pc_q8_0_ref(int64_t k, const void *w, const void *a, float *s);
void qf_quantize_row_qnn_int16_pc_ref(const float *x, void *y, int64_t k);
void qf_dequantize_row_qnn_int16_pc(const void *x, float *y, int64_t k);
void qf_vec_dot_qnn_int16_pc_f32_ref(int64_t k, const void *w, const void *a, float *s);
void qf_quantize_row_qnn_w4_block_ref(const float *x, void *y, int64_t k);
void qf_dequantize_row_qnn_w4_block(const void *x, float *y, int64_t k);
void qf_vec_dot_qnn_w4_block_q8_0_ref(int64_t k, const void *w, const void *a, float *s);

/* kernels/ref/fw_nncf_mlx.c: OpenVINO NNCF compress_weights and MLX affine. The MLX set is
 * generated from QF_MLX_AFFINE_FORMATS (qf_blocks.h), one triple per (bits, group). */
#include "qf_blocks.h"
void qf_quantize_row_nncf_int8_asym_ref(const float *x, void *y, int64_t k);
void qf_dequantize_row_nncf_int8_asym(const void *x, float *y, int64_t k);
void qf_vec_dot_nncf_int8_asym_q8_0_ref(int64_t k, const void *w, const void *a, float *s);
void qf_quantize_row_nncf_int4_sym_g128_ref(const float *x, void *y, int64_t k);
void qf_dequantize_row_nncf_int4_sym_g128(const void *x, float *y, int64_t k);
void qf_vec_dot_nncf_int4_sym_g128_q8_0_ref(int64_t k, const void *w, const void *a, float *s);
void qf_quantize_row_nncf_int4_asym_g128_ref(const float *x, void *y, int64_t k);
void qf_dequantize_row_nncf_int4_asym_g128(const void *x, float *y, int64_t k);
void qf_vec_dot_nncf_int4_asym_g128_q8_0_ref(int64_t k, const void *w, const void *a, float *s);
#define QF_MLX_AFFINE_PROTOS(B, G)                                                          \
    void qf_quantize_row_mlx_affine##B##_g##G##_ref(const float *x, void *y, int64_t k);    \
    void qf_dequantize_row_mlx_affine##B##_g##G(const void *x, float *y, int64_t k);        \
    void qf_vec_dot_mlx_affine##B##_g##G##_q8_0_ref(int64_t k, const void *w, const void *a, \
                                                   float *s);
QF_MLX_AFFINE_FORMATS(QF_MLX_AFFINE_PROTOS)
#undef QF_MLX_AFFINE_PROTOS

/* The iq4_nl codebook (shared with any backend that decodes iq4_nl). */
extern const int8_t qf_kvalues_iq4nl[16];

#endif
