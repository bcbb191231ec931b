/* store.c - the coordinator's SQLite store: runs, the job queue, agents, attempts, results.
 *
 * Invariants: a job is in exactly one state (CHECK constraint), a leased job always has an
 * agent and a deadline (CHECK), a job has at most one result (UNIQUE job_id), and every state
 * change is one BEGIN IMMEDIATE ... COMMIT that is rolled back whole on any error. A run turns
 * 'done' in the same transaction that takes its last job out of queued/leased.
 *
 * Called by the coordinator's single-threaded loop (coordinator.c) for every HELLO, RESULT,
 * SUBMIT, STATUS, CANCEL and lease; lease_next + complete are the hot pair (thousands per
 * second in the fleet benchmark), so each is a handful of cached prepared statements and one
 * commit. Statements are prepared once at open, in the table k_sql below.
 *
 * Durability: WAL with synchronous=NORMAL. A COMMIT has written its frames to the -wal file
 * (write(2), into the OS page cache) before it returns; the kernel keeps and flushes those
 * pages whatever happens to our process, and the next open replays the WAL. So a coordinator
 * killed at any instant (SIGKILL, segfault, OOM) loses no committed submit, lease or result.
 * Only an OS crash or power loss can roll back the last transactions before a checkpoint
 * (never corrupt the file). synchronous=FULL would fsync the WAL on every commit, i.e. on
 * every lease and result: one fsync each costs from ~0.1 ms (NVMe) to tens of ms (SD cards in
 * device labs) and would cap the queue at hundreds of transitions per second. The power-loss
 * window is also covered one level up: a result lost that way was ACKed, but its job is then
 * back in 'leased' with its old deadline, so it expires and runs again; a lost SUBMIT is lost.
 *
 * Unsigned 64-bit values (seeds, instance numbers, byte counts) are stored as the int64 with
 * the same bits; readers cast back to uint64_t.
 */
#include "qf_store.h"

#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>
#include <sqlite3.h>

#include "qf_err.h"

/* The schema version this build writes (PRAGMA user_version). k_migrations[v] takes a store
 * from version v to v + 1; a later issue appends one entry and bumps this. */
#define STORE_SCHEMA_VERSION 2

/* How long a statement waits for another connection's lock before QF_EBUSY. */
#define STORE_BUSY_TIMEOUT_MS 5000

/* Queued jobs lease_next reads in priority order before it falls back to one probe per
 * distinct selector (see pick_job). */
#define STORE_HEAD_BATCH 16
#define STR_(x) #x
#define STR(x) STR_(x)

/* Checked at COMMIT, not per statement: see the note above k_sql. */
#define FK "DEFERRABLE INITIALLY DEFERRED"

static const char *const k_migrations[STORE_SCHEMA_VERSION] = {
    /* 0 -> 1: the first schema. AUTOINCREMENT on runs and jobs: an id is never reused, so a
     * result replayed from an agent's spool can never land on a different job. */
    "CREATE TABLE runs("
    "  id           INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  suite        TEXT NOT NULL,"
    "  commit_sha   TEXT NOT NULL,"
    "  dirty        INTEGER NOT NULL CHECK(dirty IN (0, 1)),"
    "  branch       TEXT NOT NULL,"
    "  baseline     TEXT NOT NULL,"
    "  max_attempts INTEGER NOT NULL CHECK(max_attempts >= 1),"
    "  submitted_at REAL NOT NULL,"
    "  state        TEXT NOT NULL CHECK(state IN ('active', 'done', 'cancelled')));"
    "CREATE TABLE agents("
    "  id                 INTEGER PRIMARY KEY,"
    "  name               TEXT NOT NULL UNIQUE,"
    "  instance           INTEGER NOT NULL,"
    "  fingerprint        TEXT NOT NULL,"          /* JSON, as the agent sent it */
    "  fingerprint_sha256 TEXT NOT NULL,"          /* hex SHA-256 of fingerprint */
    "  arch               TEXT NOT NULL,"
    "  isa                TEXT NOT NULL,"
    "  backends           TEXT NOT NULL,"
    "  state              TEXT NOT NULL CHECK(state IN ('online', 'lost', 'gone')),"
    "  first_seen         REAL NOT NULL,"
    "  last_seen          REAL NOT NULL);"
    "CREATE TABLE jobs("
    "  id             INTEGER PRIMARY KEY AUTOINCREMENT,"
    "  run_id         INTEGER NOT NULL REFERENCES runs(id) " FK ","
    "  key            TEXT NOT NULL,"
    "  spec           TEXT NOT NULL,"              /* JSON, qf_job_spec_to_json */
    "  selector       TEXT NOT NULL,"
    "  priority       INTEGER NOT NULL,"
    "  state          TEXT NOT NULL"
    "                 CHECK(state IN ('queued', 'leased', 'done', 'failed', 'cancelled')),"
    "  attempt        INTEGER NOT NULL DEFAULT 0," /* leases so far */
    "  max_attempts   INTEGER NOT NULL CHECK(max_attempts >= 1),"
    "  agent_id       INTEGER REFERENCES agents(id) " FK ","
    "  lease_deadline REAL,"
    "  error          TEXT,"                       /* the last failure's reason */
    "  created_at     REAL NOT NULL,"
    "  updated_at     REAL NOT NULL,"
    "  CHECK(state <> 'leased' OR (agent_id IS NOT NULL AND lease_deadline IS NOT NULL)));"
    /* the queue in lease order */
    "CREATE INDEX jobs_queue ON jobs(state, priority DESC, id);"
    /* the same per selector: the best job of one selector is one probe */
    "CREATE INDEX jobs_selector ON jobs(state, selector, priority DESC, id);"
    "CREATE INDEX jobs_run ON jobs(run_id, state);"
    /* no index for "leases of agent X" or "leases past deadline": leased rows are at most the
     * fleet's slots, found through state = 'leased' above, and every index costs a page write
     * in each lease and each result */
    /* one row per finished attempt (ok, failed, timeout, crashed, released, cancelled) */
    "CREATE TABLE attempts("
    "  job_id   INTEGER NOT NULL REFERENCES jobs(id) " FK ","
    "  attempt  INTEGER NOT NULL,"
    "  agent_id INTEGER REFERENCES agents(id) " FK ","
    "  status   TEXT NOT NULL,"
    "  error    TEXT,"
    "  at       REAL NOT NULL,"
    "  PRIMARY KEY(job_id, attempt)) WITHOUT ROWID;"
    /* REAL columns may hold NULL: SQLite stores NaN as NULL */
    "CREATE TABLE results("
    "  id               INTEGER PRIMARY KEY,"
    "  job_id           INTEGER NOT NULL UNIQUE REFERENCES jobs(id) " FK ","
    "  run_id           INTEGER NOT NULL REFERENCES runs(id) " FK ","
    "  attempt          INTEGER NOT NULL,"
    "  agent_id         INTEGER NOT NULL REFERENCES agents(id) " FK ","
    "  status           TEXT NOT NULL,"
    "  key              TEXT NOT NULL,"
    "  metrics          TEXT,"                     /* JSON object; NULL for kinds without */
    "  samples          TEXT NOT NULL,"            /* JSON array, seconds per repetition */
    "  n_samples        INTEGER NOT NULL,"
    "  bytes            INTEGER NOT NULL,"
    "  bpw              REAL,"
    "  throughput_bytes INTEGER NOT NULL,"
    "  dataset_sha256   TEXT NOT NULL,"
    "  kernel           TEXT NOT NULL,"
    "  seed             INTEGER NOT NULL,"
    "  peak_rss_kb      INTEGER NOT NULL,"
    "  wall_s           REAL,"
    "  created_at       REAL NOT NULL);"
    "CREATE INDEX results_run ON results(run_id);",
    /* 1 -> 2: device memory of GPU jobs (0 for CPU jobs and for results stored before) */
    "ALTER TABLE results ADD COLUMN device_mem_bytes INTEGER NOT NULL DEFAULT 0;",
};

/* Every statement the store runs, prepared at open. The name goes into error messages.
 *
 * The hot statements (one lease, one result) are written so that SQLite needs no statement
 * journal and no ephemeral table: no RETURNING, no IN (...) on an index, no recursive CTE,
 * and "OR FAIL" on writes. Each of those makes SQLite allocate and free a 64-90 KiB buffer per
 * statement, and glibc answers with brk() shrink/grow and TLB flushes that cost more than the
 * SQL itself (measured: lease + complete 2-3x slower). OR FAIL instead of the default ABORT is safe because any
 * failed statement rolls back its whole transaction here (tx_end), so "keep the statement's
 * earlier rows" never survives; foreign keys are DEFERRABLE INITIALLY DEFERRED (checked at
 * COMMIT) for the same reason. */
