/* test_fw_nncf_mlx.c - the frameworks' native formats of kernels/ref/fw_nncf_mlx.c: OpenVINO
 * NNCF's nncf_int8_asym, nncf_int4_sym_g128, nncf_int4_asym_g128 and MLX's 15 mlx_affine formats.
 *
 * Hand-computed rows are checked byte by byte (each case chosen so that the framework's own
 * rule - round half to even against half away from zero, the zero point added before rounding,
 * MLX's snapped edge - gives a different byte than the obvious alternative would); MLX's 3- and
 * 6-bit packing is checked bit by bit and against the shift-and-mask decode MLX's kernels use;
 * every format's round trip stays within a bound computed from the stored scale (the grid's
 * reach plus half a step plus the f16 rounding of the stored parameters); the reference dot
 * product matches a double-precision dot of the decoded weights and decoded q8_0 activations
 * within 1e-5 of sum |w a|; and zeros, NaN, +-65504, outliers and one-group rows behave as
 * docs/formats.md says. The test reads layouts itself (it does not call the kernels' helpers),
 * so a layout slip in either place shows up as a disagreement.
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

#include "qf_formats.h"
#include "qf_rng.h"
#include "qf_synth.h"

#define K      512                  /* columns of the random rows: a multiple of every group */
#define RMAX   (2 * K + 64)         /* bytes of one quantized row of K in any format here */
#define NFMT   (3 + 15)

/* --- what the test knows about each format, from its name and docs/formats.md -------------- */

typedef enum { NNCF_INT8_ASYM, NNCF_INT4_SYM, NNCF_INT4_ASYM, MLX_AFFINE } kind;

typedef struct fmt_info {
    qf_format   fmt;
    const char *name;
    kind        kind;
    int         bits, group;        /* group 0: the whole row (nncf_int8_asym) */
} fmt_info;

static fmt_info g_fmts[NFMT];

static int setup_formats(void **state)
{
    (void)state;
    static const char *const nncf[3] = { "nncf_int8_asym", "nncf_int4_sym_g128",
                                         "nncf_int4_asym_g128" };
    static const int bits[5] = { 2, 3, 4, 6, 8 }, groups[3] = { 32, 64, 128 };
    int n = 0;
    for (int i = 0; i < 3; i++, n++) {
        g_fmts[n] = (fmt_info){ .name = nncf[i], .kind = (kind)i, .bits = i ? 4 : 8,
                                .group = i ? 128 : 0 };
    }
    static char names[15][24];
    for (int b = 0; b < 5; b++)
        for (int g = 0; g < 3; g++, n++) {
            snprintf(names[n - 3], sizeof names[0], "mlx_affine%d_g%d", bits[b], groups[g]);
            g_fmts[n] = (fmt_info){ .name = names[n - 3], .kind = MLX_AFFINE, .bits = bits[b],
                                    .group = groups[g] };
        }
    for (int i = 0; i < NFMT; i++)
        if (qf_format_from_name(g_fmts[i].name, &g_fmts[i].fmt) != 0)
            return -1;
    return 0;
}

static float f16_at(const uint8_t *p)
{
    return qf_fp16_to_fp32((qf_half)(p[0] | p[1] << 8));
}

/* Bit i of a little-endian byte string. */
static int bit_at(const uint8_t *p, int i)
{
    return (p[i / 8] >> (i % 8)) & 1;
}

/* Code j of a packed group, assembled one bit at a time. */
static int code_bits(const uint8_t *qs, int j, int bits)
{
    int v = 0;
    for (int t = 0; t < bits; t++)
        v |= bit_at(qs, j * bits + t) << t;
    return v;
}

/* One group's stored parameters and codes, read from the bytes as documented. */
typedef struct group_view {
    double d, off;        /* w = d * code + off (off = -d z for NNCF, the bias for MLX) */
    int    qmin, qmax;    /* the codes the format can hold */
    int    n;             /* weights in the group */
    int    code[K];
} group_view;

static size_t group_bytes(const fmt_info *f)
{
    switch (f->kind) {
    case NNCF_INT4_SYM:  return 2 + 64;
    case NNCF_INT4_ASYM: return 3 + 64;
    case MLX_AFFINE:     return 4 + (size_t)(f->group * f->bits / 8);
    default:             return 0;
    }
}

static int groups_per_row(const fmt_info *f, int64_t k)
{
    return f->group ? (int)(k / f->group) : 1;
}

