/* device_check.c - see device_check.h. Test support: allocates two rows of floats per call. */
#include "device_check.h"

#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qf_metrics.h"
#include "qf_rng.h"

uint64_t qf_device_salt(qf_format fmt, size_t shape_i, int kind)
{
    return ((uint64_t)fmt << 16 | (uint64_t)shape_i << 4 | (uint64_t)kind) + 1;
}

void qf_device_fill_acts(float *x, int64_t n, uint64_t seed, uint64_t salt)
{
    qf_rng r;
    qf_rng_seed(&r, seed ^ (salt * UINT64_C(0xd1b54a32d192ed03)) ^ 1);
    for (int64_t i = 0; i < n; i++)
        x[i] = (float)qf_rng_normal(&r);
}

bool qf_device_judge_exact(const char *what, const float *ref, const float *got, int64_t rows,
                           int64_t cols, qf_device_verdict *v)
{
    assert(what && ref && got && v && rows >= 1 && cols >= 1);
    v->why[0] = '\0';
    v->nmse_ref = v->nmse_exact = 0;
    for (int64_t i = 0; i < rows * cols; i++) {
        if (memcmp(&got[i], &ref[i], sizeof(float)) != 0) {
            snprintf(v->why, sizeof v->why, "%s: weight (%" PRId64 ", %" PRId64 ") is %a on "
                     "the device, %a in the reference", what, i / cols, i % cols,
                     (double)got[i], (double)ref[i]);
            return false;
        }
    }
    return true;
}

bool qf_device_judge_matvec(const char *what, qf_format fmt, const void *q, const float *deq,
                            const float *x, const float *got, int64_t rows, int64_t cols,
                            qf_device_verdict *v)
{
    assert(what && q && deq && x && got && v && rows >= 1 && cols >= 1);
    v->why[0] = '\0';
    float *yref = malloc((size_t)rows * sizeof(float));
    float *yexact = malloc((size_t)rows * sizeof(float));
    if (!yref || !yexact || qf_matvec_ref(fmt, q, x, yref, rows, cols) != 0) {
        snprintf(v->why, sizeof v->why, "%s: out of memory, or qf_matvec_ref refused it", what);
        free(yref);
        free(yexact);
        return false;
    }
    for (int64_t r = 0; r < rows; r++) {
        double acc = 0, mag = 0;
        for (int64_t c = 0; c < cols; c++) {
            const double t = (double)deq[r * cols + c] * (double)x[c];
            acc += t;
            mag += fabs(t);
        }
        yexact[r] = (float)acc;
        const double err = fabs((double)got[r] - (double)yref[r]);
        if (!v->why[0] && !(err <= QF_DEVICE_ROW_VS_REF * mag))
            snprintf(v->why, sizeof v->why, "%s: row %" PRId64 " is %g on the device, %g in "
                     "qf_matvec_ref: off by %g, over %g * sum|w x| = %g", what, r,
                     (double)got[r], (double)yref[r], err, QF_DEVICE_ROW_VS_REF,
                     QF_DEVICE_ROW_VS_REF * mag);
    }
    qf_tensor_metrics vs_ref, vs_exact;
    qf_metrics_compute(yref, got, rows, 0, &vs_ref);
    qf_metrics_compute(yexact, got, rows, 0, &vs_exact);
    free(yref);
    free(yexact);
    v->nmse_ref = vs_ref.nmse;
    v->nmse_exact = vs_exact.nmse;
    if (!v->why[0] && rows >= QF_DEVICE_NMSE_MIN_ROWS) {
        if (!(vs_ref.nmse <= QF_DEVICE_NMSE_VS_REF))
            snprintf(v->why, sizeof v->why, "%s: NMSE %g against qf_matvec_ref (limit %g)",
                     what, vs_ref.nmse, QF_DEVICE_NMSE_VS_REF);
        else if (!(vs_exact.nmse <= QF_DEVICE_NMSE_VS_EXACT))
            snprintf(v->why, sizeof v->why, "%s: NMSE %g against the exact product (limit %g)",
                     what, vs_exact.nmse, QF_DEVICE_NMSE_VS_EXACT);
    }
    return !v->why[0];
}
