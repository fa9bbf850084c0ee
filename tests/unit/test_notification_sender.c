/*
 * notification-service's sender (services/notification/sender.c) without Kafka or
 * PostgreSQL: its database is a listener on 127.0.0.1 of this test that closes every
 * connection as soon as it comes, as a server refusing clients would.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "rules.h"
#include "saga/config.h"
#include "sender.h"

/* Accepts and closes at once; counts the connections. */
struct closer {
    int fd;
    atomic_int accepted, stop;
    pthread_t thread;
};

static void *closer_main(void *arg)
{
    struct closer *c = arg;
    while (!atomic_load(&c->stop)) {
        struct pollfd p = {c->fd, POLLIN, 0};
        if (poll(&p, 1, 50) == 1) {
            int s = accept(c->fd, NULL, NULL);
            if (s >= 0) {
                atomic_fetch_add(&c->accepted, 1);
                close(s);
            }
        }
    }
    return NULL;
}

static int closer_start(struct closer *c)
{
    struct sockaddr_in a = {0};
    socklen_t alen = sizeof(a);
    c->fd = socket(AF_INET, SOCK_STREAM, 0);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(c->fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(c->fd, 64), 0);
    getsockname(c->fd, (struct sockaddr *)&a, &alen);
    assert_int_equal(pthread_create(&c->thread, NULL, closer_main, c), 0);
    return ntohs(a.sin_port);
}

static void closer_stop(struct closer *c)
{
    atomic_store(&c->stop, 1);
    pthread_join(c->thread, NULL);
    close(c->fd);
}

/*
 * A sender that cannot reach its database backs off (200 ms, doubling, at most 5 s) while
 * the consumer, on its own connection, goes on committing and waking it: the wakes do not
 * turn the backoff into a connection attempt (and a warning) per commit.
 */
static void test_wakes_do_not_cut_the_reconnect_backoff_short(void **state)
{
    struct closer c = {0};
    struct notif_config conf = {
        .sink = NOTIF_SINK_LOG, .retry_min_ms = 1000, .retry_max_ms = 300000, .poll_ms = 5000};
    struct saga_config cfg = {0};
    struct notif_sender *s = NULL;
    char url[160], err[512];
    int n;
    (void)state;

    snprintf(url, sizeof(url),
             "postgresql://saga@127.0.0.1:%d/saga?sslmode=disable&gssencmode=disable"
             "&connect_timeout=5",
             closer_start(&c));
    cfg.database_url = url;
    assert_int_equal(notif_sender_start(&s, &conf, &cfg, err, sizeof(err)), SAGA_OK);
    /* A consumer committing a notification every 20 ms for 2 s. */
    for (int i = 0; i < 100; i++) {
        notif_sender_wake(s);
        nanosleep(&(struct timespec){0, 20 * 1000 * 1000}, NULL);
    }
    notif_sender_stop(s);
    n = atomic_load(&c.accepted);
    closer_stop(&c);
    /* 200 + 400 + 800 ms of backoff: about 4 attempts in 2 s. */
    if (n > 12)
        fail_msg("%d connection attempts in 2 s with the database refusing and 100 wakes: the "
                 "wakes cut the reconnect backoff short",
                 n);
    assert_true(n >= 1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_wakes_do_not_cut_the_reconnect_backoff_short),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
