/* gptq.c - GPTQ for one linear layer into the format table's 4-bit formats (qf_gptq.h).
 *
 * The algorithm is the paper's (Frantar et al. 2022) as the IST-DASLab reference runs it:
 *   H = 2 X^T X / n (double, BLAS dsyrk); a column no sample touches (diag 0) is "dead": its
 *   diagonal becomes 1 and its weights 0. With act-order the columns are visited by decreasing
 *   diag H. percdamp * mean(diag H) is added to the diagonal; then U, the upper Cholesky factor
 *   of H^-1 (LAPACKE potrf and trtri of H reversed: inverse_factor). Column j of each row is
 *   rounded onto its block's grid, err = (w - ŵ) / U[j][j], and w[k] -= err * U[j][k] for the
 *   later columns of the same batch of 128; the columns after the batch get all of the
 *   batch's errors at once with one sgemm (the "lazy batch" update). Rows never interact, so a
 *   batch's columns are split across threads by rows.
 *
 * Grids. A block format enters GPTQ through one row of k_grids: its block, the weights that
 * share a scale (one "level table" of 16 values), where its 4-bit codes sit and how they are
 * packed. The three operations are the same for every format:
 *   choose: when a block starts (or, with act-order, for every block up front from the
 *           original weights: static groups, so a block's parameters never depend on the
 *           visiting order), the format's quantizer picks the block's header from the block's
 *           current, error-updated values, importance-weighted with diag H where the format's
 *           ggml quantizer takes weights (qf_quantize_weighted: q4_0, q4_1, iq4_nl, q4_K's
 *           6-bit sub-block scales and mins), plainly otherwise, and writes it; then the block is
 *           decoded with every code set to q = 0..15 in turn (the format's own dequantize),
 *           which gives each sub-block's 16 levels exactly as qf_dequantize will see them.
 *   round:  the nearest of the 16 levels (ties to the lower code).
 *   write:  the code goes into its nibble.
 * So the bytes decode to the very ŵ the error feedback used, by construction, for any 4-bit
 * format whose decoded value of a weight depends only on the block header and its own code.
 *
 * Not hot in the kernels' sense, but a 4096 x 4096 layer is ~10^11 flops of BLAS: run time is
 * reported. Buffers are allocated per call (the Hessian, its factor, a working copy of W).
 */
#include <assert.h>
#include <cblas.h>
#include <float.h>
#include <lapacke.h>
#include <math.h>
#include <pthread.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "qf_err.h"
#include "qf_gptq.h"
#include "qf_imatrix.h"
#include "qf_rng.h"
#include "qf_time.h"

#if defined(__clang__)
#pragma STDC FP_CONTRACT OFF
#endif

#define LAZY_COLS  128   /* columns per lazy batch (the reference's blocksize) */
#define LEVELS     16    /* 4-bit codes */
#define BLOCK_MAX  256   /* the largest block of a grid format (q4_K) */
#define MAX_THREADS 256

/* How a block's 4-bit codes are packed: as q4_0 (weight j and j + B/2 share byte j), as q4_K
 * (weight 64p + 32t + l is nibble t of byte 32p + l) or as MatMulNBits (2j and 2j + 1). */
typedef enum nibble_pack { PACK_HALVES, PACK_K4, PACK_PAIRS } nibble_pack;

typedef struct grid {
    qf_format   fmt;
    int         block;    /* weights per block */
    int         sub;      /* weights sharing one level table */
    size_t      qs_off;   /* bytes before the codes in a block */
    nibble_pack pack;
} grid;

