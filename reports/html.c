/* html.c - index.html: the report people open, one self-contained file.
 *
 * Invariants: no script, no font, no image or style from anywhere but the file itself (inline
 * CSS and SVG), and a Content-Security-Policy that forbids every load, so the page opens from
 * disk, in a CI artifact viewer or offline, and looks the same. Every string from the store is
 * escaped (qf_html_text). Every number in a table links to its raw samples (#rID, the same
 * result_id as in results.csv).
 *
 * Order of the page: the runs' identity, the chapter's table (all devices), per device class
 * its table and two Pareto charts (quality and speed-up against bits per weight), the history
 * of the suite across commits with change points (when the store has more than one commit),
 * the device fingerprints, and the raw samples. Called once per report: not hot.
 */
#include "qf_report.h"

#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "qf_err.h"
#include "qf_stats.h"

#define CHART_W 560
#define CHART_H 320
#define PAD_L 64
#define PAD_R 130   /* the legend */
#define PAD_T 28
#define PAD_B 48
/* Ops charted per device in the history; the job-kind table has four. */
#define HISTORY_MAX_OPS 16

static const char *const k_palette[] = {
    "#1f77b4", "#d62728", "#2ca02c", "#9467bd", "#ff7f0e", "#17becf", "#8c564b", "#e377c2",
    "#7f7f7f", "#bcbd22",
};
#define N_PALETTE (sizeof k_palette / sizeof k_palette[0])

void qf_html_text(FILE *out, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': fputs("&amp;", out); break;
        case '<': fputs("&lt;", out); break;
        case '>': fputs("&gt;", out); break;
        case '"': fputs("&quot;", out); break;
        case '\'': fputs("&#39;", out); break;
        default: fputc(*s, out);
        }
    }
}

/* --- SVG charts ------------------------------------------------------------------------- */

typedef struct point {
    double x, y;
    const char *label;   /* shown next to the point and in its tooltip; may be NULL */
} point;

typedef struct series {
    const char *name;
    point      *pts;
    size_t      n;
    bool        line;       /* join the points (history, Pareto front) */
    int         color;      /* palette index + 1; 0: the series' own position */
    bool        labels;     /* print each point's label */
    const size_t *marks;    /* indexes into pts marked as change points */
    size_t      n_marks;
} series;

typedef struct chart {
    const char *title, *xlabel, *ylabel;
    const series *s;
    size_t      ns;
    const char *const *xnames;   /* names of x = 0, 1, ... (commits), or NULL: numeric axis */
    size_t      n_xnames;
} chart;

/* A "nice" tick step (1, 2 or 5 times a power of ten) for about 5 ticks over span. */
static double tick_step(double span)
{
    double raw = span / 5.0, p = pow(10.0, floor(log10(raw))), m = raw / p;
    return (m < 1.5 ? 1.0 : m < 3.5 ? 2.0 : m < 7.5 ? 5.0 : 10.0) * p;
}

static void bounds(const chart *c, double *x0, double *x1, double *y0, double *y1)
{
    *x0 = *y0 = INFINITY;
    *x1 = *y1 = -INFINITY;
    for (size_t i = 0; i < c->ns; i++)
        for (size_t k = 0; k < c->s[i].n; k++) {
            const point *p = &c->s[i].pts[k];
            if (!isfinite(p->x) || !isfinite(p->y))
                continue;
            *x0 = fmin(*x0, p->x);
            *x1 = fmax(*x1, p->x);
            *y0 = fmin(*y0, p->y);
            *y1 = fmax(*y1, p->y);
        }
    if (!isfinite(*x0)) {
        *x0 = *y0 = 0;
        *x1 = *y1 = 1;
    }
    double dx = *x1 - *x0, dy = *y1 - *y0;
    if (dx <= 0)
        dx = fabs(*x0) > 0 ? fabs(*x0) * 0.1 : 1.0;
    if (dy <= 0)
        dy = fabs(*y0) > 0 ? fabs(*y0) * 0.1 : 1.0;
    *x0 -= 0.06 * dx;
    *x1 += 0.06 * dx;
    *y0 -= 0.08 * dy;
    *y1 += 0.08 * dy;
}