static void view_group(const fmt_info *f, const uint8_t *row, int64_t k, int g, group_view *v)
{
    const uint8_t *p = row + (size_t)g * group_bytes(f);
    v->n = f->group ? f->group : (int)k;
    switch (f->kind) {
    case NNCF_INT8_ASYM:
        v->d = f16_at(row);
        v->off = -v->d * row[2];
        v->qmin = 0, v->qmax = 255;
        for (int j = 0; j < v->n; j++)
            v->code[j] = row[3 + j];
        return;
    case NNCF_INT4_SYM:
        v->d = f16_at(p);
        v->off = 0;
        v->qmin = -8, v->qmax = 7;
        for (int j = 0; j < v->n; j++) {
            int u = code_bits(p + 2, j, 4);
            v->code[j] = u >= 8 ? u - 16 : u;
        }
        return;
    case NNCF_INT4_ASYM:
        v->d = f16_at(p);
        v->off = -v->d * p[2];
        v->qmin = 0, v->qmax = 15;
        for (int j = 0; j < v->n; j++)
            v->code[j] = code_bits(p + 3, j, 4);
        return;
    case MLX_AFFINE:
        v->d = f16_at(p);
        v->off = f16_at(p + 2);
        v->qmin = 0, v->qmax = (1 << f->bits) - 1;
        for (int j = 0; j < v->n; j++)
            v->code[j] = code_bits(p + 4, j, f->bits);
        return;
    }
}

static void quantize_row(const fmt_info *f, const float *x, uint8_t *q, int64_t k)
{
    assert_true(qf_format_row_size(f->fmt, k) <= RMAX);
    assert_int_equal(qf_quantize(f->fmt, x, q, 1, k), 0);
}

static void expect_bytes(const char *what, const uint8_t *got, const uint8_t *want, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (got[i] != want[i])
            fail_msg("%s: byte %zu is 0x%02x, expected 0x%02x", what, i, got[i], want[i]);
}

/* --- geometry ------------------------------------------------------------------------------ */

static void test_geometry(void **state)
{
    (void)state;
    for (int i = 0; i < NFMT; i++) {
        const fmt_info *f = &g_fmts[i];
        const qf_format_traits *t = qf_format_get(f->fmt);
        assert_true(strlen(t->name) <= 23);
        assert_int_equal(t->act, QF_FMT_Q8_0);
        size_t want = f->kind == NNCF_INT8_ASYM ? 3 + 4096 : (size_t)(4096 / f->group) *
                                                             group_bytes(f);
        if (qf_format_row_size(f->fmt, 4096) != want)
            fail_msg("%s: row of 4096 is %zu bytes, expected %zu", f->name,
                     qf_format_row_size(f->fmt, 4096), want);
        /* nominal bits per weight: the values' bits plus the f16 parameters spread over a group */
        double bpw = f->kind == NNCF_INT8_ASYM ? 8.0
                   : f->kind == NNCF_INT4_SYM ? 4.0 + 16.0 / 128
                   : f->kind == NNCF_INT4_ASYM ? 4.0 + 24.0 / 128
                   : f->bits + 32.0 / f->group;
        if (qf_format_bpw_nominal(f->fmt) != bpw)
            fail_msg("%s: %.6g bits per weight, expected %.6g", f->name,
                     qf_format_bpw_nominal(f->fmt), bpw);
        int64_t unit = f->group ? f->group : 32;
        assert_int_equal(qf_format_check_cols(f->fmt, unit), 0);
        if (unit > 32)
            assert_int_not_equal(qf_format_check_cols(f->fmt, unit / 2), 0);
    }
    assert_true(fabs(qf_format_bpw(QF_FMT_NNCF_INT8_ASYM, 4096) - (8.0 + 24.0 / 4096)) < 1e-12);
    assert_int_not_equal(qf_format_check_cols(QF_FMT_NNCF_INT8_ASYM, 48), 0);
}

/* --- hand-computed rows, byte by byte ------------------------------------------------------ */

/* NNCF INT4_SYM. Group 1: the extreme is -1 (|min| >= max), so s = 1/8 = 0.125 (f16 0x3000)
 * and -1 lands on -8. 0.0625 = 0.5 steps rounds to 0 (half to even; half away would give 1),
 * 0.1875 = 1.5 -> 2, -0.3125 = -2.5 -> -2 (even), 1.0 = 8 clips to 7, NaN -> 0.
 * Group 2: the extreme is +2 (max > |min|), so s = -2/8 = -0.25 (f16 0xb400): 2 -> -8,
 * -1 -> 4. Nibbles low first: byte j = weight 2j | weight 2j+1 << 4, two's complement. */
