#include "sender.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "saga/clock.h"
#include "saga/events.h"
#include "saga/fault.h"
#include "saga/ids.h"
#include "saga/log.h"
#include "saga/outbox.h"
#include "saga/pg.h"
#include "saga/registry.h"
#include "saga/serde.h"
#include "saga/trace.h"

#define PRODUCER "notification-service"

struct notif_sender {
    const struct notif_config *conf;
    const struct saga_config *cfg;
    struct saga_serde *serde; /* the sender thread's own (avro values are per thread) */
    struct saga_registry *registry;
    struct saga_buf scratch;
    PGconn *conn; /* sender thread only */
    unsigned seed;
    pthread_t thread;
    int wake[2]; /* notif_sender_wake and _stop write to wake[1]; both ends non-blocking */
    atomic_int stopping;

    /* Deliveries by this process, by result; and the table, as last looked at. */
    atomic_llong sent, retried, failed;
    atomic_llong pending, given_up, oldest_pending_ms;
};

/* ---- waiting ---- */

/*
 * Sleeps up to ms, waking early for a wake, a NOTIFY on the connection or a stop. A wake
 * that came while the thread was busy ends the next wait at once.
 * @locality sender thread
 */
static void wait_for(struct notif_sender *s, int64_t ms)
{
    struct pollfd p[2] = {{s->wake[0], POLLIN, 0}, {-1, POLLIN, 0}};
    PGnotify *n;
    char drain[64];

    if (ms <= 0 || atomic_load(&s->stopping))
        return;
    if (read(s->wake[0], drain, sizeof(drain)) > 0) {
        while (read(s->wake[0], drain, sizeof(drain)) > 0)
            ;
        return;
    }
    if (s->conn && PQstatus(s->conn) == CONNECTION_OK) {
        /* A NOTIFY that came with the last statement's answer waits in libpq's queue,
         * not on the socket. */
        int had = 0;
        while ((n = PQnotifies(s->conn))) {
            had = 1;
            PQfreemem(n);
        }
        if (had)
            return;
        p[1].fd = PQsocket(s->conn);
    }
    if (poll(p, p[1].fd >= 0 ? 2 : 1, ms > 60000 ? 60000 : (int)ms) > 0) {
        if (p[1].fd >= 0 && (p[1].revents & POLLIN)) {
            PQconsumeInput(s->conn);
            while ((n = PQnotifies(s->conn)))
                PQfreemem(n);
        }
        if (p[0].revents & POLLIN) /* a stop's byte too: the caller checks stopping */
            while (read(s->wake[0], drain, sizeof(drain)) > 0)
                ;
    }
}

/*
 * Sleeps ms after a failure; only a stop ends it early. Wakes that come meanwhile are
 * drained, not acted on (the claim after the backoff finds what they were for): they come
 * at the consumer's commit rate and would make every commit a retry and a warning.
 * @locality sender thread
 */
static void back_off(struct notif_sender *s, int64_t ms)
{
    int64_t end = saga_mono_ms() + ms, left;
    char drain[64];

    while (!atomic_load(&s->stopping) && (left = end - saga_mono_ms()) > 0) {
        struct pollfd p = {s->wake[0], POLLIN, 0};
        if (poll(&p, 1, left > 60000 ? 60000 : (int)left) > 0)
            while (read(s->wake[0], drain, sizeof(drain)) > 0)
                ;
    }
}

/* ---- the database ---- */

/* Runs a statement without parameters; 0, or -1 with the cause in errstr. */
static int exec0(PGconn *conn, const char *sql, char *errstr, size_t errstr_size)
{
    PGresult *r = saga_pg_query(conn, sql); /* bounded by PG_QUERY_TIMEOUT */
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
    if (!ok)
        saga_pg_errstr(conn, errstr, errstr_size);
    PQclear(r);
    return ok ? 0 : -1;
}

/* Connects and LISTENs, or waits a little and returns -1. @locality sender thread */
static int connect_db(struct notif_sender *s, int64_t *backoff_ms)
{
    char err[512];

    if (s->conn) {
        PQfinish(s->conn);
        s->conn = NULL;
    }
    s->conn = saga_pg_connect(s->cfg->database_url, NULL, err, sizeof(err));
    if (s->conn && exec0(s->conn, "LISTEN " NOTIF_SENDER_CHANNEL, err, sizeof(err)) == 0) {
        *backoff_ms = 200;
        return 0;
    }
    saga_warn("notification sender: database: %s; retrying in %" PRId64 " ms", err, *backoff_ms);
    if (s->conn) {
        PQfinish(s->conn);
        s->conn = NULL;
    }
    back_off(s, *backoff_ms);
    *backoff_ms = *backoff_ms * 2 > 5000 ? 5000 : *backoff_ms * 2;
    return -1;
}

