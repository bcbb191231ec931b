/* cli/cmd_run.c - STUB: being written. */
typedef int qf_stub_cmd_run;
