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
 * Hot: run_rows is the loop every sample times; everything else runs once per format.
 */
#include "qf_measure.h"

#include <assert.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qf_err.h"

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
} worker;

struct qf_measure {
    qf_measure_spec spec;
    size_t   max_row_size;      /* the largest quantized row of the formats named to new */
    size_t   max_act_size;      /* the largest quantized activation row */
    float   *x, *y, *act, *out;
    void    *q, *xq;
    worker  *workers;
    pthread_t *tids;
};

static const char *const k_op_names[] = {
    [QF_OP_QUANTIZE] = "quantize", [QF_OP_DEQUANTIZE] = "dequantize", [QF_OP_MATVEC] = "matvec",
};

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

__attribute__((format(printf, 4, 5)))
static int fail(int err, char *why, size_t why_len, const char *fmt, ...)
{
    if (why && why_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, why_len, fmt, ap);
        va_end(ap);
    }
    return err;
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
    assert(s->rows >= 1 && s->cols >= 1 && s->threads >= 1 && s->reps >= 1);
    (void)s;
}

int qf_measure_check(const qf_measure_spec *spec, qf_format fmt, char *why, size_t why_len)
{
    check_spec(spec);
    const qf_format_traits *t = qf_format_get(fmt);
    if (spec->op == QF_OP_MATVEC && !t->vec_dot_ref)
        return fail(QF_EUNSUP, why, why_len, "format %s is activation-only and has no matvec",
                    t->name);
    if (qf_format_check_cols(fmt, spec->cols) != 0)
        return fail(QF_ESHAPE, why, why_len, "format %s cannot hold rows of %" PRId64
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
    return 2 * 4 * rows * cols                 /* x and y, f32 */
         + rows * max_rs                       /* quantized weights */
         + 4 * (cols + rows) + max_act         /* activations, their quantized row, output */
         + sizeof(double) * spec->reps;        /* the samples of one run */
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
        *err = fail(QF_ENOMEM, why, why_len, "out of memory allocating %s for %s", s, what);
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
    qf_synth_params wp = qf_synth_defaults(s->dist, s->seed);
    int err = qf_synth_fill(&wp, m->x, s->rows, s->cols);
    if (err)
        return fail(err, why, why_len, "generating the %s weights: %s",
                    qf_synth_dist_name(s->dist), qf_strerror(err));
    qf_synth_params ap = qf_synth_defaults(QF_SYNTH_GAUSSIAN,
                                           s->seed ^ UINT64_C(0x9e3779b97f4a7c15));
    ap.stddev = 1.0;
    if ((err = qf_synth_fill(&ap, m->act, 1, s->cols)) != 0)
        return fail(err, why, why_len, "generating the activations: %s", qf_strerror(err));
    return 0;
}

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
        return fail(QF_ENOMEM, why, why_len, "out of memory");
    m->spec = *spec;
    row_sizes(spec, fmts, nfmts, &m->max_row_size, &m->max_act_size);

    size_t n = (size_t)spec->rows * (size_t)spec->cols;
    int err = 0;
    m->x = alloc_or_fail(n * sizeof(float), "the weight matrix", &err, why, why_len);
    m->y = alloc_or_fail(n * sizeof(float), "the decoded matrix", &err, why, why_len);
    m->q = alloc_or_fail((size_t)spec->rows * m->max_row_size, "the quantized matrix", &err,
                         why, why_len);
    m->act = alloc_or_fail((size_t)spec->cols * sizeof(float), "the activations", &err,
                           why, why_len);
    m->xq = alloc_or_fail(m->max_act_size, "the quantized activations", &err, why, why_len);
    m->out = alloc_or_fail((size_t)spec->rows * sizeof(float), "the matvec output", &err,
                           why, why_len);
    m->workers = alloc_or_fail((size_t)spec->threads * sizeof(worker), "the threads", &err,
                               why, why_len);
    m->tids = alloc_or_fail((size_t)spec->threads * sizeof(pthread_t), "the threads", &err,
                            why, why_len);
    if (!err)
        err = generate(m, why, why_len);
    if (err) {
        qf_measure_destroy(&m);
        return err;
    }
    *out = m;
    return 0;
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
    }
}

static void *worker_main(void *arg)
{
    const worker *w = arg;
    run_rows(w->p, w->r0, w->r1);
    return NULL;
}

/* One pass over the matrix with nthreads threads; its wall time in *secs. */
static int run_pass(const pass *p, int nthreads, const worker *workers, pthread_t *tids,
                    double *secs, char *why, size_t why_len)
{
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
            return fail(QF_ENOMEM, why, why_len, "cannot start thread %d of %d: %s",
                        started + 1, nthreads, strerror(rc));
    }
    double t = now_s() - t0;
    /* A pass is many nanoseconds of work, but never report a zero that becomes inf GB/s. */
    *secs = t > 1e-9 ? t : 1e-9;
    return 0;
}

/* The kernels a run times for fmt. Only the scalar reference exists; ISA work picks the
 * fastest variant the host can run here and names it. */
static const char *select_kernels(qf_format fmt, pass *p)
{
    const qf_format_traits *t = qf_format_get(fmt);
    p->quantize = t->quantize_ref;
    p->dequantize = t->dequantize;
    p->vec_dot = t->vec_dot_ref;
    return "ref";
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

    double *samples = malloc(sizeof(double) * s->reps);
    if (!samples)
        return fail(QF_ENOMEM, why, why_len, "out of memory for %" PRIu32 " samples", s->reps);
    out->fmt = fmt;
    out->kernel = select_kernels(fmt, &p);
    out->bytes = (uint64_t)p.row_size * (uint64_t)s->rows;
    out->bpw = qf_format_bpw(fmt, s->cols);
    out->throughput_bytes = s->op == QF_OP_QUANTIZE
                          ? (uint64_t)s->rows * (uint64_t)s->cols * sizeof(float) : out->bytes;

    /* The shapes were checked above, so the reference quantizer cannot fail here. */
    if (s->op != QF_OP_QUANTIZE)
        err = qf_quantize(fmt, m->x, m->q, s->rows, s->cols);
    assert(err == 0);
    if (s->op == QF_OP_MATVEC)
        qf_format_get(t->act)->quantize_ref(m->act, m->xq, s->cols);

    int nthreads = s->threads;
    for (int i = 0; i < nthreads; i++) {
        m->workers[i].p = &p;
        m->workers[i].r0 = s->rows * i / nthreads;
        m->workers[i].r1 = s->rows * (i + 1) / nthreads;
    }
    double secs;
    for (uint32_t i = 0; i < s->warmup && !err; i++)
        err = run_pass(&p, nthreads, m->workers, m->tids, &secs, why, why_len);
    for (uint32_t i = 0; i < s->reps && !err; i++) {
        err = run_pass(&p, nthreads, m->workers, m->tids, &secs, why, why_len);
        samples[i] = secs;
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
