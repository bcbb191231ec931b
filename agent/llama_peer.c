/* llama_peer.c - dlopen of llama.cpp's libllama (see llama_peer.h).
 *
 * The package names its libraries after its release (libllama.v0.5.0.so), so the folder is
 * searched for libllama.so or libllama.v*.so (not libllama-common.so, a helper library).
 * libllama finds its ggml libraries through its own RUNPATH ($ORIGIN), and dlsym on its
 * handle searches them too, so one handle serves both. Timing in qf_llama_peer_speed reads
 * the clock around llama_decode + llama_synchronize, as llama-bench does.
 */
#include "llama_peer.h"

#include <dirent.h>
#include <dlfcn.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ggml_peer.h"
#include "qf_err.h"
#include "qf_time.h"

#define LIB_PREFIX "libllama."

static int is_libllama(const struct dirent *e)
{
    size_t n = strlen(e->d_name);
    return n >= strlen(LIB_PREFIX) + 2 && strncmp(e->d_name, LIB_PREFIX, strlen(LIB_PREFIX)) == 0
           && strcmp(e->d_name + n - 3, ".so") == 0
           && (n == strlen("libllama.so") || e->d_name[strlen(LIB_PREFIX)] == 'v');
}

int qf_llama_peer_path(const char *dir, char *path, size_t path_len, char *why, size_t why_len)
{
    dir = qf_ggml_default_dir(dir);
    if (!dir) {
        snprintf(why, why_len, "no llama.cpp folder: set QF_GGML_DIR or fetch it with "
                 "scripts/fetch-ggml.sh (make ggml)");
        return QF_ENOENT;
    }
    struct dirent **names = NULL;
    int n = scandir(dir, &names, is_libllama, alphasort);
    if (n < 0) {
        snprintf(why, why_len, "cannot list %s (no llama.cpp there)", dir);
        return QF_ENOENT;
    }
    int err = 0;
    if (n == 0) {
        snprintf(why, why_len, "%s has no libllama.so or libllama.v*.so: fetch it with "
                 "scripts/fetch-ggml.sh (make ggml)", dir);
        err = QF_ENOENT;
    } else {
        int len = snprintf(path, path_len, "%s/%s", dir, names[0]->d_name);
        if (len < 0 || (size_t)len >= path_len) {
            snprintf(why, why_len, "%s: path too long", dir);
            err = QF_ENOENT;
        }
    }
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
    return err;
}

int qf_llama_peer_open(qf_llama_peer *p, const char *dir, bool quiet, char *why,
                       size_t why_len)
{
    static const struct { size_t off; const char *name; } syms[] = {
#define S_(field, name) { offsetof(qf_llama_peer, field), name }
        S_(load_all_from_path, "ggml_backend_load_all_from_path"),
        S_(backend_init, "llama_backend_init"), S_(log_set, "llama_log_set"),
        S_(model_default_params, "llama_model_default_params"),
        S_(context_default_params, "llama_context_default_params"),
        S_(model_load_from_file, "llama_model_load_from_file"),
        S_(init_from_model, "llama_init_from_model"),
        S_(model_get_vocab, "llama_model_get_vocab"),
        S_(vocab_n_tokens, "llama_vocab_n_tokens"),
        S_(n_embd, "llama_model_n_embd"), S_(n_layer, "llama_model_n_layer"),
        S_(n_head, "llama_model_n_head"), S_(n_head_kv, "llama_model_n_head_kv"),
        S_(model_size, "llama_model_size"), S_(model_n_params, "llama_model_n_params"),
        S_(tokenize, "llama_tokenize"), S_(batch_get_one, "llama_batch_get_one"),
        S_(decode, "llama_decode"), S_(get_logits_ith, "llama_get_logits_ith"),
        S_(set_n_threads, "llama_set_n_threads"), S_(synchronize, "llama_synchronize"),
        S_(get_memory, "llama_get_memory"), S_(memory_clear, "llama_memory_clear"),
        S_(free_ctx, "llama_free"), S_(model_free, "llama_model_free"),
#undef S_
    };
    memset(p, 0, sizeof *p);
    int err = qf_llama_peer_path(dir, p->lib_path, sizeof p->lib_path, why, why_len);
    if (err)
        return err;
    snprintf(p->dir, sizeof p->dir, "%s", qf_ggml_default_dir(dir));
    if (!(p->lib = dlopen(p->lib_path, RTLD_NOW | RTLD_GLOBAL))) {
        snprintf(why, why_len, "cannot load %s: %s", p->lib_path, dlerror());
        return QF_EDLOPEN;
    }
    for (size_t i = 0; i < sizeof syms / sizeof syms[0]; i++) {
        void *f = dlsym(p->lib, syms[i].name);
        if (!f) {
            snprintf(why, why_len, "%s: no symbol %s", p->lib_path, syms[i].name);
            qf_llama_peer_close(p);
            return QF_EDLOPEN;
        }
        memcpy((char *)p + syms[i].off, &f, sizeof f);
    }
    if (quiet)
        qf_llama_peer_quiet(p);
    /* The package builds ggml with dynamically loaded backends: the CPU one must be loaded. */
    p->load_all_from_path(p->dir);
    p->backend_init();
    return 0;
}

