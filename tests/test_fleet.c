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

static void start_coordinator(fleet *f, const char *bind)
{
    char ep_file[320];
    snprintf(ep_file, sizeof ep_file, "%s/endpoint", f->dir);
    unlink(ep_file);
    char *argv[] = { QF_BINARY, "coordinator", "--bind", (char *)bind, "--db", f->db,
                     "--heartbeat-ms", HB_MS, "--max-frame", "64K", "--endpoint-file", ep_file,
                     NULL };
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
    char *argv[] = { QF_BINARY, "agent", "--connect", f->endpoint, "--name", (char *)name,
                     "--slots", (char *)slots, "--heartbeat-ms", HB_MS, "--spool", spool, NULL };
    f->agents[i] = spawn(f, argv);
}

static void fleet_up(fleet *f, int n_agents)
{
    memset(f, 0, sizeof *f);
    snprintf(f->dir, sizeof f->dir, "/tmp/qf-fleet-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->db, sizeof f->db, "%s/q.db", f->dir);
    start_coordinator(f, "tcp://127.0.0.1:*");
    for (int i = 0; i < n_agents; i++) {
        char name[32];
        snprintf(name, sizeof name, "agent-%d", i);
        start_agent(f, name, "1");
    }
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

static int submit(const fleet *f, const char *suite_path, int wait)
{
    char *argv_wait[] = { QF_BINARY, "submit", (char *)suite_path, "--to", (char *)f->endpoint,
                          "--wait", "--timeout", "120", NULL };
    char *argv_nowait[] = { QF_BINARY, "submit", (char *)suite_path, "--to",
                            (char *)f->endpoint, NULL };
    return run_cmd(f, wait ? argv_wait : argv_nowait, 150.0);
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

static void test_suite_completes_on_three_agents(void **state)
{
    (void)state;
    fleet f;
    fleet_up(&f, 3);
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
    fleet_up(&f, 2);
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
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
