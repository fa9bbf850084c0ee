/*
 * librdkafka against the real broker of the test stack: the topics the stack
 * created, a keyed message with headers through the idempotent producer, a
 * consumer group with manual offset store and commit, and a restarted consumer
 * that resumes after the committed offset.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "saga/kafka.h"
#include "saga/topology.h"
#include "stack_env.h"

static rd_kafka_conf_t *base_conf(void)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char err[256];
    assert_int_equal(rd_kafka_conf_set(conf, "bootstrap.servers",
                                       stack_env("KAFKA_BOOTSTRAP_SERVERS"), err, sizeof(err)),
                     RD_KAFKA_CONF_OK);
    saga_kafka_conf_set_logger(conf, 0);
    return conf;
}

static void set(rd_kafka_conf_t *conf, const char *k, const char *v)
{
    char err[256];
    if (rd_kafka_conf_set(conf, k, v, err, sizeof(err)) != RD_KAFKA_CONF_OK)
        fail_msg("%s=%s: %s", k, v, err);
}

static void test_stack_created_every_topic(void **state)
{
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, base_conf(), NULL, 0);
    const char *names[16];
    int n = saga_topics_all(names, 16);
    int want = atoi(stack_env("TOPIC_PARTITIONS"));
    char err[256];

    assert_non_null(rk);
    assert_true(want > 0);
    for (int i = 0; i < n; i++) {
        int p = saga_kafka_topic_partitions(rk, names[i], 10000, err, sizeof(err));
        if (p != want)
            fail_msg("topic %s: %d partitions, want %d (%s)", names[i], p, want, err);
    }
    /* Auto-creation is off: asking for an unknown topic does not create it. */
    assert_int_equal(saga_kafka_topic_partitions(rk, "no-such-topic-xyz", 10000, err, sizeof(err)),
                     0);
    assert_int_equal(saga_kafka_topic_partitions(rk, "no-such-topic-xyz", 10000, err, sizeof(err)),
                     0);
    rd_kafka_destroy(rk);
}

static void test_topics_ensure_is_idempotent(void **state)
{
    rd_kafka_t *rk = rd_kafka_new(RD_KAFKA_PRODUCER, base_conf(), NULL, 0);
    char topic[96];
    const char *names[1] = {stack_unique("it-ensure", topic, sizeof(topic))};
    struct saga_topic_status st;

    assert_int_equal(saga_kafka_topics_ensure(rk, names, 1, 3, 1, 10000, &st), SAGA_OK);
    assert_true(st.created);
    assert_int_equal(st.partitions, 3);
    /* A second call finds it and leaves its partition count alone. */
    assert_int_equal(saga_kafka_topics_ensure(rk, names, 1, 5, 1, 10000, &st), SAGA_OK);
    assert_false(st.created);
    assert_int_equal(st.partitions, 3);
    rd_kafka_destroy(rk);
}

struct delivery {
    int delivered;
    int failed;
    int32_t partition;
    int64_t offset;
};

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    struct delivery *d = m->_private;
    if (m->err) {
        d->failed++;
    } else {
        d->delivered++;
        d->partition = m->partition;
        d->offset = m->offset;
    }
}

static void produce(rd_kafka_t *rk, const char *topic, const char *key, const char *value,
                    const char *event_id, struct delivery *d)
{
    rd_kafka_headers_t *hdrs = rd_kafka_headers_new(2);
    rd_kafka_resp_err_t err;
    char vbuf[256], kbuf[128];

    snprintf(vbuf, sizeof(vbuf), "%s", value);
    snprintf(kbuf, sizeof(kbuf), "%s", key);
    rd_kafka_header_add(hdrs, "event_id", -1, event_id, -1);
    rd_kafka_header_add(hdrs, "event_type", -1, "OrderPlaced", -1);
    err = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(kbuf, strlen(kbuf)),
                            RD_KAFKA_V_VALUE(vbuf, strlen(vbuf)),
                            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(hdrs),
                            RD_KAFKA_V_OPAQUE(d), RD_KAFKA_V_END);
    if (err) {
        rd_kafka_headers_destroy(hdrs);
        fail_msg("produce: %s", rd_kafka_err2str(err));
    }
}

