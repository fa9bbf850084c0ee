/*
 * notification-service: tells the customer each order's outcome (OrderConfirmed,
 * OrderCancelled), exactly once per order, through the configured sink (a log line,
 * a file of JSON lines or an e-mail), and records it with NotificationSent.
 *
 * OrderPlaced carries what the texts need (customer, recipient name, total); it is
 * kept in `orders`. An outcome that arrives before its OrderPlaced is deferred and
 * re-run when OrderPlaced lands. The first outcome of an order wins: with a row in
 * `notifications` (order_id UNIQUE) a later outcome changes nothing.
 *
 * Delivery guarantee: the sink runs inside the handler's transaction, after the
 * notifications row is written and before the commit. If the process crashes (or
 * the transaction rolls back: a batch replayed, a commit that fails) after the sink
 * delivered, the event is handled again and the customer gets the message again:
 * delivery to the sink is at-least-once. The notifications row and NotificationSent
 * are exactly once (the inbox and the outbox commit with them).
 */
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rules.h"
#include "saga/ids.h"
#include "saga/service.h"

#define PRODUCER "notification-service"

static const struct saga_migration migrations[] = {
    {100, "orders, notifications",
     /* Event-carried state from OrderPlaced; a row with placed = false is an order
      * whose outcome arrived first (that outcome is deferred). */
     "CREATE TABLE orders ("
     "  order_id text PRIMARY KEY,"
     "  placed boolean NOT NULL DEFAULT false,"
     "  customer_id text,"
     "  recipient_name text,"
     "  total_amount bigint,"
     "  currency text,"
     "  updated_at timestamptz NOT NULL DEFAULT now());"
     /* One notification per order: the first outcome's. */
     "CREATE TABLE notifications ("
     "  notification_id text PRIMARY KEY,"
     "  order_id text NOT NULL UNIQUE,"
     "  outcome text NOT NULL,"
     "  reason text,"
     "  channel text NOT NULL,"
     "  recipient text NOT NULL,"
     "  message text NOT NULL,"
     "  created_at timestamptz NOT NULL DEFAULT now());"},
};

static struct notif_config conf;

/* Deliveries to the sink by result (a delivery rolled back later still counts). */
static atomic_llong deliveries_ok, deliveries_failed;

static saga_handle_result_t on_order_placed(struct saga_tx *tx, const struct saga_event *ev,
                                            void *arg)
{
    const struct saga_order_placed *o = &ev->u.order_placed;
    char total[24];
    (void)arg;

    snprintf(total, sizeof(total), "%" PRId64, o->total_amount);
    const char *p[5] = {ev->meta.order_id, o->customer_id, o->shipping_address.recipient, total,
                        o->currency};
    /* The first OrderPlaced of an order counts; a repeated one changes nothing. */
    return saga_tx_query(tx, NULL,
                         "INSERT INTO orders (order_id, placed, customer_id, recipient_name,"
                         " total_amount, currency) VALUES ($1, true, $2, $3, $4::bigint, $5)"
                         " ON CONFLICT (order_id) DO UPDATE SET placed = true,"
                         " customer_id = EXCLUDED.customer_id,"
                         " recipient_name = EXCLUDED.recipient_name,"
                         " total_amount = EXCLUDED.total_amount, currency = EXCLUDED.currency,"
                         " updated_at = now() WHERE NOT orders.placed",
                         5, p);
}

