/* test_formats.c - the format table and the generic operations over it.
 *
 * Checks what holds for every row of the table (names unique and found by name, geometry and
 * bits per weight as documented, activation formats consistent), that bad shapes are refused
 * without touching the output, and that each format's reference matvec equals the dot product
 * of its own dequantized weights with its dequantized activations (a format-independent
 * oracle; byte-exactness against ggml is test_conformance_ggml's job).
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
#include "qf_synth.h"

static void test_names_unique_and_found(void **state)
{
    (void)state;
    for (int i = 0; i < QF_FMT_COUNT; i++) {
        const qf_format_traits *t = qf_format_get((qf_format)i);
        assert_non_null(t->name);
        assert_non_null(t->summary);
        assert_non_null(t->quantize_ref);
        assert_non_null(t->dequantize);
        qf_format f;
        assert_int_equal(qf_format_from_name(t->name, &f), 0);
        assert_int_equal(f, i);
        for (int j = i + 1; j < QF_FMT_COUNT; j++)
            assert_string_not_equal(t->name, qf_format_get((qf_format)j)->name);
    }
    qf_format f = QF_FMT_F32;
    assert_int_equal(qf_format_from_name("q4_k", &f), QF_EFORMAT);   /* names are exact */
    assert_int_equal(qf_format_from_name("", &f), QF_EFORMAT);
    assert_int_equal(f, QF_FMT_F32);                                  /* untouched on error */
}

static void test_bits_per_weight(void **state)
{
    (void)state;
    static const struct { const char *name; double bpw; } want[] = {
        { "f32", 32 }, { "f16", 16 }, { "bf16", 16 }, { "q8_0", 8.5 }, { "q4_0", 4.5 },
        { "q4_1", 5.0 }, { "q5_0", 5.5 }, { "q5_1", 6.0 }, { "q2_K", 2.625 },
        { "q3_K", 3.4375 }, { "q4_K", 4.5 }, { "q5_K", 5.5 }, { "q6_K", 6.5625 },
        { "iq4_nl", 4.5 }, { "int8_pc", 8.0 }, { "int4_g32", 4.75 }, { "int4_g64", 4.375 },
        { "int4_g128", 4.1875 },
        /* ONNX Runtime MatMulNBits and QNN (per-row ones: the values' bits alone) */
        { "ort_int4_b32", 5.0 }, { "ort_int4_b128", 4.25 }, { "ort_int4_b128_asym", 4.3125 },
        { "qnn_int8_pc", 8.0 }, { "qnn_int16_pc", 16.0 }, { "qnn_w4_block", 5.0 },
        /* OpenVINO NNCF and MLX affine: bits + 16 per f16 parameter / group (+8 for a u8 z) */
        { "nncf_int8_asym", 8.0 }, { "nncf_int4_sym_g128", 4.125 },
        { "nncf_int4_asym_g128", 4.1875 }, { "mlx_affine2_g32", 3.0 },
        { "mlx_affine2_g64", 2.5 }, { "mlx_affine2_g128", 2.25 }, { "mlx_affine3_g32", 4.0 },
        { "mlx_affine3_g64", 3.5 }, { "mlx_affine3_g128", 3.25 }, { "mlx_affine4_g32", 5.0 },
        { "mlx_affine4_g64", 4.5 }, { "mlx_affine4_g128", 4.25 }, { "mlx_affine6_g32", 7.0 },
        { "mlx_affine6_g64", 6.5 }, { "mlx_affine6_g128", 6.25 }, { "mlx_affine8_g32", 9.0 },
        { "mlx_affine8_g64", 8.5 }, { "mlx_affine8_g128", 8.25 },
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        qf_format f;
        assert_int_equal(qf_format_from_name(want[i].name, &f), 0);
        if (qf_format_bpw_nominal(f) != want[i].bpw)
            fail_msg("%s: %.6g bits per weight, expected %.6g", want[i].name,
                     qf_format_bpw_nominal(f), want[i].bpw);
    }
    /* per-row formats: the exact figure includes the row's scale */
    assert_true(fabs(qf_format_bpw(QF_FMT_INT8_PC, 4096) - (8.0 + 32.0 / 4096)) < 1e-12);
    assert_int_equal(qf_format_row_size(QF_FMT_INT8_PC, 4096), 4 + 4096);
    assert_int_equal(qf_format_row_size(QF_FMT_Q4_K, 4096), 16 * 144);
    assert_true(fabs(qf_format_bpw(QF_FMT_Q4_K, 4096) - 4.5) < 1e-12);
}

static void test_activation_formats(void **state)
{
    (void)state;
    for (int i = 0; i < QF_FMT_COUNT; i++) {
        const qf_format_traits *t = qf_format_get((qf_format)i);
        if (!t->weight) {
            assert_null(t->vec_dot_ref);
            continue;
        }
        assert_non_null(t->vec_dot_ref);
        const qf_format_traits *a = qf_format_get(t->act);
        /* the activation format quantizes and decodes; its block divides the weight's row */
        assert_non_null(a->quantize_ref);
        if (t->blck > 1 && a->blck > 1)
            assert_int_equal(t->blck % a->blck == 0 || a->blck % t->blck == 0, 1);
    }
}

