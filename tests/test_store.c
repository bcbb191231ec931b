/* test_store.c - the SQLite store: job life cycles, retries, leases, agents, selectors,
 * cancel, progress, STATUS JSON, durability across close and across a killed process, and
 * files it must refuse. Every test runs on its own file in a fresh mkdtemp folder; the tests
 * read the file back through a second SQLite connection, so what they see is committed. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <sodium.h>
#include <sqlite3.h>

#include "qf_err.h"
#include "qf_store.h"

typedef struct fixture {
    char      dir[64];
    char      path[128];
    qf_store *s;
} fixture;

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    assert_non_null(f);
    snprintf(f->dir, sizeof f->dir, "/tmp/qf-test-store-XXXXXX");
    assert_non_null(mkdtemp(f->dir));
    snprintf(f->path, sizeof f->path, "%s/qfleet.db", f->dir);
    assert_int_equal(qf_store_open(f->path, &f->s), 0);
    assert_non_null(f->s);
    *state = f;
    return 0;
}

static void remove_db(const char *dir, const char *path)
{
    char p[160];
    unlink(path);
    snprintf(p, sizeof p, "%s-wal", path);
    unlink(p);
    snprintf(p, sizeof p, "%s-shm", path);
    unlink(p);
    rmdir(dir);
}

static int teardown(void **state)
{
    fixture *f = *state;
    qf_store_close(&f->s);
    assert_null(f->s);
    remove_db(f->dir, f->path);
    free(f);
    return 0;
}

/* ---- helpers ----------------------------------------------------------------------------- */

static qf_job_spec spec(uint64_t seed, int32_t priority, const char *selector)
{
    qf_job_spec s = { .rows = 1, .cols = 32, .reps = 3, .threads = 1, .timeout_ms = 1000 };
    snprintf(s.kind, sizeof s.kind, "noop");
    snprintf(s.dataset, sizeof s.dataset, "synth:gaussian");
    snprintf(s.selector, sizeof s.selector, "%s", selector);
    s.seed = seed;
    s.priority = priority;
    return s;
}

static qf_agent_caps caps(const char *name, const char *isa)
{
    qf_agent_caps c = { 0 };
    snprintf(c.name, sizeof c.name, "%s", name);
    snprintf(c.arch, sizeof c.arch, "x86_64");
    snprintf(c.isa, sizeof c.isa, "%s", isa);
    snprintf(c.backends, sizeof c.backends, "cpu");
    return c;
}

static int64_t hello(qf_store *s, const qf_agent_caps *c, uint64_t instance, double now,
                     int *released)
{
    int64_t id = 0;
    int rel = -1;
    assert_int_equal(qf_store_agent_hello(s, c->name, instance, "{\"cores\":8}", c, now, &id,
                                          &rel), 0);
    assert_true(id > 0);
    assert_true(rel >= 0);
    if (released)
        *released = rel;
    return id;
}

/* Submits n jobs made by spec(seed = first_seed + i, priority, selector). */
static int64_t submit(qf_store *s, size_t n, uint32_t max_attempts, int32_t priority,
                      const char *selector, uint64_t first_seed)
{
    qf_job_spec *jobs = calloc(n ? n : 1, sizeof *jobs);
    assert_non_null(jobs);
    for (size_t i = 0; i < n; i++)
        jobs[i] = spec(first_seed + i, priority, selector);
    qf_run_info run = { .dirty = true, .max_attempts = max_attempts };
    snprintf(run.suite, sizeof run.suite, "unit");
    snprintf(run.commit, sizeof run.commit, "abc123");
    snprintf(run.branch, sizeof run.branch, "main");
    snprintf(run.baseline, sizeof run.baseline, "f16");
    int64_t run_id = 0;
    assert_int_equal(qf_store_submit(s, &run, jobs, n, 10.0, &run_id), 0);
    assert_true(run_id > 0);
    free(jobs);
    return run_id;
}

static qf_job_result ok_result(void)
{
    static double samples[3] = { 0.25, 0.5, 0.125 };
    qf_job_result r = { .status = QF_JOB_OK, .samples = samples, .n_samples = 3,
                        .has_metrics = true, .bytes = 1234, .bpw = 4.5,
                        .throughput_bytes = 4096, .seed = 7, .peak_rss_kb = 2048,
                        .wall_s = 1.5 };
    r.metrics.rmse = 0.01;
    r.metrics.snr_db = 1.0 / 0.0;     /* infinite: stored as null */
    snprintf(r.dataset_sha256, sizeof r.dataset_sha256, "%064d", 0);
    snprintf(r.kernel, sizeof r.kernel, "ref");
    return r;
}

static qf_job_result fail_result(qf_job_status st, const char *why)
{
    qf_job_result r = { .status = st };
    snprintf(r.error, sizeof r.error, "%s", why);
    return r;
}

static qf_lease lease_ok(qf_store *s, int64_t agent, const qf_agent_caps *c, double now)
{
    qf_lease l;
    int err = qf_store_lease_next(s, agent, c, now, 60.0, &l);
    if (err)
        fail_msg("lease for %s: %s", c->name, qf_err_name(err));
    return l;
}

static void lease_none(qf_store *s, int64_t agent, const qf_agent_caps *c, double now)
{
    qf_lease l;
    int err = qf_store_lease_next(s, agent, c, now, 60.0, &l);
    if (err != QF_ENOENT)
        fail_msg("lease for %s: expected QF_ENOENT, got %s (job %lld)", c->name,
                 qf_err_name(err), err ? 0LL : (long long)l.job_id);
}

/* Runs a query on a second connection; the first column of the first row as an integer
 * (-1 when there is no row). printf-style. */
