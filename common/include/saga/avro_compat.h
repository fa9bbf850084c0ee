/*
 * Schema compatibility by the Avro specification's resolution rules, on schema
 * JSON: can data written with `writer` be read with `reader`? Used by
 * `sagactl schemas check` to refuse a change to schemas/ that is not both
 * BACKWARD (new readers read old events) and FORWARD (old readers read new ones).
 */
#ifndef SAGA_AVRO_COMPAT_H
#define SAGA_AVRO_COMPAT_H

#include <jansson.h>

/* Called once per problem: path is like "OrderPlaced.items[].sku". */
typedef void (*saga_compat_report_fn)(void *arg, const char *path, const char *problem);

/* Number of problems found (0: compatible); each is also passed to report (may be NULL). */
int saga_avro_compat_check(json_t *reader, json_t *writer, saga_compat_report_fn report, void *arg);

#endif
