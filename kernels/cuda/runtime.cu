/* runtime.cu - the CUDA backend's host side that is not a kernel: device discovery and facts,
 * device memory, poisoning, event timers and the device-to-device copy bandwidth.
 *
 * Every entry point first asks need_device(), which probes the runtime once (cudaGetDeviceCount)
 * and remembers the answer, so a build with CUDA on a host without a GPU gets QF_EUNSUP and a
 * reason, never an abort. Errors are recorded per thread for qf_cuda_last_error(). Called by
 * the benchmark's measurement core, the tests and (later) the agent; nothing here is hot except
 * qf_cuda_timer_mark, one cudaEventRecord.
 */
#include "cuda_util.h"

#include <algorithm>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <vector>

#include "qf_err.h"

namespace qfc {

static thread_local char g_last_error[320];

int fail(cudaError_t e, const char *what)
{
    snprintf(g_last_error, sizeof g_last_error, "%s: %s (%s)", what, cudaGetErrorString(e),
             cudaGetErrorName(e));
    (void)cudaGetLastError();   /* a sticky error (a kernel fault) stays; the rest are cleared */
    switch (e) {
    case cudaErrorNoDevice:
    case cudaErrorInsufficientDriver:
    case cudaErrorNoKernelImageForDevice:
    case cudaErrorUnsupportedPtxVersion:
    case cudaErrorSystemDriverMismatch:
    case cudaErrorCompatNotSupportedOnDevice:
    case cudaErrorDevicesUnavailable:
    case cudaErrorNotSupported:
        return QF_EUNSUP;
    case cudaErrorMemoryAllocation:
        return QF_ENOMEM;
    default:
        return QF_EIO;
    }
}

int fail_msg(int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_last_error, sizeof g_last_error, fmt, ap);
    va_end(ap);
    return err;
}

int need_device()
{
    /* Probed once: cudaGetDeviceCount initializes the runtime, which takes a while. */
    static int state = 1;             /* 1 unknown, 0 usable, else the qf_err */
    static char reason[320];
    if (state == 1) {
        int n = 0;
        cudaError_t e = cudaGetDeviceCount(&n);
        if (e != cudaSuccess) {
            state = fail(e, "cudaGetDeviceCount");
            if (state != QF_EUNSUP)   /* any failure to find a device means "no CUDA here" */
                state = QF_EUNSUP;
        } else if (n == 0) {
            state = fail_msg(QF_EUNSUP, "cudaGetDeviceCount: no CUDA device");
        } else if ((e = cudaSetDevice(0)) != cudaSuccess) {
            state = fail(e, "cudaSetDevice(0)");
        } else {
            state = 0;
        }
        snprintf(reason, sizeof reason, "%s", g_last_error);
    }
    if (state != 0)
        snprintf(g_last_error, sizeof g_last_error, "%s", reason);
    return state;
}

int check_launch(const char *what)
{
    cudaError_t e = cudaGetLastError();
    return e == cudaSuccess ? 0 : fail(e, what);
}

/* A stand-in for random data in the copy buffers: the copy must not see zeros or one byte
 * repeated, which a memory system may move faster than real data. */
__global__ void fill_pattern(uint32_t *p, size_t n)
{
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
         i += (size_t)gridDim.x * blockDim.x) {
        uint32_t x = (uint32_t)i * 2654435761u + 0x9e3779b9u;
        x ^= x >> 15;
        x *= 0x2c1b3c6du;
        p[i] = x ^ (x >> 12);
    }
}

__global__ void empty_kernel() {}

/* The median of n > 0 values (sorts them). */
static double median(double *v, size_t n)
{
    std::sort(v, v + n);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

} /* namespace qfc */

using namespace qfc;

