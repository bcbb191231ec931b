/* gguf.c - the GGUF reader and writer (qf_gguf.h; docs/gguf.md is the layout and the rules).
 *
 * Reader: the file is mapped read-only and walked once by a cursor that checks, before every
 * read, that the bytes are there; counts are checked against what the rest of the file could
 * hold before anything is allocated, so a hostile header cannot make us allocate or loop more
 * than the file's size allows. Keys, strings and arrays are decoded (host order, NUL-terminated
 * strings) into one arena owned by the qf_gguf; tensor data stays in the mapping. Keys and
 * tensor names are sorted once, which finds duplicates in O(n log n) and serves lookups.
 *
 * Writer: metadata is deep-copied, tensors are descriptors plus a caller's pointer. Nothing
 * touches the disk until the first tensor is streamed or finish: then the header, the kvs and
 * the tensor infos go out through a small buffer, each tensor's bytes straight from the
 * caller's memory, each padded to the alignment (the last one too, as ggml writes it, so that
 * ggml's reader finds the whole padded data section). The file is a mkstemp sibling of the
 * destination, fsynced and renamed; any failure unlinks it.
 *
 * All multi-byte values are assembled byte by byte (little-endian), never cast from the map.
 */
#include "qf_gguf.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <libgen.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "qf_err.h"
#include "qf_formats.h"

#define HEADER_BYTES   24u                /* magic, version, tensor count, kv count */
#define MIN_KV_BYTES   (8u + 1u + 4u + 1u) /* key length, 1-byte key, type, 1-byte value */
#define MIN_TI_BYTES   (8u + 1u + 4u + 8u + 4u + 8u) /* name, n_dims, one dim, type, offset */
#define MAX_ALIGNMENT  (1u << 20)         /* ggml refuses more: padding would be a DoS */

/* ---- value types ------------------------------------------------------------------------ */

static const char *const k_vtype_names[QF_GGUF_VTYPE_COUNT] = {
    "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64",
};

/* Bytes on disk of one fixed-size value; 0 for STRING and ARRAY. */
static const uint8_t k_vtype_disk[QF_GGUF_VTYPE_COUNT] = { 1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8 };

/* Bytes of one value in host memory (array element stride in qf_gguf_kv.v.arr). */
static size_t host_size(qf_gguf_vtype t)
{
    switch (t) {
    case QF_GGUF_BOOL:   return sizeof(bool);
    case QF_GGUF_STRING: return sizeof(qf_gguf_str);
    default:             return k_vtype_disk[t];
    }
}

const char *qf_gguf_vtype_name(qf_gguf_vtype t)
{
    return (unsigned)t < QF_GGUF_VTYPE_COUNT ? k_vtype_names[t] : "?";
}

size_t qf_gguf_vtype_size(qf_gguf_vtype t)
{
    return (unsigned)t < QF_GGUF_VTYPE_COUNT ? k_vtype_disk[t] : 0;
}

/* ---- little-endian bytes ---------------------------------------------------------------- */

static uint32_t ld32(const uint8_t *p)
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static uint64_t ld64(const uint8_t *p)
{
    return (uint64_t)ld32(p) | (uint64_t)ld32(p + 4) << 32;
}

static void st64(uint8_t *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (uint8_t)(v >> (8 * i));
}

/* Host value of type t at src -> k_vtype_disk[t] little-endian bytes at out. */
static void encode_value(qf_gguf_vtype t, const void *src, uint8_t *out)
{
    uint64_t bits = 0;
    switch (t) {
    case QF_GGUF_U8: case QF_GGUF_I8: { uint8_t v; memcpy(&v, src, 1); bits = v; break; }
    case QF_GGUF_BOOL: { bool v; memcpy(&v, src, sizeof v); bits = v ? 1 : 0; break; }
    case QF_GGUF_U16: case QF_GGUF_I16: { uint16_t v; memcpy(&v, src, 2); bits = v; break; }
    case QF_GGUF_U32: case QF_GGUF_I32: case QF_GGUF_F32: {
        uint32_t v; memcpy(&v, src, 4); bits = v; break; }
    case QF_GGUF_U64: case QF_GGUF_I64: case QF_GGUF_F64: { memcpy(&bits, src, 8); break; }
    default: assert(!"not a fixed-size value type");
    }
    for (unsigned i = 0; i < k_vtype_disk[t]; i++)
        out[i] = (uint8_t)(bits >> (8 * i));
}

/* Little-endian bytes at in -> host value at dst. BOOL must be 0 or 1 (checked by the caller). */
static void decode_value(qf_gguf_vtype t, const uint8_t *in, void *dst)
{
    uint64_t bits = 0;
    for (unsigned i = 0; i < k_vtype_disk[t]; i++)
        bits |= (uint64_t)in[i] << (8 * i);
    switch (t) {
    case QF_GGUF_U8: case QF_GGUF_I8: { uint8_t v = (uint8_t)bits; memcpy(dst, &v, 1); break; }
    case QF_GGUF_BOOL: { bool v = bits != 0; memcpy(dst, &v, sizeof v); break; }
    case QF_GGUF_U16: case QF_GGUF_I16: { uint16_t v = (uint16_t)bits; memcpy(dst, &v, 2); break; }
    case QF_GGUF_U32: case QF_GGUF_I32: case QF_GGUF_F32: {
        uint32_t v = (uint32_t)bits; memcpy(dst, &v, 4); break; }
    case QF_GGUF_U64: case QF_GGUF_I64: case QF_GGUF_F64: { memcpy(dst, &bits, 8); break; }
    default: assert(!"not a fixed-size value type");
    }
}

/* ---- tensor types ----------------------------------------------------------------------- */

/* ggml's tensor types that quantfleet has no kernels for: geometry only, as ggml-common.h
 * declares them (the test checks every row against the pinned ggml's ggml_type_size and
 * ggml_blck_size). Ids missing here (4, 5, 31..33, 36..38) were removed from ggml and are
 * refused, as are ids newer than this table. */
static const qf_gguf_type_traits k_foreign[] = {
    { 16, "iq2_xxs", 256,  66, -1 },
    { 17, "iq2_xs",  256,  74, -1 },
    { 18, "iq3_xxs", 256,  98, -1 },
    { 19, "iq1_s",   256,  50, -1 },
    { 21, "iq3_s",   256, 110, -1 },
    { 22, "iq2_s",   256,  82, -1 },
    { 23, "iq4_xs",  256, 136, -1 },
    { 24, "i8",        1,   1, -1 },
    { 25, "i16",       1,   2, -1 },
    { 26, "i32",       1,   4, -1 },
    { 27, "i64",       1,   8, -1 },
    { 28, "f64",       1,   8, -1 },
    { 29, "iq1_m",   256,  56, -1 },
    { 34, "tq1_0",   256,  54, -1 },
    { 35, "tq2_0",   256,  66, -1 },
    { 39, "mxfp4",    32,  17, -1 },
    { 40, "nvfp4",    64,  36, -1 },
    { 41, "q1_0",    128,  18, -1 },
    { 42, "q2_0",     64,  18, -1 },
};
#define N_FOREIGN (sizeof k_foreign / sizeof k_foreign[0])

/* Our formats' rows are built from the format table once, so their geometry is declared in
 * one place (kernels/formats.c). */
static qf_gguf_type_traits g_ours[QF_FMT_COUNT];
static size_t g_n_ours;
static pthread_once_t g_types_once = PTHREAD_ONCE_INIT;

static void types_init(void)
{
    for (int f = 0; f < QF_FMT_COUNT; f++) {
        const qf_format_traits *t = qf_format_get((qf_format)f);
        if (t->gguf_type < 0)
            continue;
        assert(t->blck > 0);
        g_ours[g_n_ours++] = (qf_gguf_type_traits){ (uint32_t)t->gguf_type, t->name, t->blck,
                                                    t->type_size, f };
    }
}

const qf_gguf_type_traits *qf_gguf_type_get(uint32_t type)
{
    pthread_once(&g_types_once, types_init);
    for (size_t i = 0; i < g_n_ours; i++)
        if (g_ours[i].type == type)
            return &g_ours[i];
    for (size_t i = 0; i < N_FOREIGN; i++)
        if (k_foreign[i].type == type)
            return &k_foreign[i];
    return NULL;
}

