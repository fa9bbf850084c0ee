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
 *   slow handler      a request whose handler takes longer than HTTP_REQUEST_TIMEOUT
 *                     (POST /orders waiting on a locked table) gets its whole answer
 *   proxies           X-Forwarded-For counts only from HTTP_TRUSTED_PROXIES: each
 *                     client behind the proxy has its own caps, IPv6 by /64
 *   principal         one customer's streams are capped however many addresses
 *   internal listener HTTP_INTERNAL_ADDR answers /healthz with the public port full
 *   descriptors       a flood with RLIMIT_NOFILE at 256 leaves the process answering
 *   token expiry      an /events stream ends when its token expires
 *   feed pause        with no /events stream open the timeline is not polled; a page
 *                     that comes back gets what came meanwhile, or a resync after many
 *   refusals          saga_http_refused_total{reason} counts each refusal above
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
#include <signal.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <jansson.h>
#include <libpq-fe.h>

#include "proc.h"
#include "saga/auth.h"
#include "stack_env.h"
#include "testdb.h"

#define ORDER_SERVICE SAGA_BIN_DIR "/order-service"

#define ORDER_BODY                                                                                 \
    "{\"customer_id\":\"cust-alice\",\"currency\":\"EUR\",\"payment_token\":\"tok_visa\","         \
    "\"items\":[{\"sku\":\"sku-book\",\"quantity\":1}],\"shipping_address\":{\"recipient\":"       \
    "\"Ada Lovelace\",\"line1\":\"Main Street 1\",\"city\":\"Utrecht\",\"postal_code\":"           \
    "\"3511 AB\",\"country\":\"NL\"}}"

#define ATTACKERS 520 /* slow connections from one client (the cap was 512) */

#define SECRET "it-http-hardening-secret-0123456789abcdef"

struct service {
    char log[256];
    char base[80]; /* http(s)://127.0.0.1:PORT */
    int port;
    int internal_port; /* HTTP_INTERNAL_ADDR's, 0 when none */
    pid_t pid;
};

struct fixture {
    struct testdb db, tls_db, auth_db, internal_db, fds_db;
    struct service svc, tls, auth, internal, fds;
    char dir[256]; /* certificates, the token secret */
    char secret_file[300];
};

static struct fixture *F;
/* The program start_service runs: order-service, or a script that execs it. */
static const char *program = ORDER_SERVICE;

