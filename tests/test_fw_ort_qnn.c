/* test_fw_ort_qnn.c - the frameworks' native formats of kernels/ref/fw_ort_qnn.c: ONNX Runtime
 * MatMulNBits INT4 (ort_int4_b32, ort_int4_b128, ort_int4_b128_asym) and Qualcomm QNN
 * (qnn_int8_pc, qnn_int16_pc, qnn_w4_block).
 *
 * Checks the geometry; small rows worked out by hand from the rules in docs/formats.md, byte by
 * byte (they pin the rounding: half away from zero, the -8 / zero point arithmetic, nibble
 * order, the header layout); that our ORT rows, rearranged into MatMulNBits' B / scales /
 * zero_points exactly as qf_blocks.h documents, decode by the operator's own formula to what
 * our decoder gives; round-trip error within each format's bound on assorted inputs (Gaussian,
 * heavy tails, spikes, tiny and large values, +-65504, zeros, NaN); and the reference dot
 * product against the double-precision dot of the decoded weights and activations.
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

static const qf_format k_fmts[] = {
    QF_FMT_ORT_INT4_B32, QF_FMT_ORT_INT4_B128, QF_FMT_ORT_INT4_B128_ASYM,
    QF_FMT_QNN_INT8_PC, QF_FMT_QNN_INT16_PC, QF_FMT_QNN_W4_BLOCK,
};
#define N_FMTS (sizeof k_fmts / sizeof k_fmts[0])
#define K 384                 /* a multiple of every block here; 3 blocks of 128 (odd) */
#define ROW_MAX (8 + 2 * K)   /* qnn_int16_pc is the widest row */

static const char *name_of(qf_format f)
{
    return qf_format_get(f)->name;
}

static float f32_at(const uint8_t *p)
{
    uint32_t u = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                 (uint32_t)p[3] << 24;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

static void f32_bytes(float f, uint8_t out[4])
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    for (int i = 0; i < 4; i++)
        out[i] = (uint8_t)(u >> 8 * i);
}

/* Compares n bytes, printing the first difference with both sides. */
static void expect_bytes(const char *what, const uint8_t *got, const uint8_t *want, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (got[i] != want[i])
            fail_msg("%s: byte %zu is 0x%02x, want 0x%02x", what, i, got[i], want[i]);
}

/* --- geometry ------------------------------------------------------------------------------ */

static void test_geometry(void **state)
{
    (void)state;
    static const struct {
        qf_format fmt;
        const char *name;
        int64_t multiple;
        size_t row_4096;
        double bpw_4096, nominal;
    } want[] = {
        { QF_FMT_ORT_INT4_B32, "ort_int4_b32", 32, 128 * 20, 5.0, 5.0 },
        { QF_FMT_ORT_INT4_B128, "ort_int4_b128", 128, 32 * 68, 4.25, 4.25 },
        { QF_FMT_ORT_INT4_B128_ASYM, "ort_int4_b128_asym", 128, 32 * 69, 4.3125, 4.3125 },
        { QF_FMT_QNN_INT8_PC, "qnn_int8_pc", 32, 8 + 4096, 8.0 + 64.0 / 4096, 8.0 },
        { QF_FMT_QNN_INT16_PC, "qnn_int16_pc", 1, 8 + 2 * 4096, 16.0 + 64.0 / 4096, 16.0 },
        { QF_FMT_QNN_W4_BLOCK, "qnn_w4_block", 32, 128 * 20, 5.0, 5.0 },
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        qf_format f;
        assert_int_equal(qf_format_from_name(want[i].name, &f), 0);
        assert_int_equal(f, want[i].fmt);
        const qf_format_traits *t = qf_format_get(f);
        assert_true(t->weight);
        assert_int_equal(t->gguf_type, -1);
        if (qf_format_row_size(f, 4096) != want[i].row_4096)
            fail_msg("%s: row of 4096 is %zu bytes, want %zu", want[i].name,
                     qf_format_row_size(f, 4096), want[i].row_4096);
        if (qf_format_bpw(f, 4096) != want[i].bpw_4096 ||
            qf_format_bpw_nominal(f) != want[i].nominal)
            fail_msg("%s: bpw %.9g (nominal %.9g), want %.9g (%.9g)", want[i].name,
                     qf_format_bpw(f, 4096), qf_format_bpw_nominal(f), want[i].bpw_4096,
                     want[i].nominal);
        assert_int_equal(qf_format_check_cols(f, want[i].multiple), 0);
        assert_int_equal(qf_format_check_cols(f, 3 * want[i].multiple), 0);
        if (want[i].multiple > 1)
            assert_int_equal(qf_format_check_cols(f, want[i].multiple + 16), QF_ESHAPE);
    }
    assert_int_equal(qf_format_get(QF_FMT_QNN_INT16_PC)->act, QF_FMT_F32);
    assert_int_equal(qf_format_check_cols(QF_FMT_QNN_INT16_PC, 7), 0);   /* f32 acts: any k */
}

