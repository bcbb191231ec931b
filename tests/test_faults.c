/* test_faults.c - the fleet under faults: real qfleet processes on loopback, killed at random.
 *
 * A real coordinator and four agents run a suite while the test kills agents with SIGKILL
 * (10 by default) and the coordinator with SIGKILL (3 by default), in a random order spread
 * over the suite's progress; each killed agent comes back under its name and spool once the
 * coordinator can have noticed its death (3 heartbeat intervals), the coordinator at once on
 * the same endpoint and database. Afterwards the database must hold exactly the expanded
 * suite: every job of it once, each done with exactly one ok result of its live attempt,
 * nothing lost, nothing duplicated, nothing extra. A second test freezes an agent and its
 * job's process (SIGSTOP) past the job's lease, lets another agent finish the retried job,
 * thaws the first (SIGCONT) and checks that its late result is acknowledged and ignored while
 * the retried result stands.
 *
 * Counts and seed come from the environment: QF_FAULT_AGENT_KILLS, QF_FAULT_COORD_KILLS
 * (`make soak` sets 100 and 20), QF_FAULT_SEED (printed on every run, so a failure can be
 * replayed). Heartbeats are 200 ms; every wait is bounded; every process is killed and reaped
 * and the temporary folder removed (QF_KEEP_TEST_DIR=1 keeps it, with one log per process).
 * The binary is QF_BINARY (set by CMake); plain tcp:// gets --insecure where the binary's
 * --help lists that flag.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <spawn.h>
#include <sqlite3.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "qf_job.h"
#include "qf_rng.h"
#include "qf_suite.h"
#include "qf_time.h"

#define MAX_AGENTS 8
#define HB_MS      200
#define HB_ARG     "200"

typedef struct agent_proc {
    pid_t  pid;               /* 0 while down */
    double restart_at;        /* when down: monotonic time to start it again */
    int    starts;
} agent_proc;

typedef struct fleet {
    char       dir[256];
    char       db[300];
    char       endpoint[128];
    pid_t      coord;
    agent_proc agents[MAX_AGENTS];
    int        n_agents;
    sqlite3   *db_conn;           /* read-only, opened at the first query, kept across restarts
                                     of the coordinator (the file stays; WAL lets us read) */
} fleet;

/* Which subcommands want --insecure for plain tcp:// (decided once, from their --help). */
static bool g_insecure_coord, g_insecure_agent, g_insecure_submit;

/* The fleet of the running test: its teardown stops it even when an assertion failed. */
static fleet g_fleet;
static bool  g_fleet_up;

/* --- processes ----------------------------------------------------------------------------- */

/* Starts argv[] in its own process group (so a job's child can be told apart from the test's
 * own), stdout and stderr appended to DIR/LOG. */
static pid_t spawn(const fleet *f, const char *log, char *const argv[])
{
    char path[400];
    snprintf(path, sizeof path, "%s/%s", f->dir, log);
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    assert_int_equal(posix_spawn_file_actions_init(&fa), 0);
    assert_int_equal(posix_spawn_file_actions_addopen(&fa, 1, path, O_WRONLY | O_CREAT | O_APPEND,
                                                      0644), 0);
    assert_int_equal(posix_spawn_file_actions_adddup2(&fa, 1, 2), 0);
    assert_int_equal(posix_spawnattr_init(&at), 0);
    assert_int_equal(posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP), 0);
    assert_int_equal(posix_spawnattr_setpgroup(&at, 0), 0);
    pid_t pid;
    int rc = posix_spawn(&pid, argv[0], &fa, &at, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    posix_spawnattr_destroy(&at);
    if (rc != 0)
        fail_msg("cannot start %s: %s", argv[0], strerror(rc));
    return pid;
}

static void reap(pid_t *pid, int sig)
{
    if (*pid > 0) {
        kill(*pid, sig);
        waitpid(*pid, NULL, 0);
    }
    *pid = 0;
}

