/* test_agent.c - the agent daemon against a scripted coordinator on loopback.
 *
 * Each test binds a ROUTER on tcp://127.0.0.1 with an ephemeral port, runs qf_agent_run in a
 * thread (its own ZeroMQ context, a fresh spool folder from mkdtemp, quiet) and plays the
 * coordinator's side of docs/protocol.md by hand through the wire codec: HELLO and WELCOME,
 * JOB and ACCEPT/REJECT, RESULT and ACK, and what goes wrong (no ACK, a restart, garbage,
 * silence, "unknown agent"). Jobs are real: the agent forks a child per job. Every wait is
 * bounded (WAIT_MS); a test that hangs fails instead. The agent runs with insecure = true (the
 * scripted coordinator speaks plain TCP), except in the CURVE test, where the ROUTER is a CURVE
 * server and the agent uses keys from qf_curve_keygen.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <inttypes.h>
#include <jansson.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/utsname.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "qf_agent.h"
#include "qf_cli_args.h"
#include "qf_curve.h"
#include "qf_err.h"
#include "qf_wire.h"

#define WAIT_MS 15000   /* generous for sanitizer builds; a passing test takes far less */

/* ---- the scripted coordinator -------------------------------------------------------------- */

typedef struct coord {
    void    *ctx, *router;
    char     endpoint[256];
    uint8_t  rid[256];           /* routing id of the agent's connection, from its last frame */
    size_t   rid_len;
    uint64_t next_id;
    bool     answer_heartbeats;
} coord;

static void coord_open(coord *c)
{
    memset(c, 0, sizeof *c);
    c->next_id = 1;
    c->answer_heartbeats = true;
    c->ctx = zmq_ctx_new();
    assert_non_null(c->ctx);
    c->router = zmq_socket(c->ctx, ZMQ_ROUTER);
    assert_non_null(c->router);
    int zero = 0;
    zmq_setsockopt(c->router, ZMQ_LINGER, &zero, sizeof zero);
    assert_int_equal(zmq_bind(c->router, "tcp://127.0.0.1:*"), 0);
    size_t len = sizeof c->endpoint;
    assert_int_equal(zmq_getsockopt(c->router, ZMQ_LAST_ENDPOINT, c->endpoint, &len), 0);
}

static void coord_close(coord *c)
{
    zmq_close(c->router);
    zmq_ctx_term(c->ctx);
}

/* Sends raw frames (one message of n parts) to the agent. */
static void coord_send_parts(coord *c, const void *const *parts, const size_t *lens, int n)
{
    assert_true(c->rid_len > 0);
    assert_int_equal(zmq_send(c->router, c->rid, c->rid_len, ZMQ_SNDMORE), (int)c->rid_len);
    for (int i = 0; i < n; i++)
        assert_int_equal(zmq_send(c->router, parts[i], lens[i], i + 1 < n ? ZMQ_SNDMORE : 0),
                         (int)lens[i]);
}

static void coord_send_raw(coord *c, const void *buf, size_t len)
{
    const void *parts[1] = { buf };
    coord_send_parts(c, parts, &len, 1);
}

static void coord_send(coord *c, qf_msg *m)
{
    if (!m->id)
        m->id = c->next_id++;
    void *buf = NULL;
    size_t len = 0;
    int rc = qf_wire_encode(m, &buf, &len);
    if (rc != 0)
        fail_msg("cannot encode %s: %d", qf_msg_type_name((int)m->type), rc);
    coord_send_raw(c, buf, len);
    free(buf);
}

