/* qf_hf_llama.h - a Hugging Face llama-family checkpoint folder, seen as a GGUF model.
 *
 * A checkpoint folder holds config.json (the hyperparameters), tokenizer.json (the BPE
 * vocabulary and merges), optionally tokenizer_config.json (special tokens, chat template),
 * and the weights as safetensors (model.safetensors, or shards listed by
 * model.safetensors.index.json). Opening one reads and checks all of it: the hyperparameters
 * against each other, every weight's name against llama.cpp's llama architecture and its
 * shape against the hyperparameters, the vocabulary against vocab_size. What comes out is
 * what llama.cpp's convert_hf_to_gguf.py would write for the same folder: the llama
 * architecture's metadata keys, the tokenizer as tokenizer.ggml.* keys, and the tensors
 * under their GGUF names with GGUF dims (dims[0] is the row length: an HF weight of shape
 * [out, in] becomes dims {in, out}). Like convert, q_proj and k_proj rows are permuted to undo
 * HF's rotary layout (each head's two halves interleaved back), or llama.cpp's RoPE would
 * rotate the wrong pairs.
 *
 * Called by `qfleet quantize` (cli/cmd_quantize.c), which decides the output types and writes
 * the file; conversion to float happens one tensor at a time, so memory stays at one tensor.
 */
#ifndef QF_HF_LLAMA_H
#define QF_HF_LLAMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qf_gguf.h"
#include "qf_safetensors.h"

typedef struct qf_hf_llama qf_hf_llama;

/* The hyperparameters read from config.json, after defaults (HF LlamaConfig's). */
typedef struct qf_hf_llama_hparams {
    int64_t n_embd;          /* hidden_size */
    int64_t n_ff;            /* intermediate_size */
    int64_t n_layer;         /* num_hidden_layers */
    int64_t n_head;          /* num_attention_heads */
    int64_t n_head_kv;       /* num_key_value_heads (default n_head) */
    int64_t head_dim;        /* head_dim (default n_embd / n_head) */
    int64_t n_vocab;         /* vocab_size */
    int64_t n_ctx_train;     /* max_position_embeddings */
    double  rms_eps;         /* rms_norm_eps */
    double  rope_theta;      /* rope_theta */
    bool    tied_embeddings; /* tie_word_embeddings, or no lm_head.weight in the files */
} qf_hf_llama_hparams;

/* One output tensor. */
typedef struct qf_hf_tensor {
    char        name[QF_GGUF_MAX_NAME + 1];  /* GGUF name, "blk.3.attn_q.weight" */
    uint32_t    n_dims;
    int64_t     dims[QF_GGUF_MAX_DIMS];      /* ggml order, dims[0] innermost; unused = 1 */
    int64_t     nelem;
    const qf_st_tensor *src;                 /* NULL for tensors computed here (rope_freqs) */
    int64_t     permute_heads;               /* > 0: rows permuted with this many heads */
} qf_hf_tensor;

/* Opens and checks the checkpoint folder dir. Caller owns *out (qf_hf_llama_destroy).
 * QF_ENOENT (a file missing), QF_EPARSE (a malformed file, a tensor llama has no name for,
 * a shape that disagrees with config.json), QF_EUNSUP (not a llama-family model or not a BPE
 * tokenizer), QF_ENOMEM; one line on stderr names the file and field. */
int qf_hf_llama_open(const char *dir, qf_hf_llama **out);

/* Frees; *m becomes NULL. NULL-safe. */
void qf_hf_llama_destroy(qf_hf_llama **m);

const qf_hf_llama_hparams *qf_hf_llama_hparams_get(const qf_hf_llama *m);

/* Sets the model's metadata in w: general.*, llama.* and tokenizer.* keys (not
 * general.file_type, which depends on the output types). Errors as qf_gguf_writer_set_*. */
int qf_hf_llama_set_metadata(const qf_hf_llama *m, qf_gguf_writer *w);

/* Output tensors in GGUF order: token_embd, rope_freqs (llama3 RoPE scaling), each block's
 * attn_norm, attn_q/k/v/output, ffn_norm, ffn_gate/up/down, then output_norm and output. */
size_t qf_hf_llama_tensor_count(const qf_hf_llama *m);
const qf_hf_tensor *qf_hf_llama_tensor_at(const qf_hf_llama *m, size_t i);

/* Tensor i as nelem floats in GGUF order (converted from its dtype, rows permuted where
 * permute_heads says). QF_EUNSUP for a dtype that does not convert, QF_ENOMEM. */
int qf_hf_llama_tensor_to_float(const qf_hf_llama *m, size_t i, float *dst);

/* convert_hf_to_gguf.py's LlamaModel.permute on a row-major [rows, cols] matrix: viewed as
 * (n_head, 2, rows / n_head / 2, cols), axes 1 and 2 swapped. rows must be a multiple of
 * 2 * n_head. dst and src must not overlap. */
void qf_hf_llama_permute(const float *src, float *dst, int64_t rows, int64_t cols,
                         int64_t n_head);

/* True if dir looks like an HF checkpoint folder (holds a config.json). */
bool qf_hf_llama_is_checkpoint(const char *dir);

#endif
