/* wire.c - the fleet's one msgpack codec (docs/protocol.md is the spec it implements).
 *
 * Every message body is described once, as a table of fields (key, kind, offset in the
 * message struct, bounds, required); one encoder and one decoder walk those tables, so a
 * field cannot be read differently from how it is written, and the same checks run in both
 * directions: encoding refuses (QF_EINVAL) whatever decoding would refuse.
 *
 * Decoding trusts nothing. A frame over lim->max_frame is refused before it is looked at.
 * msgpack-c allocates the objects of an array or map as soon as it reads the declared count,
 * so a 5-byte frame claiming 2^32 elements would ask for ~100 GB; prescan() therefore walks
 * the raw bytes first, without allocating, and refuses a frame whose declared elements could
 * not each have at least one byte behind them, that is truncated, nests deeper than MAX_DEPTH
 * or has bytes after the message. After that msgpack-c's zone costs at most ~24 bytes per
 * frame byte. Then every field is checked for type and bounds: strings must fit their arrays
 * (refused, never truncated), be valid UTF-8 and hold no NUL; integers must fit their range
 * (a negative number where an unsigned one belongs is an error); floats may arrive as float32,
 * float64 or integers. A double that is inf or NaN travels as nil: nil decodes as NaN, except
 * metrics.snr_db where it decodes as +inf (a perfect reconstruction). Specs are checked with
 * qf_job_spec_validate. JSON texts (HELLO fingerprint, REPLY json) must parse as JSON objects
 * here, so the coordinator can store them and clients can read them without checking again.
 *
 * Callers: the coordinator (every frame it receives), the agent, the CLI client. Hot enough to
 * matter only for SUBMIT (100,000 specs) and RESULT (100,000 samples): linear in the frame.
 */
#include "qf_wire.h"

#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <msgpack.h>

#include "qf_err.h"
#include "qf_formats.h"

#define MAX_DEPTH 16               /* envelope > body > jobs > spec is 4; room for extensions */
#define MAX_SLOTS 1024             /* jobs one agent runs at once */
#define MAX_ATTEMPTS 100           /* SUBMIT max_attempts (0: the coordinator's default) */
#define ID_MAX ((uint64_t)INT64_MAX) /* ids are SQLite rowids */
#define DEFAULT_MAX_JOBS 100000u

qf_wire_limits qf_wire_default_limits(void)
{
    qf_wire_limits l = { .max_frame = QF_WIRE_DEFAULT_MAX_FRAME, .max_jobs = DEFAULT_MAX_JOBS,
                         .max_samples = QF_JOB_MAX_SAMPLES };
    return l;
}

const char *qf_msg_type_name(int type)
{
    switch (type) {
#define QF_MSG_NAME_(num, name) case num: return #name;
    QF_MSG_MAP(QF_MSG_NAME_)
#undef QF_MSG_NAME_
    default: return "UNKNOWN";
    }
}

/* ---- the message tables ---------------------------------------------------------------- */

typedef enum fkind {
    FK_U64, FK_U32, FK_I64, FK_I32,   /* integers in [lo, hi] */
    FK_BOOL,
    FK_F64,                           /* double; nil <-> not finite, nil decodes as NaN */
    FK_F64_INF,                       /* the same, but nil decodes as +inf (snr_db) */
    FK_STR,                           /* char[size]: at least lo bytes, UTF-8, no NUL */
    FK_SHA256,                        /* char[65]: "" or 64 lowercase hex digits */
    FK_FORMAT,                        /* char[size]: "" or a name from the format table */
    FK_JSON,                          /* char *: JSON object text, at most hi bytes (0: the
                                         frame's limit); nil <-> NULL when lo is 1 */
    FK_STATUS,                        /* qf_job_status, as its name */
    FK_SAMPLES,                       /* double *samples at off, uint32_t count at aux */
    FK_SUBMAP,                        /* a struct at off described by the field table
                                         k_subs[hi], bool "has it" at aux; nil when absent:
                                         a result's metrics and model numbers */
    FK_SPEC,                          /* qf_job_spec at off: a map (k_spec) */
    FK_SPECS,                         /* qf_job_spec *jobs at off, uint32_t count at aux */
} fkind;

typedef struct field {
    const char *key;
    fkind       kind;
    bool        required;
    size_t      off, size, aux;
    int64_t     lo;
    uint64_t    hi;
} field;

#define SIZEOF(st, m) sizeof(((st *)0)->m)
#define INT(kd, st, k, m, l, h) { k, kd, true, offsetof(st, m), SIZEOF(st, m), 0, l, h }
#define U64(st, k, m, l, h) INT(FK_U64, st, k, m, l, h)
#define U32(st, k, m, l, h) INT(FK_U32, st, k, m, l, h)
#define I64(st, k, m, l, h) INT(FK_I64, st, k, m, l, h)
#define I32(st, k, m, l, h) INT(FK_I32, st, k, m, l, h)
#define BOOL(st, k, m) { k, FK_BOOL, true, offsetof(st, m), SIZEOF(st, m), 0, 0, 0 }
#define F64(st, k, m) { k, FK_F64, true, offsetof(st, m), SIZEOF(st, m), 0, 0, 0 }
#define STR(st, k, m, minlen) { k, FK_STR, true, offsetof(st, m), SIZEOF(st, m), 0, minlen, 0 }
#define N_OF(a) ((int)(sizeof(a) / sizeof((a)[0])))

static const field k_spec[] = {
    STR(qf_job_spec, "kind", kind, 1),
    STR(qf_job_spec, "format", format, 0),
    STR(qf_job_spec, "dataset", dataset, 1),
    I64(qf_job_spec, "rows", rows, 1, QF_JOB_MAX_DIM),
    I64(qf_job_spec, "cols", cols, 1, QF_JOB_MAX_DIM),
    U32(qf_job_spec, "reps", reps, 1, QF_JOB_MAX_REPS),
    U32(qf_job_spec, "warmup", warmup, 0, QF_JOB_MAX_REPS),
    U32(qf_job_spec, "threads", threads, 1, QF_JOB_MAX_THREADS),
    U64(qf_job_spec, "seed", seed, 0, (uint64_t)INT64_MAX),
    U32(qf_job_spec, "timeout_ms", timeout_ms, 1, QF_JOB_MAX_TIMEOUT_MS),
    I32(qf_job_spec, "priority", priority, INT32_MIN, INT32_MAX),
    STR(qf_job_spec, "selector", selector, 0),
};

