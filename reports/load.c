/* load.c - the results store (coordinator/store.c's schema) read into a qf_resultset.
 *
 * The file is opened with SQLITE_OPEN_READONLY and read inside one transaction, so a report
 * sees one consistent snapshot even while a coordinator keeps writing (WAL), and can never
 * change the store. The schema is store.c's; this file checks its version (user_version 1 or 2)
 * and reads only columns that version has. Everything the store holds as JSON (fingerprints,
 * specs, metrics, samples) is parsed here, once, and a row that does not parse is an error
 * naming the row: a report must not quietly drop numbers.
 *
 * Device classes: an agent's fingerprint (agent/fingerprint.c) names the machine (name,
 * hostname) and the build under test (the "qfleet" object: commit, compiler, kernels), and
 * carries memory sizes that a VM's balloon changes between runs. All are removed before
 * hashing, so the class of a machine stays the same across the commits being compared, which
 * is what pairing by fingerprint needs. Called once per command: not hot.
 */
#include "qf_report.h"

#include <assert.h>
#include <inttypes.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>
#include <sodium.h>
#include <sqlite3.h>

#include "qf_err.h"
#include "qf_stats.h"

/* The store schema this reader understands (store.c's STORE_SCHEMA_VERSION). */
#define LOAD_SCHEMA_VERSION 2   /* 2 added results.device_mem_bytes; version 1 reads the same */

static const char k_sql_runs[] =
    "SELECT id, suite, commit_sha, dirty, branch, baseline, submitted_at, state "
    "FROM runs ORDER BY id";
static const char k_sql_agents[] =
    "SELECT id, name, fingerprint, fingerprint_sha256, arch FROM agents ORDER BY id";
static const char k_sql_results[] =
    "SELECT r.id, r.run_id, r.job_id, r.attempt, r.agent_id, r.status, r.key, j.spec, "
    "r.metrics, r.samples, r.bytes, r.bpw, r.throughput_bytes, r.dataset_sha256, r.kernel, "
    "r.seed, r.peak_rss_kb, r.wall_s "
    "FROM results r JOIN jobs j ON j.id = r.job_id ORDER BY r.run_id, r.id";

static void copy_text(char *dst, size_t cap, sqlite3_stmt *st, int col)
{
    const unsigned char *t = sqlite3_column_text(st, col);
    snprintf(dst, cap, "%s", t ? (const char *)t : "");
}

static double column_real(sqlite3_stmt *st, int col)
{
    return sqlite3_column_type(st, col) == SQLITE_NULL ? NAN : sqlite3_column_double(st, col);
}

/* Counts rows of a table, for sizing the arrays before the rows are read. */
static int count_rows(sqlite3 *db, const char *path, const char *table, size_t *n)
{
    char sql[64];
    snprintf(sql, sizeof sql, "SELECT count(*) FROM %s", table);
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, sql, -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        int err = qf_errorf(QF_EDB, "%s: cannot count %s: %s", path, table, sqlite3_errmsg(db));
        sqlite3_finalize(st);
        return err;
    }
    *n = (size_t)sqlite3_column_int64(st, 0);
    sqlite3_finalize(st);
    return 0;
}

static int load_runs(sqlite3 *db, const char *path, qf_resultset *rs, size_t cap)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, k_sql_runs, -1, &st, NULL) != SQLITE_OK)
        return qf_errorf(QF_EDB, "%s: cannot read runs: %s", path, sqlite3_errmsg(db));
    int rc = SQLITE_DONE;
    while (rs->n_runs < cap && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        qf_rs_run *r = &rs->runs[rs->n_runs++];
        r->id = sqlite3_column_int64(st, 0);
        copy_text(r->suite, sizeof r->suite, st, 1);
        copy_text(r->commit, sizeof r->commit, st, 2);
        r->dirty = sqlite3_column_int(st, 3) != 0;
        copy_text(r->branch, sizeof r->branch, st, 4);
        copy_text(r->baseline, sizeof r->baseline, st, 5);
        r->submitted_at = sqlite3_column_double(st, 6);
        copy_text(r->state, sizeof r->state, st, 7);
    }
    sqlite3_finalize(st);
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : qf_errorf(QF_EDB, "%s: reading runs: %s",
                                                                 path, sqlite3_errmsg(db));
}