enum stmt_id {
    S_BEGIN, S_BEGIN_READ, S_COMMIT, S_ROLLBACK, S_SAVEPOINT, S_RELEASE, S_ROLLBACK_TO,
    S_RUN_INSERT, S_RUN_STATE, S_RUN_FINISH, S_RUN_FINISH_ALL, S_RUN_CANCEL, S_RUN_LIST,
    S_JOB_INSERT, S_QUEUE_HEAD, S_QUEUE_FIRST_SELECTOR, S_QUEUE_NEXT_SELECTOR, S_QUEUE_BEST_OF,
    S_JOB_GET, S_JOB_LEASE, S_JOB_SPOILED, S_JOB_RENEW, S_JOB_UNLEASE, S_JOB_DONE, S_JOB_RETRY,
    S_JOB_COUNTS_RUN, S_JOB_COUNTS_ALL,
    S_RESULT_INSERT, S_ATTEMPT_INSERT,
    S_AGENT_FIND, S_AGENT_NAME, S_AGENT_INSERT, S_AGENT_UPDATE, S_AGENT_SEEN, S_AGENT_MARK,
    S_AGENT_LIST, S_AGENT_ALL_OFFLINE,
    S_REL_AGENT_ATTEMPTS, S_REL_AGENT_JOBS, S_REL_EXPIRED_ATTEMPTS, S_REL_EXPIRED_JOBS,
    S_CANCEL_ATTEMPTS, S_CANCEL_JOBS, S_RUN_RESULTS, S_AGENT_LEASES, S_AGENT_LIVE_LEASES,
    S_COUNT
};

/* A released lease goes back to the queue, or fails for good after max_attempts. */
#define RETRY_STATE "CASE WHEN attempt >= max_attempts THEN 'failed' ELSE 'queued' END"

/* "Nothing of run ?1 is queued or leased": two index probes on jobs_run. */
#define RUN_IDLE(run)                                                                     \
    "NOT EXISTS (SELECT 1 FROM jobs WHERE run_id = " run " AND state = 'queued') AND "    \
    "NOT EXISTS (SELECT 1 FROM jobs WHERE run_id = " run " AND state = 'leased')"

static const struct { const char *name, *sql; } k_sql[S_COUNT] = {
    [S_BEGIN]      = { "begin", "BEGIN IMMEDIATE" },   /* writers take the lock up front */
    [S_BEGIN_READ] = { "begin read", "BEGIN" },         /* a snapshot for multi-read answers */
    [S_COMMIT]     = { "commit", "COMMIT" },
    [S_ROLLBACK]   = { "rollback", "ROLLBACK" },
    /* inside a batch (qf_store_batch_begin) each operation is a savepoint of the batch */
    [S_SAVEPOINT]  = { "savepoint", "SAVEPOINT op" },
    [S_RELEASE]    = { "release savepoint", "RELEASE op" },
    [S_ROLLBACK_TO] = { "rollback to savepoint", "ROLLBACK TO op" },

    [S_RUN_INSERT] = { "insert run",
        "INSERT INTO runs(suite, commit_sha, dirty, branch, baseline, max_attempts, "
        "submitted_at, state) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'active')" },
    [S_RUN_STATE] = { "find run", "SELECT state FROM runs WHERE id = ?1" },
    [S_RUN_FINISH] = { "finish run",
        "UPDATE OR FAIL runs SET state = 'done' WHERE id = ?1 AND state = 'active' AND "
        RUN_IDLE("?1") },
    [S_RUN_FINISH_ALL] = { "finish runs",
        "UPDATE runs SET state = 'done' WHERE state = 'active' AND " RUN_IDLE("runs.id") },
    [S_RUN_CANCEL] = { "cancel run",
        "UPDATE runs SET state = 'cancelled' WHERE id = ?1 AND state = 'active'" },
    [S_RUN_LIST] = { "list runs",
        "SELECT id, suite, commit_sha, dirty, state FROM runs WHERE ?1 = 0 OR id = ?1 "
        "ORDER BY id" },

    [S_JOB_INSERT] = { "insert job",
        "INSERT OR FAIL INTO jobs(run_id, key, spec, selector, priority, state, attempt, "
        "max_attempts, created_at, updated_at) VALUES (?1, ?2, ?3, ?4, ?5, 'queued', 0, ?6, ?7, ?7)" },
    [S_QUEUE_HEAD] = { "read queue",
        "SELECT id, selector FROM jobs WHERE state = 'queued' "
        "ORDER BY priority DESC, id LIMIT " STR(STORE_HEAD_BATCH) },
    /* the distinct selectors of queued jobs, one index probe each (a loose index scan) */
    [S_QUEUE_FIRST_SELECTOR] = { "read queue selectors",
        "SELECT min(selector) FROM jobs WHERE state = 'queued'" },
    [S_QUEUE_NEXT_SELECTOR] = { "read queue selectors",
        "SELECT min(selector) FROM jobs WHERE state = 'queued' AND selector > ?1" },
    [S_QUEUE_BEST_OF] = { "read queue by selector",
        "SELECT id, priority FROM jobs WHERE state = 'queued' AND selector = ?1 "
        "ORDER BY priority DESC, id LIMIT 1" },
    [S_JOB_GET] = { "read job",
        "SELECT state, attempt, agent_id, run_id, max_attempts, key, spec FROM jobs "
        "WHERE id = ?1" },
    [S_JOB_LEASE] = { "lease job",
        "UPDATE OR FAIL jobs SET state = 'leased', attempt = ?2, agent_id = ?3, "
        "lease_deadline = ?4, updated_at = ?5 WHERE id = ?1" },
    [S_JOB_SPOILED] = { "fail unreadable job",
        "UPDATE OR FAIL jobs SET state = 'failed', agent_id = NULL, lease_deadline = NULL, "
        "error = ?2, updated_at = ?3 WHERE id = ?1" },
    [S_JOB_RENEW] = { "renew lease",
        "UPDATE OR FAIL jobs SET lease_deadline = ?4 "
        "WHERE id = ?1 AND state = 'leased' AND attempt = ?2 AND agent_id = ?3" },
    [S_JOB_UNLEASE] = { "hand a lease back",
        "UPDATE OR FAIL jobs SET state = 'queued', attempt = attempt - 1, agent_id = NULL, "
        "lease_deadline = NULL, updated_at = ?4 "
        "WHERE id = ?1 AND state = 'leased' AND attempt = ?2 AND agent_id = ?3" },
    [S_JOB_DONE] = { "finish job",
        "UPDATE OR FAIL jobs SET state = 'done', lease_deadline = NULL, error = NULL, "
        "updated_at = ?2 WHERE id = ?1" },
    [S_JOB_RETRY] = { "retry job",
        "UPDATE OR FAIL jobs SET state = ?2, agent_id = NULL, lease_deadline = NULL, "
        "error = ?3, updated_at = ?4 WHERE id = ?1" },
    [S_JOB_COUNTS_RUN] = { "count jobs of run",
        "SELECT state, count(*) FROM jobs WHERE run_id = ?1 GROUP BY state" },
    [S_JOB_COUNTS_ALL] = { "count jobs",
        "SELECT state, count(*) FROM jobs GROUP BY state" },

    [S_RESULT_INSERT] = { "insert result",
        "INSERT OR FAIL INTO results(job_id, run_id, attempt, agent_id, status, key, metrics, "
        "samples, n_samples, bytes, bpw, throughput_bytes, dataset_sha256, kernel, seed, "
        "peak_rss_kb, wall_s, created_at, device_mem_bytes) VALUES (?1, ?2, ?3, ?4, 'ok', ?5, "
        "?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17, ?18)" },
    [S_ATTEMPT_INSERT] = { "insert attempt",
        "INSERT OR FAIL INTO attempts(job_id, attempt, agent_id, status, error, at) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6)" },

    [S_AGENT_FIND] = { "find agent", "SELECT id, instance FROM agents WHERE name = ?1" },
    [S_AGENT_NAME] = { "find agent", "SELECT name FROM agents WHERE id = ?1" },
    [S_AGENT_INSERT] = { "insert agent",
        "INSERT INTO agents(name, instance, fingerprint, fingerprint_sha256, arch, isa, "
        "backends, state, first_seen, last_seen) "
        "VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, 'online', ?8, ?8)" },
    [S_AGENT_UPDATE] = { "update agent",
        "UPDATE agents SET instance = ?2, fingerprint = ?3, fingerprint_sha256 = ?4, arch = ?5, "
        "isa = ?6, backends = ?7, state = 'online', last_seen = ?8 WHERE id = ?1" },
    [S_AGENT_SEEN] = { "touch agent",
        "UPDATE OR FAIL agents SET last_seen = ?2 WHERE id = ?1" },
    [S_AGENT_MARK] = { "mark agent", "UPDATE agents SET state = ?2 WHERE id = ?1" },
    [S_AGENT_ALL_OFFLINE] = { "mark agents unseen",
        "UPDATE agents SET state = 'lost' WHERE state = 'online'" },
    [S_AGENT_LIST] = { "list agents",
        "SELECT id, name, state, last_seen, arch, isa, backends, fingerprint_sha256 "
        "FROM agents ORDER BY name" },

    /* releases (rare, many rows): the attempts rows first (they read the leases), then jobs */
    [S_REL_AGENT_ATTEMPTS] = { "record released leases",
        "INSERT INTO attempts(job_id, attempt, agent_id, status, error, at) "
        "SELECT id, attempt, agent_id, 'released', ?2, ?3 FROM jobs "
        "WHERE state = 'leased' AND agent_id = ?1" },
    [S_REL_AGENT_JOBS] = { "release leases",
        "UPDATE jobs SET state = " RETRY_STATE ", agent_id = NULL, lease_deadline = NULL, "
        "error = ?2, updated_at = ?3 WHERE state = 'leased' AND agent_id = ?1" },
    [S_REL_EXPIRED_ATTEMPTS] = { "record expired leases",
        "INSERT INTO attempts(job_id, attempt, agent_id, status, error, at) "
        "SELECT id, attempt, agent_id, 'released', 'lease expired', ?1 FROM jobs "
        "WHERE state = 'leased' AND lease_deadline < ?1" },
    [S_REL_EXPIRED_JOBS] = { "expire leases",
        "UPDATE jobs SET state = " RETRY_STATE ", agent_id = NULL, lease_deadline = NULL, "
        "error = 'lease expired', updated_at = ?1 "
        "WHERE state = 'leased' AND lease_deadline < ?1" },

    [S_CANCEL_ATTEMPTS] = { "record cancelled leases",
        "INSERT INTO attempts(job_id, attempt, agent_id, status, error, at) "
        "SELECT id, attempt, agent_id, 'cancelled', 'run cancelled', ?2 FROM jobs "
        "WHERE run_id = ?1 AND state = 'leased'" },
    [S_CANCEL_JOBS] = { "cancel jobs",
        "UPDATE jobs SET state = 'cancelled', lease_deadline = NULL, error = 'run cancelled', "
        "updated_at = ?2 WHERE run_id = ?1 AND (state = 'queued' OR state = 'leased')" },

    /* a run's jobs with their result or, without one, their last attempt (for its status
     * and agent) */
    [S_RUN_RESULTS] = { "read run results",
        "SELECT j.id, j.key, j.state, j.spec, j.attempt, j.error, r.id IS NOT NULL, r.bytes, "
        "r.bpw, r.throughput_bytes, r.samples, r.metrics, r.dataset_sha256, r.kernel, "
        "r.peak_rss_kb, r.wall_s, a.status, g.name, r.device_mem_bytes "
        "FROM jobs j LEFT JOIN results r ON r.job_id = j.id "
        "LEFT JOIN attempts a ON a.job_id = j.id AND a.attempt = j.attempt "
        "LEFT JOIN agents g ON g.id = coalesce(r.agent_id, a.agent_id, j.agent_id) "
        "WHERE j.run_id = ?1 ORDER BY j.id" },
    [S_AGENT_LEASES] = { "count leases",
        "SELECT count(*) FROM jobs WHERE state = 'leased' AND agent_id = ?1" },
    [S_AGENT_LIVE_LEASES] = { "read an agent's leases",
        "SELECT id, attempt, run_id, spec FROM jobs WHERE state = 'leased' AND agent_id = ?1 "
        "ORDER BY id" },
};

