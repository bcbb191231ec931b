/* fw_openvino.c - the OpenVINO (NNCF) adapter: a scheme measured by OpenVINO's own
 * benchmark_app on the job's model (docs/frameworks.md).
 *
 * One repetition is one benchmark_app run of OV_ITERS inferences on the CPU, one stream, one
 * infer request and spec->threads threads (latency, not throughput: the chapter's tables are
 * about one user), after which the tool writes its statistics report into a scratch folder;
 * the sample is that run's average latency per inference. spec->warmup runs come first,
 * untimed (benchmark_app also warms up inside each run). The report is benchmark_report.csv,
 * or benchmark_report.json when the tool was built or wrapped to give JSON (-json_stats); both
 * parsers follow the C++ tool's StatisticsReport and the Python tool's spellings.
 *
 * benchmark_app has no --version: both implementations log "Build ....... VERSION" when they
 * load the runtime, before they read the model, so the probe asks for a model that does not
 * exist and reads that line; a job reads it from its own first run's log.
 */
#include "qf_framework.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fw_tool.h"
#include "qf_err.h"
#include "qf_time.h"

#define OV_TOOL       "benchmark_app"
#define OV_ITERS      20
#define OV_REPORT_MAX (1u << 20)
#define OV_VERSION_KEY "Build"

static const char k_who[] = "benchmark_app";

static void report_init(qf_fw_report *r)
{
    memset(r, 0, sizeof *r);
    r->per_iter_s = r->median_s = r->min_s = r->max_s = r->rate = NAN;
}

/* The latencies must be positive and ordered as min <= average <= max (2-decimal rounding
 * allowed for), or the report is not what the tool measured. */
static int check_latencies(qf_fw_report *r, const char *name, int line, char *why,
                           size_t why_len)
{
    if (!(r->per_iter_s > 0))
        return qf_fw_why(why, why_len, QF_EPARSE, k_who,
                         "%s:%d: no positive average latency", name, line);
    const double slack = 0.01e-3;
    if ((!isnan(r->min_s) && r->min_s > r->per_iter_s + slack) ||
        (!isnan(r->max_s) && r->max_s + slack < r->per_iter_s) ||
        (!isnan(r->median_s) && !isnan(r->min_s) && r->median_s + slack < r->min_s) ||
        (!isnan(r->median_s) && !isnan(r->max_s) && r->median_s > r->max_s + slack))
        return qf_fw_why(why, why_len, QF_EPARSE, k_who,
                         "%s:%d: latencies out of order (min %.3f, median "
                         "%.3f, average %.3f, max %.3f ms)", name, line, r->min_s * 1e3,
                         r->median_s * 1e3, r->per_iter_s * 1e3, r->max_s * 1e3);
    return 0;
}

/* ---- CSV ------------------------------------------------------------------------------------ */

/* Which field a key of "Execution results" fills: the C++ tool's spelling, then the Python
 * tool's ("latency (ms)" is the median in both when the percentile is 50). */
enum { K_NONE, K_MEDIAN, K_AVG, K_MIN, K_MAX, K_ITERS, K_RATE, K_ERROR };
static int csv_key(const char *k, size_t n)
{
    static const struct { const char *key; int field; } keys[] = {
        { "Median latency (ms)", K_MEDIAN }, { "latency (ms)", K_MEDIAN },
        { "Average latency (ms)", K_AVG },   { "avg latency", K_AVG },
        { "Min latency (ms)", K_MIN },       { "min latency", K_MIN },
        { "Max latency (ms)", K_MAX },       { "max latency", K_MAX },
        { "total number of iterations", K_ITERS }, { "throughput", K_RATE },
        { "error", K_ERROR },
    };
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++)
        if (strlen(keys[i].key) == n && memcmp(keys[i].key, k, n) == 0)
            return keys[i].field;
    return K_NONE;
}

