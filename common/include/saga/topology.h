/*
 * The fixed shape of the suite (design brief §2, §5): which service publishes to
 * which topic, its dead-letter topic, consumer group, database and default port.
 */
#ifndef SAGA_TOPOLOGY_H
#define SAGA_TOPOLOGY_H

struct saga_service_info {
    const char *name;      /* "order" */
    const char *program;   /* "order-service" */
    const char *topic;     /* "orders": the one topic this service publishes to */
    const char *dlq_topic; /* "order.dlq" */
    const char *group;     /* "order-service": its consumer group */
    const char *database;  /* "order_service": its database, and its login role */
    int http_port;         /* default port of /healthz, /readyz, /metrics (and the API) */
};

#define SAGA_SERVICE_COUNT 5
extern const struct saga_service_info saga_services[SAGA_SERVICE_COUNT];

/* The relay's default metrics port. */
#define SAGA_RELAY_HTTP_PORT 8085

/* Finds a service by name ("order") or program ("order-service"); NULL if none. */
const struct saga_service_info *saga_service_find(const char *name);

/*
 * Every topic of the suite: the five event topics followed by the five DLQs.
 * Fills up to max names into out and returns how many there are.
 */
int saga_topics_all(const char **out, int max);

#endif
