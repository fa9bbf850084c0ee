/*
 * The consumer runtime on the real broker and database, through a small service
 * built on it (consumer_app.c): effects exactly once despite duplicates on the
 * wire and crashes at the named moments, poison messages to the DLQ while the
 * partition moves on, deferred events run when their prerequisite lands,
 * transient failures retried, and a graceful stop that commits.
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
#include <pthread.h>

#include <cmocka.h>
#include <libpq-fe.h>

#include "proc.h"
#include "sample_events.h"
#include "saga/headers.h"
#include "saga/kafka.h"
#include "saga/serde.h"
#include "stack_env.h"
#include "testdb.h"

#define APP SAGA_TEST_BIN_DIR "/test-consumer-app"

struct fixture {
    struct testdb db;
    char topic[96], dlq[112], group[96], log[256];
    char env[8][600];
    rd_kafka_t *producer;
    struct saga_serde *serde;
};

static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    struct saga_topic_status st[2];
    const char *names[2];
    char err[512];

    unsetenv("KAFKA_PARTITION_ASSIGNMENT_STRATEGY"); /* a failed cooperative test may leave it */
    testdb_create(&f->db, "it_consumer", "inventory");
    stack_unique("it-consumer", f->topic, sizeof(f->topic));
    snprintf(f->dlq, sizeof(f->dlq), "%s.dlq", f->topic);
    stack_unique("it-consumer-group", f->group, sizeof(f->group));
    rd_kafka_conf_set(conf, "bootstrap.servers", stack_env("KAFKA_BOOTSTRAP_SERVERS"), NULL, 0);
    rd_kafka_conf_set(conf, "enable.idempotence", "true", NULL, 0);
    rd_kafka_conf_set(conf, "partitioner", "murmur2_random", NULL, 0);
    f->producer = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    names[0] = f->topic;
    names[1] = f->dlq;
    assert_int_equal(saga_kafka_topics_ensure(f->producer, names, 2, 3, 1, 10000, st), SAGA_OK);
    assert_int_equal(saga_serde_new(&f->serde, NULL, err, sizeof(err)), SAGA_OK);
    snprintf(f->log, sizeof(f->log), "%s/%s.log", SAGA_TEST_LOG_DIR, f->db.name);
    unlink(f->log);
    snprintf(f->env[0], sizeof(f->env[0]), "DATABASE_URL=%s", f->db.owner_url);
    snprintf(f->env[1], sizeof(f->env[1]), "KAFKA_BOOTSTRAP_SERVERS=%s",
             stack_env("KAFKA_BOOTSTRAP_SERVERS"));
    snprintf(f->env[2], sizeof(f->env[2]), "TEST_TOPIC=%s", f->topic);
    snprintf(f->env[3], sizeof(f->env[3]), "TEST_GROUP=%s", f->group);
    snprintf(f->env[4], sizeof(f->env[4]), "TEST_DLQ=%s", f->dlq);
    /* The test's topic is not one of the suite's: its producer is declared (sample events'). */
    snprintf(f->env[5], sizeof(f->env[5]), "SAGA_TOPIC_OWNERS=%s=test-service", f->topic);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    rd_kafka_destroy(f->producer);
    saga_serde_destroy(f->serde);
    testdb_drop(&f->db);
    free(f);
    return 0;
}

/* Starts the app with the test's environment, fault and batch size (NULL: none), extra: more
 * NAME=value entries ending in NULL (may be NULL), logging to logfile (NULL: f->log). */
static pid_t start_app_with(struct fixture *f, const char *fault, const char *batch,
                            const char *const *extra, const char *logfile)
{
    char e_fault[64], e_batch[64];
    /* A crashed member's partitions move after its session times out: librdkafka's
     * default is 45 s, the broker's minimum 6 s. */
    const char *env[24] = {f->env[0],
                           f->env[1],
                           f->env[2],
                           f->env[3],
                           f->env[4],
                           f->env[5],
                           "DLQ_MAX_ATTEMPTS=2",
                           "CONSUMER_BACKOFF_MIN=20ms",
                           "CONSUMER_BACKOFF_MAX=200ms",
                           "LOG_LEVEL=info",
                           "KAFKA_SESSION_TIMEOUT_MS=6000",
                           "KAFKA_HEARTBEAT_INTERVAL_MS=1000"};
    int n = 12;
    if (fault) {
        snprintf(e_fault, sizeof(e_fault), "SAGA_FAULT=%s", fault);
        env[n++] = e_fault;
    }
    if (batch) {
        snprintf(e_batch, sizeof(e_batch), "CONSUMER_BATCH_SIZE=%s", batch);
        env[n++] = e_batch;
    }
    for (int i = 0; extra && extra[i] && n < 23; i++)
        env[n++] = extra[i];
    env[n] = NULL;
    return proc_start(APP, env, logfile ? logfile : f->log);
}

static pid_t start_app(struct fixture *f, const char *fault, const char *batch)
{
    return start_app_with(f, fault, batch, NULL, NULL);
}

/* Produces to partition (RD_KAFKA_PARTITION_UA: by key). */
static void produce_raw_to(struct fixture *f, int32_t partition, const char *key, const void *val,
                           size_t len, rd_kafka_headers_t *h)
{
    char kbuf[128];
    void *vbuf = malloc(len ? len : 1);
    snprintf(kbuf, sizeof(kbuf), "%s", key);
    memcpy(vbuf, val, len);
    assert_int_equal(
        rd_kafka_producev(f->producer, RD_KAFKA_V_TOPIC(f->topic), RD_KAFKA_V_PARTITION(partition),
                          RD_KAFKA_V_KEY(kbuf, strlen(kbuf)), RD_KAFKA_V_VALUE(vbuf, len),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                          RD_KAFKA_V_HEADERS(h ? h : rd_kafka_headers_new(1)), RD_KAFKA_V_END),
        RD_KAFKA_RESP_ERR_NO_ERROR);
    free(vbuf);
}

static void produce_raw(struct fixture *f, const char *key, const void *val, size_t len,
                        rd_kafka_headers_t *h)
{
    produce_raw_to(f, RD_KAFKA_PARTITION_UA, key, val, len, h);
}

/* An event of type for order, with a distinct event id; customer only for OrderPlaced;
 * to partition (RD_KAFKA_PARTITION_UA: by key). */
static void produce_event_to(struct fixture *f, int32_t partition, saga_event_type_t type,
                             const char *order, const char *customer, int copies)
{
    struct saga_event ev;
    struct saga_buf buf = {0};
    char event_id[128], err[512];

    sample_event(&ev, type, 0);
    snprintf(event_id, sizeof(event_id), "%s-%s", order, saga_event_type_name(type));
    ev.meta.event_id = event_id;
    ev.meta.order_id = order;
    ev.meta.correlation_id = order;
    if (type == SAGA_EV_ORDER_PLACED && customer)
        ev.u.order_placed.customer_id = customer;
    assert_int_equal(saga_serde_encode(f->serde, &ev, &buf, err, sizeof(err)), SAGA_OK);
    for (int i = 0; i < copies; i++) {
        rd_kafka_headers_t *h = rd_kafka_headers_new(5);
        saga_event_headers_add(h, &ev);
        produce_raw_to(f, partition, order, buf.data, buf.len, h);
    }
    saga_buf_release(&buf);
}

static void produce_event(struct fixture *f, saga_event_type_t type, const char *order,
                          const char *customer, int copies)
{
    produce_event_to(f, RD_KAFKA_PARTITION_UA, type, order, customer, copies);
}

