/* order-service's rules: request validation, compensation state, causal timeline order. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "rules.h"

#define GOOD                                                                                       \
    "{\"customer_id\":\"cust-alice\",\"currency\":\"EUR\",\"payment_token\":\"tok_visa\","         \
    "\"items\":[{\"sku\":\"sku-book\",\"quantity\":2}],"                                           \
    "\"shipping_address\":{\"recipient\":\"Ada\",\"line1\":\"Main St 1\",\"city\":\"Utrecht\","    \
    "\"postal_code\":\"3511\",\"country\":\"NL\"}}"

static order_parse_t parse(const char *body, struct order_request *o, struct order_errors *e)
{
    char err[256];
    return order_parse_request(body, strlen(body), o, e, err, sizeof(err));
}

static int has_field(const struct order_errors *e, const char *field)
{
    for (int i = 0; i < e->n; i++)
        if (strcmp(e->e[i].field, field) == 0)
            return 1;
    return 0;
}

static void test_valid_request(void **state)
{
    struct order_request o;
    struct order_errors e;
    (void)state;
    assert_int_equal(parse(GOOD, &o, &e), ORDER_PARSE_OK);
    assert_string_equal(o.customer_id, "cust-alice");
    assert_int_equal(o.nitems, 1);
    assert_int_equal(o.items[0].quantity, 2);
    assert_string_equal(o.address.country, "NL");
    assert_null(o.address.line2);
    char *c = order_request_canonical(&o);
    assert_non_null(strstr(c, "\"currency\":\"EUR\""));
    free(c);
    order_request_release(&o);
}

static void test_malformed(void **state)
{
    struct order_request o;
    struct order_errors e;
    (void)state;
    assert_int_equal(parse("{\"customer_id\":", &o, &e), ORDER_PARSE_MALFORMED);
    assert_int_equal(parse("[1,2]", &o, &e), ORDER_PARSE_MALFORMED);
    assert_int_equal(parse("{\"a\":1,\"a\":2}", &o, &e), ORDER_PARSE_MALFORMED);
    assert_int_equal(parse("", &o, &e), ORDER_PARSE_MALFORMED);
}

static void test_field_errors(void **state)
{
    struct order_request o;
    struct order_errors e;
    (void)state;
    assert_int_equal(parse("{}", &o, &e), ORDER_PARSE_INVALID);
    assert_true(has_field(&e, "customer_id"));
    assert_true(has_field(&e, "items"));
    assert_true(has_field(&e, "currency"));
    assert_true(has_field(&e, "payment_token"));
    assert_true(has_field(&e, "shipping_address"));

    assert_int_equal(
        parse("{\"customer_id\":\"a b\",\"currency\":\"eur\",\"payment_token\":\"t\","
              "\"items\":[{\"sku\":\"x\",\"quantity\":0},{\"sku\":5,\"quantity\":1.5},7],"
              "\"shipping_address\":{\"recipient\":\"A\",\"line1\":\"L\",\"city\":\"C\","
              "\"postal_code\":\"P\",\"country\":\"Netherlands\"}}",
              &o, &e),
        ORDER_PARSE_INVALID);
    assert_true(has_field(&e, "customer_id"));
    assert_true(has_field(&e, "currency"));
    assert_true(has_field(&e, "items[0].quantity"));
    assert_true(has_field(&e, "items[1].sku"));
    assert_true(has_field(&e, "items[1].quantity"));
    assert_true(has_field(&e, "items[2]"));
    assert_true(has_field(&e, "shipping_address.country"));
    assert_false(has_field(&e, "payment_token"));
}

static void test_limits(void **state)
{
    struct order_request o;
    struct order_errors e;
    char body[8192];
    size_t n;
    (void)state;
    n = (size_t)snprintf(body, sizeof(body),
                         "{\"customer_id\":\"c\",\"currency\":\"EUR\","
                         "\"payment_token\":\"t\",\"items\":[");
    for (int i = 0; i < ORDER_MAX_ITEMS + 1; i++)
        n += (size_t)snprintf(body + n, sizeof(body) - n, "%s{\"sku\":\"s\",\"quantity\":1}",
                              i ? "," : "");
    snprintf(body + n, sizeof(body) - n,
             "],\"shipping_address\":{\"recipient\":\"A\",\"line1\":\"L\",\"city\":\"C\","
             "\"postal_code\":\"P\",\"country\":\"NL\"}}");
    assert_int_equal(parse(body, &o, &e), ORDER_PARSE_INVALID);
    assert_true(has_field(&e, "items"));

    assert_int_equal(parse("{\"customer_id\":\"cccccccccccccccccccccccccccccccccccccccccccccccccc"
                           "cccccccccccccccccccc\",\"currency\":\"EUR\",\"payment_token\":\"t\","
                           "\"items\":[{\"sku\":\"s\",\"quantity\":1001}],\"shipping_address\":{"
                           "\"recipient\":\"A\",\"line1\":\"L\",\"city\":\"C\",\"postal_code\":"
                           "\"P\",\"country\":\"NL\"}}",
                           &o, &e),
                     ORDER_PARSE_INVALID);
    assert_true(has_field(&e, "customer_id"));
    assert_true(has_field(&e, "items[0].quantity"));
}

static void test_headers(void **state)
{
    (void)state;
    assert_true(order_content_type_is_json("application/json"));
    assert_true(order_content_type_is_json("Application/JSON; charset=utf-8"));
    assert_false(order_content_type_is_json("application/jsonx"));
    assert_false(order_content_type_is_json("text/plain"));
    assert_false(order_content_type_is_json(NULL));
    assert_true(order_idempotency_key_valid("order-123"));
    assert_false(order_idempotency_key_valid(""));
    assert_false(order_idempotency_key_valid("a b"));
    assert_true(order_status_valid("PENDING"));
    assert_false(order_status_valid("pending"));
}

static void test_compensation_state(void **state)
{
    int seen[SAGA_EV_COUNT] = {0};
    (void)state;
    assert_string_equal(order_compensation_state("CANCELLED", seen), "none");
    seen[SAGA_EV_INVENTORY_RESERVED] = 1;
    assert_string_equal(order_compensation_state("PENDING", seen), "none");
    assert_string_equal(order_compensation_state("CANCELLED", seen), "in_progress");
    seen[SAGA_EV_INVENTORY_RELEASED] = 1;
    assert_string_equal(order_compensation_state("CANCELLED", seen), "done");
    /* A late authorization reopens it until the refund is seen. */
    seen[SAGA_EV_PAYMENT_AUTHORIZED] = 1;
    assert_string_equal(order_compensation_state("CANCELLED", seen), "in_progress");
    seen[SAGA_EV_PAYMENT_REFUNDED] = 1;
    assert_string_equal(order_compensation_state("CANCELLED", seen), "done");
    seen[SAGA_EV_SHIPMENT_SCHEDULED] = 1;
    assert_string_equal(order_compensation_state("CANCELLED", seen), "in_progress");
    seen[SAGA_EV_SHIPMENT_CANCELLED] = 1;
    assert_string_equal(order_compensation_state("CANCELLED", seen), "done");
    assert_string_equal(order_compensation_state("CONFIRMED", seen), "none");
}

