/* matmul.c - the thread pool and Y = X W^T over a kernel set (see qf_matmul.h).
 *
 * The pool: nthreads - 1 workers wait for a generation counter to move; a call publishes its
 * work, bumps the generation, does share 0 itself and waits until every worker has checked in.
 * Waiting spins briefly (a matvec share is tens of microseconds, a condition variable's wake-up
 * is of the same order) and then sleeps on the condition variable, so an idle pool costs nothing
 * and a busy 2-core machine is not starved by spinners.
 *
 * The product runs in two steps, each one pool call: quantize X's rows to the activation format
 * (rows split across threads), then each thread takes a contiguous share of W's rows and walks
 * it in tiles of TILE rows: for each tile, all n activation rows. With n = 1 that is a plain
 * matvec; with n = 512 a tile (TILE rows of a 4096-wide q4_0 row: 37 KB) stays in L1/L2 while
 * it is used 512 times, and the quantized X (2.2 MB for q8_0) is read from L2/L3.
 * Hot: everything in run_dots; the rest runs once per call.
 */
#include "qf_matmul.h"

#include <assert.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "qf_err.h"
#include "qf_pin.h"

#define TILE 16          /* weight rows per tile */
#define SPIN 20000       /* polls before a waiting thread sleeps */

typedef struct task task;
typedef void (*task_fn)(const task *t, int index, int nthreads);

/* One pool call's work: read-only for the workers. */
struct task {
    task_fn              fn;
    const qf_kernel_set *ks;
    const void          *w;
    int64_t              nrows, ncols, n;
    const float         *x;
    float               *y;
    void                *xq;          /* n quantized activation rows */
    size_t               w_row, x_row; /* bytes of one weight row, one quantized activation row */
};

typedef struct worker {
    qf_pool  *pool;
    int       index;
    pthread_t tid;
} worker;

struct qf_pool {
    int             nthreads;
    bool            pin;
    worker         *workers;         /* nthreads - 1 */
    int             started;
    pthread_mutex_t mu;
    pthread_cond_t  wake, done_cv;
    atomic_uint     generation;      /* bumped per call; workers run when it moves */
    atomic_int      remaining;       /* workers still busy with the current call */
    atomic_bool     stop;
    const task     *task;
};

static void wait_generation(qf_pool *p, unsigned seen)
{
    for (int i = 0; i < SPIN; i++)
        if (atomic_load_explicit(&p->generation, memory_order_acquire) != seen ||
            atomic_load(&p->stop))
            return;
    pthread_mutex_lock(&p->mu);
    while (atomic_load(&p->generation) == seen && !atomic_load(&p->stop))
        pthread_cond_wait(&p->wake, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

static void *worker_main(void *arg)
{
    worker *w = arg;
    qf_pool *p = w->pool;
    if (p->pin)
        qf_pin_thread(w->index);
    unsigned seen = 0;
    for (;;) {
        wait_generation(p, seen);
        if (atomic_load(&p->stop))
            return NULL;
        seen = atomic_load_explicit(&p->generation, memory_order_acquire);
        const task *t = p->task;
        t->fn(t, w->index, p->nthreads);
        if (atomic_fetch_sub_explicit(&p->remaining, 1, memory_order_acq_rel) == 1) {
            pthread_mutex_lock(&p->mu);
            pthread_cond_signal(&p->done_cv);
            pthread_mutex_unlock(&p->mu);
        }
    }
}

/* Runs t on every thread of the pool (the caller is thread 0) and returns when all are done. */
static void pool_run(qf_pool *p, const task *t)
{
    if (!p || p->nthreads == 1) {
        t->fn(t, 0, 1);
        return;
    }
    p->task = t;
    atomic_store(&p->remaining, p->nthreads - 1);
    pthread_mutex_lock(&p->mu);
    atomic_fetch_add_explicit(&p->generation, 1, memory_order_acq_rel);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    t->fn(t, 0, p->nthreads);
    for (int i = 0; i < SPIN; i++)
        if (atomic_load_explicit(&p->remaining, memory_order_acquire) == 0)
            return;
    pthread_mutex_lock(&p->mu);
    while (atomic_load(&p->remaining) != 0)
        pthread_cond_wait(&p->done_cv, &p->mu);
    pthread_mutex_unlock(&p->mu);
}

int qf_pool_new(int nthreads, bool pin, qf_pool **out)
{
    assert(nthreads >= 1 && out);
    *out = NULL;
    qf_pool *p = calloc(1, sizeof *p);
    if (!p || (nthreads > 1 && !(p->workers = calloc((size_t)nthreads - 1, sizeof *p->workers)))) {
        free(p);
        return qf_errorf(QF_ENOMEM, "thread pool: out of memory for %d threads", nthreads);
    }
    p->nthreads = nthreads;
    p->pin = pin;
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->wake, NULL);
    pthread_cond_init(&p->done_cv, NULL);
    if (pin)
        qf_pin_thread(0);
    for (int i = 1; i < nthreads; i++) {
        worker *w = &p->workers[i - 1];
        w->pool = p;
        w->index = i;
        int rc = pthread_create(&w->tid, NULL, worker_main, w);
        if (rc != 0) {
            qf_pool_destroy(&p);
            return qf_errorf(QF_ENOMEM, "thread pool: pthread_create of thread %d of %d "
                             "failed (error %d)", i + 1, nthreads, rc);
        }
        p->started++;
    }
    *out = p;
    return 0;
}

void qf_pool_destroy(qf_pool **pool)
{
    if (!pool || !*pool)
        return;
    qf_pool *p = *pool;
    pthread_mutex_lock(&p->mu);
    atomic_store(&p->stop, true);
    pthread_cond_broadcast(&p->wake);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->started; i++)
        pthread_join(p->workers[i].tid, NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->wake);
    pthread_cond_destroy(&p->done_cv);
    free(p->workers);
    free(p);
    *pool = NULL;
}

