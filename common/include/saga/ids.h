/*
 * Identifiers: random UUIDs (version 4) for events, orders, payments, and a
 * check for the UUID text form.
 */
#ifndef SAGA_IDS_H
#define SAGA_IDS_H

#include <stdint.h>

#include "saga/clock.h" /* saga_now_ms, for the callers that found it here */

#define SAGA_UUID_LEN 36

/* Writes a random UUID, lower-case, NUL-terminated, into out[37]. */
void saga_uuid4(char out[SAGA_UUID_LEN + 1]);

/* 1 if s is a UUID in 8-4-4-4-12 hex form (any case). */
int saga_uuid_valid(const char *s);

#endif
