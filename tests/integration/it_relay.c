/*
 * The outbox and outbox-relay on the real database and broker: committed rows
 * appear once and in order per key, rolled-back rows never; a NOTIFY wakes the
 * relay; a relay killed between Kafka's ack and the mark loses nothing; of two
 * relays only the leader publishes and the standby takes over when it dies.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <arpa/inet.h>
#include <netinet/in.h>

#include <cmocka.h>
#include <librdkafka/rdkafka.h>
#include <librdkafka/rdkafka_mock.h>

#include "proc.h"
#include "saga/kafka.h"
#include "saga/migrate.h"
#include "saga/outbox.h"
#include "saga/pg.h"
#include "stack_env.h"
#include "tcpproxy.h"
#include "testdb.h"

#define RELAY SAGA_BIN_DIR "/outbox-relay"

struct fixture {
    struct testdb db;
    PGconn *conn; /* as the owning service */
    char topic[96];
    char log[256];
    char env_sources[700], env_kafka[300], env_topics[300];
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    rd_kafka_t *admin;
    struct saga_topic_status st;
    const char *names[1];
    char err[512];
    int applied;

    testdb_create(&f->db, "it_relay", "order");
    if (!(f->conn = saga_pg_connect(f->db.owner_url, NULL, err, sizeof(err))))
        fail_msg("connect: %s", err);
    if (saga_pg_migrate(f->conn, saga_common_migrations, saga_common_migration_count, &applied, err,
                        sizeof(err)) != SAGA_OK)
        fail_msg("migrate: %s", err);
    assert_int_equal(applied, saga_common_migration_count);
    /* Migrating again is a no-op. */
    assert_int_equal(saga_pg_migrate(f->conn, saga_common_migrations, saga_common_migration_count,
                                     &applied, err, sizeof(err)),
                     SAGA_OK);
    assert_int_equal(applied, 0);

    stack_unique("it-relay", f->topic, sizeof(f->topic));
    names[0] = f->topic;
    {
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        rd_kafka_conf_set(conf, "bootstrap.servers", stack_env("KAFKA_BOOTSTRAP_SERVERS"), NULL, 0);
        admin = rd_kafka_new(RD_KAFKA_PRODUCER, conf, NULL, 0);
    }
    assert_int_equal(saga_kafka_topics_ensure(admin, names, 1, 3, 1, 10000, &st), SAGA_OK);
    rd_kafka_destroy(admin);
    snprintf(f->log, sizeof(f->log), "%s/%s.log", SAGA_TEST_LOG_DIR, f->db.name);
    unlink(f->log);
    snprintf(f->env_sources, sizeof(f->env_sources), "RELAY_SOURCES=it=%s", f->db.relay_url);
    snprintf(f->env_kafka, sizeof(f->env_kafka), "KAFKA_BOOTSTRAP_SERVERS=%s",
             stack_env("KAFKA_BOOTSTRAP_SERVERS"));
    /* The source "it" is named after no service: it owns the test's topic because this says so. */
    snprintf(f->env_topics, sizeof(f->env_topics), "RELAY_SOURCE_TOPICS=it=%s", f->topic);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    PQfinish(f->conn);
    testdb_drop(&f->db);
    free(f);
    return 0;
}

static void exec_ok(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(c));
    PQclear(r);
}

/* Appends "<key>:<seq>" to the open transaction. */
static void append(struct fixture *f, const char *key, int seq)
{
    char payload[64], id[64], err[512];
    struct saga_header h[2] = {{"event_id", id}, {"event_type", "TestEvent"}};
    struct saga_outbox_row row = {f->topic, key, "TestEvent", id, payload, 0, h, 2};

    snprintf(payload, sizeof(payload), "%s:%d", key, seq);
    snprintf(id, sizeof(id), "%s-%d", key, seq);
    row.payload_len = strlen(payload);
    if (saga_outbox_append(f->conn, &row, err, sizeof(err)) != SAGA_OK)
        fail_msg("append: %s", err);
}

static pid_t start_relay(struct fixture *f, const char *poll, const char *fault)
{
    char env_poll[64], env_fault[64];
    const char *env[9] = {f->env_sources,
                          f->env_kafka,
                          env_poll,
                          "RELAY_STANDBY_RETRY=200ms",
                          "LOG_LEVEL=info",
                          "HTTP_LISTEN=127.0.0.1:0",
                          f->env_topics,
                          NULL,
                          NULL};
    snprintf(env_poll, sizeof(env_poll), "RELAY_POLL_INTERVAL=%s", poll);
    if (fault) {
        snprintf(env_fault, sizeof(env_fault), "SAGA_FAULT=%s", fault);
        env[7] = env_fault;
    }
    return proc_start(RELAY, env, f->log);
}

static long long unpublished(struct fixture *f)
{
    return testdb_scalar(&f->db, "SELECT count(*) FROM outbox WHERE published_at IS NULL");
}

static int wait_published(struct fixture *f, int timeout_ms)
{
    long long end = now_ms() + timeout_ms;
    while (now_ms() < end) {
        if (unpublished(f) == 0)
            return 1;
        usleep(50000);
    }
    return 0;
}

/* Everything on the topic, in consumption order, as "key:seq" strings. */
struct seen {
    int n;
    char v[4096][32];
    int partition[4096];
};

