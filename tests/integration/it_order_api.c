/*
 * The order API when the database connection breaks around the COMMIT: it must
 * answer what really happened. An order-service of its own (its own database on
 * the test stack's PostgreSQL) runs with a SAGA_FAULT that breaks its connection
 * at one exact moment:
 *
 *   outbox.commit_sent  the COMMIT went out, the connection broke before its
 *                       result came back: the server commits, the API cannot know
 *   order.after_commit  the COMMIT succeeded, the connection broke right after
 *   outbox.commit_lost  the connection broke before the COMMIT went out: nothing
 *                       was committed
 *   outbox.commit_halfopen  the same, but the server's end stays open (no FIN):
 *                       its backend waits in the transaction until the API ends it
 *
 * A client without an Idempotency-Key that is told "nothing was changed, retry"
 * after a commit places (and pays for) the order twice; so the answer must be the
 * order (202 / 200) when it was committed, and a 503 only when it really was not.
 * Kafka plays no part: the service's consumer is pointed at a closed port, so it
 * never joins the stack's order-service group.
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
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

struct fixture {
    struct testdb db;
    char log[256];
    char base[64]; /* http://127.0.0.1:PORT */
    pid_t pid;
};

struct reply {
    long status;
    json_t *json;
};

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

static void post(struct fixture *f, const char *path, const char *body, struct reply *out)
{
    CURL *c = curl_easy_init();
    struct curl_slist *h = curl_slist_append(NULL, "Content-Type: application/json");
    char url[256], *buf = NULL;

    snprintf(url, sizeof(url), "%s%s", f->base, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POST, 1L);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body ? body : "");
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &buf);
    out->status = -1;
    out->json = NULL;
    if (curl_easy_perform(c) == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
        out->json = buf ? json_loads(buf, 0, NULL) : NULL;
    }
    fprintf(stderr, "POST %s -> %ld %.200s\n", path, out->status, buf ? buf : "");
    free(buf);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
}

static const char *jstr(const struct reply *r, const char *key)
{
    return json_string_value(json_object_get(r->json, key));
}

/* Starts order-service with fault armed (and extra, "NAME=value", in its environment); waits
 * until its API answers. */
static void start_service_with(struct fixture *f, const char *fault, const char *extra)
{
    char env_db[600], env_fault[64];
    const char *env[] = {env_db,
                         env_fault,
                         "HTTP_LISTEN=127.0.0.1:0",
                         "KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:1",
                         "SCHEMA_REGISTRY_URL=",
                         "SAGA_TIMEOUT=1h",
                         "AUTH_MODE=off", /* it_auth tests who may call */
                         "LOG_LEVEL=info",
                         extra,
                         NULL};
    long long end = now_ms() + 30000;
    char line[4096];

    snprintf(env_db, sizeof(env_db), "DATABASE_URL=%s", f->db.owner_url);
    snprintf(env_fault, sizeof(env_fault), "SAGA_FAULT=%s", fault); /* "" = none */
    snprintf(f->log, sizeof(f->log), "%s/it_order_api_%ld.log", SAGA_TEST_LOG_DIR, (long)getpid());
    unlink(f->log);
    f->pid = proc_start(ORDER_SERVICE, env, f->log);
    assert_true(log_wait(f->log, "listening on http://127.0.0.1:", 30000));
    f->base[0] = '\0';
    while (!f->base[0] && now_ms() < end) {
        FILE *in = fopen(f->log, "r");
        while (in && fgets(line, sizeof(line), in)) {
            const char *at = strstr(line, "listening on http://127.0.0.1:");
            if (at)
                snprintf(f->base, sizeof(f->base), "http://127.0.0.1:%d", atoi(at + 30));
        }
        if (in)
            fclose(in);
    }
    assert_true(f->base[0]);
}

static void start_service(struct fixture *f, const char *fault)
{
    start_service_with(f, fault, NULL);
}

static void get(struct fixture *f, const char *path, struct reply *out)
{
    CURL *c = curl_easy_init();
    char url[256], *buf = NULL;

    snprintf(url, sizeof(url), "%s%s", f->base, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 60L);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &buf);
    out->status = -1;
    out->json = NULL;
    if (curl_easy_perform(c) == CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
        out->json = buf ? json_loads(buf, 0, NULL) : NULL;
    }
    fprintf(stderr, "GET %s -> %ld (%zu bytes)\n", path, out->status, buf ? strlen(buf) : 0);
    free(buf);
    curl_easy_cleanup(c);
}

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    testdb_create(&f->db, "it_order_api", "order");
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    if (f->pid > 0)
        proc_stop(f->pid, SIGTERM, 10000);
    testdb_drop(&f->db);
    free(f);
    return 0;
}

static long long orders_in_db(struct fixture *f)
{
    return testdb_scalar(&f->db, "SELECT count(*) FROM orders");
}

