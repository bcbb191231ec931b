/* suite.c - YAML suites (docs/suites.md) parsed with libyaml and expanded into job specs.
 *
 * A suite file is untrusted text: every problem becomes "FILE:LINE:COL: message" in why and a
 * negative qf_err, never an abort or a line on stderr, and *out stays empty unless the whole
 * suite loaded. Parsing is two passes over the text. The first walks libyaml's events to catch
 * syntax errors, aliases (refused outright, so an alias bomb cannot expand anything), more than
 * one document and absurd nesting, before anything is built. The second loads the document
 * tree, whose nodes carry the line and column every message needs, reads each top-level key
 * into a draft, checks the draft and expands it into the cartesian product
 * datasets x formats x ops x shapes x threads x seeds x devices (datasets outermost).
 *
 * Vocabularies are not copied here: format names come from the format table; op (job kind)
 * and dataset names, selector keys and the spec's bounds are whatever qf_job_spec_validate and
 * qf_selector_validate accept, asked item by item so that an error points at the line that is
 * wrong. An op that validates without a format (noop) ignores the formats axis.
 *
 * Called once per `qfleet run/submit`; the work is linear in the expanded size (at most
 * QF_SUITE_MAX_JOBS specs, each validated once and hashed once for duplicates).
 */
#include "qf_suite.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "qf_err.h"
#include "qf_formats.h"

#define QF_SUITE_MAX_JOBS  100000        /* as SUBMIT's limit (docs/protocol.md) */
#define QF_SUITE_MAX_BYTES (1u << 20)    /* suites are hand-written; this is generous */
#define QF_SUITE_MAX_DEPTH 8             /* the format nests 3 deep; anything deeper is wrong */
#define QF_SUITE_MAX_ATTEMPTS 100

/* Top-level keys, in the order docs/suites.md lists them. */
enum key {
    K_NAME, K_DESCRIPTION, K_BASELINE, K_REPETITIONS, K_WARMUP, K_TIMEOUT, K_PRIORITY,
    K_MAX_ATTEMPTS, K_SEEDS, K_THREADS, K_DATASETS, K_FORMATS, K_OPS, K_SHAPES, K_DEVICES,
    K_FRAMEWORKS, K_MODELS, K_COUNT
};
static const char *const k_keys[K_COUNT] = {
    "name", "description", "baseline", "repetitions", "warmup", "timeout", "priority",
    "max_attempts", "seeds", "threads", "datasets", "formats", "ops", "shapes", "devices",
    "frameworks", "models",
};

/* The axes of the product, in expansion order (datasets outermost). */
enum axis_id { AX_DATASETS, AX_FORMATS, AX_OPS, AX_SHAPES, AX_THREADS, AX_SEEDS, AX_DEVICES,
               AX_COUNT };
static const enum key k_axis_key[AX_COUNT] = {
    K_DATASETS, K_FORMATS, K_OPS, K_SHAPES, K_THREADS, K_SEEDS, K_DEVICES,
};

/* One list item. s: dataset/format/op name or device selector; a, b: shape rows and cols,
 * thread count or seed (a); for ops, b = 1 when the op takes no format. */
typedef struct item {
    yaml_mark_t at;
    int64_t     a, b;
    char        s[QF_JOB_SELECTOR_MAX];
} item;

typedef struct axis {
    item       *v;
    size_t      n;
    bool        set;       /* the key was in the file (else a default or absent) */
} axis;

/* frameworks: NAME: [formats]: framework jobs of those formats over the other axes
 * (datasets, shapes, threads, seeds, devices), the devices' selectors joined by backend=NAME. */
#define QF_SUITE_MAX_FRAMEWORKS 8
typedef struct fw_entry {
    char        name[16];
    yaml_mark_t at;
    axis        formats;
} fw_entry;

/* models: eval jobs, each model (a GGUF manifest) on a text quantized to each of its formats,
 * over the suite's threads, seeds and devices. */
#define QF_SUITE_MAX_MODELS 16
typedef struct model_entry {
    char        dataset[QF_JOB_DATASET_MAX];   /* "MODEL@TEXT", as the eval job takes it */
    yaml_mark_t at;
    int64_t     ctx, chunks, reps;
    axis        formats;
} model_entry;

typedef struct draft {
    char        name[sizeof(((qf_suite *)0)->name)];
    fw_entry    fw[QF_SUITE_MAX_FRAMEWORKS];
    size_t      n_fw;
    model_entry model[QF_SUITE_MAX_MODELS];
    size_t      n_model;
    char        baseline[QF_JOB_FORMAT_MAX];
    yaml_mark_t baseline_at;
    uint32_t    reps, warmup, timeout_ms, max_attempts;
    int32_t     priority;
    axis        ax[AX_COUNT];
    bool        seen[K_COUNT];
    yaml_mark_t key_at[K_COUNT];
} draft;

typedef struct ctx {
    const char      *file;
    char            *why;
    size_t           why_len;
    yaml_document_t *doc;
    yaml_mark_t      root_at;
} ctx;

/* ---- messages ------------------------------------------------------------------------- */

