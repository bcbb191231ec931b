/* cmd_report.c - `qfleet report`: index.html, results.csv and summary.md of stored results,
 * and optionally their JSON summary POSTed to a webhook.
 *
 * The store is opened read-only (reports/load.c), so a report can run beside a live
 * coordinator. Each output is rendered in memory and written through a temporary name and
 * rename (qf_report_file_write): a reader of DIR sees the previous report or the new one,
 * never half a file. Exit 0, 1 on a runtime failure (store, disk, POST), 2 on a usage error.
 */
#include <errno.h>
#include <getopt.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "qf_cli_args.h"
#include "qf_cmd.h"
#include "qf_err.h"
#include "qf_report.h"

static void usage(FILE *out)
{
    fputs("usage: qfleet report [--db FILE] --out DIR [--run ID | --commit REV] [--suite NAME]\n"
          "                     [--post URL] [--post-timeout SECONDS]\n"
          "\n"
          "Write the report of stored results to DIR: index.html (self-contained: tables,\n"
          "Pareto and history charts, fingerprints, raw samples), results.csv (one row per\n"
          "result and repetition, RFC 4180) and summary.md (the table, for pull requests).\n"
          "\n"
          "  --db FILE              the store (default qfleet.db)\n"
          "  --out DIR              where to write (created if missing)\n"
          "  --run ID               report this run (default: the latest run)\n"
          "  --commit REV           report every run of this commit (a unique prefix will do)\n"
          "  --suite NAME           only runs of this suite\n"
          "  --post URL             also POST the JSON summary to URL (http or https)\n"
          "  --post-timeout SECONDS give up on the POST after this long (default 30)\n"
          "  -h, --help             this help\n"
          "\n"
          "docs/reports.md explains every column and statistic.\n", out);
}

/* Renders one output in memory and writes it to DIR/name atomically. */
static int write_output(const qf_report *rep, const char *dir, const char *name, int which)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    if (!m)
        return qf_errorf(QF_ENOMEM, "report: out of memory rendering %s", name);
    int err = which == 0 ? qf_report_write_html(rep, m)
            : which == 1 ? qf_report_write_csv(rep, m)
                         : qf_report_write_md(rep, m);
    if (fclose(m) != 0 && !err)
        err = qf_errorf(QF_ENOMEM, "report: out of memory rendering %s", name);
    if (!err) {
        size_t plen = strlen(dir) + strlen(name) + 2;
        char *path = malloc(plen);
        if (!path)
            err = qf_errorf(QF_ENOMEM, "report: out of memory");
        else {
            snprintf(path, plen, "%s/%s", dir, name);
            err = qf_report_file_write(path, buf, len);
            free(path);
        }
    }
    free(buf);
    return err;
}

int qf_cmd_report(int argc, char **argv)
{
    static const struct option opts[] = {
        { "db", required_argument, NULL, 'd' },
        { "out", required_argument, NULL, 'o' },
        { "run", required_argument, NULL, 'r' },
        { "commit", required_argument, NULL, 'c' },
        { "suite", required_argument, NULL, 's' },
        { "post", required_argument, NULL, 'p' },
        { "post-timeout", required_argument, NULL, 'T' },
        { "help", no_argument, NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *db = "qfleet.db", *out = NULL, *rev = NULL, *suite = NULL, *post = NULL;
    int64_t run_id = 0, timeout = 30;
    int ch;
    opterr = 0;
    optind = 1;
    while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (ch) {
        case 'd': db = optarg; break;
        case 'o': out = optarg; break;
        case 'r':
            if (qf_cli_parse_int("report", "--run", optarg, 1, INT64_MAX, &run_id))
                return QF_EXIT_USAGE;
            break;
        case 'c': rev = optarg; break;
        case 's': suite = optarg; break;
        case 'p': post = optarg; break;
        case 'T':
            if (qf_cli_parse_int("report", "--post-timeout", optarg, 1, 3600, &timeout))
                return QF_EXIT_USAGE;
            break;
        case 'h': usage(stdout); return QF_EXIT_OK;
        default: qf_cli_reject_option("report", ch, argc, argv); return QF_EXIT_USAGE;
        }
    }
    if (optind != argc || !out || !*out || (rev && run_id) || (rev && !*rev)) {
        qf_errorf(QF_EUSAGE, "report: %s (see qfleet report --help)",
                  optind != argc ? "unexpected argument" : !out || !*out ? "--out DIR is required"
                  : run_id ? "--run and --commit exclude each other" : "--commit is empty");
        return QF_EXIT_USAGE;
    }
    if (mkdir(out, 0777) != 0 && errno != EEXIST) {
        qf_errorf(QF_EIO, "report: cannot create %s: %s", out, strerror(errno));
        return QF_EXIT_FAILURE;
    }
    qf_resultset *rs = NULL;
    qf_report *rep = NULL;
    const char *commit = NULL;
    int err = qf_resultset_load(db, &rs);
    if (!err && rev)
        err = qf_resultset_commit(rs, rev, suite, &commit);
    if (!err)
        err = qf_report_build(rs, run_id, commit, suite, &rep);
    static const char *const names[] = { "index.html", "results.csv", "summary.md" };
    for (int i = 0; !err && i < 3; i++)
        err = write_output(rep, out, names[i], i);
    if (!err)
        fprintf(stderr, "qfleet report: %zu run%s, %zu results, %zu table rows -> %s/"
                "{index.html,results.csv,summary.md}\n", rep->n_runs, rep->n_runs == 1 ? "" : "s",
                rep->n_all, rep->n_rows, out);
    if (!err && post) {
        char *json = qf_report_json(rep);
        err = json ? qf_report_post(post, json, (double)timeout)
                   : qf_errorf(QF_ENOMEM, "report: out of memory for the --post summary");
        free(json);
        if (!err)
            fprintf(stderr, "qfleet report: posted the summary to %s\n", post);
    }
    qf_report_destroy(&rep);
    qf_resultset_destroy(&rs);
    return err ? QF_EXIT_FAILURE : QF_EXIT_OK;
}
