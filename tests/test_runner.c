/* test_runner.c - jobs in child processes (agent/runner.c): real forks, real signals.
 *
 * A normal job must come back OK with its samples and the child's peak RSS; then the fault
 * cases, each staged with qf_runner_start_fn and a child function of a few lines: a child
 * that hangs is killed at its 200 ms limit (TIMEOUT) and reaped, one that crashes is reported
 * with its signal's name, one that writes garbage, a truncated frame, too much, the wrong
 * message, or nothing at all is CRASHED with the reason. Several jobs run at once from one
 * poll loop, as the agent runs them, and qf_runner_kill ends a running job. After every job
 * the child must be gone (waitpid answers ECHILD: no zombie). Child functions never call
 * cmocka: they only write the pipe and exit. Bounded: about a second in all.
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <setjmp.h>
#include <cmocka.h>

#include "qf_err.h"
#include "qf_job.h"
#include "qf_kernels.h"
#include "qf_runner.h"
#include "qf_wire.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static qf_job_spec small_spec(const char *kind, const char *format, uint32_t reps)
{
    qf_job_spec s;
    memset(&s, 0, sizeof s);
    snprintf(s.kind, sizeof s.kind, "%s", kind);
    snprintf(s.format, sizeof s.format, "%s", format);
    snprintf(s.dataset, sizeof s.dataset, "synth:gaussian");
    s.rows = 16;
    s.cols = 256;
    s.reps = reps;
    s.warmup = 1;
    s.threads = 2;
    s.seed = 5;
    s.timeout_ms = 5000;
    return s;
}

/* The child is gone for good: reaped by the runner, so no zombie is left. */
static void assert_no_child(pid_t pid)
{
    int st;
    pid_t r = waitpid(pid, &st, WNOHANG);
    if (!(r == -1 && errno == ECHILD))
        fail_msg("child %d still there: waitpid returned %d (errno %d)", (int)pid, (int)r, errno);
}

/* Polls one job as the agent does (its fd, its ms_left) until it finishes, within budget_s. */
static void wait_done(qf_runner_job **j, qf_job_result *res, double budget_s)
{
    double t0 = now_s();
    for (;;) {
        struct pollfd p = { .fd = qf_runner_fd(*j), .events = POLLIN };
        int64_t ms = qf_runner_ms_left(*j);
        poll(&p, 1, ms > 100 ? 100 : (int)ms);
        int rc = qf_runner_poll(j, res);
        assert_true(rc >= 0);
        if (rc == 1) {
            assert_null(*j);
            return;
        }
        if (now_s() - t0 > budget_s)
            fail_msg("job not finished after %.1f s", budget_s);
    }
}

static void assert_status(const qf_job_result *r, qf_job_status want, const char *needle)
{
    if (r->status != want)
        fail_msg("status %s, expected %s (error '%s')", qf_job_status_name(r->status),
                 qf_job_status_name(want), r->error);
    if (needle && !strstr(r->error, needle))
        fail_msg("reason '%s' does not mention '%s'", r->error, needle);
}

/* ---- children ----------------------------------------------------------------------------- */

_Noreturn static void hang(void)
{
    for (;;)
        pause();
}

static int child_hang(int fd, void *arg)
{
    (void)fd;
    (void)arg;
    hang();
}

static int child_segv(int fd, void *arg)
{
    (void)fd;
    (void)arg;
    raise(SIGSEGV);
    return 0;
}

static int child_abort(int fd, void *arg)
{
    (void)fd;
    (void)arg;
    abort();
}

static int child_silent(int fd, void *arg)
{
    (void)fd;
    return arg ? *(const int *)arg : 0;
}

/* A well-framed body that is not msgpack. */
static int child_garbage(int fd, void *arg)
{
    (void)arg;
    static const char junk[] = "\xc1\xc1 this is not a wire message";
    return qf_runner_send(fd, junk, sizeof junk - 1) == 0 ? 0 : 9;
}

/* A header that claims 4 GiB - 1 bytes. */
static int child_huge_header(int fd, void *arg)
{
    (void)arg;
    static const unsigned char hdr[] = { 0xff, 0xff, 0xff, 0xff, 1, 2, 3 };
    (void)!write(fd, hdr, sizeof hdr);
    hang();
}

