/* qf_suite.h - YAML suites and their expansion into job specs (docs/suites.md is the format).
 *
 * A suite names the matrix of datasets x formats x ops x shapes x threads x seeds x device
 * selectors, with repetitions, warm-up, timeout, priority, max attempts and the baseline format.
 * Expansion is the cartesian product, in that order (datasets outermost). Errors name the file,
 * line and column and what was expected; a suite is either fully loaded or not at all.
 */
#ifndef QF_SUITE_H
#define QF_SUITE_H

#include <stddef.h>
#include <stdint.h>

#include "qf_job.h"

typedef struct qf_suite {
    char         name[64];
    char         baseline[QF_JOB_FORMAT_MAX];   /* "" if none */
    uint32_t     max_attempts;
    size_t       n_jobs;
    qf_job_spec *jobs;                          /* owned */
} qf_suite;

/* Parses the YAML text (name_for_errors appears in messages, e.g. the path). On error returns
 * QF_EPARSE/QF_EINVAL/QF_ETOOBIG with "FILE:LINE:COL: message" in why and *out empty. */
int qf_suite_parse(const char *text, size_t len, const char *name_for_errors, qf_suite *out,
                   char *why, size_t why_len);

/* Reads and parses a file (QF_ENOENT/QF_EIO for an unreadable one, message in why). */
int qf_suite_load(const char *path, qf_suite *out, char *why, size_t why_len);

/* Frees the jobs and zeroes *s. NULL-safe. */
void qf_suite_free(qf_suite *s);

#endif
