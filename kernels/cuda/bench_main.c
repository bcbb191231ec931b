/* bench_main.c - qfleet-bench: `qfleet bench` on its own, for QF_CUDA_ONLY builds (GPU
 * machines without the fleet's dependencies; see scripts/cuda-check.sh). The options, the
 * measurement and the output are agent/bench.c's, so a number from here and one from
 * `qfleet bench` mean the same. */
#include "qf_bench.h"

int main(int argc, char **argv)
{
    return qf_bench_main(argc, argv);
}