/* Receives one message from the agent within ms; false on timeout. */
static bool coord_recv(coord *c, qf_msg *m, int ms)
{
    zmq_pollitem_t it = { .socket = c->router, .events = ZMQ_POLLIN };
    if (zmq_poll(&it, 1, ms) <= 0)
        return false;
    int n = zmq_recv(c->router, c->rid, sizeof c->rid, 0);
    assert_true(n > 0);
    c->rid_len = (size_t)n;
    zmq_msg_t msg;
    zmq_msg_init(&msg);
    assert_true(zmq_msg_recv(&msg, c->router, 0) >= 0);
    assert_false(zmq_msg_more(&msg));
    qf_wire_limits lim = qf_wire_default_limits();
    char why[256];
    int rc = qf_wire_decode(zmq_msg_data(&msg), zmq_msg_size(&msg), &lim, m, why, sizeof why);
    zmq_msg_close(&msg);
    if (rc != 0)
        fail_msg("the agent sent a frame that does not decode: %s", why);
    return true;
}

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Waits for a message of type, answering (or, unless answer_heartbeats, ignoring) the
 * agent's HEARTBEATs on the way; anything else fails the test. Caller clears *m. */
static void expect(coord *c, qf_msg_type type, qf_msg *m)
{
    int64_t end = mono_ms() + WAIT_MS;
    for (;;) {
        int64_t left = end - mono_ms();
        if (left <= 0 || !coord_recv(c, m, (int)left))
            fail_msg("no %s from the agent within %d ms", qf_msg_type_name((int)type), WAIT_MS);
        if (m->type == type)
            return;
        if (m->type != QF_MSG_HEARTBEAT)
            fail_msg("expected %s from the agent, got %s", qf_msg_type_name((int)type),
                     qf_msg_type_name((int)m->type));
        if (c->answer_heartbeats) {
            qf_msg hb = { .type = QF_MSG_HEARTBEAT };
            coord_send(c, &hb);
        }
        qf_msg_clear(m);
    }
}

static void send_welcome_limit(coord *c, uint64_t agent_id, uint32_t heartbeat_ms,
                               uint32_t max_frame)
{
    qf_msg m = { .type = QF_MSG_WELCOME };
    m.u.welcome.agent_id = agent_id;
    m.u.welcome.heartbeat_ms = heartbeat_ms;
    m.u.welcome.max_frame = max_frame;
    coord_send(c, &m);
}

static void send_welcome(coord *c, uint64_t agent_id, uint32_t heartbeat_ms)
{
    send_welcome_limit(c, agent_id, heartbeat_ms, QF_WIRE_DEFAULT_MAX_FRAME);
}

static qf_job_spec noop_spec(void)
{
    qf_job_spec s;
    memset(&s, 0, sizeof s);
    snprintf(s.kind, sizeof s.kind, "noop");
    snprintf(s.dataset, sizeof s.dataset, "synth:gaussian");
    s.rows = 1;
    s.cols = 32;
    s.reps = 1;
    s.threads = 1;
    s.seed = 1;
    s.timeout_ms = 30000;
    return s;
}

/* A job that keeps a slot busy for a while: about 0.3 s of reference matvec in a release
 * build, 1 s under the sanitizers; long enough that a JOB sent right after its ACCEPT finds
 * the slot taken, short enough for a test. */
static qf_job_spec slow_spec(void)
{
    qf_job_spec s = noop_spec();
    snprintf(s.kind, sizeof s.kind, "matvec");
    snprintf(s.format, sizeof s.format, "q8_0");
    s.rows = 1024;
    s.cols = 1024;
    s.reps = 20;
    return s;
}

static void send_job(coord *c, uint64_t job_id, uint32_t attempt, const qf_job_spec *spec)
{
    qf_msg m = { .type = QF_MSG_JOB };
    m.u.job.job_id = job_id;
    m.u.job.attempt = attempt;
    m.u.job.spec = *spec;
    coord_send(c, &m);
}

static void send_ack(coord *c, uint64_t job_id, uint32_t attempt)
{
    qf_msg m = { .type = QF_MSG_ACK };
    m.u.jobref.job_id = job_id;
    m.u.jobref.attempt = attempt;
    coord_send(c, &m);
}

/* ---- the agent under test, in a thread ----------------------------------------------------- */

typedef struct agent_thread {
    qf_agent_opts o;
    volatile sig_atomic_t stop;
    pthread_t tid;
    int rc;
    bool joined;
} agent_thread;