int qf_fw_openvino_parse_csv(const char *text, const char *name, qf_fw_report *r, char *why,
                             size_t why_len)
{
    report_init(r);
    qf_fw_lines it = { .p = text };
    const char *s;
    size_t n;
    bool in_results = false, after_blank = true, seen[K_ERROR + 1] = { false };
    int results_line = 0;
    size_t len = strlen(text);
    if (len && text[len - 1] != '\n') {
        int last = 1;
        for (size_t i = 0; i + 1 < len; i++)
            last += text[i] == '\n';
        return qf_fw_why(why, why_len, QF_EPARSE, k_who, "%s:%d: the last line is cut short "
                         "(no newline): a truncated report", name, last);
    }
    while (qf_fw_lines_next(&it, &s, &n)) {
        /* The C++ tool ends every cell with ';', the Python tool separates them. */
        while (n && (s[n - 1] == ';' || s[n - 1] == ' ' || s[n - 1] == '\t'))
            n--;
        if (!n) {
            in_results = false;
            after_blank = true;
            continue;
        }
        const char *semi = memchr(s, ';', n);
        bool title = after_blank;
        after_blank = false;
        if (!semi && !title)
            return qf_fw_why(why, why_len, QF_EPARSE, k_who, "%s:%d: '%.*s' has no value",
                             name, it.line, (int)(n > 40 ? 40 : n), s);
        if (!semi) {        /* a section title */
            in_results = n == strlen("Execution results") &&
                         memcmp(s, "Execution results", n) == 0;
            if (in_results) {
                if (results_line)
                    return qf_fw_why(why, why_len, QF_EPARSE, k_who,
                                     "%s:%d: a second 'Execution results' "
                                     "section", name, it.line);
                results_line = it.line;
            }
            continue;
        }
        if (!in_results)
            continue;
        size_t kn = (size_t)(semi - s);
        const char *v = semi + 1;
        size_t vn = n - kn - 1;
        const char *v_end = memchr(v, ';', vn);
        if (v_end)
            vn = (size_t)(v_end - v);
        int field = csv_key(s, kn);
        if (field == K_NONE || seen[field])
            continue;           /* keys we do not use; Python's per-group repeats */
        seen[field] = true;
        if (field == K_ERROR)
            return qf_fw_why(why, why_len, QF_EPARSE, k_who,
                             "%s:%d: the run failed: %.*s", name, it.line,
                             (int)(vn > 120 ? 120 : vn), v);
        double d;
        if (!qf_fw_number(v, vn, &d))
            return qf_fw_why(why, why_len, QF_EPARSE, k_who,
                             "%s:%d: '%.*s' is not a number: '%.*s'", name,
                             it.line, (int)kn, s, (int)(vn > 24 ? 24 : vn), v);
        switch (field) {
        case K_MEDIAN: r->median_s = d / 1e3; break;
        case K_AVG:    r->per_iter_s = d / 1e3; break;
        case K_MIN:    r->min_s = d / 1e3; break;
        case K_MAX:    r->max_s = d / 1e3; break;
        case K_ITERS:  r->iterations = (uint64_t)d; break;
        case K_RATE:   r->rate = d; break;
        default: break;
        }
    }
    int last = it.line ? it.line : 1;
    if (!results_line)
        return qf_fw_why(why, why_len, QF_EPARSE, k_who, "%s:%d: no 'Execution results' section (a "
                   "truncated report, or not benchmark_app's)", name, last);
    if (!seen[K_AVG])
        return qf_fw_why(why, why_len, QF_EPARSE, k_who,
                         "%s:%d: 'Execution results' (line %d) has no "
                         "average latency", name, last, results_line);
    return check_latencies(r, name, results_line, why, why_len);
}

/* ---- JSON ----------------------------------------------------------------------------------- */

/* The line of the first occurrence of needle in text (its last line when absent). */
static int line_of(const char *text, const char *needle)
{
    const char *at = strstr(text, needle);
    int line = 1;
    for (const char *p = text; *p && (!at || p < at); p++)
        line += *p == '\n';
    return line;
}

/* A number member of results, or NaN when absent; false when present but not a number >= 0. */
static bool json_num(json_t *results, const char *key, double *v)
{
    json_t *x = json_object_get(results, key);
    *v = NAN;
    if (!x)
        return true;
    if (!json_is_number(x) || !isfinite(json_number_value(x)) || json_number_value(x) < 0)
        return false;
    *v = json_number_value(x);
    return true;
}

