/*
 * notification-service's rules: configuration, rendered texts, the file sink and
 * the SMTP sink against a small SMTP responder on 127.0.0.1 (no Kafka, no Postgres).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

#include "rules.h"

static const char *const vars[] = {
    "NOTIFY_SINK",      "NOTIFY_EMAIL_DOMAIN", "NOTIFY_FILE",
    "SMTP_URL",         "SMTP_FROM",           "SMTP_TIMEOUT",
    "NOTIFY_RETRY_MIN", "NOTIFY_RETRY_MAX",    "NOTIFY_POLL_INTERVAL"};

static int clear_env(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
        unsetenv(vars[i]);
    return 0;
}

#define ORDER "1b4e28ba-2fa1-41d2-883f-0016d3cca427"

static void test_money(void **state)
{
    char b[32];
    notif_format_money(b, sizeof(b), 2598);
    assert_string_equal(b, "25.98");
    notif_format_money(b, sizeof(b), 0);
    assert_string_equal(b, "0.00");
    notif_format_money(b, sizeof(b), 5);
    assert_string_equal(b, "0.05");
    notif_format_money(b, sizeof(b), 100);
    assert_string_equal(b, "1.00");
    notif_format_money(b, sizeof(b), -5);
    assert_string_equal(b, "-0.05");
    notif_format_money(b, sizeof(b), 123456789012);
    assert_string_equal(b, "1234567890.12");
    notif_format_money(b, sizeof(b), INT64_MIN);
    assert_string_equal(b, "-92233720368547758.08");
    notif_format_money(b, sizeof(b), INT64_MAX);
    assert_string_equal(b, "92233720368547758.07");
}

static void test_short_id(void **state)
{
    char s[9];
    notif_short_id(s, ORDER);
    assert_string_equal(s, "1b4e28ba");
    notif_short_id(s, "abc");
    assert_string_equal(s, "abc");
    notif_short_id(s, "a\r\nb c<d>e");
    assert_string_equal(s, "a__b_c_d");
    notif_short_id(s, NULL);
    assert_string_equal(s, "");
}

static void test_render_confirmed(void **state)
{
    struct notif_facts f = {.outcome = SAGA_OUTCOME_CONFIRMED,
                            .order_id = ORDER,
                            .recipient_name = "Ada Lovelace",
                            .total_amount = 2598,
                            .currency = "EUR"};
    char *t = notif_render(&f);
    assert_string_equal(
        t, "Hello Ada Lovelace, your order 1b4e28ba is confirmed: 25.98 EUR. It will ship soon.");
    free(t);
    f.recipient_name = NULL;
    f.total_amount = 7;
    t = notif_render(&f);
    assert_string_equal(t, "Hello, your order 1b4e28ba is confirmed: 0.07 EUR. It will ship soon.");
    free(t);
    /* OrderConfirmed from 0.3.0 on carries the tracking number (older writers: NULL). */
    f.tracking_number = "TRK-4711\n";
    t = notif_render(&f);
    assert_string_equal(t, "Hello, your order 1b4e28ba is confirmed: 0.07 EUR. It ships with "
                           "tracking number TRK-4711 .");
    free(t);
    f.tracking_number = "";
    t = notif_render(&f);
    assert_string_equal(t, "Hello, your order 1b4e28ba is confirmed: 0.07 EUR. It will ship soon.");
    free(t);
}

/* The tracking number is whatever an OrderConfirmed on the wire says (any writer, any
 * length): the message stays one short line. A Unicode line break (U+2028, NEL) is a
 * line break too, and a megabyte of tracking number is not a notification. */
