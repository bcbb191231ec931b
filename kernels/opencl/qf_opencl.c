/* qf_opencl.c - the OpenCL backend's host side (qf_opencl.h): platform and device discovery,
 * the one context/queue/program this process uses, buffers, weights, activations, launches
 * and profiling-event timers.
 *
 * Invariants: g holds the device, context, in-order profiling queue and the built program
 * with two dequantize kernels (per weight for GPUs, per 32-weight chunk for CPU devices) and
 * one matvec kernel per supported format; it is set up on first use
 * (setup) and torn down by qf_opencl_shutdown. The program is kernels.cl with qf_blocks.h
 * pasted in (generated qf_opencl_source.h), and setup checks with a one-work-item kernel that
 * the device compiler laid every block struct out in the host's sizes, so a compiler that pads
 * differently is an error, not wrong numbers. A weight matrix is the C layout's bytes in one
 * buffer; chunk (32 weights) arithmetic is in kernels.cl.
 * Called by the agent's measurement core (agent/measure.c), the fingerprint (qf_opencl_probe)
 * and tests/test_opencl.c. Not hot: the host work per launch is a few argument sets.
 */
#define CL_TARGET_OPENCL_VERSION 120
#include "qf_opencl.h"

#include <CL/cl.h>
#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "qf_child.h"
#include "qf_err.h"
#include "qf_opencl_source.h"   /* generated: kernels.cl + qf_blocks.h, as bytes */

#define QF_WG 64                /* work-group size; matvec: one row per group */
#define MAX_PLATFORMS 16
#define MAX_DEVICES 64
#define PROBE_TIMEOUT_MS 10000

/* The chunk arithmetic of kernels.cl: every supported block is a whole number of 32-weight
 * chunks, and the activation blocks pair with them (q8_0 block c, q8_K sub-block c % 8). */
_Static_assert(QF_QK8_0 == 32 && QF_QK4_0 == 32 && QF_QK_K % 32 == 0, "32-weight chunks");
_Static_assert(sizeof(qf_block_q8_0) == 34 && sizeof(qf_block_q4_0) == 18 &&
               sizeof(qf_block_q4_K) == 144 && sizeof(qf_block_q8_K) == 292,
               "GGUF block sizes kernels.cl reads");
_Static_assert(sizeof(qf_block_int4_g32) == 19 && sizeof(qf_block_int4_g64) == 35 &&
               sizeof(qf_block_int4_g128) == 67, "int4 block sizes kernels.cl reads");

/* The backend's formats, and the host sizes of the structs the layout kernel measures on the
 * device (in the order kernels.cl's block_sizes writes them). */
static const qf_format k_formats[] = {
    QF_FMT_Q8_0, QF_FMT_Q4_0, QF_FMT_Q4_K, QF_FMT_INT4_G32, QF_FMT_INT4_G64, QF_FMT_INT4_G128,
};
#define NFORMATS (sizeof k_formats / sizeof k_formats[0])
static const struct { const char *name; size_t bytes; } k_structs[] = {
    { "qf_block_q8_0", sizeof(qf_block_q8_0) },   { "qf_block_q4_0", sizeof(qf_block_q4_0) },
    { "qf_block_q4_K", sizeof(qf_block_q4_K) },   { "qf_block_q8_K", sizeof(qf_block_q8_K) },
    { "qf_block_int4_g32", sizeof(qf_block_int4_g32) },
    { "qf_block_int4_g64", sizeof(qf_block_int4_g64) },
    { "qf_block_int4_g128", sizeof(qf_block_int4_g128) },
};
#define NSTRUCTS (sizeof k_structs / sizeof k_structs[0])

static _Thread_local char g_err[320];

static struct {
    bool             ready;
    cl_device_id     dev;
    cl_context       ctx;
    cl_command_queue q;
    cl_program       prog;
    cl_kernel        deq[QF_FMT_COUNT], deqc[QF_FMT_COUNT], mv[QF_FMT_COUNT];
    qf_opencl_device_info info;
} g;

static qf_opencl_deq_kernel g_deq_choice;   /* QF_OPENCL_DEQ_AUTO unless a test says */

struct qf_opencl_buf {
    cl_mem mem;
    size_t bytes;
};

struct qf_opencl_weights {
    qf_format fmt;
    int64_t   rows, cols;
    uint64_t  bytes;
    cl_mem    mem;
};

struct qf_opencl_act {
    int64_t   max_cols, ncols;   /* ncols 0 until quantized */
    qf_format act;               /* the activation format it holds */
    size_t    bytes;
    void     *host;              /* the reference quantizer's output, bytes of it */
    cl_mem    mem;
};

struct qf_opencl_timer {
    uint32_t  cap, n;
    cl_event *ev;
};

