/* cmd_compare.c - `qfleet compare`: the per-commit regression gate.
 *
 * Pairs the results of two commits by job key and device class (reports/compare.c), tests
 * each pair from the raw samples (median ratio, bootstrap interval, Mann-Whitney U), prints
 * the pairs sorted by effect as a table (or Markdown, CSV, JSON), then the cross-device
 * summary: each job key's change on every device class side by side. Exit status for CI:
 * 1 when any pair is a regression (significant and not ruled out to reach the threshold),
 * 0 otherwise, 2 on any error (usage, store, nothing to pair), so a broken gate never passes
 * as green.
 */
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qf_cli_args.h"
#include "qf_cmd.h"
#include "qf_err.h"
#include "qf_report.h"

enum out_format { OUT_TEXT, OUT_MD, OUT_CSV, OUT_JSON };

static void usage(FILE *out)
{
    fputs("usage: qfleet compare [--db FILE] --base REV --head REV [--threshold 5%]\n"
          "                      [--alpha 0.01] [--suite NAME] [--format text|md|csv|json]\n"
          "\n"
          "Compare two commits' results: pairs share a job key and a device class; each pair\n"
          "gets the median time ratio head/base, a 95% bootstrap interval and a Mann-Whitney U\n"
          "test. Exit 1 when a slowdown is significant at --alpha and its interval reaches\n"
          "--threshold, 0 otherwise, 2 on error.\n"
          "\n"
          "  --db FILE          the store (default qfleet.db)\n"
          "  --base REV         the reference commit (a unique prefix will do)\n"
          "  --head REV         the commit under test\n"
          "  --threshold T      smallest change that matters: 5% or 0.05 (default 5%)\n"
          "  --alpha A          significance level of the U test (default 0.01)\n"
          "  --suite NAME       only runs of this suite\n"
          "  --format F         text (default), md, csv or json\n"
          "  -h, --help         this help\n"
          "\n"
          "docs/reports.md explains every statistic.\n", out);
}

/* A number in (0, max]: "0.05", or "5%" for 0.05 when percent is allowed. A bare number of
 * 1 or more is refused there: "--threshold 5" more likely means 5% than 500%. */
static int parse_fraction(const char *opt, const char *text, bool percent, double max,
                          double *out)
{
    char *end = NULL;
    double v = *text ? strtod(text, &end) : NAN;
    bool pct_sign = end && percent && *end == '%' && end[1] == '\0';
    if (pct_sign) {
        v /= 100.0;
        end++;
    }
    if (!end || *end || !isfinite(v) || !(v > 0) || v > max || text[0] == ' ' ||
        (percent && !pct_sign && v >= 1.0))
        return qf_errorf(QF_EUSAGE, percent ? "compare: %s '%s' is not a percentage like 5%% "
                         "(at most %g%%) or a fraction below 1 like 0.05"
                                            : "compare: %s '%s' is not a number in (0, %g]",
                         opt, text, percent ? 100.0 * max : max);
    *out = v;
    return 0;
}

static void pct(char *buf, size_t cap, double ratio)
{
    if (isfinite(ratio))
        snprintf(buf, cap, "%+.1f%%", 100.0 * (ratio - 1.0));
    else
        snprintf(buf, cap, "-");
}

static void fmt_ci(char *buf, size_t cap, const qf_change *c)
{
    char lo[24], hi[24];
    pct(lo, sizeof lo, c->lo);
    pct(hi, sizeof hi, c->hi);
    if (isfinite(c->lo))
        snprintf(buf, cap, "[%s, %s]", lo, hi);
    else
        snprintf(buf, cap, "-");
}

static void shape_of(const qf_rs_result *r, char *buf, size_t cap)
{
    snprintf(buf, cap, "%" PRId64 "x%" PRId64, r->spec.rows, r->spec.cols);
}

