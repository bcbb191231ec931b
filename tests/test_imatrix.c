/* test_imatrix.c - the importance-weighted quantizers (kernels/ref/imatrix.c) against ggml.
 *
 * For every format whose ggml quantizer honours importance weights, on the conformance test's
 * input families (tests/test_inputs.h) with seeded random positive importance vectors (smooth,
 * spiky over a few columns, and with zeros), this checks that qf_quantize_weighted writes
 * exactly the bytes of ggml_quantize_chunk(type, src, dst, 0, rows, ncols, importance). It also
 * checks, without ggml: importance NULL is qf_quantize; formats ggml does not weight ignore the
 * importance; weighting changes the bytes and lowers the importance-weighted error on Gaussian
 * weights; a negative or non-finite importance and a bad shape are errors, not crashes.
 * ggml comes prebuilt from @node-llama-cpp/linux-x64 (scripts/fetch-ggml.sh). Without it the
 * ggml part prints SKIPPED loudly, or fails when QF_REQUIRE_GGML=1 (as in CI).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ggml_peer.h"
#include "ggml_test.h"
#include "qf_err.h"
#include "qf_formats.h"
#include "qf_imatrix.h"
#include "qf_rng.h"
#include "test_inputs.h"

#define NCOLS 2048        /* a multiple of every block size (256 for the K-quants) */

static qf_ggml g_ggml;

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    assert_non_null(p);
    return p;
}

static bool have_ggml(void)
{
    return ggml_ref_present(&g_ggml);
}

/* Importance vectors as llama-imatrix produces them, in three shapes: a smooth spread over
 * three decades (mean squared activations of ordinary channels), a few channels 100-1000x
 * the rest (outlier channels), and some columns exactly zero (channels never activated). */
static void fill_importance(float *imp, int64_t n, int shape, qf_rng *r)
{
    for (int64_t j = 0; j < n; j++) {
        double u = qf_rng_uniform(r);
        switch (shape) {
        case 0:
            imp[j] = (float)pow(10.0, 3.0 * u - 1.5);
            break;
        case 1:
            imp[j] = (float)(0.5 + u) * (qf_rng_uniform(r) < 0.02 ? 500.0f : 1.0f);
            break;
        default:
            imp[j] = u < 0.1 ? 0.0f : (float)(u * u);
            break;
        }
    }
}

static const char *const shape_names[] = { "smooth", "spiky", "with-zeros" };

/* --- against ggml ----------------------------------------------------------------------------- */

/* Checks one format on every input family and importance shape; prints the first mismatch. */
static bool check_format(qf_format fmt)
{
    const qf_format_traits *t = qf_format_get(fmt);
    const int type = qf_ggml_type_by_name(&g_ggml, t->name);
    assert_true(type >= 0);
    const size_t rs = qf_format_row_size(fmt, NCOLS);
    float *imp = xmalloc(NCOLS * sizeof *imp);
    qf_rng rng;
    qf_rng_seed(&rng, 0x1a7a1000u + (uint64_t)fmt);
    int64_t blocks = 0;
    bool ok = true;

    for (size_t c = 0; c < qf_test_ncases && ok; c++) {
        const int64_t rows = qf_test_cases[c].rows;
        float *x = xmalloc((size_t)(rows * NCOLS) * sizeof *x);
        uint8_t *ours = xmalloc(rs * (size_t)rows), *theirs = xmalloc(rs * (size_t)rows);
        qf_test_cases[c].fill(x, rows, NCOLS, &rng);
        for (int shape = 0; shape < 3 && ok; shape++) {
            fill_importance(imp, NCOLS, shape, &rng);
            memset(ours, 0xA5, rs * (size_t)rows);      /* every byte must be written */
            memset(theirs, 0x5A, rs * (size_t)rows);
            assert_int_equal(qf_quantize_weighted(fmt, x, ours, rows, NCOLS, imp), 0);
            g_ggml.quantize_init(type);
            size_t n = g_ggml.quantize_chunk(type, x, theirs, 0, rows, NCOLS, imp);
            assert_int_equal(n, rs * (size_t)rows);
            for (size_t i = 0; i < rs * (size_t)rows; i++) {
                if (ours[i] != theirs[i]) {
                    printf("MISMATCH %s, case %s, importance %s: byte %zu differs (row %zu, "
                           "block %zu, byte %zu of the block): ours 0x%02x, ggml 0x%02x\n",
                           t->name, qf_test_cases[c].name, shape_names[shape], i, i / rs,
                           i % rs / t->type_size, i % rs % t->type_size, ours[i], theirs[i]);
                    ok = false;
                    break;
                }
            }
            blocks += rows * NCOLS / t->blck;
        }
        free(x);
        free(ours);
        free(theirs);
    }
    free(imp);
    if (ok)
        printf("%-7s weighted quantize byte-exact with ggml on %" PRId64 " blocks "
               "(%zu input families x 3 importance shapes)\n", t->name, blocks, qf_test_ncases);
    return ok;
}