/* An eval job's model-level numbers (qf_job_model): optional as a whole, every key inside
 * required; a NaN travels as nil. */
static const field k_model[] = {
    F64(qf_job_model, "perplexity", ppl),
    F64(qf_job_model, "perplexity_err", ppl_err),
    F64(qf_job_model, "perplexity_base", ppl_base),
    F64(qf_job_model, "kld", kld),
    F64(qf_job_model, "kld_p99", kld_p99),
    F64(qf_job_model, "same_top", same_top),
    F64(qf_job_model, "dp_rms", dp_rms),
    F64(qf_job_model, "pp_tps", pp_tps),
    F64(qf_job_model, "tg_tps", tg_tps),
    I64(qf_job_model, "n_scored", n_scored, 0, INT64_MAX),
};

static const field k_metrics[] = {
    F64(qf_job_metrics, "rmse", rmse),
    F64(qf_job_metrics, "nmse", nmse),
    { "snr_db", FK_F64_INF, true, offsetof(qf_job_metrics, snr_db), sizeof(double), 0, 0, 0 },
    F64(qf_job_metrics, "max_abs", max_abs),
    F64(qf_job_metrics, "cosine", cosine),
};

/* The field tables of FK_SUBMAP fields, by the index in their hi. */
enum { SUB_METRICS, SUB_MODEL };
static const struct {
    const field *fields;
    int          n;
} k_subs[] = {
    [SUB_METRICS] = { k_metrics, N_OF(k_metrics) },
    [SUB_MODEL]   = { k_model, N_OF(k_model) },
};

static const field k_hello[] = {
    STR(qf_msg_hello, "name", name, 1),
    U64(qf_msg_hello, "instance", instance, 0, UINT64_MAX),
    U32(qf_msg_hello, "slots", slots, 1, MAX_SLOTS),
    STR(qf_msg_hello, "version", version, 0),
    STR(qf_msg_hello, "commit", commit, 0),
    STR(qf_msg_hello, "arch", arch, 0),
    STR(qf_msg_hello, "isa", isa, 0),
    STR(qf_msg_hello, "backends", backends, 0),
    { "fingerprint", FK_JSON, true, offsetof(qf_msg_hello, fingerprint), sizeof(char *), 0,
      0, QF_WIRE_FINGERPRINT_MAX },
};

static const field k_welcome[] = {
    U64(qf_msg_welcome, "agent_id", agent_id, 1, ID_MAX),
    U32(qf_msg_welcome, "heartbeat_ms", heartbeat_ms, 1, 3600000),
    U32(qf_msg_welcome, "max_frame", max_frame, 1024, UINT32_MAX),
};

static const field k_heartbeat[] = {
    U32(qf_msg_heartbeat, "running", running, 0, MAX_SLOTS),
};

static const field k_job[] = {
    U64(qf_msg_job, "job_id", job_id, 1, ID_MAX),
    U32(qf_msg_job, "attempt", attempt, 1, UINT32_MAX),
    { "spec", FK_SPEC, true, offsetof(qf_msg_job, spec), sizeof(qf_job_spec), 0, 0, 0 },
};

#define JOBREF_IDS \
    U64(qf_msg_jobref, "job_id", job_id, 1, ID_MAX), \
    U32(qf_msg_jobref, "attempt", attempt, 1, UINT32_MAX)

static const field k_jobref[] = { JOBREF_IDS };   /* ACCEPT, ACK */
static const field k_reject[] = {
    JOBREF_IDS,
    STR(qf_msg_jobref, "reason", reason, 0),
    { "busy", FK_BOOL, false, offsetof(qf_msg_jobref, busy), SIZEOF(qf_msg_jobref, busy), 0, 0,
      0 },
};
static const field k_progress[] = {
    JOBREF_IDS,
    U32(qf_msg_jobref, "done", done, 0, UINT32_MAX),
    U32(qf_msg_jobref, "total", total, 0, UINT32_MAX),
};

static const field k_result[] = {
    U64(qf_msg_result, "job_id", job_id, 1, ID_MAX),
    U32(qf_msg_result, "attempt", attempt, 1, UINT32_MAX),
    { "status", FK_STATUS, true, offsetof(qf_msg_result, result.status),
      sizeof(qf_job_status), 0, 0, 0 },
    STR(qf_msg_result, "error", result.error, 0),
    { "samples", FK_SAMPLES, true, offsetof(qf_msg_result, result.samples), sizeof(double *),
      offsetof(qf_msg_result, result.n_samples), 0, 0 },
    { "metrics", FK_SUBMAP, true, offsetof(qf_msg_result, result.metrics),
      sizeof(qf_job_metrics), offsetof(qf_msg_result, result.has_metrics), 0, SUB_METRICS },
    U64(qf_msg_result, "bytes", result.bytes, 0, UINT64_MAX),
    F64(qf_msg_result, "bpw", result.bpw),
    U64(qf_msg_result, "throughput_bytes", result.throughput_bytes, 0, UINT64_MAX),
    { "dataset_sha256", FK_SHA256, true, offsetof(qf_msg_result, result.dataset_sha256),
      SIZEOF(qf_msg_result, result.dataset_sha256), 0, 0, 0 },
    STR(qf_msg_result, "kernel", result.kernel, 0),
    U64(qf_msg_result, "seed", result.seed, 0, UINT64_MAX),
    U64(qf_msg_result, "peak_rss_kb", result.peak_rss_kb, 0, UINT64_MAX),
    /* optional: agents older than the field omit it (read as 0) */
    { "device_mem_bytes", FK_U64, false, offsetof(qf_msg_result, result.device_mem_bytes),
      SIZEOF(qf_msg_result, result.device_mem_bytes), 0, 0, UINT64_MAX },
    F64(qf_msg_result, "wall_s", result.wall_s),
    { "model", FK_SUBMAP, false, offsetof(qf_msg_result, result.model), sizeof(qf_job_model),
      offsetof(qf_msg_result, result.has_model), 0, SUB_MODEL },
};

