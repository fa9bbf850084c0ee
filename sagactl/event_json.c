/*
 * Saga events as JSON (sagactl tail) and as one-line summaries (sagactl watch).
 *
 * The JSON follows the Avro schemas field by field (docs/EVENTS.md): the meta
 * envelope as an object, enums as symbol names, money in minor units and times
 * in epoch milliseconds as integers, absent optional strings as null.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "saga/registry.h"
#include "sagactl.h"

/* Symbol counts of the enums in saga/events.h (UNKNOWN included). */
#define N_CANCEL   6
#define N_REJECT   3
#define N_RELEASE  3
#define N_PAYFAIL  5
#define N_SHIPFAIL 3
#define N_OUTCOME  3
#define N_CHANNEL  4

/* A JSON string of s, null for NULL; invalid UTF-8 (never from the serde) as hex. */
static json_t *jstrn(const char *s, size_t len)
{
    static const char hex[] = "0123456789abcdef";
    json_t *j;
    char *h;
    if (!s)
        return json_null();
    if ((j = json_stringn(s, len)))
        return j;
    if (!(h = malloc(2 * len + 3)))
        return json_null();
    h[0] = '0';
    h[1] = 'x';
    for (size_t i = 0; i < len; i++) {
        h[2 + 2 * i] = hex[(unsigned char)s[i] >> 4];
        h[3 + 2 * i] = hex[(unsigned char)s[i] & 15];
    }
    h[2 + 2 * len] = '\0';
    j = json_string(h);
    free(h);
    return j ? j : json_null();
}

static json_t *jstr(const char *s)
{
    return jstrn(s, s ? strlen(s) : 0);
}

static json_t *jenum(const char *const *names, int count, int value)
{
    return json_string(sagactl_enum_name(names, count, value));
}

static void set(json_t *o, const char *key, json_t *v)
{
    json_object_set_new(o, key, v ? v : json_null());
}

static json_t *meta_json(const struct saga_event_meta *m)
{
    json_t *o = json_object();
    set(o, "event_id", jstr(m->event_id));
    set(o, "order_id", jstr(m->order_id));
    set(o, "correlation_id", jstr(m->correlation_id));
    set(o, "causation_id", jstr(m->causation_id));
    set(o, "occurred_at", json_integer(m->occurred_at));
    set(o, "producer", jstr(m->producer));
    set(o, "traceparent", jstr(m->traceparent));
    return o;
}

static json_t *stock_lines(const struct saga_stock_line *items, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++) {
        json_t *l = json_object();
        set(l, "sku", jstr(items[i].sku));
        set(l, "quantity", json_integer(items[i].quantity));
        json_array_append_new(a, l);
    }
    return a;
}

static json_t *order_placed_json(json_t *o, const struct saga_order_placed *e)
{
    json_t *items = json_array(), *addr = json_object();
    for (size_t i = 0; i < e->item_count; i++) {
        json_t *l = json_object();
        set(l, "sku", jstr(e->items[i].sku));
        set(l, "quantity", json_integer(e->items[i].quantity));
        set(l, "unit_price", json_integer(e->items[i].unit_price));
        json_array_append_new(items, l);
    }
    set(addr, "recipient", jstr(e->shipping_address.recipient));
    set(addr, "line1", jstr(e->shipping_address.line1));
    set(addr, "line2", jstr(e->shipping_address.line2));
    set(addr, "city", jstr(e->shipping_address.city));
    set(addr, "postal_code", jstr(e->shipping_address.postal_code));
    set(addr, "country", jstr(e->shipping_address.country));
    set(o, "customer_id", jstr(e->customer_id));
    set(o, "items", items);
    set(o, "currency", jstr(e->currency));
    set(o, "total_amount", json_integer(e->total_amount));
    set(o, "payment_token", jstr(e->payment_token));
    set(o, "shipping_address", addr);
    return o;
}

