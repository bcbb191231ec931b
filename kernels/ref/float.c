/* float.c - binary16/bfloat16 conversions and the float formats' reference row kernels.
 *
 * The conversions are integer bit manipulation with round-to-nearest-even, so they give the
 * same bits as ggml's (and as the F16C instruction) on every host and under any FPU mode:
 * every quantizer that stores an f16 scale goes through qf_fp32_to_fp16, so this function
 * decides byte-exactness for all GGUF formats. NaN becomes the canonical quiet NaN 0x7e00
 * with its sign, as ggml's portable converter does.
 * The float dot products accumulate float products in double, as ggml's generic code does.
 */
#include <pthread.h>
#include <string.h>

#include "qf_formats.h"
#include "qf_ref.h"

static uint32_t f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

static float f32_from_bits(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Adds one to r when the dropped bits rem (out of 2^shift) are above half, or exactly half
 * and r is odd: round to nearest, ties to even. */
static uint32_t round_even(uint32_t r, uint32_t rem, unsigned shift)
{
    uint32_t half = 1u << (shift - 1);
    return r + (rem > half || (rem == half && (r & 1u)));
}

qf_half qf_fp32_to_fp16(float f)
{
    uint32_t x = f32_bits(f);
    uint32_t sign = (x >> 16) & 0x8000u;
    uint32_t ax = x & 0x7fffffffu;

    if (ax > 0x7f800000u)                 /* NaN */
        return (qf_half)(sign | 0x7e00u);
    if (ax >= 0x477ff000u)                /* >= 65520 rounds to infinity (and inf stays inf) */
        return (qf_half)(sign | 0x7c00u);
    if (ax >= 0x38800000u)                /* normal half: rebias the exponent by 127 - 15 */
        return (qf_half)(sign | round_even((ax - 0x38000000u) >> 13, ax & 0x1fffu, 13));
    if (ax <= 0x33000000u)                /* at most 2^-25, half the smallest subnormal: 0 */
        return (qf_half)sign;
    /* subnormal half: the value in units of 2^-24 is m * 2^(e - 126) */
    uint32_t e = ax >> 23;
    uint32_t m = (ax & 0x7fffffu) | 0x800000u;
    unsigned shift = 126u - e;            /* 14..24 */
    return (qf_half)(sign | round_even(m >> shift, m & ((1u << shift) - 1u), shift));
}

float qf_fp16_to_fp32(qf_half h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16;
    uint32_t e = (h >> 10) & 0x1fu;
    uint32_t m = h & 0x3ffu;

    if (e == 0x1f)                        /* inf; NaN keeps its payload and becomes quiet */
        return f32_from_bits(sign | 0x7f800000u | (m << 13) | (m ? 0x400000u : 0u));
    if (e != 0)
        return f32_from_bits(sign | ((e + 112u) << 23) | (m << 13));
    if (m == 0)
        return f32_from_bits(sign);
    /* subnormal: m * 2^-24, exact in binary32 */
    float v = (float)m * 0x1p-24f;
    return sign ? -v : v;
}

qf_bf16 qf_fp32_to_bf16(float f)
{
    uint32_t u = f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u)  /* NaN: truncate and force quiet */
        return (qf_bf16)((u >> 16) | 64u);
    return (qf_bf16)((u + (0x7fffu + ((u >> 16) & 1u))) >> 16);
}

float qf_bf16_to_fp32(qf_bf16 h)
{
    return f32_from_bits((uint32_t)h << 16);
}

/* --- f32 ------------------------------------------------------------------------------------ */

void qf_quantize_row_f32_ref(const float *x, void *y, int64_t k)
{
    memcpy(y, x, (size_t)k * sizeof(float));
}

void qf_dequantize_row_f32(const void *x, float *y, int64_t k)
{
    memcpy(y, x, (size_t)k * sizeof(float));
}

void qf_vec_dot_f32_f32_ref(int64_t k, const void *w, const void *a, float *s)
{
    const float *x = w, *y = a;
    double sum = 0.0;
    for (int64_t i = 0; i < k; i++)
        sum += (double)(x[i] * y[i]);
    *s = (float)sum;
}

/* --- f16 ------------------------------------------------------------------------------------ */

void qf_quantize_row_f16_ref(const float *x, void *y, int64_t k)
{
    qf_half *h = y;
    for (int64_t i = 0; i < k; i++)
        h[i] = qf_fp32_to_fp16(x[i]);
}

/* Every binary16 value decoded once (256 KiB), as ggml's table does: the f16 rows decode by
 * lookup, so the f16 baseline of a report is not slowed by the bit-by-bit routine above (which
 * stays the definition: the table is built from it). */
static float g_f16_table[1 << 16];
static pthread_once_t g_f16_once = PTHREAD_ONCE_INIT;

static void f16_table_build(void)
{
    for (uint32_t i = 0; i < (1u << 16); i++)
        g_f16_table[i] = qf_fp16_to_fp32((qf_half)i);
}

const float *qf_f16_table(void)
{
    pthread_once(&g_f16_once, f16_table_build);
    return g_f16_table;
}

void qf_dequantize_row_f16(const void *x, float *y, int64_t k)
{
    const qf_half *h = x;
    const float *t = qf_f16_table();
    for (int64_t i = 0; i < k; i++)
        y[i] = t[h[i]];
}

void qf_vec_dot_f16_f16_ref(int64_t k, const void *w, const void *a, float *s)
{
    const qf_half *x = w, *y = a;
    const float *t = qf_f16_table();
    double sum = 0.0;
    for (int64_t i = 0; i < k; i++)
        sum += (double)(t[x[i]] * t[y[i]]);
    *s = (float)sum;
}

/* --- bf16 ----------------------------------------------------------------------------------- */

void qf_quantize_row_bf16_ref(const float *x, void *y, int64_t k)
{
    qf_bf16 *h = y;
    for (int64_t i = 0; i < k; i++)
        h[i] = qf_fp32_to_bf16(x[i]);
}

void qf_dequantize_row_bf16(const void *x, float *y, int64_t k)
{
    const qf_bf16 *h = x;
    for (int64_t i = 0; i < k; i++)
        y[i] = qf_bf16_to_fp32(h[i]);
}

void qf_vec_dot_bf16_bf16_ref(int64_t k, const void *w, const void *a, float *s)
{
    const qf_bf16 *x = w, *y = a;
    double sum = 0.0;
    for (int64_t i = 0; i < k; i++)
        sum += (double)(qf_bf16_to_fp32(x[i]) * qf_bf16_to_fp32(y[i]));
    *s = (float)sum;
}
