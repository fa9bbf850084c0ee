/*
 * order-service: the HTTP API for placing and reading orders (api.c), the owner
 * of each order's outcome, the saga timeout sweeper and the saga timeline read
 * model fed by every topic.
 *
 * Outcome rules (docs/SERVICES.md): the first of InventoryRejected, PaymentFailed,
 * ShipmentFailed, the sweeper's timeout or a customer cancellation cancels a
 * PENDING order (OrderCancelled); ShipmentScheduled confirms it (OrderConfirmed).
 * Once CONFIRMED or CANCELLED an order never changes; later events only join its
 * timeline. Every path locks the order's row first, so they serialize.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "order.h"
#include "saga/choreography.h"
#include "saga/ids.h"
#include "saga/outbox.h"
#include "saga/pg.h"
#include "saga/metrics.h"
#include "saga/service.h"
#include "saga/trace.h"
#include "order_migrations.h" /* generated from migrations/NNN_name.sql */

#define PRODUCER "order-service"

struct order_app order_app = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

/* The schema, in migrations/NNN_name.sql (embedded by the build; applied in this order, each
 * once per database, tracked by version and name: common/include/saga/migrate.h). */
static const struct saga_migration migrations[] = {
    {100, "catalogue, orders, timeline", order_sql_100_catalogue_orders_timeline},
    {101, "idempotency keys per principal", order_sql_101_idempotency_keys_per_principal},
    {102, "timeline seq after xid", order_sql_102_timeline_seq_after_xid},
};

/* --- the timeline ----------------------------------------------------------- */

static void summarize(const struct saga_event *ev, char *out, size_t size)
{
    char money[48];
    switch (ev->type) {
    case SAGA_EV_ORDER_PLACED: {
        const struct saga_order_placed *o = &ev->u.order_placed;
        order_format_money(o->total_amount, o->currency, money, sizeof(money));
        snprintf(out, size, "%zu line%s, %s, customer %s, ship to %s", o->item_count,
                 o->item_count == 1 ? "" : "s", money, o->customer_id, o->shipping_address.country);
        break;
    }
    case SAGA_EV_ORDER_CONFIRMED:
        order_format_money(ev->u.order_confirmed.total_amount, ev->u.order_confirmed.currency,
                           money, sizeof(money));
        snprintf(out, size, "confirmed, %s", money);
        break;
    case SAGA_EV_ORDER_CANCELLED:
        snprintf(out, size, "cancelled: %s%s%s%s",
                 saga_cancel_reason_names[ev->u.order_cancelled.reason],
                 ev->u.order_cancelled.detail ? " (" : "",
                 ev->u.order_cancelled.detail ? ev->u.order_cancelled.detail : "",
                 ev->u.order_cancelled.detail ? ")" : "");
        break;
    case SAGA_EV_INVENTORY_RESERVED:
        snprintf(out, size, "reserved %zu SKU%s", ev->u.inventory_reserved.item_count,
                 ev->u.inventory_reserved.item_count == 1 ? "" : "s");
        break;
    case SAGA_EV_INVENTORY_REJECTED:
        snprintf(out, size, "rejected: %s%s%s",
                 saga_reject_reason_names[ev->u.inventory_rejected.reason],
                 ev->u.inventory_rejected.sku ? " " : "",
                 ev->u.inventory_rejected.sku ? ev->u.inventory_rejected.sku : "");
        break;
    case SAGA_EV_INVENTORY_RELEASED:
        snprintf(out, size, "released %zu SKU%s (%s)", ev->u.inventory_released.item_count,
                 ev->u.inventory_released.item_count == 1 ? "" : "s",
                 saga_release_reason_names[ev->u.inventory_released.reason]);
        break;
    case SAGA_EV_PAYMENT_AUTHORIZED:
        order_format_money(ev->u.payment_authorized.amount, ev->u.payment_authorized.currency,
                           money, sizeof(money));
        snprintf(out, size, "charged %s", money);
        break;
    case SAGA_EV_PAYMENT_FAILED:
        snprintf(out, size, "declined: %s",
                 saga_payment_failure_names[ev->u.payment_failed.reason]);
        break;
    case SAGA_EV_PAYMENT_REFUNDED:
        order_format_money(ev->u.payment_refunded.amount, ev->u.payment_refunded.currency, money,
                           sizeof(money));
        snprintf(out, size, "refunded %s", money);
        break;
    case SAGA_EV_SHIPMENT_SCHEDULED:
        snprintf(out, size, "scheduled with %s, tracking %s", ev->u.shipment_scheduled.carrier,
                 ev->u.shipment_scheduled.tracking_number);
        break;
    case SAGA_EV_SHIPMENT_FAILED:
        snprintf(out, size, "failed: %s (%s)",
                 saga_shipment_failure_names[ev->u.shipment_failed.reason],
                 ev->u.shipment_failed.country);
        break;
    case SAGA_EV_SHIPMENT_CANCELLED:
        snprintf(out, size, "shipment %s cancelled",
                 ev->u.shipment_cancelled.tracking_number ? ev->u.shipment_cancelled.tracking_number
                                                          : ev->u.shipment_cancelled.shipment_id);
        break;
    case SAGA_EV_NOTIFICATION_SENT:
        snprintf(
            out, size, "%s notice by %s to %s", saga_outcome_names[ev->u.notification_sent.outcome],
            saga_channel_names[ev->u.notification_sent.channel], ev->u.notification_sent.recipient);
        break;
    default:
        snprintf(out, size, "%s", saga_event_type_name(ev->type));
    }
}

