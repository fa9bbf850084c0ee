/*
 * A client of a Confluent-compatible schema registry (Confluent Schema Registry,
 * Apicurio Registry's ccompat API, Karapace) over HTTP with libcurl.
 *
 * Subjects follow TopicRecordNameStrategy: "<topic>-<record fullname>", e.g.
 * "orders-io.ordersaga.events.OrderPlaced". Ids and schemas are cached; all
 * functions are thread-safe.
 */
#ifndef SAGA_REGISTRY_H
#define SAGA_REGISTRY_H

#include <stdint.h>

#include "saga/err.h"
#include "saga/events.h"

struct saga_registry;

/* url: base URL, e.g. "http://127.0.0.1:18081/apis/ccompat/v7". Nothing is sent yet. */
saga_err_t saga_registry_new(struct saga_registry **out, const char *url, char *errstr,
                             size_t errstr_size);
void saga_registry_destroy(struct saga_registry *r);

/*
 * Registers schema_json under subject (or finds it there) and returns its id.
 * TRANSIENT when the registry cannot be reached or answers 5xx; PERMANENT when it
 * refuses the schema (incompatible with the subject's history, invalid).
 */
saga_err_t saga_registry_register(struct saga_registry *r, const char *subject,
                                  const char *schema_json, int32_t *id, char *errstr,
                                  size_t errstr_size);

/* The id of the schema this binary ships for type, registering it on first use. */
saga_err_t saga_registry_event_id(struct saga_registry *r, saga_event_type_t type, int32_t *id,
                                  char *errstr, size_t errstr_size);

/* Registers every event schema the binary ships (call at start-up). */
saga_err_t saga_registry_register_all(struct saga_registry *r, char *errstr, size_t errstr_size);

/*
 * The schema text of id. *json is malloc'ed for the caller. NOT_FOUND for an id
 * the registry does not know; TRANSIENT when it cannot be asked.
 */
saga_err_t saga_registry_get(struct saga_registry *r, int32_t id, char **json, char *errstr,
                             size_t errstr_size);

/* Writes "<topic>-<namespace>.<Name>" for type into buf. */
const char *saga_registry_subject(saga_event_type_t type, char *buf, size_t size);

#endif