/* ---- errors ------------------------------------------------------------------------------- */

static const char *cl_name(cl_int e)
{
    switch (e) {
    case CL_DEVICE_NOT_FOUND: return "CL_DEVICE_NOT_FOUND";
    case CL_DEVICE_NOT_AVAILABLE: return "CL_DEVICE_NOT_AVAILABLE";
    case CL_COMPILER_NOT_AVAILABLE: return "CL_COMPILER_NOT_AVAILABLE";
    case CL_MEM_OBJECT_ALLOCATION_FAILURE: return "CL_MEM_OBJECT_ALLOCATION_FAILURE";
    case CL_OUT_OF_RESOURCES: return "CL_OUT_OF_RESOURCES";
    case CL_OUT_OF_HOST_MEMORY: return "CL_OUT_OF_HOST_MEMORY";
    case CL_PROFILING_INFO_NOT_AVAILABLE: return "CL_PROFILING_INFO_NOT_AVAILABLE";
    case CL_BUILD_PROGRAM_FAILURE: return "CL_BUILD_PROGRAM_FAILURE";
    case CL_INVALID_VALUE: return "CL_INVALID_VALUE";
    case CL_INVALID_DEVICE: return "CL_INVALID_DEVICE";
    case CL_INVALID_CONTEXT: return "CL_INVALID_CONTEXT";
    case CL_INVALID_COMMAND_QUEUE: return "CL_INVALID_COMMAND_QUEUE";
    case CL_INVALID_MEM_OBJECT: return "CL_INVALID_MEM_OBJECT";
    case CL_INVALID_BUILD_OPTIONS: return "CL_INVALID_BUILD_OPTIONS";
    case CL_INVALID_KERNEL_NAME: return "CL_INVALID_KERNEL_NAME";
    case CL_INVALID_KERNEL_ARGS: return "CL_INVALID_KERNEL_ARGS";
    case CL_INVALID_WORK_GROUP_SIZE: return "CL_INVALID_WORK_GROUP_SIZE";
    case CL_INVALID_BUFFER_SIZE: return "CL_INVALID_BUFFER_SIZE";
    case CL_INVALID_GLOBAL_WORK_SIZE: return "CL_INVALID_GLOBAL_WORK_SIZE";
    case -1001: return "CL_PLATFORM_NOT_FOUND_KHR (no OpenCL platform installed)";
    default: return "an OpenCL error";
    }
}

__attribute__((format(printf, 2, 3)))
static int fail(int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(g_err, sizeof g_err, fmt, ap);
    va_end(ap);
    return err;
}

/* An OpenCL call's failure: out-of-memory codes map to QF_ENOMEM, the rest to QF_EIO. */
static int cl_fail(cl_int e, const char *what)
{
    int err = e == CL_MEM_OBJECT_ALLOCATION_FAILURE || e == CL_OUT_OF_RESOURCES ||
              e == CL_OUT_OF_HOST_MEMORY || e == CL_INVALID_BUFFER_SIZE ? QF_ENOMEM : QF_EIO;
    return fail(err, "opencl: %s: %s (%d)", what, cl_name(e), (int)e);
}

const char *qf_opencl_last_error(void)
{
    return g_err;
}

/* ---- discovery ---------------------------------------------------------------------------- */

static void str_info(cl_device_id d, cl_device_info what, char *buf, size_t size)
{
    if (clGetDeviceInfo(d, what, size, buf, NULL) != CL_SUCCESS)
        buf[0] = '\0';
    buf[size - 1] = '\0';
}

static uint64_t num_info(cl_device_id d, cl_device_info what, size_t width)
{
    cl_ulong u = 0;
    cl_uint v = 0;
    if (width == sizeof u)
        return clGetDeviceInfo(d, what, sizeof u, &u, NULL) == CL_SUCCESS ? u : 0;
    return clGetDeviceInfo(d, what, sizeof v, &v, NULL) == CL_SUCCESS ? v : 0;
}

