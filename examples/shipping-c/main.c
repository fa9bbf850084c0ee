/*
 * example-shipping-c: a drop-in replacement for shipping-service, written against
 * the project's common/ library. Copy this file to start your own service.
 *
 * The contract it keeps (docs/REPLACING-A-SERVICE.md):
 *   OrderPlaced       -> remember the shipping address (no event)
 *   PaymentAuthorized -> ShipmentScheduled, or ShipmentFailed when the country is
 *                        on the deny list (SHIP_DENY_COUNTRIES, default "AQ,BV") or
 *                        the address is incomplete; deferred if OrderPlaced has not
 *                        arrived; nothing if the order is cancelled (tombstone)
 *   OrderCancelled    -> tombstone the order; ShipmentCancelled if one was scheduled
 *
 * What the library does for us: it reads the configuration (DATABASE_URL,
 * KAFKA_*, HTTP_LISTEN, ...), creates the outbox/inbox/deferred tables, joins the
 * consumer group "shipping-service", runs each handler in one transaction with the
 * inbox row (duplicates are skipped) and the emitted events (outbox rows the relay
 * publishes), keeps deferred events, sends poison messages to shipping.dlq, and
 * serves /healthz, /readyz and /metrics. We write the SQL and the rule.
 *
 * It repeats the built-in shipping-service's shape on purpose (an example reads top to
 * bottom on its own) and differs in its rule, carrier and tables. What keeps the two
 * equivalent where it matters is the conformance kit: contract_example_c runs on this
 * program the same duties contract_shipping runs on the built-in (tests/contract).
 */
#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "saga/ids.h"
#include "saga/log.h"
#include "saga/service.h"

#define PRODUCER "shipping-service" /* meta.producer and the program name */
#define CARRIER  "ExampleParcel"

/* Our own tables (other names than the built-in service's, so both can share a
 * database). Version 500: the common migrations take 1..99, ours must not clash. */
static const struct saga_migration migrations[] = {
    {500, "example parcel_orders, parcels",
     "CREATE TABLE parcel_orders ("
     "  order_id text PRIMARY KEY,"
     "  placed boolean NOT NULL DEFAULT false,"    /* OrderPlaced handled */
     "  cancelled boolean NOT NULL DEFAULT false," /* tombstone from OrderCancelled */
     "  country text, line1 text, city text, postal_code text);"
     "CREATE TABLE parcels ("
     "  parcel_id text PRIMARY KEY,"
     "  order_id text NOT NULL UNIQUE," /* at most one decision per order */
     "  status text NOT NULL CHECK (status IN ('scheduled', 'failed', 'cancelled')),"
     "  tracking text, country text NOT NULL, created_at timestamptz NOT NULL DEFAULT now());"},
};

/* 1 if country (two letters, any case) is in the comma-separated deny list. */
static int denied(const char *country)
{
    const char *list = saga_env("SHIP_DENY_COUNTRIES", "AQ,BV");
    for (const char *p = list; *p;) {
        size_t n = strcspn(p, ",");
        if (n == 2 && toupper((unsigned char)p[0]) == toupper((unsigned char)country[0]) &&
            toupper((unsigned char)p[1]) == toupper((unsigned char)country[1]) &&
            country[2] == '\0')
            return 1;
        p += n + (p[n] == ',');
    }
    return 0;
}

/* 1 if s is empty or only white space: a street, city or postal code that is not there. */
static int blank(const char *s)
{
    for (; *s; s++)
        if (!isspace((unsigned char)*s))
            return 0;
    return 1;
}

/* Our tracking number: "EXP-" and the first 8 hex digits of the parcel id. */
static void tracking_number(const char *parcel_id, char out[13])
{
    snprintf(out, 13, "EXP-%.8s", parcel_id);
    for (char *c = out + 4; *c; c++)
        *c = (char)toupper((unsigned char)*c);
}

/* Runs the statement; on failure returns why (the runtime retries or dead-letters). */
#define SQL(res, ...)                                                                              \
    do {                                                                                           \
        saga_handle_result_t r_ = saga_tx_query(tx, res, __VA_ARGS__);                             \
        if (r_ != SAGA_HANDLE_OK)                                                                  \
            return r_;                                                                             \
    } while (0)

static saga_handle_result_t on_order_placed(struct saga_tx *tx, const struct saga_event *ev,
                                            void *arg)
{
    const struct saga_address *a = &ev->u.order_placed.shipping_address;
    const char *p[5] = {ev->meta.order_id, a->country, a->line1, a->city, a->postal_code};
    (void)arg;
    /* The first OrderPlaced counts; the row may exist already as a tombstone. */
    SQL(NULL,
        "INSERT INTO parcel_orders (order_id, placed, country, line1, city, postal_code)"
        " VALUES ($1, true, $2, $3, $4, $5) ON CONFLICT (order_id) DO UPDATE SET placed = true,"
        " country = $2, line1 = $3, city = $4, postal_code = $5 WHERE NOT parcel_orders.placed",
        5, p);
    return SAGA_HANDLE_OK; /* the runtime now re-runs what was deferred for this order */
}

