/* agent/runner.c - STUB: being written. */
typedef int qf_stub_runner;
