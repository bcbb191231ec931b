/* bench.c - STUB: being written. */
#include "qf_bench.h"
int qf_bench_main(int argc, char **argv) { (void)argc; (void)argv; return 0; }
