/*
 * Internal: how each event struct of saga/events.h maps onto its Avro record.
 * The serde walks these tables to fill avro-c values from structs (encode) and
 * to project a writer's values onto structs by field name (decode), which is
 * what makes schema evolution work. saga_event_desc_bind() checks at start-up
 * that every table agrees with the schema the binary ships.
 */
#ifndef SAGA_EVENT_DESC_H
#define SAGA_EVENT_DESC_H

#include <stddef.h>

#include <jansson.h>

#include "saga/events.h"

enum saga_fkind {
    FK_STRING,     /* const char * (required) */
    FK_OPT_STRING, /* const char * or NULL: ["null","string"] */
    FK_INT,        /* int32_t */
    FK_LONG,       /* int64_t */
    FK_ENUM,       /* a C enum (int) */
    FK_RECORD,     /* a nested struct */
    FK_ARRAY,      /* T *items at off, size_t count at count_off */
};

struct saga_enum_desc {
    const char *name; /* Avro enum name, e.g. "CancelReason" */
    int nsymbols;
    const char *const *symbols;
    int default_index; /* from the schema's "default"; -1 if none (set by bind) */
};

struct saga_record_desc;

struct saga_field_desc {
    const char *name;
    enum saga_fkind kind;
    size_t off;                   /* from the record's base */
    struct saga_record_desc *rec; /* FK_RECORD, FK_ARRAY element */
    struct saga_enum_desc *en;    /* FK_ENUM */
    size_t count_off;             /* FK_ARRAY */
    json_t *def;                  /* the reader schema's default, or NULL (set by bind) */
};

struct saga_record_desc {
    const char *name; /* Avro record name */
    size_t size;      /* of the C struct (array elements) */
    int nfields;
    struct saga_field_desc *fields;
};

/* The record of each event type; its base pointer is the struct saga_event. */
extern struct saga_record_desc *const saga_event_descs[SAGA_EV_COUNT];

/*
 * Checks desc against the reader schema (parsed JSON) field by field — same
 * names in the same order, matching kinds, enum symbols equal — and records the
 * schema's defaults in desc. Returns 0, or -1 with the first mismatch in errstr.
 */
int saga_event_desc_bind(struct saga_record_desc *desc, json_t *schema, char *errstr,
                         size_t errstr_size);

#endif
