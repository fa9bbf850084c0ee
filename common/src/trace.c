#include "saga/trace.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

static void random_hex(char *out, size_t nbytes)
{
    unsigned char b[16];
    size_t got = 0;
    static const char hex[] = "0123456789abcdef";

    for (;;) {
        got = 0;
        while (got < nbytes) {
            ssize_t n = getrandom(b + got, nbytes - got, 0);
            if (n <= 0)
                abort();
            got += (size_t)n;
        }
        for (size_t i = 0; i < nbytes; i++)
            if (b[i])
                goto nonzero;
    }
nonzero:
    for (size_t i = 0; i < nbytes; i++) {
        out[2 * i] = hex[b[i] >> 4];
        out[2 * i + 1] = hex[b[i] & 15];
    }
    out[2 * nbytes] = '\0';
}

static int hex_run(const char *s, size_t n, int *all_zero)
{
    *all_zero = 1;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f')))
            return 0;
        if (c != '0')
            *all_zero = 0;
    }
    return 1;
}

int saga_traceparent_valid(const char *s)
{
    int z1, z2, z3;
    if (!s || strlen(s) != SAGA_TRACEPARENT_LEN || strncmp(s, "00-", 3) != 0 || s[35] != '-' ||
        s[52] != '-')
        return 0;
    return hex_run(s + 3, 32, &z1) && !z1 && hex_run(s + 36, 16, &z2) && !z2 &&
           hex_run(s + 53, 2, &z3);
}

void saga_traceparent_new(char out[SAGA_TRACEPARENT_LEN + 1])
{
    char trace[33], span[17];
    random_hex(trace, 16);
    random_hex(span, 8);
    snprintf(out, SAGA_TRACEPARENT_LEN + 1, "00-%s-%s-01", trace, span);
}

void saga_traceparent_child(const char *parent, char out[SAGA_TRACEPARENT_LEN + 1])
{
    char span[17];
    if (!saga_traceparent_valid(parent)) {
        saga_traceparent_new(out);
        return;
    }
    random_hex(span, 8);
    snprintf(out, SAGA_TRACEPARENT_LEN + 1, "00-%.32s-%s-%.2s", parent + 3, span, parent + 53);
}

void saga_traceparent_trace_id(const char *tp, char out[33])
{
    if (!saga_traceparent_valid(tp)) {
        out[0] = '\0';
        return;
    }
    memcpy(out, tp + 3, 32);
    out[32] = '\0';
}
