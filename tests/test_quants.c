/* test_quants.c - reference quantizers, decoders and dot products, one table row per format.
 *
 * Each format in k_cases states its column multiple, its row size, a per-element error bound
 * computed from the quantized row itself (so the bound is as tight as the format's rules
 * allow, and checks the stored scales against their definition on the way), and which
 * properties it promises (zero row -> zero bytes, 0 decodes exactly, NaN decodes to 0). Every
 * test runs over the whole table on a set of named inputs, so adding a format is adding a row
 * and, when its error rule differs, a bounds function. The matvec check needs the format's
 * activation quantizer (q8_0 for the int formats, from legacy.c). Hand-computed byte layouts
 * for a format go in their own test at the end. Buffers are static, sized by ROW_MAX.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <inttypes.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qf_err.h"
#include "qf_formats.h"
#include "qf_rng.h"
#include "qf_synth.h"

/* Fills bound[i] with the largest |x_i - decoded_i| the format allows for this quantized
 * row, failing the test if a stored scale disagrees with the format's definition. */
typedef void (*bounds_fn)(const float *x, const void *qrow, int64_t k, double *bound);

typedef struct quant_case {
    qf_format fmt;
    int64_t   multiple;         /* ncols must be a multiple of this */
    size_t    row_bytes_256;    /* qf_format_row_size(fmt, 256) */
    bool      zero_row_zero_bytes;
    bool      zero_exact;       /* an input 0 decodes to exactly 0 */
    bool      nan_to_zero;      /* a NaN weight decodes to 0, its neighbours unharmed */
    bounds_fn bounds;
} quant_case;

#define K 256                   /* columns in every test row: a multiple of every group */
/* Room for one quantized row of k weights in any format: f32 (4 bytes each) is the widest. */
#define ROW_MAX(k) (4 * (k) + 64)

/* The static buffers below are sized with ROW_MAX; a new format must fit. */
static size_t row_size_checked(qf_format fmt, int64_t k)
{
    size_t rs = qf_format_row_size(fmt, k);
    assert_true(rs <= (size_t)ROW_MAX(k));
    return rs;
}

/* --- per-format error bounds --------------------------------------------------------------- */

