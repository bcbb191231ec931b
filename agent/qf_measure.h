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

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qf_bench.h"     /* qf_bench_op */
#include "qf_formats.h"
#include "qf_kernels.h"
#include "qf_metrics.h"
#include "qf_synth.h"

/* Where the op runs. REF, the zero value: the CPU reference kernels. CUDA: device 0 through
 * kernels/cuda (dequantize and matvec, builds with QF_HAVE_CUDA only), each pass one kernel
 * launch timed with CUDA events, the weights rotated among enough device copies that they
 * are read from DRAM, not from the L2 cache. */
typedef enum qf_measure_backend {
    QF_BACKEND_REF, QF_BACKEND_CUDA,
    QF_BACKEND_OPENCL,   /* kernels/opencl (QF_HAVE_OPENCL): dequantize and matvec of q8_0,
                            q4_0, q4_K, int4_g*, each pass one launch timed by its profiling
                            event, weights rotated as CUDA's (4x the device's global cache) */
} qf_measure_backend;

typedef struct qf_measure_spec {
    qf_measure_backend backend;
    qf_bench_op   op;
    int64_t       rows, cols;   /* >= 1 each; cols must fit every format run (qf_measure_check) */
    bool          force_isa;    /* false: the best CPU kernels the host runs (qf_isa_best) */
    qf_isa        isa;          /* with force_isa: these (QF_EUNSUP if the host can't) */
    int           threads;      /* >= 1: the rows are cut into this many contiguous shares
                                   (REF only; a CUDA pass is one launch over all rows) */
    int64_t       batch;        /* matmul: activation rows, 1..4096 (0 = 512); else unused */
    uint32_t      reps;         /* >= 1 timed passes */
    uint32_t      warmup;       /* untimed passes before them */
    qf_synth_dist dist;         /* body of the generated weights */
    uint64_t      seed;         /* of the weights; the activations derive their own from it */
    const float  *input;        /* optional: rows x cols weights to measure instead of
                                   generating them (a dataset's tensor); copied by _new */
} qf_measure_spec;

typedef struct qf_measure_out {
    qf_format   fmt;
    const char *kernel;            /* the variant that was timed: the ISA whose kernel ran the
                                      op ("avx512", "ref"; slots an ISA lacks fall back, and
                                      this names where the timed one came from), or the GPU
                                      backend ("cuda"); static storage */
    uint64_t    bytes;             /* bytes of the quantized tensor */
    uint64_t    throughput_bytes;  /* bytes one pass reads: f32 input for quantize, quantized
                                      weights for dequantize and matvec (GB/s = this / sample) */
    double      bpw;               /* from the format table, for this row length */
    double      flops;             /* matmul: 2 x rows x cols x batch per pass; else 0 */
    double     *samples;           /* seconds per timed pass, n_samples of them (= reps), each
                                      > 0; caller owns (qf_measure_out_clear) */
    uint32_t    n_samples;
    qf_tensor_metrics metrics;     /* the format's quality on this matrix (reference decode) */
    /* CUDA and OpenCL only (REF: 0 and NAN): */
    uint64_t    device_mem_bytes;  /* device memory the run's buffers took, by the driver's
                                      free-memory count before and after (CUDA; 0 elsewhere) */
    double      copy_gbps;         /* the device's D2D copy bandwidth, read + write bytes, as
                                      measured by qf_measure_new: the ceiling for GB/s */
    double      check_nmse;        /* the device's output against the CPU reference on the same
                                      input, after the timed passes: matvec against
                                      qf_matvec_ref, dequantize against the reference decode
                                      (0 when bit-exact); NaN if any output was not finite */
} qf_measure_out;

typedef struct qf_measure qf_measure;

/* "quantize", "dequantize", "matvec"; NULL-free: op must be valid. Static storage. */
const char *qf_measure_op_name(qf_bench_op op);
/* The op named name; QF_EINVAL (silently) if there is none. */
int qf_measure_op_from_name(const char *name, qf_bench_op *op);

/* "ref", "cuda", "opencl". Static storage. */
const char *qf_measure_backend_name(qf_measure_backend b);
/* The backend named name; QF_EINVAL (silently) if there is none. */
int qf_measure_backend_from_name(const char *name, qf_measure_backend *b);
/* True if this build has backend b (REF always; CUDA, OpenCL when built with them, device or
 * not). */
bool qf_measure_backend_built(qf_measure_backend b);
/* True if backend b of this build can run op on weight format fmt. */
bool qf_measure_backend_supports(qf_measure_backend b, qf_format fmt, qf_bench_op op);

/* 0 if fmt can do spec->op on rows of spec->cols weights. QF_EUNSUP for matvec of an
 * activation-only format or an op or format the backend lacks, QF_ESHAPE for a row length the
 * format cannot hold (this one is also printed by qf_format_check_cols, naming the multiple);
 * why says which. */
int qf_measure_check(const qf_measure_spec *spec, qf_format fmt, char *why, size_t why_len);

/* Bytes qf_measure_new allocates for spec and these formats (each already checked), so a
 * caller can refuse a shape before allocating anything. Exact: no term can overflow for
 * rows and cols <= 2^20. */
uint64_t qf_measure_buffer_bytes(const qf_measure_spec *spec, const qf_format *fmts, int nfmts);

/* Allocates the buffers for spec and the nfmts >= 1 formats it may run, and generates the
 * input; for CUDA also finds the device (QF_EUNSUP without one) and measures its copy
 * bandwidth. Caller owns *out (qf_measure_destroy). QF_ENOMEM, or an error of
 * qf_measure_check or qf_synth_fill, with a reason in why. */
int qf_measure_new(const qf_measure_spec *spec, const qf_format *fmts, int nfmts,
                   qf_measure **out, char *why, size_t why_len);

/* One line about the device the backend runs on ("NVIDIA H100 80GB HBM3, cc 9.0, 132 SMs,
 * ..."); "" for REF. Valid until destroy. */
const char *qf_measure_device(const qf_measure *m);

/* The generated weights, rows x cols f32 row-major, valid until destroy. What a job hashes to
 * prove which input it measured. */
const float *qf_measure_input(const qf_measure *m, int64_t *n_elems);

/* The activation rows (n x cols) every measurement of weights generated with seed uses:
 * unit-scale Gaussian with a seed derived from the weights' own, so they are not the weights.
 * Shared with the framework adapters, which must multiply the same vector. qf_synth_fill's
 * errors. */
int qf_measure_activations(uint64_t seed, int64_t n, int64_t cols, float *x);

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