static const grid k_grids[] = {
    { QF_FMT_Q4_0, QF_QK4_0, QF_QK4_0, offsetof(qf_block_q4_0, qs), PACK_HALVES },
    { QF_FMT_Q4_1, QF_QK4_1, QF_QK4_1, offsetof(qf_block_q4_1, qs), PACK_HALVES },
    { QF_FMT_IQ4_NL, QF_QK4_NL, QF_QK4_NL, offsetof(qf_block_iq4_nl, qs), PACK_HALVES },
    { QF_FMT_Q4_K, QF_QK_K, 32, offsetof(qf_block_q4_K, qs), PACK_K4 },
    { QF_FMT_INT4_G32, 32, 32, offsetof(qf_block_int4_g32, qs), PACK_HALVES },
    { QF_FMT_INT4_G64, 64, 64, offsetof(qf_block_int4_g64, qs), PACK_HALVES },
    { QF_FMT_INT4_G128, 128, 128, offsetof(qf_block_int4_g128, qs), PACK_HALVES },
    /* the frameworks' native 4-bit block formats (qf_blocks.h) */
    { QF_FMT_ORT_INT4_B32, 32, 32, offsetof(qf_block_ort_int4_b32, qs), PACK_PAIRS },
    { QF_FMT_ORT_INT4_B128, 128, 128, offsetof(qf_block_ort_int4_b128, qs), PACK_PAIRS },
    { QF_FMT_ORT_INT4_B128_ASYM, 128, 128, offsetof(qf_block_ort_int4_b128_asym, qs),
      PACK_PAIRS },
    { QF_FMT_QNN_W4_BLOCK, QF_QNN_W4_BLOCK, QF_QNN_W4_BLOCK, offsetof(qf_block_qnn_w4, qs),
      PACK_PAIRS },
    { QF_FMT_NNCF_INT4_SYM_G128, QF_NNCF_G, QF_NNCF_G, offsetof(qf_block_nncf_int4_sym_g128, qs),
      PACK_PAIRS },
    { QF_FMT_NNCF_INT4_ASYM_G128, QF_NNCF_G, QF_NNCF_G,
      offsetof(qf_block_nncf_int4_asym_g128, qs), PACK_PAIRS },
    { QF_FMT_MLX_AFFINE4_G32, 32, 32, offsetof(qf_block_mlx_affine4_g32, qs), PACK_PAIRS },
    { QF_FMT_MLX_AFFINE4_G64, 64, 64, offsetof(qf_block_mlx_affine4_g64, qs), PACK_PAIRS },
    { QF_FMT_MLX_AFFINE4_G128, 128, 128, offsetof(qf_block_mlx_affine4_g128, qs), PACK_PAIRS },
};

#define N_GRIDS (sizeof k_grids / sizeof k_grids[0])

static const grid *grid_find(qf_format fmt)
{
    for (size_t i = 0; i < N_GRIDS; i++)
        if (k_grids[i].fmt == fmt)
            return &k_grids[i];
    return NULL;
}

bool qf_gptq_supports(qf_format fmt)
{
    return grid_find(fmt) != NULL;
}

qf_gptq_params qf_gptq_defaults(void)
{
    return (qf_gptq_params){ .percdamp = 0.01, .act_order = false, .threads = 0 };
}

/* The byte and shift of weight j's code within the block's codes. */
static void code_at(const grid *g, int j, int *byte, int *shift)
{
    if (g->pack == PACK_K4) {
        *byte = 32 * (j / 64) + j % 32;
        *shift = 4 * ((j / 32) % 2);
    } else if (g->pack == PACK_PAIRS) {
        *byte = j / 2;
        *shift = 4 * (j % 2);
    } else {
        *byte = j % (g->block / 2);
        *shift = 4 * (j / (g->block / 2));
    }
}

/* choose: the block's header from its current values x (block weights) and its columns'
 * importance imp, written to blk with every code 0; lv gets block / sub level tables of
 * LEVELS values. */
static void grid_choose(const grid *g, const qf_format_traits *t, const float *x,
                        const float *imp, uint8_t *blk, float *lv)
{
    float dec[BLOCK_MAX];
    uint8_t *qs = blk + g->qs_off;
    size_t nqs = (size_t)g->block / 2;

    int err = qf_quantize_weighted(g->fmt, x, blk, 1, g->block, imp);
    assert(err == 0);           /* the shape and the importance were checked by the caller */
    (void)err;
    for (int q = 0; q < LEVELS; q++) {
        memset(qs, q * 0x11, nqs);
        t->dequantize(blk, dec, g->block);
        for (int s = 0; s < g->block / g->sub; s++)
            lv[s * LEVELS + q] = dec[s * g->sub];
    }
    memset(qs, 0, nqs);
}

