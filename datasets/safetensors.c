/* safetensors.c - the safetensors reader (qf_safetensors.h has the contract).
 *
 * Opening a file maps it, parses its JSON header with jansson and checks every tensor entry
 * before anything is handed out; afterwards nothing here can read outside a mapping, because
 * every (data, nbytes) pair was proven to lie inside the data section and to match the
 * tensor's dtype and shape. Sharded checkpoints are a list of such files plus a name index.
 * Not hot: the per-weight work is qf_safetensors_to_float, a plain loop.
 */
#include "qf_safetensors.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qf_err.h"
#include "qf_formats.h"

#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ != __ORDER_LITTLE_ENDIAN__
#error "safetensors data is little-endian; this reader assumes a little-endian host"
#endif

#define INDEX_NAME  "model.safetensors.index.json"
#define SINGLE_NAME "model.safetensors"

static const struct {
    const char *name;
    size_t      size;
} k_dtypes[QF_ST_DTYPE_COUNT] = {
    [QF_ST_F32] = { "F32", 4 },     [QF_ST_F16] = { "F16", 2 },   [QF_ST_BF16] = { "BF16", 2 },
    [QF_ST_I8] = { "I8", 1 },       [QF_ST_U8] = { "U8", 1 },     [QF_ST_I32] = { "I32", 4 },
    [QF_ST_I64] = { "I64", 8 },     [QF_ST_BOOL] = { "BOOL", 1 }, [QF_ST_I16] = { "I16", 2 },
    [QF_ST_U16] = { "U16", 2 },     [QF_ST_U32] = { "U32", 4 },   [QF_ST_U64] = { "U64", 8 },
    [QF_ST_F64] = { "F64", 8 },     [QF_ST_F8_E4M3] = { "F8_E4M3", 1 },
    [QF_ST_F8_E5M2] = { "F8_E5M2", 1 },
};

typedef struct st_file {
    char   *path;
    void   *map;
    size_t  map_len;
    json_t *meta;      /* the "__metadata__" object, or NULL */
} st_file;

struct qf_safetensors {
    st_file      *files;
    size_t        n_files;
    qf_st_tensor *tensors;
    size_t        n_tensors;
    size_t        cap;
    const qf_st_tensor **by_name;   /* into tensors, sorted by name (for find) */
};

const char *qf_st_dtype_name(qf_st_dtype dtype)
{
    assert((unsigned)dtype < QF_ST_DTYPE_COUNT);
    return k_dtypes[dtype].name;
}

size_t qf_st_dtype_size(qf_st_dtype dtype)
{
    assert((unsigned)dtype < QF_ST_DTYPE_COUNT);
    return k_dtypes[dtype].size;
}

static int dtype_from_name(const char *s, qf_st_dtype *out)
{
    for (int i = 0; i < QF_ST_DTYPE_COUNT; i++) {
        if (strcmp(k_dtypes[i].name, s) == 0) {
            *out = (qf_st_dtype)i;
            return 0;
        }
    }
    return QF_EPARSE;
}

/* --- one file ---------------------------------------------------------------------------------- */

static int push_tensor(qf_safetensors *st, qf_st_tensor *t)
{
    if (st->n_tensors == st->cap) {
        size_t cap = st->cap ? st->cap * 2 : 64;
        qf_st_tensor *n = realloc(st->tensors, cap * sizeof *n);
        if (!n)
            return QF_ENOMEM;
        st->tensors = n;
        st->cap = cap;
    }
    st->tensors[st->n_tensors++] = *t;
    return 0;
}

/* Reads a JSON integer that must be in [0, max]. */
static bool json_uint(const json_t *v, uint64_t max, uint64_t *out)
{
    if (!json_is_integer(v))
        return false;
    json_int_t i = json_integer_value(v);
    if (i < 0 || (uint64_t)i > max)
        return false;
    *out = (uint64_t)i;
    return true;
}

