#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "saga/topology.h"

static void test_topics_match_the_brief(void **state)
{
    const char *expected[] = {"orders",        "inventory",       "payments",      "shipping",
                              "notifications", "order.dlq",       "inventory.dlq", "payment.dlq",
                              "shipping.dlq",  "notification.dlq"};
    const char *names[16];
    int n = saga_topics_all(names, 16);

    assert_int_equal(n, 10);
    for (int i = 0; i < n; i++)
        assert_string_equal(names[i], expected[i]);
    /* A short buffer is never overrun and the full count is still reported. */
    assert_int_equal(saga_topics_all(names, 3), 10);
}

static void test_find_by_name_or_program(void **state)
{
    const struct saga_service_info *s = saga_service_find("payment");
    assert_non_null(s);
    assert_string_equal(s->topic, "payments");
    assert_string_equal(s->group, "payment-service");
    assert_string_equal(s->database, "payment_service");
    assert_ptr_equal(saga_service_find("payment-service"), s);
    assert_null(saga_service_find("billing"));
    assert_null(saga_service_find(NULL));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_topics_match_the_brief),
        cmocka_unit_test(test_find_by_name_or_program),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
