/*
 * sagactl tail on the real broker: every event type decodes to JSON with its
 * fields (single-object and, with the stack's registry, Confluent framing), and
 * messages that do not decode become one {"error": ...} line each, never a crash.
 * Runs on a topic of its own, so nothing of the suite sees the garbage.
 *
 * sagactl dlq replay against a source topic that refuses a dead letter (its
 * max.message.bytes is smaller than the message): the refusal is reported per
 * message and the exit status says so.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#include <cmocka.h>
#include <jansson.h>
#include <libpq-fe.h>

#include "proc.h"
#include "sample_events.h"
#include "saga/headers.h"
#include "saga/kafka.h"
#include "saga/registry.h"
#include "saga/serde.h"
#include "stack_env.h"

#define ORDER "0b6f7c1a-2d3e-4f50-8a9b-c0d1e2f3a4b5" /* the samples' order id */

struct fixture {
    char topic[96];
    rd_kafka_t *producer;
    struct saga_serde *plain, *confluent;
    struct saga_registry *registry;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    struct saga_topic_status st[1];
    const char *names[1];
    const char *registry = NULL;
    char err[512];
    FILE *env;
    char line[1200];

    stack_unique("it-sagactl", f->topic, sizeof(f->topic));
    rd_kafka_conf_set(conf, "bootstrap.servers", stack_env("KAFKA_BOOTSTRAP_SERVERS"), NULL, 0);
    rd_kafka_conf_set(conf, "enable.idempotence", "true", NULL, 0);
    f->producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    assert_non_null(f->producer);
    names[0] = f->topic;
    assert_int_equal(saga_kafka_topics_ensure(f->producer, names, 1, 1, 1, 10000, st), SAGA_OK);
    assert_int_equal(saga_serde_new(&f->plain, NULL, err, sizeof(err)), SAGA_OK);
    /* The stack's registry, when it runs one (stack_env() aborts on absent keys). */
    if ((env = fopen(getenv("SAGA_STACK_ENV"), "r"))) {
        while (fgets(line, sizeof(line), env))
            if (!strncmp(line, "SCHEMA_REGISTRY_URL=", 20))
                registry = stack_env("SCHEMA_REGISTRY_URL");
        fclose(env);
    }
    if (registry)
        assert_int_equal(
            saga_serde_open(registry, NULL, &f->confluent, &f->registry, err, sizeof(err)),
            SAGA_OK);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    rd_kafka_destroy(f->producer);
    saga_serde_destroy(f->plain);
    saga_serde_destroy(f->confluent);
    saga_registry_destroy(f->registry);
    free(f);
    return 0;
}

