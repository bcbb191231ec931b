/* qf_err.h - the one error list of quantfleet.
 *
 * Every fallible function returns 0 or a negative qf_err and hands its outputs back through
 * trailing pointer parameters. The list below is an X-macro: it generates the enum, the
 * symbolic names (for logs and JSON) and the human messages (for stderr), so adding an error
 * is one line here. Errors about things from outside (a file, a frame, an argument) are
 * reported with qf_errorf(), which names what was wrong; misuse by our own code is an assert.
 */
#ifndef QF_ERR_H
#define QF_ERR_H

#include <stddef.h>

#include <stdarg.h>

#define QF_ERRNO_MAP(X)                                                          \
    X(EINVAL,   "invalid argument")                                              \
    X(ENOMEM,   "out of memory")                                                 \
    X(EIO,      "input/output error")                                            \
    X(ENOENT,   "no such file or entry")                                         \
    X(EFORMAT,  "unknown format")                                                \
    X(ESHAPE,   "tensor shape does not fit the format")                          \
    X(ERANGE,   "value out of range")                                            \
    X(EPARSE,   "cannot parse input")                                            \
    X(EUNSUP,   "not supported on this build or host")                           \
    X(EDLOPEN,  "cannot load shared library")                                    \
    X(EUSAGE,   "bad command line")                                              \
    X(EPROTO,   "malformed or unexpected message")                               \
    X(ETOOBIG,  "message or input over its size limit")                          \
    X(EDB,      "database error")                                                \
    X(EBUSY,    "resource busy or locked")                                       \
    X(ETIMEDOUT,"timed out")                                                     \
    X(ENET,     "network or socket error")                                       \
    X(ECANCELED,"cancelled")                                                     \
    X(EEXIST,   "already exists")

enum qf_err {
    QF_OK = 0,
#define QF_ERR_ENUM_(name, msg) QF_##name,
    QF_ERR_FIRST_ = -1000,
    QF_ERRNO_MAP(QF_ERR_ENUM_)
#undef QF_ERR_ENUM_
    QF_ERR_LAST_
};

/* "QF_EINVAL" for QF_EINVAL; "QF_OK" for 0; "QF_EUNKNOWN" for anything else. Static storage. */
const char *qf_err_name(int err);

/* Human message for err, e.g. "invalid argument". Static storage. */
const char *qf_strerror(int err);

/* Prints "qfleet: <formatted message>\n" on stderr (one line, for the user) and returns err,
 * so callers can write `return qf_errorf(QF_EPARSE, "%s: line %d: ...", path, line);`. */
int qf_errorf(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Writes the formatted reason into why (when why is not NULL and why_len > 0; cut at its end)
 * and returns err, printing nothing: how library code hands a reason to a caller that decides
 * whether to print it, `return qf_whyf(QF_EPARSE, why, why_len, "%s: ...", path);`. */
int qf_whyf(int err, char *why, size_t why_len, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