static const field k_error[] = {
    STR(qf_msg_error, "code", code, 1),
    STR(qf_msg_error, "reason", reason, 0),
};

static const field k_bye[] = {
    { "code", FK_STR, false, offsetof(qf_msg_error, code), SIZEOF(qf_msg_error, code), 0, 0, 0 },
    STR(qf_msg_error, "reason", reason, 0),
};

static const field k_submit[] = {
    STR(qf_msg_submit, "suite", suite, 1),
    STR(qf_msg_submit, "commit", commit, 0),
    BOOL(qf_msg_submit, "dirty", dirty),
    STR(qf_msg_submit, "branch", branch, 0),
    { "baseline", FK_FORMAT, true, offsetof(qf_msg_submit, baseline),
      SIZEOF(qf_msg_submit, baseline), 0, 0, 0 },
    U32(qf_msg_submit, "max_attempts", max_attempts, 0, MAX_ATTEMPTS),
    { "jobs", FK_SPECS, true, offsetof(qf_msg_submit, jobs), sizeof(qf_job_spec *),
      offsetof(qf_msg_submit, n_jobs), 0, 0 },
};

static const field k_runref[] = {
    U64(qf_msg_runref, "run_id", run_id, 0, ID_MAX),
};

static const field k_reply[] = {
    BOOL(qf_msg_reply, "ok", ok),
    STR(qf_msg_reply, "error", error, 0),
    U64(qf_msg_reply, "run_id", run_id, 0, ID_MAX),
    { "json", FK_JSON, true, offsetof(qf_msg_reply, json), sizeof(char *), 0, 1, 0 },
};

typedef struct msg_desc {
    const field *fields;
    int          n;
} msg_desc;

#define DESC(t) { t, N_OF(t) }
static const msg_desc k_msgs[] = {
    [QF_MSG_HELLO] = DESC(k_hello),        [QF_MSG_WELCOME] = DESC(k_welcome),
    [QF_MSG_HEARTBEAT] = DESC(k_heartbeat), [QF_MSG_JOB] = DESC(k_job),
    [QF_MSG_ACCEPT] = DESC(k_jobref),      [QF_MSG_REJECT] = DESC(k_reject),
    [QF_MSG_PROGRESS] = DESC(k_progress),  [QF_MSG_RESULT] = DESC(k_result),
    [QF_MSG_ACK] = DESC(k_jobref),         [QF_MSG_ERROR] = DESC(k_error),
    [QF_MSG_BYE] = DESC(k_bye),            [QF_MSG_SUBMIT] = DESC(k_submit),
    [QF_MSG_STATUS] = DESC(k_runref),      [QF_MSG_CANCEL] = DESC(k_runref),
    [QF_MSG_REPLY] = DESC(k_reply),
};

static const msg_desc *desc_of(uint64_t type)
{
    if (type >= (uint64_t)N_OF(k_msgs) || !k_msgs[type].fields)
        return NULL;
    return &k_msgs[type];
}

/* ---- checks shared by both directions -------------------------------------------------- */

/* Checks an integer (neg: the value is s < 0; otherwise it is u) against f's range. */
static int check_int(const field *f, const char *path, bool neg, int64_t s, uint64_t u,
                     char *why, size_t why_len)
{
    bool ok = neg ? f->lo < 0 && s >= f->lo : (f->lo <= 0 || u >= (uint64_t)f->lo) && u <= f->hi;
    if (!ok) {
        char val[24];
        if (neg)
            snprintf(val, sizeof val, "%" PRId64, s);
        else
            snprintf(val, sizeof val, "%" PRIu64, u);
        return qf_whyf(QF_EPROTO, why, why_len, "%s.%s: %s is not an integer in [%" PRId64 ", %"
                     PRIu64 "]%s", path, f->key, val, f->lo, f->hi,
                     neg && f->lo >= 0 ? " (negative where an unsigned value belongs)" : "");
    }
    return 0;
}

/* msgpack str must be UTF-8; refusing bad sequences here keeps every string JSON-safe for the
 * store and the reports (jansson refuses invalid UTF-8). Overlongs and surrogates are bad. */
static bool utf8_valid(const unsigned char *s, size_t n)
{
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        size_t len;
        uint32_t cp, min;
        if ((c & 0xe0) == 0xc0) {
            len = 2, cp = c & 0x1f, min = 0x80;
        } else if ((c & 0xf0) == 0xe0) {
            len = 3, cp = c & 0x0f, min = 0x800;
        } else if ((c & 0xf8) == 0xf0) {
            len = 4, cp = c & 0x07, min = 0x10000;
        } else {
            return false;
        }
        if (n - i < len)
            return false;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                return false;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return false;
        i += len;
    }
    return true;
}

static bool is_sha256_hex(const char *s, size_t n)
{
    if (n == 0)
        return true;
    if (n != 64)
        return false;
    for (size_t i = 0; i < n; i++)
        if (!((s[i] >= '0' && s[i] <= '9') || (s[i] >= 'a' && s[i] <= 'f')))
            return false;
    return true;
}

