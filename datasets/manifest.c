/* manifest.c - dataset manifests (qf_manifest.h): one flat YAML mapping per file, via libyaml.
 *
 * A manifest is a single mapping of scalars (and one list, `urls`), so it is read straight
 * from libyaml's event stream rather than through a document tree: the walk below accepts
 * exactly stream > document > mapping > (key, scalar | list of scalars) and refuses the rest
 * (aliases, nested maps, a second document) where it meets them, so nothing can expand or
 * nest behind its back. Every field is then checked as a whole (required fields, fields that
 * exclude each other, the kind's rules) with the line and column of the value that is wrong.
 * Nothing prints; reasons go to why as "FILE:LINE:COL: field: reason".
 *
 * The file must be named after the manifest (NAME.yaml): lookup by name is one open(2), and
 * one folder cannot hold two manifests of one name. Callers: cli/cmd_dataset.c, fetch.c,
 * common/job.c (qf_manifest_ref_parse only), agent/jobs.c. Not hot.
 */
#include "qf_manifest.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <yaml.h>

#include "qf_err.h"
#include "qf_synth.h"

#ifndef QF_MANIFEST_DIR_DEFAULT
#define QF_MANIFEST_DIR_DEFAULT "datasets"
#endif

#define MANIFEST_MAX_BYTES (64u * 1024u)

static const char *const k_kind_names[] = {
    [QF_MANIFEST_TENSOR] = "tensor",           [QF_MANIFEST_MODEL] = "model",
    [QF_MANIFEST_TEXT] = "text",               [QF_MANIFEST_CALIBRATION] = "calibration",
    [QF_MANIFEST_SYNTHETIC] = "synthetic",
};
#define N_KINDS ((int)(sizeof k_kind_names / sizeof k_kind_names[0]))

static const char *const k_format_names[] = {
    [QF_MANIFEST_FMT_NONE] = "", [QF_MANIFEST_FMT_GGUF] = "gguf",
    [QF_MANIFEST_FMT_SAFETENSORS] = "safetensors",
};
#define N_FORMATS ((int)(sizeof k_format_names / sizeof k_format_names[0]))

/* The fields, in the order docs/datasets.md lists them. */
enum field {
    F_NAME, F_KIND, F_FORMAT, F_URL, F_URLS, F_FILE, F_GENERATOR, F_SIZE, F_MAX_SIZE, F_SHA256,
    F_UNVERIFIED, F_TENSOR, F_LICENSE, F_DESCRIPTION, F_COUNT
};
static const char *const k_fields[F_COUNT] = {
    "name", "kind", "format", "url", "urls", "file", "generator", "size", "max_size", "sha256",
    "unverified", "tensor", "license", "description",
};

/* Cache files of a dataset carry these suffixes next to it (fetch.c); a dataset file must not
 * be mistaken for one of them. */
static const char *const k_reserved_suffixes[] = { ".part", ".lock", ".sha256" };

const char *qf_manifest_kind_name(qf_manifest_kind k)
{
    assert((int)k >= 0 && (int)k < N_KINDS);
    return k_kind_names[k];
}

const char *qf_manifest_format_name(qf_manifest_format f)
{
    assert((int)f >= 0 && (int)f < N_FORMATS);
    return k_format_names[f];
}

static bool is_name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '.' || c == '_' || c == '-';
}

static bool is_alnum(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9');
}

/* n bytes of [A-Za-z0-9._-], first one alphanumeric, no "..": safe as one path segment. */
static bool segment_valid(const char *s, size_t n, size_t cap)
{
    if (n == 0 || n >= cap || !is_alnum(s[0]))
        return false;
    for (size_t i = 0; i < n; i++)
        if (!is_name_char(s[i]) || (s[i] == '.' && i + 1 < n && s[i + 1] == '.'))
            return false;
    return true;
}

bool qf_manifest_name_valid(const char *name)
{
    assert(name);
    return segment_valid(name, strlen(name), QF_MANIFEST_NAME_MAX);
}

