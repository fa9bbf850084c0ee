/*
 * notification-service's sender: delivers the notifications the handlers recorded,
 * after their transaction committed, from a thread and a PostgreSQL connection of
 * its own, so a slow or failing sink never holds up the consumer.
 *
 * A handler only inserts the `notifications` row (status 'pending'); once its transaction
 * has committed, the consumer wakes this process's sender (notif_sender_wake). The sender,
 * woken so, by a NOTIFY on NOTIF_SENDER_CHANNEL (what versions up to 0.2 sent from the
 * handler's transaction; still listened for during a rolling upgrade) or every poll
 * interval,
 * takes one due row at a time (FOR UPDATE SKIP LOCKED, so several processes can send
 * side by side), hands it to the configured sink, and in the same transaction marks
 * it 'sent' and appends its NotificationSent to the outbox. A failure leaves the row
 * 'pending' with next_attempt_at pushed out (exponential backoff with jitter) and
 * last_error; a failure the sink calls permanent (an SMTP 5xx) marks it 'failed'.
 *
 * A crash after the sink accepted and before the mark commits sends the same
 * notification again; its Message-ID (<notification_id@sender's domain>) and its
 * notification_id stay the same, so the duplicate can be recognised.
 */
#ifndef NOTIFICATION_SENDER_H
#define NOTIFICATION_SENDER_H

#include <stddef.h>

#include "rules.h"
#include "saga/config.h"
#include "saga/err.h"
#include "saga/metrics.h"

/* What handlers of versions up to 0.2 NOTIFY after recording a notification. */
#define NOTIF_SENDER_CHANNEL "saga_notification"

struct notif_sender;

/*
 * Starts the sender thread. conf and cfg must outlive the sender. Fails only when
 * the serde cannot be made (SAGA_ERR_CONFIG etc. with errstr); the database may be
 * down, the sender then waits for it.
 */
saga_err_t notif_sender_start(struct notif_sender **out, const struct notif_config *conf,
                              const struct saga_config *cfg, char *errstr, size_t errstr_size);

/*
 * Stops it: the delivery in progress is finished (a sink call is bounded by
 * SMTP_TIMEOUT), then the thread is joined and everything freed. NULL-safe.
 */
void notif_sender_stop(struct notif_sender *s);

/* Wakes the sender to look for due notifications now (a committed one). Any thread; never
 * blocks; wakes in a row may merge into one look. */
void notif_sender_wake(struct notif_sender *s);

/* Appends its series to a /metrics body. Any thread. */
void notif_sender_write_metrics(const struct notif_sender *s, struct saga_text *t);

#endif
