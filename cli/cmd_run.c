/* cmd_run.c - `qfleet run SUITE`: the embedded default. A coordinator and one agent per local
 * device (today the CPU; GPU agents join as their backends reach the agent) in one process,
 * over ZeroMQ's inproc transport, then a summary table.
 *
 * This is the distributed fleet folded into threads, not a shortcut around it: the coordinator
 * thread runs qf_coordinator_run with its SQLite store (a file in the current directory), each
 * agent thread runs qf_agent_run (jobs in forked children, with their time limits), and this
 * thread is a client that SUBMITs the suite and polls STATUS like `qfleet submit --wait`. At the
 * end it reads the run's results back from the store and prints the chapter's table: bits per
 * weight, memory against the baseline format, speed-up against the baseline on the same agent,
 * and quality. Exit 1 if any job failed.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>

#include "qf_agent.h"
#include "qf_cli_args.h"
#include "qf_client.h"
#include "qf_cmd.h"
#include "qf_coordinator.h"
#include "qf_err.h"
#include "qf_fingerprint.h"
#include "qf_framework.h"
#include "qf_stats.h"

static volatile sig_atomic_t g_interrupted;   /* Ctrl-C: stop waiting, shut down */
static volatile sig_atomic_t g_coord_stop, g_agent_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_interrupted = 1;
}

typedef struct agent_thread {
    qf_agent_opts opts;
    int rc;
} agent_thread;

static void *agent_main(void *arg)
{
    agent_thread *t = arg;
    t->rc = qf_agent_run(&t->opts);
    return NULL;
}

/* --- the summary table -------------------------------------------------------------------- */

typedef struct row {
    char   format[QF_JOB_FORMAT_MAX], kind[QF_JOB_KIND_MAX], agent[64];
    char   op[24];               /* the kind, or "fw:NAME" for a framework job */
    const char *base_fmt;        /* the format its speed-up divides by: the suite's baseline, or
                                    a framework job's framework's own */
    int64_t rows, cols;
    char   status[16];
    double bpw, bytes, median_s, gbps, snr_db, nmse, cosine;
    bool   has_metrics;
    double ppl, ppl_base, kld, same_top, pp_tps, tg_tps;   /* eval jobs; NaN otherwise */
    char   dataset[QF_JOB_DATASET_MAX], error[QF_JOB_ERROR_MAX];
    bool   matched;              /* an agent of this fleet could take it */
} row;

static double jnum(json_t *o, const char *k)
{
    json_t *v = json_object_get(o, k);
    return json_is_number(v) ? json_number_value(v) : NAN;
}

static const char *jstr(json_t *o, const char *k)
{
    const char *s = json_string_value(json_object_get(o, k));
    return s ? s : "";
}

/* The baseline row for r: same op (and framework), shape and agent, the baseline format. */
static const row *baseline_of(const row *rows, size_t n, const row *r)
{
    if (!r->base_fmt || !r->base_fmt[0])
        return NULL;
    for (size_t i = 0; i < n; i++)
        if (strcmp(rows[i].format, r->base_fmt) == 0 && strcmp(rows[i].op, r->op) == 0 &&
            rows[i].rows == r->rows && rows[i].cols == r->cols &&
            strcmp(rows[i].agent, r->agent) == 0 && strcmp(rows[i].status, "ok") == 0)
            return &rows[i];
    return NULL;
}

/* The table's op column: the kind, or "fw:NAME" for a framework job (selector backend=NAME),
 * and the format its speed-up divides by. */
static void op_of(const char *kind, const char *selector, const char *suite_baseline,
                  char *op, size_t op_len, const char **base_fmt)
{
    qf_job_spec probe = { 0 };
    snprintf(probe.kind, sizeof probe.kind, "%s", kind);
    snprintf(probe.selector, sizeof probe.selector, "%s", selector);
    const qf_framework *fw = strcmp(kind, "framework") == 0 ? qf_framework_of(&probe) : NULL;
    if (fw) {
        snprintf(op, op_len, "fw:%s", fw->name);
        *base_fmt = fw->baseline;
    } else {
        snprintf(op, op_len, "%s", kind);
        *base_fmt = suite_baseline;
    }
}

