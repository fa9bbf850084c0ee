/*
 * Schema evolution with real schema pairs (tests/vectors/evolution): events
 * written with an older or a newer schema than the reader's, encoded here with
 * avro-c's generic API exactly as another service version would.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <avro.h>
#include <cmocka.h>

#include "saga/avro_canon.h"
#include "saga/serde.h"

#define EVO SAGA_SOURCE_DIR "/tests/vectors/evolution"

static char *slurp(const char *path)
{
    FILE *f = fopen(path, "rb");
    char *buf;
    long n;
    if (!f)
        fail_msg("cannot open %s", path);
    fseek(f, 0, SEEK_END);
    n = ftell(f);
    fseek(f, 0, SEEK_SET);
    buf = calloc(1, (size_t)n + 1);
    if (fread(buf, 1, (size_t)n, f) != (size_t)n)
        fail_msg("cannot read %s", path);
    fclose(f);
    return buf;
}

struct writer {
    char *json;
    avro_schema_t schema;
    avro_value_iface_t *iface;
    avro_value_t value;
    uint64_t fp;
};

static void writer_open(struct writer *w, const char *path)
{
    char err[256], *canon;
    w->json = slurp(path);
    assert_int_equal(avro_schema_from_json_length(w->json, strlen(w->json), &w->schema), 0);
    w->iface = avro_generic_class_from_schema(w->schema);
    assert_int_equal(avro_generic_value_new(w->iface, &w->value), 0);
    canon = saga_avro_canonical_form(w->json, strlen(w->json), err, sizeof(err));
    assert_non_null(canon);
    w->fp = saga_avro_fingerprint64(canon, strlen(canon));
    free(canon);
}

static void writer_close(struct writer *w)
{
    avro_value_decref(&w->value);
    avro_value_iface_decref(w->iface);
    avro_schema_decref(w->schema);
    free(w->json);
}

static avro_value_t field(avro_value_t *rec, const char *name)
{
    avro_value_t v = {0};
    if (avro_value_get_by_name(rec, name, &v, NULL) != 0)
        fail_msg("no field %s", name);
    return v;
}

static void set_str(avro_value_t *rec, const char *name, const char *s)
{
    avro_value_t v = field(rec, name);
    assert_int_equal(avro_value_set_string(&v, s), 0);
}

static void set_null(avro_value_t *rec, const char *name)
{
    avro_value_t v = field(rec, name), b;
    assert_int_equal(avro_value_set_branch(&v, 0, &b), 0);
    assert_int_equal(avro_value_set_null(&b), 0);
}

static void set_symbol(avro_value_t *rec, const char *name, const char *symbol)
{
    avro_value_t v = field(rec, name);
    int idx = avro_schema_enum_get_by_name(avro_value_get_schema(&v), symbol);
    assert_true(idx >= 0);
    assert_int_equal(avro_value_set_enum(&v, idx), 0);
}

static void fill_meta(avro_value_t *root, int with_traceparent)
{
    avro_value_t meta = field(root, "meta");
    set_str(&meta, "event_id", "e-1");
    set_str(&meta, "order_id", "o-1");
    set_str(&meta, "correlation_id", "c-1");
    set_null(&meta, "causation_id");
    {
        avro_value_t v = field(&meta, "occurred_at");
        assert_int_equal(avro_value_set_long(&v, 1763757600123LL), 0);
    }
    set_str(&meta, "producer", "order-service");
    if (with_traceparent)
        set_null(&meta, "traceparent");
}

/* Single-object framing around the writer's current value. */
static size_t frame(struct writer *w, unsigned char *out, size_t size)
{
    avro_writer_t aw = avro_writer_memory((const char *)out + 10, (int64_t)(size - 10));
    size_t n;
    out[0] = 0xc3;
    out[1] = 0x01;
    for (int i = 0; i < 8; i++)
        out[2 + i] = (unsigned char)(w->fp >> (8 * i));
    assert_int_equal(avro_value_write(aw, &w->value), 0);
    n = 10 + (size_t)avro_writer_tell(aw);
    avro_writer_free(aw);
    return n;
}