struct qf_store {
    sqlite3      *db;
    char         *path;              /* for messages */
    sqlite3_stmt *st[S_COUNT];
    bool          batch;             /* inside qf_store_batch_begin .. _commit */
};

/* ---- errors, statements, transactions -------------------------------------------------- */

/* Maps a SQLite failure of statement `op` to a qf_err and logs it. Reads sqlite3_errmsg, so
 * call it before anything else runs on the connection (a ROLLBACK would overwrite it). */
static int db_fail(const qf_store *s, int rc, const char *op)
{
    const char *msg = sqlite3_errmsg(s->db);
    switch (rc & 0xff) {
    case SQLITE_FULL:
        return qf_errorf(QF_EIO, "store %s: %s: database or disk full (%s): free disk space "
                         "or raise the coordinator's --max-db-size; nothing was half-written",
                         s->path, op, msg);
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
        return qf_errorf(QF_EBUSY, "store %s: %s: database is locked by another process (%s): "
                         "is a second coordinator or a writer using it?", s->path, op, msg);
    case SQLITE_IOERR:
    case SQLITE_CANTOPEN: {
        int e = sqlite3_system_errno(s->db);   /* the syscall's reason says what to fix */
        return qf_errorf(QF_EIO, "store %s: %s: %s%s%s%s", s->path, op, msg, e ? " (" : "",
                         e ? strerror(e) : "", e ? ")" : "");
    }
    case SQLITE_NOMEM:
        return qf_errorf(QF_ENOMEM, "store %s: %s: %s", s->path, op, msg);
    case SQLITE_NOTADB:
        return qf_errorf(QF_EDB, "store %s: %s: not a SQLite database (%s)", s->path, op, msg);
    default:
        return qf_errorf(QF_EDB, "store %s: %s: %s", s->path, op, msg);
    }
}

/* The cached statement id, ready to bind. */
static sqlite3_stmt *stmt(const qf_store *s, enum stmt_id id)
{
    return s->st[id];
}

static void stmt_reset(sqlite3_stmt *st)
{
    sqlite3_reset(st);          /* returns the last step's error, already handled */
    sqlite3_clear_bindings(st); /* no stale SQLITE_STATIC pointer survives the call */
}

/* Binding with SQLITE_STATIC never allocates: a failure is a wrong index, i.e. our bug. Every
 * string bound stays alive until its statement is reset. */
static void bind_i64(sqlite3_stmt *st, int i, int64_t v)
{
    int rc = sqlite3_bind_int64(st, i, v);
    assert(rc == SQLITE_OK);
    (void)rc;
}

static void bind_u64(sqlite3_stmt *st, int i, uint64_t v)
{
    bind_i64(st, i, (int64_t)v);
}

static void bind_dbl(sqlite3_stmt *st, int i, double v)
{
    int rc = sqlite3_bind_double(st, i, v);
    assert(rc == SQLITE_OK);
    (void)rc;
}

/* A string that may come from a fixed-size field: bounded by its size. */
static void bind_txt(sqlite3_stmt *st, int i, const char *v, size_t size)
{
    int rc = v ? sqlite3_bind_text(st, i, v, (int)strnlen(v, size), SQLITE_STATIC)
               : sqlite3_bind_null(st, i);
    assert(rc == SQLITE_OK);
    (void)rc;
}

#define TXT_ANY ((size_t)1 << 30) /* bound for strings that are ours and terminated */

/* Steps st once: 1 for a row, 0 when done (st is reset), a negative qf_err (st reset). */
static int step(const qf_store *s, sqlite3_stmt *st, enum stmt_id id)
{
    int rc = sqlite3_step(st);
    if (rc == SQLITE_ROW)
        return 1;
    int err = rc == SQLITE_DONE ? 0 : db_fail(s, rc, k_sql[id].name);
    stmt_reset(st);
    return err;
}

/* Runs a statement that returns no rows we need: steps to the end, resets. */
static int exec_stmt(const qf_store *s, enum stmt_id id)
{
    sqlite3_stmt *st = stmt(s, id);
    int rc;
    while ((rc = step(s, st, id)) == 1) {
    }
    return rc;
}

/* One operation's transaction: its own BEGIN IMMEDIATE .. COMMIT, or inside a batch a
 * savepoint, so an operation is all-or-nothing either way. */
static int tx_begin(const qf_store *s)
{
    return exec_stmt(s, s->batch ? S_SAVEPOINT : S_BEGIN);
}

/* Read-only snapshot for multi-statement answers (a savepoint of the batch inside one). */
static int tx_begin_read(const qf_store *s)
{
    return exec_stmt(s, s->batch ? S_SAVEPOINT : S_BEGIN_READ);
}

/* Commits when err is 0, else (or when the commit fails) rolls back. Returns the outcome. */
static int tx_end(const qf_store *s, int err)
{
    if (s->batch) {
        if (err && !sqlite3_get_autocommit(s->db)) {
            sqlite3_stmt *st = stmt(s, S_ROLLBACK_TO);
            sqlite3_step(st);
            stmt_reset(st);
        }
        if (!sqlite3_get_autocommit(s->db)) {
            int rel = exec_stmt(s, S_RELEASE);
            if (!err)
                err = rel;
        }
        return err;
    }
    if (err == 0) {
        err = exec_stmt(s, S_COMMIT);
        if (err == 0)
            return 0;
    }
    /* SQLite rolls some errors back by itself (SQLITE_FULL may); roll back what is left */
    if (!sqlite3_get_autocommit(s->db)) {
        sqlite3_stmt *st = stmt(s, S_ROLLBACK);
        sqlite3_step(st);
        stmt_reset(st);
    }
    return err;
}

/* Text of column i, "" for NULL. Valid until the next step or reset of st. */
static const char *col_txt(sqlite3_stmt *st, int i)
{
    const unsigned char *t = sqlite3_column_text(st, i);
    return t ? (const char *)t : "";
}

