/* agent/measure.c - STUB: being written. */
typedef int qf_stub_measure;
