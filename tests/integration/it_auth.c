/*
 * Who may do what on the order API (docs/API.md, "Authentication"), each test an
 * attack from issue 15 against the test stack's order-service:
 *
 *   - anonymous place, read, list, cancel and /events stream: 401;
 *   - another customer's order: 404 to read and to cancel (no existence leak), absent
 *     from their list and from their event stream;
 *   - a body customer_id other than the token's subject: 403; none: the subject's;
 *   - one customer's Idempotency-Key does not squat another's: two orders;
 *   - the operator sees every order;
 *   - expired, wrongly signed, alg=none and malformed tokens: 401.
 *
 * Tokens are minted with the stack's HS256 secret (STACK_AUTH_SECRET_FILE).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <curl/curl.h>

#include "../e2e/e2e.h"
#include "saga/auth.h"
#include "stack_env.h"

static unsigned char *secret;
static size_t secret_len;

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* A token signed with the stack's secret. */
static char *mint(const char *sub, const char *role, long ttl_s)
{
    char err[256];
    char *t = saga_auth_mint_hs256(secret, secret_len, sub, role, ttl_s, err, sizeof(err));
    if (!t)
        fail_msg("mint: %s", err);
    return t;
}

/* "Authorization: Bearer <token>" (static per slot). */
static const char *bearer(int slot, const char *token)
{
    static char h[4][4200];
    snprintf(h[slot], sizeof(h[slot]), "Authorization: Bearer %s", token);
    return h[slot];
}

/* method path as the holder of token (NULL: no Authorization header at all). */
static void call(struct api_reply *r, const char *method, const char *path, const char *token,
                 const char *body, const char *key)
{
    char keyh[128];
    const char *h[3] = {token ? bearer(0, token) : "Authorization:", NULL, NULL};
    if (key) {
        snprintf(keyh, sizeof(keyh), "Idempotency-Key: %s", key);
        h[1] = keyh;
    }
    api(r, method, path, body ? "application/json" : NULL, body, body ? strlen(body) : 0, h);
}

/* POST /orders as token for customer; returns the order id (202 asserted). */
static void place_as(const char *token, const char *customer, const char *key, char id[37])
{
    struct api_reply r;
    char *b = order_body(customer, "tok_visa", "NL", "sku-book:1");
    call(&r, "POST", "/orders", token, b, key);
    free(b);
    if (r.status != 202)
        fail_msg("POST /orders as %s answered %ld", customer, r.status);
    snprintf(id, 37, "%s", jstr(r.json, "order_id"));
    api_reply_free(&r);
}

static int list_has(json_t *list, const char *order_id, const char *only_customer)
{
    size_t i;
    json_t *o;
    int found = 0;
    json_array_foreach(json_object_get(list, "orders"), i, o)
    {
        if (only_customer && strcmp(jstr(o, "customer_id"), only_customer) != 0)
            fail_msg("the list of %s holds order %s of %s", only_customer, jstr(o, "order_id"),
                     jstr(o, "customer_id"));
        if (strcmp(jstr(o, "order_id"), order_id) == 0)
            found = 1;
    }
    return found;
}

static void test_anonymous_gets_401(void **state)
{
    struct api_reply r;
    char *alice = mint("cust-alice", "customer", 600), id[37], path[128];
    char *b = order_body("cust-alice", "tok_visa", "NL", "sku-book:1");
    (void)state;

    place_as(alice, "cust-alice", NULL, id);
    call(&r, "POST", "/orders", NULL, b, NULL);
    assert_int_equal(r.status, 401);
    api_reply_free(&r);
    snprintf(path, sizeof(path), "/orders/%s", id);
    call(&r, "GET", path, NULL, NULL, NULL);
    assert_int_equal(r.status, 401);
    api_reply_free(&r);
    call(&r, "GET", "/orders?status=PENDING&limit=100", NULL, NULL, NULL);
    assert_int_equal(r.status, 401);
    api_reply_free(&r);
    snprintf(path, sizeof(path), "/orders/%s/cancel", id);
    call(&r, "POST", path, NULL, NULL, NULL);
    assert_int_equal(r.status, 401);
    api_reply_free(&r);
    call(&r, "GET", "/events", NULL, NULL, NULL);
    assert_int_equal(r.status, 401);
    api_reply_free(&r);
    free(b);
    free(alice);
}

