/* qf_coordinator.h - the coordinator: one ROUTER socket, the store, the dispatch loop.
 *
 * `qfleet coordinator --bind ENDPOINT --db qfleet.db` and the same loop on an inproc
 * endpoint inside `qfleet run`. Single-threaded: it polls the socket, answers every message,
 * leases jobs to agents with free slots, and on a timer expires silent agents and stale leases.
 */
#ifndef QF_COORDINATOR_H
#define QF_COORDINATOR_H

#include <signal.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct qf_coord_opts {
    const char *bind;             /* ZeroMQ endpoint; `qfleet coordinator` defaults to port 7420 */
    const char *db_path;          /* default qfleet.db */
    uint32_t    heartbeat_ms;     /* told to agents in WELCOME; default 1000 */
    size_t      max_frame;        /* default 16 MiB */
    void       *zmq_ctx;          /* NULL: own context */
    volatile sig_atomic_t *stop;
    char       *bound_endpoint;   /* if non-NULL, receives the endpoint actually bound
                                     (tcp://127.0.0.1:PORT for port 0 / '*'), 256 bytes */
    volatile sig_atomic_t *ready; /* set to 1 once bound (embedded use) */
    const char *endpoint_file;    /* if set, the bound endpoint is written there once bound */
    bool        quiet;            /* no per-agent / per-run info lines (warnings still print) */

    /* Security (docs/security.md). With curve_secret the socket is a CURVE server and only the
     * keys in allow_dir get in; without it a remote (tcp://) bind needs insecure. */
    const char *curve_secret;     /* the coordinator's key pair (qfleet keygen) */
    const char *allow_dir;        /* one .pub file per enrolled agent or client */
    bool        insecure;         /* plain TCP on purpose */

    /* Limits (docs/protocol.md, "Limits"); 0 = the default named. */
    uint32_t    max_agents;       /* agents registered at once; default 4096 */
    uint32_t    max_run_jobs;     /* jobs in one SUBMIT (one run); default and most 100000 */
    uint32_t    error_budget;     /* bad frames a peer may send in 60 s; default 10 */
    uint32_t    ignore_s;         /* then it is ignored this long; default 60 */
    size_t      max_result;       /* bytes of one RESULT; default 4 MiB (at most max_frame) */
    uint64_t    max_db_size;      /* bytes the store may grow to; default no limit */
    uint32_t    db_busy_ms;       /* wait this long for a locked store; default 5000 */
} qf_coord_opts;

int qf_coordinator_run(const qf_coord_opts *o);

/* The same loop in a thread of this process (`qfleet run`, `qfleet bench --op fleet`): starts it
 * and waits, at most 5 s, until it listens. o (and what it points to) must outlive the thread;
 * o->ready is set by this call. Caller owns *out (qf_coordinator_join). */
typedef struct qf_coord_thread qf_coord_thread;
int qf_coordinator_start(qf_coord_opts *o, qf_coord_thread **out);

/* Sets *o->stop, waits for the loop to end, frees *t; returns the loop's result. NULL-safe. */
int qf_coordinator_join(qf_coord_thread **t);
int qf_coordinator_main(int argc, char **argv);

#endif
