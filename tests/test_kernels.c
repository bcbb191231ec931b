/* test_kernels.c - every fast kernel against the reference, on every ISA this host runs.
 *
 * For each ISA the build has and the CPU runs (qf_isa_host_supports), each slot the ISA
 * implements itself (qf_kernels_own) is checked on the input families of test_inputs.h, at
 * several row lengths (one block, an odd number of blocks, 2048 and 4096 columns: SIMD loops
 * that take two or four blocks a step must get their tails right):
 *   - quantize: byte-exact with the reference for the deterministic formats; for the K-quants
 *     and iq4_nl, byte-exact or a reconstruction RMSE at most 0.5% above the reference's (the
 *     count of exact rows is printed);
 *   - dequantize: bit-exact on the reference's bytes;
 *   - vec_dot: within 1e-5 of sum |w_i a_i| of the reference (on Gaussian activations and on
 *     the weights' own family), NaN never passes unless the reference itself overflows to NaN
 *     on the same input (f16-max through q8_1's f16 block sums, as in ggml).
 * Outputs are poisoned before every call, so a kernel that skips a byte or a float is caught.
 * Then the dispatch itself: names, fallbacks and refusal of an ISA the host can't run.
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

#include "qf_err.h"
#include "qf_kernels.h"
#include "test_inputs.h"

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    assert_non_null(p);
    return p;
}

/* Formats whose quantizer is plain deterministic rounding: any correct kernel writes the
 * reference's bytes. The others search for scales, where a reassociated float sum may pick
 * a different but as good candidate. */
static bool exact_quantize(qf_format fmt)
{
    switch (fmt) {
    case QF_FMT_Q2_K: case QF_FMT_Q3_K: case QF_FMT_Q4_K: case QF_FMT_Q5_K: case QF_FMT_Q6_K:
    case QF_FMT_IQ4_NL:
        return false;
    default:
        return true;
    }
}

static double rmse(const float *x, const float *y, int64_t n)
{
    double s = 0;
    for (int64_t i = 0; i < n; i++) {
        double d = (double)x[i] - y[i];
        s += d * d;
    }
    return sqrt(s / (double)n);
}

typedef struct tally {
    int64_t rows, rows_exact, dots, dots_exact;
    double  worst_rmse_ratio, worst_dot;
    bool    ok;
} tally;

