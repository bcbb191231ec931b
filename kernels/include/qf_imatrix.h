/* qf_imatrix.h - importance-weighted quantization of the GGUF formats, as llama.cpp does it
 * with an importance matrix ("imatrix").
 *
 * An importance vector has one non-negative entry per column (input channel) of a weight
 * matrix: llama.cpp's llama-imatrix measures it as the mean of the squared activations that
 * reach that column. Where ggml's quantizers take such "quant_weights" (q4_0, q4_1, q5_0, q5_1,
 * q2_K .. q6_K, iq4_nl), the error each weight may make is scaled by its column's importance,
 * so the scales and levels chosen favour the columns the model actually uses. The bytes are
 * exactly those of ggml_quantize_chunk(type, src, dst, 0, nrows, ncols, importance), and they
 * decode with the ordinary dequantizers: the weighting changes the choice, not the layout.
 * Formats ggml quantizes without weights (q8_0, the float and our own int formats) quantize
 * as qf_quantize does, the importance ignored, as ggml ignores it.
 *
 * Callers: `qfleet quantize --imatrix` (cli/cmd_quantize.c), GPTQ's grid choice per block, the
 * tests. The reference implementation (kernels/ref/imatrix.c) is scalar and readable. Cost
 * against the plain reference quantizer (measured, 256 x 4096): the legacy formats turn one
 * pass into a search of 19 (q4_0, q5_0) or 37 (q4_1, q5_1) candidate scales, 35-140x slower
 * (10-40 MB/s of input); q2_K .. q5_K 2-3x; q6_K and iq4_nl search either way, about the same.
 */
#ifndef QF_IMATRIX_H
#define QF_IMATRIX_H

#include <stdbool.h>
#include <stdint.h>

#include "qf_formats.h"

/* True if ggml's quantizer for fmt honours importance weights (the list above). */
bool qf_quantize_uses_importance(qf_format fmt);

/* Quantizes an nrows x ncols float matrix into dst (nrows * row_size bytes) with importance[0
 * .. ncols) weighting each column; importance NULL is qf_quantize. QF_ESHAPE for a shape the
 * format cannot hold, QF_EINVAL (with the column named) for a negative or non-finite importance.
 * Note for callers quantizing part of a row: q4_0, q4_1, q5_0 and q5_1 scale the weights by the
 * row's mean square (sigma2 over the ncols given), the K-quants and iq4_nl by their own block's,
 * so a lone block of a legacy format matches ggml's bytes only for the row it was cut from if
 * that row's mean square equals the block's. */
int qf_quantize_weighted(qf_format fmt, const float *src, void *dst, int64_t nrows,
                         int64_t ncols, const float *importance);

#endif