/* "CPU model (arch, N cores, GPU names)" from a fingerprint object. */
static void device_label(json_t *fp, const char *arch, char *out, size_t cap)
{
    json_t *cpu = json_object_get(fp, "cpu");
    const char *model = json_string_value(json_object_get(cpu, "model"));
    json_int_t cores = json_integer_value(json_object_get(cpu, "cores"));
    int n = snprintf(out, cap, "%s (%s", model && *model ? model : "unknown CPU", arch);
    if (cores > 0 && n >= 0 && (size_t)n < cap)
        n += snprintf(out + n, cap - (size_t)n, ", %" JSON_INTEGER_FORMAT " cores", cores);
    size_t i;
    json_t *g;
    json_array_foreach(json_object_get(fp, "gpus"), i, g) {
        const char *name = json_string_value(json_object_get(g, "name"));
        if (!name)
            name = json_string_value(g);
        if (name && n >= 0 && (size_t)n < cap)
            n += snprintf(out + n, cap - (size_t)n, ", %s", name);
    }
    if (n >= 0 && (size_t)n < cap)
        snprintf(out + n, cap - (size_t)n, ")");
}

/* The device class of one agent: found among the classes so far or appended. */
static int agent_device(qf_resultset *rs, const char *path, int64_t agent_id,
                        const char *fp_text, const char *arch, size_t *index)
{
    json_error_t jerr;
    json_t *fp = json_loads(fp_text, 0, &jerr);
    if (!json_is_object(fp)) {
        json_decref(fp);
        return qf_errorf(QF_EPARSE, "%s: agent %" PRId64 ": fingerprint is not a JSON object",
                         path, agent_id);
    }
    json_object_del(fp, "qfleet");
    json_object_del(fp, "name");
    json_object_del(fp, "hostname");
    /* memory sizes move under a VM's memory balloon and hotplug; the NUMA layout stays */
    json_object_del(fp, "memory");
    size_t k;
    json_t *node;
    json_array_foreach(json_object_get(fp, "numa"), k, node)
        json_object_del(node, "memory");
    char *canon = json_dumps(fp, JSON_COMPACT | JSON_SORT_KEYS);
    char *pretty = json_dumps(fp, JSON_INDENT(1) | JSON_SORT_KEYS);
    char label[sizeof rs->devices[0].label];
    device_label(fp, arch, label, sizeof label);
    json_decref(fp);
    if (!canon || !pretty) {
        free(canon);
        free(pretty);
        return qf_errorf(QF_ENOMEM, "%s: out of memory reading agent fingerprints", path);
    }
    unsigned char h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, (const unsigned char *)canon, strlen(canon));
    free(canon);
    char id[13];
    for (size_t i = 0; i < 6; i++)
        snprintf(id + 2 * i, 3, "%02x", h[i]);
    for (size_t i = 0; i < rs->n_devices; i++)
        if (strcmp(rs->devices[i].id, id) == 0) {
            free(pretty);
            *index = i;
            return 0;
        }
    qf_rs_device *d = &rs->devices[rs->n_devices];  /* room: one per agent at most */
    memcpy(d->id, id, sizeof d->id);
    snprintf(d->label, sizeof d->label, "%s", label);
    d->fingerprint = pretty;
    *index = rs->n_devices++;
    return 0;
}

static int load_agents(sqlite3 *db, const char *path, qf_resultset *rs, size_t cap)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, k_sql_agents, -1, &st, NULL) != SQLITE_OK)
        return qf_errorf(QF_EDB, "%s: cannot read agents: %s", path, sqlite3_errmsg(db));
    int rc = SQLITE_DONE, err = 0;
    while (!err && rs->n_agents < cap && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        qf_rs_agent *a = &rs->agents[rs->n_agents];
        a->id = sqlite3_column_int64(st, 0);
        copy_text(a->name, sizeof a->name, st, 1);
        const unsigned char *fp = sqlite3_column_text(st, 2);
        char arch[32];
        copy_text(arch, sizeof arch, st, 4);
        err = agent_device(rs, path, a->id, fp ? (const char *)fp : "", arch, &a->device);
        if (!err)
            rs->n_agents++;
    }
    sqlite3_finalize(st);
    if (err)
        return err;
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : qf_errorf(QF_EDB, "%s: reading agents: "
                                                                 "%s", path, sqlite3_errmsg(db));
}

