/* test_wire.c - the msgpack codec: every message type round-trips field for field, and every
 * kind of bad frame (wrong envelope, missing key, wrong type, overlong string, negative
 * unsigned, truncation at every length, random bytes, mutated frames, oversized frames, size
 * bombs) is refused with a reason and never crashes. Malformed frames are built here with
 * msgpack-c's packer, the only place outside wire.c that writes msgpack, because the codec
 * itself refuses to produce them.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <msgpack.h>

#include "qf_err.h"
#include "qf_rng.h"
#include "qf_wire.h"

#define N_TYPES 15

static qf_job_spec spec_n(int i)
{
    qf_job_spec s = {
        .kind = "matvec", .format = "q4_K", .dataset = "synth:student-t",
        .rows = 4096 + i, .cols = 4096, .reps = 10, .warmup = 2, .threads = 4, .seed = 42 + i,
        .timeout_ms = 60000, .priority = -3 + i, .selector = "isa=avx2 name=lab-*",
    };
    return s;
}

static char *xstrdup(const char *s)
{
    char *d = strdup(s);
    assert_non_null(d);
    return d;
}

/* A valid message of each type, with every field set to something other than zero. */
static void make_msg(int type, qf_msg *m)
{
    memset(m, 0, sizeof *m);
    m->type = (qf_msg_type)type;
    m->id = 1000 + (uint64_t)type;
    switch (type) {
    case QF_MSG_HELLO: {
        qf_msg_hello *h = &m->u.hello;
        strcpy(h->name, "lab-pixel8");
        h->instance = UINT64_MAX - 5;
        h->slots = 4;
        strcpy(h->version, "0.1.0");
        strcpy(h->commit, "8fc20ea1b2c3-dirty");
        strcpy(h->arch, "aarch64");
        strcpy(h->isa, "neon dotprod fp16");
        strcpy(h->backends, "cpu opencl");
        h->fingerprint = xstrdup("{\"cpu\":\"Cortex-X3\",\"cores\":8,\"caches\":[65536,524288]}");
        break;
    }
    case QF_MSG_WELCOME:
        m->u.welcome.agent_id = 7;
        m->u.welcome.heartbeat_ms = 2000;
        m->u.welcome.max_frame = QF_WIRE_DEFAULT_MAX_FRAME;
        break;
    case QF_MSG_HEARTBEAT:
        m->u.heartbeat.running = 3;
        break;
    case QF_MSG_JOB:
        m->u.job.job_id = 123456789;
        m->u.job.attempt = 2;
        m->u.job.spec = spec_n(0);
        break;
    case QF_MSG_ACCEPT:
    case QF_MSG_ACK:
        m->u.jobref.job_id = (uint64_t)INT64_MAX;
        m->u.jobref.attempt = 1;
        break;
    case QF_MSG_REJECT:
        m->u.jobref.job_id = 5;
        m->u.jobref.attempt = 3;
        strcpy(m->u.jobref.reason, "no cuda backend here \xc3\xa9");
        break;
    case QF_MSG_PROGRESS:
        m->u.jobref.job_id = 5;
        m->u.jobref.attempt = 3;
        m->u.jobref.done = 4;
        m->u.jobref.total = 10;
        break;
    case QF_MSG_RESULT: {
        qf_job_result *r = &m->u.result.result;
        m->u.result.job_id = 99;
        m->u.result.attempt = 1;
        r->status = QF_JOB_OK;
        strcpy(r->error, "none");
        r->n_samples = 5;
        r->samples = malloc(5 * sizeof *r->samples);
        assert_non_null(r->samples);
        for (int i = 0; i < 5; i++)
            r->samples[i] = 1e-3 * (i + 1) + 1e-12;
        r->has_metrics = true;
        r->metrics = (qf_job_metrics){ .rmse = 0.0123, .nmse = 1.5e-4, .snr_db = INFINITY,
                                       .max_abs = 0.25, .cosine = 0.99991 };
        r->bytes = 9437184;
        r->bpw = 4.5;
        r->throughput_bytes = (uint64_t)1 << 40;
        strcpy(r->dataset_sha256,
               "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
        strcpy(r->kernel, "avx2");
        r->seed = 42;
        r->peak_rss_kb = 123456;
        r->device_mem_bytes = 987654321;
        r->wall_s = 1.75;
        r->has_model = true;
        r->model = (qf_job_model){ .ppl = 12.25, .ppl_err = 0.5, .ppl_base = 12.0, .kld = 0.0625,
                                   .kld_p99 = NAN, .same_top = 0.875, .dp_rms = 0.03125,
                                   .pp_tps = 1234.5, .tg_tps = 56.75, .n_scored = 4096 };
        break;
    }
    case QF_MSG_ERROR:
        strcpy(m->u.error.code, "QF_EPROTO");
        strcpy(m->u.error.reason, "unknown agent, send HELLO");
        break;
    case QF_MSG_BYE:
        strcpy(m->u.error.code, "");
        strcpy(m->u.error.reason, "shutting down");
        break;
    case QF_MSG_SUBMIT: {
        qf_msg_submit *s = &m->u.submit;
        strcpy(s->suite, "chapter04");
        strcpy(s->commit, "abc123");
        s->dirty = true;
        strcpy(s->branch, "main");
        strcpy(s->baseline, "f16");
        s->max_attempts = 3;
        s->n_jobs = 3;
        s->jobs = calloc(3, sizeof *s->jobs);
        assert_non_null(s->jobs);
        for (int i = 0; i < 3; i++)
            s->jobs[i] = spec_n(i);
        strcpy(s->jobs[2].kind, "noop");
        s->jobs[2].format[0] = '\0';
        break;
    }
    case QF_MSG_STATUS:
        m->u.runref.run_id = 0;
        break;
    case QF_MSG_CANCEL:
        m->u.runref.run_id = 17;
        break;
    case QF_MSG_REPLY:
        m->u.reply.ok = true;
        strcpy(m->u.reply.error, "");
        m->u.reply.run_id = 17;
        m->u.reply.json = xstrdup("{\"runs\":[{\"id\":17,\"done\":3}]}");
        break;
    default:
        fail_msg("make_msg: no type %d", type);
    }
}

static bool same_double(double a, double b)
{
    return (isnan(a) && isnan(b)) || a == b;
}

static void assert_double_same(double a, double b, const char *what)
{
    if (!same_double(a, b))
        fail_msg("%s: %.17g != %.17g", what, a, b);
}

static void assert_spec_equal(const qf_job_spec *a, const qf_job_spec *b)
{
    assert_string_equal(a->kind, b->kind);
    assert_string_equal(a->format, b->format);
    assert_string_equal(a->dataset, b->dataset);
    assert_int_equal(a->rows, b->rows);
    assert_int_equal(a->cols, b->cols);
    assert_int_equal(a->reps, b->reps);
    assert_int_equal(a->warmup, b->warmup);
    assert_int_equal(a->threads, b->threads);
    assert_int_equal(a->seed, b->seed);
    assert_int_equal(a->timeout_ms, b->timeout_ms);
    assert_int_equal(a->priority, b->priority);
    assert_string_equal(a->selector, b->selector);
}

static void assert_msg_equal(const qf_msg *a, const qf_msg *b)
{
    assert_int_equal(a->type, b->type);
    assert_int_equal(a->id, b->id);
    switch (a->type) {
    case QF_MSG_HELLO:
        assert_string_equal(a->u.hello.name, b->u.hello.name);
        assert_int_equal(a->u.hello.instance, b->u.hello.instance);
        assert_int_equal(a->u.hello.slots, b->u.hello.slots);
        assert_string_equal(a->u.hello.version, b->u.hello.version);
        assert_string_equal(a->u.hello.commit, b->u.hello.commit);
        assert_string_equal(a->u.hello.arch, b->u.hello.arch);
        assert_string_equal(a->u.hello.isa, b->u.hello.isa);
        assert_string_equal(a->u.hello.backends, b->u.hello.backends);
        assert_string_equal(a->u.hello.fingerprint, b->u.hello.fingerprint);
        break;
    case QF_MSG_WELCOME:
        assert_int_equal(a->u.welcome.agent_id, b->u.welcome.agent_id);
        assert_int_equal(a->u.welcome.heartbeat_ms, b->u.welcome.heartbeat_ms);
        assert_int_equal(a->u.welcome.max_frame, b->u.welcome.max_frame);
        break;
    case QF_MSG_HEARTBEAT:
        assert_int_equal(a->u.heartbeat.running, b->u.heartbeat.running);
        break;
    case QF_MSG_JOB:
        assert_int_equal(a->u.job.job_id, b->u.job.job_id);
        assert_int_equal(a->u.job.attempt, b->u.job.attempt);
        assert_spec_equal(&a->u.job.spec, &b->u.job.spec);
        break;
    case QF_MSG_ACCEPT: case QF_MSG_REJECT: case QF_MSG_PROGRESS: case QF_MSG_ACK:
        assert_int_equal(a->u.jobref.job_id, b->u.jobref.job_id);
        assert_int_equal(a->u.jobref.attempt, b->u.jobref.attempt);
        assert_int_equal(a->u.jobref.done, b->u.jobref.done);
        assert_int_equal(a->u.jobref.total, b->u.jobref.total);
        assert_string_equal(a->u.jobref.reason, b->u.jobref.reason);
        break;
    case QF_MSG_RESULT: {
        const qf_job_result *x = &a->u.result.result, *y = &b->u.result.result;
        assert_int_equal(a->u.result.job_id, b->u.result.job_id);
        assert_int_equal(a->u.result.attempt, b->u.result.attempt);
        assert_int_equal(x->status, y->status);
        assert_string_equal(x->error, y->error);
        assert_int_equal(x->n_samples, y->n_samples);
        for (uint32_t i = 0; i < x->n_samples; i++)
            assert_double_same(x->samples[i], y->samples[i], "samples[i]");
        assert_int_equal(x->has_metrics, y->has_metrics);
        if (x->has_metrics) {
            assert_double_same(x->metrics.rmse, y->metrics.rmse, "rmse");
            assert_double_same(x->metrics.nmse, y->metrics.nmse, "nmse");
            assert_double_same(x->metrics.snr_db, y->metrics.snr_db, "snr_db");
            assert_double_same(x->metrics.max_abs, y->metrics.max_abs, "max_abs");
            assert_double_same(x->metrics.cosine, y->metrics.cosine, "cosine");
        }
        assert_int_equal(x->bytes, y->bytes);
        assert_double_same(x->bpw, y->bpw, "bpw");
        assert_int_equal(x->throughput_bytes, y->throughput_bytes);
        assert_string_equal(x->dataset_sha256, y->dataset_sha256);
        assert_string_equal(x->kernel, y->kernel);
        assert_int_equal(x->seed, y->seed);
        assert_int_equal(x->peak_rss_kb, y->peak_rss_kb);
        assert_int_equal(x->device_mem_bytes, y->device_mem_bytes);
        assert_double_same(x->wall_s, y->wall_s, "wall_s");
        assert_int_equal(x->has_model, y->has_model);
        if (x->has_model) {
            assert_double_same(x->model.ppl, y->model.ppl, "perplexity");
            assert_double_same(x->model.ppl_err, y->model.ppl_err, "perplexity_err");
            assert_double_same(x->model.ppl_base, y->model.ppl_base, "perplexity_base");
            assert_double_same(x->model.kld, y->model.kld, "kld");
            assert_double_same(x->model.kld_p99, y->model.kld_p99, "kld_p99");
            assert_double_same(x->model.same_top, y->model.same_top, "same_top");
            assert_double_same(x->model.dp_rms, y->model.dp_rms, "dp_rms");
            assert_double_same(x->model.pp_tps, y->model.pp_tps, "pp_tps");
            assert_double_same(x->model.tg_tps, y->model.tg_tps, "tg_tps");
            assert_int_equal(x->model.n_scored, y->model.n_scored);
        }
        break;
    }
    case QF_MSG_ERROR: case QF_MSG_BYE:
        assert_string_equal(a->u.error.code, b->u.error.code);
        assert_string_equal(a->u.error.reason, b->u.error.reason);
        break;
    case QF_MSG_SUBMIT:
        assert_string_equal(a->u.submit.suite, b->u.submit.suite);
        assert_string_equal(a->u.submit.commit, b->u.submit.commit);
        assert_int_equal(a->u.submit.dirty, b->u.submit.dirty);
        assert_string_equal(a->u.submit.branch, b->u.submit.branch);
        assert_string_equal(a->u.submit.baseline, b->u.submit.baseline);
        assert_int_equal(a->u.submit.max_attempts, b->u.submit.max_attempts);
        assert_int_equal(a->u.submit.n_jobs, b->u.submit.n_jobs);
        for (uint32_t i = 0; i < a->u.submit.n_jobs; i++)
            assert_spec_equal(&a->u.submit.jobs[i], &b->u.submit.jobs[i]);
        break;
    case QF_MSG_STATUS: case QF_MSG_CANCEL:
        assert_int_equal(a->u.runref.run_id, b->u.runref.run_id);
        break;
    case QF_MSG_REPLY:
        assert_int_equal(a->u.reply.ok, b->u.reply.ok);
        assert_string_equal(a->u.reply.error, b->u.reply.error);
        assert_int_equal(a->u.reply.run_id, b->u.reply.run_id);
        if (a->u.reply.json || b->u.reply.json) {
            assert_non_null(a->u.reply.json);
            assert_non_null(b->u.reply.json);
            assert_string_equal(a->u.reply.json, b->u.reply.json);
        }
        break;
    default:
        fail_msg("assert_msg_equal: type %d", (int)a->type);
    }
}

/* Encodes m (must succeed) into a fresh buffer. */
static void encode_ok(const qf_msg *m, void **buf, size_t *len)
{
    int rc = qf_wire_encode(m, buf, len);
    if (rc != 0)
        fail_msg("encode %s: %s", qf_msg_type_name(m->type), qf_err_name(rc));
    assert_non_null(*buf);
    assert_true(*len > 0);
}

static void round_trip(const qf_msg *m)
{
    void *buf;
    size_t len;
    encode_ok(m, &buf, &len);
    qf_wire_limits lim = qf_wire_default_limits();
    qf_msg back;
    char why[256] = "";
    int rc = qf_wire_decode(buf, len, &lim, &back, why, sizeof why);
    if (rc != 0)
        fail_msg("decode %s: %s: %s", qf_msg_type_name(m->type), qf_err_name(rc), why);
    assert_msg_equal(m, &back);
    qf_msg_clear(&back);
    free(buf);
}

static void test_round_trip_all(void **state)
{
    (void)state;
    for (int t = 1; t <= N_TYPES; t++) {
        qf_msg m;
        make_msg(t, &m);
        round_trip(&m);
        qf_msg_clear(&m);
        assert_int_equal(m.type, 0);
        assert_int_equal(m.id, 0);
    }
    qf_msg_clear(NULL);
}

static void test_round_trip_edges(void **state)
{
    (void)state;
    qf_msg m;
    /* RESULT without metrics, no samples, failure status, non-finite doubles */
    make_msg(QF_MSG_RESULT, &m);
    qf_job_result *r = &m.u.result.result;
    free(r->samples);
    r->samples = NULL;
    r->n_samples = 0;
    r->has_metrics = false;
    r->status = QF_JOB_CRASHED;
    r->dataset_sha256[0] = '\0';
    r->bpw = NAN;
    r->wall_s = 0.0;
    round_trip(&m);
    /* non-finite values travel as nil: NaN everywhere, +inf for snr_db */
    r->has_metrics = true;
    r->metrics = (qf_job_metrics){ .rmse = NAN, .nmse = NAN, .snr_db = INFINITY, .max_abs = NAN,
                                   .cosine = -1.0 };
    r->n_samples = 3;
    r->samples = malloc(3 * sizeof *r->samples);
    assert_non_null(r->samples);
    r->samples[0] = NAN;
    r->samples[1] = 0.5;
    r->samples[2] = 1e300;
    round_trip(&m);
    void *buf;
    size_t len;
    r->metrics.rmse = INFINITY;     /* -> nil -> NaN: documented loss */
    r->metrics.snr_db = -INFINITY;  /* -> nil -> +inf */
    encode_ok(&m, &buf, &len);
    qf_wire_limits lim = qf_wire_default_limits();
    qf_msg back;
    char why[256];
    assert_int_equal(qf_wire_decode(buf, len, &lim, &back, why, sizeof why), 0);
    assert_true(isnan(back.u.result.result.metrics.rmse));
    assert_true(isinf(back.u.result.result.metrics.snr_db) &&
                back.u.result.result.metrics.snr_db > 0);
    qf_msg_clear(&back);
    free(buf);
    qf_msg_clear(&m);

    /* REPLY without a document; SUBMIT without jobs or baseline; BYE without a code */
    make_msg(QF_MSG_REPLY, &m);
    free(m.u.reply.json);
    m.u.reply.json = NULL;
    m.u.reply.ok = false;
    strcpy(m.u.reply.error, "run 99: no such run");
    round_trip(&m);
    qf_msg_clear(&m);

    make_msg(QF_MSG_SUBMIT, &m);
    free(m.u.submit.jobs);
    m.u.submit.jobs = NULL;
    m.u.submit.n_jobs = 0;
    m.u.submit.baseline[0] = '\0';
    m.u.submit.dirty = false;
    round_trip(&m);
    qf_msg_clear(&m);

    /* extremes of the integer ranges */
    make_msg(QF_MSG_JOB, &m);
    m.id = UINT64_MAX;
    m.u.job.attempt = UINT32_MAX;
    m.u.job.spec.priority = INT32_MIN;
    m.u.job.spec.seed = (uint64_t)INT64_MAX;
    m.u.job.spec.rows = 1;
    m.u.job.spec.warmup = 0;
    round_trip(&m);
    m.u.job.spec.priority = INT32_MAX;
    round_trip(&m);
    qf_msg_clear(&m);

    /* strings at their exact limit */
    make_msg(QF_MSG_HELLO, &m);
    memset(m.u.hello.name, 'n', sizeof m.u.hello.name - 1);
    memset(m.u.hello.isa, 'i', sizeof m.u.hello.isa - 1);
    round_trip(&m);
    qf_msg_clear(&m);
}

/* ---- building frames the codec would never write ----------------------------------------- */

typedef struct frame {
    msgpack_sbuffer sb;
    msgpack_packer  pk;
} frame;

static void frame_init(frame *f)
{
    msgpack_sbuffer_init(&f->sb);
    msgpack_packer_init(&f->pk, &f->sb, msgpack_sbuffer_write);
}

static void pack_cstr(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str(pk, strlen(s));
    msgpack_pack_str_body(pk, s, strlen(s));
}

/* What to do to one key of the body (or of a map inside the body: "spec.rows"). */
typedef enum { EDIT_DROP, EDIT_REPLACE, EDIT_DUPLICATE } edit_kind;
typedef void (*value_fn)(msgpack_packer *pk, const msgpack_object *old);

typedef struct edit {
    const char *path;
    edit_kind   kind;
    value_fn    value;  /* EDIT_REPLACE: packs the new value */
} edit;

static bool key_is(const msgpack_object *k, const char *s, size_t n)
{
    return k->type == MSGPACK_OBJECT_STR && k->via.str.size == n &&
           memcmp(k->via.str.ptr, s, n) == 0;
}

static void pack_map_edited(msgpack_packer *pk, const msgpack_object *map, const edit *e,
                            bool *hit)
{
    const char *dot = strchr(e->path, '.');
    size_t klen = dot ? (size_t)(dot - e->path) : strlen(e->path);
    uint32_t n = map->via.map.size;
    bool present = false;
    for (uint32_t i = 0; i < n; i++)
        present |= key_is(&map->via.map.ptr[i].key, e->path, klen);
    uint32_t out_n = n;
    if (present && !dot && e->kind == EDIT_DROP)
        out_n--;
    if (present && !dot && e->kind == EDIT_DUPLICATE)
        out_n++;
    msgpack_pack_map(pk, out_n);
    for (uint32_t i = 0; i < n; i++) {
        const msgpack_object_kv *kv = &map->via.map.ptr[i];
        if (!key_is(&kv->key, e->path, klen)) {
            msgpack_pack_object(pk, kv->key);
            msgpack_pack_object(pk, kv->val);
            continue;
        }
        if (dot) { /* descend one level */
            msgpack_pack_object(pk, kv->key);
            edit sub = { dot + 1, e->kind, e->value };
            assert_int_equal(kv->val.type, MSGPACK_OBJECT_MAP);
            pack_map_edited(pk, &kv->val, &sub, hit);
            continue;
        }
        *hit = true;
        if (e->kind == EDIT_DROP)
            continue;
        msgpack_pack_object(pk, kv->key);
        if (e->kind == EDIT_REPLACE) {
            e->value(pk, &kv->val);
        } else {
            msgpack_pack_object(pk, kv->val);
            msgpack_pack_object(pk, kv->key);
            msgpack_pack_object(pk, kv->val);
        }
    }
}

/* Re-encodes a valid frame with one edit to its body; caller frees *out. */
static void rebuild(const void *buf, size_t len, const edit *e, char **out, size_t *out_len)
{
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    assert_int_equal(msgpack_unpack_next(&u, buf, len, &off), MSGPACK_UNPACK_SUCCESS);
    const msgpack_object *env = u.data.via.array.ptr;
    frame f;
    frame_init(&f);
    msgpack_pack_array(&f.pk, 4);
    for (int i = 0; i < 3; i++)
        msgpack_pack_object(&f.pk, env[i]);
    bool hit = false;
    pack_map_edited(&f.pk, &env[3], e, &hit);
    if (!hit)
        fail_msg("rebuild: no key '%s' in the body", e->path);
    msgpack_unpacked_destroy(&u);
    *out_len = f.sb.size;
    *out = msgpack_sbuffer_release(&f.sb);
}

/* Decodes a frame that must be refused with err, naming needle (if given) in the reason. */
static void expect_refused(const void *buf, size_t len, const qf_wire_limits *lim, int err,
                           const char *needle, const char *what)
{
    qf_msg m;
    char why[256] = "";
    int rc = qf_wire_decode(buf, len, lim, &m, why, sizeof why);
    if (rc != err)
        fail_msg("%s: expected %s, got %s (%s)", what, qf_err_name(err), qf_err_name(rc), why);
    if (!why[0])
        fail_msg("%s: refused without a reason", what);
    if (needle && !strstr(why, needle))
        fail_msg("%s: reason '%s' does not contain '%s'", what, why, needle);
    assert_int_equal(m.type, 0);
}

static void expect_edit_refused(int type, const edit *e, int err, const char *needle)
{
    qf_msg m;
    make_msg(type, &m);
    void *buf;
    size_t len;
    encode_ok(&m, &buf, &len);
    char *bad;
    size_t bad_len;
    rebuild(buf, len, e, &bad, &bad_len);
    char what[128];
    snprintf(what, sizeof what, "%s edit of %s", qf_msg_type_name(type), e->path);
    qf_wire_limits lim = qf_wire_default_limits();
    expect_refused(bad, bad_len, &lim, err, needle, what);
    free(bad);
    free(buf);
    qf_msg_clear(&m);
}

/* Every key of a valid frame's body, for the generic edits below. */
static int body_keys(int type, char keys[32][32])
{
    qf_msg m;
    make_msg(type, &m);
    void *buf;
    size_t len;
    encode_ok(&m, &buf, &len);
    msgpack_unpacked u;
    msgpack_unpacked_init(&u);
    size_t off = 0;
    assert_int_equal(msgpack_unpack_next(&u, buf, len, &off), MSGPACK_UNPACK_SUCCESS);
    const msgpack_object *body = &u.data.via.array.ptr[3];
    int n = (int)body->via.map.size;
    assert_true(n <= 32);
    for (int i = 0; i < n; i++) {
        const msgpack_object *k = &body->via.map.ptr[i].key;
        snprintf(keys[i], 32, "%.*s", (int)k->via.str.size, k->via.str.ptr);
    }
    msgpack_unpacked_destroy(&u);
    free(buf);
    qf_msg_clear(&m);
    return n;
}

static void test_missing_keys(void **state)
{
    (void)state;
    for (int t = 1; t <= N_TYPES; t++) {
        char keys[32][32];
        int n = body_keys(t, keys);
        for (int i = 0; i < n; i++) {
            edit e = { keys[i], EDIT_DROP, NULL };
            char needle[64];
            snprintf(needle, sizeof needle, "body.%.31s: missing", keys[i]);
            if ((t == QF_MSG_BYE && strcmp(keys[i], "code") == 0) ||
                (t == QF_MSG_REJECT && strcmp(keys[i], "busy") == 0) ||
                (t == QF_MSG_RESULT && (strcmp(keys[i], "device_mem_bytes") == 0 ||
                                        strcmp(keys[i], "model") == 0)))
                continue; /* optional: checked below */
            expect_edit_refused(t, &e, QF_EPROTO, needle);
        }
    }
    /* every spec key is required too */
    const char *spec_keys[] = { "kind", "format", "dataset", "rows", "cols", "reps", "warmup",
                                "threads", "seed", "timeout_ms", "priority", "selector" };
    for (int i = 0; i < 12; i++) {
        char path[32], needle[64];
        snprintf(path, sizeof path, "spec.%s", spec_keys[i]);
        snprintf(needle, sizeof needle, "body.spec.%s: missing", spec_keys[i]);
        edit e = { path, EDIT_DROP, NULL };
        expect_edit_refused(QF_MSG_JOB, &e, QF_EPROTO, needle);
    }
    /* REJECT's busy is optional (an older agent does not send it): false when absent */
    {
        qf_msg r;
        make_msg(QF_MSG_REJECT, &r);
        r.u.jobref.busy = true;
        void *rb;
        size_t rlen;
        encode_ok(&r, &rb, &rlen);
        char *nob;
        size_t nob_len;
        edit eb = { "busy", EDIT_DROP, NULL };
        rebuild(rb, rlen, &eb, &nob, &nob_len);
        qf_wire_limits l2 = qf_wire_default_limits();
        qf_msg rback;
        char rwhy[256] = "";
        if (qf_wire_decode(nob, nob_len, &l2, &rback, rwhy, sizeof rwhy) != 0)
            fail_msg("REJECT without busy refused: %s", rwhy);
        assert_false(rback.u.jobref.busy);
        qf_msg_clear(&rback);
        free(rb);
        free(nob);
        qf_msg_clear(&r);
    }
    /* RESULT's device_mem_bytes is optional (an older agent does not send it): 0 when absent */
    {
        qf_msg r;
        make_msg(QF_MSG_RESULT, &r);
        r.u.result.result.device_mem_bytes = 123;
        void *rb;
        size_t rlen;
        encode_ok(&r, &rb, &rlen);
        char *nob;
        size_t nob_len;
        edit drop = { "device_mem_bytes", EDIT_DROP, NULL };
        rebuild(rb, rlen, &drop, &nob, &nob_len);
        qf_wire_limits l3 = qf_wire_default_limits();
        qf_msg rback;
        char rwhy[256] = "";
        if (qf_wire_decode(nob, nob_len, &l3, &rback, rwhy, sizeof rwhy) != 0)
            fail_msg("RESULT without device_mem_bytes refused: %s", rwhy);
        assert_int_equal(rback.u.result.result.device_mem_bytes, 0);
        qf_msg_clear(&rback);
        /* and "model" (an eval job's numbers) is optional too: absent, the result has none */
        edit drop_model = { "model", EDIT_DROP, NULL };
        free(nob);
        rebuild(rb, rlen, &drop_model, &nob, &nob_len);
        if (qf_wire_decode(nob, nob_len, &l3, &rback, rwhy, sizeof rwhy) != 0)
            fail_msg("RESULT without model refused: %s", rwhy);
        assert_false(rback.u.result.result.has_model);
        qf_msg_clear(&rback);
        free(rb);
        free(nob);
        qf_msg_clear(&r);
    }
    /* BYE's code is optional */
    qf_msg m;
    make_msg(QF_MSG_BYE, &m);
    void *buf;
    size_t len;
    encode_ok(&m, &buf, &len);
    char *bad;
    size_t bad_len;
    edit e = { "code", EDIT_DROP, NULL };
    rebuild(buf, len, &e, &bad, &bad_len);
    qf_wire_limits lim = qf_wire_default_limits();
    qf_msg back;
    char why[256] = "";
    if (qf_wire_decode(bad, bad_len, &lim, &back, why, sizeof why) != 0)
        fail_msg("BYE without code refused: %s", why);
    assert_string_equal(back.u.error.code, "");
    qf_msg_clear(&back);
    free(bad);
    free(buf);
}

/* A value of another type than the old one: an integer for a string, a string otherwise. */
static void v_wrong_type(msgpack_packer *pk, const msgpack_object *old)
{
    if (old->type == MSGPACK_OBJECT_STR)
        msgpack_pack_int(pk, 7);
    else
        pack_cstr(pk, "x");
}

static void test_wrong_types(void **state)
{
    (void)state;
    for (int t = 1; t <= N_TYPES; t++) {
        char keys[32][32];
        int n = body_keys(t, keys);
        for (int i = 0; i < n; i++) {
            edit e = { keys[i], EDIT_REPLACE, v_wrong_type };
            char needle[64];
            snprintf(needle, sizeof needle, "body.%.31s", keys[i]);
            expect_edit_refused(t, &e, QF_EPROTO, needle);
        }
    }
    const char *spec_keys[] = { "kind", "format", "dataset", "rows", "cols", "reps", "warmup",
                                "threads", "seed", "timeout_ms", "priority", "selector" };
    for (int i = 0; i < 12; i++) {
        char path[32], needle[64];
        snprintf(path, sizeof path, "spec.%s", spec_keys[i]);
        snprintf(needle, sizeof needle, "body.spec.%s: expected", spec_keys[i]);
        edit e = { path, EDIT_REPLACE, v_wrong_type };
        expect_edit_refused(QF_MSG_JOB, &e, QF_EPROTO, needle);
    }
    const char *metric_keys[] = { "rmse", "nmse", "snr_db", "max_abs", "cosine" };
    for (int i = 0; i < 5; i++) {
        char path[32], needle[64];
        snprintf(path, sizeof path, "metrics.%s", metric_keys[i]);
        snprintf(needle, sizeof needle, "body.metrics.%s: expected", metric_keys[i]);
        edit e = { path, EDIT_REPLACE, v_wrong_type };
        expect_edit_refused(QF_MSG_RESULT, &e, QF_EPROTO, needle);
    }
}

static size_t g_len;            /* the length v_long_str packs */
static void v_long_str(msgpack_packer *pk, const msgpack_object *old)
{
    (void)old;
    char *s = malloc(g_len + 1);
    assert_non_null(s);
    memset(s, 'a', g_len);
    msgpack_pack_str(pk, g_len);
    msgpack_pack_str_body(pk, s, g_len);
    free(s);
}

static void test_string_limits(void **state)
{
    (void)state;
    const struct { int type; const char *path; size_t max; bool max_ok; } cases[] = {
        { QF_MSG_HELLO, "name", 63, true },     { QF_MSG_HELLO, "version", 31, true },
        { QF_MSG_HELLO, "commit", 47, true },   { QF_MSG_HELLO, "arch", 15, true },
        { QF_MSG_HELLO, "isa", 255, true },     { QF_MSG_HELLO, "backends", 63, true },
        { QF_MSG_REJECT, "reason", 255, true }, { QF_MSG_RESULT, "error", 255, true },
        { QF_MSG_RESULT, "kernel", 31, true },  { QF_MSG_ERROR, "code", 31, true },
        { QF_MSG_ERROR, "reason", 255, true },  { QF_MSG_BYE, "reason", 255, true },
        { QF_MSG_SUBMIT, "suite", 63, true },   { QF_MSG_SUBMIT, "commit", 47, true },
        { QF_MSG_SUBMIT, "branch", 63, true },  { QF_MSG_REPLY, "error", 255, true },
        { QF_MSG_SUBMIT, "baseline", 23, false }, { QF_MSG_JOB, "spec.kind", 15, false },
        { QF_MSG_JOB, "spec.format", 23, false }, { QF_MSG_JOB, "spec.dataset", 63, false },
        { QF_MSG_JOB, "spec.selector", 255, false },
        { QF_MSG_RESULT, "dataset_sha256", 64, false },
    };
    qf_wire_limits lim = qf_wire_default_limits();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char needle[64];
        snprintf(needle, sizeof needle, "body.%s: %zu bytes is over", cases[i].path,
                 cases[i].max + 1);
        g_len = cases[i].max + 1;
        edit e = { cases[i].path, EDIT_REPLACE, v_long_str };
        expect_edit_refused(cases[i].type, &e, QF_EPROTO, needle);
        if (!cases[i].max_ok)
            continue;
        /* the longest allowed string is accepted, whole */
        g_len = cases[i].max;
        qf_msg m, back;
        make_msg(cases[i].type, &m);
        void *buf;
        size_t len;
        encode_ok(&m, &buf, &len);
        char *b2;
        size_t l2;
        rebuild(buf, len, &e, &b2, &l2);
        char why[256] = "";
        if (qf_wire_decode(b2, l2, &lim, &back, why, sizeof why) != 0)
            fail_msg("%s %s at %zu bytes refused: %s", qf_msg_type_name(cases[i].type),
                     cases[i].path, cases[i].max, why);
        qf_msg_clear(&back);
        free(b2);
        free(buf);
        qf_msg_clear(&m);
    }
    /* the fingerprint has its own limit, and that one is QF_ETOOBIG */
    g_len = QF_WIRE_FINGERPRINT_MAX + 1;
    edit e = { "fingerprint", EDIT_REPLACE, v_long_str };
    expect_edit_refused(QF_MSG_HELLO, &e, QF_ETOOBIG, "body.fingerprint");
}