static float le_f32(const uint8_t *p)
{
    uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                 (uint32_t)p[3] << 24;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* int8_pc: scale = amax/127 to binary32 rounding; |x - scale q| <= scale/2, plus the roundings
 * of x/scale and scale*q (each 2^-24 relative of something no larger than amax). */
static void bounds_int8_pc(const float *x, const void *qrow, int64_t k, double *bound)
{
    double amax = 0;
    for (int64_t i = 0; i < k; i++)
        amax = fmax(amax, fabs(x[i]));
    double scale = le_f32(qrow);
    if (!(fabs(scale - amax / 127) <= amax / 127 * 0x1p-23))
        fail_msg("int8_pc: stored scale %.9g, want amax/127 = %.9g", scale, amax / 127);
    for (int64_t i = 0; i < k; i++)
        bound[i] = 0.5 * scale + amax * 0x1p-21;
}

/* int4_gG: with d the stored f16 step and d* = (hi - lo)/15 the exact one, the grid
 * d (0 - z) .. d (15 - z) covers [lo, hi] to within d/2 + 15 |d - d*| (the rounding of d to
 * f16 can leave the range's far end outside the grid by 15 |d - d*|); binary32 roundings of
 * the divisions add a few ulps of max |x|. */
static void bounds_int4(const float *x, const void *qrow, int64_t k, double *bound, int g)
{
    const uint8_t *blk = qrow;
    for (int64_t b = 0; b < k / g; b++, blk += 3 + g / 2) {
        double lo = 0, hi = 0;
        for (int j = 0; j < g; j++) {
            lo = fmin(lo, x[b * g + j]);
            hi = fmax(hi, x[b * g + j]);
        }
        double dx = (hi - lo) / 15;
        double d = qf_fp16_to_fp32((qf_half)(blk[0] | blk[1] << 8));
        /* f16 rounding: 2^-11 relative when normal, 2^-25 absolute when subnormal */
        if (!(fabs(d - dx) <= fmax(dx * 0x1p-11, 0x1p-25) * (1 + 0x1p-20)))
            fail_msg("int4_g%d group %" PRId64 ": stored d %.9g, want fp16((hi-lo)/15) = %.9g",
                     g, b, d, dx);
        if (d == 0 && (blk[2] != 0))
            fail_msg("int4_g%d group %" PRId64 ": d = 0 but z = %d", g, b, blk[2]);
        for (int j = 0; j < g; j++)
            bound[b * g + j] = d / 2 + 15 * fabs(d - dx) + fmax(-lo, hi) * 0x1p-20;
    }
}

static void bounds_int4_g32(const float *x, const void *q, int64_t k, double *b)
{
    bounds_int4(x, q, k, b, 32);
}
static void bounds_int4_g64(const float *x, const void *q, int64_t k, double *b)
{
    bounds_int4(x, q, k, b, 64);
}
static void bounds_int4_g128(const float *x, const void *q, int64_t k, double *b)
{
    bounds_int4(x, q, k, b, 128);
}

static const quant_case k_cases[] = {
    /* format          multiple  row bytes (K=256)  0 row->0 bytes, 0 exact, NaN->0, bound */
    { QF_FMT_INT8_PC,   32,  4 + 256,              true, true, true, bounds_int8_pc },
    { QF_FMT_INT4_G32,  32,  256 / 32 * (3 + 16),  true, true, true, bounds_int4_g32 },
    { QF_FMT_INT4_G64,  64,  256 / 64 * (3 + 32),  true, true, true, bounds_int4_g64 },
    { QF_FMT_INT4_G128, 128, 256 / 128 * (3 + 64), true, true, true, bounds_int4_g128 },
};
#define N_CASES (sizeof k_cases / sizeof k_cases[0])

static const char *name_of(const quant_case *c)
{
    return qf_format_get(c->fmt)->name;
}

/* --- inputs -------------------------------------------------------------------------------- */

enum { IN_GAUSS_OUTLIERS, IN_LAPLACE, IN_STUDENT_T, IN_POSITIVE, IN_NEGATIVE, IN_TINY,
       IN_SUB_F16, IN_LARGE, IN_CONSTANT, IN_SPIKE, IN_HALVES, IN_COUNT };
static const char *const k_input_names[IN_COUNT] = {
    "gaussian+outliers", "laplace", "student-t", "all positive", "all negative",
    "tiny (f16 subnormal steps)", "below f16 resolution", "large", "constant", "one spike",
    "half-integers",
};

/* nrows x K floats of the given kind, seeded. */
static void make_input(int kind, float *x, int64_t nrows, uint64_t seed)
{
    qf_rng r;
    qf_rng_seed(&r, seed);
    qf_synth_params p = qf_synth_defaults(QF_SYNTH_GAUSSIAN, seed);
    switch (kind) {
    case IN_GAUSS_OUTLIERS:
        assert_int_equal(qf_synth_fill(&p, x, nrows, K), 0);
        return;
    case IN_LAPLACE:
        p.dist = QF_SYNTH_LAPLACE;
        assert_int_equal(qf_synth_fill(&p, x, nrows, K), 0);
        return;
    case IN_STUDENT_T:
        p.dist = QF_SYNTH_STUDENT_T;
        p.student_nu = 3;
        assert_int_equal(qf_synth_fill(&p, x, nrows, K), 0);
        return;
    default:
        break;
    }
    for (int64_t i = 0; i < nrows * K; i++) {
        double u = qf_rng_uniform(&r);
        switch (kind) {
        case IN_POSITIVE: x[i] = (float)(0.1 + u); break;
        case IN_NEGATIVE: x[i] = (float)(-0.1 - u); break;
        case IN_TINY:     x[i] = (float)((u - 0.3) * 1e-5); break;
        case IN_SUB_F16:  x[i] = (float)((u - 0.5) * 1e-8); break;   /* int4 d rounds to 0 */
        case IN_LARGE:    x[i] = (float)((u - 0.5) * 2000.0); break;
        case IN_CONSTANT: x[i] = 0.3f; break;
        case IN_SPIKE:    x[i] = (i % 97 == 5) ? 100.0f : (float)((u - 0.5) * 0.01); break;
        case IN_HALVES:   x[i] = (float)(floor(u * 31) - 15) * 0.5f; break;
        default:          fail();
        }
    }
}

/* --- tests over the table ------------------------------------------------------------------ */

static void test_geometry(void **state)
{
    (void)state;
    for (size_t c = 0; c < N_CASES; c++) {
        const quant_case *tc = &k_cases[c];
        if (qf_format_row_size(tc->fmt, K) != tc->row_bytes_256)
            fail_msg("%s: row of %d is %zu bytes, want %zu", name_of(tc), K,
                     qf_format_row_size(tc->fmt, K), tc->row_bytes_256);
        assert_int_equal(qf_format_check_cols(tc->fmt, tc->multiple), 0);
        assert_int_equal(qf_format_check_cols(tc->fmt, 4 * tc->multiple), 0);
    }
    /* the bits per weight the tables print */
    static const struct { qf_format fmt; double bpw, nominal; } bpw[] = {
        { QF_FMT_INT8_PC,   8.0 + 32.0 / 4096, 8.0 },
        { QF_FMT_INT4_G32,  4.75,   4.75 },
        { QF_FMT_INT4_G64,  4.375,  4.375 },
        { QF_FMT_INT4_G128, 4.1875, 4.1875 },
    };
    for (size_t i = 0; i < sizeof bpw / sizeof bpw[0]; i++) {
        const char *name = qf_format_get(bpw[i].fmt)->name;
        if (qf_format_bpw(bpw[i].fmt, 4096) != bpw[i].bpw)
            fail_msg("%s: bpw at 4096 cols %.9g, want %.9g", name,
                     qf_format_bpw(bpw[i].fmt, 4096), bpw[i].bpw);
        if (qf_format_bpw_nominal(bpw[i].fmt) != bpw[i].nominal)
            fail_msg("%s: nominal bpw %.9g, want %.9g", name,
                     qf_format_bpw_nominal(bpw[i].fmt), bpw[i].nominal);
    }
}

static void test_roundtrip_bound(void **state)
{
    (void)state;
    enum { R = 8 };
    static float x[R * K], y[R * K];
    static double bound[K];
    static uint8_t q[R * ROW_MAX(K)];
    for (size_t c = 0; c < N_CASES; c++) {
        const quant_case *tc = &k_cases[c];
        size_t rs = row_size_checked(tc->fmt, K);
        for (int in = 0; in < IN_COUNT; in++) {
            make_input(in, x, R, 1000 + (uint64_t)in);
            assert_int_equal(qf_quantize(tc->fmt, x, q, R, K), 0);
            assert_int_equal(qf_dequantize(tc->fmt, q, y, R, K), 0);
            for (int64_t r = 0; r < R; r++) {
                tc->bounds(x + r * K, q + r * rs, K, bound);
                for (int64_t i = 0; i < K; i++) {
                    double e = fabs((double)x[r * K + i] - y[r * K + i]);
                    if (!(e <= bound[i]))
                        fail_msg("%s, input %s, row %" PRId64 " col %" PRId64 ": x = %.9g "
                                 "decodes to %.9g, error %.3g > bound %.3g", name_of(tc),
                                 k_input_names[in], r, i, x[r * K + i], y[r * K + i], e,
                                 bound[i]);
                }
            }
        }
    }
}

static void test_zero_rows(void **state)
{
    (void)state;
    static float x[2 * K], y[2 * K];
    static uint8_t q[2 * ROW_MAX(K)];
    memset(x, 0, sizeof x);
    x[K + 3] = -0.0f;                   /* quantizes like +0 (a float format may keep it) */
    for (size_t c = 0; c < N_CASES; c++) {
        const quant_case *tc = &k_cases[c];
        size_t rs = row_size_checked(tc->fmt, K);
        memset(q, 0xa5, sizeof q);
        for (int i = 0; i < 2 * K; i++)
            y[i] = 1.0f;
        assert_int_equal(qf_quantize(tc->fmt, x, q, 2, K), 0);
        assert_int_equal(qf_dequantize(tc->fmt, q, y, 2, K), 0);
        for (int i = 0; i < 2 * K; i++)
            if (y[i] != 0.0f)
                fail_msg("%s: zero row decodes to %g at %d", name_of(tc), y[i], i);
        if (tc->zero_row_zero_bytes)
            for (size_t i = 0; i < 2 * rs; i++)
                if (q[i] != 0)
                    fail_msg("%s: zero row byte %zu is 0x%02x, want 0", name_of(tc), i, q[i]);
    }
}

static void test_zero_exact(void **state)
{
    (void)state;
    enum { R = 8 };
    static float x[R * K], y[R * K];
    static uint8_t q[R * ROW_MAX(K)];
    for (size_t c = 0; c < N_CASES; c++) {
        const quant_case *tc = &k_cases[c];
        if (!tc->zero_exact)
            continue;
        row_size_checked(tc->fmt, K);
        for (int in = 0; in < IN_COUNT; in++) {
            make_input(in, x, R, 77 + (uint64_t)in);
            for (int i = 0; i < R * K; i += 7)  /* zeros among any values, in every group */
                x[i] = 0.0f;
            assert_int_equal(qf_quantize(tc->fmt, x, q, R, K), 0);
            assert_int_equal(qf_dequantize(tc->fmt, q, y, R, K), 0);
            for (int i = 0; i < R * K; i += 7)
                if (y[i] != 0.0f)
                    fail_msg("%s, input %s: 0 at %d decodes to %.9g", name_of(tc),
                             k_input_names[in], i, y[i]);
        }
    }
}

/* The reference matvec (weights in the format, activations quantized to its act format)
 * against a double dot product of the decoded weights with the decoded activations: the
 * integer sums are exact, so the only difference is binary32 rounding of the per-block
 * scaling and accumulation, bounded relative to sum |w_i a_i|. */
static void test_matvec_vs_double(void **state)
{
    (void)state;
    enum { NC = 4 * K, R = IN_COUNT };   /* one weight row per input kind */
    static float w[R * NC], wd[R * NC], a[NC], ad[NC], y[R];
    static uint8_t q[R * ROW_MAX(NC)], qa[ROW_MAX(NC)];
    static float tmp[R * NC];
    for (int in = 0; in < IN_COUNT; in++) {
        make_input(in, tmp, 4, 500 + (uint64_t)in);      /* 4 x K = one row of NC */
        memcpy(w + in * NC, tmp, NC * sizeof *w);
    }
    qf_rng r;
    qf_rng_seed(&r, 4242);
    for (int i = 0; i < NC; i++)
        a[i] = (float)qf_rng_normal(&r);

    for (size_t c = 0; c < N_CASES; c++) {
        const quant_case *tc = &k_cases[c];
        qf_format act = qf_format_get(tc->fmt)->act;
        row_size_checked(tc->fmt, NC);
        row_size_checked(act, NC);
        assert_int_equal(qf_quantize(tc->fmt, w, q, R, NC), 0);
        assert_int_equal(qf_dequantize(tc->fmt, q, wd, R, NC), 0);
        assert_int_equal(qf_quantize(act, a, qa, 1, NC), 0);
        assert_int_equal(qf_dequantize(act, qa, ad, 1, NC), 0);
        assert_int_equal(qf_matvec_ref(tc->fmt, q, a, y, R, NC), 0);
        for (int row = 0; row < R; row++) {
            double dot = 0, mag = 0;
            for (int i = 0; i < NC; i++) {
                dot += (double)wd[row * NC + i] * ad[i];
                mag += fabs((double)wd[row * NC + i] * ad[i]);
            }
            if (!(fabs(y[row] - dot) <= 1e-5 * mag + 1e-30))
                fail_msg("%s, weights %s: matvec %.9g, double dot of decodes %.9g "
                         "(|diff| %.3g > 1e-5 * sum|w a| = %.3g)", name_of(tc),
                         k_input_names[row], y[row], dot, fabs(y[row] - dot), 1e-5 * mag);
            if (mag == 0 && y[row] != 0)
                fail_msg("%s: zero product row gives %g", name_of(tc), y[row]);
        }
    }
}

static void test_shapes_refused(void **state)
{
    (void)state;
    static float x[4 * 1024], y[4];
    static uint8_t q[8 * 1024];
    for (size_t c = 0; c < N_CASES; c++) {
        const quant_case *tc = &k_cases[c];
        const int64_t bad[] = { tc->multiple / 2, tc->multiple + 16, 3 * tc->multiple / 2, 1,
                                0, -tc->multiple };
        for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
            if (bad[i] > 0 && bad[i] % tc->multiple == 0)
                continue;                       /* a valid width for this format */
            memset(q, 0x5a, sizeof q);
            int err = qf_quantize(tc->fmt, x, q, 2, bad[i]);
            if (err != QF_ESHAPE)
                fail_msg("%s: quantize with %" PRId64 " cols gave %s, want QF_ESHAPE",
                         name_of(tc), bad[i], qf_err_name(err));
            assert_int_equal(q[0], 0x5a);       /* nothing written */
            assert_int_equal(qf_dequantize(tc->fmt, q, x, 2, bad[i]), QF_ESHAPE);
            assert_int_equal(qf_matvec_ref(tc->fmt, q, x, y, 2, bad[i]), QF_ESHAPE);
        }
        assert_int_equal(qf_quantize(tc->fmt, x, q, 0, tc->multiple), QF_ESHAPE);
    }
}

