/* qf_wire.h - the fleet's wire protocol: one codec, on msgpack-c (docs/protocol.md is the spec).
 *
 * Every message is one ZeroMQ frame holding one msgpack array [version, type, id, body]:
 * version is QF_WIRE_VERSION, type a small unsigned integer (enum qf_msg_type), id the sender's
 * request id (a reply carries the id of the request it answers), body a map with string keys.
 * Only wire.c touches msgpack. Decoding checks every field's presence, type and bounds against
 * qf_wire_limits and reports the first problem as text; it never aborts and never reads past
 * the frame, whatever the bytes. Unknown keys in a body are ignored (forward compatibility);
 * missing required keys are errors.
 *
 * Ownership: a decoded qf_msg owns its heap parts (the fingerprint text, a RESULT's samples, a
 * SUBMIT's jobs); qf_msg_clear frees them. Encoding returns a malloc'd buffer the caller frees.
 */
#ifndef QF_WIRE_H
#define QF_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qf_job.h"

#define QF_WIRE_VERSION 1
#define QF_WIRE_DEFAULT_MAX_FRAME (16u << 20)   /* 16 MiB */
#define QF_WIRE_NAME_MAX 64
#define QF_WIRE_TEXT_MAX 256
#define QF_WIRE_FINGERPRINT_MAX (64u << 10)     /* bytes of fingerprint JSON */

/* type number, name. Numbers are part of the protocol: never reuse one. */
#define QF_MSG_MAP(X) \
    X(1,  HELLO)      \
    X(2,  WELCOME)    \
    X(3,  HEARTBEAT)  \
    X(4,  JOB)        \
    X(5,  ACCEPT)     \
    X(6,  REJECT)     \
    X(7,  PROGRESS)   \
    X(8,  RESULT)     \
    X(9,  ACK)        \
    X(10, ERROR)      \
    X(11, BYE)        \
    X(12, SUBMIT)     \
    X(13, STATUS)     \
    X(14, CANCEL)     \
    X(15, REPLY)

typedef enum qf_msg_type {
#define QF_MSG_ENUM_(num, name) QF_MSG_##name = num,
    QF_MSG_MAP(QF_MSG_ENUM_)
#undef QF_MSG_ENUM_
} qf_msg_type;

typedef struct qf_wire_limits {
    size_t   max_frame;       /* bytes; larger frames are refused before decoding */
    uint32_t max_jobs;        /* jobs in one SUBMIT */
    uint32_t max_samples;     /* samples in one RESULT */
} qf_wire_limits;

/* The defaults: 16 MiB frames, 100000 jobs per SUBMIT, QF_JOB_MAX_SAMPLES samples. */
qf_wire_limits qf_wire_default_limits(void);

/* Agent -> coordinator, first message. What the agent is and what it can run. */
typedef struct qf_msg_hello {
    char     name[QF_WIRE_NAME_MAX];     /* unique in the fleet: the agent's identity */
    uint64_t instance;                   /* random per agent process: a new one means the old
                                            process died and its leases are void */
    uint32_t slots;                      /* jobs it runs at once */
    char     version[32];                /* qfleet version */
    char     commit[48];                 /* qfleet commit (+ "-dirty") */
    char     arch[16];                   /* "x86_64", "aarch64" */
    char     isa[QF_WIRE_TEXT_MAX];      /* space-separated ISA flags: "avx2 avx512f fma" */
    char     backends[64];               /* space-separated: "cpu cuda opencl" */
    char    *fingerprint;                /* JSON object text (hwloc topology etc.), owned */
} qf_msg_hello;

typedef struct qf_msg_welcome {
    uint64_t agent_id;
    uint32_t heartbeat_ms;               /* the agent heartbeats this often */
    uint32_t max_frame;
} qf_msg_welcome;

typedef struct qf_msg_heartbeat {
    uint32_t running;                    /* jobs running on the agent now (0 from coordinator) */
} qf_msg_heartbeat;

typedef struct qf_msg_job {
    uint64_t    job_id;
    uint32_t    attempt;
    qf_job_spec spec;
} qf_msg_job;