static void test_bad_shapes_refused_untouched(void **state)
{
    (void)state;
    float x[512] = { 0 };
    unsigned char out[2048];
    memset(out, 0x77, sizeof out);
    assert_int_equal(qf_quantize(QF_FMT_Q4_K, x, out, 1, 100), QF_ESHAPE);
    assert_int_equal(qf_quantize(QF_FMT_Q4_0, x, out, 1, 48), QF_ESHAPE);
    assert_int_equal(qf_quantize(QF_FMT_Q8_0, x, out, 0, 32), QF_ESHAPE);
    assert_int_equal(qf_quantize(QF_FMT_Q8_0, x, out, 1, 0), QF_ESHAPE);
    assert_int_equal(qf_quantize(QF_FMT_Q8_0, x, out, 1, -32), QF_ESHAPE);
    assert_int_equal(qf_quantize(QF_FMT_INT4_G128, x, out, 1, 64), QF_ESHAPE);
    /* int8_pc has no weight blocks, but its q8_0 activations need multiples of 32 */
    assert_int_equal(qf_quantize(QF_FMT_INT8_PC, x, out, 1, 33), QF_ESHAPE);
    for (size_t i = 0; i < sizeof out; i++)
        assert_int_equal(out[i], 0x77);
    float y[4];
    assert_int_equal(qf_dequantize(QF_FMT_Q6_K, out, y, 1, 255), QF_ESHAPE);
    assert_int_equal(qf_matvec_ref(QF_FMT_Q8_K, out, x, y, 1, 256), QF_EUNSUP);
    assert_int_equal(qf_format_check_cols(QF_FMT_F32, 7), 0);   /* floats take any length */
}

/* y = W x by the reference matvec versus the double-precision dot of what the format stores:
 * dequantized weights times dequantized activations. Only summation order differs. */
static void test_matvec_matches_dequantized_dot(void **state)
{
    (void)state;
    enum { ROWS = 8, COLS = 1024 };
    float *w = malloc(ROWS * COLS * sizeof *w), *wd = malloc(ROWS * COLS * sizeof *w);
    float x[COLS], xd[COLS], y[ROWS];
    assert_non_null(w);
    assert_non_null(wd);
    qf_synth_params p = qf_synth_defaults(QF_SYNTH_STUDENT_T, 7);
    assert_int_equal(qf_synth_fill(&p, w, ROWS, COLS), 0);
    qf_synth_params px = qf_synth_defaults(QF_SYNTH_GAUSSIAN, 8);
    px.stddev = 1.0;
    px.outlier_channels = 0;
    assert_int_equal(qf_synth_fill(&px, x, 1, COLS), 0);

    for (int f = 0; f < QF_FMT_COUNT; f++) {
        const qf_format_traits *t = qf_format_get((qf_format)f);
        if (!t->weight)
            continue;
        void *q = malloc(qf_format_row_size((qf_format)f, COLS) * ROWS);
        void *xq = malloc(qf_format_row_size(t->act, COLS));
        assert_non_null(q);
        assert_non_null(xq);
        assert_int_equal(qf_quantize((qf_format)f, w, q, ROWS, COLS), 0);
        assert_int_equal(qf_dequantize((qf_format)f, q, wd, ROWS, COLS), 0);
        assert_int_equal(qf_quantize(t->act, x, xq, 1, COLS), 0);
        assert_int_equal(qf_dequantize(t->act, xq, xd, 1, COLS), 0);
        assert_int_equal(qf_matvec_ref((qf_format)f, q, x, y, ROWS, COLS), 0);
        /* q8_1 activations carry s = d * sum(q) rounded to f16, and the q4_1/q5_1 dot uses that
         * rounded sum for the min term (as ggml does): up to ~2e-4 of sum|w*a| off the oracle. */
        double tol = t->act == QF_FMT_Q8_1 ? 1e-3 : 1e-5;
        for (int r = 0; r < ROWS; r++) {
            double dot = 0, mag = 0;
            for (int i = 0; i < COLS; i++) {
                dot += (double)wd[r * COLS + i] * xd[i];
                mag += fabs((double)wd[r * COLS + i] * xd[i]);
            }
            if (!(fabs(dot - y[r]) <= tol * mag + 1e-30))
                fail_msg("%s row %d: matvec %.9g, dequantized dot %.9g (sum|w*a| %.6g)",
                         t->name, r, (double)y[r], dot, mag);
        }
        free(q);
        free(xq);
    }
    free(w);
    free(wd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_names_unique_and_found),
        cmocka_unit_test(test_bits_per_weight),
        cmocka_unit_test(test_activation_formats),
        cmocka_unit_test(test_bad_shapes_refused_untouched),
        cmocka_unit_test(test_matvec_matches_dequantized_dot),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
