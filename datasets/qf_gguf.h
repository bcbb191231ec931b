/* qf_gguf.h - GGUF (v3, and v2 on read) model files: a validating reader and an atomic writer.
 *
 * GGUF is llama.cpp's model file: a header, typed key/value metadata, tensor descriptors and an
 * aligned data section (docs/gguf.md describes the layout and our rules). Files come from
 * outside, so the reader maps the file read-only and checks every count, length, type, offset
 * and size against the file before anything is used; a bad file is refused with a message that
 * names the field and its byte offset, never a crash or a read past the end. After a successful
 * open everything the accessors hand out is valid until qf_gguf_close.
 *
 * The writer builds a file from metadata and tensors and writes it to a temporary file in the
 * destination's folder, fsyncs it and renames it over the destination: a reader never sees a
 * partial file, and on any error (or qf_gguf_writer_destroy without finish) nothing is left.
 * Tensor data is not copied: pointers given to the writer stay valid until finish, or the data
 * is streamed tensor by tensor (qf_gguf_writer_write_tensor), so a multi-GB model never sits in
 * memory twice. Files we write are read by ggml's gguf_init_from_file (tests/test_gguf.c).
 *
 * Callers: `qfleet quantize` (read a model, write a quantized one), the agent's model datasets.
 * Not hot: parsing is linear in the metadata, tensor data is never touched by open.
 * Everything here is little-endian on disk and decoded byte by byte, on any host.
 */
#ifndef QF_GGUF_H
#define QF_GGUF_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QF_GGUF_MAGIC          "GGUF"
#define QF_GGUF_VERSION        3u      /* what we write; we read 2 and 3 (same layout) */
#define QF_GGUF_MAX_DIMS       4
#define QF_GGUF_DEFAULT_ALIGN  32u     /* when general.alignment is absent */
#define QF_GGUF_KEY_ALIGNMENT  "general.alignment"
#define QF_GGUF_MAX_KEY        65535u  /* bytes, spec limit */
#define QF_GGUF_MAX_NAME       63u     /* tensor name bytes: ggml's GGML_MAX_NAME - 1 */

/* Metadata value types, numbered as on disk. */
typedef enum qf_gguf_vtype {
    QF_GGUF_U8     = 0,
    QF_GGUF_I8     = 1,
    QF_GGUF_U16    = 2,
    QF_GGUF_I16    = 3,
    QF_GGUF_U32    = 4,
    QF_GGUF_I32    = 5,
    QF_GGUF_F32    = 6,
    QF_GGUF_BOOL   = 7,
    QF_GGUF_STRING = 8,
    QF_GGUF_ARRAY  = 9,
    QF_GGUF_U64    = 10,
    QF_GGUF_I64    = 11,
    QF_GGUF_F64    = 12,
    QF_GGUF_VTYPE_COUNT
} qf_gguf_vtype;

/* "u32", "string", "array", ...; "?" for an unknown value. Static storage. */
const char *qf_gguf_vtype_name(qf_gguf_vtype t);
/* Bytes of one value on disk for the fixed-size types; 0 for STRING and ARRAY. */
size_t qf_gguf_vtype_size(qf_gguf_vtype t);

/* A GGUF string: len bytes, may contain NUL. Strings handed out by the reader are also
 * NUL-terminated at s[len] (so s can be printed); the writer reads exactly len bytes. */
typedef struct qf_gguf_str {
    const char *s;
    uint64_t    len;
} qf_gguf_str;

/* One metadata entry. For type ARRAY, arr_type is the element type (never ARRAY: nested arrays
 * are refused, as ggml refuses them) and v.arr points at n host-order elements: uint8_t[n] for
 * U8, ..., float[n] for F32, bool[n] for BOOL, double[n] for F64, qf_gguf_str[n] for STRING. */
typedef struct qf_gguf_kv {
    const char   *key;       /* NUL-terminated */
    qf_gguf_vtype type;
    qf_gguf_vtype arr_type;  /* ARRAY only */
    uint64_t      n;         /* ARRAY only: element count (may be 0) */
    union {
        uint8_t  u8;  int8_t  i8;
        uint16_t u16; int16_t i16;
        uint32_t u32; int32_t i32;
        uint64_t u64; int64_t i64;
        float    f32; double  f64;
        bool     b;
        qf_gguf_str str;
        const void *arr;
    } v;
} qf_gguf_kv;

/* ---- tensor types ------------------------------------------------------------------------ */

/* Geometry of a GGUF/ggml tensor type. Types quantfleet has kernels for take name and geometry
 * from the format table (qf_formats.h) and carry their qf_format; the other types ggml defines
 * (F64, I8..I64, the IQ and TQ quants, MXFP4) are known by geometry only (format = -1), so a
 * file holding them is read and its tensors can be copied or skipped, not computed on. */
typedef struct qf_gguf_type_traits {
    uint32_t    type;        /* GGUF type id */
    const char *name;        /* ggml's name where ours has none: "iq2_xxs", "i32" */
    int64_t     blck;        /* elements per block */
    size_t      type_size;   /* bytes per block */
    int         format;      /* qf_format, or -1 */
} qf_gguf_type_traits;

