/* test_fw_tools.c - the adapters that measure a framework through its command-line tool
 * (agent/fw_openvino.c, fw_mlx.c, fw_qnn.c) and what they share (agent/fw_tool.c).
 *
 * Three layers. The parsers read the sample reports in tests/data/fw/ (written from each
 * tool's documented format, see its README) and must give their numbers; cut short or garbled
 * copies must give an error naming the tool, the file and the line. The tool runner starts
 * /bin/sh programs that exit with a status, print more than the kept tail, hang with a child
 * in their process group, or are not there. End to end, tests/data/fw/bin/ goes first on PATH:
 * fake benchmark_app, mlx_lm.generate, mlx_lm, qnn-net-run and qnn-profile-viewer scripts check
 * the command lines and put the sample reports where the real tools would, and each adapter's
 * probe and run must produce the right result from a model manifest in a scratch folder
 * (QF_MANIFEST_DIR, and a QF_CACHE_DIR holding the model file, so nothing is downloaded).
 * QF_MLX_ANY_HOST=1 lets the MLX adapter run off Apple Silicon, for this test only.
 */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cmocka.h>

#include "fw_tool.h"
#include "qf_err.h"
#include "qf_formats.h"
#include "qf_framework.h"
#include "qf_time.h"

#define DATA QF_SOURCE_DIR "/tests/data/fw"

static char *slurp(const char *name)
{
    char path[512], *text = NULL, why[256];
    snprintf(path, sizeof path, "%s/%s", DATA, name);
    int err = qf_fw_read_text(path, 1 << 20, &text, why, sizeof why);
    if (err)
        fail_msg("%s", why);
    return text;
}

/* The line number (from 1) of the first line of text that contains needle. */
static int line_with(const char *text, const char *needle)
{
    const char *at = strstr(text, needle);
    assert_non_null(at);
    int line = 1;
    for (const char *p = text; p < at; p++)
        line += *p == '\n';
    return line;
}

/* Replaces the first occurrence of from with to (same length or shorter) in place. */
static void garble(char *text, const char *from, const char *to)
{
    char *at = strstr(text, from);
    assert_non_null(at);
    size_t fn = strlen(from), tn = strlen(to);
    assert_true(tn <= fn);
    memcpy(at, to, tn);
    memmove(at + tn, at + fn, strlen(at + fn) + 1);
}

static void assert_near(double got, double want)
{
    if (isnan(want) ? !isnan(got) : !(fabs(got - want) <= 1e-9 * fmax(1, fabs(want))))
        fail_msg("got %.12g, want %.12g", got, want);
}

/* why must name the tool and say NAME:LINE. */
static void assert_names(const char *why, const char *tool, const char *name, int line)
{
    char want[256];
    snprintf(want, sizeof want, "%s:%d:", name, line);
    if (strncmp(why, tool, strlen(tool)) != 0 || !strstr(why, want))
        fail_msg("reason '%s' does not name %s and %s", why, tool, want);
}

/* ---- parsers -------------------------------------------------------------------------------- */

/* Parses sample file with parse and checks what it gives (latencies in ms). */
typedef int (*parse_fn)(const char *, const char *, qf_fw_report *, char *, size_t);
static void check_sample(parse_fn parse, const char *file, double avg, double median,
                         double min, double max, double rate, uint64_t iters)
{
    char *t = slurp(file);
    qf_fw_report r;
    char why[256] = "";
    if (parse(t, file, &r, why, sizeof why))
        fail_msg("%s", why);
    assert_near(r.per_iter_s, avg * 1e-3);
    assert_near(r.median_s, median * 1e-3);
    assert_near(r.min_s, min * 1e-3);
    assert_near(r.max_s, max * 1e-3);
    assert_near(r.rate, rate);
    assert_int_equal(r.iterations, iters);
    free(t);
}

