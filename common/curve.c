/* curve.c - CurveZMQ for the fleet: key files, fingerprints, socket setup, the ZAP handler.
 *
 * Invariants: a key read from a file is 40 Z85 characters that decode to 32 bytes; a secret
 * file's public key is the one its secret key derives (zmq_curve_public), so a hand-edited pair
 * is refused at start-up instead of failing every handshake later; a key file is written
 * through a temp file and a rename, never in place. The ZAP thread owns its REP socket and its
 * allowlist; the only state it shares is the refusal counter (atomic) and the stop flag.
 * libzmq does the cryptography (CURVE, libsodium inside); this file decides who is let in.
 * Called by the coordinator (server, ZAP), the agent and the client commands (client, monitor)
 * and `qfleet keygen`. Not hot: once per socket, and once per connection in the ZAP thread.
 */
#include "qf_curve.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include <sodium.h>
#include <zmq.h>

#include "qf_err.h"

#define KEY_FILE_MAX      4096   /* a key file is a few lines: anything bigger is not one */
#define ZAP_ENDPOINT      "inproc://zeromq.zap.01"   /* fixed by RFC 27 */
#define ZAP_DOMAIN        "qfleet"
#define ZAP_POLL_MS       100    /* how often the thread looks at its stop flag */
#define ZAP_MAX_FRAMES    16     /* a request has 7 (CURVE: 6 + 1 credential) */
#define ZAP_LOG_SLOTS     32     /* refused keys remembered to keep the log quiet */
#define ZAP_LOG_EVERY_S   60.0   /* one line per refused key and address per minute */
#define ZAP_RESCAN_MIN_S  1.0    /* an unknown key makes us re-read the folder at most this often */
#define KEY_NAME_MAX      64

static const char k_z85_chars[] =
    "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";

/* ---- keys and fingerprints --------------------------------------------------------------- */

void qf_curve_fingerprint(const uint8_t key[32], char out[QF_CURVE_FP_SIZE])
{
    uint8_t h[crypto_hash_sha256_BYTES];
    crypto_hash_sha256(h, key, 32);
    int o = snprintf(out, QF_CURVE_FP_SIZE, "sha256:");
    for (int i = 0; i < 8; i++)
        o += snprintf(out + o, QF_CURVE_FP_SIZE - (size_t)o, "%02x", h[i]);
}

/* 40 Z85 characters that decode to 32 bytes. */
static bool z85_key(const char *z85, uint8_t raw[32])
{
    return strlen(z85) == QF_CURVE_Z85_LEN && strspn(z85, k_z85_chars) == QF_CURVE_Z85_LEN &&
           zmq_z85_decode(raw, z85) != NULL;
}

int qf_curve_fingerprint_z85(const char *z85, char out[QF_CURVE_FP_SIZE])
{
    uint8_t raw[32];
    if (!z85_key(z85, raw))
        return QF_EINVAL;
    qf_curve_fingerprint(raw, out);
    return 0;
}

/* ---- key files --------------------------------------------------------------------------- */

/* Reads a whole small file into buf (NUL-terminated). */
static int read_small(const char *path, char *buf, size_t size, struct stat *st)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return qf_errorf(errno == ENOENT ? QF_ENOENT : QF_EIO, "key file %s: %s", path,
                         strerror(errno));
    int err = 0;
    if (fstat(fd, st) != 0 || !S_ISREG(st->st_mode)) {
        err = qf_errorf(QF_EINVAL, "key file %s: not a regular file", path);
    } else if ((size_t)st->st_size >= size) {
        err = qf_errorf(QF_ETOOBIG, "key file %s: %lld bytes, not a key file", path,
                        (long long)st->st_size);
    } else {
        size_t n = 0;
        ssize_t r;
        while (n + 1 < size && (r = read(fd, buf + n, size - 1 - n)) != 0) {
            if (r < 0 && errno == EINTR)
                continue;
            if (r < 0) {
                err = qf_errorf(QF_EIO, "key file %s: %s", path, strerror(errno));
                break;
            }
            n += (size_t)r;
        }
        buf[n] = 0;
        if (!err && strlen(buf) != n)
            err = qf_errorf(QF_EPARSE, "key file %s: holds a NUL byte", path);
    }
    close(fd);
    return err;
}