static void describe(cl_platform_id p, cl_device_id d, qf_opencl_device_info *o)
{
    memset(o, 0, sizeof *o);
    if (clGetPlatformInfo(p, CL_PLATFORM_NAME, sizeof o->platform, o->platform, NULL) != 0)
        o->platform[0] = '\0';
    o->platform[sizeof o->platform - 1] = '\0';
    str_info(d, CL_DEVICE_NAME, o->name, sizeof o->name);
    str_info(d, CL_DEVICE_VENDOR, o->vendor, sizeof o->vendor);
    str_info(d, CL_DEVICE_VERSION, o->version, sizeof o->version);
    str_info(d, CL_DRIVER_VERSION, o->driver_version, sizeof o->driver_version);
    cl_device_type t = 0;
    if (clGetDeviceInfo(d, CL_DEVICE_TYPE, sizeof t, &t, NULL) != CL_SUCCESS)
        t = 0;
    snprintf(o->type, sizeof o->type, "%s", t & CL_DEVICE_TYPE_GPU ? "gpu"
             : t & CL_DEVICE_TYPE_CPU ? "cpu" : t & CL_DEVICE_TYPE_ACCELERATOR ? "accelerator"
             : "other");
    o->global_mem = num_info(d, CL_DEVICE_GLOBAL_MEM_SIZE, sizeof(cl_ulong));
    o->max_alloc = num_info(d, CL_DEVICE_MAX_MEM_ALLOC_SIZE, sizeof(cl_ulong));
    o->cache_bytes = num_info(d, CL_DEVICE_GLOBAL_MEM_CACHE_SIZE, sizeof(cl_ulong));
    o->compute_units = (uint32_t)num_info(d, CL_DEVICE_MAX_COMPUTE_UNITS, sizeof(cl_uint));
    o->clock_mhz = (uint32_t)num_info(d, CL_DEVICE_MAX_CLOCK_FREQUENCY, sizeof(cl_uint));
}

/* Every device of every platform, up to max, with its id (ids may be NULL). */
static int enumerate(qf_opencl_device_info *out, cl_device_id *ids, int max, int *n,
                     int *nplatforms)
{
    cl_platform_id plats[MAX_PLATFORMS];
    cl_uint np = 0;
    *n = 0;
    *nplatforms = 0;
    cl_int e = clGetPlatformIDs(MAX_PLATFORMS, plats, &np);
    if (e != CL_SUCCESS || np == 0)
        return fail(QF_EUNSUP, "opencl: clGetPlatformIDs: %s (%d)",
                    e == CL_SUCCESS ? "no platform" : cl_name(e), (int)e);
    if (np > MAX_PLATFORMS)
        np = MAX_PLATFORMS;
    *nplatforms = (int)np;
    for (cl_uint p = 0; p < np && *n < max; p++) {
        cl_device_id devs[MAX_DEVICES];
        cl_uint nd = 0;
        if (clGetDeviceIDs(plats[p], CL_DEVICE_TYPE_ALL, MAX_DEVICES, devs, &nd) != CL_SUCCESS)
            continue;             /* CL_DEVICE_NOT_FOUND: a platform without devices */
        for (cl_uint i = 0; i < nd && i < MAX_DEVICES && *n < max; i++) {
            if (out)
                describe(plats[p], devs[i], &out[*n]);
            if (ids)
                ids[*n] = devs[i];
            (*n)++;
        }
    }
    return 0;
}

int qf_opencl_device_count(int *platforms, int *devices)
{
    assert(platforms && devices);
    return enumerate(NULL, NULL, MAX_PLATFORMS * MAX_DEVICES, devices, platforms);
}

int qf_opencl_device_list(qf_opencl_device_info *out, int max, int *n)
{
    assert(out && n && max >= 0);
    int np;
    return enumerate(out, NULL, max, n, &np);
}

/* What the probe child sends back (qf_child_call): enumerate's result, the count, the entries. */
typedef struct probe_answer {
    int32_t rc, count;
    qf_opencl_device_info devs[MAX_DEVICES];
} probe_answer;

static int probe_ask(void *arg, void *buf, size_t size)
{
    (void)arg;
    probe_answer *a = buf;
    assert(size >= sizeof *a);
    (void)size;
    int n = 0, np = 0;
    a->rc = enumerate(a->devs, NULL, MAX_DEVICES, &n, &np);
    a->count = n;
    return (int)(offsetof(probe_answer, devs) + (size_t)n * sizeof a->devs[0]);
}

int qf_opencl_probe(qf_opencl_device_info *out, int max, int *n)
{
    assert(out && n && max >= 0);
    *n = 0;
    probe_answer *a = malloc(sizeof *a);
    if (!a)
        return fail(QF_ENOMEM, "opencl: probe: out of memory");
    size_t got = 0;
    int err = qf_child_call(probe_ask, NULL, a, sizeof *a, PROBE_TIMEOUT_MS, &got);
    if (err || got < offsetof(probe_answer, devs) || a->count < 0 || a->count > MAX_DEVICES ||
        got != offsetof(probe_answer, devs) + (size_t)a->count * sizeof a->devs[0]) {
        free(a);
        return fail(QF_EIO, "opencl: probe: the child listing the devices hung or died");
    }
    if (a->rc == QF_EUNSUP) {
        free(a);
        return fail(QF_EUNSUP, "opencl: no OpenCL platform");
    }
    *n = a->count < max ? a->count : max;
    memcpy(out, a->devs, (size_t)*n * sizeof *out);
    free(a);
    return 0;
}

