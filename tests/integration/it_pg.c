/*
 * PostgreSQL as the test stack provisions it: each service role works in its own
 * database and is refused everywhere else.
 */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "saga/migrate.h"
#include "saga/participant.h"
#include "saga/pg.h"
#include "saga/topology.h"
#include "proc.h"
#include "stack_env.h"
#include "testdb.h"
#include "tcpproxy.h"

static PGconn *connect_ok(const char *url)
{
    char err[512];
    saga_err_t e;
    PGconn *c = saga_pg_connect(url, &e, err, sizeof(err));
    if (!c)
        fail_msg("connect: %s", err);
    assert_int_equal(e, SAGA_OK);
    return c;
}

static PGresult *exec_ok(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    ExecStatusType s = PQresultStatus(r);
    if (s != PGRES_COMMAND_OK && s != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(c));
    return r;
}

/* Builds the URL of role `user` (with its own password) for database `db`. */
static const char *url_as(const char *svc, const char *db, char *buf, size_t size)
{
    char var[64];
    snprintf(var, sizeof(var), "STACK_PW_%s", svc);
    for (char *p = var; *p; p++)
        if (*p >= 'a' && *p <= 'z')
            *p = (char)(*p - 'a' + 'A');
    snprintf(buf, size, "postgresql://%s_service:%s@127.0.0.1:%s/%s", svc, stack_env(var),
             stack_env("STACK_PG_PORT"), db);
    return buf;
}

