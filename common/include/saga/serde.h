/*
 * Encoding and decoding of saga events (saga/events.h) with avro-c.
 *
 * Framing (docs/EVENTS.md, docs/SCHEMA-EVOLUTION.md), chosen at creation and both accepted
 * on decode:
 *   - single-object encoding (no registry, the embedded default):
 *       C3 01 | 8-byte little-endian CRC-64-AVRO fingerprint | Avro binary
 *   - Confluent wire format (a schema registry is configured):
 *       00 | 4-byte big-endian schema id | Avro binary
 *
 * Decoding reads with the writer's schema and projects the result onto the
 * reader's struct by field name: fields the writer lacks take the reader
 * schema's defaults, fields the reader lacks are skipped, enum symbols the
 * reader does not know become the enum's default, int widens to long. Untrusted
 * bytes are checked completely before avro-c sees them.
 *
 * A serde is not thread-safe: use one per thread. The registry it may share is.
 */
#ifndef SAGA_SERDE_H
#define SAGA_SERDE_H

#include <stddef.h>
#include <stdint.h>

#include "saga/err.h"
#include "saga/events.h"

struct saga_registry;
struct saga_serde;

/* Why a decode failed. Every code but REGISTRY_UNAVAILABLE is permanent for those bytes. */
typedef enum saga_decode_err {
    SAGA_DECODE_OK = 0,
    SAGA_DECODE_EMPTY,                /* no bytes at all */
    SAGA_DECODE_BAD_MAGIC,            /* neither C3 01 nor 00 framing */
    SAGA_DECODE_TRUNCATED,            /* the bytes end inside the framing or a value */
    SAGA_DECODE_UNKNOWN_FINGERPRINT,  /* single-object: no known schema has that fingerprint */
    SAGA_DECODE_UNKNOWN_SCHEMA_ID,    /* registry framing: the id is unknown (or no registry) */
    SAGA_DECODE_REGISTRY_UNAVAILABLE, /* transient: the registry could not be asked */
    SAGA_DECODE_BAD_SCHEMA,           /* the writer schema itself could not be parsed */
    SAGA_DECODE_NOT_AN_EVENT,         /* the writer schema is not one of the saga's events */
    SAGA_DECODE_INCOMPATIBLE,         /* the writer schema cannot be read as the reader's */
    SAGA_DECODE_BAD_VARINT,           /* a varint longer than 10 bytes, or an int out of range */
    SAGA_DECODE_BAD_LENGTH,           /* a negative length, or one larger than the message */
    SAGA_DECODE_BAD_UTF8,             /* a string that is not UTF-8, or holds NUL */
    SAGA_DECODE_BAD_UNION,            /* a union branch index out of range */
    SAGA_DECODE_BAD_ENUM,             /* an enum index out of range (or unknown, no default) */
    SAGA_DECODE_BAD_VALUE,            /* another malformed value (a boolean not 0 or 1) */
    SAGA_DECODE_TOO_LARGE,            /* more array items or nesting than allowed */
    SAGA_DECODE_TRAILING_BYTES,       /* bytes left over after the value */
    SAGA_DECODE_NOMEM,                /* out of memory */
} saga_decode_err_t;

/* "truncated" etc.; never NULL. */
const char *saga_decode_err2str(saga_decode_err_t err);
/* The saga_err_t class of a decode error: TRANSIENT, PERMANENT or NOMEM. */
saga_err_t saga_decode_err_class(saga_decode_err_t err);

struct saga_serde_conf {
    /* Confluent framing through this registry when set (not owned, must outlive the serde);
     * NULL: single-object framing. */
    struct saga_registry *registry;
};

/*
 * A new serde knowing the schemas the binary ships (those in schemas/ and the
 * released versions under schemas/released/). Fails only if those do not parse
 * or do not match saga/events.h, which is a build error.
 */
saga_err_t saga_serde_new(struct saga_serde **out, const struct saga_serde_conf *conf, char *errstr,
                          size_t errstr_size);
void saga_serde_destroy(struct saga_serde *s);

/*
 * Makes another writer schema known for single-object decoding, e.g. a newer
 * version of an event this binary predates (SAGA_SCHEMA_DIR does this at start).
 */
saga_err_t saga_serde_add_schema(struct saga_serde *s, const char *json, size_t len, char *errstr,
                                 size_t errstr_size);
/*
 * Makes json known as registry schema id without asking a registry: for tools and
 * tests that already hold the id-to-schema mapping (an exported registry, a fuzzer).
 */
saga_err_t saga_serde_add_registry_schema(struct saga_serde *s, int32_t id, const char *json,
                                          size_t len, char *errstr, size_t errstr_size);

/*
 * The serde a program runs with, from its configuration: Confluent framing through
 * a registry when registry_url is set (the registry is created and returned in
 * *registry, to destroy after the serde), single-object framing when it is NULL;
 * and every *.avsc of schema_dir, when set, as extra known writer schemas.
 */
saga_err_t saga_serde_open(const char *registry_url, const char *schema_dir,
                           struct saga_serde **out, struct saga_registry **registry, char *errstr,
                           size_t errstr_size);

/* Adds every *.avsc file in dir; returns how many, or -1 with errstr. */
int saga_serde_add_schema_dir(struct saga_serde *s, const char *dir, char *errstr,
                              size_t errstr_size);

/* A growable output buffer; release with saga_buf_release. */
struct saga_buf {
    unsigned char *data;
    size_t len, cap;
};
void saga_buf_release(struct saga_buf *b);

/*
 * Encodes ev (framing included) into out, replacing its contents. Fails with
 * SAGA_ERR_INVALID (errstr names the field) for a NULL required string, a string
 * that is not UTF-8, an enum out of range; with SAGA_ERR_TRANSIENT when a
 * registry is configured and the schema could not be registered yet.
 */
saga_err_t saga_serde_encode(struct saga_serde *s, const struct saga_event *ev,
                             struct saga_buf *out, char *errstr, size_t errstr_size);

/*
 * Decodes data into ev (which the caller later releases with saga_event_release;
 * it may be reused across calls). On failure ev is released and errstr says what
 * and where.
 */
saga_decode_err_t saga_serde_decode(struct saga_serde *s, const void *data, size_t len,
                                    struct saga_event *ev, char *errstr, size_t errstr_size);

/* The fingerprint and canonical form of the schema this binary writes for type. */
uint64_t saga_serde_fingerprint(const struct saga_serde *s, saga_event_type_t type);
const char *saga_serde_canonical_form(const struct saga_serde *s, saga_event_type_t type);
/* The full schema text (with docs) shipped for type. */
const char *saga_serde_schema_json(saga_event_type_t type);

#endif