json_t *sagactl_event_json(const struct saga_event *ev)
{
    json_t *o = json_object();
    if (!o)
        return NULL;
    set(o, "meta", meta_json(&ev->meta));
    switch (ev->type) {
    case SAGA_EV_ORDER_PLACED:
        order_placed_json(o, &ev->u.order_placed);
        break;
    case SAGA_EV_ORDER_CONFIRMED:
        set(o, "total_amount", json_integer(ev->u.order_confirmed.total_amount));
        set(o, "currency", jstr(ev->u.order_confirmed.currency));
        set(o, "tracking_number", jstr(ev->u.order_confirmed.tracking_number));
        break;
    case SAGA_EV_ORDER_CANCELLED:
        set(o, "reason",
            jenum(saga_cancel_reason_names, N_CANCEL, (int)ev->u.order_cancelled.reason));
        set(o, "detail", jstr(ev->u.order_cancelled.detail));
        break;
    case SAGA_EV_INVENTORY_RESERVED:
        set(o, "reservation_id", jstr(ev->u.inventory_reserved.reservation_id));
        set(o, "items",
            stock_lines(ev->u.inventory_reserved.items, ev->u.inventory_reserved.item_count));
        break;
    case SAGA_EV_INVENTORY_REJECTED:
        set(o, "reason",
            jenum(saga_reject_reason_names, N_REJECT, (int)ev->u.inventory_rejected.reason));
        set(o, "sku", jstr(ev->u.inventory_rejected.sku));
        break;
    case SAGA_EV_INVENTORY_RELEASED:
        set(o, "reservation_id", jstr(ev->u.inventory_released.reservation_id));
        set(o, "items",
            stock_lines(ev->u.inventory_released.items, ev->u.inventory_released.item_count));
        set(o, "reason",
            jenum(saga_release_reason_names, N_RELEASE, (int)ev->u.inventory_released.reason));
        break;
    case SAGA_EV_PAYMENT_AUTHORIZED:
        set(o, "payment_id", jstr(ev->u.payment_authorized.payment_id));
        set(o, "customer_id", jstr(ev->u.payment_authorized.customer_id));
        set(o, "amount", json_integer(ev->u.payment_authorized.amount));
        set(o, "currency", jstr(ev->u.payment_authorized.currency));
        break;
    case SAGA_EV_PAYMENT_FAILED:
        set(o, "reason",
            jenum(saga_payment_failure_names, N_PAYFAIL, (int)ev->u.payment_failed.reason));
        set(o, "customer_id", jstr(ev->u.payment_failed.customer_id));
        set(o, "amount", json_integer(ev->u.payment_failed.amount));
        set(o, "currency", jstr(ev->u.payment_failed.currency));
        break;
    case SAGA_EV_PAYMENT_REFUNDED:
        set(o, "payment_id", jstr(ev->u.payment_refunded.payment_id));
        set(o, "amount", json_integer(ev->u.payment_refunded.amount));
        set(o, "currency", jstr(ev->u.payment_refunded.currency));
        break;
    case SAGA_EV_SHIPMENT_SCHEDULED:
        set(o, "shipment_id", jstr(ev->u.shipment_scheduled.shipment_id));
        set(o, "tracking_number", jstr(ev->u.shipment_scheduled.tracking_number));
        set(o, "carrier", jstr(ev->u.shipment_scheduled.carrier));
        break;
    case SAGA_EV_SHIPMENT_FAILED:
        set(o, "reason",
            jenum(saga_shipment_failure_names, N_SHIPFAIL, (int)ev->u.shipment_failed.reason));
        set(o, "country", jstr(ev->u.shipment_failed.country));
        break;
    case SAGA_EV_SHIPMENT_CANCELLED:
        set(o, "shipment_id", jstr(ev->u.shipment_cancelled.shipment_id));
        set(o, "tracking_number", jstr(ev->u.shipment_cancelled.tracking_number));
        break;
    case SAGA_EV_NOTIFICATION_SENT:
        set(o, "notification_id", jstr(ev->u.notification_sent.notification_id));
        set(o, "outcome",
            jenum(saga_outcome_names, N_OUTCOME, (int)ev->u.notification_sent.outcome));
        set(o, "channel",
            jenum(saga_channel_names, N_CHANNEL, (int)ev->u.notification_sent.channel));
        set(o, "recipient", jstr(ev->u.notification_sent.recipient));
        set(o, "message", jstr(ev->u.notification_sent.message));
        break;
    default:
        break;
    }
    return o;
}