/* A script in the fixture's directory that runs order-service after shell_lines. */
static const char *wrapper(const char *name, const char *shell_lines)
{
    static char path[320];
    FILE *out;
    snprintf(path, sizeof(path), "%s/%s.sh", F->dir, name);
    out = fopen(path, "w");
    assert_non_null(out);
    fprintf(out, "#!/bin/sh\nset -e\n%s\nexec '%s'\n", shell_lines, ORDER_SERVICE);
    fclose(out);
    assert_int_equal(chmod(path, 0755), 0);
    return path;
}

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

    /* A fixture's service may be started again: not the last run's ports. */
    s->port = s->internal_port = 0;
    for (; extra && *extra; extra++)
        env[n++] = *extra;
    env[n] = NULL;
    snprintf(env_db, sizeof(env_db), "DATABASE_URL=%s", db->owner_url);
    snprintf(s->log, sizeof(s->log), "%s/it_http_hardening_%s_%ld.log", SAGA_TEST_LOG_DIR, name,
             (long)getpid());
    unlink(s->log);
    s->pid = proc_start(program, env, s->log);
    assert_true(log_wait(s->log, "listening on http", 30000));
    while (!s->port && now_ms() < end) {
        FILE *in = fopen(s->log, "r");
        while (in && fgets(line, sizeof(line), in)) {
            const char *at = strstr(line, "listening on http");
            if (at && (at = strstr(at, "://127.0.0.1:")))
                s->port = atoi(at + 13);
            at = strstr(line, "internal listener on http://127.0.0.1:");
            if (at)
                s->internal_port = atoi(at + strlen("internal listener on http://127.0.0.1:"));
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

/*
 * Opens a stream (target: "/events?access_token=...") from from with extra header
 * lines ("X-Forwarded-For: ...\r\n" or ""): its socket once answered 200, else -1
 * (*status).
 */
static int open_stream_with(int port, const char *from, const char *target, const char *extra,
                            long *status)
{
    char req[2048], buf[512];
    size_t len = 0;
    long long end = now_ms() + 5000;
    int fd = tcp_connect(port, from);

    *status = -1;
    if (fd < 0)
        return -1;
    snprintf(req, sizeof(req), "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\n%s\r\n", target, port,
             extra);
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

static int open_stream(int port, const char *from, long *status)
{
    return open_stream_with(port, from, "/events", "", status);
}

/* An HS256 token of the fixture's secret; malloc'd. */
static char *mint(const char *sub, const char *role, long ttl_s)
{
    char err[256];
    char *t = saga_auth_mint_hs256((const unsigned char *)SECRET, strlen(SECRET), sub, role, ttl_s,
                                   err, sizeof(err));
    if (!t)
        fail_msg("mint: %s", err);
    return t;
}

/* A stream of sub's (a customer) from from, with extra header lines. */
static int open_customer_stream(const struct service *s, const char *from, const char *sub,
                                const char *extra, long *status)
{
    char *tok = mint(sub, "customer", 600), target[1024];
    int fd;
    snprintf(target, sizeof(target), "/events?access_token=%s", tok ? tok : "");
    fd = open_stream_with(s->port, from, target, extra, status);
    free(tok);
    return fd;
}

/* saga_http_refused_total{reason=...} of base's /metrics, -1 when missing. */
static long long refused(const char *base, const char *reason)
{
    char u[160], label[64], *body = NULL, *line;
    struct call c = {"GET", u, NULL, "127.0.0.2", {0}, NULL, 10};
    long long v = -1;

    snprintf(u, sizeof(u), "%s/metrics", base);
    snprintf(label, sizeof(label), "reason=\"%s\"", reason);
    if (http(&c, &body) != 200 || !body) {
        free(body);
        return -1;
    }
    for (line = strstr(body, "\nsaga_http_refused_total{"); line;
         line = strstr(line + 1, "\nsaga_http_refused_total{")) {
        char *eol = strchr(line + 1, '\n'), *brace = strchr(line, '}');
        if (brace && (!eol || brace < eol) &&
            memmem(line, (size_t)(brace - line), label, strlen(label)))
            v = atoll(brace + 1);
    }
    free(body);
    fprintf(stderr, "saga_http_refused_total{%s} = %lld\n", label, v);
    return v;
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
    char cmd[2048], secret_env[340];
    const char *auth_env[] = {"AUTH_MODE=jwt", secret_env, "HTTP_TRUSTED_PROXIES=127.0.0.1", NULL};
    FILE *out;

    F = f;
    testdb_create(&f->db, "it_http", "order");
    testdb_create(&f->tls_db, "it_https", "order");
    testdb_create(&f->auth_db, "it_http_auth", "order");
    testdb_create(&f->internal_db, "it_http_internal", "order");
    testdb_create(&f->fds_db, "it_http_fds", "order");
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
    /* A service with tokens behind a proxy at 127.0.0.1 (127.0.0.2 and up are not). */
    snprintf(f->secret_file, sizeof(f->secret_file), "%s/secret", f->dir);
    out = fopen(f->secret_file, "w");
    assert_non_null(out);
    fputs(SECRET "\n", out);
    fclose(out);
    snprintf(secret_env, sizeof(secret_env), "AUTH_SECRET_FILE=%s", f->secret_file);
    start_service(&f->auth, &f->auth_db, "auth", auth_env);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    char cmd[512];
    stop_service(&f->svc);
    stop_service(&f->tls);
    stop_service(&f->auth);
    stop_service(&f->internal);
    stop_service(&f->fds);
    testdb_drop(&f->db);
    testdb_drop(&f->tls_db);
    testdb_drop(&f->auth_db);
    testdb_drop(&f->internal_db);
    testdb_drop(&f->fds_db);
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
    /* The connections past the cap are counted. */
    assert_true(refused(f->svc.base, "per_client_cap") >= ATTACKERS - 32);
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
    assert_true(refused(f->svc.base, "deadline") >= 1);
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
    assert_true(refused(f->svc.base, "stream_cap") >= 70 - opened);
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
    assert_true(refused(f->svc.base, "origin") >= 2);
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
    assert_true(refused(F->svc.base, "form") >= 2);
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
    assert_true(refused(f->svc.base, "host") >= 1);
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

/* --- the read deadline is for reading ---------------------------------------------- */

struct slow_call {
    struct call c;
    long status;
};

static void *call_thread(void *arg)
{
    struct slow_call *sc = arg;
    sc->status = http(&sc->c, NULL);
    return NULL;
}

static void test_slow_handler_gets_its_whole_answer(void **state)
{
    struct fixture *f = *state;
    struct slow_call sc = {{"POST",
                            url(&f->svc, "/orders"),
                            ORDER_BODY,
                            "127.0.0.2",
                            {"Content-Type: application/json"},
                            NULL,
                            30},
                           0};
    long long before = testdb_scalar(&f->db, "SELECT count(*) FROM orders");
    PGconn *lock = PQconnectdb(f->db.owner_url);
    PGresult *r;
    pthread_t t;

    assert_int_equal(PQstatus(lock), CONNECTION_OK);
    /* The request arrives at once; its handler waits for the table (a slow database). */
    r = PQexec(lock, "BEGIN; LOCK TABLE orders IN ACCESS EXCLUSIVE MODE");
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    assert_int_equal(pthread_create(&t, NULL, call_thread, &sc), 0);
    sleep(4); /* twice HTTP_REQUEST_TIMEOUT */
    PQclear(PQexec(lock, "COMMIT"));
    PQfinish(lock);
    pthread_join(t, NULL);
    fprintf(stderr, "POST /orders that waited 4 s for the database: %ld\n", sc.status);
    /* The client hears what happened to its order. */
    assert_int_equal(sc.status, 202);
    assert_int_equal(testdb_scalar(&f->db, "SELECT count(*) FROM orders"), before + 1);
}

/* --- who the client is -------------------------------------------------------------- */

static void close_all(int *fds, int n)
{
    for (int i = 0; i < n; i++)
        if (fds[i] >= 0)
            close(fds[i]);
}

static void test_forwarded_for_from_untrusted_peer_is_ignored(void **state)
{
    struct fixture *f = *state;
    int fds[9];
    long status = -1;
    long long end = now_ms() + 20000;
    char xff[64];

    /* No HTTP_TRUSTED_PROXIES: a header naming 8 other clients changes nothing. */
    for (int i = 0; i < 8; i++) {
        snprintf(xff, sizeof(xff), "X-Forwarded-For: 10.9.0.%d\r\n", i + 1);
        while ((fds[i] = open_stream_with(f->svc.port, "127.0.0.3", "/events", xff, &status)) < 0 &&
               now_ms() < end)
            usleep(200 * 1000);
        assert_true(fds[i] >= 0);
    }
    fds[8] = open_stream_with(f->svc.port, "127.0.0.3", "/events", "X-Forwarded-For: 10.9.0.99\r\n",
                              &status);
    close_all(fds, 9);
    assert_int_equal(status, 429);
}

static void test_trusted_proxy_gives_each_client_its_own_cap(void **state)
{
    struct fixture *f = *state;
    int fds[20], n = 0, held[40];
    long status = -1;
    char sub[32], xff[96];
    struct call health = {"GET", NULL, NULL, "127.0.0.1", {0}, NULL, 5};

    for (int i = 0; i < 20; i++)
        fds[i] = -1;
    /* 127.0.0.1 is the proxy (HTTP_TRUSTED_PROXIES): 8 streams of 198.51.100.7 ... */
    for (int i = 0; i < 8; i++, n++) {
        snprintf(sub, sizeof(sub), "cust-proxied-%d", n);
        fds[n] = open_customer_stream(&f->auth, "127.0.0.1", sub,
                                      "X-Forwarded-For: 198.51.100.7\r\n", &status);
        assert_int_equal(status, 200);
    }
    /* ... its ninth is refused, also when it claims to be someone else ... */
    snprintf(sub, sizeof(sub), "cust-proxied-%d", n);
    fds[n++] = open_customer_stream(&f->auth, "127.0.0.1", sub, "X-Forwarded-For: 198.51.100.7\r\n",
                                    &status);
    assert_int_equal(status, 429);
    snprintf(sub, sizeof(sub), "cust-proxied-%d", n);
    fds[n++] = open_customer_stream(&f->auth, "127.0.0.1", sub,
                                    "X-Forwarded-For: 198.51.100.8, 198.51.100.7\r\n", &status);
    assert_int_equal(status, 429);
    /* ... and another client behind the same proxy still gets one. */
    snprintf(sub, sizeof(sub), "cust-proxied-%d", n);
    fds[n++] = open_customer_stream(&f->auth, "127.0.0.1", sub, "X-Forwarded-For: 198.51.100.8\r\n",
                                    &status);
    assert_int_equal(status, 200);
    close_all(fds, n);

    /* IPv6 clients count by /64: eight addresses of one /64 are one client. */
    n = 0;
    for (int i = 0; i < 8; i++, n++) {
        snprintf(sub, sizeof(sub), "cust-six-%d", n);
        snprintf(xff, sizeof(xff), "X-Forwarded-For: 2001:db8:1:2::%x\r\n", i + 1);
        fds[n] = open_customer_stream(&f->auth, "127.0.0.1", sub, xff, &status);
        assert_int_equal(status, 200);
    }
    snprintf(sub, sizeof(sub), "cust-six-%d", n);
    fds[n++] = open_customer_stream(&f->auth, "127.0.0.1", sub,
                                    "X-Forwarded-For: 2001:db8:1:2:ffff::99\r\n", &status);
    assert_int_equal(status, 429);
    snprintf(sub, sizeof(sub), "cust-six-%d", n);
    fds[n++] = open_customer_stream(&f->auth, "127.0.0.1", sub,
                                    "X-Forwarded-For: 2001:db8:1:3::1\r\n", &status);
    assert_int_equal(status, 200);
    close_all(fds, n);

    /* The proxy's own connections are not held to one client's cap (32). */
    for (int i = 0; i < 40; i++)
        held[i] = tcp_connect(f->auth.port, "127.0.0.1");
    health.url = url(&f->auth, "/healthz");
    status = http(&health, NULL);
    close_all(held, 40);
    assert_int_equal(status, 200);
}

static void test_one_principal_is_capped_over_many_addresses(void **state)
{
    struct fixture *f = *state;
    int fds[10];
    long status = -1;
    char from[16];
    struct call anonymous = {"GET", NULL, NULL, "127.0.0.2", {0}, NULL, 5};

    /* Carol from nine addresses (none of them the proxy). */
    for (int i = 0; i < 9; i++) {
        snprintf(from, sizeof(from), "127.0.0.%d", 40 + i);
        fds[i] = open_customer_stream(&f->auth, from, "cust-carol", "", &status);
        if (i < 8)
            assert_int_equal(status, 200);
    }
    fprintf(stderr, "carol's ninth stream: %ld\n", status);
    assert_int_equal(status, 429);
    /* Another customer from the same address is not held to carol's cap. */
    fds[9] = open_customer_stream(&f->auth, "127.0.0.48", "cust-dave", "", &status);
    close_all(fds, 10);
    assert_int_equal(status, 200);
    assert_true(refused(f->auth.base, "principal_stream_cap") >= 1);
    /* Without a token: 401, counted. */
    anonymous.url = url(&f->auth, "/orders");
    assert_int_equal(http(&anonymous, NULL), 401);
    assert_true(refused(f->auth.base, "auth") >= 1);
}

/* --- tokens expire, and so do their streams ------------------------------------------ */

static void test_stream_ends_when_its_token_expires(void **state)
{
    struct fixture *f = *state;
    /* exp 57 s ago: still within the 60 s the server allows for clock skew, for 3 s. */
    char *tok = mint("cust-erin", "customer", -57), target[1024], buf[8192];
    size_t len = 0;
    long status = -1;
    long long start = now_ms();
    int fd, closed = 0;

    snprintf(target, sizeof(target), "/events?access_token=%s", tok);
    free(tok);
    fd = open_stream_with(f->auth.port, "127.0.0.2", target, "", &status);
    assert_int_equal(status, 200);
    while (!closed && now_ms() - start < 15000) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        ssize_t n;
        if (poll(&p, 1, 200) <= 0)
            continue;
        n = recv(fd, buf + len, sizeof(buf) - 1 - len, 0);
        if (n <= 0)
            closed = 1;
        else
            len += (size_t)n;
        if (len >= sizeof(buf) - 1)
            len = 0;
    }
    buf[len] = '\0';
    close(fd);
    fprintf(stderr, "stream %s after %lld ms; its end: %s\n", closed ? "closed" : "still open",
            now_ms() - start, len > 200 ? buf + len - 200 : buf);
    assert_true(closed);
    assert_non_null(strstr(buf, "event: end\ndata: {\"reason\":\"token_expired\"}"));
}

/* --- the internal listener ------------------------------------------------------------ */

/* Opens n connections from from_base+i/per (127.0.0.X) that send half a request. */
static int flood(int port, int first_host, int per_host, int n, int *fds)
{
    char from[16], line[128];
    int opened = 0;
    snprintf(line, sizeof(line), "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nX-Slow: ", port);
    for (int i = 0; i < n; i++) {
        snprintf(from, sizeof(from), "127.0.0.%d", first_host + i / per_host);
        fds[i] = tcp_connect(port, from);
        if (fds[i] >= 0 && send_all(fds[i], line) != 0) {
            close(fds[i]);
            fds[i] = -1;
        }
        opened += fds[i] >= 0;
    }
    return opened;
}

static void test_internal_listener_answers_under_flood(void **state)
{
    struct fixture *f = *state;
    const char *extra[] = {"HTTP_INTERNAL_ADDR=127.0.0.1:0", "HTTP_MAX_CONNECTIONS=64",
                           "HTTP_MAX_CONNECTIONS_PER_CLIENT=64", "HTTP_REQUEST_TIMEOUT=60s", NULL};
    static int fds[80];
    char internal[128], internal_metrics[128];
    struct call pub = {"GET", NULL, NULL, "127.0.0.2", {0}, NULL, 3};
    struct call probe = {"GET", internal, NULL, "127.0.0.2", {0}, NULL, 5};
    struct call metrics = {"GET", NULL, NULL, "127.0.0.2", {0}, NULL, 5};
    long pub_status, probe_status;
    char base[80];

    /* A soft RLIMIT_NOFILE below the hard one is raised at start. */
    program = wrapper("soft_nofile", "ulimit -Sn 256");
    start_service(&f->internal, &f->internal_db, "internal", extra);
    program = ORDER_SERVICE;
    assert_true(log_wait(f->internal.log, "RLIMIT_NOFILE raised from 256 to", 1000));
    fprintf(stderr, "internal listener port: %d\n", f->internal.internal_port);
    assert_true(f->internal.internal_port > 0);
    /* One client fills the public port (HTTP_MAX_CONNECTIONS=64) with slow requests. */
    flood(f->internal.port, 1, 80, 80, fds);
    usleep(500 * 1000);
    pub.url = url(&f->internal, "/healthz");
    pub_status = http(&pub, NULL);
    snprintf(internal, sizeof(internal), "http://127.0.0.1:%d/healthz", f->internal.internal_port);
    probe_status = http(&probe, NULL);
    snprintf(base, sizeof(base), "http://127.0.0.1:%d", f->internal.internal_port);
    close_all(fds, 80);
    assert_true(pub_status != 200); /* the public port is full */
    assert_int_equal(probe_status, 200);
    assert_true(refused(base, "connection_cap") >= 1);
    /* With an internal listener, /metrics is not on the public port. */
    snprintf(internal_metrics, sizeof(internal_metrics), "%s/metrics", f->internal.base);
    metrics.url = internal_metrics;
    usleep(500 * 1000);
    assert_int_equal(http(&metrics, NULL), 404);
    pub_status = http(&pub, NULL);
    assert_int_equal(pub_status, 200);
    stop_service(&f->internal);
}

/*
 * REVIEW: the internal listener has no per-client cap: one peer that can reach it (any pod
 * in the cluster: no NetworkPolicy) fills its SAGA_HTTP_INTERNAL_CONNECTIONS (16) with
 * half-sent requests, reopened whenever the watchdog cuts them, and the kubelet's
 * liveness and readiness probes fail: the pod is restarted.
 */
static void test_one_peer_cannot_starve_the_internal_listener(void **state)
{
    struct fixture *f = *state;
    const char *extra[] = {"HTTP_INTERNAL_ADDR=127.0.0.1:0", NULL};
    static int fds[24];
    char internal[128];
    struct call probe = {"GET", internal, NULL, "127.0.0.2", {0}, NULL, 5};
    int ok = 0, tries = 0;

    start_service(&f->internal, &f->internal_db, "review_internal", extra);
    assert_true(f->internal.internal_port > 0);
    snprintf(internal, sizeof(internal), "http://127.0.0.1:%d/healthz", f->internal.internal_port);
    assert_int_equal(http(&probe, NULL), 200);
    /* One peer (127.0.0.9), for 6 s (three request timeouts), reopening what is cut; a
     * probe every 500 ms from another address. */
    flood(f->internal.internal_port, 9, 24, 24, fds);
    for (long long end = now_ms() + 6000; now_ms() < end; tries++) {
        usleep(500 * 1000);
        for (int i = 0; i < 24; i++)
            if (fds[i] < 0 || closed_by_server(fds[i], 0)) {
                char line[128];
                if (fds[i] >= 0)
                    close(fds[i]);
                snprintf(line, sizeof(line), "GET /healthz HTTP/1.1\r\nX-Slow: ");
                fds[i] = tcp_connect(f->internal.internal_port, "127.0.0.9");
                if (fds[i] >= 0 && send_all(fds[i], line) != 0) {
                    close(fds[i]);
                    fds[i] = -1;
                }
            }
        ok += http(&probe, NULL) == 200;
    }
    close_all(fds, 24);
    stop_service(&f->internal);
    fprintf(stderr, "probes answered 200 while one peer held the internal listener: %d of %d\n", ok,
            tries);
    if (ok < tries / 2)
        fail_msg("one peer made %d of %d probes on the internal listener fail", tries - ok, tries);
}

/*
 * REVIEW: an early answer (413 for a Content-Length over the limit, 421 for a foreign
 * Host) stops the read clock (send_response: set_reading 0) before the body is read. If
 * MHD then keeps reading that body, a client trickling it is never cut by the watchdog
 * (HTTP_REQUEST_TIMEOUT is 2 s here): only MHD's 30 s idle timeout applies.
 */
static void test_slow_body_after_an_early_answer_is_cut(void **state)
{
    struct fixture *f = *state;
    const char *const heads[] = {
        "DELETE /orders/x HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000000000\r\n\r\n",
        "GET /orders HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 1000000000\r\n\r\n",
        ("POST /orders HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: "
         "application/json\r\nContent-Length: 1000000000\r\n\r\n"),
        "GET /orders HTTP/1.1\r\nHost: rebind.evil.example\r\nContent-Length: 60000\r\n\r\n",
        "PATCH /orders/x HTTP/1.1\r\nHost: rebind.evil.example\r\nContent-Length: 60000\r\n\r\n",
    };
    enum { N = sizeof(heads) / sizeof(heads[0]) };
    int fds[N], open_after[N], held = 0;
    char from[16];

    for (int i = 0; i < N; i++) {
        snprintf(from, sizeof(from), "127.0.0.%d", 40 + i);
        fds[i] = tcp_connect(f->svc.port, from);
        assert_true(fds[i] >= 0);
        assert_int_equal(send_all(fds[i], heads[i]), 0);
    }
    /* A byte of body every 500 ms for 6 s: three request timeouts. */
    for (long long end = now_ms() + 6000; now_ms() < end;) {
        usleep(500 * 1000);
        for (int i = 0; i < N; i++)
            if (fds[i] >= 0 && (closed_by_server(fds[i], 0) || send_all(fds[i], "x") != 0)) {
                close(fds[i]);
                fds[i] = -1;
            }
    }
    for (int i = 0; i < N; i++) {
        open_after[i] = fds[i] >= 0 && !closed_by_server(fds[i], 0);
        fprintf(stderr, "%.30s...: %s after 6 s of a trickled body\n", heads[i],
                open_after[i] ? "STILL OPEN" : "closed");
        held += open_after[i];
        if (fds[i] >= 0)
            close(fds[i]);
    }
    if (held)
        fail_msg("%d connection(s) trickling a body after an early answer outlived the 2 s "
                 "request deadline",
                 held);
}

/*
 * REVIEW: the manifests suggest HTTP_TRUSTED_PROXIES=10.0.0.0/8 (the pod network). Every
 * pod in it is then a "proxy": its connections count only against HTTP_MAX_CONNECTIONS,
 * never against HTTP_MAX_CONNECTIONS_PER_CLIENT, so one compromised pod fills the public
 * port with half-sent requests (issue 15's slowloris) and a customer coming through the
 * Ingress is refused. Here 127.0.0.0/8 plays the pod network, 127.0.0.9 the pod.
 */
static void test_one_trusted_proxy_peer_cannot_fill_the_port(void **state)
{
    struct fixture *f = *state;
    const char *extra[] = {"HTTP_TRUSTED_PROXIES=127.0.0.0/8", "HTTP_MAX_CONNECTIONS=64",
                           "HTTP_REQUEST_TIMEOUT=60s", NULL};
    static int fds[80];
    struct call customer = {"GET", NULL, NULL, "127.0.0.2", {"X-Forwarded-For: 198.51.100.7"},
                            NULL,  3};
    long before, during;
    int opened;

    start_service(&f->internal, &f->internal_db, "review_proxy", extra);
    customer.url = url(&f->internal, "/healthz");
    before = http(&customer, NULL);
    opened = flood(f->internal.port, 9, 80, 80, fds); /* all from 127.0.0.9 */
    usleep(500 * 1000);
    during = http(&customer, NULL);
    close_all(fds, 80);
    stop_service(&f->internal);
    fprintf(stderr,
            "one peer opened %d slow connections; the customer got %ld before, %ld during\n",
            opened, before, during);
    assert_int_equal(before, 200);
    if (during != 200)
        fail_msg("one peer in HTTP_TRUSTED_PROXIES took the whole port (customer: %ld)", during);
}

/*
 * A client that pipelines requests and reads the answers slowly (a small receive window,
 * a few bytes now and then) would hold its connection, and the thread serving it, for as
 * long as it likes: the request deadline is over once a request has arrived. An answer
 * that is not taken within HTTP_RESPONSE_TIMEOUT ends the connection on the server's side
 * (what the kernel already holds may still trickle out to the client).
 */
static void test_slow_reader_is_let_go(void **state)
{
    struct fixture *f = *state;
    const char *extra[] = {"HTTP_RESPONSE_TIMEOUT=2s", NULL};
    struct sockaddr_in src = {.sin_family = AF_INET}, dst = {.sin_family = AF_INET};
    int fd = socket(AF_INET, SOCK_STREAM, 0), rcvbuf = 2048;
    char req[128];
    long long cut = 0, end;

    start_service(&f->fds, &f->fds_db, "slowread", extra);
    assert_true(fd >= 0);
    assert_int_equal(setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf)), 0);
    inet_pton(AF_INET, "127.0.0.60", &src.sin_addr);
    inet_pton(AF_INET, "127.0.0.1", &dst.sin_addr);
    dst.sin_port = htons((uint16_t)f->fds.port);
    assert_int_equal(bind(fd, (struct sockaddr *)&src, sizeof(src)), 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&dst, sizeof(dst)), 0);
    snprintf(req, sizeof(req), "GET /app.js HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    for (int i = 0; i < 200; i++)
        assert_int_equal(send_all(fd, req), 0);
    /* Nothing is read: the answers pile up. */
    for (end = now_ms() + 20000; cut < 1 && now_ms() < end; usleep(250 * 1000))
        cut = refused(f->fds.base, "response_deadline");
    close(fd);
    stop_service(&f->fds);
    if (cut < 1)
        fail_msg("an answer nobody took for 20 s did not end its connection "
                 "(saga_http_refused_total{reason=\"response_deadline\"}: %lld)",
                 cut);
}

/* --- descriptors ---------------------------------------------------------------------- */

#define FD_FLOOD 384 /* 12 clients of 32: more descriptors than the process may have */

static void test_flood_within_a_low_descriptor_limit(void **state)
{
    struct fixture *f = *state;
    const char *extra[] = {"HTTP_INTERNAL_ADDR=127.0.0.1:0", "HTTP_REQUEST_TIMEOUT=60s", NULL};
    static int fds[FD_FLOOD];
    char internal[128];
    struct call probe = {"GET", internal, NULL, "127.0.0.2", {0}, NULL, 5};
    struct call order = {"POST", NULL, ORDER_BODY, "127.0.0.2", {"Content-Type: application/json"},
                         NULL,   10};
    long probe_status, order_status = -1;
    int opened, alive;
    long long end;

    /* The service starts with 256 descriptors, soft and hard. */
    program = wrapper("low_nofile", "ulimit -Sn 256\nulimit -Hn 256");
    start_service(&f->fds, &f->fds_db, "fds", extra);
    program = ORDER_SERVICE;
    assert_true(f->fds.internal_port > 0);

    opened = flood(f->fds.port, 60, 32, FD_FLOOD, fds);
    fprintf(stderr, "flood: %d connections opened\n", opened);
    usleep(1000 * 1000);
    snprintf(internal, sizeof(internal), "http://127.0.0.1:%d/healthz", f->fds.internal_port);
    probe_status = http(&probe, NULL);
    alive = waitpid(f->fds.pid, NULL, WNOHANG) == 0;
    close_all(fds, FD_FLOOD);
    assert_true(alive);
    assert_int_equal(probe_status, 200);
    /* And once the flood is gone the API works, database and all. */
    order.url = url(&f->fds, "/orders");
    end = now_ms() + 15000;
    while ((order_status = http(&order, NULL)) != 202 && now_ms() < end)
        usleep(500 * 1000);
    assert_int_equal(order_status, 202);
    assert_true(waitpid(f->fds.pid, NULL, WNOHANG) == 0);
    /* It said what it had (and capped its connections to fit). */
    assert_true(log_wait(f->fds.log, "RLIMIT_NOFILE 256", 1000));
    stop_service(&f->fds);
}

/* --- the /events feed pauses while no page watches --------------------------------- */

/* Reads fd until needle arrives or timeout_ms passes; 1 if it arrived. What came is kept in
 * got (size bytes, NUL-terminated, the latest part when more came). */
static int stream_until(int fd, const char *needle, int timeout_ms, char *got, size_t size)
{
    size_t len = 0;
    long long end = now_ms() + timeout_ms;
    got[0] = '\0';
    while (!strstr(got, needle) && now_ms() < end) {
        struct pollfd p = {.fd = fd, .events = POLLIN};
        ssize_t n;
        if (poll(&p, 1, 200) <= 0)
            continue;
        if (len + 1 >= size) { /* keep the second half */
            memmove(got, got + size / 2, len - size / 2 + 1);
            len -= size / 2;
        }
        if ((n = recv(fd, got + len, size - 1 - len, 0)) <= 0)
            break;
        len += (size_t)n;
        got[len] = '\0';
    }
    return strstr(got, needle) != NULL;
}

/* The feed's look at the timeline in the last second (its query in pg_stat_activity). */
static long long feed_polled_lately(const struct testdb *db)
{
    return testdb_scalar(db, "SELECT count(*) FROM pg_stat_activity"
                             " WHERE datname = current_database() AND query LIKE 'SELECT t.seq%'"
                             " AND query_start > now() - interval '1 second'");
}

/* Waits until the feed has paused (no look for a second), at most 10 s; 1 if it did. */
static int feed_paused(const struct testdb *db)
{
    for (long long end = now_ms() + 10000; now_ms() < end; usleep(200 * 1000))
        if (feed_polled_lately(db) == 0)
            return 1;
    return 0;
}

/* The id: of the last message in got holding needle ("" if none). */
static void last_id_with(const char *got, const char *needle, char *out, size_t size)
{
    const char *hit = NULL, *at, *id = NULL;
    for (at = strstr(got, needle); at; at = strstr(at + 1, needle))
        hit = at;
    out[0] = '\0';
    for (at = strstr(got, "id: "); at && hit && at < hit; at = strstr(at + 1, "id: "))
        id = at + 4;
    if (id)
        snprintf(out, size, "%.*s", (int)strcspn(id, "\n"), id);
}

/* Commits one timeline row of order ORDER, event EVENT, with SUMMARY; its seq. */
static long long timeline_row(const struct testdb *db, const char *order, const char *event,
                              const char *summary)
{
    char sql[512];
    snprintf(sql, sizeof(sql),
             "WITH r AS (INSERT INTO timeline (order_id, event_id, event_type, service,"
             " occurred_at, summary) VALUES ('%s', '%s', 'OrderPlaced', 'order-service', now(),"
             " '%s') RETURNING seq) SELECT seq FROM r",
             order, event, summary);
    return testdb_scalar(db, sql);
}

/* Commits n timeline rows in one transaction (orders o-KEYi, events e-KEYi, i from 1 to n),
 * each with the SQL expression summary (of i); how many. */
static long long timeline_rows(const struct testdb *db, const char *key, const char *summary, int n)
{
    char sql[512];
    snprintf(sql, sizeof(sql),
             "WITH r AS (INSERT INTO timeline (order_id, event_id, event_type, service,"
             " occurred_at, summary) SELECT 'o-%s' || i, 'e-%s' || i, 'OrderPlaced',"
             " 'order-service', now(), %s FROM generate_series(1, %d) i RETURNING 1)"
             " SELECT count(*) FROM r",
             key, key, summary, n);
    return testdb_scalar(db, sql);
}

/* 2,100 timeline rows, more than a resumed feed reads on (CATCHUP_ROWS, 2,048). */
static void insert_more_than_a_catch_up(const struct testdb *db)
{
    assert_int_equal(timeline_rows(db, "", "'bulk'", 2100), 2100);
}

/*
 * With no /events stream open for EVENTS_IDLE_PAUSE, the order-service stops polling its
 * timeline (a query every 200 ms for nobody). The next stream resumes it where it stopped:
 * a page that comes back with its Last-Event-ID gets what was committed meanwhile, in
 * order. After more rows than the feed catches up on, it gets a resync instead.
 */
static void test_events_feed_pauses_while_nobody_watches(void **state)
{
    struct testdb db;
    struct service svc = {0};
    const char *extra[] = {"EVENTS_IDLE_PAUSE=1s", NULL};
    char got[16384], id[64], last[128];
    struct call post = {"POST", NULL, ORDER_BODY, NULL, {"Content-Type: application/json"},
                        NULL,   10};
    long status;
    int fd;

    (void)state;
    testdb_create(&db, "it_http_feed", "order");
    start_service(&svc, &db, "feed", extra);
    post.url = url(&svc, "/orders");

    /* an order while a page watches: its event's id, the page's Last-Event-ID */
    fd = open_stream(svc.port, "127.0.0.1", &status);
    assert_true(fd >= 0);
    assert_int_equal(http(&post, NULL), 202);
    if (!stream_until(fd, "OrderPlaced", 10000, got, sizeof(got)))
        fail_msg("no OrderPlaced on the stream within 10 s: %s", got);
    last_id_with(got, "OrderPlaced", id, sizeof(id));
    assert_true(id[0]);
    close(fd);

    /* nobody watches: the feed stops looking; an order placed meanwhile */
    if (!feed_paused(&db))
        fail_msg("the feed still polls the timeline 10 s after the last stream closed "
                 "(EVENTS_IDLE_PAUSE=1s)");
    usleep(1500 * 1000);
    if (feed_polled_lately(&db) != 0)
        fail_msg("the feed polled the timeline while no stream was open");
    assert_int_equal(http(&post, NULL), 202);

    /* the page comes back: the order placed while it was away, no resync needed */
    snprintf(last, sizeof(last), "Last-Event-ID: %s\r\n", id);
    fd = open_stream_with(svc.port, "127.0.0.1", "/events", last, &status);
    assert_true(fd >= 0);
    if (!stream_until(fd, "OrderPlaced", 10000, got, sizeof(got)))
        fail_msg("the order placed during the pause never reached the resumed stream: %s", got);
    if (strstr(got, "event: resync"))
        fail_msg("a resync for a pause the feed caught up on: %s", got);
    if (feed_polled_lately(&db) < 1)
        fail_msg("the feed does not poll with a stream open");
    last_id_with(got, "OrderPlaced", id, sizeof(id));
    close(fd);

    /* away while more rows came than the feed reads on: a resync */
    if (!feed_paused(&db))
        fail_msg("the feed did not pause a second time");
    insert_more_than_a_catch_up(&db);
    snprintf(last, sizeof(last), "Last-Event-ID: %s\r\n", id);
    fd = open_stream_with(svc.port, "127.0.0.1", "/events", last, &status);
    assert_true(fd >= 0);
    if (!stream_until(fd, "event: resync", 10000, got, sizeof(got)))
        fail_msg("no resync after 2,100 rows while no stream was open: %s", got);
    {
        /* the next order's own message (rows from before it may come again first) */
        char *body = NULL, needle[128];
        json_t *j;
        assert_int_equal(http(&post, &body), 202);
        j = json_loads(body ? body : "", 0, NULL);
        free(body);
        assert_non_null(j);
        snprintf(needle, sizeof(needle), "\"order_id\":\"%s\"",
                 json_string_value(json_object_get(j, "order_id")));
        json_decref(j);
        if (!stream_until(fd, needle, 10000, got, sizeof(got)))
            fail_msg("nothing new on the stream after the resync: %s", got);
    }
    close(fd);
    stop_service(&svc);
    testdb_drop(&db);
}

/* A timeline row ("late row") whose seq is taken but not committed, then one after it
 * ("next row") that is: a hole in seq. Commit the first with close_hole. */
static PGconn *open_hole(const struct testdb *db)
{
    PGconn *tx = PQconnectdb(db->owner_url);
    PGresult *r;
    assert_int_equal(PQstatus(tx), CONNECTION_OK);
    r = PQexec(tx, "BEGIN; INSERT INTO timeline (order_id, event_id, event_type, service,"
                   " occurred_at, summary) VALUES ('o-late', 'e-late', 'OrderPlaced',"
                   " 'order-service', now(), 'late row')");
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    assert_true(timeline_row(db, "o-next", "e-next", "next row") > 0);
    return tx;
}

static void close_hole(PGconn *tx)
{
    PGresult *r = PQexec(tx, "COMMIT");
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    PQfinish(tx);
}

/*
 * A hole in seq when the feed pauses (a transaction still open) is still waited for when
 * it resumes soon after: the row committed during the pause reaches the page that comes
 * back, as it would have without the pause (holes are looked at again for 10 s).
 */
static void test_events_feed_resume_still_waits_for_holes(void **state)
{
    struct testdb db;
    struct service svc = {0};
    const char *extra[] = {"EVENTS_IDLE_PAUSE=1s", NULL};
    char got[16384], id[64], last[128];
    PGconn *tx;
    long status;
    int fd;

    (void)state;
    testdb_create(&db, "it_http_hole", "order");
    start_service(&svc, &db, "hole", extra);

    fd = open_stream(svc.port, "127.0.0.1", &status);
    assert_true(fd >= 0);
    /* a row whose seq is taken but not committed, then one after it that is */
    tx = open_hole(&db);
    if (!stream_until(fd, "next row", 10000, got, sizeof(got)))
        fail_msg("the committed row never reached the stream: %s", got);
    last_id_with(got, "next row", id, sizeof(id));
    assert_true(id[0]);
    close(fd);

    /* nobody watches: the feed pauses; the open transaction commits meanwhile */
    if (!feed_paused(&db))
        fail_msg("the feed still polls the timeline 10 s after the last stream closed");
    close_hole(tx);

    /* the page comes back at once: the late row, within the holes' 10 s */
    snprintf(last, sizeof(last), "Last-Event-ID: %s\r\n", id);
    fd = open_stream_with(svc.port, "127.0.0.1", "/events", last, &status);
    assert_true(fd >= 0);
    if (!stream_until(fd, "late row", 8000, got, sizeof(got)) && !strstr(got, "event: resync"))
        fail_msg("the row committed into a hole during the pause never reached the resumed "
                 "stream, and no resync either: %s",
                 got);
    close(fd);
    stop_service(&svc);
    testdb_drop(&db);
}

/*
 * After a pause with many rows, the feed jumps to the newest row and every stream gets a
 * resync: the page reloads. A transaction still open at that moment, with a seq just below
 * the newest row, commits after the reload: its row still reaches the page.
 */
static void test_events_feed_jump_still_waits_for_open_transactions(void **state)
{
    struct testdb db;
    struct service svc = {0};
    const char *extra[] = {"EVENTS_IDLE_PAUSE=1s", NULL};
    char got[16384];
    PGconn *tx;
    long status;
    int fd;

    (void)state;
    testdb_create(&db, "it_http_jump", "order");
    start_service(&svc, &db, "jump", extra);
    fd = open_stream(svc.port, "127.0.0.1", &status);
    assert_true(fd >= 0);
    close(fd);
    if (!feed_paused(&db))
        fail_msg("the feed still polls the timeline 10 s after the last stream closed");

    /* more rows than the feed catches up on, then one whose transaction stays open, then
     * one more, committed */
    insert_more_than_a_catch_up(&db);
    tx = open_hole(&db);

    /* a page opens: the resync (it reloads), then the open transaction commits */
    fd = open_stream(svc.port, "127.0.0.1", &status);
    assert_true(fd >= 0);
    if (!stream_until(fd, "event: resync", 10000, got, sizeof(got)))
        fail_msg("no resync after 2,100 rows while no stream was open: %s", got);
    close_hole(tx);
    if (!stream_until(fd, "late row", 8000, got, sizeof(got)) && !strstr(got, "event: resync"))
        fail_msg("the row committed after the resync never reached the stream, and no second "
                 "resync either: %s",
                 got);
    close(fd);
    stop_service(&svc);
    testdb_drop(&db);
}

/*
 * A transaction open while the order-service starts (another instance's, or its own
 * consumer's) holds a seq below the newest row when the feed first looks: its row, once
 * committed, still reaches the page.
 */
static void test_events_feed_start_waits_for_open_transactions(void **state)
{
    struct testdb db;
    struct service svc = {0};
    char got[16384];
    PGconn *tx;
    long status;
    int fd;

    (void)state;
    testdb_create(&db, "it_http_start", "order");
    start_service(&svc, &db, "start1", NULL); /* its migrations make the timeline */
    stop_service(&svc);

    /* a row whose transaction stays open, one after it committed; then the service starts */
    tx = open_hole(&db);
    start_service(&svc, &db, "start2", NULL);
    fd = open_stream(svc.port, "127.0.0.1", &status);
    assert_true(fd >= 0);
    for (long long end = now_ms() + 10000; !feed_polled_lately(&db) && now_ms() < end;)
        usleep(100 * 1000);
    usleep(500 * 1000); /* a look or two with the hole still open */
    close_hole(tx);
    if (!stream_until(fd, "late row", 8000, got, sizeof(got)))
        fail_msg("the row of a transaction open when the service started never reached the "
                 "stream: %s",
                 got);
    close(fd);
    stop_service(&svc);
    testdb_drop(&db);
}

/*
 * A page that comes back after a restart with its Last-Event-ID gets every row that
 * followed it, also one whose seq is below that id: a transaction that took its seq
 * before the row the page saw last and committed while the service was down.
 */
static void test_events_last_event_id_across_a_restart_gets_a_late_row(void **state)
{
    struct testdb db;
    struct service svc = {0};
    char got[16384], id[64], last[128];
    PGconn *tx;
    long status;
    int fd;

    (void)state;
    testdb_create(&db, "it_http_restart", "order");
    start_service(&svc, &db, "restart1", NULL);
    fd = open_stream(svc.port, "127.0.0.1", &status);
    assert_true(fd >= 0);
    /* a hole below the row the page sees last */
    tx = open_hole(&db);
    if (!stream_until(fd, "next row", 10000, got, sizeof(got)))
        fail_msg("the committed row never reached the stream: %s", got);
    last_id_with(got, "next row", id, sizeof(id));
    assert_true(id[0]);
    close(fd);

    /* the service stops; the open transaction commits meanwhile; it starts again */
    stop_service(&svc);
    close_hole(tx);
    start_service(&svc, &db, "restart2", NULL);

    snprintf(last, sizeof(last), "Last-Event-ID: %s\r\n", id);
    fd = open_stream_with(svc.port, "127.0.0.1", "/events", last, &status);
    assert_true(fd >= 0);
    if (!stream_until(fd, "late row", 8000, got, sizeof(got)))
        fail_msg("the row committed into a hole below the page's Last-Event-ID while the "
                 "service was down never reached the resumed stream: %s",
                 got);
    /* every row past the id is still loaded after the restart: no reload is asked for */
    assert_null(strstr(got, "event: resync"));
    close(fd);
    stop_service(&svc);
    testdb_drop(&db);
}

/* --- review10: rows a stream resuming across a restart can still miss ------------------ */

/* Where a resumed stream's text goes: the backlog comes again, 256 messages and more. */
static char review_got[1 << 20];

/* A page that saw id resumes with it on svc: 1 when "late row" or a resync arrives within
 * 8 s (what came, the response's head and first bytes included, is in review_got: a
 * resync comes with the first bytes). */
static int resumed_gets_late_row_or_resync(const struct service *svc, const char *id)
{
    char req[256];
    int fd = tcp_connect(svc->port, "127.0.0.1");
    assert_true(fd >= 0);
    snprintf(req, sizeof(req),
             "GET /events HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nLast-Event-ID: %s\r\n\r\n", svc->port,
             id);
    assert_int_equal(send_all(fd, req), 0);
    stream_until(fd, "late row", 8000, review_got, sizeof(review_got));
    close(fd);
    return strstr(review_got, "late row") != NULL || strstr(review_got, "event: resync") != NULL;
}

/*
 * Under load the 256 rows loaded at start cover far less than GAP_GRACE_MS: a transaction
 * that took its seq a few hundred rows before the row the page saw last (here: 300 rows
 * committed between them, a second at 50 orders/s) and committed while the service was
 * down lies below the backlog. The page's id is in the ring (no resync), and the row is
 * never loaded: lost silently.
 */
static void test_review_restart_late_row_below_the_backlog(void **state)
{
    struct testdb db;
    struct service svc = {0};
    char id[64];
    PGconn *tx;
    PGresult *r;
    long status;
    int fd;

    (void)state;
    testdb_create(&db, "it_http_rv_below", "order");
    start_service(&svc, &db, "rvbelow1", NULL);
    fd = open_stream(svc.port, "127.0.0.1", &status);
    assert_true(fd >= 0);
    tx = PQconnectdb(db.owner_url);
    assert_int_equal(PQstatus(tx), CONNECTION_OK);
    r = PQexec(tx, "BEGIN; INSERT INTO timeline (order_id, event_id, event_type, service,"
                   " occurred_at, summary) VALUES ('o-late', 'e-late', 'OrderPlaced',"
                   " 'order-service', now(), 'late row')");
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    assert_int_equal(timeline_rows(&db, "f", "'filler'", 300), 300);
    assert_true(timeline_row(&db, "o-next", "e-next", "next row") > 0);
    if (!stream_until(fd, "next row", 10000, review_got, sizeof(review_got)))
        fail_msg("the committed row never reached the stream");
    last_id_with(review_got, "next row", id, sizeof(id));
    assert_true(id[0]);
    close(fd);

    stop_service(&svc);
    close_hole(tx); /* commits while the service is down */
    start_service(&svc, &db, "rvbelow2", NULL);
    if (!resumed_gets_late_row_or_resync(&svc, id))
        fail_msg("a row committed while the service was down, 301 seqs below the page's "
                 "Last-Event-ID %s (below the 256-row backlog), never came, and no resync",
                 id);
    stop_service(&svc);
    testdb_drop(&db);
}

/*
 * recorded_at is now(): its transaction's START. A transaction that took its seq before the
 * page's last row and ran longer than GAP_GRACE_MS, committing a moment after that row
 * (within the feed's 10 s for the hole: without the restart the row comes), while the
 * service was down: its recorded_at is more than 10 s before the last row's, so it is not
 * sent again. Lost silently.
 */
static void test_review_restart_late_row_of_a_long_transaction(void **state)
{
    struct testdb db;
    struct service svc = {0};
    char id[64];
    PGconn *tx;
    PGresult *r;
    long status;
    int fd;

    (void)state;
    testdb_create(&db, "it_http_rv_long", "order");
    start_service(&svc, &db, "rvlong1", NULL);
    fd = open_stream(svc.port, "127.0.0.1", &status);
    assert_true(fd >= 0);
    tx = PQconnectdb(db.owner_url);
    assert_int_equal(PQstatus(tx), CONNECTION_OK);
    r = PQexec(tx, "BEGIN; INSERT INTO timeline (order_id, event_id, event_type, service,"
                   " occurred_at, summary) VALUES ('o-late', 'e-late', 'OrderPlaced',"
                   " 'order-service', now(), 'late row')");
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    sleep(11); /* the transaction runs on (a lock wait, a slow step) */
    assert_true(timeline_row(&db, "o-next", "e-next", "next row") > 0);
    if (!stream_until(fd, "next row", 10000, review_got, sizeof(review_got)))
        fail_msg("the committed row never reached the stream");
    last_id_with(review_got, "next row", id, sizeof(id));
    assert_true(id[0]);
    close(fd);

    stop_service(&svc);
    close_hole(tx); /* 1-2 s after "next row": the running feed would still wait for it */
    start_service(&svc, &db, "rvlong2", NULL);
    if (!resumed_gets_late_row_or_resync(&svc, id))
        fail_msg("a row of an 11 s transaction committed while the service was down, just "
                 "after the page's last row %s, never came, and no resync",
                 id);
    stop_service(&svc);
    testdb_drop(&db);
}

/*
 * (Before this change too.) A hole whose row commits during a pause of the feed, within
 * GAP_GRACE_MS of the hole being seen, while the page comes back only after those 10 s:
 * the hole expires at the first look after the resume (gaps_expire counts the pause), so
 * the row that a feed that kept polling would have delivered is lost, and no resync.
 */
static void test_review_pause_longer_than_the_grace_loses_a_hole(void **state)
{
    struct testdb db;
    struct service svc = {0};
    const char *extra[] = {"EVENTS_IDLE_PAUSE=1s", NULL};
    char id[64];
    PGconn *tx;
    long status;
    long long seen;
    int fd;

    (void)state;
    testdb_create(&db, "it_http_rv_pause", "order");
    start_service(&svc, &db, "rvpause", extra);
    fd = open_stream(svc.port, "127.0.0.1", &status);
    assert_true(fd >= 0);
    tx = open_hole(&db);
    if (!stream_until(fd, "next row", 10000, review_got, sizeof(review_got)))
        fail_msg("the committed row never reached the stream");
    seen = now_ms();
    last_id_with(review_got, "next row", id, sizeof(id));
    assert_true(id[0]);
    close(fd);
    if (!feed_paused(&db))
        fail_msg("the feed did not pause");
    close_hole(tx); /* a few seconds after the hole was seen: within its 10 s */
    assert_true(now_ms() - seen < 8000);
    while (now_ms() - seen < 12000)
        usleep(100 * 1000);
    if (!resumed_gets_late_row_or_resync(&svc, id))
        fail_msg("a row committed during the pause, within 10 s of its hole being seen, "
                 "never reached the page that came back 12 s later, and no resync");
    stop_service(&svc);
    testdb_drop(&db);
}

/*
 * A stream resuming across a restart gets the rows past its id again, and customers stay
 * apart on that replay: with an id below both customers' rows, the operator gets both, a
 * customer only her own.
 */
static void test_events_resume_across_a_restart_keeps_customers_apart(void **state)
{
    struct testdb db;
    struct service svc = {0};
    char secret_env[340], id[64], last[128], *tok, target[1024];
    const char *auth_env[] = {"AUTH_MODE=jwt", secret_env, NULL};
    long status;
    int fd;

    (void)state;
    snprintf(secret_env, sizeof(secret_env), "AUTH_SECRET_FILE=%s", F->secret_file);
    testdb_create(&db, "it_http_rv_cust", "order");
    start_service(&svc, &db, "rvcust1", auth_env);
    stop_service(&svc);
    assert_int_equal(
        testdb_scalar(&db, "WITH r AS (INSERT INTO orders (order_id, customer_id, currency,"
                           " total_amount, payment_token, shipping_address, status,"
                           " correlation_id, placed_event_id) VALUES"
                           " ('o-ann', 'cust-ann', 'EUR', 1, 't', '{}', 'PENDING', 'c1', 'p1'),"
                           " ('o-ben', 'cust-ben', 'EUR', 1, 't', '{}', 'PENDING', 'c2', 'p2')"
                           " RETURNING 1) SELECT count(*) FROM r"),
        2);
    snprintf(id, sizeof(id), "%lld", timeline_row(&db, "o-ben", "e-ben", "bens row") - 1);
    assert_true(timeline_row(&db, "o-ann", "e-ann", "anns row") > 0);
    start_service(&svc, &db, "rvcust2", auth_env);
    /* the operator's resumed stream gets both rows past its id ... */
    tok = mint("ops", "operator", 600);
    snprintf(target, sizeof(target), "/events?access_token=%s", tok);
    free(tok);
    snprintf(last, sizeof(last), "Last-Event-ID: %s\r\n", id);
    fd = open_stream_with(svc.port, "127.0.0.1", target, last, &status);
    assert_true(fd >= 0);
    if (!stream_until(fd, "anns row", 8000, review_got, sizeof(review_got)) ||
        !strstr(review_got, "bens row"))
        fail_msg("the operator's resumed stream did not get both rows past its id: %s", review_got);
    close(fd);
    /* ... ann's only hers, though it comes with the same id */
    tok = mint("cust-ann", "customer", 600);
    snprintf(target, sizeof(target), "/events?access_token=%s", tok);
    free(tok);
    fd = open_stream_with(svc.port, "127.0.0.1", target, last, &status);
    assert_true(fd >= 0);
    assert_true(timeline_row(&db, "o-ann", "e-ann2", "anns next") > 0);
    if (!stream_until(fd, "anns next", 8000, review_got, sizeof(review_got)))
        fail_msg("ann's resumed stream never got her next row: %s", review_got);
    if (!strstr(review_got, "anns row"))
        fail_msg("ann's resumed stream did not get her row past the id: %s", review_got);
    if (strstr(review_got, "bens row") || strstr(review_got, "cust-ben"))
        fail_msg("ann's stream got ben's row: %s", review_got);
    close(fd);
    stop_service(&svc);
    testdb_drop(&db);
}

/* The controls for the two above: without the restart, both late rows come. */
static void test_review_control_without_a_restart_both_late_rows_come(void **state)
{
    struct testdb db;
    struct service svc = {0};
    PGconn *tx;
    PGresult *r;
    long status;
    int fd;

    (void)state;
    testdb_create(&db, "it_http_rv_ctl", "order");
    start_service(&svc, &db, "rvctl", NULL);
    for (int variant = 0; variant < 2; variant++) {
        fd = open_stream(svc.port, "127.0.0.1", &status);
        assert_true(fd >= 0);
        tx = PQconnectdb(db.owner_url);
        assert_int_equal(PQstatus(tx), CONNECTION_OK);
        r = PQexec(tx, variant == 0
                           ? "BEGIN; INSERT INTO timeline (order_id, event_id, event_type,"
                             " service, occurred_at, summary) VALUES ('o-late0', 'e-late0',"
                             " 'OrderPlaced', 'order-service', now(), 'late row 0')"
                           : "BEGIN; INSERT INTO timeline (order_id, event_id, event_type,"
                             " service, occurred_at, summary) VALUES ('o-late1', 'e-late1',"
                             " 'OrderPlaced', 'order-service', now(), 'late row 1')");
        assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
        PQclear(r);
        if (variant == 0)
            assert_int_equal(timeline_rows(&db, "c", "'filler'", 300), 300);
        else
            sleep(11);
        assert_true(
            testdb_scalar(&db, variant == 0
                                   ? "WITH r AS (INSERT INTO timeline (order_id, event_id,"
                                     " event_type, service, occurred_at, summary) VALUES"
                                     " ('o-n0', 'e-n0', 'OrderPlaced', 'order-service',"
                                     " now(), 'next row 0') RETURNING seq) SELECT seq FROM r"
                                   : "WITH r AS (INSERT INTO timeline (order_id, event_id,"
                                     " event_type, service, occurred_at, summary) VALUES"
                                     " ('o-n1', 'e-n1', 'OrderPlaced', 'order-service',"
                                     " now(), 'next row 1') RETURNING seq) SELECT seq FROM r") > 0);
        if (!stream_until(fd, variant == 0 ? "next row 0" : "next row 1", 10000, review_got,
                          sizeof(review_got)))
            fail_msg("the committed row never reached the stream");
        sleep(2); /* as long as the restart took above */
        close_hole(tx);
        if (!stream_until(fd, variant == 0 ? "late row 0" : "late row 1", 8000, review_got,
                          sizeof(review_got)))
            fail_msg("control %d: the late row did not come without a restart either", variant);
        close(fd);
    }
    stop_service(&svc);
    testdb_drop(&db);
}

/*
 * (Before this change too.) Last-Event-ID across replicas (docs/DEPLOYING.md: "works across
 * replicas"): each replica's ring has the rows in the order ITS polls saw them. A page on
 * replica A saw row L, a hole S below it then committed; replica B polled S and L in one
 * look (sorted: S before L). The page reconnects to B with L: B resumes after L's position
 * in its own ring, so S (before L there) never comes, and no resync. (B's pause only pins
 * down the timing: at load the two replicas' 200 ms polls interleave so at random.)
 */
static void test_review_last_event_id_on_another_replica_loses_a_late_row(void **state)
{
    struct testdb db;
    struct service a = {0}, b = {0};
    const char *pause[] = {"EVENTS_IDLE_PAUSE=1s", NULL};
    char id[64];
    PGconn *tx;
    long status;
    int fd, watcher;

    (void)state;
    testdb_create(&db, "it_http_rv_repl", "order");
    start_service(&a, &db, "rvreplA", NULL);
    start_service(&b, &db, "rvreplB", pause);
    usleep(2500 * 1000); /* B: no stream for 1 s, its feed pauses */
    fd = open_stream(a.port, "127.0.0.1", &status);
    assert_true(fd >= 0);
    tx = open_hole(&db);
    if (!stream_until(fd, "next row", 10000, review_got, sizeof(review_got)))
        fail_msg("the committed row never reached the stream on A");
    last_id_with(review_got, "next row", id, sizeof(id));
    assert_true(id[0]);
    close(fd); /* the page's connection drops before the late row */
    close_hole(tx);
    /* another page opens on B: its feed looks again and gets both rows in one poll */
    watcher = open_stream(b.port, "127.0.0.1", &status);
    assert_true(watcher >= 0);
    if (!stream_until(watcher, "next row", 10000, review_got, sizeof(review_got)))
        fail_msg("B's feed did not catch up");
    /* the page reconnects, to B */
    if (!resumed_gets_late_row_or_resync(&b, id))
        fail_msg("a page that saw row %s on replica A and reconnected to replica B never got "
                 "the row committed into the hole below it, and no resync",
                 id);
    close(watcher);
    stop_service(&a);
    stop_service(&b);
    testdb_drop(&db);
}

/* --- review11: rows the low-water-mark feed still loses ----------------------------------- */

/* A stream resuming on svc with Last-Event-ID id: 1 when needle or a resync arrives within
 * timeout_ms (what came is in review_got). */
static int resumed_gets_or_resync(const struct service *svc, const char *id, const char *needle,
                                  int timeout_ms)
{
    char req[256];
    int fd = tcp_connect(svc->port, "127.0.0.1");
    assert_true(fd >= 0);
    snprintf(req, sizeof(req),
             "GET /events HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nLast-Event-ID: %s\r\n\r\n", svc->port,
             id);
    assert_int_equal(send_all(fd, req), 0);
    stream_until(fd, needle, timeout_ms, review_got, sizeof(review_got));
    close(fd);
    return strstr(review_got, needle) != NULL || strstr(review_got, "event: resync") != NULL;
}

static void exec_ok_on(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(c));
    PQclear(r);
}

