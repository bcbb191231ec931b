/* test_fetch.c - manifests (datasets/manifest.c) and fetching into the cache (datasets/fetch.c).
 *
 * The manifest tests read the shipped manifests and a table of broken ones. The fetch tests
 * start tests/http_server.py (python3, loopback, ephemeral port; it exits when the pipe on its
 * stdin closes) and fetch a 256 KiB payload through each of its fault modes: every case ends
 * in a verified file or in a clear error naming the URL, the status or the hashes, and after
 * a failure the cache holds no file at the final path. Timeouts are short (1 s low-speed
 * window, 50 ms backoff) so the whole program runs in a few seconds. Without python3 it exits
 * 77 (CTest: skipped) after saying so.
 */
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <poll.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <netinet/in.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <sodium.h>

#include "qf_err.h"
#include "qf_fetch.h"
#include "qf_formats.h"
#include "qf_gguf.h"
#include "qf_jobs.h"
#include "qf_manifest.h"
#include "qf_synth.h"
#include "qf_time.h"

/* The payload is a real GGUF file (one f32 tensor "w", ROWS x COLS), so the same bytes serve
 * the fault tests and the agent's resolution of a tensor manifest. */
#define W_ROWS 1024
#define W_COLS 256
#define PAYLOAD_BYTES ((long)g_payload_len)
static size_t g_payload_len;

static char g_root[64];            /* mkdtemp */
static char g_cache[128], g_mdir[128], g_payload_path[128];
static unsigned char *g_payload;
static char g_sha[65], g_wrong_sha[65];
/* A running tests/http_server.py: its pid, our end of its stdin, its port. */
typedef struct server {
    pid_t pid;
    int   stdin_fd;
    int   port;
} server;
static server g_http = { -1, -1, 0 };
static int g_port;                 /* g_http.port */

/* ---- helpers ------------------------------------------------------------------------------ */

static void sha_hex(const unsigned char *p, size_t n, char hex[65])
{
    unsigned char d[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(d, p, n);
    sodium_bin2hex(hex, 65, d, sizeof d);
}

static bool exists(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0;
}

static long file_size(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 ? (long)st.st_size : -1;
}

static int rm_one(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void)st;
    (void)flag;
    (void)ftw;
    if (remove(path) != 0)
        fprintf(stderr, "test_fetch: could not remove %s: %s\n", path, strerror(errno));
    return 0;
}

static void rm_rf(const char *path)
{
    nftw(path, rm_one, 16, FTW_DEPTH | FTW_PHYS);
}

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    assert_int_equal(fputs(text, f) >= 0, 1);
    assert_int_equal(fclose(f), 0);
}

/* Inverts one byte of a file in place: a corruption that cannot leave the bytes unchanged. */
static void flip_byte(const char *path, off_t off)
{
    int fd = open(path, O_RDWR);
    assert_true(fd >= 0);
    unsigned char b;
    assert_int_equal(pread(fd, &b, 1, off), 1);
    b ^= 0xFF;
    assert_int_equal(pwrite(fd, &b, 1, off), 1);
    close(fd);
}

static void url_of(char *buf, size_t size, const char *path)
{
    snprintf(buf, size, "http://127.0.0.1:%d%s", g_port, path);
}

/* Writes MDIR/NAME.yaml for a downloaded tensor file at url_path and loads it. extra: more
 * YAML lines (size/sha256/unverified); "" gives the exact size and the payload's sha256. */
static void manifest_for(qf_manifest *m, const char *name, const char *url_path,
                         const char *extra)
{
    char url[256], yaml[2048], path[256], why[1024];
    url_of(url, sizeof url, url_path);
    if (!extra[0]) {
        static char dflt[160];
        snprintf(dflt, sizeof dflt, "size: %ld\nsha256: %s\n", PAYLOAD_BYTES, g_sha);
        extra = dflt;
    }
    snprintf(yaml, sizeof yaml, "name: %s\nkind: tensor\nformat: gguf\nurl: %s\nfile: data.bin\n"
             "license: test\ndescription: test payload\n%s", name, url, extra);
    snprintf(path, sizeof path, "%s/%s.yaml", g_mdir, name);
    write_file(path, yaml);
    int err = qf_manifest_load(path, m, why, sizeof why);
    if (err)
        fail_msg("manifest %s did not load: %s", name, why);
}

static qf_fetch_opts test_opts(void)
{
    qf_fetch_opts o;
    qf_fetch_opts_default(&o);
    o.cache_dir = g_cache;
    o.connect_timeout_ms = 2000;
    o.low_speed_bytes = 100000;    /* a stalled transfer is caught within 1-3 s */
    o.low_speed_time_s = 1;
    o.max_retries = 2;
    o.backoff_ms = 50;
    o.backoff_max_ms = 200;
    o.progress = 0;
    o.quiet = true;
    return o;
}

static size_t collect(char *data, size_t size, size_t n, void *ud)
{
    char *buf = ud;
    size_t have = strlen(buf), len = size * n;
    if (have + len < 64) {
        memcpy(buf + have, data, len);
        buf[have + len] = '\0';
    }
    return len;
}

/* The server's request count for path, and how many of them asked for a range. */
static void server_count(const char *path, int *requests, int *ranged)
{
    char url[256], text[64] = "";
    snprintf(url, sizeof url, "http://127.0.0.1:%d/count%s", g_port, path);
    CURL *h = curl_easy_init();
    assert_non_null(h);
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, text);
    curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 5000L);
    assert_int_equal(curl_easy_perform(h), CURLE_OK);
    curl_easy_cleanup(h);
    if (sscanf(text, "%d %d", requests, ranged) != 2)
        fail_msg("count of %s: unexpected answer '%s'", path, text);
}

#define PART_MAX (QF_FETCH_PATH_MAX + 8)

static void cache_paths(const qf_manifest *m, char final[QF_FETCH_PATH_MAX], char part[PART_MAX])
{
    char why[256];
    assert_int_equal(qf_fetch_cache_path(m, g_cache, final, QF_FETCH_PATH_MAX, why, sizeof why),
                     0);
    snprintf(part, PART_MAX, "%s.part", final);
}