void qf_llama_peer_close(qf_llama_peer *p)
{
    p->lib = NULL;
}

void qf_llama_peer_quiet(const qf_llama_peer *p)
{
    p->log_set(qf_ggml_quiet_log, NULL);
}

/* The leading fields of llama_context_params. */
typedef struct ctx_head {
    uint32_t n_ctx, n_batch, n_ubatch, n_seq_max;
    int32_t  n_threads, n_threads_batch;
} ctx_head;

int qf_llama_peer_context(const qf_llama_peer *p, void *model, uint32_t n_ctx, uint32_t n_batch,
                          int threads, void **ctx, char *why, size_t why_len)
{
    qf_llama_opaque cp = p->context_default_params();
    ctx_head h;
    memcpy(&h, &cp, sizeof h);
    /* llama.cpp's defaults: n_seq_max 1, n_ubatch <= n_batch, both thread counts equal (0:
     * automatic, in recent releases). */
    if (h.n_seq_max != 1 || h.n_ubatch == 0 || h.n_ubatch > h.n_batch ||
        h.n_threads != h.n_threads_batch || h.n_threads < 0) {
        snprintf(why, why_len, "%s: llama_context_params does not start with n_ctx, n_batch, "
                 "n_ubatch, n_seq_max, n_threads, n_threads_batch (read %u %u %u %u %d %d)",
                 p->lib_path, h.n_ctx, h.n_batch, h.n_ubatch, h.n_seq_max, h.n_threads,
                 h.n_threads_batch);
        return QF_EUNSUP;
    }
    h.n_ctx = n_ctx;
    h.n_batch = n_batch;
    if (h.n_ubatch > n_batch)
        h.n_ubatch = n_batch;
    h.n_threads = h.n_threads_batch = threads;
    memcpy(&cp, &h, sizeof h);
    if (!(*ctx = p->init_from_model(model, cp))) {
        snprintf(why, why_len, "llama_init_from_model refused a context of %u positions",
                 n_ctx);
        return QF_ENOMEM;
    }
    p->set_n_threads(*ctx, threads, threads);
    return 0;
}

/* One timed decode of n tokens (a batch of n, or n batches of one). */
static int decode_timed(const qf_llama_peer *p, void *ctx, int32_t *toks, int32_t n,
                        bool one_by_one, double *s, char *why, size_t why_len)
{
    double t0 = qf_time_mono();
    for (int32_t i = 0; i < (one_by_one ? n : 1); i++) {
        int32_t rc = p->decode(ctx, p->batch_get_one(one_by_one ? &toks[i] : toks,
                                                     one_by_one ? 1 : n));
        if (rc != 0) {
            snprintf(why, why_len, "llama_decode returned %d", rc);
            return QF_EIO;
        }
    }
    p->synchronize(ctx);
    *s = qf_time_mono() - t0;
    return 0;
}

int qf_llama_peer_speed(const qf_llama_peer *p, void *ctx, int32_t n_vocab, int32_t n_pp,
                        int32_t n_tg, double *pp_s, double *tg_s, char *why, size_t why_len)
{
    int32_t n = n_pp > n_tg ? n_pp : n_tg;
    int32_t *toks = malloc((size_t)(n + 1) * sizeof *toks);
    if (!toks) {
        snprintf(why, why_len, "out of memory");
        return QF_ENOMEM;
    }
    for (int32_t i = 0; i < n_pp; i++)
        toks[i] = (int32_t)(((int64_t)i * 7919 + 13) % n_vocab);
    void *mem = p->get_memory(ctx);
    p->memory_clear(mem, true);
    double dummy;
    int err = decode_timed(p, ctx, toks, n_pp, false, pp_s, why, why_len);
    p->memory_clear(mem, true);
    for (int32_t i = 0; i <= n_tg; i++)
        toks[i] = 13 % n_vocab;
    if (!err)
        err = decode_timed(p, ctx, toks, 1, false, &dummy, why, why_len);
    if (!err)
        err = decode_timed(p, ctx, toks + 1, n_tg, true, tg_s, why, why_len);
    free(toks);
    return err;
}