saga_err_t order_timeline_add(PGconn *conn, const struct saga_event *ev, char *errstr,
                              size_t errstr_size)
{
    char summary[300], at[32];
    const char *p[7] = {ev->meta.order_id,
                        ev->meta.event_id,
                        saga_event_type_name(ev->type),
                        ev->meta.producer,
                        at,
                        ev->meta.causation_id,
                        summary};
    PGresult *r;
    saga_err_t err = SAGA_OK;

    summarize(ev, summary, sizeof(summary));
    snprintf(at, sizeof(at), "%" PRId64, ev->meta.occurred_at);
    r = saga_pg_exec(conn,
                     "INSERT INTO timeline (order_id, event_id, event_type, service, occurred_at,"
                     " causation_id, summary) VALUES ($1, $2, $3, $4,"
                     " to_timestamp($5::bigint / 1000.0), $6, $7)"
                     " ON CONFLICT (event_id) DO NOTHING",
                     7, p, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        saga_pg_errstr(conn, errstr, errstr_size);
        err = saga_pg_classify(conn, r);
    }
    PQclear(r);
    return err;
}

/* --- outcomes ------------------------------------------------------------------ */

/* The columns the outcome events need, read while the row is locked. */
struct order_row {
    char status[16];
    char currency[8];
    int64_t total;
    char correlation_id[64];
    char placed_event_id[64];
    char traceparent[128];
};

static saga_err_t lock_order(PGconn *conn, const char *order_id, struct order_row *row,
                             char *errstr, size_t errstr_size)
{
    const char *p[1] = {order_id};
    PGresult *r = saga_pg_exec(conn,
                               "SELECT status, currency, total_amount, correlation_id,"
                               " placed_event_id, coalesce(traceparent, '')"
                               " FROM orders WHERE order_id = $1 FOR UPDATE",
                               1, p, NULL, NULL, 0);
    saga_err_t err = SAGA_OK;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        saga_pg_errstr(conn, errstr, errstr_size);
        err = saga_pg_classify(conn, r);
    } else if (PQntuples(r) == 0) {
        err = saga_errf(SAGA_ERR_NOT_FOUND, errstr, errstr_size, "no order %s", order_id);
    } else {
        snprintf(row->status, sizeof(row->status), "%s", PQgetvalue(r, 0, 0));
        snprintf(row->currency, sizeof(row->currency), "%s", PQgetvalue(r, 0, 1));
        row->total = strtoll(PQgetvalue(r, 0, 2), NULL, 10);
        snprintf(row->correlation_id, sizeof(row->correlation_id), "%s", PQgetvalue(r, 0, 3));
        snprintf(row->placed_event_id, sizeof(row->placed_event_id), "%s", PQgetvalue(r, 0, 4));
        snprintf(row->traceparent, sizeof(row->traceparent), "%s", PQgetvalue(r, 0, 5));
    }
    PQclear(r);
    return err;
}

