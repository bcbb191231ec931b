/* legacy.c - STUB: being written. */
#include "qf_ref.h"

void qf_quantize_row_q8_0_ref(const float *x, void *y, int64_t k)
{
    (void)x;
    (void)y;
    (void)k;
}

void qf_dequantize_row_q8_0(const void *x, float *y, int64_t k)
{
    (void)x;
    (void)y;
    (void)k;
}

void qf_vec_dot_q8_0_q8_0_ref(int64_t k, const void *w, const void *a, float *s)
{
    (void)k;
    (void)w;
    (void)a;
    (void)s;
}

void qf_quantize_row_q8_1_ref(const float *x, void *y, int64_t k)
{
    (void)x;
    (void)y;
    (void)k;
}

void qf_dequantize_row_q8_1(const void *x, float *y, int64_t k)
{
    (void)x;
    (void)y;
    (void)k;
}

void qf_quantize_row_q4_0_ref(const float *x, void *y, int64_t k)
{
    (void)x;
    (void)y;
    (void)k;
}

void qf_dequantize_row_q4_0(const void *x, float *y, int64_t k)
{
    (void)x;
    (void)y;
    (void)k;
}

void qf_vec_dot_q4_0_q8_0_ref(int64_t k, const void *w, const void *a, float *s)
{
    (void)k;
    (void)w;
    (void)a;
    (void)s;
}

void qf_quantize_row_q4_1_ref(const float *x, void *y, int64_t k)
{
    (void)x;
    (void)y;
    (void)k;
}

void qf_dequantize_row_q4_1(const void *x, float *y, int64_t k)
{
    (void)x;
    (void)y;
    (void)k;
}

void qf_vec_dot_q4_1_q8_1_ref(int64_t k, const void *w, const void *a, float *s)
{
    (void)k;
    (void)w;
    (void)a;
    (void)s;
}

void qf_quantize_row_q5_0_ref(const float *x, void *y, int64_t k)
{
    (void)x;
    (void)y;
    (void)k;
}

void qf_dequantize_row_q5_0(const void *x, float *y, int64_t k)
{
    (void)x;
    (void)y;
    (void)k;
}

void qf_vec_dot_q5_0_q8_0_ref(int64_t k, const void *w, const void *a, float *s)
{
    (void)k;
    (void)w;
    (void)a;
    (void)s;
}

void qf_quantize_row_q5_1_ref(const float *x, void *y, int64_t k)
{
    (void)x;
    (void)y;
    (void)k;
}

void qf_dequantize_row_q5_1(const void *x, float *y, int64_t k)
{
    (void)x;
    (void)y;
    (void)k;
}

void qf_vec_dot_q5_1_q8_1_ref(int64_t k, const void *w, const void *a, float *s)
{
    (void)k;
    (void)w;
    (void)a;
    (void)s;
}

