/*
 * The order API (docs/API.md):
 *
 *   POST /orders               place an order (Idempotency-Key optional)  202, 200 replay
 *   GET  /orders/{id}          the order, its outcome, compensation state and timeline
 *   GET  /orders?status=&limit=&cursor=   newest first, cursor paging
 *   POST /orders/{id}/cancel   customer cancellation while PENDING
 *   GET  /products             the catalogue with prices
 *
 * Errors are JSON {"error": code, "message": text[, "fields": [...]]}.
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "order.h"
#include "saga/choreography.h"
#include "saga/ids.h"
#include "saga/log.h"
#include "saga/consumer.h"
#include "saga/fault.h"
#include "saga/outbox.h"
#include "saga/metrics.h"
#include "saga/pg.h"
#include "saga/otel.h"
#include "saga/trace.h"

#define TS(col) "to_char(" col " AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"')"

/* A failed statement, classified e with message err: the database is away (503) or
 * something else broke (500). */
static void db_failure_err(struct saga_http_response *resp, PGconn *conn, saga_err_t e,
                           const char *err, int *broken)
{
    if (PQstatus(conn) != CONNECTION_OK || e == SAGA_ERR_TRANSIENT) {
        *broken = 1;
        saga_warn("order api: database unavailable: %s", err);
        saga_http_reply_error(resp, 503, "unavailable",
                              "the database is unavailable; nothing was changed, retry later");
        saga_http_add_header(resp, "Retry-After", "1");
        return;
    }
    saga_error("order api: %s", err);
    saga_http_reply_error(resp, 500, "internal", "internal error");
}

static void db_failure(struct saga_http_response *resp, PGconn *conn, const PGresult *r,
                       int *broken)
{
    char err[512];
    saga_pg_errstr(conn, err, sizeof(err));
    db_failure_err(resp, conn, saga_pg_classify(conn, r), err, broken);
}

/* A pooled connection, or NULL after answering 503 (the database is unreachable). */
static struct order_slot *pool_get_or_503(struct order_app *app, struct saga_http_response *resp)
{
    char err[512];
    struct order_slot *s = order_pool_get(app, err, sizeof(err));
    if (!s) {
        saga_warn("order api: %s", err);
        saga_http_reply_error(resp, 503, "unavailable",
                              "the database is unavailable; nothing was changed, retry later");
        saga_http_add_header(resp, "Retry-After", "1");
    }
    return s;
}

static PGresult *query(PGconn *conn, const char *sql, int n, const char *const *p)
{
    return saga_pg_exec(conn, sql, n, p, NULL, NULL, 0);
}

static int ok(const PGresult *r)
{
    ExecStatusType st = PQresultStatus(r);
    return st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK;
}

static void rollback(PGconn *conn)
{
    PQclear(saga_pg_query(conn, "ROLLBACK"));
}

static json_t *nullable(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? json_null() : json_string(PQgetvalue(r, row, col));
}

#define ORDER_COLUMNS                                                                              \
    "o.order_id, o.status, o.reason, o.detail, o.customer_id, o.currency, o.total_amount,"         \
    " " TS("o.created_at") ", " TS("o.updated_at") ", " TS(                                        \
        "o.completed_at") ", (SELECT string_agg(event_type, ',') FROM timeline t WHERE "           \
                          "t.order_id = o.order_id), o.seq"

/* The summary of one order from a row of ORDER_COLUMNS. */
static json_t *order_summary(const PGresult *r, int row)
{
    int seen[SAGA_EV_COUNT];
    const char *status = PQgetvalue(r, row, 1);
    order_count_event_types(PQgetvalue(r, row, 10), seen);
    return json_pack("{s:s, s:s, s:o, s:o, s:s, s:s, s:I, s:s, s:s, s:o, s:s}", "order_id",
                     PQgetvalue(r, row, 0), "status", status, "reason", nullable(r, row, 2),
                     "detail", nullable(r, row, 3), "customer_id", PQgetvalue(r, row, 4),
                     "currency", PQgetvalue(r, row, 5), "total_amount",
                     (json_int_t)strtoll(PQgetvalue(r, row, 6), NULL, 10), "created_at",
                     PQgetvalue(r, row, 7), "updated_at", PQgetvalue(r, row, 8), "completed_at",
                     nullable(r, row, 9), "compensation", order_compensation_state(status, seen));
}

/*
 * What the saga waits for (docs/API.md, "waiting"), from the choreography
 * (saga/choreography.h): the steps owed and who owes them, and for a PENDING order when the
 * sweeper cancels it. types: the timeline's event types, comma-separated; age_ms: how long
 * ago the order was placed, by the database's clock (which the sweeper uses too).
 */
static json_t *order_waiting(const char *status, const char *types, int64_t age_ms)
{
    struct saga_expectation x[16];
    int seen[SAGA_EV_COUNT], n, pending = !strcmp(status, "PENDING");
    int64_t left = order_app.timeout_ms - age_ms;

    order_count_event_types(types, seen);
    n = saga_choreo_expected(status, seen, x, 16);
    return json_pack("{s:o, s:I, s:I, s:o}", "on", saga_choreo_expected_json(x, n < 16 ? n : 16),
                     "saga_timeout_ms", (json_int_t)order_app.timeout_ms, "sweep_interval_ms",
                     (json_int_t)order_app.sweep_every_ms, "deadline_in_ms",
                     pending ? json_integer(left > 0 ? left : 0) : json_null());
}

/*
 * trace_id: the order's trace (the POST /orders span's; every span of its saga is in it),
 * null for an order placed before orders kept their traceparent; trace_url: where the
 * tracing backend's UI shows it, when TRACING_UI_URL is set.
 */
static void order_set_trace(json_t *o, const char *traceparent)
{
    char trace_id[33], url[600];
    saga_traceparent_trace_id(traceparent, trace_id);
    json_object_set_new(o, "trace_id", trace_id[0] ? json_string(trace_id) : json_null());
    if (trace_id[0] && order_app.tracing_ui_url) {
        snprintf(url, sizeof(url), "%s/trace/%s", order_app.tracing_ui_url, trace_id);
        json_object_set_new(o, "trace_url", json_string(url));
    }
}

/*
 * The full order: summary, items, address and the timeline in causal order.
 * NULL with *found = 0 for an unknown order; NULL with *found = 1 after a
 * database failure (already answered in resp).
 */
static json_t *order_full(PGconn *conn, const char *order_id, const char *owner,
                          struct saga_http_response *resp, int *broken, int *found)
{
    char limit[24];
    const char *p[2] = {order_id, owner}, *tp[2] = {order_id, limit};
    PGresult *r, *t;
    json_t *o, *tl, *items, *addr;
    struct order_tl_entry *e;
    int n, truncated;

