/* coordinator/coordinator.c - STUB: being written. */
typedef int qf_stub_coordinator;
