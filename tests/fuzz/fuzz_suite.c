/* fuzz_suite.c - libFuzzer target for the YAML suite parser (suites/suite.c, docs/suites.md).
 *
 * Suites are written by people and arrive from CI checkouts, so any text must either load
 * into jobs that each pass qf_job_spec_validate, or be refused with "FILE:LINE:COL: reason"
 * and leave the suite empty. The input is not NUL-terminated: the parser takes a length.
 * Seeds: the suites we ship and the examples of docs/suites.md (tests/fuzz/suite/).
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "qf_job.h"
#include "qf_suite.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    qf_suite s;
    char why[512];
    int err = qf_suite_parse((const char *)data, size, "fuzz.yaml", &s, why, sizeof why);
    if (err != 0) {
        if (s.jobs != NULL || s.n_jobs != 0 || strncmp(why, "fuzz.yaml", 9) != 0) {
            fprintf(stderr, "fuzz_suite: refused without a located reason, or not empty: %s\n",
                    why);
            abort();
        }
        return 0;
    }
    for (size_t i = 0; i < s.n_jobs; i++) {
        if (qf_job_spec_validate(&s.jobs[i], why, sizeof why) != 0) {
            fprintf(stderr, "fuzz_suite: job %zu of a loaded suite is invalid: %s\n", i, why);
            abort();
        }
    }
    qf_suite_free(&s);
    return 0;
}