static void test_render_tracking_number_is_bounded(void **state)
{
    struct notif_facts f = {.outcome = SAGA_OUTCOME_CONFIRMED,
                            .order_id = ORDER,
                            .recipient_name = "Ada",
                            .total_amount = 2598,
                            .currency = "EUR"};
    static const char *const breaks[] = {"TRK\xe2\x80\xa8"
                                         "Bcc: x",
                                         "TRK\xc2\x85"
                                         "Bcc: x",
                                         "TRK\xe2\x80\xa9"
                                         "Bcc: x"};
    char *big = malloc(100001), *t;
    (void)state;
    assert_non_null(big);
    memset(big, 'A', 100000);
    big[100000] = '\0';
    f.tracking_number = big;
    t = notif_render(&f);
    assert_non_null(t);
    if (strlen(t) > 300)
        fail_msg("a 100000-character tracking number made a %zu-byte message", strlen(t));
    free(t);
    free(big);
    for (size_t i = 0; i < sizeof(breaks) / sizeof(breaks[0]); i++) {
        f.tracking_number = breaks[i];
        t = notif_render(&f);
        assert_non_null(t);
        if (strstr(t, "\xe2\x80\xa8") || strstr(t, "\xe2\x80\xa9") || strstr(t, "\xc2\x85"))
            fail_msg("a line break in the tracking number reached the message: %s", t);
        free(t);
    }
    /* a real one still shows */
    f.tracking_number = "SP4471235690";
    t = notif_render(&f);
    assert_non_null(strstr(t, "tracking number SP4471235690."));
    free(t);
}

static void test_render_cancelled(void **state)
{
    static const struct {
        saga_cancel_reason_t reason;
        const char *text;
    } cases[] = {
        {SAGA_CANCEL_OUT_OF_STOCK, "an item is out of stock"},
        {SAGA_CANCEL_PAYMENT_FAILED, "the payment failed"},
        {SAGA_CANCEL_SHIPMENT_FAILED, "we cannot ship to that address"},
        {SAGA_CANCEL_TIMEOUT, "it took too long to complete"},
        {SAGA_CANCEL_CUSTOMER_REQUEST, "you asked us to cancel it"},
        {SAGA_CANCEL_UNKNOWN, "it could not be completed"},
        {(saga_cancel_reason_t)42, "it could not be completed"},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct notif_facts f = {.outcome = SAGA_OUTCOME_CANCELLED,
                                .order_id = ORDER,
                                .recipient_name = "Ada",
                                .reason = cases[i].reason};
        char want[200], *t = notif_render(&f);
        snprintf(want, sizeof(want), "Hello Ada, your order 1b4e28ba was cancelled: %s.",
                 cases[i].text);
        assert_string_equal(t, want);
        free(t);
        assert_string_equal(notif_cancel_reason_text(cases[i].reason), cases[i].text);
    }

    struct notif_facts f = {.outcome = SAGA_OUTCOME_CANCELLED,
                            .order_id = ORDER,
                            .recipient_name = "Ada",
                            .reason = SAGA_CANCEL_PAYMENT_FAILED,
                            .detail = "CARD_DECLINED"};
    char *t = notif_render(&f);
    assert_string_equal(t, "Hello Ada, your order 1b4e28ba was cancelled: the payment failed "
                           "(CARD_DECLINED).");
    free(t);
    f.detail = "";
    t = notif_render(&f);
    assert_string_equal(t, "Hello Ada, your order 1b4e28ba was cancelled: the payment failed.");
    free(t);
}

static void test_render_one_line(void **state)
{
    struct notif_facts f = {.outcome = SAGA_OUTCOME_CANCELLED,
                            .order_id = ORDER,
                            .recipient_name = "Ada\r\nBcc: x@evil",
                            .reason = SAGA_CANCEL_TIMEOUT,
                            .detail = "a\nb\tc"};
    char *t = notif_render(&f);
    assert_string_equal(t, "Hello Ada  Bcc: x@evil, your order 1b4e28ba was cancelled: it took "
                           "too long to complete (a b c).");
    free(t);
    f.outcome = SAGA_OUTCOME_UNKNOWN;
    assert_null(notif_render(&f));
}

static void test_subject_recipient_address(void **state)
{
    char *s = notif_subject(SAGA_OUTCOME_CONFIRMED, ORDER);
    assert_string_equal(s, "Your order 1b4e28ba is confirmed");
    free(s);
    s = notif_subject(SAGA_OUTCOME_CANCELLED, ORDER);
    assert_string_equal(s, "Your order 1b4e28ba was cancelled");
    free(s);
    s = notif_recipient("cust-42", "example.com");
    assert_string_equal(s, "cust-42@example.com");
    free(s);

    assert_true(notif_address_ok("cust-42@example.com"));
    assert_true(notif_address_ok("a.b+c@mail.example.org"));
    assert_false(notif_address_ok("@example.com"));
    assert_false(notif_address_ok("cust@"));
    assert_false(notif_address_ok("cust"));
    assert_false(notif_address_ok("a@b@c"));
    assert_false(notif_address_ok("a b@example.com"));
    assert_false(notif_address_ok("a\r\nRCPT TO:<x>@example.com"));
    assert_false(notif_address_ok("<a>@example.com"));
    assert_false(notif_address_ok(NULL));
}

