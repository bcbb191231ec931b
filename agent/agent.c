/* agent.c - the agent daemon: the agent's half of docs/protocol.md, one loop over one socket.
 *
 * One thread, one DEALER socket connected out to the coordinator, one zmq_poll over that socket
 * and the result pipe of every running job (qf_runner). The loop wakes for a frame, a finished
 * child, a job's deadline or a timer (heartbeat, silence, HELLO retry), never later than
 * STOP_CHECK_MS so a *stop set by another thread is seen promptly.
 *
 * State is small: welcomed or not, the coordinator's heartbeat interval, when we last heard
 * from it, the slots (one running child each) and the spool. Invariants:
 *  - a RESULT is written to the spool (temp file, fsync, rename) before it is first sent, and
 *    removed only when its ACK arrives; every WELCOME re-sends the whole spool, so a result
 *    survives a coordinator restart, a lost connection and an agent restart;
 *  - nothing received can stop the loop: a frame that does not decode is a log line, and
 *    MAX_BAD_FRAMES of them in a row make us start over with HELLO;
 *  - every RESULT fits the coordinator's frame limit (WELCOME.max_frame): one that would not
 *    is sent as a FAILED result saying so, since an oversized frame makes the coordinator's
 *    socket drop the connection and the result would come back after every WELCOME forever;
 *  - the socket has ZMQ_IMMEDIATE set, so while no connection is up a send fails with EAGAIN
 *    instead of piling stale HELLOs and HEARTBEATs into a queue that would burst out at the
 *    coordinator on reconnect; what matters (RESULTs) waits in the spool instead.
 * The DEALER reconnects by itself (ZMQ_RECONNECT_IVL with backoff); the protocol's recovery is
 * ours: silence for SILENT_INTERVALS heartbeats, an "unknown agent" ERROR or a BYE from the
 * coordinator mean HELLO again, retried with doubling backoff until a WELCOME.
 * With CURVE (docs/security.md) libzmq encrypts and authenticates the connection; a socket
 * monitor tells us when the coordinator refuses our key or the handshake fails, which we log
 * once per episode. libzmq does not reconnect a socket whose handshake failed, so we make a new
 * one, with doubling backoff (the key may be enrolled later without restarting anything).
 * Called by `qfleet agent` (qf_agent_main) and, with a shared context over inproc, by
 * `qfleet run`. Not hot: a handful of frames per job.
 */
#include "qf_agent.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#ifdef __linux__
#include <sys/random.h>
#endif
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "qf_cli_args.h"
#include "qf_curve.h"
#include "qf_err.h"
#include "qf_fingerprint.h"
#include "qf_job.h"
#include "qf_runner.h"
#include "qf_version.h"
#include "qf_wire.h"

#define DEFAULT_HEARTBEAT_MS 1000
#define MIN_HEARTBEAT_MS     10
#define MAX_HEARTBEAT_MS     3600000
#define MAX_SLOTS            1024
#define SILENT_INTERVALS     3      /* docs/protocol.md: 3 intervals of silence = lost */
#define HELLO_BACKOFF_MAX_MS 30000  /* HELLO unanswered: retry after hb, 2 hb, ... up to this */
#define SEND_RETRY_MIN_MS    10     /* no connection (EAGAIN): retry HELLO after this, */
#define SEND_RETRY_MAX_MS    500    /* doubling up to this */
#define RECONNECT_IVL_MS     100
#define RECONNECT_IVL_MAX_MS 2000
#define MAX_BAD_FRAMES       10     /* the same count after which the coordinator drops a peer */
#define DRAIN_MAX            256    /* frames handled per wakeup, so timers run under a flood */
#define STOP_CHECK_MS        100
#define REAP_RETRY_MS        10     /* a killed child not reaped yet: look again this soon */
#define BYE_LINGER_MS        250    /* how long close may wait to get BYE out */
#define REOPEN_MIN_MS        1000   /* a refused handshake: a new socket after this, */
#define REOPEN_MAX_MS        30000  /* doubling up to this */

/* A RESULT frame not yet ACKed: on disk in the spool and in memory for re-sending. */
typedef struct spooled {
    uint64_t job_id;
    uint32_t attempt;
    void    *frame;
    size_t   len;
} spooled;

/* One slot: a running child, or run == NULL when free. */
typedef struct slot {
    qf_runner_job *run;
    uint64_t job_id;
    uint32_t attempt;
    char     key[QF_JOB_KEY_MAX];
} slot;

typedef struct agent {
    const qf_agent_opts *o;
    qf_agent_caps caps;
    char    *fingerprint;           /* JSON text, sent in every HELLO */
    uint64_t instance;
    char     spool_dir[PATH_MAX];
    int      lock_fd;               /* holds a POSIX lock on the spool: one agent per spool */
    void    *ctx;
    bool     own_ctx;
    void    *sock;
    qf_wire_limits lim;             /* what we accept */
    size_t   peer_max_frame;        /* what the coordinator accepts (WELCOME.max_frame) */
    uint64_t next_id;               /* our request ids, from 1 */

    bool     welcomed;
    uint64_t agent_id;
    uint32_t heartbeat_ms;
    int64_t  last_heard;            /* monotonic ms of the last frame that decoded */
    int64_t  next_heartbeat;        /* when welcomed */
    int64_t  next_hello;            /* when not */
    uint32_t hello_backoff_ms;
    uint32_t send_retry_ms;
    uint32_t bad_frames;            /* in a row */

    slot    *slots;
    uint32_t n_slots;
    spooled *spool;
    size_t   n_spool, cap_spool;
    int      acked;                 /* results ACKed, for o->max_jobs */
    bool     ctx_gone;              /* the shared context was terminated under us: a stop */
    bool     refused;        /* the coordinator refused our HELLO for good (name in use) */
    qf_curve_monitor *mon;          /* CURVE handshakes, when CURVE is on */
    bool     auth_logged;           /* the current handshake failure has been logged */
    int64_t  reopen_at;             /* after a failed handshake: when to make a new socket */
    uint32_t reopen_ms;
    bool     keys_logged;
} agent;

/* ---- small helpers ------------------------------------------------------------------------ */

/* One line on stderr naming this agent: the daemon's log. */
__attribute__((format(printf, 2, 3)))
static void agent_log(const agent *a, const char *fmt, ...)
{
    char line[1024];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    fprintf(stderr, "qfleet agent %s: %s\n", a->caps.name, line);
}

/* snprintf into a fixed field, truncating quietly: reasons and names are best effort. A cut
 * never splits a UTF-8 sequence (text from the network may hold some), since the codec
 * refuses invalid UTF-8 and the message would not go out at all. */