static void test_nncf_int4_sym_bytes(void **state)
{
    (void)state;
    float x[256] = { 0 };
    x[0] = -1.0f, x[1] = 0.5f, x[2] = 0.0625f, x[3] = 1.0f, x[4] = 0.1875f, x[5] = -0.3125f;
    x[6] = NAN;
    x[128] = 2.0f, x[129] = -1.0f, x[130] = 0.125f, x[131] = -0.125f;
    uint8_t q[RMAX];
    quantize_row(&g_fmts[1], x, q, 256);
    uint8_t want[2 * 66] = { 0 };
    want[0] = 0x00, want[1] = 0x30;                   /* d = 0.125 */
    want[2] = 0x8 | 4 << 4;                           /* -8, 4 */
    want[3] = 0x0 | 7 << 4;                           /* 0 (0.5 even), 7 (clipped) */
    want[4] = 0x2 | 0xe << 4;                         /* 2, -2 */
    want[5] = 0x0;                                    /* NaN -> 0, 0 */
    want[66] = 0x00, want[67] = 0xb4;                 /* d = -0.25 */
    want[68] = 0x8 | 4 << 4;                          /* 2 -> -8, -1 -> 4 */
    want[69] = 0x0 | 0x0 << 4;                        /* 0.125 = -0.5 -> -0 = 0, -0.125 -> 0 */
    expect_bytes("nncf_int4_sym_g128", q, want, sizeof want);
    float y[256];
    assert_int_equal(qf_dequantize(QF_FMT_NNCF_INT4_SYM_G128, q, y, 1, 256), 0);
    assert_true(y[0] == -1.0f && y[3] == 0.875f && y[6] == 0.0f && y[128] == 2.0f);
}

/* NNCF INT4_ASYM. Group 1: min -1.25, max 2.5, s = 3.75/15 = 0.25 (f16 0x3400),
 * z = 0 - rint(-5) = 5. The zero point is added before rounding: 0.125 -> rint(0.5 + 5) = 6
 * (rint(0.5) + 5 would be 5), 0.375 -> rint(6.5) = 6 (not 7), -1.25 -> 0, 2.5 -> 15, NaN -> z.
 * Group 2, all positive 1..4.75: s = 0.25, z = clamp(-rint(4), 0, 15) = 0, so the grid is
 * 0..3.75 and 4.75 clips to 15 (3.75): NNCF does not widen the range to hold 0. */
static void test_nncf_int4_asym_bytes(void **state)
{
    (void)state;
    float x[256];
    for (int i = 0; i < 128; i++)
        x[i] = 0.0f, x[128 + i] = 2.0f;
    x[0] = -1.25f, x[1] = 2.5f, x[2] = 0.125f, x[3] = 0.375f, x[4] = NAN;
    x[128] = 1.0f, x[129] = 4.75f, x[130] = 1.125f;
    uint8_t q[RMAX];
    quantize_row(&g_fmts[2], x, q, 256);
    uint8_t want[2 * 67];
    memset(want, 0, sizeof want);
    want[0] = 0x00, want[1] = 0x34, want[2] = 5;      /* d = 0.25, z = 5 */
    want[3] = 0 | 15 << 4;                            /* -1.25 -> 0, 2.5 -> 15 */
    want[4] = 6 | 6 << 4;                             /* 0.125 -> 6, 0.375 -> 6 */
    for (int j = 5; j < 67; j++)
        want[j] = 5 | 5 << 4;                         /* NaN -> z, zeros -> z */
    want[67] = 0x00, want[68] = 0x34, want[69] = 0;   /* d = 0.25, z = 0 */
    want[70] = 4 | 15 << 4;                           /* 1.0 -> 4, 4.75 -> 15 (clipped) */
    want[71] = 4 | 8 << 4;                            /* 1.125 = 4.5 -> 4 (even), 2.0 -> 8 */
    for (int j = 72; j < 134; j++)
        want[j] = 8 | 8 << 4;
    expect_bytes("nncf_int4_asym_g128", q, want, sizeof want);
}

/* NNCF INT8_ASYM, one row of 32: min -1, max 0.9921875, s = 1.9921875/255 = 2^-7 (f16 0x2000),
 * z = rint(128) = 128. 2^-8 -> rint(0.5 + 128) = 128 (even), 3 * 2^-8 -> rint(129.5) = 130,
 * NaN -> 128; the row is 3 + 32 bytes. */
static void test_nncf_int8_asym_bytes(void **state)
{
    (void)state;
    float x[32] = { 0 };
    x[0] = -1.0f, x[1] = 0.9921875f, x[2] = 0x1p-8f, x[3] = 3 * 0x1p-8f, x[4] = NAN;
    x[5] = -0.5f;
    uint8_t q[RMAX];
    quantize_row(&g_fmts[0], x, q, 32);
    uint8_t want[35];
    memset(want, 128, sizeof want);
    want[0] = 0x00, want[1] = 0x20, want[2] = 128;
    want[3] = 0, want[4] = 255, want[5] = 128, want[6] = 130, want[7] = 128, want[8] = 64;
    expect_bytes("nncf_int8_asym", q, want, sizeof want);
    float y[32];
    assert_int_equal(qf_dequantize(QF_FMT_NNCF_INT8_ASYM, q, y, 1, 32), 0);
    assert_true(y[0] == -1.0f && y[1] == 0.9921875f && y[4] == 0.0f && y[5] == -0.5f);
}

