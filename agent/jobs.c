/* jobs.c - the job kinds an agent runs (see qf_jobs.h) and the measurement of one job.
 *
 * The table below is the runnable twin of the kind list common/job.c validates against; the
 * test of this module checks that the two agree. quantize, dequantize and matvec are one
 * function each over run_op, which measures through agent/measure.c exactly as `qfleet bench`
 * does: the same generated input, the same passes, the same metrics. The result carries what
 * makes it comparable across agents: the seed, the kernel variant, and the SHA-256 of the f32
 * bytes of the generated input (little-endian), so two agents can prove they measured the same
 * tensor.
 *
 * A job's dataset is a generator ("synth:<dist>") or a manifest ("manifest:NAME[/TENSOR]",
 * resolve_dataset): synthetic manifests name a generator; tensor and model manifests are
 * fetched into this machine's cache on first use (datasets/fetch.c) and their tensor checked
 * against the job's shape, but measuring a file's tensor waits for the measurement core to
 * take an input matrix, so those jobs end FAILED saying so.
 *
 * noop does no work: status OK, one sample (the time of an empty pass, at least 1 ns), no
 * metrics, zero bytes, kernel "none", and an empty dataset_sha256 because no input is
 * generated. One sample rather than none keeps every OK result summarizable (a median of
 * nothing is undefined), so load tests exercise the same store and report paths as real jobs.
 *
 * Called in the runner's child process (agent/runner.c) once per job, and by tests in-process.
 * Nothing here prints on the way to a FAILED result except what the kernels library prints on
 * its own; the reason is in the result.
 */
#include "qf_jobs.h"

#include "qf_time.h"

#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "qf_err.h"
#include "qf_fetch.h"
#include "qf_eval.h"
#include "qf_formats.h"
#include "qf_framework.h"
#include "qf_gguf.h"
#include "qf_manifest.h"
#include "qf_measure.h"
#include "qf_safetensors.h"
#include "qf_stats.h"
#include "qf_synth.h"
#include "qf_tokenizer.h"

#define SYNTH_PREFIX "synth:"

static int run_quantize(const qf_job_spec *spec, qf_job_result *out);
static int run_dequantize(const qf_job_spec *spec, qf_job_result *out);
static int run_matvec(const qf_job_spec *spec, qf_job_result *out);
static int run_framework(const qf_job_spec *spec, qf_job_result *out);
static int run_eval(const qf_job_spec *spec, qf_job_result *out);
static int run_noop(const qf_job_spec *spec, qf_job_result *out);

static const qf_job_kind k_kinds[] = {
    { "quantize",   "time the reference quantizer; quality, bytes, bpw; GB/s of f32 input",
      true,  run_quantize },
    { "dequantize", "time decoding the quantized weights; GB/s of quantized bytes",
      true,  run_dequantize },
    { "matvec",     "time a decode-like matrix-vector product; GB/s of weight bytes",
      true,  run_matvec },
    { "framework",  "the scheme measured in its own framework (selector backend=NAME)",
      true,  run_framework },
    { "eval",       "a model quantized to the format: perplexity, KLD, top-1 vs unquantized, "
                    "pp/tg tokens/s", true, run_eval },
    { "noop",       "no work: one trivial sample, for load tests of the fleet",
      false, run_noop },
};
#define N_KINDS ((int)(sizeof k_kinds / sizeof k_kinds[0]))

const qf_job_kind *qf_jobs_table(int *n)
{
    assert(n);
    *n = N_KINDS;
    return k_kinds;
}

const qf_job_kind *qf_jobs_find(const char *name)
{
    assert(name);
    for (int i = 0; i < N_KINDS; i++)
        if (strcmp(k_kinds[i].name, name) == 0)
            return &k_kinds[i];
    return NULL;
}

/* ---- input identity ----------------------------------------------------------------------- */

static pthread_once_t g_sodium_once = PTHREAD_ONCE_INIT;
static int g_sodium_rc;

static void sodium_init_once(void)
{
    g_sodium_rc = sodium_init();   /* 0 fresh, 1 already done, -1 failure */
}

