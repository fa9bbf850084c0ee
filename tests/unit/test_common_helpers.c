/* The small shared helpers of common/: PostgreSQL array literals, FNV-1a, the clocks. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "saga/clock.h"
#include "saga/hash.h"
#include "saga/http.h"
#include "saga/pg.h"

static void test_text_array(void **state)
{
    const char *items[] = {"plain", "say \"hi\"", "back\\slash", "", NULL, "{a,b}"};
    char *lit;
    (void)state;

    lit = saga_pg_text_array(items, 6);
    assert_string_equal(lit,
                        "{\"plain\",\"say \\\"hi\\\"\",\"back\\\\slash\",\"\",NULL,\"{a,b}\"}");
    free(lit);
    lit = saga_pg_text_array(items, 0);
    assert_string_equal(lit, "{}");
    free(lit);
    lit = saga_pg_text_array(items + 3, 1);
    assert_string_equal(lit, "{\"\"}");
    free(lit);
}

static void test_int_array(void **state)
{
    struct saga_text t = {0};
    (void)state;

    saga_pg_array_begin(&t);
    saga_pg_array_end(&t);
    assert_string_equal(t.data, "{}");
    free(t.data);

    t = (struct saga_text){0};
    saga_pg_array_begin(&t);
    saga_pg_array_int(&t, 0);
    saga_pg_array_int(&t, -7);
    saga_pg_array_int(&t, INT64_MAX);
    saga_pg_array_end(&t);
    assert_string_equal(t.data, "{0,-7,9223372036854775807}");
    free(t.data);

    t = (struct saga_text){0};
    saga_pg_array_begin(&t);
    saga_pg_array_text(&t, NULL);
    saga_pg_array_text(&t, NULL);
    saga_pg_array_end(&t);
    assert_string_equal(t.data, "{NULL,NULL}");
    free(t.data);
}

static void test_fnv1a(void **state)
{
    (void)state;
    /* the reference values of the FNV authors' test suite */
    assert_true(saga_fnv1a64_str("") == 0xcbf29ce484222325ULL);
    assert_true(saga_fnv1a64_str("a") == 0xaf63dc4c8601ec8cULL);
    assert_true(saga_fnv1a64_str("foobar") == 0x85944171f73967e8ULL);
    assert_true(saga_fnv1a64("foobar", 6) == 0x85944171f73967e8ULL);
    assert_true(saga_fnv1a64("a\0b", 3) != saga_fnv1a64("a", 1));
    assert_true(saga_fnv1a32_str("") == 0x811c9dc5u);
    assert_true(saga_fnv1a32_str("a") == 0xe40c292cu);
    assert_true(saga_fnv1a32_str("foobar") == 0xbf9cf968u);
}

static void test_clocks(void **state)
{
    int64_t a, b;
    (void)state;
    a = saga_mono_ms();
    b = saga_mono_ms();
    assert_true(a > 0);
    assert_true(b >= a);
    assert_true(saga_now_ms() > 1600000000000LL); /* after 2020 */
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_array),
        cmocka_unit_test(test_int_array),
        cmocka_unit_test(test_fnv1a),
        cmocka_unit_test(test_clocks),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
