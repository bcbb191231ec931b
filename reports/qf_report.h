/* qf_report.h - what `qfleet report` and `qfleet compare` are built from: the results store
 * loaded read-only into plain arrays, the statistics that compare raw samples, the chapter's
 * table, and the writers (HTML, CSV, Markdown, JSON) with their atomic file output.
 *
 * Data flow: qf_resultset_load (load.c) reads runs, agents and results of a store written by
 * coordinator/store.c into a qf_resultset (never writing to the file) -> qf_report_rows
 * (table.c) builds the chapter's rows of a selection against the run's baseline format ->
 * the writers (html.c, text.c) print them; qf_compare_pairs (compare.c) pairs two commits'
 * results by job key and device, and qf_change_test (stats.c) decides each pair.
 * Everything here runs once per command invocation on at most a few hundred thousand
 * samples; only the bootstrap inside qf_change_test is a loop worth counting (B resamples).
 */
#ifndef QF_REPORT_H
#define QF_REPORT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "qf_job.h"

/* --- the loaded store (load.c) --------------------------------------------------------- */

typedef struct qf_rs_run {
    int64_t id;
    char    suite[64], commit[64], branch[64], baseline[QF_JOB_FORMAT_MAX], state[16];
    bool    dirty;
    double  submitted_at;   /* Unix seconds */
} qf_rs_run;

/* A device class: the agents' hardware fingerprints with the software-under-test ("qfleet"),
 * the agent's own names and the memory sizes removed, so one machine is one class across commits and two
 * identical boards are one class. id is the first 12 hex digits of that JSON's SHA-256. */
typedef struct qf_rs_device {
    char  id[13];
    char  label[160];       /* "CPU model (x86_64, 2 cores)" */
    char *fingerprint;      /* the stripped fingerprint, pretty JSON; owned */
} qf_rs_device;

typedef struct qf_rs_agent {
    int64_t id;
    char    name[64];
    size_t  device;         /* index into devices */
} qf_rs_agent;

typedef struct qf_rs_result {
    int64_t  id, run_id, job_id, agent_id;
    size_t   run, agent, device;          /* indexes into the set's arrays */
    int      attempt;
    char     status[16], key[QF_JOB_KEY_MAX];
    qf_job_spec spec;
    bool     has_metrics;
    double   rmse, nmse, snr_db, max_abs, cosine;   /* NaN when absent; snr_db may be +inf */
    double   ppl, ppl_base, kld, same_top;         /* model-level metrics (eval jobs), NaN
                                                      when absent; quality retention =
                                                      ppl_base / ppl (docs/metrics.md) */
    double  *samples;                              /* seconds per repetition; owned */
    size_t   n_samples;
    double   median_s;                             /* NaN without samples */
    uint64_t bytes, throughput_bytes, seed, peak_rss_kb;
    double   bpw, wall_s;                          /* NaN when NULL in the store */
    char     dataset_sha256[65], kernel[32];
} qf_rs_result;

typedef struct qf_resultset {
    qf_rs_run    *runs;    size_t n_runs;      /* ascending id: submission order */
    qf_rs_agent  *agents;  size_t n_agents;
    qf_rs_device *devices; size_t n_devices;
    qf_rs_result *results; size_t n_results;   /* ascending (run id, result id) */
} qf_resultset;

/* Opens the store at path read-only (SQLITE_OPEN_READONLY: the file is never written) and
 * loads everything. QF_ENOENT if it cannot be opened, QF_EDB for a store of another schema
 * version or a failed query, QF_EPARSE for a row whose JSON is bad (the result id named),
 * QF_ENOMEM. One message on stderr on failure. Caller owns *out (qf_resultset_destroy). */
int  qf_resultset_load(const char *path, qf_resultset **out);
void qf_resultset_destroy(qf_resultset **rs);

/* The run with this id, or NULL. */
const qf_rs_run *qf_resultset_run(const qf_resultset *rs, int64_t id);

/* Resolves rev to the one full commit it names: an exact commit_sha, or a prefix that only one
 * stored commit starts with. QF_ENOENT (no run has it) or QF_EINVAL (ambiguous), with a
 * message naming rev. suite, when not NULL, restricts the runs considered. */
int qf_resultset_commit(const qf_resultset *rs, const char *rev, const char *suite,
                        const char **commit);

