/* coordinator.c - the coordinator: one ROUTER socket, the store, the dispatch loop.
 *
 * Single-threaded and event-driven: zmq_poll on the ROUTER with a short timeout; every message
 * is decoded by the wire codec, answered, and any state change goes through the store in one
 * transaction before the answer leaves (so an ACK means "committed"). Peers are remembered by
 * their ZeroMQ routing id in a small table: an agent after HELLO (its id in the store, caps,
 * slots, jobs running here, last heard), or a client. A timer tick expires silent agents
 * (3 heartbeat intervals) and stale leases, then hands queued jobs to agents with free slots.
 *
 * Nothing from the network can abort the process: a frame that does not decode, or a message
 * that makes no sense from that peer, gets ERROR and a log line naming the peer; a peer that
 * spends its error budget (error_budget bad frames within BAD_WINDOW_S) is ignored for
 * ignore_s, logged once. Store failures (disk full, locked database) are logged and the message
 * is not acknowledged, so the agent sends it again later.
 * Security: on a CURVE socket libzmq asks the ZAP handler (common/curve.c) about every new
 * connection, so a peer whose key is not enrolled never gets a frame to us; each peer's key
 * name (the ZAP User-Id) is kept for log lines. A plain TCP bind needs opts.insecure.
 * Called by `qfleet coordinator` and, on an inproc endpoint, by `qfleet run`.
 */
#include "qf_coordinator.h"

#include <errno.h>
#include <assert.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include <getopt.h>

#include "qf_cli_args.h"
#include "qf_curve.h"
#include "qf_err.h"
#include "qf_store.h"
#include "qf_time.h"
#include "qf_wire.h"

#define DEFAULT_MAX_AGENTS   4096
#define DEFAULT_ERROR_BUDGET 10    /* bad frames within BAD_WINDOW_S before a peer is ignored */
#define DEFAULT_IGNORE_S     60
#define DEFAULT_MAX_RESULT   ((size_t)4 << 20)
#define BAD_WINDOW_S         60.0
#define KEY_NAME_MAX         64
#define QF_COORD_MAX_RID  256      /* ZeroMQ routing ids are at most 255 bytes */
#define QF_COORD_MAX_PEERS 100000
#define BATCH_MAX 1024            /* messages per group commit */
#define QF_COORD_PEER_IDLE_S 60.0 /* a non-agent peer silent this long is forgotten */

typedef struct peer {
    uint8_t       rid[QF_COORD_MAX_RID];
    size_t        rid_len;
    int64_t       agent_id;         /* 0: not an agent (yet) */
    qf_agent_caps caps;
    uint32_t      slots, running;
    uint64_t      instance;         /* the agent process's random id (HELLO) */
    double        last_seen;        /* monotonic seconds */
    int           bad_frames;       /* within BAD_WINDOW_S of bad_since */
    double        bad_since;        /* monotonic: start of the error budget's window */
    bool          ignored;          /* budget spent: no answers until ignored_until */
    double        ignored_until;
    char          key[KEY_NAME_MAX]; /* the enrolled key's name (ZAP User-Id), "" without CURVE */
    uint64_t      idle_epoch;       /* queue_epoch at which the store had nothing for it */
} peer;

/* A message encoded and waiting for its batch to commit (group commit: an ACK or a JOB must
 * not leave before the transaction it reports is durable). Its bytes are at off in the
 * coordinator's held-bytes buffer, not an allocation of their own: the codec's buffer for one
 * message is 8 KiB (msgpack's initial sbuffer) whatever its length, and a burst holds up to two
 * frames per message (an ACK and the next JOB), so keeping those cost up to 16 MiB per
 * 1,024-message burst, taken and given back at every burst (heaptrack: the largest live heap
 * after libzmq's queues); the coordinator's RSS swung by that much from one sample to the next.
 * One buffer, reused, costs the bytes themselves (docs/performance.md, "Soak"). */
typedef struct out_frame {
    uint8_t rid[QF_COORD_MAX_RID];
    size_t  rid_len;
    size_t  off, len;
    qf_msg_type type;
} out_frame;

/* Held bytes beyond this are given back after the burst that needed them (a large STATUS
 * reply), so one unusual burst does not pin its size for the process's life; a JOB is a few
 * hundred bytes and an ACK a few dozen, so a burst of 1,024 RESULTs' answers stays under it. */
#define OUT_BYTES_KEEP ((size_t)1 << 20)

typedef struct coord {
    const qf_coord_opts *o;
    void          *sock;
    qf_store      *store;
    qf_wire_limits lim;
    double         hb_s;            /* heartbeat interval, seconds */
    peer          *peers;
    size_t         n_peers, cap_peers;
    uint64_t       next_id;         /* ids of messages we originate */
    double         next_tick;
    bool           dispatch_all;    /* new jobs may be queued: offer to every agent */
    uint64_t       queue_epoch;     /* bumped whenever jobs may have become leasable */
    bool           batching;        /* inside a store batch: hold sends until it commits */
    out_frame     *out;             /* held sends, in order */
    size_t         n_out, cap_out;
    uint8_t       *out_bytes;       /* their encoded bytes, back to back; reused every burst */
    size_t         n_bytes, cap_bytes;
    qf_zap        *zap;             /* the ZAP handler, with CURVE */
    size_t         frame_len;       /* bytes of the message being handled */
    uint32_t       max_agents, error_budget, ignore_s;
    size_t         max_result;
} coord;

