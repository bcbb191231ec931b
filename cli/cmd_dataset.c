/* cmd_dataset.c - `qfleet dataset list|fetch|verify`: the manifests and the local cache.
 *
 * list shows every manifest in the folder (the source tree's datasets/ unless --manifests or
 * QF_MANIFEST_DIR says otherwise) and whether its file is in the cache; fetch downloads named
 * datasets into the cache (datasets/fetch.c: retries, resume, SHA-256 before the rename, a
 * lock so concurrent fetches take turns); verify re-hashes cached files and deletes any that
 * no longer match. Exit status: 0 when everything asked for is in place and verified, 1 when
 * a fetch or a verification failed, 2 for a bad command line or an unknown dataset name.
 */
#include <getopt.h>
#include <inttypes.h>
#include <jansson.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "qf_cli_args.h"
#include "qf_cmd.h"
#include "qf_err.h"
#include "qf_fetch.h"
#include "qf_manifest.h"

static void print_usage(FILE *out)
{
    fputs("usage: qfleet dataset list [--json] [--manifests DIR]\n"
          "       qfleet dataset fetch NAME... [--manifests DIR] [--quiet] [--no-progress]\n"
          "       qfleet dataset verify [NAME...] [--manifests DIR]\n"
          "\n"
          "Datasets are described by manifests (one NAME.yaml each: URL or generator, size,\n"
          "sha256, license; see docs/datasets.md) and downloaded into the cache:\n"
          "$QF_CACHE_DIR, else $XDG_CACHE_HOME/quantfleet, else ~/.cache/quantfleet.\n"
          "\n"
          "  list    every manifest, and whether its file is in the cache\n"
          "  fetch   download the named datasets (resumes partial downloads, retries\n"
          "          transient failures, checks the sha256 before the file enters the cache)\n"
          "  verify  re-hash cached files (all of them without NAME); a file that no longer\n"
          "          matches is deleted, so the next fetch downloads it again\n"
          "\n"
          "Options:\n"
          "  --manifests DIR  read manifests from DIR (default: $QF_MANIFEST_DIR, else the\n"
          "                   source tree's datasets/)\n"
          "  --json           list: print a JSON array\n"
          "  --quiet          fetch: no retry or lock-wait lines\n"
          "  --no-progress    fetch: no progress bar (it is drawn only when stderr is a TTY)\n"
          "  -h, --help       show this help\n"
          "\n"
          "Environment for slow links: QF_FETCH_CONNECT_TIMEOUT_MS, QF_FETCH_LOW_SPEED_LIMIT\n"
          "(bytes/s), QF_FETCH_LOW_SPEED_TIME (s), QF_FETCH_RETRIES, QF_FETCH_BACKOFF_MS;\n"
          "QF_FETCH_CA_FILE: a PEM bundle of CAs to trust for HTTPS mirrors.\n", out);
}

/* "669.0 MiB", "<= 700.0 MiB", "-" for synthetic. */
static void size_text(const qf_manifest *m, char *buf, size_t size)
{
    if (m->kind == QF_MANIFEST_SYNTHETIC) {
        snprintf(buf, size, "-");
        return;
    }
    double mib = (double)m->size / (1024.0 * 1024.0);
    snprintf(buf, size, "%s%.1f MiB", m->size_exact ? "" : "<= ", mib);
}

/* "cached", "-" (not fetched), "generated" (synthetic). */
static const char *state_of(const qf_manifest *m, const char *cache_dir)
{
    if (m->kind == QF_MANIFEST_SYNTHETIC)
        return "generated";
    char path[QF_FETCH_PATH_MAX];
    struct stat st;
    if (qf_fetch_cache_path(m, cache_dir, path, sizeof path, NULL, 0) == 0 &&
        stat(path, &st) == 0)
        return "cached";
    return "-";
}

