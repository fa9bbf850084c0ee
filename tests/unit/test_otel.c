/*
 * The span exporter (saga/otel.h) without a collector: the sampler, the OTEL_* list
 * syntax, the OTLP/JSON encoding, the bounded queue (a full queue drops and counts, a
 * collector that cannot be reached counts the batch as lost), and one export to a
 * receiver in this test that first answers 503 (retried) and then 200.
 */
#include <arpa/inet.h>
#include <dirent.h>
#include <netinet/in.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "saga/otel.h"
#include "saga/trace.h"

static const char *const OTEL_VARS[] = {
    "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT",
    "OTEL_SERVICE_NAME",           "OTEL_TRACES_SAMPLER",
    "OTEL_TRACES_SAMPLER_ARG",     "OTEL_RESOURCE_ATTRIBUTES",
    "OTEL_EXPORTER_OTLP_HEADERS",  "OTEL_BSP_MAX_QUEUE_SIZE",
    "OTEL_BSP_SCHEDULE_DELAY",     "OTEL_BSP_MAX_EXPORT_BATCH_SIZE",
    "OTEL_BSP_EXPORT_TIMEOUT",     "OTEL_SDK_DISABLED",
    "OTEL_EXPORTER_OTLP_PROTOCOL", "OTEL_TRACES_EXPORTER",
    "OTEL_EXPORTER_OTLP_TIMEOUT"};

static int clean_env(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(OTEL_VARS) / sizeof(OTEL_VARS[0]); i++)
        unsetenv(OTEL_VARS[i]);
    return 0;
}

/* --- sampler ---------------------------------------------------------------------- */

static void test_sampler_names_and_ratio(void **state)
{
    struct saga_sampler s;
    char err[256];
    (void)state;
    assert_int_equal(saga_sampler_parse(NULL, NULL, &s, err, sizeof(err)), 0);
    assert_true(s.parent_based && s.root == SAGA_SAMPLER_ALWAYS_ON); /* the spec's default */
    assert_int_equal(saga_sampler_parse("always_off", NULL, &s, err, sizeof(err)), 0);
    assert_int_equal(saga_sampler_decide(&s, "0af7651916cd43dd8448eb211c80319c", 1, 1), 0);
    assert_int_equal(saga_sampler_parse("traceidratio", "0.5", &s, err, sizeof(err)), 0);
    /* the last 8 bytes of the trace id against ratio * 2^64 */
    assert_int_equal(saga_sampler_decide(&s, "ffffffffffffffff0000000000000001", 0, 0), 1);
    assert_int_equal(saga_sampler_decide(&s, "00000000000000007fffffffffffffff", 0, 0), 1);
    assert_int_equal(saga_sampler_decide(&s, "00000000000000008000000000000001", 0, 0), 0);
    /* not parent-based: the parent's flag does not matter */
    assert_int_equal(saga_sampler_decide(&s, "00000000000000008000000000000001", 1, 1), 0);
    assert_int_equal(saga_sampler_parse("parentbased_always_off", NULL, &s, err, sizeof(err)), 0);
    assert_int_equal(saga_sampler_decide(&s, "0af7651916cd43dd8448eb211c80319c", 0, 0), 0);
    assert_int_equal(saga_sampler_decide(&s, "0af7651916cd43dd8448eb211c80319c", 1, 1), 1);
    assert_int_equal(saga_sampler_decide(&s, "0af7651916cd43dd8448eb211c80319c", 1, 0), 0);
    assert_int_equal(saga_sampler_parse("parentbased_traceidratio", "0", &s, err, sizeof(err)), 0);
    assert_int_equal(saga_sampler_decide(&s, "00000000000000000000000000000001", 0, 0), 0);
    assert_int_equal(saga_sampler_decide(&s, "00000000000000000000000000000001", 1, 1), 1);

    assert_int_equal(saga_sampler_parse("sometimes", NULL, &s, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "sometimes"));
    assert_int_equal(saga_sampler_parse("traceidratio", "1.5", &s, err, sizeof(err)), -1);
    assert_int_equal(saga_sampler_parse("traceidratio", "half", &s, err, sizeof(err)), -1);
}

