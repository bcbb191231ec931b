/* fw_tool.h - what the adapters that measure a framework through its own command-line tool
 * share: finding the tool on PATH, running it with a time limit into a bounded buffer, reading
 * its version, locating the job's model, a scratch folder, and the result's bookkeeping. Also
 * the report parsers of those adapters (fw_openvino.c, fw_mlx.c, fw_qnn.c), declared here so
 * tests/test_fw_tools.c can feed them sample reports.
 *
 * Everything here runs in the runner's child process (one job per process) or in a probe, and
 * nothing prints: a tool's output and every reason come back in buffers, so a missing tool, a
 * hung one or a garbled report becomes a FAILED result, never a message on our stderr or an
 * abort. Not hot: a few tool runs per job.
 */
#ifndef QF_FW_TOOL_H
#define QF_FW_TOOL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qf_framework.h"
#include "qf_job.h"

#define QF_FW_TOOL_OUTPUT_MAX (1u << 20)   /* bytes of a tool's output kept (the tail) */
#define QF_FW_TOOL_PATH_MAX   4096
#define QF_FW_PROBE_TIMEOUT_MS 20000      /* a version query that takes longer is no tool */

/* ---- running tools -------------------------------------------------------------------------- */

typedef struct qf_fw_tool_output {
    char  *text;          /* stdout and stderr interleaved, NUL-terminated; caller clears */
    size_t len;
    bool   truncated;     /* the tool wrote more than QF_FW_TOOL_OUTPUT_MAX: text is the tail */
    bool   timed_out;     /* killed (with its process group) at the time limit */
    int    exit_status;   /* when it exited: its status (-1: lost, SIGCHLD was ignored) */
    int    term_signal;   /* when a signal ended it: the signal, else 0 */
} qf_fw_tool_output;

/* The executable called name on $PATH (name itself when it holds a '/') into path. False when
 * there is none, PATH is unset, or the path does not fit. */
bool qf_fw_tool_which(const char *name, char *path, size_t path_len);

/* Runs argv (argv[0] looked up with qf_fw_tool_which; NULL-terminated) with stdin from
 * /dev/null and stdout+stderr captured into out, in its own process group, which is killed
 * with SIGKILL when timeout_ms passes. 0 when the tool ran (whatever its exit status: see
 * out), QF_ENOENT when it is not on PATH, QF_EIO when it could not be started, QF_ENOMEM;
 * reason in why. out is cleared on entry; clear it after with qf_fw_tool_output_clear. */
int qf_fw_tool_exec(const char *const argv[], int timeout_ms, qf_fw_tool_output *out,
                    char *why, size_t why_len);

/* Frees out's text and zeroes it. NULL-safe. */
void qf_fw_tool_output_clear(qf_fw_tool_output *out);

/* qf_fw_tool_exec, then qf_fw_tool_ok: 0 only when the tool ran and exited with status 0,
 * else a qf_err (QF_EIO for the tool's own failure) with the reason in why. out holds what the
 * tool printed either way (clear it after). */
int qf_fw_tool_run(const char *const argv[], int timeout_ms, qf_fw_tool_output *out,
                   char *why, size_t why_len);

/* True when out says the tool exited with status 0 (not killed, not timed out). Otherwise
 * writes "TOOL: exited with status N|killed by signal N|timed out after N s: LAST LINE" into
 * why (the last non-empty line of its output, which is where tools say what went wrong). */
bool qf_fw_tool_ok(const char *tool, const qf_fw_tool_output *out, int timeout_ms, char *why,
                   size_t why_len);

/* The first version number ("2024.4.0", "v2.22.0.240425" -> "2.22.0.240425": digits with at
 * least one dot) in the first line of text that contains key (any line when key is NULL).
 * False when there is none. */
bool qf_fw_tool_version_of(const char *text, const char *key, char *version, size_t version_len);

/* A probe: true when tool is on PATH and `version_tool ARGS...` (argv, NULL-terminated; its
 * argv[0] looked up on PATH too) prints a version in a line containing key (any line: NULL)
 * within QF_FW_PROBE_TIMEOUT_MS; the version into version. Its exit status is not looked at
 * (some tools print their version on the way to refusing a dummy argument). */
bool qf_fw_tool_probe(const char *tool, const char *const version_argv[], const char *key,
                      char *version, size_t version_len);

/* ---- the job's model and scratch space ------------------------------------------------------ */

typedef struct qf_fw_model {
    char     path[QF_FW_TOOL_PATH_MAX];  /* the fetched file, as the manifest names it */
    char     sha256[65];                 /* its hash (the result's dataset identity) */
    uint64_t bytes;                      /* its size: the weight bytes the tool reads */
} qf_fw_model;

/* The model file of spec's dataset: "manifest:NAME" of kind model (or tensor), fetched into
 * the cache if it is not there. The manifest schema says gguf or safetensors; these adapters
 * hand the file to their tool as it is (docs/frameworks.md). QF_EINVAL for a synthetic or
 * text dataset, else qf_manifest_find's / qf_fetch's errors; reason in why. */
int qf_fw_model_resolve(const qf_job_spec *spec, qf_fw_model *model, char *why, size_t why_len);

/* A fresh private folder ($TMPDIR or /tmp, "qf-PREFIX-XXXXXX") into dir, and its removal
 * with everything in it (a tool's outputs), NULL- and ""-safe. */
