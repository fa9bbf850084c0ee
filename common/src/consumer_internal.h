/*
 * The consumer runtime's insides, shared by its three files. Each question has one home:
 *
 *   consumer_kafka.c  the Kafka side: the group membership and what this member holds per
 *                     partition (assignment epochs), when an offset is stored, waiting with
 *                     the assignment paused, and the DLQ with its delivery reports.
 *   consumer_tx.c     the database side: the transaction, the inbox, deferring an event
 *                     and releasing the deferred ones, the runtime's own SQL classified.
 *   consumer.c        the failure policy (what is retried, what goes to the DLQ and when),
 *                     the loop, settings, life cycle and metrics.
 *
 * Everything here runs on the thread that calls saga_consumer_run (librdkafka calls the
 * rebalance, error and delivery callbacks from inside our own poll calls), except what is
 * read under mu by the metrics and readiness readers.
 */
#ifndef SAGA_CONSUMER_INTERNAL_H
#define SAGA_CONSUMER_INTERNAL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "saga/clock.h"
#include "saga/consumer.h"
#include "saga/log.h"
#include "saga/metrics.h"
#include "saga/otel.h"
#include "saga/topology.h"

/* A message in hand: consumed, not finished (handled, deferred or dead-lettered) yet. */
struct msg {
    rd_kafka_message_t *rkm;
    struct saga_event ev;
    saga_decode_err_t derr;
    char derrstr[256];
    char refused[320];    /* decoded, but it does not belong on its topic: why ("" if it does) */
    int attempts;         /* permanent failures so far */
    char error[512];      /* the last failure */
    int64_t first_failed; /* wall clock ms, 0 until it first fails */
    uint64_t epoch;       /* its partition's assignment epoch when it was consumed */
};

/* A partition this member was given at some point; epoch changes with every assign/revoke. */
struct held_part {
    char *topic;
    int32_t partition;
    uint64_t epoch;
    int assigned;
};

/* Outcomes of consumed events, for saga_events_consumed_total. */
enum {
    OUT_HANDLED,
    OUT_DUPLICATE,
    OUT_DEFERRED,
    OUT_RELEASED,
    OUT_SKIPPED,
    OUT_EMITTED,
    OUT_COUNT
};

struct saga_consumer {
    struct saga_consumer_conf conf;
    struct saga_consumer_settings set;
    struct saga_topic_owners owners; /* SAGA_TOPIC_OWNERS: owners of topics outside the suite */
    rd_kafka_t *rk;
    rd_kafka_t *dlq;
    struct saga_serde *serde;
    struct saga_registry *registry;
    PGconn *conn;
    struct saga_buf scratch;
    struct saga_outbox_batch outbox;
    struct saga_consumer_stats stats; /* under mu */
    /* Per event type, by outcome: what the open transaction did (pend) and what
     * committed (total, under mu). */
    struct type_counts {
        int64_t n[SAGA_EV_COUNT][OUT_COUNT];
    } pend, total;
    struct saga_hist handler_latency[SAGA_EV_COUNT];
    pthread_mutex_t mu_storage;
    pthread_mutex_t *mu; /* &mu_storage, usable from const readers */
    /* consumer lag per topic from librdkafka's statistics (under mu) */
    struct {
        char topic[128];
        int64_t lag;
    } lag[16];
    int nlag;
    struct msg *batch;
    int nbatch;
    /* Kafka side (consumer_kafka.c) */
    struct held_part *parts;
    int nparts, capparts;
    uint64_t next_epoch;
    int auto_commit;
    int static_member; /* group.instance.id set (SAGA_INSTANCE_ID) */
    uint64_t dlq_seq;  /* the dead letter in flight; reports of others are stale */
    int dlq_done;      /* its delivery report arrived */
    rd_kafka_resp_err_t dlq_err;
    _Atomic int assigned;    /* partitions held now (for readiness) */
    _Atomic int joined;      /* 1 once the group gave this member its first assignment */
    _Atomic int cooperative; /* the group's rebalance protocol is COOPERATIVE */
    _Atomic int fatal;
    char fatal_reason[512];
    _Atomic int fenced; /* the consumer was fenced (consumer_kafka_refenced) */
    char fenced_reason[400];
    int64_t fenced_at; /* saga_mono_ms() of the last reopening, 0: none */
    /* database side (consumer_tx.c) */
    int64_t last_prune;
    int64_t last_dead_sweep;
    int dead_pending; /* a committed transaction marked a released event dead */
    unsigned seed;
    /* spans of the open transaction (consumer_spans.c), exported when it commits */
    struct consumer_spans {
        struct saga_span *v;
        int n, cap;
        int64_t tx_start;
    } spans;
};