static void *agent_main(void *arg)
{
    agent_thread *t = arg;
    t->rc = qf_agent_run(&t->o);
    return NULL;
}

/* Options for the agent under test: plain TCP (insecure) unless the test says otherwise. */
static void agent_init(agent_thread *t, const coord *c, const char *spool, int max_jobs,
                       uint32_t slots)
{
    memset(t, 0, sizeof *t);
    t->o.endpoint = c->endpoint;
    t->o.name = "agent-test";
    t->o.spool_dir = spool;
    t->o.slots = slots;
    t->o.heartbeat_ms = 1000;
    t->o.stop = &t->stop;
    t->o.max_jobs = max_jobs;
    t->o.quiet = true;
    t->o.insecure = true;
}

static void agent_start(agent_thread *t, const coord *c, const char *spool, int max_jobs,
                        uint32_t slots)
{
    agent_init(t, c, spool, max_jobs, slots);
    assert_int_equal(pthread_create(&t->tid, NULL, agent_main, t), 0);
}

/* Joins the agent thread, which must end by itself (max_jobs) within WAIT_MS. */
static int agent_join(agent_thread *t)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    ts.tv_sec += WAIT_MS / 1000;
    if (pthread_timedjoin_np(t->tid, NULL, &ts) != 0) {
        t->stop = 1;
        pthread_join(t->tid, NULL);
        fail_msg("the agent did not return by itself within %d ms", WAIT_MS);
    }
    t->joined = true;
    return t->rc;
}

static int agent_stop(agent_thread *t)
{
    t->stop = 1;
    return agent_join(t);
}

/* ---- fixture: a spool folder per test ------------------------------------------------------ */

typedef struct fixture {
    char spool[64];
    coord c;
    agent_thread a;
} fixture;

static int setup(void **state)
{
    fixture *fx = calloc(1, sizeof *fx);
    if (!fx)
        return -1;
    snprintf(fx->spool, sizeof fx->spool, "/tmp/qf-test-agent-XXXXXX");
    if (!mkdtemp(fx->spool)) {
        free(fx);
        return -1;
    }
    coord_open(&fx->c);
    *state = fx;
    return 0;
}

static int teardown(void **state)
{
    fixture *fx = *state;
    if (fx->a.tid && !fx->a.joined) {   /* a failed test left the agent running */
        fx->a.stop = 1;
        pthread_join(fx->a.tid, NULL);
    }
    coord_close(&fx->c);
    DIR *d = opendir(fx->spool);
    if (d) {
        struct dirent *e;
        while ((e = readdir(d)) != NULL)
            if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
                unlinkat(dirfd(d), e->d_name, 0);
        closedir(d);
    }
    rmdir(fx->spool);
    free(fx);
    return 0;
}

static bool spool_has(const fixture *fx, uint64_t job_id, uint32_t attempt)
{
    char path[128];
    snprintf(path, sizeof path, "%s/job-%" PRIu64 "-%" PRIu32 ".msgpack", fx->spool, job_id,
             attempt);
    struct stat st;
    return stat(path, &st) == 0;
}

/* HELLO, checked field by field, then WELCOME. Returns the HELLO's instance. */
static uint64_t handshake(fixture *fx, uint32_t heartbeat_ms)
{
    qf_msg m;
    expect(&fx->c, QF_MSG_HELLO, &m);
    const qf_msg_hello *h = &m.u.hello;
    struct utsname u;
    assert_int_equal(uname(&u), 0);
    assert_string_equal(h->name, "agent-test");
    assert_true(h->instance != 0);
    assert_int_equal(h->slots, fx->a.o.slots);
    assert_string_equal(h->arch, u.machine);
    assert_non_null(strstr(h->backends, "cpu"));
    assert_non_null(h->fingerprint);
    json_t *fp = json_loads(h->fingerprint, 0, NULL);
    assert_non_null(fp);
    assert_string_equal(json_string_value(json_object_get(fp, "name")), "agent-test");
    assert_non_null(json_object_get(fp, "qfleet"));
    json_decref(fp);
    uint64_t instance = h->instance;
    qf_msg_clear(&m);
    send_welcome(&fx->c, 42, heartbeat_ms);
    return instance;
}