static void test_config_defaults(void **state)
{
    struct notif_config c;
    char err[256];
    assert_int_equal(notif_config_load(&c, err, sizeof(err)), SAGA_OK);
    assert_int_equal(c.sink, NOTIF_SINK_LOG);
    assert_int_equal(notif_sink_channel(c.sink), SAGA_CHANNEL_LOG);
    assert_string_equal(c.email_domain, "example.com");
    assert_string_equal(c.smtp_from, "orders@example.com");
    assert_int_equal(c.smtp_timeout_ms, 10000);
    assert_int_equal(c.retry_min_ms, 1000);
    assert_int_equal(c.retry_max_ms, 300000);
    assert_int_equal(c.poll_ms, 5000);
    assert_string_equal(c.file, "");
    assert_string_equal(c.smtp_url, "");

    setenv("NOTIFY_SINK", "FILE", 1);
    setenv("NOTIFY_FILE", "/tmp/n.jsonl", 1);
    assert_int_equal(notif_config_load(&c, err, sizeof(err)), SAGA_OK);
    assert_int_equal(c.sink, NOTIF_SINK_FILE);
    assert_int_equal(notif_sink_channel(c.sink), SAGA_CHANNEL_FILE);
    assert_string_equal(c.file, "/tmp/n.jsonl");

    setenv("NOTIFY_SINK", "smtp", 1);
    setenv("SMTP_URL", "smtp://mailer:s3cret@127.0.0.1:1025", 1);
    setenv("SMTP_FROM", "shop@shop.example", 1);
    setenv("SMTP_TIMEOUT", "2s", 1);
    setenv("NOTIFY_EMAIL_DOMAIN", "customers.example", 1);
    assert_int_equal(notif_config_load(&c, err, sizeof(err)), SAGA_OK);
    assert_int_equal(c.sink, NOTIF_SINK_SMTP);
    assert_int_equal(notif_sink_channel(c.sink), SAGA_CHANNEL_EMAIL);
    assert_int_equal(c.smtp_timeout_ms, 2000);
    assert_string_equal(c.email_domain, "customers.example");

    char *out = NULL;
    size_t len;
    FILE *m = open_memstream(&out, &len);
    notif_config_print(&c, m);
    fclose(m);
    assert_non_null(strstr(out, "NOTIFY_SINK=smtp\n"));
    assert_non_null(strstr(out, "SMTP_URL=smtp://mailer:****@127.0.0.1:1025\n"));
    assert_non_null(strstr(out, "SMTP_TIMEOUT=2000ms\n"));
    assert_null(strstr(out, "s3cret"));
    free(out);
}

static void expect_config_error(const char *var)
{
    struct notif_config c;
    char err[256] = "";
    assert_int_equal(notif_config_load(&c, err, sizeof(err)), SAGA_ERR_CONFIG);
    assert_non_null(strstr(err, var));
    assert_null(strchr(err, '\n'));
}

