/* framework.c - the table of framework adapters and what they share (see qf_framework.h).
 *
 * The adapters themselves are one module each (agent/fw_*.c). What lives here is what every
 * in-process adapter would otherwise write again: the job's inputs (the very weights and
 * activation vector our own matvec job measures, so "ours vs theirs" is one tensor), the
 * reference product a framework's output is checked against, and the result's bookkeeping.
 * Called in the runner's child, once per framework job; the reference product is O(rows x cols)
 * in double, about one matvec, which is negligible next to the repetitions timed.
 */
#include "qf_framework.h"

#include <assert.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qf_err.h"
#include "qf_formats.h"
#include "qf_jobs.h"
#include "qf_measure.h"
#include "qf_metrics.h"

static const qf_framework *const k_table[] = {
    &qf_fw_llamacpp, &qf_fw_ort, &qf_fw_openvino, &qf_fw_mlx, &qf_fw_qnn,
};
#define N_TABLE ((int)(sizeof k_table / sizeof k_table[0]))

const qf_framework *const *qf_framework_table(int *n)
{
    assert(n);
    *n = N_TABLE;
    return k_table;
}

const qf_framework *qf_framework_find(const char *name)
{
    assert(name);
    for (int i = 0; i < N_TABLE; i++)
        if (strcmp(k_table[i]->name, name) == 0)
            return k_table[i];
    return NULL;
}

const qf_framework *qf_framework_of(const qf_job_spec *spec)
{
    assert(spec);
    const char *name = qf_job_framework(spec);
    return name ? qf_framework_find(name) : NULL;
}

bool qf_framework_runs(const qf_framework *fw, const char *format)
{
    assert(fw && format);
    size_t n = strlen(format);
    for (const char *p = fw->formats; *p;) {
        while (*p == ' ')
            p++;
        size_t w = strcspn(p, " ");
        if (w == n && n && memcmp(p, format, n) == 0)
            return true;
        p += w;
    }
    return false;
}

int qf_framework_inputs(const qf_job_spec *spec, float **weights, float **x, char sha256[65],
                        char *why, size_t why_len)
{
    assert(spec && weights && x && sha256);
    *weights = NULL;
    *x = NULL;
    int err = qf_jobs_weights(spec, weights, why, why_len);
    if (err)
        return err;
    *x = malloc((size_t)spec->cols * sizeof **x);
    if (!*x) {
        free(*weights);
        *weights = NULL;
        qf_whyf(0, why, why_len, "out of memory for %" PRId64 " activations", spec->cols);
        return QF_ENOMEM;
    }
    if ((err = qf_measure_activations(spec->seed, 1, spec->cols, *x)) != 0)
        qf_whyf(0, why, why_len, "generating the activations: %s", qf_strerror(err));
    else if ((err = qf_jobs_input_sha256(*weights, spec->rows * spec->cols, sha256)) != 0)
        qf_whyf(0, why, why_len, "libsodium could not be initialized");
    if (err) {
        free(*weights);
        free(*x);
        *weights = *x = NULL;
    }
    return err;
}

int qf_framework_reference(const qf_job_spec *spec, const void *wq, const float *x, float *y,
                           char *why, size_t why_len)
{
    assert(spec && wq && x && y);
    qf_format fmt;
    if (qf_format_from_name(spec->format, &fmt) != 0) {
        qf_whyf(0, why, why_len, "format: unknown format '%s'", spec->format);
        return QF_EFORMAT;
    }
    float *row = malloc((size_t)spec->cols * sizeof *row);
    if (!row) {
        qf_whyf(0, why, why_len, "out of memory for a row of %" PRId64, spec->cols);
        return QF_ENOMEM;
    }
    size_t rs = qf_format_row_size(fmt, spec->cols);
    for (int64_t r = 0; r < spec->rows; r++) {
        int err = qf_dequantize(fmt, (const uint8_t *)wq + (size_t)r * rs, row, 1, spec->cols);
        if (err) {
            free(row);
            qf_whyf(0, why, why_len, "decoding row %" PRId64 " of %s: %s", r, spec->format,
                   qf_strerror(err));
            return err;
        }
        double acc = 0;
        for (int64_t c = 0; c < spec->cols; c++)
            acc += (double)row[c] * (double)x[c];
        y[r] = (float)acc;
    }
    free(row);
    return 0;
}

void qf_framework_result(const qf_framework *fw, const char *version, const qf_job_spec *spec,
                         const float *y, const float *yref, qf_job_result *out)
{
    assert(fw && version && spec && out);
    qf_format fmt;
    int rc = qf_format_from_name(spec->format, &fmt);
    assert(rc == 0); /* a validated spec */
    (void)rc;
    size_t bytes = qf_format_row_size(fmt, spec->cols) * (size_t)spec->rows;
    out->bytes = bytes;
    out->bpw = qf_format_bpw(fmt, spec->cols);
    out->throughput_bytes = bytes;
    snprintf(out->kernel, sizeof out->kernel, "%s-%s", fw->name, version);
    if (y && yref) {
        qf_tensor_metrics m;
        qf_metrics_compute(yref, y, spec->rows, 0, &m);
        out->has_metrics = true;
        out->metrics = (qf_job_metrics){ .rmse = m.rmse, .nmse = m.nmse, .snr_db = m.snr_db,
                                         .max_abs = m.max_abs, .cosine = m.cosine };
    }
}