static double metric(json_t *m, const char *k, double if_null)
{
    json_t *v = json_object_get(m, k);
    if (json_is_number(v))
        return json_number_value(v);
    return json_is_null(v) ? if_null : NAN;
}

/* The metrics JSON (NULL for kinds without) into r. The store writes an infinite value as
 * null (JSON has no inf); for SNR that is the lossless case, +inf. */
static int parse_metrics(const char *path, qf_rs_result *r, const char *text)
{
    r->rmse = r->nmse = r->snr_db = r->max_abs = r->cosine = r->ppl = r->kld = NAN;
    r->same_top = r->ppl_base = NAN;
    if (!text)
        return 0;
    json_t *m = json_loads(text, 0, NULL);
    if (!json_is_object(m)) {
        json_decref(m);
        return qf_errorf(QF_EPARSE, "%s: result %" PRId64 ": metrics is not a JSON object",
                         path, r->id);
    }
    r->has_metrics = true;
    r->rmse = metric(m, "rmse", NAN);
    r->nmse = metric(m, "nmse", NAN);
    r->snr_db = metric(m, "snr_db", INFINITY);
    r->max_abs = metric(m, "max_abs", NAN);
    r->cosine = metric(m, "cosine", NAN);
    r->ppl = metric(m, "perplexity", NAN);
    r->kld = metric(m, "kld", NAN);
    r->same_top = metric(m, "same_top", NAN);
    r->ppl_base = metric(m, "perplexity_base", NAN);
    json_decref(m);
    return 0;
}

static int parse_samples(const char *path, qf_rs_result *r, const char *text)
{
    json_t *a = json_loads(text ? text : "", 0, NULL);
    size_t n = json_array_size(a);
    if (!json_is_array(a) || n > QF_JOB_MAX_SAMPLES) {
        json_decref(a);
        return qf_errorf(QF_EPARSE, "%s: result %" PRId64 ": samples is not a JSON array of "
                         "at most %d numbers", path, r->id, QF_JOB_MAX_SAMPLES);
    }
    r->samples = malloc((n ? n : 1) * sizeof *r->samples);
    if (!r->samples) {
        json_decref(a);
        return qf_errorf(QF_ENOMEM, "%s: out of memory reading samples", path);
    }
    for (size_t i = 0; i < n; i++) {
        json_t *v = json_array_get(a, i);
        double x = json_number_value(v);
        if (!json_is_number(v) || !isfinite(x) || x < 0) {
            json_decref(a);
            return qf_errorf(QF_EPARSE, "%s: result %" PRId64 ": sample %zu is not a "
                             "non-negative number of seconds", path, r->id, i);
        }
        r->samples[i] = x;
    }
    json_decref(a);
    r->n_samples = n;
    r->median_s = n ? qf_stats_percentile(r->samples, n, 50.0) : NAN;
    return 0;
}

static int find_index(const qf_resultset *rs, int64_t run_id, int64_t agent_id,
                      size_t *run, size_t *agent)
{
    bool found_run = false, found_agent = false;
    for (size_t i = 0; i < rs->n_runs && !found_run; i++)
        if (rs->runs[i].id == run_id) {
            *run = i;
            found_run = true;
        }
    for (size_t i = 0; i < rs->n_agents && !found_agent; i++)
        if (rs->agents[i].id == agent_id) {
            *agent = i;
            found_agent = true;
        }
    return found_run && found_agent ? 0 : -1;
}

