/*
 * The serde against an independent implementation (tests/vectors/avro_vectors.json,
 * written by fastavro), round trips of every event, malformed input and the
 * Kafka headers. No broker needed.
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
#include "saga/avro_canon.h"
#include "saga/headers.h"
#include "saga/serde.h"
#include "saga/utf8.h"

static json_t *vectors;

static int load_vectors(void **state)
{
    json_error_t jerr;
    vectors = json_load_file(SAGA_SOURCE_DIR "/tests/vectors/avro_vectors.json", 0, &jerr);
    if (!vectors)
        fprintf(stderr, "avro_vectors.json: %s\n", jerr.text);
    return vectors ? 0 : -1;
}

static int free_vectors(void **state)
{
    json_decref(vectors);
    return 0;
}

static struct saga_serde *new_serde(void)
{
    struct saga_serde *s = NULL;
    char err[512];
    if (saga_serde_new(&s, NULL, err, sizeof(err)) != SAGA_OK)
        fail_msg("serde: %s", err);
    return s;
}

static void le_hex(uint64_t fp, char out[17])
{
    for (int i = 0; i < 8; i++)
        sprintf(out + 2 * i, "%02x", (unsigned)(fp >> (8 * i)) & 0xff);
}

static size_t unhex(const char *hex, unsigned char *out, size_t max)
{
    size_t n = strlen(hex) / 2;
    assert_true(n <= max);
    for (size_t i = 0; i < n; i++) {
        unsigned v;
        sscanf(hex + 2 * i, "%2x", &v);
        out[i] = (unsigned char)v;
    }
    return n;
}

static void test_canonical_form_and_fingerprint_match_fastavro(void **state)
{
    json_t *schemas = json_object_get(vectors, "schemas"), *v, *t;
    const char *name;
    size_t i;
    char err[256], hex[17];

    assert_int_equal(json_object_size(schemas), SAGA_EV_COUNT);
    json_object_foreach(schemas, name, v)
    {
        saga_event_type_t type;
        const char *text;
        char *canon;
        assert_int_equal(saga_event_type_parse(name, &type), 0);
        text = saga_serde_schema_json(type);
        canon = saga_avro_canonical_form(text, strlen(text), err, sizeof(err));
        assert_non_null(canon);
        assert_string_equal(canon, json_string_value(json_object_get(v, "canonical")));
        le_hex(saga_avro_fingerprint64(canon, strlen(canon)), hex);
        assert_string_equal(hex, json_string_value(json_object_get(v, "fingerprint")));
        free(canon);
    }
    json_array_foreach(json_object_get(vectors, "tricky"), i, t)
    {
        const char *text = json_string_value(json_object_get(t, "schema"));
        char *canon = saga_avro_canonical_form(text, strlen(text), err, sizeof(err));
        if (!canon)
            fail_msg("%s: %s", text, err);
        assert_string_equal(canon, json_string_value(json_object_get(t, "canonical")));
        le_hex(saga_avro_fingerprint64(canon, strlen(canon)), hex);
        assert_string_equal(hex, json_string_value(json_object_get(t, "fingerprint")));
        free(canon);
    }
    /* The specification's own example: the fingerprint of "int". */
    assert_true(saga_avro_fingerprint64("\"int\"", 5) == 0x7275d51a3f395c8fULL);
}

static void test_bytes_equal_fastavro_both_ways(void **state)
{
    struct saga_serde *s = new_serde();
    struct saga_buf buf = {0};
    json_t *v;
    size_t i;
    char err[512];

    json_array_foreach(json_object_get(vectors, "single_object"), i, v)
    {
        saga_event_type_t type;
        struct saga_event want, got = {0};
        unsigned char bytes[4096];
        size_t n = unhex(json_string_value(json_object_get(v, "hex")), bytes, sizeof(bytes));

        assert_int_equal(
            saga_event_type_parse(json_string_value(json_object_get(v, "type")), &type), 0);
        sample_event(&want, type, (int)json_integer_value(json_object_get(v, "minimal")));
        /* Ours encodes to exactly fastavro's bytes ... */
        assert_int_equal(saga_serde_encode(s, &want, &buf, err, sizeof(err)), SAGA_OK);
        assert_int_equal(buf.len, n);
        assert_memory_equal(buf.data, bytes, n);
        /* ... and decodes fastavro's bytes to the same event. */
        if (saga_serde_decode(s, bytes, n, &got, err, sizeof(err)) != SAGA_DECODE_OK)
            fail_msg("decode %s: %s", saga_event_type_name(type), err);
        assert_true(saga_event_equal(&want, &got));
        saga_event_release(&got);
    }
    saga_buf_release(&buf);
    saga_serde_destroy(s);
}

