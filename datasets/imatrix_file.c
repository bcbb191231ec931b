/* imatrix_file.c - the imatrix file reader (qf_imatrix_file.h; formats in docs/datasets.md).
 *
 * The legacy .dat file is read whole into memory and walked with a cursor that checks every
 * read against the bytes left, so no length in the file can send a read past its end; the
 * GGUF file goes through the validating GGUF reader (datasets/gguf.c), which has already
 * checked every tensor's bytes lie inside the file, and is closed again once its sums are
 * divided into our own arrays. Both end in the same entries: name, nval, nmat, values, each
 * entry and value checked (names unique and NUL-free, values finite and non-negative).
 * Semantics follow llama-quantize's load_legacy_imatrix / load_imatrix (tools/quantize), with
 * one difference: where llama.cpp tolerates a malformed file (a negative ncall, a duplicate
 * entry, garbage after the last entry, a non-finite value), we refuse it with a reason.
 */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "qf_err.h"
#include "qf_gguf.h"
#include "qf_imatrix_file.h"

#define MAX_FILE_BYTES (4ull << 30)   /* the largest imatrix files (big MoE models) are ~1 GB */
#define DAT_MIN_ENTRY  17u            /* name length, 1 name byte, ncall, nval, one value */

struct qf_imatrix_file {
    const char       *kind;
    int64_t           chunks;
    char             *dataset;
    qf_imatrix_entry *e;
    size_t            n;
};

void qf_imatrix_file_destroy(qf_imatrix_file **m)
{
    if (!m || !*m)
        return;
    for (size_t i = 0; i < (*m)->n; i++) {
        free((char *)(*m)->e[i].name);
        free((float *)(*m)->e[i].values);
    }
    free((*m)->e);
    free((*m)->dataset);
    free(*m);
    *m = NULL;
}

const char *qf_imatrix_file_kind(const qf_imatrix_file *m) { return m->kind; }
int64_t     qf_imatrix_file_chunks(const qf_imatrix_file *m) { return m->chunks; }
const char *qf_imatrix_file_dataset(const qf_imatrix_file *m) { return m->dataset; }
size_t      qf_imatrix_file_count(const qf_imatrix_file *m) { return m->n; }

const qf_imatrix_entry *qf_imatrix_file_at(const qf_imatrix_file *m, size_t i)
{
    return i < m->n ? &m->e[i] : NULL;
}

const qf_imatrix_entry *qf_imatrix_file_find(const qf_imatrix_file *m, const char *name)
{
    for (size_t i = 0; i < m->n; i++)
        if (strcmp(m->e[i].name, name) == 0)
            return &m->e[i];
    return NULL;
}

/* Checks the values of entry idx and that its name is new; the message names both. */
static int check_entry(const char *path, const qf_imatrix_file *m, size_t idx, char *why,
                       size_t why_len)
{
    const qf_imatrix_entry *e = &m->e[idx];
    for (int64_t i = 0; i < e->nval; i++)
        if (!isfinite(e->values[i]) || e->values[i] < 0.0f)
            return qf_whyf(QF_EPARSE, why, why_len, "%s: entry %zu ('%s'): value %" PRId64 " is "
                        "%g (importances are finite and >= 0)", path, idx, e->name, i,
                        (double)e->values[i]);
    for (size_t j = 0; j < idx; j++)
        if (strcmp(m->e[j].name, e->name) == 0)
            return qf_whyf(QF_EPARSE, why, why_len, "%s: entries %zu and %zu are both '%s'", path,
                        j, idx, e->name);
    return 0;
}

/* --- legacy .dat ----------------------------------------------------------------------------- */

typedef struct cursor {
    const uint8_t *p;
    size_t         left, size;
} cursor;

static size_t at(const cursor *c)
{
    return c->size - c->left;
}

static bool take(cursor *c, void *out, size_t n)
{
    if (c->left < n)
        return false;
    memcpy(out, c->p, n);
    c->p += n;
    c->left -= n;
    return true;
}