/* MLX affine 4-bit, groups of 32.
 * Group 1: min -1, max 0.875: |min| wins, s = 1.875/15 = 0.125, edge -1, q0 = -8, so
 *   s = 0.125 (0x3000), bias -1 (0xbc00); -0.9375 = 0.5 steps rounds away from zero to 1
 *   (rint would give 0), 0.0625 = 8.5 -> 9, 0 -> 8, 0.875 -> 15, and 0.0625 - 2^-20 -> 9:
 *   x is rounded to f16 first (to 0.0625), where binary32 would give 8.499998 -> 8.
 * Group 2: max 1 beats min -0.875: s = -0.125 (0xb000), bias 1 (0x3c00): 1 -> 0, -0.875 -> 15.
 * Group 3: min -1, max 0.9: s = 1.9/15 = 0.1267 is snapped by the edge: q0 = round(-7.89) = -8,
 *   s = -1/-8 = 0.125, bias -1; 0.9 -> round(15.2) = 15 (decodes 0.875).
 * Group 4: all zeros: s = max(0, 1e-7) negated = -1e-7 (f16 0x8002), q0 = 0 so bias 0, codes 0.
 * Group 5, all negative (-1.875 .. -0.5): w_max starts at 0, so the range is 1.875, s = 0.125,
 *   bias -1.875 (0xbf80), -0.5 -> 11, -1 -> 7 (from the group's own max, s would be 0.09375). */
static void test_mlx_affine4_bytes(void **state)
{
    (void)state;
    float x[160] = { 0 };
    for (int i = 0; i < 32; i++)
        x[i] = -1.0f, x[128 + i] = -1.0f;
    x[1] = 0.875f, x[2] = -0.9375f, x[3] = 0.0625f, x[4] = 0.0f, x[5] = 0.0625f - 0x1p-20f;
    x[128] = -1.875f, x[129] = -0.5f;
    x[32] = 1.0f, x[33] = -0.875f;
    x[64] = -1.0f, x[65] = 0.9f;
    uint8_t q[RMAX];
    const fmt_info *f = &g_fmts[3 + 2 * 3];   /* mlx_affine4_g32 */
    assert_string_equal(f->name, "mlx_affine4_g32");
    quantize_row(f, x, q, 160);
    uint8_t want[5 * 20];
    memset(want, 0, sizeof want);
    want[0] = 0x00, want[1] = 0x30, want[2] = 0x00, want[3] = 0xbc;
    want[4] = 0 | 15 << 4;                  /* -1 -> 0, 0.875 -> 15 */
    want[5] = 1 | 9 << 4;                   /* -0.9375 -> 1, 0.0625 -> 9 */
    want[6] = 8 | 9 << 4;                   /* 0 -> 8, 0.0625 - 2^-20 -> 9 */
    want[20] = 0x00, want[21] = 0xb0, want[22] = 0x00, want[23] = 0x3c;
    want[24] = 0 | 15 << 4;                 /* 1 -> 0, -0.875 -> 15 */
    for (int j = 25; j < 40; j++)
        want[j] = 8 | 8 << 4;               /* 0 -> 8 */
    want[40] = 0x00, want[41] = 0x30, want[42] = 0x00, want[43] = 0xbc;
    want[44] = 0 | 15 << 4;                 /* -1 -> 0, 0.9 -> 15 */
    for (int j = 45; j < 60; j++)
        want[j] = 8 | 8 << 4;
    want[60] = 0x02, want[61] = 0x80;       /* s = -1.19e-7, bias 0, codes 0 */
    want[80] = 0x00, want[81] = 0x30, want[82] = 0x80, want[83] = 0xbf;
    want[84] = 0 | 11 << 4;                 /* -1.875 -> 0, -0.5 -> 11 */
    for (int j = 85; j < 100; j++)
        want[j] = 7 | 7 << 4;               /* -1 -> 7 */
    expect_bytes("mlx_affine4_g32", q, want, sizeof want);
    float y[160];
    assert_int_equal(qf_dequantize(f->fmt, q, y, 1, 160), 0);
    assert_true(y[0] == -1.0f && y[2] == -0.875f && y[65] == 0.875f && y[32] == 1.0f);
    for (int i = 96; i < 128; i++)
        assert_true(y[i] == 0.0f);
}