/* round: the code of the level nearest to w. */
static int grid_round(const float *lv, float w)
{
    int best = 0;
    float bd = fabsf(w - lv[0]);
    for (int q = 1; q < LEVELS; q++) {
        float d = fabsf(w - lv[q]);
        if (d < bd) {
            bd = d;
            best = q;
        }
    }
    return best;
}

/* write: code q of weight j into the block (its nibble was 0). */
static void grid_write(const grid *g, uint8_t *blk, int j, int q)
{
    int byte, shift;
    code_at(g, j, &byte, &shift);
    blk[g->qs_off + (size_t)byte] |= (uint8_t)(q << shift);
}

/* --- the column loop --------------------------------------------------------------------- */

typedef struct gptq_run {
    const grid *g;
    const qf_format_traits *t;
    int64_t rows, cols, nblk;   /* nblk: blocks per row */
    int     nsub;               /* level tables per block */
    size_t  row_size;
    float  *wk;                 /* rows x cols, the working copy, columns in visiting order */
    const float *hinv;          /* cols x cols, U in its upper triangle */
    const int64_t *perm;        /* act-order: visiting position j is column perm[j]; else NULL */
    const float *imp;           /* cols: diag H (undampened), the columns' importance */
    float  *lv;                 /* rows x nblk x nsub level tables */
    uint8_t *dst;
    float  *w_hat;              /* optional, rows x cols in the original column order */
    float  *err1;               /* rows x LAZY_COLS: the batch's scaled errors */
} gptq_run;

static float *row_levels(const gptq_run *run, int64_t r, int64_t b)
{
    return run->lv + ((size_t)r * (size_t)run->nblk + (size_t)b) * (size_t)run->nsub * LEVELS;
}

static uint8_t *row_block(const gptq_run *run, int64_t r, int64_t b)
{
    return run->dst + (size_t)r * run->row_size + (size_t)b * run->t->type_size;
}

/* Static groups: every block's grid from the rows' (original-order) values before any column
 * is quantized. */
static void choose_all(const gptq_run *run, int64_t r0, int64_t r1)
{
    for (int64_t r = r0; r < r1; r++)
        for (int64_t b = 0; b < run->nblk; b++)
            grid_choose(run->g, run->t, run->wk + r * run->cols + b * run->g->block,
                        run->imp + b * run->g->block, row_block(run, r, b),
                        row_levels(run, r, b));
}

/* y[0..n) -= a * x[0..n): the error feedback within a batch, half of the column loop's time.
 * Written in fixed runs of 8 so that -O2's cheap vectorizer takes it. */
static void axpy_sub(float *restrict y, const float *restrict x, float a, int64_t n)
{
    int64_t k = 0;
    for (; k + 8 <= n; k += 8)
        for (int l = 0; l < 8; l++)
            y[k + l] -= a * x[k + l];
    for (; k < n; k++)
        y[k] -= a * x[k];
}

/* Visiting positions i1..i2 (one lazy batch) of rows r0..r1. */
static void quantize_batch(const gptq_run *run, int64_t r0, int64_t r1, int64_t i1, int64_t i2)
{
    const grid *g = run->g;
    const int64_t cols = run->cols;
    for (int64_t r = r0; r < r1; r++) {
        float *wr = run->wk + r * cols;
        float *er = run->err1 + r * LAZY_COLS;
        for (int64_t j = i1; j < i2; j++) {
            int64_t c = run->perm ? run->perm[j] : j;
            int64_t b = c / g->block;
            int in = (int)(c % g->block);
            uint8_t *blk = row_block(run, r, b);
            float *lvb = row_levels(run, r, b);
            if (!run->perm && in == 0)   /* a block starts: its grid from its current values */
                grid_choose(g, run->t, wr + j, run->imp + c, blk, lvb);
            const float *lv = lvb + (in / g->sub) * LEVELS;
            float w = wr[j];
            int q = grid_round(lv, w);
            grid_write(g, blk, in, q);
            if (run->w_hat)
                run->w_hat[r * cols + c] = lv[q];
            const float *u = run->hinv + j * cols;
            float e = (w - lv[q]) / u[j];
            axpy_sub(wr + j + 1, u + j + 1, e, i2 - j - 1);
            er[j - i1] = e;
        }
    }
}

