#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "saga/choreography.h"
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

static int has_acl(const struct saga_acl *a, int n, const char *program, enum saga_acl_resource res,
                   const char *name, enum saga_acl_operation op)
{
    for (int i = 0; i < n; i++)
        if (strcmp(a[i].program, program) == 0 && a[i].resource == res &&
            strcmp(a[i].name, name) == 0 && a[i].operation == op)
            return 1;
    return 0;
}

static void test_inputs_match_the_brief(void **state)
{
    const char *in[SAGA_SERVICE_COUNT];
    assert_int_equal(saga_choreo_inputs("order", in, SAGA_SERVICE_COUNT), 5);
    assert_int_equal(saga_choreo_inputs("notification", in, SAGA_SERVICE_COUNT), 1);
    assert_string_equal(in[0], "orders");
    assert_int_equal(saga_choreo_inputs("payment", in, SAGA_SERVICE_COUNT), 2);
    assert_string_equal(in[1], "inventory");
}

static void test_acls_are_least_privilege(void **state)
{
    struct saga_acl a[64];
    int n = saga_acls_needed(a, 64), writes = 0;

    /* relay: 5 writes; services: inputs (5+2+2+2+1) + group + DLQ each; nothing on
     * the cluster (WRITE on a topic covers the idempotent producer's id). */
    assert_int_equal(n, 5 + 12 + 5 + 5);
    assert_int_equal(saga_acls_needed(a, 2), n);
    for (int i = 0; i < SAGA_SERVICE_COUNT; i++) {
        const struct saga_service_info *s = &saga_services[i];
        assert_true(has_acl(a, n, "outbox-relay", SAGA_ACL_TOPIC, s->topic, SAGA_ACL_WRITE));
        assert_true(has_acl(a, n, s->program, SAGA_ACL_GROUP, s->group, SAGA_ACL_READ));
        assert_true(has_acl(a, n, s->program, SAGA_ACL_TOPIC, s->dlq_topic, SAGA_ACL_WRITE));
        /* No service writes an event topic, its own included: only the relay does. */
        for (int j = 0; j < SAGA_SERVICE_COUNT; j++)
            assert_false(
                has_acl(a, n, s->program, SAGA_ACL_TOPIC, saga_services[j].topic, SAGA_ACL_WRITE));
    }
    assert_false(has_acl(a, n, "notification-service", SAGA_ACL_TOPIC, "payments", SAGA_ACL_READ));
    assert_false(has_acl(a, n, "outbox-relay", SAGA_ACL_TOPIC, "orders", SAGA_ACL_READ));
    for (int i = 0; i < n; i++)
        writes += a[i].operation == SAGA_ACL_WRITE;
    assert_int_equal(writes, 10);
}

static void test_each_topic_carries_its_owners_events(void **state)
{
    char why[256];

    /* Every event type belongs on the topic it is published to, from that topic's owner. */
    for (int t = 0; t < SAGA_EV_COUNT; t++) {
        const char *topic = saga_event_type_topic((saga_event_type_t)t);
        const struct saga_service_info *s = saga_service_by_topic(topic);
        assert_non_null(s);
        assert_int_equal(
            saga_event_belongs(NULL, topic, (saga_event_type_t)t, s->program, why, sizeof(why)), 0);
        for (int i = 0; i < SAGA_SERVICE_COUNT; i++)
            if (&saga_services[i] != s)
                assert_int_equal(saga_event_belongs(NULL, saga_services[i].topic,
                                                    (saga_event_type_t)t, s->program, why,
                                                    sizeof(why)),
                                 -1);
    }
    /* The attacks: another service's producer name, or another topic's event type. */
    assert_int_equal(saga_event_belongs(NULL, "shipping", SAGA_EV_SHIPMENT_SCHEDULED,
                                        "notification-service", why, sizeof(why)),
                     -1);
    assert_string_equal(why, "ShipmentScheduled from notification-service does not belong on "
                             "topic shipping (its owner is shipping-service)");
    assert_int_equal(saga_event_belongs(NULL, "shipping", SAGA_EV_ORDER_PLACED, "shipping-service",
                                        why, sizeof(why)),
                     -1);
    assert_non_null(strstr(why, "shipping-service publishes no OrderPlaced"));
    assert_int_equal(
        saga_event_belongs(NULL, "orders", SAGA_EV_ORDER_PLACED, NULL, why, sizeof(why)), -1);
    /* A topic outside the suite has an owner only when declared. */
    assert_int_equal(saga_event_belongs(NULL, "it-topic", SAGA_EV_ORDER_PLACED, "test-service", why,
                                        sizeof(why)),
                     -1);
    assert_non_null(strstr(why, "no owner"));
}