/* True if `qfleet SUB --help` mentions flag. */
static bool help_lists(const char *sub, const char *flag)
{
    char cmd[512];
    snprintf(cmd, sizeof cmd, "'%s' %s --help 2>&1", QF_BINARY, sub);
    FILE *p = popen(cmd, "r");
    assert_non_null(p);
    char line[512];
    bool found = false;
    while (fgets(line, sizeof line, p))
        found = found || strstr(line, flag) != NULL;
    pclose(p);
    return found;
}

/* Sends sig to pid and to its children (an agent's job runs in a child of its own group). */
static void signal_tree(pid_t pid, int sig)
{
    kill(pid, sig);
    DIR *d = opendir("/proc");
    assert_non_null(d);
    struct dirent *e;
    while ((e = readdir(d))) {
        char path[300], buf[512];
        if (e->d_name[0] < '1' || e->d_name[0] > '9')
            continue;
        snprintf(path, sizeof path, "/proc/%s/stat", e->d_name);
        FILE *fp = fopen(path, "r");
        if (!fp)
            continue;
        size_t n = fread(buf, 1, sizeof buf - 1, fp);
        fclose(fp);
        buf[n] = '\0';
        /* "pid (comm) state ppid ...": comm may hold spaces, so parse after the last ')' */
        const char *rp = strrchr(buf, ')');
        char state;
        int ppid;
        if (rp && sscanf(rp + 1, " %c %d", &state, &ppid) == 2 && ppid == pid)
            kill((pid_t)atoi(e->d_name), sig);
    }
    closedir(d);
}

/* Starts the coordinator on bind and waits for its endpoint. A restart on a fixed port may
 * find it still held for a moment: then it exits, and is started again (bounded). */
static void start_coordinator(fleet *f, const char *bind)
{
    char ep_file[320];
    snprintf(ep_file, sizeof ep_file, "%s/endpoint", f->dir);
    char *argv[] = { QF_BINARY, "coordinator", "--bind", (char *)bind, "--db", f->db,
                     "--heartbeat-ms", HB_ARG, "--endpoint-file", ep_file,
                     g_insecure_coord ? "--insecure" : NULL, NULL };
    double end = qf_time_mono() + 20.0;
    for (;;) {
        unlink(ep_file);
        f->coord = spawn(f, "coordinator.log", argv);
        int st;
        while (waitpid(f->coord, &st, WNOHANG) == 0) {
            FILE *fp = fopen(ep_file, "r");
            bool got = fp && fgets(f->endpoint, sizeof f->endpoint, fp) &&
                       strchr(f->endpoint, '\n');      /* the whole line is written */
            if (fp)
                fclose(fp);
            if (got) {
                f->endpoint[strcspn(f->endpoint, "\n")] = '\0';
                return;
            }
            if (qf_time_mono() > end)
                fail_msg("the coordinator did not start within 20 s (see %s)", f->dir);
            usleep(10000);
        }
        f->coord = 0;                       /* it exited: the port was still busy */
        if (qf_time_mono() > end)
            fail_msg("the coordinator kept exiting (see %s/coordinator.log)", f->dir);
        usleep(100000);
    }
}

static void start_agent(fleet *f, int i)
{
    char name[32], spool[320], log[64];
    snprintf(name, sizeof name, "agent-%d", i);
    snprintf(spool, sizeof spool, "%s/spool-%d", f->dir, i);   /* the same one at each start */
    snprintf(log, sizeof log, "agent-%d.log", i);
    char *argv[] = { QF_BINARY, "agent", "--connect", f->endpoint, "--name", name, "--slots",
                     "1", "--heartbeat-ms", HB_ARG, "--spool", spool,
                     g_insecure_agent ? "--insecure" : NULL, NULL };
    f->agents[i].pid = spawn(f, log, argv);
    f->agents[i].starts++;
}