/* Asserts a failed fetch: err, why containing each of the NULL-ended needles, no final file. */
static void expect_failure(const qf_manifest *m, int want_err, ...)
{
    qf_fetch_opts o = test_opts();
    qf_fetch_result r;
    char why[2048] = "";
    int err = qf_fetch(m, &o, &r, why, sizeof why);
    if (err != want_err)
        fail_msg("%s: expected %s, got %s: %s", m->name, qf_err_name(want_err), qf_err_name(err),
                 why);
    va_list ap;
    va_start(ap, want_err);
    for (const char *needle; (needle = va_arg(ap, const char *)) != NULL; )
        if (!strstr(why, needle))
            fail_msg("%s: the error does not mention '%s': %s", m->name, needle, why);
    va_end(ap);
    char final[QF_FETCH_PATH_MAX], part[PART_MAX];
    cache_paths(m, final, part);
    if (exists(final))
        fail_msg("%s: a failed fetch left %s in the cache", m->name, final);
    assert_string_equal(r.path, "");
}

/* Asserts a successful fetch of the payload. */
static void expect_success(const qf_manifest *m, qf_fetch_result *r)
{
    qf_fetch_opts o = test_opts();
    char why[2048] = "";
    int err = qf_fetch(m, &o, r, why, sizeof why);
    if (err)
        fail_msg("%s: fetch failed with %s: %s", m->name, qf_err_name(err), why);
    assert_string_equal(r->sha256, g_sha);
    assert_int_equal(r->bytes, PAYLOAD_BYTES);
    char final[QF_FETCH_PATH_MAX], part[PART_MAX];
    cache_paths(m, final, part);
    assert_string_equal(r->path, final);
    assert_int_equal(file_size(final), PAYLOAD_BYTES);
    if (exists(part))
        fail_msg("%s: %s left behind after success", m->name, part);
    char hex[65];
    uint64_t bytes;
    assert_int_equal(qf_fetch_sha256_file(final, hex, &bytes, why, sizeof why), 0);
    assert_string_equal(hex, g_sha);
}

/* ---- the server --------------------------------------------------------------------------- */

static bool python3_on_path(void)
{
    const char *path = getenv("PATH");
    if (!path)
        return false;
    char dir[1024];
    for (const char *p = path; *p; ) {
        size_t n = strcspn(p, ":");
        if (n > 0 && n < sizeof dir - 16) {
            memcpy(dir, p, n);
            snprintf(dir + n, sizeof dir - n, "/python3");
            if (access(dir, X_OK) == 0)
                return true;
        }
        p += n + (p[n] == ':');
    }
    return false;
}

/* Starts tests/http_server.py with args (NULL-ended, after the payload) and reads its port
 * (bounded: 10 s). 0, or -1 with a message. */
static int server_start(server *sv, const char *cert, const char *key)
{
    int out[2], in[2];
    if (pipe(out) != 0 || pipe(in) != 0)
        return -1;
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        dup2(in[0], STDIN_FILENO);
        dup2(out[1], STDOUT_FILENO);
        close(in[0]); close(in[1]); close(out[0]); close(out[1]);
        execlp("python3", "python3", "-u", QF_SOURCE_DIR "/tests/http_server.py",
               g_payload_path, cert, key, (char *)NULL);   /* cert NULL ends the list */
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    sv->pid = pid;
    sv->stdin_fd = in[1];
    char line[32] = "";
    size_t got = 0;
    double deadline = qf_time_mono() + 10.0;
    while (got < sizeof line - 1 && !strchr(line, '\n')) {
        int left = (int)((deadline - qf_time_mono()) * 1000);
        struct pollfd pfd = { .fd = out[0], .events = POLLIN };
        if (left <= 0 || poll(&pfd, 1, left) <= 0)
            break;
        ssize_t r = read(out[0], line + got, sizeof line - 1 - got);
        if (r <= 0)
            break;
        got += (size_t)r;
        line[got] = '\0';
    }
    close(out[0]);
    sv->port = atoi(line);
    if (sv->port <= 0) {
        fprintf(stderr, "test_fetch: http_server.py did not report a port (got '%s')\n", line);
        return -1;
    }
    return 0;
}

static void server_stop(server *sv)
{
    if (sv->stdin_fd >= 0)
        close(sv->stdin_fd);            /* the server exits on EOF ... */
    if (sv->pid > 0) {
        int st;
        double deadline = qf_time_mono() + 3.0;
        while (waitpid(sv->pid, &st, WNOHANG) == 0) {
            if (qf_time_mono() > deadline) {   /* ... or is killed */
                kill(sv->pid, SIGKILL);
                waitpid(sv->pid, &st, 0);
                break;
            }
            struct timespec ts = { 0, 20 * 1000000L };
            nanosleep(&ts, NULL);
        }
    }
    *sv = (server){ -1, -1, 0 };
}

/* ---- manifests ------------------------------------------------------------------------------ */

static void t_shipped_manifests(void **state)
{
    (void)state;
    qf_manifest *v = NULL;
    size_t n = 0;
    char why[2048];
    if (qf_manifest_list(QF_SOURCE_DIR "/datasets", &v, &n, why, sizeof why) != 0)
        fail_msg("the shipped manifests do not load: %s", why);
    int synth = 0, real = 0;
    for (size_t i = 0; i < n; i++) {
        if (v[i].kind == QF_MANIFEST_SYNTHETIC) {
            synth++;
            assert_int_equal(v[i].n_urls, 0);
            assert_int_equal(strncmp(v[i].generator, "synth:", 6), 0);
            continue;
        }
        real++;
        if (v[i].kind == QF_MANIFEST_TEXT) {   /* texts come from where they are published */
            if (strncmp(v[i].urls[0], "https://", 8) != 0)
                fail_msg("%s: expected an https URL, got %s", v[i].name, v[i].urls[0]);
            assert_int_equal(v[i].format, QF_MANIFEST_FMT_NONE);
        } else {
            if (strncmp(v[i].urls[0], "https://huggingface.co/", 23) != 0)
                fail_msg("%s: expected a huggingface.co URL, got %s", v[i].name, v[i].urls[0]);
            assert_true(v[i].format == QF_MANIFEST_FMT_GGUF ||
                        v[i].format == QF_MANIFEST_FMT_SAFETENSORS);
        }
        assert_true(v[i].unverified || strlen(v[i].sha256) == 64);
        assert_true(v[i].size > 0);
        if (i > 0)
            assert_true(strcmp(v[i - 1].name, v[i].name) < 0);   /* sorted */
    }
    assert_int_equal(synth, 3);
    assert_true(real >= 3);
    free(v);

    qf_manifest m;
    assert_int_equal(qf_manifest_find(QF_SOURCE_DIR "/datasets", "synth-student-t", &m, why,
                                      sizeof why), 0);
    assert_string_equal(m.generator, "synth:student-t");
    assert_int_equal(qf_manifest_find(QF_SOURCE_DIR "/datasets", "no-such-set", &m, why,
                                      sizeof why), QF_ENOENT);
    assert_non_null(strstr(why, "no manifest named 'no-such-set'"));
    assert_int_equal(qf_manifest_find(QF_SOURCE_DIR "/datasets", "../etc", &m, why,
                                      sizeof why), QF_EINVAL);
}