typedef struct slice {
    const gptq_run *run;
    int64_t r0, r1, i1, i2;
    bool    all;                /* choose_all instead of quantize_batch */
} slice;

static void slice_do(const slice *s)
{
    if (s->all)
        choose_all(s->run, s->r0, s->r1);
    else
        quantize_batch(s->run, s->r0, s->r1, s->i1, s->i2);
}

static void *slice_main(void *arg)
{
    slice_do(arg);
    return NULL;
}

/* Splits rows across nthreads (the caller is one of them). A thread that cannot be started
 * leaves its slice to the caller: slower, same result. */
static void run_rows(const gptq_run *run, int nthreads, bool all, int64_t i1, int64_t i2)
{
    slice sl[MAX_THREADS];
    pthread_t tid[MAX_THREADS];
    bool started[MAX_THREADS];
    if (nthreads > run->rows)
        nthreads = (int)run->rows;
    for (int i = 0; i < nthreads; i++) {
        sl[i] = (slice){ .run = run, .r0 = run->rows * i / nthreads,
                         .r1 = run->rows * (i + 1) / nthreads, .i1 = i1, .i2 = i2, .all = all };
        started[i] = i > 0 && pthread_create(&tid[i], NULL, slice_main, &sl[i]) == 0;
    }
    for (int i = 0; i < nthreads; i++)
        if (!started[i])
            slice_do(&sl[i]);
    for (int i = 1; i < nthreads; i++)
        if (started[i])
            pthread_join(tid[i], NULL);
}

/* --- the Hessian and its factor ------------------------------------------------------------ */

#define CHUNK_ROWS 256   /* samples converted to double at a time for dsyrk */

/* h (cols x cols, row-major upper triangle = column-major lower) = 2 X^T X / n. */
static int hessian(const float *x, int64_t n, int64_t cols, double *h)
{
    double *xd = malloc(sizeof *xd * (size_t)cols * CHUNK_ROWS);
    if (!xd)
        return qf_errorf(QF_ENOMEM, "gptq: no memory for %d x %lld activations in double",
                         CHUNK_ROWS, (long long)cols);
    for (int64_t s = 0; s < n; s += CHUNK_ROWS) {
        int64_t m = n - s < CHUNK_ROWS ? n - s : CHUNK_ROWS;
        for (int64_t i = 0; i < m * cols; i++)
            xd[i] = x[s * cols + i];
        /* the chunk is X^T in column-major order: h += (2/n) X^T X, its lower triangle */
        cblas_dsyrk(CblasColMajor, CblasLower, CblasNoTrans, (int)cols, (int)m, 2.0 / (double)n,
                    xd, (int)cols, s == 0 ? 0.0 : 1.0, h, (int)cols);
    }
    free(xd);
    return 0;
}

typedef struct diag_key {
    double  d;
    int64_t col;
} diag_key;

static int cmp_diag_desc(const void *a, const void *b)
{
    const diag_key *x = a, *y = b;
    if (x->d != y->d)
        return x->d > y->d ? -1 : 1;
    return x->col < y->col ? -1 : x->col > y->col;   /* stable: the lower column first */
}

/* Act-order: the visiting order, by decreasing diagonal (ties by column). */
static int act_order(const double *h, int64_t cols, int64_t *perm)
{
    diag_key *keys = malloc(sizeof *keys * (size_t)cols);
    if (!keys)
        return qf_errorf(QF_ENOMEM, "gptq: no memory to order %lld columns", (long long)cols);
    for (int64_t j = 0; j < cols; j++)
        keys[j] = (diag_key){ h[j * cols + j], j };
    qsort(keys, (size_t)cols, sizeof *keys, cmp_diag_desc);
    for (int64_t j = 0; j < cols; j++)
        perm[j] = keys[j].col;
    free(keys);
    return 0;
}

