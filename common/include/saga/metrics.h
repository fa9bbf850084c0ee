/*
 * Prometheus metrics (text format 0.0.4) for every process (docs/OBSERVABILITY.md):
 * lock-free histograms, counters of produced events, and the helpers that write
 * HELP/TYPE lines and series. Any thread may observe; /metrics reads.
 */
#ifndef SAGA_METRICS_H
#define SAGA_METRICS_H

#include <stdatomic.h>
#include <stdint.h>

#include "saga/events.h"
#include "saga/http.h"

/* Upper bounds in seconds: 1 ms ... 60 s (and +Inf). */
#define SAGA_HIST_BUCKETS 15
extern const double saga_hist_bounds[SAGA_HIST_BUCKETS];

struct saga_hist {
    _Atomic uint64_t bucket[SAGA_HIST_BUCKETS + 1]; /* not cumulative; the last is +Inf */
    _Atomic uint64_t count;
    _Atomic uint64_t sum_us;
};

void saga_hist_observe(struct saga_hist *h, double seconds);

/* "# HELP name help\n# TYPE name type\n" */
void saga_metric_head(struct saga_text *t, const char *name, const char *type, const char *help);
/* name_bucket{labels,le="..."} ..., name_sum, name_count; labels may be "". */
void saga_hist_write(struct saga_text *t, const char *name, const char *labels,
                     const struct saga_hist *h);

/* Events this process wrote to its outbox and committed, by type. */
void saga_produced_add(saga_event_type_t type, long n);
/* saga_events_produced_total{service=...,event_type=...} for every type produced so far. */
void saga_produced_write(struct saga_text *t, const char *service);

#endif