static void test_config_errors(void **state)
{
    setenv("NOTIFY_SINK", "pigeon", 1);
    expect_config_error("NOTIFY_SINK");
    setenv("NOTIFY_SINK", "file", 1);
    expect_config_error("NOTIFY_FILE");
    setenv("NOTIFY_SINK", "smtp", 1);
    expect_config_error("SMTP_URL");
    setenv("SMTP_URL", "http://127.0.0.1:1025", 1);
    expect_config_error("SMTP_URL");
    setenv("SMTP_URL", "smtp://", 1);
    expect_config_error("SMTP_URL");
    setenv("SMTP_URL", "smtp://u:hunter2@host :25", 1);
    {
        struct notif_config c;
        char err[256];
        assert_int_equal(notif_config_load(&c, err, sizeof(err)), SAGA_ERR_CONFIG);
        assert_null(strstr(err, "hunter2"));
    }
    /* a password holding a space (refused for the space): not shown either */
    setenv("SMTP_URL", "smtp://u:hunter2 x@host:25", 1);
    {
        struct notif_config c;
        char err[256];
        assert_int_equal(notif_config_load(&c, err, sizeof(err)), SAGA_ERR_CONFIG);
        assert_non_null(strstr(err, "spaces"));
        if (strstr(err, "hunter2"))
            fail_msg("the error shows the password: %s", err);
    }
    setenv("SMTP_URL", "smtps://mail.example.com:465", 1);
    setenv("SMTP_FROM", "Orders <orders@example.com>", 1);
    expect_config_error("SMTP_FROM");
    unsetenv("SMTP_FROM");
    setenv("SMTP_TIMEOUT", "never", 1);
    expect_config_error("SMTP_TIMEOUT");
    unsetenv("SMTP_TIMEOUT");
    setenv("NOTIFY_RETRY_MIN", "10s", 1);
    setenv("NOTIFY_RETRY_MAX", "5s", 1);
    expect_config_error("NOTIFY_RETRY_MAX");
    unsetenv("NOTIFY_RETRY_MIN");
    unsetenv("NOTIFY_RETRY_MAX");
    setenv("NOTIFY_POLL_INTERVAL", "0", 1);
    expect_config_error("NOTIFY_POLL_INTERVAL");
    unsetenv("NOTIFY_POLL_INTERVAL");
    setenv("NOTIFY_EMAIL_DOMAIN", "exa mple.com", 1);
    expect_config_error("NOTIFY_EMAIL_DOMAIN");
    setenv("NOTIFY_EMAIL_DOMAIN", ".example.com", 1);
    expect_config_error("NOTIFY_EMAIL_DOMAIN");
}

static const struct notif_record sample = {
    .notification_id = "6f1c1a4e-3b8a-4bde-9a0c-2f5f0c1d9e77",
    .order_id = ORDER,
    .outcome = SAGA_OUTCOME_CANCELLED,
    .recipient = "cust-42@example.com",
    .message = "Hello \"Ada\" \\o/, your order 1b4e28ba was cancelled: the payment failed.",
    .sent_at_ms = 1700000000123,
};

static void test_file_line(void **state)
{
    char *l = notif_file_line(&sample);
    assert_string_equal(l, "{\"notification_id\":\"6f1c1a4e-3b8a-4bde-9a0c-2f5f0c1d9e77\","
                           "\"order_id\":\"" ORDER "\",\"outcome\":\"CANCELLED\","
                           "\"recipient\":\"cust-42@example.com\","
                           "\"message\":\"Hello \\\"Ada\\\" \\\\o/, your order 1b4e28ba was "
                           "cancelled: the payment failed.\","
                           "\"sent_at\":\"2023-11-14T22:13:20.123Z\"}\n");
    free(l);
}

static void test_file_append(void **state)
{
    char dir[] = "/tmp/test_notif_XXXXXX", path[64], err[256], line[1024];
    int n = 0;
    assert_non_null(mkdtemp(dir));
    snprintf(path, sizeof(path), "%s/n.jsonl", dir);

    assert_int_equal(notif_file_append(path, &sample, err, sizeof(err)), SAGA_OK);
    struct notif_record second = sample;
    second.outcome = SAGA_OUTCOME_CONFIRMED;
    assert_int_equal(notif_file_append(path, &second, err, sizeof(err)), SAGA_OK);
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    while (fgets(line, sizeof(line), f)) {
        assert_non_null(strstr(line, n ? "\"CONFIRMED\"" : "\"CANCELLED\""));
        assert_int_equal(line[strlen(line) - 1], '\n');
        n++;
    }
    fclose(f);
    assert_int_equal(n, 2);
    unlink(path);

    /* A directory where the file should be: an I/O error naming the file. */
    assert_int_equal(notif_file_append(dir, &sample, err, sizeof(err)), SAGA_ERR_IO);
    assert_non_null(strstr(err, "NOTIFY_FILE"));
    assert_non_null(strstr(err, dir));
    rmdir(dir);
}

