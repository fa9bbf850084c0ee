/*
 * bench_consumer: the consumer runtime with a trivial handler (its inbox row and
 * one outbox row per event) on the real stack, next to pgbench running the same
 * statements one transaction per event with the same single client, in the same
 * run. Target: >= 3x the pgbench rate, through batching.
 *
 *   SAGA_STACK_ENV=<stack>/stack.env bench_consumer PGBENCH [events] [pgbench seconds]
 */
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "sample_events.h"
#include "saga/consumer.h"
#include "saga/headers.h"
#include "saga/kafka.h"
#include "saga/migrate.h"
#include "saga/pg.h"
#include "stack_env.h"
#include "testdb.h"

static atomic_long handled;
static long target;
static atomic_int stop;
static double t_first, t_last;

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static saga_handle_result_t on_placed(struct saga_tx *tx, const struct saga_event *ev, void *arg)
{
    struct saga_event out;
    struct saga_stock_line line = {"sku-bench", 1};
    char id[96];
    saga_handle_result_t res;
    long n;

    saga_event_init(&out, SAGA_EV_INVENTORY_RESERVED);
    out.meta = ev->meta;
    snprintf(id, sizeof(id), "%s-r", ev->meta.event_id);
    out.meta.event_id = id;
    out.meta.causation_id = ev->meta.event_id;
    out.u.inventory_reserved.reservation_id = id;
    out.u.inventory_reserved.items = &line;
    out.u.inventory_reserved.item_count = 1;
    res = saga_tx_emit(tx, &out);
    if (res != SAGA_HANDLE_OK)
        return res;
    n = atomic_fetch_add(&handled, 1) + 1;
    if (n == 1)
        t_first = now_s();
    if (n >= target) {
        t_last = now_s();
        stop = 1;
    }
    return SAGA_HANDLE_OK;
}

