/* bench.c - `qfleet bench`: time quantize, dequantize or matvec of formats on a synthetic
 * LLM-like weight matrix and report summaries of the raw samples plus the format's tensor
 * quality metrics on that same matrix (see qf_bench.h).
 *
 * This file is the command line and the output only; the measurement itself (buffers, the
 * generated matrix, threads, timed passes, metrics) is agent/measure.c, which the agent's job
 * kinds use too, so `qfleet bench` and a fleet job measure the same way.
 *
 * Flow, per run: parse and validate every option and every selected format before touching
 * memory (usage errors exit 2 and nothing has been allocated), refusing shapes whose buffers
 * would pass --max-mem; build one qf_measure for all selected formats (the matrix is generated
 * once); then for each format: run it, turn each sample into GB/s, summarize, and print.
 * Throughput is GB/s (1e9 bytes) of the f32 input for quantize and of the quantized weights
 * for dequantize and matvec; the summary is of the per-sample GB/s values. With --backend
 * cuda the table grows three columns (the device's copy bandwidth, the median as a percentage
 * of it, and the NMSE of the device's output against the CPU reference) and the header a
 * line naming the device; the ref output is exactly what it was before backends existed.
 * Option parsing uses getopt's globals, so two benches must not parse at once; everything
 * else is local to a call.
 */
#include "qf_bench.h"

#include <assert.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "qf_cli_args.h"
#include "qf_err.h"
#include "qf_measure.h"
#include "qf_stats.h"
#include "qf_synth.h"
#include "qf_version.h"

#define MAX_DIM      (INT64_C(1) << 20)  /* rows and cols: a 1M-wide layer is beyond any LLM */
#define MAX_THREADS  512
#define MAX_REPS     100000
#define MAX_WARMUP   10000
#define DEFAULT_MAX_MEM (UINT64_C(8) << 30)

typedef struct bench_opts {
    bool        all;            /* every weight format the backend has, in table order */
    qf_measure_backend backend;
    bool        force_isa;      /* --isa given (else the best the host runs) */
    qf_isa      isa;
    qf_format   fmt;            /* when !all */
    qf_bench_op op;
    int64_t     rows, cols, threads, reps, warmup, batch;
    qf_synth_dist dist;
    uint64_t    seed;
    uint64_t    max_mem;        /* bytes of buffers we are willing to allocate */
    bool        json;
} bench_opts;

