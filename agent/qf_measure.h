/* qf_measure.h - the measurement core: time one kernel op over a synthetic weight matrix.
 *
 * `qfleet bench` (agent/bench.c) and the agent's job kinds (agent/jobs.c) both measure through
 * this one implementation, so a number from the CLI and a number from the fleet mean the same.
 *
 * A qf_measure holds the buffers for one shape and the input generated once with qf_synth_fill
 * (the weights, plus a Gaussian activation row with its own seed); qf_measure_run then times
 * one format on it: warm-up passes, then `reps` timed passes, each one pass of the op over
 * every row of the matrix, every sample kept. Several formats can be run on the same qf_measure
 * (bench --format all) as long as they were named to qf_measure_new, which sizes the buffers
 * for the largest. Nothing here prints except what the kernels library prints on its own; errors
 * come back as a qf_err with a one-line reason in why. Not thread-safe: one run at a time.
 */
#ifndef QF_MEASURE_H
#define QF_MEASURE_H

#include <stddef.h>
#include <stdint.h>

#include "qf_bench.h"     /* qf_bench_op */
#include "qf_formats.h"
#include "qf_metrics.h"
#include "qf_synth.h"

typedef struct qf_measure_spec {
    qf_bench_op   op;
    int64_t       rows, cols;   /* >= 1 each; cols must fit every format run (qf_measure_check) */
    int           threads;      /* >= 1: the rows are cut into this many contiguous shares */
    uint32_t      reps;         /* >= 1 timed passes */
    uint32_t      warmup;       /* untimed passes before them */
    qf_synth_dist dist;         /* body of the generated weights */
    uint64_t      seed;         /* of the weights; the activations derive their own from it */
} qf_measure_spec;

typedef struct qf_measure_out {
    qf_format   fmt;
    const char *kernel;            /* the variant that was timed ("ref"); static storage */
    uint64_t    bytes;             /* bytes of the quantized tensor */
    uint64_t    throughput_bytes;  /* bytes one pass reads: f32 input for quantize, quantized
                                      weights for dequantize and matvec (GB/s = this / sample) */
    double      bpw;               /* from the format table, for this row length */
    double     *samples;           /* seconds per timed pass, n_samples of them (= reps), each
                                      > 0; caller owns (qf_measure_out_clear) */
    uint32_t    n_samples;
    qf_tensor_metrics metrics;     /* the format's quality on this matrix (reference decode) */
} qf_measure_out;

typedef struct qf_measure qf_measure;

/* "quantize", "dequantize", "matvec"; NULL-free: op must be valid. Static storage. */
const char *qf_measure_op_name(qf_bench_op op);
/* The op named name; QF_EINVAL (silently) if there is none. */
int qf_measure_op_from_name(const char *name, qf_bench_op *op);

/* 0 if fmt can do spec->op on rows of spec->cols weights. QF_EUNSUP for matvec of an
 * activation-only format, QF_ESHAPE for a row length the format cannot hold (this one is also
 * printed by qf_format_check_cols, naming the multiple); why says which. */
int qf_measure_check(const qf_measure_spec *spec, qf_format fmt, char *why, size_t why_len);

/* Bytes qf_measure_new allocates for spec and these formats (each already checked), so a
 * caller can refuse a shape before allocating anything. Exact: no term can overflow for
 * rows and cols <= 2^20. */
uint64_t qf_measure_buffer_bytes(const qf_measure_spec *spec, const qf_format *fmts, int nfmts);

/* Allocates the buffers for spec and the nfmts >= 1 formats it may run, and generates the
 * input. Caller owns *out (qf_measure_destroy). QF_ENOMEM, or an error of qf_measure_check or
 * qf_synth_fill, with a reason in why. */
int qf_measure_new(const qf_measure_spec *spec, const qf_format *fmts, int nfmts,
                   qf_measure **out, char *why, size_t why_len);

/* The generated weights, rows x cols f32 row-major, valid until destroy. What a job hashes to
 * prove which input it measured. */
const float *qf_measure_input(const qf_measure *m, int64_t *n_elems);

/* Times fmt (one of the formats given to qf_measure_new) and fills *out (zeroed first).
 * QF_ENOMEM (also when a thread could not be started), with a reason in why; *out then owns
 * nothing. */
int qf_measure_run(qf_measure *m, qf_format fmt, qf_measure_out *out, char *why, size_t why_len);

/* A byte count for people: "512 B", "8.6 MiB" (binary units, one decimal). */
void qf_measure_format_bytes(char *buf, size_t size, uint64_t bytes);

/* Frees out->samples and zeroes *out. NULL-safe. */
void qf_measure_out_clear(qf_measure_out *out);

/* Frees everything and sets *m to NULL. NULL-safe. */
void qf_measure_destroy(qf_measure **m);

#endif
