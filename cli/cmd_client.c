/* cmd_client.c - the client: `qfleet submit`, `qfleet status`, `qfleet cancel`, and the calls
 * `qfleet run` makes to its embedded coordinator (qf_client.h).
 *
 * One DEALER socket, one request at a time, every wait bounded. The suite is parsed and
 * expanded here, on the client, so the coordinator only ever sees validated job specs.
 * Exit statuses: 0 done, 1 runtime failure (coordinator unreachable, a failed job with
 * --wait), 2 usage error (plain TCP without --insecure among them).
 * Security: the commands take --curve-secret/--server-key (CURVE, docs/security.md) or
 * --insecure; a socket monitor lets a call that hears nothing say that our key was refused.
 */
#include "qf_client.h"

#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "qf_cli_args.h"
#include "qf_cmd.h"
#include "qf_curve.h"
#include "qf_err.h"
#include "qf_time.h"
#include "qf_version.h"

#define CALL_TIMEOUT_MS 10000
#define HANDSHAKE_CHECK_MS 100   /* how often a waiting call looks at the handshake monitor */

int qf_client_open_secure(qf_client *c, const char *endpoint, void *ctx, const qf_curve_opts *sec,
                          const char *who)
{
    memset(c, 0, sizeof *c);
    c->endpoint = endpoint;
    c->own_ctx = ctx == NULL;
    c->ctx = ctx ? ctx : zmq_ctx_new();
    if (!c->ctx)
        return qf_errorf(QF_ENET, "cannot create a ZeroMQ context");
    c->sock = zmq_socket(c->ctx, ZMQ_DEALER);
    int zero = 0;
    int64_t max_msg = (int64_t)qf_wire_default_limits().max_frame * 2;   /* as the coordinator */
    if (c->sock) {
        zmq_setsockopt(c->sock, ZMQ_LINGER, &zero, sizeof zero);
        zmq_setsockopt(c->sock, ZMQ_MAXMSGSIZE, &max_msg, sizeof max_msg);
    }
    char fp[QF_CURVE_FP_SIZE] = "";
    int err = c->sock ? qf_curve_client_setup(c->sock, endpoint, sec, who, fp) : 0;
    if (!err && (fp[0] || qf_curve_endpoint_is_remote(endpoint)))
        err = qf_curve_monitor_open(c->ctx, c->sock, &c->mon);
    if (err) {
        qf_client_close(c);
        return err;
    }
    if (!c->sock || zmq_connect(c->sock, endpoint) != 0) {
        err = qf_errorf(QF_ENET, "cannot connect to %s: %s", endpoint, zmq_strerror(errno));
        qf_client_close(c);
        return err;
    }
    return 0;
}

int qf_client_open(qf_client *c, const char *endpoint, void *ctx)
{
    qf_curve_opts plain = { .insecure = true };
    return qf_client_open_secure(c, endpoint, ctx, &plain, "client");
}

void qf_client_close(qf_client *c)
{
    qf_curve_monitor_close(&c->mon);
    if (c->sock)
        zmq_close(c->sock);
    if (c->own_ctx && c->ctx)
        zmq_ctx_term(c->ctx);
    c->sock = c->ctx = NULL;
}