static void test_other_customers_orders_are_404_and_unlisted(void **state)
{
    struct api_reply r;
    char *alice = mint("cust-alice", "customer", 600), *bob = mint("cust-bob", "customer", 600);
    char id[37], path[128];
    json_t *o;
    (void)state;

    place_as(alice, "cust-alice", NULL, id);
    snprintf(path, sizeof(path), "/orders/%s", id);
    call(&r, "GET", path, bob, NULL, NULL);
    assert_int_equal(r.status, 404);
    api_reply_free(&r);
    snprintf(path, sizeof(path), "/orders/%s/cancel", id);
    call(&r, "POST", path, bob, NULL, NULL);
    assert_int_equal(r.status, 404);
    api_reply_free(&r);
    call(&r, "GET", "/orders?limit=100", bob, NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_false(list_has(r.json, id, "cust-bob"));
    api_reply_free(&r);
    call(&r, "GET", "/orders?limit=100", alice, NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_true(list_has(r.json, id, "cust-alice"));
    api_reply_free(&r);
    /* Bob's cancel did nothing: the saga ran to CONFIRMED. */
    o = wait_order(id, order_settled, 60000);
    assert_string_equal(jstr(o, "status"), "CONFIRMED");
    json_decref(o);
    free(alice);
    free(bob);
}

static void test_placing_in_another_customers_name_is_refused(void **state)
{
    struct api_reply r;
    char *mallory = mint("cust-mallory", "customer", 600);
    char *b = order_body("cust-alice", "tok_visa", "NL", "sku-limited:25");
    const char *noc = "{\"currency\":\"EUR\",\"payment_token\":\"tok_visa\","
                      "\"items\":[{\"sku\":\"sku-book\",\"quantity\":1}],\"shipping_address\":"
                      "{\"recipient\":\"M\",\"line1\":\"x 1\",\"city\":\"Utrecht\","
                      "\"postal_code\":\"3511\",\"country\":\"NL\"}}";
    (void)state;

    call(&r, "POST", "/orders", mallory, b, NULL);
    assert_int_equal(r.status, 403);
    api_reply_free(&r);
    /* Without customer_id the order is the token's subject's. */
    call(&r, "POST", "/orders", mallory, noc, NULL);
    assert_int_equal(r.status, 202);
    assert_string_equal(jstr(r.json, "customer_id"), "cust-mallory");
    api_reply_free(&r);
    free(b);
    free(mallory);
}

static void test_idempotency_keys_are_per_customer(void **state)
{
    char *alice = mint("cust-alice", "customer", 600), *bob = mint("cust-bob", "customer", 600);
    char key[64], id_bob[37], id_alice[37], path[128];
    struct api_reply r;
    (void)state;

    snprintf(key, sizeof(key), "squat-%ld-%ld", (long)time(NULL), (long)getpid());
    place_as(bob, "cust-bob", key, id_bob);       /* the squatter is first */
    place_as(alice, "cust-alice", key, id_alice); /* 202: a new order, not 409 */
    assert_string_not_equal(id_bob, id_alice);
    snprintf(path, sizeof(path), "/orders/%s", id_alice);
    call(&r, "GET", path, alice, NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_string_equal(jstr(r.json, "customer_id"), "cust-alice");
    api_reply_free(&r);
    free(alice);
    free(bob);
}

static void test_operator_sees_every_order(void **state)
{
    char *alice = mint("cust-alice", "customer", 600), *bob = mint("cust-bob", "customer", 600);
    char *op = mint("ops-ada", "operator", 600);
    char a[37], b[37], path[128];
    struct api_reply r;
    (void)state;

    place_as(alice, "cust-alice", NULL, a);
    place_as(bob, "cust-bob", NULL, b);
    snprintf(path, sizeof(path), "/orders/%s", a);
    call(&r, "GET", path, op, NULL, NULL);
    assert_int_equal(r.status, 200);
    api_reply_free(&r);
    call(&r, "GET", "/orders?limit=100", op, NULL, NULL);
    assert_int_equal(r.status, 200);
    assert_true(list_has(r.json, a, NULL));
    assert_true(list_has(r.json, b, NULL));
    api_reply_free(&r);
    free(alice);
    free(bob);
    free(op);
}

static char *b64url(const char *s)
{
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t n = strlen(s), o = 0;
    char *out = malloc(n * 2 + 4);
    const unsigned char *u = (const unsigned char *)s;
    for (size_t i = 0; i < n; i += 3) {
        unsigned v =
            (unsigned)u[i] << 16 | (i + 1 < n ? u[i + 1] << 8 : 0) | (i + 2 < n ? u[i + 2] : 0);
        out[o++] = t[v >> 18 & 63];
        out[o++] = t[v >> 12 & 63];
        if (i + 1 < n)
            out[o++] = t[v >> 6 & 63];
        if (i + 2 < n)
            out[o++] = t[v & 63];
    }
    out[o] = '\0';
    return out;
}

static void test_bad_tokens_get_401(void **state)
{
    char err[256], none[1024], payload[256];
    char *expired = mint("cust-alice", "operator", -3600);
    char *forged =
        saga_auth_mint_hs256((const unsigned char *)"not-the-stacks-secret-not-the-stacks", 36,
                             "cust-alice", "operator", 600, err, sizeof(err));
    char *h, *p;
    const char *bad[] = {expired, forged, none, "garbage", "a.b.c"};
    struct api_reply r;
    (void)state;

    snprintf(payload, sizeof(payload), "{\"sub\":\"cust-alice\",\"role\":\"operator\",\"exp\":%ld}",
             (long)time(NULL) + 600);
    h = b64url("{\"alg\":\"none\",\"typ\":\"JWT\"}");
    p = b64url(payload);
    snprintf(none, sizeof(none), "%s.%s.", h, p);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        call(&r, "GET", "/orders?limit=1", bad[i], NULL, NULL);
        if (r.status != 401)
            fail_msg("token %zu answered %ld, not 401", i, r.status);
        api_reply_free(&r);
    }
    free(h);
    free(p);
    free(expired);
    free(forged);
}

/* --- /events ------------------------------------------------------------------ */

struct buf {
    char *data;
    size_t len;
};

static size_t on_data(char *p, size_t size, size_t n, void *arg)
{
    struct buf *b = arg;
    char *d = realloc(b->data, b->len + size * n + 1);
    memcpy(d + b->len, p, size * n);
    b->data = d;
    b->len += size * n;
    d[b->len] = '\0';
    return size * n;
}

/* The first seconds of /events from the start of the feed's ring, as token (query). */
static char *stream(const char *token, long *status)
{
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Last-Event-ID: 0");
    struct buf b = {0};
    char url[4400];

    snprintf(url, sizeof(url), "%s/events%s%s", stack_env("ORDER_API_URL"),
             token ? "?access_token=" : "", token ? token : "");
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 2500L);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_data);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_perform(c); /* ends by the time-out */
    curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return b.data ? b.data : strdup("");
}

