/* fw_llamacpp.c - the llama.cpp (GGUF) framework adapter (qf_framework.h): a job's GGUF
 * scheme measured in ggml's own CPU backend, or a whole GGUF model in libllama.
 *
 * Tensor jobs (a synthetic dataset, or manifest:NAME/TENSOR): the weights are quantized with
 * our quantizer (its GGUF layouts are byte-identical to ggml's, tests/test_conformance_ggml.c),
 * put in a ggml graph of one mul_mat with the job's activation vector (n = 1, decode-like),
 * with the weights where llama.cpp puts them (the CPU_REPACK buffer where ggml repacks the
 * type), and computed by the best libggml-cpu variant for this host on spec->threads threads
 * (agent/ggml_peer.c, shared with `qfleet bench --op kernels --vs-ggml`). samples = seconds
 * per graph compute after spec->warmup untimed ones; ggml's output is checked against our
 * dequantize-then-multiply reference, so a layout mismatch shows as noise in the metrics.
 *
 * Model jobs (dataset manifest:NAME of kind model, format gguf, no tensor named): the file
 * (fetched into the cache as any dataset) is run in libllama as llama-bench runs it
 * (agent/llama_peer.c): per repetition one pp512 decode and one tg128 run. samples = seconds
 * per generated token of each tg128 repetition (decode is what a deployed model spends its
 * time on, and it reads every weight once a token, so throughput_bytes = the model's weight
 * bytes makes GB/s meaningful); pp512 is not a sample (the result has one series), `qfleet
 * bench --op model --vs-llama` reports it. The file is run as it is: its own types, whatever
 * spec->format says (the format still names the row). No metrics: nothing to compare with.
 *
 * Runs in the runner's child, one job per process: libraries stay loaded. Not hot itself.
 */
#include "qf_framework.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ggml_peer.h"
#include "llama_peer.h"
#include "qf_err.h"
#include "qf_fetch.h"
#include "qf_formats.h"
#include "qf_manifest.h"
#include "qf_time.h"

#define NAME "llamacpp"
#define MODEL_PP 512
#define MODEL_TG 128

/* "0.25.1-0ad4a86" from ggml_version/ggml_commit, else the npm package's version (the folder
 * is PACKAGE/bins/PLATFORM), else "unknown". */
static void ggml_version_of(const qf_ggml *g, char *version, size_t len)
{
    const char *(*ver)(void), *(*commit)(void);
    *(void **)&ver = qf_ggml_sym(g, "ggml_version");
    *(void **)&commit = qf_ggml_sym(g, "ggml_commit");
    if (ver && ver()) {
        snprintf(version, len, "%s%s%s", ver(), commit && commit() ? "-" : "",
                 commit && commit() ? commit() : "");
        return;
    }
    snprintf(version, len, "unknown");
    char path[1200];
    snprintf(path, sizeof path, "%s/../../package.json", g->dir);
    FILE *f = fopen(path, "r");
    char line[256];
    while (f && fgets(line, sizeof line, f)) {
        char v[64];
        if (sscanf(line, " \"version\" : \"%63[^\"]\"", v) == 1) {
            snprintf(version, len, "npm-%s", v);
            break;
        }
    }
    if (f)
        fclose(f);
}

static bool probe(char *version, size_t version_len)
{
    qf_ggml g;
    char why[256];
    if (qf_ggml_open(&g, NULL, QF_GGML_CPU_BEST, why, sizeof why) != 0)
        return false;
    ggml_version_of(&g, version, version_len);
    qf_ggml_close(&g);
    return true;
}

/* ---- tensor jobs: one mul_mat in ggml's CPU backend ---------------------------------------- */

/* warmup + reps computes of the graph of wq x x on threads threads: the timed ones into
 * samples, ggml's output into y. */
