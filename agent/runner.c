/* runner.c - jobs in child processes with a time limit (see qf_runner.h).
 *
 * One qf_runner_job is one forked child and the read end of its pipe. The child computes and
 * writes one frame (4-byte big-endian length, then a wire RESULT message) and _exits; it never
 * returns into the caller, never flushes the parent's stdio buffers and never calls ZeroMQ
 * (the parent's sockets and their I/O threads are not the child's to touch; the child closes
 * its inherited copies of every descriptor but the pipe and stdio, which does not affect the
 * parent's). The parent may be threaded (libzmq's I/O threads): POSIX only promises
 * async-signal-safe calls in such a child, but glibc's fork handlers reset the malloc and
 * stdio locks in the child, so the job may allocate, as qf_jobs_run does.
 *
 * The child stays in the agent's process group, so a terminal's Ctrl-C reaches the whole job
 * tree; a job's threads are threads of the child, so one SIGKILL of the child ends them all,
 * and no process group of its own is needed. On Linux the child also asks for SIGKILL when
 * the agent dies (PR_SET_PDEATHSIG), so a hung job never outlives a killed agent. Signal
 * handlers and masks inherited from the agent are reset to the defaults in the child, so a
 * crash in a kernel ends the child with its signal (and the parent reports it by name).
 *
 * The parent never blocks on a healthy or a hanging child: the pipe is non-blocking, reads
 * happen in qf_runner_poll, and children are reaped with wait4(WNOHANG), which also yields the
 * peak RSS. The one bounded wait is after end-of-file: a child's pipe closes only after its
 * memory is torn down, so its exit follows within microseconds; if it does not within
 * EOF_REAP_WAIT_MS the child closed its pipe yet kept running, and is killed. A child whose
 * output cannot be a valid frame (a length over the limit, bytes after the frame) is killed
 * at once rather than left to write until its deadline.
 * Called from the agent's loop, a few times per job: not hot.
 */
#include "qf_runner.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#ifdef __linux__
#include <sys/prctl.h>
#endif

#include "qf_err.h"
#include "qf_jobs.h"
#include "qf_wire.h"

#define FRAME_HEADER     4
#define EOF_REAP_WAIT_MS 50     /* after end-of-file, how long exit may lag */
#define KILLED_RECHECK_MS 20    /* after a kill, how often to look for the death */

struct qf_runner_job {
    pid_t    pid;
    int      fd;                /* the pipe's read end, O_NONBLOCK | O_CLOEXEC */
    uint64_t job_id;
    uint32_t attempt;
    uint32_t timeout_ms;
    uint64_t seed;              /* for the results the runner writes itself */
    int64_t  start_ns, deadline_ns;

    unsigned char hdr[FRAME_HEADER];
    size_t   hdr_len;
    unsigned char *body;        /* frame body, body_size bytes once the header is in */
    uint32_t body_size, body_len;
    bool     eof;

    bool     killed;            /* we sent SIGKILL; kill_status/kill_why say why */
    qf_job_status kill_status;
    char     kill_why[QF_JOB_ERROR_MAX];

    bool     reaped;
    int      wstatus;
    struct rusage ru;
};

static int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

/* ---- child side --------------------------------------------------------------------------- */

int qf_runner_send(int fd, const void *buf, size_t len)
{
    assert(fd >= 0 && (buf || len == 0));
    if (len > QF_WIRE_DEFAULT_MAX_FRAME)
        return QF_ETOOBIG;
    unsigned char hdr[FRAME_HEADER] = {
        (unsigned char)(len >> 24), (unsigned char)(len >> 16), (unsigned char)(len >> 8),
        (unsigned char)len,
    };
    const unsigned char *parts[2] = { hdr, buf };
    size_t sizes[2] = { sizeof hdr, len };
    for (int p = 0; p < 2; p++) {
        size_t off = 0;
        while (off < sizes[p]) {
            ssize_t n = write(fd, parts[p] + off, sizes[p] - off);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                return QF_EIO;
            off += (size_t)n;
        }
    }
    return 0;
}