int qf_jobs_input_sha256(const float *x, int64_t n, char hex[65])
{
    pthread_once(&g_sodium_once, sodium_init_once);
    if (g_sodium_rc < 0)
        return QF_EUNSUP;
    unsigned char digest[crypto_hash_sha256_BYTES];
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_BIG_ENDIAN__
    crypto_hash_sha256_state st;
    unsigned char le[4096];
    crypto_hash_sha256_init(&st);
    for (int64_t i = 0; i < n; ) {
        size_t k = 0;
        for (; k + 4 <= sizeof le && i < n; k += 4, i++) {
            uint32_t u;
            memcpy(&u, &x[i], 4);
            le[k] = (unsigned char)u;
            le[k + 1] = (unsigned char)(u >> 8);
            le[k + 2] = (unsigned char)(u >> 16);
            le[k + 3] = (unsigned char)(u >> 24);
        }
        crypto_hash_sha256_update(&st, le, k);
    }
    crypto_hash_sha256_final(&st, digest);
#else
    crypto_hash_sha256(digest, (const unsigned char *)x, (unsigned long long)n * sizeof(float));
#endif
    sodium_bin2hex(hex, 65, digest, sizeof digest);
    return 0;
}

/* ---- datasets ----------------------------------------------------------------------------- */

/* The generator behind a validated "synth:<dist>" name (or a synthetic manifest's). */
static qf_synth_dist synth_dist(const char *generator)
{
    qf_synth_dist d = QF_SYNTH_STUDENT_T;
    assert(strncmp(generator, SYNTH_PREFIX, strlen(SYNTH_PREFIX)) == 0);
    int rc = qf_synth_dist_from_name(generator + strlen(SYNTH_PREFIX), &d);
    assert(rc == 0);
    (void)rc;
    return d;
}

/* rows x cols of a 2-D weight tensor named name in a GGUF or safetensors file, checked against
 * the spec's shape. The tensor's values are not read here: see resolve_dataset. */
/* Finds tensor `name` in the fetched file, checks it is the job's rows x cols weight matrix,
 * and decodes it to floats (*w, rows * cols, caller frees): GGUF tensors of any format of our
 * table through its dequantizer, safetensors F32/F16/BF16/I8/.. through the reader. */
static int tensor_load(const qf_manifest *m, const char *path, const char *name,
                       const qf_job_spec *spec, float **w, char *why, size_t why_len)
{
    int64_t rows = 0, cols = 0;
    int nd = 0, err = 0;
    float *buf = NULL;
    qf_gguf *g = NULL;
    qf_safetensors *st = NULL;
    const qf_gguf_tensor *gt = NULL;
    const qf_st_tensor *sst = NULL;
    if (m->format == QF_MANIFEST_FMT_GGUF) {
        char gwhy[QF_JOB_ERROR_MAX];
        if ((err = qf_gguf_open(path, &g, gwhy, sizeof gwhy)) != 0) {
            qf_whyf(0, why, why_len, "%s", gwhy);
            return err;
        }
        if ((gt = qf_gguf_find_tensor(g, name)) != NULL) {
            nd = (int)gt->n_dims;
            cols = gt->dims[0];     /* ggml's ne[0]: the contiguous row */
            rows = gt->dims[1];
        }
    } else {
        if ((err = qf_safetensors_open(path, &st)) != 0) {   /* it prints its own reason */
            qf_whyf(0, why, why_len, "%s: not a valid safetensors file", path);
            return err;
        }
        if ((sst = qf_safetensors_find(st, name)) != NULL) {
            nd = sst->n_dims;
            rows = nd == 2 ? sst->shape[0] : 0;
            cols = nd == 2 ? sst->shape[1] : 0;
        }
    }
    if (nd == 0) {
        qf_whyf(0, why, why_len, "manifest %s: no tensor '%s' in %s", m->name, name, path);
        err = QF_ENOENT;
    } else if (nd != 2) {
        qf_whyf(0, why, why_len, "manifest %s: tensor '%s' has %d dimensions, not a 2-D weight "
                 "matrix", m->name, name, nd);
        err = QF_ESHAPE;
    } else if (rows != spec->rows || cols != spec->cols) {
        qf_whyf(0, why, why_len, "manifest %s: tensor '%s' is %" PRId64 "x%" PRId64 ", the job's "
                 "shape is %" PRId64 "x%" PRId64, m->name, name, rows, cols, spec->rows,
                 spec->cols);
        err = QF_ESHAPE;
    } else if (!(buf = malloc((size_t)(rows * cols) * sizeof *buf))) {
        qf_whyf(0, why, why_len, "manifest %s: no memory for tensor '%s'", m->name, name);
        err = QF_ENOMEM;
    } else if (gt) {
        if (gt->format < 0)
            err = QF_EUNSUP;
        else
            err = qf_dequantize((qf_format)gt->format, gt->data, buf, rows, cols);
        if (err)
            qf_whyf(0, why, why_len, "manifest %s: tensor '%s' is of a GGUF type quantfleet "
                     "cannot decode", m->name, name);
    } else if ((err = qf_safetensors_to_float(sst, buf)) != 0) {
        qf_whyf(0, why, why_len, "manifest %s: tensor '%s': its dtype cannot be read as floats",
                 m->name, name);
    }
    qf_gguf_close(&g);
    qf_safetensors_destroy(&st);
    if (err) {
        free(buf);
        return err;
    }
    *w = buf;
    return 0;
}