static void svg_chart(FILE *out, const chart *c)
{
    double x0, x1, y0, y1;
    bounds(c, &x0, &x1, &y0, &y1);
    const double pw = CHART_W - PAD_L - PAD_R, ph = CHART_H - PAD_T - PAD_B;
#define SX(v) (PAD_L + ((v) - x0) / (x1 - x0) * pw)
#define SY(v) (PAD_T + (1.0 - ((v) - y0) / (y1 - y0)) * ph)
    fprintf(out, "<figure><svg class=\"chart\" xmlns=\"http://www.w3.org/2000/svg\" "
                 "viewBox=\"0 0 %d %d\" width=\"%d\" height=\"%d\" role=\"img\"><title>",
            CHART_W, CHART_H, CHART_W, CHART_H);
    qf_html_text(out, c->title);
    fprintf(out, "</title>\n<rect x=\"%d\" y=\"%d\" width=\"%.0f\" height=\"%.0f\" "
                 "class=\"plot\"/>\n", PAD_L, PAD_T, pw, ph);
    /* y ticks and grid */
    double st = tick_step(y1 - y0);
    for (double v = ceil(y0 / st) * st; v <= y1; v += st)
        fprintf(out, "<line x1=\"%d\" x2=\"%.1f\" y1=\"%.1f\" y2=\"%.1f\" class=\"grid\"/>"
                     "<text x=\"%d\" y=\"%.1f\" class=\"ytick\">%.4g</text>\n", PAD_L,
                PAD_L + pw, SY(v), SY(v), PAD_L - 4, SY(v) + 4, fabs(v) < st * 1e-9 ? 0 : v);
    /* x ticks: commit names, or numbers */
    if (c->xnames) {
        for (size_t i = 0; i < c->n_xnames; i++) {
            fprintf(out, "<text x=\"%.1f\" y=\"%.1f\" class=\"xtick\">", SX((double)i),
                    PAD_T + ph + 14);
            qf_html_text(out, c->xnames[i]);
            fputs("</text>\n", out);
        }
    } else {
        double sx = tick_step(x1 - x0);
        for (double v = ceil(x0 / sx) * sx; v <= x1; v += sx)
            fprintf(out, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%d\" y2=\"%.1f\" class=\"grid\"/>"
                         "<text x=\"%.1f\" y=\"%.1f\" class=\"xtick\">%.4g</text>\n", SX(v),
                    SX(v), PAD_T, PAD_T + ph, SX(v), PAD_T + ph + 14, v);
    }
    fprintf(out, "<text x=\"%.1f\" y=\"%d\" class=\"xlabel\">", PAD_L + pw / 2, CHART_H - 10);
    qf_html_text(out, c->xlabel);
    fprintf(out, "</text><text x=\"14\" y=\"%.1f\" class=\"ylabel\" transform=\"rotate(-90 14 "
                 "%.1f)\">", PAD_T + ph / 2, PAD_T + ph / 2);
    qf_html_text(out, c->ylabel);
    fprintf(out, "</text><text x=\"%d\" y=\"18\" class=\"ctitle\">", PAD_L);
    qf_html_text(out, c->title);
    fputs("</text>\n", out);
    for (size_t i = 0; i < c->ns; i++) {
        const series *s = &c->s[i];
        const char *col = k_palette[(s->color ? (size_t)s->color - 1 : i) % N_PALETTE];
        if (s->line) {
            fprintf(out, "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"1.5\" "
                         "points=\"", col);
            for (size_t k = 0; k < s->n; k++)
                if (isfinite(s->pts[k].x) && isfinite(s->pts[k].y))
                    fprintf(out, "%.1f,%.1f ", SX(s->pts[k].x), SY(s->pts[k].y));
            fputs("\"/>\n", out);
        }
        for (size_t k = 0; k < s->n; k++) {
            const point *p = &s->pts[k];
            if (!isfinite(p->x) || !isfinite(p->y))
                continue;
            fprintf(out, "<circle cx=\"%.1f\" cy=\"%.1f\" r=\"3.5\" fill=\"%s\"><title>",
                    SX(p->x), SY(p->y), col);
            qf_html_text(out, s->name);
            if (p->label) {
                fputs(" ", out);
                qf_html_text(out, p->label);
            }
            fprintf(out, ": %.4g, %.4g</title></circle>\n", p->x, p->y);
            if (s->labels && p->label) {
                fprintf(out, "<text x=\"%.1f\" y=\"%.1f\" class=\"plabel\">", SX(p->x) + 5,
                        SY(p->y) - 5);
                qf_html_text(out, p->label);
                fputs("</text>\n", out);
            }
        }
        for (size_t m = 0; m < s->n_marks; m++) {
            const point *p = &s->pts[s->marks[m]];
            if (!isfinite(p->y))
                continue;
            fprintf(out, "<line x1=\"%.1f\" x2=\"%.1f\" y1=\"%d\" y2=\"%.1f\" stroke=\"%s\" "
                         "class=\"cp\"/><rect x=\"%.1f\" y=\"%.1f\" width=\"9\" height=\"9\" "
                         "fill=\"none\" stroke=\"%s\" class=\"cpbox\"><title>change point: ",
                    SX(p->x), SX(p->x), PAD_T, PAD_T + ph, col, SX(p->x) - 4.5, SY(p->y) - 4.5,
                    col);
            qf_html_text(out, s->name);
            fputs("</title></rect>\n", out);
        }
        if (s->color)   /* drawn in another series' colour: no legend entry of its own */
            continue;
        fprintf(out, "<rect x=\"%.1f\" y=\"%.1f\" width=\"10\" height=\"10\" fill=\"%s\"/>"
                     "<text x=\"%.1f\" y=\"%.1f\" class=\"legend\">", PAD_L + pw + 10,
                PAD_T + 4 + 16.0 * (double)i, col, PAD_L + pw + 24, PAD_T + 13 + 16.0 * (double)i);
        qf_html_text(out, s->name);
        fputs("</text>\n", out);
    }
#undef SX
#undef SY
    fputs("</svg></figure>\n", out);
}