/* Parses `name = "Z85"` lines (and # comments) into pub and sec; the secret-key line is
 * required when need_secret. Every key found is checked to be a key. */
static int parse_keys(const char *path, char *text, char pub[QF_CURVE_Z85_LEN + 1],
                      char sec[QF_CURVE_Z85_LEN + 1], bool need_secret)
{
    int line = 0;
    bool have_pub = false, have_sec = false;
    for (char *save = NULL, *l = strtok_r(text, "\n", &save); l; l = strtok_r(NULL, "\n", &save)) {
        line++;
        l += strspn(l, " \t\r");
        size_t n = strlen(l);
        while (n && (l[n - 1] == ' ' || l[n - 1] == '\t' || l[n - 1] == '\r'))
            l[--n] = 0;
        if (!n || l[0] == '#')
            continue;
        size_t k = strcspn(l, " \t=");
        char *v = l + k;
        v += strspn(v, " \t");
        bool is_pub = k == 10 && strncmp(l, "public-key", 10) == 0;
        bool is_sec = k == 10 && strncmp(l, "secret-key", 10) == 0;
        char *dst = is_pub ? pub : is_sec ? sec : NULL;
        bool *seen = is_pub ? &have_pub : &have_sec;
        if (!dst)
            return qf_errorf(QF_EPARSE, "key file %s: line %d: expected public-key = \"...\" or "
                             "secret-key = \"...\"", path, line);
        if (*seen)
            return qf_errorf(QF_EPARSE, "key file %s: line %d: %.10s given twice", path, line, l);
        if (*v != '=')
            return qf_errorf(QF_EPARSE, "key file %s: line %d: expected '=' after %.10s", path,
                             line, l);
        v++;
        v += strspn(v, " \t");
        size_t vl = strlen(v);
        uint8_t raw[32];
        if (vl != QF_CURVE_Z85_LEN + 2 || v[0] != '"' || v[vl - 1] != '"')
            return qf_errorf(QF_EPARSE, "key file %s: line %d: a key is 40 Z85 characters in "
                             "double quotes", path, line);
        memcpy(dst, v + 1, QF_CURVE_Z85_LEN);
        dst[QF_CURVE_Z85_LEN] = 0;
        if (!z85_key(dst, raw))
            return qf_errorf(QF_EPARSE, "key file %s: line %d: not a Z85-encoded CURVE key", path,
                             line);
        *seen = true;
    }
    if (!have_pub)
        return qf_errorf(QF_EPARSE, "key file %s: no public-key line (is it a key written by "
                         "qfleet keygen?)", path);
    if (need_secret && !have_sec)
        return qf_errorf(QF_EPARSE, "key file %s: no secret-key line: this is a public key; "
                         "give the .secret file", path);
    return 0;
}

