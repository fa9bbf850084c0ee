/*
 * inventory-service's business rules, free of Kafka and PostgreSQL (unit-tested
 * in tests/unit/test_inventory_rules.c).
 */
#ifndef INVENTORY_RULES_H
#define INVENTORY_RULES_H

#include <stddef.h>
#include <stdint.h>

#include "saga/events.h"

/*
 * The order's lines merged by SKU (quantities added) and sorted by SKU, which is
 * the order stock rows are locked in: concurrent orders on the same SKUs then
 * never deadlock. out holds n entries; returns how many it filled, or 0 if a
 * quantity is not positive or a merged quantity overflows.
 */
size_t inv_merge_lines(const struct saga_order_line *lines, size_t n, struct saga_stock_line *out);

typedef enum {
    INV_RESERVE = 0,
    INV_REJECT_UNKNOWN_SKU,
    INV_REJECT_OUT_OF_STOCK,
} inv_decision_t;

/*
 * All lines or none: available[i] is the stock of lines[i].sku, or -1 when the
 * SKU is not stocked. *bad (if not NULL) gets the index of the first line at
 * fault.
 */
inv_decision_t inv_decide(const struct saga_stock_line *lines, size_t n, const int64_t *available,
                          size_t *bad);

#endif
