/* cmd_bench.c - `qfleet bench`: kernel ops go to agent/bench.c; `--op fleet` measures the fleet
 * itself (cli/bench_fleet.c), which needs the coordinator and so lives on this side of the
 * library layering; `--op kernels` sets our fast kernels beside DRAM bandwidth and ggml
 * (cli/bench_kernels.c); `--op model` sets our llama engine's pp/tg beside llama.cpp's
 * (cli/bench_model.c). One entry point, so users see one command. */
#include <stdio.h>
#include <string.h>

#include "qf_bench.h"
#include "qf_bench_kernels.h"
#include "qf_bench_model.h"
#include "qf_cmd.h"

/* Whether argv asks for `--op OP` (or --op=OP). */
static bool wants_op(int argc, char **argv, const char *op)
{
    for (int i = 1; i < argc; i++) {
        if (strncmp(argv[i], "--op=", 5) == 0 && strcmp(argv[i] + 5, op) == 0)
            return true;
        if (strcmp(argv[i], "--op") == 0 && i + 1 < argc && strcmp(argv[i + 1], op) == 0)
            return true;
    }
    return false;
}

int qf_cmd_bench(int argc, char **argv)
{
    if (wants_op(argc, argv, "fleet"))
        return qf_bench_fleet_main(argc, argv);
    if (wants_op(argc, argv, "kernels"))
        return qf_bench_kernels_main(argc, argv);
    if (wants_op(argc, argv, "model"))
        return qf_bench_model_main(argc, argv);
    int rc = qf_bench_main(argc, argv);
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            puts("\nThe fleet itself: qfleet bench --op fleet [--agents N] [--jobs M] "
                 "(see qfleet bench --op fleet --help)\n"
                 "Fast kernels vs DRAM and ggml: qfleet bench --op kernels [--vs-ggml] "
                 "(see qfleet bench --op kernels --help)\n"
                 "Our llama engine vs llama.cpp: qfleet bench --op model MODEL.gguf "
                 "[--vs-llama] (see qfleet bench --op model --help)");
    return rc;
}
