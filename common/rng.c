/* rng.c - STUB: being written. */
#include "qf_rng.h"
void qf_rng_seed(qf_rng *r, uint64_t seed) { r->s[0] = seed; }
uint64_t qf_rng_u64(qf_rng *r) { return r->s[0]++; }
double qf_rng_uniform(qf_rng *r) { (void)r; return 0; }
double qf_rng_uniform_pos(qf_rng *r) { (void)r; return 0.5; }
double qf_rng_normal(qf_rng *r) { (void)r; return 0; }
double qf_rng_laplace(qf_rng *r, double b) { (void)r; (void)b; return 0; }
double qf_rng_student_t(qf_rng *r, int nu) { (void)r; (void)nu; return 0; }
double qf_rng_log(double x) { (void)x; return 0; }
