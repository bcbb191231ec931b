/* text.c - the report's text outputs: the table cells every writer shares, results.csv
 * (RFC 4180), summary.md, the JSON that --post sends, and the atomic file write they all end in.
 *
 * CSV is for machines as much as people: every number is printed with %.17g (it reads back to
 * the same double), a missing value is an empty field, lines end in CRLF and a field is quoted
 * only when it must be, as RFC 4180 says, so `sqlite3 .import --csv` and spreadsheets load it
 * unchanged. The CSV's rows are the store's samples: one per result and repetition, with the
 * result id, so every number in the HTML and Markdown tables can be traced to them.
 * Called once per `qfleet report`: not hot.
 */
#include "qf_report.h"

#include <assert.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <jansson.h>

#include "qf_err.h"

/* Prints v into the char array buf with fmt (a literal), or "-", "inf", "-inf". */
#define NUM(buf, fmt, v)                                                             \
    do {                                                                             \
        double v_ = (v);                                                             \
        if (isnan(v_))                                                               \
            snprintf(buf, sizeof buf, "-");                                          \
        else if (isinf(v_))                                                          \
            snprintf(buf, sizeof buf, v_ > 0 ? "inf" : "-inf");                      \
        else                                                                         \
            snprintf(buf, sizeof buf, fmt, v_);                                      \
    } while (0)

void qf_report_cells_fill(const qf_report_row *w, qf_report_cells *c)
{
    const qf_rs_result *r = w->r;
    char fw[64];
    snprintf(c->framework, sizeof c->framework, "%s",
             qf_report_framework(&r->spec, fw, sizeof fw));
    snprintf(c->format, sizeof c->format, "%s", r->spec.format);
    snprintf(c->op, sizeof c->op, "%s", r->spec.kind);
    snprintf(c->shape, sizeof c->shape, "%" PRId64 "x%" PRId64, r->spec.rows, r->spec.cols);
    NUM(c->bpw, "%.4g", r->bpw);
    snprintf(c->bytes, sizeof c->bytes, "%" PRIu64, r->bytes);
    NUM(c->mem, "%+.1f%%", w->mem_pct);
    if (isnan(w->speedup))
        snprintf(c->speedup, sizeof c->speedup, "-");
    else
        snprintf(c->speedup, sizeof c->speedup, "%.2fx [%.2f, %.2f]", w->speedup, w->lo,
                 w->hi);
    NUM(c->gbps, "%.3f", w->gbps);
    NUM(c->snr, "%.2f", r->snr_db);
    NUM(c->nmse, "%.3e", r->nmse);
    NUM(c->cosine, "%.6f", r->cosine);
    NUM(c->ppl, "%.3f", r->ppl);
    NUM(c->kld, "%.4f", r->kld);
    NUM(c->retention, "%.2f%%", 100.0 * r->ppl_base / r->ppl);
}

/* --- CSV -------------------------------------------------------------------------------- */

void qf_csv_field(FILE *out, const char *s)
{
    if (!strpbrk(s, ",\"\r\n")) {
        fputs(s, out);
        return;
    }
    fputc('"', out);
    for (; *s; s++) {
        if (*s == '"')
            fputc('"', out);
        fputc(*s, out);
    }
    fputc('"', out);
}

static void csv_num(FILE *out, double v)
{
    if (isnan(v))
        return;
    if (isinf(v))
        fputs(v > 0 ? "inf" : "-inf", out);
    else
        fprintf(out, "%.17g", v);
}

static const char *const k_csv_header[] = {
    "run_id", "suite", "commit", "dirty", "branch", "baseline", "result_id", "job_id",
    "attempt", "status", "key", "kind", "format", "framework", "dataset", "rows", "cols",
    "threads", "agent", "device_id", "device", "kernel", "seed", "dataset_sha256", "bytes",
    "bpw", "throughput_bytes", "peak_rss_kb", "wall_s", "rmse", "nmse", "snr_db", "max_abs",
    "cosine", "perplexity", "perplexity_base", "kld", "same_top", "rep", "sample_s",
};

