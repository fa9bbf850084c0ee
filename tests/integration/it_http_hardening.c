/*
 * The HTTP server under attack from one client on the same network, and the
 * browser-borne attacks on the order API (docs/SECURITY.md). An order-service of
 * its own (its own database; its consumer pointed at a closed port) listens on
 * 127.0.0.1; "another client" connects from another loopback address
 * (127.0.0.2 and up), as a second machine would.
 *
 *   slow headers      520 connections trickling header bytes: a second client's
 *                     /healthz and POST /orders still succeed
 *   read deadline     a request trickled one byte at a time is cut at
 *                     HTTP_REQUEST_TIMEOUT, however steadily the bytes come
 *   SSE exhaustion    70 /events streams from one client: another can still open one
 *   SSE release       64 streams closed by their clients are free again at once
 *   readiness         16 clients polling /readyz do not open a connection each
 *   CSRF, rebinding   a cross-origin POST is 403, a foreign Host 421, a form 415
 *   TLS               with API_TLS_CERT/KEY the API speaks https only
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>

#include "proc.h"
#include "stack_env.h"
#include "testdb.h"

#define ORDER_SERVICE SAGA_BIN_DIR "/order-service"

#define ORDER_BODY                                                                                 \
    "{\"customer_id\":\"cust-alice\",\"currency\":\"EUR\",\"payment_token\":\"tok_visa\","         \
    "\"items\":[{\"sku\":\"sku-book\",\"quantity\":1}],\"shipping_address\":{\"recipient\":"       \
    "\"Ada Lovelace\",\"line1\":\"Main Street 1\",\"city\":\"Utrecht\",\"postal_code\":"           \
    "\"3511 AB\",\"country\":\"NL\"}}"

#define ATTACKERS 520 /* slow connections from one client (the cap was 512) */

struct service {
    char log[256];
    char base[80]; /* http(s)://127.0.0.1:PORT */
    int port;
    pid_t pid;
};

struct fixture {
    struct testdb db, tls_db;
    struct service svc, tls;
    char dir[256]; /* certificates */
};

static struct fixture *F;

/* --- the service --------------------------------------------------------------- */

static void start_service(struct service *s, const struct testdb *db, const char *name,
                          const char *const *extra)
{
    char env_db[600];
    const char *env[16] = {env_db,
                           "HTTP_LISTEN=127.0.0.1:0",
                           "KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:1",
                           "SCHEMA_REGISTRY_URL=",
                           "SAGA_TIMEOUT=1h",
                           "LOG_LEVEL=info",
                           "HTTP_REQUEST_TIMEOUT=2s",
                           "AUTH_MODE=off", /* it_auth tests who may call; this the server */
                           NULL};
    int n = 8;
    long long end = now_ms() + 30000;
    char line[4096];

    for (; extra && *extra; extra++)
        env[n++] = *extra;
    env[n] = NULL;
    snprintf(env_db, sizeof(env_db), "DATABASE_URL=%s", db->owner_url);
    snprintf(s->log, sizeof(s->log), "%s/it_http_hardening_%s_%ld.log", SAGA_TEST_LOG_DIR, name,
             (long)getpid());
    unlink(s->log);
    s->pid = proc_start(ORDER_SERVICE, env, s->log);
    assert_true(log_wait(s->log, "listening on http", 30000));
    while (!s->port && now_ms() < end) {
        FILE *in = fopen(s->log, "r");
        while (in && fgets(line, sizeof(line), in)) {
            const char *at = strstr(line, "listening on http");
            if (at && (at = strstr(at, "://127.0.0.1:")))
                s->port = atoi(at + 13);
        }
        if (in)
            fclose(in);
    }
    assert_true(s->port > 0);
    snprintf(s->base, sizeof(s->base), "http://127.0.0.1:%d", s->port);
}

static void stop_service(struct service *s)
{
    if (s->pid > 0)
        proc_stop(s->pid, SIGTERM, 10000);
    s->pid = 0;
}

/* --- clients ------------------------------------------------------------------- */

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    char **buf = arg;
    size_t old = *buf ? strlen(*buf) : 0, add = size * n;
    char *b = realloc(*buf, old + add + 1);
    if (!b)
        return 0;
    memcpy(b + old, p, add);
    b[old + add] = '\0';
    *buf = b;
    return add;
}

struct call {
    const char *method, *url, *body, *from; /* from: source address, NULL = 127.0.0.1 */
    const char *headers[4];
    const char *cainfo;
    long timeout_s;
};

