/* ggml_peer.h - ggml's prebuilt CPU libraries, loaded with dlopen: the byte-exact reference of
 * the conformance tests and the speed peer of `qfleet bench --op kernels --vs-ggml`.
 *
 * ggml (llama.cpp's kernel library) ships prebuilt in the npm package @node-llama-cpp/linux-x64,
 * fetched by scripts/fetch-ggml.sh (`make ggml`) into a cache folder. We never include its
 * headers: callers declare the few functions they use by their documented C signatures and look
 * them up by name (qf_ggml_sym), so a missing or changed symbol is an error with a message, not
 * a crash. The folder is, first found: the dir argument (the CLI's --ggml-dir), $QF_GGML_DIR,
 * the folder CMake was given (QF_GGML_DIR_DEFAULT). The libraries stay mapped for the life of
 * the process (ggml registers atexit work that must find its code). Not hot: opened once.
 */
#ifndef QF_GGML_PEER_H
#define QF_GGML_PEER_H

#include <sched.h>   /* cpu_set_t (the build defines _GNU_SOURCE) */
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* ggml's row functions, by the signatures of ggml.h / ggml-cpu.h. */
typedef void (*qf_ggml_from_float)(const float *x, void *y, int64_t k);
typedef void (*qf_ggml_to_float)(const void *x, float *y, int64_t k);
typedef void (*qf_ggml_vec_dot)(int n, float *s, size_t bs, const void *x, size_t bx,
                                const void *y, size_t by, int nrc);

/* Which libggml-cpu-*.so: the baseline x86-64 build (runs anywhere, what the byte-exactness
 * tests compare with) or the best variant this host runs, chosen as ggml's own loader does,
 * by each variant's ggml_backend_score() (what llama.cpp runs: the speed peer). */
typedef enum qf_ggml_cpu { QF_GGML_CPU_BASELINE, QF_GGML_CPU_BEST } qf_ggml_cpu;

typedef struct qf_ggml {
    void *base;          /* libggml-base.so */
    void *cpu;           /* the chosen libggml-cpu-*.so */
    const char *(*type_name)(int type);
    size_t (*type_size)(int type);
    int64_t (*blck_size)(int type);
    size_t (*quantize_chunk)(int type, const float *src, void *dst, int64_t start,
                             int64_t nrows, int64_t n_per_row, const float *imatrix);
    void (*quantize_init)(int type);
    void (*cpu_init)(void);
    char dir[1024];
    char cpu_lib[64];    /* file name of the chosen CPU library, e.g. "libggml-cpu-zen4.so" */
} qf_ggml;

/* Loads the libraries from dir (NULL or "": $QF_GGML_DIR, else the build's default folder) and
 * calls ggml_cpu_init. QF_ENOENT if the folder has no libggml-base.so, QF_EDLOPEN if a library
 * will not load or lacks an entry point, QF_EUNSUP if no CPU variant runs here; why names the
 * folder or file. Prints nothing: the caller decides between a loud skip and a failure. */
int qf_ggml_open(qf_ggml *g, const char *dir, qf_ggml_cpu which, char *why, size_t why_len);

/* Forgets the handles (the libraries stay mapped, see above). */
void qf_ggml_close(qf_ggml *g);

/* The folder qf_ggml_open would look in for dir (NULL: none configured). Static or dir. */
const char *qf_ggml_default_dir(const char *dir);

/* ggml's type id for a type name such as "q4_K", or -1 (also for names that are not in our
 * format table, or that ggml spells differently). */
int qf_ggml_type_by_name(const qf_ggml *g, const char *name);

/* A symbol of either library (libggml-base.so first), or NULL. */
void *qf_ggml_sym(const qf_ggml *g, const char *name);

/* ggml's log callback that lets only warnings and errors through to stderr (ggml logs every
 * repacked tensor, llama.cpp every model key, at INFO level). For ggml_log_set/llama_log_set. */
void qf_ggml_quiet_log(int level, const char *text, void *user);

/* ---- ggml's graph API: one mul_mat graph on the CPU backend, llama.cpp's real path ---------
 * Shared by `qfleet bench --op kernels --vs-ggml` (cli/bench_kernels.c) and the llama.cpp
 * framework adapter (agent/fw_llamacpp.c). Errors come back as codes with a reason in why;
 * nothing here prints. */

/* The leading fields of ggml-cpu.h's struct ggml_type_traits_cpu. */
typedef struct qf_ggml_cpu_traits {
    qf_ggml_from_float from_float;
    qf_ggml_vec_dot    vec_dot;
    int                vec_dot_type;   /* enum ggml_type */
    int64_t            nrows;
} qf_ggml_cpu_traits;

/* ggml.h's struct ggml_init_params, passed by value to ggml_init. */
typedef struct qf_ggml_init_params {
    size_t mem_size;
    void  *mem_buffer;
    bool   no_alloc;
} qf_ggml_init_params;