static void consume_all(struct fixture *f, struct seen *out, int expect, int quiet_ms)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_topic_partition_list_t *subs = rd_kafka_topic_partition_list_new(1);
    char group[96];
    rd_kafka_t *c;
    long long quiet_until = 0;

    rd_kafka_conf_set(conf, "bootstrap.servers", stack_env("KAFKA_BOOTSTRAP_SERVERS"), NULL, 0);
    rd_kafka_conf_set(conf, "group.id", stack_unique("it-relay-reader", group, sizeof(group)), NULL,
                      0);
    rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", NULL, 0);
    c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, NULL, 0);
    rd_kafka_poll_set_consumer(c);
    rd_kafka_topic_partition_list_add(subs, f->topic, RD_KAFKA_PARTITION_UA);
    rd_kafka_subscribe(c, subs);
    rd_kafka_topic_partition_list_destroy(subs);
    out->n = 0;
    for (long long end = now_ms() + 60000; now_ms() < end;) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 200);
        if (out->n >= expect && !quiet_until)
            quiet_until = now_ms() + quiet_ms;
        if (quiet_until && now_ms() > quiet_until)
            break;
        if (!m)
            continue;
        if (!m->err && out->n < 4096) {
            snprintf(out->v[out->n], sizeof(out->v[0]), "%.*s", (int)m->len,
                     (const char *)m->payload);
            out->partition[out->n] = m->partition;
            out->n++;
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
}

static int count_of(const struct seen *s, const char *v)
{
    int n = 0;
    for (int i = 0; i < s->n; i++)
        n += strcmp(s->v[i], v) == 0;
    return n;
}

static int first_index(const struct seen *s, const char *v)
{
    for (int i = 0; i < s->n; i++)
        if (strcmp(s->v[i], v) == 0)
            return i;
    return -1;
}

/* Per key, each value's first appearance comes after that of every smaller sequence
 * number (repeats of already published rows may follow anywhere). */
static void assert_order_per_key(const struct seen *s)
{
    for (int i = 0; i < s->n; i++) {
        const char *ci = strchr(s->v[i], ':');
        if (first_index(s, s->v[i]) != i)
            continue;
        for (int j = i + 1; j < s->n; j++) {
            const char *cj = strchr(s->v[j], ':');
            if (first_index(s, s->v[j]) != j || ci - s->v[i] != cj - s->v[j] ||
                strncmp(s->v[i], s->v[j], (size_t)(ci - s->v[i])) != 0)
                continue;
            if (atoi(cj + 1) < atoi(ci + 1))
                fail_msg("%s was first published after %s", s->v[j], s->v[i]);
        }
    }
}

static void test_committed_rows_appear_once_in_order(void **state)
{
    struct fixture *f = *state;
    struct seen *seen = calloc(1, sizeof(*seen));
    const char *want[] = {"A:1", "B:1", "A:2", "B:2", "A:3"};
    pid_t relay;
    int status;
    long long t0;
    char err[256];
    struct saga_outbox_row row = {0};

    /* Outside a transaction the API refuses. */
    assert_int_equal(saga_outbox_append(f->conn, &row, err, sizeof(err)), SAGA_ERR_INVALID);
    /* A failed transaction is not reported committed (its COMMIT is a ROLLBACK). */
    exec_ok(f->conn, "BEGIN");
    append(f, "X", 2);
    PQclear(PQexec(f->conn, "SELECT 1/0"));
    assert_int_equal(saga_outbox_commit_notify(f->conn, err, sizeof(err)), SAGA_ERR_PERMANENT);
    assert_int_equal(PQtransactionStatus(f->conn), PQTRANS_IDLE);
    exec_ok(f->conn, "BEGIN");
    append(f, "A", 1);
    append(f, "B", 1);
    append(f, "A", 2);
    exec_ok(f->conn, "COMMIT");
    exec_ok(f->conn, "BEGIN");
    append(f, "X", 1);
    exec_ok(f->conn, "ROLLBACK");

    /* A long poll interval: only the NOTIFY of the next commit can wake it quickly. */
    relay = start_relay(f, "60s", NULL);
    assert_true(wait_published(f, 30000));
    assert_true(log_wait(f->log, "leader, publishing", 5000));
    t0 = now_ms();
    exec_ok(f->conn, "BEGIN");
    append(f, "B", 2);
    append(f, "A", 3);
    assert_int_equal(saga_outbox_commit_notify(f->conn, err, sizeof(err)), SAGA_OK);
    assert_true(wait_published(f, 10000));
    assert_true(now_ms() - t0 < 5000); /* well before the 60 s poll */

    consume_all(f, seen, 5, 2000);
    assert_int_equal(seen->n, 5);
    for (size_t i = 0; i < 5; i++)
        assert_int_equal(count_of(seen, want[i]), 1);
    assert_int_equal(count_of(seen, "X:1"), 0);
    assert_int_equal(count_of(seen, "X:2"), 0);
    assert_order_per_key(seen);

    status = proc_stop(relay, SIGTERM, 15000);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
    free(seen);
}

/* The NOTIFY rides in the COMMIT's round trip; its failure, or a connection lost after the
 * COMMIT's answer, must not be reported as "not committed": a caller told so would redo
 * (and duplicate) what is already stored. */
