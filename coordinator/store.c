/* coordinator/store.c - STUB: being written. */
typedef int qf_stub_store;
