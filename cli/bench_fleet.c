/* bench_fleet.c - `qfleet bench --op fleet`: how many jobs a second the fleet moves end to end.
 *
 * A real coordinator (its own thread, a SQLite file with durable commits, tcp on loopback)
 * serves N simulated agents: DEALER sockets driven by one thread that answers every JOB with a
 * noop RESULT at once, so what is measured is the coordinator, the protocol and the store, not
 * kernels. M noop jobs are submitted; the clock runs from the first SUBMIT to the last ACK.
 * Dispatch latency is, per slot, the time from sending a RESULT to receiving the next JOB
 * (the coordinator's commit + lease + send), reported as p50/p99 from every sample.
 * Next to it, in the same run and with the same sockets' shape, a raw ZeroMQ DEALER/ROUTER echo
 * of frames the size of a RESULT gives the transport's own ceiling, so the ratio says what the
 * fleet's bookkeeping costs. Not a test: numbers go to docs/performance.md.
 *
 * Soak mode (--duration S): the coordinator is the real daemon, `qfleet coordinator` in its own
 * process (this binary, started again), so its memory is its own; a feeder thread keeps a few
 * thousand noop jobs queued (a warm-up, then S seconds) while the simulated agents answer them;
 * every --sample-s seconds one line reports that window's jobs/s, p50/p99 dispatch latency and the
 * coordinator's RSS from /proc/PID/status.
 * The S seconds are measured after a warm-up that lasts until every simulated agent has run
 * --warm-jobs jobs: the coordinator's memory for a peer is mostly libzmq's two pipes to it,
 * whose queues are chunks of 256 messages (16 KiB) that become resident page by page as
 * messages pass and are reused after the second chunk, so a peer's share of RSS rises until it
 * has sent and received 512 messages (512 RESULTs: 512 jobs) and then stays. RSS must stay within
 * 10% of its value at the end of the warm-up: the exit status says whether it did, so
 * `make soak` fails on a leak.
 */
#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <spawn.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>

#include "qf_cli_args.h"
#include "qf_client.h"
#include "qf_cmd.h"
#include "qf_coordinator.h"
#include "qf_err.h"
#include "qf_time.h"
#include "qf_stats.h"
#include "qf_wire.h"

#define SUBMIT_CHUNK 20000   /* jobs per SUBMIT frame (~150 bytes each: well under 16 MiB) */
#define SOAK_CHUNK   2000    /* soak: jobs per SUBMIT, small so one insert stalls nothing long */
#define SOAK_BACKLOG (3 * SOAK_CHUNK)   /* soak: the feeder keeps about this many queued */
#define RSS_TOLERANCE 0.10   /* soak: RSS within +-10% of its post-warm-up value */
#define SOAK_WARM_JOBS 600   /* soak: jobs per agent before measuring (512 fill the pipes) */
#define SOAK_WARM_LIMIT_S 3600.0   /* soak: a warm-up that takes longer is an error */

typedef struct sim_agent {
    void  *sock;
    double free_since[64];     /* per slot: when its last RESULT left (0: never) */
    int    free_slot[64];      /* slots waiting for a JOB, oldest first (a ring) */
    int    free_head, n_free;
    int64_t jobs;              /* JOBs answered */
} sim_agent;

/* One soak window: its end time since the start, rates, and the process's memory. */
typedef struct soak_sample {
    double t, jobs_per_s, p50_ms, p99_ms;
    long   rss_kb, anon_kb;
    bool   warmup;             /* the window ended before (or as) the warm-up did */
} soak_sample;

typedef struct fleet_bench {
    int     agents, slots;
    int64_t jobs;              /* jobs to run; in soak mode, set to the jobs ACKed at the end */
    double *latency;           /* seconds, one per dispatched job after the first per slot
                                  (soak mode: of the current window only) */
    size_t  n_latency, cap_latency;
    bool    json;

    double  duration;          /* soak mode: seconds to run after warm-up; 0 runs `jobs` jobs */
    double  sample_s;          /* soak mode: seconds per window */
    int64_t warm_jobs;         /* soak mode: jobs every agent runs before the measured part */
    int     n_warm;            /* agents that have run warm_jobs */
    double  t_warm;            /* when the warm-up ended (0: not yet) */
    int64_t acked_warm;        /* ACKs by then */
    double  t_end;             /* when the serving loop stopped */
    _Atomic int64_t acked;     /* ACKs so far; the feeder thread reads it */
    double  t0, win_start, next_sample;
    int64_t win_acked;
    soak_sample *samples;
    size_t  n_samples, cap_samples;
    pid_t   coord_pid;         /* soak mode: the coordinator process */
} fleet_bench;