static void test_child_ids(void **state)
{
    const char *parent = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00";
    char a[56], b[56];
    (void)state;
    saga_otel_child(parent, a);
    saga_otel_child(parent, b);
    assert_true(saga_traceparent_valid(a) && saga_traceparent_valid(b));
    assert_memory_equal(a, parent, 36); /* same trace */
    assert_string_equal(a + 52, "-00"); /* same flags */
    assert_memory_not_equal(a + 36, b + 36, 16);
    assert_memory_not_equal(a + 36, parent + 36, 16);
}

/* --- k=v lists -------------------------------------------------------------------- */

struct pairs {
    char text[512];
};

static void collect(void *arg, const char *k, const char *v)
{
    struct pairs *p = arg;
    size_t l = strlen(p->text);
    snprintf(p->text + l, sizeof(p->text) - l, "[%s|%s]", k, v);
}

static void test_pairs_are_percent_decoded(void **state)
{
    struct pairs p = {""};
    char err[256];
    (void)state;
    assert_int_equal(saga_otel_parse_pairs(" deployment.environment=dev , team=saga%20ops,"
                                           "authorization=Basic%20YWxhZGRpbjpvcGVuc2VzYW1l",
                                           collect, &p, err, sizeof(err)),
                     0);
    assert_string_equal(p.text, "[deployment.environment|dev][team|saga ops]"
                                "[authorization|Basic YWxhZGRpbjpvcGVuc2VzYW1l]");
    assert_int_equal(saga_otel_parse_pairs("a=1,broken", collect, &p, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "broken"));
}

/* --- encoding --------------------------------------------------------------------- */

static json_t *attr(json_t *attrs, const char *key)
{
    size_t i;
    json_t *a;
    json_array_foreach(attrs, i, a)
    {
        if (strcmp(json_string_value(json_object_get(a, "key")), key) == 0)
            return json_object_get(a, "value");
    }
    return NULL;
}

static void test_encoding_is_otlp_json(void **state)
{
    /* Spans are filled as saga_span_begin would, without a running exporter. */
    struct saga_span s[2];
    const char *res[] = {"service.name", "payment-service", "deployment.environment", "ci"};
    json_t *body, *rs, *spans, *a;
    char *text;
    (void)state;
    memset(s, 0, sizeof(s));
    strcpy(s[0].trace_id, "0af7651916cd43dd8448eb211c80319c");
    strcpy(s[0].span_id, "b7ad6b7169203331");
    strcpy(s[0].name, "PaymentFailed process");
    s[0].kind = SAGA_SPAN_CONSUMER;
    s[0].start_ns = 1764800000123456789LL;
    s[0].end_ns = 1764800000223456789LL;
    s[0].recording = 1;
    saga_span_str(&s[0], "saga.order_id", "101a8ab9-0000-4000-8000-000000000001");
    saga_span_int(&s[0], "messaging.kafka.offset", 9007199254740993LL);
    saga_span_bool(&s[0], "saga.compensation", 1);
    saga_span_str(&s[0], "bad.utf8",
                  "a\xff"
                  "b");
    s[1] = s[0];
    s[1].nattrs = 0;
    strcpy(s[1].span_id, "00f067aa0ba902b7");
    strcpy(s[1].parent_id, "b7ad6b7169203331");
    saga_span_error(&s[1], "invalid: %s", "card number in the event");
    strcpy(s[1].name, "a \"quoted\"\tname\\");

    text = saga_otel_encode(res, 2, s, 2);
    assert_non_null(text);
    body = json_loads(text, 0, NULL);
    assert_non_null(body);
    rs = json_array_get(json_object_get(body, "resourceSpans"), 0);
    a = json_object_get(json_object_get(rs, "resource"), "attributes");
    assert_string_equal(json_string_value(json_object_get(attr(a, "service.name"), "stringValue")),
                        "payment-service");
    spans = json_object_get(json_array_get(json_object_get(rs, "scopeSpans"), 0), "spans");
    assert_int_equal(json_array_size(spans), 2);
    {
        json_t *p = json_array_get(spans, 0), *c = json_array_get(spans, 1);
        /* ids as hex (OTLP/JSON), times and int64 as strings, no parent for a root */
        assert_string_equal(json_string_value(json_object_get(p, "traceId")),
                            "0af7651916cd43dd8448eb211c80319c");
        assert_string_equal(json_string_value(json_object_get(p, "spanId")), "b7ad6b7169203331");
        assert_null(json_object_get(p, "parentSpanId"));
        assert_int_equal(json_integer_value(json_object_get(p, "kind")), 5);
        assert_string_equal(json_string_value(json_object_get(p, "startTimeUnixNano")),
                            "1764800000123456789");
        a = json_object_get(p, "attributes");
        assert_string_equal(
            json_string_value(json_object_get(attr(a, "messaging.kafka.offset"), "intValue")),
            "9007199254740993");
        assert_true(json_is_true(json_object_get(attr(a, "saga.compensation"), "boolValue")));
        assert_string_equal(json_string_value(json_object_get(attr(a, "bad.utf8"), "stringValue")),
                            "a?b");
        assert_null(json_object_get(p, "status"));
        assert_string_equal(json_string_value(json_object_get(c, "name")), "a \"quoted\"\tname\\");
        assert_string_equal(json_string_value(json_object_get(c, "parentSpanId")),
                            "b7ad6b7169203331");
        assert_int_equal(json_integer_value(json_object_get(json_object_get(c, "status"), "code")),
                         2);
        assert_string_equal(
            json_string_value(json_object_get(json_object_get(c, "status"), "message")),
            "invalid: card number in the event");
    }
    json_decref(body);
    free(text);
}