/* The Hessian of the visiting order, reversed, as a full symmetric matrix:
 * r[a][b] = H[o(a)][o(b)] with o(a) = perm[cols - 1 - a] (act-order: a new buffer replaces *h)
 * or cols - 1 - a (in place). Reversed because the upper Cholesky factor of H^-1 is the
 * reversal of the inverse of the lower Cholesky factor of the reversed H (inverse_factor). */
static int reverse_hessian(double **h, int64_t cols, const int64_t *perm)
{
    double *ho = *h;
    size_t nn = (size_t)cols * (size_t)cols;
    if (!perm) {
        for (int64_t i = 0; i < cols; i++)         /* the lower triangle from the upper */
            for (int64_t j = i + 1; j < cols; j++)
                ho[j * cols + i] = ho[i * cols + j];
        for (size_t f = 0; f < nn / 2; f++) {      /* both indices reversed at once */
            double v = ho[f];
            ho[f] = ho[nn - 1 - f];
            ho[nn - 1 - f] = v;
        }
        return 0;
    }
    double *hp = malloc(sizeof *hp * nn);
    if (!hp)
        return qf_errorf(QF_ENOMEM, "gptq: no memory to reorder a %lld x %lld Hessian",
                         (long long)cols, (long long)cols);
    for (int64_t a = 0; a < cols; a++)
        for (int64_t b = a; b < cols; b++) {
            int64_t i = perm[cols - 1 - a], k = perm[cols - 1 - b];
            double v = i <= k ? ho[i * cols + k] : ho[k * cols + i];
            hp[a * cols + b] = v;
            hp[b * cols + a] = v;
        }
    free(*h);
    *h = hp;
    return 0;
}

/* hinv = U, H^-1 = U^T U, in its upper triangle (row-major), from r = P H P (P the reversal,
 * reverse_hessian): r = L L^T gives H^-1 = (P L^-T P)(P L^-1 P), so U = P L^-1 P, upper
 * triangular with a positive diagonal, i.e. the factor the reference computes with potrf,
 * potri and potrf again; this way is one potrf and one trtri, half the flops. */
static int inverse_factor(double *r, int64_t cols, float *hinv)
{
    lapack_int n = (lapack_int)cols, info = LAPACKE_dpotrf(LAPACK_COL_MAJOR, 'L', n, r, n);
    if (info > 0)
        return qf_errorf(QF_ERANGE, "gptq: the dampened Hessian is not positive definite "
                         "(pivot %d of %lld); raise the dampening", (int)info, (long long)cols);
    if (info == 0)
        info = LAPACKE_dtrtri(LAPACK_COL_MAJOR, 'L', 'N', n, r, n);
    if (info != 0)
        return qf_errorf(QF_ERANGE, "gptq: LAPACK failed inverting the Hessian's factor (%d)",
                         (int)info);
    for (int64_t b = 0; b < cols; b++) {           /* column cols-1-b of L^-1 (column-major) */
        const double *col = r + (cols - 1 - b) * cols;
        for (int64_t a = 0; a <= b; a++)
            hinv[a * cols + b] = (float)col[cols - 1 - a];
    }
    return 0;
}

/* --- the layer ------------------------------------------------------------------------------ */

static int check_finite(const float *v, int64_t count, const char *what)
{
    for (int64_t i = 0; i < count; i++)
        if (!isfinite(v[i]))
            return qf_errorf(QF_EINVAL, "gptq: %s value %lld is not finite", what, (long long)i);
    return 0;
}

