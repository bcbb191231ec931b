/* test_gptq.c - GPTQ (kernels/gptq.c, qf_gptq.h) on small layers with synthetic calibration.
 *
 * Every layer is LAYER_ROWS x LAYER_COLS Gaussian weights with outlier columns (qf_synth) and
 * N_SAMPLES correlated activations (qf_gptq_synth_calib), all from fixed seeds, so the output
 * errors are the same numbers on every run. The bar: GPTQ's ||WX^T - ŴX^T||^2 at least
 * 20% below round-to-nearest's for int4_g128. Every format GPTQ writes must also beat RTN, and
 * its bytes must decode (qf_dequantize) to exactly the Ŵ the error feedback used. Each test
 * prints the measured errors. A few seconds in all.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qf_err.h"
#include "qf_formats.h"
#include "qf_gptq.h"
#include "qf_synth.h"

#define LAYER_ROWS 256
#define LAYER_COLS 512
#define N_SAMPLES  512
#define SEED       20221031

typedef struct layer {
    int64_t rows, cols, n;
    float  *w, *x, *w_hat, *decoded;
    void   *q;
} layer;

static layer *layer_new(qf_format fmt, int64_t rows, int64_t cols, int64_t n)
{
    layer *l = calloc(1, sizeof *l);
    assert_non_null(l);
    *l = (layer){ .rows = rows, .cols = cols, .n = n };
    l->w = malloc(sizeof(float) * (size_t)(rows * cols));
    l->x = malloc(sizeof(float) * (size_t)(n * cols));
    l->w_hat = malloc(sizeof(float) * (size_t)(rows * cols));
    l->decoded = malloc(sizeof(float) * (size_t)(rows * cols));
    l->q = malloc(qf_format_row_size(fmt, cols) * (size_t)rows + 1);
    assert_true(l->w && l->x && l->w_hat && l->decoded && l->q);
    qf_synth_params sp = qf_synth_defaults(QF_SYNTH_GAUSSIAN, SEED);
    assert_int_equal(qf_synth_fill(&sp, l->w, rows, cols), 0);
    assert_int_equal(qf_gptq_synth_calib(SEED, 0, n, cols, l->x), 0);
    return l;
}

static void layer_destroy(layer **l)
{
    if (!*l)
        return;
    free((*l)->w);
    free((*l)->x);
    free((*l)->w_hat);
    free((*l)->decoded);
    free((*l)->q);
    free(*l);
    *l = NULL;
}

/* Runs GPTQ, checks the bytes decode to the Ŵ it used, returns the stats. */
static qf_gptq_stats run_checked(qf_format fmt, layer *l, const qf_gptq_params *p)
{
    qf_gptq_stats st;
    int err = qf_gptq_quantize(fmt, l->w, l->rows, l->cols, l->x, l->n, p, l->q, l->w_hat, &st);
    assert_int_equal(err, 0);
    assert_int_equal(qf_dequantize(fmt, l->q, l->decoded, l->rows, l->cols), 0);
    for (int64_t i = 0; i < l->rows * l->cols; i++)
        if (memcmp(&l->decoded[i], &l->w_hat[i], sizeof(float)) != 0)
            fail_msg("%s: weight %lld (row %lld, col %lld) decodes to %.9g, GPTQ used %.9g",
                     qf_format_get(fmt)->name, (long long)i, (long long)(i / l->cols),
                     (long long)(i % l->cols), (double)l->decoded[i], (double)l->w_hat[i]);
    assert_true(isfinite(st.err_gptq) && isfinite(st.err_rtn) && st.err_rtn > 0);
    printf("    %-11s %s gptq %.4e  rtn %.4e  (%.1f%% lower; %.1f%% of ||WX||^2 vs %.1f%%)  "
           "%.3f s\n", qf_format_get(fmt)->name, p && p->act_order ? "act-order" : "in order ",
           st.err_gptq, st.err_rtn, 100 * (1 - st.err_gptq / st.err_rtn),
           100 * st.err_gptq / st.ref_norm2, 100 * st.err_rtn / st.ref_norm2, st.seconds);
    return st;
}