/*
 * In the claiming transaction (now() is its start): refreshes the gauges, sets *later_ms to
 * how long until the first pending notification not due yet is (INT64_MAX if none) and
 * returns how many are due now; -1 on a database error (the cause in errstr). Part of the
 * claim, so an idle or busy sender spends no transaction of its own on the gauges.
 * @locality sender thread
 */
static int64_t look_at_queue(struct notif_sender *s, int64_t *later_ms, char *errstr,
                             size_t errstr_size)
{
    PGresult *r = saga_pg_exec(
        s->conn,
        "SELECT count(*),"
        " coalesce(floor(extract(epoch FROM now() - min(created_at)) * 1000), 0)::bigint,"
        " floor(extract(epoch FROM min(next_attempt_at) FILTER (WHERE next_attempt_at > now())"
        " - now()) * 1000)::bigint,"
        " (SELECT count(*) FROM notifications WHERE status = 'failed'),"
        " count(*) FILTER (WHERE next_attempt_at <= now())"
        " FROM notifications WHERE status = 'pending'",
        0, NULL, NULL, NULL, 0);
    int64_t due_now = -1;

    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
        atomic_store(&s->pending, strtoll(PQgetvalue(r, 0, 0), NULL, 10));
        atomic_store(&s->oldest_pending_ms, strtoll(PQgetvalue(r, 0, 1), NULL, 10));
        atomic_store(&s->given_up, strtoll(PQgetvalue(r, 0, 3), NULL, 10));
        *later_ms = PQgetisnull(r, 0, 2) ? INT64_MAX : strtoll(PQgetvalue(r, 0, 2), NULL, 10);
        if (*later_ms < 0)
            *later_ms = 0;
        due_now = strtoll(PQgetvalue(r, 0, 4), NULL, 10);
    } else {
        saga_pg_errstr(s->conn, errstr, errstr_size);
    }
    PQclear(r);
    return due_now;
}

/* ---- one delivery ---- */

/* A notification as recorded, the strings pointing into the PGresult. */
struct queued {
    const char *notification_id, *order_id, *outcome, *recipient, *message;
    const char *event_id, *cause_event_id, *correlation_id, *traceparent;
    int attempts;
};

static saga_outcome_t outcome_of(const char *name)
{
    return strcmp(name, "CONFIRMED") == 0   ? SAGA_OUTCOME_CONFIRMED
           : strcmp(name, "CANCELLED") == 0 ? SAGA_OUTCOME_CANCELLED
                                            : SAGA_OUTCOME_UNKNOWN;
}

/* Hands q to the configured sink; SAGA_OK, or TRANSIENT / PERMANENT with errstr. */
static saga_err_t sink_send(struct notif_sender *s, const struct queued *q,
                            const struct saga_log_ids *ids, char *errstr, size_t errstr_size)
{
    const struct notif_config *c = s->conf;
    struct notif_record rec = {q->notification_id, q->order_id, outcome_of(q->outcome),
                               q->recipient,       q->message,  saga_now_ms()};
    char *subject = NULL, *mail = NULL;
    saga_err_t err = SAGA_OK;

    switch (c->sink) {
    case NOTIF_SINK_LOG:
        saga_log(SAGA_LOG_INFO, ids, "notification: %s", q->message);
        break;
    case NOTIF_SINK_FILE:
        err = notif_file_append(c->file, &rec, errstr, errstr_size);
        break;
    case NOTIF_SINK_SMTP:
        subject = notif_subject(rec.outcome, q->order_id);
        /* Message-ID <notification_id@domain>: the same in every attempt. */
        mail = subject ? notif_email_build(c->smtp_from, q->recipient, subject, q->notification_id,
                                           rec.sent_at_ms, q->message)
                       : NULL;
        if (!mail)
            err = saga_errf(SAGA_ERR_TRANSIENT, errstr, errstr_size, "out of memory");
        else
            err = notif_smtp_send(c->smtp_url, c->smtp_from, q->recipient, mail, c->smtp_timeout_ms,
                                  errstr, errstr_size);
        free(subject);
        free(mail);
        break;
    }
    return err;
}

