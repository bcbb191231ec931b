/* fetch.c - a manifest's file into the cache over HTTP(S) with libcurl, verified (qf_fetch.h).
 *
 * One fetch, under an exclusive flock on CACHE/NAME/FILE.lock:
 *   1. FILE already there: done (it got there by the rename in step 4 only).
 *   2. FILE.part holds what an earlier attempt or process left; it is hashed as it stands
 *      (libsodium's streaming SHA-256) and the next request asks for the rest with a Range
 *      header. The server decides: 206 with a Content-Range starting where the part ends
 *      appends; 200 (no range support) truncates the part and starts over; 416 (the part is
 *      not a prefix it can continue) truncates and asks again from zero.
 *   3. Requests go to the manifest's URLs in order (mirrors). A transient failure (connect
 *      error, connect or low-speed timeout, partial transfer, 408, 429, 5xx) moves on and,
 *      after a round over all mirrors, waits backoff_ms (doubled each round, capped) before
 *      the next round, up to max_retries more rounds. 404/410, other 4xx, bad redirects,
 *      TLS verification failures and a body over the manifest's size are final.
 *   4. The complete part's size and hash are checked against the manifest (a mismatch
 *      deletes the part and names the URL, the expected and the actual hash), fsync'ed, its
 *      hash recorded in FILE.sha256 (sha256sum's format), and renamed to FILE; the folder is
 *      fsync'ed so the rename survives a crash.
 * Lock files stay behind on purpose: deleting one while another process waits on it would
 * let a third process lock a new file of the same name and race the second.
 *
 * Callers: cli/cmd_dataset.c, agent/jobs.c (in a job's child process). Not hot: the work is
 * the transfer and one hash pass; the write callback touches each byte once.
 */
#include "qf_fetch.h"

#include <assert.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <sodium.h>

#include "qf_err.h"
#include "qf_time.h"
#include "qf_version.h"

#define HASH_CHUNK (1u << 20)

/* ---- once per process --------------------------------------------------------------------- */

static pthread_once_t g_once = PTHREAD_ONCE_INIT;
static CURLcode g_curl_rc;
static int g_sodium_rc;

static void init_once(void)
{
    g_curl_rc = curl_global_init(CURL_GLOBAL_DEFAULT);
    g_sodium_rc = sodium_init();   /* 0 fresh, 1 already done, -1 failure */
}

static int init(char *why, size_t why_len)
{
    pthread_once(&g_once, init_once);
    if (g_curl_rc != CURLE_OK)
        return qf_whyf(QF_EUNSUP, why, why_len, "libcurl could not be initialized: %s",
                     curl_easy_strerror(g_curl_rc));
    if (g_sodium_rc < 0)
        return qf_whyf(QF_EUNSUP, why, why_len, "libsodium could not be initialized");
    return 0;
}

/* ---- options ------------------------------------------------------------------------------ */

/* An environment override: a base-10 integer in [lo, hi], else the default stays. */
static void env_long(const char *name, long lo, long hi, long *v)
{
    const char *s = getenv(name);
    if (!s || !*s || strspn(s, "0123456789") != strlen(s) || strlen(s) > 12)
        return;
    long x = strtol(s, NULL, 10);
    if (x >= lo && x <= hi)
        *v = x;
}

void qf_fetch_opts_default(qf_fetch_opts *o)
{
    assert(o);
    *o = (qf_fetch_opts){
        .cache_dir = NULL, .ca_file = NULL, .connect_timeout_ms = 30000,
        .low_speed_bytes = 1024, .low_speed_time_s = 30, .max_retries = 4, .backoff_ms = 1000,
        .backoff_max_ms = 30000, .max_redirects = 10, .progress = -1, .quiet = false,
    };
    long retries = o->max_retries;
    env_long("QF_FETCH_CONNECT_TIMEOUT_MS", 1, 600000, &o->connect_timeout_ms);
    env_long("QF_FETCH_LOW_SPEED_TIME", 1, 3600, &o->low_speed_time_s);
    env_long("QF_FETCH_LOW_SPEED_LIMIT", 1, 1L << 30, &o->low_speed_bytes);
    env_long("QF_FETCH_RETRIES", 0, 100, &retries);
    env_long("QF_FETCH_BACKOFF_MS", 0, 600000, &o->backoff_ms);
    o->max_retries = (int)retries;
    const char *ca = getenv("QF_FETCH_CA_FILE");
    if (ca && *ca)
        o->ca_file = ca;
}

void qf_fetch_opts_quiet(qf_fetch_opts *o)
{
    qf_fetch_opts_default(o);
    o->progress = 0;
    o->quiet = true;
}

/* ---- cache paths -------------------------------------------------------------------------- */