int qf_fw_openvino_parse_json(const char *text, const char *name, qf_fw_report *r, char *why,
                              size_t why_len)
{
    report_init(r);
    json_error_t je;
    json_t *root = json_loads(text, JSON_REJECT_DUPLICATES, &je);
    if (!root)
        return qf_fw_why(why, why_len, QF_EPARSE, k_who,
                         "%s:%d: not JSON: %s", name, je.line > 0 ? je.line : 1, je.text);
    int err = 0;
    json_t *res = json_object_get(root, "execution_results");
    int at = line_of(text, "\"execution_results\"");
    if (!json_is_object(res)) {
        err = qf_fw_why(why, why_len, QF_EPARSE, k_who,
                        "%s:%d: no \"execution_results\" object", name, at);
        goto out;
    }
    json_t *e = json_object_get(res, "error");
    if (e) {
        err = qf_fw_why(why, why_len, QF_EPARSE, k_who, "%s:%d: the run failed: %.120s", name,
                  line_of(text, "\"error\""), json_is_string(e) ? json_string_value(e) : "?");
        goto out;
    }
    static const char *const keys[] = { "latency_avg", "latency_median", "latency_min",
                                        "latency_max", "throughput", "iterations_num" };
    double v[6];
    for (int i = 0; i < 6; i++) {
        if (!json_num(res, keys[i], &v[i])) {
            char quoted[40];
            snprintf(quoted, sizeof quoted, "\"%s\"", keys[i]);
            err = qf_fw_why(why, why_len, QF_EPARSE, k_who,
                            "%s:%d: \"%s\" is not a number >= 0", name,
                            line_of(text, quoted), keys[i]);
            goto out;
        }
    }
    if (isnan(v[0])) {
        err = qf_fw_why(why, why_len, QF_EPARSE, k_who,
                        "%s:%d: \"execution_results\" has no latency_avg",
                        name, at);
        goto out;
    }
    r->per_iter_s = v[0] / 1e3;
    r->median_s = v[1] / 1e3;
    r->min_s = v[2] / 1e3;
    r->max_s = v[3] / 1e3;
    r->rate = v[4];
    r->iterations = isnan(v[5]) ? 0 : (uint64_t)v[5];
    err = check_latencies(r, name, at, why, why_len);
out:
    json_decref(root);
    return err;
}

/* ---- the adapter ---------------------------------------------------------------------------- */

static bool probe(char *version, size_t version_len)
{
    const char *const argv[] = { OV_TOOL, "-m", "/nonexistent/qfleet-probe.xml", "-d", "CPU",
                                 NULL };
    return qf_fw_tool_probe(OV_TOOL, argv, OV_VERSION_KEY, version, version_len);
}

/* One repetition (qf_fw_rep_fn): a benchmark_app run with its report in folder. */
static int run_once(const qf_job_spec *spec, const qf_fw_model *model, const char *folder,
                    double started, void *ctx, qf_fw_report *r, char *version,
                    size_t version_len, char *why, size_t why_len)
{
    (void)ctx;
    char iters[16], threads[16];
    snprintf(iters, sizeof iters, "%d", OV_ITERS);
    snprintf(threads, sizeof threads, "%u", spec->threads);
    const char *const argv[] = { OV_TOOL, "-m", model->path, "-d", "CPU", "-hint", "none",
                                 "-nstreams", "1", "-nireq", "1", "-nthreads", threads,
                                 "-niter", iters, "-report_type", "no_counters",
                                 "-report_folder", folder, NULL };
    qf_fw_tool_output o;
    int err = qf_fw_tool_run(argv, qf_fw_time_left_ms(spec, started), &o, why, why_len);
    if (err) {
        qf_fw_tool_output_clear(&o);
        return err;
    }
    if (!version[0])
        qf_fw_tool_version_of(o.text, OV_VERSION_KEY, version, version_len);
    qf_fw_tool_output_clear(&o);

    char path[QF_FW_TOOL_PATH_MAX];
    if (!qf_fw_path_join(path, sizeof path, folder, "benchmark_report.json"))
        return qf_fw_why(why, why_len, QF_ETOOBIG, k_who, "%.120s: path too long", folder);
    bool json = access(path, F_OK) == 0;
    if (!json)
        qf_fw_path_join(path, sizeof path, folder, "benchmark_report.csv");
    char *text;
    char rwhy[256];
    if ((err = qf_fw_read_text(path, OV_REPORT_MAX, &text, rwhy, sizeof rwhy)) != 0)
        return qf_fw_why(why, why_len, err, k_who, "wrote no report: %s", rwhy);
    err = json ? qf_fw_openvino_parse_json(text, path, r, why, why_len)
               : qf_fw_openvino_parse_csv(text, path, r, why, why_len);
    free(text);
    return err;
}

static int run(const qf_job_spec *spec, qf_job_result *out)
{
    char version[QF_FRAMEWORK_VERSION_MAX] = "";     /* from the first run's log */
    return qf_fw_measure(&qf_fw_openvino, spec, run_once, NULL, version, sizeof version, out);
}

const qf_framework qf_fw_openvino = {
    .name = "openvino",
    .title = "OpenVINO (NNCF)",
    .formats = "f16 nncf_int8_asym nncf_int4_sym_g128 nncf_int4_asym_g128",
    .baseline = "f16",
    .probe = probe,
    .run = run,
};