static saga_handle_result_t on_payment_authorized(struct saga_tx *tx, const struct saga_event *ev,
                                                  void *arg)
{
    const char *id[1] = {ev->meta.order_id};
    char parcel_id[37], tracking[13], out_id[37];
    struct saga_event out;
    PGresult *o = NULL;
    (void)arg;

    /* Lock the order's row first: handlers for one order run one after the other. */
    SQL(&o,
        "INSERT INTO parcel_orders (order_id) VALUES ($1) ON CONFLICT (order_id)"
        " DO UPDATE SET order_id = EXCLUDED.order_id"
        " RETURNING placed, cancelled, country, line1, city, postal_code",
        1, id);
    int placed = PQgetvalue(o, 0, 0)[0] == 't', cancelled = PQgetvalue(o, 0, 1)[0] == 't';
    char country[8];
    snprintf(country, sizeof(country), "%s", PQgetvalue(o, 0, 2));
    int incomplete = !isalpha((unsigned char)country[0]) || !isalpha((unsigned char)country[1]) ||
                     country[2] != '\0' || blank(PQgetvalue(o, 0, 3)) ||
                     blank(PQgetvalue(o, 0, 4)) || blank(PQgetvalue(o, 0, 5));
    PQclear(o);
    if (cancelled)
        return SAGA_HANDLE_OK; /* tombstone: the order is cancelled, nothing to ship */
    if (!placed)
        return SAGA_HANDLE_DEFER; /* kept in `deferred`, re-run after OrderPlaced */
    /* A new statement (after the lock), so it sees a decision committed meanwhile. */
    SQL(&o, "SELECT 1 FROM parcels WHERE order_id = $1", 1, id);
    int decided = PQntuples(o) > 0;
    PQclear(o);
    if (decided)
        return SAGA_HANDLE_OK; /* a second PaymentAuthorized changes nothing */

    saga_uuid4(parcel_id);
    if (!incomplete && !denied(country)) {
        tracking_number(parcel_id, tracking);
        const char *p[4] = {parcel_id, ev->meta.order_id, tracking, country};
        SQL(NULL,
            "INSERT INTO parcels (parcel_id, order_id, status, tracking, country)"
            " VALUES ($1, $2, 'scheduled', $3, $4)",
            4, p);
        saga_event_follow(&out, SAGA_EV_SHIPMENT_SCHEDULED, ev, PRODUCER, out_id);
        out.u.shipment_scheduled.shipment_id = parcel_id;
        out.u.shipment_scheduled.tracking_number = tracking;
        out.u.shipment_scheduled.carrier = CARRIER;
        saga_log(SAGA_LOG_INFO, NULL, "parcel %s to %s: %s", parcel_id, country, tracking);
    } else {
        const char *p[3] = {parcel_id, ev->meta.order_id, country};
        SQL(NULL,
            "INSERT INTO parcels (parcel_id, order_id, status, country)"
            " VALUES ($1, $2, 'failed', $3)",
            3, p);
        saga_event_follow(&out, SAGA_EV_SHIPMENT_FAILED, ev, PRODUCER, out_id);
        out.u.shipment_failed.reason =
            incomplete ? SAGA_SHIPFAIL_INVALID_ADDRESS : SAGA_SHIPFAIL_UNSUPPORTED_DESTINATION;
        out.u.shipment_failed.country = country;
        saga_log(SAGA_LOG_INFO, NULL, "no parcel to \"%s\": %s", country,
                 saga_shipment_failure_names[out.u.shipment_failed.reason]);
    }
    return saga_tx_emit(tx, &out);
}

static saga_handle_result_t on_order_cancelled(struct saga_tx *tx, const struct saga_event *ev,
                                               void *arg)
{
    const char *id[1] = {ev->meta.order_id};
    char out_id[37];
    struct saga_event out;
    PGresult *r = NULL;
    saga_handle_result_t res;
    (void)arg;

    /* Tombstone (also when OrderPlaced has not arrived yet), then compensate once. */
    SQL(NULL,
        "INSERT INTO parcel_orders (order_id, cancelled) VALUES ($1, true)"
        " ON CONFLICT (order_id) DO UPDATE SET cancelled = true",
        1, id);
    SQL(&r,
        "UPDATE parcels SET status = 'cancelled' WHERE order_id = $1 AND status = 'scheduled'"
        " RETURNING parcel_id, tracking",
        1, id);
    if (PQntuples(r) == 0) {
        PQclear(r);
        return SAGA_HANDLE_OK; /* nothing scheduled, or cancelled already */
    }
    saga_event_follow(&out, SAGA_EV_SHIPMENT_CANCELLED, ev, PRODUCER, out_id);
    out.u.shipment_cancelled.shipment_id = PQgetvalue(r, 0, 0);
    out.u.shipment_cancelled.tracking_number = PQgetvalue(r, 0, 1);
    saga_log(SAGA_LOG_INFO, NULL, "parcel %s cancelled", PQgetvalue(r, 0, 0));
    res = saga_tx_emit(tx, &out); /* encodes now: r may be freed after */
    PQclear(r);
    return res;
}

static const struct saga_program program = {
    .name = PRODUCER,
    .summary = "Example shipping service: every country but SHIP_DENY_COUNTRIES.",
    .config_flags = SAGA_CONFIG_DATABASE | SAGA_CONFIG_HTTP,
    .http_port = 8083,
};

static const char *const topics[] = {"orders", "payments"};

static const struct saga_service service = {
    .program = &program,
    .info_name = "shipping", /* group shipping-service, DLQ shipping.dlq */
    .migrations = migrations,
    .nmigrations = (int)(sizeof(migrations) / sizeof(migrations[0])),
    .topics = topics,
    .ntopics = 2,
    .handlers =
        {
            [SAGA_EV_ORDER_PLACED] = on_order_placed,
            [SAGA_EV_ORDER_CANCELLED] = on_order_cancelled,
            [SAGA_EV_PAYMENT_AUTHORIZED] = on_payment_authorized,
        },
    /* After these, the events deferred for the same order run again. */
    .releases_deferred = 1u << SAGA_EV_ORDER_PLACED | 1u << SAGA_EV_ORDER_CANCELLED,
};

int main(int argc, char **argv)
{
    return saga_service_main(&service, argc, argv);
}
