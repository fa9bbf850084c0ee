/*
 * RELAY_SOURCES: the service databases one relay serves.
 *
 *   RELAY_SOURCES="order=postgresql://outbox_relay:pw@127.0.0.1:15432/order_service
 *                  inventory=postgresql://..."
 *
 * Whitespace-separated name=URL pairs; names are unique, URLs are libpq URIs.
 *
 * RELAY_SOURCE_TOPICS: the topics each source's rows may be published to, and no other
 * (a service's database login must not let it publish as another service):
 *
 *   RELAY_SOURCE_TOPICS="order=orders legacy=legacy-orders,legacy-audit"
 *
 * A source named after a service of the suite (order, inventory, ...) owns that service's
 * topic unless this says otherwise; any other source must be given its topics here.
 */
#ifndef RELAY_SOURCES_H
#define RELAY_SOURCES_H

#include <stdio.h>

#include "saga/err.h"

#define RELAY_MAX_SOURCES       32
#define RELAY_MAX_SOURCE_TOPICS 8

struct relay_source {
    char name[64];
    char *url; /* owned */
    /* the topics its rows may go to (RELAY_SOURCE_TOPICS, or its service's topic) */
    char topics[RELAY_MAX_SOURCE_TOPICS][250];
    int ntopics;
};

struct relay_sources {
    int count;
    struct relay_source src[RELAY_MAX_SOURCES];
};

/* Parses spec into out (caller-owned; release with relay_sources_release). */
saga_err_t relay_sources_parse(struct relay_sources *out, const char *spec, char *errstr,
                               size_t errstr_size);
/* Gives every source of s its topics from spec (RELAY_SOURCE_TOPICS; NULL: none given). */
saga_err_t relay_sources_topics(struct relay_sources *s, const char *spec, char *errstr,
                                size_t errstr_size);
void relay_sources_release(struct relay_sources *s);
void relay_sources_print(const struct relay_sources *s, FILE *out);

#endif
