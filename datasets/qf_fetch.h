/* qf_fetch.h - downloads a manifest's file into the local cache with libcurl, verified.
 *
 * The cache is $QF_CACHE_DIR, else $XDG_CACHE_HOME/quantfleet, else ~/.cache/quantfleet; a
 * manifest's file lives at CACHE/NAME/FILE. Invariant: a file at that path has passed the
 * manifest's SHA-256 (or, for an unverified manifest, was hashed when it arrived and the hash
 * recorded next to it in FILE.sha256), because bytes are written only to FILE.part and moved
 * to FILE by one rename(2) after the hash matched. A mismatching download is deleted, never
 * renamed, and the error names the URL, the expected and the actual hash.
 *
 * A fetch holds an exclusive flock(2) on FILE.lock for its whole duration, so two processes
 * (two agents' job children, or a job and `qfleet dataset fetch`) fetching one file on one
 * machine take turns: the second finds the file in place once the first is done. Transient
 * failures (connect errors, timeouts and too-slow transfers, partial transfers, HTTP 408, 429
 * and 5xx) are retried with exponential backoff; anything else (404, a refused redirect, a
 * size over the manifest's) fails at once. A retry, or a later fetch, resumes from FILE.part
 * with a Range request when the server answers 206, and starts over when it answers 200.
 *
 * Callers: `qfleet dataset` (cli/cmd_dataset.c) and the agent's job kinds (agent/jobs.c), in
 * the job's child process. Nothing here prints except the progress bar (stderr, when it is a
 * TTY and the options allow) and, when quiet is false, one line per retry or lock wait;
 * errors come back as a qf_err with the reason in why.
 */
#ifndef QF_FETCH_H
#define QF_FETCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "qf_manifest.h"

#define QF_FETCH_PATH_MAX 4096

typedef struct qf_fetch_opts {
    const char *cache_dir;        /* NULL: qf_fetch_cache_dir() */
    const char *ca_file;          /* PEM bundle of CAs to trust for HTTPS instead of the
                                     system's (a lab mirror with a private CA); NULL: system */
    long connect_timeout_ms;      /* per connection attempt (default 30 s) */
    long low_speed_bytes;         /* abort a transfer slower than this many bytes/s ... */
    long low_speed_time_s;        /* ... for this many seconds (defaults 1024 B/s, 30 s) */
    int  max_retries;             /* retries after the first attempt (default 4) */
    long backoff_ms;              /* wait before the first retry, doubled each time up to
                                     backoff_max_ms (defaults 1 s, 30 s) */
    long backoff_max_ms;
    long max_redirects;           /* default 10 */
    int  progress;                /* -1: a bar when stderr is a TTY (default), 0 never, 1 always */
    bool quiet;                   /* no retry and lock-wait lines on stderr */
} qf_fetch_opts;

typedef struct qf_fetch_result {
    char     path[QF_FETCH_PATH_MAX];  /* the verified file in the cache */
    char     sha256[65];               /* its hash, lowercase hex */
    uint64_t bytes;
    bool     downloaded;               /* false: it was already in the cache */
    int      attempts;                 /* HTTP requests made (0 when cached) */
    char     url[QF_MANIFEST_URL_MAX]; /* the URL that served it ("" when cached) */
} qf_fetch_result;

/* The defaults above. Environment overrides, for slow links and for tests:
 * QF_FETCH_CONNECT_TIMEOUT_MS, QF_FETCH_LOW_SPEED_TIME (s), QF_FETCH_LOW_SPEED_LIMIT (B/s),
 * QF_FETCH_RETRIES, QF_FETCH_BACKOFF_MS; a value that is not a number in range is ignored.
 * QF_FETCH_CA_FILE sets ca_file (the string stays the environment's). */
void qf_fetch_opts_default(qf_fetch_opts *o);

/* The defaults for a fetch inside a job (an agent's child process, a framework adapter): no
 * progress bar and no retry or lock-wait lines; the outcome is in the result or why. */
void qf_fetch_opts_quiet(qf_fetch_opts *o);

/* The cache folder (see above) into buf, created with its parents (mode 0755) if missing.
 * QF_EINVAL when neither QF_CACHE_DIR, XDG_CACHE_HOME (absolute) nor HOME is set, QF_EIO
 * when it cannot be created, QF_ETOOBIG when the path does not fit; reason in why. */
int qf_fetch_cache_dir(char *buf, size_t size, char *why, size_t why_len);

/* Where m's file lives in the cache (cache_dir NULL: the default), without touching it. */
int qf_fetch_cache_path(const qf_manifest *m, const char *cache_dir, char *buf, size_t size,
                        char *why, size_t why_len);

/* Makes sure m's file is in the cache and returns where (*out). A file already in place is
 * trusted (only a rename after verification can have put it there) after a size check;
 * `qfleet dataset verify` re-hashes. Synthetic manifests have nothing to fetch (QF_EINVAL).
 * Errors, reason in why: QF_ENOENT (404/410), QF_ENET (transport, after the retries),
 * QF_ETIMEDOUT (connect or low-speed timeout, after the retries), QF_ETOOBIG (over the
 * manifest's size), QF_EPARSE (SHA-256 mismatch: "URL: sha256 mismatch: expected X, got Y"),
 * QF_EIO (the cache), QF_EPROTO (other HTTP statuses, bad redirects). */
int qf_fetch(const qf_manifest *m, const qf_fetch_opts *o, qf_fetch_result *out, char *why,
             size_t why_len);

/* Re-hashes m's cached file (under the lock) against the manifest's SHA-256, or for an
 * unverified manifest the hash recorded when it was fetched. 0 and *out filled when it
 * matches; QF_ENOENT when it is not in the cache; QF_EPARSE on a mismatch, and the file is
 * deleted (the cache never keeps a bad file; the next fetch downloads it again). */
int qf_fetch_verify(const qf_manifest *m, const char *cache_dir, qf_fetch_result *out,
                    char *why, size_t why_len);

/* SHA-256 of a whole file (libsodium, streamed), hex into hex, its size into *bytes. */
int qf_fetch_sha256_file(const char *path, char hex[65], uint64_t *bytes, char *why,
                         size_t why_len);

#endif