static int64_t g_int;
static void v_int(msgpack_packer *pk, const msgpack_object *old)
{
    (void)old;
    msgpack_pack_int64(pk, g_int);
}
static uint64_t g_uint;
static void v_uint(msgpack_packer *pk, const msgpack_object *old)
{
    (void)old;
    msgpack_pack_uint64(pk, g_uint);
}

static void test_integer_ranges(void **state)
{
    (void)state;
    /* every unsigned field refuses -1 */
    for (int t = 1; t <= N_TYPES; t++) {
        char keys[32][32];
        int n = body_keys(t, keys);
        qf_msg m;
        make_msg(t, &m);
        void *buf;
        size_t len;
        encode_ok(&m, &buf, &len);
        msgpack_unpacked u;
        msgpack_unpacked_init(&u);
        size_t off = 0;
        assert_int_equal(msgpack_unpack_next(&u, buf, len, &off), MSGPACK_UNPACK_SUCCESS);
        const msgpack_object *body = &u.data.via.array.ptr[3];
        for (int i = 0; i < n; i++) {
            if (body->via.map.ptr[i].val.type != MSGPACK_OBJECT_POSITIVE_INTEGER)
                continue;
            g_int = -1;
            edit e = { keys[i], EDIT_REPLACE, v_int };
            char needle[64];
            snprintf(needle, sizeof needle, "body.%.31s: -1 is not an integer", keys[i]);
            expect_edit_refused(t, &e, QF_EPROTO, needle);
        }
        msgpack_unpacked_destroy(&u);
        free(buf);
        qf_msg_clear(&m);
    }

    const struct { int type; const char *path; bool neg; int64_t s; uint64_t u; } bad[] = {
        { QF_MSG_JOB, "job_id", false, 0, 0 },
        { QF_MSG_JOB, "job_id", false, 0, (uint64_t)INT64_MAX + 1 },
        { QF_MSG_JOB, "attempt", false, 0, 0 },
        { QF_MSG_JOB, "attempt", false, 0, (uint64_t)UINT32_MAX + 1 },
        { QF_MSG_HELLO, "slots", false, 0, 0 },
        { QF_MSG_HELLO, "slots", false, 0, 1025 },
        { QF_MSG_WELCOME, "heartbeat_ms", false, 0, 0 },
        { QF_MSG_WELCOME, "max_frame", false, 0, 1023 },
        { QF_MSG_HEARTBEAT, "running", false, 0, 1025 },
        { QF_MSG_SUBMIT, "max_attempts", false, 0, 101 },
        { QF_MSG_JOB, "spec.rows", false, 0, 0 },
        { QF_MSG_JOB, "spec.rows", true, -4096, 0 },
        { QF_MSG_JOB, "spec.rows", false, 0, QF_JOB_MAX_DIM + 1 },
        { QF_MSG_JOB, "spec.cols", false, 0, UINT64_MAX },
        { QF_MSG_JOB, "spec.reps", false, 0, 0 },
        { QF_MSG_JOB, "spec.reps", true, -1, 0 },
        { QF_MSG_JOB, "spec.threads", false, 0, QF_JOB_MAX_THREADS + 1 },
        { QF_MSG_JOB, "spec.seed", false, 0, (uint64_t)INT64_MAX + 1 },
        { QF_MSG_JOB, "spec.timeout_ms", false, 0, 0 },
        { QF_MSG_JOB, "spec.priority", true, (int64_t)INT32_MIN - 1, 0 },
        { QF_MSG_JOB, "spec.priority", false, 0, (uint64_t)INT32_MAX + 1 },
        { QF_MSG_PROGRESS, "done", false, 0, 11 },     /* over total (10) */
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        g_int = bad[i].s;
        g_uint = bad[i].u;
        edit e = { bad[i].path, EDIT_REPLACE, bad[i].neg ? v_int : v_uint };
        char needle[64];
        snprintf(needle, sizeof needle, "body.%s", bad[i].path);
        expect_edit_refused(bad[i].type, &e, QF_EPROTO, needle);
    }
}