/* --- hand-computed rows -------------------------------------------------------------------- */

/* x_i = i - 16: lo = -16 wins the tie-free |.| comparison, scale = -16 / -8 = 2, r = 0.5,
 * q_i = round(i / 2) (half away from zero: 0.5 -> 1), 16 clamped to 15. */
static void test_ort_sym_by_hand(void **state)
{
    (void)state;
    float x[32];
    uint8_t q[20], want[20];
    for (int i = 0; i < 32; i++)
        x[i] = (float)(i - 16);
    assert_int_equal(qf_quantize(QF_FMT_ORT_INT4_B32, x, q, 1, 32), 0);
    f32_bytes(2.0f, want);                             /* 00 00 00 40 */
    for (int j = 0; j < 16; j++)                       /* weight 2j low, 2j+1 high */
        want[4 + j] = (uint8_t)(j | (j < 15 ? j + 1 : 15) << 4);
    expect_bytes("ort_int4_b32 x = i - 16", q, want, sizeof want);
    float y[32];
    assert_int_equal(qf_dequantize(QF_FMT_ORT_INT4_B32, q, y, 1, 32), 0);
    assert_true(y[0] == -16.0f && y[1] == -14.0f && y[31] == 14.0f);

    /* a positive extreme gives a negative scale: m = 3, scale = -0.375, r = -8/3;
     * 3 -> round(-8 + 8) = 0 (decodes to 3 exactly), -1 -> round(10.67) = 11, 0 -> 8 */
    memset(x, 0, sizeof x);
    x[0] = 3.0f;
    x[1] = -1.0f;
    assert_int_equal(qf_quantize(QF_FMT_ORT_INT4_B32, x, q, 1, 32), 0);
    f32_bytes(-0.375f, want);                          /* 00 00 c0 be */
    memset(want + 4, 0x88, 16);
    want[4] = 0xb0;
    expect_bytes("ort_int4_b32 negative scale", q, want, sizeof want);
    assert_int_equal(qf_dequantize(QF_FMT_ORT_INT4_B32, q, y, 1, 32), 0);
    assert_true(y[0] == 3.0f && y[1] == -1.125f && y[2] == 0.0f);

    /* all zero: scale = 0 / -8 = -0 (sign bit set, as MLAS stores it), every q = 8 */
    memset(x, 0, sizeof x);
    assert_int_equal(qf_quantize(QF_FMT_ORT_INT4_B32, x, q, 1, 32), 0);
    static const uint8_t neg_zero[4] = { 0, 0, 0, 0x80 };
    memcpy(want, neg_zero, 4);
    memset(want + 4, 0x88, 16);
    expect_bytes("ort_int4_b32 zeros", q, want, sizeof want);
}

/* lo = -3, hi = 4.5: scale = 7.5 / 15 = 0.5, zp = round(3 / 0.5) = 6, r = 2.
 * -3 -> 0, 4.5 -> 15, 0.25 -> round(6.5) = 7 and -0.25 -> round(5.5) = 6 (ties away from zero;
 * ties to even would give 6 and 6), 1 -> 8, 0 -> zp. Three blocks: the second all zero
 * (scale 0, zp 0, q 0), the third with a NaN (q = zp) among 1s. */
