/* cmd_bench.c - `qfleet bench`: kernel ops go to agent/bench.c; `--op fleet` measures the fleet
 * itself (cli/bench_fleet.c), which needs the coordinator and so lives on this side of the
 * library layering. One entry point, so users see one command. */
#include <stdio.h>
#include <string.h>

#include "qf_bench.h"
#include "qf_cmd.h"

static bool wants_fleet(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--op=fleet") == 0)
            return true;
        if (strcmp(argv[i], "--op") == 0 && i + 1 < argc && strcmp(argv[i + 1], "fleet") == 0)
            return true;
    }
    return false;
}

int qf_cmd_bench(int argc, char **argv)
{
    if (wants_fleet(argc, argv))
        return qf_bench_fleet_main(argc, argv);
    int rc = qf_bench_main(argc, argv);
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0)
            puts("\nThe fleet itself: qfleet bench --op fleet [--agents N] [--jobs M] "
                 "(see qfleet bench --op fleet --help)");
    return rc;
}
