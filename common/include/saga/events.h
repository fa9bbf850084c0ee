/*
 * The events of the order saga as plain C structs (the schemas/ directory is the contract;
 * docs/EVENTS.md the catalogue). Services fill and read these; saga/serde.h turns
 * them into Avro bytes and back. Enum values are the symbols' positions in the
 * schemas, and every enum's first symbol UNKNOWN is its default.
 *
 * Strings are borrowed on encode (the caller keeps them alive) and owned by the
 * event's arena after decode (valid until saga_event_release()).
 */
#ifndef SAGA_EVENTS_H
#define SAGA_EVENTS_H

#include <stddef.h>
#include <stdint.h>

typedef enum saga_event_type {
    SAGA_EV_ORDER_PLACED = 0,
    SAGA_EV_ORDER_CONFIRMED,
    SAGA_EV_ORDER_CANCELLED,
    SAGA_EV_INVENTORY_RESERVED,
    SAGA_EV_INVENTORY_REJECTED,
    SAGA_EV_INVENTORY_RELEASED,
    SAGA_EV_PAYMENT_AUTHORIZED,
    SAGA_EV_PAYMENT_FAILED,
    SAGA_EV_PAYMENT_REFUNDED,
    SAGA_EV_SHIPMENT_SCHEDULED,
    SAGA_EV_SHIPMENT_FAILED,
    SAGA_EV_SHIPMENT_CANCELLED,
    SAGA_EV_NOTIFICATION_SENT,
    SAGA_EV_COUNT
} saga_event_type_t;

#define SAGA_EVENTS_NAMESPACE "io.ordersaga.events"

/* "OrderPlaced"; NULL for a value out of range. */
const char *saga_event_type_name(saga_event_type_t type);
/* The topic the event is published to ("orders"). */
const char *saga_event_type_topic(saga_event_type_t type);
/* Accepts "OrderPlaced" or "io.ordersaga.events.OrderPlaced"; 0, or -1 if unknown. */
int saga_event_type_parse(const char *name, saga_event_type_t *out);

typedef enum {
    SAGA_CANCEL_UNKNOWN = 0,
    SAGA_CANCEL_OUT_OF_STOCK,
    SAGA_CANCEL_PAYMENT_FAILED,
    SAGA_CANCEL_SHIPMENT_FAILED,
    SAGA_CANCEL_TIMEOUT,
    SAGA_CANCEL_CUSTOMER_REQUEST,
} saga_cancel_reason_t;

typedef enum {
    SAGA_REJECT_UNKNOWN = 0,
    SAGA_REJECT_OUT_OF_STOCK,
    SAGA_REJECT_UNKNOWN_SKU,
} saga_reject_reason_t;

typedef enum {
    SAGA_RELEASE_UNKNOWN = 0,
    SAGA_RELEASE_PAYMENT_FAILED,
    SAGA_RELEASE_ORDER_CANCELLED,
} saga_release_reason_t;

typedef enum {
    SAGA_PAYFAIL_UNKNOWN = 0,
    SAGA_PAYFAIL_CARD_DECLINED,
    SAGA_PAYFAIL_INSUFFICIENT_FUNDS,
    SAGA_PAYFAIL_CREDIT_LIMIT_EXCEEDED,
    SAGA_PAYFAIL_UNKNOWN_CUSTOMER,
} saga_payment_failure_t;

typedef enum {
    SAGA_SHIPFAIL_UNKNOWN = 0,
    SAGA_SHIPFAIL_UNSUPPORTED_DESTINATION,
    SAGA_SHIPFAIL_INVALID_ADDRESS,
} saga_shipment_failure_t;

typedef enum {
    SAGA_OUTCOME_UNKNOWN = 0,
    SAGA_OUTCOME_CONFIRMED,
    SAGA_OUTCOME_CANCELLED,
} saga_outcome_t;

typedef enum {
    SAGA_CHANNEL_UNKNOWN = 0,
    SAGA_CHANNEL_LOG,
    SAGA_CHANNEL_FILE,
    SAGA_CHANNEL_EMAIL,
} saga_channel_t;

