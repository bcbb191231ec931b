/* test_curve.c - CurveZMQ in the fleet: key files, the rules for plain TCP, the ZAP allowlist,
 * and that nothing crosses the wire in clear.
 *
 * Key files are made with qf_curve_keygen in a mkdtemp folder and read back, then broken on
 * purpose (mode, a pair that does not belong together, garbage). The coordinator runs in a
 * thread of this process (qf_coordinator_start, its own ZeroMQ context, a SQLite file in the
 * temp folder, tcp://127.0.0.1 on an ephemeral port); clients are raw DEALER sockets speaking
 * through the wire codec, so the test sees exactly what a peer with a given key gets: an enrolled
 * key an answer, an unknown key nothing at all (and a log line with its fingerprint, read from
 * stderr redirected to a file). A relay thread between client and coordinator keeps every byte
 * both ways: with CURVE the SUBMIT's suite name must not appear in it, with --insecure it must
 * (so the check can fail). Every wait is bounded.
 */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>

#include "qf_coordinator.h"
#include "qf_curve.h"
#include "qf_err.h"
#include "qf_wire.h"

#define WAIT_MS    10000   /* an answer that should come */
#define SILENCE_MS 1000    /* how long "nothing comes" is watched */

/* stderr while a coordinator's log goes to a file (-1: not redirected) */
static int g_saved_stderr = -1;

typedef struct fixture {
    char dir[64];
    char allow[96];
    char log[96];
} fixture;

static char *read_text(const char *path)
{
    FILE *fp = fopen(path, "r");
    if (!fp)
        return strdup("");
    static char buf[1 << 16];
    size_t n = fread(buf, 1, sizeof buf - 1, fp);
    fclose(fp);
    buf[n] = 0;
    return strdup(buf);
}