/* ---- open, close ----------------------------------------------------------------------- */

/* Brings the schema to STORE_SCHEMA_VERSION in one transaction; refuses a newer one. */
static int migrate(qf_store *s)
{
    char *msg = NULL;
    int rc = sqlite3_exec(s->db, "BEGIN IMMEDIATE", NULL, NULL, NULL);
    if (rc != SQLITE_OK)
        return db_fail(s, rc, "open");
    sqlite3_stmt *st = NULL;
    int version = -1;
    rc = sqlite3_prepare_v2(s->db, "PRAGMA user_version", -1, &st, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        version = sqlite3_column_int(st, 0);
        rc = SQLITE_OK;
    }
    int err = rc == SQLITE_OK ? 0 : db_fail(s, rc, "read schema version");
    sqlite3_finalize(st);
    if (!err && (version < 0 || version > STORE_SCHEMA_VERSION))
        err = qf_errorf(QF_EDB, "store %s: schema version %d is not one this qfleet knows "
                        "(it reads 0 to %d): written by a newer qfleet? upgrade qfleet",
                        s->path, version, STORE_SCHEMA_VERSION);
    for (int v = version; !err && v < STORE_SCHEMA_VERSION; v++) {
        rc = sqlite3_exec(s->db, k_migrations[v], NULL, NULL, &msg);
        if (rc != SQLITE_OK) {
            err = qf_errorf(rc == SQLITE_FULL ? QF_EIO : QF_EDB,
                            "store %s: creating schema version %d: %s", s->path, v + 1,
                            msg ? msg : sqlite3_errstr(rc));
            sqlite3_free(msg);
            msg = NULL;
        }
    }
    if (!err && version != STORE_SCHEMA_VERSION) {
        char sql[64];
        snprintf(sql, sizeof sql, "PRAGMA user_version = %d", STORE_SCHEMA_VERSION);
        rc = sqlite3_exec(s->db, sql, NULL, NULL, NULL);
        if (rc != SQLITE_OK)
            err = db_fail(s, rc, "write schema version");
    }
    if (!err) {
        rc = sqlite3_exec(s->db, "COMMIT", NULL, NULL, NULL);
        if (rc != SQLITE_OK)
            err = db_fail(s, rc, "commit schema");
    }
    if (err && !sqlite3_get_autocommit(s->db))
        sqlite3_exec(s->db, "ROLLBACK", NULL, NULL, NULL);
    return err;
}

/* The connection's settings; the first statement that reads the file, so it is also where a
 * file that is not a database is found. */
static int configure(qf_store *s)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_busy_timeout(s->db, STORE_BUSY_TIMEOUT_MS);
    if (rc != SQLITE_OK)
        return db_fail(s, rc, "set busy timeout");
    /* WAL: readers (STATUS, reports) never block the writer, and commits are appends */
    rc = sqlite3_prepare_v2(s->db, "PRAGMA journal_mode = WAL", -1, &st, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        const char *mode = col_txt(st, 0);
        /* ":memory:" stays "memory"; anything else means WAL could not be had */
        if (strcmp(mode, "wal") != 0 && strcmp(mode, "memory") != 0) {
            sqlite3_finalize(st);
            return qf_errorf(QF_EDB, "store %s: cannot use WAL mode (journal mode is %s)",
                             s->path, mode);
        }
        rc = SQLITE_OK;
    }
    int err = rc == SQLITE_OK ? 0 : db_fail(s, rc, "set WAL mode");
    sqlite3_finalize(st);
    if (err)
        return err;
    /* NORMAL: durable against any crash of this process, see the top of the file */
    rc = sqlite3_exec(s->db, "PRAGMA synchronous = NORMAL; PRAGMA foreign_keys = ON", NULL,
                      NULL, NULL);
    if (rc != SQLITE_OK)
        return db_fail(s, rc, "set pragmas");
    return 0;
}

int qf_store_open(const char *path, qf_store **out)
{
    assert(path && out);
    *out = NULL;
    if (sodium_init() < 0)
        return qf_errorf(QF_EUNSUP, "store %s: libsodium cannot initialise", path);
    qf_store *s = calloc(1, sizeof *s);
    if (!s || !(s->path = strdup(path))) {
        free(s);
        return QF_ENOMEM;
    }
    /* NOMUTEX: one qf_store per thread (qf_store.h), so SQLite's own mutexes are waste */
    int rc = sqlite3_open_v2(path, &s->db,
                             SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX,
                             NULL);
    int err = 0;
    if (rc != SQLITE_OK)
        err = s->db ? db_fail(s, rc, "open")
                    : qf_errorf(QF_ENOMEM, "store %s: open: %s", path, sqlite3_errstr(rc));
    if (!err)
        sqlite3_extended_result_codes(s->db, 1);
    if (!err)
        err = configure(s);
    if (!err)
        err = migrate(s);
    for (int i = 0; !err && i < S_COUNT; i++) {
        assert(k_sql[i].sql);
        rc = sqlite3_prepare_v3(s->db, k_sql[i].sql, -1, SQLITE_PREPARE_PERSISTENT, &s->st[i],
                                NULL);
        if (rc != SQLITE_OK)
            err = db_fail(s, rc, k_sql[i].name);
    }
    if (err) {
        qf_store_close(&s);
        return err;
    }
    *out = s;
    return 0;
}

int qf_store_set_limits(qf_store *s, uint32_t busy_ms, uint64_t max_bytes)
{
    assert(s);
    int rc = sqlite3_busy_timeout(s->db, busy_ms ? (int)busy_ms : STORE_BUSY_TIMEOUT_MS);
    if (rc != SQLITE_OK)
        return db_fail(s, rc, "set busy timeout");
    if (!max_bytes)
        return 0;
    /* max_page_count counts pages of the main file (the WAL is bounded by checkpoints); SQLite
     * never sets it below the file's current size, so an over-size store just stops growing */
    sqlite3_stmt *st = NULL;
    int64_t page = 0, pages = 0;
    rc = sqlite3_prepare_v2(s->db, "PRAGMA page_size", -1, &st, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW)
        page = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (page <= 0)
        return db_fail(s, rc, "read page_size");
    char sql[64];
    snprintf(sql, sizeof sql, "PRAGMA max_page_count = %" PRIu64,
             max_bytes / (uint64_t)page ? max_bytes / (uint64_t)page : 1);
    rc = sqlite3_prepare_v2(s->db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK && (rc = sqlite3_step(st)) == SQLITE_ROW)
        pages = sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    if (pages <= 0)
        return db_fail(s, rc, "set max_page_count");
    if ((uint64_t)(pages * page) > max_bytes)
        fprintf(stderr, "qfleet: store %s is already %" PRId64 " bytes, over its limit of %" PRIu64
                ": it will take no new runs or results until the limit is raised\n", s->path,
                pages * page, max_bytes);
    return 0;
}

void qf_store_close(qf_store **sp)
{
    if (!sp || !*sp)
        return;
    qf_store *s = *sp;
    for (int i = 0; i < S_COUNT; i++)
        sqlite3_finalize(s->st[i]);
    /* the last connection to close checkpoints the WAL into the main file */
    sqlite3_close(s->db);
    free(s->path);
    free(s);
    *sp = NULL;
}

/* ---- runs and jobs --------------------------------------------------------------------- */

/* Marks run_id done if nothing of it is queued or leased any more. */
static int finish_run(const qf_store *s, int64_t run_id)
{
    bind_i64(stmt(s, S_RUN_FINISH), 1, run_id);
    return exec_stmt(s, S_RUN_FINISH);
}

static int insert_jobs(const qf_store *s, int64_t run_id, const qf_job_spec *jobs, size_t n,
                       uint32_t max_attempts, double now)
{
    sqlite3_stmt *st = stmt(s, S_JOB_INSERT);
    for (size_t i = 0; i < n; i++) {
        char key[QF_JOB_KEY_MAX];
        qf_job_key(&jobs[i], key);
        char *spec = qf_job_spec_to_json(&jobs[i]);
        if (!spec)
            return qf_errorf(QF_ENOMEM, "store %s: submit: cannot encode job %zu", s->path, i);
        bind_i64(st, 1, run_id);
        bind_txt(st, 2, key, sizeof key);
        bind_txt(st, 3, spec, TXT_ANY);
        bind_txt(st, 4, jobs[i].selector, sizeof jobs[i].selector);
        bind_i64(st, 5, jobs[i].priority);
        bind_i64(st, 6, max_attempts);
        bind_dbl(st, 7, now);
        int err = exec_stmt(s, S_JOB_INSERT);
        free(spec);
        if (err)
            return err;
    }
    return 0;
}

