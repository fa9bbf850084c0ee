#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "relay_sources.h"

static void test_parses_pairs(void **state)
{
    struct relay_sources s;
    char err[256];
    assert_int_equal(
        relay_sources_parse(&s,
                            "  order=postgresql://r:pw@127.0.0.1:1/order_service\n"
                            "\tinventory=postgresql://r:pw@127.0.0.1:1/inventory_service ",
                            err, sizeof(err)),
        SAGA_OK);
    assert_int_equal(s.count, 2);
    assert_string_equal(s.src[0].name, "order");
    assert_string_equal(s.src[0].url, "postgresql://r:pw@127.0.0.1:1/order_service");
    assert_string_equal(s.src[1].name, "inventory");
    relay_sources_release(&s);
    /* A primary and its standby: libpq finds the one that takes writes. */
    assert_int_equal(relay_sources_parse(&s,
                                         "order=postgresql://r:pw@127.0.0.1:1,127.0.0.1:2/o?"
                                         "target_session_attrs=read-write",
                                         err, sizeof(err)),
                     SAGA_OK);
    assert_string_equal(
        s.src[0].url,
        "postgresql://r:pw@127.0.0.1:1,127.0.0.1:2/o?target_session_attrs=read-write");
    relay_sources_release(&s);
    assert_int_equal(s.count, 0);
}

static void test_rejects_bad_specs(void **state)
{
    struct relay_sources s;
    char err[256];
    const char *bad[] = {
        NULL,
        "   ",
        "postgresql://r@h/db",                              /* no name */
        "order=",                                           /* no URL */
        "or der=postgresql://h/db",                         /* splits into two bad words */
        "order=postgresql://h/db order=postgresql://h/db2", /* same name twice */
        "order=postgresql://r:secret@h/db?bogus=1",         /* libpq rejects it */
        /* libpq would reject it, but only when connecting */
        "order=postgresql://r:secret@h1:1,h2:2/db?target_session_attrs=rw",
        /* the word it cannot read may hold the password: never quoted */
        "postgresql://r:secret@h/db",                     /* the name forgotten */
        "postgresql://outbox_relay:xxxxxsecretyyyy@h/db", /* its first 40 characters end in it */
        "order.db=postgresql://r:secret@h/db",            /* a name it refuses */
        "order=postgresql://r@h/db?password=secret%zz",   /* libpq quotes the bad token */
        /* a password= appended with a space: its own word, a source named "password" */
        "order=postgresql://r@h/db password=secret",
        "order=host=h password=secret",
        /* a password holding a space: the word ends in the middle of it */
        "order=postgresql://r:secret word@h/db",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        err[0] = '\0';
        assert_int_equal(relay_sources_parse(&s, bad[i], err, sizeof(err)), SAGA_ERR_CONFIG);
        assert_non_null(strstr(err, "RELAY_SOURCES"));
        if (strstr(err, "secret"))
            fail_msg("the error shows the password: %s", err);
        assert_int_equal(s.count, 0);
    }
}

static void test_each_source_owns_its_topics(void **state)
{
    struct relay_sources s;
    char err[256];
    assert_int_equal(relay_sources_parse(&s,
                                         "order=postgresql://h/o shipping=postgresql://h/s "
                                         "legacy=postgresql://h/l",
                                         err, sizeof(err)),
                     SAGA_OK);
    /* A source named after a service owns that service's topic; any other needs its list. */
    assert_int_equal(relay_sources_topics(&s, NULL, err, sizeof(err)), SAGA_ERR_CONFIG);
    assert_non_null(strstr(err, "source 'legacy' owns no topic"));
    assert_int_equal(
        relay_sources_topics(&s, " legacy=legacy-orders,legacy.audit ", err, sizeof(err)), SAGA_OK);
    assert_int_equal(s.src[0].ntopics, 1);
    assert_string_equal(s.src[0].topics[0], "orders");
    assert_int_equal(s.src[1].ntopics, 1);
    assert_string_equal(s.src[1].topics[0], "shipping");
    assert_int_equal(s.src[2].ntopics, 2);
    assert_string_equal(s.src[2].topics[0], "legacy-orders");
    assert_string_equal(s.src[2].topics[1], "legacy.audit");
    /* Given explicitly, the list replaces the service's topic. */
    assert_int_equal(relay_sources_topics(&s, "order=orders-v2 legacy=l", err, sizeof(err)),
                     SAGA_OK);
    assert_int_equal(s.src[0].ntopics, 1);
    assert_string_equal(s.src[0].topics[0], "orders-v2");
    {
        const char *bad[] = {"legacy",      "legacy=",          "nosuch=t legacy=l",
                             "legacy=a,,b", "legacy=bad\"name", "legacy=a legacy=b"};
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
            err[0] = '\0';
            assert_int_equal(relay_sources_topics(&s, bad[i], err, sizeof(err)), SAGA_ERR_CONFIG);
            assert_non_null(strstr(err, "RELAY_SOURCE_TOPICS"));
        }
    }
    relay_sources_release(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parses_pairs),
        cmocka_unit_test(test_rejects_bad_specs),
        cmocka_unit_test(test_each_source_owns_its_topics),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