static int load_result(const char *path, qf_resultset *rs, sqlite3_stmt *st, qf_rs_result *r)
{
    r->id = sqlite3_column_int64(st, 0);
    r->run_id = sqlite3_column_int64(st, 1);
    r->job_id = sqlite3_column_int64(st, 2);
    r->attempt = sqlite3_column_int(st, 3);
    r->agent_id = sqlite3_column_int64(st, 4);
    copy_text(r->status, sizeof r->status, st, 5);
    copy_text(r->key, sizeof r->key, st, 6);
    if (find_index(rs, r->run_id, r->agent_id, &r->run, &r->agent))
        return qf_errorf(QF_EDB, "%s: result %" PRId64 " names a run or agent the store does "
                         "not have", path, r->id);
    r->device = rs->agents[r->agent].device;
    char why[256];
    const unsigned char *spec = sqlite3_column_text(st, 7);
    if (qf_job_spec_from_json(spec ? (const char *)spec : "", &r->spec, why, sizeof why))
        return qf_errorf(QF_EPARSE, "%s: result %" PRId64 ": job spec: %s", path, r->id, why);
    int err = parse_metrics(path, r, (const char *)sqlite3_column_text(st, 8));
    if (!err)
        err = parse_samples(path, r, (const char *)sqlite3_column_text(st, 9));
    if (err)
        return err;
    r->bytes = (uint64_t)sqlite3_column_int64(st, 10);
    r->bpw = column_real(st, 11);
    r->throughput_bytes = (uint64_t)sqlite3_column_int64(st, 12);
    copy_text(r->dataset_sha256, sizeof r->dataset_sha256, st, 13);
    copy_text(r->kernel, sizeof r->kernel, st, 14);
    r->seed = (uint64_t)sqlite3_column_int64(st, 15);
    r->peak_rss_kb = (uint64_t)sqlite3_column_int64(st, 16);
    r->wall_s = column_real(st, 17);
    return 0;
}

static int load_results(sqlite3 *db, const char *path, qf_resultset *rs, size_t cap)
{
    sqlite3_stmt *st = NULL;
    if (sqlite3_prepare_v2(db, k_sql_results, -1, &st, NULL) != SQLITE_OK)
        return qf_errorf(QF_EDB, "%s: cannot read results: %s", path, sqlite3_errmsg(db));
    int rc = SQLITE_DONE, err = 0;
    while (!err && rs->n_results < cap && (rc = sqlite3_step(st)) == SQLITE_ROW) {
        qf_rs_result *r = &rs->results[rs->n_results++];  /* counted even on error: freed */
        err = load_result(path, rs, st, r);
    }
    sqlite3_finalize(st);
    if (err)
        return err;
    return rc == SQLITE_DONE || rc == SQLITE_ROW ? 0 : qf_errorf(QF_EDB, "%s: reading "
                                                       "results: %s", path, sqlite3_errmsg(db));
}

static int check_version(sqlite3 *db, const char *path)
{
    sqlite3_stmt *st = NULL;
    int rc = sqlite3_prepare_v2(db, "PRAGMA user_version", -1, &st, NULL);
    if (rc == SQLITE_OK)
        rc = sqlite3_step(st);
    if (rc != SQLITE_ROW) {
        int err = qf_errorf(QF_EDB, "%s: not a readable SQLite database: %s", path,
                            sqlite3_errmsg(db));
        sqlite3_finalize(st);
        return err;
    }
    int v = sqlite3_column_int(st, 0);
    sqlite3_finalize(st);
    if (v < 1 || v > LOAD_SCHEMA_VERSION)
        return qf_errorf(QF_EDB, "%s: store schema version %d, this qfleet reads versions 1 to %d%s",
                         path, v, LOAD_SCHEMA_VERSION, v == 0 ? " (not a qfleet store?)" : "");
    return 0;
}