int qf_client_call(qf_client *c, qf_msg *req, qf_msg *rep, int timeout_ms)
{
    req->id = ++c->next_id;
    void *buf;
    size_t len;
    int err = qf_wire_encode(req, &buf, &len);
    if (err)
        return qf_errorf(err, "cannot encode %s: %s", qf_msg_type_name(req->type),
                         qf_strerror(err));
    qf_wire_limits lim = qf_wire_default_limits();
    if (len > lim.max_frame) {
        free(buf);
        return qf_errorf(QF_ETOOBIG, "%s is %zu bytes, over the %zu-byte frame limit of the "
                         "protocol: split the suite", qf_msg_type_name(req->type), len,
                         lim.max_frame);
    }
    int rc = zmq_send(c->sock, buf, len, 0);
    free(buf);
    if (rc < 0)
        return qf_errorf(QF_ENET, "cannot send to %s: %s", c->endpoint, zmq_strerror(errno));
    double deadline = qf_time_mono() + timeout_ms / 1000.0;
    for (;;) {
        long left = (long)((deadline - qf_time_mono()) * 1000.0);
        char why[300];
        if (left <= 0)
            return qf_errorf(QF_ETIMEDOUT, "no answer from the coordinator at %s within %d ms "
                             "(is it running?)", c->endpoint, timeout_ms);
        zmq_pollitem_t it = { .socket = c->sock, .events = ZMQ_POLLIN };
        /* a refused key or a failed handshake is final: say so now, not at the deadline */
        if (zmq_poll(&it, 1, left < HANDSHAKE_CHECK_MS ? left : HANDSHAKE_CHECK_MS) <= 0) {
            if (qf_curve_monitor_failed(c->mon, why, sizeof why))
                return qf_errorf(QF_ENET, "no answer from the coordinator at %s: %s",
                                 c->endpoint, why);
            continue;
        }
        zmq_msg_t f;
        zmq_msg_init(&f);
        if (zmq_msg_recv(&f, c->sock, 0) < 0) {
            zmq_msg_close(&f);
            continue;
        }
        err = qf_wire_decode(zmq_msg_data(&f), zmq_msg_size(&f), &lim, rep, why, sizeof why);
        zmq_msg_close(&f);
        if (err) {
            qf_errorf(err, "bad answer from %s: %s", c->endpoint, why);
            continue;
        }
        if (rep->id != req->id) {      /* a stale answer to an earlier, timed-out call */
            qf_msg_clear(rep);
            continue;
        }
        if (rep->type == QF_MSG_ERROR) {
            err = qf_errorf(QF_EPROTO, "coordinator at %s refused %s: %s %s", c->endpoint,
                            qf_msg_type_name(req->type), rep->u.error.code, rep->u.error.reason);
            qf_msg_clear(rep);
            return err;
        }
        return 0;
    }
}

/* The reply's ok/error check shared by every client call. */
static int reply_ok(const qf_msg *rep, const char *what)
{
    if (rep->type != QF_MSG_REPLY)
        return qf_errorf(QF_EPROTO, "%s: unexpected answer %s", what, qf_msg_type_name(rep->type));
    if (!rep->u.reply.ok)
        return qf_errorf(QF_EINVAL, "%s refused: %s", what, rep->u.reply.error);
    return 0;
}

int qf_client_submit(qf_client *c, const qf_suite *suite, const char *commit, bool dirty,
                     const char *branch, int64_t *run_id)
{
    qf_msg req = { .type = QF_MSG_SUBMIT };
    qf_msg_submit *s = &req.u.submit;
    snprintf(s->suite, sizeof s->suite, "%s", suite->name);
    snprintf(s->commit, sizeof s->commit, "%s", commit ? commit : QF_GIT_COMMIT);
    s->dirty = commit ? dirty : QF_GIT_DIRTY;
    snprintf(s->branch, sizeof s->branch, "%s", branch ? branch : QF_GIT_BRANCH);
    snprintf(s->baseline, sizeof s->baseline, "%s", suite->baseline);
    s->max_attempts = suite->max_attempts;
    s->n_jobs = (uint32_t)suite->n_jobs;
    s->jobs = suite->jobs;              /* borrowed: not cleared below */
    qf_msg rep;
    int err = qf_client_call(c, &req, &rep, CALL_TIMEOUT_MS);
    if (err)
        return err;
    err = reply_ok(&rep, "submit");
    if (!err)
        *run_id = (int64_t)rep.u.reply.run_id;
    qf_msg_clear(&rep);
    return err;
}

static int64_t jint(json_t *o, const char *key)
{
    return json_integer_value(json_object_get(o, key));
}

