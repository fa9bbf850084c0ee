#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "rules.h"

#define AMPLE 100000000000LL

static void test_good_tokens(void **state)
{
    (void)state;
    assert_int_equal(pay_decide("tok_visa", 1, AMPLE, 0, 1999), PAY_AUTHORIZE);
    assert_int_equal(pay_decide("tok_mastercard", 1, AMPLE, 0, 1999), PAY_AUTHORIZE);
    assert_int_equal(pay_decide("tok_amex", 1, AMPLE, 0, 1999), PAY_AUTHORIZE);
    assert_int_equal(pay_decide("tok_visa", 1, AMPLE, 0, 0), PAY_AUTHORIZE);
}

static void test_declined_tokens(void **state)
{
    (void)state;
    assert_int_equal(pay_decide("tok_chargeDeclined", 1, AMPLE, 0, 1999), PAY_CARD_DECLINED);
    assert_int_equal(pay_decide("tok_chargeDeclinedInsufficientFunds", 1, AMPLE, 0, 1999),
                     PAY_INSUFFICIENT_FUNDS);
    /* any other token, near misses included, and none */
    assert_int_equal(pay_decide("tok_discover", 1, AMPLE, 0, 1999), PAY_CARD_DECLINED);
    assert_int_equal(pay_decide("TOK_VISA", 1, AMPLE, 0, 1999), PAY_CARD_DECLINED);
    assert_int_equal(pay_decide("tok_visa ", 1, AMPLE, 0, 1999), PAY_CARD_DECLINED);
    assert_int_equal(pay_decide("tok_vis", 1, AMPLE, 0, 1999), PAY_CARD_DECLINED);
    assert_int_equal(pay_decide("", 1, AMPLE, 0, 1999), PAY_CARD_DECLINED);
    assert_int_equal(pay_decide(NULL, 1, AMPLE, 0, 1999), PAY_CARD_DECLINED);
}

static void test_failures_are_payment_failure_reasons(void **state)
{
    (void)state;
    assert_int_equal(pay_failure(PAY_CARD_DECLINED), SAGA_PAYFAIL_CARD_DECLINED);
    assert_int_equal(pay_failure(PAY_INSUFFICIENT_FUNDS), SAGA_PAYFAIL_INSUFFICIENT_FUNDS);
    assert_int_equal(pay_failure(PAY_CREDIT_LIMIT_EXCEEDED), SAGA_PAYFAIL_CREDIT_LIMIT_EXCEEDED);
    assert_int_equal(pay_failure(PAY_UNKNOWN_CUSTOMER), SAGA_PAYFAIL_UNKNOWN_CUSTOMER);
    assert_string_equal(saga_payment_failure_names[pay_failure(PAY_CREDIT_LIMIT_EXCEEDED)],
                        "CREDIT_LIMIT_EXCEEDED");
}

static void test_token_checked_before_customer(void **state)
{
    (void)state;
    assert_int_equal(pay_decide("tok_chargeDeclined", 0, 0, 0, 1999), PAY_CARD_DECLINED);
    assert_int_equal(pay_decide("tok_chargeDeclinedInsufficientFunds", 0, 0, 0, 1999),
                     PAY_INSUFFICIENT_FUNDS);
    assert_int_equal(pay_decide("tok_bogus", 1, 5000, 0, 999999), PAY_CARD_DECLINED);
}

static void test_unknown_customer(void **state)
{
    (void)state;
    assert_int_equal(pay_decide("tok_visa", 0, 0, 0, 1999), PAY_UNKNOWN_CUSTOMER);
    /* checked before the limit; limit and balance are ignored */
    assert_int_equal(pay_decide("tok_amex", 0, 0, 0, INT64_MAX), PAY_UNKNOWN_CUSTOMER);
}

static void test_credit_limit(void **state)
{
    (void)state;
    /* cust-frugal: 50.00 */
    assert_int_equal(pay_decide("tok_visa", 1, 5000, 0, 5000), PAY_AUTHORIZE);
    assert_int_equal(pay_decide("tok_visa", 1, 5000, 0, 5001), PAY_CREDIT_LIMIT_EXCEEDED);
    /* the balance counts */
    assert_int_equal(pay_decide("tok_visa", 1, 5000, 3000, 2000), PAY_AUTHORIZE);
    assert_int_equal(pay_decide("tok_visa", 1, 5000, 3000, 2001), PAY_CREDIT_LIMIT_EXCEEDED);
    assert_int_equal(pay_decide("tok_visa", 1, 5000, 5000, 0), PAY_AUTHORIZE);
    assert_int_equal(pay_decide("tok_visa", 1, 5000, 5000, 1), PAY_CREDIT_LIMIT_EXCEEDED);
    assert_int_equal(pay_decide("tok_visa", 1, 0, 0, 1), PAY_CREDIT_LIMIT_EXCEEDED);
}

static void test_overflow(void **state)
{
    (void)state;
    /* balance + amount wraps past INT64_MAX: over any limit, never authorized */
    assert_int_equal(pay_decide("tok_visa", 1, INT64_MAX, INT64_MAX, 1), PAY_CREDIT_LIMIT_EXCEEDED);
    assert_int_equal(pay_decide("tok_visa", 1, INT64_MAX, 1, INT64_MAX), PAY_CREDIT_LIMIT_EXCEEDED);
    assert_int_equal(pay_decide("tok_visa", 1, INT64_MAX, INT64_MAX, INT64_MAX),
                     PAY_CREDIT_LIMIT_EXCEEDED);
    assert_int_equal(pay_decide("tok_visa", 1, AMPLE, AMPLE, INT64_MAX), PAY_CREDIT_LIMIT_EXCEEDED);
    /* exactly INT64_MAX is at the limit */
    assert_int_equal(pay_decide("tok_visa", 1, INT64_MAX, INT64_MAX - 1, 1), PAY_AUTHORIZE);
    assert_int_equal(pay_decide("tok_visa", 1, INT64_MAX, 0, INT64_MAX), PAY_AUTHORIZE);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_tokens),
        cmocka_unit_test(test_declined_tokens),
        cmocka_unit_test(test_failures_are_payment_failure_reasons),
        cmocka_unit_test(test_token_checked_before_customer),
        cmocka_unit_test(test_unknown_customer),
        cmocka_unit_test(test_credit_limit),
        cmocka_unit_test(test_overflow),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
