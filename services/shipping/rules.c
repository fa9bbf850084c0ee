#include "rules.h"
#include "saga/hash.h"

#include <inttypes.h>
#include <stdint.h>
#include <stdio.h>

static int is_ascii_letter(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* NULL, empty, or only spaces, tabs and line breaks. */
static int blank(const char *s)
{
    if (!s)
        return 1;
    for (; *s; s++)
        if (*s != ' ' && *s != '\t' && *s != '\n' && *s != '\r')
            return 0;
    return 1;
}

ship_decision_t ship_decide(const char *country, const char *line1, const char *city,
                            const char *postal_code)
{
    if (country && (country[0] == 'A' || country[0] == 'a') &&
        (country[1] == 'Q' || country[1] == 'q') && country[2] == '\0')
        return SHIP_UNSUPPORTED_DESTINATION;
    if (!country || !is_ascii_letter(country[0]) || !is_ascii_letter(country[1]) ||
        country[2] != '\0')
        return SHIP_INVALID_ADDRESS;
    if (blank(line1) || blank(city) || blank(postal_code))
        return SHIP_INVALID_ADDRESS;
    return SHIP_SCHEDULE;
}

int ship_tracking_number(const char *shipment_id, char *out, size_t size)
{
    if (!shipment_id || !out || size < SHIP_TRACKING_SIZE)
        return -1;
    snprintf(out, size, "SP%010" PRIu64, saga_fnv1a64_str(shipment_id) % 10000000000u);
    return 0;
}
