/* bench_kernels.c - `qfleet bench --op kernels [--vs-ggml]`: our fast CPU kernels side by side
 * with the machine's DRAM read bandwidth and with ggml's kernels, in one run.
 *
 * For each shape, weight format and thread count, every repetition runs, back to back so they
 * share the machine's noise of the moment: a streaming read of a buffer 4x the last-level cache
 * (hwloc's size, or --llc), our matvec, ggml's plain matvec (the CPU type traits' vec_dot of the
 * best libggml-cpu variant for this host) and ggml's graph matvec (ggml_mul_mat computed by the
 * CPU backend, with the weights in the CPU_REPACK extra buffer type where ggml repacks that
 * format: llama.cpp's real path). Both matvecs sweep several copies of the matrix in turn, a
 * working set of 2x the last-level cache, so every sample reads its weights from DRAM. Results
 * are medians of the per-repetition values, and ratios are medians of per-repetition ratios,
 * which cancels most of a shared machine's drift. Then, with fewer repetitions (they are slow),
 * quantize throughput (GB/s of f32 input, ours vs ggml_quantize_chunk) and, for --mm-formats,
 * the prefill-like matmul (n activation rows, TFLOP/s, our qf_matmul vs ggml's MUL_MAT).
 *
 * Threads: our matvec, ggml's plain vec_dot, quantize and the bandwidth read all run on one
 * team of pinned threads of this file (same harness, so their ratio is the kernels'); qf_matmul
 * runs on its own qf_pool; ggml's graph runs on a ggml threadpool that is paused between
 * samples so its polling threads do not steal the other kernels' cores.
 * ggml's headers are never included: the few functions used are declared below by their
 * documented C signatures and looked up with agent/ggml_peer.c. Not a test: figures go to
 * docs/performance.md; the machine and the paths that ran are printed with them.
 */
#include "qf_bench_kernels.h"

#include <assert.h>
#include <getopt.h>
#include <hwloc.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ggml_peer.h"
#include "qf_cli_args.h"
#include "qf_err.h"
#include "qf_kernels.h"
#include "qf_matmul.h"
#include "qf_pin.h"
#include "qf_stats.h"
#include "qf_synth.h"
#include "qf_time.h"
#include "qf_version.h"

#define CMD          "bench --op kernels"
#define MAX_THREADS  256
#define MAX_LIST     8           /* shapes, thread counts */
#define MAX_DIM      (INT64_C(1) << 20)
#define MAX_REPS     10000
#define MAX_COPIES   4096
#define MIN_BW_BYTES (UINT64_C(64) << 20)
#define DEFAULT_MAX_MEM (UINT64_C(8) << 30)

/* ---- options ------------------------------------------------------------------------------ */

typedef struct kb_opts {
    qf_format fmts[QF_FMT_COUNT];
    int       nfmts;
    bool      mm_fmt[QF_FMT_COUNT];   /* formats whose matmul is timed */
    int64_t   shape[MAX_LIST][2];     /* rows, cols */
    int       nshapes;
    int       threads[MAX_LIST];
    int       nthreads;
    qf_isa    isa;
    int64_t   reps, heavy_reps, mm_n;
    uint64_t  llc;                    /* 0: ask hwloc */
    uint64_t  max_mem;
    uint64_t  seed;
    const char *ggml_dir;
    bool      vs_ggml, json;
} kb_opts;

enum {
    OPT_OP = 256, OPT_FORMAT, OPT_SHAPES, OPT_THREADS, OPT_ISA, OPT_REPS, OPT_HEAVY_REPS, OPT_MM_N,
    OPT_MM_FORMATS, OPT_LLC, OPT_MAX_MEM, OPT_SEED, OPT_GGML_DIR, OPT_VS_GGML, OPT_JSON,
};

static const char *const k_default_formats =
    "f16,q8_0,q4_0,q4_1,q5_0,q5_1,q2_K,q3_K,q4_K,q5_K,q6_K,iq4_nl,int8_pc,int4_g32,int4_g128";

static void print_usage(FILE *out)
{
    fprintf(out,
          "usage: qfleet bench --op kernels [--vs-ggml] [--format LIST] [--shapes LIST] [options]\n"
          "\n"
          "Our fast CPU kernels (the best ISA of this host) beside the machine's DRAM read\n"
          "bandwidth, measured next to each kernel, and with --vs-ggml beside ggml's kernels\n"
          "(prebuilt, from scripts/fetch-ggml.sh): matvec GB/s of weight bytes read cold (a\n"
          "working set of 2x the last-level cache), ratio to ggml's plain vec_dot and to its\n"
          "graph mul_mat (repacked where ggml repacks), %% of DRAM bandwidth; quantize GB/s of\n"
          "f32 input; matmul TFLOP/s with n activation rows. Medians of interleaved repetitions.\n"
          "\n"
          "Options:\n"
          "  --format LIST     comma-separated formats, or all (default\n"
          "                    %s)\n"
          "  --shapes LIST     RxC,... matrices of R rows (outputs) by C columns\n"
          "                    (default 4096x4096,4096x14336)\n"
          "  --threads LIST    thread counts, a number or 'all' (default 1,all)\n"
          "  --isa I           ref, avx2, avx512 or neon (default: the best this host runs)\n"
          "  --reps N          matvec and bandwidth repetitions, 1..10000 (default 15)\n"
          "  --heavy-reps N    quantize and matmul repetitions, 1..10000 (default 3)\n"
          "  --mm-n N          activation rows of the matmul, 0 to skip it (default 512)\n"
          "  --mm-formats LIST formats whose matmul is timed, or all (default q4_0,q8_0,q4_K)\n"
          "  --llc SIZE        last-level cache size, e.g. 32M (default: what hwloc reports)\n"
          "  --max-mem SIZE    refuse runs whose buffers need more (default 8G)\n"
          "  --seed S          weights generator seed (default 42)\n"
          "  --vs-ggml         also time ggml's kernels\n"
          "  --ggml-dir DIR    ggml's libraries (default: $QF_GGML_DIR, else the build's\n"
          "                    folder; fetch them with scripts/fetch-ggml.sh or make ggml)\n"
          "  --json            print one JSON object with every raw sample\n"
          "  -h, --help        show this help\n", k_default_formats);
}

/* Calls one parser per comma-separated item of text; QF_EUSAGE if one refuses or the list is
 * empty. Items longer than 63 characters are refused as they stand. */
typedef int (*item_fn)(const char *item, kb_opts *o, const char *opt);

static int parse_list(const char *opt, const char *text, kb_opts *o, item_fn fn)
{
    char item[64];
    const char *p = text;
    if (!*p)
        return qf_errorf(QF_EUSAGE, "%s: %s is empty", CMD, opt);
    for (;;) {
        size_t n = strcspn(p, ",");
        if (n == 0 || n >= sizeof item)
            return qf_errorf(QF_EUSAGE, "%s: %s '%s': an empty or overlong item", CMD, opt, text);
        memcpy(item, p, n);
        item[n] = '\0';
        if (fn(item, o, opt) != 0)
            return QF_EUSAGE;
        if (!p[n])
            return 0;
        p += n + 1;
    }
}

static int format_item(const char *item, qf_format *out, const char *opt)
{
    if (qf_format_from_name(item, out) != 0 || !qf_format_get(*out)->weight ||
        !qf_format_get(*out)->vec_dot_ref)
        return qf_errorf(QF_EUSAGE, "%s: %s: '%s' is not a weight format (see 'qfleet formats')",
                         CMD, opt, item);
    return 0;
}