static const struct bad_manifest {
    const char *what, *yaml, *needle;
    int line;                          /* 0: any */
} k_bad[] = {
    { "unknown field", "name: bad\nkind: synthetic\ngenerator: synth:laplace\nlicense: x\n"
      "description: y\ncolour: red\n", "unknown field 'colour'", 6 },
    { "missing sha256", "name: bad\nkind: text\nurl: https://h/x.txt\nsize: 10\nlicense: x\n"
      "description: y\n", "sha256: missing", 0 },
    { "sha256 not hex", "name: bad\nkind: text\nurl: https://h/x.txt\nsize: 10\nlicense: x\n"
      "description: y\nsha256: 12zz\n", "64 hex digits", 7 },
    { "url and urls", "name: bad\nkind: text\nurl: https://h/x.txt\nurls: [https://h/y]\n"
      "size: 10\nunverified: true\nlicense: x\ndescription: y\n", "not both", 4 },
    { "ftp url", "name: bad\nkind: text\nurl: ftp://h/x.txt\nsize: 10\nunverified: true\n"
      "license: x\ndescription: y\n", "not an http:// or https:// URL", 3 },
    { "size and max_size", "name: bad\nkind: text\nurl: https://h/x.txt\nsize: 10\n"
      "max_size: 20\nunverified: true\nlicense: x\ndescription: y\n", "exactly one of size", 5 },
    { "size not a number", "name: bad\nkind: text\nurl: https://h/x.txt\nsize: 10MB\n"
      "unverified: true\nlicense: x\ndescription: y\n", "number of bytes", 4 },
    { "tensor kind without format", "name: bad\nkind: tensor\nurl: https://h/x.gguf\n"
      "size: 10\nunverified: true\nlicense: x\ndescription: y\n", "format: missing", 0 },
    { "unknown kind", "name: bad\nkind: movie\nlicense: x\ndescription: y\n",
      "unknown kind 'movie'", 2 },
    { "name is not the file's", "name: other\nkind: synthetic\ngenerator: synth:laplace\n"
      "license: x\ndescription: y\n", "does not match the file name", 1 },
    { "unknown generator", "name: bad\nkind: synthetic\ngenerator: synth:cauchy\nlicense: x\n"
      "description: y\n", "unknown generator 'synth:cauchy'", 3 },
    { "synthetic with a url", "name: bad\nkind: synthetic\ngenerator: synth:laplace\n"
      "url: https://h/x\nlicense: x\ndescription: y\n", "not allowed for kind synthetic", 4 },
    { "alias", "name: &n bad\nkind: synthetic\ngenerator: synth:laplace\nlicense: *n\n"
      "description: y\n", "aliases are not allowed", 4 },
    { "two documents", "name: bad\nkind: synthetic\ngenerator: synth:laplace\nlicense: x\n"
      "description: y\n---\nname: bad\n", "second one", 0 },
    { "a list, not a map", "- name: bad\n", "expected a map", 1 },
    { "field twice", "name: bad\nname: bad\n", "given twice", 2 },
    { "reserved file name", "name: bad\nkind: text\nurl: https://h/x.txt\nfile: x.part\n"
      "size: 10\nunverified: true\nlicense: x\ndescription: y\n", "not a plain file name", 4 },
    { "url without a file name", "name: bad\nkind: text\nurl: https://h/\nsize: 10\n"
      "unverified: true\nlicense: x\ndescription: y\n", "give `file:`", 3 },
    { "syntax error", "name: 'unterminated\n", "YAML", 0 },
    { "unverified with sha256", "name: bad\nkind: text\nurl: https://h/x.txt\nsize: 10\n"
      "unverified: true\nsha256: 0000000000000000000000000000000000000000000000000000000000000000\n"
      "license: x\ndescription: y\n", "contradicts", 5 },
    { "empty file", "", "empty", 0 },
    { "missing license", "name: bad\nkind: synthetic\ngenerator: synth:laplace\n"
      "description: y\n", "license: missing", 0 },
};

static void t_bad_manifests(void **state)
{
    (void)state;
    char path[256], why[1024];
    snprintf(path, sizeof path, "%s/bad.yaml", g_mdir);
    for (size_t i = 0; i < sizeof k_bad / sizeof k_bad[0]; i++) {
        write_file(path, k_bad[i].yaml);
        qf_manifest m;
        why[0] = '\0';
        int err = qf_manifest_load(path, &m, why, sizeof why);
        if (err == 0)
            fail_msg("%s: loaded, expected an error mentioning '%s'", k_bad[i].what,
                     k_bad[i].needle);
        if (!strstr(why, k_bad[i].needle))
            fail_msg("%s: the error does not mention '%s': %s", k_bad[i].what,
                     k_bad[i].needle, why);
        if (strncmp(why, path, strlen(path)) != 0)
            fail_msg("%s: the error does not start with the file name: %s", k_bad[i].what, why);
        if (k_bad[i].line) {
            char at[300];
            snprintf(at, sizeof at, "%s:%d:", path, k_bad[i].line);
            if (strncmp(why, at, strlen(at)) != 0)
                fail_msg("%s: expected the error at line %d: %s", k_bad[i].what, k_bad[i].line,
                         why);
        }
        assert_string_equal(m.name, "");    /* zeroed on failure */
    }
    unlink(path);

    /* A good one with every optional field; urls and a folded description. */
    snprintf(path, sizeof path, "%s/good-1.yaml", g_mdir);
    write_file(path, "name: good-1\nkind: tensor\nformat: safetensors\nurls:\n"
               "  - https://a.example/m/model.safetensors?download=true\n"
               "  - http://b.example/model.safetensors\nmax_size: 1000\n"
               "sha256: ABCDEF0123456789abcdef0123456789ABCDEF0123456789abcdef0123456789\n"
               "tensor: model.layers.0.mlp.down_proj.weight\nlicense: apache-2.0\n"
               "description: >\n  two\n  lines\n");
    qf_manifest m;
    if (qf_manifest_load(path, &m, why, sizeof why) != 0)
        fail_msg("good-1: %s", why);
    assert_int_equal(m.n_urls, 2);
    assert_string_equal(m.file, "model.safetensors");     /* query string dropped */
    assert_false(m.size_exact);
    assert_int_equal(m.size, 1000);
    assert_string_equal(m.sha256,
                        "abcdef0123456789abcdef0123456789abcdef0123456789abcdef0123456789");
    assert_string_equal(m.description, "two lines");
    assert_string_equal(m.tensor, "model.layers.0.mlp.down_proj.weight");
    unlink(path);
}