static void test_count_event_types(void **state)
{
    int seen[SAGA_EV_COUNT];
    (void)state;
    order_count_event_types("OrderPlaced,InventoryReserved,Nonsense,InventoryReserved", seen);
    assert_int_equal(seen[SAGA_EV_ORDER_PLACED], 1);
    assert_int_equal(seen[SAGA_EV_INVENTORY_RESERVED], 2);
    assert_int_equal(seen[SAGA_EV_PAYMENT_FAILED], 0);
    order_count_event_types(NULL, seen);
    assert_int_equal(seen[SAGA_EV_ORDER_PLACED], 0);
}

static void test_causal_sort(void **state)
{
    /* The release (caused by the failure) was recorded, and even stamped, first. */
    struct order_tl_entry e[4] = {
        {"released", "failed", 100, 1, 0},
        {"placed", NULL, 90, 2, 1},
        {"failed", "reserved", 101, 3, 2},
        {"reserved", "placed", 95, 4, 3},
    };
    (void)state;
    order_timeline_causal_sort(e, 4);
    assert_string_equal(e[0].event_id, "placed");
    assert_string_equal(e[1].event_id, "reserved");
    assert_string_equal(e[2].event_id, "failed");
    assert_string_equal(e[3].event_id, "released");
}

/* A chain a -> b -> c ... stamped in reverse (each effect "occurred" before its cause):
 * the worst case for a sort that rescans the whole timeline for every pick. */