static const char *g_str;
static void v_str(msgpack_packer *pk, const msgpack_object *old)
{
    (void)old;
    pack_cstr(pk, g_str);
}
static void v_str_nul(msgpack_packer *pk, const msgpack_object *old)
{
    (void)old;
    msgpack_pack_str(pk, 5);
    msgpack_pack_str_body(pk, "ab\0cd", 5);
}
static void v_bin(msgpack_packer *pk, const msgpack_object *old)
{
    (void)old;
    msgpack_pack_bin(pk, 3);
    msgpack_pack_bin_body(pk, "abc", 3);
}
static void v_nil(msgpack_packer *pk, const msgpack_object *old)
{
    (void)old;
    msgpack_pack_nil(pk);
}

static void test_field_content(void **state)
{
    (void)state;
    const struct { int type; const char *path; value_fn fn; const char *str; const char *needle;
    } bad[] = {
        { QF_MSG_HELLO, "name", v_str, "", "body.name: must not be empty" },
        { QF_MSG_HELLO, "name", v_str, "lab\xff", "body.name: not valid UTF-8" },
        { QF_MSG_HELLO, "name", v_str, "lab\xc0\xaf", "body.name: not valid UTF-8" },
        { QF_MSG_HELLO, "name", v_str, "\xed\xa0\x80", "body.name: not valid UTF-8" },
        { QF_MSG_HELLO, "name", v_str_nul, NULL, "body.name: contains a NUL" },
        { QF_MSG_HELLO, "name", v_bin, NULL, "body.name: expected a string, got binary" },
        { QF_MSG_HELLO, "fingerprint", v_str, "[1,2]", "body.fingerprint: not a JSON object" },
        { QF_MSG_HELLO, "fingerprint", v_str, "{\"a\":", "body.fingerprint: not JSON" },
        { QF_MSG_HELLO, "fingerprint", v_nil, NULL, "body.fingerprint: expected a string" },
        { QF_MSG_REPLY, "json", v_str, "null", "body.json: not" },
        { QF_MSG_RESULT, "status", v_str, "OK", "body.status: unknown status" },
        { QF_MSG_RESULT, "status", v_str, "a-very-long-status-name", "body.status" },
        { QF_MSG_RESULT, "dataset_sha256", v_str, "abc", "body.dataset_sha256" },
        { QF_MSG_RESULT, "dataset_sha256", v_str,
          "0123456789ABCDEF0123456789abcdef0123456789abcdef0123456789abcdef",
          "body.dataset_sha256" },
        { QF_MSG_RESULT, "metrics", v_str, "none", "body.metrics: expected a map or nil" },
        { QF_MSG_SUBMIT, "baseline", v_str, "q9_9", "body.baseline: unknown format" },
        { QF_MSG_SUBMIT, "suite", v_str, "", "body.suite: must not be empty" },
        { QF_MSG_ERROR, "code", v_str, "", "body.code: must not be empty" },
        { QF_MSG_JOB, "spec.cols", NULL, NULL, "body.spec.cols: 100 is not a multiple" },
        { QF_MSG_JOB, "spec.dataset", v_str, "synth:cauchy", "body.spec.dataset: unknown" },
        { QF_MSG_JOB, "spec.kind", v_str, "matmul", "body.spec.kind: unknown" },
        { QF_MSG_JOB, "spec.format", v_str, "q8_K", "body.spec.format" },
        { QF_MSG_JOB, "spec.selector", v_str, "gpu=1", "body.spec.selector" },
        { QF_MSG_JOB, "spec", v_nil, NULL, "body.spec: expected a map, got nil" },
        { QF_MSG_SUBMIT, "jobs", v_nil, NULL, "body.jobs: expected an array, got nil" },
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        g_str = bad[i].str;
        g_uint = 100;
        edit e = { bad[i].path, EDIT_REPLACE, bad[i].fn ? bad[i].fn : v_uint };
        expect_edit_refused(bad[i].type, &e, QF_EPROTO, bad[i].needle);
    }
    /* a key twice */
    edit dup = { "slots", EDIT_DUPLICATE, NULL };
    expect_edit_refused(QF_MSG_HELLO, &dup, QF_EPROTO, "body.slots: key appears twice");
}

