/* ggml_peer.c - dlopen of ggml's prebuilt libraries (see ggml_peer.h).
 *
 * The best CPU variant is chosen the way ggml's own backend loader does it: every
 * libggml-cpu-*.so in the folder is loaded and asked for ggml_backend_score() (0: this host
 * lacks an instruction it needs), the highest wins, ties going to the first name in sorted
 * order so two runs on one host pick the same file. Loading a variant the host cannot run is
 * safe (ggml's loader relies on it too): nothing of it executes before the score says yes.
 * The graph half (qf_ggml_api ...) builds one mul_mat graph for the CPU backend, with the
 * weights where llama.cpp would put them (the CPU_REPACK buffer when ggml repacks the type);
 * its callers time computes of it, so nothing in it runs per compute but the compute itself.
 */
#include "ggml_peer.h"

#include <dirent.h>
#include <dlfcn.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "qf_err.h"
#include "qf_formats.h"

#define CPU_PREFIX "libggml-cpu-"
#define BASELINE_LIB CPU_PREFIX "x64.so"
#define GGML_F32 0                  /* GGML_TYPE_F32 */
#define GGML_TP_PARAMS_BYTES 4096   /* > sizeof(struct ggml_threadpool_params) (~530 bytes) */

const char *qf_ggml_default_dir(const char *dir)
{
    if (dir && *dir)
        return dir;
    dir = getenv("QF_GGML_DIR");
    if (dir && *dir)
        return dir;
#ifdef QF_GGML_DIR_DEFAULT
    return QF_GGML_DIR_DEFAULT;
#else
    return NULL;
#endif
}

/* dir/file, or NULL; why (when not NULL) says why not. */
static void *open_lib(const char *dir, const char *file, int mode, char *why, size_t why_len)
{
    char path[1200];
    int n = snprintf(path, sizeof path, "%s/%s", dir, file);
    if (n < 0 || (size_t)n >= sizeof path) {
        if (why)
            snprintf(why, why_len, "%s: path too long", dir);
        return NULL;
    }
    void *h = dlopen(path, mode);
    if (!h && why)
        snprintf(why, why_len, "cannot load %s: %s", path, dlerror());
    return h;
}

static int is_cpu_lib(const struct dirent *e)
{
    size_t n = strlen(e->d_name);
    return n > strlen(CPU_PREFIX) + 3 && strncmp(e->d_name, CPU_PREFIX, strlen(CPU_PREFIX)) == 0
           && strcmp(e->d_name + n - 3, ".so") == 0;
}

/* Opens the highest-scoring CPU variant of dir into g->cpu; 0 or a qf_err with why filled. */
static int open_best_cpu(qf_ggml *g, char *why, size_t why_len)
{
    struct dirent **names = NULL;
    int n = scandir(g->dir, &names, is_cpu_lib, alphasort);
    if (n < 0) {
        snprintf(why, why_len, "cannot list %s", g->dir);
        return QF_EIO;
    }
    int best_score = 0;
    for (int i = 0; i < n; i++) {
        size_t len = strlen(names[i]->d_name);
        void *h = len < sizeof g->cpu_lib ?
                  open_lib(g->dir, names[i]->d_name, RTLD_NOW | RTLD_LOCAL, NULL, 0) : NULL;
        int (*score)(void) = NULL;
        if (h)
            *(void **)&score = dlsym(h, "ggml_backend_score");
        int s = score ? score() : 0;
        if (s > best_score) {
            if (g->cpu)
                dlclose(g->cpu);
            g->cpu = h;
            best_score = s;
            memcpy(g->cpu_lib, names[i]->d_name, len + 1);
        } else if (h) {
            dlclose(h);
        }
    }
    for (int i = 0; i < n; i++)
        free(names[i]);
    free(names);
    if (!g->cpu) {
        snprintf(why, why_len, "%s: none of its %d %s*.so libraries runs on this host",
                 g->dir, n, CPU_PREFIX);
        return QF_EUNSUP;
    }
    return 0;
}