extern "C" {

const char *qf_cuda_last_error(void)
{
    return g_last_error;
}

int qf_cuda_device_count(int *count)
{
    *count = 0;
    int err = need_device();
    if (err)
        return err;
    cudaError_t e = cudaGetDeviceCount(count);
    return e == cudaSuccess ? 0 : fail(e, "cudaGetDeviceCount");
}

int qf_cuda_device_query(qf_cuda_device_info *out)
{
    memset(out, 0, sizeof *out);
    int err = need_device();
    if (err)
        return err;
    cudaDeviceProp p;
    cudaError_t e = cudaGetDeviceProperties(&p, 0);
    if (e != cudaSuccess)
        return fail(e, "cudaGetDeviceProperties");
    snprintf(out->name, sizeof out->name, "%s", p.name);
    out->cc_major = p.major;
    out->cc_minor = p.minor;
    out->sm_count = p.multiProcessorCount;
    out->l2_bytes = (uint64_t)p.l2CacheSize;
    size_t free_b = 0, total_b = 0;
    if ((e = cudaMemGetInfo(&free_b, &total_b)) != cudaSuccess)
        return fail(e, "cudaMemGetInfo");
    out->free_mem = free_b;
    out->total_mem = total_b;
    if ((e = cudaDriverGetVersion(&out->driver_version)) != cudaSuccess)
        return fail(e, "cudaDriverGetVersion");
    if ((e = cudaRuntimeGetVersion(&out->runtime_version)) != cudaSuccess)
        return fail(e, "cudaRuntimeGetVersion");
    return 0;
}

int qf_cuda_alloc(size_t bytes, void **d_out)
{
    *d_out = NULL;
    int err = need_device();
    if (err)
        return err;
    if (bytes == 0 || bytes > SIZE_MAX - 16)
        return fail_msg(QF_EINVAL, "qf_cuda_alloc: cannot allocate %zu bytes", bytes);
    cudaError_t e = cudaMalloc(d_out, bytes + 16);
    if (e != cudaSuccess) {
        *d_out = NULL;
        char what[96];
        snprintf(what, sizeof what, "cudaMalloc(%zu bytes)", bytes + 16);
        return fail(e, what);
    }
    return 0;
}

void qf_cuda_free(void **d_ptr)
{
    if (!d_ptr || !*d_ptr)
        return;
    (void)cudaFree(*d_ptr);
    *d_ptr = NULL;
}

int qf_cuda_upload(void *d_dst, const void *src, size_t bytes)
{
    int err = need_device();
    if (err)
        return err;
    cudaError_t e = cudaMemcpy(d_dst, src, bytes, cudaMemcpyHostToDevice);
    return e == cudaSuccess ? 0 : fail(e, "cudaMemcpy host to device");
}

int qf_cuda_download(void *dst, const void *d_src, size_t bytes)
{
    int err = need_device();
    if (err)
        return err;
    cudaError_t e = cudaMemcpy(dst, d_src, bytes, cudaMemcpyDeviceToHost);
    return e == cudaSuccess ? 0 : fail(e, "cudaMemcpy device to host");
}

int qf_cuda_poison(void *d_dst, size_t bytes)
{
    int err = need_device();
    if (err)
        return err;
    cudaError_t e = cudaMemsetAsync(d_dst, 0xff, bytes, 0);
    return e == cudaSuccess ? 0 : fail(e, "cudaMemsetAsync");
}

int qf_cuda_copy(void *d_dst, const void *d_src, size_t bytes)
{
    int err = need_device();
    if (err)
        return err;
    cudaError_t e = cudaMemcpyAsync(d_dst, d_src, bytes, cudaMemcpyDeviceToDevice, 0);
    return e == cudaSuccess ? 0 : fail(e, "cudaMemcpyAsync device to device");
}

int qf_cuda_sync(void)
{
    int err = need_device();
    if (err)
        return err;
    cudaError_t e = cudaDeviceSynchronize();
    return e == cudaSuccess ? 0 : fail(e, "cudaDeviceSynchronize (a kernel's fault shows here)");
}

/* ---- timers ---------------------------------------------------------------------------------- */

struct qf_cuda_timer {
    uint32_t     n;
    cudaEvent_t *ev;
};

void qf_cuda_timer_destroy(qf_cuda_timer **tp)
{
    if (!tp || !*tp)
        return;
    qf_cuda_timer *t = *tp;
    for (uint32_t i = 0; i < t->n; i++)
        if (t->ev[i])
            (void)cudaEventDestroy(t->ev[i]);
    free(t->ev);
    free(t);
    *tp = NULL;
}

int qf_cuda_timer_new(uint32_t nmarks, qf_cuda_timer **out)
{
    *out = NULL;
    int err = need_device();
    if (err)
        return err;
    qf_cuda_timer *t = (qf_cuda_timer *)calloc(1, sizeof *t);
    if (!t || !(t->ev = (cudaEvent_t *)calloc(nmarks ? nmarks : 1, sizeof *t->ev))) {
        free(t);
        return fail_msg(QF_ENOMEM, "qf_cuda_timer_new: out of host memory for %u events",
                        nmarks);
    }
    for (; t->n < nmarks; t->n++) {
        cudaError_t e = cudaEventCreate(&t->ev[t->n]);
        if (e != cudaSuccess) {
            qf_cuda_timer_destroy(&t);
            return fail(e, "cudaEventCreate");
        }
    }
    *out = t;
    return 0;
}

int qf_cuda_timer_mark(qf_cuda_timer *t, uint32_t i)
{
    if (i >= t->n)
        return fail_msg(QF_EINVAL, "qf_cuda_timer_mark: mark %u of %u", i, t->n);
    cudaError_t e = cudaEventRecord(t->ev[i], 0);
    return e == cudaSuccess ? 0 : fail(e, "cudaEventRecord");
}

int qf_cuda_timer_seconds(qf_cuda_timer *t, uint32_t from, uint32_t to, double *secs)
{
    *secs = 0;
    if (from >= t->n || to >= t->n)
        return fail_msg(QF_EINVAL, "qf_cuda_timer_seconds: marks %u, %u of %u", from, to, t->n);
    cudaError_t e = cudaEventSynchronize(t->ev[to]);
    if (e != cudaSuccess)
        return fail(e, "cudaEventSynchronize (a kernel's fault shows here)");
    float ms = 0;
    if ((e = cudaEventElapsedTime(&ms, t->ev[from], t->ev[to])) != cudaSuccess)
        return fail(e, "cudaEventElapsedTime");
    *secs = 1e-3 * (double)ms;
    return 0;
}

int qf_cuda_copy_bandwidth(size_t bytes, uint32_t reps, double *gbps)
{
    *gbps = 0;
    if (reps == 0 || bytes < 4)
        return fail_msg(QF_EINVAL, "qf_cuda_copy_bandwidth: %zu bytes, %u reps", bytes, reps);
    bytes &= ~(size_t)3;
    void *src = NULL, *dst = NULL;
    qf_cuda_timer *t = NULL;
    std::vector<double> s;
    int err = qf_cuda_alloc(bytes, &src);
    if (!err)
        err = qf_cuda_alloc(bytes, &dst);
    if (!err) {
        fill_pattern<<<1024, 256>>>((uint32_t *)src, bytes / 4);
        err = check_launch("fill_pattern");
    }
    if (!err)
        err = qf_cuda_timer_new(reps + 1, &t);
    for (int i = 0; i < 2 && !err; i++)                  /* warm-up */
        err = qf_cuda_copy(dst, src, bytes);
    for (uint32_t i = 0; i <= reps && !err; i++) {
        if (i > 0)
            err = qf_cuda_copy(dst, src, bytes);
        if (!err)
            err = qf_cuda_timer_mark(t, i);
    }
    for (uint32_t i = 0; i < reps && !err; i++) {
        double secs;
        err = qf_cuda_timer_seconds(t, i, i + 1, &secs);
        if (!err)
            s.push_back(secs);
    }
    if (!err) {
        double med = median(s.data(), s.size());
        *gbps = med > 0 ? 2.0 * (double)bytes / med / 1e9 : 0;
    }
    qf_cuda_timer_destroy(&t);
    qf_cuda_free(&dst);
    qf_cuda_free(&src);
    return err;
}

int qf_cuda_launch_overhead(uint32_t reps, double *secs)
{
    *secs = 0;
    if (reps == 0)
        return fail_msg(QF_EINVAL, "qf_cuda_launch_overhead: 0 reps");
    qf_cuda_timer *t = NULL;
    std::vector<double> s;
    int err = qf_cuda_timer_new(2 * reps, &t);
    for (int i = 0; i < 3 && !err; i++) {                 /* warm-up */
        empty_kernel<<<1, 1>>>();
        err = check_launch("empty_kernel");
    }
    for (uint32_t i = 0; i < reps && !err; i++) {
        if ((err = qf_cuda_timer_mark(t, 2 * i)) != 0)
            break;
        empty_kernel<<<1, 1>>>();
        if ((err = check_launch("empty_kernel")) == 0)
            err = qf_cuda_timer_mark(t, 2 * i + 1);
    }
    for (uint32_t i = 0; i < reps && !err; i++) {
        double v;
        if ((err = qf_cuda_timer_seconds(t, 2 * i, 2 * i + 1, &v)) == 0)
            s.push_back(v);
    }
    if (!err)
        *secs = median(s.data(), s.size());
    qf_cuda_timer_destroy(&t);
    return err;
}

} /* extern "C" */