static void test_ort_asym_by_hand(void **state)
{
    (void)state;
    float x[384] = { 0 };
    uint8_t q[3 * 69], want[3 * 69];
    x[0] = -3.0f;
    x[1] = 4.5f;
    x[2] = 0.25f;
    x[3] = -0.25f;
    x[4] = 1.0f;
    for (int i = 256; i < 384; i++)
        x[i] = 1.0f;
    x[257] = NAN;
    assert_int_equal(qf_quantize(QF_FMT_ORT_INT4_B128_ASYM, x, q, 1, 384), 0);

    memset(want, 0, sizeof want);
    f32_bytes(0.5f, want);                             /* 00 00 00 3f */
    want[4] = 6;
    memset(want + 5, 0x66, 64);
    want[5] = 0xf0;
    want[6] = 0x67;
    want[7] = 0x68;
    /* block 1: all zero bytes. block 2: lo = 0, hi = 1, scale = 1/15, zp = 0, 1 -> 15 */
    f32_bytes(1.0f / 15.0f, want + 138);
    want[142] = 0;
    memset(want + 143, 0xff, 64);
    want[143] = 0x0f;                                  /* weight 257 (high nibble) is the NaN */
    expect_bytes("ort_int4_b128_asym", q, want, sizeof want);

    float y[384];
    assert_int_equal(qf_dequantize(QF_FMT_ORT_INT4_B128_ASYM, q, y, 1, 384), 0);
    assert_true(y[0] == -3.0f && y[1] == 4.5f && y[2] == 0.5f && y[3] == 0.0f);
    assert_true(y[5] == 0.0f && y[200] == 0.0f && y[257] == 0.0f);
}

static void test_qnn_by_hand(void **state)
{
    (void)state;
    /* int8: amax 127 -> scale 1, offset 0; -63.5 -> -64, +-0.5 -> +-1, NaN -> 0 */
    float x[64] = { 127.0f, -63.5f, 0.5f, -0.5f, 2.49f, NAN };
    uint8_t q[8 + 2 * 64], want[8 + 2 * 64];
    assert_int_equal(qf_quantize(QF_FMT_QNN_INT8_PC, x, q, 1, 32), 0);
    memset(want, 0, sizeof want);
    f32_bytes(1.0f, want);                             /* 00 00 80 3f, offset 00 00 00 00 */
    want[8] = 0x7f;
    want[9] = 0xc0;
    want[10] = 0x01;
    want[11] = 0xff;
    want[12] = 0x02;
    expect_bytes("qnn_int8_pc", q, want, 8 + 32);

    /* all zero: amax raised to QNN's minimum (range 0.0001), values 0 */
    float z[32] = { 0 };
    assert_int_equal(qf_quantize(QF_FMT_QNN_INT8_PC, z, q, 1, 32), 0);
    memset(want, 0, sizeof want);
    f32_bytes(0.00005f / 127.0f, want);
    expect_bytes("qnn_int8_pc zeros", q, want, 8 + 32);
    assert_true(f32_at(q) > 0.0f);

    /* int16 on a row of 5 (f32 activations: any length): scale 1, little-endian int16 */
    float x16[5] = { 32767.0f, -1.5f, 0.5f, 100.25f, -32767.0f };
    assert_int_equal(qf_quantize(QF_FMT_QNN_INT16_PC, x16, q, 1, 5), 0);
    static const uint8_t want16[8 + 10] = { 0, 0, 0x80, 0x3f, 0, 0, 0, 0, 0xff, 0x7f, 0xfe,
                                            0xff, 0x01, 0x00, 0x64, 0x00, 0x01, 0x80 };
    expect_bytes("qnn_int16_pc", q, want16, sizeof want16);

    /* w4: amax 7 -> scale 1; 7, -3.5 -> -4 (0xc), 0.5 -> 1, 2.5 -> 3, -7 (0x9), 0 */
    float x4[32] = { 7.0f, -3.5f, 0.5f, 2.5f, -7.0f };
    assert_int_equal(qf_quantize(QF_FMT_QNN_W4_BLOCK, x4, q, 1, 32), 0);
    memset(want, 0, sizeof want);
    f32_bytes(1.0f, want);
    want[4] = 0xc7;
    want[5] = 0x31;
    want[6] = 0x09;
    expect_bytes("qnn_w4_block", q, want, 20);
    float y[32];
    assert_int_equal(qf_dequantize(QF_FMT_QNN_W4_BLOCK, q, y, 1, 32), 0);
    assert_true(y[0] == 7.0f && y[1] == -4.0f && y[4] == -7.0f && y[5] == 0.0f);
}