static void test_openvino_samples(void **state)
{
    (void)state;
    check_sample(qf_fw_openvino_parse_csv, "openvino_report_cpp.csv", 20.63, 20.41, 19.98,
                 23.15, 48.44, 20);
    check_sample(qf_fw_openvino_parse_csv, "openvino_report_python.csv", 20.46, 20.22, 19.87,
                 22.74, 48.86, 20);
    check_sample(qf_fw_openvino_parse_json, "openvino_report.json", 20.63, 20.41, 19.98,
                 23.15, 48.44, 20);
}

/* parse must refuse text with QF_EPARSE, naming tool and "NAME:line:" (line 0: any line) and
 * saying needle (NULL: whatever it says). */
static void expect_bad(parse_fn parse, const char *text, const char *name, const char *tool,
                       int line, const char *needle)
{
    qf_fw_report r;
    char why[256] = "";
    int err = parse(text, name, &r, why, sizeof why);
    if (err != QF_EPARSE)
        fail_msg("%s: got %s (%s), want QF_EPARSE", name, qf_err_name(err), why);
    if (line)
        assert_names(why, tool, name, line);
    else if (strncmp(why, tool, strlen(tool)) != 0)
        fail_msg("reason '%s' does not name %s", why, tool);
    if (needle && !strstr(why, needle))
        fail_msg("reason '%s' lacks '%s'", why, needle);
}

/* A copy of text with from replaced by to (if from is given), cut where cut begins (if given);
 * caller frees. */
static char *variant(const char *text, const char *from, const char *to, const char *cut)
{
    char *g = malloc(strlen(text) + 64);
    assert_non_null(g);
    strcpy(g, text);
    if (from)
        garble(g, from, to);
    if (cut) {
        char *at = strstr(g, cut);
        assert_non_null(at);
        *at = '\0';
    }
    return g;
}

