/* test_conformance_ggml.c - our GGUF formats against ggml's own code, byte for byte.
 *
 * For every format in our table that has a GGUF type, on seeded random tensors and on edge
 * cases (zero blocks, constant blocks, one huge outlier per block, subnormals, +-65504, mixed
 * signs, tiny and huge row scales), this checks that:
 *   - the format's geometry (type id, block size, bytes per block) is ggml's;
 *   - our reference quantizer writes exactly the bytes ggml's writes (ggml_quantize_chunk, or
 *     quantize_row_*_ref for the activation formats q8_1 and q8_K);
 *   - our dequantizer returns exactly ggml's floats for those bytes;
 *   - our reference dot product agrees with ggml's generic vec_dot to a relative 1e-5 of the
 *     sum of |products| (most agree exactly; the count is printed).
 * ggml comes prebuilt from the npm package @node-llama-cpp/linux-x64 (scripts/fetch-ggml.sh).
 * Without it the test prints SKIPPED loudly, or fails when QF_REQUIRE_GGML=1 (as in CI).
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
#include "qf_formats.h"
#include "qf_rng.h"
#include "qf_synth.h"
#include "test_inputs.h"

#define NCOLS 2048        /* a multiple of every block size (256 for the K-quants) */

static qf_ggml g_ggml;

/* --- helpers ---------------------------------------------------------------------------------- */

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    assert_non_null(p);
    return p;
}

/* Quantizes with ggml: through ggml_quantize_chunk, or the activation formats' row functions,
 * which ggml_quantize_chunk does not take. */
static void ggml_quantize(qf_format fmt, int type, const float *x, void *y, int64_t rows)
{
    const qf_format_traits *t = qf_format_get(fmt);
    if (t->weight) {
        g_ggml.quantize_init(type);
        size_t n = g_ggml.quantize_chunk(type, x, y, 0, rows, NCOLS, NULL);
        assert_int_equal(n, qf_format_row_size(fmt, NCOLS) * (size_t)rows);
        return;
    }
    char sym[64];
    snprintf(sym, sizeof sym, "quantize_row_%s_ref", t->name);
    qf_ggml_from_float q;
    *(void **)&q = qf_ggml_sym(&g_ggml, sym);
    if (!q)
        fail_msg("ggml has no %s", sym);
    q(x, y, rows * NCOLS);
}

static qf_ggml_to_float ggml_dequantizer(qf_format fmt)
{
    const char *name = qf_format_get(fmt)->name;
    char sym[64];
    if (fmt == QF_FMT_F16)
        snprintf(sym, sizeof sym, "ggml_fp16_to_fp32_row");
    else if (fmt == QF_FMT_BF16)
        snprintf(sym, sizeof sym, "ggml_bf16_to_fp32_row");
    else
        snprintf(sym, sizeof sym, "dequantize_row_%s", name);
    qf_ggml_to_float f;
    *(void **)&f = qf_ggml_sym(&g_ggml, sym);
    return f;
}

static qf_ggml_vec_dot ggml_vec_dot(qf_format fmt)
{
    const qf_format_traits *t = qf_format_get(fmt);
    char sym[80];
    if (t->blck == 1)
        snprintf(sym, sizeof sym, "ggml_vec_dot_%s", t->name);
    else
        snprintf(sym, sizeof sym, "ggml_vec_dot_%s_%s_generic", t->name,
                 qf_format_get(t->act)->name);
    qf_ggml_vec_dot f;
    *(void **)&f = qf_ggml_sym(&g_ggml, sym);
    if (!f)
        fail_msg("ggml has no %s", sym);
    return f;
}

static bool have_ggml(void)
{
    return ggml_ref_present(&g_ggml);
}

/* --- tests ------------------------------------------------------------------------------------ */

static void test_geometry(void **state)
{
    (void)state;
    if (!have_ggml())
        skip();
    int checked = 0;
    for (int f = 0; f < QF_FMT_COUNT; f++) {
        const qf_format_traits *t = qf_format_get((qf_format)f);
        if (t->gguf_type < 0)
            continue;
        int type = qf_ggml_type_by_name(&g_ggml, t->name);
        if (type != t->gguf_type)
            fail_msg("%s: our GGUF type id %d, ggml's %d", t->name, t->gguf_type, type);
        assert_int_equal(g_ggml.blck_size(type), t->blck);
        assert_int_equal(g_ggml.type_size(type), t->type_size);
        checked++;
    }
    printf("geometry: %d GGUF formats match ggml's type ids, block sizes and block bytes\n",
           checked);
    assert_true(checked >= 16);
}