/* ACCEPT, ACK: job_id/attempt; REJECT adds a reason. PROGRESS adds done/total. */
typedef struct qf_msg_jobref {
    uint64_t job_id;
    uint32_t attempt;
    uint32_t done, total;                /* PROGRESS only */
    char     reason[QF_WIRE_TEXT_MAX];   /* REJECT only */
    bool     busy;                       /* REJECT only, optional: the agent had no free slot,
                                            which is not the job's fault (attempt not counted) */
} qf_msg_jobref;

typedef struct qf_msg_result {
    uint64_t      job_id;
    uint32_t      attempt;
    qf_job_result result;                /* samples owned */
} qf_msg_result;

/* ERROR and BYE. code: a qf_err name such as "QF_EPROTO" (BYE: ""). */
typedef struct qf_msg_error {
    char code[32];
    char reason[QF_WIRE_TEXT_MAX];
} qf_msg_error;

/* Client -> coordinator: a run and its expanded jobs. */
typedef struct qf_msg_submit {
    char         suite[QF_WIRE_NAME_MAX];
    char         commit[48];
    bool         dirty;
    char         branch[QF_WIRE_NAME_MAX];
    char         baseline[QF_JOB_FORMAT_MAX];   /* format that "speed improvement" divides by */
    uint32_t     max_attempts;
    uint32_t     n_jobs;
    qf_job_spec *jobs;                          /* owned */
} qf_msg_submit;

/* STATUS (run_id 0: the whole coordinator) and CANCEL. */
typedef struct qf_msg_runref {
    uint64_t run_id;
} qf_msg_runref;

/* Coordinator -> client answer to SUBMIT, STATUS, CANCEL (same id as the request). */
typedef struct qf_msg_reply {
    bool     ok;
    char     error[QF_WIRE_TEXT_MAX];
    uint64_t run_id;
    char    *json;                              /* status document, owned; may be NULL */
} qf_msg_reply;

typedef struct qf_msg {
    qf_msg_type type;
    uint64_t    id;
    union {
        qf_msg_hello     hello;
        qf_msg_welcome   welcome;
        qf_msg_heartbeat heartbeat;
        qf_msg_job       job;
        qf_msg_jobref    jobref;     /* ACCEPT, REJECT, PROGRESS, ACK */
        qf_msg_result    result;
        qf_msg_error     error;      /* ERROR, BYE */
        qf_msg_submit    submit;
        qf_msg_runref    runref;     /* STATUS, CANCEL */
        qf_msg_reply     reply;
    } u;
} qf_msg;

/* "HELLO" for QF_MSG_HELLO; "UNKNOWN" otherwise. */
const char *qf_msg_type_name(int type);

/* Encodes m into a fresh buffer (*out, *out_len; caller frees *out). QF_ENOMEM, or QF_EINVAL
 * if m breaks a limit the default-limits decoder would refuse (so we never send what we would
 * reject; a QF_EINVAL also prints one line naming the field, e.g. "wire: cannot encode RESULT:
 * body.error: not valid UTF-8"). The frame size is not checked here: it is the receiver's
 * limit (WELCOME.max_frame), so a sender of big frames compares *out_len with it. */
int qf_wire_encode(const qf_msg *m, void **out, size_t *out_len);

/* Decodes one frame into *m (zeroed first). On failure returns QF_EPROTO or QF_ETOOBIG (or
 * QF_ENOMEM), writes a one-line reason naming the field ("body.spec.rows: 0 is not an integer
 * in [1, 1048576]") into why, and leaves *m empty except m->id, which holds the envelope's id
 * when it could be read (0 otherwise) so the ERROR reply can carry it. Never aborts and never
 * reads past buf[len - 1], whatever the bytes. */
int qf_wire_decode(const void *buf, size_t len, const qf_wire_limits *lim, qf_msg *m,
                   char *why, size_t why_len);

/* Frees what a decoded (or hand-built) message owns and zeroes it. NULL-safe. */
void qf_msg_clear(qf_msg *m);

#endif