static void test_nan_decodes_to_zero(void **state)
{
    (void)state;
    /* Not a supported input, but it must not be undefined behaviour (the sanitizer build
     * checks the float-to-int conversions) and must not spread to the rest of the row. */
    static float x[K], y[K];
    static uint8_t q[ROW_MAX(K)];
    for (size_t c = 0; c < N_CASES; c++) {
        const quant_case *tc = &k_cases[c];
        if (!tc->nan_to_zero)
            continue;
        row_size_checked(tc->fmt, K);
        for (int i = 0; i < K; i++)
            x[i] = (float)(i % 9) * 0.25f - 1.0f;
        x[10] = NAN;
        assert_int_equal(qf_quantize(tc->fmt, x, q, 1, K), 0);
        assert_int_equal(qf_dequantize(tc->fmt, q, y, 1, K), 0);
        if (y[10] != 0.0f)
            fail_msg("%s: NaN decodes to %g, want 0", name_of(tc), y[10]);
        for (int i = 0; i < K; i++)
            if (i != 10 && !(fabs(x[i] - y[i]) <= 0.1))
                fail_msg("%s: x[%d] = %g decodes to %g next to a NaN", name_of(tc), i, x[i],
                         y[i]);
    }
}

/* --- hand-computed layouts ----------------------------------------------------------------- */

