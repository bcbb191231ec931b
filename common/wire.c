/* common/wire.c - STUB: being written. */
typedef int qf_stub_wire;