/* Sends text through the configured sink; TRANSIENT or INVALID with tx->errstr on failure. */
static saga_handle_result_t deliver(struct saga_tx *tx, const struct saga_event *ev,
                                    const struct notif_record *rec)
{
    char *subject = NULL, *mail = NULL;
    saga_err_t err = SAGA_OK;

    switch (conf.sink) {
    case NOTIF_SINK_LOG:
        saga_log(SAGA_LOG_INFO,
                 &(struct saga_log_ids){ev->meta.order_id, ev->meta.event_id,
                                        ev->meta.correlation_id, NULL},
                 "notification: %s", rec->message);
        break;
    case NOTIF_SINK_FILE:
        err = notif_file_append(conf.file, rec, tx->errstr, sizeof(tx->errstr));
        break;
    case NOTIF_SINK_SMTP:
        subject = notif_subject(rec->outcome, rec->order_id);
        mail = subject ? notif_email_build(conf.smtp_from, rec->recipient, subject,
                                           rec->notification_id, rec->sent_at_ms, rec->message)
                       : NULL;
        if (!mail)
            err = saga_errf(SAGA_ERR_NOMEM, tx->errstr, sizeof(tx->errstr), "out of memory");
        else
            err = notif_smtp_send(conf.smtp_url, conf.smtp_from, rec->recipient, mail,
                                  conf.smtp_timeout_ms, tx->errstr, sizeof(tx->errstr));
        free(subject);
        free(mail);
        break;
    }
    if (err == SAGA_OK) {
        atomic_fetch_add(&deliveries_ok, 1);
        if (conf.sink != NOTIF_SINK_LOG)
            saga_log(SAGA_LOG_INFO,
                     &(struct saga_log_ids){ev->meta.order_id, ev->meta.event_id,
                                            ev->meta.correlation_id, NULL},
                     "notification %s sent to %s by %s", rec->notification_id, rec->recipient,
                     notif_sink_name(conf.sink));
        return SAGA_HANDLE_OK;
    }
    atomic_fetch_add(&deliveries_failed, 1);
    /* A recipient the mail server refuses for good goes to the DLQ; anything else waits. */
    return err == SAGA_ERR_PERMANENT ? SAGA_HANDLE_INVALID : SAGA_HANDLE_TRANSIENT;
}

static saga_handle_result_t on_outcome(struct saga_tx *tx, const struct saga_event *ev, void *arg)
{
    const char *p[1] = {ev->meta.order_id};
    saga_outcome_t outcome =
        ev->type == SAGA_EV_ORDER_CONFIRMED ? SAGA_OUTCOME_CONFIRMED : SAGA_OUTCOME_CANCELLED;
    struct saga_log_ids ids = {ev->meta.order_id, ev->meta.event_id, ev->meta.correlation_id, NULL};
    struct notif_facts facts = {.outcome = outcome, .order_id = ev->meta.order_id};
    struct notif_record rec;
    char notification_id[37], out_id[37];
    char *text = NULL, *recipient = NULL;
    const char *reason = NULL;
    PGresult *r = NULL;
    struct saga_event out;
    saga_handle_result_t res;
    (void)arg;

    /* Lock the order's row (created unplaced when OrderPlaced has not arrived). */
    if ((res = saga_tx_query(tx, &r,
                             "INSERT INTO orders (order_id) VALUES ($1)"
                             " ON CONFLICT (order_id) DO UPDATE SET updated_at = now()"
                             " RETURNING placed, customer_id, recipient_name, total_amount,"
                             " currency, (SELECT outcome FROM notifications n"
                             "   WHERE n.order_id = $1)",
                             1, p)))
        return res;
    if (PQgetvalue(r, 0, 0)[0] != 't') {
        PQclear(r);
        return SAGA_HANDLE_DEFER; /* its OrderPlaced has not arrived yet */
    }
    if (!PQgetisnull(r, 0, 5)) {
        saga_log(SAGA_LOG_INFO, &ids, "order already notified (%s): %s changes nothing",
                 PQgetvalue(r, 0, 5), saga_event_type_name(ev->type));
        PQclear(r);
        return SAGA_HANDLE_OK;
    }

    facts.recipient_name = PQgetisnull(r, 0, 2) ? NULL : PQgetvalue(r, 0, 2);
    if (outcome == SAGA_OUTCOME_CONFIRMED) {
        const struct saga_order_confirmed *c = &ev->u.order_confirmed;
        facts.total_amount = c->total_amount;
        facts.currency = c->currency;
        if (!c->currency || !c->currency[0]) { /* as OrderPlaced said */
            facts.total_amount = strtoll(PQgetvalue(r, 0, 3), NULL, 10);
            facts.currency = PQgetvalue(r, 0, 4);
        }
    } else {
        const struct saga_order_cancelled *c = &ev->u.order_cancelled;
        facts.reason =
            (unsigned)c->reason <= SAGA_CANCEL_CUSTOMER_REQUEST ? c->reason : SAGA_CANCEL_UNKNOWN;
        facts.detail = c->detail;
        reason = saga_cancel_reason_names[facts.reason];
    }
    if (!(text = notif_render(&facts)) ||
        !(recipient = notif_recipient(PQgetvalue(r, 0, 1), conf.email_domain)))
        abort(); /* out of memory */
    PQclear(r);

    saga_uuid4(notification_id);
    {
        const char *pn[7] = {notification_id,
                             ev->meta.order_id,
                             saga_outcome_names[outcome],
                             reason,
                             saga_channel_names[notif_sink_channel(conf.sink)],
                             recipient,
                             text};
        if ((res = saga_tx_query(tx, NULL,
                                 "INSERT INTO notifications (notification_id, order_id, outcome,"
                                 " reason, channel, recipient, message)"
                                 " VALUES ($1, $2, $3, $4, $5, $6, $7)",
                                 7, pn)))
            goto done;
    }

    /* Last before the commit: see the delivery guarantee at the top. */
    rec = (struct notif_record){notification_id, ev->meta.order_id, outcome, recipient, text,
                                saga_now_ms()};
    if ((res = deliver(tx, ev, &rec)))
        goto done;

    saga_event_follow(&out, SAGA_EV_NOTIFICATION_SENT, ev, PRODUCER, out_id);
    out.u.notification_sent.notification_id = notification_id;
    out.u.notification_sent.outcome = outcome;
    out.u.notification_sent.channel = notif_sink_channel(conf.sink);
    out.u.notification_sent.recipient = recipient;
    out.u.notification_sent.message = text;
    res = saga_tx_emit(tx, &out);
done:
    free(text);
    free(recipient);
    return res;
}