static int send_encoded(void *sock, const qf_msg *m)
{
    void *buf;
    size_t len;
    int err = qf_wire_encode(m, &buf, &len);
    if (err)
        return err;
    int rc = zmq_send(sock, buf, len, 0);
    free(buf);
    return rc < 0 ? QF_ENET : 0;
}

static int recv_decoded(void *sock, qf_msg *m)
{
    zmq_msg_t f;
    zmq_msg_init(&f);
    if (zmq_msg_recv(&f, sock, ZMQ_DONTWAIT) < 0) {
        zmq_msg_close(&f);
        return QF_ENET;
    }
    qf_wire_limits lim = qf_wire_default_limits();
    char why[300];
    int err = qf_wire_decode(zmq_msg_data(&f), zmq_msg_size(&f), &lim, m, why, sizeof why);
    zmq_msg_close(&f);
    if (err)
        qf_errorf(err, "bench fleet: bad frame: %s", why);
    return err;
}

/* Connects the simulated agents and waits for every WELCOME. */
static int agents_join(fleet_bench *b, void *ctx, const char *endpoint, sim_agent *ag)
{
    for (int i = 0; i < b->agents; i++) {
        ag[i].sock = zmq_socket(ctx, ZMQ_DEALER);
        int zero = 0;
        zmq_setsockopt(ag[i].sock, ZMQ_LINGER, &zero, sizeof zero);
        if (zmq_connect(ag[i].sock, endpoint) != 0)
            return qf_errorf(QF_ENET, "bench fleet: connect: %s", zmq_strerror(errno));
        qf_msg h = { .type = QF_MSG_HELLO, .id = 1 };
        snprintf(h.u.hello.name, sizeof h.u.hello.name, "sim-%d", i);
        h.u.hello.instance = ((uint64_t)getpid() << 20) + (uint64_t)i + 1;
        h.u.hello.slots = (uint32_t)b->slots;
        snprintf(h.u.hello.version, sizeof h.u.hello.version, "bench");
        snprintf(h.u.hello.commit, sizeof h.u.hello.commit, "bench");
        snprintf(h.u.hello.arch, sizeof h.u.hello.arch, "sim");
        snprintf(h.u.hello.backends, sizeof h.u.hello.backends, "cpu");
        h.u.hello.fingerprint = "{\"simulated\":true}";
        if (send_encoded(ag[i].sock, &h))
            return qf_errorf(QF_ENET, "bench fleet: cannot send HELLO");
        ag[i].n_free = b->slots;
        for (int s = 0; s < b->slots; s++)
            ag[i].free_slot[s] = s;
    }
    for (int i = 0; i < b->agents; i++) {
        zmq_pollitem_t it = { .socket = ag[i].sock, .events = ZMQ_POLLIN };
        if (zmq_poll(&it, 1, 10000) != 1)
            return qf_errorf(QF_ETIMEDOUT, "bench fleet: agent %d got no WELCOME", i);
        qf_msg m;
        if (recv_decoded(ag[i].sock, &m) || m.type != QF_MSG_WELCOME)
            return qf_errorf(QF_EPROTO, "bench fleet: agent %d: expected WELCOME", i);
        qf_msg_clear(&m);
    }
    return 0;
}

static void note_latency(fleet_bench *b, double s)
{
    if (b->n_latency == b->cap_latency) {
        size_t cap = b->cap_latency ? b->cap_latency * 2 : 4096;
        double *p = realloc(b->latency, cap * sizeof *p);
        if (!p)
            return;
        b->latency = p;
        b->cap_latency = cap;
    }
    b->latency[b->n_latency++] = s;
}

/* --- soak mode --------------------------------------------------------------------------- */

/* VmRSS and RssAnon of process pid in kB (-1 where /proc does not say). */
static void read_rss(pid_t pid, long *rss_kb, long *anon_kb)
{
    *rss_kb = *anon_kb = -1;
    char path[64];
    snprintf(path, sizeof path, "/proc/%ld/status", (long)pid);
    FILE *f = fopen(path, "r");
    char line[256];
    while (f && fgets(line, sizeof line, f)) {
        if (sscanf(line, "VmRSS: %ld", rss_kb) != 1)
            (void)sscanf(line, "RssAnon: %ld", anon_kb);
    }
    if (f)
        fclose(f);
}