static void test_retry_delay(void **state)
{
    /* No jitter (rnd 0): doubling from the first wait, capped. */
    assert_int_equal(notif_retry_delay_ms(1, 1000, 300000, 0), 1000);
    assert_int_equal(notif_retry_delay_ms(2, 1000, 300000, 0), 2000);
    assert_int_equal(notif_retry_delay_ms(5, 1000, 300000, 0), 16000);
    assert_int_equal(notif_retry_delay_ms(9, 1000, 300000, 0), 256000);
    assert_int_equal(notif_retry_delay_ms(10, 1000, 300000, 0), 300000);
    assert_int_equal(notif_retry_delay_ms(1000000, 1000, 300000, 0), 300000);
    /* Full jitter takes off half, never more. */
    assert_int_equal(notif_retry_delay_ms(1, 1000, 300000, UINT32_MAX), 500);
    assert_int_equal(notif_retry_delay_ms(1000000, 1000, 300000, UINT32_MAX), 150000);
    for (uint32_t r = 1; r < 4000000000u; r += 123456789u) {
        int64_t d = notif_retry_delay_ms(3, 1000, 300000, r);
        assert_true(d >= 2000 && d <= 4000);
    }
}

static void test_email_build(void **state)
{
    char d[40];
    notif_rfc5322_date(d, 0);
    assert_string_equal(d, "Thu, 01 Jan 1970 00:00:00 +0000");
    notif_rfc5322_date(d, 1700000000123);
    assert_string_equal(d, "Tue, 14 Nov 2023 22:13:20 +0000");

    const char *body = "Hello Ada, your order 1b4e28ba was cancelled: the payment failed "
                       "(the card issuer declined the charge for reasons it did not share with "
                       "us, please try another card).";
    char *m = notif_email_build("orders@shop.example", "cust-42@example.com",
                                "Your order 1b4e28ba was cancelled", sample.notification_id,
                                1700000000123, body);
    assert_non_null(m);
    const char *want_head = "From: orders@shop.example\r\n"
                            "To: cust-42@example.com\r\n"
                            "Subject: Your order 1b4e28ba was cancelled\r\n"
                            "Date: Tue, 14 Nov 2023 22:13:20 +0000\r\n"
                            "Message-ID: <6f1c1a4e-3b8a-4bde-9a0c-2f5f0c1d9e77@shop.example>\r\n"
                            "MIME-Version: 1.0\r\n"
                            "Content-Type: text/plain; charset=UTF-8\r\n"
                            "Content-Transfer-Encoding: 8bit\r\n"
                            "\r\n";
    assert_memory_equal(m, want_head, strlen(want_head));

    /* The body: wrapped at spaces, CRLF line ends, the words unchanged. */
    char *b = m + strlen(want_head), joined[512] = "";
    int lines = 0;
    for (char *p = b; *p;) {
        char *e = strstr(p, "\r\n");
        assert_non_null(e);
        assert_true(e - p <= 76);
        assert_null(memchr(p, '\n', (size_t)(e - p)));
        if (lines++)
            strcat(joined, " ");
        strncat(joined, p, (size_t)(e - p));
        p = e + 2;
    }
    assert_true(lines >= 2);
    assert_string_equal(joined, body);
    free(m);

    /* A word longer than any line is still cut below SMTP's 998-byte limit. */
    char big[3000];
    memset(big, 'x', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    m = notif_email_build("a@b.example", "c@d.example", "s", "id", 0, big);
    for (char *p = strstr(m, "\r\n\r\n") + 4; *p;) {
        char *e = strstr(p, "\r\n");
        assert_non_null(e);
        assert_true(e - p <= 998);
        p = e + 2;
    }
    free(m);
}

/* ---- a small SMTP responder, one connection ---- */

struct smtp_server {
    int lfd, port;
    int rcpt_code, data_code; /* replies to RCPT and to the end of DATA */
    char mail_from[256], rcpt_to[256];
    char data[8192];
    int quit;
    pthread_t thread;
};

static void say(int fd, const char *s)
{
    ssize_t n = send(fd, s, strlen(s), MSG_NOSIGNAL);
    (void)n;
}

static void *smtp_serve(void *arg)
{
    struct smtp_server *s = arg;
    struct pollfd pfd = {s->lfd, POLLIN, 0};
    char buf[16384];
    size_t have = 0;
    int in_data = 0, fd;

    if (poll(&pfd, 1, 10000) != 1 || (fd = accept(s->lfd, NULL, NULL)) < 0)
        return NULL;
    struct timeval tv = {10, 0};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof(tv));
    say(fd, "220 test.local ESMTP ready\r\n");
    for (;;) {
        char *eol;
        while (!(eol = memmem(buf, have, "\r\n", 2))) {
            ssize_t n = have < sizeof(buf) ? recv(fd, buf + have, sizeof(buf) - have, 0) : -1;
            if (n <= 0)
                goto out;
            have += (size_t)n;
        }
        *eol = '\0';
        char *line = buf;
        if (in_data) {
            if (strcmp(line, ".") == 0) {
                in_data = 0;
                say(fd,
                    s->data_code == 250 ? "250 2.0.0 queued\r\n" : "451 4.3.0 try again later\r\n");
            } else {
                if (line[0] == '.')
                    line++; /* dot-stuffing */
                if (strlen(s->data) + strlen(line) + 3 < sizeof(s->data)) {
                    strcat(s->data, line);
                    strcat(s->data, "\r\n");
                }
            }
        } else if (strncasecmp(line, "EHLO", 4) == 0 || strncasecmp(line, "HELO", 4) == 0) {
            say(fd, "250-test.local\r\n250 8BITMIME\r\n");
        } else if (strncasecmp(line, "MAIL FROM:", 10) == 0) {
            snprintf(s->mail_from, sizeof(s->mail_from), "%.200s", line + 10);
            say(fd, "250 2.1.0 ok\r\n");
        } else if (strncasecmp(line, "RCPT TO:", 8) == 0) {
            snprintf(s->rcpt_to, sizeof(s->rcpt_to), "%.200s", line + 8);
            say(fd, s->rcpt_code == 250 ? "250 2.1.5 ok\r\n" : "550 5.1.1 no such user\r\n");
        } else if (strcasecmp(line, "DATA") == 0) {
            in_data = 1;
            say(fd, "354 go ahead\r\n");
        } else if (strcasecmp(line, "QUIT") == 0) {
            s->quit = 1;
            say(fd, "221 bye\r\n");
            goto out;
        } else if (strcasecmp(line, "RSET") == 0 || strcasecmp(line, "NOOP") == 0) {
            say(fd, "250 ok\r\n");
        } else {
            say(fd, "502 5.5.2 not implemented\r\n");
        }
        size_t used = (size_t)(eol + 2 - buf);
        memmove(buf, buf + used, have - used);
        have -= used;
    }
out:
    close(fd);
    return NULL;
}

