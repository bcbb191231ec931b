/* qf_opencl.h - the OpenCL backend: device query, device buffers, dequantize and matvec of
 * q8_0, q4_0, q4_K and int4_g32/g64/g128 on an OpenCL device (Intel GPUs in the fleet; PoCL's
 * CPU device in CI), and the profiling-event timers the benchmark uses.
 *
 * Plain C over the OpenCL ICD loader (libOpenCL), so any vendor's driver answers. The kernels
 * are OpenCL C (kernels/opencl/kernels.cl) built at run time from source embedded at build
 * time together with kernels/include/qf_blocks.h itself: the device compiler sees the very
 * block structs the C reference uses and checks their sizes with the same static asserts,
 * and the host code asserts them again. Weights go up as the bytes the C quantizers write,
 * unchanged (row-major, nrows rows of qf_format_row_size(fmt, ncols) bytes).
 *
 * Built only when CMake finds the OpenCL headers and library (QF_HAVE_OPENCL is then defined
 * for the agent). Without a platform or device every entry point returns QF_EUNSUP, so a build
 * with OpenCL still runs on a machine without one.
 *
 * Conventions: functions return 0 or a negative qf_err (QF_EUNSUP no platform or device,
 * QF_ENOMEM device memory or a buffer over the device's largest allocation, QF_EINVAL a shape,
 * format or buffer the call cannot take, QF_EIO any other OpenCL failure, a failed kernel
 * build included) and keep a one-line reason naming the OpenCL call for qf_opencl_last_error().
 * Everything runs on one device (qf_opencl_device_query says which: QF_OPENCL_DEVICE=N picks
 * entry N of qf_opencl_device_list, otherwise the first GPU, otherwise the first device) and
 * one in-order queue with profiling on: kernel launches are asynchronous, downloads wait.
 *
 * Fork: PoCL's CPU device (and not only it) does not survive fork(): a process that touched
 * the OpenCL runtime cannot run kernels in a forked child (the child hangs). The agent forks
 * a child per job, so its own process must never load a platform: it lists devices with
 * qf_opencl_probe, which asks in a short-lived child of its own.
 *
 * Numerics. Dequantize gives the same floats as the C reference decoder, bit for bit (same
 * operations in the same order; the kernels say FP_CONTRACT OFF). Matvec takes its activation
 * row quantized by the C reference quantizer on the host (q8_0 or q8_K: the same integers and
 * scales by construction; O(cols) next to the O(rows x cols) weight read), takes exact integer
 * dot products 32 weights at a time and adds the float terms in a different order from the C
 * loop, so it matches qf_matvec_ref to float rounding (tests/test_opencl.c states its limits).
 * Not thread-safe: one host thread drives the device at a time.
 */
#ifndef QF_OPENCL_H
#define QF_OPENCL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qf_formats.h"

typedef struct qf_opencl_device_info {
    char     platform[128];         /* CL_PLATFORM_NAME: "Intel(R) OpenCL Graphics" */
    char     name[256];             /* CL_DEVICE_NAME */
    char     vendor[128];
    char     type[16];              /* "gpu", "cpu", "accelerator" or "other" */
    char     version[128];          /* CL_DEVICE_VERSION: "OpenCL 3.0 NEO" */
    char     driver_version[128];   /* CL_DRIVER_VERSION */
    uint64_t global_mem;            /* bytes */
    uint64_t max_alloc;             /* the largest single buffer, bytes */
    uint64_t cache_bytes;           /* global memory cache (0 if none reported) */
    uint32_t compute_units;
    uint32_t clock_mhz;             /* maximum clock */
} qf_opencl_device_info;

/* Platforms and devices (of every type) the ICD loader sees. 0 with *platforms >= 1, or
 * QF_EUNSUP with both 0 when there is no platform at all (the loader's answer in
 * qf_opencl_last_error()). Loads the platforms into this process (see Fork above). */
int qf_opencl_device_count(int *platforms, int *devices);

/* Every device of every platform, in platform then device order, up to max of them, into
 * out; *n is how many were written. 0 (*n may be 0), or QF_EUNSUP without a platform.
 * Loads the platforms into this process. */
int qf_opencl_device_list(qf_opencl_device_info *out, int max, int *n);

/* qf_opencl_device_list asked in a forked child, so that this process never loads a
 * platform: for a process that forks later (the agent). The child gets 10 s; a child that
 * hangs or dies is killed and reported as QF_EIO. */
int qf_opencl_probe(qf_opencl_device_info *out, int max, int *n);

/* Facts about the device every call here uses; sets it up (context, queue, kernel build) on
 * the first call. */
int qf_opencl_device_query(qf_opencl_device_info *out);

/* The reason of the last failure on this thread, "" if none. Static storage. */
const char *qf_opencl_last_error(void);

/* True if the backend has dequantize and matvec for fmt: q8_0, q4_0, q4_K, int4_g32,
 * int4_g64, int4_g128. */
bool qf_opencl_supports(qf_format fmt);

/* Releases the context, queue and kernels (buffers, weights and timers must be destroyed
 * first); the next call sets them up again. For tests and clean exits; NULL-safe to repeat. */
void qf_opencl_shutdown(void);

/* ---- timing ----------------------------------------------------------------------------- */