static void print_summary(json_t *results, const qf_suite *suite, const qf_agent_caps *caps)
{
    const char *baseline = suite->baseline;
    size_t n = json_array_size(results), i;
    row *rows = calloc(n ? n : 1, sizeof *rows);
    if (!rows)
        return;
    json_t *r;
    json_array_foreach(results, i, r) {
        row *w = &rows[i];
        json_t *spec = json_object_get(r, "spec"), *m = json_object_get(r, "metrics");
        snprintf(w->format, sizeof w->format, "%s", jstr(spec, "format"));
        snprintf(w->kind, sizeof w->kind, "%s", jstr(spec, "kind"));
        snprintf(w->agent, sizeof w->agent, "%s", jstr(r, "agent"));
        snprintf(w->status, sizeof w->status, "%s", jstr(r, "status"));
        op_of(w->kind, jstr(spec, "selector"), baseline, w->op, sizeof w->op, &w->base_fmt);
        w->rows = (int64_t)jnum(spec, "rows");
        w->cols = (int64_t)jnum(spec, "cols");
        w->bpw = jnum(r, "bpw");
        w->bytes = jnum(r, "bytes");
        w->has_metrics = json_is_object(m) && json_object_get(m, "rmse");
        w->snr_db = w->has_metrics ? jnum(m, "snr_db") : NAN;
        w->nmse = w->has_metrics ? jnum(m, "nmse") : NAN;
        w->cosine = w->has_metrics ? jnum(m, "cosine") : NAN;
        w->ppl = jnum(m, "perplexity");
        w->ppl_base = jnum(m, "perplexity_base");
        w->kld = jnum(m, "kld");
        w->same_top = jnum(m, "same_top");
        w->pp_tps = jnum(m, "pp_tps");
        w->tg_tps = jnum(m, "tg_tps");
        snprintf(w->dataset, sizeof w->dataset, "%s", jstr(spec, "dataset"));
        snprintf(w->error, sizeof w->error, "%s", jstr(r, "error"));
        w->matched = qf_selector_match(jstr(spec, "selector"), caps);
        json_t *samples = json_object_get(r, "samples");
        size_t ns = json_array_size(samples);
        w->median_s = NAN;
        if (ns) {
            double *x = malloc(ns * sizeof *x);
            if (x) {
                for (size_t k = 0; k < ns; k++)
                    x[k] = json_number_value(json_array_get(samples, k));
                w->median_s = qf_stats_percentile(x, ns, 50.0);
                free(x);
            }
        }
        double tb = jnum(r, "throughput_bytes");
        w->gbps = w->median_s > 0 ? tb / w->median_s / 1e9 : NAN;
    }
    printf("\n%-19s %-12s %-11s %7s %12s %8s %9s %8s %8s %10s %9s  %s\n", "format", "op",
           "shape", "bpw", "bytes", "vs base", "GB/s", "speedup", "SNR dB", "NMSE", "cosine",
           "status");
    bool evals = false, fws = false;
    for (i = 0; i < n; i++) {
        const row *w = &rows[i];
        if (!w->matched && strcmp(w->status, "cancelled") == 0)
            continue;   /* listed below as "not on this fleet" */
        evals |= strcmp(w->kind, "eval") == 0 && strcmp(w->status, "ok") == 0;
        fws |= strcmp(w->kind, "framework") == 0;
        const row *b = baseline_of(rows, n, w);
        char shape[32], mem[16] = "-", speed[16] = "-", snr[16] = "-", nmse[16] = "-",
             cosv[16] = "-", gbps[16] = "-";
        snprintf(shape, sizeof shape, "%" PRId64 "x%" PRId64, w->rows, w->cols);
        if (b && b->bytes > 0 && w->bytes > 0)
            snprintf(mem, sizeof mem, "%+.1f%%", 100.0 * (w->bytes / b->bytes - 1.0));
        if (b && w->median_s > 0 && b->median_s > 0)
            snprintf(speed, sizeof speed, "%.2fx", b->median_s / w->median_s);
        if (isfinite(w->gbps))
            snprintf(gbps, sizeof gbps, "%.3f", w->gbps);
        if (w->has_metrics) {
            snprintf(snr, sizeof snr, isfinite(w->snr_db) ? "%.2f" : "inf", w->snr_db);
            snprintf(nmse, sizeof nmse, "%.3e", w->nmse);
            snprintf(cosv, sizeof cosv, "%.6f", w->cosine);
        }
        printf("%-19s %-12s %-11s %7.4g %12.0f %8s %9s %8s %8s %10s %9s  %s\n",
               w->format[0] ? w->format : "-", w->op, shape, isfinite(w->bpw) ? w->bpw : 0.0,
               isfinite(w->bytes) ? w->bytes : 0.0, mem, gbps, speed, snr, nmse, cosv,
               w->status);
    }
    /* jobs no agent of this fleet could take stay in the table, said so, not hidden */
    size_t absent = 0;
    for (size_t j = 0; j < suite->n_jobs; j++) {
        const qf_job_spec *sp = &suite->jobs[j];
        if (qf_selector_match(sp->selector, caps))
            continue;
        char op[24], shape[32];
        const char *bf;
        op_of(sp->kind, sp->selector, baseline, op, sizeof op, &bf);
        snprintf(shape, sizeof shape, "%" PRId64 "x%" PRId64, sp->rows, sp->cols);
        printf("%-19s %-12s %-11s %7s %12s %8s %9s %8s %8s %10s %9s  %s\n",
               sp->format[0] ? sp->format : "-", op, shape, "-", "-", "-", "-", "-", "-", "-",
               "-", "not on this fleet");
        absent++;
        fws |= strcmp(sp->kind, "framework") == 0;
    }
    if (baseline && *baseline)
        printf("(memory and speed-up against %s on the same agent, op and shape; speed-up = "
               "baseline median time / format median time)\n", baseline);
    if (fws)
        printf("(fw:NAME rows ran in that framework, speed-up against its own unquantized "
               "format)\n");
    if (absent)
        printf("(%zu jobs need a device or framework this machine does not have: \"not on this "
               "fleet\"; `qfleet status` on a fleet that has them)\n", absent);
    if (evals) {
        printf("\nmodel level (eval jobs; quality retention = base PPL / PPL, docs/metrics.md)\n"
               "%-19s %-44s %10s %10s %9s %8s %9s %9s %9s\n", "format", "model@text", "PPL",
               "base PPL", "retention", "KLD", "same top", "pp t/s", "tg t/s");
        for (i = 0; i < n; i++) {
            const row *w = &rows[i];
            if (strcmp(w->kind, "eval") != 0 || strcmp(w->status, "ok") != 0)
                continue;
            printf("%-19s %-44s %10.4g %10.4g %8.2f%% %8.5f %8.2f%% %9.1f %9.2f\n", w->format,
                   w->dataset, w->ppl, w->ppl_base, 100.0 * w->ppl_base / w->ppl, w->kld,
                   100.0 * w->same_top, w->pp_tps, w->tg_tps);
        }
    }
    /* why each failed job failed; the store's reason starts with the status */
    for (i = 0; i < n; i++)
        if (strcmp(rows[i].status, "failed") == 0 || strcmp(rows[i].status, "timeout") == 0 ||
            strcmp(rows[i].status, "crashed") == 0)
            printf("%s %s: %s\n", rows[i].op, rows[i].format, rows[i].error);
    free(rows);
}