static void print_table(const qf_comparison *c, bool md)
{
    const qf_resultset *rs = c->rs;
    if (md)
        puts("| op | format | shape | device | n base | n head | base median s | head median s "
             "| change | 95% CI | p | verdict |\n|---|---|---|---|--:|--:|--:|--:|--:|--:|--:|---|");
    else
        printf("%-10s %-10s %-11s %-12s %6s %6s %12s %12s %8s %-19s %9s  %s\n", "op", "format",
               "shape", "device", "n base", "n head", "base med s", "head med s", "change",
               "95% CI", "p", "verdict");
    for (size_t i = 0; i < c->n_items; i++) {
        const qf_compare_item *it = &c->items[i];
        const qf_rs_result *r = it->example;
        char shape[48], change[24], ci[64];
        shape_of(r, shape, sizeof shape);
        pct(change, sizeof change, it->change.ratio);
        fmt_ci(ci, sizeof ci, &it->change);
        if (md)
            printf("| %s | %s | %s | %s | %zu | %zu | %.6g | %.6g | %s | %s | %.3g | %s |\n",
                   r->spec.kind, r->spec.format, shape, rs->devices[it->device].id, it->nb,
                   it->nh, it->base_median, it->head_median, change, ci, it->change.p,
                   qf_verdict_name(it->change.verdict));
        else
            printf("%-10s %-10s %-11s %-12s %6zu %6zu %12.6g %12.6g %8s %-19s %9.3g  %s\n",
                   r->spec.kind, r->spec.format, shape, rs->devices[it->device].id, it->nb,
                   it->nh, it->base_median, it->head_median, change, ci, it->change.p,
               qf_verdict_name(it->change.verdict));
    }
}

/* The cross-device summary: one row per job key, one column per device class. */
static void print_devices(const qf_comparison *c, bool md)
{
    const qf_resultset *rs = c->rs;
    size_t *devs = calloc(rs->n_devices + 1, sizeof *devs), nd = 0;
    const char **keys = calloc(c->n_items + 1, sizeof *keys);
    if (!devs || !keys) {
        free(devs);
        free(keys);
        return;
    }
    size_t nk = 0;
    for (size_t i = 0; i < c->n_items; i++) {
        bool seen = false;
        for (size_t k = 0; k < nd && !seen; k++)
            seen = devs[k] == c->items[i].device;
        if (!seen)
            devs[nd++] = c->items[i].device;
        seen = false;
        for (size_t k = 0; k < nk && !seen; k++)
            seen = strcmp(keys[k], c->items[i].example->key) == 0;
        if (!seen)
            keys[nk++] = c->items[i].example->key;
    }
    printf(md ? "\n### Across device classes\n\n" : "\nAcross device classes (change of the "
                "median time; ! regression, + improvement, ~ not significant):\n");
    for (size_t d = 0; d < nd; d++)
        printf(md ? "- `%s`: %s\n" : "  %s  %s\n", rs->devices[devs[d]].id,
               rs->devices[devs[d]].label);
    printf(md ? "\n| job key |" : "\n%-48s", md ? "" : "job key");
    for (size_t d = 0; d < nd; d++)
        printf(md ? " %s |" : " %14s", rs->devices[devs[d]].id);
    printf(md ? "\n|---|" : "\n");
    for (size_t d = 0; md && d < nd; d++)
        printf("--:|");
    if (md)
        printf("\n");
    for (size_t k = 0; k < nk; k++) {
        printf(md ? "| %s |" : "%-48s", keys[k]);
        for (size_t d = 0; d < nd; d++) {
            char cell[32] = "-";
            for (size_t i = 0; i < c->n_items; i++) {
                const qf_compare_item *it = &c->items[i];
                if (it->device != devs[d] || strcmp(it->example->key, keys[k]) != 0)
                    continue;
                char p[24];
                pct(p, sizeof p, it->change.ratio);
                qf_verdict v = it->change.verdict;
                snprintf(cell, sizeof cell, "%s %s", p, v == QF_VERDICT_REGRESSION ? "!"
                         : v == QF_VERDICT_IMPROVEMENT ? "+" : v == QF_VERDICT_SMALL ? "" : "~");
            }
            printf(md ? " %s |" : " %14s", cell);
        }
        printf("\n");
    }
    free(devs);
    free(keys);
}