/* Checks one header entry and fills t (name not set). data_len is the data section's size. */
static int parse_entry(const char *path, const char *name, json_t *e, uint64_t data_len,
                       qf_st_tensor *t, uint64_t *begin, uint64_t *end)
{
    if (!json_is_object(e))
        return qf_errorf(QF_EPARSE, "%s: tensor '%s': entry is not a JSON object", path, name);
    const char *ds = json_string_value(json_object_get(e, "dtype"));
    if (!ds)
        return qf_errorf(QF_EPARSE, "%s: tensor '%s': 'dtype' is missing or not a string",
                         path, name);
    if (dtype_from_name(ds, &t->dtype) != 0)
        return qf_errorf(QF_EPARSE, "%s: tensor '%s': unknown dtype '%s'", path, name, ds);

    json_t *shape = json_object_get(e, "shape");
    if (!json_is_array(shape))
        return qf_errorf(QF_EPARSE, "%s: tensor '%s': 'shape' is missing or not an array",
                         path, name);
    size_t nd = json_array_size(shape);
    if (nd > QF_ST_MAX_DIMS)
        return qf_errorf(QF_ERANGE, "%s: tensor '%s': 'shape' has %zu dimensions (at most %d)",
                         path, name, nd, QF_ST_MAX_DIMS);
    t->n_dims = (int)nd;
    uint64_t nelem = 1;
    for (size_t d = 0; d < nd; d++) {
        uint64_t v;
        if (!json_uint(json_array_get(shape, d), INT64_MAX, &v))
            return qf_errorf(QF_EPARSE, "%s: tensor '%s': 'shape'[%zu] is not a non-negative "
                             "integer", path, name, d);
        if (v != 0 && nelem > (uint64_t)INT64_MAX / v)
            return qf_errorf(QF_ERANGE, "%s: tensor '%s': 'shape' overflows 63 bits of elements",
                             path, name);
        nelem *= v;
        t->shape[d] = (int64_t)v;
    }
    size_t esz = k_dtypes[t->dtype].size;
    if (nelem > (uint64_t)INT64_MAX / esz || nelem * esz > SIZE_MAX)
        return qf_errorf(QF_ERANGE, "%s: tensor '%s': 'shape' times the dtype size overflows",
                         path, name);
    t->nelem = (int64_t)nelem;
    t->nbytes = (size_t)(nelem * esz);

    json_t *offs = json_object_get(e, "data_offsets");
    if (!json_is_array(offs) || json_array_size(offs) != 2)
        return qf_errorf(QF_EPARSE, "%s: tensor '%s': 'data_offsets' is missing or not a pair",
                         path, name);
    if (!json_uint(json_array_get(offs, 0), UINT64_MAX >> 1, begin) ||
        !json_uint(json_array_get(offs, 1), UINT64_MAX >> 1, end))
        return qf_errorf(QF_EPARSE, "%s: tensor '%s': 'data_offsets' are not non-negative "
                         "integers", path, name);
    if (*begin > *end || *end > data_len)
        return qf_errorf(QF_ERANGE, "%s: tensor '%s': 'data_offsets' [%" PRIu64 ", %" PRIu64
                         "] are not inside the %" PRIu64 "-byte data section",
                         path, name, *begin, *end, data_len);
    if (*end - *begin != t->nbytes)
        return qf_errorf(QF_ERANGE, "%s: tensor '%s': 'data_offsets' span %" PRIu64 " bytes "
                         "but 'shape' x %s needs %zu", path, name, *end - *begin,
                         k_dtypes[t->dtype].name, t->nbytes);
    return 0;
}

static int cmp_by_data(const void *a, const void *b)
{
    const qf_st_tensor *x = a, *y = b;
    const char *px = x->data, *py = y->data;
    if (px != py)
        return px < py ? -1 : 1;
    /* Equal starts: the shorter first, so an empty tensor never hides an overlap. */
    return (x->nbytes > y->nbytes) - (x->nbytes < y->nbytes);
}