/* --- the queue and the exporter ------------------------------------------------------ */

static void end_spans(int n)
{
    for (int i = 0; i < n; i++) {
        struct saga_span s;
        char tp[56];
        saga_traceparent_new(tp);
        saga_span_begin(&s, "test", SAGA_SPAN_INTERNAL, tp, NULL);
        saga_span_str(&s, "saga.order_id", "o");
        saga_span_end(&s);
    }
}

static void test_off_without_endpoint(void **state)
{
    struct saga_otel_stats before, after;
    struct saga_span s;
    char tp[56], err[256];
    (void)state;
    saga_otel_stats(&before);
    assert_int_equal(saga_otel_init("test", err, sizeof(err)), 0);
    assert_int_equal(saga_otel_enabled(), 0);
    saga_traceparent_new(tp);
    assert_int_equal(saga_span_begin(&s, "x", SAGA_SPAN_INTERNAL, tp, NULL), 0);
    saga_span_end(&s);
    saga_otel_stats(&after);
    assert_memory_equal(&before, &after, sizeof(before));
    saga_otel_shutdown();
}

static void test_bad_configuration_is_refused(void **state)
{
    char err[256];
    (void)state;
    setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "127.0.0.1:4318", 1);
    assert_int_equal(saga_otel_init("test", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "http://"));
    setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:4318", 1);
    setenv("OTEL_EXPORTER_OTLP_PROTOCOL", "grpc", 1);
    assert_int_equal(saga_otel_init("test", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "http/json"));
    unsetenv("OTEL_EXPORTER_OTLP_PROTOCOL");
    setenv("OTEL_BSP_MAX_QUEUE_SIZE", "lots", 1);
    assert_int_equal(saga_otel_init("test", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "not a number of spans"));
    assert_int_equal(saga_otel_enabled(), 0);
    /* the queue is allocated at start (about 2 KB a span): a size no program's memory
     * holds is a configuration error, not gigabytes taken or an abort */
    setenv("OTEL_BSP_MAX_QUEUE_SIZE", "3600000", 1);
    assert_int_equal(saga_otel_init("test", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "OTEL_BSP_MAX_QUEUE_SIZE"));
    assert_non_null(strstr(err, "65536"));
    assert_int_equal(saga_otel_enabled(), 0);
    unsetenv("OTEL_BSP_MAX_QUEUE_SIZE");
}

