/* qf_client.h - the client side of the protocol: SUBMIT, STATUS, CANCEL over a DEALER.
 *
 * Used by `qfleet submit`, `qfleet status`, `qfleet cancel` and by `qfleet run`, which talks to
 * its embedded coordinator through exactly these calls (inproc), so the local default and the
 * distributed fleet share one code path. A call sends one request and waits (bounded) for the
 * REPLY or ERROR carrying the request's id; anything else that arrives is skipped.
 */
#ifndef QF_CLIENT_H
#define QF_CLIENT_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

#include "qf_curve.h"
#include "qf_store.h"
#include "qf_suite.h"
#include "qf_wire.h"

typedef struct qf_client {
    void    *ctx;
    void    *sock;
    bool     own_ctx;
    uint64_t next_id;
    const char *endpoint;
    qf_curve_monitor *mon;       /* CURVE handshakes (NULL without CURVE) */
} qf_client;

/* Connects to endpoint (tcp:// or inproc://; ctx NULL: own context) in plain text: for inproc
 * and for callers that chose plain TCP themselves (qfleet bench --op fleet on loopback). */
int  qf_client_open(qf_client *c, const char *endpoint, void *ctx);

/* The same with the command line's security options (qf_curve_client_setup: CURVE keys, or
 * --insecure for a tcp:// endpoint); `who` names the command in messages. QF_EUSAGE when the
 * options do not allow this endpoint. */
int  qf_client_open_secure(qf_client *c, const char *endpoint, void *ctx,
                           const qf_curve_opts *sec, const char *who);
void qf_client_close(qf_client *c);

/* Sends req (its id is assigned) and waits up to timeout_ms for the answer, decoded into
 * *rep (caller clears it). QF_ETIMEDOUT when nothing came; QF_EPROTO for an ERROR answer
 * (message printed). */
int qf_client_call(qf_client *c, qf_msg *req, qf_msg *rep, int timeout_ms);

/* SUBMIT of a whole suite. commit NULL: this build's commit and dirty flag. */
int qf_client_submit(qf_client *c, const qf_suite *suite, const char *commit, bool dirty,
                     const char *branch, int64_t *run_id);

/* STATUS of one run, parsed into counts. */
int qf_client_progress(qf_client *c, int64_t run_id, qf_run_progress *out);

/* Polls the run's progress until no job is leased and at most `unrunnable` are queued (or
 * *stop), drawing a progress bar on stderr when it is a terminal. unrunnable: jobs the caller
 * knows no agent of its fleet can take (`qfleet run`: selectors its one agent does not match),
 * which would otherwise wait forever; 0 waits for every job. timeout_s 0 = no limit. Final
 * counts in *out. */
int qf_client_wait(qf_client *c, int64_t run_id, double timeout_s, int64_t unrunnable,
                   volatile const sig_atomic_t *stop, qf_run_progress *out);

#endif