int qf_client_progress(qf_client *c, int64_t run_id, qf_run_progress *out)
{
    qf_msg req = { .type = QF_MSG_STATUS };
    req.u.runref.run_id = (uint64_t)run_id;
    qf_msg rep;
    int err = qf_client_call(c, &req, &rep, CALL_TIMEOUT_MS);
    if (err)
        return err;
    err = reply_ok(&rep, "status");
    json_t *doc = err ? NULL : json_loads(rep.u.reply.json ? rep.u.reply.json : "", 0, NULL);
    if (!err && !doc)
        err = qf_errorf(QF_EPROTO, "status: the coordinator's document is not JSON");
    if (!err) {
        err = QF_ENOENT;
        size_t i;
        json_t *r;
        json_array_foreach(json_object_get(doc, "runs"), i, r) {
            if (jint(r, "run_id") != run_id)
                continue;
            *out = (qf_run_progress){ .run_id = run_id, .total = jint(r, "total"),
                .queued = jint(r, "queued"), .leased = jint(r, "leased"),
                .done = jint(r, "done"), .failed = jint(r, "failed"),
                .cancelled = jint(r, "cancelled") };
            err = 0;
            break;
        }
    }
    if (err == QF_ENOENT)
        qf_errorf(err, "status: run %" PRId64 " is not in the coordinator's answer", run_id);
    json_decref(doc);
    qf_msg_clear(&rep);
    return err;
}

/* One line that redraws itself: [#####.....] 12/40 done, 1 failed, ETA 0:42 */
static void draw_bar(const qf_run_progress *p, double elapsed, bool final)
{
    int64_t finished = p->done + p->failed + p->cancelled;
    double frac = p->total ? (double)finished / (double)p->total : 1.0;
    char bar[31];
    int fill = (int)(frac * 30.0 + 0.5);
    for (int i = 0; i < 30; i++)
        bar[i] = i < fill ? '#' : '.';
    bar[30] = 0;
    char eta[32] = "--:--";
    if (finished > 0 && finished < p->total) {
        double left = elapsed / (double)finished * (double)(p->total - finished);
        snprintf(eta, sizeof eta, "%d:%02d", (int)left / 60, (int)left % 60);
    } else if (finished >= p->total) {
        snprintf(eta, sizeof eta, "0:00");
    }
    fprintf(stderr, "\r[%s] %" PRId64 "/%" PRId64 " done, %" PRId64 " running, %" PRId64
            " failed, ETA %s ", bar, p->done, p->total, p->leased, p->failed, eta);
    if (final)
        fputc('\n', stderr);
    fflush(stderr);
}

int qf_client_wait(qf_client *c, int64_t run_id, double timeout_s, int64_t unrunnable,
                   volatile const sig_atomic_t *stop, qf_run_progress *out)
{
    bool tty = isatty(STDERR_FILENO);
    double start = qf_time_mono();
    for (;;) {
        int err = qf_client_progress(c, run_id, out);
        if (err)
            return err;
        bool over = out->leased == 0 && out->queued <= unrunnable;
        if (tty)
            draw_bar(out, qf_time_mono() - start, over);
        if (over)
            return 0;
        if (stop && *stop)
            return QF_ECANCELED;
        if (timeout_s > 0 && qf_time_mono() - start > timeout_s)
            return qf_errorf(QF_ETIMEDOUT, "run %" PRId64 " not finished after %.0f s", run_id,
                             timeout_s);
        usleep(200 * 1000);
    }
}

/* --- the commands ------------------------------------------------------------------------- */

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static void print_progress_line(const qf_run_progress *p)
{
    printf("run %" PRId64 ": %" PRId64 " jobs, %" PRId64 " done, %" PRId64 " failed, %" PRId64
           " cancelled, %" PRId64 " queued, %" PRId64 " running\n", p->run_id, p->total, p->done,
           p->failed, p->cancelled, p->queued, p->leased);
}