static struct order_tl_entry *reversed_chain(size_t n, char (**ids)[16])
{
    struct order_tl_entry *e = calloc(n, sizeof(*e));
    *ids = calloc(n, sizeof(**ids));
    assert_non_null(e);
    assert_non_null(*ids);
    for (size_t k = 0; k < n; k++) {
        snprintf((*ids)[k], sizeof((*ids)[k]), "e%06zu", k);
        e[k].event_id = (*ids)[k];
        e[k].causation_id = k ? (*ids)[k - 1] : NULL;
        e[k].occurred_at = (int64_t)(n - k);
        e[k].seq = (int64_t)(n - k);
        e[k].index = (int)k;
    }
    return e;
}

static void sort_reversed_chain(size_t n)
{
    char(*ids)[16];
    struct order_tl_entry *e = reversed_chain(n, &ids);
    clock_t t0 = clock();
    order_timeline_causal_sort(e, n);
    /* Not asserted (no timing asserts): shown for the record; ctest's TIMEOUT is the limit. */
    fprintf(stderr, "causal sort of a reversed chain of %zu events: %.3f s CPU\n", n,
            (double)(clock() - t0) / CLOCKS_PER_SEC);
    for (size_t k = 0; k < n; k++)
        assert_int_equal(e[k].index, (int)k);
    free(e);
    free(ids);
}

static void test_causal_sort_crafted_chain(void **state)
{
    (void)state;
    sort_reversed_chain(2000);
    sort_reversed_chain(20000);
}

/* The definition, written the slow and obvious way: repeatedly the earliest (by time, then
 * seq) event whose cause is not still waiting; on a cycle, the earliest left. */
static void reference_sort(struct order_tl_entry *e, size_t n)
{
    struct order_tl_entry *out = malloc(n * sizeof(*out));
    char *done = calloc(n, 1);
    size_t m = 0;
    assert_non_null(out);
    assert_non_null(done);
    for (size_t a = 1; a < n; a++) /* stable insertion sort by (occurred_at, seq) */
        for (size_t b = a;
             b > 0 && (e[b - 1].occurred_at > e[b].occurred_at ||
                       (e[b - 1].occurred_at == e[b].occurred_at && e[b - 1].seq > e[b].seq));
             b--) {
            struct order_tl_entry t = e[b];
            e[b] = e[b - 1];
            e[b - 1] = t;
        }
    while (m < n) {
        size_t pick = n;
        for (size_t i = 0; i < n && pick == n; i++) {
            int waiting = 0;
            if (done[i])
                continue;
            for (size_t j = 0; j < n && e[i].causation_id; j++)
                if (!done[j] && j != i && strcmp(e[j].event_id, e[i].causation_id) == 0)
                    waiting = 1;
            if (!waiting)
                pick = i;
        }
        for (size_t i = 0; i < n && pick == n; i++)
            if (!done[i])
                pick = i;
        done[pick] = 1;
        out[m++] = e[pick];
    }
    memcpy(e, out, n * sizeof(*e));
    free(out);
    free(done);
}

