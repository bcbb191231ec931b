/* qf_safetensors.h - read-only access to safetensors checkpoints, single file or sharded.
 *
 * A safetensors file is an 8-byte little-endian header length N, N bytes of JSON
 * ({"name": {"dtype", "shape", "data_offsets": [begin, end]}, ..., "__metadata__": {...}}),
 * then the data section the offsets point into. Files come from outside, so opening one checks
 * everything before any tensor is handed out: N against the file and a 100 MB cap, the JSON
 * (parsed by jansson, duplicate keys refused), every dtype, shape and offset pair, that
 * end - begin == product(shape) * dtype size without overflow, and that the tensors tile the
 * data section exactly (no overlap, no gap, nothing after the last one: the spec's rule
 * against polyglot files). A bad file is refused with one message naming the file, the tensor
 * and the field. A sharded checkpoint (model.safetensors.index.json) is the union of its
 * shards, each validated the same way; every name its weight_map lists must be in that shard,
 * and no name may be in two shards.
 *
 * Files are mapped (mmap, read-only); tensor data pointers point into the mappings and live
 * until qf_safetensors_destroy. They are not aligned: read them with memcpy or through
 * qf_safetensors_to_float. Called by the HF checkpoint converter (hf_llama.c) once per file;
 * conversion to float is the only per-weight work here.
 */
#ifndef QF_SAFETENSORS_H
#define QF_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

/* The dtypes of the safetensors spec. The first seven are the ones quantfleet converts;
 * the rest are understood (their sizes are known, so files holding them are validated and
 * listed) but qf_safetensors_to_float refuses them. */
typedef enum qf_st_dtype {
    QF_ST_F32,
    QF_ST_F16,
    QF_ST_BF16,
    QF_ST_I8,
    QF_ST_U8,
    QF_ST_I32,
    QF_ST_I64,
    QF_ST_BOOL,
    QF_ST_I16,
    QF_ST_U16,
    QF_ST_U32,
    QF_ST_U64,
    QF_ST_F64,
    QF_ST_F8_E4M3,
    QF_ST_F8_E5M2,
    QF_ST_DTYPE_COUNT
} qf_st_dtype;

#define QF_ST_MAX_DIMS 8               /* more dimensions than this are refused */
#define QF_ST_MAX_HEADER 100000000u    /* the reference implementation's cap, in bytes */

typedef struct qf_st_tensor {
    const char *name;
    qf_st_dtype dtype;
    int         n_dims;                /* 0 for a scalar */
    int64_t     shape[QF_ST_MAX_DIMS]; /* as written: outermost first, shape[n_dims-1] contiguous */
    int64_t     nelem;                 /* product of shape (1 for a scalar) */
    size_t      nbytes;                /* nelem * dtype size */
    const void *data;                  /* into the file mapping; unaligned */
    const char *file;                  /* the shard it lives in */
} qf_st_tensor;

typedef struct qf_safetensors qf_safetensors;

/* Opens path: a .safetensors file, a model.safetensors.index.json, or a folder holding one
 * of those (the index wins). Caller owns *out (qf_safetensors_destroy). QF_ENOENT, QF_EIO,
 * QF_EPARSE, QF_ERANGE, QF_ETOOBIG or QF_ENOMEM, each with one line naming what was wrong. */
int qf_safetensors_open(const char *path, qf_safetensors **out);

/* Unmaps and frees; *st becomes NULL. NULL-safe. */
void qf_safetensors_destroy(qf_safetensors **st);

/* Tensors in file order (shard by shard, then by data offset). */
size_t qf_safetensors_count(const qf_safetensors *st);
const qf_st_tensor *qf_safetensors_at(const qf_safetensors *st, size_t i);

/* The tensor named name, or NULL. */
const qf_st_tensor *qf_safetensors_find(const qf_safetensors *st, const char *name);

/* A "__metadata__" value of the first file (or of any shard), or NULL. Static while st lives. */
const char *qf_safetensors_metadata(const qf_safetensors *st, const char *key);

/* "F32", "BF16", ... Static storage. */
const char *qf_st_dtype_name(qf_st_dtype dtype);

/* Bytes per element of dtype. */
size_t qf_st_dtype_size(qf_st_dtype dtype);

/* Converts the tensor's nelem values to float into dst (F16/BF16 exactly, integers by value,
 * I32/I64 rounded to nearest). QF_EUNSUP with a message naming the tensor for the dtypes
 * quantfleet does not convert. */
int qf_safetensors_to_float(const qf_st_tensor *t, float *dst);

#endif
