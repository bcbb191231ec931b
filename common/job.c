/* job.c - job specs and results: validation, identity key, JSON forms, selectors.
 *
 * A spec arrives from outside (a suite file, a SUBMIT frame, the store's JSON column), so
 * qf_job_spec_validate is the one gate every spec passes before it is stored or run; it writes
 * its reason into `why` and never prints, because the caller decides who hears about it (an
 * ERROR frame, a suite error with a line number). Invariants a validated spec holds: every
 * string is NUL-terminated printable ASCII, the kind is one of k_kinds below (which must agree
 * with the runnable table in agent/jobs.c), the format exists, is a weight format and fits
 * the shape for kinds that need one, and every number is inside the QF_JOB_MAX_* bounds.
 * Seeds are limited to [0, 2^63) so they survive JSON (jansson) and SQLite integers exactly.
 *
 * Callers: suites (expansion), wire.c (JOB, SUBMIT), the store (JSON column), the agent (key,
 * selector). Not hot: one call per job, well below the cost of running it.
 */
#include "qf_job.h"

#include <assert.h>
#include <fnmatch.h>
#include <inttypes.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "qf_err.h"
#include "qf_formats.h"
#include "qf_manifest.h"
#include "qf_synth.h"

/* The job kinds a spec may name. agent/jobs.c holds the runnable table; a test there checks
 * both lists agree, and this one stays here so the coordinator validates without the agent. */
static const struct {
    const char *name;
    bool        needs_format;
    bool        model;          /* eval: dataset MODEL@TEXT, rows = context, cols = chunks */
} k_kinds[] = {
    { "quantize",   true,  false },
    { "dequantize", true,  false },
    { "matvec",     true,  false },
    { "framework",  true,  false },
    { "eval",       true,  true  },
    { "noop",       false, false },
};
#define N_KINDS ((int)(sizeof k_kinds / sizeof k_kinds[0]))

/* The frameworks a "framework" job may name with backend=NAME; agent/framework.c has the
 * adapters, and its test checks that both lists agree. */
static const char *const k_frameworks[] = { "ort", "llamacpp", "openvino", "mlx", "qnn" };
#define N_FRAMEWORKS ((int)(sizeof k_frameworks / sizeof k_frameworks[0]))

#define SYNTH_PREFIX "synth:"

/* 0 if s[0..cap) holds a NUL and everything before it is printable ASCII. */
static int check_text(const char *field, const char *s, size_t cap, char *why, size_t why_len)
{
    const char *nul = memchr(s, '\0', cap);
    if (!nul)
        return qf_whyf(QF_EINVAL, why, why_len, "%s: not terminated within %zu bytes", field, cap);
    for (const char *p = s; p < nul; p++) {
        if (*p < 0x20 || *p > 0x7e)
            return qf_whyf(QF_EINVAL, why, why_len, "%s: byte 0x%02x at offset %td is not "
                         "printable ASCII", field, (unsigned char)*p, p - s);
    }
    return 0;
}

static int find_kind(const char *name)
{
    for (int i = 0; i < N_KINDS; i++)
        if (strcmp(k_kinds[i].name, name) == 0)
            return i;
    return -1;
}

/* Columns must be a multiple of the weight block and of the activation block (matvec
 * quantizes x to the activation format), exactly as qf_format_check_cols demands, so a spec
 * valid here never fails there; computed from the traits because that function prints. */
static int64_t format_col_multiple(qf_format fmt)
{
    const qf_format_traits *t = qf_format_get(fmt);
    int64_t m = t->blck ? t->blck : 1;
    if (t->vec_dot_ref) {
        int64_t a = qf_format_get(t->act)->blck;
        if (a > m)
            m = a;
    }
    return m;
}

/* A generator ("synth:<dist>"), or a manifest reference ("manifest:NAME[/TENSOR]") checked
 * for syntax only: whether the manifest exists is the agent's to find out (it has the folder
 * and the cache; the coordinator may have neither). */
