/* qf_curve.h - CurveZMQ for the fleet: key files, fingerprints, socket setup, the ZAP handler.
 *
 * A key pair is two text files written by `qfleet keygen BASE`: BASE.secret (mode 0600, both
 * keys) and BASE.pub (the public key, the file an operator copies to enrol a machine). Keys
 * are Z85 text (40 characters for 32 bytes), the form libzmq's socket options take:
 *
 *     # quantfleet CURVE public key ...
 *     public-key = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"
 *
 * A fingerprint names a key in logs without printing it: "sha256:" and the first 8 bytes of the
 * SHA-256 of the 32 raw key bytes in hex, e.g. sha256:3f0a9c21d4b87e65.
 *
 * The coordinator is a CURVE server: qf_zap_start binds the ZAP handler (RFC 27) of its ZeroMQ
 * context, a thread that accepts exactly the public keys found in the --allow folder (one
 * `*.pub` file per enrolled agent or client; the file name without .pub becomes the
 * connection's User-Id) and refuses every other key with a log line naming its fingerprint and
 * address. The folder is read again whenever its modification time changes, so enrolling or
 * revoking a key needs no restart (revocation applies to new connections).
 * Agents and clients are CURVE clients: qf_curve_client_setup. Plain TCP is allowed only when
 * the caller says so (--insecure); inproc:// and ipc:// (local, guarded by the process and the
 * file system) need nothing.
 * Called once per socket at start-up, and by the ZAP thread once per connection: not hot.
 */
#ifndef QF_CURVE_H
#define QF_CURVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define QF_CURVE_Z85_LEN 40     /* a 32-byte key in Z85, without the NUL */
#define QF_CURVE_FP_SIZE 24     /* "sha256:" + 16 hex digits + NUL */

typedef struct qf_curve_keypair {
    char public_z85[QF_CURVE_Z85_LEN + 1];
    char secret_z85[QF_CURVE_Z85_LEN + 1];
} qf_curve_keypair;

/* What a CURVE client (agent, submit, status, cancel) was told on its command line. */
typedef struct qf_curve_opts {
    const char *secret_file;      /* --curve-secret: our key pair */
    const char *server_key_file;  /* --server-key: the coordinator's public key */
    bool        insecure;         /* --insecure: plain TCP on purpose */
} qf_curve_opts;

/* The fingerprint of a key given as 32 raw bytes, or as Z85 text (QF_EINVAL if not a key). */
void qf_curve_fingerprint(const uint8_t key[32], char out[QF_CURVE_FP_SIZE]);
int  qf_curve_fingerprint_z85(const char *z85, char out[QF_CURVE_FP_SIZE]);

/* Writes a fresh key pair to BASE.secret (mode 0600) and BASE.pub (0644), each through a temp
 * file and a rename, so neither is ever seen half-written. An existing file is kept and the call
 * fails (QF_EEXIST) unless overwrite. *kp (may be NULL) receives the keys. */
int qf_curve_keygen(const char *base, bool overwrite, qf_curve_keypair *kp);

/* Reads a secret key file: both keys, checked to belong together. Refuses a file that others may
 * read or anyone but its owner may write (group read is allowed, for a service group). */
int qf_curve_read_secret(const char *path, qf_curve_keypair *out);

/* Reads a public key file (a .pub file, or the public-key line of a .secret file). */
int qf_curve_read_public(const char *path, char z85[QF_CURVE_Z85_LEN + 1]);

/* True for endpoints that leave the machine (anything but inproc:// and ipc://). */
bool qf_curve_endpoint_is_remote(const char *endpoint);

/* Makes sock a CURVE client of the coordinator per o, before it connects to endpoint; `who`
 * ("agent", "submit", ...) starts the messages. Without keys a remote endpoint is refused
 * (QF_EUSAGE) unless o->insecure; both keys and --insecure together are refused too.
 * *fp (may be NULL) receives our key's fingerprint, "" without CURVE. */
int qf_curve_client_setup(void *sock, const char *endpoint, const qf_curve_opts *o,
                          const char *who, char fp[QF_CURVE_FP_SIZE]);

/* Makes sock a CURVE server with the key pair in secret_file (before it binds). */
int qf_curve_server_setup(void *sock, const char *secret_file);

/* The ZAP handler of ctx: a thread answering libzmq's authentication requests from the
 * allowlist folder. Must be started before the server socket binds and stopped after it is
 * closed. quiet: no line per accepted connection (refusals always print). Caller owns *out. */
typedef struct qf_zap qf_zap;
int  qf_zap_start(void *ctx, const char *allow_dir, bool quiet, qf_zap **out);
void qf_zap_stop(qf_zap **z);

/* How many connections the handler has refused so far (tests, status). */
uint64_t qf_zap_refused(const qf_zap *z);

/* Watches a client socket's handshakes (a ZeroMQ socket monitor), so a client that hears
 * nothing can say why: its key was refused, or the handshake failed (wrong --server-key).
 * Caller owns *out; qf_curve_monitor_close is NULL-safe. */
typedef struct qf_curve_monitor qf_curve_monitor;
int  qf_curve_monitor_open(void *ctx, void *sock, qf_curve_monitor **out);
void qf_curve_monitor_close(qf_curve_monitor **m);

/* Reads the events so far without waiting. Returns 1 and a one-line reason in why when the last
 * handshake failed, 0 when none failed (or one succeeded since). */
int qf_curve_monitor_failed(qf_curve_monitor *m, char *why, size_t len);

#endif