/* --- spans (consumer_spans.c): each returns at once when span export is off --- */

/* A transaction begins: spans pending from before are forgotten. */
void consumer_spans_tx_begin(struct saga_consumer *c);
/* Unix ns when span export is on, else 0 (no clock read). */
int64_t consumer_spans_now(void);
/* ev was handled (outcome "handled", "deferred", "released") in tx's span; rkm: its
 * message (NULL for a released one); emitted_before: tx->emitted_by_type before its
 * handler ran, handler_start: consumer_spans_now() then. */
void consumer_spans_handled(struct saga_consumer *c, const struct saga_event *ev,
                            const rd_kafka_message_t *rkm, const struct saga_tx *tx,
                            const int *emitted_before, int64_t handler_start, const char *outcome);
/* The transaction committed (its COMMIT began at commit_start): its spans are exported. */
void consumer_spans_commit(struct saga_consumer *c, int64_t commit_start, int batch_events);
/* The transaction rolled back: its spans are forgotten. */
void consumer_spans_discard(struct saga_consumer *c);
/* m was sent to the DLQ: a span with status ERROR and the reason. */
void consumer_spans_dead_letter(struct saga_consumer *c, const struct msg *m, const char *reason,
                                const char *error);
void consumer_spans_release(struct saga_consumer *c);

int consumer_stopping(const struct saga_consumer *c);
void consumer_log_msg(saga_log_level_t lvl, const struct msg *m, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* --- the Kafka side (consumer_kafka.c) --- */

/* Creates the group consumer and the DLQ producer and subscribes; SAGA_OK or errstr. */
saga_err_t consumer_kafka_open(struct saga_consumer *c, char *errstr, size_t errstr_size);
/* Commits what was stored, leaves the group, flushes the DLQ producer. */
void consumer_kafka_close(struct saga_consumer *c);
/* After the consumer was fenced (c->fenced): a new consumer in its place, or a fatal
 * error when it was fenced twice within 30 s (another instance has our id).
 * @locality the run loop, with no batch held. */
void consumer_kafka_refenced(struct saga_consumer *c);
void consumer_kafka_destroy(struct saga_consumer *c);
/* Polls up to batch_size messages into c->batch (waiting up to timeout_ms for the first). */
void consumer_kafka_poll_batch(struct saga_consumer *c, int timeout_ms);
/* 1 while m's partition is still held under the assignment m was consumed in. */
int consumer_kafka_held(const struct saga_consumer *c, const struct msg *m);
/* Stores m's offset + 1 for the next commit, if m's partition is still held. */
void consumer_kafka_store(struct saga_consumer *c, const struct msg *m);
/*
 * Waits up to ms with the assignment paused, keeping the membership alive (polling the
 * group and the DLQ producer); returns early on stop, a fatal error, a delivery report
 * of the dead letter in flight (when until_report), or when m's partition is no longer
 * held (m may be NULL).
 */
void consumer_kafka_wait(struct saga_consumer *c, int64_t ms, const struct msg *m,
                         int until_report);
/*
 * Sends a dead letter (key, value, headers h: taken over) to the DLQ topic and waits for
 * its delivery report (keeping the membership alive). 0 once the broker acknowledged it;
 * -1 with errstr when it was refused or could not be sent, or when m (may be NULL) stopped
 * being held meanwhile, or after timeout_ms (0: no limit).
 */
int consumer_kafka_send_dlq(struct saga_consumer *c, const struct msg *m, void *key, size_t key_len,
                            void *value, size_t len, rd_kafka_headers_t *h, int64_t timeout_ms,
                            char *errstr, size_t errstr_size);

/* --- the database side (consumer_tx.c) --- */

/*
 * Handles msgs[0..n) in one transaction (inbox, handlers, deferrals, releases, outbox,
 * commit). On failure everything is rolled back, *failed_at says which message failed
 * (-1: the transaction itself) and errstr why; the result is classified (TRANSIENT,
 * INVALID for a permanent failure).
 */
saga_handle_result_t consumer_tx_run(struct saga_consumer *c, struct msg *msgs, int n,
                                     int *failed_at, char *errstr, size_t errstr_size);
/* Deletes inbox rows past their retention, at most every INBOX_PRUNE_INTERVAL. */
void consumer_tx_prune_inbox(struct saga_consumer *c);
/*
 * Sends deferred events that failed when released to the DLQ and deletes them once the
 * broker has them (force: now, else at most every few seconds).
 */
void consumer_tx_dead_letter_released(struct saga_consumer *c, int force);
void consumer_tx_close(struct saga_consumer *c);

/* --- metrics --- */
void consumer_count_commit(struct saga_consumer *c, const struct saga_tx *tx);

#endif