int qf_manifest_ref_parse(const char *ref, char name[QF_MANIFEST_NAME_MAX],
                          char tensor[QF_MANIFEST_TENSOR_MAX], char *why, size_t why_len)
{
    assert(ref);
    size_t plen = strlen(QF_MANIFEST_REF_PREFIX);
    if (strncmp(ref, QF_MANIFEST_REF_PREFIX, plen) != 0)
        return qf_whyf(QF_EINVAL, why, why_len, "'%.80s' does not start with '%s'", ref,
                     QF_MANIFEST_REF_PREFIX);
    const char *n = ref + plen;
    const char *slash = strchr(n, '/');
    size_t nlen = slash ? (size_t)(slash - n) : strlen(n);
    if (!segment_valid(n, nlen, QF_MANIFEST_NAME_MAX))
        return qf_whyf(QF_EINVAL, why, why_len, "'%.80s': the manifest name must be 1 to %d characters of "
                     "A-Z a-z 0-9 . _ -, starting with a letter or digit, without '..'", ref,
                     QF_MANIFEST_NAME_MAX - 1);
    const char *t = slash ? slash + 1 : "";
    size_t tlen = strlen(t);
    if (slash && !segment_valid(t, tlen, QF_MANIFEST_TENSOR_MAX))
        return qf_whyf(QF_EINVAL, why, why_len, "'%.80s': the tensor name after '/' must be 1 to %d "
                     "characters of A-Z a-z 0-9 . _ -, starting with a letter or digit", ref,
                     QF_MANIFEST_TENSOR_MAX - 1);
    if (name) {
        memcpy(name, n, nlen);
        name[nlen] = '\0';
    }
    if (tensor) {
        memcpy(tensor, t, tlen);
        tensor[tlen] = '\0';
    }
    return 0;
}

const char *qf_manifest_default_dir(void)
{
    const char *env = getenv("QF_MANIFEST_DIR");
    return env && *env ? env : QF_MANIFEST_DIR_DEFAULT;
}

/* ---- reading the events ------------------------------------------------------------------ */

typedef struct value {
    bool        set;
    yaml_mark_t at;
    char       *s;                                /* scalars; owned */
    char       *items[QF_MANIFEST_MAX_URLS];      /* urls; owned */
    yaml_mark_t item_at[QF_MANIFEST_MAX_URLS];
    int         n_items;
    bool        is_list;
} value;

typedef struct ctx {
    const char   *file;
    char         *why;
    size_t        why_len;
    yaml_parser_t parser;
    value         v[F_COUNT];
} ctx;

__attribute__((format(printf, 4, 5)))
static int errat(ctx *c, int err, yaml_mark_t m, const char *fmt, ...)
{
    if (c->why && c->why_len) {
        int n = snprintf(c->why, c->why_len, "%s:%zu:%zu: ", c->file, m.line + 1, m.column + 1);
        if (n >= 0 && (size_t)n < c->why_len) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(c->why + n, c->why_len - (size_t)n, fmt, ap);
            va_end(ap);
        }
    }
    return err;
}

static int next_event(ctx *c, yaml_event_t *ev)
{
    if (!yaml_parser_parse(&c->parser, ev))
        return errat(c, QF_EPARSE, c->parser.problem_mark, "YAML: %s%s%s",
                     c->parser.problem ? c->parser.problem : "syntax error",
                     c->parser.context ? " " : "", c->parser.context ? c->parser.context : "");
    if (ev->type == YAML_ALIAS_EVENT) {
        yaml_mark_t at = ev->start_mark;
        yaml_event_delete(ev);
        return errat(c, QF_EPARSE, at, "aliases are not allowed in manifests; write the value "
                     "out");
    }
    return 0;
}

/* A scalar's text as a fresh C string: no NUL inside, no control characters except the
 * newlines of a block scalar, which become spaces (trailing ones are dropped). */
