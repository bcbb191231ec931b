/* float.c - STUB: being written. */
#include "qf_ref.h"

void qf_quantize_row_f32_ref(const float *x, void *y, int64_t k)
{
    (void)x;
    (void)y;
    (void)k;
}

void qf_dequantize_row_f32(const void *x, float *y, int64_t k)
{
    (void)x;
    (void)y;
    (void)k;
}

void qf_vec_dot_f32_f32_ref(int64_t k, const void *w, const void *a, float *s)
{
    (void)k;
    (void)w;
    (void)a;
    (void)s;
}

void qf_quantize_row_f16_ref(const float *x, void *y, int64_t k)
{
    (void)x;
    (void)y;
    (void)k;
}

void qf_dequantize_row_f16(const void *x, float *y, int64_t k)
{
    (void)x;
    (void)y;
    (void)k;
}

void qf_vec_dot_f16_f16_ref(int64_t k, const void *w, const void *a, float *s)
{
    (void)k;
    (void)w;
    (void)a;
    (void)s;
}

void qf_quantize_row_bf16_ref(const float *x, void *y, int64_t k)
{
    (void)x;
    (void)y;
    (void)k;
}

void qf_dequantize_row_bf16(const void *x, float *y, int64_t k)
{
    (void)x;
    (void)y;
    (void)k;
}

void qf_vec_dot_bf16_bf16_ref(int64_t k, const void *w, const void *a, float *s)
{
    (void)k;
    (void)w;
    (void)a;
    (void)s;
}