/* Checks n bytes of text for a string field (FK_STR, FK_SHA256, FK_FORMAT, FK_JSON). */
static int check_text(const field *f, const char *path, const char *s, size_t n, char *why,
                      size_t why_len)
{
    if (f->kind == FK_JSON) {
        if (f->hi && n > f->hi)
            return qf_whyf(QF_ETOOBIG, why, why_len, "%s.%s: %zu bytes is over the limit of %"
                         PRIu64, path, f->key, n, f->hi);
    } else if (n >= f->size) {
        return qf_whyf(QF_EPROTO, why, why_len, "%s.%s: %zu bytes is over the limit of %zu",
                     path, f->key, n, f->size - 1);
    }
    if (f->kind == FK_STR && n < (uint64_t)f->lo)
        return qf_whyf(QF_EPROTO, why, why_len, "%s.%s: must not be empty", path, f->key);
    if (memchr(s, '\0', n))
        return qf_whyf(QF_EPROTO, why, why_len, "%s.%s: contains a NUL byte", path, f->key);
    if (!utf8_valid((const unsigned char *)s, n))
        return qf_whyf(QF_EPROTO, why, why_len, "%s.%s: not valid UTF-8", path, f->key);
    if (f->kind == FK_SHA256 && !is_sha256_hex(s, n))
        return qf_whyf(QF_EPROTO, why, why_len, "%s.%s: expected \"\" or 64 lowercase hex digits",
                     path, f->key);
    if (f->kind == FK_FORMAT && n) {
        char name[QF_JOB_FORMAT_MAX];
        qf_format fmt;
        memcpy(name, s, n); /* n < size <= sizeof name */
        name[n] = '\0';
        if (qf_format_from_name(name, &fmt) != 0)
            return qf_whyf(QF_EPROTO, why, why_len, "%s.%s: unknown format '%s'", path, f->key,
                         name);
    }
    if (f->kind == FK_JSON) {
        json_error_t jerr;
        json_t *j = json_loadb(s, n, 0, &jerr);
        bool obj = json_is_object(j);
        json_decref(j);
        if (!j)
            return qf_whyf(QF_EPROTO, why, why_len, "%s.%s: not JSON: %s", path, f->key, jerr.text);
        if (!obj)
            return qf_whyf(QF_EPROTO, why, why_len, "%s.%s: not a JSON object", path, f->key);
    }
    return 0;
}

static int check_spec(const qf_job_spec *s, const char *path, char *why, size_t why_len)
{
    char sw[QF_JOB_ERROR_MAX];
    if (qf_job_spec_validate(s, sw, sizeof sw) != 0)
        return qf_whyf(QF_EPROTO, why, why_len, "%s.%s", path, sw);
    return 0;
}

/* Cross-field rules the tables cannot say. */
static int check_message(const qf_msg *m, char *why, size_t why_len)
{
    if (m->type == QF_MSG_PROGRESS && m->u.jobref.done > m->u.jobref.total)
        return qf_whyf(QF_EPROTO, why, why_len, "body.done: %" PRIu32 " is over total %" PRIu32,
                     m->u.jobref.done, m->u.jobref.total);
    return 0;
}

/* ---- pre-scan: the frame's structure, before msgpack-c allocates anything ---------------- */

static uint64_t load_be(const uint8_t *p, size_t n)
{
    uint64_t v = 0;
    for (size_t i = 0; i < n; i++)
        v = v << 8 | p[i];
    return v;
}

/* Reads the header of the object at p (avail bytes, avail >= 1): *used is the bytes of the
 * whole object except its children, *children the number of objects it contains (2 per map
 * entry). 0, or 1 for truncation, or -1 for the never-used byte 0xc1. */
static int item_header(const uint8_t *p, size_t avail, uint64_t *used, uint64_t *children)
{
    enum { SCALAR, BYTES, ARRAY, MAP } what = SCALAR;
    uint8_t b = p[0];
    size_t nlen = 0;      /* bytes of the length or count field after the type byte */
    uint64_t fixed = 0;   /* payload bytes the length does not count */
    uint64_t n = 0;

    if (b <= 0x7f || b >= 0xe0 || b == 0xc0 || b == 0xc2 || b == 0xc3) {
        /* fixint, nil, bool */
    } else if (b <= 0x8f) {
        what = MAP, n = b & 0x0f;
    } else if (b <= 0x9f) {
        what = ARRAY, n = b & 0x0f;
    } else if (b <= 0xbf) {
        what = BYTES, n = b & 0x1f;
    } else {
        switch (b) {
        case 0xc4: case 0xd9: what = BYTES, nlen = 1; break;          /* bin8, str8 */
        case 0xc5: case 0xda: what = BYTES, nlen = 2; break;
        case 0xc6: case 0xdb: what = BYTES, nlen = 4; break;
        case 0xc7: what = BYTES, nlen = 1, fixed = 1; break;           /* ext: + type byte */
        case 0xc8: what = BYTES, nlen = 2, fixed = 1; break;
        case 0xc9: what = BYTES, nlen = 4, fixed = 1; break;
        case 0xca: fixed = 4; break;                                   /* float32 */
        case 0xcb: fixed = 8; break;
        case 0xcc: case 0xd0: fixed = 1; break;                        /* (u)int8..64 */
        case 0xcd: case 0xd1: fixed = 2; break;
        case 0xce: case 0xd2: fixed = 4; break;
        case 0xcf: case 0xd3: fixed = 8; break;
        case 0xd4: fixed = 2; break;                                   /* fixext 1..16 */
        case 0xd5: fixed = 3; break;
        case 0xd6: fixed = 5; break;
        case 0xd7: fixed = 9; break;
        case 0xd8: fixed = 17; break;
        case 0xdc: what = ARRAY, nlen = 2; break;
        case 0xdd: what = ARRAY, nlen = 4; break;
        case 0xde: what = MAP, nlen = 2; break;
        case 0xdf: what = MAP, nlen = 4; break;
        default: return -1;                                            /* 0xc1 */
        }
    }
    if (avail < 1 + nlen)
        return 1;
    if (nlen)
        n = load_be(p + 1, nlen);
    uint64_t payload = fixed + (what == BYTES ? n : 0);
    if (payload > avail - 1 - nlen)
        return 1;
    *used = 1 + nlen + payload;
    *children = what == ARRAY ? n : what == MAP ? 2 * n : 0;
    return 0;
}

/* Exactly one well-formed object filling the frame, every declared element backed by at least
 * one byte, at most MAX_DEPTH deep. Allocates nothing. */
