/*
 * Test support: one fully populated example of every event type, with every
 * optional field set (or, with minimal=1, left out) — for round trips, the
 * benchmark and fuzz seeds. The strings are static; nothing to free.
 */
#ifndef SAGA_TEST_SAMPLE_EVENTS_H
#define SAGA_TEST_SAMPLE_EVENTS_H

#include "saga/events.h"

void sample_event(struct saga_event *ev, saga_event_type_t type, int minimal);

/* A five-line OrderPlaced, the shape the benchmarks measure. */
void sample_order_placed5(struct saga_event *ev);

#endif