static int check_dataset(const char *name, char *why, size_t why_len)
{
    size_t plen = strlen(SYNTH_PREFIX);
    if (strncmp(name, SYNTH_PREFIX, plen) == 0) {
        for (int d = QF_SYNTH_GAUSSIAN; d <= QF_SYNTH_STUDENT_T; d++)
            if (strcmp(name + plen, qf_synth_dist_name((qf_synth_dist)d)) == 0)
                return 0;
    }
    if (strncmp(name, QF_MANIFEST_REF_PREFIX, strlen(QF_MANIFEST_REF_PREFIX)) == 0) {
        char mwhy[QF_JOB_ERROR_MAX];
        if (qf_manifest_ref_parse(name, NULL, NULL, mwhy, sizeof mwhy) == 0)
            return 0;
        return qf_whyf(QF_EINVAL, why, why_len, "dataset: %s", mwhy);
    }
    return qf_whyf(QF_EINVAL, why, why_len, "dataset: unknown dataset '%s' (expected "
                 "synth:gaussian, synth:laplace, synth:student-t or manifest:NAME[/TENSOR])",
                 name);
}

int qf_job_eval_dataset(const char *dataset, char *model, size_t model_len, char *text,
                        size_t text_len)
{
    assert(dataset);
    const char *at = strchr(dataset, '@');
    if (!at || strchr(at + 1, '@'))
        return QF_EINVAL;
    size_t ml = (size_t)(at - dataset);
    if (model && (ml >= model_len || strlen(at + 1) >= text_len))
        return QF_ERANGE;
    if (model) {
        memcpy(model, dataset, ml);
        model[ml] = '\0';
        strcpy(text, at + 1);
    }
    return 0;
}

/* An eval job's dataset: "MODEL@TEXT", MODEL a manifest reference (a GGUF model), TEXT either
 * "text:NAME" (datasets/texts/NAME.txt, shipped) or a manifest reference of kind text. */
static int check_eval_dataset(const char *name, char *why, size_t why_len)
{
    char model[QF_JOB_DATASET_MAX], text[QF_JOB_DATASET_MAX], mwhy[QF_JOB_ERROR_MAX];
    if (qf_job_eval_dataset(name, model, sizeof model, text, sizeof text) != 0)
        return qf_whyf(QF_EINVAL, why, why_len, "dataset: an eval job's dataset is MODEL@TEXT, "
                     "like manifest:smollm2-135m-f16@text:alice-chapter1-opening, not '%s'",
                     name);
    if (qf_manifest_ref_parse(model, NULL, NULL, mwhy, sizeof mwhy) != 0)
        return qf_whyf(QF_EINVAL, why, why_len, "dataset: the model: %s", mwhy);
    if (strncmp(text, QF_JOB_TEXT_PREFIX, strlen(QF_JOB_TEXT_PREFIX)) == 0) {
        const char *t = text + strlen(QF_JOB_TEXT_PREFIX);
        bool ok = *t && *t != '.';
        for (const char *p = t; ok && *p; p++)
            ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') ||
                 (*p >= '0' && *p <= '9') || *p == '-' || *p == '_' || *p == '.';
        if (!ok)
            return qf_whyf(QF_EINVAL, why, why_len, "dataset: the text '%s' must be text:NAME "
                         "with NAME of letters, digits, '-', '_', '.'", text);
        return 0;
    }
    if (qf_manifest_ref_parse(text, NULL, NULL, mwhy, sizeof mwhy) != 0)
        return qf_whyf(QF_EINVAL, why, why_len, "dataset: the text: %s", mwhy);
    return 0;
}

static int check_range(const char *field, int64_t v, int64_t lo, int64_t hi, char *why,
                       size_t why_len)
{
    if (v < lo || v > hi)
        return qf_whyf(QF_EINVAL, why, why_len, "%s: %" PRId64 " is not in [%" PRId64 ", %" PRId64
                     "]", field, v, lo, hi);
    return 0;
}