static int add_format(const char *item, kb_opts *o, const char *opt)
{
    if (strcmp(item, "all") == 0) {
        o->nfmts = 0;
        for (int f = 0; f < QF_FMT_COUNT; f++) {
            const qf_format_traits *t = qf_format_get((qf_format)f);
            if (t->weight && t->vec_dot_ref && f != QF_FMT_F32)
                o->fmts[o->nfmts++] = (qf_format)f;
        }
        return 0;
    }
    qf_format f;
    if (format_item(item, &f, opt) != 0)
        return QF_EUSAGE;
    for (int i = 0; i < o->nfmts; i++)
        if (o->fmts[i] == f)
            return 0;
    o->fmts[o->nfmts++] = f;
    return 0;
}

static int add_mm_format(const char *item, kb_opts *o, const char *opt)
{
    if (strcmp(item, "all") == 0) {
        for (int f = 0; f < QF_FMT_COUNT; f++)
            o->mm_fmt[f] = true;
        return 0;
    }
    qf_format f;
    if (format_item(item, &f, opt) != 0)
        return QF_EUSAGE;
    o->mm_fmt[f] = true;
    return 0;
}

static int add_shape(const char *item, kb_opts *o, const char *opt)
{
    const char *x = strchr(item, 'x');
    char rows[32];
    if (!x || (size_t)(x - item) >= sizeof rows || o->nshapes == MAX_LIST)
        return qf_errorf(QF_EUSAGE, "%s: %s: '%s' is not RxC (at most %d shapes)", CMD, opt, item,
                         MAX_LIST);
    memcpy(rows, item, (size_t)(x - item));
    rows[x - item] = '\0';
    int64_t *s = o->shape[o->nshapes];
    if (qf_cli_parse_int("bench", "--shapes rows", rows, 1, MAX_DIM, &s[0]) != 0 ||
        qf_cli_parse_int("bench", "--shapes cols", x + 1, 1, MAX_DIM, &s[1]) != 0)
        return QF_EUSAGE;
    o->nshapes++;
    return 0;
}

/* CPUs this process may run on. */
static int cpus_available(void)
{
    cpu_set_t set;
    if (sched_getaffinity(0, sizeof set, &set) == 0 && CPU_COUNT(&set) > 0)
        return CPU_COUNT(&set);
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n > 0 ? (int)n : 1;
}

static int add_threads(const char *item, kb_opts *o, const char *opt)
{
    int64_t n;
    if (o->nthreads == MAX_LIST)
        return qf_errorf(QF_EUSAGE, "%s: %s: at most %d thread counts", CMD, opt, MAX_LIST);
    if (strcmp(item, "all") == 0)
        n = cpus_available() < MAX_THREADS ? cpus_available() : MAX_THREADS;
    else if (qf_cli_parse_int("bench", opt, item, 1, MAX_THREADS, &n) != 0)
        return QF_EUSAGE;
    for (int i = 0; i < o->nthreads; i++)
        if (o->threads[i] == n)
            return 0;   /* "1,all" on a 1-CPU host */
    o->threads[o->nthreads++] = (int)n;
    return 0;
}

static int int_opt(const char *opt, int64_t min, int64_t max, int64_t *out)
{
    return qf_cli_parse_int("bench", opt, optarg, min, max, out);
}