int main(int argc, char **argv)
{
    const char *pgbench = argc > 1 ? argv[1] : "pgbench";
    long events = argc > 2 ? atol(argv[2]) : 30000;
    int pg_seconds = argc > 3 ? atoi(argv[3]) : 10;
    struct testdb db;
    struct saga_config cfg;
    struct saga_consumer_conf conf = {0};
    struct saga_consumer *c;
    struct saga_serde *serde;
    struct saga_buf buf = {0};
    struct saga_topic_status st;
    char topic[96], group[96], err[512], cmd[2048], script[] = "/tmp/bench_consumer_XXXXXX";
    const char *topics[1], *names[1];
    rd_kafka_conf_t *pc = rd_kafka_conf_new();
    rd_kafka_t *producer;
    PGconn *conn;
    double consumer_rate, pg_tps = 0;
    FILE *p;
    int fd;

    target = events;
    testdb_create(&db, "bench_consumer", "inventory");
    if (!(conn = saga_pg_connect(db.owner_url, NULL, err, sizeof(err))) ||
        saga_pg_migrate(conn, saga_common_migrations, saga_common_migration_count, NULL, err,
                        sizeof(err))) {
        fprintf(stderr, "bench_consumer: %s\n", err);
        return 1;
    }
    PQfinish(conn);

    /* The events, produced before the consumer starts. */
    stack_unique("bench-consumer", topic, sizeof(topic));
    names[0] = topic;
    rd_kafka_conf_set(pc, "bootstrap.servers", stack_env("KAFKA_BOOTSTRAP_SERVERS"), NULL, 0);
    rd_kafka_conf_set(pc, "linger.ms", "20", NULL, 0);
    producer = rd_kafka_new(RD_KAFKA_PRODUCER, pc, NULL, 0);
    saga_kafka_topics_ensure(producer, names, 1, 6, 1, 10000, &st);
    saga_serde_new(&serde, NULL, err, sizeof(err));
    printf("bench_consumer: producing %ld OrderPlaced events...\n", events);
    for (long i = 0; i < events; i++) {
        struct saga_event ev;
        char eid[64], oid[64];
        sample_event(&ev, SAGA_EV_ORDER_PLACED, 0);
        snprintf(eid, sizeof(eid), "bench-e-%ld", i);
        snprintf(oid, sizeof(oid), "bench-o-%ld", i);
        ev.meta.event_id = eid;
        ev.meta.order_id = oid;
        saga_serde_encode(serde, &ev, &buf, err, sizeof(err));
        while (rd_kafka_producev(
                   producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(oid, strlen(oid)),
                   RD_KAFKA_V_VALUE(buf.data, buf.len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
                   RD_KAFKA_V_END) == RD_KAFKA_RESP_ERR__QUEUE_FULL)
            rd_kafka_poll(producer, 10);
    }
    rd_kafka_flush(producer, 60000);
    rd_kafka_destroy(producer);

    /* The runtime, in this process. */
    setenv("DATABASE_URL", db.owner_url, 1);
    setenv("KAFKA_BOOTSTRAP_SERVERS", stack_env("KAFKA_BOOTSTRAP_SERVERS"), 1);
    {
        char owners[160]; /* the bench's topic is not the suite's: its producer is declared */
        snprintf(owners, sizeof(owners), "%s=test-service", topic);
        setenv("SAGA_TOPIC_OWNERS", owners, 1);
    }
    if (saga_config_load(&cfg, "bench-consumer", SAGA_CONFIG_DATABASE, 0, err, sizeof(err))) {
        fprintf(stderr, "bench_consumer: %s\n", err);
        return 1;
    }
    saga_log_init("bench-consumer", SAGA_LOG_WARN);
    topics[0] = topic;
    conf.cfg = &cfg;
    conf.group = stack_unique("bench-consumer-group", group, sizeof(group));
    conf.dlq_topic = "inventory.dlq";
    conf.topics = topics;
    conf.ntopics = 1;
    conf.handlers[SAGA_EV_ORDER_PLACED] = on_placed;
    conf.stop = &stop;
    if (saga_consumer_new(&c, &conf, err, sizeof(err)) != SAGA_OK) {
        fprintf(stderr, "bench_consumer: %s\n", err);
        return 1;
    }
    saga_consumer_run(c);
    saga_consumer_destroy(c);
    consumer_rate = (double)events / (t_last - t_first);
    printf("  consumer runtime: %ld events in %.2f s: %.0f events/s (1 thread, batches of %s)\n",
           events, t_last - t_first, consumer_rate,
           getenv("CONSUMER_BATCH_SIZE") ? getenv("CONSUMER_BATCH_SIZE") : "100");

    /* pgbench: the same statements, one event per transaction, one client. */
    fd = mkstemp(script);
    p = fdopen(fd, "w");
    fprintf(p, "BEGIN;\n"
               "INSERT INTO inbox (consumer, event_id) VALUES ('pgbench', "
               "'e-' || :client_id || '-' || nextval('outbox_id_seq')) ON CONFLICT DO NOTHING;\n"
               "WITH row AS (INSERT INTO outbox (topic, msg_key, event_type, event_id, payload, "
               "headers) VALUES ('inventory', 'order-x', 'InventoryReserved', 'x', "
               "decode(repeat('ab', 280), 'hex'), '{\"event_id\":\"x\"}') RETURNING id) "
               "SELECT id, pg_notify('saga_outbox', '') FROM row;\n"
               "COMMIT;\n");
    fclose(p);
    snprintf(cmd, sizeof(cmd), "%s -n -c 1 -T %d -f %s '%s' 2>&1", pgbench, pg_seconds, script,
             db.owner_url);
    if ((p = popen(cmd, "r"))) {
        char line[512];
        while (fgets(line, sizeof(line), p)) {
            const char *t = strstr(line, "tps = ");
            if (t && strstr(line, "without initial connection"))
                pg_tps = atof(t + 6);
        }
        pclose(p);
    }
    unlink(script);
    printf("  pgbench, same statements, 1 transaction per event, 1 client: %.0f tps\n", pg_tps);
    if (pg_tps > 0)
        printf("  ratio %.2f (target >= 3.00: %s)\n", consumer_rate / pg_tps,
               consumer_rate / pg_tps >= 3 ? "MET" : "MISSED");
    printf("{\"bench\":\"consumer\",\"events_per_s\":%.0f,\"pgbench_tps\":%.0f}\n", consumer_rate,
           pg_tps);
    saga_config_release(&cfg);
    saga_buf_release(&buf);
    saga_serde_destroy(serde);
    testdb_drop(&db);
    return 0;
}
