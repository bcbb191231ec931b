/* measure.c - the measurement core behind `qfleet bench` and the agent's job kinds (see
 * qf_measure.h): buffers, input generation, timed passes, metrics.
 *
 * Flow: qf_measure_new sizes the buffers once for the largest of the formats it is told about
 * and generates the matrix (and a Gaussian activation row) once with qf_synth_fill; then per
 * format, qf_measure_run brings the quantized weights to life with the reference quantizer
 * (dequantize and matvec time reading them), runs the warm-up passes untimed and the timed
 * passes, and decodes the weights with the reference decoder for the quality metrics.
 *
 * One pass is the op over every row of the matrix. With threads = N the rows are cut into N
 * contiguous shares; the calling thread works the first share and N-1 fresh pthreads the
 * rest, and the pass ends when all are joined, so a sample includes the cost of starting
 * threads, as a one-shot matvec in an application would pay it. For matvec the activation
 * vector is quantized to the format's activation format once, before timing: that is O(cols)
 * next to the O(rows x cols) pass, and leaving it out keeps the sample a pure weight read.
 * Each thread writes only its own rows of q, y or out, so passes need no locks.
 * The CUDA backend (built with QF_HAVE_CUDA) shares all of that except the pass: it uploads
 * the reference-quantized weights to the device (qf_cuda_weights: the same bytes, rearranged),
 * into as many copies as it takes to be four times the L2 cache (each pass reads the next
 * copy, so every pass reads DRAM as a one-shot matvec would; GB/s counts the C layout's bytes,
 * which is what a pass reads), quantizes the activations there once, and times each pass, one
 * kernel launch, between two CUDA events; after the timed passes it runs once more on
 * poisoned output and compares with the CPU reference (check_nmse). The device's copy
 * bandwidth, the ceiling the GB/s are compared with, is measured once per qf_measure, in
 * qf_measure_new.
 * Hot: run_rows is the loop every sample times; everything else runs once per format.
 */
#include "qf_measure.h"
#include "qf_pin.h"

#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qf_err.h"
#include "qf_matmul.h"
#ifdef QF_HAVE_CUDA
#include "qf_cuda.h"
#endif
#ifdef QF_HAVE_OPENCL
#include "qf_opencl.h"
#include "qf_stats.h"
#endif

/* What one pass needs: shared read-only by every thread of a pass, except that each thread
 * writes only its own rows of q, y or out. */
typedef struct pass {
    qf_bench_op op;
    int64_t     rows, cols;
    size_t      row_size;       /* bytes of one quantized row */
    const float *x;             /* rows x cols weights, f32 */
    void        *q;             /* rows x row_size quantized weights */
    float       *y;             /* rows x cols decoded weights */
    const void  *xq;            /* matvec: the activation row, in the activation format */
    float       *out;           /* matvec: rows results */
    qf_quantize_row_fn   quantize;
    qf_dequantize_row_fn dequantize;
    qf_vec_dot_fn        vec_dot;
} pass;

typedef struct worker {
    const pass *p;
    int64_t r0, r1;             /* rows [r0, r1) */
    int index;                  /* thread i runs on core i (qf_pin_thread) */
} worker;

struct qf_measure {
    qf_measure_spec spec;
    size_t   max_row_size;      /* the largest quantized row of the formats named to new */
    size_t   max_act_size;      /* the largest quantized activation row */
    float   *x, *y, *act, *out;
    void    *q, *xq;
    worker  *workers;
    pthread_t *tids;
    char     device[512];       /* qf_measure_device: "" for REF */
    double   copy_gbps;         /* CUDA: D2D copy bandwidth measured by new */
};

static const char *const k_op_names[] = {
    [QF_OP_QUANTIZE] = "quantize", [QF_OP_DEQUANTIZE] = "dequantize", [QF_OP_MATVEC] = "matvec",
    [QF_OP_MATMUL] = "matmul",
};

#define MAX_BATCH     4096
#define DEFAULT_BATCH 512

/* Activation rows a pass multiplies: batch for matmul, 1 for matvec. */
static int64_t act_rows(const qf_measure_spec *s)
{
    if (s->op != QF_OP_MATMUL)
        return 1;
    return s->batch > 0 ? s->batch : DEFAULT_BATCH;
}

const char *qf_measure_op_name(qf_bench_op op)
{
    assert((size_t)op < sizeof k_op_names / sizeof k_op_names[0]);
    return k_op_names[op];
}

int qf_measure_op_from_name(const char *name, qf_bench_op *op)
{
    assert(name && op);
    for (size_t i = 0; i < sizeof k_op_names / sizeof k_op_names[0]; i++) {
        if (strcmp(name, k_op_names[i]) == 0) {
            *op = (qf_bench_op)i;
            return 0;
        }
    }
    return QF_EINVAL;
}

static const char *const k_backend_names[] = {
    [QF_BACKEND_REF] = "ref", [QF_BACKEND_CUDA] = "cuda", [QF_BACKEND_OPENCL] = "opencl",
};

const char *qf_measure_backend_name(qf_measure_backend b)
{
    const size_t n = sizeof k_backend_names / sizeof k_backend_names[0];
    assert((size_t)b < n);
    return (size_t)b < n ? k_backend_names[b] : "unknown";
}

int qf_measure_backend_from_name(const char *name, qf_measure_backend *b)
{
    assert(name && b);
    for (size_t i = 0; i < sizeof k_backend_names / sizeof k_backend_names[0]; i++) {
        if (strcmp(name, k_backend_names[i]) == 0) {
            *b = (qf_measure_backend)i;
            return 0;
        }
    }
    return QF_EINVAL;
}

bool qf_measure_backend_built(qf_measure_backend b)
{
#ifdef QF_HAVE_OPENCL
    if (b == QF_BACKEND_OPENCL)
        return true;
#endif
#ifdef QF_HAVE_CUDA
    return b == QF_BACKEND_REF || b == QF_BACKEND_CUDA;
#else
    return b == QF_BACKEND_REF;
#endif
}

