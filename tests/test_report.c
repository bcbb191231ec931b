/* test_report.c - `qfleet report` and `qfleet compare` on a real store made by `qfleet run`.
 *
 * The group setup runs the real binary (QF_BINARY) twice on a tiny suite written into a
 * mkdtemp folder (3 formats x 2 ops, 64x1024, 10 repetitions: about a second each), as
 * commits base1111 and head2222, so the store has two runs, two commits and real samples.
 * The tests then check what users rely on: results.csv loads through `sqlite3 .import` with
 * one row per stored sample; the report never writes to the store; index.html is
 * self-contained and carries the tables, the charts and the history; --post reaches a
 * loopback server (tests/http_server.py) and fails cleanly on a 500 and on a stall;
 * `qfleet compare` exits 0 when head's samples equal base's and 1 once a regression is
 * planted in a copy of that store, 2 on errors. The unit pieces (CSV quoting, HTML escaping,
 * the loader's refusals) run on their own. Tests that need sqlite3 or python3 on PATH say so
 * and skip (exit 77 from main only if every such tool is missing).
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <sqlite3.h>

#include "qf_err.h"
#include "qf_report.h"

static char g_dir[64];        /* mkdtemp */
static char g_db[128];        /* the store both runs wrote */

static const char k_suite[] =
    "name: tiny\n"
    "baseline: f16\n"
    "repetitions: 10\n"
    "warmup: 1\n"
    "timeout: 60s\n"
    "datasets: [synth:student-t]\n"
    "formats: [f16, q8_0, q4_0]\n"
    "ops: [quantize, matvec]\n"
    "shapes: [64x1024]\n";

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Runs argv (NULL-ended) with stdout into out_path and stderr into err_path (either may be
 * NULL: /dev/null); its exit status, or -1 if it did not exit normally. */
static int run(char *const argv[], const char *out_path, const char *err_path)
{
    pid_t pid = fork();
    if (pid < 0)
        return -1;
    if (pid == 0) {
        int o = open(out_path ? out_path : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0644);
        int e = open(err_path ? err_path : "/dev/null", O_WRONLY | O_CREAT | O_TRUNC, 0644);
        if (o < 0 || e < 0)
            _exit(126);
        dup2(o, STDOUT_FILENO);
        dup2(e, STDERR_FILENO);
        execvp(argv[0], argv);
        _exit(127);
    }
    int st;
    if (waitpid(pid, &st, 0) != pid || !WIFEXITED(st))
        return -1;
    return WEXITSTATUS(st);
}

static char *slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return NULL;
    char *buf = NULL;
    size_t n = 0, cap = 0;
    for (;;) {
        if (n + 4096 + 1 > cap) {
            cap = (n + 4096 + 1) * 2;
            char *p = realloc(buf, cap);
            if (!p)
                break;
            buf = p;
        }
        size_t r = fread(buf + n, 1, 4096, f);
        n += r;
        if (r == 0)
            break;
    }
    fclose(f);
    if (buf)
        buf[n] = '\0';
    if (len)
        *len = n;
    return buf;
}

static bool on_path(const char *tool)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "command -v %s >/dev/null 2>&1", tool);
    return system(cmd) == 0;
}

/* A single integer from sql on db (or -1, with the error printed). */
static int64_t query_int(const char *db, const char *sql)
{
    sqlite3 *h = NULL;
    sqlite3_stmt *st = NULL;
    int64_t v = -1;
    if (sqlite3_open_v2(db, &h, SQLITE_OPEN_READONLY, NULL) == SQLITE_OK &&
        sqlite3_prepare_v2(h, sql, -1, &st, NULL) == SQLITE_OK && sqlite3_step(st) == SQLITE_ROW)
        v = sqlite3_column_int64(st, 0);
    else
        fprintf(stderr, "test_report: %s: %s\n", sql, sqlite3_errmsg(h));
    sqlite3_finalize(st);
    sqlite3_close(h);
    return v;
}

static int exec_sql(const char *db, const char *sql)
{
    sqlite3 *h = NULL;
    char *msg = NULL;
    int rc = sqlite3_open(db, &h);
    if (rc == SQLITE_OK)
        rc = sqlite3_exec(h, sql, NULL, NULL, &msg);
    if (rc != SQLITE_OK)
        fprintf(stderr, "test_report: %s: %s\n", sql, msg ? msg : sqlite3_errmsg(h));
    sqlite3_free(msg);
    sqlite3_close(h);
    return rc;
}

