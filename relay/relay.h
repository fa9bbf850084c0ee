/*
 * The outbox relay: one thread per source database, each publishing that
 * database's committed outbox rows to Kafka while it holds the source's leader
 * lock (docs/RELIABILITY.md, docs/CONFIGURATION.md "outbox-relay").
 */
#ifndef RELAY_H
#define RELAY_H

#include <stdatomic.h>
#include <stdint.h>

#include "relay_sources.h"
#include "saga/config.h"

struct relay_settings {
    int batch_size;           /* RELAY_BATCH_SIZE: rows per round (default 500) */
    int64_t poll_ms;          /* RELAY_POLL_INTERVAL: look without a NOTIFY this often */
    int64_t standby_retry_ms; /* RELAY_STANDBY_RETRY: a standby tries the lock this often */
    int64_t retention_ms;     /* RELAY_RETENTION: keep published rows this long */
    int64_t prune_every_ms;   /* RELAY_PRUNE_INTERVAL */
    int log_deliveries;       /* RELAY_LOG_DELIVERIES: a log line per delivery report (0/1) */
};

/* The advisory lock a source's leader holds (per database, so one key serves all). */
#define RELAY_LEADER_LOCK 7170002

/* Reads the RELAY_* settings above. */
saga_err_t relay_settings_load(struct relay_settings *s, char *errstr, size_t errstr_size);
void relay_settings_print(const struct relay_settings *s, FILE *out);

/*
 * Runs until *stop becomes non-zero (then finishes the round in flight) or a
 * fatal Kafka error. Returns SAGA_EXIT_OK or SAGA_EXIT_FAILURE. Every source thread
 * reads *stop, so it is an atomic (a signal handler may store to it: lock-free).
 */
int relay_run(const struct saga_config *cfg, const struct relay_sources *sources,
              const struct relay_settings *settings, atomic_int *stop);

#endif
