/*
 * The relay's ring of rows in flight (relay/relay_ring.c): the delivered prefix, failed
 * reports, and reports that arrive after the ring was given up.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "relay_ring.h"

static void test_delivered_prefix_grows_in_order(void **state)
{
    struct relay_ring r;
    void *op[3];
    int failed;
    (void)state;

    assert_int_equal(relay_ring_init(&r, 4), 0);
    for (int i = 0; i < 3; i++)
        relay_ring_push(&r, 10 + i, 0, &op[i]);
    relay_ring_report(&r, op[1], 0, 1);
    assert_int_equal(relay_ring_delivered(&r, &failed), 0); /* the head still waits */
    assert_int_equal(relay_ring_pending(&r), 2);
    relay_ring_report(&r, op[0], 0, 1);
    assert_int_equal(relay_ring_delivered(&r, &failed), 2);
    assert_false(failed);
    relay_ring_pop(&r, 2);
    relay_ring_report(&r, op[2], RD_KAFKA_RESP_ERR_MSG_SIZE_TOO_LARGE, 1);
    assert_int_equal(relay_ring_delivered(&r, &failed), 0);
    assert_true(failed);
    assert_int_equal(relay_ring_at(&r, 0)->id, 12);
    relay_ring_release(&r);
}

/* The slots wrap around: a row pushed after others were popped reuses a slot. */
static void test_slots_wrap_around(void **state)
{
    struct relay_ring r;
    void *op;
    int failed;
    (void)state;

    assert_int_equal(relay_ring_init(&r, 2), 0);
    for (int64_t id = 1; id <= 7; id++) {
        relay_ring_push(&r, id, 0, &op);
        relay_ring_report(&r, op, 0, 1);
        assert_int_equal(relay_ring_delivered(&r, &failed), 1);
        assert_int_equal(relay_ring_at(&r, 0)->id, id);
        relay_ring_pop(&r, 1);
    }
    relay_ring_release(&r);
}

/*
 * The relay gives up what is in flight (leadership lost, draining timed out) and, when
 * no fresh producer can be made, keeps the old one: its reports still come, late. The
 * slots are reused by the rows read next. A late report of a given-up row must not
 * mark the row now in its slot as delivered: that row would be marked published
 * without ever reaching Kafka.
 */
static void test_late_report_of_a_given_up_row_marks_nothing(void **state)
{
    struct relay_ring r;
    void *old[2], *fresh[2];
    int failed;
    (void)state;

    assert_int_equal(relay_ring_init(&r, 8), 0);
    relay_ring_push(&r, 1, 0, &old[0]);
    relay_ring_push(&r, 2, 0, &old[1]);
    relay_ring_reset(&r); /* given up: rows 1 and 2 are read and sent again later */

    /* A standby published 1 and 2 meanwhile; this relay now sends 3 and 4. */
    relay_ring_push(&r, 3, 0, &fresh[0]);
    relay_ring_push(&r, 4, 0, &fresh[1]);
    relay_ring_report(&r, old[0], 0, 1); /* the old producer's reports, late */
    relay_ring_report(&r, old[1], 0, 1);
    assert_int_equal(relay_ring_delivered(&r, &failed), 0);
    assert_false(failed);
    assert_int_equal(relay_ring_pending(&r), 2);

    /* A late failure report marks nothing either. */
    relay_ring_reset(&r);
    relay_ring_push(&r, 5, 0, &fresh[0]);
    relay_ring_report(&r, old[0], RD_KAFKA_RESP_ERR__MSG_TIMED_OUT, 1);
    assert_int_equal(relay_ring_delivered(&r, &failed), 0);
    assert_false(failed);

    /* The rows' own reports count. */
    relay_ring_report(&r, fresh[0], 0, 1);
    assert_int_equal(relay_ring_delivered(&r, &failed), 1);
    assert_int_equal(relay_ring_at(&r, 0)->id, 5);
    relay_ring_release(&r);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_delivered_prefix_grows_in_order),
        cmocka_unit_test(test_slots_wrap_around),
        cmocka_unit_test(test_late_report_of_a_given_up_row_marks_nothing),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
