#include "rules.h"

#include <string.h>

static const char *const good_tokens[] = {"tok_visa", "tok_mastercard", "tok_amex"};

pay_decision_t pay_decide(const char *token, int customer_found, int64_t credit_limit,
                          int64_t balance, int64_t amount)
{
    int good = 0;
    int64_t sum;

    if (token && strcmp(token, "tok_chargeDeclinedInsufficientFunds") == 0)
        return PAY_INSUFFICIENT_FUNDS;
    for (size_t i = 0; token && i < sizeof(good_tokens) / sizeof(good_tokens[0]); i++)
        good |= strcmp(token, good_tokens[i]) == 0;
    if (!good)
        return PAY_CARD_DECLINED; /* tok_chargeDeclined and every unknown token */
    if (!customer_found)
        return PAY_UNKNOWN_CUSTOMER;
    /* balance + amount > credit_limit, exactly: a sum past INT64_MAX exceeds any limit,
     * one below INT64_MIN none. */
    if (amount > 0 && balance > INT64_MAX - amount)
        return PAY_CREDIT_LIMIT_EXCEEDED;
    if (amount < 0 && balance < INT64_MIN - amount)
        return PAY_AUTHORIZE;
    sum = balance + amount;
    return sum > credit_limit ? PAY_CREDIT_LIMIT_EXCEEDED : PAY_AUTHORIZE;
}
