#ifndef SHIPPING_RULES_H
#define SHIPPING_RULES_H
#endif