static void test_field_leniency(void **state)
{
    (void)state;
    /* floats accept float32 and integers; unknown keys are ignored */
    qf_msg m;
    make_msg(QF_MSG_RESULT, &m);
    frame f;
    frame_init(&f);
    msgpack_packer *pk = &f.pk;
    msgpack_pack_array(pk, 4);
    msgpack_pack_uint8(pk, 1);
    msgpack_pack_uint8(pk, QF_MSG_RESULT);
    msgpack_pack_uint8(pk, 9);
    msgpack_pack_map(pk, 16);
    pack_cstr(pk, "job_id"); msgpack_pack_uint8(pk, 1);
    pack_cstr(pk, "attempt"); msgpack_pack_uint8(pk, 1);
    pack_cstr(pk, "status"); pack_cstr(pk, "failed");
    pack_cstr(pk, "error"); pack_cstr(pk, "oops");
    pack_cstr(pk, "samples"); msgpack_pack_array(pk, 3);
    msgpack_pack_float(pk, 0.5f); msgpack_pack_int(pk, -2); msgpack_pack_nil(pk);
    pack_cstr(pk, "metrics"); msgpack_pack_map(pk, 5);
    pack_cstr(pk, "rmse"); msgpack_pack_float(pk, 0.25f);
    pack_cstr(pk, "nmse"); msgpack_pack_uint64(pk, 3);
    pack_cstr(pk, "snr_db"); msgpack_pack_nil(pk);
    pack_cstr(pk, "max_abs"); msgpack_pack_nil(pk);
    pack_cstr(pk, "cosine"); msgpack_pack_double(pk, 1.0);
    pack_cstr(pk, "bytes"); msgpack_pack_uint8(pk, 0);
    pack_cstr(pk, "bpw"); msgpack_pack_int(pk, 4);
    pack_cstr(pk, "throughput_bytes"); msgpack_pack_uint8(pk, 0);
    pack_cstr(pk, "dataset_sha256"); pack_cstr(pk, "");
    pack_cstr(pk, "kernel"); pack_cstr(pk, "ref");
    pack_cstr(pk, "seed"); msgpack_pack_uint8(pk, 0);
    pack_cstr(pk, "peak_rss_kb"); msgpack_pack_uint8(pk, 0);
    pack_cstr(pk, "wall_s"); msgpack_pack_float(pk, 2.0f);
    pack_cstr(pk, "future_field"); msgpack_pack_array(pk, 2);
    msgpack_pack_nil(pk); msgpack_pack_map(pk, 0);
    msgpack_pack_int(pk, 5); pack_cstr(pk, "a non-string key of an unknown field");
    qf_msg_clear(&m);

    qf_wire_limits lim = qf_wire_default_limits();
    char why[256] = "";
    /* a non-string key is refused, even an unknown one */
    int rc = qf_wire_decode(f.sb.data, f.sb.size, &lim, &m, why, sizeof why);
    assert_int_equal(rc, QF_EPROTO);
    assert_non_null(strstr(why, "not a string"));
    msgpack_sbuffer_destroy(&f.sb);

    frame_init(&f);
    pk = &f.pk;
    msgpack_pack_array(pk, 4);
    msgpack_pack_uint8(pk, 1);
    msgpack_pack_uint8(pk, QF_MSG_PROGRESS);
    msgpack_pack_uint64(pk, 77);
    msgpack_pack_map(pk, 5);
    pack_cstr(pk, "job_id"); msgpack_pack_int8(pk, 5);    /* signed encoding, positive value */
    pack_cstr(pk, "attempt"); msgpack_pack_uint64(pk, 1);
    pack_cstr(pk, "done"); msgpack_pack_uint8(pk, 0);
    pack_cstr(pk, "total"); msgpack_pack_uint32(pk, 0);
    pack_cstr(pk, "x-note"); pack_cstr(pk, "ignored");
    rc = qf_wire_decode(f.sb.data, f.sb.size, &lim, &m, why, sizeof why);
    if (rc)
        fail_msg("PROGRESS with an extra key refused: %s", why);
    assert_int_equal(m.id, 77);
    assert_int_equal(m.u.jobref.job_id, 5);
    qf_msg_clear(&m);
    msgpack_sbuffer_destroy(&f.sb);

    /* the RESULT again without the bad key: float32, integers and nil decode as documented */
    frame_init(&f);
    pk = &f.pk;
    msgpack_pack_array(pk, 4);
    msgpack_pack_uint8(pk, 1);
    msgpack_pack_uint8(pk, QF_MSG_RESULT);
    msgpack_pack_uint8(pk, 9);
    msgpack_pack_map(pk, 14);
    pack_cstr(pk, "job_id"); msgpack_pack_uint8(pk, 1);
    pack_cstr(pk, "attempt"); msgpack_pack_uint8(pk, 1);
    pack_cstr(pk, "status"); pack_cstr(pk, "failed");
    pack_cstr(pk, "error"); pack_cstr(pk, "oops");
    pack_cstr(pk, "samples"); msgpack_pack_array(pk, 3);
    msgpack_pack_float(pk, 0.5f); msgpack_pack_int(pk, -2); msgpack_pack_nil(pk);
    pack_cstr(pk, "metrics"); msgpack_pack_map(pk, 5);
    pack_cstr(pk, "rmse"); msgpack_pack_float(pk, 0.25f);
    pack_cstr(pk, "nmse"); msgpack_pack_uint64(pk, 3);
    pack_cstr(pk, "snr_db"); msgpack_pack_nil(pk);
    pack_cstr(pk, "max_abs"); msgpack_pack_nil(pk);
    pack_cstr(pk, "cosine"); msgpack_pack_double(pk, 1.0);
    pack_cstr(pk, "bytes"); msgpack_pack_uint8(pk, 0);
    pack_cstr(pk, "bpw"); msgpack_pack_int(pk, 4);
    pack_cstr(pk, "throughput_bytes"); msgpack_pack_uint8(pk, 0);
    pack_cstr(pk, "dataset_sha256"); pack_cstr(pk, "");
    pack_cstr(pk, "kernel"); pack_cstr(pk, "ref");
    pack_cstr(pk, "seed"); msgpack_pack_uint8(pk, 0);
    pack_cstr(pk, "peak_rss_kb"); msgpack_pack_uint8(pk, 0);
    pack_cstr(pk, "wall_s"); msgpack_pack_float(pk, 2.0f);
    rc = qf_wire_decode(f.sb.data, f.sb.size, &lim, &m, why, sizeof why);
    if (rc)
        fail_msg("RESULT with float32/int/nil numbers refused: %s", why);
    const qf_job_result *r = &m.u.result.result;
    assert_int_equal(r->status, QF_JOB_FAILED);
    assert_int_equal(r->n_samples, 3);
    assert_double_same(r->samples[0], 0.5, "samples[0]");
    assert_double_same(r->samples[1], -2.0, "samples[1]");
    assert_true(isnan(r->samples[2]));
    assert_true(r->has_metrics);
    assert_double_same(r->metrics.rmse, 0.25, "rmse");
    assert_double_same(r->metrics.nmse, 3.0, "nmse");
    assert_true(isinf(r->metrics.snr_db) && r->metrics.snr_db > 0);
    assert_true(isnan(r->metrics.max_abs));
    assert_double_same(r->bpw, 4.0, "bpw");
    assert_double_same(r->wall_s, 2.0, "wall_s");
    qf_msg_clear(&m);
    msgpack_sbuffer_destroy(&f.sb);
}