/* A QNN row from outside may carry a nonzero offset: w = scale * (q + offset), in the decoder
 * and in the dot product alike. */
static void test_qnn_offset_honoured(void **state)
{
    (void)state;
    uint8_t row[8 + 32] = { 0 };
    f32_bytes(0.25f, row);
    static const uint8_t minus3[4] = { 0xfd, 0xff, 0xff, 0xff };
    memcpy(row + 4, minus3, 4);
    for (int i = 0; i < 32; i++)
        row[8 + i] = (uint8_t)(int8_t)(i - 10);
    float y[32], a127[32], s;   /* 127: q8_0 holds it exactly (d = 1, q = 127) */
    assert_int_equal(qf_dequantize(QF_FMT_QNN_INT8_PC, row, y, 1, 32), 0);
    double want = 0;
    for (int i = 0; i < 32; i++) {
        if (y[i] != 0.25f * (float)(i - 13))
            fail_msg("qnn_int8_pc offset -3: weight %d decodes to %g, want %g", i, y[i],
                     0.25 * (i - 13));
        want += 127 * 0.25 * (i - 13);
        a127[i] = 127.0f;
    }
    assert_int_equal(qf_matvec_ref(QF_FMT_QNN_INT8_PC, row, a127, &s, 1, 32), 0);
    if (s != want)
        fail_msg("qnn_int8_pc offset -3: dot with 127s %.9g, want %.9g", s, want);

    uint8_t row16[8 + 2 * 3] = { 0 };
    f32_bytes(2.0f, row16);
    row16[4] = 5;                                      /* offset +5 */
    row16[8] = 0xfe;                                   /* q = -2, 0, 1 */
    row16[9] = 0xff;
    row16[12] = 1;
    float a[3] = { 1.0f, 10.0f, 100.0f };
    assert_int_equal(qf_matvec_ref(QF_FMT_QNN_INT16_PC, row16, a, &s, 1, 3), 0);
    if (s != 2.0f * (3.0f * 1.0f + 5.0f * 10.0f + 6.0f * 100.0f))
        fail_msg("qnn_int16_pc offset 5: dot %.9g, want 1306", s);
}

/* Our ort rows rearranged into MatMulNBits' three inputs as qf_blocks.h says, then decoded by
 * the operator's formula (q - zp) * scale with B's nibbles low first: must equal our decoder. */