/* JOB -> ACCEPT -> RESULT for a job that should succeed; leaves the RESULT unACKed. */
static void run_job(fixture *fx, uint64_t job_id, uint32_t attempt, const qf_job_spec *spec)
{
    qf_msg m;
    send_job(&fx->c, job_id, attempt, spec);
    expect(&fx->c, QF_MSG_ACCEPT, &m);
    assert_int_equal(m.u.jobref.job_id, job_id);
    assert_int_equal(m.u.jobref.attempt, attempt);
    qf_msg_clear(&m);
    expect(&fx->c, QF_MSG_RESULT, &m);
    assert_int_equal(m.u.result.job_id, job_id);
    assert_int_equal(m.u.result.attempt, attempt);
    if (m.u.result.result.status != QF_JOB_OK)
        fail_msg("job %" PRIu64 "/%" PRIu32 " ended %d: %s", job_id, attempt,
                 (int)m.u.result.result.status, m.u.result.result.error);
    assert_true(m.u.result.result.n_samples >= 1);
    qf_msg_clear(&m);
    /* Spooled before it was sent. */
    assert_true(spool_has(fx, job_id, attempt));
}

/* ---- tests --------------------------------------------------------------------------------- */

/* The whole happy path: HELLO with a fingerprint, JOB, ACCEPT, RESULT, ACK, BYE. */
static void test_job_round_trip(void **state)
{
    fixture *fx = *state;
    agent_start(&fx->a, &fx->c, fx->spool, 1, 1);
    handshake(fx, 1000);
    qf_job_spec spec = noop_spec();
    run_job(fx, 7, 1, &spec);
    send_ack(&fx->c, 7, 1);
    qf_msg m;
    expect(&fx->c, QF_MSG_BYE, &m);
    qf_msg_clear(&m);
    assert_int_equal(agent_join(&fx->a), 0);
    assert_false(spool_has(fx, 7, 1));
}

/* No ACK: the RESULT goes again after the next WELCOME, and survives the agent itself. */
static void test_result_kept_until_acked(void **state)
{
    fixture *fx = *state;
    agent_start(&fx->a, &fx->c, fx->spool, 1, 1);
    uint64_t first_instance = handshake(fx, 1000);
    qf_job_spec spec = noop_spec();
    run_job(fx, 5, 2, &spec);

    /* A coordinator that restarted says WELCOME again: the unACKed result comes back. */
    send_welcome(&fx->c, 42, 1000);
    qf_msg m;
    expect(&fx->c, QF_MSG_RESULT, &m);
    assert_int_equal(m.u.result.job_id, 5);
    assert_int_equal(m.u.result.attempt, 2);
    qf_msg_clear(&m);

    /* The agent stops without its ACK: BYE, and the result stays on disk. */
    assert_int_equal(agent_stop(&fx->a), 0);
    expect(&fx->c, QF_MSG_BYE, &m);
    qf_msg_clear(&m);
    assert_true(spool_has(fx, 5, 2));

    /* A new agent process on the same spool sends it after its WELCOME; the ACK removes it. */
    agent_start(&fx->a, &fx->c, fx->spool, 1, 1);
    uint64_t second_instance = handshake(fx, 1000);
    assert_true(second_instance != first_instance);
    expect(&fx->c, QF_MSG_RESULT, &m);
    assert_int_equal(m.u.result.job_id, 5);
    assert_int_equal(m.u.result.attempt, 2);
    assert_int_equal(m.u.result.result.status, QF_JOB_OK);
    qf_msg_clear(&m);
    send_ack(&fx->c, 5, 2);
    assert_int_equal(agent_join(&fx->a), 0);
    assert_false(spool_has(fx, 5, 2));
}

