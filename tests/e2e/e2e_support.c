#include "e2e.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <cmocka.h>
#include <curl/curl.h>
#include <librdkafka/rdkafka.h>

#include "proc.h"
#include "saga/choreography.h"
#include "saga/consumer.h"
#include "saga/headers.h"
#include "saga/serde.h"
#include "stack_env.h"

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* --- HTTP ---------------------------------------------------------------------- */

struct body {
    char *data;
    size_t len;
};

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    struct body *b = arg;
    size_t add = size * n;
    char *d = realloc(b->data, b->len + add + 1);
    if (!d)
        return 0;
    memcpy(d + b->len, p, add);
    b->data = d;
    b->len += add;
    b->data[b->len] = '\0';
    return add;
}

static size_t on_header(char *p, size_t size, size_t n, void *arg)
{
    struct api_reply *r = arg;
    size_t len = size * n;
    char line[512];
    snprintf(line, sizeof(line), "%.*s", (int)(len < 511 ? len : 511), p);
    line[strcspn(line, "\r\n")] = '\0';
    if (strncasecmp(line, "Location: ", 10) == 0)
        snprintf(r->location, sizeof(r->location), "%.255s", line + 10);
    else if (strncasecmp(line, "Idempotent-Replayed: true", 25) == 0)
        r->replayed = 1;
    else if (strncasecmp(line, "Retry-After: ", 13) == 0)
        snprintf(r->retry_after, sizeof(r->retry_after), "%.15s", line + 13);
    return len;
}

/* The secured stack's API speaks https with a certificate of the stack's own CA. */
static void trust_stack_ca(CURL *c)
{
    const char *ca = stack_env_opt("ORDER_API_CACERT");
    if (ca)
        curl_easy_setopt(c, CURLOPT_CAINFO, ca);
}

void api(struct api_reply *out, const char *method, const char *path, const char *content_type,
         const char *body, size_t body_len, const char *const *headers)
{
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    struct body b = {0};
    char url[512], ct[128], auth[4200];
    int authorized = 0;
    CURLcode rc;

    memset(out, 0, sizeof(*out));
    snprintf(url, sizeof(url), "%s%s", stack_env("ORDER_API_URL"), path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    trust_stack_ca(c);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    curl_easy_setopt(c, CURLOPT_HEADERFUNCTION, on_header);
    curl_easy_setopt(c, CURLOPT_HEADERDATA, out);
    if (body) {
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)body_len);
    }
    h = curl_slist_append(h, "Expect:");
    if (content_type) {
        snprintf(ct, sizeof(ct), "Content-Type: %s", content_type);
        h = curl_slist_append(h, ct);
    } else if (body) {
        h = curl_slist_append(h, "Content-Type:");
    }
    for (int i = 0; headers && headers[i]; i++) {
        h = curl_slist_append(h, headers[i]);
        if (strncasecmp(headers[i], "Authorization:", 14) == 0)
            authorized = 1;
    }
    /* The operator, unless the caller chose (an empty "Authorization:" sends none). */
    if (!authorized && stack_env_opt("STACK_OPERATOR_TOKEN")) {
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", stack_env("STACK_OPERATOR_TOKEN"));
        h = curl_slist_append(h, auth);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    rc = curl_easy_perform(c);
    if (rc != CURLE_OK) {
        fprintf(stderr, "e2e: %s %s: %s\n", method, url, curl_easy_strerror(rc));
        out->status = -1;
    } else {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
        if (b.data)
            out->json = json_loadb(b.data, b.len, 0, NULL);
    }
    free(b.data);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
}

char *http_get(const char *url, long *status)
{
    CURL *c = curl_easy_init();
    struct body b = {0};
    CURLcode rc;
    curl_easy_setopt(c, CURLOPT_URL, url);
    trust_stack_ca(c);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
    rc = curl_easy_perform(c);
    *status = 0;
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, status);
    curl_easy_cleanup(c);
    if (rc != CURLE_OK) {
        free(b.data);
        return NULL;
    }
    return b.data ? b.data : strdup("");
}

char *scrape(int offset)
{
    char url[128];
    long status;
    char *text;
    /* The order service's port is the API's: https on the secured stack. */
    snprintf(url, sizeof(url), "%s://127.0.0.1:%d/metrics",
             offset == 0 && strncmp(stack_env("ORDER_API_URL"), "https:", 6) == 0 ? "https"
                                                                                  : "http",
             atoi(stack_env("STACK_HTTP_PORT_BASE")) + offset);
    text = http_get(url, &status);
    if (!text || status != 200)
        fail_msg("GET %s: %ld", url, status);
    return text;
}