/* Checks that the file's tensors (tensors[first..]) tile its data section exactly. */
static int check_tiling(const qf_safetensors *st, size_t first, const st_file *f,
                        const char *data, uint64_t data_len)
{
    uint64_t at = 0;
    const char *prev = NULL;
    for (size_t i = first; i < st->n_tensors; i++) {
        const qf_st_tensor *t = &st->tensors[i];
        uint64_t b = (uint64_t)((const char *)t->data - data);
        if (b < at)
            return qf_errorf(QF_ERANGE, "%s: tensor '%s': 'data_offsets' start at %" PRIu64
                             ", inside tensor '%s' (overlapping tensors)", f->path, t->name, b,
                             prev);
        if (b > at)
            return qf_errorf(QF_ERANGE, "%s: tensor '%s': 'data_offsets' start at %" PRIu64
                             ", leaving a gap of %" PRIu64 " bytes after offset %" PRIu64,
                             f->path, t->name, b, b - at, at);
        at = b + t->nbytes;
        prev = t->name;
    }
    if (at != data_len)
        return qf_errorf(QF_ERANGE, "%s: the tensors cover %" PRIu64 " of the %" PRIu64
                         " data bytes (trailing bytes after the last tensor)",
                         f->path, at, data_len);
    return 0;
}