    *found = 1;
    r = query(conn,
              "SELECT " ORDER_COLUMNS ", o.shipping_address::text, o.correlation_id,"
              " (SELECT json_agg(json_build_object('sku', sku, 'name', name, 'quantity',"
              "   quantity, 'unit_price', unit_price) ORDER BY line_no)"
              "  FROM order_items i WHERE i.order_id = o.order_id)::text,"
              " (extract(epoch FROM clock_timestamp() - o.created_at) * 1000)::bigint,"
              " coalesce(o.traceparent, '')"
              " FROM orders o WHERE o.order_id = $1 AND ($2::text IS NULL OR o.customer_id = $2)",
              2, p);
    if (!ok(r)) {
        db_failure(resp, conn, r, broken);
        PQclear(r);
        return NULL;
    }
    if (PQntuples(r) == 0) {
        PQclear(r);
        *found = 0;
        return NULL;
    }
    /* The first ORDER_TIMELINE_MAX events recorded (one more to tell whether there are more). */
    snprintf(limit, sizeof(limit), "%ld", order_app.timeline_max + 1);
    t = query(conn,
              "SELECT event_id, event_type, service, causation_id, summary,"
              " (extract(epoch FROM occurred_at) * 1000)::bigint, seq, " TS(
                  "occurred_at") " FROM timeline WHERE order_id = $1 ORDER BY seq LIMIT $2",
              2, tp);
    if (!ok(t)) {
        db_failure(resp, conn, t, broken);
        PQclear(r);
        PQclear(t);
        return NULL;
    }
    o = order_summary(r, 0);
    addr = json_loads(PQgetvalue(r, 0, 12), 0, NULL);
    items = json_loads(PQgetvalue(r, 0, 14), 0, NULL);
    json_object_set_new(o, "shipping_address", addr ? addr : json_null());
    json_object_set_new(o, "items", items ? items : json_array());
    json_object_set_new(o, "correlation_id", json_string(PQgetvalue(r, 0, 13)));
    order_set_trace(o, PQgetvalue(r, 0, 16));

    n = PQntuples(t);
    truncated = n > order_app.timeline_max;
    if (truncated)
        n = (int)order_app.timeline_max;
    e = calloc(n ? (size_t)n : 1, sizeof(*e));
    if (!e)
        abort();
    for (int i = 0; i < n; i++) {
        e[i].event_id = PQgetvalue(t, i, 0);
        e[i].causation_id = PQgetisnull(t, i, 3) ? NULL : PQgetvalue(t, i, 3);
        e[i].occurred_at = strtoll(PQgetvalue(t, i, 5), NULL, 10);
        e[i].seq = strtoll(PQgetvalue(t, i, 6), NULL, 10);
        e[i].index = i;
    }
    order_timeline_causal_sort(e, (size_t)n);
    tl = json_array();
    for (int k = 0; k < n; k++) {
        int i = e[k].index;
        saga_event_type_t type = SAGA_EV_COUNT;
        saga_event_type_parse(PQgetvalue(t, i, 1), &type);
        json_array_append_new(
            tl, json_pack("{s:s, s:s, s:s, s:s, s:o, s:s, s:b}", "event_type", PQgetvalue(t, i, 1),
                          "service", PQgetvalue(t, i, 2), "occurred_at", PQgetvalue(t, i, 7),
                          "event_id", PQgetvalue(t, i, 0), "causation_id", nullable(t, i, 3),
                          "summary", PQgetvalue(t, i, 4), "compensation",
                          type < SAGA_EV_COUNT && order_event_is_compensation(type)));
    }
    json_object_set_new(o, "timeline", tl);
    json_object_set_new(o, "timeline_truncated", json_boolean(truncated));
    json_object_set_new(o, "waiting",
                        order_waiting(PQgetvalue(r, 0, 1), PQgetvalue(r, 0, 10),
                                      strtoll(PQgetvalue(r, 0, 15), NULL, 10)));
    free(e);
    PQclear(r);
    PQclear(t);
    return o;
}

/* owner: the customer the order must belong to (else 404), or NULL for any. */
static void reply_order(struct saga_http_response *resp, PGconn *conn, const char *order_id,
                        const char *owner, int status, int *broken)
{
    int found;
    json_t *o = order_full(conn, order_id, owner, resp, broken, &found);
    if (o)
        saga_http_reply_json(resp, status, o);
    else if (!found)
        saga_http_reply_error(resp, 404, "not_found", "no order %s", order_id);
}

static void reply_invalid(struct saga_http_response *resp, const struct order_errors *errs)
{
    json_t *fields = json_array();
    for (int i = 0; i < errs->n; i++)
        json_array_append_new(fields, json_pack("{s:s, s:s}", "field", errs->e[i].field, "message",
                                                errs->e[i].message));
    saga_http_reply_json(
        resp, 422,
        json_pack("{s:s, s:s, s:o}", "error", "validation_failed", "message",
                  errs->n == 1 ? errs->e[0].message : "several fields are not valid", "fields",
                  fields));
}

/* --- a COMMIT whose answer the connection did not bring back ----------------- */

enum tx_outcome { TX_COMMITTED, TX_ROLLED_BACK, TX_UNKNOWN };

/* The id of conn's open transaction (pg_current_xact_id, as text) into xid; 0 / -1. */
static int current_xid(PGconn *conn, char xid[24])
{
    PGresult *r = query(conn, "SELECT pg_current_xact_id()::text", 0, NULL);
    int rc = PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1 ? 0 : -1;
    if (rc == 0)
        snprintf(xid, 24, "%s", PQgetvalue(r, 0, 0));
    PQclear(r);
    return rc;
}

