/* qf_runner.h - runs jobs in child processes, with a time limit, without blocking the agent.
 *
 * qf_runner_start forks a child that runs qf_jobs_run and writes its result, encoded as a wire
 * RESULT frame, into a pipe. The agent's loop polls qf_runner_fd() of each running job together
 * with its socket, calls qf_runner_poll() when the fd is readable or a deadline passed, and gets
 * a finished result: OK/FAILED as the child reported it, TIMEOUT if it was killed at the limit
 * (SIGKILL), CRASHED if it died of a signal or exited without a result. Peak RSS comes from
 * wait4's rusage; wall time from the parent's clock. A crashing or hanging kernel costs one
 * attempt, never the agent.
 */
#ifndef QF_RUNNER_H
#define QF_RUNNER_H

#include <stdbool.h>
#include <stdint.h>

#include "qf_job.h"

typedef struct qf_runner_job qf_runner_job;

/* Forks the child for spec. Caller owns *out (released by qf_runner_poll when done, or
 * qf_runner_kill). QF_EIO/QF_ENOMEM if the child cannot be started. */
int qf_runner_start(const qf_job_spec *spec, uint64_t job_id, uint32_t attempt,
                    qf_runner_job **out);

/* The pipe's read end, for zmq_poll/poll (POLLIN). */
int qf_runner_fd(const qf_runner_job *j);

/* Milliseconds until this job's deadline (0 if passed). */
int64_t qf_runner_ms_left(const qf_runner_job *j);

uint64_t qf_runner_job_id(const qf_runner_job *j);
uint32_t qf_runner_attempt(const qf_runner_job *j);

/* Reads what the child wrote, kills it if its deadline passed, reaps it when it has ended.
 * Returns 1 and fills *res (caller owns; qf_job_result_clear) when the job is finished, and
 * then frees *j and sets it to NULL; 0 while it is still running; negative on error. */
int qf_runner_poll(qf_runner_job **j, qf_job_result *res);

/* Kills and reaps the child, frees *j (agent shutdown). NULL-safe. */
void qf_runner_kill(qf_runner_job **j);

#endif
