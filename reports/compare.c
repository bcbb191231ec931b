/* compare.c - two commits' results paired by job key and device class, each pair tested.
 *
 * A pair is one job key (qf_job_key: op, format, dataset, shape, threads, seed) on one device
 * class (load.c: the hardware fingerprint without the build under test). Each side pools the
 * samples of every ok result of its commit's runs for that pair, so re-running a commit adds
 * evidence instead of replacing it (as asv does). Pairs that exist on one side only are
 * counted, not tested. The items come back sorted by effect size, |log ratio|, largest first.
 * Called once per `qfleet compare`: not hot.
 */
#include "qf_report.h"

#include <assert.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qf_err.h"
#include "qf_stats.h"

static bool result_in(const qf_resultset *rs, const qf_rs_result *r, const char *commit,
                      const char *suite)
{
    const qf_rs_run *run = &rs->runs[r->run];
    return strcmp(r->status, "ok") == 0 && strcmp(run->commit, commit) == 0 &&
           (!suite || strcmp(run->suite, suite) == 0);
}

/* Appends r's samples to *x (n of them so far). */
static int append(double **x, size_t *n, const qf_rs_result *r)
{
    double *p = realloc(*x, (*n + r->n_samples + 1) * sizeof *p);
    if (!p)
        return QF_ENOMEM;
    memcpy(p + *n, r->samples, r->n_samples * sizeof *p);
    *x = p;
    *n += r->n_samples;
    return 0;
}

/* The item for (key, device) among the first n, or NULL. */
static qf_compare_item *find_item(qf_compare_item *items, size_t n, const qf_rs_result *r)
{
    for (size_t i = 0; i < n; i++)
        if (items[i].device == r->device && strcmp(items[i].example->key, r->key) == 0)
            return &items[i];
    return NULL;
}

static double effect(const qf_compare_item *it)
{
    double e = fabs(log(it->change.ratio));
    return isnan(e) ? -1.0 : e;
}

static int cmp_effect(const void *pa, const void *pb)
{
    const qf_compare_item *a = pa, *b = pb;
    double x = effect(a), y = effect(b);
    if (x != y)
        return (x < y) - (x > y);
    int c = strcmp(a->example->key, b->example->key);
    return c ? c : (a->device > b->device) - (a->device < b->device);
}

static int gather(const qf_resultset *rs, const char *base, const char *head,
                  const char *suite, qf_comparison *c)
{
    /* head results make the items; base samples join the items they match */
    for (size_t i = 0; i < rs->n_results; i++) {
        const qf_rs_result *r = &rs->results[i];
        if (!result_in(rs, r, head, suite))
            continue;
        qf_compare_item *it = find_item(c->items, c->n_items, r);
        if (!it) {
            it = &c->items[c->n_items++];
            *it = (qf_compare_item){ .example = r, .device = r->device };
        }
        if (append(&it->head, &it->nh, r))
            return QF_ENOMEM;
    }
    for (size_t i = 0; i < rs->n_results; i++) {
        const qf_rs_result *r = &rs->results[i];
        if (!result_in(rs, r, base, suite))
            continue;
        qf_compare_item *it = find_item(c->items, c->n_items, r);
        if (!it) {   /* counted once per (key, device), not per result */
            bool seen = false;
            for (size_t j = 0; j < i && !seen; j++)
                seen = result_in(rs, &rs->results[j], base, suite) &&
                       rs->results[j].device == r->device &&
                       strcmp(rs->results[j].key, r->key) == 0;
            c->base_only += !seen;
            continue;
        }
        if (append(&it->base, &it->nb, r))
            return QF_ENOMEM;
    }
    return 0;
}

int qf_comparison_build(const qf_resultset *rs, const char *base, const char *head,
                        const char *suite, const qf_change_opts *o, qf_comparison **out)
{
    assert(rs && base && head && o && out);
    *out = NULL;
    qf_comparison *c = calloc(1, sizeof *c);
    if (c)
        c->items = calloc(rs->n_results ? rs->n_results : 1, sizeof *c->items);
    if (!c || !c->items) {
        free(c);
        return qf_errorf(QF_ENOMEM, "compare: out of memory");
    }
    c->rs = rs;
    int err = gather(rs, base, head, suite, c);
    /* drop head-only items, then test the others */
    size_t kept = 0;
    for (size_t i = 0; !err && i < c->n_items; i++) {
        qf_compare_item *it = &c->items[i];
        if (it->nb == 0 || it->nh == 0) {
            c->head_only++;
            free(it->base);
            free(it->head);
        } else {
            c->items[kept++] = *it;
        }
    }
    if (!err)
        c->n_items = kept;
    for (size_t i = 0; !err && i < c->n_items; i++) {
        qf_compare_item *it = &c->items[i];
        it->base_median = qf_stats_percentile(it->base, it->nb, 50.0);
        it->head_median = qf_stats_percentile(it->head, it->nh, 50.0);
        err = qf_change_test(it->base, it->nb, it->head, it->nh, o, &it->change);
        c->n_regressions += it->change.verdict == QF_VERDICT_REGRESSION;
        c->n_improvements += it->change.verdict == QF_VERDICT_IMPROVEMENT;
    }
    if (err) {
        qf_errorf(QF_ENOMEM, "compare: out of memory");
        qf_comparison_destroy(&c);
        return QF_ENOMEM;
    }
    if (c->n_items == 0) {
        qf_comparison_destroy(&c);
        return qf_errorf(QF_ENOENT, "compare: no ok result of %s pairs with one of %s (same "
                         "job key on the same device class)", head, base);
    }
    qsort(c->items, c->n_items, sizeof *c->items, cmp_effect);
    *out = c;
    return 0;
}

void qf_comparison_destroy(qf_comparison **c)
{
    if (!c || !*c)
        return;
    for (size_t i = 0; i < (*c)->n_items; i++) {
        free((*c)->items[i].base);
        free((*c)->items[i].head);
    }
    free((*c)->items);
    free(*c);
    *c = NULL;
}