static int scalar_text(ctx *c, const char *field, const yaml_event_t *ev, char **out)
{
    const char *s = (const char *)ev->data.scalar.value;
    size_t n = ev->data.scalar.length;
    if (strlen(s) != n)
        return errat(c, QF_EINVAL, ev->start_mark, "%s: contains a NUL byte", field);
    while (n > 0 && (s[n - 1] == '\n' || s[n - 1] == ' '))
        n--;
    char *t = malloc(n + 1);
    if (!t)
        return errat(c, QF_ENOMEM, ev->start_mark, "%s: out of memory", field);
    for (size_t i = 0; i < n; i++) {
        unsigned char ch = (unsigned char)s[i];
        if (ch == '\n') {
            ch = ' ';
        } else if (ch < 0x20 || ch == 0x7f) {
            free(t);
            return errat(c, QF_EINVAL, ev->start_mark, "%s: contains a control character",
                         field);
        }
        t[i] = (char)ch;
    }
    t[n] = '\0';
    *out = t;
    return 0;
}

/* The value of field f: a scalar, or for urls a list of scalars. */
static int read_value(ctx *c, enum field f)
{
    value *v = &c->v[f];
    yaml_event_t ev;
    int err = next_event(c, &ev);
    if (err)
        return err;
    v->set = true;
    v->at = ev.start_mark;
    if (ev.type == YAML_SCALAR_EVENT) {
        err = scalar_text(c, k_fields[f], &ev, &v->s);
        yaml_event_delete(&ev);
        return err;
    }
    if (ev.type != YAML_SEQUENCE_START_EVENT || f != F_URLS) {
        err = errat(c, QF_EINVAL, ev.start_mark, "%s: expected %s, got a %s", k_fields[f],
                    f == F_URLS ? "a list of URLs" : "a single value",
                    ev.type == YAML_SEQUENCE_START_EVENT ? "list" : "map");
        yaml_event_delete(&ev);
        return err;
    }
    yaml_event_delete(&ev);
    v->is_list = true;
    for (;;) {
        if ((err = next_event(c, &ev)) != 0)
            return err;
        if (ev.type == YAML_SEQUENCE_END_EVENT) {
            yaml_event_delete(&ev);
            return 0;
        }
        if (ev.type != YAML_SCALAR_EVENT)
            err = errat(c, QF_EINVAL, ev.start_mark, "urls: expected a list of URLs, got a "
                        "nested %s", ev.type == YAML_SEQUENCE_START_EVENT ? "list" : "map");
        else if (v->n_items == QF_MANIFEST_MAX_URLS)
            err = errat(c, QF_ETOOBIG, ev.start_mark, "urls: more than %d mirrors",
                        QF_MANIFEST_MAX_URLS);
        else {
            v->item_at[v->n_items] = ev.start_mark;
            err = scalar_text(c, "urls", &ev, &v->items[v->n_items]);
            if (!err)
                v->n_items++;
        }
        yaml_event_delete(&ev);
        if (err)
            return err;
    }
}

/* stream > document > mapping of known, distinct keys > end of stream. */
static int read_events(ctx *c)
{
    static const yaml_event_type_t opening[] = { YAML_STREAM_START_EVENT,
                                                 YAML_DOCUMENT_START_EVENT,
                                                 YAML_MAPPING_START_EVENT };
    yaml_event_t ev;
    int err;
    for (size_t i = 0; i < sizeof opening / sizeof opening[0]; i++) {
        if ((err = next_event(c, &ev)) != 0)
            return err;
        yaml_event_type_t t = ev.type;
        yaml_mark_t at = ev.start_mark;
        yaml_event_delete(&ev);
        if (t != opening[i])
            return errat(c, QF_EPARSE, at, t == YAML_STREAM_END_EVENT ? "the file is empty" :
                         "expected a map of fields (name: ..., kind: ...)");
    }
    for (;;) {
        if ((err = next_event(c, &ev)) != 0)
            return err;
        if (ev.type == YAML_MAPPING_END_EVENT) {
            yaml_event_delete(&ev);
            break;
        }
        if (ev.type != YAML_SCALAR_EVENT) {
            err = errat(c, QF_EPARSE, ev.start_mark, "expected a field name");
            yaml_event_delete(&ev);
            return err;
        }
        const char *key = (const char *)ev.data.scalar.value;
        int f = 0;
        while (f < F_COUNT && strcmp(key, k_fields[f]) != 0)
            f++;
        if (f == F_COUNT)
            err = errat(c, QF_EINVAL, ev.start_mark, "unknown field '%.40s' (fields: name, "
                        "kind, format, url, urls, file, generator, size, max_size, sha256, "
                        "unverified, tensor, license, description)", key);
        else if (c->v[f].set)
            err = errat(c, QF_EINVAL, ev.start_mark, "%s: given twice", k_fields[f]);
        yaml_event_delete(&ev);
        if (err || (err = read_value(c, (enum field)f)) != 0)
            return err;
    }
    if ((err = next_event(c, &ev)) != 0)
        return err;
    yaml_event_delete(&ev);   /* DOCUMENT_END: the parser yields nothing else here */
    if ((err = next_event(c, &ev)) != 0)
        return err;
    yaml_event_type_t t = ev.type;
    yaml_mark_t at = ev.start_mark;
    yaml_event_delete(&ev);
    if (t != YAML_STREAM_END_EVENT)
        return errat(c, QF_EPARSE, at, "a manifest is one document; found a second one");
    return 0;
}

