/*
 * libFuzzer target: untrusted configuration values into the parsers every
 * program runs at start (durations, host:port, the relay's RELAY_SOURCES, the
 * password masking of the URLs they print) and the W3C traceparent handling POST /orders applies to
 * a request header.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "relay_sources.h"
#include "saga/config.h"
#include "saga/trace.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *s = malloc(size + 1), host[64], err[512], tp[SAGA_TRACEPARENT_LEN + 1], trace[33];
    struct relay_sources src;
    int64_t ms;
    int port;

    if (!s)
        return 0;
    memcpy(s, data, size);
    s[size] = '\0';
    if (saga_parse_duration_ms(s, &ms) == SAGA_OK && ms < 0)
        abort();
    if (saga_parse_hostport(s, host, sizeof(host), &port) == SAGA_OK &&
        (port < 0 || port > 65535 || strlen(host) >= sizeof(host)))
        abort();
    if (relay_sources_parse(&src, s, err, sizeof(err)) == SAGA_OK)
        relay_sources_release(&src);
    {
        /* a small buffer holds the start of what a large one holds, terminated */
        char big[4096], small[24];
        saga_redact_url(s, big, sizeof(big));
        saga_redact_url(s, small, sizeof(small));
        if (strlen(big) < sizeof(big) - 1 && strncmp(small, big, strlen(small)) != 0)
            abort();
    }
    saga_traceparent_child(s, tp);
    if (!saga_traceparent_valid(tp))
        abort(); /* a child (or a new trace) is always valid */
    saga_traceparent_trace_id(s, trace);
    if (saga_traceparent_valid(s) && strncmp(trace, s + 3, 32) != 0)
        abort();
    free(s);
    return 0;
}
