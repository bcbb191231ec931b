/* qf_store.h - the coordinator's SQLite store: the durable job queue and the results.
 *
 * One SQLite file in WAL mode holds runs, jobs, agents, attempts and results (schema in
 * store.c and docs/protocol.md). Every state change is one transaction, so a coordinator killed
 * at any instant restarts with every committed submit, lease and result intact. The jobs table
 * is the queue: state is one of queued | leased | done | failed | cancelled (a CHECK constraint),
 * with attempt, max_attempts, lease deadline and an index on (state, priority).
 *
 * A job's life: queued --lease--> leased --result ok--> done
 *                                  leased --failure/lease expired/agent lost--> queued (attempt
 *                                  < max_attempts) or failed (with the last reason)
 *               queued/leased --cancel--> cancelled
 * A result is accepted only for a job that is leased to that agent with that attempt; anything
 * else (a late duplicate from a retried job, a result after cancel) is QF_EEXIST: the caller
 * acknowledges it and drops it. So each job has at most one result, whatever arrives twice.
 *
 * Only the coordinator opens the store for writing; one qf_store per thread. Times are seconds
 * (double, CLOCK_REALTIME) passed in by the caller, so tests control the clock.
 * Errors: QF_EDB with a message naming the statement and SQLite's reason, QF_EBUSY for a locked
 * database, QF_EIO for a full disk (SQLITE_FULL): the transaction is rolled back, nothing is
 * half-written.
 */
#ifndef QF_STORE_H
#define QF_STORE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qf_job.h"

typedef struct qf_store qf_store;

typedef struct qf_run_info {
    char     suite[64];
    char     commit[48];
    bool     dirty;
    char     branch[64];
    char     baseline[QF_JOB_FORMAT_MAX];
    uint32_t max_attempts;          /* per job; 0 means the default, 3 */
} qf_run_info;

typedef struct qf_lease {
    int64_t     job_id;
    uint32_t    attempt;            /* 1 for the first lease */
    int64_t     run_id;
    qf_job_spec spec;
} qf_lease;

typedef struct qf_run_progress {
    int64_t run_id;
    int64_t total, queued, leased, done, failed, cancelled;
} qf_run_progress;

/* Opens (creating if needed) the store at path; ":memory:" works for tests.
 * Caller owns *out (qf_store_close). */
int  qf_store_open(const char *path, qf_store **out);
void qf_store_close(qf_store **s);

/* How long a statement waits for another connection's lock before QF_EBUSY (busy_ms; 0: the
 * default, 5000), and how large the database file may grow (max_bytes, PRAGMA max_page_count;
 * 0: no limit). A store at its size limit answers QF_EIO "database or disk full" exactly like a
 * full disk: the transaction is rolled back, the store stays consistent and readable. */
int qf_store_set_limits(qf_store *s, uint32_t busy_ms, uint64_t max_bytes);

/* Inserts a run and its jobs in one transaction. Each spec must already be validated. */
int qf_store_submit(qf_store *s, const qf_run_info *run, const qf_job_spec *jobs, size_t n,
                    double now, int64_t *run_id);

/* Registers (or finds, by name) an agent and records its fingerprint. If the agent's previous
 * instance differs from this one, that process is gone: its leased jobs are released now
 * (counted in *released; attempt failure "agent restarted"). */
int qf_store_agent_hello(qf_store *s, const char *name, uint64_t instance,
                         const char *fingerprint_json, const qf_agent_caps *caps, double now,
                         int64_t *agent_id, int *released);

/* A coordinator starting up has heard from nobody yet: every agent the store calls online is
 * marked lost until it says HELLO again (leases are kept: they end at their deadlines or when
 * the agent comes back as another instance). */
int qf_store_agents_unseen(qf_store *s);

/* Marks the agent lost (silent too long) or gone (said BYE: reason "said goodbye", exactly);
 * releases its leases, each attempt recorded with "agent NAME: reason". QF_ENOENT for an
 * unknown agent_id. */
