/* qf_framework.h - adapters that measure a quantization scheme inside the framework that owns
 * it (ONNX Runtime, llama.cpp, OpenVINO, MLX, QNN), next to our own kernels.
 *
 * A row of the chapter's table means something only if the framework itself ran it. Each
 * adapter is one module (agent/fw_<name>.c) that exports one qf_framework: a probe that says
 * whether the framework is on this machine (a library it can dlopen, a tool on PATH) and a run
 * that measures one job in it. The table in agent/framework.c lists them; the agent's
 * fingerprint names every present one in "frameworks" and adds its name to the agent's
 * backends, so a job whose selector says backend=NAME is leased only to an agent that has the
 * framework. The job kind is "framework" (agent/jobs.c): its format names the scheme, which the
 * adapter must list in `formats`, and the adapter's float baseline (its `baseline` format) in a
 * job of the same kind is what "speed improvement" divides by (reports/).
 *
 * run() is called in the runner's child process, one job per process, so an adapter may load a
 * library and leave it loaded. It fills out exactly as the other kinds do (qf_job.h): status OK,
 * samples = seconds per timed repetition of the framework's operation (spec->warmup untimed
 * passes first), bytes/bpw of the quantized weights, throughput_bytes = weight bytes one
 * repetition reads, kernel = "<name>-<version>", and, where the framework computed an output
 * from weights we quantized, metrics of that output against our dequantize-then-multiply
 * reference (qf_tensor_metrics over the output vector), so a wrong layout shows as noise, not
 * as speed. A failure is a FAILED result with the reason (return 0), as in jobs.c.
 */
#ifndef QF_FRAMEWORK_H
#define QF_FRAMEWORK_H

#include <stdbool.h>
#include <stddef.h>

#include "qf_job.h"

#define QF_FRAMEWORK_VERSION_MAX 64

typedef struct qf_framework {
    const char *name;       /* selector value and backend word: "ort", "llamacpp", "openvino",
                               "mlx", "qnn" */
    const char *title;      /* as the report prints it: "ONNX Runtime (Olive)" */
    const char *formats;    /* space-separated schemes it runs, baseline included */
    const char *baseline;   /* its unquantized format, the speed-improvement denominator */
    /* True when the framework is usable here; version gets its version string ("1.30.0").
     * Cheap, no side effects on the process beyond loading a library; never prints. */
    bool (*probe)(char *version, size_t version_len);
    /* Measures spec (kind "framework", format among `formats`, validated) into out.
     * Returns 0 when a result (OK or FAILED) was produced. */
    int (*run)(const qf_job_spec *spec, qf_job_result *out);
} qf_framework;

/* The adapters, one per module. */
extern const qf_framework qf_fw_ort;       /* agent/fw_ort.c: libonnxruntime, MatMulNBits */
extern const qf_framework qf_fw_llamacpp;  /* agent/fw_llamacpp.c: libggml / libllama */
extern const qf_framework qf_fw_openvino;  /* agent/fw_openvino.c: benchmark_app reports */
extern const qf_framework qf_fw_mlx;       /* agent/fw_mlx.c: mlx_lm on macOS */
extern const qf_framework qf_fw_qnn;       /* agent/fw_qnn.c: qnn-net-run profiling */

/* The table: *n adapters, in the report's order. */
const qf_framework *const *qf_framework_table(int *n);

/* The adapter named name, or NULL. */
const qf_framework *qf_framework_find(const char *name);

/* True if format is one of fw's formats. */
bool qf_framework_runs(const qf_framework *fw, const char *format);

/* The framework a spec's selector names (its backend=NAME term), or NULL. */
const qf_framework *qf_framework_of(const qf_job_spec *spec);

/* The inputs every in-process adapter measures, the same for all of them and for our own
 * kernels: the weights (rows x cols, row-major) generated from the spec's dataset and seed as
 * the matvec job generates them, and the activation vector (cols) the measurement core uses;
 * sha256 gets the weights' hash as our own jobs report it (pass out->dataset_sha256).
 * Caller frees both. QF_EINVAL/QF_ENOMEM/QF_EUNSUP with a reason in why. */
int qf_framework_inputs(const qf_job_spec *spec, float **weights, float **x, char sha256[65],
                        char *why, size_t why_len);

/* y = dequantize(W) x in double-accumulated f32: the reference a framework's output is
 * compared with. wq holds rows rows of spec->format (qf_quantize's layout). */
int qf_framework_reference(const qf_job_spec *spec, const void *wq, const float *x, float *y,
                           char *why, size_t why_len);

/* Fills out's bookkeeping for a framework run over quantized weights of the spec's shape
 * (bytes, bpw, throughput_bytes, kernel "<name>-<version>") and its metrics from the
 * framework's output y against the reference yref (both rows long). samples stay the caller's
 * to set. */
void qf_framework_result(const qf_framework *fw, const char *version, const qf_job_spec *spec,
                         const float *y, const float *yref, qf_job_result *out);

#endif
