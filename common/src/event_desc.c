#include "event_desc.h"

#include <stdio.h>
#include <string.h>

#define NF(a) ((int)(sizeof(a) / sizeof((a)[0])))

const char *const saga_cancel_reason_names[] = {
    "UNKNOWN", "OUT_OF_STOCK", "PAYMENT_FAILED", "SHIPMENT_FAILED", "TIMEOUT", "CUSTOMER_REQUEST"};
const char *const saga_reject_reason_names[] = {"UNKNOWN", "OUT_OF_STOCK", "UNKNOWN_SKU"};
const char *const saga_release_reason_names[] = {"UNKNOWN", "PAYMENT_FAILED", "ORDER_CANCELLED"};
const char *const saga_payment_failure_names[] = {"UNKNOWN", "CARD_DECLINED", "INSUFFICIENT_FUNDS",
                                                  "CREDIT_LIMIT_EXCEEDED", "UNKNOWN_CUSTOMER"};
const char *const saga_shipment_failure_names[] = {"UNKNOWN", "UNSUPPORTED_DESTINATION",
                                                   "INVALID_ADDRESS"};
const char *const saga_outcome_names[] = {"UNKNOWN", "CONFIRMED", "CANCELLED"};
const char *const saga_channel_names[] = {"UNKNOWN", "LOG", "FILE", "EMAIL"};

static struct saga_enum_desc en_cancel = {"CancelReason", 6, saga_cancel_reason_names, -1};
static struct saga_enum_desc en_reject = {"InventoryRejectReason", 3, saga_reject_reason_names, -1};
static struct saga_enum_desc en_release = {"ReleaseReason", 3, saga_release_reason_names, -1};
static struct saga_enum_desc en_payfail = {"PaymentFailureReason", 5, saga_payment_failure_names,
                                           -1};
static struct saga_enum_desc en_shipfail = {"ShipmentFailureReason", 3, saga_shipment_failure_names,
                                            -1};
static struct saga_enum_desc en_outcome = {"NotificationOutcome", 3, saga_outcome_names, -1};
static struct saga_enum_desc en_channel = {"NotificationChannel", 4, saga_channel_names, -1};

/* Field table entries; designated initializers leave the rest zero. */
#define F_STR(n, o)                                                                                \
    {                                                                                              \
        .name = n, .kind = FK_STRING, .off = o                                                     \
    }
#define F_OPT(n, o)                                                                                \
    {                                                                                              \
        .name = n, .kind = FK_OPT_STRING, .off = o                                                 \
    }
#define F_INT(n, o)                                                                                \
    {                                                                                              \
        .name = n, .kind = FK_INT, .off = o                                                        \
    }
#define F_LONG(n, o)                                                                               \
    {                                                                                              \
        .name = n, .kind = FK_LONG, .off = o                                                       \
    }
#define F_ENUM(n, o, e)                                                                            \
    {                                                                                              \
        .name = n, .kind = FK_ENUM, .off = o, .en = e                                              \
    }
#define F_REC(n, o, r)                                                                             \
    {                                                                                              \
        .name = n, .kind = FK_RECORD, .off = o, .rec = r                                           \
    }
#define F_ARR(n, o, r, c)                                                                          \
    {                                                                                              \
        .name = n, .kind = FK_ARRAY, .off = o, .rec = r, .count_off = c                            \
    }

/* --- nested records ------------------------------------------------------ */

#define M(f) offsetof(struct saga_event_meta, f)
static struct saga_field_desc meta_fields[] = {
    F_STR("event_id", M(event_id)),
    F_STR("order_id", M(order_id)),
    F_STR("correlation_id", M(correlation_id)),
    F_OPT("causation_id", M(causation_id)),
    F_LONG("occurred_at", M(occurred_at)),
    F_STR("producer", M(producer)),
    F_OPT("traceparent", M(traceparent)),
};
#undef M
static struct saga_record_desc meta_desc = {"EventMeta", sizeof(struct saga_event_meta),
                                            NF(meta_fields), meta_fields};

#define L(f) offsetof(struct saga_order_line, f)
static struct saga_field_desc order_line_fields[] = {
    F_STR("sku", L(sku)),
    F_INT("quantity", L(quantity)),
    F_LONG("unit_price", L(unit_price)),
};
#undef L
static struct saga_record_desc order_line_desc = {"OrderLine", sizeof(struct saga_order_line),
                                                  NF(order_line_fields), order_line_fields};

#define S(f) offsetof(struct saga_stock_line, f)
static struct saga_field_desc stock_line_fields[] = {
    F_STR("sku", S(sku)),
    F_INT("quantity", S(quantity)),
};
#undef S
static struct saga_record_desc stock_line_desc = {"StockLine", sizeof(struct saga_stock_line),
                                                  NF(stock_line_fields), stock_line_fields};