double metric(const char *text, const char *series)
{
    size_t n = strlen(series);
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, series, n) == 0 && p[n] == ' ')
            return strtod(p + n + 1, NULL);
    return -1;
}

void api_reply_free(struct api_reply *r)
{
    json_decref(r->json);
    r->json = NULL;
}

char *order_body(const char *customer, const char *token, const char *country, const char *items)
{
    json_t *arr = json_array();
    char *copy = strdup(items), *save = NULL, *s;
    char *out;
    json_t *o;
    for (s = strtok_r(copy, ",", &save); s; s = strtok_r(NULL, ",", &save)) {
        char *colon = strchr(s, ':');
        *colon = '\0';
        json_array_append_new(arr, json_pack("{s:s, s:i}", "sku", s, "quantity", atoi(colon + 1)));
    }
    free(copy);
    o = json_pack("{s:s, s:s, s:s, s:o, s:{s:s, s:s, s:s, s:s, s:s}}", "customer_id", customer,
                  "currency", "EUR", "payment_token", token, "items", arr, "shipping_address",
                  "recipient", "Ada Lovelace", "line1", "Main Street 1", "city", "Utrecht",
                  "postal_code", "3511 AB", "country", country);
    out = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return out;
}

void place(const char *customer, const char *token, const char *country, const char *items,
           char order_id[37])
{
    struct api_reply r;
    char *b = order_body(customer, token, country, items);
    for (int attempt = 0;; attempt++) {
        api(&r, "POST", "/orders", "application/json", b, strlen(b), NULL);
        if (r.status != 503 || attempt > 20)
            break;
        api_reply_free(&r);
        sleep_ms(500);
    }
    free(b);
    if (r.status != 202)
        fail_msg("POST /orders answered %ld", r.status);
    assert_non_null(r.json);
    snprintf(order_id, 37, "%s", jstr(r.json, "order_id"));
    api_reply_free(&r);
}

const char *jstr(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : "";
}

int timeline_count(json_t *o, const char *type)
{
    json_t *tl = json_object_get(o, "timeline"), *e;
    size_t i;
    int n = 0;
    json_array_foreach(tl, i, e) n += strcmp(jstr(e, "event_type"), type) == 0;
    return n;
}

int order_terminal(json_t *o)
{
    return strcmp(jstr(o, "status"), "PENDING") != 0;
}

int order_settled(json_t *o)
{
    return order_terminal(o) && strcmp(jstr(o, "compensation"), "in_progress") != 0;
}

int timeline_fits_choreography(json_t *o, char *why, size_t size)
{
    json_t *tl = json_object_get(o, "timeline"), *e;
    size_t n = json_array_size(tl), i;
    struct saga_tl_event *ev = calloc(n ? n : 1, sizeof(*ev));
    int rc;

    if (!ev)
        abort();
    json_array_foreach(tl, i, e)
    {
        ev[i].event_type = json_string_value(json_object_get(e, "event_type"));
        ev[i].service = json_string_value(json_object_get(e, "service"));
        ev[i].event_id = json_string_value(json_object_get(e, "event_id"));
        ev[i].causation_id = json_string_value(json_object_get(e, "causation_id"));
    }
    rc = saga_choreo_check_timeline(ev, n, why, size);
    free(ev);
    return rc;
}

/* wait_order's answer, checked against the declaration before any test sees it. */
static json_t *checked(const char *order_id, json_t *o)
{
    char why[512];
    if (o && timeline_fits_choreography(o, why, sizeof(why)) != 0) {
        static char dump[8192];
        char *d = json_dumps(json_object_get(o, "timeline"), JSON_COMPACT);
        snprintf(dump, sizeof(dump), "%s", d ? d : "");
        free(d);
        json_decref(o); /* fail_msg does not return */
        fail_msg("order %s: its timeline does not fit the saga's declaration: %s\n%s", order_id,
                 why, dump);
    }
    return o;
}

json_t *wait_order(const char *order_id, int (*pred)(json_t *order), int timeout_ms)
{
    long long until = now_ms() + timeout_ms;
    char path[128];
    json_t *last = NULL;
    snprintf(path, sizeof(path), "/orders/%s", order_id);
    for (;;) {
        struct api_reply r;
        api(&r, "GET", path, NULL, NULL, 0, NULL);
        if (r.status == 200 && r.json) {
            json_decref(last);
            last = r.json;
            if (pred(last))
                return checked(order_id, last);
        } else {
            api_reply_free(&r);
        }
        if (now_ms() > until)
            return checked(order_id, last);
        sleep_ms(200);
    }
}