static void test_commit_is_reported_committed_whatever_befalls_the_notify(void **state)
{
    struct fixture *f = *state;
    char err[256];

    /* A pg_notify that fails, found before pg_catalog's by the search path. */
    exec_ok(f->conn, "CREATE SCHEMA broken;"
                     "CREATE FUNCTION broken.pg_notify(text, text) RETURNS void LANGUAGE plpgsql"
                     " AS $$BEGIN RAISE EXCEPTION 'notify refused'; END$$;"
                     "SET search_path = broken, pg_catalog, public");
    exec_ok(f->conn, "BEGIN");
    append(f, "N", 1);
    assert_int_equal(saga_outbox_commit_notify(f->conn, err, sizeof(err)), SAGA_OK);
    assert_int_equal(PQtransactionStatus(f->conn), PQTRANS_IDLE);
    assert_int_equal(testdb_scalar(&f->db, "SELECT count(*) FROM outbox WHERE msg_key = 'N'"), 1);
    exec_ok(f->conn, "SET search_path = DEFAULT");

    /* The connection breaks right after the COMMIT's answer came. */
    exec_ok(f->conn, "BEGIN");
    append(f, "N", 2);
    setenv("SAGA_FAULT", "outbox.commit_answered", 1);
    assert_int_equal(saga_outbox_commit_notify(f->conn, err, sizeof(err)), SAGA_OK);
    unsetenv("SAGA_FAULT");
    assert_int_equal(testdb_scalar(&f->db, "SELECT count(*) FROM outbox WHERE msg_key = 'N'"), 2);
}

static void test_crash_between_ack_and_mark_loses_nothing(void **state)
{
    struct fixture *f = *state;
    struct seen *seen = calloc(1, sizeof(*seen));
    pid_t relay;
    int status;

    exec_ok(f->conn, "BEGIN");
    for (int i = 1; i <= 10; i++)
        append(f, i % 2 ? "K1" : "K2", i);
    exec_ok(f->conn, "COMMIT");

    relay = start_relay(f, "100ms", "relay.after_ack");
    status = proc_wait(relay, 30000);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGKILL);
    /* Kafka has them, the outbox does not know yet. */
    assert_int_equal(unpublished(f), 10);

    relay = start_relay(f, "100ms", NULL);
    assert_true(wait_published(f, 30000));
    proc_stop(relay, SIGTERM, 15000);

    consume_all(f, seen, 20, 2000);
    for (int i = 1; i <= 10; i++) {
        char v[32];
        snprintf(v, sizeof(v), "%s:%d", i % 2 ? "K1" : "K2", i);
        /* Nothing lost; each twice on the wire (the consumers' inbox makes that harmless). */
        assert_int_equal(count_of(seen, v), 2);
    }
    free(seen);
}

static void test_standby_takes_over_without_loss_or_reordering(void **state)
{
    struct fixture *f = *state;
    struct seen *seen = calloc(1, sizeof(*seen));
    char log2[300];
    pid_t r1, r2;
    int total = 0;

    r1 = start_relay(f, "100ms", NULL);
    assert_true(log_wait(f->log, "leader, publishing", 10000));
    snprintf(log2, sizeof(log2), "%s.standby", f->log);
    unlink(log2);
    {
        char env_poll[] = "RELAY_POLL_INTERVAL=100ms";
        const char *env[] = {f->env_sources,
                             f->env_kafka,
                             env_poll,
                             "RELAY_STANDBY_RETRY=200ms",
                             "HTTP_LISTEN=127.0.0.1:0",
                             f->env_topics,
                             NULL};
        r2 = proc_start(RELAY, env, log2);
    }
    assert_true(log_wait(log2, "another relay leads; standing by", 10000));

    /* Keep writing while the leader dies. */
    for (int round = 0; round < 40; round++) {
        exec_ok(f->conn, "BEGIN");
        for (int k = 0; k < 5; k++) {
            char key[8];
            snprintf(key, sizeof(key), "K%d", k);
            append(f, key, round);
            total++;
        }
        exec_ok(f->conn, "COMMIT");
        if (round == 15)
            proc_stop(r1, SIGKILL, 5000);
        usleep(25000);
    }
    assert_true(log_wait(log2, "leader, publishing", 10000));
    assert_true(wait_published(f, 30000));
    proc_stop(r2, SIGTERM, 15000);

    consume_all(f, seen, total, 2000);
    for (int round = 0; round < 40; round++) {
        for (int k = 0; k < 5; k++) {
            char v[32];
            snprintf(v, sizeof(v), "K%d:%d", k, round);
            if (count_of(seen, v) < 1)
                fail_msg("%s was lost", v);
        }
    }
    assert_order_per_key(seen);
    free(seen);
}