/* What the job measures: a generator's distribution for "synth:<dist>" and synthetic
 * manifests. A manifest of kind tensor or model is looked up in the manifest folder
 * (qf_manifest_default_dir), fetched into this machine's cache if it is not there yet (the
 * lock in fetch.c makes concurrent jobs wait for one download), and its tensor found and
 * checked against the job's shape and decoded to floats (*weights, caller frees), which the
 * measurement core then measures instead of generating its input. */
static int resolve_dataset(const qf_job_spec *spec, qf_synth_dist *dist, float **weights,
                           char *why, size_t why_len)
{
    *weights = NULL;
    if (strncmp(spec->dataset, SYNTH_PREFIX, strlen(SYNTH_PREFIX)) == 0) {
        *dist = synth_dist(spec->dataset);
        return 0;
    }
    char name[QF_MANIFEST_NAME_MAX], tensor[QF_MANIFEST_TENSOR_MAX];
    int err = qf_manifest_ref_parse(spec->dataset, name, tensor, why, why_len);
    if (err)
        return err;                 /* a validated spec never gets here */
    qf_manifest m;
    char mwhy[1024];
    if ((err = qf_manifest_find(qf_manifest_default_dir(), name, &m, mwhy, sizeof mwhy))) {
        qf_whyf(0, why, why_len, "dataset %s: %s", spec->dataset, mwhy);
        return err;
    }
    switch (m.kind) {
    case QF_MANIFEST_SYNTHETIC:
        if (tensor[0]) {
            qf_whyf(0, why, why_len, "dataset %s: a synthetic dataset has no tensor '%s'",
                     spec->dataset, tensor);
            return QF_EINVAL;
        }
        *dist = synth_dist(m.generator);
        return 0;
    case QF_MANIFEST_TEXT:
    case QF_MANIFEST_CALIBRATION:
        qf_whyf(0, why, why_len, "dataset %s: a %s dataset holds no weight matrix for %s",
                 spec->dataset, qf_manifest_kind_name(m.kind), spec->kind);
        return QF_EINVAL;
    case QF_MANIFEST_TENSOR:
    case QF_MANIFEST_MODEL:
        break;
    }
    const char *tname = tensor[0] ? tensor : m.tensor;
    if (!tname[0]) {
        qf_whyf(0, why, why_len, "dataset %s: name the tensor to measure, as "
                 "manifest:%s/TENSOR (the manifest has no default `tensor:`)", spec->dataset,
                 m.name);
        return QF_EINVAL;
    }
    qf_fetch_opts o;
    qf_fetch_opts_quiet(&o);
    qf_fetch_result fr;
    char fwhy[1024];
    if ((err = qf_fetch(&m, &o, &fr, fwhy, sizeof fwhy)) != 0) {
        qf_whyf(0, why, why_len, "%s", fwhy);
        return err;
    }
    char swhy[512];
    if ((err = tensor_load(&m, fr.path, tname, spec, weights, swhy, sizeof swhy)) != 0) {
        qf_whyf(0, why, why_len, "%s", swhy);
        return err;
    }
    return 0;
}

int qf_jobs_weights(const qf_job_spec *spec, float **weights, char *why, size_t why_len)
{
    assert(spec && weights);
    qf_synth_dist dist = QF_SYNTH_GAUSSIAN;
    int err = resolve_dataset(spec, &dist, weights, why, why_len);
    if (err || *weights)
        return err;
    float *w = malloc((size_t)(spec->rows * spec->cols) * sizeof *w);
    if (!w) {
        qf_whyf(0, why, why_len, "out of memory for %" PRId64 "x%" PRId64 " weights", spec->rows,
               spec->cols);
        return QF_ENOMEM;
    }
    qf_synth_params wp = qf_synth_defaults(dist, spec->seed);
    if ((err = qf_synth_fill(&wp, w, spec->rows, spec->cols)) != 0) {
        free(w);
        qf_whyf(0, why, why_len, "generating the %s weights: %s", qf_synth_dist_name(dist),
               qf_strerror(err));
        return err;
    }
    *weights = w;
    return 0;
}