/* Reads the run's results from the store (after the coordinator has stopped). */
static int summarize(const char *db, int64_t run_id, const qf_suite *suite,
                     const qf_agent_caps *caps)
{
    qf_store *s = NULL;
    char *json = NULL;
    int err = qf_store_open(db, &s);
    if (!err)
        err = qf_store_run_results_json(s, run_id, &json);
    qf_store_close(&s);
    if (err)
        return err;
    json_t *doc = json_loads(json, 0, NULL);
    free(json);
    if (!doc)
        return qf_errorf(QF_EPARSE, "run %" PRId64 ": the stored results are not JSON", run_id);
    print_summary(doc, suite, caps);
    json_decref(doc);
    return 0;
}

/* --- qfleet run --------------------------------------------------------------------------- */

static void usage(FILE *out)
{
    fputs("usage: qfleet run SUITE [--db FILE] [--commit SHA] [--slots N] [--timeout SECONDS]\n"
          "\n"
          "Run a suite on this machine: a coordinator and an agent for the CPU in one process\n"
          "(the same code as the distributed fleet, over inproc), a progress bar, and the\n"
          "summary table at the end. Results are kept in the SQLite store.\n"
          "\n"
          "  --db FILE          the store (default qfleet.db in the current directory)\n"
          "  --commit SHA       the commit under test (default: this build's, with its dirty flag)\n"
          "  --slots N          jobs the CPU agent runs at once (default 1: clean timings)\n"
          "  --timeout SECONDS  give up after this long (default: no limit)\n"
          "  -h, --help         this help\n", out);
}