static int report(const char *db, const char *out, const char *extra1, const char *extra2,
                  const char *err_path)
{
    char *argv[] = { QF_BINARY, "report", "--db", (char *)db, "--out", (char *)out,
                     (char *)extra1, (char *)extra2, NULL };
    return run(argv, NULL, err_path);
}

static int group_setup(void **state)
{
    (void)state;
    snprintf(g_dir, sizeof g_dir, "/tmp/qf-test-report-XXXXXX");
    if (!mkdtemp(g_dir))
        return -1;
    char suite[128];
    snprintf(suite, sizeof suite, "%s/tiny.yaml", g_dir);
    snprintf(g_db, sizeof g_db, "%s/runs.db", g_dir);
    FILE *f = fopen(suite, "w");
    if (!f || fputs(k_suite, f) < 0 || fclose(f) != 0)
        return -1;
    const char *commits[] = { "base1111", "head2222" };
    for (size_t i = 0; i < 2; i++) {
        char *argv[] = { QF_BINARY, "run", suite, "--db", g_db, "--commit", (char *)commits[i],
                         NULL };
        double t0 = now_s();
        int rc = run(argv, NULL, NULL);
        fprintf(stderr, "test_report: qfleet run --commit %s: exit %d in %.2f s\n", commits[i],
                rc, now_s() - t0);
        if (rc != 0)
            return -1;
    }
    return 0;
}