/* ---- setup -------------------------------------------------------------------------------- */

/* The device: QF_OPENCL_DEVICE=N, else the first GPU, else the first device. */
static int pick_device(cl_device_id *dev, qf_opencl_device_info *info)
{
    static qf_opencl_device_info infos[MAX_DEVICES];
    cl_device_id ids[MAX_DEVICES];
    int n, np;
    int err = enumerate(infos, ids, MAX_DEVICES, &n, &np);
    if (err)
        return err;
    if (n == 0)
        return fail(QF_EUNSUP, "opencl: %d platform%s but no device", np, np == 1 ? "" : "s");
    int pick = -1;
    const char *env = getenv("QF_OPENCL_DEVICE");
    if (env && env[0]) {
        char *end;
        long v = strtol(env, &end, 10);
        if (*end != '\0' || v < 0 || v >= n)
            return fail(QF_EINVAL, "opencl: QF_OPENCL_DEVICE=%s is not a device index 0..%d",
                        env, n - 1);
        pick = (int)v;
    }
    for (int i = 0; i < n && pick < 0; i++)
        if (strcmp(infos[i].type, "gpu") == 0)
            pick = i;
    if (pick < 0)
        pick = 0;
    *dev = ids[pick];
    *info = infos[pick];
    return 0;
}

/* The build log's first line that says something, for the error message. */
static int build_fail(cl_int e)
{
    char log[2048] = "";
    if (clGetProgramBuildInfo(g.prog, g.dev, CL_PROGRAM_BUILD_LOG, sizeof log, log, NULL) != 0)
        log[0] = '\0';
    log[sizeof log - 1] = '\0';
    for (char *c = log; *c; c++)
        if (*c == '\n')
            *c = ' ';
    return fail(QF_EIO, "opencl: clBuildProgram: %s (%d): %.200s", cl_name(e), (int)e, log);
}

/* Runs kernels.cl's block_sizes and compares with the host's struct sizes. */
static int check_layout(void)
{
    cl_int e;
    cl_uint sizes[NSTRUCTS] = {0};
    cl_kernel k = clCreateKernel(g.prog, "block_sizes", &e);
    if (e != CL_SUCCESS)
        return cl_fail(e, "clCreateKernel(block_sizes)");
    cl_mem m = clCreateBuffer(g.ctx, CL_MEM_WRITE_ONLY, sizeof sizes, NULL, &e);
    const size_t one = 1;
    if (e == CL_SUCCESS)
        e = clSetKernelArg(k, 0, sizeof m, &m);
    if (e == CL_SUCCESS)
        e = clEnqueueNDRangeKernel(g.q, k, 1, NULL, &one, &one, 0, NULL, NULL);
    if (e == CL_SUCCESS)
        e = clEnqueueReadBuffer(g.q, m, CL_TRUE, 0, sizeof sizes, sizes, 0, NULL, NULL);
    if (m)
        clReleaseMemObject(m);
    clReleaseKernel(k);
    if (e != CL_SUCCESS)
        return cl_fail(e, "running block_sizes");
    for (size_t i = 0; i < NSTRUCTS; i++)
        if (sizes[i] != k_structs[i].bytes)
            return fail(QF_EIO, "opencl: the device compiler lays %s out in %u bytes, the "
                        "host in %zu", k_structs[i].name, (unsigned)sizes[i],
                        k_structs[i].bytes);
    return 0;
}

static int setup_kernels(void)
{
    for (size_t i = 0; i < NFORMATS; i++) {
        const qf_format f = k_formats[i];
        char name[64];
        cl_int e;
        snprintf(name, sizeof name, "dequantize_%s", qf_format_get(f)->name);
        g.deq[f] = clCreateKernel(g.prog, name, &e);
        if (e != CL_SUCCESS)
            return cl_fail(e, name);
        snprintf(name, sizeof name, "dequantize_chunk_%s", qf_format_get(f)->name);
        g.deqc[f] = clCreateKernel(g.prog, name, &e);
        if (e != CL_SUCCESS)
            return cl_fail(e, name);
        snprintf(name, sizeof name, "matvec_%s", qf_format_get(f)->name);
        g.mv[f] = clCreateKernel(g.prog, name, &e);
        if (e != CL_SUCCESS)
            return cl_fail(e, name);
        const cl_kernel ks[3] = { g.deq[f], g.deqc[f], g.mv[f] };
        for (int k = 0; k < 3; k++) {
            size_t wg = 0;
            e = clGetKernelWorkGroupInfo(ks[k], g.dev, CL_KERNEL_WORK_GROUP_SIZE, sizeof wg,
                                         &wg, NULL);
            if (e != CL_SUCCESS)
                return cl_fail(e, "clGetKernelWorkGroupInfo");
            if (wg < QF_WG)
                return fail(QF_EUNSUP, "opencl: the %s kernels run at most %zu work-items a "
                            "group, they need %d", qf_format_get(f)->name, wg, QF_WG);
        }
    }
    return 0;
}

