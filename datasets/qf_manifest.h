/* qf_manifest.h - dataset manifests: one YAML file per dataset in datasets/ (docs/datasets.md).
 *
 * A manifest says what a dataset is and where its bytes come from: a name (what suites, jobs
 * and `qfleet dataset` call it), a kind, either URLs (mirrors of one file, tried in order) or a
 * generator (synthetic data made on the spot), the expected size, the SHA-256 (or an explicit
 * `unverified: true` where nobody has established it), a license and a description. Files of
 * kind tensor and model also name their container format (gguf or safetensors).
 *
 * Manifests are read from a folder: the source tree's datasets/ baked in at build time, or
 * QF_MANIFEST_DIR, or `--manifests DIR`. They are text from outside (a user may point at any
 * folder), so every field is checked here and a bad one is refused with "FILE:LINE:COL: field:
 * reason" in why; nothing here prints or aborts on input. Not hot: read once per command or
 * per job.
 *
 * A job names a manifest as "manifest:NAME" or "manifest:NAME/TENSOR";
 * qf_manifest_ref_parse is the one place that syntax is defined (common/job.c validates with
 * it, agent/jobs.c resolves with it).
 */
#ifndef QF_MANIFEST_H
#define QF_MANIFEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QF_MANIFEST_NAME_MAX   48    /* bytes with the NUL: [A-Za-z0-9][A-Za-z0-9._-]*, no ".." */
#define QF_MANIFEST_TENSOR_MAX 128   /* a tensor name inside a GGUF/safetensors file */
#define QF_MANIFEST_URL_MAX    1024
#define QF_MANIFEST_MAX_URLS   4
#define QF_MANIFEST_FILE_MAX   128   /* the file's name in the cache */
#define QF_MANIFEST_TEXT_MAX   512   /* license, description */
#define QF_MANIFEST_PATH_MAX   1024
#define QF_MANIFEST_MAX_COUNT  1024  /* manifests in one folder */
#define QF_MANIFEST_REF_PREFIX "manifest:"

typedef enum qf_manifest_kind {
    QF_MANIFEST_TENSOR,        /* a file of weight tensors to benchmark one at a time */
    QF_MANIFEST_MODEL,         /* a whole model checkpoint (qfleet quantize input) */
    QF_MANIFEST_TEXT,          /* text for perplexity */
    QF_MANIFEST_CALIBRATION,   /* calibration activations or text */
    QF_MANIFEST_SYNTHETIC,     /* made by a generator, nothing to download */
} qf_manifest_kind;

typedef enum qf_manifest_format {
    QF_MANIFEST_FMT_NONE,      /* kinds text, calibration, synthetic */
    QF_MANIFEST_FMT_GGUF,
    QF_MANIFEST_FMT_SAFETENSORS,
} qf_manifest_format;

typedef struct qf_manifest {
    char               name[QF_MANIFEST_NAME_MAX];
    qf_manifest_kind   kind;
    qf_manifest_format format;
    char               urls[QF_MANIFEST_MAX_URLS][QF_MANIFEST_URL_MAX];  /* http(s) only */
    int                n_urls;                   /* 0 for synthetic, >= 1 otherwise */
    char               file[QF_MANIFEST_FILE_MAX];/* name in the cache: `file:`, else the last
                                                    path segment of the first URL */
    char               generator[64];            /* synthetic: "synth:student-t", ... */
    uint64_t           size;                     /* bytes; 0 for synthetic */
    bool               size_exact;               /* `size:` (the file has exactly this many
                                                    bytes) rather than `max_size:` (at most) */
    char               sha256[65];               /* lowercase hex, "" when unverified */
    bool               unverified;               /* no known SHA-256: trust on first fetch */
    char               tensor[QF_MANIFEST_TENSOR_MAX]; /* default tensor for jobs, or "" */
    char               license[QF_MANIFEST_TEXT_MAX];
    char               description[QF_MANIFEST_TEXT_MAX];
    char               path[QF_MANIFEST_PATH_MAX];/* the YAML file it was read from */
} qf_manifest;

/* "tensor", "model", "text", "calibration", "synthetic"; "gguf", "safetensors", "". Static. */
const char *qf_manifest_kind_name(qf_manifest_kind k);
const char *qf_manifest_format_name(qf_manifest_format f);

/* True if name is a valid manifest name: 1..QF_MANIFEST_NAME_MAX-1 bytes of [A-Za-z0-9._-],
 * starting with a letter or digit, without "..". Names become folder names in the cache, so
 * this is also what keeps a name from escaping it. */
bool qf_manifest_name_valid(const char *name);

/* Parses a job's dataset reference "manifest:NAME" or "manifest:NAME/TENSOR" (syntax only:
 * whether the manifest exists is for whoever has the folder). name gets NAME, tensor gets
 * TENSOR or "". Returns 0, or QF_EINVAL with the reason in why (no output). name and tensor
 * may be NULL when only the check is wanted. */
int qf_manifest_ref_parse(const char *ref, char name[QF_MANIFEST_NAME_MAX],
                          char tensor[QF_MANIFEST_TENSOR_MAX], char *why, size_t why_len);

/* The folder manifests are read from when none is given: $QF_MANIFEST_DIR if set and not
 * empty, else the source tree's datasets/ as configured at build time. Static or environment
 * storage. */
const char *qf_manifest_default_dir(void);

/* Reads and checks one manifest file (at most 64 KiB of YAML: one mapping of the fields
 * docs/datasets.md lists; unknown keys, aliases and a second document are refused). The
 * file must be called NAME.yaml after its `name:`, so one folder cannot hold two manifests
 * of one name and a lookup by name reads one file.
 * Returns 0, or QF_ENOENT / QF_EIO / QF_EPARSE / QF_EINVAL / QF_ETOOBIG with "PATH:LINE:COL:
 * ..." in why; *m is zeroed on failure. */
int qf_manifest_load(const char *path, qf_manifest *m, char *why, size_t why_len);

/* Every *.yaml in dir, loaded and sorted by name. A file that does not load fails the whole
 * list (its reason in why), so a broken manifest is noticed, not skipped. Caller owns *out
 * (free()); *n may be 0. */
int qf_manifest_list(const char *dir, qf_manifest **out, size_t *n, char *why, size_t why_len);

/* The manifest called name in dir (DIR/NAME.yaml): QF_ENOENT ("no manifest named 'x' in
 * DIR") if there is none, QF_EINVAL for an invalid name, else as qf_manifest_load. */
int qf_manifest_find(const char *dir, const char *name, qf_manifest *m, char *why,
                     size_t why_len);

#endif