static void fleet_up(fleet *f, int n_agents)
{
    memset(f, 0, sizeof *f);
    g_fleet_up = true;
    snprintf(f->dir, sizeof f->dir, "/tmp/qf-faults-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->db, sizeof f->db, "%s/q.db", f->dir);
    start_coordinator(f, "tcp://127.0.0.1:*");
    f->n_agents = n_agents;
    for (int i = 0; i < n_agents; i++)
        start_agent(f, i);
}

static void fleet_down(fleet *f)
{
    g_fleet_up = false;
    for (int i = 0; i < f->n_agents; i++) {
        if (f->agents[i].pid > 0)
            signal_tree(f->agents[i].pid, SIGCONT);
        reap(&f->agents[i].pid, SIGKILL);
    }
    reap(&f->coord, SIGKILL);
    sqlite3_close(f->db_conn);
    f->db_conn = NULL;
    char cmd[400];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    if (getenv("QF_KEEP_TEST_DIR"))
        fprintf(stderr, "test_faults: kept %s\n", f->dir);
    else if (system(cmd) != 0)
        fprintf(stderr, "test_faults: could not remove %s\n", f->dir);
}

static void write_suite(const fleet *f, const char *text, char *path, size_t len)
{
    snprintf(path, len, "%s/suite.yaml", f->dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    assert_int_equal(fclose(fp), 0);
}

/* `qfleet submit` without --wait: the run is stored when it returns 0. */
static void submit(const fleet *f, const char *suite)
{
    char *argv[] = { QF_BINARY, "submit", (char *)suite, "--to", (char *)f->endpoint,
                     g_insecure_submit ? "--insecure" : NULL, NULL };
    pid_t pid = spawn(f, "submit.log", argv);
    double end = qf_time_mono() + 60.0;
    int st;
    while (waitpid(pid, &st, WNOHANG) == 0) {
        if (qf_time_mono() > end) {
            reap(&pid, SIGKILL);
            fail_msg("qfleet submit did not finish within 60 s (see %s)", f->dir);
        }
        usleep(20000);
    }
    if (!WIFEXITED(st) || WEXITSTATUS(st) != 0)
        fail_msg("qfleet submit failed (see %s/submit.log)", f->dir);
}

/* --- the store ----------------------------------------------------------------------------- */

/* A statement on the fleet's read-only connection; each step is its own read transaction. */
static sqlite3_stmt *db_prepare(fleet *f, const char *sql)
{
    if (!f->db_conn) {
        assert_int_equal(sqlite3_open_v2(f->db, &f->db_conn, SQLITE_OPEN_READONLY, NULL),
                         SQLITE_OK);
        sqlite3_busy_timeout(f->db_conn, 5000);
    }
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(f->db_conn, sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(f->db_conn));
    return st;
}

/* The first column of the first row of sql as a double (-1 when there is no row). */
static double db_num(fleet *f, const char *sql)
{
    sqlite3_stmt *st = db_prepare(f, sql);
    double v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_double(st, 0) : -1;
    sqlite3_finalize(st);
    return v;
}

static int64_t db_int(fleet *f, const char *sql)
{
    return (int64_t)db_num(f, sql);
}

static void wait_until(fleet *f, const char *sql, int64_t want, double timeout_s,
                       const char *what)
{
    double end = qf_time_mono() + timeout_s;
    while (db_int(f, sql) < want) {
        if (qf_time_mono() > end)
            fail_msg("%s: not within %.0f s (see %s)", what, timeout_s, f->dir);
        usleep(20000);
    }
}

/* The database against the suite file: the run holds exactly the suite's jobs (by key), each
 * done, each with exactly one ok result, of the job's last attempt, by the agent that held
 * it; no result belongs to anything else. */
static void assert_exactly_the_suite(fleet *f, const char *suite_path)
{
    qf_suite s;
    char why[512];
    if (qf_suite_load(suite_path, &s, why, sizeof why) != 0)
        fail_msg("cannot load %s: %s", suite_path, why);
    int64_t n = (int64_t)s.n_jobs;
    assert_int_equal(db_int(f, "SELECT count(*) FROM runs"), 1);
    assert_int_equal(db_int(f, "SELECT count(*) FROM jobs"), n);
    assert_int_equal(db_int(f, "SELECT count(DISTINCT key) FROM jobs"), n);
    assert_int_equal(db_int(f, "SELECT count(*) FROM jobs WHERE state = 'done'"), n);
    assert_int_equal(db_int(f, "SELECT count(*) FROM results"), n);
    assert_int_equal(db_int(f, "SELECT count(DISTINCT job_id) FROM results"), n);
    assert_int_equal(db_int(f, "SELECT count(*) FROM results r JOIN jobs j ON j.id = r.job_id "
                               "WHERE r.status = 'ok' AND r.attempt = j.attempt "
                               "AND r.key = j.key AND r.agent_id = j.agent_id"), n);

    sqlite3_stmt *st = db_prepare(f, "SELECT count(*) FROM jobs j JOIN results r "
                                     "ON r.job_id = j.id WHERE j.key = ?1");
    for (size_t i = 0; i < s.n_jobs; i++) {
        char key[QF_JOB_KEY_MAX];
        qf_job_key(&s.jobs[i], key);
        sqlite3_bind_text(st, 1, key, -1, SQLITE_TRANSIENT);
        assert_int_equal(sqlite3_step(st), SQLITE_ROW);
        int64_t got = sqlite3_column_int64(st, 0);
        if (got != 1)
            fail_msg("job %zu of the suite (%s) has %" PRId64 " results, expected 1", i, key, got);
        sqlite3_reset(st);
    }
    sqlite3_finalize(st);
    qf_suite_free(&s);
}

static int env_count(const char *name, int dflt)
{
    const char *v = getenv(name);
    return v && *v ? atoi(v) : dflt;
}

/* --- tests --------------------------------------------------------------------------------- */

/* Agents (reborn after each kill) and the coordinator (restarted) killed at random moments. */
static void test_random_kills_lose_and_duplicate_nothing(void **state)
{
    (void)state;
    int agent_kills = env_count("QF_FAULT_AGENT_KILLS", 10);
    int coord_kills = env_count("QF_FAULT_COORD_KILLS", 3);
    uint64_t seed = getenv("QF_FAULT_SEED") ? strtoull(getenv("QF_FAULT_SEED"), NULL, 10)
                                            : (uint64_t)qf_time_real();
    fprintf(stderr, "test_faults: %d agent kills, %d coordinator kills, QF_FAULT_SEED=%" PRIu64
            "\n", agent_kills, coord_kills, seed);
    int n_events = agent_kills + coord_kills;
    assert_true(n_events >= 0 && n_events <= 10000);
    char *events = calloc((size_t)n_events + 1, 1);
    assert_non_null(events);
    qf_rng rng;
    qf_rng_seed(&rng, seed);
    for (int i = 0; i < n_events; i++)
        events[i] = i < agent_kills ? 'a' : 'c';
    for (int i = n_events - 1; i > 0; i--) {             /* Fisher-Yates */
        int j = (int)(qf_rng_u64(&rng) % ((uint64_t)i + 1));
        char t = events[i];
        events[i] = events[j];
        events[j] = t;
    }

    /* 4 formats x S seeds quantize jobs of a few tens of ms, at least 4 jobs per kill. A JOB
     * still in the coordinator's send queue when it is killed is lost with it; the restarted
     * coordinator re-sends the leases of an agent that registers again, and the time limit
     * still bounds the wait if that re-send is lost too. */
    int n_seeds = n_events < 15 ? 15 : n_events;
    size_t cap = 512 + 12 * (size_t)n_seeds;
    char *text = malloc(cap);
    assert_non_null(text);
    size_t len = (size_t)snprintf(text, cap,
             "name: faults\n"
             "repetitions: 2\n"
             "warmup: 0\n"
             "max_attempts: 100\n"
             "timeout: 5s\n"
             "datasets: [synth:gaussian]\n"
             "formats: [q8_0, q4_0, q4_K, int4_g32]\n"
             "ops: [quantize]\n"
             "shapes: [[128, 2048]]\n"
             "seeds: [");
    for (int i = 0; i < n_seeds; i++)
        len += (size_t)snprintf(text + len, cap - len, "%s%d", i ? ", " : "", i + 1);
    snprintf(text + len, cap - len, "]\n");
    int64_t n_jobs = 4 * (int64_t)n_seeds;

    fleet *f = &g_fleet;
    fleet_up(f, 4);
    char suite[400];
    write_suite(f, text, suite, sizeof suite);
    free(text);
    submit(f, suite);

    double end = qf_time_mono() + 90.0 + 2.0 * n_events;
    int done_events = 0, refusals = 0;
    for (;;) {
        double now = qf_time_mono();
        if (now > end)
            fail_msg("%d of %d kills done, %" PRId64 " of %" PRId64 " results, after the time "
                     "limit (see %s)", done_events, n_events,
                     db_int(f, "SELECT count(*) FROM results"), n_jobs, f->dir);
        /* agents that exited on their own (a name still held: EEXIST) or are due back */
        for (int i = 0; i < f->n_agents; i++) {
            agent_proc *a = &f->agents[i];
            int st;
            if (a->pid > 0 && waitpid(a->pid, &st, WNOHANG) == a->pid) {
                a->pid = 0;
                a->restart_at = now + 0.5;
                refusals++;
            }
            if (a->pid == 0 && now >= a->restart_at)
                start_agent(f, i);
        }
        int64_t results = db_int(f, "SELECT count(*) FROM results");
        if (done_events == n_events) {
            if (results == n_jobs &&
                db_int(f, "SELECT count(*) FROM jobs WHERE state IN ('queued','leased')") == 0)
                break;
        } else if (results * (n_events + 1) >= (int64_t)(done_events + 1) * n_jobs) {
            if (events[done_events] == 'c') {
                char endpoint[sizeof f->endpoint];
                memcpy(endpoint, f->endpoint, sizeof endpoint);
                reap(&f->coord, SIGKILL);
                start_coordinator(f, endpoint);
                assert_string_equal(f->endpoint, endpoint);
            } else {
                int up[MAX_AGENTS], n_up = 0;
                for (int i = 0; i < f->n_agents; i++)
                    if (f->agents[i].pid > 0)
                        up[n_up++] = i;
                if (n_up == 0) {
                    usleep(20000);
                    continue;              /* all down for now: this kill waits for one */
                }
                agent_proc *a = &f->agents[up[qf_rng_u64(&rng) % (uint64_t)n_up]];
                reap(&a->pid, SIGKILL);
                /* back under the same name once the coordinator can have declared the dead
                 * process lost (3 intervals); sooner, the name is still a live agent's */
                a->restart_at = qf_time_mono() + 4.0 * HB_MS / 1000.0;
            }
            done_events++;
            continue;
        }
        usleep(20000);
    }
    fprintf(stderr, "test_faults: %d kills done, %" PRId64 " jobs, %" PRId64 " attempts in all, "
            "%d agent restarts refused while the old name was live\n", done_events, n_jobs,
            db_int(f, "SELECT sum(attempt) FROM jobs"), refusals);
    assert_exactly_the_suite(f, suite);
    /* the kills cost attempts: at least one job was retried */
    if (agent_kills > 0)
        assert_true(db_int(f, "SELECT count(*) FROM jobs WHERE attempt >= 2") >= 1);
    free(events);
    fleet_down(f);
}

/* A partition: agent-0 and its job frozen past the job's lease, agent-1 takes the retry. */
static void test_stopped_agent_late_result_ignored(void **state)
{
    (void)state;
    fleet *f = &g_fleet;
    fleet_up(f, 1);                     /* agent-0 alone, so it takes the job */
    f->n_agents = 2;                    /* agent-1 joins once agent-0 is frozen */
    char suite[400];
    /* one job of a few hundred ms (more on a loaded machine or under ASan), with a 5 s
     * limit: its lease is 5 s + 3 heartbeats */
    write_suite(f, "name: partition\nrepetitions: 3\nwarmup: 0\nmax_attempts: 5\n"
                "timeout: 5s\ndatasets: [synth:gaussian]\nformats: [q4_K]\n"
                "ops: [quantize]\nshapes: [[256, 4096]]\n", suite, sizeof suite);
    submit(f, suite);
    wait_until(f, "SELECT count(*) FROM jobs j JOIN agents a ON a.id = j.agent_id "
                   "WHERE j.state = 'leased' AND a.name = 'agent-0'", 1, 30.0,
               "agent-0 leases the job");
    signal_tree(f->agents[0].pid, SIGSTOP);
    double deadline = db_num(f, "SELECT lease_deadline FROM jobs");
    assert_true(deadline > 0);

    start_agent(f, 1);
    wait_until(f, "SELECT count(*) FROM results r JOIN agents a ON a.id = r.agent_id "
                   "WHERE a.name = 'agent-1' AND r.attempt >= 2", 1, 60.0,
               "agent-1 finishes the retried job");
    while (qf_time_real() < deadline + 0.3)      /* frozen past the first lease, for sure */
        usleep(20000);
    signal_tree(f->agents[0].pid, SIGCONT);

    /* agent-0 finishes (or times out) attempt 1 and sends it: its log says so, and its spool
     * empties when the coordinator ACKs the late result */
    char log[1024], spool[1024];
    snprintf(log, sizeof log, "%s/agent-0.log", f->dir);
    snprintf(spool, sizeof spool, "%s/spool-0", f->dir);
    double end = qf_time_mono() + 30.0;
    for (;;) {
        int reported = 0, spooled = 0;
        FILE *fp = fopen(log, "r");
        char line[1024];
        while (fp && fgets(line, sizeof line, fp))
            reported += strstr(line, "job 1/1 ") && !strstr(line, "started");
        if (fp)
            fclose(fp);
        DIR *d = opendir(spool);
        struct dirent *e;
        while (d && (e = readdir(d)))
            spooled += strncmp(e->d_name, "job-", 4) == 0;
        if (d)
            closedir(d);
        if (reported > 0 && spooled == 0)
            break;
        if (qf_time_mono() > end)
            fail_msg("agent-0's late result was not sent and acknowledged within 30 s "
                     "(reported %d, spooled %d; see %s)", reported, spooled, f->dir);
        usleep(50000);
    }
    assert_exactly_the_suite(f, suite);
    /* attempt 1 was agent-0's and was taken from it; the one result is agent-1's, of the
     * job's last attempt (2, or later if a retry overran its limit on a loaded machine) */
    assert_int_equal(db_int(f, "SELECT count(*) FROM attempts t JOIN agents a "
                               "ON a.id = t.agent_id WHERE t.attempt = 1 "
                               "AND a.name = 'agent-0' AND t.status = 'released'"), 1);
    assert_int_equal(db_int(f, "SELECT count(*) FROM results r JOIN agents a "
                               "ON a.id = r.agent_id JOIN jobs j ON j.id = r.job_id "
                               "WHERE a.name = 'agent-1' AND r.attempt = j.attempt "
                               "AND r.attempt >= 2"), 1);
    fleet_down(f);
}

static int teardown(void **state)
{
    (void)state;
    if (g_fleet_up)
        fleet_down(&g_fleet);
    return 0;
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    g_insecure_coord = help_lists("coordinator", "--insecure");
    g_insecure_agent = help_lists("agent", "--insecure");
    g_insecure_submit = help_lists("submit", "--insecure");
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_random_kills_lose_and_duplicate_nothing, teardown),
        cmocka_unit_test_teardown(test_stopped_agent_late_result_ignored, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
