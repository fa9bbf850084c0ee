/*
 * inventory-service: stock and reservations. Reserves every line of an order or
 * none on OrderPlaced; releases the reservation on PaymentFailed and on
 * OrderCancelled (once); moves it to shipped on OrderConfirmed.
 *
 * Stock per SKU keeps initial = available + reserved + shipped (a CHECK in the
 * table). Stock rows are locked in SKU order, so concurrent orders on the same
 * SKUs do not deadlock.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "rules.h"
#include "saga/ids.h"
#include "saga/participant.h"
#include "saga/service.h"
#include "inventory_migrations.h" /* generated from migrations/NNN_name.sql */

#define PRODUCER "inventory-service"

/* The schema, in migrations/NNN_name.sql (embedded by the build; applied in this order, each
 * once per database, tracked by version and name: common/include/saga/migrate.h). */
static const struct saga_migration migrations[] = {
    {100, "stock, orders, reservations", inventory_sql_100_stock_orders_reservations},
    {101, "an order's row starts pending", inventory_sql_101_order_row_starts_pending},
};

static saga_handle_result_t on_order_placed(struct saga_tx *tx, const struct saga_event *ev,
                                            void *arg)
{
    const struct saga_order_placed *o = &ev->u.order_placed;
    struct saga_stock_line *lines = NULL;
    const char **skus = NULL;
    int64_t *avail = NULL;
    struct saga_order_row row;
    char id[37], out_id[37], *sku_arr = NULL, *qty_arr = NULL;
    struct saga_text qt = {0};
    int placed, cancelled;
    size_t n, bad = 0;
    PGresult *r = NULL;
    struct saga_event out;
    saga_handle_result_t res;
    (void)arg;

    res = saga_order_lock(tx, ev->meta.order_id, NULL, &row);
    placed = row.placed;
    cancelled = row.cancelled;
    saga_order_row_release(&row);
    if (res)
        return res;
    if (placed)
        return SAGA_HANDLE_OK; /* another OrderPlaced for the same order: the first counts */
    {
        const char *p[1] = {ev->meta.order_id};
        if ((res = saga_tx_query(tx, NULL, "UPDATE orders SET placed = true WHERE order_id = $1", 1,
                                 p)))
            return res;
    }
    if (cancelled) {
        saga_log(SAGA_LOG_INFO,
                 &(struct saga_log_ids){ev->meta.order_id, ev->meta.event_id,
                                        ev->meta.correlation_id, NULL},
                 "order was cancelled before it was placed here: nothing reserved");
        return SAGA_HANDLE_OK;
    }

    lines = calloc(o->item_count ? o->item_count : 1, sizeof(*lines));
    skus = calloc(o->item_count ? o->item_count : 1, sizeof(*skus));
    avail = calloc(o->item_count ? o->item_count : 1, sizeof(*avail));
    if (!lines || !skus || !avail)
        abort();
    if (!(n = inv_merge_lines(o->items, o->item_count, lines))) {
        snprintf(tx->errstr, sizeof(tx->errstr), "OrderPlaced without valid lines");
        res = SAGA_HANDLE_INVALID;
        goto done;
    }
    saga_pg_array_begin(&qt);
    for (size_t i = 0; i < n; i++) {
        skus[i] = lines[i].sku;
        avail[i] = -1;
        saga_pg_array_int(&qt, lines[i].quantity);
    }
    saga_pg_array_end(&qt);
    sku_arr = saga_pg_text_array(skus, n);
    qty_arr = qt.data;
    {
        const char *p[1] = {sku_arr};
        if ((res = saga_tx_query(tx, &r,
                                 "SELECT sku, available FROM stock WHERE sku = ANY($1::text[])"
                                 " ORDER BY sku FOR UPDATE",
                                 1, p)))
            goto done;
        for (int k = 0; k < PQntuples(r); k++)
            for (size_t i = 0; i < n; i++)
                if (strcmp(PQgetvalue(r, k, 0), lines[i].sku) == 0)
                    avail[i] = strtoll(PQgetvalue(r, k, 1), NULL, 10);
        PQclear(r);
        r = NULL;
    }

    inv_decision_t d = inv_decide(lines, n, avail, &bad);
    if (d == INV_RESERVE) {
        const char *p[3] = {sku_arr, qty_arr, ev->meta.order_id};
        const char *po[2] = {ev->meta.order_id, id};
        saga_uuid4(id);
        if ((res = saga_tx_query(tx, NULL,
                                 "UPDATE stock s SET available = s.available - l.q,"
                                 " reserved = s.reserved + l.q"
                                 " FROM unnest($1::text[], $2::int[]) AS l(sku, q)"
                                 " WHERE s.sku = l.sku",
                                 2, p)) ||
            (res =
                 saga_tx_query(tx, NULL,
                               "INSERT INTO reservation_lines (order_id, sku, quantity)"
                               " SELECT $3, sku, q FROM unnest($1::text[], $2::int[]) AS l(sku, q)",
                               3, p)) ||
            (res = saga_tx_query(tx, NULL,
                                 "UPDATE orders SET state = 'reserved', reservation_id = $2"
                                 " WHERE order_id = $1",
                                 2, po)))
            goto done;
        saga_event_follow(&out, SAGA_EV_INVENTORY_RESERVED, ev, PRODUCER, out_id);
        out.u.inventory_reserved.reservation_id = id;
        out.u.inventory_reserved.items = lines;
        out.u.inventory_reserved.item_count = n;
    } else {
        saga_reject_reason_t reason =
            d == INV_REJECT_UNKNOWN_SKU ? SAGA_REJECT_UNKNOWN_SKU : SAGA_REJECT_OUT_OF_STOCK;
        const char *p[3] = {ev->meta.order_id, saga_reject_reason_names[reason], lines[bad].sku};
        if ((res = saga_tx_query(tx, NULL,
                                 "UPDATE orders SET state = 'rejected', reject_reason = $2,"
                                 " reject_sku = $3 WHERE order_id = $1",
                                 3, p)))
            goto done;
        saga_event_follow(&out, SAGA_EV_INVENTORY_REJECTED, ev, PRODUCER, out_id);
        out.u.inventory_rejected.reason = reason;
        out.u.inventory_rejected.sku = lines[bad].sku;
    }
    res = saga_tx_emit(tx, &out);
done:
    PQclear(r);
    free(sku_arr);
    free(qt.data);
    free(lines);
    free(skus);
    free(avail);
    return res;
}