/* Closes the current window when its time has come: one sample, one line. */
static void soak_tick(fleet_bench *b, double now, int64_t acked)
{
    if (now < b->next_sample)
        return;
    soak_sample s = { .t = now - b->t0,
                      .jobs_per_s = (double)(acked - b->win_acked) / (now - b->win_start),
                      .warmup = b->t_warm == 0 || now <= b->t_warm };
    if (b->n_latency) {
        s.p50_ms = qf_stats_percentile(b->latency, b->n_latency, 50) * 1e3;
        s.p99_ms = qf_stats_percentile(b->latency, b->n_latency, 99) * 1e3;
    }
    read_rss(b->coord_pid, &s.rss_kb, &s.anon_kb);
    if (b->n_samples == b->cap_samples) {
        size_t cap = b->cap_samples ? 2 * b->cap_samples : 256;
        soak_sample *p = realloc(b->samples, cap * sizeof *p);
        if (p) {
            b->samples = p;
            b->cap_samples = cap;
        }
    }
    if (b->n_samples < b->cap_samples)
        b->samples[b->n_samples++] = s;
    if (!b->json) {
        printf("%8.0f %10.0f %9.3f %9.3f %9.1f %9.1f%s\n", s.t, s.jobs_per_s, s.p50_ms, s.p99_ms,
               (double)s.rss_kb / 1024.0, (double)s.anon_kb / 1024.0,
               s.warmup ? "  warm-up" : "");
        fflush(stdout);
    }
    b->n_latency = 0;      /* the array keeps its capacity: no growth after the first window */
    b->win_start = now;
    b->win_acked = acked;
    b->next_sample = now + b->sample_s;
}

/* The feeder: keeps about SOAK_BACKLOG jobs submitted and not yet ACKed, until told to stop. */
typedef struct feeder {
    fleet_bench *b;
    qf_client   *c;
    qf_suite    *chunk;
    atomic_int   stop;
    int          err;
} feeder;

static void *feeder_main(void *arg)
{
    feeder *f = arg;
    int64_t submitted = 0;
    while (!atomic_load(&f->stop) && !f->err) {
        if (submitted - atomic_load_explicit(&f->b->acked, memory_order_relaxed) >= SOAK_BACKLOG) {
            usleep(10000);
            continue;
        }
        int64_t run_id;
        f->err = qf_client_submit(f->c, f->chunk, "bench", false, "bench", &run_id);
        submitted += (int64_t)f->chunk->n_jobs;
    }
    return NULL;
}

/* The post-warm-up RSS (the sample that closed the warm-up) and the largest relative
 * departure from it afterwards. */
static void soak_rss(const fleet_bench *b, long *base_kb, double *base_t, double *drift)
{
    *base_kb = 0;
    *base_t = 0;
    *drift = 0;
    size_t i0 = 0;
    while (i0 + 1 < b->n_samples && b->samples[i0 + 1].warmup)
        i0++;
    if (i0 >= b->n_samples || b->samples[i0].rss_kb <= 0)
        return;
    *base_kb = b->samples[i0].rss_kb;
    *base_t = b->samples[i0].t;
    for (size_t i = i0; i < b->n_samples; i++) {
        double d = (double)(b->samples[i].rss_kb - *base_kb) / (double)*base_kb;
        if (fabs(d) > fabs(*drift))
            *drift = d;
    }
}

/* Soak mode: starts `qfleet coordinator` (this executable) on a free loopback port with its
 * log in DIR/coordinator.log, and waits (10 s at most) for the endpoint it bound. */
