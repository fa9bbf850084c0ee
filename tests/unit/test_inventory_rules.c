/* inventory-service's rules: merging lines by SKU, all-or-nothing reservations. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "rules.h"

static void test_merge_sorts_and_adds(void **state)
{
    struct saga_order_line in[4] = {
        {"sku-mug", 2, 899}, {"sku-book", 1, 1299}, {"sku-mug", 3, 899}, {"sku-apple", 1, 10}};
    struct saga_stock_line out[4];
    size_t n = inv_merge_lines(in, 4, out);
    (void)state;
    assert_int_equal(n, 3);
    assert_string_equal(out[0].sku, "sku-apple");
    assert_string_equal(out[1].sku, "sku-book");
    assert_string_equal(out[2].sku, "sku-mug");
    assert_int_equal(out[2].quantity, 5);
}

static void test_merge_refuses_bad_quantities(void **state)
{
    struct saga_order_line zero[1] = {{"sku-mug", 0, 899}};
    struct saga_order_line big[2] = {{"sku-mug", INT32_MAX, 1}, {"sku-mug", 1, 1}};
    struct saga_stock_line out[2];
    (void)state;
    assert_int_equal(inv_merge_lines(zero, 1, out), 0);
    assert_int_equal(inv_merge_lines(big, 2, out), 0);
    assert_int_equal(inv_merge_lines(zero, 0, out), 0);
}

static void test_decide_all_or_nothing(void **state)
{
    struct saga_stock_line lines[3] = {{"a", 2}, {"b", 5}, {"c", 1}};
    int64_t enough[3] = {2, 5, 100};
    int64_t short_b[3] = {2, 4, 100};
    int64_t unknown_c[3] = {2, 0, -1};
    size_t bad = 99;
    (void)state;
    assert_int_equal(inv_decide(lines, 3, enough, &bad), INV_RESERVE);
    assert_int_equal(inv_decide(lines, 3, short_b, &bad), INV_REJECT_OUT_OF_STOCK);
    assert_int_equal(bad, 1);
    /* An unknown SKU is reported before a shortage elsewhere. */
    assert_int_equal(inv_decide(lines, 3, unknown_c, &bad), INV_REJECT_UNKNOWN_SKU);
    assert_int_equal(bad, 2);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_merge_sorts_and_adds),
        cmocka_unit_test(test_merge_refuses_bad_quantities),
        cmocka_unit_test(test_decide_all_or_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