typedef struct qf_ggml_api {
    void *(*init)(qf_ggml_init_params params);
    void (*free_ctx)(void *ctx);
    size_t (*tensor_overhead)(void);
    size_t (*graph_overhead_custom)(size_t size, bool grads);
    void *(*new_tensor_2d)(void *ctx, int type, int64_t ne0, int64_t ne1);
    void *(*mul_mat)(void *ctx, void *a, void *b);
    void *(*new_graph_custom)(void *ctx, size_t size, bool grads);
    void (*build_forward_expand)(void *graph, void *tensor);
    void *(*cpu_backend_init)(void);
    void (*cpu_set_n_threads)(void *backend, int n);
    void (*cpu_set_threadpool)(void *backend, void *tp);
    void (*backend_free)(void *backend);
    void *(*cpu_reg)(void);
    void *(*reg_dev_get)(void *reg, size_t index);
    void *(*reg_proc_address)(void *reg, const char *name);
    const char *(*buft_name)(void *buft);
    void *(*cpu_buffer_type)(void);
    void *(*alloc_ctx_tensors)(void *ctx, void *buft);
    void (*buffer_free)(void *buffer);
    bool (*dev_supports_op)(void *dev, const void *op);
    void (*tensor_set)(void *tensor, const void *data, size_t offset, size_t size);
    void (*tensor_get)(const void *tensor, void *data, size_t offset, size_t size);
    void *(*gallocr_new)(void *buft);
    bool (*gallocr_alloc_graph)(void *galloc, void *graph);
    void (*gallocr_free)(void *galloc);
    int (*graph_compute)(void *backend, void *graph);   /* enum ggml_status, 0: success */
    void (*tp_params_init)(void *params, int n_threads);
    void *(*tp_new)(void *params);
    void (*tp_free)(void *tp);
    void (*tp_pause)(void *tp);
    void (*tp_resume)(void *tp);
    const qf_ggml_cpu_traits *(*cpu_traits)(int type);
    void (*log_set)(void (*cb)(int level, const char *text, void *user), void *user);
    const char *(*version)(void);   /* ggml_version(): "0.9.4"; NULL in releases without it */
    const char *(*commit)(void);    /* ggml_commit(): a short hash; NULL likewise */
    /* resolved once */
    void *dev;            /* the CPU backend's device */
    void *repack_buft;    /* its CPU_REPACK extra buffer type, NULL if it has none */
} qf_ggml_api;

/* Looks up the graph API in g's libraries and quiets ggml's INFO log (qf_ggml_quiet_log).
 * QF_EDLOPEN naming the missing symbol. */
int qf_ggml_api_load(const qf_ggml *g, qf_ggml_api *a, char *why, size_t why_len);

/* One ggml graph: ncopies independent mul_mats Y_c = W_c X, one per weight copy, so one
 * compute sweeps them all; the weights in the CPU_REPACK buffer where ggml repacks this type
 * and shape (llama.cpp's path), else in the plain CPU buffer. */
typedef struct qf_ggml_graph {
    void *ctx_w, *ctx_x, *ctx_g, *buf_w, *buf_x, *galloc, *graph;
    void **w;            /* the ncopies weight tensors */
    void *y0;            /* copy 0's output: rows x n floats, column j = W_0 x_j */
    bool repacked;
} qf_ggml_graph;

/* Builds the graph of ggml type `type` (rows x cols per copy, copy c's bytes at w + c*wbytes)
 * times X (n rows of cols floats at x). QF_ENOMEM (why says the shape) when ggml cannot
 * allocate it. */
int qf_ggml_graph_build(const qf_ggml_api *a, int type, int64_t rows, int64_t cols,
                        const uint8_t *w, size_t wbytes, int ncopies, const float *x, int64_t n,
                        qf_ggml_graph *g, char *why, size_t why_len);

/* Copy 0's output after a compute: rows * n floats into y. */
void qf_ggml_graph_output(const qf_ggml_api *a, const qf_ggml_graph *g, float *y, size_t n_floats);

/* Frees everything of g and zeroes it; a zeroed g is fine. */
void qf_ggml_graph_free(const qf_ggml_api *a, qf_ggml_graph *g);

/* A CPU backend computing on a ggml threadpool of n threads, paused between computes so its
 * polling threads do not take cores from whatever runs in between. */
typedef struct qf_ggml_backend {
    void *backend, *tp;
} qf_ggml_backend;

/* New threads inherit their creator's CPU binding: when unbind is not NULL the calling thread
 * is bound to that set while ggml starts its threads, then given its binding back (a caller
 * pinned to one core would otherwise put all of ggml's threads on that core). QF_ENOMEM. */
int qf_ggml_backend_new(const qf_ggml_api *a, int n, const cpu_set_t *unbind,
                        qf_ggml_backend *b, char *why, size_t why_len);

/* One compute of g on b (resumes the pool, computes, pauses it). QF_EUNSUP when ggml reports a
 * failed compute. */
int qf_ggml_backend_compute(const qf_ggml_api *a, const qf_ggml_backend *b,
                            const qf_ggml_graph *g, char *why, size_t why_len);

void qf_ggml_backend_free(const qf_ggml_api *a, qf_ggml_backend *b);

#endif
