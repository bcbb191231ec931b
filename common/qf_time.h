/* qf_time.h - the two clocks quantfleet reads, in seconds as doubles.
 *
 * qf_time_mono: CLOCK_MONOTONIC, for durations, deadlines and liveness (an NTP step must not
 * make every agent look silent). qf_time_real: CLOCK_REALTIME, for what is stored and shown
 * (submitted_at, last_seen in the database). Header-only: two tiny inline functions.
 */
#ifndef QF_TIME_H
#define QF_TIME_H

#include <time.h>

static inline double qf_time_mono(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static inline double qf_time_real(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

#endif
