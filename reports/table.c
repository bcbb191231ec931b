/* table.c - the chapter's table: which runs a report covers, and each result against the
 * run's baseline format on the same agent.
 *
 * A row is one ok result. Its baseline is the ok result of the same run and agent with the
 * same op, dataset, shape and threads in the run's baseline format (runs.baseline, e.g. f16):
 * memory is bytes against the baseline's bytes, and the speed-up is median(baseline seconds)
 * / median(result seconds) with a percentile bootstrap interval (stats.c). Rows are ordered
 * by device class, op, then bits per weight descending (the baseline first, as the chapter
 * prints it). Called once per `qfleet report`: not hot.
 */
#include "qf_report.h"

#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "qf_err.h"
#include "qf_formats.h"
#include "qf_framework.h"

/* A format family that is a framework's native scheme, and that framework's adapter name. */
static const char *const k_family_fw[][2] = {
    { "gguf", "llamacpp" }, { "onnxruntime", "ort" }, { "openvino", "openvino" }, { "mlx", "mlx" },
    { "qnn", "qnn" },
};

const char *qf_report_framework(const qf_job_spec *spec, char *buf, size_t len)
{
    const qf_framework *fw = strcmp(spec->kind, "framework") == 0 ? qf_framework_of(spec) : NULL;
    if (fw)
        return fw->title;
    qf_format f;
    if (qf_format_from_name(spec->format, &f))
        return "-";
    const qf_format_traits *t = qf_format_get(f);
    for (size_t i = 0; i < sizeof k_family_fw / sizeof k_family_fw[0]; i++) {
        if (strcmp(t->family, k_family_fw[i][0]) != 0)
            continue;
        const qf_framework *owner = qf_framework_find(k_family_fw[i][1]);
        if (!owner)
            break;
        snprintf(buf, len, "%s [ours]", owner->title);
        return buf;
    }
    return strcmp(t->family, "float") == 0 ? "float" : "quantfleet";
}

/* The format a row's speed-up divides by: a framework job's framework's own unquantized
 * format, else the run's baseline. */
static const char *baseline_format(const qf_report *rep, const qf_rs_result *r)
{
    const qf_framework *fw =
        strcmp(r->spec.kind, "framework") == 0 ? qf_framework_of(&r->spec) : NULL;
    return fw ? fw->baseline : rep->rs->runs[r->run].baseline;
}

static bool same_job_but_format(const qf_job_spec *a, const qf_job_spec *b)
{
    return strcmp(a->kind, b->kind) == 0 && strcmp(a->dataset, b->dataset) == 0 &&
           a->rows == b->rows && a->cols == b->cols && a->threads == b->threads &&
           qf_job_framework(a) == qf_job_framework(b);   /* static names: same pointer */
}

static const qf_rs_result *baseline_of(const qf_report *rep, const qf_rs_result *r)
{
    const char *baseline = baseline_format(rep, r);
    if (!*baseline)
        return NULL;
    for (size_t i = 0; i < rep->n_all; i++) {
        const qf_rs_result *b = rep->all[i];
        if (b->run == r->run && b->agent == r->agent && strcmp(b->status, "ok") == 0 &&
            strcmp(b->spec.format, baseline) == 0 && same_job_but_format(&b->spec, &r->spec) &&
            b->n_samples > 0)
            return b;
    }
    return NULL;
}

static int fill_row(qf_report *rep, qf_report_row *w, const qf_rs_result *r)
{
    *w = (qf_report_row){ .r = r, .mem_pct = NAN, .speedup = NAN, .lo = NAN, .hi = NAN,
                          .gbps = NAN };
    if (r->median_s > 0)
        w->gbps = (double)r->throughput_bytes / r->median_s / 1e9;
    w->base = baseline_of(rep, r);
    if (!w->base)
        return 0;
    if (w->base->bytes > 0)
        w->mem_pct = 100.0 * ((double)r->bytes / (double)w->base->bytes - 1.0);
    if (r->n_samples == 0 || !(r->median_s > 0) || !(w->base->median_s > 0))
        return 0;
    if (w->base == r) {   /* the baseline against itself: 1 by definition, no interval */
        w->speedup = w->lo = w->hi = 1.0;
        return 0;
    }
    qf_change_opts o = QF_CHANGE_OPTS_DEFAULT;
    o.seed ^= (uint64_t)r->id;
    return qf_ratio_interval(w->base->samples, w->base->n_samples, r->samples, r->n_samples,
                             &o, &w->speedup, &w->lo, &w->hi);
}

