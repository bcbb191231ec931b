/* main.c - STUB: being written. */
#include "qf_bench.h"
int main(int argc, char **argv) { return qf_bench_main(argc, argv); }