__attribute__((format(printf, 4, 5)))
static int failf(ctx *c, int err, yaml_mark_t m, const char *fmt, ...)
{
    if (c->why && c->why_len) {
        int n = snprintf(c->why, c->why_len, "%s:%zu:%zu: ", c->file, m.line + 1,
                         m.column + 1);
        if (n >= 0 && (size_t)n < c->why_len) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(c->why + n, c->why_len - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return err;
}

/* Levenshtein distance ignoring case (Q4_K for q4_K is the usual slip), capped: only used to
 * suggest a near key or format name. */
static size_t edit_distance(const char *a, const char *b)
{
    size_t la = strlen(a), lb = strlen(b);
    if (la > 31 || lb > 31)
        return SIZE_MAX;
    size_t row[32];
    for (size_t j = 0; j <= lb; j++)
        row[j] = j;
    for (size_t i = 1; i <= la; i++) {
        size_t diag = row[0];
        row[0] = i;
        for (size_t j = 1; j <= lb; j++) {
            size_t up = row[j];
            size_t best = diag + (tolower((unsigned char)a[i - 1]) !=
                                  tolower((unsigned char)b[j - 1]));
            if (row[j] + 1 < best)
                best = row[j] + 1;
            if (row[j - 1] + 1 < best)
                best = row[j - 1] + 1;
            row[j] = best;
            diag = up;
        }
    }
    return row[lb];
}

/* ", did you mean 'x'?" for the closest of names within 2 edits, or "". */
static void suggest(const char *word, const char *const *names, size_t n, char *buf, size_t len)
{
    const char *best = NULL;
    size_t best_d = 3;
    for (size_t i = 0; i < n; i++) {
        size_t d = edit_distance(word, names[i]);
        if (d < best_d) {
            best_d = d;
            best = names[i];
        }
    }
    if (best)
        snprintf(buf, len, " (did you mean '%s'?)", best);
    else if (len)
        buf[0] = '\0';
}

/* Copies a string whose length the parser has already bounded by cap. */
static void copy_str(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    assert(n < cap);
    (void)cap;
    memcpy(dst, src, n + 1);
}

/* ---- nodes ---------------------------------------------------------------------------- */

static yaml_node_t *node_at(ctx *c, int idx)
{
    yaml_node_t *n = yaml_document_get_node(c->doc, idx);
    assert(n); /* libyaml's loader only hands out indices of nodes it made */
    return n;
}

static const char *scalar(const yaml_node_t *n)
{
    return (const char *)n->data.scalar.value;
}

static bool is_null(const yaml_node_t *n)
{
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE)
        return false;
    const char *s = scalar(n);
    return !*s || !strcmp(s, "~") || !strcmp(s, "null") || !strcmp(s, "Null") ||
           !strcmp(s, "NULL");
}

/* What a node is, for "expected X, got Y". */
static const char *describe(const yaml_node_t *n, char *buf, size_t len)
{
    switch (n->type) {
    case YAML_MAPPING_NODE:  return "a map";
    case YAML_SEQUENCE_NODE: return "a list";
    case YAML_SCALAR_NODE:
        if (is_null(n))
            return "nothing";
        snprintf(buf, len, "%s'%.40s%s'",
                 n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE ? "" : "the quoted string ",
                 scalar(n), n->data.scalar.length > 40 ? "..." : "");
        return buf;
    default:                 return "an empty node";
    }
}

/* Scalars become C strings; a NUL inside one ("\0" in a quoted string) would cut them. */
static int text_of(ctx *c, const char *what, const yaml_node_t *n, size_t cap, const char **out)
{
    char d[64];
    if (n->type != YAML_SCALAR_NODE || is_null(n))
        return failf(c, QF_EINVAL, n->start_mark, "%s: expected a string, got %s", what,
                     describe(n, d, sizeof d));
    const char *s = scalar(n);
    if (strlen(s) != n->data.scalar.length)
        return failf(c, QF_EINVAL, n->start_mark, "%s: contains a NUL byte", what);
    if (n->data.scalar.length >= cap)
        return failf(c, QF_EINVAL, n->start_mark, "%s: '%.40s...' is longer than %zu bytes",
                     what, s, cap - 1);
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return failf(c, QF_EINVAL, n->start_mark, "%s: contains a control character",
                         what);
    *out = s;
    return 0;
}

/* Strict base-10: optional sign, digits, nothing else, no overflow. (qf_cli_parse_int has the
 * same rule but prints to stderr; a suite's messages go to why.) */
static bool parse_i64(const char *s, int64_t *out)
{
    const char *p = s + (*s == '+' || *s == '-');
    if (!*p)
        return false;
    for (; *p; p++)
        if (*p < '0' || *p > '9')
            return false;
    errno = 0;
    char *end;
    long long v = strtoll(s, &end, 10);
    if (errno || *end)
        return false;
    *out = v;
    return true;
}

/* An integer is a plain scalar: a quoted "5" is a string, as YAML says. */
static int int_of(ctx *c, const char *what, const yaml_node_t *n, int64_t min, int64_t max,
                  int64_t *out)
{
    char d[64];
    int64_t v;
    if (n->type != YAML_SCALAR_NODE || n->data.scalar.style != YAML_PLAIN_SCALAR_STYLE ||
        !parse_i64(scalar(n), &v) || v < min || v > max)
        return failf(c, QF_EINVAL, n->start_mark, "%s: expected an integer in [%" PRId64
                     ", %" PRId64 "], got %s", what, min, max, describe(n, d, sizeof d));
    *out = v;
    return 0;
}

/* "60s", "2m", "500ms", "1h", or a plain integer of seconds. */
static int timeout_of(ctx *c, const yaml_node_t *n, uint32_t *ms)
{
    static const struct { const char *unit; int64_t ms; } units[] = {
        { "ms", 1 }, { "s", 1000 }, { "m", 60000 }, { "h", 3600000 },
    };
    char d[64];
    if (n->type == YAML_SCALAR_NODE && !is_null(n)) {
        const char *s = scalar(n);
        size_t digits = strspn(s, "0123456789");
        int64_t mult = n->data.scalar.style == YAML_PLAIN_SCALAR_STYLE && !s[digits] ? 1000 : 0;
        for (size_t i = 0; i < sizeof units / sizeof units[0] && !mult; i++)
            if (!strcmp(s + digits, units[i].unit))
                mult = units[i].ms;
        char num[24];
        int64_t v;
        if (mult && digits > 0 && digits < sizeof num) {
            memcpy(num, s, digits);
            num[digits] = '\0';
            if (parse_i64(num, &v) && v >= 1 && v <= (int64_t)QF_JOB_MAX_TIMEOUT_MS / mult) {
                *ms = (uint32_t)(v * mult);
                return 0;
            }
        }
    }
    return failf(c, QF_EINVAL, n->start_mark, "timeout: expected a duration from 1ms to 24h "
                 "like 60s, 2m, 500ms or a number of seconds, got %s", describe(n, d, sizeof d));
}

/* ---- lists ---------------------------------------------------------------------------- */

/* A non-empty list (or, when scalar_ok, one scalar standing for a list of one). Bounded by the
 * expansion limit: a longer list cannot expand to fewer jobs. */
static int list_of(ctx *c, const char *what, yaml_node_t *n, bool scalar_ok, const char *expect,
                   axis *ax, yaml_node_item_t **items, size_t *count)
{
    char d[64];
    if (n->type == YAML_SCALAR_NODE && scalar_ok && !is_null(n)) {
        *items = NULL;
        *count = 1;
    } else if (n->type == YAML_SEQUENCE_NODE) {
        *items = n->data.sequence.items.start;
        *count = (size_t)(n->data.sequence.items.top - n->data.sequence.items.start);
        if (*count == 0)
            return failf(c, QF_EINVAL, n->start_mark, "%s: the list is empty", what);
        if (*count > QF_SUITE_MAX_JOBS)
            return failf(c, QF_ETOOBIG, n->start_mark, "%s: %zu items, over the limit of %d "
                         "jobs", what, *count, QF_SUITE_MAX_JOBS);
    } else {
        return failf(c, QF_EINVAL, n->start_mark, "%s: expected %s, got %s", what, expect,
                     describe(n, d, sizeof d));
    }
    free(ax->v);
    ax->v = calloc(*count, sizeof *ax->v);
    if (!ax->v)
        return failf(c, QF_ENOMEM, n->start_mark, "%s: out of memory", what);
    ax->n = 0;
    ax->set = true;
    return 0;
}

static yaml_node_t *list_item(ctx *c, yaml_node_t *list, yaml_node_item_t *items, size_t i)
{
    return items ? node_at(c, items[i]) : list;
}

static item *push(axis *ax, yaml_mark_t at)
{
    item *it = &ax->v[ax->n++];
    it->at = at;
    return it;
}

static int read_names(ctx *c, const char *what, yaml_node_t *n, size_t cap, axis *ax)
{
    yaml_node_item_t *items;
    size_t count;
    int err = list_of(c, what, n, false, "a list of names", ax, &items, &count);
    for (size_t i = 0; !err && i < count; i++) {
        yaml_node_t *e = list_item(c, n, items, i);
        const char *s;
        err = text_of(c, what, e, cap, &s);
        if (!err)
            copy_str(push(ax, e->start_mark)->s, cap, s);
    }
    return err;
}

static int read_ints(ctx *c, const char *what, yaml_node_t *n, int64_t min, int64_t max, axis *ax)
{
    yaml_node_item_t *items;
    size_t count;
    int err = list_of(c, what, n, false, "a list of integers", ax, &items, &count);
    for (size_t i = 0; !err && i < count; i++) {
        yaml_node_t *e = list_item(c, n, items, i);
        int64_t v;
        err = int_of(c, what, e, min, max, &v);
        if (!err)
            push(ax, e->start_mark)->a = v;
    }
    return err;
}

/* A weight format of the table, by name; what names the field for the message. */
static int check_format(ctx *c, const char *what, const char *name, yaml_mark_t at)
{
    qf_format f;
    if (qf_format_from_name(name, &f) != 0) {
        const char *names[QF_FMT_COUNT];
        char hint[64];
        for (int i = 0; i < QF_FMT_COUNT; i++)
            names[i] = qf_format_get((qf_format)i)->name;
        suggest(name, names, QF_FMT_COUNT, hint, sizeof hint);
        return failf(c, QF_EINVAL, at, "%s: unknown format '%s'%s; `qfleet formats` lists them",
                     what, name, hint);
    }
    if (!qf_format_get(f)->weight)
        return failf(c, QF_EINVAL, at, "%s: %s is an activation format, not a weight format",
                     what, name);
    return 0;
}

/* formats: a list of names, where the word all stands for every weight format of the table. */
static int read_formats(ctx *c, yaml_node_t *n, axis *ax)
{
    yaml_node_item_t *items;
    size_t count;
    int err = list_of(c, "formats", n, true, "a list of format names or all", ax, &items, &count);
    if (err)
        return err;
    size_t n_all = 0;
    for (size_t i = 0; i < count; i++) {
        yaml_node_t *e = list_item(c, n, items, i);
        if (e->type == YAML_SCALAR_NODE && !strcmp(scalar(e), "all"))
            n_all++;
    }
    if (n_all) { /* room for the table in place of each 'all' */
        item *v = calloc(count + n_all * QF_FMT_COUNT, sizeof *v);
        if (!v)
            return failf(c, QF_ENOMEM, n->start_mark, "formats: out of memory");
        free(ax->v);
        ax->v = v;
    }
    for (size_t i = 0; i < count; i++) {
        yaml_node_t *e = list_item(c, n, items, i);
        const char *s;
        if ((err = text_of(c, "formats", e, QF_JOB_FORMAT_MAX, &s)) != 0)
            return err;
        if (!strcmp(s, "all")) {
            for (int f = 0; f < QF_FMT_COUNT; f++)
                if (qf_format_get((qf_format)f)->weight)
                    copy_str(push(ax, e->start_mark)->s, QF_JOB_FORMAT_MAX,
                             qf_format_get((qf_format)f)->name);
            continue;
        }
        if ((err = check_format(c, "formats", s, e->start_mark)) != 0)
            return err;
        copy_str(push(ax, e->start_mark)->s, QF_JOB_FORMAT_MAX, s);
    }
    return 0;
}

/* shapes: [rows, cols] or "RxC". */
static int read_shapes(ctx *c, yaml_node_t *n, axis *ax)
{
    yaml_node_item_t *items;
    size_t count;
    int err = list_of(c, "shapes", n, false, "a list of [rows, cols] or \"RxC\"", ax, &items,
                      &count);
    for (size_t i = 0; !err && i < count; i++) {
        yaml_node_t *e = list_item(c, n, items, i);
        item *it = push(ax, e->start_mark);
        char d[64];
        if (e->type == YAML_SEQUENCE_NODE &&
            e->data.sequence.items.top - e->data.sequence.items.start == 2) {
            err = int_of(c, "shapes: rows", node_at(c, e->data.sequence.items.start[0]), 1,
                         QF_JOB_MAX_DIM, &it->a);
            if (!err)
                err = int_of(c, "shapes: cols", node_at(c, e->data.sequence.items.start[1]), 1,
                             QF_JOB_MAX_DIM, &it->b);
            continue;
        }
        char buf[48];
        const char *x = NULL;
        if (e->type == YAML_SCALAR_NODE && e->data.scalar.length < sizeof buf) {
            memcpy(buf, scalar(e), e->data.scalar.length + 1);
            char *sep = strchr(buf, 'x');
            if (sep) {
                *sep = '\0';
                x = sep + 1;
            }
        }
        if (!x || !parse_i64(buf, &it->a) || !parse_i64(x, &it->b) || it->a < 1 ||
            it->b < 1 || it->a > QF_JOB_MAX_DIM || it->b > QF_JOB_MAX_DIM)
            err = failf(c, QF_EINVAL, e->start_mark, "shapes: expected [rows, cols] or \"RxC\" "
                        "with rows and cols in [1, %d], got %s", QF_JOB_MAX_DIM,
                        describe(e, d, sizeof d));
    }
    return err;
}

/* frameworks: a map of framework name -> list of formats. The names are the job layer's
 * (qf_job_frameworks); each format must be a weight format of the table (the adapter says at
 * run time whether it runs it: a suite is checked without the agents). */
static int read_frameworks(ctx *c, yaml_node_t *n, draft *dr)
{
    char d[64];
    if (n->type != YAML_MAPPING_NODE)
        return failf(c, QF_EINVAL, n->start_mark, "frameworks: expected a map of framework "
                     "name to formats, like {ort: [f32, ort_int4_b32]}, got %s",
                     describe(n, d, sizeof d));
    int nk = 0;
    const char *const *known = qf_job_frameworks(&nk);
    for (yaml_node_pair_t *p = n->data.mapping.pairs.start; p < n->data.mapping.pairs.top; p++) {
        yaml_node_t *kn = node_at(c, p->key);
        const char *name;
        int err = text_of(c, "frameworks: name", kn, sizeof dr->fw[0].name, &name);
        if (err)
            return err;
        int k = 0;
        while (k < nk && strcmp(known[k], name) != 0)
            k++;
        if (k == nk) {
            char hint[64];
            suggest(name, known, (size_t)nk, hint, sizeof hint);
            return failf(c, QF_EINVAL, kn->start_mark, "frameworks: unknown framework '%.40s'%s;"
                         " frameworks are ort, llamacpp, openvino, mlx, qnn", name, hint);
        }
        for (size_t i = 0; i < dr->n_fw; i++)
            if (!strcmp(dr->fw[i].name, name))
                return failf(c, QF_EINVAL, kn->start_mark, "frameworks: %s given twice", name);
        if (dr->n_fw == QF_SUITE_MAX_FRAMEWORKS)
            return failf(c, QF_EINVAL, kn->start_mark, "frameworks: more than %d",
                         QF_SUITE_MAX_FRAMEWORKS);
        fw_entry *f = &dr->fw[dr->n_fw++];
        copy_str(f->name, sizeof f->name, name);
        f->at = kn->start_mark;
        if ((err = read_formats(c, node_at(c, p->value), &f->formats)) != 0)
            return err;
    }
    return 0;
}

/* models: a list of maps {model: manifest:NAME, text: text:NAME | manifest:NAME, formats: [..],
 * ctx: 512, chunks: 8, repetitions: 3}; model, text and formats required. */
static int read_models(ctx *c, yaml_node_t *n, draft *dr)
{
    char d[64];
    if (n->type != YAML_SEQUENCE_NODE || n->data.sequence.items.top == n->data.sequence.items.start)
        return failf(c, QF_EINVAL, n->start_mark, "models: expected a list of maps like {model: "
                     "manifest:NAME, text: text:NAME, formats: [q4_K]}, got %s",
                     describe(n, d, sizeof d));
    for (yaml_node_item_t *it = n->data.sequence.items.start; it < n->data.sequence.items.top;
         it++) {
        yaml_node_t *e = node_at(c, *it);
        if (e->type != YAML_MAPPING_NODE)
            return failf(c, QF_EINVAL, e->start_mark, "models: expected a map, got %s",
                         describe(e, d, sizeof d));
        if (dr->n_model == QF_SUITE_MAX_MODELS)
            return failf(c, QF_EINVAL, e->start_mark, "models: more than %d",
                         QF_SUITE_MAX_MODELS);
        model_entry *m = &dr->model[dr->n_model++];
        m->at = e->start_mark;
        m->ctx = 512;
        m->chunks = 8;
        m->reps = 3;
        const char *model = NULL, *text = NULL;
        int err = 0;
        for (yaml_node_pair_t *p = e->data.mapping.pairs.start;
             !err && p < e->data.mapping.pairs.top; p++) {
            yaml_node_t *kn = node_at(c, p->key), *vn = node_at(c, p->value);
            const char *k = kn->type == YAML_SCALAR_NODE ? scalar(kn) : "";
            if (!strcmp(k, "model"))
                err = text_of(c, "models: model", vn, QF_JOB_DATASET_MAX, &model);
            else if (!strcmp(k, "text"))
                err = text_of(c, "models: text", vn, QF_JOB_DATASET_MAX, &text);
            else if (!strcmp(k, "formats"))
                err = read_formats(c, vn, &m->formats);
            else if (!strcmp(k, "ctx"))
                err = int_of(c, "models: ctx", vn, QF_JOB_EVAL_MIN_CTX, QF_JOB_MAX_DIM, &m->ctx);
            else if (!strcmp(k, "chunks"))
                err = int_of(c, "models: chunks", vn, 1, QF_JOB_MAX_DIM, &m->chunks);
            else if (!strcmp(k, "repetitions"))
                err = int_of(c, "models: repetitions", vn, 1, QF_JOB_MAX_REPS, &m->reps);
            else
                err = failf(c, QF_EINVAL, kn->start_mark, "models: unknown key '%.40s'; keys "
                            "are model, text, formats, ctx, chunks, repetitions", k);
        }
        if (err)
            return err;
        if (!model || !text || !m->formats.n)
            return failf(c, QF_EINVAL, e->start_mark, "models: each needs model, text and "
                         "formats");
        int w = snprintf(m->dataset, sizeof m->dataset, "%s@%s", model, text);
        if (w < 0 || (size_t)w >= sizeof m->dataset)
            return failf(c, QF_EINVAL, e->start_mark, "models: '%s@%s' is longer than %d bytes",
                         model, text, QF_JOB_DATASET_MAX - 1);
    }
    return 0;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* devices: maps of selector terms ({isa: avx512}, {arch: arm64, backend: cpu}, {} for any),
 * each term checked by qf_selector_validate at its own line, then sorted and joined so two
 * spellings of one selector are one selector (the duplicate check relies on it). */
static int read_devices(ctx *c, yaml_node_t *n, axis *ax)
{
    yaml_node_item_t *items;
    size_t count;
    int err = list_of(c, "devices", n, false, "a list of selector maps like {isa: avx2}", ax,
                      &items, &count);
    for (size_t i = 0; !err && i < count; i++) {
        yaml_node_t *e = list_item(c, n, items, i);
        item *it = push(ax, e->start_mark);
        char d[64];
        if (e->type != YAML_MAPPING_NODE)
            return failf(c, QF_EINVAL, e->start_mark, "devices: expected a selector map like "
                         "{isa: avx2} or {} for any device, got %s", describe(e, d, sizeof d));
        size_t nt = (size_t)(e->data.mapping.pairs.top - e->data.mapping.pairs.start);
        if (nt > QF_JOB_SELECTOR_MAX / 4) /* "k=v " is 4 bytes at least */
            return failf(c, QF_EINVAL, e->start_mark, "devices: the selector is longer than %d "
                         "bytes", QF_JOB_SELECTOR_MAX - 1);
        char (*terms)[QF_JOB_SELECTOR_MAX] = calloc(nt ? nt : 1, sizeof *terms);
        const char **sorted = calloc(nt ? nt : 1, sizeof *sorted);
        if (!terms || !sorted)
            err = failf(c, QF_ENOMEM, e->start_mark, "devices: out of memory");
        for (size_t t = 0; !err && t < nt; t++) {
            yaml_node_t *k = node_at(c, e->data.mapping.pairs.start[t].key);
            yaml_node_t *v = node_at(c, e->data.mapping.pairs.start[t].value);
            const char *ks, *vs;
            char tw[QF_JOB_ERROR_MAX];
            if ((err = text_of(c, "devices: selector key", k, 64, &ks)) != 0 ||
                (err = text_of(c, "devices: selector value", v, QF_JOB_SELECTOR_MAX, &vs)) != 0)
                break;
            if (strpbrk(vs, " \t=") || strpbrk(ks, " \t=")) {
                err = failf(c, QF_EINVAL, v->start_mark, "devices: %s: '%s' may not contain "
                            "spaces or '='", ks, vs);
                break;
            }
            if (snprintf(terms[t], sizeof terms[t], "%s=%s", ks, vs) >= (int)sizeof terms[t]) {
                err = failf(c, QF_EINVAL, v->start_mark, "devices: the selector is longer than "
                            "%d bytes", QF_JOB_SELECTOR_MAX - 1);
                break;
            }
            if (qf_selector_validate(terms[t], tw, sizeof tw) != 0) {
                err = failf(c, QF_EINVAL, k->start_mark, "devices: %s", tw);
                break;
            }
            sorted[t] = terms[t];
        }
        if (!err) {
            qsort(sorted, nt, sizeof *sorted, cmp_str);
            size_t used = 0;
            for (size_t t = 0; t < nt && !err; t++) {
                if (t && !strcmp(sorted[t], sorted[t - 1]))
                    continue;
                size_t tl = strlen(sorted[t]);
                if (used + (used > 0) + tl >= sizeof it->s)
                    err = failf(c, QF_EINVAL, e->start_mark, "devices: the selector is longer "
                                "than %d bytes", QF_JOB_SELECTOR_MAX - 1);
                else
                    used += (size_t)snprintf(it->s + used, sizeof it->s - used, "%s%s",
                                             used ? " " : "", sorted[t]);
            }
        }
        free(terms);
        free(sorted);
    }
    return err;
}

/* ---- the top-level map ---------------------------------------------------------------- */

static int read_key(ctx *c, draft *dr, enum key k, yaml_node_t *v)
{
    int64_t x;
    const char *s;
    int err;
    switch (k) {
    case K_NAME:
        if ((err = text_of(c, "name", v, sizeof dr->name, &s)) == 0)
            copy_str(dr->name, sizeof dr->name, s);
        return err;
    case K_DESCRIPTION: /* for people, not kept: any text (newlines too), or nothing */
        if (v->type != YAML_SCALAR_NODE) {
            char d[64];
            return failf(c, QF_EINVAL, v->start_mark, "description: expected text, got %s",
                         describe(v, d, sizeof d));
        }
        return 0;
    case K_BASELINE:
        if ((err = text_of(c, "baseline", v, QF_JOB_FORMAT_MAX, &s)) == 0 &&
            (err = check_format(c, "baseline", s, v->start_mark)) == 0) {
            copy_str(dr->baseline, sizeof dr->baseline, s);
            dr->baseline_at = v->start_mark;
        }
        return err;
    case K_REPETITIONS:
        if ((err = int_of(c, "repetitions", v, 1, QF_JOB_MAX_REPS, &x)) == 0)
            dr->reps = (uint32_t)x;
        return err;
    case K_WARMUP:
        if ((err = int_of(c, "warmup", v, 0, QF_JOB_MAX_REPS, &x)) == 0)
            dr->warmup = (uint32_t)x;
        return err;
    case K_TIMEOUT:
        return timeout_of(c, v, &dr->timeout_ms);
    case K_PRIORITY:
        if ((err = int_of(c, "priority", v, INT32_MIN, INT32_MAX, &x)) == 0)
            dr->priority = (int32_t)x;
        return err;
    case K_MAX_ATTEMPTS:
        if ((err = int_of(c, "max_attempts", v, 1, QF_SUITE_MAX_ATTEMPTS, &x)) == 0)
            dr->max_attempts = (uint32_t)x;
        return err;
    case K_SEEDS:    return read_ints(c, "seeds", v, 0, INT64_MAX, &dr->ax[AX_SEEDS]);
    case K_THREADS:  return read_ints(c, "threads", v, 1, QF_JOB_MAX_THREADS, &dr->ax[AX_THREADS]);
    case K_DATASETS: return read_names(c, "datasets", v, QF_JOB_DATASET_MAX, &dr->ax[AX_DATASETS]);
    case K_FORMATS:  return read_formats(c, v, &dr->ax[AX_FORMATS]);
    case K_OPS:      return read_names(c, "ops", v, QF_JOB_KIND_MAX, &dr->ax[AX_OPS]);
    case K_SHAPES:   return read_shapes(c, v, &dr->ax[AX_SHAPES]);
    case K_DEVICES:  return read_devices(c, v, &dr->ax[AX_DEVICES]);
    case K_FRAMEWORKS: return read_frameworks(c, v, dr);
    case K_MODELS:   return read_models(c, v, dr);
    case K_COUNT:    break;
    }
    assert(!"unreachable");
    return QF_EINVAL;
}

static int read_map(ctx *c, draft *dr, yaml_node_t *root)
{
    char d[64];
    if (root->type != YAML_MAPPING_NODE)
        return failf(c, QF_EINVAL, root->start_mark, "expected a map of suite keys "
                     "(name, formats, ops, ...), got %s", describe(root, d, sizeof d));
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start; p < root->data.mapping.pairs.top;
         p++) {
        yaml_node_t *kn = node_at(c, p->key);
        if (kn->type != YAML_SCALAR_NODE)
            return failf(c, QF_EINVAL, kn->start_mark, "expected a key name, got %s",
                         describe(kn, d, sizeof d));
        const char *ks = scalar(kn);
        int k = 0;
        while (k < K_COUNT && strcmp(ks, k_keys[k]) != 0)
            k++;
        if (k == K_COUNT) {
            char hint[64];
            suggest(ks, k_keys, K_COUNT, hint, sizeof hint);
            return failf(c, QF_EINVAL, kn->start_mark, "unknown key '%.40s'%s; keys are name, "
                         "description, baseline, repetitions, warmup, timeout, priority, "
                         "max_attempts, seeds, threads, datasets, formats, ops, shapes, devices, "
                         "frameworks, models",
                         ks, hint);
        }
        if (dr->seen[k])
            return failf(c, QF_EINVAL, kn->start_mark, "key '%s' given twice (first at %zu:%zu)",
                         ks, dr->key_at[k].line + 1, dr->key_at[k].column + 1);
        dr->seen[k] = true;
        dr->key_at[k] = kn->start_mark;
        int err = read_key(c, dr, (enum key)k, node_at(c, p->value));
        if (err)
            return err;
    }
    return 0;
}

/* ---- checks across keys --------------------------------------------------------------- */

static qf_job_spec probe_spec(const draft *dr, const char *op, const char *format,
                              const char *dataset)
{
    qf_job_spec s = { .rows = 1, .cols = 256, .reps = dr->reps, .warmup = dr->warmup,
                      .threads = 1, .seed = 0, .timeout_ms = dr->timeout_ms,
                      .priority = dr->priority };
    copy_str(s.kind, sizeof s.kind, op);
    copy_str(s.format, sizeof s.format, format);
    copy_str(s.dataset, sizeof s.dataset, dataset);
    return s;
}

/* Does op run on dataset? Tries it without a format, then with f32 (which fits a 1x256 probe),
 * and records in *formatless which one the validator took. */
static int probe(const draft *dr, const char *op, const char *dataset, bool *formatless,
                 char *why, size_t why_len)
{
    qf_job_spec s = probe_spec(dr, op, "", dataset);
    if (qf_job_spec_validate(&s, why, why_len) == 0) {
        *formatless = true;
        return 0;
    }
    s = probe_spec(dr, op, qf_format_get(QF_FMT_F32)->name, dataset);
    *formatless = false;
    return qf_job_spec_validate(&s, why, why_len);
}

/* Which ops and datasets the validator knows, and which ops take no format (ops b = 1). The
 * first pair that works vouches for its op and dataset; an item that works with none of the
 * vouched-for partners is the one reported. */
static int check_ops_datasets(ctx *c, draft *dr)
{
    axis *ops = &dr->ax[AX_OPS], *ds = &dr->ax[AX_DATASETS];
    char why[QF_JOB_ERROR_MAX];
    bool fl;
    size_t good_op = SIZE_MAX, good_ds = SIZE_MAX;
    for (size_t o = 0; o < ops->n && good_op == SIZE_MAX; o++)
        for (size_t d = 0; d < ds->n && good_op == SIZE_MAX; d++)
            if (probe(dr, ops->v[o].s, ds->v[d].s, &fl, why, sizeof why) == 0) {
                good_op = o;
                good_ds = d;
            }
    if (good_op == SIZE_MAX) {
        probe(dr, ops->v[0].s, ds->v[0].s, &fl, why, sizeof why);
        return failf(c, QF_EINVAL, ops->v[0].at, "ops: %s with dataset %s: %s", ops->v[0].s,
                     ds->v[0].s, why);
    }
    for (size_t d = 0; d < ds->n; d++)
        if (probe(dr, ops->v[good_op].s, ds->v[d].s, &fl, why, sizeof why) != 0)
            return failf(c, QF_EINVAL, ds->v[d].at, "%s", why);
    for (size_t o = 0; o < ops->n; o++) {
        if (probe(dr, ops->v[o].s, ds->v[good_ds].s, &fl, why, sizeof why) != 0)
            return failf(c, QF_EINVAL, ops->v[o].at, "%s", why);
        ops->v[o].b = fl;
    }
    return 0;
}

/* Saturating product, so a hostile suite's count cannot wrap around the limit. */
static uint64_t mul_sat(uint64_t a, uint64_t b)
{
    return a && b > UINT64_MAX / a ? UINT64_MAX : a * b;
}

/* Jobs the draft expands to, given how many ops take a format and how many do not. */
static uint64_t count_jobs(const draft *dr, uint64_t with_fmt, uint64_t without)
{
    /* the main product and the framework jobs span datasets x shapes; eval jobs do not (their
     * model and context are their own); all of them span threads x seeds x devices */
    uint64_t per_data = mul_sat(with_fmt, dr->ax[AX_FORMATS].n) + without;
    for (size_t f = 0; f < dr->n_fw; f++)
        per_data += dr->fw[f].formats.n;
    uint64_t n = mul_sat(mul_sat(per_data, dr->ax[AX_DATASETS].n), dr->ax[AX_SHAPES].n);
    for (size_t m = 0; m < dr->n_model; m++)
        n += dr->model[m].formats.n;
    return mul_sat(mul_sat(mul_sat(n, dr->ax[AX_THREADS].n), dr->ax[AX_SEEDS].n),
                   dr->ax[AX_DEVICES].n);
}

/* at_least: n is a lower bound (before ops are known to take a format or not). */
static int check_size(ctx *c, const draft *dr, uint64_t n, bool at_least)
{
    if (n <= QF_SUITE_MAX_JOBS)
        return 0;
    char count[40];
    if (n == UINT64_MAX)
        snprintf(count, sizeof count, "more than 2^64");
    else
        snprintf(count, sizeof count, "%s%" PRIu64, at_least ? "at least " : "", n);
    return failf(c, QF_ETOOBIG, c->root_at, "the suite expands to %s jobs (datasets %zu x "
                 "formats %zu x ops %zu x shapes %zu x threads %zu x seeds %zu x devices %zu), "
                 "over the limit of %d", count, dr->ax[AX_DATASETS].n, dr->ax[AX_FORMATS].n,
                 dr->ax[AX_OPS].n, dr->ax[AX_SHAPES].n, dr->ax[AX_THREADS].n,
                 dr->ax[AX_SEEDS].n, dr->ax[AX_DEVICES].n, QF_SUITE_MAX_JOBS);
}

static int check_draft(ctx *c, draft *dr, uint64_t *n_jobs)
{
    static const enum key required[] = { K_NAME, K_DATASETS, K_OPS, K_SHAPES };
    for (size_t i = 0; i < sizeof required / sizeof required[0]; i++)
        if (!dr->seen[required[i]])
            return failf(c, QF_EINVAL, c->root_at, "missing required key '%s'",
                         k_keys[required[i]]);
    axis *ops = &dr->ax[AX_OPS], *fmts = &dr->ax[AX_FORMATS];
    /* Every op yields at least one job per combination of the other lists: refusing on that
     * bound first also bounds the ops x datasets probing below. */
    int err = check_size(c, dr, count_jobs(dr, 0, ops->n), fmts->n > 1);
    if (!err)
        err = check_ops_datasets(c, dr);
    if (err)
        return err;
    uint64_t with_fmt = 0, without = 0;
    for (size_t o = 0; o < ops->n; o++) {
        if (ops->v[o].b)
            without++;
        else
            with_fmt++;
    }
    if (with_fmt && !fmts->set)
        return failf(c, QF_EINVAL, c->root_at, "missing required key 'formats' (ops other "
                     "than noop need one)");
    if (dr->baseline[0]) {
        size_t f = 0;
        while (f < fmts->n && strcmp(fmts->v[f].s, dr->baseline) != 0)
            f++;
        if (f == fmts->n || !with_fmt) /* speed-ups are measured in the same run */
            return failf(c, QF_EINVAL, dr->baseline_at, "baseline: %s is not among the formats "
                         "the suite measures", dr->baseline);
    }
    uint64_t n = count_jobs(dr, with_fmt, without);
    if ((err = check_size(c, dr, n, false)) != 0)
        return err;
    *n_jobs = n;
    return 0;
}

/* ---- expansion ------------------------------------------------------------------------ */

typedef struct combo {
    uint32_t i[AX_COUNT];
} combo;

static void item_text(const draft *dr, int a, size_t i, char *buf, size_t len)
{
    const item *it = &dr->ax[a].v[i];
    switch (a) {
    case AX_SHAPES:  snprintf(buf, len, "%" PRId64 "x%" PRId64, it->a, it->b); break;
    case AX_THREADS:
    case AX_SEEDS:   snprintf(buf, len, "%" PRId64, it->a); break;
    case AX_DEVICES: snprintf(buf, len, "{%s}", it->s); break;
    default:         snprintf(buf, len, "%s", it->s); break;
    }
}

static uint64_t job_hash(const qf_job_spec *s)
{
    char key[QF_JOB_KEY_MAX];
    qf_job_key(s, key);
    uint64_t h = 1469598103934665603ull; /* FNV-1a */
    for (const char *p = key; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    h = (h ^ 0x1f) * 1099511628211ull;
    for (const char *p = s->selector; *p; p++)
        h = (h ^ (unsigned char)*p) * 1099511628211ull;
    return h;
}

static bool same_job(const qf_job_spec *x, const qf_job_spec *y)
{
    char kx[QF_JOB_KEY_MAX], ky[QF_JOB_KEY_MAX];
    qf_job_key(x, kx);
    qf_job_key(y, ky);
    return !strcmp(kx, ky) && !strcmp(x->selector, y->selector);
}

/* Equal specs come from one axis listing a value twice (or 'all' plus a name); name both. */
static int report_duplicate(ctx *c, const draft *dr, const qf_job_spec *s, const combo *first,
                            const combo *second)
{
    int a = 0;
    while (a < AX_COUNT - 1 && first->i[a] == second->i[a])
        a++;
    char key[QF_JOB_KEY_MAX], val[QF_JOB_SELECTOR_MAX + 2];
    qf_job_key(s, key);
    item_text(dr, a, second->i[a], val, sizeof val);
    const yaml_mark_t *m1 = &dr->ax[a].v[first->i[a]].at;
    return failf(c, QF_EINVAL, dr->ax[a].v[second->i[a]].at, "%s: %s repeats the item at "
                 "%zu:%zu: job %s%s%s%s is listed twice", k_keys[k_axis_key[a]], val,
                 m1->line + 1, m1->column + 1, key, s->selector[0] ? " on {" : "", s->selector,
                 s->selector[0] ? "}" : "");
}

/* Enters jobs[j] into the open-addressing table of job indices + 1: 0 when it is new, else
 * the index + 1 of the equal job already there. */
static size_t place(const qf_job_spec *jobs, size_t j, uint32_t *table, size_t cap)
{
    size_t h = (size_t)job_hash(&jobs[j]) & (cap - 1);
    while (table[h] && !same_job(&jobs[table[h] - 1], &jobs[j]))
        h = (h + 1) & (cap - 1);
    if (table[h])
        return table[h];
    table[h] = (uint32_t)(j + 1);
    return 0;
}

/* A framework or eval job filled in at jobs[*j]: validated and entered (then *j moves on), or
 * an error at `at` under the suite key what. */
static int add_extra(ctx *c, qf_job_spec *jobs, size_t *j, uint32_t *table, size_t cap,
                     yaml_mark_t at, const char *what)
{
    char why[QF_JOB_ERROR_MAX], key[QF_JOB_KEY_MAX];
    qf_job_key(&jobs[*j], key);
    if (qf_job_spec_validate(&jobs[*j], why, sizeof why) != 0)
        return failf(c, QF_EINVAL, at, "%s: job %s: %s", what, key, why);
    if (place(jobs, *j, table, cap))
        return failf(c, QF_EINVAL, at, "%s: job %s is listed twice", what, key);
    (*j)++;
    return 0;
}

/* The sorted selector dev (read_devices' form) with term added in its sorted place, into out;
 * the length it needed (>= cap: it did not fit). dev < QF_JOB_SELECTOR_MAX, term < 32 bytes. */
static int selector_with(const char *dev, const char *term, char *out, size_t cap)
{
    char buf[QF_JOB_SELECTOR_MAX + 40];
    size_t used = 0;
    bool placed = false;
    for (const char *p = dev;;) {
        while (*p == ' ')
            p++;
        size_t wl = strcspn(p, " ");
        int cmp = wl ? strncmp(term, p, wl) : -1;
        if (!placed && (cmp < 0 || (cmp == 0 && strlen(term) < wl))) {
            used += (size_t)snprintf(buf + used, sizeof buf - used, "%s%s", used ? " " : "",
                                     term);
            placed = true;
        }
        if (!wl)
            break;
        used += (size_t)snprintf(buf + used, sizeof buf - used, "%s%.*s", used ? " " : "",
                                 (int)wl, p);
        p += wl;
    }
    if (used < cap)
        memcpy(out, buf, used + 1);
    return (int)used;
}

static int expand(ctx *c, const draft *dr, size_t n, qf_job_spec **out_jobs)
{
    qf_job_spec *jobs = calloc(n, sizeof *jobs);
    combo *combos = calloc(n, sizeof *combos);
    size_t cap = 2;
    while (cap < 2 * n)
        cap *= 2;
    uint32_t *table = calloc(cap, sizeof *table);   /* job index + 1; 0 = free */
    int err = 0;
    if (!jobs || !combos || !table)
        err = failf(c, QF_ENOMEM, c->root_at, "out of memory for %zu jobs", n);
    const axis *ax = dr->ax;
    size_t n_fmt = ax[AX_FORMATS].n ? ax[AX_FORMATS].n : 1, j = 0;
    combo k;
    for (k.i[0] = 0; !err && k.i[0] < ax[0].n; k.i[0]++)
    for (k.i[1] = 0; !err && k.i[1] < n_fmt; k.i[1]++)
    for (k.i[2] = 0; !err && k.i[2] < ax[2].n; k.i[2]++) {
        bool formatless = ax[AX_OPS].v[k.i[2]].b;
        if (formatless && k.i[1] != 0)   /* one job per other combination */
            continue;
        for (k.i[3] = 0; !err && k.i[3] < ax[3].n; k.i[3]++)
        for (k.i[4] = 0; !err && k.i[4] < ax[4].n; k.i[4]++)
        for (k.i[5] = 0; !err && k.i[5] < ax[5].n; k.i[5]++)
        for (k.i[6] = 0; !err && k.i[6] < ax[6].n; k.i[6]++) {
            assert(j < n);
            qf_job_spec *s = &jobs[j];
            copy_str(s->kind, sizeof s->kind, ax[AX_OPS].v[k.i[AX_OPS]].s);
            if (!formatless)
                copy_str(s->format, sizeof s->format, ax[AX_FORMATS].v[k.i[AX_FORMATS]].s);
            copy_str(s->dataset, sizeof s->dataset, ax[AX_DATASETS].v[k.i[AX_DATASETS]].s);
            s->rows = ax[AX_SHAPES].v[k.i[AX_SHAPES]].a;
            s->cols = ax[AX_SHAPES].v[k.i[AX_SHAPES]].b;
            s->threads = (uint32_t)ax[AX_THREADS].v[k.i[AX_THREADS]].a;
            s->seed = (uint64_t)ax[AX_SEEDS].v[k.i[AX_SEEDS]].a;
            copy_str(s->selector, sizeof s->selector, ax[AX_DEVICES].v[k.i[AX_DEVICES]].s);
            s->reps = dr->reps;
            s->warmup = dr->warmup;
            s->timeout_ms = dr->timeout_ms;
            s->priority = dr->priority;
            combos[j] = k;
            char why[QF_JOB_ERROR_MAX], key[QF_JOB_KEY_MAX];
            if (qf_job_spec_validate(s, why, sizeof why) != 0) {
                /* ops, datasets, formats and selectors were checked alone: what is left is a
                 * shape that does not fit a format or the spec's bounds */
                qf_job_key(s, key);
                err = failf(c, QF_EINVAL, ax[AX_SHAPES].v[k.i[AX_SHAPES]].at,
                            "shapes: job %s: %s", key, why);
                break;
            }
            size_t dup = place(jobs, j, table, cap);
            if (dup) {
                err = report_duplicate(c, dr, s, &combos[dup - 1], &k);
                break;
            }
            j++;
        }
    }
    /* then the framework jobs: each framework's formats over the same datasets, shapes,
     * threads, seeds and devices, kind "framework", the device selector plus backend=NAME */
    for (size_t f = 0; !err && f < dr->n_fw; f++) {
        const fw_entry *fw = &dr->fw[f];
        for (k.i[0] = 0; !err && k.i[0] < ax[0].n; k.i[0]++)
        for (k.i[1] = 0; !err && k.i[1] < fw->formats.n; k.i[1]++)
        for (k.i[3] = 0; !err && k.i[3] < ax[3].n; k.i[3]++)
        for (k.i[4] = 0; !err && k.i[4] < ax[4].n; k.i[4]++)
        for (k.i[5] = 0; !err && k.i[5] < ax[5].n; k.i[5]++)
        for (k.i[6] = 0; !err && k.i[6] < ax[6].n; k.i[6]++) {
            assert(j < n);
            qf_job_spec *s = &jobs[j];
            copy_str(s->kind, sizeof s->kind, "framework");
            copy_str(s->format, sizeof s->format, fw->formats.v[k.i[1]].s);
            copy_str(s->dataset, sizeof s->dataset, ax[AX_DATASETS].v[k.i[AX_DATASETS]].s);
            s->rows = ax[AX_SHAPES].v[k.i[AX_SHAPES]].a;
            s->cols = ax[AX_SHAPES].v[k.i[AX_SHAPES]].b;
            s->threads = (uint32_t)ax[AX_THREADS].v[k.i[AX_THREADS]].a;
            s->seed = (uint64_t)ax[AX_SEEDS].v[k.i[AX_SEEDS]].a;
            const char *dev = ax[AX_DEVICES].v[k.i[AX_DEVICES]].s;
            char term[32];
            snprintf(term, sizeof term, "backend=%s", fw->name);
            int w = selector_with(dev, term, s->selector, sizeof s->selector);
            s->reps = dr->reps;
            s->warmup = dr->warmup;
            s->timeout_ms = dr->timeout_ms;
            s->priority = dr->priority;
            if (w < 0 || (size_t)w >= sizeof s->selector) {
                err = failf(c, QF_EINVAL, fw->at, "frameworks: %s: the device selector {%s} "
                            "with backend=%s is longer than %d bytes", fw->name, dev, fw->name,
                            QF_JOB_SELECTOR_MAX - 1);
                break;
            }
            err = add_extra(c, jobs, &j, table, cap, fw->formats.v[k.i[1]].at, "frameworks");
        }
    }
    /* then the eval jobs: each model's formats over threads, seeds and devices */
    for (size_t mi = 0; !err && mi < dr->n_model; mi++) {
        const model_entry *me = &dr->model[mi];
        for (k.i[1] = 0; !err && k.i[1] < me->formats.n; k.i[1]++)
        for (k.i[4] = 0; !err && k.i[4] < ax[4].n; k.i[4]++)
        for (k.i[5] = 0; !err && k.i[5] < ax[5].n; k.i[5]++)
        for (k.i[6] = 0; !err && k.i[6] < ax[6].n; k.i[6]++) {
            assert(j < n);
            qf_job_spec *s = &jobs[j];
            copy_str(s->kind, sizeof s->kind, "eval");
            copy_str(s->format, sizeof s->format, me->formats.v[k.i[1]].s);
            copy_str(s->dataset, sizeof s->dataset, me->dataset);
            s->rows = me->ctx;
            s->cols = me->chunks;
            s->threads = (uint32_t)ax[AX_THREADS].v[k.i[AX_THREADS]].a;
            s->seed = (uint64_t)ax[AX_SEEDS].v[k.i[AX_SEEDS]].a;
            copy_str(s->selector, sizeof s->selector, ax[AX_DEVICES].v[k.i[AX_DEVICES]].s);
            s->reps = (uint32_t)me->reps;
            s->warmup = 0;
            s->timeout_ms = dr->timeout_ms;
            s->priority = dr->priority;
            err = add_extra(c, jobs, &j, table, cap, me->formats.v[k.i[1]].at, "models");
        }
    }
    assert(err || j == n);
    free(combos);
    free(table);
    if (err) {
        free(jobs);
        return err;
    }
    *out_jobs = jobs;
    return 0;
}

/* ---- syntax pass ---------------------------------------------------------------------- */

/* libyaml's complaint as FILE:LINE:COL (reader errors only know a byte offset). */
static int syntax_error(ctx *c, const yaml_parser_t *p, const char *text, size_t len)
{
    if (p->error == YAML_MEMORY_ERROR)
        return failf(c, QF_ENOMEM, p->problem_mark, "out of memory while parsing YAML");
    yaml_mark_t m = p->problem_mark;
    if (p->error == YAML_READER_ERROR) {
        m.line = m.column = 0;
        for (size_t i = 0; i < p->problem_offset && i < len; i++) {
            m.column++;
            if (text[i] == '\n') {
                m.line++;
                m.column = 0;
            }
        }
    }
    if (p->context)
        return failf(c, QF_EPARSE, m, "invalid YAML: %s (%s at %zu:%zu)",
                     p->problem ? p->problem : "error", p->context, p->context_mark.line + 1,
                     p->context_mark.column + 1);
    return failf(c, QF_EPARSE, m, "invalid YAML: %s", p->problem ? p->problem : "error");
}

/* Events only: syntax, aliases, documents, depth. Nothing is built, so nothing can blow up. */
static int syntax_pass(ctx *c, const char *text, size_t len)
{
    yaml_parser_t p;
    if (!yaml_parser_initialize(&p))
        return failf(c, QF_ENOMEM, (yaml_mark_t){ 0 }, "out of memory for the YAML parser");
    yaml_parser_set_input_string(&p, (const unsigned char *)text, len);
    int err = 0, depth = 0, docs = 0;
    for (bool done = false; !done && !err;) {
        yaml_event_t ev;
        if (!yaml_parser_parse(&p, &ev)) {
            err = syntax_error(c, &p, text, len);
            break;
        }
        switch (ev.type) {
        case YAML_STREAM_END_EVENT:
            done = true;
            break;
        case YAML_DOCUMENT_START_EVENT:
            if (++docs > 1)
                err = failf(c, QF_EPARSE, ev.start_mark, "a suite file holds one YAML "
                            "document, this is a second one");
            break;
        case YAML_ALIAS_EVENT:
            err = failf(c, QF_EPARSE, ev.start_mark, "aliases (*%s) are not allowed in suites; "
                        "write the values out", (const char *)ev.data.alias.anchor);
            break;
        case YAML_SEQUENCE_START_EVENT:
        case YAML_MAPPING_START_EVENT:
            if (++depth > QF_SUITE_MAX_DEPTH)
                err = failf(c, QF_EPARSE, ev.start_mark, "nested more than %d levels deep",
                            QF_SUITE_MAX_DEPTH);
            break;
        case YAML_SEQUENCE_END_EVENT:
        case YAML_MAPPING_END_EVENT:
            depth--;
            break;
        default:
            break;
        }
        yaml_event_delete(&ev);
    }
    yaml_parser_delete(&p);
    return err;
}

/* ---- public --------------------------------------------------------------------------- */

static void draft_free(draft *dr)
{
    for (int a = 0; a < AX_COUNT; a++)
        free(dr->ax[a].v);
    for (size_t f = 0; f < dr->n_fw; f++)
        free(dr->fw[f].formats.v);
    for (size_t m = 0; m < dr->n_model; m++)
        free(dr->model[m].formats.v);
}

/* Defaults from docs/suites.md; the singleton lists (seeds [42], threads [1], devices [{}])
 * are real items so expansion needs no special case. */
static int draft_init(draft *dr)
{
    memset(dr, 0, sizeof *dr);
    dr->reps = 5;
    dr->warmup = 1;
    dr->timeout_ms = 60 * 1000;
    dr->max_attempts = 3;
    static const int defaults[] = { AX_SEEDS, AX_THREADS, AX_DEVICES };
    for (size_t i = 0; i < sizeof defaults / sizeof defaults[0]; i++) {
        axis *ax = &dr->ax[defaults[i]];
        ax->v = calloc(1, sizeof *ax->v);
        if (!ax->v)
            return QF_ENOMEM;
        ax->n = 1;
    }
    dr->ax[AX_SEEDS].v[0].a = 42;
    dr->ax[AX_THREADS].v[0].a = 1;
    return 0;
}

int qf_suite_parse(const char *text, size_t len, const char *name_for_errors, qf_suite *out,
                   char *why, size_t why_len)
{
    assert(out && (text || len == 0));
    memset(out, 0, sizeof *out);
    if (why && why_len)
        why[0] = '\0';
    ctx c = { .file = name_for_errors ? name_for_errors : "<suite>", .why = why,
              .why_len = why_len };
    if (len > QF_SUITE_MAX_BYTES)
        return failf(&c, QF_ETOOBIG, c.root_at, "%zu bytes, over the suite size limit of %u",
                     len, QF_SUITE_MAX_BYTES);
    int err = syntax_pass(&c, text ? text : "", len);
    if (err)
        return err;

    yaml_parser_t p;
    yaml_document_t doc;
    draft dr;
    if (!yaml_parser_initialize(&p))
        return failf(&c, QF_ENOMEM, c.root_at, "out of memory for the YAML parser");
    yaml_parser_set_input_string(&p, (const unsigned char *)(text ? text : ""), len);
    if (!yaml_parser_load(&p, &doc)) {
        err = syntax_error(&c, &p, text, len);
        yaml_parser_delete(&p);
        return err;
    }
    yaml_parser_delete(&p);
    c.doc = &doc;
    if (draft_init(&dr) != 0) {
        err = failf(&c, QF_ENOMEM, c.root_at, "out of memory");
    } else {
        yaml_node_t *root = yaml_document_get_root_node(&doc);
        uint64_t n = 0;
        qf_job_spec *jobs = NULL;
        if (!root) {
            err = failf(&c, QF_EINVAL, c.root_at, "the suite is empty; expected a map with at "
                        "least name, datasets, ops and shapes");
        } else {
            c.root_at = root->start_mark;
            err = read_map(&c, &dr, root);
        }
        if (!err)
            err = check_draft(&c, &dr, &n);
        if (!err)
            err = expand(&c, &dr, (size_t)n, &jobs);
        if (!err) {
            copy_str(out->name, sizeof out->name, dr.name);
            copy_str(out->baseline, sizeof out->baseline, dr.baseline);
            out->max_attempts = dr.max_attempts;
            out->n_jobs = (size_t)n;
            out->jobs = jobs;
        }
    }
    draft_free(&dr);
    yaml_document_delete(&doc);
    return err;
}

int qf_suite_load(const char *path, qf_suite *out, char *why, size_t why_len)
{
    assert(path && out);
    memset(out, 0, sizeof *out);
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        if (why && why_len)
            snprintf(why, why_len, "%s: cannot open: %s", path, strerror(e));
        return e == ENOENT ? QF_ENOENT : QF_EIO;
    }
    /* one byte past the limit tells "too big" from "exactly at the limit" */
    char *buf = malloc(QF_SUITE_MAX_BYTES + 1);
    size_t n = buf ? fread(buf, 1, QF_SUITE_MAX_BYTES + 1, f) : 0;
    int rerr = ferror(f);
    fclose(f);
    int err;
    if (!buf) {
        err = QF_ENOMEM;
        if (why && why_len)
            snprintf(why, why_len, "%s: out of memory", path);
    } else if (rerr) {
        err = QF_EIO;
        if (why && why_len)
            snprintf(why, why_len, "%s: read error", path);
    } else {
        err = qf_suite_parse(buf, n, path, out, why, why_len);
    }
    free(buf);
    return err;
}

void qf_suite_free(qf_suite *s)
{
    if (!s)
        return;
    free(s->jobs);
    memset(s, 0, sizeof *s);
}