/* The status code, or -1 when no HTTP answer came; the body in *out (may be NULL). */
static long http(const struct call *c, char **out)
{
    CURL *h = curl_easy_init();
    struct curl_slist *hl = NULL;
    char *buf = NULL;
    long status = -1;
    CURLcode rc;

    for (int i = 0; i < 4 && c->headers[i]; i++)
        hl = curl_slist_append(hl, c->headers[i]);
    curl_easy_setopt(h, CURLOPT_URL, c->url);
    curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, c->method);
    if (c->body)
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, c->body);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hl);
    curl_easy_setopt(h, CURLOPT_TIMEOUT, c->timeout_s ? c->timeout_s : 10L);
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(h, CURLOPT_FORBID_REUSE, 1L);
    if (c->from)
        curl_easy_setopt(h, CURLOPT_INTERFACE, c->from);
    if (c->cainfo)
        curl_easy_setopt(h, CURLOPT_CAINFO, c->cainfo);
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, &buf);
    rc = curl_easy_perform(h);
    if (rc == CURLE_OK)
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    fprintf(stderr, "%s %s%s%s -> %ld %s %.160s\n", c->method, c->url, c->from ? " from " : "",
            c->from ? c->from : "", status, rc == CURLE_OK ? "" : curl_easy_strerror(rc),
            buf ? buf : "");
    if (out)
        *out = buf;
    else
        free(buf);
    curl_slist_free_all(hl);
    curl_easy_cleanup(h);
    return status;
}

static char *url(const struct service *s, const char *path)
{
    static __thread char u[256];
    snprintf(u, sizeof(u), "%s%s", s->base, path);
    return u;
}

/* A TCP connection to the service from source address from; -1 on failure. */
static int tcp_connect(int port, const char *from)
{
    struct sockaddr_in src = {.sin_family = AF_INET}, dst = {.sin_family = AF_INET};
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    if (fd < 0)
        return -1;
    inet_pton(AF_INET, from, &src.sin_addr);
    inet_pton(AF_INET, "127.0.0.1", &dst.sin_addr);
    dst.sin_port = htons((uint16_t)port);
    if (bind(fd, (struct sockaddr *)&src, sizeof(src)) != 0 ||
        connect(fd, (struct sockaddr *)&dst, sizeof(dst)) != 0) {
        close(fd);
        return -1;
    }
    return fd;
}

static int send_all(int fd, const char *s)
{
    size_t n = strlen(s);
    while (n) {
        ssize_t w = send(fd, s, n, MSG_NOSIGNAL);
        if (w <= 0)
            return -1;
        s += w;
        n -= (size_t)w;
    }
    return 0;
}

/* 1 once the server closed fd (EOF or reset), 0 while it is open after wait_ms. */
static int closed_by_server(int fd, int wait_ms)
{
    struct pollfd p = {.fd = fd, .events = POLLIN};
    char buf[4096];
    long long end = now_ms() + wait_ms;

    do {
        long long left = end - now_ms();
        if (poll(&p, 1, left > 0 ? (int)left : 0) > 0) {
            ssize_t n = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
            if (n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK))
                return 1;
        }
    } while (now_ms() < end);
    return 0;
}

/* Opens an /events stream from from: its socket once answered 200, else -1 (*status). */
static int open_stream(int port, const char *from, long *status)
{
    char req[128], buf[512];
    size_t len = 0;
    long long end = now_ms() + 5000;
    int fd = tcp_connect(port, from);

    *status = -1;
    if (fd < 0)
        return -1;
    snprintf(req, sizeof(req), "GET /events HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n\r\n", port);
    if (send_all(fd, req) != 0)
        goto fail;
    while (len < sizeof(buf) - 1 && !memchr(buf, '\n', len) && now_ms() < end) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        ssize_t n;
        if (poll(&p, 1, 200) <= 0)
            continue;
        if ((n = recv(fd, buf + len, sizeof(buf) - 1 - len, 0)) <= 0)
            goto fail;
        len += (size_t)n;
    }
    buf[len] = '\0';
    if (strncmp(buf, "HTTP/1.1 ", 9) == 0)
        *status = atol(buf + 9);
    if (*status == 200)
        return fd;
fail:
    close(fd);
    return -1;
}

