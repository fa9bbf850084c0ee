#include "saga/topology.h"

#include <string.h>

const struct saga_service_info saga_services[SAGA_SERVICE_COUNT] = {
    {"order", "order-service", "orders", "order.dlq", "order-service", "order_service", 8080},
    {"inventory", "inventory-service", "inventory", "inventory.dlq", "inventory-service",
     "inventory_service", 8081},
    {"payment", "payment-service", "payments", "payment.dlq", "payment-service", "payment_service",
     8082},
    {"shipping", "shipping-service", "shipping", "shipping.dlq", "shipping-service",
     "shipping_service", 8083},
    {"notification", "notification-service", "notifications", "notification.dlq",
     "notification-service", "notification_service", 8084},
};

const struct saga_service_info *saga_service_find(const char *name)
{
    for (int i = 0; name && i < SAGA_SERVICE_COUNT; i++) {
        if (strcmp(name, saga_services[i].name) == 0 || strcmp(name, saga_services[i].program) == 0)
            return &saga_services[i];
    }
    return NULL;
}

int saga_topics_all(const char **out, int max)
{
    int n = 0;
    for (int i = 0; i < SAGA_SERVICE_COUNT; i++) {
        if (n < max)
            out[n] = saga_services[i].topic;
        n++;
    }
    for (int i = 0; i < SAGA_SERVICE_COUNT; i++) {
        if (n < max)
            out[n] = saga_services[i].dlq_topic;
        n++;
    }
    return n;
}