static void logf_(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void logf_(const char *fmt, ...)
{
    char buf[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fprintf(stderr, "qfleet coordinator: %s\n", buf);
}

/* A printable name for a peer in log lines: the agent's name, or the routing id in hex. */
static const char *peer_label(const peer *p, char *buf, size_t len)
{
    if (p->agent_id) {
        snprintf(buf, len, "agent %s (#%" PRId64 "%s%s)", p->caps.name, p->agent_id,
                 p->key[0] ? ", key " : "", p->key);
        return buf;
    }
    if (p->key[0]) {
        snprintf(buf, len, "key %s", p->key);
        return buf;
    }
    size_t o = (size_t)snprintf(buf, len, "peer ");
    for (size_t i = 0; i < p->rid_len && o + 3 < len; i++)
        o += (size_t)snprintf(buf + o, len - o, "%02x", p->rid[i]);
    return buf;
}

/* --- peers -------------------------------------------------------------------------------- */

static peer *peer_find(coord *c, const uint8_t *rid, size_t len)
{
    for (size_t i = 0; i < c->n_peers; i++)
        if (c->peers[i].rid_len == len && memcmp(c->peers[i].rid, rid, len) == 0)
            return &c->peers[i];
    return NULL;
}

static peer *peer_get(coord *c, const uint8_t *rid, size_t len)
{
    peer *p = peer_find(c, rid, len);
    if (p)
        return p;
    if (len > QF_COORD_MAX_RID)
        return NULL;
    if (c->n_peers >= QF_COORD_MAX_PEERS) {
        logf_("peer table full (%d peers): a new peer is not answered", QF_COORD_MAX_PEERS);
        return NULL;
    }
    if (c->n_peers == c->cap_peers) {
        size_t cap = c->cap_peers ? c->cap_peers * 2 : 64;
        peer *np = realloc(c->peers, cap * sizeof *np);
        if (!np)
            return NULL;
        c->peers = np;
        c->cap_peers = cap;
    }
    p = &c->peers[c->n_peers++];
    memset(p, 0, sizeof *p);
    memcpy(p->rid, rid, len);
    p->rid_len = len;
    return p;
}

static void peer_remove(coord *c, peer *p)
{
    size_t i = (size_t)(p - c->peers);
    c->peers[i] = c->peers[--c->n_peers];
}

/* --- sending ------------------------------------------------------------------------------ */

/* Puts one encoded frame on the wire. A peer that went away (EHOSTUNREACH with
 * ROUTER_MANDATORY) is not an error for the loop: what was leased to it comes back through
 * lease expiry. */
static int send_frame(coord *c, const uint8_t *rid, size_t rid_len, const void *buf, size_t len,
                      qf_msg_type type)
{
    int rc = zmq_send(c->sock, rid, rid_len, ZMQ_SNDMORE | ZMQ_DONTWAIT);
    if (rc >= 0)
        rc = zmq_send(c->sock, buf, len, ZMQ_DONTWAIT);
    if (rc < 0) {
        logf_("cannot send %s to a peer: %s", qf_msg_type_name(type), zmq_strerror(errno));
        return QF_ENET;
    }
    return 0;
}

/* Keeps a copy of an encoded frame for p until the batch commits. */
static int hold_frame(coord *c, const peer *p, const void *buf, size_t len, qf_msg_type type)
{
    if (c->n_out == c->cap_out) {
        size_t cap = c->cap_out ? c->cap_out * 2 : 256;
        out_frame *o = realloc(c->out, cap * sizeof *o);
        if (!o)
            return QF_ENOMEM;
        c->out = o;
        c->cap_out = cap;
    }
    if (len > c->cap_bytes - c->n_bytes) {
        size_t cap = c->cap_bytes ? c->cap_bytes : 64 * 1024;
        while (len > cap - c->n_bytes)
            cap *= 2;
        uint8_t *b = realloc(c->out_bytes, cap);
        if (!b)
            return QF_ENOMEM;
        c->out_bytes = b;
        c->cap_bytes = cap;
    }
    out_frame *o = &c->out[c->n_out++];
    memcpy(o->rid, p->rid, p->rid_len);
    o->rid_len = p->rid_len;
    o->off = c->n_bytes;
    o->len = len;
    o->type = type;
    memcpy(c->out_bytes + c->n_bytes, buf, len);
    c->n_bytes += len;
    return 0;
}

/* Sends m to p now, or, inside a batch, once the batch has committed. */
static int send_msg(coord *c, const peer *p, const qf_msg *m)
{
    void *buf = NULL;
    size_t len = 0;
    int err = qf_wire_encode(m, &buf, &len);
    if (err) {
        logf_("cannot encode %s: %s", qf_msg_type_name(m->type), qf_strerror(err));
        return err;
    }
    if (c->batching)
        err = hold_frame(c, p, buf, len, m->type);
    else
        err = send_frame(c, p->rid, p->rid_len, buf, len, m->type);
    free(buf);
    return err;
}

/* After a batch: sends what it held if it committed, else drops it (the agents send their
 * RESULTs again, clients time out: nothing was acknowledged that is not durable). */
static void flush_out(coord *c, bool committed)
{
    for (size_t i = 0; committed && i < c->n_out; i++) {
        const out_frame *o = &c->out[i];
        send_frame(c, o->rid, o->rid_len, c->out_bytes + o->off, o->len, o->type);
    }
    c->n_out = 0;
    c->n_bytes = 0;
    if (c->cap_bytes > OUT_BYTES_KEEP) {
        free(c->out_bytes);
        c->out_bytes = NULL;
        c->cap_bytes = 0;
    }
}

static void send_error(coord *c, peer *p, uint64_t id, int code, const char *reason)
{
    qf_msg m = { .type = QF_MSG_ERROR, .id = id };
    snprintf(m.u.error.code, sizeof m.u.error.code, "%s", qf_err_name(code));
    snprintf(m.u.error.reason, sizeof m.u.error.reason, "%s", reason);
    send_msg(c, p, &m);
}

static void send_jobref(coord *c, peer *p, qf_msg_type type, uint64_t id, uint64_t job_id,
                        uint32_t attempt)
{
    qf_msg m = { .type = type, .id = id };
    m.u.jobref.job_id = job_id;
    m.u.jobref.attempt = attempt;
    send_msg(c, p, &m);
}

/* --- dispatch ----------------------------------------------------------------------------- */

/* Leases queued jobs to p while it has free slots. The lease runs to the job's own time limit
 * plus 3 heartbeat intervals, the time it takes to notice a silent agent. */
static void dispatch_to(coord *c, peer *p)
{
    while (p->agent_id && !p->ignored && p->running < p->slots &&
           p->idle_epoch != c->queue_epoch) {
        qf_lease l;
        int err = qf_store_lease_next(c->store, p->agent_id, &p->caps, qf_time_real(), 3.0 * c->hb_s,
                                      &l);
        if (err == QF_ENOENT) {
            p->idle_epoch = c->queue_epoch;   /* nothing for it until the queue changes */
            return;
        }
        if (err) {
            logf_("cannot lease a job: %s", qf_strerror(err));
            return;
        }
        qf_msg m = { .type = QF_MSG_JOB, .id = ++c->next_id };
        m.u.job.job_id = (uint64_t)l.job_id;
        m.u.job.attempt = l.attempt;
        m.u.job.spec = l.spec;
        p->running++;
        if (send_msg(c, p, &m) != 0)
            return;     /* the lease expires and the job is requeued */
    }
}

/* Jobs may have become leasable (submitted, requeued, released): every agent looks again. */
static void queue_changed(coord *c)
{
    c->queue_epoch++;
    c->dispatch_all = true;
}

/* Group commit: one store transaction per burst of messages instead of one per message.
 * If the batch cannot start (locked database) each operation commits on its own as before. */
static void batch_begin(coord *c)
{
    c->batching = qf_store_batch_begin(c->store) == 0;
}

static void batch_end(coord *c)
{
    if (!c->batching)
        return;
    c->batching = false;
    int err = qf_store_batch_commit(c->store);
    flush_out(c, err == 0);
    if (err) {
        /* nothing of the burst happened: leases we counted were rolled back */
        logf_("a batch of changes could not be committed (%s): answers withheld, agents will "
              "repeat", qf_strerror(err));
        /* what we learned in the burst (registrations, removals) may be gone with it: forget
         * every peer; agents are told "unknown agent" at their next message and say HELLO
         * again, which rebuilds their state from the store */
        c->n_peers = 0;
        queue_changed(c);
    }
}

static void dispatch_all(coord *c)
{
    for (size_t i = 0; i < c->n_peers; i++)
        dispatch_to(c, &c->peers[i]);
    c->dispatch_all = false;
}

/* --- message handlers --------------------------------------------------------------------- */

/* How busy an agent is: the jobs the store has leased to it, or what the agent itself says it
 * runs (HEARTBEAT), whichever is more; counting by hand would drift with every duplicate or
 * late message. */
static void sync_running(coord *c, peer *p, uint32_t says)
{
    uint32_t leased = 0;
    if (qf_store_agent_leases(c->store, p->agent_id, &leased) != 0)
        leased = p->running;
    p->running = leased > says ? leased : says;
}

/* The same agent process registering again keeps its leases; one of them may be a JOB this
 * coordinator committed and then died before sending. Each is sent again: the agent answers a
 * JOB it holds with ACCEPT, one it finished with its spooled RESULT, and runs one it never got,
 * so no job waits out its whole lease (its time limit) for nothing. */
static void resend_leases(coord *c, peer *p)
{
    qf_lease leases[16];
    size_t n = 0;
    const size_t max = p->slots < 16 ? p->slots : 16;
    if (qf_store_agent_live_leases(c->store, p->agent_id, leases, max, &n) != 0)
        return;                 /* they expire and are requeued, as before */
    for (size_t i = 0; i < n; i++) {
        qf_msg m = { .type = QF_MSG_JOB, .id = ++c->next_id };
        m.u.job.job_id = (uint64_t)leases[i].job_id;
        m.u.job.attempt = leases[i].attempt;
        m.u.job.spec = leases[i].spec;
        if (send_msg(c, p, &m) != 0)
            return;
    }
}

static void on_hello(coord *c, peer *p, qf_msg *m)
{
    const qf_msg_hello *h = &m->u.hello;
    qf_agent_caps caps = { 0 };
    snprintf(caps.name, sizeof caps.name, "%s", h->name);
    snprintf(caps.arch, sizeof caps.arch, "%s", h->arch);
    snprintf(caps.isa, sizeof caps.isa, "%s", h->isa);
    snprintf(caps.backends, sizeof caps.backends, "%s", h->backends);
    if (p->agent_id && strcmp(p->caps.name, h->name) != 0) {
        char why[200];
        snprintf(why, sizeof why, "this connection is already agent '%.64s'", p->caps.name);
        send_error(c, p, m->id, QF_EPROTO, why);
        return;
    }
    /* another peer with the same name: the same process on a new connection (the old one is
     * stale: forget it, the store keeps its leases), a dead process (silent: the store releases
     * its leases by instance), or a second live agent using the name: refused, else the two
     * would take each other's place on every HELLO */
    for (size_t i = 0; i < c->n_peers; i++) {
        peer *q = &c->peers[i];
        if (q == p || !q->agent_id || strcmp(q->caps.name, h->name) != 0)
            continue;
        if (q->instance != h->instance && qf_time_mono() - q->last_seen <= 3.0 * c->hb_s) {
            char why[200];
            snprintf(why, sizeof why, "name '%.64s' is in use by a live agent", h->name);
            send_error(c, p, m->id, QF_EEXIST, why);
            return;
        }
        peer_remove(c, q);
        if (p == &c->peers[c->n_peers])   /* p was moved into q's place */
            p = q;
        break;
    }
    if (!p->agent_id) {
        uint32_t agents = 0;
        for (size_t i = 0; i < c->n_peers; i++)
            agents += c->peers[i].agent_id != 0;
        if (agents >= c->max_agents) {
            char why[160];
            snprintf(why, sizeof why, "the fleet is full: %u agents registered (the "
                     "coordinator's --max-agents)", agents);
            logf_("refused agent %s: %s", h->name, why);
            send_error(c, p, m->id, QF_EBUSY, why);
            return;
        }
    }
    int64_t agent_id = 0;
    int released = 0;
    int err = qf_store_agent_hello(c->store, h->name, h->instance,
                                   h->fingerprint ? h->fingerprint : "{}", &caps, qf_time_real(),
                                   &agent_id, &released);
    if (err) {
        send_error(c, p, m->id, err, "cannot register the agent now; try again");
        return;
    }
    p->agent_id = agent_id;
    p->instance = h->instance;
    p->caps = caps;
    p->slots = h->slots ? h->slots : 1;
    /* an agent saying HELLO again (after our restart, or after a silence) may still be running
     * jobs leased to it before: the store knows how many, so we do not over-fill its slots */
    sync_running(c, p, 0);
    p->last_seen = qf_time_mono();
    char lb[600];
    if (!c->o->quiet || released)
        logf_("%s joined: %s, %u slot(s), isa [%s]%s", peer_label(p, lb, sizeof lb), caps.arch,
              p->slots, caps.isa, released ? " (previous instance's leases released)" : "");
    if (released)
        queue_changed(c);
    qf_msg w = { .type = QF_MSG_WELCOME, .id = m->id };
    w.u.welcome.agent_id = (uint64_t)agent_id;
    w.u.welcome.heartbeat_ms = c->o->heartbeat_ms;
    /* the largest RESULT we keep: an agent turns a bigger one into a failed result itself */
    w.u.welcome.max_frame = (uint32_t)(c->max_result < c->lim.max_frame ? c->max_result
                                                                        : c->lim.max_frame);
    send_msg(c, p, &w);
    if (!released)
        resend_leases(c, p);
    dispatch_to(c, p);
}

static bool require_agent(coord *c, peer *p, const qf_msg *m)
{
    if (p->agent_id)
        return true;
    send_error(c, p, m->id, QF_EPROTO, "unknown agent, send HELLO");
    return false;
}

static void job_finished_here(coord *c, peer *p)
{
    sync_running(c, p, 0);
    dispatch_to(c, p);
}

static void on_result(coord *c, peer *p, qf_msg *m)
{
    const qf_msg_result *r = &m->u.result;
    const qf_job_result *res = &r->result;
    qf_job_result over = { .status = QF_JOB_FAILED };
    if (c->frame_len > c->max_result) {
        /* kept as a failed attempt (and ACKed), not refused: a refused RESULT would come back
         * from the agent's spool after every WELCOME, forever */
        snprintf(over.error, sizeof over.error, "result of %zu bytes is over the coordinator's "
                 "limit of %zu (--max-result); samples dropped", c->frame_len, c->max_result);
        char lb[600];
        logf_("%s: job %" PRIu64 ": %s", peer_label(p, lb, sizeof lb), r->job_id, over.error);
        res = &over;
    }
    int err = qf_store_complete(c->store, (int64_t)r->job_id, r->attempt, p->agent_id, res,
                                qf_time_real());
    if (err && err != QF_EEXIST) {
        /* not committed: no ACK, the agent keeps the result in its spool and sends it again */
        logf_("cannot store the result of job %" PRIu64 ": %s", r->job_id, qf_strerror(err));
        return;
    }
    send_jobref(c, p, QF_MSG_ACK, m->id, r->job_id, r->attempt);
    if (err == 0 && res->status != QF_JOB_OK)
        queue_changed(c);       /* a failed attempt may have been requeued */
    job_finished_here(c, p);
}

static void on_reject(coord *c, peer *p, qf_msg *m)
{
    if (m->u.jobref.busy) {
        /* the agent was full (it knew better than our count): hand the job back uncounted, and
         * offer this agent nothing more until its next HEARTBEAT or RESULT says how busy it is */
        if (qf_store_unlease(c->store, (int64_t)m->u.jobref.job_id, m->u.jobref.attempt,
                             p->agent_id, qf_time_real()) == 0)
            queue_changed(c);
        p->running = p->slots;
        return;
    }
    qf_job_result res = { .status = QF_JOB_FAILED };
    if (snprintf(res.error, sizeof res.error, "rejected by %s: %s", p->caps.name,
                 m->u.jobref.reason) >= (int)sizeof res.error)
        res.error[sizeof res.error - 2] = '~';   /* a cut reason is still a reason */
    int err = qf_store_complete(c->store, (int64_t)m->u.jobref.job_id, m->u.jobref.attempt,
                                p->agent_id, &res, qf_time_real());
    if (err && err != QF_EEXIST)
        logf_("cannot record a rejection: %s", qf_strerror(err));
    if (!err)
        queue_changed(c);
    job_finished_here(c, p);
}

static void reply(coord *c, peer *p, uint64_t id, int err, const char *why, uint64_t run_id,
                  char *json)
{
    qf_msg m = { .type = QF_MSG_REPLY, .id = id };
    m.u.reply.ok = err == 0;
    if (err)
        snprintf(m.u.reply.error, sizeof m.u.reply.error, "%s: %s", qf_err_name(err),
                 why && *why ? why : qf_strerror(err));
    m.u.reply.run_id = run_id;
    m.u.reply.json = json;
    send_msg(c, p, &m);
}

static void on_submit(coord *c, peer *p, qf_msg *m)
{
    const qf_msg_submit *s = &m->u.submit;
    qf_run_info run = { .dirty = s->dirty, .max_attempts = s->max_attempts };
    snprintf(run.suite, sizeof run.suite, "%s", s->suite);
    snprintf(run.commit, sizeof run.commit, "%s", s->commit);
    snprintf(run.branch, sizeof run.branch, "%s", s->branch);
    snprintf(run.baseline, sizeof run.baseline, "%s", s->baseline);
    int64_t run_id = 0;
    if (s->n_jobs == 0) {
        reply(c, p, m->id, QF_EINVAL, "a run needs at least one job", 0, NULL);
        return;
    }
    int err = qf_store_submit(c->store, &run, s->jobs, s->n_jobs, qf_time_real(), &run_id);
    reply(c, p, m->id, err, NULL, (uint64_t)run_id, NULL);
    if (!err) {
        if (!c->o->quiet)
            logf_("run %" PRId64 " submitted: suite %s, %u jobs, commit %s%s", run_id,
                  run.suite, s->n_jobs, run.commit, run.dirty ? "-dirty" : "");
        queue_changed(c);
    }
}

static void on_status(coord *c, peer *p, qf_msg *m)
{
    char *json = NULL;
    int err = qf_store_status_json(c->store, (int64_t)m->u.runref.run_id, qf_time_real(), &json);
    reply(c, p, m->id, err, err == QF_ENOENT ? "no such run" : NULL, m->u.runref.run_id, json);
    free(json);
}

static void on_cancel(coord *c, peer *p, qf_msg *m)
{
    int err = qf_store_cancel_run(c->store, (int64_t)m->u.runref.run_id, qf_time_real());
    reply(c, p, m->id, err, err == QF_ENOENT ? "no such run" : NULL, m->u.runref.run_id, NULL);
    if (!err)
        logf_("run %" PRIu64 " cancelled", m->u.runref.run_id);
}

static void agent_gone(coord *c, peer *p, const char *reason)
{
    int released = 0;
    char lb[600];
    if (!c->o->quiet || strcmp(reason, "said goodbye") != 0)
        logf_("%s %s", peer_label(p, lb, sizeof lb), reason);
    if (p->agent_id)
        qf_store_agent_lost(c->store, p->agent_id, reason, qf_time_real(), &released);
    if (released) {
        logf_("%d job(s) of %s requeued", released, p->caps.name);
        queue_changed(c);
    }
    peer_remove(c, p);
}

static void handle(coord *c, peer *p, qf_msg *m)
{
    p->last_seen = qf_time_mono();
    switch (m->type) {
    case QF_MSG_HELLO:
        on_hello(c, p, m);
        break;
    case QF_MSG_HEARTBEAT:
        if (require_agent(c, p, m)) {
            qf_msg hb = { .type = QF_MSG_HEARTBEAT, .id = m->id };
            send_msg(c, p, &hb);
            sync_running(c, p, m->u.heartbeat.running);
            dispatch_to(c, p);
        }
        break;
    case QF_MSG_ACCEPT:
        require_agent(c, p, m);
        break;
    case QF_MSG_REJECT:
        if (require_agent(c, p, m))
            on_reject(c, p, m);
        break;
    case QF_MSG_PROGRESS:
        /* informational: the lease already covers the job's whole time limit, and hearing
         * from the agent (last_seen above) is what keeps it alive */
        require_agent(c, p, m);
        break;
    case QF_MSG_RESULT:
        if (require_agent(c, p, m))
            on_result(c, p, m);
        break;
    case QF_MSG_BYE:
        agent_gone(c, p, "said goodbye");
        break;
    case QF_MSG_SUBMIT:
        on_submit(c, p, m);
        break;
    case QF_MSG_STATUS:
        on_status(c, p, m);
        break;
    case QF_MSG_CANCEL:
        on_cancel(c, p, m);
        break;
    case QF_MSG_ERROR: {
        char lb[600];
        logf_("%s reports an error: %s %s", peer_label(p, lb, sizeof lb), m->u.error.code,
              m->u.error.reason);
        break;
    }
    default: {
        char why[128];
        snprintf(why, sizeof why, "a coordinator does not take %s", qf_msg_type_name(m->type));
        send_error(c, p, m->id, QF_EPROTO, why);
        break;
    }
    }
}

/* Receives one routed message (routing id + one frame) and handles it; false when nothing
 * was waiting. */
static bool receive_one(coord *c)
{
    uint8_t rid[QF_COORD_MAX_RID];
    int rlen = zmq_recv(c->sock, rid, sizeof rid, ZMQ_DONTWAIT);
    if (rlen < 0)
        return false;
    zmq_msg_t frame;
    zmq_msg_init(&frame);
    int more = 0;
    size_t more_len = sizeof more;
    zmq_getsockopt(c->sock, ZMQ_RCVMORE, &more, &more_len);
    if (!more || zmq_msg_recv(&frame, c->sock, 0) < 0) {
        zmq_msg_close(&frame);
        return true;
    }
    /* a peer must send exactly one frame; drain and refuse extra parts */
    bool extra = false;
    for (;;) {
        zmq_getsockopt(c->sock, ZMQ_RCVMORE, &more, &more_len);
        if (!more)
            break;
        zmq_msg_t junk;
        zmq_msg_init(&junk);
        zmq_msg_recv(&junk, c->sock, 0);
        zmq_msg_close(&junk);
        extra = true;
    }
    peer *p = peer_get(c, rid, (size_t)rlen);
    if (!p) {
        zmq_msg_close(&frame);
        return true;
    }
    double now = qf_time_mono();
    if (p->ignored && now < p->ignored_until) {
        zmq_msg_close(&frame);
        return true;
    }
    p->ignored = false;
    if (!p->key[0]) {
        const char *uid = zmq_msg_gets(&frame, "User-Id");   /* NULL without CURVE */
        if (uid)
            snprintf(p->key, sizeof p->key, "%s", uid);
    }
    c->frame_len = zmq_msg_size(&frame);
    qf_msg m = { 0 };
    char why[300] = "";
    int err = extra ? QF_EPROTO
                    : qf_wire_decode(zmq_msg_data(&frame), zmq_msg_size(&frame), &c->lim, &m,
                                     why, sizeof why);
    zmq_msg_close(&frame);
    if (extra)
        snprintf(why, sizeof why, "a message must be one frame");
    if (err) {
        char lb[600];
        if (now - p->bad_since > BAD_WINDOW_S) {      /* a new window, a full budget */
            p->bad_frames = 0;
            p->bad_since = now;
        }
        p->bad_frames++;
        logf_("bad frame from %s (%d of %u in %.0f s): %s", peer_label(p, lb, sizeof lb),
              p->bad_frames, c->error_budget, BAD_WINDOW_S, why);
        send_error(c, p, m.id, err, why);   /* the envelope's id, when it could be read */
        if ((uint32_t)p->bad_frames >= c->error_budget) {
            logf_("%s sent %d bad frames within %.0f s: ignoring it for %u s", lb,
                  p->bad_frames, BAD_WINDOW_S, c->ignore_s);
            if (p->agent_id) {
                int released = 0;
                qf_store_agent_lost(c->store, p->agent_id, "dropped for bad frames", qf_time_real(),
                                    &released);
                if (released)
                    queue_changed(c);
                p->agent_id = 0;
            }
            p->ignored = true;
            p->ignored_until = now + c->ignore_s;
            p->bad_frames = 0;
        }
        return true;
    }
    handle(c, p, &m);
    qf_msg_clear(&m);
    return true;
}

/* The timer: lost agents, expired leases, and the jobs they free. */
static void tick(coord *c)
{
    double mono = qf_time_mono();
    for (size_t i = 0; i < c->n_peers;) {
        peer *p = &c->peers[i];
        if (p->agent_id && mono - p->last_seen > 3.0 * c->hb_s) {
            agent_gone(c, p, "is lost (silent for 3 heartbeat intervals)");
            continue;     /* peer_remove moved another peer into slot i */
        }
        if (!p->agent_id && mono - p->last_seen > QF_COORD_PEER_IDLE_S &&
            !(p->ignored && mono < p->ignored_until)) {
            peer_remove(c, p);    /* a client done with us, or an ignored peer gone quiet */
            continue;
        }
        i++;
    }
    int released = 0;
    if (qf_store_expire_leases(c->store, qf_time_real(), &released) == 0 && released) {
        logf_("%d expired lease(s) released", released);
        queue_changed(c);
    }
    c->next_tick = mono + c->hb_s / 2.0;
}

/* Writes the bound endpoint for scripts and tests, atomically (temp file + rename), so a
 * reader never sees half a line. */
static int write_endpoint_file(const char *path, const char *endpoint)
{
    char tmp[4096];
    if (snprintf(tmp, sizeof tmp, "%s.tmp", path) >= (int)sizeof tmp)
        return qf_errorf(QF_EINVAL, "coordinator: --endpoint-file path too long");
    FILE *f = fopen(tmp, "w");
    if (!f)
        return qf_errorf(QF_EIO, "coordinator: cannot write %s: %s", tmp, strerror(errno));
    int ok = fprintf(f, "%s\n", endpoint) > 0;
    ok = (fclose(f) == 0) && ok;
    if (!ok || rename(tmp, path) != 0) {
        unlink(tmp);
        return qf_errorf(QF_EIO, "coordinator: cannot write %s: %s", path, strerror(errno));
    }
    return 0;
}

static int open_socket(coord *c, void *ctx)
{
    c->sock = zmq_socket(ctx, ZMQ_ROUTER);
    if (!c->sock)
        return qf_errorf(QF_ENET, "coordinator: cannot create a socket: %s", zmq_strerror(errno));
    int one = 1, zero = 0;
    /* a frame up to twice the protocol limit is read and answered with ERROR; beyond that
     * ZeroMQ drops the connection before buffering it (memory guard) */
    int64_t maxmsg = (int64_t)c->lim.max_frame * 2;
    zmq_setsockopt(c->sock, ZMQ_ROUTER_MANDATORY, &one, sizeof one);
    zmq_setsockopt(c->sock, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(c->sock, ZMQ_MAXMSGSIZE, &maxmsg, sizeof maxmsg);
    const qf_coord_opts *o = c->o;
    if (o->curve_secret || o->allow_dir) {
        if (!o->curve_secret || !o->allow_dir)
            return qf_errorf(QF_EUSAGE, "coordinator: --curve-secret FILE and --allow DIR go "
                             "together (docs/security.md)");
        if (o->insecure)
            return qf_errorf(QF_EUSAGE, "coordinator: --insecure and --curve-secret together: "
                             "choose one");
        /* the handler must answer before the first connection arrives */
        int err = qf_zap_start(ctx, o->allow_dir, o->quiet, &c->zap);
        if (!err)
            err = qf_curve_server_setup(c->sock, o->curve_secret);
        if (err)
            return err;
    } else if (qf_curve_endpoint_is_remote(o->bind) && !o->insecure) {
        return qf_errorf(QF_EUSAGE, "coordinator: %s would be plain TCP, readable and forgeable "
                         "on the network: give --curve-secret FILE --allow DIR (see "
                         "docs/security.md), or --insecure on a network you trust", o->bind);
    }
    if (zmq_bind(c->sock, c->o->bind) != 0)
        return qf_errorf(QF_ENET, "coordinator: cannot bind %s: %s", c->o->bind,
                         zmq_strerror(errno));
    char bound[256] = "";
    size_t len = sizeof bound;
    zmq_getsockopt(c->sock, ZMQ_LAST_ENDPOINT, bound, &len);
    if (c->o->bound_endpoint)
        snprintf(c->o->bound_endpoint, 256, "%s", bound);
    if (c->o->endpoint_file)
        return write_endpoint_file(c->o->endpoint_file, bound);
    return 0;
}

int qf_coordinator_run(const qf_coord_opts *o)
{
    /* queue_epoch starts above every peer's idle_epoch (0): new peers always look */
    coord c = { .o = o, .lim = qf_wire_default_limits(), .queue_epoch = 1 };
    if (o->max_frame)
        c.lim.max_frame = o->max_frame;
    if (o->max_run_jobs && o->max_run_jobs < c.lim.max_jobs)
        c.lim.max_jobs = o->max_run_jobs;
    c.max_agents = o->max_agents ? o->max_agents : DEFAULT_MAX_AGENTS;
    c.error_budget = o->error_budget ? o->error_budget : DEFAULT_ERROR_BUDGET;
    c.ignore_s = o->ignore_s ? o->ignore_s : DEFAULT_IGNORE_S;
    c.max_result = o->max_result ? o->max_result : DEFAULT_MAX_RESULT;
    c.hb_s = (double)(o->heartbeat_ms ? o->heartbeat_ms : 1000) / 1000.0;
    void *ctx = o->zmq_ctx ? o->zmq_ctx : zmq_ctx_new();
    if (!ctx)
        return qf_errorf(QF_ENET, "coordinator: cannot create a ZeroMQ context");
    int err = qf_store_open(o->db_path, &c.store);
    if (!err)
        err = qf_store_set_limits(c.store, o->db_busy_ms, o->max_db_size);
    if (!err)
        err = qf_store_agents_unseen(c.store);
    if (!err)
        err = open_socket(&c, ctx);
    if (!err) {
        if (o->ready)
            *o->ready = 1;
        if (!o->quiet)
            logf_("listening on %s, store %s", o->bind, o->db_path);
        c.next_tick = qf_time_mono();
        while (!(o->stop && *o->stop)) {
            zmq_pollitem_t item = { .socket = c.sock, .events = ZMQ_POLLIN };
            long wait_ms = (long)((c.next_tick - qf_time_mono()) * 1000.0);
            if (wait_ms < 0)
                wait_ms = 0;
            if (wait_ms > 100)
                wait_ms = 100;   /* look at *stop often */
            int rc = zmq_poll(&item, 1, wait_ms);
            if (rc < 0 && errno != EINTR) {
                err = qf_errorf(QF_ENET, "coordinator: poll failed: %s", zmq_strerror(errno));
                break;
            }
            bool work = rc > 0 || qf_time_mono() >= c.next_tick || c.dispatch_all;
            if (work)
                batch_begin(&c);
            /* drain a burst before the timer, so a flood does not starve the ticks */
            for (int n = 0; rc > 0 && n < BATCH_MAX; n++)
                if (!receive_one(&c))
                    break;
            if (qf_time_mono() >= c.next_tick)
                tick(&c);
            if (c.dispatch_all)
                dispatch_all(&c);
            if (work)
                batch_end(&c);
        }
    }
    if (c.sock)
        zmq_close(c.sock);
    qf_zap_stop(&c.zap);        /* after the socket: no handshake can be waiting for it */
    qf_store_close(&c.store);
    flush_out(&c, false);
    free(c.out);
    free(c.out_bytes);
    free(c.peers);
    if (!o->zmq_ctx)
        zmq_ctx_term(ctx);
    return err;
}

/* --- in a thread ---------------------------------------------------------------------------- */

struct qf_coord_thread {
    qf_coord_opts        *o;
    volatile sig_atomic_t ready;
    pthread_t             tid;
    int                   rc;
};

static void *coord_thread_main(void *arg)
{
    qf_coord_thread *t = arg;
    t->rc = qf_coordinator_run(t->o);
    if (t->rc)
        t->ready = -1;
    return NULL;
}

int qf_coordinator_start(qf_coord_opts *o, qf_coord_thread **out)
{
    assert(o && o->stop && out);
    qf_coord_thread *t = calloc(1, sizeof *t);
    if (!t)
        return QF_ENOMEM;
    t->o = o;
    o->ready = &t->ready;
    if (pthread_create(&t->tid, NULL, coord_thread_main, t) != 0) {
        free(t);
        return qf_errorf(QF_ENOMEM, "cannot start the coordinator thread");
    }
    for (int i = 0; t->ready == 0 && i < 5000; i++)
        usleep(1000);
    if (t->ready != 1) {
        *o->stop = 1;
        pthread_join(t->tid, NULL);
        int err = t->rc ? t->rc : qf_errorf(QF_ETIMEDOUT, "the coordinator did not start");
        free(t);
        return err;
    }
    *out = t;
    return 0;
}

int qf_coordinator_join(qf_coord_thread **tp)
{
    qf_coord_thread *t = *tp;
    if (!t)
        return 0;
    *t->o->stop = 1;
    pthread_join(t->tid, NULL);
    int rc = t->rc;
    free(t);
    *tp = NULL;
    return rc;
}

/* --- qfleet coordinator --------------------------------------------------------------------- */

static volatile sig_atomic_t g_stop;

static void on_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static void usage(FILE *out)
{
    fputs("usage: qfleet coordinator [--bind ENDPOINT] [--db FILE] [security] [limits]\n"
          "\n"
          "Serve the job queue and the results store to a fleet of agents and clients.\n"
          "\n"
          "  --bind ENDPOINT       ZeroMQ endpoint to listen on (default tcp://*:7420;\n"
          "                        tcp://127.0.0.1:* picks a free port)\n"
          "  --db FILE             SQLite store, created if absent (default qfleet.db)\n"
          "  --heartbeat-ms N      agents heartbeat this often; silent for 3 intervals = lost\n"
          "                        (default 1000)\n"
          "  --endpoint-file FILE  write the bound endpoint there once listening (for scripts)\n"
          "  -h, --help            this help\n"
          "\n"
          "Security (docs/security.md): a tcp:// bind needs either\n"
          "  --curve-secret FILE   this coordinator's key pair (qfleet keygen), and\n"
          "  --allow DIR           one .pub file per enrolled agent or client; others are\n"
          "                        refused and logged with their key's fingerprint\n"
          "  --insecure            or: plain TCP, for a network you trust\n"
          "\n"
          "Limits (docs/protocol.md):\n"
          "  --max-frame SIZE      largest message accepted (default 16M)\n"
          "  --max-result SIZE     largest RESULT kept; bigger ones are recorded as failed\n"
          "                        (default 4M, at most --max-frame)\n"
          "  --max-agents N        agents registered at once (default 4096)\n"
          "  --max-run-jobs N      jobs in one submitted run, 1..100000 (default 100000)\n"
          "  --error-budget N      bad frames a peer may send within 60 s before it is\n"
          "                        ignored (default 10)\n"
          "  --ignore-s N          how long such a peer is ignored, seconds (default 60)\n"
          "  --max-db-size SIZE    the store takes no new runs or results beyond this size\n"
          "                        (default: no limit but the disk)\n"
          "  --db-busy-ms N        wait this long for a database locked by another process\n"
          "                        (default 5000)\n", out);
}

enum { OPT_CURVE = 256, OPT_ALLOW, OPT_INSECURE, OPT_MAX_AGENTS, OPT_MAX_RUN_JOBS,
       OPT_ERROR_BUDGET, OPT_IGNORE_S, OPT_MAX_RESULT, OPT_MAX_DB, OPT_BUSY_MS };

int qf_coordinator_main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "bind", required_argument, NULL, 'b' },
        { "db", required_argument, NULL, 'd' },
        { "heartbeat-ms", required_argument, NULL, 'H' },
        { "max-frame", required_argument, NULL, 'm' },
        { "endpoint-file", required_argument, NULL, 'e' },
        { "curve-secret", required_argument, NULL, OPT_CURVE },
        { "allow", required_argument, NULL, OPT_ALLOW },
        { "insecure", no_argument, NULL, OPT_INSECURE },
        { "max-agents", required_argument, NULL, OPT_MAX_AGENTS },
        { "max-run-jobs", required_argument, NULL, OPT_MAX_RUN_JOBS },
        { "error-budget", required_argument, NULL, OPT_ERROR_BUDGET },
        { "ignore-s", required_argument, NULL, OPT_IGNORE_S },
        { "max-result", required_argument, NULL, OPT_MAX_RESULT },
        { "max-db-size", required_argument, NULL, OPT_MAX_DB },
        { "db-busy-ms", required_argument, NULL, OPT_BUSY_MS },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    qf_coord_opts o = { .bind = "tcp://*:7420", .db_path = "qfleet.db", .heartbeat_ms = 1000,
                        .max_frame = QF_WIRE_DEFAULT_MAX_FRAME, .stop = &g_stop };
    const char *endpoint_file = NULL;
    bool max_result_set = false;
    int ch, rc = 0;
    opterr = 0;
    optind = 1;
    while (rc == 0 && (ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        int64_t v = 0;
        uint64_t sz = 0;
        switch (ch) {
        case 'b': o.bind = optarg; break;
        case 'd': o.db_path = optarg; break;
        case 'e': endpoint_file = optarg; break;
        case OPT_CURVE: o.curve_secret = optarg; break;
        case OPT_ALLOW: o.allow_dir = optarg; break;
        case OPT_INSECURE: o.insecure = true; break;
        case 'H':
            rc = qf_cli_parse_int("coordinator", "--heartbeat-ms", optarg, 10, 600000, &v);
            o.heartbeat_ms = (uint32_t)v;
            break;
        case 'm':
            rc = qf_cli_parse_size("coordinator", "--max-frame", optarg, 4096, 1u << 30, &sz);
            o.max_frame = (size_t)sz;
            break;
        case OPT_MAX_RESULT:
            rc = qf_cli_parse_size("coordinator", "--max-result", optarg, 4096, 1u << 30, &sz);
            o.max_result = (size_t)sz;
            max_result_set = true;
            break;
        case OPT_MAX_DB:
            rc = qf_cli_parse_size("coordinator", "--max-db-size", optarg, 1u << 20,
                                   (uint64_t)1 << 50, &sz);
            o.max_db_size = sz;
            break;
        case OPT_MAX_AGENTS:
            rc = qf_cli_parse_int("coordinator", "--max-agents", optarg, 1, QF_COORD_MAX_PEERS,
                                  &v);
            o.max_agents = (uint32_t)v;
            break;
        case OPT_MAX_RUN_JOBS:
            rc = qf_cli_parse_int("coordinator", "--max-run-jobs", optarg, 1,
                                  qf_wire_default_limits().max_jobs, &v);
            o.max_run_jobs = (uint32_t)v;
            break;
        case OPT_ERROR_BUDGET:
            rc = qf_cli_parse_int("coordinator", "--error-budget", optarg, 1, 1000000, &v);
            o.error_budget = (uint32_t)v;
            break;
        case OPT_IGNORE_S:
            rc = qf_cli_parse_int("coordinator", "--ignore-s", optarg, 1, 86400 * 7, &v);
            o.ignore_s = (uint32_t)v;
            break;
        case OPT_BUSY_MS:
            rc = qf_cli_parse_int("coordinator", "--db-busy-ms", optarg, 1, 600000, &v);
            o.db_busy_ms = (uint32_t)v;
            break;
        case 'h':
            usage(stdout);
            return QF_EXIT_OK;
        default:
            qf_cli_reject_option("coordinator", ch, argc, argv);
            return QF_EXIT_USAGE;
        }
    }
    if (rc)
        return QF_EXIT_USAGE;
    if (optind < argc) {
        qf_errorf(QF_EUSAGE, "coordinator: unexpected argument '%s' (see qfleet coordinator "
                  "--help)", argv[optind]);
        return QF_EXIT_USAGE;
    }
    if (max_result_set && o.max_result > o.max_frame) {
        qf_errorf(QF_EUSAGE, "coordinator: --max-result %zu is over --max-frame %zu: a RESULT "
                  "cannot be larger than a frame", o.max_result, o.max_frame);
        return QF_EXIT_USAGE;
    }
    if (!max_result_set && o.max_frame < DEFAULT_MAX_RESULT)
        o.max_result = o.max_frame;
    struct sigaction sa = { .sa_handler = on_signal };
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    o.endpoint_file = endpoint_file;
    int err = qf_coordinator_run(&o);
    return err == QF_EUSAGE ? QF_EXIT_USAGE : err ? QF_EXIT_FAILURE : QF_EXIT_OK;
}