/* Garbage from the coordinator is logged and survived; ten bad frames in a row mean HELLO. */
static void test_garbage_does_not_kill_the_agent(void **state)
{
    fixture *fx = *state;
    agent_start(&fx->a, &fx->c, fx->spool, 1, 1);
    handshake(fx, 1000);

    static const uint8_t never_used[] = { 0xc1 };
    static const uint8_t bad_version[] = { 0x94, 0x02, 0x01, 0x01, 0x80 };   /* [2,1,1,{}] */
    static const uint8_t huge_array[] = { 0xdd, 0xff, 0xff, 0xff, 0xff };    /* 2^32 elems */
    static const uint8_t not_array[] = { 0xa3, 'J', 'O', 'B' };
    coord_send_raw(&fx->c, never_used, sizeof never_used);
    coord_send_raw(&fx->c, "", 0);
    coord_send_raw(&fx->c, bad_version, sizeof bad_version);
    coord_send_raw(&fx->c, huge_array, sizeof huge_array);
    coord_send_raw(&fx->c, not_array, sizeof not_array);
    const void *parts[2] = { never_used, never_used };
    const size_t lens[2] = { 1, 1 };
    coord_send_parts(&fx->c, parts, lens, 2);
    /* A well-formed message the agent has no use for is ignored, and breaks the bad run. */
    qf_msg odd = { .type = QF_MSG_STATUS };
    coord_send(&fx->c, &odd);

    /* Still alive and registered: a job runs. */
    qf_job_spec spec = noop_spec();
    run_job(fx, 1, 1, &spec);

    /* Ten bad frames in a row: the agent starts over with HELLO. */
    for (int i = 0; i < 10; i++)
        coord_send_raw(&fx->c, never_used, sizeof never_used);
    qf_msg m;
    expect(&fx->c, QF_MSG_HELLO, &m);
    qf_msg_clear(&m);
    send_welcome(&fx->c, 42, 1000);
    expect(&fx->c, QF_MSG_RESULT, &m);   /* the new WELCOME re-sends the unACKed result */
    assert_int_equal(m.u.result.job_id, 1);
    qf_msg_clear(&m);
    send_ack(&fx->c, 1, 1);
    assert_int_equal(agent_join(&fx->a), 0);
}

/* REJECT for a selector that does not match and for a full agent; a re-sent JOB is not run
 * twice. */
static void test_rejects(void **state)
{
    fixture *fx = *state;
    agent_start(&fx->a, &fx->c, fx->spool, 1, 1);
    handshake(fx, 1000);
    qf_msg m;

    qf_job_spec other = noop_spec();
    snprintf(other.selector, sizeof other.selector, "arch=no-such-arch");
    send_job(&fx->c, 1, 1, &other);
    expect(&fx->c, QF_MSG_REJECT, &m);
    assert_int_equal(m.u.jobref.job_id, 1);
    assert_non_null(strstr(m.u.jobref.reason, "selector"));
    qf_msg_clear(&m);

    qf_job_spec slow = slow_spec();
    send_job(&fx->c, 2, 1, &slow);
    expect(&fx->c, QF_MSG_ACCEPT, &m);
    assert_int_equal(m.u.jobref.job_id, 2);
    qf_msg_clear(&m);

    qf_job_spec spec = noop_spec();
    send_job(&fx->c, 3, 1, &spec);
    send_job(&fx->c, 2, 1, &slow);   /* the coordinator repeats itself */
    expect(&fx->c, QF_MSG_REJECT, &m);
    assert_int_equal(m.u.jobref.job_id, 3);
    assert_string_equal(m.u.jobref.reason, "no free slot");
    qf_msg_clear(&m);
    expect(&fx->c, QF_MSG_ACCEPT, &m);
    assert_int_equal(m.u.jobref.job_id, 2);
    qf_msg_clear(&m);

    expect(&fx->c, QF_MSG_RESULT, &m);
    assert_int_equal(m.u.result.job_id, 2);
    if (m.u.result.result.status != QF_JOB_OK)
        fail_msg("slow job ended %d: %s", (int)m.u.result.result.status,
                 m.u.result.result.error);
    assert_int_equal(m.u.result.result.n_samples, slow.reps);
    qf_msg_clear(&m);
    send_ack(&fx->c, 2, 1);
    expect(&fx->c, QF_MSG_BYE, &m);
    qf_msg_clear(&m);
    assert_int_equal(agent_join(&fx->a), 0);
}

