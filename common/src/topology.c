#include "saga/topology.h"

#include <string.h>

/* What each service's consumer group reads (design brief §2). */
static const char *const order_inputs[] = {"orders", "inventory", "payments", "shipping",
                                           "notifications"};
static const char *const inventory_inputs[] = {"orders", "payments"};
static const char *const payment_inputs[] = {"orders", "inventory"};
static const char *const shipping_inputs[] = {"orders", "payments"};
static const char *const notification_inputs[] = {"orders"};

#define INPUTS(a) a, (int)(sizeof(a) / sizeof(a[0]))

const struct saga_service_info saga_services[SAGA_SERVICE_COUNT] = {
    {"order", "order-service", "orders", "order.dlq", "order-service", "order_service", 8080,
     INPUTS(order_inputs)},
    {"inventory", "inventory-service", "inventory", "inventory.dlq", "inventory-service",
     "inventory_service", 8081, INPUTS(inventory_inputs)},
    {"payment", "payment-service", "payments", "payment.dlq", "payment-service", "payment_service",
     8082, INPUTS(payment_inputs)},
    {"shipping", "shipping-service", "shipping", "shipping.dlq", "shipping-service",
     "shipping_service", 8083, INPUTS(shipping_inputs)},
    {"notification", "notification-service", "notifications", "notification.dlq",
     "notification-service", "notification_service", 8084, INPUTS(notification_inputs)},
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

static void acl_add(struct saga_acl *out, int max, int *n, const char *program,
                    enum saga_acl_resource resource, const char *name,
                    enum saga_acl_operation operation)
{
    if (*n < max) {
        out[*n].program = program;
        out[*n].resource = resource;
        out[*n].name = name;
        out[*n].operation = operation;
    }
    (*n)++;
}

int saga_acls_needed(struct saga_acl *out, int max)
{
    int n = 0;
    for (int i = 0; i < SAGA_SERVICE_COUNT; i++)
        acl_add(out, max, &n, SAGA_RELAY_PROGRAM, SAGA_ACL_TOPIC, saga_services[i].topic,
                SAGA_ACL_WRITE);
    for (int i = 0; i < SAGA_SERVICE_COUNT; i++) {
        const struct saga_service_info *s = &saga_services[i];
        for (int t = 0; t < s->ninputs; t++)
            acl_add(out, max, &n, s->program, SAGA_ACL_TOPIC, s->inputs[t], SAGA_ACL_READ);
        acl_add(out, max, &n, s->program, SAGA_ACL_GROUP, s->group, SAGA_ACL_READ);
        acl_add(out, max, &n, s->program, SAGA_ACL_TOPIC, s->dlq_topic, SAGA_ACL_WRITE);
    }
    return n;
}
