/* kquants.c - STUB: being written. */
#include "qf_ref.h"

void qf_quantize_row_q2_K_ref(const float *x, void *y, int64_t k)
{
    (void)x;
    (void)y;
    (void)k;
}

void qf_dequantize_row_q2_K(const void *x, float *y, int64_t k)
{
    (void)x;
    (void)y;
    (void)k;
}

void qf_vec_dot_q2_K_q8_K_ref(int64_t k, const void *w, const void *a, float *s)
{
    (void)k;
    (void)w;
    (void)a;
    (void)s;
}

void qf_quantize_row_q3_K_ref(const float *x, void *y, int64_t k)
{
    (void)x;
    (void)y;
    (void)k;
}

void qf_dequantize_row_q3_K(const void *x, float *y, int64_t k)
{
    (void)x;
    (void)y;
    (void)k;
}

void qf_vec_dot_q3_K_q8_K_ref(int64_t k, const void *w, const void *a, float *s)
{
    (void)k;
    (void)w;
    (void)a;
    (void)s;
}

void qf_quantize_row_q4_K_ref(const float *x, void *y, int64_t k)
{
    (void)x;
    (void)y;
    (void)k;
}

void qf_dequantize_row_q4_K(const void *x, float *y, int64_t k)
{
    (void)x;
    (void)y;
    (void)k;
}

void qf_vec_dot_q4_K_q8_K_ref(int64_t k, const void *w, const void *a, float *s)
{
    (void)k;
    (void)w;
    (void)a;
    (void)s;
}

void qf_quantize_row_q5_K_ref(const float *x, void *y, int64_t k)
{
    (void)x;
    (void)y;
    (void)k;
}

void qf_dequantize_row_q5_K(const void *x, float *y, int64_t k)
{
    (void)x;
    (void)y;
    (void)k;
}

void qf_vec_dot_q5_K_q8_K_ref(int64_t k, const void *w, const void *a, float *s)
{
    (void)k;
    (void)w;
    (void)a;
    (void)s;
}

void qf_quantize_row_q6_K_ref(const float *x, void *y, int64_t k)
{
    (void)x;
    (void)y;
    (void)k;
}

void qf_dequantize_row_q6_K(const void *x, float *y, int64_t k)
{
    (void)x;
    (void)y;
    (void)k;
}

void qf_vec_dot_q6_K_q8_K_ref(int64_t k, const void *w, const void *a, float *s)
{
    (void)k;
    (void)w;
    (void)a;
    (void)s;
}

void qf_quantize_row_q8_K_ref(const float *x, void *y, int64_t k)
{
    (void)x;
    (void)y;
    (void)k;
}

void qf_dequantize_row_q8_K(const void *x, float *y, int64_t k)
{
    (void)x;
    (void)y;
    (void)k;
}