int qf_curve_read_secret(const char *path, qf_curve_keypair *out)
{
    char text[KEY_FILE_MAX];
    struct stat st;
    int err = read_small(path, text, sizeof text, &st);
    if (err)
        return err;
    qf_curve_keypair kp;
    memset(&kp, 0, sizeof kp);
    err = parse_keys(path, text, kp.public_z85, kp.secret_z85, true);
    sodium_memzero(text, sizeof text);
    /* like ssh: a secret others can read is no longer secret; a group may read it, so that a
     * service group (or a Kubernetes fsGroup) can hand it to the daemon */
    if (!err && (st.st_mode & (S_IROTH | S_IWOTH | S_IXOTH | S_IWGRP)))
        err = qf_errorf(QF_EINVAL, "key file %s: mode %04o lets others read or write it; "
                        "chmod 600 %s (and make a new key pair if it leaked)", path,
                        (unsigned)(st.st_mode & 07777), path);
    if (err) {
        sodium_memzero(&kp, sizeof kp);
        return err;
    }
    char derived[QF_CURVE_Z85_LEN + 1];
    if (zmq_curve_public(derived, kp.secret_z85) != 0 ||
        strcmp(derived, kp.public_z85) != 0) {
        sodium_memzero(&kp, sizeof kp);
        return qf_errorf(QF_EINVAL, "key file %s: its public key is not the one its secret key "
                         "gives: the file was edited; make a new pair with qfleet keygen", path);
    }
    *out = kp;
    sodium_memzero(&kp, sizeof kp);
    return 0;
}

int qf_curve_read_public(const char *path, char z85[QF_CURVE_Z85_LEN + 1])
{
    char text[KEY_FILE_MAX];
    struct stat st;
    int err = read_small(path, text, sizeof text, &st);
    if (err)
        return err;
    char sec[QF_CURVE_Z85_LEN + 1] = "";
    err = parse_keys(path, text, z85, sec, false);
    sodium_memzero(text, sizeof text);
    sodium_memzero(sec, sizeof sec);
    return err;
}

/* Writes text to path via a temp file in the same folder: mode, fsync, then rename (overwrite)
 * or link (which fails if path exists, so two keygens cannot both win). */
static int write_atomic(const char *path, const char *text, mode_t mode, bool overwrite)
{
    char tmp[PATH_MAX];
    if (snprintf(tmp, sizeof tmp, "%s.tmp.XXXXXX", path) >= (int)sizeof tmp)
        return qf_errorf(QF_EINVAL, "keygen: path %s is too long", path);
    int fd = mkstemp(tmp);      /* created 0600: the secret is never readable by others */
    if (fd < 0)
        return qf_errorf(QF_EIO, "keygen: cannot create a file next to %s: %s", path,
                         strerror(errno));
    size_t len = strlen(text), done = 0;
    int err = fchmod(fd, mode) == 0 ? 0 : errno;
    while (!err && done < len) {
        ssize_t w = write(fd, text + done, len - done);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0)
            err = errno;
        else
            done += (size_t)w;
    }
    if (!err && fsync(fd) != 0)
        err = errno;
    if (close(fd) != 0 && !err)
        err = errno;
    if (!err) {
        if (overwrite ? rename(tmp, path) != 0 : link(tmp, path) != 0)
            err = errno;
    }
    unlink(tmp);                /* after link: the temp name; after rename: already gone */
    if (err == EEXIST)
        return qf_errorf(QF_EEXIST, "keygen: %s exists; keep it, or give --force to replace it",
                         path);
    if (err)
        return qf_errorf(QF_EIO, "keygen: cannot write %s: %s", path, strerror(err));
    return 0;
}