/* ---- the envelope ----------------------------------------------------------------------- */

typedef void (*env_fn)(msgpack_packer *pk);
static void e_map(msgpack_packer *pk) { msgpack_pack_map(pk, 0); }
static void e_three(msgpack_packer *pk)
{
    msgpack_pack_array(pk, 3);
    msgpack_pack_uint8(pk, 1); msgpack_pack_uint8(pk, 3); msgpack_pack_uint8(pk, 1);
}
static void e_env(msgpack_packer *pk, int ver_kind, int type_kind, int id_kind, int body_kind)
{
    msgpack_pack_array(pk, 4);
    switch (ver_kind) {
    case 0: msgpack_pack_uint8(pk, 1); break;
    case 1: msgpack_pack_uint8(pk, 2); break;
    case 2: pack_cstr(pk, "1"); break;
    case 3: msgpack_pack_int(pk, -1); break;
    case 4: msgpack_pack_uint8(pk, 0); break;
    default: msgpack_pack_double(pk, 1.0); break;
    }
    switch (type_kind) {
    case 0: msgpack_pack_uint8(pk, QF_MSG_HEARTBEAT); break;
    case 1: msgpack_pack_uint8(pk, 0); break;
    case 2: msgpack_pack_uint8(pk, 16); break;
    case 3: msgpack_pack_uint64(pk, UINT64_MAX); break;
    case 4: msgpack_pack_int(pk, -3); break;
    default: pack_cstr(pk, "HEARTBEAT"); break;
    }
    switch (id_kind) {
    case 0: msgpack_pack_uint32(pk, 4242); break;
    case 1: msgpack_pack_int(pk, -1); break;
    default: msgpack_pack_nil(pk); break;
    }
    switch (body_kind) {
    case 0: msgpack_pack_map(pk, 1); pack_cstr(pk, "running"); msgpack_pack_uint8(pk, 1); break;
    case 1: msgpack_pack_array(pk, 1); msgpack_pack_uint8(pk, 1); break;
    case 2: msgpack_pack_nil(pk); break;
    default: pack_cstr(pk, "running=1"); break;
    }
}

