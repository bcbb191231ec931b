/* test_fleet.c - the fleet end to end: real qfleet processes on loopback.
 *
 * Each test starts a real `qfleet coordinator` (tcp://127.0.0.1 with an ephemeral port, its
 * endpoint read from --endpoint-file) and real `qfleet agent` processes, submits a suite with
 * `qfleet submit`, and checks the SQLite store directly: every expected job done, exactly one
 * result each, nothing lost or duplicated. Faults are real too: kill -9 of an agent mid-job and
 * of the coordinator mid-suite (restarted on the same port and database), malformed frames sent
 * from a raw ZeroMQ socket, and a job that overruns its time limit. Every wait is bounded; every
 * process is killed and reaped at the end of its test, and the temporary folder removed.
 * The binary comes from QF_BINARY (set by CMake); heartbeats are 200 ms to keep it quick.
 * A fleet runs either on plain TCP (--insecure everywhere) or with CURVE: `qfleet keygen` makes
 * a key pair for the coordinator, the client and each agent, and every agent's and the client's
 * .pub is enrolled in the coordinator's --allow folder, as docs/security.md tells an operator.
 * The coordinator's limits (--max-agents, --max-run-jobs, --error-budget, --max-result) are
 * met by raw DEALER sockets speaking through the wire codec.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <sqlite3.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "qf_curve.h"
#include "qf_rng.h"
#include "qf_wire.h"

#define MAX_PROCS 16
#define HB_MS "200"

typedef struct fleet {
    char  dir[256];
    char  db[300];
    char  endpoint[128];
    pid_t coord;
    pid_t agents[MAX_PROCS];
    char  agent_names[MAX_PROCS][32];
    int   n_agents;
    bool  curve;               /* CURVE keys (else --insecure) */
    char  keys[300];           /* DIR/keys: NAME.secret, NAME.pub */
    char  allow[300];          /* DIR/allow: the enrolled .pub files */
    char  coord_secret[340], coord_pub[340], client_secret[340];
    const char *coord_extra[16]; /* more coordinator options, NULL-terminated */
} fleet;

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Starts argv[] with stdout/stderr appended to DIR/log. */
static pid_t spawn(const fleet *f, char *const argv[])
{
    char log[320];
    snprintf(log, sizeof log, "%s/log", f->dir);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        int fd = open(log, O_WRONLY | O_CREAT | O_APPEND, 0644);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execv(argv[0], argv);
        _exit(127);
    }
    return pid;
}

