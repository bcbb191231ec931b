/* agent/fingerprint.c - STUB: being written. */
typedef int qf_stub_fingerprint;
