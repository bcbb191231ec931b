/* ref_util.h - small helpers the reference kernels share (private to kernels/ref/).
 *
 * Byte-exactness with ggml rests on doing the same comparisons in the same order, so a loop
 * that several quantizers need lives here once instead of being retyped per format.
 */
#ifndef QF_REF_UTIL_H
#define QF_REF_UTIL_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#include "qf_blocks.h"

/* A (sub-)block whose largest magnitude is below this counts as all zero (ggml's GROUP_MAX_EPS). */
#define QF_REF_GROUP_EPS 1e-15f

/* Rounds to the nearest integer, ties to even, by adding 1.5 * 2^23 so that the FPU's own
 * rounding drops the fraction, then reading the integer back out of the mantissa. This is
 * ggml's nearest_int; it is only meaningful for |v| < 2^22, and out-of-range or NaN inputs give
 * the same garbage ggml gives, which keeps the output bytes equal even then. */
static inline int qf_ref_nearest(float v)
{
    float biased = v + 12582912.f;
    uint32_t bits;
    memcpy(&bits, &biased, sizeof bits);
    return (int)(bits & 0x007fffffu) - 0x00400000;
}

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

/* The fits and block tails the plain reference quantizers and the importance-weighted ones
 * (imatrix.c) share; each is documented at its definition. Weights NULL mean the plain
 * quantizer's own weighting. */

/* kquants.c */
float qf_ref_fit_symmetric(const float *x, const float *qw, int n, int nmax, int8_t *L);
float qf_ref_fit_affine(const float *x, const float *weights, int n, int nmax, uint8_t *L,
                        float *the_min, float rmin, float rdelta, int nstep, int use_mad,
                        int guarded);
void qf_ref_q2_K_finish(const float *x, uint8_t *L, qf_block_q2_K *y);
void qf_ref_q3_K_finish(const float *x, const int sc[16], float d, int8_t *L, qf_block_q3_K *y);
void qf_ref_q4_K_finish(const float *x, uint8_t *L, const uint8_t ls[8], const uint8_t lm[8],
                        float d, float dmin, qf_block_q4_K *y);
void qf_ref_q5_K_finish(const float *x, uint8_t *L, const uint8_t ls[8], const uint8_t lm[8],
                        float d, float dmin, qf_block_q5_K *y);
void qf_ref_q6_K_block(const float *x, const float *qw, qf_block_q6_K *y);

/* legacy.c */
void qf_ref_pack_q5(const uint8_t u[32], uint8_t qs[16], uint8_t qh[4]);

/* iq4_nl.c */
void qf_ref_iq4_nl_block(const float x[32], const float *weight, uint8_t L[32],
                         qf_block_iq4_nl *y, int ntry);

#endif