static void sleep_ms(int ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/*
 * Whether transaction xid, which backend pid was committing when the connection
 * broke, committed: asked on a fresh connection (pg_xact_status). While it is in
 * progress the server may not have read the COMMIT yet, so this waits; a backend
 * still idle in that transaction 2 s later never got the COMMIT (the connection is
 * half-open): it is ended, which rolls the transaction back, so the answer is
 * definite either way. TX_UNKNOWN only when the database cannot be asked (or, e.g.
 * behind a pooler, the transaction stays in progress for 10 s).
 * Any HTTP thread; opens and closes its own connection.
 */
static enum tx_outcome tx_outcome(struct order_app *app, const char *xid, int pid)
{
    char err[512], pid_s[16], xid32[16];
    int64_t now = saga_now_ms(), until = now + 10000, idle_since = 0;
    enum tx_outcome out = TX_UNKNOWN;
    PGconn *c = saga_pg_connect(app->cfg->database_url, NULL, err, sizeof(err));

    if (!c) {
        saga_warn("order api: cannot ask whether transaction %s committed: %s", xid, err);
        return TX_UNKNOWN;
    }
    snprintf(pid_s, sizeof(pid_s), "%d", pid);
    /* pg_stat_activity shows the 32-bit xid: xid8 without its epoch. */
    snprintf(xid32, sizeof(xid32), "%llu", strtoull(xid, NULL, 10) & 0xffffffffULL);
    for (;;) {
        const char *p[3] = {xid, pid_s, xid32};
        PGresult *r = PQexecParams(c,
                                   "SELECT pg_xact_status($1::xid8), (SELECT state FROM"
                                   " pg_stat_activity WHERE pid = $2::int AND"
                                   " backend_xid::text = $3)",
                                   3, NULL, p, NULL, NULL, 0);
        const char *status, *state;
        if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
            saga_pg_errstr(c, err, sizeof(err));
            saga_warn("order api: cannot ask whether transaction %s committed: %s", xid, err);
            PQclear(r);
            break;
        }
        status = PQgetvalue(r, 0, 0);
        state = PQgetisnull(r, 0, 1) ? "" : PQgetvalue(r, 0, 1);
        if (strcmp(status, "committed") == 0 || strcmp(status, "aborted") == 0) {
            out = status[0] == 'c' ? TX_COMMITTED : TX_ROLLED_BACK;
            PQclear(r);
            break;
        }
        now = saga_now_ms();
        if (strncmp(state, "idle in transaction", 19) != 0)
            idle_since = 0;
        else if (!idle_since)
            idle_since = now;
        else if (now - idle_since >= 2000) {
            saga_warn("order api: backend %d never got the COMMIT of transaction %s: ending it",
                      pid, xid);
            PQclear(PQexecParams(c, "SELECT pg_terminate_backend($1::int, 5000)", 1, NULL, p + 1,
                                 NULL, NULL, 0));
            idle_since = 0;
        }
        PQclear(r);
        if (now >= until) {
            saga_warn("order api: transaction %s is still in progress", xid);
            break;
        }
        sleep_ms(20);
    }
    PQfinish(c);
    return out;
}

/*
 * After saga_outbox_commit_notify failed: whether the transaction committed
 * after all. The error alone cannot tell: a connection lost while the COMMIT ran
 * (libpq's "could not receive data", "server closed the connection") leaves the
 * outcome open, and libpq does not always mark such a connection bad. So the
 * database is asked, also when it refused the COMMIT itself (then it says aborted).
 */
static enum tx_outcome commit_failed(struct order_app *app, const char *err, const char *xid,
                                     int pid, int *broken)
{
    *broken = 1;
    saga_warn("order api: the COMMIT failed (%s): asking the database whether it happened", err);
    return tx_outcome(app, xid, pid);
}

/* 503: what the request was meant to store may or may not be stored; order_id says where
 * to look. */
static void reply_outcome_unknown(struct saga_http_response *resp, const char *order_id,
                                  const char *what)
{
    char msg[400];
    snprintf(msg, sizeof(msg),
             "the database connection broke while %s was being committed, and whether it was "
             "stored cannot be told now: GET /orders/%s shows the order; retry with the same "
             "Idempotency-Key",
             what, order_id);
    saga_http_reply_json(resp, 503,
                         json_pack("{s:s, s:s, s:s}", "error", "outcome_unknown", "message", msg,
                                   "order_id", order_id));
    saga_http_add_header(resp, "Retry-After", "1");
}

/* --- who is asking ----------------------------------------------------------- */

int order_authenticate(struct order_app *app, const struct saga_http_request *req,
                       const char *token, struct saga_principal *who,
                       struct saga_http_response *resp)
{
    char err[256];
    if (saga_auth_verify(app->auth, saga_http_header(req, "Authorization"), token, who, err,
                         sizeof(err)) == SAGA_OK)
        return 0;
    saga_http_count_refused(SAGA_HTTP_REFUSED_AUTH);
    saga_http_reply_error(resp, 401, "unauthorized",
                          "%s: send Authorization: Bearer <token> (docs/API.md, Authentication)",
                          err);
    saga_http_add_header(resp, "WWW-Authenticate", "Bearer realm=\"order-api\"");
    return -1;
}

/* The customer whose orders who may see: their own, or NULL (an operator: every order). */
static const char *owner_of(const struct saga_principal *who)
{
    return who->role == SAGA_ROLE_CUSTOMER ? who->sub : NULL;
}

/*
 * The body a customer places: customer_id must be their own, and is theirs when
 * absent (*body then a malloc'd copy with it set, else NULL: req's body as sent).
 * 0, or -1 after answering 403.
 */
static int customer_body(const struct saga_principal *who, const struct saga_http_request *req,
                         char **body, struct saga_http_response *resp)
{
    json_t *root, *cid;
    int rc = 0;

    *body = NULL;
    if (who->role != SAGA_ROLE_CUSTOMER ||
        !(root = json_loadb(req->body, req->body_len, JSON_REJECT_DUPLICATES, NULL)))
        return 0; /* an operator, or malformed JSON: the parser says what is wrong */
    cid = json_object_get(root, "customer_id");
    if (json_is_object(root) && (!cid || json_is_null(cid))) {
        json_object_set_new(root, "customer_id", json_string(who->sub));
        *body = json_dumps(root, JSON_COMPACT);
    } else if (json_is_string(cid) && strcmp(json_string_value(cid), who->sub) != 0) {
        saga_http_reply_error(resp, 403, "forbidden",
                              "customer_id must be the token's own customer (%s) or left out",
                              who->sub);
        rc = -1;
    }
    json_decref(root);
    return rc;
}

/* --- POST /orders ------------------------------------------------------------ */

/* One POST /orders on its way through the steps below. Each step returns 0 to go on, or
 * -1 once it has answered (the transaction then rolled back, as far as the connection
 * still allows). */
struct placing {
    struct order_app *app;
    struct order_slot *s;
    struct saga_http_response *resp;
    const char *span; /* the order's traceparent */
    struct order_request o;
    struct saga_order_line lines[ORDER_MAX_ITEMS];
    char names[ORDER_MAX_ITEMS][128];
    char *sku_arr; /* the items' SKUs as a text[] literal */
    int64_t total;
    char order_id[37], event_id[37], xid[24];
    int broken; /* the connection is unusable: the pool drops it */
};

/* Answers a failed statement r (freed) and rolls back. */
static int placing_dbfail(struct placing *pl, PGresult *r)
{
    db_failure(pl->resp, pl->s->conn, r, &pl->broken);
    PQclear(r);
    if (PQstatus(pl->s->conn) == CONNECTION_OK)
        rollback(pl->s->conn);
    return -1;
}