/* --- databases ----------------------------------------------------------------- */

static struct {
    char service[32];
    PGconn *conn;
} conns[5];

PGconn *db(const char *service)
{
    char var[64];
    int i;
    for (i = 0; i < 5 && conns[i].conn; i++)
        if (strcmp(conns[i].service, service) == 0) {
            if (PQstatus(conns[i].conn) != CONNECTION_OK)
                PQreset(conns[i].conn);
            return conns[i].conn;
        }
    assert_true(i < 5);
    snprintf(var, sizeof(var), "%s_DATABASE_URL", service);
    for (char *p = var; *p; p++)
        *p = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
    conns[i].conn = PQconnectdb(stack_env(var));
    if (PQstatus(conns[i].conn) != CONNECTION_OK)
        fail_msg("connect %s: %s", service, PQerrorMessage(conns[i].conn));
    snprintf(conns[i].service, sizeof(conns[i].service), "%s", service);
    return conns[i].conn;
}

static PGresult *db_query(const char *service, const char *sql, const char *param)
{
    PGresult *r = PQexecParams(db(service), sql, param ? 1 : 0, NULL, &param, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        /* The server restarted under us (a test did that): once more on a new connection. */
        PQclear(r);
        PQreset(db(service));
        r = PQexecParams(db(service), sql, param ? 1 : 0, NULL, &param, NULL, NULL, 0);
    }
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s: %s", service, sql, PQerrorMessage(db(service)));
    return r;
}

long long db_num(const char *service, const char *sql, const char *param)
{
    PGresult *r = db_query(service, sql, param);
    long long v =
        PQntuples(r) && !PQgetisnull(r, 0, 0) ? strtoll(PQgetvalue(r, 0, 0), NULL, 10) : 0;
    PQclear(r);
    return v;
}

char *db_text(const char *service, const char *sql, const char *param)
{
    PGresult *r = db_query(service, sql, param);
    char *v = strdup(PQntuples(r) ? PQgetvalue(r, 0, 0) : "");
    PQclear(r);
    return v;
}

/* --- Kafka ---------------------------------------------------------------------- */

static const char *const all_topics[] = {"orders", "inventory", "payments", "shipping",
                                         "notifications"};

rd_kafka_t *kafka_client(rd_kafka_type_t type, const char *group)
{
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    char err[256];
    rd_kafka_t *rk;
    static const char *const security[][2] = {
        {"KAFKA_SECURITY_PROTOCOL", "security.protocol"},
        {"KAFKA_SASL_MECHANISMS", "sasl.mechanisms"},
        {"KAFKA_SASL_USERNAME", "sasl.username"},
        {"KAFKA_SASL_PASSWORD", "sasl.password"},
        {"KAFKA_SSL_CA_LOCATION", "ssl.ca.location"},
    };
    rd_kafka_conf_set(c, "bootstrap.servers", stack_env("KAFKA_BOOTSTRAP_SERVERS"), NULL, 0);
    /* A secured stack (scripts/stack --secure): the admin login its stack.env holds. */
    for (size_t i = 0; i < sizeof(security) / sizeof(security[0]); i++) {
        const char *v = stack_env_opt(security[i][0]);
        if (v && rd_kafka_conf_set(c, security[i][1], v, err, sizeof(err)) != RD_KAFKA_CONF_OK)
            fail_msg("kafka: %s: %s", security[i][1], err);
    }
    if (group) {
        rd_kafka_conf_set(c, "group.id", group, NULL, 0);
        rd_kafka_conf_set(c, "enable.auto.commit", "false", NULL, 0);
    }
    if (type == RD_KAFKA_PRODUCER) {
        rd_kafka_conf_set(c, "enable.idempotence", "true", NULL, 0);
        rd_kafka_conf_set(c, "partitioner", "murmur2_random", NULL, 0);
    }
    rk = rd_kafka_new(type, c, err, sizeof(err));
    if (!rk)
        fail_msg("kafka: %s", err);
    return rk;
}

static int partitions(void)
{
    return atoi(stack_env("TOPIC_PARTITIONS"));
}