static void flush(struct fixture *f)
{
    assert_int_equal(rd_kafka_flush(f->producer, 30000), RD_KAFKA_RESP_ERR_NO_ERROR);
}

static long long q(struct fixture *f, const char *sql)
{
    return testdb_scalar(&f->db, sql);
}

/* Waits until sql gives want (the app creates its tables on start, so -1 means not yet). */
static void wait_for(struct fixture *f, const char *sql, long long want, int timeout_ms)
{
    long long end = now_ms() + timeout_ms, got = -2;
    while (now_ms() < end) {
        if ((got = q(f, sql)) == want)
            return;
        usleep(100000);
    }
    fail_msg("%s: %lld, want %lld", sql, got, want);
}

static void stop_app(pid_t app)
{
    int status = proc_stop(app, SIGTERM, 30000);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* The group's committed offset equals the end of every partition. */
static void assert_group_committed_everything(struct fixture *f)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(3);
    rd_kafka_t *c;

    rd_kafka_conf_set(conf, "bootstrap.servers", stack_env("KAFKA_BOOTSTRAP_SERVERS"), NULL, 0);
    rd_kafka_conf_set(conf, "group.id", f->group, NULL, 0);
    c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, NULL, 0);
    for (int p = 0; p < 3; p++)
        rd_kafka_topic_partition_list_add(l, f->topic, p);
    assert_int_equal(rd_kafka_committed(c, l, 10000), RD_KAFKA_RESP_ERR_NO_ERROR);
    for (int p = 0; p < 3; p++) {
        int64_t lo, hi;
        assert_int_equal(rd_kafka_query_watermark_offsets(c, f->topic, p, &lo, &hi, 10000),
                         RD_KAFKA_RESP_ERR_NO_ERROR);
        if (hi > 0 && l->elems[p].offset != hi)
            fail_msg("partition %d: committed %ld, end %ld", p, (long)l->elems[p].offset, (long)hi);
    }
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(c);
}

/* Whether the group's committed offset equals the end of every partition; why not in why. */
static int group_committed_everything(struct fixture *f, char *why, size_t why_size)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(3);
    rd_kafka_t *c;
    int ok = 1;

    rd_kafka_conf_set(conf, "bootstrap.servers", stack_env("KAFKA_BOOTSTRAP_SERVERS"), NULL, 0);
    rd_kafka_conf_set(conf, "group.id", f->group, NULL, 0);
    c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, NULL, 0);
    for (int p = 0; p < 3; p++)
        rd_kafka_topic_partition_list_add(l, f->topic, p);
    if (rd_kafka_committed(c, l, 10000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        snprintf(why, why_size, "committed offsets not read");
        ok = 0;
    }
    for (int p = 0; p < 3 && ok; p++) {
        int64_t lo, hi;
        if (rd_kafka_query_watermark_offsets(c, f->topic, p, &lo, &hi, 10000) !=
            RD_KAFKA_RESP_ERR_NO_ERROR) {
            snprintf(why, why_size, "partition %d: watermarks not read", p);
            ok = 0;
        } else if (hi > 0 && l->elems[p].offset != hi) {
            snprintf(why, why_size, "partition %d: committed %ld, end %ld", p,
                     (long)l->elems[p].offset, (long)hi);
            ok = 0;
        }
    }
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(c);
    return ok;
}

/* Runs the statement fmt makes as the stack's superuser. */
__attribute__((format(printf, 1, 2))) static void super_sql(const char *fmt, ...)
{
    char sql[512];
    PGconn *c = PQconnectdb(stack_env("PG_SUPERUSER_URL"));
    PGresult *r;
    va_list ap;

    assert_int_equal(PQstatus(c), CONNECTION_OK);
    va_start(ap, fmt);
    vsnprintf(sql, sizeof(sql), fmt, ap);
    va_end(ap);
    r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK && PQresultStatus(r) != PGRES_TUPLES_OK)
        fail_msg("%s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
}

/*
 * An event the service has no handler for (the app handles OrderPlaced and
 * InventoryReserved, not OrderConfirmed) costs no transaction and leaves no inbox row:
 * its offset moves even while the database refuses the consumer. The handled events
 * around it still take effect exactly once.
 */
static void test_skipped_events_need_no_database(void **state)
{
    struct fixture *f = *state;
    pid_t app = start_app(f, NULL, NULL);
    char order[32], why[200] = "";
    long long end;
    int done = 0;

    produce_event(f, SAGA_EV_ORDER_PLACED, "order-s0", NULL, 1);
    flush(f);
    wait_for(f, "SELECT count(*) FROM effects", 1, 60000);
    /* From now on the database refuses the consumer (and everyone else). */
    super_sql("ALTER DATABASE %s ALLOW_CONNECTIONS false", f->db.name);
    super_sql("SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '%s'",
              f->db.name);
    for (int i = 0; i < 20; i++) {
        snprintf(order, sizeof(order), "order-s%d", i);
        produce_event(f, SAGA_EV_ORDER_CONFIRMED, order, NULL, 2);
    }
    flush(f);
    for (end = now_ms() + 30000; !done && now_ms() < end;)
        if (!(done = group_committed_everything(f, why, sizeof(why))))
            usleep(500000);
    super_sql("ALTER DATABASE %s ALLOW_CONNECTIONS true", f->db.name);
    if (!done)
        fail_msg("skipped events were not committed while the database was away: %s", why);
    /* Handled ones, with a duplicate of the first: exactly once. */
    produce_event(f, SAGA_EV_ORDER_PLACED, "order-s1", NULL, 2);
    produce_event(f, SAGA_EV_ORDER_PLACED, "order-s0", NULL, 1);
    flush(f);
    wait_for(f, "SELECT count(*) FROM effects", 2, 60000);
    usleep(1000000);
    assert_int_equal(q(f, "SELECT count(*) FROM effects"), 2);
    assert_int_equal(q(f, "SELECT count(*) FROM inbox"), 2);
    assert_int_equal(q(f, "SELECT count(*) FROM inbox WHERE event_id LIKE '%OrderConfirmed'"), 0);
    stop_app(app);
    assert_group_committed_everything(f);
}

static void test_effects_once_despite_duplicates(void **state)
{
    struct fixture *f = *state;
    pid_t app = start_app(f, NULL, NULL);
    char order[32];

    for (int i = 0; i < 5; i++) {
        snprintf(order, sizeof(order), "order-%d", i);
        produce_event(f, SAGA_EV_ORDER_PLACED, order, NULL, 3); /* each three times */
    }
    flush(f);
    wait_for(f, "SELECT count(*) FROM inbox", 5, 60000);
    usleep(1000000);
    assert_int_equal(q(f, "SELECT count(*) FROM effects"), 5);
    assert_int_equal(q(f, "SELECT count(DISTINCT event_id) FROM effects"), 5);
    /* Each handled event emitted one event, through the outbox. */
    assert_int_equal(q(f, "SELECT count(*) FROM outbox WHERE event_type = 'InventoryReserved'"
                          " AND topic = 'inventory' AND headers->>'causation_id' LIKE 'order-%'"),
                     5);
    stop_app(app);
    assert_true(log_wait(f->log, "duplicates 10", 1000));
    assert_group_committed_everything(f);
}