/* Random small timelines with everything bad data can hold (unknown causes, cycles,
 * self-causes, duplicate ids, equal times): the same order as the definition. */
static void test_causal_sort_matches_definition(void **state)
{
    static const char *names[] = {"a", "b", "c", "d", "e", "f", "g", "h", "i", "j"};
    unsigned seed = 12345;
    (void)state;
    for (int round = 0; round < 20000; round++) {
        struct order_tl_entry a[12], b[12];
        size_t n = (size_t)(round % 12) + 1;
        for (size_t k = 0; k < n; k++) {
            seed = seed * 1103515245u + 12345u;
            a[k].event_id = names[(seed >> 8) % 10];
            seed = seed * 1103515245u + 12345u;
            a[k].causation_id = (seed >> 8) % 4 == 0 ? NULL : names[(seed >> 12) % 10];
            seed = seed * 1103515245u + 12345u;
            a[k].occurred_at = (int64_t)((seed >> 8) % 5);
            a[k].seq = (int64_t)k;
            a[k].index = (int)k;
        }
        memcpy(b, a, sizeof(a));
        order_timeline_causal_sort(a, n);
        reference_sort(b, n);
        for (size_t k = 0; k < n; k++)
            if (a[k].index != b[k].index)
                fail_msg("round %d: position %zu holds %d, the definition says %d", round, k,
                         a[k].index, b[k].index);
    }
}

static void test_money(void **state)
{
    char buf[32];
    (void)state;
    order_format_money(2598, "EUR", buf, sizeof(buf));
    assert_string_equal(buf, "25.98 EUR");
    order_format_money(5, "EUR", buf, sizeof(buf));
    assert_string_equal(buf, "0.05 EUR");
    order_format_money(-100, "USD", buf, sizeof(buf));
    assert_string_equal(buf, "-1.00 USD");
}

/* A tracking number passes on as it is, unless another service's text is too long or
 * not a carrier's; then the OrderConfirmed leaves it out. */
static void test_tracking_number_passed_on(void **state)
{
    char longest[ORDER_TRACKING_MAX + 2];
    (void)state;
    assert_string_equal(order_tracking_number_passed_on("SP4471235690"), "SP4471235690");
    assert_string_equal(order_tracking_number_passed_on("1Z 999-AA1"), "1Z 999-AA1");
    memset(longest, 'A', sizeof(longest));
    longest[ORDER_TRACKING_MAX] = '\0';
    assert_string_equal(order_tracking_number_passed_on(longest), longest);
    longest[ORDER_TRACKING_MAX] = 'A';
    longest[ORDER_TRACKING_MAX + 1] = '\0';
    assert_null(order_tracking_number_passed_on(longest));
    assert_null(order_tracking_number_passed_on(NULL));
    assert_null(order_tracking_number_passed_on(""));
    assert_null(order_tracking_number_passed_on("SP44\nYour card was charged twice"));
    assert_null(order_tracking_number_passed_on("SP44\x7f"));
    assert_null(order_tracking_number_passed_on("SP\xc2\x85"
                                                "44"));
    assert_null(order_tracking_number_passed_on("<script>"));
    /* nothing a customer could read as a number: blank, dashes, or padded */
    assert_null(order_tracking_number_passed_on("   "));
    assert_null(order_tracking_number_passed_on("--"));
    assert_null(order_tracking_number_passed_on(" SP44"));
    assert_null(order_tracking_number_passed_on("SP44-"));
    assert_string_equal(order_tracking_number_passed_on("7"), "7");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_valid_request),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_field_errors),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_headers),
        cmocka_unit_test(test_compensation_state),
        cmocka_unit_test(test_causal_sort),
        cmocka_unit_test(test_causal_sort_crafted_chain),
        cmocka_unit_test(test_causal_sort_matches_definition),
        cmocka_unit_test(test_count_event_types),
        cmocka_unit_test(test_money),
        cmocka_unit_test(test_tracking_number_passed_on),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
