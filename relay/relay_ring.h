/*
 * The ring of outbox rows a relay source has in flight: produced to Kafka, waiting
 * for their delivery reports, marked published in order as the delivered prefix
 * grows. The ring never moves, so a delivery report can name its slot.
 *
 * Every row pushed gets a ticket, a number never used before in this ring (its
 * position in the ring's whole history): the message carries the ticket, not a
 * pointer, and a report counts only while its slot still holds that ticket. A row
 * given up (relay_ring_reset) retires its ticket, so a late report of a retired
 * producer, or of a message given up, can mark nothing.
 *
 * locality: one source thread owns a ring; delivery reports reach it through
 * rd_kafka_poll on that same thread. locks: none, for every function below.
 */
#ifndef RELAY_RING_H
#define RELAY_RING_H

#include <stdint.h>

#include <librdkafka/rdkafka.h>

struct relay_slot {
    int64_t id;
    int done; /* 0 waiting, 1 delivered, -1 failed */
    rd_kafka_resp_err_t err;
    int64_t created_us; /* the row's created_at (its transaction's insert), wall clock */
    int64_t acked_us;   /* when the delivery report came */
    uint64_t ticket;    /* what the row's message carries; see above */
    /* For the row's publish span (saga/otel.h), filled only while spans are exported: the
     * row's traceparent (its writer's span), topic, key, event id, and where Kafka put it. */
    char traceparent[56];
    char topic[64];
    char key[64];
    char event_id[40];
    int32_t partition;
    int64_t offset;
};

struct relay_ring {
    struct relay_slot *slot;
    int cap, n;
    uint64_t head; /* the ticket of the oldest row; row i has ticket head + i */
};

/* 0, or -1 when out of memory. */
int relay_ring_init(struct relay_ring *r, int cap);
void relay_ring_release(struct relay_ring *r);

static inline int relay_ring_count(const struct relay_ring *r)
{
    return r->n;
}

/* The i-th row in flight, 0 the oldest. */
struct relay_slot *relay_ring_at(struct relay_ring *r, int i);

/*
 * Appends row id (the ring must have room) and returns its slot; *opaque is what
 * the message produced for it carries (RD_KAFKA_V_OPAQUE), for relay_ring_report.
 */
struct relay_slot *relay_ring_push(struct relay_ring *r, int64_t id, int64_t created_us,
                                   void **opaque);

/* A delivery report: the message that carried opaque was delivered (err 0) or failed.
 * Returns its slot, or NULL when the report counts for nothing (see above).
 * locality: the source thread, from the producer's delivery report callback inside its
 * rd_kafka_poll / rd_kafka_flush. locks: none (the ring is that thread's alone). */
struct relay_slot *relay_ring_report(struct relay_ring *r, void *opaque, rd_kafka_resp_err_t err,
                                     int64_t acked_us);

/* How many rows at the head are delivered; *failed set when the next one failed. */
int relay_ring_delivered(struct relay_ring *r, int *failed);

/* How many rows in flight still wait for their report. */
int relay_ring_pending(struct relay_ring *r);

/* Drops the n oldest rows (marked published). */
void relay_ring_pop(struct relay_ring *r, int n);

/* Gives up every row in flight: they are read and sent again. */
void relay_ring_reset(struct relay_ring *r);

#endif