/* One ISA's own slots of one format on one input family at one row length. */
static void check_case(qf_isa isa, qf_format fmt, const qf_test_case *tc, int64_t ncols,
                       int64_t rows, qf_rng *rng, tally *t)
{
    const qf_format_traits *tr = qf_format_get(fmt);
    const qf_isa_kernels *own = qf_kernels_own(isa, fmt);
    size_t rs = qf_format_row_size(fmt, ncols);
    int64_t n = rows * ncols;
    float *x = xmalloc((size_t)n * sizeof *x);
    uint8_t *q_ref = xmalloc(rs * (size_t)rows), *q_isa = xmalloc(rs * (size_t)rows);
    float *d_ref = xmalloc((size_t)n * sizeof *x), *d_isa = xmalloc((size_t)n * sizeof *x);
    tc->fill(x, rows, ncols, rng);
    assert_int_equal(qf_quantize(fmt, x, q_ref, rows, ncols), 0);
    assert_int_equal(qf_dequantize(fmt, q_ref, d_ref, rows, ncols), 0);

    if (own->quantize) {
        memset(q_isa, 0xA5, rs * (size_t)rows);
        for (int64_t r = 0; r < rows; r++)
            own->quantize(x + r * ncols, q_isa + (size_t)r * rs, ncols);
        for (int64_t r = 0; r < rows && t->ok; r++) {
            const uint8_t *a = q_ref + (size_t)r * rs, *b = q_isa + (size_t)r * rs;
            t->rows++;
            if (memcmp(a, b, rs) == 0) {
                t->rows_exact++;
                continue;
            }
            size_t i = 0;
            while (a[i] == b[i])
                i++;
            if (exact_quantize(fmt)) {
                fail_msg("%s %s quantize, case %s, %" PRId64 " cols, row %" PRId64 ": byte %zu "
                         "is 0x%02x, the reference wrote 0x%02x", qf_isa_name(isa), tr->name,
                         tc->name, ncols, r, i, b[i], a[i]);
            }
            /* within +0.5% of the reference's reconstruction error */
            tr->dequantize(b, d_isa + r * ncols, ncols);
            double e_ref = rmse(x + r * ncols, d_ref + r * ncols, ncols);
            double e_isa = rmse(x + r * ncols, d_isa + r * ncols, ncols);
            double ratio = e_ref > 0 ? e_isa / e_ref : (e_isa > 0 ? INFINITY : 1.0);
            if (!(ratio <= 1.005))
                fail_msg("%s %s quantize, case %s, %" PRId64 " cols, row %" PRId64 ": RMSE %.6g "
                         "vs the reference's %.6g (%.3f%% worse; at most 0.5%% allowed)",
                         qf_isa_name(isa), tr->name, tc->name, ncols, r, e_isa, e_ref,
                         100.0 * (ratio - 1.0));
            if (ratio > t->worst_rmse_ratio)
                t->worst_rmse_ratio = ratio;
        }
    }

    if (own->dequantize) {
        for (int64_t i = 0; i < n; i++)
            d_isa[i] = NAN;
        for (int64_t r = 0; r < rows; r++)
            own->dequantize(q_ref + (size_t)r * rs, d_isa + r * ncols, ncols);
        for (int64_t i = 0; i < n; i++)
            if (memcmp(&d_isa[i], &d_ref[i], sizeof(float)) != 0)
                fail_msg("%s %s dequantize, case %s, %" PRId64 " cols: weight %" PRId64 " is "
                         "%.9g, the reference decodes %.9g", qf_isa_name(isa), tr->name,
                         tc->name, ncols, i, (double)d_isa[i], (double)d_ref[i]);
    }

    if (own->vec_dot && tr->vec_dot_ref) {
        const qf_format_traits *at = qf_format_get(tr->act);
        void *act = xmalloc(qf_format_row_size(tr->act, ncols));
        float *xa = xmalloc((size_t)ncols * sizeof *xa), *da = xmalloc((size_t)ncols * sizeof *da);
        for (int pass = 0; pass < 2; pass++) {
            /* Gaussian activations, then the same family as the weights (outliers, extremes) */
            if (pass == 0)
                qf_test_fill_gaussian(xa, 1, ncols, rng);
            else
                tc->fill(xa, 1, ncols, rng);
            at->quantize_ref(xa, act, ncols);
            at->dequantize(act, da, ncols);
            for (int64_t r = 0; r < rows; r++) {
                float s_ref = NAN, s_isa = NAN;
                tr->vec_dot_ref(ncols, q_ref + (size_t)r * rs, act, &s_ref);
                own->vec_dot(ncols, q_ref + (size_t)r * rs, act, &s_isa);
                double mag = 0;
                for (int64_t i = 0; i < ncols; i++)
                    mag += fabs((double)d_ref[r * ncols + i] * da[i]);
                double diff = fabs((double)s_isa - s_ref);
                double rel = mag > 0 ? diff / mag : diff;
                /* f16-max rows overflow: q8_1's f16 block sum becomes inf, and the reference
                 * itself returns inf or NaN (inf * 0), as ggml does; the ISA must do the same */
                if ((isinf(s_ref) && s_isa == s_ref) || (isnan(s_ref) && isnan(s_isa)))
                    rel = 0;
                if (!(rel <= 1e-5))
                    fail_msg("%s %s vec_dot, case %s (activations %s), %" PRId64 " cols, row %"
                             PRId64 ": %.9g, the reference %.9g (difference %.3g of sum|w*a| "
                             "%.6g)", qf_isa_name(isa), tr->name, tc->name,
                             pass ? tc->name : "gaussian", ncols, r, (double)s_isa,
                             (double)s_ref, diff, mag);
                t->dots++;
                t->dots_exact += s_isa == s_ref;
                if (rel > t->worst_dot)
                    t->worst_dot = rel;
            }
        }
        free(act);
        free(xa);
        free(da);
    }
    free(x);
    free(q_ref);
    free(q_isa);
    free(d_ref);
    free(d_isa);
}

/* The smallest row every format of the table takes, and the lengths tested as multiples. */
static int64_t col_unit(qf_format fmt)
{
    int64_t unit = 32;
    const qf_format_traits *t = qf_format_get(fmt);
    if (t->blck > unit)
        unit = t->blck;
    if (t->vec_dot_ref && qf_format_get(t->act)->blck > unit)
        unit = qf_format_get(t->act)->blck;
    return unit;
}