__attribute__((format(printf, 3, 4)))
static void textf(char *dst, size_t size, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(dst, size, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n < size)
        return;
    size_t end = size - 1;   /* dst[end] == '\0': back off over a cut sequence */
    while (end > 0 && ((unsigned char)dst[end - 1] & 0xC0) == 0x80)
        end--;
    if (end > 0 && ((unsigned char)dst[end - 1] & 0x80))
        end--;               /* the sequence's lead byte, now without its continuation */
    dst[end] = '\0';
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static uint32_t min_u32(uint32_t a, uint32_t b)
{
    return a < b ? a : b;
}

/* The per-process instance: random, so a restarted agent is told apart from its predecessor. */
static uint64_t random_instance(void)
{
    uint64_t x = 0;
#ifdef __linux__
    if (getrandom(&x, sizeof x, 0) == (ssize_t)sizeof x && x)
        return x;
#endif
    {
        int fd = open("/dev/urandom", O_RDONLY | O_CLOEXEC);
        if (fd < 0 || read(fd, &x, sizeof x) != (ssize_t)sizeof x) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            x = (uint64_t)ts.tv_nsec * 0x9E3779B97F4A7C15u ^ (uint64_t)ts.tv_sec ^
                ((uint64_t)getpid() << 32);
        }
        if (fd >= 0)
            close(fd);
    }
    return x ? x : 1;
}

/* ---- the spool ---------------------------------------------------------------------------- */

/* mkdir -p with mode 0700 (results are nobody else's business). */
static int make_dirs(const char *path)
{
    char buf[PATH_MAX];
    if (snprintf(buf, sizeof buf, "%s", path) >= (int)sizeof buf)
        return qf_errorf(QF_EINVAL, "agent: spool path '%s' is too long", path);
    for (char *p = buf + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(buf, 0700) != 0 && errno != EEXIST)
            return qf_errorf(QF_EIO, "agent: cannot create '%s': %s", buf, strerror(errno));
        *p = '/';
    }
    if (mkdir(buf, 0700) != 0 && errno != EEXIST)
        return qf_errorf(QF_EIO, "agent: cannot create '%s': %s", buf, strerror(errno));
    struct stat st;
    if (stat(buf, &st) != 0 || !S_ISDIR(st.st_mode))
        return qf_errorf(QF_EIO, "agent: spool '%s' is not a directory", buf);
    return 0;
}

/* ~/.cache/qfleet/spool-<name> ($XDG_CACHE_HOME first), with the name made path-safe. */
static int default_spool_dir(const char *name, char *out, size_t size)
{
    const char *xdg = getenv("XDG_CACHE_HOME"), *home = getenv("HOME");
    char base[PATH_MAX];
    if (xdg && xdg[0] == '/')
        textf(base, sizeof base, "%s", xdg);
    else if (home && home[0])
        textf(base, sizeof base, "%s/.cache", home);
    else
        return qf_errorf(QF_EINVAL, "agent: no HOME to put the spool in; give --spool DIR");
    char safe[QF_WIRE_NAME_MAX];
    size_t i = 0;
    for (; name[i] && i + 1 < sizeof safe; i++) {
        char c = name[i];
        bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                  c == '.' || c == '-' || c == '_';
        safe[i] = ok ? c : '_';
    }
    safe[i] = '\0';
    if (snprintf(out, size, "%s/qfleet/spool-%s", base, safe) >= (int)size)
        return qf_errorf(QF_EINVAL, "agent: spool path under '%s' is too long", base);
    return 0;
}

static int spool_path(const agent *a, const char *prefix, uint64_t job_id, uint32_t attempt,
                      char *out, size_t size)
{
    int n = snprintf(out, size, "%s/%sjob-%" PRIu64 "-%" PRIu32 ".msgpack", a->spool_dir, prefix,
                     job_id, attempt);
    return n > 0 && (size_t)n < size ? 0 : QF_EINVAL;
}

