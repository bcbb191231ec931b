/* fw_tool.c - running a framework's command-line tool and the rest the tool adapters share
 * (see fw_tool.h).
 *
 * A tool runs through posix_spawn in a process group of its own, so a time limit kills it and
 * whatever it started (benchmark_app's plugins, a Python interpreter's workers). Its stdout and
 * stderr go into one pipe that is read until EOF with poll and the remaining time; the buffer
 * keeps the last QF_FW_TOOL_OUTPUT_MAX bytes (the end of a tool's output is where it reports,
 * and where it says why it failed). The child inherits our environment, with SIGPIPE back to
 * its default and no signals blocked, so a tool behaves as it would from a shell.
 *
 * Nothing here prints (the adapters run in probes, which must be silent, and in the job's
 * child, whose reason goes into the result); nothing aborts on what a tool does.
 */
#include "fw_tool.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "qf_err.h"
#include "qf_fetch.h"
#include "qf_formats.h"
#include "qf_manifest.h"
#include "qf_time.h"

extern char **environ;

int qf_fw_why(char *why, size_t why_len, int err, const char *tool, const char *fmt, ...)
{
    assert(why && why_len && fmt);
    int n = tool ? snprintf(why, why_len, "%s: ", tool) : 0;
    if (n < 0 || (size_t)n >= why_len)
        return err;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(why + n, why_len - (size_t)n, fmt, ap);
    va_end(ap);
    return err;
}

/* ---- finding and running -------------------------------------------------------------------- */

static bool executable(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISREG(st.st_mode) && access(path, X_OK) == 0;
}

bool qf_fw_tool_which(const char *name, char *path, size_t path_len)
{
    assert(name && path && path_len);
    path[0] = '\0';
    if (!name[0])
        return false;
    if (strchr(name, '/')) {
        if (strlen(name) >= path_len || !executable(name))
            return false;
        memcpy(path, name, strlen(name) + 1);
        return true;
    }
    const char *dirs = getenv("PATH");
    if (!dirs)
        return false;
    for (const char *p = dirs;;) {
        size_t n = strcspn(p, ":");
        /* An empty PATH entry means the current folder, as in a shell. */
        int w = n ? snprintf(path, path_len, "%.*s/%s", (int)n, p, name)
                  : snprintf(path, path_len, "./%s", name);
        if (w > 0 && (size_t)w < path_len && executable(path))
            return true;
        if (!p[n])
            break;
        p += n + 1;
    }
    path[0] = '\0';
    return false;
}

void qf_fw_tool_output_clear(qf_fw_tool_output *out)
{
    if (!out)
        return;
    free(out->text);
    memset(out, 0, sizeof *out);
}

/* Appends n bytes, keeping the tail when the buffer is full: the oldest half goes. */
static void keep(qf_fw_tool_output *out, const char *b, size_t n)
{
    const size_t cap = QF_FW_TOOL_OUTPUT_MAX;
    while (n) {
        if (out->len == cap) {
            memmove(out->text, out->text + cap / 2, cap - cap / 2);
            out->len = cap - cap / 2;
            out->truncated = true;
        }
        size_t take = cap - out->len < n ? cap - out->len : n;
        memcpy(out->text + out->len, b, take);
        out->len += take;
        b += take;
        n -= take;
    }
}

static int spawn(const char *path, const char *const argv[], int wfd, pid_t *pid)
{
    posix_spawn_file_actions_t fa;
    posix_spawnattr_t at;
    int rc = posix_spawn_file_actions_init(&fa);
    if (rc)
        return rc;
    if ((rc = posix_spawnattr_init(&at)) != 0) {
        posix_spawn_file_actions_destroy(&fa);
        return rc;
    }
    sigset_t none, dflt;
    sigemptyset(&none);
    sigemptyset(&dflt);
    sigaddset(&dflt, SIGPIPE);
    if (!(rc = posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0)) &&
        !(rc = posix_spawn_file_actions_adddup2(&fa, wfd, 1)) &&
        !(rc = posix_spawn_file_actions_adddup2(&fa, wfd, 2)) &&
        !(rc = posix_spawnattr_setflags(&at, POSIX_SPAWN_SETPGROUP | POSIX_SPAWN_SETSIGMASK |
                                                 POSIX_SPAWN_SETSIGDEF)) &&
        !(rc = posix_spawnattr_setpgroup(&at, 0)) &&
        !(rc = posix_spawnattr_setsigmask(&at, &none)) &&
        !(rc = posix_spawnattr_setsigdefault(&at, &dflt)))
        rc = posix_spawn(pid, path, &fa, &at, (char *const *)argv, environ);
    posix_spawnattr_destroy(&at);
    posix_spawn_file_actions_destroy(&fa);
    return rc;
}

