/* ref_util.h - small helpers the reference kernels share (private to kernels/ref/).
 *
 * Byte-exactness with ggml rests on doing the same comparisons in the same order, so a loop
 * that several quantizers need lives here once instead of being retyped per format.
 */
#ifndef QF_REF_UTIL_H
#define QF_REF_UTIL_H

#include <math.h>
#include <stdint.h>

/* The value of largest magnitude among x[0..n), with its sign: the first one wins ties and a
 * NaN never wins (a strict > against the running |max|). *amax gets that magnitude (0 for an
 * empty or all-zero input). Symmetric quantizers map this value to the end of their range with
 * one more level, so a block's extreme is represented exactly. */
static inline float qf_ref_signed_absmax(const float *x, int64_t n, float *amax)
{
    float best = 0.0f, max = 0.0f;
    for (int64_t i = 0; i < n; i++) {
        const float ax = fabsf(x[i]);
        if (ax > best) {
            best = ax;
            max = x[i];
        }
    }
    *amax = best;
    return max;
}

#endif