static void t_ref_parse(void **state)
{
    (void)state;
    char name[QF_MANIFEST_NAME_MAX], tensor[QF_MANIFEST_TENSOR_MAX], why[256];
    assert_int_equal(qf_manifest_ref_parse("manifest:smollm2-135m", name, tensor, why,
                                           sizeof why), 0);
    assert_string_equal(name, "smollm2-135m");
    assert_string_equal(tensor, "");
    assert_int_equal(qf_manifest_ref_parse("manifest:tl/blk.0.ffn_down.weight", name, tensor,
                                           why, sizeof why), 0);
    assert_string_equal(name, "tl");
    assert_string_equal(tensor, "blk.0.ffn_down.weight");
    static const char *const bad[] = {
        "manifest:", "manifest:/t", "manifest:a/", "manifest:../x", "manifest:a..b",
        "manifest:.hidden", "manifest:a/b/c", "manifest:a b", "synth:gaussian", "gguf:a/b",
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        why[0] = '\0';
        if (qf_manifest_ref_parse(bad[i], NULL, NULL, why, sizeof why) != QF_EINVAL)
            fail_msg("'%s' was accepted", bad[i]);
        assert_true(why[0] != '\0');
    }
}

/* ---- fetching -------------------------------------------------------------------------------- */

static void t_cache_dir(void **state)
{
    (void)state;
    char buf[QF_FETCH_PATH_MAX], want[QF_FETCH_PATH_MAX], why[256];
    char *saved_qf = getenv("QF_CACHE_DIR") ? strdup(getenv("QF_CACHE_DIR")) : NULL;
    char *saved_xdg = getenv("XDG_CACHE_HOME") ? strdup(getenv("XDG_CACHE_HOME")) : NULL;
    char *saved_home = getenv("HOME") ? strdup(getenv("HOME")) : NULL;

    snprintf(want, sizeof want, "%s/env-cache/deeper", g_root);
    setenv("QF_CACHE_DIR", want, 1);
    assert_int_equal(qf_fetch_cache_dir(buf, sizeof buf, why, sizeof why), 0);
    assert_string_equal(buf, want);
    assert_true(exists(want));                               /* created with its parents */

    unsetenv("QF_CACHE_DIR");
    snprintf(want, sizeof want, "%s/xdg", g_root);
    setenv("XDG_CACHE_HOME", want, 1);
    assert_int_equal(qf_fetch_cache_dir(buf, sizeof buf, why, sizeof why), 0);
    snprintf(want, sizeof want, "%s/xdg/quantfleet", g_root);
    assert_string_equal(buf, want);

    setenv("XDG_CACHE_HOME", "relative/ignored", 1);         /* the XDG spec says ignore it */
    snprintf(want, sizeof want, "%s/home", g_root);
    setenv("HOME", want, 1);
    assert_int_equal(qf_fetch_cache_dir(buf, sizeof buf, why, sizeof why), 0);
    snprintf(want, sizeof want, "%s/home/.cache/quantfleet", g_root);
    assert_string_equal(buf, want);

    unsetenv("XDG_CACHE_HOME");
    unsetenv("HOME");
    assert_int_equal(qf_fetch_cache_dir(buf, sizeof buf, why, sizeof why), QF_EINVAL);
    assert_non_null(strstr(why, "QF_CACHE_DIR"));

    if (saved_qf) setenv("QF_CACHE_DIR", saved_qf, 1);
    if (saved_xdg) setenv("XDG_CACHE_HOME", saved_xdg, 1);
    if (saved_home) setenv("HOME", saved_home, 1);
    free(saved_qf);
    free(saved_xdg);
    free(saved_home);
}

static void t_ok_then_cached(void **state)
{
    (void)state;
    qf_manifest m;
    manifest_for(&m, "ok", "/ok/a.bin", "");
    qf_fetch_result r;
    expect_success(&m, &r);
    assert_true(r.downloaded);
    assert_int_equal(r.attempts, 1);
    char url[256], sum[QF_FETCH_PATH_MAX + 8];
    url_of(url, sizeof url, "/ok/a.bin");
    assert_string_equal(r.url, url);
    snprintf(sum, sizeof sum, "%s.sha256", r.path);
    assert_true(exists(sum));

    expect_success(&m, &r);                       /* again: from the cache, no request */
    assert_false(r.downloaded);
    assert_int_equal(r.attempts, 0);
    int n, ranged;
    server_count("/ok/a.bin", &n, &ranged);
    assert_int_equal(n, 1);

    assert_int_equal(qf_fetch_verify(&m, g_cache, &r, url, sizeof url), 0);
    assert_string_equal(r.sha256, g_sha);
}

static void t_redirects(void **state)
{
    (void)state;
    qf_manifest m;
    manifest_for(&m, "redir", "/redirect/redirect/ok/b.bin", "");
    qf_fetch_result r;
    expect_success(&m, &r);
    manifest_for(&m, "loop", "/loop/c.bin", "");
    expect_failure(&m, QF_EPROTO, "/loop/c.bin", "redirect", NULL);
    int n, ranged;
    server_count("/loop/c.bin", &n, &ranged);
    assert_int_equal(n, 11);                      /* the first request and 10 redirects */
}

static void t_404_is_not_retried(void **state)
{
    (void)state;
    qf_manifest m;
    manifest_for(&m, "missing", "/404/d.bin", "");
    expect_failure(&m, QF_ENOENT, "/404/d.bin", "HTTP 404", NULL);
    int n, ranged;
    server_count("/404/d.bin", &n, &ranged);
    assert_int_equal(n, 1);
}

static void t_500_once_retried(void **state)
{
    (void)state;
    qf_manifest m;
    manifest_for(&m, "flaky", "/500-once/e.bin", "");
    qf_fetch_result r;
    expect_success(&m, &r);
    assert_int_equal(r.attempts, 2);
    int n, ranged;
    server_count("/500-once/e.bin", &n, &ranged);
    assert_int_equal(n, 2);
}

