/*
 * The write side of the transactional outbox (docs/RELIABILITY.md, "The chain";
 * docs/REPLACING-A-SERVICE.md, "The outbox").
 *
 * A service appends its events inside the same open transaction as its business
 * change; the outbox-relay publishes them after the commit. Appending never
 * talks to Kafka. The transaction that appended is committed with
 * saga_outbox_commit_notify, which wakes the relay with a NOTIFY on
 * SAGA_OUTBOX_CHANNEL right after the COMMIT (below: why not inside it). A plain
 * COMMIT works too: the relay then finds the rows at its next poll
 * (RELAY_POLL_INTERVAL). Transactions that append nothing pay nothing.
 *
 * Ordering: rows are published in id order, and ids are taken at insert. Two
 * transactions writing events for the same key must therefore be serialized by
 * the service (lock the order's row before appending), which the saga's
 * per-order handlers do anyway.
 */
#ifndef SAGA_OUTBOX_H
#define SAGA_OUTBOX_H

#include <libpq-fe.h>

#include "saga/err.h"
#include "saga/events.h"
#include "saga/serde.h"

#define SAGA_OUTBOX_CHANNEL "saga_outbox"

struct saga_header {
    const char *name;
    const char *value;
};

struct saga_outbox_row {
    const char *topic;
    const char *key;        /* the Kafka key: the order id */
    const char *event_type; /* "OrderPlaced" */
    const char *event_id;
    const void *payload; /* encoded, framing included */
    size_t payload_len;
    const struct saga_header *headers;
    int nheaders;
};

/*
 * Appends row inside conn's open transaction (SAGA_ERR_INVALID if none is open).
 * Database failures are classified TRANSIENT or PERMANENT. Commit with
 * saga_outbox_commit_notify.
 */
saga_err_t saga_outbox_append(PGconn *conn, const struct saga_outbox_row *row, char *errstr,
                              size_t errstr_size);

/*
 * Encodes ev with serde (scratch is reused for the bytes) and appends it to the
 * event's topic, keyed by its order id, with the headers of saga/headers.h.
 */
saga_err_t saga_outbox_append_event(PGconn *conn, struct saga_serde *serde,
                                    const struct saga_event *ev, struct saga_buf *scratch,
                                    char *errstr, size_t errstr_size);

/*
 * Rows gathered in memory and written with one INSERT: the consumer runtime
 * collects what handlers emit during a transaction and flushes it before COMMIT,
 * so a batch of events costs one round trip for the outbox. Like an append, the
 * flush queues no NOTIFY: commit with saga_outbox_commit_notify.
 *
 * Why the NOTIFY goes after the COMMIT: a NOTIFY queued in a transaction takes PostgreSQL's
 * notification queue lock, one lock for the whole server, at commit and holds it until the commit's
 * WAL flush is done, so every committing transaction that notifies, in any database, waits for the
 * others' flushes one after another instead of sharing one (group commit). With pgbench running an
 * outbox step (inbox insert, state update, outbox insert) from 8 clients on 2 cores: 1,230 tps with
 * pg_notify in the transaction, 1,790 tps with it right after the commit.
 */
struct saga_outbox_batch {
    int n, cap;
    struct saga_outbox_pending *rows;
    unsigned char *data; /* payloads and strings, back to back */
    size_t len, capdata;
};

/* Encodes ev and adds it; nothing is sent yet. */
saga_err_t saga_outbox_batch_add_event(struct saga_outbox_batch *b, struct saga_serde *serde,
                                       const struct saga_event *ev, struct saga_buf *scratch,
                                       char *errstr, size_t errstr_size);
/* Writes every gathered row inside conn's open transaction, in order, then empties b. */
saga_err_t saga_outbox_batch_flush(PGconn *conn, struct saga_outbox_batch *b, char *errstr,
                                   size_t errstr_size);
/*
 * Commits conn's open transaction and, in the same round trip, wakes the relay
 * with a NOTIFY on SAGA_OUTBOX_CHANNEL in a transaction of its own. Returns the
 * COMMIT's outcome (classified TRANSIENT or PERMANENT; PERMANENT too when the
 * transaction had failed and the COMMIT rolled it back); the NOTIFY's is ignored:
 * the relay polls as well (RELAY_POLL_INTERVAL), so a lost wake-up costs latency,
 * never a row; nor does a connection lost after the COMMIT's answer came.
 * An error does not always mean "rolled back": when the connection broke after the
 * COMMIT was sent, the server may have committed. A caller that must tell its
 * client the truth asks the database (pg_xact_status of the transaction's
 * pg_current_xact_id, as the order API does).
 */
saga_err_t saga_outbox_commit_notify(PGconn *conn, char *errstr, size_t errstr_size);
/* Forgets the gathered rows (after a rollback). */
void saga_outbox_batch_reset(struct saga_outbox_batch *b);
void saga_outbox_batch_release(struct saga_outbox_batch *b);

#endif