static saga_err_t set_outcome(PGconn *conn, const char *order_id, const char *status,
                              const char *reason, const char *detail, char *errstr,
                              size_t errstr_size)
{
    const char *p[4] = {order_id, status, reason, detail};
    PGresult *r = saga_pg_exec(conn,
                               "UPDATE orders SET status = $2, reason = $3, detail = $4,"
                               " updated_at = now(), completed_at = now()"
                               " WHERE order_id = $1 AND status = 'PENDING'",
                               4, p, NULL, NULL, 0);
    saga_err_t err = SAGA_OK;
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        saga_pg_errstr(conn, errstr, errstr_size);
        err = saga_pg_classify(conn, r);
    }
    PQclear(r);
    return err;
}

static void log_outcome(const struct saga_event *ev, const char *what)
{
    struct saga_log_ids ids = {ev->meta.order_id, ev->meta.event_id, ev->meta.correlation_id, NULL};
    saga_log(SAGA_LOG_INFO, &ids, "order %s", what);
}

saga_err_t order_cancel_in_tx(struct order_slot *slot, const char *order_id,
                              saga_cancel_reason_t reason, const char *detail, char *status,
                              size_t status_size, int *changed, struct saga_span *span,
                              char *errstr, size_t errstr_size)
{
    struct order_row row;
    struct saga_event ev;
    char id[37], span_tp[SAGA_TRACEPARENT_LEN + 1];
    saga_err_t err;

    *changed = 0;
    if ((err = lock_order(slot->conn, order_id, &row, errstr, errstr_size)))
        return err;
    snprintf(status, status_size, "%s", row.status);
    if (strcmp(row.status, "PENDING") != 0)
        return SAGA_OK; /* first writer won already */
    saga_event_init(&ev, SAGA_EV_ORDER_CANCELLED);
    saga_uuid4(id);
    ev.meta.event_id = id;
    ev.meta.order_id = order_id;
    ev.meta.correlation_id = row.correlation_id;
    ev.meta.causation_id = row.placed_event_id;
    ev.meta.occurred_at = saga_now_ms();
    ev.meta.producer = PRODUCER;
    /* A span of its own in the order's trace. */
    saga_traceparent_child(row.traceparent[0] ? row.traceparent : NULL, span_tp);
    ev.meta.traceparent = span_tp;
    ev.u.order_cancelled.reason = reason;
    ev.u.order_cancelled.detail = detail;
    if ((err = set_outcome(slot->conn, order_id, "CANCELLED", saga_cancel_reason_names[reason],
                           detail, errstr, errstr_size)) ||
        (err = saga_outbox_append_event(slot->conn, slot->serde, &ev, &slot->scratch, errstr,
                                        errstr_size)) ||
        (err = order_timeline_add(slot->conn, &ev, errstr, errstr_size)))
        return err;
    snprintf(status, status_size, "CANCELLED");
    *changed = 1;
    if (saga_span_begin(
            span, reason == SAGA_CANCEL_TIMEOUT ? "order timeout" : "POST /orders/{id}/cancel",
            reason == SAGA_CANCEL_TIMEOUT ? SAGA_SPAN_INTERNAL : SAGA_SPAN_SERVER, span_tp,
            row.traceparent)) {
        saga_span_str(span, "saga.order_id", order_id);
        saga_span_str(span, "saga.cancel_reason", saga_cancel_reason_names[reason]);
        saga_span_str(span, "saga.event_id", id);
        if (reason != SAGA_CANCEL_TIMEOUT) {
            saga_span_str(span, "http.request.method", "POST");
            saga_span_str(span, "http.route", "/orders/{id}/cancel");
        }
    }
    log_outcome(&ev,
                reason == SAGA_CANCEL_TIMEOUT ? "cancelled: TIMEOUT" : "cancelled by customer");
    return SAGA_OK;
}

/* --- the saga's handlers ----------------------------------------------------- */

static saga_handle_result_t from_err(struct saga_tx *tx, saga_err_t err)
{
    (void)tx;
    return err == SAGA_ERR_TRANSIENT ? SAGA_HANDLE_TRANSIENT : SAGA_HANDLE_INVALID;
}

/*
 * Every event: the order's row locked, the event in the timeline; then, for the
 * events that decide, the outcome if the order is still PENDING.
 */
