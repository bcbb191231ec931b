/* err.c - names and messages of the error list in qf_err.h, and the one stderr reporter. */
#include "qf_err.h"

#include <stdio.h>

const char *qf_err_name(int err)
{
    switch (err) {
    case QF_OK: return "QF_OK";
#define QF_ERR_NAME_(name, msg) case QF_##name: return "QF_" #name;
    QF_ERRNO_MAP(QF_ERR_NAME_)
#undef QF_ERR_NAME_
    default: return "QF_EUNKNOWN";
    }
}

const char *qf_strerror(int err)
{
    switch (err) {
    case QF_OK: return "success";
#define QF_ERR_MSG_(name, msg) case QF_##name: return msg;
    QF_ERRNO_MAP(QF_ERR_MSG_)
#undef QF_ERR_MSG_
    default: return "unknown error";
    }
}

int qf_errorf(int err, const char *fmt, ...)
{
    va_list ap;
    fputs("qfleet: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return err;
}

int qf_whyf(int err, char *why, size_t why_len, const char *fmt, ...)
{
    if (why && why_len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why, why_len, fmt, ap);
        va_end(ap);
    }
    return err;
}