/* ---- kinds -------------------------------------------------------------------------------- */

/* A validated spec measured with op through the measurement core. */
static int run_op(const qf_job_spec *spec, qf_bench_op op, qf_job_result *out)
{
    qf_format fmt;
    if (qf_format_from_name(spec->format, &fmt) != 0)
        return qf_job_result_fail(out, "format: unknown format '%s'", spec->format);
    char why[QF_JOB_ERROR_MAX - 64];
    qf_synth_dist dist = QF_SYNTH_GAUSSIAN;
    float *weights = NULL;      /* a dataset's tensor, or NULL: generated from dist */
    if (resolve_dataset(spec, &dist, &weights, why, sizeof why) != 0)
        return qf_job_result_fail(out, "%s", why);
    /* The selector says where the job must run: backend=cuda is the GPU (the coordinator only
     * leases it to an agent whose fingerprint has "cuda"), backend=opencl the OpenCL device
     * (likewise "opencl"); anything else the best CPU kernels. */
    qf_measure_spec ms = {
        .backend = qf_selector_has_term(spec->selector, "backend", "cuda") ? QF_BACKEND_CUDA
                 : qf_selector_has_term(spec->selector, "backend", "opencl") ? QF_BACKEND_OPENCL
                                                                             : QF_BACKEND_REF,
        .op = op, .rows = spec->rows, .cols = spec->cols, .threads = (int)spec->threads,
        .reps = spec->reps, .warmup = spec->warmup, .dist = dist, .seed = spec->seed,
        .input = weights,
    };
    qf_measure *m = NULL;
    int err = qf_measure_new(&ms, &fmt, 1, &m, why, sizeof why);
    free(weights);
    if (err)
        return qf_job_result_fail(out, "%s %s: %s", spec->kind, spec->format, why);

    int64_t n;
    const float *x = qf_measure_input(m, &n);
    if (qf_jobs_input_sha256(x, n, out->dataset_sha256) != 0) {
        qf_measure_destroy(&m);
        return qf_job_result_fail(out, "%s %s: libsodium could not be initialized", spec->kind,
                      spec->format);
    }
    qf_measure_out mo;
    err = qf_measure_run(m, fmt, &mo, why, sizeof why);
    qf_measure_destroy(&m);
    if (err)
        return qf_job_result_fail(out, "%s %s: %s", spec->kind, spec->format, why);

    out->status = QF_JOB_OK;
    out->samples = mo.samples;          /* ownership moves to the result */
    out->n_samples = mo.n_samples;
    out->has_metrics = true;
    out->metrics = (qf_job_metrics){
        .rmse = mo.metrics.rmse, .nmse = mo.metrics.nmse, .snr_db = mo.metrics.snr_db,
        .max_abs = mo.metrics.max_abs, .cosine = mo.metrics.cosine,
    };
    out->bytes = mo.bytes;
    out->bpw = mo.bpw;
    out->throughput_bytes = mo.throughput_bytes;
    snprintf(out->kernel, sizeof out->kernel, "%s", mo.kernel);
    out->device_mem_bytes = mo.device_mem_bytes;
    return 0;
}

static int run_quantize(const qf_job_spec *spec, qf_job_result *out)
{
    return run_op(spec, QF_OP_QUANTIZE, out);
}

static int run_dequantize(const qf_job_spec *spec, qf_job_result *out)
{
    return run_op(spec, QF_OP_DEQUANTIZE, out);
}

static int run_matvec(const qf_job_spec *spec, qf_job_result *out)
{
    return run_op(spec, QF_OP_MATVEC, out);
}

/* A framework measures the scheme itself (agent/framework.c). The selector names it
 * (backend=NAME), so the coordinator leased the job only to an agent that reported it; an
 * agent without it (a stale lease, a hand-run job) says so. */
static int run_framework(const qf_job_spec *spec, qf_job_result *out)
{
    const qf_framework *fw = qf_framework_of(spec);
    if (!fw)
        return qf_job_result_fail(out, "framework: the selector '%s' names no framework (backend=NAME)",
                      spec->selector);
    char version[QF_FRAMEWORK_VERSION_MAX] = "";
    if (!fw->probe(version, sizeof version))
        return qf_job_result_fail(out, "framework %s: not on this agent", fw->name);
    if (!qf_framework_runs(fw, spec->format))
        return qf_job_result_fail(out, "framework %s: does not run format %s (it runs: %s)", fw->name,
                      spec->format, fw->formats);
    return fw->run(spec, out);
}

