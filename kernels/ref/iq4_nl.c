/* iq4_nl.c - STUB: being written. */
#include "qf_ref.h"

void qf_quantize_row_iq4_nl_ref(const float *x, void *y, int64_t k)
{
    (void)x;
    (void)y;
    (void)k;
}

void qf_dequantize_row_iq4_nl(const void *x, float *y, int64_t k)
{
    (void)x;
    (void)y;
    (void)k;
}

void qf_vec_dot_iq4_nl_q8_0_ref(int64_t k, const void *w, const void *a, float *s)
{
    (void)k;
    (void)w;
    (void)a;
    (void)s;
}

const int8_t qf_kvalues_iq4nl[16] = {0};