/* ---- checking the fields ----------------------------------------------------------------- */

static int copy_field(ctx *c, enum field f, char *dst, size_t cap)
{
    size_t n = strlen(c->v[f].s);
    if (n >= cap)
        return errat(c, QF_EINVAL, c->v[f].at, "%s: longer than %zu bytes", k_fields[f],
                     cap - 1);
    memcpy(dst, c->v[f].s, n + 1);
    return 0;
}

static int require(ctx *c, enum field f, const char *why_needed, yaml_mark_t map_at)
{
    if (c->v[f].set && c->v[f].s && c->v[f].s[0])
        return 0;
    if (c->v[f].set)
        return errat(c, QF_EINVAL, c->v[f].at, "%s: must not be empty", k_fields[f]);
    return errat(c, QF_EINVAL, map_at, "%s: missing (%s)", k_fields[f], why_needed);
}

static int forbid(ctx *c, enum field f, const char *kind)
{
    if (!c->v[f].set)
        return 0;
    return errat(c, QF_EINVAL, c->v[f].at, "%s: not allowed for kind %s", k_fields[f], kind);
}

/* Strict base-10 unsigned integer in [1, 2^62]. */
static int bytes_of(ctx *c, enum field f, uint64_t *out)
{
    const char *s = c->v[f].s;
    size_t digits = strspn(s, "0123456789");
    uint64_t v = 0;
    bool ok = digits > 0 && !s[digits] && digits <= 19;
    for (size_t i = 0; ok && i < digits; i++)
        v = v * 10 + (uint64_t)(s[i] - '0');
    if (!ok || v == 0 || v > ((uint64_t)1 << 62))
        return errat(c, QF_EINVAL, c->v[f].at, "%s: expected a number of bytes from 1 to "
                     "2^62, got '%.40s'", k_fields[f], s);
    *out = v;
    return 0;
}

static int url_check(ctx *c, const char *u, yaml_mark_t at, const char *field)
{
    if (strncmp(u, "https://", 8) != 0 && strncmp(u, "http://", 7) != 0)
        return errat(c, QF_EINVAL, at, "%s: '%.80s' is not an http:// or https:// URL",
                     field, u);
    if (strlen(u) >= QF_MANIFEST_URL_MAX)
        return errat(c, QF_EINVAL, at, "%s: longer than %d bytes", field,
                     QF_MANIFEST_URL_MAX - 1);
    for (const char *p = u; *p; p++)
        if (*p == ' ' || (unsigned char)*p > 0x7e)
            return errat(c, QF_EINVAL, at, "%s: '%.80s' contains a space or a non-ASCII "
                         "byte (percent-encode it)", field, u);
    return 0;
}

