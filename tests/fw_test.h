/* fw_test.h - what the framework adapters' tests share (tests/test_fw_ort.c,
 * tests/test_fw_llamacpp.c): a framework job's spec, and "is the framework here?" with the
 * project's rule for missing peers - a loud SKIPPED line, or a failure when the CI variable
 * that requires it is set. Include after <cmocka.h>. */
#ifndef QF_FW_TEST_H
#define QF_FW_TEST_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qf_framework.h"

/* A framework job of fw on format over a synthetic Student-t matrix, seed 42, 3 timed reps. */
static inline qf_job_spec fw_spec(const qf_framework *fw, const char *format, int64_t rows,
                                  int64_t cols, uint32_t threads)
{
    qf_job_spec s = { .rows = rows, .cols = cols, .reps = 3, .warmup = 1, .threads = threads,
                      .seed = 42, .timeout_ms = 60000 };
    snprintf(s.kind, sizeof s.kind, "framework");
    snprintf(s.format, sizeof s.format, "%s", format);
    snprintf(s.dataset, sizeof s.dataset, "synth:student-t");
    snprintf(s.selector, sizeof s.selector, "backend=%s", fw->name);
    return s;
}

/* True when fw's probe finds it; otherwise runs a job of format to get the adapter's own
 * reason (it must be a FAILED result), then fails when $require_env is "1", else prints a
 * SKIPPED line with how_to_get and returns false. */
static inline bool fw_present(const qf_framework *fw, const char *format, const char *require_env,
                              const char *how_to_get)
{
    char version[QF_FRAMEWORK_VERSION_MAX] = "";
    if (fw->probe(version, sizeof version))
        return true;
    qf_job_spec s = fw_spec(fw, format, 8, 256, 1);
    qf_job_result r = { 0 };
    assert_int_equal(fw->run(&s, &r), 0);
    assert_int_equal(r.status, QF_JOB_FAILED);
    const char *req = getenv(require_env);
    if (req && strcmp(req, "1") == 0)
        fail_msg("%s required (%s=1) but unavailable: %s", fw->title, require_env, r.error);
    fprintf(stderr, "\n*** SKIPPED: %s not available: %s\n*** %s\n\n", fw->title, r.error,
            how_to_get);
    qf_job_result_clear(&r);
    return false;
}

#endif