static int setup(void)
{
    if (g.ready)
        return 0;
    int err = pick_device(&g.dev, &g.info);
    if (err)
        return err;
    cl_int e;
    g.ctx = clCreateContext(NULL, 1, &g.dev, NULL, NULL, &e);
    if (e != CL_SUCCESS) {
        err = cl_fail(e, "clCreateContext");
        goto out;
    }
    g.q = clCreateCommandQueue(g.ctx, g.dev, CL_QUEUE_PROFILING_ENABLE, &e);
    if (e != CL_SUCCESS) {
        err = cl_fail(e, "clCreateCommandQueue");
        goto out;
    }
    const char *src = qf_opencl_source;
    g.prog = clCreateProgramWithSource(g.ctx, 1, &src, NULL, &e);
    if (e != CL_SUCCESS) {
        err = cl_fail(e, "clCreateProgramWithSource");
        goto out;
    }
    char opts[64];
    snprintf(opts, sizeof opts, "-cl-std=CL1.2 -Werror -DQF_WG=%d", QF_WG);
    if ((e = clBuildProgram(g.prog, 1, &g.dev, opts, NULL, NULL)) != CL_SUCCESS) {
        err = build_fail(e);
        goto out;
    }
    if ((err = check_layout()) != 0 || (err = setup_kernels()) != 0)
        goto out;
    g.ready = true;
out:
    if (err)
        qf_opencl_shutdown();
    return err;
}

void qf_opencl_shutdown(void)
{
    for (int f = 0; f < QF_FMT_COUNT; f++) {
        if (g.deq[f])
            clReleaseKernel(g.deq[f]);
        if (g.deqc[f])
            clReleaseKernel(g.deqc[f]);
        if (g.mv[f])
            clReleaseKernel(g.mv[f]);
    }
    if (g.prog)
        clReleaseProgram(g.prog);
    if (g.q)
        clReleaseCommandQueue(g.q);
    if (g.ctx)
        clReleaseContext(g.ctx);
    memset(&g, 0, sizeof g);
}

int qf_opencl_device_query(qf_opencl_device_info *out)
{
    assert(out);
    int err = setup();
    if (!err)
        *out = g.info;
    return err;
}

void qf_opencl_set_dequantize_kernel(qf_opencl_deq_kernel k)
{
    assert(k == QF_OPENCL_DEQ_AUTO || k == QF_OPENCL_DEQ_WEIGHT || k == QF_OPENCL_DEQ_CHUNK);
    g_deq_choice = k;
}

bool qf_opencl_supports(qf_format fmt)
{
    for (size_t i = 0; i < NFORMATS; i++)
        if (k_formats[i] == fmt)
            return true;
    return false;
}

/* ---- timers ------------------------------------------------------------------------------- */

int qf_opencl_timer_new(uint32_t capacity, qf_opencl_timer **out)
{
    assert(out && capacity >= 1);
    *out = NULL;
    qf_opencl_timer *t = calloc(1, sizeof *t);
    cl_event *ev = calloc(capacity, sizeof *ev);
    if (!t || !ev) {
        free(t);
        free(ev);
        return fail(QF_ENOMEM, "opencl: out of memory for %" PRIu32 " events", capacity);
    }
    t->cap = capacity;
    t->ev = ev;
    *out = t;
    return 0;
}

uint32_t qf_opencl_timer_count(const qf_opencl_timer *t)
{
    assert(t);
    return t->n;
}

void qf_opencl_timer_reset(qf_opencl_timer *t)
{
    assert(t);
    for (uint32_t i = 0; i < t->n; i++)
        clReleaseEvent(t->ev[i]);
    t->n = 0;
}

void qf_opencl_timer_destroy(qf_opencl_timer **t)
{
    if (!t || !*t)
        return;
    qf_opencl_timer_reset(*t);
    free((*t)->ev);
    free(*t);
    *t = NULL;
}