int qf_ggml_open(qf_ggml *g, const char *dir, qf_ggml_cpu which, char *why, size_t why_len)
{
    memset(g, 0, sizeof *g);
    dir = qf_ggml_default_dir(dir);
    if (!dir) {
        snprintf(why, why_len, "no ggml folder: set QF_GGML_DIR or fetch it with "
                 "scripts/fetch-ggml.sh (make ggml)");
        return QF_ENOENT;
    }
    snprintf(g->dir, sizeof g->dir, "%s", dir);
    char probe[1200];
    struct stat st;
    int n = snprintf(probe, sizeof probe, "%s/libggml-base.so", dir);
    if (n < 0 || (size_t)n >= sizeof probe || stat(probe, &st) != 0) {
        snprintf(why, why_len, "%s has no libggml-base.so: fetch ggml with "
                 "scripts/fetch-ggml.sh (make ggml) or point QF_GGML_DIR / --ggml-dir at it",
                 dir);
        return QF_ENOENT;
    }
    if (!(g->base = open_lib(dir, "libggml-base.so", RTLD_NOW | RTLD_GLOBAL, why, why_len)))
        return QF_EDLOPEN;
    int err = 0;
    if (which == QF_GGML_CPU_BEST) {
        err = open_best_cpu(g, why, why_len);
    } else {
        snprintf(g->cpu_lib, sizeof g->cpu_lib, "%s", BASELINE_LIB);
        if (!(g->cpu = open_lib(dir, BASELINE_LIB, RTLD_NOW | RTLD_GLOBAL, why, why_len)))
            err = QF_EDLOPEN;
    }
    if (err) {
        qf_ggml_close(g);
        return err;
    }
    *(void **)&g->type_name = dlsym(g->base, "ggml_type_name");
    *(void **)&g->type_size = dlsym(g->base, "ggml_type_size");
    *(void **)&g->blck_size = dlsym(g->base, "ggml_blck_size");
    *(void **)&g->quantize_chunk = dlsym(g->base, "ggml_quantize_chunk");
    *(void **)&g->quantize_init = dlsym(g->base, "ggml_quantize_init");
    *(void **)&g->cpu_init = dlsym(g->cpu, "ggml_cpu_init");
    if (!g->type_name || !g->type_size || !g->blck_size || !g->quantize_chunk ||
        !g->quantize_init || !g->cpu_init) {
        snprintf(why, why_len, "%s: a ggml entry point is missing", dir);
        qf_ggml_close(g);
        return QF_EDLOPEN;
    }
    g->cpu_init();
    return 0;
}

void qf_ggml_close(qf_ggml *g)
{
    g->base = g->cpu = NULL;
}

/* ggml's type ids are GGUF's, a column of our format table; ggml's own table has no exported
 * length, and ggml_type_name reads past it for an id it does not have, so only ids we know are
 * asked, and the name ggml gives must match. */
int qf_ggml_type_by_name(const qf_ggml *g, const char *name)
{
    qf_format f;
    if (qf_format_from_name(name, &f) != 0)
        return -1;
    int t = qf_format_get(f)->gguf_type;
    if (t < 0)
        return -1;
    const char *n = g->type_name(t);
    return n && strcmp(n, name) == 0 ? t : -1;
}

void *qf_ggml_sym(const qf_ggml *g, const char *name)
{
    void *p = dlsym(g->base, name);
    return p ? p : dlsym(g->cpu, name);
}

/* Level numbers are ggml.h's enum ggml_log_level (5: the previous message continues). Called
 * from whichever thread logs; the remembered level is only a filter for continuations. */
void qf_ggml_quiet_log(int level, const char *text, void *user)
{
    static _Atomic int last;
    (void)user;
    if (level == 5)
        level = atomic_load(&last);
    else
        atomic_store(&last, level);
    if (level >= 3)
        fputs(text, stderr);
}

/* ---- the graph API ------------------------------------------------------------------------ */