/* The "done when": >= 20% lower output error than RTN for int4_g128. */
static void test_int4_g128_beats_rtn(void **state)
{
    (void)state;
    layer *l = layer_new(QF_FMT_INT4_G128, LAYER_ROWS, LAYER_COLS, N_SAMPLES);
    qf_gptq_stats st = run_checked(QF_FMT_INT4_G128, l, NULL);
    if (!(st.err_gptq <= 0.8 * st.err_rtn))
        fail_msg("int4_g128: GPTQ %.6g is not 20%% below RTN %.6g", st.err_gptq, st.err_rtn);
    assert_int_equal(st.dead_cols, 0);

    /* fresh samples of the same distribution: GPTQ must not merely fit its calibration set */
    float *fresh = malloc(sizeof(float) * 4 * N_SAMPLES * LAYER_COLS);
    assert_non_null(fresh);
    assert_int_equal(qf_gptq_synth_calib(SEED, 1, 4 * N_SAMPLES, LAYER_COLS, fresh), 0);
    qf_gptq_stats ho;
    assert_int_equal(qf_gptq_compare(QF_FMT_INT4_G128, l->w, l->rows, l->cols, l->q, fresh,
                                     4 * N_SAMPLES, &ho), 0);
    printf("    held out: gptq %.4e  rtn %.4e  (%.1f%% lower)\n", ho.err_gptq, ho.err_rtn,
           100 * (1 - ho.err_gptq / ho.err_rtn));
    if (!(ho.err_gptq <= 0.9 * ho.err_rtn))
        fail_msg("int4_g128 held out: GPTQ %.6g is not 10%% below RTN %.6g", ho.err_gptq,
                 ho.err_rtn);
    free(fresh);
    layer_destroy(&l);
}

/* Every format GPTQ writes, in order and with act-order: decodes exactly, beats RTN by 10%. */
static void test_every_format(void **state)
{
    (void)state;
    int tried = 0;
    for (int f = 0; f < QF_FMT_COUNT; f++) {
        if (!qf_gptq_supports((qf_format)f))
            continue;
        tried++;
        for (int ao = 0; ao < 2; ao++) {
            layer *l = layer_new((qf_format)f, LAYER_ROWS / 2, LAYER_COLS, N_SAMPLES);
            qf_gptq_params p = qf_gptq_defaults();
            p.act_order = ao;
            p.threads = 2;
            qf_gptq_stats st = run_checked((qf_format)f, l, &p);
            if (!(st.err_gptq <= 0.9 * st.err_rtn))
                fail_msg("%s%s: GPTQ %.6g is not 10%% below RTN %.6g", qf_format_get(f)->name,
                         ao ? " act-order" : "", st.err_gptq, st.err_rtn);
            layer_destroy(&l);
        }
    }
    assert_true(tried >= 10);  /* q4_0 q4_1 iq4_nl q4_K int4_g32/64/128 ort_int4_* at least */
}

/* Inputs that no sample reaches make H singular; GPTQ zeroes them and goes on. */
static void test_dead_columns(void **state)
{
    (void)state;
    layer *l = layer_new(QF_FMT_INT4_G32, 64, LAYER_COLS, 128);
    const int64_t dead[] = { 0, 5, 200, LAYER_COLS - 1 };
    for (size_t k = 0; k < sizeof dead / sizeof dead[0]; k++)
        for (int64_t s = 0; s < l->n; s++)
            l->x[s * l->cols + dead[k]] = 0;
    for (int ao = 0; ao < 2; ao++) {
        qf_gptq_params p = qf_gptq_defaults();
        p.act_order = ao;
        qf_gptq_stats st = run_checked(QF_FMT_INT4_G32, l, &p);
        assert_int_equal(st.dead_cols, 4);
        assert_true(st.err_gptq < st.err_rtn);
    }
    layer_destroy(&l);
}

/* Fewer samples than columns and no dampening: H is singular and says so. */
static void test_singular_without_damp(void **state)
{
    (void)state;
    layer *l = layer_new(QF_FMT_INT4_G128, 16, LAYER_COLS, 32);
    qf_gptq_params p = qf_gptq_defaults();
    p.percdamp = 0;
    assert_int_equal(qf_gptq_quantize(QF_FMT_INT4_G128, l->w, l->rows, l->cols, l->x, l->n, &p,
                                      l->q, NULL, NULL), QF_ERANGE);
    p.percdamp = 0.01;        /* the default dampening makes the same layer work */
    run_checked(QF_FMT_INT4_G128, l, &p);
    layer_destroy(&l);
}