/* A collector that cannot be reached: what does not fit the queue is dropped at once (the
 * caller never waits), what was queued is lost when the export fails; both counted. */
static void test_full_queue_drops_and_counts(void **state)
{
    struct saga_otel_stats before, after;
    char err[256];
    (void)state;
    setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1", 1); /* nobody listens */
    setenv("OTEL_BSP_MAX_QUEUE_SIZE", "4", 1);
    setenv("OTEL_BSP_SCHEDULE_DELAY", "600000", 1); /* the thread waits for the shutdown */
    setenv("OTEL_BSP_EXPORT_TIMEOUT", "3000", 1);
    saga_otel_stats(&before);
    assert_int_equal(saga_otel_init("test", err, sizeof(err)), 0);
    assert_int_equal(saga_otel_enabled(), 1);
    end_spans(10);
    saga_otel_stats(&after);
    assert_int_equal(after.dropped_queue_full - before.dropped_queue_full, 6);
    saga_otel_shutdown();
    saga_otel_stats(&after);
    assert_int_equal(after.dropped_export_failed - before.dropped_export_failed, 4);
    assert_int_equal(after.exported - before.exported, 0);
    assert_int_equal(saga_otel_enabled(), 0);
}

/* --- a receiver -------------------------------------------------------------------- */

struct receiver {
    int fd, port;
    int requests;
    char body[65536];
    char headers[4096];
    pthread_t thread;
};

static void *receive(void *arg)
{
    struct receiver *rv = arg;
    for (int k = 0; k < 2; k++) {
        char buf[70000];
        size_t len = 0;
        long want = -1;
        int c = accept(rv->fd, NULL, NULL);
        if (c < 0)
            return NULL;
        for (;;) {
            ssize_t n = read(c, buf + len, sizeof(buf) - 1 - len);
            char *end;
            if (n <= 0)
                break;
            len += (size_t)n;
            buf[len] = '\0';
            if ((end = strstr(buf, "\r\n\r\n"))) {
                char *cl = strcasestr(buf, "content-length:");
                if (want < 0 && cl)
                    want = strtol(cl + 15, NULL, 10) + (long)(end + 4 - buf);
                if (want >= 0 && (long)len >= want)
                    break;
            }
        }
        rv->requests++;
        if (k == 0) {
            const char *r = "HTTP/1.1 503 Service Unavailable\r\nContent-Length: 0\r\n"
                            "Connection: close\r\n\r\n";
            (void)!write(c, r, strlen(r));
        } else {
            const char *r = "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                            "Content-Length: 2\r\nConnection: close\r\n\r\n{}";
            char *end = strstr(buf, "\r\n\r\n");
            snprintf(rv->headers, sizeof(rv->headers), "%.*s", (int)(end - buf), buf);
            snprintf(rv->body, sizeof(rv->body), "%s", end + 4);
            (void)!write(c, r, strlen(r));
        }
        close(c);
    }
    return NULL;
}