static saga_err_t conf_load(void *arg, char *errstr, size_t errstr_size)
{
    return notif_config_load(arg, errstr, errstr_size);
}

static void conf_print(const void *arg, FILE *out)
{
    notif_config_print(arg, out);
}

static saga_err_t start(void *arg, const struct saga_config *cfg, char *errstr, size_t errstr_size)
{
    const struct notif_config *c = arg;
    (void)cfg;

    notif_sinks_init();
    if (c->sink == NOTIF_SINK_FILE) {
        /* Fail now rather than at the first order: the file must be writable. */
        FILE *f = fopen(c->file, "a");
        if (!f)
            return saga_errf(SAGA_ERR_CONFIG, errstr, errstr_size, "NOTIFY_FILE %s: %s", c->file,
                             strerror(errno));
        fclose(f);
    }
    if (c->sink == NOTIF_SINK_SMTP) {
        char red[sizeof(c->smtp_url) + 8];
        saga_info("notifications go by e-mail through %s from %s",
                  saga_redact_url(c->smtp_url, red, sizeof(red)), c->smtp_from);
    } else if (c->sink == NOTIF_SINK_FILE) {
        saga_info("notifications go to the file %s", c->file);
    } else {
        saga_info("notifications go to the log");
    }
    return SAGA_OK;
}

static void metrics(void *arg, struct saga_text *t)
{
    const struct notif_config *c = arg;

    saga_text_printf(t, "# HELP saga_notification_deliveries_total Notifications handed to the "
                        "sink, by result (a delivery whose transaction rolled back counts too).\n"
                        "# TYPE saga_notification_deliveries_total counter\n");
    saga_text_printf(t,
                     "saga_notification_deliveries_total{service=\"" PRODUCER
                     "\",sink=\"%s\",result=\"ok\"} %lld\n",
                     notif_sink_name(c->sink), (long long)atomic_load(&deliveries_ok));
    saga_text_printf(t,
                     "saga_notification_deliveries_total{service=\"" PRODUCER
                     "\",sink=\"%s\",result=\"failed\"} %lld\n",
                     notif_sink_name(c->sink), (long long)atomic_load(&deliveries_failed));
}

static const struct saga_program program = {
    .name = PRODUCER,
    .summary = "Notifies customers of order outcomes (OrderConfirmed, OrderCancelled), once per "
               "order.",
    .config_flags = SAGA_CONFIG_DATABASE | SAGA_CONFIG_HTTP,
    .http_port = 8084,
    .env_help = NOTIF_ENV_HELP,
    .load = conf_load,
    .print = conf_print,
    .arg = &conf,
};

static const struct saga_service service = {
    .program = &program,
    .info_name = "notification",
    .migrations = migrations,
    .nmigrations = 1,
    .handlers =
        {
            [SAGA_EV_ORDER_PLACED] = on_order_placed,
            [SAGA_EV_ORDER_CONFIRMED] = on_outcome,
            [SAGA_EV_ORDER_CANCELLED] = on_outcome,
        },
    .releases_deferred = 1u << SAGA_EV_ORDER_PLACED,
    .arg = &conf,
    .start = start,
    .metrics = metrics,
};

int main(int argc, char **argv)
{
    return saga_service_main(&service, argc, argv);
}