/* The request: its headers, its body parsed into *o (released by the caller on 0), and a
 * customer ordering for no one but themselves. */
static int placing_read(const struct saga_http_request *req, const struct saga_principal *who,
                        struct saga_http_response *resp, struct order_request *o)
{
    struct order_errors errs;
    const char *key = saga_http_header(req, "Idempotency-Key");
    char err[512], *body = NULL;

    if (!order_content_type_is_json(saga_http_header(req, "Content-Type"))) {
        saga_http_reply_error(resp, 415, "unsupported_media_type",
                              "send the order as Content-Type: application/json");
        return -1;
    }
    if (key && !order_idempotency_key_valid(key)) {
        saga_http_reply_error(resp, 400, "bad_request",
                              "Idempotency-Key must be 1 to %d visible ASCII characters",
                              ORDER_MAX_KEY_LEN);
        return -1;
    }
    if (customer_body(who, req, &body, resp) != 0)
        return -1;
    switch (order_parse_request(body ? body : req->body, body ? strlen(body) : req->body_len, o,
                                &errs, err, sizeof(err))) {
    case ORDER_PARSE_MALFORMED:
        saga_http_reply_error(resp, 400, "malformed_json", "%s", err);
        free(body);
        return -1;
    case ORDER_PARSE_INVALID:
        reply_invalid(resp, &errs);
        free(body);
        return -1;
    case ORDER_PARSE_OK:
        break;
    }
    free(body);
    /* What was parsed decides, whatever customer_body saw. */
    if (who->role == SAGA_ROLE_CUSTOMER && strcmp(o->customer_id, who->sub) != 0) {
        saga_http_reply_error(resp, 403, "forbidden",
                              "customer_id must be the token's own customer (%s) or left out",
                              who->sub);
        order_request_release(o);
        return -1;
    }
    return 0;
}

/* Pricing: opens the transaction and prices each line from the catalogue (lines, names,
 * total); an unknown SKU or another currency answers 422. */
static int placing_price(struct placing *pl)
{
    struct order_request *o = &pl->o;
    struct order_errors errs = {0};
    const char *skus[ORDER_MAX_ITEMS];
    PGresult *r;

    for (size_t i = 0; i < o->nitems; i++)
        skus[i] = o->items[i].sku;
    pl->sku_arr = saga_pg_text_array(skus, o->nitems);
    r = saga_pg_query(pl->s->conn, "BEGIN");
    if (!ok(r))
        return placing_dbfail(pl, r);
    PQclear(r);
    {
        const char *p[1] = {pl->sku_arr};
        r = query(
            pl->s->conn,
            "SELECT sku, name, unit_price, currency FROM products WHERE sku = ANY($1::text[])", 1,
            p);
        if (!ok(r))
            return placing_dbfail(pl, r);
    }
    for (size_t i = 0; i < o->nitems; i++) {
        int row = -1;
        for (int k = 0; k < PQntuples(r); k++)
            if (strcmp(PQgetvalue(r, k, 0), o->items[i].sku) == 0)
                row = k;
        if (row < 0) {
            if (errs.n < ORDER_MAX_FIELD_ERRORS) {
                snprintf(errs.e[errs.n].field, sizeof(errs.e[0].field), "items[%zu].sku", i);
                snprintf(errs.e[errs.n].message, sizeof(errs.e[0].message),
                         "unknown SKU '%s' (GET /products lists the catalogue)", o->items[i].sku);
                errs.n++;
            }
            continue;
        }
        if (strcmp(PQgetvalue(r, row, 3), o->currency) != 0 && errs.n < ORDER_MAX_FIELD_ERRORS) {
            snprintf(errs.e[errs.n].field, sizeof(errs.e[0].field), "currency");
            snprintf(errs.e[errs.n].message, sizeof(errs.e[0].message), "the catalogue sells in %s",
                     PQgetvalue(r, row, 3));
            errs.n++;
            continue;
        }
        pl->lines[i].sku = o->items[i].sku;
        pl->lines[i].quantity = o->items[i].quantity;
        pl->lines[i].unit_price = strtoll(PQgetvalue(r, row, 2), NULL, 10);
        snprintf(pl->names[i], sizeof(pl->names[i]), "%s", PQgetvalue(r, row, 1));
        pl->total += pl->lines[i].unit_price * pl->lines[i].quantity;
    }
    PQclear(r);
    if (errs.n) {
        rollback(pl->s->conn);
        reply_invalid(pl->resp, &errs);
        return -1;
    }
    return 0;
}

/* Idempotency: claims key (the principal's own: another's same key is another order) for
 * this order. A key used before for the same request answers with that order (replayed),
 * for another request 409. */
static int placing_claim_key(struct placing *pl, const char *key, const char *principal)
{
    char *canon = order_request_canonical(&pl->o), location[64];
    const char *p[4] = {key, canon, principal, pl->order_id};
    PGresult *r;

    r = query(pl->s->conn,
              "INSERT INTO idempotency_keys (key, request_hash, principal, order_id)"
              " VALUES ($1, encode(sha256(convert_to($2, 'UTF8')), 'hex'), $3, $4)"
              " ON CONFLICT (principal, key) DO NOTHING RETURNING 1",
              4, p);
    if (!ok(r))
        goto dbfail;
    if (PQntuples(r) > 0) {
        PQclear(r);
        free(canon);
        return 0;
    }
    PQclear(r);
    r = query(pl->s->conn,
              "SELECT request_hash = encode(sha256(convert_to($2, 'UTF8')), 'hex'),"
              " order_id FROM idempotency_keys WHERE key = $1 AND principal = $3",
              3, p);
    if (!ok(r) || PQntuples(r) != 1)
        goto dbfail;
    free(canon);
    if (PQgetvalue(r, 0, 0)[0] != 't') {
        PQclear(r);
        rollback(pl->s->conn);
        saga_http_reply_error(pl->resp, 409, "idempotency_key_reused",
                              "Idempotency-Key '%s' was used for a different order", key);
        return -1;
    }
    snprintf(pl->order_id, sizeof(pl->order_id), "%s", PQgetvalue(r, 0, 1));
    PQclear(r);
    rollback(pl->s->conn);
    pl->app->replayed++;
    snprintf(location, sizeof(location), "/orders/%s", pl->order_id);
    reply_order(pl->resp, pl->s->conn, pl->order_id, NULL, 200, &pl->broken);
    saga_http_add_header(pl->resp, "Location", location);
    saga_http_add_header(pl->resp, "Idempotent-Replayed", "true");
    return -1;
dbfail:
    free(canon);
    return placing_dbfail(pl, r);
}