static void test_exports_after_a_retry(void **state)
{
    struct receiver rv = {0};
    struct sockaddr_in a = {0};
    socklen_t alen = sizeof(a);
    struct saga_otel_stats before, after;
    char url[64], err[256];
    json_t *body, *spans;
    (void)state;
    rv.fd = socket(AF_INET, SOCK_STREAM, 0);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(rv.fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(rv.fd, 4), 0);
    getsockname(rv.fd, (struct sockaddr *)&a, &alen);
    assert_int_equal(pthread_create(&rv.thread, NULL, receive, &rv), 0);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d/custom/path", ntohs(a.sin_port));

    setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", url, 1); /* used as is */
    setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1", 1);
    setenv("OTEL_SERVICE_NAME", "renamed-service", 1);
    setenv("OTEL_RESOURCE_ATTRIBUTES", "service.name=overridden,deployment.environment=test", 1);
    setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=secret%3D1", 1);
    setenv("OTEL_BSP_SCHEDULE_DELAY", "50", 1);
    saga_otel_stats(&before);
    assert_int_equal(saga_otel_init("test", err, sizeof(err)), 0);
    end_spans(3);
    saga_otel_shutdown(); /* waits for the export (503, then 200) */
    pthread_join(rv.thread, NULL);
    close(rv.fd);
    saga_otel_stats(&after);
    assert_int_equal(rv.requests, 2);
    assert_int_equal(after.exported - before.exported, 3);
    assert_int_equal(after.dropped_export_failed - before.dropped_export_failed, 0);
    assert_non_null(strstr(rv.headers, "POST /custom/path "));
    assert_non_null(strcasestr(rv.headers, "x-api-key: secret=1"));
    assert_non_null(strcasestr(rv.headers, "content-type: application/json"));
    body = json_loads(rv.body, 0, NULL);
    assert_non_null(body);
    {
        json_t *rs = json_array_get(json_object_get(body, "resourceSpans"), 0);
        json_t *ra = json_object_get(json_object_get(rs, "resource"), "attributes");
        /* OTEL_SERVICE_NAME wins over service.name in OTEL_RESOURCE_ATTRIBUTES */
        assert_string_equal(
            json_string_value(json_object_get(attr(ra, "service.name"), "stringValue")),
            "renamed-service");
        assert_string_equal(
            json_string_value(json_object_get(attr(ra, "deployment.environment"), "stringValue")),
            "test");
        spans = json_object_get(json_array_get(json_object_get(rs, "scopeSpans"), 0), "spans");
        assert_int_equal(json_array_size(spans), 3);
    }
    json_decref(body);
}

/* The sampled flag is bit 0 of the trace flags, two hex digits: "0b" (sampled, with other
 * bits) is sampled, "0a" is not. A parent-based sampler follows it. */
static void test_parent_sampled_flag_is_read_as_hex(void **state)
{
    static const struct {
        const char *flags;
        int sampled;
    } cases[] = {{"00", 0}, {"01", 1}, {"0a", 0}, {"0b", 1}, {"0c", 0},
                 {"0d", 1}, {"0e", 0}, {"0f", 1}, {"ff", 1}, {"fe", 0}};
    char err[256];
    int wrong = 0;
    (void)state;
    setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1", 1); /* nobody listens */
    setenv("OTEL_BSP_SCHEDULE_DELAY", "600000", 1);
    assert_int_equal(saga_otel_init("test", err, sizeof(err)), 0); /* parentbased_always_on */
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct saga_span s;
        char parent[56], self[56];
        snprintf(parent, sizeof(parent), "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-%s",
                 cases[i].flags);
        saga_otel_child(parent, self);
        if (saga_span_begin(&s, "x", SAGA_SPAN_INTERNAL, self, parent) != cases[i].sampled) {
            print_error("parent flags %s: recording %d, want %d\n", cases[i].flags, s.recording,
                        cases[i].sampled);
            wrong++;
        }
        /* not ended: nothing is queued */
    }
    saga_otel_shutdown();
    assert_int_equal(wrong, 0);
}

/* A header value is sent as one header line: percent-decoded CR or LF (or another control
 * character) would end the line and smuggle headers (or a request) of its own. */
static void test_header_with_line_break_is_refused(void **state)
{
    static const char *const bad[] = {"x-tenant=a%0D%0AX-Injected: 1", "x-tenant=a%0AHost: evil",
                                      "x%0D%0AInjected=1", "x-tenant=a%01b", "x%3Ay=1"};
    char err[256];
    (void)state;
    setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1", 1);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        setenv("OTEL_EXPORTER_OTLP_HEADERS", bad[i], 1);
        err[0] = '\0';
        if (saga_otel_init("test", err, sizeof(err)) != -1) {
            saga_otel_shutdown();
            fail_msg("OTEL_EXPORTER_OTLP_HEADERS=%s was accepted", bad[i]);
        }
        assert_non_null(strstr(err, "OTEL_EXPORTER_OTLP_HEADERS"));
        assert_int_equal(saga_otel_enabled(), 0);
    }
    setenv("OTEL_EXPORTER_OTLP_HEADERS", "x-api-key=secret%3D1%20%09x", 1); /* space, tab: fine */
    assert_int_equal(saga_otel_init("test", err, sizeof(err)), 0);
    saga_otel_shutdown();
}

