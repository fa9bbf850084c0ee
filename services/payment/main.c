/*
 * payment-service: customer accounts and payments. Authorizes (captures) an
 * order's total on InventoryReserved, or fails it (PaymentFailed); refunds a
 * captured payment on OrderCancelled (once).
 *
 * A customer's balance is what it owes: captured minus refunded. An order gets at
 * most one payments row (order_id is unique), so it is never charged twice and
 * refunded at most once. Handlers lock the order's row first, then the customer's.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>

#include "rules.h"
#include "saga/ids.h"
#include "saga/log.h"
#include "saga/participant.h"
#include "saga/service.h"
#include "payment_migrations.h" /* generated from migrations/NNN_name.sql */

#define PRODUCER "payment-service"

/* The schema, in migrations/NNN_name.sql (embedded by the build; applied in this order, each
 * once per database, tracked by version and name: common/include/saga/migrate.h). */
static const struct saga_migration migrations[] = {
    {100, "customers, orders, payments", payment_sql_100_customers_orders_payments},
};

/* The columns of the order's row the handlers read (saga/participant.h), and their
 * numbers in the row: placed and cancelled come first. */
#define ORDER_COLUMNS "customer_id, amount, currency, payment_token"
enum { O_PLACED, O_CANCELLED, O_CUSTOMER, O_AMOUNT, O_CURRENCY, O_TOKEN };

static saga_handle_result_t on_order_placed(struct saga_tx *tx, const struct saga_event *ev,
                                            void *arg)
{
    const struct saga_order_placed *o = &ev->u.order_placed;
    char amount[24];
    (void)arg;

    snprintf(amount, sizeof(amount), "%" PRId64, o->total_amount);
    const char *p[5] = {ev->meta.order_id, o->customer_id, amount, o->currency, o->payment_token};
    /* Another OrderPlaced for the same order changes nothing: the first counts. */
    return saga_tx_query(tx, NULL,
                         "INSERT INTO orders (order_id, placed, customer_id, amount, currency,"
                         " payment_token) VALUES ($1, true, $2, $3, $4, $5)"
                         " ON CONFLICT (order_id) DO UPDATE SET placed = true,"
                         " customer_id = EXCLUDED.customer_id, amount = EXCLUDED.amount,"
                         " currency = EXCLUDED.currency, payment_token = EXCLUDED.payment_token,"
                         " updated_at = now() WHERE NOT orders.placed",
                         5, p);
}