/*
 * The hole of a transaction open when the feed paused is waited for after the pause (the
 * pause does not count against its 10 s). But when more than CATCHUP_ROWS came during the
 * pause, resume() jumps and drops EVERY hole (ngaps = 0), also those below the old
 * high-water mark still within their grace. The page gets a resync and reloads; the open
 * transaction commits a second later, after the reload: its row never comes, and no second
 * resync. Without the 2,100 rows (test_events_feed_resume_still_waits_for_holes) it comes.
 */
static void test_review11_jump_drops_holes_below_the_old_high_water(void **state)
{
    struct testdb db;
    struct service svc = {0};
    const char *extra[] = {"EVENTS_IDLE_PAUSE=1s", NULL};
    char got[16384], id[64], last[128];
    long long seen;
    PGconn *tx;
    long status;
    int fd;

    (void)state;
    testdb_create(&db, "it_http_rv11_jump", "order");
    start_service(&svc, &db, "rv11jump", extra);
    fd = open_stream(svc.port, "127.0.0.1", &status);
    assert_true(fd >= 0);
    tx = open_hole(&db);
    if (!stream_until(fd, "next row", 10000, got, sizeof(got)))
        fail_msg("the committed row never reached the stream: %s", got);
    seen = now_ms();
    last_id_with(got, "next row", id, sizeof(id));
    assert_true(id[0]);
    close(fd);
    if (!feed_paused(&db))
        fail_msg("the feed did not pause");
    insert_more_than_a_catch_up(&db);

    /* the page comes back with its id: a resync (it reloads), then the transaction commits */
    snprintf(last, sizeof(last), "Last-Event-ID: %s\r\n", id);
    fd = open_stream_with(svc.port, "127.0.0.1", "/events", last, &status);
    assert_true(fd >= 0);
    if (!stream_until(fd, "event: resync", 10000, got, sizeof(got)))
        fail_msg("no resync after 2,100 rows during the pause: %s", got);
    usleep(1000 * 1000); /* the page has reloaded */
    close_hole(tx);
    if (now_ms() - seen > 9000)
        fail_msg("too slow: the hole's 10 s were over (even counting the pause)");
    if (!stream_until(fd, "late row", 8000, got, sizeof(got)) && !strstr(got, "event: resync"))
        fail_msg("a hole below the old high-water mark, within its 10 s, committed after the "
                 "jump's resync (after the page reloaded): its row never came, no second "
                 "resync: %s",
                 got);
    close(fd);
    stop_service(&svc);
    testdb_drop(&db);
}