static int64_t q_int(const char *path, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int64_t q_int(const char *path, const char *fmt, ...)
{
    char sql[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    sqlite3 *db;
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    int64_t v = sqlite3_step(st) == SQLITE_ROW ? sqlite3_column_int64(st, 0) : -1;
    sqlite3_finalize(st);
    sqlite3_close(db);
    return v;
}

/* The same for text, copied into out ("" for NULL, "<no row>" for no row). */
static const char *q_text(const char *path, char *out, size_t out_len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static const char *q_text(const char *path, char *out, size_t out_len, const char *fmt, ...)
{
    char sql[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(sql, sizeof sql, fmt, ap);
    va_end(ap);
    sqlite3 *db;
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    if (sqlite3_prepare_v2(db, sql, -1, &st, NULL) != SQLITE_OK)
        fail_msg("%s: %s", sql, sqlite3_errmsg(db));
    if (sqlite3_step(st) == SQLITE_ROW) {
        const unsigned char *t = sqlite3_column_text(st, 0);
        snprintf(out, out_len, "%s", t ? (const char *)t : "");
    } else {
        snprintf(out, out_len, "<no row>");
    }
    sqlite3_finalize(st);
    sqlite3_close(db);
    return out;
}

static void expect_progress(qf_store *s, int64_t run_id, int64_t queued, int64_t leased,
                            int64_t done, int64_t failed, int64_t cancelled)
{
    qf_run_progress p;
    assert_int_equal(qf_store_run_progress(s, run_id, &p), 0);
    assert_int_equal(p.run_id, run_id);
    assert_int_equal(p.queued, queued);
    assert_int_equal(p.leased, leased);
    assert_int_equal(p.done, done);
    assert_int_equal(p.failed, failed);
    assert_int_equal(p.cancelled, cancelled);
    assert_int_equal(p.total, queued + leased + done + failed + cancelled);
}

/* ---- life cycles --------------------------------------------------------------------------- */

static void test_submit_lease_complete_done(void **state)
{
    fixture *f = *state;
    char buf[512];
    qf_agent_caps c = caps("lab-01", "sse2 avx2");
    int64_t a = hello(f->s, &c, 1, 20.0, NULL);
    int64_t run = submit(f->s, 2, 0, 0, "", 42);
    expect_progress(f->s, run, 2, 0, 0, 0, 0);
    assert_string_equal(q_text(f->path, buf, sizeof buf, "SELECT state FROM runs WHERE id=%lld",
                               (long long)run), "active");
    assert_int_equal(q_int(f->path, "SELECT max_attempts FROM jobs LIMIT 1"), 3);

    qf_lease l = lease_ok(f->s, a, &c, 30.0);
    assert_int_equal(l.attempt, 1);
    assert_int_equal(l.run_id, run);
    assert_int_equal(l.spec.seed, 42);            /* lowest id first at equal priority */
    assert_string_equal(l.spec.kind, "noop");
    assert_string_equal(l.spec.dataset, "synth:gaussian");
    assert_int_equal(q_int(f->path, "SELECT lease_deadline FROM jobs WHERE id=%lld",
                           (long long)l.job_id), 91);   /* now + the job's 1 s + 60 s margin */
    expect_progress(f->s, run, 1, 1, 0, 0, 0);

    qf_job_result r = ok_result();
    assert_int_equal(qf_store_complete(f->s, l.job_id, l.attempt, a, &r, 31.0), 0);
    expect_progress(f->s, run, 1, 0, 1, 0, 0);
    assert_string_equal(q_text(f->path, buf, sizeof buf, "SELECT state FROM runs WHERE id=%lld",
                               (long long)run), "active");
    assert_string_equal(q_text(f->path, buf, sizeof buf, "SELECT samples FROM results "
                               "WHERE job_id=%lld", (long long)l.job_id), "[0.25,0.5,0.125]");
    assert_string_equal(q_text(f->path, buf, sizeof buf, "SELECT key FROM results "
                               "WHERE job_id=%lld", (long long)l.job_id),
                        "noop//synth:gaussian/1x32/t1/s42");
    assert_int_equal(q_int(f->path, "SELECT n_samples * 1000000 + bytes FROM results"),
                     3 * 1000000 + 1234);
    assert_int_equal(q_int(f->path, "SELECT json_extract(metrics, '$.snr_db') IS NULL AND "
                           "json_extract(metrics, '$.rmse') = 0.01 FROM results"), 1);
    assert_string_equal(q_text(f->path, buf, sizeof buf, "SELECT status || '/' || attempt FROM "
                               "attempts WHERE job_id=%lld", (long long)l.job_id), "ok/1");
    assert_int_equal(q_int(f->path, "SELECT last_seen FROM agents WHERE id=%lld",
                           (long long)a), 31);

    qf_lease l2 = lease_ok(f->s, a, &c, 32.0);
    assert_int_equal(l2.spec.seed, 43);
    assert_int_equal(qf_store_complete(f->s, l2.job_id, l2.attempt, a, &r, 33.0), 0);
    expect_progress(f->s, run, 0, 0, 2, 0, 0);
    assert_string_equal(q_text(f->path, buf, sizeof buf, "SELECT state FROM runs WHERE id=%lld",
                               (long long)run), "done");
    lease_none(f->s, a, &c, 34.0);
}

static void test_duplicate_and_late_results(void **state)
{
    fixture *f = *state;
    qf_agent_caps c1 = caps("lab-01", "avx2"), c2 = caps("lab-02", "avx2");
    int64_t a1 = hello(f->s, &c1, 1, 1.0, NULL), a2 = hello(f->s, &c2, 2, 1.0, NULL);
    submit(f->s, 1, 3, 0, "", 1);
    qf_lease l = lease_ok(f->s, a1, &c1, 2.0);
    qf_job_result r = ok_result();

    /* not the live lease: another agent, another attempt, a job that does not exist */
    assert_int_equal(qf_store_complete(f->s, l.job_id, l.attempt, a2, &r, 3.0), QF_EEXIST);
    assert_int_equal(qf_store_complete(f->s, l.job_id, l.attempt + 1, a1, &r, 3.0), QF_EEXIST);
    assert_int_equal(qf_store_complete(f->s, l.job_id + 100, 1, a1, &r, 3.0), QF_EEXIST);
    assert_int_equal(q_int(f->path, "SELECT count(*) FROM results"), 0);

    assert_int_equal(qf_store_complete(f->s, l.job_id, l.attempt, a1, &r, 3.0), 0);
    /* the same RESULT again (the ACK was lost), and a late failure for it */
    assert_int_equal(qf_store_complete(f->s, l.job_id, l.attempt, a1, &r, 4.0), QF_EEXIST);
    qf_job_result bad = fail_result(QF_JOB_CRASHED, "late");
    assert_int_equal(qf_store_complete(f->s, l.job_id, l.attempt, a1, &bad, 4.0), QF_EEXIST);
    assert_int_equal(q_int(f->path, "SELECT count(*) FROM results"), 1);
    assert_int_equal(q_int(f->path, "SELECT count(*) FROM attempts"), 1);
    assert_int_equal(qf_store_renew(f->s, l.job_id, l.attempt, a1, 100.0), QF_EEXIST);
}

static void test_failures_retry_then_fail(void **state)
{
    fixture *f = *state;
    char buf[512];
    qf_agent_caps c = caps("lab-01", "avx2");
    int64_t a = hello(f->s, &c, 1, 1.0, NULL);
    int64_t run = submit(f->s, 1, 2, 0, "", 5);

    qf_lease l = lease_ok(f->s, a, &c, 2.0);
    assert_int_equal(l.attempt, 1);
    qf_job_result t = fail_result(QF_JOB_TIMEOUT, "killed at 1000 ms");
    assert_int_equal(qf_store_complete(f->s, l.job_id, 1, a, &t, 3.0), 0);
    expect_progress(f->s, run, 1, 0, 0, 0, 0);
    assert_string_equal(q_text(f->path, buf, sizeof buf, "SELECT error FROM jobs"),
                        "timeout: killed at 1000 ms");
    assert_int_equal(q_int(f->path, "SELECT agent_id IS NULL AND lease_deadline IS NULL "
                           "FROM jobs"), 1);

    l = lease_ok(f->s, a, &c, 4.0);
    assert_int_equal(l.attempt, 2);
    /* the first attempt's failure arriving again now is stale */
    assert_int_equal(qf_store_complete(f->s, l.job_id, 1, a, &t, 5.0), QF_EEXIST);
    qf_job_result cr = fail_result(QF_JOB_CRASHED, "signal 11");
    assert_int_equal(qf_store_complete(f->s, l.job_id, 2, a, &cr, 5.0), 0);
    expect_progress(f->s, run, 0, 0, 0, 1, 0);
    assert_string_equal(q_text(f->path, buf, sizeof buf, "SELECT state || ' ' || error FROM jobs"),
                        "failed crashed: signal 11");
    assert_string_equal(q_text(f->path, buf, sizeof buf, "SELECT state FROM runs"), "done");
    assert_string_equal(q_text(f->path, buf, sizeof buf, "SELECT group_concat(attempt || '=' || "
                               "status || ':' || error, ',') FROM (SELECT * FROM attempts "
                               "ORDER BY attempt)"), "1=timeout:killed at 1000 ms,"
                                                     "2=crashed:signal 11");
    assert_int_equal(q_int(f->path, "SELECT count(*) FROM results"), 0);
    lease_none(f->s, a, &c, 6.0);

    /* a failure with no text still says what happened */
    submit(f->s, 1, 1, 0, "", 6);
    l = lease_ok(f->s, a, &c, 7.0);
    qf_job_result bare = fail_result(QF_JOB_FAILED, "");
    assert_int_equal(qf_store_complete(f->s, l.job_id, 1, a, &bare, 8.0), 0);
    assert_string_equal(q_text(f->path, buf, sizeof buf, "SELECT error FROM jobs WHERE id=%lld",
                               (long long)l.job_id), "failed");
}

static void test_lease_expiry_and_renew(void **state)
{
    fixture *f = *state;
    char buf[512];
    qf_agent_caps c = caps("lab-01", "avx2");
    int64_t a = hello(f->s, &c, 1, 1.0, NULL);
    int64_t run = submit(f->s, 2, 3, 0, "", 1);
    qf_lease l1, l2;
    assert_int_equal(qf_store_lease_next(f->s, a, &c, 100.0, 10.0, &l1), 0);
    assert_int_equal(qf_store_lease_next(f->s, a, &c, 100.0, 10.0, &l2), 0);
    assert_int_equal(qf_store_renew(f->s, l2.job_id, l2.attempt, a, 200.0), 0);
    assert_int_equal(qf_store_renew(f->s, l2.job_id, l2.attempt + 1, a, 300.0), QF_EEXIST);

    int n = -1;
    assert_int_equal(qf_store_expire_leases(f->s, 105.0, &n), 0);
    assert_int_equal(n, 0);
    /* deadline = now + the job's own 1 s limit + the 10 s margin = 111 */
    assert_int_equal(qf_store_expire_leases(f->s, 110.5, &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(qf_store_expire_leases(f->s, 111.5, &n), 0);
    assert_int_equal(n, 1);                     /* l1 expired; l2 was renewed */
    expect_progress(f->s, run, 1, 1, 0, 0, 0);
    assert_string_equal(q_text(f->path, buf, sizeof buf, "SELECT state || ' ' || error FROM jobs "
                               "WHERE id=%lld", (long long)l1.job_id), "queued lease expired");
    assert_string_equal(q_text(f->path, buf, sizeof buf, "SELECT status || ' ' || error FROM "
                               "attempts WHERE job_id=%lld", (long long)l1.job_id),
                        "released lease expired");
    qf_job_result r = ok_result();
    assert_int_equal(qf_store_complete(f->s, l1.job_id, l1.attempt, a, &r, 112.0), QF_EEXIST);

    qf_lease l3 = lease_ok(f->s, a, &c, 113.0);
    assert_int_equal(l3.job_id, l1.job_id);
    assert_int_equal(l3.attempt, 2);
    assert_int_equal(qf_store_expire_leases(f->s, 250.0, &n), 0);
    assert_int_equal(n, 2);
}

static void test_agent_lost_and_gone(void **state)
{
    fixture *f = *state;
    char buf[512];
    qf_agent_caps c = caps("lab-07", "avx2");
    int64_t a = hello(f->s, &c, 1, 1.0, NULL);
    int64_t run = submit(f->s, 3, 1, 0, "", 1);
    lease_ok(f->s, a, &c, 2.0);
    lease_ok(f->s, a, &c, 2.0);
    int n = -1;
    assert_int_equal(qf_store_agent_lost(f->s, a, "is lost (silent for 3 heartbeat intervals)",
                                         5.0, &n), 0);
    assert_int_equal(n, 2);
    /* max_attempts 1: both fail; the third is still queued, so the run is not done */
    expect_progress(f->s, run, 1, 0, 0, 2, 0);
    assert_string_equal(q_text(f->path, buf, sizeof buf, "SELECT state FROM agents"), "lost");
    assert_string_equal(q_text(f->path, buf, sizeof buf, "SELECT error FROM jobs WHERE "
                               "state='failed' LIMIT 1"),
                        "agent lab-07: is lost (silent for 3 heartbeat intervals)");
    assert_string_equal(q_text(f->path, buf, sizeof buf, "SELECT state FROM runs"), "active");

    a = hello(f->s, &c, 1, 6.0, NULL);
    assert_string_equal(q_text(f->path, buf, sizeof buf, "SELECT state FROM agents"), "online");
    lease_ok(f->s, a, &c, 7.0);
    assert_int_equal(qf_store_agent_lost(f->s, a, "said goodbye", 8.0, &n), 0);
    assert_int_equal(n, 1);
    assert_string_equal(q_text(f->path, buf, sizeof buf, "SELECT state FROM agents"), "gone");
    assert_string_equal(q_text(f->path, buf, sizeof buf, "SELECT state FROM runs"), "done");
    assert_int_equal(qf_store_agent_lost(f->s, a + 99, "said goodbye", 8.0, &n), QF_ENOENT);
}

static void test_agent_restart_releases(void **state)
{
    fixture *f = *state;
    char buf[512];
    qf_agent_caps c = caps("lab-01", "avx2");
    int rel = -1;
    int64_t a = hello(f->s, &c, 0xfeedfacecafebeefull, 1.0, &rel);
    assert_int_equal(rel, 0);
    int64_t run = submit(f->s, 1, 3, 0, "", 1);
    qf_lease l = lease_ok(f->s, a, &c, 2.0);

    /* the same process again (the coordinator restarted, or the agent reconnected) */
    assert_int_equal(hello(f->s, &c, 0xfeedfacecafebeefull, 3.0, &rel), a);
    assert_int_equal(rel, 0);
    expect_progress(f->s, run, 0, 1, 0, 0, 0);

    /* a new process under the same name: the old one's job is gone with it */
    assert_int_equal(hello(f->s, &c, 2, 4.0, &rel), a);
    assert_int_equal(rel, 1);
    expect_progress(f->s, run, 1, 0, 0, 0, 0);
    assert_string_equal(q_text(f->path, buf, sizeof buf, "SELECT error FROM jobs"),
                        "agent restarted");
    qf_job_result r = ok_result();
    assert_int_equal(qf_store_complete(f->s, l.job_id, l.attempt, a, &r, 5.0), QF_EEXIST);
    assert_int_equal(q_int(f->path, "SELECT count(*) FROM agents"), 1);
    assert_int_equal(q_int(f->path, "SELECT first_seen * 10 + last_seen FROM agents"), 14);
}

/* ---- matching and order -------------------------------------------------------------------- */

static void test_selector_matching(void **state)
{
    fixture *f = *state;
    qf_agent_caps c2 = caps("lab-avx2", "sse2 avx2"), c5 = caps("lab-avx512", "avx2 avx512f");
    snprintf(c5.isa, sizeof c5.isa, "avx2 avx512");
    int64_t a2 = hello(f->s, &c2, 1, 1.0, NULL), a5 = hello(f->s, &c5, 2, 1.0, NULL);
    /* more non-matching jobs at the head than one batch, so both lookup passes run */
    submit(f->s, 40, 3, 10, "isa=avx512", 100);
    submit(f->s, 1, 3, 0, "", 1);
    submit(f->s, 1, 3, 5, "arch=x86_64 name=lab-a*", 2);
    submit(f->s, 1, 3, 7, "arch=aarch64", 3);

    qf_lease l = lease_ok(f->s, a2, &c2, 2.0);
    assert_int_equal(l.spec.seed, 2);           /* priority 5 beats 0; 10 is avx512-only */
    l = lease_ok(f->s, a2, &c2, 2.0);
    assert_int_equal(l.spec.seed, 1);
    lease_none(f->s, a2, &c2, 2.0);

    l = lease_ok(f->s, a5, &c5, 3.0);
    assert_int_equal(l.spec.seed, 100);
    assert_string_equal(l.spec.selector, "isa=avx512");
    for (int i = 1; i < 40; i++) {
        l = lease_ok(f->s, a5, &c5, 3.0);
        assert_int_equal(l.spec.seed, 100 + (uint64_t)i);
    }
    lease_none(f->s, a5, &c5, 3.0);
    assert_int_equal(q_int(f->path, "SELECT count(*) FROM jobs WHERE state='queued'"), 1);
}

static void test_many_selectors(void **state)
{
    fixture *f = *state;
    /* one selector per device, as a lab pins jobs to named boards */
    for (int i = 0; i < 30; i++) {
        char sel[32];
        snprintf(sel, sizeof sel, "name=lab-%02d", i);
        submit(f->s, 2, 3, i % 4, sel, (uint64_t)(1000 + 10 * i));
    }
    qf_agent_caps c = caps("lab-17", "avx2");
    int64_t a = hello(f->s, &c, 1, 1.0, NULL);
    qf_lease l = lease_ok(f->s, a, &c, 2.0);
    assert_int_equal(l.spec.seed, 1170);
    l = lease_ok(f->s, a, &c, 2.0);
    assert_int_equal(l.spec.seed, 1171);
    lease_none(f->s, a, &c, 2.0);
    /* a glob job at a lower priority goes after the pinned ones of higher priority */
    submit(f->s, 1, 3, -1, "name=lab-1*", 5);
    l = lease_ok(f->s, a, &c, 3.0);
    assert_int_equal(l.spec.seed, 5);
}

static void test_priority_order(void **state)
{
    fixture *f = *state;
    qf_agent_caps c = caps("lab-01", "avx2");
    int64_t a = hello(f->s, &c, 1, 1.0, NULL);
    submit(f->s, 1, 3, 1, "", 1);
    submit(f->s, 1, 3, 5, "", 2);
    submit(f->s, 1, 3, 3, "", 3);
    submit(f->s, 1, 3, 5, "", 4);
    submit(f->s, 1, 3, -2, "", 5);
    uint64_t want[] = { 2, 4, 3, 1, 5 };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        qf_lease l = lease_ok(f->s, a, &c, 2.0);
        if (l.spec.seed != want[i])
            fail_msg("lease %zu: got seed %llu, expected %llu", i,
                     (unsigned long long)l.spec.seed, (unsigned long long)want[i]);
    }
}

/* A spec row nobody can read (hand-edited) must not block the queue forever. */
static void test_unreadable_spec_is_failed(void **state)
{
    fixture *f = *state;
    char buf[512];
    qf_agent_caps c = caps("lab-01", "avx2");
    int64_t a = hello(f->s, &c, 1, 1.0, NULL);
    int64_t run = submit(f->s, 2, 3, 0, "", 1);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "UPDATE jobs SET spec = '{\"kind\":' WHERE id = 1", NULL,
                                  NULL, NULL), SQLITE_OK);
    sqlite3_close(db);
    qf_lease l = lease_ok(f->s, a, &c, 2.0);
    assert_int_equal(l.spec.seed, 2);
    assert_int_equal(l.job_id, 2);
    expect_progress(f->s, run, 0, 1, 0, 1, 0);
    q_text(f->path, buf, sizeof buf, "SELECT error FROM jobs WHERE id = 1");
    if (strncmp(buf, "stored spec unreadable: ", 24) != 0)
        fail_msg("job 1's error: '%s'", buf);
}

/* ---- runs ---------------------------------------------------------------------------------- */

static void test_cancel(void **state)
{
    fixture *f = *state;
    char buf[512];
    qf_agent_caps c = caps("lab-01", "avx2");
    int64_t a = hello(f->s, &c, 1, 1.0, NULL);
    int64_t run = submit(f->s, 3, 3, 0, "", 1);
    int64_t other = submit(f->s, 1, 3, -1, "", 9);
    qf_lease l = lease_ok(f->s, a, &c, 2.0);
    qf_lease l2 = lease_ok(f->s, a, &c, 2.0);
    qf_job_result r = ok_result();
    assert_int_equal(qf_store_complete(f->s, l2.job_id, l2.attempt, a, &r, 2.5), 0);

    assert_int_equal(qf_store_cancel_run(f->s, run, 3.0), 0);
    expect_progress(f->s, run, 0, 0, 1, 0, 2);
    expect_progress(f->s, other, 1, 0, 0, 0, 0);
    assert_string_equal(q_text(f->path, buf, sizeof buf, "SELECT state FROM runs WHERE id=%lld",
                               (long long)run), "cancelled");
    assert_string_equal(q_text(f->path, buf, sizeof buf, "SELECT status FROM attempts WHERE "
                               "job_id=%lld", (long long)l.job_id), "cancelled");
    assert_int_equal(qf_store_complete(f->s, l.job_id, l.attempt, a, &r, 4.0), QF_EEXIST);
    l = lease_ok(f->s, a, &c, 5.0);
    assert_int_equal(l.run_id, other);          /* the cancelled run's jobs are not leased */
    assert_int_equal(qf_store_complete(f->s, l.job_id, l.attempt, a, &r, 5.0), 0);
    assert_string_equal(q_text(f->path, buf, sizeof buf, "SELECT state FROM runs WHERE id=%lld",
                               (long long)other), "done");
    /* cancelling a finished run changes nothing; an unknown run is an error */
    assert_int_equal(qf_store_cancel_run(f->s, other, 6.0), 0);
    assert_string_equal(q_text(f->path, buf, sizeof buf, "SELECT state FROM runs WHERE id=%lld",
                               (long long)other), "done");
    assert_int_equal(qf_store_cancel_run(f->s, 12345, 6.0), QF_ENOENT);
    qf_run_progress p;
    assert_int_equal(qf_store_run_progress(f->s, 12345, &p), QF_ENOENT);
}

static void test_progress_counts(void **state)
{
    fixture *f = *state;
    qf_agent_caps c = caps("lab-01", "avx2");
    int64_t a = hello(f->s, &c, 1, 1.0, NULL);
    int64_t run = submit(f->s, 6, 1, 0, "", 1);
    qf_lease l1 = lease_ok(f->s, a, &c, 2.0), l2 = lease_ok(f->s, a, &c, 2.0);
    lease_ok(f->s, a, &c, 2.0);
    qf_job_result r = ok_result(), bad = fail_result(QF_JOB_FAILED, "bad");
    assert_int_equal(qf_store_complete(f->s, l1.job_id, 1, a, &r, 3.0), 0);
    assert_int_equal(qf_store_complete(f->s, l2.job_id, 1, a, &bad, 3.0), 0);
    expect_progress(f->s, run, 3, 1, 1, 1, 0);
    /* an empty run is done from the start */
    int64_t empty = submit(f->s, 0, 0, 0, "", 1);
    expect_progress(f->s, empty, 0, 0, 0, 0, 0);
    char buf[64];
    assert_string_equal(q_text(f->path, buf, sizeof buf, "SELECT state FROM runs WHERE id=%lld",
                               (long long)empty), "done");
}

static void test_status_json(void **state)
{
    fixture *f = *state;
    qf_agent_caps c = caps("lab-01", "avx2");
    int64_t a = hello(f->s, &c, 1, 1.0, NULL);
    int64_t r1 = submit(f->s, 3, 3, 0, "", 1);
    int64_t r2 = submit(f->s, 2, 3, -1, "", 10);
    qf_lease l = lease_ok(f->s, a, &c, 2.0);
    qf_job_result res = ok_result();
    assert_int_equal(qf_store_complete(f->s, l.job_id, l.attempt, a, &res, 3.0), 0);
    lease_ok(f->s, a, &c, 4.0);

    char *text = NULL;
    assert_int_equal(qf_store_status_json(f->s, 0, 5.0, &text), 0);
    assert_non_null(text);
    json_error_t jerr;
    json_t *j = json_loads(text, 0, &jerr);
    if (!j)
        fail_msg("status JSON does not parse: %s: %s", jerr.text, text);
    free(text);

    json_t *ag = json_array_get(json_object_get(j, "agents"), 0);
    assert_int_equal(json_array_size(json_object_get(j, "agents")), 1);
    assert_int_equal(json_integer_value(json_object_get(ag, "id")), a);
    assert_string_equal(json_string_value(json_object_get(ag, "name")), "lab-01");
    assert_string_equal(json_string_value(json_object_get(ag, "state")), "online");
    assert_string_equal(json_string_value(json_object_get(ag, "isa")), "avx2");
    assert_true(json_real_value(json_object_get(ag, "last_seen")) == 3.0);
    unsigned char h[crypto_hash_sha256_BYTES];
    char hex[2 * crypto_hash_sha256_BYTES + 1];
    crypto_hash_sha256(h, (const unsigned char *)"{\"cores\":8}", 11);
    sodium_bin2hex(hex, sizeof hex, h, sizeof h);
    assert_string_equal(json_string_value(json_object_get(ag, "fingerprint_sha256")), hex);

    json_t *q = json_object_get(j, "queue");
    assert_int_equal(json_integer_value(json_object_get(q, "queued")), 3);
    assert_int_equal(json_integer_value(json_object_get(q, "leased")), 1);
    assert_int_equal(json_integer_value(json_object_get(q, "done")), 1);
    assert_int_equal(json_integer_value(json_object_get(q, "failed")), 0);
    assert_int_equal(json_integer_value(json_object_get(q, "cancelled")), 0);

    json_t *runs = json_object_get(j, "runs");
    assert_int_equal(json_array_size(runs), 2);
    json_t *run = json_array_get(runs, 0);
    assert_int_equal(json_integer_value(json_object_get(run, "run_id")), r1);
    assert_string_equal(json_string_value(json_object_get(run, "suite")), "unit");
    assert_string_equal(json_string_value(json_object_get(run, "commit")), "abc123");
    assert_true(json_is_true(json_object_get(run, "dirty")));
    assert_string_equal(json_string_value(json_object_get(run, "state")), "active");
    assert_int_equal(json_integer_value(json_object_get(run, "total")), 3);
    assert_int_equal(json_integer_value(json_object_get(run, "queued")), 1);
    assert_int_equal(json_integer_value(json_object_get(run, "leased")), 1);
    assert_int_equal(json_integer_value(json_object_get(run, "done")), 1);
    json_decref(j);

    /* one run only */
    assert_int_equal(qf_store_status_json(f->s, r2, 5.0, &text), 0);
    j = json_loads(text, 0, &jerr);
    free(text);
    assert_non_null(j);
    runs = json_object_get(j, "runs");
    assert_int_equal(json_array_size(runs), 1);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(runs, 0), "run_id")), r2);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(runs, 0), "queued")), 2);
    json_decref(j);
    assert_int_equal(qf_store_status_json(f->s, 999, 5.0, &text), QF_ENOENT);
    assert_null(text);
}