static struct saga_serde *serde_with(const char *path)
{
    struct saga_serde *s = NULL;
    char err[512];
    assert_int_equal(saga_serde_new(&s, NULL, err, sizeof(err)), SAGA_OK);
    if (path) {
        char *json = slurp(path);
        if (saga_serde_add_schema(s, json, strlen(json), err, sizeof(err)) != SAGA_OK)
            fail_msg("%s: %s", path, err);
        free(json);
    }
    return s;
}

static void test_newer_reader_fills_defaults_for_older_events(void **state)
{
    struct writer w;
    struct saga_serde *s = serde_with(EVO "/OrderCancelled.v0.avsc");
    struct saga_event ev = {0};
    unsigned char buf[1024];
    char err[512];
    size_t n;
    avro_schema_t reader;
    const char *cur = saga_serde_schema_json(SAGA_EV_ORDER_CANCELLED);

    writer_open(&w, EVO "/OrderCancelled.v0.avsc");
    fill_meta(&w.value, 0);
    set_symbol(&w.value, "reason", "PAYMENT_FAILED");
    n = frame(&w, buf, sizeof(buf));

    if (saga_serde_decode(s, buf, n, &ev, err, sizeof(err)) != SAGA_DECODE_OK)
        fail_msg("decode: %s", err);
    assert_int_equal(ev.type, SAGA_EV_ORDER_CANCELLED);
    assert_string_equal(ev.meta.event_id, "e-1");
    assert_int_equal(ev.u.order_cancelled.reason, SAGA_CANCEL_PAYMENT_FAILED);
    assert_null(ev.u.order_cancelled.detail); /* the reader's default */
    assert_null(ev.meta.traceparent);         /* likewise, one record down */

    /* What this works around: avro-c's own resolver refuses this pair. */
    assert_int_equal(avro_schema_from_json_length(cur, strlen(cur), &reader), 0);
    assert_null(avro_resolved_writer_new(w.schema, reader));
    assert_non_null(strstr(avro_strerror(), "doesn't appear in writer"));
    avro_schema_decref(reader);

    saga_event_release(&ev);
    writer_close(&w);
    saga_serde_destroy(s);
}

static void test_older_reader_reads_newer_events(void **state)
{
    struct writer w;
    struct saga_serde *s = serde_with(EVO "/OrderCancelled.v2.avsc");
    struct saga_event ev = {0};
    unsigned char buf[1024];
    char err[512];
    size_t n;

    writer_open(&w, EVO "/OrderCancelled.v2.avsc");
    fill_meta(&w.value, 1);
    {
        avro_value_t meta = field(&w.value, "meta"), v = field(&w.value, "refund_expected");
        set_str(&meta, "tenant", "eu-west");
        assert_int_equal(avro_value_set_boolean(&v, 1), 0);
    }
    /* A reason this reader has never heard of becomes the enum's default. */
    set_symbol(&w.value, "reason", "FRAUD_SUSPECTED");
    n = frame(&w, buf, sizeof(buf));
    if (saga_serde_decode(s, buf, n, &ev, err, sizeof(err)) != SAGA_DECODE_OK)
        fail_msg("decode: %s", err);
    assert_int_equal(ev.u.order_cancelled.reason, SAGA_CANCEL_UNKNOWN);
    assert_null(ev.u.order_cancelled.detail); /* removed by the writer: default */
    assert_string_equal(ev.meta.producer, "order-service");

    /* A reason both know keeps its meaning though its position may differ. */
    set_symbol(&w.value, "reason", "CUSTOMER_REQUEST");
    n = frame(&w, buf, sizeof(buf));
    assert_int_equal(saga_serde_decode(s, buf, n, &ev, err, sizeof(err)), SAGA_DECODE_OK);
    assert_int_equal(ev.u.order_cancelled.reason, SAGA_CANCEL_CUSTOMER_REQUEST);

    saga_event_release(&ev);
    writer_close(&w);
    saga_serde_destroy(s);
}

/* The change 0.3.0 made: OrderConfirmed.tracking_number (nullable, default null). An
 * OrderConfirmed of the 0.2.0 release reads with it NULL; a current one carries it. */