/* The cache file name a URL implies: its last path segment, without query or fragment. */
static void url_basename(const char *u, char *out, size_t cap)
{
    const char *host = strstr(u, "://");
    host = host ? host + 3 : u;
    const char *end = host + strcspn(host, "?#");
    const char *start = end;
    while (start > host && start[-1] != '/')
        start--;
    size_t n = start > host ? (size_t)(end - start) : 0;   /* a bare host has no file */
    if (n >= cap)
        n = 0;
    memcpy(out, start, n);
    out[n] = '\0';
}

static bool file_name_valid(const char *s)
{
    size_t n = strlen(s);
    if (!segment_valid(s, n, QF_MANIFEST_FILE_MAX))
        return false;
    for (size_t i = 0; i < sizeof k_reserved_suffixes / sizeof k_reserved_suffixes[0]; i++) {
        size_t k = strlen(k_reserved_suffixes[i]);
        if (n >= k && strcmp(s + n - k, k_reserved_suffixes[i]) == 0)
            return false;
    }
    return true;
}

static int check_synthetic(ctx *c, qf_manifest *m, yaml_mark_t map_at)
{
    static const enum field none[] = { F_FORMAT, F_URL, F_URLS, F_FILE, F_SIZE, F_MAX_SIZE,
                                       F_SHA256, F_UNVERIFIED, F_TENSOR };
    int err;
    for (size_t i = 0; i < sizeof none / sizeof none[0]; i++)
        if ((err = forbid(c, none[i], "synthetic")) != 0)
            return err;
    if ((err = require(c, F_GENERATOR, "kind synthetic names its generator", map_at)) ||
        (err = copy_field(c, F_GENERATOR, m->generator, sizeof m->generator)))
        return err;
    for (int d = QF_SYNTH_GAUSSIAN; d <= QF_SYNTH_STUDENT_T; d++) {
        char g[64];
        snprintf(g, sizeof g, "synth:%s", qf_synth_dist_name((qf_synth_dist)d));
        if (strcmp(g, m->generator) == 0)
            return 0;
    }
    return errat(c, QF_EINVAL, c->v[F_GENERATOR].at, "generator: unknown generator '%s' "
                 "(expected synth:gaussian, synth:laplace or synth:student-t)", m->generator);
}