int qf_job_spec_validate(const qf_job_spec *s, char *why, size_t why_len)
{
    assert(s);
    int err;
    if ((err = check_text("kind", s->kind, sizeof s->kind, why, why_len)) ||
        (err = check_text("format", s->format, sizeof s->format, why, why_len)) ||
        (err = check_text("dataset", s->dataset, sizeof s->dataset, why, why_len)) ||
        (err = check_text("selector", s->selector, sizeof s->selector, why, why_len)))
        return err;

    int k = find_kind(s->kind);
    if (k < 0)
        return qf_whyf(QF_EINVAL, why, why_len, "kind: unknown job kind '%s' (expected quantize, "
                     "dequantize, matvec, framework, eval or noop)", s->kind);

    if ((err = check_range("rows", s->rows, 1, QF_JOB_MAX_DIM, why, why_len)) ||
        (err = check_range("cols", s->cols, 1, QF_JOB_MAX_DIM, why, why_len)))
        return err;
    if (s->rows * s->cols > QF_JOB_MAX_ELEMS) /* both <= 2^20: no overflow */
        return qf_whyf(QF_EINVAL, why, why_len, "rows x cols: %" PRId64 " x %" PRId64 " is over "
                     "%" PRId64 " elements", s->rows, s->cols, QF_JOB_MAX_ELEMS);

    if (s->format[0] || k_kinds[k].needs_format) {
        qf_format fmt;
        if (qf_format_from_name(s->format, &fmt) != 0)
            return qf_whyf(QF_EINVAL, why, why_len, "format: unknown format '%s'", s->format);
        if (k_kinds[k].needs_format) {
            if (!qf_format_get(fmt)->weight)
                return qf_whyf(QF_EINVAL, why, why_len, "format: %s is an activation format, "
                             "not a weight format", s->format);
            int64_t m = k_kinds[k].model ? 1 : format_col_multiple(fmt);
            if (s->cols % m != 0)
                return qf_whyf(QF_EINVAL, why, why_len, "cols: %" PRId64 " is not a multiple of "
                             "%" PRId64 " (the block size of format %s)", s->cols, m, s->format);
        }
    }

    if (k_kinds[k].model && s->rows < QF_JOB_EVAL_MIN_CTX)
        return qf_whyf(QF_EINVAL, why, why_len, "rows: an eval job's context of %" PRId64
                     " tokens is below %d", s->rows, QF_JOB_EVAL_MIN_CTX);
    if ((err = k_kinds[k].model ? check_eval_dataset(s->dataset, why, why_len)
                                : check_dataset(s->dataset, why, why_len)) ||
        (err = check_range("reps", s->reps, 1, QF_JOB_MAX_REPS, why, why_len)) ||
        (err = check_range("warmup", s->warmup, 0, QF_JOB_MAX_REPS, why, why_len)) ||
        (err = check_range("threads", s->threads, 1, QF_JOB_MAX_THREADS, why, why_len)) ||
        (err = check_range("timeout_ms", s->timeout_ms, 1, QF_JOB_MAX_TIMEOUT_MS, why,
                           why_len)))
        return err;
    if (s->seed > (uint64_t)INT64_MAX)
        return qf_whyf(QF_EINVAL, why, why_len, "seed: %" PRIu64 " is not below 2^63", s->seed);

    char swhy[QF_JOB_ERROR_MAX];
    if (qf_selector_validate(s->selector, swhy, sizeof swhy) != 0)
        return qf_whyf(QF_EINVAL, why, why_len, "selector: %s", swhy);
    if (strcmp(s->kind, "framework") == 0 && !qf_job_framework(s))
        return qf_whyf(QF_EINVAL, why, why_len, "selector: a framework job names its framework "
                     "as backend=NAME (ort, llamacpp, openvino, mlx or qnn), not '%s'",
                     s->selector);
    return 0;
}

const char *qf_job_framework(const qf_job_spec *s)
{
    assert(s);
    for (int i = 0; i < N_FRAMEWORKS; i++)
        if (qf_selector_has_term(s->selector, "backend", k_frameworks[i]))
            return k_frameworks[i];
    return NULL;
}

const char *const *qf_job_frameworks(int *n)
{
    assert(n);
    *n = N_FRAMEWORKS;
    return k_frameworks;
}