/* mkdir -p: every missing parent of path, then path. */
static int mkdir_p(const char *path, char *why, size_t why_len)
{
    char buf[QF_FETCH_PATH_MAX];
    size_t n = strlen(path);
    if (n == 0 || n >= sizeof buf)
        return qf_whyf(QF_ETOOBIG, why, why_len, "%.80s: cache path empty or too long", path);
    memcpy(buf, path, n + 1);
    for (size_t i = 1; i <= n; i++) {
        if (buf[i] != '/' && buf[i] != '\0')
            continue;
        char c = buf[i];
        buf[i] = '\0';
        if (mkdir(buf, 0755) != 0 && errno != EEXIST)
            return qf_whyf(QF_EIO, why, why_len, "%s: cannot create the cache folder: %s", buf,
                         strerror(errno));
        buf[i] = c;
    }
    struct stat st;
    if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
        return qf_whyf(QF_EIO, why, why_len, "%s: not a folder", path);
    return 0;
}

int qf_fetch_cache_dir(char *buf, size_t size, char *why, size_t why_len)
{
    assert(buf && size);
    const char *qf = getenv("QF_CACHE_DIR");
    const char *xdg = getenv("XDG_CACHE_HOME");
    const char *home = getenv("HOME");
    int n;
    if (qf && *qf)
        n = snprintf(buf, size, "%s", qf);
    else if (xdg && xdg[0] == '/')   /* the XDG spec: a relative value is to be ignored */
        n = snprintf(buf, size, "%s/quantfleet", xdg);
    else if (home && *home)
        n = snprintf(buf, size, "%s/.cache/quantfleet", home);
    else
        return qf_whyf(QF_EINVAL, why, why_len, "no cache folder: set QF_CACHE_DIR, "
                     "XDG_CACHE_HOME or HOME");
    if (n < 0 || (size_t)n >= size)
        return qf_whyf(QF_ETOOBIG, why, why_len, "the cache folder path is too long");
    return mkdir_p(buf, why, why_len);
}

int qf_fetch_cache_path(const qf_manifest *m, const char *cache_dir, char *buf, size_t size,
                        char *why, size_t why_len)
{
    assert(m && buf && size);
    if (m->kind == QF_MANIFEST_SYNTHETIC)
        return qf_whyf(QF_EINVAL, why, why_len, "%s: a synthetic dataset has no file (its "
                     "generator is %s)", m->name, m->generator);
    assert(qf_manifest_name_valid(m->name) && m->file[0]);   /* a loaded manifest */
    char dir[QF_FETCH_PATH_MAX];
    if (!cache_dir) {
        int err = qf_fetch_cache_dir(dir, sizeof dir, why, why_len);
        if (err)
            return err;
        cache_dir = dir;
    }
    int n = snprintf(buf, size, "%s/%s/%s", cache_dir, m->name, m->file);
    if (n < 0 || (size_t)n >= size)
        return qf_whyf(QF_ETOOBIG, why, why_len, "%s: the cache path is too long", m->name);
    return 0;
}

/* The paths one fetch uses, all in CACHE/NAME/. */
typedef struct paths {
    char dir[QF_FETCH_PATH_MAX];
    char final[QF_FETCH_PATH_MAX];
    char part[QF_FETCH_PATH_MAX + 8];
    char lock[QF_FETCH_PATH_MAX + 8];
    char sum[QF_FETCH_PATH_MAX + 8];
    char sum_tmp[QF_FETCH_PATH_MAX + 16];
} paths;

/* create: make CACHE/NAME if missing (a fetch); verify only looks. */
static int make_paths(const qf_manifest *m, const char *cache_dir, bool create, paths *p,
                      char *why, size_t why_len)
{
    int err = qf_fetch_cache_path(m, cache_dir, p->final, sizeof p->final, why, why_len);
    if (err)
        return err;
    snprintf(p->dir, sizeof p->dir, "%s", p->final);
    *strrchr(p->dir, '/') = '\0';
    snprintf(p->part, sizeof p->part, "%s.part", p->final);
    snprintf(p->lock, sizeof p->lock, "%s.lock", p->final);
    snprintf(p->sum, sizeof p->sum, "%s.sha256", p->final);
    snprintf(p->sum_tmp, sizeof p->sum_tmp, "%s.sha256.tmp", p->final);
    return create ? mkdir_p(p->dir, why, why_len) : 0;
}

/* ---- small file helpers ------------------------------------------------------------------- */

static void hex_of(const unsigned char digest[crypto_hash_sha256_BYTES], char hex[65])
{
    sodium_bin2hex(hex, 65, digest, crypto_hash_sha256_BYTES);
}