static void test_event_stream_shows_only_own_sagas(void **state)
{
    char *alice = mint("cust-alice", "customer", 600), *bob = mint("cust-bob", "customer", 600);
    char *op = mint("ops-ada", "operator", 600);
    char a[37], b[37], *s;
    long status;
    (void)state;

    place_as(alice, "cust-alice", NULL, a);
    place_as(bob, "cust-bob", NULL, b);
    sleep_ms(1500); /* the feed polls every 200 ms */
    s = stream(NULL, &status);
    assert_int_equal(status, 401);
    free(s);
    s = stream(alice, &status);
    assert_int_equal(status, 200);
    assert_non_null(strstr(s, a));
    assert_null(strstr(s, b));
    assert_null(strstr(s, "\"customer_id\":\"cust-bob\""));
    free(s);
    s = stream(op, &status);
    assert_int_equal(status, 200);
    assert_non_null(strstr(s, a));
    assert_non_null(strstr(s, b));
    free(s);
    free(alice);
    free(bob);
    free(op);
}

/* The whole file at path, or NULL. */
static char *slurp_file(const char *path)
{
    FILE *f = fopen(path, "rb");
    struct buf b = {0};
    char chunk[65536];
    size_t n;
    if (!f)
        return NULL;
    while ((n = fread(chunk, 1, sizeof(chunk), f)) > 0)
        on_data(chunk, 1, n, &b);
    fclose(f);
    return b.data ? b.data : strdup("");
}