/* A coordinator with a small --max-frame gets a FAILED result that fits, not a frame its
 * socket would drop the connection for. */
static void test_result_over_frame_limit(void **state)
{
    fixture *fx = *state;
    agent_start(&fx->a, &fx->c, fx->spool, 1, 1);
    qf_msg m;
    expect(&fx->c, QF_MSG_HELLO, &m);
    qf_msg_clear(&m);
    send_welcome_limit(&fx->c, 42, 1000, 1024);

    qf_job_spec many = noop_spec();   /* 300 samples: about 2.7 KB of RESULT */
    snprintf(many.kind, sizeof many.kind, "quantize");
    snprintf(many.format, sizeof many.format, "q8_0");
    many.reps = 300;
    send_job(&fx->c, 9, 1, &many);
    expect(&fx->c, QF_MSG_ACCEPT, &m);
    qf_msg_clear(&m);
    expect(&fx->c, QF_MSG_RESULT, &m);
    assert_int_equal(m.u.result.job_id, 9);
    assert_int_equal(m.u.result.result.status, QF_JOB_FAILED);
    assert_int_equal(m.u.result.result.n_samples, 0);
    if (!strstr(m.u.result.result.error, "frame limit"))
        fail_msg("error '%s' does not name the frame limit", m.u.result.result.error);
    qf_msg_clear(&m);
    send_ack(&fx->c, 9, 1);
    assert_int_equal(agent_join(&fx->a), 0);
}

/* "unknown agent" and a silent coordinator both lead to a new HELLO. */
static void test_hello_again(void **state)
{
    fixture *fx = *state;
    agent_start(&fx->a, &fx->c, fx->spool, 0, 1);
    handshake(fx, 1000);

    qf_msg m = { .type = QF_MSG_ERROR };
    snprintf(m.u.error.code, sizeof m.u.error.code, "QF_EPROTO");
    snprintf(m.u.error.reason, sizeof m.u.error.reason, "unknown agent, send HELLO");
    coord_send(&fx->c, &m);
    expect(&fx->c, QF_MSG_HELLO, &m);
    qf_msg_clear(&m);

    /* A short heartbeat, left unanswered: after 3 intervals of silence, HELLO again. */
    send_welcome(&fx->c, 42, 50);
    fx->c.answer_heartbeats = false;
    int64_t t0 = mono_ms();
    expect(&fx->c, QF_MSG_HELLO, &m);
    int64_t waited = mono_ms() - t0;
    qf_msg_clear(&m);
    if (waited < 100)
        fail_msg("HELLO again after %lld ms; expected about 3 heartbeats of 50 ms",
                 (long long)waited);

    assert_int_equal(agent_stop(&fx->a), 0);
}

/* With CURVE keys the agent's HELLO reaches a CURVE server and the job round trip works as in
 * plain TCP; with neither keys nor insecure it refuses a tcp:// coordinator (QF_EUSAGE). */