int qf_gguf_type_from_format(int format, uint32_t *type)
{
    assert(format >= 0 && format < QF_FMT_COUNT && type);
    int t = qf_format_get((qf_format)format)->gguf_type;
    if (t < 0)
        return QF_EFORMAT;
    *type = (uint32_t)t;
    return 0;
}

/* The shape rules shared by reader, writer and qf_gguf_type_nbytes; msg says what is wrong. */
static int shape_bytes(const qf_gguf_type_traits *tt, uint32_t n_dims, const int64_t *dims,
                       uint64_t *nbytes, char *msg, size_t msg_len)
{
    if (n_dims < 1 || n_dims > QF_GGUF_MAX_DIMS) {
        snprintf(msg, msg_len, "n_dims %" PRIu32 " is outside 1..%d", n_dims, QF_GGUF_MAX_DIMS);
        return QF_ESHAPE;
    }
    int64_t nel = 1;
    for (uint32_t d = 0; d < n_dims; d++) {
        if (dims[d] < 1) {
            snprintf(msg, msg_len, "dim %" PRIu32 " is %" PRId64 ", must be >= 1", d, dims[d]);
            return QF_ESHAPE;
        }
        if (nel > INT64_MAX / dims[d]) {
            snprintf(msg, msg_len, "dims product overflows 63 bits at dim %" PRIu32
                     " (%" PRId64 ")", d, dims[d]);
            return QF_ESHAPE;
        }
        nel *= dims[d];
    }
    if (dims[0] % tt->blck) {
        snprintf(msg, msg_len, "dim 0 (%" PRId64 ") is not a multiple of %s's block size %" PRId64,
                 dims[0], tt->name, tt->blck);
        return QF_ESHAPE;
    }
    uint64_t blocks = (uint64_t)(nel / tt->blck);
    if (blocks > (uint64_t)INT64_MAX / tt->type_size) {
        snprintf(msg, msg_len, "size in bytes overflows 63 bits");
        return QF_ESHAPE;
    }
    *nbytes = blocks * tt->type_size;
    return 0;
}

int qf_gguf_type_nbytes(uint32_t type, uint32_t n_dims, const int64_t *dims, uint64_t *nbytes)
{
    assert(nbytes && (dims || n_dims == 0));
    const qf_gguf_type_traits *tt = qf_gguf_type_get(type);
    if (!tt)
        return QF_EFORMAT;
    char msg[128];
    return shape_bytes(tt, n_dims, dims, nbytes, msg, sizeof msg);
}

/* A name from a file, fit for a message: at most 48 bytes, non-printables as '?'. */
static const char *shown(const char *s, uint64_t len, char buf[64])
{
    size_t n = len > 48 ? 48 : (size_t)len, j = 0;
    for (size_t i = 0; i < n; i++)
        buf[j++] = (s[i] >= 0x20 && s[i] < 0x7f) ? s[i] : '?';
    if (len > n) {
        memcpy(buf + j, "...", 3);
        j += 3;
    }
    buf[j] = '\0';
    return buf;
}

/* ---- arena ------------------------------------------------------------------------------ */

typedef struct arena_blk {
    struct arena_blk *next;
    size_t cap, used;
} arena_blk;

#define ARENA_HDR   ((sizeof(arena_blk) + 15) & ~(size_t)15)
#define ARENA_CHUNK ((size_t)1 << 16)

/* size bytes, 16-aligned, zeroed; NULL when out of memory. */
static void *arena_alloc(arena_blk **head, size_t size)
{
    size = (size + 15) & ~(size_t)15;
    arena_blk *b = *head;
    if (!b || b->cap - b->used < size) {
        size_t cap = size > ARENA_CHUNK ? size : ARENA_CHUNK;
        if (cap > SIZE_MAX - ARENA_HDR)
            return NULL;
        b = malloc(ARENA_HDR + cap);
        if (!b)
            return NULL;
        b->cap = cap;
        b->used = 0;
        b->next = *head;
        *head = b;
    }
    void *p = (char *)b + ARENA_HDR + b->used;
    b->used += size;
    memset(p, 0, size);
    return p;
}

static void arena_free(arena_blk **head)
{
    while (*head) {
        arena_blk *n = (*head)->next;
        free(*head);
        *head = n;
    }
}

/* ---- reader ----------------------------------------------------------------------------- */

struct qf_gguf {
    char            *path;
    const uint8_t   *map;
    uint64_t         size;
    uint32_t         version;
    uint32_t         alignment;
    uint64_t         data_offset;
    size_t           n_kv;
    qf_gguf_kv      *kvs;
    const qf_gguf_kv **kv_sorted;      /* by key, for lookups */
    size_t           n_tensors;
    qf_gguf_tensor  *tensors;
    const qf_gguf_tensor **t_sorted;   /* by name */
    arena_blk       *arena;
};

typedef struct cursor {
    qf_gguf    *g;
    uint64_t    off;
    char        field[160];   /* what is being read, for messages */
    char       *why;
    size_t      why_len;
} cursor;

__attribute__((format(printf, 3, 4)))
static int fail(cursor *c, int err, const char *fmt, ...)
{
    if (c->why && c->why_len) {
        char msg[384];
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(msg, sizeof msg, fmt, ap);
        va_end(ap);
        snprintf(c->why, c->why_len, "%s: %s", c->g->path, msg);
    }
    return err;
}

__attribute__((format(printf, 2, 3)))
static void setf(cursor *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->field, sizeof c->field, fmt, ap);
    va_end(ap);
}

static uint64_t left(const cursor *c)
{
    return c->g->size - c->off;
}

static int need(cursor *c, uint64_t n)
{
    if (n <= left(c))
        return 0;
    return fail(c, QF_EPARSE, "%s at byte %" PRIu64 ": needs %" PRIu64 " bytes, the file "
                "(%" PRIu64 " bytes) ends after %" PRIu64, c->field, c->off, n, c->g->size,
                left(c));
}

static int rd_u32(cursor *c, uint32_t *v)
{
    int rc = need(c, 4);
    if (rc)
        return rc;
    *v = ld32(c->g->map + c->off);
    c->off += 4;
    return 0;
}

static int rd_u64(cursor *c, uint64_t *v)
{
    int rc = need(c, 8);
    if (rc)
        return rc;
    *v = ld64(c->g->map + c->off);
    c->off += 8;
    return 0;
}

/* A length-prefixed string of at most max bytes into the arena, NUL-terminated. A nul_ok
 * of false refuses embedded NUL bytes (keys and tensor names are C strings). */
static int rd_str(cursor *c, qf_gguf_str *out, uint64_t max, bool nul_ok)
{
    uint64_t len, at = c->off;
    int rc = rd_u64(c, &len);
    if (rc)
        return rc;
    if (len > left(c))
        return fail(c, QF_EPARSE, "%s at byte %" PRIu64 ": length %" PRIu64 " runs past the end "
                    "of the file (%" PRIu64 " bytes left)", c->field, at, len, left(c));
    if (len > max)
        return fail(c, QF_EPARSE, "%s at byte %" PRIu64 ": length %" PRIu64 " is over the "
                    "limit of %" PRIu64, c->field, at, len, max);
    const char *src = (const char *)c->g->map + c->off;
    if (!nul_ok && memchr(src, '\0', (size_t)len))
        return fail(c, QF_EPARSE, "%s at byte %" PRIu64 ": contains a NUL byte", c->field, at);
    char *s = arena_alloc(&c->g->arena, (size_t)len + 1);
    if (!s)
        return fail(c, QF_ENOMEM, "%s: out of memory", c->field);
    memcpy(s, src, (size_t)len);
    out->s = s;
    out->len = len;
    c->off += len;
    return 0;
}

