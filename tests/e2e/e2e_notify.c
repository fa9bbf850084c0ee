/*
 * notification-service mailing through SMTP on the real stack (issue 14, item 6):
 * mail is a side effect outside the database, so it must never run inside the
 * consumer's transaction. The test takes the stack's notification-service over
 * (stops it, runs the built one with NOTIFY_SINK=smtp against a small SMTP server
 * of its own on 127.0.0.1, and a short max.poll.interval.ms), places real orders
 * through the order API while it is stopped, so that their outcomes arrive as one
 * batch when it starts, and counts what the SMTP server received per order and
 * per Message-ID. The stack's own notification-service is started again after
 * each test.
 */
#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "e2e.h"
#include "proc.h"
#include "stack_env.h"

#define SERVICE SAGA_BIN_DIR "/notification-service"
#define WAIT_MS 90000
#define NORDERS 3

/* ---- a small SMTP server on 127.0.0.1, one connection at a time ---- */

struct mail {
    char order_short[9]; /* from the Subject: "Your order 1b4e28ba ..." */
    char message_id[160];
    int code; /* the reply to the end of DATA: 250, or 451 */
};

struct smtp {
    int lfd, port;
    pthread_t thread;
    pthread_mutex_t mu;
    int stop;
    int gate_closed; /* hold every DATA reply while set */
    int fail_nth;    /* the nth mail received (1-based) gets fail_code; 0: none */
    int fail_code;   /* 451 (try again later) unless set */
    int received;    /* mails whose DATA ended */
    struct mail mails[64];
    int nmails;
};

static void say(int fd, const char *s)
{
    ssize_t n = send(fd, s, strlen(s), MSG_NOSIGNAL);
    (void)n;
}

static int smtp_flag(struct smtp *s, int *flag)
{
    pthread_mutex_lock(&s->mu);
    int v = *flag;
    pthread_mutex_unlock(&s->mu);
    return v;
}

static void smtp_set(struct smtp *s, int *flag, int v)
{
    pthread_mutex_lock(&s->mu);
    *flag = v;
    pthread_mutex_unlock(&s->mu);
}

/* Records one mail whose DATA just ended and decides the reply. */
static int smtp_mail_done(struct smtp *s, const char *data)
{
    struct mail m = {.code = 250};
    const char *p;

    if ((p = strstr(data, "\r\nSubject: Your order ")) ||
        (p = strstr(data, "Subject: Your order ")))
        sscanf(strstr(p, "Your order ") + 11, "%8[A-Za-z0-9_-]", m.order_short);
    if ((p = strstr(data, "Message-ID: ")))
        sscanf(p + 12, "%159[^\r\n]", m.message_id);
    pthread_mutex_lock(&s->mu);
    if (++s->received == s->fail_nth)
        m.code = s->fail_code ? s->fail_code : 451;
    if (s->nmails < (int)(sizeof(s->mails) / sizeof(s->mails[0])))
        s->mails[s->nmails++] = m;
    pthread_mutex_unlock(&s->mu);
    return m.code;
}

