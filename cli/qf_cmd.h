/* qf_cmd.h - the subcommands that live in cli/ (the others live with their module, e.g.
 * qf_bench_main in agent/). Each takes the command's own argv (argv[0] is its name), prints
 * its output and errors itself, and returns the process exit status (qf_cli_args.h: 0, 1
 * runtime failure, 2 usage error). Only cli/main.c's command table calls these.
 */
#ifndef QF_CMD_H
#define QF_CMD_H

#include <stdbool.h>

int qf_cmd_formats(int argc, char **argv);
int qf_cmd_submit(int argc, char **argv);
int qf_cmd_status(int argc, char **argv);
int qf_cmd_cancel(int argc, char **argv);
int qf_cmd_run(int argc, char **argv);
int qf_cmd_bench(int argc, char **argv);
int qf_bench_fleet_main(int argc, char **argv);
int qf_cmd_dataset(int argc, char **argv);
int qf_cmd_quantize(int argc, char **argv);
int qf_cmd_gptq(int argc, char **argv);
int qf_cmd_eval(int argc, char **argv);
int qf_cmd_report(int argc, char **argv);
int qf_cmd_compare(int argc, char **argv);
int qf_cmd_keygen(int argc, char **argv);

#endif