int qf_curve_keygen(const char *base, bool overwrite, qf_curve_keypair *kp_out)
{
    assert(base);
    if (!zmq_has("curve"))
        return qf_errorf(QF_EUNSUP, "keygen: this libzmq was built without CURVE");
    char sec_path[PATH_MAX], pub_path[PATH_MAX];
    if (snprintf(sec_path, sizeof sec_path, "%s.secret", base) >= (int)sizeof sec_path ||
        snprintf(pub_path, sizeof pub_path, "%s.pub", base) >= (int)sizeof pub_path)
        return qf_errorf(QF_EINVAL, "keygen: path %s is too long", base);
    if (!overwrite && (access(sec_path, F_OK) == 0 || access(pub_path, F_OK) == 0))
        return qf_errorf(QF_EEXIST, "keygen: %s.secret or %s.pub exists; keep them, or give "
                         "--force to replace them", base, base);
    qf_curve_keypair kp;
    if (zmq_curve_keypair(kp.public_z85, kp.secret_z85) != 0)
        return qf_errorf(QF_EIO, "keygen: cannot make a key pair: %s", zmq_strerror(errno));
    char fp[QF_CURVE_FP_SIZE];
    qf_curve_fingerprint_z85(kp.public_z85, fp);
    char text[512];
    snprintf(text, sizeof text,
             "# quantfleet CURVE secret key (qfleet keygen), %s. Keep it private: mode 0600,\n"
             "# never copied off this machine. Enrol the matching .pub file instead.\n"
             "public-key = \"%s\"\nsecret-key = \"%s\"\n", fp, kp.public_z85, kp.secret_z85);
    int err = write_atomic(sec_path, text, 0600, overwrite);
    sodium_memzero(text, sizeof text);
    if (!err) {
        snprintf(text, sizeof text,
                 "# quantfleet CURVE public key (qfleet keygen), %s.\n"
                 "# Enrol it by copying it into the coordinator's --allow folder.\n"
                 "public-key = \"%s\"\n", fp, kp.public_z85);
        err = write_atomic(pub_path, text, 0644, overwrite);
        if (err)
            unlink(sec_path);   /* half a pair is no use and would block the next try */
    }
    if (!err && kp_out)
        *kp_out = kp;
    sodium_memzero(&kp, sizeof kp);
    return err;
}

/* ---- sockets ----------------------------------------------------------------------------- */

bool qf_curve_endpoint_is_remote(const char *endpoint)
{
    return strncmp(endpoint, "inproc://", 9) != 0 && strncmp(endpoint, "ipc://", 6) != 0;
}

int qf_curve_client_setup(void *sock, const char *endpoint, const qf_curve_opts *o,
                          const char *who, char fp[QF_CURVE_FP_SIZE])
{
    if (fp)
        fp[0] = 0;
    bool keys = o && (o->secret_file || o->server_key_file);
    bool insecure = o && o->insecure;
    if (keys && insecure)
        return qf_errorf(QF_EUSAGE, "%s: --insecure and CURVE keys together: choose one", who);
    if (!keys) {
        if (qf_curve_endpoint_is_remote(endpoint) && !insecure)
            return qf_errorf(QF_EUSAGE, "%s: %s would be plain TCP, readable and forgeable on "
                             "the network: give --curve-secret FILE and --server-key FILE "
                             "(see docs/security.md), or --insecure on a network you trust",
                             who, endpoint);
        return 0;
    }
    if (!o->secret_file || !o->server_key_file)
        return qf_errorf(QF_EUSAGE, "%s: CURVE needs both --curve-secret FILE (this machine's "
                         "key pair) and --server-key FILE (the coordinator's .pub)", who);
    if (!zmq_has("curve"))
        return qf_errorf(QF_EUNSUP, "%s: this libzmq was built without CURVE", who);
    qf_curve_keypair kp;
    char server[QF_CURVE_Z85_LEN + 1];
    int err = qf_curve_read_secret(o->secret_file, &kp);
    if (!err)
        err = qf_curve_read_public(o->server_key_file, server);
    if (err)
        return err;
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVERKEY, server, QF_CURVE_Z85_LEN) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_PUBLICKEY, kp.public_z85, QF_CURVE_Z85_LEN) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, kp.secret_z85, QF_CURVE_Z85_LEN) != 0)
        err = qf_errorf(QF_ENET, "%s: cannot set the CURVE keys: %s", who, zmq_strerror(errno));
    if (!err && fp)
        qf_curve_fingerprint_z85(kp.public_z85, fp);
    sodium_memzero(&kp, sizeof kp);
    return err;
}