static saga_handle_result_t on_event(struct saga_tx *tx, const struct saga_event *ev, void *arg)
{
    struct saga_log_ids ids = {ev->meta.order_id, ev->meta.event_id, ev->meta.correlation_id, NULL};
    struct order_row row;
    struct saga_event out;
    char id[37], detail[64] = "";
    saga_cancel_reason_t reason = SAGA_CANCEL_UNKNOWN;
    saga_err_t err;
    (void)arg;

    err = lock_order(tx->conn, ev->meta.order_id, &row, tx->errstr, sizeof(tx->errstr));
    if (err == SAGA_ERR_NOT_FOUND) {
        /* Not an order of this service: nothing to decide or show (logged, not lost:
         * the inbox keeps the event id). */
        saga_log(SAGA_LOG_WARN, &ids, "%s for an order this service does not know: ignored",
                 saga_event_type_name(ev->type));
        return SAGA_HANDLE_OK;
    }
    if (err)
        return from_err(tx, err);
    if ((err = order_timeline_add(tx->conn, ev, tx->errstr, sizeof(tx->errstr))))
        return from_err(tx, err);

    switch (ev->type) {
    case SAGA_EV_INVENTORY_REJECTED:
        reason = SAGA_CANCEL_OUT_OF_STOCK;
        /* The SKU that stopped it ("sku-sold-out"), or "UNKNOWN_SKU sku-x". */
        snprintf(detail, sizeof(detail), "%s%s%s",
                 ev->u.inventory_rejected.reason == SAGA_REJECT_OUT_OF_STOCK
                     ? ""
                     : saga_reject_reason_names[ev->u.inventory_rejected.reason],
                 ev->u.inventory_rejected.reason == SAGA_REJECT_OUT_OF_STOCK ? "" : " ",
                 ev->u.inventory_rejected.sku ? ev->u.inventory_rejected.sku : "");
        break;
    case SAGA_EV_PAYMENT_FAILED:
        reason = SAGA_CANCEL_PAYMENT_FAILED;
        snprintf(detail, sizeof(detail), "%s",
                 saga_payment_failure_names[ev->u.payment_failed.reason]);
        break;
    case SAGA_EV_SHIPMENT_FAILED:
        reason = SAGA_CANCEL_SHIPMENT_FAILED;
        snprintf(detail, sizeof(detail), "%s",
                 saga_shipment_failure_names[ev->u.shipment_failed.reason]);
        break;
    case SAGA_EV_SHIPMENT_SCHEDULED:
        break;
    default:
        return SAGA_HANDLE_OK; /* the timeline is all */
    }

    if (strcmp(row.status, "PENDING") != 0) {
        saga_log(SAGA_LOG_INFO, &ids, "%s after the order was %s: recorded only",
                 saga_event_type_name(ev->type), row.status);
        return SAGA_HANDLE_OK;
    }
    if (ev->type == SAGA_EV_SHIPMENT_SCHEDULED) {
        saga_event_follow(&out, SAGA_EV_ORDER_CONFIRMED, ev, PRODUCER, id);
        out.u.order_confirmed.total_amount = row.total;
        out.u.order_confirmed.currency = row.currency;
        out.u.order_confirmed.tracking_number =
            order_tracking_number_passed_on(ev->u.shipment_scheduled.tracking_number);
        if (!out.u.order_confirmed.tracking_number)
            saga_log(SAGA_LOG_WARN, &ids,
                     "ShipmentScheduled %s carries a tracking number that is empty, longer than "
                     "%d bytes or not letters, digits, spaces and dashes: OrderConfirmed leaves it "
                     "out",
                     ev->meta.event_id, ORDER_TRACKING_MAX);
        err = set_outcome(tx->conn, ev->meta.order_id, "CONFIRMED", NULL, NULL, tx->errstr,
                          sizeof(tx->errstr));
    } else {
        saga_event_follow(&out, SAGA_EV_ORDER_CANCELLED, ev, PRODUCER, id);
        out.u.order_cancelled.reason = reason;
        out.u.order_cancelled.detail = detail;
        err = set_outcome(tx->conn, ev->meta.order_id, "CANCELLED",
                          saga_cancel_reason_names[reason], detail, tx->errstr, sizeof(tx->errstr));
    }
    if (err)
        return from_err(tx, err);
    if ((err = order_timeline_add(tx->conn, &out, tx->errstr, sizeof(tx->errstr))))
        return from_err(tx, err);
    {
        saga_handle_result_t res = saga_tx_emit(tx, &out);
        if (res != SAGA_HANDLE_OK) /* e.g. TRANSIENT while the schema registry is down */
            return res;
    }
    if (out.type == SAGA_EV_ORDER_CONFIRMED)
        log_outcome(&out, "confirmed");
    else
        saga_log(SAGA_LOG_INFO,
                 &(struct saga_log_ids){out.meta.order_id, out.meta.event_id,
                                        out.meta.correlation_id, NULL},
                 "order cancelled: %s (%s)", saga_cancel_reason_names[reason], detail);
    return SAGA_HANDLE_OK;
}