/* Checks one format on every case; prints the first mismatch and returns false on any. */
static bool check_format(qf_format fmt)
{
    bool ok = true;
    const qf_format_traits *t = qf_format_get(fmt);
    int type = qf_ggml_type_by_name(&g_ggml, t->name);
    assert_true(type >= 0);
    qf_ggml_to_float deq = ggml_dequantizer(fmt);
    size_t rs = qf_format_row_size(fmt, NCOLS);
    int64_t blocks = 0, dots = 0, dots_exact = 0;
    double worst_dot = 0.0;
    qf_rng rng;
    qf_rng_seed(&rng, 0x5eed0000u + (uint64_t)fmt);

    for (size_t c = 0; c < qf_test_ncases; c++) {
        int64_t rows = qf_test_cases[c].rows, n = rows * NCOLS;
        float *x = xmalloc((size_t)n * sizeof *x);
        uint8_t *ours = xmalloc(rs * (size_t)rows), *theirs = xmalloc(rs * (size_t)rows);
        float *d_ours = xmalloc((size_t)n * sizeof *x), *d_theirs = xmalloc((size_t)n * sizeof *x);
        qf_test_cases[c].fill(x, rows, NCOLS, &rng);
        /* Poison ours: every byte must be written. ggml's q8_K leaves bsums unwritten for an
         * all-zero block (d = 0 makes them irrelevant), so its buffer starts zeroed there and
         * ours must then write those zeros itself. */
        memset(ours, 0xA5, rs * (size_t)rows);
        memset(theirs, fmt == QF_FMT_Q8_K ? 0x00 : 0x5A, rs * (size_t)rows);

        assert_int_equal(qf_quantize(fmt, x, ours, rows, NCOLS), 0);
        ggml_quantize(fmt, type, x, theirs, rows);
        for (size_t i = 0; i < rs * (size_t)rows; i++) {
            if (ours[i] != theirs[i]) {
                size_t row = i / rs, in_row = i % rs;
                size_t blk_bytes = t->blck ? t->type_size : rs;
                printf("MISMATCH %s, case %s: byte %zu differs (row %zu, block %zu, byte %zu of "
                       "the block): ours 0x%02x, ggml 0x%02x\n", t->name, qf_test_cases[c].name, i, row,
                       in_row / blk_bytes, in_row % blk_bytes, ours[i], theirs[i]);
                ok = false;
                break;
            }
        }
        blocks += t->blck ? n / t->blck : rows;

        if (deq) {
            assert_int_equal(qf_dequantize(fmt, ours, d_ours, rows, NCOLS), 0);
            deq(theirs, d_theirs, n);
            for (int64_t i = 0; i < n; i++) {
                if (memcmp(&d_ours[i], &d_theirs[i], sizeof(float)) != 0) {
                    printf("MISMATCH %s, case %s: dequantized weight %" PRId64 " differs: ours "
                           "%.9g, ggml %.9g\n", t->name, qf_test_cases[c].name, i, (double)d_ours[i],
                           (double)d_theirs[i]);
                    ok = false;
                    break;
                }
            }
        }

        if (t->vec_dot_ref) {
            qf_ggml_vec_dot vd = ggml_vec_dot(fmt);
            const qf_format_traits *a = qf_format_get(t->act);
            void *act = xmalloc(qf_format_row_size(t->act, NCOLS));
            float *xa = xmalloc(NCOLS * sizeof *xa), *da = xmalloc(NCOLS * sizeof *da);
            qf_test_fill_gaussian(xa, 1, NCOLS, &rng);
            a->quantize_ref(xa, act, NCOLS);
            a->dequantize(act, da, NCOLS);
            for (int64_t r = 0; r < rows; r++) {
                float s_ours = 0, s_theirs = 0;
                t->vec_dot_ref(NCOLS, ours + (size_t)r * rs, act, &s_ours);
                vd(NCOLS, &s_theirs, 0, ours + (size_t)r * rs, 0, act, 0, 1);
                double mag = 0;
                for (int64_t i = 0; i < NCOLS; i++)
                    mag += fabs((double)d_ours[r * NCOLS + i] * da[i]);
                double diff = fabs((double)s_ours - s_theirs);
                double rel = mag > 0 ? diff / mag : diff;
                if (!(rel <= 1e-5) && ok) {
                    printf("MISMATCH %s, case %s, row %" PRId64 ": vec_dot ours %.9g, ggml %.9g "
                           "(difference %.3g of sum|w*a| %.6g)\n", t->name, qf_test_cases[c].name, r,
                           (double)s_ours, (double)s_theirs, diff, mag);
                    ok = false;
                }
                worst_dot = fmax(worst_dot, rel);
                dots++;
                dots_exact += s_ours == s_theirs;
            }
            free(act);
            free(xa);
            free(da);
        }
        free(x);
        free(ours);
        free(theirs);
        free(d_ours);
        free(d_theirs);
    }
    if (!ok)
        return false;
    printf("%-7s quantize byte-exact on %" PRId64 " blocks in %zu cases; dequantize %s",
           t->name, blocks, qf_test_ncases, deq ? "bit-exact" : "(ggml exports no dequantizer)");
    if (t->vec_dot_ref)
        printf("; vec_dot %" PRId64 "/%" PRId64 " exact, worst %.2g of sum|w*a|",
               dots_exact, dots, worst_dot);
    printf("\n");
    return true;
}

static void test_all_gguf_formats(void **state)
{
    (void)state;
    if (!have_ggml())
        skip();
    int n = 0;
    char failed[512] = "";
    for (int f = 0; f < QF_FMT_COUNT; f++) {
        const qf_format_traits *t = qf_format_get((qf_format)f);
        if (t->gguf_type < 0)
            continue;
        if (!check_format((qf_format)f))
            snprintf(failed + strlen(failed), sizeof failed - strlen(failed), " %s", t->name);
        n++;
    }
    if (failed[0])
        fail_msg("formats that differ from ggml:%s", failed);
    assert_true(n >= 16);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_geometry),
        cmocka_unit_test(test_all_gguf_formats),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