/* A header for 100 bytes, then 10 of them, then exit. */
static int child_truncated(int fd, void *arg)
{
    (void)arg;
    static const unsigned char part[] = { 0, 0, 0, 100, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10 };
    (void)!write(fd, part, sizeof part);
    return 0;
}

/* Encodes msg (a RESULT for job 1 attempt 1 unless changed) and sends it; then, if arg asks,
 * keeps writing forever. */
typedef struct send_arg {
    qf_msg msg;
    bool   flood;
} send_arg;

static int child_send(int fd, void *arg)
{
    const send_arg *a = arg;
    void *buf;
    size_t len;
    if (qf_wire_encode(&a->msg, &buf, &len) != 0)
        return 8;
    if (qf_runner_send(fd, buf, len) != 0)
        return 9;
    static const char more[512];
    while (a->flood)
        if (write(fd, more, sizeof more) < 0)
            return 10;
    return 0;
}

static int child_close_and_hang(int fd, void *arg)
{
    (void)arg;
    close(fd);
    hang();
}

static send_arg result_msg(uint64_t job_id, uint32_t attempt)
{
    send_arg a;
    memset(&a, 0, sizeof a);
    a.msg.type = QF_MSG_RESULT;
    a.msg.id = 1;
    a.msg.u.result.job_id = job_id;
    a.msg.u.result.attempt = attempt;
    a.msg.u.result.result.status = QF_JOB_OK;
    snprintf(a.msg.u.result.result.kernel, sizeof a.msg.u.result.result.kernel, "test");
    return a;
}

/* Starts fn under limit_ms as job 1 attempt 1, waits for it, checks the child is gone. */
static void run_child(qf_runner_child_fn fn, void *arg, uint32_t limit_ms, qf_job_result *res)
{
    qf_runner_job *j = NULL;
    assert_int_equal(qf_runner_start_fn(fn, arg, limit_ms, 1, 1, &j), 0);
    assert_non_null(j);
    assert_int_equal(qf_runner_job_id(j), 1);
    assert_int_equal(qf_runner_attempt(j), 1);
    pid_t pid = qf_runner_pid(j);
    assert_true(pid > 0);
    wait_done(&j, res, 5.0);
    assert_no_child(pid);
}

/* ---- tests -------------------------------------------------------------------------------- */

static void test_normal_job(void **state)
{
    (void)state;
    qf_job_spec s = small_spec("matvec", "q4_0", 4);
    qf_runner_job *j = NULL;
    assert_int_equal(qf_runner_start(&s, 77, 2, &j), 0);
    assert_int_equal(qf_runner_job_id(j), 77);
    assert_int_equal(qf_runner_attempt(j), 2);
    assert_true(qf_runner_ms_left(j) > 4000 && qf_runner_ms_left(j) <= 5000);
    pid_t pid = qf_runner_pid(j);
    qf_job_result r;
    wait_done(&j, &r, 5.0);
    assert_no_child(pid);
    assert_status(&r, QF_JOB_OK, NULL);
    assert_int_equal(r.n_samples, 4);
    for (uint32_t i = 0; i < r.n_samples; i++)
        assert_true(r.samples[i] > 0);
    assert_true(r.has_metrics);
    assert_true(r.metrics.snr_db > 10);
    assert_int_equal(r.bytes, 16 * 8 * 18);   /* q4_0: 18 bytes per 32 weights */
    /* the best kernels the host runs (or their fallback): a supported ISA's name */
    qf_isa isa;
    assert_int_equal(qf_isa_from_name(r.kernel, &isa), 0);
    assert_true(qf_isa_host_supports(isa));
    assert_int_equal(strlen(r.dataset_sha256), 64);
    assert_int_equal(r.seed, 5);
    if (r.peak_rss_kb == 0)
        fail_msg("peak RSS of the child is 0 kB");
    assert_true(r.wall_s > 0 && r.wall_s < 5);
    qf_job_result_clear(&r);
}