static void test_every_event_round_trips(void **state)
{
    struct saga_serde *s = new_serde();
    struct saga_buf buf = {0};
    struct saga_event got = {0};
    char err[512];

    for (int minimal = 0; minimal <= 1; minimal++) {
        for (int t = 0; t < SAGA_EV_COUNT; t++) {
            struct saga_event want;
            uint64_t fp = 0;
            sample_event(&want, (saga_event_type_t)t, minimal);
            if (saga_serde_encode(s, &want, &buf, err, sizeof(err)) != SAGA_OK)
                fail_msg("encode %s: %s", saga_event_type_name((saga_event_type_t)t), err);
            /* Single-object framing: C3 01 and the writer schema's fingerprint. */
            assert_int_equal(buf.data[0], 0xc3);
            assert_int_equal(buf.data[1], 0x01);
            for (int i = 0; i < 8; i++)
                fp |= (uint64_t)buf.data[2 + i] << (8 * i);
            assert_true(fp == saga_serde_fingerprint(s, (saga_event_type_t)t));
            /* got is reused across decodes, as a consumer would. */
            if (saga_serde_decode(s, buf.data, buf.len, &got, err, sizeof(err)) != SAGA_DECODE_OK)
                fail_msg("decode %s: %s", saga_event_type_name((saga_event_type_t)t), err);
            assert_int_equal(got.type, t);
            assert_true(saga_event_equal(&want, &got));
        }
    }
    /* A decoded event owns its strings: they outlive the buffer. */
    memset(buf.data, 0, buf.len);
    assert_string_equal(got.meta.producer, "test-service");
    saga_event_release(&got);
    saga_buf_release(&buf);
    saga_serde_destroy(s);
}

static void test_arrays_change_shape_between_encodes(void **state)
{
    struct saga_serde *s = new_serde();
    struct saga_buf buf = {0};
    struct saga_event want, got = {0};
    const size_t counts[] = {5, 2, 5, 0, 3, 3, 1, 5};
    char err[512];

    /* The encoder reuses array elements and caches their handles: every shape change
     * must still produce exactly the lines given. */
    for (size_t i = 0; i < sizeof(counts) / sizeof(counts[0]); i++) {
        sample_order_placed5(&want);
        want.u.order_placed.item_count = counts[i];
        want.u.order_placed.items += 5 - counts[i] > 0 ? (5 - counts[i]) / 2 : 0;
        assert_int_equal(saga_serde_encode(s, &want, &buf, err, sizeof(err)), SAGA_OK);
        assert_int_equal(saga_serde_decode(s, buf.data, buf.len, &got, err, sizeof(err)),
                         SAGA_DECODE_OK);
        assert_int_equal(got.u.order_placed.item_count, counts[i]);
        assert_true(saga_event_equal(&want, &got));
    }
    saga_event_release(&got);
    saga_buf_release(&buf);
    saga_serde_destroy(s);
}

static void test_utf8_length_and_validity(void **state)
{
    const char *ok[] = {
        "",          "a",           "abcdefg", "abcdefgh",
        "abcdefghi", "héllo wörld", "€uro €",  "😀 emoji 😀 long enough to span words",
        "\x7f"};
    const char *bad[] = {"\xff",
                         "abc\xff",
                         "abcdefghij\xc3",
                         "\xed\xa0\x80 surrogate",
                         "ok ok ok ok \xc0\xaf overlong",
                         "\xf4\x90\x80\x80 past U+10FFFF"};
    char buf[128];

    /* Every alignment, since the fast path reads whole words. */
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        for (int off = 0; off < 8; off++) {
            strcpy(buf + off, ok[i]);
            assert_int_equal(saga_utf8_strlen(buf + off), strlen(ok[i]));
            assert_true(saga_utf8_valid_nonul(buf + off, strlen(ok[i])));
        }
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        for (int off = 0; off < 8; off++) {
            strcpy(buf + off, bad[i]);
            assert_true(saga_utf8_strlen(buf + off) == (size_t)-1);
            assert_false(saga_utf8_valid_nonul(buf + off, strlen(bad[i])));
        }
    }
    assert_false(saga_utf8_valid_nonul("a\0b", 3)); /* NUL inside is refused */
}