static void produce(struct fixture *f, const char *key, const void *val, size_t len,
                    rd_kafka_headers_t *h)
{
    char kbuf[128], vbuf[4096];
    char *kp = key ? kbuf : NULL;
    size_t klen = key ? strlen(key) : 0;
    snprintf(kbuf, sizeof(kbuf), "%s", key ? key : "");
    assert_true(len <= sizeof(vbuf));
    memcpy(vbuf, val, len);
    assert_int_equal(
        rd_kafka_producev(f->producer, RD_KAFKA_V_TOPIC(f->topic), RD_KAFKA_V_KEY(kp, klen),
                          RD_KAFKA_V_VALUE(vbuf, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                          RD_KAFKA_V_HEADERS(h ? h : rd_kafka_headers_new(1)), RD_KAFKA_V_END),
        RD_KAFKA_RESP_ERR_NO_ERROR);
}

static void produce_event(struct fixture *f, struct saga_serde *serde, saga_event_type_t type,
                          int minimal)
{
    struct saga_event ev;
    struct saga_buf buf = {0};
    rd_kafka_headers_t *h = rd_kafka_headers_new(8);
    char err[512];

    sample_event(&ev, type, minimal);
    assert_int_equal(saga_serde_encode(serde, &ev, &buf, err, sizeof(err)), SAGA_OK);
    assert_int_equal(saga_event_headers_add(h, &ev), SAGA_OK);
    produce(f, ORDER, buf.data, buf.len, h);
    saga_buf_release(&buf);
}

/* Runs sagactl tail on the fixture's topic and returns its stdout lines, parsed. */
static json_t *tail(struct fixture *f, int count, int *status)
{
    char cmd[1024], line[65536];
    json_t *lines = json_array();
    FILE *p;

    snprintf(cmd, sizeof(cmd),
             "KAFKA_BOOTSTRAP_SERVERS='%s' SCHEMA_REGISTRY_URL='%s' '%s' tail '%s' "
             "--from-beginning --count %d --timeout 60",
             stack_env("KAFKA_BOOTSTRAP_SERVERS"),
             f->registry ? stack_env("SCHEMA_REGISTRY_URL") : "", SAGACTL, f->topic, count);
    assert_non_null(p = popen(cmd, "r"));
    while (fgets(line, sizeof(line), p)) {
        json_error_t e;
        json_t *j = json_loads(line, 0, &e);
        if (!j)
            fail_msg("sagactl tail printed a line that is not JSON (%s): %s", e.text, line);
        json_array_append_new(lines, j);
    }
    *status = pclose(p);
    return lines;
}

static const char *str(const json_t *o, const char *path)
{
    /* "a.b.c": nested objects */
    char key[64];
    const char *dot;
    while ((dot = strchr(path, '.'))) {
        snprintf(key, sizeof(key), "%.*s", (int)(dot - path), path);
        o = json_object_get(o, key);
        path = dot + 1;
    }
    return json_string_value(json_object_get(o, path));
}

static json_int_t num(const json_t *o, const char *a, const char *b)
{
    json_t *v = json_object_get(o, a);
    if (b)
        v = json_object_get(v, b);
    assert_true(json_is_integer(v));
    return json_integer_value(v);
}

static void test_tail_every_event_and_the_undecodable(void **state)
{
    struct fixture *f = *state;
    static const unsigned char garbage[] = "\xc3\x01not really avro";
    static const unsigned char unknown_id[] = {0, 0x7f, 0xff, 0xff, 0xf0, 2, 'x'};
    struct saga_serde *second = f->confluent ? f->confluent : f->plain;
    int n = 0, status;
    json_t *lines, *l;

    for (int t = 0; t < SAGA_EV_COUNT; t++)
        produce_event(f, f->plain, (saga_event_type_t)t, 0);
    for (int t = 0; t < SAGA_EV_COUNT; t++)
        produce_event(f, second, (saga_event_type_t)t, 1);
    produce(f, ORDER, garbage, sizeof(garbage) - 1, NULL);
    produce(f, NULL, "hello", 5, NULL);
    produce(f, "k", "", 0, NULL);
    produce(f, "k", unknown_id, sizeof(unknown_id), NULL);
    assert_int_equal(rd_kafka_flush(f->producer, 30000), RD_KAFKA_RESP_ERR_NO_ERROR);
    n = 2 * SAGA_EV_COUNT + 4;

    lines = tail(f, n, &status);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    assert_int_equal(json_array_size(lines), n);

    for (int i = 0; i < 2 * SAGA_EV_COUNT; i++) {
        saga_event_type_t t = (saga_event_type_t)(i % SAGA_EV_COUNT);
        l = json_array_get(lines, i);
        assert_string_equal(str(l, "topic"), f->topic);
        assert_int_equal(num(l, "offset", NULL), i);
        assert_int_equal(num(l, "partition", NULL), 0);
        assert_true(json_is_integer(json_object_get(l, "timestamp")));
        assert_string_equal(str(l, "key"), ORDER);
        assert_null(json_object_get(l, "error"));
        assert_string_equal(str(l, "event_type"), saga_event_type_name(t));
        assert_string_equal(str(l, "headers.event_type"), saga_event_type_name(t));
        assert_string_equal(str(l, "event.meta.order_id"), ORDER);
        assert_string_equal(str(l, "event.meta.producer"), "test-service");
        assert_int_equal(num(json_object_get(l, "event"), "meta", "occurred_at"), 1763757600123LL);
        if (i < SAGA_EV_COUNT) {
            assert_string_equal(str(l, "event.meta.causation_id"),
                                "9e8d7c6b-5a49-4382-9170-6f5e4d3c2b1a");
        } else {
            assert_true(json_is_null(json_object_get(
                json_object_get(json_object_get(l, "event"), "meta"), "causation_id")));
        }
    }
    /* a few fields of each kind: nested records, arrays, enums as symbols, money */
    l = json_object_get(json_array_get(lines, SAGA_EV_ORDER_PLACED), "event");
    assert_int_equal(num(l, "total_amount", NULL), 4900);
    assert_string_equal(str(l, "shipping_address.line2"), "Flat 3 — über den Wolken");
    assert_int_equal(json_array_size(json_object_get(l, "items")), 2);
    assert_int_equal(num(json_array_get(json_object_get(l, "items"), 1), "unit_price", NULL), 2400);
    l = json_object_get(json_array_get(lines, SAGA_EV_ORDER_CANCELLED), "event");
    assert_string_equal(str(l, "reason"), "PAYMENT_FAILED");
    assert_string_equal(str(l, "detail"), "CARD_DECLINED");
    l = json_object_get(json_array_get(lines, SAGA_EV_COUNT + SAGA_EV_ORDER_CANCELLED), "event");
    assert_true(json_is_null(json_object_get(l, "detail")));
    l = json_object_get(json_array_get(lines, SAGA_EV_INVENTORY_RELEASED), "event");
    assert_string_equal(str(l, "reason"), "PAYMENT_FAILED");
    assert_string_equal(str(json_array_get(json_object_get(l, "items"), 0), "sku"), "sku-mug");
    l = json_object_get(json_array_get(lines, SAGA_EV_PAYMENT_FAILED), "event");
    assert_string_equal(str(l, "reason"), "INSUFFICIENT_FUNDS");
    assert_int_equal(num(l, "amount", NULL), 4900);
    l = json_object_get(json_array_get(lines, SAGA_EV_SHIPMENT_FAILED), "event");
    assert_string_equal(str(l, "reason"), "UNSUPPORTED_DESTINATION");
    l = json_object_get(json_array_get(lines, SAGA_EV_NOTIFICATION_SENT), "event");
    assert_string_equal(str(l, "outcome"), "CANCELLED");
    assert_string_equal(str(l, "channel"), "LOG");
    assert_string_equal(str(l, "message"), "Your order was cancelled: payment failed.");
    l = json_object_get(json_array_get(lines, SAGA_EV_SHIPMENT_SCHEDULED), "event");
    assert_string_equal(str(l, "carrier"), "Saga Post");

    /* the undecodable: where they are and why, nothing else */
    for (int i = 2 * SAGA_EV_COUNT; i < n; i++) {
        l = json_array_get(lines, i);
        assert_int_equal(num(l, "offset", NULL), i);
        assert_string_equal(str(l, "topic"), f->topic);
        assert_non_null(str(l, "error"));
        assert_true(strlen(str(l, "error")) > 0);
        assert_null(json_object_get(l, "event"));
        assert_null(json_object_get(l, "event_type"));
    }
    assert_true(json_is_null(json_object_get(json_array_get(lines, 2 * SAGA_EV_COUNT + 1), "key")));
    assert_int_equal(num(json_array_get(lines, 2 * SAGA_EV_COUNT + 2), "size", NULL), 0);
    json_decref(lines);
}

static void test_tail_of_a_missing_topic_fails(void **state)
{
    struct fixture *f = *state;
    char cmd[512];
    int status;
    snprintf(cmd, sizeof(cmd),
             "KAFKA_BOOTSTRAP_SERVERS='%s' '%s' tail '%s-nope' --count 1 >/dev/null 2>&1",
             stack_env("KAFKA_BOOTSTRAP_SERVERS"), SAGACTL, f->topic);
    status = system(cmd);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 1);
}