static int group_teardown(void **state)
{
    (void)state;
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", g_dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* --- units ------------------------------------------------------------------------------- */

static void csv_quoting(void **state)
{
    (void)state;
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    assert_non_null(m);
    qf_csv_field(m, "plain");
    fputc('|', m);
    qf_csv_field(m, "a,b");
    fputc('|', m);
    qf_csv_field(m, "say \"hi\"");
    fputc('|', m);
    qf_csv_field(m, "two\r\nlines");
    fputc('|', m);
    qf_csv_field(m, "");
    fclose(m);
    assert_string_equal(buf, "plain|\"a,b\"|\"say \"\"hi\"\"\"|\"two\r\nlines\"|");
    free(buf);
}

static void html_escaping(void **state)
{
    (void)state;
    char *buf = NULL;
    size_t len = 0;
    FILE *m = open_memstream(&buf, &len);
    assert_non_null(m);
    qf_html_text(m, "<script>alert('x') & \"y\"</script>");
    fclose(m);
    assert_string_equal(buf, "&lt;script&gt;alert(&#39;x&#39;) &amp; &quot;y&quot;&lt;/script&gt;");
    free(buf);
}

static void load_refusals(void **state)
{
    (void)state;
    qf_resultset *rs = NULL;
    char path[128];
    snprintf(path, sizeof path, "%s/missing.db", g_dir);
    assert_int_equal(qf_resultset_load(path, &rs), QF_ENOENT);
    assert_null(rs);
    /* a SQLite file that is not a qfleet store */
    snprintf(path, sizeof path, "%s/other.db", g_dir);
    assert_int_equal(exec_sql(path, "CREATE TABLE t(x)"), SQLITE_OK);
    assert_int_equal(qf_resultset_load(path, &rs), QF_EDB);
    /* not SQLite at all */
    snprintf(path, sizeof path, "%s/text.db", g_dir);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs("this is not a database, just some text long enough to have a header\n", f);
    fclose(f);
    assert_int_equal(qf_resultset_load(path, &rs), QF_EDB);
    assert_null(rs);
}

static void load_real_store(void **state)
{
    (void)state;
    qf_resultset *rs = NULL;
    assert_int_equal(qf_resultset_load(g_db, &rs), 0);
    assert_int_equal(rs->n_runs, 2);
    assert_int_equal(rs->n_results, 12);
    assert_int_equal(rs->n_devices, 1);
    assert_string_equal(rs->runs[0].commit, "base1111");
    assert_string_equal(rs->runs[0].baseline, "f16");
    for (size_t i = 0; i < rs->n_results; i++) {
        const qf_rs_result *r = &rs->results[i];
        assert_int_equal(r->n_samples, 10);
        assert_true(r->median_s > 0);
        assert_true(r->has_metrics);
    }
    const char *c = NULL;
    assert_int_equal(qf_resultset_commit(rs, "head", NULL, &c), 0);
    assert_string_equal(c, "head2222");
    assert_int_equal(qf_resultset_commit(rs, "nope", NULL, &c), QF_ENOENT);
    assert_int_equal(qf_resultset_commit(rs, "head", "other-suite", &c), QF_ENOENT);
    /* the chapter's table of the latest run: the baseline's speed-up is 1 within its CI */
    qf_report *rep = NULL;
    assert_int_equal(qf_report_build(rs, 0, NULL, NULL, &rep), 0);
    assert_int_equal(rep->n_runs, 1);
    assert_int_equal(rep->runs[0]->id, 2);
    assert_int_equal(rep->n_rows, 6);
    for (size_t i = 0; i < rep->n_rows; i++) {
        const qf_report_row *w = &rep->rows[i];
        assert_non_null(w->base);
        if (strcmp(w->r->spec.format, "f16") == 0) {
            assert_true(w->speedup == 1.0 && w->mem_pct == 0.0);
        } else {
            assert_true(w->mem_pct < -40.0);
            assert_true(w->lo <= w->speedup && w->speedup <= w->hi);
        }
    }
    qf_report_destroy(&rep);
    assert_int_equal(qf_report_build(rs, 7, NULL, NULL, &rep), QF_ENOENT);
    assert_null(rep);
    qf_resultset_destroy(&rs);
    assert_null(rs);
    qf_resultset_destroy(&rs);   /* NULL-safe */
}

/* --- qfleet report -------------------------------------------------------------------------- */

static void report_files_and_readonly(void **state)
{
    (void)state;
    char out[128], path[160], errp[160];
    snprintf(out, sizeof out, "%s/rep-all", g_dir);
    snprintf(errp, sizeof errp, "%s/report.err", g_dir);
    struct stat before, after;
    assert_int_equal(stat(g_db, &before), 0);
    size_t db_len0 = 0, db_len1 = 0;
    char *db0 = slurp(g_db, &db_len0);
    assert_non_null(db0);
    int rc = report(g_db, out, NULL, NULL, errp);
    if (rc != 0) {
        char *e = slurp(errp, NULL);
        fail_msg("qfleet report exited %d: %s", rc, e ? e : "");
    }
    char *db1 = slurp(g_db, &db_len1);
    assert_non_null(db1);
    assert_int_equal(stat(g_db, &after), 0);
    assert_int_equal(db_len1, db_len0);
    assert_memory_equal(db1, db0, db_len0);
    assert_true(after.st_mtime == before.st_mtime);
    free(db0);
    free(db1);

    snprintf(path, sizeof path, "%s/index.html", out);
    char *html = slurp(path, NULL);
    assert_non_null(html);
    assert_non_null(strstr(html, "<table class=\"chapter\">"));
    assert_non_null(strstr(html, "<svg class=\"chart\""));
    assert_non_null(strstr(html, "History across commits"));   /* two commits stored */
    assert_non_null(strstr(html, "Content-Security-Policy"));
    assert_non_null(strstr(html, "head2222"));
    assert_non_null(strstr(html, "q4_0"));
    assert_non_null(strstr(html, "id=\"r7\""));               /* raw samples, anchored */
    assert_null(strstr(html, "<script"));
    assert_null(strstr(html, "src="));
    assert_null(strstr(html, "href=\"http"));
    assert_null(strstr(html, "@import"));
    free(html);
    snprintf(path, sizeof path, "%s/summary.md", out);
    char *md = slurp(path, NULL);
    assert_non_null(md);
    assert_non_null(strstr(md, "| framework | quantization |"));
    assert_non_null(strstr(md, "| llama.cpp (GGUF) [ours] | q4_0 | matvec |"));
    free(md);
    /* no temporaries left behind */
    char cmd[256];
    snprintf(cmd, sizeof cmd, "ls '%s' | grep -q tmp", out);
    assert_int_not_equal(system(cmd), 0);
}

/* results.csv through the sqlite3 shell's CSV import: one row per stored sample, and the
 * samples read back to the same doubles (their sum matches the store's to the last bit). */
static void csv_roundtrip_sqlite_import(void **state)
{
    (void)state;
    if (!on_path("sqlite3")) {
        printf("SKIP csv_roundtrip_sqlite_import: no sqlite3 shell on PATH\n");
        skip();
    }
    char out[128], csv[160], imp[160], cmd[512];
    snprintf(out, sizeof out, "%s/rep-csv", g_dir);
    assert_int_equal(report(g_db, out, "--commit", "base", NULL), 0);
    snprintf(csv, sizeof csv, "%s/results.csv", out);
    snprintf(imp, sizeof imp, "%s/imported.db", g_dir);
    snprintf(cmd, sizeof cmd, "sqlite3 '%s' '.import --csv %s t'", imp, csv);
    assert_int_equal(system(cmd), 0);
    int64_t db_rows = query_int(g_db, "SELECT count(*) FROM results r, json_each(r.samples) "
                                      "JOIN runs ON runs.id = r.run_id "
                                      "WHERE runs.commit_sha = 'base1111'");
    int64_t csv_rows = query_int(imp, "SELECT count(*) FROM t");
    assert_int_equal(db_rows, 60);
    assert_int_equal(csv_rows, db_rows);
    /* every identity column is there and the keys agree */
    assert_int_equal(query_int(imp, "SELECT count(DISTINCT key) FROM t WHERE \"commit\" = "
                                    "'base1111' AND suite = 'tiny' AND baseline = 'f16'"), 6);
    sqlite3 *h = NULL;
    assert_int_equal(sqlite3_open(imp, &h), SQLITE_OK);
    char attach[256];
    snprintf(attach, sizeof attach, "ATTACH '%s' AS s", g_db);
    assert_int_equal(sqlite3_exec(h, attach, NULL, NULL, NULL), SQLITE_OK);
    sqlite3_stmt *st = NULL;
    assert_int_equal(sqlite3_prepare_v2(h,
        "SELECT count(*) FROM t JOIN s.results r ON r.id = CAST(t.result_id AS INTEGER) "
        "WHERE CAST(t.sample_s AS REAL) = json_extract(r.samples, '$[' || t.rep || ']') "
        "AND t.key = r.key AND CAST(t.bytes AS INTEGER) = r.bytes", -1, &st, NULL), SQLITE_OK);
    assert_int_equal(sqlite3_step(st), SQLITE_ROW);
    assert_int_equal(sqlite3_column_int64(st, 0), db_rows);
    sqlite3_finalize(st);
    sqlite3_close(h);
}

static void report_usage_errors(void **state)
{
    (void)state;
    char out[128];
    snprintf(out, sizeof out, "%s/rep-bad", g_dir);
    char *no_out[] = { QF_BINARY, "report", "--db", g_db, NULL };
    assert_int_equal(run(no_out, NULL, NULL), 2);
    char *both[] = { QF_BINARY, "report", "--db", g_db, "--out", out, "--run", "1",
                     "--commit", "base", NULL };
    assert_int_equal(run(both, NULL, NULL), 2);
    assert_int_equal(report(g_db, out, "--run", "99", NULL), 1);
    assert_int_equal(report(g_db, out, "--commit", "zzz", NULL), 1);
    char missing[128];
    snprintf(missing, sizeof missing, "%s/none.db", g_dir);
    assert_int_equal(report(missing, out, NULL, NULL, NULL), 1);
}

/* --- --post against tests/http_server.py ----------------------------------------------------- */

typedef struct server {
    pid_t pid;
    int   stdin_fd;
    int   port;
} server;

static int server_start(server *sv)
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
        execlp("python3", "python3", "-u", QF_SOURCE_DIR "/tests/http_server.py", "/dev/null",
               (char *)NULL);
        _exit(127);
    }
    close(in[0]);
    close(out[1]);
    *sv = (server){ pid, in[1], 0 };
    char line[32] = "";
    struct pollfd pfd = { .fd = out[0], .events = POLLIN };
    if (poll(&pfd, 1, 30000) > 0) {   /* python3's start on a loaded machine */
        ssize_t r = read(out[0], line, sizeof line - 1);
        line[r > 0 ? r : 0] = '\0';
    }
    close(out[0]);
    sv->port = atoi(line);
    return sv->port > 0 ? 0 : -1;
}

