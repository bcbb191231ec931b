/* pin_none.c - qf_pin_thread for QF_CUDA_ONLY builds, which have no hwloc (agent/pin.c needs
 * it): threads stay where the scheduler puts them, as qf_pin.h allows when pinning fails. The
 * CUDA backend's passes are single kernel launches, so nothing it times depends on pinning. */
#include "qf_pin.h"

#include "qf_err.h"

int qf_pin_thread(int index)
{
    (void)index;
    return QF_EUNSUP;
}