static void test_curve_and_insecure(void **state)
{
    fixture *fx = *state;
    char base_srv[128], base_agent[128];
    snprintf(base_srv, sizeof base_srv, "%s/coord", fx->spool);
    snprintf(base_agent, sizeof base_agent, "%s/agent", fx->spool);
    qf_curve_keypair srv;
    assert_int_equal(qf_curve_keygen(base_srv, false, &srv), 0);
    assert_int_equal(qf_curve_keygen(base_agent, false, NULL), 0);

    /* the scripted coordinator again, as a CURVE server (no ZAP handler: any client key) */
    coord_close(&fx->c);
    memset(&fx->c, 0, sizeof fx->c);
    fx->c.next_id = 1;
    fx->c.answer_heartbeats = true;
    fx->c.ctx = zmq_ctx_new();
    fx->c.router = zmq_socket(fx->c.ctx, ZMQ_ROUTER);
    int zero = 0, one = 1;
    zmq_setsockopt(fx->c.router, ZMQ_LINGER, &zero, sizeof zero);
    zmq_setsockopt(fx->c.router, ZMQ_CURVE_SERVER, &one, sizeof one);
    zmq_setsockopt(fx->c.router, ZMQ_CURVE_SECRETKEY, srv.secret_z85, QF_CURVE_Z85_LEN);
    assert_int_equal(zmq_bind(fx->c.router, "tcp://127.0.0.1:*"), 0);
    size_t len = sizeof fx->c.endpoint;
    assert_int_equal(zmq_getsockopt(fx->c.router, ZMQ_LAST_ENDPOINT, fx->c.endpoint, &len), 0);

    /* no keys and no insecure: refused before connecting */
    agent_thread t;
    agent_init(&t, &fx->c, fx->spool, 1, 1);
    t.o.insecure = false;
    assert_int_equal(qf_agent_run(&t.o), QF_EUSAGE);

    char sec[160], pub[160];
    snprintf(sec, sizeof sec, "%s.secret", base_agent);
    snprintf(pub, sizeof pub, "%s.pub", base_srv);
    agent_init(&fx->a, &fx->c, fx->spool, 1, 1);
    fx->a.o.insecure = false;
    fx->a.o.curve_secret = sec;
    fx->a.o.server_key = pub;
    assert_int_equal(pthread_create(&fx->a.tid, NULL, agent_main, &fx->a), 0);
    /* nothing else but a CURVE client could have reached this ROUTER */
    handshake(fx, 1000);
    qf_job_spec spec = noop_spec();
    run_job(fx, 9, 1, &spec);
    send_ack(&fx->c, 9, 1);
    qf_msg m;
    expect(&fx->c, QF_MSG_BYE, &m);
    qf_msg_clear(&m);
    assert_int_equal(agent_join(&fx->a), 0);
    unlink(sec);
    unlink(pub);
    snprintf(sec, sizeof sec, "%s.secret", base_srv);
    snprintf(pub, sizeof pub, "%s.pub", base_agent);
    unlink(sec);
    unlink(pub);
}

/* `qfleet agent` refuses bad command lines with exit status 2 before touching the network. */
static void test_command_line(void **state)
{
    (void)state;
    char a0[] = "agent", conn[] = "--connect", bad_ep[] = "localhost:7420",
         good_ep[] = "tcp://127.0.0.1:7420", slots[] = "--slots", zero[] = "0",
         name[] = "--name", bad_name[] = "a b", extra[] = "stray";
    char *no_connect[] = { a0, NULL };
    char *not_endpoint[] = { a0, conn, bad_ep, NULL };
    char *zero_slots[] = { a0, conn, good_ep, slots, zero, NULL };
    char *spaced_name[] = { a0, conn, good_ep, name, bad_name, NULL };
    char *stray[] = { a0, conn, good_ep, extra, NULL };
    assert_int_equal(qf_agent_main(1, no_connect), QF_EXIT_USAGE);
    assert_int_equal(qf_agent_main(3, not_endpoint), QF_EXIT_USAGE);
    assert_int_equal(qf_agent_main(5, zero_slots), QF_EXIT_USAGE);
    assert_int_equal(qf_agent_main(5, spaced_name), QF_EXIT_USAGE);
    assert_int_equal(qf_agent_main(4, stray), QF_EXIT_USAGE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_job_round_trip, setup, teardown),
        cmocka_unit_test_setup_teardown(test_result_kept_until_acked, setup, teardown),
        cmocka_unit_test_setup_teardown(test_garbage_does_not_kill_the_agent, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rejects, setup, teardown),
        cmocka_unit_test_setup_teardown(test_result_over_frame_limit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_hello_again, setup, teardown),
        cmocka_unit_test_setup_teardown(test_curve_and_insecure, setup, teardown),
        cmocka_unit_test(test_command_line),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
