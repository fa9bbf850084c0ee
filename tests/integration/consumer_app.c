/*
 * test-consumer-app: a tiny service on the consumer runtime, for it_consumer.
 *
 * Handles OrderPlaced (records an effect, remembers the order, emits an
 * InventoryReserved to the outbox; customer "poison" is INVALID, customer "flaky"
 * fails TRANSIENT twice first, customer "stall" fails TRANSIENT for as long as the
 * file TEST_STALL_FILE exists) and InventoryReserved (an effect, DEFERred until
 * the order's OrderPlaced was seen; INVALID for an order whose id starts with
 * "bad-release" once that order is known, i.e. when it is released). Effects have no unique key on
 * purpose: a duplicate effect would show as a second row.
 *
 * env: DATABASE_URL, KAFKA_*, TEST_TOPIC, TEST_GROUP, TEST_DLQ, and the runtime's.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "saga/consumer.h"
#include "saga/migrate.h"
#include "saga/pg.h"
#include "saga/program.h"

static atomic_int stop;

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

static const struct saga_migration app_migrations[] = {
    {100, "test effects",
     "CREATE TABLE effects (id bigserial PRIMARY KEY, event_id text NOT NULL,"
     "  event_type text NOT NULL, order_id text NOT NULL);"
     "CREATE TABLE orders_known (order_id text PRIMARY KEY);"},
};

static saga_handle_result_t effect(struct saga_tx *tx, const struct saga_event *ev)
{
    const char *p[3] = {ev->meta.event_id, saga_event_type_name(ev->type), ev->meta.order_id};
    PGresult *r = PQexecParams(tx->conn,
                               "INSERT INTO effects (event_id, event_type, order_id)"
                               " VALUES ($1, $2, $3)",
                               3, NULL, p, NULL, NULL, 0);
    saga_handle_result_t res =
        PQresultStatus(r) == PGRES_COMMAND_OK ? SAGA_HANDLE_OK : saga_tx_pg_failure(tx, r);
    PQclear(r);
    return res;
}

static int flaky_failures;

static saga_handle_result_t on_order_placed(struct saga_tx *tx, const struct saga_event *ev,
                                            void *arg)
{
    const struct saga_order_placed *o = &ev->u.order_placed;
    struct saga_event out;
    struct saga_stock_line line = {"sku-test", 1};
    const char *p[1] = {ev->meta.order_id};
    saga_handle_result_t res;
    PGresult *r;
    char id[80];

    if (strcmp(o->customer_id, "poison") == 0) {
        snprintf(tx->errstr, sizeof(tx->errstr), "customer 'poison' is refused");
        return SAGA_HANDLE_INVALID;
    }
    if (strcmp(o->customer_id, "flaky") == 0 && flaky_failures < 2) {
        flaky_failures++;
        snprintf(tx->errstr, sizeof(tx->errstr), "flaky dependency, failure %d", flaky_failures);
        return SAGA_HANDLE_TRANSIENT;
    }
    if (strcmp(o->customer_id, "stall") == 0 && getenv("TEST_STALL_FILE") &&
        access(getenv("TEST_STALL_FILE"), F_OK) == 0) {
        snprintf(tx->errstr, sizeof(tx->errstr), "stalled while %s exists",
                 getenv("TEST_STALL_FILE"));
        return SAGA_HANDLE_TRANSIENT;
    }
    if ((res = effect(tx, ev)) != SAGA_HANDLE_OK)
        return res;
    r = PQexecParams(tx->conn, "INSERT INTO orders_known VALUES ($1) ON CONFLICT DO NOTHING", 1,
                     NULL, p, NULL, NULL, 0);
    res = PQresultStatus(r) == PGRES_COMMAND_OK ? SAGA_HANDLE_OK : saga_tx_pg_failure(tx, r);
    PQclear(r);
    if (res != SAGA_HANDLE_OK)
        return res;
    saga_event_init(&out, SAGA_EV_INVENTORY_RESERVED);
    snprintf(id, sizeof(id), "%s-reserved", ev->meta.event_id);
    out.meta = ev->meta;
    out.meta.event_id = id;
    out.meta.causation_id = ev->meta.event_id;
    out.meta.producer = "test-consumer-app";
    out.u.inventory_reserved.reservation_id = id;
    out.u.inventory_reserved.items = &line;
    out.u.inventory_reserved.item_count = 1;
    return saga_tx_emit(tx, &out);
}

static saga_handle_result_t on_inventory_reserved(struct saga_tx *tx, const struct saga_event *ev,
                                                  void *arg)
{
    const char *p[1] = {ev->meta.order_id};
    PGresult *r = PQexecParams(tx->conn, "SELECT 1 FROM orders_known WHERE order_id = $1", 1, NULL,
                               p, NULL, NULL, 0);
    saga_handle_result_t res;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        res = saga_tx_pg_failure(tx, r);
        PQclear(r);
        return res;
    }
    res = PQntuples(r) ? SAGA_HANDLE_OK : SAGA_HANDLE_DEFER;
    PQclear(r);
    if (res == SAGA_HANDLE_OK && strncmp(ev->meta.order_id, "bad-release", 11) == 0) {
        snprintf(tx->errstr, sizeof(tx->errstr), "order %s refuses its reservation",
                 ev->meta.order_id);
        return SAGA_HANDLE_INVALID;
    }
    return res == SAGA_HANDLE_OK ? effect(tx, ev) : res;
}

static const struct saga_program app = {
    .name = "test-consumer-app",
    .summary = "A test service on the consumer runtime.",
    .config_flags = SAGA_CONFIG_DATABASE,
};

int main(int argc, char **argv)
{
    struct saga_config cfg;
    struct saga_consumer_conf conf = {0};
    struct saga_consumer *c;
    struct sigaction sa;
    const char *topics[1];
    char err[512];
    PGconn *conn;
    int code;

    if (!saga_program_init(&app, argc, argv, &cfg, &code))
        return code;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);

    if (!(conn = saga_pg_connect(cfg.database_url, NULL, err, sizeof(err))) ||
        saga_pg_migrate(conn, saga_common_migrations, saga_common_migration_count, NULL, err,
                        sizeof(err)) ||
        saga_pg_migrate(conn, app_migrations, 1, NULL, err, sizeof(err))) {
        fprintf(stderr, "test-consumer-app: %s\n", err);
        return 1;
    }
    PQfinish(conn);

    topics[0] = getenv("TEST_TOPIC");
    conf.cfg = &cfg;
    conf.group = getenv("TEST_GROUP");
    conf.dlq_topic = getenv("TEST_DLQ");
    conf.topics = topics;
    conf.ntopics = 1;
    conf.handlers[SAGA_EV_ORDER_PLACED] = on_order_placed;
    conf.handlers[SAGA_EV_INVENTORY_RESERVED] = on_inventory_reserved;
    conf.releases_deferred = 1u << SAGA_EV_ORDER_PLACED;
    conf.stop = &stop;
    if (saga_consumer_new(&c, &conf, err, sizeof(err)) != SAGA_OK) {
        fprintf(stderr, "test-consumer-app: %s\n", err);
        return SAGA_EXIT_CONFIG;
    }
    code = saga_consumer_run(c);
    saga_consumer_destroy(c);
    saga_config_release(&cfg);
    return code;
}