static void test_poison_goes_to_the_dlq_and_the_partition_moves_on(void **state)
{
    struct fixture *f = *state;
    pid_t app = start_app(f, NULL, NULL);
    const char garbage[] = "\xc3\x01not really avro";
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_topic_partition_list_t *subs = rd_kafka_topic_partition_list_new(1);
    rd_kafka_t *c;
    char group[96];
    int got = 0, undecodable = 0, invalid = 0;

    /* All three on one key, hence one partition, in this order. */
    produce_raw(f, "order-k", garbage, sizeof(garbage) - 1, NULL);
    produce_event(f, SAGA_EV_ORDER_PLACED, "order-k", "poison", 1);
    produce_event(f, SAGA_EV_ORDER_PLACED, "order-k", NULL, 1);
    flush(f);
    wait_for(f, "SELECT count(*) FROM effects WHERE order_id = 'order-k'", 1, 60000);
    stop_app(app);

    rd_kafka_conf_set(conf, "bootstrap.servers", stack_env("KAFKA_BOOTSTRAP_SERVERS"), NULL, 0);
    rd_kafka_conf_set(conf, "group.id", stack_unique("it-dlq-reader", group, sizeof(group)), NULL,
                      0);
    rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", NULL, 0);
    c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, NULL, 0);
    rd_kafka_poll_set_consumer(c);
    rd_kafka_topic_partition_list_add(subs, f->dlq, RD_KAFKA_PARTITION_UA);
    rd_kafka_subscribe(c, subs);
    rd_kafka_topic_partition_list_destroy(subs);
    for (long long end = now_ms() + 30000; got < 2 && now_ms() < end;) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 200);
        rd_kafka_headers_t *h = NULL;
        const void *v;
        size_t len;
        char reason[64] = "", topic[128] = "", attempts[8] = "";
        if (!m)
            continue;
        if (m->err) {
            rd_kafka_message_destroy(m);
            continue;
        }
        got++;
        assert_int_equal(m->key_len, strlen("order-k"));
        rd_kafka_message_headers(m, &h);
        if (!rd_kafka_header_get_last(h, "dlq.reason", &v, &len))
            snprintf(reason, sizeof(reason), "%.*s", (int)len, (const char *)v);
        if (!rd_kafka_header_get_last(h, "dlq.source.topic", &v, &len))
            snprintf(topic, sizeof(topic), "%.*s", (int)len, (const char *)v);
        if (!rd_kafka_header_get_last(h, "dlq.attempts", &v, &len))
            snprintf(attempts, sizeof(attempts), "%.*s", (int)len, (const char *)v);
        assert_string_equal(topic, f->topic);
        assert_string_equal(attempts, "2");
        assert_int_equal(rd_kafka_header_get_last(h, "dlq.first_failed_at", &v, &len), 0);
        assert_int_equal(rd_kafka_header_get_last(h, "dlq.source.offset", &v, &len), 0);
        if (strcmp(reason, "undecodable") == 0) {
            undecodable++;
            /* The original bytes, untouched. */
            assert_int_equal(m->len, sizeof(garbage) - 1);
            assert_memory_equal(m->payload, garbage, m->len);
        } else if (strcmp(reason, "invalid") == 0) {
            invalid++;
            /* The original headers travel along. */
            assert_int_equal(rd_kafka_header_get_last(h, "event_type", &v, &len), 0);
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
    assert_int_equal(undecodable, 1);
    assert_int_equal(invalid, 1);
    assert_group_committed_everything(f);

    /* The operator's view, and a replay back to the source topic. */
    {
        char cmd[1024], out[8192];
        FILE *p;
        size_t n;
        int64_t lo, hi, total = 0;
        snprintf(cmd, sizeof(cmd), "KAFKA_BOOTSTRAP_SERVERS=%s %s/sagactl dlq list --topic %s",
                 stack_env("KAFKA_BOOTSTRAP_SERVERS"), SAGA_BIN_DIR, f->dlq);
        p = popen(cmd, "r");
        n = fread(out, 1, sizeof(out) - 1, p);
        out[n] = '\0';
        assert_int_equal(pclose(p), 0);
        assert_non_null(strstr(out, "undecodable"));
        assert_non_null(strstr(out, "customer 'poison' is refused"));
        assert_non_null(strstr(out, f->topic));
        /* The topic's owner declared as the app has it: the poison event decodes and belongs
         * there, so it goes back; the undecodable bytes cannot be checked and are refused. */
        snprintf(cmd, sizeof(cmd),
                 "KAFKA_BOOTSTRAP_SERVERS=%s %s %s/sagactl dlq replay --topic %s --all 2>&1",
                 stack_env("KAFKA_BOOTSTRAP_SERVERS"), f->env[5], SAGA_BIN_DIR, f->dlq);
        p = popen(cmd, "r");
        n = fread(out, 1, sizeof(out) - 1, p);
        out[n] = '\0';
        assert_int_not_equal(pclose(p), 0);
        assert_non_null(strstr(out, "replayed"));
        assert_non_null(strstr(out, "does not decode here"));
        assert_non_null(strstr(out, "1 dead letter refused"));
        /* The three messages of the test, and the one replayed. */
        for (int part = 0; part < 3; part++) {
            rd_kafka_query_watermark_offsets(f->producer, f->topic, part, &lo, &hi, 10000);
            total += hi;
        }
        assert_int_equal(total, 4);
    }
}

static void test_deferred_until_the_order_is_known(void **state)
{
    struct fixture *f = *state;
    pid_t app = start_app(f, NULL, NULL);

    produce_event(f, SAGA_EV_INVENTORY_RESERVED, "order-late", NULL, 1);
    flush(f);
    wait_for(f, "SELECT count(*) FROM deferred WHERE wait_key = 'order-late'", 1, 60000);
    assert_int_equal(q(f, "SELECT count(*) FROM effects WHERE order_id = 'order-late'"), 0);
    produce_event(f, SAGA_EV_ORDER_PLACED, "order-late", NULL, 1);
    flush(f);
    wait_for(f, "SELECT count(*) FROM effects WHERE order_id = 'order-late'", 2, 60000);
    assert_int_equal(q(f, "SELECT count(*) FROM deferred"), 0);
    assert_int_equal(q(f, "SELECT count(*) FROM effects WHERE order_id = 'order-late'"
                          " AND event_type = 'InventoryReserved'"),
                     1);
    /* The deferred event is in the inbox now, so its redelivery is a duplicate. */
    produce_event(f, SAGA_EV_INVENTORY_RESERVED, "order-late", NULL, 1);
    flush(f);
    usleep(1500000);
    assert_int_equal(q(f, "SELECT count(*) FROM effects WHERE order_id = 'order-late'"), 2);
    stop_app(app);
    assert_true(log_wait(f->log, "ran deferred InventoryReserved", 1000));
}

static void crash_and_recover(struct fixture *f, const char *fault)
{
    pid_t app;
    int status;
    char order[32];

    for (int i = 0; i < 20; i++) {
        snprintf(order, sizeof(order), "order-c%d", i);
        produce_event(f, SAGA_EV_ORDER_PLACED, order, NULL, 1);
    }
    flush(f);
    app = start_app(f, fault, "10");
    status = proc_wait(app, 60000);
    assert_true(WIFSIGNALED(status));
    assert_int_equal(WTERMSIG(status), SIGKILL);
    app = start_app(f, NULL, "10");
    wait_for(f, "SELECT count(DISTINCT event_id) FROM effects", 20, 60000);
    usleep(1000000);
    /* Redelivered, but never applied twice. */
    assert_int_equal(q(f, "SELECT count(*) FROM effects"), 20);
    assert_int_equal(q(f, "SELECT count(*) FROM outbox"), 20);
    stop_app(app);
    assert_group_committed_everything(f);
}