static void test_encode_rejects_bad_structs(void **state)
{
    struct saga_serde *s = new_serde();
    struct saga_buf buf = {0};
    struct saga_event ev;
    char err[512];

    sample_event(&ev, SAGA_EV_ORDER_PLACED, 0);
    ev.u.order_placed.customer_id = NULL;
    assert_int_equal(saga_serde_encode(s, &ev, &buf, err, sizeof(err)), SAGA_ERR_INVALID);
    assert_non_null(strstr(err, "OrderPlaced.customer_id"));

    sample_event(&ev, SAGA_EV_ORDER_PLACED, 0);
    ev.u.order_placed.shipping_address.city = "Lond\xff";
    assert_int_equal(saga_serde_encode(s, &ev, &buf, err, sizeof(err)), SAGA_ERR_INVALID);
    assert_non_null(strstr(err, "Address.city"));
    assert_non_null(strstr(err, "UTF-8"));

    sample_event(&ev, SAGA_EV_ORDER_CANCELLED, 0);
    ev.u.order_cancelled.reason = (saga_cancel_reason_t)42;
    assert_int_equal(saga_serde_encode(s, &ev, &buf, err, sizeof(err)), SAGA_ERR_INVALID);
    assert_non_null(strstr(err, "OrderCancelled.reason"));

    sample_event(&ev, SAGA_EV_INVENTORY_RESERVED, 0);
    ev.u.inventory_reserved.items = NULL;
    assert_int_equal(saga_serde_encode(s, &ev, &buf, err, sizeof(err)), SAGA_ERR_INVALID);

    saga_event_init(&ev, SAGA_EV_COUNT);
    assert_int_equal(saga_serde_encode(s, &ev, &buf, err, sizeof(err)), SAGA_ERR_INVALID);
    saga_buf_release(&buf);
    saga_serde_destroy(s);
}

/* --- malformed input ----------------------------------------------------- */

struct bb {
    unsigned char d[1024];
    size_t n;
};

static void put_raw(struct bb *b, const void *p, size_t n)
{
    memcpy(b->d + b->n, p, n);
    b->n += n;
}

static void put_long(struct bb *b, int64_t v)
{
    uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    do {
        unsigned char c = z & 0x7f;
        z >>= 7;
        if (z)
            c |= 0x80;
        b->d[b->n++] = c;
    } while (z);
}

static void put_str(struct bb *b, const char *s)
{
    put_long(b, (int64_t)strlen(s));
    put_raw(b, s, strlen(s));
}

static void put_header(struct bb *b, struct saga_serde *s, saga_event_type_t t)
{
    uint64_t fp = saga_serde_fingerprint(s, t);
    b->n = 0;
    b->d[b->n++] = 0xc3;
    b->d[b->n++] = 0x01;
    for (int i = 0; i < 8; i++)
        b->d[b->n++] = (unsigned char)(fp >> (8 * i));
}

/* An OrderCancelled by hand; each knob breaks one thing. */
struct knobs {
    int64_t id_len;       /* override the first string's length (0: honest) */
    const char *event_id; /* raw bytes of the first string */
    int64_t union_index;  /* causation_id's branch */
    int64_t reason;       /* enum index */
};

static size_t order_cancelled(struct saga_serde *s, struct bb *b, struct knobs k)
{
    const char *id = k.event_id ? k.event_id : "e-1";
    put_header(b, s, SAGA_EV_ORDER_CANCELLED);
    put_long(b, k.id_len ? k.id_len : (int64_t)strlen(id));
    put_raw(b, id, strlen(id));
    put_str(b, "o-1");
    put_str(b, "c-1");
    put_long(b, k.union_index); /* causation_id: 0 = null */
    put_long(b, 1763757600123LL);
    put_str(b, "test-service");
    put_long(b, 0);        /* traceparent: null */
    put_long(b, k.reason); /* reason */
    put_long(b, 0);        /* detail: null */
    return b->n;
}