static void server_stop(server *sv)
{
    close(sv->stdin_fd);   /* it exits on EOF */
    kill(sv->pid, SIGTERM);
    waitpid(sv->pid, NULL, 0);
}

static void post_summary(void **state)
{
    (void)state;
    if (!on_path("python3")) {
        printf("SKIP post_summary: no python3 on PATH for tests/http_server.py\n");
        skip();
    }
    server sv = { -1, -1, 0 };
    assert_int_equal(server_start(&sv), 0);
    char out[128], url[128], errp[160], opt[] = "--post";
    snprintf(out, sizeof out, "%s/rep-post", g_dir);
    snprintf(errp, sizeof errp, "%s/post.err", g_dir);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/ok/summary", sv.port);
    int rc = report(g_db, out, opt, url, errp);
    char *err = slurp(errp, NULL);
    if (rc != 0)
        fail_msg("report --post %s exited %d: %s", url, rc, err ? err : "");
    free(err);
    /* what the server received */
    char got[160], cmd[512];
    snprintf(got, sizeof got, "%s/posted.json", g_dir);
    snprintf(cmd, sizeof cmd, "python3 -c \"import urllib.request,sys;sys.stdout.buffer.write("
             "urllib.request.urlopen('http://127.0.0.1:%d/posted/summary').read())\" > '%s'",
             sv.port, got);
    assert_int_equal(system(cmd), 0);
    char *body = slurp(got, NULL);
    assert_non_null(body);
    assert_non_null(strstr(body, "\"text\":\"quantfleet tiny @ head2222: 6 results ok"));
    assert_non_null(strstr(body, "\"format\":\"q8_0\""));
    assert_non_null(strstr(body, "\"speedup_lo\":"));
    free(body);

    /* a server error: exit 1 and a message naming the URL and the status */
    snprintf(url, sizeof url, "http://127.0.0.1:%d/500/summary", sv.port);
    assert_int_equal(report(g_db, out, opt, url, errp), 1);
    err = slurp(errp, NULL);
    assert_non_null(err);
    if (!strstr(err, url) || !strstr(err, "HTTP 500"))
        fail_msg("500: the message does not name the URL and status: %s", err);
    free(err);

    /* a server that never answers: the timeout ends it */
    snprintf(url, sizeof url, "http://127.0.0.1:%d/stall/summary", sv.port);
    char *argv[] = { QF_BINARY, "report", "--db", g_db, "--out", out, "--post", url,
                     "--post-timeout", "1", NULL };
    double t0 = now_s();
    assert_int_equal(run(argv, NULL, errp), 1);
    double took = now_s() - t0;
    if (took > 8.0)
        fail_msg("a stalled POST with --post-timeout 1 took %.1f s", took);
    err = slurp(errp, NULL);
    assert_non_null(err);
    if (!strstr(err, url) || !strstr(err, "no answer within 1 s"))
        fail_msg("stall: the message does not name the URL and the timeout: %s", err);
    free(err);
    /* nobody listening */
    server_stop(&sv);
    snprintf(url, sizeof url, "http://127.0.0.1:%d/ok/summary", sv.port);
    assert_int_equal(report(g_db, out, opt, url, NULL), 1);
}

