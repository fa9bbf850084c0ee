#include "saga/topology.h"

#include <ctype.h>
#include <stdio.h>
#include <string.h>

#include "saga/choreography.h"

#define EV(t) (1u << (t))

const struct saga_service_info saga_services[SAGA_SERVICE_COUNT] = {
    {"order", "order-service", "orders", "order.dlq", "order-service", "order_service", 8080,

     EV(SAGA_EV_ORDER_PLACED) | EV(SAGA_EV_ORDER_CONFIRMED) | EV(SAGA_EV_ORDER_CANCELLED)},
    {"inventory", "inventory-service", "inventory", "inventory.dlq", "inventory-service",
     "inventory_service", 8081,
     EV(SAGA_EV_INVENTORY_RESERVED) | EV(SAGA_EV_INVENTORY_REJECTED) |
         EV(SAGA_EV_INVENTORY_RELEASED)},
    {"payment", "payment-service", "payments", "payment.dlq", "payment-service", "payment_service",
     8082,
     EV(SAGA_EV_PAYMENT_AUTHORIZED) | EV(SAGA_EV_PAYMENT_FAILED) | EV(SAGA_EV_PAYMENT_REFUNDED)},
    {"shipping", "shipping-service", "shipping", "shipping.dlq", "shipping-service",
     "shipping_service", 8083,
     EV(SAGA_EV_SHIPMENT_SCHEDULED) | EV(SAGA_EV_SHIPMENT_FAILED) | EV(SAGA_EV_SHIPMENT_CANCELLED)},
    {"notification", "notification-service", "notifications", "notification.dlq",
     "notification-service", "notification_service", 8084, EV(SAGA_EV_NOTIFICATION_SENT)},
};

const struct saga_service_info *saga_service_find(const char *name)
{
    for (int i = 0; name && i < SAGA_SERVICE_COUNT; i++) {
        if (strcmp(name, saga_services[i].name) == 0 || strcmp(name, saga_services[i].program) == 0)
            return &saga_services[i];
    }
    return NULL;
}

const struct saga_service_info *saga_service_by_topic(const char *topic)
{
    for (int i = 0; topic && i < SAGA_SERVICE_COUNT; i++)
        if (strcmp(topic, saga_services[i].topic) == 0)
            return &saga_services[i];
    return NULL;
}

const struct saga_service_info *saga_service_by_dlq(const char *dlq_topic)
{
    for (int i = 0; dlq_topic && i < SAGA_SERVICE_COUNT; i++)
        if (strcmp(dlq_topic, saga_services[i].dlq_topic) == 0)
            return &saga_services[i];
    return NULL;
}

saga_err_t saga_topic_owners_parse(struct saga_topic_owners *out, const char *spec, char *errstr,
                                   size_t errstr_size)
{
    const char *p = spec ? spec : "";

    memset(out, 0, sizeof(*out));
    for (;;) {
        const char *start, *eq, *end;
        size_t tlen, plen;

        while (isspace((unsigned char)*p))
            p++;
        if (!*p)
            return SAGA_OK;
        start = p;
        while (*p && !isspace((unsigned char)*p))
            p++;
        end = p;
        eq = memchr(start, '=', (size_t)(end - start));
        tlen = eq ? (size_t)(eq - start) : 0;
        plen = eq ? (size_t)(end - eq - 1) : 0;
        if (!eq || tlen == 0 || plen == 0 || tlen >= sizeof(out->own[0].topic) ||
            plen >= sizeof(out->own[0].producer) || memchr(eq + 1, '=', plen)) {
            memset(out, 0, sizeof(*out));
            return saga_errf(SAGA_ERR_CONFIG, errstr, errstr_size,
                             "SAGA_TOPIC_OWNERS: expected topic=producer at '%.*s'",
                             (int)(end - start > 60 ? 60 : end - start), start);
        }
        if (out->count == SAGA_TOPIC_OWNERS_MAX) {
            memset(out, 0, sizeof(*out));
            return saga_errf(SAGA_ERR_CONFIG, errstr, errstr_size,
                             "SAGA_TOPIC_OWNERS: more than %d topics", SAGA_TOPIC_OWNERS_MAX);
        }
        memcpy(out->own[out->count].topic, start, tlen);
        memcpy(out->own[out->count].producer, eq + 1, plen);
        if (saga_service_by_topic(out->own[out->count].topic) ||
            saga_service_by_dlq(out->own[out->count].topic) ||
            saga_topic_owner(out, out->own[out->count].topic)) {
            saga_err_t err = saga_errf(
                SAGA_ERR_CONFIG, errstr, errstr_size,
                "SAGA_TOPIC_OWNERS: topic '%s' already has an owner%s", out->own[out->count].topic,
                saga_service_by_topic(out->own[out->count].topic) ? " (one of the suite's)" : "");
            memset(out, 0, sizeof(*out));
            return err;
        }
        out->count++;
    }
}