static void test_crash_after_commit_before_offsets(void **state)
{
    crash_and_recover(*state, "consumer.after_commit");
}

static void test_crash_in_the_middle_of_a_batch(void **state)
{
    struct fixture *f = *state;
    crash_and_recover(f, "consumer.mid_batch");
}

/* Two members of one group; one leaves while events flow. strategy: NULL for the default. */
static void two_members(struct fixture *f, const char *strategy)
{
    char log2[300], order[32], env_strategy[128];
    pid_t a, b;
    const char *env[12];
    int n = 0;

    if (strategy) {
        snprintf(env_strategy, sizeof(env_strategy), "KAFKA_PARTITION_ASSIGNMENT_STRATEGY=%s",
                 strategy);
        setenv("KAFKA_PARTITION_ASSIGNMENT_STRATEGY", strategy, 1); /* for start_app's child */
    }
    a = start_app(f, NULL, "5");
    snprintf(log2, sizeof(log2), "%s.b", f->log);
    for (int i = 0; i < 6; i++)
        env[n++] = f->env[i];
    env[n++] = "CONSUMER_BATCH_SIZE=5";
    env[n++] = "KAFKA_SESSION_TIMEOUT_MS=6000";
    env[n++] = "KAFKA_HEARTBEAT_INTERVAL_MS=1000";
    if (strategy)
        env[n++] = env_strategy;
    env[n] = NULL;
    b = proc_start(APP, env, log2);
    assert_true(log_wait(f->log, "assigned", 30000));
    assert_true(log_wait(log2, "assigned", 30000));
    for (int i = 0; i < 60; i++) {
        snprintf(order, sizeof(order), "order-r%d", i);
        produce_event(f, SAGA_EV_ORDER_PLACED, order, NULL, 1);
        if (i == 30) {
            flush(f);
            stop_app(a); /* a rebalance while events flow */
        }
    }
    flush(f);
    wait_for(f, "SELECT count(DISTINCT event_id) FROM effects", 60, 60000);
    usleep(1000000);
    assert_int_equal(q(f, "SELECT count(*) FROM effects"), 60);
    stop_app(b);
    /* Eager: the leaver gives everything back. Cooperative: it may have held nothing. */
    if (!strategy)
        assert_true(log_wait(f->log, "revoked", 1000));
    if (strategy) {
        assert_true(log_wait(f->log, "cooperative rebalancing", 1000));
        unsetenv("KAFKA_PARTITION_ASSIGNMENT_STRATEGY");
    }
    assert_group_committed_everything(f);
}

static void test_two_members_share_and_hand_over(void **state)
{
    two_members(*state, NULL);
}

static void test_two_members_with_cooperative_rebalancing(void **state)
{
    two_members(*state, "cooperative-sticky");
}