#define A(f) offsetof(struct saga_address, f)
static struct saga_field_desc address_fields[] = {
    F_STR("recipient", A(recipient)),
    F_STR("line1", A(line1)),
    F_OPT("line2", A(line2)),
    F_STR("city", A(city)),
    F_STR("postal_code", A(postal_code)),
    F_STR("country", A(country)),
};
#undef A
static struct saga_record_desc address_desc = {"Address", sizeof(struct saga_address),
                                               NF(address_fields), address_fields};

/* --- events -------------------------------------------------------------- */

#define META       F_REC("meta", offsetof(struct saga_event, meta), &meta_desc)
#define U(type, f) (offsetof(struct saga_event, u) + offsetof(struct type, f))

static struct saga_field_desc order_placed_fields[] = {
    META,
    F_STR("customer_id", U(saga_order_placed, customer_id)),
    F_ARR("items", U(saga_order_placed, items), &order_line_desc, U(saga_order_placed, item_count)),
    F_STR("currency", U(saga_order_placed, currency)),
    F_LONG("total_amount", U(saga_order_placed, total_amount)),
    F_STR("payment_token", U(saga_order_placed, payment_token)),
    F_REC("shipping_address", U(saga_order_placed, shipping_address), &address_desc),
};
static struct saga_field_desc order_confirmed_fields[] = {
    META,
    F_LONG("total_amount", U(saga_order_confirmed, total_amount)),
    F_STR("currency", U(saga_order_confirmed, currency)),
    F_OPT("tracking_number", U(saga_order_confirmed, tracking_number)),
};
static struct saga_field_desc order_cancelled_fields[] = {
    META,
    F_ENUM("reason", U(saga_order_cancelled, reason), &en_cancel),
    F_OPT("detail", U(saga_order_cancelled, detail)),
};
static struct saga_field_desc inventory_reserved_fields[] = {
    META,
    F_STR("reservation_id", U(saga_inventory_reserved, reservation_id)),
    F_ARR("items", U(saga_inventory_reserved, items), &stock_line_desc,
          U(saga_inventory_reserved, item_count)),
};
static struct saga_field_desc inventory_rejected_fields[] = {
    META,
    F_ENUM("reason", U(saga_inventory_rejected, reason), &en_reject),
    F_OPT("sku", U(saga_inventory_rejected, sku)),
};
static struct saga_field_desc inventory_released_fields[] = {
    META,
    F_STR("reservation_id", U(saga_inventory_released, reservation_id)),
    F_ARR("items", U(saga_inventory_released, items), &stock_line_desc,
          U(saga_inventory_released, item_count)),
    F_ENUM("reason", U(saga_inventory_released, reason), &en_release),
};
static struct saga_field_desc payment_authorized_fields[] = {
    META,
    F_STR("payment_id", U(saga_payment_authorized, payment_id)),
    F_STR("customer_id", U(saga_payment_authorized, customer_id)),
    F_LONG("amount", U(saga_payment_authorized, amount)),
    F_STR("currency", U(saga_payment_authorized, currency)),
};
static struct saga_field_desc payment_failed_fields[] = {
    META,
    F_ENUM("reason", U(saga_payment_failed, reason), &en_payfail),
    F_STR("customer_id", U(saga_payment_failed, customer_id)),
    F_LONG("amount", U(saga_payment_failed, amount)),
    F_STR("currency", U(saga_payment_failed, currency)),
};
static struct saga_field_desc payment_refunded_fields[] = {
    META,
    F_STR("payment_id", U(saga_payment_refunded, payment_id)),
    F_LONG("amount", U(saga_payment_refunded, amount)),
    F_STR("currency", U(saga_payment_refunded, currency)),
};
static struct saga_field_desc shipment_scheduled_fields[] = {
    META,
    F_STR("shipment_id", U(saga_shipment_scheduled, shipment_id)),
    F_STR("tracking_number", U(saga_shipment_scheduled, tracking_number)),
    F_STR("carrier", U(saga_shipment_scheduled, carrier)),
};
static struct saga_field_desc shipment_failed_fields[] = {
    META,
    F_ENUM("reason", U(saga_shipment_failed, reason), &en_shipfail),
    F_STR("country", U(saga_shipment_failed, country)),
};
static struct saga_field_desc shipment_cancelled_fields[] = {
    META,
    F_STR("shipment_id", U(saga_shipment_cancelled, shipment_id)),
    F_STR("tracking_number", U(saga_shipment_cancelled, tracking_number)),
};
static struct saga_field_desc notification_sent_fields[] = {
    META,
    F_STR("notification_id", U(saga_notification_sent, notification_id)),
    F_ENUM("outcome", U(saga_notification_sent, outcome), &en_outcome),
    F_ENUM("channel", U(saga_notification_sent, channel), &en_channel),
    F_STR("recipient", U(saga_notification_sent, recipient)),
    F_STR("message", U(saga_notification_sent, message)),
};