/* --- connection pool ----------------------------------------------------------- */

/* Makes s usable (its serde, a live connection): 0, or -1 with errstr.
 * locality: the HTTP threads, each on the slot it took. locks: none (the slot is its own). */
static int slot_open(struct order_app *app, struct order_slot *s, char *errstr, size_t errstr_size)
{
    if (!s->serde && saga_serde_open(app->cfg->schema_registry_url, app->cfg->schema_dir, &s->serde,
                                     &s->registry, errstr, errstr_size))
        return -1;
    if (s->conn && saga_pg_idle_alive(s->conn))
        return 0;
    if (s->conn)
        PQfinish(s->conn);
    s->conn = saga_pg_connect(app->cfg->database_url, NULL, errstr, errstr_size);
    return s->conn ? 0 : -1;
}

struct order_slot *order_pool_get(struct order_app *app, char *errstr, size_t errstr_size)
{
    struct order_slot *s = NULL;
    struct timespec until;

    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += 5;
    pthread_mutex_lock(&app->mu);
    for (;;) {
        for (int i = 0; i < ORDER_POOL_SIZE && !s; i++)
            if (!app->slots[i].busy)
                s = &app->slots[i];
        if (s || pthread_cond_timedwait(&app->cv, &app->mu, &until) == ETIMEDOUT)
            break;
    }
    if (s)
        s->busy = 1;
    pthread_mutex_unlock(&app->mu);
    if (!s) {
        snprintf(errstr, errstr_size, "every database connection is busy");
        return NULL;
    }
    if (slot_open(app, s, errstr, errstr_size) != 0) {
        order_pool_put(app, s, 1);
        return NULL;
    }
    return s;
}

void order_pool_put(struct order_app *app, struct order_slot *s, int broken)
{
    if (broken && s->conn && PQstatus(s->conn) != CONNECTION_OK) {
        PQfinish(s->conn);
        s->conn = NULL;
    }
    pthread_mutex_lock(&app->mu);
    s->busy = 0;
    pthread_cond_signal(&app->cv);
    pthread_mutex_unlock(&app->mu);
}

/* --- the sweeper ------------------------------------------------------------ */

