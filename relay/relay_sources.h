/*
 * RELAY_SOURCES: the service databases one relay serves.
 *
 *   RELAY_SOURCES="order=postgresql://outbox_relay:pw@127.0.0.1:15432/order_service
 *                  inventory=postgresql://..."
 *
 * Whitespace-separated name=URL pairs; names are unique, URLs are libpq URIs.
 */
#ifndef RELAY_SOURCES_H
#define RELAY_SOURCES_H

#include <stdio.h>

#include "saga/err.h"

#define RELAY_MAX_SOURCES 32

struct relay_source {
    char name[64];
    char *url; /* owned */
};

struct relay_sources {
    int count;
    struct relay_source src[RELAY_MAX_SOURCES];
};

/* Parses spec into out (caller-owned; release with relay_sources_release). */
saga_err_t relay_sources_parse(struct relay_sources *out, const char *spec, char *errstr,
                               size_t errstr_size);
void relay_sources_release(struct relay_sources *s);
void relay_sources_print(const struct relay_sources *s, FILE *out);

#endif