/* The file behind a manifest reference of the wanted kind, fetched into the cache if it is
 * not there yet. */
static int manifest_file(const char *ref, qf_manifest_kind want, char path[QF_FETCH_PATH_MAX],
                         char *why, size_t why_len)
{
    char name[QF_MANIFEST_NAME_MAX], tensor[QF_MANIFEST_TENSOR_MAX], mwhy[1024];
    qf_manifest m;
    int err = qf_manifest_ref_parse(ref, name, tensor, why, why_len);
    if (!err && (err = qf_manifest_find(qf_manifest_default_dir(), name, &m, mwhy, sizeof mwhy)))
        qf_whyf(0, why, why_len, "%s: %s", ref, mwhy);
    if (err)
        return err;
    /* a model is any GGUF checkpoint: a "tensor" manifest of one (kept for tensor benchmarks)
     * is the same file */
    bool ok = want == QF_MANIFEST_MODEL
                  ? (m.kind == QF_MANIFEST_MODEL || m.kind == QF_MANIFEST_TENSOR) &&
                        m.format == QF_MANIFEST_FMT_GGUF
                  : m.kind == want;
    if (!ok) {
        qf_whyf(0, why, why_len, "%s: a %s manifest%s, not a %s", ref, qf_manifest_kind_name(m.kind),
               m.format == QF_MANIFEST_FMT_SAFETENSORS ? " (safetensors)" : "",
               want == QF_MANIFEST_MODEL ? "GGUF model (qfleet quantize converts checkpoints)"
                                         : qf_manifest_kind_name(want));
        return QF_EINVAL;
    }
    qf_fetch_opts o;
    qf_fetch_opts_quiet(&o);
    qf_fetch_result fr;
    if ((err = qf_fetch(&m, &o, &fr, mwhy, sizeof mwhy)) != 0) {
        qf_whyf(0, why, why_len, "%s", mwhy);
        return err;
    }
    snprintf(path, QF_FETCH_PATH_MAX, "%s", fr.path);
    return 0;
}

/* An eval job: the dataset's GGUF model as it is (the baseline) and quantized to the job's
 * format in memory (qf_llama_opts.requant: llama-quantize --pure's choice of tensors), both
 * run over the text's chunks (model/eval.c, as llama.cpp's perplexity tool: KLD, top-1, dp
 * against the baseline), then the quantized model's speed as llama-bench measures it: prompt
 * processing of min(512, ctx/2) tokens and generation of up to 128, `reps` times. A sample is
 * the seconds per generated token of one repetition (decode speed is what the format changes
 * most); pp and tg medians go in the model numbers. */