/* --- tables ------------------------------------------------------------------------------- */

static void table_head(FILE *out, const qf_report *rep, bool with_device)
{
    fputs("<table class=\"chapter\"><thead><tr><th>framework</th><th>quantization</th>"
          "<th>op</th><th>shape</th><th>bits/weight</th><th>bytes</th><th>memory vs base</th>"
          "<th>speed-up vs base [95% CI]</th><th>GB/s</th><th>SNR dB</th><th>NMSE</th>"
          "<th>cosine</th>", out);
    if (rep->has_ppl)
        fputs("<th>perplexity</th><th>quality retention (PPL_base/PPL)</th>", out);
    if (rep->has_kld)
        fputs("<th>KLD</th>", out);
    if (with_device)
        fputs("<th>device</th>", out);
    fputs("<th>samples</th></tr></thead><tbody>\n", out);
}

static void table_row(FILE *out, const qf_report *rep, const qf_report_row *w, bool with_device)
{
    qf_report_cells c;
    qf_report_cells_fill(w, &c);
    const char *cells[] = { c.framework, c.format, c.op, c.shape, c.bpw, c.bytes, c.mem,
                            c.speedup, c.gbps, c.snr, c.nmse, c.cosine };
    fputs("<tr>", out);
    for (size_t i = 0; i < sizeof cells / sizeof cells[0]; i++) {
        fputs(i >= 4 ? "<td class=\"n\">" : "<td>", out);
        qf_html_text(out, cells[i]);
        fputs("</td>", out);
    }
    if (rep->has_ppl)
        fprintf(out, "<td class=\"n\">%s</td><td class=\"n\">%s</td>", c.ppl, c.retention);
    if (rep->has_kld)
        fprintf(out, "<td class=\"n\">%s</td>", c.kld);
    if (with_device) {
        fputs("<td>", out);
        qf_html_text(out, rep->rs->devices[w->r->device].label);
        fputs("</td>", out);
    }
    fprintf(out, "<td><a href=\"#r%" PRId64 "\">result %" PRId64 "</a>", w->r->id, w->r->id);
    if (w->base && w->base != w->r)
        fprintf(out, " vs <a href=\"#r%" PRId64 "\">%" PRId64 "</a>", w->base->id, w->base->id);
    fputs("</td></tr>\n", out);
}

/* --- sections ----------------------------------------------------------------------------- */