static void assert_bytes(const char *what, const uint8_t *got, const uint8_t *want, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (got[i] != want[i])
            fail_msg("%s: byte %zu is 0x%02x, want 0x%02x", what, i, got[i], want[i]);
}

static void test_int8_pc_layout(void **state)
{
    (void)state;
    /* amax 127 -> scale 1.0f (bytes 00 00 80 3f); round half away from zero: 0.5 -> 1,
     * -0.5 -> -1, 2.5 -> 3, -63.5 -> -64; 126.49 -> 126. */
    float x[32] = { 127, -127, 0.5f, -0.5f, 2.5f, -63.5f, 126.49f, 0.49f, 1 };
    uint8_t q[4 + 32];
    assert_int_equal(qf_quantize(QF_FMT_INT8_PC, x, q, 1, 32), 0);
    const uint8_t want[4 + 9] = { 0x00, 0x00, 0x80, 0x3f,
                                  0x7f, 0x81, 0x01, 0xff, 0x03, 0xc0, 0x7e, 0x00, 0x01 };
    assert_bytes("int8_pc row", q, want, sizeof want);
    for (int i = 9; i < 32; i++)
        assert_int_equal(q[4 + i], 0);

    /* activations (q8_0 of a row of ones: d = 1/127, q = 127) give sum x_i exactly-ish */
    float ones[32];
    for (int i = 0; i < 32; i++)
        ones[i] = 1.0f;
    float s;
    assert_int_equal(qf_matvec_ref(QF_FMT_INT8_PC, q, ones, &s, 1, 32), 0);
    /* q sums to 127 - 127 + 1 - 1 + 3 - 64 + 126 + 0 + 1 = 66; d_a = fp16(1/127) */
    double want_s = 66.0 * 127.0 * qf_fp16_to_fp32(qf_fp32_to_fp16(1.0f / 127.0f));
    if (!(fabs(s - want_s) <= 1e-5 * fabs(want_s)))
        fail_msg("int8_pc . ones: got %.9g, want %.9g", s, want_s);
}