static void print_csv(const qf_comparison *c)
{
    const qf_resultset *rs = c->rs;
    fputs("key,op,format,dataset,rows,cols,threads,device_id,device,n_base,n_head,"
          "base_median_s,head_median_s,ratio,ci_lo,ci_hi,u,p,verdict\r\n", stdout);
    for (size_t i = 0; i < c->n_items; i++) {
        const qf_compare_item *it = &c->items[i];
        const qf_rs_result *r = it->example;
        qf_csv_field(stdout, r->key);
        printf(",%s,%s,", r->spec.kind, r->spec.format);
        qf_csv_field(stdout, r->spec.dataset);
        printf(",%" PRId64 ",%" PRId64 ",%" PRIu32 ",%s,", r->spec.rows, r->spec.cols,
               r->spec.threads, rs->devices[it->device].id);
        qf_csv_field(stdout, rs->devices[it->device].label);
        printf(",%zu,%zu,%.17g,%.17g", it->nb, it->nh, it->base_median, it->head_median);
        const double v[] = { it->change.ratio, it->change.lo, it->change.hi, it->change.u,
                             it->change.p };
        for (size_t k = 0; k < sizeof v / sizeof v[0]; k++)
            if (isfinite(v[k]))
                printf(",%.17g", v[k]);
            else
                printf(",");
        printf(",%s\r\n", qf_verdict_name(it->change.verdict));
    }
}

static json_t *jnum(double v)
{
    return isfinite(v) ? json_real(v) : json_null();
}

static int print_json(const qf_comparison *c, const char *base, const char *head,
                      const qf_change_opts *o)
{
    const qf_resultset *rs = c->rs;
    json_t *doc = json_pack("{s:s,s:s,s:f,s:f,s:f,s:I,s:I,s:I,s:I}", "base", base, "head", head,
                            "threshold", o->threshold, "alpha", o->alpha, "level", o->level,
                            "regressions", (json_int_t)c->n_regressions, "improvements",
                            (json_int_t)c->n_improvements, "base_only",
                            (json_int_t)c->base_only, "head_only", (json_int_t)c->head_only);
    json_t *items = json_array();
    if (!doc || !items) {
        json_decref(doc);
        json_decref(items);
        return QF_ENOMEM;
    }
    json_object_set_new(doc, "items", items);
    for (size_t i = 0; i < c->n_items; i++) {
        const qf_compare_item *it = &c->items[i];
        json_t *x = json_pack("{s:s,s:s,s:s,s:s,s:s,s:I,s:I}", "key", it->example->key, "op",
                              it->example->spec.kind, "format", it->example->spec.format,
                              "device_id", rs->devices[it->device].id, "device",
                              rs->devices[it->device].label, "n_base", (json_int_t)it->nb,
                              "n_head", (json_int_t)it->nh);
        if (!x)
            continue;
        json_object_set_new(x, "base_median_s", jnum(it->base_median));
        json_object_set_new(x, "head_median_s", jnum(it->head_median));
        json_object_set_new(x, "ratio", jnum(it->change.ratio));
        json_object_set_new(x, "ci_lo", jnum(it->change.lo));
        json_object_set_new(x, "ci_hi", jnum(it->change.hi));
        json_object_set_new(x, "u", jnum(it->change.u));
        json_object_set_new(x, "p", jnum(it->change.p));
        json_object_set_new(x, "verdict", json_string(qf_verdict_name(it->change.verdict)));
        json_array_append_new(items, x);
    }
    int err = json_dumpf(doc, stdout, JSON_INDENT(2)) == 0 ? 0 : QF_EIO;
    putchar('\n');
    json_decref(doc);
    return err;
}