int qf_store_agent_lost(qf_store *s, int64_t agent_id, const char *reason, double now,
                        int *released);

/* Leases the highest-priority queued job whose selector matches caps (attempt + 1) until
 * now + the job's own timeout_ms + lease_s (the margin for a silent agent to be noticed).
 * QF_ENOENT when there is none. */
int qf_store_lease_next(qf_store *s, int64_t agent_id, const qf_agent_caps *caps, double now,
                        double lease_s, qf_lease *out);

/* Extends a live lease (PROGRESS). QF_EEXIST if the lease is no longer this attempt's. */
int qf_store_renew(qf_store *s, int64_t job_id, uint32_t attempt, int64_t agent_id,
                   double deadline);

/* Hands a live lease back without counting the attempt (the agent had no free slot: not the
 * job's fault). QF_EEXIST if the lease is no longer this attempt's. */
int qf_store_unlease(qf_store *s, int64_t job_id, uint32_t attempt, int64_t agent_id,
                     double now);

/* Stores a result. status OK: the job is done and the result kept (with samples).
 * Other statuses: the attempt is recorded as failed and the job requeued or failed.
 * QF_EEXIST: not the live lease (duplicate, late, cancelled): acknowledge and ignore. */
int qf_store_complete(qf_store *s, int64_t job_id, uint32_t attempt, int64_t agent_id,
                      const qf_job_result *res, double now);

/* Releases every lease whose deadline has passed; *released = how many. */
int qf_store_expire_leases(qf_store *s, double now, int *released);

/* Cancels the run's queued and leased jobs. QF_ENOENT for an unknown run. */
int qf_store_cancel_run(qf_store *s, int64_t run_id, double now);

/* Counts of the run's jobs by state. QF_ENOENT for an unknown run. */
int qf_store_run_progress(qf_store *s, int64_t run_id, qf_run_progress *out);

/* A JSON document for STATUS: agents (name, state, last_seen, fingerprint summary), queue
 * depth, leased, done, failed, and per-run progress (run_id 0: all runs). Caller frees. */
int qf_store_status_json(qf_store *s, int64_t run_id, double now, char **json);

/* Group commit: between batch_begin and batch_commit every operation above is a savepoint of
 * one transaction (still all-or-nothing each), and nothing is durable until batch_commit
 * returns 0; the caller holds back acknowledgements until then. A failed commit rolls the whole
 * batch back (QF_EIO / QF_EDB / QF_EBUSY): the caller must forget what it learned inside it. */
int qf_store_batch_begin(qf_store *s);
int qf_store_batch_commit(qf_store *s);

/* The run's jobs with their results, as a JSON array (for `qfleet run`'s summary and reports):
 * [{"job_id", "key", "state", "spec":{...}, "agent": name, "status", "error", "attempt",
 *   "bytes", "bpw", "throughput_bytes", "samples":[s...], "metrics":{...}, "dataset_sha256",
 *   "kernel", "peak_rss_kb", "wall_s", "device_mem_bytes"}] in job order; result fields absent for jobs without a
 * result. QF_ENOENT for an unknown run. Caller frees. */
int qf_store_run_results_json(qf_store *s, int64_t run_id, char **json);

/* Jobs currently leased to the agent (a coordinator that restarted learns how busy an agent
 * that says HELLO again already is). */
int qf_store_agent_leases(qf_store *s, int64_t agent_id, uint32_t *n);

/* The agent's live leases (at most max, in job order) with their specs: what a coordinator that
 * restarted re-sends when the same agent process registers again, since a JOB it leased just
 * before it died may never have left it (the agent answers a JOB it holds or finished as before,
 * and runs one it never got). */
int qf_store_agent_live_leases(qf_store *s, int64_t agent_id, qf_lease *out, size_t max,
                               size_t *n);

#endif