/* 0 with *o filled, 1 if --help was printed, QF_EUSAGE after printing why. */
static int parse_opts(int argc, char **argv, kb_opts *o)
{
    static const struct option opts[] = {
        { "op",         required_argument, NULL, OPT_OP },
        { "format",     required_argument, NULL, OPT_FORMAT },
        { "shapes",     required_argument, NULL, OPT_SHAPES },
        { "threads",    required_argument, NULL, OPT_THREADS },
        { "isa",        required_argument, NULL, OPT_ISA },
        { "reps",       required_argument, NULL, OPT_REPS },
        { "heavy-reps", required_argument, NULL, OPT_HEAVY_REPS },
        { "mm-n",       required_argument, NULL, OPT_MM_N },
        { "mm-formats", required_argument, NULL, OPT_MM_FORMATS },
        { "llc",        required_argument, NULL, OPT_LLC },
        { "max-mem",    required_argument, NULL, OPT_MAX_MEM },
        { "seed",       required_argument, NULL, OPT_SEED },
        { "ggml-dir",   required_argument, NULL, OPT_GGML_DIR },
        { "vs-ggml",    no_argument,       NULL, OPT_VS_GGML },
        { "json",       no_argument,       NULL, OPT_JSON },
        { "help",       no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    *o = (kb_opts){ .isa = qf_isa_best(), .reps = 15, .heavy_reps = 3, .mm_n = 512,
                    .max_mem = DEFAULT_MAX_MEM, .seed = 42 };
    bool fmts = false, shapes = false, threads = false, mm = false;
    opterr = 0;
    optind = 0;
    int c, rc = 0;
    int64_t seed = 0;
    while (rc == 0 && (c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case OPT_OP:
            if (strcmp(optarg, "kernels") != 0)
                rc = qf_errorf(QF_EUSAGE, "%s: --op '%s' is not kernels", CMD, optarg);
            break;
        case OPT_FORMAT:
            o->nfmts = 0;
            fmts = true;
            rc = parse_list("--format", optarg, o, add_format);
            break;
        case OPT_SHAPES:
            o->nshapes = 0;
            shapes = true;
            rc = parse_list("--shapes", optarg, o, add_shape);
            break;
        case OPT_THREADS:
            o->nthreads = 0;
            threads = true;
            rc = parse_list("--threads", optarg, o, add_threads);
            break;
        case OPT_ISA:
            rc = qf_isa_from_name(optarg, &o->isa) != 0 ? QF_EUSAGE : 0;
            if (rc == 0 && !qf_isa_host_supports(o->isa))
                rc = qf_errorf(QF_EUSAGE, "%s: --isa %s: this build or host cannot run it "
                               "(best here: %s)", CMD, optarg, qf_isa_name(qf_isa_best()));
            break;
        case OPT_REPS:       rc = int_opt("--reps", 1, MAX_REPS, &o->reps); break;
        case OPT_HEAVY_REPS: rc = int_opt("--heavy-reps", 1, MAX_REPS, &o->heavy_reps); break;
        case OPT_MM_N:       rc = int_opt("--mm-n", 0, 65536, &o->mm_n); break;
        case OPT_MM_FORMATS:
            memset(o->mm_fmt, 0, sizeof o->mm_fmt);
            mm = true;
            rc = parse_list("--mm-formats", optarg, o, add_mm_format);
            break;
        case OPT_LLC:
            rc = qf_cli_parse_size("bench", "--llc", optarg, 4096, UINT64_C(1) << 40, &o->llc);
            break;
        case OPT_MAX_MEM:
            rc = qf_cli_parse_size("bench", "--max-mem", optarg, 1, UINT64_MAX, &o->max_mem);
            break;
        case OPT_SEED:
            rc = int_opt("--seed", 0, INT64_MAX, &seed);
            o->seed = (uint64_t)seed;
            break;
        case OPT_GGML_DIR: o->ggml_dir = optarg; break;
        case OPT_VS_GGML:  o->vs_ggml = true; break;
        case OPT_JSON:     o->json = true; break;
        case 'h':          print_usage(stdout); return 1;
        default:           return qf_cli_reject_option("bench", c, argc, argv);
        }
    }
    if (rc)
        return QF_EUSAGE;
    if (optind < argc)
        return qf_errorf(QF_EUSAGE, "%s: unexpected argument '%s' (see 'qfleet bench --op "
                         "kernels --help')", CMD, argv[optind]);
    if (!fmts && parse_list("--format", k_default_formats, o, add_format) != 0)
        return QF_EUSAGE;
    if (!shapes && parse_list("--shapes", "4096x4096,4096x14336", o, add_shape) != 0)
        return QF_EUSAGE;
    if (!threads && parse_list("--threads", "1,all", o, add_threads) != 0)
        return QF_EUSAGE;
    if (!mm)
        o->mm_fmt[QF_FMT_Q4_0] = o->mm_fmt[QF_FMT_Q8_0] = o->mm_fmt[QF_FMT_Q4_K] = true;
    for (int s = 0; s < o->nshapes; s++)
        for (int i = 0; i < o->nfmts; i++)
            if (qf_format_check_cols(o->fmts[i], o->shape[s][1]) != 0)
                return QF_EUSAGE;   /* it printed the format, the columns and the multiple */
    return 0;
}

/* ---- machine ------------------------------------------------------------------------------ */

/* Bytes of one instance of the deepest cache hwloc reports; 0 if it reports none. */
static uint64_t llc_bytes(void)
{
    static const hwloc_obj_type_t levels[] = {
        HWLOC_OBJ_L5CACHE, HWLOC_OBJ_L4CACHE, HWLOC_OBJ_L3CACHE, HWLOC_OBJ_L2CACHE,
        HWLOC_OBJ_L1CACHE,
    };
    hwloc_topology_t topo;
    uint64_t size = 0;
    if (hwloc_topology_init(&topo) != 0)
        return 0;
    if (hwloc_topology_load(topo) == 0) {
        for (size_t i = 0; i < sizeof levels / sizeof levels[0] && !size; i++) {
            hwloc_obj_t o = hwloc_get_obj_by_type(topo, levels[i], 0);
            if (o && o->attr)
                size = o->attr->cache.size;
        }
    }
    hwloc_topology_destroy(topo);
    return size;
}

static void host_name(char *buf, size_t size)
{
    if (gethostname(buf, size) != 0 || !buf[0])
        snprintf(buf, size, "unknown");
    buf[size - 1] = '\0';
}

/* ---- ggml's graph (agent/ggml_peer.c), with this command's name on its errors ----------- */

static int ggraph_build(const qf_ggml_api *a, int type, int64_t rows, int64_t cols,
                        const uint8_t *w, size_t wbytes, int ncopies, const float *x, int64_t n,
                        qf_ggml_graph *g)
{
    char why[256];
    int err = qf_ggml_graph_build(a, type, rows, cols, w, wbytes, ncopies, x, n, g, why,
                                  sizeof why);
    return err ? qf_errorf(err, "%s: %s", CMD, why) : 0;
}

/* all_cpus: the CPUs the process started with; our thread is pinned to core 0 by then
 * (team_new, qf_pool_new), and ggml's threads would inherit that one core. */
static int gbackend_new(const qf_ggml_api *a, int n, const cpu_set_t *all_cpus,
                        qf_ggml_backend *b)
{
    char why[256];
    int err = qf_ggml_backend_new(a, n, all_cpus, b, why, sizeof why);
    return err ? qf_errorf(err, "%s: %s", CMD, why) : 0;
}

static int gbackend_compute(const qf_ggml_api *a, const qf_ggml_backend *b,
                            const qf_ggml_graph *g)
{
    char why[256];
    int err = qf_ggml_backend_compute(a, b, g, why, sizeof why);
    return err ? qf_errorf(err, "%s: %s", CMD, why) : 0;
}

/* ---- the team: pinned threads that run one share each of a job ---------------------------- */

typedef enum job_kind { JOB_READ, JOB_DOT_OURS, JOB_DOT_GGML, JOB_Q_OURS, JOB_Q_GGML } job_kind;

/* One job, read-only for the team while it runs. Rows (or bytes, for JOB_READ) are cut into
 * contiguous shares, thread i takes the i-th. */
typedef struct job {
    job_kind        kind;
    const uint8_t  *buf;          /* JOB_READ: the buffer, len bytes */
    size_t          len;
    const uint8_t  *w;            /* dots: ncopies copies of rows x row_bytes, back to back */
    size_t          w_bytes, row_bytes;
    int             ncopies;
    int64_t         rows, cols;
    void           *act;          /* the quantized activation row, filled by each sample */
    float          *y;            /* rows floats */
    qf_vec_dot_fn   dot;          /* JOB_DOT_OURS */
    qf_ggml_vec_dot gdot;         /* JOB_DOT_GGML */
    const float    *src;          /* quantize: rows x cols floats into dst */
    uint8_t        *dst;
    qf_quantize_row_fn quantize;  /* JOB_Q_OURS */
    const qf_ggml  *peer;         /* JOB_Q_GGML */
    int             gtype;
    uint64_t       *sink;         /* JOB_READ: one word per thread, so the reads stay */
} job;

typedef struct team team;
typedef struct team_worker {
    team *t;
    int   index;
    pthread_t th;
} team_worker;

struct team {
    int             n;
    team_worker     workers[MAX_THREADS];
    pthread_mutex_t mu;
    pthread_cond_t  cv;
    unsigned        gen;          /* under mu: bumped once per job */
    bool            stop;         /* under mu */
    const job      *job;          /* under mu */
    atomic_int      done;         /* workers finished with the current job */
};

/* 64 bytes a step in four independent 16-byte lanes, so the loop is bound by the loads, not
 * by a dependency chain; GNU vector types compile to SSE2/NEON without ISA flags. */
typedef uint64_t kb_v2u64 __attribute__((vector_size(16)));

static uint64_t read_stream(const uint8_t *p, size_t n)
{
    kb_v2u64 a = { 0, 0 }, b = a, c = a, d = a;
    for (size_t i = 0; i + 64 <= n; i += 64) {
        kb_v2u64 x0, x1, x2, x3;
        memcpy(&x0, p + i, 16);
        memcpy(&x1, p + i + 16, 16);
        memcpy(&x2, p + i + 32, 16);
        memcpy(&x3, p + i + 48, 16);
        a += x0;
        b += x1;
        c += x2;
        d += x3;
    }
    a += b + c + d;
    return a[0] ^ a[1];
}

static void run_share(const job *j, int index, int n)
{
    if (j->kind == JOB_READ) {
        size_t units = j->len / 64, lo = units * (size_t)index / (size_t)n,
               hi = units * (size_t)(index + 1) / (size_t)n;
        j->sink[index] = read_stream(j->buf + lo * 64, (hi - lo) * 64);
        return;
    }
    int64_t lo = j->rows * index / n, hi = j->rows * (index + 1) / n;
    switch (j->kind) {
    case JOB_DOT_OURS:
        for (int c = 0; c < j->ncopies; c++) {
            const uint8_t *w = j->w + (size_t)c * j->w_bytes;
            for (int64_t r = lo; r < hi; r++)
                j->dot(j->cols, w + (size_t)r * j->row_bytes, j->act, &j->y[r]);
        }
        break;
    case JOB_DOT_GGML:
        for (int c = 0; c < j->ncopies; c++) {
            const uint8_t *w = j->w + (size_t)c * j->w_bytes;
            for (int64_t r = lo; r < hi; r++)
                j->gdot((int)j->cols, &j->y[r], 0, w + (size_t)r * j->row_bytes, 0, j->act, 0, 1);
        }
        break;
    case JOB_Q_OURS:
        for (int64_t r = lo; r < hi; r++)
            j->quantize(j->src + r * j->cols, j->dst + (size_t)r * j->row_bytes, j->cols);
        break;
    case JOB_Q_GGML:
        if (hi > lo)
            j->peer->quantize_chunk(j->gtype, j->src, j->dst, lo * j->cols, hi - lo, j->cols,
                                    NULL);
        break;
    case JOB_READ:
        break;
    }
}

static void *team_main(void *arg)
{
    team_worker *w = arg;
    team *t = w->t;
    qf_pin_thread(w->index);
    unsigned seen = 0;
    pthread_mutex_lock(&t->mu);
    for (;;) {
        while (t->gen == seen && !t->stop)
            pthread_cond_wait(&t->cv, &t->mu);
        if (t->stop)
            break;
        seen = t->gen;
        const job *j = t->job;
        pthread_mutex_unlock(&t->mu);
        run_share(j, w->index, t->n);
        atomic_fetch_add(&t->done, 1);
        pthread_mutex_lock(&t->mu);
    }
    pthread_mutex_unlock(&t->mu);
    return NULL;
}

static void team_destroy(team **tp)
{
    team *t = *tp;
    if (!t)
        return;
    pthread_mutex_lock(&t->mu);
    t->stop = true;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
    for (int i = 1; i < t->n; i++)
        pthread_join(t->workers[i].th, NULL);
    pthread_cond_destroy(&t->cv);
    pthread_mutex_destroy(&t->mu);
    free(t);
    *tp = NULL;
}

/* n threads, the caller's counting as thread 0 (pinned to core 0 here). */
static int team_new(int n, team **out)
{
    assert(n >= 1 && n <= MAX_THREADS);
    team *t = calloc(1, sizeof *t);
    if (!t)
        return qf_errorf(QF_ENOMEM, "%s: out of memory for a team of %d threads", CMD, n);
    pthread_mutex_init(&t->mu, NULL);
    pthread_cond_init(&t->cv, NULL);
    atomic_init(&t->done, 0);
    t->n = 1;
    for (int i = 1; i < n; i++) {
        t->workers[i] = (team_worker){ .t = t, .index = i };
        if (pthread_create(&t->workers[i].th, NULL, team_main, &t->workers[i]) != 0) {
            team_destroy(&t);
            return qf_errorf(QF_ENOMEM, "%s: cannot start thread %d of %d", CMD, i + 1, n);
        }
        t->n = i + 1;
    }
    qf_pin_thread(0);
    *out = t;
    return 0;
}

/* Runs j on every thread of the team; returns its wall time in seconds. */
static double team_run(team *t, const job *j)
{
    double t0 = qf_time_mono();
    pthread_mutex_lock(&t->mu);
    t->job = j;
    atomic_store(&t->done, 0);
    t->gen++;
    pthread_cond_broadcast(&t->cv);
    pthread_mutex_unlock(&t->mu);
    run_share(j, 0, t->n);
    while (atomic_load(&t->done) < t->n - 1)
        sched_yield();
    return qf_time_mono() - t0;
}

/* ---- one row of results: a shape, a format, a thread count -------------------------------- */

enum {
    S_BW, S_OURS, S_PLAIN, S_GRAPH,   /* GB/s, one per repetition, interleaved */
    S_Q_OURS, S_Q_GGML,               /* GB/s of f32 input */
    S_MM_OURS, S_MM_GGML,             /* TFLOP/s */
    S_COUNT
};
static const char *const k_series[S_COUNT] = {
    "dram_gbps", "ours_gbps", "ggml_vec_dot_gbps", "ggml_graph_gbps",
    "quantize_ours_gbps", "quantize_ggml_gbps", "matmul_ours_tflops", "matmul_ggml_tflops",
};

typedef struct kb_row {
    int64_t   rows, cols, qrows, mm_n;
    qf_format fmt;
    int       threads, ncopies;
    uint64_t  w_bytes;
    bool      cold;            /* the working set is >= 2x the LLC */
    qf_kernel_set ks;
    int       gtype;           /* ggml's type id, -1: ggml has no such type or is not asked */
    bool      repacked;        /* ggml's graph ran on repacked weights */
    double    nmse_vs_ggml;    /* our matvec output against ggml's plain one; NAN if none */
    double   *s[S_COUNT];      /* samples, reps (or heavy_reps) of each; NULL: not measured */
    int       n[S_COUNT];
} kb_row;

static void row_clear(kb_row *r)
{
    for (int i = 0; i < S_COUNT; i++)
        free(r->s[i]);
    memset(r->s, 0, sizeof r->s);
}

static int row_series(kb_row *r, int which, int64_t n)
{
    r->s[which] = calloc((size_t)n, sizeof(double));
    r->n[which] = 0;
    return r->s[which] ? 0 : qf_errorf(QF_ENOMEM, "%s: out of memory for samples", CMD);
}

static double median_of(const double *v, int n)
{
    return n > 0 ? qf_stats_percentile(v, (size_t)n, 50) : NAN;
}

/* Median over repetitions of a[i] / b[i] (the pairs ran back to back), times scale. */
static double paired_ratio(const kb_row *r, int a, int b, double scale)
{
    int n = r->n[a] < r->n[b] ? r->n[a] : r->n[b];
    if (!r->s[a] || !r->s[b] || n == 0)
        return NAN;
    double *q = malloc(sizeof(double) * (size_t)n);
    if (!q)
        return NAN;
    for (int i = 0; i < n; i++)
        q[i] = scale * r->s[a][i] / r->s[b][i];
    double m = qf_stats_percentile(q, (size_t)n, 50);
    free(q);
    return m;
}

/* ---- measuring ---------------------------------------------------------------------------- */

/* What every row of one shape shares: the generated input and the DRAM probe's buffer. */
typedef struct kb_shape {
    int64_t  rows, cols, xrows;  /* xrows: activation rows generated (matmul's n, >= 1) */
    float   *w;                  /* rows x cols */
    float   *x;                  /* xrows x cols */
    uint8_t *bw;                 /* bw_bytes, touched */
    size_t   bw_bytes;
    uint64_t sink[MAX_THREADS];
} kb_shape;

typedef struct kb_ctx {
    const kb_opts *o;
    uint64_t  llc;
    const qf_ggml *peer;         /* NULL without --vs-ggml */
    const qf_ggml_api *api;
    cpu_set_t all_cpus;          /* the process's CPUs at start, before any pinning */
    json_t   *doc;               /* --json */
} kb_ctx;

static double bw_sample(team *t, kb_shape *sh)
{
    job j = { .kind = JOB_READ, .buf = sh->bw, .len = sh->bw_bytes, .sink = sh->sink };
    return (double)sh->bw_bytes / team_run(t, &j) / 1e9;
}

/* Our matvec over every copy: the activation quantized once, then a dot per row. */
static double ours_sample(team *t, job *j, const kb_row *r, const float *x)
{
    double t0 = qf_time_mono();
    r->ks.quantize_act(x, j->act, r->cols);
    double s = qf_time_mono() - t0 + team_run(t, j);
    return (double)r->w_bytes * r->ncopies / s / 1e9;
}

static double plain_sample(team *t, job *j, const kb_row *r, const float *x,
                           qf_ggml_from_float from)
{
    double t0 = qf_time_mono();
    from(x, j->act, r->cols);
    double s = qf_time_mono() - t0 + team_run(t, j);
    return (double)r->w_bytes * r->ncopies / s / 1e9;
}

static int graph_sample(const kb_ctx *c, const qf_ggml_backend *b, const qf_ggml_graph *g,
                        double work, double *out)
{
    double t0 = qf_time_mono();
    int err = gbackend_compute(c->api, b, g);
    *out = work / (qf_time_mono() - t0);
    return err;
}

static double nmse(const float *ref, const float *y, int64_t n)
{
    double num = 0, den = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)y[i] - ref[i];
        num += d * d;
        den += (double)ref[i] * ref[i];
    }
    return den > 0 ? num / den : num;
}

