/*
 * shipping-service's business rules, free of Kafka and PostgreSQL (unit-tested
 * in tests/unit/test_shipping_rules.c).
 */
#ifndef SHIPPING_RULES_H
#define SHIPPING_RULES_H

#include <stddef.h>

#include "saga/events.h"

#define SHIP_CARRIER "SagaPost"

/* "SP" and 10 digits, with its NUL. */
#define SHIP_TRACKING_SIZE 13

/*
 * What to do with an order's shipment. A failure's value is its
 * saga_shipment_failure_t (ShipmentFailed's reason); SHIP_SCHEDULE is 0.
 */
typedef enum {
    SHIP_SCHEDULE = SAGA_SHIPFAIL_UNKNOWN,
    SHIP_UNSUPPORTED_DESTINATION = SAGA_SHIPFAIL_UNSUPPORTED_DESTINATION,
    SHIP_INVALID_ADDRESS = SAGA_SHIPFAIL_INVALID_ADDRESS,
} ship_decision_t;

/*
 * Country "AQ" (any case) is not served: UNSUPPORTED_DESTINATION. A country that
 * is not two ASCII letters, or a missing or blank line1, city or postal code:
 * INVALID_ADDRESS. Anything else is scheduled. NULL counts as empty.
 */
ship_decision_t ship_decide(const char *country, const char *line1, const char *city,
                            const char *postal_code);

/* The failure to report for a decision other than SHIP_SCHEDULE. */
static inline saga_shipment_failure_t ship_failure(ship_decision_t d)
{
    return (saga_shipment_failure_t)d;
}

/*
 * The shipment's tracking number: "SP" and 10 decimal digits, the 64-bit FNV-1a
 * hash of shipment_id modulo 10^10, zero-padded; the same id always gives the same
 * number. Writes it with its NUL into out; returns 0, or -1 (out untouched) if
 * size < SHIP_TRACKING_SIZE or shipment_id is NULL.
 */
int ship_tracking_number(const char *shipment_id, char *out, size_t size);

#endif