/* --- MLX packing ---------------------------------------------------------------------------- */

/* MLX's own decode of one 3-byte pack (mlx/backend/metal/kernels/quantized.h, dequantize). */
static void mlx_unpack3(const uint8_t *w, int *out)
{
    out[0] = w[0] & 0x7;
    out[1] = (w[0] & 0x38) >> 3;
    out[2] = ((w[0] & 0xc0) >> 6) + ((w[1] & 0x1) << 2);
    out[3] = (w[1] & 0xe) >> 1;
    out[4] = (w[1] & 0x70) >> 4;
    out[5] = ((w[1] & 0x80) >> 7) + ((w[2] & 0x3) << 1);
    out[6] = (w[2] & 0x1c) >> 2;
    out[7] = (w[2] & 0xe0) >> 5;
}

static void mlx_unpack6(const uint8_t *w, int *out)
{
    out[0] = w[0] & 0x3f;
    out[1] = ((w[0] >> 6) & 0x03) + ((w[1] & 0x0f) << 2);
    out[2] = ((w[1] >> 4) & 0x0f) + ((w[2] & 0x03) << 4);
    out[3] = (w[2] >> 2) & 0x3f;
}

/* A group whose codes are known: x = -n/2 + code/2, with codes 0 and n present, gives
 * w_min = -n/2, w_max = 0, s = 0.5, bias = -n/2 and code = 2x + n exactly. */
static void known_codes(int bits, int g, int *code, float *x)
{
    const int n = (1 << bits) - 1;
    for (int j = 0; j < g; j++)
        code[j] = (j * 7 + j / 3) % (n + 1);
    code[g - 2] = 0, code[g - 1] = n;
    if (bits == 3)
        for (int j = 0; j < 8; j++)
            code[j] = j;
    if (bits == 6)
        code[0] = 21, code[1] = 42, code[2] = 63, code[3] = 1;
    for (int j = 0; j < g; j++)
        x[j] = -(float)n / 2 + (float)code[j] / 2;
}

static void test_mlx_packing(void **state)
{
    (void)state;
    for (int i = 3; i < NFMT; i++) {
        const fmt_info *f = &g_fmts[i];
        int code[128];
        float x[128];
        uint8_t q[RMAX];
        known_codes(f->bits, f->group, code, x);
        quantize_row(f, x, q, f->group);
        const int n = (1 << f->bits) - 1;
        assert_true(f16_at(q) == 0.5f && f16_at(q + 2) == -(float)n / 2);
        /* bit by bit: weight j's bit t is bit bits*j + t of the packed bytes */
        for (int j = 0; j < f->group; j++)
            for (int t = 0; t < f->bits; t++)
                if (bit_at(q + 4, f->bits * j + t) != ((code[j] >> t) & 1))
                    fail_msg("%s: weight %d (code %d) bit %d is wrong", f->name, j, code[j], t);
        /* MLX's shift-and-mask decode of 3-byte packs, and of uint32 words for 2/4/8 bits */
        for (int p = 0; p < f->group * f->bits / 24 && (f->bits == 3 || f->bits == 6); p++) {
            int got[8], per = f->bits == 3 ? 8 : 4;
            (f->bits == 3 ? mlx_unpack3 : mlx_unpack6)(q + 4 + 3 * p, got);
            for (int j = 0; j < per; j++)
                if (got[j] != code[p * per + j])
                    fail_msg("%s: pack %d value %d decodes to %d, expected %d", f->name, p, j,
                             got[j], code[p * per + j]);
        }
        if (f->bits == 2 || f->bits == 4 || f->bits == 8)
            for (int w = 0; w < f->group * f->bits / 32; w++) {
                const uint8_t *b = q + 4 + 4 * w;
                uint32_t word = (uint32_t)b[0] | (uint32_t)b[1] << 8 | (uint32_t)b[2] << 16 |
                                (uint32_t)b[3] << 24;
                for (int j = 0; j < 32 / f->bits; j++)
                    assert_int_equal((word >> (f->bits * j)) & (uint32_t)n,
                                     code[w * (32 / f->bits) + j]);
            }
        float y[128];
        assert_int_equal(qf_dequantize(f->fmt, q, y, 1, f->group), 0);
        for (int j = 0; j < f->group; j++)
            if (y[j] != x[j])
                fail_msg("%s: weight %d decodes to %.9g, expected %.9g", f->name, j, y[j], x[j]);
    }
    /* the first packs, written out by hand */
    static const uint8_t pack3[3] = { 0x88, 0xc6, 0xfa };   /* codes 0..7 */
    static const uint8_t pack6[3] = { 0x95, 0xfa, 0x07 };   /* codes 21, 42, 63, 1 */
    for (int i = 3; i < NFMT; i++) {
        const fmt_info *f = &g_fmts[i];
        if (f->bits != 3 && f->bits != 6)
            continue;
        int code[128];
        float x[128];
        uint8_t q[RMAX];
        known_codes(f->bits, f->group, code, x);
        quantize_row(f, x, q, f->group);
        expect_bytes(f->name, q + 4, f->bits == 3 ? pack3 : pack6, 3);
    }
}