bool qf_measure_backend_supports(qf_measure_backend b, qf_format fmt, qf_bench_op op)
{
    const qf_format_traits *t = qf_format_get(fmt);
    if (b == QF_BACKEND_REF)
        return (op != QF_OP_MATVEC && op != QF_OP_MATMUL) || t->vec_dot_ref != NULL;
#ifdef QF_HAVE_CUDA
    if (b == QF_BACKEND_CUDA)
        return op != QF_OP_QUANTIZE && qf_cuda_supports(fmt);
#endif
#ifdef QF_HAVE_OPENCL
    if (b == QF_BACKEND_OPENCL)
        return (op == QF_OP_DEQUANTIZE || op == QF_OP_MATVEC) && qf_opencl_supports(fmt);
#endif
    return false;
}

void qf_measure_format_bytes(char *buf, size_t size, uint64_t bytes)
{
    static const char *const units[] = { "B", "KiB", "MiB", "GiB", "TiB", "PiB" };
    double v = (double)bytes;
    size_t u = 0;
    while (v >= 1024.0 && u + 1 < sizeof units / sizeof units[0]) {
        v /= 1024.0;
        u++;
    }
    snprintf(buf, size, u ? "%.1f %s" : "%.0f %s", v, units[u]);
}

static void check_spec(const qf_measure_spec *s)
{
    assert(s);
    assert((size_t)s->op < sizeof k_op_names / sizeof k_op_names[0]);
    assert((size_t)s->backend < sizeof k_backend_names / sizeof k_backend_names[0]);
    assert(s->rows >= 1 && s->cols >= 1 && s->threads >= 1 && s->reps >= 1);
    (void)s;
}

int qf_measure_check(const qf_measure_spec *spec, qf_format fmt, char *why, size_t why_len)
{
    check_spec(spec);
    const qf_format_traits *t = qf_format_get(fmt);
    if ((spec->op == QF_OP_MATVEC || spec->op == QF_OP_MATMUL) && !t->vec_dot_ref)
        return qf_whyf(QF_EUNSUP, why, why_len, "format %s is activation-only and has no %s",
                    t->name, qf_measure_op_name(spec->op));
    if (spec->op == QF_OP_MATMUL && (spec->batch < 0 || spec->batch > MAX_BATCH))
        return qf_whyf(QF_ERANGE, why, why_len, "a matmul batch of %" PRId64 " activation rows "
                    "(1..%d)", spec->batch, MAX_BATCH);
    if (!qf_measure_backend_built(spec->backend))
        return qf_whyf(QF_EUNSUP, why, why_len, "this build has no %s backend",
                    qf_measure_backend_name(spec->backend));
    if (spec->backend != QF_BACKEND_REF && spec->op == QF_OP_QUANTIZE)
        return qf_whyf(QF_EUNSUP, why, why_len, "the %s backend times dequantize and matvec only",
                    qf_measure_backend_name(spec->backend));
    if (!qf_measure_backend_supports(spec->backend, fmt, spec->op))
        return qf_whyf(QF_EUNSUP, why, why_len, "the %s backend has no %s for format %s",
                    qf_measure_backend_name(spec->backend), qf_measure_op_name(spec->op),
                    t->name);
    if (spec->force_isa && !qf_isa_host_supports(spec->isa))
        return qf_whyf(QF_EUNSUP, why, why_len, "this host cannot run the %s kernels (CPU "
                    "features: %s)", qf_isa_name(spec->isa), qf_isa_host_features());
    if (qf_format_check_cols(fmt, spec->cols) != 0)
        return qf_whyf(QF_ESHAPE, why, why_len, "format %s cannot hold rows of %" PRId64
                    " weights (not a multiple of its block)", t->name, spec->cols);
    return 0;
}

/* The largest quantized weight row and activation row over fmts. */
static void row_sizes(const qf_measure_spec *spec, const qf_format *fmts, int nfmts,
                      size_t *max_rs, size_t *max_act)
{
    *max_rs = 0;
    *max_act = 0;
    for (int i = 0; i < nfmts; i++) {
        const qf_format_traits *t = qf_format_get(fmts[i]);
        size_t rs = qf_format_row_size(fmts[i], spec->cols);
        if (rs > *max_rs)
            *max_rs = rs;
        if (t->vec_dot_ref) {
            size_t as = qf_format_row_size(t->act, spec->cols);
            if (as > *max_act)
                *max_act = as;
        }
    }
}

uint64_t qf_measure_buffer_bytes(const qf_measure_spec *spec, const qf_format *fmts, int nfmts)
{
    check_spec(spec);
    assert(fmts && nfmts >= 1);
    size_t max_rs, max_act;
    row_sizes(spec, fmts, nfmts, &max_rs, &max_act);
    /* rows, cols <= 2^20 and a quantized weight is at most 4 bytes: no term can overflow 64
     * bits, so the sum is exact and a caller's comparison with its limit honest. */
    uint64_t rows = (uint64_t)spec->rows, cols = (uint64_t)spec->cols;
    /* CUDA dequantize downloads the device's decode next to the reference's to check it */
    uint64_t check = spec->backend != QF_BACKEND_REF && spec->op == QF_OP_DEQUANTIZE
                   ? 4 * rows * cols : 0;
    uint64_t n = (uint64_t)act_rows(spec);
    return 2 * 4 * rows * cols                 /* x and y, f32 */
         + rows * max_rs                       /* quantized weights */
         + n * (4 * (cols + rows) + max_act)   /* activations, their quantized rows, output */
         + sizeof(double) * spec->reps         /* the samples of one run */
         + check;
}

/* ---- buffers ------------------------------------------------------------------------------ */

