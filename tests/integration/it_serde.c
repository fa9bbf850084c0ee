/*
 * The serde with the real schema registry and the real broker of the test stack:
 * Confluent framing through Apicurio Registry's ccompat API, both framings over
 * Kafka with their headers, a registry that cannot be reached, and more writer
 * schemas than any fixed table would hold.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "sample_events.h"
#include "saga/headers.h"
#include "saga/kafka.h"
#include "saga/registry.h"
#include "saga/serde.h"
#include "stack_env.h"

static struct saga_registry *registry(const char *url)
{
    struct saga_registry *r;
    char err[256];
    if (saga_registry_new(&r, url, err, sizeof(err)) != SAGA_OK)
        fail_msg("registry: %s", err);
    return r;
}

static struct saga_serde *serde(struct saga_registry *r)
{
    struct saga_serde_conf conf = {r};
    struct saga_serde *s;
    char err[512];
    if (saga_serde_new(&s, &conf, err, sizeof(err)) != SAGA_OK)
        fail_msg("serde: %s", err);
    return s;
}

static void test_registry_registers_and_serves_schemas(void **state)
{
    struct saga_registry *r = registry(stack_env("SCHEMA_REGISTRY_URL"));
    char err[512], subject[256], *json = NULL;
    int32_t id, again;

    assert_int_equal(saga_registry_register_all(r, err, sizeof(err)), SAGA_OK);
    assert_int_equal(saga_registry_event_id(r, SAGA_EV_PAYMENT_FAILED, &id, err, sizeof(err)),
                     SAGA_OK);
    /* Registering the same schema again under its subject gives the same id. */
    assert_int_equal(saga_registry_register(
                         r, saga_registry_subject(SAGA_EV_PAYMENT_FAILED, subject, sizeof(subject)),
                         saga_serde_schema_json(SAGA_EV_PAYMENT_FAILED), &again, err, sizeof(err)),
                     SAGA_OK);
    assert_int_equal(again, id);
    assert_string_equal(subject, "payments-io.ordersaga.events.PaymentFailed");
    assert_int_equal(saga_registry_get(r, id, &json, err, sizeof(err)), SAGA_OK);
    assert_non_null(strstr(json, "PaymentFailed"));
    free(json);
    assert_int_equal(saga_registry_get(r, 987654, &json, err, sizeof(err)), SAGA_ERR_NOT_FOUND);
    assert_non_null(strstr(err, "404"));
    saga_registry_destroy(r);
}

static void test_confluent_framing_round_trips_through_the_registry(void **state)
{
    struct saga_registry *w = registry(stack_env("SCHEMA_REGISTRY_URL"));
    struct saga_registry *rd = registry(stack_env("SCHEMA_REGISTRY_URL"));
    struct saga_serde *enc = serde(w), *dec = serde(rd);
    struct saga_buf buf = {0};
    char err[512];

    for (int t = 0; t < SAGA_EV_COUNT; t++) {
        struct saga_event want, got = {0};
        int32_t id, framed;
        sample_event(&want, (saga_event_type_t)t, t % 2);
        assert_int_equal(saga_serde_encode(enc, &want, &buf, err, sizeof(err)), SAGA_OK);
        assert_int_equal(saga_registry_event_id(w, (saga_event_type_t)t, &id, err, sizeof(err)),
                         SAGA_OK);
        framed = (int32_t)((uint32_t)buf.data[1] << 24 | (uint32_t)buf.data[2] << 16 |
                           (uint32_t)buf.data[3] << 8 | buf.data[4]);
        assert_int_equal(buf.data[0], 0);
        assert_int_equal(framed, id);
        /* A reader that has never seen the id fetches the writer schema on demand. */
        if (saga_serde_decode(dec, buf.data, buf.len, &got, err, sizeof(err)) != SAGA_DECODE_OK)
            fail_msg("decode %s: %s", saga_event_type_name((saga_event_type_t)t), err);
        assert_true(saga_event_equal(&want, &got));
        saga_event_release(&got);
    }
    saga_buf_release(&buf);
    saga_serde_destroy(enc);
    saga_serde_destroy(dec);
    saga_registry_destroy(w);
    saga_registry_destroy(rd);
}