static void test_run_results_json(void **state)
{
    fixture *f = *state;
    qf_agent_caps c = caps("lab-01", "avx2");
    int64_t a = hello(f->s, &c, 1, 1.0, NULL);
    int64_t run = submit(f->s, 4, 1, 0, "", 1);
    qf_lease l1 = lease_ok(f->s, a, &c, 2.0), l2 = lease_ok(f->s, a, &c, 2.0);
    lease_ok(f->s, a, &c, 2.0);
    uint32_t n = 99;
    assert_int_equal(qf_store_agent_leases(f->s, a, &n), 0);
    assert_int_equal(n, 3);
    qf_job_result ok = ok_result(), to = fail_result(QF_JOB_TIMEOUT, "killed at 1000 ms");
    assert_int_equal(qf_store_complete(f->s, l1.job_id, 1, a, &ok, 3.0), 0);
    assert_int_equal(qf_store_complete(f->s, l2.job_id, 1, a, &to, 3.0), 0);
    assert_int_equal(qf_store_agent_leases(f->s, a, &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(qf_store_agent_leases(f->s, a + 50, &n), 0);
    assert_int_equal(n, 0);

    char *text = NULL;
    assert_int_equal(qf_store_run_results_json(f->s, run, &text), 0);
    json_error_t jerr;
    json_t *j = json_loads(text, 0, &jerr);
    if (!j)
        fail_msg("results JSON does not parse: %s: %s", jerr.text, text);
    free(text);
    assert_int_equal(json_array_size(j), 4);
    json_t *done = json_array_get(j, 0), *failed = json_array_get(j, 1);
    json_t *leased = json_array_get(j, 2), *queued = json_array_get(j, 3);
    assert_int_equal(json_integer_value(json_object_get(done, "job_id")), l1.job_id);
    assert_string_equal(json_string_value(json_object_get(done, "status")), "ok");
    assert_string_equal(json_string_value(json_object_get(done, "agent")), "lab-01");
    assert_string_equal(json_string_value(json_object_get(json_object_get(done, "spec"), "kind")),
                        "noop");
    assert_int_equal(json_array_size(json_object_get(done, "samples")), 3);
    assert_true(json_real_value(json_array_get(json_object_get(done, "samples"), 2)) == 0.125);
    assert_true(json_is_null(json_object_get(json_object_get(done, "metrics"), "snr_db")));
    assert_int_equal(json_integer_value(json_object_get(done, "bytes")), 1234);
    assert_true(json_real_value(json_object_get(done, "bpw")) == 4.5);
    assert_string_equal(json_string_value(json_object_get(done, "kernel")), "ref");

    assert_string_equal(json_string_value(json_object_get(failed, "state")), "failed");
    assert_string_equal(json_string_value(json_object_get(failed, "status")), "timeout");
    assert_string_equal(json_string_value(json_object_get(failed, "error")),
                        "timeout: killed at 1000 ms");
    assert_string_equal(json_string_value(json_object_get(failed, "agent")), "lab-01");
    assert_null(json_object_get(failed, "samples"));
    assert_string_equal(json_string_value(json_object_get(leased, "status")), "leased");
    assert_string_equal(json_string_value(json_object_get(queued, "status")), "queued");
    assert_int_equal(json_integer_value(json_object_get(queued, "attempt")), 0);
    json_decref(j);
    assert_int_equal(qf_store_run_results_json(f->s, run + 7, &text), QF_ENOENT);
    assert_null(text);
}

/* ---- durability and open errors ---------------------------------------------------------- */

static void test_reopen_keeps_everything(void **state)
{
    fixture *f = *state;
    qf_agent_caps c = caps("lab-01", "avx2");
    int64_t a = hello(f->s, &c, 77, 1.0, NULL);
    int64_t run = submit(f->s, 3, 3, 0, "", 1);
    qf_lease l1 = lease_ok(f->s, a, &c, 2.0), l2 = lease_ok(f->s, a, &c, 2.0);
    qf_job_result r = ok_result();
    assert_int_equal(qf_store_complete(f->s, l1.job_id, l1.attempt, a, &r, 3.0), 0);

    qf_store_close(&f->s);
    assert_int_equal(qf_store_open(f->path, &f->s), 0);
    expect_progress(f->s, run, 1, 1, 1, 0, 0);
    /* the same agent process comes back: its lease survived the restart */
    int rel = -1;
    assert_int_equal(hello(f->s, &c, 77, 4.0, &rel), a);
    assert_int_equal(rel, 0);
    assert_int_equal(qf_store_complete(f->s, l2.job_id, l2.attempt, a, &r, 5.0), 0);
    assert_int_equal(qf_store_complete(f->s, l1.job_id, l1.attempt, a, &r, 5.0), QF_EEXIST);
    expect_progress(f->s, run, 1, 0, 2, 0, 0);
}

/* A store written by the first schema (version 1, before results.device_mem_bytes) is brought
 * to the current one on open: its results are kept, read back with device_mem_bytes 0, and a
 * new result stores the field. Version 1 is made here by dropping the column from a new store. */
static void test_migrates_schema_1(void **state)
{
    fixture *f = *state;
    qf_agent_caps c = caps("lab-01", "avx2");
    int64_t a = hello(f->s, &c, 77, 1.0, NULL);
    int64_t run = submit(f->s, 2, 3, 0, "", 1);
    qf_lease l1 = lease_ok(f->s, a, &c, 2.0), l2 = lease_ok(f->s, a, &c, 2.0);
    qf_job_result r = ok_result();
    assert_int_equal(qf_store_complete(f->s, l1.job_id, l1.attempt, a, &r, 3.0), 0);
    qf_store_close(&f->s);

    sqlite3 *db = NULL;
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "ALTER TABLE results DROP COLUMN device_mem_bytes; "
                                  "PRAGMA user_version = 1", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(db);

    assert_int_equal(qf_store_open(f->path, &f->s), 0);
    r.device_mem_bytes = 123456789;
    assert_int_equal(qf_store_complete(f->s, l2.job_id, l2.attempt, a, &r, 4.0), 0);
    char *json = NULL;
    assert_int_equal(qf_store_run_results_json(f->s, run, &json), 0);
    json_error_t jerr;
    json_t *arr = json_loads(json, 0, &jerr);
    assert_true(json_is_array(arr) && json_array_size(arr) == 2);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(arr, 0),
                                                        "device_mem_bytes")), 0);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(arr, 1),
                                                        "device_mem_bytes")), 123456789);
    json_decref(arr);
    free(json);
    qf_store_close(&f->s);
    assert_int_equal(sqlite3_open(f->path, &db), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int(st, 0), 2);
    sqlite3_finalize(st);
    sqlite3_close(db);
    assert_int_equal(qf_store_open(f->path, &f->s), 0);
}