static void identity(FILE *out, const qf_report *rep)
{
    fputs("<section id=\"identity\"><h2>Runs</h2><table><thead><tr><th>run</th><th>suite</th>"
          "<th>commit</th><th>dirty</th><th>branch</th><th>baseline</th><th>submitted (UTC)</th>"
          "<th>results</th></tr></thead><tbody>\n", out);
    for (size_t i = 0; i < rep->n_runs; i++) {
        const qf_rs_run *r = rep->runs[i];
        size_t n = 0;
        for (size_t k = 0; k < rep->n_all; k++)
            n += rep->all[k]->run_id == r->id;
        char when[32] = "-";
        time_t t = (time_t)r->submitted_at;
        struct tm tm;
        if (gmtime_r(&t, &tm))
            strftime(when, sizeof when, "%Y-%m-%d %H:%M:%S", &tm);
        fprintf(out, "<tr><td>%" PRId64 "</td><td>", r->id);
        qf_html_text(out, r->suite);
        fputs("</td><td><code>", out);
        qf_html_text(out, r->commit);
        fprintf(out, "</code></td><td>%s</td><td>", r->dirty ? "yes" : "no");
        qf_html_text(out, r->branch);
        fputs("</td><td>", out);
        qf_html_text(out, r->baseline);
        fprintf(out, "</td><td>%s</td><td>%zu</td></tr>\n", when, n);
    }
    fputs("</tbody></table>\n<h3>Datasets</h3><table><thead><tr><th>dataset</th>"
          "<th>shape</th><th>seed</th><th>sha256 of the f32 input</th></tr></thead><tbody>\n", out);
    for (size_t i = 0; i < rep->n_all; i++) {
        const qf_rs_result *r = rep->all[i];
        bool seen = false;
        for (size_t k = 0; k < i && !seen; k++)
            seen = strcmp(rep->all[k]->dataset_sha256, r->dataset_sha256) == 0;
        if (seen || !r->dataset_sha256[0])
            continue;
        fputs("<tr><td>", out);
        qf_html_text(out, r->spec.dataset);
        fprintf(out, "</td><td>%" PRId64 "x%" PRId64 "</td><td>%" PRIu64 "</td><td><code>",
                r->spec.rows, r->spec.cols, r->seed);
        qf_html_text(out, r->dataset_sha256);
        fputs("</code></td></tr>\n", out);
    }
    fputs("</tbody></table></section>\n", out);
}

/* The Pareto front of pts (lower x and higher y are better), as a new array; *nf its size. */
static point *pareto_front(const point *pts, size_t n, size_t *nf)
{
    point *f = malloc((n ? n : 1) * sizeof *f);
    *nf = 0;
    if (!f)
        return NULL;
    for (size_t i = 0; i < n; i++) {
        bool dominated = !isfinite(pts[i].x) || !isfinite(pts[i].y);
        for (size_t k = 0; k < n && !dominated; k++)
            dominated = k != i && isfinite(pts[k].x) && isfinite(pts[k].y) &&
                        pts[k].x <= pts[i].x && pts[k].y >= pts[i].y &&
                        (pts[k].x < pts[i].x || pts[k].y > pts[i].y);
        if (!dominated)
            f[(*nf)++] = pts[i];
    }
    for (size_t i = 1; i < *nf; i++)   /* by x, for the line */
        for (size_t k = i; k > 0 && f[k - 1].x > f[k].x; k--) {
            point t = f[k];
            f[k] = f[k - 1];
            f[k - 1] = t;
        }
    return f;
}

/* The y a Pareto chart plots for row w (NaN: not plotted). */
static double pareto_y(const qf_report_row *w, bool quality)
{
    if (!isfinite(w->r->bpw))
        return NAN;
    return quality ? w->r->snr_db : w->speedup;
}

/* One Pareto chart of a device against bits per weight, with the front of all its points.
 * quality: SNR dB, one point per format (the metrics are the format's, whatever the op);
 * else the speed-up, one series per op. */