/* A spec the child refuses comes back FAILED, as the child reported it. */
static void test_failed_job(void **state)
{
    (void)state;
    qf_job_spec s = small_spec("quantize", "q4_K", 1);
    s.cols = 100;
    qf_runner_job *j = NULL;
    assert_int_equal(qf_runner_start(&s, 3, 1, &j), 0);
    qf_job_result r;
    wait_done(&j, &r, 5.0);
    assert_status(&r, QF_JOB_FAILED, "cols");
    assert_int_equal(r.n_samples, 0);
    qf_job_result_clear(&r);
}

static void test_hang_is_killed_at_the_limit(void **state)
{
    (void)state;
    double t0 = now_s();
    qf_job_result r;
    run_child(child_hang, NULL, 200, &r);
    double took = now_s() - t0;
    assert_status(&r, QF_JOB_TIMEOUT, "killed after 200 ms");
    if (took < 0.2 || took > 1.5)
        fail_msg("a 200 ms limit took %.3f s to enforce", took);
    assert_true(r.wall_s >= 0.2);
    assert_int_equal(r.n_samples, 0);
    qf_job_result_clear(&r);
}

static void test_crashes_name_the_signal(void **state)
{
    (void)state;
    qf_job_result r;
    run_child(child_segv, NULL, 5000, &r);
    assert_status(&r, QF_JOB_CRASHED, "killed by signal 11 (SIGSEGV)");
    qf_job_result_clear(&r);
    run_child(child_abort, NULL, 5000, &r);
    assert_status(&r, QF_JOB_CRASHED, "SIGABRT");
    qf_job_result_clear(&r);
}

static void test_garbage_is_a_crash_with_a_reason(void **state)
{
    (void)state;
    qf_job_result r;
    run_child(child_garbage, NULL, 5000, &r);
    assert_status(&r, QF_JOB_CRASHED, "undecodable");
    qf_job_result_clear(&r);

    double t0 = now_s();
    run_child(child_huge_header, NULL, 5000, &r);   /* killed at once, not at the limit */
    assert_status(&r, QF_JOB_CRASHED, "4294967295-byte result frame");
    assert_true(now_s() - t0 < 1.0);
    qf_job_result_clear(&r);

    run_child(child_truncated, NULL, 5000, &r);
    assert_status(&r, QF_JOB_CRASHED, "after 14 of 104 bytes");
    qf_job_result_clear(&r);

    send_arg flood = result_msg(1, 1);
    flood.flood = true;
    t0 = now_s();
    run_child(child_send, &flood, 5000, &r);
    assert_status(&r, QF_JOB_CRASHED, "bytes after its");
    assert_true(now_s() - t0 < 1.0);
    qf_job_result_clear(&r);

    send_arg hb;
    memset(&hb, 0, sizeof hb);
    hb.msg.type = QF_MSG_HEARTBEAT;
    hb.msg.id = 1;
    run_child(child_send, &hb, 5000, &r);
    assert_status(&r, QF_JOB_CRASHED, "HEARTBEAT, not RESULT");
    qf_job_result_clear(&r);

    send_arg wrong = result_msg(2, 1);
    run_child(child_send, &wrong, 5000, &r);
    assert_status(&r, QF_JOB_CRASHED, "job 2 attempt 1, not job 1 attempt 1");
    qf_job_result_clear(&r);
}

/* A hand-made RESULT comes through as sent; runner fields are the parent's. */
static void test_result_passes_through(void **state)
{
    (void)state;
    send_arg ok = result_msg(1, 1);
    double samples[2] = { 0.5, 0.25 };
    ok.msg.u.result.result.samples = samples;
    ok.msg.u.result.result.n_samples = 2;
    ok.msg.u.result.result.peak_rss_kb = 1;
    ok.msg.u.result.result.wall_s = 1000;
    qf_job_result r;
    run_child(child_send, &ok, 5000, &r);
    assert_status(&r, QF_JOB_OK, NULL);
    assert_int_equal(r.n_samples, 2);
    assert_float_equal(r.samples[1], 0.25, 0.0);
    assert_string_equal(r.kernel, "test");
    assert_true(r.peak_rss_kb > 1);
    assert_true(r.wall_s < 1000);
    qf_job_result_clear(&r);
}