/* Waits for pid until deadline (qf_time_mono seconds): 1 reaped (*status set), 0 still
 * running then, -1 its status is lost (not our child any more: SIGCHLD ignored). */
static int reap(pid_t pid, double deadline, int *status)
{
    for (;;) {
        pid_t r = waitpid(pid, status, WNOHANG);
        if (r == pid)
            return 1;
        if (r < 0 && errno != EINTR)
            return -1;
        if (qf_time_mono() >= deadline)
            return 0;
        nanosleep(&(struct timespec){ .tv_nsec = 5 * 1000 * 1000 }, NULL);
    }
}

int qf_fw_tool_exec(const char *const argv[], int timeout_ms, qf_fw_tool_output *out,
                    char *why, size_t why_len)
{
    assert(argv && argv[0] && out && timeout_ms > 0);
    memset(out, 0, sizeof *out);
    char path[QF_FW_TOOL_PATH_MAX];
    if (!qf_fw_tool_which(argv[0], path, sizeof path))
        return qf_fw_why(why, why_len, QF_ENOENT, NULL, "%s: not found on PATH", argv[0]);
    out->text = malloc(QF_FW_TOOL_OUTPUT_MAX + 1);
    if (!out->text)
        return qf_fw_why(why, why_len, QF_ENOMEM, NULL, "%s: no memory for its output", argv[0]);
    out->text[0] = '\0';

    int fds[2];
    if (pipe(fds) != 0) {
        qf_fw_tool_output_clear(out);
        return qf_fw_why(why, why_len, QF_EIO, NULL, "%s: pipe: %s", argv[0], strerror(errno));
    }
    /* Neither end may leak into the tool (its copies are the dup2'd 1 and 2) nor into other
     * children this process starts meanwhile. */
    fcntl(fds[0], F_SETFD, FD_CLOEXEC);
    fcntl(fds[1], F_SETFD, FD_CLOEXEC);
    const double deadline = qf_time_mono() + timeout_ms / 1000.0;
    pid_t pid;
    int rc = spawn(path, argv, fds[1], &pid);
    close(fds[1]);
    if (rc) {
        close(fds[0]);
        qf_fw_tool_output_clear(out);
        return qf_fw_why(why, why_len, QF_EIO, NULL, "%s: cannot start %s: %s", argv[0], path,
                       strerror(rc));
    }

    char buf[16384];
    for (;;) {
        double left = deadline - qf_time_mono();
        if (left <= 0) {
            out->timed_out = true;
            break;
        }
        struct pollfd p = { .fd = fds[0], .events = POLLIN };
        int pr = poll(&p, 1, (int)(left * 1000) + 1);
        if (pr < 0 && errno == EINTR)
            continue;
        if (pr <= 0)
            continue;          /* the deadline test above ends it */
        ssize_t r = read(fds[0], buf, sizeof buf);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0)
            break;             /* EOF: every writer (the tool and its children) is done */
        keep(out, buf, (size_t)r);
    }
    close(fds[0]);
    int status = 0, reaped = out->timed_out ? 0 : reap(pid, deadline, &status);
    if (!reaped) {
        out->timed_out = true;
        kill(-pid, SIGKILL);
        while (waitpid(pid, &status, 0) < 0 && errno == EINTR) {
        }
    }
    out->text[out->len] = '\0';
    if (reaped < 0) {
        out->exit_status = -1;     /* unknown: never taken for success */
    } else if (!out->timed_out) {
        if (WIFEXITED(status))
            out->exit_status = WEXITSTATUS(status);
        else if (WIFSIGNALED(status))
            out->term_signal = WTERMSIG(status);
    }
    return 0;
}

int qf_fw_tool_run(const char *const argv[], int timeout_ms, qf_fw_tool_output *out,
                   char *why, size_t why_len)
{
    int err = qf_fw_tool_exec(argv, timeout_ms, out, why, why_len);
    if (!err && !qf_fw_tool_ok(argv[0], out, timeout_ms, why, why_len))
        err = QF_EIO;
    return err;
}