int qf_store_submit(qf_store *s, const qf_run_info *run, const qf_job_spec *jobs, size_t n,
                    double now, int64_t *run_id)
{
    assert(s && run && (jobs || n == 0) && run_id);
    *run_id = 0;
    uint32_t max_attempts = run->max_attempts ? run->max_attempts : 3;
    int err = tx_begin(s);
    if (err)
        return err;
    sqlite3_stmt *st = stmt(s, S_RUN_INSERT);
    bind_txt(st, 1, run->suite, sizeof run->suite);
    bind_txt(st, 2, run->commit, sizeof run->commit);
    bind_i64(st, 3, run->dirty ? 1 : 0);
    bind_txt(st, 4, run->branch, sizeof run->branch);
    bind_txt(st, 5, run->baseline, sizeof run->baseline);
    bind_i64(st, 6, max_attempts);
    bind_dbl(st, 7, now);
    err = exec_stmt(s, S_RUN_INSERT);
    int64_t id = sqlite3_last_insert_rowid(s->db);
    if (!err)
        err = insert_jobs(s, id, jobs, n, max_attempts, now);
    if (!err)
        err = finish_run(s, id);     /* a run of no jobs is done at once */
    err = tx_end(s, err);
    if (!err)
        *run_id = id;
    return err;
}

/* ---- leases ---------------------------------------------------------------------------- */

/* A job row as lease and complete need it. */
typedef struct job_row {
    char     state[16];
    uint32_t attempt, max_attempts;
    int64_t  agent_id;                  /* 0 when NULL */
    int64_t  run_id;
    char     key[QF_JOB_KEY_MAX];
} job_row;

/* Reads job_id: 1 with *r filled, 0 if there is no such job, or a negative qf_err. With spec
 * non-NULL, also parses the stored spec; its outcome goes to *spec_err (reason in why). */
static int job_get(const qf_store *s, int64_t job_id, job_row *r, qf_job_spec *spec,
                   int *spec_err, char *why, size_t why_len)
{
    sqlite3_stmt *st = stmt(s, S_JOB_GET);
    bind_i64(st, 1, job_id);
    int rc = step(s, st, S_JOB_GET);
    if (rc != 1)
        return rc;
    snprintf(r->state, sizeof r->state, "%s", col_txt(st, 0));
    r->attempt = (uint32_t)sqlite3_column_int64(st, 1);
    r->agent_id = sqlite3_column_int64(st, 2);
    r->run_id = sqlite3_column_int64(st, 3);
    r->max_attempts = (uint32_t)sqlite3_column_int64(st, 4);
    snprintf(r->key, sizeof r->key, "%s", col_txt(st, 5));
    if (spec)
        *spec_err = qf_job_spec_from_json(col_txt(st, 6), spec, why, why_len);
    stmt_reset(st);
    return 1;
}

/* Finds the job lease_next should take: the first queued job in (priority DESC, id) order
 * whose selector matches caps; 0 in *job_id when there is none.
 *
 * Selectors are matched in C (qf_selector_match: globs, word lists), not in SQL, so the
 * question is how many queued rows to look at. Two passes:
 *  1. the head of the queue, STORE_HEAD_BATCH rows: when most jobs fit most agents, the first
 *     row matches and this is one short index read;
 *  2. otherwise, one index probe per *distinct* selector among queued jobs (a loose index scan
 *     on jobs_selector), matching each selector once and taking the best job of the matching
 *     ones (one more probe each). A suite has a handful of selectors, so with 100k queued jobs
 *     of which few fit this agent, this is tens of probes instead of a 100k-row scan; the cost
 *     grows with the number of distinct selectors, never with the queue's length. */
static int pick_job(const qf_store *s, const qf_agent_caps *caps, int64_t *job_id)
{
    *job_id = 0;
    sqlite3_stmt *st = stmt(s, S_QUEUE_HEAD);
    int rc, rows = 0;
    while ((rc = step(s, st, S_QUEUE_HEAD)) == 1) {
        rows++;
        if (qf_selector_match(col_txt(st, 1), caps)) {
            *job_id = sqlite3_column_int64(st, 0);
            stmt_reset(st);
            return 0;
        }
    }
    if (rc < 0 || rows < STORE_HEAD_BATCH)
        return rc;          /* error, or the whole queue was read and nothing fits */

    char selector[QF_JOB_SELECTOR_MAX + 1];
    int64_t best_prio = 0;
    enum stmt_id next = S_QUEUE_FIRST_SELECTOR;
    for (;;) {
        st = stmt(s, next);
        if (next == S_QUEUE_NEXT_SELECTOR)
            bind_txt(st, 1, selector, sizeof selector);
        rc = step(s, st, next);
        if (rc <= 0)
            return rc;          /* min() always gives a row; be safe anyway */
        bool end = sqlite3_column_type(st, 0) == SQLITE_NULL;
        if (!end)
            snprintf(selector, sizeof selector, "%s", col_txt(st, 0));
        stmt_reset(st);
        if (end)
            return 0;
        next = S_QUEUE_NEXT_SELECTOR;
        if (!qf_selector_match(selector, caps))
            continue;
        st = stmt(s, S_QUEUE_BEST_OF);
        bind_txt(st, 1, selector, sizeof selector);
        rc = step(s, st, S_QUEUE_BEST_OF);
        if (rc < 0)
            return rc;
        if (rc == 1) {
            int64_t id = sqlite3_column_int64(st, 0), prio = sqlite3_column_int64(st, 1);
            if (!*job_id || prio > best_prio || (prio == best_prio && id < *job_id)) {
                *job_id = id;
                best_prio = prio;
            }
            stmt_reset(st);
        }
    }
}

/* Adds the attempts row of one finished attempt. */
static int record_attempt(const qf_store *s, int64_t job_id, uint32_t attempt, int64_t agent_id,
                          const char *status, const char *error, size_t error_size,
                          double now)
{
    sqlite3_stmt *st = stmt(s, S_ATTEMPT_INSERT);
    bind_i64(st, 1, job_id);
    bind_i64(st, 2, attempt);
    bind_i64(st, 3, agent_id);
    bind_txt(st, 4, status, TXT_ANY);
    bind_txt(st, 5, error, error_size);
    bind_dbl(st, 6, now);
    return exec_stmt(s, S_ATTEMPT_INSERT);
}

/* A stored spec we cannot read (hand-edited, or written by a buggy build) would otherwise head
 * the queue forever: the job fails with the reason, and the queue moves on. */
static int fail_spoiled(const qf_store *s, int64_t job_id, const job_row *r, int64_t agent_id,
                        const char *why, double now)
{
    char reason[QF_JOB_ERROR_MAX];
    snprintf(reason, sizeof reason, "stored spec unreadable: %s", why);
    qf_errorf(QF_EDB, "store %s: job %" PRId64 ": %s; failing it", s->path, job_id, reason);
    int err = record_attempt(s, job_id, r->attempt + 1, agent_id, "failed", reason,
                             sizeof reason, now);
    if (!err) {
        sqlite3_stmt *st = stmt(s, S_JOB_SPOILED);
        bind_i64(st, 1, job_id);
        bind_txt(st, 2, reason, sizeof reason);
        bind_dbl(st, 3, now);
        err = exec_stmt(s, S_JOB_SPOILED);
    }
    return err ? err : finish_run(s, r->run_id);
}

int qf_store_lease_next(qf_store *s, int64_t agent_id, const qf_agent_caps *caps, double now,
                        double lease_s, qf_lease *out)
{
    assert(s && caps && out);
    memset(out, 0, sizeof *out);
    int err = tx_begin(s);
    if (err)
        return err;
    while (!err) {
        int64_t job_id;
        job_row r;
        int spec_err = 0;
        char why[QF_JOB_ERROR_MAX - 32];
        err = pick_job(s, caps, &job_id);
        if (!err && !job_id)
            err = QF_ENOENT;
        if (err)
            break;
        int rc = job_get(s, job_id, &r, &out->spec, &spec_err, why, sizeof why);
        if (rc <= 0) {
            err = rc < 0 ? rc : qf_errorf(QF_EDB, "store %s: job %" PRId64 " vanished while "
                                          "being leased", s->path, job_id);
            break;
        }
        if (spec_err) {
            err = fail_spoiled(s, job_id, &r, agent_id, why, now);
            continue;
        }
        sqlite3_stmt *st = stmt(s, S_JOB_LEASE);
        bind_i64(st, 1, job_id);
        bind_i64(st, 2, r.attempt + 1);
        bind_i64(st, 3, agent_id);
        bind_dbl(st, 4, now + (double)out->spec.timeout_ms / 1000.0 + lease_s);
        bind_dbl(st, 5, now);
        err = exec_stmt(s, S_JOB_LEASE);
        if (!err) {
            out->job_id = job_id;
            out->attempt = r.attempt + 1;
            out->run_id = r.run_id;
        }
        break;
    }
    err = tx_end(s, err);
    if (err)
        memset(out, 0, sizeof *out);
    return err;
}

int qf_store_renew(qf_store *s, int64_t job_id, uint32_t attempt, int64_t agent_id,
                   double deadline)
{
    assert(s);
    sqlite3_stmt *st = stmt(s, S_JOB_RENEW);
    bind_i64(st, 1, job_id);
    bind_i64(st, 2, attempt);
    bind_i64(st, 3, agent_id);
    bind_dbl(st, 4, deadline);
    /* one statement: autocommit is its transaction */
    int err = exec_stmt(s, S_JOB_RENEW);
    if (!err && sqlite3_changes(s->db) == 0)
        err = QF_EEXIST;
    return err;
}