static int pareto_chart(FILE *out, const qf_report *rep, size_t device, bool quality)
{
    size_t n = rep->n_rows;
    point *pts = calloc(n ? n : 1, sizeof *pts);
    series *s = calloc(2 * n + 1, sizeof *s);
    if (!pts || !s) {
        free(pts);
        free(s);
        return QF_ENOMEM;
    }
    size_t np = 0, ns = 0;
    for (size_t i = 0; i < n; i++) {   /* each op's first row opens its series */
        const qf_report_row *w = &rep->rows[i];
        const char *op = quality ? "SNR dB" : w->r->spec.kind;
        bool seen = false;
        for (size_t k = 0; k < ns && !seen; k++)
            seen = strcmp(s[k].name, op) == 0;
        if (seen || w->r->device != device || !isfinite(pareto_y(w, quality)))
            continue;
        size_t start = np;
        for (size_t j = i; j < n; j++) {
            const qf_report_row *v = &rep->rows[j];
            double y = pareto_y(v, quality);
            if (v->r->device != device || !isfinite(y) ||
                (!quality && strcmp(v->r->spec.kind, op) != 0))
                continue;
            bool dup = false;
            for (size_t k = start; k < np && quality && !dup; k++)
                dup = strcmp(pts[k].label, v->r->spec.format) == 0;
            if (!dup)
                pts[np++] = (point){ v->r->bpw, y, v->r->spec.format };
        }
        s[ns++] = (series){ .name = op, .pts = pts + start, .n = np - start, .labels = true };
    }
    /* each op's Pareto front, as a line in the op's colour: comparing fronts across ops
     * would mix kinds of work */
    size_t nops = ns;
    point *front = malloc((np ? np : 1) * sizeof *front), *f = front;
    for (size_t k = 0; front && k < nops; k++) {
        size_t nf = 0;
        point *one = pareto_front(s[k].pts, s[k].n, &nf);
        if (!one) {
            free(front);
            front = NULL;
            break;
        }
        memcpy(f, one, nf * sizeof *f);
        free(one);
        if (nf > 1)
            s[ns++] = (series){ .name = "Pareto front", .pts = f, .n = nf, .line = true,
                                .color = (int)k + 1 };
        f += nf;
    }
    if (front && np > 0) {
        chart c = { .title = quality ? "Quality vs bits per weight (line: Pareto front)"
                                     : "Speed-up vs baseline against bits per weight (line: "
                                       "Pareto front)",
                    .xlabel = "bits per weight",
                    .ylabel = quality ? "SNR dB (higher is better)" : "speed-up (x)",
                    .s = s, .ns = ns };
        svg_chart(out, &c);
    }
    int err = front ? 0 : QF_ENOMEM;
    free(front);
    free(pts);
    free(s);
    return err;
}

static int device_sections(FILE *out, const qf_report *rep)
{
    const qf_resultset *rs = rep->rs;
    for (size_t d = 0; d < rs->n_devices; d++) {
        size_t n = 0;
        for (size_t i = 0; i < rep->n_rows; i++)
            n += rep->rows[i].r->device == d;
        if (!n)
            continue;
        fprintf(out, "<section class=\"device\" id=\"device-%s\"><h2>", rs->devices[d].id);
        qf_html_text(out, rs->devices[d].label);
        fprintf(out, " <small>class %s</small></h2>\n", rs->devices[d].id);
        table_head(out, rep, false);
        for (size_t i = 0; i < rep->n_rows; i++)
            if (rep->rows[i].r->device == d)
                table_row(out, rep, &rep->rows[i], false);
        fputs("</tbody></table>\n<div class=\"charts\">\n", out);
        int err = pareto_chart(out, rep, d, true);
        if (!err)
            err = pareto_chart(out, rep, d, false);
        fputs("</div></section>\n", out);
        if (err)
            return err;
    }
    return 0;
}

/* --- history across commits --------------------------------------------------------------- */

typedef struct history {
    const char **commits;   /* distinct commits of the suite, in order of their first run */
    char       (*names)[16];
    const char **xnames;
    size_t       n;
} history;

static size_t commit_index(const history *h, const char *commit)
{
    for (size_t i = 0; i < h->n; i++)
        if (strcmp(h->commits[i], commit) == 0)
            return i;
    return SIZE_MAX;
}

/* The value of key on device at commit ci: the median of the pooled ok samples as GB/s
 * (speed) or the median SNR (quality); NaN when the commit has no such result. */
static double history_value(const qf_resultset *rs, const char *suite, const history *h,
                            size_t ci, size_t device, const char *key, bool quality,
                            double *buf, size_t cap)
{
    size_t n = 0;
    uint64_t tb = 0;
    for (size_t i = 0; i < rs->n_results; i++) {
        const qf_rs_result *r = &rs->results[i];
        const qf_rs_run *run = &rs->runs[r->run];
        if (r->device != device || strcmp(r->status, "ok") != 0 || strcmp(r->key, key) != 0 ||
            strcmp(run->suite, suite) != 0 || strcmp(run->commit, h->commits[ci]) != 0)
            continue;
        if (quality) {
            if (n < cap && !isnan(r->snr_db))
                buf[n++] = r->snr_db;
            continue;
        }
        tb = r->throughput_bytes;
        for (size_t k = 0; k < r->n_samples && n < cap; k++)
            buf[n++] = r->samples[k];
    }
    if (!n)
        return NAN;
    double med = qf_stats_percentile(buf, n, 50.0);
    if (quality)
        return med;
    return med > 0 ? (double)tb / med / 1e9 : NAN;
}

