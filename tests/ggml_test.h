/* ggml_test.h - "is ggml's reference here?" for the tests that compare with it byte for byte
 * (test_conformance_ggml.c, test_imatrix.c): opens the baseline x86-64 CPU library into *g
 * once; without it, fails when QF_REQUIRE_GGML=1 (CI) and otherwise prints a SKIPPED line.
 * Include after <cmocka.h>. */
#ifndef QF_GGML_TEST_H
#define QF_GGML_TEST_H

#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ggml_peer.h"

static inline bool ggml_ref_present(qf_ggml *g)
{
    if (g->base)
        return true;
    char why[1400];
    if (qf_ggml_open(g, NULL, QF_GGML_CPU_BASELINE, why, sizeof why) == 0)
        return true;
    const char *req = getenv("QF_REQUIRE_GGML");
    if (req && strcmp(req, "1") == 0)
        fail_msg("ggml reference required (QF_REQUIRE_GGML=1) but unavailable: %s", why);
    fprintf(stderr, "\n*** SKIPPED: ggml reference not available: %s\n"
                    "*** run `make test` (it fetches @node-llama-cpp/linux-x64 with npm)\n\n", why);
    return false;
}

#endif
