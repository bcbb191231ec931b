/* fw_qnn.c - the Qualcomm QNN adapter: a scheme measured by qnn-net-run on the job's model,
 * read back through qnn-profile-viewer (docs/frameworks.md).
 *
 * One repetition is one `qnn-net-run --retrieve_context MODEL (or --model MODEL.so) --backend
 * B --input_list L --output_dir D --profiling_level basic` run, which executes the graph once
 * per line of the input list and writes a profiling log into D; `qnn-profile-viewer
 * --input_log LOG` turns that into text, and the sample is the run's average "NetRun" execute
 * time per inference ("Execute Stats (Average)"). spec->warmup runs come first, untimed.
 *
 * The quantized schemes run on the HTP (Hexagon NPU, libQnnHtp.so); the f32 baseline runs on
 * libQnnCpu.so, the backend that computes in f32 (the HTP has no f32 arithmetic), which is
 * what the chapter's "speed improvement" of QNN INT8 over the float model compares.
 *
 * qnn-net-run needs the graph's inputs as raw files listed in an input list, and a model
 * manifest can name one file only: the input list is the file MODEL.input_list next to the
 * fetched model in the cache, put there when the device is enrolled (qnn-net-run reads the
 * paths in it relative to its working folder, which is the agent's: write absolute paths).
 */
#include "qf_framework.h"

#include <dirent.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "fw_tool.h"
#include "qf_err.h"
#include "qf_time.h"

#define QNN_TOOL      "qnn-net-run"
#define QNN_VIEWER    "qnn-profile-viewer"
#define QNN_INPUTS    ".input_list"
#define QNN_LOG_PREFIX "qnn-profiling-data"

static const char k_who[] = QNN_VIEWER;

/* "NetRun: 2952 us" (blanks around) into *us; false when the line is not that. */
static bool netrun_us(const char *s, size_t n, double *us)
{
    while (n && (*s == ' ' || *s == '\t'))
        s++, n--;
    if (n < 10 || memcmp(s, "NetRun:", 7) != 0 || memcmp(s + n - 3, " us", 3) != 0)
        return false;
    return qf_fw_number(s + 7, n - 10, us);
}

int qf_fw_qnn_parse(const char *text, const char *name, qf_fw_report *r, char *why,
                    size_t why_len)
{
    memset(r, 0, sizeof *r);
    r->per_iter_s = r->median_s = r->min_s = r->max_s = r->rate = NAN;
    enum { S_OTHER, S_AVG, S_MIN, S_MAX, S_OVERALL } sec = S_OTHER;
    static const char *const titles[] = { NULL, "Execute Stats (Average):",
                                          "Execute Stats (Min):", "Execute Stats (Max):",
                                          "Execute Stats (Overall):" };
    double *slot[] = { NULL, &r->per_iter_s, &r->min_s, &r->max_s, NULL };
    int avg_line = 0;
    qf_fw_lines it = { .p = text };
    const char *s;
    size_t n;
    while (qf_fw_lines_next(&it, &s, &n)) {
        while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
            n--;
        if (n && s[n - 1] == ':' && s[0] != ' ' && s[0] != '\t' && memmem(s, n, "Stats", 5)) {
            sec = S_OTHER;     /* "Init Stats:", "Finalize Stats:", ... until one of ours */
            for (int i = S_AVG; i <= S_OVERALL; i++)
                if (strlen(titles[i]) == n && memcmp(titles[i], s, n) == 0)
                    sec = i;
            if (sec == S_AVG) {
                if (avg_line)
                    return qf_fw_why(why, why_len, QF_EPARSE, k_who, "%s:%d: a second '%s' "
                                     "section", name, it.line, titles[S_AVG]);
                avg_line = it.line;
            }
            continue;
        }
        const char *t = s;
        size_t tn = n;
        while (tn && (*t == ' ' || *t == '\t'))
            t++, tn--;
        if (sec == S_OVERALL && tn > 10 && memcmp(t, "NetRun IPS", 10) == 0) {
            const char *colon = memchr(t, ':', tn);
            const char *unit = colon ? strstr(colon, " inf/sec") : NULL;
            if (!colon || !unit || (size_t)(unit - t) + 8 != tn ||
                !qf_fw_number(colon + 1, (size_t)(unit - colon - 1), &r->rate))
                return qf_fw_why(why, why_len, QF_EPARSE, k_who, "%s:%d: a malformed NetRun "
                                 "IPS line", name, it.line);
            continue;
        }
        if (sec == S_OTHER || sec == S_OVERALL || tn < 7 || memcmp(t, "NetRun:", 7) != 0)
            continue;
        double us;
        if (!netrun_us(s, n, &us))
            return qf_fw_why(why, why_len, QF_EPARSE, k_who, "%s:%d: a malformed NetRun line "
                             "(expected 'NetRun: N us')", name, it.line);
        if (isnan(*slot[sec]))      /* the first graph's; later graphs are not ours */
            *slot[sec] = us / 1e6;
    }
    int last = it.line ? it.line : 1;
    if (!avg_line)
        return qf_fw_why(why, why_len, QF_EPARSE, k_who, "%s:%d: no '%s' section (no execute "
                         "was profiled, or the output was cut short)", name, last,
                         titles[S_AVG]);
    if (isnan(r->per_iter_s) || !(r->per_iter_s > 0))
        return qf_fw_why(why, why_len, QF_EPARSE, k_who, "%s:%d: '%s' has no positive NetRun "
                         "time", name, avg_line, titles[S_AVG]);
    if ((!isnan(r->min_s) && r->min_s > r->per_iter_s) ||
        (!isnan(r->max_s) && r->max_s < r->per_iter_s))
        return qf_fw_why(why, why_len, QF_EPARSE, k_who, "%s:%d: execute times out of order "
                         "(min %.0f, average %.0f, max %.0f us)", name, avg_line,
                         r->min_s * 1e6, r->per_iter_s * 1e6, r->max_s * 1e6);
    return 0;
}

