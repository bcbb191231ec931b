/* qf_cuda.h - the CUDA backend: device query, device buffers, dequantize and matvec of the
 * weight formats on an NVIDIA GPU, and the event timers the benchmark uses.
 *
 * Plain C so that the agent, the benchmark and the tests (all C11) call it without CUDA's
 * headers; the implementation is CUDA C++ (the .cu files of kernels/cuda) and shares the block
 * layouts with the C reference through kernels/include/qf_blocks.h. Built only when CMake finds
 * a CUDA compiler (QF_HAVE_CUDA is then defined for the agent); without a usable device every
 * entry point returns QF_EUNSUP, so a build with CUDA still runs on a machine without a GPU.
 *
 * Conventions: functions return 0 or a negative qf_err (QF_EUNSUP no driver or device,
 * QF_ENOMEM device memory, QF_EINVAL a shape or format the backend cannot do, QF_EIO any other
 * CUDA failure, a kernel fault included) and keep a one-line reason naming the CUDA call for
 * qf_cuda_last_error(). They run on device 0 and its legacy default stream: launches are
 * asynchronous, so a kernel's own fault surfaces at the next synchronizing call
 * (qf_cuda_sync, a download, a timer read). Pointers named d_* are device memory (every buffer
 * from qf_cuda_alloc has 16 bytes of slack past its end). Weights go up as the bytes the C
 * quantizers write (row-major, nrows rows of qf_format_row_size(fmt, ncols) bytes) and are
 * rearranged once on the device into one array per block field (kernels/cuda/formats.cuh),
 * the same bytes, so that every kernel load is aligned and 16 bytes wide.
 *
 * Numerics. Dequantize gives the same floats as the C reference decoder, bit for bit (same
 * operations in the same order, no fused multiply-add). Matvec quantizes the activation row on
 * the device to the format's activation format as the C reference does (q8_0, q8_1 or q8_K:
 * the same integers and scales, bit for bit), takes integer dot products of 32 weights at a
 * time (dp4a), and adds the blocks' float terms in a different order from the C loop, so it
 * matches qf_matvec_ref to float rounding (NMSE ~1e-13 on 4096 rows; tests/test_cuda.c
 * states its limits).
 * Not thread-safe: one host thread drives the device at a time.
 */
#ifndef QF_CUDA_H
#define QF_CUDA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#include "qf_formats.h"   /* a C header without C++ guards of its own */

typedef struct qf_cuda_device_info {
    char     name[256];         /* "NVIDIA H100 80GB HBM3" */
    int      cc_major, cc_minor;
    int      sm_count;
    uint64_t total_mem, free_mem;   /* bytes, free as of the query */
    uint64_t l2_bytes;
    int      driver_version;    /* CUDA version the driver supports, 1000 * major + 10 * minor */
    int      runtime_version;   /* the runtime this build links, same encoding */
} qf_cuda_device_info;

/* Number of CUDA devices. 0 with *count >= 1, or QF_EUNSUP with *count = 0 when there is no
 * driver or no device (the reason, e.g. "no CUDA-capable device is detected", in
 * qf_cuda_last_error()). Cheap after the first call. */
int qf_cuda_device_count(int *count);

/* Facts about device 0, the one every call here uses. */
int qf_cuda_device_query(qf_cuda_device_info *out);

/* The reason of the last failure on this thread, "" if none. Static storage. */
const char *qf_cuda_last_error(void);

/* True if the backend has dequantize and matvec for fmt: q8_0, q4_0, q4_1, q5_0, q5_1, q2_K,
 * q3_K, q4_K, q5_K, q6_K, int8_pc, int4_g32, int4_g64, int4_g128. */
bool qf_cuda_supports(qf_format fmt);

/* ---- device memory ---------------------------------------------------------------------- */

/* bytes (>= 1) of device memory, plus 16 readable bytes of slack. Caller owns *d_out. */
int qf_cuda_alloc(size_t bytes, void **d_out);
/* Frees *d_ptr and sets it to NULL. NULL-safe. */
void qf_cuda_free(void **d_ptr);
int qf_cuda_upload(void *d_dst, const void *src, size_t bytes);
int qf_cuda_download(void *dst, const void *d_src, size_t bytes);
/* Fills bytes with 0xff: as floats, NaN, so an output element a kernel skipped never passes. */
int qf_cuda_poison(void *d_dst, size_t bytes);
/* Device-to-device copy on the stream (timed by the copy-bandwidth measurement). */
int qf_cuda_copy(void *d_dst, const void *d_src, size_t bytes);
/* Waits for everything queued; reports a fault of any kernel since the last check. */
int qf_cuda_sync(void);

/* ---- kernels ---------------------------------------------------------------------------- */

/* A weight matrix on the device, in the backend's layout. */
typedef struct qf_cuda_weights qf_cuda_weights;