int qf_curve_server_setup(void *sock, const char *secret_file)
{
    if (!zmq_has("curve"))
        return qf_errorf(QF_EUNSUP, "coordinator: this libzmq was built without CURVE");
    qf_curve_keypair kp;
    int err = qf_curve_read_secret(secret_file, &kp);
    if (err)
        return err;
    int one = 1;
    if (zmq_setsockopt(sock, ZMQ_CURVE_SERVER, &one, sizeof one) != 0 ||
        zmq_setsockopt(sock, ZMQ_CURVE_SECRETKEY, kp.secret_z85, QF_CURVE_Z85_LEN) != 0 ||
        zmq_setsockopt(sock, ZMQ_ZAP_DOMAIN, ZAP_DOMAIN, strlen(ZAP_DOMAIN)) != 0)
        err = qf_errorf(QF_ENET, "coordinator: cannot set the CURVE key: %s", zmq_strerror(errno));
    sodium_memzero(&kp, sizeof kp);
    return err;
}

/* ---- the ZAP handler --------------------------------------------------------------------- */

typedef struct allowed {
    uint8_t key[32];
    char    name[KEY_NAME_MAX];
} allowed;

typedef struct logged {
    char   fp[QF_CURVE_FP_SIZE];
    char   addr[64];
    double at;
} logged;

struct qf_zap {
    void            *sock;
    char            *dir;
    bool             quiet;
    pthread_t        tid;
    atomic_int       stop;
    atomic_uint_fast64_t refused;
    allowed         *keys;
    size_t           n_keys;
    struct timespec  dir_mtime;
    double           loaded_at;        /* monotonic */
    time_t           loaded_real;      /* the same instant, wall clock (to compare with mtimes) */
    logged           logs[ZAP_LOG_SLOTS];
    unsigned         next_log;
};

static double mono_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void zap_log(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void zap_log(const char *fmt, ...)
{
    char buf[768];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof buf, fmt, ap);
    va_end(ap);
    fprintf(stderr, "qfleet coordinator: %s\n", buf);
}

/* Reads every *.pub file of the folder into a new list. At start-up (strict) a bad file is an
 * error; on a re-read it is a warning and the file is left out, so one bad copy does not lock
 * the whole fleet out. */
static int zap_load(qf_zap *z, bool strict)
{
    struct stat st;
    DIR *d = opendir(z->dir);
    if (!d || stat(z->dir, &st) != 0) {
        int e = errno;
        if (d)
            closedir(d);
        return qf_errorf(QF_EIO, "coordinator: --allow %s: %s", z->dir, strerror(e));
    }
    allowed *keys = NULL;
    size_t n = 0, cap = 0;
    int err = 0;
    struct dirent *e;
    while (!err && (e = readdir(d)) != NULL) {
        size_t len = strlen(e->d_name);
        if (e->d_name[0] == '.' || len <= 4 || strcmp(e->d_name + len - 4, ".pub") != 0)
            continue;
        char path[PATH_MAX], z85[QF_CURVE_Z85_LEN + 1];
        if (snprintf(path, sizeof path, "%s/%s", z->dir, e->d_name) >= (int)sizeof path)
            continue;
        int rc = qf_curve_read_public(path, z85);
        if (rc == 0 && len - 4 >= KEY_NAME_MAX)
            rc = qf_errorf(QF_EINVAL, "coordinator: --allow %s: file name %s is longer than "
                           "%d characters", z->dir, e->d_name, KEY_NAME_MAX - 1 + 4);
        if (rc) {
            if (strict)
                err = rc;
            else
                zap_log("--allow %s: %s left out (see the line above)", z->dir, e->d_name);
            continue;
        }
        if (n == cap) {
            cap = cap ? cap * 2 : 16;
            allowed *nk = realloc(keys, cap * sizeof *nk);
            if (!nk) {
                err = QF_ENOMEM;
                break;
            }
            keys = nk;
        }
        zmq_z85_decode(keys[n].key, z85);
        snprintf(keys[n].name, sizeof keys[n].name, "%.*s", (int)(len - 4), e->d_name);
        n++;
    }
    closedir(d);
    if (err) {
        free(keys);
        return err;
    }
    free(z->keys);
    z->keys = keys;
    z->n_keys = n;
    z->dir_mtime = st.st_mtim;
    z->loaded_at = mono_now();
    z->loaded_real = time(NULL);
    return 0;
}