static void test_unreachable_registry_is_transient(void **state)
{
    struct saga_registry *down = registry("http://127.0.0.1:1/apis/ccompat/v7");
    struct saga_serde *s = serde(down);
    struct saga_buf buf = {0};
    struct saga_event ev, got = {0};
    char err[512];
    const unsigned char msg[] = {0x00, 0x00, 0x00, 0x30, 0x39, 0x02};

    sample_event(&ev, SAGA_EV_ORDER_PLACED, 0);
    assert_int_equal(saga_serde_encode(s, &ev, &buf, err, sizeof(err)), SAGA_ERR_TRANSIENT);
    assert_non_null(strstr(err, "127.0.0.1:1"));
    assert_int_equal(saga_serde_decode(s, msg, sizeof(msg), &got, err, sizeof(err)),
                     SAGA_DECODE_REGISTRY_UNAVAILABLE);
    assert_int_equal(saga_decode_err_class(SAGA_DECODE_REGISTRY_UNAVAILABLE), SAGA_ERR_TRANSIENT);
    saga_buf_release(&buf);
    saga_serde_destroy(s);
    saga_registry_destroy(down);
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    if (m->err)
        fail_msg("delivery: %s", rd_kafka_err2str(m->err));
}

static void test_both_framings_over_kafka_with_headers(void **state)
{
    struct saga_registry *r = registry(stack_env("SCHEMA_REGISTRY_URL"));
    struct saga_serde *single = serde(NULL), *conf = serde(r), *reader = serde(r);
    rd_kafka_conf_t *pc = rd_kafka_conf_new(), *cc = rd_kafka_conf_new();
    rd_kafka_topic_partition_list_t *subs;
    struct saga_topic_status st;
    struct saga_buf buf = {0};
    char topic[96], group[96], err[512];
    const char *names[1] = {stack_unique("it-serde", topic, sizeof(topic))};
    rd_kafka_t *prod, *cons;
    int got[2] = {0, 0}, total = 0;

    rd_kafka_conf_set(pc, "bootstrap.servers", stack_env("KAFKA_BOOTSTRAP_SERVERS"), NULL, 0);
    rd_kafka_conf_set(pc, "enable.idempotence", "true", NULL, 0);
    rd_kafka_conf_set_dr_msg_cb(pc, dr_cb);
    prod = rd_kafka_new(RD_KAFKA_PRODUCER, pc, err, sizeof(err));
    assert_non_null(prod);
    assert_int_equal(saga_kafka_topics_ensure(prod, names, 1, 2, 1, 10000, &st), SAGA_OK);

    for (int framing = 0; framing < 2; framing++) {
        for (int t = 0; t < SAGA_EV_COUNT; t++) {
            struct saga_event ev;
            rd_kafka_headers_t *h = rd_kafka_headers_new(5);
            char key[64];
            sample_event(&ev, (saga_event_type_t)t, (t + framing) % 2);
            assert_int_equal(
                saga_serde_encode(framing ? conf : single, &ev, &buf, err, sizeof(err)), SAGA_OK);
            assert_int_equal(saga_event_headers_add(h, &ev), SAGA_OK);
            snprintf(key, sizeof(key), "%s", ev.meta.order_id);
            assert_int_equal(rd_kafka_producev(prod, RD_KAFKA_V_TOPIC(topic),
                                               RD_KAFKA_V_KEY(key, strlen(key)),
                                               RD_KAFKA_V_VALUE(buf.data, buf.len),
                                               RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                               RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END),
                             RD_KAFKA_RESP_ERR_NO_ERROR);
        }
    }
    assert_int_equal(rd_kafka_flush(prod, 30000), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_destroy(prod);

    rd_kafka_conf_set(cc, "bootstrap.servers", stack_env("KAFKA_BOOTSTRAP_SERVERS"), NULL, 0);
    rd_kafka_conf_set(cc, "group.id", stack_unique("it-serde-group", group, sizeof(group)), NULL,
                      0);
    rd_kafka_conf_set(cc, "auto.offset.reset", "earliest", NULL, 0);
    cons = rd_kafka_new(RD_KAFKA_CONSUMER, cc, err, sizeof(err));
    assert_non_null(cons);
    rd_kafka_poll_set_consumer(cons);
    subs = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(subs, topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_subscribe(cons, subs);
    rd_kafka_topic_partition_list_destroy(subs);

    for (int polls = 0; total < 2 * SAGA_EV_COUNT && polls < 120; polls++) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(cons, 500);
        struct saga_event ev = {0}, want;
        struct saga_event_headers h;
        rd_kafka_headers_t *hdrs = NULL;
        if (!m)
            continue;
        if (m->err) {
            rd_kafka_message_destroy(m);
            continue;
        }
        if (saga_serde_decode(reader, m->payload, m->len, &ev, err, sizeof(err)) != SAGA_DECODE_OK)
            fail_msg("decode at offset %ld: %s", (long)m->offset, err);
        got[((const unsigned char *)m->payload)[0] == 0 ? 1 : 0]++;
        rd_kafka_message_headers(m, &hdrs);
        saga_event_headers_read(hdrs, &h);
        assert_string_equal(h.event_type, saga_event_type_name(ev.type));
        assert_int_equal(saga_event_headers_check(&h, &ev, err, sizeof(err)), 0);
        /* The key is the order id (docs/EVENTS.md). */
        assert_int_equal(m->key_len, strlen(ev.meta.order_id));
        assert_memory_equal(m->key, ev.meta.order_id, m->key_len);
        sample_event(&want, ev.type, 0);
        assert_string_equal(ev.meta.event_id, want.meta.event_id);
        saga_event_release(&ev);
        rd_kafka_message_destroy(m);
        total++;
    }
    assert_int_equal(got[0], SAGA_EV_COUNT); /* single-object */
    assert_int_equal(got[1], SAGA_EV_COUNT); /* Confluent */
    rd_kafka_consumer_close(cons);
    rd_kafka_destroy(cons);
    saga_buf_release(&buf);
    saga_serde_destroy(single);
    saga_serde_destroy(conf);
    saga_serde_destroy(reader);
    saga_registry_destroy(r);
}

/*
 * A reader meets more distinct registry ids than any fixed table holds: each one is
 * fetched and decodes. (A table of 256 once refused the 257th, so a valid event
 * written with a new schema version went to the DLQ.)
 */
#define MANY_SCHEMAS 300

static void test_hundreds_of_registry_schema_ids_all_decode(void **state)
{
    struct saga_registry *r = registry(stack_env("SCHEMA_REGISTRY_URL"));
    struct saga_serde *single = serde(NULL), *reader = serde(r);
    struct saga_buf buf = {0};
    struct saga_event want;
    json_t *base = json_loads(saga_serde_schema_json(SAGA_EV_ORDER_PLACED), 0, NULL);
    char prefix[96], err[512];
    unsigned char *msg;
    size_t body;

    (void)state;
    assert_non_null(base);
    stack_unique("it-serde-many", prefix, sizeof(prefix));
    sample_event(&want, SAGA_EV_ORDER_PLACED, 0);
    assert_int_equal(saga_serde_encode(single, &want, &buf, err, sizeof(err)), SAGA_OK);
    /* Confluent framing around the single-object body, plus one byte: the null branch of
     * the optional field each writer schema below appends. */
    body = buf.len - 10;
    assert_non_null(msg = malloc(5 + body + 1));
    memcpy(msg + 5, buf.data + 10, body);
    msg[5 + body] = 0x00;

    for (int i = 0; i < MANY_SCHEMAS; i++) {
        json_t *schema = json_deep_copy(base);
        char subject[160], field[32], *text;
        struct saga_event got = {0};
        int32_t id;

        snprintf(field, sizeof(field), "probe_%d", i);
        json_array_append_new(
            json_object_get(schema, "fields"),
            json_pack("{s:s, s:[s,s], s:n}", "name", field, "type", "null", "string", "default"));
        assert_non_null(text = json_dumps(schema, JSON_COMPACT));
        snprintf(subject, sizeof(subject), "%s-%d", prefix, i);
        if (saga_registry_register(r, subject, text, &id, err, sizeof(err)) != SAGA_OK)
            fail_msg("registering schema %d: %s", i, err);
        free(text);
        json_decref(schema);
        msg[0] = 0;
        msg[1] = (unsigned char)((uint32_t)id >> 24);
        msg[2] = (unsigned char)((uint32_t)id >> 16);
        msg[3] = (unsigned char)((uint32_t)id >> 8);
        msg[4] = (unsigned char)id;
        if (saga_serde_decode(reader, msg, 5 + body + 1, &got, err, sizeof(err)) != SAGA_DECODE_OK)
            fail_msg("writer schema %d of %d (id %ld) refused: %s", i + 1, MANY_SCHEMAS, (long)id,
                     err);
        assert_true(saga_event_equal(&want, &got));
        saga_event_release(&got);
    }
    free(msg);
    json_decref(base);
    saga_buf_release(&buf);
    saga_serde_destroy(single);
    saga_serde_destroy(reader);
    saga_registry_destroy(r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_registry_registers_and_serves_schemas),
        cmocka_unit_test(test_confluent_framing_round_trips_through_the_registry),
        cmocka_unit_test(test_unreachable_registry_is_transient),
        cmocka_unit_test(test_both_framings_over_kafka_with_headers),
        cmocka_unit_test(test_hundreds_of_registry_schema_ids_all_decode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
