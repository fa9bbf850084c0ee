#ifndef PAYMENT_RULES_H
#define PAYMENT_RULES_H
#endif