static int prescan(const uint8_t *p, size_t len, char *why, size_t why_len)
{
    if (len == 0)
        return qf_whyf(QF_EPROTO, why, why_len, "frame: empty");
    uint64_t left[MAX_DEPTH];   /* objects still to read at each open level */
    int top = 0;
    left[0] = 1;
    uint64_t pending = 1;       /* objects still to read, all levels together */
    size_t off = 0;
    while (top >= 0) {
        if (left[top] == 0) {
            top--;
            continue;
        }
        if (off == len)
            return qf_whyf(QF_EPROTO, why, why_len, "frame: truncated after %zu bytes", len);
        uint64_t used, children;
        int rc = item_header(p + off, len - off, &used, &children);
        if (rc < 0)
            return qf_whyf(QF_EPROTO, why, why_len, "frame: invalid msgpack byte 0xc1 at offset "
                         "%zu", off);
        if (rc > 0)
            return qf_whyf(QF_EPROTO, why, why_len, "frame: truncated in the object at offset %zu",
                         off);
        off += used;
        left[top]--;
        pending--;
        if (children == 0)
            continue;
        if (children > len - off || pending + children > len - off)
            return qf_whyf(QF_EPROTO, why, why_len, "frame: a container at offset %zu declares %"
                         PRIu64 " elements but only %zu bytes follow", off - used, children,
                         len - off);
        if (top + 1 >= MAX_DEPTH)
            return qf_whyf(QF_EPROTO, why, why_len, "frame: nested deeper than %d at offset %zu",
                         MAX_DEPTH, off - used);
        left[++top] = children;
        pending += children;
    }
    if (off != len)
        return qf_whyf(QF_EPROTO, why, why_len, "frame: %zu bytes after the message", len - off);
    return 0;
}

/* ---- decoding -------------------------------------------------------------------------- */

static const char *obj_type_name(msgpack_object_type t)
{
    switch (t) {
    case MSGPACK_OBJECT_NIL: return "nil";
    case MSGPACK_OBJECT_BOOLEAN: return "a boolean";
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: return "an integer";
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: return "a float";
    case MSGPACK_OBJECT_STR: return "a string";
    case MSGPACK_OBJECT_ARRAY: return "an array";
    case MSGPACK_OBJECT_MAP: return "a map";
    case MSGPACK_OBJECT_BIN: return "binary";
    case MSGPACK_OBJECT_EXT: return "an extension";
    }
    return "an unknown type";
}

static int wrong_type(const char *path, const char *key, const char *expected,
                      const msgpack_object *o, char *why, size_t why_len)
{
    return qf_whyf(QF_EPROTO, why, why_len, "%s.%s: expected %s, got %s", path, key, expected,
                 obj_type_name(o->type));
}

/* A number (float32, float64, an integer) or nil (nil_value). */
static int get_f64(const msgpack_object *o, double nil_value, double *out)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: *out = nil_value; return 0;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64: /* a non-finite float reads as nil would: decode is a fixed
                                    point of encode, which sends non-finite values as nil */
        *out = isfinite(o->via.f64) ? o->via.f64 : nil_value;
        return 0;
    case MSGPACK_OBJECT_POSITIVE_INTEGER: *out = (double)o->via.u64; return 0;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: *out = (double)o->via.i64; return 0;
    default: return -1;
    }
}

static int decode_map(const field *fields, int n, const msgpack_object *map, char *base,
                      const char *path, const qf_wire_limits *lim, char *why, size_t why_len);

static int decode_spec(const msgpack_object *o, qf_job_spec *s, const char *path,
                       const qf_wire_limits *lim, char *why, size_t why_len)
{
    int err = decode_map(k_spec, N_OF(k_spec), o, (char *)s, path, lim, why, why_len);
    return err ? err : check_spec(s, path, why, why_len);
}