static void test_one_relay_serves_two_databases(void **state)
{
    struct fixture *f = *state;
    struct testdb db2;
    PGconn *c2;
    char err[512], sources[1400], topics[300];
    pid_t relay;
    const char *env[6];
    struct seen *seen = calloc(1, sizeof(*seen));

    testdb_create(&db2, "it_relay_second", "payment");
    if (!(c2 = saga_pg_connect(db2.owner_url, NULL, err, sizeof(err))) ||
        saga_pg_migrate(c2, saga_common_migrations, saga_common_migration_count, NULL, err,
                        sizeof(err)) != SAGA_OK)
        fail_msg("second database: %s", err);
    exec_ok(f->conn, "BEGIN");
    append(f, "first", 1);
    exec_ok(f->conn, "COMMIT");
    {
        PGconn *keep = f->conn;
        f->conn = c2;
        exec_ok(f->conn, "BEGIN");
        append(f, "second", 1);
        exec_ok(f->conn, "COMMIT");
        f->conn = keep;
    }
    snprintf(sources, sizeof(sources), "RELAY_SOURCES=a=%s b=%s", f->db.relay_url, db2.relay_url);
    env[0] = sources;
    env[1] = f->env_kafka;
    env[2] = "RELAY_POLL_INTERVAL=100ms";
    env[3] = "HTTP_LISTEN=127.0.0.1:0";
    snprintf(topics, sizeof(topics), "RELAY_SOURCE_TOPICS=a=%s b=%s", f->topic, f->topic);
    env[4] = topics;
    env[5] = NULL;
    relay = proc_start(RELAY, env, f->log);
    assert_true(wait_published(f, 30000));
    assert_true(log_wait(f->log, "source a: leader", 5000));
    assert_true(log_wait(f->log, "source b: leader", 5000));
    consume_all(f, seen, 2, 2000);
    assert_int_equal(count_of(seen, "first:1"), 1);
    assert_int_equal(count_of(seen, "second:1"), 1);
    proc_stop(relay, SIGTERM, 15000);
    PQfinish(c2);
    testdb_drop(&db2);
    free(seen);
}

static void test_published_rows_are_pruned_after_retention(void **state)
{
    struct fixture *f = *state;
    char env_ret[] = "RELAY_RETENTION=1h", env_prune[] = "RELAY_PRUNE_INTERVAL=100ms";
    const char *env[8] = {f->env_sources, f->env_kafka, "RELAY_POLL_INTERVAL=100ms",
                          env_ret,        env_prune,    "HTTP_LISTEN=127.0.0.1:0",
                          f->env_topics,  NULL};
    pid_t relay;

    exec_ok(f->conn, "BEGIN");
    for (int i = 0; i < 6; i++)
        append(f, "P", i);
    exec_ok(f->conn, "COMMIT");
    relay = proc_start(RELAY, env, f->log);
    assert_true(wait_published(f, 30000));
    proc_stop(relay, SIGTERM, 15000);
    /* Three of them published two hours ago, and one row still waiting. */
    exec_ok(f->conn, "UPDATE outbox SET published_at = now() - interval '2 hours'"
                     " WHERE id IN (SELECT id FROM outbox ORDER BY id LIMIT 3)");
    exec_ok(f->conn, "BEGIN");
    append(f, "P", 99);
    exec_ok(f->conn, "COMMIT");
    relay = proc_start(RELAY, env, f->log);
    assert_true(wait_published(f, 30000));
    for (long long end = now_ms() + 10000;
         now_ms() < end && testdb_scalar(&f->db, "SELECT count(*) FROM outbox") != 4;)
        usleep(100000);
    /* The old ones are gone; the recent ones, including the new one, are kept. */
    assert_int_equal(testdb_scalar(&f->db, "SELECT count(*) FROM outbox"), 4);
    assert_int_equal(testdb_scalar(&f->db, "SELECT count(*) FROM outbox WHERE published_at <"
                                           " now() - interval '1 hour'"),
                     0);
    proc_stop(relay, SIGTERM, 15000);
}

/* Appends rounds [from, to) of keys K0..K4, reconnecting if the database went away. */
static void append_rounds(struct fixture *f, int from, int to)
{
    for (int round = from; round < to; round++) {
        for (;;) {
            PGresult *r;
            if (PQstatus(f->conn) != CONNECTION_OK)
                PQreset(f->conn);
            r = PQexec(f->conn, "BEGIN");
            if (PQresultStatus(r) == PGRES_COMMAND_OK) {
                PQclear(r);
                break;
            }
            PQclear(r);
            usleep(200000);
        }
        for (int k = 0; k < 5; k++) {
            char key[8];
            snprintf(key, sizeof(key), "K%d", k);
            append(f, key, round);
        }
        exec_ok(f->conn, "COMMIT");
        usleep(10000);
    }
}

static void test_relay_rides_out_broker_and_database_restarts(void **state)
{
    struct fixture *f = *state;
    struct seen *seen = calloc(1, sizeof(*seen));
    pid_t relay = start_relay(f, "100ms", NULL);

    append_rounds(f, 0, 20);
    assert_true(wait_published(f, 30000));
    /* The broker dies hard; rows keep coming; the broker comes back. */
    stack_cmd("kill kafka");
    append_rounds(f, 20, 40);
    sleep(2);
    stack_cmd("up");
    append_rounds(f, 40, 60);
    assert_true(wait_published(f, 60000));
    /* The database stops without a checkpoint, and comes back. */
    stack_cmd("kill postgres");
    sleep(1);
    stack_cmd("up");
    append_rounds(f, 60, 80);
    assert_true(wait_published(f, 60000));
    assert_true(log_wait(f->log, "reconnecting", 1000));
    {
        int status = proc_stop(relay, SIGTERM, 20000);
        assert_true(WIFEXITED(status) && WEXITSTATUS(status) == 0);
    }

    consume_all(f, seen, 400, 3000);
    for (int round = 0; round < 80; round++) {
        for (int k = 0; k < 5; k++) {
            char v[32];
            snprintf(v, sizeof(v), "K%d:%d", k, round);
            if (count_of(seen, v) < 1)
                fail_msg("%s was lost", v);
        }
    }
    assert_order_per_key(seen);
    free(seen);
}