static void test_envelope(void **state)
{
    (void)state;
    const struct { int v, t, i, b; const char *needle; uint64_t id; } cases[] = {
        { 0, 0, 0, 0, NULL, 4242 },                         /* valid: checked first */
        { 1, 0, 0, 0, "envelope.version", 4242 },
        { 2, 0, 0, 0, "envelope.version", 4242 },
        { 3, 0, 0, 0, "envelope.version", 4242 },
        { 4, 0, 0, 0, "envelope.version", 4242 },
        { 5, 0, 0, 0, "envelope.version", 4242 },
        { 0, 1, 0, 0, "envelope.type: unknown message type 0", 4242 },
        { 0, 2, 0, 0, "envelope.type: unknown message type 16", 4242 },
        { 0, 3, 0, 0, "envelope.type: unknown", 4242 },
        { 0, 4, 0, 0, "envelope.type", 4242 },
        { 0, 5, 0, 0, "envelope.type", 4242 },
        { 0, 0, 1, 0, "envelope.id", 0 },
        { 0, 0, 2, 0, "envelope.id", 0 },
        { 0, 0, 0, 1, "body: expected a map, got an array", 4242 },
        { 0, 0, 0, 2, "body: expected a map, got nil", 4242 },
        { 0, 0, 0, 3, "body: expected a map, got a string", 4242 },
    };
    qf_wire_limits lim = qf_wire_default_limits();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        frame f;
        frame_init(&f);
        e_env(&f.pk, cases[i].v, cases[i].t, cases[i].i, cases[i].b);
        qf_msg m;
        char why[256] = "";
        int rc = qf_wire_decode(f.sb.data, f.sb.size, &lim, &m, why, sizeof why);
        if (!cases[i].needle) {
            if (rc)
                fail_msg("valid HEARTBEAT refused: %s", why);
            assert_int_equal(m.type, QF_MSG_HEARTBEAT);
            assert_int_equal(m.u.heartbeat.running, 1);
        } else {
            if (rc != QF_EPROTO || !strstr(why, cases[i].needle))
                fail_msg("case %zu: expected QF_EPROTO naming '%s', got %s '%s'", i,
                         cases[i].needle, qf_err_name(rc), why);
            assert_int_equal(m.type, 0);
        }
        /* the id survives a refusal, so the ERROR reply can carry it */
        assert_int_equal(m.id, cases[i].id);
        qf_msg_clear(&m);
        msgpack_sbuffer_destroy(&f.sb);
    }
    env_fn others[] = { e_map, e_three };
    for (size_t i = 0; i < 2; i++) {
        frame f;
        frame_init(&f);
        others[i](&f.pk);
        expect_refused(f.sb.data, f.sb.size, &lim, QF_EPROTO, "envelope", "odd envelope");
        msgpack_sbuffer_destroy(&f.sb);
    }
    expect_refused("", 0, &lim, QF_EPROTO, "empty", "empty frame");
    expect_refused(NULL, 0, &lim, QF_EPROTO, "empty", "NULL frame");
}