static int ggml_matvec(const qf_job_spec *spec, const uint8_t *wq, size_t wbytes, const float *x,
                       float *y, double *samples, char *version, size_t version_len,
                       char *why, size_t why_len)
{
    qf_ggml g;
    qf_ggml_api a;
    qf_ggml_graph gr = { 0 };
    qf_ggml_backend b = { 0 };
    int err = qf_ggml_open(&g, NULL, QF_GGML_CPU_BEST, why, why_len);
    if (err)
        return err;
    ggml_version_of(&g, version, version_len);
    int type = qf_ggml_type_by_name(&g, spec->format);
    if (type < 0) {
        snprintf(why, why_len, "ggml (%s) has no type %s", g.cpu_lib, spec->format);
        err = QF_EFORMAT;
    }
    if (!err)
        err = qf_ggml_api_load(&g, &a, why, why_len);
    if (!err)
        err = qf_ggml_graph_build(&a, type, spec->rows, spec->cols, wq, wbytes, 1, x, 1, &gr,
                                  why, why_len);
    if (!err)
        err = qf_ggml_backend_new(&a, (int)spec->threads, NULL, &b, why, why_len);
    for (uint32_t i = 0; i < spec->warmup + spec->reps && !err; i++) {
        double t0 = qf_time_mono();
        err = qf_ggml_backend_compute(&a, &b, &gr, why, why_len);
        double t = qf_time_mono() - t0;
        if (i >= spec->warmup)
            samples[i - spec->warmup] = t > 1e-9 ? t : 1e-9;
    }
    if (!err)
        qf_ggml_graph_output(&a, &gr, y, (size_t)spec->rows);
    if (gr.graph || gr.ctx_w)
        qf_ggml_graph_free(&a, &gr);
    if (b.backend || b.tp)
        qf_ggml_backend_free(&a, &b);
    qf_ggml_close(&g);
    return err;
}

static int run_tensor(const qf_job_spec *spec, qf_job_result *out)
{
    qf_format fmt;
    if (qf_format_from_name(spec->format, &fmt) != 0)
        return qf_job_result_fail(out, NAME ": format: unknown format '%s'", spec->format);
    if (spec->threads > 4096)
        return qf_job_result_fail(out, NAME ": threads: %" PRIu32 " is too many", spec->threads);
    char why[QF_JOB_ERROR_MAX - 32], version[QF_FRAMEWORK_VERSION_MAX] = "";
    float *w = NULL, *x = NULL, *y = NULL, *yref = NULL;
    int err = qf_framework_inputs(spec, &w, &x, out->dataset_sha256, why, sizeof why);
    if (err)
        return qf_job_result_fail(out, NAME " %s: %s", spec->format, why);
    size_t bytes = qf_format_row_size(fmt, spec->cols) * (size_t)spec->rows;
    uint8_t *wq = malloc(bytes);
    y = malloc((size_t)spec->rows * sizeof *y);
    yref = malloc((size_t)spec->rows * sizeof *yref);
    out->samples = malloc((size_t)spec->reps * sizeof *out->samples);
    if (!wq || !y || !yref || !out->samples) {
        snprintf(why, sizeof why, "out of memory for %zu quantized bytes and the output",
                 bytes);
        err = QF_ENOMEM;
    } else if ((err = qf_quantize(fmt, w, wq, spec->rows, spec->cols)) != 0) {
        snprintf(why, sizeof why, "quantizing: %s", qf_strerror(err));
    }
    free(w);
    if (!err)
        err = ggml_matvec(spec, wq, bytes, x, y, out->samples, version, sizeof version, why,
                          sizeof why);
    if (!err)
        err = qf_framework_reference(spec, wq, x, yref, why, sizeof why);
    if (!err) {
        out->status = QF_JOB_OK;
        out->n_samples = spec->reps;
        qf_framework_result(&qf_fw_llamacpp, version, spec, y, yref, out);
    } else {
        qf_job_result_fail(out, NAME " %s: %s", spec->format, why);
    }
    free(wq);
    free(x);
    free(y);
    free(yref);
    return 0;
}

/* ---- model jobs: a GGUF model in libllama ------------------------------------------------ */

/* The cached file of a GGUF model manifest named by spec's dataset (no tensor), fetched if
 * need be, into path: 1; 0 when the dataset is something else (a tensor job); < 0 on error. */