static void test_openvino_bad(void **state)
{
    (void)state;
    const char *f = "benchmark_report.csv", *ov = "benchmark_app";
    char *t = slurp("openvino_report_cpp.csv");
    const struct { const char *from, *to, *cut, *line_of, *needle; int dline; } cases[] = {
        { "20.630000", "2O.63", NULL, "Average latency", "'Average latency (ms)' is not a "
          "number", 0 },
        { NULL, NULL, "0.630000", "Average latency", "cut short", 0 },
        { NULL, NULL, "Median latency", "Median latency", "no average latency", -1 },
        { NULL, NULL, "Execution results", NULL, "no 'Execution results'", 0 },
        { "Min latency (ms);19.980000;", "Min latency (ms)", NULL, "Min latency", "no value",
          0 },
        { "19.980000", "29.980000", NULL, "Execution results", "out of order", 0 },
        { "throughput;48.440000;", "error;boom;", NULL, "throughput", "the run failed: boom",
          0 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *g = variant(t, cases[i].from, cases[i].to, cases[i].cut);
        int line = cases[i].line_of ? line_with(t, cases[i].line_of) + cases[i].dline : 0;
        expect_bad(qf_fw_openvino_parse_csv, g, f, ov, line, cases[i].needle);
        free(g);
    }
    expect_bad(qf_fw_openvino_parse_csv, "", f, ov, 1, "no 'Execution results'");
    expect_bad(qf_fw_openvino_parse_csv, "\x01\x02garbage;;;\n", f, ov, 0, NULL);
    free(t);

    const char *j = "benchmark_report.json";
    t = slurp("openvino_report.json");
    char *g = variant(t, NULL, NULL, "\"latency_max\"");
    expect_bad(qf_fw_openvino_parse_json, g, j, ov, line_with(t, "latency_max"), "not JSON");
    free(g);
    g = variant(t, "\"latency_avg\": 20.63", "\"latency_avg\": \"x\"", NULL);
    expect_bad(qf_fw_openvino_parse_json, g, j, ov, line_with(t, "latency_avg"), "not a number");
    free(g);
    g = variant(t, "\"latency_avg\"", "\"latency_xyz\"", NULL);
    expect_bad(qf_fw_openvino_parse_json, g, j, ov, line_with(t, "execution_results"),
               "no latency_avg");
    free(g);
    free(t);
}

static void test_mlx_parse(void **state)
{
    (void)state;
    const char *f = "mlx output", *ml = "mlx_lm.generate";
    char *t = slurp("mlx_generate.txt");
    qf_fw_report r;
    char why[256] = "";
    if (qf_fw_mlx_parse(t, f, &r, why, sizeof why))
        fail_msg("%s", why);
    assert_near(r.rate, 41.874);
    assert_near(r.per_iter_s, 1 / 41.874);
    assert_int_equal(r.iterations, 128);
    assert_int_equal(r.peak_mem_bytes, 912000000);

    const struct { const char *from, *to, *cut, *line_of, *needle; } cases[] = {
        { NULL, NULL, "Generation: 128", "Prompt: 24", "no Generation line" },
        { "41.874 tokens", "41.8x4 tokens", NULL, "Generation: 128", "malformed Generation" },
        { "0.912 GB", "lots", NULL, "Peak memory", "malformed Peak memory" },
        { "128 tokens, 41.874", "0 tokens, 0.000", NULL, "Generation: 128", "nothing to time" },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *g = variant(t, cases[i].from, cases[i].to, cases[i].cut);
        expect_bad(qf_fw_mlx_parse, g, f, ml, line_with(t, cases[i].line_of), cases[i].needle);
        free(g);
    }
    expect_bad(qf_fw_mlx_parse, "Traceback (most recent call last):\n", f, ml, 1,
               "no '=========='");
    expect_bad(qf_fw_mlx_parse, "==========\nNo text generated for this prompt\n", f, ml, 2,
               "no text generated");
    free(t);
}

static void test_qnn_parse(void **state)
{
    (void)state;
    const char *f = "viewer output", *qv = "qnn-profile-viewer";
    check_sample(qf_fw_qnn_parse, "qnn_profile.txt", 3.184, NAN, 3.020, 3.611, 301.2346, 0);
    char *t = slurp("qnn_profile.txt");
    const struct { const char *from, *to, *cut, *line_of, *needle; int dline; } cases[] = {
        { "NetRun: 3184 us", "NetRun: 31#4 us", NULL, "NetRun: 3184", "malformed NetRun", 0 },
        { NULL, NULL, "Execute Stats (Average)", "Execute Stats (Average)",
          "no 'Execute Stats (Average):'", -1 },
        { NULL, NULL, "    NetRun: 3184", "Execute Stats (Average)", "no positive NetRun", 0 },
        { "NetRun: 3020 us", "NetRun: 4020 us", NULL, "Execute Stats (Average)",
          "out of order", 0 },
        { "301.2346 inf/sec", "fast", NULL, "NetRun IPS", "malformed NetRun IPS", 0 },
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *g = variant(t, cases[i].from, cases[i].to, cases[i].cut);
        expect_bad(qf_fw_qnn_parse, g, f, qv, line_with(t, cases[i].line_of) + cases[i].dline,
                   cases[i].needle);
        free(g);
    }
    free(t);
}

/* Every scheme an adapter lists is a row of the format table, its baseline among them. */
static void test_formats_listed(void **state)
{
    (void)state;
    const qf_framework *fws[] = { &qf_fw_openvino, &qf_fw_mlx, &qf_fw_qnn };
    for (int i = 0; i < 3; i++) {
        assert_true(qf_framework_runs(fws[i], fws[i]->baseline));
        int n = 0;
        for (const char *p = fws[i]->formats; *p;) {
            size_t w = strcspn(p, " ");
            char name[QF_JOB_FORMAT_MAX];
            assert_true(w > 0 && w < sizeof name);
            memcpy(name, p, w);
            name[w] = '\0';
            qf_format f;
            if (qf_format_from_name(name, &f) != 0)
                fail_msg("%s lists '%s', which is not in the format table", fws[i]->name, name);
            n++;
            p += w + (p[w] == ' ');
        }
        assert_int_equal(n, i == 1 ? 16 : 4);
    }
}

/* ---- the tool runner ------------------------------------------------------------------------ */

static void test_version_of(void **state)
{
    (void)state;
    char v[64];
    assert_true(qf_fw_tool_version_of("0.28.2\n", NULL, v, sizeof v));
    assert_string_equal(v, "0.28.2");
    assert_true(qf_fw_tool_version_of("QNN SDK v2.28.0.241029\n", NULL, v, sizeof v));
    assert_string_equal(v, "2.28.0.241029");
    assert_true(qf_fw_tool_version_of("[Step 1/11] x\n[ INFO ] Build ....... "
                                      "2024.4.0-16579-c3152d32c9c-releases/2024/4\n", "Build",
                                      v, sizeof v));
    assert_string_equal(v, "2024.4.0");
    assert_false(qf_fw_tool_version_of("x86_64 1 2\nno version here 3\n", NULL, v, sizeof v));
    assert_false(qf_fw_tool_version_of("Build: none\n1.2.3\n", "Build", v, sizeof v));
}

static void test_exec(void **state)
{
    (void)state;
    qf_fw_tool_output o;
    char why[256];
    const char *const ok[] = { "sh", "-c", "echo out; echo err >&2; exit 7", NULL };
    assert_int_equal(qf_fw_tool_exec(ok, 10000, &o, why, sizeof why), 0);
    assert_int_equal(o.exit_status, 7);
    assert_false(o.timed_out);
    assert_non_null(strstr(o.text, "out\n"));
    assert_non_null(strstr(o.text, "err\n"));
    assert_false(qf_fw_tool_ok("sh", &o, 10000, why, sizeof why));
    assert_string_equal(why, "sh: exited with status 7: err");
    qf_fw_tool_output_clear(&o);

    /* more than the kept tail: the end survives */
    const char *const big[] = { "sh", "-c", "head -c 3000000 /dev/zero | tr '\\0' a; "
                                "echo; echo THE-END", NULL };
    assert_int_equal(qf_fw_tool_exec(big, 20000, &o, why, sizeof why), 0);
    assert_true(o.truncated);
    assert_true(o.len <= QF_FW_TOOL_OUTPUT_MAX);
    assert_string_equal(o.text + o.len - 8, "THE-END\n");
    qf_fw_tool_output_clear(&o);

    /* a hang, with a child of its own holding the pipe: both killed at the limit */
    const char *const hang[] = { "sh", "-c", "sleep 30 & sleep 30", NULL };
    double t0 = qf_time_mono();
    assert_int_equal(qf_fw_tool_exec(hang, 300, &o, why, sizeof why), 0);
    double took = qf_time_mono() - t0;
    assert_true(o.timed_out);
    assert_true(took < 5);
    assert_false(qf_fw_tool_ok("sh", &o, 300, why, sizeof why));
    assert_non_null(strstr(why, "timed out after 0.3 s"));
    qf_fw_tool_output_clear(&o);

    const char *const none[] = { "qfleet-no-such-tool", NULL };
    assert_int_equal(qf_fw_tool_exec(none, 1000, &o, why, sizeof why), QF_ENOENT);
    assert_non_null(strstr(why, "qfleet-no-such-tool: not found on PATH"));
    assert_null(o.text);
    char path[QF_FW_TOOL_PATH_MAX];
    assert_true(qf_fw_tool_which("sh", path, sizeof path));
    assert_false(qf_fw_tool_which("qfleet-no-such-tool", path, sizeof path));
}

/* ---- end to end with the fake tools ---------------------------------------------------------- */

typedef struct world {
    char root[256], log[320], model[512];
    char *old_path;
} world;

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    assert_int_equal(fclose(f), 0);
}

