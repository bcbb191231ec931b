/* cuda_util.h - what the CUDA backend's translation units share: turning a cudaError_t into
 * a qf_err with a reason for qf_cuda_last_error(), and the check that a device is there.
 * C++ (included only by the .cu files of kernels/cuda); the public API is qf_cuda.h.
 */
#ifndef QF_CUDA_UTIL_H
#define QF_CUDA_UTIL_H

#include <cuda_runtime.h>

#include "qf_cuda.h"

namespace qfc {

/* Records "what: CUDA's message (its name)" as the last error and returns the qf_err for e:
 * QF_EUNSUP for no driver, no device or no kernel image for it, QF_ENOMEM for device memory,
 * QF_EIO for anything else (a kernel fault included). Clears CUDA's non-sticky error state. */
int fail(cudaError_t e, const char *what);

/* Records a reason of our own and returns err. */
int fail_msg(int err, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* 0 if device 0 is usable (selected once), else QF_EUNSUP with the reason recorded. */
int need_device();

/* The launch's configuration error, if any, as fail() reports it. */
int check_launch(const char *what);

} /* namespace qfc */

#endif
