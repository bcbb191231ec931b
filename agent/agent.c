/* agent/agent.c - STUB: being written. */
typedef int qf_stub_agent;
