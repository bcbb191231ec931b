/* suites/suite.c - STUB: being written. */
typedef int qf_stub_suite;