static void smtp_start(struct smtp_server *s, int rcpt_code, int data_code)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    socklen_t alen = sizeof(a);

    memset(s, 0, sizeof(*s));
    s->rcpt_code = rcpt_code;
    s->data_code = data_code;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_true((s->lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) >= 0);
    assert_int_equal(bind(s->lfd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(s->lfd, 1), 0);
    assert_int_equal(getsockname(s->lfd, (struct sockaddr *)&a, &alen), 0);
    s->port = ntohs(a.sin_port);
    assert_int_equal(pthread_create(&s->thread, NULL, smtp_serve, s), 0);
}

static void smtp_stop(struct smtp_server *s)
{
    pthread_join(s->thread, NULL);
    close(s->lfd);
}

/* A port nothing listens on (bound, then closed again). */
static int free_port(void)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = 0};
    socklen_t alen = sizeof(a);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &alen), 0);
    close(fd);
    return ntohs(a.sin_port);
}

static void test_smtp_send(void **state)
{
    struct smtp_server s;
    char url[64], err[256] = "";

    smtp_start(&s, 250, 250);
    snprintf(url, sizeof(url), "smtp://127.0.0.1:%d", s.port);
    const char *body = "Hello Ada, your order 1b4e28ba is confirmed: 25.98 EUR. It will ship "
                       "soon. Übermorgen.";
    char *mail = notif_email_build("orders@example.com", "cust-42@example.com",
                                   "Your order 1b4e28ba is confirmed", sample.notification_id,
                                   sample.sent_at_ms, body);
    assert_int_equal(notif_smtp_send(url, "orders@example.com", "cust-42@example.com", mail, 5000,
                                     err, sizeof(err)),
                     SAGA_OK);
    smtp_stop(&s);
    assert_string_equal(s.mail_from, "<orders@example.com>");
    assert_string_equal(s.rcpt_to, "<cust-42@example.com>");
    assert_string_equal(s.data, mail);
    assert_non_null(strstr(s.data, "Subject: Your order 1b4e28ba is confirmed\r\n"));
    assert_non_null(strstr(s.data, "\r\n\r\nHello Ada, your order 1b4e28ba is confirmed"));
    assert_non_null(strstr(s.data, "Übermorgen."));
    assert_true(s.quit);
    free(mail);
}