/* Shapes the format cannot hold, formats without a grid, sizes, dampening, NaN and Inf. */
static void test_bad_arguments(void **state)
{
    (void)state;
    static const struct {
        qf_format fmt;
        int64_t   rows, cols, n;
        double    damp;
        int       want;
    } cases[] = {
        { QF_FMT_INT4_G128, 8, 192, 16, 0.01, QF_ESHAPE },
        { QF_FMT_Q4_K, 8, 128, 16, 0.01, QF_ESHAPE },
        { QF_FMT_Q4_0, 8, 48, 16, 0.01, QF_ESHAPE },
        { QF_FMT_Q8_0, 8, 512, 16, 0.01, QF_EFORMAT },
        { QF_FMT_INT4_G128, 0, 512, 16, 0.01, QF_EINVAL },
        { QF_FMT_INT4_G128, 8, 512, 0, 0.01, QF_EINVAL },
        { QF_FMT_INT4_G128, 8, 512, 16, -0.5, QF_EINVAL },
    };
    layer *l = layer_new(QF_FMT_INT4_G128, 8, 512, 16);
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        qf_gptq_params p = qf_gptq_defaults();
        p.percdamp = cases[i].damp;
        int err = qf_gptq_quantize(cases[i].fmt, l->w, cases[i].rows, cases[i].cols, l->x,
                                   cases[i].n, &p, l->q, NULL, NULL);
        if (err != cases[i].want)
            fail_msg("case %zu: got %s, want %s", i, qf_err_name(err),
                     qf_err_name(cases[i].want));
    }
    l->x[37] = NAN;
    assert_int_equal(qf_gptq_quantize(QF_FMT_INT4_G128, l->w, 8, 512, l->x, 16, NULL, l->q,
                                      NULL, NULL), QF_EINVAL);
    l->x[37] = 0;
    l->w[3] = INFINITY;
    assert_int_equal(qf_gptq_quantize(QF_FMT_INT4_G128, l->w, 8, 512, l->x, 16, NULL, l->q,
                                      NULL, NULL), QF_EINVAL);
    assert_false(qf_gptq_supports(QF_FMT_F32));
    assert_true(qf_gptq_supports(QF_FMT_INT4_G128));
    layer_destroy(&l);
}

/* Same seed, same activations; the error measure is 0 on W itself and matches a direct sum. */
static void test_synth_and_measure(void **state)
{
    (void)state;
    enum { N = 8, C = 64, R = 3 };
    static float a[N * C], b[N * C], w[R * C], v[R * C];
    assert_int_equal(qf_gptq_synth_calib(7, 0, N, C, a), 0);
    assert_int_equal(qf_gptq_synth_calib(7, 0, N, C, b), 0);
    assert_memory_equal(a, b, sizeof a);
    assert_int_equal(qf_gptq_synth_calib(8, 0, N, C, b), 0);
    assert_memory_not_equal(a, b, sizeof a);
    assert_int_equal(qf_gptq_synth_calib(7, 1, N, C, b), 0);
    assert_memory_not_equal(a, b, sizeof a);
    assert_int_equal(qf_gptq_synth_calib(7, 0, 0, C, b), QF_EINVAL);

    for (int i = 0; i < R * C; i++) {
        w[i] = (float)((i * 37) % 11) - 5.0f;
        v[i] = w[i] + (i % 3 == 0 ? 0.25f : 0.0f);
    }
    double err = -1, ref = -1, direct_err = 0, direct_ref = 0;
    assert_int_equal(qf_gptq_output_error(w, w, R, C, a, N, &err, NULL), 0);
    assert_true(err == 0.0);
    assert_int_equal(qf_gptq_output_error(w, v, R, C, a, N, &err, &ref), 0);
    for (int r = 0; r < R; r++)
        for (int s = 0; s < N; s++) {
            double de = 0, dr = 0;
            for (int c = 0; c < C; c++) {
                de += ((double)w[r * C + c] - v[r * C + c]) * a[s * C + c];
                dr += (double)w[r * C + c] * a[s * C + c];
            }
            direct_err += de * de;
            direct_ref += dr * dr;
        }
    if (fabs(err - direct_err) > 1e-4 * direct_err || fabs(ref - direct_ref) > 1e-4 * direct_ref)
        fail_msg("output error %.9g / %.9g, direct sums %.9g / %.9g", err, ref, direct_err,
                 direct_ref);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_int4_g128_beats_rtn),
        cmocka_unit_test(test_every_format),
        cmocka_unit_test(test_dead_columns),
        cmocka_unit_test(test_singular_without_damp),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_synth_and_measure),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
