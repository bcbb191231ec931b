/* child.c - run a question in a forked child, read the answer back (see qf_child.h).
 *
 * Protocol on the pipe: the child writes fn's result (int32) and then the bytes; the parent
 * polls with the remaining time, so a hung child costs at most timeout_ms. The child leaves
 * with _exit (no atexit handlers: the parent's, and the runtime's, must not run twice).
 */
#include "qf_child.h"

#include <errno.h>
#include <stdbool.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "qf_err.h"

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Reads up to len bytes until EOF or the deadline; the count read. */
static size_t read_until(int fd, void *buf, size_t len, int64_t deadline)
{
    size_t done = 0;
    while (done < len) {
        int64_t left = deadline - now_ms();
        struct pollfd p = { .fd = fd, .events = POLLIN };
        if (left <= 0 || poll(&p, 1, (int)left) <= 0)
            break;
        ssize_t r = read(fd, (char *)buf + done, len - done);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;
        done += (size_t)r;
    }
    return done;
}

int qf_child_call(qf_child_fn fn, void *arg, void *buf, size_t size, int timeout_ms,
                  size_t *got)
{
    *got = 0;
    int fds[2];
    if (pipe(fds) != 0)
        return qf_errorf(QF_EIO, "probe: pipe: %s", strerror(errno));
    const int64_t deadline = now_ms() + timeout_ms;
    pid_t pid = fork();
    if (pid < 0) {
        close(fds[0]);
        close(fds[1]);
        return qf_errorf(QF_EIO, "probe: fork: %s", strerror(errno));
    }
    if (pid == 0) {
        close(fds[0]);
        int rc = fn(arg, buf, size);
        int32_t head = rc;
        bool ok = write(fds[1], &head, sizeof head) == (ssize_t)sizeof head;
        for (size_t done = 0; ok && rc > 0 && done < (size_t)rc;) {
            ssize_t w = write(fds[1], (char *)buf + done, (size_t)rc - done);
            ok = w > 0;
            done += ok ? (size_t)w : 0;
        }
        _exit(ok ? 0 : 1);
    }
    close(fds[1]);
    int32_t head = 0;
    int err = 0;
    if (read_until(fds[0], &head, sizeof head, deadline) != sizeof head)
        err = QF_EIO;
    else if (head < 0)
        err = head;
    else if ((size_t)head > size || read_until(fds[0], buf, (size_t)head, deadline) != (size_t)head)
        err = QF_EIO;
    else
        *got = (size_t)head;
    close(fds[0]);
    kill(pid, SIGKILL);     /* gone already unless it hung */
    while (waitpid(pid, NULL, 0) < 0 && errno == EINTR) {
    }
    return err;
}