static const allowed *zap_find(const qf_zap *z, const uint8_t key[32])
{
    for (size_t i = 0; i < z->n_keys; i++)
        if (sodium_memcmp(z->keys[i].key, key, 32) == 0)
            return &z->keys[i];
    return NULL;
}

/* The allowlist for this request: re-read when the folder changed (a file added, removed or
 * renamed). File times come from a coarse clock (a few ms), so two enrolments in one tick leave
 * one mtime: an unknown key also makes us re-read when our last read was within a second of the
 * folder's last change, and otherwise at most once a second (a file edited in place). */
static const allowed *zap_lookup(qf_zap *z, const uint8_t key[32])
{
    struct stat st;
    bool have = stat(z->dir, &st) == 0;
    bool changed = have && (st.st_mtim.tv_sec != z->dir_mtime.tv_sec ||
                            st.st_mtim.tv_nsec != z->dir_mtime.tv_nsec);
    if (changed && zap_load(z, false) != 0)
        zap_log("--allow %s could not be read again: keeping the keys read before", z->dir);
    const allowed *a = zap_find(z, key);
    bool recent = have && z->loaded_real <= st.st_mtim.tv_sec + 1;
    if (!a && !changed && (recent || mono_now() - z->loaded_at >= ZAP_RESCAN_MIN_S) &&
        zap_load(z, false) == 0)
        a = zap_find(z, key);
    return a;
}

/* One line per refused key and address per minute: a peer retrying every 100 ms must not fill
 * the disk with the same line. */
static bool zap_should_log(qf_zap *z, const char *fp, const char *addr)
{
    double now = mono_now();
    for (unsigned i = 0; i < ZAP_LOG_SLOTS; i++) {
        logged *l = &z->logs[i];
        if (strcmp(l->fp, fp) == 0 && strcmp(l->addr, addr) == 0) {
            if (now - l->at < ZAP_LOG_EVERY_S)
                return false;
            l->at = now;
            return true;
        }
    }
    logged *l = &z->logs[z->next_log++ % ZAP_LOG_SLOTS];
    snprintf(l->fp, sizeof l->fp, "%s", fp);
    snprintf(l->addr, sizeof l->addr, "%s", addr);
    l->at = now;
    return true;
}

static void send_part(void *sock, const void *data, size_t len, bool more)
{
    zmq_send(sock, data, len, more ? ZMQ_SNDMORE : 0);
}

/* Copies frame i's bytes as text (at most len - 1). */
static void frame_text(zmq_msg_t *f, char *out, size_t len)
{
    size_t n = zmq_msg_size(f);
    if (n >= len)
        n = len - 1;
    memcpy(out, zmq_msg_data(f), n);
    out[n] = 0;
    for (size_t i = 0; i < n; i++)      /* it goes into a log line */
        if ((unsigned char)out[i] < 0x20 || (unsigned char)out[i] > 0x7e)
            out[i] = '?';
}