/* The profiling events of up to capacity commands: a call given a timer records its command's
 * event in the next slot (QF_EINVAL when all are taken), and qf_opencl_timer_seconds reads how
 * long that command ran on the device (CL_PROFILING_COMMAND_START to _END), so host-side
 * launch costs are not in the sample. */
typedef struct qf_opencl_timer qf_opencl_timer;

/* Caller owns *out. */
int qf_opencl_timer_new(uint32_t capacity, qf_opencl_timer **out);
/* Commands recorded so far. */
uint32_t qf_opencl_timer_count(const qf_opencl_timer *t);
/* Seconds command i (< count) ran on the device, waiting for it to finish. */
int qf_opencl_timer_seconds(qf_opencl_timer *t, uint32_t i, double *secs);
/* Forgets every recorded command, so the slots can be used again. */
void qf_opencl_timer_reset(qf_opencl_timer *t);
/* Frees *t and sets it to NULL. NULL-safe. */
void qf_opencl_timer_destroy(qf_opencl_timer **t);

/* ---- device memory ---------------------------------------------------------------------- */

typedef struct qf_opencl_buf qf_opencl_buf;

/* bytes (>= 1) of device memory. Caller owns *out. */
int qf_opencl_buf_new(size_t bytes, qf_opencl_buf **out);
/* Frees *b and sets it to NULL. NULL-safe. */
void qf_opencl_buf_destroy(qf_opencl_buf **b);
size_t qf_opencl_buf_bytes(const qf_opencl_buf *b);
/* bytes (<= the buffer's) from host memory to the start of dst; returns when copied. */
int qf_opencl_upload(qf_opencl_buf *dst, const void *src, size_t bytes);
/* bytes from the start of src to host memory, after everything queued before it. */
int qf_opencl_download(void *dst, const qf_opencl_buf *src, size_t bytes);
/* Fills the whole buffer with 0xff: as floats, NaN, so an output element a kernel skipped
 * never passes. Asynchronous. */
int qf_opencl_poison(qf_opencl_buf *b);
/* Device-to-device copy of bytes (<= both buffers) on the queue; t: see timing. */
int qf_opencl_copy(qf_opencl_buf *dst, const qf_opencl_buf *src, size_t bytes,
                   qf_opencl_timer *t);
/* Waits for everything queued. */
int qf_opencl_sync(void);

/* ---- kernels ---------------------------------------------------------------------------- */

/* A weight matrix on the device: the C layout's bytes. */
typedef struct qf_opencl_weights qf_opencl_weights;

/* Uploads the nrows x ncols matrix w (host memory, fmt's C layout); returns when it is on the
 * device. QF_EINVAL for a format the backend lacks or a shape the format cannot hold. Caller
 * owns *out. */
int qf_opencl_weights_new(qf_format fmt, const void *w, int64_t nrows, int64_t ncols,
                          qf_opencl_weights **out);
/* Frees *w and sets it to NULL. NULL-safe. */
void qf_opencl_weights_destroy(qf_opencl_weights **w);
/* Bytes of the matrix, which is what one pass over it reads. */
uint64_t qf_opencl_weights_bytes(const qf_opencl_weights *w);

/* Decodes w into out (at least rows * cols floats, row-major). Asynchronous; t may be NULL. */
int qf_opencl_dequantize(const qf_opencl_weights *w, qf_opencl_buf *out, qf_opencl_timer *t);

/* Dequantize has two kernels: a work-item per weight (coalesced stores: what a GPU wants) and
 * a work-item per 32-weight chunk on 16-wide vectors (what a CPU runtime wants: PoCL runs the
 * other 100x slower). AUTO, the default, takes the chunk kernel on a CPU device and the
 * per-weight one elsewhere; the tests force each in turn, so both are checked on any device. */
typedef enum qf_opencl_deq_kernel {
    QF_OPENCL_DEQ_AUTO, QF_OPENCL_DEQ_WEIGHT, QF_OPENCL_DEQ_CHUNK,
} qf_opencl_deq_kernel;
void qf_opencl_set_dequantize_kernel(qf_opencl_deq_kernel k);

/* An activation row on the device, in a weight format's activation format. */
typedef struct qf_opencl_act qf_opencl_act;

/* Room for an activation row of up to max_cols (a multiple of 256) values. Caller owns *out. */
int qf_opencl_act_new(int64_t max_cols, qf_opencl_act **out);
/* Frees *a and sets it to NULL. NULL-safe. */
void qf_opencl_act_destroy(qf_opencl_act **a);

/* Quantizes the ncols host floats x with the C reference quantizer of fmt's activation
 * format (q8_0 or q8_K) and uploads them into a; returns when they are on the device. */
int qf_opencl_act_quantize(qf_opencl_act *a, qf_format fmt, const float *x, int64_t ncols);

/* y (at least rows floats) = W a, with a quantized by qf_opencl_act_quantize for w's format
 * and column count (QF_EINVAL otherwise). The weight-reading kernel alone: what the benchmark
 * times. Asynchronous; t may be NULL. */
int qf_opencl_matvec_q(const qf_opencl_weights *w, const qf_opencl_act *a, qf_opencl_buf *y,
                       qf_opencl_timer *t);

/* The whole op: quantize the cols host floats x into scratch, then qf_opencl_matvec_q. */
int qf_opencl_matvec(const qf_opencl_weights *w, const float *x, qf_opencl_act *scratch,
                     qf_opencl_buf *y, qf_opencl_timer *t);

#endif
