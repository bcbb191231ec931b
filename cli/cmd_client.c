/* cli/cmd_client.c - STUB: being written. */
typedef int qf_stub_cmd_client;
