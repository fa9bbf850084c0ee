/*
 * The choreography declared once (saga/choreography.h): what restates it elsewhere agrees
 * with it (the topology's inputs and events, hence the subscriptions and the ACL plan), what
 * a saga is said to wait for, and the timeline check the e2e suite runs, shown to catch an
 * event no step allows and a compensation without its step.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "saga/choreography.h"
#include "saga/topology.h"

static int has(const char *const *list, int n, const char *s)
{
    for (int i = 0; i < n; i++)
        if (!strcmp(list[i], s))
            return 1;
    return 0;
}

/* Each service's consumer group reads the topics of the events it consumes, and nothing
 * else (docs/REPLACING-A-SERVICE.md), and the ACL plan lets it read exactly those. */
static void test_inputs_and_acls_follow_the_declaration(void **state)
{
    static const char *const want[SAGA_SERVICE_COUNT][SAGA_SERVICE_COUNT + 1] = {
        {"orders", "inventory", "payments", "shipping", "notifications", NULL},
        {"orders", "payments", NULL},
        {"orders", "inventory", NULL},
        {"orders", "payments", NULL},
        {"orders", NULL},
    };
    struct saga_acl acl[128];
    int nacl = saga_acls_needed(acl, 128);
    (void)state;
    assert_true(nacl <= 128);
    for (int s = 0; s < SAGA_SERVICE_COUNT; s++) {
        const struct saga_service_info *info = &saga_services[s];
        const char *in[SAGA_SERVICE_COUNT];
        int n = saga_choreo_inputs(info->name, in, SAGA_SERVICE_COUNT), reads = 0;
        for (int i = 0; i < n; i++)
            if (!want[s][i] || strcmp(in[i], want[s][i]))
                fail_msg("%s reads %s, expected %s", info->program, in[i],
                         want[s][i] ? want[s][i] : "nothing more");
        assert_null(want[s][n]);
        for (int a = 0; a < nacl; a++)
            if (!strcmp(acl[a].program, info->program) && acl[a].resource == SAGA_ACL_TOPIC &&
                acl[a].operation == SAGA_ACL_READ) {
                assert_true(has(in, n, acl[a].name));
                reads++;
            }
        assert_int_equal(reads, n);
        /* What it may emit is exactly what it publishes on its topic. */
        if (saga_choreo_emits(info->name) != info->events)
            fail_msg("%s: topology.h's events %#x, the choreography's %#x", info->program,
                     info->events, saga_choreo_emits(info->name));
    }
}

static void test_every_reaction_is_well_formed(void **state)
{
    (void)state;
    for (size_t i = 0; i < saga_nreactions; i++) {
        const struct saga_reaction *r = &saga_reactions[i];
        assert_non_null(saga_service_find(r->service));
        assert_true(r->on <= SAGA_EV_COUNT);
        assert_int_equal(r->success & r->failure, 0);
        assert_non_null(r->does);
        /* It consumes someone else's event; the order-service also reads back its own
         * OrderCancelled (services/order/main.c says why). */
        if (!r->origin) {
            int own = (saga_service_find(r->service)->events & SAGA_EV_BIT(r->on)) != 0;
            assert_true(r->on < SAGA_EV_COUNT);
            assert_true(!own || r->on == SAGA_EV_ORDER_CANCELLED);
        }
    }
    for (size_t i = 0; i < saga_ncompensations; i++) {
        /* A compensation is emitted by the service that did its step. */
        for (int s = 0; s < SAGA_SERVICE_COUNT; s++)
            assert_int_equal(!!(saga_services[s].events & SAGA_EV_BIT(saga_compensations[i].undo)),
                             !!(saga_services[s].events & SAGA_EV_BIT(saga_compensations[i].step)));
    }
    assert_int_equal(saga_choreo_undoes(SAGA_EV_PAYMENT_REFUNDED), SAGA_EV_PAYMENT_AUTHORIZED);
    assert_int_equal(saga_choreo_undoes(SAGA_EV_INVENTORY_RELEASED), SAGA_EV_INVENTORY_RESERVED);
    assert_int_equal(saga_choreo_undoes(SAGA_EV_SHIPMENT_CANCELLED), SAGA_EV_SHIPMENT_SCHEDULED);
    assert_int_equal(saga_choreo_undoes(SAGA_EV_ORDER_CANCELLED), SAGA_EV_COUNT);
}

