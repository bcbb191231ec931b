/* metrics.c - tensor-level quality of a reconstruction y of an original x.
 *
 * One pass accumulates, in double, sum x^2, sum y^2, sum x y and sum (x - y)^2 (the difference
 * taken in double, so it is exact for binary32 inputs) and the largest |x - y|; every metric
 * is a closed form of those. The definitions and their edge cases are in docs/metrics.md and
 * qf_metrics.h; the code follows them literally, in particular SNR = -10 log10(NMSE) so the
 * two can never disagree. Non-finite inputs propagate as IEEE arithmetic gives (NaN metrics);
 * max_abs is NaN if any difference is. Called once per tensor by jobs and the CLI: not hot.
 */
#include "qf_metrics.h"

#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdlib.h>

#include "qf_err.h"

void qf_metrics_compute(const float *x, const float *y, int64_t n, size_t bytes,
                        qf_tensor_metrics *out)
{
    assert(out && n >= 0 && (n == 0 || (x && y)));
    double sxx = 0.0, syy = 0.0, sxy = 0.0, see = 0.0, emax = 0.0;
    bool nan_seen = false;
    for (int64_t i = 0; i < n; i++) {
        double a = x[i], b = y[i], e = a - b;
        sxx += a * a;
        syy += b * b;
        sxy += a * b;
        see += e * e;
        double ae = fabs(e);
        if (ae > emax)
            emax = ae;
        else if (isnan(ae))
            nan_seen = true;
    }

    out->n = n;
    out->rmse = n > 0 ? sqrt(see / (double)n) : 0.0;
    if (isnan(see) || isnan(sxx))
        out->nmse = NAN;
    else if (sxx > 0.0)
        out->nmse = see / sxx;
    else
        out->nmse = see == 0.0 ? 0.0 : INFINITY;
    /* NMSE 0 -> +inf dB (perfect), NMSE inf -> -inf dB (zero original, nonzero error) */
    out->snr_db = out->nmse == 0.0 ? INFINITY : -10.0 * log10(out->nmse);
    out->max_abs = nan_seen ? NAN : emax;
    if (sxx == 0.0 && syy == 0.0) {
        out->cosine = 1.0;                          /* both zero: the same direction */
    } else if (sxx == 0.0 || syy == 0.0) {
        out->cosine = 0.0;
    } else {
        double c = sxy / (sqrt(sxx) * sqrt(syy));
        out->cosine = c > 1.0 ? 1.0 : c < -1.0 ? -1.0 : c;  /* rounding can overshoot by an ulp */
    }
    out->bytes = bytes;
    out->bpw = n > 0 ? 8.0 * (double)bytes / (double)n : 0.0;
}

int qf_metrics_roundtrip(qf_format fmt, const float *x, int64_t nrows, int64_t ncols,
                         qf_tensor_metrics *out)
{
    assert(x && out);
    const char *name = qf_format_get(fmt)->name;
    if (nrows <= 0)
        return qf_errorf(QF_ESHAPE, "format %s: %" PRId64 " rows (must be positive)",
                         name, nrows);
    int err = qf_format_check_cols(fmt, ncols);
    if (err)
        return err;

    size_t rs = qf_format_row_size(fmt, ncols);
    if ((uint64_t)nrows > SIZE_MAX / rs ||
        (uint64_t)nrows > SIZE_MAX / sizeof(float) / (uint64_t)ncols)
        return qf_errorf(QF_ENOMEM, "format %s: %" PRId64 " x %" PRId64 " is too large to "
                         "round-trip", name, nrows, ncols);
    size_t qbytes = (size_t)nrows * rs;
    void *q = malloc(qbytes);
    float *y = malloc((size_t)nrows * (size_t)ncols * sizeof *y);
    if (!q || !y) {
        free(q);
        free(y);
        return qf_errorf(QF_ENOMEM, "format %s: no memory to round-trip %" PRId64 " x %"
                         PRId64, name, nrows, ncols);
    }
    err = qf_quantize(fmt, x, q, nrows, ncols);
    if (!err)
        err = qf_dequantize(fmt, q, y, nrows, ncols);
    if (!err)
        qf_metrics_compute(x, y, nrows * ncols, qbytes, out);
    free(q);
    free(y);
    return err;
}