/* ---- the adapter ---------------------------------------------------------------------------- */

static bool probe(char *version, size_t version_len)
{
    char path[QF_FW_TOOL_PATH_MAX];
    if (!qf_fw_tool_which(QNN_VIEWER, path, sizeof path))
        return false;
    const char *const argv[] = { QNN_TOOL, "--version", NULL };
    return qf_fw_tool_probe(QNN_TOOL, argv, NULL, version, version_len);
}

/* The profiling log qnn-net-run wrote into dir (qnn-profiling-data_0.log, or without _0). */
static bool find_log(const char *dir, char *path, size_t path_len)
{
    DIR *d = opendir(dir);
    if (!d)
        return false;
    bool found = false;
    for (struct dirent *e; !found && (e = readdir(d)) != NULL;) {
        size_t n = strlen(e->d_name);
        found = strncmp(e->d_name, QNN_LOG_PREFIX, strlen(QNN_LOG_PREFIX)) == 0 && n > 4 &&
                strcmp(e->d_name + n - 4, ".log") == 0 &&
                qf_fw_path_join(path, path_len, dir, e->d_name);
    }
    closedir(d);
    return found;
}

/* One repetition (qf_fw_rep_fn): a qnn-net-run into folder and its profile read back. */
static int run_once(const qf_job_spec *spec, const qf_fw_model *model, const char *folder,
                    double started, void *ctx, qf_fw_report *r, char *version,
                    size_t version_len, char *why, size_t why_len)
{
    (void)ctx, (void)version, (void)version_len;
    char inputs[QF_FW_TOOL_PATH_MAX];
    int w = snprintf(inputs, sizeof inputs, "%s%s", model->path, QNN_INPUTS);
    if (w < 0 || (size_t)w >= sizeof inputs || access(inputs, R_OK) != 0)
        return qf_fw_why(why, why_len, QF_ENOENT, NULL, "no input list %.120s%s: qnn-net-run "
                         "needs the graph's inputs as raw files listed there "
                         "(docs/frameworks.md)", model->path, QNN_INPUTS);
    size_t ml = strlen(model->path);
    bool lib = ml > 3 && strcmp(model->path + ml - 3, ".so") == 0;
    const char *backend = strcmp(spec->format, "f32") == 0 ? "libQnnCpu.so" : "libQnnHtp.so";
    const char *const argv[] = { QNN_TOOL, lib ? "--model" : "--retrieve_context", model->path,
                                 "--backend", backend, "--input_list", inputs,
                                 "--output_dir", folder, "--profiling_level", "basic", NULL };
    qf_fw_tool_output o;
    int err = qf_fw_tool_run(argv, qf_fw_time_left_ms(spec, started), &o, why, why_len);
    qf_fw_tool_output_clear(&o);
    if (err)
        return err;
    char log[QF_FW_TOOL_PATH_MAX];
    if (!find_log(folder, log, sizeof log))
        return qf_fw_why(why, why_len, QF_EIO, QNN_TOOL, "wrote no %s*.log into %.120s",
                         QNN_LOG_PREFIX, folder);
    const char *const view[] = { QNN_VIEWER, "--input_log", log, NULL };
    err = qf_fw_tool_run(view, qf_fw_time_left_ms(spec, started), &o, why, why_len);
    if (!err && o.truncated)
        err = qf_fw_why(why, why_len, QF_ETOOBIG, QNN_VIEWER, "its output of %.120s is over %u "
                        "bytes", log, QF_FW_TOOL_OUTPUT_MAX);
    if (!err) {
        char name[QF_FW_TOOL_PATH_MAX + 16];
        snprintf(name, sizeof name, "output of %s", log);
        err = qf_fw_qnn_parse(o.text, name, r, why, why_len);
    }
    qf_fw_tool_output_clear(&o);
    return err;
}

static int run(const qf_job_spec *spec, qf_job_result *out)
{
    char version[QF_FRAMEWORK_VERSION_MAX];
    if (!probe(version, sizeof version))
        return qf_job_result_fail(out, "qnn: needs qnn-net-run and qnn-profile-viewer on PATH");
    return qf_fw_measure(&qf_fw_qnn, spec, run_once, NULL, version, sizeof version, out);
}

const qf_framework qf_fw_qnn = {
    .name = "qnn",
    .title = "Qualcomm QNN",
    .formats = "f32 qnn_int8_pc qnn_int16_pc qnn_w4_block",
    .baseline = "f32",
    .probe = probe,
    .run = run,
};