#define EVENT(var, name, fields)                                                                   \
    static struct saga_record_desc var = {name, sizeof(struct saga_event), NF(fields), fields}
EVENT(d_order_placed, "OrderPlaced", order_placed_fields);
EVENT(d_order_confirmed, "OrderConfirmed", order_confirmed_fields);
EVENT(d_order_cancelled, "OrderCancelled", order_cancelled_fields);
EVENT(d_inventory_reserved, "InventoryReserved", inventory_reserved_fields);
EVENT(d_inventory_rejected, "InventoryRejected", inventory_rejected_fields);
EVENT(d_inventory_released, "InventoryReleased", inventory_released_fields);
EVENT(d_payment_authorized, "PaymentAuthorized", payment_authorized_fields);
EVENT(d_payment_failed, "PaymentFailed", payment_failed_fields);
EVENT(d_payment_refunded, "PaymentRefunded", payment_refunded_fields);
EVENT(d_shipment_scheduled, "ShipmentScheduled", shipment_scheduled_fields);
EVENT(d_shipment_failed, "ShipmentFailed", shipment_failed_fields);
EVENT(d_shipment_cancelled, "ShipmentCancelled", shipment_cancelled_fields);
EVENT(d_notification_sent, "NotificationSent", notification_sent_fields);

struct saga_record_desc *const saga_event_descs[SAGA_EV_COUNT] = {
    &d_order_placed,       &d_order_confirmed,    &d_order_cancelled,    &d_inventory_reserved,
    &d_inventory_rejected, &d_inventory_released, &d_payment_authorized, &d_payment_failed,
    &d_payment_refunded,   &d_shipment_scheduled, &d_shipment_failed,    &d_shipment_cancelled,
    &d_notification_sent,
};

static const char *const event_topics[SAGA_EV_COUNT] = {
    "orders",   "orders",   "orders",   "inventory", "inventory", "inventory",     "payments",
    "payments", "payments", "shipping", "shipping",  "shipping",  "notifications",
};

const char *saga_event_type_name(saga_event_type_t type)
{
    return (unsigned)type < SAGA_EV_COUNT ? saga_event_descs[type]->name : NULL;
}

const char *saga_event_type_topic(saga_event_type_t type)
{
    return (unsigned)type < SAGA_EV_COUNT ? event_topics[type] : NULL;
}

int saga_event_type_parse(const char *name, saga_event_type_t *out)
{
    size_t nslen = strlen(SAGA_EVENTS_NAMESPACE);
    if (!name)
        return -1;
    if (strncmp(name, SAGA_EVENTS_NAMESPACE ".", nslen + 1) == 0)
        name += nslen + 1;
    for (int i = 0; i < SAGA_EV_COUNT; i++) {
        if (strcmp(name, saga_event_descs[i]->name) == 0) {
            *out = (saga_event_type_t)i;
            return 0;
        }
    }
    return -1;
}

/* --- binding to the schema ----------------------------------------------- */

/* The schema object of a field type, looking through {"type": X} wrappers. */
static json_t *field_type(json_t *t)
{
    while (json_is_object(t) && !json_is_string(json_object_get(t, "name")) &&
           json_is_object(json_object_get(t, "type")))
        t = json_object_get(t, "type");
    return t;
}

static const char *str(const char *s)
{
    return s ? s : "";
}

static const char *type_name(json_t *t)
{
    if (json_is_string(t))
        return json_string_value(t);
    if (json_is_object(t))
        return json_string_value(json_object_get(t, "type"));
    return NULL;
}

static int is_opt_string(json_t *t)
{
    return json_is_array(t) && json_array_size(t) == 2 &&
           strcmp(str(type_name(json_array_get(t, 0))), "null") == 0 &&
           strcmp(str(type_name(json_array_get(t, 1))), "string") == 0;
}

