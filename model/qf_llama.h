/* qf_llama.h - a small, readable reference engine for llama-family GGUF models.
 *
 * Loads a GGUF file written for llama.cpp's "llama" architecture (token embedding, per layer
 * RMSNorm -> grouped-query attention with RoPE -> RMSNorm -> SwiGLU feed-forward, final RMSNorm,
 * output head, tied to the embedding when the file has no output.weight) and runs it on the
 * CPU. Every matrix product goes through the kernel table (qf_kernels.h, qf_matmul.h) in the
 * tensor's own format, so any format quantfleet supports runs, with the activations quantized
 * to the format's partner (q8_0, q8_1, q8_K) exactly as llama.cpp's CPU backend does; the
 * attention is plain loops that round as llama.cpp's default context does (an f16 KV cache,
 * flash attention with Q and the value accumulator in f16), so our logits can be compared with
 * llama.cpp's closely.
 *
 * The weights stay in the file's read-only mapping (qf_gguf): loading costs no copy. Not
 * thread-safe: one caller drives a model; the matrix products use the model's own pool.
 * Who calls it: model/eval.c (`qfleet eval`), the agent's eval job, the tests.
 */
#ifndef QF_LLAMA_H
#define QF_LLAMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qf_gguf.h"
#include "qf_kernels.h"

typedef struct qf_llama_hparams {
    int64_t n_vocab, n_embd, n_layer, n_head, n_head_kv, n_ff, n_rot, n_ctx_train;
    int64_t head_dim;
    float   rms_eps;
    float   rope_base;
} qf_llama_hparams;

typedef struct qf_llama_opts {
    int64_t n_ctx;         /* positions the KV cache holds (and the largest forward batch) */
    int     threads;       /* >= 1 */
    bool    force_isa;     /* false: the best kernels the host runs */
    qf_isa  isa;
    /* requant: every weight matrix is decoded and quantized to requant_fmt at load, in
     * memory, as `qfleet quantize --type` would write it (llama-quantize --pure): a matrix
     * whose rows do not split into the format's blocks keeps its own format. How the agent's
     * eval job measures a scheme on a model without writing a file per scheme. */
    bool      requant;
    qf_format requant_fmt;
} qf_llama_opts;

typedef struct qf_llama qf_llama;

/* Opens path and checks everything the forward pass will rely on: the architecture, the
 * hyper-parameters, every tensor's presence, type (a format of our table) and shape. Errors
 * (QF_EIO, QF_EPARSE, QF_EUNSUP naming the tensor or key, QF_ENOMEM) with a reason in why.
 * Caller owns *out. */
int qf_llama_load(const char *path, const qf_llama_opts *opts, qf_llama **out, char *why,
                  size_t why_len);

/* Frees everything and sets *m to NULL. NULL-safe. */
void qf_llama_destroy(qf_llama **m);

const qf_llama_hparams *qf_llama_hparams_of(const qf_llama *m);

/* The GGUF file, for its metadata (the tokenizer reads it). Valid until destroy. */
const qf_gguf *qf_llama_gguf(const qf_llama *m);

/* Bytes of the weight tensors as stored (what a pass over the model reads). */
uint64_t qf_llama_weight_bytes(const qf_llama *m);

/* Bytes the engine allocated: KV cache, activations, scratch. */
uint64_t qf_llama_state_bytes(const qf_llama *m);

/* Forgets the KV cache: the next forward starts at position 0. */
void qf_llama_reset(qf_llama *m);

/* Positions in the KV cache so far. */
int64_t qf_llama_pos(const qf_llama *m);

/* Runs n tokens at the next n positions, appending them to the KV cache. logits: n x n_vocab
 * floats if all_logits, else n_vocab floats for the last token only. QF_ERANGE (why says)
 * if a token id is outside the vocabulary or the cache would overflow n_ctx. */
int qf_llama_forward(qf_llama *m, const int32_t *tokens, int64_t n, bool all_logits,
                     float *logits, char *why, size_t why_len);

#endif