static saga_decode_err_t decode(struct saga_serde *s, const void *p, size_t n, char *err,
                                size_t size)
{
    struct saga_event ev = {0};
    saga_decode_err_t e = saga_serde_decode(s, p, n, &ev, err, size);
    saga_event_release(&ev);
    return e;
}

static void test_malformed_input_gets_clear_codes(void **state)
{
    struct saga_serde *s = new_serde();
    struct bb b;
    char err[512];
    size_t n;
    const struct knobs ok = {0, NULL, 0, 2};

    n = order_cancelled(s, &b, ok);
    assert_int_equal(decode(s, b.d, n, err, sizeof(err)), SAGA_DECODE_OK);

    assert_int_equal(decode(s, b.d, 0, err, sizeof(err)), SAGA_DECODE_EMPTY);
    assert_int_equal(decode(s, "\x7f\x01", 2, err, sizeof(err)), SAGA_DECODE_BAD_MAGIC);
    assert_non_null(strstr(err, "0x7f"));
    assert_int_equal(decode(s, "\xc3\x01\x00", 3, err, sizeof(err)), SAGA_DECODE_TRUNCATED);
    assert_int_equal(decode(s, "\x00\x00\x01", 3, err, sizeof(err)), SAGA_DECODE_TRUNCATED);
    assert_int_equal(
        decode(s, "\xc3\x01\x01\x02\x03\x04\x05\x06\x07\x08\x00", 11, err, sizeof(err)),
        SAGA_DECODE_UNKNOWN_FINGERPRINT);
    assert_non_null(strstr(err, "0807060504030201"));
    assert_int_equal(decode(s, "\x00\x00\x00\x00\x07\x02", 6, err, sizeof(err)),
                     SAGA_DECODE_UNKNOWN_SCHEMA_ID);
    assert_non_null(strstr(err, "SCHEMA_REGISTRY_URL"));

    /* Every shorter prefix of a valid message is refused, never a crash: cut inside a
     * string, its length is larger than the message; anywhere else, it is truncated. */
    for (size_t cut = 10; cut < n; cut++) {
        saga_decode_err_t e = decode(s, b.d, cut, err, sizeof(err));
        if (e != SAGA_DECODE_TRUNCATED && e != SAGA_DECODE_BAD_LENGTH)
            fail_msg("cut at %zu: %s", cut, err);
    }
    b.d[n] = 0x00;
    assert_int_equal(decode(s, b.d, n + 1, err, sizeof(err)), SAGA_DECODE_TRAILING_BYTES);

    n = order_cancelled(s, &b, (struct knobs){-5, NULL, 0, 2});
    assert_int_equal(decode(s, b.d, n, err, sizeof(err)), SAGA_DECODE_BAD_LENGTH);
    n = order_cancelled(s, &b, (struct knobs){(int64_t)1 << 40, NULL, 0, 2});
    assert_int_equal(decode(s, b.d, n, err, sizeof(err)), SAGA_DECODE_BAD_LENGTH);
    assert_non_null(strstr(err, "at byte 10"));
    n = order_cancelled(s, &b, (struct knobs){0, "e-\xff", 0, 2});
    assert_int_equal(decode(s, b.d, n, err, sizeof(err)), SAGA_DECODE_BAD_UTF8);
    n = order_cancelled(s, &b, (struct knobs){0, "\xed\xa0\x80", 0, 2}); /* a surrogate */
    assert_int_equal(decode(s, b.d, n, err, sizeof(err)), SAGA_DECODE_BAD_UTF8);
    n = order_cancelled(s, &b, (struct knobs){0, NULL, 2, 2});
    assert_int_equal(decode(s, b.d, n, err, sizeof(err)), SAGA_DECODE_BAD_UNION);
    n = order_cancelled(s, &b, (struct knobs){0, NULL, -1, 2});
    assert_int_equal(decode(s, b.d, n, err, sizeof(err)), SAGA_DECODE_BAD_UNION);
    n = order_cancelled(s, &b, (struct knobs){0, NULL, 0, 6});
    assert_int_equal(decode(s, b.d, n, err, sizeof(err)), SAGA_DECODE_BAD_ENUM);

    /* A varint that never ends. */
    put_header(&b, s, SAGA_EV_ORDER_CANCELLED);
    memset(b.d + b.n, 0xff, 11);
    assert_int_equal(decode(s, b.d, b.n + 11, err, sizeof(err)), SAGA_DECODE_BAD_VARINT);

    /* An array claiming a billion items in a few bytes. */
    put_header(&b, s, SAGA_EV_INVENTORY_RESERVED);
    put_str(&b, "e");
    put_str(&b, "o");
    put_str(&b, "c");
    put_long(&b, 0);
    put_long(&b, 1);
    put_str(&b, "p");
    put_long(&b, 0);
    put_str(&b, "res-1");
    put_long(&b, 1000000000);
    put_str(&b, "sku");
    put_long(&b, 1);
    assert_int_equal(decode(s, b.d, b.n, err, sizeof(err)), SAGA_DECODE_BAD_LENGTH);
    saga_serde_destroy(s);
}