static void *alloc_or_fail(size_t bytes, const char *what, int *err, char *why, size_t why_len)
{
    if (*err)
        return NULL;
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        char s[32];
        qf_measure_format_bytes(s, sizeof s, bytes);
        *err = qf_whyf(QF_ENOMEM, why, why_len, "out of memory allocating %s for %s", s, what);
    }
    return p;
}

void qf_measure_destroy(qf_measure **mp)
{
    if (!mp || !*mp)
        return;
    qf_measure *m = *mp;
    free(m->x);
    free(m->y);
    free(m->act);
    free(m->out);
    free(m->q);
    free(m->xq);
    free(m->workers);
    free(m->tids);
    free(m);
    *mp = NULL;
}

/* The weights from spec's distribution and seed; the activations unit-scale Gaussian with a
 * seed of their own, so they are not the weights. */
static int generate(qf_measure *m, char *why, size_t why_len)
{
    const qf_measure_spec *s = &m->spec;
    int err = 0;
    if (s->input) {
        memcpy(m->x, s->input, (size_t)(s->rows * s->cols) * sizeof(float));
    } else {
        qf_synth_params wp = qf_synth_defaults(s->dist, s->seed);
        err = qf_synth_fill(&wp, m->x, s->rows, s->cols);
        if (err)
            return qf_whyf(err, why, why_len, "generating the %s weights: %s",
                        qf_synth_dist_name(s->dist), qf_strerror(err));
    }
    if ((err = qf_measure_activations(s->seed, act_rows(s), s->cols, m->act)) != 0)
        return qf_whyf(err, why, why_len, "generating the activations: %s", qf_strerror(err));
    return 0;
}

int qf_measure_activations(uint64_t seed, int64_t n, int64_t cols, float *x)
{
    qf_synth_params ap = qf_synth_defaults(QF_SYNTH_GAUSSIAN, seed ^ UINT64_C(0x9e3779b97f4a7c15));
    ap.stddev = 1.0;
    return qf_synth_fill(&ap, x, n, cols);
}

/* ---- the CUDA backend ---------------------------------------------------------------------- */

#ifdef QF_HAVE_CUDA
#define CUDA_COPY_BYTES  (UINT64_C(1) << 30)   /* the copy-bandwidth buffer, if memory allows */
#define CUDA_COPY_REPS   20
#define CUDA_MAX_COPIES  64                    /* rotation: weight copies at most */
#define MATMUL_CHECK_ROWS 4                    /* batch rows checked against the CPU */

static int cuda_fail(int err, char *why, size_t why_len, const char *what)
{
    return qf_whyf(err, why, why_len, "cuda: %s: %s", what, qf_cuda_last_error());
}

/* Finds the device, describes it, and measures its copy bandwidth once. */
static int cuda_setup(qf_measure *m, char *why, size_t why_len)
{
    qf_cuda_device_info info;
    int err = qf_cuda_device_query(&info);
    if (err)
        return cuda_fail(err, why, why_len, "no usable device");
    uint64_t bytes = info.free_mem / 4 < CUDA_COPY_BYTES ? info.free_mem / 4 : CUDA_COPY_BYTES;
    if ((err = qf_cuda_copy_bandwidth((size_t)bytes, CUDA_COPY_REPS, &m->copy_gbps)) != 0)
        return cuda_fail(err, why, why_len, "measuring the copy bandwidth");
    double launch_s = 0;
    if ((err = qf_cuda_launch_overhead(CUDA_COPY_REPS * 5, &launch_s)) != 0)
        return cuda_fail(err, why, why_len, "measuring an empty launch");
    char mem[32], l2[32];
    qf_measure_format_bytes(mem, sizeof mem, info.total_mem);
    qf_measure_format_bytes(l2, sizeof l2, info.l2_bytes);
    snprintf(m->device, sizeof m->device, "%s, cc %d.%d, %d SMs, %s, L2 %s, driver CUDA %d.%d, "
             "runtime %d.%d; D2D copy %.0f GB/s, an empty kernel %.1f us between events",
             info.name, info.cc_major, info.cc_minor, info.sm_count, mem, l2,
             info.driver_version / 1000, info.driver_version % 1000 / 10,
             info.runtime_version / 1000, info.runtime_version % 1000 / 10, m->copy_gbps,
             1e6 * launch_s);
    return 0;
}

/* What one CUDA run holds on the device. */
typedef struct cuda_run {
    qf_cuda_weights *w[CUDA_MAX_COPIES];   /* ncopies copies of the weights */
    int     ncopies;
    void   *x, *out;        /* f32 activations; f32 output (rows, or rows x cols) */
    size_t  out_bytes;
    qf_cuda_act *act;
    qf_cuda_gemm *gemm;     /* matmul */
    qf_cuda_timer *timer;
} cuda_run;

static void cuda_run_free(cuda_run *r)
{
    for (int c = 0; c < r->ncopies; c++)
        qf_cuda_weights_destroy(&r->w[c]);
    qf_cuda_free(&r->x);
    qf_cuda_free(&r->out);
    qf_cuda_act_destroy(&r->act);
    qf_cuda_gemm_destroy(&r->gemm);
    qf_cuda_timer_destroy(&r->timer);
}

/* One pass: the op over every row of weight copy i. */
static int cuda_pass(const qf_measure *m, qf_format fmt, const cuda_run *r, uint32_t i)
{
    (void)fmt;
    const qf_cuda_weights *w = r->w[i % (uint32_t)r->ncopies];
    if (m->spec.op == QF_OP_MATVEC)
        return qf_cuda_matvec_q(w, r->act, r->out);
    if (m->spec.op == QF_OP_MATMUL)
        return qf_cuda_matmul(r->gemm, r->x, act_rows(&m->spec), r->out);
    return qf_cuda_dequantize(w, r->out);
}

