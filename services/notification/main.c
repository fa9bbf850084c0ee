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
 * Delivery: the handler only records the notification (a `notifications` row,
 * status 'pending', with the ids its NotificationSent will carry) in the consumer's
 * transaction; nothing leaves the process there, so a slow or failing mail server
 * never holds up the consumer and a replayed batch sends nothing twice. The sender
 * (sender.h) delivers it after the commit, from a thread of its own, and marks it
 * sent together with its NotificationSent; failures are retried with backoff. A
 * crash between a delivery and its mark delivers once more, with the same
 * notification id and Message-ID: the outside world sees at-least-once delivery
 * with duplicates it can recognise; the row and NotificationSent are exactly once.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rules.h"
#include "sender.h"
#include "saga/ids.h"
#include "saga/service.h"
#include "notification_migrations.h" /* generated from migrations/NNN_name.sql */

#define PRODUCER "notification-service"

/* The schema, in migrations/NNN_name.sql (embedded by the build; applied in this order, each
 * once per database, tracked by version and name: common/include/saga/migrate.h). */
static const struct saga_migration migrations[] = {
    {100, "orders, notifications", notification_sql_100_orders_notifications},
    {101, "notifications: delivered after the commit, by the sender",
     notification_sql_101_delivered_by_the_sender},
};

static struct notif_config conf;

static struct notif_sender *sender;
/* A notification was recorded in the consumer's transaction in hand: its commit wakes the
 * sender. @locality consumer thread */
static int recorded;

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

static saga_handle_result_t on_outcome(struct saga_tx *tx, const struct saga_event *ev, void *arg)
{
    const char *p[1] = {ev->meta.order_id};
    saga_outcome_t outcome =
        ev->type == SAGA_EV_ORDER_CONFIRMED ? SAGA_OUTCOME_CONFIRMED : SAGA_OUTCOME_CANCELLED;
    struct saga_log_ids ids = {ev->meta.order_id, ev->meta.event_id, ev->meta.correlation_id, NULL};
    struct notif_facts facts = {.outcome = outcome, .order_id = ev->meta.order_id};
    char notification_id[37], out_id[37];
    char *text = NULL, *recipient = NULL;
    const char *reason = NULL;
    PGresult *r = NULL;
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
        facts.tracking_number = c->tracking_number; /* NULL from a writer before 0.3.0 */
        if (!c->currency || !c->currency[0]) {      /* as OrderPlaced said */
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
    saga_uuid4(out_id); /* its NotificationSent's event_id, fixed now */
    {
        /* The next hop of the trace is this handler's span, as saga_tx_emit would make it. */
        const char *trace = tx->span[0] ? tx->span : ev->meta.traceparent;
        const char *pn[11] = {notification_id,
                              ev->meta.order_id,
                              saga_outcome_names[outcome],
                              reason,
                              saga_channel_names[notif_sink_channel(conf.sink)],
                              recipient,
                              text,
                              out_id,
                              ev->meta.event_id,
                              ev->meta.correlation_id,
                              trace};
        res = saga_tx_query(tx, NULL,
                            "INSERT INTO notifications (notification_id, order_id, outcome,"
                            " reason, channel, recipient, message, status, event_id,"
                            " cause_event_id, correlation_id, traceparent)"
                            " VALUES ($1, $2, $3, $4, $5, $6, $7, 'pending', $8, $9, $10, $11)",
                            11, pn);
    }
    /* The sender is woken once this commits (after_commit), in the process: a NOTIFY here
     * would hold PostgreSQL's server-wide notification lock through our commit's flush and
     * cost the sender's backend a transaction to read it. */
    if (res == SAGA_HANDLE_OK)
        recorded = 1;
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
    return notif_sender_start(&sender, c, cfg, errstr, errstr_size);
}

/* After the consumer stopped: the delivery in progress ends, then the sender. */
static void stop(void *arg)
{
    (void)arg;
    notif_sender_stop(sender);
    sender = NULL;
}

/* After each commit of the consumer: a notification recorded in it is due now. A rolled back
 * transaction leaves recorded set, and the next commit wakes the sender for nothing: a
 * claim that finds nothing. @locality consumer thread */
static void after_commit(void *arg)
{
    (void)arg;
    if (recorded && sender)
        notif_sender_wake(sender);
    recorded = 0;
}

static void metrics(void *arg, struct saga_text *t)
{
    (void)arg;
    if (sender)
        notif_sender_write_metrics(sender, t);
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
    .nmigrations = (int)(sizeof(migrations) / sizeof(migrations[0])),
    .handlers =
        {
            [SAGA_EV_ORDER_PLACED] = on_order_placed,
            [SAGA_EV_ORDER_CONFIRMED] = on_outcome,
            [SAGA_EV_ORDER_CANCELLED] = on_outcome,
        },
    .releases_deferred = 1u << SAGA_EV_ORDER_PLACED,
    .arg = &conf,
    .start = start,
    .stop = stop,
    .metrics = metrics,
    .after_commit = after_commit,
};

int main(int argc, char **argv)
{
    return saga_service_main(&service, argc, argv);
}