static int check_args(qf_format fmt, int64_t rows, int64_t cols, int64_t n,
                      const qf_gptq_params *p)
{
    if (!grid_find(fmt)) {
        const char *sep = "";
        char names[400] = "";
        for (size_t i = 0; i < N_GRIDS; i++) {
            strncat(names, sep, sizeof names - strlen(names) - 1);
            strncat(names, qf_format_get(k_grids[i].fmt)->name, sizeof names - strlen(names) - 1);
            sep = ", ";
        }
        return qf_errorf(QF_EFORMAT, "gptq: format %s has no GPTQ grid (GPTQ writes %s)",
                         qf_format_get(fmt)->name, names);
    }
    const int64_t max = INT64_C(1) << 30;    /* BLAS takes int sizes */
    if (rows < 1 || cols < 1 || n < 1 || rows > max || cols > max || n > max)
        return qf_errorf(QF_EINVAL, "gptq: %lld rows x %lld columns with %lld samples: each "
                         "must be in [1, 2^30]", (long long)rows, (long long)cols, (long long)n);
    int err = qf_format_check_cols(fmt, cols);
    if (err)
        return err;
    if (!(p->percdamp >= 0 && p->percdamp < 1e6))
        return qf_errorf(QF_EINVAL, "gptq: percdamp %g is not in [0, 1e6)", p->percdamp);
    if (p->threads < 0 || p->threads > MAX_THREADS)
        return qf_errorf(QF_EINVAL, "gptq: threads %d is not in [0, %d]", p->threads,
                         MAX_THREADS);
    return 0;
}

/* Everything from the Hessian to the last code: the timed part. */
static int gptq_layer(const grid *g, const float *w, int64_t rows, int64_t cols, const float *x,
                      int64_t n, const qf_gptq_params *p, void *dst, float *w_hat,
                      qf_gptq_stats *st)
{
    const qf_format_traits *t = qf_format_get(g->fmt);
    /* A block's grid is chosen from its current values when its first column comes up; that
     * needs the whole block updated by then, i.e. blocks and batches must nest. */
    assert(LAZY_COLS % g->block == 0 || g->block % LAZY_COLS == 0);
    assert(g->block <= BLOCK_MAX && g->block % g->sub == 0);
    int nthreads = p->threads > 0 ? p->threads : openblas_get_num_threads();
    nthreads = nthreads < 1 ? 1 : nthreads > MAX_THREADS ? MAX_THREADS : nthreads;
    size_t cc = (size_t)cols * (size_t)cols;
    int64_t nblk = cols / g->block;
    int nsub = g->block / g->sub;
    double *h = malloc(sizeof *h * cc);
    float *hinv = malloc(sizeof *hinv * cc);
    float *wk = malloc(sizeof *wk * (size_t)rows * (size_t)cols);
    float *lv = malloc(sizeof *lv * (size_t)rows * (size_t)nblk * (size_t)nsub * LEVELS);
    float *err1 = malloc(sizeof *err1 * (size_t)rows * LAZY_COLS);
    int64_t *perm = p->act_order ? malloc(sizeof *perm * (size_t)cols) : NULL;
    float *tmp = p->act_order ? malloc(sizeof *tmp * (size_t)cols) : NULL;
    float *imp = malloc(sizeof *imp * (size_t)cols);
    int err = 0;
    if (!h || !hinv || !wk || !lv || !err1 || !imp || (p->act_order && (!perm || !tmp))) {
        err = qf_errorf(QF_ENOMEM, "gptq: no memory for a %lld x %lld layer's Hessian and "
                        "working copy", (long long)rows, (long long)cols);
        goto out;
    }

    double t0 = qf_time_mono();
    if ((err = hessian(x, n, cols, h)))
        goto out;
    st->seconds_hessian = qf_time_mono() - t0;
    t0 = qf_time_mono();
    memcpy(wk, w, sizeof *wk * (size_t)rows * (size_t)cols);
    int64_t dead = 0;
    double mean = 0;
    for (int64_t j = 0; j < cols; j++) {
        double *d = &h[j * cols + j];
        if (*d == 0) {          /* no sample reaches this input: its weights cannot matter */
            *d = 1;
            dead++;
            for (int64_t r = 0; r < rows; r++)
                wk[r * cols + j] = 0;
        }
        mean += *d;
        imp[j] = *d < FLT_MAX ? (float)*d : FLT_MAX;
    }
    st->dead_cols = dead;
    double damp = p->percdamp * mean / (double)cols;
    for (int64_t j = 0; j < cols; j++)
        h[j * cols + j] += damp;

    gptq_run run = { .g = g, .t = t, .rows = rows, .cols = cols, .nblk = nblk, .nsub = nsub,
                     .row_size = qf_format_row_size(g->fmt, cols), .wk = wk, .hinv = hinv,
                     .perm = perm, .imp = imp, .lv = lv, .dst = dst, .w_hat = w_hat, .err1 = err1 };
    if (p->act_order) {
        run_rows(&run, nthreads, true, 0, 0);   /* static groups, from the original order */
        if ((err = act_order(h, cols, perm)))
            goto out;
        for (int64_t r = 0; r < rows; r++) {
            float *wr = wk + r * cols;
            for (int64_t j = 0; j < cols; j++)
                tmp[j] = wr[perm[j]];
            memcpy(wr, tmp, sizeof *wr * (size_t)cols);
        }
    }
    if ((err = reverse_hessian(&h, cols, perm)) || (err = inverse_factor(h, cols, hinv)))
        goto out;
    free(h);
    h = NULL;
    st->seconds_factor = qf_time_mono() - t0;

    for (int64_t i1 = 0; i1 < cols; i1 += LAZY_COLS) {
        int64_t i2 = i1 + LAZY_COLS < cols ? i1 + LAZY_COLS : cols;
        run_rows(&run, nthreads, false, i1, i2);
        if (i2 < cols)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)rows, (int)(cols - i2),
                        (int)(i2 - i1), -1.0f, err1, LAZY_COLS, hinv + i1 * cols + i2, (int)cols,
                        1.0f, wk + i2, (int)cols);
    }
