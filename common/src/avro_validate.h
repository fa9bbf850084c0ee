/*
 * Internal: checks that untrusted bytes are exactly one well-formed datum of a
 * schema before avro-c 1.11 reads them. avro-c trusts lengths and counts it
 * reads (a crafted length makes it allocate gigabytes) and does not check
 * UTF-8; this walk allocates nothing and bounds everything by the input size.
 *
 * The schema is compiled once into a small tree (saga_vprog) so that checking a
 * message costs no avro-c schema lookups.
 */
#ifndef SAGA_AVRO_VALIDATE_H
#define SAGA_AVRO_VALIDATE_H

#include <stddef.h>

#include <avro.h>

#include "saga/serde.h"

/* Limits on what one message may hold. */
#define SAGA_AVRO_MAX_DEPTH 32
#define SAGA_AVRO_MAX_ITEMS 100000 /* array items and map entries, summed */

struct saga_vprog;

/* Compiles schema; NULL on allocation failure or an unsupported schema. */
struct saga_vprog *saga_vprog_new(avro_schema_t schema);
void saga_vprog_free(struct saga_vprog *p);

/* SAGA_DECODE_OK, or why not; *where gets the byte offset of the problem. */
saga_decode_err_t saga_avro_validate(const struct saga_vprog *p, const unsigned char *data,
                                     size_t len, size_t *where);

#endif