/*
 * Moves the order's reservation out of `reserved`: back to available (release,
 * emitting InventoryReleased) or to shipped. Nothing when it holds none.
 */
static saga_handle_result_t settle(struct saga_tx *tx, const struct saga_event *ev, int ship,
                                   saga_release_reason_t reason)
{
    const char *p[1] = {ev->meta.order_id};
    struct saga_stock_line *lines = NULL;
    char reservation[64], out_id[37];
    struct saga_event out;
    PGresult *r;
    saga_handle_result_t res;
    int n;

    if ((res = saga_tx_query(tx, &r,
                             "SELECT reservation_id FROM orders"
                             " WHERE order_id = $1 AND state = 'reserved'",
                             1, p)))
        return res;
    if (PQntuples(r) == 0) {
        PQclear(r);
        return SAGA_HANDLE_OK; /* nothing reserved, or released/shipped already */
    }
    snprintf(reservation, sizeof(reservation), "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    if ((res = saga_tx_query(tx, NULL,
                             "SELECT 1 FROM stock WHERE sku IN (SELECT sku FROM reservation_lines"
                             " WHERE order_id = $1) ORDER BY sku FOR UPDATE",
                             1, p)) ||
        (res = saga_tx_query(tx, NULL,
                             ship ? "UPDATE stock s SET reserved = s.reserved - l.quantity,"
                                    " shipped = s.shipped + l.quantity FROM reservation_lines l"
                                    " WHERE l.order_id = $1 AND s.sku = l.sku"
                                  : "UPDATE stock s SET reserved = s.reserved - l.quantity,"
                                    " available = s.available + l.quantity FROM reservation_lines l"
                                    " WHERE l.order_id = $1 AND s.sku = l.sku",
                             1, p)) ||
        (res = saga_tx_query(tx, &r,
                             ship ? "UPDATE orders SET state = 'shipped' WHERE order_id = $1"
                                    " RETURNING NULL, NULL"
                                  : "WITH o AS (UPDATE orders SET state = 'released'"
                                    " WHERE order_id = $1 RETURNING order_id)"
                                    " SELECT sku, quantity FROM reservation_lines"
                                    " WHERE order_id = $1 ORDER BY sku",
                             1, p)))
        return res;
    if (ship) {
        PQclear(r);
        return SAGA_HANDLE_OK;
    }
    n = PQntuples(r);
    if (!(lines = calloc(n ? (size_t)n : 1, sizeof(*lines))))
        abort();
    for (int i = 0; i < n; i++) {
        lines[i].sku = PQgetvalue(r, i, 0);
        lines[i].quantity = (int32_t)strtol(PQgetvalue(r, i, 1), NULL, 10);
    }
    saga_event_follow(&out, SAGA_EV_INVENTORY_RELEASED, ev, PRODUCER, out_id);
    out.u.inventory_released.reservation_id = reservation;
    out.u.inventory_released.items = lines;
    out.u.inventory_released.item_count = (size_t)n;
    out.u.inventory_released.reason = reason;
    res = saga_tx_emit(tx, &out);
    free(lines);
    PQclear(r);
    return res;
}

