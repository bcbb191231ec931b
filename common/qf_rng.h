/* qf_rng.h - quantfleet's own seeded PRNG, identical on every platform.
 *
 * xoshiro256** seeded through splitmix64. Integer and uniform outputs are bit-identical
 * everywhere; the non-uniform draws (normal, Laplace, Student-t) use only +, -, *, /, sqrt and
 * the deterministic qf_rng_log below (no libm transcendental, whose last bit differs between
 * C libraries), so a seed gives the same tensor on x86, Arm and under any libc.
 * Not thread-safe per state: one qf_rng per thread.
 */
#ifndef QF_RNG_H
#define QF_RNG_H

#include <stdint.h>

typedef struct qf_rng { uint64_t s[4]; } qf_rng;

void     qf_rng_seed(qf_rng *r, uint64_t seed);
uint64_t qf_rng_u64(qf_rng *r);
/* Uniform in [0, 1) with 53 random bits. */
double   qf_rng_uniform(qf_rng *r);
/* Uniform in (0, 1): (2m + 1) / 2^53 for 52 random bits m; never 0 or 1, for logarithms. */
double   qf_rng_uniform_pos(qf_rng *r);
/* Standard normal (Marsaglia polar method; the pair's second value is discarded). */
double   qf_rng_normal(qf_rng *r);
/* Laplace with location 0 and scale b (variance 2 b^2), by inverse CDF. */
double   qf_rng_laplace(qf_rng *r, double b);
/* Student-t with nu degrees of freedom (nu >= 1, asserted); costs nu + 1 normals. */
double   qf_rng_student_t(qf_rng *r, int nu);
/* Natural logarithm, own implementation: within 1 ulp of the true value (tests allow 4 against
 * libm), exactly 0 at 1, -inf at 0, NaN below 0 or for NaN, +inf at +inf; bit-reproducible. */
double   qf_rng_log(double x);

#endif