static void check_matmulnbits_mapping(qf_format fmt, int bs, bool asym)
{
    enum { N = 3 };
    const int kb = K / bs, zp_cols = (kb + 1) / 2;
    static float w[N * K], ours[N * K];
    static uint8_t rows[N * K], B[N * K], zps[N * K];
    static float scales[N * K];
    qf_synth_params p = qf_synth_defaults(QF_SYNTH_STUDENT_T, 99);
    assert_int_equal(qf_synth_fill(&p, w, N, K), 0);
    assert_int_equal(qf_quantize(fmt, w, rows, N, K), 0);
    assert_int_equal(qf_dequantize(fmt, rows, ours, N, K), 0);

    size_t rs = qf_format_row_size(fmt, K), blk = rs / (size_t)kb, hdr = asym ? 5 : 4;
    memset(zps, 0x88, sizeof zps);                     /* odd kb: the pad nibble stays 8 */
    for (int n = 0; n < N; n++)
        for (int b = 0; b < kb; b++) {
            const uint8_t *src = rows + (size_t)n * rs + (size_t)b * blk;
            memcpy(B + ((size_t)n * kb + b) * (size_t)(bs / 2), src + hdr, (size_t)bs / 2);
            scales[n * kb + b] = f32_at(src);
            if (asym) {
                uint8_t *z = &zps[n * zp_cols + b / 2];
                *z = (uint8_t)(b % 2 ? (*z & 0x0f) | src[4] << 4 : (*z & 0xf0) | src[4]);
            }
        }
    for (int n = 0; n < N; n++)
        for (int k = 0; k < K; k++) {
            int b = k / bs, j = k % bs;
            uint8_t byte = B[((size_t)n * kb + b) * (size_t)(bs / 2) + j / 2];
            int qv = j % 2 ? byte >> 4 : byte & 0x0f;
            uint8_t zb = zps[n * zp_cols + b / 2];
            int zp = asym ? (b % 2 ? zb >> 4 : zb & 0x0f) : 8;
            float v = (float)(qv - zp) * scales[n * kb + b];
            if (v != ours[n * K + k])
                fail_msg("%s: MatMulNBits decodes row %d col %d to %.9g, ours %.9g",
                         name_of(fmt), n, k, v, ours[n * K + k]);
        }
    if (asym && kb % 2)
        for (int n = 0; n < N; n++)
            assert_int_equal(zps[n * zp_cols + zp_cols - 1] >> 4, 8);
}

static void test_matmulnbits_mapping(void **state)
{
    (void)state;
    check_matmulnbits_mapping(QF_FMT_ORT_INT4_B32, 32, false);
    check_matmulnbits_mapping(QF_FMT_ORT_INT4_B128, 128, false);
    check_matmulnbits_mapping(QF_FMT_ORT_INT4_B128_ASYM, 128, true);
}

/* --- round trip over inputs ---------------------------------------------------------------- */

enum { IN_GAUSS, IN_STUDENT_T, IN_SPIKE, IN_TINY, IN_LARGE, IN_F16_MAX, IN_ZERO, IN_NAN,
       IN_COUNT };
static const char *const k_in_names[IN_COUNT] = {
    "gaussian+outliers", "student-t", "one spike", "tiny", "large", "+-65504 mixed", "zeros",
    "NaN mixed",
};

static void make_input(int kind, float *x, int64_t nrows, uint64_t seed)
{
    qf_rng r;
    qf_rng_seed(&r, seed);
    qf_synth_params p = qf_synth_defaults(QF_SYNTH_GAUSSIAN, seed);
    if (kind == IN_GAUSS || kind == IN_STUDENT_T) {
        if (kind == IN_STUDENT_T) {
            p.dist = QF_SYNTH_STUDENT_T;
            p.student_nu = 3;
        }
        assert_int_equal(qf_synth_fill(&p, x, nrows, K), 0);
        return;
    }
    for (int64_t i = 0; i < nrows * K; i++) {
        double u = qf_rng_uniform(&r) - 0.5;
        switch (kind) {
        case IN_SPIKE:   x[i] = i % 97 == 5 ? 100.0f : (float)(u * 0.01); break;
        case IN_TINY:    x[i] = (float)(u * 1e-8); break;
        case IN_LARGE:   x[i] = (float)(u * 2000.0); break;
        case IN_F16_MAX: x[i] = i % 7 == 0 ? (i % 2 ? -65504.0f : 65504.0f) : (float)u; break;
        case IN_ZERO:    x[i] = 0.0f; break;
        case IN_NAN:     x[i] = i % 13 == 4 ? NAN : (float)u; break;
        default:         fail();
        }
    }
}

/* The largest |x - decoded| the format allows for weight i of a row, from the stored scale:
 * half a step, or a whole step where the value sits at a clamped end of the range (ORT: the
 * far side of the extreme when m / -8 leaves 7 steps up; asym: after zp's rounding). A
 * relative 1e-5 of the step covers r = 1 / scale being rounded, 2^-22 of |x| the binary32
 * rounding of x / scale and of the decode's scale * q (it shows at 16 bits). */
