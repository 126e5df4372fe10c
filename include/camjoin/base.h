/*
 * base — the few helpers every module shares: the array length, the
 * must-check mark, and one clock. Header-only; no state, any thread.
 *
 * Clocks: `wall` is CLOCK_REALTIME (what timestamps in rows, logs and
 * PostgreSQL mean); `mono` is CLOCK_MONOTONIC (durations, which a clock
 * step must not bend). On the loop thread, uv_now() is the cheaper
 * monotonic clock for timers; these are for everything else.
 */
#ifndef CAMJOIN_BASE_H
#define CAMJOIN_BASE_H

#include <stdint.h>
#include <time.h>

#define ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

/* On a call whose status must be checked (pgbouncer's _MUSTCHECK): ignoring
 * the result is a warning, so an error under -Werror. */
#define CJ_MUSTCHECK __attribute__((warn_unused_result))

static inline int64_t clock_us_(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static inline int64_t clock_wall_us(void) { return clock_us_(CLOCK_REALTIME); }
static inline int64_t clock_wall_ms(void) { return clock_us_(CLOCK_REALTIME) / 1000; }
static inline int64_t clock_mono_us(void) { return clock_us_(CLOCK_MONOTONIC); }
static inline int64_t clock_mono_ms(void) { return clock_us_(CLOCK_MONOTONIC) / 1000; }

#endif
