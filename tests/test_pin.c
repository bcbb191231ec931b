/* test_pin.c - thread pinning: a pinned thread runs on the core it was given. */
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <setjmp.h>
#include <cmocka.h>

#include <hwloc.h>
#include <sched.h>

#include "qf_pin.h"

/* After pinning to core i, the thread's CPU belongs to that core, for every core and beyond
 * (indices wrap around the core count). */
static void test_pinned_thread_runs_on_its_core(void **state)
{
    (void)state;
    hwloc_topology_t t;
    assert_int_equal(hwloc_topology_init(&t), 0);
    assert_int_equal(hwloc_topology_load(t), 0);
    int cores = hwloc_get_nbobjs_by_type(t, HWLOC_OBJ_CORE);
    assert_true(cores > 0);
    for (int i = 0; i < 2 * cores; i++) {
        assert_int_equal(qf_pin_thread(i), 0);
        hwloc_obj_t core = hwloc_get_obj_by_type(t, HWLOC_OBJ_CORE, (unsigned)(i % cores));
        int cpu = sched_getcpu();
        if (!hwloc_bitmap_isset(core->cpuset, (unsigned)cpu))
            fail_msg("pinned to core %d (index %d) but running on CPU %d", i % cores, i, cpu);
    }
    assert_int_not_equal(qf_pin_thread(-1), 0);
    hwloc_topology_destroy(t);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pinned_thread_runs_on_its_core),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