int qf_pool_threads(const qf_pool *pool)
{
    return pool ? pool->nthreads : 1;
}

size_t qf_matmul_scratch_bytes(const qf_kernel_set *ks, int64_t n, int64_t ncols)
{
    const qf_format_traits *t = qf_format_get(ks->fmt);
    assert(t->vec_dot_ref);
    return qf_format_row_size(t->act, ncols) * (size_t)n;
}

/* Thread `index`'s share [*lo, *hi) of count items. */
static void share(int64_t count, int index, int nthreads, int64_t *lo, int64_t *hi)
{
    *lo = count * index / nthreads;
    *hi = count * (index + 1) / nthreads;
}

static void run_quantize_x(const task *t, int index, int nthreads)
{
    int64_t lo, hi;
    share(t->n, index, nthreads, &lo, &hi);
    for (int64_t j = lo; j < hi; j++)
        t->ks->quantize_act(t->x + j * t->ncols, (char *)t->xq + (size_t)j * t->x_row, t->ncols);
}

static void run_dots(const task *t, int index, int nthreads)
{
    int64_t lo, hi;
    share(t->nrows, index, nthreads, &lo, &hi);
    const qf_vec_dot_fn dot = t->ks->vec_dot;
    const char *w = t->w, *xq = t->xq;
    for (int64_t r0 = lo; r0 < hi; r0 += TILE) {
        int64_t r1 = r0 + TILE < hi ? r0 + TILE : hi;
        for (int64_t j = 0; j < t->n; j++) {
            const char *a = xq + (size_t)j * t->x_row;
            float *yj = t->y + j * t->nrows;
            for (int64_t r = r0; r < r1; r++)
                dot(t->ncols, w + (size_t)r * t->w_row, a, &yj[r]);
        }
    }
}

void qf_matmul(const qf_kernel_set *ks, const void *w, int64_t nrows, int64_t ncols,
               const float *x, int64_t n, float *y, void *scratch, qf_pool *pool)
{
    const qf_format_traits *t = qf_format_get(ks->fmt);
    assert(ks->vec_dot && ks->quantize_act && nrows >= 1 && n >= 1);
    task tk = {
        .ks = ks, .w = w, .nrows = nrows, .ncols = ncols, .n = n, .x = x, .y = y,
        .xq = scratch, .w_row = qf_format_row_size(ks->fmt, ncols),
        .x_row = qf_format_row_size(t->act, ncols),
    };
    tk.fn = run_quantize_x;
    if (n == 1)
        run_quantize_x(&tk, 0, 1);       /* one row: not worth waking the pool */
    else
        pool_run(pool, &tk);
    tk.fn = run_dots;
    pool_run(pool, &tk);
}