/* The members of the test's group the broker knows of, or -1. */
static int group_members(struct fixture *f)
{
    const struct rd_kafka_group_list *groups = NULL;
    int n = -1;
    if (rd_kafka_list_groups(f->producer, f->group, &groups, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (groups->group_cnt == 1 && !groups->groups[0].err)
            n = groups->groups[0].member_cnt;
        rd_kafka_group_list_destroy(groups);
    }
    return n;
}

/* A static member (SAGA_INSTANCE_ID) does not leave its group when it closes: a crashed
 * one gets its partitions back at once when it restarts. One stopped gracefully leaves
 * at once all the same, so its partitions move without waiting for its session. */
static void test_a_static_member_leaves_its_group_when_stopped(void **state)
{
    struct fixture *f = *state;
    static const char *const extra[] = {"SAGA_INSTANCE_ID=it-consumer-1", NULL};
    pid_t app = start_app_with(f, NULL, NULL, extra, NULL);
    int members;

    assert_true(log_wait(f->log, "assigned", 60000));
    assert_int_equal(group_members(f), 1);
    assert_int_equal(proc_stop(app, SIGTERM, 30000), 0);
    members = group_members(f);
    if (members != 0)
        fail_msg("the stopped static member is still one of the group's %d member(s): its "
                 "partitions wait for its session to time out",
                 members);
}

/* A consumer joins f's group under instance id, holds an assignment, and is gone
 * without a word (no LeaveGroup): the member that had the id is fenced. */
static void join_and_vanish(struct fixture *f, const char *id)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_topic_partition_list_t *subs = rd_kafka_topic_partition_list_new(1);
    rd_kafka_t *other;
    char err[256];
    int held = 0;

    rd_kafka_conf_set(conf, "bootstrap.servers", stack_env("KAFKA_BOOTSTRAP_SERVERS"), NULL, 0);
    rd_kafka_conf_set(conf, "group.id", f->group, NULL, 0);
    rd_kafka_conf_set(conf, "group.instance.id", id, NULL, 0);
    rd_kafka_conf_set(conf, "session.timeout.ms", "6000", NULL, 0);
    other = rd_kafka_new(RD_KAFKA_CONSUMER, conf, err, sizeof(err));
    assert_non_null(other);
    rd_kafka_poll_set_consumer(other);
    rd_kafka_topic_partition_list_add(subs, f->topic, RD_KAFKA_PARTITION_UA);
    assert_int_equal(rd_kafka_subscribe(other, subs), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_topic_partition_list_destroy(subs);
    for (long long end = now_ms() + 60000; !held && now_ms() < end;) {
        rd_kafka_topic_partition_list_t *a = NULL;
        rd_kafka_message_t *m = rd_kafka_consumer_poll(other, 100);
        if (m)
            rd_kafka_message_destroy(m);
        if (!rd_kafka_assignment(other, &a)) {
            held = a->cnt > 0;
            rd_kafka_topic_partition_list_destroy(a);
        }
    }
    rd_kafka_destroy_flags(other, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    assert_true(held);
}

/*
 * A static member (SAGA_INSTANCE_ID) is fenced when another member joins under its id.
 * Most often that other member is itself: when its session times out on its side (a
 * stalled broker, a paused process), librdkafka joins again with a new member id, and
 * the broker fences the old one's requests; librdkafka reports that as a fatal error.
 * Here the other member is a consumer that joins under the same id and is gone at once.
 * The service opens its consumer again and goes on, rather than ending.
 */
static void test_a_fenced_static_member_goes_on(void **state)
{
    struct fixture *f = *state;
    static const char *const extra[] = {"SAGA_INSTANCE_ID=it-consumer-fenced", NULL};
    pid_t app = start_app_with(f, NULL, NULL, extra, NULL);
    char order[32];
    int status;

    assert_true(log_wait(f->log, "assigned", 60000));
    produce_event(f, SAGA_EV_ORDER_PLACED, "order-fenced-0", NULL, 1);
    flush(f);
    wait_for(f, "SELECT count(DISTINCT event_id) FROM effects", 1, 60000);

    /* Another member under the same id joins, and vanishes without a word. */
    join_and_vanish(f, "it-consumer-fenced");
    if (!log_wait(f->log, "fenced", 30000))
        fail_msg("the service was not fenced by the other member (log %s)", f->log);
    /* What comes after the fencing, a while after it. */
    if (proc_wait(app, 5000) != -1)
        fail_msg("the service ended when it was fenced (log %s)", f->log);
    for (int n = 1; n <= 20; n++) {
        snprintf(order, sizeof(order), "order-fenced-%d", n);
        produce_event(f, SAGA_EV_ORDER_PLACED, order, NULL, 1);
    }
    flush(f);
    wait_for(f, "SELECT count(DISTINCT event_id) FROM effects", 21, 90000);
    if (proc_wait(app, 100) != -1)
        fail_msg("the service ended when it was fenced (log %s)", f->log);
    status = proc_stop(app, SIGTERM, 30000);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

/* One with no partition (more members than partitions) leaves too: librdkafka sends
 * LeaveGroup only once the revocation of its empty assignment was served. */
static void test_a_static_member_without_partitions_leaves_when_stopped(void **state)
{
    struct fixture *f = *state;
    char ids[4][64], logs[4][300];
    const char *extra[4][2];
    pid_t apps[4];
    int idle = -1, members;

    for (int i = 0; i < 4; i++) {
        snprintf(ids[i], sizeof(ids[i]), "SAGA_INSTANCE_ID=it-consumer-idle-%d", i);
        snprintf(logs[i], sizeof(logs[i]), "%s.%d", f->log, i);
        unlink(logs[i]);
        extra[i][0] = ids[i];
        extra[i][1] = NULL;
        apps[i] = start_app_with(f, NULL, NULL, extra[i], logs[i]);
    }
    /* The group settles with 4 members on 3 partitions: one holds none. */
    for (long long end = now_ms() + 90000; idle < 0 && now_ms() < end; usleep(200000)) {
        if (group_members(f) != 4)
            continue;
        for (int i = 0; i < 4 && idle < 0; i++)
            if (log_wait(logs[i], "assigned 0 partitions", 10))
                idle = i;
    }
    if (idle < 0)
        fail_msg("no member was left without a partition");
    sleep(3); /* settled */
    assert_int_equal(proc_stop(apps[idle], SIGTERM, 30000), 0);
    members = group_members(f);
    for (int i = 0; i < 4; i++)
        if (i != idle)
            proc_stop(apps[i], SIGTERM, 30000);
    if (members != 3)
        fail_msg("the stopped static member without partitions is still one of the group's "
                 "%d members (log %s)",
                 members, logs[idle]);
}

/* A fenced member whose consumer cannot be opened again (SAGA_FAULT=consumer.reopen, as
 * when its threads cannot be made or a rotated certificate is gone) ends with exit 1 and
 * the reason, not by a signal. */
static void test_a_failed_reopening_ends_with_its_reason(void **state)
{
    struct fixture *f = *state;
    static const char *const extra[] = {"SAGA_INSTANCE_ID=it-consumer-reopen",
                                        "SAGA_FAULT=consumer.reopen", NULL};
    pid_t app = start_app_with(f, NULL, NULL, extra, NULL);
    int status;

    assert_true(log_wait(f->log, "assigned", 60000));
    join_and_vanish(f, "it-consumer-reopen");
    status = proc_wait(app, 60000);
    if (status == -1)
        fail_msg("the service still runs after its consumer could not be opened again (log %s)",
                 f->log);
    if (log_wait(f->log, "Sanitizer", 10) || !WIFEXITED(status) || WEXITSTATUS(status) != 1)
        fail_msg("a failed reopening did not end the service with exit 1 (log %s)", f->log);
    assert_true(log_wait(f->log, "opening the consumer again: SAGA_FAULT consumer.reopen", 1000));
}

/* Two running instances with the same SAGA_INSTANCE_ID fence each other: one of them
 * ends (exit 1) within a minute, naming the variable, and the other goes on. */
static void test_two_instances_with_one_id_leave_one(void **state)
{
    struct fixture *f = *state;
    static const char *const extra[] = {"SAGA_INSTANCE_ID=it-consumer-twice", NULL};
    char log2[1024], order[32];
    pid_t a, b, ended = 0, left = 0;
    int status = -1;

    snprintf(log2, sizeof(log2), "%s.second", f->log);
    unlink(log2);
    a = start_app_with(f, NULL, NULL, extra, NULL);
    assert_true(log_wait(f->log, "assigned", 60000));
    b = start_app_with(f, NULL, NULL, extra, log2);
    for (long long end = now_ms() + 90000; !ended && now_ms() < end;) {
        if ((status = proc_wait(a, 200)) != -1)
            ended = a, left = b;
        else if ((status = proc_wait(b, 200)) != -1)
            ended = b, left = a;
    }
    if (!ended)
        fail_msg("two instances with one SAGA_INSTANCE_ID both still run after 90 s (logs %s, %s)",
                 f->log, log2);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 1);
    assert_true(log_wait(ended == a ? f->log : log2, "fenced twice within 30 s", 1000));
    assert_false(log_wait(ended == a ? f->log : log2, "Sanitizer", 10));
    /* The other consumes. */
    for (int n = 0; n < 5; n++) {
        snprintf(order, sizeof(order), "order-twice-%d", n);
        produce_event(f, SAGA_EV_ORDER_PLACED, order, NULL, 1);
    }
    flush(f);
    wait_for(f, "SELECT count(DISTINCT event_id) FROM effects", 5, 90000);
    status = proc_stop(left, SIGTERM, 30000);
    assert_true(WIFEXITED(status));
    assert_int_equal(WEXITSTATUS(status), 0);
}

static void test_rides_out_database_and_broker_restarts(void **state)
{
    struct fixture *f = *state;
    pid_t app = start_app(f, NULL, "10");
    char order[32];
    int n = 0;

    assert_true(log_wait(f->log, "assigned", 30000));
    for (; n < 30; n++) {
        snprintf(order, sizeof(order), "order-db%d", n);
        produce_event(f, SAGA_EV_ORDER_PLACED, order, NULL, 1);
    }
    flush(f);
    /* The database goes away under the consumer and comes back. */
    stack_cmd("kill postgres");
    for (; n < 60; n++) {
        snprintf(order, sizeof(order), "order-db%d", n);
        produce_event(f, SAGA_EV_ORDER_PLACED, order, NULL, 1);
    }
    flush(f);
    sleep(2);
    stack_cmd("up");
    wait_for(f, "SELECT count(DISTINCT event_id) FROM effects", 60, 90000);
    /* Then the broker. */
    stack_cmd("kill kafka");
    sleep(2);
    stack_cmd("up");
    for (; n < 90; n++) {
        snprintf(order, sizeof(order), "order-db%d", n);
        produce_event(f, SAGA_EV_ORDER_PLACED, order, NULL, 1);
    }
    flush(f);
    wait_for(f, "SELECT count(DISTINCT event_id) FROM effects", 90, 90000);
    usleep(1000000);
    assert_int_equal(q(f, "SELECT count(*) FROM effects"), 90);
    stop_app(app);
    assert_true(log_wait(f->log, "transient failure", 1000));
    assert_group_committed_everything(f);
}

static void test_old_inbox_rows_are_pruned(void **state)
{
    struct fixture *f = *state;
    pid_t app;
    char e_prune[] = "INBOX_PRUNE_INTERVAL=200ms";

    /* Two processed events: one long past the 7-day retention, one recent. */
    app = start_app(f, NULL, NULL);
    produce_event(f, SAGA_EV_ORDER_PLACED, "order-old", NULL, 1);
    produce_event(f, SAGA_EV_ORDER_PLACED, "order-new", NULL, 1);
    flush(f);
    wait_for(f, "SELECT count(*) FROM inbox", 2, 60000);
    stop_app(app);
    assert_int_equal(q(f, "WITH u AS (UPDATE inbox SET processed_at = now() - interval '8 days'"
                          " WHERE event_id LIKE 'order-old%' RETURNING 1) SELECT count(*) FROM u"),
                     1);
    putenv(e_prune);
    app = start_app(f, NULL, NULL);
    unsetenv("INBOX_PRUNE_INTERVAL");
    wait_for(f, "SELECT count(*) FROM inbox", 1, 30000);
    assert_int_equal(q(f, "SELECT count(*) FROM inbox WHERE event_id LIKE 'order-new%'"), 1);
    stop_app(app);
}

static void test_transient_failures_are_retried(void **state)
{
    struct fixture *f = *state;
    pid_t app = start_app(f, NULL, NULL);

    produce_event(f, SAGA_EV_ORDER_PLACED, "order-flaky", "flaky", 1);
    flush(f);
    wait_for(f, "SELECT count(*) FROM effects WHERE order_id = 'order-flaky'", 1, 60000);
    stop_app(app);
    assert_true(log_wait(f->log, "transient failure: flaky dependency, failure 1", 1000));
    assert_true(log_wait(f->log, "failure 2", 1000));
}

/* --- delivery on every path (each of these lost or stalled an event before) ------- */

/* Sets one config of topic (the other dynamic configs of the topic are reset). */
static void set_topic_config(const char *topic, const char *name, const char *value)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_t *rk;
    rd_kafka_ConfigResource_t *res;
    rd_kafka_queue_t *q;
    rd_kafka_event_t *ev;
    char err[256];

    rd_kafka_conf_set(conf, "bootstrap.servers", stack_env("KAFKA_BOOTSTRAP_SERVERS"), NULL, 0);
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, err, sizeof(err));
    assert_non_null(rk);
    res = rd_kafka_ConfigResource_new(RD_KAFKA_RESOURCE_TOPIC, topic);
    assert_int_equal(rd_kafka_ConfigResource_set_config(res, name, value), 0);
    q = rd_kafka_queue_new(rk);
    rd_kafka_AlterConfigs(rk, &res, 1, NULL, q);
    ev = rd_kafka_queue_poll(q, 15000);
    assert_non_null(ev);
    if (rd_kafka_event_error(ev))
        fail_msg("alter %s: %s", topic, rd_kafka_event_error_string(ev));
    {
        size_t cnt;
        const rd_kafka_ConfigResource_t **rr =
            rd_kafka_AlterConfigs_result_resources(rd_kafka_event_AlterConfigs_result(ev), &cnt);
        assert_int_equal(cnt, 1);
        if (rd_kafka_ConfigResource_error(rr[0]))
            fail_msg("alter %s: %s", topic, rd_kafka_ConfigResource_error_string(rr[0]));
    }
    rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_ConfigResource_destroy(res);
    rd_kafka_destroy(rk);
}