/* Makes the child a clean place to compute in: default signal handling, no inherited
 * descriptors but stdio and the pipe, and death with the agent. Its own process group keeps a
 * Ctrl-C at the agent's terminal from killing the job (and charging it an attempt): the agent
 * decides what happens to its jobs when it stops. */
static void child_setup(int fd, pid_t parent)
{
    setpgid(0, 0);
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = SIG_DFL;
    sigemptyset(&sa.sa_mask);
    for (int sig = 1; sig < NSIG; sig++)
        if (sig != SIGKILL && sig != SIGSTOP)
            sigaction(sig, &sa, NULL);   /* the C library refuses its own: fine */
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
#ifdef __linux__
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    if (getppid() != parent) /* the agent died before the request took */
        _exit(1);
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 34))
    if (fd > 3)
        close_range(3, (unsigned)fd - 1, 0);
    close_range((unsigned)fd + 1, ~0u, 0);
#endif
#endif
    (void)fd;
    (void)parent;
}

typedef struct job_child_arg {
    const qf_job_spec *spec;
    uint64_t job_id;
    uint32_t attempt;
} job_child_arg;

/* The job in the child: run, encode, send. Exit status 0 when the frame was written; 3 if
 * even a bare FAILED result would not encode; 4 if the pipe would not take it. */
static int job_child(int fd, void *arg)
{
    const job_child_arg *a = arg;
    qf_msg m;
    memset(&m, 0, sizeof m);
    m.type = QF_MSG_RESULT;
    m.id = 1;
    m.u.result.job_id = a->job_id;
    m.u.result.attempt = a->attempt;
    qf_jobs_run(a->spec, &m.u.result.result);

    void *buf = NULL;
    size_t len = 0;
    int err = qf_wire_encode(&m, &buf, &len);
    if (err) { /* a result our own codec refuses: report that instead of nothing */
        qf_job_result *r = &m.u.result.result;
        uint64_t seed = r->seed;
        qf_job_result_clear(r);
        r->status = QF_JOB_FAILED;
        r->seed = seed;
        snprintf(r->error, sizeof r->error, "the agent could not encode the result: %s",
                 qf_strerror(err));
        err = qf_wire_encode(&m, &buf, &len);
    }
    qf_msg_clear(&m);
    if (err)
        return 3;
    err = qf_runner_send(fd, buf, len);
    free(buf);
    return err ? 4 : 0;
}

/* ---- parent side -------------------------------------------------------------------------- */

static int set_fd_flags(int fd, bool nonblock)
{
    int fl = fcntl(fd, F_GETFD);
    if (fl < 0 || fcntl(fd, F_SETFD, fl | FD_CLOEXEC) < 0)
        return -1;
    if (!nonblock)
        return 0;
    fl = fcntl(fd, F_GETFL);
    if (fl < 0 || fcntl(fd, F_SETFL, fl | O_NONBLOCK) < 0)
        return -1;
    return 0;
}

