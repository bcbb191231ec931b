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
/* Uniform in (0, 1): never 0, for logarithms. */
double   qf_rng_uniform_pos(qf_rng *r);
/* Standard normal (Marsaglia polar method). */
double   qf_rng_normal(qf_rng *r);
/* Laplace with location 0 and scale b. */
double   qf_rng_laplace(qf_rng *r, double b);
/* Student-t with nu degrees of freedom (nu a positive integer). */
double   qf_rng_student_t(qf_rng *r, int nu);
/* Natural logarithm of x > 0, correctly behaved and bit-reproducible (own implementation). */
double   qf_rng_log(double x);

#endif