/* Messages in topic (sum of the partitions' end offsets: nothing is deleted in a test). */
static int64_t topic_messages(struct fixture *f, const char *topic)
{
    int64_t total = 0;
    for (int part = 0; part < 3; part++) {
        int64_t lo, hi;
        assert_int_equal(
            rd_kafka_query_watermark_offsets(f->producer, topic, part, &lo, &hi, 10000),
            RD_KAFKA_RESP_ERR_NO_ERROR);
        total += hi;
    }
    return total;
}

/*
 * Under cooperative-sticky: a stalled event first in every partition, then 40 events
 * (order ids prefix0..39) on every partition, so whichever partitions the first member
 * keeps, it holds unhandled messages of them; the first member backs off on its stalled
 * event with the batch in hand when a second member joins and takes a partition. The
 * stall lasts while the file named in *stall exists (the caller removes it).
 */
static void stalled_member_loses_a_partition(struct fixture *f, const char *prefix, char *stall,
                                             size_t stall_size, pid_t *a, pid_t *b)
{
    static char e_stall[320];
    char order[32], log2[300];
    const char *extra[3] = {e_stall, "KAFKA_PARTITION_ASSIGNMENT_STRATEGY=cooperative-sticky",
                            NULL};
    FILE *fp;

    snprintf(stall, stall_size, "%s.stall", f->log);
    snprintf(e_stall, sizeof(e_stall), "TEST_STALL_FILE=%s", stall);
    fp = fopen(stall, "w");
    assert_non_null(fp);
    fclose(fp);
    for (int p = 0; p < 3; p++) {
        snprintf(order, sizeof(order), "order-stall%d", p);
        produce_event_to(f, p, SAGA_EV_ORDER_PLACED, order, "stall", 1);
    }
    for (int i = 0; i < 40; i++) {
        snprintf(order, sizeof(order), "%s%d", prefix, i);
        produce_event(f, SAGA_EV_ORDER_PLACED, order, NULL, 1);
    }
    flush(f);
    *a = start_app_with(f, NULL, "100", extra, NULL);
    assert_true(log_wait(f->log, "stalled while", 60000));
    snprintf(log2, sizeof(log2), "%s.b", f->log);
    unlink(log2);
    *b = start_app_with(f, NULL, "100", extra, log2);
    assert_true(log_wait(log2, "assigned", 60000));
    assert_true(log_wait(f->log, "revoked", 30000));
}

/* 20 more events, prefix40..59. */
static void twenty_more(struct fixture *f, const char *prefix)
{
    char order[32];
    for (int i = 40; i < 60; i++) {
        snprintf(order, sizeof(order), "%s%d", prefix, i);
        produce_event(f, SAGA_EV_ORDER_PLACED, order, NULL, 1);
    }
    flush(f);
}

/*
 * Cooperative rebalancing while a member holds a batch and backs off on a transient
 * failure: a second member joins and takes some partitions away. The events of the
 * partitions the first member keeps are neither dropped nor committed over.
 */
static void test_cooperative_revoke_keeps_the_kept_partitions_messages(void **state)
{
    struct fixture *f = *state;
    char stall[300];
    pid_t a, b;

    stalled_member_loses_a_partition(f, "order-co", stall, sizeof(stall), &a, &b);
    twenty_more(f, "order-co");
    sleep(2);
    unlink(stall);
    wait_for(f, "SELECT count(DISTINCT event_id) FROM effects", 63, 60000);
    stop_app(a);
    stop_app(b);
    assert_int_equal(q(f, "SELECT count(*) FROM effects"), 63);
    assert_group_committed_everything(f);
}

/*
 * A dead letter the broker refuses (here: larger than the DLQ topic allows) is not
 * counted as sent: the partition waits, retrying, and moves on once the DLQ takes it.
 */
static void test_a_refused_dead_letter_holds_the_partition(void **state)
{
    struct fixture *f = *state;
    char garbage[3000];
    pid_t app;

    set_topic_config(f->dlq, "max.message.bytes", "1000");
    memset(garbage, 'x', sizeof(garbage));
    garbage[0] = '\xc3';
    garbage[1] = '\x01';
    produce_raw(f, "order-big", garbage, sizeof(garbage), NULL);
    produce_event(f, SAGA_EV_ORDER_PLACED, "order-big", NULL, 1);
    flush(f);
    app = start_app(f, NULL, NULL);
    assert_true(log_wait(f->log, "assigned", 60000));
    sleep(8);
    /* The poison is not in the DLQ, so the event behind it waits. */
    assert_int_equal(topic_messages(f, f->dlq), 0);
    assert_int_equal(q(f, "SELECT count(*) FROM effects WHERE order_id = 'order-big'"), 0);
    set_topic_config(f->dlq, "max.message.bytes", "1048588");
    wait_for(f, "SELECT count(*) FROM effects WHERE order_id = 'order-big'", 1, 60000);
    assert_int_equal(topic_messages(f, f->dlq), 1);
    stop_app(app);
    assert_group_committed_everything(f);
}

/*
 * A statement of the runtime's own that fails for good (an event id too long for the
 * inbox key's index: SQLSTATE 54000) sends the event to the DLQ after its attempts;
 * the partition moves on.
 */