static char *place_order(void)
{
    char *body = NULL, *id;
    struct call c = {"POST",
                     url(&F->svc, "/orders"),
                     ORDER_BODY,
                     "127.0.0.2",
                     {"Content-Type: application/json"},
                     NULL,
                     0};
    json_t *j;

    assert_int_equal(http(&c, &body), 202);
    j = json_loads(body, 0, NULL);
    id = strdup(json_string_value(json_object_get(j, "order_id")));
    json_decref(j);
    free(body);
    return id;
}

static long long order_status_is(const char *id, const char *status)
{
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM orders WHERE order_id = '%s' AND status = '%s'", id, status);
    return testdb_scalar(&F->db, sql);
}

/* --- setup --------------------------------------------------------------------- */

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    char cmd[2048];

    F = f;
    testdb_create(&f->db, "it_http", "order");
    testdb_create(&f->tls_db, "it_https", "order");
    start_service(&f->svc, &f->db, "plain", NULL);

    /* A CA of its own and a certificate for 127.0.0.1 signed by it, as the stack makes. */
    snprintf(f->dir, sizeof(f->dir), "%s/it_http_hardening_tls_%ld", SAGA_TEST_LOG_DIR,
             (long)getpid());
    snprintf(cmd, sizeof(cmd),
             "set -e; rm -rf '%1$s'; mkdir -p '%1$s'; cd '%1$s';"
             " openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
             " -keyout ca.key -out ca.pem -days 2 -subj '/CN=it_http_hardening CA';"
             " openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:prime256v1 -out api.key;"
             " openssl req -new -key api.key -subj '/CN=localhost' -out api.csr;"
             " printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\n' > ext.cnf;"
             " openssl x509 -req -in api.csr -CA ca.pem -CAkey ca.key -CAcreateserial"
             " -days 2 -extfile ext.cnf -out api.crt",
             f->dir);
    strncat(cmd, " >/dev/null 2>&1", sizeof(cmd) - strlen(cmd) - 1);
    assert_int_equal(system(cmd), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[512];
    stop_service(&f->svc);
    stop_service(&f->tls);
    testdb_drop(&f->db);
    testdb_drop(&f->tls_db);
    snprintf(cmd, sizeof(cmd), "rm -rf '%s'", f->dir);
    if (system(cmd) != 0)
        fprintf(stderr, "could not remove %s\n", f->dir);
    free(f);
    return 0;
}

/* --- one client takes the API down ---------------------------------------------- */

static void test_slow_headers_from_one_client(void **state)
{
    struct fixture *f = *state;
    static int fds[ATTACKERS];
    int open_now = 0, served = 0;
    long health_status = 0, order_status = 0;
    char line[128];

    /* Each connection sends the start of a request, then one header byte a second:
     * never idle, never done. */
    snprintf(line, sizeof(line),
             "POST /orders HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nX-Slow: ", f->svc.port);
    for (int i = 0; i < ATTACKERS; i++) {
        fds[i] = tcp_connect(f->svc.port, "127.0.0.1");
        if (fds[i] >= 0 && send_all(fds[i], line) != 0) {
            close(fds[i]);
            fds[i] = -1;
        }
    }
    for (int round = 0; round < 3; round++) {
        char healthz[128];
        struct call health = {"GET", healthz, NULL, "127.0.0.2", {0}, NULL, 5};
        struct call order = {"POST",
                             url(&f->svc, "/orders"),
                             ORDER_BODY,
                             "127.0.0.2",
                             {"Content-Type: application/json"},
                             NULL,
                             5};
        snprintf(healthz, sizeof(healthz), "%s/healthz", f->svc.base);
        for (int i = 0; i < ATTACKERS; i++)
            if (fds[i] >= 0 && send_all(fds[i], "a") != 0) {
                close(fds[i]);
                fds[i] = -1;
            }
        /* The other client is served all along. */
        health_status = http(&health, NULL);
        order_status = http(&order, NULL);
        served += health_status == 200 && order_status == 202;
        sleep(1);
    }
    for (int i = 0; i < ATTACKERS; i++)
        if (fds[i] >= 0) {
            open_now++;
            close(fds[i]);
        }
    fprintf(stderr, "attacker connections still open after 3 s: %d of %d\n", open_now, ATTACKERS);
    assert_int_equal(health_status, 200);
    assert_int_equal(order_status, 202);
    assert_int_equal(served, 3);
}