out:
    free(h);
    free(hinv);
    free(wk);
    free(lv);
    free(err1);
    free(perm);
    free(tmp);
    free(imp);
    return err;
}

int qf_gptq_output_error(const float *w, const float *v, int64_t rows, int64_t cols,
                         const float *x, int64_t n, double *err, double *ref_norm2)
{
    assert(w && x && (v || !err));
    size_t rc = (size_t)rows * (size_t)cols;
    int64_t m = n < CHUNK_ROWS ? n : CHUNK_ROWS;
    float *e = err ? malloc(sizeof *e * rc) : NULL;
    float *y = malloc(sizeof *y * (size_t)rows * (size_t)m);
    if ((err && !e) || !y) {
        free(e);
        free(y);
        return qf_errorf(QF_ENOMEM, "gptq: no memory to measure a %lld x %lld layer's output",
                         (long long)rows, (long long)cols);
    }
    if (err)
        for (size_t i = 0; i < rc; i++)
            e[i] = w[i] - v[i];
    /* pass 0: the difference (err), pass 1: W itself (ref_norm2) */
    for (int pass = 0; pass < 2; pass++) {
        double *out = pass == 0 ? err : ref_norm2;
        const float *a = pass == 0 ? e : w;
        if (!out)
            continue;
        double sum = 0;
        for (int64_t s = 0; s < n; s += m) {
            int64_t k = n - s < m ? n - s : m;
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)rows, (int)k, (int)cols,
                        1.0f, a, (int)cols, x + s * cols, (int)cols, 0.0f, y, (int)k);
            for (int64_t i = 0; i < rows * k; i++)
                sum += (double)y[i] * (double)y[i];
        }
        *out = sum;
    }
    free(e);
    free(y);
    return 0;
}

int qf_gptq_compare(qf_format fmt, const float *w, int64_t rows, int64_t cols, const void *dst,
                    const float *x, int64_t n, qf_gptq_stats *st)
{
    assert(w && dst && x && st);
    size_t bytes = qf_format_row_size(fmt, cols) * (size_t)rows;
    float *v = malloc(sizeof *v * (size_t)rows * (size_t)cols);
    void *q = malloc(bytes);
    int err = 0;
    if (!v || !q) {
        err = qf_errorf(QF_ENOMEM, "gptq: no memory for the round-to-nearest comparison");
        goto out;
    }
    if ((err = qf_dequantize(fmt, dst, v, rows, cols)) ||
        (err = qf_gptq_output_error(w, v, rows, cols, x, n, &st->err_gptq, &st->ref_norm2)))
        goto out;
    double t0 = qf_time_mono();
    if ((err = qf_quantize(fmt, w, q, rows, cols)))
        goto out;
    st->seconds_rtn = qf_time_mono() - t0;
    if (!(err = qf_dequantize(fmt, q, v, rows, cols)))
        err = qf_gptq_output_error(w, v, rows, cols, x, n, &st->err_rtn, NULL);
out:
    free(v);
    free(q);
    return err;
}

