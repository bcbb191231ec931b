/* test_inputs.h - the input families the kernel tests quantize: seeded random tensors and the
 * edge cases a quantizer gets wrong first (zero and constant blocks, one huge outlier per block,
 * subnormals, +-65504, mixed signs, tiny and huge row scales).
 *
 * Shared by test_conformance_ggml (ours against ggml) and test_kernels (each ISA against the
 * reference), so both are held to the same inputs. A fill writes rows x ncols floats; ncols is
 * a multiple of 256 for the families with per-block or per-row structure.
 */
#ifndef QF_TEST_INPUTS_H
#define QF_TEST_INPUTS_H

#include <stddef.h>
#include <stdint.h>

#include "qf_rng.h"

typedef void (*qf_test_fill_fn)(float *x, int64_t rows, int64_t ncols, qf_rng *r);

typedef struct qf_test_case {
    const char     *name;
    qf_test_fill_fn fill;
    int64_t         rows;     /* rows to test at the conformance test's 2048 columns */
} qf_test_case;

extern const qf_test_case qf_test_cases[];
extern const size_t       qf_test_ncases;

/* Standard normal values. */
void qf_test_fill_gaussian(float *x, int64_t rows, int64_t ncols, qf_rng *r);

#endif