/* path with ?access_token=token (or &), no Authorization header. */
static long status_with_query_token(const char *method, const char *path, const char *token)
{
    struct api_reply r;
    char url[4400];
    long status;
    const char *h[2] = {"Authorization:", NULL};
    snprintf(url, sizeof(url), "%s%caccess_token=%s", path, strchr(path, '?') ? '&' : '?', token);
    api(&r, method, url, NULL, NULL, 0, h);
    status = r.status;
    api_reply_free(&r);
    return status;
}

/*
 * A token in a URL ends up in proxies' and servers' access logs, so the API takes
 * one from ?access_token= only where a browser cannot send a header: the /events
 * stream (EventSource). Everywhere else it is no credential (401), and the
 * service's own log never holds it, whatever the request.
 */
static void test_query_tokens_only_for_the_event_stream_and_never_logged(void **state)
{
    char sub[64], id[37], path[128], logpath[1024], *tok, *alice, *log, *s;
    long status;
    (void)state;

    snprintf(sub, sizeof(sub), "ops-logcheck-%ld", (long)getpid());
    tok = mint(sub, "operator", 600);
    alice = mint("cust-alice", "customer", 600);
    place_as(alice, "cust-alice", NULL, id);
    assert_int_equal(status_with_query_token("GET", "/orders?limit=1", tok), 401);
    snprintf(path, sizeof(path), "/orders/%s", id);
    assert_int_equal(status_with_query_token("GET", path, tok), 401);
    snprintf(path, sizeof(path), "/orders/%s/cancel", id);
    assert_int_equal(status_with_query_token("POST", path, tok), 401);
    assert_int_equal(status_with_query_token("POST", "/orders", tok), 401);
    /* Where it is needed it works. */
    s = stream(tok, &status);
    assert_int_equal(status, 200);
    free(s);
    /* Requests the server refuses before any handler runs, the token in the URL. */
    {
        struct api_reply r;
        char url[4400];
        const char *host[] = {"Host: rebind.example", NULL};
        const char *origin[] = {"Origin: https://evil.example", NULL};
        snprintf(url, sizeof(url), "/events?access_token=%s", tok);
        api(&r, "GET", url, NULL, NULL, 0, host);
        api_reply_free(&r);
        snprintf(url, sizeof(url), "/orders/%s/cancel?access_token=%s", id, tok);
        api(&r, "POST", url, NULL, NULL, 0, origin);
        api_reply_free(&r);
        snprintf(url, sizeof(url), "/nope?access_token=%s", tok);
        api(&r, "DELETE", url, NULL, NULL, 0, NULL);
        api_reply_free(&r);
    }
    sleep_ms(500); /* the log is written as it happens; give the file a moment */
    snprintf(logpath, sizeof(logpath), "%s/logs/order-service.log", stack_env("STACK_DIR"));
    log = slurp_file(logpath);
    if (!log)
        fail_msg("cannot read %s", logpath);
    assert_non_null(strstr(log, "\"level\"")); /* the right file: JSON log lines */
    if (strstr(log, tok))
        fail_msg("%s holds the token given in a query string", logpath);
    /* Not even its signature, the part that makes it a credential. */
    assert_null(strstr(log, strrchr(tok, '.') + 1));
    free(log);
    free(tok);
    free(alice);
}

static int setup(void **state)
{
    const char *f = stack_env_opt("STACK_AUTH_SECRET_FILE");
    char err[256];
    (void)state;
    if (f) {
        secret = saga_auth_read_key(f, &secret_len, err, sizeof(err));
        if (!secret)
            fail_msg("%s", err);
    } else {
        /* A stack without authentication: the tokens mean nothing to it. */
        secret = (unsigned char *)strdup("a-stack-without-auth-has-no-secret-at-all");
        secret_len = strlen((char *)secret);
    }
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    free(secret);
    curl_global_cleanup();
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_anonymous_gets_401),
        cmocka_unit_test(test_other_customers_orders_are_404_and_unlisted),
        cmocka_unit_test(test_placing_in_another_customers_name_is_refused),
        cmocka_unit_test(test_idempotency_keys_are_per_customer),
        cmocka_unit_test(test_operator_sees_every_order),
        cmocka_unit_test(test_bad_tokens_get_401),
        cmocka_unit_test(test_event_stream_shows_only_own_sagas),
        cmocka_unit_test(test_query_tokens_only_for_the_event_stream_and_never_logged),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