static int decode_field(const field *f, const msgpack_object *o, char *base, const char *path,
                        const qf_wire_limits *lim, char *why, size_t why_len)
{
    char *p = base + f->off;
    int err;
    switch (f->kind) {
    case FK_U64: case FK_U32: case FK_I64: case FK_I32: {
        bool neg = o->type == MSGPACK_OBJECT_NEGATIVE_INTEGER;
        if (!neg && o->type != MSGPACK_OBJECT_POSITIVE_INTEGER)
            return wrong_type(path, f->key, "an integer", o, why, why_len);
        if ((err = check_int(f, path, neg, neg ? o->via.i64 : 0, neg ? 0 : o->via.u64, why,
                             why_len)))
            return err;
        /* in range, so the conversions below are exact */
        if (f->kind == FK_U64) {
            uint64_t v = o->via.u64;
            memcpy(p, &v, sizeof v);
        } else if (f->kind == FK_U32) {
            uint32_t v = (uint32_t)o->via.u64;
            memcpy(p, &v, sizeof v);
        } else if (f->kind == FK_I64) {
            int64_t v = neg ? o->via.i64 : (int64_t)o->via.u64;
            memcpy(p, &v, sizeof v);
        } else {
            int32_t v = (int32_t)(neg ? o->via.i64 : (int64_t)o->via.u64);
            memcpy(p, &v, sizeof v);
        }
        return 0;
    }
    case FK_BOOL:
        if (o->type != MSGPACK_OBJECT_BOOLEAN)
            return wrong_type(path, f->key, "a boolean", o, why, why_len);
        memcpy(p, &o->via.boolean, sizeof(bool));
        return 0;
    case FK_F64: case FK_F64_INF: {
        double v;
        if (get_f64(o, f->kind == FK_F64_INF ? INFINITY : NAN, &v) != 0)
            return wrong_type(path, f->key, "a number or nil", o, why, why_len);
        memcpy(p, &v, sizeof v);
        return 0;
    }
    case FK_STR: case FK_SHA256: case FK_FORMAT:
        if (o->type != MSGPACK_OBJECT_STR)
            return wrong_type(path, f->key, "a string", o, why, why_len);
        if ((err = check_text(f, path, o->via.str.ptr, o->via.str.size, why, why_len)))
            return err;
        memcpy(p, o->via.str.ptr, o->via.str.size);
        p[o->via.str.size] = '\0';
        return 0;
    case FK_JSON: {
        char *text = NULL;
        if (o->type == MSGPACK_OBJECT_NIL && f->lo) {
            memcpy(p, &text, sizeof text);
            return 0;
        }
        if (o->type != MSGPACK_OBJECT_STR)
            return wrong_type(path, f->key, f->lo ? "a string or nil" : "a string", o, why,
                              why_len);
        if ((err = check_text(f, path, o->via.str.ptr, o->via.str.size, why, why_len)))
            return err;
        text = malloc((size_t)o->via.str.size + 1);
        if (!text)
            return qf_whyf(QF_ENOMEM, why, why_len, "%s.%s: out of memory", path, f->key);
        memcpy(text, o->via.str.ptr, o->via.str.size);
        text[o->via.str.size] = '\0';
        memcpy(p, &text, sizeof text);
        return 0;
    }
    case FK_STATUS: {
        char name[16];
        qf_job_status st;
        if (o->type != MSGPACK_OBJECT_STR)
            return wrong_type(path, f->key, "a string", o, why, why_len);
        if (o->via.str.size >= sizeof name)
            return qf_whyf(QF_EPROTO, why, why_len, "%s.%s: unknown status", path, f->key);
        memcpy(name, o->via.str.ptr, o->via.str.size);
        name[o->via.str.size] = '\0';
        if (strlen(name) != o->via.str.size || qf_job_status_from_name(name, &st) != 0)
            return qf_whyf(QF_EPROTO, why, why_len, "%s.%s: unknown status (expected ok, failed, "
                         "timeout or crashed)", path, f->key);
        memcpy(p, &st, sizeof st);
        return 0;
    }
    case FK_SAMPLES: {
        if (o->type != MSGPACK_OBJECT_ARRAY)
            return wrong_type(path, f->key, "an array", o, why, why_len);
        uint32_t n = o->via.array.size;
        if (n > lim->max_samples)
            return qf_whyf(QF_ETOOBIG, why, why_len, "%s.%s: %" PRIu32 " samples is over the "
                         "limit of %" PRIu32, path, f->key, n, lim->max_samples);
        double *v = NULL;
        if (n) {
            v = malloc((size_t)n * sizeof *v);
            if (!v)
                return qf_whyf(QF_ENOMEM, why, why_len, "%s.%s: out of memory", path, f->key);
        }
        memcpy(p, &v, sizeof v); /* owned by the message from here: qf_msg_clear frees it */
        for (uint32_t i = 0; i < n; i++) {
            if (get_f64(&o->via.array.ptr[i], NAN, &v[i]) != 0)
                return qf_whyf(QF_EPROTO, why, why_len, "%s.%s[%" PRIu32 "]: expected a number "
                             "or nil, got %s", path, f->key, i,
                             obj_type_name(o->via.array.ptr[i].type));
        }
        memcpy(base + f->aux, &n, sizeof n);
        return 0;
    }
    case FK_SUBMAP: {
        bool has = o->type != MSGPACK_OBJECT_NIL;
        if (has) {
            if (o->type != MSGPACK_OBJECT_MAP)
                return wrong_type(path, f->key, "a map or nil", o, why, why_len);
            char sub[64];
            snprintf(sub, sizeof sub, "%s.%s", path, f->key);
            if ((err = decode_map(k_subs[f->hi].fields, k_subs[f->hi].n, o, p, sub, lim, why,
                                  why_len)))
                return err;
        }
        memcpy(base + f->aux, &has, sizeof has);
        return 0;
    }
    case FK_SPEC: {
        if (o->type != MSGPACK_OBJECT_MAP)
            return wrong_type(path, f->key, "a map", o, why, why_len);
        char sub[64];
        snprintf(sub, sizeof sub, "%s.%s", path, f->key);
        return decode_spec(o, (qf_job_spec *)(void *)p, sub, lim, why, why_len);
    }
    case FK_SPECS: {
        if (o->type != MSGPACK_OBJECT_ARRAY)
            return wrong_type(path, f->key, "an array", o, why, why_len);
        uint32_t n = o->via.array.size;
        if (n > lim->max_jobs)
            return qf_whyf(QF_ETOOBIG, why, why_len, "%s.%s: %" PRIu32 " jobs is over the limit "
                         "of %" PRIu32, path, f->key, n, lim->max_jobs);
        /* types first, so an array of nils does not cost n specs of memory */
        for (uint32_t i = 0; i < n; i++)
            if (o->via.array.ptr[i].type != MSGPACK_OBJECT_MAP)
                return qf_whyf(QF_EPROTO, why, why_len, "%s.%s[%" PRIu32 "]: expected a map, got "
                             "%s", path, f->key, i, obj_type_name(o->via.array.ptr[i].type));
        qf_job_spec *jobs = NULL;
        if (n) {
            jobs = calloc(n, sizeof *jobs);
            if (!jobs)
                return qf_whyf(QF_ENOMEM, why, why_len, "%s.%s: out of memory", path, f->key);
        }
        memcpy(p, &jobs, sizeof jobs);
        for (uint32_t i = 0; i < n; i++) {
            char sub[64];
            snprintf(sub, sizeof sub, "%s.%s[%" PRIu32 "]", path, f->key, i);
            if ((err = decode_spec(&o->via.array.ptr[i], &jobs[i], sub, lim, why, why_len)))
                return err;
        }
        memcpy(base + f->aux, &n, sizeof n);
        return 0;
    }
    }
    return qf_whyf(QF_EPROTO, why, why_len, "%s.%s: unhandled field kind", path, f->key);
}

/* Fills base's fields from a map with string keys; unknown keys are skipped, a known key
 * twice or a required key missing is an error. */
static int decode_map(const field *fields, int n, const msgpack_object *map, char *base,
                      const char *path, const qf_wire_limits *lim, char *why, size_t why_len)
{
    assert(n <= 64);
    uint64_t seen = 0;
    for (uint32_t i = 0; i < map->via.map.size; i++) {
        const msgpack_object *k = &map->via.map.ptr[i].key;
        if (k->type != MSGPACK_OBJECT_STR)
            return qf_whyf(QF_EPROTO, why, why_len, "%s: key #%" PRIu32 " is %s, not a string",
                         path, i, obj_type_name(k->type));
        int j = 0;
        while (j < n && !(strlen(fields[j].key) == k->via.str.size &&
                          memcmp(fields[j].key, k->via.str.ptr, k->via.str.size) == 0))
            j++;
        if (j == n)
            continue;
        if (seen & (UINT64_C(1) << j))
            return qf_whyf(QF_EPROTO, why, why_len, "%s.%s: key appears twice", path,
                         fields[j].key);
        seen |= UINT64_C(1) << j;
        int err = decode_field(&fields[j], &map->via.map.ptr[i].val, base, path, lim, why,
                               why_len);
        if (err)
            return err;
    }
    for (int j = 0; j < n; j++)
        if (fields[j].required && !(seen & (UINT64_C(1) << j)))
            return qf_whyf(QF_EPROTO, why, why_len, "%s.%s: missing", path, fields[j].key);
    return 0;
}

