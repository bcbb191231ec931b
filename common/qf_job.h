/* qf_job.h - what a job is and what it returns: the currency every part of the fleet shares.
 *
 * A suite expands into job specs (suites/), a client submits them (SUBMIT), the coordinator
 * stores them (coordinator/store.c, as JSON text) and leases them to agents (JOB), an agent
 * runs them (agent/jobs.c) and returns a result (RESULT), which the store keeps with its raw
 * samples. Specs and results are plain structs of fixed-size strings and numbers, so they copy
 * by assignment; only a result's samples array is on the heap (qf_job_result_clear frees it).
 *
 * Identity: qf_job_key() names what a job measures (kind, format, dataset, shape, threads,
 * seed), independent of run and attempt, so results of two commits pair up by key (reports).
 */
#ifndef QF_JOB_H
#define QF_JOB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QF_JOB_KIND_MAX   16
#define QF_JOB_FORMAT_MAX 24
#define QF_JOB_DATASET_MAX 64
#define QF_JOB_SELECTOR_MAX 256
#define QF_JOB_KEY_MAX    192
#define QF_JOB_ERROR_MAX  256
#define QF_JOB_MAX_SAMPLES 100000

/* Bounds every spec must respect, wherever it came from (suite file or network frame). */
#define QF_JOB_MAX_DIM    (1 << 20)          /* rows and cols each */
#define QF_JOB_MAX_ELEMS  ((int64_t)1 << 28)  /* rows * cols: 1 GiB of f32 */
#define QF_JOB_MAX_REPS   10000
#define QF_JOB_MAX_THREADS 1024
#define QF_JOB_MAX_TIMEOUT_MS (24u * 3600u * 1000u)

typedef struct qf_job_spec {
    char     kind[QF_JOB_KIND_MAX];        /* a row of the job-kind table: quantize, dequantize,
                                              matvec, framework (the scheme run in its own
                                              framework, named by the selector's backend=NAME),
                                              noop */
    char     format[QF_JOB_FORMAT_MAX];    /* a format name from the format table; "" for noop */
    char     dataset[QF_JOB_DATASET_MAX];  /* "synth:student-t", "synth:gaussian", "synth:laplace",
                                              or "manifest:NAME[/TENSOR]" (datasets/NAME.yaml) */
    int64_t  rows, cols;
    uint32_t reps, warmup, threads;
    uint64_t seed;
    uint32_t timeout_ms;                   /* the agent kills the job's child at this limit */
    int32_t  priority;                     /* higher first */
    char     selector[QF_JOB_SELECTOR_MAX];/* "isa=avx2 arch=x86_64 backend=cpu name=lab-*":
                                              every term must match the agent; "" matches all */
} qf_job_spec;

typedef enum qf_job_status {
    QF_JOB_OK,        /* measured */
    QF_JOB_FAILED,    /* the job ran and reported an error (bad spec for this agent, ...) */
    QF_JOB_TIMEOUT,   /* killed at timeout_ms */
    QF_JOB_CRASHED,   /* the child died of a signal or exited without a result */
} qf_job_status;

typedef struct qf_job_metrics {
    double rmse, nmse, snr_db, max_abs, cosine;   /* as qf_tensor_metrics; inf/NaN allowed */
} qf_job_metrics;

/* An eval job's model-level quality and speed (model/qf_eval.h, docs/metrics.md): perplexity
 * of the quantized model and of its unquantized baseline on the same tokens, mean and 99th
 * percentile KL divergence, top-1 agreement ("same top p", a fraction), RMS of the probability
 * shift of the actual next token, prompt and generation tokens per second (pp, tg). NaN for a
 * number the job could not compute. */
typedef struct qf_job_model {
    double  ppl, ppl_err, ppl_base, kld, kld_p99, same_top, dp_rms, pp_tps, tg_tps;
    int64_t n_scored;
} qf_job_model;

typedef struct qf_job_result {
    qf_job_status status;
    char     error[QF_JOB_ERROR_MAX];      /* why, when status != OK */
    double  *samples;                      /* seconds per repetition, n_samples of them */
    uint32_t n_samples;
    bool     has_metrics;                  /* false for noop */
    qf_job_metrics metrics;
    uint64_t bytes;                        /* bytes of the quantized tensor */
    double   bpw;
    uint64_t throughput_bytes;             /* bytes one repetition moves (for GB/s) */
    char     dataset_sha256[65];           /* hex SHA-256 of the input tensor's f32 bytes */
    char     kernel[32];                   /* kernel variant that ran: "ref", "avx2", ... */
    uint64_t seed;
    uint64_t peak_rss_kb;                  /* of the job's child process */
    uint64_t device_mem_bytes;             /* GPU jobs: device memory the job's buffers took
                                              (weights, activations, output, scratch); 0 on
                                              the CPU */
    double   wall_s;                       /* child start to result */
    bool     has_model;                    /* eval jobs */
    qf_job_model model;
} qf_job_result;

