/*
 * libFuzzer target: untrusted bytes into saga_serde_decode, both framings.
 * Registry ids 1..13 are mapped to the shipped schemas (in event order, as
 * `sagactl schemas register` numbers them on an empty registry), so Confluent
 * framed input reaches the Avro decoder too.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "saga/serde.h"

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static struct saga_serde *s;
static struct saga_buf buf;

/* avro-c's values hold interior pointers LeakSanitizer does not follow: free them
 * before its exit-time check so only real leaks are reported. */
static void teardown(void)
{
    saga_serde_destroy(s);
    saga_buf_release(&buf);
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char err[512];
    if (saga_serde_new(&s, NULL, err, sizeof(err)) != SAGA_OK)
        abort();
    for (int t = 0; t < SAGA_EV_COUNT; t++) {
        const char *json = saga_serde_schema_json((saga_event_type_t)t);
        if (saga_serde_add_registry_schema(s, t + 1, json, strlen(json), err, sizeof(err)))
            abort();
    }
    atexit(teardown);
    return 0;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct saga_event ev = {0};
    char err[512];

    if (saga_serde_decode(s, data, size, &ev, err, sizeof(err)) == SAGA_DECODE_OK) {
        /* Whatever decodes must encode again: the decoder only hands out valid events. */
        if (saga_serde_encode(s, &ev, &buf, err, sizeof(err)) != SAGA_OK)
            abort();
    } else if (err[0] == '\0') {
        abort(); /* every refusal says why */
    }
    saga_event_release(&ev);
    return 0;
}