int qf_opencl_timer_seconds(qf_opencl_timer *t, uint32_t i, double *secs)
{
    assert(t && secs);
    if (i >= t->n)
        return fail(QF_EINVAL, "opencl: timer: command %" PRIu32 " of %" PRIu32
                    " recorded", i, t->n);
    cl_ulong t0 = 0, t1 = 0;
    cl_int e = clWaitForEvents(1, &t->ev[i]);
    if (e == CL_SUCCESS)
        e = clGetEventProfilingInfo(t->ev[i], CL_PROFILING_COMMAND_START, sizeof t0, &t0, NULL);
    if (e == CL_SUCCESS)
        e = clGetEventProfilingInfo(t->ev[i], CL_PROFILING_COMMAND_END, sizeof t1, &t1, NULL);
    if (e != CL_SUCCESS)
        return cl_fail(e, "reading a profiling event");
    if (t1 < t0)
        return fail(QF_EIO, "opencl: a command ended (%" PRIu64 " ns) before it started "
                    "(%" PRIu64 " ns)", (uint64_t)t1, (uint64_t)t0);
    *secs = 1e-9 * (double)(t1 - t0);
    return 0;
}

/* The event slot for the next command (NULL without a timer); QF_EINVAL when full. */
static int timer_slot(qf_opencl_timer *t, cl_event **ev)
{
    *ev = NULL;
    if (!t)
        return 0;
    if (t->n >= t->cap)
        return fail(QF_EINVAL, "opencl: timer full (%" PRIu32 " commands)", t->cap);
    *ev = &t->ev[t->n];
    return 0;
}

static void timer_commit(qf_opencl_timer *t)
{
    if (t)
        t->n++;
}

/* ---- buffers ------------------------------------------------------------------------------ */

static int mem_new(size_t bytes, const void *init, cl_mem *out)
{
    int err = setup();
    if (err)
        return err;
    if (bytes > g.info.max_alloc)
        return fail(QF_ENOMEM, "opencl: %zu bytes is over the device's largest buffer "
                    "(%" PRIu64 ")", bytes, g.info.max_alloc);
    cl_int e;
    *out = clCreateBuffer(g.ctx, CL_MEM_READ_WRITE, bytes, NULL, &e);
    if (e != CL_SUCCESS)
        return cl_fail(e, "clCreateBuffer");
    if (init && (e = clEnqueueWriteBuffer(g.q, *out, CL_TRUE, 0, bytes, init, 0, NULL,
                                          NULL)) != CL_SUCCESS) {
        clReleaseMemObject(*out);
        *out = NULL;
        return cl_fail(e, "clEnqueueWriteBuffer");
    }
    return 0;
}

int qf_opencl_buf_new(size_t bytes, qf_opencl_buf **out)
{
    assert(out && bytes >= 1);
    *out = NULL;
    qf_opencl_buf *b = calloc(1, sizeof *b);
    if (!b)
        return fail(QF_ENOMEM, "opencl: out of host memory");
    int err = mem_new(bytes, NULL, &b->mem);
    if (err) {
        free(b);
        return err;
    }
    b->bytes = bytes;
    *out = b;
    return 0;
}

void qf_opencl_buf_destroy(qf_opencl_buf **b)
{
    if (!b || !*b)
        return;
    clReleaseMemObject((*b)->mem);
    free(*b);
    *b = NULL;
}

size_t qf_opencl_buf_bytes(const qf_opencl_buf *b)
{
    assert(b);
    return b->bytes;
}

int qf_opencl_upload(qf_opencl_buf *dst, const void *src, size_t bytes)
{
    assert(dst && src && bytes <= dst->bytes);
    cl_int e = clEnqueueWriteBuffer(g.q, dst->mem, CL_TRUE, 0, bytes, src, 0, NULL, NULL);
    return e == CL_SUCCESS ? 0 : cl_fail(e, "clEnqueueWriteBuffer");
}

int qf_opencl_download(void *dst, const qf_opencl_buf *src, size_t bytes)
{
    assert(dst && src && bytes <= src->bytes);
    cl_int e = clEnqueueReadBuffer(g.q, src->mem, CL_TRUE, 0, bytes, dst, 0, NULL, NULL);
    return e == CL_SUCCESS ? 0 : cl_fail(e, "clEnqueueReadBuffer");
}

int qf_opencl_poison(qf_opencl_buf *b)
{
    assert(b);
    const cl_uchar ff = 0xff;
    cl_int e = clEnqueueFillBuffer(g.q, b->mem, &ff, 1, 0, b->bytes, 0, NULL, NULL);
    return e == CL_SUCCESS ? 0 : cl_fail(e, "clEnqueueFillBuffer");
}

int qf_opencl_copy(qf_opencl_buf *dst, const qf_opencl_buf *src, size_t bytes,
                   qf_opencl_timer *t)
{
    assert(dst && src && bytes <= dst->bytes && bytes <= src->bytes);
    cl_event *ev;
    int err = timer_slot(t, &ev);
    if (err)
        return err;
    cl_int e = clEnqueueCopyBuffer(g.q, src->mem, dst->mem, 0, 0, bytes, 0, NULL, ev);
    if (e != CL_SUCCESS)
        return cl_fail(e, "clEnqueueCopyBuffer");
    timer_commit(t);
    return 0;
}