static saga_handle_result_t on_inventory_reserved(struct saga_tx *tx, const struct saga_event *ev,
                                                  void *arg)
{
    const struct saga_log_ids ids = {ev->meta.order_id, ev->meta.event_id, ev->meta.correlation_id,
                                     NULL};
    struct saga_order_row row;
    PGresult *o = NULL, *r = NULL;
    const char *customer, *currency, *token;
    char payment_id[37], out_id[37];
    int64_t amount, credit_limit = 0, balance = 0;
    int found;
    struct saga_event out;
    saga_handle_result_t res;
    (void)arg;

    /* Deferred until OrderPlaced; nothing to charge for a cancelled order. */
    res = saga_order_trigger(tx, ev, ORDER_COLUMNS, &row);
    o = row.res; /* cleared at done */
    if (res || row.gate == SAGA_ORDER_CANCELLED)
        goto done;
    {
        const char *p[1] = {ev->meta.order_id};
        if ((res = saga_tx_query(tx, &r, "SELECT 1 FROM payments WHERE order_id = $1", 1, p)))
            goto done;
        found = PQntuples(r) > 0;
        PQclear(r);
        r = NULL;
        if (found)
            goto done; /* decided already (OK) */
    }
    customer = PQgetvalue(o, 0, O_CUSTOMER);
    currency = PQgetvalue(o, 0, O_CURRENCY);
    token = PQgetisnull(o, 0, O_TOKEN) ? NULL : PQgetvalue(o, 0, O_TOKEN);
    amount = strtoll(PQgetvalue(o, 0, O_AMOUNT), NULL, 10);
    if (amount < 0) {
        snprintf(tx->errstr, sizeof(tx->errstr), "OrderPlaced with a negative total %" PRId64,
                 amount);
        res = SAGA_HANDLE_INVALID;
        goto done;
    }
    {
        const char *p[1] = {customer};
        if ((res = saga_tx_query(tx, &r,
                                 "SELECT credit_limit, balance FROM customers"
                                 " WHERE customer_id = $1 FOR UPDATE",
                                 1, p)))
            goto done;
        if ((found = PQntuples(r) > 0)) {
            credit_limit = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
            balance = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
        }
        PQclear(r);
        r = NULL;
    }

    pay_decision_t d = pay_decide(token, found, credit_limit, balance, amount);
    saga_uuid4(payment_id);
    if (d == PAY_AUTHORIZE) {
        const char *pc[2] = {customer, PQgetvalue(o, 0, O_AMOUNT)};
        const char *pp[5] = {payment_id, ev->meta.order_id, customer, PQgetvalue(o, 0, O_AMOUNT),
                             currency};
        if ((res = saga_tx_query(tx, NULL,
                                 "UPDATE customers SET balance = balance + $2::bigint"
                                 " WHERE customer_id = $1",
                                 2, pc)) ||
            (res = saga_tx_query(tx, NULL,
                                 "INSERT INTO payments (payment_id, order_id, customer_id, amount,"
                                 " currency, status) VALUES ($1, $2, $3, $4, $5, 'captured')",
                                 5, pp)))
            goto done;
        saga_event_follow(&out, SAGA_EV_PAYMENT_AUTHORIZED, ev, PRODUCER, out_id);
        out.u.payment_authorized.payment_id = payment_id;
        out.u.payment_authorized.customer_id = customer;
        out.u.payment_authorized.amount = amount;
        out.u.payment_authorized.currency = currency;
        saga_log(SAGA_LOG_INFO, &ids, "payment %s authorized: %" PRId64 " %s from %s", payment_id,
                 amount, currency, customer);
    } else {
        saga_payment_failure_t reason = pay_failure(d);
        const char *pp[6] = {payment_id, ev->meta.order_id,
                             customer,   PQgetvalue(o, 0, O_AMOUNT),
                             currency,   saga_payment_failure_names[reason]};
        if ((res = saga_tx_query(tx, NULL,
                                 "INSERT INTO payments (payment_id, order_id, customer_id, amount,"
                                 " currency, status, failure_reason)"
                                 " VALUES ($1, $2, $3, $4, $5, 'failed', $6)",
                                 6, pp)))
            goto done;
        saga_event_follow(&out, SAGA_EV_PAYMENT_FAILED, ev, PRODUCER, out_id);
        out.u.payment_failed.reason = reason;
        out.u.payment_failed.customer_id = customer;
        out.u.payment_failed.amount = amount;
        out.u.payment_failed.currency = currency;
        saga_log(SAGA_LOG_INFO, &ids, "payment declined: %s (%" PRId64 " %s from %s)",
                 saga_payment_failure_names[reason], amount, currency, customer);
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
    if (res || (res = saga_tx_query(tx, &r,
                                    "SELECT payment_id, customer_id, amount, currency FROM payments"
                                    " WHERE order_id = $1 AND status = 'captured' FOR UPDATE",
                                    1, p)))
        goto done;
    if (PQntuples(r) == 0)
        goto done; /* nothing captured: never charged, failed, or refunded already (OK) */
    {
        const char *pc[2] = {PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 2)};
        const char *pp[1] = {PQgetvalue(r, 0, 0)};
        if ((res = saga_tx_query(tx, NULL,
                                 "UPDATE customers SET balance = balance - $2::bigint"
                                 " WHERE customer_id = $1",
                                 2, pc)) ||
            (res = saga_tx_query(tx, NULL,
                                 "UPDATE payments SET status = 'refunded', refunded_at = now()"
                                 " WHERE payment_id = $1",
                                 1, pp)))
            goto done;
    }
    saga_event_follow(&out, SAGA_EV_PAYMENT_REFUNDED, ev, PRODUCER, out_id);
    out.u.payment_refunded.payment_id = PQgetvalue(r, 0, 0);
    out.u.payment_refunded.amount = strtoll(PQgetvalue(r, 0, 2), NULL, 10);
    out.u.payment_refunded.currency = PQgetvalue(r, 0, 3);
    saga_log(
        SAGA_LOG_INFO,
        &(struct saga_log_ids){ev->meta.order_id, ev->meta.event_id, ev->meta.correlation_id, NULL},
        "payment %s refunded: %" PRId64 " %s to %s", out.u.payment_refunded.payment_id,
        out.u.payment_refunded.amount, out.u.payment_refunded.currency, PQgetvalue(r, 0, 1));
    res = saga_tx_emit(tx, &out);
done:
    PQclear(r);
    PQclear(o);
    return res;
}

static const struct saga_program program = {
    .name = PRODUCER,
    .summary = "Customer accounts and payments: authorizes on InventoryReserved, refunds on "
               "OrderCancelled.",
    .config_flags = SAGA_CONFIG_DATABASE | SAGA_CONFIG_HTTP,
    .http_port = 8082,
};

static const struct saga_service service = {
    .program = &program,
    .info_name = "payment",
    .migrations = migrations,
    .nmigrations = (int)(sizeof(migrations) / sizeof(migrations[0])),
    .handlers =
        {
            [SAGA_EV_ORDER_PLACED] = on_order_placed,
            [SAGA_EV_ORDER_CANCELLED] = on_order_cancelled,
            [SAGA_EV_INVENTORY_RESERVED] = on_inventory_reserved,
        },
    .releases_deferred = 1u << SAGA_EV_ORDER_PLACED | 1u << SAGA_EV_ORDER_CANCELLED,
};

int main(int argc, char **argv)
{
    return saga_service_main(&service, argc, argv);
}