/* --- round trips ---------------------------------------------------------------------------- */

enum { IN_GAUSS_OUTLIERS, IN_STUDENT_T, IN_POSITIVE, IN_NEGATIVE, IN_CONSTANT, IN_TINY,
       IN_ZERO, IN_F16_MAX, IN_SPIKE, IN_COUNT };
static const char *const k_inputs[IN_COUNT] = {
    "gaussian+outliers", "student-t", "all positive", "all negative", "constant", "tiny",
    "zeros", "+-65504", "one spike of 1000",
};

static void make_input(int input, float *x, int64_t k, uint64_t seed)
{
    qf_rng r;
    qf_rng_seed(&r, seed);
    qf_synth_params p = qf_synth_defaults(input == IN_STUDENT_T ? QF_SYNTH_STUDENT_T
                                                                : QF_SYNTH_GAUSSIAN, seed);
    if (input == IN_GAUSS_OUTLIERS || input == IN_STUDENT_T) {
        assert_int_equal(qf_synth_fill(&p, x, 1, k), 0);
        return;
    }
    for (int64_t i = 0; i < k; i++) {
        double u = qf_rng_uniform(&r);
        switch (input) {
        case IN_POSITIVE: x[i] = (float)(0.1 + u); break;
        case IN_NEGATIVE: x[i] = (float)(-0.1 - u); break;
        case IN_CONSTANT: x[i] = 0.3f; break;
        case IN_TINY:     x[i] = (float)((u - 0.3) * 1e-5); break;
        case IN_ZERO:     x[i] = 0.0f; break;
        case IN_F16_MAX:  x[i] = i % 5 == 0 ? 65504.0f : i % 5 == 1 ? -65504.0f
                                                       : (float)((u - 0.5) * 60000.0); break;
        case IN_SPIKE:    x[i] = i % 97 == 5 ? 1000.0f : (float)(u - 0.5); break;
        default:          fail();
        }
    }
}

/* |x - decoded| for one weight may be: the distance from x to the grid's reach, half a step,
 * the f16 rounding of the stored step and offset as far as the largest code carries them
 * (the codes are chosen with the binary32 parameters), MLX's f16 rounding of x itself, and
 * binary32 rounding. */
static double bound_of(const fmt_info *f, const group_view *v, double x)
{
    double lo = fmin(v->d * v->qmin, v->d * v->qmax) + v->off;
    double hi = fmax(v->d * v->qmin, v->d * v->qmax) + v->off;
    double reach = x < lo ? lo - x : x > hi ? x - hi : 0.0;
    double qabs = fmax(abs(v->qmin), abs(v->qmax));
    double f16 = 0x1p-11 * fabs(v->d) + 0x1p-25;
    double slack = 2 * qabs * f16 + (0x1p-11 * fabs(v->off) + 0x1p-25) + fabs(x) * 0x1p-20;
    if (f->kind == MLX_AFFINE)
        slack += 2 * (0x1p-11 * fabs(x) + 0x1p-25);
    return reach + fabs(v->d) / 2 + 2 * slack;
}

static void check_roundtrip(const fmt_info *f, const float *x, int64_t k, const char *input)
{
    uint8_t q[RMAX];
    float y[K];
    static group_view v;
    quantize_row(f, x, q, k);
    assert_int_equal(qf_dequantize(f->fmt, q, y, 1, k), 0);
    for (int g = 0; g < groups_per_row(f, k); g++) {
        view_group(f, q, k, g, &v);
        for (int j = 0; j < v.n; j++) {
            int64_t i = (int64_t)g * v.n + j;
            double dec = v.d * v.code[j] + v.off;
            if (!(fabs(dec - y[i]) <= 1e-6 * fabs(dec) + 1e-30))
                fail_msg("%s, input %s, weight %" PRId64 ": code %d decodes to %.9g, the layout "
                         "says %.9g", f->name, input, i, v.code[j], y[i], dec);
            if (isnan(x[i]))
                continue;
            double e = fabs((double)x[i] - y[i]), b = bound_of(f, &v, x[i]);
            if (!(e <= b))
                fail_msg("%s, input %s, weight %" PRId64 ": x = %.9g decodes to %.9g, error "
                         "%.3g > bound %.3g (step %.3g)", f->name, input, i, x[i], y[i], e, b,
                         v.d);
        }
    }
}