static saga_handle_result_t on_payment_failed(struct saga_tx *tx, const struct saga_event *ev,
                                              void *arg)
{
    struct saga_order_row row;
    saga_handle_result_t res;
    (void)arg;

    /* Deferred until OrderPlaced; settled for a cancelled order too (a release). */
    res = saga_order_lock(tx, ev->meta.order_id, NULL, &row);
    saga_order_row_release(&row);
    if (res)
        return res;
    if (row.gate == SAGA_ORDER_WAITING)
        return SAGA_HANDLE_DEFER;
    return settle(tx, ev, 0, SAGA_RELEASE_PAYMENT_FAILED);
}

static saga_handle_result_t on_order_cancelled(struct saga_tx *tx, const struct saga_event *ev,
                                               void *arg)
{
    struct saga_order_row row;
    saga_handle_result_t res;
    (void)arg;

    res = saga_order_cancel(tx, ev->meta.order_id, NULL, &row); /* a tombstone if need be */
    saga_order_row_release(&row);
    if (res)
        return res;
    return settle(tx, ev, 0, SAGA_RELEASE_ORDER_CANCELLED);
}

static saga_handle_result_t on_order_confirmed(struct saga_tx *tx, const struct saga_event *ev,
                                               void *arg)
{
    struct saga_order_row row;
    saga_handle_result_t res;
    (void)arg;

    /* Deferred until OrderPlaced; settled for a cancelled order too (a release). */
    res = saga_order_lock(tx, ev->meta.order_id, NULL, &row);
    saga_order_row_release(&row);
    if (res)
        return res;
    if (row.gate == SAGA_ORDER_WAITING)
        return SAGA_HANDLE_DEFER;
    return settle(tx, ev, 1, SAGA_RELEASE_UNKNOWN);
}

static void metrics(void *arg, struct saga_text *t)
{
    (void)arg;
    (void)t;
}

static const struct saga_program program = {
    .name = PRODUCER,
    .summary = "Stock and reservations: reserves on OrderPlaced, releases on PaymentFailed and "
               "OrderCancelled.",
    .config_flags = SAGA_CONFIG_DATABASE | SAGA_CONFIG_HTTP,
    .http_port = 8081,
};

static const struct saga_service service = {
    .program = &program,
    .info_name = "inventory",
    .migrations = migrations,
    .nmigrations = (int)(sizeof(migrations) / sizeof(migrations[0])),
    .handlers =
        {
            [SAGA_EV_ORDER_PLACED] = on_order_placed,
            [SAGA_EV_ORDER_CANCELLED] = on_order_cancelled,
            [SAGA_EV_ORDER_CONFIRMED] = on_order_confirmed,
            [SAGA_EV_PAYMENT_FAILED] = on_payment_failed,
        },
    .releases_deferred = 1u << SAGA_EV_ORDER_PLACED | 1u << SAGA_EV_ORDER_CANCELLED,
    .metrics = metrics,
};

int main(int argc, char **argv)
{
    return saga_service_main(&service, argc, argv);
}
