/* bench.c - `qfleet bench`: time quantize, dequantize or matvec of formats on a synthetic
 * LLM-like weight matrix and report summaries of the raw samples plus the format's tensor
 * quality metrics on that same matrix (see qf_bench.h).
 *
 * Flow, per run: parse and validate every option and every selected format before touching
 * memory (usage errors exit 2 and nothing has been allocated); allocate the buffers once for
 * the largest selected format, refusing shapes over --max-mem; generate the matrix once with
 * qf_synth_fill; then for each format: bring the quantized weights to life with the reference
 * quantizer (dequantize and matvec time reading them), run --warmup untimed passes and --reps
 * timed ones, decode the weights with the reference decoder for the metrics, and print.
 *
 * One pass is the op over every row of the matrix. With --threads N the rows are cut into N
 * contiguous shares; the calling thread works the first share and N-1 fresh pthreads the
 * rest, and the pass ends when all are joined, so a sample includes the cost of starting
 * threads, as a one-shot matvec in an application would pay it. For matvec the activation
 * vector is quantized to the format's activation format once, before timing: that is O(cols)
 * next to the O(rows x cols) pass, and leaving it out keeps the sample a pure weight read.
 * Throughput is GB/s (1e9 bytes) of the f32 input for quantize and of the quantized weights
 * for dequantize and matvec; the summary is of the per-sample GB/s values.
 * Runs in the CLI process today and later in an agent's job child. Option parsing uses
 * getopt's globals, so two benches must not parse at once; everything else is local to a call.
 */
#include "qf_bench.h"

#include <assert.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "qf_cli_args.h"
#include "qf_err.h"
#include "qf_metrics.h"
#include "qf_stats.h"
#include "qf_synth.h"
#include "qf_version.h"

#define MAX_DIM      (INT64_C(1) << 20)  /* rows and cols: a 1M-wide layer is beyond any LLM */
#define MAX_THREADS  512
#define MAX_REPS     100000
#define MAX_WARMUP   10000
#define DEFAULT_MAX_MEM (UINT64_C(8) << 30)

typedef struct bench_opts {
    bool        all;            /* every weight format, in table order */
    qf_format   fmt;            /* when !all */
    qf_bench_op op;
    int64_t     rows, cols, threads, reps, warmup;
    qf_synth_dist dist;
    uint64_t    seed;
    uint64_t    max_mem;        /* bytes of buffers we are willing to allocate */
    bool        json;
} bench_opts;

/* What one pass needs: shared read-only by every thread of a pass, except that each thread
 * writes only its own rows of q, y or out. */
typedef struct bench_run {
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
} bench_run;

typedef struct worker {
    const bench_run *run;
    int64_t r0, r1;             /* rows [r0, r1) */
} worker;

/* Buffers shared by all formats of one invocation, sized for the largest. */
typedef struct bench_buffers {
    float   *x, *y, *act, *out;
    void    *q, *xq;
    double  *samples, *gbps;
    worker  *workers;
    pthread_t *tids;
} bench_buffers;

static const char *const k_op_names[] = {
    [QF_OP_QUANTIZE] = "quantize", [QF_OP_DEQUANTIZE] = "dequantize", [QF_OP_MATVEC] = "matvec",
};

enum {
    OPT_FORMAT = 256, OPT_OP, OPT_ROWS, OPT_COLS, OPT_THREADS, OPT_REPS, OPT_WARMUP, OPT_DIST,
    OPT_SEED, OPT_MAX_MEM, OPT_JSON,
};

