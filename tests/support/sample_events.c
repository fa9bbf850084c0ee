#include "sample_events.h"

#include <string.h>

static struct saga_order_line lines[5] = {
    {"sku-mug", 2, 1250},   {"sku-tee", 1, 2400},      {"sku-cap", 3, 1500},
    {"sku-poster", 1, 990}, {"sku-stickers", 10, 150},
};
static struct saga_stock_line stock[2] = {{"sku-mug", 2}, {"sku-tee", 1}};

void sample_event(struct saga_event *ev, saga_event_type_t type, int minimal)
{
    saga_event_init(ev, type);
    ev->meta.event_id = "6f1c2b8e-8a52-4c1e-9d5e-2f3a4b5c6d7e";
    ev->meta.order_id = "0b6f7c1a-2d3e-4f50-8a9b-c0d1e2f3a4b5";
    ev->meta.correlation_id = "0b6f7c1a-2d3e-4f50-8a9b-c0d1e2f3a4b5";
    ev->meta.causation_id = minimal ? NULL : "9e8d7c6b-5a49-4382-9170-6f5e4d3c2b1a";
    ev->meta.occurred_at = 1763757600123LL;
    ev->meta.producer = "test-service";
    ev->meta.traceparent =
        minimal ? NULL : "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01";

    switch (type) {
    case SAGA_EV_ORDER_PLACED: {
        struct saga_order_placed *e = &ev->u.order_placed;
        e->customer_id = "cust-ada";
        e->items = lines;
        e->item_count = minimal ? 1 : 2;
        e->currency = "EUR";
        e->total_amount = minimal ? 2500 : 4900;
        e->payment_token = "tok_visa";
        e->shipping_address.recipient = "Ada Lovelace";
        e->shipping_address.line1 = "12 St James's Square";
        e->shipping_address.line2 = minimal ? NULL : "Flat 3 — über den Wolken";
        e->shipping_address.city = "London";
        e->shipping_address.postal_code = "SW1Y 4JH";
        e->shipping_address.country = "GB";
        break;
    }
    case SAGA_EV_ORDER_CONFIRMED:
        ev->u.order_confirmed.total_amount = 4900;
        ev->u.order_confirmed.currency = "EUR";
        ev->u.order_confirmed.tracking_number = minimal ? NULL : "1Z999AA10123456784";
        break;
    case SAGA_EV_ORDER_CANCELLED:
        ev->u.order_cancelled.reason = SAGA_CANCEL_PAYMENT_FAILED;
        ev->u.order_cancelled.detail = minimal ? NULL : "CARD_DECLINED";
        break;
    case SAGA_EV_INVENTORY_RESERVED:
        ev->u.inventory_reserved.reservation_id = "res-1";
        ev->u.inventory_reserved.items = stock;
        ev->u.inventory_reserved.item_count = minimal ? 0 : 2;
        break;
    case SAGA_EV_INVENTORY_REJECTED:
        ev->u.inventory_rejected.reason = SAGA_REJECT_OUT_OF_STOCK;
        ev->u.inventory_rejected.sku = minimal ? NULL : "sku-sold-out";
        break;
    case SAGA_EV_INVENTORY_RELEASED:
        ev->u.inventory_released.reservation_id = "res-1";
        ev->u.inventory_released.items = stock;
        ev->u.inventory_released.item_count = 2;
        ev->u.inventory_released.reason = SAGA_RELEASE_PAYMENT_FAILED;
        break;
    case SAGA_EV_PAYMENT_AUTHORIZED:
        ev->u.payment_authorized.payment_id = "pay-1";
        ev->u.payment_authorized.customer_id = "cust-ada";
        ev->u.payment_authorized.amount = 4900;
        ev->u.payment_authorized.currency = "EUR";
        break;
    case SAGA_EV_PAYMENT_FAILED:
        ev->u.payment_failed.reason = SAGA_PAYFAIL_INSUFFICIENT_FUNDS;
        ev->u.payment_failed.customer_id = "cust-ada";
        ev->u.payment_failed.amount = 4900;
        ev->u.payment_failed.currency = "EUR";
        break;
    case SAGA_EV_PAYMENT_REFUNDED:
        ev->u.payment_refunded.payment_id = "pay-1";
        ev->u.payment_refunded.amount = 4900;
        ev->u.payment_refunded.currency = "EUR";
        break;
    case SAGA_EV_SHIPMENT_SCHEDULED:
        ev->u.shipment_scheduled.shipment_id = "shp-1";
        ev->u.shipment_scheduled.tracking_number = "TRK0000000001";
        ev->u.shipment_scheduled.carrier = "Saga Post";
        break;
    case SAGA_EV_SHIPMENT_FAILED:
        ev->u.shipment_failed.reason = SAGA_SHIPFAIL_UNSUPPORTED_DESTINATION;
        ev->u.shipment_failed.country = "AQ";
        break;
    case SAGA_EV_SHIPMENT_CANCELLED:
        ev->u.shipment_cancelled.shipment_id = "shp-1";
        ev->u.shipment_cancelled.tracking_number = "TRK0000000001";
        break;
    case SAGA_EV_NOTIFICATION_SENT:
        ev->u.notification_sent.notification_id = "ntf-1";
        ev->u.notification_sent.outcome = SAGA_OUTCOME_CANCELLED;
        ev->u.notification_sent.channel = SAGA_CHANNEL_LOG;
        ev->u.notification_sent.recipient = "cust-ada";
        ev->u.notification_sent.message = "Your order was cancelled: payment failed.";
        break;
    case SAGA_EV_COUNT:
        break;
    }
}

void sample_order_placed5(struct saga_event *ev)
{
    sample_event(ev, SAGA_EV_ORDER_PLACED, 0);
    ev->u.order_placed.item_count = 5;
    ev->u.order_placed.total_amount = 0;
    for (int i = 0; i < 5; i++)
        ev->u.order_placed.total_amount += lines[i].quantity * lines[i].unit_price;
}