static const qf_resultset *g_sort_rs;   /* qsort has no context argument in C11 */

static int cmp_rows(const void *pa, const void *pb)
{
    const qf_report_row *a = pa, *b = pb;
    const qf_rs_result *x = a->r, *y = b->r;
    int c = strcmp(g_sort_rs->devices[x->device].label, g_sort_rs->devices[y->device].label);
    if (!c)
        c = strcmp(g_sort_rs->devices[x->device].id, g_sort_rs->devices[y->device].id);
    if (!c)
        c = strcmp(x->spec.kind, y->spec.kind);
    if (!c) {
        double bx = isnan(x->bpw) ? -1 : x->bpw, by = isnan(y->bpw) ? -1 : y->bpw;
        c = (bx < by) - (bx > by);
    }
    if (!c)
        c = strcmp(x->spec.format, y->spec.format);
    if (!c)
        c = (x->id > y->id) - (x->id < y->id);
    return c;
}

static bool run_selected(const qf_rs_run *r, int64_t run_id, const char *commit,
                         const char *suite)
{
    if (suite && strcmp(r->suite, suite) != 0)
        return false;
    if (run_id > 0)
        return r->id == run_id;
    return !commit || strcmp(r->commit, commit) == 0;
}

static int select_runs(qf_report *rep, int64_t run_id, const char *commit, const char *suite)
{
    const qf_resultset *rs = rep->rs;
    rep->runs = calloc(rs->n_runs ? rs->n_runs : 1, sizeof *rep->runs);
    if (!rep->runs)
        return qf_errorf(QF_ENOMEM, "report: out of memory");
    for (size_t i = 0; i < rs->n_runs; i++)
        if (run_selected(&rs->runs[i], run_id, commit, suite))
            rep->runs[rep->n_runs++] = &rs->runs[i];
    if (run_id <= 0 && !commit && rep->n_runs > 1) {   /* default: the latest run */
        rep->runs[0] = rep->runs[rep->n_runs - 1];
        rep->n_runs = 1;
    }
    if (rep->n_runs == 0) {
        if (run_id > 0)
            return qf_errorf(QF_ENOENT, "report: no run %" PRId64 "%s%s in the store", run_id,
                             suite ? " in suite " : "", suite ? suite : "");
        return qf_errorf(QF_ENOENT, "report: no run%s%s%s%s in the store",
                         commit ? " of commit " : "", commit ? commit : "",
                         suite ? " in suite " : "", suite ? suite : "");
    }
    return 0;
}

static bool in_runs(const qf_report *rep, int64_t run_id)
{
    for (size_t i = 0; i < rep->n_runs; i++)
        if (rep->runs[i]->id == run_id)
            return true;
    return false;
}

int qf_report_build(const qf_resultset *rs, int64_t run_id, const char *commit,
                    const char *suite, qf_report **out)
{
    assert(rs && out);
    *out = NULL;
    qf_report *rep = calloc(1, sizeof *rep);
    if (!rep)
        return qf_errorf(QF_ENOMEM, "report: out of memory");
    rep->rs = rs;
    int err = select_runs(rep, run_id, commit, suite);
    if (!err) {
        rep->all = calloc(rs->n_results ? rs->n_results : 1, sizeof *rep->all);
        rep->rows = calloc(rs->n_results ? rs->n_results : 1, sizeof *rep->rows);
        if (!rep->all || !rep->rows)
            err = qf_errorf(QF_ENOMEM, "report: out of memory");
    }
    for (size_t i = 0; !err && i < rs->n_results; i++)
        if (in_runs(rep, rs->results[i].run_id))
            rep->all[rep->n_all++] = &rs->results[i];
    for (size_t i = 0; !err && i < rep->n_all; i++) {
        const qf_rs_result *r = rep->all[i];
        if (strcmp(r->status, "ok") != 0)
            continue;
        err = fill_row(rep, &rep->rows[rep->n_rows++], r);
        if (err)
            qf_errorf(err, "report: out of memory for bootstrap intervals");
        rep->has_ppl |= !isnan(r->ppl);
        rep->has_kld |= !isnan(r->kld);
    }
    if (err) {
        qf_report_destroy(&rep);
        return err;
    }
    g_sort_rs = rs;
    qsort(rep->rows, rep->n_rows, sizeof *rep->rows, cmp_rows);
    *out = rep;
    return 0;
}

void qf_report_destroy(qf_report **rep)
{
    if (!rep || !*rep)
        return;
    free((*rep)->runs);
    free((*rep)->rows);
    free((*rep)->all);
    free(*rep);
    *rep = NULL;
}