int qf_runner_start_fn(qf_runner_child_fn fn, void *arg, uint32_t timeout_ms, uint64_t job_id,
                       uint32_t attempt, qf_runner_job **out)
{
    assert(fn && timeout_ms >= 1 && out);
    *out = NULL;
    qf_runner_job *j = calloc(1, sizeof *j);
    if (!j)
        return qf_errorf(QF_ENOMEM, "runner: out of memory starting job %" PRIu64, job_id);
    /* pipe2(O_CLOEXEC) is not on every target; the agent's threads never exec, so setting the
     * flags right after cannot race an exec that would leak the pipe. */
    int fds[2];
    if (pipe(fds) != 0) {
        int e = errno;
        free(j);
        return qf_errorf(e == EMFILE || e == ENFILE ? QF_ENOMEM : QF_EIO,
                         "runner: no pipe for job %" PRIu64 ": %s", job_id, strerror(e));
    }
    if (set_fd_flags(fds[0], true) != 0 || set_fd_flags(fds[1], false) != 0) {
        int e = errno;
        close(fds[0]);
        close(fds[1]);
        free(j);
        return qf_errorf(QF_EIO, "runner: cannot set up the pipe of job %" PRIu64 ": %s",
                         job_id, strerror(e));
    }
    pid_t parent = getpid();
    int64_t t0 = now_ns();
    pid_t pid = fork();
    if (pid < 0) {
        int e = errno;
        close(fds[0]);
        close(fds[1]);
        free(j);
        return qf_errorf(e == EAGAIN || e == ENOMEM ? QF_ENOMEM : QF_EIO,
                         "runner: cannot fork the child of job %" PRIu64 ": %s", job_id,
                         strerror(e));
    }
    if (pid == 0) {
        close(fds[0]);
        child_setup(fds[1], parent);
        _exit(fn(fds[1], arg) & 0xff);
    }
    close(fds[1]); /* ours must go, or the pipe never reports the child's end */
    j->pid = pid;
    j->fd = fds[0];
    j->job_id = job_id;
    j->attempt = attempt;
    j->timeout_ms = timeout_ms;
    j->start_ns = t0;
    j->deadline_ns = t0 + (int64_t)timeout_ms * 1000000;
    *out = j;
    return 0;
}

int qf_runner_start(const qf_job_spec *spec, uint64_t job_id, uint32_t attempt,
                    qf_runner_job **out)
{
    assert(spec && out);
    assert(job_id >= 1 && attempt >= 1); /* as a JOB carries them; a RESULT refuses 0 */
    uint32_t limit = spec->timeout_ms;
    if (limit == 0 || limit > QF_JOB_MAX_TIMEOUT_MS)
        limit = QF_JOB_MAX_TIMEOUT_MS;
    /* The child gets a copy of this frame along with the rest of our memory. */
    job_child_arg a = { .spec = spec, .job_id = job_id, .attempt = attempt };
    int err = qf_runner_start_fn(job_child, &a, limit, job_id, attempt, out);
    if (!err)
        (*out)->seed = spec->seed;
    return err;
}

int qf_runner_fd(const qf_runner_job *j)
{
    assert(j);
    return j->fd;
}

int64_t qf_runner_ms_left(const qf_runner_job *j)
{
    assert(j);
    if (j->killed)
        return KILLED_RECHECK_MS;
    int64_t left = j->deadline_ns - now_ns();
    return left <= 0 ? 0 : (left + 999999) / 1000000;
}

uint64_t qf_runner_job_id(const qf_runner_job *j)
{
    assert(j);
    return j->job_id;
}

uint32_t qf_runner_attempt(const qf_runner_job *j)
{
    assert(j);
    return j->attempt;
}

pid_t qf_runner_pid(const qf_runner_job *j)
{
    assert(j);
    return j->pid;
}

__attribute__((format(printf, 3, 4)))
static void kill_child(qf_runner_job *j, qf_job_status status, const char *fmt, ...)
{
    if (j->killed || j->reaped)
        return;
    kill(j->pid, SIGKILL);
    j->killed = true;
    j->kill_status = status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(j->kill_why, sizeof j->kill_why, fmt, ap);
    va_end(ap);
}

/* Where the next bytes from the pipe go: the header, the body, or (once the frame is whole,
 * or after a kill) a scratch buffer whose bytes are counted as excess. */