static void test_weighted_formats_match_ggml(void **state)
{
    (void)state;
    if (!have_ggml())
        skip();
    int n = 0;
    char failed[256] = "";
    for (int f = 0; f < QF_FMT_COUNT; f++) {
        if (!qf_quantize_uses_importance((qf_format)f))
            continue;
        if (!check_format((qf_format)f))
            snprintf(failed + strlen(failed), sizeof failed - strlen(failed), " %s",
                     qf_format_get((qf_format)f)->name);
        n++;
    }
    if (failed[0])
        fail_msg("weighted quantizers that differ from ggml:%s", failed);
    assert_int_equal(n, 10);
}

/* ggml ignores the importance for the formats we do not weight (q8_0 here): same bytes. */
static void test_unweighted_gguf_formats_match_ggml(void **state)
{
    (void)state;
    if (!have_ggml())
        skip();
    const qf_format fmt = QF_FMT_Q8_0;
    const int type = qf_ggml_type_by_name(&g_ggml, "q8_0");
    const int64_t rows = 8;
    const size_t rs = qf_format_row_size(fmt, NCOLS);
    float *x = xmalloc((size_t)(rows * NCOLS) * sizeof *x), *imp = xmalloc(NCOLS * sizeof *imp);
    uint8_t *ours = xmalloc(rs * rows), *theirs = xmalloc(rs * rows);
    qf_rng rng;
    qf_rng_seed(&rng, 7);
    qf_test_fill_gaussian(x, rows, NCOLS, &rng);
    fill_importance(imp, NCOLS, 0, &rng);
    assert_int_equal(qf_quantize_weighted(fmt, x, ours, rows, NCOLS, imp), 0);
    g_ggml.quantize_chunk(type, x, theirs, 0, rows, NCOLS, imp);
    assert_memory_equal(ours, theirs, rs * rows);
    free(x);
    free(imp);
    free(ours);
    free(theirs);
}

/* --- without ggml ----------------------------------------------------------------------------- */

static double weighted_sse(const float *x, const float *y, const float *imp, int64_t rows)
{
    double s = 0;
    for (int64_t i = 0; i < rows * NCOLS; i++) {
        double d = (double)x[i] - y[i];
        s += imp[i % NCOLS] * d * d;
    }
    return s;
}

/* NULL importance is the plain quantizer; with importance, the weighted formats write other
 * bytes and lose less where the importance says it matters; the others ignore it. */