int qf_store_unlease(qf_store *s, int64_t job_id, uint32_t attempt, int64_t agent_id,
                     double now)
{
    assert(s);
    sqlite3_stmt *st = stmt(s, S_JOB_UNLEASE);
    bind_i64(st, 1, job_id);
    bind_i64(st, 2, attempt);
    bind_i64(st, 3, agent_id);
    bind_dbl(st, 4, now);
    /* one statement: autocommit (or the batch's savepoint-free statement) is its transaction */
    int err = exec_stmt(s, S_JOB_UNLEASE);
    if (!err && sqlite3_changes(s->db) == 0)
        err = QF_EEXIST;
    return err;
}

/* ---- results --------------------------------------------------------------------------- */

static int store_ok(const qf_store *s, int64_t job_id, const job_row *r,
                    const qf_job_result *res, const char *metrics, const char *samples,
                    double now)
{
    sqlite3_stmt *st = stmt(s, S_JOB_DONE);
    bind_i64(st, 1, job_id);
    bind_dbl(st, 2, now);
    int err = exec_stmt(s, S_JOB_DONE);
    if (err)
        return err;
    st = stmt(s, S_RESULT_INSERT);
    bind_i64(st, 1, job_id);
    bind_i64(st, 2, r->run_id);
    bind_i64(st, 3, r->attempt);
    bind_i64(st, 4, r->agent_id);
    bind_txt(st, 5, r->key, sizeof r->key);
    bind_txt(st, 6, metrics, TXT_ANY);
    bind_txt(st, 7, samples, TXT_ANY);
    bind_i64(st, 8, res->n_samples);
    bind_u64(st, 9, res->bytes);
    bind_dbl(st, 10, res->bpw);
    bind_u64(st, 11, res->throughput_bytes);
    bind_txt(st, 12, res->dataset_sha256, sizeof res->dataset_sha256);
    bind_txt(st, 13, res->kernel, sizeof res->kernel);
    bind_u64(st, 14, res->seed);
    bind_u64(st, 15, res->peak_rss_kb);
    bind_dbl(st, 16, res->wall_s);
    bind_dbl(st, 17, now);
    bind_u64(st, 18, res->device_mem_bytes);
    err = exec_stmt(s, S_RESULT_INSERT);
    if (!err)
        err = record_attempt(s, job_id, r->attempt, r->agent_id, "ok", NULL, 0, now);
    if (!err)
        err = finish_run(s, r->run_id);
    return err;
}

/* A failed attempt: requeued, or failed for good with the reason after max_attempts. */
static int store_failure(const qf_store *s, int64_t job_id, const job_row *r,
                         const qf_job_result *res, double now)
{
    const char *status = qf_job_status_name(res->status);
    char reason[QF_JOB_ERROR_MAX + 32];
    size_t elen = strnlen(res->error, sizeof res->error);
    if (elen)
        snprintf(reason, sizeof reason, "%s: %.*s", status, (int)elen, res->error);
    else
        snprintf(reason, sizeof reason, "%s", status);
    bool final = r->attempt >= r->max_attempts;

    sqlite3_stmt *st = stmt(s, S_JOB_RETRY);
    bind_i64(st, 1, job_id);
    bind_txt(st, 2, final ? "failed" : "queued", TXT_ANY);
    bind_txt(st, 3, reason, sizeof reason);
    bind_dbl(st, 4, now);
    int err = exec_stmt(s, S_JOB_RETRY);
    if (!err)
        err = record_attempt(s, job_id, r->attempt, r->agent_id, status,
                             elen ? res->error : NULL, sizeof res->error, now);
    if (!err && final)
        err = finish_run(s, r->run_id);
    return err;
}

int qf_store_complete(qf_store *s, int64_t job_id, uint32_t attempt, int64_t agent_id,
                      const qf_job_result *res, double now)
{
    assert(s && res && (res->samples || res->n_samples == 0));
    /* encode before taking the write lock */
    char *metrics = NULL, *samples = NULL;
    if (res->status == QF_JOB_OK) {
        samples = qf_job_samples_to_json(res->samples, res->n_samples);
        metrics = qf_job_metrics_to_json(res);
        if (!samples || ((res->has_metrics || res->has_model) && !metrics)) {
            free(samples);
            free(metrics);
            return qf_errorf(QF_ENOMEM, "store %s: cannot encode the result of job %" PRId64,
                             s->path, job_id);
        }
    }
    int err = tx_begin(s);
    if (!err) {
        job_row r;
        int rc = job_get(s, job_id, &r, NULL, NULL, NULL, 0);
        /* only the live lease may finish the job: anything else is a duplicate, a late
         * answer of an expired or released attempt, a cancelled job, or a job this store
         * never had (a spool replayed against a new database) */
        if (rc < 0)
            err = rc;
        else if (rc == 0 || strcmp(r.state, "leased") != 0 || r.attempt != attempt ||
                 r.agent_id != agent_id)
            err = QF_EEXIST;
        else if (res->status == QF_JOB_OK)
            err = store_ok(s, job_id, &r, res, metrics, samples, now);
        else
            err = store_failure(s, job_id, &r, res, now);
        if (!err) {
            /* a result is a sign of life */
            sqlite3_stmt *st = stmt(s, S_AGENT_SEEN);
            bind_i64(st, 1, agent_id);
            bind_dbl(st, 2, now);
            err = exec_stmt(s, S_AGENT_SEEN);
        }
        err = tx_end(s, err);
    }
    free(samples);
    free(metrics);
    return err;
}

/* ---- agents and releases --------------------------------------------------------------- */

/* The reason coordinator.c gives for BYE: the agent left on purpose ('gone'); any other reason
 * (silent too long, dropped for bad frames) leaves it 'lost'. */
static const char k_reason_bye[] = "said goodbye";

/* Releases every lease of agent_id with reason; *released = how many. Inside a transaction. */
static int release_agent(const qf_store *s, int64_t agent_id, const char *reason, double now,
                         int *released)
{
    sqlite3_stmt *st = stmt(s, S_REL_AGENT_ATTEMPTS);
    bind_i64(st, 1, agent_id);
    bind_txt(st, 2, reason, TXT_ANY);
    bind_dbl(st, 3, now);
    int err = exec_stmt(s, S_REL_AGENT_ATTEMPTS);
    if (err)
        return err;
    st = stmt(s, S_REL_AGENT_JOBS);
    bind_i64(st, 1, agent_id);
    bind_txt(st, 2, reason, TXT_ANY);
    bind_dbl(st, 3, now);
    err = exec_stmt(s, S_REL_AGENT_JOBS);
    if (err)
        return err;
    *released = sqlite3_changes(s->db);
    /* a released job that ran out of attempts may have been its run's last */
    return *released ? exec_stmt(s, S_RUN_FINISH_ALL) : 0;
}

static void sha256_hex(const char *text, char hex[crypto_hash_sha256_BYTES * 2 + 1])
{
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, (const unsigned char *)text, strlen(text));
    sodium_bin2hex(hex, crypto_hash_sha256_BYTES * 2 + 1, h, sizeof h);
}

int qf_store_agent_hello(qf_store *s, const char *name, uint64_t instance,
                         const char *fingerprint_json, const qf_agent_caps *caps, double now,
                         int64_t *agent_id, int *released)
{
    assert(s && name && caps && agent_id);
    const char *fp = fingerprint_json ? fingerprint_json : "{}";
    char sha[crypto_hash_sha256_BYTES * 2 + 1];
    sha256_hex(fp, sha);
    int nreleased = 0;
    *agent_id = 0;

    int err = tx_begin(s);
    if (err)
        return err;
    sqlite3_stmt *st = stmt(s, S_AGENT_FIND);
    bind_txt(st, 1, name, TXT_ANY);
    int rc = step(s, st, S_AGENT_FIND);
    int64_t id = 0;
    bool restarted = false;
    if (rc == 1) {
        id = sqlite3_column_int64(st, 0);
        restarted = (uint64_t)sqlite3_column_int64(st, 1) != instance;
        stmt_reset(st);
    }
    err = rc < 0 ? rc : 0;
    /* a new instance means the old process is gone, and so are the jobs it was running */
    if (!err && restarted)
        err = release_agent(s, id, "agent restarted", now, &nreleased);
    if (!err) {
        enum stmt_id sid = id ? S_AGENT_UPDATE : S_AGENT_INSERT;
        st = stmt(s, sid);
        int i = 1;
        if (id)
            bind_i64(st, i++, id);
        else
            bind_txt(st, i++, name, TXT_ANY);
        bind_u64(st, i++, instance);
        bind_txt(st, i++, fp, TXT_ANY);
        bind_txt(st, i++, sha, sizeof sha);
        bind_txt(st, i++, caps->arch, sizeof caps->arch);
        bind_txt(st, i++, caps->isa, sizeof caps->isa);
        bind_txt(st, i++, caps->backends, sizeof caps->backends);
        bind_dbl(st, i, now);
        err = exec_stmt(s, sid);
        if (!err && !id)
            id = sqlite3_last_insert_rowid(s->db);
    }
    err = tx_end(s, err);
    if (!err) {
        *agent_id = id;
        if (released)
            *released = nreleased;
    }
    return err;
}