static void test_fatal_kafka_error_stops_the_relay_with_its_cause(void **state)
{
    struct fixture *f = *state;
    pid_t relay;
    int status;
    char line[1024];
    FILE *log;
    int found = 0;

    exec_ok(f->conn, "BEGIN");
    append(f, "F", 1);
    exec_ok(f->conn, "COMMIT");
    relay = start_relay(f, "100ms", "relay.kafka_fatal");
    status = proc_wait(relay, 30000);
    /* Not a crash: a clean exit with status 1 and the cause on stderr. */
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 1);
    assert_non_null(log = fopen(f->log, "r"));
    while (fgets(line, sizeof(line), log))
        found |= strstr(line, "fatal kafka error on source it") &&
                 strstr(line, "injected by SAGA_FAULT=relay.kafka_fatal");
    fclose(log);
    assert_true(found);
    /* The row was not marked: a healthy relay publishes it. */
    relay = start_relay(f, "100ms", NULL);
    assert_true(wait_published(f, 30000));
    proc_stop(relay, SIGTERM, 15000);
}

/* The relay's HTTP port, from its log line "listening on http://127.0.0.1:<port>". */
static int relay_http_port(struct fixture *f)
{
    static const char needle[] = "listening on http://127.0.0.1:";
    char line[2048];
    int port = 0;
    FILE *lf;
    assert_true(log_wait(f->log, needle, 10000));
    assert_non_null(lf = fopen(f->log, "r"));
    while (!port && fgets(line, sizeof(line), lf)) {
        const char *at = strstr(line, needle);
        if (at)
            port = atoi(at + sizeof(needle) - 1);
    }
    fclose(lf);
    assert_true(port > 0);
    return port;
}

/* GET path from the relay; returns the HTTP status and copies the response (head and body). */
static int http_get(int port, const char *path, char *out, size_t out_size)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    char req[256];
    size_t got = 0;
    ssize_t n;
    int fd = socket(AF_INET, SOCK_STREAM, 0), code = 0;

    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_true(fd >= 0);
    assert_int_equal(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
    snprintf(req, sizeof(req), "GET %s HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n", path);
    assert_int_equal(send(fd, req, strlen(req), 0), (ssize_t)strlen(req));
    while (got + 1 < out_size && (n = recv(fd, out + got, out_size - 1 - got, 0)) > 0)
        got += (size_t)n;
    out[got] = '\0';
    close(fd);
    sscanf(out, "HTTP/1.%*d %d", &code);
    return code;
}

/* A relay waiting for a NOTIFY (a long poll interval, nothing to publish) still answers
 * /readyz as ready and keeps its backlog gauge current; a row committed without a NOTIFY
 * waits for the poll, one with a NOTIFY goes at once. */
static void test_waiting_relay_keeps_readiness_and_backlog_current(void **state)
{
    struct fixture *f = *state;
    static char resp[65536];
    char err[256];
    pid_t relay = start_relay(f, "60s", NULL);
    long long end;
    int port, ready = 0, counted = 0;

    assert_true(log_wait(f->log, "leader, publishing", 30000));
    port = relay_http_port(f);
    for (end = now_ms() + 5000; !ready && now_ms() < end; usleep(100000))
        ready = http_get(port, "/readyz", resp, sizeof(resp)) == 200;
    assert_true(ready); /* before the 60 s poll ends */
    assert_non_null(strstr(resp, "\"leader\""));

    exec_ok(f->conn, "BEGIN");
    append(f, "Q", 1);
    exec_ok(f->conn, "COMMIT"); /* no NOTIFY */
    for (end = now_ms() + 8000; !counted && now_ms() < end; usleep(200000)) {
        assert_int_equal(http_get(port, "/metrics", resp, sizeof(resp)), 200);
        counted = strstr(resp, "saga_outbox_backlog{source=\"it\"} 1\n") != NULL;
    }
    assert_true(counted);
    assert_int_equal(unpublished(f), 1); /* it waits for the poll */

    exec_ok(f->conn, "BEGIN");
    append(f, "Q", 2);
    assert_int_equal(saga_outbox_commit_notify(f->conn, err, sizeof(err)), SAGA_OK);
    assert_true(wait_published(f, 10000));
    assert_int_equal(proc_stop(relay, SIGTERM, 15000), 0);
}

/*
 * The relay's database connection hangs: a proxy between them stops forwarding without
 * closing anything (keepalives see nothing wrong, the proxy's kernel ACKs). The relay
 * notices within PG_QUERY_TIMEOUT (its backlog gauge asks every 2 s), says so on
 * /readyz, and replaces the connection once it can: rows committed during the hang are
 * published once, after it.
 */
