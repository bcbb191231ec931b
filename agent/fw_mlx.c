/* fw_mlx.c - the Apple MLX adapter: a scheme measured by mlx_lm.generate on the job's model,
 * on Apple Silicon under macOS (docs/frameworks.md).
 *
 * One repetition is one `mlx_lm.generate --model M --prompt P --max-tokens N` run (greedy,
 * mlx_lm's default temperature 0); its verbose summary says how fast it generated, and the
 * sample is the run's seconds per generated token (1 / "Generation: ... tokens-per-sec"),
 * which excludes loading the model and the prompt's prefill. spec->warmup runs come first,
 * untimed. The job's device memory is the largest "Peak memory" of the timed runs.
 *
 * MLX runs only on Apple Silicon, so the probe says no anywhere else, unless
 * QF_MLX_ANY_HOST=1 is set: the tests set it to drive a fake mlx_lm.generate on Linux. The
 * version is `mlx_lm --version`, the package's own command, installed with mlx_lm.generate.
 */
#include "qf_framework.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/utsname.h>

#include "fw_tool.h"
#include "qf_err.h"
#include "qf_time.h"

#define MLX_TOOL     "mlx_lm.generate"
#define MLX_VERSION_TOOL "mlx_lm"
#define MLX_TOKENS   128
#define MLX_PROMPT   "Write a short story about a lighthouse keeper who finds a bottle."
#define MLX_RULE     "=========="     /* mlx_lm's line between the text and its summary */

static const char k_who[] = MLX_TOOL;

/* "PREFIX <count> tokens, <rate> tokens-per-sec" (the whole line), or "Peak memory: X GB". */
static bool tokens_line(const char *s, size_t n, const char *prefix, uint64_t *count,
                        double *rate)
{
    char line[256];
    if (n >= sizeof line)
        return false;
    memcpy(line, s, n);
    line[n] = '\0';
    size_t pn = strlen(prefix);
    if (strncmp(line, prefix, pn) != 0)
        return false;
    const char *p = line + pn;
    const char *tok = strstr(p, " tokens, ");
    const char *end = strstr(p, " tokens-per-sec");
    double c;
    if (!tok || !end || end < tok || strcmp(end, " tokens-per-sec") != 0 ||
        !qf_fw_number(p, (size_t)(tok - p), &c) || c != floor(c) ||
        !qf_fw_number(tok + 9, (size_t)(end - tok - 9), rate))
        return false;
    *count = (uint64_t)c;
    return true;
}

int qf_fw_mlx_parse(const char *text, const char *name, qf_fw_report *r, char *why,
                    size_t why_len)
{
    memset(r, 0, sizeof *r);
    r->per_iter_s = r->median_s = r->min_s = r->max_s = r->rate = NAN;
    /* The summary follows the last rule line; what comes before is the model's own text,
     * which may say anything, "Generation: ..." included. */
    qf_fw_lines it = { .p = text };
    const char *s, *summary = NULL;
    size_t n;
    int rule = 0;
    while (qf_fw_lines_next(&it, &s, &n))
        if (n == strlen(MLX_RULE) && memcmp(s, MLX_RULE, n) == 0) {
            summary = it.p;
            rule = it.line;
        }
    int last = it.line ? it.line : 1;
    if (!summary)
        return qf_fw_why(why, why_len, QF_EPARSE, k_who, "%s:%d: no '%s' line: not the verbose "
                         "output of mlx_lm.generate, or cut short", name, last, MLX_RULE);
    it = (qf_fw_lines){ .p = summary, .line = rule };
    bool gen = false;
    while (qf_fw_lines_next(&it, &s, &n)) {
        uint64_t count;
        double v;
        if (n >= 7 && memcmp(s, "Prompt:", 7) == 0) {
            if (!tokens_line(s, n, "Prompt: ", &count, &v))
                return qf_fw_why(why, why_len, QF_EPARSE, k_who, "%s:%d: a malformed Prompt "
                                 "line", name, it.line);
        } else if (n >= 11 && memcmp(s, "Generation:", 11) == 0) {
            if (!tokens_line(s, n, "Generation: ", &count, &v))
                return qf_fw_why(why, why_len, QF_EPARSE, k_who, "%s:%d: a malformed "
                                 "Generation line", name, it.line);
            if (!(v > 0) || count == 0)
                return qf_fw_why(why, why_len, QF_EPARSE, k_who, "%s:%d: generated %llu tokens "
                                 "at %.3f tokens-per-sec: nothing to time", name, it.line,
                                 (unsigned long long)count, v);
            r->iterations = count;
            r->rate = v;
            r->per_iter_s = 1.0 / v;
            gen = true;
        } else if (n >= 12 && memcmp(s, "Peak memory:", 12) == 0) {
            if (n < 16 || memcmp(s + n - 3, " GB", 3) != 0 ||
                !qf_fw_number(s + 12, n - 15, &v))
                return qf_fw_why(why, why_len, QF_EPARSE, k_who, "%s:%d: a malformed Peak "
                                 "memory line", name, it.line);
            r->peak_mem_bytes = (uint64_t)(v * 1e9);   /* mlx_lm's GB are 10^9 bytes */
        } else if (n >= 17 && memcmp(s, "No text generated", 17) == 0) {
            return qf_fw_why(why, why_len, QF_EPARSE, k_who, "%s:%d: no text generated for the "
                             "prompt", name, it.line);
        }
    }
    if (!gen)
        return qf_fw_why(why, why_len, QF_EPARSE, k_who, "%s:%d: no Generation line after the "
                         "'%s' at line %d (output cut short?)", name, it.line ? it.line : last,
                         MLX_RULE, rule);
    return 0;
}

