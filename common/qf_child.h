/* qf_child.h - ask a question in a short-lived child process and read the answer back.
 *
 * GPU runtimes (the CUDA driver, OpenCL ICDs such as PoCL) must not be initialized in a process
 * that later forks children to use them: a forked child of a process that loaded them hangs or
 * fails. The agent forks a child per job, so it asks "which devices are there?" through this: fn
 * runs in a fork of the caller, fills at most size bytes of buf, and returns how many (or a
 * negative qf_err); the parent reads those bytes back. A child that hangs is killed at the
 * deadline. Used by the fingerprint's CUDA and OpenCL probes. Not hot: once per agent start.
 */
#ifndef QF_CHILD_H
#define QF_CHILD_H

#include <stddef.h>

typedef int (*qf_child_fn)(void *arg, void *buf, size_t size);

/* 0 with *got bytes of buf filled, fn's own negative qf_err, or QF_EIO (the fork failed, or the
 * child died or passed timeout_ms without answering; the reason names what). */
int qf_child_call(qf_child_fn fn, void *arg, void *buf, size_t size, int timeout_ms,
                  size_t *got);

#endif