int qf_ggml_api_load(const qf_ggml *g, qf_ggml_api *a, char *why, size_t why_len)
{
    static const struct { size_t off; const char *name; } syms[] = {
#define S_(field, name) { offsetof(qf_ggml_api, field), name }
        S_(init, "ggml_init"), S_(free_ctx, "ggml_free"),
        S_(tensor_overhead, "ggml_tensor_overhead"),
        S_(graph_overhead_custom, "ggml_graph_overhead_custom"),
        S_(new_tensor_2d, "ggml_new_tensor_2d"), S_(mul_mat, "ggml_mul_mat"),
        S_(new_graph_custom, "ggml_new_graph_custom"),
        S_(build_forward_expand, "ggml_build_forward_expand"),
        S_(cpu_backend_init, "ggml_backend_cpu_init"),
        S_(cpu_set_n_threads, "ggml_backend_cpu_set_n_threads"),
        S_(cpu_set_threadpool, "ggml_backend_cpu_set_threadpool"),
        S_(backend_free, "ggml_backend_free"), S_(cpu_reg, "ggml_backend_cpu_reg"),
        S_(reg_dev_get, "ggml_backend_reg_dev_get"),
        S_(reg_proc_address, "ggml_backend_reg_get_proc_address"),
        S_(buft_name, "ggml_backend_buft_name"),
        S_(cpu_buffer_type, "ggml_backend_cpu_buffer_type"),
        S_(alloc_ctx_tensors, "ggml_backend_alloc_ctx_tensors_from_buft"),
        S_(buffer_free, "ggml_backend_buffer_free"),
        S_(dev_supports_op, "ggml_backend_dev_supports_op"),
        S_(tensor_set, "ggml_backend_tensor_set"), S_(tensor_get, "ggml_backend_tensor_get"),
        S_(gallocr_new, "ggml_gallocr_new"),
        S_(gallocr_alloc_graph, "ggml_gallocr_alloc_graph"),
        S_(gallocr_free, "ggml_gallocr_free"),
        S_(graph_compute, "ggml_backend_graph_compute"),
        S_(tp_params_init, "ggml_threadpool_params_init"), S_(tp_new, "ggml_threadpool_new"),
        S_(tp_free, "ggml_threadpool_free"), S_(tp_pause, "ggml_threadpool_pause"),
        S_(tp_resume, "ggml_threadpool_resume"), S_(cpu_traits, "ggml_get_type_traits_cpu"),
        S_(log_set, "ggml_log_set"),
#undef S_
    };
    memset(a, 0, sizeof *a);
    for (size_t i = 0; i < sizeof syms / sizeof syms[0]; i++) {
        void *p = qf_ggml_sym(g, syms[i].name);
        if (!p) {
            snprintf(why, why_len, "%s/%s: no symbol %s", g->dir, g->cpu_lib, syms[i].name);
            return QF_EDLOPEN;
        }
        memcpy((char *)a + syms[i].off, &p, sizeof p);
    }
    *(void **)&a->version = qf_ggml_sym(g, "ggml_version");
    *(void **)&a->commit = qf_ggml_sym(g, "ggml_commit");
    a->log_set(qf_ggml_quiet_log, NULL);
    a->dev = a->reg_dev_get(a->cpu_reg(), 0);
    void *fp = a->reg_proc_address(a->cpu_reg(), "ggml_backend_dev_get_extra_bufts");
    if (a->dev && fp) {
        void **(*extra)(void *dev);
        memcpy(&extra, &fp, sizeof fp);
        for (void **b = extra(a->dev); b && *b; b++)
            if (strcmp(a->buft_name(*b), "CPU_REPACK") == 0)
                a->repack_buft = *b;
    }
    return 0;
}

void qf_ggml_graph_free(const qf_ggml_api *a, qf_ggml_graph *g)
{
    if (g->galloc)
        a->gallocr_free(g->galloc);
    if (g->buf_w)
        a->buffer_free(g->buf_w);
    if (g->buf_x)
        a->buffer_free(g->buf_x);
    if (g->ctx_g)
        a->free_ctx(g->ctx_g);
    if (g->ctx_x)
        a->free_ctx(g->ctx_x);
    if (g->ctx_w)
        a->free_ctx(g->ctx_w);
    free(g->w);
    memset(g, 0, sizeof *g);
}

/* Builds the graph with the weights in buft. *unsupported (nothing left allocated) if buft is
 * the repack type and ggml does not repack this type and shape: its set_tensor would find no
 * repack traits. */