/* int32 little-endian, byte by byte (the file's order on any host). */
static bool take_i32(cursor *c, int32_t *v)
{
    uint8_t b[4];
    if (!take(c, b, 4))
        return false;
    *v = (int32_t)((uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
                   (uint32_t)b[3] << 24);
    return true;
}

static bool take_f32(cursor *c, float *v)
{
    int32_t bits;
    if (!take_i32(c, &bits))
        return false;
    memcpy(v, &bits, sizeof *v);
    return true;
}

static int read_whole(const char *path, uint8_t **buf, size_t *size, char *why, size_t why_len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return qf_whyf(errno == ENOENT ? QF_ENOENT : QF_EIO, why, why_len, "%s: cannot open: %s",
                    path, strerror(errno));
    struct stat sb;
    int err = 0;
    if (fstat(fileno(f), &sb) != 0 || !S_ISREG(sb.st_mode))
        err = qf_whyf(QF_EIO, why, why_len, "%s: not a regular file", path);
    else if ((unsigned long long)sb.st_size > MAX_FILE_BYTES)
        err = qf_whyf(QF_ETOOBIG, why, why_len, "%s: %lld bytes, over the %llu GiB limit", path,
                   (long long)sb.st_size, MAX_FILE_BYTES >> 30);
    else if (!(*buf = malloc(sb.st_size ? (size_t)sb.st_size : 1)))
        err = QF_ENOMEM;
    else if (fread(*buf, 1, (size_t)sb.st_size, f) != (size_t)sb.st_size)
        err = qf_whyf(QF_EIO, why, why_len, "%s: read error", path);
    fclose(f);
    if (err) {
        free(*buf);
        *buf = NULL;
        return err;
    }
    *size = (size_t)sb.st_size;
    return 0;
}

/* One entry at the cursor into m->e[m->n]. */
static int dat_entry(const char *path, cursor *c, qf_imatrix_file *m, char *why, size_t why_len)
{
    const size_t idx = m->n, start = at(c);
    int32_t len, ncall, nval;
    if (!take_i32(c, &len))
        return qf_whyf(QF_EPARSE, why, why_len, "%s: entry %zu at byte %zu: truncated (no name "
                    "length)", path, idx, start);
    if (len <= 0 || (size_t)len > c->left)
        return qf_whyf(QF_EPARSE, why, why_len, "%s: entry %zu at byte %zu: name length %" PRId32
                    " (%zu bytes left in the file)", path, idx, start, len, c->left);
    char *name = malloc((size_t)len + 1);
    if (!name)
        return QF_ENOMEM;
    take(c, name, (size_t)len);
    name[len] = '\0';
    qf_imatrix_entry *e = &m->e[idx];
    e->name = name;
    m->n++;                                   /* owned by m from here on */
    if (strlen(name) != (size_t)len)
        return qf_whyf(QF_EPARSE, why, why_len, "%s: entry %zu: its name holds a NUL byte", path,
                    idx);
    if (!take_i32(c, &ncall) || !take_i32(c, &nval))
        return qf_whyf(QF_EPARSE, why, why_len, "%s: entry %zu ('%s'): truncated (no call and "
                    "value counts)", path, idx, name);
    if (ncall < 0)
        return qf_whyf(QF_EPARSE, why, why_len, "%s: entry %zu ('%s'): call count %" PRId32
                    " is negative", path, idx, name, ncall);
    if (nval < 1 || (size_t)nval > c->left / 4)
        return qf_whyf(QF_EPARSE, why, why_len, "%s: entry %zu ('%s'): %" PRId32 " values (%zu "
                    "bytes left in the file hold at most %zu)", path, idx, name, nval, c->left,
                    c->left / 4);
    float *v = malloc((size_t)nval * sizeof *v);
    if (!v)
        return QF_ENOMEM;
    for (int32_t i = 0; i < nval; i++) {
        take_f32(c, &v[i]);
        if (ncall > 0)                       /* stored as mean * ncall (llama-imatrix) */
            v[i] /= (float)ncall;
    }
    e->values = v;
    e->nval = nval;
    e->nmat = 1;     /* the legacy format does not say how many experts share an entry */
    return check_entry(path, m, idx, why, why_len);
}

/* After the entries: nothing, the chunk count, or the chunk count and the dataset name. */
static int dat_trailer(const char *path, cursor *c, qf_imatrix_file *m, char *why,
                       size_t why_len)
{
    const size_t start = at(c), trailing = c->left;
    int32_t chunks, len;
    if (trailing == 0)
        return 0;
    if (!take_i32(c, &chunks) || chunks < 0)
        return qf_whyf(QF_EPARSE, why, why_len, "%s: at byte %zu, after the last entry: %zu "
                    "bytes that are not a chunk count", path, start, trailing);
    m->chunks = chunks;
    if (c->left == 0)
        return 0;
    if (!take_i32(c, &len) || len < 0 || (size_t)len != c->left)
        return qf_whyf(QF_EPARSE, why, why_len, "%s: at byte %zu, after the chunk count: the "
                    "dataset name's length %" PRId32 " does not match the %zu bytes left", path,
                    start + 4, len, c->left);
    free(m->dataset);
    if (!(m->dataset = malloc((size_t)len + 1)))
        return QF_ENOMEM;
    take(c, m->dataset, (size_t)len);
    m->dataset[len] = '\0';
    return 0;
}

static int open_dat(const char *path, const uint8_t *buf, size_t size, qf_imatrix_file *m,
                    char *why, size_t why_len)
{
    cursor c = { .p = buf, .left = size, .size = size };
    int32_t n;
    if (!take_i32(&c, &n))
        return qf_whyf(QF_EPARSE, why, why_len, "%s: %zu bytes: too short for an imatrix file "
                    "(neither GGUF nor the legacy format's entry count)", path, size);
    if (n < 1)
        return qf_whyf(QF_EPARSE, why, why_len, "%s: legacy imatrix with entry count %" PRId32
                    " (at least 1)", path, n);
    if ((size_t)n > c.left / DAT_MIN_ENTRY)
        return qf_whyf(QF_EPARSE, why, why_len, "%s: legacy imatrix with entry count %" PRId32
                    ": the file's %zu bytes hold at most %zu", path, n, size,
                    c.left / DAT_MIN_ENTRY);
    if (!(m->e = calloc((size_t)n, sizeof *m->e)))
        return QF_ENOMEM;
    for (int32_t i = 0; i < n; i++) {
        int err = dat_entry(path, &c, m, why, why_len);
        if (err)
            return err;
    }
    return dat_trailer(path, &c, m, why, why_len);
}

/* --- GGUF ------------------------------------------------------------------------------------- */

#define KEY_DATASETS    "imatrix.datasets"
#define KEY_CHUNK_COUNT "imatrix.chunk_count"
#define KEY_CHUNK_SIZE  "imatrix.chunk_size"

static bool strip_suffix(const char *name, const char *suffix, char *base, size_t base_len)
{
    size_t a = strlen(name), b = strlen(suffix);
    if (a <= b || strcmp(name + a - b, suffix) != 0 || a - b >= base_len)
        return false;
    memcpy(base, name, a - b);
    base[a - b] = '\0';
    return true;
}

static int64_t elements(const qf_gguf_tensor *t)
{
    int64_t n = 1;
    for (uint32_t d = 0; d < t->n_dims; d++)
        n *= t->dims[d];
    return n;
}

static float f32_at(const qf_gguf_tensor *t, int64_t i)
{
    float v;
    memcpy(&v, (const char *)t->data + i * (int64_t)sizeof v, sizeof v);
    return v;
}

static int by_name(const void *a, const void *b)
{
    return strcmp(((const qf_imatrix_entry *)a)->name, ((const qf_imatrix_entry *)b)->name);
}

/* Entry base from its sums and counts tensors: mean = sum / count per matrix, 1 where a
 * matrix's count is 0 (llama-quantize's rule for experts that saw no input). */
static int gguf_entry(const char *path, const char *base, const qf_gguf_tensor *sums,
                      const qf_gguf_tensor *counts, qf_imatrix_file *m, char *why,
                      size_t why_len)
{
    const size_t idx = m->n;
    if (!sums || !counts)
        return qf_whyf(QF_EPARSE, why, why_len, "%s: entry '%s' has %s but no %s", path, base,
                    sums ? "in_sum2" : "counts", sums ? "counts" : "in_sum2");
    const qf_gguf_tensor *bad = sums->type != 0 ? sums : counts->type != 0 ? counts : NULL;
    if (bad)
        return qf_whyf(QF_EPARSE, why, why_len, "%s: tensor '%s' has type %s (imatrix tensors "
                    "are F32)", path, bad->name, qf_gguf_type_get(bad->type)->name);
    const int64_t ncols = sums->dims[0], nval = elements(sums), nmat = nval / ncols;
    if (elements(counts) != nmat)
        return qf_whyf(QF_EPARSE, why, why_len, "%s: entry '%s': %" PRId64 " counts for %" PRId64
                    " matrices of in_sum2", path, base, elements(counts), nmat);
    char *name = strdup(base);
    float *v = malloc((size_t)nval * sizeof *v);
    if (!name || !v) {
        free(name);
        free(v);
        return QF_ENOMEM;
    }
    qf_imatrix_entry *e = &m->e[idx];
    *e = (qf_imatrix_entry){ .name = name, .values = v, .nval = nval, .nmat = nmat };
    m->n++;
    for (int64_t j = 0; j < nmat; j++) {
        const float count = f32_at(counts, j);
        if (!isfinite(count) || count < 0.0f)
            return qf_whyf(QF_EPARSE, why, why_len, "%s: entry '%s': count %" PRId64 " is %g "
                        "(counts are finite and >= 0)", path, base, j, (double)count);
        for (int64_t i = 0; i < ncols; i++) {
            const float s = f32_at(sums, j * ncols + i);
            if (!isfinite(s) || s < 0.0f)
                return qf_whyf(QF_EPARSE, why, why_len, "%s: entry '%s': in_sum2 value %" PRId64
                            " is %g (sums of squares are finite and >= 0)", path, base,
                            j * ncols + i, (double)s);
            v[j * ncols + i] = count > 0.0f ? s / count : 1.0f;
        }
    }
    return check_entry(path, m, idx, why, why_len);
}

/* Reads the three keys llama-quantize insists on. */
static int gguf_meta(const char *path, const qf_gguf *g, qf_imatrix_file *m, char *why,
                     size_t why_len)
{
    const void *arr;
    uint64_t n;
    int64_t chunks, chunk_size;
    if (qf_gguf_get_arr(g, KEY_DATASETS, QF_GGUF_STRING, &arr, &n) != 0 ||
        qf_gguf_get_int(g, KEY_CHUNK_COUNT, &chunks) != 0 ||
        qf_gguf_get_int(g, KEY_CHUNK_SIZE, &chunk_size) != 0)
        return qf_whyf(QF_EPARSE, why, why_len, "%s: GGUF without the imatrix keys " KEY_DATASETS
                    " (string array), " KEY_CHUNK_COUNT " and " KEY_CHUNK_SIZE " (integers): "
                    "not an imatrix file", path);
    if (chunks < 0 || chunk_size < 0)
        return qf_whyf(QF_EPARSE, why, why_len, "%s: negative " KEY_CHUNK_COUNT " or "
                    KEY_CHUNK_SIZE, path);
    m->chunks = chunks;
    if (n > 0) {
        const qf_gguf_str *s = arr;
        free(m->dataset);
        if (!(m->dataset = strdup(s[n - 1].s)))
            return QF_ENOMEM;
    }
    return 0;
}

static int open_gguf(const char *path, qf_imatrix_file *m, char *why, size_t why_len)
{
    qf_gguf *g = NULL;
    int err = qf_gguf_open(path, &g, why, why_len);
    if (err)
        return err;
    const size_t nt = qf_gguf_tensor_count(g);
    if (nt == 0) {
        err = qf_whyf(QF_EPARSE, why, why_len, "%s: GGUF imatrix with no tensors", path);
        goto out;
    }
    if ((err = gguf_meta(path, g, m, why, why_len)))
        goto out;
    if (!(m->e = calloc(nt, sizeof *m->e))) {
        err = QF_ENOMEM;
        goto out;
    }
    /* pair each "<base>.in_sum2" with its "<base>.counts"; ".in_sum" (the mean activations
     * newer llama-imatrix keeps for its statistics) and anything else is ignored, as
     * llama-quantize ignores it */
    for (size_t i = 0; i < nt && !err; i++) {
        const qf_gguf_tensor *t = qf_gguf_tensor_at(g, i);
        char base[QF_GGUF_MAX_NAME + 1], other[QF_GGUF_MAX_NAME + 16];
        const qf_gguf_tensor *sums = NULL, *counts = NULL;
        if (strip_suffix(t->name, ".in_sum2", base, sizeof base)) {
            sums = t;
            snprintf(other, sizeof other, "%s.counts", base);
            counts = qf_gguf_find_tensor(g, other);
        } else if (strip_suffix(t->name, ".counts", base, sizeof base)) {
            snprintf(other, sizeof other, "%s.in_sum2", base);
            if ((sums = qf_gguf_find_tensor(g, other)) != NULL)
                continue;                     /* taken with its in_sum2 */
            counts = t;
        } else {
            continue;
        }
        err = gguf_entry(path, base, sums, counts, m, why, why_len);
    }
    if (!err && m->n == 0)
        err = qf_whyf(QF_EPARSE, why, why_len, "%s: GGUF with no <name>.in_sum2 / <name>.counts "
                   "tensor pairs: not an imatrix file", path);
    if (!err)
        qsort(m->e, m->n, sizeof *m->e, by_name);
out:
    qf_gguf_close(&g);
    return err;
}

/* --- open ------------------------------------------------------------------------------------- */

/* True if path starts with the GGUF magic; anything else (including an unreadable file, whose
 * error read_whole then reports) is tried as the legacy format, as llama-quantize does. */
static bool has_gguf_magic(const char *path)
{
    char magic[4];
    FILE *f = fopen(path, "rb");
    bool yes = f && fread(magic, 1, 4, f) == 4 && memcmp(magic, QF_GGUF_MAGIC, 4) == 0;
    if (f)
        fclose(f);
    return yes;
}

int qf_imatrix_file_open(const char *path, qf_imatrix_file **out, char *why, size_t why_len)
{
    *out = NULL;
    if (why && why_len)
        why[0] = '\0';
    qf_imatrix_file *m = calloc(1, sizeof *m);
    if (!m)
        return QF_ENOMEM;
    m->chunks = -1;
    uint8_t *buf = NULL;
    size_t size = 0;
    int err = 0;
    if (has_gguf_magic(path)) {
        m->kind = "gguf";
        err = open_gguf(path, m, why, why_len);
    } else {
        m->kind = "dat";
        err = read_whole(path, &buf, &size, why, why_len);
        if (!err)
            err = open_dat(path, buf, size, m, why, why_len);
    }
    free(buf);
    if (!err && !m->dataset && !(m->dataset = strdup("")))
        err = QF_ENOMEM;
    if (err) {
        if (err == QF_ENOMEM && why && why_len && !why[0])
            snprintf(why, why_len, "%s: out of memory", path);
        qf_imatrix_file_destroy(&m);
        return err;
    }
    *out = m;
    return 0;
}