static int model_path(const qf_job_spec *spec, char *path, size_t path_len, char *why,
                      size_t why_len)
{
    char name[QF_MANIFEST_NAME_MAX], tensor[QF_MANIFEST_TENSOR_MAX];
    if (strncmp(spec->dataset, QF_MANIFEST_REF_PREFIX, strlen(QF_MANIFEST_REF_PREFIX)) != 0 ||
        qf_manifest_ref_parse(spec->dataset, name, tensor, NULL, 0) != 0 || tensor[0])
        return 0;
    qf_manifest m;
    int err = qf_manifest_find(qf_manifest_default_dir(), name, &m, why, why_len);
    if (err)
        return err;
    if (m.kind != QF_MANIFEST_MODEL || m.format != QF_MANIFEST_FMT_GGUF)
        return 0;
    qf_fetch_opts o;
    qf_fetch_opts_quiet(&o);
    qf_fetch_result fr;
    if ((err = qf_fetch(&m, &o, &fr, why, why_len)) != 0)
        return err;
    snprintf(path, path_len, "%s", fr.path);
    return 1;
}

static int run_model(const qf_job_spec *spec, const char *path, qf_job_result *out)
{
    char why[QF_JOB_ERROR_MAX - 64], version[QF_FRAMEWORK_VERSION_MAX] = "unknown";
    qf_llama_peer p;
    qf_ggml g;
    if (qf_ggml_open(&g, NULL, QF_GGML_CPU_BEST, why, sizeof why) == 0) {
        ggml_version_of(&g, version, sizeof version);
        qf_ggml_close(&g);
    }
    if (spec->threads > 4096)
        return qf_job_result_fail(out, NAME ": threads: %" PRIu32 " is too many", spec->threads);
    int err = qf_llama_peer_open(&p, NULL, true, why, sizeof why);
    if (err)
        return qf_job_result_fail(out, NAME " %s: %s", spec->dataset, why);
    void *model = p.model_load_from_file(path, p.model_default_params());
    if (!model)
        return qf_job_result_fail(out, NAME " %s: llama.cpp cannot load %s", spec->dataset, path);
    void *ctx = NULL;
    err = qf_llama_peer_context(&p, model, MODEL_PP + MODEL_TG + 1, MODEL_PP,
                                (int)spec->threads, &ctx, why, sizeof why);
    out->samples = err ? NULL : malloc((size_t)spec->reps * sizeof *out->samples);
    if (!err && !out->samples) {
        snprintf(why, sizeof why, "out of memory for %" PRIu32 " samples", spec->reps);
        err = QF_ENOMEM;
    }
    int32_t n_vocab = p.vocab_n_tokens(p.model_get_vocab(model));
    for (uint32_t i = 0; i < spec->warmup + spec->reps && !err; i++) {
        double pp_s, tg_s;
        err = qf_llama_peer_speed(&p, ctx, n_vocab, MODEL_PP, MODEL_TG, &pp_s, &tg_s, why,
                                  sizeof why);
        if (!err && i >= spec->warmup)
            out->samples[i - spec->warmup] = tg_s / MODEL_TG;
    }
    if (!err) {
        uint64_t size = p.model_size(model), n_params = p.model_n_params(model);
        out->status = QF_JOB_OK;
        out->n_samples = spec->reps;
        out->bytes = size;
        out->bpw = n_params ? 8.0 * (double)size / (double)n_params : 0;
        out->throughput_bytes = size;
        snprintf(out->kernel, sizeof out->kernel, "%s-%s", NAME, version);
    } else {
        qf_job_result_fail(out, NAME " %s: %s", spec->dataset, why);
    }
    if (ctx)
        p.free_ctx(ctx);
    p.model_free(model);
    qf_llama_peer_close(&p);
    return 0;
}

static int run(const qf_job_spec *spec, qf_job_result *out)
{
    char path[QF_FETCH_PATH_MAX], why[QF_JOB_ERROR_MAX - 32];
    int is_model = model_path(spec, path, sizeof path, why, sizeof why);
    if (is_model < 0)
        return qf_job_result_fail(out, NAME " %s: %s", spec->dataset, why);
    return is_model ? run_model(spec, path, out) : run_tensor(spec, out);
}

const qf_framework qf_fw_llamacpp = {
    .name = "llamacpp",
    .title = "llama.cpp (GGUF)",
    .formats = "f16 q8_0 q4_0 q4_1 q5_0 q5_1 q2_K q3_K q4_K q5_K q6_K iq4_nl",
    .baseline = "f16",
    .probe = probe,
    .run = run,
};