static void smtp_session(struct smtp *s, int fd)
{
    static char buf[65536], data[65536];
    size_t have = 0, dlen = 0;
    int in_data = 0;
    struct timeval tv = {1, 0};

    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    say(fd, "220 test.local ESMTP ready\r\n");
    for (;;) {
        char *eol;
        while (!(eol = memmem(buf, have, "\r\n", 2))) {
            ssize_t n = have < sizeof(buf) ? recv(fd, buf + have, sizeof(buf) - have, 0) : -1;
            if (n < 0 && smtp_flag(s, &s->stop) == 0 && have < sizeof(buf))
                continue; /* SO_RCVTIMEO: look at the stop flag again */
            if (n <= 0)
                return;
            have += (size_t)n;
        }
        *eol = '\0';
        char *line = buf;
        if (in_data) {
            if (strcmp(line, ".") == 0) {
                in_data = 0;
                data[dlen] = '\0';
                while (smtp_flag(s, &s->gate_closed) && !smtp_flag(s, &s->stop))
                    usleep(50000);
                int code = smtp_mail_done(s, data);
                say(fd, code == 250   ? "250 2.0.0 queued\r\n"
                        : code == 451 ? "451 4.3.0 try again later\r\n"
                                      : "554 5.7.1 refused for good\r\n");
            } else {
                size_t n = strlen(line + (line[0] == '.'));
                if (dlen + n + 3 < sizeof(data)) {
                    memcpy(data + dlen, line + (line[0] == '.'), n);
                    memcpy(data + dlen + n, "\r\n", 2);
                    dlen += n + 2;
                }
            }
        } else if (strncasecmp(line, "EHLO", 4) == 0 || strncasecmp(line, "HELO", 4) == 0) {
            say(fd, "250-test.local\r\n250 8BITMIME\r\n");
        } else if (strncasecmp(line, "MAIL FROM:", 10) == 0 ||
                   strncasecmp(line, "RCPT TO:", 8) == 0 || strcasecmp(line, "RSET") == 0 ||
                   strcasecmp(line, "NOOP") == 0) {
            say(fd, "250 ok\r\n");
        } else if (strcasecmp(line, "DATA") == 0) {
            in_data = 1;
            dlen = 0;
            say(fd, "354 go ahead\r\n");
        } else if (strcasecmp(line, "QUIT") == 0) {
            say(fd, "221 bye\r\n");
            return;
        } else {
            say(fd, "502 5.5.2 not implemented\r\n");
        }
        size_t used = (size_t)(eol + 2 - buf);
        memmove(buf, buf + used, have - used);
        have -= used;
    }
}

static void *smtp_serve(void *arg)
{
    struct smtp *s = arg;
    while (!smtp_flag(s, &s->stop)) {
        struct pollfd pfd = {s->lfd, POLLIN, 0};
        int fd;
        if (poll(&pfd, 1, 200) != 1 || (fd = accept(s->lfd, NULL, NULL)) < 0)
            continue;
        smtp_session(s, fd);
        close(fd);
    }
    return NULL;
}

static void smtp_start(struct smtp *s)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    socklen_t alen = sizeof(a);

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    pthread_mutex_init(&s->mu, NULL);
    assert_true((s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) >= 0);
    assert_int_equal(bind(s->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(s->lfd, 16), 0);
    assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&a, &alen), 0);
    s->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&s->thread, NULL, smtp_serve, s), 0);
}

static void smtp_stop(struct smtp *s)
{
    smtp_set(s, &s->stop, 1);
    pthread_join(s->thread, NULL);
    close(s->lfd);
}

/* ---- the notification-service under test ---- */

struct fixture {
    struct smtp smtp;
    pid_t pid;
    char log[512];
    char orders[NORDERS][37];
};

/* One more NAME=VALUE for the next start_service, or NULL. */
static const char *extra_env;

static pid_t start_service(struct fixture *f, const char *fault)
{
    char e[8][600];
    const char *env[16];
    int n = 0;

    snprintf(e[0], sizeof(e[0]), "DATABASE_URL=%s", stack_env("NOTIFICATION_DATABASE_URL"));
    snprintf(e[1], sizeof(e[1]), "HTTP_LISTEN=127.0.0.1:%d",
             atoi(stack_env("STACK_HTTP_PORT_BASE")) + 4);
    snprintf(e[2], sizeof(e[2]), "SMTP_URL=smtp://127.0.0.1:%d", f->smtp.port);
    snprintf(e[3], sizeof(e[3]), "KAFKA_BOOTSTRAP_SERVERS=%s",
             stack_env("KAFKA_BOOTSTRAP_SERVERS"));
    snprintf(e[4], sizeof(e[4]), "TOPIC_PARTITIONS=%s", stack_env("TOPIC_PARTITIONS"));
    snprintf(e[5], sizeof(e[5]), "SCHEMA_REGISTRY_URL=%s",
             stack_env_opt("SCHEMA_REGISTRY_URL") ? stack_env_opt("SCHEMA_REGISTRY_URL") : "");
    snprintf(e[6], sizeof(e[6]), "SAGA_FAULT=%s", fault ? fault : "");
    for (int i = 0; i < 7; i++)
        if (i != 5 || stack_env_opt("SCHEMA_REGISTRY_URL"))
            if (i != 6 || fault)
                env[n++] = e[i];
    env[n++] = "NOTIFY_SINK=smtp";
    env[n++] = "SMTP_TIMEOUT=60s";
    env[n++] = "LOG_LEVEL=info";
    /* A member that does not poll for 6 s is evicted (the broker's minimum session). */
    env[n++] = "KAFKA_SESSION_TIMEOUT_MS=6000";
    env[n++] = "KAFKA_HEARTBEAT_INTERVAL_MS=1000";
    env[n++] = "KAFKA_MAX_POLL_INTERVAL_MS=6000";
    env[n++] = "NOTIFY_RETRY_MIN=200ms";
    if (extra_env)
        env[n++] = extra_env;
    env[n] = NULL;
    return proc_start(SERVICE, env, f->log);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    snprintf(f->log, sizeof(f->log), "%s/e2e-notify-%d.log", SAGA_TEST_LOG_DIR, (int)getpid());
    smtp_start(&f->smtp);
    /* Outcomes pile up while no notification-service runs, then arrive as one batch. */
    stack_cmd("stop notification-service");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    if (f->pid > 0)
        proc_stop(f->pid, SIGTERM, 30000);
    smtp_stop(&f->smtp);
    stack_cmd("up"); /* the stack's own notification-service again */
    free(f);
    return 0;
}