int qf_opencl_sync(void)
{
    if (!g.ready)
        return fail(QF_EUNSUP, "opencl: nothing set up to wait for");
    cl_int e = clFinish(g.q);
    return e == CL_SUCCESS ? 0 : cl_fail(e, "clFinish");
}

/* ---- weights, activations, launches ------------------------------------------------------ */

int qf_opencl_weights_new(qf_format fmt, const void *w, int64_t nrows, int64_t ncols,
                          qf_opencl_weights **out)
{
    assert(w && out && (unsigned)fmt < QF_FMT_COUNT);
    *out = NULL;
    const qf_format_traits *t = qf_format_get(fmt);
    if (!qf_opencl_supports(fmt))
        return fail(QF_EINVAL, "opencl: no kernels for format %s", t->name);
    /* rows are work-groups and chunks per row an int in the kernels */
    if (nrows < 1 || nrows > INT32_MAX / QF_WG || ncols < 1 || ncols > INT32_MAX ||
        ncols % t->blck != 0)
        return fail(QF_EINVAL, "opencl: a %" PRId64 " x %" PRId64 " matrix does not fit "
                    "format %s (rows 1..%d, columns a multiple of %" PRId64 ")", nrows,
                    ncols, t->name, INT32_MAX / QF_WG, t->blck);
    qf_opencl_weights *m = calloc(1, sizeof *m);
    if (!m)
        return fail(QF_ENOMEM, "opencl: out of host memory");
    m->fmt = fmt;
    m->rows = nrows;
    m->cols = ncols;
    m->bytes = (uint64_t)qf_format_row_size(fmt, ncols) * (uint64_t)nrows;
    int err = mem_new((size_t)m->bytes, w, &m->mem);
    if (err) {
        free(m);
        return err;
    }
    *out = m;
    return 0;
}

void qf_opencl_weights_destroy(qf_opencl_weights **w)
{
    if (!w || !*w)
        return;
    clReleaseMemObject((*w)->mem);
    free(*w);
    *w = NULL;
}

uint64_t qf_opencl_weights_bytes(const qf_opencl_weights *w)
{
    assert(w);
    return w->bytes;
}

/* Launches kernel k over global work-items in groups of local. */
static int launch(cl_kernel k, size_t global, size_t local, qf_opencl_timer *t,
                  const char *what)
{
    cl_event *ev;
    int err = timer_slot(t, &ev);
    if (err)
        return err;
    cl_int e = clEnqueueNDRangeKernel(g.q, k, 1, NULL, &global, &local, 0, NULL, ev);
    if (e != CL_SUCCESS)
        return cl_fail(e, what);
    timer_commit(t);
    return 0;
}

int qf_opencl_dequantize(const qf_opencl_weights *w, qf_opencl_buf *out, qf_opencl_timer *t)
{
    assert(w && out && g.ready);
    const uint64_t n = (uint64_t)w->rows * (uint64_t)w->cols;
    if (out->bytes < n * sizeof(float))
        return fail(QF_EINVAL, "opencl: dequantize: output of %zu bytes for %" PRIu64
                    " floats", out->bytes, n);
    /* A work-item per weight on a GPU (coalesced stores), per 32-weight chunk on a CPU device
     * (kernels.cl says why); either way in groups of QF_WG as matvec's, so a runtime that
     * compiles a kernel per group size (PoCL) compiles it once, whatever the shape. */
    const bool chunk = g_deq_choice == QF_OPENCL_DEQ_CHUNK ||
                       (g_deq_choice == QF_OPENCL_DEQ_AUTO && strcmp(g.info.type, "cpu") == 0);
    cl_kernel k = chunk ? g.deqc[w->fmt] : g.deq[w->fmt];
    cl_ulong items = chunk ? n / 32 : n;
    cl_int e = clSetKernelArg(k, 0, sizeof w->mem, &w->mem);
    if (e == CL_SUCCESS)
        e = clSetKernelArg(k, 1, sizeof out->mem, &out->mem);
    if (e == CL_SUCCESS)
        e = clSetKernelArg(k, 2, sizeof items, &items);
    if (e != CL_SUCCESS)
        return cl_fail(e, "clSetKernelArg(dequantize)");
    return launch(k, (size_t)((items + QF_WG - 1) / QF_WG * QF_WG), QF_WG, t, "dequantize");
}