int qf_cmd_run(int argc, char **argv)
{
    static const struct option opts[] = {
        { "db", required_argument, NULL, 'd' },
        { "commit", required_argument, NULL, 'c' },
        { "slots", required_argument, NULL, 's' },
        { "timeout", required_argument, NULL, 'T' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *db = "qfleet.db", *commit = NULL;
    int64_t slots = 1, timeout = 0;
    int ch;
    opterr = 0;
    optind = 1;
    while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (ch) {
        case 'd': db = optarg; break;
        case 'c': commit = optarg; break;
        case 's':
            if (qf_cli_parse_int("run", "--slots", optarg, 1, 256, &slots))
                return QF_EXIT_USAGE;
            break;
        case 'T':
            if (qf_cli_parse_int("run", "--timeout", optarg, 1, 7 * 24 * 3600, &timeout))
                return QF_EXIT_USAGE;
            break;
        case 'h': usage(stdout); return QF_EXIT_OK;
        default: qf_cli_reject_option("run", ch, argc, argv); return QF_EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        qf_errorf(QF_EUSAGE, "run: expected one SUITE file (see qfleet run --help)");
        return QF_EXIT_USAGE;
    }
    qf_suite suite;
    char why[512];
    if (qf_suite_load(argv[optind], &suite, why, sizeof why)) {
        qf_errorf(QF_EPARSE, "%s", why);
        return QF_EXIT_USAGE;
    }

    struct sigaction sa = { .sa_handler = on_signal };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    char endpoint[64], host[64] = "localhost", name[80], spool[4200];
    snprintf(endpoint, sizeof endpoint, "inproc://qfleet-run-%d", (int)getpid());
    gethostname(host, sizeof host - 1);
    snprintf(name, sizeof name, "%.60s-cpu", host);
    snprintf(spool, sizeof spool, "%s.spool", db);
    void *ctx = zmq_ctx_new();
    qf_coord_opts co = { .bind = endpoint, .db_path = db, .heartbeat_ms = 1000, .zmq_ctx = ctx,
                         .stop = &g_coord_stop, .quiet = true };
    agent_thread at = { .opts = { .endpoint = endpoint, .name = name, .spool_dir = spool,
                                  .slots = (uint32_t)slots, .heartbeat_ms = 1000,
                                  .zmq_ctx = ctx, .stop = &g_agent_stop, .quiet = true } };
    qf_coord_thread *coord = NULL;
    pthread_t agent_tid;
    bool agent_started = false;
    int err = ctx ? 0 : qf_errorf(QF_ENET, "run: cannot create a ZeroMQ context");
    /* inproc needs the bind before the connects: start returns once the coordinator listens */
    if (!err)
        err = qf_coordinator_start(&co, &coord);
    if (!err && pthread_create(&agent_tid, NULL, agent_main, &at) != 0)
        err = qf_errorf(QF_ENOMEM, "run: cannot start the agent thread");
    agent_started = coord && !err;

    /* What this machine's agent offers, as it will report it: jobs whose selectors it does not
     * match (a GPU, a framework it lacks) are submitted too, so the store and the reports know
     * them, but not waited for; they end cancelled and show as "not on this fleet". */
    qf_agent_caps caps;
    char *fp_json = NULL;
    int64_t unrunnable = 0;
    if (!err && qf_fingerprint_collect(name, &caps, &fp_json) != 0)
        err = qf_errorf(QF_EUNSUP, "run: cannot fingerprint this machine");
    free(fp_json);
    for (size_t j = 0; !err && j < suite.n_jobs; j++)
        unrunnable += !qf_selector_match(suite.jobs[j].selector, &caps);

    qf_client c = { 0 };
    int64_t run_id = 0;
    qf_run_progress p = { 0 };
    if (!err)
        err = qf_client_open(&c, endpoint, ctx);
    if (!err)
        err = qf_client_submit(&c, &suite, commit, false, NULL, &run_id);
    if (!err) {
        fprintf(stderr, "qfleet run: suite %s, %zu jobs, run %" PRId64 " in %s\n", suite.name,
                suite.n_jobs, run_id, db);
        err = qf_client_wait(&c, run_id, (double)timeout, unrunnable, &g_interrupted, &p);
    }
    if (run_id && (err || p.queued > 0)) {
        /* interrupted or timed out: cancel what is left, so the next `qfleet run` on this
         * store does not inherit this run's queue; finished: the jobs left are the ones no
         * agent here matches, cancelled for the same reason */
        qf_msg req = { .type = QF_MSG_CANCEL }, rep = { 0 };
        req.u.runref.run_id = (uint64_t)run_id;
        if (qf_client_call(&c, &req, &rep, 5000) == 0) {
            if (err)
                fprintf(stderr, "\nqfleet run: %s: run %" PRId64 " cancelled (%" PRId64 " of %"
                        PRId64 " jobs done)\n", g_interrupted ? "interrupted" : "stopped",
                        run_id, p.done, p.total);
            else
                fprintf(stderr, "qfleet run: %" PRId64 " jobs need a device or framework this "
                        "machine lacks; cancelled\n", p.queued);
        }
        qf_msg_clear(&rep);
    }
    qf_client_close(&c);

    g_agent_stop = 1;
    if (agent_started)
        pthread_join(agent_tid, NULL);
    qf_coordinator_join(&coord);
    if (ctx)
        zmq_ctx_term(ctx);

    if (run_id && !err)
        err = summarize(db, run_id, &suite, &caps);
    if (run_id)
        printf("run %" PRId64 ": %" PRId64 " jobs, %" PRId64 " done, %" PRId64 " failed; "
               "results in %s\n", run_id, p.total, p.done, p.failed, db);
    qf_suite_free(&suite);
    if (err)
        return QF_EXIT_FAILURE;
    return p.failed ? QF_EXIT_FAILURE : QF_EXIT_OK;
}
