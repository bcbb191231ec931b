/* qf_runner.h - runs jobs in child processes, with a time limit, without blocking the agent.
 *
 * qf_runner_start forks a child that runs qf_jobs_run and writes its result, encoded as a wire
 * RESULT frame, into a pipe. The agent's loop polls qf_runner_fd() of each running job together
 * with its socket, calls qf_runner_poll() when the fd is readable or qf_runner_ms_left() ran
 * out, and gets a finished result: OK/FAILED as the child reported it, TIMEOUT if it was killed
 * at the limit (SIGKILL), CRASHED if it died of a signal or exited without a complete,
 * decodable result. Peak RSS comes from wait4's rusage; wall time from the parent's clock. A
 * crashing or hanging kernel costs one attempt, never the agent.
 *
 * The pipe carries one frame: a 4-byte big-endian length, then that many bytes of one wire
 * message (qf_runner_send writes it). qf_runner_start_fn runs any function in the child in the
 * same way; qf_runner_start is that with the job function, and tests use it to stage children
 * that hang, crash, write garbage or nothing.
 *
 * The process that runs jobs must leave SIGCHLD at its default and never wait for children
 * itself (waitpid(-1, ...)): the runner reaps its own, by pid. Peak RSS is the child's whole
 * resident peak, so it includes the pages it shared with the agent at fork (small for an
 * agent; the job's buffers dominate).
 */
#ifndef QF_RUNNER_H
#define QF_RUNNER_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/types.h>

#include "qf_job.h"

typedef struct qf_runner_job qf_runner_job;

/* Forks the child for spec, as job_id / attempt (>= 1 each, as the JOB message carried them).
 * spec->timeout_ms is the limit (a 0, which validation refuses, counts as
 * QF_JOB_MAX_TIMEOUT_MS); spec should have passed qf_job_spec_validate, and the child
 * validates it again. Caller owns *out (released by qf_runner_poll when done, or
 * qf_runner_kill). QF_EIO/QF_ENOMEM (with a line on stderr) if the child cannot be started. */
int qf_runner_start(const qf_job_spec *spec, uint64_t job_id, uint32_t attempt,
                    qf_runner_job **out);

/* What a child runs: fd is the pipe's write end (write one frame with qf_runner_send); the
 * return value becomes the child's exit status (0..255). arg is the parent's pointer, valid in
 * the child because fork copied the memory it points to. */
typedef int (*qf_runner_child_fn)(int fd, void *arg);

/* Forks a child that runs fn(fd, arg) and then _exits with its return value, under a limit of
 * timeout_ms (>= 1). Otherwise as qf_runner_start. */
int qf_runner_start_fn(qf_runner_child_fn fn, void *arg, uint32_t timeout_ms, uint64_t job_id,
                       uint32_t attempt, qf_runner_job **out);

/* Writes one length-prefixed frame of len bytes (<= QF_WIRE_DEFAULT_MAX_FRAME) to fd, through
 * partial writes and EINTR. 0, QF_ETOOBIG, or QF_EIO (errno kept). For the child side. */
int qf_runner_send(int fd, const void *buf, size_t len);

/* The pipe's read end, for zmq_poll/poll (POLLIN). */
int qf_runner_fd(const qf_runner_job *j);

/* Milliseconds until qf_runner_poll must be called even if the fd stays quiet: the time to
 * the deadline, 0 once it has passed, and after the kill a short recheck interval while the
 * killed child is being torn down (its end closes the pipe, which wakes the fd anyway). */
int64_t qf_runner_ms_left(const qf_runner_job *j);

uint64_t qf_runner_job_id(const qf_runner_job *j);
/* The child's process id (for logs; the runner alone reaps it). */
pid_t    qf_runner_pid(const qf_runner_job *j);
uint32_t qf_runner_attempt(const qf_runner_job *j);

/* Reads what the child wrote, kills it if its deadline passed, reaps it when it has ended.
 * Returns 1 and fills *res (caller owns; qf_job_result_clear) when the job is finished, and
 * then frees *j and sets it to NULL; 0 while it is still running; negative on error (none
 * today: every way a child can end, even reaped behind the runner's back, becomes a result). */
int qf_runner_poll(qf_runner_job **j, qf_job_result *res);

/* Kills and reaps the child, frees *j (agent shutdown). NULL-safe. */
void qf_runner_kill(qf_runner_job **j);

#endif