static void test_relay_replaces_a_hung_database_connection(void **state)
{
    struct fixture *f = *state;
    struct tcpproxy *px = tcpproxy_start(atoi(stack_env("STACK_PG_PORT")));
    static char resp[65536];
    static struct seen seen;
    char url[600], env_src[700], err[256];
    const char *env[] = {env_src,
                         f->env_kafka,
                         "RELAY_POLL_INTERVAL=60s",
                         "RELAY_STANDBY_RETRY=200ms",
                         "LOG_LEVEL=info",
                         "HTTP_LISTEN=127.0.0.1:0",
                         "PG_QUERY_TIMEOUT=1s",
                         "PG_CONNECT_TIMEOUT=2s",
                         f->env_topics,
                         NULL};
    long long end;
    pid_t relay;
    int port, ready = 0, not_ready = 0;

    snprintf(env_src, sizeof(env_src), "RELAY_SOURCES=it=%s",
             tcpproxy_url(f->db.relay_url, tcpproxy_port(px), url, sizeof(url)));
    relay = proc_start(RELAY, env, f->log);
    assert_true(log_wait(f->log, "leader, publishing", 30000));
    port = relay_http_port(f);
    exec_ok(f->conn, "BEGIN");
    append(f, "H", 1);
    assert_int_equal(saga_outbox_commit_notify(f->conn, err, sizeof(err)), SAGA_OK);
    assert_true(wait_published(f, 10000));
    assert_int_equal(http_get(port, "/readyz", resp, sizeof(resp)), 200);

    tcpproxy_pause(px, 1);
    for (end = now_ms() + 10000; !not_ready && now_ms() < end; usleep(100000))
        not_ready = http_get(port, "/readyz", resp, sizeof(resp)) == 503;
    if (!not_ready) {
        tcpproxy_pause(px, 0);
        proc_stop(relay, SIGKILL, 5000);
        tcpproxy_stop(px);
        fail_msg("/readyz still says ready 10 s after the relay's connection hung");
    }
    exec_ok(f->conn, "BEGIN");
    append(f, "H", 2);
    append(f, "H", 3);
    assert_int_equal(saga_outbox_commit_notify(f->conn, err, sizeof(err)), SAGA_OK);
    /* Still hung: reconnecting through the proxy fails (PG_CONNECT_TIMEOUT), and the
     * relay keeps saying so. */
    usleep(3000000);
    assert_int_equal(http_get(port, "/readyz", resp, sizeof(resp)), 503);
    assert_non_null(strstr(resp, "\"disconnected\""));

    tcpproxy_pause(px, 0);
    assert_true(wait_published(f, 20000));
    for (end = now_ms() + 10000; !ready && now_ms() < end; usleep(100000))
        ready = http_get(port, "/readyz", resp, sizeof(resp)) == 200;
    assert_true(ready);
    assert_int_equal(proc_stop(relay, SIGTERM, 15000), 0);
    tcpproxy_stop(px);
    assert_true(log_wait(f->log, "no answer within", 1000));

    consume_all(f, &seen, 3, 1000);
    assert_int_equal(count_of(&seen, "H:1"), 1);
    assert_int_equal(count_of(&seen, "H:2"), 1);
    assert_int_equal(count_of(&seen, "H:3"), 1);
}

/*
 * A service's database login is all an attacker has: a row in its outbox naming another
 * service's topic. The relay publishes a source's rows only to the topics the source owns:
 * the row stays unpublished, is logged and counted, and the rows after it still go out.
 */
static void test_forged_row_for_a_topic_the_source_does_not_own_stays_unpublished(void **state)
{
    struct fixture *f = *state;
    static char resp[65536];
    struct saga_topic_status st;
    char other[128], err[512];
    const char *names[1] = {other};
    struct saga_header h[1] = {{"event_type", "ShipmentScheduled"}};
    struct saga_outbox_row row = {other, "victim", "ShipmentScheduled", "forged-1", "forged", 6,
                                  h,     1};
    rd_kafka_t *admin;
    long long end;
    int64_t lo = 0, hi = 0, total = 0;
    int port, counted = 0;
    pid_t relay;

    /* The other topic exists, as "shipping" does in the suite. */
    snprintf(other, sizeof(other), "%s-other", f->topic);
    {
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        rd_kafka_conf_set(conf, "bootstrap.servers", stack_env("KAFKA_BOOTSTRAP_SERVERS"), NULL, 0);
        admin = rd_kafka_new(RD_KAFKA_PRODUCER, conf, NULL, 0);
    }
    assert_int_equal(saga_kafka_topics_ensure(admin, names, 1, 1, 1, 10000, &st), SAGA_OK);
    exec_ok(f->conn, "BEGIN");
    if (saga_outbox_append(f->conn, &row, err, sizeof(err)) != SAGA_OK)
        fail_msg("append: %s", err);
    append(f, "F", 1); /* an honest row after it */
    exec_ok(f->conn, "COMMIT");

    relay = start_relay(f, "100ms", NULL);
    assert_true(log_wait(f->log, "leader, publishing", 30000));
    port = relay_http_port(f);
    for (end = now_ms() + 20000; now_ms() < end; usleep(100000))
        if (testdb_scalar(&f->db, "SELECT count(*) FROM outbox WHERE published_at IS NULL"
                                  " AND msg_key = 'F'") == 0)
            break;
    for (end = now_ms() + 10000; !counted && now_ms() < end; usleep(200000)) {
        assert_int_equal(http_get(port, "/metrics", resp, sizeof(resp)), 200);
        counted = strstr(resp, "saga_relay_rows_refused_total{source=\"it\"} 1\n") != NULL;
    }
    /* The honest row went out; the forged one did not, and says why. */
    assert_int_equal(testdb_scalar(&f->db, "SELECT count(*) FROM outbox WHERE published_at IS NULL"
                                           " AND msg_key = 'F'"),
                     0);
    assert_int_equal(testdb_scalar(&f->db, "SELECT count(*) FROM outbox WHERE published_at IS NULL"
                                           " AND msg_key = 'victim'"),
                     1);
    rd_kafka_query_watermark_offsets(admin, other, 0, &lo, &hi, 10000);
    total += hi;
    if (total != 0)
        fail_msg("the forged row was published to %s (%lld messages there)", other,
                 (long long)total);
    assert_true(counted);
    assert_true(log_wait(f->log, "refused", 1000));
    assert_int_equal(proc_stop(relay, SIGTERM, 15000), 0);
    rd_kafka_destroy(admin);
}