/* ---- hostile bytes --------------------------------------------------------------------- */

static void test_truncation_every_prefix(void **state)
{
    (void)state;
    qf_wire_limits lim = qf_wire_default_limits();
    for (int t = 1; t <= N_TYPES; t++) {
        qf_msg m;
        make_msg(t, &m);
        void *buf;
        size_t len;
        encode_ok(&m, &buf, &len);
        for (size_t n = 0; n < len; n++) {
            char what[64];
            snprintf(what, sizeof what, "%s cut to %zu of %zu bytes", qf_msg_type_name(t), n,
                     len);
            /* a fresh allocation of exactly n bytes, so ASan sees any read past the end */
            char *cut = malloc(n ? n : 1);
            assert_non_null(cut);
            memcpy(cut, buf, n);
            expect_refused(cut, n, &lim, QF_EPROTO, "frame", what);
            free(cut);
        }
        /* and a byte too many */
        char *more = malloc(len + 1);
        assert_non_null(more);
        memcpy(more, buf, len);
        more[len] = (char)0xc0;
        expect_refused(more, len + 1, &lim, QF_EPROTO, "1 bytes after the message",
                       "trailing byte");
        free(more);
        free(buf);
        qf_msg_clear(&m);
    }
}

/* Decodes arbitrary bytes: must return; a refusal has a reason and leaves m empty; an
 * acceptance must re-encode (we can send whatever we accept). */
static void decode_anything(const void *buf, size_t len, const qf_wire_limits *lim,
                            int *accepted)
{
    qf_msg m;
    char why[256] = "";
    int rc = qf_wire_decode(buf, len, lim, &m, why, sizeof why);
    if (rc != 0) {
        if (!why[0])
            fail_msg("refused (%s) without a reason", qf_err_name(rc));
        if (rc != QF_EPROTO && rc != QF_ETOOBIG)
            fail_msg("unexpected error %s: %s", qf_err_name(rc), why);
        assert_int_equal(m.type, 0);
        return;
    }
    (*accepted)++;
    void *again;
    size_t again_len;
    rc = qf_wire_encode(&m, &again, &again_len);
    if (rc != 0)
        fail_msg("a decoded %s does not re-encode: %s", qf_msg_type_name(m.type),
                 qf_err_name(rc));
    qf_msg back;
    rc = qf_wire_decode(again, again_len, lim, &back, why, sizeof why);
    if (rc != 0)
        fail_msg("re-encoded %s refused: %s", qf_msg_type_name(m.type), why);
    assert_msg_equal(&m, &back);
    qf_msg_clear(&back);
    free(again);
    qf_msg_clear(&m);
}

static void test_random_bytes(void **state)
{
    (void)state;
    qf_rng rng;
    qf_rng_seed(&rng, 20240611);
    qf_wire_limits lim = qf_wire_default_limits();
    uint8_t buf[512];
    int accepted = 0;
    for (int it = 0; it < 20000; it++) {
        size_t len = (size_t)(qf_rng_u64(&rng) % (it % 10 == 0 ? sizeof buf : 48));
        for (size_t i = 0; i < len; i++)
            buf[i] = (uint8_t)qf_rng_u64(&rng);
        /* half the time, a plausible envelope start, to get past the first checks */
        if (len >= 4 && it % 2) {
            buf[0] = 0x94;
            buf[1] = 0x01;
            buf[2] = (uint8_t)(1 + qf_rng_u64(&rng) % N_TYPES);
        }
        uint8_t *copy = malloc(len ? len : 1);
        assert_non_null(copy);
        memcpy(copy, buf, len);
        decode_anything(copy, len, &lim, &accepted);
        free(copy);
    }
    print_message("%d of 20000 random frames were valid messages\n", accepted);
}

static void test_mutations(void **state)
{
    (void)state;
    qf_rng rng;
    qf_rng_seed(&rng, 7);
    qf_wire_limits lim = qf_wire_default_limits();
    int accepted = 0;
    for (int t = 1; t <= N_TYPES; t++) {
        qf_msg m;
        make_msg(t, &m);
        void *buf;
        size_t len;
        encode_ok(&m, &buf, &len);
        uint8_t *mut = malloc(len);
        assert_non_null(mut);
        for (int it = 0; it < 600; it++) {
            memcpy(mut, buf, len);
            int flips = 1 + (int)(qf_rng_u64(&rng) % 4);
            for (int k = 0; k < flips; k++) {
                size_t at = (size_t)(qf_rng_u64(&rng) % len);
                uint64_t r = qf_rng_u64(&rng);
                /* single bit flips, random bytes, and the values that change a size */
                mut[at] = r % 3 == 0 ? (uint8_t)(mut[at] ^ (1u << (r >> 8) % 8))
                        : r % 3 == 1 ? (uint8_t)(r >> 16) : (uint8_t)(0xdc + (r >> 16) % 4);
            }
            decode_anything(mut, len, &lim, &accepted);
        }
        free(mut);
        free(buf);
        qf_msg_clear(&m);
    }
    /* some mutants (a flipped letter inside a string) are still valid: they took the
     * decode -> encode -> decode path */
    if (accepted < 100)
        fail_msg("only %d of %d mutants decoded; the mutation test is not reaching the fields",
                 accepted, 600 * N_TYPES);
    print_message("%d of %d mutants were valid messages\n", accepted, 600 * N_TYPES);
}