static int exec_ok(PGconn *conn, const char *sql)
{
    PGresult *r = saga_pg_query(conn, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK;
    PQclear(r);
    return ok;
}

/* Cancels up to 100 overdue PENDING orders; returns how many, or -1 on a database error. */
static int sweep_once(struct order_app *app, struct order_slot *s)
{
    char interval[32], err[512], status[16];
    const char *p[1] = {interval};
    PGresult *r;
    int n, done = 0;

    snprintf(interval, sizeof(interval), "%" PRId64 " milliseconds", app->timeout_ms);
    r = saga_pg_exec(s->conn,
                     "SELECT order_id FROM orders WHERE status = 'PENDING'"
                     " AND created_at < now() - $1::interval ORDER BY created_at LIMIT 100",
                     1, p, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        saga_pg_errstr(s->conn, err, sizeof(err));
        saga_warn("sweeper: %s", err);
        PQclear(r);
        return -1;
    }
    n = PQntuples(r);
    for (int i = 0; i < n && !saga_service_stopping; i++) {
        const char *id = PQgetvalue(r, i, 0);
        char detail[64];
        saga_err_t e;
        snprintf(detail, sizeof(detail), "no outcome within %" PRId64 " ms", app->timeout_ms);
        if (!exec_ok(s->conn, "BEGIN"))
            break;
        int changed;
        struct saga_span span = {0};
        e = order_cancel_in_tx(s, id, SAGA_CANCEL_TIMEOUT, detail, status, sizeof(status), &changed,
                               &span, err, sizeof(err));
        if (!e)
            e = saga_outbox_commit_notify(s->conn, err, sizeof(err));
        if (e) {
            exec_ok(s->conn, "ROLLBACK");
            saga_warn("sweeper: cancelling %s: %s", id, err);
            saga_span_error(&span, "not cancelled: %s", err);
            saga_span_end(&span);
            break;
        }
        saga_span_end(&span);
        done++;
        app->swept++;
        if (changed)
            saga_produced_add(SAGA_EV_ORDER_CANCELLED, 1);
    }
    PQclear(r);
    return done;
}

static void *sweeper_main(void *arg)
{
    struct order_app *app = arg;
    while (!saga_service_stopping) {
        char err[512];
        struct order_slot *s = order_pool_get(app, err, sizeof(err));
        int n = 0;
        if (s) {
            n = sweep_once(app, s);
            order_pool_put(app, s, n < 0);
        }
        /* A full page means more are overdue: go on at once. */
        for (int64_t waited = 0; n < 100 && waited < app->sweep_every_ms && !saga_service_stopping;
             waited += 50) {
            struct timespec ts = {0, 50 * 1000000L};
            nanosleep(&ts, NULL);
        }
    }
    return NULL;
}

/* --- start and stop ---------------------------------------------------------- */

struct order_settings {
    int64_t saga_timeout_ms;  /* SAGA_TIMEOUT */
    int64_t sweep_ms;         /* SAGA_SWEEP_INTERVAL */
    struct saga_auth auth;    /* AUTH_* */
    long timeline_max;        /* ORDER_TIMELINE_MAX */
    char tracing_ui_url[512]; /* TRACING_UI_URL, without a trailing slash; "" = unset */
    int64_t events_pause_ms;  /* EVENTS_IDLE_PAUSE: 0 = never */
};

static struct order_settings settings;

static saga_err_t order_settings_load(void *arg, char *errstr, size_t errstr_size)
{
    struct order_settings *s = arg;
    saga_err_t err = saga_env_duration_ms("SAGA_TIMEOUT", SAGA_TIMEOUT_DEFAULT_MS, 1000, 86400000,
                                          &s->saga_timeout_ms, errstr, errstr_size);
    if (err)
        return err;
    err = saga_env_duration_ms("SAGA_SWEEP_INTERVAL", SAGA_SWEEP_INTERVAL_DEFAULT_MS, 50, 3600000,
                               &s->sweep_ms, errstr, errstr_size);
    if (err)
        return err;
    err =
        saga_env_long("ORDER_TIMELINE_MAX", 500, 10, 100000, &s->timeline_max, errstr, errstr_size);
    if (err)
        return err;
    err = saga_env_duration_ms("EVENTS_IDLE_PAUSE", 30000, 0, 86400000, &s->events_pause_ms, errstr,
                               errstr_size);
    if (err)
        return err;
    /* The tracing backend's UI (Jaeger's): each order's trace is URL/trace/TRACE_ID. */
    const char *ui = saga_env("TRACING_UI_URL", "");
    size_t n = strlen(ui);
    while (n > 0 && ui[n - 1] == '/')
        n--;
    if (*ui && ((strncmp(ui, "http://", 7) != 0 && strncmp(ui, "https://", 8) != 0) ||
                n >= sizeof(s->tracing_ui_url) || strpbrk(ui, " \"<>\\") != NULL)) {
        snprintf(errstr, errstr_size, "TRACING_UI_URL must be an http:// or https:// URL, got '%s'",
                 ui);
        return SAGA_ERR_CONFIG;
    }
    snprintf(s->tracing_ui_url, sizeof(s->tracing_ui_url), "%.*s", (int)n, ui);
    saga_auth_release(&s->auth);
    return saga_auth_load(&s->auth, errstr, errstr_size);
}

static void order_settings_print(const void *arg, FILE *out)
{
    const struct order_settings *s = arg;
    fprintf(out, "SAGA_TIMEOUT=%" PRId64 "ms\n", s->saga_timeout_ms);
    fprintf(out, "SAGA_SWEEP_INTERVAL=%" PRId64 "ms\n", s->sweep_ms);
    saga_auth_print(&s->auth, out);
    fprintf(out, "ORDER_TIMELINE_MAX=%ld\n", s->timeline_max);
    fprintf(out, "EVENTS_IDLE_PAUSE=%" PRId64 "ms\n", s->events_pause_ms);
    fprintf(out, "TRACING_UI_URL=%s\n", s->tracing_ui_url[0] ? s->tracing_ui_url : "(unset)");
}

static saga_err_t order_start(void *arg, const struct saga_config *cfg, char *errstr,
                              size_t errstr_size)
{
    struct order_app *app = arg;
    app->cfg = cfg;
    app->timeout_ms = settings.saga_timeout_ms;
    app->sweep_every_ms = settings.sweep_ms;
    app->auth = &settings.auth;
    saga_auth_warn(app->auth);
    app->timeline_max = settings.timeline_max;
    app->events_pause_ms = settings.events_pause_ms;
    app->tracing_ui_url = settings.tracing_ui_url[0] ? settings.tracing_ui_url : NULL;
    if (pthread_create(&app->sweeper, NULL, sweeper_main, app) != 0) {
        snprintf(errstr, errstr_size, "cannot start the sweeper thread");
        return SAGA_ERR_NOMEM;
    }
    app->sweeper_started = 1;
    if (order_web_start(app, errstr, errstr_size))
        return SAGA_ERR_NOMEM;
    saga_info("saga timeout %" PRId64 " ms, swept every %" PRId64 " ms", app->timeout_ms,
              app->sweep_every_ms);
    return SAGA_OK;
}

static void order_stop(void *arg)
{
    struct order_app *app = arg;
    atomic_store(&saga_service_stopping, 1);
    if (app->sweeper_started)
        pthread_join(app->sweeper, NULL);
    order_web_stop(app);
    saga_auth_release(&settings.auth);
    for (int i = 0; i < ORDER_POOL_SIZE; i++) {
        struct order_slot *s = &app->slots[i];
        if (s->conn)
            PQfinish(s->conn);
        saga_serde_destroy(s->serde);
        saga_registry_destroy(s->registry);
        saga_buf_release(&s->scratch);
    }
}

static const struct saga_program program = {
    .name = PRODUCER,
    .summary = "Places and reads orders over HTTP and owns each order's saga outcome.",
    .config_flags = SAGA_CONFIG_DATABASE | SAGA_CONFIG_HTTP,
    .http_port = 8080,
    .env_help =
        "  SAGA_TIMEOUT              cancel PENDING orders older than this (default 30s)\n"
        "  SAGA_SWEEP_INTERVAL       how often to look for them (default 1s)\n"
        "  AUTH_MODE                 jwt (default) or off (local development only)\n"
        "  AUTH_SECRET_FILE          HS256 secret for bearer tokens, or\n"
        "  AUTH_PUBLIC_KEY_FILE      RS256/ES256 public key (PEM), with AUTH_ALG\n"
        "  AUTH_ISSUER, AUTH_AUDIENCE  required iss / aud when set\n"
        "  ORDER_TIMELINE_MAX        timeline events GET /orders/{id} returns (default 500)\n"
        "  EVENTS_IDLE_PAUSE         /events stops polling after this long unwatched (30s; 0: "
        "never)\n",
    .load = order_settings_load,
    .print = order_settings_print,
    .arg = &settings,
};

static const struct saga_service service = {
    .program = &program,
    .info_name = "order",
    .migrations = migrations,
    .nmigrations = (int)(sizeof(migrations) / sizeof(migrations[0])),
    /* Its own OrderPlaced (POST /orders) and OrderConfirmed (on_event) are on the timeline
     * from the transaction that wrote them: read back, they are skipped (no transaction, no
     * inbox row). OrderCancelled is too (order_cancel_in_tx, on_event), yet still handled
     * (the row is there already): order-service 0.2.0 and before read `orders`, and
     * `sagactl dlq replay` sends order.dlq's dead letters only to topics this service
     * reads (docs/BENCHMARKS.md, "Levers checked and not taken"). */
    .handlers =
        {
            [SAGA_EV_ORDER_CANCELLED] = on_event,
            [SAGA_EV_INVENTORY_RESERVED] = on_event,
            [SAGA_EV_INVENTORY_REJECTED] = on_event,
            [SAGA_EV_INVENTORY_RELEASED] = on_event,
            [SAGA_EV_PAYMENT_AUTHORIZED] = on_event,
            [SAGA_EV_PAYMENT_FAILED] = on_event,
            [SAGA_EV_PAYMENT_REFUNDED] = on_event,
            [SAGA_EV_SHIPMENT_SCHEDULED] = on_event,
            [SAGA_EV_SHIPMENT_FAILED] = on_event,
            [SAGA_EV_SHIPMENT_CANCELLED] = on_event,
            [SAGA_EV_NOTIFICATION_SENT] = on_event,
        },
    .arg = &order_app,
    .start = order_start,
    .stop = order_stop,
    .http = order_http,
    .metrics = order_metrics,
    .http_max_body = 64 * 1024,
};

int main(int argc, char **argv)
{
    return saga_service_main(&service, argc, argv);
}