/* Inserts: the order's row (noting the transaction's id, for a COMMIT whose answer is
 * lost) and its lines. */
static int placing_insert(struct placing *pl)
{
    const struct order_request *o = &pl->o;
    char total_s[32], *addr, *name_lit;
    const char *nm[ORDER_MAX_ITEMS];
    struct saga_text qty = {0}, price = {0};
    PGresult *r;

    addr = json_dumps(json_object_get(o->root, "shipping_address"), JSON_COMPACT | JSON_SORT_KEYS);
    snprintf(total_s, sizeof(total_s), "%" PRId64, pl->total);
    {
        const char *p[8] = {pl->order_id,     o->customer_id, o->currency,  total_s,
                            o->payment_token, addr,           pl->event_id, pl->span};
        r = query(pl->s->conn,
                  "INSERT INTO orders (order_id, customer_id, currency, total_amount,"
                  " payment_token, shipping_address, status, correlation_id, placed_event_id,"
                  " traceparent) VALUES ($1, $2, $3, $4, $5, $6::jsonb, 'PENDING', $1, $7, $8)"
                  " RETURNING pg_current_xact_id()::text",
                  8, p);
    }
    free(addr);
    if (!ok(r) || PQntuples(r) != 1)
        return placing_dbfail(pl, r);
    snprintf(pl->xid, sizeof(pl->xid), "%s", PQgetvalue(r, 0, 0));
    PQclear(r);

    saga_pg_array_begin(&qty);
    saga_pg_array_begin(&price);
    for (size_t i = 0; i < o->nitems; i++) {
        saga_pg_array_int(&qty, pl->lines[i].quantity);
        saga_pg_array_int(&price, pl->lines[i].unit_price);
        nm[i] = pl->names[i];
    }
    saga_pg_array_end(&qty);
    saga_pg_array_end(&price);
    name_lit = saga_pg_text_array(nm, o->nitems);
    {
        const char *p[5] = {pl->order_id, pl->sku_arr, qty.data, price.data, name_lit};
        r = query(pl->s->conn,
                  "INSERT INTO order_items (order_id, line_no, sku, quantity, unit_price, name)"
                  " SELECT $1, n, sku, q, price, name FROM unnest($2::text[], $3::int[],"
                  " $4::bigint[], $5::text[]) WITH ORDINALITY AS l(sku, q, price, name, n)",
                  5, p);
    }
    free(name_lit);
    free(qty.data);
    free(price.data);
    if (!ok(r))
        return placing_dbfail(pl, r);
    PQclear(r);
    return 0;
}

/* The event: OrderPlaced to the outbox and to the order's timeline. */
static int placing_event(struct placing *pl)
{
    const struct order_request *o = &pl->o;
    struct saga_event ev;
    char err[512];

    saga_event_init(&ev, SAGA_EV_ORDER_PLACED);
    ev.meta.event_id = pl->event_id;
    ev.meta.order_id = pl->order_id;
    ev.meta.correlation_id = pl->order_id;
    ev.meta.causation_id = NULL;
    ev.meta.occurred_at = saga_now_ms();
    ev.meta.producer = "order-service";
    ev.meta.traceparent = pl->span;
    ev.u.order_placed.customer_id = o->customer_id;
    ev.u.order_placed.items = pl->lines;
    ev.u.order_placed.item_count = o->nitems;
    ev.u.order_placed.currency = o->currency;
    ev.u.order_placed.total_amount = pl->total;
    ev.u.order_placed.payment_token = o->payment_token;
    ev.u.order_placed.shipping_address = o->address;
    if (saga_outbox_append_event(pl->s->conn, pl->s->serde, &ev, &pl->s->scratch, err,
                                 sizeof(err)) ||
        order_timeline_add(pl->s->conn, &ev, err, sizeof(err))) {
        saga_warn("order api: %s", err);
        rollback(pl->s->conn);
        pl->broken = PQstatus(pl->s->conn) != CONNECTION_OK;
        saga_http_reply_error(pl->resp, 503, "unavailable",
                              "the order could not be stored; nothing was changed, retry");
        saga_http_add_header(pl->resp, "Retry-After", "1");
        return -1;
    }
    return 0;
}

/* The commit: reads the answer (*answer) inside the transaction, before the COMMIT, so
 * that once the order is committed nothing can fail between the commit and the answer;
 * then commits and wakes the relay. */
static int placing_commit(struct placing *pl, json_t **answer)
{
    char err[512];
    int found, pid;
    saga_err_t ce;

    if (!(*answer = order_full(pl->s->conn, pl->order_id, NULL, pl->resp, &pl->broken, &found))) {
        if (!found)
            saga_http_reply_error(pl->resp, 500, "internal", "internal error");
        if (PQstatus(pl->s->conn) == CONNECTION_OK)
            rollback(pl->s->conn);
        return -1;
    }
    /* The relay's wake-up goes after the COMMIT (saga/outbox.h says why). */
    pid = PQbackendPID(pl->s->conn);
    ce = saga_outbox_commit_notify(pl->s->conn, err, sizeof(err));
    if (ce) {
        switch (commit_failed(pl->app, err, pl->xid, pid, &pl->broken)) {
        case TX_COMMITTED:
            saga_warn("order api: order %s was committed after all", pl->order_id);
            break;
        case TX_ROLLED_BACK:
            db_failure_err(pl->resp, pl->s->conn, ce, err, &pl->broken);
            return -1;
        case TX_UNKNOWN:
            reply_outcome_unknown(pl->resp, pl->order_id, "the order");
            return -1;
        }
    }
    saga_fault_break_socket("order.after_commit", PQsocket(pl->s->conn));
    return 0;
}

/* The reply: 202 with the order as committed (answer, taken) and its Location. */
static void placing_reply(struct placing *pl, json_t *answer)
{
    const struct order_request *o = &pl->o;
    char trace_id[33], location[64];

    pl->app->placed++;
    saga_produced_add(SAGA_EV_ORDER_PLACED, 1);
    saga_traceparent_trace_id(pl->span, trace_id);
    saga_log(SAGA_LOG_INFO,
             &(struct saga_log_ids){pl->order_id, pl->event_id, pl->order_id, trace_id},
             "order placed: %zu line%s, total %" PRId64 " %s, customer %s", o->nitems,
             o->nitems == 1 ? "" : "s", pl->total, o->currency, o->customer_id);
    snprintf(location, sizeof(location), "/orders/%s", pl->order_id);
    saga_http_reply_json(pl->resp, 202, answer);
    saga_http_add_header(pl->resp, "Location", location);
}