int qf_opencl_act_new(int64_t max_cols, qf_opencl_act **out)
{
    assert(out);
    *out = NULL;
    if (max_cols < 1 || max_cols % QF_QK8_0 != 0 || max_cols > INT32_MAX)
        return fail(QF_EINVAL, "opencl: an activation row of %" PRId64 " values (not a "
                    "positive multiple of 32)", max_cols);
    qf_opencl_act *a = calloc(1, sizeof *a);
    if (!a)
        return fail(QF_ENOMEM, "opencl: out of host memory");
    /* room for either activation format: q8_0 rows, or q8_K rounded up to whole blocks */
    const size_t q8_0 = (size_t)max_cols / QF_QK8_0 * sizeof(qf_block_q8_0);
    const size_t q8_K = ((size_t)max_cols + QF_QK_K - 1) / QF_QK_K * sizeof(qf_block_q8_K);
    a->bytes = q8_0 > q8_K ? q8_0 : q8_K;
    a->max_cols = max_cols;
    a->host = malloc(a->bytes);
    int err = a->host ? mem_new(a->bytes, NULL, &a->mem)
                      : fail(QF_ENOMEM, "opencl: out of host memory");
    if (err) {
        free(a->host);
        free(a);
        return err;
    }
    *out = a;
    return 0;
}

void qf_opencl_act_destroy(qf_opencl_act **a)
{
    if (!a || !*a)
        return;
    clReleaseMemObject((*a)->mem);
    free((*a)->host);
    free(*a);
    *a = NULL;
}

int qf_opencl_act_quantize(qf_opencl_act *a, qf_format fmt, const float *x, int64_t ncols)
{
    assert(a && x && (unsigned)fmt < QF_FMT_COUNT);
    const qf_format_traits *t = qf_format_get(fmt);
    if (!qf_opencl_supports(fmt))
        return fail(QF_EINVAL, "opencl: no kernels for format %s", t->name);
    const qf_format_traits *at = qf_format_get(t->act);
    if (ncols < 1 || ncols > a->max_cols || ncols % t->blck != 0 || ncols % at->blck != 0)
        return fail(QF_EINVAL, "opencl: %" PRId64 " activations for format %s (room for %"
                    PRId64 ")", ncols, t->name, a->max_cols);
    a->ncols = 0;
    at->quantize_ref(x, a->host, ncols);
    cl_int e = clEnqueueWriteBuffer(g.q, a->mem, CL_TRUE, 0, qf_format_row_size(t->act, ncols),
                                    a->host, 0, NULL, NULL);
    if (e != CL_SUCCESS)
        return cl_fail(e, "clEnqueueWriteBuffer(activations)");
    a->act = t->act;
    a->ncols = ncols;
    return 0;
}

int qf_opencl_matvec_q(const qf_opencl_weights *w, const qf_opencl_act *a, qf_opencl_buf *y,
                       qf_opencl_timer *t)
{
    assert(w && a && y && g.ready);
    const qf_format_traits *ft = qf_format_get(w->fmt);
    if (a->ncols != w->cols || a->act != ft->act)
        return fail(QF_EINVAL, "opencl: matvec: activations are %" PRId64 " values of %s, "
                    "the %s weights need %" PRId64 " of %s", a->ncols,
                    a->ncols ? qf_format_get(a->act)->name : "nothing", ft->name, w->cols,
                    qf_format_get(ft->act)->name);
    if (y->bytes < (uint64_t)w->rows * sizeof(float))
        return fail(QF_EINVAL, "opencl: matvec: output of %zu bytes for %" PRId64 " rows",
                    y->bytes, w->rows);
    cl_kernel k = g.mv[w->fmt];
    cl_int chunks = (cl_int)(w->cols / 32);
    cl_int e = clSetKernelArg(k, 0, sizeof w->mem, &w->mem);
    if (e == CL_SUCCESS)
        e = clSetKernelArg(k, 1, sizeof a->mem, &a->mem);
    if (e == CL_SUCCESS)
        e = clSetKernelArg(k, 2, sizeof y->mem, &y->mem);
    if (e == CL_SUCCESS)
        e = clSetKernelArg(k, 3, sizeof chunks, &chunks);
    if (e != CL_SUCCESS)
        return cl_fail(e, "clSetKernelArg(matvec)");
    return launch(k, (size_t)w->rows * QF_WG, QF_WG, t, "matvec");
}

int qf_opencl_matvec(const qf_opencl_weights *w, const float *x, qf_opencl_act *scratch,
                     qf_opencl_buf *y, qf_opencl_timer *t)
{
    assert(w && x && scratch);
    int err = qf_opencl_act_quantize(scratch, w->fmt, x, w->cols);
    return err ? err : qf_opencl_matvec_q(w, scratch, y, t);
}
