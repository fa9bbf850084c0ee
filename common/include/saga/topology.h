/*
 * The fixed shape of the suite (design brief §2, §5): which service publishes to
 * which topic, its dead-letter topic, consumer group, database and default port.
 */
#ifndef SAGA_TOPOLOGY_H
#define SAGA_TOPOLOGY_H

struct saga_service_info {
    const char *name;          /* "order" */
    const char *program;       /* "order-service" */
    const char *topic;         /* "orders": the one topic this service publishes to */
    const char *dlq_topic;     /* "order.dlq" */
    const char *group;         /* "order-service": its consumer group */
    const char *database;      /* "order_service": its database, and its login role */
    int http_port;             /* default port of /healthz, /readyz, /metrics (and the API) */
    const char *const *inputs; /* the topics its consumer group reads */
    int ninputs;
};

#define SAGA_SERVICE_COUNT 5
extern const struct saga_service_info saga_services[SAGA_SERVICE_COUNT];

/* The program that publishes every outbox, and so writes every event topic. */
#define SAGA_RELAY_PROGRAM "outbox-relay"

/* The relay's default metrics port. */
#define SAGA_RELAY_HTTP_PORT 8085

/* Finds a service by name ("order") or program ("order-service"); NULL if none. */
const struct saga_service_info *saga_service_find(const char *name);

/*
 * Every topic of the suite: the five event topics followed by the five DLQs.
 * Fills up to max names into out and returns how many there are.
 */
int saga_topics_all(const char **out, int max);

/*
 * The Kafka permissions the suite needs and nothing more (least privilege): the
 * relay writes the five event topics; each service reads its input topics with
 * its own consumer group and writes its own dead-letter topic. program is the
 * program name ("outbox-relay", "order-service"); READ and WRITE imply DESCRIBE,
 * and WRITE on a topic lets the idempotent producer get its producer id (KIP-679,
 * Kafka 3.0 and later), so no permission on the cluster is needed.
 */
enum saga_acl_resource { SAGA_ACL_TOPIC, SAGA_ACL_GROUP };
enum saga_acl_operation { SAGA_ACL_READ, SAGA_ACL_WRITE };

struct saga_acl {
    const char *program;
    enum saga_acl_resource resource;
    const char *name;
    enum saga_acl_operation operation;
};

/* Fills up to max entries into out and returns how many there are. */
int saga_acls_needed(struct saga_acl *out, int max);

#endif
