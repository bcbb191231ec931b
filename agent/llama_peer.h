/* llama_peer.h - llama.cpp's prebuilt libllama, loaded with dlopen: the model-level peer of our
 * engine (the tests' logits reference, `qfleet bench --op model --vs-llama`, the llama.cpp
 * framework adapter's model runs).
 *
 * libllama ships next to ggml in the npm package @node-llama-cpp/linux-x64 (agent/ggml_peer.h
 * says where that folder is found). As for ggml, llama.h is never included: the functions
 * used are declared here by their documented C signatures and looked up by name, so a missing
 * or renamed symbol is an error with a message, not a crash.
 *
 * llama.h's parameter structs are passed and returned by value and change between releases;
 * they are only ever taken from llama_*_default_params() and handed back, so an opaque buffer
 * larger than any release's struct stands in for them (on the x86-64 and AArch64 ABIs a
 * struct this size is returned through a caller-provided buffer and passed as a copy in
 * memory; the callee reads its own fields from the front). llama_batch from
 * llama_batch_get_one travels the same way. The one exception is qf_llama_peer_context, which
 * sets the leading fields of llama_context_params (n_ctx, n_batch, n_ubatch, n_seq_max,
 * n_threads, n_threads_batch: that order since 2024) after checking that the defaults it
 * read there look like those fields. Not hot: opened once per process.
 */
#ifndef QF_LLAMA_PEER_H
#define QF_LLAMA_PEER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Stands in for llama_model_params, llama_context_params and llama_batch. */
typedef struct qf_llama_opaque {
    uint64_t words[128];
} qf_llama_opaque;

typedef struct qf_llama_peer {
    void *lib;           /* libllama[.vX].so; its ggml libraries come with it (RUNPATH) */
    char  dir[1024];
    char  lib_path[1200];
    /* ggml */
    void (*load_all_from_path)(const char *dir);
    /* llama.h */
    void (*backend_init)(void);
    void (*log_set)(void (*cb)(int level, const char *text, void *user), void *user);
    qf_llama_opaque (*model_default_params)(void);
    qf_llama_opaque (*context_default_params)(void);
    void *(*model_load_from_file)(const char *path, qf_llama_opaque params);
    void *(*init_from_model)(void *model, qf_llama_opaque params);
    const void *(*model_get_vocab)(const void *model);
    int32_t (*vocab_n_tokens)(const void *vocab);
    int32_t (*n_embd)(const void *model);
    int32_t (*n_layer)(const void *model);
    int32_t (*n_head)(const void *model);
    int32_t (*n_head_kv)(const void *model);
    uint64_t (*model_size)(const void *model);      /* bytes of the weights */
    uint64_t (*model_n_params)(const void *model);
    int32_t (*tokenize)(const void *vocab, const char *text, int32_t text_len, int32_t *tokens,
                        int32_t n_tokens_max, bool add_special, bool parse_special);
    qf_llama_opaque (*batch_get_one)(int32_t *tokens, int32_t n_tokens);
    int32_t (*decode)(void *ctx, qf_llama_opaque batch);
    float *(*get_logits_ith)(void *ctx, int32_t i);
    void (*set_n_threads)(void *ctx, int32_t n_threads, int32_t n_threads_batch);
    void (*synchronize)(void *ctx);
    void *(*get_memory)(void *ctx);
    void (*memory_clear)(void *mem, bool data);
    void (*free_ctx)(void *ctx);
    void (*model_free)(void *model);
} qf_llama_peer;

/* Loads libllama from dir (NULL or "": as qf_ggml_default_dir; the first libllama.so or
 * libllama.v*.so in name order), looks up every entry point above (in it and the ggml
 * libraries it needs), loads ggml's backends from the folder (the package builds
 * them as loadable modules) and calls llama_backend_init. QF_ENOENT if the folder has no
 * libllama*.so, QF_EDLOPEN if one will not load or lacks a symbol (named in why). Prints
 * nothing itself; llama.cpp logs to stderr unless quiet (qf_llama_peer_quiet from the
 * start). */
int qf_llama_peer_open(qf_llama_peer *p, const char *dir, bool quiet, char *why,
                       size_t why_len);

/* Where qf_llama_peer_open would load libllama from (dir as there), without loading it:
 * 0 and path filled, or QF_ENOENT with the reason in why. */
int qf_llama_peer_path(const char *dir, char *path, size_t path_len, char *why, size_t why_len);

/* Forgets the handles; the libraries stay mapped for the process's life (ggml's atexit work). */
void qf_llama_peer_close(qf_llama_peer *p);

/* Only llama.cpp's (and ggml's) warnings and errors reach stderr from now on. */
void qf_llama_peer_quiet(const qf_llama_peer *p);

/* A context on model for n_ctx positions, batches of up to n_batch tokens and `threads`
 * threads for both prompt and generation. QF_EUNSUP if the default context parameters do not
 * look like the leading fields this sets (a release that reordered them), QF_ENOMEM if
 * llama.cpp refuses the context. */
int qf_llama_peer_context(const qf_llama_peer *p, void *model, uint32_t n_ctx, uint32_t n_batch,
                          int threads, void **ctx, char *why, size_t why_len);

/* One repetition of llama-bench's pp and tg on ctx (n_ctx >= n_pp + n_tg + 1): from an empty
 * cache one decode of n_pp tokens (*pp_s seconds); then from an empty cache one untimed
 * prompt token and n_tg single-token decodes (*tg_s seconds for all of them). Token ids are
 * any valid ones (speed does not depend on them), the ones model/eval.c's qf_eval_speed
 * uses. QF_EIO with llama_decode's status in why on failure. */
int qf_llama_peer_speed(const qf_llama_peer *p, void *ctx, int32_t n_vocab, int32_t n_pp,
                        int32_t n_tg, double *pp_s, double *tg_s, char *why, size_t why_len);

#endif