static void test_roundtrip_bounds(void **state)
{
    (void)state;
    static float x[K];
    for (int i = 0; i < NFMT; i++)
        for (int in = 0; in < IN_COUNT; in++) {
            make_input(in, x, K, 100 + (uint64_t)in);
            check_roundtrip(&g_fmts[i], x, K, k_inputs[in]);
            /* one group per row: the smallest row the format takes */
            int64_t one = g_fmts[i].group ? g_fmts[i].group : 32;
            make_input(in, x, one, 200 + (uint64_t)in);
            check_roundtrip(&g_fmts[i], x, one, k_inputs[in]);
        }
}

/* More bits and smaller groups never make Gaussian weights worse, and 8 bits are near exact. */
static void test_error_ordering(void **state)
{
    (void)state;
    enum { ROWS = 16 };
    float *x = malloc(ROWS * K * sizeof *x), *y = malloc(ROWS * K * sizeof *y);
    uint8_t *q = malloc(ROWS * RMAX);
    assert_true(x && y && q);
    qf_synth_params p = qf_synth_defaults(QF_SYNTH_GAUSSIAN, 5);
    p.outlier_channels = 0;
    assert_int_equal(qf_synth_fill(&p, x, ROWS, K), 0);
    double nmse[NFMT];
    for (int i = 0; i < NFMT; i++) {
        assert_int_equal(qf_quantize(g_fmts[i].fmt, x, q, ROWS, K), 0);
        assert_int_equal(qf_dequantize(g_fmts[i].fmt, q, y, ROWS, K), 0);
        double num = 0, den = 0;
        for (int j = 0; j < ROWS * K; j++) {
            num += ((double)x[j] - y[j]) * ((double)x[j] - y[j]);
            den += (double)x[j] * x[j];
        }
        nmse[i] = num / den;
        print_message("%-20s NMSE %.3g\n", g_fmts[i].name, nmse[i]);
    }
    for (int i = 3; i < NFMT; i++) {
        if (g_fmts[i].group > 32 && !(nmse[i - 1] <= nmse[i]))
            fail_msg("%s: NMSE %.3g below %s's %.3g", g_fmts[i].name, nmse[i],
                     g_fmts[i - 1].name, nmse[i - 1]);
        if (g_fmts[i].bits > 2 && !(nmse[i] < nmse[i - 3]))
            fail_msg("%s: NMSE %.3g not below %s's %.3g", g_fmts[i].name, nmse[i],
                     g_fmts[i - 3].name, nmse[i - 3]);
    }
    assert_true(nmse[0] < 1e-4 && nmse[NFMT - 1] < 1e-4);            /* 8-bit formats */
    assert_true(nmse[1] < 0.02 && nmse[2] < 0.02);                    /* NNCF 4-bit g128 */
    free(x);
    free(y);
    free(q);
}

/* --- dot products --------------------------------------------------------------------------- */

/* Each row's reference dot product against the double-precision dot of its own decoded
 * weights and the decoded q8_0 activations: only the float summation differs, so they agree
 * within 1e-5 of sum |w a| (measured: a few 1e-7). */
static void test_vec_dot_vs_double(void **state)
{
    (void)state;
    static float x[K], w[K], wd[K], ad[K];
    static uint8_t q[RMAX], aq[RMAX * 2];
    qf_synth_params pa = qf_synth_defaults(QF_SYNTH_GAUSSIAN, 77);
    pa.outlier_channels = 0;
    assert_int_equal(qf_synth_fill(&pa, x, 1, K), 0);
    assert_int_equal(qf_quantize(QF_FMT_Q8_0, x, aq, 1, K), 0);
    assert_int_equal(qf_dequantize(QF_FMT_Q8_0, aq, ad, 1, K), 0);
    double worst = 0;
    for (int i = 0; i < NFMT; i++) {
        const qf_format_traits *t = qf_format_get(g_fmts[i].fmt);
        for (int in = 0; in < IN_COUNT; in++) {
            make_input(in, w, K, 300 + (uint64_t)in);
            quantize_row(&g_fmts[i], w, q, K);
            assert_int_equal(qf_dequantize(g_fmts[i].fmt, q, wd, 1, K), 0);
            float s;
            t->vec_dot_ref(K, q, aq, &s);
            double dot = 0, mag = 0;
            for (int j = 0; j < K; j++) {
                dot += (double)wd[j] * ad[j];
                mag += fabs((double)wd[j] * ad[j]);
            }
            double rel = mag > 0 ? fabs(dot - s) / mag : fabs(dot - s);
            if (rel > worst)
                worst = rel;
            if (!(fabs(dot - s) <= 1e-5 * mag + 1e-30))
                fail_msg("%s, input %s: vec_dot %.9g, decoded dot %.9g (sum|w a| %.6g)",
                         g_fmts[i].name, k_inputs[in], (double)s, dot, mag);
        }
    }
    print_message("worst |vec_dot - decoded dot| / sum|w a|: %.3g\n", worst);
}