/* Uploads the quantized weights (m->q, bytes of them) and the activations. */
static int cuda_prepare(const qf_measure *m, qf_format fmt, uint64_t bytes, cuda_run *r,
                        char *why, size_t why_len)
{
    const qf_measure_spec *s = &m->spec;
    qf_cuda_device_info info;
    int err = qf_cuda_device_query(&info);
    if (err)
        return cuda_fail(err, why, why_len, "device query");
    const uint64_t stride = bytes + 4096;      /* the layout's alignment padding, roughly */
    uint64_t want = (4 * info.l2_bytes + stride - 1) / stride;
    uint64_t fit = info.free_mem / 2 / stride;
    int ncopies = (int)(want < 1 ? 1 : want > CUDA_MAX_COPIES ? CUDA_MAX_COPIES : want);
    if ((uint64_t)ncopies > fit)
        ncopies = fit > 0 ? (int)fit : 1;
    if (s->op == QF_OP_MATMUL)
        ncopies = 1;      /* bound by arithmetic: where the weights come from hardly matters */
    for (; r->ncopies < ncopies; r->ncopies++)
        if ((err = qf_cuda_weights_new(fmt, m->q, s->rows, s->cols, &r->w[r->ncopies])) != 0)
            return cuda_fail(err, why, why_len, "uploading the weights");
    const size_t nact = (size_t)act_rows(s);
    r->out_bytes = sizeof(float) * (size_t)s->rows *
                   (s->op == QF_OP_MATVEC ? 1 : s->op == QF_OP_MATMUL ? nact : (size_t)s->cols);
    if ((err = qf_cuda_alloc(sizeof(float) * nact * (size_t)s->cols, &r->x)) != 0 ||
        (err = qf_cuda_alloc(r->out_bytes, &r->out)) != 0)
        return cuda_fail(err, why, why_len, "allocating device memory");
    if (s->op == QF_OP_MATMUL && (err = qf_cuda_gemm_new(r->w[0], (int64_t)nact, &r->gemm)) != 0)
        return cuda_fail(err, why, why_len, "allocating the matmul's f16 scratch");
    if ((err = qf_cuda_upload(r->x, m->act, sizeof(float) * nact * (size_t)s->cols)) != 0)
        return cuda_fail(err, why, why_len, "uploading the activations");
    if (s->op == QF_OP_MATVEC) {
        if ((err = qf_cuda_act_new(s->cols, &r->act)) != 0 ||
            (err = qf_cuda_act_quantize(r->act, fmt, r->x, s->cols)) != 0)
            return cuda_fail(err, why, why_len, "quantizing the activations");
    }
    if ((err = qf_cuda_timer_new(s->reps + 1, &r->timer)) != 0)
        return cuda_fail(err, why, why_len, "creating events");
    return 0;
}

/* Runs once more on poisoned output and compares with the CPU reference: m->out gets
 * qf_matvec_ref's y, m->y must already hold the reference decode. */
static int cuda_check(qf_measure *m, qf_format fmt, const cuda_run *r, double *nmse,
                      char *why, size_t why_len)
{
    const qf_measure_spec *s = &m->spec;
    int err = qf_cuda_poison(r->out, r->out_bytes);
    if (!err)
        err = cuda_pass(m, fmt, r, 0);
    if (!err)
        err = qf_cuda_sync();
    if (err)
        return cuda_fail(err, why, why_len, "the checked pass");
    size_t n = r->out_bytes / sizeof(float);
    float *got = malloc(r->out_bytes);
    if (!got)
        return qf_whyf(QF_ENOMEM, why, why_len, "out of memory for the device's output");
    if ((err = qf_cuda_download(got, r->out, r->out_bytes)) != 0) {
        free(got);
        return cuda_fail(err, why, why_len, "downloading the output");
    }
    const float *ref = m->y;
    if (s->op == QF_OP_MATMUL) {
        /* the exact product of the reference decode (m->y) for the first rows of the batch:
         * enough to catch a wrong tile, at a fraction of the batch's cost on the CPU */
        const int64_t nchk = act_rows(s) < MATMUL_CHECK_ROWS ? act_rows(s) : MATMUL_CHECK_ROWS;
        for (int64_t j = 0; j < nchk; j++)
            for (int64_t row = 0; row < s->rows; row++) {
                double acc = 0;
                for (int64_t c = 0; c < s->cols; c++)
                    acc += (double)m->y[row * s->cols + c] * (double)m->act[j * s->cols + c];
                m->out[j * s->rows + row] = (float)acc;
            }
        n = (size_t)(nchk * s->rows);
        ref = m->out;
    } else if (s->op == QF_OP_MATVEC) {
        if ((err = qf_matvec_ref(fmt, m->q, m->act, m->out, s->rows, s->cols)) != 0) {
            free(got);
            return qf_whyf(err, why, why_len, "the reference matvec failed");
        }
        ref = m->out;
    }
    qf_tensor_metrics tm;
    qf_metrics_compute(ref, got, (int64_t)n, 0, &tm);
    *nmse = tm.nmse;
    free(got);
    return 0;
}