void qf_job_key(const qf_job_spec *s, char key[QF_JOB_KEY_MAX])
{
    assert(s && key);
    /* A framework job's kind part names its framework ("framework:ort"), so two frameworks
     * measuring the same format are two keys. Validated strings fit: 15 + 9 + 23 + 63 +
     * 2 x 7 + 4 + 19 digits + separators < 192. */
    const char *fw = strcmp(s->kind, "framework") == 0 ? qf_job_framework(s) : NULL;
    snprintf(key, QF_JOB_KEY_MAX, "%.*s%s%s/%.*s/%.*s/%" PRId64 "x%" PRId64 "/t%" PRIu32
             "/s%" PRIu64, (int)sizeof s->kind, s->kind, fw ? ":" : "", fw ? fw : "",
             (int)sizeof s->format, s->format,
             (int)sizeof s->dataset, s->dataset, s->rows, s->cols, s->threads, s->seed);
}

/* ---- spec <-> JSON -------------------------------------------------------------------- */

/* The spec's fields as a table, so to_json and from_json cannot disagree on a key. */
enum spec_type { ST_STR, ST_I64, ST_U32, ST_U64, ST_I32 };
static const struct {
    const char    *key;
    enum spec_type type;
    size_t         off, size;
} k_spec_fields[] = {
#define SF(name, type) { #name, type, offsetof(qf_job_spec, name), sizeof(((qf_job_spec *)0)->name) }
    SF(kind, ST_STR),      SF(format, ST_STR),  SF(dataset, ST_STR),  SF(rows, ST_I64),
    SF(cols, ST_I64),      SF(reps, ST_U32),    SF(warmup, ST_U32),   SF(threads, ST_U32),
    SF(seed, ST_U64),      SF(timeout_ms, ST_U32), SF(priority, ST_I32), SF(selector, ST_STR),
#undef SF
};
#define N_SPEC_FIELDS ((int)(sizeof k_spec_fields / sizeof k_spec_fields[0]))

char *qf_job_spec_to_json(const qf_job_spec *s)
{
    assert(s);
    json_t *o = json_object();
    bool ok = o != NULL;
    for (int i = 0; ok && i < N_SPEC_FIELDS; i++) {
        const char *p = (const char *)s + k_spec_fields[i].off;
        json_t *v = NULL;
        switch (k_spec_fields[i].type) {
        case ST_STR: v = json_stringn(p, strnlen(p, k_spec_fields[i].size)); break;
        case ST_I64: { int64_t x; memcpy(&x, p, sizeof x); v = json_integer(x); break; }
        case ST_U32: { uint32_t x; memcpy(&x, p, sizeof x); v = json_integer(x); break; }
        case ST_I32: { int32_t x; memcpy(&x, p, sizeof x); v = json_integer(x); break; }
        case ST_U64: { /* validated seeds are < 2^63; larger ones wrap, validation refuses them */
            uint64_t x; memcpy(&x, p, sizeof x); v = json_integer((json_int_t)x); break; }
        }
        ok = v && json_object_set_new(o, k_spec_fields[i].key, v) == 0;
    }
    char *text = ok ? json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER) : NULL;
    json_decref(o);
    return text;
}

