/* pin.c - thread pinning with hwloc (see qf_pin.h). */
#include "qf_pin.h"

#include <hwloc.h>
#include <pthread.h>

#include "qf_err.h"

static hwloc_topology_t g_topo;
static int g_cores;
static pthread_once_t g_once = PTHREAD_ONCE_INIT;

static void load(void)
{
    hwloc_topology_t t;
    if (hwloc_topology_init(&t) != 0)
        return;
    if (hwloc_topology_load(t) != 0) {
        hwloc_topology_destroy(t);
        return;
    }
    g_cores = hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_CORE);
    g_topo = t;   /* kept for the life of the process: threads pin on every pass */
}

int qf_pin_thread(int index)
{
    pthread_once(&g_once, load);
    if (!g_topo || g_cores <= 0 || index < 0)
        return QF_EUNSUP;
    hwloc_obj_t core = hwloc_get_obj_by_type(g_topo, HWLOC_OBJ_CORE, (unsigned)(index % g_cores));
    if (!core || !core->cpuset)
        return QF_EUNSUP;
    return hwloc_set_cpubind(g_topo, core->cpuset, HWLOC_CPUBIND_THREAD) == 0 ? 0 : QF_EUNSUP;
}