/* Every column but the last two (rep, sample_s), each followed by a comma. */
static void csv_identity(FILE *out, const qf_resultset *rs, const qf_rs_result *r)
{
    const qf_rs_run *run = &rs->runs[r->run];
    const qf_rs_device *d = &rs->devices[r->device];
    fprintf(out, "%" PRId64 ",", run->id);
    qf_csv_field(out, run->suite);
    fputc(',', out);
    qf_csv_field(out, run->commit);
    fprintf(out, ",%d,", run->dirty);
    qf_csv_field(out, run->branch);
    fputc(',', out);
    qf_csv_field(out, run->baseline);
    fprintf(out, ",%" PRId64 ",%" PRId64 ",%d,", r->id, r->job_id, r->attempt);
    qf_csv_field(out, r->status);
    fputc(',', out);
    qf_csv_field(out, r->key);
    fputc(',', out);
    qf_csv_field(out, r->spec.kind);
    fputc(',', out);
    qf_csv_field(out, r->spec.format);
    fputc(',', out);
    char fw[64];
    qf_csv_field(out, qf_report_framework(&r->spec, fw, sizeof fw));
    fputc(',', out);
    qf_csv_field(out, r->spec.dataset);
    fprintf(out, ",%" PRId64 ",%" PRId64 ",%" PRIu32 ",", r->spec.rows, r->spec.cols,
            r->spec.threads);
    qf_csv_field(out, rs->agents[r->agent].name);
    fprintf(out, ",%s,", d->id);
    qf_csv_field(out, d->label);
    fputc(',', out);
    qf_csv_field(out, r->kernel);
    fprintf(out, ",%" PRIu64 ",%s,%" PRIu64 ",", r->seed, r->dataset_sha256, r->bytes);
    csv_num(out, r->bpw);
    fprintf(out, ",%" PRIu64 ",%" PRIu64 ",", r->throughput_bytes, r->peak_rss_kb);
    const double tail[] = { r->wall_s, r->rmse, r->nmse, r->snr_db, r->max_abs, r->cosine,
                            r->ppl, r->ppl_base, r->kld, r->same_top };
    for (size_t i = 0; i < sizeof tail / sizeof tail[0]; i++) {
        csv_num(out, tail[i]);
        fputc(',', out);
    }
}

int qf_report_write_csv(const qf_report *rep, FILE *out)
{
    assert(rep && out);
    size_t nh = sizeof k_csv_header / sizeof k_csv_header[0];
    for (size_t i = 0; i < nh; i++)
        fprintf(out, "%s%s", k_csv_header[i], i + 1 < nh ? "," : "\r\n");
    for (size_t i = 0; i < rep->n_all; i++) {
        const qf_rs_result *r = rep->all[i];
        if (r->n_samples == 0) {
            csv_identity(out, rep->rs, r);
            fputs(",\r\n", out);
        }
        for (size_t k = 0; k < r->n_samples; k++) {
            csv_identity(out, rep->rs, r);
            fprintf(out, "%zu,%.17g\r\n", k, r->samples[k]);
        }
    }
    return ferror(out) ? QF_EIO : 0;
}

/* --- Markdown ------------------------------------------------------------------------------ */

/* Markdown table cells: a '|' would end the cell, a newline the row. */
static void md_text(FILE *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '|')
            fputs("\\|", out);
        else
            fputc(*s == '\n' || *s == '\r' ? ' ' : *s, out);
    }
}

int qf_report_write_md(const qf_report *rep, FILE *out)
{
    assert(rep && out);
    const qf_resultset *rs = rep->rs;
    fputs("## quantfleet report\n\n", out);
    for (size_t i = 0; i < rep->n_runs; i++) {
        const qf_rs_run *r = rep->runs[i];
        fprintf(out, "- run %" PRId64 ": suite `", r->id);
        md_text(out, r->suite);
        fputs("`, commit `", out);
        md_text(out, r->commit);
        fprintf(out, "`%s, branch `", r->dirty ? " (dirty)" : "");
        md_text(out, r->branch);
        fputs("`, baseline `", out);
        md_text(out, r->baseline);
        fputs("`\n", out);
    }
    fprintf(out, "\n| framework | quantization | op | shape | bits/weight | bytes | memory vs "
                 "base | speed-up vs base [95%% CI] | GB/s | SNR dB | NMSE | cosine |%s%s "
                 "device |\n|---|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|%s%s---|\n",
            rep->has_ppl ? " perplexity | quality retention (PPL_base/PPL) |" : "",
            rep->has_kld ? " KLD |" : "", rep->has_ppl ? "--:|--:|" : "",
            rep->has_kld ? "--:|" : "");
    for (size_t i = 0; i < rep->n_rows; i++) {
        qf_report_cells c;
        qf_report_cells_fill(&rep->rows[i], &c);
        fprintf(out, "| %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s | %s |", c.framework,
                c.format, c.op, c.shape, c.bpw, c.bytes, c.mem, c.speedup, c.gbps, c.snr,
                c.nmse, c.cosine);
        if (rep->has_ppl)
            fprintf(out, " %s | %s |", c.ppl, c.retention);
        if (rep->has_kld)
            fprintf(out, " %s |", c.kld);
        fputc(' ', out);
        md_text(out, rs->devices[rep->rows[i].r->device].label);
        fputs(" |\n", out);
    }
    if (rep->n_rows == 0)
        fputs("\n(no successful results in this selection)\n", out);
    fputs("\nMemory and speed-up are against the run's baseline format on the same agent, "
          "op and shape; speed-up = baseline median time / median time, with a 95% bootstrap "
          "interval. Raw samples: results.csv.\n", out);
    return ferror(out) ? QF_EIO : 0;
}