static double bound_of(qf_format fmt, const uint8_t *row, int64_t i, float x)
{
    const qf_format_traits *t = qf_format_get(fmt);
    double slack = fabs(x) * 0x1p-22;
    if (t->blck == 0)
        return fabs(f32_at(row)) * (0.5 + 1e-5) + slack;
    size_t blk = t->type_size;
    double scale = fabs(f32_at(row + (size_t)(i / t->blck) * blk));
    bool edge_may_clamp = fmt == QF_FMT_ORT_INT4_B32 || fmt == QF_FMT_ORT_INT4_B128 ||
                          fmt == QF_FMT_ORT_INT4_B128_ASYM;
    return scale * ((edge_may_clamp ? 1.0 : 0.5) + 1e-5) + slack;
}

static void test_roundtrip(void **state)
{
    (void)state;
    enum { R = 4 };
    static float x[R * K], y[R * K];
    static uint8_t q[R * ROW_MAX];
    for (size_t f = 0; f < N_FMTS; f++) {
        qf_format fmt = k_fmts[f];
        size_t rs = qf_format_row_size(fmt, K);
        assert_true(rs <= ROW_MAX);
        for (int in = 0; in < IN_COUNT; in++) {
            make_input(in, x, R, 300 + (uint64_t)in);
            assert_int_equal(qf_quantize(fmt, x, q, R, K), 0);
            assert_int_equal(qf_dequantize(fmt, q, y, R, K), 0);
            double worst = 0;
            for (int64_t r = 0; r < R; r++)
                for (int64_t i = 0; i < K; i++) {
                    float xi = x[r * K + i], yi = y[r * K + i];
                    if (isnan(xi) || xi == 0.0f) {   /* NaN and 0 decode to exactly 0 */
                        if (yi != 0.0f)
                            fail_msg("%s, %s: x[%" PRId64 "] = %g decodes to %g, want 0",
                                     name_of(fmt), k_in_names[in], r * K + i, xi, yi);
                        continue;
                    }
                    double e = fabs((double)xi - yi), b = bound_of(fmt, q + r * rs, i, xi);
                    if (!(e <= b))
                        fail_msg("%s, %s: x[%" PRId64 "] = %.9g decodes to %.9g, error %.3g > "
                                 "bound %.3g", name_of(fmt), k_in_names[in], r * K + i, xi, yi,
                                 e, b);
                    if (b > 0 && e / b > worst)
                        worst = e / b;
                }
            if (in == IN_GAUSS)
                printf("%-18s gaussian: worst error %.3f of its bound\n", name_of(fmt), worst);
        }
    }
}

/* QNN scales are strictly positive; the quantizer's offsets are 0. */
static void test_qnn_encoding_valid(void **state)
{
    (void)state;
    static float x[4 * K];
    static uint8_t q[4 * ROW_MAX];
    for (int in = 0; in < IN_COUNT; in++) {
        make_input(in, x, 4, 700 + (uint64_t)in);
        for (int f = 0; f < 3; f++) {
            qf_format fmt = f == 0 ? QF_FMT_QNN_INT8_PC : f == 1 ? QF_FMT_QNN_INT16_PC
                                                                 : QF_FMT_QNN_W4_BLOCK;
            const qf_format_traits *t = qf_format_get(fmt);
            size_t rs = qf_format_row_size(fmt, K);
            assert_int_equal(qf_quantize(fmt, x, q, 4, K), 0);
            for (int r = 0; r < 4; r++) {
                size_t nsc = t->blck ? (size_t)(K / t->blck) : 1;
                for (size_t b = 0; b < nsc; b++) {
                    const uint8_t *p = q + r * rs + b * (t->blck ? t->type_size : 0);
                    if (!(f32_at(p) > 0.0f))
                        fail_msg("%s, %s: row %d scale %d is %g", t->name, k_in_names[in], r,
                                 (int)b, f32_at(p));
                    if (!t->blck)
                        assert_int_equal(p[4] | p[5] | p[6] | p[7], 0);
                }
            }
        }
    }
}

/* --- dot products -------------------------------------------------------------------------- */