/* Group commit: operations inside a batch are savepoints of one transaction; a refused one
 * (QF_EEXIST) does not spoil the rest, reads see the batch's own writes, nothing is visible to
 * another connection before the commit, and everything is after it. */
static void test_batch_group_commit(void **state)
{
    fixture *f = *state;
    qf_agent_caps c = caps("lab-01", "avx2");
    int64_t a = hello(f->s, &c, 5, 1.0, NULL);
    assert_int_equal(qf_store_batch_begin(f->s), 0);
    int64_t run = submit(f->s, 2, 3, 0, "", 1);
    qf_lease l1 = lease_ok(f->s, a, &c, 2.0);
    qf_job_result r = ok_result();
    assert_int_equal(qf_store_complete(f->s, l1.job_id, l1.attempt + 1, a, &r, 3.0), QF_EEXIST);
    assert_int_equal(qf_store_complete(f->s, l1.job_id, l1.attempt, a, &r, 3.0), 0);
    expect_progress(f->s, run, 1, 0, 1, 0, 0);
    char *json = NULL;
    assert_int_equal(qf_store_status_json(f->s, run, 3.0, &json), 0);
    free(json);
    assert_int_equal(q_int(f->path, "SELECT count(*) FROM results"), 0);   /* not yet */
    assert_int_equal(qf_store_batch_commit(f->s), 0);
    assert_int_equal(q_int(f->path, "SELECT count(*) FROM results"), 1);
    /* and operations outside a batch work as before */
    qf_lease l2 = lease_ok(f->s, a, &c, 4.0);
    assert_int_equal(qf_store_complete(f->s, l2.job_id, l2.attempt, a, &r, 5.0), 0);
    expect_progress(f->s, run, 0, 0, 2, 0, 0);
}