/* One chart: every key of (device, op) across the commits, change points marked. */
static int history_chart(FILE *out, const qf_report *rep, const history *h, const char *suite,
                         size_t device, const char *op, bool quality)
{
    const qf_resultset *rs = rep->rs;
    size_t cap = 0;
    for (size_t i = 0; i < rs->n_results; i++)
        cap += rs->results[i].n_samples + 1;
    const char **keys = calloc(rs->n_results + 1, sizeof *keys);
    double *buf = malloc((cap + 1) * sizeof *buf);
    if (!keys || !buf) {
        free(keys);
        free(buf);
        return QF_ENOMEM;
    }
    size_t nk = 0;
    for (size_t i = 0; i < rs->n_results; i++) {
        const qf_rs_result *r = &rs->results[i];
        if (r->device != device || strcmp(r->spec.kind, op) != 0 ||
            strcmp(rs->runs[r->run].suite, suite) != 0 || strcmp(r->status, "ok") != 0 ||
            (quality && !r->has_metrics))
            continue;
        bool seen = false;
        for (size_t k = 0; k < nk && !seen; k++)
            seen = strcmp(keys[k], r->key) == 0;
        if (!seen)
            keys[nk++] = r->key;
    }
    series *s = calloc(nk + 1, sizeof *s);
    point *pts = calloc(nk * h->n + 1, sizeof *pts);
    size_t *marks = calloc(nk * h->n + 1, sizeof *marks);
    double *y = calloc(h->n + 1, sizeof *y);
    size_t *at = calloc(h->n + 1, sizeof *at);
    int err = s && pts && marks && y && at ? 0 : QF_ENOMEM;
    size_t total_marks = 0;
    for (size_t k = 0; !err && k < nk; k++) {
        point *p = pts + k * h->n;
        size_t ny = 0;
        for (size_t ci = 0; ci < h->n; ci++) {
            double v = history_value(rs, suite, h, ci, device, keys[k], quality, buf, cap);
            p[ci] = (point){ (double)ci, v, h->names[ci] };
            if (isfinite(v)) {
                at[ny] = ci;
                y[ny++] = v;
            }
        }
        size_t ncp = 0, *m = marks + total_marks;
        err = qf_changepoints(y, ny, m, &ncp);
        for (size_t i = 0; i < ncp; i++)
            m[i] = at[m[i]];
        total_marks += ncp;
        /* the series is named by what differs between keys of one op: the format, then shape */
        const qf_rs_result *ex = NULL;
        for (size_t i = 0; i < rs->n_results && !ex; i++)
            if (strcmp(rs->results[i].key, keys[k]) == 0)
                ex = &rs->results[i];
        assert(ex);   /* keys[] were taken from results */
        s[k] = (series){ .name = ex->spec.format, .pts = p, .n = h->n, .line = true,
                         .marks = m, .n_marks = ncp };
    }
    if (!err && nk > 0) {
        char title[256];
        snprintf(title, sizeof title, "%s: %s across commits", op,
                 quality ? "SNR dB" : "GB/s (median)");
        chart c = { .title = title, .xlabel = "commit (order of first run)",
                    .ylabel = quality ? "SNR dB" : "GB/s", .s = s, .ns = nk,
                    .xnames = h->xnames, .n_xnames = h->n };
        svg_chart(out, &c);
        if (total_marks) {
            fputs("<ul class=\"cps\">", out);
            for (size_t k = 0; k < nk; k++)
                for (size_t i = 0; i < s[k].n_marks; i++) {
                    size_t ci = s[k].marks[i];
                    fputs("<li>change point: ", out);
                    qf_html_text(out, keys[k]);
                    fputs(" at <code>", out);
                    qf_html_text(out, h->commits[ci]);
                    fputs("</code></li>", out);
                }
            fputs("</ul>\n", out);
        }
    }
    free(keys);
    free(buf);
    free(s);
    free(pts);
    free(marks);
    free(y);
    free(at);
    return err;
}

