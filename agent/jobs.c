/* agent/jobs.c - STUB: being written. */
typedef int qf_stub_jobs;