static int check_download(ctx *c, qf_manifest *m, yaml_mark_t map_at)
{
    int err;
    if ((err = forbid(c, F_GENERATOR, qf_manifest_kind_name(m->kind))) != 0)
        return err;

    /* format: required for files of tensors, meaningless for the others */
    bool tensors = m->kind == QF_MANIFEST_TENSOR || m->kind == QF_MANIFEST_MODEL;
    if (tensors) {
        if ((err = require(c, F_FORMAT, "kinds tensor and model name gguf or safetensors",
                           map_at)) != 0)
            return err;
        int f = 1;
        while (f < N_FORMATS && strcmp(c->v[F_FORMAT].s, k_format_names[f]) != 0)
            f++;
        if (f == N_FORMATS)
            return errat(c, QF_EINVAL, c->v[F_FORMAT].at, "format: unknown format '%.40s' "
                         "(expected gguf or safetensors)", c->v[F_FORMAT].s);
        m->format = (qf_manifest_format)f;
    } else if ((err = forbid(c, F_FORMAT, qf_manifest_kind_name(m->kind))) ||
               (err = forbid(c, F_TENSOR, qf_manifest_kind_name(m->kind)))) {
        return err;
    }

    /* url xor urls */
    if (c->v[F_URL].set && c->v[F_URLS].set)
        return errat(c, QF_EINVAL, c->v[F_URLS].at, "urls: give url or urls, not both");
    if (c->v[F_URL].set) {
        if ((err = require(c, F_URL, "", map_at)) ||
            (err = url_check(c, c->v[F_URL].s, c->v[F_URL].at, "url")))
            return err;
        snprintf(m->urls[0], sizeof m->urls[0], "%s", c->v[F_URL].s);
        m->n_urls = 1;
    } else if (c->v[F_URLS].set) {
        value *v = &c->v[F_URLS];
        if (!v->is_list || v->n_items == 0)
            return errat(c, QF_EINVAL, v->at, "urls: expected a non-empty list of URLs");
        for (int i = 0; i < v->n_items; i++) {
            if ((err = url_check(c, v->items[i], v->item_at[i], "urls")) != 0)
                return err;
            snprintf(m->urls[i], sizeof m->urls[i], "%s", v->items[i]);
        }
        m->n_urls = v->n_items;
    } else {
        return errat(c, QF_EINVAL, map_at, "url: missing (kind %s is downloaded: give url or "
                     "urls)", qf_manifest_kind_name(m->kind));
    }

    /* size xor max_size */
    if (c->v[F_SIZE].set == c->v[F_MAX_SIZE].set)
        return errat(c, QF_EINVAL, c->v[F_SIZE].set ? c->v[F_MAX_SIZE].at : map_at,
                     "size: give exactly one of size (the exact byte count) and max_size "
                     "(an upper bound, when the exact size is not known)");
    m->size_exact = c->v[F_SIZE].set;
    if ((err = bytes_of(c, m->size_exact ? F_SIZE : F_MAX_SIZE, &m->size)) != 0)
        return err;

    /* sha256 xor unverified: true */
    bool unverified = false;
    if (c->v[F_UNVERIFIED].set) {
        const char *s = c->v[F_UNVERIFIED].s;
        if (strcmp(s, "true") != 0 && strcmp(s, "false") != 0)
            return errat(c, QF_EINVAL, c->v[F_UNVERIFIED].at, "unverified: expected true or "
                         "false, got '%.40s'", s);
        unverified = s[0] == 't';
    }
    if (c->v[F_SHA256].set) {
        if (unverified)
            return errat(c, QF_EINVAL, c->v[F_UNVERIFIED].at, "unverified: true contradicts "
                         "the sha256 given");
        const char *h = c->v[F_SHA256].s;
        if (strlen(h) != 64 || strspn(h, "0123456789abcdefABCDEF") != 64)
            return errat(c, QF_EINVAL, c->v[F_SHA256].at, "sha256: expected 64 hex digits, "
                         "got '%.80s'", h);
        for (int i = 0; i < 64; i++)
            m->sha256[i] = (char)(h[i] >= 'A' && h[i] <= 'F' ? h[i] - 'A' + 'a' : h[i]);
        m->sha256[64] = '\0';
    } else if (!unverified) {
        return errat(c, QF_EINVAL, map_at, "sha256: missing (give the file's SHA-256, or "
                     "`unverified: true` when it is not known)");
    }
    m->unverified = unverified;

    /* file: given, or the URL's last segment */
    if (c->v[F_FILE].set) {
        if ((err = require(c, F_FILE, "", map_at)) != 0)
            return err;
        if (!file_name_valid(c->v[F_FILE].s))
            return errat(c, QF_EINVAL, c->v[F_FILE].at, "file: '%.80s' is not a plain file "
                         "name (A-Z a-z 0-9 . _ -, starting with a letter or digit, not "
                         "ending in .part, .lock or .sha256)", c->v[F_FILE].s);
        snprintf(m->file, sizeof m->file, "%s", c->v[F_FILE].s);
    } else {
        url_basename(m->urls[0], m->file, sizeof m->file);
        if (!file_name_valid(m->file))
            return errat(c, QF_EINVAL, c->v[F_URL].set ? c->v[F_URL].at : c->v[F_URLS].at,
                         "file: the URL does not end in a usable file name ('%s'); give "
                         "`file:`", m->file);
    }

    if (c->v[F_TENSOR].set) {
        if ((err = require(c, F_TENSOR, "", map_at)) != 0)
            return err;
        if (!segment_valid(c->v[F_TENSOR].s, strlen(c->v[F_TENSOR].s), QF_MANIFEST_TENSOR_MAX))
            return errat(c, QF_EINVAL, c->v[F_TENSOR].at, "tensor: '%.80s' is not a tensor "
                         "name (A-Z a-z 0-9 . _ -, under %d bytes)", c->v[F_TENSOR].s,
                         QF_MANIFEST_TENSOR_MAX);
        snprintf(m->tensor, sizeof m->tensor, "%s", c->v[F_TENSOR].s);
    }
    return 0;
}