int qf_store_agents_unseen(qf_store *s)
{
    assert(s);
    return exec_stmt(s, S_AGENT_ALL_OFFLINE);   /* one statement: its own transaction */
}

int qf_store_agent_lost(qf_store *s, int64_t agent_id, const char *reason, double now,
                        int *released)
{
    assert(s);
    if (!reason)
        reason = "lost";
    int nreleased = 0;
    int err = tx_begin(s);
    if (err)
        return err;
    sqlite3_stmt *st = stmt(s, S_AGENT_NAME);
    bind_i64(st, 1, agent_id);
    int rc = step(s, st, S_AGENT_NAME);
    err = rc < 0 ? rc : rc == 0 ? QF_ENOENT : 0;
    if (rc == 1) {
        /* the lab engineer reads "agent lab-07: is lost (silent ...)" on the job */
        char why[QF_JOB_ERROR_MAX];
        snprintf(why, sizeof why, "agent %s: %s", col_txt(st, 0), reason);
        stmt_reset(st);
        st = stmt(s, S_AGENT_MARK);
        bind_i64(st, 1, agent_id);
        bind_txt(st, 2, strcmp(reason, k_reason_bye) == 0 ? "gone" : "lost", TXT_ANY);
        err = exec_stmt(s, S_AGENT_MARK);
        if (!err)
            err = release_agent(s, agent_id, why, now, &nreleased);
    }
    err = tx_end(s, err);
    if (!err && released)
        *released = nreleased;
    return err;
}

int qf_store_expire_leases(qf_store *s, double now, int *released)
{
    assert(s);
    int n = 0;
    int err = tx_begin(s);
    if (err)
        return err;
    bind_dbl(stmt(s, S_REL_EXPIRED_ATTEMPTS), 1, now);
    err = exec_stmt(s, S_REL_EXPIRED_ATTEMPTS);
    if (!err) {
        bind_dbl(stmt(s, S_REL_EXPIRED_JOBS), 1, now);
        err = exec_stmt(s, S_REL_EXPIRED_JOBS);
    }
    if (!err && (n = sqlite3_changes(s->db)) > 0)
        err = exec_stmt(s, S_RUN_FINISH_ALL);
    err = tx_end(s, err);
    if (!err && released)
        *released = n;
    return err;
}

/* ---- runs: cancel, progress, status ---------------------------------------------------- */

/* 1 if run_id exists (state copied into state), 0 if not, or a negative qf_err. */
static int run_state(const qf_store *s, int64_t run_id, char state[16])
{
    sqlite3_stmt *st = stmt(s, S_RUN_STATE);
    bind_i64(st, 1, run_id);
    int rc = step(s, st, S_RUN_STATE);
    if (rc == 1) {
        snprintf(state, 16, "%s", col_txt(st, 0));
        stmt_reset(st);
    }
    return rc;
}

int qf_store_cancel_run(qf_store *s, int64_t run_id, double now)
{
    assert(s);
    int err = tx_begin(s);
    if (err)
        return err;
    char state[16];
    int rc = run_state(s, run_id, state);
    err = rc < 0 ? rc : rc == 0 ? QF_ENOENT : 0;
    if (!err) {
        sqlite3_stmt *st = stmt(s, S_CANCEL_ATTEMPTS);
        bind_i64(st, 1, run_id);
        bind_dbl(st, 2, now);
        err = exec_stmt(s, S_CANCEL_ATTEMPTS);
    }
    if (!err) {
        sqlite3_stmt *st = stmt(s, S_CANCEL_JOBS);
        bind_i64(st, 1, run_id);
        bind_dbl(st, 2, now);
        err = exec_stmt(s, S_CANCEL_JOBS);
    }
    if (!err) {
        /* a run already done keeps its state: cancelling it changed nothing */
        bind_i64(stmt(s, S_RUN_CANCEL), 1, run_id);
        err = exec_stmt(s, S_RUN_CANCEL);
    }
    return tx_end(s, err);
}

/* Reads the per-state counts of one run (by_run) or of all jobs into p (run_id untouched). */
static int count_jobs(const qf_store *s, bool by_run, int64_t run_id, qf_run_progress *p)
{
    enum stmt_id id = by_run ? S_JOB_COUNTS_RUN : S_JOB_COUNTS_ALL;
    sqlite3_stmt *st = stmt(s, id);
    if (by_run)
        bind_i64(st, 1, run_id);
    p->total = p->queued = p->leased = p->done = p->failed = p->cancelled = 0;
    int rc;
    while ((rc = step(s, st, id)) == 1) {
        const char *state = col_txt(st, 0);
        int64_t n = sqlite3_column_int64(st, 1);
        int64_t *slot = strcmp(state, "queued") == 0    ? &p->queued
                      : strcmp(state, "leased") == 0    ? &p->leased
                      : strcmp(state, "done") == 0      ? &p->done
                      : strcmp(state, "failed") == 0    ? &p->failed
                      : strcmp(state, "cancelled") == 0 ? &p->cancelled : NULL;
        assert(slot);  /* the CHECK constraint allows no other state */
        if (slot)
            *slot = n;
        p->total += n;
    }
    return rc;
}

int qf_store_run_progress(qf_store *s, int64_t run_id, qf_run_progress *out)
{
    assert(s && out);
    memset(out, 0, sizeof *out);
    /* two reads: one read transaction, so the counts belong to one instant */
    int err = tx_begin_read(s);
    if (err)
        return err;
    char state[16];
    int rc = run_state(s, run_id, state);
    err = rc < 0 ? rc : rc == 0 ? QF_ENOENT : 0;
    if (!err)
        err = count_jobs(s, true, run_id, out);
    if (!err)
        out->run_id = run_id;
    return tx_end(s, err);
}

/* json_string refuses invalid UTF-8; agent-supplied text must not make STATUS fail. */
static json_t *jstr(const char *v)
{
    json_t *j = json_string(v);
    return j ? j : json_string("(invalid UTF-8)");
}

