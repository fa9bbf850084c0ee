#include "saga/metrics.h"

const double saga_hist_bounds[SAGA_HIST_BUCKETS] = {
    0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60};

static _Atomic long produced[SAGA_EV_COUNT];

/* locality: any thread. locks: none (relaxed atomics: a scrape may see a count before
 * its sum, never a torn value). */
void saga_hist_observe(struct saga_hist *h, double seconds)
{
    int i = 0;
    if (seconds < 0)
        seconds = 0;
    while (i < SAGA_HIST_BUCKETS && seconds > saga_hist_bounds[i])
        i++;
    atomic_fetch_add_explicit(&h->bucket[i], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&h->sum_us, (uint64_t)(seconds * 1e6), memory_order_relaxed);
    atomic_fetch_add_explicit(&h->count, 1, memory_order_relaxed);
}

void saga_metric_head(struct saga_text *t, const char *name, const char *type, const char *help)
{
    saga_text_printf(t, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

void saga_hist_write(struct saga_text *t, const char *name, const char *labels,
                     const struct saga_hist *h)
{
    uint64_t cum = 0;
    const char *sep = labels && *labels ? "," : "";
    if (!labels)
        labels = "";
    for (int i = 0; i < SAGA_HIST_BUCKETS; i++) {
        cum += atomic_load_explicit(&h->bucket[i], memory_order_relaxed);
        saga_text_printf(t, "%s_bucket{%s%sle=\"%g\"} %llu\n", name, labels, sep,
                         saga_hist_bounds[i], (unsigned long long)cum);
    }
    cum += atomic_load_explicit(&h->bucket[SAGA_HIST_BUCKETS], memory_order_relaxed);
    saga_text_printf(t, "%s_bucket{%s%sle=\"+Inf\"} %llu\n", name, labels, sep,
                     (unsigned long long)cum);
    saga_text_printf(t, "%s_sum{%s} %.6f\n", name, labels,
                     (double)atomic_load_explicit(&h->sum_us, memory_order_relaxed) / 1e6);
    /* The count is the +Inf bucket, so the two always agree within one scrape. */
    saga_text_printf(t, "%s_count{%s} %llu\n", name, labels, (unsigned long long)cum);
}

/* locality: any thread. locks: none, atomics. */
void saga_produced_add(saga_event_type_t type, long n)
{
    if ((unsigned)type < SAGA_EV_COUNT)
        atomic_fetch_add_explicit(&produced[type], n, memory_order_relaxed);
}

void saga_produced_write(struct saga_text *t, const char *service)
{
    saga_metric_head(t, "saga_events_produced_total", "counter",
                     "Events written to the outbox in committed transactions, by type.");
    for (int i = 0; i < SAGA_EV_COUNT; i++) {
        long n = atomic_load_explicit(&produced[i], memory_order_relaxed);
        if (n)
            saga_text_printf(t,
                             "saga_events_produced_total{service=\"%s\",event_type=\"%s\"} %ld\n",
                             service, saga_event_type_name((saga_event_type_t)i), n);
    }
}