static long long cancelled_in_db(struct fixture *f, const char *id)
{
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM orders WHERE order_id = '%s' AND status = 'CANCELLED'", id);
    return testdb_scalar(&f->db, sql);
}

static long long pending_in_db(struct fixture *f, const char *id)
{
    char sql[256];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM orders WHERE order_id = '%s' AND status = 'PENDING'", id);
    return testdb_scalar(&f->db, sql);
}

static void stop_service(struct fixture *f)
{
    assert_int_not_equal(proc_stop(f->pid, SIGTERM, 10000), -1);
    f->pid = 0;
}

/* Places an order on a service without a fault; its id in id. */
static void place_before(struct fixture *f, char id[37])
{
    struct reply r;
    start_service(f, "");
    post(f, "/orders", ORDER_BODY, &r);
    assert_int_equal(r.status, 202);
    snprintf(id, 37, "%s", jstr(&r, "order_id"));
    json_decref(r.json);
    stop_service(f);
}

/* With fault armed, POST /orders answers what the database holds. */
static void place_answers_the_truth(struct fixture *f, const char *fault)
{
    struct reply r;

    start_service(f, fault);
    /* No Idempotency-Key, and a client that does what the answer says: told "nothing was
     * changed, retry", it retries, and a false 503 places (and charges) the order twice. */
    post(f, "/orders", ORDER_BODY, &r);
    if (r.status == 503 && strstr(jstr(&r, "message"), "nothing was changed")) {
        fprintf(stderr, "answered 503 with %lld order(s) in the database; retrying\n",
                orders_in_db(f));
        json_decref(r.json);
        post(f, "/orders", ORDER_BODY, &r);
    }
    assert_int_equal(orders_in_db(f), 1);
    assert_int_equal(r.status, 202);
    assert_non_null(jstr(&r, "order_id"));
    assert_int_equal(pending_in_db(f, jstr(&r, "order_id")), 1);
    assert_string_equal(jstr(&r, "status"), "PENDING");
    assert_int_equal(json_integer_value(json_object_get(r.json, "total_amount")), 1299);
    json_decref(r.json);
}

/* With fault armed, POST /orders/{id}/cancel of a PENDING order answers what happened. */
static void cancel_answers_the_truth(struct fixture *f, const char *fault)
{
    struct reply r;
    char id[37], path[128];

    place_before(f, id);
    start_service(f, fault);
    snprintf(path, sizeof(path), "/orders/%s/cancel", id);
    post(f, path, NULL, &r);
    /* The cancellation committed: answered as done, never as "could not be cancelled". */
    assert_int_equal(cancelled_in_db(f, id), 1);
    assert_int_equal(r.status, 200);
    assert_string_equal(jstr(&r, "order_id"), id);
    assert_string_equal(jstr(&r, "status"), "CANCELLED");
    json_decref(r.json);
}

static void test_place_commit_outcome_unknown(void **state)
{
    place_answers_the_truth(*state, "outbox.commit_sent");
}

static void test_cancel_commit_outcome_unknown(void **state)
{
    cancel_answers_the_truth(*state, "outbox.commit_sent");
}

static void test_place_connection_lost_after_commit(void **state)
{
    place_answers_the_truth(*state, "order.after_commit");
}

static void test_cancel_connection_lost_after_commit(void **state)
{
    cancel_answers_the_truth(*state, "order.after_commit");
}

/* The COMMIT never reached the server: then, and only then, 503 "nothing was changed". */
static void test_commit_that_did_not_happen_is_a_true_503(void **state)
{
    struct fixture *f = *state;
    struct reply r;
    char id[37], path[128];

    place_before(f, id);
    start_service(f, "outbox.commit_lost");
    post(f, "/orders", ORDER_BODY, &r);
    assert_int_equal(r.status, 503);
    assert_non_null(strstr(jstr(&r, "message"), "nothing was changed"));
    assert_int_equal(orders_in_db(f), 1); /* place_before's */
    json_decref(r.json);

    snprintf(path, sizeof(path), "/orders/%s/cancel", id);
    post(f, path, NULL, &r);
    assert_int_equal(r.status, 503);
    assert_int_equal(pending_in_db(f, id), 1);
    json_decref(r.json);
}

/* The COMMIT never left, and the server's side of the connection stays open: the API must
 * not wait for that backend forever, nor leave it holding the transaction. */