static int history_section(FILE *out, const qf_report *rep)
{
    const qf_resultset *rs = rep->rs;
    const char *suite = rep->runs[rep->n_runs - 1]->suite;
    history h = { 0 };
    h.commits = calloc(rs->n_runs + 1, sizeof *h.commits);
    h.names = calloc(rs->n_runs + 1, sizeof *h.names);
    h.xnames = calloc(rs->n_runs + 1, sizeof *h.xnames);
    int err = h.commits && h.names && h.xnames ? 0 : QF_ENOMEM;
    for (size_t i = 0; !err && i < rs->n_runs; i++)
        if (strcmp(rs->runs[i].suite, suite) == 0 &&
            commit_index(&h, rs->runs[i].commit) == SIZE_MAX) {
            h.commits[h.n] = rs->runs[i].commit;
            snprintf(h.names[h.n], sizeof h.names[0], "%.8s", rs->runs[i].commit);
            h.xnames[h.n] = h.names[h.n];
            h.n++;
        }
    if (!err && h.n >= 2) {
        fputs("<section id=\"history\"><h2>History across commits</h2>\n<p>Suite <code>", out);
        qf_html_text(out, suite);
        fprintf(out, "</code>, %zu commits in the order of their first run. Squares mark change "
                     "points: the optimal step fit with a penalty per step (see "
                     "docs/reports.md).</p>\n", h.n);
        for (size_t d = 0; !err && d < rs->n_devices; d++) {
            const char *ops[HISTORY_MAX_OPS];
            size_t nops = 0;
            bool has_quality = false;
            for (size_t i = 0; i < rs->n_results && nops < HISTORY_MAX_OPS; i++) {
                const qf_rs_result *r = &rs->results[i];
                if (r->device != d || strcmp(rs->runs[r->run].suite, suite) != 0)
                    continue;
                has_quality |= r->has_metrics;
                bool seen = false;
                for (size_t k = 0; k < nops && !seen; k++)
                    seen = strcmp(ops[k], r->spec.kind) == 0;
                if (!seen)
                    ops[nops++] = r->spec.kind;
            }
            if (!nops)
                continue;
            fputs("<h3>", out);
            qf_html_text(out, rs->devices[d].label);
            fputs("</h3><div class=\"charts\">\n", out);
            for (size_t k = 0; !err && k < nops; k++)
                err = history_chart(out, rep, &h, suite, d, ops[k], false);
            /* quality is the format's, not the op's: one chart, from the first op */
            if (!err && has_quality)
                err = history_chart(out, rep, &h, suite, d, ops[0], true);
            fputs("</div>\n", out);
        }
        fputs("</section>\n", out);
    }
    free(h.commits);
    free(h.names);
    free(h.xnames);
    return err;
}

static void fingerprints(FILE *out, const qf_report *rep)
{
    const qf_resultset *rs = rep->rs;
    fputs("<section id=\"devices\"><h2>Device fingerprints</h2>\n", out);
    for (size_t d = 0; d < rs->n_devices; d++) {
        fprintf(out, "<details><summary>class %s: ", rs->devices[d].id);
        qf_html_text(out, rs->devices[d].label);
        fputs(" &mdash; agents:", out);
        for (size_t a = 0; a < rs->n_agents; a++)
            if (rs->agents[a].device == d) {
                fputs(" ", out);
                qf_html_text(out, rs->agents[a].name);
            }
        fputs("</summary><pre>", out);
        qf_html_text(out, rs->devices[d].fingerprint);
        fputs("</pre></details>\n", out);
    }
    fputs("</section>\n", out);
}

static void raw_samples(FILE *out, const qf_report *rep)
{
    fputs("<section id=\"samples\"><h2>Raw samples</h2><p>Seconds per repetition, as stored; "
          "the same rows, with every identity column, are in <a href=\"results.csv\">"
          "results.csv</a> (column result_id).</p>\n", out);
    for (size_t i = 0; i < rep->n_all; i++) {
        const qf_rs_result *r = rep->all[i];
        fprintf(out, "<details id=\"r%" PRId64 "\"><summary>result %" PRId64 ": ", r->id, r->id);
        qf_html_text(out, r->key);
        fputs(" on ", out);
        qf_html_text(out, rep->rs->agents[r->agent].name);
        fputs(" (", out);
        qf_html_text(out, r->status);
        fprintf(out, ", %zu samples, median %.6g s, kernel ", r->n_samples, r->median_s);
        qf_html_text(out, r->kernel);
        fputs(")</summary><p class=\"raw\">", out);
        for (size_t k = 0; k < r->n_samples; k++)
            fprintf(out, "%s%.9g", k ? ", " : "", r->samples[k]);
        fputs("</p></details>\n", out);
    }
    fputs("</section>\n", out);
}