/* JSON has no inf or NaN (jansson refuses them): those become null. */
static json_t *jreal(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

/* Adds the per-state counts to o; false on allocation failure. */
static bool set_counts(json_t *o, const qf_run_progress *p)
{
    bool ok = true;
    ok = ok && json_object_set_new(o, "queued", json_integer(p->queued)) == 0;
    ok = ok && json_object_set_new(o, "leased", json_integer(p->leased)) == 0;
    ok = ok && json_object_set_new(o, "done", json_integer(p->done)) == 0;
    ok = ok && json_object_set_new(o, "failed", json_integer(p->failed)) == 0;
    ok = ok && json_object_set_new(o, "cancelled", json_integer(p->cancelled)) == 0;
    return ok;
}

static int status_agents(const qf_store *s, json_t *agents)
{
    sqlite3_stmt *st = stmt(s, S_AGENT_LIST);
    int rc;
    while ((rc = step(s, st, S_AGENT_LIST)) == 1) {
        json_t *a = json_object();
        bool ok = a && json_array_append_new(agents, a) == 0;
        ok = ok && json_object_set_new(a, "id", json_integer(sqlite3_column_int64(st, 0))) == 0;
        ok = ok && json_object_set_new(a, "name", jstr(col_txt(st, 1))) == 0;
        ok = ok && json_object_set_new(a, "state", jstr(col_txt(st, 2))) == 0;
        ok = ok && json_object_set_new(a, "last_seen", jreal(sqlite3_column_double(st, 3)))
                   == 0;
        ok = ok && json_object_set_new(a, "arch", jstr(col_txt(st, 4))) == 0;
        ok = ok && json_object_set_new(a, "isa", jstr(col_txt(st, 5))) == 0;
        ok = ok && json_object_set_new(a, "backends", jstr(col_txt(st, 6))) == 0;
        ok = ok && json_object_set_new(a, "fingerprint_sha256", jstr(col_txt(st, 7))) == 0;
        if (!ok) {
            stmt_reset(st);
            return QF_ENOMEM;
        }
    }
    return rc;
}

/* The runs' rows; QF_ENOENT when run_id (non-zero) names no run. */
static int status_runs(const qf_store *s, int64_t run_id, json_t *runs)
{
    sqlite3_stmt *st = stmt(s, S_RUN_LIST);
    bind_i64(st, 1, run_id);
    int rc;
    while ((rc = step(s, st, S_RUN_LIST)) == 1) {
        qf_run_progress p;
        int64_t id = sqlite3_column_int64(st, 0);
        json_t *r = json_object();
        bool ok = r && json_array_append_new(runs, r) == 0;
        ok = ok && json_object_set_new(r, "run_id", json_integer(id)) == 0;
        ok = ok && json_object_set_new(r, "suite", jstr(col_txt(st, 1))) == 0;
        ok = ok && json_object_set_new(r, "commit", jstr(col_txt(st, 2))) == 0;
        ok = ok && json_object_set_new(r, "dirty", json_boolean(sqlite3_column_int(st, 3))) == 0;
        ok = ok && json_object_set_new(r, "state", jstr(col_txt(st, 4))) == 0;
        if (!ok) {
            stmt_reset(st);
            return QF_ENOMEM;
        }
        int err = count_jobs(s, true, id, &p);
        if (!err && (json_object_set_new(r, "total", json_integer(p.total)) != 0 ||
                     !set_counts(r, &p)))
            err = QF_ENOMEM;
        if (err) {
            stmt_reset(st);
            return err;
        }
    }
    if (rc == 0 && run_id != 0 && json_array_size(runs) == 0)
        rc = QF_ENOENT;
    return rc;
}

int qf_store_status_json(qf_store *s, int64_t run_id, double now, char **json)
{
    assert(s && json);
    *json = NULL;
    /* set_new takes (and on failure frees) its value, and refuses a NULL one */
    json_t *root = json_object();
    bool ok = root != NULL;
    ok = ok && json_object_set_new(root, "now", jreal(now)) == 0;
    ok = ok && json_object_set_new(root, "agents", json_array()) == 0;
    ok = ok && json_object_set_new(root, "queue", json_object()) == 0;
    ok = ok && json_object_set_new(root, "runs", json_array()) == 0;
    if (!ok) {
        json_decref(root);
        return QF_ENOMEM;
    }
    json_t *agents = json_object_get(root, "agents"), *queue = json_object_get(root, "queue");
    json_t *runs = json_object_get(root, "runs");
    /* one read transaction: every count in the document is of the same instant */
    int err = tx_begin_read(s);
    if (!err) {
        qf_run_progress all;
        err = status_agents(s, agents);
        if (!err)
            err = count_jobs(s, false, 0, &all);
        if (!err && !set_counts(queue, &all))
            err = QF_ENOMEM;
        if (!err)
            err = status_runs(s, run_id, runs);
        err = tx_end(s, err);
    }
    if (!err && !(*json = json_dumps(root, JSON_COMPACT | JSON_PRESERVE_ORDER)))
        err = QF_ENOMEM;
    json_decref(root);
    return err;
}

/* Column i (JSON text) parsed, or JSON null when it is NULL or unreadable. */
static json_t *col_json(sqlite3_stmt *st, int i)
{
    const char *t = (const char *)sqlite3_column_text(st, i);
    json_t *j = t ? json_loads(t, JSON_DECODE_ANY, NULL) : NULL;
    return j ? j : json_null();
}

/* Column i as a JSON number; null for NULL (SQLite stores NaN as NULL) and infinities. */
static json_t *col_real(sqlite3_stmt *st, int i)
{
    return sqlite3_column_type(st, i) == SQLITE_NULL ? json_null()
                                                     : jreal(sqlite3_column_double(st, i));
}

/* One row of S_RUN_RESULTS as the object qf_store_run_results_json documents. */
static bool result_row(sqlite3_stmt *st, json_t *o)
{
    const char *state = col_txt(st, 2);
    bool has_result = sqlite3_column_int(st, 6) != 0;
    bool has_attempt = sqlite3_column_type(st, 16) != SQLITE_NULL;
    /* "ok" with a result; a failed job says how its last attempt ended; else the state */
    const char *status = has_result ? "ok"
                       : strcmp(state, "failed") == 0 && has_attempt ? col_txt(st, 16) : state;
    bool ok = true;
    ok = ok && json_object_set_new(o, "job_id", json_integer(sqlite3_column_int64(st, 0))) == 0;
    ok = ok && json_object_set_new(o, "key", jstr(col_txt(st, 1))) == 0;
    ok = ok && json_object_set_new(o, "state", jstr(state)) == 0;
    ok = ok && json_object_set_new(o, "spec", col_json(st, 3)) == 0;
    ok = ok && json_object_set_new(o, "agent", jstr(col_txt(st, 17))) == 0;
    ok = ok && json_object_set_new(o, "status", jstr(status)) == 0;
    ok = ok && json_object_set_new(o, "error", jstr(col_txt(st, 5))) == 0;
    ok = ok && json_object_set_new(o, "attempt", json_integer(sqlite3_column_int64(st, 4))) == 0;
    if (!has_result)
        return ok;
    ok = ok && json_object_set_new(o, "bytes", json_integer(sqlite3_column_int64(st, 7))) == 0;
    ok = ok && json_object_set_new(o, "bpw", col_real(st, 8)) == 0;
    ok = ok && json_object_set_new(o, "throughput_bytes",
                                   json_integer(sqlite3_column_int64(st, 9))) == 0;
    ok = ok && json_object_set_new(o, "samples", col_json(st, 10)) == 0;
    ok = ok && json_object_set_new(o, "metrics", col_json(st, 11)) == 0;
    ok = ok && json_object_set_new(o, "dataset_sha256", jstr(col_txt(st, 12))) == 0;
    ok = ok && json_object_set_new(o, "kernel", jstr(col_txt(st, 13))) == 0;
    ok = ok && json_object_set_new(o, "peak_rss_kb", json_integer(sqlite3_column_int64(st, 14)))
               == 0;
    ok = ok && json_object_set_new(o, "wall_s", col_real(st, 15)) == 0;
    ok = ok && json_object_set_new(o, "device_mem_bytes",
                                   json_integer(sqlite3_column_int64(st, 18))) == 0;
    return ok;
}

int qf_store_run_results_json(qf_store *s, int64_t run_id, char **json)
{
    assert(s && json);
    *json = NULL;
    json_t *arr = json_array();
    if (!arr)
        return QF_ENOMEM;
    int err = tx_begin_read(s);
    if (!err) {
        char state[16];
        int rc = run_state(s, run_id, state);
        err = rc < 0 ? rc : rc == 0 ? QF_ENOENT : 0;
        sqlite3_stmt *st = stmt(s, S_RUN_RESULTS);
        if (!err)
            bind_i64(st, 1, run_id);
        while (!err && (rc = step(s, st, S_RUN_RESULTS)) == 1) {
            json_t *o = json_object();
            if (!o || json_array_append_new(arr, o) != 0 || !result_row(st, o)) {
                stmt_reset(st);
                err = QF_ENOMEM;
            }
        }
        if (!err && rc < 0)
            err = rc;
        err = tx_end(s, err);
    }
    if (!err && !(*json = json_dumps(arr, JSON_COMPACT | JSON_PRESERVE_ORDER |
                                          JSON_REAL_PRECISION(17))))
        err = QF_ENOMEM;
    json_decref(arr);
    return err;
}

int qf_store_agent_leases(qf_store *s, int64_t agent_id, uint32_t *n)
{
    assert(s && n);
    *n = 0;
    sqlite3_stmt *st = stmt(s, S_AGENT_LEASES);
    bind_i64(st, 1, agent_id);
    int rc = step(s, st, S_AGENT_LEASES);
    if (rc == 1) {
        *n = (uint32_t)sqlite3_column_int64(st, 0);
        stmt_reset(st);
    }
    return rc < 0 ? rc : 0;
}

int qf_store_agent_live_leases(qf_store *s, int64_t agent_id, qf_lease *out, size_t max,
                               size_t *n)
{
    assert(s && out && n);
    *n = 0;
    sqlite3_stmt *st = stmt(s, S_AGENT_LIVE_LEASES);
    bind_i64(st, 1, agent_id);
    int rc;
    while ((rc = step(s, st, S_AGENT_LIVE_LEASES)) == 1) {
        if (*n == max)
            continue;           /* read to the end: the statement resets itself there */
        qf_lease *l = &out[*n];
        char why[256];
        l->job_id = sqlite3_column_int64(st, 0);
        l->attempt = (uint32_t)sqlite3_column_int64(st, 1);
        l->run_id = sqlite3_column_int64(st, 2);
        if (qf_job_spec_from_json(col_txt(st, 3), &l->spec, why, sizeof why) == 0)
            (*n)++;              /* a spec that no longer parses was failed at lease time */
    }
    return rc < 0 ? rc : 0;
}

/* ---- batches (group commit) ------------------------------------------------------------ */

int qf_store_batch_begin(qf_store *s)
{
    assert(s && !s->batch);
    int err = exec_stmt(s, S_BEGIN);
    s->batch = err == 0;
    return err;
}

int qf_store_batch_commit(qf_store *s)
{
    assert(s && s->batch);
    s->batch = false;
    if (sqlite3_get_autocommit(s->db))   /* SQLite already rolled the batch back (disk full) */
        return qf_errorf(QF_EIO, "store %s: the batch was rolled back", s->path);
    return tx_end(s, 0);
}
