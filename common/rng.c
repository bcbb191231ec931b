/* rng.c - xoshiro256** seeded by splitmix64, and the non-uniform draws built on it.
 *
 * The synthetic weight tensors (datasets/synth.c) and every seeded test come from here, so a
 * seed must give the same bits on x86, Arm, any C library and either compiler. Integer output
 * is exact by construction. The floating-point draws use only +, -, *, /, sqrt (all correctly
 * rounded by IEEE 754) and qf_rng_log below, never a libm transcendental: glibc, musl, Apple's
 * libm and Bionic disagree in the last bit of log(), which would change tensors.
 * That guarantee assumes binary64 evaluated as binary64 (FLT_EVAL_METHOD 0: SSE2, NEON, not
 * x87) and no fused multiply-add contraction. gcc does not contract under -std=c11 (the build
 * sets it); clang contracts within an expression by default, hence the pragma below.
 * Not thread-safe per state; one qf_rng per thread. Called once per generated weight, so it
 * is warm but not the benchmark's hot path.
 */
#include "qf_rng.h"

#include <assert.h>
#include <math.h>

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

/* One step of splitmix64 (Steele, Lea, Flood 2014): spreads any seed, even 0 or 1, over the
 * 256-bit state so that xoshiro never starts from the all-zero state it cannot leave. */
static uint64_t splitmix64_next(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15u);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9u;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebu;
    return z ^ (z >> 31);
}

void qf_rng_seed(qf_rng *r, uint64_t seed)
{
    assert(r);
    uint64_t x = seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = splitmix64_next(&x);
}

/* xoshiro256** (Blackman and Vigna 2018). */
uint64_t qf_rng_u64(qf_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return result;
}

/* The top 53 bits are the best of xoshiro256** and fill a double's significand exactly. */
double qf_rng_uniform(qf_rng *r)
{
    return (double)(qf_rng_u64(r) >> 11) * 0x1p-53;
}

/* (2m + 1) / 2^53 for a 52-bit m: never 0 or 1, and u and 1 - u are both exact and have the
 * same distribution, so the Laplace inverse CDF below treats both tails alike. */
double qf_rng_uniform_pos(qf_rng *r)
{
    return ((double)(qf_rng_u64(r) >> 12) + 0.5) * 0x1p-52;
}

/* Marsaglia polar method. The second normal of each accepted pair is discarded: caching it
 * would need state outside qf_rng, and generation is not the bottleneck. */
double qf_rng_normal(qf_rng *r)
{
    double u, v, s;
    do {
        u = 2.0 * qf_rng_uniform(r) - 1.0;
        v = 2.0 * qf_rng_uniform(r) - 1.0;
        s = u * u + v * v;
    } while (s >= 1.0 || s == 0.0);
    return u * sqrt(-2.0 * qf_rng_log(s) / s);
}

/* Inverse CDF: F^-1(u) = b ln(2u) for u < 1/2, -b ln(2 - 2u) otherwise; both arguments are
 * exact and positive for u from qf_rng_uniform_pos. */
double qf_rng_laplace(qf_rng *r, double b)
{
    double u = qf_rng_uniform_pos(r);
    if (u < 0.5)
        return b * qf_rng_log(2.0 * u);
    return -b * qf_rng_log(2.0 * (1.0 - u));
}

/* t = Z / sqrt(V / nu) with V ~ chi2(nu) drawn as a sum of nu squared normals: exact in
 * distribution for integer nu and uses nothing but the normal draw. Costs nu + 1 normals. */
double qf_rng_student_t(qf_rng *r, int nu)
{
    assert(nu >= 1);
    double z = qf_rng_normal(r);
    double chi2 = 0.0;
    for (int i = 0; i < nu; i++) {
        double g = qf_rng_normal(r);
        chi2 += g * g;
    }
    return z / sqrt(chi2 / (double)nu);
}

/* ln 2 split so that k * LN2_HI is exact for every exponent k of a double (|k| < 2^11):
 * LN2_HI holds the top 41 significant bits of ln 2, LN2_LO the rest rounded to double. */
static const double LN2_HI = 0x1.62e42fefa3000p-1;
static const double LN2_LO = 0x1.3de6af278ece6p-42;

/* Natural logarithm, own implementation so that its bits do not depend on the C library.
 * x = m 2^k with m in [sqrt(1/2), sqrt(2)) (frexp is exact), f = m - 1 (exact, Sterbenz),
 * s = f / (2 + f), and ln(1 + f) = 2 atanh(s) = 2s + s R(s^2) with
 * R(z) = sum_{i>=1} 2 z^i / (2i + 1). |s| <= 0.1716, so z <= 0.0295 and ten terms leave a
 * truncation error below 2^-60 relative. Since 2s = f - s f, ln(1 + f) is evaluated as
 * f - (f^2/2 - s (f^2/2 + R)): the leading term f is exact and the correction small, which is
 * what keeps the result within about one ulp of the true value (the test allows 4 against
 * glibc). The coefficients 2/(2i+1) are constant expressions, rounded once at compile time. */
double qf_rng_log(double x)
{
    if (isnan(x) || x < 0.0)
        return NAN;
    if (x == 0.0)
        return -INFINITY;
    if (isinf(x))
        return x;

    int k;
    double m = frexp(x, &k);                  /* x = m 2^k, m in [0.5, 1) */
    if (m < 0x1.6a09e667f3bcdp-1) {           /* sqrt(1/2): centre m on 1 */
        m *= 2.0;
        k -= 1;
    }
    double f = m - 1.0;
    double s = f / (2.0 + f);
    double z = s * s;
    double R = z * (2.0 / 3 + z * (2.0 / 5 + z * (2.0 / 7 + z * (2.0 / 9 + z * (2.0 / 11
             + z * (2.0 / 13 + z * (2.0 / 15 + z * (2.0 / 17 + z * (2.0 / 19
             + z * (2.0 / 21))))))))));
    double hfsq = 0.5 * f * f;
    double dk = (double)k;
    return dk * LN2_HI - ((hfsq - (s * (hfsq + R) + dk * LN2_LO)) - f);
}