int qf_gptq_quantize(qf_format fmt, const float *w, int64_t rows, int64_t cols,
                     const float *x, int64_t n, const qf_gptq_params *p,
                     void *dst, float *w_hat, qf_gptq_stats *stats)
{
    assert(w && x && dst);
    qf_gptq_params prm = p ? *p : qf_gptq_defaults();
    int err = check_args(fmt, rows, cols, n, &prm);
    if (err || (err = check_finite(w, rows * cols, "weight")) ||
        (err = check_finite(x, n * cols, "activation")))
        return err;
    if (prm.threads > 0)
        openblas_set_num_threads(prm.threads);

    qf_gptq_stats st = { 0 };
    double t0 = qf_time_mono();
    err = gptq_layer(grid_find(fmt), w, rows, cols, x, n, &prm, dst, w_hat, &st);
    st.seconds = qf_time_mono() - t0;
    if (err)
        return err;
    if (stats) {
        if ((err = qf_gptq_compare(fmt, w, rows, cols, dst, x, n, &st)))
            return err;
        *stats = st;
    }
    return 0;
}

/* --- synthetic calibration ------------------------------------------------------------------ */

#define SYNTH_FACTORS   64
#define SYNTH_NOISE     1.0    /* sd of each channel's own part; the factors' variance is ~1.6 */
#define SYNTH_OUTLIER_X 10.0

int qf_gptq_synth_calib(uint64_t seed, uint64_t stream, int64_t n, int64_t cols, float *x)
{
    assert(x);
    if (n < 1 || cols < 1)
        return qf_errorf(QF_EINVAL, "gptq: synthetic calibration of %lld x %lld: both must be "
                         "at least 1", (long long)n, (long long)cols);
    int64_t r = cols < SYNTH_FACTORS ? cols : SYNTH_FACTORS;
    double *f = malloc(sizeof *f * (size_t)cols * (size_t)r);   /* loadings, cols x r */
    double *scale = malloc(sizeof *scale * (size_t)cols);
    if (!f || !scale) {
        free(f);
        free(scale);
        return qf_errorf(QF_ENOMEM, "gptq: no memory for %lld x %lld factor loadings",
                         (long long)cols, (long long)r);
    }
    qf_rng rng;                /* the distribution: loadings and outlier channels */
    qf_rng_seed(&rng, seed);
    for (int64_t i = 0; i < cols * r; i++)
        f[i] = qf_rng_normal(&rng);
    for (int64_t c = 0; c < cols; c++)
        scale[c] = 1.0;
    int64_t outliers = cols / 256 > 0 ? cols / 256 : 1;
    for (int64_t k = 0; k < outliers; k++)
        scale[qf_rng_u64(&rng) % (uint64_t)cols] = SYNTH_OUTLIER_X;

    qf_rng_seed(&rng, seed ^ (UINT64_C(0x9e3779b97f4a7c15) * (stream + 1)));   /* the draws */
    double z[SYNTH_FACTORS];
    for (int64_t s = 0; s < n; s++) {
        for (int64_t k = 0; k < r; k++)          /* factor k's standard deviation 1 / (k + 1) */
            z[k] = qf_rng_normal(&rng) / (double)(k + 1);
        for (int64_t c = 0; c < cols; c++) {
            const double *fc = f + c * r;
            double v = SYNTH_NOISE * qf_rng_normal(&rng);
            for (int64_t k = 0; k < r; k++)
                v += fc[k] * z[k];
            x[s * cols + c] = (float)(v * scale[c]);
        }
    }
    free(f);
    free(scale);
    return 0;
}