/* Checks a spec from anywhere outside: known kind and format (for kinds that need one; noop
 * takes "" or any known format), known dataset, dimensions within the QF_JOB_MAX_* bounds and
 * a fit for the format (cols a multiple of the weight and activation block, as
 * qf_format_check_cols), reps >= 1, threads >= 1, seed < 2^63 (JSON and SQLite integers are
 * signed), strings terminated and printable ASCII, selector valid. QF_EINVAL with a reason
 * that starts with the field's name ("cols: 100 is not a multiple of 256 ...") in why; no
 * stderr output. */
int qf_job_spec_validate(const qf_job_spec *s, char *why, size_t why_len);

/* An eval job (kind "eval") measures a model: its dataset is "MODEL@TEXT" (a manifest
 * reference to a GGUF model, "@", then "text:NAME" for datasets/texts/NAME.txt or a manifest
 * reference of kind text), format the scheme the model is quantized to, rows the context
 * (tokens per chunk, >= QF_JOB_EVAL_MIN_CTX), cols the most chunks scored, reps the speed
 * repetitions. */
#define QF_JOB_EVAL_MIN_CTX 16
#define QF_JOB_TEXT_PREFIX "text:"
/* Splits an eval dataset at its '@' into model and text (both NUL-terminated). QF_EINVAL when
 * there is not exactly one '@', QF_ERANGE when a part does not fit. model may be NULL to
 * check only. */
int qf_job_eval_dataset(const char *dataset, char *model, size_t model_len, char *text,
                        size_t text_len);

/* The framework a "framework" job names with its selector's backend=NAME term ("ort",
 * "llamacpp", "openvino", "mlx", "qnn"), or NULL when it names none. Static storage. */
const char *qf_job_framework(const qf_job_spec *s);
/* Every framework name a framework job may use: *n of them. */
const char *const *qf_job_frameworks(int *n);

/* The spec's identity key, e.g. "matvec/q4_K/synth:student-t/4096x4096/t1/s42". */
void qf_job_key(const qf_job_spec *s, char key[QF_JOB_KEY_MAX]);

/* Spec <-> JSON text (the store's column): an object with exactly the struct's twelve keys.
 * to_json: caller frees with free(); NULL when out of memory (or for a string that is
 * not UTF-8, which a validated spec never has). from_json refuses bad JSON, a
 * missing or unknown key, a wrong type, an overlong string or an integer outside its C type
 * with QF_EPARSE (the key named in why), then validates as qf_job_spec_validate (QF_EINVAL);
 * on failure *s is zeroed. */
char *qf_job_spec_to_json(const qf_job_spec *s);
int   qf_job_spec_from_json(const char *json, qf_job_spec *s, char *why, size_t why_len);

/* A result's metrics -> JSON text ({"rmse":..,"snr_db":null when infinite,...}, with an eval
 * job's model numbers as "perplexity", "kld", ... keys in the same object); caller frees.
 * NULL when the result has neither (or out of memory: check has_metrics || has_model). */
char *qf_job_metrics_to_json(const qf_job_result *r);
/* Samples -> JSON array text; caller frees. */
char *qf_job_samples_to_json(const double *samples, uint32_t n);

const char *qf_job_status_name(qf_job_status st);          /* "ok", "failed", ... */
int qf_job_status_from_name(const char *name, qf_job_status *out);

/* Frees the samples and zeroes the result. */
void qf_job_result_clear(qf_job_result *r);

/* Makes r a FAILED result with the formatted reason (cut at QF_JOB_ERROR_MAX): frees its
 * samples, drops its metrics and model numbers. Returns 0 ("a result was produced"), so a job
 * kind or framework adapter can `return qf_job_result_fail(out, ...)`. */
int qf_job_result_fail(qf_job_result *r, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* What an agent offers, for selector matching (all space-separated word lists). */
typedef struct qf_agent_caps {
    char name[64];
    char arch[16];
    char isa[256];
    char backends[64];
} qf_agent_caps;

/* True if the selector matches caps: every term must hold. Terms: isa=X (X among caps.isa),
 * arch=X, backend=X (X among caps.backends), name=GLOB (fnmatch on caps.name). "" matches all.
 * Used by the coordinator's lease and the agent's own check. */
bool qf_selector_match(const char *selector, const qf_agent_caps *caps);

/* True if the selector has the term key=value itself (not merely one that caps would match):
 * how an agent learns that a job asked for a backend ("backend=cuda" runs on the GPU). */
bool qf_selector_has_term(const char *selector, const char *key, const char *value);

/* Checks a selector's syntax (space-separated key=value terms, known keys, non-empty values).
 * QF_EINVAL with a reason in why. qf_job_spec_validate calls it. */
int qf_selector_validate(const char *selector, char *why, size_t why_len);

#endif