static void test_service_role_roundtrip(void **state)
{
    PGconn *c = connect_ok(stack_env("ORDER_DATABASE_URL"));
    const char *params[2] = {"o-1", "a \"quoted\" note, ünïcode"};
    PGresult *r;

    r = exec_ok(c, "SELECT current_user, current_database()");
    assert_string_equal(PQgetvalue(r, 0, 0), "order_service");
    assert_string_equal(PQgetvalue(r, 0, 1), "order_service");
    PQclear(r);

    PQclear(exec_ok(c, "CREATE TEMP TABLE it_roundtrip (id text PRIMARY KEY, note text)"));
    r = PQexecParams(c, "INSERT INTO it_roundtrip VALUES ($1, $2)", 2, NULL, params, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(r), PGRES_COMMAND_OK);
    PQclear(r);
    r = PQexecParams(c, "SELECT note FROM it_roundtrip WHERE id = $1", 1, NULL, params, NULL, NULL,
                     0);
    assert_int_equal(PQresultStatus(r), PGRES_TUPLES_OK);
    assert_int_equal(PQntuples(r), 1);
    assert_string_equal(PQgetvalue(r, 0, 0), params[1]);
    PQclear(r);

    /* A duplicate key is a permanent error, not something to retry. */
    r = PQexecParams(c, "INSERT INTO it_roundtrip VALUES ($1, $2)", 2, NULL, params, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    assert_string_equal(PQresultErrorField(r, PG_DIAG_SQLSTATE), "23505");
    assert_int_equal(saga_pg_classify(c, r), SAGA_ERR_PERMANENT);
    PQclear(r);
    PQfinish(c);
}

static void test_every_service_owns_its_database(void **state)
{
    for (int i = 0; i < SAGA_SERVICE_COUNT; i++) {
        char url[512];
        PGconn *c =
            connect_ok(url_as(saga_services[i].name, saga_services[i].database, url, sizeof(url)));
        /* It can create tables there: it owns the database's schema. */
        PQclear(exec_ok(c, "CREATE TABLE IF NOT EXISTS it_owner_probe (x int); "
                           "DROP TABLE it_owner_probe"));
        PQfinish(c);
    }
}

static void test_service_role_cannot_reach_another_database(void **state)
{
    for (int i = 0; i < SAGA_SERVICE_COUNT; i++) {
        const struct saga_service_info *me = &saga_services[i];
        const struct saga_service_info *other = &saga_services[(i + 1) % SAGA_SERVICE_COUNT];
        char url[512], err[512];
        saga_err_t e;
        PGconn *c = saga_pg_connect(url_as(me->name, other->database, url, sizeof(url)), &e, err,
                                    sizeof(err));
        if (c)
            fail_msg("%s could connect to %s", me->database, other->database);
        assert_int_equal(e, SAGA_ERR_PERMANENT);
        assert_non_null(strstr(err, "permission denied for database"));
        assert_null(strchr(err, '\n'));
    }
}

static void test_service_role_is_not_privileged(void **state)
{
    PGconn *c = connect_ok(stack_env("PAYMENT_DATABASE_URL"));
    PGresult *r = PQexec(c, "CREATE DATABASE it_should_not_exist");
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    assert_string_equal(PQresultErrorField(r, PG_DIAG_SQLSTATE), "42501");
    PQclear(r);
    r = PQexec(c, "CREATE ROLE it_should_not_exist");
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    assert_string_equal(PQresultErrorField(r, PG_DIAG_SQLSTATE), "42501");
    PQclear(r);
    PQfinish(c);
}

static void test_unreachable_server_is_transient(void **state)
{
    char err[512];
    saga_err_t e;
    /* Port 1 on loopback: nothing listens there. */
    PGconn *c =
        saga_pg_connect("postgresql://x:y@127.0.0.1:1/db?connect_timeout=2", &e, err, sizeof(err));
    assert_null(c);
    assert_int_equal(e, SAGA_ERR_TRANSIENT);
    assert_null(strstr(err, ":y@"));
}

/* How many statements the session has prepared. */
static long prepared_count(PGconn *c)
{
    PGresult *r = exec_ok(c, "SELECT count(*) FROM pg_prepared_statements");
    long n = atol(PQgetvalue(r, 0, 0));
    PQclear(r);
    return n;
}

/* saga_pg_exec's value of $1 + 1, asserting success. */
static long plus_one(PGconn *c, const char *v)
{
    const char *p[1] = {v};
    PGresult *r = saga_pg_exec(c, "SELECT $1::int + 1", 1, p, NULL, NULL, 0);
    long n;
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("saga_pg_exec: %s", PQerrorMessage(c));
    n = atol(PQgetvalue(r, 0, 0));
    PQclear(r);
    return n;
}

static void test_statements_are_prepared_once_per_connection(void **state)
{
    PGconn *c = connect_ok(stack_env("ORDER_DATABASE_URL"));
    const char *p[1] = {"x"};
    PGresult *r;
    (void)state;

    assert_int_equal(prepared_count(c), 0);
    for (int i = 0; i < 5; i++)
        assert_int_equal(plus_one(c, "41"), 42);
    assert_int_equal(prepared_count(c), 1); /* five runs, one statement */

    /* An error is the statement's own, and the connection goes on. */
    r = saga_pg_exec(c, "SELECT $1::int", 1, p, NULL, NULL, 0);
    assert_int_equal(PQresultStatus(r), PGRES_FATAL_ERROR);
    assert_string_equal(PQresultErrorField(r, PG_DIAG_SQLSTATE), "22P02");
    PQclear(r);
    assert_int_equal(plus_one(c, "1"), 2);

    /* A statement that fails to prepare is not remembered. */
    r = saga_pg_exec(c, "SELEC 1", 0, NULL, NULL, NULL, 0);
    assert_string_equal(PQresultErrorField(r, PG_DIAG_SQLSTATE), "42601");
    PQclear(r);
    assert_int_equal(prepared_count(c), 2); /* plus_one and "SELECT $1::int" */

    /* Statements forgotten by the server (DISCARD ALL, a pooler) cost one failure. */
    PQclear(exec_ok(c, "DISCARD ALL"));
    r = saga_pg_exec(c, "SELECT $1::int + 1", 1, (const char *[]){"1"}, NULL, NULL, 0);
    assert_string_equal(PQresultErrorField(r, PG_DIAG_SQLSTATE), "26000");
    PQclear(r);
    assert_int_equal(plus_one(c, "2"), 3);

    /* A reset connection is a new session: prepared afresh, transparently. */
    PQreset(c);
    assert_int_equal(PQstatus(c), CONNECTION_OK);
    assert_int_equal(prepared_count(c), 0);
    assert_int_equal(plus_one(c, "9"), 10);
    assert_int_equal(prepared_count(c), 1);
    PQfinish(c); /* frees the cache (ASan would report a leak otherwise) */
}

static void test_another_programs_migrations_are_refused(void **state)
{
    PGconn *c = connect_ok(stack_env("ORDER_DATABASE_URL"));
    const struct saga_migration mine[] = {{100, "mine", "CREATE TABLE mine (id int)"}};
    const struct saga_migration theirs[] = {{100, "theirs", "CREATE TABLE theirs (id int)"}};
    char err[512] = "", sql[256], schema[64];
    int applied = -1;
    PGresult *r;
    (void)state;

    /* A schema of its own stands for a database of its own. */
    snprintf(schema, sizeof(schema), "it_pg_migrate_%d", (int)getpid());
    snprintf(sql, sizeof(sql), "CREATE SCHEMA %s; SET search_path TO %s", schema, schema);
    PQclear(exec_ok(c, sql));
    assert_int_equal(saga_pg_migrate(c, mine, 1, &applied, err, sizeof(err)), SAGA_OK);
    assert_int_equal(applied, 1);
    assert_int_equal(saga_pg_migrate(c, mine, 1, &applied, err, sizeof(err)), SAGA_OK);
    assert_int_equal(applied, 0);

    /* Another program pointed at this database: refused with the reason, not skipped. */
    assert_int_equal(saga_pg_migrate(c, theirs, 1, &applied, err, sizeof(err)), SAGA_ERR_PERMANENT);
    assert_int_equal(applied, 0);
    assert_non_null(strstr(err, "recorded in this database as \"mine\""));
    assert_non_null(strstr(err, "check DATABASE_URL"));
    r = exec_ok(c, "SELECT count(*) FROM pg_tables WHERE tablename = 'theirs'");
    assert_string_equal(PQgetvalue(r, 0, 0), "0");
    PQclear(r);
    assert_int_equal(PQtransactionStatus(c), PQTRANS_IDLE);

    snprintf(sql, sizeof(sql), "DROP SCHEMA %s CASCADE", schema);
    PQclear(exec_ok(c, sql));
    PQfinish(c);
}

/* The per-order rules every participant keeps (saga/participant.h), once, on a real table. */
static void test_participant_order_rules(void **state)
{
    struct testdb db;
    struct saga_tx tx = {0};
    struct saga_order_row row;
    struct saga_event ev = {0};
    PGconn *c;
    (void)state;

    testdb_create(&db, "it_pg_participant", "payment");
    c = connect_ok(db.owner_url);
    PQclear(exec_ok(c, "CREATE TABLE orders (order_id text PRIMARY KEY,"
                       " placed boolean NOT NULL DEFAULT false,"
                       " cancelled boolean NOT NULL DEFAULT false,"
                       " amount bigint, updated_at timestamptz NOT NULL DEFAULT now())"));
    tx.conn = c;
    saga_event_init(&ev, SAGA_EV_INVENTORY_RESERVED);
    ev.meta.event_id = "e-1";
    ev.meta.order_id = "o-early";

    /* A trigger before OrderPlaced is deferred; its row now exists, neither placed nor
     * cancelled. */
    assert_int_equal(saga_order_trigger(&tx, &ev, "amount", &row), SAGA_HANDLE_DEFER);
    assert_int_equal(row.gate, SAGA_ORDER_WAITING);
    assert_null(saga_order_col(&row, 0));
    saga_order_row_release(&row);
    /* Once placed, the trigger acts, with the columns it asked for. */
    PQclear(exec_ok(c, "UPDATE orders SET placed = true, amount = 42 WHERE order_id = 'o-early'"));
    assert_int_equal(saga_order_trigger(&tx, &ev, "amount", &row), SAGA_HANDLE_OK);
    assert_int_equal(row.gate, SAGA_ORDER_PLACED);
    assert_string_equal(saga_order_col(&row, 0), "42");
    saga_order_row_release(&row);
    /* Cancelled after it was placed: the trigger is a recorded no-op. */
    assert_int_equal(saga_order_cancel(&tx, "o-early", NULL, &row), SAGA_HANDLE_OK);
    assert_true(row.placed);
    assert_false(row.cancelled);
    assert_int_equal(row.gate, SAGA_ORDER_CANCELLED);
    saga_order_row_release(&row);
    assert_int_equal(saga_order_trigger(&tx, &ev, NULL, &row), SAGA_HANDLE_OK);
    assert_int_equal(row.gate, SAGA_ORDER_CANCELLED);
    saga_order_row_release(&row);

    /* Cancelled before OrderPlaced: a tombstone, and a later trigger does nothing. */
    ev.meta.order_id = "o-tomb";
    assert_int_equal(saga_order_cancel(&tx, "o-tomb", NULL, &row), SAGA_HANDLE_OK);
    assert_false(row.placed);
    saga_order_row_release(&row);
    assert_int_equal(saga_order_trigger(&tx, &ev, NULL, &row), SAGA_HANDLE_OK);
    assert_int_equal(row.gate, SAGA_ORDER_CANCELLED);
    assert_false(row.placed);
    saga_order_row_release(&row);
    /* Cancelling twice changes nothing. */
    assert_int_equal(saga_order_cancel(&tx, "o-tomb", NULL, &row), SAGA_HANDLE_OK);
    assert_true(row.cancelled);
    saga_order_row_release(&row);

    /* A table without the rule's columns: a permanent failure, classified (on a new
     * connection: the statements prepared on this one keep their old result type). */
    PQclear(exec_ok(c, "ALTER TABLE orders DROP COLUMN placed"));
    PQfinish(c);
    c = connect_ok(db.owner_url);
    tx.conn = c;
    assert_int_equal(saga_order_lock(&tx, "o-x", NULL, &row), SAGA_HANDLE_INVALID);
    if (!strstr(tx.errstr, "placed"))
        fail_msg("the error does not name the column: %s", tx.errstr);
    saga_order_row_release(&row);
    PQfinish(c);
    testdb_drop(&db);
}

/* Short limits for the tests below, set before the first connection (see main). */
#define QUERY_TIMEOUT_MS  1000
#define CONNECT_TIMEOUT_S 2

/* The value of one libpq connection option as the connection uses it. */
static const char *conn_option(PGconn *c, const char *key, char *buf, size_t size)
{
    PQconninfoOption *opts = PQconninfo(c);
    buf[0] = '\0';
    for (PQconninfoOption *o = opts; o && o->keyword; o++)
        if (strcmp(o->keyword, key) == 0 && o->val)
            snprintf(buf, size, "%s", o->val);
    PQconninfoFree(opts);
    return buf;
}

/* Every connection has a bounded connect and TCP keepalives, from PG_CONNECT_TIMEOUT
 * and PG_KEEPALIVE; what the URL says wins. */
static void test_connections_have_bounded_connect_and_keepalives(void **state)
{
    char url[600], v[64];
    PGconn *c = connect_ok(stack_env("ORDER_DATABASE_URL"));

    assert_string_equal(conn_option(c, "connect_timeout", v, sizeof(v)), "2");
    assert_string_equal(conn_option(c, "keepalives", v, sizeof(v)), "1");
    assert_string_equal(conn_option(c, "keepalives_idle", v, sizeof(v)), "6");
    assert_string_equal(conn_option(c, "keepalives_interval", v, sizeof(v)), "2");
    assert_string_equal(conn_option(c, "keepalives_count", v, sizeof(v)), "3");
    assert_string_equal(conn_option(c, "tcp_user_timeout", v, sizeof(v)), "12000");
    PQfinish(c);

    snprintf(url, sizeof(url), "%s?keepalives_idle=77&connect_timeout=9",
             stack_env("ORDER_DATABASE_URL"));
    c = connect_ok(url);
    assert_string_equal(conn_option(c, "keepalives_idle", v, sizeof(v)), "77");
    assert_string_equal(conn_option(c, "connect_timeout", v, sizeof(v)), "9");
    assert_string_equal(conn_option(c, "keepalives_count", v, sizeof(v)), "3");
    PQfinish(c);
}

/* Every connection wants a server that takes writes (target_session_attrs=read-write),
 * so a multi-host URL whose first host is a standby goes on to the primary instead of
 * staying on the standby, each write refused as read-only; what the URL says wins. */
static void test_connections_want_a_read_write_server(void **state)
{
    char url[600], v[64];
    PGconn *c;

    (void)state;
    c = connect_ok(stack_env("ORDER_DATABASE_URL"));
    assert_string_equal(conn_option(c, "target_session_attrs", v, sizeof(v)), "read-write");
    PQfinish(c);

    snprintf(url, sizeof(url), "%s%ctarget_session_attrs=any", stack_env("ORDER_DATABASE_URL"),
             strchr(stack_env("ORDER_DATABASE_URL"), '?') ? '&' : '?');
    c = connect_ok(url);
    assert_string_equal(conn_option(c, "target_session_attrs", v, sizeof(v)), "any");
    PQfinish(c);
}

/* A statement or a connection attempt run in a thread, so a hang is seen, not suffered. */
struct attempt {
    PGconn *conn;
    const char *url;
    PGresult *res;
    saga_err_t err;
    char errstr[512];
    volatile int done;
    long long took_ms;
};

static void *run_statement(void *arg)
{
    struct attempt *a = arg;
    const char *p[1] = {"41"};
    long long t0 = now_ms();
    a->res = saga_pg_exec(a->conn, "SELECT $1::int + 1", 1, p, NULL, NULL, 0);
    a->err =
        PQresultStatus(a->res) == PGRES_TUPLES_OK ? SAGA_OK : saga_pg_classify(a->conn, a->res);
    a->took_ms = now_ms() - t0;
    a->done = 1;
    return NULL;
}

static void *run_connect(void *arg)
{
    struct attempt *a = arg;
    long long t0 = now_ms();
    a->conn = saga_pg_connect(a->url, &a->err, a->errstr, sizeof(a->errstr));
    a->took_ms = now_ms() - t0;
    a->done = 1;
    return NULL;
}

/* 1 when the attempt ended within ms. */
static int finished_within(struct attempt *a, long long ms)
{
    long long end = now_ms() + ms;
    while (!a->done && now_ms() < end)
        usleep(20000);
    return a->done;
}

/*
 * A proxy between us and PostgreSQL stops forwarding without closing anything (the
 * kernel behind it still ACKs, so keepalives see nothing). A statement in flight then
 * ends within PG_QUERY_TIMEOUT as a TRANSIENT failure with the connection given up, and
 * a new connection through the hung proxy fails within PG_CONNECT_TIMEOUT; once the
 * proxy forwards again, a fresh connection works.
 */
static void test_hung_connection_ends_within_the_deadline(void **state)
{
    struct tcpproxy *px = tcpproxy_start(atoi(stack_env("STACK_PG_PORT")));
    char url[600];
    struct attempt q = {0}, c = {0};
    pthread_t t;
    int ended;

    tcpproxy_url(stack_env("ORDER_DATABASE_URL"), tcpproxy_port(px), url, sizeof(url));
    q.conn = connect_ok(url);
    assert_int_equal(plus_one(q.conn, "1"), 2); /* prepared, so the hang hits the EXECUTE */

    tcpproxy_pause(px, 1);
    assert_int_equal(pthread_create(&t, NULL, run_statement, &q), 0);
    ended = finished_within(&q, 3 * QUERY_TIMEOUT_MS);
    if (!ended) {
        tcpproxy_pause(px, 0); /* lets the statement finish, so the thread can be joined */
        pthread_join(t, NULL);
        PQclear(q.res);
        PQfinish(q.conn);
        tcpproxy_stop(px);
        fail_msg("saga_pg_exec on a hung connection did not return within %d ms",
                 3 * QUERY_TIMEOUT_MS);
    }
    pthread_join(t, NULL);
    assert_int_equal(q.err, SAGA_ERR_TRANSIENT);
    assert_int_not_equal(PQstatus(q.conn), CONNECTION_OK); /* given up: the caller reconnects */
    assert_true(q.took_ms >= QUERY_TIMEOUT_MS - 100);
    PQclear(q.res);
    PQfinish(q.conn);

    c.url = url;
    assert_int_equal(pthread_create(&t, NULL, run_connect, &c), 0);
    ended = finished_within(&c, 3 * CONNECT_TIMEOUT_S * 1000);
    if (!ended) {
        tcpproxy_stop(px); /* closes the connection: the attempt fails */
        pthread_join(t, NULL);
        PQfinish(c.conn);
        fail_msg("connecting through a hung proxy did not end within %d s", 3 * CONNECT_TIMEOUT_S);
    }
    pthread_join(t, NULL);
    assert_null(c.conn);
    assert_int_equal(c.err, SAGA_ERR_TRANSIENT);

    tcpproxy_pause(px, 0);
    q = (struct attempt){0};
    q.conn = connect_ok(url);
    assert_int_equal(plus_one(q.conn, "2"), 3);
    PQfinish(q.conn);
    tcpproxy_stop(px);
}

/* What the deployment does to a statement (not the event) is transient: retried, never a
 * dead letter. */
static void test_infrastructure_errors_are_transient(void **state)
{
    PGconn *c = connect_ok(stack_env("ORDER_DATABASE_URL"));
    PGresult *r;
    (void)state;

    /* 57014: a statement cancelled by statement_timeout (or by an operator). */
    PQclear(exec_ok(c, "SET statement_timeout = '50ms'"));
    r = PQexec(c, "SELECT pg_sleep(2)");
    assert_string_equal(PQresultErrorField(r, PG_DIAG_SQLSTATE), "57014");
    assert_int_equal(saga_pg_classify(c, r), SAGA_ERR_TRANSIENT);
    PQclear(r);
    PQclear(exec_ok(c, "RESET statement_timeout"));
    /* 25006: a read-only server (a standby after a failover looks like this). */
    PQclear(exec_ok(c, "SET default_transaction_read_only = on"));
    r = PQexec(c, "CREATE TEMP TABLE it_pg_ro (x int)");
    assert_string_equal(PQresultErrorField(r, PG_DIAG_SQLSTATE), "25006");
    assert_int_equal(saga_pg_classify(c, r), SAGA_ERR_TRANSIENT);
    PQclear(r);
    PQclear(exec_ok(c, "RESET default_transaction_read_only"));
    /* 22P02: bad data in the event is permanent. */
    r = PQexec(c, "SELECT 'x'::int");
    assert_string_equal(PQresultErrorField(r, PG_DIAG_SQLSTATE), "22P02");
    assert_int_equal(saga_pg_classify(c, r), SAGA_ERR_PERMANENT);
    PQclear(r);
    PQfinish(c);
}

/*
 * A statement given up at PG_QUERY_TIMEOUT while its backend waits on a lock: the
 * backend notices its client is gone and ends, instead of waiting (with its own locks)
 * until the lock is free; retries do not pile up waiting backends.
 */
static void test_given_up_statement_leaves_no_backend_waiting(void **state)
{
    PGconn *holder = connect_ok(stack_env("ORDER_DATABASE_URL"));
    /* Looks from outside the holder's transaction (its pg_stat_activity would stay the
     * snapshot it first read). */
    PGconn *watcher = connect_ok(stack_env("ORDER_DATABASE_URL"));
    PGconn *c;
    PGresult *r;
    char sql[256];
    long long end, waiting = -1;
    (void)state;

    PQclear(exec_ok(holder, "CREATE TABLE IF NOT EXISTS it_pg_locked (x int)"));
    PQclear(exec_ok(holder, "BEGIN"));
    PQclear(exec_ok(holder, "LOCK TABLE it_pg_locked IN ACCESS EXCLUSIVE MODE"));
    for (int i = 0; i < 3; i++) {
        c = connect_ok(stack_env("ORDER_DATABASE_URL"));
        r = saga_pg_exec(c, "SELECT count(*) FROM it_pg_locked", 0, NULL, NULL, NULL, 0);
        assert_int_not_equal(PQresultStatus(r), PGRES_TUPLES_OK); /* given up at 1 s */
        assert_int_equal(saga_pg_classify(c, r), SAGA_ERR_TRANSIENT);
        PQclear(r);
        PQfinish(c);
    }
    /* The three backends must be gone within a few seconds, the lock still held. */
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'SELECT count(*) FROM"
             " it_pg_locked%%'");
    for (end = now_ms() + 10000; now_ms() < end; usleep(200000)) {
        r = exec_ok(watcher, sql);
        waiting = atoll(PQgetvalue(r, 0, 0));
        PQclear(r);
        if (waiting == 0)
            break;
    }
    PQclear(exec_ok(holder, "ROLLBACK"));
    PQclear(exec_ok(holder, "DROP TABLE it_pg_locked"));
    PQfinish(holder);
    PQfinish(watcher);
    if (waiting != 0)
        fail_msg("%lld backends still wait on the lock 10 s after their clients gave up", waiting);
}