static void test_order_confirmed_tracking_number_since_0_3_0(void **state)
{
    struct writer w;
    struct saga_serde *s = serde_with(NULL);
    struct saga_event ev = {0}, cur;
    struct saga_buf out = {0};
    unsigned char buf[1024];
    char err[512];
    size_t n;

    writer_open(&w, SAGA_SOURCE_DIR "/schemas/released/0.2.0/OrderConfirmed.avsc");
    fill_meta(&w.value, 1);
    {
        avro_value_t v = field(&w.value, "total_amount");
        assert_int_equal(avro_value_set_long(&v, 2598), 0);
    }
    set_str(&w.value, "currency", "EUR");
    n = frame(&w, buf, sizeof(buf));
    /* the released schemas ship in the binary: no schema to add */
    if (saga_serde_decode(s, buf, n, &ev, err, sizeof(err)) != SAGA_DECODE_OK)
        fail_msg("decode: %s", err);
    assert_int_equal(ev.u.order_confirmed.total_amount, 2598);
    assert_null(ev.u.order_confirmed.tracking_number);
    saga_event_release(&ev);
    writer_close(&w);

    saga_event_init(&cur, SAGA_EV_ORDER_CONFIRMED);
    cur.meta.event_id = "e-2";
    cur.meta.order_id = "o-2";
    cur.meta.correlation_id = "c-2";
    cur.meta.producer = "order-service";
    cur.u.order_confirmed.total_amount = 100;
    cur.u.order_confirmed.currency = "EUR";
    cur.u.order_confirmed.tracking_number = "TRK-1";
    if (saga_serde_encode(s, &cur, &out, err, sizeof(err)) != SAGA_OK)
        fail_msg("encode: %s", err);
    if (saga_serde_decode(s, out.data, out.len, &ev, err, sizeof(err)) != SAGA_DECODE_OK)
        fail_msg("decode: %s", err);
    assert_string_equal(ev.u.order_confirmed.tracking_number, "TRK-1");
    saga_event_release(&ev);
    saga_buf_release(&out);
    saga_serde_destroy(s);
}

static void test_int_widens_to_long(void **state)
{
    struct writer w;
    struct saga_serde *s = serde_with(EVO "/OrderConfirmed.v0.avsc");
    struct saga_event ev = {0};
    unsigned char buf[1024];
    char err[512];
    size_t n;

    writer_open(&w, EVO "/OrderConfirmed.v0.avsc");
    fill_meta(&w.value, 1);
    {
        avro_value_t v = field(&w.value, "total_amount");
        assert_int_equal(avro_value_set_int(&v, 2147483000), 0);
    }
    set_str(&w.value, "currency", "EUR");
    n = frame(&w, buf, sizeof(buf));
    if (saga_serde_decode(s, buf, n, &ev, err, sizeof(err)) != SAGA_DECODE_OK)
        fail_msg("decode: %s", err);
    assert_true(ev.u.order_confirmed.total_amount == 2147483000LL);
    saga_event_release(&ev);
    writer_close(&w);
    saga_serde_destroy(s);
}

static void test_nested_records_in_arrays_evolve(void **state)
{
    struct writer w;
    struct saga_serde *s = serde_with(NULL);
    struct saga_event ev = {0};
    unsigned char buf[2048];
    char err[512];
    size_t n;
    avro_value_t items, line, addr;

    writer_open(&w, EVO "/OrderPlaced.v2.avsc");
    fill_meta(&w.value, 1);
    set_str(&w.value, "customer_id", "cust-1");
    items = field(&w.value, "items");
    for (int i = 0; i < 3; i++) {
        avro_value_t q, p, g, b;
        assert_int_equal(avro_value_append(&items, &line, NULL), 0);
        set_str(&line, "sku", i == 1 ? "sku-tee" : "sku-mug");
        q = field(&line, "quantity");
        avro_value_set_int(&q, i + 1);
        p = field(&line, "unit_price");
        avro_value_set_long(&p, 100 * (i + 1));
        g = field(&line, "gift_note");
        avro_value_set_branch(&g, 1, &b);
        avro_value_set_string(&b, "happy birthday");
    }
    set_str(&w.value, "currency", "EUR");
    {
        avro_value_t t = field(&w.value, "total_amount");
        avro_value_set_long(&t, 1400);
    }
    set_str(&w.value, "payment_token", "tok_visa");
    addr = field(&w.value, "shipping_address");
    set_str(&addr, "recipient", "R");
    set_str(&addr, "line1", "L1");
    set_null(&addr, "line2");
    set_str(&addr, "city", "C");
    set_str(&addr, "postal_code", "P");
    set_str(&addr, "country", "DE");
    n = frame(&w, buf, sizeof(buf));

    /* Unknown until this reader is given the newer schema ... */
    assert_int_equal(saga_serde_decode(s, buf, n, &ev, err, sizeof(err)),
                     SAGA_DECODE_UNKNOWN_FINGERPRINT);
    /* ... as SAGA_SCHEMA_DIR does at start-up. */
    assert_true(saga_serde_add_schema_dir(s, EVO, err, sizeof(err)) >= 4);
    if (saga_serde_decode(s, buf, n, &ev, err, sizeof(err)) != SAGA_DECODE_OK)
        fail_msg("decode: %s", err);
    assert_int_equal(ev.u.order_placed.item_count, 3);
    assert_string_equal(ev.u.order_placed.items[1].sku, "sku-tee");
    assert_int_equal(ev.u.order_placed.items[2].quantity, 3);
    assert_true(ev.u.order_placed.items[2].unit_price == 300);
    assert_string_equal(ev.u.order_placed.shipping_address.country, "DE");
    saga_event_release(&ev);
    writer_close(&w);
    saga_serde_destroy(s);
}