int qf_job_spec_from_json(const char *json, qf_job_spec *s, char *why, size_t why_len)
{
    assert(json && s);
    memset(s, 0, sizeof *s);
    json_error_t jerr;
    json_t *o = json_loads(json, JSON_REJECT_DUPLICATES, &jerr);
    if (!o)
        return qf_whyf(QF_EPARSE, why, why_len, "spec JSON: line %d column %d: %s", jerr.line,
                     jerr.column, jerr.text);
    int err = 0;
    if (!json_is_object(o)) {
        err = qf_whyf(QF_EPARSE, why, why_len, "spec JSON: expected an object");
        goto out;
    }
    const char *key;
    json_t *v;
    json_object_foreach(o, key, v) {
        int i = 0;
        while (i < N_SPEC_FIELDS && strcmp(k_spec_fields[i].key, key) != 0)
            i++;
        if (i == N_SPEC_FIELDS) {
            err = qf_whyf(QF_EPARSE, why, why_len, "spec JSON: unknown key '%.64s'", key);
            goto out;
        }
    }
    for (int i = 0; i < N_SPEC_FIELDS; i++) {
        const char *k = k_spec_fields[i].key;
        char *p = (char *)s + k_spec_fields[i].off;
        v = json_object_get(o, k);
        if (!v) {
            err = qf_whyf(QF_EPARSE, why, why_len, "%s: missing", k);
            goto out;
        }
        if (k_spec_fields[i].type == ST_STR) {
            if (!json_is_string(v)) {
                err = qf_whyf(QF_EPARSE, why, why_len, "%s: expected a string", k);
                goto out;
            }
            size_t n = json_string_length(v);
            if (n >= k_spec_fields[i].size) {
                err = qf_whyf(QF_EPARSE, why, why_len, "%s: %zu bytes is over the limit of %zu",
                            k, n, k_spec_fields[i].size - 1);
                goto out;
            }
            memcpy(p, json_string_value(v), n + 1); /* jansson refuses \u0000 by default */
            continue;
        }
        if (!json_is_integer(v)) {
            err = qf_whyf(QF_EPARSE, why, why_len, "%s: expected an integer", k);
            goto out;
        }
        json_int_t x = json_integer_value(v);
        switch (k_spec_fields[i].type) {
        case ST_I64: { int64_t y = x; memcpy(p, &y, sizeof y); break; }
        case ST_U64:
            if (x < 0) {
                err = qf_whyf(QF_EPARSE, why, why_len, "%s: %lld is negative", k, (long long)x);
                goto out;
            } else {
                uint64_t y = (uint64_t)x;
                memcpy(p, &y, sizeof y);
            }
            break;
        case ST_U32:
            if (x < 0 || x > UINT32_MAX) {
                err = qf_whyf(QF_EPARSE, why, why_len, "%s: %lld is not in [0, %u]", k,
                            (long long)x, UINT32_MAX);
                goto out;
            } else {
                uint32_t y = (uint32_t)x;
                memcpy(p, &y, sizeof y);
            }
            break;
        case ST_I32:
            if (x < INT32_MIN || x > INT32_MAX) {
                err = qf_whyf(QF_EPARSE, why, why_len, "%s: %lld is not in [%d, %d]", k,
                            (long long)x, INT32_MIN, INT32_MAX);
                goto out;
            } else {
                int32_t y = (int32_t)x;
                memcpy(p, &y, sizeof y);
            }
            break;
        case ST_STR: break;
        }
    }
    err = qf_job_spec_validate(s, why, why_len);
out:
    json_decref(o);
    if (err)
        memset(s, 0, sizeof *s);
    return err;
}

/* ---- metrics and samples as JSON -------------------------------------------------------- */

/* JSON has no inf or NaN: they become null. 17 significant digits round-trip a double. */
static json_t *jnum(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

static char *dump_consume(json_t *j, bool ok)
{
    char *text = ok ? json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(17))
                    : NULL;
    json_decref(j);
    return text;
}

