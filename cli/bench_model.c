/* bench_model.c - `qfleet bench --op model MODEL.gguf... [--vs-llama]`: our llama engine's
 * prompt and generation speed (model/llama.c), next to llama.cpp's on the same file.
 *
 * pp and tg are llama-bench's: pp = tokens/s of one forward of --pp tokens (512) from an empty
 * cache; tg = tokens/s of --tg (128) single-token forwards from an (almost) empty cache, one
 * prompt token first so both engines start generation the same way (model/eval.c's
 * qf_eval_speed for ours, agent/llama_peer.c's qf_llama_peer_speed for llama.cpp). For each
 * model and thread count, every repetition runs ours pp and tg, then llama.cpp's, back to back,
 * so they share the machine's noise of the moment; figures are medians over the
 * repetitions and ratios medians of per-repetition ratios (after one untimed warm-up each).
 *
 * Threads: our engine's pool pins thread i to core i, and binds the calling thread to core 0;
 * ggml starts its compute threads from the calling thread at each llama_decode, and they would
 * inherit that one core. So the calling thread is given the process's CPUs back around every
 * llama.cpp call (llama.cpp's own threads are not pinned, as in llama-bench by default).
 * Not a test: figures go to docs/performance.md with the machine they came from.
 */
#include "qf_bench_model.h"

#include <getopt.h>
#include <inttypes.h>
#include <pthread.h>
#include <sched.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "ggml_peer.h"
#include "llama_peer.h"
#include "qf_cli_args.h"
#include "qf_err.h"
#include "qf_eval.h"
#include "qf_llama.h"
#include "qf_stats.h"

#define CMD "bench --op model"
#define MAX_LIST 8
#define MAX_REPS 1000

typedef struct bm_opts {
    const char *models[MAX_LIST];
    int         n_models;
    int64_t     threads[MAX_LIST];
    int         n_threads;
    int64_t     reps, pp, tg;
    bool        vs_llama;
    const char *ggml_dir;
} bm_opts;

enum { S_PP_OURS, S_PP_LLAMA, S_TG_OURS, S_TG_LLAMA, S_PP_RATIO, S_TG_RATIO, S_COUNT };

static void print_usage(FILE *out)
{
    fputs("usage: qfleet bench --op model MODEL.gguf [MODEL.gguf...] [options]\n"
          "Prompt processing (pp) and generation (tg) tokens/s of our llama engine, as\n"
          "llama-bench measures them; with --vs-llama, llama.cpp's on the same file beside\n"
          "it, repetitions interleaved, medians and median per-repetition ratios.\n"
          "  --vs-llama          also run llama.cpp (libllama from the ggml folder)\n"
          "  --threads LIST      comma-separated thread counts (default 1)\n"
          "  --reps N            timed repetitions (default 5)\n"
          "  --pp N, --tg N      prompt and generation lengths (default 512 and 128)\n"
          "  --ggml-dir DIR      folder of libllama (default $QF_GGML_DIR or the build's)\n",
          out);
}

