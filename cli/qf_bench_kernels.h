/* qf_bench_kernels.h - `qfleet bench --op kernels`: our fast CPU kernels next to the machine's
 * DRAM read bandwidth and, with --vs-ggml, next to ggml's (cli/bench_kernels.c). Reached from
 * cli/cmd_bench.c only; takes the bench command's argv and returns the exit status
 * (qf_cli_args.h: 0, 1 runtime failure, 2 usage error).
 */
#ifndef QF_BENCH_KERNELS_H
#define QF_BENCH_KERNELS_H

int qf_bench_kernels_main(int argc, char **argv);

#endif