bool qf_fw_tool_ok(const char *tool, const qf_fw_tool_output *out, int timeout_ms, char *why,
                   size_t why_len)
{
    assert(tool && out);
    if (!out->timed_out && !out->term_signal && out->exit_status == 0)
        return true;
    /* The last non-empty line, where tools say what went wrong. */
    const char *t = out->text ? out->text : "";
    size_t end = out->len;
    while (end && isspace((unsigned char)t[end - 1]))
        end--;
    size_t start = end;
    while (start && t[start - 1] != '\n')
        start--;
    int n = (int)(end - start > 160 ? 160 : end - start);
    if (out->timed_out)
        snprintf(why, why_len, "%s: timed out after %.1f s%s%.*s", tool, timeout_ms / 1000.0,
                 n ? ": " : "", n, t + start);
    else if (out->term_signal)
        snprintf(why, why_len, "%s: killed by signal %d%s%.*s", tool, out->term_signal,
                 n ? ": " : "", n, t + start);
    else
        snprintf(why, why_len, "%s: exited with status %d%s%.*s", tool, out->exit_status,
                 n ? ": " : "", n, t + start);
    return false;
}

/* ---- versions ------------------------------------------------------------------------------- */

bool qf_fw_lines_next(qf_fw_lines *it, const char **s, size_t *n)
{
    assert(it && s && n);
    if (!it->p || !*it->p)
        return false;
    const char *e = strchr(it->p, '\n');
    size_t len = e ? (size_t)(e - it->p) : strlen(it->p);
    *s = it->p;
    *n = len && it->p[len - 1] == '\r' ? len - 1 : len;
    it->p = e ? e + 1 : it->p + len;
    it->line++;
    return true;
}

/* A version token starting at s[i]: digits and dots, at least one dot between digits. */
static size_t version_at(const char *s, size_t n, size_t i)
{
    size_t j = i, dots = 0;
    while (j < n && (isdigit((unsigned char)s[j]) || (s[j] == '.' && j + 1 < n &&
                                                      isdigit((unsigned char)s[j + 1])))) {
        dots += s[j] == '.';
        j++;
    }
    return dots ? j - i : 0;
}

bool qf_fw_tool_version_of(const char *text, const char *key, char *version, size_t version_len)
{
    assert(text && version && version_len);
    version[0] = '\0';
    qf_fw_lines it = { .p = text };
    const char *s;
    size_t n;
    while (qf_fw_lines_next(&it, &s, &n)) {
        if (key && !memmem(s, n, key, strlen(key)))
            continue;
        for (size_t i = 0; i < n; i++) {
            if (!isdigit((unsigned char)s[i]))
                continue;
            /* a number of its own ("2.1"), or after a 'v' ("v2.1"), not the tail of "x86_64" */
            char prev = i ? s[i - 1] : ' ';
            char prev2 = i > 1 ? s[i - 2] : ' ';
            bool starts = !isalnum((unsigned char)prev) && prev != '.' && prev != '_';
            bool after_v = (prev == 'v' || prev == 'V') && !isalnum((unsigned char)prev2);
            size_t len = starts || after_v ? version_at(s, n, i) : 0;
            if (len) {
                snprintf(version, version_len, "%.*s", (int)len, s + i);
                return true;
            }
            while (i + 1 < n && (isalnum((unsigned char)s[i + 1]) || s[i + 1] == '.'))
                i++;
        }
        if (key)
            return false;       /* the line that should have it does not */
    }
    return false;
}

bool qf_fw_tool_probe(const char *tool, const char *const version_argv[], const char *key,
                      char *version, size_t version_len)
{
    assert(tool && version_argv && version && version_len);
    version[0] = '\0';
    char path[QF_FW_TOOL_PATH_MAX];
    if (!qf_fw_tool_which(tool, path, sizeof path))
        return false;
    qf_fw_tool_output o;
    char why[256];
    if (qf_fw_tool_exec(version_argv, QF_FW_PROBE_TIMEOUT_MS, &o, why, sizeof why) != 0)
        return false;
    bool ok = !o.timed_out && qf_fw_tool_version_of(o.text, key, version, version_len);
    qf_fw_tool_output_clear(&o);
    return ok;
}

/* ---- the model, scratch folders, files ------------------------------------------------------ */