static void test_a_permanent_database_error_goes_to_the_dlq(void **state)
{
    struct fixture *f = *state;
    struct saga_event ev;
    struct saga_buf buf = {0};
    char *long_id = malloc(12001), err[512];
    unsigned seed = 42;
    pid_t app;

    for (int i = 0; i < 12000; i++)
        long_id[i] = (char)('!' + rand_r(&seed) % 90); /* hardly compressible */
    long_id[12000] = '\0';
    sample_event(&ev, SAGA_EV_ORDER_PLACED, 0);
    ev.meta.event_id = long_id;
    ev.meta.order_id = "order-long";
    ev.meta.correlation_id = "order-long";
    assert_int_equal(saga_serde_encode(f->serde, &ev, &buf, err, sizeof(err)), SAGA_OK);
    produce_raw(f, "order-long", buf.data, buf.len, NULL);
    saga_buf_release(&buf);
    free(long_id);
    produce_event(f, SAGA_EV_ORDER_PLACED, "order-long", NULL, 1);
    flush(f);
    app = start_app(f, NULL, NULL);
    wait_for(f, "SELECT count(*) FROM effects WHERE event_id = 'order-long-OrderPlaced'", 1, 60000);
    assert_int_equal(topic_messages(f, f->dlq), 1);
    stop_app(app);
    assert_group_committed_everything(f);
}

/*
 * A deferred event that fails when its prerequisite releases it goes to the DLQ itself;
 * the prerequisite stays handled.
 */
static void test_a_released_event_that_fails_is_dead_lettered_alone(void **state)
{
    struct fixture *f = *state;
    pid_t app = start_app(f, NULL, NULL);

    produce_event(f, SAGA_EV_INVENTORY_RESERVED, "bad-release-1", NULL, 1);
    flush(f);
    wait_for(f, "SELECT count(*) FROM deferred WHERE wait_key = 'bad-release-1'", 1, 60000);
    produce_event(f, SAGA_EV_ORDER_PLACED, "bad-release-1", NULL, 1);
    flush(f);
    wait_for(f,
             "SELECT count(*) FROM effects WHERE order_id = 'bad-release-1'"
             " AND event_type = 'OrderPlaced'",
             1, 60000);
    for (long long end = now_ms() + 30000; topic_messages(f, f->dlq) < 1 && now_ms() < end;)
        usleep(200000);
    assert_int_equal(topic_messages(f, f->dlq), 1);
    wait_for(f, "SELECT count(*) FROM deferred", 0, 30000);
    stop_app(app);
    assert_true(log_wait(f->log, "refuses its reservation", 1000));
    assert_group_committed_everything(f);

    /* Its dead letter names its true origin (the partition and offset it was deferred
     * from), so sagactl finds the same record there and replays it. */
    {
        char cmd[1024], out[8192];
        FILE *p;
        size_t n;
        snprintf(cmd, sizeof(cmd),
                 "KAFKA_BOOTSTRAP_SERVERS=%s %s %s/sagactl dlq replay --topic %s --all 2>&1",
                 stack_env("KAFKA_BOOTSTRAP_SERVERS"), f->env[5], SAGA_BIN_DIR, f->dlq);
        p = popen(cmd, "r");
        n = fread(out, 1, sizeof(out) - 1, p);
        out[n] = '\0';
        if (pclose(p) != 0 || !strstr(out, "replayed"))
            fail_msg("the released event's dead letter was not replayed:\n%s", out);
    }
}

/*
 * A partition taken away while this member waited with its assignment paused, and given
 * back later, is consumed again (librdkafka keeps an application's pause across unassign
 * and assign).
 */
static void test_a_partition_given_back_after_a_backoff_is_consumed(void **state)
{
    struct fixture *f = *state;
    char stall[300];
    pid_t a, b;

    stalled_member_loses_a_partition(f, "order-gb", stall, sizeof(stall), &a, &b);
    /* The first member's backoff ends; then the second leaves and gives its partition back. */
    unlink(stall);
    sleep(3);
    stop_app(b);
    twenty_more(f, "order-gb");
    wait_for(f, "SELECT count(DISTINCT event_id) FROM effects", 63, 60000);
    stop_app(a);
    assert_int_equal(q(f, "SELECT count(*) FROM effects"), 63);
    assert_group_committed_everything(f);
}

/* The dlq.error headers of every dead letter in f->dlq, newline-separated, into out. */
static void dlq_errors(struct fixture *f, int expect, char *out, size_t size)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    rd_kafka_topic_partition_list_t *subs = rd_kafka_topic_partition_list_new(1);
    rd_kafka_t *c;
    char group[96];
    size_t o = 0;
    int got = 0;

    out[0] = '\0';
    rd_kafka_conf_set(conf, "bootstrap.servers", stack_env("KAFKA_BOOTSTRAP_SERVERS"), NULL, 0);
    rd_kafka_conf_set(conf, "group.id", stack_unique("it-dlq-reader", group, sizeof(group)), NULL,
                      0);
    rd_kafka_conf_set(conf, "auto.offset.reset", "earliest", NULL, 0);
    c = rd_kafka_new(RD_KAFKA_CONSUMER, conf, NULL, 0);
    rd_kafka_poll_set_consumer(c);
    rd_kafka_topic_partition_list_add(subs, f->dlq, RD_KAFKA_PARTITION_UA);
    rd_kafka_subscribe(c, subs);
    rd_kafka_topic_partition_list_destroy(subs);
    for (long long end = now_ms() + 30000; got < expect && now_ms() < end;) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c, 200);
        rd_kafka_headers_t *h = NULL;
        const void *v;
        size_t len;
        if (!m)
            continue;
        if (!m->err && !rd_kafka_message_headers(m, &h) &&
            !rd_kafka_header_get_last(h, "dlq.error", &v, &len) && o + len + 2 < size) {
            memcpy(out + o, v, len);
            o += len;
            out[o++] = '\n';
            out[o] = '\0';
            got++;
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_consumer_close(c);
    rd_kafka_destroy(c);
}

/*
 * An event on the wire that its topic's owner did not produce (meta.producer names another
 * service, as a forger with another service's credentials would send it) goes to the DLQ
 * as invalid, with no effect; the partition moves on to the honest event behind it.
 */
static void test_forged_producer_is_dead_lettered_without_effect(void **state)
{
    struct fixture *f = *state;
    struct saga_event ev;
    struct saga_buf buf = {0};
    rd_kafka_headers_t *h = rd_kafka_headers_new(5);
    char err[512], errors[2048], want[256];
    pid_t app;

    sample_event(&ev, SAGA_EV_ORDER_PLACED, 0);
    ev.meta.event_id = "order-forged-evil";
    ev.meta.order_id = "order-forged";
    ev.meta.correlation_id = "order-forged";
    ev.meta.producer = "notification-service";
    assert_int_equal(saga_serde_encode(f->serde, &ev, &buf, err, sizeof(err)), SAGA_OK);
    saga_event_headers_add(h, &ev);
    produce_raw(f, "order-forged", buf.data, buf.len, h);
    saga_buf_release(&buf);
    produce_event(f, SAGA_EV_ORDER_PLACED, "order-forged", "honest", 1);
    flush(f);
    app = start_app(f, NULL, NULL);
    wait_for(f, "SELECT count(*) FROM effects WHERE order_id = 'order-forged'", 1, 60000);
    for (long long end = now_ms() + 30000; topic_messages(f, f->dlq) < 1 && now_ms() < end;)
        usleep(200000);
    stop_app(app);
    /* The one effect is the honest event's. */
    assert_int_equal(q(f, "SELECT count(*) FROM effects WHERE order_id = 'order-forged'"
                          " AND event_id = 'order-forged-evil'"),
                     0);
    assert_int_equal(topic_messages(f, f->dlq), 1);
    dlq_errors(f, 1, errors, sizeof(errors));
    snprintf(want, sizeof(want),
             "OrderPlaced from notification-service does not belong on topic %s", f->topic);
    if (!strstr(errors, want))
        fail_msg("dlq.error: %s, expected '%s'", errors, want);
    assert_group_committed_everything(f);
}