static int world_up(void **state)
{
    world *w = calloc(1, sizeof *w);
    assert_non_null(w);
    snprintf(w->root, sizeof w->root, "/tmp/qf-test-fw-XXXXXX");
    assert_non_null(mkdtemp(w->root));
    char p[512];
    snprintf(p, sizeof p, "%s/manifests", w->root);
    assert_int_equal(mkdir(p, 0700), 0);
    snprintf(p, sizeof p, "%s/manifests/fwmodel.yaml", w->root);
    write_file(p, "name: fwmodel\nkind: model\nformat: safetensors\n"
                  "url: https://example.invalid/fwmodel.bin\nmax_size: 1048576\n"
                  "unverified: true\nlicense: none\n"
                  "description: a stand-in model file for the fake framework tools\n");
    snprintf(p, sizeof p, "%s/cache", w->root);
    assert_int_equal(mkdir(p, 0700), 0);
    snprintf(p, sizeof p, "%s/cache/fwmodel", w->root);
    assert_int_equal(mkdir(p, 0700), 0);
    snprintf(w->model, sizeof w->model, "%s/cache/fwmodel/fwmodel.bin", w->root);
    write_file(w->model, "not really a model, 4 KiB would do as well\n");
    snprintf(p, sizeof p, "%s/input.raw", w->root);
    write_file(p, "zeros");
    char list[600], text[700];
    snprintf(list, sizeof list, "%s.input_list", w->model);
    snprintf(text, sizeof text, "%s/input.raw\n", w->root);
    write_file(list, text);
    snprintf(w->log, sizeof w->log, "%s/commands.log", w->root);

    snprintf(p, sizeof p, "%s/manifests", w->root);
    setenv("QF_MANIFEST_DIR", p, 1);
    snprintf(p, sizeof p, "%s/cache", w->root);
    setenv("QF_CACHE_DIR", p, 1);
    setenv("QF_FAKE_LOG", w->log, 1);
    setenv("QF_MLX_ANY_HOST", "1", 1);
    unsetenv("QF_FAKE_MODE");
    unsetenv("QF_FAKE_OV_JSON");
    const char *old = getenv("PATH");
    w->old_path = strdup(old ? old : "/usr/bin:/bin");
    char *path = malloc(strlen(w->old_path) + 64 + sizeof DATA);
    assert_non_null(path);
    sprintf(path, "%s/bin:%s", DATA, w->old_path);
    setenv("PATH", path, 1);
    free(path);
    *state = w;
    return 0;
}

