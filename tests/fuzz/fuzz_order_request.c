/*
 * libFuzzer target: untrusted bodies into order-service's request parser
 * (order_parse_request: JSON, field rules, limits), its canonical form (the
 * Idempotency-Key hash input) and the header checks, as POST /orders runs them.
 */
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "rules.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct order_request o;
    struct order_errors errs;
    char err[256], *text;

    if (order_parse_request((const char *)data, size, &o, &errs, err, sizeof(err)) ==
        ORDER_PARSE_OK) {
        char *canon = order_request_canonical(&o);
        /* A valid order is complete: every required field set, quantities in range. */
        if (!canon || !o.customer_id || !o.currency || !o.payment_token || !o.nitems ||
            o.nitems > ORDER_MAX_ITEMS || !o.address.country)
            abort();
        for (size_t i = 0; i < o.nitems; i++)
            if (!o.items[i].sku || o.items[i].quantity < 1 ||
                o.items[i].quantity > ORDER_MAX_QUANTITY)
                abort();
        free(canon);
        order_request_release(&o);
    } else if (errs.n < 0 || errs.n > ORDER_MAX_FIELD_ERRORS) {
        abort();
    }
    /* The same bytes as header values. */
    if (!(text = malloc(size + 1)))
        return 0;
    memcpy(text, data, size);
    text[size] = '\0';
    (void)order_content_type_is_json(text);
    (void)order_idempotency_key_valid(text);
    (void)order_status_valid(text);
    free(text);
    return 0;
}