static void test_half_open_connection_is_ended_and_a_true_503(void **state)
{
    struct fixture *f = *state;
    struct reply r;
    char id[37], path[128];

    place_before(f, id);
    start_service(f, "outbox.commit_halfopen");
    post(f, "/orders", ORDER_BODY, &r);
    assert_int_equal(r.status, 503);
    assert_non_null(strstr(jstr(&r, "message"), "nothing was changed"));
    assert_int_equal(orders_in_db(f), 1);
    json_decref(r.json);

    snprintf(path, sizeof(path), "/orders/%s/cancel", id);
    post(f, path, NULL, &r);
    assert_int_equal(r.status, 503);
    assert_int_equal(pending_in_db(f, id), 1);
    json_decref(r.json);
    /* No backend is left in an open transaction (holding the order's row lock). */
    assert_int_equal(testdb_scalar(&f->db, "SELECT count(*) FROM pg_stat_activity WHERE datname ="
                                           " current_database() AND state LIKE 'idle in trans%'"),
                     0);
    assert_true(log_wait(f->log, "never got the COMMIT", 1000));
}

/* GET /orders/{id} of an order with crafted_timeline's events: cap entries, flagged truncated,
 * the kept ones in causal order (each crafted event caused by the one before). */
static void assert_capped(struct fixture *f, const char *id, size_t cap)
{
    struct reply r;
    char path[128];
    long long t0 = now_ms();
    json_t *tl;

    snprintf(path, sizeof(path), "/orders/%s", id);
    get(f, path, &r);
    fprintf(stderr, "took %lld ms\n", now_ms() - t0);
    assert_int_equal(r.status, 200);
    tl = json_object_get(r.json, "timeline");
    assert_int_equal(json_array_size(tl), cap);
    assert_true(json_is_true(json_object_get(r.json, "timeline_truncated")));
    assert_string_equal(json_string_value(json_object_get(json_array_get(tl, 0), "event_type")),
                        "OrderPlaced");
    for (size_t k = 1; k < cap; k++) {
        char want[32];
        snprintf(want, sizeof(want), "crafted-%zu", k);
        assert_string_equal(json_string_value(json_object_get(json_array_get(tl, k), "event_id")),
                            want);
    }
    json_decref(r.json);
}

/* A crafted chain of 2,000 timeline events, each stamped before its cause (the worst case of
 * the old O(n^3) sort: 9.4 s per GET): answered at once, with at most ORDER_TIMELINE_MAX. */
static void test_timeline_capped_and_flagged(void **state)
{
    struct fixture *f = *state;
    struct reply r;
    char id[37], path[128], sql[1024];

    start_service(f, "");
    post(f, "/orders", ORDER_BODY, &r);
    assert_int_equal(r.status, 202);
    snprintf(id, sizeof(id), "%s", jstr(&r, "order_id"));
    json_decref(r.json);
    snprintf(path, sizeof(path), "/orders/%s", id);
    get(f, path, &r);
    assert_int_equal(r.status, 200);
    assert_true(json_is_false(json_object_get(r.json, "timeline_truncated")));
    json_decref(r.json);

    snprintf(sql, sizeof(sql),
             "WITH ins AS (INSERT INTO timeline (order_id, event_id, event_type, service,"
             " occurred_at, causation_id, summary) SELECT '%s', 'crafted-' || g,"
             " 'InventoryReserved', 'inventory-service', now() - g * interval '1 ms',"
             " CASE WHEN g > 1 THEN 'crafted-' || (g - 1) END, 'crafted'"
             " FROM generate_series(1, 2000) g RETURNING 1) SELECT count(*) FROM ins",
             id);
    assert_int_equal(testdb_scalar(&f->db, sql), 2000);
    assert_capped(f, id, 500); /* the default */
    stop_service(f);

    start_service_with(f, "", "ORDER_TIMELINE_MAX=50");
    assert_capped(f, id, 50);

    /* sagactl get says the timeline it shows is not the whole. */
    {
        char cmd[512], out[65536];
        size_t len = 0, n;
        FILE *p;
        snprintf(cmd, sizeof(cmd), "ORDER_API_URL='%s' '%s/sagactl' get %s", f->base, SAGA_BIN_DIR,
                 id);
        assert_non_null(p = popen(cmd, "r"));
        while (len + 1 < sizeof(out) && (n = fread(out + len, 1, sizeof(out) - 1 - len, p)) > 0)
            len += n;
        out[len] = '\0';
        assert_int_equal(pclose(p), 0);
        if (!strstr(out, "only the first 50 events"))
            fail_msg("sagactl get does not say the timeline is cut short:\n%.2000s", out);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_place_commit_outcome_unknown, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_commit_outcome_unknown, setup, teardown),
        cmocka_unit_test_setup_teardown(test_place_connection_lost_after_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_cancel_connection_lost_after_commit, setup, teardown),
        cmocka_unit_test_setup_teardown(test_commit_that_did_not_happen_is_a_true_503, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_half_open_connection_is_ended_and_a_true_503, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_timeline_capped_and_flagged, setup, teardown),
    };
    curl_global_init(CURL_GLOBAL_DEFAULT);
    return cmocka_run_group_tests(tests, NULL, NULL);
}