/* Copies of a w_bytes matrix whose sweep is a working set of 2x the LLC (at least 2). */
static int wanted_copies(uint64_t llc, uint64_t w_bytes)
{
    uint64_t n = (2 * llc + w_bytes - 1) / w_bytes;
    return n < 2 ? 2 : n > MAX_COPIES ? MAX_COPIES : (int)n;
}

/* Matvec samples of one row, interleaved with the DRAM probe: r->ncopies copies of the weights
 * back to back in copies, and ggml's graph g of the same on backend gb (used when r->gtype is
 * a ggml type). Also fills r->nmse_vs_ggml from one untimed pass of each. */
static int measure_matvec(const kb_ctx *c, kb_shape *sh, team *t, const qf_ggml_backend *gb,
                          const qf_ggml_graph *g, const uint8_t *copies, kb_row *r)
{
    const kb_opts *o = c->o;
    size_t act_bytes = qf_format_row_size(qf_format_get(r->fmt)->act, r->cols);
    float *y = calloc((size_t)r->rows * 2, sizeof(float));
    void *act = malloc(act_bytes + 64);
    void *gact = NULL;
    qf_ggml_from_float from = NULL;
    job jo = { .kind = JOB_DOT_OURS, .w = copies, .w_bytes = r->w_bytes,
               .row_bytes = qf_format_row_size(r->fmt, r->cols), .ncopies = r->ncopies,
               .rows = r->rows, .cols = r->cols, .act = act, .y = y, .dot = r->ks.vec_dot };
    job jg = jo;
    int err = 0;
    if (!y || !act)
        err = qf_errorf(QF_ENOMEM, "%s: out of memory for a %" PRId64 "-row matvec", CMD,
                        r->rows);
    if (!err && r->gtype >= 0) {
        const qf_ggml_cpu_traits *tr = c->api->cpu_traits(r->gtype);
        int vdt = tr->vec_dot_type;
        from = c->api->cpu_traits(vdt)->from_float;
        size_t gbytes = c->peer->type_size(vdt) * (size_t)(r->cols / c->peer->blck_size(vdt));
        if (!tr->vec_dot || !from || !(gact = malloc(gbytes + 64)))
            err = qf_errorf(QF_EUNSUP, "%s: ggml has no CPU vec_dot for %s", CMD,
                            qf_format_get(r->fmt)->name);
        jg.kind = JOB_DOT_GGML;
        jg.gdot = tr->vec_dot;
        jg.act = gact;
        jg.y = y + r->rows;
        jg.ncopies = 1;   /* the check below: one pass, then the sweep */
    }
    for (int i = S_BW; i <= S_GRAPH && !err; i++)
        if (i == S_BW || i == S_OURS || r->gtype >= 0)
            err = row_series(r, i, o->reps);
    /* Warm-up (page faults, the pools' first wake-up) and the agreement check. */
    if (!err) {
        job one = jo;
        one.ncopies = 1;
        ours_sample(t, &one, r, sh->x);
        if (r->gtype >= 0) {
            plain_sample(t, &jg, r, sh->x, from);
            r->nmse_vs_ggml = nmse(y + r->rows, y, r->rows);
            jg.ncopies = r->ncopies;
            double dummy;
            err = graph_sample(c, gb, g, 1, &dummy);
        }
    }
    for (int64_t rep = 0; rep < o->reps && !err; rep++) {
        r->s[S_BW][r->n[S_BW]++] = bw_sample(t, sh);
        r->s[S_OURS][r->n[S_OURS]++] = ours_sample(t, &jo, r, sh->x);
        if (r->gtype < 0)
            continue;
        r->s[S_PLAIN][r->n[S_PLAIN]++] = plain_sample(t, &jg, r, sh->x, from);
        double v;
        err = graph_sample(c, gb, g, (double)r->w_bytes * r->ncopies / 1e9, &v);
        r->s[S_GRAPH][r->n[S_GRAPH]++] = v;
    }
    free(y);
    free(act);
    free(gact);
    return err;
}