static void test_silent_exit_is_a_crash(void **state)
{
    (void)state;
    qf_job_result r;
    run_child(child_silent, NULL, 5000, &r);
    assert_status(&r, QF_JOB_CRASHED, "exited with status 0 without a result");
    qf_job_result_clear(&r);
    int code = 7;
    run_child(child_silent, &code, 5000, &r);
    assert_status(&r, QF_JOB_CRASHED, "status 7");
    qf_job_result_clear(&r);

    double t0 = now_s();
    run_child(child_close_and_hang, NULL, 5000, &r);
    assert_status(&r, QF_JOB_CRASHED, "closed its result pipe");
    assert_true(now_s() - t0 < 1.0);
    qf_job_result_clear(&r);
}

/* Four jobs from one poll loop, as the agent runs its slots. */
static void test_concurrent_jobs(void **state)
{
    (void)state;
    enum { N = 4 };
    qf_job_spec q = small_spec("quantize", "q8_0", 3), n = small_spec("noop", "", 1);
    qf_runner_job *jobs[N] = { NULL };
    pid_t pids[N];
    assert_int_equal(qf_runner_start(&q, 11, 1, &jobs[0]), 0);
    assert_int_equal(qf_runner_start(&n, 12, 1, &jobs[1]), 0);
    assert_int_equal(qf_runner_start_fn(child_hang, NULL, 200, 13, 1, &jobs[2]), 0);
    assert_int_equal(qf_runner_start_fn(child_segv, NULL, 5000, 14, 1, &jobs[3]), 0);
    for (int i = 0; i < N; i++)
        pids[i] = qf_runner_pid(jobs[i]);
    qf_job_result res[N];
    int left = N;
    double t0 = now_s();
    while (left > 0) {
        struct pollfd p[N];
        int np = 0, map[N];
        int64_t ms = 100;
        for (int i = 0; i < N; i++) {
            if (!jobs[i])
                continue;
            p[np] = (struct pollfd){ .fd = qf_runner_fd(jobs[i]), .events = POLLIN };
            map[np++] = i;
            if (qf_runner_ms_left(jobs[i]) < ms)
                ms = qf_runner_ms_left(jobs[i]);
        }
        poll(p, (nfds_t)np, (int)ms);
        for (int k = 0; k < np; k++) {
            int i = map[k];
            int rc = qf_runner_poll(&jobs[i], &res[i]);
            assert_true(rc >= 0);
            left -= rc;
        }
        if (now_s() - t0 > 5.0)
            fail_msg("%d of %d jobs unfinished after 5 s", left, N);
    }
    assert_status(&res[0], QF_JOB_OK, NULL);
    assert_int_equal(res[0].n_samples, 3);
    assert_status(&res[1], QF_JOB_OK, NULL);
    assert_int_equal(res[1].n_samples, 1);
    assert_string_equal(res[1].kernel, "none");
    assert_status(&res[2], QF_JOB_TIMEOUT, "killed after 200 ms");
    assert_status(&res[3], QF_JOB_CRASHED, "SIGSEGV");
    for (int i = 0; i < N; i++) {
        assert_no_child(pids[i]);
        qf_job_result_clear(&res[i]);
    }
}

static void test_kill_a_running_job(void **state)
{
    (void)state;
    qf_runner_job *j = NULL;
    assert_int_equal(qf_runner_start_fn(child_hang, NULL, 60000, 1, 1, &j), 0);
    pid_t pid = qf_runner_pid(j);
    qf_job_result r;
    assert_int_equal(qf_runner_poll(&j, &r), 0);   /* still running */
    assert_non_null(j);
    double t0 = now_s();
    qf_runner_kill(&j);
    assert_null(j);
    assert_true(now_s() - t0 < 1.0);
    assert_no_child(pid);
    qf_runner_kill(&j);    /* NULL-safe */
    qf_runner_kill(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_normal_job),
        cmocka_unit_test(test_failed_job),
        cmocka_unit_test(test_hang_is_killed_at_the_limit),
        cmocka_unit_test(test_crashes_name_the_signal),
        cmocka_unit_test(test_garbage_is_a_crash_with_a_reason),
        cmocka_unit_test(test_result_passes_through),
        cmocka_unit_test(test_silent_exit_is_a_crash),
        cmocka_unit_test(test_concurrent_jobs),
        cmocka_unit_test(test_kill_a_running_job),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
