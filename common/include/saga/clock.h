/*
 * The two clocks every program reads: the wall clock for timestamps that leave the
 * process (events, logs, rows), a monotonic one for time-outs and intervals.
 * Both may be called from any thread.
 */
#ifndef SAGA_CLOCK_H
#define SAGA_CLOCK_H

#include <stdint.h>

/* Milliseconds since the epoch (wall clock). */
int64_t saga_now_ms(void);

/* Milliseconds of CLOCK_MONOTONIC, never 0 (so 0 can mean "not set"); only differences
 * between two readings mean anything. */
int64_t saga_mono_ms(void);

#endif