/* Quantize throughput over the first qrows rows: ours and ggml's, interleaved. */
static int measure_quantize(const kb_ctx *c, const kb_shape *sh, team *t, kb_row *r)
{
    size_t row_bytes = qf_format_row_size(r->fmt, r->cols);
    uint8_t *dst = malloc(row_bytes * (size_t)r->qrows);
    if (!dst)
        return qf_errorf(QF_ENOMEM, "%s: out of memory for %" PRId64 " quantized rows", CMD,
                         r->qrows);
    double in_gb = (double)r->qrows * (double)r->cols * sizeof(float) / 1e9;
    job jo = { .kind = JOB_Q_OURS, .rows = r->qrows, .cols = r->cols, .src = sh->w, .dst = dst,
               .row_bytes = row_bytes, .quantize = r->ks.quantize };
    job jg = jo;
    jg.kind = JOB_Q_GGML;
    jg.peer = c->peer;
    jg.gtype = r->gtype;
    int err = row_series(r, S_Q_OURS, c->o->heavy_reps);
    if (!err && r->gtype >= 0) {
        c->peer->quantize_init(r->gtype);
        err = row_series(r, S_Q_GGML, c->o->heavy_reps);
    }
    for (int64_t rep = 0; rep < c->o->heavy_reps && !err; rep++) {
        r->s[S_Q_OURS][r->n[S_Q_OURS]++] = in_gb / team_run(t, &jo);
        if (r->gtype >= 0)
            r->s[S_Q_GGML][r->n[S_Q_GGML]++] = in_gb / team_run(t, &jg);
    }
    free(dst);
    return err;
}

/* The prefill-like product with mm_n activation rows: qf_matmul on a pool of r->threads, and
 * ggml's MUL_MAT graph of the same (gm; NULL: none), interleaved. */