/* One fixed-size value of type t at the cursor into dst (host order). */
static int rd_fixed(cursor *c, qf_gguf_vtype t, void *dst)
{
    uint64_t at = c->off;
    int rc = need(c, k_vtype_disk[t]);
    if (rc)
        return rc;
    const uint8_t *p = c->g->map + c->off;
    if (t == QF_GGUF_BOOL && *p > 1)
        return fail(c, QF_EPARSE, "%s at byte %" PRIu64 ": bool byte is %u, must be 0 or 1",
                    c->field, at, *p);
    decode_value(t, p, dst);
    c->off += k_vtype_disk[t];
    return 0;
}

static int rd_vtype(cursor *c, qf_gguf_vtype *t)
{
    uint64_t at = c->off;
    uint32_t v;
    int rc = rd_u32(c, &v);
    if (rc)
        return rc;
    if (v >= QF_GGUF_VTYPE_COUNT)
        return fail(c, QF_EPARSE, "%s at byte %" PRIu64 ": %" PRIu32 " is not a GGUF value type "
                    "(0..%d)", c->field, at, v, QF_GGUF_VTYPE_COUNT - 1);
    *t = (qf_gguf_vtype)v;
    return 0;
}

static int read_kv(cursor *c, size_t i, qf_gguf_kv *kv)
{
    qf_gguf_str key;
    char nb[64];
    setf(c, "kv %zu key", i);
    int rc = rd_str(c, &key, QF_GGUF_MAX_KEY, false);
    if (rc)
        return rc;
    if (key.len == 0)
        return fail(c, QF_EPARSE, "kv %zu key at byte %" PRIu64 ": empty key", i, c->off - 8);
    kv->key = key.s;
    shown(key.s, key.len, nb);

    setf(c, "kv %zu '%s' value type", i, nb);
    if ((rc = rd_vtype(c, &kv->type)))
        return rc;
    if (kv->type != QF_GGUF_ARRAY) {
        setf(c, "kv %zu '%s' %s value", i, nb, k_vtype_names[kv->type]);
        if (kv->type == QF_GGUF_STRING)
            return rd_str(c, &kv->v.str, UINT64_MAX, true);
        return rd_fixed(c, kv->type, &kv->v);
    }

    setf(c, "kv %zu '%s' array element type", i, nb);
    uint64_t at = c->off;
    if ((rc = rd_vtype(c, &kv->arr_type)))
        return rc;
    if (kv->arr_type == QF_GGUF_ARRAY)
        return fail(c, QF_EPARSE, "kv %zu '%s' array element type at byte %" PRIu64 ": nested "
                    "arrays are not supported (ggml refuses them too)", i, nb, at);
    setf(c, "kv %zu '%s' array length", i, nb);
    at = c->off;
    if ((rc = rd_u64(c, &kv->n)))
        return rc;
    /* Every element takes at least this much of the file: bounds the allocation below. */
    uint64_t min_el = kv->arr_type == QF_GGUF_STRING ? 8 : k_vtype_disk[kv->arr_type];
    if (kv->n > left(c) / min_el)
        return fail(c, QF_EPARSE, "kv %zu '%s' array length at byte %" PRIu64 ": %" PRIu64
                    " %s elements need at least %" PRIu64 " bytes each, the file has %" PRIu64
                    " left", i, nb, at, kv->n, k_vtype_names[kv->arr_type], min_el, left(c));
    size_t hs = host_size(kv->arr_type);
    uint8_t *arr = arena_alloc(&c->g->arena, kv->n ? (size_t)kv->n * hs : 1);
    if (!arr)
        return fail(c, QF_ENOMEM, "kv %zu '%s': out of memory for %" PRIu64 " elements", i, nb,
                    kv->n);
    for (uint64_t j = 0; j < kv->n; j++) {
        setf(c, "kv %zu '%s' array element %" PRIu64, i, nb, j);
        if (kv->arr_type == QF_GGUF_STRING)
            rc = rd_str(c, (qf_gguf_str *)(void *)(arr + j * hs), UINT64_MAX, true);
        else
            rc = rd_fixed(c, kv->arr_type, arr + j * hs);
        if (rc)
            return rc;
    }
    kv->v.arr = arr;
    return 0;
}

static int cmp_kv(const void *a, const void *b)
{
    return strcmp((*(const qf_gguf_kv *const *)a)->key, (*(const qf_gguf_kv *const *)b)->key);
}

static int cmp_tensor_name(const void *a, const void *b)
{
    return strcmp((*(const qf_gguf_tensor *const *)a)->name,
                  (*(const qf_gguf_tensor *const *)b)->name);
}

static int cmp_tensor_off(const void *a, const void *b)
{
    uint64_t x = (*(const qf_gguf_tensor *const *)a)->offset;
    uint64_t y = (*(const qf_gguf_tensor *const *)b)->offset;
    return x < y ? -1 : x > y;
}

static int read_header(cursor *c, uint64_t *n_tensors, uint64_t *n_kv)
{
    qf_gguf *g = c->g;
    if (g->size < 4 || memcmp(g->map, QF_GGUF_MAGIC, 4) != 0) {
        char mb[64];
        return fail(c, QF_EPARSE, "magic at byte 0: '%s' is not 'GGUF' (not a GGUF file)",
                    shown((const char *)g->map, g->size < 4 ? g->size : 4, mb));
    }
    c->off = 4;
    setf(c, "header version");
    int rc = rd_u32(c, &g->version);
    if (rc)
        return rc;
    if (g->version != 0 && (g->version & 0xffffu) == 0)
        return fail(c, QF_EUNSUP, "version at byte 4: %" PRIu32 " looks byte-swapped: "
                    "big-endian GGUF files are not supported", g->version);
    if (g->version == 1)
        return fail(c, QF_EUNSUP, "version at byte 4: GGUF v1 (32-bit counts) is not supported, "
                    "only 2 and 3");
    if (g->version == 0 || g->version > QF_GGUF_VERSION)
        return fail(c, g->version ? QF_EUNSUP : QF_EPARSE, "version at byte 4: %" PRIu32
                    " is not a GGUF version this reader knows (2..3)", g->version);
    setf(c, "header tensor count");
    if ((rc = rd_u64(c, n_tensors)))
        return rc;
    setf(c, "header kv count");
    if ((rc = rd_u64(c, n_kv)))
        return rc;
    uint64_t rest = left(c);
    if (*n_kv > rest / MIN_KV_BYTES)
        return fail(c, QF_EPARSE, "kv count at byte 16: %" PRIu64 " entries cannot fit in the "
                    "%" PRIu64 " bytes after the header (each takes at least %u)", *n_kv, rest,
                    MIN_KV_BYTES);
    rest -= *n_kv * MIN_KV_BYTES;
    if (*n_tensors > rest / MIN_TI_BYTES)
        return fail(c, QF_EPARSE, "tensor count at byte 8: %" PRIu64 " tensor infos cannot fit "
                    "in the %" PRIu64 " bytes after the header and %" PRIu64 " kvs (each takes "
                    "at least %u)", *n_tensors, rest, *n_kv, MIN_TI_BYTES);
    return 0;
}

static int read_alignment(cursor *c)
{
    qf_gguf *g = c->g;
    g->alignment = QF_GGUF_DEFAULT_ALIGN;
    const qf_gguf_kv *kv = qf_gguf_find_kv(g, QF_GGUF_KEY_ALIGNMENT);
    if (!kv)
        return 0;
    if (kv->type != QF_GGUF_U32)
        return fail(c, QF_EPARSE, "kv '%s': type %s, must be u32", QF_GGUF_KEY_ALIGNMENT,
                    qf_gguf_vtype_name(kv->type));
    uint32_t a = kv->v.u32;
    if (a == 0 || (a & (a - 1)) != 0 || a > MAX_ALIGNMENT)
        return fail(c, QF_EPARSE, "kv '%s': %" PRIu32 " is not a power of two in 1..%u",
                    QF_GGUF_KEY_ALIGNMENT, a, MAX_ALIGNMENT);
    g->alignment = a;
    return 0;
}

