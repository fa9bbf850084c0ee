/*
 * The Kafka headers every event carries (docs/EVENTS.md): event_id, event_type,
 * correlation_id, causation_id and traceparent, as UTF-8 strings. They duplicate
 * what the Avro body says so tools can route and trace without decoding; the
 * body stays the truth. A header whose value is absent (causation_id of
 * OrderPlaced, a missing traceparent) is left out.
 */
#ifndef SAGA_HEADERS_H
#define SAGA_HEADERS_H

#include <librdkafka/rdkafka.h>

#include "saga/err.h"
#include "saga/events.h"

struct saga_event_headers {
    char event_id[64];
    char event_type[64];
    char correlation_id[128];
    char causation_id[64];
    char traceparent[64];
};

/* Adds the headers of ev to hdrs. */
saga_err_t saga_event_headers_add(rd_kafka_headers_t *hdrs, const struct saga_event *ev);

/* Reads them (absent or oversized ones come back as ""); hdrs may be NULL. */
void saga_event_headers_read(const rd_kafka_headers_t *hdrs, struct saga_event_headers *out);

/* 0 if the headers that are present agree with the decoded event, else -1 and why. */
int saga_event_headers_check(const struct saga_event_headers *h, const struct saga_event *ev,
                             char *errstr, size_t errstr_size);

#endif
