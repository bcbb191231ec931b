/* qf_imatrix_file.h - llama.cpp importance-matrix ("imatrix") files: a validating reader.
 *
 * llama-imatrix runs a model over calibration text and records, for every weight matrix it
 * sees, the sum of the squared activations reaching each input column (and how many rows it
 * summed); llama-quantize --imatrix divides one by the other and hands the per-column means to
 * ggml's quantizers as importance weights (qf_imatrix.h: qf_quantize_weighted). Two file
 * formats exist, told apart by the GGUF magic, and both are read here (docs/datasets.md):
 *   - legacy .dat: int32 entry count; per entry int32 name length, the name, int32 ncall,
 *     int32 nval, nval f32 values (already mean * ncall); then optionally int32 chunk count,
 *     int32 dataset-name length and the name. Values are divided by ncall (when > 0).
 *   - GGUF (llama.cpp since mid-2025): per entry tensors "<name>.in_sum2" (F32, ncols x nmat)
 *     and "<name>.counts" (F32, 1 x nmat), keys imatrix.datasets, imatrix.chunk_count and
 *     imatrix.chunk_size. Each matrix's sums are divided by its count; a matrix with count 0
 *     (an expert never routed to) gets importance 1, as llama-quantize gives it.
 * nmat > 1 is a 3-D expert tensor: its nval = ncols * nmat values are the experts in order.
 *
 * Files come from outside: every length, count and value is checked against the file before
 * use, and a bad file is refused with a message naming the file, the entry (index and name)
 * and what is wrong (truncated, negative or oversized length, non-finite or negative value,
 * mismatched sums and counts, duplicate entry), never a crash. Callers: `qfleet quantize
 * --imatrix`, the tests, the fuzz target. Not hot: read once, linear in the file.
 */
#ifndef QF_IMATRIX_FILE_H
#define QF_IMATRIX_FILE_H

#include <stddef.h>
#include <stdint.h>

typedef struct qf_imatrix_file qf_imatrix_file;

typedef struct qf_imatrix_entry {
    const char  *name;      /* tensor name, NUL-terminated, e.g. "blk.0.attn_q.weight" */
    int64_t      nval;      /* values: ncols * nmat */
    int64_t      nmat;      /* matrices: 1, or the experts of a 3-D tensor */
    const float *values;    /* nval importances, finite and >= 0 */
} qf_imatrix_entry;

/* Reads path. On success *out is the caller's (qf_imatrix_file_destroy). On failure *out is
 * NULL, why holds "PATH: <what, where>" and the return is QF_ENOENT / QF_EIO (cannot open or
 * read), QF_EPARSE (malformed), QF_ETOOBIG (over 4 GiB) or QF_ENOMEM. */
int  qf_imatrix_file_open(const char *path, qf_imatrix_file **out, char *why, size_t why_len);
/* Frees; sets *m to NULL. NULL-safe. */
void qf_imatrix_file_destroy(qf_imatrix_file **m);

/* "dat" or "gguf". Static storage. */
const char *qf_imatrix_file_kind(const qf_imatrix_file *m);
/* Chunks of calibration text the matrix was computed on, -1 if the file does not say. */
int64_t     qf_imatrix_file_chunks(const qf_imatrix_file *m);
/* The (last) calibration dataset's name, "" if the file does not say. Owned by m. */
const char *qf_imatrix_file_dataset(const qf_imatrix_file *m);

/* Entries in file order (legacy) or name order (GGUF, as llama.cpp iterates them). */
size_t                  qf_imatrix_file_count(const qf_imatrix_file *m);
const qf_imatrix_entry *qf_imatrix_file_at(const qf_imatrix_file *m, size_t i); /* i < count */
const qf_imatrix_entry *qf_imatrix_file_find(const qf_imatrix_file *m, const char *name);

#endif