/* POST /orders in the order's span (span, a traceparent); order_id_out gets the order's id
 * when there is one. The order, its lines, OrderPlaced to the outbox and the timeline are
 * one transaction. */
static void place_order_in(struct order_app *app, const struct saga_http_request *req,
                           const struct saga_principal *who, struct saga_http_response *resp,
                           const char *span, char order_id_out[37])
{
    struct placing *pl;
    const char *key = saga_http_header(req, "Idempotency-Key");
    char principal[80];
    json_t *answer = NULL;
    struct saga_span txspan = {0};

    if (!(pl = calloc(1, sizeof(*pl))))
        abort();
    pl->app = app;
    pl->resp = resp;
    pl->span = span;
    if (placing_read(req, who, resp, &pl->o) != 0) {
        free(pl);
        return;
    }
    snprintf(principal, sizeof(principal), "%s:%s", saga_role2str(who->role), who->sub);
    if (!(pl->s = pool_get_or_503(app, resp))) {
        order_request_release(&pl->o);
        free(pl);
        return;
    }
    if (placing_price(pl) != 0)
        goto out;
    saga_uuid4(pl->order_id);
    saga_uuid4(pl->event_id);
    if (saga_otel_enabled()) { /* the order's transaction, a child of the server span */
        char self[SAGA_TRACEPARENT_LEN + 1];
        saga_traceparent_child(span, self);
        if (saga_span_begin(&txspan, "order transaction", SAGA_SPAN_CLIENT, self, span)) {
            saga_span_str(&txspan, "saga.order_id", pl->order_id);
            saga_span_str(&txspan, "db.system.name", "postgresql");
        }
    }
    if ((key && placing_claim_key(pl, key, principal) != 0) || placing_insert(pl) != 0 ||
        placing_event(pl) != 0 || placing_commit(pl, &answer) != 0)
        goto out;
    placing_reply(pl, answer);
    answer = NULL;
out:
    if (txspan.recording) {
        if (resp->status != 202)
            saga_span_error(&txspan, "HTTP %d: not committed", resp->status);
        saga_span_end(&txspan);
    }
    memcpy(order_id_out, pl->order_id, sizeof(pl->order_id));
    json_decref(answer);
    free(pl->sku_arr);
    order_request_release(&pl->o);
    order_pool_put(app, pl->s, pl->broken);
    free(pl);
}

static void place_order(struct order_app *app, const struct saga_http_request *req,
                        const struct saga_principal *who, struct saga_http_response *resp)
{
    char span[SAGA_TRACEPARENT_LEN + 1], order_id[37] = "";
    const char *caller = saga_http_header(req, "traceparent");
    struct saga_span server;

    /* The order's span: a child of the caller's traceparent, or a new trace (whose flags
     * the sampler sets). It is the POST /orders server span, and OrderPlaced carries it. */
    if (saga_traceparent_valid(caller))
        saga_traceparent_child(caller, span);
    else
        saga_otel_traceparent_root(span);
    saga_span_begin(&server, "POST /orders", SAGA_SPAN_SERVER, span, caller);
    place_order_in(app, req, who, resp, span, order_id);
    if (server.recording) {
        saga_span_str(&server, "http.request.method", "POST");
        saga_span_str(&server, "http.route", "/orders");
        saga_span_int(&server, "http.response.status_code", resp->status);
        if (order_id[0])
            saga_span_str(&server, "saga.order_id", order_id);
        if (resp->status >= 500)
            saga_span_error(&server, "HTTP %d", resp->status);
        saga_span_end(&server);
    }
}

/* --- GET /orders ----------------------------------------------------------- */

static int all_digits(const char *s)
{
    if (!s || !*s || strlen(s) > 18)
        return 0;
    for (; *s; s++)
        if (!isdigit((unsigned char)*s))
            return 0;
    return 1;
}

static void list_orders(struct order_app *app, const struct saga_http_request *req,
                        const struct saga_principal *who, struct saga_http_response *resp)
{
    const char *status = saga_http_query(req, "status");
    const char *limit_s = saga_http_query(req, "limit");
    const char *cursor = saga_http_query(req, "cursor");
    struct order_slot *s;
    char limit_buf[16], next[32];
    long limit = 20;
    int broken = 0, n;
    PGresult *r;
    json_t *list;

    if (status && *status && !order_status_valid(status)) {
        saga_http_reply_error(resp, 400, "bad_request",
                              "status must be PENDING, CONFIRMED or CANCELLED");
        return;
    }
    if (limit_s && *limit_s) {
        if (!all_digits(limit_s) || (limit = strtol(limit_s, NULL, 10)) < 1 || limit > 100) {
            saga_http_reply_error(resp, 400, "bad_request", "limit must be between 1 and 100");
            return;
        }
    }
    if (cursor && *cursor && !all_digits(cursor)) {
        saga_http_reply_error(resp, 400, "bad_request",
                              "cursor must be a next_cursor value from an earlier page");
        return;
    }
    if (!(s = pool_get_or_503(app, resp)))
        return;
    snprintf(limit_buf, sizeof(limit_buf), "%ld", limit + 1);
    {
        const char *p[4] = {status && *status ? status : NULL, cursor && *cursor ? cursor : NULL,
                            limit_buf, owner_of(who)};
        r = query(s->conn,
                  "SELECT " ORDER_COLUMNS " FROM orders o"
                  " WHERE ($1::text IS NULL OR o.status = $1)"
                  " AND ($2::bigint IS NULL OR o.seq < $2::bigint)"
                  " AND ($4::text IS NULL OR o.customer_id = $4)"
                  " ORDER BY o.seq DESC LIMIT $3::int",
                  4, p);
    }
    if (!ok(r)) {
        db_failure(resp, s->conn, r, &broken);
        PQclear(r);
        order_pool_put(app, s, broken);
        return;
    }
    n = PQntuples(r);
    list = json_array();
    for (int i = 0; i < n && i < limit; i++)
        json_array_append_new(list, order_summary(r, i));
    if (n > limit)
        snprintf(next, sizeof(next), "%s", PQgetvalue(r, (int)limit - 1, 11));
    saga_http_reply_json(resp, 200,
                         json_pack("{s:o, s:o}", "orders", list, "next_cursor",
                                   n > limit ? json_string(next) : json_null()));
    PQclear(r);
    order_pool_put(app, s, broken);
}

/* --- GET /orders/{id}, POST /orders/{id}/cancel, GET /products ------------- */

static void get_order(struct order_app *app, const char *id, const struct saga_principal *who,
                      struct saga_http_response *resp)
{
    struct order_slot *s;
    int broken = 0;

