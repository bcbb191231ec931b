/* qf_jobs.h - the job kinds an agent runs, as a table (like the format table), and the
 * measurement of one job in the current process.
 *
 * Kinds: quantize (format x dataset -> quality metrics, bytes, bpw, quantize GB/s of f32 input),
 * dequantize (GB/s of quantized bytes), matvec (decode-like, GB/s of weight bytes), noop (does
 * nothing measurable, for load tests of the fleet). Each kind runs spec->warmup passes, then
 * spec->reps timed passes, and returns every raw sample. qf_jobs_run is what the runner's child
 * process calls; `qfleet bench` shares the same measurement core (agent/measure.c).
 */
#ifndef QF_JOBS_H
#define QF_JOBS_H

#include <stdbool.h>

#include "qf_job.h"

typedef struct qf_job_kind {
    const char *name;
    const char *summary;
    bool        needs_format;
    int (*run)(const qf_job_spec *spec, qf_job_result *out);
} qf_job_kind;

/* The kind named name, or NULL. */
const qf_job_kind *qf_jobs_find(const char *name);
/* The table: *n kinds. */
const qf_job_kind *qf_jobs_table(int *n);

/* Runs spec in this process and fills *out (status OK with samples and metrics, or FAILED with
 * a reason). Returns 0 when a result was produced (even a FAILED one), negative on misuse. */
int qf_jobs_run(const qf_job_spec *spec, qf_job_result *out);

/* Hex SHA-256 of n floats as little-endian binary32 bytes, the same on every host: a result's
 * dataset_sha256, so two agents (or an agent and a framework) can prove they measured the same
 * tensor. QF_EUNSUP if libsodium cannot start. */
int qf_jobs_input_sha256(const float *x, int64_t n, char hex[65]);

/* The weights a job measures: its dataset's tensor (fetched into the cache if needed) or the
 * generator's matrix for the spec's seed, rows x cols f32; caller frees *weights. The same
 * matrix quantize/dequantize/matvec measure. qf_err with a reason in why. */
int qf_jobs_weights(const qf_job_spec *spec, float **weights, char *why, size_t why_len);

#endif