static void test_oversized(void **state)
{
    (void)state;
    qf_msg m;
    make_msg(QF_MSG_SUBMIT, &m);
    void *buf;
    size_t len;
    encode_ok(&m, &buf, &len);
    qf_wire_limits lim = qf_wire_default_limits();
    lim.max_frame = len - 1;
    expect_refused(buf, len, &lim, QF_ETOOBIG, "frame", "frame over max_frame");
    lim.max_frame = len;
    lim.max_jobs = 2;
    expect_refused(buf, len, &lim, QF_ETOOBIG, "body.jobs: 3 jobs is over the limit of 2",
                   "jobs over max_jobs");
    free(buf);
    qf_msg_clear(&m);

    make_msg(QF_MSG_RESULT, &m);
    encode_ok(&m, &buf, &len);
    lim = qf_wire_default_limits();
    lim.max_samples = 4;
    expect_refused(buf, len, &lim, QF_ETOOBIG, "body.samples: 5 samples is over the limit of 4",
                   "samples over max_samples");
    free(buf);
    qf_msg_clear(&m);

    /* the size check comes first: a valid frame padded past 16 MiB is refused as too big */
    lim = qf_wire_default_limits();
    size_t big = QF_WIRE_DEFAULT_MAX_FRAME + 1;
    char *huge = calloc(1, big);
    assert_non_null(huge);
    huge[0] = (char)0x94;
    expect_refused(huge, big, &lim, QF_ETOOBIG, "over the limit", "frame of 16 MiB + 1");
    free(huge);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static void test_size_bombs(void **state)
{
    (void)state;
    qf_wire_limits lim = qf_wire_default_limits();
    const struct { const char *bytes; size_t len; const char *needle; } cases[] = {
        { "\xdd\xff\xff\xff\xff", 5, "declares 4294967295 elements" },
        { "\xdf\xff\xff\xff\xff", 5, "declares 8589934590 elements" },
        { "\xdb\xff\xff\xff\xff" "abc", 8, "truncated" },
        { "\xc9\xff\xff\xff\xff\x01", 6, "truncated" },
        { "\x94\x01\x03\x01\xdd\x00\x10\x00\x00", 9, "declares 1048576 elements" },
        /* an envelope whose body claims 2^32 - 1 entries */
        { "\x94\x01\x03\x01\xdf\xff\xff\xff\xff\xa1x\x01", 12, "declares 8589934590" },
        /* a SUBMIT whose jobs array claims 2^32 - 1 specs */
        { "\x94\x01\x0c\x01\x81\xa4jobs\xdd\xff\xff\xff\xff\x80\x80", 17, "declares 4294967295" },
        /* nested arrays deeper than any message needs */
        { "\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91\x91"
          "\xc0", 21, "nested deeper than" },
        { "\xc1", 1, "0xc1" },
    };
    double t0 = now_s();
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *copy = malloc(cases[i].len);
        assert_non_null(copy);
        memcpy(copy, cases[i].bytes, cases[i].len);
        char what[32];
        snprintf(what, sizeof what, "bomb %zu", i);
        expect_refused(copy, cases[i].len, &lim, QF_EPROTO, cases[i].needle, what);
        free(copy);
    }
    /* 100 MiB of nested one-element maps would not even fit a frame; 1 MiB of them is
     * refused at depth 16 without walking the rest */
    size_t n = 1u << 20;
    char *deep = malloc(n);
    assert_non_null(deep);
    memset(deep, 0x91, n);
    expect_refused(deep, n, &lim, QF_EPROTO, "nested deeper than", "deep nesting");
    /* a frame full of array16 headers each claiming 65535 elements */
    for (size_t i = 0; i + 3 <= n; i += 3) {
        deep[i] = (char)0xdc;
        deep[i + 1] = (char)0xff;
        deep[i + 2] = (char)0xff;
    }
    expect_refused(deep, n - n % 3, &lim, QF_EPROTO, NULL, "array16 chain");
    free(deep);
    double dt = now_s() - t0;
    if (dt > 2.0)
        fail_msg("size bombs took %.3f s to refuse", dt);
}

/* ---- encoding refuses what decoding would ------------------------------------------------ */

static void expect_encode_refused(qf_msg *m, const char *what)
{
    void *buf = (void *)1;
    size_t len = 1;
    int rc = qf_wire_encode(m, &buf, &len);
    if (rc != QF_EINVAL)
        fail_msg("%s: encode gave %s, expected QF_EINVAL", what, qf_err_name(rc));
    assert_null(buf);
    assert_int_equal(len, 0);
    qf_msg_clear(m);
}

static void test_encode_refusals(void **state)
{
    (void)state;
    qf_msg m;
    make_msg(QF_MSG_HELLO, &m);
    memset(m.u.hello.name, 'x', sizeof m.u.hello.name);
    expect_encode_refused(&m, "unterminated name");
    make_msg(QF_MSG_HELLO, &m);
    m.u.hello.name[0] = '\0';
    expect_encode_refused(&m, "empty name");
    make_msg(QF_MSG_HELLO, &m);
    strcpy(m.u.hello.arch, "x86\xff");
    expect_encode_refused(&m, "invalid UTF-8");
    make_msg(QF_MSG_HELLO, &m);
    free(m.u.hello.fingerprint);
    m.u.hello.fingerprint = NULL;
    expect_encode_refused(&m, "NULL fingerprint");
    make_msg(QF_MSG_HELLO, &m);
    free(m.u.hello.fingerprint);
    m.u.hello.fingerprint = xstrdup("[]");
    expect_encode_refused(&m, "fingerprint not an object");
    make_msg(QF_MSG_HELLO, &m);
    m.u.hello.slots = 0;
    expect_encode_refused(&m, "slots 0");
    make_msg(QF_MSG_JOB, &m);
    m.u.job.spec.cols = 100;
    expect_encode_refused(&m, "spec that does not fit q4_K");
    make_msg(QF_MSG_JOB, &m);
    m.u.job.spec.seed = UINT64_MAX;
    expect_encode_refused(&m, "seed over 2^63");
    make_msg(QF_MSG_JOB, &m);
    m.u.job.attempt = 0;
    expect_encode_refused(&m, "attempt 0");
    make_msg(QF_MSG_SUBMIT, &m);
    strcpy(m.u.submit.jobs[1].dataset, "synth:uniform");
    expect_encode_refused(&m, "SUBMIT with a bad job");
    make_msg(QF_MSG_SUBMIT, &m);
    strcpy(m.u.submit.baseline, "f8");
    expect_encode_refused(&m, "unknown baseline");
    make_msg(QF_MSG_SUBMIT, &m);
    free(m.u.submit.jobs);
    m.u.submit.jobs = NULL;
    expect_encode_refused(&m, "jobs NULL with n_jobs 3");
    make_msg(QF_MSG_RESULT, &m);
    m.u.result.result.n_samples = QF_JOB_MAX_SAMPLES + 1;
    expect_encode_refused(&m, "too many samples");
    make_msg(QF_MSG_RESULT, &m);
    m.u.result.result.status = (qf_job_status)9;
    expect_encode_refused(&m, "unknown status");
    make_msg(QF_MSG_RESULT, &m);
    strcpy(m.u.result.result.dataset_sha256, "abc");
    expect_encode_refused(&m, "short sha256");
    make_msg(QF_MSG_PROGRESS, &m);
    m.u.jobref.done = 11;
    expect_encode_refused(&m, "done over total");
    make_msg(QF_MSG_WELCOME, &m);
    m.u.welcome.agent_id = 0;
    expect_encode_refused(&m, "agent_id 0");
    make_msg(QF_MSG_CANCEL, &m);
    m.u.runref.run_id = UINT64_MAX;
    expect_encode_refused(&m, "run_id over 2^63");
    make_msg(QF_MSG_HEARTBEAT, &m);
    m.type = (qf_msg_type)0;
    expect_encode_refused(&m, "type 0");
    make_msg(QF_MSG_HEARTBEAT, &m);
    m.type = (qf_msg_type)99;
    expect_encode_refused(&m, "type 99");
}

static void test_type_names(void **state)
{
    (void)state;
    const char *names[N_TYPES + 1] = { NULL, "HELLO", "WELCOME", "HEARTBEAT", "JOB", "ACCEPT",
                                       "REJECT", "PROGRESS", "RESULT", "ACK", "ERROR", "BYE",
                                       "SUBMIT", "STATUS", "CANCEL", "REPLY" };
    for (int t = 1; t <= N_TYPES; t++)
        assert_string_equal(qf_msg_type_name(t), names[t]);
    assert_string_equal(qf_msg_type_name(0), "UNKNOWN");
    assert_string_equal(qf_msg_type_name(16), "UNKNOWN");
    assert_string_equal(qf_msg_type_name(-1), "UNKNOWN");
    qf_wire_limits lim = qf_wire_default_limits();
    assert_int_equal(lim.max_frame, QF_WIRE_DEFAULT_MAX_FRAME);
    assert_int_equal(lim.max_jobs, 100000);
    assert_int_equal(lim.max_samples, QF_JOB_MAX_SAMPLES);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_type_names),
        cmocka_unit_test(test_round_trip_all),
        cmocka_unit_test(test_round_trip_edges),
        cmocka_unit_test(test_envelope),
        cmocka_unit_test(test_missing_keys),
        cmocka_unit_test(test_wrong_types),
        cmocka_unit_test(test_string_limits),
        cmocka_unit_test(test_integer_ranges),
        cmocka_unit_test(test_field_content),
        cmocka_unit_test(test_field_leniency),
        cmocka_unit_test(test_truncation_every_prefix),
        cmocka_unit_test(test_random_bytes),
        cmocka_unit_test(test_mutations),
        cmocka_unit_test(test_oversized),
        cmocka_unit_test(test_size_bombs),
        cmocka_unit_test(test_encode_refusals),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