static int world_down(void **state)
{
    world *w = *state;
    setenv("PATH", w->old_path, 1);
    free(w->old_path);
    qf_fw_scratch_remove(w->root);
    free(w);
    return 0;
}

static qf_job_spec spec_for(const char *fw, const char *format)
{
    qf_job_spec s = { .rows = 256, .cols = 256, .reps = 3, .warmup = 1, .threads = 2,
                      .seed = 1, .timeout_ms = 30000 };
    snprintf(s.kind, sizeof s.kind, "framework");
    snprintf(s.format, sizeof s.format, "%s", format);
    snprintf(s.dataset, sizeof s.dataset, "manifest:fwmodel");
    snprintf(s.selector, sizeof s.selector, "backend=%s", fw);
    return s;
}

/* The fake tools' command lines, one per line. */
static char *commands(const world *w)
{
    char *text = NULL, why[256];
    if (qf_fw_read_text(w->log, 1 << 20, &text, why, sizeof why))
        fail_msg("%s", why);
    return text;
}

static int count_of(const char *text, const char *needle)
{
    int n = 0;
    for (const char *p = text; (p = strstr(p, needle)) != NULL; p++)
        n++;
    return n;
}

static void run_ok(const qf_framework *fw, const qf_job_spec *s, double sample,
                   qf_job_result *r)
{
    memset(r, 0, sizeof *r);
    assert_int_equal(fw->run(s, r), 0);
    if (r->status != QF_JOB_OK)
        fail_msg("%s: %s", fw->name, r->error);
    assert_int_equal(r->n_samples, s->reps);
    for (uint32_t i = 0; i < r->n_samples; i++)
        assert_near(r->samples[i], sample);
    assert_false(r->has_metrics);
    assert_int_equal(r->bytes, 43);
    assert_int_equal(r->throughput_bytes, 43);
    assert_int_equal(strlen(r->dataset_sha256), 64);
}