/* --- JSON for --post ------------------------------------------------------------------------ */

static json_t *jnum(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

char *qf_report_json(const qf_report *rep)
{
    assert(rep);
    const qf_resultset *rs = rep->rs;
    json_t *doc = json_object(), *runs = json_array(), *rows = json_array();
    if (!doc || !runs || !rows) {
        json_decref(doc);
        json_decref(runs);
        json_decref(rows);
        return NULL;
    }
    json_object_set_new(doc, "runs", runs);
    json_object_set_new(doc, "rows", rows);
    for (size_t i = 0; i < rep->n_runs; i++) {
        const qf_rs_run *r = rep->runs[i];
        json_array_append_new(runs, json_pack("{s:I,s:s,s:s,s:b,s:s,s:s}", "id",
                                              (json_int_t)r->id, "suite", r->suite, "commit",
                                              r->commit, "dirty", r->dirty, "branch", r->branch,
                                              "baseline", r->baseline));
    }
    size_t failed = 0;
    for (size_t i = 0; i < rep->n_all; i++)
        failed += strcmp(rep->all[i]->status, "ok") != 0;
    for (size_t i = 0; i < rep->n_rows; i++) {
        const qf_report_row *w = &rep->rows[i];
        const qf_rs_result *r = w->r;
        json_t *o = json_pack("{s:I,s:s,s:s,s:s,s:s,s:I,s:I,s:I}", "result_id",
                              (json_int_t)r->id, "key", r->key, "format", r->spec.format,
                              "op", r->spec.kind, "device", rs->devices[r->device].label,
                              "rows", (json_int_t)r->spec.rows, "cols",
                              (json_int_t)r->spec.cols, "bytes", (json_int_t)r->bytes);
        if (!o)
            continue;
        json_object_set_new(o, "bpw", jnum(r->bpw));
        json_object_set_new(o, "memory_vs_base_pct", jnum(w->mem_pct));
        json_object_set_new(o, "speedup", jnum(w->speedup));
        json_object_set_new(o, "speedup_lo", jnum(w->lo));
        json_object_set_new(o, "speedup_hi", jnum(w->hi));
        json_object_set_new(o, "gbps", jnum(w->gbps));
        json_object_set_new(o, "snr_db", jnum(r->snr_db));
        json_object_set_new(o, "nmse", jnum(r->nmse));
        json_object_set_new(o, "cosine", jnum(r->cosine));
        json_array_append_new(rows, o);
    }
    /* "text": what chat webhooks (Slack, Mattermost) show */
    char text[512];
    const qf_rs_run *last = rep->runs[rep->n_runs - 1];
    snprintf(text, sizeof text, "quantfleet %s @ %.12s%s: %zu results ok, %zu failed", last->suite,
             last->commit, last->dirty ? "-dirty" : "", rep->n_rows, failed);
    json_object_set_new(doc, "text", json_string(text));
    json_object_set_new(doc, "failed", json_integer((json_int_t)failed));
    char *s = json_dumps(doc, JSON_COMPACT);
    json_decref(doc);
    return s;
}

/* --- atomic file output ------------------------------------------------------------------- */

int qf_report_file_write(const char *path, const char *data, size_t len)
{
    assert(path && (data || len == 0));
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 16);
    if (!tmp)
        return qf_errorf(QF_ENOMEM, "%s: out of memory", path);
    snprintf(tmp, plen + 16, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        int err = qf_errorf(QF_EIO, "%s: cannot create a temporary file: %s", path,
                            strerror(errno));
        free(tmp);
        return err;
    }
    /* mkstemp makes it 0600; a report is for reading by others, as any file we write */
    mode_t mask = umask(0);
    umask(mask);
    fchmod(fd, 0666 & ~mask);
    FILE *f = fdopen(fd, "wb");
    bool ok = f && fwrite(data, 1, len, f) == len;
    ok = f ? fclose(f) == 0 && ok : (close(fd), false);
    if (!ok || rename(tmp, path) != 0) {
        int e = errno;
        unlink(tmp);
        free(tmp);
        return qf_errorf(QF_EIO, "%s: cannot write: %s", path, strerror(e));
    }
    free(tmp);
    return 0;
}
