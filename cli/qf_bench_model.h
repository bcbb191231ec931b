/* qf_bench_model.h - `qfleet bench --op model MODEL.gguf [--vs-llama]`: our llama engine's
 * pp/tg tokens per second next to llama.cpp's (cli/bench_model.c). Reached from
 * cli/cmd_bench.c only; takes the bench command's argv and returns the exit status
 * (qf_cli_args.h: 0, 1 runtime failure, 2 usage error).
 */
#ifndef QF_BENCH_MODEL_H
#define QF_BENCH_MODEL_H

int qf_bench_model_main(int argc, char **argv);

#endif