static void test_int4_layout(void **state)
{
    (void)state;
    /* A group of 32 with min -3 and max 12: d = 15/15 = 1 (f16 0x3c00), z = round(3) = 3,
     * q = round(x) + 3. Low nibbles are weights 0..15, high nibbles weights 16..31. */
    float x[32] = {
        -3, -2.5f, -0.5f, 0, 0.5f, 1, 2.5f, 11.49f, 12, 0, 0, 0, 0, 0, 0, 0,
        12, 7, -1, 0.49f, -0.49f, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 5,
    };
    /* -2.5 -> round -3 -> q 0; -0.5 -> -1 -> 2; 0.5 -> 1 -> 4; 2.5 -> 3 -> 6; 11.49 -> 11 -> 14;
     * -0.49 -> -0 -> 3 */
    uint8_t q[3 + 16];
    assert_int_equal(qf_quantize(QF_FMT_INT4_G32, x, q, 1, 32), 0);
    const uint8_t want[3 + 16] = {
        0x00, 0x3c, 0x03,
        0xf0, 0xa0, 0x22, 0x33, 0x34, 0x34, 0x36, 0x3e, 0x3f, 0x33, 0x33, 0x33, 0x33, 0x33,
        0x33, 0x83,
    };
    assert_bytes("int4_g32 block", q, want, sizeof want);

    /* All positive: the range is stretched to include 0, so z = 0 and d = 30/15 = 2. */
    for (int i = 0; i < 32; i++)
        x[i] = (float)(i % 16) * 2.0f;
    x[31] = 30.0f;
    assert_int_equal(qf_quantize(QF_FMT_INT4_G32, x, q, 1, 32), 0);
    assert_int_equal(q[0], 0x00);
    assert_int_equal(q[1], 0x40);    /* f16 2.0 = 0x4000 */
    assert_int_equal(q[2], 0);
    for (int j = 0; j < 16; j++)
        assert_int_equal(q[3 + j], (uint8_t)(j | j << 4));

    /* All negative: z = 15, the grid tops out at 0. */
    for (int i = 0; i < 32; i++)
        x[i] = -(float)(i % 16);
    assert_int_equal(qf_quantize(QF_FMT_INT4_G32, x, q, 1, 32), 0);
    assert_int_equal(q[1], 0x3c);
    assert_int_equal(q[2], 15);
    for (int j = 0; j < 16; j++)
        assert_int_equal(q[3 + j], (uint8_t)((15 - j) | (15 - j) << 4));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_geometry),
        cmocka_unit_test(test_roundtrip_bound),
        cmocka_unit_test(test_zero_rows),
        cmocka_unit_test(test_zero_exact),
        cmocka_unit_test(test_matvec_vs_double),
        cmocka_unit_test(test_shapes_refused),
        cmocka_unit_test(test_nan_decodes_to_zero),
        cmocka_unit_test(test_int8_pc_layout),
        cmocka_unit_test(test_int4_layout),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