/*
 * A jump in seq of more than MAX_GAPS (1024) between two looks: poll_once only adds the top
 * 1024 seqs below the new row as holes; the ones below are given up at once, with no resync
 * and the ids moving past them. A transaction that inserted 1,100 timeline rows (a batch,
 * a backfill; or 1,100 transactions in flight) commits after a one-row transaction that
 * took the next seq: its first 76 rows never come, to any stream.
 */
static void test_review11_seq_jump_past_max_gaps_loses_rows(void **state)
{
    struct testdb db;
    struct service svc = {0};
    PGconn *tx;
    long status;
    int fd;

    (void)state;
    testdb_create(&db, "it_http_rv11_gaps", "order");
    start_service(&svc, &db, "rv11gaps", NULL);
    fd = open_stream(svc.port, "127.0.0.1", &status);
    assert_true(fd >= 0);
    tx = PQconnectdb(db.owner_url);
    assert_int_equal(PQstatus(tx), CONNECTION_OK);
    exec_ok_on(tx, "BEGIN; INSERT INTO timeline (order_id, event_id, event_type, service,"
                   " occurred_at, summary) SELECT 'o-lb', 'e-lb' || i, 'OrderPlaced',"
                   " 'order-service', now(), 'lb#' || i || '#' FROM generate_series(1, 1100) i");
    assert_true(timeline_row(&db, "o-next", "e-next", "next row") > 0);
    if (!stream_until(fd, "next row", 10000, review_got, sizeof(review_got)))
        fail_msg("the committed row never reached the stream");
    usleep(500 * 1000);
    exec_ok_on(tx, "COMMIT");
    PQfinish(tx);
    stream_until(fd, "lb#1100#", 10000, review_got, sizeof(review_got));
    usleep(1000 * 1000);
    {
        /* what else came */
        size_t len = strlen(review_got);
        struct pollfd p = {.fd = fd, .events = POLLIN};
        while (len + 1 < sizeof(review_got) && poll(&p, 1, 500) > 0) {
            ssize_t n = recv(fd, review_got + len, sizeof(review_got) - 1 - len, 0);
            if (n <= 0)
                break;
            len += (size_t)n;
            review_got[len] = '\0';
        }
    }
    if (!strstr(review_got, "lb#1100#"))
        fail_msg("the batch's last row never came");
    if (!strstr(review_got, "lb#1#") && !strstr(review_got, "event: resync"))
        fail_msg("a batch of 1,100 rows committed after the row past it: its first rows "
                 "(more than 1,024 seqs below the row past it) never came, and no resync");
    close(fd);
    stop_service(&svc);
    testdb_drop(&db);
}