static void test_every_isa_against_ref(void **state)
{
    (void)state;
    int isas_run = 0;
    for (int i = QF_ISA_REF + 1; i < QF_ISA_COUNT; i++) {
        qf_isa isa = (qf_isa)i;
        if (!qf_isa_host_supports(isa)) {
            printf("%-6s not run on this host (features: %s)\n", qf_isa_name(isa),
                   qf_isa_host_features());
            continue;
        }
        isas_run++;
        for (int f = 0; f < QF_FMT_COUNT; f++) {
            qf_format fmt = (qf_format)f;
            const qf_isa_kernels *own = qf_kernels_own(isa, fmt);
            if (!own->quantize && !own->dequantize && !own->vec_dot)
                continue;
            tally t = { .ok = true, .worst_rmse_ratio = 1.0 };
            qf_rng rng;
            qf_rng_seed(&rng, 0x15a0000u + (uint64_t)(i * 100 + f));
            int64_t unit = col_unit(fmt);
            const int64_t lengths[] = { unit, 3 * unit, 2048, 4096 };
            for (size_t l = 0; l < sizeof lengths / sizeof lengths[0]; l++) {
                int64_t ncols = lengths[l];
                if (ncols % unit != 0)
                    continue;
                for (size_t c = 0; c < qf_test_ncases; c++) {
                    int64_t rows = qf_test_cases[c].rows;
                    if (ncols >= 2048)
                        rows = rows > 8 ? 8 : rows;      /* long rows: fewer of them */
                    check_case(isa, fmt, &qf_test_cases[c], ncols, rows, &rng, &t);
                }
            }
            printf("%-6s %-8s %s%s%s", qf_isa_name(isa), qf_format_get(fmt)->name,
                   own->quantize ? "quantize" : "", own->dequantize ? " dequantize" : "",
                   own->vec_dot ? " vec_dot" : "");
            if (own->quantize)
                printf(" | quantize %" PRId64 "/%" PRId64 " rows byte-exact, worst RMSE %+.3f%%",
                       t.rows_exact, t.rows, 100.0 * (t.worst_rmse_ratio - 1.0));
            if (own->vec_dot)
                printf(" | vec_dot %" PRId64 "/%" PRId64 " exact, worst %.2g of sum|w*a|",
                       t.dots_exact, t.dots, t.worst_dot);
            printf("\n");
        }
    }
    if (!isas_run)
        printf("no fast ISA runs on this host: only the reference is in use\n");
}

static void test_dispatch(void **state)
{
    (void)state;
    qf_isa isa;
    for (int i = 0; i < QF_ISA_COUNT; i++) {
        assert_int_equal(qf_isa_from_name(qf_isa_name((qf_isa)i), &isa), 0);
        assert_int_equal(isa, i);
    }
    assert_int_equal(qf_isa_from_name("sse9", &isa), QF_EUSAGE);
    assert_true(qf_isa_host_supports(QF_ISA_REF));
    assert_true(qf_isa_host_supports(qf_isa_best()));

    /* the reference set is the format table's */
    qf_kernel_set ks;
    assert_int_equal(qf_kernels_get(QF_ISA_REF, QF_FMT_Q4_0, &ks), 0);
    assert_ptr_equal(ks.quantize, qf_format_get(QF_FMT_Q4_0)->quantize_ref);
    assert_ptr_equal(ks.vec_dot, qf_format_get(QF_FMT_Q4_0)->vec_dot_ref);
    assert_ptr_equal(ks.quantize_act, qf_format_get(QF_FMT_Q8_0)->quantize_ref);
    assert_int_equal(ks.from_vec_dot, QF_ISA_REF);

    /* every supported ISA resolves every slot, each from an ISA at or below it */
    for (int i = 0; i < QF_ISA_COUNT; i++) {
        if (!qf_isa_host_supports((qf_isa)i))
            continue;
        for (int f = 0; f < QF_FMT_COUNT; f++) {
            const qf_format_traits *t = qf_format_get((qf_format)f);
            assert_int_equal(qf_kernels_get((qf_isa)i, (qf_format)f, &ks), 0);
            assert_non_null(ks.quantize);
            assert_non_null(ks.dequantize);
            if (t->vec_dot_ref) {
                assert_non_null(ks.vec_dot);
                assert_non_null(ks.quantize_act);
            }
            const qf_isa_kernels *own = qf_kernels_own(ks.from_quantize, (qf_format)f);
            if (ks.from_quantize != QF_ISA_REF)
                assert_ptr_equal(ks.quantize, own->quantize);
            assert_true(ks.from_quantize <= (qf_isa)i && ks.from_vec_dot <= (qf_isa)i);
        }
    }

    /* an ISA the host can't run is refused with its name */
    for (int i = 0; i < QF_ISA_COUNT; i++)
        if (!qf_isa_host_supports((qf_isa)i)) {
            assert_int_equal(qf_kernels_get((qf_isa)i, QF_FMT_Q8_0, &ks), QF_EUNSUP);
        }
    printf("best ISA here: %s (features: %s)\n", qf_isa_name(qf_isa_best()),
           qf_isa_host_features());
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_dispatch),
        cmocka_unit_test(test_every_isa_against_ref),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
