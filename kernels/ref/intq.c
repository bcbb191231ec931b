/* intq.c - STUB: being written. */
#include "qf_ref.h"

void qf_quantize_row_int8_pc_ref(const float *x, void *y, int64_t k)
{
    (void)x;
    (void)y;
    (void)k;
}

void qf_dequantize_row_int8_pc(const void *x, float *y, int64_t k)
{
    (void)x;
    (void)y;
    (void)k;
}

void qf_vec_dot_int8_pc_q8_0_ref(int64_t k, const void *w, const void *a, float *s)
{
    (void)k;
    (void)w;
    (void)a;
    (void)s;
}

void qf_quantize_row_int4_g32_ref(const float *x, void *y, int64_t k)
{
    (void)x;
    (void)y;
    (void)k;
}

void qf_dequantize_row_int4_g32(const void *x, float *y, int64_t k)
{
    (void)x;
    (void)y;
    (void)k;
}

void qf_vec_dot_int4_g32_q8_0_ref(int64_t k, const void *w, const void *a, float *s)
{
    (void)k;
    (void)w;
    (void)a;
    (void)s;
}

void qf_quantize_row_int4_g64_ref(const float *x, void *y, int64_t k)
{
    (void)x;
    (void)y;
    (void)k;
}

void qf_dequantize_row_int4_g64(const void *x, float *y, int64_t k)
{
    (void)x;
    (void)y;
    (void)k;
}

void qf_vec_dot_int4_g64_q8_0_ref(int64_t k, const void *w, const void *a, float *s)
{
    (void)k;
    (void)w;
    (void)a;
    (void)s;
}

void qf_quantize_row_int4_g128_ref(const float *x, void *y, int64_t k)
{
    (void)x;
    (void)y;
    (void)k;
}

void qf_dequantize_row_int4_g128(const void *x, float *y, int64_t k)
{
    (void)x;
    (void)y;
    (void)k;
}

void qf_vec_dot_int4_g128_q8_0_ref(int64_t k, const void *w, const void *a, float *s)
{
    (void)k;
    (void)w;
    (void)a;
    (void)s;
}