static void t_500_always_gives_up(void **state)
{
    (void)state;
    qf_manifest m;
    manifest_for(&m, "broken", "/500/f.bin", "");
    expect_failure(&m, QF_ENET, "/500/f.bin", "HTTP 500", "gave up after 3 requests", NULL);
    int n, ranged;
    server_count("/500/f.bin", &n, &ranged);
    assert_int_equal(n, 3);                       /* max_retries 2: three rounds */
}

static void t_truncated_once_resumes(void **state)
{
    (void)state;
    qf_manifest m;
    manifest_for(&m, "resume", "/truncate-once/g.bin", "");
    qf_fetch_result r;
    expect_success(&m, &r);
    int n, ranged;
    server_count("/truncate-once/g.bin", &n, &ranged);
    assert_int_equal(n, 2);
    assert_int_equal(ranged, 1);                  /* the retry asked for the rest only */
}

static void t_truncated_once_no_ranges_restarts(void **state)
{
    (void)state;
    qf_manifest m;
    manifest_for(&m, "restart", "/truncate-once-norange/h.bin", "");
    qf_fetch_result r;
    expect_success(&m, &r);                       /* the 200 replaced the part, not appended */
    int n, ranged;
    server_count("/truncate-once-norange/h.bin", &n, &ranged);
    assert_int_equal(n, 2);
    assert_int_equal(ranged, 1);
}

static void t_truncated_always_keeps_part(void **state)
{
    (void)state;
    qf_manifest m;
    manifest_for(&m, "partial", "/truncate/i.bin", "");
    expect_failure(&m, QF_ENET, "/truncate/i.bin", "gave up", NULL);
    char final[QF_FETCH_PATH_MAX], part[PART_MAX];
    cache_paths(&m, final, part);
    long have = file_size(part);
    if (have <= 0 || have >= PAYLOAD_BYTES)
        fail_msg("expected a partial %s, it has %ld bytes", part, have);

    /* The same dataset from a good mirror later: resumes from the part. */
    manifest_for(&m, "partial", "/ok/i.bin", "");
    qf_fetch_result r;
    expect_success(&m, &r);
    int n, ranged;
    server_count("/ok/i.bin", &n, &ranged);
    assert_int_equal(n, 1);
    assert_int_equal(ranged, 1);
}

static void t_stall_once_retried(void **state)
{
    (void)state;
    qf_manifest m;
    manifest_for(&m, "stall-once", "/stall-once/j.bin", "");
    double t0 = qf_time_mono();
    qf_fetch_result r;
    expect_success(&m, &r);
    double dt = qf_time_mono() - t0;
    if (dt > 8.0)
        fail_msg("a stalled transfer took %.1f s to give up on (low-speed time 1 s)", dt);
    int n, ranged;
    server_count("/stall-once/j.bin", &n, &ranged);
    assert_int_equal(n, 2);
    assert_int_equal(ranged, 1);                  /* resumed after the 16 KiB it got */
}

static void t_stall_always_times_out(void **state)
{
    (void)state;
    qf_manifest m;
    manifest_for(&m, "stall", "/stall/k.bin", "");
    qf_fetch_opts o = test_opts();
    o.max_retries = 0;
    qf_fetch_result r;
    char why[2048];
    double t0 = qf_time_mono();
    int err = qf_fetch(&m, &o, &r, why, sizeof why);
    double dt = qf_time_mono() - t0;
    if (err != QF_ETIMEDOUT)
        fail_msg("expected QF_ETIMEDOUT, got %s: %s", qf_err_name(err), why);
    assert_non_null(strstr(why, "/stall/k.bin"));
    assert_non_null(strstr(why, "low speed limit 100000 B/s for 1 s"));
    if (dt > 8.0)
        fail_msg("took %.1f s", dt);
    char final[QF_FETCH_PATH_MAX], part[PART_MAX];
    cache_paths(&m, final, part);
    assert_false(exists(final));
}

static void t_wrong_bytes_never_cached(void **state)
{
    (void)state;
    qf_manifest m;
    manifest_for(&m, "wrong", "/wrong/l.bin", "");
    expect_failure(&m, QF_EPARSE, "/wrong/l.bin", "sha256 mismatch", g_sha, g_wrong_sha, NULL);
    char final[QF_FETCH_PATH_MAX], part[PART_MAX];
    cache_paths(&m, final, part);
    if (exists(part))
        fail_msg("the mismatching download was kept as %s", part);
}

static void t_size_guard(void **state)
{
    (void)state;
    qf_manifest m;
    char extra[128];
    /* Content-Length over the bound: refused before a byte is stored. */
    snprintf(extra, sizeof extra, "max_size: %ld\nunverified: true\n", PAYLOAD_BYTES);
    manifest_for(&m, "big", "/big/m.bin", extra);
    expect_failure(&m, QF_ETOOBIG, "/big/m.bin", "max_size", NULL);
    /* No Content-Length: stopped as the body passes the bound. */
    manifest_for(&m, "big-stream", "/big-nolength/n.bin", extra);
    expect_failure(&m, QF_ETOOBIG, "/big-nolength/n.bin", "grows past", NULL);
    char final[QF_FETCH_PATH_MAX], part[PART_MAX];
    cache_paths(&m, final, part);
    assert_false(exists(part));
    /* An exact size that the complete body does not have. */
    snprintf(extra, sizeof extra, "size: %ld\nunverified: true\n", PAYLOAD_BYTES + 1);
    manifest_for(&m, "short", "/ok/o.bin", extra);
    char got[64];
    snprintf(got, sizeof got, "got %ld bytes", PAYLOAD_BYTES);
    expect_failure(&m, QF_EPARSE, "/ok/o.bin", got, NULL);
    cache_paths(&m, final, part);
    assert_false(exists(part));
}