    if (!saga_uuid_valid(id)) {
        saga_http_reply_error(resp, 404, "not_found", "no order %s (order ids are UUIDs)", id);
        return;
    }
    if (!(s = pool_get_or_503(app, resp)))
        return;
    reply_order(resp, s->conn, id, owner_of(who), 200, &broken);
    order_pool_put(app, s, broken);
}

static void cancel_order(struct order_app *app, const char *id, const struct saga_principal *who,
                         struct saga_http_response *resp)
{
    struct order_slot *s;
    char err[512], status[16] = "", xid[24];
    int broken = 0, changed = 0, found, pid;
    json_t *answer = NULL;
    saga_err_t e, ce;
    PGresult *r;
    struct saga_span span = {0}; /* begun by order_cancel_in_tx when it cancels */

    if (!saga_uuid_valid(id)) {
        saga_http_reply_error(resp, 404, "not_found", "no order %s (order ids are UUIDs)", id);
        return;
    }
    if (!(s = pool_get_or_503(app, resp)))
        return;
    r = saga_pg_query(s->conn, "BEGIN");
    if (!ok(r)) {
        db_failure(resp, s->conn, r, &broken);
        PQclear(r);
        order_pool_put(app, s, broken);
        return;
    }
    PQclear(r);
    if (owner_of(who)) {
        /* Another customer's order is not found: its existence is not theirs to know. */
        const char *p[2] = {id, owner_of(who)};
        r = query(s->conn, "SELECT 1 FROM orders WHERE order_id = $1 AND customer_id = $2", 2, p);
        if (!ok(r)) {
            db_failure(resp, s->conn, r, &broken);
            PQclear(r);
            if (PQstatus(s->conn) == CONNECTION_OK)
                rollback(s->conn);
            goto out;
        }
        found = PQntuples(r);
        PQclear(r);
        if (!found) {
            rollback(s->conn);
            saga_http_reply_error(resp, 404, "not_found", "no order %s", id);
            goto out;
        }
    }
    e = order_cancel_in_tx(s, id, SAGA_CANCEL_CUSTOMER_REQUEST, "requested by the customer", status,
                           sizeof(status), &changed, &span, err, sizeof(err));
    if (e == SAGA_ERR_NOT_FOUND) {
        rollback(s->conn);
        saga_http_reply_error(resp, 404, "not_found", "no order %s", id);
        goto out;
    }
    if (!e && changed && current_xid(s->conn, xid) != 0) {
        saga_pg_errstr(s->conn, err, sizeof(err));
        e = SAGA_ERR_TRANSIENT;
    }
    if (e) {
        rollback(s->conn);
        broken = PQstatus(s->conn) != CONNECTION_OK;
        saga_warn("order api: cancel %s: %s", id, err);
        saga_http_reply_error(resp, 503, "unavailable",
                              "the order could not be cancelled now; nothing was changed, retry");
        saga_http_add_header(resp, "Retry-After", "1");
        goto out;
    }
    if (!changed) {
        /* CONFIRMED or CANCELLED already: final, nothing to commit. */
        rollback(s->conn);
        if (strcmp(status, "CONFIRMED") == 0)
            saga_http_reply_error(resp, 409, "conflict",
                                  "order %s is CONFIRMED; only PENDING orders can be cancelled",
                                  id);
        else
            reply_order(resp, s->conn, id, NULL, 200, &broken);
        goto out;
    }
    /* As for POST /orders: the answer is read before the COMMIT. */
    if (!(answer = order_full(s->conn, id, NULL, resp, &broken, &found))) {
        if (!found)
            saga_http_reply_error(resp, 500, "internal", "internal error");
        if (PQstatus(s->conn) == CONNECTION_OK)
            rollback(s->conn);
        goto out;
    }
    pid = PQbackendPID(s->conn);
    ce = saga_outbox_commit_notify(s->conn, err, sizeof(err));
    if (ce) {
        switch (commit_failed(app, err, xid, pid, &broken)) {
        case TX_COMMITTED:
            saga_warn("order api: the cancellation of %s was committed after all", id);
            break;
        case TX_ROLLED_BACK:
            db_failure_err(resp, s->conn, ce, err, &broken);
            goto out;
        case TX_UNKNOWN:
            reply_outcome_unknown(resp, id, "the cancellation of the order");
            goto out;
        }
    }
    saga_fault_break_socket("order.after_commit", PQsocket(s->conn));
    app->customer_cancels++;
    saga_produced_add(SAGA_EV_ORDER_CANCELLED, 1);
    saga_http_reply_json(resp, 200, answer);
    answer = NULL;
out:
    if (span.recording) {
        saga_span_int(&span, "http.response.status_code", resp->status);
        if (resp->status >= 500)
            saga_span_error(&span, "HTTP %d", resp->status);
        saga_span_end(&span);
    }
    json_decref(answer);
    order_pool_put(app, s, broken);
}

static void list_products(struct order_app *app, struct saga_http_response *resp)
{
    struct order_slot *s;
    int broken = 0;
    PGresult *r;
    json_t *list;

    if (!(s = pool_get_or_503(app, resp)))
        return;
    r = saga_pg_query(s->conn, "SELECT sku, name, unit_price, currency FROM products ORDER BY sku");
    if (!ok(r)) {
        db_failure(resp, s->conn, r, &broken);
    } else {
        list = json_array();
        for (int i = 0; i < PQntuples(r); i++)
            json_array_append_new(list,
                                  json_pack("{s:s, s:s, s:I, s:s}", "sku", PQgetvalue(r, i, 0),
                                            "name", PQgetvalue(r, i, 1), "unit_price",
                                            (json_int_t)strtoll(PQgetvalue(r, i, 2), NULL, 10),
                                            "currency", PQgetvalue(r, i, 3)));
        saga_http_reply_json(resp, 200, json_pack("{s:o}", "products", list));
    }
    PQclear(r);
    order_pool_put(app, s, broken);
}

static void method_not_allowed(struct saga_http_response *resp, const char *allow)
{
    saga_http_reply_error(resp, 405, "method_not_allowed", "this resource takes %s", allow);
    saga_http_add_header(resp, "Allow", allow);
}