/* Traits of a GGUF type id, or NULL if the id is not one we know. Static storage. */
const qf_gguf_type_traits *qf_gguf_type_get(uint32_t type);

/* GGUF type id of a qf_format; QF_EFORMAT for formats GGUF has no type for (int8_pc, int4_g*). */
int qf_gguf_type_from_format(int format, uint32_t *type);

/* Bytes of a tensor of the type with dims[0..n_dims) (dims[0] innermost, as ggml's ne).
 * QF_EFORMAT for an unknown type; QF_ESHAPE for n_dims outside 1..4, a dim < 1, dims[0] not a
 * multiple of the block size, or an element/byte count that overflows 63 bits. */
int qf_gguf_type_nbytes(uint32_t type, uint32_t n_dims, const int64_t *dims, uint64_t *nbytes);

/* ---- reader ----------------------------------------------------------------------------- */

typedef struct qf_gguf qf_gguf;

typedef struct qf_gguf_tensor {
    const char *name;                   /* NUL-terminated */
    uint32_t    type;                   /* GGUF type id (qf_gguf_type_get knows it) */
    int         format;                 /* qf_format, or -1 (see qf_gguf_type_traits) */
    uint32_t    n_dims;                 /* 1..4 */
    int64_t     dims[QF_GGUF_MAX_DIMS]; /* dims[0] innermost; dims[n_dims..3] = 1 */
    uint64_t    offset;                 /* from the start of the data section, as stored */
    uint64_t    file_offset;            /* from the start of the file */
    uint64_t    size;                   /* bytes */
    const void *data;                   /* into the read-only mapping */
} qf_gguf_tensor;

/* Maps and validates path. On success *out is the caller's (qf_gguf_close). On failure *out is
 * NULL, why (if not NULL) holds "PATH: <field> at byte N: <what is wrong>", and the return is
 * QF_ENOENT / QF_EIO (cannot open or map, not a regular file), QF_EPARSE (malformed: magic,
 * bounds, types, dims, offsets, duplicates), QF_EUNSUP (version 1 or newer than 3, big-endian)
 * or QF_ENOMEM. */
int  qf_gguf_open(const char *path, qf_gguf **out, char *why, size_t why_len);
/* Unmaps and frees; sets *g to NULL. NULL-safe. */
void qf_gguf_close(qf_gguf **g);

uint32_t    qf_gguf_version(const qf_gguf *g);
uint32_t    qf_gguf_alignment(const qf_gguf *g);    /* general.alignment or 32 */
uint64_t    qf_gguf_data_offset(const qf_gguf *g);  /* file offset of the data section */
uint64_t    qf_gguf_file_size(const qf_gguf *g);
const char *qf_gguf_path(const qf_gguf *g);

/* Metadata in file order (for copying into a writer: qf_gguf_writer_set_kv). */
size_t            qf_gguf_kv_count(const qf_gguf *g);
const qf_gguf_kv *qf_gguf_kv_at(const qf_gguf *g, size_t i);         /* i < count */
const qf_gguf_kv *qf_gguf_find_kv(const qf_gguf *g, const char *key); /* NULL if absent */

/* Typed getters: 0, QF_ENOENT if the key is absent, QF_EPARSE if it has another type. */
int qf_gguf_get_u8  (const qf_gguf *g, const char *key, uint8_t  *out);
int qf_gguf_get_i8  (const qf_gguf *g, const char *key, int8_t   *out);
int qf_gguf_get_u16 (const qf_gguf *g, const char *key, uint16_t *out);
int qf_gguf_get_i16 (const qf_gguf *g, const char *key, int16_t  *out);
int qf_gguf_get_u32 (const qf_gguf *g, const char *key, uint32_t *out);
int qf_gguf_get_i32 (const qf_gguf *g, const char *key, int32_t  *out);
int qf_gguf_get_u64 (const qf_gguf *g, const char *key, uint64_t *out);
int qf_gguf_get_i64 (const qf_gguf *g, const char *key, int64_t  *out);
int qf_gguf_get_f32 (const qf_gguf *g, const char *key, float    *out);
int qf_gguf_get_f64 (const qf_gguf *g, const char *key, double   *out);
int qf_gguf_get_bool(const qf_gguf *g, const char *key, bool     *out);
/* *out is NUL-terminated, owned by g. */
int qf_gguf_get_str (const qf_gguf *g, const char *key, const char **out);
/* Any integer type whose value fits int64 (files disagree on u32 vs i32 for counts);
 * QF_ERANGE for a u64 above INT64_MAX. */
int qf_gguf_get_int (const qf_gguf *g, const char *key, int64_t *out);
/* Array whose elements have type elem: *data points at *n host-order elements (see
 * qf_gguf_kv). QF_EPARSE if the key is not an array of elem. */
int qf_gguf_get_arr (const qf_gguf *g, const char *key, qf_gguf_vtype elem,
                     const void **data, uint64_t *n);