/* Reference matvec against the double dot of the decoded weights with the decoded activations:
 * the integer sums are exact, so only binary32 scaling and accumulation differ; 1e-5 of
 * sum|w a| (1e-6 for qnn_int16_pc, whose products are summed in double). */
static void test_matvec_vs_double(void **state)
{
    (void)state;
    enum { R = IN_COUNT - 1 };                      /* every input but NaN */
    static float w[R * K], wd[R * K], a[K], ad[K], y[R], tmp[K];
    static uint8_t q[R * ROW_MAX], qa[4 * K + 64];
    for (int in = 0; in < R; in++) {
        make_input(in, tmp, 1, 500 + (uint64_t)in);
        memcpy(w + in * K, tmp, sizeof tmp);
    }
    qf_rng rng;
    qf_rng_seed(&rng, 4243);
    for (int i = 0; i < K; i++)
        a[i] = (float)qf_rng_normal(&rng);

    for (size_t f = 0; f < N_FMTS; f++) {
        qf_format fmt = k_fmts[f], act = qf_format_get(fmt)->act;
        assert_int_equal(qf_quantize(fmt, w, q, R, K), 0);
        assert_int_equal(qf_dequantize(fmt, q, wd, R, K), 0);
        assert_int_equal(qf_quantize(act, a, qa, 1, K), 0);
        assert_int_equal(qf_dequantize(act, qa, ad, 1, K), 0);
        assert_int_equal(qf_matvec_ref(fmt, q, a, y, R, K), 0);
        double tol = fmt == QF_FMT_QNN_INT16_PC ? 1e-6 : 1e-5;
        for (int r = 0; r < R; r++) {
            double dot = 0, mag = 0;
            for (int i = 0; i < K; i++) {
                dot += (double)wd[r * K + i] * ad[i];
                mag += fabs((double)wd[r * K + i] * ad[i]);
            }
            if (!(fabs(y[r] - dot) <= tol * mag + 1e-30))
                fail_msg("%s, weights %s: matvec %.9g, double dot of decodes %.9g (|diff| "
                         "%.3g > %g * sum|w a| = %.3g)", name_of(fmt), k_in_names[r], y[r],
                         dot, fabs(y[r] - dot), tol, tol * mag);
        }
    }
}

/* One block per row, the shortest row each format takes; activations of 127, which q8_0 holds
 * exactly, so the dot must be 127 times the sum of the decoded weights. */
static void test_single_block_rows(void **state)
{
    (void)state;
    for (size_t f = 0; f < N_FMTS; f++) {
        qf_format fmt = k_fmts[f];
        const qf_format_traits *t = qf_format_get(fmt);
        int64_t k = t->blck ? t->blck : 32;
        float x[128], y[128], a[128], s;
        for (int64_t i = 0; i < k; i++) {
            x[i] = (float)((i * 37) % 11) - 5.0f;
            a[i] = 127.0f;
        }
        uint8_t q[8 + 2 * 128];
        assert_int_equal(qf_quantize(fmt, x, q, 1, k), 0);
        assert_int_equal(qf_dequantize(fmt, q, y, 1, k), 0);
        double want = 0;
        for (int64_t i = 0; i < k; i++)
            want += 127.0 * y[i];
        assert_int_equal(qf_matvec_ref(fmt, q, a, &s, 1, k), 0);
        if (fabs(s - want) > 1e-6 * fabs(want))
            fail_msg("%s, one block of %" PRId64 ": dot with 127s %.9g, want %.9g",
                     t->name, k, s, want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_geometry),
        cmocka_unit_test(test_ort_sym_by_hand),
        cmocka_unit_test(test_ort_asym_by_hand),
        cmocka_unit_test(test_qnn_by_hand),
        cmocka_unit_test(test_qnn_offset_honoured),
        cmocka_unit_test(test_matmulnbits_mapping),
        cmocka_unit_test(test_roundtrip),
        cmocka_unit_test(test_qnn_encoding_valid),
        cmocka_unit_test(test_matvec_vs_double),
        cmocka_unit_test(test_single_block_rows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