static void test_foreign_records_are_not_events(void **state)
{
    struct saga_serde *s = new_serde();
    const char *other = "{\"type\":\"record\",\"name\":\"Thing\",\"namespace\":\"elsewhere\","
                        "\"fields\":[{\"name\":\"x\",\"type\":\"long\"}]}";
    char *canon, err[512];
    unsigned char msg[16] = {0xc3, 0x01};
    uint64_t fp;

    assert_int_equal(saga_serde_add_schema(s, other, strlen(other), err, sizeof(err)), SAGA_OK);
    canon = saga_avro_canonical_form(other, strlen(other), err, sizeof(err));
    fp = saga_avro_fingerprint64(canon, strlen(canon));
    free(canon);
    for (int i = 0; i < 8; i++)
        msg[2 + i] = (unsigned char)(fp >> (8 * i));
    msg[10] = 0x02;
    assert_int_equal(decode(s, msg, 11, err, sizeof(err)), SAGA_DECODE_NOT_AN_EVENT);
    assert_non_null(strstr(err, "elsewhere.Thing"));
    assert_int_equal(saga_serde_add_schema(s, "{nope", 5, err, sizeof(err)), SAGA_ERR_INVALID);
    saga_serde_destroy(s);
}

static void test_headers_duplicate_the_body(void **state)
{
    rd_kafka_headers_t *h = rd_kafka_headers_new(8);
    struct saga_event ev;
    struct saga_event_headers got;
    char err[256];

    sample_event(&ev, SAGA_EV_PAYMENT_FAILED, 0);
    assert_int_equal(saga_event_headers_add(h, &ev), SAGA_OK);
    saga_event_headers_read(h, &got);
    assert_string_equal(got.event_id, ev.meta.event_id);
    assert_string_equal(got.event_type, "PaymentFailed");
    assert_string_equal(got.correlation_id, ev.meta.correlation_id);
    assert_string_equal(got.causation_id, ev.meta.causation_id);
    assert_string_equal(got.traceparent, ev.meta.traceparent);
    assert_int_equal(saga_event_headers_check(&got, &ev, err, sizeof(err)), 0);
    ev.meta.event_id = "someone-else";
    assert_int_equal(saga_event_headers_check(&got, &ev, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "event_id"));
    rd_kafka_headers_destroy(h);

    /* Absent values are left out, and read back as "". */
    h = rd_kafka_headers_new(8);
    sample_event(&ev, SAGA_EV_ORDER_PLACED, 1);
    assert_int_equal(saga_event_headers_add(h, &ev), SAGA_OK);
    saga_event_headers_read(h, &got);
    assert_string_equal(got.causation_id, "");
    assert_string_equal(got.traceparent, "");
    assert_int_equal(rd_kafka_header_cnt(h), 3);
    assert_int_equal(saga_event_headers_check(&got, &ev, err, sizeof(err)), 0);
    rd_kafka_headers_destroy(h);
    saga_event_headers_read(NULL, &got);
    assert_string_equal(got.event_id, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_canonical_form_and_fingerprint_match_fastavro),
        cmocka_unit_test(test_bytes_equal_fastavro_both_ways),
        cmocka_unit_test(test_every_event_round_trips),
        cmocka_unit_test(test_arrays_change_shape_between_encodes),
        cmocka_unit_test(test_utf8_length_and_validity),
        cmocka_unit_test(test_encode_rejects_bad_structs),
        cmocka_unit_test(test_malformed_input_gets_clear_codes),
        cmocka_unit_test(test_foreign_records_are_not_events),
        cmocka_unit_test(test_headers_duplicate_the_body),
    };
    return cmocka_run_group_tests(tests, load_vectors, free_vectors);
}