static void test_serde_open_reads_the_schema_dir(void **state)
{
    struct saga_serde *s;
    struct saga_registry *r;
    struct writer w;
    struct saga_event ev = {0};
    unsigned char buf[1024];
    char err[512];
    size_t n;

    writer_open(&w, EVO "/OrderCancelled.v2.avsc");
    fill_meta(&w.value, 1);
    set_symbol(&w.value, "reason", "TIMEOUT");
    n = frame(&w, buf, sizeof(buf));

    /* As a service starts with SAGA_SCHEMA_DIR set and no registry. */
    assert_int_equal(saga_serde_open(NULL, EVO, &s, &r, err, sizeof(err)), SAGA_OK);
    assert_null(r);
    assert_int_equal(saga_serde_decode(s, buf, n, &ev, err, sizeof(err)), SAGA_DECODE_OK);
    assert_int_equal(ev.u.order_cancelled.reason, SAGA_CANCEL_TIMEOUT);
    saga_event_release(&ev);
    saga_serde_destroy(s);

    assert_int_equal(saga_serde_open(NULL, "/nonexistent", &s, &r, err, sizeof(err)),
                     SAGA_ERR_CONFIG);
    assert_null(s);
    assert_int_equal(saga_serde_open("ftp://x", NULL, &s, &r, err, sizeof(err)), SAGA_ERR_CONFIG);
    writer_close(&w);
}

static void test_incompatible_writer_is_refused_with_the_field(void **state)
{
    struct writer w;
    struct saga_serde *s = serde_with(SAGA_SOURCE_DIR "/tests/vectors/compat/"
                                                      "OrderPlaced.incompatible.avsc");
    struct saga_event ev = {0};
    unsigned char buf[16] = {0xc3, 0x01};
    char err[512];

    writer_open(&w, SAGA_SOURCE_DIR "/tests/vectors/compat/OrderPlaced.incompatible.avsc");
    for (int i = 0; i < 8; i++)
        buf[2 + i] = (unsigned char)(w.fp >> (8 * i));
    assert_int_equal(saga_serde_decode(s, buf, 12, &ev, err, sizeof(err)),
                     SAGA_DECODE_INCOMPATIBLE);
    assert_non_null(strstr(err, "OrderPlaced.customer_id"));
    assert_int_equal(saga_decode_err_class(SAGA_DECODE_INCOMPATIBLE), SAGA_ERR_PERMANENT);
    writer_close(&w);
    saga_serde_destroy(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_newer_reader_fills_defaults_for_older_events),
        cmocka_unit_test(test_older_reader_reads_newer_events),
        cmocka_unit_test(test_order_confirmed_tracking_number_since_0_3_0),
        cmocka_unit_test(test_int_widens_to_long),
        cmocka_unit_test(test_nested_records_in_arrays_evolve),
        cmocka_unit_test(test_serde_open_reads_the_schema_dir),
        cmocka_unit_test(test_incompatible_writer_is_refused_with_the_field),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