/* Runs argv[] to completion (bounded by timeout_s); its exit status, or -1 if killed. */
static int run_cmd(const fleet *f, char *const argv[], double timeout_s)
{
    pid_t pid = spawn(f, argv);
    double end = mono_s() + timeout_s;
    int st;
    while (waitpid(pid, &st, WNOHANG) == 0) {
        if (mono_s() > end) {
            kill(pid, SIGKILL);
            waitpid(pid, &st, 0);
            return -1;
        }
        usleep(20000);
    }
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static void stop_pid(pid_t *pid, int sig)
{
    if (*pid > 0) {
        kill(*pid, sig);
        waitpid(*pid, NULL, 0);
    }
    *pid = 0;
}

/* `qfleet keygen DIR/keys/NAME`; enrolled: its .pub copied into DIR/allow. */
static void make_key(const fleet *f, const char *name, bool enrolled)
{
    char base[340];
    snprintf(base, sizeof base, "%s/%s", f->keys, name);
    char *argv[] = { QF_BINARY, "keygen", base, NULL };
    assert_int_equal(run_cmd(f, argv, 30.0), 0);
    if (enrolled) {
        char from[360], to[360];
        snprintf(from, sizeof from, "%s.pub", base);
        snprintf(to, sizeof to, "%s/%s.pub", f->allow, name);
        assert_int_equal(link(from, to), 0);
    }
}

/* Appends the security options of this fleet (CURVE with key NAME, or --insecure). */
static int add_security(const fleet *f, char **argv, int n, const char *key_name, char *buf,
                        size_t len)
{
    if (!f->curve) {
        argv[n++] = "--insecure";
        return n;
    }
    snprintf(buf, len, "%s/%s.secret", f->keys, key_name);
    argv[n++] = "--curve-secret";
    argv[n++] = buf;
    argv[n++] = "--server-key";
    argv[n++] = (char *)f->coord_pub;
    return n;
}

static void start_coordinator(fleet *f, const char *bind)
{
    char ep_file[320];
    snprintf(ep_file, sizeof ep_file, "%s/endpoint", f->dir);
    unlink(ep_file);
    char *argv[40] = { QF_BINARY, "coordinator", "--bind", (char *)bind, "--db", f->db,
                       "--heartbeat-ms", HB_MS, "--max-frame", "64K", "--endpoint-file",
                       ep_file };
    int n = 12;
    if (f->curve) {
        argv[n++] = "--curve-secret";
        argv[n++] = f->coord_secret;
        argv[n++] = "--allow";
        argv[n++] = f->allow;
    } else {
        argv[n++] = "--insecure";
    }
    for (int i = 0; f->coord_extra[i]; i++)
        argv[n++] = (char *)f->coord_extra[i];
    argv[n] = NULL;
    f->coord = spawn(f, argv);
    double end = mono_s() + 10.0;
    FILE *fp = NULL;
    while (!(fp = fopen(ep_file, "r"))) {
        if (mono_s() > end)
            fail_msg("the coordinator did not write %s within 10 s (see %s/log)", ep_file, f->dir);
        usleep(10000);
    }
    assert_non_null(fgets(f->endpoint, sizeof f->endpoint, fp));
    fclose(fp);
    f->endpoint[strcspn(f->endpoint, "\n")] = 0;
}

static void start_agent(fleet *f, const char *name, const char *slots)
{
    assert_true(f->n_agents < MAX_PROCS);
    int i = f->n_agents++;
    char spool[320];
    snprintf(f->agent_names[i], sizeof f->agent_names[i], "%s", name);
    /* one spool per process (a spool is locked by its agent), even for a repeated name */
    snprintf(spool, sizeof spool, "%s/spool-%s-%d", f->dir, name, i);
    char *argv[20] = { QF_BINARY, "agent", "--connect", f->endpoint, "--name", (char *)name,
                       "--slots", (char *)slots, "--heartbeat-ms", HB_MS, "--spool", spool };
    char key[360];
    struct stat st;
    snprintf(key, sizeof key, "%s/%s.secret", f->keys, name);
    if (f->curve && stat(key, &st) != 0)
        make_key(f, name, true);     /* a new machine: enrolled as docs/security.md says */
    argv[add_security(f, argv, 12, name, key, sizeof key)] = NULL;
    f->agents[i] = spawn(f, argv);
}

/* The fleet's folder and, with CURVE, the coordinator's and the client's keys. */
static void fleet_init(fleet *f, bool curve)
{
    memset(f, 0, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/qf-fleet-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->db, sizeof f->db, "%s/q.db", f->dir);
    f->curve = curve;
    if (!curve)
        return;
    snprintf(f->keys, sizeof f->keys, "%s/keys", f->dir);
    snprintf(f->allow, sizeof f->allow, "%s/allow", f->dir);
    assert_int_equal(mkdir(f->keys, 0700), 0);
    assert_int_equal(mkdir(f->allow, 0755), 0);
    make_key(f, "coordinator", false);
    make_key(f, "client", true);
    snprintf(f->coord_secret, sizeof f->coord_secret, "%s/coordinator.secret", f->keys);
    snprintf(f->coord_pub, sizeof f->coord_pub, "%s/coordinator.pub", f->keys);
    snprintf(f->client_secret, sizeof f->client_secret, "%s/client.secret", f->keys);
}

static void fleet_start(fleet *f, int n_agents)
{
    start_coordinator(f, "tcp://127.0.0.1:*");
    for (int i = 0; i < n_agents; i++) {
        char name[32];
        snprintf(name, sizeof name, "agent-%d", i);
        start_agent(f, name, "1");
    }
}

static void fleet_up(fleet *f, int n_agents)
{
    fleet_init(f, false);
    fleet_start(f, n_agents);
}

static void fleet_down(fleet *f)
{
    for (int i = 0; i < f->n_agents; i++)
        stop_pid(&f->agents[i], SIGKILL);
    stop_pid(&f->coord, SIGKILL);
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    if (getenv("QF_KEEP_TEST_DIR") == NULL && system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", f->dir);
}

static void write_suite(const fleet *f, const char *name, const char *body, char *path,
                        size_t len)
{
    snprintf(path, len, "%s/%s.yaml", f->dir, name);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fprintf(fp, "name: %s\n%s", name, body);
    fclose(fp);
}

/* --- looking into the store ---------------------------------------------------------------- */

static sqlite3 *db_open(const fleet *f)
{
    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open_v2(f->db, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    sqlite3_busy_timeout(db, 5000);
    return db;
}

static int64_t db_int(const fleet *f, const char *sql)
{
    sqlite3 *db = db_open(f);
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    int64_t v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* Waits (bounded) until the store has no queued or leased job. */
static void wait_idle(const fleet *f, double timeout_s)
{
    double end = mono_s() + timeout_s;
    while (db_int(f, "SELECT count(*) FROM jobs WHERE state IN ('queued','leased')") != 0) {
        if (mono_s() > end)
            fail_msg("jobs still pending after %.0f s (see %s/log)", timeout_s, f->dir);
        usleep(50000);
    }
}

/* The fleet's promise: every job done, exactly one result per job, samples as asked. */
static void assert_all_done_once(const fleet *f, int64_t expected_jobs)
{
    assert_int_equal(db_int(f, "SELECT count(*) FROM jobs"), expected_jobs);
    assert_int_equal(db_int(f, "SELECT count(*) FROM jobs WHERE state = 'done'"), expected_jobs);
    assert_int_equal(db_int(f, "SELECT count(*) FROM results"), expected_jobs);
    assert_int_equal(db_int(f, "SELECT count(DISTINCT job_id) FROM results"), expected_jobs);
    assert_int_equal(db_int(f, "SELECT count(*) FROM results r JOIN jobs j ON j.id = r.job_id "
                               "WHERE r.status != 'ok' OR r.attempt != j.attempt"), 0);
}

/* `qfleet submit` as the fleet's client (key "client" with CURVE). */
static int submit_as(const fleet *f, const char *suite_path, int wait, const char *key)
{
    char *argv[20] = { QF_BINARY, "submit", (char *)suite_path, "--to", (char *)f->endpoint };
    int n = 5;
    if (wait) {
        argv[n++] = "--wait";
        argv[n++] = "--timeout";
        argv[n++] = "120";
    }
    char buf[360];
    argv[add_security(f, argv, n, key, buf, sizeof buf)] = NULL;
    return run_cmd(f, argv, 150.0);
}

static int submit(const fleet *f, const char *suite_path, int wait)
{
    return submit_as(f, suite_path, wait, "client");
}

static const char k_small_suite[] =
    "baseline: f16\n"
    "repetitions: 2\n"
    "warmup: 0\n"
    "datasets: [synth:student-t]\n"
    "formats: [f16, q8_0, q4_0, q4_K, int4_g32]\n"
    "ops: [quantize, matvec]\n"
    "shapes: [[64, 512]]\n";

/* --- tests --------------------------------------------------------------------------------- */

/* With CURVE: every key enrolled, the whole suite runs as on plain TCP. */
static void test_suite_completes_on_three_agents(void **state)
{
    (void)state;
    fleet f;
    fleet_init(&f, true);
    fleet_start(&f, 3);
    char suite[400];
    write_suite(&f, "small", k_small_suite, suite, sizeof suite);
    assert_int_equal(submit(&f, suite, 1), 0);
    assert_all_done_once(&f, 10);
    /* the work was spread: more than one agent produced results */
    assert_true(db_int(&f, "SELECT count(DISTINCT agent_id) FROM results") >= 2);
    assert_int_equal(db_int(&f, "SELECT count(*) FROM results WHERE n_samples != 2"), 0);
    assert_int_equal(db_int(&f, "SELECT count(*) FROM agents"), 3);
    fleet_down(&f);
}

/* Jobs slow enough (reference q2_K quantization of 1024x4096, ~0.3 s a repetition) that a
 * kill lands mid-job. */
static const char k_slow_suite[] =
    "repetitions: 3\n"
    "warmup: 0\n"
    "max_attempts: 3\n"
    "datasets: [synth:gaussian]\n"
    "formats: [q2_K, q3_K, q4_K, q5_K]\n"
    "ops: [quantize]\n"
    "shapes: [[1024, 4096]]\n";

static void test_agent_killed_mid_job(void **state)
{
    (void)state;
    fleet f;
    fleet_up(&f, 2);
    char suite[400];
    write_suite(&f, "slow", k_slow_suite, suite, sizeof suite);
    assert_int_equal(submit(&f, suite, 0), 0);
    /* wait for agent-0 to hold a lease, then kill it without warning */
    double end = mono_s() + 30.0;
    while (db_int(&f, "SELECT count(*) FROM jobs j JOIN agents a ON a.id = j.agent_id "
                      "WHERE j.state = 'leased' AND a.name = 'agent-0'") < 1) {
        if (mono_s() > end)
            fail_msg("agent-0 never got a job (see %s/log)", f.dir);
        usleep(20000);
    }
    stop_pid(&f.agents[0], SIGKILL);
    wait_idle(&f, 90.0);
    assert_all_done_once(&f, 4);
    /* the killed agent's job was retried and finished elsewhere */
    assert_true(db_int(&f, "SELECT count(*) FROM jobs WHERE attempt >= 2") >= 1);
    assert_int_equal(db_int(&f, "SELECT count(*) FROM results r JOIN agents a "
                                "ON a.id = r.agent_id WHERE a.name = 'agent-0'"), 0);
    fleet_down(&f);
}

static void test_coordinator_killed_and_restarted(void **state)
{
    (void)state;
    fleet f;
    fleet_init(&f, true);      /* agents redo the CURVE handshake with the new process */
    fleet_start(&f, 2);
    char suite[400];
    write_suite(&f, "slow", k_slow_suite, suite, sizeof suite);
    assert_int_equal(submit(&f, suite, 0), 0);
    double end = mono_s() + 60.0;
    while (db_int(&f, "SELECT count(*) FROM results") < 1) {
        if (mono_s() > end)
            fail_msg("no result within 60 s (see %s/log)", f.dir);
        usleep(20000);
    }
    /* kill -9 mid-suite, then restart on the same endpoint and database */
    char endpoint[128];
    snprintf(endpoint, sizeof endpoint, "%s", f.endpoint);
    stop_pid(&f.coord, SIGKILL);
    usleep(300000);
    start_coordinator(&f, endpoint);
    assert_string_equal(f.endpoint, endpoint);
    wait_idle(&f, 120.0);
    assert_all_done_once(&f, 4);
    fleet_down(&f);
}

/* Sends raw bytes from a DEALER and expects an ERROR back. */
static void expect_error_reply(void *sock, const void *bytes, size_t len, const char *what)
{
    assert_true(zmq_send(sock, bytes, len, 0) >= 0);
    zmq_pollitem_t it = { .socket = sock, .events = ZMQ_POLLIN };
    if (zmq_poll(&it, 1, 5000) != 1)
        fail_msg("%s: no answer within 5 s", what);
    zmq_msg_t m;
    zmq_msg_init(&m);
    assert_true(zmq_msg_recv(&m, sock, 0) >= 0);
    qf_wire_limits lim = qf_wire_default_limits();
    qf_msg msg;
    char why[300];
    int err = qf_wire_decode(zmq_msg_data(&m), zmq_msg_size(&m), &lim, &msg, why, sizeof why);
    zmq_msg_close(&m);
    if (err)
        fail_msg("%s: the answer does not decode: %s", what, why);
    if (msg.type != QF_MSG_ERROR)
        fail_msg("%s: answer is %s, expected ERROR", what, qf_msg_type_name(msg.type));
    assert_true(strlen(msg.u.error.reason) > 0);
    qf_msg_clear(&msg);
}

static void test_malformed_frames_get_errors(void **state)
{
    (void)state;
    fleet f;
    fleet_up(&f, 1);
    void *ctx = zmq_ctx_new();
    void *sock = zmq_socket(ctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
    assert_int_equal(zmq_connect(sock, f.endpoint), 0);

    /* a valid frame to cut and corrupt: a STATUS request */
    qf_msg st = { .type = QF_MSG_STATUS, .id = 7 };
    void *good;
    size_t good_len;
    assert_int_equal(qf_wire_encode(&st, &good, &good_len), 0);
    unsigned char buf[64];

    expect_error_reply(sock, "\xc1\xc1\xc1 not msgpack", 15, "random bytes");
    /* [2, STATUS, 7, {}]: wrong version */
    expect_error_reply(sock, "\x94\x02\x0d\x07\x80", 5, "wrong version");
    /* [1, 99, 7, {}]: unknown type */
    expect_error_reply(sock, "\x94\x01\x63\x07\x80", 5, "unknown type");
    /* [1, STATUS, 7, {"run_id": "x"}]: wrong field type */
    expect_error_reply(sock, "\x94\x01\x0d\x07\x81\xa6run_id\xa1x", 14, "wrong field type");
    /* body is not a map */
    expect_error_reply(sock, "\x94\x01\x0d\x07\x01", 5, "body not a map");
    /* truncated msgpack */
    memcpy(buf, good, good_len);
    expect_error_reply(sock, buf, good_len - 1, "truncated");
    /* oversized: the coordinator runs with --max-frame 64K */
    size_t big_len = 100 * 1024;
    unsigned char *big = calloc(1, big_len);
    assert_non_null(big);
    expect_error_reply(sock, big, big_len, "oversized");
    free(big);
    free(good);

    /* ten bad frames and this peer is ignored; the coordinator still serves the others */
    char suite[400];
    write_suite(&f, "small", k_small_suite, suite, sizeof suite);
    assert_int_equal(submit(&f, suite, 1), 0);
    assert_all_done_once(&f, 10);
    zmq_close(sock);
    zmq_ctx_term(ctx);
    fleet_down(&f);
}

static void test_hanging_job_killed_agent_keeps_serving(void **state)
{
    (void)state;
    fleet f;
    fleet_up(&f, 1);
    char slow[400], small[400];
    /* ~1 s of work with a 100 ms limit, one attempt: killed, reported, failed */
    write_suite(&f, "overrun", "timeout: 100ms\nmax_attempts: 1\nrepetitions: 3\n"
                "datasets: [synth:gaussian]\nformats: [q2_K]\nops: [quantize]\n"
                "shapes: [[1024, 4096]]\n", slow, sizeof slow);
    write_suite(&f, "small", k_small_suite, small, sizeof small);
    assert_int_equal(submit(&f, slow, 1), 1);       /* --wait exits 1: a job failed */
    assert_int_equal(db_int(&f, "SELECT count(*) FROM jobs WHERE state = 'failed'"), 1);
    assert_int_equal(db_int(&f, "SELECT count(*) FROM attempts WHERE status = 'timeout'"), 1);
    assert_int_equal(submit(&f, small, 1), 0);      /* and the same agent goes on */
    assert_int_equal(db_int(&f, "SELECT count(*) FROM jobs WHERE state = 'done'"), 10);
    fleet_down(&f);
}

/* Two live agents with one name would take each other's place on every HELLO: the second is
 * refused and exits with a message, the first goes on serving. */
static void test_second_agent_with_same_name_refused(void **state)
{
    (void)state;
    fleet f;
    fleet_up(&f, 1);                                 /* agent-0 */
    start_agent(&f, "agent-0", "1");                 /* the same name again */
    /* whichever says HELLO second is refused (the two start concurrently) */
    double end = mono_s() + 15.0;
    int st = 0, gone = -1;
    while (gone < 0) {
        for (int i = 0; i < 2 && gone < 0; i++)
            if (waitpid(f.agents[i], &st, WNOHANG) == f.agents[i])
                gone = i;
        if (gone < 0 && mono_s() > end)
            fail_msg("neither agent-0 was refused within 15 s (see %s/log)", f.dir);
        usleep(20000);
    }
    f.agents[gone] = 0;
    assert_true(WIFEXITED(st) && WEXITSTATUS(st) != 0);
    char suite[400];
    write_suite(&f, "small", k_small_suite, suite, sizeof suite);
    assert_int_equal(submit(&f, suite, 1), 0);
    assert_all_done_once(&f, 10);
    assert_int_equal(db_int(&f, "SELECT count(*) FROM agents"), 1);
    fleet_down(&f);
}

static char *read_log(const fleet *f)
{
    char path[320];
    snprintf(path, sizeof path, "%s/log", f->dir);
    FILE *fp = fopen(path, "r");
    assert_non_null(fp);
    static char buf[1 << 20];
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[n] = 0;
    return buf;
}

/* An agent and a client whose keys are not enrolled: the agent never registers (the refusal is
 * logged with its key's fingerprint), the client's submit fails at once saying why, nothing of
 * theirs is stored, and the enrolled fleet works meanwhile. Enrolling the agent's key then lets
 * it in without restarting anything. */
static void test_unknown_keys_refused(void **state)
{
    (void)state;
    fleet f;
    fleet_init(&f, true);
    fleet_start(&f, 1);                              /* agent-0, enrolled */
    make_key(&f, "intruder", false);
    make_key(&f, "stranger", false);
    start_agent(&f, "intruder", "1");
    char suite[400];
    write_suite(&f, "small", k_small_suite, suite, sizeof suite);
    double t0 = mono_s();
    assert_int_equal(submit_as(&f, suite, 0, "stranger"), 1);
    double took = mono_s() - t0;
    if (took > 8.0)
        fail_msg("a refused client took %.1f s to give up; the handshake monitor should tell "
                 "it at once", took);
    assert_int_equal(submit(&f, suite, 1), 0);
    assert_all_done_once(&f, 10);
    assert_int_equal(db_int(&f, "SELECT count(*) FROM runs"), 1);
    assert_int_equal(db_int(&f, "SELECT count(*) FROM agents WHERE name = 'intruder'"), 0);

    char pub[360], z85[QF_CURVE_Z85_LEN + 1], fp[QF_CURVE_FP_SIZE];
    snprintf(pub, sizeof pub, "%s/intruder.pub", f.keys);
    assert_int_equal(qf_curve_read_public(pub, z85), 0);
    assert_int_equal(qf_curve_fingerprint_z85(z85, fp), 0);
    const char *log = read_log(&f);
    if (!strstr(log, fp))
        fail_msg("the intruder's key %s is not in the coordinator's log (see %s/log)", fp, f.dir);
    if (!strstr(log, "refused this machine's CURVE key"))
        fail_msg("neither the agent nor the client said why it was refused (see %s/log)", f.dir);

    /* enrolled while everything runs: the waiting agent gets in */
    char to[360];
    snprintf(to, sizeof to, "%s/intruder.pub", f.allow);
    assert_int_equal(link(pub, to), 0);
    double end = mono_s() + 20.0;
    while (db_int(&f, "SELECT count(*) FROM agents WHERE name = 'intruder'") != 1) {
        if (mono_s() > end)
            fail_msg("the newly enrolled agent did not register within 20 s (see %s/log)", f.dir);
        usleep(50000);
    }
    fleet_down(&f);
}

/* A raw DEALER speaking the protocol by hand (plain TCP). */
static void *raw_peer(void *ctx, const fleet *f)
{
    void *sock = zmq_socket(ctx, ZMQ_DEALER);
    int zero = 0;
    zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
    assert_int_equal(zmq_connect(sock, f->endpoint), 0);
    return sock;
}

static void raw_send(void *sock, qf_msg *m)
{
    void *buf;
    size_t len;
    assert_int_equal(qf_wire_encode(m, &buf, &len), 0);
    assert_int_equal(zmq_send(sock, buf, len, 0), (int)len);
    free(buf);
}

/* The next message within ms (skipping HEARTBEATs), false if none. */
static bool raw_recv(void *sock, qf_msg *m, int ms)
{
    double end = mono_s() + ms / 1000.0;
    for (;;) {
        long left = (long)((end - mono_s()) * 1000.0);
        zmq_pollitem_t it = { .socket = sock, .events = ZMQ_POLLIN };
        if (left <= 0 || zmq_poll(&it, 1, left) != 1)
            return false;
        zmq_msg_t fr;
        zmq_msg_init(&fr);
        assert_true(zmq_msg_recv(&fr, sock, 0) >= 0);
        qf_wire_limits lim = qf_wire_default_limits();
        char why[300];
        int err = qf_wire_decode(zmq_msg_data(&fr), zmq_msg_size(&fr), &lim, m, why, sizeof why);
        zmq_msg_close(&fr);
        if (err)
            fail_msg("an answer that does not decode: %s", why);
        if (m->type != QF_MSG_HEARTBEAT)
            return true;
        qf_msg_clear(m);
    }
}

static void raw_hello(void *sock, const char *name)
{
    qf_msg m = { .type = QF_MSG_HELLO, .id = 1 };
    snprintf(m.u.hello.name, sizeof m.u.hello.name, "%s", name);
    m.u.hello.instance = 5;
    m.u.hello.slots = 1;
    snprintf(m.u.hello.isa, sizeof m.u.hello.isa, "avx2");
    m.u.hello.fingerprint = "{}";
    raw_send(sock, &m);
}

/* Each of the coordinator's limits, met from outside: a second agent past --max-agents, a run
 * past --max-run-jobs, a RESULT past --max-result (kept as a failed attempt and ACKed), and a
 * peer past its --error-budget (ignored for --ignore-s, then answered again). */
static void test_limits(void **state)
{
    (void)state;
    fleet f;
    fleet_init(&f, false);
    static const char *extra[] = { "--heartbeat-ms", "5000", "--max-agents", "1",
                                   "--max-run-jobs", "4", "--error-budget", "3", "--ignore-s",
                                   "1", "--max-result", "8K", NULL };
    memcpy(f.coord_extra, extra, sizeof extra);
    fleet_start(&f, 0);
    void *ctx = zmq_ctx_new();
    qf_msg m;

    void *a1 = raw_peer(ctx, &f), *a2 = raw_peer(ctx, &f);
    raw_hello(a1, "raw-1");
    assert_true(raw_recv(a1, &m, 5000));
    assert_int_equal(m.type, QF_MSG_WELCOME);
    assert_int_equal(m.u.welcome.max_frame, 8192);       /* --max-result, told to the agent */
    qf_msg_clear(&m);
    raw_hello(a2, "raw-2");
    assert_true(raw_recv(a2, &m, 5000));
    assert_int_equal(m.type, QF_MSG_ERROR);
    assert_string_equal(m.u.error.code, "QF_EBUSY");
    qf_msg_clear(&m);
    assert_int_equal(db_int(&f, "SELECT count(*) FROM agents"), 1);

    char big[400], two[400];
    write_suite(&f, "big", k_small_suite, big, sizeof big);          /* 10 jobs */
    write_suite(&f, "two", "datasets: [synth:gaussian]\nformats: [q8_0, q4_0]\n"
                "ops: [quantize]\nshapes: [[32, 256]]\nmax_attempts: 1\n", two, sizeof two);
    assert_int_equal(submit(&f, big, 0), 1);
    assert_int_equal(db_int(&f, "SELECT count(*) FROM runs"), 0);
    assert_true(strstr(read_log(&f), "QF_ETOOBIG") != NULL);
    assert_int_equal(submit(&f, two, 0), 0);

    /* the job comes to raw-1, whose RESULT is too big: ACKed, recorded as a failure */
    assert_true(raw_recv(a1, &m, 5000));
    assert_int_equal(m.type, QF_MSG_JOB);
    uint64_t job_id = m.u.job.job_id;
    uint32_t attempt = m.u.job.attempt;
    qf_msg_clear(&m);
    enum { N = 2000 };                                      /* ~18 KB of samples */
    double *samples = calloc(N, sizeof *samples);
    assert_non_null(samples);
    for (int i = 0; i < N; i++)
        samples[i] = 0.001 * (i + 1);
    qf_msg r = { .type = QF_MSG_RESULT, .id = 9 };
    r.u.result.job_id = job_id;
    r.u.result.attempt = attempt;
    r.u.result.result.status = QF_JOB_OK;
    r.u.result.result.samples = samples;
    r.u.result.result.n_samples = N;
    raw_send(a1, &r);
    free(samples);
    do {
        assert_true(raw_recv(a1, &m, 5000));
        bool ack = m.type == QF_MSG_ACK;
        if (ack)
            assert_int_equal(m.u.jobref.job_id, job_id);
        qf_msg_clear(&m);
        if (ack)
            break;
    } while (true);
    assert_int_equal(db_int(&f, "SELECT count(*) FROM results"), 0);
    assert_int_equal(db_int(&f, "SELECT count(*) FROM attempts WHERE status = 'failed' AND "
                                "error LIKE '%--max-result%'"), 1);

    /* three bad frames spend the budget: answered, then silence, then answered again */
    void *b = raw_peer(ctx, &f);
    for (int i = 0; i < 3; i++)
        expect_error_reply(b, "\xc1 junk", 6, "junk within the budget");
    qf_msg st = { .type = QF_MSG_STATUS, .id = 3 };
    raw_send(b, &st);
    if (raw_recv(b, &m, 300))
        fail_msg("an ignored peer got %s", qf_msg_type_name(m.type));
    usleep(1200 * 1000);
    raw_send(b, &st);
    assert_true(raw_recv(b, &m, 5000));
    assert_int_equal(m.type, QF_MSG_REPLY);
    qf_msg_clear(&m);
    const char *log = read_log(&f);
    assert_non_null(strstr(log, "ignoring it for 1 s"));

    zmq_close(a1);
    zmq_close(a2);
    zmq_close(b);
    zmq_ctx_term(ctx);
    fleet_down(&f);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_suite_completes_on_three_agents),
        cmocka_unit_test(test_agent_killed_mid_job),
        cmocka_unit_test(test_coordinator_killed_and_restarted),
        cmocka_unit_test(test_malformed_frames_get_errors),
        cmocka_unit_test(test_hanging_job_killed_agent_keeps_serving),
        cmocka_unit_test(test_second_agent_with_same_name_refused),
        cmocka_unit_test(test_unknown_keys_refused),
        cmocka_unit_test(test_limits),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