/* Symbol names, indexed by the enum values above. */
extern const char *const saga_cancel_reason_names[];
extern const char *const saga_reject_reason_names[];
extern const char *const saga_release_reason_names[];
extern const char *const saga_payment_failure_names[];
extern const char *const saga_shipment_failure_names[];
extern const char *const saga_outcome_names[];
extern const char *const saga_channel_names[];

struct saga_event_meta {
    const char *event_id;       /* UUID */
    const char *order_id;       /* UUID; the Kafka key */
    const char *correlation_id; /* shared by the saga's events */
    const char *causation_id;   /* event_id of the cause, or NULL */
    int64_t occurred_at;        /* milliseconds since the epoch, UTC */
    const char *producer;       /* "payment-service" */
    const char *traceparent;    /* W3C traceparent, or NULL */
};

struct saga_order_line {
    const char *sku;
    int32_t quantity;
    int64_t unit_price; /* minor units */
};

struct saga_stock_line {
    const char *sku;
    int32_t quantity;
};

struct saga_address {
    const char *recipient;
    const char *line1;
    const char *line2; /* or NULL */
    const char *city;
    const char *postal_code;
    const char *country; /* ISO 3166-1 alpha-2 */
};

struct saga_order_placed {
    const char *customer_id;
    struct saga_order_line *items;
    size_t item_count;
    const char *currency;
    int64_t total_amount;
    const char *payment_token;
    struct saga_address shipping_address;
};

struct saga_order_confirmed {
    int64_t total_amount;
    const char *currency;
    const char *tracking_number; /* or NULL (since 0.3.0; older writers lack it) */
};

struct saga_order_cancelled {
    saga_cancel_reason_t reason;
    const char *detail; /* or NULL */
};

struct saga_inventory_reserved {
    const char *reservation_id;
    struct saga_stock_line *items;
    size_t item_count;
};

struct saga_inventory_rejected {
    saga_reject_reason_t reason;
    const char *sku; /* or NULL */
};

struct saga_inventory_released {
    const char *reservation_id;
    struct saga_stock_line *items;
    size_t item_count;
    saga_release_reason_t reason;
};

struct saga_payment_authorized {
    const char *payment_id;
    const char *customer_id;
    int64_t amount;
    const char *currency;
};

struct saga_payment_failed {
    saga_payment_failure_t reason;
    const char *customer_id;
    int64_t amount;
    const char *currency;
};

struct saga_payment_refunded {
    const char *payment_id;
    int64_t amount;
    const char *currency;
};

struct saga_shipment_scheduled {
    const char *shipment_id;
    const char *tracking_number;
    const char *carrier;
};

struct saga_shipment_failed {
    saga_shipment_failure_t reason;
    const char *country;
};

struct saga_shipment_cancelled {
    const char *shipment_id;
    const char *tracking_number;
};

struct saga_notification_sent {
    const char *notification_id;
    saga_outcome_t outcome;
    saga_channel_t channel;
    const char *recipient;
    const char *message;
};

struct saga_arena;

struct saga_event {
    saga_event_type_t type;
    struct saga_event_meta meta;
    union {
        struct saga_order_placed order_placed;
        struct saga_order_confirmed order_confirmed;
        struct saga_order_cancelled order_cancelled;
        struct saga_inventory_reserved inventory_reserved;
        struct saga_inventory_rejected inventory_rejected;
        struct saga_inventory_released inventory_released;
        struct saga_payment_authorized payment_authorized;
        struct saga_payment_failed payment_failed;
        struct saga_payment_refunded payment_refunded;
        struct saga_shipment_scheduled shipment_scheduled;
        struct saga_shipment_failed shipment_failed;
        struct saga_shipment_cancelled shipment_cancelled;
        struct saga_notification_sent notification_sent;
    } u;
    struct saga_arena *arena; /* owns decoded strings and arrays; NULL for caller-built events */
};

/* Zeroes ev for a caller to fill. */
void saga_event_init(struct saga_event *ev, saga_event_type_t type);
/* Frees what a decode allocated (the arena) and zeroes ev. NULL-safe. */
void saga_event_release(struct saga_event *ev);

/* 1 if a and b are the same type with equal fields (strings by content), else 0. */
int saga_event_equal(const struct saga_event *a, const struct saga_event *b);

#endif