static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* OTEL_BSP_SCHEDULE_DELAY=0 (export at once): an idle exporter still sleeps until a span
 * comes, and never spins on a core the handlers need. */
static void test_idle_exporter_with_no_delay_does_not_spin(void **state)
{
    struct timespec second = {1, 0};
    double cpu;
    char err[256];
    (void)state;
    setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1", 1);
    setenv("OTEL_BSP_SCHEDULE_DELAY", "0", 1);
    assert_int_equal(saga_otel_init("test", err, sizeof(err)), 0);
    cpu = cpu_seconds();
    nanosleep(&second, NULL);
    cpu = cpu_seconds() - cpu;
    saga_otel_shutdown();
    if (cpu > 0.05)
        fail_msg("an idle exporter used %.2f s of CPU in 1 s", cpu);
}

/* The tids of this process's threads, as /proc lists them; their number. */
static int thread_ids(long *ids, int max)
{
    int n = 0;
    DIR *d = opendir("/proc/self/task");
    struct dirent *e;
    assert_non_null(d);
    while ((e = readdir(d)) && n < max)
        if (e->d_name[0] != '.')
            ids[n++] = strtol(e->d_name, NULL, 10);
    closedir(d);
    return n;
}

/* SigBlk of one thread. */
static unsigned long long blocked_signals(long tid)
{
    char path[64], line[256];
    unsigned long long mask = 0;
    FILE *f;
    snprintf(path, sizeof(path), "/proc/self/task/%ld/status", tid);
    assert_non_null(f = fopen(path, "r"));
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, "SigBlk:", 7) == 0)
            mask = strtoull(line + 7, NULL, 16);
    fclose(f);
    return mask;
}

/* Starts the exporter and reads the signal mask of each thread saga_otel_init started
 * (tids[i], masks[i]); stops it again. How many there were. */
static int exporter_thread_masks(long *tids, unsigned long long *masks, int max)
{
    long before[64], after[64];
    int nb, na, n = 0;
    char err[256];
    nb = thread_ids(before, 64);
    setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://127.0.0.1:1", 1);
    assert_int_equal(saga_otel_init("test", err, sizeof(err)), 0);
    /* glibc starts a thread with every signal blocked and sets its own mask only once it
     * runs: look once it waits for spans */
    nanosleep(&(struct timespec){0, 300 * 1000 * 1000}, NULL);
    na = thread_ids(after, 64);
    for (int i = 0; i < na && n < max; i++) {
        int old = 0;
        for (int j = 0; j < nb; j++)
            old |= after[i] == before[j];
        if (!old) {
            tids[n] = after[i];
            masks[n++] = blocked_signals(after[i]);
        }
    }
    saga_otel_shutdown();
    return n;
}

/* The exporter thread blocks the stop signals: a SIGTERM is handled by a thread that
 * acts on it at once, never by the exporter (which would only set the flag and leave the
 * program waiting for its next wake-up to notice). */
static void test_exporter_thread_blocks_stop_signals(void **state)
{
    long tids[8];
    unsigned long long masks[8];
    int n = exporter_thread_masks(tids, masks, 8);
    (void)state;
    for (int i = 0; i < n; i++)
        if (!(masks[i] & (1ULL << (SIGTERM - 1))) || !(masks[i] & (1ULL << (SIGINT - 1))))
            fail_msg("thread %ld started by saga_otel_init does not block SIGTERM and SIGINT "
                     "(SigBlk %llx)",
                     tids[i], masks[i]);
    assert_true(n >= 1);
}