static int do_list(const char *dir, bool as_json)
{
    qf_manifest *v = NULL;
    size_t n = 0;
    char why[2048];
    if (qf_manifest_list(dir, &v, &n, why, sizeof why) != 0) {
        qf_errorf(QF_EINVAL, "dataset list: %s", why);
        return QF_EXIT_FAILURE;
    }
    char cache[QF_FETCH_PATH_MAX];
    const char *cache_dir = qf_fetch_cache_dir(cache, sizeof cache, NULL, 0) == 0 ? cache
                                                                                 : NULL;
    int status = QF_EXIT_OK;
    if (as_json) {
        json_t *arr = json_array();
        for (size_t i = 0; arr && i < n; i++) {
            const qf_manifest *m = &v[i];
            json_t *urls = json_array();
            for (int u = 0; urls && u < m->n_urls; u++)
                json_array_append_new(urls, json_string(m->urls[u]));
            json_t *o = json_pack("{s:s, s:s, s:s, s:o, s:s, s:I, s:b, s:s, s:b, s:s, s:s, "
                                  "s:s, s:s, s:s}",
                "name", m->name, "kind", qf_manifest_kind_name(m->kind),
                "format", qf_manifest_format_name(m->format), "urls", urls ? urls : json_null(),
                "generator", m->generator, "size", (json_int_t)m->size,
                "size_exact", m->size_exact, "sha256", m->sha256, "unverified", m->unverified,
                "tensor", m->tensor, "license", m->license, "description", m->description,
                "state", cache_dir ? state_of(m, cache_dir) : "-", "manifest", m->path);
            if (!o || json_array_append_new(arr, o) != 0) {
                json_decref(arr);
                arr = NULL;
            }
        }
        char *text = arr ? json_dumps(arr, JSON_INDENT(2) | JSON_PRESERVE_ORDER) : NULL;
        json_decref(arr);
        if (!text) {
            qf_errorf(QF_ENOMEM, "dataset list: out of memory");
            status = QF_EXIT_FAILURE;
        } else {
            puts(text);
            free(text);
        }
    } else {
        printf("%-28s %-11s %-11s %-13s %-10s %-9s %s\n", "name", "kind", "format", "size",
               "sha256", "state", "description");
        for (size_t i = 0; i < n; i++) {
            const qf_manifest *m = &v[i];
            char size[32];
            size_text(m, size, sizeof size);
            const char *sha = m->kind == QF_MANIFEST_SYNTHETIC ? "-"
                              : m->unverified ? "unverified" : "pinned";
            printf("%-28s %-11s %-11s %-13s %-10s %-9s %.56s%s\n", m->name,
                   qf_manifest_kind_name(m->kind),
                   m->format ? qf_manifest_format_name(m->format) : "-", size, sha,
                   cache_dir ? state_of(m, cache_dir) : "-", m->description,
                   strlen(m->description) > 56 ? "..." : "");
        }
        if (n == 0)
            printf("(no manifests in %s)\n", dir);
    }
    free(v);
    return status;
}

/* The manifest named name in dir, or a message and exit status 2. */
static int find(const char *cmd, const char *dir, const char *name, qf_manifest *m)
{
    char why[2048];
    int err = qf_manifest_find(dir, name, m, why, sizeof why);
    if (err) {
        qf_errorf(err, "dataset %s: %s", cmd, why);
        return err == QF_ENOENT || err == QF_EINVAL ? QF_EXIT_USAGE : QF_EXIT_FAILURE;
    }
    return QF_EXIT_OK;
}

static int do_fetch(const char *dir, char **names, int n, bool quiet, bool progress)
{
    if (n == 0) {
        qf_errorf(QF_EUSAGE, "dataset fetch: name at least one dataset (see 'qfleet dataset "
                  "list')");
        return QF_EXIT_USAGE;
    }
    qf_fetch_opts o;
    qf_fetch_opts_default(&o);
    o.quiet = quiet;
    if (!progress)
        o.progress = 0;
    int status = QF_EXIT_OK;
    for (int i = 0; i < n; i++) {
        qf_manifest m;
        int st = find("fetch", dir, names[i], &m);
        if (st) {
            status = status == QF_EXIT_OK ? st : status;
            continue;
        }
        if (m.kind == QF_MANIFEST_SYNTHETIC) {
            printf("%s: synthetic (%s), nothing to fetch\n", m.name, m.generator);
            continue;
        }
        qf_fetch_result r;
        char why[2048];
        if (qf_fetch(&m, &o, &r, why, sizeof why) != 0) {
            qf_errorf(QF_ENET, "%s", why);
            status = QF_EXIT_FAILURE;
            continue;
        }
        printf("%s: %s %s (%" PRIu64 " bytes, sha256 %s%s)\n", m.name,
               r.downloaded ? "fetched to" : "already in", r.path, r.bytes, r.sha256,
               m.unverified ? ", recorded: the manifest has none" : ", verified");
    }
    return status;
}