/* ---- the adapter ---------------------------------------------------------------------------- */

static bool apple_silicon(void)
{
    const char *any = getenv("QF_MLX_ANY_HOST");
    if (any && strcmp(any, "1") == 0)
        return true;
    struct utsname u;
    return uname(&u) == 0 && strcmp(u.sysname, "Darwin") == 0 && strcmp(u.machine, "arm64") == 0;
}

static bool probe(char *version, size_t version_len)
{
    version[0] = '\0';
    if (!apple_silicon())
        return false;
    char path[QF_FW_TOOL_PATH_MAX];
    if (!qf_fw_tool_which(MLX_TOOL, path, sizeof path))
        return false;
    const char *const argv[] = { MLX_VERSION_TOOL, "--version", NULL };
    return qf_fw_tool_probe(MLX_VERSION_TOOL, argv, NULL, version, version_len);
}

/* One repetition (qf_fw_rep_fn): an mlx_lm.generate run; nothing goes into folder. */
static int run_once(const qf_job_spec *spec, const qf_fw_model *model, const char *folder,
                    double started, void *ctx, qf_fw_report *r, char *version,
                    size_t version_len, char *why, size_t why_len)
{
    (void)folder, (void)ctx, (void)version, (void)version_len;
    char tokens[16];
    snprintf(tokens, sizeof tokens, "%d", MLX_TOKENS);
    const char *const argv[] = { MLX_TOOL, "--model", model->path, "--prompt", MLX_PROMPT,
                                 "--max-tokens", tokens, NULL };
    qf_fw_tool_output o;
    int err = qf_fw_tool_run(argv, qf_fw_time_left_ms(spec, started), &o, why, why_len);
    if (!err)
        err = qf_fw_mlx_parse(o.text, "its output", r, why, why_len);
    qf_fw_tool_output_clear(&o);
    return err;
}

static int run(const qf_job_spec *spec, qf_job_result *out)
{
    char version[QF_FRAMEWORK_VERSION_MAX];
    if (!probe(version, sizeof version))
        return qf_job_result_fail(out, "mlx: needs macOS on Apple Silicon with mlx_lm.generate and "
                          "mlx_lm on PATH");
    return qf_fw_measure(&qf_fw_mlx, spec, run_once, NULL, version, sizeof version, out);
}

const qf_framework qf_fw_mlx = {
    .name = "mlx",
    .title = "Apple MLX",
    .formats = "f16 mlx_affine2_g32 mlx_affine2_g64 mlx_affine2_g128 mlx_affine3_g32 "
               "mlx_affine3_g64 mlx_affine3_g128 mlx_affine4_g32 mlx_affine4_g64 "
               "mlx_affine4_g128 mlx_affine6_g32 mlx_affine6_g64 mlx_affine6_g128 "
               "mlx_affine8_g32 mlx_affine8_g64 mlx_affine8_g128",
    .baseline = "f16",
    .probe = probe,
    .run = run,
};