static int read_tensor_info(cursor *c, size_t i, qf_gguf_tensor *t)
{
    qf_gguf *g = c->g;
    qf_gguf_str name;
    char nb[64];
    setf(c, "tensor %zu name", i);
    uint64_t at = c->off;
    int rc = rd_str(c, &name, QF_GGUF_MAX_NAME, false);
    if (rc)
        return rc;
    if (name.len == 0)
        return fail(c, QF_EPARSE, "tensor %zu name at byte %" PRIu64 ": empty name", i, at);
    shown(name.s, name.len, nb);
    /* names end up in logs, tables and terminals: no control bytes (an ESC would let a file
     * drive the terminal); UTF-8 beyond ASCII is fine */
    for (uint64_t k = 0; k < name.len; k++)
        if ((unsigned char)name.s[k] < 0x20 || name.s[k] == 0x7f)
            return fail(c, QF_EPARSE, "tensor %zu name '%s' at byte %" PRIu64 ": control "
                        "character 0x%02x at position %" PRIu64, i, nb, at,
                        (unsigned)(unsigned char)name.s[k], k);
    t->name = name.s;

    setf(c, "tensor %zu '%s' n_dims", i, nb);
    at = c->off;
    if ((rc = rd_u32(c, &t->n_dims)))
        return rc;
    if (t->n_dims < 1 || t->n_dims > QF_GGUF_MAX_DIMS)
        return fail(c, QF_EPARSE, "tensor %zu '%s' n_dims at byte %" PRIu64 ": %" PRIu32
                    " is outside 1..%d", i, nb, at, t->n_dims, QF_GGUF_MAX_DIMS);
    uint64_t dims_at = c->off;
    for (uint32_t d = 0; d < QF_GGUF_MAX_DIMS; d++) {
        t->dims[d] = 1;
        if (d >= t->n_dims)
            continue;
        uint64_t v;
        setf(c, "tensor %zu '%s' dim %" PRIu32, i, nb, d);
        if ((rc = rd_u64(c, &v)))
            return rc;
        t->dims[d] = v > INT64_MAX ? -1 : (int64_t)v; /* shape_bytes refuses it */
    }
    setf(c, "tensor %zu '%s' type", i, nb);
    at = c->off;
    if ((rc = rd_u32(c, &t->type)))
        return rc;
    const qf_gguf_type_traits *tt = qf_gguf_type_get(t->type);
    if (!tt)
        return fail(c, QF_EPARSE, "tensor %zu '%s' type at byte %" PRIu64 ": %" PRIu32 " is not "
                    "a known GGUF tensor type", i, nb, at, t->type);
    t->format = tt->format;
    char msg[160];
    if (shape_bytes(tt, t->n_dims, t->dims, &t->size, msg, sizeof msg))
        return fail(c, QF_EPARSE, "tensor %zu '%s' dims at byte %" PRIu64 ": %s", i, nb, dims_at,
                    msg);
    setf(c, "tensor %zu '%s' offset", i, nb);
    at = c->off;
    if ((rc = rd_u64(c, &t->offset)))
        return rc;
    if (t->offset % g->alignment)
        return fail(c, QF_EPARSE, "tensor %zu '%s' offset at byte %" PRIu64 ": %" PRIu64 " is not "
                    "a multiple of the alignment %" PRIu32, i, nb, at, t->offset, g->alignment);
    return 0;
}

/* Data inside the file and no two tensors sharing a byte. */
static int check_data(cursor *c)
{
    qf_gguf *g = c->g;
    char nb[64], nb2[64];
    for (size_t i = 0; i < g->n_tensors; i++) {
        qf_gguf_tensor *t = &g->tensors[i];
        uint64_t room = g->size - g->data_offset;
        if (t->offset > room || t->size > room - t->offset) {
            uint64_t start = t->offset > UINT64_MAX - g->data_offset ? UINT64_MAX
                                                                     : g->data_offset + t->offset;
            uint64_t end = t->size > UINT64_MAX - start ? UINT64_MAX : start + t->size;
            return fail(c, QF_EPARSE, "tensor %zu '%s': data [%" PRIu64 ", %" PRIu64 ") extends "
                        "past the end of the file (%" PRIu64 " bytes)", i,
                        shown(t->name, strlen(t->name), nb), start, end, g->size);
        }
        t->file_offset = g->data_offset + t->offset;
        t->data = g->map + t->file_offset;
    }
    if (g->n_tensors < 2)
        return 0;
    const qf_gguf_tensor **by_off = malloc(g->n_tensors * sizeof *by_off);
    if (!by_off)
        return fail(c, QF_ENOMEM, "out of memory");
    for (size_t i = 0; i < g->n_tensors; i++)
        by_off[i] = &g->tensors[i];
    qsort(by_off, g->n_tensors, sizeof *by_off, cmp_tensor_off);
    int rc = 0;
    for (size_t i = 1; i < g->n_tensors && !rc; i++) {
        const qf_gguf_tensor *a = by_off[i - 1], *b = by_off[i];
        if (b->offset < a->offset + a->size)
            rc = fail(c, QF_EPARSE, "tensor %td '%s': data [%" PRIu64 ", %" PRIu64 ") overlaps "
                      "tensor %td '%s' [%" PRIu64 ", %" PRIu64 ")", b - g->tensors,
                      shown(b->name, strlen(b->name), nb), b->file_offset,
                      b->file_offset + b->size, a - g->tensors,
                      shown(a->name, strlen(a->name), nb2), a->file_offset,
                      a->file_offset + a->size);
    }
    free(by_off);
    return rc;
}

static int parse(cursor *c)
{
    qf_gguf *g = c->g;
    uint64_t n_tensors, n_kv;
    int rc = read_header(c, &n_tensors, &n_kv);
    if (rc)
        return rc;
    /* Counts are bounded by the file size above, so these allocations are too. */
    g->kvs = calloc(n_kv ? (size_t)n_kv : 1, sizeof *g->kvs);
    g->kv_sorted = calloc(n_kv ? (size_t)n_kv : 1, sizeof *g->kv_sorted);
    g->tensors = calloc(n_tensors ? (size_t)n_tensors : 1, sizeof *g->tensors);
    g->t_sorted = calloc(n_tensors ? (size_t)n_tensors : 1, sizeof *g->t_sorted);
    if (!g->kvs || !g->kv_sorted || !g->tensors || !g->t_sorted)
        return fail(c, QF_ENOMEM, "out of memory for %" PRIu64 " kvs and %" PRIu64 " tensors",
                    n_kv, n_tensors);

    for (size_t i = 0; i < n_kv; i++) {
        if ((rc = read_kv(c, i, &g->kvs[i])))
            return rc;
        g->kv_sorted[i] = &g->kvs[i];
    }
    g->n_kv = (size_t)n_kv;
    qsort(g->kv_sorted, g->n_kv, sizeof *g->kv_sorted, cmp_kv);
    for (size_t i = 1; i < g->n_kv; i++) {
        if (strcmp(g->kv_sorted[i - 1]->key, g->kv_sorted[i]->key) == 0) {
            char nb[64];
            const char *k = g->kv_sorted[i]->key;
            return fail(c, QF_EPARSE, "kv %td '%s': duplicate key (also kv %td)",
                        g->kv_sorted[i] - g->kvs, shown(k, strlen(k), nb),
                        g->kv_sorted[i - 1] - g->kvs);
        }
    }
    if ((rc = read_alignment(c)))
        return rc;

    for (size_t i = 0; i < n_tensors; i++) {
        if ((rc = read_tensor_info(c, i, &g->tensors[i])))
            return rc;
        g->t_sorted[i] = &g->tensors[i];
    }
    g->n_tensors = (size_t)n_tensors;
    qsort(g->t_sorted, g->n_tensors, sizeof *g->t_sorted, cmp_tensor_name);
    for (size_t i = 1; i < g->n_tensors; i++) {
        if (strcmp(g->t_sorted[i - 1]->name, g->t_sorted[i]->name) == 0) {
            char nb[64];
            const char *n = g->t_sorted[i]->name;
            return fail(c, QF_EPARSE, "tensor %td '%s': duplicate name (also tensor %td)",
                        g->t_sorted[i] - g->tensors, shown(n, strlen(n), nb),
                        g->t_sorted[i - 1] - g->tensors);
        }
    }

    /* The data section starts at the next multiple of the alignment (an alignment is at most
     * 2^20 and c->off is at most the file size, so this cannot overflow). Without tensors
     * there is no data section and, as in ggml, it "starts" where the infos end. */
    if (g->n_tensors == 0) {
        g->data_offset = c->off;
        return 0;
    }
    g->data_offset = (c->off + g->alignment - 1) / g->alignment * g->alignment;
    if (g->data_offset > g->size)
        return fail(c, QF_EPARSE, "data section: starts at byte %" PRIu64 " (tensor infos end at "
                    "%" PRIu64 ", aligned to %" PRIu32 "), past the end of the file (%" PRIu64
                    " bytes)", g->data_offset, c->off, g->alignment, g->size);
    return check_data(c);
}

