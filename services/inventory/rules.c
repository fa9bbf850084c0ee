#include "rules.h"

#include <stdlib.h>
#include <string.h>

static int by_sku(const void *a, const void *b)
{
    return strcmp(((const struct saga_stock_line *)a)->sku,
                  ((const struct saga_stock_line *)b)->sku);
}

size_t inv_merge_lines(const struct saga_order_line *lines, size_t n, struct saga_stock_line *out)
{
    size_t m = 0;

    for (size_t i = 0; i < n; i++) {
        if (lines[i].quantity <= 0 || !lines[i].sku)
            return 0;
        out[m].sku = lines[i].sku;
        out[m].quantity = lines[i].quantity;
        m++;
    }
    if (!m)
        return 0;
    qsort(out, m, sizeof(*out), by_sku);
    size_t w = 0;
    for (size_t i = 1; i < m; i++) {
        if (strcmp(out[i].sku, out[w].sku) == 0) {
            if (out[w].quantity > INT32_MAX - out[i].quantity)
                return 0;
            out[w].quantity += out[i].quantity;
        } else {
            out[++w] = out[i];
        }
    }
    return w + 1;
}

inv_decision_t inv_decide(const struct saga_stock_line *lines, size_t n, const int64_t *available,
                          size_t *bad)
{
    for (size_t i = 0; i < n; i++) {
        if (available[i] < 0) {
            if (bad)
                *bad = i;
            return INV_REJECT_UNKNOWN_SKU;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (available[i] < lines[i].quantity) {
            if (bad)
                *bad = i;
            return INV_REJECT_OUT_OF_STOCK;
        }
    }
    return INV_RESERVE;
}
