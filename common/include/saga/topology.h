/*
 * The fixed shape of the suite (docs/REPLACING-A-SERVICE.md, docs/SERVICES.md): which service
 * publishes to which topic, its dead-letter topic, consumer group, database and default port.
 * What each reads is the saga's declaration's (saga/choreography.h, saga_choreo_inputs), and so
 * are the read permissions of saga_acls_needed and the replay targets of
 * saga_dlq_replay_allowed.
 */
#ifndef SAGA_TOPOLOGY_H
#define SAGA_TOPOLOGY_H

#include <stddef.h>

#include "saga/err.h"
#include "saga/events.h"

struct saga_service_info {
    const char *name;      /* "order" */
    const char *program;   /* "order-service" */
    const char *topic;     /* "orders": the one topic this service publishes to */
    const char *dlq_topic; /* "order.dlq" */
    const char *group;     /* "order-service": its consumer group */
    const char *database;  /* "order_service": its database, and its login role */
    int http_port;         /* default port of /healthz, /readyz, /metrics (and the API) */
    /* The event types it publishes, all on topic (bit 1 << saga_event_type_t): what each topic
     * may hold. Equal to what saga/choreography.h lets it emit (tests/unit/test_choreography.c).
     * The topics its consumer group reads follow from the declaration: saga_choreo_inputs. */
    unsigned events;
};

#define SAGA_SERVICE_COUNT 5
extern const struct saga_service_info saga_services[SAGA_SERVICE_COUNT];

/* The program that publishes every outbox, and so writes every event topic. */
#define SAGA_RELAY_PROGRAM "outbox-relay"

/* The relay's default metrics port. */
#define SAGA_RELAY_HTTP_PORT 8085

/* Finds a service by name ("order") or program ("order-service"); NULL if none. */
const struct saga_service_info *saga_service_find(const char *name);

/* The service that publishes to topic ("shipping"), or whose DLQ it is; NULL if none. */
const struct saga_service_info *saga_service_by_topic(const char *topic);
const struct saga_service_info *saga_service_by_dlq(const char *dlq_topic);

/*
 * Who may publish what, and where (docs/SECURITY.md). Every event topic of the suite has
 * one owner: the service that publishes to it, and only its event types. Topics outside
 * the suite (a test's, a replacement service's own) have an owner only when declared, in
 * SAGA_TOPIC_OWNERS="topic=producer ...": the producer (meta.producer) whose events, of
 * any type, belong there. The suite's own topics cannot be redeclared.
 */
#define SAGA_TOPIC_OWNERS_MAX 32

struct saga_topic_owners {
    int count;
    struct {
        char topic[250];
        char producer[128];
    } own[SAGA_TOPIC_OWNERS_MAX];
};

/* Parses spec (NULL or empty: none) into out (caller-owned, nothing to release). */
saga_err_t saga_topic_owners_parse(struct saga_topic_owners *out, const char *spec, char *errstr,
                                   size_t errstr_size);

/* The producer topic belongs to: its suite service's program, else extra's (may be NULL)
 * declaration; NULL when nobody owns it. */
const char *saga_topic_owner(const struct saga_topic_owners *extra, const char *topic);

/*
 * 0 when an event of type whose meta.producer is producer belongs on topic: the topic's
 * owner produced it and, on a suite topic, the owner publishes that type. Otherwise -1
 * with why ("ShipmentScheduled from notification-service does not belong on topic
 * shipping").
 */
int saga_event_belongs(const struct saga_topic_owners *extra, const char *topic,
                       saga_event_type_t type, const char *producer, char *why, size_t why_size);

/*
 * 0 when a dead letter of dlq may be replayed to source_topic: a suite DLQ replays only to a
 * topic its service reads; any other DLQ never to a suite topic. Otherwise -1 with why. (The
 * event itself is checked with saga_event_belongs.)
 */
int saga_dlq_replay_allowed(const char *dlq, const char *source_topic, char *why, size_t why_size);

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