static void test_killed_process_keeps_commits(void **state)
{
    fixture *f = *state;
    qf_store_close(&f->s);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        /* commit, then die without closing: no checkpoint, the rows live only in the WAL */
        qf_store *s = NULL;
        if (qf_store_open(f->path, &s) != 0)
            _exit(1);
        qf_job_spec j = spec(1, 0, "");
        qf_run_info run = { .max_attempts = 1 };
        int64_t id;
        if (qf_store_submit(s, &run, &j, 1, 1.0, &id) != 0 || id != 1)
            _exit(2);
        raise(SIGKILL);
        _exit(3);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGKILL);
    assert_int_equal(qf_store_open(f->path, &f->s), 0);
    expect_progress(f->s, 1, 1, 0, 0, 0, 0);
}

static off_t file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? st.st_size : 0;
}

/* A disk that fills up mid-transaction: QF_EIO, the whole SUBMIT rolled back, the store still
 * usable. The child process caps its file size (RLIMIT_FSIZE), so the commit's writes past the
 * cap fail (EFBIG: SQLite's I/O error; a real ENOSPC is SQLITE_FULL; both are QF_EIO). */
static void test_disk_full_rolls_back(void **state)
{
    fixture *f = *state;
    int64_t first = submit(f->s, 2, 3, 0, "", 1);
    qf_store_close(&f->s);
    pid_t pid = fork();
    assert_true(pid >= 0);
    if (pid == 0) {
        qf_store *s = NULL;
        if (qf_store_open(f->path, &s) != 0)
            _exit(10);
        char wal[160];
        snprintf(wal, sizeof wal, "%s-wal", f->path);
        off_t cap = file_size(f->path) > file_size(wal) ? file_size(f->path) : file_size(wal);
        signal(SIGXFSZ, SIG_IGN);
        struct rlimit rl = { .rlim_cur = (rlim_t)cap + 8192, .rlim_max = RLIM_INFINITY };
        if (setrlimit(RLIMIT_FSIZE, &rl) != 0)
            _exit(11);
        enum { N = 5000 };
        qf_job_spec *jobs = calloc(N, sizeof *jobs);
        if (!jobs)
            _exit(12);
        for (int i = 0; i < N; i++)
            jobs[i] = spec((uint64_t)i, 0, "");
        qf_run_info run = { .max_attempts = 1 };
        int64_t id = -1;
        int err = qf_store_submit(s, &run, jobs, N, 1.0, &id);
        free(jobs);
        if (err != QF_EIO)
            _exit(13);
        if (id != 0)
            _exit(14);
        qf_run_progress p;   /* the connection still works */
        if (qf_store_run_progress(s, first, &p) != 0 || p.queued != 2)
            _exit(15);
        qf_store_close(&s);
        _exit(0);
    }
    int status = 0;
    assert_int_equal(waitpid(pid, &status, 0), pid);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(qf_store_open(f->path, &f->s), 0);
    assert_int_equal(q_int(f->path, "SELECT count(*) FROM runs"), 1);
    assert_int_equal(q_int(f->path, "SELECT count(*) FROM jobs"), 2);
    expect_progress(f->s, first, 2, 0, 0, 0, 0);
}