/* Times fmt's op on the device into samples[reps]; fills out's CUDA fields. */
static int run_cuda(qf_measure *m, qf_format fmt, double *samples, qf_measure_out *out,
                    char *why, size_t why_len)
{
    const qf_measure_spec *s = &m->spec;
    cuda_run r = {0};
    /* device memory the run takes: the driver's free memory before and after the buffers */
    qf_cuda_device_info before, after;
    int err = qf_cuda_device_query(&before);
    if (err)
        return cuda_fail(err, why, why_len, "device query");
    err = cuda_prepare(m, fmt, out->bytes, &r, why, why_len);
    assert(err || qf_cuda_weights_bytes(r.w[0]) == out->bytes);
    if (!err && qf_cuda_device_query(&after) == 0 && before.free_mem > after.free_mem)
        out->device_mem_bytes = before.free_mem - after.free_mem;
    for (uint32_t i = 0; i < s->warmup && !err; i++)
        if ((err = cuda_pass(m, fmt, &r, i)) != 0)
            cuda_fail(err, why, why_len, "a warm-up pass");
    if (!err && (err = qf_cuda_timer_mark(r.timer, 0)) != 0)
        cuda_fail(err, why, why_len, "recording an event");
    for (uint32_t i = 0; i < s->reps && !err; i++) {
        if ((err = cuda_pass(m, fmt, &r, s->warmup + i)) != 0 ||
            (err = qf_cuda_timer_mark(r.timer, i + 1)) != 0)
            cuda_fail(err, why, why_len, "a timed pass");
    }
    for (uint32_t i = 0; i < s->reps && !err; i++) {
        double secs;
        if ((err = qf_cuda_timer_seconds(r.timer, i, i + 1, &secs)) != 0)
            cuda_fail(err, why, why_len, "reading the events");
        samples[i] = secs > 1e-9 ? secs : 1e-9;
    }
    if (!err && (s->op == QF_OP_DEQUANTIZE || s->op == QF_OP_MATMUL))
        err = qf_dequantize(fmt, m->q, m->y, s->rows, s->cols);
    if (!err)
        err = cuda_check(m, fmt, &r, &out->check_nmse, why, why_len);
    out->copy_gbps = m->copy_gbps;
    cuda_run_free(&r);
    return err;
}
#else
static int cuda_setup(qf_measure *m, char *why, size_t why_len)
{
    (void)m;
    return qf_whyf(QF_EUNSUP, why, why_len, "this build has no cuda backend");
}

static int run_cuda(qf_measure *m, qf_format fmt, double *samples, qf_measure_out *out,
                    char *why, size_t why_len)
{
    (void)m, (void)fmt, (void)samples, (void)out;
    return qf_whyf(QF_EUNSUP, why, why_len, "this build has no cuda backend");
}
#endif

/* ---- the OpenCL backend -------------------------------------------------------------------- */

/* As the CUDA backend: the reference-quantized weights go up unchanged (in as many copies as
 * make four times the device's global memory cache, each pass reading the next), the
 * activations are quantized once, each pass is one kernel launch timed by its profiling event
 * (the device's own start and end, so no launch cost), and a last pass on poisoned output is
 * compared with the CPU reference. The copy bandwidth, the ceiling, is the median of
 * device-to-device copies timed the same way, read + write bytes. */
#ifdef QF_HAVE_OPENCL
#define OPENCL_COPY_BYTES  (UINT64_C(256) << 20)
#define OPENCL_COPY_REPS   10
#define OPENCL_MAX_COPIES  64

static int opencl_fail(int err, char *why, size_t why_len, const char *what)
{
    return qf_whyf(err, why, why_len, "%s: %s", what, qf_opencl_last_error());
}

/* The median seconds of reps copies of bytes between two device buffers, after two warm-up
 * copies, into *gbps as read + write GB/s. */
static int opencl_copy_gbps(uint64_t bytes, double *gbps, char *why, size_t why_len)
{
    qf_opencl_buf *a = NULL, *b = NULL;
    qf_opencl_timer *t = NULL;
    double secs[OPENCL_COPY_REPS];
    int err = qf_opencl_buf_new((size_t)bytes, &a);
    if (!err)
        err = qf_opencl_buf_new((size_t)bytes, &b);
    if (!err)
        err = qf_opencl_timer_new(OPENCL_COPY_REPS, &t);
    if (!err)
        err = qf_opencl_poison(a);
    for (int i = 0; i < 2 && !err; i++)
        err = qf_opencl_copy(b, a, (size_t)bytes, NULL);
    for (int i = 0; i < OPENCL_COPY_REPS && !err; i++)
        err = qf_opencl_copy(b, a, (size_t)bytes, t);
    for (uint32_t i = 0; i < OPENCL_COPY_REPS && !err; i++)
        err = qf_opencl_timer_seconds(t, i, &secs[i]);
    if (!err) {
        double med = qf_stats_percentile(secs, OPENCL_COPY_REPS, 50.0);
        *gbps = 2.0 * (double)bytes / (med > 1e-9 ? med : 1e-9) / 1e9;
    } else {
        opencl_fail(err, why, why_len, "measuring the copy bandwidth");
    }
    qf_opencl_timer_destroy(&t);
    qf_opencl_buf_destroy(&a);
    qf_opencl_buf_destroy(&b);
    return err;
}

/* Finds the device (qf_opencl_device_query: QF_OPENCL_DEVICE, else the first GPU), describes
 * it, and measures its copy bandwidth once. */
static int opencl_setup(qf_measure *m, char *why, size_t why_len)
{
    qf_opencl_device_info info;
    int err = qf_opencl_device_query(&info);
    if (err)
        return opencl_fail(err, why, why_len, "no usable device");
    uint64_t bytes = OPENCL_COPY_BYTES;
    if (bytes > info.max_alloc)
        bytes = info.max_alloc;
    if (bytes > info.global_mem / 4)
        bytes = info.global_mem / 4;
    if ((err = opencl_copy_gbps(bytes, &m->copy_gbps, why, why_len)) != 0)
        return err;
    char mem[32], cache[32];
    qf_measure_format_bytes(mem, sizeof mem, info.global_mem);
    qf_measure_format_bytes(cache, sizeof cache, info.cache_bytes);
    /* a description: the driver's strings may be long, and a cut one says "..." at its end */
    if (snprintf(m->device, sizeof m->device, "%s / %s (%s), %" PRIu32 " CUs at %" PRIu32
                 " MHz, %s, cache %s, %s, driver %s; D2D copy %.1f GB/s", info.platform,
                 info.name, info.type, info.compute_units, info.clock_mhz, mem, cache,
                 info.version, info.driver_version, m->copy_gbps) >= (int)sizeof m->device)
        memcpy(m->device + sizeof m->device - 4, "...", 4);
    return 0;
}

/* What one OpenCL run holds on the device. */
typedef struct opencl_run {
    qf_opencl_weights *w[OPENCL_MAX_COPIES];
    int ncopies;
    qf_opencl_buf *out;
    qf_opencl_act *act;
    qf_opencl_timer *timer;
} opencl_run;