/* Uploads the nrows x ncols matrix w (host memory, fmt's C layout) and rearranges it on the
 * device; returns when it is ready. QF_EINVAL for a format the backend lacks or a shape the
 * format cannot hold. Caller owns *out. */
int qf_cuda_weights_new(qf_format fmt, const void *w, int64_t nrows, int64_t ncols,
                        qf_cuda_weights **out);
/* Frees *w and sets it to NULL. NULL-safe. */
void qf_cuda_weights_destroy(qf_cuda_weights **w);
/* Bytes of the matrix in the C layout, which is what one pass over it reads on the device. */
uint64_t qf_cuda_weights_bytes(const qf_cuda_weights *w);

/* Decodes w into d_out, rows * cols floats, row-major. Asynchronous. */
int qf_cuda_dequantize(const qf_cuda_weights *w, float *d_out);

/* One activation row quantized on the device, kept for the matvecs that follow. */
typedef struct qf_cuda_act qf_cuda_act;

/* Room for an activation row of up to max_cols (a multiple of 32) values. Caller owns *out. */
int qf_cuda_act_new(int64_t max_cols, qf_cuda_act **out);
/* Frees *a and sets it to NULL. NULL-safe. */
void qf_cuda_act_destroy(qf_cuda_act **a);

/* Quantizes the ncols floats d_x into a, in the activation format of weight format fmt (its
 * traits' act), bit for bit as the C reference quantizer. Asynchronous. */
int qf_cuda_act_quantize(qf_cuda_act *a, qf_format fmt, const float *d_x, int64_t ncols);

/* d_y (rows floats) = W a, with a quantized by qf_cuda_act_quantize for w's format and
 * column count (QF_EINVAL otherwise). The weight-reading kernel alone: what the benchmark
 * times. Asynchronous. */
int qf_cuda_matvec_q(const qf_cuda_weights *w, const qf_cuda_act *a, float *d_y);

/* The whole op: quantize d_x (cols floats) into scratch, then qf_cuda_matvec_q. */
int qf_cuda_matvec(const qf_cuda_weights *w, const float *d_x, qf_cuda_act *scratch,
                   float *d_y);

/* ---- matmul (n activation rows) ---------------------------------------------------------- */

/* Scratch for Y = X W^T with up to max_n (1..65536) activation rows: an f16 copy of W and of X.
 * w must outlive it. Caller owns *out. */
typedef struct qf_cuda_gemm qf_cuda_gemm;
int qf_cuda_gemm_new(const qf_cuda_weights *w, int64_t max_n, qf_cuda_gemm **out);
/* Frees *g and sets it to NULL. NULL-safe. */
void qf_cuda_gemm_destroy(qf_cuda_gemm **g);
/* Device bytes the scratch holds: (rows + max_n) x cols x 2. */
uint64_t qf_cuda_gemm_bytes(const qf_cuda_gemm *g);
/* d_y (n x rows floats, row-major) = d_x (n x cols floats, row-major) W^T. W is decoded into
 * f16 (the reference decode, rounded), X rounded to f16, and multiplied on the tensor cores
 * with f32 accumulation (cuBLAS): so the result matches the reference product of the decoded
 * weights to f16 rounding of the inputs (NMSE ~1e-7), not the q8 activation path of matvec.
 * Asynchronous. */
int qf_cuda_matmul(qf_cuda_gemm *g, const float *d_x, int64_t n, float *d_y);

/* ---- timing ----------------------------------------------------------------------------- */

/* nmarks CUDA events recorded on the stream, so that the work between two marks is timed on
 * the device; the host never waits except when reading a time. */
typedef struct qf_cuda_timer qf_cuda_timer;

int qf_cuda_timer_new(uint32_t nmarks, qf_cuda_timer **out);
/* Records mark i (< nmarks) on the stream now. */
int qf_cuda_timer_mark(qf_cuda_timer *t, uint32_t i);
/* Seconds between marks from and to (both recorded), waiting for mark to. */
int qf_cuda_timer_seconds(qf_cuda_timer *t, uint32_t from, uint32_t to, double *secs);
/* Frees *t and sets it to NULL. NULL-safe. */
void qf_cuda_timer_destroy(qf_cuda_timer **t);

/* The device's copy bandwidth: the median over reps device-to-device copies of bytes,
 * after two warm-up copies, counting bytes read plus bytes written (2 * bytes per copy), in
 * GB/s (1e9 B/s). The ceiling a weight-reading kernel's GB/s is compared with. */
int qf_cuda_copy_bandwidth(size_t bytes, uint32_t reps, double *gbps);

/* The median seconds between two events around an empty kernel (one block, one thread),
 * over reps launches after a warm-up: the fixed cost inside every event-timed kernel. */
int qf_cuda_launch_overhead(uint32_t reps, double *secs);

#ifdef __cplusplus
}
#endif

#endif