/*
 * A pause no longer counts against a hole's 10 s, but a database outage of the feed does:
 * the feed's connection is cut and it cannot reconnect for 12 s (connection limit, a
 * network partition between this replica and the database while other replicas write);
 * the hole's row commits 2 s after it was seen, while the feed cannot look; the first look
 * after the outage expires the hole (gaps_expire runs before the query) instead of
 * fetching it. Lost, no resync; the feed never looked at the hole for more than 2 s.
 */
static void test_review11_outage_counts_against_a_hole(void **state)
{
    struct testdb db;
    struct service svc = {0};
    char sql[256];
    long long seen;
    PGconn *tx, *admin;
    long status;
    int fd, late;

    (void)state;
    testdb_create(&db, "it_http_rv11_out", "order");
    start_service(&svc, &db, "rv11out", NULL);
    fd = open_stream(svc.port, "127.0.0.1", &status);
    assert_true(fd >= 0);
    tx = open_hole(&db);
    if (!stream_until(fd, "next row", 10000, review_got, sizeof(review_got)))
        fail_msg("the committed row never reached the stream");
    seen = now_ms();
    admin = PQconnectdb(db.owner_url);
    assert_int_equal(PQstatus(admin), CONNECTION_OK);
    snprintf(sql, sizeof(sql), "ALTER DATABASE %s CONNECTION LIMIT 0", db.name);
    exec_ok_on(admin, sql);
    exec_ok_on(admin, "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
                      " WHERE datname = current_database() AND query LIKE 'SELECT t.seq%'"
                      " AND pid <> pg_backend_pid()");
    usleep(2000 * 1000);
    close_hole(tx); /* 2 s after the hole was seen */
    while (now_ms() - seen < 12000)
        usleep(100 * 1000);
    snprintf(sql, sizeof(sql), "ALTER DATABASE %s CONNECTION LIMIT -1", db.name);
    exec_ok_on(admin, sql);
    PQfinish(admin);
    /* the feed is back (its reconnect backs off up to 5 s): a row committed now comes */
    assert_true(testdb_scalar(&db,
                              "WITH r AS (INSERT INTO timeline (order_id, event_id,"
                              " event_type, service, occurred_at, summary) VALUES"
                              " ('o-after', 'e-after', 'OrderPlaced', 'order-service',"
                              " now(), 'after the outage') RETURNING seq) SELECT seq FROM r") > 0);
    if (!stream_until(fd, "after the outage", 15000, review_got, sizeof(review_got)))
        fail_msg("the feed did not come back after the outage");
    late = strstr(review_got, "late row") != NULL || strstr(review_got, "event: resync") != NULL;
    if (!late && !stream_until(fd, "late row", 2000, review_got, sizeof(review_got)) &&
        !strstr(review_got, "event: resync"))
        fail_msg("a row committed 2 s after its hole was seen, while the feed could not reach "
                 "the database, never came after it reconnected (a row after it did), and no "
                 "resync");
    close(fd);
    stop_service(&svc);
    testdb_drop(&db);
}