static void test_weighting_changes_and_helps(void **state)
{
    (void)state;
    const int64_t rows = 16;
    float *x = xmalloc((size_t)(rows * NCOLS) * sizeof *x), *imp = xmalloc(NCOLS * sizeof *imp);
    float *y = xmalloc((size_t)(rows * NCOLS) * sizeof *y);
    qf_rng rng;
    qf_rng_seed(&rng, 42);
    qf_test_fill_gaussian(x, rows, NCOLS, &rng);
    fill_importance(imp, NCOLS, 1, &rng);

    for (int f = 0; f < QF_FMT_COUNT; f++) {
        const qf_format fmt = (qf_format)f;
        const qf_format_traits *t = qf_format_get(fmt);
        if (!t->weight || qf_format_check_cols(fmt, NCOLS) != 0)
            continue;
        const size_t bytes = qf_format_row_size(fmt, NCOLS) * (size_t)rows;
        uint8_t *plain = xmalloc(bytes), *none = xmalloc(bytes), *weighted = xmalloc(bytes);
        assert_int_equal(qf_quantize(fmt, x, plain, rows, NCOLS), 0);
        assert_int_equal(qf_quantize_weighted(fmt, x, none, rows, NCOLS, NULL), 0);
        assert_memory_equal(plain, none, bytes);
        assert_int_equal(qf_quantize_weighted(fmt, x, weighted, rows, NCOLS, imp), 0);
        if (!qf_quantize_uses_importance(fmt)) {
            assert_memory_equal(plain, weighted, bytes);
        } else {
            if (memcmp(plain, weighted, bytes) == 0)
                fail_msg("%s: weighting changed no byte", t->name);
            assert_int_equal(qf_dequantize(fmt, plain, y, rows, NCOLS), 0);
            const double e_plain = weighted_sse(x, y, imp, rows);
            assert_int_equal(qf_dequantize(fmt, weighted, y, rows, NCOLS), 0);
            const double e_weighted = weighted_sse(x, y, imp, rows);
            printf("%-7s importance-weighted squared error: plain %.4g, weighted %.4g (%.1f%%)\n",
                   t->name, e_plain, e_weighted, 100.0 * (e_weighted / e_plain - 1.0));
            if (!(e_weighted < e_plain))
                fail_msg("%s: weighted error %.6g not below plain %.6g", t->name, e_weighted,
                         e_plain);
        }
        free(plain);
        free(none);
        free(weighted);
    }
    free(x);
    free(imp);
    free(y);
}

static void test_bad_arguments(void **state)
{
    (void)state;
    float x[256] = {0}, imp[256];
    uint8_t out[sizeof(qf_block_q4_K)];
    for (int j = 0; j < 256; j++)
        imp[j] = 1.0f;
    imp[17] = -1.0f;
    assert_int_equal(qf_quantize_weighted(QF_FMT_Q4_K, x, out, 1, 256, imp), QF_EINVAL);
    imp[17] = NAN;
    assert_int_equal(qf_quantize_weighted(QF_FMT_Q4_K, x, out, 1, 256, imp), QF_EINVAL);
    imp[17] = INFINITY;
    assert_int_equal(qf_quantize_weighted(QF_FMT_Q4_K, x, out, 1, 256, imp), QF_EINVAL);
    imp[17] = 1.0f;
    assert_int_equal(qf_quantize_weighted(QF_FMT_Q4_K, x, out, 1, 128, imp), QF_ESHAPE);
    assert_int_equal(qf_quantize_weighted(QF_FMT_Q4_K, x, out, 0, 256, imp), QF_ESHAPE);
    assert_int_equal(qf_quantize_weighted(QF_FMT_Q4_K, x, out, 1, 256, imp), 0);
}

/* A single block quantizes as it does inside a one-block row (GPTQ calls it that way). */
static void test_single_block(void **state)
{
    (void)state;
    float x[256], imp[256];
    qf_rng rng;
    qf_rng_seed(&rng, 3);
    qf_test_fill_gaussian(x, 1, 256, &rng);
    fill_importance(imp, 256, 0, &rng);
    qf_block_q4_0 b32[8], one;
    assert_int_equal(qf_quantize_weighted(QF_FMT_Q4_0, x, &one, 1, 32, imp), 0);
    assert_int_equal(qf_quantize_weighted(QF_FMT_Q4_0, x, b32, 1, 32, imp), 0);
    assert_memory_equal(&one, &b32[0], sizeof one);
    qf_block_q4_K k1;
    assert_int_equal(qf_quantize_weighted(QF_FMT_Q4_K, x, &k1, 1, 256, imp), 0);
    float y[256];
    assert_int_equal(qf_dequantize(QF_FMT_Q4_K, &k1, y, 1, 256), 0);
    double err = 0, energy = 0;
    for (int j = 0; j < 256; j++) {
        err += (x[j] - y[j]) * (x[j] - y[j]);
        energy += x[j] * x[j];
    }
    if (!(err < 0.02 * energy))
        fail_msg("q4_K weighted block: error %.4g of energy %.4g", err, energy);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_weighted_formats_match_ggml),
        cmocka_unit_test(test_unweighted_gguf_formats_match_ggml),
        cmocka_unit_test(test_weighting_changes_and_helps),
        cmocka_unit_test(test_bad_arguments),
        cmocka_unit_test(test_single_block),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