static void print_usage(FILE *out)
{
    fputs("usage: qfleet bench [--format F|all] [--op OP] [--rows R] [--cols C] [options]\n"
          "\n"
          "Times one kernel op over a synthetic LLM-like weight matrix, one pass over the\n"
          "matrix per repetition, keeps every sample, and reports median and p10/p90\n"
          "throughput with the format's quality metrics (SNR, NMSE, cosine) on that matrix.\n"
          "\n"
          "Options:\n"
          "  --format F      a name from 'qfleet formats', or 'all' for every weight format\n"
          "                  (default all)\n"
          "  --op OP         quantize: GB/s of f32 input read; dequantize, matvec: GB/s of\n"
          "                  quantized weights read (default matvec)\n"
          "  --rows R        output channels, 1..1048576 (default 4096)\n"
          "  --cols C        input channels, a multiple of the format's block (default 4096)\n"
          "  --threads N     split the rows across N threads, 1..512 (default 1)\n"
          "  --reps N        timed repetitions, 1..100000 (default 10)\n"
          "  --warmup N      untimed repetitions before them, 0..10000 (default 2)\n"
          "  --dist D        weight body: gaussian, laplace or student-t (default student-t)\n"
          "  --seed S        generator seed, 0..2^63-1 (default 42)\n"
          "  --max-mem SIZE  refuse shapes whose buffers need more, e.g. 512M, 16G\n"
          "                  (default 8G)\n"
          "  --json          print one JSON object with the identity and every raw sample\n"
          "  -h, --help      show this help\n", out);
}

/* ---- options ------------------------------------------------------------------------------ */

static int parse_format(const char *text, bench_opts *o)
{
    if (strcmp(text, "all") == 0) {
        o->all = true;
        return 0;
    }
    if (qf_format_from_name(text, &o->fmt) == 0) {
        o->all = false;
        return 0;
    }
    char names[512] = "all";
    for (int f = 0; f < QF_FMT_COUNT; f++) {
        size_t used = strlen(names);
        snprintf(names + used, sizeof names - used, ", %s", qf_format_get((qf_format)f)->name);
    }
    return qf_errorf(QF_EUSAGE, "bench: --format '%s' is not a format; valid: %s", text, names);
}

static int parse_op(const char *text, qf_bench_op *op)
{
    for (size_t i = 0; i < sizeof k_op_names / sizeof k_op_names[0]; i++) {
        if (strcmp(text, k_op_names[i]) == 0) {
            *op = (qf_bench_op)i;
            return 0;
        }
    }
    return qf_errorf(QF_EUSAGE, "bench: --op '%s' is not one of quantize, dequantize, matvec",
                     text);
}

/* The current option's value (optarg) as an integer in [min, max]. */
static int int_opt(const char *opt, int64_t min, int64_t max, int64_t *out)
{
    return qf_cli_parse_int("bench", opt, optarg, min, max, out);
}