static void place_confirmed_orders(struct fixture *f)
{
    for (int i = 0; i < NORDERS; i++)
        place("cust-alice", "tok_visa", "NL", "sku-mug:1", f->orders[i]);
    for (int i = 0; i < NORDERS; i++) {
        json_t *o = wait_order(f->orders[i], order_terminal, WAIT_MS);
        assert_non_null(o);
        assert_string_equal(jstr(o, "status"), "CONFIRMED");
        json_decref(o);
    }
}

static int order_notified(json_t *o)
{
    return order_terminal(o) && timeline_count(o, "NotificationSent") > 0;
}

static void wait_all_notified(struct fixture *f)
{
    for (int i = 0; i < NORDERS; i++) {
        json_t *o = wait_order(f->orders[i], order_notified, WAIT_MS);
        if (!o || !order_notified(o))
            fail_msg("order %s: no NotificationSent within %d ms", f->orders[i], WAIT_MS);
        json_decref(o);
    }
}

/* What the SMTP server received for one order. */
struct tally {
    int mails, accepted, message_ids; /* distinct Message-IDs */
    char first_id[160];
};

static struct tally tally_of(struct smtp *s, const char *order_id)
{
    struct tally t = {0};
    char shortid[9];
    snprintf(shortid, sizeof(shortid), "%.8s", order_id);
    pthread_mutex_lock(&s->mu);
    for (int i = 0; i < s->nmails; i++) {
        const struct mail *m = &s->mails[i];
        if (strcmp(m->order_short, shortid) != 0)
            continue;
        t.mails++;
        t.accepted += m->code == 250;
        if (!t.message_ids || strcmp(t.first_id, m->message_id) != 0)
            t.message_ids++;
        if (!t.first_id[0])
            snprintf(t.first_id, sizeof(t.first_id), "%s", m->message_id);
    }
    pthread_mutex_unlock(&s->mu);
    return t;
}