static int verify_one(const qf_manifest *m, bool named, int *missing)
{
    if (m->kind == QF_MANIFEST_SYNTHETIC) {
        if (named)
            printf("%s: synthetic (%s), nothing to verify\n", m->name, m->generator);
        return QF_EXIT_OK;
    }
    qf_fetch_result r;
    char why[2048];
    int err = qf_fetch_verify(m, NULL, &r, why, sizeof why);
    if (err == QF_ENOENT) {
        (*missing)++;
        printf("%s: not in the cache\n", m->name);
        return named ? QF_EXIT_FAILURE : QF_EXIT_OK;
    }
    if (err) {
        qf_errorf(err, "%s", why);
        return QF_EXIT_FAILURE;
    }
    printf("%s: ok %s (%" PRIu64 " bytes, sha256 %s%s)\n", m->name, r.path, r.bytes, r.sha256,
           m->unverified ? ", as recorded at fetch: the manifest has none" : "");
    return QF_EXIT_OK;
}

static int do_verify(const char *dir, char **names, int n)
{
    int status = QF_EXIT_OK, missing = 0;
    if (n > 0) {
        for (int i = 0; i < n; i++) {
            qf_manifest m;
            int st = find("verify", dir, names[i], &m);
            if (!st)
                st = verify_one(&m, true, &missing);
            if (st && status == QF_EXIT_OK)
                status = st;
        }
        return status;
    }
    qf_manifest *v = NULL;
    size_t cnt = 0;
    char why[2048];
    if (qf_manifest_list(dir, &v, &cnt, why, sizeof why) != 0) {
        qf_errorf(QF_EINVAL, "dataset verify: %s", why);
        return QF_EXIT_FAILURE;
    }
    int checked = 0;
    for (size_t i = 0; i < cnt; i++) {
        if (v[i].kind == QF_MANIFEST_SYNTHETIC)
            continue;
        checked++;
        if (verify_one(&v[i], false, &missing) != QF_EXIT_OK)
            status = QF_EXIT_FAILURE;
    }
    printf("%d of %d downloadable datasets in the cache%s\n", checked - missing, checked,
           status == QF_EXIT_OK ? ", all verified" : "; see the errors above");
    free(v);
    return status;
}

int qf_cmd_dataset(int argc, char **argv)
{
    static const struct option opts[] = {
        { "manifests",   required_argument, NULL, 'm' },
        { "json",        no_argument,       NULL, 'j' },
        { "quiet",       no_argument,       NULL, 'q' },
        { "no-progress", no_argument,       NULL, 'P' },
        { "help",        no_argument,       NULL, 'h' },
        { NULL, 0, NULL, 0 },
    };
    const char *dir = NULL;
    bool as_json = false, quiet = false, progress = true;
    int ch;
    opterr = 0;
    optind = 1;
    while ((ch = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        switch (ch) {
        case 'm': dir = optarg; break;
        case 'j': as_json = true; break;
        case 'q': quiet = true; break;
        case 'P': progress = false; break;
        case 'h': print_usage(stdout); return QF_EXIT_OK;
        default: qf_cli_reject_option("dataset", ch, argc, argv); return QF_EXIT_USAGE;
        }
    }
    if (optind >= argc) {
        qf_errorf(QF_EUSAGE, "dataset: expected list, fetch or verify (see 'qfleet dataset "
                  "--help')");
        return QF_EXIT_USAGE;
    }
    if (!dir)
        dir = qf_manifest_default_dir();
    const char *action = argv[optind];
    char **names = argv + optind + 1;
    int n = argc - optind - 1;
    bool is_list = strcmp(action, "list") == 0, is_fetch = strcmp(action, "fetch") == 0;
    if ((as_json && !is_list) || ((quiet || !progress) && !is_fetch)) {
        qf_errorf(QF_EUSAGE, "dataset %s: %s applies to %s only", action,
                  as_json ? "--json" : quiet ? "--quiet" : "--no-progress",
                  as_json ? "list" : "fetch");
        return QF_EXIT_USAGE;
    }
    if (is_list) {
        if (n != 0) {
            qf_errorf(QF_EUSAGE, "dataset list: takes no names");
            return QF_EXIT_USAGE;
        }
        return do_list(dir, as_json);
    }
    if (is_fetch)
        return do_fetch(dir, names, n, quiet, progress);
    if (strcmp(action, "verify") == 0)
        return do_verify(dir, names, n);
    qf_errorf(QF_EUSAGE, "dataset: '%.80s' is not list, fetch or verify (see 'qfleet dataset "
              "--help')", action);
    return QF_EXIT_USAGE;
}