enum {
    OPT_FORMAT = 256, OPT_OP, OPT_ROWS, OPT_COLS, OPT_THREADS, OPT_REPS, OPT_WARMUP, OPT_DIST,
    OPT_SEED, OPT_MAX_MEM, OPT_JSON, OPT_BACKEND, OPT_ISA, OPT_BATCH,
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
          "                  quantized weights read (default matvec); matmul: --batch\n"
          "                  activation rows at once (prefill), also TFLOP/s\n"
          "  --batch N       matmul's activation rows, 1..4096 (default 512)\n"
          "  --rows R        output channels, 1..1048576 (default 4096)\n"
          "  --cols C        input channels, a multiple of the format's block (default 4096)\n"
          "  --threads N     split the rows across N threads, 1..512 (default 1); with\n"
          "                  --backend cuda, the threads quantize the input before timing\n"
          "  --backend B     ref: the CPU reference kernels (default); cuda: the GPU (dequantize,\n"
          "                  matvec; timed with CUDA events, also prints %% of D2D copy\n"
          "                  bandwidth and the NMSE against the CPU reference); opencl: the\n"
          "                  OpenCL device (q8_0, q4_0, q4_K, int4_g*; dequantize, matvec;\n"
          "                  timed with profiling events; QF_OPENCL_DEVICE=N picks a device)\n"
          "  --isa I         CPU kernels: ref, avx2, avx512, neon, or auto, the best this\n"
          "                  host runs (default auto); 'qfleet formats' shows which ISAs\n"
          "                  have which kernels\n"
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

static int parse_backend(const char *text, qf_measure_backend *b)
{
    if (qf_measure_backend_from_name(text, b) != 0)
        return qf_errorf(QF_EUSAGE, "bench: --backend '%s' is not one of ref, cuda, opencl",
                         text);
    if (!qf_measure_backend_built(*b))
        return qf_errorf(QF_EUSAGE, "bench: --backend %s: this build has no %s backend "
                         "(configure with %s found)", text, text,
                         *b == QF_BACKEND_OPENCL ? "the OpenCL headers and loader, -DQF_OPENCL=ON"
                                                 : "a CUDA compiler, -DQF_CUDA=ON");
    return 0;
}

static int parse_isa(const char *text, bench_opts *o)
{
    if (strcmp(text, "auto") == 0) {
        o->force_isa = false;
        return 0;
    }
    if (qf_isa_from_name(text, &o->isa) != 0)
        return QF_EUSAGE;      /* qf_isa_from_name said which names exist */
    if (!qf_isa_host_supports(o->isa))
        return qf_errorf(QF_EUSAGE, "bench: --isa %s: this host or build cannot run it (CPU "
                         "features: %s)", text, qf_isa_host_features());
    o->force_isa = true;
    return 0;
}

static int parse_op(const char *text, qf_bench_op *op)
{
    if (qf_measure_op_from_name(text, op) == 0)
        return 0;
    return qf_errorf(QF_EUSAGE, "bench: --op '%s' is not one of quantize, dequantize, matvec, "
                     "matmul", text);
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
        { "backend", required_argument, NULL, OPT_BACKEND },
        { "isa",     required_argument, NULL, OPT_ISA },
        { "batch",   required_argument, NULL, OPT_BATCH },
        { "help",    no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    *o = (bench_opts){
        .all = true, .op = QF_OP_MATVEC, .rows = 4096, .cols = 4096, .threads = 1, .reps = 10,
        .batch = 512, .warmup = 2, .dist = QF_SYNTH_STUDENT_T, .seed = 42, .max_mem = DEFAULT_MAX_MEM,
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
        case OPT_BACKEND: rc = parse_backend(optarg, &o->backend); break;
        case OPT_ISA:     rc = parse_isa(optarg, o); break;
        case OPT_BATCH:   rc = int_opt("--batch", 1, 4096, &o->batch); break;
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
        if (qf_format_get((qf_format)f)->weight &&
            qf_measure_backend_supports(o->backend, (qf_format)f, o->op))
            fmts[n++] = (qf_format)f;
    return n;
}

/* What the measurement core is asked to do. */
static qf_measure_spec measure_spec(const bench_opts *o)
{
    return (qf_measure_spec){
        .backend = o->backend, .op = o->op, .rows = o->rows, .cols = o->cols,
        .force_isa = o->force_isa, .isa = o->isa, .batch = o->batch,
        .threads = (int)o->threads, .reps = (uint32_t)o->reps, .warmup = (uint32_t)o->warmup,
        .dist = o->dist, .seed = o->seed,
    };
}

/* Every check that depends only on the options: shapes, ops, memory. */
static int validate(const bench_opts *o, const qf_format *fmts, int nfmts)
{
    qf_measure_spec spec = measure_spec(o);
    char why[256];
    if (nfmts == 0)   /* --format all on a backend without this op */
        return qf_errorf(QF_EUSAGE, "bench: the %s backend has no %s",
                         qf_measure_backend_name(o->backend), qf_measure_op_name(o->op));
    for (int i = 0; i < nfmts; i++) {
        int err = qf_measure_check(&spec, fmts[i], why, sizeof why);
        if (err == QF_ESHAPE) /* qf_format_check_cols printed which multiple */
            return QF_EUSAGE;
        if (err && o->backend != QF_BACKEND_REF)
            return qf_errorf(QF_EUSAGE, "bench: %s", why);
        if (err)
            return qf_errorf(QF_EUSAGE, "bench: %s; use --op quantize or dequantize", why);
    }
    /* The core's buffers plus our per-sample GB/s. */
    uint64_t need = qf_measure_buffer_bytes(&spec, fmts, nfmts)
                  + sizeof(double) * (uint64_t)o->reps;
    if (need > o->max_mem || need > SIZE_MAX / 2) {
        char need_s[32], lim_s[32];
        qf_measure_format_bytes(need_s, sizeof need_s, need);
        qf_measure_format_bytes(lim_s, sizeof lim_s, o->max_mem);
        return qf_errorf(QF_EUSAGE, "bench: a %" PRId64 " x %" PRId64 " matrix needs %s of "
                         "buffers, over the %s limit (raise it with --max-mem)",
                         o->rows, o->cols, need_s, lim_s);
    }
    return 0;
}

/* ---- running ------------------------------------------------------------------------------ */

/* One format's measurement and the summary of its per-sample GB/s. */
typedef struct bench_result {
    qf_measure_out m;
    qf_summary gbps;
} bench_result;

static int bench_format(qf_measure *m, qf_format fmt, double *gbps, bench_result *res)
{
    char why[256];
    memset(res, 0, sizeof *res);
    int err = qf_measure_run(m, fmt, &res->m, why, sizeof why);
    if (err)
        return qf_errorf(err, "bench: %s", why);
    for (uint32_t i = 0; i < res->m.n_samples; i++)
        gbps[i] = (double)res->m.throughput_bytes / res->m.samples[i] / 1e9;
    if ((err = qf_stats_summarize(gbps, res->m.n_samples, &res->gbps)) != 0) {
        qf_measure_out_clear(&res->m);
        return qf_errorf(err, "bench: out of memory summarizing %" PRIu32 " samples",
                         res->m.n_samples);
    }
    return 0;
}

/* ---- output ------------------------------------------------------------------------------- */

static void print_header(const bench_opts *o, const char *host, const char *device)
{
    printf("# qfleet %s (%s%s, %s, %s) on %s: %s, %" PRId64 " thread%s, %" PRId64
           " reps after %" PRId64 " warm-up, %s weights, seed %" PRIu64 "\n",
           QF_VERSION, QF_GIT_COMMIT, QF_GIT_DIRTY ? "-dirty" : "", QF_C_COMPILER,
           QF_BUILD_TYPE, host, qf_measure_op_name(o->op), o->threads, o->threads == 1 ? "" : "s",
           o->reps, o->warmup, qf_synth_dist_name(o->dist), o->seed);
    if (o->backend != QF_BACKEND_REF)
        printf("# backend %s: %s\n", qf_measure_backend_name(o->backend), device);
    printf("%-10s %-10s %-11s %7s %9s %9s %9s %6s %8s %10s %10s %10s",
           "format", "op", "shape", "bpw", "GB/s med", "p10", "p90", "n",
           "SNR dB", "NMSE", "cosine", "max abs");
    printf(" %-7s", "kernel");
    if (o->op == QF_OP_MATMUL)
        printf(" %8s", "TFLOP/s");
    if (o->backend != QF_BACKEND_REF)
        printf(" %9s %7s %10s", "copy GB/s", "% copy", "vs ref");
    putchar('\n');
}

static void print_row(const bench_opts *o, const bench_result *res)
{
    char shape[48];
    snprintf(shape, sizeof shape, "%" PRId64 "x%" PRId64, o->rows, o->cols);
    printf("%-10s %-10s %-11s %7.4f %9.3f %9.3f %9.3f %6zu %8.2f %10.3e %10.7f %10.3e",
           qf_format_get(res->m.fmt)->name, qf_measure_op_name(o->op), shape, res->m.bpw,
           res->gbps.median, res->gbps.p10, res->gbps.p90, res->gbps.n,
           res->m.metrics.snr_db, res->m.metrics.nmse, res->m.metrics.cosine,
           res->m.metrics.max_abs);
    printf(" %-7s", res->m.kernel);
    if (o->op == QF_OP_MATMUL)      /* the median pass: GB/s and FLOP/s share its time */
        printf(" %8.2f", res->m.flops * res->gbps.median * 1e9 /
                         (double)res->m.throughput_bytes / 1e12);
    if (o->backend != QF_BACKEND_REF)   /* vs ref: the NMSE of the device's output */
        printf(" %9.1f %6.1f%% %10.3e", res->m.copy_gbps,
               100.0 * res->gbps.median / res->m.copy_gbps, res->m.check_nmse);
    putchar('\n');
    fflush(stdout); /* a row per format as it finishes: `--format all` takes a while */
}

/* JSON has no infinity or NaN: those become null (a perfect round trip has SNR +inf). */
static json_t *jnum(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

/* Builds the result object; NULL if jansson ran out of memory. json_object_set_new and
 * json_array_append_new consume their value even on failure, so one flag catches all. */
static json_t *result_json(const bench_opts *o, const bench_result *res)
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
    for (uint32_t i = 0; i < res->m.n_samples; i++)
        bad |= json_array_append_new(s, json_real(res->m.samples[i]));
    bad |= json_object_set_new(m, "rmse", jnum(res->m.metrics.rmse));
    bad |= json_object_set_new(m, "nmse", jnum(res->m.metrics.nmse));
    bad |= json_object_set_new(m, "snr_db", jnum(res->m.metrics.snr_db));
    bad |= json_object_set_new(m, "max_abs", jnum(res->m.metrics.max_abs));
    bad |= json_object_set_new(m, "cosine", jnum(res->m.metrics.cosine));

    bad |= json_object_set_new(r, "format", json_string(qf_format_get(res->m.fmt)->name));
    bad |= json_object_set_new(r, "op", json_string(qf_measure_op_name(o->op)));
    bad |= json_object_set_new(r, "kernel", json_string(res->m.kernel));
    if (o->op == QF_OP_MATMUL) {
        bad |= json_object_set_new(r, "batch", json_integer(o->batch));
        bad |= json_object_set_new(r, "flops_per_pass", json_real(res->m.flops));
    }
    bad |= json_object_set_new(r, "bytes", json_integer((json_int_t)res->m.bytes));
    bad |= json_object_set_new(r, "throughput_bytes",
                               json_integer((json_int_t)res->m.throughput_bytes));
    bad |= json_object_set_new(r, "bpw", jnum(res->m.bpw));
    bad |= json_object_set_new(r, "gbps", g);
    bad |= json_object_set_new(r, "samples_s", s);
    bad |= json_object_set_new(r, "metrics", m);
    if (o->backend != QF_BACKEND_REF) {
        bad |= json_object_set_new(r, "copy_gbps", jnum(res->m.copy_gbps));
        bad |= json_object_set_new(r, "pct_of_copy",
                                   jnum(100.0 * res->gbps.median / res->m.copy_gbps));
        bad |= json_object_set_new(r, "check_nmse", jnum(res->m.check_nmse));
    }
    if (bad) {
        json_decref(r);
        return NULL;
    }
    return r;
}

static json_t *identity_json(const bench_opts *o, const char *host, const char *device)
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
    bad |= json_object_set_new(j, "op", json_string(qf_measure_op_name(o->op)));
    bad |= json_object_set_new(j, "rows", json_integer(o->rows));
    bad |= json_object_set_new(j, "cols", json_integer(o->cols));
    bad |= json_object_set_new(j, "threads", json_integer(o->threads));
    bad |= json_object_set_new(j, "reps", json_integer(o->reps));
    bad |= json_object_set_new(j, "warmup", json_integer(o->warmup));
    bad |= json_object_set_new(j, "dist", json_string(qf_synth_dist_name(o->dist)));
    bad |= json_object_set_new(j, "seed", json_integer((json_int_t)o->seed));
    if (o->backend != QF_BACKEND_REF) {
        bad |= json_object_set_new(j, "backend", json_string(qf_measure_backend_name(o->backend)));
        bad |= json_object_set_new(j, "device", json_string(device));
    }
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

/* Times every format on one generated matrix and prints as it goes. 0 or a qf_err. */
static int bench_run_all(const bench_opts *o, const qf_format *fmts, int nfmts)
{
    qf_measure_spec spec = measure_spec(o);
    qf_measure *m = NULL;
    char why[256];
    double *gbps = malloc(sizeof(double) * (size_t)o->reps);
    if (!gbps)
        return qf_errorf(QF_ENOMEM, "bench: out of memory for %" PRId64 " samples", o->reps);
    int err = qf_measure_new(&spec, fmts, nfmts, &m, why, sizeof why);
    if (err) {
        free(gbps);
        return qf_errorf(err, "bench: %s", why);
    }

    char host[256];
    host_name(host, sizeof host);
    json_t *doc = NULL;
    if (o->json) {
        if (!(doc = identity_json(o, host, qf_measure_device(m))))
            err = qf_errorf(QF_ENOMEM, "bench: out of memory building JSON");
    } else {
        print_header(o, host, qf_measure_device(m));
    }
    for (int i = 0; i < nfmts && !err; i++) {
        bench_result res;
        if ((err = bench_format(m, fmts[i], gbps, &res)) != 0)
            break;
        if (!o->json)
            print_row(o, &res);
        else if (json_array_append_new(json_object_get(doc, "results"),
                                       result_json(o, &res)) != 0)
            err = qf_errorf(QF_ENOMEM, "bench: out of memory building JSON");
        qf_measure_out_clear(&res.m);
    }
    if (doc && !err) {
        if (json_dumpf(doc, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER |
                                    JSON_REAL_PRECISION(12)) != 0)
            err = qf_errorf(QF_EIO, "bench: cannot write JSON to standard output");
        else
            putchar('\n');
    }
    json_decref(doc);
    qf_measure_destroy(&m);
    free(gbps);
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
    if (validate(&o, fmts, nfmts) != 0)
        return QF_EXIT_USAGE;
    return bench_run_all(&o, fmts, nfmts) ? QF_EXIT_FAILURE : QF_EXIT_OK;
}