/* An OTLP collector that takes connections and never answers. */
struct hanging_collector {
    int fd, accepted, conns[64];
    pthread_t thread;
};

static void *hang_up(void *arg)
{
    struct hanging_collector *h = arg;
    for (;;) {
        int c = accept(h->fd, NULL, NULL);
        if (c < 0)
            return NULL;
        if (h->accepted < 64)
            h->conns[h->accepted++] = c;
        else
            close(c);
    }
}

/*
 * Span export on, to a collector that hangs, and events whose traceparent is anything but
 * a valid one (wrong version, upper case, all-zero ids, non-hex, overlong, empty, a line
 * break, flags with other bits), plus an undecodable message whose
 * traceparent header holds a NUL: tracing changes nothing. Every event is handled once and
 * emits its event with a valid traceparent, only the undecodable message is dead-lettered,
 * the offsets are committed and the member stops cleanly.
 */
static void test_hostile_traceparents_and_a_hanging_collector_change_nothing(void **state)
{
    struct fixture *f = *state;
    static char overlong[4001];
    const char *hostile[] = {
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-0b",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-00",
        "ff-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "00-0AF7651916CD43DD8448EB211C80319C-B7AD6B7169203331-01",
        "00-00000000000000000000000000000000-0000000000000000-01",
        "00-zzf7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01",
        "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01\r\nx: y",
        "",
        overlong,
    };
    enum { N = sizeof(hostile) / sizeof(hostile[0]) };
    struct hanging_collector h = {0};
    struct sockaddr_in a = {0};
    socklen_t alen = sizeof(a);
    char endpoint[96];
    const char *extra[] = {endpoint, "OTEL_BSP_SCHEDULE_DELAY=10",
                           "OTEL_EXPORTER_OTLP_TIMEOUT=2000", "OTEL_BSP_EXPORT_TIMEOUT=1000", NULL};
    pid_t app;

    memset(overlong, 'a', sizeof(overlong) - 1);
    h.fd = socket(AF_INET, SOCK_STREAM, 0);
    a.sin_family = AF_INET;
    a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    assert_int_equal(bind(h.fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(h.fd, 64), 0);
    getsockname(h.fd, (struct sockaddr *)&a, &alen);
    assert_int_equal(pthread_create(&h.thread, NULL, hang_up, &h), 0);
    snprintf(endpoint, sizeof(endpoint), "OTEL_EXPORTER_OTLP_ENDPOINT=http://127.0.0.1:%d",
             ntohs(a.sin_port));

    app = start_app_with(f, NULL, NULL, extra, NULL);
    for (int i = 0; i < N; i++) {
        struct saga_event ev;
        struct saga_buf buf = {0};
        char order[32], event_id[64], err[512];
        rd_kafka_headers_t *hd = rd_kafka_headers_new(5);
        snprintf(order, sizeof(order), "tp-%d", i);
        snprintf(event_id, sizeof(event_id), "%s-placed", order);
        sample_event(&ev, SAGA_EV_ORDER_PLACED, 0);
        ev.meta.event_id = event_id;
        ev.meta.order_id = order;
        ev.meta.correlation_id = order;
        ev.meta.traceparent = hostile[i];
        if (saga_serde_encode(f->serde, &ev, &buf, err, sizeof(err)) != SAGA_OK)
            fail_msg("traceparent %d: %s", i, err);
        saga_event_headers_add(hd, &ev);
        produce_raw(f, order, buf.data, buf.len, hd);
        saga_buf_release(&buf);
    }
    {
        static const char garbage[] = "\xc3\x01not an event";
        static const char tp[55] = "00-0af7651916\0d43dd8448eb211c80319c-b7ad6b7169203331-01";
        rd_kafka_headers_t *hd = rd_kafka_headers_new(1);
        rd_kafka_header_add(hd, "traceparent", -1, tp, sizeof(tp));
        produce_raw(f, "tp-poison", garbage, sizeof(garbage) - 1, hd);
    }
    flush(f);
    wait_for(f, "SELECT count(*) FROM effects WHERE order_id LIKE 'tp-%'", N, 60000);
    usleep(1000 * 1000);
    assert_int_equal(
        q(f, "SELECT count(DISTINCT event_id) FROM effects WHERE order_id LIKE 'tp-%'"), N);
    assert_int_equal(q(f, "SELECT count(*) FROM effects WHERE order_id LIKE 'tp-%'"), N);
    /* What they emitted carries a valid trace context. */
    assert_int_equal(
        q(f, "SELECT count(*) FROM outbox WHERE headers->>'causation_id' LIKE 'tp-%'"
             " AND headers->>'traceparent' ~ '^00-[0-9a-f]{32}-[0-9a-f]{16}-[0-9a-f]{2}$'"),
        N);
    stop_app(app);
    assert_group_committed_everything(f);
    assert_int_equal(topic_messages(f, f->dlq), 1); /* the undecodable one */
    assert_true(h.accepted > 0);                    /* spans were exported (to nobody) */
    shutdown(h.fd, SHUT_RDWR);
    pthread_join(h.thread, NULL);
    close(h.fd);
    for (int i = 0; i < h.accepted; i++)
        close(h.conns[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_effects_once_despite_duplicates, setup, teardown),
        cmocka_unit_test_setup_teardown(test_skipped_events_need_no_database, setup, teardown),
        cmocka_unit_test_setup_teardown(test_poison_goes_to_the_dlq_and_the_partition_moves_on,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_deferred_until_the_order_is_known, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_after_commit_before_offsets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_crash_in_the_middle_of_a_batch, setup, teardown),
        cmocka_unit_test_setup_teardown(test_two_members_share_and_hand_over, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_static_member_without_partitions_leaves_when_stopped,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_failed_reopening_ends_with_its_reason, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_two_instances_with_one_id_leave_one, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_fenced_static_member_goes_on, setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_static_member_leaves_its_group_when_stopped, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_two_members_with_cooperative_rebalancing, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_transient_failures_are_retried, setup, teardown),
        cmocka_unit_test_setup_teardown(test_old_inbox_rows_are_pruned, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rides_out_database_and_broker_restarts, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_cooperative_revoke_keeps_the_kept_partitions_messages,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_partition_given_back_after_a_backoff_is_consumed,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_a_refused_dead_letter_holds_the_partition, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_permanent_database_error_goes_to_the_dlq, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_a_released_event_that_fails_is_dead_lettered_alone,
                                        setup, teardown),
        cmocka_unit_test_setup_teardown(test_forged_producer_is_dead_lettered_without_effect, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(
            test_hostile_traceparents_and_a_hanging_collector_change_nothing, setup, teardown),
    };
    if (getenv("IT_ONLY")) /* a glob: IT_ONLY='*cooperative*' */
        cmocka_set_test_filter(getenv("IT_ONLY"));
    return cmocka_run_group_tests(tests, NULL, NULL);
}