static int graph_build_in(const qf_ggml_api *a, void *buft, int type, int64_t rows, int64_t cols,
                          const uint8_t *w, size_t wbytes, int ncopies, const float *x,
                          int64_t n, qf_ggml_graph *g, bool *unsupported)
{
    size_t nodes = 2 * (size_t)ncopies + 8;
    memset(g, 0, sizeof *g);
    *unsupported = false;
    g->w = calloc((size_t)ncopies, sizeof *g->w);
    g->ctx_w = a->init((qf_ggml_init_params){ a->tensor_overhead() * (size_t)(ncopies + 1),
                                              NULL, true });
    g->ctx_x = a->init((qf_ggml_init_params){ a->tensor_overhead() * 2, NULL, true });
    g->ctx_g = a->init((qf_ggml_init_params){
        a->tensor_overhead() * nodes + a->graph_overhead_custom(nodes, false), NULL, true });
    if (!g->w || !g->ctx_w || !g->ctx_x || !g->ctx_g)
        goto fail;
    void *xt = a->new_tensor_2d(g->ctx_x, GGML_F32, cols, n);
    g->graph = a->new_graph_custom(g->ctx_g, nodes, false);
    for (int c = 0; c < ncopies; c++) {
        g->w[c] = a->new_tensor_2d(g->ctx_w, type, cols, rows);
        void *y = a->mul_mat(g->ctx_g, g->w[c], xt);
        a->build_forward_expand(g->graph, y);
        if (!g->y0)
            g->y0 = y;
    }
    if (!(g->buf_w = a->alloc_ctx_tensors(g->ctx_w, buft)) ||
        !(g->buf_x = a->alloc_ctx_tensors(g->ctx_x, a->cpu_buffer_type())))
        goto fail;
    if (buft == a->repack_buft && !a->dev_supports_op(a->dev, g->y0)) {
        *unsupported = true;
        goto fail;
    }
    for (int c = 0; c < ncopies; c++)
        a->tensor_set(g->w[c], w + (size_t)c * wbytes, 0, wbytes);
    a->tensor_set(xt, x, 0, sizeof(float) * (size_t)(n * cols));
    if (!(g->galloc = a->gallocr_new(a->cpu_buffer_type())) ||
        !a->gallocr_alloc_graph(g->galloc, g->graph))
        goto fail;
    g->repacked = buft == a->repack_buft;
    return 0;
fail:
    qf_ggml_graph_free(a, g);
    return *unsupported ? 0 : QF_ENOMEM;
}

int qf_ggml_graph_build(const qf_ggml_api *a, int type, int64_t rows, int64_t cols,
                        const uint8_t *w, size_t wbytes, int ncopies, const float *x, int64_t n,
                        qf_ggml_graph *g, char *why, size_t why_len)
{
    bool unsupported = true;
    int err = 0;
    if (a->repack_buft)
        err = graph_build_in(a, a->repack_buft, type, rows, cols, w, wbytes, ncopies, x, n, g,
                             &unsupported);
    if (!err && unsupported)
        err = graph_build_in(a, a->cpu_buffer_type(), type, rows, cols, w, wbytes, ncopies, x,
                             n, g, &unsupported);
    if (err)
        snprintf(why, why_len, "ggml could not allocate a %" PRId64 "x%" PRId64 " graph of %d "
                 "copies", rows, cols, ncopies);
    return err;
}

void qf_ggml_graph_output(const qf_ggml_api *a, const qf_ggml_graph *g, float *y,
                          size_t n_floats)
{
    a->tensor_get(g->y0, y, 0, n_floats * sizeof *y);
}

void qf_ggml_backend_free(const qf_ggml_api *a, qf_ggml_backend *b)
{
    if (b->backend)
        a->backend_free(b->backend);
    if (b->tp)
        a->tp_free(b->tp);
    memset(b, 0, sizeof *b);
}

int qf_ggml_backend_new(const qf_ggml_api *a, int n, const cpu_set_t *unbind,
                        qf_ggml_backend *b, char *why, size_t why_len)
{
    _Alignas(64) unsigned char params[GGML_TP_PARAMS_BYTES];
    memset(b, 0, sizeof *b);
    a->tp_params_init(params, n);
    cpu_set_t mine;
    bool rebind = unbind &&
                  pthread_getaffinity_np(pthread_self(), sizeof mine, &mine) == 0 &&
                  pthread_setaffinity_np(pthread_self(), sizeof *unbind, unbind) == 0;
    b->tp = a->tp_new(params);
    if (rebind)
        pthread_setaffinity_np(pthread_self(), sizeof mine, &mine);
    b->backend = a->cpu_backend_init();
    if (!b->tp || !b->backend) {
        qf_ggml_backend_free(a, b);
        snprintf(why, why_len, "ggml could not start a CPU backend of %d threads", n);
        return QF_ENOMEM;
    }
    a->cpu_set_n_threads(b->backend, n);
    a->cpu_set_threadpool(b->backend, b->tp);
    a->tp_pause(b->tp);
    return 0;
}

int qf_ggml_backend_compute(const qf_ggml_api *a, const qf_ggml_backend *b,
                            const qf_ggml_graph *g, char *why, size_t why_len)
{
    a->tp_resume(b->tp);
    int st = a->graph_compute(b->backend, g->graph);
    a->tp_pause(b->tp);
    if (st == 0)
        return 0;
    snprintf(why, why_len, "ggml graph compute failed (status %d)", st);
    return QF_EUNSUP;
}