static void read_pipe(qf_runner_job *j)
{
    unsigned char scratch[4096];
    while (!j->eof) {
        unsigned char *dst;
        size_t want;
        bool excess = false;
        if (j->hdr_len < FRAME_HEADER) {
            dst = j->hdr + j->hdr_len;
            want = FRAME_HEADER - j->hdr_len;
        } else if (j->body && j->body_len < j->body_size) {
            dst = j->body + j->body_len;
            want = j->body_size - j->body_len;
        } else {
            dst = scratch;
            want = sizeof scratch;
            excess = true;
        }
        ssize_t n = read(j->fd, dst, want);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
            return;
        if (n <= 0) { /* end of file, or a read error that only the child's end can cause */
            j->eof = true;
            return;
        }
        if (excess) {
            kill_child(j, QF_JOB_CRASHED, "the child wrote bytes after its %" PRIu32 "-byte result frame",
                       j->body_size);
            continue;
        }
        if (j->hdr_len < FRAME_HEADER) {
            j->hdr_len += (size_t)n;
            if (j->hdr_len < FRAME_HEADER)
                continue;
            uint32_t size = (uint32_t)j->hdr[0] << 24 | (uint32_t)j->hdr[1] << 16 |
                            (uint32_t)j->hdr[2] << 8 | (uint32_t)j->hdr[3];
            j->body_size = size;
            if (size > QF_WIRE_DEFAULT_MAX_FRAME) {
                kill_child(j, QF_JOB_CRASHED, "the child announced a %" PRIu32 "-byte result frame, over "
                           "the %u-byte limit", size, QF_WIRE_DEFAULT_MAX_FRAME);
                continue;
            }
            j->body = malloc(size ? size : 1);
            if (!j->body)
                kill_child(j, QF_JOB_CRASHED, "the agent had no memory for the child's %"
                           PRIu32 "-byte result", size);
        } else {
            j->body_len += (uint32_t)n;
        }
    }
}

/* wait4 without blocking; true once the child is reaped (or gone: someone else reaped it). */
static bool try_reap(qf_runner_job *j)
{
    if (j->reaped)
        return true;
    for (;;) {
        pid_t r = wait4(j->pid, &j->wstatus, WNOHANG, &j->ru);
        if (r == j->pid) {
            j->reaped = true;
            return true;
        }
        if (r < 0 && errno == EINTR)
            continue;
        if (r < 0) { /* ECHILD: reaped behind our back (SIGCHLD set to SIG_IGN?) */
            j->reaped = true;
            j->wstatus = -1;
            memset(&j->ru, 0, sizeof j->ru);
            return true;
        }
        return false;
    }
}

/* After end-of-file the child's exit is imminent; give it EOF_REAP_WAIT_MS. */
static void reap_after_eof(qf_runner_job *j)
{
    for (int i = 0; i < EOF_REAP_WAIT_MS && !try_reap(j); i++)
        nanosleep(&(struct timespec){ .tv_nsec = 1000000 }, NULL);
    if (j->reaped)
        return;
    kill_child(j, QF_JOB_CRASHED, "the child closed its result pipe but did not exit");
    /* A child that closed its pipe is past its memory teardown or never had the pipe's
     * writer in its exit path; killed, its end is prompt, so this wait is short. */
    while (wait4(j->pid, &j->wstatus, 0, &j->ru) < 0 && errno == EINTR)
        ;
    j->reaped = true;
}

static void signal_text(int sig, char *buf, size_t size)
{
#if defined(__GLIBC__) && (__GLIBC__ > 2 || (__GLIBC__ == 2 && __GLIBC_MINOR__ >= 32))
    const char *abbrev = sigabbrev_np(sig);
    if (abbrev) {
        snprintf(buf, size, "SIG%s", abbrev);
        return;
    }
#endif
    const char *desc = strsignal(sig);
    snprintf(buf, size, "%s", desc ? desc : "unknown signal");
}

__attribute__((format(printf, 3, 4)))
static void runner_result(qf_job_result *res, qf_job_status status, const char *fmt, ...)
{
    res->status = status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res->error, sizeof res->error, fmt, ap);
    va_end(ap);
}

/* What the child left behind, as a result: its own report when it sent a whole, decodable
 * RESULT for this job, otherwise the runner's account of what went wrong. */