json_t *sagactl_record_json(struct saga_serde *serde, const char *topic, int32_t partition,
                            int64_t offset, const void *key, size_t key_len, int64_t timestamp,
                            const rd_kafka_headers_t *hdrs, const void *payload, size_t len)
{
    json_t *o = json_object(), *h = json_object();
    struct saga_event ev = {0};
    saga_decode_err_t err;
    char errstr[512] = "";
    const char *name;
    const void *v;
    size_t vlen;

    if (!o || !h) {
        json_decref(o);
        json_decref(h);
        return NULL;
    }
    set(o, "topic", jstr(topic));
    set(o, "partition", json_integer(partition));
    set(o, "offset", json_integer(offset));
    set(o, "key", jstrn(key, key_len));
    set(o, "timestamp", timestamp >= 0 ? json_integer(timestamp) : json_null());
    for (size_t i = 0; hdrs && !rd_kafka_header_get_all(hdrs, i, &name, &v, &vlen); i++) {
        json_t *k = jstrn(name, strlen(name)); /* a name that is not UTF-8: as hex too */
        if (json_string_value(k))
            set(h, json_string_value(k), jstrn(v, vlen));
        json_decref(k);
    }
    set(o, "headers", h);
    err = saga_serde_decode(serde, payload, len, &ev, errstr, sizeof(errstr));
    if (err == SAGA_DECODE_OK) {
        set(o, "event_type", json_string(saga_event_type_name(ev.type)));
        set(o, "event", sagactl_event_json(&ev));
    } else {
        set(o, "error", json_string(errstr[0] ? errstr : saga_decode_err2str(err)));
        set(o, "error_code", json_string(saga_decode_err2str(err)));
        set(o, "size", json_integer((json_int_t)len));
    }
    saga_event_release(&ev);
    return o;
}

int sagactl_event_is_compensation(saga_event_type_t type)
{
    return type == SAGA_EV_INVENTORY_RELEASED || type == SAGA_EV_PAYMENT_REFUNDED ||
           type == SAGA_EV_SHIPMENT_CANCELLED;
}

static int units(const struct saga_stock_line *items, size_t n)
{
    int u = 0;
    for (size_t i = 0; i < n; i++)
        u += items[i].quantity;
    return u;
}