/* --- edge inputs ---------------------------------------------------------------------------- */

/* NaN: ignored by min/max and quantized as 0 is. In a row that straddles 0 (so 0 changes no
 * min or max), a NaN gives the same bytes as a 0 in its place, and its neighbours are unharmed.
 * Zeros decode to exactly 0 in every format (NNCF stores scale eps = 2^-23, MLX -1e-7). */
static void test_nan_and_zero(void **state)
{
    (void)state;
    static float x[K], x0[K], y[K];
    static uint8_t q[RMAX], q0[RMAX];
    for (int i = 0; i < NFMT; i++) {
        const fmt_info *f = &g_fmts[i];
        make_input(IN_STUDENT_T, x, K, 9);
        for (int j = 0; j < K; j += 128)
            x[j] = -2.0f, x[j + 1] = 2.0f;            /* every group straddles 0 */
        memcpy(x0, x, sizeof x);
        x[37] = NAN, x0[37] = 0.0f;
        x[300] = NAN, x0[300] = 0.0f;
        quantize_row(f, x, q, K);
        quantize_row(f, x0, q0, K);
        expect_bytes(f->name, q, q0, qf_format_row_size(f->fmt, K));
        assert_int_equal(qf_dequantize(f->fmt, q, y, 1, K), 0);
        for (int j = 0; j < K; j++)
            assert_false(isnan(y[j]));
        if (f->kind != MLX_AFFINE)
            assert_true(y[37] == 0.0f && y[300] == 0.0f);

        memset(x, 0, sizeof x);
        quantize_row(f, x, q, K);
        assert_int_equal(qf_dequantize(f->fmt, q, y, 1, K), 0);
        for (int j = 0; j < K; j++)
            if (y[j] != 0.0f)
                fail_msg("%s: zero row decodes to %.9g at %d", f->name, y[j], j);
        float d = f16_at(q);   /* the row's or the first group's scale */
        assert_true(d == (f->kind == MLX_AFFINE ? -0x1p-23f : 0x1p-23f));
    }
}

/* +-65504 (f16's largest) in every group: finite parameters, finite decodes, and the extreme
 * of largest magnitude decodes exactly where the format puts it on a code (NNCF SYM: -8 * d;
 * MLX: the bias). */
static void test_f16_extremes(void **state)
{
    (void)state;
    static float x[K], y[K];
    static uint8_t q[RMAX];
    for (int i = 0; i < NFMT; i++) {
        const fmt_info *f = &g_fmts[i];
        make_input(IN_F16_MAX, x, K, 4);
        int64_t g = f->group ? f->group : K;
        for (int64_t j = 0; j < K; j += g)
            x[j] = 65504.0f, x[j + 1] = -65504.0f;
        quantize_row(f, x, q, K);
        assert_int_equal(qf_dequantize(f->fmt, q, y, 1, K), 0);
        for (int j = 0; j < K; j++)
            if (!isfinite(y[j]))
                fail_msg("%s: +-65504 row decodes to %g at %d", f->name, y[j], j);
        if (f->kind == NNCF_INT4_SYM || f->kind == MLX_AFFINE)
            for (int64_t j = 0; j < K; j += g)
                if (!(y[j] == 65504.0f || y[j + 1] == -65504.0f))
                    fail_msg("%s: group at %" PRId64 ": 65504 -> %.9g, -65504 -> %.9g", f->name,
                             j, y[j], y[j + 1]);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_geometry),
        cmocka_unit_test(test_nncf_int4_sym_bytes),
        cmocka_unit_test(test_nncf_int4_asym_bytes),
        cmocka_unit_test(test_nncf_int8_asym_bytes),
        cmocka_unit_test(test_mlx_affine4_bytes),
        cmocka_unit_test(test_mlx_packing),
        cmocka_unit_test(test_roundtrip_bounds),
        cmocka_unit_test(test_error_ordering),
        cmocka_unit_test(test_vec_dot_vs_double),
        cmocka_unit_test(test_nan_and_zero),
        cmocka_unit_test(test_f16_extremes),
    };
    return cmocka_run_group_tests(tests, setup_formats, NULL);
}