int qf_fw_model_resolve(const qf_job_spec *spec, qf_fw_model *model, char *why, size_t why_len)
{
    assert(spec && model);
    memset(model, 0, sizeof *model);
    const size_t pre = strlen(QF_MANIFEST_REF_PREFIX);
    if (strncmp(spec->dataset, QF_MANIFEST_REF_PREFIX, pre) != 0)
        return qf_fw_why(why, why_len, QF_EINVAL, NULL, "dataset %s: a framework job runs a model: "
                       "name a model manifest (manifest:NAME)", spec->dataset);
    char name[QF_MANIFEST_NAME_MAX], tensor[QF_MANIFEST_TENSOR_MAX];
    int err = qf_manifest_ref_parse(spec->dataset, name, tensor, why, why_len);
    if (err)
        return err;
    qf_manifest m;
    char mwhy[512];
    if ((err = qf_manifest_find(qf_manifest_default_dir(), name, &m, mwhy, sizeof mwhy)) != 0)
        return qf_fw_why(why, why_len, err, NULL, "dataset %s: %s", spec->dataset, mwhy);
    if (m.kind != QF_MANIFEST_MODEL && m.kind != QF_MANIFEST_TENSOR)
        return qf_fw_why(why, why_len, QF_EINVAL, NULL, "dataset %s: a %s dataset is no model file",
                       spec->dataset, qf_manifest_kind_name(m.kind));
    qf_fetch_opts o;
    qf_fetch_opts_quiet(&o);
    qf_fetch_result fr;
    char fwhy[512];
    if ((err = qf_fetch(&m, &o, &fr, fwhy, sizeof fwhy)) != 0)
        return qf_fw_why(why, why_len, err, NULL, "%s", fwhy);
    if (strlen(fr.path) >= sizeof model->path)
        return qf_fw_why(why, why_len, QF_ETOOBIG, NULL, "dataset %s: its path is too long",
                       spec->dataset);
    memcpy(model->path, fr.path, strlen(fr.path) + 1);
    memcpy(model->sha256, fr.sha256, sizeof model->sha256);
    model->bytes = fr.bytes;
    return 0;
}

int qf_fw_scratch_new(const char *prefix, char *dir, size_t dir_len, char *why, size_t why_len)
{
    assert(prefix && dir && dir_len);
    const char *tmp = getenv("TMPDIR");
    if (!tmp || !tmp[0])
        tmp = "/tmp";
    int w = snprintf(dir, dir_len, "%s/qf-%s-XXXXXX", tmp, prefix);
    if (w < 0 || (size_t)w >= dir_len) {
        dir[0] = '\0';
        return qf_fw_why(why, why_len, QF_ETOOBIG, NULL, "scratch folder: %s is too long", tmp);
    }
    if (!mkdtemp(dir)) {
        int e = errno;
        dir[0] = '\0';
        return qf_fw_why(why, why_len, QF_EIO, NULL, "scratch folder in %s: %s", tmp, strerror(e));
    }
    return 0;
}

static int remove_entry(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st, (void)flag, (void)ftw;
    remove(path);
    return 0;       /* keep going: remove what can be removed */
}

void qf_fw_scratch_remove(const char *dir)
{
    if (dir && dir[0])
        nftw(dir, remove_entry, 16, FTW_DEPTH | FTW_PHYS);
}

bool qf_fw_path_join(char *path, size_t path_len, const char *dir, const char *name)
{
    assert(path && path_len && dir && name);
    int w = snprintf(path, path_len, "%s/%s", dir, name);
    if (w < 0 || (size_t)w >= path_len) {
        path[0] = '\0';
        return false;
    }
    return true;
}

int qf_fw_read_text(const char *path, size_t max, char **text, char *why, size_t why_len)
{
    assert(path && text);
    *text = NULL;
    FILE *f = fopen(path, "rb");
    if (!f)
        return qf_fw_why(why, why_len, errno == ENOENT ? QF_ENOENT : QF_EIO, NULL, "%s: %s", path,
                       strerror(errno));
    char *b = malloc(max + 1);
    if (!b) {
        fclose(f);
        return qf_fw_why(why, why_len, QF_ENOMEM, NULL, "%s: no memory to read it", path);
    }
    size_t n = fread(b, 1, max + 1, f);
    int rerr = ferror(f);
    fclose(f);
    if (rerr) {
        free(b);
        return qf_fw_why(why, why_len, QF_EIO, NULL, "%s: read error", path);
    }
    if (n > max) {
        free(b);
        return qf_fw_why(why, why_len, QF_ETOOBIG, NULL, "%s: more than %zu bytes", path, max);
    }
    const char *nul = memchr(b, '\0', n);
    if (nul) {
        size_t at = (size_t)(nul - b);
        int line = 1;
        for (size_t i = 0; i < at; i++)
            line += b[i] == '\n';
        free(b);
        return qf_fw_why(why, why_len, QF_EPARSE, NULL,
                         "%s:%d: a NUL byte: not a text report", path,
                         line);
    }
    b[n] = '\0';
    *text = b;
    return 0;
}