/* Feeds the first `bytes` bytes of fd (from offset 0) to st. */
static int hash_fd(int fd, uint64_t bytes, crypto_hash_sha256_state *st, const char *path,
                   char *why, size_t why_len)
{
    unsigned char *buf = malloc(HASH_CHUNK);
    if (!buf)
        return qf_whyf(QF_ENOMEM, why, why_len, "%s: out of memory for hashing", path);
    uint64_t off = 0;
    int err = 0;
    while (off < bytes) {
        size_t want = bytes - off < HASH_CHUNK ? (size_t)(bytes - off) : HASH_CHUNK;
        ssize_t r = pread(fd, buf, want, (off_t)off);
        if (r < 0 && errno == EINTR)
            continue;
        if (r <= 0) {
            err = qf_whyf(QF_EIO, why, why_len, "%s: read error at byte %" PRIu64 ": %s", path,
                        off, r < 0 ? strerror(errno) : "unexpected end of file");
            break;
        }
        crypto_hash_sha256_update(st, buf, (unsigned long long)r);
        off += (uint64_t)r;
    }
    free(buf);
    return err;
}

int qf_fetch_sha256_file(const char *path, char hex[65], uint64_t *bytes, char *why,
                         size_t why_len)
{
    assert(path && hex);
    int err = init(why, why_len);
    if (err)
        return err;
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return qf_whyf(errno == ENOENT ? QF_ENOENT : QF_EIO, why, why_len, "%s: cannot open: %s",
                     path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0) {
        err = qf_whyf(QF_EIO, why, why_len, "%s: cannot stat: %s", path, strerror(errno));
        close(fd);
        return err;
    }
    crypto_hash_sha256_state hs;
    crypto_hash_sha256_init(&hs);
    err = hash_fd(fd, (uint64_t)st.st_size, &hs, path, why, why_len);
    close(fd);
    if (err)
        return err;
    unsigned char digest[crypto_hash_sha256_BYTES];
    crypto_hash_sha256_final(&hs, digest);
    hex_of(digest, hex);
    if (bytes)
        *bytes = (uint64_t)st.st_size;
    return 0;
}

/* The hash recorded in FILE.sha256 ("HEX  FILE\n"), or "" when there is none or it is not
 * one we wrote. */
static void read_sum(const char *sum_path, char hex[65])
{
    hex[0] = '\0';
    FILE *f = fopen(sum_path, "r");
    if (!f)
        return;
    char line[64 + 2 + QF_MANIFEST_FILE_MAX + 4];
    if (fgets(line, sizeof line, f) && strspn(line, "0123456789abcdef") == 64 &&
        line[64] == ' ') {
        memcpy(hex, line, 64);
        hex[64] = '\0';
    }
    fclose(f);
}

static int fsync_dir(const char *dir)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = fsync(fd);
    close(fd);
    return rc;
}

/* Records hex in FILE.sha256 atomically (write a temporary, rename it over). */
static int write_sum(const paths *p, const qf_manifest *m, const char hex[65], char *why,
                     size_t why_len)
{
    FILE *f = fopen(p->sum_tmp, "w");
    if (!f)
        return qf_whyf(QF_EIO, why, why_len, "%s: cannot create: %s", p->sum_tmp,
                     strerror(errno));
    bool ok = fprintf(f, "%s  %s\n", hex, m->file) > 0;
    ok = fflush(f) == 0 && ok;
    ok = fsync(fileno(f)) == 0 && ok;
    ok = fclose(f) == 0 && ok;
    if (!ok || rename(p->sum_tmp, p->sum) != 0) {
        int e = errno;
        unlink(p->sum_tmp);
        return qf_whyf(QF_EIO, why, why_len, "%s: cannot write: %s", p->sum, strerror(e));
    }
    return 0;
}