static void opencl_run_free(opencl_run *r)
{
    for (int c = 0; c < r->ncopies; c++)
        qf_opencl_weights_destroy(&r->w[c]);
    qf_opencl_buf_destroy(&r->out);
    qf_opencl_act_destroy(&r->act);
    qf_opencl_timer_destroy(&r->timer);
}

/* One pass over weight copy i; t records it (NULL: untimed). */
static int opencl_pass(const qf_measure *m, const opencl_run *r, uint32_t i, qf_opencl_timer *t)
{
    const qf_opencl_weights *w = r->w[i % (uint32_t)r->ncopies];
    if (m->spec.op == QF_OP_MATVEC)
        return qf_opencl_matvec_q(w, r->act, r->out, t);
    return qf_opencl_dequantize(w, r->out, t);
}

static int opencl_prepare(const qf_measure *m, qf_format fmt, uint64_t bytes, opencl_run *r,
                          char *why, size_t why_len)
{
    const qf_measure_spec *s = &m->spec;
    qf_opencl_device_info info;
    int err = qf_opencl_device_query(&info);
    if (err)
        return opencl_fail(err, why, why_len, "device query");
    uint64_t want = (4 * info.cache_bytes + bytes - 1) / bytes;
    uint64_t fit = info.global_mem / 2 / bytes;
    int ncopies = (int)(want < 1 ? 1 : want > OPENCL_MAX_COPIES ? OPENCL_MAX_COPIES : want);
    if ((uint64_t)ncopies > fit)
        ncopies = fit > 0 ? (int)fit : 1;
    for (; r->ncopies < ncopies; r->ncopies++)
        if ((err = qf_opencl_weights_new(fmt, m->q, s->rows, s->cols, &r->w[r->ncopies])) != 0)
            return opencl_fail(err, why, why_len, "uploading the weights");
    size_t out_bytes = sizeof(float) * (size_t)s->rows *
                       (s->op == QF_OP_MATVEC ? 1 : (size_t)s->cols);
    if ((err = qf_opencl_buf_new(out_bytes, &r->out)) != 0)
        return opencl_fail(err, why, why_len, "allocating the output");
    if (s->op == QF_OP_MATVEC &&
        ((err = qf_opencl_act_new(s->cols, &r->act)) != 0 ||
         (err = qf_opencl_act_quantize(r->act, fmt, m->act, s->cols)) != 0))
        return opencl_fail(err, why, why_len, "the activations");
    if ((err = qf_opencl_timer_new(s->reps, &r->timer)) != 0)
        return opencl_fail(err, why, why_len, "the timer");
    return 0;
}

/* One more pass on poisoned output, compared with the CPU reference: matvec with
 * qf_matvec_ref (into m->out), dequantize with the reference decode (into m->y). */
static int opencl_check(qf_measure *m, qf_format fmt, const opencl_run *r, double *nmse,
                        char *why, size_t why_len)
{
    const qf_measure_spec *s = &m->spec;
    const size_t bytes = qf_opencl_buf_bytes(r->out), n = bytes / sizeof(float);
    int err = qf_opencl_poison(r->out);
    if (!err)
        err = opencl_pass(m, r, 0, NULL);
    float *got = err ? NULL : malloc(bytes);
    if (!err && !got)
        return qf_whyf(QF_ENOMEM, why, why_len, "out of memory for the device's output");
    if (!err)
        err = qf_opencl_download(got, r->out, bytes);
    if (err) {
        free(got);
        return opencl_fail(err, why, why_len, "the checked pass");
    }
    err = s->op == QF_OP_MATVEC ? qf_matvec_ref(fmt, m->q, m->act, m->out, s->rows, s->cols)
                                : qf_dequantize(fmt, m->q, m->y, s->rows, s->cols);
    assert(err == 0);     /* the shape was checked */
    qf_tensor_metrics tm;
    qf_metrics_compute(s->op == QF_OP_MATVEC ? m->out : m->y, got, (int64_t)n, 0, &tm);
    *nmse = tm.nmse;
    free(got);
    return 0;
}

/* Times fmt's op on the device into samples[reps]; fills out's device fields. */
static int run_opencl(qf_measure *m, qf_format fmt, double *samples, qf_measure_out *out,
                      char *why, size_t why_len)
{
    const qf_measure_spec *s = &m->spec;
    opencl_run r = {0};
    int err = opencl_prepare(m, fmt, out->bytes, &r, why, why_len);
    for (uint32_t i = 0; i < s->warmup && !err; i++)
        if ((err = opencl_pass(m, &r, i, NULL)) != 0)
            opencl_fail(err, why, why_len, "a warm-up pass");
    for (uint32_t i = 0; i < s->reps && !err; i++)
        if ((err = opencl_pass(m, &r, s->warmup + i, r.timer)) != 0)
            opencl_fail(err, why, why_len, "a timed pass");
    for (uint32_t i = 0; i < s->reps && !err; i++) {
        double secs;
        if ((err = qf_opencl_timer_seconds(r.timer, i, &secs)) != 0)
            opencl_fail(err, why, why_len, "reading the profiling events");
        samples[i] = secs > 1e-9 ? secs : 1e-9;
    }
    if (!err)
        err = opencl_check(m, fmt, &r, &out->check_nmse, why, why_len);
    out->copy_gbps = m->copy_gbps;
    opencl_run_free(&r);
    return err;
}
#else
static int opencl_setup(qf_measure *m, char *why, size_t why_len)
{
    (void)m;
    return qf_whyf(QF_EUNSUP, why, why_len, "this build has no opencl backend");
}

static int run_opencl(qf_measure *m, qf_format fmt, double *samples, qf_measure_out *out,
                      char *why, size_t why_len)
{
    (void)m, (void)fmt, (void)samples, (void)out;
    return qf_whyf(QF_EUNSUP, why, why_len, "this build has no opencl backend");
}
#endif

