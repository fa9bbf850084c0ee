/*
 * order-service's rules, free of Kafka, PostgreSQL and HTTP (unit-tested in
 * tests/unit/test_order_rules.c): validating a placed order, the compensation
 * state of a cancelled order, and the causal order of a saga timeline.
 */
#ifndef ORDER_RULES_H
#define ORDER_RULES_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "saga/events.h"

/* Limits of POST /orders (docs/API.md). */
#define ORDER_MAX_ITEMS        50
#define ORDER_MAX_QUANTITY     1000
#define ORDER_MAX_ID_LEN       64
#define ORDER_MAX_TEXT_LEN     200
#define ORDER_MAX_KEY_LEN      255
#define ORDER_MAX_FIELD_ERRORS 16

struct order_field_error {
    char field[64];    /* "items[2].quantity" */
    char message[160]; /* "must be an integer between 1 and 1000" */
};

struct order_errors {
    struct order_field_error e[ORDER_MAX_FIELD_ERRORS];
    int n;
};

struct order_item_req {
    const char *sku;
    int32_t quantity;
};

/* A validated request; the strings belong to root. */
struct order_request {
    json_t *root;
    const char *customer_id;
    const char *currency;
    const char *payment_token;
    struct order_item_req items[ORDER_MAX_ITEMS];
    size_t nitems;
    struct saga_address address; /* line2 may be NULL */
};

typedef enum {
    ORDER_PARSE_OK = 0,
    ORDER_PARSE_MALFORMED, /* not JSON, or not an object: 400 (errstr says where) */
    ORDER_PARSE_INVALID,   /* JSON, but fields at fault: 422 (errs lists them) */
} order_parse_t;

order_parse_t order_parse_request(const char *body, size_t len, struct order_request *out,
                                  struct order_errors *errs, char *errstr, size_t errstr_size);
void order_request_release(struct order_request *r);

/* The request in a canonical form (sorted keys, compact) for Idempotency-Key checks. */
char *order_request_canonical(const struct order_request *r);

/* 1 if a Content-Type header value is JSON ("application/json; charset=utf-8"). */
int order_content_type_is_json(const char *ct);

/* 1 if s is an acceptable Idempotency-Key (1..255 visible ASCII characters). */
int order_idempotency_key_valid(const char *s);

/* "PENDING", "CONFIRMED", "CANCELLED": 1 if s is one of them. */
int order_status_valid(const char *s);

/*
 * The compensation state of an order (docs/API.md, docs/SERVICES.md): "none" unless it is
 * CANCELLED and some step had been done; then "in_progress" while a done step
 * (InventoryReserved, PaymentAuthorized, ShipmentScheduled) lacks its
 * compensation event (InventoryReleased, PaymentRefunded, ShipmentCancelled),
 * else "done". seen[t] counts the events of type t in the order's timeline.
 */
const char *order_compensation_state(const char *status, const int seen[SAGA_EV_COUNT]);

/* Counts the event type names of a comma-separated list ("OrderPlaced,InventoryReserved")
 * into seen[type]; unknown names are ignored. */
void order_count_event_types(const char *csv, int seen[SAGA_EV_COUNT]);

/* 1 for the events that undo a step (InventoryReleased, PaymentRefunded, ShipmentCancelled). */
int order_event_is_compensation(saga_event_type_t t);

struct order_tl_entry {
    const char *event_id;
    const char *causation_id; /* or NULL */
    int64_t occurred_at;      /* ms */
    int64_t seq;              /* when this service recorded it */
    int index;                /* caller's: where the row came from */
};

/*
 * Sorts a saga timeline into causal order: every event after the event that
 * caused it, otherwise by occurrence time and then by when it was recorded.
 */
void order_timeline_causal_sort(struct order_tl_entry *e, size_t n);

/* "25.98 EUR" */
void order_format_money(int64_t minor, const char *currency, char *out, size_t size);

/* The longest tracking number an OrderConfirmed carries (bytes). */
#define ORDER_TRACKING_MAX 64

/*
 * The tracking number of a ShipmentScheduled as the OrderConfirmed passes it on: t
 * itself, or NULL (the field left out) when it is empty, longer than ORDER_TRACKING_MAX
 * or holds anything but ASCII letters, digits, spaces and dashes (what carriers' numbers
 * are made of), or begins or ends with a space or dash. Another service's text reaches customers'
 * notices and pages this way.
 */
const char *order_tracking_number_passed_on(const char *t);

#endif