static int setup(void **state)
{
    fixture *f = calloc(1, sizeof *f);
    if (!f)
        return -1;
    snprintf(f->dir, sizeof f->dir, "/tmp/qf-test-curve-XXXXXX");
    if (!mkdtemp(f->dir)) {
        free(f);
        return -1;
    }
    snprintf(f->allow, sizeof f->allow, "%s/allow", f->dir);
    snprintf(f->log, sizeof f->log, "%s/log", f->dir);
    if (mkdir(f->allow, 0755) != 0)
        return -1;
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    if (g_saved_stderr >= 0) {     /* a test failed with the log redirected: show both */
        fflush(stderr);
        dup2(g_saved_stderr, 2);
        close(g_saved_stderr);
        g_saved_stderr = -1;
        char *log = read_text(f->log);
        fprintf(stderr, "--- coordinator log and messages ---\n%s---\n", log);
        free(log);
    }
    char cmd[160];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", f->dir);
    if (getenv("QF_KEEP_TEST_DIR") == NULL && system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", f->dir);
    free(f);
    return 0;
}

static void path_in(const fixture *f, const char *name, char *out, size_t len)
{
    snprintf(out, len, "%s/%s", f->dir, name);
}

/* BASE in the fixture's folder; keys in *kp (may be NULL). */
static void keygen(const fixture *f, const char *name, qf_curve_keypair *kp)
{
    char base[160];
    path_in(f, name, base, sizeof base);
    assert_int_equal(qf_curve_keygen(base, false, kp), 0);
}

static void enrol(const fixture *f, const char *name)
{
    char from[160], to[200];
    snprintf(from, sizeof from, "%s/%s.pub", f->dir, name);
    snprintf(to, sizeof to, "%s/%s.pub", f->allow, name);
    assert_int_equal(link(from, to), 0);
}

static void unenrol(const fixture *f, const char *name)
{
    char to[200];
    snprintf(to, sizeof to, "%s/%s.pub", f->allow, name);
    assert_int_equal(unlink(to), 0);
}

static void write_text(const char *path, const char *text, mode_t mode)
{
    FILE *fp = fopen(path, "w");
    assert_non_null(fp);
    fputs(text, fp);
    fclose(fp);
    assert_int_equal(chmod(path, mode), 0);
}

/* ---- key files ----------------------------------------------------------------------------- */

static void test_keygen_files(void **state)
{
    fixture *f = *state;
    qf_curve_keypair kp, again;
    keygen(f, "a", &kp);
    char sec[160], pub[160];
    path_in(f, "a.secret", sec, sizeof sec);
    path_in(f, "a.pub", pub, sizeof pub);
    struct stat st;
    assert_int_equal(stat(sec, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);
    assert_int_equal(stat(pub, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0644);

    assert_int_equal(qf_curve_read_secret(sec, &again), 0);
    assert_string_equal(again.public_z85, kp.public_z85);
    assert_string_equal(again.secret_z85, kp.secret_z85);
    char z85[QF_CURVE_Z85_LEN + 1], z85b[QF_CURVE_Z85_LEN + 1];
    assert_int_equal(qf_curve_read_public(pub, z85), 0);
    assert_string_equal(z85, kp.public_z85);
    assert_int_equal(qf_curve_read_public(sec, z85b), 0);   /* a .secret holds the public too */
    assert_string_equal(z85b, kp.public_z85);
    /* the secret never appears in the .pub */
    char *text = read_text(pub);
    assert_null(strstr(text, kp.secret_z85));
    free(text);

    char fp[QF_CURVE_FP_SIZE];
    assert_int_equal(qf_curve_fingerprint_z85(kp.public_z85, fp), 0);
    assert_int_equal(strlen(fp), QF_CURVE_FP_SIZE - 1);
    assert_int_equal(strncmp(fp, "sha256:", 7), 0);
    assert_int_equal(qf_curve_fingerprint_z85("not a key", fp), QF_EINVAL);

    /* no silent overwrite; --force replaces with a new pair */
    char base[160];
    path_in(f, "a", base, sizeof base);
    assert_int_equal(qf_curve_keygen(base, false, NULL), QF_EEXIST);
    assert_int_equal(qf_curve_read_secret(sec, &again), 0);
    assert_string_equal(again.public_z85, kp.public_z85);
    assert_int_equal(qf_curve_keygen(base, true, &again), 0);
    assert_string_not_equal(again.public_z85, kp.public_z85);
    assert_int_equal(stat(sec, &st), 0);
    assert_int_equal(st.st_mode & 0777, 0600);

    /* nothing but the two files (and the allow folder): no temp file left behind */
    DIR *d = opendir(f->dir);
    assert_non_null(d);
    int n = 0;
    struct dirent *e;
    while ((e = readdir(d)) != NULL)
        if (e->d_name[0] != '.')
            n++;
    closedir(d);
    assert_int_equal(n, 3);
}

static void test_key_file_refusals(void **state)
{
    fixture *f = *state;
    qf_curve_keypair a, b, out;
    keygen(f, "a", &a);
    keygen(f, "b", &b);
    char sec[160], pub[160], path[160], text[512];
    path_in(f, "a.secret", sec, sizeof sec);
    path_in(f, "a.pub", pub, sizeof pub);

    assert_int_equal(chmod(sec, 0644), 0);                  /* others may read it */
    assert_int_equal(qf_curve_read_secret(sec, &out), QF_EINVAL);
    assert_int_equal(chmod(sec, 0620), 0);                  /* the group may write it */
    assert_int_equal(qf_curve_read_secret(sec, &out), QF_EINVAL);
    assert_int_equal(chmod(sec, 0640), 0);                  /* a service group may read it */
    assert_int_equal(qf_curve_read_secret(sec, &out), 0);

    assert_int_equal(qf_curve_read_secret(pub, &out), QF_EPARSE);   /* no secret in a .pub */

    path_in(f, "mixed.secret", path, sizeof path);          /* a's public, b's secret */
    snprintf(text, sizeof text, "public-key = \"%s\"\nsecret-key = \"%s\"\n", a.public_z85,
             b.secret_z85);
    write_text(path, text, 0600);
    assert_int_equal(qf_curve_read_secret(path, &out), QF_EINVAL);

    const char *bad[] = {
        "",                                                     /* empty */
        "hello world\n",                                        /* not a key line */
        "public-key = 123\n",                                   /* no quotes */
        "public-key = \"0123456789\"\n",                        /* too short */
        "public-key = \"~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~~\"\n",   /* not Z85 */
    };
    path_in(f, "bad.pub", path, sizeof path);
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        write_text(path, bad[i], 0644);
        char z85[QF_CURVE_Z85_LEN + 1];
        int rc = qf_curve_read_public(path, z85);
        if (rc != QF_EPARSE)
            fail_msg("key file text #%zu: got %d (%s), expected QF_EPARSE", i, rc,
                     qf_err_name(rc));
    }
    snprintf(text, sizeof text, "public-key = \"%s\"\npublic-key = \"%s\"\n", a.public_z85,
             a.public_z85);
    write_text(path, text, 0644);
    char z85[QF_CURVE_Z85_LEN + 1];
    assert_int_equal(qf_curve_read_public(path, z85), QF_EPARSE);   /* twice */
    path_in(f, "missing.pub", path, sizeof path);
    assert_int_equal(qf_curve_read_public(path, z85), QF_ENOENT);
}

/* ---- when plain TCP is allowed ------------------------------------------------------------- */

static void test_plain_tcp_needs_insecure(void **state)
{
    fixture *f = *state;
    keygen(f, "c", NULL);
    keygen(f, "s", NULL);
    char sec[160], pub[160];
    path_in(f, "c.secret", sec, sizeof sec);
    path_in(f, "s.pub", pub, sizeof pub);
    void *ctx = zmq_ctx_new();
    void *sock = zmq_socket(ctx, ZMQ_DEALER);
    char fp[QF_CURVE_FP_SIZE];
    qf_curve_opts none = { 0 }, insecure = { .insecure = true };
    qf_curve_opts keys = { .secret_file = sec, .server_key_file = pub };
    qf_curve_opts half = { .secret_file = sec };
    qf_curve_opts both = { .secret_file = sec, .server_key_file = pub, .insecure = true };
    assert_int_equal(qf_curve_client_setup(sock, "tcp://10.0.0.1:7420", &none, "t", fp),
                     QF_EUSAGE);
    assert_int_equal(qf_curve_client_setup(sock, "tcp://10.0.0.1:7420", NULL, "t", fp), QF_EUSAGE);
    assert_int_equal(qf_curve_client_setup(sock, "tcp://10.0.0.1:7420", &insecure, "t", fp), 0);
    assert_string_equal(fp, "");
    assert_int_equal(qf_curve_client_setup(sock, "inproc://x", &none, "t", fp), 0);
    assert_int_equal(qf_curve_client_setup(sock, "ipc:///tmp/x", &none, "t", fp), 0);
    assert_int_equal(qf_curve_client_setup(sock, "tcp://h:1", &half, "t", fp), QF_EUSAGE);
    assert_int_equal(qf_curve_client_setup(sock, "tcp://h:1", &both, "t", fp), QF_EUSAGE);
    assert_int_equal(qf_curve_client_setup(sock, "tcp://h:1", &keys, "t", fp), 0);
    assert_int_equal(strncmp(fp, "sha256:", 7), 0);
    zmq_close(sock);
    zmq_ctx_term(ctx);

    /* the coordinator: a tcp:// bind without keys needs insecure; keys and insecure conflict */
    volatile sig_atomic_t stop = 1;
    char db[160], coord_sec[160];
    path_in(f, "q.db", db, sizeof db);
    path_in(f, "s.secret", coord_sec, sizeof coord_sec);
    qf_coord_opts o = { .bind = "tcp://127.0.0.1:*", .db_path = db, .stop = &stop, .quiet = true };
    assert_int_equal(qf_coordinator_run(&o), QF_EUSAGE);
    o.curve_secret = coord_sec;                              /* without --allow */
    assert_int_equal(qf_coordinator_run(&o), QF_EUSAGE);
    o.allow_dir = f->allow;
    o.insecure = true;
    assert_int_equal(qf_coordinator_run(&o), QF_EUSAGE);
    o.insecure = false;
    assert_int_equal(qf_coordinator_run(&o), 0);             /* stop is already set */
}

/* ---- a coordinator in a thread, raw clients ------------------------------------------------ */

typedef struct server {
    qf_coord_opts o;
    qf_coord_thread *t;
    volatile sig_atomic_t stop;
    char endpoint[256];
    char db[160], sec[160];
} server;

/* Starts the coordinator (CURVE with the fixture's allow folder, or insecure), its log going to
 * the fixture's log file. */
static void server_start(server *s, const fixture *f, bool curve)
{
    memset(s, 0, sizeof *s);
    path_in(f, "q.db", s->db, sizeof s->db);
    path_in(f, "coord.secret", s->sec, sizeof s->sec);
    s->o = (qf_coord_opts){ .bind = "tcp://127.0.0.1:*", .db_path = s->db, .stop = &s->stop,
                            .bound_endpoint = s->endpoint, .heartbeat_ms = 1000 };
    if (curve) {
        s->o.curve_secret = s->sec;
        s->o.allow_dir = f->allow;
    } else {
        s->o.insecure = true;
    }
    fflush(stderr);
    g_saved_stderr = dup(2);
    int fd = open(f->log, O_WRONLY | O_CREAT | O_APPEND, 0644);
    assert_true(fd >= 0);
    dup2(fd, 2);
    close(fd);
    assert_int_equal(qf_coordinator_start(&s->o, &s->t), 0);
}

static void server_stop(server *s)
{
    assert_int_equal(qf_coordinator_join(&s->t), 0);
    fflush(stderr);
    dup2(g_saved_stderr, 2);
    close(g_saved_stderr);
    g_saved_stderr = -1;
}

/* A DEALER to endpoint with the key pair NAME (NULL: plain) and the coordinator's key. */
static void *client(void *ctx, const fixture *f, const char *name, const char *endpoint)
{
    void *sock = zmq_socket(ctx, ZMQ_DEALER);
    assert_non_null(sock);
    int zero = 0;
    zmq_setsockopt(sock, ZMQ_LINGER, &zero, sizeof zero);
    char sec[160], pub[160];
    snprintf(sec, sizeof sec, "%s/%s.secret", f->dir, name ? name : "");
    path_in(f, "coord.pub", pub, sizeof pub);
    qf_curve_opts o = { .secret_file = name ? sec : NULL, .server_key_file = name ? pub : NULL,
                        .insecure = name == NULL };
    assert_int_equal(qf_curve_client_setup(sock, endpoint, &o, "test", NULL), 0);
    assert_int_equal(zmq_connect(sock, endpoint), 0);
    return sock;
}

static void send_msg(void *sock, qf_msg *m)
{
    void *buf;
    size_t len;
    assert_int_equal(qf_wire_encode(m, &buf, &len), 0);
    assert_int_equal(zmq_send(sock, buf, len, 0), (int)len);
    free(buf);
}

/* The next message within ms into *m; false if none came. */
static bool recv_msg(void *sock, qf_msg *m, int ms)
{
    zmq_pollitem_t it = { .socket = sock, .events = ZMQ_POLLIN };
    if (zmq_poll(&it, 1, ms) != 1)
        return false;
    zmq_msg_t f;
    zmq_msg_init(&f);
    assert_true(zmq_msg_recv(&f, sock, 0) >= 0);
    qf_wire_limits lim = qf_wire_default_limits();
    char why[300];
    int rc = qf_wire_decode(zmq_msg_data(&f), zmq_msg_size(&f), &lim, m, why, sizeof why);
    zmq_msg_close(&f);
    if (rc)
        fail_msg("an answer that does not decode: %s", why);
    return true;
}

static qf_job_spec noop_spec(void)
{
    qf_job_spec s;
    memset(&s, 0, sizeof s);
    snprintf(s.kind, sizeof s.kind, "noop");
    snprintf(s.dataset, sizeof s.dataset, "synth:gaussian");
    s.rows = 1;
    s.cols = 32;
    s.reps = 1;
    s.threads = 1;
    s.seed = 1;
    s.timeout_ms = 30000;
    return s;
}

static void send_submit(void *sock, const char *suite)
{
    qf_job_spec spec = noop_spec();
    qf_msg m = { .type = QF_MSG_SUBMIT, .id = 1 };
    snprintf(m.u.submit.suite, sizeof m.u.submit.suite, "%s", suite);
    m.u.submit.n_jobs = 1;
    m.u.submit.jobs = &spec;
    send_msg(sock, &m);
}

static void send_hello(void *sock, const char *name)
{
    qf_msg m = { .type = QF_MSG_HELLO, .id = 2 };
    snprintf(m.u.hello.name, sizeof m.u.hello.name, "%s", name);
    m.u.hello.instance = 77;
    m.u.hello.slots = 1;
    m.u.hello.fingerprint = "{}";
    send_msg(sock, &m);
}

/* STATUS of everything, as a JSON text the caller frees; NULL if no answer came. */
static char *status_json(void *sock)
{
    qf_msg m = { .type = QF_MSG_STATUS, .id = 3 };
    send_msg(sock, &m);
    qf_msg rep;
    if (!recv_msg(sock, &rep, WAIT_MS))
        return NULL;
    assert_int_equal(rep.type, QF_MSG_REPLY);
    assert_true(rep.u.reply.ok);
    char *json = strdup(rep.u.reply.json ? rep.u.reply.json : "");
    qf_msg_clear(&rep);
    return json;
}

static void fingerprint_of(const fixture *f, const char *name, char fp[QF_CURVE_FP_SIZE])
{
    char pub[160], z85[QF_CURVE_Z85_LEN + 1];
    snprintf(pub, sizeof pub, "%s/%s.pub", f->dir, name);
    assert_int_equal(qf_curve_read_public(pub, z85), 0);
    assert_int_equal(qf_curve_fingerprint_z85(z85, fp), 0);
}

/* An enrolled key gets answers; an unknown one gets nothing: no SUBMIT, no HELLO, no RESULT
 * reaches the coordinator, and the refusal is logged with the key's fingerprint. Enrolling
 * and revoking take effect for new connections without a restart. */
static void test_enrolled_accepted_unknown_refused(void **state)
{
    fixture *f = *state;
    keygen(f, "coord", NULL);
    keygen(f, "alice", NULL);
    keygen(f, "mallory", NULL);
    enrol(f, "alice");
    server s;
    server_start(&s, f, true);
    void *ctx = zmq_ctx_new();

    void *alice = client(ctx, f, "alice", s.endpoint);
    char *json = status_json(alice);
    assert_non_null(json);
    free(json);

    void *mallory = client(ctx, f, "mallory", s.endpoint);
    send_submit(mallory, "intruder-run");
    send_hello(mallory, "intruder-agent");
    qf_msg res = { .type = QF_MSG_RESULT, .id = 4 };
    res.u.result.job_id = 1;
    res.u.result.attempt = 1;
    res.u.result.result.status = QF_JOB_OK;
    send_msg(mallory, &res);
    qf_msg m;
    if (recv_msg(mallory, &m, SILENCE_MS))
        fail_msg("an unknown key got an answer: %s", qf_msg_type_name(m.type));
    zmq_close(mallory);

    /* nothing of mallory's reached the store */
    json = status_json(alice);
    assert_non_null(json);
    if (strstr(json, "intruder"))
        fail_msg("an unknown key's message was stored: %s", json);
    free(json);
    char fp[QF_CURVE_FP_SIZE];
    fingerprint_of(f, "mallory", fp);
    char *log = read_text(f->log);
    if (!strstr(log, fp) || !strstr(log, "not enrolled"))
        fail_msg("the refusal of %s is not logged:\n%s", fp, log);
    free(log);

    /* enrolled now: a new connection gets in, and its HELLO registers */
    enrol(f, "mallory");
    mallory = client(ctx, f, "mallory", s.endpoint);
    send_hello(mallory, "late-agent");
    assert_true(recv_msg(mallory, &m, WAIT_MS));
    assert_int_equal(m.type, QF_MSG_WELCOME);
    qf_msg_clear(&m);
    zmq_close(mallory);

    /* revoked: the next connection with that key is refused */
    unenrol(f, "alice");
    zmq_close(alice);
    alice = client(ctx, f, "alice", s.endpoint);
    qf_msg st = { .type = QF_MSG_STATUS, .id = 5 };
    send_msg(alice, &st);
    if (recv_msg(alice, &m, SILENCE_MS))
        fail_msg("a revoked key got an answer: %s", qf_msg_type_name(m.type));
    zmq_close(alice);

    /* a plain client of a CURVE coordinator gets nothing either */
    void *plain = client(ctx, f, NULL, s.endpoint);
    send_msg(plain, &st);
    if (recv_msg(plain, &m, SILENCE_MS))
        fail_msg("a plain-text client got an answer: %s", qf_msg_type_name(m.type));
    zmq_close(plain);

    zmq_ctx_term(ctx);
    server_stop(&s);
}

/* ---- what crosses the wire ----------------------------------------------------------------- */

typedef struct relay {
    int listen_fd;
    int port;                    /* where clients connect */
    int target_port;             /* the coordinator */
    volatile int stop;
    pthread_t tid;
    unsigned char *seen;         /* every byte, both ways */
    size_t n_seen, cap_seen;
} relay;

static void relay_keep(relay *r, const unsigned char *buf, size_t n)
{
    if (r->n_seen + n > r->cap_seen) {
        r->cap_seen = (r->n_seen + n) * 2;
        r->seen = realloc(r->seen, r->cap_seen);
        assert_non_null(r->seen);
    }
    memcpy(r->seen + r->n_seen, buf, n);
    r->n_seen += n;
}

/* One connection at a time, forwarded both ways until either side closes or stop. */
static void *relay_main(void *arg)
{
    relay *r = arg;
    while (!r->stop) {
        struct pollfd lp = { .fd = r->listen_fd, .events = POLLIN };
        if (poll(&lp, 1, 50) != 1)
            continue;
        int a = accept(r->listen_fd, NULL, NULL);
        if (a < 0)
            continue;
        int b = socket(AF_INET, SOCK_STREAM, 0);
        struct sockaddr_in to = { .sin_family = AF_INET, .sin_port = htons(r->target_port),
                                  .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
        if (connect(b, (struct sockaddr *)&to, sizeof to) != 0) {
            close(a);
            close(b);
            continue;
        }
        bool open = true;
        while (open && !r->stop) {
            struct pollfd p[2] = { { .fd = a, .events = POLLIN }, { .fd = b, .events = POLLIN } };
            if (poll(p, 2, 50) <= 0)
                continue;
            for (int i = 0; i < 2 && open; i++) {
                if (!(p[i].revents & (POLLIN | POLLHUP | POLLERR)))
                    continue;
                unsigned char buf[65536];
                ssize_t n = read(p[i].fd, buf, sizeof buf);
                if (n <= 0) {
                    open = false;
                    break;
                }
                relay_keep(r, buf, (size_t)n);
                int out = i == 0 ? b : a;
                for (ssize_t done = 0; done < n;) {
                    ssize_t w = write(out, buf + done, (size_t)(n - done));
                    if (w <= 0) {
                        open = false;
                        break;
                    }
                    done += w;
                }
            }
        }
        close(a);
        close(b);
    }
    return NULL;
}

static void relay_start(relay *r, const char *endpoint)
{
    memset(r, 0, sizeof *r);
    const char *colon = strrchr(endpoint, ':');
    assert_non_null(colon);
    r->target_port = atoi(colon + 1);
    r->listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in sa = { .sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK) };
    assert_int_equal(bind(r->listen_fd, (struct sockaddr *)&sa, sizeof sa), 0);
    assert_int_equal(listen(r->listen_fd, 4), 0);
    socklen_t len = sizeof sa;
    assert_int_equal(getsockname(r->listen_fd, (struct sockaddr *)&sa, &len), 0);
    r->port = ntohs(sa.sin_port);
    assert_int_equal(pthread_create(&r->tid, NULL, relay_main, r), 0);
}

static void relay_stop(relay *r)
{
    r->stop = 1;
    pthread_join(r->tid, NULL);
    close(r->listen_fd);
}

static bool seen(const relay *r, const char *text)
{
    return r->n_seen && memmem(r->seen, r->n_seen, text, strlen(text)) != NULL;
}

/* SUBMIT and its REPLY through the relay; true if the canary crossed in clear. */
static bool canary_in_clear(const fixture *f, bool curve)
{
    static const char canary[] = "canary-suite-7d3f";
    server s;
    server_start(&s, f, curve);
    relay r;
    relay_start(&r, s.endpoint);
    char via[64];
    snprintf(via, sizeof via, "tcp://127.0.0.1:%d", r.port);
    void *ctx = zmq_ctx_new();
    void *c = client(ctx, f, curve ? "alice" : NULL, via);
    send_submit(c, canary);
    qf_msg m;
    assert_true(recv_msg(c, &m, WAIT_MS));               /* the traffic did flow */
    assert_int_equal(m.type, QF_MSG_REPLY);
    assert_true(m.u.reply.ok);
    qf_msg_clear(&m);
    char *json = status_json(c);                          /* and back: the run's name */
    assert_non_null(json);
    assert_non_null(strstr(json, canary));
    free(json);
    zmq_close(c);
    zmq_ctx_term(ctx);
    relay_stop(&r);
    server_stop(&s);
    bool clear = seen(&r, canary) || seen(&r, "synth:gaussian") || seen(&r, "run_id");
    free(r.seen);
    return clear;
}

static void test_wire_is_not_plaintext(void **state)
{
    fixture *f = *state;
    keygen(f, "coord", NULL);
    keygen(f, "alice", NULL);
    enrol(f, "alice");
    if (canary_in_clear(f, true))
        fail_msg("with CURVE, the SUBMIT or its answers crossed the wire in clear");
    if (!canary_in_clear(f, false))
        fail_msg("with --insecure the canary should be visible: the capture does not work");
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_keygen_files, setup, teardown),
        cmocka_unit_test_setup_teardown(test_key_file_refusals, setup, teardown),
        cmocka_unit_test_setup_teardown(test_plain_tcp_needs_insecure, setup, teardown),
        cmocka_unit_test_setup_teardown(test_enrolled_accepted_unknown_refused, setup, teardown),
        cmocka_unit_test_setup_teardown(test_wire_is_not_plaintext, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