static int map_file(st_file *f, uint64_t *size)
{
    /* O_NONBLOCK: a FIFO named like a model must be refused below, not block the open */
    int fd = open(f->path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    if (fd < 0)
        return qf_errorf(errno == ENOENT ? QF_ENOENT : QF_EIO, "%s: cannot open: %s",
                         f->path, strerror(errno));
    struct stat sb;
    if (fstat(fd, &sb) != 0 || !S_ISREG(sb.st_mode)) {
        close(fd);
        return qf_errorf(QF_EIO, "%s: not a regular file", f->path);
    }
    *size = (uint64_t)sb.st_size;
    if (*size < 8) {
        close(fd);
        return qf_errorf(QF_EPARSE, "%s: %" PRIu64 " bytes, shorter than the 8-byte header "
                         "length", f->path, *size);
    }
    if (*size > SIZE_MAX) {
        close(fd);
        return qf_errorf(QF_ETOOBIG, "%s: too large to map", f->path);
    }
    void *m = mmap(NULL, (size_t)*size, PROT_READ, MAP_PRIVATE, fd, 0);
    close(fd);
    if (m == MAP_FAILED)
        return qf_errorf(QF_EIO, "%s: cannot map: %s", f->path, strerror(errno));
    f->map = m;
    f->map_len = (size_t)*size;
    return 0;
}

/* Maps and validates one file, appending its tensors to st. */
static int load_file(qf_safetensors *st, st_file *f)
{
    uint64_t size = 0;
    int err = map_file(f, &size);
    if (err)
        return err;
    const unsigned char *p = f->map;
    uint64_t n = 0;
    for (int i = 7; i >= 0; i--)
        n = (n << 8) | p[i];
    if (n > QF_ST_MAX_HEADER)
        return qf_errorf(QF_ETOOBIG, "%s: header length %" PRIu64 " is over the %u-byte limit",
                         f->path, n, QF_ST_MAX_HEADER);
    if (n > size - 8)
        return qf_errorf(QF_EPARSE, "%s: header length %" PRIu64 " runs past the end of the "
                         "file (%" PRIu64 " bytes)", f->path, n, size);
    if (n < 2 || p[8] != '{')
        return qf_errorf(QF_EPARSE, "%s: header does not start with a JSON object", f->path);

    json_error_t jerr;
    json_t *root = json_loadb((const char *)p + 8, (size_t)n, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return qf_errorf(QF_EPARSE, "%s: header JSON, line %d column %d: %s", f->path,
                         jerr.line, jerr.column, jerr.text);
    if (!json_is_object(root)) {
        json_decref(root);
        return qf_errorf(QF_EPARSE, "%s: header is not a JSON object", f->path);
    }

    const char *data = (const char *)p + 8 + n;
    uint64_t data_len = size - 8 - n;
    size_t first = st->n_tensors;
    const char *key;
    json_t *val;
    err = 0;
    json_object_foreach(root, key, val) {
        if (strcmp(key, "__metadata__") == 0) {
            const char *mk;
            json_t *mv;
            if (!json_is_object(val)) {
                err = qf_errorf(QF_EPARSE, "%s: '__metadata__' is not a JSON object", f->path);
                break;
            }
            json_object_foreach(val, mk, mv) {
                if (!json_is_string(mv)) {
                    err = qf_errorf(QF_EPARSE, "%s: '__metadata__'.'%s' is not a string",
                                    f->path, mk);
                    break;
                }
            }
            if (err)
                break;
            f->meta = json_incref(val);
            continue;
        }
        if (!key[0]) {
            err = qf_errorf(QF_EPARSE, "%s: a tensor has an empty name", f->path);
            break;
        }
        /* names reach logs and terminals: no control bytes (JSON can spell an ESC) */
        for (const char *q = key; *q && !err; q++)
            if ((unsigned char)*q < 0x20 || *q == 0x7f)
                err = qf_errorf(QF_EPARSE, "%s: tensor name has control character 0x%02x at "
                                "position %td", f->path, (unsigned)(unsigned char)*q, q - key);
        if (err)
            break;
        qf_st_tensor t = { 0 };
        uint64_t b = 0, e = 0;
        if ((err = parse_entry(f->path, key, val, data_len, &t, &b, &e)) != 0)
            break;
        t.data = data + b;
        t.file = f->path;
        if (!(t.name = strdup(key)) || (err = push_tensor(st, &t)) != 0) {
            free((char *)t.name);
            err = QF_ENOMEM;
            break;
        }
    }
    json_decref(root);
    if (err)
        return err;
    qsort(st->tensors + first, st->n_tensors - first, sizeof *st->tensors, cmp_by_data);
    return check_tiling(st, first, f, data, data_len);
}

/* --- the set of files -------------------------------------------------------------------------- */

static int cmp_by_name(const void *a, const void *b)
{
    const qf_st_tensor *const *x = a, *const *y = b;
    return strcmp((*x)->name, (*y)->name);
}

/* Called once every file is loaded, so the tensors array no longer moves. */
static int build_index(qf_safetensors *st)
{
    st->by_name = malloc((st->n_tensors ? st->n_tensors : 1) * sizeof *st->by_name);
    if (!st->by_name)
        return QF_ENOMEM;
    for (size_t i = 0; i < st->n_tensors; i++)
        st->by_name[i] = &st->tensors[i];
    qsort(st->by_name, st->n_tensors, sizeof *st->by_name, cmp_by_name);
    for (size_t i = 1; i < st->n_tensors; i++) {
        const qf_st_tensor *a = st->by_name[i - 1], *b = st->by_name[i];
        if (strcmp(a->name, b->name) == 0)
            return qf_errorf(QF_EPARSE, "tensor '%s' is in both %s and %s", a->name, a->file,
                             b->file);
    }
    return 0;
}

static char *join_path(const char *dir, const char *name)
{
    size_t n = strlen(dir) + strlen(name) + 2;
    char *s = malloc(n);
    if (s)
        snprintf(s, n, "%s/%s", dir, name);
    return s;
}

static int add_file(qf_safetensors *st, char *path /* consumed */)
{
    if (!path)
        return QF_ENOMEM;
    st_file *n = realloc(st->files, (st->n_files + 1) * sizeof *n);
    if (!n) {
        free(path);
        return QF_ENOMEM;
    }
    st->files = n;
    st->files[st->n_files++] = (st_file){ .path = path };
    return 0;
}

static int file_index(const qf_safetensors *st, const char *path)
{
    for (size_t i = 0; i < st->n_files; i++)
        if (strcmp(st->files[i].path, path) == 0)
            return (int)i;
    return -1;
}

/* Reads the index, registers each distinct shard, then after loading checks the weight_map. */
static int open_index(qf_safetensors *st, const char *index_path)
{
    json_error_t jerr;
    json_t *root = json_load_file(index_path, JSON_REJECT_DUPLICATES, &jerr);
    if (!root)
        return qf_errorf(errno == ENOENT ? QF_ENOENT : QF_EPARSE, "%s: line %d column %d: %s",
                         index_path, jerr.line, jerr.column, jerr.text);
    char *dir = strdup(index_path);
    if (!dir) {
        json_decref(root);
        return QF_ENOMEM;
    }
    char *slash = strrchr(dir, '/');
    if (slash)
        *slash = '\0';
    else
        strcpy(dir, ".");

    int err = 0;
    json_t *wm = json_object_get(root, "weight_map");
    const char *name;
    json_t *shard;
    if (!json_is_object(wm) || json_object_size(wm) == 0) {
        err = qf_errorf(QF_EPARSE, "%s: 'weight_map' is missing, empty or not an object",
                        index_path);
        goto out;
    }
    json_object_foreach(wm, name, shard) {
        const char *s = json_string_value(shard);
        /* Shards are files next to the index: a path could reach outside the checkpoint. */
        if (!s || !s[0] || strchr(s, '/') || strcmp(s, "..") == 0 || strcmp(s, ".") == 0) {
            err = qf_errorf(QF_EPARSE, "%s: 'weight_map'.'%s' is not a shard file name",
                            index_path, name);
            goto out;
        }
        char *p = join_path(dir, s);
        if (!p) {
            err = QF_ENOMEM;
            goto out;
        }
        if (file_index(st, p) >= 0) {
            free(p);
            continue;
        }
        if ((err = add_file(st, p)) != 0)
            goto out;
    }
    for (size_t i = 0; i < st->n_files; i++)
        if ((err = load_file(st, &st->files[i])) != 0)
            goto out;
    if ((err = build_index(st)) != 0)
        goto out;
    json_object_foreach(wm, name, shard) {
        const qf_st_tensor *t = qf_safetensors_find(st, name);
        char *p = join_path(dir, json_string_value(shard));
        if (!p) {
            err = QF_ENOMEM;
            goto out;
        }
        bool ok = t && strcmp(t->file, p) == 0;
        free(p);
        if (!ok) {
            err = qf_errorf(QF_EPARSE, "%s: 'weight_map'.'%s' names shard %s, which does not "
                            "hold it", index_path, name, json_string_value(shard));
            goto out;
        }
    }
out:
    free(dir);
    json_decref(root);
    return err;
}

static bool is_dir(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0 && S_ISDIR(sb.st_mode);
}

static bool exists(const char *path)
{
    struct stat sb;
    return stat(path, &sb) == 0;
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && strcmp(s + a - b, suffix) == 0;
}

int qf_safetensors_open(const char *path, qf_safetensors **out)
{
    assert(path && out);
    *out = NULL;
    qf_safetensors *st = calloc(1, sizeof *st);
    if (!st)
        return QF_ENOMEM;
    int err = 0;
    if (is_dir(path)) {
        char *idx = join_path(path, INDEX_NAME);
        char *one = join_path(path, SINGLE_NAME);
        if (!idx || !one) {
            err = QF_ENOMEM;
        } else if (exists(idx)) {
            err = open_index(st, idx);
        } else if (exists(one)) {
            err = add_file(st, one);
            one = NULL;
            if (!err && (err = load_file(st, &st->files[0])) == 0)
                err = build_index(st);
        } else {
            err = qf_errorf(QF_ENOENT, "%s: neither %s nor %s is in this folder", path,
                            INDEX_NAME, SINGLE_NAME);
        }
        free(idx);
        free(one);
    } else if (ends_with(path, ".json")) {
        err = open_index(st, path);
    } else {
        err = add_file(st, strdup(path));
        if (!err && (err = load_file(st, &st->files[0])) == 0)
            err = build_index(st);
    }
    if (err) {
        qf_safetensors_destroy(&st);
        return err;
    }
    *out = st;
    return 0;
}

void qf_safetensors_destroy(qf_safetensors **pst)
{
    if (!pst || !*pst)
        return;
    qf_safetensors *st = *pst;
    for (size_t i = 0; i < st->n_tensors; i++)
        free((char *)st->tensors[i].name);
    for (size_t i = 0; i < st->n_files; i++) {
        if (st->files[i].map)
            munmap(st->files[i].map, st->files[i].map_len);
        json_decref(st->files[i].meta);
        free(st->files[i].path);
    }
    free(st->files);
    free(st->tensors);
    free((void *)st->by_name);
    free(st);
    *pst = NULL;
}

size_t qf_safetensors_count(const qf_safetensors *st)
{
    assert(st);
    return st->n_tensors;
}

const qf_st_tensor *qf_safetensors_at(const qf_safetensors *st, size_t i)
{
    assert(st && i < st->n_tensors);
    return &st->tensors[i];
}

const qf_st_tensor *qf_safetensors_find(const qf_safetensors *st, const char *name)
{
    assert(st && name);
    size_t lo = 0, hi = st->n_tensors;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const qf_st_tensor *t = st->by_name[mid];
        int c = strcmp(t->name, name);
        if (c == 0)
            return t;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

const char *qf_safetensors_metadata(const qf_safetensors *st, const char *key)
{
    assert(st && key);
    for (size_t i = 0; i < st->n_files; i++) {
        const char *v = json_string_value(json_object_get(st->files[i].meta, key));
        if (v)
            return v;
    }
    return NULL;
}

int qf_safetensors_to_float(const qf_st_tensor *t, float *dst)
{
    assert(t && dst);
    const unsigned char *p = t->data;
    int64_t n = t->nelem;
    switch (t->dtype) {
    case QF_ST_F32:
        memcpy(dst, p, (size_t)n * sizeof *dst);
        return 0;
    case QF_ST_F16:
        for (int64_t i = 0; i < n; i++) {
            qf_half h;
            memcpy(&h, p + 2 * i, 2);
            dst[i] = qf_fp16_to_fp32(h);
        }
        return 0;
    case QF_ST_BF16:
        for (int64_t i = 0; i < n; i++) {
            qf_bf16 h;
            memcpy(&h, p + 2 * i, 2);
            dst[i] = qf_bf16_to_fp32(h);
        }
        return 0;
    case QF_ST_I8:
        for (int64_t i = 0; i < n; i++)
            dst[i] = (float)(int8_t)p[i];
        return 0;
    case QF_ST_U8:
        for (int64_t i = 0; i < n; i++)
            dst[i] = (float)p[i];
        return 0;
    case QF_ST_I32:
        for (int64_t i = 0; i < n; i++) {
            int32_t v;
            memcpy(&v, p + 4 * i, 4);
            dst[i] = (float)v;
        }
        return 0;
    case QF_ST_I64:
        for (int64_t i = 0; i < n; i++) {
            int64_t v;
            memcpy(&v, p + 8 * i, 8);
            dst[i] = (float)v;
        }
        return 0;
    default:
        return qf_errorf(QF_EUNSUP, "%s: tensor '%s': dtype %s is not supported (F32, F16, "
                         "BF16, I8, U8, I32 and I64 are)", t->file, t->name,
                         k_dtypes[t->dtype].name);
    }
}