/* The expectations as text, joined by "; ". */
static const char *expected(const char *status, const saga_event_type_t *types, int ntypes)
{
    static char out[1024];
    struct saga_expectation x[16];
    int seen[SAGA_EV_COUNT] = {0}, n;
    size_t len = 0;

    for (int i = 0; i < ntypes; i++)
        seen[types[i]]++;
    n = saga_choreo_expected(status, seen, x, 16);
    assert_true(n <= 16);
    out[0] = '\0';
    for (int i = 0; i < n; i++) {
        char one[200];
        saga_choreo_expectation_text(&x[i], one, sizeof(one));
        len += (size_t)snprintf(out + len, sizeof(out) - len, "%s%s", i ? "; " : "", one);
    }
    return out;
}

#define EXPECT(status, want, ...)                                                                  \
    do {                                                                                           \
        const saga_event_type_t t_[] = {__VA_ARGS__};                                              \
        assert_string_equal(expected(status, t_, (int)(sizeof(t_) / sizeof(t_[0]))), want);        \
    } while (0)

static void test_what_a_saga_waits_for(void **state)
{
    (void)state;
    EXPECT("PENDING", "inventory-service: InventoryReserved or InventoryRejected",
           SAGA_EV_ORDER_PLACED);
    EXPECT("PENDING", "payment-service: PaymentAuthorized or PaymentFailed", SAGA_EV_ORDER_PLACED,
           SAGA_EV_INVENTORY_RESERVED);
    EXPECT("PENDING", "shipping-service: ShipmentScheduled or ShipmentFailed", SAGA_EV_ORDER_PLACED,
           SAGA_EV_INVENTORY_RESERVED, SAGA_EV_PAYMENT_AUTHORIZED);
    EXPECT("PENDING", "order-service: OrderConfirmed", SAGA_EV_ORDER_PLACED,
           SAGA_EV_INVENTORY_RESERVED, SAGA_EV_PAYMENT_AUTHORIZED, SAGA_EV_SHIPMENT_SCHEDULED);
    /* A declined payment: the order cancels, the inventory releases (one each). */
    EXPECT("PENDING", "order-service: OrderCancelled; inventory-service: InventoryReleased",
           SAGA_EV_ORDER_PLACED, SAGA_EV_INVENTORY_RESERVED, SAGA_EV_PAYMENT_FAILED);
    /* Timed out while payment-service was away: only the reservation is undone, the payment
     * (which may never come now) is owed by nobody, the customer is told. */
    EXPECT("CANCELLED",
           "inventory-service: InventoryReleased; notification-service: NotificationSent",
           SAGA_EV_ORDER_PLACED, SAGA_EV_INVENTORY_RESERVED, SAGA_EV_ORDER_CANCELLED);
    /* Cancelled after the charge and the shipment: all three undone, then nothing. */
    EXPECT("CANCELLED",
           "inventory-service: InventoryReleased; payment-service: PaymentRefunded; "
           "shipping-service: ShipmentCancelled; notification-service: NotificationSent",
           SAGA_EV_ORDER_PLACED, SAGA_EV_INVENTORY_RESERVED, SAGA_EV_PAYMENT_AUTHORIZED,
           SAGA_EV_SHIPMENT_SCHEDULED, SAGA_EV_ORDER_CANCELLED);
    EXPECT("CANCELLED", "", SAGA_EV_ORDER_PLACED, SAGA_EV_INVENTORY_REJECTED,
           SAGA_EV_ORDER_CANCELLED, SAGA_EV_NOTIFICATION_SENT);
    EXPECT("CONFIRMED", "notification-service: NotificationSent", SAGA_EV_ORDER_PLACED,
           SAGA_EV_INVENTORY_RESERVED, SAGA_EV_PAYMENT_AUTHORIZED, SAGA_EV_SHIPMENT_SCHEDULED,
           SAGA_EV_ORDER_CONFIRMED);
}

#define TL(type, service, id, cause)                                                               \
    {                                                                                              \
        type, service, id, cause                                                                   \
    }