/* Takes the exclusive lock, saying so when another process holds it. */
static int lock_take(const paths *p, const qf_manifest *m, bool quiet, int *fd_out,
                     char *why, size_t why_len)
{
    int fd = open(p->lock, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return qf_whyf(QF_EIO, why, why_len, "%s: cannot open the lock file: %s", p->lock,
                     strerror(errno));
    if (flock(fd, LOCK_EX | LOCK_NB) != 0) {
        if (errno != EWOULDBLOCK) {
            int e = errno;
            close(fd);
            return qf_whyf(QF_EIO, why, why_len, "%s: cannot lock: %s", p->lock, strerror(e));
        }
        if (!quiet)
            fprintf(stderr, "qfleet: dataset %s: waiting for another fetch of it to finish "
                    "(lock %s)\n", m->name, p->lock);
        int rc;
        while ((rc = flock(fd, LOCK_EX)) != 0 && errno == EINTR)
            ;
        if (rc != 0) {
            int e = errno;
            close(fd);
            return qf_whyf(QF_EIO, why, why_len, "%s: cannot lock: %s", p->lock, strerror(e));
        }
    }
    *fd_out = fd;
    return 0;
}

static void sleep_ms(long ms)
{
    struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (ms % 1000) * 1000000L };
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* ---- one transfer ------------------------------------------------------------------------- */

/* What one request's callbacks share with the code around curl_easy_perform. */
typedef struct xfer {
    const qf_manifest *m;
    const char *part_path;
    int         fd;                 /* FILE.part, positioned at its end */
    crypto_hash_sha256_state *hs;   /* hash of the part's bytes so far */
    uint64_t   *have;               /* bytes in the part */
    uint64_t    asked_from;         /* the Range start sent (0: no Range) */
    uint64_t    base;               /* bytes before this response's body: asked_from when
                                       the server continues the part, else 0 */
    int64_t     range_start;        /* Content-Range start of the current response, -1 none */
    bool        decided;            /* the first body byte decided append vs. start over */
    int         abort_err;          /* why a callback stopped the transfer (0: curl's reason) */
    char        abort_why[256];
    /* progress */
    bool        bar;
    bool        drawn;              /* the bar is on screen: end it with a newline */
    double      last_draw;
    double      t0;
} xfer;

static void part_reset(xfer *x)
{
    if (ftruncate(x->fd, 0) != 0 || lseek(x->fd, 0, SEEK_SET) != 0) {
        x->abort_err = QF_EIO;
        snprintf(x->abort_why, sizeof x->abort_why, "%s: cannot truncate: %s", x->part_path,
                 strerror(errno));
    }
    crypto_hash_sha256_init(x->hs);
    *x->have = 0;
}

static size_t on_header(char *data, size_t size, size_t n, void *ud)
{
    xfer *x = ud;
    size_t len = size * n;
    char line[160];
    size_t k = len < sizeof line - 1 ? len : sizeof line - 1;
    memcpy(line, data, k);
    line[k] = '\0';
    if (strncmp(line, "HTTP/", 5) == 0) {
        x->range_start = -1;   /* a new response (after a redirect, or a 100 Continue) */
    } else if (strncasecmp(line, "Content-Range:", 14) == 0) {
        unsigned long long s;
        if (sscanf(line + 14, " bytes %llu-", &s) == 1)
            x->range_start = (int64_t)s;
    }
    return len;
}

/* The first body byte of the final response: append to the part, or start it over. */
static void decide(xfer *x, CURL *h)
{
    x->decided = true;
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    if (code == 206 && x->asked_from > 0 && x->range_start == (int64_t)x->asked_from) {
        x->base = x->asked_from;                         /* the rest, where the part ends */
        return;
    }
    if (x->asked_from > 0 || *x->have > 0)
        part_reset(x);            /* the server ignored the range: the body is the whole file */
    if (code == 206) {        /* a range we did not ask for, or from the wrong place */
        x->abort_err = QF_EPROTO;
        snprintf(x->abort_why, sizeof x->abort_why, "HTTP 206 with a Content-Range that does "
                 "not continue the %" PRIu64 " bytes already here", x->asked_from);
        return;
    }
    curl_off_t cl = -1;
    curl_easy_getinfo(h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &cl);
    if (cl > 0 && (uint64_t)cl > x->m->size) {
        x->abort_err = QF_ETOOBIG;
        snprintf(x->abort_why, sizeof x->abort_why, "the server announces %" PRId64 " bytes, "
                 "over the manifest's %s %" PRIu64, (int64_t)cl,
                 x->m->size_exact ? "size" : "max_size", x->m->size);
    }
}

static size_t on_body(char *data, size_t size, size_t n, void *ud)
{
    xfer *x = ud;
    size_t len = size * n;
    if (x->abort_err)
        return 0;
    if (*x->have + len > x->m->size) {
        x->abort_err = QF_ETOOBIG;
        snprintf(x->abort_why, sizeof x->abort_why, "the body grows past the manifest's %s "
                 "of %" PRIu64 " bytes", x->m->size_exact ? "size" : "max_size", x->m->size);
        return 0;
    }
    for (size_t off = 0; off < len; ) {
        ssize_t w = write(x->fd, data + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w <= 0) {
            x->abort_err = QF_EIO;
            snprintf(x->abort_why, sizeof x->abort_why, "%s: write error: %s", x->part_path,
                     w < 0 ? strerror(errno) : "no progress");
            return 0;
        }
        off += (size_t)w;
    }
    crypto_hash_sha256_update(x->hs, (const unsigned char *)data, len);
    *x->have += len;
    return len;
}

/* The body callback needs the handle to read the status; curl passes only one pointer. */
typedef struct body_ctx {
    xfer *x;
    CURL *h;
} body_ctx;

static size_t on_body_h(char *data, size_t size, size_t n, void *ud)
{
    body_ctx *b = ud;
    if (!b->x->decided)
        decide(b->x, b->h);
    return on_body(data, size, n, b->x);
}

static void bytes_text(char *buf, size_t size, double b)
{
    if (b >= 1024.0 * 1024 * 1024)
        snprintf(buf, size, "%.2f GiB", b / (1024.0 * 1024 * 1024));
    else
        snprintf(buf, size, "%.1f MiB", b / (1024.0 * 1024));
}

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    (void)ultotal;
    (void)ulnow;
    xfer *x = ud;
    double now = qf_time_mono();
    if (!x->bar || dlnow <= 0 || now - x->last_draw < 0.1)
        return 0;                  /* nothing to show before the first byte */
    x->last_draw = now;
    x->drawn = true;
    double base = (double)x->base;
    double got = base + (double)dlnow, total = dltotal > 0 ? base + (double)dltotal : 0;
    double rate = now > x->t0 ? (double)dlnow / (now - x->t0) : 0;
    char g[32], t[32], r[32];
    bytes_text(g, sizeof g, got);
    bytes_text(t, sizeof t, total > 0 ? total : (double)x->m->size);
    bytes_text(r, sizeof r, rate);
    int width = 30, fill = total > 0 ? (int)(width * got / total) : 0;
    if (fill > width)
        fill = width;
    fprintf(stderr, "\r%-24.24s [%.*s%*s] %5.1f%% %s / %s  %s/s   ", x->m->name, fill,
            "##############################", width - fill, "",
            total > 0 ? 100.0 * got / total : 0.0, g, t, r);
    return 0;
}