/*
 * Takes the next due notification and delivers it. Returns 1 when one was tried
 * (delivered or not, and so recorded), 0 when none is due, -1 on a database or
 * registry failure: before the sink was called nothing was sent; after it (the mark
 * did not commit) the row stays pending and goes out again. Sets *more when others were
 * due too, and *later_ms to how long until the next one not due yet is (INT64_MAX: none).
 * @locality sender thread
 */
static int deliver_one(struct notif_sender *s, int *more, int64_t *later_ms)
{
    const struct notif_config *c = s->conf;
    char err[512] = "", sinkerr[512] = "", out_channel[16], delay[24], attempts[16], trace_id[33];
    struct saga_log_ids ids;
    struct saga_event ev;
    struct queued q;
    saga_err_t serr;
    PGresult *r = NULL;
    int rc = -1;
    int64_t due_now;

    *more = 0;
    *later_ms = INT64_MAX;
    if (exec0(s->conn, "BEGIN", err, sizeof(err)))
        goto fail;
    if ((due_now = look_at_queue(s, later_ms, err, sizeof(err))) < 0)
        goto fail;
    if (due_now == 0)
        return exec0(s->conn, "COMMIT", err, sizeof(err)) == 0 ? 0 : -1;
    *more = due_now > 1;
    r = saga_pg_exec(s->conn,
                     "SELECT notification_id, order_id, outcome, recipient, message, attempts,"
                     " event_id, cause_event_id, correlation_id, traceparent"
                     " FROM notifications WHERE status = 'pending' AND next_attempt_at <= now()"
                     " ORDER BY next_attempt_at LIMIT 1 FOR UPDATE SKIP LOCKED",
                     0, NULL, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        saga_pg_errstr(s->conn, err, sizeof(err));
        goto fail;
    }
    if (PQntuples(r) == 0) {
        PQclear(r);
        return exec0(s->conn, "COMMIT", err, sizeof(err)) == 0 ? 0 : -1;
    }
#define COL(i) (PQgetisnull(r, 0, i) ? NULL : PQgetvalue(r, 0, i))
    q = (struct queued){COL(0), COL(1), COL(2), COL(3), COL(4),
                        COL(6), COL(7), COL(8), COL(9), atoi(PQgetvalue(r, 0, 5))};
#undef COL
    saga_traceparent_trace_id(q.traceparent ? q.traceparent : "", trace_id);
    ids = (struct saga_log_ids){q.order_id, q.cause_event_id, q.correlation_id,
                                trace_id[0] ? trace_id : NULL};

    /* NotificationSent is written first, under a savepoint: a registry that is down
     * then stops the delivery before anything leaves, never after. */
    saga_event_init(&ev, SAGA_EV_NOTIFICATION_SENT);
    ev.meta.event_id = q.event_id;
    ev.meta.order_id = q.order_id;
    ev.meta.correlation_id = q.correlation_id ? q.correlation_id : q.order_id;
    ev.meta.causation_id = q.cause_event_id;
    ev.meta.occurred_at = saga_now_ms();
    ev.meta.producer = PRODUCER;
    ev.meta.traceparent = q.traceparent;
    ev.u.notification_sent.notification_id = q.notification_id;
    ev.u.notification_sent.outcome = outcome_of(q.outcome);
    ev.u.notification_sent.channel = notif_sink_channel(c->sink);
    ev.u.notification_sent.recipient = q.recipient;
    ev.u.notification_sent.message = q.message;
    if (exec0(s->conn, "SAVEPOINT before_event", err, sizeof(err)) ||
        saga_outbox_append_event(s->conn, s->serde, &ev, &s->scratch, err, sizeof(err)))
        goto fail;

    serr = sink_send(s, &q, &ids, sinkerr, sizeof(sinkerr));
    snprintf(out_channel, sizeof(out_channel), "%s",
             saga_channel_names[notif_sink_channel(c->sink)]);
    snprintf(attempts, sizeof(attempts), "%d", q.attempts + 1);
    if (serr == SAGA_OK) {
        /* Sent, not marked yet: a crash here sends it again (same Message-ID). */
        saga_fault_point("notification.after_send");
        const char *p[2] = {q.notification_id, out_channel};
        PGresult *u = saga_pg_exec(s->conn,
                                   "UPDATE notifications SET status = 'sent', sent_at = now(),"
                                   " attempts = attempts + 1, last_error = NULL, channel = $2"
                                   " WHERE notification_id = $1",
                                   2, p, NULL, NULL, 0);
        int ok = PQresultStatus(u) == PGRES_COMMAND_OK;
        PQclear(u);
        if (!ok || saga_outbox_commit_notify(s->conn, err, sizeof(err)) != SAGA_OK) {
            if (!ok)
                saga_pg_errstr(s->conn, err, sizeof(err));
            saga_log(SAGA_LOG_WARN, &ids,
                     "notification %s was delivered but could not be marked sent (%s): it will "
                     "be delivered again, with the same id",
                     q.notification_id, err);
            PQclear(saga_pg_query(s->conn, "ROLLBACK"));
            PQclear(r);
            return -1;
        }
        atomic_fetch_add(&s->sent, 1);
        atomic_fetch_sub(&s->pending, 1); /* as the next look will see */
        if (c->sink != NOTIF_SINK_LOG)
            saga_log(SAGA_LOG_INFO, &ids, "notification %s sent to %s by %s (attempt %s)",
                     q.notification_id, q.recipient, notif_sink_name(c->sink), attempts);
        PQclear(r);
        return 1;
    }

    /* Not delivered: no NotificationSent; try again later, or give up for good. */
    {
        int permanent = serr == SAGA_ERR_PERMANENT;
        int64_t d =
            notif_retry_delay_ms(q.attempts + 1, c->retry_min_ms, c->retry_max_ms,
                                 ((uint32_t)rand_r(&s->seed) << 16) ^ (uint32_t)rand_r(&s->seed));
        snprintf(delay, sizeof(delay), "%" PRId64, d);
        const char *p[4] = {q.notification_id, sinkerr, permanent ? "failed" : "pending", delay};
        PGresult *u;
        if (exec0(s->conn, "ROLLBACK TO SAVEPOINT before_event", err, sizeof(err)))
            goto fail;
        u = saga_pg_exec(s->conn,
                         "UPDATE notifications SET attempts = attempts + 1, last_error = $2,"
                         " status = $3, next_attempt_at = now() + $4::bigint * interval '1 ms'"
                         " WHERE notification_id = $1",
                         4, p, NULL, NULL, 0);
        int ok = PQresultStatus(u) == PGRES_COMMAND_OK;
        PQclear(u);
        if (!ok) {
            saga_pg_errstr(s->conn, err, sizeof(err));
            goto fail;
        }
        if (exec0(s->conn, "COMMIT", err, sizeof(err)))
            goto fail;
        if (!permanent && d < *later_ms)
            *later_ms = d;
        if (permanent) {
            atomic_fetch_add(&s->failed, 1);
            atomic_fetch_sub(&s->pending, 1);
            saga_log(SAGA_LOG_ERROR, &ids,
                     "notification %s to %s failed for good after %s attempt(s), not retried: %s",
                     q.notification_id, q.recipient, attempts, sinkerr);
        } else {
            atomic_fetch_add(&s->retried, 1);
            saga_log(SAGA_LOG_WARN, &ids,
                     "notification %s to %s not delivered (attempt %s), retrying in %" PRId64
                     " ms: %s",
                     q.notification_id, q.recipient, attempts, d, sinkerr);
        }
        rc = 1;
    }
    PQclear(r);
    return rc;

fail:
    saga_warn("notification sender: %s", err[0] ? err : "database failure");
    if (s->conn && PQstatus(s->conn) == CONNECTION_OK)
        PQclear(saga_pg_query(s->conn, "ROLLBACK"));
    PQclear(r);
    return -1;
}