static const struct {
    const char *group;
    int ntopics;
    const char *topics[5];
} groups[] = {
    {"order-service", 5, {"orders", "inventory", "payments", "shipping", "notifications"}},
    {"inventory-service", 2, {"orders", "payments"}},
    {"payment-service", 2, {"orders", "inventory"}},
    {"shipping-service", 2, {"orders", "payments"}},
    {"notification-service", 1, {"orders"}},
};

/* Total lag of every group (end offset minus committed), or -1 if unknown. */
static long long total_lag(rd_kafka_t *probe)
{
    long long lag = 0;
    for (size_t g = 0; g < sizeof(groups) / sizeof(groups[0]); g++) {
        rd_kafka_t *rk = kafka_client(RD_KAFKA_CONSUMER, groups[g].group);
        rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(32);
        for (int t = 0; t < groups[g].ntopics; t++)
            for (int p = 0; p < partitions(); p++)
                rd_kafka_topic_partition_list_add(l, groups[g].topics[t], p);
        if (rd_kafka_committed(rk, l, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
            lag = -1;
        } else {
            for (int i = 0; i < l->cnt && lag >= 0; i++) {
                int64_t lo, hi;
                if (rd_kafka_query_watermark_offsets(probe, l->elems[i].topic,
                                                     l->elems[i].partition, &lo, &hi, 10000)) {
                    lag = -1;
                    break;
                }
                if (hi > 0)
                    lag += hi - (l->elems[i].offset < 0 ? lo : l->elems[i].offset);
            }
        }
        rd_kafka_topic_partition_list_destroy(l);
        rd_kafka_destroy(rk);
        if (lag < 0)
            return -1;
    }
    return lag;
}

static long long outbox_backlog(void)
{
    static const char *const svcs[] = {"order", "inventory", "payment", "shipping", "notification"};
    long long n = 0;
    for (int i = 0; i < 5; i++)
        n += db_num(svcs[i], "SELECT count(*) FROM outbox WHERE published_at IS NULL", NULL);
    return n;
}

void wait_quiescent(int timeout_ms)
{
    rd_kafka_t *probe = kafka_client(RD_KAFKA_PRODUCER, NULL);
    long long until = now_ms() + timeout_ms, lag = -1, backlog = -1;
    int calm = 0;
    while (calm < 2) {
        backlog = outbox_backlog();
        lag = backlog ? -1 : total_lag(probe);
        calm = backlog == 0 && lag == 0 ? calm + 1 : 0;
        if (calm >= 2)
            break;
        if (now_ms() > until) {
            rd_kafka_destroy(probe);
            fail_msg("not quiescent after %d ms: outbox backlog %lld, consumer lag %lld",
                     timeout_ms, backlog, lag);
        }
        sleep_ms(calm ? 1500 : 300);
    }
    rd_kafka_destroy(probe);
}

int republish_order(const char *order_id)
{
    rd_kafka_t *c = kafka_client(RD_KAFKA_CONSUMER, "e2e-republish");
    rd_kafka_t *p = kafka_client(RD_KAFKA_PRODUCER, NULL);
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(32);
    int64_t *ends;
    int n = 0, done = 0, total;

    for (int t = 0; t < 5; t++)
        for (int i = 0; i < partitions(); i++)
            rd_kafka_topic_partition_list_add(l, all_topics[t], i)->offset =
                RD_KAFKA_OFFSET_BEGINNING;
    total = l->cnt;
    ends = calloc((size_t)total, sizeof(*ends));
    for (int i = 0; i < total; i++) {
        int64_t lo;
        rd_kafka_query_watermark_offsets(c, l->elems[i].topic, l->elems[i].partition, &lo, &ends[i],
                                         10000);
        if (ends[i] == 0)
            done++;
    }
    rd_kafka_assign(c, l);
    {
        long long until = now_ms() + 60000;
        char *reached = calloc((size_t)total, 1);
        while (done < total && now_ms() < until) {
            rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 500);
            int idx = -1;
            if (!m)
                continue;
            if (m->err) {
                rd_kafka_message_destroy(m);
                continue;
            }
            for (int i = 0; i < total; i++)
                if (l->elems[i].partition == m->partition &&
                    strcmp(l->elems[i].topic, rd_kafka_topic_name(m->rkt)) == 0)
                    idx = i;
            if (m->key_len == strlen(order_id) && memcmp(m->key, order_id, m->key_len) == 0) {
                rd_kafka_headers_t *h = NULL;
                rd_kafka_message_headers(m, &h);
                rd_kafka_resp_err_t err = rd_kafka_producev(
                    p, RD_KAFKA_V_TOPIC(rd_kafka_topic_name(m->rkt)),
                    RD_KAFKA_V_KEY(m->key, m->key_len), RD_KAFKA_V_VALUE(m->payload, m->len),
                    RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                    RD_KAFKA_V_HEADERS(h ? rd_kafka_headers_copy(h) : NULL), RD_KAFKA_V_END);
                assert_int_equal(err, RD_KAFKA_RESP_ERR_NO_ERROR);
                n++;
            }
            if (idx >= 0 && !reached[idx] && m->offset + 1 >= ends[idx]) {
                reached[idx] = 1;
                done++;
            }
            rd_kafka_message_destroy(m);
        }
        free(reached);
    }
    assert_int_equal(rd_kafka_flush(p, 30000), RD_KAFKA_RESP_ERR_NO_ERROR);
    free(ends);
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
    rd_kafka_destroy(p);
    return n;
}