/* --- statistics (stats.c) ---------------------------------------------------------------- */

/* Two-sided Mann-Whitney U test of a (na) against b (nb), both >= 1: U of a, and the p-value,
 * exact (the null distribution by the q-binomial generating function) when there are no ties
 * and na, nb <= 50, else the normal approximation with tie and continuity corrections. */
int qf_mannwhitney(const double *a, size_t na, const double *b, size_t nb, double *u,
                   double *p);

/* What one comparison concluded. */
typedef enum qf_verdict {
    QF_VERDICT_NOISE,        /* not significant at alpha */
    QF_VERDICT_SMALL,        /* significant, but surely within the threshold */
    QF_VERDICT_REGRESSION,   /* significantly slower and possibly by threshold or more */
    QF_VERDICT_IMPROVEMENT,  /* the same, faster */
    QF_VERDICT_FEW,          /* fewer than 2 samples on a side: nothing can be said */
} qf_verdict;

typedef struct qf_change {
    double ratio;            /* median(head) / median(base) of seconds: > 1 is slower */
    double lo, hi;           /* percentile bootstrap interval of ratio at level */
    double u, p;             /* Mann-Whitney */
    qf_verdict verdict;
} qf_change;

typedef struct qf_change_opts {
    double   threshold;      /* relative change that matters, e.g. 0.05 */
    double   alpha;          /* significance level of the U test, e.g. 0.01 */
    double   level;          /* bootstrap interval coverage, e.g. 0.95 */
    unsigned resamples;      /* bootstrap resamples, e.g. 1000 */
    uint64_t seed;           /* bootstrap seed: the same inputs give the same interval */
} qf_change_opts;

#define QF_CHANGE_OPTS_DEFAULT { .threshold = 0.05, .alpha = 0.01, .level = 0.95, \
                                 .resamples = 1000, .seed = 0x7173666c656574ULL }

/* Compares base (nb samples) with head (nh): the median ratio, its bootstrap interval and the
 * U test, and the verdict: REGRESSION when p < alpha, the ratio is above 1 and the interval
 * reaches 1 + threshold (a slowdown that large is not ruled out); IMPROVEMENT mirrored (the
 * interval reaches 1 / (1 + threshold)); SMALL when significant otherwise. QF_ENOMEM. */
int qf_change_test(const double *base, size_t nb, const double *head, size_t nh,
                   const qf_change_opts *o, qf_change *out);

/* The ratio num / den of medians with a percentile bootstrap interval (each side resampled
 * with replacement, resamples times, seeded): for speed-ups against a baseline. */
int qf_ratio_interval(const double *num, size_t nn, const double *den, size_t nd,
                      const qf_change_opts *o, double *ratio, double *lo, double *hi);

/* Change points of a series y[0..n): the optimal partition into constant segments under a
 * squared-error cost plus a penalty per segment (docs/reports.md has the penalty). Writes the
 * indexes where a new segment starts (ascending, each in 1..n-1) to cps (room for n) and their
 * count to *n_cps; none for n < 3 (no noise to judge a difference against). QF_ENOMEM. */
int qf_changepoints(const double *y, size_t n, size_t *cps, size_t *n_cps);

/* --- the chapter's table (table.c) -------------------------------------------------------- */

/* One row: a result of the selection with its baseline counterpart (same run, agent, op,
 * dataset and shape, the run's baseline format). */
typedef struct qf_report_row {
    const qf_rs_result *r, *base;  /* base NULL when the run has no baseline result for r */
    double mem_pct;                /* 100 * (bytes / base bytes - 1); NaN without base */
    double speedup, lo, hi;        /* median(base s) / median(r s) with its interval; NaN */
    double gbps;                   /* throughput_bytes / median seconds / 1e9; NaN */
} qf_report_row;

typedef struct qf_report {
    const qf_resultset *rs;
    const qf_rs_run   **runs;      /* the selected runs */
    size_t              n_runs;
    qf_report_row      *rows;      /* ok results of the selected runs, by device, op, bpw */
    size_t              n_rows;
    const qf_rs_result **all;      /* every result of the selected runs (CSV, details) */
    size_t              n_all;
    bool                has_ppl, has_kld;
} qf_report;

