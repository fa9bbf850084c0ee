/*
 * The consumer runtime every service runs (docs/RELIABILITY.md): consume a group's
 * topics, decode, and call the service's handler for each event inside one
 * PostgreSQL transaction that also records the event in the inbox and appends
 * the events the handler emits to the outbox. Kafka offsets are stored only
 * after that transaction commits, so a crash anywhere means redelivery, and the
 * inbox turns redelivery into no effect.
 *
 *   static saga_handle_result_t on_placed(struct saga_tx *tx, const struct saga_event *ev,
 *                                         void *arg) { ... saga_tx_emit(tx, &reserved); ... }
 *   conf.handlers[SAGA_EV_ORDER_PLACED] = on_placed;
 *   saga_consumer_new(&c, &conf, errstr, sizeof(errstr));
 *   code = saga_consumer_run(c);      // until *conf.stop
 *
 * Several messages share a transaction when they are available; if one fails,
 * the batch is rolled back and replayed one message per transaction, so a bad
 * message never rolls back good ones. One failure policy, decided in the runtime
 * (common/src/consumer.c) from the classified result of a handler or of the
 * runtime's own SQL (by SQLSTATE): TRANSIENT (database gone, serialization
 * failure, deadlock, registry down) is retried with exponential backoff and
 * jitter for as long as it lasts, the partition does not move; INVALID
 * (undecodable bytes, unknown schema, an event whose type or meta.producer does not
 * belong on the topic it arrived on, checked before any handler (saga/topology.h), a
 * handler's INVALID, a permanent SQL error such as 54000) is tried max_attempts times,
 * then the original message goes to
 * the service's DLQ topic with error headers, and the partition moves on once the
 * broker has acknowledged the dead letter. Handlers return what saga_tx_emit and
 * saga_tx_query return as it is. Offsets and rebalances: common/src/consumer_kafka.c;
 * the transaction, inbox and deferrals: common/src/consumer_tx.c.
 */
#ifndef SAGA_CONSUMER_H
#define SAGA_CONSUMER_H

#include <stdatomic.h>
#include <stdint.h>

#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>

#include "saga/config.h"
#include "saga/err.h"
#include "saga/events.h"
#include "saga/outbox.h"
#include "saga/pg.h" /* saga_pg_text_array, for handlers */
#include "saga/serde.h"

typedef enum saga_handle_result {
    SAGA_HANDLE_OK = 0,    /* done: its effects, the inbox row and emitted events commit */
    SAGA_HANDLE_DEFER,     /* its prerequisite has not arrived: keep it durably, re-run later */
    SAGA_HANDLE_TRANSIENT, /* roll back and retry later (tx->errstr says why) */
    SAGA_HANDLE_INVALID,   /* this event can never be handled: to the DLQ (tx->errstr says why) */
} saga_handle_result_t;

/* What a handler works with: a connection inside the open transaction. */
struct saga_tx {
    PGconn *conn;
    const char *consumer; /* the consumer group, e.g. "payment-service" */
    char errstr[256];     /* a failing handler's reason */
    /* runtime's */
    struct saga_serde *serde;
    struct saga_buf *scratch;
    struct saga_outbox_batch *outbox;
    int emitted;
    int emitted_by_type[SAGA_EV_COUNT];
    char span[56];                 /* this handler's span (W3C traceparent), see saga/trace.h */
    const char *cause_traceparent; /* the handled event's */
};

/*
 * Adds ev to the outbox rows of tx's transaction (they are written, in order and
 * in one statement, just before the commit). Returns OK; TRANSIENT when encoding
 * needs something that is down for now (the schema registry); INVALID for an event
 * that does not encode. A handler returns a failure as it is: the runtime decides.
 */
saga_handle_result_t saga_tx_emit(struct saga_tx *tx, const struct saga_event *ev);

/* Maps a failed PGresult of a handler's statement to a result, filling tx->errstr. */
saga_handle_result_t saga_tx_pg_failure(struct saga_tx *tx, const PGresult *res);

/*
 * Runs sql with text parameters inside tx's transaction. On success returns OK
 * and, when res is not NULL, the result (the caller PQclear()s it); on failure
 * maps the error like saga_tx_pg_failure and leaves *res NULL.
 */