/* PRAGMA integrity_check through a second connection: "ok" or the first problem. */
static void expect_intact(const char *path)
{
    sqlite3 *db;
    sqlite3_stmt *st;
    assert_int_equal(sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_prepare_v2(db, "PRAGMA integrity_check", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_string_equal((const char *)sqlite3_column_text(st, 0), "ok");
    sqlite3_finalize(st);
    sqlite3_close(db);
}

static int submit_n(qf_store *s, size_t n, int64_t *run_id)
{
    qf_job_spec *jobs = calloc(n, sizeof *jobs);
    assert_non_null(jobs);
    for (size_t i = 0; i < n; i++)
        jobs[i] = spec((uint64_t)i + 1000, 0, "");
    qf_run_info run = { .max_attempts = 1 };
    snprintf(run.suite, sizeof run.suite, "big");
    *run_id = -1;
    int err = qf_store_submit(s, &run, jobs, n, 1.0, run_id);
    free(jobs);
    return err;
}

/* The store at its size limit (qf_store_set_limits, the coordinator's --max-db-size, which is
 * PRAGMA max_page_count: SQLITE_FULL exactly as a full disk gives it): a SUBMIT that does not
 * fit is QF_EIO and rolled back whole, alone or inside a batch; what is stored stays intact and
 * usable, small writes (a result) still go through, and a raised limit takes the SUBMIT. */
static void test_size_limit_is_disk_full(void **state)
{
    fixture *f = *state;
    qf_agent_caps c = caps("a", "avx2");
    int64_t a = hello(f->s, &c, 1, 1.0, NULL);
    int64_t first = submit(f->s, 2, 1, 0, "", 1);
    int64_t pages = q_int(f->path, "PRAGMA page_count");
    int64_t page = q_int(f->path, "PRAGMA page_size");
    assert_true(pages > 0 && page > 0);
    assert_int_equal(qf_store_set_limits(f->s, 0, (uint64_t)((pages + 8) * page)), 0);

    int64_t run_id;
    assert_int_equal(submit_n(f->s, 5000, &run_id), QF_EIO);
    assert_int_equal(run_id, 0);
    assert_int_equal(q_int(f->path, "SELECT count(*) FROM runs"), 1);
    assert_int_equal(q_int(f->path, "SELECT count(*) FROM jobs"), 2);
    expect_intact(f->path);

    /* inside a group commit: the failed operation is rolled back, the batch reports it */
    assert_int_equal(qf_store_batch_begin(f->s), 0);
    assert_int_equal(submit_n(f->s, 5000, &run_id), QF_EIO);
    int committed = qf_store_batch_commit(f->s);
    assert_true(committed == 0 || committed == QF_EIO);
    assert_int_equal(q_int(f->path, "SELECT count(*) FROM jobs"), 2);
    expect_intact(f->path);

    /* the store goes on: a lease and a result fit in what is left */
    qf_lease l = lease_ok(f->s, a, &c, 2.0);
    qf_job_result r = ok_result();
    assert_int_equal(qf_store_complete(f->s, l.job_id, l.attempt, a, &r, 3.0), 0);
    expect_progress(f->s, first, 1, 0, 1, 0, 0);

    assert_int_equal(qf_store_set_limits(f->s, 0, (uint64_t)1 << 30), 0);
    assert_int_equal(submit_n(f->s, 5000, &run_id), 0);
    assert_true(run_id > first);
    assert_int_equal(q_int(f->path, "SELECT count(*) FROM jobs"), 5002);
    expect_intact(f->path);
}

/* Another connection holds the write lock (BEGIN IMMEDIATE, as a second coordinator or a
 * careless sqlite3 shell would): writes wait the busy timeout, then QF_EBUSY with nothing
 * written; reads go on (WAL); once the lock is gone everything works again. */
static void test_locked_database_is_busy(void **state)
{
    fixture *f = *state;
    int64_t first = submit(f->s, 2, 1, 0, "", 1);
    assert_int_equal(qf_store_set_limits(f->s, 100, 0), 0);
    sqlite3 *other;
    assert_int_equal(sqlite3_open(f->path, &other), SQLITE_OK);
    assert_int_equal(sqlite3_exec(other, "BEGIN IMMEDIATE", NULL, NULL, NULL), SQLITE_OK);

    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int64_t run_id;
    assert_int_equal(submit_n(f->s, 10, &run_id), QF_EBUSY);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    double waited = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) * 1e-9;
    if (waited < 0.09 || waited > 5.0)
        fail_msg("waited %.3f s for the lock; the busy timeout is 0.1 s", waited);
    assert_int_equal(qf_store_batch_begin(f->s), QF_EBUSY);   /* the coordinator's batch too */
    expect_progress(f->s, first, 2, 0, 0, 0, 0);              /* reads still work */

    assert_int_equal(sqlite3_exec(other, "ROLLBACK", NULL, NULL, NULL), SQLITE_OK);
    sqlite3_close(other);
    assert_int_equal(qf_store_batch_begin(f->s), 0);
    assert_int_equal(submit_n(f->s, 10, &run_id), 0);
    assert_int_equal(qf_store_batch_commit(f->s), 0);
    assert_int_equal(q_int(f->path, "SELECT count(*) FROM jobs"), 12);
    expect_intact(f->path);
}

static void test_memory_store(void **state)
{
    (void)state;
    qf_store *s = NULL;
    assert_int_equal(qf_store_open(":memory:", &s), 0);
    qf_agent_caps c = caps("m", "avx2");
    int64_t a = hello(s, &c, 1, 1.0, NULL);
    int64_t run = submit(s, 1, 1, 0, "", 1);
    qf_lease l = lease_ok(s, a, &c, 1.0);
    qf_job_result r = ok_result();
    assert_int_equal(qf_store_complete(s, l.job_id, l.attempt, a, &r, 2.0), 0);
    expect_progress(s, run, 0, 0, 1, 0, 0);
    qf_store_close(&s);
    qf_store_close(&s);     /* NULL-safe */
    qf_store_close(NULL);
}

static void test_refuses_bad_files(void **state)
{
    fixture *f = *state;
    qf_store_close(&f->s);
    remove_db(f->dir, f->path);
    assert_non_null(mkdtemp(strcpy(f->dir, "/tmp/qf-test-store-XXXXXX")));
    qf_store *s = (qf_store *)&s;   /* must come back NULL */

    /* a file that is not a database */
    char path[160];
    snprintf(path, sizeof path, "%s/notes.txt", f->dir);
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    for (int i = 0; i < 100; i++)
        fputs("this is not a SQLite database, it is a text file.\n", fp);
    fclose(fp);
    assert_int_equal(qf_store_open(path, &s), QF_EDB);
    assert_null(s);
    assert_int_equal(unlink(path), 0);

    /* a store written by a newer qfleet */
    snprintf(path, sizeof path, "%s/newer.db", f->dir);
    sqlite3 *db;
    assert_int_equal(sqlite3_open(path, &db), SQLITE_OK);
    assert_int_equal(sqlite3_exec(db, "CREATE TABLE t(x); PRAGMA user_version = 99", NULL, NULL,
                                  NULL), SQLITE_OK);
    sqlite3_close(db);
    s = (qf_store *)&s;
    assert_int_equal(qf_store_open(path, &s), QF_EDB);
    assert_null(s);
    assert_int_equal(unlink(path), 0);

    /* a path that cannot be created: a parent that is a file, then a read-only folder */
    snprintf(path, sizeof path, "%s/file", f->dir);
    fp = fopen(path, "w");
    assert_non_null(fp);
    fclose(fp);
    char under[200];
    snprintf(under, sizeof under, "%s/store.db", path);
    s = (qf_store *)&s;
    int err = qf_store_open(under, &s);
    if (err == 0)
        fail_msg("opened %s under a regular file", under);
    assert_null(s);
    assert_int_equal(unlink(path), 0);

    char ro[200];
    if (geteuid() == 0) {
        snprintf(ro, sizeof ro, "/proc/qf-test-store.db");     /* root writes anywhere else */
    } else {
        snprintf(path, sizeof path, "%s/ro", f->dir);
        assert_int_equal(mkdir(path, 0555), 0);
        snprintf(ro, sizeof ro, "%s/store.db", path);
    }
    s = (qf_store *)&s;
    err = qf_store_open(ro, &s);
    if (err == 0)
        fail_msg("opened %s in a read-only folder", ro);
    assert_null(s);
    if (geteuid() != 0)
        assert_int_equal(rmdir(path), 0);
    /* teardown removes the (empty) folder; give it a store to close */
    assert_int_equal(qf_store_open(":memory:", &f->s), 0);
}

/* ---- speed --------------------------------------------------------------------------------- */

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Not a benchmark (see the report for one), a guard: lease + complete stays a handful of
 * statements. 2000 cycles on a file store; prints the rate. */
static void test_lease_complete_rate(void **state)
{
    fixture *f = *state;
    enum { N = 2000 };
    qf_agent_caps c = caps("lab-01", "avx2");
    int64_t a = hello(f->s, &c, 1, 1.0, NULL);
    int64_t run = submit(f->s, N, 3, 0, "", 1);
    qf_job_result r = ok_result();
    double t0 = mono_s();
    for (int i = 0; i < N; i++) {
        qf_lease l;
        assert_int_equal(qf_store_lease_next(f->s, a, &c, 2.0, 60.0, &l), 0);
        assert_int_equal(qf_store_complete(f->s, l.job_id, l.attempt, a, &r, 3.0), 0);
    }
    double dt = mono_s() - t0;
    expect_progress(f->s, run, 0, 0, N, 0, 0);
    print_message("lease+complete: %d jobs in %.3f s = %.0f jobs/s\n", N, dt, N / dt);
    assert_true(dt < 30.0);     /* thousands per second expected; this only catches a blowup */
}

int main(void)
{
#define T(fn) cmocka_unit_test_setup_teardown(fn, setup, teardown)
    const struct CMUnitTest tests[] = {
        T(test_submit_lease_complete_done),
        T(test_duplicate_and_late_results),
        T(test_failures_retry_then_fail),
        T(test_lease_expiry_and_renew),
        T(test_agent_lost_and_gone),
        T(test_agent_restart_releases),
        T(test_selector_matching),
        T(test_many_selectors),
        T(test_priority_order),
        T(test_unreadable_spec_is_failed),
        T(test_cancel),
        T(test_progress_counts),
        T(test_status_json),
        T(test_run_results_json),
        T(test_reopen_keeps_everything),
        T(test_migrates_schema_1),
        T(test_batch_group_commit),
        T(test_killed_process_keeps_commits),
        T(test_disk_full_rolls_back),
        T(test_size_limit_is_disk_full),
        T(test_locked_database_is_busy),
        cmocka_unit_test(test_memory_store),
        T(test_refuses_bad_files),
        T(test_lease_complete_rate),
    };
#undef T
    return cmocka_run_group_tests(tests, NULL, NULL);
}
