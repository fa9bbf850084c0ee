/*
 * The relay's own HTTP endpoints: /healthz, /readyz (every source led here or watched
 * as a standby) and /metrics (the saga_relay_* and saga_outbox_* series,
 * docs/OBSERVABILITY.md). relay.c owns the sources; this file only reads them, through
 * a relay_view_fn that copies one source's figures.
 */
#ifndef RELAY_HTTP_H
#define RELAY_HTTP_H

#include "saga/config.h"
#include "saga/metrics.h"

/* One source's figures as /readyz and /metrics show them. */
struct relay_view {
    const char *name;
    int leader, connected, backlog_known;
    long long backlog, oldest_ms, published, refused, delivery_failures;
    const struct saga_hist *latency;
};

/*
 * Fills *out with source i's figures (0 <= i < nsources).
 * locality: the HTTP server's threads, concurrently with the source threads.
 * locks: none; what it reads must be atomics (or constant while the server runs).
 */
typedef void relay_view_fn(void *arg, int i, struct relay_view *out);

struct relay_http;

/*
 * Starts the server on cfg's HTTP_LISTEN (HTTP_* settings from the environment), two
 * threads. Returns NULL after logging the cause. view and arg must stay valid until
 * relay_http_stop. locality: the thread that runs the relay (relay_run).
 */
struct relay_http *relay_http_start(const struct saga_config *cfg, int nsources,
                                    relay_view_fn *view, void *arg);

/* Stops accepting, waits for the requests in progress, frees h. NULL-safe.
 * locality: the thread that started it. */
void relay_http_stop(struct relay_http *h);

#endif