/* The security options every client command takes (docs/security.md). */
enum { OPT_CURVE = 256, OPT_SERVER_KEY, OPT_INSECURE };
#define SECURITY_OPTIONS                                                   \
    { "curve-secret", required_argument, NULL, OPT_CURVE },               \
    { "server-key", required_argument, NULL, OPT_SERVER_KEY },            \
    { "insecure", no_argument, NULL, OPT_INSECURE }

static const char k_security_usage[] =
    "\n"
    "Security (docs/security.md): a tcp:// coordinator needs either\n"
    "  --curve-secret FILE  this machine's key pair (qfleet keygen; its .pub enrolled on the\n"
    "                       coordinator), and\n"
    "  --server-key FILE    the coordinator's public key (.pub)\n"
    "  --insecure           or: plain TCP, for a network you trust\n";

/* True when ch was one of SECURITY_OPTIONS (recorded in *sec). */
static bool security_option(int ch, qf_curve_opts *sec)
{
    switch (ch) {
    case OPT_CURVE:      sec->secret_file = optarg; return true;
    case OPT_SERVER_KEY: sec->server_key_file = optarg; return true;
    case OPT_INSECURE:   sec->insecure = true; return true;
    default:             return false;
    }
}

/* Exit status for a failed open: a missing --insecure or key option is a usage error. */
static int open_failed(int err)
{
    return err == QF_EUSAGE ? QF_EXIT_USAGE : QF_EXIT_FAILURE;
}

static void submit_usage(FILE *out)
{
    fputs("usage: qfleet submit SUITE --to ENDPOINT [--commit SHA] [--branch NAME] [--wait]\n"
          "                     [--timeout SECONDS]\n"
          "\n"
          "Expand a YAML suite and send its jobs to a coordinator as one run.\n"
          "\n"
          "  --to ENDPOINT      the coordinator, e.g. tcp://lab-host:7420\n"
          "  --commit SHA       the commit under test (default: this build's, with its dirty flag)\n"
          "  --branch NAME      the branch under test (default: this build's)\n"
          "  --wait             wait until every job is done or failed; exit 1 if any failed\n"
          "  --timeout SECONDS  with --wait, give up after this long (default: no limit)\n"
          "  -h, --help         this help\n", out);
    fputs(k_security_usage, out);
}