/* Credentials set and the server offers no STARTTLS (or a man in the middle stripped
 * it from EHLO): nothing is sent, least of all the password. */
static void test_smtp_credentials_require_starttls(void **state)
{
    struct smtp_server s;
    char url[96], err[256] = "";

    (void)state;
    smtp_start(&s, 250, 250);
    snprintf(url, sizeof(url), "smtp://mailer:s3cret@127.0.0.1:%d", s.port);
    assert_int_equal(notif_smtp_send(url, "orders@example.com", "cust@example.com",
                                     "Subject: x\r\n\r\nx\r\n", 5000, err, sizeof(err)),
                     SAGA_ERR_TRANSIENT);
    smtp_stop(&s);
    fprintf(stderr, "refused: %s\n", err);
    assert_string_equal(s.mail_from, "");
    assert_string_equal(s.data, "");
}

static void test_smtp_failures(void **state)
{
    struct smtp_server s;
    char url[64], err[256] = "";

    /* The server refuses the recipient for good: permanent. */
    smtp_start(&s, 550, 250);
    snprintf(url, sizeof(url), "smtp://127.0.0.1:%d", s.port);
    assert_int_equal(notif_smtp_send(url, "orders@example.com", "nobody@example.com",
                                     "Subject: x\r\n\r\nx\r\n", 5000, err, sizeof(err)),
                     SAGA_ERR_PERMANENT);
    assert_non_null(strstr(err, "nobody@example.com"));
    assert_non_null(strstr(err, "550"));
    smtp_stop(&s);

    /* It takes the message but says try later: transient. */
    smtp_start(&s, 250, 451);
    snprintf(url, sizeof(url), "smtp://127.0.0.1:%d", s.port);
    assert_int_equal(notif_smtp_send(url, "orders@example.com", "cust@example.com",
                                     "Subject: x\r\n\r\nx\r\n", 5000, err, sizeof(err)),
                     SAGA_ERR_TRANSIENT);
    assert_non_null(strstr(err, "451"));
    smtp_stop(&s);

    /* Nobody listening: transient. */
    snprintf(url, sizeof(url), "smtp://127.0.0.1:%d", free_port());
    assert_int_equal(notif_smtp_send(url, "orders@example.com", "cust@example.com",
                                     "Subject: x\r\n\r\nx\r\n", 2000, err, sizeof(err)),
                     SAGA_ERR_TRANSIENT);

    /* An address that could inject SMTP commands is refused before connecting. */
    assert_int_equal(notif_smtp_send(url, "orders@example.com", "a\r\nDATA@example.com", "x\r\n",
                                     2000, err, sizeof(err)),
                     SAGA_ERR_PERMANENT);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_money),
        cmocka_unit_test(test_short_id),
        cmocka_unit_test(test_render_confirmed),
        cmocka_unit_test(test_render_tracking_number_is_bounded),
        cmocka_unit_test(test_render_cancelled),
        cmocka_unit_test(test_render_one_line),
        cmocka_unit_test(test_subject_recipient_address),
        cmocka_unit_test_setup(test_config_defaults, clear_env),
        cmocka_unit_test_setup(test_config_errors, clear_env),
        cmocka_unit_test(test_file_line),
        cmocka_unit_test(test_file_append),
        cmocka_unit_test(test_retry_delay),
        cmocka_unit_test(test_email_build),
        cmocka_unit_test(test_smtp_send),
        cmocka_unit_test(test_smtp_failures),
        cmocka_unit_test(test_smtp_credentials_require_starttls),
    };
    notif_sinks_init();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
