/*
 * shipping-service: shipments. Schedules an order's shipment on PaymentAuthorized,
 * or fails it (ShipmentFailed); cancels a scheduled shipment on OrderCancelled
 * (once).
 *
 * An order gets at most one shipments row (order_id is unique), so it is never
 * scheduled twice and cancelled at most once. Handlers lock the order's row first.
 */
#include <stdio.h>
#include <stdlib.h>

#include "rules.h"
#include "saga/ids.h"
#include "saga/log.h"
#include "saga/participant.h"
#include "saga/service.h"
#include "shipping_migrations.h" /* generated from migrations/NNN_name.sql */

#define PRODUCER "shipping-service"

/* The schema, in migrations/NNN_name.sql (embedded by the build; applied in this order, each
 * once per database, tracked by version and name: common/include/saga/migrate.h). */
static const struct saga_migration migrations[] = {
    {100, "orders, shipments", shipping_sql_100_orders_shipments},
};

/* The columns of the order's row the handlers read (saga/participant.h), and their
 * numbers in the row: placed and cancelled come first. */
#define ORDER_COLUMNS "line1, city, postal_code, country"
enum { O_PLACED, O_CANCELLED, O_LINE1, O_CITY, O_POSTAL_CODE, O_COUNTRY };

/* The column's text, or NULL when it is NULL. */
static const char *text_or_null(const PGresult *r, int col)
{
    return PQgetisnull(r, 0, col) ? NULL : PQgetvalue(r, 0, col);
}

static saga_handle_result_t on_order_placed(struct saga_tx *tx, const struct saga_event *ev,
                                            void *arg)
{
    const struct saga_address *a = &ev->u.order_placed.shipping_address;
    const char *p[7] = {ev->meta.order_id, a->recipient,   a->line1,  a->line2,
                        a->city,           a->postal_code, a->country};
    (void)arg;

    /* Another OrderPlaced for the same order changes nothing: the first counts. */
    return saga_tx_query(tx, NULL,
                         "INSERT INTO orders (order_id, placed, recipient, line1, line2, city,"
                         " postal_code, country) VALUES ($1, true, $2, $3, $4, $5, $6, $7)"
                         " ON CONFLICT (order_id) DO UPDATE SET placed = true,"
                         " recipient = EXCLUDED.recipient, line1 = EXCLUDED.line1,"
                         " line2 = EXCLUDED.line2, city = EXCLUDED.city,"
                         " postal_code = EXCLUDED.postal_code, country = EXCLUDED.country,"
                         " updated_at = now() WHERE NOT orders.placed",
                         7, p);
}

static saga_handle_result_t on_payment_authorized(struct saga_tx *tx, const struct saga_event *ev,
                                                  void *arg)
{
    const struct saga_log_ids ids = {ev->meta.order_id, ev->meta.event_id, ev->meta.correlation_id,
                                     NULL};
    struct saga_order_row row;
    PGresult *o = NULL, *r = NULL;
    char shipment_id[37], tracking[SHIP_TRACKING_SIZE], out_id[37];
    const char *country;
    int exists;
    struct saga_event out;
    saga_handle_result_t res;
    (void)arg;

    /* Deferred until OrderPlaced; nothing to ship for a cancelled order. */
    res = saga_order_trigger(tx, ev, ORDER_COLUMNS, &row);
    o = row.res; /* cleared at done */
    if (res || row.gate == SAGA_ORDER_CANCELLED)
        goto done;
    {
        const char *p[1] = {ev->meta.order_id};
        if ((res = saga_tx_query(tx, &r, "SELECT 1 FROM shipments WHERE order_id = $1", 1, p)))
            goto done;
        exists = PQntuples(r) > 0;
        PQclear(r);
        r = NULL;
        if (exists)
            goto done; /* decided already (OK) */
    }
    country = PQgetvalue(o, 0, O_COUNTRY); /* "" when OrderPlaced had none */

    ship_decision_t d = ship_decide(text_or_null(o, O_COUNTRY), text_or_null(o, O_LINE1),
                                    text_or_null(o, O_CITY), text_or_null(o, O_POSTAL_CODE));
    saga_uuid4(shipment_id);
    if (d == SHIP_SCHEDULE) {
        ship_tracking_number(shipment_id, tracking, sizeof(tracking));
        const char *p[4] = {shipment_id, ev->meta.order_id, tracking, country};
        if ((res = saga_tx_query(tx, NULL,
                                 "INSERT INTO shipments (shipment_id, order_id, status,"
                                 " tracking_number, carrier, country)"
                                 " VALUES ($1, $2, 'scheduled', $3, '" SHIP_CARRIER "', $4)",
                                 4, p)))
            goto done;
        saga_event_follow(&out, SAGA_EV_SHIPMENT_SCHEDULED, ev, PRODUCER, out_id);
        out.u.shipment_scheduled.shipment_id = shipment_id;
        out.u.shipment_scheduled.tracking_number = tracking;
        out.u.shipment_scheduled.carrier = SHIP_CARRIER;
        saga_log(SAGA_LOG_INFO, &ids, "shipment %s scheduled to %s: %s %s", shipment_id, country,
                 SHIP_CARRIER, tracking);
    } else {
        saga_shipment_failure_t reason = ship_failure(d);
        const char *p[4] = {shipment_id, ev->meta.order_id, country,
                            saga_shipment_failure_names[reason]};
        if ((res = saga_tx_query(tx, NULL,
                                 "INSERT INTO shipments (shipment_id, order_id, status, country,"
                                 " failure_reason) VALUES ($1, $2, 'failed', $3, $4)",
                                 4, p)))
            goto done;
        saga_event_follow(&out, SAGA_EV_SHIPMENT_FAILED, ev, PRODUCER, out_id);
        out.u.shipment_failed.reason = reason;
        out.u.shipment_failed.country = country;
        saga_log(SAGA_LOG_INFO, &ids, "shipment %s failed: %s (country \"%s\")", shipment_id,
                 saga_shipment_failure_names[reason], country);
    }
    res = saga_tx_emit(tx, &out);
done:
    PQclear(r);
    PQclear(o);
    return res;
}