const char *saga_topic_owner(const struct saga_topic_owners *extra, const char *topic)
{
    const struct saga_service_info *s = saga_service_by_topic(topic);
    if (s)
        return s->program;
    for (int i = 0; extra && topic && i < extra->count; i++)
        if (strcmp(extra->own[i].topic, topic) == 0)
            return extra->own[i].producer;
    return NULL;
}

int saga_event_belongs(const struct saga_topic_owners *extra, const char *topic,
                       saga_event_type_t type, const char *producer, char *why, size_t why_size)
{
    const struct saga_service_info *s = saga_service_by_topic(topic);
    const char *owner = saga_topic_owner(extra, topic);
    const char *name = saga_event_type_name(type);

    if (owner && producer && strcmp(owner, producer) == 0 && (!s || (s->events & EV(type)) != 0))
        return 0;
    if (!why || !why_size)
        return -1;
    if (!owner)
        snprintf(why, why_size, "%s from %s does not belong on topic %s (it has no owner)",
                 name ? name : "an event", producer ? producer : "no producer",
                 topic ? topic : "(none)");
    else if (producer && strcmp(owner, producer) == 0)
        snprintf(why, why_size, "%s from %s does not belong on topic %s (%s publishes no %s)",
                 name ? name : "an event", producer, topic, owner, name ? name : "such event");
    else
        snprintf(why, why_size, "%s from %s does not belong on topic %s (its owner is %s)",
                 name ? name : "an event", producer ? producer : "no producer", topic, owner);
    return -1;
}

int saga_dlq_replay_allowed(const char *dlq, const char *source_topic, char *why, size_t why_size)
{
    const struct saga_service_info *s = saga_service_by_dlq(dlq);

    if (!source_topic || !*source_topic) {
        snprintf(why, why_size, "it names no source topic (dlq.source.topic)");
        return -1;
    }
    if (s) {
        const char *inputs[SAGA_SERVICE_COUNT];
        int n = saga_choreo_inputs(s->name, inputs, SAGA_SERVICE_COUNT);
        for (int i = 0; i < n && i < SAGA_SERVICE_COUNT; i++)
            if (strcmp(inputs[i], source_topic) == 0)
                return 0;
        snprintf(why, why_size,
                 "%s is not a topic %s reads, so its DLQ %s cannot hold a dead letter of it",
                 source_topic, s->program, dlq);
        return -1;
    }
    if (saga_service_by_topic(source_topic)) {
        snprintf(why, why_size,
                 "%s is one of the suite's topics: only the DLQ of a service that reads it replays "
                 "to it, not %s",
                 source_topic, dlq ? dlq : "(none)");
        return -1;
    }
    return 0;
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
        const char *inputs[SAGA_SERVICE_COUNT];
        int ninputs = saga_choreo_inputs(s->name, inputs, SAGA_SERVICE_COUNT);
        for (int t = 0; t < ninputs && t < SAGA_SERVICE_COUNT; t++)
            acl_add(out, max, &n, s->program, SAGA_ACL_TOPIC, inputs[t], SAGA_ACL_READ);
        acl_add(out, max, &n, s->program, SAGA_ACL_GROUP, s->group, SAGA_ACL_READ);
        acl_add(out, max, &n, s->program, SAGA_ACL_TOPIC, s->dlq_topic, SAGA_ACL_WRITE);
    }
    return n;
}