static void build_result(qf_runner_job *j, qf_job_result *res)
{
    memset(res, 0, sizeof *res);
    res->seed = j->seed;
    int st = j->wstatus;
    if (j->killed) {
        if (j->kill_status == QF_JOB_TIMEOUT)
            runner_result(res, QF_JOB_TIMEOUT, "killed after %" PRIu32 " ms", j->timeout_ms);
        else
            runner_result(res, QF_JOB_CRASHED, "%s", j->kill_why);
        return;
    }
    if (st == -1) {
        runner_result(res, QF_JOB_CRASHED, "the child vanished: reaped outside the runner "
                      "(is SIGCHLD ignored?)");
        return;
    }
    if (WIFSIGNALED(st)) {
        char name[48];
        signal_text(WTERMSIG(st), name, sizeof name);
        runner_result(res, QF_JOB_CRASHED, "killed by signal %d (%s)%s", WTERMSIG(st), name,
                      WTERMSIG(st) == SIGKILL ? ", not by the runner: out of memory?" : "");
        return;
    }
    int code = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
    if (j->hdr_len == 0) {
        runner_result(res, QF_JOB_CRASHED, "the child exited with status %d without a result",
                      code);
        return;
    }
    if (j->hdr_len < FRAME_HEADER || j->body_len < j->body_size) {
        runner_result(res, QF_JOB_CRASHED, "the child exited with status %d after %zu of %"
                      PRIu32 " bytes of its result", code,
                      j->hdr_len < FRAME_HEADER ? j->hdr_len : FRAME_HEADER + j->body_len,
                      FRAME_HEADER + (j->hdr_len < FRAME_HEADER ? 0 : j->body_size));
        return;
    }
    qf_wire_limits lim = qf_wire_default_limits();
    qf_msg m;
    char why[QF_JOB_ERROR_MAX - 48];
    if (qf_wire_decode(j->body, j->body_size, &lim, &m, why, sizeof why) != 0) {
        runner_result(res, QF_JOB_CRASHED, "undecodable result from the child: %s", why);
        return;
    }
    if (m.type != QF_MSG_RESULT) {
        runner_result(res, QF_JOB_CRASHED, "the child sent %s, not RESULT",
                      qf_msg_type_name((int)m.type));
    } else if (m.u.result.job_id != j->job_id || m.u.result.attempt != j->attempt) {
        runner_result(res, QF_JOB_CRASHED, "the child reported job %" PRIu64 " attempt %" PRIu32
                      ", not job %" PRIu64 " attempt %" PRIu32, m.u.result.job_id,
                      m.u.result.attempt, j->job_id, j->attempt);
    } else {
        *res = m.u.result.result;   /* the samples move to res */
        memset(&m.u.result.result, 0, sizeof m.u.result.result);
    }
    qf_msg_clear(&m);
}

static void job_free(qf_runner_job **jp)
{
    qf_runner_job *j = *jp;
    if (j->fd >= 0)
        close(j->fd);
    free(j->body);
    free(j);
    *jp = NULL;
}

int qf_runner_poll(qf_runner_job **jp, qf_job_result *res)
{
    assert(jp && *jp && res);
    qf_runner_job *j = *jp;
    read_pipe(j);
    if (!try_reap(j)) {
        if (j->eof)
            reap_after_eof(j);
        else if (now_ns() >= j->deadline_ns)
            kill_child(j, QF_JOB_TIMEOUT, "ran past its limit");
        if (!try_reap(j))
            return 0;
    }
    /* Whatever it wrote before it ended is in the pipe: take the rest (no-op after EOF). */
    read_pipe(j);
    build_result(j, res);
    /* The parent's view of what the child cost: the whole process's peak resident set (which
     * includes the pages it shared with the agent at fork) and fork-to-reap wall time. */
#ifdef __APPLE__
    res->peak_rss_kb = (uint64_t)j->ru.ru_maxrss / 1024;   /* bytes there */
#else
    res->peak_rss_kb = (uint64_t)j->ru.ru_maxrss;          /* kilobytes on Linux and BSD */
#endif
    res->wall_s = (double)(now_ns() - j->start_ns) / 1e9;
    job_free(jp);
    return 1;
}

void qf_runner_kill(qf_runner_job **jp)
{
    if (!jp || !*jp)
        return;
    qf_runner_job *j = *jp;
    if (!j->reaped) {
        kill(j->pid, SIGKILL);
        while (waitpid(j->pid, NULL, 0) < 0 && errno == EINTR)
            ;
    }
    job_free(jp);
}