/* --- qfleet compare ------------------------------------------------------------------------ */

static int compare(const char *db, const char *base, const char *head, const char *format,
                   const char *out_path)
{
    char *argv[] = { QF_BINARY, "compare", "--db", (char *)db, "--base", (char *)base,
                     "--head", (char *)head, "--format", (char *)format, NULL };
    return run(argv, out_path, NULL);
}

/* On a copy of the store: head's samples made equal to base's (nothing changed: exit 0), then
 * one of head's matvec results slowed by 30% (exit 1, that key flagged). */
static void compare_planted_regression(void **state)
{
    (void)state;
    char db[160], out[160], cmd[512];
    snprintf(db, sizeof db, "%s/planted.db", g_dir);
    snprintf(out, sizeof out, "%s/compare.json", g_dir);
    snprintf(cmd, sizeof cmd, "cp '%s' '%s'", g_db, db);
    assert_int_equal(system(cmd), 0);
    assert_int_equal(exec_sql(db,
        "UPDATE results SET samples = (SELECT b.samples FROM results b "
        "JOIN runs rb ON rb.id = b.run_id WHERE rb.commit_sha = 'base1111' AND b.key = "
        "results.key) WHERE run_id = (SELECT id FROM runs WHERE commit_sha = 'head2222')"),
        SQLITE_OK);
    int rc = compare(db, "base1111", "head2222", "json", out);
    char *json = slurp(out, NULL);
    if (rc != 0)
        fail_msg("compare of identical samples exited %d: %s", rc, json ? json : "");
    assert_non_null(strstr(json, "\"regressions\": 0"));
    free(json);

    assert_int_equal(exec_sql(db,
        "UPDATE results SET samples = (SELECT json_group_array(value * 1.3) FROM "
        "json_each(results.samples)) WHERE key LIKE 'matvec/q8_0/%' AND run_id = "
        "(SELECT id FROM runs WHERE commit_sha = 'head2222')"), SQLITE_OK);
    rc = compare(db, "base", "head", "json", out);
    json = slurp(out, NULL);
    if (rc != 1)
        fail_msg("compare with a planted 30%% slowdown exited %d: %s", rc, json ? json : "");
    assert_non_null(strstr(json, "\"regressions\": 1"));
    /* sorted by effect: the planted key comes first */
    char *first = strstr(json, "\"key\":");
    assert_non_null(first);
    assert_memory_equal(first, "\"key\": \"matvec/q8_0/", 20);
    assert_non_null(strstr(json, "\"verdict\": \"regression\""));
    free(json);
    /* the other formats print too, and the cross-device summary marks the regression */
    snprintf(out, sizeof out, "%s/compare.txt", g_dir);
    assert_int_equal(compare(db, "base", "head", "text", out), 1);
    char *text = slurp(out, NULL);
    assert_non_null(text);
    assert_non_null(strstr(text, "Across device classes"));
    assert_non_null(strstr(text, "+30.0% !"));
    free(text);
    assert_int_equal(compare(db, "base", "head", "md", out), 1);
    assert_int_equal(compare(db, "base", "head", "csv", out), 1);
    text = slurp(out, NULL);
    assert_non_null(text);
    assert_memory_equal(text, "key,op,format,", 14);
    free(text);
}