static int measure_matmul(const kb_ctx *c, const kb_shape *sh, const qf_ggml_backend *gb,
                          const qf_ggml_graph *gm, const uint8_t *w, kb_row *r)
{
    qf_pool *pool = NULL;
    size_t scratch_bytes = qf_matmul_scratch_bytes(&r->ks, r->mm_n, r->cols);
    void *scratch = malloc(scratch_bytes + 64);
    float *y = malloc(sizeof(float) * (size_t)(r->rows * r->mm_n));
    double tflop = 2.0 * (double)r->rows * (double)r->cols * (double)r->mm_n / 1e12;
    int err = 0;
    if (!scratch || !y)
        err = qf_errorf(QF_ENOMEM, "%s: out of memory for a matmul of %" PRId64 " rows", CMD,
                        r->mm_n);
    if (!err && (err = qf_pool_new(r->threads, true, &pool)) != 0)
        qf_errorf(err, "%s: cannot start a pool of %d threads", CMD, r->threads);
    if (!err)
        err = row_series(r, S_MM_OURS, c->o->heavy_reps);
    if (!err && gm)
        err = row_series(r, S_MM_GGML, c->o->heavy_reps);
    for (int64_t rep = 0; rep < c->o->heavy_reps && !err; rep++) {
        double t0 = qf_time_mono();
        qf_matmul(&r->ks, w, r->rows, r->cols, sh->x, r->mm_n, y, scratch, pool);
        r->s[S_MM_OURS][r->n[S_MM_OURS]++] = tflop / (qf_time_mono() - t0);
        if (gm) {
            double v;
            err = graph_sample(c, gb, gm, tflop, &v);
            r->s[S_MM_GGML][r->n[S_MM_GGML]++] = v;
        }
    }
    qf_pool_destroy(&pool);
    free(scratch);
    free(y);
    return err;
}

/* ---- output ------------------------------------------------------------------------------- */

static void print_header(const kb_ctx *c, const char *host, const char *llc_from,
                         size_t bw_bytes)
{
    const kb_opts *o = c->o;
    printf("# qfleet %s (%s%s, %s, %s) on %s: bench --op kernels, ours on %s (%s)\n",
           QF_VERSION, QF_GIT_COMMIT, QF_GIT_DIRTY ? "-dirty" : "", QF_C_COMPILER,
           QF_BUILD_TYPE, host, qf_isa_name(o->isa), qf_isa_host_features());
    if (c->peer)
        printf("# ggml: %s/%s (plain: CPU type traits' vec_dot; graph: mul_mat on the CPU "
               "backend, CPU_REPACK buffer %s)\n", c->peer->dir, c->peer->cpu_lib,
               c->api->repack_buft ? "where ggml repacks" : "absent: plain buffers only");
    printf("# LLC %.1f MiB (%s); DRAM read: %.0f MiB streamed per sample; matvec cold: copies "
           "swept in turn, working set >= 2x LLC (~: less, may be warm); %" PRId64 " reps, "
           "quantize/matmul %" PRId64 "\n", (double)c->llc / 1048576.0, llc_from,
           (double)bw_bytes / 1048576.0, o->reps, o->heavy_reps);
    printf("# GB/s of weight bytes (matvec), of f32 input (quantize); TFLOP/s (matmul, "
           "n=%" PRId64 "); ratios and %% are medians of per-repetition pairs\n", o->mm_n);
    printf("%-11s %-9s %3s %8s %6s %6s %6s", "shape", "format", "thr", "ws MiB", "DRAM",
           "ours", "%DRAM");
    if (c->peer)
        printf(" %7s %7s %6s %-6s %7s", "vecdot", "ours/vd", "graph", "path", "ours/gr");
    printf(" %7s", "q ours");
    if (c->peer)
        printf(" %7s %6s", "q ggml", "q x");
    printf(" %7s", "mm ours");
    if (c->peer)
        printf(" %7s %6s", "mm ggml", "mm x");
    putchar('\n');
}

/* A number in width w with p decimals, or "-" when there is none. */
static void put_num(int w, int p, double v)
{
    if (isfinite(v))
        printf(" %*.*f", w, p, v);
    else
        printf(" %*s", w, "-");
}

static void print_row(const kb_ctx *c, const kb_row *r)
{
    char shape[48], ws[32];
    snprintf(shape, sizeof shape, "%" PRId64 "x%" PRId64, r->rows, r->cols);
    snprintf(ws, sizeof ws, "%s%.0f", r->cold ? "" : "~",
             (double)r->w_bytes * r->ncopies / 1048576.0);
    printf("%-11s %-9s %3d %8s", shape, qf_format_get(r->fmt)->name, r->threads, ws);
    put_num(6, 1, median_of(r->s[S_BW], r->n[S_BW]));
    put_num(6, 1, median_of(r->s[S_OURS], r->n[S_OURS]));
    put_num(6, 0, paired_ratio(r, S_OURS, S_BW, 100));
    if (c->peer) {
        put_num(7, 1, median_of(r->s[S_PLAIN], r->n[S_PLAIN]));
        put_num(7, 2, paired_ratio(r, S_OURS, S_PLAIN, 1));
        put_num(6, 1, median_of(r->s[S_GRAPH], r->n[S_GRAPH]));
        printf(" %-6s", r->gtype < 0 ? "-" : r->repacked ? "repack" : "plain");
        put_num(7, 2, paired_ratio(r, S_OURS, S_GRAPH, 1));
    }
    put_num(7, 3, median_of(r->s[S_Q_OURS], r->n[S_Q_OURS]));
    if (c->peer) {
        put_num(7, 3, median_of(r->s[S_Q_GGML], r->n[S_Q_GGML]));
        put_num(6, 2, paired_ratio(r, S_Q_OURS, S_Q_GGML, 1));
    }
    put_num(7, 3, median_of(r->s[S_MM_OURS], r->n[S_MM_OURS]));
    if (c->peer) {
        put_num(7, 3, median_of(r->s[S_MM_GGML], r->n[S_MM_GGML]));
        put_num(6, 2, paired_ratio(r, S_MM_OURS, S_MM_GGML, 1));
    }
    putchar('\n');
    fflush(stdout);
}