saga_handle_result_t saga_tx_query(struct saga_tx *tx, PGresult **res, const char *sql, int nparams,
                                   const char *const *params);

/*
 * Starts out as an event of type caused by cause: a new event_id (written into
 * id_buf), the same order, correlation and trace, causation = cause's event_id,
 * occurred_at = now, producer = producer. The body is zeroed for the caller.
 */
void saga_event_follow(struct saga_event *out, saga_event_type_t type,
                       const struct saga_event *cause, const char *producer, char id_buf[37]);

typedef saga_handle_result_t (*saga_handler_fn)(struct saga_tx *tx, const struct saga_event *ev,
                                                void *arg);

struct saga_consumer_conf {
    const struct saga_config *cfg; /* DATABASE_URL, KAFKA_*, SCHEMA_REGISTRY_URL, SAGA_SCHEMA_DIR */
    const char *group;             /* consumer group and inbox name: "payment-service" */
    const char *dlq_topic;         /* "payment.dlq" */
    const char *const *topics;
    int ntopics;
    saga_handler_fn handlers[SAGA_EV_COUNT]; /* NULL: the type is skipped */
    void *arg;
    /*
     * Event types (bit 1 << type) after whose successful handling the events
     * deferred for the same order are run again (e.g. OrderPlaced, OrderCancelled).
     */
    unsigned releases_deferred;
    atomic_int *stop; /* set (by a signal handler, any thread) to stop gracefully */
    /* Called with arg on the consumer thread after each transaction of handled events has
     * committed (never after a rollback); may be NULL. For what must wait for the commit
     * and needs no database: waking a thread of the process. */
    void (*after_commit)(void *arg);
};

/* Tunables from the environment (docs/CONFIGURATION.md), read by saga_consumer_new. */
struct saga_consumer_settings {
    int batch_size;               /* CONSUMER_BATCH_SIZE, default 100 */
    int max_attempts;             /* DLQ_MAX_ATTEMPTS, default 3 */
    int64_t backoff_min_ms;       /* CONSUMER_BACKOFF_MIN, default 100ms */
    int64_t backoff_max_ms;       /* CONSUMER_BACKOFF_MAX, default 30s */
    int64_t inbox_retention_ms;   /* INBOX_RETENTION, default 7 days */
    int64_t inbox_prune_every_ms; /* INBOX_PRUNE_INTERVAL, default 60s */
};

saga_err_t saga_consumer_settings_load(struct saga_consumer_settings *s, char *errstr,
                                       size_t errstr_size);

struct saga_consumer;

saga_err_t saga_consumer_new(struct saga_consumer **out, const struct saga_consumer_conf *conf,
                             char *errstr, size_t errstr_size);

/*
 * Consumes until *conf->stop; then finishes or abandons the batch in hand,
 * commits, closes the consumer and flushes the DLQ producer. Returns
 * SAGA_EXIT_OK, or SAGA_EXIT_FAILURE on a fatal Kafka error (logged).
 */
int saga_consumer_run(struct saga_consumer *c);
/* locality: saga_consumer_new, _run and _destroy on one thread (the consumer thread; the
 * main thread in every service); librdkafka calls back only inside its polls. What other
 * threads may call says so below. */

void saga_consumer_destroy(struct saga_consumer *c);

/* Counters since start, for metrics and tests. */
struct saga_consumer_stats {
    int64_t handled, duplicates, deferred, released, skipped, retries, dead_lettered;
    int64_t dlq_failures; /* dead letters the broker refused or never acknowledged */
};
void saga_consumer_stats(const struct saga_consumer *c, struct saga_consumer_stats *out);

/*
 * Appends the runtime's series to a /metrics body: events consumed by type and
 * outcome, handler latency, retries, dead letters, consumer lag. Any thread.
 */
struct saga_text;
void saga_consumer_write_metrics(const struct saga_consumer *c, struct saga_text *t);

/* 1 once the group has given this member its first assignment (readiness); any thread. */
int saga_consumer_joined(const struct saga_consumer *c);

#endif