static rd_kafka_t *new_consumer(const char *group, const char *topic)
{
    rd_kafka_conf_t *conf = base_conf();
    rd_kafka_topic_partition_list_t *subs;
    char err[256];
    rd_kafka_t *rk;

    set(conf, "group.id", group);
    set(conf, "auto.offset.reset", "earliest");
    set(conf, "enable.auto.offset.store", "false");
    set(conf, "enable.auto.commit", "false");
    rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    if (!rk)
        fail_msg("consumer: %s", err);
    rd_kafka_poll_set_consumer(rk);
    subs = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(subs, topic, RD_KAFKA_PARTITION_UA);
    assert_int_equal(rd_kafka_subscribe(rk, subs), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_topic_partition_list_destroy(subs);
    return rk;
}

/* The next real message, skipping partition-EOF events; fails after 60 s. */
static rd_kafka_message_t *next_message(rd_kafka_t *rk)
{
    for (int i = 0; i < 60; i++) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 1000);
        if (!m)
            continue;
        if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            rd_kafka_message_destroy(m);
            continue;
        }
        if (m->err)
            fail_msg("consume: %s", rd_kafka_message_errstr(m));
        return m;
    }
    fail_msg("no message within 60s");
    return NULL;
}

static const char *header(const rd_kafka_message_t *m, const char *name, char *buf, size_t size)
{
    rd_kafka_headers_t *hdrs = NULL;
    const void *val;
    size_t len;

    if (rd_kafka_message_headers(m, &hdrs) || rd_kafka_header_get_last(hdrs, name, &val, &len))
        return NULL;
    snprintf(buf, size, "%.*s", (int)len, (const char *)val);
    return buf;
}