/* ---- the thread ---- */

static void *sender_main(void *arg)
{
    struct notif_sender *s = arg;
    int64_t backoff_ms = 200, fail_ms = 200;

    while (!atomic_load(&s->stopping)) {
        int64_t later;
        int rc, more;

        if (!s->conn || PQstatus(s->conn) != CONNECTION_OK) {
            connect_db(s, &backoff_ms);
            continue;
        }
        rc = deliver_one(s, &more, &later);
        if (rc < 0) {
            back_off(s, fail_ms);
            fail_ms = fail_ms * 2 > 5000 ? 5000 : fail_ms * 2;
            continue;
        }
        fail_ms = 200;
        if (rc > 0 && more)
            continue;
        /* None left due (the claim counted them): no claim that finds nothing. A
         * notification recorded meanwhile comes with its wake. */
        wait_for(s, later > s->conf->poll_ms ? s->conf->poll_ms : later);
    }
    if (s->conn)
        PQfinish(s->conn);
    s->conn = NULL;
    return NULL;
}

saga_err_t notif_sender_start(struct notif_sender **out, const struct notif_config *conf,
                              const struct saga_config *cfg, char *errstr, size_t errstr_size)
{
    struct notif_sender *s = calloc(1, sizeof(*s));
    saga_err_t err;

    *out = NULL;
    if (!s)
        return saga_errf(SAGA_ERR_NOMEM, errstr, errstr_size, "out of memory");
    s->conf = conf;
    s->cfg = cfg;
    s->wake[0] = s->wake[1] = -1;
    s->seed = (unsigned)time(NULL) ^ (unsigned)getpid();
    if ((err = saga_serde_open(cfg->schema_registry_url, cfg->schema_dir, &s->serde, &s->registry,
                               errstr, errstr_size)))
        goto fail;
    if (pipe(s->wake) != 0) {
        err = saga_errf(SAGA_ERR_IO, errstr, errstr_size, "pipe: %s", strerror(errno));
        goto fail;
    }
    /* A full pipe already holds a wake; the reader drains it without blocking. */
    for (int i = 0; i < 2; i++)
        fcntl(s->wake[i], F_SETFL, fcntl(s->wake[i], F_GETFL) | O_NONBLOCK);
    if (pthread_create(&s->thread, NULL, sender_main, s) != 0) {
        err = saga_errf(SAGA_ERR_IO, errstr, errstr_size, "cannot start the sender thread");
        goto fail;
    }
    *out = s;
    return SAGA_OK;
fail:
    if (s->wake[0] >= 0) {
        close(s->wake[0]);
        close(s->wake[1]);
    }
    saga_serde_destroy(s->serde);
    saga_registry_destroy(s->registry);
    free(s);
    return err;
}