int qf_cmd_compare(int argc, char **argv)
{
    static const struct option opts[] = {
        { "db", required_argument, NULL, 'd' },
        { "base", required_argument, NULL, 'b' },
        { "head", required_argument, NULL, 'H' },
        { "threshold", required_argument, NULL, 't' },
        { "alpha", required_argument, NULL, 'a' },
        { "suite", required_argument, NULL, 's' },
        { "format", required_argument, NULL, 'f' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *db = "qfleet.db", *base_rev = NULL, *head_rev = NULL, *suite = NULL;
    qf_change_opts o = QF_CHANGE_OPTS_DEFAULT;
    enum out_format fmt = OUT_TEXT;
    int ch;
    opterr = 0;
    optind = 1;
    while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (ch) {
        case 'd': db = optarg; break;
        case 'b': base_rev = optarg; break;
        case 'H': head_rev = optarg; break;
        case 's': suite = optarg; break;
        case 't':
            if (parse_fraction("--threshold", optarg, true, 10.0, &o.threshold))
                return QF_EXIT_USAGE;
            break;
        case 'a':
            if (parse_fraction("--alpha", optarg, false, 0.5, &o.alpha))
                return QF_EXIT_USAGE;
            break;
        case 'f':
            if (strcmp(optarg, "text") == 0)
                fmt = OUT_TEXT;
            else if (strcmp(optarg, "md") == 0)
                fmt = OUT_MD;
            else if (strcmp(optarg, "csv") == 0)
                fmt = OUT_CSV;
            else if (strcmp(optarg, "json") == 0)
                fmt = OUT_JSON;
            else {
                qf_errorf(QF_EUSAGE, "compare: --format '%s' is not text, md, csv or json",
                          optarg);
                return QF_EXIT_USAGE;
            }
            break;
        case 'h': usage(stdout); return QF_EXIT_OK;
        default: qf_cli_reject_option("compare", ch, argc, argv); return QF_EXIT_USAGE;
        }
    }
    if (optind != argc || !base_rev || !head_rev) {
        qf_errorf(QF_EUSAGE, "compare: %s (see qfleet compare --help)",
                  optind != argc ? "unexpected argument" : "--base and --head are required");
        return QF_EXIT_USAGE;
    }
    qf_resultset *rs = NULL;
    qf_comparison *c = NULL;
    const char *base = NULL, *head = NULL;
    int err = qf_resultset_load(db, &rs);
    if (!err)
        err = qf_resultset_commit(rs, base_rev, suite, &base);
    if (!err)
        err = qf_resultset_commit(rs, head_rev, suite, &head);
    if (!err)
        err = qf_comparison_build(rs, base, head, suite, &o, &c);
    if (!err) {
        switch (fmt) {
        case OUT_TEXT:
        case OUT_MD:
            printf(fmt == OUT_MD ? "## qfleet compare: `%s` -> `%s`\n\n"
                                 : "qfleet compare: %s -> %s\n", base, head);
            printf("%sthreshold %g%%, alpha %g, %g%% bootstrap intervals of the median time "
                   "ratio (only for significant pairs)\n%s", fmt == OUT_MD ? "" : "",
                   100.0 * o.threshold, o.alpha, 100.0 * o.level, fmt == OUT_MD ? "\n" : "\n");
            print_table(c, fmt == OUT_MD);
            print_devices(c, fmt == OUT_MD);
            printf("\n%zu pairs: %zu regression%s, %zu improvement%s; %zu only in base, %zu only "
                   "in head\n", c->n_items, c->n_regressions, c->n_regressions == 1 ? "" : "s",
                   c->n_improvements, c->n_improvements == 1 ? "" : "s", c->base_only,
                   c->head_only);
            break;
        case OUT_CSV: print_csv(c); break;
        case OUT_JSON:
            if (print_json(c, base, head, &o))
                err = qf_errorf(QF_ENOMEM, "compare: cannot write the JSON output");
            break;
        }
    }
    int status = err ? QF_EXIT_USAGE : c->n_regressions ? QF_EXIT_FAILURE : QF_EXIT_OK;
    qf_comparison_destroy(&c);
    qf_resultset_destroy(&rs);
    return status;
}