bool qf_fw_number(const char *s, size_t n, double *v)
{
    assert(s && v);
    while (n && isspace((unsigned char)*s))
        s++, n--;
    while (n && isspace((unsigned char)s[n - 1]))
        n--;
    if (!n || n > 63 || !(isdigit((unsigned char)s[0]) || s[0] == '.'))
        return false;
    char tmp[64];
    memcpy(tmp, s, n);
    tmp[n] = '\0';
    char *end;
    errno = 0;
    double d = strtod(tmp, &end);
    if (*end || errno || !isfinite(d) || d < 0)
        return false;
    *v = d;
    return true;
}

/* ---- results -------------------------------------------------------------------------------- */

void qf_fw_ok(const qf_framework *fw, const char *version, const qf_job_spec *spec,
              const qf_fw_model *model, double *samples, uint32_t n, qf_job_result *out)
{
    assert(fw && version && spec && model && samples && n && out);
    free(out->samples);
    out->status = QF_JOB_OK;
    out->error[0] = '\0';
    out->samples = samples;
    out->n_samples = n;
    out->has_metrics = false;
    out->bytes = model->bytes;
    out->throughput_bytes = model->bytes;
    qf_format fmt;
    out->bpw = qf_format_from_name(spec->format, &fmt) == 0 ? qf_format_bpw_nominal(fmt) : 0;
    /* kernel is 32 bytes: the name and as much of the version as fits */
    snprintf(out->kernel, sizeof out->kernel, "%s-%.*s", fw->name,
             (int)(sizeof out->kernel - 2 - strlen(fw->name)), version);
    snprintf(out->dataset_sha256, sizeof out->dataset_sha256, "%s", model->sha256);
}

int qf_fw_measure(const qf_framework *fw, const qf_job_spec *spec, qf_fw_rep_fn rep,
                  void *ctx, char *version, size_t version_len, qf_job_result *out)
{
    assert(fw && spec && rep && version && version_len && out);
    const double started = qf_time_mono();
    char why[QF_JOB_ERROR_MAX], dir[QF_FW_TOOL_PATH_MAX];
    qf_fw_model model;
    if (qf_fw_model_resolve(spec, &model, why, sizeof why) != 0)
        return qf_job_result_fail(out, "%s: %s", fw->name, why);
    if (qf_fw_scratch_new(fw->name, dir, sizeof dir, why, sizeof why) != 0)
        return qf_job_result_fail(out, "%s: %s", fw->name, why);
    double *samples = malloc(spec->reps * sizeof *samples);
    if (!samples) {
        qf_fw_scratch_remove(dir);
        return qf_job_result_fail(out, "%s: no memory for %u samples", fw->name, spec->reps);
    }
    uint64_t peak = 0;
    for (uint32_t i = 0; i < spec->warmup + spec->reps; i++) {
        char folder[QF_FW_TOOL_PATH_MAX], sub[16];
        snprintf(sub, sizeof sub, "run%u", i);
        qf_fw_report r;
        int err = QF_EIO;
        if (!qf_fw_path_join(folder, sizeof folder, dir, sub) || mkdir(folder, 0700) != 0)
            snprintf(why, sizeof why, "cannot make %.120s/%s: %s", dir, sub, strerror(errno));
        else
            err = rep(spec, &model, folder, started, ctx, &r, version, version_len, why,
                      sizeof why);
        if (err) {
            free(samples);
            qf_fw_scratch_remove(dir);
            return qf_job_result_fail(out, "%s: %s", fw->name, why);
        }
        if (i >= spec->warmup) {
            samples[i - spec->warmup] = r.per_iter_s;
            peak = r.peak_mem_bytes > peak ? r.peak_mem_bytes : peak;
        }
    }
    qf_fw_scratch_remove(dir);
    if (!version[0])
        snprintf(version, version_len, "unknown");
    qf_fw_ok(fw, version, spec, &model, samples, spec->reps, out);
    out->device_mem_bytes = peak;
    return 0;
}

int qf_fw_time_left_ms(const qf_job_spec *spec, double started)
{
    assert(spec);
    double left = spec->timeout_ms / 1000.0 - (qf_time_mono() - started) - 1.0;
    return left * 1000 < 1 ? 1 : left * 1000 > INT32_MAX ? INT32_MAX : (int)(left * 1000);
}
