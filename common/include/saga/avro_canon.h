/*
 * Avro schema identity: the Parsing Canonical Form and the CRC-64-AVRO (Rabin)
 * fingerprint of the Avro specification ("Schema Fingerprints"), which avro-c
 * 1.11 does not provide. Single-object encoding names its writer schema by this
 * fingerprint, so it must agree with every other implementation byte for byte.
 */
#ifndef SAGA_AVRO_CANON_H
#define SAGA_AVRO_CANON_H

#include <stddef.h>
#include <stdint.h>

#include "saga/err.h"

/*
 * The Parsing Canonical Form of the schema in json (len bytes): fullnames,
 * only the attributes that matter for parsing, in the specified order, no
 * whitespace. Primitive schemas take their simple form even with a logicalType
 * (as the Java reference implementation does). Returns a malloc'ed string, or
 * NULL with the cause in errstr.
 */
char *saga_avro_canonical_form(const char *json, size_t len, char *errstr, size_t errstr_size);

/* 1 if name is one of Avro's primitive type names ("int", "string", ...). */
int saga_avro_is_primitive(const char *name);

/* The fullname of name in namespace ns (either may be NULL or ""), malloc'ed. */
char *saga_avro_fullname(const char *name, const char *ns);

/* CRC-64-AVRO fingerprint of data (normally a canonical form). */
uint64_t saga_avro_fingerprint64(const void *data, size_t len);

#endif
