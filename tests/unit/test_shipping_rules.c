#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "rules.h"

static void test_served_country(void **state)
{
    (void)state;
    assert_int_equal(ship_decide("DE", "Hauptstr. 1", "Berlin", "10115"), SHIP_SCHEDULE);
    assert_int_equal(ship_decide("us", "1 Main St", "Springfield", "12345"), SHIP_SCHEDULE);
    assert_int_equal(ship_decide("Gb", "1 High St", "London", "SW1A 1AA"), SHIP_SCHEDULE);
}

static void test_antarctica_not_served(void **state)
{
    (void)state;
    assert_int_equal(ship_decide("AQ", "1 Ice Shelf", "McMurdo", "0000"),
                     SHIP_UNSUPPORTED_DESTINATION);
    assert_int_equal(ship_decide("aq", "1 Ice Shelf", "McMurdo", "0000"),
                     SHIP_UNSUPPORTED_DESTINATION);
    assert_int_equal(ship_decide("Aq", "1 Ice Shelf", "McMurdo", "0000"),
                     SHIP_UNSUPPORTED_DESTINATION);
    /* the destination is checked before the rest of the address */
    assert_int_equal(ship_decide("AQ", "", NULL, ""), SHIP_UNSUPPORTED_DESTINATION);
    assert_int_equal(ship_failure(SHIP_UNSUPPORTED_DESTINATION),
                     SAGA_SHIPFAIL_UNSUPPORTED_DESTINATION);
    assert_string_equal(saga_shipment_failure_names[ship_failure(SHIP_UNSUPPORTED_DESTINATION)],
                        "UNSUPPORTED_DESTINATION");
}

static void test_invalid_country(void **state)
{
    (void)state;
    const char *bad[] = {"", "D", "DEU", "D1", "12", "A Q", "AQ ", " AQ", "\xc3\x84X"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(ship_decide(bad[i], "1 Main St", "Springfield", "12345"),
                         SHIP_INVALID_ADDRESS);
    assert_int_equal(ship_decide(NULL, "1 Main St", "Springfield", "12345"), SHIP_INVALID_ADDRESS);
    assert_int_equal(ship_failure(SHIP_INVALID_ADDRESS), SAGA_SHIPFAIL_INVALID_ADDRESS);
}

static void test_missing_address_parts(void **state)
{
    (void)state;
    assert_int_equal(ship_decide("DE", "", "Berlin", "10115"), SHIP_INVALID_ADDRESS);
    assert_int_equal(ship_decide("DE", NULL, "Berlin", "10115"), SHIP_INVALID_ADDRESS);
    assert_int_equal(ship_decide("DE", "Hauptstr. 1", "", "10115"), SHIP_INVALID_ADDRESS);
    assert_int_equal(ship_decide("DE", "Hauptstr. 1", "  ", "10115"), SHIP_INVALID_ADDRESS);
    assert_int_equal(ship_decide("DE", "Hauptstr. 1", "Berlin", ""), SHIP_INVALID_ADDRESS);
    assert_int_equal(ship_decide("DE", "Hauptstr. 1", "Berlin", NULL), SHIP_INVALID_ADDRESS);
}

static void check_format(const char *t)
{
    assert_int_equal(strlen(t), 12);
    assert_memory_equal(t, "SP", 2);
    for (size_t i = 2; i < 12; i++)
        assert_true(t[i] >= '0' && t[i] <= '9');
}

static void test_tracking_number(void **state)
{
    char a[SHIP_TRACKING_SIZE], b[SHIP_TRACKING_SIZE], c[SHIP_TRACKING_SIZE];
    char big[64];
    (void)state;

    assert_int_equal(ship_tracking_number("0b0c6a52-9f0e-4c1e-8d5e-2b7f4f3b9a10", a, sizeof(a)), 0);
    check_format(a);
    /* deterministic */
    assert_int_equal(ship_tracking_number("0b0c6a52-9f0e-4c1e-8d5e-2b7f4f3b9a10", b, sizeof(b)), 0);
    assert_string_equal(a, b);
    /* another id, another number */
    assert_int_equal(ship_tracking_number("0b0c6a52-9f0e-4c1e-8d5e-2b7f4f3b9a11", c, sizeof(c)), 0);
    check_format(c);
    assert_string_not_equal(a, c);
    /* FNV-1a 64 of "" is its offset basis 14695981039346656037, mod 10^10 */
    assert_int_equal(ship_tracking_number("", big, sizeof(big)), 0);
    assert_string_equal(big, "SP9346656037");
    /* FNV-1a 64 of "a" is 0xaf63dc4c8601ec8c = 12638187200555641996: zero-padded digits */
    assert_int_equal(ship_tracking_number("a", big, sizeof(big)), 0);
    assert_string_equal(big, "SP0555641996");
}

static void test_tracking_number_bad_args(void **state)
{
    char small[SHIP_TRACKING_SIZE - 1] = "untouched";
    char out[SHIP_TRACKING_SIZE];
    (void)state;

    assert_int_equal(ship_tracking_number("x", small, sizeof(small)), -1);
    assert_string_equal(small, "untouched");
    assert_int_equal(ship_tracking_number(NULL, out, sizeof(out)), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_served_country),  cmocka_unit_test(test_antarctica_not_served),
        cmocka_unit_test(test_invalid_country), cmocka_unit_test(test_missing_address_parts),
        cmocka_unit_test(test_tracking_number), cmocka_unit_test(test_tracking_number_bad_args),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