int main(void)
{
    /* Short limits, so the hung-connection tests take seconds (read at first use). */
    setenv("PG_QUERY_TIMEOUT", "1s", 1);
    setenv("PG_CONNECT_TIMEOUT", "2s", 1);
    setenv("PG_KEEPALIVE", "6s", 1);
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_service_role_roundtrip),
        cmocka_unit_test(test_every_service_owns_its_database),
        cmocka_unit_test(test_service_role_cannot_reach_another_database),
        cmocka_unit_test(test_service_role_is_not_privileged),
        cmocka_unit_test(test_unreachable_server_is_transient),
        cmocka_unit_test(test_statements_are_prepared_once_per_connection),
        cmocka_unit_test(test_another_programs_migrations_are_refused),
        cmocka_unit_test(test_participant_order_rules),
        cmocka_unit_test(test_connections_want_a_read_write_server),
        cmocka_unit_test(test_infrastructure_errors_are_transient),
        cmocka_unit_test(test_connections_have_bounded_connect_and_keepalives),
        cmocka_unit_test(test_hung_connection_ends_within_the_deadline),
        cmocka_unit_test(test_given_up_statement_leaves_no_backend_waiting),
    };
    if (getenv("IT_ONLY"))
        cmocka_set_test_filter(getenv("IT_ONLY"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
