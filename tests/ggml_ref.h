/* ggml_ref.h - ggml's prebuilt CPU libraries as a test reference, loaded with dlopen.
 *
 * ggml (llama.cpp's kernel library) ships prebuilt in the npm package @node-llama-cpp/linux-x64,
 * fetched by scripts/fetch-ggml.sh into a cache folder. We never include its headers: the few
 * functions the tests call are declared here by their documented C signatures, and looked up
 * by name, so a missing or changed symbol is a test failure with a message, not a crash.
 * Used by the conformance test (and by benchmarks later) only.
 */
#ifndef QF_GGML_REF_H
#define QF_GGML_REF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef void (*ggml_ref_from_float)(const float *x, void *y, int64_t k);
typedef void (*ggml_ref_to_float)(const void *x, float *y, int64_t k);
typedef void (*ggml_ref_vec_dot)(int n, float *s, size_t bs, const void *x, size_t bx,
                                 const void *y, size_t by, int nrc);

typedef struct ggml_ref {
    void *base;          /* libggml-base.so */
    void *cpu;           /* libggml-cpu-x64.so (baseline x86-64: runs on any host) */
    const char *(*type_name)(int type);
    size_t (*type_size)(int type);
    int64_t (*blck_size)(int type);
    size_t (*quantize_chunk)(int type, const float *src, void *dst, int64_t start,
                             int64_t nrows, int64_t n_per_row, const float *imatrix);
    void (*quantize_init)(int type);
    void (*cpu_init)(void);
    char dir[1024];
} ggml_ref;

/* Loads the libraries from $QF_GGML_DIR (default: the folder CMake was given). Returns false (and fills why) if they are not there;
 * the caller decides between a loud skip and a failure (QF_REQUIRE_GGML=1). */
bool ggml_ref_open(ggml_ref *g, char *why, size_t why_len);
void ggml_ref_close(ggml_ref *g);

/* ggml's type id for a type name such as "q4_K", or -1. */
int ggml_ref_type_by_name(const ggml_ref *g, const char *name);

/* A symbol of either library, or NULL. */
void *ggml_ref_sym(const ggml_ref *g, const char *name);

#endif