int qf_cmd_submit(int argc, char **argv)
{
    static const struct option opts[] = {
        { "to", required_argument, NULL, 't' },
        { "commit", required_argument, NULL, 'c' },
        { "branch", required_argument, NULL, 'b' },
        { "wait", no_argument, NULL, 'w' },
        { "timeout", required_argument, NULL, 'T' },
        SECURITY_OPTIONS,
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *to = NULL, *commit = NULL, *branch = NULL;
    qf_curve_opts sec = { 0 };
    bool wait = false;
    int64_t timeout = 0;
    int ch;
    opterr = 0;
    optind = 1;
    while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (ch) {
        case 't': to = optarg; break;
        case 'c': commit = optarg; break;
        case 'b': branch = optarg; break;
        case 'w': wait = true; break;
        case 'T':
            if (qf_cli_parse_int("submit", "--timeout", optarg, 1, 7 * 24 * 3600, &timeout))
                return QF_EXIT_USAGE;
            break;
        case 'h': submit_usage(stdout); return QF_EXIT_OK;
        default:
            if (security_option(ch, &sec))
                break;
            qf_cli_reject_option("submit", ch, argc, argv);
            return QF_EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        qf_errorf(QF_EUSAGE, "submit: expected one SUITE file (see qfleet submit --help)");
        return QF_EXIT_USAGE;
    }
    if (!to) {
        qf_errorf(QF_EUSAGE, "submit: --to ENDPOINT is required (see qfleet submit --help)");
        return QF_EXIT_USAGE;
    }
    qf_suite suite;
    char why[512];
    if (qf_suite_load(argv[optind], &suite, why, sizeof why)) {
        qf_errorf(QF_EPARSE, "%s", why);
        return QF_EXIT_USAGE;
    }
    qf_client c;
    int64_t run_id = 0;
    int err = qf_client_open_secure(&c, to, NULL, &sec, "submit");
    if (err) {
        qf_suite_free(&suite);
        return open_failed(err);
    }
    if (!err)
        err = qf_client_submit(&c, &suite, commit, false, branch, &run_id);
    if (!err) {
        printf("run %" PRId64 ": %zu jobs submitted to %s\n", run_id, suite.n_jobs, to);
        fflush(stdout);
    }
    qf_run_progress p = { 0 };
    if (!err && wait) {
        struct sigaction sa = { .sa_handler = on_signal };
        sigemptyset(&sa.sa_mask);
        sigaction(SIGINT, &sa, NULL);
        sigaction(SIGTERM, &sa, NULL);
        err = qf_client_wait(&c, run_id, (double)timeout, 0, &g_stop, &p);
        if (!err)
            print_progress_line(&p);
    }
    qf_client_close(&c);
    qf_suite_free(&suite);
    if (err == QF_ECANCELED)
        fprintf(stderr, "\nqfleet: submit: interrupted; run %" PRId64 " goes on at the "
                "coordinator (qfleet cancel --to %s --run %" PRId64 " stops it)\n", run_id, to,
                run_id);
    if (err)
        return QF_EXIT_FAILURE;
    return p.failed || p.cancelled ? QF_EXIT_FAILURE : QF_EXIT_OK;
}

static void status_usage(FILE *out)
{
    fputs("usage: qfleet status --to ENDPOINT [--run ID] [--json]\n"
          "\n"
          "Show a coordinator's agents (with their fingerprint summary), queue and runs.\n"
          "\n"
          "  --to ENDPOINT  the coordinator\n"
          "  --run ID       only this run\n"
          "  --json         print the coordinator's status document as JSON\n"
          "  -h, --help     this help\n", out);
    fputs(k_security_usage, out);
}

static const char *jstr(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

static void print_status(json_t *doc)
{
    json_t *agents = json_object_get(doc, "agents"), *a, *r;
    size_t i;
    printf("agents: %zu\n", json_array_size(agents));
    if (json_array_size(agents)) {
        printf("  %-4s %-24s %-7s %-8s %s\n", "id", "name", "state", "arch", "isa");
        json_array_foreach(agents, i, a)
            printf("  %-4" PRId64 " %-24s %-7s %-8s %s\n", jint(a, "id"), jstr(a, "name"),
                   jstr(a, "state"), jstr(a, "arch"), jstr(a, "isa"));
    }
    json_t *q = json_object_get(doc, "queue");
    printf("queue: %" PRId64 " queued, %" PRId64 " running, %" PRId64 " done, %" PRId64
           " failed, %" PRId64 " cancelled\n", jint(q, "queued"), jint(q, "leased"),
           jint(q, "done"), jint(q, "failed"), jint(q, "cancelled"));
    json_t *runs = json_object_get(doc, "runs");
    if (json_array_size(runs))
        printf("runs:\n  %-5s %-20s %-16s %-9s %6s %6s %6s %6s\n", "id", "suite", "commit",
               "state", "jobs", "done", "failed", "queued");
    json_array_foreach(runs, i, r) {
        char commit[64];
        snprintf(commit, sizeof commit, "%.12s%s", jstr(r, "commit"),
                 json_is_true(json_object_get(r, "dirty")) ? "+" : "");
        printf("  %-5" PRId64 " %-20s %-16s %-9s %6" PRId64 " %6" PRId64 " %6" PRId64 " %6"
               PRId64 "\n", jint(r, "run_id"), jstr(r, "suite"), commit, jstr(r, "state"),
               jint(r, "total"), jint(r, "done"), jint(r, "failed"), jint(r, "queued"));
    }
}

int qf_cmd_status(int argc, char **argv)
{
    static const struct option opts[] = {
        { "to", required_argument, NULL, 't' },
        { "run", required_argument, NULL, 'r' },
        { "json", no_argument, NULL, 'j' },
        SECURITY_OPTIONS,
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *to = NULL;
    qf_curve_opts sec = { 0 };
    int64_t run = 0;
    bool as_json = false;
    int ch;
    opterr = 0;
    optind = 1;
    while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (ch) {
        case 't': to = optarg; break;
        case 'r':
            if (qf_cli_parse_int("status", "--run", optarg, 1, INT64_MAX, &run))
                return QF_EXIT_USAGE;
            break;
        case 'j': as_json = true; break;
        case 'h': status_usage(stdout); return QF_EXIT_OK;
        default:
            if (security_option(ch, &sec))
                break;
            qf_cli_reject_option("status", ch, argc, argv);
            return QF_EXIT_USAGE;
        }
    }
    if (optind != argc || !to) {
        qf_errorf(QF_EUSAGE, "status: %s (see qfleet status --help)",
                  to ? "unexpected argument" : "--to ENDPOINT is required");
        return QF_EXIT_USAGE;
    }
    qf_client c;
    int err = qf_client_open_secure(&c, to, NULL, &sec, "status");
    if (err)
        return open_failed(err);
    qf_msg rep = { 0 };
    if (!err) {
        qf_msg req = { .type = QF_MSG_STATUS };
        req.u.runref.run_id = (uint64_t)run;
        err = qf_client_call(&c, &req, &rep, CALL_TIMEOUT_MS);
        if (!err)
            err = reply_ok(&rep, "status");
    }
    if (!err) {
        json_t *doc = json_loads(rep.u.reply.json ? rep.u.reply.json : "", 0, NULL);
        if (!doc) {
            err = qf_errorf(QF_EPROTO, "status: the coordinator's document is not JSON");
        } else if (as_json) {
            char *text = json_dumps(doc, JSON_INDENT(2) | JSON_SORT_KEYS);
            if (text)
                puts(text);
            free(text);
        } else {
            print_status(doc);
        }
        json_decref(doc);
    }
    qf_msg_clear(&rep);
    qf_client_close(&c);
    return err ? QF_EXIT_FAILURE : QF_EXIT_OK;
}

int qf_cmd_cancel(int argc, char **argv)
{
    static const struct option opts[] = {
        { "to", required_argument, NULL, 't' },
        { "run", required_argument, NULL, 'r' },
        SECURITY_OPTIONS,
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *to = NULL;
    qf_curve_opts sec = { 0 };
    int64_t run = 0;
    int ch;
    opterr = 0;
    optind = 1;
    while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (ch) {
        case 't': to = optarg; break;
        case 'r':
            if (qf_cli_parse_int("cancel", "--run", optarg, 1, INT64_MAX, &run))
                return QF_EXIT_USAGE;
            break;
        case 'h':
            puts("usage: qfleet cancel --to ENDPOINT --run ID\n\n"
                 "Cancel a run's queued and running jobs (their late results are ignored).");
            fputs(k_security_usage, stdout);
            return QF_EXIT_OK;
        default:
            if (security_option(ch, &sec))
                break;
            qf_cli_reject_option("cancel", ch, argc, argv);
            return QF_EXIT_USAGE;
        }
    }
    if (optind != argc || !to || !run) {
        qf_errorf(QF_EUSAGE, "cancel: --to ENDPOINT and --run ID are required (see qfleet "
                  "cancel --help)");
        return QF_EXIT_USAGE;
    }
    qf_client c;
    int err = qf_client_open_secure(&c, to, NULL, &sec, "cancel");
    if (err)
        return open_failed(err);
    if (!err) {
        qf_msg req = { .type = QF_MSG_CANCEL }, rep = { 0 };
        req.u.runref.run_id = (uint64_t)run;
        err = qf_client_call(&c, &req, &rep, CALL_TIMEOUT_MS);
        if (!err)
            err = reply_ok(&rep, "cancel");
        qf_msg_clear(&rep);
        qf_client_close(&c);
    }
    if (!err)
        printf("run %" PRId64 " cancelled\n", run);
    return err ? QF_EXIT_FAILURE : QF_EXIT_OK;
}