/*
 * The id is trusted as a point of THIS timeline's seq history. A page left open while the
 * database is made again (a stack's data removed and `up` again, a restore from an older
 * backup) comes back with an id from the old timeline, larger than any seq of the new one:
 * complete_above is small, so no resync, and the replay skips every ring entry with a seq
 * up to the old id. The rows of the new timeline committed before it reconnected never
 * come. (c3e661b: the id was not found in the ring, a resync.)
 */
static void test_review11_id_from_a_recreated_timeline(void **state)
{
    struct testdb db;
    struct service svc = {0};
    char id[64];
    long status;
    int fd;

    (void)state;
    testdb_create(&db, "it_http_rv11_reset", "order");
    start_service(&svc, &db, "rv11reset1", NULL);
    fd = open_stream(svc.port, "127.0.0.1", &status);
    assert_true(fd >= 0);
    assert_int_equal(timeline_rows(&db, "old", "'old row ' || i", 50), 50);
    if (!stream_until(fd, "old row 50", 10000, review_got, sizeof(review_got)))
        fail_msg("the old rows never reached the stream");
    last_id_with(review_got, "old row 50", id, sizeof(id));
    assert_true(id[0]);
    close(fd);
    stop_service(&svc);

    /* the timeline starts again from seq 1; the service starts; two rows come */
    assert_int_equal(testdb_scalar(&db, "TRUNCATE timeline RESTART IDENTITY; SELECT 1"), 1);
    start_service(&svc, &db, "rv11reset2", NULL);
    assert_int_equal(timeline_rows(&db, "new", "'new row ' || i", 2), 2);
    usleep(1000 * 1000); /* the feed has them in its ring */
    if (!resumed_gets_or_resync(&svc, id, "new row 1", 4000))
        fail_msg("a page coming back with id %s of a timeline made again got none of the new "
                 "timeline's rows, and no resync",
                 id);
    stop_service(&svc);
    testdb_drop(&db);
}