static void test_timeline_check_passes_real_sagas(void **state)
{
    const struct saga_tl_event happy[] = {
        TL("OrderPlaced", "order-service", "e1", NULL),
        TL("InventoryReserved", "inventory-service", "e2", "e1"),
        TL("PaymentAuthorized", "payment-service", "e3", "e2"),
        TL("ShipmentScheduled", "shipping-service", "e4", "e3"),
        TL("OrderConfirmed", "order-service", "e5", "e4"),
        TL("NotificationSent", "notification-service", "e6", "e5"),
    };
    /* A customer's cancellation after the charge, the events out of order, one cause
     * missing from the timeline (recorded elsewhere) */
    const struct saga_tl_event cancelled[] = {
        TL("OrderPlaced", "order-service", "e1", NULL),
        TL("InventoryReserved", "inventory-service", "e2", "e1"),
        TL("OrderCancelled", "order-service", "e4", "e1"),
        TL("PaymentAuthorized", "payment-service", "e3", "e2"),
        TL("PaymentRefunded", "payment-service", "e5", "e4"),
        TL("InventoryReleased", "inventory-service", "e6", "e4"),
        TL("NotificationSent", "notification-service", "e7", "e-elsewhere"),
    };
    char why[256] = "";
    (void)state;
    if (saga_choreo_check_timeline(happy, 6, why, sizeof(why)))
        fail_msg("happy path: %s", why);
    if (saga_choreo_check_timeline(cancelled, 7, why, sizeof(why)))
        fail_msg("cancelled: %s", why);
}

static void test_timeline_check_catches_drift(void **state)
{
    /* ShipmentScheduled in answer to InventoryReserved: no step allows it. */
    const struct saga_tl_event skipped[] = {
        TL("OrderPlaced", "order-service", "e1", NULL),
        TL("InventoryReserved", "inventory-service", "e2", "e1"),
        TL("ShipmentScheduled", "shipping-service", "e3", "e2"),
    };
    /* A refund with no charge before it. */
    const struct saga_tl_event orphan[] = {
        TL("OrderPlaced", "order-service", "e1", NULL),
        TL("InventoryReserved", "inventory-service", "e2", "e1"),
        TL("OrderCancelled", "order-service", "e3", "e1"),
        TL("InventoryReleased", "inventory-service", "e4", "e3"),
        TL("PaymentRefunded", "payment-service", "e5", "e3"),
    };
    /* An event its producer never emits. */
    const struct saga_tl_event stranger[] = {
        TL("OrderPlaced", "order-service", "e1", NULL),
        TL("PaymentAuthorized", "shipping-service", "e2", "e1"),
    };
    /* A step with no cause, which only the saga's start may be. */
    const struct saga_tl_event uncaused[] = {
        TL("OrderPlaced", "order-service", "e1", NULL),
        TL("InventoryReserved", "inventory-service", "e2", NULL),
    };
    char why[256];
    (void)state;
    assert_int_equal(saga_choreo_check_timeline(skipped, 3, why, sizeof(why)), -1);
    assert_string_equal(why, "ShipmentScheduled from shipping-service in answer to "
                             "InventoryReserved: no step allows it");
    assert_int_equal(saga_choreo_check_timeline(orphan, 5, why, sizeof(why)), -1);
    assert_string_equal(why, "PaymentRefunded without PaymentAuthorized: a compensation of a step "
                             "never done");
    assert_int_equal(saga_choreo_check_timeline(stranger, 2, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "no step of shipping-service emits it"));
    assert_int_equal(saga_choreo_check_timeline(uncaused, 2, why, sizeof(why)), -1);
    assert_non_null(strstr(why, "has no cause"));
}

static void test_mermaid_and_json(void **state)
{
    char *m = saga_choreo_mermaid();
    json_t *j = saga_choreo_json();
    (void)state;
    assert_non_null(m);
    assert_non_null(strstr(m, "    InventoryReserved -->|payment-service| PaymentFailed\n"));
    assert_non_null(strstr(m, "    PaymentRefunded -. undoes .-> PaymentAuthorized\n"));
    assert_int_equal(json_array_size(json_object_get(j, "services")), SAGA_SERVICE_COUNT);
    assert_int_equal(
        json_integer_value(json_object_get(json_object_get(j, "deadline"), "saga_timeout_ms")),
        SAGA_TIMEOUT_DEFAULT_MS);
    free(m);
    json_decref(j);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inputs_and_acls_follow_the_declaration),
        cmocka_unit_test(test_every_reaction_is_well_formed),
        cmocka_unit_test(test_what_a_saga_waits_for),
        cmocka_unit_test(test_timeline_check_passes_real_sagas),
        cmocka_unit_test(test_timeline_check_catches_drift),
        cmocka_unit_test(test_mermaid_and_json),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
