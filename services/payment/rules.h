/*
 * payment-service's business rules, free of Kafka and PostgreSQL (unit-tested
 * in tests/unit/test_payment_rules.c).
 */
#ifndef PAYMENT_RULES_H
#define PAYMENT_RULES_H

#include <stdint.h>

#include "saga/events.h"

/*
 * What to do with an order's payment. A failure's value is its
 * saga_payment_failure_t (PaymentFailed's reason); PAY_AUTHORIZE is 0.
 */
typedef enum {
    PAY_AUTHORIZE = SAGA_PAYFAIL_UNKNOWN,
    PAY_CARD_DECLINED = SAGA_PAYFAIL_CARD_DECLINED,
    PAY_INSUFFICIENT_FUNDS = SAGA_PAYFAIL_INSUFFICIENT_FUNDS,
    PAY_CREDIT_LIMIT_EXCEEDED = SAGA_PAYFAIL_CREDIT_LIMIT_EXCEEDED,
    PAY_UNKNOWN_CUSTOMER = SAGA_PAYFAIL_UNKNOWN_CUSTOMER,
} pay_decision_t;

/*
 * The test-card rules (README): "tok_visa", "tok_mastercard" and "tok_amex" are
 * good; "tok_chargeDeclinedInsufficientFunds" fails with INSUFFICIENT_FUNDS; any
 * other token (or none) with CARD_DECLINED. Then a customer that does not exist
 * fails with UNKNOWN_CUSTOMER, and one whose outstanding balance plus amount
 * would exceed its credit limit with CREDIT_LIMIT_EXCEEDED (exactly at the limit
 * is authorized; no overflow for any int64 values). credit_limit and balance are
 * ignored when customer_found is 0.
 */
pay_decision_t pay_decide(const char *token, int customer_found, int64_t credit_limit,
                          int64_t balance, int64_t amount);

/* The failure to report for a decision other than PAY_AUTHORIZE. */
static inline saga_payment_failure_t pay_failure(pay_decision_t d)
{
    return (saga_payment_failure_t)d;
}

#endif