static int check_fields(ctx *c, qf_manifest *m, const char *path, yaml_mark_t map_at)
{
    int err;
    if ((err = require(c, F_NAME, "every manifest has a name", map_at)) != 0)
        return err;
    if (!qf_manifest_name_valid(c->v[F_NAME].s))
        return errat(c, QF_EINVAL, c->v[F_NAME].at, "name: '%.80s' must be 1 to %d characters "
                     "of A-Z a-z 0-9 . _ -, starting with a letter or digit, without '..'",
                     c->v[F_NAME].s, QF_MANIFEST_NAME_MAX - 1);
    snprintf(m->name, sizeof m->name, "%s", c->v[F_NAME].s);

    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t nlen = strlen(m->name);
    if (strncmp(base, m->name, nlen) != 0 || strcmp(base + nlen, ".yaml") != 0)
        return errat(c, QF_EINVAL, c->v[F_NAME].at, "name: '%s' does not match the file name "
                     "'%s' (a manifest is called NAME.yaml)", m->name, base);

    if ((err = require(c, F_KIND, "tensor, model, text, calibration or synthetic", map_at)))
        return err;
    int k = 0;
    while (k < N_KINDS && strcmp(c->v[F_KIND].s, k_kind_names[k]) != 0)
        k++;
    if (k == N_KINDS)
        return errat(c, QF_EINVAL, c->v[F_KIND].at, "kind: unknown kind '%.40s' (expected "
                     "tensor, model, text, calibration or synthetic)", c->v[F_KIND].s);
    m->kind = (qf_manifest_kind)k;

    if ((err = require(c, F_LICENSE, "say under which terms the data may be used", map_at)) ||
        (err = copy_field(c, F_LICENSE, m->license, sizeof m->license)) ||
        (err = require(c, F_DESCRIPTION, "one line saying what the data is", map_at)) ||
        (err = copy_field(c, F_DESCRIPTION, m->description, sizeof m->description)))
        return err;

    return m->kind == QF_MANIFEST_SYNTHETIC ? check_synthetic(c, m, map_at)
                                            : check_download(c, m, map_at);
}

/* ---- files ---------------------------------------------------------------------------- */

/* The whole file, NUL-terminated, at most MANIFEST_MAX_BYTES. */
static int slurp(const char *path, char **out, size_t *len, char *why, size_t why_len)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        int e = errno;
        qf_whyf(QF_EINVAL, why, why_len, "%s: cannot open: %s", path, strerror(e));
        return e == ENOENT ? QF_ENOENT : QF_EIO;
    }
    char *buf = malloc(MANIFEST_MAX_BYTES + 1);
    if (!buf) {
        fclose(f);
        qf_whyf(QF_EINVAL, why, why_len, "%s: out of memory", path);
        return QF_ENOMEM;
    }
    size_t n = fread(buf, 1, MANIFEST_MAX_BYTES + 1, f);
    bool bad = ferror(f);
    fclose(f);
    if (bad || n > MANIFEST_MAX_BYTES) {
        free(buf);
        qf_whyf(QF_EINVAL, why, why_len, bad ? "%s: read error" : "%s: over %u bytes; a manifest is a few "
              "lines", path, MANIFEST_MAX_BYTES);
        return bad ? QF_EIO : QF_ETOOBIG;
    }
    buf[n] = '\0';
    *out = buf;
    *len = n;
    return 0;
}