const char *sagactl_event_summary(const struct saga_event *ev, char *out, size_t size)
{
    char money[48];
    switch (ev->type) {
    case SAGA_EV_ORDER_PLACED: {
        const struct saga_order_placed *o = &ev->u.order_placed;
        snprintf(out, size, "%zu line%s, %s, customer %s, ship to %s", o->item_count,
                 o->item_count == 1 ? "" : "s",
                 sagactl_money(o->total_amount, o->currency, money, sizeof(money)),
                 o->customer_id ? o->customer_id : "?",
                 o->shipping_address.country ? o->shipping_address.country : "?");
        break;
    }
    case SAGA_EV_ORDER_CONFIRMED:
        snprintf(out, size, "confirmed %s",
                 sagactl_money(ev->u.order_confirmed.total_amount, ev->u.order_confirmed.currency,
                               money, sizeof(money)));
        break;
    case SAGA_EV_ORDER_CANCELLED: {
        const char *d = ev->u.order_cancelled.detail;
        snprintf(out, size, "cancelled: %s%s%s%s",
                 sagactl_enum_name(saga_cancel_reason_names, N_CANCEL,
                                   (int)ev->u.order_cancelled.reason),
                 d ? " (" : "", d ? d : "", d ? ")" : "");
        break;
    }
    case SAGA_EV_INVENTORY_RESERVED: {
        size_t n = ev->u.inventory_reserved.item_count;
        snprintf(out, size, "reserved %zu SKU%s (%d unit%s)", n, n == 1 ? "" : "s",
                 units(ev->u.inventory_reserved.items, n),
                 units(ev->u.inventory_reserved.items, n) == 1 ? "" : "s");
        break;
    }
    case SAGA_EV_INVENTORY_REJECTED: {
        const char *sku = ev->u.inventory_rejected.sku;
        snprintf(out, size, "rejected: %s%s%s",
                 sagactl_enum_name(saga_reject_reason_names, N_REJECT,
                                   (int)ev->u.inventory_rejected.reason),
                 sku ? " " : "", sku ? sku : "");
        break;
    }
    case SAGA_EV_INVENTORY_RELEASED: {
        size_t n = ev->u.inventory_released.item_count;
        snprintf(out, size, "released %zu SKU%s (%s)", n, n == 1 ? "" : "s",
                 sagactl_enum_name(saga_release_reason_names, N_RELEASE,
                                   (int)ev->u.inventory_released.reason));
        break;
    }
    case SAGA_EV_PAYMENT_AUTHORIZED:
        snprintf(out, size, "charged %s",
                 sagactl_money(ev->u.payment_authorized.amount, ev->u.payment_authorized.currency,
                               money, sizeof(money)));
        break;
    case SAGA_EV_PAYMENT_FAILED:
        snprintf(out, size, "declined: %s (%s)",
                 sagactl_enum_name(saga_payment_failure_names, N_PAYFAIL,
                                   (int)ev->u.payment_failed.reason),
                 sagactl_money(ev->u.payment_failed.amount, ev->u.payment_failed.currency, money,
                               sizeof(money)));
        break;
    case SAGA_EV_PAYMENT_REFUNDED:
        snprintf(out, size, "refunded %s",
                 sagactl_money(ev->u.payment_refunded.amount, ev->u.payment_refunded.currency,
                               money, sizeof(money)));
        break;
    case SAGA_EV_SHIPMENT_SCHEDULED:
        snprintf(out, size, "scheduled with %s, tracking %s",
                 ev->u.shipment_scheduled.carrier ? ev->u.shipment_scheduled.carrier : "?",
                 ev->u.shipment_scheduled.tracking_number ? ev->u.shipment_scheduled.tracking_number
                                                          : "?");
        break;
    case SAGA_EV_SHIPMENT_FAILED:
        snprintf(out, size, "failed: %s (%s)",
                 sagactl_enum_name(saga_shipment_failure_names, N_SHIPFAIL,
                                   (int)ev->u.shipment_failed.reason),
                 ev->u.shipment_failed.country ? ev->u.shipment_failed.country : "?");
        break;
    case SAGA_EV_SHIPMENT_CANCELLED: {
        const char *t = ev->u.shipment_cancelled.tracking_number;
        snprintf(out, size, "cancelled shipment %s",
                 t && *t
                     ? t
                     : (ev->u.shipment_cancelled.shipment_id ? ev->u.shipment_cancelled.shipment_id
                                                             : "?"));
        break;
    }
    case SAGA_EV_NOTIFICATION_SENT:
        snprintf(
            out, size, "%s notice by %s to %s",
            sagactl_enum_name(saga_outcome_names, N_OUTCOME, (int)ev->u.notification_sent.outcome),
            sagactl_enum_name(saga_channel_names, N_CHANNEL, (int)ev->u.notification_sent.channel),
            ev->u.notification_sent.recipient ? ev->u.notification_sent.recipient : "?");
        break;
    default:
        snprintf(out, size, "%s", "");
    }
    return out;
}

int sagactl_serde_open(const struct saga_config *cfg, const char *cmd, struct saga_serde **serde,
                       struct saga_registry **registry)
{
    char err[512];
    saga_err_t rc = saga_serde_open(cfg->schema_registry_url, cfg->schema_dir, serde, registry, err,
                                    sizeof(err));
    if (rc != SAGA_OK) {
        fprintf(stderr, "sagactl %s: %s\n", cmd, err);
        return rc == SAGA_ERR_CONFIG ? SAGACTL_EXIT_CONFIG : SAGACTL_EXIT_FAILURE;
    }
    return SAGACTL_EXIT_OK;
}
