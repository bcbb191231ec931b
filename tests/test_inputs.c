/* test_inputs.c - the input families of test_inputs.h. Seeded: the same rng state gives the same
 * tensor on every machine (qf_rng draws are bit-identical everywhere). */
#include "test_inputs.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qf_synth.h"

void qf_test_fill_gaussian(float *x, int64_t rows, int64_t ncols, qf_rng *r)
{
    for (int64_t i = 0; i < rows * ncols; i++)
        x[i] = (float)qf_rng_normal(r);
}

static void fill_llm_like(float *x, int64_t rows, int64_t ncols, qf_rng *r)
{
    qf_synth_params p = qf_synth_defaults(QF_SYNTH_STUDENT_T, qf_rng_u64(r));
    if (qf_synth_fill(&p, x, rows, ncols) != 0) {
        fprintf(stderr, "test_inputs: qf_synth_fill failed\n");
        abort();
    }
}

static void fill_zero(float *x, int64_t rows, int64_t ncols, qf_rng *r)
{
    (void)r;
    memset(x, 0, (size_t)(rows * ncols) * sizeof *x);
}

/* Each 32-weight block constant, with a different constant per block (also negative, tiny). */
static void fill_constant_blocks(float *x, int64_t rows, int64_t ncols, qf_rng *r)
{
    static const float v[] = { 1.0f, -3.5f, 1e-3f, -65504.0f, 0.0f, 7.0f, -1e-6f, 0.25f };
    (void)r;
    for (int64_t i = 0; i < rows * ncols; i++)
        x[i] = v[(i / 32) % 8];
}

/* Gaussian body with one weight per 32 a thousand times larger. */
static void fill_outlier(float *x, int64_t rows, int64_t ncols, qf_rng *r)
{
    qf_test_fill_gaussian(x, rows, ncols, r);
    for (int64_t b = 0; b < rows * ncols; b += 32)
        x[b + (int64_t)(qf_rng_u64(r) % 32)] *= (qf_rng_u64(r) & 1) ? 1000.0f : -1000.0f;
}

/* Subnormal and tiny values: scales underflow in f16. */
static void fill_subnormal(float *x, int64_t rows, int64_t ncols, qf_rng *r)
{
    for (int64_t i = 0; i < rows * ncols; i++) {
        double s = (i / 256) % 3 == 0 ? 1e-40 : (i / 256) % 3 == 1 ? 1e-8 : 1e-5;
        x[i] = (float)(s * qf_rng_normal(r));
    }
}

/* The largest finite f16 magnitudes mixed with ordinary values. */
static void fill_f16_max(float *x, int64_t rows, int64_t ncols, qf_rng *r)
{
    for (int64_t i = 0; i < rows * ncols; i++) {
        uint64_t u = qf_rng_u64(r) % 8;
        x[i] = u == 0 ? 65504.0f : u == 1 ? -65504.0f : (float)(1000.0 * qf_rng_normal(r));
    }
}

/* Magnitudes spread over 1e-3..1e3 with alternating signs; rows with one sign only. */
static void fill_mixed_signs(float *x, int64_t rows, int64_t ncols, qf_rng *r)
{
    for (int64_t i = 0; i < rows * ncols; i++) {
        double mag = pow(10.0, 6.0 * qf_rng_uniform(r) - 3.0);
        int64_t row = i / ncols;
        double sign = row % 3 == 0 ? 1.0 : row % 3 == 1 ? -1.0 : ((i & 1) ? 1.0 : -1.0);
        x[i] = (float)(sign * mag);
    }
}

/* Uniform rows, each with its own scale from 1e-4 to 1e4. */
static void fill_row_scales(float *x, int64_t rows, int64_t ncols, qf_rng *r)
{
    for (int64_t i = 0; i < rows * ncols; i++) {
        double scale = pow(10.0, (double)((i / ncols) % 9) - 4.0);
        x[i] = (float)(scale * (2.0 * qf_rng_uniform(r) - 1.0));
    }
}

#define NROWS 24
const qf_test_case qf_test_cases[] = {
    { "gaussian",        qf_test_fill_gaussian, NROWS * 4 },
    { "llm-like",        fill_llm_like,         NROWS * 4 },
    { "zero",            fill_zero,             2 },
    { "constant-blocks", fill_constant_blocks,  4 },
    { "outlier",         fill_outlier,          NROWS },
    { "subnormal",       fill_subnormal,        NROWS },
    { "f16-max",         fill_f16_max,          NROWS },
    { "mixed-signs",     fill_mixed_signs,      NROWS },
    { "row-scales",      fill_row_scales,       NROWS },
};
const size_t qf_test_ncases = sizeof qf_test_cases / sizeof qf_test_cases[0];