struct writer {
    const struct testdb *db;
    volatile int stop;
    int rows;
};

/* One timeline row every 10 ms, as a busy stack writes them. */
static void *write_rows(void *arg)
{
    struct writer *w = arg;
    PGconn *c = PQconnectdb(w->db->owner_url);
    char sql[256];
    while (!w->stop && PQstatus(c) == CONNECTION_OK) {
        PGresult *r;
        snprintf(sql, sizeof(sql),
                 "INSERT INTO timeline (order_id, event_id, event_type, service, occurred_at,"
                 " summary) VALUES ('o-w', 'e-w%d', 'OrderPlaced', 'order-service', now(),"
                 " 'busy')",
                 w->rows++);
        r = PQexec(c, sql);
        PQclear(r);
        usleep(10 * 1000);
    }
    PQfinish(c);
    return NULL;
}

/*
 * With the ring full (4,096 messages) a resuming stream starts at its OLDEST entry
 * (head - RING_SIZE) and skips what it has seen only at its first sub_fill, after the
 * response's head and first bytes went out. A poll that appends one row in between
 * overwrites that oldest entry: sub_fill takes the stream for "too slow a reader" and sends
 * a resync (the page reloads) though its id is the newest and nothing was missed.
 */
static void test_review11_full_ring_resume_resyncs_for_nothing(void **state)
{
    struct testdb db;
    struct service svc = {0};
    struct writer w = {0};
    pthread_t t;
    char live[65536], id[64];
    int resyncs = 0, tries = 0;
    long status;
    int fd;

    (void)state;
    testdb_create(&db, "it_http_rv11_ring", "order");
    start_service(&svc, &db, "rv11ring", NULL);
    fd = open_stream(svc.port, "127.0.0.1", &status);
    assert_true(fd >= 0);
    assert_int_equal(timeline_rows(&db, "f", "'fill ' || i || '.'", 4200), 4200);
    if (!stream_until(fd, "fill 4200.", 20000, review_got, sizeof(review_got)))
        fail_msg("the 4,200 rows never came");
    w.db = &db;
    assert_int_equal(pthread_create(&t, NULL, write_rows, &w), 0);
    /* ~4% of them get one: 200 tries */
    for (long long end = now_ms() + 60000; now_ms() < end && tries < 200; tries++) {
        /* the newest id the live stream has */
        stream_until(fd, "\"busy\"", 1000, live, sizeof(live));
        last_id_with(live, "\"busy\"", id, sizeof(id));
        if (!id[0])
            continue;
        {
            char req[256];
            int r = tcp_connect(svc.port, "127.0.0.1");
            assert_true(r >= 0);
            snprintf(req, sizeof(req),
                     "GET /events HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nLast-Event-ID: %s\r\n\r\n",
                     svc.port, id);
            assert_int_equal(send_all(r, req), 0);
            stream_until(r, "event: resync", 150, review_got, sizeof(review_got));
            if (strstr(review_got, "event: resync"))
                resyncs++;
            close(r);
        }
    }
    w.stop = 1;
    pthread_join(t, NULL);
    close(fd);
    stop_service(&svc);
    testdb_drop(&db);
    fprintf(stderr, "%d of %d streams resuming with the newest id got a resync\n", resyncs, tries);
    if (resyncs)
        fail_msg("%d of %d streams resuming with the newest id (nothing missed) got a resync",
                 resyncs, tries);
}

/*
 * A seq no row will ever have (a rolled-back transaction's; and on the stack every cancelled
 * order burns one: order-service reads its own OrderCancelled back and order_timeline_add's
 * INSERT ... ON CONFLICT DO NOTHING takes a seq for nothing) holds every id after it down
 * for GAP_GRACE_MS, though no transaction that could fill it is running any more. A stream
 * that resumes with the id of the last row it saw gets the last 10 s of rows again: on the
 * test stack at 20 orders/s with 10% declined cards, ids lag their row's seq by ~1,100 (a
 * resume sends ~1 MB again); from ~65 orders/s the lag passes the 4,096-message ring and
 * EVERY resume is a resync. Here: one rolled-back row, 50 rows, a second later one more row
 * whose id the stream resumes with: it gets the 50 rows again.
 */
static void test_review11_burnt_seq_holds_ids_down(void **state)
{
    struct testdb db;
    struct service svc = {0};
    char id[64];
    PGconn *tx;
    long status;
    int fd, again = 0;

    (void)state;
    testdb_create(&db, "it_http_rv11_burnt", "order");
    start_service(&svc, &db, "rv11burnt", NULL);
    fd = open_stream(svc.port, "127.0.0.1", &status);
    assert_true(fd >= 0);
    tx = PQconnectdb(db.owner_url);
    assert_int_equal(PQstatus(tx), CONNECTION_OK);
    exec_ok_on(tx, "BEGIN; INSERT INTO timeline (order_id, event_id, event_type, service,"
                   " occurred_at, summary) VALUES ('o-rb', 'e-rb', 'OrderPlaced',"
                   " 'order-service', now(), 'rolled back'); ROLLBACK");
    PQfinish(tx);
    assert_int_equal(timeline_rows(&db, "f", "'filler ' || i || '.'", 50), 50);
    if (!stream_until(fd, "filler 50.", 10000, review_got, sizeof(review_got)))
        fail_msg("the rows never came");
    usleep(1000 * 1000); /* nothing is in flight any more */
    assert_true(timeline_row(&db, "o-next", "e-next", "next row") > 0);
    if (!stream_until(fd, "next row", 10000, review_got, sizeof(review_got)))
        fail_msg("the last row never came");
    last_id_with(review_got, "next row", id, sizeof(id));
    assert_true(id[0]);
    close(fd);
    fprintf(stderr, "the last row's id: %s (seq %lld)\n", id,
            testdb_scalar(&db, "SELECT seq FROM timeline WHERE event_id = 'e-next'"));
    resumed_gets_or_resync(&svc, id, "no such row", 1500);
    for (const char *at = strstr(review_got, "filler "); at; at = strstr(at + 1, "filler "))
        again++;
    if (again)
        fail_msg("a stream resuming with the id of the last row it saw got %d rows again (a "
                 "rolled-back seq, no transaction in flight, held its id down)",
                 again);
    stop_service(&svc);
    testdb_drop(&db);
}

/* --- review12: holes the snapshot marks call final too early ------------------------------- */

/*
 * A snapshot's xmax is latestCompletedXid + 1, not the next xid to be assigned: a running
 * transaction whose xid is above every completed one is not in the snapshot at all (it is
 * ">= xmax"), and xmin, the least running xid BELOW xmax, skips it. So the mark noted the look
 * after a hole was seen is not above the xid of the transaction that holds the hole when that
 * transaction got its xid after the one that committed the row above the hole: B locks its
 * order (xid b), A locks its order (xid a > b), A inserts its timeline row (seq s), B inserts
 * (seq s+1) and commits. latestCompletedXid is b, the next look's snapshot has xmax = b + 1 = a
 * and, A skipped, xmin = xmax: the hole is marked and final in that same look, 200 ms after
 * B's commit, with A still open. A commits a second later: its row never comes (to any
 * stream: the ids went past it). With the old 10 s timer it came. (Two saga handlers for two
 * orders, each locking its order first, the later one slower to commit.)
 */