/* 0 with *o filled, 1 if --help was printed, QF_EUSAGE after printing why. */
static int parse_opts(int argc, char **argv, bench_opts *o)
{
    static const struct option opts[] = {
        { "format",  required_argument, NULL, OPT_FORMAT },
        { "op",      required_argument, NULL, OPT_OP },
        { "rows",    required_argument, NULL, OPT_ROWS },
        { "cols",    required_argument, NULL, OPT_COLS },
        { "threads", required_argument, NULL, OPT_THREADS },
        { "reps",    required_argument, NULL, OPT_REPS },
        { "warmup",  required_argument, NULL, OPT_WARMUP },
        { "dist",    required_argument, NULL, OPT_DIST },
        { "seed",    required_argument, NULL, OPT_SEED },
        { "max-mem", required_argument, NULL, OPT_MAX_MEM },
        { "json",    no_argument,       NULL, OPT_JSON },
        { "help",    no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    *o = (bench_opts){
        .all = true, .op = QF_OP_MATVEC, .rows = 4096, .cols = 4096, .threads = 1, .reps = 10,
        .warmup = 2, .dist = QF_SYNTH_STUDENT_T, .seed = 42, .max_mem = DEFAULT_MAX_MEM,
    };
    opterr = 0;   /* we print our own one-line errors */
    optind = 0;   /* full reset, also of a half-read "-ab" cluster: glibc, musl and BSD */
    int c, rc = 0;
    int64_t seed = 0;
    while (rc == 0 && (c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case OPT_FORMAT:  rc = parse_format(optarg, o); break;
        case OPT_OP:      rc = parse_op(optarg, &o->op); break;
        case OPT_ROWS:    rc = int_opt("--rows", 1, MAX_DIM, &o->rows); break;
        case OPT_COLS:    rc = int_opt("--cols", 1, MAX_DIM, &o->cols); break;
        case OPT_THREADS: rc = int_opt("--threads", 1, MAX_THREADS, &o->threads); break;
        case OPT_REPS:    rc = int_opt("--reps", 1, MAX_REPS, &o->reps); break;
        case OPT_WARMUP:  rc = int_opt("--warmup", 0, MAX_WARMUP, &o->warmup); break;
        case OPT_DIST: /* the generator owns its names and says which are valid */
            rc = qf_synth_dist_from_name(optarg, &o->dist) == 0 ? 0 : QF_EUSAGE;
            break;
        case OPT_SEED:
            rc = int_opt("--seed", 0, INT64_MAX, &seed);
            o->seed = (uint64_t)seed;
            break;
        case OPT_MAX_MEM:
            rc = qf_cli_parse_size("bench", "--max-mem", optarg, 1, UINT64_MAX, &o->max_mem);
            break;
        case OPT_JSON:    o->json = true; break;
        case 'h':         print_usage(stdout); return 1;
        default:          return qf_cli_reject_option("bench", c, argc, argv);
        }
    }
    if (rc)
        return QF_EUSAGE;
    if (optind < argc)
        return qf_errorf(QF_EUSAGE, "bench: unexpected argument '%s' (see 'qfleet bench --help')",
                         argv[optind]);
    return 0;
}

/* The formats this run times, in table order; their count. */
static int selected_formats(const bench_opts *o, qf_format fmts[QF_FMT_COUNT])
{
    if (!o->all) {
        fmts[0] = o->fmt;
        return 1;
    }
    int n = 0;
    for (int f = 0; f < QF_FMT_COUNT; f++)
        if (qf_format_get((qf_format)f)->weight)
            fmts[n++] = (qf_format)f;
    return n;
}

static void human_bytes(char *buf, size_t size, uint64_t bytes)
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

/* Every check that depends only on the options: shapes, ops, memory. Sets the largest row
 * of quantized weights and of quantized activations over the selected formats. */
static int validate(const bench_opts *o, const qf_format *fmts, int nfmts, size_t *max_row_size,
                    size_t *max_act_size)
{
    size_t max_rs = 0, max_act = 0;
    for (int i = 0; i < nfmts; i++) {
        const qf_format_traits *t = qf_format_get(fmts[i]);
        if (o->op == QF_OP_MATVEC && !t->vec_dot_ref)
            return qf_errorf(QF_EUSAGE, "bench: format %s is activation-only and has no matvec; "
                             "use --op quantize or dequantize", t->name);
        if (qf_format_check_cols(fmts[i], o->cols) != 0) /* it printed which multiple */
            return QF_EUSAGE;
        size_t rs = qf_format_row_size(fmts[i], o->cols);
        if (rs > max_rs)
            max_rs = rs;
        if (t->vec_dot_ref) {
            size_t as = qf_format_row_size(t->act, o->cols);
            if (as > max_act)
                max_act = as;
        }
    }
    /* rows, cols <= 2^20 and a quantized weight is at most 4 bytes: no term below can
     * overflow 64 bits, so the sum is exact and the comparison honest. */
    uint64_t n = (uint64_t)o->rows * (uint64_t)o->cols;
    uint64_t need = 2 * 4 * n                           /* x and y, f32 */
                  + (uint64_t)o->rows * max_rs          /* quantized weights */
                  + 4 * ((uint64_t)o->cols + (uint64_t)o->rows) + max_act
                  + 2 * sizeof(double) * (uint64_t)o->reps;
    if (need > o->max_mem || need > SIZE_MAX / 2) {
        char need_s[32], lim_s[32];
        human_bytes(need_s, sizeof need_s, need);
        human_bytes(lim_s, sizeof lim_s, o->max_mem);
        return qf_errorf(QF_EUSAGE, "bench: a %" PRId64 " x %" PRId64 " matrix needs %s of "
                         "buffers, over the %s limit (raise it with --max-mem)",
                         o->rows, o->cols, need_s, lim_s);
    }
    *max_row_size = max_rs;
    *max_act_size = max_act;
    return 0;
}

/* ---- buffers ------------------------------------------------------------------------------ */

static void buffers_free(bench_buffers *b)
{
    free(b->x);
    free(b->y);
    free(b->act);
    free(b->out);
    free(b->q);
    free(b->xq);
    free(b->samples);
    free(b->gbps);
    free(b->workers);
    free(b->tids);
    memset(b, 0, sizeof *b);
}

static void *alloc_or_report(size_t bytes, const char *what, int *err)
{
    if (*err)
        return NULL;
    void *p = malloc(bytes ? bytes : 1);
    if (!p) {
        char s[32];
        human_bytes(s, sizeof s, bytes);
        *err = qf_errorf(QF_ENOMEM, "bench: out of memory allocating %s for %s", s, what);
    }
    return p;
}

static int buffers_alloc(const bench_opts *o, size_t max_row_size, size_t max_act_size,
                         bench_buffers *b)
{
    size_t n = (size_t)o->rows * (size_t)o->cols;
    int err = 0;
    memset(b, 0, sizeof *b);
    b->x = alloc_or_report(n * sizeof(float), "the weight matrix", &err);
    b->y = alloc_or_report(n * sizeof(float), "the decoded matrix", &err);
    b->q = alloc_or_report((size_t)o->rows * max_row_size, "the quantized matrix", &err);
    b->act = alloc_or_report((size_t)o->cols * sizeof(float), "the activations", &err);
    b->xq = alloc_or_report(max_act_size, "the quantized activations", &err);
    b->out = alloc_or_report((size_t)o->rows * sizeof(float), "the matvec output", &err);
    b->samples = alloc_or_report((size_t)o->reps * sizeof(double), "the samples", &err);
    b->gbps = alloc_or_report((size_t)o->reps * sizeof(double), "the samples", &err);
    b->workers = alloc_or_report((size_t)o->threads * sizeof(worker), "the threads", &err);
    b->tids = alloc_or_report((size_t)o->threads * sizeof(pthread_t), "the threads", &err);
    if (err)
        buffers_free(b);
    return err;
}

/* ---- timing ------------------------------------------------------------------------------- */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* The op over rows [r0, r1): the loop every sample times. */
static void run_rows(const bench_run *r, int64_t r0, int64_t r1)
{
    switch (r->op) {
    case QF_OP_QUANTIZE:
        for (int64_t i = r0; i < r1; i++)
            r->quantize(r->x + i * r->cols, (char *)r->q + (size_t)i * r->row_size, r->cols);
        break;
    case QF_OP_DEQUANTIZE:
        for (int64_t i = r0; i < r1; i++)
            r->dequantize((const char *)r->q + (size_t)i * r->row_size, r->y + i * r->cols,
                          r->cols);
        break;
    case QF_OP_MATVEC:
        for (int64_t i = r0; i < r1; i++)
            r->vec_dot(r->cols, (const char *)r->q + (size_t)i * r->row_size, r->xq, &r->out[i]);
        break;
    }
}

static void *worker_main(void *arg)
{
    const worker *w = arg;
    run_rows(w->run, w->r0, w->r1);
    return NULL;
}

/* One pass over the matrix with nthreads threads; its wall time in *secs. */
static int run_pass(const bench_run *r, int nthreads, worker *workers, pthread_t *tids,
                    double *secs)
{
    double t0 = now_s();
    if (nthreads == 1) {
        run_rows(r, 0, r->rows);
    } else {
        int started = 1, rc = 0;
        for (; started < nthreads; started++) {
            rc = pthread_create(&tids[started], NULL, worker_main, &workers[started]);
            if (rc != 0)
                break;
        }
        if (rc == 0)
            run_rows(r, workers[0].r0, workers[0].r1);
        for (int i = 1; i < started; i++)
            pthread_join(tids[i], NULL);
        if (rc != 0)
            return qf_errorf(QF_ENOMEM, "bench: cannot start thread %d of %d: %s",
                             started + 1, nthreads, strerror(rc));
    }
    double t = now_s() - t0;
    /* A pass is many nanoseconds of work, but never report a zero that becomes inf GB/s. */
    *secs = t > 1e-9 ? t : 1e-9;
    return 0;
}

/* ---- one format --------------------------------------------------------------------------- */

typedef struct bench_result {
    qf_format fmt;
    const char *kernel;
    size_t bytes;               /* quantized weights */
    size_t throughput_bytes;    /* bytes per pass the GB/s counts */
    double bpw;
    qf_summary gbps;
    qf_tensor_metrics metrics;
} bench_result;

/* The kernels a run times for fmt. Only the scalar reference exists; ISA work picks the
 * fastest variant the host can run here and names it. */
static const char *select_kernels(qf_format fmt, bench_run *r)
{
    const qf_format_traits *t = qf_format_get(fmt);
    r->quantize = t->quantize_ref;
    r->dequantize = t->dequantize;
    r->vec_dot = t->vec_dot_ref;
    return "ref";
}

static int bench_format(const bench_opts *o, qf_format fmt, bench_buffers *b, bench_result *res)
{
    const qf_format_traits *t = qf_format_get(fmt);
    bench_run r = {
        .op = o->op, .rows = o->rows, .cols = o->cols,
        .row_size = qf_format_row_size(fmt, o->cols),
        .x = b->x, .q = b->q, .y = b->y, .xq = b->xq, .out = b->out,
    };
    memset(res, 0, sizeof *res);
    res->fmt = fmt;
    res->kernel = select_kernels(fmt, &r);
    res->bytes = r.row_size * (size_t)o->rows;
    res->bpw = qf_format_bpw(fmt, o->cols);
    res->throughput_bytes = o->op == QF_OP_QUANTIZE
                          ? (size_t)o->rows * (size_t)o->cols * sizeof(float) : res->bytes;

    int err = 0;
    if (o->op != QF_OP_QUANTIZE)
        err = qf_quantize(fmt, b->x, b->q, o->rows, o->cols);
    if (!err && o->op == QF_OP_MATVEC)
        qf_format_get(t->act)->quantize_ref(b->act, b->xq, o->cols);
    if (err)
        return err;

    int nthreads = (int)o->threads;
    for (int i = 0; i < nthreads; i++) {
        b->workers[i].run = &r;
        b->workers[i].r0 = o->rows * i / nthreads;
        b->workers[i].r1 = o->rows * (i + 1) / nthreads;
    }
    double secs;
    for (int64_t i = 0; i < o->warmup; i++)
        if ((err = run_pass(&r, nthreads, b->workers, b->tids, &secs)) != 0)
            return err;
    for (int64_t i = 0; i < o->reps; i++) {
        if ((err = run_pass(&r, nthreads, b->workers, b->tids, &secs)) != 0)
            return err;
        b->samples[i] = secs;
        b->gbps[i] = (double)res->throughput_bytes / secs / 1e9;
    }
    if ((err = qf_stats_summarize(b->gbps, (size_t)o->reps, &res->gbps)) != 0)
        return qf_errorf(err, "bench: out of memory summarizing %" PRId64 " samples", o->reps);

    /* Quality is the format's, so decode with the reference whatever kernel was timed. */
    if ((err = qf_dequantize(fmt, b->q, b->y, o->rows, o->cols)) != 0)
        return err;
    qf_metrics_compute(b->x, b->y, o->rows * o->cols, res->bytes, &res->metrics);
    return 0;
}

/* ---- output ------------------------------------------------------------------------------- */

static void print_header(const bench_opts *o, const char *host)
{
    printf("# qfleet %s (%s%s, %s, %s) on %s: %s, %" PRId64 " thread%s, %" PRId64
           " reps after %" PRId64 " warm-up, %s weights, seed %" PRIu64 "\n",
           QF_VERSION, QF_GIT_COMMIT, QF_GIT_DIRTY ? "-dirty" : "", QF_C_COMPILER,
           QF_BUILD_TYPE, host, k_op_names[o->op], o->threads, o->threads == 1 ? "" : "s",
           o->reps, o->warmup, qf_synth_dist_name(o->dist), o->seed);
    printf("%-10s %-10s %-11s %7s %9s %9s %9s %6s %8s %10s %10s %10s\n",
           "format", "op", "shape", "bpw", "GB/s med", "p10", "p90", "n",
           "SNR dB", "NMSE", "cosine", "max abs");
}

static void print_row(const bench_opts *o, const bench_result *res)
{
    char shape[48];
    snprintf(shape, sizeof shape, "%" PRId64 "x%" PRId64, o->rows, o->cols);
    printf("%-10s %-10s %-11s %7.4f %9.3f %9.3f %9.3f %6zu %8.2f %10.3e %10.7f %10.3e\n",
           qf_format_get(res->fmt)->name, k_op_names[o->op], shape, res->bpw,
           res->gbps.median, res->gbps.p10, res->gbps.p90, res->gbps.n,
           res->metrics.snr_db, res->metrics.nmse, res->metrics.cosine, res->metrics.max_abs);
    fflush(stdout); /* a row per format as it finishes: `--format all` takes a while */
}

/* JSON has no infinity or NaN: those become null (a perfect round trip has SNR +inf). */
static json_t *jnum(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

/* Builds the result object; NULL if jansson ran out of memory. json_object_set_new and
 * json_array_append_new consume their value even on failure, so one flag catches all. */
static json_t *result_json(const bench_opts *o, const bench_result *res, const double *samples)
{
    json_t *r = json_object(), *g = json_object(), *m = json_object(), *s = json_array();
    int bad = !r || !g || !m || !s;
    if (bad) {
        json_decref(r);
        json_decref(g);
        json_decref(m);
        json_decref(s);
        return NULL;
    }
    bad |= json_object_set_new(g, "median", jnum(res->gbps.median));
    bad |= json_object_set_new(g, "p10", jnum(res->gbps.p10));
    bad |= json_object_set_new(g, "p90", jnum(res->gbps.p90));
    bad |= json_object_set_new(g, "min", jnum(res->gbps.min));
    bad |= json_object_set_new(g, "max", jnum(res->gbps.max));
    bad |= json_object_set_new(g, "mean", jnum(res->gbps.mean));
    bad |= json_object_set_new(g, "n", json_integer((json_int_t)res->gbps.n));
    for (int64_t i = 0; i < o->reps; i++)
        bad |= json_array_append_new(s, json_real(samples[i]));
    bad |= json_object_set_new(m, "rmse", jnum(res->metrics.rmse));
    bad |= json_object_set_new(m, "nmse", jnum(res->metrics.nmse));
    bad |= json_object_set_new(m, "snr_db", jnum(res->metrics.snr_db));
    bad |= json_object_set_new(m, "max_abs", jnum(res->metrics.max_abs));
    bad |= json_object_set_new(m, "cosine", jnum(res->metrics.cosine));

    bad |= json_object_set_new(r, "format", json_string(qf_format_get(res->fmt)->name));
    bad |= json_object_set_new(r, "op", json_string(k_op_names[o->op]));
    bad |= json_object_set_new(r, "kernel", json_string(res->kernel));
    bad |= json_object_set_new(r, "bytes", json_integer((json_int_t)res->bytes));
    bad |= json_object_set_new(r, "throughput_bytes",
                               json_integer((json_int_t)res->throughput_bytes));
    bad |= json_object_set_new(r, "bpw", jnum(res->bpw));
    bad |= json_object_set_new(r, "gbps", g);
    bad |= json_object_set_new(r, "samples_s", s);
    bad |= json_object_set_new(r, "metrics", m);
    if (bad) {
        json_decref(r);
        return NULL;
    }
    return r;
}

static json_t *identity_json(const bench_opts *o, const char *host)
{
    json_t *j = json_object();
    if (!j)
        return NULL;
    int bad = 0;
    bad |= json_object_set_new(j, "version", json_string(QF_VERSION));
    bad |= json_object_set_new(j, "commit", json_string(QF_GIT_COMMIT));
    bad |= json_object_set_new(j, "dirty", json_boolean(QF_GIT_DIRTY));
    bad |= json_object_set_new(j, "compiler", json_string(QF_C_COMPILER));
    bad |= json_object_set_new(j, "build_type", json_string(QF_BUILD_TYPE));
    bad |= json_object_set_new(j, "host", json_string(host));
    bad |= json_object_set_new(j, "op", json_string(k_op_names[o->op]));
    bad |= json_object_set_new(j, "rows", json_integer(o->rows));
    bad |= json_object_set_new(j, "cols", json_integer(o->cols));
    bad |= json_object_set_new(j, "threads", json_integer(o->threads));
    bad |= json_object_set_new(j, "reps", json_integer(o->reps));
    bad |= json_object_set_new(j, "warmup", json_integer(o->warmup));
    bad |= json_object_set_new(j, "dist", json_string(qf_synth_dist_name(o->dist)));
    bad |= json_object_set_new(j, "seed", json_integer((json_int_t)o->seed));
    bad |= json_object_set_new(j, "results", json_array());
    if (bad) {
        json_decref(j);
        return NULL;
    }
    return j;
}

/* ---- entry -------------------------------------------------------------------------------- */

static void host_name(char *buf, size_t size)
{
    if (gethostname(buf, size) != 0 || !buf[0])
        snprintf(buf, size, "unknown");
    buf[size - 1] = '\0'; /* POSIX leaves truncated names unterminated */
}

/* Generates the matrix and the activations, then times every format. 0 or a qf_err. */
static int bench_run_all(const bench_opts *o, const qf_format *fmts, int nfmts,
                         bench_buffers *b)
{
    qf_synth_params wp = qf_synth_defaults(o->dist, o->seed);
    int err = qf_synth_fill(&wp, b->x, o->rows, o->cols);
    if (err)
        return err;
    /* Activations: unit-scale Gaussian with their own seed, so they are not the weights. */
    qf_synth_params ap = qf_synth_defaults(QF_SYNTH_GAUSSIAN,
                                           o->seed ^ UINT64_C(0x9e3779b97f4a7c15));
    ap.stddev = 1.0;
    if ((err = qf_synth_fill(&ap, b->act, 1, o->cols)) != 0)
        return err;

    char host[256];
    host_name(host, sizeof host);
    json_t *doc = NULL;
    if (o->json) {
        if (!(doc = identity_json(o, host)))
            return qf_errorf(QF_ENOMEM, "bench: out of memory building JSON");
    } else {
        print_header(o, host);
    }
    for (int i = 0; i < nfmts; i++) {
        bench_result res;
        if ((err = bench_format(o, fmts[i], b, &res)) != 0)
            break;
        if (!o->json) {
            print_row(o, &res);
            continue;
        }
        if (json_array_append_new(json_object_get(doc, "results"),
                                  result_json(o, &res, b->samples)) != 0) {
            err = qf_errorf(QF_ENOMEM, "bench: out of memory building JSON");
            break;
        }
    }
    if (doc && !err) {
        if (json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER |
                                    JSON_REAL_PRECISION(12)) != 0)
            err = qf_errorf(QF_EIO, "bench: cannot write JSON to standard output");
        else
            putchar('\n');
    }
    json_decref(doc);
    return err;
}

int qf_bench_main(int argc, char **argv)
{
    assert(argc >= 1 && argv);
    bench_opts o;
    int rc = parse_opts(argc, argv, &o);
    if (rc == 1)
        return QF_EXIT_OK;
    if (rc != 0)
        return QF_EXIT_USAGE;

    qf_format fmts[QF_FMT_COUNT];
    int nfmts = selected_formats(&o, fmts);
    size_t max_row_size = 0, max_act_size = 0;
    if (validate(&o, fmts, nfmts, &max_row_size, &max_act_size) != 0)
        return QF_EXIT_USAGE;

    bench_buffers b;
    if (buffers_alloc(&o, max_row_size, max_act_size, &b) != 0)
        return QF_EXIT_FAILURE;
    int err = bench_run_all(&o, fmts, nfmts, &b);
    buffers_free(&b);
    return err ? QF_EXIT_FAILURE : QF_EXIT_OK;
}