/* Tensors in file order. */
size_t                qf_gguf_tensor_count(const qf_gguf *g);
const qf_gguf_tensor *qf_gguf_tensor_at(const qf_gguf *g, size_t i);           /* i < count */
const qf_gguf_tensor *qf_gguf_find_tensor(const qf_gguf *g, const char *name); /* or NULL */

/* ---- writer ----------------------------------------------------------------------------- */

typedef struct qf_gguf_writer qf_gguf_writer;

/* Starts a file that will become path: creates "path.tmp.XXXXXX" beside it (so the final
 * rename is atomic). QF_EIO with why naming the folder if it cannot. Caller owns *out. */
int  qf_gguf_writer_new(const char *path, qf_gguf_writer **out, char *why, size_t why_len);

/* Abandons an unfinished file (removes the temporary file) and frees; sets *w to NULL.
 * NULL-safe. */
void qf_gguf_writer_destroy(qf_gguf_writer **w);

/* Metadata. Keys are written in the order first set; setting a key again replaces its value
 * in place (so copying a file's metadata and then overriding general.file_type works).
 * Values are deep-copied (strings and arrays included). general.alignment must be a U32 power
 * of two in 8..2^20 (the spec wants a multiple of 8, ggml at most 2^20); it sets the data
 * alignment. Errors (QF_EINVAL for a bad key, value or alignment, QF_ENOMEM) are also
 * remembered: finish reports the first one, qf_gguf_writer_why says it. */
int qf_gguf_writer_set_kv  (qf_gguf_writer *w, const qf_gguf_kv *kv);
int qf_gguf_writer_set_u8  (qf_gguf_writer *w, const char *key, uint8_t  v);
int qf_gguf_writer_set_i8  (qf_gguf_writer *w, const char *key, int8_t   v);
int qf_gguf_writer_set_u16 (qf_gguf_writer *w, const char *key, uint16_t v);
int qf_gguf_writer_set_i16 (qf_gguf_writer *w, const char *key, int16_t  v);
int qf_gguf_writer_set_u32 (qf_gguf_writer *w, const char *key, uint32_t v);
int qf_gguf_writer_set_i32 (qf_gguf_writer *w, const char *key, int32_t  v);
int qf_gguf_writer_set_u64 (qf_gguf_writer *w, const char *key, uint64_t v);
int qf_gguf_writer_set_i64 (qf_gguf_writer *w, const char *key, int64_t  v);
int qf_gguf_writer_set_f32 (qf_gguf_writer *w, const char *key, float    v);
int qf_gguf_writer_set_f64 (qf_gguf_writer *w, const char *key, double   v);
int qf_gguf_writer_set_bool(qf_gguf_writer *w, const char *key, bool     v);
int qf_gguf_writer_set_str (qf_gguf_writer *w, const char *key, const char *v);
/* data: n host-order elements of elem (not STRING, not ARRAY). */
int qf_gguf_writer_set_arr (qf_gguf_writer *w, const char *key, qf_gguf_vtype elem,
                            const void *data, uint64_t n);
/* n NUL-terminated strings. */
int qf_gguf_writer_set_arr_str(qf_gguf_writer *w, const char *key,
                               const char *const *strs, uint64_t n);

/* Declares a tensor; tensors are laid out in the order added. type is a GGUF type id
 * (qf_gguf_type_from_format for a qf_format); dims as in qf_gguf_type_nbytes. data holds
 * the tensor's bytes and must stay valid until finish; or NULL, and the bytes are given later
 * with qf_gguf_writer_write_tensor. QF_EINVAL for a bad or duplicate name, QF_EFORMAT for an
 * unknown type, QF_ESHAPE for bad dims (also remembered, as above). *index (if not NULL) gets
 * the tensor's position. No metadata or tensor may be added after the first write_tensor. */
int qf_gguf_writer_add_tensor(qf_gguf_writer *w, const char *name, uint32_t type,
                              uint32_t n_dims, const int64_t *dims, const void *data,
                              size_t *index);

/* Streams tensor index's bytes (its size per qf_gguf_type_nbytes) to the file now: the first
 * call writes the header and tensor infos; tensors must be given in increasing index order,
 * and tensors before index that were added with data are written first. The bytes are not
 * kept, so the caller may free or reuse the buffer on return. QF_EIO on a write error. */
int qf_gguf_writer_write_tensor(qf_gguf_writer *w, size_t index, const void *data);

/* Writes whatever is not written yet, fsyncs, and renames the file into place; consumes *w
 * (set to NULL) whether it succeeds or not. On failure nothing is left at path's temporary
 * name and path is untouched; why says what failed (the first remembered error, a tensor with
 * no data, a write, fsync or rename error). */
int qf_gguf_writer_finish(qf_gguf_writer **w, char *why, size_t why_len);

/* The first error remembered by set/add/write calls, or "" if none. Static to w. */
const char *qf_gguf_writer_why(const qf_gguf_writer *w);

#endif