void produce_event(const struct saga_event *ev)
{
    static struct saga_serde *serde;
    static struct saga_registry *reg;
    static rd_kafka_t *p;
    struct saga_buf buf = {0};
    rd_kafka_headers_t *h = rd_kafka_headers_new(8);
    char err[512];

    if (!serde) {
        const char *url = getenv("E2E_REGISTRY") ? stack_env("SCHEMA_REGISTRY_URL") : NULL;
        if (saga_serde_open(url, NULL, &serde, &reg, err, sizeof(err)))
            fail_msg("serde: %s", err);
        p = kafka_client(RD_KAFKA_PRODUCER, NULL);
    }
    if (saga_serde_encode(serde, ev, &buf, err, sizeof(err)))
        fail_msg("encode: %s", err);
    char key[128];
    snprintf(key, sizeof(key), "%s", ev->meta.order_id);
    assert_int_equal(saga_event_headers_add(h, ev), SAGA_OK);
    assert_int_equal(rd_kafka_producev(p, RD_KAFKA_V_TOPIC(saga_event_type_topic(ev->type)),
                                       RD_KAFKA_V_KEY(key, strlen(key)),
                                       RD_KAFKA_V_VALUE(buf.data, buf.len),
                                       RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                                       RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
    assert_int_equal(rd_kafka_flush(p, 30000), RD_KAFKA_RESP_ERR_NO_ERROR);
    saga_buf_release(&buf);
}

/* --- invariants ---------------------------------------------------------------- */

static int violation(char *report, size_t size, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int violation(char *report, size_t size, const char *fmt, ...)
{
    size_t len = strlen(report);
    va_list ap;
    va_start(ap, fmt);
    if (len < size)
        vsnprintf(report + len, size - len, fmt, ap);
    va_end(ap);
    len = strlen(report);
    if (len + 1 < size) {
        report[len] = '\n';
        report[len + 1] = '\0';
    }
    return 1;
}

int check_invariants(char *report, size_t size)
{
    int v = 0;
    char *confirmed, *cancelled, *terminal, *s;
    long long n;

    report[0] = '\0';
    /* Every order terminal. */
    if ((n = db_num("order", "SELECT count(*) FROM orders WHERE status = 'PENDING'", NULL)))
        v += violation(report, size, "%lld orders still PENDING", n);

    confirmed = db_text("order",
                        "SELECT coalesce(array_agg(order_id ORDER BY order_id), '{}')::text"
                        " FROM orders WHERE status = 'CONFIRMED'",
                        NULL);
    cancelled = db_text("order",
                        "SELECT coalesce(array_agg(order_id ORDER BY order_id), '{}')::text"
                        " FROM orders WHERE status = 'CANCELLED'",
                        NULL);
    terminal = db_text("order",
                       "SELECT coalesce(array_agg(order_id ORDER BY order_id), '{}')::text"
                       " FROM orders WHERE status <> 'PENDING'",
                       NULL);

    /* Stock: initial = available + reserved + shipped; reservations only for live orders;
     * what is reserved and shipped is what the orders hold. */
    if ((n = db_num("inventory",
                    "SELECT count(*) FROM stock WHERE initial <> available + reserved + shipped",
                    NULL)))
        v += violation(report, size, "%lld SKUs break initial = available + reserved + shipped", n);
    if ((n = db_num(
             "inventory",
             "SELECT count(*) FROM stock s WHERE s.reserved <> coalesce((SELECT sum(l.quantity)"
             " FROM reservation_lines l JOIN orders o USING (order_id)"
             " WHERE o.state = 'reserved' AND l.sku = s.sku), 0)"
             " OR s.shipped <> coalesce((SELECT sum(l.quantity) FROM reservation_lines l"
             " JOIN orders o USING (order_id) WHERE o.state = 'shipped' AND l.sku = s.sku), 0)",
             NULL)))
        v += violation(report, size, "%lld SKUs whose reserved/shipped counts differ from orders",
                       n);
    if ((n = db_num("inventory", "SELECT count(*) FROM orders WHERE state = 'reserved'", NULL)))
        v += violation(report, size, "%lld reservations held although every order is terminal", n);
    if ((n = db_num("inventory",
                    "SELECT count(*) FROM orders WHERE state = 'shipped'"
                    " AND NOT (order_id = ANY($1::text[]))",
                    confirmed)))
        v += violation(report, size, "%lld orders shipped from stock but not CONFIRMED", n);
    if ((n = db_num("inventory",
                    "SELECT count(*) FROM unnest($1::text[]) c WHERE NOT EXISTS"
                    " (SELECT 1 FROM orders o WHERE o.order_id = c AND o.state = 'shipped')",
                    confirmed)))
        v += violation(report, size, "%lld CONFIRMED orders whose stock was not shipped", n);

    /* Money: one capture per confirmed order, of its total; nothing kept from cancelled ones. */
    s = db_text(
        "order",
        "SELECT coalesce(sum(total_amount), 0)::text FROM orders WHERE status = 'CONFIRMED'", NULL);
    {
        char *charged = db_text("payment",
                                "SELECT coalesce(sum(amount) FILTER (WHERE status IN ('captured',"
                                " 'refunded')), 0) - coalesce(sum(amount) FILTER (WHERE status ="
                                " 'refunded'), 0) FROM payments",
                                NULL);
        if (strcmp(s, charged) != 0)
            v +=
                violation(report, size,
                          "sum(charges) - sum(refunds) = %s but confirmed totals = %s", charged, s);
        free(charged);
    }
    free(s);
    if ((n = db_num("payment",
                    "SELECT count(*) FROM unnest($1::text[]) c WHERE NOT EXISTS"
                    " (SELECT 1 FROM payments p WHERE p.order_id = c AND p.status = 'captured')",
                    confirmed)))
        v += violation(report, size, "%lld CONFIRMED orders without a capture", n);
    if ((n = db_num("payment",
                    "SELECT count(*) FROM payments WHERE status = 'captured'"
                    " AND NOT (order_id = ANY($1::text[]))",
                    confirmed)))
        v += violation(report, size, "%lld captures kept for orders that are not CONFIRMED", n);
    if ((n = db_num("payment",
                    "SELECT count(*) FROM customers WHERE balance <> coalesce((SELECT sum(amount)"
                    " FROM payments p WHERE p.customer_id = customers.customer_id"
                    " AND p.status = 'captured'), 0)",
                    NULL)))
        v += violation(report, size, "%lld customer balances differ from their captures", n);

    /* Shipping: a live shipment exactly for the confirmed orders. */
    if ((n = db_num("shipping",
                    "SELECT count(*) FROM unnest($1::text[]) c WHERE NOT EXISTS"
                    " (SELECT 1 FROM shipments s WHERE s.order_id = c AND s.status = 'scheduled')",
                    confirmed)))
        v += violation(report, size, "%lld CONFIRMED orders without a scheduled shipment", n);
    if ((n = db_num("shipping",
                    "SELECT count(*) FROM shipments WHERE status = 'scheduled'"
                    " AND NOT (order_id = ANY($1::text[]))",
                    confirmed)))
        v += violation(report, size, "%lld shipments still scheduled for orders not CONFIRMED", n);

    /* Exactly one notification per outcome, matching it. */
    if ((n = db_num("notification",
                    "SELECT count(*) FROM unnest($1::text[]) c WHERE (SELECT count(*)"
                    " FROM notifications x WHERE x.order_id = c) <> 1",
                    terminal)))
        v += violation(report, size, "%lld terminal orders without exactly one notification", n);
    if ((n = db_num("notification",
                    "SELECT count(*) FROM notifications WHERE order_id = ANY($1::text[])"
                    " AND outcome <> 'CANCELLED'",
                    cancelled)))
        v += violation(report, size, "%lld CANCELLED orders notified with another outcome", n);

    /* Nothing left in any outbox. */
    if ((n = outbox_backlog()))
        v += violation(report, size, "%lld outbox rows unpublished", n);

    free(confirmed);
    free(cancelled);
    free(terminal);
    return v;
}