/* Selects runs (run_id > 0: that run; else commit != NULL: every run of that commit; else the
 * latest run), each restricted to suite when not NULL, and builds the rows. QF_ENOENT with a
 * message when nothing matches, QF_ENOMEM. Caller owns *out (qf_report_destroy). */
int  qf_report_build(const qf_resultset *rs, int64_t run_id, const char *commit,
                     const char *suite, qf_report **out);
void qf_report_destroy(qf_report **rep);

/* A row's cells as the tables print them ("-" where there is no value). */
typedef struct qf_report_cells {
    char framework[48], format[QF_JOB_FORMAT_MAX], op[QF_JOB_KIND_MAX], shape[48];
    char bpw[16], bytes[24], mem[16], speedup[48], gbps[16];
    char snr[16], nmse[16], cosine[16], ppl[16], kld[16], retention[16];
} qf_report_cells;

void qf_report_cells_fill(const qf_report_row *w, qf_report_cells *c);

/* The chapter's Framework column for a job: a framework job's framework ("ONNX Runtime
 * (Olive)"), else the owner of the format's scheme - "llama.cpp GGUF" for the GGUF formats,
 * the framework's title for a framework's native scheme (format family ort, nncf, mlx, qnn),
 * "float" and "quantfleet" otherwise - with " [ours]" when our kernels ran another's scheme.
 * Static storage or buf. */
const char *qf_report_framework(const qf_job_spec *spec, char *buf, size_t len);

/* --- two commits compared (compare.c) ----------------------------------------------------- */

/* One job key on one device class: the pooled samples of every ok result of each commit. */
typedef struct qf_compare_item {
    const qf_rs_result *example;   /* one head result: spec, format, op for display */
    size_t  device;
    double *base, *head;           /* owned */
    size_t  nb, nh;
    double  base_median, head_median;
    qf_change change;
} qf_compare_item;

typedef struct qf_comparison {
    const qf_resultset *rs;
    qf_compare_item    *items;     /* sorted by effect: |log ratio|, largest first */
    size_t              n_items;
    size_t              n_regressions, n_improvements;
    size_t              base_only, head_only;   /* keys on a device that did not pair */
} qf_comparison;

/* Pairs the ok results of the runs of commit base and commit head (suite, when not NULL,
 * restricts both) by job key and device class, and tests each pair. QF_ENOENT with a
 * message when no result pairs up, QF_ENOMEM. Caller owns *out (qf_comparison_destroy). */
int  qf_comparison_build(const qf_resultset *rs, const char *base, const char *head,
                         const char *suite, const qf_change_opts *o, qf_comparison **out);
void qf_comparison_destroy(qf_comparison **c);

/* "regression", "improvement", "small", "noise", "too few". Static storage. */
const char *qf_verdict_name(qf_verdict v);

/* --- writers (html.c, text.c) -------------------------------------------------------------- */

/* index.html: self-contained (inline CSS and SVG, no scripts, a CSP that forbids loads). */
int qf_report_write_html(const qf_report *rep, FILE *out);
/* results.csv: RFC 4180 (CRLF, quoted when needed), a header, one row per result and
 * repetition (one row with empty rep and sample for a result without samples). */
int qf_report_write_csv(const qf_report *rep, FILE *out);
/* summary.md: the chapter's table in Markdown with the run's identity. */
int qf_report_write_md(const qf_report *rep, FILE *out);
/* The JSON summary --post sends; caller frees. NULL when out of memory. */
char *qf_report_json(const qf_report *rep);

/* Writes len bytes to path through a temporary sibling and rename(2), so path is either its
 * old content or the whole new one. QF_EIO naming path. */
int qf_report_file_write(const char *path, const char *data, size_t len);

/* One CSV field per RFC 4180: quoted (with doubled quotes) when it holds a comma, a quote,
 * CR or LF. */
void qf_csv_field(FILE *out, const char *s);

/* Text escaped for HTML element content and attribute values. */
void qf_html_text(FILE *out, const char *s);

/* POSTs body (JSON) to url with libcurl: connect timeout and total timeout_s, redirects not
 * followed. QF_ETIMEDOUT past timeout_s, QF_ENET otherwise (curl's reason, or an HTTP status
 * outside 2xx), each with a message naming url. */
int qf_report_post(const char *url, const char *body, double timeout_s);

#endif