/* How one request ended. */
typedef enum outcome { OK, TRANSIENT, FINAL } outcome;

/* One request to url; appends to or restarts the part. The reason for anything but OK is in
 * why, starting with the URL. */
static outcome transfer(const qf_fetch_opts *o, const char *url, xfer *x, int *err, char *why,
                        size_t why_len)
{
    CURL *h = curl_easy_init();
    if (!h) {
        *err = qf_whyf(QF_ENOMEM, why, why_len, "%s: libcurl could not make a handle", url);
        return FINAL;
    }
    char errbuf[CURL_ERROR_SIZE] = "";
    char range[32];
    body_ctx bc = { .x = x, .h = h };
    x->asked_from = *x->have;
    x->base = 0;
    x->range_start = -1;
    x->decided = false;
    x->abort_err = 0;
    x->abort_why[0] = '\0';
    x->t0 = qf_time_mono();
    x->last_draw = 0;
    x->drawn = false;

    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_FOLLOWLOCATION, 1L);
    curl_easy_setopt(h, CURLOPT_MAXREDIRS, o->max_redirects);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS_STR, "http,https");
#else
    curl_easy_setopt(h, CURLOPT_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
    curl_easy_setopt(h, CURLOPT_REDIR_PROTOCOLS, (long)(CURLPROTO_HTTP | CURLPROTO_HTTPS));
#endif
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT_MS, o->connect_timeout_ms);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, o->low_speed_bytes);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, o->low_speed_time_s);
    curl_easy_setopt(h, CURLOPT_FAILONERROR, 1L);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "quantfleet/" QF_VERSION);
    if (o->ca_file)
        curl_easy_setopt(h, CURLOPT_CAINFO, o->ca_file);
    curl_easy_setopt(h, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(h, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body_h);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &bc);
    if (x->asked_from > 0) {
        /* CURLOPT_RANGE, not RESUME_FROM: curl then passes a 200 through (the server has no
         * ranges) instead of failing, and decide() starts the part over. */
        snprintf(range, sizeof range, "%" PRIu64 "-", x->asked_from);
        curl_easy_setopt(h, CURLOPT_RANGE, range);
    }
    if (x->bar) {
        curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(h, CURLOPT_XFERINFODATA, x);
    }

    CURLcode rc = curl_easy_perform(h);
    if (x->drawn) {
        if (rc == CURLE_OK) {      /* the last state, not the last throttled one */
            curl_off_t now = 0, total = 0;
            curl_easy_getinfo(h, CURLINFO_SIZE_DOWNLOAD_T, &now);
            curl_easy_getinfo(h, CURLINFO_CONTENT_LENGTH_DOWNLOAD_T, &total);
            x->last_draw = 0;
            on_progress(x, total > 0 ? total : now, now, 0, 0);
        }
        fputc('\n', stderr);
    }
    long code = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
    char *eff = NULL;
    long redirects = 0;
    curl_easy_getinfo(h, CURLINFO_EFFECTIVE_URL, &eff);
    curl_easy_getinfo(h, CURLINFO_REDIRECT_COUNT, &redirects);
    char where[QF_MANIFEST_URL_MAX * 2 + 32];
    if (eff && redirects > 0)
        snprintf(where, sizeof where, "%s (redirected to %s)", url, eff);
    else
        snprintf(where, sizeof where, "%s", url);
    const char *detail = errbuf[0] ? errbuf : curl_easy_strerror(rc);

    outcome out;
    if (rc == CURLE_OK) {
        if (!x->decided)       /* an empty body: still decides whether the part is kept */
            decide(x, h);
        if (x->abort_err) {
            *err = qf_whyf(x->abort_err, why, why_len, "%s: %s", where, x->abort_why);
            out = FINAL;
        } else {
            out = OK;
        }
    } else if (x->abort_err) {
        *err = qf_whyf(x->abort_err, why, why_len, "%s: %s", where, x->abort_why);
        out = x->abort_err == QF_EPROTO ? TRANSIENT : FINAL;
    } else if (rc == CURLE_HTTP_RETURNED_ERROR) {
        if (code == 416 && x->asked_from > 0) {
            /* The part is not a prefix the server can continue (it is complete, or longer
             * than the file now is): start over from byte 0. */
            part_reset(x);
            *err = qf_whyf(QF_EPROTO, why, why_len, "%s: HTTP 416 for the range from byte %"
                         PRIu64 "; starting over", where, x->asked_from);
            out = TRANSIENT;
        } else if (code == 404 || code == 410) {
            *err = qf_whyf(QF_ENOENT, why, why_len, "%s: HTTP %ld (not found)", where, code);
            out = FINAL;
        } else if (code == 408 || code == 429 || code >= 500) {
            *err = qf_whyf(QF_ENET, why, why_len, "%s: HTTP %ld (server error)", where, code);
            out = TRANSIENT;
        } else {
            *err = qf_whyf(QF_EPROTO, why, why_len, "%s: HTTP %ld", where, code);
            out = FINAL;
        }
    } else {
        switch (rc) {
        case CURLE_OPERATION_TIMEDOUT:
            *err = qf_whyf(QF_ETIMEDOUT, why, why_len, "%s: %s (connect timeout %ld ms, low "
                         "speed limit %ld B/s for %ld s)", where, detail, o->connect_timeout_ms,
                         o->low_speed_bytes, o->low_speed_time_s);
            out = TRANSIENT;
            break;
        case CURLE_COULDNT_CONNECT: case CURLE_COULDNT_RESOLVE_HOST:
        case CURLE_COULDNT_RESOLVE_PROXY: case CURLE_PARTIAL_FILE: case CURLE_RECV_ERROR:
        case CURLE_SEND_ERROR: case CURLE_GOT_NOTHING: case CURLE_SSL_CONNECT_ERROR:
        case CURLE_HTTP2: case CURLE_HTTP2_STREAM: case CURLE_WEIRD_SERVER_REPLY:
            *err = qf_whyf(QF_ENET, why, why_len, "%s: %s", where, detail);
            out = TRANSIENT;
            break;
        case CURLE_PEER_FAILED_VERIFICATION: case CURLE_SSL_CACERT_BADFILE:
            *err = qf_whyf(QF_ENET, why, why_len, "%s: %s (the server's TLS certificate is not "
                         "trusted%s%s)", where, detail, o->ca_file ? " by " : "",
                         o->ca_file ? o->ca_file : "");
            out = FINAL;
            break;
        case CURLE_TOO_MANY_REDIRECTS: case CURLE_UNSUPPORTED_PROTOCOL:
            *err = qf_whyf(QF_EPROTO, why, why_len, "%s: %s", where, detail);
            out = FINAL;
            break;
        default:
            *err = qf_whyf(QF_ENET, why, why_len, "%s: %s", where, detail);
            out = FINAL;
            break;
        }
    }
    curl_easy_cleanup(h);
    return out;
}

