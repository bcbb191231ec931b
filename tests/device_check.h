/* device_check.h - the verdict on a GPU backend's matvec output against the C reference, for
 * the backends' tests, with the activations and salts their fresh inputs come from
 * (test_opencl.c; test_cuda.c judges the same way with its own copy, which can move here).
 *
 * The limits, and why: a backend that takes the activation row quantized as the reference
 * does has the reference's integer sums, and only the order of its float additions differs,
 * so NMSE <= 1e-8 against qf_matvec_ref (~1e-13 seen); against the exact product of the
 * decoded weights and the float activations in double, NMSE <= 1e-3 (what 8-bit activations
 * cost, ~5e-5); and every row within 1e-5 * sum_c |w_rc x_c| of qf_matvec_ref's, the bound
 * that still holds for a row whose terms cancel (NMSE is judged on 7 rows or more: a one-row
 * NMSE is that row's relative error, which cancellation inflates). NMSE comes from
 * qf_metrics_compute, so one NaN makes it NaN, and every comparison is written so that NaN
 * fails it. */
#ifndef QF_DEVICE_CHECK_H
#define QF_DEVICE_CHECK_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qf_formats.h"

#define QF_DEVICE_NMSE_VS_REF    1e-8
#define QF_DEVICE_NMSE_VS_EXACT  1e-3
#define QF_DEVICE_ROW_VS_REF     1e-5     /* of sum_c |w_rc x_c| */
#define QF_DEVICE_NMSE_MIN_ROWS  7

typedef struct qf_device_verdict {
    double nmse_ref, nmse_exact;   /* against qf_matvec_ref and the exact product */
    char   why[320];               /* the first failure, naming the row or the NMSE; "" if ok */
} qf_device_verdict;

/* Fresh inputs per check: a salt from what the check is (format, shape index, kind of check),
 * mixed with the run's seed by the generators. */
uint64_t qf_device_salt(qf_format fmt, size_t shape_i, int kind);

/* n unit Gaussian activations from the run's seed and the check's salt. */
void qf_device_fill_acts(float *x, int64_t n, uint64_t seed, uint64_t salt);

/* True if the device's rows x cols floats got are the reference's ref bit for bit; otherwise
 * false with v->why naming the first weight that differs, both values in hex floats. */
bool qf_device_judge_exact(const char *what, const float *ref, const float *got, int64_t rows,
                           int64_t cols, qf_device_verdict *v);

/* Judges got (rows floats from the device) for weights q of format fmt (the reference's bytes),
 * their reference decode deq (rows x cols) and the activations x (cols). what names the check
 * in the message ("matvec q4_0 7x512"). True if it passes; false with v->why otherwise. */
bool qf_device_judge_matvec(const char *what, qf_format fmt, const void *q, const float *deq,
                            const float *x, const float *got, int64_t rows, int64_t cols,
                            qf_device_verdict *v);

#endif