/* Reads one request (all its frames) and answers it. */
static void zap_handle(qf_zap *z)
{
    zmq_msg_t f[ZAP_MAX_FRAMES];
    int n = 0;
    bool more = true;
    while (more) {
        zmq_msg_t tmp;
        zmq_msg_init(&tmp);
        if (zmq_msg_recv(&tmp, z->sock, 0) < 0) {
            zmq_msg_close(&tmp);
            break;
        }
        more = zmq_msg_more(&tmp);
        if (n < ZAP_MAX_FRAMES)
            f[n++] = tmp;
        else
            zmq_msg_close(&tmp);
    }
    if (n < 6) {               /* not a ZAP request; REP needs an answer all the same */
        for (int i = 0; i < n; i++)
            zmq_msg_close(&f[i]);
        send_part(z->sock, "", 0, false);
        return;
    }
    char version[8], mech[16], addr[64], reqid[64];
    frame_text(&f[0], version, sizeof version);
    frame_text(&f[3], addr, sizeof addr);
    frame_text(&f[5], mech, sizeof mech);
    size_t reqid_len = zmq_msg_size(&f[1]) < sizeof reqid ? zmq_msg_size(&f[1]) : sizeof reqid;
    memcpy(reqid, zmq_msg_data(&f[1]), reqid_len);

    const char *status = "400", *text = "key not enrolled", *user = "";
    char fp[QF_CURVE_FP_SIZE] = "";
    if (strcmp(version, "1.0") != 0 || strcmp(mech, "CURVE") != 0 || n < 7 ||
        zmq_msg_size(&f[6]) != 32) {
        text = "only CURVE connections are accepted";
        zap_log("refused a connection from %s: mechanism %s, not CURVE", addr, mech);
        atomic_fetch_add(&z->refused, 1);
    } else {
        const uint8_t *key = zmq_msg_data(&f[6]);
        qf_curve_fingerprint(key, fp);
        const allowed *a = zap_lookup(z, key);
        if (a) {
            status = "200";
            text = "OK";
            user = a->name;
            if (!z->quiet)
                zap_log("key %s (%s) connected from %s", a->name, fp, addr);
        } else {
            atomic_fetch_add(&z->refused, 1);
            if (zap_should_log(z, fp, addr))
                zap_log("refused a connection from %s: CURVE key %s is not enrolled (no such "
                        ".pub in %s)", addr, fp, z->dir);
        }
    }
    for (int i = 0; i < n; i++)
        zmq_msg_close(&f[i]);
    send_part(z->sock, "1.0", 3, true);
    send_part(z->sock, reqid, reqid_len, true);
    send_part(z->sock, status, 3, true);
    send_part(z->sock, text, strlen(text), true);
    send_part(z->sock, user, strlen(user), true);
    send_part(z->sock, "", 0, false);
}

static void *zap_main(void *arg)
{
    qf_zap *z = arg;
    while (!atomic_load(&z->stop)) {
        zmq_pollitem_t it = { .socket = z->sock, .events = ZMQ_POLLIN };
        int rc = zmq_poll(&it, 1, ZAP_POLL_MS);
        if (rc < 0 && errno == ETERM)
            break;
        if (rc > 0)
            zap_handle(z);
    }
    return NULL;
}