int qf_gguf_open(const char *path, qf_gguf **out, char *why, size_t why_len)
{
    assert(path && out);
    *out = NULL;
    if (why && why_len)
        why[0] = '\0';
    qf_gguf *g = calloc(1, sizeof *g);
    if (!g || !(g->path = strdup(path))) {
        free(g);
        if (why && why_len)
            snprintf(why, why_len, "%s: out of memory", path);
        return QF_ENOMEM;
    }
    cursor c = { .g = g, .why = why, .why_len = why_len };
    int rc;
    int fd = open(path, O_RDONLY | O_CLOEXEC | O_NONBLOCK);
    struct stat st;
    if (fd < 0) {
        rc = fail(&c, errno == ENOENT ? QF_ENOENT : QF_EIO, "cannot open: %s", strerror(errno));
    } else if (fstat(fd, &st) != 0) {
        rc = fail(&c, QF_EIO, "cannot stat: %s", strerror(errno));
    } else if (!S_ISREG(st.st_mode)) {
        rc = fail(&c, QF_EIO, "not a regular file");
    } else if (st.st_size < (off_t)HEADER_BYTES) {
        /* Too short for a header: say so, naming the magic if even that is wrong. */
        uint8_t head[HEADER_BYTES];
        ssize_t n = read(fd, head, sizeof head);
        g->map = head;
        g->size = n > 0 ? (uint64_t)n : 0;
        rc = read_header(&c, &(uint64_t){0}, &(uint64_t){0});
        if (!rc)
            rc = fail(&c, QF_EPARSE, "header: the file is %" PRIu64 " bytes, shorter than the "
                      "%u-byte header", g->size, HEADER_BYTES);
        g->map = NULL;
        g->size = 0;
    } else if ((uint64_t)st.st_size > SIZE_MAX) {
        rc = fail(&c, QF_EUNSUP, "%" PRIu64 " bytes is too large to map on this host",
                  (uint64_t)st.st_size);
    } else {
        g->size = (uint64_t)st.st_size;
        void *m = mmap(NULL, (size_t)g->size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (m == MAP_FAILED) {
            g->size = 0;
            rc = fail(&c, QF_EIO, "cannot map %" PRIu64 " bytes: %s", (uint64_t)st.st_size,
                      strerror(errno));
        } else {
            g->map = m;
            rc = parse(&c);
        }
    }
    if (fd >= 0)
        close(fd);
    if (rc) {
        qf_gguf_close(&g);
        return rc;
    }
    *out = g;
    return 0;
}

void qf_gguf_close(qf_gguf **gp)
{
    if (!gp || !*gp)
        return;
    qf_gguf *g = *gp;
    if (g->map)
        munmap((void *)(uintptr_t)g->map, (size_t)g->size);
    arena_free(&g->arena);
    free(g->kvs);
    free(g->kv_sorted);
    free(g->tensors);
    free(g->t_sorted);
    free(g->path);
    free(g);
    *gp = NULL;
}

uint32_t    qf_gguf_version(const qf_gguf *g)     { assert(g); return g->version; }
uint32_t    qf_gguf_alignment(const qf_gguf *g)   { assert(g); return g->alignment; }
uint64_t    qf_gguf_data_offset(const qf_gguf *g) { assert(g); return g->data_offset; }
uint64_t    qf_gguf_file_size(const qf_gguf *g)   { assert(g); return g->size; }
const char *qf_gguf_path(const qf_gguf *g)        { assert(g); return g->path; }
size_t      qf_gguf_kv_count(const qf_gguf *g)    { assert(g); return g->n_kv; }
size_t      qf_gguf_tensor_count(const qf_gguf *g){ assert(g); return g->n_tensors; }

const qf_gguf_kv *qf_gguf_kv_at(const qf_gguf *g, size_t i)
{
    assert(g && i < g->n_kv);
    return &g->kvs[i];
}

const qf_gguf_tensor *qf_gguf_tensor_at(const qf_gguf *g, size_t i)
{
    assert(g && i < g->n_tensors);
    return &g->tensors[i];
}

const qf_gguf_kv *qf_gguf_find_kv(const qf_gguf *g, const char *key)
{
    assert(g && key);
    qf_gguf_kv probe = { .key = key };
    const qf_gguf_kv *pp = &probe;
    const qf_gguf_kv **hit = bsearch(&pp, g->kv_sorted, g->n_kv, sizeof *g->kv_sorted, cmp_kv);
    return hit ? *hit : NULL;
}

const qf_gguf_tensor *qf_gguf_find_tensor(const qf_gguf *g, const char *name)
{
    assert(g && name);
    qf_gguf_tensor probe = { .name = name };
    const qf_gguf_tensor *pp = &probe;
    const qf_gguf_tensor **hit = bsearch(&pp, g->t_sorted, g->n_tensors, sizeof *g->t_sorted,
                                         cmp_tensor_name);
    return hit ? *hit : NULL;
}

static int get_typed(const qf_gguf *g, const char *key, qf_gguf_vtype t, const qf_gguf_kv **kv)
{
    *kv = qf_gguf_find_kv(g, key);
    if (!*kv)
        return QF_ENOENT;
    return (*kv)->type == t ? 0 : QF_EPARSE;
}

#define QF_GGUF_GETTER(suffix, T, VT, member)                                        \
    int qf_gguf_get_##suffix(const qf_gguf *g, const char *key, T *out)              \
    {                                                                                \
        const qf_gguf_kv *kv;                                                        \
        int rc = get_typed(g, key, VT, &kv);                                         \
        if (!rc)                                                                     \
            *out = kv->v.member;                                                     \
        return rc;                                                                   \
    }
QF_GGUF_GETTER(u8,   uint8_t,      QF_GGUF_U8,     u8)
QF_GGUF_GETTER(i8,   int8_t,       QF_GGUF_I8,     i8)
QF_GGUF_GETTER(u16,  uint16_t,     QF_GGUF_U16,    u16)
QF_GGUF_GETTER(i16,  int16_t,      QF_GGUF_I16,    i16)
QF_GGUF_GETTER(u32,  uint32_t,     QF_GGUF_U32,    u32)
QF_GGUF_GETTER(i32,  int32_t,      QF_GGUF_I32,    i32)
QF_GGUF_GETTER(u64,  uint64_t,     QF_GGUF_U64,    u64)
QF_GGUF_GETTER(i64,  int64_t,      QF_GGUF_I64,    i64)
QF_GGUF_GETTER(f32,  float,        QF_GGUF_F32,    f32)
QF_GGUF_GETTER(f64,  double,       QF_GGUF_F64,    f64)
QF_GGUF_GETTER(bool, bool,         QF_GGUF_BOOL,   b)
QF_GGUF_GETTER(str,  const char *, QF_GGUF_STRING, str.s)
#undef QF_GGUF_GETTER

int qf_gguf_get_int(const qf_gguf *g, const char *key, int64_t *out)
{
    const qf_gguf_kv *kv = qf_gguf_find_kv(g, key);
    if (!kv)
        return QF_ENOENT;
    switch (kv->type) {
    case QF_GGUF_U8:  *out = kv->v.u8;  return 0;
    case QF_GGUF_I8:  *out = kv->v.i8;  return 0;
    case QF_GGUF_U16: *out = kv->v.u16; return 0;
    case QF_GGUF_I16: *out = kv->v.i16; return 0;
    case QF_GGUF_U32: *out = kv->v.u32; return 0;
    case QF_GGUF_I32: *out = kv->v.i32; return 0;
    case QF_GGUF_I64: *out = kv->v.i64; return 0;
    case QF_GGUF_U64:
        if (kv->v.u64 > INT64_MAX)
            return QF_ERANGE;
        *out = (int64_t)kv->v.u64;
        return 0;
    default:
        return QF_EPARSE;
    }
}

int qf_gguf_get_arr(const qf_gguf *g, const char *key, qf_gguf_vtype elem, const void **data,
                    uint64_t *n)
{
    const qf_gguf_kv *kv;
    int rc = get_typed(g, key, QF_GGUF_ARRAY, &kv);
    if (rc)
        return rc;
    if (kv->arr_type != elem)
        return QF_EPARSE;
    *data = kv->v.arr;
    *n = kv->n;
    return 0;
}

/* ---- writer ----------------------------------------------------------------------------- */

typedef struct wtensor {
    char        name[QF_GGUF_MAX_NAME + 1];
    uint32_t    type, n_dims;
    int64_t     dims[QF_GGUF_MAX_DIMS];
    uint64_t    size, offset;
    const void *data;
} wtensor;

#define WBUF_BYTES ((size_t)1 << 16)

struct qf_gguf_writer {
    char       *path, *tmp;
    int         fd;
    uint32_t    alignment;
    mode_t      mode;           /* of the file it replaces, else 0644 */
    qf_gguf_kv *kvs;            /* deep-owned copies */
    size_t      n_kv, cap_kv;
    wtensor    *t;
    size_t      n_t, cap_t;
    bool        started;        /* header on disk: no more kvs or tensors */
    size_t      next;           /* first tensor not yet written */
    uint64_t    pos;            /* bytes handed to the file so far */
    uint8_t    *buf;
    size_t      buf_used;
    int         err;
    char        why[512];
};

__attribute__((format(printf, 3, 4)))
static int werr(qf_gguf_writer *w, int err, const char *fmt, ...)
{
    if (w->err)
        return w->err;
    w->err = err;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(w->why, sizeof w->why, fmt, ap);
    va_end(ap);
    return err;
}

int qf_gguf_writer_new(const char *path, qf_gguf_writer **out, char *why, size_t why_len)
{
    assert(path && out);
    *out = NULL;
    /* The file is replaced by a rename at the end: that is only right for a regular file (a
     * device, FIFO, directory or symlink named as the output would be swapped for a file). */
    struct stat st;
    mode_t mode = 0644;
    if (lstat(path, &st) == 0) {
        if (!S_ISREG(st.st_mode)) {
            if (why && why_len)
                snprintf(why, why_len, "%s exists and is not a regular file (%s): refusing to "
                         "replace it", path, S_ISLNK(st.st_mode) ? "a symbolic link" :
                         S_ISDIR(st.st_mode) ? "a directory" : "a device, FIFO or socket");
            return QF_EINVAL;
        }
        mode = st.st_mode & 07777;    /* an overwritten file keeps its permissions */
    }
    qf_gguf_writer *w = calloc(1, sizeof *w);
    size_t n = strlen(path) + sizeof ".tmp.XXXXXX";
    if (!w || !(w->path = strdup(path)) || !(w->tmp = malloc(n)) ||
        !(w->buf = malloc(WBUF_BYTES))) {
        if (w) {
            free(w->path);
            free(w->tmp);
        }
        free(w);
        if (why && why_len)
            snprintf(why, why_len, "%s: out of memory", path);
        return QF_ENOMEM;
    }
    snprintf(w->tmp, n, "%s.tmp.XXXXXX", path);
    w->fd = mkostemp(w->tmp, O_CLOEXEC);
    if (w->fd < 0) {
        int e = errno;
        char *dir = strdup(path);
        if (why && why_len)
            snprintf(why, why_len, "%s: cannot create a temporary file in %s: %s", path,
                     dir ? dirname(dir) : "its folder", strerror(e));
        free(dir);
        w->tmp[0] = '\0';
        qf_gguf_writer_destroy(&w);
        return QF_EIO;
    }
    w->alignment = QF_GGUF_DEFAULT_ALIGN;
    w->mode = mode;
    *out = w;
    return 0;
}

static void kv_free(qf_gguf_kv *kv)
{
    free((void *)(uintptr_t)kv->key);
    if (kv->type == QF_GGUF_STRING) {
        free((void *)(uintptr_t)kv->v.str.s);
    } else if (kv->type == QF_GGUF_ARRAY) {
        if (kv->arr_type == QF_GGUF_STRING) {
            const qf_gguf_str *s = kv->v.arr;
            for (uint64_t i = 0; i < kv->n; i++)
                free((void *)(uintptr_t)s[i].s);
        }
        free((void *)(uintptr_t)kv->v.arr);
    }
}

void qf_gguf_writer_destroy(qf_gguf_writer **wp)
{
    if (!wp || !*wp)
        return;
    qf_gguf_writer *w = *wp;
    if (w->fd >= 0)
        close(w->fd);
    if (w->tmp && w->tmp[0])
        unlink(w->tmp);
    for (size_t i = 0; i < w->n_kv; i++)
        kv_free(&w->kvs[i]);
    free(w->kvs);
    free(w->t);
    free(w->buf);
    free(w->tmp);
    free(w->path);
    free(w);
    *wp = NULL;
}

const char *qf_gguf_writer_why(const qf_gguf_writer *w)
{
    assert(w);
    return w->why;
}

static char *dup_bytes(const char *s, uint64_t len)
{
    if (len >= SIZE_MAX)
        return NULL;
    char *d = malloc((size_t)len + 1);
    if (d) {
        if (len)
            memcpy(d, s, (size_t)len);
        d[len] = '\0';
    }
    return d;
}

/* Deep copy of src's value into dst (dst->key is set by the caller). */
static int kv_copy_value(qf_gguf_kv *dst, const qf_gguf_kv *src)
{
    dst->type = src->type;
    dst->arr_type = src->arr_type;
    dst->n = src->n;
    if (src->type == QF_GGUF_STRING) {
        dst->v.str.len = src->v.str.len;
        return (dst->v.str.s = dup_bytes(src->v.str.s, src->v.str.len)) ? 0 : QF_ENOMEM;
    }
    if (src->type != QF_GGUF_ARRAY) {
        dst->v = src->v;
        return 0;
    }
    size_t hs = host_size(src->arr_type);
    if (src->n > SIZE_MAX / hs)
        return QF_ENOMEM;
    void *arr = calloc(src->n ? (size_t)src->n : 1, hs);
    if (!arr)
        return QF_ENOMEM;
    dst->v.arr = arr;
    if (src->arr_type != QF_GGUF_STRING) {
        if (src->n)
            memcpy(arr, src->v.arr, (size_t)src->n * hs);
        return 0;
    }
    qf_gguf_str *d = arr;
    const qf_gguf_str *s = src->v.arr;
    for (uint64_t i = 0; i < src->n; i++) {
        d[i].len = s[i].len;
        if (!(d[i].s = dup_bytes(s[i].s, s[i].len))) {
            dst->n = i;  /* kv_free frees what was copied */
            return QF_ENOMEM;
        }
    }
    return 0;
}

int qf_gguf_writer_set_kv(qf_gguf_writer *w, const qf_gguf_kv *kv)
{
    assert(w && kv && !w->started);
    if (w->err)
        return w->err;
    size_t klen = kv->key ? strlen(kv->key) : 0;
    if (klen == 0 || klen > QF_GGUF_MAX_KEY)
        return werr(w, QF_EINVAL, "%s: kv key '%.48s' must be 1..%u bytes", w->path,
                    kv->key ? kv->key : "(null)", QF_GGUF_MAX_KEY);
    if ((unsigned)kv->type >= QF_GGUF_VTYPE_COUNT ||
        (kv->type == QF_GGUF_ARRAY && ((unsigned)kv->arr_type >= QF_GGUF_VTYPE_COUNT ||
                                       kv->arr_type == QF_GGUF_ARRAY)))
        return werr(w, QF_EINVAL, "%s: kv '%.48s': type %d/%d is not a writable GGUF value type "
                    "(nested arrays are not supported)", w->path, kv->key, (int)kv->type,
                    (int)kv->arr_type);
    if ((kv->type == QF_GGUF_STRING && !kv->v.str.s && kv->v.str.len) ||
        (kv->type == QF_GGUF_ARRAY && !kv->v.arr && kv->n))
        return werr(w, QF_EINVAL, "%s: kv '%.48s': NULL data", w->path, kv->key);
    if (kv->type == QF_GGUF_ARRAY && kv->arr_type == QF_GGUF_STRING) {
        const qf_gguf_str *s = kv->v.arr;
        for (uint64_t i = 0; i < kv->n; i++)
            if (!s[i].s && s[i].len)
                return werr(w, QF_EINVAL, "%s: kv '%.48s': string %" PRIu64 " is NULL", w->path,
                            kv->key, i);
    }
    if (strcmp(kv->key, QF_GGUF_KEY_ALIGNMENT) == 0) {
        /* The spec wants a multiple of 8, ggml a power of two of at most 2^20: both. */
        uint32_t a = kv->type == QF_GGUF_U32 ? kv->v.u32 : 0;
        if (a < 8 || (a & (a - 1)) != 0 || a > MAX_ALIGNMENT)
            return werr(w, QF_EINVAL, "%s: kv '%s' must be a u32 power of two in 8..%u", w->path,
                        QF_GGUF_KEY_ALIGNMENT, MAX_ALIGNMENT);
    }

    qf_gguf_kv fresh = { 0 };
    int rc = kv_copy_value(&fresh, kv);
    if (rc) {
        kv_free(&fresh);
        return werr(w, rc, "%s: kv '%.48s': out of memory", w->path, kv->key);
    }
    size_t i;
    for (i = 0; i < w->n_kv && strcmp(w->kvs[i].key, kv->key) != 0; i++)
        ;
    if (i == w->n_kv) {
        if (w->n_kv == w->cap_kv) {
            size_t cap = w->cap_kv ? 2 * w->cap_kv : 32;
            qf_gguf_kv *k = realloc(w->kvs, cap * sizeof *k);
            if (!k) {
                kv_free(&fresh);
                return werr(w, QF_ENOMEM, "%s: out of memory for kvs", w->path);
            }
            w->kvs = k;
            w->cap_kv = cap;
        }
        if (!(fresh.key = dup_bytes(kv->key, klen))) {
            kv_free(&fresh);
            return werr(w, QF_ENOMEM, "%s: out of memory for kvs", w->path);
        }
        w->n_kv++;
    } else {
        fresh.key = w->kvs[i].key;  /* keep the old key and position; free the old value */
        w->kvs[i].key = NULL;
        kv_free(&w->kvs[i]);
    }
    w->kvs[i] = fresh;
    if (strcmp(kv->key, QF_GGUF_KEY_ALIGNMENT) == 0)
        w->alignment = kv->v.u32;
    return 0;
}

#define QF_GGUF_SETTER(suffix, T, VT, member)                                        \
    int qf_gguf_writer_set_##suffix(qf_gguf_writer *w, const char *key, T v)         \
    {                                                                                \
        qf_gguf_kv kv = { .key = key, .type = VT };                                  \
        kv.v.member = v;                                                             \
        return qf_gguf_writer_set_kv(w, &kv);                                        \
    }
QF_GGUF_SETTER(u8,   uint8_t,  QF_GGUF_U8,   u8)
QF_GGUF_SETTER(i8,   int8_t,   QF_GGUF_I8,   i8)
QF_GGUF_SETTER(u16,  uint16_t, QF_GGUF_U16,  u16)
QF_GGUF_SETTER(i16,  int16_t,  QF_GGUF_I16,  i16)
QF_GGUF_SETTER(u32,  uint32_t, QF_GGUF_U32,  u32)
QF_GGUF_SETTER(i32,  int32_t,  QF_GGUF_I32,  i32)
QF_GGUF_SETTER(u64,  uint64_t, QF_GGUF_U64,  u64)
QF_GGUF_SETTER(i64,  int64_t,  QF_GGUF_I64,  i64)
QF_GGUF_SETTER(f32,  float,    QF_GGUF_F32,  f32)
QF_GGUF_SETTER(f64,  double,   QF_GGUF_F64,  f64)
QF_GGUF_SETTER(bool, bool,     QF_GGUF_BOOL, b)
#undef QF_GGUF_SETTER

int qf_gguf_writer_set_str(qf_gguf_writer *w, const char *key, const char *v)
{
    assert(v);
    qf_gguf_kv kv = { .key = key, .type = QF_GGUF_STRING, .v.str = { v, strlen(v) } };
    return qf_gguf_writer_set_kv(w, &kv);
}

int qf_gguf_writer_set_arr(qf_gguf_writer *w, const char *key, qf_gguf_vtype elem,
                           const void *data, uint64_t n)
{
    assert(elem != QF_GGUF_STRING && elem != QF_GGUF_ARRAY);
    qf_gguf_kv kv = { .key = key, .type = QF_GGUF_ARRAY, .arr_type = elem, .n = n,
                      .v.arr = data };
    return qf_gguf_writer_set_kv(w, &kv);
}

int qf_gguf_writer_set_arr_str(qf_gguf_writer *w, const char *key, const char *const *strs,
                               uint64_t n)
{
    assert(w && (strs || n == 0));
    if (w->err)
        return w->err;
    qf_gguf_str *s = n > SIZE_MAX / sizeof *s ? NULL : calloc(n ? (size_t)n : 1, sizeof *s);
    if (!s) {
        free(s);
        return werr(w, QF_ENOMEM, "%s: kv '%.48s': out of memory", w->path, key);
    }
    for (uint64_t i = 0; i < n; i++) {
        assert(strs[i]);
        s[i] = (qf_gguf_str){ strs[i], strlen(strs[i]) };
    }
    qf_gguf_kv kv = { .key = key, .type = QF_GGUF_ARRAY, .arr_type = QF_GGUF_STRING, .n = n,
                      .v.arr = s };
    int rc = qf_gguf_writer_set_kv(w, &kv);
    free(s);
    return rc;
}

int qf_gguf_writer_add_tensor(qf_gguf_writer *w, const char *name, uint32_t type,
                              uint32_t n_dims, const int64_t *dims, const void *data,
                              size_t *index)
{
    assert(w && name && (dims || n_dims == 0) && !w->started);
    if (w->err)
        return w->err;
    size_t len = strlen(name);
    if (len == 0 || len > QF_GGUF_MAX_NAME)
        return werr(w, QF_EINVAL, "%s: tensor '%.48s': name must be 1..%u bytes (ggml's limit)",
                    w->path, name, QF_GGUF_MAX_NAME);
    const qf_gguf_type_traits *tt = qf_gguf_type_get(type);
    if (!tt)
        return werr(w, QF_EFORMAT, "%s: tensor '%s': %" PRIu32 " is not a known GGUF tensor type",
                    w->path, name, type);
    uint64_t size;
    char msg[160];
    if (shape_bytes(tt, n_dims, dims, &size, msg, sizeof msg))
        return werr(w, QF_ESHAPE, "%s: tensor '%s' (%s): %s", w->path, name, tt->name, msg);
    for (size_t i = 0; i < w->n_t; i++)
        if (strcmp(w->t[i].name, name) == 0)
            return werr(w, QF_EINVAL, "%s: tensor '%s': duplicate name (also tensor %zu)",
                        w->path, name, i);
    if (w->n_t == w->cap_t) {
        size_t cap = w->cap_t ? 2 * w->cap_t : 64;
        wtensor *t = realloc(w->t, cap * sizeof *t);
        if (!t)
            return werr(w, QF_ENOMEM, "%s: out of memory for tensors", w->path);
        w->t = t;
        w->cap_t = cap;
    }
    wtensor *t = &w->t[w->n_t];
    memset(t, 0, sizeof *t);
    memcpy(t->name, name, len + 1);
    t->type = type;
    t->n_dims = n_dims;
    for (uint32_t d = 0; d < QF_GGUF_MAX_DIMS; d++)
        t->dims[d] = d < n_dims ? dims[d] : 1;
    t->size = size;
    t->data = data;
    if (index)
        *index = w->n_t;
    w->n_t++;
    return 0;
}

/* ---- writer output ---------------------------------------------------------------------- */

static int write_all(qf_gguf_writer *w, const void *p, size_t n)
{
    const uint8_t *b = p;
    while (n > 0) {
        size_t chunk = n > ((size_t)1 << 30) ? (size_t)1 << 30 : n;
        ssize_t k = write(w->fd, b, chunk);
        if (k < 0 && errno == EINTR)
            continue;
        if (k <= 0)
            return werr(w, QF_EIO, "%s: write failed at byte %" PRIu64 ": %s", w->tmp, w->pos,
                        k < 0 ? strerror(errno) : "no progress");
        b += k;
        n -= (size_t)k;
        w->pos += (uint64_t)k;
    }
    return 0;
}

static int flush(qf_gguf_writer *w)
{
    size_t n = w->buf_used;
    w->buf_used = 0;
    return n ? write_all(w, w->buf, n) : 0;
}

static int put(qf_gguf_writer *w, const void *p, size_t n)
{
    if (w->err)
        return w->err;
    if (n > WBUF_BYTES - w->buf_used) {
        int rc = flush(w);
        if (rc)
            return rc;
        if (n > WBUF_BYTES)
            return write_all(w, p, n);
    }
    memcpy(w->buf + w->buf_used, p, n);
    w->buf_used += n;
    return 0;
}

static int put_u32(qf_gguf_writer *w, uint32_t v)
{
    uint8_t b[4];
    encode_value(QF_GGUF_U32, &v, b);
    return put(w, b, 4);
}

static int put_u64(qf_gguf_writer *w, uint64_t v)
{
    uint8_t b[8];
    st64(b, v);
    return put(w, b, 8);
}

static int put_str(qf_gguf_writer *w, const char *s, uint64_t len)
{
    int rc = put_u64(w, len);
    return rc ? rc : put(w, s, (size_t)len);
}

/* Zeros up to the next multiple of the alignment (position counts buffered bytes too). */
static int put_pad(qf_gguf_writer *w)
{
    static const uint8_t zeros[256];
    uint64_t at = w->pos + w->buf_used;
    uint64_t n = (w->alignment - at % w->alignment) % w->alignment;
    while (n > 0) {
        size_t k = n > sizeof zeros ? sizeof zeros : (size_t)n;
        int rc = put(w, zeros, k);
        if (rc)
            return rc;
        n -= k;
    }
    return 0;
}

static int put_kv(qf_gguf_writer *w, const qf_gguf_kv *kv)
{
    put_str(w, kv->key, strlen(kv->key));
    put_u32(w, (uint32_t)kv->type);
    if (kv->type == QF_GGUF_STRING)
        return put_str(w, kv->v.str.s, kv->v.str.len);
    uint8_t b[8];
    if (kv->type != QF_GGUF_ARRAY) {
        encode_value(kv->type, &kv->v, b);
        return put(w, b, k_vtype_disk[kv->type]);
    }
    put_u32(w, (uint32_t)kv->arr_type);
    put_u64(w, kv->n);
    if (kv->arr_type == QF_GGUF_STRING) {
        const qf_gguf_str *s = kv->v.arr;
        for (uint64_t i = 0; i < kv->n; i++)
            put_str(w, s[i].s, s[i].len);
        return w->err;
    }
    const uint8_t *src = kv->v.arr;
    size_t hs = host_size(kv->arr_type);
    for (uint64_t i = 0; i < kv->n; i++) {
        encode_value(kv->arr_type, src + i * hs, b);
        put(w, b, k_vtype_disk[kv->arr_type]);
    }
    return w->err;
}

/* Header, kvs, tensor infos and the padding before the data section. Tensors are packed in
 * order, each padded to the alignment: the offsets ggml's own writer would give them. */
static int write_header(qf_gguf_writer *w)
{
    uint64_t off = 0;
    for (size_t i = 0; i < w->n_t; i++) {
        uint64_t padded = (w->t[i].size + w->alignment - 1) / w->alignment * w->alignment;
        if (padded < w->t[i].size || off > UINT64_MAX - padded)
            return werr(w, QF_ERANGE, "%s: tensor %zu '%s': the data section overflows 64 bits",
                        w->path, i, w->t[i].name);
        w->t[i].offset = off;
        off += padded;
    }
    w->started = true;
    put(w, QF_GGUF_MAGIC, 4);
    put_u32(w, QF_GGUF_VERSION);
    put_u64(w, w->n_t);
    put_u64(w, w->n_kv);
    for (size_t i = 0; i < w->n_kv; i++)
        put_kv(w, &w->kvs[i]);
    for (size_t i = 0; i < w->n_t; i++) {
        const wtensor *t = &w->t[i];
        put_str(w, t->name, strlen(t->name));
        put_u32(w, t->n_dims);
        for (uint32_t d = 0; d < t->n_dims; d++)
            put_u64(w, (uint64_t)t->dims[d]);
        put_u32(w, t->type);
        put_u64(w, t->offset);
    }
    return put_pad(w);
}

static int write_one(qf_gguf_writer *w, size_t i, const void *data)
{
    const wtensor *t = &w->t[i];
    int rc = flush(w);
    if (rc)
        return rc;
    if ((rc = write_all(w, data, (size_t)t->size)))
        return rc;
    return put_pad(w);
}

/* Writes tensors next..upto-1 from the pointers given at add time. */
static int write_pending(qf_gguf_writer *w, size_t upto)
{
    if (!w->started) {
        int rc = write_header(w);
        if (rc)
            return rc;
    }
    for (; w->next < upto; w->next++) {
        const wtensor *t = &w->t[w->next];
        if (!t->data)
            return werr(w, QF_EINVAL, "%s: tensor %zu '%s' has no data: it was added without "
                        "and not given to qf_gguf_writer_write_tensor before tensor %zu or "
                        "finish", w->path, w->next, t->name, upto);
        int rc = write_one(w, w->next, t->data);
        if (rc)
            return rc;
    }
    return w->err;
}

int qf_gguf_writer_write_tensor(qf_gguf_writer *w, size_t index, const void *data)
{
    assert(w && data && index < w->n_t && index >= w->next);
    if (w->err)
        return w->err;
    int rc = write_pending(w, index);
    if (rc)
        return rc;
    if ((rc = write_one(w, index, data)))
        return rc;
    w->next = index + 1;
    return 0;
}

static int finish(qf_gguf_writer *w)
{
    int rc = write_pending(w, w->n_t);
    if (!rc)
        rc = flush(w);
    if (rc)
        return rc;
    if (fchmod(w->fd, w->mode) != 0 || fsync(w->fd) != 0)
        return werr(w, QF_EIO, "%s: cannot sync: %s", w->tmp, strerror(errno));
    int fd = w->fd;
    w->fd = -1;
    if (close(fd) != 0)
        return werr(w, QF_EIO, "%s: close failed: %s", w->tmp, strerror(errno));
    if (rename(w->tmp, w->path) != 0)
        return werr(w, QF_EIO, "%s: cannot rename %s into place: %s", w->path, w->tmp,
                    strerror(errno));
    w->tmp[0] = '\0';  /* it is the destination now: destroy must not unlink it */
    /* Make the rename itself durable; a failure here leaves a complete file, so not an error. */
    char *dir = strdup(w->path);
    if (dir) {
        int dfd = open(dirname(dir), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (dfd >= 0) {
            (void)fsync(dfd);
            close(dfd);
        }
        free(dir);
    }
    return 0;
}

int qf_gguf_writer_finish(qf_gguf_writer **wp, char *why, size_t why_len)
{
    assert(wp && *wp);
    qf_gguf_writer *w = *wp;
    int rc = w->err ? w->err : finish(w);
    if (why && why_len)
        snprintf(why, why_len, "%s", rc ? w->why : "");
    qf_gguf_writer_destroy(wp);
    return rc;
}
