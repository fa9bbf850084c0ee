/*
 * The per-order rules every saga participant keeps, written once (design: events about
 * one order can arrive out of order across topics; a trigger that arrives before the
 * OrderPlaced it needs is kept and acted on when OrderPlaced arrives; a trigger for an
 * order already cancelled does nothing, a tombstone remembers a cancellation that came
 * before OrderPlaced).
 *
 * A participant keeps one row per order it has heard of in its own `orders` table, with
 * at least `order_id text PRIMARY KEY`, `placed boolean NOT NULL DEFAULT false`,
 * `cancelled boolean NOT NULL DEFAULT false` and `updated_at timestamptz`, and every other
 * column with a default (the row may be created by any event). Every handler of an event
 * about the order locks that row first, so the events of one order are handled one after
 * another even across partitions and consumers.
 *
 *   struct saga_order_row o;
 *   if ((res = saga_order_trigger(tx, ev, "customer_id, amount", &o)) ||
 *       o.gate == SAGA_ORDER_CANCELLED)
 *       goto done;                       // DEFERred, failed, or a recorded no-op
 *   amount = saga_order_col(&o, 1);      // the columns asked for, from 0
 *   ...
 * done:
 *   saga_order_row_release(&o);
 *
 * All of these run inside the handler's transaction (tx) on the consumer's thread.
 */
#ifndef SAGA_PARTICIPANT_H
#define SAGA_PARTICIPANT_H

#include "saga/consumer.h"

enum saga_order_gate {
    SAGA_ORDER_WAITING,   /* neither placed nor cancelled: its OrderPlaced has not arrived */
    SAGA_ORDER_PLACED,    /* placed and not cancelled: act on it */
    SAGA_ORDER_CANCELLED, /* cancelled, before OrderPlaced (a tombstone) or after */
};

struct saga_order_row {
    enum saga_order_gate gate;
    int placed, cancelled;
    PGresult *res; /* one row: placed, cancelled, then the columns asked for */
};

/*
 * Locks the order's row, creating it (neither placed nor cancelled) when missing, and
 * reads `columns` (a comma-separated list of the table's columns, or NULL). OK, or the
 * statement's failure classified; *row is valid either way (release it).
 */
saga_handle_result_t saga_order_lock(struct saga_tx *tx, const char *order_id, const char *columns,
                                     struct saga_order_row *row);

/*
 * For an event that needs its order placed (a trigger): locks the row like
 * saga_order_lock; DEFER while the order is WAITING, so the runtime keeps the event until
 * OrderPlaced releases it; OK otherwise, with row->gate CANCELLED for an order that was
 * cancelled (the event is recorded as handled and does nothing: logged here).
 */
saga_handle_result_t saga_order_trigger(struct saga_tx *tx, const struct saga_event *ev,
                                        const char *columns, struct saga_order_row *row);

/*
 * For OrderCancelled (or any cancellation): locks the row and marks it cancelled, a
 * tombstone when OrderPlaced has not arrived yet. row->placed and row->cancelled say what
 * they were before; row->gate is CANCELLED.
 */
saga_handle_result_t saga_order_cancel(struct saga_tx *tx, const char *order_id,
                                       const char *columns, struct saga_order_row *row);

/* Column i (from 0) of the columns asked for: its text, NULL when SQL NULL. */
const char *saga_order_col(const struct saga_order_row *row, int i);

void saga_order_row_release(struct saga_order_row *row);

#endif