static void test_keyed_roundtrip_and_resume_after_commit(void **state)
{
    char topic[96], group[96], err[256], hbuf[64];
    const char *names[1] = {stack_unique("it-roundtrip", topic, sizeof(topic))};
    struct saga_topic_status st;
    struct delivery d[3] = {{0}};
    rd_kafka_conf_t *pconf = base_conf();
    rd_kafka_t *prod, *cons;
    rd_kafka_message_t *m;
    rd_kafka_topic_partition_list_t *offs;

    stack_unique("it-group", group, sizeof(group));
    {
        rd_kafka_t *admin = rd_kafka_new(RD_KAFKA_PRODUCER, base_conf(), NULL, 0);
        assert_int_equal(saga_kafka_topics_ensure(admin, names, 1, 3, 1, 10000, &st), SAGA_OK);
        rd_kafka_destroy(admin);
    }

    set(pconf, "enable.idempotence", "true");
    set(pconf, "partitioner", "murmur2_random");
    rd_kafka_conf_set_dr_msg_cb(pconf, dr_cb);
    prod = rd_kafka_new(RD_KAFKA_PRODUCER, pconf, err, sizeof(err));
    assert_non_null(prod);
    produce(prod, topic, "order-42", "first", "e-1", &d[0]);
    produce(prod, topic, "order-42", "second", "e-2", &d[1]);
    produce(prod, topic, "order-42", "third", "e-3", &d[2]);
    assert_int_equal(rd_kafka_flush(prod, 30000), RD_KAFKA_RESP_ERR_NO_ERROR);
    for (int i = 0; i < 3; i++) {
        assert_int_equal(d[i].delivered, 1);
        assert_int_equal(d[i].failed, 0);
        /* Same key, same partition, in order. */
        assert_int_equal(d[i].partition, d[0].partition);
        assert_int_equal(d[i].offset, d[0].offset + i);
    }
    rd_kafka_destroy(prod);

    /* First consumer: read one message, store and commit its offset by hand, leave. */
    cons = new_consumer(group, topic);
    m = next_message(cons);
    assert_int_equal(m->key_len, strlen("order-42"));
    assert_memory_equal(m->key, "order-42", m->key_len);
    assert_int_equal(m->len, strlen("first"));
    assert_memory_equal(m->payload, "first", m->len);
    assert_string_equal(header(m, "event_id", hbuf, sizeof(hbuf)), "e-1");
    assert_string_equal(header(m, "event_type", hbuf, sizeof(hbuf)), "OrderPlaced");
    offs = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(offs, topic, m->partition)->offset = m->offset + 1;
    assert_int_equal(rd_kafka_offsets_store(cons, offs), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_topic_partition_list_destroy(offs);
    rd_kafka_message_destroy(m);
    assert_int_equal(rd_kafka_commit(cons, NULL, 0), RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(rd_kafka_consumer_close(cons), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_destroy(cons);

    /* Restarted consumer in the same group resumes right after the committed offset. */
    cons = new_consumer(group, topic);
    m = next_message(cons);
    assert_int_equal(m->len, strlen("second"));
    assert_memory_equal(m->payload, "second", m->len);
    assert_string_equal(header(m, "event_id", hbuf, sizeof(hbuf)), "e-2");
    rd_kafka_message_destroy(m);
    rd_kafka_consumer_close(cons);
    rd_kafka_destroy(cons);
}

/* Kafka's Java murmur2 (org.apache.kafka.common.utils.Utils.murmur2). */
static int32_t java_murmur2(const char *key, size_t len)
{
    const uint32_t m = 0x5bd1e995;
    const int r = 24;
    uint32_t h = 0x9747b28c ^ (uint32_t)len;
    size_t i = 0;
    const unsigned char *d = (const unsigned char *)key;

    for (; i + 4 <= len; i += 4) {
        uint32_t k = (uint32_t)d[i] | (uint32_t)d[i + 1] << 8 | (uint32_t)d[i + 2] << 16 |
                     (uint32_t)d[i + 3] << 24;
        k *= m;
        k ^= k >> r;
        k *= m;
        h *= m;
        h ^= k;
    }
    switch (len - i) {
    case 3:
        h ^= (uint32_t)d[i + 2] << 16;
        /* fall through */
    case 2:
        h ^= (uint32_t)d[i + 1] << 8;
        /* fall through */
    case 1:
        h ^= d[i];
        h *= m;
    }
    h ^= h >> 13;
    h *= m;
    h ^= h >> 15;
    return (int32_t)h;
}

static void test_partitioner_matches_java_client(void **state)
{
    /* Reference values from the Java client's own tests (UtilsTest.testMurmur2). */
    assert_int_equal(java_murmur2("21", 2), -973932308);
    assert_int_equal(java_murmur2("foobar", 6), -790332482);
    assert_int_equal(java_murmur2("a-little-bit-long-string", 24), -985981536);
    assert_int_equal(java_murmur2("a-little-bit-longer-string", 26), -1486304829);
    assert_int_equal(java_murmur2("lkjh234lh9fiuh90y23oiuhsafujhadof229phr9h19h89h8", 48),
                     -58897971);
    assert_int_equal(java_murmur2("abc", 3), 479470107);

    /* The producer settings every service uses put each key where Java would. */
    {
        char topic[96], err[256];
        const char *names[1] = {stack_unique("it-murmur", topic, sizeof(topic))};
        const char *keys[] = {"order-1", "order-2", "3f2c9a1e-0b7d-4c55-9a0e-1d2c3b4a5e6f", "x"};
        struct saga_topic_status st;
        struct delivery d[4] = {{0}};
        rd_kafka_conf_t *conf = base_conf();
        rd_kafka_t *rk;

        set(conf, "enable.idempotence", "true");
        set(conf, "partitioner", "murmur2_random");
        rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
        rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
        assert_non_null(rk);
        assert_int_equal(saga_kafka_topics_ensure(rk, names, 1, 6, 1, 10000, &st), SAGA_OK);
        for (int i = 0; i < 4; i++)
            produce(rk, topic, keys[i], "v", "e", &d[i]);
        assert_int_equal(rd_kafka_flush(rk, 30000), RD_KAFKA_RESP_ERR_NO_ERROR);
        for (int i = 0; i < 4; i++) {
            int32_t want = (java_murmur2(keys[i], strlen(keys[i])) & 0x7fffffff) % 6;
            assert_int_equal(d[i].delivered, 1);
            assert_int_equal(d[i].partition, want);
        }
        rd_kafka_destroy(rk);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_stack_created_every_topic),
        cmocka_unit_test(test_topics_ensure_is_idempotent),
        cmocka_unit_test(test_keyed_roundtrip_and_resume_after_commit),
        cmocka_unit_test(test_partitioner_matches_java_client),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
