/* qf_tokenizer.h - text to token ids with the tokenizer a GGUF file describes.
 *
 * Two models, as llama.cpp names them in tokenizer.ggml.model:
 *   "gpt2"  byte-level BPE (GPT-2, Llama 3, Qwen, SmolLM): the text is split into words by the
 *           GPT-2 pre-tokenizer pattern (for "llama-bpe" and "qwen2" pre-tokenizers, digits in
 *           runs of at most 3 and case-insensitive contractions, as Llama 3's pattern), each
 *           byte mapped to its printable stand-in, then tokenizer.ggml.merges applied in rank
 *           order;
 *   "llama" SentencePiece BPE (Llama 2, TinyLlama): spaces become U+2581 with one prefixed,
 *           UTF-8 characters are merged pairwise, highest tokenizer.ggml.scores first (leftmost
 *           on ties), and what is not in the vocabulary falls back to its <0xXX> byte tokens.
 * Special tokens written in the text are not parsed (they are text). Non-ASCII letters and
 * digits are classified by a byte-level approximation (every UTF-8 multi-byte character counts
 * as a letter): exact for ASCII text, which is what the evaluation texts are.
 * The tokenizer keeps pointers into the GGUF mapping: the file must outlive it.
 */
#ifndef QF_TOKENIZER_H
#define QF_TOKENIZER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qf_gguf.h"

typedef struct qf_tokenizer qf_tokenizer;

/* QF_EUNSUP for another tokenizer model, QF_EPARSE for missing or inconsistent metadata
 * (why names the key), QF_ENOMEM. Caller owns *out. */
int qf_tokenizer_new(const qf_gguf *g, qf_tokenizer **out, char *why, size_t why_len);

/* Frees and sets *t to NULL. NULL-safe. */
void qf_tokenizer_destroy(qf_tokenizer **t);

/* The BOS id (tokenizer.ggml.bos_token_id), or -1 if the file has none. */
int32_t qf_tokenizer_bos(const qf_tokenizer *t);

/* Whether the model wants BOS first (tokenizer.ggml.add_bos_token; default: yes if it has one). */
bool qf_tokenizer_adds_bos(const qf_tokenizer *t);

/* Encodes len bytes of text (BOS first if add_bos and the model has one). *ids (caller frees)
 * gets *n ids. QF_ENOMEM, or QF_EPARSE if a byte has no token (a vocabulary without byte
 * tokens). */
int qf_tokenizer_encode(const qf_tokenizer *t, const char *text, size_t len, bool add_bos,
                        int32_t **ids, int64_t *n);

#endif
