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

#endif