/* ---- the fetch ------------------------------------------------------------------------------ */

/* Downloads into the part and, verified, renames it to the final path. Lock held. */
static int download(const qf_manifest *m, const qf_fetch_opts *o, const paths *p,
                    qf_fetch_result *out, char *why, size_t why_len)
{
    int fd = open(p->part, O_RDWR | O_CREAT | O_CLOEXEC, 0644);
    if (fd < 0)
        return qf_whyf(QF_EIO, why, why_len, "%s: cannot open: %s", p->part, strerror(errno));
    crypto_hash_sha256_state hs;
    crypto_hash_sha256_init(&hs);
    uint64_t have = 0;
    int err = 0;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        err = qf_whyf(QF_EIO, why, why_len, "%s: cannot stat: %s", p->part, strerror(errno));
        goto out;
    }
    have = (uint64_t)st.st_size;
    if (have > m->size) {
        have = 0;                  /* cannot be a prefix of the file: start over */
        if (ftruncate(fd, 0) != 0) {
            err = qf_whyf(QF_EIO, why, why_len, "%s: cannot truncate: %s", p->part,
                        strerror(errno));
            goto out;
        }
    }
    if (have > 0 && (err = hash_fd(fd, have, &hs, p->part, why, why_len)) != 0)
        goto out;
    if (lseek(fd, (off_t)have, SEEK_SET) < 0) {
        err = qf_whyf(QF_EIO, why, why_len, "%s: cannot seek: %s", p->part, strerror(errno));
        goto out;
    }

    /* A part of the full size that already hashes right (a crash came between the download
     * and the rename): nothing to transfer. */
    bool done = false;
    if (m->size_exact && have == m->size && !m->unverified) {
        crypto_hash_sha256_state probe = hs;
        unsigned char d[crypto_hash_sha256_BYTES];
        char h[65];
        crypto_hash_sha256_final(&probe, d);
        hex_of(d, h);
        done = strcmp(h, m->sha256) == 0;
    }

    xfer x = { .m = m, .part_path = p->part, .fd = fd, .hs = &hs, .have = &have };
    x.bar = o->progress > 0 || (o->progress < 0 && isatty(STDERR_FILENO));
    long backoff = o->backoff_ms;
    int attempts = 0;
    const char *served = done ? "(a complete earlier download)" : NULL;
    char last[1024] = "";
    bool stop = false;             /* a failure no other mirror or retry can fix */
    for (int round = 0; round <= o->max_retries && !done && !stop; round++) {
        bool transient = false;
        for (int u = 0; u < m->n_urls && !done && !stop; u++) {
            attempts++;
            outcome oc = transfer(o, m->urls[u], &x, &err, last, sizeof last);
            if (oc == OK) {
                done = true;
                served = m->urls[u];
                err = 0;
            } else if (oc == TRANSIENT) {
                transient = true;
            } else {
                stop = err == QF_ETOOBIG || err == QF_EIO;   /* the file or the disk */
            }
        }
        if (done || stop || !transient)
            break;                 /* !transient: every mirror failed for good */
        if (round < o->max_retries) {
            if (!o->quiet)
                fprintf(stderr, "qfleet: dataset %s: %s; retrying in %.1f s (round %d of "
                        "%d)\n", m->name, last, backoff / 1000.0, round + 2,
                        o->max_retries + 1);
            sleep_ms(backoff);
            backoff = backoff * 2 > o->backoff_max_ms ? o->backoff_max_ms : backoff * 2;
        }
    }
    if (!done) {
        if (err == QF_ETOOBIG || have == 0)
            unlink(p->part);       /* not the manifest's bytes, or none: nothing to resume */
        char n[48] = "";
        if (attempts > 1)
            snprintf(n, sizeof n, " (gave up after %d requests)", attempts);
        err = qf_whyf(err, why, why_len, "dataset %s: %s%s", m->name, last, n);
        goto out;
    }

    /* Complete: size, then hash, then rename. */
    unsigned char digest[crypto_hash_sha256_BYTES];
    char hex[65];
    crypto_hash_sha256_final(&hs, digest);
    hex_of(digest, hex);
    if (m->size_exact && have != m->size) {
        unlink(p->part);
        err = qf_whyf(QF_EPARSE, why, why_len, "dataset %s: %s: got %" PRIu64 " bytes, the "
                    "manifest says %" PRIu64 "; deleted the download", m->name, served, have,
                    m->size);
        goto out;
    }
    if (!m->unverified && strcmp(hex, m->sha256) != 0) {
        unlink(p->part);
        err = qf_whyf(QF_EPARSE, why, why_len, "dataset %s: %s: sha256 mismatch: expected %s, "
                    "got %s; deleted the download", m->name, served, m->sha256, hex);
        goto out;
    }
    if (fsync(fd) != 0) {
        err = qf_whyf(QF_EIO, why, why_len, "%s: fsync: %s", p->part, strerror(errno));
        goto out;
    }
    if ((err = write_sum(p, m, hex, why, why_len)) != 0)
        goto out;
    if (rename(p->part, p->final) != 0) {
        err = qf_whyf(QF_EIO, why, why_len, "%s: cannot rename to %s: %s", p->part, p->final,
                    strerror(errno));
        goto out;
    }
    fsync_dir(p->dir);   /* best effort: the file is complete and verified either way */
    snprintf(out->path, sizeof out->path, "%s", p->final);
    snprintf(out->sha256, sizeof out->sha256, "%s", hex);
    snprintf(out->url, sizeof out->url, "%s", served);
    out->bytes = have;
    out->downloaded = true;
    out->attempts = attempts;
