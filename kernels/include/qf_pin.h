/* qf_pin.h - pins measuring threads to cores with hwloc, so a sample is not a migration.
 *
 * Thread i of a measurement runs on core i (modulo the cores the process may use), the same
 * layout every repetition. The topology is loaded once per process on first use; failures
 * (no hwloc support, a restricted cpuset) leave the thread where it is and are not errors: an
 * unpinned measurement is still a measurement. Called once per thread per pass: cheap.
 */
#ifndef QF_PIN_H
#define QF_PIN_H

/* Binds the calling thread to core `index` (mod the core count). 0 if pinned. */
int qf_pin_thread(int index);

#endif