static void compare_errors_exit_2(void **state)
{
    (void)state;
    assert_int_equal(compare(g_db, "nope", "head", "text", NULL), 2);
    assert_int_equal(compare(g_db, "base", "head", "yaml", NULL), 2);
    char missing[128];
    snprintf(missing, sizeof missing, "%s/none.db", g_dir);
    assert_int_equal(compare(missing, "base", "head", "text", NULL), 2);
    char *bad_threshold[] = { QF_BINARY, "compare", "--db", g_db, "--base", "base", "--head",
                              "head", "--threshold", "5x", NULL };
    assert_int_equal(run(bad_threshold, NULL, NULL), 2);
    bad_threshold[9] = "5";   /* 5% or 500%? refused: write 5% or 0.05 */
    assert_int_equal(run(bad_threshold, NULL, NULL), 2);
    char *no_head[] = { QF_BINARY, "compare", "--db", g_db, "--base", "base", NULL };
    assert_int_equal(run(no_head, NULL, NULL), 2);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest units[] = {
        cmocka_unit_test(csv_quoting),
        cmocka_unit_test(html_escaping),
    };
    const struct CMUnitTest store[] = {
        cmocka_unit_test(load_refusals),
        cmocka_unit_test(load_real_store),
        cmocka_unit_test(report_files_and_readonly),
        cmocka_unit_test(csv_roundtrip_sqlite_import),
        cmocka_unit_test(report_usage_errors),
        cmocka_unit_test(post_summary),
        cmocka_unit_test(compare_planted_regression),
        cmocka_unit_test(compare_errors_exit_2),
    };
    int failed = cmocka_run_group_tests_name("units", units, NULL, NULL);
    failed += cmocka_run_group_tests_name("store", store, group_setup, group_teardown);
    return failed ? 1 : 0;
}