out:
    close(fd);
    return err;
}

/* The file is in place: fill *out from it, or say why it cannot be used. */
static int use_cached(const qf_manifest *m, const paths *p, const struct stat *st,
                      qf_fetch_result *out, char *why, size_t why_len)
{
    uint64_t size = (uint64_t)st->st_size;
    if ((m->size_exact && size != m->size) || size > m->size)
        return qf_whyf(QF_EPARSE, why, why_len, "%s: %" PRIu64 " bytes, the manifest says %s %"
                     PRIu64, p->final, size, m->size_exact ? "" : "at most", m->size);
    char rec[65];
    read_sum(p->sum, rec);
    if (!m->unverified && rec[0] && strcmp(rec, m->sha256) != 0)
        return qf_whyf(QF_EPARSE, why, why_len, "%s: recorded sha256 %s is not the manifest's "
                     "%s (the manifest changed?)", p->final, rec, m->sha256);
    if (m->unverified && !rec[0]) {
        /* Put there by hand: hash it once, so `verify` has something to compare with. */
        int err = qf_fetch_sha256_file(p->final, rec, NULL, why, why_len);
        if (err || (err = write_sum(p, m, rec, why, why_len)) != 0)
            return err;
    }
    snprintf(out->path, sizeof out->path, "%s", p->final);
    snprintf(out->sha256, sizeof out->sha256, "%s", m->unverified ? rec : m->sha256);
    out->bytes = size;
    return 0;
}

