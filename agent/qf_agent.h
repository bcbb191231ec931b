/* qf_agent.h - the agent daemon: `qfleet agent`, and the same loop inside `qfleet run`.
 *
 * Connects out to the coordinator with a DEALER socket, says HELLO with its fingerprint, keeps
 * heartbeating, runs each JOB in a child (qf_runner) up to its slots, returns RESULTs and keeps
 * each in its spool until ACKed; reconnects (HELLO again) when the coordinator goes silent.
 */
#ifndef QF_AGENT_H
#define QF_AGENT_H

#include <signal.h>
#include <stdbool.h>
#include <stdint.h>

typedef struct qf_agent_opts {
    const char *endpoint;         /* tcp://host:7420 or inproc://... */
    const char *name;             /* default: host name */
    const char *spool_dir;        /* default: ~/.cache/qfleet/spool-<name> */
    uint32_t    slots;            /* default 1 */
    uint32_t    heartbeat_ms;     /* until WELCOME says otherwise; default 1000 */
    void       *zmq_ctx;          /* NULL: the agent makes its own (needed for inproc) */
    volatile sig_atomic_t *stop;  /* the loop returns when *stop becomes non-zero */
    int         max_jobs;         /* > 0: exit after this many results are ACKed (tests) */
    bool        quiet;            /* no per-job lines on stderr (warnings still print) */
    /* docs/security.md: a tcp:// coordinator needs CURVE keys (curve_secret: our key pair,
     * server_key: the coordinator's .pub) or insecure; inproc:// and ipc:// need neither */
    const char *curve_secret;
    const char *server_key;
    bool        insecure;
} qf_agent_opts;

/* Runs the agent loop until *stop. 0 on a clean stop, negative on a fatal error. */
int qf_agent_run(const qf_agent_opts *o);

/* `qfleet agent` (argv[0] == "agent"): parses options, installs SIGINT/SIGTERM, runs. */
int qf_agent_main(int argc, char **argv);

#endif