/* Lag of the notification-service's group on `orders`, or -1 if unknown. */
static long long notification_lag(void)
{
    rd_kafka_t *probe = kafka_client(RD_KAFKA_PRODUCER, NULL);
    rd_kafka_t *rk = kafka_client(RD_KAFKA_CONSUMER, "notification-service");
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(32);
    int parts = atoi(stack_env("TOPIC_PARTITIONS"));
    long long lag = 0;

    for (int p = 0; p < parts; p++)
        rd_kafka_topic_partition_list_add(l, "orders", p);
    if (rd_kafka_committed(rk, l, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR)
        lag = -1;
    for (int i = 0; i < l->cnt && lag >= 0; i++) {
        int64_t lo, hi;
        if (rd_kafka_query_watermark_offsets(probe, "orders", l->elems[i].partition, &lo, &hi,
                                             10000)) {
            lag = -1;
            break;
        }
        lag += hi - (l->elems[i].offset < 0 ? lo : l->elems[i].offset);
    }
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(rk);
    rd_kafka_destroy(probe);
    return lag;
}

static int file_contains(const char *path, const char *needle)
{
    char line[8192];
    FILE *f = fopen(path, "r");
    int found = 0;
    if (!f)
        return 0;
    while (!found && fgets(line, sizeof(line), f))
        found = strcasestr(line, needle) != NULL;
    fclose(f);
    return found;
}

/* Every failed expectation, reported together at the end of a test. */
static char problems[4096];

__attribute__((format(printf, 1, 2))) static void problem(const char *fmt, ...)
{
    size_t len = strlen(problems);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(problems + len, sizeof(problems) - len, fmt, ap);
    va_end(ap);
    len = strlen(problems);
    snprintf(problems + len, sizeof(problems) - len, "\n");
}

static void check_once_each(struct fixture *f)
{
    for (int i = 0; i < NORDERS; i++) {
        struct tally t = tally_of(&f->smtp, f->orders[i]);
        if (t.accepted != 1)
            problem("order %.8s: the SMTP server accepted %d mails (expected 1; %d received)",
                    f->orders[i], t.accepted, t.mails);
        if (t.message_ids > 1)
            problem("order %.8s: %d different Message-IDs", f->orders[i], t.message_ids);
    }
}

/*
 * (a) A slow mail server: every DATA reply is held while the test's gate is closed.
 * The consumer must go on (commit the whole batch of outcomes) without waiting for
 * the mail server, stay in its group though it is slower than max.poll.interval.ms,
 * and each outcome is mailed exactly once.
 */
static void test_slow_smtp_never_blocks_the_consumer(void **state)
{
    struct fixture *f = *state;
    long long until, lag = -1;

    problems[0] = '\0';
    place_confirmed_orders(f);
    smtp_set(&f->smtp, &f->smtp.gate_closed, 1);
    f->pid = start_service(f, NULL);

    /* While no mail can complete, the outcomes are consumed and committed anyway. */
    until = now_ms() + 30000;
    while ((lag = notification_lag()) != 0 && now_ms() < until)
        usleep(250000);
    if (lag != 0)
        problem("the consumer did not commit its batch while the mail server was slow "
                "(lag on orders %lld after 30 s): mail is sent inside the transaction",
                lag);
    /* Past max.poll.interval.ms with the mail server still stuck. */
    usleep(8000 * 1000);
    smtp_set(&f->smtp, &f->smtp.gate_closed, 0);

    wait_all_notified(f);
    wait_quiescent(WAIT_MS);
    usleep(2000 * 1000); /* a resend would come now */
    check_once_each(f);
    if (file_contains(f->log, "maximum poll interval"))
        problem("the consumer exceeded max.poll.interval.ms (see %s)", f->log);
    if (problems[0])
        fail_msg("%s", problems);
}

/*
 * (b) One mail of a batch fails (451) and is retried: the mails already accepted are
 * not sent again, and the retry carries the same Message-ID (c).
 */
static void test_failed_mail_resends_no_other(void **state)
{
    struct fixture *f = *state;
    int failed = -1;

    problems[0] = '\0';
    place_confirmed_orders(f);
    smtp_set(&f->smtp, &f->smtp.fail_nth, 2);
    f->pid = start_service(f, NULL);

    wait_all_notified(f);
    wait_quiescent(WAIT_MS);
    usleep(2000 * 1000);
    check_once_each(f);
    pthread_mutex_lock(&f->smtp.mu);
    for (int i = 0; i < f->smtp.nmails; i++)
        if (f->smtp.mails[i].code != 250)
            for (int o = 0; o < NORDERS; o++)
                if (strncmp(f->orders[o], f->smtp.mails[i].order_short, 8) == 0)
                    failed = o;
    pthread_mutex_unlock(&f->smtp.mu);
    if (failed < 0) {
        problem("no mail was refused (the test's SMTP server refuses the second)");
    } else {
        struct tally t = tally_of(&f->smtp, f->orders[failed]);
        if (t.mails != 2)
            problem("order %.8s: %d mails for a refused one and its retry (expected 2)",
                    f->orders[failed], t.mails);
    }
    if (problems[0])
        fail_msg("%s", problems);
}

/*
 * (c) A crash after the mail server accepted a mail and before it is marked sent:
 * it is sent again after the restart, with the same Message-ID, so the duplicate can
 * be recognised; the order still gets one NotificationSent.
 */
static void test_crash_after_send_same_message_id(void **state)
{
    struct fixture *f = *state;
    int status;

    problems[0] = '\0';
    place_confirmed_orders(f);
    f->pid = start_service(f, "notification.after_send");
    status = proc_wait(f->pid, 60000);
    if (status == -1 || !WIFSIGNALED(status) || WTERMSIG(status) != SIGKILL)
        fail_msg("the service did not crash at notification.after_send (see %s)", f->log);
    f->pid = start_service(f, NULL);

    wait_all_notified(f);
    wait_quiescent(WAIT_MS);
    usleep(2000 * 1000);
    for (int i = 0; i < NORDERS; i++) {
        struct tally t = tally_of(&f->smtp, f->orders[i]);
        json_t *o = wait_order(f->orders[i], order_notified, WAIT_MS);
        if (t.accepted < 1)
            problem("order %.8s: no mail accepted", f->orders[i]);
        if (t.message_ids != 1)
            problem("order %.8s: %d mails with %d different Message-IDs (expected one id)",
                    f->orders[i], t.mails, t.message_ids);
        if (timeline_count(o, "NotificationSent") != 1)
            problem("order %.8s: %d NotificationSent", f->orders[i],
                    timeline_count(o, "NotificationSent"));
        json_decref(o);
    }
    if (tally_of(&f->smtp, f->orders[0]).mails + tally_of(&f->smtp, f->orders[1]).mails +
            tally_of(&f->smtp, f->orders[2]).mails !=
        NORDERS + 1)
        problem("expected exactly one mail sent twice (the one the crash left unmarked)");
    if (problems[0])
        fail_msg("%s", problems);
}

/*
 * A mail the server refuses for good (5xx) is not retried: the notification is marked
 * failed, no NotificationSent claims it was sent, the others go out, the gauge shows it.
 */
static void test_refused_for_good_is_marked_failed(void **state)
{
    struct fixture *f = *state;
    int refused = -1;
    double gauge = -1;
    long long until;

    problems[0] = '\0';
    place_confirmed_orders(f);
    smtp_set(&f->smtp, &f->smtp.fail_code, 554);
    smtp_set(&f->smtp, &f->smtp.fail_nth, 1);
    f->pid = start_service(f, NULL);

    until = now_ms() + WAIT_MS;
    while (refused < 0 && now_ms() < until) {
        for (int o = 0; o < NORDERS; o++) {
            char *st =
                db_text("notification", "SELECT status FROM notifications WHERE order_id = $1",
                        f->orders[o]);
            if (strcmp(st, "failed") == 0)
                refused = o;
            free(st);
        }
        usleep(200000);
    }
    if (refused < 0)
        fail_msg("no notification was marked failed after a 554");
    for (int o = 0; o < NORDERS; o++) {
        json_t *j;
        if (o == refused)
            continue;
        j = wait_order(f->orders[o], order_notified, WAIT_MS);
        if (!order_notified(j))
            problem("order %.8s: no NotificationSent", f->orders[o]);
        json_decref(j);
    }
    wait_quiescent(WAIT_MS);
    usleep(2000 * 1000);
    {
        struct tally t = tally_of(&f->smtp, f->orders[refused]);
        json_t *j = wait_order(f->orders[refused], order_terminal, WAIT_MS);
        if (t.mails != 1)
            problem("order %.8s: refused for good, yet %d mails", f->orders[refused], t.mails);
        if (timeline_count(j, "NotificationSent") != 0)
            problem("order %.8s: NotificationSent for a mail that was refused", f->orders[refused]);
        json_decref(j);
    }
    until = now_ms() + 20000;
    while (gauge < 1 && now_ms() < until) {
        char *m = scrape(4);
        gauge = m ? metric(m, "saga_notifications_failed{service=\"notification-service\"}") : -1;
        free(m);
        if (gauge < 1)
            usleep(500000);
    }
    if (gauge < 1)
        problem("saga_notifications_failed is %g, expected at least 1", gauge);
    if (problems[0])
        fail_msg("%s", problems);
}

/* Transactions (commits and rollbacks) in the notification-service's database so far. */
static long long notification_db_transactions(void)
{
    return db_num("notification",
                  "SELECT xact_commit + xact_rollback FROM pg_stat_database"
                  " WHERE datname = current_database()",
                  NULL);
}

/*
 * A sender with nothing to send costs one read-only transaction per poll interval: the
 * look at the queue (its gauges) and the claim share it. Before, each poll took two: a
 * claim that found nothing, then the look. A delivery likewise needs no claim after it
 * when the claim's look counted no other due notification.
 */
static void test_idle_sender_costs_one_transaction_per_poll(void **state)
{
    struct fixture *f = *state;
    long long before, after;
    enum { POLL_MS = 100, WINDOW_MS = 4000 };

    extra_env = "NOTIFY_POLL_INTERVAL=100ms";
    f->pid = start_service(f, NULL);
    extra_env = NULL;
    wait_quiescent(WAIT_MS);
    usleep(3000 * 1000); /* started, and its start-up counted */
    before = notification_db_transactions();
    usleep(WINDOW_MS * 1000);
    /* A backend reports its counts at most once a second; the sender's polls flush them. */
    after = notification_db_transactions();
    print_message("idle: %lld transactions in %d ms (%d polls)\n", after - before, WINDOW_MS,
                  WINDOW_MS / POLL_MS);
    if (after - before > WINDOW_MS / POLL_MS * 3 / 2)
        fail_msg("an idle notification-service took %lld transactions in %d ms of %d ms polls",
                 after - before, WINDOW_MS, POLL_MS);
}

/*
 * A recorded notification wakes this process's sender once its transaction commits,
 * in the process: the consumer's transaction sends no NOTIFY (which took the cluster's
 * notification lock through its commit and cost the sender's backend a transaction to
 * read), and delivery does not wait for the poll interval.
 */
static void test_recorded_notification_wakes_the_sender_without_a_notify(void **state)
{
    struct fixture *f = *state;
    PGconn *listener = PQconnectdb(stack_env("NOTIFICATION_DATABASE_URL"));
    PGnotify *n;
    int notifies = 0;

    assert_int_equal(PQstatus(listener), CONNECTION_OK);
    PQclear(PQexec(listener, "LISTEN saga_notification"));
    /* Longer than the whole test: only a wake delivers in time. */
    extra_env = "NOTIFY_POLL_INTERVAL=600s";
    f->pid = start_service(f, NULL);
    extra_env = NULL;
    wait_quiescent(WAIT_MS);
    usleep(2000 * 1000); /* its first look at the queue is done; it sleeps now */
    place_confirmed_orders(f);
    for (int i = 0; i < NORDERS; i++) {
        json_t *o = wait_order(f->orders[i], order_notified, 30000);
        if (!o || !order_notified(o))
            fail_msg("order %s: no NotificationSent within 30 s (poll interval 600 s): the "
                     "sender was not woken",
                     f->orders[i]);
        json_decref(o);
    }
    PQconsumeInput(listener);
    while ((n = PQnotifies(listener))) {
        notifies++;
        PQfreemem(n);
    }
    PQfinish(listener);
    if (notifies)
        fail_msg("%d NOTIFY on saga_notification for %d notifications recorded", notifies, NORDERS);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_slow_smtp_never_blocks_the_consumer, setup, teardown),
        cmocka_unit_test_setup_teardown(test_failed_mail_resends_no_other, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_after_send_same_message_id, setup, teardown),
        cmocka_unit_test_setup_teardown(test_refused_for_good_is_marked_failed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_idle_sender_costs_one_transaction_per_poll, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_recorded_notification_wakes_the_sender_without_a_notify, setup, teardown),
    };
    if (getenv("IT_ONLY"))
        cmocka_set_test_filter(getenv("IT_ONLY"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