static int parse_opts(int argc, char **argv, bm_opts *o)
{
    enum { O_OP = 256, O_VS, O_THREADS, O_REPS, O_PP, O_TG, O_DIR };
    static const struct option opts[] = {
        { "op", required_argument, NULL, O_OP },
        { "vs-llama", no_argument, NULL, O_VS },
        { "threads", required_argument, NULL, O_THREADS },
        { "reps", required_argument, NULL, O_REPS },
        { "pp", required_argument, NULL, O_PP },
        { "tg", required_argument, NULL, O_TG },
        { "ggml-dir", required_argument, NULL, O_DIR },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    *o = (bm_opts){ .reps = 5, .pp = 512, .tg = 128 };
    int c, rc = 0;
    opterr = 0;
    optind = 1;
    while (rc == 0 && (c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (c) {
        case O_OP: break;   /* cmd_bench.c dispatched on it */
        case O_VS: o->vs_llama = true; break;
        case O_THREADS:
            o->n_threads = 0;
            for (char *save = NULL, *t = strtok_r(optarg, ",", &save); t && rc == 0;
                 t = strtok_r(NULL, ",", &save)) {
                if (o->n_threads == MAX_LIST) {
                    fprintf(stderr, "qfleet: " CMD ": --threads: at most %d counts\n",
                            MAX_LIST);
                    rc = QF_EUSAGE;
                    break;
                }
                rc = qf_cli_parse_int(CMD, "--threads", t, 1, 512,
                                      &o->threads[o->n_threads++]);
            }
            break;
        case O_REPS: rc = qf_cli_parse_int(CMD, "--reps", optarg, 1, MAX_REPS, &o->reps); break;
        case O_PP: rc = qf_cli_parse_int(CMD, "--pp", optarg, 1, 8192, &o->pp); break;
        case O_TG: rc = qf_cli_parse_int(CMD, "--tg", optarg, 1, 8192, &o->tg); break;
        case O_DIR: o->ggml_dir = optarg; break;
        case 'h': print_usage(stdout); return 1;
        default: rc = qf_cli_reject_option(CMD, c, argc, argv); break;
        }
    }
    for (int i = optind; rc == 0 && i < argc; i++) {
        if (o->n_models == MAX_LIST) {
            fprintf(stderr, "qfleet: " CMD ": at most %d models\n", MAX_LIST);
            rc = QF_EUSAGE;
        } else {
            o->models[o->n_models++] = argv[i];
        }
    }
    if (rc == 0 && o->n_models == 0) {
        fprintf(stderr, "qfleet: " CMD ": name a MODEL.gguf (see qfleet bench --op model "
                "--help)\n");
        rc = QF_EUSAGE;
    }
    if (rc == 0 && o->n_threads == 0)
        o->threads[o->n_threads++] = 1;
    return rc;
}

/* llama.cpp's side of one model: the library, the model, a context per thread count. */
typedef struct bm_llama {
    const qf_llama_peer *p;
    void *model, *ctx;
    int32_t n_vocab;
} bm_llama;

static cpu_set_t g_all_cpus;   /* the process's CPUs before our pool pinned anything */

/* Runs one llama.cpp repetition with the calling thread unbound (see the file's comment). */
static int llama_rep(const bm_llama *l, const bm_opts *o, double *pp_tps, double *tg_tps)
{
    cpu_set_t mine;
    char why[256];
    pthread_getaffinity_np(pthread_self(), sizeof mine, &mine);
    pthread_setaffinity_np(pthread_self(), sizeof g_all_cpus, &g_all_cpus);
    double pp_s = 0, tg_s = 0;
    int err = qf_llama_peer_speed(l->p, l->ctx, l->n_vocab, (int32_t)o->pp, (int32_t)o->tg,
                                  &pp_s, &tg_s, why, sizeof why);
    pthread_setaffinity_np(pthread_self(), sizeof mine, &mine);
    if (err)
        return qf_errorf(err, "%s: llama.cpp: %s", CMD, why);
    *pp_tps = (double)o->pp / pp_s;
    *tg_tps = (double)o->tg / tg_s;
    return 0;
}

static int ours_rep(qf_llama *m, const bm_opts *o, double *pp_tps, double *tg_tps)
{
    char why[256];
    double unused;
    int err = qf_eval_speed(m, o->pp, 0, 1, pp_tps, &unused, why, sizeof why);
    if (!err)
        err = qf_eval_speed(m, 1, o->tg, 1, &unused, tg_tps, why, sizeof why);
    return err ? qf_errorf(err, "%s: ours: %s", CMD, why) : 0;
}

static double median(double *v, int64_t n)
{
    return n ? qf_stats_percentile(v, (size_t)n, 50) : 0;
}

static const char *base_name(const char *path)
{
    const char *s = strrchr(path, '/');
    return s ? s + 1 : path;
}

/* One model at one thread count: warm-up, then o->reps interleaved repetitions, one row. */
static int bench_one(const bm_opts *o, const char *path, int threads, bm_llama *l)
{
    qf_llama_opts lo = { .n_ctx = o->pp + o->tg + 1, .threads = threads };
    qf_llama *m = NULL;
    char why[1024];
    double *s[S_COUNT] = { 0 };
    int err = qf_llama_load(path, &lo, &m, why, sizeof why);
    if (err)
        return qf_errorf(err, "%s: %s", CMD, why);
    for (int i = 0; i < S_COUNT && !err; i++)
        if (!(s[i] = calloc((size_t)o->reps, sizeof *s[i])))
            err = qf_errorf(QF_ENOMEM, "%s: out of memory", CMD);
    if (!err && l) {
        cpu_set_t mine;
        pthread_getaffinity_np(pthread_self(), sizeof mine, &mine);
        pthread_setaffinity_np(pthread_self(), sizeof g_all_cpus, &g_all_cpus);
        err = qf_llama_peer_context(l->p, l->model, (uint32_t)(o->pp + o->tg + 1),
                                    (uint32_t)o->pp, threads, &l->ctx, why, sizeof why);
        pthread_setaffinity_np(pthread_self(), sizeof mine, &mine);
        if (err)
            qf_errorf(err, "%s: llama.cpp: %s", CMD, why);
    }
    double a, b, c, d;
    if (!err)   /* warm-up: page faults, the pools' first wake-up, llama.cpp's graph reserve */
        err = ours_rep(m, o, &a, &b);
    if (!err && l)
        err = llama_rep(l, o, &c, &d);
    for (int64_t r = 0; r < o->reps && !err; r++) {
        double pp_o = 0, tg_o = 0, pp_l = 0, tg_l = 0;
        if ((err = ours_rep(m, o, &pp_o, &tg_o)) != 0 ||
            (l && (err = llama_rep(l, o, &pp_l, &tg_l)) != 0))
            break;
        s[S_PP_OURS][r] = pp_o;
        s[S_TG_OURS][r] = tg_o;
        s[S_PP_LLAMA][r] = pp_l;
        s[S_TG_LLAMA][r] = tg_l;
        s[S_PP_RATIO][r] = pp_l > 0 ? pp_o / pp_l : 0;
        s[S_TG_RATIO][r] = tg_l > 0 ? tg_o / tg_l : 0;
    }
    if (!err) {
        printf("%-28s %3d %9.1f", base_name(path), threads, median(s[S_PP_OURS], o->reps));
        if (l)
            printf(" %9.1f %6.2f", median(s[S_PP_LLAMA], o->reps),
                   median(s[S_PP_RATIO], o->reps));
        printf(" %9.1f", median(s[S_TG_OURS], o->reps));
        if (l)
            printf(" %9.1f %6.2f", median(s[S_TG_LLAMA], o->reps),
                   median(s[S_TG_RATIO], o->reps));
        printf("\n");
        fflush(stdout);
    }
    if (l && l->ctx) {
        l->p->free_ctx(l->ctx);
        l->ctx = NULL;
    }
    for (int i = 0; i < S_COUNT; i++)
        free(s[i]);
    qf_llama_destroy(&m);
    return err;
}

int qf_bench_model_main(int argc, char **argv)
{
    bm_opts o;
    int rc = parse_opts(argc, argv, &o);
    if (rc)
        return rc > 0 ? QF_EXIT_OK : QF_EXIT_USAGE;
    if (sched_getaffinity(0, sizeof g_all_cpus, &g_all_cpus) != 0) {
        CPU_ZERO(&g_all_cpus);
        for (long i = 0; i < sysconf(_SC_NPROCESSORS_ONLN) && i < CPU_SETSIZE; i++)
            CPU_SET(i, &g_all_cpus);
    }
    qf_llama_peer peer;
    char why[1400], version[64] = "";
    if (o.vs_llama) {
        int err = qf_llama_peer_open(&peer, o.ggml_dir, true, why, sizeof why);
        if (err) {
            qf_errorf(err, "%s --vs-llama: %s", CMD, why);
            return QF_EXIT_FAILURE;
        }
        qf_ggml g;
        if (qf_ggml_open(&g, o.ggml_dir, QF_GGML_CPU_BEST, why, sizeof why) == 0) {
            const char *(*ver)(void);
            *(void **)&ver = qf_ggml_sym(&g, "ggml_version");
            snprintf(version, sizeof version, "%s", ver && ver() ? ver() : "?");
            qf_ggml_close(&g);
        }
    }
    printf("# qfleet " CMD ": pp%" PRId64 " and tg%" PRId64 " tokens/s (llama-bench's), "
           "median of %" PRId64 " interleaved repetitions; ratio = ours / llama.cpp\n",
           o.pp, o.tg, o.reps);
    printf("# ours: model/llama.c on %s kernels", qf_isa_name(qf_isa_best()));
    if (o.vs_llama)
        printf("; llama.cpp: %s (ggml %s)", peer.lib_path, version);
    printf("\n%-28s %3s %9s", "model", "thr", "pp_ours");
    if (o.vs_llama)
        printf(" %9s %6s", "pp_llama", "ratio");
    printf(" %9s", "tg_ours");
    if (o.vs_llama)
        printf(" %9s %6s", "tg_llama", "ratio");
    printf("\n");
    int err = 0;
    for (int i = 0; i < o.n_models && !err; i++) {
        bm_llama l = { .p = &peer };
        if (o.vs_llama) {
            l.model = peer.model_load_from_file(o.models[i], peer.model_default_params());
            if (!l.model) {
                err = qf_errorf(QF_EPARSE, "%s: llama.cpp cannot load %s", CMD, o.models[i]);
                break;
            }
            l.n_vocab = peer.vocab_n_tokens(peer.model_get_vocab(l.model));
        }
        for (int t = 0; t < o.n_threads && !err; t++)
            err = bench_one(&o, o.models[i], (int)o.threads[t], o.vs_llama ? &l : NULL);
        if (l.model)
            peer.model_free(l.model);
    }
    return err ? QF_EXIT_FAILURE : QF_EXIT_OK;
}
