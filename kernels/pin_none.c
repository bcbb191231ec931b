/* pin_none.c - qf_pin_thread for the QF_CUDA_ONLY and QF_KERNELS_ONLY builds, which have no
 * hwloc (pin.c needs it): threads stay where the scheduler puts them, as qf_pin.h allows when
 * pinning fails. The CUDA backend's passes are single kernel launches, and the kernels-only
 * builds run under an emulator, so nothing they time depends on pinning. */
#include "qf_pin.h"

#include "qf_err.h"

int qf_pin_thread(int index)
{
    (void)index;
    return QF_EUNSUP;
}