static void test_topic_owners_are_declared_for_other_topics_only(void **state)
{
    struct saga_topic_owners o;
    char err[256], why[256];
    const char *bad[] = {"it-topic",      "=x",     "it-topic=", "a=b=c", "orders=evil-service",
                         "payment.dlq=x", "t=a t=b"};

    assert_int_equal(saga_topic_owners_parse(&o, NULL, err, sizeof(err)), SAGA_OK);
    assert_int_equal(o.count, 0);
    assert_int_equal(
        saga_topic_owners_parse(&o, " it-topic=test-service\n other=x ", err, sizeof(err)),
        SAGA_OK);
    assert_int_equal(o.count, 2);
    assert_string_equal(saga_topic_owner(&o, "it-topic"), "test-service");
    assert_string_equal(saga_topic_owner(&o, "orders"), "order-service");
    assert_null(saga_topic_owner(&o, "unknown"));
    assert_int_equal(saga_event_belongs(&o, "it-topic", SAGA_EV_INVENTORY_RESERVED, "test-service",
                                        why, sizeof(why)),
                     0);
    assert_int_equal(saga_event_belongs(&o, "it-topic", SAGA_EV_ORDER_PLACED,
                                        "notification-service", why, sizeof(why)),
                     -1);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_int_equal(saga_topic_owners_parse(&o, bad[i], err, sizeof(err)), SAGA_ERR_CONFIG);
        assert_non_null(strstr(err, "SAGA_TOPIC_OWNERS"));
        assert_int_equal(o.count, 0);
    }
}

static void test_dead_letters_go_back_only_to_what_their_service_reads(void **state)
{
    char why[256];

    assert_int_equal(saga_dlq_replay_allowed("shipping.dlq", "payments", why, sizeof(why)), 0);
    assert_int_equal(saga_dlq_replay_allowed("order.dlq", "shipping", why, sizeof(why)), 0);
    /* notification-service reads only orders: its DLQ cannot launder an event to shipping. */
    assert_int_equal(saga_dlq_replay_allowed("notification.dlq", "shipping", why, sizeof(why)), -1);
    assert_non_null(strstr(why, "not a topic notification-service reads"));
    assert_int_equal(saga_dlq_replay_allowed("notification.dlq", "it-topic", why, sizeof(why)), -1);
    /* Another DLQ never replays to a suite topic; to its own topics it may. */
    assert_int_equal(saga_dlq_replay_allowed("it-topic.dlq", "shipping", why, sizeof(why)), -1);
    assert_int_equal(saga_dlq_replay_allowed("it-topic.dlq", "it-topic", why, sizeof(why)), 0);
    assert_int_equal(saga_dlq_replay_allowed("it-topic.dlq", "", why, sizeof(why)), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_topics_match_the_brief),
        cmocka_unit_test(test_find_by_name_or_program),
        cmocka_unit_test(test_inputs_match_the_brief),
        cmocka_unit_test(test_acls_are_least_privilege),
        cmocka_unit_test(test_each_topic_carries_its_owners_events),
        cmocka_unit_test(test_topic_owners_are_declared_for_other_topics_only),
        cmocka_unit_test(test_dead_letters_go_back_only_to_what_their_service_reads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
