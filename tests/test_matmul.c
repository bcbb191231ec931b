/* test_matmul.c - the thread pool and Y = X W^T (kernels/matmul.c).
 *
 * Every y is one vec_dot of the kernel set, whatever the threads and tiles, so the product must
 * be bit-identical to calling the set's vec_dot on each (weight row, activation row) pair after
 * quantizing the activations with the set's quantize_act: checked on every ISA the host runs,
 * for shapes that leave partial tiles and uneven thread shares, with 1, 2 and 3 threads (more
 * threads than rows too). The reference set's matvec must also equal qf_matvec_ref. Outputs
 * are poisoned with NaN first; pools are made and destroyed many times (no hang, no leak).
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

#include "qf_matmul.h"
#include "qf_rng.h"

static void *xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    assert_non_null(p);
    return p;
}

static void fill(float *x, int64_t n, qf_rng *r)
{
    for (int64_t i = 0; i < n; i++)
        x[i] = (float)qf_rng_normal(r);
}

static void check_product(qf_isa isa, qf_format fmt, int64_t nrows, int64_t ncols, int64_t n,
                          qf_pool *pool, qf_rng *rng)
{
    qf_kernel_set ks;
    assert_int_equal(qf_kernels_get(isa, fmt, &ks), 0);
    const qf_format_traits *t = qf_format_get(fmt);
    size_t wr = qf_format_row_size(fmt, ncols), xr = qf_format_row_size(t->act, ncols);
    float *wf = xmalloc((size_t)(nrows * ncols) * sizeof(float));
    float *x = xmalloc((size_t)(n * ncols) * sizeof(float));
    float *y = xmalloc((size_t)(n * nrows) * sizeof(float));
    void *w = xmalloc(wr * (size_t)nrows), *xq = xmalloc(xr);
    void *scratch = xmalloc(qf_matmul_scratch_bytes(&ks, n, ncols));
    fill(wf, nrows * ncols, rng);
    fill(x, n * ncols, rng);
    for (int64_t r = 0; r < nrows; r++)
        ks.quantize(wf + r * ncols, (char *)w + (size_t)r * wr, ncols);
    for (int64_t i = 0; i < n * nrows; i++)
        y[i] = NAN;

    qf_matmul(&ks, w, nrows, ncols, x, n, y, scratch, pool);

    for (int64_t j = 0; j < n; j++) {
        ks.quantize_act(x + j * ncols, xq, ncols);
        for (int64_t r = 0; r < nrows; r++) {
            float want = NAN;
            ks.vec_dot(ncols, (char *)w + (size_t)r * wr, xq, &want);
            float got = y[j * nrows + r];
            if (memcmp(&got, &want, sizeof got) != 0)
                fail_msg("%s %s %" PRId64 "x%" PRId64 ", n %" PRId64 ", %d threads: y[%" PRId64
                         "][%" PRId64 "] = %.9g, its vec_dot gives %.9g", qf_isa_name(isa),
                         t->name, nrows, ncols, n, qf_pool_threads(pool), j, r, (double)got,
                         (double)want);
        }
    }
    if (isa == QF_ISA_REF && n == 1) {
        float *yref = xmalloc((size_t)nrows * sizeof(float));
        assert_int_equal(qf_matvec_ref(fmt, w, x, yref, nrows, ncols), 0);
        assert_memory_equal(y, yref, (size_t)nrows * sizeof(float));
        free(yref);
    }
    free(wf);
    free(x);
    free(y);
    free(w);
    free(xq);
    free(scratch);
}

static void test_products(void **state)
{
    (void)state;
    static const qf_format fmts[] = { QF_FMT_F16, QF_FMT_Q8_0, QF_FMT_Q4_0, QF_FMT_Q4_1,
                                      QF_FMT_Q4_K, QF_FMT_Q6_K, QF_FMT_INT4_G32 };
    static const int64_t shapes[][3] = {      /* rows, cols, n */
        { 1, 256, 1 }, { 37, 512, 1 }, { 37, 512, 3 }, { 50, 256, 17 }, { 2, 768, 5 },
    };
    qf_rng rng;
    qf_rng_seed(&rng, 0x3a73u);
    for (int threads = 1; threads <= 3; threads++) {
        qf_pool *pool = NULL;
        assert_int_equal(qf_pool_new(threads, false, &pool), 0);
        assert_int_equal(qf_pool_threads(pool), threads);
        for (int i = 0; i < QF_ISA_COUNT; i++) {
            if (!qf_isa_host_supports((qf_isa)i))
                continue;
            for (size_t f = 0; f < sizeof fmts / sizeof fmts[0]; f++)
                for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
                    check_product((qf_isa)i, fmts[f], shapes[s][0], shapes[s][1], shapes[s][2],
                                  pool, &rng);
        }
        qf_pool_destroy(&pool);
        assert_null(pool);
    }
    /* no pool: the caller's thread alone */
    check_product(QF_ISA_REF, QF_FMT_Q8_0, 9, 256, 4, NULL, &rng);
}

static void test_pool_lifecycle(void **state)
{
    (void)state;
    qf_rng rng;
    qf_rng_seed(&rng, 7);
    for (int i = 0; i < 50; i++) {
        qf_pool *pool = NULL;
        assert_int_equal(qf_pool_new(1 + i % 4, i % 2 == 0, &pool), 0);
        if (i % 5 == 0)
            check_product(QF_ISA_REF, QF_FMT_Q4_0, 8, 64, 2, pool, &rng);
        qf_pool_destroy(&pool);
    }
    qf_pool_destroy(NULL);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_products),
        cmocka_unit_test(test_pool_lifecycle),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