int qf_measure_new(const qf_measure_spec *spec, const qf_format *fmts, int nfmts,
                   qf_measure **out, char *why, size_t why_len)
{
    check_spec(spec);
    assert(fmts && nfmts >= 1 && out);
    *out = NULL;
    for (int i = 0; i < nfmts; i++) {
        int err = qf_measure_check(spec, fmts[i], why, why_len);
        if (err)
            return err;
    }
    qf_measure *m = calloc(1, sizeof *m);
    if (!m)
        return qf_whyf(QF_ENOMEM, why, why_len, "out of memory");
    m->spec = *spec;
    row_sizes(spec, fmts, nfmts, &m->max_row_size, &m->max_act_size);

    size_t n = (size_t)spec->rows * (size_t)spec->cols;
    int err = 0;
    m->x = alloc_or_fail(n * sizeof(float), "the weight matrix", &err, why, why_len);
    m->y = alloc_or_fail(n * sizeof(float), "the decoded matrix", &err, why, why_len);
    m->q = alloc_or_fail((size_t)spec->rows * m->max_row_size, "the quantized matrix", &err,
                         why, why_len);
    const size_t nact = (size_t)act_rows(spec);
    m->act = alloc_or_fail(nact * (size_t)spec->cols * sizeof(float), "the activations", &err,
                           why, why_len);
    m->xq = alloc_or_fail(nact * m->max_act_size, "the quantized activations", &err, why,
                          why_len);
    m->out = alloc_or_fail(nact * (size_t)spec->rows * sizeof(float), "the output", &err,
                           why, why_len);
    m->workers = alloc_or_fail((size_t)spec->threads * sizeof(worker), "the threads", &err,
                               why, why_len);
    m->tids = alloc_or_fail((size_t)spec->threads * sizeof(pthread_t), "the threads", &err,
                            why, why_len);
    if (!err)
        err = generate(m, why, why_len);
    m->spec.input = NULL;   /* copied into m->x: the caller's buffer is not kept */
    if (!err && spec->backend == QF_BACKEND_CUDA)
        err = cuda_setup(m, why, why_len);
    if (!err && spec->backend == QF_BACKEND_OPENCL)
        err = opencl_setup(m, why, why_len);
    if (err) {
        qf_measure_destroy(&m);
        return err;
    }
    *out = m;
    return 0;
}

const char *qf_measure_device(const qf_measure *m)
{
    assert(m);
    return m->device;
}

const float *qf_measure_input(const qf_measure *m, int64_t *n_elems)
{
    assert(m);
    if (n_elems)
        *n_elems = m->spec.rows * m->spec.cols;
    return m->x;
}

void qf_measure_out_clear(qf_measure_out *out)
{
    if (!out)
        return;
    free(out->samples);
    memset(out, 0, sizeof *out);
}

/* ---- timing ------------------------------------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The op over rows [r0, r1): the loop every sample times. */
static void run_rows(const pass *p, int64_t r0, int64_t r1)
{
    switch (p->op) {
    case QF_OP_QUANTIZE:
        for (int64_t i = r0; i < r1; i++)
            p->quantize(p->x + i * p->cols, (char *)p->q + (size_t)i * p->row_size, p->cols);
        break;
    case QF_OP_DEQUANTIZE:
        for (int64_t i = r0; i < r1; i++)
            p->dequantize((const char *)p->q + (size_t)i * p->row_size, p->y + i * p->cols,
                          p->cols);
        break;
    case QF_OP_MATVEC:
        for (int64_t i = r0; i < r1; i++)
            p->vec_dot(p->cols, (const char *)p->q + (size_t)i * p->row_size, p->xq, &p->out[i]);
        break;
    case QF_OP_MATMUL:      /* run_matmul, not passes of rows */
        assert(!"matmul has no row pass");
        break;
    }
}

static void *worker_main(void *arg)
{
    const worker *w = arg;
    qf_pin_thread(w->index);
    run_rows(w->p, w->r0, w->r1);
    return NULL;
}

/* One pass over the matrix with nthreads threads; its wall time in *secs. */
static int run_pass(const pass *p, int nthreads, const worker *workers, pthread_t *tids,
                    double *secs, char *why, size_t why_len)
{
    qf_pin_thread(0);   /* this thread measures too (rows of worker 0): on core 0 */
    double t0 = now_s();
    if (nthreads == 1) {
        run_rows(p, 0, p->rows);
    } else {
        int started = 1, rc = 0;
        for (; started < nthreads; started++) {
            rc = pthread_create(&tids[started], NULL, worker_main, (void *)&workers[started]);
            if (rc != 0)
                break;
        }
        if (rc == 0)
            run_rows(p, workers[0].r0, workers[0].r1);
        for (int i = 1; i < started; i++)
            pthread_join(tids[i], NULL);
        if (rc != 0)
            return qf_whyf(QF_ENOMEM, why, why_len, "cannot start thread %d of %d: %s",
                        started + 1, nthreads, strerror(rc));
    }
    double t = now_s() - t0;
    /* A pass is many nanoseconds of work, but never report a zero that becomes inf GB/s. */
    *secs = t > 1e-9 ? t : 1e-9;
    return 0;
}

/* The kernels a run times for fmt: the forced ISA's (qf_measure_check said the host runs it)
 * or the best the host runs, each slot resolved by qf_kernels_get (an ISA's missing slot falls
 * back). Returns the name of the ISA the timed op's kernel came from. */
static const char *select_kernels(const qf_measure_spec *s, qf_format fmt, pass *p,
                                  qf_kernel_set *ks)
{
    int err = qf_kernels_get(s->force_isa ? s->isa : qf_isa_best(), fmt, ks);
    assert(err == 0);
    (void)err;
    p->quantize = ks->quantize;
    p->dequantize = ks->dequantize;
    p->vec_dot = ks->vec_dot;
    qf_isa from = s->op == QF_OP_QUANTIZE ? ks->from_quantize
                : s->op == QF_OP_DEQUANTIZE ? ks->from_dequantize : ks->from_vec_dot;
    return qf_isa_name(from);
}