int qf_manifest_load(const char *path, qf_manifest *m, char *why, size_t why_len)
{
    assert(path && m);
    memset(m, 0, sizeof *m);
    if (strlen(path) >= sizeof m->path) {
        qf_whyf(QF_EINVAL, why, why_len, "%.80s...: path too long", path);
        return QF_ETOOBIG;
    }
    char *text;
    size_t len;
    int err = slurp(path, &text, &len, why, why_len);
    if (err)
        return err;

    ctx c = { .file = path, .why = why, .why_len = why_len };
    if (!yaml_parser_initialize(&c.parser)) {
        free(text);
        qf_whyf(QF_EINVAL, why, why_len, "%s: out of memory", path);
        return QF_ENOMEM;
    }
    yaml_parser_set_input_string(&c.parser, (const unsigned char *)text, len);
    err = read_events(&c);
    if (!err) {
        yaml_mark_t top = { 0 };
        err = check_fields(&c, m, path, top);
    }
    yaml_parser_delete(&c.parser);
    for (int f = 0; f < F_COUNT; f++) {
        free(c.v[f].s);
        for (int i = 0; i < c.v[f].n_items; i++)
            free(c.v[f].items[i]);
    }
    free(text);
    if (err) {
        memset(m, 0, sizeof *m);
        return err;
    }
    snprintf(m->path, sizeof m->path, "%s", path);
    return 0;
}

int qf_manifest_find(const char *dir, const char *name, qf_manifest *m, char *why,
                     size_t why_len)
{
    assert(dir && name && m);
    memset(m, 0, sizeof *m);
    if (!qf_manifest_name_valid(name))
        return qf_whyf(QF_EINVAL, why, why_len, "'%.80s' is not a valid manifest name", name);
    char path[QF_MANIFEST_PATH_MAX];
    if ((size_t)snprintf(path, sizeof path, "%s/%s.yaml", dir, name) >= sizeof path) {
        qf_whyf(QF_EINVAL, why, why_len, "%.80s...: manifest folder path too long", dir);
        return QF_ETOOBIG;
    }
    char lwhy[QF_MANIFEST_PATH_MAX + 256];
    int err = qf_manifest_load(path, m, lwhy, sizeof lwhy);
    if (err == QF_ENOENT) {
        qf_whyf(QF_EINVAL, why, why_len, "no manifest named '%s' in %s (see `qfleet dataset list`)", name,
              dir);
        return QF_ENOENT;
    }
    if (err)
        qf_whyf(QF_EINVAL, why, why_len, "%s", lwhy);
    return err;
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(((const qf_manifest *)a)->name, ((const qf_manifest *)b)->name);
}

int qf_manifest_list(const char *dir, qf_manifest **out, size_t *n, char *why, size_t why_len)
{
    assert(dir && out && n);
    *out = NULL;
    *n = 0;
    DIR *d = opendir(dir);
    if (!d) {
        int e = errno;
        qf_whyf(QF_EINVAL, why, why_len, "%s: cannot open the manifest folder: %s", dir, strerror(e));
        return e == ENOENT ? QF_ENOENT : QF_EIO;
    }
    qf_manifest *v = NULL;
    size_t cnt = 0, cap = 0;
    int err = 0;
    struct dirent *e;
    while (!err && (e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (e->d_name[0] == '.' || len < 6 || strcmp(e->d_name + len - 5, ".yaml") != 0)
            continue;
        if (cnt == QF_MANIFEST_MAX_COUNT) {
            err = QF_ETOOBIG;
            qf_whyf(QF_EINVAL, why, why_len, "%s: more than %d manifests", dir, QF_MANIFEST_MAX_COUNT);
            break;
        }
        if (cnt == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            qf_manifest *nv = realloc(v, ncap * sizeof *nv);
            if (!nv) {
                err = QF_ENOMEM;
                qf_whyf(QF_EINVAL, why, why_len, "%s: out of memory", dir);
                break;
            }
            v = nv;
            cap = ncap;
        }
        char path[QF_MANIFEST_PATH_MAX];
        if ((size_t)snprintf(path, sizeof path, "%s/%s", dir, e->d_name) >= sizeof path) {
            err = QF_ETOOBIG;
            qf_whyf(QF_EINVAL, why, why_len, "%s/%.40s...: path too long", dir, e->d_name);
            break;
        }
        if ((err = qf_manifest_load(path, &v[cnt], why, why_len)) == 0)
            cnt++;
    }
    closedir(d);
    if (err) {
        free(v);
        return err;
    }
    if (cnt > 1)
        qsort(v, cnt, sizeof *v, cmp_name);
    *out = v;
    *n = cnt;
    return 0;
}