int  qf_fw_scratch_new(const char *prefix, char *dir, size_t dir_len, char *why, size_t why_len);
void qf_fw_scratch_remove(const char *dir);

/* dir + "/" + name into path; false (path "") when it does not fit. */
bool qf_fw_path_join(char *path, size_t path_len, const char *dir, const char *name);

/* The whole of a small text file (at most max bytes) into *text (NUL-terminated, caller
 * frees). QF_ENOENT, QF_EIO, QF_ETOOBIG, QF_ENOMEM; reason in why. */
int qf_fw_read_text(const char *path, size_t max, char **text, char *why, size_t why_len);

/* What one run of a tool reports. Times in seconds; NaN where the tool gives none. */
typedef struct qf_fw_report {
    double   per_iter_s;   /* the sample: the run's mean seconds per iteration */
    double   median_s, min_s, max_s;
    uint64_t iterations;   /* iterations the run timed (inferences, generated tokens); 0 if
                              the report does not say */
    double   rate;         /* the tool's own rate (FPS, inferences/s, tokens/s) */
    uint64_t peak_mem_bytes; /* MLX: peak (unified) memory; 0 elsewhere */
} qf_fw_report;

/* ---- results -------------------------------------------------------------------------------- */

/* Writes "TOOL: <formatted>" into why (no prefix when tool is NULL) and returns err, so a
 * parser can `return qf_fw_why(why, why_len, QF_EPARSE, "benchmark_app", "%s:%d: ...", ...)`. */
int qf_fw_why(char *why, size_t why_len, int err, const char *tool, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Fills an OK result measured by fw in version over model: takes the samples (n of them,
 * malloc'd; ownership moves to out), bytes = throughput_bytes = the model file's size (one
 * iteration reads every weight once), bpw of spec->format, kernel "<name>-<version>",
 * dataset_sha256 the model file's hash; no metrics (the tool's outputs are not ours to
 * compare). */
void qf_fw_ok(const qf_framework *fw, const char *version, const qf_job_spec *spec,
              const qf_fw_model *model, double *samples, uint32_t n, qf_job_result *out);

/* One repetition of an adapter: one run of its tool with its outputs in folder (fresh, empty,
 * removed afterwards), what the tool reported into *r (r->per_iter_s is the sample), and the
 * framework's version into version when the run shows it and version is still "". 0, or a
 * qf_err with the reason in why. ctx is the adapter's. */
typedef int (*qf_fw_rep_fn)(const qf_job_spec *spec, const qf_fw_model *model,
                            const char *folder, double started, void *ctx, qf_fw_report *r,
                            char *version, size_t version_len, char *why, size_t why_len);

/* A job of an adapter: resolves spec's model (qf_fw_model_resolve), then spec->warmup
 * untimed and spec->reps timed calls of rep, each in its own scratch folder, then qf_fw_ok
 * with the samples (and, when the reports have one, the largest peak memory as
 * device_mem_bytes); version "" is filled by the runs or becomes "unknown". On the first
 * failure, FAILED "NAME: reason". The time limit (spec->timeout_ms) counts from the call.
 * Returns 0. */
int qf_fw_measure(const qf_framework *fw, const qf_job_spec *spec, qf_fw_rep_fn rep,
                  void *ctx, char *version, size_t version_len, qf_job_result *out);

/* Milliseconds left of the job's time limit (spec->timeout_ms from started, qf_time_mono
 * seconds) for the next tool run, less a second kept for reporting; at least 1. */
int qf_fw_time_left_ms(const qf_job_spec *spec, double started);

/* ---- reading reports ------------------------------------------------------------------------ */

/* Walks text line by line: *s and *n the line without its "\n" or "\r\n", it->line its number
 * (from 1). False at the end. */
typedef struct qf_fw_lines {
    const char *p;
    int         line;
} qf_fw_lines;
bool qf_fw_lines_next(qf_fw_lines *it, const char **s, size_t *n);

/* The finite number >= 0 that s[0..n) holds, blanks around it allowed, nothing else. */
bool qf_fw_number(const char *s, size_t n, double *v);

/* ---- the adapters' report parsers ----------------------------------------------------------- */


/* OpenVINO benchmark_app's statistics report: benchmark_report.csv (';'-separated, sections
 * "Command line parameters", "Configuration setup", "Execution results"; C++ and Python tool
 * spellings of the latency keys) or benchmark_report.json (-json_stats). name is the file's
 * name for messages. QF_EPARSE with "benchmark_app: NAME:LINE: reason" in why. */
int qf_fw_openvino_parse_csv(const char *text, const char *name, qf_fw_report *r, char *why,
                             size_t why_len);
int qf_fw_openvino_parse_json(const char *text, const char *name, qf_fw_report *r, char *why,
                              size_t why_len);

/* mlx_lm.generate's output: the last "Prompt: N tokens, X tokens-per-sec", "Generation: N
 * tokens, Y tokens-per-sec" and "Peak memory: Z GB" lines. per_iter_s = 1/Y. */
int qf_fw_mlx_parse(const char *text, const char *name, qf_fw_report *r, char *why,
                    size_t why_len);

/* qnn-profile-viewer's text output of a qnn-net-run profiling log: "Execute Stats (Average)"
 * / "(Min)" / "(Max)" sections, their first graph's "NetRun: N us" line, and "NetRun IPS". */
int qf_fw_qnn_parse(const char *text, const char *name, qf_fw_report *r, char *why,
                    size_t why_len);

#endif