char *qf_job_metrics_to_json(const qf_job_result *r)
{
    assert(r);
    if (!r->has_metrics && !r->has_model)
        return NULL;
    json_t *o = json_object();
    bool ok = o != NULL;
    /* json_object_set_new consumes its value even on failure */
    if (r->has_metrics) {
        const qf_job_metrics *m = &r->metrics;
        ok = ok && json_object_set_new(o, "rmse", jnum(m->rmse)) == 0;
        ok = ok && json_object_set_new(o, "nmse", jnum(m->nmse)) == 0;
        ok = ok && json_object_set_new(o, "snr_db", jnum(m->snr_db)) == 0;
        ok = ok && json_object_set_new(o, "max_abs", jnum(m->max_abs)) == 0;
        ok = ok && json_object_set_new(o, "cosine", jnum(m->cosine)) == 0;
    }
    if (r->has_model) {
        const qf_job_model *m = &r->model;
        ok = ok && json_object_set_new(o, "perplexity", jnum(m->ppl)) == 0;
        ok = ok && json_object_set_new(o, "perplexity_err", jnum(m->ppl_err)) == 0;
        ok = ok && json_object_set_new(o, "perplexity_base", jnum(m->ppl_base)) == 0;
        ok = ok && json_object_set_new(o, "kld", jnum(m->kld)) == 0;
        ok = ok && json_object_set_new(o, "kld_p99", jnum(m->kld_p99)) == 0;
        ok = ok && json_object_set_new(o, "same_top", jnum(m->same_top)) == 0;
        ok = ok && json_object_set_new(o, "dp_rms", jnum(m->dp_rms)) == 0;
        ok = ok && json_object_set_new(o, "pp_tps", jnum(m->pp_tps)) == 0;
        ok = ok && json_object_set_new(o, "tg_tps", jnum(m->tg_tps)) == 0;
        ok = ok && json_object_set_new(o, "n_scored", json_integer(m->n_scored)) == 0;
    }
    return dump_consume(o, ok);
}

char *qf_job_samples_to_json(const double *samples, uint32_t n)
{
    assert(samples || n == 0);
    json_t *a = json_array();
    bool ok = a != NULL;
    for (uint32_t i = 0; ok && i < n; i++)
        ok = json_array_append_new(a, jnum(samples[i])) == 0;
    return dump_consume(a, ok);
}

/* ---- status, result ------------------------------------------------------------------- */

static const char *const k_status_names[] = {
    [QF_JOB_OK] = "ok", [QF_JOB_FAILED] = "failed", [QF_JOB_TIMEOUT] = "timeout",
    [QF_JOB_CRASHED] = "crashed",
};
#define N_STATUS ((int)(sizeof k_status_names / sizeof k_status_names[0]))

const char *qf_job_status_name(qf_job_status st)
{
    if ((unsigned)st >= (unsigned)N_STATUS)
        return "unknown";
    return k_status_names[st];
}

int qf_job_status_from_name(const char *name, qf_job_status *out)
{
    assert(name && out);
    for (int i = 0; i < N_STATUS; i++) {
        if (strcmp(k_status_names[i], name) == 0) {
            *out = (qf_job_status)i;
            return 0;
        }
    }
    return QF_EINVAL;
}

void qf_job_result_clear(qf_job_result *r)
{
    if (!r)
        return;
    free(r->samples);
    memset(r, 0, sizeof *r);
}

int qf_job_result_fail(qf_job_result *r, const char *fmt, ...)
{
    assert(r && fmt);
    free(r->samples);
    r->samples = NULL;
    r->n_samples = 0;
    r->has_metrics = false;
    r->has_model = false;
    r->status = QF_JOB_FAILED;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(r->error, sizeof r->error, fmt, ap);
    va_end(ap);
    return 0;
}

/* ---- selectors ------------------------------------------------------------------------ */

enum sel_key { SEL_ISA, SEL_ARCH, SEL_BACKEND, SEL_NAME, SEL_COUNT };
static const char *const k_sel_keys[SEL_COUNT] = { "isa", "arch", "backend", "name" };

/* Splits the next space-separated term off *p: key index, value (NUL-terminated copy in val).
 * Returns 1 for a term, 0 at the end, QF_EINVAL (reason in why) for a malformed term. */
static int next_term(const char **p, int *key, char val[QF_JOB_SELECTOR_MAX], char *why,
                     size_t why_len)
{
    const char *s = *p;
    while (*s == ' ')
        s++;
    if (!*s)
        return 0;
    size_t n = strcspn(s, " ");
    *p = s + n;
    const char *eq = memchr(s, '=', n);
    if (!eq)
        return qf_whyf(QF_EINVAL, why, why_len, "term '%.*s' is not key=value", (int)n, s);
    size_t klen = (size_t)(eq - s), vlen = n - klen - 1;
    *key = -1;
    for (int i = 0; i < SEL_COUNT; i++)
        if (strlen(k_sel_keys[i]) == klen && memcmp(k_sel_keys[i], s, klen) == 0)
            *key = i;
    if (*key < 0)
        return qf_whyf(QF_EINVAL, why, why_len, "unknown key '%.*s' in term '%.*s' (expected isa, "
                     "arch, backend or name)", (int)klen, s, (int)n, s);
    if (vlen == 0)
        return qf_whyf(QF_EINVAL, why, why_len, "term '%.*s' has an empty value", (int)n, s);
    if (vlen >= QF_JOB_SELECTOR_MAX)
        return qf_whyf(QF_EINVAL, why, why_len, "term '%.32s...' is too long", s);
    memcpy(val, eq + 1, vlen);
    val[vlen] = '\0';
    return 1;
}

