/* qf_fingerprint.h - what this machine is, from hwloc, for the fleet.
 *
 * The fingerprint is what makes two results comparable: CPU model, packages/cores/PUs, cache
 * sizes, NUMA nodes, memory, ISA flags, GPUs and OpenCL/CUDA devices hwloc sees, plus the
 * qfleet version, commit, compiler and flags and the kernel variants available. It is a JSON
 * object (text) stored by the coordinator with every agent; caps is the part selectors match.
 */
#ifndef QF_FINGERPRINT_H
#define QF_FINGERPRINT_H

#include "qf_job.h"

/* Fills *caps (name given) and *json (caller frees). QF_EUNSUP/QF_ENOMEM on failure. */
int qf_fingerprint_collect(const char *name, qf_agent_caps *caps, char **json);

#endif