/* Creates topic (one partition) whose broker refuses messages larger than max_bytes. */
static void create_small_topic(rd_kafka_t *rk, const char *topic, const char *max_bytes)
{
    char err[256];
    rd_kafka_NewTopic_t *nt = rd_kafka_NewTopic_new(topic, 1, 1, err, sizeof(err));
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    const rd_kafka_CreateTopics_result_t *res;
    const rd_kafka_topic_result_t **tr;
    rd_kafka_event_t *ev;
    size_t n;

    assert_non_null(nt);
    assert_int_equal(rd_kafka_NewTopic_set_config(nt, "max.message.bytes", max_bytes),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_CreateTopics(rk, &nt, 1, NULL, q);
    assert_non_null(ev = rd_kafka_queue_poll(q, 30000));
    assert_non_null(res = rd_kafka_event_CreateTopics_result(ev));
    tr = rd_kafka_CreateTopics_result_topics(res, &n);
    assert_int_equal(n, 1);
    if (rd_kafka_topic_result_error(tr[0]))
        fail_msg("create %s: %s", topic, rd_kafka_topic_result_error_string(tr[0]));
    rd_kafka_event_destroy(ev);
    rd_kafka_NewTopic_destroy(nt);
    rd_kafka_queue_destroy(q);
}

/* Runs sh -c cmd with stdout and stderr into out; returns the exit status. */
static int run(const char *cmd, char *out, size_t size)
{
    char full[2048];
    size_t len = 0, n;
    FILE *p;
    int status;

    snprintf(full, sizeof(full), "%s 2>&1", cmd);
    assert_non_null(p = popen(full, "r"));
    while (len + 1 < size && (n = fread(out + len, 1, size - 1 - len, p)) > 0)
        len += n;
    out[len] = '\0';
    status = pclose(p);
    assert_true(WIFEXITED(status));
    return WEXITSTATUS(status);
}

static int64_t high_watermark(rd_kafka_t *rk, const char *topic)
{
    int64_t lo = 0, hi = 0;
    assert_int_equal(rd_kafka_query_watermark_offsets(rk, topic, 0, &lo, &hi, 10000),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
    return hi;
}

static void test_dlq_replay_reports_each_message_and_fails_on_a_refused_one(void **state)
{
    struct fixture *f = *state;
    char src[128], dlq[128], cmd[1024], out[8192], want[512];
    const char *names[1] = {dlq};
    struct saga_topic_status st[1];
    size_t big_len = 8000;
    char *big = malloc(big_len);
    int code;

    snprintf(src, sizeof(src), "%s-small", f->topic);
    snprintf(dlq, sizeof(dlq), "%s-dlq", f->topic);
    create_small_topic(f->producer, src, "2048");
    assert_int_equal(saga_kafka_topics_ensure(f->producer, names, 1, 1, 1, 10000, st), SAGA_OK);
    /* Two dead letters of src: 0:0 fits its max.message.bytes, 0:1 does not. */
    memset(big, 'x', big_len);
    for (int i = 0; i < 2; i++) {
        rd_kafka_headers_t *h = rd_kafka_headers_new(4);
        void *value = i ? big : "small";
        size_t len = i ? big_len : 5;
        rd_kafka_header_add(h, "dlq.source.topic", -1, src, -1);
        rd_kafka_header_add(h, "dlq.reason", -1, "invalid", -1);
        assert_int_equal(rd_kafka_producev(f->producer, RD_KAFKA_V_TOPIC(dlq),
                                           RD_KAFKA_V_KEY(ORDER, 36), RD_KAFKA_V_VALUE(value, len),
                                           RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                           RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END),
                         RD_KAFKA_RESP_ERR_NO_ERROR);
    }
    assert_int_equal(rd_kafka_flush(f->producer, 30000), RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(high_watermark(f->producer, dlq), 2);

    /* The one that fits: replayed, exit 0, and it is on src. */
    snprintf(cmd, sizeof(cmd), "KAFKA_BOOTSTRAP_SERVERS='%s' '%s' dlq replay --topic '%s' 0:0",
             stack_env("KAFKA_BOOTSTRAP_SERVERS"), SAGACTL, dlq);
    code = run(cmd, out, sizeof(out));
    snprintf(want, sizeof(want), "replayed %s/0/0 to %s", dlq, src);
    if (code != 0 || !strstr(out, want))
        fail_msg("replay of 0:0 exited %d, expected 0 and '%s':\n%s", code, want, out);
    assert_int_equal(high_watermark(f->producer, src), 1);

    /* The one the broker refuses: named as failed with the cause, exit 1, not on src. */
    snprintf(cmd, sizeof(cmd), "KAFKA_BOOTSTRAP_SERVERS='%s' '%s' dlq replay --topic '%s' 0:1",
             stack_env("KAFKA_BOOTSTRAP_SERVERS"), SAGACTL, dlq);
    code = run(cmd, out, sizeof(out));
    snprintf(want, sizeof(want), "failed %s/0/1 to %s", dlq, src);
    if (code != 1 || !strstr(out, want) || !strstr(out, "too large"))
        fail_msg("replay of 0:1 exited %d, expected 1 and '%s: ... too large':\n%s", code, want,
                 out);
    snprintf(want, sizeof(want), "replayed %s/0/1", dlq);
    assert_null(strstr(out, want));
    assert_int_equal(high_watermark(f->producer, src), 1);

    /* --all: one line per message, and the refused one fails the command. */
    snprintf(cmd, sizeof(cmd), "KAFKA_BOOTSTRAP_SERVERS='%s' '%s' dlq replay --topic '%s' --all",
             stack_env("KAFKA_BOOTSTRAP_SERVERS"), SAGACTL, dlq);
    code = run(cmd, out, sizeof(out));
    snprintf(want, sizeof(want), "failed %s/0/1 to %s", dlq, src);
    if (code != 1 || !strstr(out, want))
        fail_msg("replay --all exited %d, expected 1 and '%s':\n%s", code, want, out);
    snprintf(want, sizeof(want), "%s/0/0 to %s", dlq, src); /* replayed or failed, but said */
    assert_non_null(strstr(out, want));
    free(big);
}

/*
 * The laundering of a forged event: a dead letter (written by whoever can write some DLQ)
 * whose dlq.source.topic names one of the suite's topics, here a ShipmentScheduled from
 * notification-service "back" to shipping. sagactl dlq replay refuses it, says why, exits
 * 1, and nothing reaches shipping.
 */
static void test_forged_dead_letter_for_another_services_topic_is_not_replayed(void **state)
{
    struct fixture *f = *state;
    char dlq[128], cmd[1024], out[8192], key[128], group[96];
    const char *names[1] = {dlq};
    struct saga_topic_status st[1];
    struct saga_event ev;
    struct saga_buf buf = {0};
    rd_kafka_headers_t *h = rd_kafka_headers_new(8);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_partition_list_t *from;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_topic_t *rkt;
    rd_kafka_t *c;
    char err[512];
    int code, parts, arrived = 0;

    snprintf(dlq, sizeof(dlq), "%s-launder-dlq", f->topic);
    snprintf(key, sizeof(key), "%s-victim", f->topic);
    assert_int_equal(saga_kafka_topics_ensure(f->producer, names, 1, 1, 1, 10000, st), SAGA_OK);
    sample_event(&ev, SAGA_EV_SHIPMENT_SCHEDULED, 0);
    ev.meta.order_id = key;
    ev.meta.producer = "notification-service";
    assert_int_equal(saga_serde_encode(f->plain, &ev, &buf, err, sizeof(err)), SAGA_OK);
    assert_int_equal(saga_event_headers_add(h, &ev), SAGA_OK);
    rd_kafka_header_add(h, "dlq.source.topic", -1, "shipping", -1);
    rd_kafka_header_add(h, "dlq.reason", -1, "invalid", -1);
    rd_kafka_header_add(h, "dlq.consumer", -1, "shipping-service", -1);
    assert_int_equal(rd_kafka_producev(f->producer, RD_KAFKA_V_TOPIC(dlq),
                                       RD_KAFKA_V_KEY(key, strlen(key)),
                                       RD_KAFKA_V_VALUE(buf.data, buf.len),
                                       RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                       RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
    saga_buf_release(&buf);
    assert_int_equal(rd_kafka_flush(f->producer, 30000), RD_KAFKA_RESP_ERR_NO_ERROR);

    /* Where shipping ends now: anything after this came from the replay. */
    rd_kafka_conf_set(conf, "bootstrap.servers", stack_env("KAFKA_BOOTSTRAP_SERVERS"), NULL, 0);
    rd_kafka_conf_set(conf, "group.id", stack_unique("it-launder", group, sizeof(group)), NULL, 0);
    c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, NULL, 0);
    rkt = rd_kafka_topic_new(c, "shipping", NULL);
    assert_int_equal(rd_kafka_metadata(c, 0, rkt, &md, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
    parts = md->topics[0].partition_cnt;
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    from = rd_kafka_topic_partition_list_new(parts);
    for (int p = 0; p < parts; p++) {
        int64_t lo = 0, hi = 0;
        assert_int_equal(rd_kafka_query_watermark_offsets(c, "shipping", p, &lo, &hi, 10000),
                         RD_KAFKA_RESP_ERR_NO_ERROR);
        rd_kafka_topic_partition_list_add(from, "shipping", p)->offset = hi;
    }

    snprintf(cmd, sizeof(cmd), "KAFKA_BOOTSTRAP_SERVERS='%s' '%s' dlq replay --topic '%s' --all",
             stack_env("KAFKA_BOOTSTRAP_SERVERS"), SAGACTL, dlq);
    code = run(cmd, out, sizeof(out));
    if (code != 1 || !strstr(out, "refused") || !strstr(out, "shipping"))
        fail_msg("replay of a dead letter naming shipping exited %d, expected 1 and 'refused':\n%s",
                 code, out);
    assert_null(strstr(out, "replayed"));

    assert_int_equal(rd_kafka_assign(c, from), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_topic_partition_list_destroy(from);
    for (long long end = now_ms() + 3000; now_ms() < end;) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 200);
        if (!m)
            continue;
        if (!m->err && m->key_len == strlen(key) && !memcmp(m->key, key, m->key_len))
            arrived++;
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
    if (arrived)
        fail_msg("the forged ShipmentScheduled reached shipping (%d message%s)", arrived,
                 arrived == 1 ? "" : "s");
}

/* A message's place in its topic. */
struct ref_pos {
    int32_t partition;
    int64_t offset;
};

/* Where each partition of topic ends now (at most max partitions); the partition count. */
static int topic_ends(rd_kafka_t *rk, const char *topic, int64_t *ends, int max)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    int parts;

    assert_int_equal(rd_kafka_metadata(rk, 0, rkt, &md, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(md->topics[0].err, RD_KAFKA_RESP_ERR_NO_ERROR);
    parts = md->topics[0].partition_cnt;
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    assert_true(parts <= max);
    for (int p = 0; p < parts; p++) {
        int64_t lo = 0, hi = 0;
        assert_int_equal(rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, 10000),
                         RD_KAFKA_RESP_ERR_NO_ERROR);
        ends[p] = hi;
    }
    return parts;
}

/*
 * Reads topic from the ends given (topic_ends) for wait_ms, or until the first message
 * with key when first is not NULL (its position goes there). Returns how many messages
 * with key it saw.
 */
static int messages_with_key(const char *topic, const int64_t *from, int parts, const char *key,
                             int wait_ms, struct ref_pos *first)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_topic_partition_list_t *asg = rd_kafka_topic_partition_list_new(parts);
    rd_kafka_t *c;
    char group[96];
    int seen = 0;

    rd_kafka_conf_set(conf, "bootstrap.servers", stack_env("KAFKA_BOOTSTRAP_SERVERS"), NULL, 0);
    rd_kafka_conf_set(conf, "group.id", stack_unique("it-sagactl-read", group, sizeof(group)), NULL,
                      0);
    assert_non_null(c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, NULL, 0));
    for (int p = 0; p < parts; p++)
        rd_kafka_topic_partition_list_add(asg, topic, p)->offset = from[p];
    assert_int_equal(rd_kafka_assign(c, asg), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_topic_partition_list_destroy(asg);
    for (long long end = now_ms() + wait_ms; now_ms() < end && !(first && seen);) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 200);
        if (!m)
            continue;
        if (!m->err && m->key_len == strlen(key) && !memcmp(m->key, key, m->key_len)) {
            if (first && !seen) {
                first->partition = m->partition;
                first->offset = m->offset;
            }
            seen++;
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
    return seen;
}

/* Runs a statement on conn with one binary parameter $1 (the rest in the text). */
static void exec_with_bytes(PGconn *conn, const char *sql, const void *bytes, size_t len)
{
    const char *values[1] = {bytes};
    int lengths[1] = {(int)len}, formats[1] = {1};
    PGresult *r = PQexecParams(conn, sql, 1, NULL, values, lengths, formats, 0);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(conn));
    PQclear(r);
}

/*
 * The laundering of a forged order, as the security review did it, through the real
 * consumer runtime: with only notification-service's database login, a row in its
 * deferred table, marked dead, holding an OrderPlaced "from order-service" for topic
 * orders and pointing at orders/0/<its end> (where no such record is). The running
 * notification-service sweeps it to notification.dlq with dlq.source.topic=orders, and the
 * type and producer check of sagactl dlq replay passes. sagactl must refuse it anyway,
 * because the record at its source position is not this one; and nothing reaches orders.
 */
static void test_forged_deferred_row_is_not_laundered_onto_orders(void **state)
{
    struct fixture *f = *state;
    struct ref_pos at = {0, 0};
    int64_t dlq_from[64], orders_from[64];
    char key[128], event_id[160], sql[1024], cmd[1024], out[8192], want[256];
    struct saga_event ev;
    struct saga_buf buf = {0};
    int dlq_parts, orders_parts, code, arrived;
    PGconn *conn;
    char err[512];

    stack_unique("forged-order", key, sizeof(key));
    snprintf(event_id, sizeof(event_id), "%s-event", key);
    sample_event(&ev, SAGA_EV_ORDER_PLACED, 0);
    ev.meta.order_id = key;
    ev.meta.correlation_id = key;
    ev.meta.event_id = event_id;
    ev.meta.producer = "order-service"; /* orders' owner: the claim passes the check */
    assert_int_equal(saga_serde_encode(f->plain, &ev, &buf, err, sizeof(err)), SAGA_OK);

    dlq_parts = topic_ends(f->producer, "notification.dlq", dlq_from, 64);
    orders_parts = topic_ends(f->producer, "orders", orders_from, 64);
    conn = PQconnectdb(stack_env("NOTIFICATION_DATABASE_URL"));
    if (PQstatus(conn) != CONNECTION_OK)
        fail_msg("notification's database: %s", PQerrorMessage(conn));
    snprintf(sql, sizeof(sql),
             "INSERT INTO deferred (consumer, wait_key, event_id, event_type, topic, kpartition,"
             " koffset, msg_key, payload, headers, dead_reason, dead_at)"
             " VALUES ('notification-service', '%s', '%s', 'OrderPlaced', 'orders', 0, %lld,"
             " '%s', $1, '{\"event_type\": \"OrderPlaced\"}', 'failed when released',"
             " clock_timestamp())",
             key, event_id, (long long)orders_from[0], key);
    exec_with_bytes(conn, sql, buf.data, buf.len);
    PQfinish(conn);
    saga_buf_release(&buf);

    /* The runtime sweeps dead rows every few seconds. */
    if (messages_with_key("notification.dlq", dlq_from, dlq_parts, key, 60000, &at) != 1)
        fail_msg("notification-service did not sweep the dead row %s to notification.dlq", key);

    snprintf(cmd, sizeof(cmd),
             "KAFKA_BOOTSTRAP_SERVERS='%s' '%s' dlq replay notification %d:%lld --timeout 30",
             stack_env("KAFKA_BOOTSTRAP_SERVERS"), SAGACTL, (int)at.partition,
             (long long)at.offset);
    code = run(cmd, out, sizeof(out));
    fprintf(stderr, "sagactl dlq replay notification %d:%lld (exit %d):\n%s", (int)at.partition,
            (long long)at.offset, code, out);
    snprintf(want, sizeof(want), "refused notification.dlq/%d/%lld to orders: ", (int)at.partition,
             (long long)at.offset);
    if (code != 1 || !strstr(out, want))
        fail_msg("the laundered OrderPlaced: exit %d, expected 1 and '%s...'", code, want);
    assert_null(strstr(out, "replayed"));
    arrived = messages_with_key("orders", orders_from, orders_parts, key, 3000, NULL);
    if (arrived)
        fail_msg("the forged OrderPlaced reached orders (%d message%s)", arrived,
                 arrived == 1 ? "" : "s");
}

/* Deletes topic's partition 0 up to (not including) before: retention, on demand. */
static void delete_records_before(rd_kafka_t *rk, const char *topic, int64_t before)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_DeleteRecords_t *del;
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    const rd_kafka_topic_partition_list_t *res;
    rd_kafka_event_t *ev;

    rd_kafka_topic_partition_list_add(l, topic, 0)->offset = before;
    del = rd_kafka_DeleteRecords_new(l);
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_DeleteRecords(rk, &del, 1, NULL, q);
    assert_non_null(ev = rd_kafka_queue_poll(q, 30000));
    if (rd_kafka_event_error(ev))
        fail_msg("delete records of %s: %s", topic, rd_kafka_event_error_string(ev));
    res = rd_kafka_DeleteRecords_result_offsets(rd_kafka_event_DeleteRecords_result(ev));
    assert_int_equal(res->elems[0].err, RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_event_destroy(ev);
    rd_kafka_DeleteRecords_destroy(del);
    rd_kafka_queue_destroy(q);
}

/* One record to topic in a transaction: the record, then the commit marker after it. */
static void produce_in_a_transaction(const char *topic)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char id[96], err[256];
    rd_kafka_error_t *e;
    rd_kafka_t *p;

    rd_kafka_conf_set(conf, "bootstrap.servers", stack_env("KAFKA_BOOTSTRAP_SERVERS"), NULL, 0);
    rd_kafka_conf_set(conf, "transactional.id", stack_unique("it-sagactl-tx", id, sizeof(id)), NULL,
                      0);
    assert_non_null(p = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err)));
    e = rd_kafka_init_transactions(p, 30000);
    if (e)
        fail_msg("init transactions: %s", rd_kafka_error_string(e));
    e = rd_kafka_begin_transaction(p);
    if (e)
        fail_msg("begin transaction: %s", rd_kafka_error_string(e));
    assert_int_equal(rd_kafka_producev(p, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY("tx", 2),
                                       RD_KAFKA_V_VALUE("in a transaction", 16),
                                       RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
    e = rd_kafka_commit_transaction(p, 30000);
    if (e)
        fail_msg("commit: %s", rd_kafka_error_string(e));
    rd_kafka_destroy(p);
}

/* A dead letter to dlq: key, value, and headers dlq.source.topic src, and the partition and
 * offset when not NULL. */
static void produce_dead_letter(struct fixture *f, const char *dlq, const char *src,
                                const char *partition, const char *offset, char *key, void *value,
                                size_t len)
{
    rd_kafka_headers_t *h = rd_kafka_headers_new(8);
    rd_kafka_header_add(h, "event_type", -1, "OrderPlaced", -1);
    rd_kafka_header_add(h, "dlq.reason", -1, "invalid", -1);
    rd_kafka_header_add(h, "dlq.source.topic", -1, src, -1);
    if (partition)
        rd_kafka_header_add(h, "dlq.source.partition", -1, partition, -1);
    if (offset)
        rd_kafka_header_add(h, "dlq.source.offset", -1, offset, -1);
    assert_int_equal(
        rd_kafka_producev(f->producer, RD_KAFKA_V_TOPIC(dlq), RD_KAFKA_V_KEY(key, strlen(key)),
                          RD_KAFKA_V_VALUE(value, len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                          RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END),
        RD_KAFKA_RESP_ERR_NO_ERROR);
}

/* Runs sagactl dlq replay --topic dlq ARGS with src owned by order-service; exit status. */
static int replay(const char *dlq, const char *src, const char *args, char *out, size_t size)
{
    char cmd[1024];
    int code;
    snprintf(cmd, sizeof(cmd),
             "KAFKA_BOOTSTRAP_SERVERS='%s' SAGA_TOPIC_OWNERS='%s=order-service' '%s' dlq replay"
             " --topic '%s' %s --timeout 30",
             stack_env("KAFKA_BOOTSTRAP_SERVERS"), src, SAGACTL, dlq, args);
    code = run(cmd, out, size);
    fprintf(stderr, "sagactl dlq replay --topic %s %s (exit %d):\n%s", dlq, args, code, out);
    return code;
}

/*
 * A dead letter goes back only if it is the record at its source position, byte for byte
 * (key and value): a copy of the real record is replayed; one whose bytes differ from the
 * record at its position, one pointing past the partition's end and one naming no position
 * are refused, and so is one naming a transaction's commit marker (no record there). Once
 * the original is deleted (retention), the copy is refused too, unless the operator names
 * it with --force-unverified (never with --all).
 */
static void test_dead_letter_is_replayed_only_if_it_is_the_record_at_its_source(void **state)
{
    struct fixture *f = *state;
    char src[128], dlq[128], out[8192], want[512];
    const char *names[2] = {src, dlq};
    struct saga_topic_status st[2];
    struct saga_event ev;
    struct saga_buf real = {0}, forged = {0};
    char err[512];
    int code;

    snprintf(src, sizeof(src), "%s-origin", f->topic);
    snprintf(dlq, sizeof(dlq), "%s-origin-dlq", f->topic);
    assert_int_equal(saga_kafka_topics_ensure(f->producer, names, 2, 1, 1, 10000, st), SAGA_OK);
    sample_event(&ev, SAGA_EV_ORDER_PLACED, 0);
    ev.meta.producer = "order-service";
    assert_int_equal(saga_serde_encode(f->plain, &ev, &real, err, sizeof(err)), SAGA_OK);
    ev.u.order_placed.total_amount = 5; /* five headphones for 0.05 EUR */
    assert_int_equal(saga_serde_encode(f->plain, &ev, &forged, err, sizeof(err)), SAGA_OK);

    /* src: the real record at 0, another real one at 1. */
    assert_int_equal(rd_kafka_producev(f->producer, RD_KAFKA_V_TOPIC(src),
                                       RD_KAFKA_V_KEY(ORDER, strlen(ORDER)),
                                       RD_KAFKA_V_VALUE(real.data, real.len),
                                       RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(rd_kafka_producev(f->producer, RD_KAFKA_V_TOPIC(src),
                                       RD_KAFKA_V_KEY("other", 5), RD_KAFKA_V_VALUE("x", 1),
                                       RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(rd_kafka_flush(f->producer, 30000), RD_KAFKA_RESP_ERR_NO_ERROR);
    produce_in_a_transaction(src); /* its record at 2, the commit marker at 3 */
    /* dlq: 0 the real one's copy; 1 forged bytes at 0 (the real record's place); 2 forged
     * bytes at 1; 3 forged, past the end; 4 forged, no position; 5 real bytes, wrong key;
     * 6 forged, at the transaction's commit marker (an offset that holds no record). */
    produce_dead_letter(f, dlq, src, "0", "0", ORDER, real.data, real.len);
    produce_dead_letter(f, dlq, src, "0", "0", ORDER, forged.data, forged.len);
    produce_dead_letter(f, dlq, src, "0", "1", ORDER, forged.data, forged.len);
    produce_dead_letter(f, dlq, src, "0", "99", ORDER, forged.data, forged.len);
    produce_dead_letter(f, dlq, src, NULL, NULL, ORDER, forged.data, forged.len);
    produce_dead_letter(f, dlq, src, "0", "0", "another-order", real.data, real.len);
    produce_dead_letter(f, dlq, src, "0", "3", ORDER, forged.data, forged.len); /* 6: marker */
    assert_int_equal(rd_kafka_flush(f->producer, 30000), RD_KAFKA_RESP_ERR_NO_ERROR);

    code = replay(dlq, src, "0:0", out, sizeof(out));
    snprintf(want, sizeof(want), "replayed %s/0/0 to %s", dlq, src);
    if (code != 0 || !strstr(out, want))
        fail_msg("the real dead letter: exit %d, expected 0 and '%s'", code, want);
    assert_int_equal(high_watermark(f->producer, src), 5);

    code = replay(dlq, src, "0:1 0:2 0:3 0:4 0:5 0:6", out, sizeof(out));
    assert_int_equal(code, 1);
    assert_null(strstr(out, "replayed"));
    for (int i = 1; i <= 6; i++) {
        snprintf(want, sizeof(want), "refused %s/0/%d to %s: ", dlq, i, src);
        if (!strstr(out, want))
            fail_msg("dead letter 0:%d is not refused ('%s')", i, want);
    }
    snprintf(want, sizeof(want), "not the record at %s/0/0", src);
    assert_non_null(strstr(out, want));
    snprintf(want, sizeof(want), "not the record at %s/0/1", src);
    assert_non_null(strstr(out, want));
    snprintf(want, sizeof(want), "no record at %s/0/99", src);
    assert_non_null(strstr(out, want));
    assert_non_null(strstr(out, "dlq.source.partition"));
    snprintf(want, sizeof(want), "no record at %s/0/3 (the offset holds a transaction marker", src);
    assert_non_null(strstr(out, want));
    assert_non_null(strstr(out, "6 dead letters refused"));
    assert_int_equal(high_watermark(f->producer, src), 5);

    /* Retention takes the original: refused, with the way out named. */
    delete_records_before(f->producer, src, 5);
    code = replay(dlq, src, "0:0", out, sizeof(out));
    snprintf(want, sizeof(want), "refused %s/0/0 to %s: the original at %s/0/0 is gone", dlq, src,
             src);
    if (code != 1 || !strstr(out, want) || !strstr(out, "--force-unverified"))
        fail_msg("the real dead letter after retention: exit %d, expected 1 and '%s'", code, want);
    /* Not for --all: each unverified dead letter is named by the operator. */
    assert_int_equal(replay(dlq, src, "--all --force-unverified", out, sizeof(out)), 64);
    assert_int_equal(high_watermark(f->producer, src), 5);
    /* Named: replayed, still checked for its type and producer. */
    code = replay(dlq, src, "0:0 --force-unverified", out, sizeof(out));
    snprintf(want, sizeof(want), "replayed %s/0/0 to %s", dlq, src);
    if (code != 0 || !strstr(out, want))
        fail_msg("--force-unverified: exit %d, expected 0 and '%s'", code, want);
    assert_int_equal(high_watermark(f->producer, src), 6);
    saga_buf_release(&real);
    saga_buf_release(&forged);
}

/*
 * An offset that holds a transaction's commit marker never held a record: a dead letter
 * naming it is refused, and --force-unverified does not send it either. (Found by a
 * review: sagactl called such an offset "gone" and named --force-unverified as the way
 * out; with it, the forged bytes were replayed onto the owner's topic.)
 */
static void test_forged_dead_letter_at_a_transaction_marker_is_refused_even_forced(void **state)
{
    struct fixture *f = *state;
    char src[128], dlq[128], out[8192];
    const char *names[2] = {src, dlq};
    struct saga_topic_status st[2];
    struct saga_event ev;
    struct saga_buf forged = {0};
    char err[512];
    int code;

    snprintf(src, sizeof(src), "%s-marker", f->topic);
    snprintf(dlq, sizeof(dlq), "%s-marker-dlq", f->topic);
    assert_int_equal(saga_kafka_topics_ensure(f->producer, names, 2, 1, 1, 10000, st), SAGA_OK);
    sample_event(&ev, SAGA_EV_ORDER_PLACED, 0);
    ev.meta.producer = "order-service";
    ev.u.order_placed.total_amount = 5; /* five headphones for 0.05 EUR */
    assert_int_equal(saga_serde_encode(f->plain, &ev, &forged, err, sizeof(err)), SAGA_OK);
    produce_in_a_transaction(src); /* its record at 0, the commit marker at 1 */
    for (long long end = now_ms() + 30000; high_watermark(f->producer, src) < 2 && now_ms() < end;)
        usleep(100 * 1000); /* the marker is written after the commit returns */
    assert_int_equal(high_watermark(f->producer, src), 2);
    produce_dead_letter(f, dlq, src, "0", "1", ORDER, forged.data, forged.len);
    assert_int_equal(rd_kafka_flush(f->producer, 30000), RD_KAFKA_RESP_ERR_NO_ERROR);

    code = replay(dlq, src, "0:0", out, sizeof(out));
    assert_int_equal(code, 1);
    assert_null(strstr(out, "--force-unverified")); /* no way out is named */
    code = replay(dlq, src, "0:0 --force-unverified", out, sizeof(out));
    assert_int_equal(code, 1);
    if (high_watermark(f->producer, src) != 2)
        fail_msg("the forged dead letter at the commit marker %s/0/1 was replayed with "
                 "--force-unverified (exit %d): the marker offset was reported as a gone record",
                 src, code);
    saga_buf_release(&forged);
}

/* The bytes a terminal acts on: ESC, BEL, the C1 CSI (U+009B as UTF-8) and a byte that is not
 * UTF-8 at all. NULL when out has none of them. */
static const char *raw_control(const char *out, size_t len)
{
    for (size_t i = 0; i < len; i++) {
        unsigned char c = (unsigned char)out[i];
        if ((c < 0x20 && c != '\n') || c == 0x7f || c == 0xff ||
            (c == 0xc2 && i + 1 < len && (unsigned char)out[i + 1] >= 0x80 &&
             (unsigned char)out[i + 1] <= 0x9f))
            return out + i;
    }
    return NULL;
}

#define TITLE "\x1b]0;pwned\x07" /* sets the terminal's title */
#define CLEAR "\x1b[2J"          /* clears the screen */
#define C1CSI                                                                                      \
    "\xc2\x9b"                                                                                     \
    "31m"                                   /* CSI as one C1 character */
#define EVENT_EVIL TITLE CLEAR C1CSI "\x7f" /* and DEL (an event's strings are UTF-8) */
#define EVIL       EVENT_EVIL "\xff"        /* and a byte that is not UTF-8 */

/*
 * Terminal escape injection: a dead letter whose headers (names and values), key and
 * event's string fields carry escape sequences. Nothing sagactl prints about it (dlq list,
 * dlq show, tail) holds a raw control character; each is shown escaped instead.
 */
static void test_control_characters_are_escaped_in_everything_printed(void **state)
{
    struct fixture *f = *state;
    char dlq[128], cmd[1024], out[65536];
    const char *names[1] = {dlq};
    struct saga_topic_status st[1];
    struct saga_event ev;
    struct saga_buf buf = {0};
    rd_kafka_headers_t *h = rd_kafka_headers_new(8);
    const char *at;
    char err[512];
    const char *cmds[3] = {"dlq list --topic", "dlq show 0:0 --topic",
                           "tail --from-beginning --count 1 --timeout 60"};

    snprintf(dlq, sizeof(dlq), "%s-escape-dlq", f->topic);
    assert_int_equal(saga_kafka_topics_ensure(f->producer, names, 1, 1, 1, 10000, st), SAGA_OK);
    sample_event(&ev, SAGA_EV_PAYMENT_FAILED, 0);
    ev.meta.order_id = "order-" EVENT_EVIL;
    ev.meta.event_id = "event-" EVENT_EVIL;
    ev.meta.producer = "producer-" EVENT_EVIL;
    ev.u.payment_failed.customer_id = "customer-" EVENT_EVIL;
    assert_int_equal(saga_serde_encode(f->plain, &ev, &buf, err, sizeof(err)), SAGA_OK);
    rd_kafka_header_add(h, "dlq.source.topic", -1, "topic-" EVIL, -1);
    rd_kafka_header_add(h, "dlq.reason", -1, "reason-" EVIL, -1);
    rd_kafka_header_add(h, "dlq.error", -1, "error-" EVIL, -1);
    rd_kafka_header_add(h, "dlq.attempts", -1, EVIL, -1);
    rd_kafka_header_add(h, "event_type", -1, "type-" EVIL, -1);
    rd_kafka_header_add(h, "name-" EVIL, -1, "value-" EVIL, -1);
    assert_int_equal(rd_kafka_producev(f->producer, RD_KAFKA_V_TOPIC(dlq),
                                       RD_KAFKA_V_KEY("key-" EVIL, strlen("key-" EVIL)),
                                       RD_KAFKA_V_VALUE(buf.data, buf.len),
                                       RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                       RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
    saga_buf_release(&buf);
    assert_int_equal(rd_kafka_flush(f->producer, 30000), RD_KAFKA_RESP_ERR_NO_ERROR);

    for (int i = 0; i < 3; i++) {
        char sub[256];
        int code;
        snprintf(sub, sizeof(sub), "%s '%s'", cmds[i], dlq);
        snprintf(cmd, sizeof(cmd), "KAFKA_BOOTSTRAP_SERVERS='%s' '%s' %s",
                 stack_env("KAFKA_BOOTSTRAP_SERVERS"), SAGACTL, sub);
        code = run(cmd, out, sizeof(out));
        fprintf(stderr, "sagactl %s (exit %d):\n%s", sub, code, out);
        assert_int_equal(code, 0);
        if ((at = raw_control(out, strlen(out))))
            fail_msg("sagactl %s printed the raw byte 0x%02x at offset %td", sub,
                     (unsigned char)*at, at - out);
        /* Shown, escaped: as \x1b (text) or \u001B (JSON). */
        if (!strstr(out, "\\x1b]0;pwned\\x07") && !strstr(out, "\\u001B]0;pwned\\u0007"))
            fail_msg("sagactl %s does not show the escaped title sequence", sub);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tail_every_event_and_the_undecodable),
        cmocka_unit_test(test_tail_of_a_missing_topic_fails),
        cmocka_unit_test(test_dlq_replay_reports_each_message_and_fails_on_a_refused_one),
        cmocka_unit_test(test_forged_dead_letter_for_another_services_topic_is_not_replayed),
        cmocka_unit_test(test_control_characters_are_escaped_in_everything_printed),
        cmocka_unit_test(test_forged_deferred_row_is_not_laundered_onto_orders),
        cmocka_unit_test(test_dead_letter_is_replayed_only_if_it_is_the_record_at_its_source),
        cmocka_unit_test(test_forged_dead_letter_at_a_transaction_marker_is_refused_even_forced),
    };
    if (getenv("IT_ONLY")) /* a glob: IT_ONLY='*forged*' */
        cmocka_set_test_filter(getenv("IT_ONLY"));
    return cmocka_run_group_tests(tests, setup, teardown);
}