int saga_event_desc_bind(struct saga_record_desc *desc, json_t *schema, char *errstr,
                         size_t errstr_size)
{
    json_t *fields = json_object_get(schema, "fields");

    if (!json_is_array(fields) || (int)json_array_size(fields) != desc->nfields) {
        snprintf(errstr, errstr_size, "%s: the schema has %zu fields, the struct %d", desc->name,
                 json_array_size(fields), desc->nfields);
        return -1;
    }
    for (int i = 0; i < desc->nfields; i++) {
        struct saga_field_desc *fd = &desc->fields[i];
        json_t *f = json_array_get(fields, (size_t)i);
        json_t *t = field_type(json_object_get(f, "type"));
        const char *fname = json_string_value(json_object_get(f, "name"));
        const char *tn = type_name(t);
        int ok = 0;

        if (!fname || strcmp(fname, fd->name) != 0) {
            snprintf(errstr, errstr_size, "%s: field %d is '%s' in the schema, '%s' in the struct",
                     desc->name, i, fname ? fname : "?", fd->name);
            return -1;
        }
        switch (fd->kind) {
        case FK_STRING:
            ok = tn && strcmp(tn, "string") == 0;
            break;
        case FK_OPT_STRING:
            ok = is_opt_string(t);
            break;
        case FK_INT:
            ok = tn && strcmp(tn, "int") == 0;
            break;
        case FK_LONG:
            ok = tn && strcmp(tn, "long") == 0;
            break;
        case FK_ENUM: {
            json_t *syms = json_object_get(t, "symbols");
            const char *def = json_string_value(json_object_get(t, "default"));
            ok = tn && strcmp(tn, "enum") == 0 && json_is_array(syms) &&
                 (int)json_array_size(syms) == fd->en->nsymbols;
            for (int s = 0; ok && s < fd->en->nsymbols; s++)
                ok = strcmp(str(json_string_value(json_array_get(syms, (size_t)s))),
                            fd->en->symbols[s]) == 0;
            fd->en->default_index = -1;
            for (int s = 0; ok && def && s < fd->en->nsymbols; s++)
                if (strcmp(def, fd->en->symbols[s]) == 0)
                    fd->en->default_index = s;
            break;
        }
        case FK_RECORD:
            ok = tn && strcmp(tn, "record") == 0 &&
                 saga_event_desc_bind(fd->rec, t, errstr, errstr_size) == 0;
            if (!ok && tn && strcmp(tn, "record") == 0)
                return -1; /* the nested mismatch is already in errstr */
            break;
        case FK_ARRAY: {
            json_t *items = field_type(json_object_get(t, "items"));
            ok = tn && strcmp(tn, "array") == 0 && strcmp(str(type_name(items)), "record") == 0;
            if (ok && saga_event_desc_bind(fd->rec, items, errstr, errstr_size) != 0)
                return -1;
            break;
        }
        }
        if (!ok) {
            snprintf(errstr, errstr_size, "%s.%s: the schema's type does not match the struct",
                     desc->name, fd->name);
            return -1;
        }
        fd->def = json_object_get(f, "default"); /* borrowed from the schema, kept for life */
    }
    return 0;
}

/* --- comparison ---------------------------------------------------------- */

static int str_equal(const char *a, const char *b)
{
    return (!a && !b) || (a && b && strcmp(a, b) == 0);
}

static int record_equal(const struct saga_record_desc *d, const char *a, const char *b)
{
    for (int i = 0; i < d->nfields; i++) {
        const struct saga_field_desc *fd = &d->fields[i];
        const void *pa = a + fd->off, *pb = b + fd->off;
        switch (fd->kind) {
        case FK_STRING:
        case FK_OPT_STRING:
            if (!str_equal(*(const char *const *)pa, *(const char *const *)pb))
                return 0;
            break;
        case FK_INT:
            if (*(const int32_t *)pa != *(const int32_t *)pb)
                return 0;
            break;
        case FK_LONG:
            if (*(const int64_t *)pa != *(const int64_t *)pb)
                return 0;
            break;
        case FK_ENUM:
            if (*(const int *)pa != *(const int *)pb)
                return 0;
            break;
        case FK_RECORD:
            if (!record_equal(fd->rec, pa, pb))
                return 0;
            break;
        case FK_ARRAY: {
            size_t n = *(const size_t *)(a + fd->count_off);
            const char *ia = *(const char *const *)pa, *ib = *(const char *const *)pb;
            if (n != *(const size_t *)(b + fd->count_off))
                return 0;
            for (size_t j = 0; j < n; j++)
                if (!record_equal(fd->rec, ia + j * fd->rec->size, ib + j * fd->rec->size))
                    return 0;
            break;
        }
        }
    }
    return 1;
}

int saga_event_equal(const struct saga_event *a, const struct saga_event *b)
{
    return a->type == b->type && (unsigned)a->type < SAGA_EV_COUNT &&
           record_equal(saga_event_descs[a->type], (const char *)a, (const char *)b);
}