/* The exporter thread leaves the signals of a fault in itself (SIGSEGV, SIGBUS, SIGFPE,
 * SIGILL) unblocked: POSIX leaves a fault with them blocked undefined, and Linux then kills
 * the process without running the handler the sanitizers install, so a crash in the
 * exporter would come without its report. */
static void test_exporter_thread_leaves_fault_signals_unblocked(void **state)
{
    static const int faults[] = {SIGSEGV, SIGBUS, SIGFPE, SIGILL};
    long tids[8];
    unsigned long long masks[8];
    int n = exporter_thread_masks(tids, masks, 8);
    (void)state;
    for (int i = 0; i < n; i++)
        for (size_t k = 0; k < sizeof(faults) / sizeof(faults[0]); k++)
            if (masks[i] & (1ULL << (faults[k] - 1)))
                fail_msg("thread %ld started by saga_otel_init blocks %s (SigBlk %llx)", tids[i],
                         strsignal(faults[k]), masks[i]);
    assert_true(n >= 1);
}

/* A collector that takes the connection and never answers. */
struct hanging {
    int fd, accepted;
    int conns[16];
    pthread_t thread;
};

static void *hang(void *arg)
{
    struct hanging *h = arg;
    for (;;) {
        int c = accept(h->fd, NULL, NULL);
        if (c < 0)
            return NULL;
        if (h->accepted < 16)
            h->conns[h->accepted] = c;
        __atomic_add_fetch(&h->accepted, 1, __ATOMIC_SEQ_CST);
    }
}

static double mono_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* A stop while a request hangs takes at most that request's timeout plus
 * OTEL_BSP_EXPORT_TIMEOUT (docs/CONFIGURATION.md): no request after it outlives the
 * deadline. (Services and the relay stop their work first; this bounds the exit.) */
static void test_stop_with_a_hanging_collector_is_bounded(void **state)
{
    struct hanging h = {0};
    struct sockaddr_in a = {0};
    socklen_t alen = sizeof(a);
    char url[64], err[256];
    double t0, took;
    (void)state;
    h.fd = socket(AF_INET, SOCK_STREAM, 0);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(h.fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(h.fd, 16), 0);
    getsockname(h.fd, (struct sockaddr *)&a, &alen);
    assert_int_equal(pthread_create(&h.thread, NULL, hang, &h), 0);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", ntohs(a.sin_port));
    setenv("OTEL_EXPORTER_OTLP_ENDPOINT", url, 1);
    setenv("OTEL_EXPORTER_OTLP_TIMEOUT", "3000", 1);
    setenv("OTEL_BSP_EXPORT_TIMEOUT", "300", 1);
    setenv("OTEL_BSP_SCHEDULE_DELAY", "10", 1);
    assert_int_equal(saga_otel_init("test", err, sizeof(err)), 0);
    end_spans(3);
    for (int i = 0; i < 500 && !__atomic_load_n(&h.accepted, __ATOMIC_SEQ_CST); i++)
        usleep(10 * 1000); /* the first request hangs */
    assert_true(h.accepted > 0);
    t0 = mono_s();
    saga_otel_shutdown();
    took = mono_s() - t0;
    shutdown(h.fd, SHUT_RDWR);
    pthread_join(h.thread, NULL);
    close(h.fd);
    for (int i = 0; i < h.accepted && i < 16; i++)
        close(h.conns[i]);
    print_message("stop with a hanging collector: %.1f s\n", took);
    if (took > 4.5) /* 3 s + 0.3 s, and time to spare */
        fail_msg("the stop took %.1f s, more than a request's timeout plus the export timeout",
                 took);
}

/* A collector that answers 200 to every request, until its socket is shut. */
struct accepting {
    int fd, requests;
    pthread_t thread;
};