/* Transactions (commits and rollbacks) of the test's database so far, as PostgreSQL's
 * statistics have them; f->conn's own are flushed first. */
static long long db_transactions(struct fixture *f)
{
    PGresult *r = PQexec(f->conn, "SELECT pg_stat_force_next_flush()");
    long long n;
    PQclear(r);
    r = PQexec(f->conn, "SELECT xact_commit + xact_rollback FROM pg_stat_database"
                        " WHERE datname = current_database()");
    if (PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("pg_stat_database: %s", PQerrorMessage(f->conn));
    n = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return n;
}

/*
 * Rows committed one by one, each with its NOTIFY: the mark of what Kafka acknowledged
 * rides in the statement that reads the next rows (one transaction per wake-up instead of a
 * read and then a mark), so a row is marked only once the next one came; a quiet relay
 * marks on its own a moment later. Every row is published and marked all the same.
 */
static void test_marks_ride_in_the_next_read(void **state)
{
    struct fixture *f = *state;
    enum { ROWS = 20 };
    char err[256];
    pid_t relay = start_relay(f, "60s", NULL);
    long long before, after, late;

    assert_true(log_wait(f->log, "leader, publishing", 30000));
    assert_true(wait_published(f, 10000));
    usleep(2500 * 1000); /* the relay's start-up statements are counted before */
    before = db_transactions(f);
    for (int i = 1; i <= ROWS; i++) {
        exec_ok(f->conn, "BEGIN");
        append(f, "M", i);
        /* two transactions: the COMMIT, then the NOTIFY's */
        assert_int_equal(saga_outbox_commit_notify(f->conn, err, sizeof(err)), SAGA_OK);
        usleep(50 * 1000);
    }
    assert_true(wait_published(f, 10000));
    /* A backend reports its counts when idle, at most once a second; the relay's backlog
     * gauge asks every 2 s, which flushes them. Ours: 2 per row and the statistics calls;
     * the rest is the relay's backend: its statements and one per NOTIFY it takes in. */
    usleep(4500 * 1000);
    after = db_transactions(f);
    print_message("relay: %lld transactions for %d rows\n", after - before - 2 * ROWS - 2, ROWS);
    /* Row i was marked after row i + 1 was inserted (the rows came 50 ms apart; a mark
     * sent on its own would have come a few ms after its row's acknowledgement). */
    late = testdb_scalar(&f->db, "SELECT count(*) FROM outbox o JOIN outbox n ON n.id = ("
                                 "SELECT min(id) FROM outbox WHERE id > o.id AND msg_key = 'M')"
                                 " WHERE o.msg_key = 'M' AND o.published_at >= n.created_at");
    print_message("%lld of %d rows marked with the next read\n", late, ROWS - 1);
    if (late < (ROWS - 1) / 2)
        fail_msg("only %lld of %d rows were marked with the next read", late, ROWS - 1);
    assert_int_equal(proc_stop(relay, SIGTERM, 15000), 0);
}

/*
 * A graceful stop (SIGTERM) at any moment leaves no row that Kafka has unmarked: what was
 * acknowledged (its mark waiting to ride in the next read) or still in flight is marked
 * before the relay exits. Each round stops the relay a little later after its rows were
 * committed; rows left unmarked are deleted before the next round, so any of them found on
 * the topic was published and not marked.
 */
static void test_graceful_stop_marks_what_kafka_acknowledged(void **state)
{
    struct fixture *f = *state;
    static const int delays_ms[] = {0, 5, 20, 60, 120, 200, 400};
    struct seen *seen = calloc(1, sizeof(*seen));
    char err[256];
    int rows = 0;

    for (size_t k = 0; k < sizeof(delays_ms) / sizeof(delays_ms[0]); k++) {
        char key[16];
        pid_t relay = start_relay(f, "60s", NULL);
        assert_true(log_wait(f->log, "leader, publishing", 30000));
        snprintf(key, sizeof(key), "G%zu", k);
        exec_ok(f->conn, "BEGIN");
        for (int i = 1; i <= 5; i++)
            append(f, key, i);
        assert_int_equal(saga_outbox_commit_notify(f->conn, err, sizeof(err)), SAGA_OK);
        rows += 5;
        usleep((useconds_t)delays_ms[k] * 1000);
        assert_int_equal(proc_stop(relay, SIGTERM, 30000), 0);
        exec_ok(f->conn, "DELETE FROM outbox WHERE published_at IS NULL");
        /* the log of the next relay starts afresh */
        if (truncate(f->log, 0) != 0)
            fail_msg("truncate %s", f->log);
    }
    consume_all(f, seen, (int)testdb_scalar(&f->db, "SELECT count(*) FROM outbox"), 2000);
    for (int i = 0; i < seen->n; i++) {
        char sql[160];
        snprintf(sql, sizeof(sql),
                 "SELECT count(*) FROM outbox WHERE convert_from(payload, 'UTF8') = '%s'",
                 seen->v[i]);
        if (testdb_scalar(&f->db, sql) != 1)
            fail_msg("%s is on the topic but was not marked published at the stop", seen->v[i]);
    }
    print_message("%d of %d rows published before the stops\n", seen->n, rows);
    free(seen);
}

static long long marked_rows(struct fixture *f, const char *key)
{
    char sql[160];
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM outbox WHERE msg_key = '%s' AND published_at IS NOT NULL", key);
    return testdb_scalar(&f->db, sql);
}

/*
 * A row Kafka acknowledged while a later one still waits for its acknowledgement (its
 * partition's broker is slow: the librdkafka mock cluster, the only way to slow one broker
 * on demand) is marked a moment later on a quiet source, as when nothing waits, not only
 * once the slow one is in: meanwhile a restart or a standby taking over would publish it
 * again, and the outbox counts it in its backlog.
 */
static void test_acknowledged_row_is_marked_while_a_later_one_waits(void **state)
{
    struct fixture *f = *state;
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk;
    rd_kafka_mock_cluster_t *mc;
    char keys[2][16] = {"", ""}, err[256];
    long long end;
    pid_t relay;

    assert_non_null(rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err)));
    assert_non_null(mc = rd_kafka_mock_cluster_new(rk, 2));
    assert_int_equal(rd_kafka_mock_topic_create(mc, f->topic, 2, 1), 0);
    assert_int_equal(rd_kafka_mock_partition_set_leader(mc, f->topic, 0, 1), 0);
    assert_int_equal(rd_kafka_mock_partition_set_leader(mc, f->topic, 1, 2), 0);
    /* A key for each partition, as the relay's partitioner places them. */
    for (int i = 0; !keys[0][0] || !keys[1][0]; i++) {
        char k[16];
        int32_t p;
        snprintf(k, sizeof(k), "K%d", i);
        p = rd_kafka_msg_partitioner_murmur2_random(NULL, k, strlen(k), 2, NULL, NULL);
        if (!keys[p][0])
            snprintf(keys[p], sizeof(keys[p]), "%s", k);
    }
    snprintf(f->env_kafka, sizeof(f->env_kafka), "KAFKA_BOOTSTRAP_SERVERS=%s",
             rd_kafka_mock_cluster_bootstraps(mc));
    relay = start_relay(f, "60s", NULL);
    assert_true(log_wait(f->log, "leader, publishing", 30000));
    /* Both brokers known and connected: a row to each partition. */
    exec_ok(f->conn, "BEGIN");
    append(f, keys[0], 1);
    append(f, keys[1], 1);
    assert_int_equal(saga_outbox_commit_notify(f->conn, err, sizeof(err)), SAGA_OK);
    assert_true(wait_published(f, 30000));

    /* The next produce request to broker 2 (partition 1) is answered 8 s late. */
    assert_int_equal(rd_kafka_mock_broker_push_request_error_rtts(mc, 2, 0 /* Produce */, 1,
                                                                  RD_KAFKA_RESP_ERR_NO_ERROR, 8000),
                     0);
    exec_ok(f->conn, "BEGIN");
    append(f, keys[0], 2); /* acknowledged at once */
    append(f, keys[1], 2); /* acknowledged in 8 s */
    assert_int_equal(saga_outbox_commit_notify(f->conn, err, sizeof(err)), SAGA_OK);
    for (end = now_ms() + 3000; now_ms() < end && marked_rows(f, keys[0]) < 2;)
        usleep(50 * 1000);
    /* Still waiting for the slow one: the case holds. */
    assert_int_equal(marked_rows(f, keys[1]), 1);
    if (marked_rows(f, keys[0]) < 2)
        fail_msg("a row Kafka acknowledged is still unmarked after 3 s, while the row after it "
                 "waits for its acknowledgement");
    assert_true(wait_published(f, 30000));
    assert_int_equal(proc_stop(relay, SIGTERM, 30000), 0);
    rd_kafka_mock_cluster_destroy(mc);
    rd_kafka_destroy(rk);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_committed_rows_appear_once_in_order, setup, teardown),
        cmocka_unit_test_setup_teardown(
            test_commit_is_reported_committed_whatever_befalls_the_notify, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_between_ack_and_mark_loses_nothing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_standby_takes_over_without_loss_or_reordering, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_one_relay_serves_two_databases, setup, teardown),
        cmocka_unit_test_setup_teardown(test_published_rows_are_pruned_after_retention, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_fatal_kafka_error_stops_the_relay_with_its_cause,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_relay_rides_out_broker_and_database_restarts, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_waiting_relay_keeps_readiness_and_backlog_current,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_relay_replaces_a_hung_database_connection, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_forged_row_for_a_topic_the_source_does_not_own_stays_unpublished, setup, teardown),
        cmocka_unit_test_setup_teardown(test_marks_ride_in_the_next_read, setup, teardown),
        cmocka_unit_test_setup_teardown(test_acknowledged_row_is_marked_while_a_later_one_waits,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_graceful_stop_marks_what_kafka_acknowledged, setup,
                                        teardown),
    };
    if (getenv("IT_ONLY"))
        cmocka_set_test_filter(getenv("IT_ONLY"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
