/*
 * The local stack on a Kafka cluster (scripts/stack --brokers 3, `make up KAFKA_BROKERS=3`):
 * three KRaft nodes, every topic (the consumer offsets too) with three replicas all in
 * sync and min.insync.replicas=2, every program given all three brokers; an order goes
 * through, and goes through again with one broker SIGKILLed. Runs against its own stack
 * (the cluster_stack fixture).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <librdkafka/rdkafka.h>

#include "../e2e/e2e.h"
#include "proc.h"
#include "stack_env.h"

static const char *const suite_topics[] = {
    "orders",    "inventory",     "payments",    "shipping",     "notifications",
    "order.dlq", "inventory.dlq", "payment.dlq", "shipping.dlq", "notification.dlq"};

/* The value of config name of topic (DescribeConfigs); "" if absent. */
static void topic_config(rd_kafka_t *rk, const char *topic, const char *name, char *out,
                         size_t size)
{
    rd_kafka_ConfigResource_t *res = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    rd_kafka_event_t *ev;
    const rd_kafka_ConfigResource_t **rs;
    size_t nrs = 0;

    *out = '\0';
    rd_kafka_DescribeConfigs(rk, &res, 1, NULL, q);
    ev = rd_kafka_queue_poll(q, 30000);
    if (!ev || rd_kafka_event_error(ev))
        fail_msg("DescribeConfigs %s: %s", topic,
                 ev ? rd_kafka_event_error_string(ev) : "no answer");
    rs = rd_kafka_DescribeConfigs_result_resources(rd_kafka_event_DescribeConfigs_result(ev), &nrs);
    for (size_t i = 0; i < nrs; i++) {
        size_t nc = 0;
        const rd_kafka_ConfigEntry_t **c = rd_kafka_ConfigResource_configs(rs[i], &nc);
        for (size_t j = 0; j < nc; j++)
            if (strcmp(rd_kafka_ConfigEntry_name(c[j]), name) == 0 &&
                rd_kafka_ConfigEntry_value(c[j]))
                snprintf(out, size, "%s", rd_kafka_ConfigEntry_value(c[j]));
    }
    rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_ConfigResource_destroy(res);
}

/* Partitions of topic in md with fewer than want replicas, or fewer in sync; -1: no topic. */
static int short_partitions(const rd_kafka_metadata_t *md, const char *topic, int want)
{
    for (int t = 0; t < md->topic_cnt; t++) {
        int bad = 0;
        if (strcmp(md->topics[t].topic, topic) != 0)
            continue;
        if (md->topics[t].err || md->topics[t].partition_cnt == 0)
            return -1;
        for (int p = 0; p < md->topics[t].partition_cnt; p++)
            bad += md->topics[t].partitions[p].replica_cnt != want ||
                   md->topics[t].partitions[p].isr_cnt != want;
        return bad;
    }
    return -1;
}

static void test_every_topic_has_three_replicas_and_min_isr_two(void **state)
{
    rd_kafka_t *rk = kafka_client(RD_KAFKA_PRODUCER, NULL);
    const rd_kafka_metadata_t *md = NULL;
    const char *bootstrap = stack_env("KAFKA_BOOTSTRAP_SERVERS");
    long long until = now_ms() + 60000;
    char value[64];
    int ok = 0;
    (void)state;

    /* every program is given all three brokers */
    assert_string_equal(stack_env("STACK_KAFKA_BROKERS"), "3");
    {
        int commas = 0;
        for (const char *c = bootstrap; *c; c++)
            commas += *c == ',';
        if (commas != 2)
            fail_msg("KAFKA_BOOTSTRAP_SERVERS names %d brokers: %s", commas + 1, bootstrap);
    }
    /* three brokers; each suite topic and the consumer offsets: 3 replicas, all in sync
     * (after a start-up the followers may need a moment) */
    while (!ok) {
        int bad = 0;
        if (md)
            rd_kafka_metadata_destroy(md);
        md = NULL;
        if (rd_kafka_metadata(rk, 1, NULL, &md, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
            bad = md->broker_cnt != 3;
            for (size_t i = 0; i < sizeof(suite_topics) / sizeof(suite_topics[0]); i++)
                bad += short_partitions(md, suite_topics[i], 3) != 0;
            bad += short_partitions(md, "__consumer_offsets", 3) != 0;
            ok = !bad;
        }
        if (!ok && now_ms() > until) {
            for (size_t i = 0; md && i < sizeof(suite_topics) / sizeof(suite_topics[0]); i++)
                fprintf(stderr, "%s: %d partitions short of 3 replicas in sync\n", suite_topics[i],
                        short_partitions(md, suite_topics[i], 3));
            fail_msg("after 60 s: %d broker(s); not every topic has 3 replicas in sync",
                     md ? md->broker_cnt : 0);
        }
        if (!ok)
            sleep(1);
    }
    rd_kafka_metadata_destroy(md);
    for (size_t i = 0; i < sizeof(suite_topics) / sizeof(suite_topics[0]); i++) {
        topic_config(rk, suite_topics[i], "min.insync.replicas", value, sizeof(value));
        if (strcmp(value, "2") != 0)
            fail_msg("%s: min.insync.replicas is '%s', want 2", suite_topics[i], value);
    }
    topic_config(rk, "__consumer_offsets", "min.insync.replicas", value, sizeof(value));
    assert_string_equal(value, "2");
    rd_kafka_destroy(rk);
}

static int confirmed(json_t *o)
{
    const char *s = jstr(o, "status");
    return s && strcmp(s, "CONFIRMED") == 0;
}

static void place_and_confirm(const char *what)
{
    char id[37];
    json_t *o;
    place("cust-alice", "tok_visa", "NL", "sku-book:1", id);
    o = wait_order(id, order_settled, 120000);
    if (!confirmed(o))
        fail_msg("%s: order %s is %s, not CONFIRMED", what, id, jstr(o, "status"));
    json_decref(o);
}

static void test_an_order_completes_with_a_broker_killed(void **state)
{
    (void)state;
    place_and_confirm("all three brokers up");
    stack_cmd("kill kafka-2");
    place_and_confirm("kafka-2 SIGKILLed");
    stack_cmd("up");
    place_and_confirm("kafka-2 back");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_every_topic_has_three_replicas_and_min_isr_two),
        cmocka_unit_test(test_an_order_completes_with_a_broker_killed),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