static const char k_css[] =
    "body{font:14px/1.45 system-ui,sans-serif;margin:1.5em auto;max-width:1200px;"
    "padding:0 1em;color:#222}"
    "h1{font-size:1.5em}h2{font-size:1.25em;margin-top:1.8em;border-bottom:1px solid #ddd}"
    "table{border-collapse:collapse;margin:.6em 0;font-size:13px}"
    "th,td{border:1px solid #ccc;padding:3px 7px;text-align:left}"
    "th{background:#f3f3f3}td.n{text-align:right;font-variant-numeric:tabular-nums}"
    "tbody tr:nth-child(even){background:#fafafa}"
    ".charts{display:flex;flex-wrap:wrap;gap:12px}figure{margin:0}"
    ".chart{background:#fff;border:1px solid #ddd}.plot{fill:#fcfcfc;stroke:#999}"
    ".grid{stroke:#e4e4e4}.ytick{font-size:10px;text-anchor:end}"
    ".xtick{font-size:10px;text-anchor:middle}.xlabel,.ylabel{font-size:11px;"
    "text-anchor:middle}.ctitle{font-size:12px;font-weight:600}.legend{font-size:11px}"
    ".plabel{font-size:9px;fill:#444}.cp{stroke-dasharray:4 3;stroke-width:1}"
    ".cpbox{stroke-width:2}pre{background:#f6f6f6;padding:.6em;overflow:auto;font-size:12px}"
    "details{margin:.2em 0}.raw{font-family:monospace;font-size:12px;word-break:break-all}"
    "small{color:#777;font-weight:normal}";

int qf_report_write_html(const qf_report *rep, FILE *out)
{
    assert(rep && out);
    const qf_rs_run *last = rep->runs[rep->n_runs - 1];
    fputs("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\n"
          "<meta http-equiv=\"Content-Security-Policy\" content=\"default-src 'none'; "
          "style-src 'unsafe-inline'; img-src data:\">\n"
          "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n"
          "<title>quantfleet report: ", out);
    qf_html_text(out, last->suite);
    fputs(" @ ", out);
    qf_html_text(out, last->commit);
    fprintf(out, "</title>\n<style>%s</style></head><body>\n<h1>quantfleet report: ", k_css);
    qf_html_text(out, last->suite);
    fputs(" @ <code>", out);
    qf_html_text(out, last->commit);
    fprintf(out, "</code>%s</h1>\n", last->dirty ? " (dirty)" : "");
    identity(out, rep);
    fputs("<section id=\"chapter\"><h2>What each scheme costs, buys and loses</h2>\n<p>Memory and "
          "speed-up are against the run's baseline format on the same agent, op and shape; "
          "speed-up = baseline median time / median time, with a 95% percentile bootstrap "
          "interval. Quality is measured on the quantized tensor against its float original. "
          "Rows of kind framework ran in that framework, against its own unquantized format; "
          "\"[ours]\" marks a framework's scheme run with quantfleet's kernels. Every row "
          "links to its raw samples.</p>\n", out);
    if (rep->has_ppl)
        fputs("<p>Model-level rows (kind eval): perplexity of the quantized model on the text; "
              "<b>quality retention</b> = PPL of the unquantized model / PPL of the quantized "
              "one on the same tokens (100% = no loss); KLD = mean KL divergence from the "
              "unquantized model's next-token distribution (docs/metrics.md).</p>\n", out);
    table_head(out, rep, true);
    for (size_t i = 0; i < rep->n_rows; i++)
        table_row(out, rep, &rep->rows[i], true);
    fputs("</tbody></table>\n", out);
    if (rep->n_rows == 0)
        fputs("<p>No successful results in this selection.</p>\n", out);
    fputs("</section>\n", out);
    int err = device_sections(out, rep);
    if (!err)
        err = history_section(out, rep);
    if (err)
        return qf_errorf(err, "report: out of memory writing index.html");
    fingerprints(out, rep);
    raw_samples(out, rep);
    fputs("</body></html>\n", out);
    return ferror(out) ? QF_EIO : 0;
}