static saga_handle_result_t on_order_cancelled(struct saga_tx *tx, const struct saga_event *ev,
                                               void *arg)
{
    const char *p[1] = {ev->meta.order_id};
    struct saga_order_row row;
    PGresult *o = NULL, *r = NULL;
    char out_id[37];
    struct saga_event out;
    saga_handle_result_t res;
    (void)arg;

    res = saga_order_cancel(tx, ev->meta.order_id, NULL, &row); /* a tombstone if need be */
    o = row.res;
    if (res ||
        (res = saga_tx_query(tx, &r,
                             "UPDATE shipments SET status = 'cancelled', cancelled_at = now()"
                             " WHERE order_id = $1 AND status = 'scheduled'"
                             " RETURNING shipment_id, tracking_number",
                             1, p)))
        goto done;
    if (PQntuples(r) == 0)
        goto done; /* nothing scheduled: never, failed, or cancelled already (OK) */
    saga_event_follow(&out, SAGA_EV_SHIPMENT_CANCELLED, ev, PRODUCER, out_id);
    out.u.shipment_cancelled.shipment_id = PQgetvalue(r, 0, 0);
    out.u.shipment_cancelled.tracking_number = PQgetvalue(r, 0, 1);
    saga_log(
        SAGA_LOG_INFO,
        &(struct saga_log_ids){ev->meta.order_id, ev->meta.event_id, ev->meta.correlation_id, NULL},
        "shipment %s cancelled (%s)", out.u.shipment_cancelled.shipment_id,
        out.u.shipment_cancelled.tracking_number);
    res = saga_tx_emit(tx, &out);
done:
    PQclear(r);
    PQclear(o);
    return res;
}

static const struct saga_program program = {
    .name = PRODUCER,
    .summary = "Shipments: schedules on PaymentAuthorized, cancels on OrderCancelled.",
    .config_flags = SAGA_CONFIG_DATABASE | SAGA_CONFIG_HTTP,
    .http_port = 8083,
};

static const struct saga_service service = {
    .program = &program,
    .info_name = "shipping",
    .migrations = migrations,
    .nmigrations = (int)(sizeof(migrations) / sizeof(migrations[0])),
    .handlers =
        {
            [SAGA_EV_ORDER_PLACED] = on_order_placed,
            [SAGA_EV_ORDER_CANCELLED] = on_order_cancelled,
            [SAGA_EV_PAYMENT_AUTHORIZED] = on_payment_authorized,
        },
    .releases_deferred = 1u << SAGA_EV_ORDER_PLACED | 1u << SAGA_EV_ORDER_CANCELLED,
};

int main(int argc, char **argv)
{
    return saga_service_main(&service, argc, argv);
}
