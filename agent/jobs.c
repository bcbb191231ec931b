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
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <sodium.h>

#include "qf_err.h"
#include "qf_formats.h"
#include "qf_measure.h"
#include "qf_synth.h"

#define SYNTH_PREFIX "synth:"

static int run_quantize(const qf_job_spec *spec, qf_job_result *out);
static int run_dequantize(const qf_job_spec *spec, qf_job_result *out);
static int run_matvec(const qf_job_spec *spec, qf_job_result *out);
static int run_noop(const qf_job_spec *spec, qf_job_result *out);

static const qf_job_kind k_kinds[] = {
    { "quantize",   "time the reference quantizer; quality, bytes, bpw; GB/s of f32 input",
      true,  run_quantize },
    { "dequantize", "time decoding the quantized weights; GB/s of quantized bytes",
      true,  run_dequantize },
    { "matvec",     "time a decode-like matrix-vector product; GB/s of weight bytes",
      true,  run_matvec },
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

/* Makes out a FAILED result with the formatted reason; returns 0 (a result was produced). */
__attribute__((format(printf, 2, 3)))
static int failed(qf_job_result *out, const char *fmt, ...)
{
    free(out->samples);
    out->samples = NULL;
    out->n_samples = 0;
    out->has_metrics = false;
    out->status = QF_JOB_FAILED;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(out->error, sizeof out->error, fmt, ap);
    va_end(ap);
    return 0;
}

/* ---- input identity ----------------------------------------------------------------------- */

static pthread_once_t g_sodium_once = PTHREAD_ONCE_INIT;
static int g_sodium_rc;

static void sodium_init_once(void)
{
    g_sodium_rc = sodium_init();   /* 0 fresh, 1 already done, -1 failure */
}

/* Hex SHA-256 of n floats as little-endian binary32 bytes, the same on every host. */
static int sha256_hex(const float *x, int64_t n, char hex[65])
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

/* ---- kinds -------------------------------------------------------------------------------- */

/* The generator behind a validated "synth:<dist>" dataset name. */
static qf_synth_dist dataset_dist(const char *dataset)
{
    qf_synth_dist d = QF_SYNTH_STUDENT_T;
    assert(strncmp(dataset, SYNTH_PREFIX, strlen(SYNTH_PREFIX)) == 0);
    int rc = qf_synth_dist_from_name(dataset + strlen(SYNTH_PREFIX), &d);
    assert(rc == 0);
    (void)rc;
    return d;
}

/* A validated spec measured with op through the measurement core. */
static int run_op(const qf_job_spec *spec, qf_bench_op op, qf_job_result *out)
{
    qf_format fmt;
    if (qf_format_from_name(spec->format, &fmt) != 0)
        return failed(out, "format: unknown format '%s'", spec->format);
    qf_measure_spec ms = {
        .op = op, .rows = spec->rows, .cols = spec->cols, .threads = (int)spec->threads,
        .reps = spec->reps, .warmup = spec->warmup, .dist = dataset_dist(spec->dataset),
        .seed = spec->seed,
    };
    char why[QF_JOB_ERROR_MAX - 64];
    qf_measure *m = NULL;
    int err = qf_measure_new(&ms, &fmt, 1, &m, why, sizeof why);
    if (err)
        return failed(out, "%s %s: %s", spec->kind, spec->format, why);

    int64_t n;
    const float *x = qf_measure_input(m, &n);
    if (sha256_hex(x, n, out->dataset_sha256) != 0) {
        qf_measure_destroy(&m);
        return failed(out, "%s %s: libsodium could not be initialized", spec->kind,
                      spec->format);
    }
    qf_measure_out mo;
    err = qf_measure_run(m, fmt, &mo, why, sizeof why);
    qf_measure_destroy(&m);
    if (err)
        return failed(out, "%s %s: %s", spec->kind, spec->format, why);

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

static int run_noop(const qf_job_spec *spec, qf_job_result *out)
{
    (void)spec;
    out->samples = malloc(sizeof(double));
    if (!out->samples)
        return failed(out, "noop: out of memory for one sample");
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
        return failed(out, "invalid spec: %s", why);
    const qf_job_kind *k = qf_jobs_find(spec->kind);
    if (!k) /* validated against common/job.c's list, which this table should match */
        return failed(out, "kind: '%s' is not runnable by this agent", spec->kind);
    return k->run(spec, out);
}