int qf_fetch(const qf_manifest *m, const qf_fetch_opts *opts, qf_fetch_result *out, char *why,
             size_t why_len)
{
    assert(m && out);
    memset(out, 0, sizeof *out);
    qf_fetch_opts o;
    if (opts)
        o = *opts;
    else
        qf_fetch_opts_default(&o);
    int err = init(why, why_len);
    if (err)
        return err;
    paths p;
    if ((err = make_paths(m, o.cache_dir, true, &p, why, why_len)) != 0)
        return err;
    int lock_fd;
    if ((err = lock_take(&p, m, o.quiet, &lock_fd, why, why_len)) != 0)
        return err;

    struct stat st;
    if (stat(p.final, &st) == 0) {
        char cwhy[512];
        if ((err = use_cached(m, &p, &st, out, cwhy, sizeof cwhy)) == 0)
            goto out;
        /* A file that does not fit the manifest is not kept: fetch it again. */
        if (!o.quiet)
            fprintf(stderr, "qfleet: dataset %s: %s; deleting it and fetching again\n",
                    m->name, cwhy);
        unlink(p.final);
        unlink(p.sum);
    } else if (errno != ENOENT) {
        err = qf_whyf(QF_EIO, why, why_len, "%s: cannot stat: %s", p.final, strerror(errno));
        goto out;
    }
    err = download(m, &o, &p, out, why, why_len);
out:
    close(lock_fd);   /* releases the flock */
    if (err)
        memset(out, 0, sizeof *out);
    return err;
}

int qf_fetch_verify(const qf_manifest *m, const char *cache_dir, qf_fetch_result *out,
                    char *why, size_t why_len)
{
    assert(m && out);
    memset(out, 0, sizeof *out);
    int err = init(why, why_len);
    if (err)
        return err;
    paths p;
    if ((err = make_paths(m, cache_dir, false, &p, why, why_len)) != 0)
        return err;
    struct stat st;
    if (stat(p.final, &st) != 0)    /* nothing to lock or create for a file never fetched */
        return qf_whyf(QF_ENOENT, why, why_len, "dataset %s: not in the cache (%s); `qfleet "
                     "dataset fetch %s` downloads it", m->name, p.final, m->name);
    int lock_fd;
    if ((err = lock_take(&p, m, true, &lock_fd, why, why_len)) != 0)
        return err;
    char hex[65], rec[65];
    uint64_t bytes = 0;
    err = qf_fetch_sha256_file(p.final, hex, &bytes, why, why_len);
    if (err == QF_ENOENT) {
        err = qf_whyf(QF_ENOENT, why, why_len, "dataset %s: not in the cache (%s); `qfleet "
                    "dataset fetch %s` downloads it", m->name, p.final, m->name);
        goto out;
    }
    if (err)
        goto out;
    read_sum(p.sum, rec);
    const char *want = m->unverified ? rec : m->sha256;
    bool size_bad = (m->size_exact && bytes != m->size) || bytes > m->size;
    if (size_bad || (want[0] && strcmp(hex, want) != 0)) {
        unlink(p.final);
        unlink(p.sum);
        if (size_bad)
            err = qf_whyf(QF_EPARSE, why, why_len, "dataset %s: %s: %" PRIu64 " bytes, the "
                        "manifest says %s%" PRIu64 "; deleted it", m->name, p.final, bytes,
                        m->size_exact ? "" : "at most ", m->size);
        else
            err = qf_whyf(QF_EPARSE, why, why_len, "dataset %s: %s: sha256 mismatch: expected "
                        "%s, got %s; deleted it", m->name, p.final, want, hex);
        goto out;
    }
    if (!want[0] && (err = write_sum(&p, m, hex, why, why_len)) != 0)
        goto out;
    snprintf(out->path, sizeof out->path, "%s", p.final);
    snprintf(out->sha256, sizeof out->sha256, "%s", hex);
    out->bytes = bytes;
out:
    close(lock_fd);
    return err;
}