int qf_zap_start(void *ctx, const char *allow_dir, bool quiet, qf_zap **out)
{
    assert(ctx && allow_dir && out);
    qf_zap *z = calloc(1, sizeof *z);
    if (!z || !(z->dir = strdup(allow_dir))) {
        free(z);
        return QF_ENOMEM;
    }
    z->quiet = quiet;
    int err = zap_load(z, true);
    if (!err && z->n_keys == 0)
        zap_log("--allow %s holds no .pub file yet: every connection will be refused until "
                "keys are enrolled there", allow_dir);
    if (!err) {
        int zero = 0;
        z->sock = zmq_socket(ctx, ZMQ_REP);
        if (!z->sock || zmq_setsockopt(z->sock, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
            zmq_bind(z->sock, ZAP_ENDPOINT) != 0)
            err = qf_errorf(QF_ENET, "coordinator: cannot start the ZAP handler: %s",
                            zmq_strerror(errno));
    }
    if (!err && pthread_create(&z->tid, NULL, zap_main, z) != 0)
        err = qf_errorf(QF_ENOMEM, "coordinator: cannot start the ZAP thread");
    if (err) {
        if (z->sock)
            zmq_close(z->sock);
        free(z->keys);
        free(z->dir);
        free(z);
        return err;
    }
    *out = z;
    return 0;
}

void qf_zap_stop(qf_zap **zp)
{
    qf_zap *z = zp ? *zp : NULL;
    if (!z)
        return;
    atomic_store(&z->stop, 1);
    pthread_join(z->tid, NULL);
    zmq_close(z->sock);
    free(z->keys);
    free(z->dir);
    free(z);
    *zp = NULL;
}

uint64_t qf_zap_refused(const qf_zap *z)
{
    return z ? (uint64_t)atomic_load(&((qf_zap *)z)->refused) : 0;
}

/* ---- the client's handshake monitor ------------------------------------------------------ */

struct qf_curve_monitor {
    void *sock;                 /* the watched socket (not ours) */
    void *pair;                 /* receives its events */
    int   failed;               /* the last handshake failed */
    char  why[256];
};

int qf_curve_monitor_open(void *ctx, void *sock, qf_curve_monitor **out)
{
    assert(ctx && sock && out);
    qf_curve_monitor *m = calloc(1, sizeof *m);
    if (!m)
        return QF_ENOMEM;
    char ep[64];
    snprintf(ep, sizeof ep, "inproc://qf-curve-monitor-%p", sock);
    int events = ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH |
                 ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL | ZMQ_EVENT_HANDSHAKE_FAILED_NO_DETAIL;
    int zero = 0;
    m->sock = sock;
    if (zmq_socket_monitor(sock, ep, events) != 0 || !(m->pair = zmq_socket(ctx, ZMQ_PAIR)) ||
        zmq_setsockopt(m->pair, ZMQ_LINGER, &zero, sizeof zero) != 0 ||
        zmq_connect(m->pair, ep) != 0) {
        int err = qf_errorf(QF_ENET, "cannot watch the socket's handshakes: %s",
                            zmq_strerror(errno));
        qf_curve_monitor_close(&m);
        return err;
    }
    *out = m;
    return 0;
}

void qf_curve_monitor_close(qf_curve_monitor **mp)
{
    qf_curve_monitor *m = mp ? *mp : NULL;
    if (!m)
        return;
    zmq_socket_monitor(m->sock, NULL, 0);
    if (m->pair)
        zmq_close(m->pair);
    free(m);
    *mp = NULL;
}

int qf_curve_monitor_failed(qf_curve_monitor *m, char *why, size_t len)
{
    if (!m)
        return 0;
    for (;;) {
        zmq_msg_t ev, addr;
        zmq_msg_init(&ev);
        if (zmq_msg_recv(&ev, m->pair, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&ev);
            break;
        }
        zmq_msg_init(&addr);
        if (zmq_msg_more(&ev))
            zmq_msg_recv(&addr, m->pair, 0);
        if (zmq_msg_size(&ev) >= 6) {
            const uint8_t *d = zmq_msg_data(&ev);
            uint16_t event;
            uint32_t value;
            memcpy(&event, d, 2);
            memcpy(&value, d + 2, 4);
            if (event == ZMQ_EVENT_HANDSHAKE_SUCCEEDED) {
                m->failed = 0;
            } else if (event == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH) {
                m->failed = 1;
                snprintf(m->why, sizeof m->why, "the coordinator refused this machine's CURVE "
                         "key (ZAP status %" PRIu32 "): enrol its .pub file in the "
                         "coordinator's --allow folder", value);
            } else {
                m->failed = 1;
                snprintf(m->why, sizeof m->why, "the security handshake failed (%s 0x%" PRIx32
                         "): both ends must use CURVE, with --server-key the coordinator's .pub, "
                         "or both plain TCP (--insecure)",
                         event == ZMQ_EVENT_HANDSHAKE_FAILED_PROTOCOL ? "protocol error"
                                                                      : "error", value);
            }
        }
        zmq_msg_close(&addr);
        zmq_msg_close(&ev);
    }
    if (m->failed && why)
        snprintf(why, len, "%s", m->why);
    return m->failed;
}