static void test_request_read_deadline_does_not_reset(void **state)
{
    struct fixture *f = *state;
    long long start = now_ms(), closed_after = -1;
    char line[128];
    int fd = tcp_connect(f->svc.port, "127.0.0.1");

    assert_true(fd >= 0);
    snprintf(line, sizeof(line),
             "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nX-Slow: ", f->svc.port);
    assert_int_equal(send_all(fd, line), 0);
    /* A byte every 250 ms for up to 8 s; HTTP_REQUEST_TIMEOUT is 2 s here. */
    while (now_ms() - start < 8000) {
        if (send_all(fd, "a") != 0 || closed_by_server(fd, 250)) {
            closed_after = now_ms() - start;
            break;
        }
    }
    close(fd);
    fprintf(stderr, "the trickling request was cut after %lld ms\n", closed_after);
    assert_true(closed_after >= 0);
    assert_true(closed_after < 6000);
}

static void test_sse_from_one_client_leaves_room(void **state)
{
    struct fixture *f = *state;
    int fds[70], opened = 0, other;
    long status;

    for (int i = 0; i < 70; i++)
        if ((fds[i] = open_stream(f->svc.port, "127.0.0.1", &status)) >= 0)
            opened++;
    fprintf(stderr, "one client opened %d of 70 streams\n", opened);
    other = open_stream(f->svc.port, "127.0.0.2", &status);
    fprintf(stderr, "another client's stream: %ld\n", status);
    for (int i = 0; i < 70; i++)
        if (fds[i] >= 0)
            close(fds[i]);
    if (other >= 0)
        close(other);
    assert_int_equal(status, 200);
    assert_true(opened < 70);
}

static void test_closed_streams_are_released_at_once(void **state)
{
    struct fixture *f = *state;
    int fds[64];
    long status = -1;
    long long end;
    char from[16];

    /* 64 streams (the service's total) from 8 clients; earlier tests' streams may
     * still be going away. */
    end = now_ms() + 20000;
    for (int i = 0; i < 64; i++) {
        snprintf(from, sizeof(from), "127.0.0.%d", 10 + i / 8);
        while ((fds[i] = open_stream(f->svc.port, from, &status)) < 0 && now_ms() < end)
            usleep(200 * 1000);
        assert_true(fds[i] >= 0);
    }
    for (int i = 0; i < 64; i++)
        close(fds[i]);
    /* Closed by their clients: open again, with 3 s to spare. */
    end = now_ms() + 3000;
    for (int i = 0; i < 64; i++) {
        snprintf(from, sizeof(from), "127.0.0.%d", 10 + i / 8);
        while ((fds[i] = open_stream(f->svc.port, from, &status)) < 0 && now_ms() < end)
            usleep(100 * 1000);
        if (fds[i] < 0)
            fprintf(stderr, "stream %d could not be opened again: %ld\n", i, status);
        assert_true(fds[i] >= 0);
    }
    for (int i = 0; i < 64; i++)
        close(fds[i]);
}

struct prober {
    const struct service *svc;
    long long until;
    int probes;
};

static void *probe(void *arg)
{
    struct prober *p = arg;
    CURL *h = curl_easy_init();
    char u[128];
    FILE *devnull = fopen("/dev/null", "w");

    snprintf(u, sizeof(u), "%s/readyz", p->svc->base);
    curl_easy_setopt(h, CURLOPT_URL, u);
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(h, CURLOPT_TIMEOUT, 10L);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, devnull);
    while (now_ms() < p->until) {
        if (curl_easy_perform(h) == CURLE_OK)
            p->probes++;
    }
    fclose(devnull);
    curl_easy_cleanup(h);
    return NULL;
}

static void test_readyz_under_load_reuses_health(void **state)
{
    struct fixture *f = *state;
    struct prober p[16];
    pthread_t t[16];
    long long before, after;
    int probes = 0;
    const char *sessions =
        "SELECT sessions FROM pg_stat_database WHERE datname = current_database()";

    before = testdb_scalar(&f->db, sessions);
    for (int i = 0; i < 16; i++) {
        p[i] = (struct prober){&f->svc, now_ms() + 2000, 0};
        pthread_create(&t[i], NULL, probe, &p[i]);
    }
    for (int i = 0; i < 16; i++) {
        pthread_join(t[i], NULL);
        probes += p[i].probes;
    }
    sleep(1); /* sessions are counted as they end */
    after = testdb_scalar(&f->db, sessions);
    fprintf(stderr, "%d /readyz probes opened %lld database sessions\n", probes, after - before);
    assert_true(probes >= 32);
    /* A cached state: a handful of checks, not one connection per probe. */
    assert_true(after - before <= 10);
}