static int run_eval(const qf_job_spec *spec, qf_job_result *out)
{
    char mref[QF_JOB_DATASET_MAX], tref[QF_JOB_DATASET_MAX], why[QF_JOB_ERROR_MAX - 64];
    char model_path[QF_FETCH_PATH_MAX], text_path[QF_FETCH_PATH_MAX + 64];
    qf_format fmt;
    if (qf_format_from_name(spec->format, &fmt) != 0)
        return qf_job_result_fail(out, "format: unknown format '%s'", spec->format);
    int rc = qf_job_eval_dataset(spec->dataset, mref, sizeof mref, tref, sizeof tref);
    assert(rc == 0); /* validated */
    (void)rc;
    if (manifest_file(mref, QF_MANIFEST_MODEL, model_path, why, sizeof why) != 0)
        return qf_job_result_fail(out, "eval: %s", why);
    if (strncmp(tref, QF_JOB_TEXT_PREFIX, strlen(QF_JOB_TEXT_PREFIX)) == 0)
        snprintf(text_path, sizeof text_path, "%s/texts/%s.txt", qf_manifest_default_dir(),
                 tref + strlen(QF_JOB_TEXT_PREFIX));
    else if (manifest_file(tref, QF_MANIFEST_TEXT, text_path, why, sizeof why) != 0)
        return qf_job_result_fail(out, "eval: %s", why);

    const int64_t n_pp = spec->rows / 2 < 512 ? spec->rows / 2 : 512;
    const int64_t n_tg = spec->rows - n_pp < 128 ? spec->rows - n_pp : 128;
    qf_llama_opts lo = { .n_ctx = spec->rows, .threads = (int)spec->threads };
    qf_llama *base = NULL, *m = NULL;
    qf_tokenizer *tok = NULL;
    char *text = NULL;
    size_t len = 0;
    int32_t *ids = NULL;
    int64_t n = 0;
    qf_eval_result r;
    int err = qf_llama_load(model_path, &lo, &base, why, sizeof why);
    if (!err) {
        lo.requant = true;
        lo.requant_fmt = fmt;
        err = qf_llama_load(model_path, &lo, &m, why, sizeof why);
    }
    if (!err)
        err = qf_tokenizer_new(qf_llama_gguf(m), &tok, why, sizeof why);
    if (!err)
        err = qf_eval_read_text(text_path, &text, &len, why, sizeof why);
    if (!err && (err = qf_tokenizer_encode(tok, text, len, false, &ids, &n)) != 0)
        qf_whyf(0, why, sizeof why, "tokenizing %s: %s", text_path, qf_strerror(err));
    if (!err) {
        qf_eval_opts eo = { .n_ctx = spec->rows, .chunks = spec->cols,
                            .add_bos = qf_tokenizer_adds_bos(tok), .bos = qf_tokenizer_bos(tok) };
        err = qf_eval_run(m, base, NULL, NULL, ids, n, &eo, &r, why, sizeof why);
    }
    qf_llama_destroy(&base);     /* the speed test is of the quantized model alone */
    double *pp = calloc(spec->reps, sizeof *pp);
    out->samples = calloc(spec->reps, sizeof *out->samples);
    if (!err && (!pp || !out->samples)) {
        err = QF_ENOMEM;
        qf_whyf(0, why, sizeof why, "out of memory for %u samples", spec->reps);
    }
    for (uint32_t i = 0; !err && i < spec->reps; i++) {
        double tg = 0;
        err = qf_eval_speed(m, n_pp, n_tg, 1, &pp[i], &tg, why, sizeof why);
        out->samples[i] = tg > 0 ? 1.0 / tg : 0;
    }
    if (!err) {
        out->status = QF_JOB_OK;
        out->n_samples = spec->reps;
        out->has_model = true;
        double tg_s = qf_stats_percentile(out->samples, out->n_samples, 50.0);
        out->model = (qf_job_model){
            .ppl = r.ppl, .ppl_err = r.ppl_err, .ppl_base = r.ppl_base, .kld = r.kld_mean,
            .kld_p99 = r.kld_pct[1], .same_top = r.same_top, .dp_rms = r.dp_rms,
            .pp_tps = qf_stats_percentile(pp, spec->reps, 50.0),
            .tg_tps = tg_s > 0 ? 1.0 / tg_s : NAN, .n_scored = r.n_scored,
        };
        out->bytes = qf_llama_weight_bytes(m);
        out->bpw = qf_format_bpw_nominal(fmt);
        out->throughput_bytes = out->bytes;       /* a generated token reads every weight */
        snprintf(out->kernel, sizeof out->kernel, "%s", qf_isa_name(qf_isa_best()));
    }
    free(pp);
    free(text);
    free(ids);
    qf_tokenizer_destroy(&tok);
    qf_llama_destroy(&m);
    if (err)
        return qf_job_result_fail(out, "eval %s on %s: %s", spec->format, spec->dataset, why);
    return 0;
}

static int run_noop(const qf_job_spec *spec, qf_job_result *out)
{
    (void)spec;
    out->samples = malloc(sizeof(double));
    if (!out->samples)
        return qf_job_result_fail(out, "noop: out of memory for one sample");
    double t0 = qf_time_mono();
    double t = qf_time_mono() - t0;
    out->samples[0] = t > 1e-9 ? t : 1e-9;
    out->n_samples = 1;
    out->status = QF_JOB_OK;
    snprintf(out->kernel, sizeof out->kernel, "none");
    return 0;
}

/* ---- entry -------------------------------------------------------------------------------- */

int qf_jobs_run(const qf_job_spec *spec, qf_job_result *out)
{
    assert(spec && out);
    memset(out, 0, sizeof *out);
    out->seed = spec->seed;
    char why[QF_JOB_ERROR_MAX - 16];
    if (qf_job_spec_validate(spec, why, sizeof why) != 0)
        return qf_job_result_fail(out, "invalid spec: %s", why);
    const qf_job_kind *k = qf_jobs_find(spec->kind);
    if (!k) /* validated against common/job.c's list, which this table should match */
        return qf_job_result_fail(out, "kind: '%s' is not runnable by this agent", spec->kind);
    return k->run(spec, out);
}