static int decode_envelope(const msgpack_object *root, const qf_wire_limits *lim, qf_msg *m,
                           char *why, size_t why_len)
{
    if (root->type != MSGPACK_OBJECT_ARRAY || root->via.array.size != 4)
        return qf_whyf(QF_EPROTO, why, why_len, "envelope: expected an array [version, type, id, "
                     "body], got %s%s", obj_type_name(root->type),
                     root->type == MSGPACK_OBJECT_ARRAY ? " of the wrong length" : "");
    const msgpack_object *e = root->via.array.ptr;
    /* id first, so even a frame with a bad version or type gets an ERROR with its id */
    if (e[2].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return qf_whyf(QF_EPROTO, why, why_len, "envelope.id: expected an unsigned integer, got "
                     "%s", obj_type_name(e[2].type));
    m->id = e[2].via.u64;
    if (e[0].type != MSGPACK_OBJECT_POSITIVE_INTEGER || e[0].via.u64 != QF_WIRE_VERSION)
        return qf_whyf(QF_EPROTO, why, why_len, "envelope.version: unsupported (this build speaks "
                     "version %d)", QF_WIRE_VERSION);
    if (e[1].type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return qf_whyf(QF_EPROTO, why, why_len, "envelope.type: expected an unsigned integer, "
                     "got %s", obj_type_name(e[1].type));
    const msg_desc *d = desc_of(e[1].via.u64);
    if (!d)
        return qf_whyf(QF_EPROTO, why, why_len, "envelope.type: unknown message type %" PRIu64,
                     e[1].via.u64);
    if (e[3].type != MSGPACK_OBJECT_MAP)
        return qf_whyf(QF_EPROTO, why, why_len, "body: expected a map, got %s",
                     obj_type_name(e[3].type));
    m->type = (qf_msg_type)e[1].via.u64;
    int err = decode_map(d->fields, d->n, &e[3], (char *)&m->u, "body", lim, why, why_len);
    return err ? err : check_message(m, why, why_len);
}

int qf_wire_decode(const void *buf, size_t len, const qf_wire_limits *lim, qf_msg *m,
                   char *why, size_t why_len)
{
    assert((buf || len == 0) && lim && m);
    memset(m, 0, sizeof *m);
    if (why && why_len)
        why[0] = '\0';
    if (len > lim->max_frame)
        return qf_whyf(QF_ETOOBIG, why, why_len, "frame: %zu bytes is over the limit of %zu",
                     len, lim->max_frame);
    int err = prescan(buf, len, why, why_len);
    if (err)
        return err;

    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    msgpack_unpack_return rc = msgpack_unpack_next(&u, buf, len, &off);
    if (rc == MSGPACK_UNPACK_NOMEM_ERROR)
        err = qf_whyf(QF_ENOMEM, why, why_len, "frame: out of memory unpacking %zu bytes", len);
    else if (rc != MSGPACK_UNPACK_SUCCESS || off != len) /* prescan makes these unreachable */
        err = qf_whyf(QF_EPROTO, why, why_len, "frame: not one msgpack object (%d)", (int)rc);
    else
        err = decode_envelope(&u.data, lim, m, why, why_len);
    msgpack_unpacked_destroy(&u);
    if (err) {
        uint64_t id = m->id;
        qf_msg_clear(m);
        m->id = id;
    }
    return err;
}

void qf_msg_clear(qf_msg *m)
{
    if (!m)
        return;
    const msg_desc *d = desc_of((uint64_t)m->type);
    for (int i = 0; d && i < d->n; i++) {
        const field *f = &d->fields[i];
        if (f->kind == FK_JSON || f->kind == FK_SAMPLES || f->kind == FK_SPECS) {
            void *p;
            memcpy(&p, (char *)&m->u + f->off, sizeof p);
            free(p);
        }
    }
    memset(m, 0, sizeof *m);
}

/* ---- encoding -------------------------------------------------------------------------- */

static int pack_str(msgpack_packer *pk, const char *s, size_t n)
{
    return msgpack_pack_str(pk, n) || msgpack_pack_str_body(pk, s, n);
}

static int pack_f64(msgpack_packer *pk, double v)
{
    return isfinite(v) ? msgpack_pack_double(pk, v) : msgpack_pack_nil(pk);
}

static int encode_map(msgpack_packer *pk, const field *fields, int n, const char *base,
                      const char *path, bool *io_err, char *why, size_t why_len);

static int encode_spec(msgpack_packer *pk, const qf_job_spec *s, const char *path, bool *io_err,
                       char *why, size_t why_len)
{
    int err = check_spec(s, path, why, why_len);
    return err ? err : encode_map(pk, k_spec, N_OF(k_spec), (const char *)s, path, io_err, why,
                                  why_len);
}

/* Packs one field's value after the same checks the decoder makes. A failed write (out of
 * memory in the buffer) sets *io_err and carries on; the caller reports it once. */
static int encode_field(msgpack_packer *pk, const field *f, const char *base, const char *path,
                        bool *io_err, char *why, size_t why_len)
{
    const char *p = base + f->off;
    int err;
    int w = 0;
    switch (f->kind) {
    case FK_U64: case FK_U32: {
        uint64_t v;
        if (f->kind == FK_U64) {
            memcpy(&v, p, sizeof v);
        } else {
            uint32_t v32;
            memcpy(&v32, p, sizeof v32);
            v = v32;
        }
        if ((err = check_int(f, path, false, 0, v, why, why_len)))
            return err;
        w = msgpack_pack_uint64(pk, v);
        break;
    }
    case FK_I64: case FK_I32: {
        int64_t v;
        if (f->kind == FK_I64) {
            memcpy(&v, p, sizeof v);
        } else {
            int32_t v32;
            memcpy(&v32, p, sizeof v32);
            v = v32;
        }
        if ((err = check_int(f, path, v < 0, v, v < 0 ? 0 : (uint64_t)v, why, why_len)))
            return err;
        w = msgpack_pack_int64(pk, v);
        break;
    }
    case FK_BOOL: {
        bool v;
        memcpy(&v, p, sizeof v);
        w = v ? msgpack_pack_true(pk) : msgpack_pack_false(pk);
        break;
    }
    case FK_F64: case FK_F64_INF: {
        double v;
        memcpy(&v, p, sizeof v);
        w = pack_f64(pk, v);
        break;
    }
    case FK_STR: case FK_SHA256: case FK_FORMAT: {
        const char *nul = memchr(p, '\0', f->size);
        if (!nul)
            return qf_whyf(QF_EINVAL, why, why_len, "%s.%s: not terminated within %zu bytes",
                         path, f->key, f->size);
        if ((err = check_text(f, path, p, (size_t)(nul - p), why, why_len)))
            return err;
        w = pack_str(pk, p, (size_t)(nul - p));
        break;
    }
    case FK_JSON: {
        const char *text;
        memcpy(&text, p, sizeof text);
        if (!text && f->lo) {
            w = msgpack_pack_nil(pk);
            break;
        }
        if (!text)
            return qf_whyf(QF_EINVAL, why, why_len, "%s.%s: missing (NULL)", path, f->key);
        size_t n = strlen(text);
        if ((err = check_text(f, path, text, n, why, why_len)))
            return err;
        w = pack_str(pk, text, n);
        break;
    }
    case FK_STATUS: {
        qf_job_status st;
        memcpy(&st, p, sizeof st);
        const char *name = qf_job_status_name(st);
        qf_job_status back;
        if (qf_job_status_from_name(name, &back) != 0)
            return qf_whyf(QF_EINVAL, why, why_len, "%s.%s: unknown status %d", path, f->key,
                         (int)st);
        w = pack_str(pk, name, strlen(name));
        break;
    }
    case FK_SAMPLES: {
        const double *v;
        uint32_t n;
        memcpy(&v, p, sizeof v);
        memcpy(&n, base + f->aux, sizeof n);
        if (n > QF_JOB_MAX_SAMPLES)
            return qf_whyf(QF_EINVAL, why, why_len, "%s.%s: %" PRIu32 " samples is over the limit "
                         "of %d", path, f->key, n, QF_JOB_MAX_SAMPLES);
        if (n && !v)
            return qf_whyf(QF_EINVAL, why, why_len, "%s.%s: %" PRIu32 " samples but no array",
                         path, f->key, n);
        w = msgpack_pack_array(pk, n);
        for (uint32_t i = 0; i < n; i++)
            w |= pack_f64(pk, v[i]);
        break;
    }
    case FK_SUBMAP: {
        bool has;
        memcpy(&has, base + f->aux, sizeof has);
        if (!has) {
            w = msgpack_pack_nil(pk);
            break;
        }
        char sub[64];
        snprintf(sub, sizeof sub, "%s.%s", path, f->key);
        return encode_map(pk, k_subs[f->hi].fields, k_subs[f->hi].n, p, sub, io_err, why,
                          why_len);
    }
    case FK_SPEC: {
        char sub[64];
        snprintf(sub, sizeof sub, "%s.%s", path, f->key);
        return encode_spec(pk, (const qf_job_spec *)(const void *)p, sub, io_err, why, why_len);
    }
    case FK_SPECS: {
        const qf_job_spec *jobs;
        uint32_t n;
        memcpy(&jobs, p, sizeof jobs);
        memcpy(&n, base + f->aux, sizeof n);
        if (n > DEFAULT_MAX_JOBS)
            return qf_whyf(QF_EINVAL, why, why_len, "%s.%s: %" PRIu32 " jobs is over the limit of "
                         "%u", path, f->key, n, DEFAULT_MAX_JOBS);
        if (n && !jobs)
            return qf_whyf(QF_EINVAL, why, why_len, "%s.%s: %" PRIu32 " jobs but no array", path,
                         f->key, n);
        w = msgpack_pack_array(pk, n);
        for (uint32_t i = 0; i < n; i++) {
            char sub[64];
            snprintf(sub, sizeof sub, "%s.%s[%" PRIu32 "]", path, f->key, i);
            if ((err = encode_spec(pk, &jobs[i], sub, io_err, why, why_len)))
                return err;
        }
        break;
    }
    }
    if (w)
        *io_err = true;
    return 0;
}

static int encode_map(msgpack_packer *pk, const field *fields, int n, const char *base,
                      const char *path, bool *io_err, char *why, size_t why_len)
{
    if (msgpack_pack_map(pk, (size_t)n))
        *io_err = true;
    for (int i = 0; i < n; i++) {
        if (pack_str(pk, fields[i].key, strlen(fields[i].key)))
            *io_err = true;
        int err = encode_field(pk, &fields[i], base, path, io_err, why, why_len);
        if (err)
            return err;
    }
    return 0;
}

int qf_wire_encode(const qf_msg *m, void **out, size_t *out_len)
{
    assert(m && out && out_len);
    *out = NULL;
    *out_len = 0;
    const msg_desc *d = desc_of((uint64_t)m->type);
    if (!d)
        return qf_errorf(QF_EINVAL, "wire: cannot encode message type %d", (int)m->type);

    msgpack_sbuffer sb;
    msgpack_sbuffer_init(&sb);
    msgpack_packer pk;
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    bool io_err = msgpack_pack_array(&pk, 4) || msgpack_pack_uint32(&pk, QF_WIRE_VERSION) ||
                  msgpack_pack_uint32(&pk, (uint32_t)m->type) || msgpack_pack_uint64(&pk, m->id);
    char why[QF_WIRE_TEXT_MAX] = "";
    int err = encode_map(&pk, d->fields, d->n, (const char *)&m->u, "body", &io_err, why,
                         sizeof why);
    if (!err && (err = check_message(m, why, sizeof why)) != 0)
        err = QF_EINVAL;
    if (err) {
        msgpack_sbuffer_destroy(&sb);
        /* what we would refuse to receive is a bug on our side: say which field */
        return qf_errorf(QF_EINVAL, "wire: cannot encode %s: %s", qf_msg_type_name(m->type), why);
    }
    if (io_err) {
        msgpack_sbuffer_destroy(&sb);
        return QF_ENOMEM;
    }
    *out_len = sb.size;
    *out = msgpack_sbuffer_release(&sb);
    return 0;
}