static void *accept_all(void *arg)
{
    struct accepting *rv = arg;
    for (;;) {
        char buf[65536];
        size_t len = 0;
        long want = -1;
        int c = accept(rv->fd, NULL, NULL);
        const char *r = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\n{}";
        if (c < 0)
            return NULL;
        for (;;) {
            ssize_t n = read(c, buf + len, sizeof(buf) - 1 - len);
            char *end;
            if (n <= 0)
                break;
            len += (size_t)n;
            buf[len] = '\0';
            if ((end = strstr(buf, "\r\n\r\n"))) {
                char *cl = strcasestr(buf, "content-length:");
                if (want < 0 && cl)
                    want = strtol(cl + 15, NULL, 10) + (long)(end + 4 - buf);
                if (want >= 0 && (long)len >= want)
                    break;
            }
            if (len == sizeof(buf) - 1)
                len = 0; /* the body is not looked at */
        }
        __atomic_add_fetch(&rv->requests, 1, __ATOMIC_SEQ_CST);
        (void)!write(c, r, strlen(r));
        close(c);
    }
}

/* OTEL_BSP_MAX_EXPORT_BATCH_SIZE larger than OTEL_BSP_MAX_QUEUE_SIZE is the queue's size
 * (as the specification has it): a full queue is a full batch and goes out at once, rather
 * than dropping spans until the schedule delay. */
static void test_batch_larger_than_the_queue_is_the_queue(void **state)
{
    struct accepting rv = {0};
    struct sockaddr_in a = {0};
    socklen_t alen = sizeof(a);
    struct saga_otel_stats before, after;
    char url[64], err[256];
    (void)state;
    rv.fd = socket(AF_INET, SOCK_STREAM, 0);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(rv.fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(rv.fd, 16), 0);
    getsockname(rv.fd, (struct sockaddr *)&a, &alen);
    assert_int_equal(pthread_create(&rv.thread, NULL, accept_all, &rv), 0);
    snprintf(url, sizeof(url), "http://127.0.0.1:%d", ntohs(a.sin_port));
    setenv("OTEL_EXPORTER_OTLP_ENDPOINT", url, 1);
    setenv("OTEL_BSP_MAX_QUEUE_SIZE", "8", 1);
    setenv("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", "100", 1);
    setenv("OTEL_BSP_SCHEDULE_DELAY", "600000", 1);
    saga_otel_stats(&before);
    assert_int_equal(saga_otel_init("test", err, sizeof(err)), 0);
    end_spans(8); /* the queue is full: a batch */
    for (int i = 0; i < 500 && !__atomic_load_n(&rv.requests, __ATOMIC_SEQ_CST); i++)
        usleep(10 * 1000);
    end_spans(8);
    saga_otel_stats(&after);
    saga_otel_shutdown();
    shutdown(rv.fd, SHUT_RDWR);
    pthread_join(rv.thread, NULL);
    close(rv.fd);
    assert_int_equal(after.dropped_queue_full - before.dropped_queue_full, 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sampler_names_and_ratio),
        cmocka_unit_test(test_child_ids),
        cmocka_unit_test(test_pairs_are_percent_decoded),
        cmocka_unit_test(test_encoding_is_otlp_json),
        cmocka_unit_test_setup(test_off_without_endpoint, clean_env),
        cmocka_unit_test_setup(test_bad_configuration_is_refused, clean_env),
        cmocka_unit_test_setup(test_full_queue_drops_and_counts, clean_env),
        cmocka_unit_test_setup(test_exports_after_a_retry, clean_env),
        cmocka_unit_test_setup(test_parent_sampled_flag_is_read_as_hex, clean_env),
        cmocka_unit_test_setup(test_header_with_line_break_is_refused, clean_env),
        cmocka_unit_test_setup(test_idle_exporter_with_no_delay_does_not_spin, clean_env),
        cmocka_unit_test_setup(test_exporter_thread_blocks_stop_signals, clean_env),
        cmocka_unit_test_setup(test_exporter_thread_leaves_fault_signals_unblocked, clean_env),
        cmocka_unit_test_setup(test_stop_with_a_hanging_collector_is_bounded, clean_env),
        cmocka_unit_test_setup(test_batch_larger_than_the_queue_is_the_queue, clean_env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