static int coord_spawn(const char *dir, const char *db, pid_t *pid, char *endpoint, size_t len)
{
    char exe[4096], ep_file[96], log[96];
    ssize_t n = readlink("/proc/self/exe", exe, sizeof exe - 1);
    if (n <= 0)
        return qf_errorf(QF_EIO, "bench fleet: cannot find this executable: %s", strerror(errno));
    exe[n] = '\0';
    snprintf(ep_file, sizeof ep_file, "%s/endpoint", dir);
    snprintf(log, sizeof log, "%s/coordinator.log", dir);
    char *argv[] = { exe, "coordinator", "--bind", "tcp://127.0.0.1:*", "--db", (char *)db,
                     "--heartbeat-ms", "5000", "--endpoint-file", ep_file, "--insecure", NULL };
    posix_spawn_file_actions_t fa;
    posix_spawn_file_actions_init(&fa);
    posix_spawn_file_actions_addopen(&fa, 1, log, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    posix_spawn_file_actions_adddup2(&fa, 1, 2);
    int rc = posix_spawn(pid, exe, &fa, NULL, argv, environ);
    posix_spawn_file_actions_destroy(&fa);
    if (rc != 0)
        return qf_errorf(QF_EIO, "bench fleet: cannot start the coordinator: %s", strerror(rc));
    for (double end = qf_time_mono() + 10.0; qf_time_mono() < end; usleep(10000)) {
        FILE *f = fopen(ep_file, "r");
        if (!f)
            continue;
        bool ok = fgets(endpoint, (int)len, f) && strchr(endpoint, '\n');  /* a whole line */
        fclose(f);
        endpoint[strcspn(endpoint, "\n")] = '\0';
        if (ok)
            return 0;
    }
    return qf_errorf(QF_ETIMEDOUT, "bench fleet: the coordinator did not start (see %s)", log);
}

/* Stops the soak's coordinator (SIGTERM, as systemd would) and removes its side files. */
static void coord_stop(const char *dir, pid_t *pid)
{
    if (*pid > 0) {
        kill(*pid, SIGTERM);
        waitpid(*pid, NULL, 0);
        *pid = 0;
    }
    static const char *const side[] = { "endpoint", "coordinator.log" };
    for (int i = 0; i < 2; i++) {
        char f[96];
        snprintf(f, sizeof f, "%s/%s", dir, side[i]);
        unlink(f);
    }
}

/* 1,000 simulated agents hold a few thousand descriptors: raise the soft limit to the hard. */
static void raise_fd_limit(int agents)
{
    struct rlimit rl;
    rlim_t want = (rlim_t)agents * 4 + 256;
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < want) {
        rl.rlim_cur = rl.rlim_max == RLIM_INFINITY || rl.rlim_max > want ? want : rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
}

/* Answers JOBs with noop RESULTs until every job is ACKed (soak mode: through the warm-up,
 * which must end before the deadline, then for b->duration more seconds, closing a sample
 * window every sample_s seconds and one as the warm-up ends). */
static int agents_serve(fleet_bench *b, sim_agent *ag, double deadline)
{
    zmq_pollitem_t *items = calloc((size_t)b->agents, sizeof *items);
    if (!items)
        return QF_ENOMEM;
    for (int i = 0; i < b->agents; i++)
        items[i] = (zmq_pollitem_t){ .socket = ag[i].sock, .events = ZMQ_POLLIN };
    int64_t acked = 0;
    int err = 0;
    double sample = 1e-9;
    bool soak = b->duration > 0;
    while (soak || acked < b->jobs) {
        if (soak) {
            double now = qf_time_mono();
            if (b->t_warm == 0 && b->n_warm == b->agents) {
                b->next_sample = now;           /* the baseline: RSS as the warm-up ends */
                soak_tick(b, now, acked);
                b->t_warm = now;
                b->acked_warm = acked;
                deadline = now + b->duration;
            }
            soak_tick(b, now, acked);
            if (now >= deadline && b->t_warm == 0) {
                err = qf_errorf(QF_ETIMEDOUT, "bench fleet: no warm-up in %.0f s: %d of %d agents "
                                "ran %" PRId64 " jobs (%" PRId64 " jobs in all)", now - b->t0,
                                b->n_warm, b->agents, b->warm_jobs, acked);
                break;
            }
            if (now >= deadline)
                break;
        } else if (qf_time_mono() > deadline) {
            err = qf_errorf(QF_ETIMEDOUT, "bench fleet: %" PRId64 " of %" PRId64 " jobs done "
                            "before the time limit", acked, b->jobs);
            break;
        }
        if (zmq_poll(items, b->agents, 100) < 0 && errno != EINTR)
            break;
        for (int i = 0; i < b->agents; i++) {
            if (!(items[i].revents & ZMQ_POLLIN))
                continue;
            qf_msg m;
            while (recv_decoded(ag[i].sock, &m) == 0) {
                double now = qf_time_mono();
                if (m.type == QF_MSG_JOB) {
                    sim_agent *a = &ag[i];
                    int s = 0;
                    if (a->n_free > 0) {
                        s = a->free_slot[a->free_head];
                        a->free_head = (a->free_head + 1) % 64;
                        a->n_free--;
                    }
                    if (a->free_since[s] > 0)
                        note_latency(b, now - a->free_since[s]);
                    if (++a->jobs == b->warm_jobs)
                        b->n_warm++;
                    qf_msg r = { .type = QF_MSG_RESULT, .id = m.id };
                    r.u.result.job_id = m.u.job.job_id;
                    r.u.result.attempt = m.u.job.attempt;
                    r.u.result.result.status = QF_JOB_OK;
                    r.u.result.result.samples = &sample;
                    r.u.result.result.n_samples = 1;
                    snprintf(r.u.result.result.kernel, sizeof r.u.result.result.kernel, "none");
                    send_encoded(a->sock, &r);
                    a->free_since[s] = qf_time_mono();
                    a->free_slot[(a->free_head + a->n_free++) % 64] = s;
                } else if (m.type == QF_MSG_ACK) {
                    acked++;
                    atomic_store_explicit(&b->acked, acked, memory_order_relaxed);
                }
                qf_msg_clear(&m);
            }
        }
    }
    free(items);
    b->t_end = qf_time_mono();
    if (soak)
        b->jobs = acked;
    return err;
}

/* Runs the soak: the feeder thread submits, this thread serves and samples. */
static int soak_run(fleet_bench *b, sim_agent *ag, qf_client *c, qf_suite *chunk)
{
    feeder f = { .b = b, .c = c, .chunk = chunk };
    pthread_t tid;
    if (pthread_create(&tid, NULL, feeder_main, &f) != 0)
        return qf_errorf(QF_ENOMEM, "bench fleet: cannot start the feeder thread");
    b->t0 = b->win_start = qf_time_mono();
    b->next_sample = b->t0 + b->sample_s;
    if (b->warm_jobs == 0)
        b->n_warm = b->agents;     /* no warm-up: the baseline is RSS at the start */
    if (!b->json)
        printf("fleet soak: %d agents x %d slot(s), %.0f s after a warm-up of %" PRId64 " jobs per "
               "agent, a sample every %.0f s; RSS is the coordinator process's\n"
               "%8s %10s %9s %9s %9s %9s\n", b->agents, b->slots, b->duration, b->warm_jobs,
               b->sample_s,
               "t s", "jobs/s", "p50 ms", "p99 ms", "RSS MiB", "anon MiB");
    int err = agents_serve(b, ag, b->t0 + SOAK_WARM_LIMIT_S);
    atomic_store(&f.stop, 1);
    pthread_join(tid, NULL);
    return err ? err : f.err;
}

/* --- the raw ZeroMQ echo baseline ------------------------------------------------------- */

typedef struct echo_server {
    void *ctx;
    char  endpoint[256];
    volatile int ready, stop;
} echo_server;

static void *echo_main(void *arg)
{
    echo_server *e = arg;
    void *r = zmq_socket(e->ctx, ZMQ_ROUTER);
    int zero = 0;
    zmq_setsockopt(r, ZMQ_LINGER, &zero, sizeof zero);
    if (zmq_bind(r, "tcp://127.0.0.1:*") != 0) {
        e->ready = -1;
        zmq_close(r);
        return NULL;
    }
    size_t len = sizeof e->endpoint;
    zmq_getsockopt(r, ZMQ_LAST_ENDPOINT, e->endpoint, &len);
    e->ready = 1;
    while (!e->stop) {
        zmq_pollitem_t it = { .socket = r, .events = ZMQ_POLLIN };
        if (zmq_poll(&it, 1, 100) <= 0)
            continue;
        for (;;) {
            zmq_msg_t id, body;
            zmq_msg_init(&id);
            zmq_msg_init(&body);
            if (zmq_msg_recv(&id, r, ZMQ_DONTWAIT) < 0) {
                zmq_msg_close(&id);
                zmq_msg_close(&body);
                break;
            }
            zmq_msg_recv(&body, r, 0);
            zmq_msg_send(&id, r, ZMQ_SNDMORE);
            zmq_msg_send(&body, r, 0);
            zmq_msg_close(&id);
            zmq_msg_close(&body);
        }
    }
    zmq_close(r);
    return NULL;
}

/* Round trips per second of frame_len-byte frames over n DEALERs with `slots` in flight each. */
static double echo_rate(void *server_ctx, void *ctx, int n, int slots, int64_t total,
                        size_t frame_len)
{
    echo_server e = { .ctx = server_ctx };
    pthread_t tid;
    if (pthread_create(&tid, NULL, echo_main, &e) != 0)
        return 0;
    while (e.ready == 0)
        usleep(1000);
    double rate = 0;
    void **socks = calloc((size_t)n, sizeof *socks);
    zmq_pollitem_t *items = calloc((size_t)n, sizeof *items);
    char *frame = calloc(1, frame_len);
    if (e.ready == 1 && socks && items && frame) {
        for (int i = 0; i < n; i++) {
            socks[i] = zmq_socket(ctx, ZMQ_DEALER);
            int zero = 0;
            zmq_setsockopt(socks[i], ZMQ_LINGER, &zero, sizeof zero);
            zmq_connect(socks[i], e.endpoint);
            items[i] = (zmq_pollitem_t){ .socket = socks[i], .events = ZMQ_POLLIN };
        }
        int64_t sent = 0, got = 0;
        double t0 = qf_time_mono();
        for (int i = 0; i < n; i++)
            for (int s = 0; s < slots && sent < total; s++, sent++)
                zmq_send(socks[i], frame, frame_len, 0);
        while (got < total && qf_time_mono() - t0 < 120.0) {
            if (zmq_poll(items, n, 100) <= 0)
                continue;
            for (int i = 0; i < n; i++) {
                if (!(items[i].revents & ZMQ_POLLIN))
                    continue;
                while (zmq_recv(socks[i], frame, frame_len, ZMQ_DONTWAIT) >= 0) {
                    got++;
                    if (sent < total) {
                        zmq_send(socks[i], frame, frame_len, 0);
                        sent++;
                    }
                }
            }
        }
        rate = (double)got / (qf_time_mono() - t0);
        for (int i = 0; i < n; i++)
            zmq_close(socks[i]);
    }
    e.stop = 1;
    pthread_join(tid, NULL);
    free(socks);
    free(items);
    free(frame);
    return rate;
}

/* --- the command ------------------------------------------------------------------------- */

/* The soak's summary (the windows were printed as they closed): throughput and latency of the
 * measured part (after warm-up); QF_EXIT_FAILURE if RSS moved more than RSS_TOLERANCE from its
 * value as the warm-up ended. */
static int soak_report(const fleet_bench *b)
{
    long base_kb;
    double base_t, drift;
    soak_rss(b, &base_kb, &base_t, &drift);
    bool flat = fabs(drift) <= RSS_TOLERANCE;
    double worst_p99 = 0;
    double *p99 = malloc((b->n_samples + 1) * sizeof *p99);
    size_t n_p99 = 0;
    for (size_t i = 0; i < b->n_samples; i++) {
        if (b->samples[i].warmup)
            continue;
        worst_p99 = fmax(worst_p99, b->samples[i].p99_ms);
        if (p99)
            p99[n_p99++] = b->samples[i].p99_ms;
    }
    double med_p99 = p99 && n_p99 ? qf_stats_percentile(p99, n_p99, 50) : 0;
    free(p99);
    double warm_s = b->t_warm - b->t0, seconds = b->t_end - b->t_warm;
    int64_t jobs = b->jobs - b->acked_warm;
    double rate = (double)jobs / seconds;
    if (b->json) {
        printf("{\"op\":\"fleet\",\"mode\":\"soak\",\"agents\":%d,\"slots\":%d,"
               "\"warm_jobs_per_agent\":%" PRId64 ",\"warmup_s\":%.3f,\"warmup_jobs\":%" PRId64
               ",\"seconds\":%.3f,\"jobs\":%" PRId64 ",\"jobs_per_s\":%.1f,"
               "\"dispatch_p99_ms_median\":%.4f,\"dispatch_p99_ms_max\":%.4f,"
               "\"rss_baseline_kb\":%ld,\"rss_baseline_t\":%.1f,\"rss_max_drift\":%.4f,"
               "\"rss_flat\":%s,\"samples\":[", b->agents, b->slots, b->warm_jobs, warm_s,
               b->acked_warm, seconds, jobs, rate, med_p99, worst_p99, base_kb, base_t, drift,
               flat ? "true" : "false");
        for (size_t i = 0; i < b->n_samples; i++) {
            const soak_sample *s = &b->samples[i];
            printf("%s{\"t\":%.1f,\"jobs_per_s\":%.1f,\"dispatch_p50_ms\":%.4f,"
                   "\"dispatch_p99_ms\":%.4f,\"rss_kb\":%ld,\"rss_anon_kb\":%ld,"
                   "\"warmup\":%s}", i ? "," : "", s->t, s->jobs_per_s, s->p50_ms, s->p99_ms,
                   s->rss_kb, s->anon_kb, s->warmup ? "true" : "false");
        }
        printf("]}\n");
    } else {
        printf("warm-up: %" PRId64 " noop jobs in %.0f s (every agent ran %" PRId64 ")\n",
               b->acked_warm, warm_s, b->warm_jobs);
        printf("soak: %" PRId64 " noop jobs in %.0f s after it: %.0f jobs/s; dispatch p99 per "
               "window: median %.3f ms, worst %.3f ms\n", jobs, seconds, rate, med_p99,
               worst_p99);
        printf("coordinator RSS: %.1f MiB at %.0f s (end of warm-up), largest change after it "
               "%+.1f%% (limit +-%.0f%%): %s\n", (double)base_kb / 1024.0, base_t, drift * 100,
               RSS_TOLERANCE * 100, flat ? "flat" : "NOT FLAT");
    }
    fflush(stdout);
    if (!flat)
        qf_errorf(QF_ERANGE, "bench fleet: the coordinator's RSS moved %+.1f%% from its "
                  "post-warm-up %ld kB", drift * 100, base_kb);
    return flat ? QF_EXIT_OK : QF_EXIT_FAILURE;
}

static volatile sig_atomic_t g_coord_stop;

static void usage(FILE *out)
{
    fputs("usage: qfleet bench --op fleet [--agents N] [--jobs M] [--slots S] [--json]\n"
          "       qfleet bench --op fleet --duration S [--sample-s T] [--warm-jobs N]\n"
          "                               [--agents N] [--json]\n"
          "\n"
          "Jobs per second through a real coordinator (SQLite store with durable commits, tcp\n"
          "on loopback) with N simulated agents answering noop jobs at once, with p50/p99\n"
          "dispatch latency, next to a raw ZeroMQ DEALER/ROUTER echo measured in the same run.\n"
          "\n"
          "  --agents N   simulated agents (default 100)\n"
          "  --jobs M     noop jobs (default 100000)\n"
          "  --slots S    jobs in flight per agent (default 1)\n"
          "  --duration S soak mode: run S seconds with jobs kept queued, instead of --jobs,\n"
          "               after a warm-up; one line per window: jobs/s, dispatch p50/p99, RSS;\n"
          "               exits 1 if RSS leaves +-10% of its value as the warm-up ended\n"
          "  --sample-s T soak mode: seconds per window (default 5)\n"
          "  --warm-jobs N soak mode: the warm-up lasts until every agent has run N jobs\n"
          "               (default 600: libzmq's queues to a peer are then at their size)\n"
          "  --json       machine-readable output\n", out);
}

int qf_bench_fleet_main(int argc, char **argv)
{
    static const struct option opts[] = {
        { "op", required_argument, NULL, 'o' },
        { "agents", required_argument, NULL, 'a' },
        { "jobs", required_argument, NULL, 'j' },
        { "slots", required_argument, NULL, 's' },
        { "duration", required_argument, NULL, 'd' },
        { "sample-s", required_argument, NULL, 'S' },
        { "warm-jobs", required_argument, NULL, 'W' },
        { "json", no_argument, NULL, 'J' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    fleet_bench b = { .agents = 100, .slots = 1, .jobs = 100000, .sample_s = 5,
                      .warm_jobs = SOAK_WARM_JOBS };
    bool json = false;
    int64_t v;
    int ch;
    opterr = 0;
    optind = 1;
    while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (ch) {
        case 'o': break;   /* "fleet", checked by the caller */
        case 'a':
            if (qf_cli_parse_int("bench", "--agents", optarg, 1, 4096, &v))
                return QF_EXIT_USAGE;
            b.agents = (int)v;
            break;
        case 'j':
            if (qf_cli_parse_int("bench", "--jobs", optarg, 1, 10000000, &v))
                return QF_EXIT_USAGE;
            b.jobs = v;
            break;
        case 's':
            if (qf_cli_parse_int("bench", "--slots", optarg, 1, 64, &v))
                return QF_EXIT_USAGE;
            b.slots = (int)v;
            break;
        case 'd':
            if (qf_cli_parse_int("bench", "--duration", optarg, 1, 7 * 86400, &v))
                return QF_EXIT_USAGE;
            b.duration = (double)v;
            break;
        case 'S':
            if (qf_cli_parse_int("bench", "--sample-s", optarg, 1, 3600, &v))
                return QF_EXIT_USAGE;
            b.sample_s = (double)v;
            break;
        case 'W':
            if (qf_cli_parse_int("bench", "--warm-jobs", optarg, 0, 1000000, &v))
                return QF_EXIT_USAGE;
            b.warm_jobs = v;
            break;
        case 'J': json = true; break;
        case 'h': usage(stdout); return QF_EXIT_OK;
        default: qf_cli_reject_option("bench", ch, argc, argv); return QF_EXIT_USAGE;
        }
    }
    if (optind != argc) {
        qf_errorf(QF_EUSAGE, "bench: unexpected argument '%s'", argv[optind]);
        return QF_EXIT_USAGE;
    }
    b.json = json;
    raise_fd_limit(b.agents);

    char dir[] = "/tmp/qfleet-bench-XXXXXX", db[64];
    if (!mkdtemp(dir)) {
        qf_errorf(QF_EIO, "bench fleet: cannot make a temporary folder: %s", strerror(errno));
        return QF_EXIT_FAILURE;
    }
    snprintf(db, sizeof db, "%s/fleet.db", dir);
    /* one context and so one ZeroMQ I/O thread for both ends: on a 2-core machine a second
     * I/O thread only adds contention (measured: slower) */
    void *ctx = zmq_ctx_new(), *cctx = ctx;
    zmq_ctx_set(ctx, ZMQ_MAX_SOCKETS, 2 * b.agents + 64);
    char endpoint[256] = "";
    qf_coord_opts co = { .bind = "tcp://127.0.0.1:*", .db_path = db, .heartbeat_ms = 5000,
                         .zmq_ctx = cctx, .stop = &g_coord_stop, .bound_endpoint = endpoint,
                         .quiet = true, .insecure = true /* loopback, one process */ };
    qf_coord_thread *coord = NULL;
    int err = b.duration > 0 ? coord_spawn(dir, db, &b.coord_pid, endpoint, sizeof endpoint)
                             : qf_coordinator_start(&co, &coord);

    sim_agent *ag = calloc((size_t)b.agents, sizeof *ag);
    double t0 = 0, t1 = 0;
    if (!err && !ag)
        err = QF_ENOMEM;
    if (!err)
        err = agents_join(&b, ctx, endpoint, ag);
    qf_client c = { 0 };
    if (!err)
        err = qf_client_open(&c, endpoint, ctx);
    if (!err) {
        qf_suite s = { .max_attempts = 1 };
        snprintf(s.name, sizeof s.name, "bench-fleet");
        size_t chunk = b.duration > 0 ? SOAK_CHUNK
                                      : (size_t)(b.jobs < SUBMIT_CHUNK ? b.jobs : SUBMIT_CHUNK);
        s.jobs = calloc(chunk, sizeof *s.jobs);
        if (!s.jobs)
            err = QF_ENOMEM;
        for (size_t i = 0; s.jobs && i < chunk; i++) {
            qf_job_spec *j = &s.jobs[i];
            snprintf(j->kind, sizeof j->kind, "noop");
            snprintf(j->dataset, sizeof j->dataset, "synth:gaussian");
            j->rows = j->cols = 32;
            j->reps = j->threads = 1;
            j->seed = 1;
            j->timeout_ms = 60000;
        }
        t0 = qf_time_mono();
        if (!err && b.duration > 0) {
            s.n_jobs = chunk;
            err = soak_run(&b, ag, &c, &s);
        }
        for (int64_t done = 0; !err && b.duration == 0 && done < b.jobs;
             done += (int64_t)chunk) {
            int64_t run_id;
            s.n_jobs = (size_t)(b.jobs - done < (int64_t)chunk ? b.jobs - done : (int64_t)chunk);
            err = qf_client_submit(&c, &s, "bench", false, "bench", &run_id);
        }
        free(s.jobs);
        if (!err && b.duration == 0)
            err = agents_serve(&b, ag, t0 + 600.0);
        t1 = qf_time_mono();
    }
    qf_client_close(&c);
    for (int i = 0; ag && i < b.agents; i++)
        if (ag[i].sock)
            zmq_close(ag[i].sock);
    qf_coordinator_join(&coord);
    if (b.duration > 0)
        coord_stop(dir, &b.coord_pid);

    double echo = 0;
    if (!err && b.duration == 0)
        echo = echo_rate(cctx, ctx, b.agents, b.slots, b.jobs, 120);
    zmq_ctx_term(ctx);

    /* the store's three files, then the folder */
    static const char *const suffix[] = { "", "-wal", "-shm" };
    for (int i = 0; i < 3; i++) {
        char f[96];
        snprintf(f, sizeof f, "%s%s", db, suffix[i]);
        unlink(f);
    }
    if (rmdir(dir) != 0)
        fprintf(stderr, "qfleet bench: could not remove %s: %s\n", dir, strerror(errno));
    if (err) {
        free(ag);
        free(b.latency);
        free(b.samples);
        return QF_EXIT_FAILURE;
    }
    if (b.duration > 0) {
        int rc = soak_report(&b);
        free(ag);
        free(b.latency);
        free(b.samples);
        return rc;
    }
    double rate = (double)b.jobs / (t1 - t0);
    double p50 = b.n_latency ? qf_stats_percentile(b.latency, b.n_latency, 50) : 0;
    double p99 = b.n_latency ? qf_stats_percentile(b.latency, b.n_latency, 99) : 0;
    if (json) {
        printf("{\"op\":\"fleet\",\"agents\":%d,\"slots\":%d,\"jobs\":%" PRId64 ",\"seconds\":%.6f,"
               "\"jobs_per_s\":%.1f,\"dispatch_p50_ms\":%.4f,\"dispatch_p99_ms\":%.4f,"
               "\"latency_samples\":%zu,\"zmq_echo_per_s\":%.1f,\"ratio_to_echo\":%.4f}\n",
               b.agents, b.slots, b.jobs, t1 - t0, rate, p50 * 1e3, p99 * 1e3, b.n_latency,
               echo, echo > 0 ? rate / echo : 0);
    } else {
        printf("fleet: %d agents x %d slot(s), %" PRId64 " noop jobs in %.2f s\n", b.agents,
               b.slots, b.jobs, t1 - t0);
        printf("  end to end (durable commits): %10.0f jobs/s\n", rate);
        printf("  dispatch latency:             p50 %.3f ms, p99 %.3f ms (%zu samples)\n",
               p50 * 1e3, p99 * 1e3, b.n_latency);
        printf("  raw ZeroMQ DEALER/ROUTER echo: %9.0f round trips/s (same sockets, 120-byte "
               "frames)\n", echo);
        printf("  fleet / echo:                 %10.3f\n", echo > 0 ? rate / echo : 0);
    }
    free(ag);
    free(b.latency);
    return QF_EXIT_OK;
}
