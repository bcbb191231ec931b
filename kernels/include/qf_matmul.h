/* qf_matmul.h - matrix products over a kernel set, split across a small pool of threads.
 *
 * Y = X W^T: W is nrows x ncols weights in the kernel set's format (row-major, quantized rows),
 * X is n x ncols activations (f32), Y is n x nrows (f32). n = 1 is the matvec of token
 * generation; n up to a few hundred is the prompt-processing matmul. The activations are first
 * quantized to the format's activation format (each thread a share of X's rows), then every
 * thread takes a contiguous share of W's rows and, tile by tile, computes all n dot products
 * of each tile, so a tile of W is read from DRAM once and from cache n times.
 *
 * The pool keeps its threads between calls (a matvec is ~100 us; starting threads would cost a
 * large part of it), optionally pinned one per core with hwloc where the build has it. One call
 * at a time per pool: the pool is not re-entrant, and the caller owns it.
 */
#ifndef QF_MATMUL_H
#define QF_MATMUL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qf_kernels.h"

typedef struct qf_pool qf_pool;

/* A pool of nthreads >= 1 (the caller's thread counts as the first: nthreads - 1 are started).
 * pin: bind thread i to core i (hwloc; silently unpinned where that fails). Caller owns *out.
 * QF_ENOMEM (naming what could not be had: memory, or a thread) on failure. */
int qf_pool_new(int nthreads, bool pin, qf_pool **out);

/* Stops and joins the threads, frees, sets *pool to NULL. NULL-safe. */
void qf_pool_destroy(qf_pool **pool);

int qf_pool_threads(const qf_pool *pool);

/* Bytes of scratch qf_matmul needs for n activation rows of ncols (the quantized X). */
size_t qf_matmul_scratch_bytes(const qf_kernel_set *ks, int64_t n, int64_t ncols);

/* Y = X W^T as above. scratch: qf_matmul_scratch_bytes of memory the caller owns (reused across
 * calls, so a timed loop allocates nothing). pool may be NULL: the calling thread does it all.
 * The shape must already be valid for the format (qf_format_check_cols); fmt must have a
 * vec_dot. */
void qf_matmul(const qf_kernel_set *ks, const void *w, int64_t nrows, int64_t ncols,
               const float *x, int64_t n, float *y, void *scratch, qf_pool *pool);

#endif