void notif_sender_wake(struct notif_sender *s)
{
    ssize_t n;
    if (!s)
        return;
    n = write(s->wake[1], "w", 1); /* EAGAIN: a wake is pending already */
    (void)n;
}

void notif_sender_stop(struct notif_sender *s)
{
    ssize_t n;

    if (!s)
        return;
    atomic_store(&s->stopping, 1);
    n = write(s->wake[1], "x", 1);
    (void)n;
    pthread_join(s->thread, NULL);
    close(s->wake[0]);
    close(s->wake[1]);
    saga_serde_destroy(s->serde);
    saga_registry_destroy(s->registry);
    saga_buf_release(&s->scratch);
    free(s);
}

void notif_sender_write_metrics(const struct notif_sender *s, struct saga_text *t)
{
    const char *sink = notif_sink_name(s->conf->sink);

    saga_metric_head(t, "saga_notification_deliveries_total", "counter",
                     "Deliveries the sender tried since start, by result: sent, retry (failed, "
                     "tried again later), failed (refused for good, not retried).");
    saga_text_printf(t,
                     "saga_notification_deliveries_total{service=\"" PRODUCER
                     "\",sink=\"%s\",result=\"sent\"} %lld\n",
                     sink, (long long)atomic_load(&s->sent));
    saga_text_printf(t,
                     "saga_notification_deliveries_total{service=\"" PRODUCER
                     "\",sink=\"%s\",result=\"retry\"} %lld\n",
                     sink, (long long)atomic_load(&s->retried));
    saga_text_printf(t,
                     "saga_notification_deliveries_total{service=\"" PRODUCER
                     "\",sink=\"%s\",result=\"failed\"} %lld\n",
                     sink, (long long)atomic_load(&s->failed));
    saga_metric_head(t, "saga_notifications_pending", "gauge",
                     "Notifications recorded and not delivered yet (the sender's queue).");
    saga_text_printf(t, "saga_notifications_pending{service=\"" PRODUCER "\"} %lld\n",
                     (long long)atomic_load(&s->pending));
    saga_metric_head(t, "saga_notifications_failed", "gauge",
                     "Notifications given up for good (the sink refused them permanently).");
    saga_text_printf(t, "saga_notifications_failed{service=\"" PRODUCER "\"} %lld\n",
                     (long long)atomic_load(&s->given_up));
    saga_metric_head(t, "saga_notification_oldest_pending_seconds", "gauge",
                     "Age of the oldest notification not delivered yet; 0 when none.");
    saga_text_printf(t, "saga_notification_oldest_pending_seconds{service=\"" PRODUCER "\"} %.3f\n",
                     (double)atomic_load(&s->oldest_pending_ms) / 1000.0);
}