static void run_failed(const qf_framework *fw, const qf_job_spec *s, const char *needle)
{
    qf_job_result r;
    memset(&r, 0, sizeof r);
    assert_int_equal(fw->run(s, &r), 0);
    assert_int_equal(r.status, QF_JOB_FAILED);
    assert_null(r.samples);
    if (!strstr(r.error, needle))
        fail_msg("%s: error '%s' lacks '%s'", fw->name, r.error, needle);
    qf_job_result_clear(&r);
}

/* The adapter's probe must find the fake tool's version, and a 3-repetition job of format
 * (1 warmup) must give sample for each repetition; what the fake tools were run with is
 * returned (caller frees). */
static char *probe_and_run(world *w, const qf_framework *fw, const char *format,
                           const char *version, double sample, double bpw)
{
    unsetenv("QF_FAKE_MODE");     /* whatever an earlier test left */
    char v[QF_FRAMEWORK_VERSION_MAX], kernel[64];
    assert_true(fw->probe(v, sizeof v));
    assert_string_equal(v, version);
    unlink(w->log);
    qf_job_spec s = spec_for(fw->name, format);
    qf_job_result r;
    run_ok(fw, &s, sample, &r);
    snprintf(kernel, sizeof kernel, "%s-%s", fw->name, version);
    assert_string_equal(r.kernel, kernel);
    assert_near(r.bpw, bpw);
    qf_job_result_clear(&r);
    return commands(w);
}

static void test_openvino_e2e(void **state)
{
    world *w = *state;
    char *c = probe_and_run(w, &qf_fw_openvino, "f16", "2024.4.0", 20.63e-3, 16);
    qf_job_spec s = spec_for("openvino", "f16");
    qf_job_result r;
    assert_int_equal(count_of(c, "benchmark_app -m "), 4);        /* 1 warmup + 3 timed */
    assert_int_equal(count_of(c, " -d CPU -hint none -nstreams 1 -nireq 1 -nthreads 2 "
                                 "-niter 20 -report_type no_counters -report_folder "), 4);
    free(c);

    setenv("QF_FAKE_OV_JSON", "1", 1);
    run_ok(&qf_fw_openvino, &s, 20.63e-3, &r);
    qf_job_result_clear(&r);
    unsetenv("QF_FAKE_OV_JSON");

    setenv("QF_FAKE_MODE", "fail", 1);
    run_failed(&qf_fw_openvino, &s, "openvino: benchmark_app: exited with status 3: [ ERROR ] "
                                    "Exception");
    setenv("QF_FAKE_MODE", "garbled", 1);
    run_failed(&qf_fw_openvino, &s, "benchmark_report.csv:32: the last line is cut short");
    setenv("QF_FAKE_MODE", "hang", 1);
    s.timeout_ms = 1500;
    double t0 = qf_time_mono();
    run_failed(&qf_fw_openvino, &s, "benchmark_app: timed out after");
    assert_true(qf_time_mono() - t0 < 5);
    unsetenv("QF_FAKE_MODE");

    s = spec_for("openvino", "f16");
    snprintf(s.dataset, sizeof s.dataset, "synth:gaussian");
    run_failed(&qf_fw_openvino, &s, "name a model manifest");
    snprintf(s.dataset, sizeof s.dataset, "manifest:nosuchmodel");
    run_failed(&qf_fw_openvino, &s, "no manifest named 'nosuchmodel'");
}