/* --- CSRF and DNS rebinding ----------------------------------------------------- */

static void test_cross_origin_post_is_refused(void **state)
{
    struct fixture *f = *state;
    char *id = place_order(), path[128], same[128];
    long long before = testdb_scalar(&f->db, "SELECT count(*) FROM orders");
    struct call place = {"POST",
                         url(&f->svc, "/orders"),
                         ORDER_BODY,
                         NULL,
                         {"Content-Type: application/json", "Origin: http://evil.example"},
                         NULL,
                         0};
    struct call cancel = {"POST", NULL, NULL, NULL, {"Origin: http://evil.example"}, NULL, 0};

    assert_int_equal(http(&place, NULL), 403);
    assert_int_equal(testdb_scalar(&f->db, "SELECT count(*) FROM orders"), before);
    snprintf(path, sizeof(path), "%s/orders/%s/cancel", f->svc.base, id);
    cancel.url = path;
    assert_int_equal(http(&cancel, NULL), 403);
    assert_int_equal(order_status_is(id, "PENDING"), 1);
    /* The page itself (same origin) may. */
    snprintf(same, sizeof(same), "Origin: http://127.0.0.1:%d", f->svc.port);
    cancel.headers[0] = same;
    assert_int_equal(http(&cancel, NULL), 200);
    assert_int_equal(order_status_is(id, "CANCELLED"), 1);
    free(id);
}

static void test_form_posts_are_refused(void **state)
{
    struct fixture *f = *state;
    char *id = place_order(), path[128];
    struct call form = {
        "POST", NULL, "x=1", NULL, {"Content-Type: application/x-www-form-urlencoded"}, NULL, 0};
    struct call text = {"POST", NULL, "x", NULL, {"Content-Type: text/plain"}, NULL, 0};

    (void)f;
    snprintf(path, sizeof(path), "%s/orders/%s/cancel", F->svc.base, id);
    form.url = text.url = path;
    assert_int_equal(http(&form, NULL), 415);
    assert_int_equal(http(&text, NULL), 415);
    assert_int_equal(order_status_is(id, "PENDING"), 1);
    free(id);
}

static void test_foreign_host_is_refused(void **state)
{
    struct fixture *f = *state;
    struct call rebound = {
        "GET", url(&f->svc, "/orders"), NULL, NULL, {"Host: rebind.evil.example"}, NULL, 0};
    struct call local = {"GET", url(&f->svc, "/orders"), NULL, NULL, {"Host: localhost"}, NULL, 0};

    /* A page on rebind.evil.example whose name now points at 127.0.0.1 reads nothing. */
    assert_int_equal(http(&rebound, NULL), 421);
    assert_int_equal(http(&local, NULL), 200);
}

/* --- TLS ------------------------------------------------------------------------- */

static void test_tls_when_configured(void **state)
{
    struct fixture *f = *state;
    char cert[320], key[320], ca[300], https[128];
    const char *extra[] = {cert, key, NULL};
    struct call plain = {"GET", NULL, NULL, NULL, {0}, NULL, 5};
    struct call secure = {"GET", https, NULL, NULL, {0}, ca, 5};

    snprintf(cert, sizeof(cert), "API_TLS_CERT=%s/api.crt", f->dir);
    snprintf(key, sizeof(key), "API_TLS_KEY=%s/api.key", f->dir);
    snprintf(ca, sizeof(ca), "%s/ca.pem", f->dir);
    start_service(&f->tls, &f->tls_db, "tls", extra);
    snprintf(https, sizeof(https), "https://127.0.0.1:%d/healthz", f->tls.port);
    plain.url = url(&f->tls, "/healthz");
    assert_int_equal(http(&secure, NULL), 200);
    assert_int_equal(http(&plain, NULL), -1);
    stop_service(&f->tls);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_slow_headers_from_one_client),
        cmocka_unit_test(test_request_read_deadline_does_not_reset),
        cmocka_unit_test(test_sse_from_one_client_leaves_room),
        cmocka_unit_test(test_closed_streams_are_released_at_once),
        cmocka_unit_test(test_readyz_under_load_reuses_health),
        cmocka_unit_test(test_cross_origin_post_is_refused),
        cmocka_unit_test(test_form_posts_are_refused),
        cmocka_unit_test(test_foreign_host_is_refused),
        cmocka_unit_test(test_tls_when_configured),
    };
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return cmocka_run_group_tests(tests, setup, teardown);
}
