/* qf_bench.h - `qfleet bench`: time one kernel op locally and report raw-sample summaries.
 *
 * Called by the CLI (and later by the agent for a job). Each repetition times one pass of the
 * op over the whole matrix with CLOCK_MONOTONIC; warm-up passes are run and discarded.
 */
#ifndef QF_BENCH_H
#define QF_BENCH_H

#include <stdbool.h>
#include <stdint.h>

#include "qf_formats.h"

/* matvec: one activation row (decode-like); matmul: `batch` rows at once (prefill-like). */
typedef enum qf_bench_op { QF_OP_QUANTIZE, QF_OP_DEQUANTIZE, QF_OP_MATVEC, QF_OP_MATMUL } qf_bench_op;

int qf_bench_main(int argc, char **argv);

#endif