/* The CPU matmul: every pass one qf_matmul of the batch (quantizing the activations included,
 * as a prefill step pays it) on a pool of spec.threads pinned threads, kept across passes. */
static int run_matmul(qf_measure *m, const qf_kernel_set *ks, double *samples, char *why,
                      size_t why_len)
{
    const qf_measure_spec *s = &m->spec;
    qf_pool *pool = NULL;
    int err = qf_pool_new(s->threads, true, &pool);
    if (err)
        return qf_whyf(err, why, why_len, "cannot start %d threads", s->threads);
    const int64_t n = act_rows(s);
    assert(qf_matmul_scratch_bytes(ks, n, s->cols) <= (size_t)n * m->max_act_size);
    for (uint32_t i = 0; i < s->warmup + s->reps; i++) {
        double t0 = now_s();
        qf_matmul(ks, m->q, s->rows, s->cols, m->act, n, m->out, m->xq, pool);
        double t = now_s() - t0;
        if (i >= s->warmup)
            samples[i - s->warmup] = t > 1e-9 ? t : 1e-9;
    }
    qf_pool_destroy(&pool);
    return 0;
}

/* Cuts the rows into the threads' contiguous shares of pass p. */
static void set_workers(qf_measure *m, const pass *p)
{
    const int nthreads = m->spec.threads;
    for (int i = 0; i < nthreads; i++) {
        m->workers[i].p = p;
        m->workers[i].r0 = m->spec.rows * i / nthreads;
        m->workers[i].r1 = m->spec.rows * (i + 1) / nthreads;
        m->workers[i].index = i;
    }
}

int qf_measure_run(qf_measure *m, qf_format fmt, qf_measure_out *out, char *why, size_t why_len)
{
    assert(m && out);
    const qf_measure_spec *s = &m->spec;
    const qf_format_traits *t = qf_format_get(fmt);
    memset(out, 0, sizeof *out);
    int err = qf_measure_check(s, fmt, why, why_len);
    if (err)
        return err;
    pass p = {
        .op = s->op, .rows = s->rows, .cols = s->cols,
        .row_size = qf_format_row_size(fmt, s->cols),
        .x = m->x, .q = m->q, .y = m->y, .xq = m->xq, .out = m->out,
    };
    /* A format not named to qf_measure_new may not fit the buffers: our own misuse. */
    assert(p.row_size <= m->max_row_size);
    assert(!t->vec_dot_ref || qf_format_row_size(t->act, s->cols) <= m->max_act_size);
    (void)t;      /* read only by the asserts in release builds */

    double *samples = malloc(sizeof(double) * s->reps);
    if (!samples)
        return qf_whyf(QF_ENOMEM, why, why_len, "out of memory for %" PRIu32 " samples", s->reps);
    out->fmt = fmt;
    qf_kernel_set ks;
    out->kernel = select_kernels(s, fmt, &p, &ks);
    out->check_nmse = NAN;
    out->bytes = (uint64_t)p.row_size * (uint64_t)s->rows;
    out->bpw = qf_format_bpw(fmt, s->cols);
    out->throughput_bytes = s->op == QF_OP_QUANTIZE
                          ? (uint64_t)s->rows * (uint64_t)s->cols * sizeof(float) : out->bytes;

    /* The shapes were checked above, so the reference quantizer cannot fail here. A CUDA run
     * times the device, so its input may be quantized by every thread (the K-quants' reference
     * quantizers run at tens of MB/s): a quantize pass over the threads' shares. */
    if (s->op != QF_OP_QUANTIZE && s->backend != QF_BACKEND_REF && s->threads > 1) {
        pass qp = p;
        double secs;
        qp.op = QF_OP_QUANTIZE;
        set_workers(m, &qp);
        if ((err = run_pass(&qp, s->threads, m->workers, m->tids, &secs, why, why_len)) != 0) {
            free(samples);
            memset(out, 0, sizeof *out);
            return err;
        }
    } else if (s->op != QF_OP_QUANTIZE) {
        err = qf_quantize(fmt, m->x, m->q, s->rows, s->cols);
    }
    assert(err == 0);
    if (s->op == QF_OP_MATVEC)
        ks.quantize_act(m->act, m->xq, s->cols);
    if (s->op == QF_OP_MATMUL)
        out->flops = 2.0 * (double)s->rows * (double)s->cols * (double)act_rows(s);

    if (s->backend == QF_BACKEND_CUDA) {
        out->kernel = "cuda";
        err = run_cuda(m, fmt, samples, out, why, why_len);
    } else if (s->backend == QF_BACKEND_OPENCL) {
        out->kernel = "opencl";
        err = run_opencl(m, fmt, samples, out, why, why_len);
    } else if (s->op == QF_OP_MATMUL) {
        err = run_matmul(m, &ks, samples, why, why_len);
    } else {
        int nthreads = s->threads;
        set_workers(m, &p);
        double secs;
        for (uint32_t i = 0; i < s->warmup && !err; i++)
            err = run_pass(&p, nthreads, m->workers, m->tids, &secs, why, why_len);
        for (uint32_t i = 0; i < s->reps && !err; i++) {
            err = run_pass(&p, nthreads, m->workers, m->tids, &secs, why, why_len);
            samples[i] = secs;
        }
    }
    if (err) {
        free(samples);
        memset(out, 0, sizeof *out);
        return err;
    }
    out->samples = samples;
    out->n_samples = s->reps;

    /* Quality is the format's, so decode with the reference whatever kernel was timed. */
    err = qf_dequantize(fmt, m->q, m->y, s->rows, s->cols);
    assert(err == 0);
    qf_metrics_compute(m->x, m->y, s->rows * s->cols, (size_t)out->bytes, &out->metrics);
    return 0;
}