static int load_all(sqlite3 *db, const char *path, qf_resultset *rs)
{
    size_t nr = 0, na = 0, nres = 0;
    int err = check_version(db, path);
    if (!err)
        err = count_rows(db, path, "runs", &nr);
    if (!err)
        err = count_rows(db, path, "agents", &na);
    if (!err)
        err = count_rows(db, path, "results", &nres);
    if (err)
        return err;
    rs->runs = calloc(nr ? nr : 1, sizeof *rs->runs);
    rs->agents = calloc(na ? na : 1, sizeof *rs->agents);
    rs->devices = calloc(na ? na : 1, sizeof *rs->devices);
    rs->results = calloc(nres ? nres : 1, sizeof *rs->results);
    if (!rs->runs || !rs->agents || !rs->devices || !rs->results)
        return qf_errorf(QF_ENOMEM, "%s: out of memory for %zu results", path, nres);
    /* counts and rows come from one read transaction, so they agree; the caps keep a
     * mismatch (impossible in a snapshot) from writing out of bounds */
    err = load_runs(db, path, rs, nr);
    if (!err)
        err = load_agents(db, path, rs, na);
    if (!err)
        err = load_results(db, path, rs, nres);
    return err;
}

int qf_resultset_load(const char *path, qf_resultset **out)
{
    assert(path && out);
    *out = NULL;
    sqlite3 *db = NULL;
    if (sqlite3_open_v2(path, &db, SQLITE_OPEN_READONLY, NULL) != SQLITE_OK) {
        int err = qf_errorf(QF_ENOENT, "%s: cannot open the results store: %s", path,
                            db ? sqlite3_errmsg(db) : "out of memory");
        sqlite3_close(db);
        return err;
    }
    sqlite3_busy_timeout(db, 5000);
    qf_resultset *rs = calloc(1, sizeof *rs);
    int err = rs ? 0 : qf_errorf(QF_ENOMEM, "%s: out of memory", path);
    if (!err && sqlite3_exec(db, "BEGIN", NULL, NULL, NULL) != SQLITE_OK)
        err = qf_errorf(QF_EDB, "%s: cannot start a read: %s", path, sqlite3_errmsg(db));
    if (!err) {
        err = load_all(db, path, rs);
        sqlite3_exec(db, "COMMIT", NULL, NULL, NULL);
    }
    sqlite3_close(db);
    if (err) {
        qf_resultset_destroy(&rs);
        return err;
    }
    /* runs were read in id order above; agents/devices need no order */
    *out = rs;
    return 0;
}

void qf_resultset_destroy(qf_resultset **rs)
{
    if (!rs || !*rs)
        return;
    qf_resultset *s = *rs;
    for (size_t i = 0; i < s->n_devices; i++)
        free(s->devices[i].fingerprint);
    for (size_t i = 0; i < s->n_results; i++)
        free(s->results[i].samples);
    free(s->runs);
    free(s->agents);
    free(s->devices);
    free(s->results);
    free(s);
    *rs = NULL;
}

const qf_rs_run *qf_resultset_run(const qf_resultset *rs, int64_t id)
{
    for (size_t i = 0; i < rs->n_runs; i++)
        if (rs->runs[i].id == id)
            return &rs->runs[i];
    return NULL;
}

int qf_resultset_commit(const qf_resultset *rs, const char *rev, const char *suite,
                        const char **commit)
{
    assert(rs && rev && commit);
    const char *found = NULL;
    size_t len = strlen(rev);
    for (size_t i = 0; i < rs->n_runs; i++)   /* an exact name wins over prefixes */
        if ((!suite || strcmp(rs->runs[i].suite, suite) == 0) &&
            strcmp(rs->runs[i].commit, rev) == 0) {
            *commit = rs->runs[i].commit;
            return 0;
        }
    for (size_t i = 0; i < rs->n_runs; i++) {
        const qf_rs_run *r = &rs->runs[i];
        if (suite && strcmp(r->suite, suite) != 0)
            continue;
        if (len && strncmp(r->commit, rev, len) == 0) {
            if (found && strcmp(found, r->commit) != 0)
                return qf_errorf(QF_EINVAL, "commit '%s' is ambiguous: %s and %s both start "
                                 "with it", rev, found, r->commit);
            found = r->commit;
        }
    }
    if (!found)
        return qf_errorf(QF_ENOENT, "no run of commit '%s'%s%s in the store", rev,
                         suite ? " in suite " : "", suite ? suite : "");
    *commit = found;
    return 0;
}