void order_http(void *arg, const struct saga_http_request *req, struct saga_http_response *resp)
{
    struct order_app *app = arg;
    const char *path = req->path;
    int get = strcmp(req->method, "GET") == 0, post = strcmp(req->method, "POST") == 0;

    struct saga_principal who;

    if (order_web_http(app, req, resp))
        return;
    /* Every /orders resource is a principal's (the catalogue is public). */
    if ((strcmp(path, "/orders") == 0 || strncmp(path, "/orders/", 8) == 0) &&
        order_authenticate(app, req, NULL, &who, resp) != 0)
        goto out;
    if (strcmp(path, "/orders") == 0) {
        if (post)
            place_order(app, req, &who, resp);
        else if (get)
            list_orders(app, req, &who, resp);
        else
            method_not_allowed(resp, "GET, POST");
    } else if (strncmp(path, "/orders/", 8) == 0) {
        char id[80];
        const char *rest = path + 8, *slash = strchr(rest, '/');
        size_t n = slash ? (size_t)(slash - rest) : strlen(rest);
        if (n >= sizeof(id)) {
            saga_http_reply_error(resp, 404, "not_found", "no such order");
        } else {
            memcpy(id, rest, n);
            id[n] = '\0';
            if (!slash) {
                if (get)
                    get_order(app, id, &who, resp);
                else
                    method_not_allowed(resp, "GET");
            } else if (strcmp(slash, "/cancel") == 0) {
                if (post)
                    cancel_order(app, id, &who, resp);
                else
                    method_not_allowed(resp, "POST");
            }
        }
    } else if (strcmp(path, "/products") == 0) {
        if (get)
            list_products(app, resp);
        else
            method_not_allowed(resp, "GET");
    }
out:
    if (resp->status >= 200 && resp->status < 600)
        app->http_status[resp->status / 100]++;
}

/* Orders by status and the saga duration histogram by outcome, from the orders table. */
static void order_db_metrics(struct order_app *app, struct saga_text *t)
{
    struct saga_text sql = {0};
    struct order_slot *s;
    char err[512];
    PGresult *r;
    int ok;

    if (!(s = order_pool_get(app, err, sizeof(err))))
        return; /* the scrape shows the rest; readiness says why */
    saga_text_printf(&sql, "SELECT status, count(*), coalesce(sum(extract(epoch FROM completed_at -"
                           " created_at)), 0)::float8");
    for (int i = 0; i < SAGA_HIST_BUCKETS; i++)
        saga_text_printf(&sql,
                         ", count(*) FILTER (WHERE completed_at - created_at <= interval '%g s')",
                         saga_hist_bounds[i]);
    saga_text_printf(&sql, " FROM orders GROUP BY status ORDER BY status");
    r = saga_pg_query(s->conn, sql.data);
    free(sql.data);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        PQclear(r);
        order_pool_put(app, s, 1);
        return;
    }
    saga_metric_head(t, "saga_orders", "gauge", "Orders by status.");
    for (const char *const *st = (const char *const[]){"PENDING", "CONFIRMED", "CANCELLED", NULL};
         *st; st++) {
        const char *n = "0";
        for (int i = 0; i < PQntuples(r); i++)
            if (strcmp(PQgetvalue(r, i, 0), *st) == 0)
                n = PQgetvalue(r, i, 1);
        saga_text_printf(t, "saga_orders{status=\"%s\"} %s\n", *st, n);
    }
    saga_metric_head(t, "saga_duration_seconds", "histogram",
                     "From POST /orders to the order's outcome, by outcome.");
    for (int i = 0; i < PQntuples(r); i++) {
        const char *st = PQgetvalue(r, i, 0);
        if (strcmp(st, "PENDING") == 0)
            continue;
        for (int b = 0; b < SAGA_HIST_BUCKETS; b++)
            saga_text_printf(t, "saga_duration_seconds_bucket{outcome=\"%s\",le=\"%g\"} %s\n", st,
                             saga_hist_bounds[b], PQgetvalue(r, i, 3 + b));
        saga_text_printf(t, "saga_duration_seconds_bucket{outcome=\"%s\",le=\"+Inf\"} %s\n", st,
                         PQgetvalue(r, i, 1));
        saga_text_printf(t, "saga_duration_seconds_sum{outcome=\"%s\"} %s\n", st,
                         PQgetvalue(r, i, 2));
        saga_text_printf(t, "saga_duration_seconds_count{outcome=\"%s\"} %s\n", st,
                         PQgetvalue(r, i, 1));
    }
    PQclear(r);
    /* The oldest PENDING order's age: what the SagasPending and SagaStuckPastDeadline
     * alerts watch (deploy/prometheus/alerts.yml). The sweeper's partial index makes
     * min(created_at) one index probe. */
    r = saga_pg_query(s->conn, "SELECT coalesce(extract(epoch FROM now() - min(created_at)),"
                               " 0)::float8 FROM orders WHERE status = 'PENDING'");
    ok = PQresultStatus(r) == PGRES_TUPLES_OK;
    if (ok && PQntuples(r) == 1) {
        saga_metric_head(t, "saga_orders_oldest_pending_seconds", "gauge",
                         "Age of the oldest PENDING order (0 when none).");
        saga_text_printf(t, "saga_orders_oldest_pending_seconds %s\n", PQgetvalue(r, 0, 0));
    }
    PQclear(r);
    order_pool_put(app, s, !ok);
}

void order_metrics(void *arg, struct saga_text *t)
{
    struct order_app *app = arg;
    order_db_metrics(app, t);
    static const char *const classes[] = {NULL, NULL, "2xx", "3xx", "4xx", "5xx"};

    saga_text_printf(t, "# HELP saga_http_responses_total Order API responses by status class.\n"
                        "# TYPE saga_http_responses_total counter\n");
    for (int i = 2; i < 6; i++)
        saga_text_printf(t,
                         "saga_http_responses_total{service=\"order-service\",code=\"%s\"} %lld\n",
                         classes[i], (long long)app->http_status[i]);
    saga_text_printf(t,
                     "# HELP saga_orders_placed_total Orders accepted by POST /orders.\n"
                     "# TYPE saga_orders_placed_total counter\n"
                     "saga_orders_placed_total{service=\"order-service\"} %lld\n"
                     "# HELP saga_orders_idempotent_replays_total POST /orders answered from an "
                     "Idempotency-Key.\n"
                     "# TYPE saga_orders_idempotent_replays_total counter\n"
                     "saga_orders_idempotent_replays_total{service=\"order-service\"} %lld\n"
                     "# HELP saga_orders_timed_out_total Orders the sweeper cancelled (TIMEOUT).\n"
                     "# TYPE saga_orders_timed_out_total counter\n"
                     "saga_orders_timed_out_total{service=\"order-service\"} %lld\n"
                     "# HELP saga_orders_customer_cancels_total Orders the customer cancelled.\n"
                     "# TYPE saga_orders_customer_cancels_total counter\n"
                     "saga_orders_customer_cancels_total{service=\"order-service\"} %lld\n",
                     (long long)app->placed, (long long)app->replayed, (long long)app->swept,
                     (long long)app->customer_cancels);
}