static void t_connect_refused_then_mirror(void **state)
{
    (void)state;
    /* A port nobody listens on: bind one, note it, close it. */
    int s = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(s >= 0);
    struct sockaddr_in a = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    socklen_t len = sizeof a;
    assert_int_equal(bind(s, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(s, (struct sockaddr *)&a, &len), 0);
    int dead = ntohs(a.sin_port);
    close(s);

    char yaml[1024], path[256], why[1024], dead_url[128];
    snprintf(dead_url, sizeof dead_url, "http://127.0.0.1:%d/ok/p.bin", dead);
    snprintf(yaml, sizeof yaml, "name: refused\nkind: text\nurl: %s\nsize: %d\nsha256: %s\n"
             "license: t\ndescription: t\n", dead_url, (int)PAYLOAD_BYTES, g_sha);
    snprintf(path, sizeof path, "%s/refused.yaml", g_mdir);
    write_file(path, yaml);
    qf_manifest m;
    assert_int_equal(qf_manifest_load(path, &m, why, sizeof why), 0);
    expect_failure(&m, QF_ENET, dead_url, "gave up after 3 requests", NULL);

    /* The dead URL first, a live mirror second: the mirror serves it. */
    snprintf(yaml, sizeof yaml, "name: mirrored\nkind: text\nurls: ['%s', "
             "'http://127.0.0.1:%d/ok/p.bin']\nsize: %d\nsha256: %s\nlicense: t\n"
             "description: t\n", dead_url, g_port, (int)PAYLOAD_BYTES, g_sha);
    snprintf(path, sizeof path, "%s/mirrored.yaml", g_mdir);
    write_file(path, yaml);
    assert_int_equal(qf_manifest_load(path, &m, why, sizeof why), 0);
    qf_fetch_result r;
    expect_success(&m, &r);
    assert_int_equal(r.attempts, 2);
    assert_non_null(strstr(r.url, "/ok/p.bin"));
    assert_null(strstr(r.url, dead_url));
}

static void t_concurrent_fetch_one_download(void **state)
{
    (void)state;
    qf_manifest m;
    manifest_for(&m, "shared", "/slow/q.bin", "");
    pid_t kids[2];
    for (int i = 0; i < 2; i++) {
        kids[i] = fork();
        assert_true(kids[i] >= 0);
        if (kids[i] == 0) {
            qf_fetch_opts o = test_opts();
            qf_fetch_result r;
            char why[2048];
            int err = qf_fetch(&m, &o, &r, why, sizeof why);
            if (err) {
                fprintf(stderr, "child %d: %s\n", i, why);
                _exit(1);
            }
            _exit(strcmp(r.sha256, g_sha) != 0 ? 2 : r.downloaded ? 10 : 11);
        }
        if (i == 0) {               /* let the first one take the lock and start */
            struct timespec ts = { 0, 200 * 1000000L };
            nanosleep(&ts, NULL);
        }
    }
    int codes[2] = { -1, -1 };
    double deadline = qf_time_mono() + 20.0;
    for (int i = 0; i < 2; i++) {
        int st = 0;
        pid_t w;
        while ((w = waitpid(kids[i], &st, WNOHANG)) == 0 && qf_time_mono() < deadline) {
            struct timespec ts = { 0, 20 * 1000000L };
            nanosleep(&ts, NULL);
        }
        if (w == 0) {
            kill(kids[0], SIGKILL);
            kill(kids[1], SIGKILL);
            waitpid(kids[0], NULL, 0);
            waitpid(kids[1], NULL, 0);
            fail_msg("the concurrent fetches did not finish in 20 s");
        }
        codes[i] = WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
    }
    if (!((codes[0] == 10 && codes[1] == 11) || (codes[0] == 11 && codes[1] == 10)))
        fail_msg("expected one download and one cache hit (exit 10 and 11), got %d and %d",
                 codes[0], codes[1]);
    int n, ranged;
    server_count("/slow/q.bin", &n, &ranged);
    assert_int_equal(n, 1);
}

static void t_verify_deletes_corrupt(void **state)
{
    (void)state;
    qf_manifest m;
    char why[1024];
    qf_fetch_result r;
    /* Verified manifest. */
    manifest_for(&m, "verify", "/ok/r.bin", "");
    expect_success(&m, &r);
    assert_int_equal(qf_fetch_verify(&m, g_cache, &r, why, sizeof why), 0);
    char path[QF_FETCH_PATH_MAX];
    snprintf(path, sizeof path, "%s", r.path);
    flip_byte(path, 1000);
    assert_int_equal(qf_fetch_verify(&m, g_cache, &r, why, sizeof why), QF_EPARSE);
    assert_non_null(strstr(why, "sha256 mismatch"));
    assert_non_null(strstr(why, g_sha));
    assert_false(exists(path));
    assert_int_equal(qf_fetch_verify(&m, g_cache, &r, why, sizeof why), QF_ENOENT);

    /* Unverified manifest: the hash recorded at fetch is what verify checks. */
    char extra[64];
    snprintf(extra, sizeof extra, "max_size: %ld\nunverified: true\n", PAYLOAD_BYTES);
    manifest_for(&m, "tofu", "/ok/s.bin", extra);
    expect_success(&m, &r);
    snprintf(path, sizeof path, "%s", r.path);
    assert_int_equal(qf_fetch_verify(&m, g_cache, &r, why, sizeof why), 0);
    assert_string_equal(r.sha256, g_sha);
    flip_byte(path, 5);
    assert_int_equal(qf_fetch_verify(&m, g_cache, &r, why, sizeof why), QF_EPARSE);
    assert_false(exists(path));
}

static void t_synthetic_has_nothing_to_fetch(void **state)
{
    (void)state;
    qf_manifest m;
    char why[1024];
    assert_int_equal(qf_manifest_find(QF_SOURCE_DIR "/datasets", "synth-gaussian", &m, why,
                                      sizeof why), 0);
    qf_fetch_opts o = test_opts();
    qf_fetch_result r;
    assert_int_equal(qf_fetch(&m, &o, &r, why, sizeof why), QF_EINVAL);
    assert_non_null(strstr(why, "synthetic"));
}

/* A part left complete by a process that died before the rename: a verified manifest moves it
 * into place without a request; an unverified one cannot tell, asks for the rest, gets 416 and
 * starts over. */
static void t_complete_part(void **state)
{
    (void)state;
    qf_manifest m;
    char final[QF_FETCH_PATH_MAX], part[PART_MAX], dir[QF_FETCH_PATH_MAX];
    manifest_for(&m, "complete", "/ok/t.bin", "");
    cache_paths(&m, final, part);
    snprintf(dir, sizeof dir, "%s", final);
    *strrchr(dir, '/') = '\0';
    assert_int_equal(mkdir(dir, 0755), 0);
    FILE *f = fopen(part, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(g_payload, 1, g_payload_len, f), g_payload_len);
    assert_int_equal(fclose(f), 0);
    qf_fetch_result r;
    expect_success(&m, &r);
    assert_int_equal(r.attempts, 0);
    int n, ranged;
    server_count("/ok/t.bin", &n, &ranged);
    assert_int_equal(n, 0);

    char extra[64];
    snprintf(extra, sizeof extra, "max_size: %ld\nunverified: true\n", PAYLOAD_BYTES);
    manifest_for(&m, "complete-tofu", "/ok/u.bin", extra);
    cache_paths(&m, final, part);
    snprintf(dir, sizeof dir, "%s", final);
    *strrchr(dir, '/') = '\0';
    assert_int_equal(mkdir(dir, 0755), 0);
    f = fopen(part, "wb");
    assert_non_null(f);
    assert_int_equal(fwrite(g_payload, 1, g_payload_len, f), g_payload_len);
    assert_int_equal(fclose(f), 0);
    expect_success(&m, &r);
    server_count("/ok/u.bin", &n, &ranged);
    assert_int_equal(n, 2);                       /* the 416, then the whole file */
    assert_int_equal(ranged, 1);
}

/* HTTPS: a server with a self-signed certificate (made with openssl, when it is there) is
 * refused without ca_file, at once and saying why, and trusted with it. */
static void t_https(void **state)
{
    (void)state;
    char cert[160], key[160], cmd[1024];
    snprintf(cert, sizeof cert, "%s/cert.pem", g_root);
    snprintf(key, sizeof key, "%s/key.pem", g_root);
    snprintf(cmd, sizeof cmd, "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 "
             "-nodes -days 1 -subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1 "
             "-keyout '%s' -out '%s' >/dev/null 2>&1", key, cert);
    if (system(cmd) != 0) {
        printf("test_fetch: openssl could not make a certificate; HTTPS not tested\n");
        skip();
    }
    server tls = { -1, -1, 0 };
    if (server_start(&tls, cert, key) != 0) {
        server_stop(&tls);
        fail_msg("the HTTPS server did not start");
    }
    char yaml[1024], path[256], why[2048], url[128];
    snprintf(url, sizeof url, "https://127.0.0.1:%d/ok/v.bin", tls.port);
    snprintf(yaml, sizeof yaml, "name: tls\nkind: text\nurl: %s\nsize: %ld\nsha256: %s\n"
             "license: t\ndescription: t\n", url, PAYLOAD_BYTES, g_sha);
    snprintf(path, sizeof path, "%s/tls.yaml", g_mdir);
    write_file(path, yaml);
    qf_manifest m;
    int err = qf_manifest_load(path, &m, why, sizeof why);
    qf_fetch_opts o = test_opts();
    qf_fetch_result r;
    if (!err) {                                   /* final: no retries ("gave up") */
        int e = qf_fetch(&m, &o, &r, why, sizeof why);
        err = e == QF_ENET && strstr(why, "not trusted") && !strstr(why, "gave up") ? 0 : -1;
    }
    char why2[2048] = "";
    int err2 = -1;
    if (!err) {
        o.ca_file = cert;
        err2 = qf_fetch(&m, &o, &r, why2, sizeof why2);
    }
    server_stop(&tls);                            /* before any assert can jump out */
    if (err)
        fail_msg("an untrusted certificate was not refused at once: %s", why);
    if (err2)
        fail_msg("HTTPS with the CA given failed: %s", why2);
    assert_string_equal(r.sha256, g_sha);
    assert_true(r.downloaded);
}

/* ---- the agent's side: a job's dataset named by manifest ------------------------------------ */

static qf_job_spec job_spec(const char *dataset, int64_t rows, int64_t cols)
{
    qf_job_spec s = { .kind = "quantize", .format = "q8_0", .rows = rows, .cols = cols,
                      .reps = 1, .warmup = 0, .threads = 1, .seed = 3, .timeout_ms = 60000 };
    snprintf(s.dataset, sizeof s.dataset, "%s", dataset);
    return s;
}

/* Runs spec in-process; expects FAILED with needle in the reason. */
static void expect_job_failed(const char *dataset, int64_t rows, int64_t cols,
                              const char *needle)
{
    qf_job_spec s = job_spec(dataset, rows, cols);
    qf_job_result r;
    assert_int_equal(qf_jobs_run(&s, &r), 0);
    if (r.status != QF_JOB_FAILED || !strstr(r.error, needle))
        fail_msg("%s: expected FAILED mentioning '%s', got %s: %s", dataset, needle,
                 qf_job_status_name(r.status), r.error);
    qf_job_result_clear(&r);
}

static void t_jobs_resolve_manifests(void **state)
{
    (void)state;
    setenv("QF_MANIFEST_DIR", g_mdir, 1);
    setenv("QF_CACHE_DIR", g_cache, 1);

    /* A synthetic manifest measures exactly what its generator's name does. */
    char path[256];
    snprintf(path, sizeof path, "%s/job-synth.yaml", g_mdir);
    write_file(path, "name: job-synth\nkind: synthetic\ngenerator: synth:laplace\n"
               "license: t\ndescription: t\n");
    qf_job_spec s = job_spec("manifest:job-synth", 4, 256);
    qf_job_result a, b;
    assert_int_equal(qf_jobs_run(&s, &a), 0);
    if (a.status != QF_JOB_OK)
        fail_msg("manifest:job-synth: %s", a.error);
    s = job_spec("synth:laplace", 4, 256);
    assert_int_equal(qf_jobs_run(&s, &b), 0);
    assert_int_equal(b.status, QF_JOB_OK);
    assert_string_equal(a.dataset_sha256, b.dataset_sha256);
    qf_job_result_clear(&a);
    qf_job_result_clear(&b);

    /* A tensor manifest: fetched on first use, its tensor found, its shape checked, decoded
     * and measured; the result's dataset hash is that of the tensor's floats. */
    qf_manifest m;
    char extra[256];
    snprintf(extra, sizeof extra, "size: %ld\nsha256: %s\ntensor: w\n", PAYLOAD_BYTES, g_sha);
    manifest_for(&m, "job-model", "/ok/job.gguf", extra);
    s = job_spec("manifest:job-model", W_ROWS, W_COLS);
    assert_int_equal(qf_jobs_run(&s, &a), 0);
    if (a.status != QF_JOB_OK)
        fail_msg("manifest:job-model: %s", a.error);
    assert_int_equal(a.n_samples, 1);
    assert_true(a.has_metrics && a.metrics.snr_db > 30.0);     /* q8_0 of real weights */
    qf_gguf *gg = NULL;
    char gwhy[256];
    assert_int_equal(qf_gguf_open(g_payload_path, &gg, gwhy, sizeof gwhy), 0);
    const qf_gguf_tensor *gw = qf_gguf_find_tensor(gg, "w");
    assert_non_null(gw);
    unsigned char h[crypto_hash_sha256_BYTES];
    char hex[65];
    crypto_hash_sha256(h, gw->data, gw->size);   /* f32 on disk: its bytes are the floats */
    sodium_bin2hex(hex, sizeof hex, h, sizeof h);
    assert_string_equal(a.dataset_sha256, hex);
    qf_gguf_close(&gg);
    qf_job_result_clear(&a);
    char final[QF_FETCH_PATH_MAX], part[PART_MAX];
    cache_paths(&m, final, part);
    assert_int_equal(file_size(final), PAYLOAD_BYTES);
    expect_job_failed("manifest:job-model/w", W_ROWS, 2 * W_COLS,
                      "is 1024x256, the job's shape is 1024x512");
    expect_job_failed("manifest:job-model/nope", W_ROWS, W_COLS, "no tensor 'nope'");
    int n, ranged;
    server_count("/ok/job.gguf", &n, &ranged);
    assert_int_equal(n, 1);                       /* later jobs found it in the cache */

    expect_job_failed("manifest:absent", 4, 256, "no manifest named 'absent'");
    expect_job_failed("manifest:../etc", 4, 256, "invalid spec: dataset:");
    manifest_for(&m, "job-404", "/404/job.gguf", extra);
    expect_job_failed("manifest:job-404", W_ROWS, W_COLS, "HTTP 404");

    unsetenv("QF_MANIFEST_DIR");
    unsetenv("QF_CACHE_DIR");
}

/* ---- main ---------------------------------------------------------------------------------- */

/* Writes the payload, a GGUF with tensor "w" (W_ROWS x W_COLS f32 of synthetic weights), and
 * reads it back into g_payload. */
static int write_payload_gguf(void)
{
    float *w = malloc(sizeof(float) * W_ROWS * W_COLS);
    if (!w)
        return -1;
    qf_synth_params sp = qf_synth_defaults(QF_SYNTH_STUDENT_T, 7);
    uint32_t type;
    qf_gguf_writer *gw = NULL;
    char why[512];
    int64_t dims[2] = { W_COLS, W_ROWS };
    int err = qf_synth_fill(&sp, w, W_ROWS, W_COLS);
    if (!err)
        err = qf_gguf_type_from_format(QF_FMT_F32, &type);
    if (!err)
        err = qf_gguf_writer_new(g_payload_path, &gw, why, sizeof why);
    if (!err)
        err = qf_gguf_writer_set_str(gw, "general.name", "test_fetch payload");
    if (!err)
        err = qf_gguf_writer_add_tensor(gw, "w", type, 2, dims, w, NULL);
    if (!err)
        err = qf_gguf_writer_finish(&gw, why, sizeof why);
    qf_gguf_writer_destroy(&gw);
    free(w);
    if (err) {
        fprintf(stderr, "test_fetch: cannot write the GGUF payload: %s\n", why);
        return -1;
    }
    FILE *f = fopen(g_payload_path, "rb");
    long n = -1;
    if (f && fseek(f, 0, SEEK_END) == 0)
        n = ftell(f);
    if (n <= 0 || fseek(f, 0, SEEK_SET) != 0 || !(g_payload = malloc((size_t)n)) ||
        fread(g_payload, 1, (size_t)n, f) != (size_t)n) {
        if (f)
            fclose(f);
        return -1;
    }
    fclose(f);
    g_payload_len = (size_t)n;
    return 0;
}

static int setup(void **state)
{
    (void)state;
    snprintf(g_root, sizeof g_root, "/tmp/qf-fetch-XXXXXX");
    if (!mkdtemp(g_root))
        return -1;
    snprintf(g_cache, sizeof g_cache, "%s/cache", g_root);
    snprintf(g_mdir, sizeof g_mdir, "%s/manifests", g_root);
    snprintf(g_payload_path, sizeof g_payload_path, "%s/payload.bin", g_root);
    if (mkdir(g_mdir, 0755) != 0)
        return -1;
    if (write_payload_gguf() != 0)
        return -1;
    sha_hex(g_payload, g_payload_len, g_sha);
    for (size_t i = 0; i < g_payload_len; i += 1024)   /* as http_server.py's wrong mode */
        g_payload[i] ^= 0xFF;
    sha_hex(g_payload, g_payload_len, g_wrong_sha);
    for (size_t i = 0; i < g_payload_len; i += 1024)
        g_payload[i] ^= 0xFF;
    return 0;
}

static int setup_with_server(void **state)
{
    if (setup(state) != 0 || server_start(&g_http, NULL, NULL) != 0)
        return -1;
    g_port = g_http.port;
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    server_stop(&g_http);
    rm_rf(g_root);
    free(g_payload);
    return 0;
}

int main(void)
{
    if (sodium_init() < 0 || curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return 1;
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest offline[] = {
        cmocka_unit_test(t_shipped_manifests),
        cmocka_unit_test(t_bad_manifests),
        cmocka_unit_test(t_ref_parse),
        cmocka_unit_test(t_cache_dir),
    };
    const struct CMUnitTest online[] = {
        cmocka_unit_test(t_ok_then_cached),
        cmocka_unit_test(t_redirects),
        cmocka_unit_test(t_404_is_not_retried),
        cmocka_unit_test(t_500_once_retried),
        cmocka_unit_test(t_500_always_gives_up),
        cmocka_unit_test(t_truncated_once_resumes),
        cmocka_unit_test(t_truncated_once_no_ranges_restarts),
        cmocka_unit_test(t_truncated_always_keeps_part),
        cmocka_unit_test(t_stall_once_retried),
        cmocka_unit_test(t_stall_always_times_out),
        cmocka_unit_test(t_wrong_bytes_never_cached),
        cmocka_unit_test(t_size_guard),
        cmocka_unit_test(t_connect_refused_then_mirror),
        cmocka_unit_test(t_concurrent_fetch_one_download),
        cmocka_unit_test(t_verify_deletes_corrupt),
        cmocka_unit_test(t_synthetic_has_nothing_to_fetch),
        cmocka_unit_test(t_complete_part),
        cmocka_unit_test(t_https),
        cmocka_unit_test(t_jobs_resolve_manifests),
    };
    int failed = cmocka_run_group_tests_name("manifests", offline, setup, teardown);
    if (!python3_on_path()) {
        printf("SKIP test_fetch: python3 is not on PATH, so the HTTP tests (tests/http_server.py"
               ") did not run; only the manifest tests did. Install python3 to run them.\n");
        curl_global_cleanup();
        return failed ? failed : 77;
    }
    failed += cmocka_run_group_tests_name("fetch", online, setup_with_server, teardown);
    curl_global_cleanup();
    return failed;
}
