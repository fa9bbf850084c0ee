#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "saga/log.h"

static size_t fmt(char *buf, size_t size, const struct saga_log_ids *ids, const char *f, ...)
    __attribute__((format(printf, 4, 5)));
static size_t fmt(char *buf, size_t size, const struct saga_log_ids *ids, const char *f, ...)
{
    va_list ap;
    size_t n;
    va_start(ap, f);
    n = saga_log_format(buf, size, 1763757600123LL, SAGA_LOG_WARN, "order-service", ids, f, ap);
    va_end(ap);
    return n;
}

/* Parses one log line as JSON and checks it ends with exactly one newline. */
static json_t *parse_line(const char *buf, size_t len)
{
    json_error_t jerr;
    json_t *j;
    assert_true(len > 2);
    assert_int_equal(buf[len - 1], '\n');
    assert_null(memchr(buf, '\n', len - 1));
    j = json_loadb(buf, len, 0, &jerr);
    if (!j)
        fail_msg("not JSON (%s): %s", jerr.text, buf);
    return j;
}

static void test_line_has_fields_and_ids(void **state)
{
    char buf[8192];
    struct saga_log_ids ids = {.order_id = "o-1", .event_id = "e-1", .trace_id = "t-1"};
    size_t n = fmt(buf, sizeof(buf), &ids, "reserved %d items", 3);
    json_t *j = parse_line(buf, n);

    assert_string_equal(json_string_value(json_object_get(j, "ts")), "2025-11-21T20:40:00.123Z");
    assert_string_equal(json_string_value(json_object_get(j, "level")), "warn");
    assert_string_equal(json_string_value(json_object_get(j, "service")), "order-service");
    assert_string_equal(json_string_value(json_object_get(j, "msg")), "reserved 3 items");
    assert_string_equal(json_string_value(json_object_get(j, "order_id")), "o-1");
    assert_string_equal(json_string_value(json_object_get(j, "event_id")), "e-1");
    assert_string_equal(json_string_value(json_object_get(j, "trace_id")), "t-1");
    /* Absent ids are left out rather than written empty. */
    assert_null(json_object_get(j, "correlation_id"));
    json_decref(j);
}

static void test_escapes_quotes_controls_and_bad_utf8(void **state)
{
    char buf[8192];
    size_t n = fmt(buf, sizeof(buf), NULL, "a \"quoted\"\tline\nwith \\ and \x01 and \xff and é");
    json_t *j = parse_line(buf, n);

    assert_string_equal(json_string_value(json_object_get(j, "msg")),
                        "a \"quoted\"\tline\nwith \\ and \x01 and \xef\xbf\xbd and é");
    json_decref(j);
}

static void test_long_message_is_cut_but_valid(void **state)
{
    char big[6000], buf[1024];
    size_t n;
    json_t *j;

    memset(big, '"', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    {
        struct saga_log_ids ids = {.order_id = "o-2"};
        n = fmt(buf, sizeof(buf), &ids, "%s", big);
    }
    assert_true(n < sizeof(buf));
    j = parse_line(buf, n);
    assert_true(strlen(json_string_value(json_object_get(j, "msg"))) > 100);
    assert_string_equal(json_string_value(json_object_get(j, "order_id")), "o-2");
    json_decref(j);
}

static void test_escape_never_splits_a_character(void **state)
{
    char out[4];
    /* "é" is two bytes; with room for three it fits, with room for two it must not be split. */
    assert_int_equal(saga_json_escape(out, sizeof(out), "é"), 2);
    assert_int_equal(saga_json_escape(out, 2, "é"), 0);
    assert_string_equal(out, "");
    assert_int_equal(saga_json_escape(out, sizeof(out), "\"x"), 3);
    assert_string_equal(out, "\\\"x");
}

static void test_level_parse_and_filter(void **state)
{
    saga_log_level_t l;
    assert_int_equal(saga_log_level_parse("WARNING", &l), 0);
    assert_int_equal(l, SAGA_LOG_WARN);
    assert_int_equal(saga_log_level_parse("debug", &l), 0);
    assert_int_equal(l, SAGA_LOG_DEBUG);
    assert_int_equal(saga_log_level_parse("verbose", &l), -1);

    saga_log_init("t", SAGA_LOG_WARN);
    assert_false(saga_log_enabled(SAGA_LOG_INFO));
    assert_true(saga_log_enabled(SAGA_LOG_ERROR));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_line_has_fields_and_ids),
        cmocka_unit_test(test_escapes_quotes_controls_and_bad_utf8),
        cmocka_unit_test(test_long_message_is_cut_but_valid),
        cmocka_unit_test(test_escape_never_splits_a_character),
        cmocka_unit_test(test_level_parse_and_filter),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
