/* common/job.c - STUB: being written. */
typedef int qf_stub_job;