static int write_all(int fd, const void *buf, size_t len)
{
    const char *p = buf;
    while (len > 0) {
        ssize_t n = write(fd, p, len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        p += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Writes the frame to the spool atomically and durably: temp file, fsync, rename, fsync of
 * the folder. A crash leaves either no file or the whole frame, never half of one. */
static int spool_write(const agent *a, const spooled *s)
{
    char tmp[PATH_MAX], path[PATH_MAX];
    if (spool_path(a, ".tmp-", s->job_id, s->attempt, tmp, sizeof tmp) != 0 ||
        spool_path(a, "", s->job_id, s->attempt, path, sizeof path) != 0)
        return QF_EINVAL;
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    if (fd < 0)
        return QF_EIO;
    int bad = write_all(fd, s->frame, s->len) != 0 || fsync(fd) != 0;
    bad |= close(fd) != 0;
    if (bad || rename(tmp, path) != 0) {
        int saved = errno;
        unlink(tmp);
        errno = saved;
        return QF_EIO;
    }
    int dfd = open(a->spool_dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
        fsync(dfd);
        close(dfd);
    }
    return 0;
}

/* Takes ownership of frame. */
static int spool_append(agent *a, uint64_t job_id, uint32_t attempt, void *frame, size_t len)
{
    if (a->n_spool == a->cap_spool) {
        size_t cap = a->cap_spool ? 2 * a->cap_spool : 8;
        spooled *p = realloc(a->spool, cap * sizeof *p);
        if (!p) {
            free(frame);
            return QF_ENOMEM;
        }
        a->spool = p;
        a->cap_spool = cap;
    }
    a->spool[a->n_spool++] = (spooled){ job_id, attempt, frame, len };
    return 0;
}

static spooled *spool_find(agent *a, uint64_t job_id, uint32_t attempt)
{
    for (size_t i = 0; i < a->n_spool; i++)
        if (a->spool[i].job_id == job_id && a->spool[i].attempt == attempt)
            return &a->spool[i];
    return NULL;
}

/* The ACK came: the result is the coordinator's now. */
static void spool_remove(agent *a, spooled *s)
{
    char path[PATH_MAX];
    if (spool_path(a, "", s->job_id, s->attempt, path, sizeof path) == 0 && unlink(path) != 0 &&
        errno != ENOENT)
        agent_log(a, "cannot remove '%s': %s", path, strerror(errno));
    free(s->frame);
    *s = a->spool[--a->n_spool];   /* order does not matter: all are re-sent together */
}

/* Reads one spooled file into memory; a file that is not the RESULT its name says is moved
 * aside as NAME.bad so it is reported once, not at every start. */
static void spool_load_file(agent *a, int dfd, const char *name, uint64_t job_id,
                            uint32_t attempt)
{
    char why[256] = "";
    void *buf = NULL;
    size_t len = 0;
    int fd = openat(dfd, name, O_RDONLY | O_CLOEXEC);
    struct stat st;
    if (fd < 0 || fstat(fd, &st) != 0) {
        textf(why, sizeof why, "%s", strerror(errno));
    } else if (st.st_size <= 0 || (uint64_t)st.st_size > a->lim.max_frame) {
        textf(why, sizeof why, "size %lld is not that of a frame", (long long)st.st_size);
    } else if (!(buf = malloc((size_t)st.st_size))) {
        textf(why, sizeof why, "out of memory");
    } else {
        len = (size_t)st.st_size;
        size_t got = 0;
        while (got < len) {
            ssize_t n = read(fd, (char *)buf + got, len - got);
            if (n < 0 && errno == EINTR)
                continue;
            if (n <= 0)
                break;
            got += (size_t)n;
        }
        qf_msg m;
        memset(&m, 0, sizeof m);
        char dwhy[200];
        if (got != len)
            textf(why, sizeof why, "short read");
        else if (qf_wire_decode(buf, len, &a->lim, &m, dwhy, sizeof dwhy) != 0)
            textf(why, sizeof why, "%s", dwhy);
        else if (m.type != QF_MSG_RESULT || m.u.result.job_id != job_id ||
                 m.u.result.attempt != attempt)
            textf(why, sizeof why, "holds a %s for job %" PRIu64 "/%" PRIu32,
                  qf_msg_type_name((int)m.type), m.u.result.job_id, m.u.result.attempt);
        qf_msg_clear(&m);
    }
    if (fd >= 0)
        close(fd);
    if (why[0]) {
        free(buf);
        char bad[NAME_MAX + 8];
        textf(bad, sizeof bad, "%s.bad", name);
        agent_log(a, "spool file '%s/%s' skipped (%s); renamed to %s", a->spool_dir, name, why,
                  bad);
        renameat(dfd, name, dfd, bad);
        return;
    }
    if (spool_append(a, job_id, attempt, buf, len) != 0)
        agent_log(a, "out of memory loading the spool; '%s' waits for the next start", name);
}

/* Loads every job-<id>-<attempt>.msgpack the previous process left; removes temp files a
 * crash left mid-write (their result was never sent, and its lease will time out). */
static int spool_load(agent *a)
{
    DIR *d = opendir(a->spool_dir);
    if (!d)
        return qf_errorf(QF_EIO, "agent: cannot read spool '%s': %s", a->spool_dir,
                         strerror(errno));
    struct dirent *e;
    while ((e = readdir(d)) != NULL) {
        const char *name = e->d_name;
        if (strncmp(name, ".tmp-job-", 9) == 0) {
            unlinkat(dirfd(d), name, 0);
            continue;
        }
        uint64_t job_id;
        uint32_t attempt;
        char canon[NAME_MAX + 1];
        if (sscanf(name, "job-%" SCNu64 "-%" SCNu32 ".msgpack", &job_id, &attempt) != 2)
            continue;
        textf(canon, sizeof canon, "job-%" PRIu64 "-%" PRIu32 ".msgpack", job_id, attempt);
        if (strcmp(canon, name) != 0)    /* "job-1-1.msgpack.bad", "job-01-...": not ours */
            continue;
        spool_load_file(a, dirfd(d), name, job_id, attempt);
    }
    closedir(d);
    if (a->n_spool > 0)
        agent_log(a, "%zu unacknowledged result(s) in spool %s", a->n_spool, a->spool_dir);
    return 0;
}

/* ---- sending ------------------------------------------------------------------------------ */

/* 0 when queued; QF_EBUSY when no connection is up (ZMQ_IMMEDIATE); QF_ENET otherwise. */
static int send_frame(agent *a, const void *buf, size_t len)
{
    if (zmq_send(a->sock, buf, len, ZMQ_DONTWAIT) >= 0)
        return 0;
    if (errno == EAGAIN || errno == EINTR)
        return QF_EBUSY;
    agent_log(a, "send failed: %s", zmq_strerror(errno));
    return QF_ENET;
}

/* Encodes m with a fresh id into a malloc'd frame (caller frees). */
static int encode(agent *a, qf_msg *m, void **buf, size_t *len)
{
    m->id = a->next_id++;
    int rc = qf_wire_encode(m, buf, len);
    if (rc != 0)
        agent_log(a, "cannot encode %s: %s", qf_msg_type_name((int)m->type), qf_strerror(rc));
    return rc;
}

static int send_msg(agent *a, qf_msg *m)
{
    void *buf;
    size_t len;
    int rc = encode(a, m, &buf, &len);
    if (rc != 0)
        return rc;
    rc = send_frame(a, buf, len);
    free(buf);
    return rc;
}

static int open_socket(agent *a);
static void close_socket(agent *a);

/* A refused key or a failed handshake makes the HELLOs vanish: say why, once per episode, and
 * since libzmq gives such a socket up, replace it (with backoff). */
static void check_handshake(agent *a, int64_t now)
{
    char why[256];
    if (!qf_curve_monitor_failed(a->mon, why, sizeof why)) {
        a->auth_logged = false;
        a->reopen_at = 0;
        a->reopen_ms = REOPEN_MIN_MS;
        return;
    }
    if (!a->auth_logged)
        agent_log(a, "cannot join %s: %s (retrying)", a->o->endpoint, why);
    a->auth_logged = true;
    if (!a->reopen_at) {
        a->reopen_at = now + a->reopen_ms;
        return;
    }
    if (now < a->reopen_at)
        return;
    close_socket(a);
    if (open_socket(a) != 0) {
        agent_log(a, "cannot make a new socket (see above): stopping");
        close_socket(a);        /* the loop sees no socket and ends */
    }
    a->reopen_ms = min_u32(2 * a->reopen_ms, REOPEN_MAX_MS);
    a->reopen_at = 0;
}

static void send_hello(agent *a, int64_t now)
{
    check_handshake(a, now);
    if (!a->sock)
        return;
    qf_msg m = { .type = QF_MSG_HELLO };
    qf_msg_hello *h = &m.u.hello;
    textf(h->name, sizeof h->name, "%s", a->caps.name);
    h->instance = a->instance;
    h->slots = a->n_slots;
    textf(h->version, sizeof h->version, "%s", QF_VERSION);
    textf(h->commit, sizeof h->commit, "%s%s", QF_GIT_COMMIT, QF_GIT_DIRTY ? "-dirty" : "");
    textf(h->arch, sizeof h->arch, "%s", a->caps.arch);
    textf(h->isa, sizeof h->isa, "%s", a->caps.isa);
    textf(h->backends, sizeof h->backends, "%s", a->caps.backends);
    h->fingerprint = a->fingerprint;   /* borrowed: m is not cleared */
    int rc = send_msg(a, &m);
    if (rc == 0) {
        a->next_hello = now + a->hello_backoff_ms;
        a->hello_backoff_ms = min_u32(2 * a->hello_backoff_ms, HELLO_BACKOFF_MAX_MS);
        a->send_retry_ms = SEND_RETRY_MIN_MS;
    } else {
        a->next_hello = now + a->send_retry_ms;
        a->send_retry_ms = min_u32(2 * a->send_retry_ms, SEND_RETRY_MAX_MS);
    }
}

/* HELLO retries start again from one heartbeat (a registration succeeded or was lost). */
static void reset_backoff(agent *a)
{
    a->hello_backoff_ms = min_u32(a->heartbeat_ms, HELLO_BACKOFF_MAX_MS);
    a->send_retry_ms = SEND_RETRY_MIN_MS;
}

/* Forget the registration and start over with HELLO now (the coordinator restarted, went
 * silent, or no longer knows us). */
static void hello_again(agent *a, int64_t now)
{
    a->welcomed = false;
    reset_backoff(a);
    send_hello(a, now);
}

static void send_jobref(agent *a, qf_msg_type type, uint64_t job_id, uint32_t attempt,
                        const char *reason)
{
    qf_msg m = { .type = type };
    m.u.jobref.job_id = job_id;
    m.u.jobref.attempt = attempt;
    if (reason)
        textf(m.u.jobref.reason, sizeof m.u.jobref.reason, "%s", reason);
    int rc = send_msg(a, &m);
    if (rc != 0)
        agent_log(a, "could not send %s for job %" PRIu64 "/%" PRIu32 ": %s",
                  qf_msg_type_name((int)type), job_id, attempt, qf_strerror(rc));
}

static uint32_t running_count(const agent *a)
{
    uint32_t n = 0;
    for (uint32_t i = 0; i < a->n_slots; i++)
        n += a->slots[i].run != NULL;
    return n;
}

/* ---- result frames ------------------------------------------------------------------------ */

/* The RESULT frame for job_id/attempt (caller frees *buf). When the codec refuses res or the
 * frame is over the coordinator's limit (which would make its socket drop the connection),
 * the frame carries a FAILED result saying so instead, keeping kernel, seed, RSS and wall
 * time: the coordinator still hears how the attempt ended, and the frame always fits. */
static int result_frame(agent *a, uint64_t job_id, uint32_t attempt, const qf_job_result *res,
                        void **buf, size_t *len)
{
    qf_msg m = { .type = QF_MSG_RESULT };
    m.u.result.job_id = job_id;
    m.u.result.attempt = attempt;
    m.u.result.result = *res;   /* shallow: samples stay res's */
    char why[QF_JOB_ERROR_MAX] = "";
    int rc = encode(a, &m, buf, len);
    if (rc != 0) {
        textf(why, sizeof why, "the %s result could not be encoded: %s",
              qf_job_status_name(res->status), qf_strerror(rc));
    } else if (*len > a->peer_max_frame) {
        textf(why, sizeof why, "the %s result is %zu bytes, over the coordinator's frame limit "
              "of %zu bytes", qf_job_status_name(res->status), *len, a->peer_max_frame);
        free(*buf);
        *buf = NULL;
    }
    if (!why[0])
        return 0;
    agent_log(a, "job %" PRIu64 "/%" PRIu32 ": %s; sending a failed result instead", job_id,
              attempt, why);
    qf_job_result *r = &m.u.result.result;
    memset(r, 0, sizeof *r);
    r->status = QF_JOB_FAILED;
    textf(r->error, sizeof r->error, "%s", why);
    textf(r->kernel, sizeof r->kernel, "%s", res->kernel);
    r->seed = res->seed;
    r->wall_s = res->wall_s;
    r->peak_rss_kb = res->peak_rss_kb;
    r->device_mem_bytes = res->device_mem_bytes;
    return encode(a, &m, buf, len);
}

/* A spooled result over the limit of the coordinator now answering (it came back with a
 * smaller --max-frame) is remade as the FAILED result result_frame would send. */
static void spool_shrink(agent *a, spooled *s)
{
    qf_msg m;
    char why[200];
    if (qf_wire_decode(s->frame, s->len, &a->lim, &m, why, sizeof why) != 0)
        return;   /* cannot happen: every spooled frame was decoded or encoded by us */
    void *buf = NULL;
    size_t len = 0;
    int rc = result_frame(a, s->job_id, s->attempt, &m.u.result.result, &buf, &len);
    qf_msg_clear(&m);
    if (rc != 0)
        return;
    free(s->frame);
    s->frame = buf;
    s->len = len;
    if (spool_write(a, s) != 0)
        agent_log(a, "cannot rewrite the spooled result of job %" PRIu64 "/%" PRIu32 ": %s",
                  s->job_id, s->attempt, strerror(errno));
}

/* ---- what the coordinator says ------------------------------------------------------------ */

static void on_welcome(agent *a, const qf_msg_welcome *w, int64_t now)
{
    uint32_t hb = w->heartbeat_ms;
    hb = hb < MIN_HEARTBEAT_MS ? MIN_HEARTBEAT_MS : hb > MAX_HEARTBEAT_MS ? MAX_HEARTBEAT_MS : hb;
    if (!a->o->quiet && (!a->welcomed || a->agent_id != w->agent_id))
        agent_log(a, "welcomed as agent %" PRIu64 " (heartbeat %" PRIu32 " ms)", w->agent_id, hb);
    a->welcomed = true;
    a->agent_id = w->agent_id;
    a->heartbeat_ms = hb;
    reset_backoff(a);
    a->next_heartbeat = now + hb;
    a->peer_max_frame = w->max_frame ? w->max_frame : a->lim.max_frame;
    /* Every WELCOME may follow a coordinator restart: whatever it has not ACKed goes again. */
    for (size_t i = 0; i < a->n_spool; i++) {
        if (a->spool[i].len > a->peer_max_frame)
            spool_shrink(a, &a->spool[i]);
        if (send_frame(a, a->spool[i].frame, a->spool[i].len) != 0)
            break;   /* no connection: the next WELCOME tries again */
    }
}

static void on_job(agent *a, const qf_msg_job *j)
{
    char why[QF_WIRE_TEXT_MAX];
    /* A JOB we already hold (the coordinator re-sent it): answer as we did, run nothing twice. */
    for (uint32_t i = 0; i < a->n_slots; i++) {
        if (a->slots[i].run && a->slots[i].job_id == j->job_id &&
            a->slots[i].attempt == j->attempt) {
            send_jobref(a, QF_MSG_ACCEPT, j->job_id, j->attempt, NULL);
            return;
        }
    }
    const spooled *done = spool_find(a, j->job_id, j->attempt);
    if (done) {
        send_frame(a, done->frame, done->len);
        return;
    }

    slot *free_slot = NULL;
    for (uint32_t i = 0; i < a->n_slots && !free_slot; i++)
        if (!a->slots[i].run)
            free_slot = &a->slots[i];
    if (qf_job_spec_validate(&j->spec, why, sizeof why) != 0) {
        /* why says what is wrong */
    } else if (!qf_selector_match(j->spec.selector, &a->caps)) {
        textf(why, sizeof why, "selector '%s' does not match this agent", j->spec.selector);
    } else if (!free_slot) {
        textf(why, sizeof why, "no free slot");
    } else {
        int rc = qf_runner_start(&j->spec, j->job_id, j->attempt, &free_slot->run);
        if (rc == 0) {
            free_slot->job_id = j->job_id;
            free_slot->attempt = j->attempt;
            qf_job_key(&j->spec, free_slot->key);
            send_jobref(a, QF_MSG_ACCEPT, j->job_id, j->attempt, NULL);
            if (!a->o->quiet)
                agent_log(a, "job %" PRIu64 "/%" PRIu32 " %s started", j->job_id, j->attempt,
                          free_slot->key);
            return;
        }
        free_slot->run = NULL;
        textf(why, sizeof why, "cannot start the job's process: %s", qf_strerror(rc));
    }
    agent_log(a, "job %" PRIu64 "/%" PRIu32 " rejected: %s", j->job_id, j->attempt, why);
    qf_msg m = { .type = QF_MSG_REJECT };
    m.u.jobref.job_id = j->job_id;
    m.u.jobref.attempt = j->attempt;
    m.u.jobref.busy = free_slot == NULL;
    textf(m.u.jobref.reason, sizeof m.u.jobref.reason, "%s", why);
    if (send_msg(a, &m) != 0)
        agent_log(a, "could not send REJECT for job %" PRIu64 "/%" PRIu32, j->job_id,
                  j->attempt);
}

static void on_ack(agent *a, const qf_msg_jobref *ack)
{
    spooled *s = spool_find(a, ack->job_id, ack->attempt);
    if (!s)
        return;   /* a duplicate ACK of a result re-sent after WELCOME */
    spool_remove(a, s);
    a->acked++;
}

static void on_frame(agent *a, const void *buf, size_t len, int64_t now)
{
    qf_msg m;
    char why[256];
    if (qf_wire_decode(buf, len, &a->lim, &m, why, sizeof why) != 0) {
        agent_log(a, "bad frame from the coordinator (%zu bytes): %s", len, why);
        if (++a->bad_frames >= MAX_BAD_FRAMES) {
            agent_log(a, "%u bad frames in a row; saying HELLO again", a->bad_frames);
            a->bad_frames = 0;
            hello_again(a, now);
        }
        return;
    }
    a->bad_frames = 0;
    a->last_heard = now;
    switch (m.type) {
    case QF_MSG_WELCOME:
        on_welcome(a, &m.u.welcome, now);
        break;
    case QF_MSG_HEARTBEAT:
        break;
    case QF_MSG_JOB:
        on_job(a, &m.u.job);
        break;
    case QF_MSG_ACK:
        on_ack(a, &m.u.jobref);
        break;
    case QF_MSG_ERROR:
        agent_log(a, "coordinator says %s: %s", m.u.error.code, m.u.error.reason);
        if (strstr(m.u.error.reason, "unknown agent"))
            hello_again(a, now);
        else if (!a->welcomed && strcmp(m.u.error.code, "QF_EEXIST") == 0)
            a->refused = true;    /* another live agent has our name: retrying cannot help */
        break;
    case QF_MSG_BYE:
        agent_log(a, "coordinator said BYE (%s); waiting for it to come back",
                  m.u.error.reason[0] ? m.u.error.reason : "no reason");
        a->welcomed = false;
        reset_backoff(a);
        a->next_hello = now + a->hello_backoff_ms;
        break;
    default:
        agent_log(a, "unexpected %s from the coordinator; ignored", qf_msg_type_name((int)m.type));
        break;
    }
    qf_msg_clear(&m);
}

/* Handles what the socket has, up to DRAIN_MAX frames. QF_ENET if the context is gone. */
static int drain_socket(agent *a, int64_t now)
{
    for (int i = 0; i < DRAIN_MAX; i++) {
        zmq_msg_t msg;
        zmq_msg_init(&msg);
        if (zmq_msg_recv(&msg, a->sock, ZMQ_DONTWAIT) < 0) {
            int err = errno;
            zmq_msg_close(&msg);
            if (err == EAGAIN || err == EINTR)
                return 0;
            if (err == ETERM) {
                a->ctx_gone = true;
                return 0;
            }
            agent_log(a, "receive failed: %s", zmq_strerror(err));
            return 0;
        }
        if (zmq_msg_more(&msg)) {
            /* The protocol is one frame per message: drop the rest of this one. */
            size_t parts = 1;
            int more = 1;
            while (more) {
                zmq_msg_t part;
                zmq_msg_init(&part);
                more = zmq_msg_recv(&part, a->sock, ZMQ_DONTWAIT) >= 0 && zmq_msg_more(&part);
                zmq_msg_close(&part);
                parts++;
            }
            agent_log(a, "bad message from the coordinator: %zu frames, expected 1", parts);
            if (++a->bad_frames >= MAX_BAD_FRAMES) {
                a->bad_frames = 0;
                hello_again(a, now);
            }
        } else {
            on_frame(a, zmq_msg_data(&msg), zmq_msg_size(&msg), now);
        }
        zmq_msg_close(&msg);
    }
    return 0;
}

/* ---- results ------------------------------------------------------------------------------ */

/* Spools the result, then sends it. */
static void deliver(agent *a, uint64_t job_id, uint32_t attempt, const qf_job_result *res)
{
    void *buf = NULL;
    size_t len = 0;
    if (result_frame(a, job_id, attempt, res, &buf, &len) != 0)
        return;   /* logged; the lease runs out and the job is retried */
    spooled s = { job_id, attempt, buf, len };
    if (spool_write(a, &s) != 0)
        agent_log(a, "cannot spool the result of job %" PRIu64 "/%" PRIu32 " in %s: %s; it is "
                  "kept in memory only", job_id, attempt, a->spool_dir, strerror(errno));
    if (spool_append(a, job_id, attempt, buf, len) != 0) {
        agent_log(a, "out of memory keeping the result of job %" PRIu64 "/%" PRIu32, job_id,
                  attempt);
        return;
    }
    send_frame(a, a->spool[a->n_spool - 1].frame, len);   /* EAGAIN: goes after WELCOME */
}

/* Looks at a slot's child: delivers its result when it has finished. */
static void check_slot(agent *a, slot *s)
{
    qf_job_result res;
    memset(&res, 0, sizeof res);
    int rc = qf_runner_poll(&s->run, &res);
    if (rc == 0)
        return;
    if (rc < 0) {
        /* The runner lost track of its child: end it and report the attempt as crashed. */
        agent_log(a, "job %" PRIu64 "/%" PRIu32 ": runner error %s", s->job_id, s->attempt,
                  qf_strerror(rc));
        qf_runner_kill(&s->run);
        qf_job_result_clear(&res);
        res.status = QF_JOB_CRASHED;
        textf(res.error, sizeof res.error, "agent lost the job's process: %s", qf_strerror(rc));
    }
    s->run = NULL;
    if (!a->o->quiet)
        agent_log(a, "job %" PRIu64 "/%" PRIu32 " %s %s (%" PRIu32 " samples, %.3f s)%s%s",
                  s->job_id, s->attempt, s->key, qf_job_status_name(res.status), res.n_samples,
                  res.wall_s, res.error[0] ? ": " : "", res.error);
    deliver(a, s->job_id, s->attempt, &res);
    qf_job_result_clear(&res);
}

/* ---- the loop ----------------------------------------------------------------------------- */

static void run_timers(agent *a, int64_t now)
{
    if (a->welcomed) {
        int64_t silent = now - a->last_heard;
        if (silent >= (int64_t)SILENT_INTERVALS * a->heartbeat_ms) {
            agent_log(a, "heard nothing from the coordinator for %" PRId64 " ms; saying HELLO "
                      "again", silent);
            hello_again(a, now);
        } else if (now >= a->next_heartbeat) {
            qf_msg m = { .type = QF_MSG_HEARTBEAT };
            m.u.heartbeat.running = running_count(a);
            send_msg(a, &m);   /* lost when disconnected: the silence check covers it */
            a->next_heartbeat = now + a->heartbeat_ms;
        }
    } else if (now >= a->next_hello) {
        send_hello(a, now);
    }
}

/* Milliseconds zmq_poll may sleep: until the next timer or job deadline, at most
 * STOP_CHECK_MS. */
static long poll_timeout(const agent *a, int64_t now)
{
    int64_t due = a->welcomed ? a->next_heartbeat : a->next_hello;
    if (a->welcomed) {
        int64_t lost = a->last_heard + (int64_t)SILENT_INTERVALS * a->heartbeat_ms;
        due = lost < due ? lost : due;
    }
    int64_t wait = due - now;
    for (uint32_t i = 0; i < a->n_slots; i++) {
        if (!a->slots[i].run)
            continue;
        int64_t left = qf_runner_ms_left(a->slots[i].run);
        if (left <= 0)
            left = REAP_RETRY_MS;
        wait = left < wait ? left : wait;
    }
    return wait < 0 ? 0 : wait > STOP_CHECK_MS ? STOP_CHECK_MS : (long)wait;
}

static int agent_loop(agent *a)
{
    zmq_pollitem_t *items = calloc(1 + (size_t)a->n_slots, sizeof *items);
    uint32_t *item_slot = calloc(1 + (size_t)a->n_slots, sizeof *item_slot);
    if (!items || !item_slot) {
        free(items);
        free(item_slot);
        return QF_ENOMEM;
    }
    int rc = 0;
    reset_backoff(a);
    send_hello(a, now_ms());
    while (!*a->o->stop && !a->ctx_gone && !a->refused &&
           !(a->o->max_jobs > 0 && a->acked >= a->o->max_jobs)) {
        if (!a->sock) {          /* a new socket after a failed handshake could not be made */
            rc = QF_ENET;
            break;
        }
        int64_t now = now_ms();
        run_timers(a, now);
        int n = 0;
        items[n++] = (zmq_pollitem_t){ .socket = a->sock, .events = ZMQ_POLLIN };
        for (uint32_t i = 0; i < a->n_slots; i++) {
            if (!a->slots[i].run)
                continue;
            item_slot[n] = i;
            items[n++] = (zmq_pollitem_t){ .fd = qf_runner_fd(a->slots[i].run),
                                           .events = ZMQ_POLLIN };
        }
        if (zmq_poll(items, n, poll_timeout(a, now)) < 0) {
            if (errno == EINTR)
                continue;   /* a signal: *stop is checked at the top */
            if (errno == ETERM) {   /* the owner of a shared context is shutting down */
                a->ctx_gone = true;
                break;
            }
            agent_log(a, "poll failed: %s", zmq_strerror(errno));
            rc = QF_ENET;
            break;
        }
        now = now_ms();
        if ((items[0].revents & ZMQ_POLLIN) && (rc = drain_socket(a, now)) != 0)
            break;
        for (int k = 1; k < n; k++) {
            slot *s = &a->slots[item_slot[k]];
            if (s->run && (items[k].revents || qf_runner_ms_left(s->run) <= 0))
                check_slot(a, s);
        }
    }
    free(items);
    free(item_slot);
    if (a->refused && rc == 0)
        rc = qf_errorf(QF_EEXIST, "agent %s: the coordinator refused it: another live agent has "
                       "this name; start this one with a different --name", a->caps.name);
    return rc;
}

/* A fingerprint that fits the wire, whatever the machine: the full one, or a stub naming the
 * agent when a machine is so large its description passes QF_WIRE_FINGERPRINT_MAX. */
static int fit_fingerprint(agent *a)
{
    if (strlen(a->fingerprint) <= QF_WIRE_FINGERPRINT_MAX)
        return 0;
    agent_log(a, "fingerprint is %zu bytes, over the wire's %u; sending a short one",
              strlen(a->fingerprint), QF_WIRE_FINGERPRINT_MAX);
    char *small = malloc(512);
    if (!small)
        return QF_ENOMEM;
    snprintf(small, 512, "{\"name\":\"%s\",\"arch\":\"%s\",\"truncated\":true}", a->caps.name,
             a->caps.arch);
    free(a->fingerprint);
    a->fingerprint = small;
    return 0;
}

static int agent_open(agent *a, const qf_agent_opts *o)
{
    a->o = o;
    a->lock_fd = -1;
    a->lim = qf_wire_default_limits();
    a->peer_max_frame = a->lim.max_frame;
    a->next_id = 1;
    a->n_slots = o->slots ? o->slots : 1;
    a->heartbeat_ms = o->heartbeat_ms ? o->heartbeat_ms : DEFAULT_HEARTBEAT_MS;
    assert(a->n_slots <= MAX_SLOTS);
    assert(a->heartbeat_ms >= MIN_HEARTBEAT_MS && a->heartbeat_ms <= MAX_HEARTBEAT_MS);
    a->instance = random_instance();

    int rc = qf_fingerprint_collect(o->name, &a->caps, &a->fingerprint);
    if (rc != 0)
        return rc;
    if ((rc = fit_fingerprint(a)) != 0)
        return rc;
    a->slots = calloc(a->n_slots, sizeof *a->slots);
    if (!a->slots)
        return QF_ENOMEM;

    if (o->spool_dir && o->spool_dir[0]) {
        if (snprintf(a->spool_dir, sizeof a->spool_dir, "%s", o->spool_dir) >=
            (int)sizeof a->spool_dir)
            return qf_errorf(QF_EINVAL, "agent: spool path '%s' is too long", o->spool_dir);
    } else if ((rc = default_spool_dir(a->caps.name, a->spool_dir, sizeof a->spool_dir)) != 0) {
        return rc;
    }
    if ((rc = make_dirs(a->spool_dir)) != 0)
        return rc;
    /* A POSIX record lock: per process, so the job children we fork do not inherit it and
     * cannot keep it after we die. */
    char lock_path[PATH_MAX];
    if (snprintf(lock_path, sizeof lock_path, "%s/lock", a->spool_dir) >= (int)sizeof lock_path)
        return qf_errorf(QF_EINVAL, "agent: spool path '%s' is too long", a->spool_dir);
    a->lock_fd = open(lock_path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
    struct flock fl = { .l_type = F_WRLCK, .l_whence = SEEK_SET };
    if (a->lock_fd < 0)
        return qf_errorf(QF_EIO, "agent: cannot open '%s': %s", lock_path, strerror(errno));
    if (fcntl(a->lock_fd, F_SETLK, &fl) != 0)
        return qf_errorf(QF_EBUSY, "agent: spool %s is in use by another agent process",
                         a->spool_dir);
    if ((rc = spool_load(a)) != 0)
        return rc;

    a->ctx = o->zmq_ctx;
    if (!a->ctx) {
        a->ctx = zmq_ctx_new();
        a->own_ctx = true;
        if (!a->ctx)
            return qf_errorf(QF_ENET, "agent: cannot create a ZeroMQ context: %s",
                             zmq_strerror(errno));
    }
    a->reopen_ms = REOPEN_MIN_MS;
    return open_socket(a);
}

/* The DEALER with its options (and CURVE keys, and their monitor), connected. */
static int open_socket(agent *a)
{
    const qf_agent_opts *o = a->o;
    int rc;
    a->sock = zmq_socket(a->ctx, ZMQ_DEALER);
    if (!a->sock)
        return qf_errorf(QF_ENET, "agent: cannot create a socket: %s", zmq_strerror(errno));
    int zero = 0, one = 1, ivl = RECONNECT_IVL_MS, ivl_max = RECONNECT_IVL_MAX_MS;
    int64_t max_frame = (int64_t)a->lim.max_frame;
    if (zmq_setsockopt(a->sock, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
        zmq_setsockopt(a->sock, ZMQ_IMMEDIATE, &one, sizeof one) != 0 ||
        zmq_setsockopt(a->sock, ZMQ_RECONNECT_IVL, &ivl, sizeof ivl) != 0 ||
        zmq_setsockopt(a->sock, ZMQ_RECONNECT_IVL_MAX, &ivl_max, sizeof ivl_max) != 0 ||
        zmq_setsockopt(a->sock, ZMQ_MAXMSGSIZE, &max_frame, sizeof max_frame) != 0)
        return qf_errorf(QF_ENET, "agent: cannot set socket options: %s", zmq_strerror(errno));
    qf_curve_opts sec = { .secret_file = o->curve_secret, .server_key_file = o->server_key,
                          .insecure = o->insecure };
    char fp[QF_CURVE_FP_SIZE];
    if ((rc = qf_curve_client_setup(a->sock, o->endpoint, &sec, "agent", fp)) != 0)
        return rc;
    if (fp[0]) {
        if ((rc = qf_curve_monitor_open(a->ctx, a->sock, &a->mon)) != 0)
            return rc;
        if (!o->quiet && !a->keys_logged)
            agent_log(a, "CURVE key %s, coordinator key from %s", fp, o->server_key);
        a->keys_logged = true;
    }
    if (zmq_connect(a->sock, o->endpoint) != 0)
        return qf_errorf(QF_EINVAL, "agent: cannot connect to '%s': %s", o->endpoint,
                         zmq_strerror(errno));
    return 0;
}

static void close_socket(agent *a)
{
    qf_curve_monitor_close(&a->mon);
    if (a->sock)
        zmq_close(a->sock);
    a->sock = NULL;
}

/* Ends children, says BYE when the stop is a clean one, releases everything. */
static void agent_close(agent *a, bool say_bye)
{
    for (uint32_t i = 0; a->slots && i < a->n_slots; i++) {
        if (!a->slots[i].run)
            continue;
        agent_log(a, "job %" PRIu64 "/%" PRIu32 " killed: the agent is stopping",
                  a->slots[i].job_id, a->slots[i].attempt);
        qf_runner_kill(&a->slots[i].run);
    }
    if (a->sock) {
        if (say_bye) {
            qf_msg m = { .type = QF_MSG_BYE };
            textf(m.u.error.reason, sizeof m.u.error.reason, "agent stopping");
            if (send_msg(a, &m) == 0) {
                /* LINGER 0 would drop the BYE still queued; give it a bounded moment. */
                int linger = BYE_LINGER_MS;
                zmq_setsockopt(a->sock, ZMQ_LINGER, &linger, sizeof linger);
            }
        }
        close_socket(a);
    }
    if (a->own_ctx && a->ctx)
        zmq_ctx_term(a->ctx);
    for (size_t i = 0; i < a->n_spool; i++)
        free(a->spool[i].frame);
    free(a->spool);
    free(a->slots);
    free(a->fingerprint);
    if (a->lock_fd >= 0)
        close(a->lock_fd);
}

int qf_agent_run(const qf_agent_opts *o)
{
    assert(o && o->endpoint && o->stop);
    agent a;
    memset(&a, 0, sizeof a);
    int rc = agent_open(&a, o);
    if (rc == 0)
        rc = agent_loop(&a);
    agent_close(&a, rc == 0 && !a.ctx_gone);
    return rc;
}

/* ---- `qfleet agent` ----------------------------------------------------------------------- */

static volatile sig_atomic_t g_stop;

static void on_stop_signal(int sig)
{
    (void)sig;
    g_stop = 1;
}

static void print_usage(FILE *out)
{
    fputs("usage: qfleet agent --connect ENDPOINT [options]\n"
          "\n"
          "Joins a coordinator and runs its jobs on this machine, each in a child process\n"
          "with a time limit. Results wait in a spool folder until the coordinator\n"
          "acknowledges them, so none is lost if it restarts. Stop with Ctrl-C or SIGTERM.\n"
          "\n"
          "Options:\n"
          "  --connect EP       the coordinator: tcp://HOST:PORT (it listens on 7420 by\n"
          "                     default) or ipc://PATH\n"
          "  --name N           this agent's identity in the fleet, letters, digits and\n"
          "                     . _ - (default: the host name)\n"
          "  --slots N          jobs run at once, 1..1024 (default 1)\n"
          "  --spool DIR        where unacknowledged results wait\n"
          "                     (default ~/.cache/qfleet/spool-NAME)\n"
          "  --heartbeat-ms N   heartbeat until the coordinator sets one, 10..3600000\n"
          "                     (default 1000)\n"
          "  --max-jobs N       exit after N acknowledged results, 0 = never (default 0)\n"
          "  -q, --quiet        no line per job start and finish\n"
          "  -h, --help         show this help\n"
          "\n"
          "Security (docs/security.md): a tcp:// coordinator needs either\n"
          "  --curve-secret F   this agent's key pair (qfleet keygen; its .pub enrolled on\n"
          "                     the coordinator), and\n"
          "  --server-key F     the coordinator's public key (.pub)\n"
          "  --insecure         or: plain TCP, for a network you trust\n", out);
}

/* tcp://HOST:PORT or ipc://PATH; zmq_connect checks the rest. */
static int check_endpoint(const char *ep)
{
    if (strncmp(ep, "ipc://", 6) == 0 && ep[6])
        return 0;
    if (strncmp(ep, "tcp://", 6) == 0) {
        const char *colon = strrchr(ep + 6, ':');
        if (colon && colon > ep + 6 && colon[1] && strspn(colon + 1, "0123456789") ==
            strlen(colon + 1))
            return 0;
    }
    return qf_errorf(QF_EUSAGE, "agent: --connect '%s' is not an endpoint; expected "
                     "tcp://HOST:PORT or ipc://PATH", ep);
}

static int check_name(const char *name)
{
    size_t n = strlen(name);
    bool ok = n >= 1 && n < QF_WIRE_NAME_MAX;
    for (size_t i = 0; ok && i < n; i++) {
        char c = name[i];
        ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
             c == '.' || c == '-' || c == '_';
    }
    if (ok)
        return 0;
    return qf_errorf(QF_EUSAGE, "agent: --name '%s' must be 1..%d letters, digits, '.', '_' "
                     "or '-'", name, QF_WIRE_NAME_MAX - 1);
}

enum { OPT_CONNECT = 256, OPT_NAME, OPT_SLOTS, OPT_SPOOL, OPT_HEARTBEAT, OPT_MAX_JOBS,
       OPT_CURVE, OPT_SERVER_KEY, OPT_INSECURE };

/* 0 with *o filled, 1 if --help was printed, QF_EUSAGE after printing why. */
static int parse_opts(int argc, char **argv, qf_agent_opts *o)
{
    static const struct option opts[] = {
        { "connect",      required_argument, NULL, OPT_CONNECT },
        { "name",         required_argument, NULL, OPT_NAME },
        { "slots",        required_argument, NULL, OPT_SLOTS },
        { "spool",        required_argument, NULL, OPT_SPOOL },
        { "heartbeat-ms", required_argument, NULL, OPT_HEARTBEAT },
        { "max-jobs",     required_argument, NULL, OPT_MAX_JOBS },
        { "curve-secret", required_argument, NULL, OPT_CURVE },
        { "server-key",   required_argument, NULL, OPT_SERVER_KEY },
        { "insecure",     no_argument,       NULL, OPT_INSECURE },
        { "quiet",        no_argument,       NULL, 'q' },
        { "help",         no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    opterr = 0;
    optind = 0;
    int c, rc = 0;
    int64_t v = 0;
    while (rc == 0 && (c = getopt_long(argc, argv, ":hq", opts, NULL)) != -1) {
        switch (c) {
        case OPT_CONNECT: o->endpoint = optarg; break;
        case OPT_NAME:    rc = check_name(optarg); o->name = optarg; break;
        case OPT_SPOOL:   o->spool_dir = optarg; break;
        case OPT_CURVE:   o->curve_secret = optarg; break;
        case OPT_SERVER_KEY: o->server_key = optarg; break;
        case OPT_INSECURE: o->insecure = true; break;
        case OPT_SLOTS:
            rc = qf_cli_parse_int("agent", "--slots", optarg, 1, MAX_SLOTS, &v);
            o->slots = (uint32_t)v;
            break;
        case OPT_HEARTBEAT:
            rc = qf_cli_parse_int("agent", "--heartbeat-ms", optarg, MIN_HEARTBEAT_MS,
                                  MAX_HEARTBEAT_MS, &v);
            o->heartbeat_ms = (uint32_t)v;
            break;
        case OPT_MAX_JOBS:
            rc = qf_cli_parse_int("agent", "--max-jobs", optarg, 0, INT_MAX, &v);
            o->max_jobs = (int)v;
            break;
        case 'q':         o->quiet = true; break;
        case 'h':         print_usage(stdout); return 1;
        default:          return qf_cli_reject_option("agent", c, argc, argv);
        }
    }
    if (rc)
        return QF_EUSAGE;
    if (optind < argc)
        return qf_errorf(QF_EUSAGE, "agent: unexpected argument '%s' (see 'qfleet agent --help')",
                         argv[optind]);
    if (!o->endpoint)
        return qf_errorf(QF_EUSAGE, "agent: --connect tcp://HOST:PORT is required (see "
                         "'qfleet agent --help')");
    if (o->spool_dir && !o->spool_dir[0])
        return qf_errorf(QF_EUSAGE, "agent: --spool needs a folder");
    return check_endpoint(o->endpoint);
}

int qf_agent_main(int argc, char **argv)
{
    qf_agent_opts o = { .stop = &g_stop };
    int rc = parse_opts(argc, argv, &o);
    if (rc == 1)
        return QF_EXIT_OK;
    if (rc != 0)
        return QF_EXIT_USAGE;

    /* No SA_RESTART: the signal interrupts zmq_poll, and the loop sees *stop at once. */
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_stop_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    rc = qf_agent_run(&o);
    if (rc == 0)
        return QF_EXIT_OK;
    return rc == QF_EINVAL || rc == QF_EUSAGE ? QF_EXIT_USAGE : QF_EXIT_FAILURE;
}