int qf_selector_validate(const char *selector, char *why, size_t why_len)
{
    assert(selector);
    if (strnlen(selector, QF_JOB_SELECTOR_MAX) >= QF_JOB_SELECTOR_MAX)
        return qf_whyf(QF_EINVAL, why, why_len, "longer than %d bytes", QF_JOB_SELECTOR_MAX - 1);
    const char *p = selector;
    int key, rc;
    char val[QF_JOB_SELECTOR_MAX];
    while ((rc = next_term(&p, &key, val, why, why_len)) == 1) {
    }
    return rc;
}

bool qf_selector_has_term(const char *selector, const char *key, const char *value)
{
    assert(selector && key && value);
    const char *p = selector;
    int k;
    char val[QF_JOB_SELECTOR_MAX];
    while (next_term(&p, &k, val, NULL, 0) == 1)
        if (strcmp(k_sel_keys[k], key) == 0 && strcmp(val, value) == 0)
            return true;
    return false;
}

/* True if word is one of the space-separated words of list. */
static bool has_word(const char *list, const char *word)
{
    size_t wl = strlen(word);
    for (const char *p = list; *p;) {
        while (*p == ' ')
            p++;
        size_t n = strcspn(p, " ");
        if (n == wl && n && memcmp(p, word, n) == 0)
            return true;
        p += n;
    }
    return false;
}

/* The names people write in suites next to the names machines report: `arch: arm64` is what
 * Apple and Android call Linux's aarch64, and `isa: avx512` means the AVX-512 foundation
 * (avx512f), `isa: neon` Arm's Advanced SIMD (asimd). Each pair matches both ways. */
static const char *const k_aliases[][2] = {
    { "arm64", "aarch64" }, { "amd64", "x86_64" }, { "avx512", "avx512f" }, { "neon", "asimd" },
    { "dotprod", "asimddp" },
};

/* The other spelling of v, or NULL. */
static const char *alias_of(const char *v)
{
    for (size_t i = 0; i < sizeof k_aliases / sizeof k_aliases[0]; i++) {
        if (strcmp(v, k_aliases[i][0]) == 0)
            return k_aliases[i][1];
        if (strcmp(v, k_aliases[i][1]) == 0)
            return k_aliases[i][0];
    }
    return NULL;
}

static bool word_or_alias(const char *words, const char *v)
{
    const char *a = alias_of(v);
    return has_word(words, v) || (a && has_word(words, a));
}

static bool same_or_alias(const char *have, const char *v)
{
    const char *a = alias_of(v);
    return strcmp(have, v) == 0 || (a && strcmp(have, a) == 0);
}

bool qf_selector_match(const char *selector, const qf_agent_caps *caps)
{
    assert(selector && caps);
    const char *p = selector;
    int key, rc;
    char val[QF_JOB_SELECTOR_MAX];
    while ((rc = next_term(&p, &key, val, NULL, 0)) == 1) {
        bool ok = false;
        switch ((enum sel_key)key) {
        case SEL_ISA:     ok = word_or_alias(caps->isa, val); break;
        case SEL_ARCH:    ok = same_or_alias(caps->arch, val); break;
        case SEL_BACKEND: ok = has_word(caps->backends, val); break;
        case SEL_NAME:    ok = fnmatch(val, caps->name, 0) == 0; break;
        case SEL_COUNT:   break;
        }
        if (!ok)
            return false;
    }
    return rc == 0; /* a malformed selector matches nothing */
}