/* JSON has no NaN: a missing number is null. */
static json_t *jnum(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

static json_t *row_json(const kb_row *r)
{
    json_t *j = json_object(), *med = json_object(), *rat = json_object(),
           *smp = json_object();
    int bad = !j || !med || !rat || !smp;
    if (bad) {
        json_decref(j);
        json_decref(med);
        json_decref(rat);
        json_decref(smp);
        return NULL;
    }
    for (int i = 0; i < S_COUNT; i++) {
        if (!r->s[i])
            continue;
        json_t *a = json_array();
        bad |= !a;
        for (int k = 0; a && k < r->n[i]; k++)
            bad |= json_array_append_new(a, jnum(r->s[i][k]));
        bad |= json_object_set_new(smp, k_series[i], a);
        bad |= json_object_set_new(med, k_series[i], jnum(median_of(r->s[i], r->n[i])));
    }
    bad |= json_object_set_new(rat, "ours_pct_dram", jnum(paired_ratio(r, S_OURS, S_BW, 100)));
    bad |= json_object_set_new(rat, "ggml_vec_dot_pct_dram",
                               jnum(paired_ratio(r, S_PLAIN, S_BW, 100)));
    bad |= json_object_set_new(rat, "ggml_graph_pct_dram",
                               jnum(paired_ratio(r, S_GRAPH, S_BW, 100)));
    bad |= json_object_set_new(rat, "ours_over_ggml_vec_dot",
                               jnum(paired_ratio(r, S_OURS, S_PLAIN, 1)));
    bad |= json_object_set_new(rat, "ours_over_ggml_graph",
                               jnum(paired_ratio(r, S_OURS, S_GRAPH, 1)));
    bad |= json_object_set_new(rat, "quantize_ours_over_ggml",
                               jnum(paired_ratio(r, S_Q_OURS, S_Q_GGML, 1)));
    bad |= json_object_set_new(rat, "matmul_ours_over_ggml",
                               jnum(paired_ratio(r, S_MM_OURS, S_MM_GGML, 1)));
    bad |= json_object_set_new(j, "rows", json_integer(r->rows));
    bad |= json_object_set_new(j, "cols", json_integer(r->cols));
    bad |= json_object_set_new(j, "format", json_string(qf_format_get(r->fmt)->name));
    bad |= json_object_set_new(j, "threads", json_integer(r->threads));
    bad |= json_object_set_new(j, "isa_vec_dot", json_string(qf_isa_name(r->ks.from_vec_dot)));
    bad |= json_object_set_new(j, "isa_quantize",
                               json_string(qf_isa_name(r->ks.from_quantize)));
    bad |= json_object_set_new(j, "weight_bytes", json_integer((json_int_t)r->w_bytes));
    bad |= json_object_set_new(j, "copies", json_integer(r->ncopies));
    bad |= json_object_set_new(j, "working_set_bytes",
                               json_integer((json_int_t)(r->w_bytes * (uint64_t)r->ncopies)));
    bad |= json_object_set_new(j, "cold", json_boolean(r->cold));
    bad |= json_object_set_new(j, "quantize_rows", json_integer(r->qrows));
    bad |= json_object_set_new(j, "matmul_n", r->s[S_MM_OURS] ? json_integer(r->mm_n)
                                                              : json_null());
    bad |= json_object_set_new(j, "ggml_graph_path",
                               r->gtype < 0 ? json_null()
                                            : json_string(r->repacked ? "repack" : "plain"));
    bad |= json_object_set_new(j, "nmse_vs_ggml", jnum(r->nmse_vs_ggml));
    bad |= json_object_set_new(j, "median", med);
    bad |= json_object_set_new(j, "ratio", rat);
    bad |= json_object_set_new(j, "samples", smp);
    if (bad) {
        json_decref(j);
        return NULL;
    }
    return j;
}

static json_t *identity_json(const kb_ctx *c, const char *host, const char *llc_from,
                             size_t bw_bytes)
{
    const kb_opts *o = c->o;
    json_t *j = json_object(), *g = c->peer ? json_object() : json_null();
    int bad = !j || !g;
    if (c->peer && g) {
        bad |= json_object_set_new(g, "dir", json_string(c->peer->dir));
        bad |= json_object_set_new(g, "cpu_lib", json_string(c->peer->cpu_lib));
        bad |= json_object_set_new(g, "repack_buffer", json_boolean(c->api->repack_buft));
    }
    if (j) {
        bad |= json_object_set_new(j, "version", json_string(QF_VERSION));
        bad |= json_object_set_new(j, "commit", json_string(QF_GIT_COMMIT));
        bad |= json_object_set_new(j, "dirty", json_boolean(QF_GIT_DIRTY));
        bad |= json_object_set_new(j, "compiler", json_string(QF_C_COMPILER));
        bad |= json_object_set_new(j, "build_type", json_string(QF_BUILD_TYPE));
        bad |= json_object_set_new(j, "host", json_string(host));
        bad |= json_object_set_new(j, "op", json_string("kernels"));
        bad |= json_object_set_new(j, "isa", json_string(qf_isa_name(o->isa)));
        bad |= json_object_set_new(j, "cpu_features", json_string(qf_isa_host_features()));
        bad |= json_object_set_new(j, "llc_bytes", json_integer((json_int_t)c->llc));
        bad |= json_object_set_new(j, "llc_from", json_string(llc_from));
        bad |= json_object_set_new(j, "dram_probe_bytes", json_integer((json_int_t)bw_bytes));
        bad |= json_object_set_new(j, "reps", json_integer(o->reps));
        bad |= json_object_set_new(j, "heavy_reps", json_integer(o->heavy_reps));
        bad |= json_object_set_new(j, "seed", json_integer((json_int_t)o->seed));
        bad |= json_object_set_new(j, "ggml", g);
        g = NULL;
        bad |= json_object_set_new(j, "results", json_array());
    }
    json_decref(g);
    if (bad) {
        json_decref(j);
        return NULL;
    }
    return j;
}

/* ---- driving ------------------------------------------------------------------------------ */

/* Rows each thread count of one format measures, in turn; printed or added to the JSON. */
static int emit_row(const kb_ctx *c, const kb_row *r)
{
    if (!c->doc) {
        print_row(c, r);
        return 0;
    }
    if (json_array_append_new(json_object_get(c->doc, "results"), row_json(r)) != 0)
        return qf_errorf(QF_ENOMEM, "%s: out of memory building JSON", CMD);
    return 0;
}

/* Largest thread count asked for. */
static int max_threads(const kb_opts *o)
{
    int m = 1;
    for (int i = 0; i < o->nthreads; i++)
        m = o->threads[i] > m ? o->threads[i] : m;
    return m;
}

/* Everything about one format on one shape: its copies, ggml's graphs, then each thread
 * count's row. budget: bytes this format's buffers may take. */
static int run_format(const kb_ctx *c, kb_shape *sh, qf_format fmt, uint64_t budget)
{
    const kb_opts *o = c->o;
    kb_row base = { .rows = sh->rows, .cols = sh->cols, .fmt = fmt, .gtype = -1,
                    .mm_n = o->mm_fmt[fmt] ? o->mm_n : 0, .nmse_vs_ggml = NAN };
    int err = qf_kernels_get(o->isa, fmt, &base.ks);
    if (err)
        return err;
    size_t row_bytes = qf_format_row_size(fmt, sh->cols);
    base.w_bytes = row_bytes * (uint64_t)sh->rows;
    uint64_t qr = ((UINT64_C(16) << 20) + (uint64_t)sh->cols * 4 - 1) / ((uint64_t)sh->cols * 4);
    base.qrows = (int64_t)qr < sh->rows ? (int64_t)qr : sh->rows;
    if (c->peer)
        base.gtype = qf_ggml_type_by_name(c->peer, qf_format_get(fmt)->name);

    /* Copies: ours, and ggml's own for the graph (plain vec_dot reads ours). */
    uint64_t fixed = 2 * row_bytes * (uint64_t)base.qrows + (base.mm_n ? base.w_bytes : 0);
    uint64_t per_copy = base.w_bytes * (base.gtype >= 0 ? 2 : 1);
    int ncopies = wanted_copies(c->llc, base.w_bytes);
    if (budget < fixed + per_copy)
        return qf_errorf(QF_EUSAGE, "%s: %s on %" PRId64 "x%" PRId64 " needs more than "
                         "--max-mem allows (raise it)", CMD, qf_format_get(fmt)->name,
                         sh->rows, sh->cols);
    if ((uint64_t)ncopies > (budget - fixed) / per_copy)
        ncopies = (int)((budget - fixed) / per_copy);
    base.ncopies = ncopies;
    base.cold = base.w_bytes * (uint64_t)ncopies >= 2 * c->llc;

    uint8_t *copies = aligned_alloc(64, (base.w_bytes * (uint64_t)ncopies + 63) / 64 * 64);
    team *t = NULL;
    qf_ggml_graph gv = { 0 }, gm = { 0 };
    if (!copies)
        return qf_errorf(QF_ENOMEM, "%s: out of memory for %d copies of %s", CMD, ncopies,
                         qf_format_get(fmt)->name);
    if ((err = team_new(max_threads(o), &t)) != 0)
        goto out;
    job q = { .kind = JOB_Q_OURS, .rows = sh->rows, .cols = sh->cols, .src = sh->w,
              .dst = copies, .row_bytes = row_bytes, .quantize = base.ks.quantize };
    team_run(t, &q);
    team_destroy(&t);
    for (int i = 1; i < ncopies; i++)
        memcpy(copies + (size_t)i * base.w_bytes, copies, base.w_bytes);
    if (base.gtype >= 0) {
        err = ggraph_build(c->api, base.gtype, sh->rows, sh->cols, copies, base.w_bytes,
                           ncopies, sh->x, 1, &gv);
        if (!err && base.mm_n)
            err = ggraph_build(c->api, base.gtype, sh->rows, sh->cols, copies, base.w_bytes, 1,
                               sh->x, base.mm_n, &gm);
        base.repacked = gv.repacked;
    }
    for (int i = 0; i < o->nthreads && !err; i++) {
        kb_row r = base;
        qf_ggml_backend gb = { 0 };
        r.threads = o->threads[i];
        if ((err = team_new(r.threads, &t)) != 0)
            break;
        if (r.gtype >= 0)
            err = gbackend_new(c->api, r.threads, &c->all_cpus, &gb);
        if (!err)
            err = measure_matvec(c, sh, t, &gb, &gv, copies, &r);
        if (!err)
            err = measure_quantize(c, sh, t, &r);
        team_destroy(&t);
        if (!err && r.mm_n)
            err = measure_matmul(c, sh, &gb, r.gtype >= 0 ? &gm : NULL, copies, &r);
        if (!err)
            err = emit_row(c, &r);
        if (r.gtype >= 0)
            qf_ggml_backend_free(c->api, &gb);
        row_clear(&r);
    }
out:
    if (base.gtype >= 0) {
        qf_ggml_graph_free(c->api, &gv);
        qf_ggml_graph_free(c->api, &gm);
    }
    team_destroy(&t);
    free(copies);
    return err;
}

/* Bytes one shape holds for all its formats: the f32 weights and activations. */
static uint64_t shape_bytes(const kb_opts *o, int s)
{
    int64_t xrows = o->mm_n > 0 ? o->mm_n : 1;
    return sizeof(float) * (uint64_t)(o->shape[s][0] + xrows) * (uint64_t)o->shape[s][1];
}

static int run_shape(const kb_ctx *c, int s, uint8_t *bw, size_t bw_bytes)
{
    const kb_opts *o = c->o;
    kb_shape sh = { .rows = o->shape[s][0], .cols = o->shape[s][1],
                    .xrows = o->mm_n > 0 ? o->mm_n : 1, .bw = bw, .bw_bytes = bw_bytes };
    sh.w = malloc(sizeof(float) * (size_t)(sh.rows * sh.cols));
    sh.x = malloc(sizeof(float) * (size_t)(sh.xrows * sh.cols));
    int err = 0;
    if (!sh.w || !sh.x)
        err = qf_errorf(QF_ENOMEM, "%s: out of memory for a %" PRId64 "x%" PRId64 " matrix",
                        CMD, sh.rows, sh.cols);
    /* The input: N(0, 0.02) with outlier columns; activations from their own seed. */
    qf_synth_params pw = qf_synth_defaults(QF_SYNTH_GAUSSIAN, o->seed);
    qf_synth_params px = qf_synth_defaults(QF_SYNTH_GAUSSIAN, o->seed ^ UINT64_C(0x9e3779b9));
    px.stddev = 1.0;
    if (!err)
        err = qf_synth_fill(&pw, sh.w, sh.rows, sh.cols);
    if (!err)
        err = qf_synth_fill(&px, sh.x, sh.xrows, sh.cols);
    uint64_t used = shape_bytes(o, s) + bw_bytes;
    uint64_t budget = o->max_mem > used ? o->max_mem - used : 0;
    for (int i = 0; i < o->nfmts && !err; i++)
        err = run_format(c, &sh, o->fmts[i], budget);
    free(sh.w);
    free(sh.x);
    return err;
}

static int run_all(const kb_opts *o, const qf_ggml *peer, const qf_ggml_api *api)
{
    kb_ctx c = { .o = o, .llc = o->llc, .peer = peer, .api = api };
    if (sched_getaffinity(0, sizeof c.all_cpus, &c.all_cpus) != 0) {
        CPU_ZERO(&c.all_cpus);
        for (int i = 0; i < CPU_SETSIZE; i++)
            CPU_SET(i, &c.all_cpus);
    }
    const char *llc_from = "--llc";
    if (!c.llc) {
        c.llc = llc_bytes();
        llc_from = "hwloc";
    }
    if (!c.llc) {
        c.llc = UINT64_C(32) << 20;
        llc_from = "hwloc reports none: 32 MiB assumed";
    }
    size_t bw_bytes = (size_t)(4 * c.llc > MIN_BW_BYTES ? 4 * c.llc : MIN_BW_BYTES);
    for (int s = 0; s < o->nshapes; s++)
        if (shape_bytes(o, s) + bw_bytes > o->max_mem)
            return qf_errorf(QF_EUSAGE, "%s: shape %" PRId64 "x%" PRId64 " and a %zu MiB DRAM "
                             "probe need more than --max-mem (raise it, or set --llc)", CMD,
                             o->shape[s][0], o->shape[s][1], bw_bytes >> 20);
    uint8_t *bw = aligned_alloc(64, bw_bytes);
    if (!bw)
        return qf_errorf(QF_ENOMEM, "%s: out of memory for a %zu MiB DRAM probe", CMD,
                         bw_bytes >> 20);
    for (size_t i = 0; i < bw_bytes; i++)   /* touch every page; not zero, so not shared */
        bw[i] = (uint8_t)i;
    char host[256];
    host_name(host, sizeof host);
    int err = 0;
    if (o->json) {
        if (!(c.doc = identity_json(&c, host, llc_from, bw_bytes)))
            err = qf_errorf(QF_ENOMEM, "%s: out of memory building JSON", CMD);
    } else {
        print_header(&c, host, llc_from, bw_bytes);
    }
    for (int s = 0; s < o->nshapes && !err; s++)
        err = run_shape(&c, s, bw, bw_bytes);
    if (c.doc && !err) {
        if (json_dumpf(c.doc, stdout, JSON_INDENT(2) | JSON_PRESERVE_ORDER |
                                      JSON_REAL_PRECISION(9)) != 0)
            err = qf_errorf(QF_EIO, "%s: cannot write JSON to standard output", CMD);
        else
            putchar('\n');
    }
    json_decref(c.doc);
    free(bw);
    return err;
}

int qf_bench_kernels_main(int argc, char **argv)
{
    assert(argc >= 1 && argv);
    kb_opts o;
    int rc = parse_opts(argc, argv, &o);
    if (rc == 1)
        return QF_EXIT_OK;
    if (rc != 0)
        return QF_EXIT_USAGE;
    qf_ggml peer;
    qf_ggml_api api;
    if (o.vs_ggml) {
        char why[1400];
        int err = qf_ggml_open(&peer, o.ggml_dir, QF_GGML_CPU_BEST, why, sizeof why);
        if (!err)
            err = qf_ggml_api_load(&peer, &api, why, sizeof why);
        if (err) {
            qf_errorf(err, "%s --vs-ggml: %s", CMD, why);
            return err == QF_ENOENT ? QF_EXIT_USAGE : QF_EXIT_FAILURE;
        }
    }
    rc = run_all(&o, o.vs_ggml ? &peer : NULL, o.vs_ggml ? &api : NULL);
    if (o.vs_ggml)
        qf_ggml_close(&peer);
    return rc == QF_EUSAGE ? QF_EXIT_USAGE : rc ? QF_EXIT_FAILURE : QF_EXIT_OK;
}