static void test_mlx_e2e(void **state)
{
    world *w = *state;
    unsetenv("QF_FAKE_MODE");     /* whatever an earlier test left */
    char v[QF_FRAMEWORK_VERSION_MAX];
    unsetenv("QF_MLX_ANY_HOST");
#if !defined(__APPLE__)
    assert_false(qf_fw_mlx.probe(v, sizeof v));      /* MLX needs Apple Silicon */
#endif
    setenv("QF_MLX_ANY_HOST", "1", 1);
    assert_true(qf_fw_mlx.probe(v, sizeof v));
    assert_string_equal(v, "0.28.2");
    unlink(w->log);
    qf_job_spec s = spec_for("mlx", "f16");
    qf_job_result r;
    run_ok(&qf_fw_mlx, &s, 1 / 41.874, &r);
    assert_string_equal(r.kernel, "mlx-0.28.2");
    assert_int_equal(r.device_mem_bytes, 912000000);
    qf_job_result_clear(&r);
    char *c = commands(w);
    char want[700];
    snprintf(want, sizeof want, "mlx_lm.generate --model %s --prompt ", w->model);
    assert_int_equal(count_of(c, want), 4);
    assert_int_equal(count_of(c, " --max-tokens 128\n"), 4);
    free(c);

    setenv("QF_FAKE_MODE", "fail", 1);
    run_failed(&qf_fw_mlx, &s, "mlx: mlx_lm.generate: exited with status 1: ValueError");
    setenv("QF_FAKE_MODE", "garbled", 1);
    run_failed(&qf_fw_mlx, &s, "mlx: mlx_lm.generate: its output:9: no Generation line");
    unsetenv("QF_FAKE_MODE");
}

static void test_qnn_e2e(void **state)
{
    world *w = *state;
    char *c = probe_and_run(w, &qf_fw_qnn, "f32", "2.28.0.241029", 3184e-6, 32);
    qf_job_spec s;
    qf_job_result r;
    char want[1200];
    snprintf(want, sizeof want, "qnn-net-run --retrieve_context %s --backend libQnnCpu.so "
             "--input_list %s.input_list --output_dir ", w->model, w->model);
    assert_int_equal(count_of(c, want), 4);
    assert_int_equal(count_of(c, " --profiling_level basic\n"), 4);
    assert_int_equal(count_of(c, "qnn-profile-viewer --input_log "), 4);
    free(c);

    /* a quantized scheme runs on the HTP */
    unlink(w->log);
    s = spec_for("qnn", "qnn_int8_pc");
    s.reps = 1;
    s.warmup = 0;
    run_ok(&qf_fw_qnn, &s, 3184e-6, &r);
    qf_job_result_clear(&r);
    c = commands(w);
    assert_int_equal(count_of(c, "--backend libQnnHtp.so"), 1);
    free(c);

    setenv("QF_FAKE_MODE", "garbled", 1);
    run_failed(&qf_fw_qnn, &s, "qnn: qnn-profile-viewer: output of ");
    run_failed(&qf_fw_qnn, &s, "qnn-profiling-data_0.log:34: a malformed NetRun line");
    setenv("QF_FAKE_MODE", "fail", 1);
    run_failed(&qf_fw_qnn, &s, "qnn: qnn-net-run: exited with status 1: ERROR: Could not load");
    unsetenv("QF_FAKE_MODE");

    char list[600];
    snprintf(list, sizeof list, "%s.input_list", w->model);
    char moved[620];
    snprintf(moved, sizeof moved, "%s.away", list);
    assert_int_equal(rename(list, moved), 0);
    run_failed(&qf_fw_qnn, &s, ".input_list: qnn-net-run needs the graph's inputs");
    assert_int_equal(rename(moved, list), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_openvino_samples),
        cmocka_unit_test(test_openvino_bad),
        cmocka_unit_test(test_mlx_parse),
        cmocka_unit_test(test_qnn_parse),
        cmocka_unit_test(test_formats_listed),
        cmocka_unit_test(test_version_of),
        cmocka_unit_test(test_exec),
        cmocka_unit_test(test_openvino_e2e),
        cmocka_unit_test(test_mlx_e2e),
        cmocka_unit_test(test_qnn_e2e),
    };
    return cmocka_run_group_tests(tests, world_up, world_down);
}