static void test_review12_newer_xid_holding_an_older_seq_is_lost(void **state)
{
    struct testdb db;
    struct service svc = {0};
    PGconn *a, *b;
    long status;
    int fd;

    (void)state;
    testdb_create(&db, "it_http_rv12_xmax", "order");
    start_service(&svc, &db, "rv12xmax", NULL);
    fd = open_stream(svc.port, "127.0.0.1", &status);
    assert_true(fd >= 0);
    usleep(500 * 1000); /* the feed has looked */
    a = PQconnectdb(db.owner_url);
    b = PQconnectdb(db.owner_url);
    assert_int_equal(PQstatus(a), CONNECTION_OK);
    assert_int_equal(PQstatus(b), CONNECTION_OK);
    exec_ok_on(b, "BEGIN; SELECT pg_current_xact_id()"); /* B's xid first (lock_order) */
    exec_ok_on(a, "BEGIN; SELECT pg_current_xact_id()"); /* then A's */
    exec_ok_on(a, "INSERT INTO timeline (order_id, event_id, event_type, service, occurred_at,"
                  " summary) VALUES ('o-late', 'e-late', 'OrderPlaced', 'order-service', now(),"
                  " 'late row')");
    exec_ok_on(b, "INSERT INTO timeline (order_id, event_id, event_type, service, occurred_at,"
                  " summary) VALUES ('o-next', 'e-next', 'OrderPlaced', 'order-service', now(),"
                  " 'next row')");
    exec_ok_on(b, "COMMIT");
    PQfinish(b);
    if (!stream_until(fd, "next row", 10000, review_got, sizeof(review_got)))
        fail_msg("the committed row never came");
    usleep(1500 * 1000); /* A is slower: a few looks go by */
    exec_ok_on(a, "COMMIT");
    PQfinish(a);
    if (!stream_until(fd, "late row", 5000, review_got, sizeof(review_got)) &&
        !strstr(review_got, "event: resync"))
        fail_msg("a transaction whose xid came after the committed row's (but whose seq came "
                 "before) committed 1.5 s late: its hole was given up as final (snapshot xmin "
                 "reached xmax, which did not cover its xid), its row never came: %s",
                 review_got);
    close(fd);
    stop_service(&svc);
    testdb_drop(&db);
}

/*
 * The finality argument needs the transaction holding a hole to have its xid when the mark
 * is noted. A transaction whose first write is INSERT ... ON CONFLICT DO NOTHING takes its
 * seq (the DEFAULT) and then, in the ON CONFLICT pre-check, waits for another transaction
 * that inserted the same event_id, with no xid yet; it gets one only when that other
 * transaction ends. Here: C inserts event e-dup and stays open; A (nothing written before)
 * inserts e-dup ON CONFLICT DO NOTHING: seq s, waiting for C; B commits the row above.
 * C rolls back: A's insert goes on (its xid now, above any mark) and commits 1.5 s later.
 * Its row never comes: the hole was final once C had ended. (order-service's own writers
 * lock or write before they take a seq; another writer, a script, a later path may not.)
 */
static void test_review12_seq_taken_before_the_xid_is_lost(void **state)
{
    struct testdb db;
    struct service svc = {0};
    PGconn *a, *c;
    PGresult *r;
    long status;
    int fd;

    (void)state;
    testdb_create(&db, "it_http_rv12_noxid", "order");
    start_service(&svc, &db, "rv12noxid", NULL);
    fd = open_stream(svc.port, "127.0.0.1", &status);
    assert_true(fd >= 0);
    usleep(500 * 1000);
    a = PQconnectdb(db.owner_url);
    c = PQconnectdb(db.owner_url);
    assert_int_equal(PQstatus(a), CONNECTION_OK);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    exec_ok_on(c, "BEGIN; INSERT INTO timeline (order_id, event_id, event_type, service,"
                  " occurred_at, summary) VALUES ('o-dup', 'e-dup', 'OrderPlaced',"
                  " 'order-service', now(), 'first try')");
    exec_ok_on(a, "BEGIN");
    assert_int_equal(PQsendQuery(a, "INSERT INTO timeline (order_id, event_id, event_type,"
                                    " service, occurred_at, summary) VALUES ('o-dup', 'e-dup',"
                                    " 'OrderPlaced', 'order-service', now(), 'late row')"
                                    " ON CONFLICT (event_id) DO NOTHING"),
                     1);
    usleep(300 * 1000); /* A has its seq and waits for C */
    assert_true(timeline_row(&db, "o-next", "e-next", "next row") > 0);
    if (!stream_until(fd, "next row", 10000, review_got, sizeof(review_got)))
        fail_msg("the committed row never came");
    usleep(1000 * 1000); /* the holes are marked */
    exec_ok_on(c, "ROLLBACK");
    PQfinish(c);
    while ((r = PQgetResult(a)) != NULL) { /* A's insert goes on */
        assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
        PQclear(r);
    }
    usleep(1500 * 1000);
    exec_ok_on(a, "COMMIT");
    PQfinish(a);
    if (!stream_until(fd, "late row", 5000, review_got, sizeof(review_got)) &&
        !strstr(review_got, "event: resync"))
        fail_msg("a transaction that took its seq before it had an xid (waiting in the ON "
                 "CONFLICT check) committed 1.5 s after the wait: its hole had been given up "
                 "as final, its row never came: %s",
                 review_got);
    close(fd);
    stop_service(&svc);
    testdb_drop(&db);
}

/*
 * The cost of the cap: one transaction with an xid left open anywhere on the server (an
 * idle-in-transaction session, a long migration, an orphaned prepared transaction; in any
 * database) keeps every snapshot's xmin below every mark, so a hole (a rolled-back seq, an
 * ON CONFLICT DO NOTHING) holds the ids down until GAP_GRACE_MS gives it up: 10 s at most
 * (review12 found 30 s; the cap went back to the 10 s the feed always had).
 */
static void test_review12_open_transaction_elsewhere_holds_ids_down_10_s_at_most(void **state)
{
    struct testdb db, other;
    struct service svc = {0};
    char id[64];
    PGconn *tx, *idle;
    long status;
    int fd, again = 0;

    (void)state;
    testdb_create(&db, "it_http_rv12_idle", "order");
    testdb_create(&other, "it_http_rv12_other", "order");
    start_service(&svc, &db, "rv12idle", NULL);
    idle = PQconnectdb(other.owner_url); /* another database on the same server */
    assert_int_equal(PQstatus(idle), CONNECTION_OK);
    exec_ok_on(idle, "BEGIN; SELECT pg_current_xact_id()");
    fd = open_stream(svc.port, "127.0.0.1", &status);
    assert_true(fd >= 0);
    tx = PQconnectdb(db.owner_url);
    assert_int_equal(PQstatus(tx), CONNECTION_OK);
    exec_ok_on(tx, "BEGIN; INSERT INTO timeline (order_id, event_id, event_type, service,"
                   " occurred_at, summary) VALUES ('o-rb', 'e-rb', 'OrderPlaced',"
                   " 'order-service', now(), 'rolled back'); ROLLBACK");
    PQfinish(tx);
    assert_int_equal(timeline_rows(&db, "f", "'filler ' || i || '.'", 50), 50);
    if (!stream_until(fd, "filler 50.", 10000, review_got, sizeof(review_got)))
        fail_msg("the rows never came");
    /* the open transaction keeps the hole from being final: it is given up after the
     * feed's 10 s (GAP_GRACE_MS), and the ids held below it only that long */
    usleep(11500 * 1000);
    assert_true(timeline_row(&db, "o-next", "e-next", "next row") > 0);
    if (!stream_until(fd, "next row", 10000, review_got, sizeof(review_got)))
        fail_msg("the last row never came");
    last_id_with(review_got, "next row", id, sizeof(id));
    assert_true(id[0]);
    close(fd);
    resumed_gets_or_resync(&svc, id, "no such row", 1500);
    for (const char *at = strstr(review_got, "filler "); at; at = strstr(at + 1, "filler "))
        again++;
    exec_ok_on(idle, "ROLLBACK");
    PQfinish(idle);
    stop_service(&svc);
    testdb_drop(&db);
    testdb_drop(&other);
    if (again)
        fail_msg("with one transaction open in another database, a stream resuming with the "
                 "id of the last row it saw, 11.5 s after a rolled-back seq, got %d rows again "
                 "(the hole should be given up after 10 s)",
                 again);
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
        cmocka_unit_test(test_slow_handler_gets_its_whole_answer),
        cmocka_unit_test(test_forwarded_for_from_untrusted_peer_is_ignored),
        cmocka_unit_test(test_trusted_proxy_gives_each_client_its_own_cap),
        cmocka_unit_test(test_one_principal_is_capped_over_many_addresses),
        cmocka_unit_test(test_stream_ends_when_its_token_expires),
        cmocka_unit_test(test_internal_listener_answers_under_flood),
        cmocka_unit_test(test_flood_within_a_low_descriptor_limit),
        cmocka_unit_test(test_one_peer_cannot_starve_the_internal_listener),
        cmocka_unit_test(test_slow_body_after_an_early_answer_is_cut),
        cmocka_unit_test(test_one_trusted_proxy_peer_cannot_fill_the_port),
        cmocka_unit_test(test_slow_reader_is_let_go),
        cmocka_unit_test(test_events_feed_pauses_while_nobody_watches),
        cmocka_unit_test(test_events_feed_resume_still_waits_for_holes),
        cmocka_unit_test(test_events_feed_jump_still_waits_for_open_transactions),
        cmocka_unit_test(test_events_feed_start_waits_for_open_transactions),
        cmocka_unit_test(test_events_last_event_id_across_a_restart_gets_a_late_row),
        cmocka_unit_test(test_review_restart_late_row_below_the_backlog),
        cmocka_unit_test(test_review_restart_late_row_of_a_long_transaction),
        cmocka_unit_test(test_review_pause_longer_than_the_grace_loses_a_hole),
        cmocka_unit_test(test_events_resume_across_a_restart_keeps_customers_apart),
        cmocka_unit_test(test_review_control_without_a_restart_both_late_rows_come),
        cmocka_unit_test(test_review_last_event_id_on_another_replica_loses_a_late_row),
        cmocka_unit_test(test_review11_jump_drops_holes_below_the_old_high_water),
        cmocka_unit_test(test_review11_seq_jump_past_max_gaps_loses_rows),
        cmocka_unit_test(test_review11_outage_counts_against_a_hole),
        cmocka_unit_test(test_review11_id_from_a_recreated_timeline),
        cmocka_unit_test(test_review11_full_ring_resume_resyncs_for_nothing),
        cmocka_unit_test(test_review11_burnt_seq_holds_ids_down),
        cmocka_unit_test(test_review12_newer_xid_holding_an_older_seq_is_lost),
        cmocka_unit_test(test_review12_seq_taken_before_the_xid_is_lost),
        cmocka_unit_test(test_review12_open_transaction_elsewhere_holds_ids_down_10_s_at_most),
    };
    struct rlimit nofile;

    /* The floods hold hundreds of sockets. */
    if (getrlimit(RLIMIT_NOFILE, &nofile) == 0 && nofile.rlim_cur < nofile.rlim_max) {
        nofile.rlim_cur = nofile.rlim_max;
        setrlimit(RLIMIT_NOFILE, &nofile);
    }
    if (getenv("IT_ONLY")) /* a glob: IT_ONLY='*principal*' */
        cmocka_set_test_filter(getenv("IT_ONLY"));
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return cmocka_run_group_tests(tests, setup, teardown);
}
