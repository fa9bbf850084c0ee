/*
 * The chaos suite (`make chaos`, docs/RELIABILITY.md): each scenario runs under steady
 * load through the order API, breaks something on purpose, heals it, then waits until
 * every accepted order has its outcome and the stack is quiescent, and checks every
 * invariant of docs/RELIABILITY.md ("The saga on top of it") exactly. A results table (scenario,
 * orders, violations, recovery time) is printed at the end and written to CHAOS_REPORT.
 *
 * Runs against the stack named by SAGA_STACK_ENV; CHAOS_ONLY=<glob> picks scenarios.
 * Faults: SIGKILL of programs, `scripts/stack kill` of Kafka and Postgres, the relay's
 * fault hook, a TCP proxy in this process between one service and Postgres, SIGSTOP.
 */
#include <dirent.h>
#include <errno.h>
#include <fnmatch.h>
#include <pthread.h>
#include <setjmp.h>
#include <signal.h>
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
#include <librdkafka/rdkafka.h>
#include <libpq-fe.h>

#include "saga/registry.h"
#include "saga/serde.h"

#include "../e2e/e2e.h"
#include "../support/proc.h"
#include "../support/stack_env.h"
#include "../support/tcpproxy.h"

#define DRAIN_MS (240 * 1000) /* a scenario's orders must settle within this */

static void sleep_ms(long ms)
{
    usleep((useconds_t)ms * 1000);
}

/* --- results ------------------------------------------------------------------ */

struct result {
    const char *name;
    int orders;     /* accepted during the scenario */
    int violations; /* of the invariants, after quiescence */
    double recovery_s;
    int timed_out; /* orders the saga timeout cancelled */
    char note[320];
    /* the cluster scenarios' wire accounting (wire_rows 0: not counted) */
    long long wire_rows, duplicates, lost;
};
static struct result results[24];
static int nresults;

/* --- steady load ------------------------------------------------------------- */

static volatile int load_stop;
static int load_accepted, load_refused;
/* The ids of the orders the load thread had accepted (202): each must be stored. */
#define ACCEPTED_CAP 20000
static char accepted_ids[ACCEPTED_CAP][37];
static int naccepted;
static pthread_t load_thread;
static int load_thread_running;

static void *load_main(void *arg)
{
    static const char *const customers[] = {"cust-alice", "cust-bob", "cust-carol", "cust-dave"};
    static const char *const items[] = {"sku-book:1",
                                        "sku-mug:2",
                                        "sku-book:1,sku-mug:1",
                                        "sku-tshirt:1",
                                        "sku-lamp:1,sku-book:2",
                                        "sku-limited:1"};
    unsigned seed = 777;
    int rate = getenv("CHAOS_RATE") ? atoi(getenv("CHAOS_RATE")) : 20;
    (void)arg;
    if (rate < 1)
        rate = 1;
    while (!load_stop) {
        int r = rand_r(&seed) % 100;
        /* 10 % declined cards, 5 % undeliverable, the rest should confirm */
        const char *token = r < 10 ? "tok_chargeDeclined" : "tok_visa";
        const char *country = r >= 10 && r < 15 ? "AQ" : "DE";
        char *b = order_body(customers[rand_r(&seed) % 4], token, country,
                             items[rand_r(&seed) % (sizeof(items) / sizeof(items[0]))]);
        struct api_reply rep;
        api(&rep, "POST", "/orders", "application/json", b, strlen(b), NULL);
        if (rep.status == 202) {
            __atomic_add_fetch(&load_accepted, 1, __ATOMIC_RELAXED);
            if (rep.json && jstr(rep.json, "order_id") && naccepted < ACCEPTED_CAP)
                snprintf(accepted_ids[naccepted++], 37, "%s", jstr(rep.json, "order_id"));
        } else
            __atomic_add_fetch(&load_refused, 1, __ATOMIC_RELAXED);
        api_reply_free(&rep);
        free(b);
        sleep_ms(1000 / rate);
    }
    return NULL;
}

static void load_start(void)
{
    load_stop = 0;
    load_accepted = load_refused = naccepted = 0;
    pthread_create(&load_thread, NULL, load_main, NULL);
    load_thread_running = 1;
}

static void load_end(void)
{
    load_stop = 1;
    pthread_join(load_thread, NULL);
    load_thread_running = 0;
}

/* --- the scenario frame -------------------------------------------------------- */

static long long scenario_healed;
static int orders_out_of_order(char *example, size_t example_size);
static void wire_begin(void);
static int wire_end(struct result *res, char *report, size_t size, int strict);

/* Runs fault under load: 3 s of load first, the fault (which heals what it broke and
 * calls healed() at that moment), 3 s more load, then drain and check. */
static void scenario_counted(const char *name, void (*fault)(struct result *), int count_wire);

/* How scenario_counted counts the wire: WIRE_COUNT (CHAOS_COUNT_WIRE=1, any scenario):
 * a lost event, or fewer copies than acknowledgements, is a violation; more copies than
 * the logs account for are only reported, as a relay SIGKILLed with messages in flight
 * (scenarios 1, 2, 10) never logs their acknowledgements. WIRE_STRICT (the cluster
 * scenarios, where no relay is killed): every copy must be accounted for. */
#define WIRE_COUNT  1
#define WIRE_STRICT 2

/* CHAOS_COUNT_WIRE=1 counts the wire in every scenario (the relays must log their
 * deliveries: RELAY_LOG_DELIVERIES=1, as tests/chaos/run sets it for CHAOS_BROKERS=3). */
static void scenario(const char *name, void (*fault)(struct result *))
{
    const char *all = getenv("CHAOS_COUNT_WIRE");
    scenario_counted(name, fault, all && strcmp(all, "1") == 0 ? WIRE_COUNT : 0);
}

/* scenario, and with count_wire the wire accounting of the cluster scenarios. */
static void scenario_counted(const char *name, void (*fault)(struct result *), int count_wire)
{
    struct result *res = &results[nresults++];
    long long before = db_num("order", "SELECT count(*) FROM orders", NULL);
    long long seq0 = db_num("order", "SELECT coalesce(max(seq), 0) FROM orders", NULL);
    char report[4096], seq[32];
    long long stored;

    if (load_thread_running) /* a scenario that failed midway left its load running */
        load_end();
    memset(res, 0, sizeof(*res));
    res->name = name;
    fprintf(stderr, "chaos: %s\n", name);
    if (count_wire)
        wire_begin();
    load_start();
    sleep_ms(3000);
    scenario_healed = 0;
    fault(res);
    if (!scenario_healed)
        scenario_healed = now_ms();
    sleep_ms(3000);
    load_end();
    /* Every accepted order was stored; of the others, only those whose reply was lost
     * (the order-service killed between its commit and its answer) may have been. */
    stored = db_num("order", "SELECT count(*) FROM orders", NULL) - before;
    if (stored < load_accepted || stored > load_accepted + load_refused)
        fail_msg("%s: %d orders accepted, %d not, but %lld stored", name, load_accepted,
                 load_refused, stored);
    res->orders = (int)stored;
    /* ... and reaches an outcome; then nothing is left in flight anywhere. */
    while (db_num("order", "SELECT count(*) FROM orders WHERE status = 'PENDING'", NULL)) {
        if (now_ms() - scenario_healed > DRAIN_MS)
            fail_msg("%s: orders still PENDING %d s after the fault", name, DRAIN_MS / 1000);
        sleep_ms(250);
    }
    wait_quiescent(DRAIN_MS);
    res->recovery_s = (double)(now_ms() - scenario_healed) / 1000.0;
    res->violations = check_invariants(report, sizeof(report));
    /* Not a violation (a partition held long enough lets the saga time out, and the
     * compensation is checked like any other), but a lost event would show here. */
    snprintf(seq, sizeof(seq), "%lld", seq0);
    res->timed_out = (int)db_num(
        "order", "SELECT count(*) FROM orders WHERE seq > $1::bigint AND reason = 'TIMEOUT'", seq);
    {
        /* No event lost: every other service handles OrderPlaced, so each one's inbox
         * holds the OrderPlaced of every order of the scenario (a lost one would otherwise
         * hide behind the saga timeout's cancellation, which keeps the invariants). The
         * order-service wrote it, with the order, and does not read it back. */
        static const char *const services[] = {"inventory", "payment", "shipping", "notification"};
        char *ids = db_text("order",
                            "SELECT coalesce(string_agg(placed_event_id, ','), '') FROM orders"
                            " WHERE seq > $1::bigint",
                            seq);
        for (size_t i = 0; i < sizeof(services) / sizeof(services[0]); i++) {
            char sql[512];
            long long lost;
            snprintf(sql, sizeof(sql),
                     "SELECT count(*) FROM unnest(string_to_array($1, ',')) AS e(id) WHERE NOT"
                     " EXISTS (SELECT 1 FROM inbox WHERE consumer = '%s-service'"
                     " AND event_id = e.id)",
                     services[i]);
            if (*ids && (lost = db_num(services[i], sql, ids))) {
                size_t len = strlen(report);
                snprintf(report + len, sizeof(report) - len,
                         "%lld OrderPlaced never handled by the %s-service (lost)\n", lost,
                         services[i]);
                res->violations++;
            }
        }
        free(ids);
    }
    {
        /* Not only as many: every order answered 202 is stored, by its id (a failover that
         * lost a committed order would show here, whatever else was stored meanwhile). */
        size_t cap = (size_t)naccepted * 37 + 1, o = 0;
        char *ids = calloc(1, cap);
        long long missing;
        for (int i = 0; i < naccepted; i++)
            o += (size_t)snprintf(ids + o, cap - o, "%s%s", i ? "," : "", accepted_ids[i]);
        if (naccepted &&
            (missing =
                 db_num("order",
                        "SELECT count(*) FROM unnest(string_to_array($1, ',')) AS e(id)"
                        " WHERE NOT EXISTS (SELECT 1 FROM orders WHERE order_id::text = e.id)",
                        ids))) {
            size_t len = strlen(report);
            snprintf(report + len, sizeof(report) - len,
                     "%lld of %d orders answered 202 are not stored (lost)\n", missing, naccepted);
            res->violations++;
        }
        free(ids);
    }
    {
        char example[160] = "";
        int bad = orders_out_of_order(example, sizeof(example));
        if (bad) {
            size_t len = strlen(report);
            snprintf(report + len, sizeof(report) - len,
                     "%d orders whose first event on the wire is not OrderPlaced (%s)\n", bad,
                     example);
            res->violations++;
        }
    }
    if (count_wire)
        res->violations += wire_end(res, report, sizeof(report), count_wire == WIRE_STRICT);
    fprintf(stderr,
            "chaos: %s: %d orders (%d not accepted, %d timed out), %d violations, recovered in "
            "%.1f s%s%s\n",
            name, res->orders, load_refused, res->timed_out, res->violations, res->recovery_s,
            res->note[0] ? "; " : "", res->note);
    if (res->violations)
        fail_msg("%s: %d invariant violation(s):\n%s", name, res->violations, report);
    assert_true(res->orders > 0);
}

static void healed(void)
{
    scenario_healed = now_ms();
}

/* --- helpers: programs of our own next to the stack's ------------------------------ */

/* The log file of a program this suite started itself. */
static void chaos_log(const char *tag, char *path, size_t size)
{
    snprintf(path, size, "%s/logs/chaos-%s.log", stack_env("STACK_DIR"), tag);
}

/* The suite's partition assignment strategy (CHAOS_STRATEGY, passed on by tests/chaos/run
 * as KAFKA_PARTITION_ASSIGNMENT_STRATEGY to every program), for the notes. */
static const char *strategy(void)
{
    const char *s = getenv("KAFKA_PARTITION_ASSIGNMENT_STRATEGY");
    return s && *s ? s : "range,roundrobin";
}

/* Starts another instance of program (e.g. "inventory-service", "outbox-relay") with the
 * stack's environment (on a secured stack: the program's own Kafka login) and the
 * suite's assignment strategy; database_url overrides the service's own when not NULL;
 * extra holds more VAR=value settings separated by spaces. */
static pid_t spawn(const char *program, const char *database_url, const char *extra,
                   const char *tag)
{
    static char env[24][2048];
    const char *envp[25];
    char path[512], log[512], var[96];
    int n = 0;
    snprintf(env[n++], sizeof(env[0]), "KAFKA_BOOTSTRAP_SERVERS=%s",
             stack_env("KAFKA_BOOTSTRAP_SERVERS"));
    snprintf(env[n++], sizeof(env[0]), "TOPIC_PARTITIONS=%s", stack_env("TOPIC_PARTITIONS"));
    snprintf(env[n++], sizeof(env[0]), "HTTP_LISTEN=127.0.0.1:0");
    if (stack_env_opt("SCHEMA_REGISTRY_URL"))
        snprintf(env[n++], sizeof(env[0]), "SCHEMA_REGISTRY_URL=%s",
                 stack_env_opt("SCHEMA_REGISTRY_URL"));
    if (getenv("KAFKA_PARTITION_ASSIGNMENT_STRATEGY"))
        snprintf(env[n++], sizeof(env[0]), "KAFKA_PARTITION_ASSIGNMENT_STRATEGY=%s",
                 getenv("KAFKA_PARTITION_ASSIGNMENT_STRATEGY"));
    if (stack_env_opt("KAFKA_SECURITY_PROTOCOL")) {
        /* scripts/stack --secure: each program logs in as itself (STACK_KAFKA_PW_<PROGRAM>) */
        size_t o = (size_t)snprintf(var, sizeof(var), "STACK_KAFKA_PW_");
        for (const char *c = program; *c && o < sizeof(var) - 1; c++)
            var[o++] = *c == '-' ? '_' : (char)(*c >= 'a' && *c <= 'z' ? *c - 32 : *c);
        var[o] = '\0';
        snprintf(env[n++], sizeof(env[0]), "KAFKA_SECURITY_PROTOCOL=%s",
                 stack_env("KAFKA_SECURITY_PROTOCOL"));
        snprintf(env[n++], sizeof(env[0]), "KAFKA_SASL_MECHANISMS=%s",
                 stack_env("KAFKA_SASL_MECHANISMS"));
        snprintf(env[n++], sizeof(env[0]), "KAFKA_SASL_USERNAME=%s", program);
        snprintf(env[n++], sizeof(env[0]), "KAFKA_SASL_PASSWORD=%s", stack_env(var));
        snprintf(env[n++], sizeof(env[0]), "KAFKA_SSL_CA_LOCATION=%s",
                 stack_env("KAFKA_SSL_CA_LOCATION"));
    }
    if (strcmp(program, "outbox-relay") == 0) {
        snprintf(env[n++], sizeof(env[0]), "RELAY_SOURCES=%s", stack_env("RELAY_SOURCES"));
        if (getenv("RELAY_LOG_DELIVERIES")) /* the wire accounting reads every relay's log */
            snprintf(env[n++], sizeof(env[0]), "RELAY_LOG_DELIVERIES=%s",
                     getenv("RELAY_LOG_DELIVERIES"));
    } else {
        snprintf(var, sizeof(var), "%.*s_DATABASE_URL", (int)strcspn(program, "-"), program);
        for (char *p = var; *p; p++)
            *p = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
        snprintf(env[n++], sizeof(env[0]), "DATABASE_URL=%s",
                 database_url ? database_url : stack_env(var));
    }
    for (const char *e = extra; e && *e && n < 24;) {
        size_t len = strcspn(e, " ");
        if (len)
            snprintf(env[n++], sizeof(env[0]), "%.*s", (int)len, e);
        e += len + (e[len] == ' ');
    }
    for (int i = 0; i < n; i++)
        envp[i] = env[i];
    envp[n] = NULL;
    snprintf(path, sizeof(path), "%s/bin/%s", SAGA_BUILD_DIR, program);
    chaos_log(tag, log, sizeof(log));
    return proc_start(path, envp, log);
}

static pid_t stack_pid(const char *name)
{
    char path[512];
    FILE *f;
    long pid = 0;
    snprintf(path, sizeof(path), "%s/run/%s.pid", stack_env("STACK_DIR"), name);
    if ((f = fopen(path, "r"))) {
        if (fscanf(f, "%ld", &pid) != 1)
            pid = 0;
        fclose(f);
    }
    if (pid <= 0)
        fail_msg("no pid file for %s", name);
    return (pid_t)pid;
}

static int log_has(const char *tag, const char *needle, int timeout_ms)
{
    char log[512];
    chaos_log(tag, log, sizeof(log));
    return log_wait(log, needle, timeout_ms);
}

/* --- Kafka helpers ------------------------------------------------------------- */

/* The number of messages ever written to topic (sum of high watermarks). */
static long long topic_size(rd_kafka_t *rk, const char *topic)
{
    long long total = 0;
    int parts = atoi(stack_env("TOPIC_PARTITIONS"));
    for (int p = 0; p < parts; p++) {
        int64_t lo, hi;
        if (rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, 10000))
            fail_msg("watermarks of %s[%d]", topic, p);
        total += hi;
    }
    return total;
}

/* Per-key order on the wire: on `orders`, the first event of every order must be its
 * OrderPlaced (the order-service writes it first; a relay that let a later event of the
 * order overtake it breaks this). Returns the number of orders where it does not hold. */
#define KEYS_CAP (1 << 18)
static int orders_out_of_order(char *example, size_t example_size)
{
    static char *seen[KEYS_CAP]; /* keys whose first event was read (open addressing) */
    char group[64];
    rd_kafka_t *rk =
        kafka_client(RD_KAFKA_CONSUMER, stack_unique("chaos-wire", group, sizeof(group)));
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(16);
    int parts = atoi(stack_env("TOPIC_PARTITIONS")), bad = 0, open_parts = 0;
    long long until = now_ms() + 180000;
    int64_t *end = calloc((size_t)parts, sizeof(*end));

    for (int p = 0; p < parts; p++) {
        int64_t lo;
        if (rd_kafka_query_watermark_offsets(rk, "orders", p, &lo, &end[p], 10000))
            fail_msg("watermarks of orders[%d]", p);
        rd_kafka_topic_partition_list_add(l, "orders", p)->offset = RD_KAFKA_OFFSET_BEGINNING;
        open_parts += end[p] > lo;
    }
    rd_kafka_assign(rk, l);
    while (open_parts > 0) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 5000);
        const void *type = NULL;
        size_t type_len = 0, h;
        rd_kafka_headers_t *hdrs;
        char key[64];
        if (now_ms() > until)
            fail_msg("reading orders: not at the end after 180 s");
        if (!m)
            continue;
        if (m->err) {
            fprintf(stderr, "chaos: reading orders: %s\n", rd_kafka_message_errstr(m));
            rd_kafka_message_destroy(m);
            continue;
        }
        if (m->offset + 1 >= end[m->partition])
            open_parts--;
        snprintf(key, sizeof(key), "%.*s", (int)(m->key_len < 63 ? m->key_len : 63),
                 (const char *)m->key);
        if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR)
            rd_kafka_header_get_last(hdrs, "event_type", &type, &type_len);
        if (strncmp(key, "poison-", 7) != 0 && type) {
            h = 5381;
            for (const char *c = key; *c; c++)
                h = h * 33 + (unsigned char)*c;
            for (h %= KEYS_CAP; seen[h] && strcmp(seen[h], key) != 0; h = (h + 1) % KEYS_CAP)
                ;
            if (!seen[h]) {
                seen[h] = strdup(key);
                if (!(type_len == 11 && memcmp(type, "OrderPlaced", 11) == 0)) {
                    if (!bad++)
                        snprintf(example, example_size, "order %s starts with %.*s", key,
                                 (int)type_len, (const char *)type);
                }
            }
        }
        rd_kafka_message_destroy(m);
    }
    for (size_t i = 0; i < KEYS_CAP; i++) {
        free(seen[i]);
        seen[i] = NULL;
    }
    free(end);
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(rk);
    return bad;
}

/* --- the scenarios -------------------------------------------------------------- */

/* 1. SIGKILL each service (and the relay) in turn mid-load, restart it. */
static void f_kill_each(struct result *res)
{
    static const char *const programs[] = {"order-service",        "inventory-service",
                                           "payment-service",      "shipping-service",
                                           "notification-service", "outbox-relay"};
    char cmd[64];
    for (size_t i = 0; i < sizeof(programs) / sizeof(programs[0]); i++) {
        snprintf(cmd, sizeof(cmd), "kill %s", programs[i]);
        stack_cmd(cmd);
        sleep_ms(500);
        stack_cmd("up");
        sleep_ms(1500);
    }
    snprintf(res->note, sizeof(res->note), "6 programs killed, one after another");
}

/* 2. The relay killed between Kafka's ack and marking the rows (fault hook); a standby
 *    takes over and publishes the same rows again (duplicates on the wire). */
static void f_relay_after_ack(struct result *res)
{
    pid_t faulty, standby;
    int status;
    stack_cmd("kill outbox-relay");
    faulty = spawn("outbox-relay", NULL, "SAGA_FAULT=relay.after_ack", "relay-faulty");
    sleep_ms(1500); /* it takes the leader locks first */
    standby = spawn("outbox-relay", NULL, NULL, "relay-standby");
    status = proc_wait(faulty, 30000);
    if (!(status != -1 && WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL))
        fail_msg("the relay with SAGA_FAULT=relay.after_ack did not stop at the fault point");
    if (!log_has("relay-standby", "leader, publishing", 30000))
        fail_msg("the standby relay did not take over");
    healed();
    sleep_ms(3000);
    /* the stack's own relay comes back as a standby; the spare leaves, it takes over */
    stack_cmd("up");
    proc_stop(standby, SIGTERM, 20000);
    snprintf(res->note, sizeof(res->note), "leader killed after the ack; standby took over");
}

/* 3. The Kafka broker SIGKILLed, restarted 5 s later. */
static void f_kafka(struct result *res)
{
    stack_cmd("kill kafka");
    sleep_ms(5000);
    stack_cmd("up");
    healed();
    snprintf(res->note, sizeof(res->note), "broker down 5 s");
}

/* 4. `pg_ctl stop -m immediate` under load, restarted 3 s later. */
static void f_postgres(struct result *res)
{
    stack_cmd("kill postgres");
    sleep_ms(3000);
    stack_cmd("up");
    healed();
    snprintf(res->note, sizeof(res->note), "postgres down 3 s (immediate stop)");
}

/* The payment-service's database URL, through a proxy listening on port. */
static const char *proxied_payment_url(int port, char *buf, size_t size)
{
    return tcpproxy_url(stack_env("PAYMENT_DATABASE_URL"), port, buf, size);
}

/* 5. A TCP proxy between the payment-service and Postgres, paused then slowed; the
 *    Kafka broker paused (SIGSTOP) as well, so every client's connections hang. */
static void f_proxy(struct result *res)
{
    char url[2048];
    pid_t svc, broker = stack_pid("kafka");
    struct tcpproxy *proxy = tcpproxy_start(atoi(stack_env("STACK_PG_PORT")));

    proxied_payment_url(tcpproxy_port(proxy), url, sizeof(url));
    /* stopped, not killed: a killed member would keep its partitions for its session
     * timeout (45 s), and the proxied one would own nothing while the proxy misbehaves */
    stack_cmd("stop payment-service");
    svc = spawn("payment-service", url, NULL, "payment-proxied");
    if (!log_has("payment-proxied", "assigned ", 60000))
        fail_msg("the proxied payment-service got no partitions");
    sleep_ms(2000);
    tcpproxy_pause(proxy, 1);
    sleep_ms(8000);
    tcpproxy_delay(proxy, 150);
    tcpproxy_pause(proxy, 0);
    sleep_ms(8000);
    tcpproxy_delay(proxy, 0);
    kill(broker, SIGSTOP);
    sleep_ms(8000);
    kill(broker, SIGCONT);
    sleep_ms(5000);
    /* the stack's own payment-service comes back; the proxied one leaves */
    proc_stop(svc, SIGTERM, 30000);
    stack_cmd("up");
    tcpproxy_stop(proxy);
    healed();
    snprintf(res->note, sizeof(res->note),
             "payment→postgres paused 8 s, slowed 8 s; broker SIGSTOPped 8 s");
}

/* 6. The payment-service's consumer group reset to the earliest offsets: a full replay
 *    of everything it ever read must change nothing. */
static void f_replay(struct result *res)
{
    static const char *const topics[] = {"orders", "inventory"};
    int parts = atoi(stack_env("TOPIC_PARTITIONS"));
    rd_kafka_t *rk = kafka_client(RD_KAFKA_CONSUMER, "payment-service");
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(16);
    long long until;
    rd_kafka_resp_err_t err;

    kill(stack_pid("payment-service"), SIGTERM); /* leaves the group cleanly */
    sleep_ms(3000);
    for (int t = 0; t < 2; t++)
        for (int p = 0; p < parts; p++) {
            int64_t lo, hi;
            rd_kafka_query_watermark_offsets(rk, topics[t], p, &lo, &hi, 10000);
            rd_kafka_topic_partition_list_add(l, topics[t], p)->offset = lo;
        }
    until = now_ms() + 90000;
    while ((err = rd_kafka_commit(rk, l, 0)) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        if (now_ms() > until)
            fail_msg("could not reset payment-service's offsets: %s", rd_kafka_err2str(err));
        sleep_ms(1000);
    }
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(rk);
    stack_cmd("up");
    healed();
    snprintf(res->note, sizeof(res->note), "payment-service re-read orders and inventory from 0");
}

/* 7. Poison messages on every topic: each group that reads the topic dead-letters each
 *    one and goes on. */
static void f_poison(struct result *res)
{
    static const struct {
        const char *topic;
        const char *dlqs[5];
    } topics[] = {
        {"orders",
         {"order.dlq", "inventory.dlq", "payment.dlq", "shipping.dlq", "notification.dlq"}},
        {"inventory", {"order.dlq", "payment.dlq"}},
        {"payments", {"order.dlq", "inventory.dlq", "shipping.dlq"}},
        {"shipping", {"order.dlq"}},
        {"notifications", {"order.dlq"}},
    };
    static const char *const dlq_names[] = {"order.dlq", "inventory.dlq", "payment.dlq",
                                            "shipping.dlq", "notification.dlq"};
    /* garbage; Confluent framing with an unknown schema id; single-object framing with
     * an unknown fingerprint; a Confluent header cut short */
    static const unsigned char poison[][12] = {
        {'n', 'o', 't', ' ', 'a', 'v', 'r', 'o', '!', 0x7f, 0x01, 0x02},
        {0x00, 0x00, 0x0f, 0x42, 0x3f, 0x02, 0x04, 0x06, 0x08, 0x0a, 0x0c, 0x0e},
        {0xc3, 0x01, 0xde, 0xad, 0xbe, 0xef, 0xde, 0xad, 0xbe, 0xef, 0x02, 0x04},
        {0x00, 0x00, 0x00},
    };
    static const size_t poison_len[] = {12, 12, 12, 3};
    rd_kafka_t *p = kafka_client(RD_KAFKA_PRODUCER, NULL);
    long long before[5], want[5] = {0}, now[5];
    long long until;
    int sent = 0;

    for (int d = 0; d < 5; d++)
        before[d] = topic_size(p, dlq_names[d]);
    for (size_t t = 0; t < sizeof(topics) / sizeof(topics[0]); t++)
        for (size_t k = 0; k < sizeof(poison) / sizeof(poison[0]); k++) {
            char key[32];
            snprintf(key, sizeof(key), "poison-%zu-%zu", t, k);
            if (rd_kafka_producev(p, RD_KAFKA_V_TOPIC(topics[t].topic),
                                  RD_KAFKA_V_KEY(key, strlen(key)),
                                  RD_KAFKA_V_VALUE((void *)(uintptr_t)poison[k], poison_len[k]),
                                  RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END))
                fail_msg("produce poison");
            sent++;
            for (int j = 0; j < 5 && topics[t].dlqs[j]; j++)
                for (int d = 0; d < 5; d++)
                    want[d] += strcmp(dlq_names[d], topics[t].dlqs[j]) == 0;
        }
    assert_int_equal(rd_kafka_flush(p, 30000), RD_KAFKA_RESP_ERR_NO_ERROR);
    until = now_ms() + 120000;
    for (;;) {
        int done = 1;
        for (int d = 0; d < 5; d++) {
            now[d] = topic_size(p, dlq_names[d]) - before[d];
            done &= now[d] >= want[d];
        }
        if (done)
            break;
        if (now_ms() > until)
            fail_msg("dead letters after 120 s: order %lld/%lld inventory %lld/%lld payment "
                     "%lld/%lld shipping %lld/%lld notification %lld/%lld",
                     now[0], want[0], now[1], want[1], now[2], want[2], now[3], want[3], now[4],
                     want[4]);
        sleep_ms(500);
    }
    healed();
    sleep_ms(3000); /* then not one more: each reader dead-letters each message once */
    for (int d = 0; d < 5; d++)
        if ((now[d] = topic_size(p, dlq_names[d]) - before[d]) != want[d])
            fail_msg("%s got %lld dead letters for %lld poison messages read", dlq_names[d], now[d],
                     want[d]);
    rd_kafka_destroy(p);
    snprintf(res->note, sizeof(res->note),
             "%d poison messages, %lld dead letters (each reader once)", sent,
             now[0] + now[1] + now[2] + now[3] + now[4]);
}

/* 8. The inventory-service scaled to 3 instances and back during load (rebalances); one
 *    of the extra instances SIGSTOPped past its session timeout, then resumed. */
static void f_scale(struct result *res)
{
    const char *to = "KAFKA_SESSION_TIMEOUT_MS=10000";
    pid_t a = spawn("inventory-service", NULL, to, "inventory-2");
    pid_t b = spawn("inventory-service", NULL, to, "inventory-3");
    sleep_ms(8000);
    kill(b, SIGSTOP);
    sleep_ms(16000); /* past its session timeout: the group moves on without it */
    kill(b, SIGCONT);
    sleep_ms(5000);
    if (proc_stop(a, SIGTERM, 30000) == -1 || proc_stop(b, SIGTERM, 30000) == -1)
        fail_msg("an extra inventory-service did not stop on SIGTERM");
    healed();
    snprintf(res->note, sizeof(res->note), "3 instances, one stopped 16 s (> session timeout)");
}

/* 9. Crashes during compensation: payments fail and inventory is killed while releasing;
 *    shipments fail and payment is killed while refunding. */
static void f_compensation(struct result *res)
{
    char id[37];
    for (int i = 0; i < 15; i++) {
        place("cust-bob", "tok_chargeDeclined", "DE", "sku-book:1,sku-mug:1", id);
        __atomic_add_fetch(&load_accepted, 1, __ATOMIC_RELAXED);
    }
    sleep_ms(150);
    stack_cmd("kill inventory-service");
    sleep_ms(1500);
    stack_cmd("up");
    for (int i = 0; i < 15; i++) {
        place("cust-carol", "tok_visa", "AQ", "sku-tshirt:1", id);
        __atomic_add_fetch(&load_accepted, 1, __ATOMIC_RELAXED);
    }
    sleep_ms(300);
    stack_cmd("kill payment-service");
    sleep_ms(1500);
    stack_cmd("up");
    healed();
    snprintf(res->note, sizeof(res->note),
             "inventory killed mid-release, payment killed mid-refund (+30 failing orders)");
}

/* 10. Two relays; the leader killed again and again. */
static void f_relay_leader_killed(struct result *res)
{
    pid_t spare = spawn("outbox-relay", NULL, NULL, "relay-spare");
    sleep_ms(3000);
    for (int round = 0; round < 4; round++) {
        if (round % 2 == 0) {
            stack_cmd("kill outbox-relay"); /* the leader: the spare takes over */
            sleep_ms(3000);
            stack_cmd("up"); /* back as the standby */
        } else {
            kill(spare, SIGKILL); /* now the spare leads: kill it */
            proc_wait(spare, 10000);
            sleep_ms(3000);
            spare = spawn("outbox-relay", NULL, NULL, "relay-spare");
        }
        sleep_ms(2000);
    }
    proc_stop(spare, SIGTERM, 20000);
    healed();
    if (!log_has("relay-spare", "leader, publishing", 0))
        fail_msg("the spare relay never led");
    snprintf(res->note, sizeof(res->note), "4 leader kills, alternating between two relays");
}

/* Lines of a log of ours that contain needle. */
static int log_count(const char *tag, const char *needle)
{
    char path[512], line[8192];
    int n = 0;
    FILE *f;
    chaos_log(tag, path, sizeof(path));
    if (!(f = fopen(path, "r")))
        return 0;
    while (fgets(line, sizeof(line), f))
        n += strstr(line, needle) != NULL;
    fclose(f);
    return n;
}

/* 11. A rebalance storm: the inventory-service's members, each with a slow handler that
 *     fails transiently (SAGA_FAULT=handler.flaky: 15 ms per event, every 7th fails),
 *     join and leave every 3 s under load, one of them SIGKILLed; the suite's assignment
 *     strategy (cooperative-sticky in `CHAOS_STRATEGY=cooperative-sticky`). */
static void f_rebalance_storm(struct result *res)
{
    static const char *const extra = "SAGA_FAULT=handler.flaky:15:7 KAFKA_SESSION_TIMEOUT_MS=10000";
    static const char *const tags[] = {"storm-0", "storm-1", "storm-2", "storm-3"};
    pid_t member[4] = {0};
    int joins = 0, leaves = 0, flaky = 0, assigned = 0;

    stack_cmd("stop inventory-service");
    member[0] = spawn("inventory-service", NULL, extra, tags[0]); /* stays throughout */
    /* rounds: 1, 2, 3 join; 1, 2 leave, 3 is SIGKILLed; 1, 2, 3 join; 1 leaves */
    for (int round = 0; round < 10; round++) {
        int k = 1 + round % 3;
        sleep_ms(3000);
        if (member[k]) {
            if (proc_stop(member[k], round == 5 ? SIGKILL : SIGTERM, 30000) == -1)
                fail_msg("%s did not stop", tags[k]);
            member[k] = 0;
            leaves++;
        } else {
            member[k] = spawn("inventory-service", NULL, extra, tags[k]);
            joins++;
        }
    }
    sleep_ms(3000);
    /* the stack's own inventory-service (no fault) comes back; the flaky ones leave */
    stack_cmd("up");
    for (int k = 3; k >= 0; k--)
        if (member[k] && proc_stop(member[k], SIGTERM, 30000) == -1)
            fail_msg("%s did not stop on SIGTERM", tags[k]);
    healed();
    for (int k = 0; k < 4; k++) {
        flaky += log_count(tags[k], "SAGA_FAULT handler.flaky");
        assigned += log_count(tags[k], "assigned ");
    }
    if (!flaky)
        fail_msg("no handler of the storm failed: is SAGA_FAULT=handler.flaky wired?");
    snprintf(res->note, sizeof(res->note),
             "%s: %d joins, %d leaves (1 SIGKILL), %d assignments, %d transient handler "
             "failures",
             strategy(), joins, leaves, assigned, flaky);
}

static const char *const dlq_topics[] = {"order.dlq", "inventory.dlq", "payment.dlq",
                                         "shipping.dlq", "notification.dlq"};

/* 12. The schema registry killed for 10 s under load; the inventory- and payment-service
 *     replaced by fresh instances during the outage (no cached schema ids), so decoding
 *     and emitting must wait for it: nothing valid may be dead-lettered. */
static void f_registry(struct result *res)
{
    rd_kafka_t *p = kafka_client(RD_KAFKA_PRODUCER, NULL);
    long long before[5];
    pid_t inv, pay;

    if (!stack_env_opt("SCHEMA_REGISTRY_URL"))
        fail_msg("the chaos stack runs without the schema registry");
    for (int d = 0; d < 5; d++)
        before[d] = topic_size(p, dlq_topics[d]);
    stack_cmd("kill registry");
    /* stopped (they leave the group at once), so the fresh ones get their partitions */
    stack_cmd("stop inventory-service");
    stack_cmd("stop payment-service");
    inv = spawn("inventory-service", NULL, NULL, "inventory-fresh");
    pay = spawn("payment-service", NULL, NULL, "payment-fresh");
    sleep_ms(10000);
    stack_cmd("up"); /* the registry (and the stack's two services) back */
    healed();
    sleep_ms(3000);
    if (proc_stop(inv, SIGTERM, 30000) == -1 || proc_stop(pay, SIGTERM, 30000) == -1)
        fail_msg("a fresh instance did not stop on SIGTERM");
    for (int d = 0; d < 5; d++) {
        long long now = topic_size(p, dlq_topics[d]);
        if (now != before[d])
            fail_msg("%lld valid event(s) dead-lettered to %s during the registry outage",
                     now - before[d], dlq_topics[d]);
    }
    rd_kafka_destroy(p);
    snprintf(res->note, sizeof(res->note),
             "registry down 10 s; fresh inventory and payment instances waited %d+%d times, "
             "0 dead letters",
             log_count("inventory-fresh", "retrying"), log_count("payment-fresh", "retrying"));
}

/* Creates (create=1) or deletes the ACL "principal may WRITE topic" (as the admin). */
static void write_acl(const char *principal, const char *topic, int create)
{
    rd_kafka_t *rk = kafka_client(RD_KAFKA_PRODUCER, NULL);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    char err[256];
    rd_kafka_event_t *ev;

    if (create) {
        rd_kafka_AclBinding_t *b = rd_kafka_AclBinding_new(
            RD_KAFKA_RESOURCE_TOPIC, topic, RD_KAFKA_RESOURCE_PATTERN_LITERAL, principal, "*",
            RD_KAFKA_ACL_OPERATION_WRITE, RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW, err, sizeof(err));
        assert_non_null(b);
        rd_kafka_CreateAcls(rk, &b, 1, NULL, q);
        rd_kafka_AclBinding_destroy(b);
    } else {
        rd_kafka_AclBindingFilter_t *f = rd_kafka_AclBindingFilter_new(
            RD_KAFKA_RESOURCE_TOPIC, topic, RD_KAFKA_RESOURCE_PATTERN_LITERAL, principal, "*",
            RD_KAFKA_ACL_OPERATION_WRITE, RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW, err, sizeof(err));
        assert_non_null(f);
        rd_kafka_DeleteAcls(rk, &f, 1, NULL, q);
        rd_kafka_AclBinding_destroy(f);
    }
    assert_non_null(ev = rd_kafka_queue_poll(q, 30000));
    if (rd_kafka_event_error(ev))
        fail_msg("%s: %s", create ? "CreateAcls" : "DeleteAcls", rd_kafka_event_error_string(ev));
    rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_destroy(rk);
}

/* Waits until topic holds at least want more messages than before; returns how many. */
static long long wait_topic_growth(rd_kafka_t *rk, const char *topic, long long before,
                                   long long want, int timeout_ms)
{
    long long until = now_ms() + timeout_ms, got;
    while ((got = topic_size(rk, topic) - before) < want) {
        if (now_ms() > until)
            fail_msg("%s: %lld of %lld messages after %d s", topic, got, want, timeout_ms / 1000);
        sleep_ms(500);
    }
    return got;
}

/* 13. On the secured stack, the shipping-service's login loses WRITE on shipping.dlq
 *     while poison messages arrive on `payments`: the order- and inventory-service
 *     dead-letter them, the shipping-service must hold them (no offset past them) until
 *     the ACL is back, then dead-letter each exactly once. */
#define DLQ_POISON 6
static void f_dlq_refused(struct result *res)
{
    static const char *const readers[] = {"order.dlq", "inventory.dlq", "shipping.dlq"};
    rd_kafka_t *p = kafka_client(RD_KAFKA_PRODUCER, NULL);
    long long before[3], got[3];
    long long refused_at;
    int exited;

    for (int d = 0; d < 3; d++)
        before[d] = topic_size(p, readers[d]);
    write_acl("User:shipping-service", "shipping.dlq", 0);
    refused_at = now_ms();
    sleep_ms(2000); /* ACL changes reach the broker's authorizer asynchronously */
    for (int i = 0; i < DLQ_POISON; i++) {
        char key[32];
        snprintf(key, sizeof(key), "poison-dlq-%d", i);
        if (rd_kafka_producev(p, RD_KAFKA_V_TOPIC("payments"), RD_KAFKA_V_KEY(key, strlen(key)),
                              RD_KAFKA_V_VALUE("not avro at all", 15),
                              RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END))
            fail_msg("produce poison");
    }
    assert_int_equal(rd_kafka_flush(p, 30000), RD_KAFKA_RESP_ERR_NO_ERROR);
    /* the other readers go on */
    wait_topic_growth(p, "order.dlq", before[0], DLQ_POISON, 120000);
    wait_topic_growth(p, "inventory.dlq", before[1], DLQ_POISON, 120000);
    sleep_ms(5000);
    if ((got[2] = topic_size(p, "shipping.dlq") - before[2]) != 0)
        fail_msg("shipping.dlq took %lld dead letters while the ACL was removed", got[2]);
    exited = kill(stack_pid("shipping-service"), 0) != 0;
    write_acl("User:shipping-service", "shipping.dlq", 1);
    sleep_ms(1000);
    stack_cmd("up"); /* restarts the shipping-service if it stopped on the refusal */
    wait_topic_growth(p, "shipping.dlq", before[2], DLQ_POISON, 180000);
    healed();
    sleep_ms(3000); /* then not one more */
    for (int d = 0; d < 3; d++)
        if ((got[d] = topic_size(p, readers[d]) - before[d]) != DLQ_POISON)
            fail_msg("%s got %lld dead letters for %d poison messages", readers[d], got[d],
                     DLQ_POISON);
    rd_kafka_destroy(p);
    snprintf(res->note, sizeof(res->note),
             "shipping.dlq refused %.0f s, %d poison on payments; shipping %s; then 3×%d dead "
             "letters, each once",
             (double)(scenario_healed - refused_at) / 1000.0, DLQ_POISON,
             exited ? "exited, restarted" : "held them, retrying", DLQ_POISON);
}

/* 14. The payment-service's database connection hung (not closed) for 20 s by a proxy
 *     that stops forwarding; PG_QUERY_TIMEOUT=5s must notice, replace the connection and
 *     go on once the proxy forwards again. */
static void f_pg_hung(struct result *res)
{
    char url[2048];
    struct tcpproxy *proxy = tcpproxy_start(atoi(stack_env("STACK_PG_PORT")));
    long long payments_before, until;
    pid_t svc;

    proxied_payment_url(tcpproxy_port(proxy), url, sizeof(url));
    stack_cmd("stop payment-service"); /* leaves the group at once (see 5.) */
    svc = spawn("payment-service", url, "PG_QUERY_TIMEOUT=5s", "payment-hung");
    if (!log_has("payment-hung", "assigned ", 60000))
        fail_msg("the proxied payment-service got no partitions");
    sleep_ms(2000);
    tcpproxy_pause(proxy, 1);
    sleep_ms(20000);
    tcpproxy_pause(proxy, 0);
    healed();
    if (!log_has("payment-hung", "PG_QUERY_TIMEOUT", 0))
        fail_msg("the hung connection went unnoticed (no PG_QUERY_TIMEOUT in its log)");
    /* the proxied instance, the group's only member, works again */
    payments_before = db_num("payment", "SELECT count(*) FROM payments", NULL);
    until = now_ms() + 60000;
    while (db_num("payment", "SELECT count(*) FROM payments", NULL) == payments_before) {
        if (now_ms() > until)
            fail_msg("the payment-service did not recover within 60 s of the heal");
        sleep_ms(250);
    }
    sleep_ms(3000);
    proc_stop(svc, SIGTERM, 30000);
    stack_cmd("up");
    tcpproxy_stop(proxy);
    snprintf(res->note, sizeof(res->note),
             "payment→postgres hung 20 s (PG_QUERY_TIMEOUT=5s): %d statements timed out, "
             "recovered",
             log_count("payment-hung", "PG_QUERY_TIMEOUT"));
}

/* --- a Kafka cluster (scripts/stack --brokers 3; make chaos-cluster) ---------------- */

static int stack_brokers(void)
{
    const char *n = stack_env_opt("STACK_KAFKA_BROKERS");
    return n ? atoi(n) : 1;
}

/* The stack's name of node id: kafka (node 1), kafka-2, kafka-3. */
static const char *node_name(int id, char *buf, size_t size)
{
    if (id == 1)
        snprintf(buf, size, "kafka");
    else
        snprintf(buf, size, "kafka-%d", id);
    return buf;
}

static const char *const event_topics[] = {"orders", "inventory", "payments", "shipping",
                                           "notifications"};
#define EVENT_TOPICS 5

/* The broker ids ranked by how many messages the partitions they lead hold (the event
 * topics): ranked[0] leads the busiest. Returns the number of brokers ranked (<= 8). */
static int leaders_by_traffic(int ranked[8])
{
    rd_kafka_t *rk = kafka_client(RD_KAFKA_PRODUCER, NULL);
    const rd_kafka_metadata_t *md;
    long long traffic[9] = {0};
    int n = 0;

    if (rd_kafka_metadata(rk, 1, NULL, &md, 10000))
        fail_msg("cluster metadata");
    for (int t = 0; t < md->topic_cnt; t++)
        for (int e = 0; e < EVENT_TOPICS; e++) {
            if (strcmp(md->topics[t].topic, event_topics[e]) != 0)
                continue;
            for (int p = 0; p < md->topics[t].partition_cnt; p++) {
                int64_t lo, hi;
                int leader = md->topics[t].partitions[p].leader;
                if (leader < 1 || leader > 8 ||
                    rd_kafka_query_watermark_offsets(rk, event_topics[e], p, &lo, &hi, 10000))
                    continue;
                traffic[leader] += hi - lo;
            }
        }
    for (int b = 0; b < md->broker_cnt && n < 8; b++)
        if (md->brokers[b].id >= 1 && md->brokers[b].id <= 8)
            ranked[n++] = md->brokers[b].id;
    for (int i = 0; i < n; i++) /* by traffic, descending */
        for (int j = i + 1; j < n; j++)
            if (traffic[ranked[j]] > traffic[ranked[i]]) {
                int x = ranked[i];
                ranked[i] = ranked[j];
                ranked[j] = x;
            }
    rd_kafka_metadata_destroy(md);
    rd_kafka_destroy(rk);
    return n;
}

/* Waits until every partition of the suite's topics and of the consumer offsets has all
 * its replicas in sync again (a rolling restart takes the next node down only then);
 * returns the seconds it took. */
static double wait_in_sync(int timeout_ms)
{
    rd_kafka_t *rk = kafka_client(RD_KAFKA_PRODUCER, NULL);
    long long start = now_ms();
    int short_isr = -1, offline = -1;

    for (;;) {
        const rd_kafka_metadata_t *md;
        if (rd_kafka_metadata(rk, 1, NULL, &md, 10000) == RD_KAFKA_RESP_ERR_NO_ERROR) {
            short_isr = offline = 0;
            for (int t = 0; t < md->topic_cnt; t++)
                for (int p = 0; p < md->topics[t].partition_cnt; p++) {
                    const rd_kafka_metadata_partition_t *pm = &md->topics[t].partitions[p];
                    short_isr += pm->isr_cnt < pm->replica_cnt;
                    offline += pm->leader < 0;
                }
            if (md->broker_cnt < stack_brokers())
                short_isr++;
            rd_kafka_metadata_destroy(md);
            if (!short_isr && !offline)
                break;
        }
        if (now_ms() - start > timeout_ms)
            fail_msg("after %d s, %d partitions still short of replicas in sync, %d offline",
                     timeout_ms / 1000, short_isr, offline);
        sleep_ms(1000);
    }
    rd_kafka_destroy(rk);
    return (double)(now_ms() - start) / 1000.0;
}

/* The outbox backlog of every source together (the relay's /metrics); -1 if unknown. */
static long long relay_backlog(void)
{
    char *text = scrape(5);
    long long sum = -1;
    for (const char *p = text; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, "saga_outbox_backlog{", 20) == 0) {
            const char *v = strchr(p, ' ');
            sum = (sum < 0 ? 0 : sum) + (v ? atoll(v + 1) : 0);
        }
    free(text);
    return sum;
}

/*
 * Wire accounting (the cluster scenarios): every outbox row written during the scenario
 * must be on its topic at least once, and exactly as many times as the relay's log
 * (RELAY_LOG_DELIVERIES=1, set by tests/chaos/run) says Kafka acknowledged it, give or
 * take the copies it was told "possibly persisted". Counted by the event_id header.
 */
#define WIRE_CAP (1 << 18)
struct wire_row {
    char id[40]; /* "" = free slot */
    int row;     /* an outbox row of the scenario */
    int wire, delivered, maybe;
};
static struct wire_row wire_rows[WIRE_CAP];
static const char *const outbox_services[] = {"order", "inventory", "payment", "shipping",
                                              "notification"};
static long long wire_from_id[5];
static int64_t *wire_from_offset; /* [topic * parts + partition] */

static struct wire_row *wire_slot(const char *id, size_t len, int add)
{
    size_t h = 5381;
    if (len >= sizeof(wire_rows[0].id))
        len = sizeof(wire_rows[0].id) - 1;
    for (size_t i = 0; i < len; i++)
        h = h * 33 + (unsigned char)id[i];
    for (h %= WIRE_CAP; wire_rows[h].id[0]; h = (h + 1) % WIRE_CAP)
        if (strlen(wire_rows[h].id) == len && memcmp(wire_rows[h].id, id, len) == 0)
            return &wire_rows[h];
    if (!add)
        return NULL;
    memcpy(wire_rows[h].id, id, len);
    wire_rows[h].id[len] = '\0';
    return &wire_rows[h];
}

/* Before the load starts: where each topic ends, then the last outbox id of each service
 * (in this order: a row past these ids is produced after the offsets taken here). */
static void wire_begin(void)
{
    rd_kafka_t *rk = kafka_client(RD_KAFKA_PRODUCER, NULL);
    int parts = atoi(stack_env("TOPIC_PARTITIONS"));
    free(wire_from_offset);
    wire_from_offset = calloc((size_t)(EVENT_TOPICS * parts), sizeof(*wire_from_offset));
    for (int t = 0; t < EVENT_TOPICS; t++)
        for (int p = 0; p < parts; p++) {
            int64_t lo;
            if (rd_kafka_query_watermark_offsets(rk, event_topics[t], p, &lo,
                                                 &wire_from_offset[t * parts + p], 10000))
                fail_msg("watermarks of %s[%d]", event_topics[t], p);
        }
    rd_kafka_destroy(rk);
    for (int s = 0; s < 5; s++)
        wire_from_id[s] =
            db_num(outbox_services[s], "SELECT coalesce(max(id), 0) FROM outbox", NULL);
    memset(wire_rows, 0, sizeof(wire_rows));
}

/* Reads each event topic from where wire_begin found its end to its end now. */
static long long wire_read(void)
{
    char group[64];
    rd_kafka_t *rk =
        kafka_client(RD_KAFKA_CONSUMER, stack_unique("chaos-wire-count", group, sizeof(group)));
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(32);
    int parts = atoi(stack_env("TOPIC_PARTITIONS")), open_parts = 0;
    int64_t *end = calloc((size_t)(EVENT_TOPICS * parts), sizeof(*end));
    long long until = now_ms() + 300000, read = 0;

    for (int t = 0; t < EVENT_TOPICS; t++)
        for (int p = 0; p < parts; p++) {
            int64_t lo;
            if (rd_kafka_query_watermark_offsets(rk, event_topics[t], p, &lo, &end[t * parts + p],
                                                 10000))
                fail_msg("watermarks of %s[%d]", event_topics[t], p);
            if (end[t * parts + p] > wire_from_offset[t * parts + p]) {
                rd_kafka_topic_partition_list_add(l, event_topics[t], p)->offset =
                    wire_from_offset[t * parts + p];
                open_parts++;
            }
        }
    rd_kafka_assign(rk, l);
    while (open_parts > 0) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 5000);
        rd_kafka_headers_t *hdrs;
        const void *id = NULL;
        size_t id_len = 0;
        int t;
        if (now_ms() > until)
            fail_msg("counting the wire: not at the end after 300 s");
        if (!m)
            continue;
        if (m->err) {
            rd_kafka_message_destroy(m);
            continue;
        }
        for (t = 0; t < EVENT_TOPICS; t++)
            if (strcmp(rd_kafka_topic_name(m->rkt), event_topics[t]) == 0)
                break;
        if (t < EVENT_TOPICS && m->offset < end[t * parts + m->partition]) {
            if (m->offset + 1 == end[t * parts + m->partition])
                open_parts--;
            read++;
            if (rd_kafka_message_headers(m, &hdrs) == RD_KAFKA_RESP_ERR_NO_ERROR &&
                rd_kafka_header_get_last(hdrs, "event_id", &id, &id_len) ==
                    RD_KAFKA_RESP_ERR_NO_ERROR &&
                id)
                wire_slot(id, id_len, 1)->wire++;
        }
        rd_kafka_message_destroy(m);
    }
    free(end);
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(rk);
    return read;
}

/* Counts the "delivered event ID" / "not delivered event ID ... (possibly persisted)"
 * lines of every relay's log: the stack's (outbox-relay.log) and the ones this suite
 * started (chaos-relay-*.log, scenarios 2 and 10). */
static void wire_relay_log(void)
{
    char path[768], line[8192];
    DIR *d;
    struct dirent *e;
    snprintf(path, sizeof(path), "%s/logs", stack_env("STACK_DIR"));
    if (!(d = opendir(path)))
        fail_msg("no log directory %s", path);
    while ((e = readdir(d))) {
        FILE *f;
        if (strcmp(e->d_name, "outbox-relay.log") != 0 &&
            strncmp(e->d_name, "chaos-relay", 11) != 0)
            continue;
        snprintf(path, sizeof(path), "%s/logs/%s", stack_env("STACK_DIR"), e->d_name);
        if (!(f = fopen(path, "r")))
            continue;
        while (fgets(line, sizeof(line), f)) {
            const char *p;
            int maybe = 0;
            struct wire_row *w;
            if ((p = strstr(line, ": not delivered event ")) &&
                strstr(line, "(possibly persisted)")) {
                p += strlen(": not delivered event ");
                maybe = 1;
            } else if ((p = strstr(line, ": delivered event "))) {
                p += strlen(": delivered event ");
            } else {
                continue;
            }
            if ((w = wire_slot(p, strcspn(p, " "), 0)) && w->row) {
                if (maybe)
                    w->maybe++;
                else
                    w->delivered++;
            }
        }
        fclose(f);
    }
    closedir(d);
}

/* After quiescence: adds what is wrong to report and returns the count of violations;
 * the numbers go into the result's note. */
static int wire_end(struct result *res, char *report, size_t size, int strict)
{
    long long rows = 0, unpublished = 0, on_wire, lost = 0, dups = 0, off = 0, logged_dups = 0;
    long long surplus = 0;
    char example[160] = "";
    int violations = 0;
    size_t len;

    for (int s = 0; s < 5; s++) {
        char from[32], *ids;
        snprintf(from, sizeof(from), "%lld", wire_from_id[s]);
        unpublished += db_num(outbox_services[s],
                              "SELECT count(*) FROM outbox WHERE id > $1::bigint AND published_at "
                              "IS NULL",
                              from);
        ids = db_text(outbox_services[s],
                      "SELECT coalesce(string_agg(event_id, ','), '') FROM outbox WHERE id > "
                      "$1::bigint",
                      from);
        for (const char *p = ids; *p;) {
            size_t n = strcspn(p, ",");
            wire_slot(p, n, 1)->row = 1;
            rows++;
            p += n + (p[n] == ',');
        }
        free(ids);
    }
    on_wire = wire_read();
    wire_relay_log();
    for (size_t i = 0; i < WIRE_CAP; i++) {
        struct wire_row *w = &wire_rows[i];
        if (!w->id[0] || !w->row)
            continue;
        if (w->wire == 0) {
            lost++;
            if (!example[0])
                snprintf(example, sizeof(example), "event %.39s is not on its topic", w->id);
        }
        if (w->wire > 1)
            dups += w->wire - 1;
        if (w->delivered > 1)
            logged_dups += w->delivered - 1;
        if (w->wire > w->delivered + w->maybe)
            surplus++;
        if (w->wire < w->delivered || (strict && w->wire > w->delivered + w->maybe)) {
            off++;
            if (!example[0])
                snprintf(example, sizeof(example),
                         "event %.39s: %d on the wire, the relay's log says %d delivered, %d "
                         "possibly persisted",
                         w->id, w->wire, w->delivered, w->maybe);
        }
    }
    len = strlen(report);
    if (unpublished) {
        snprintf(report + len, size - len, "%lld outbox rows never published\n", unpublished);
        violations++;
    }
    len = strlen(report);
    if (lost) {
        snprintf(report + len, size - len, "%lld events lost (%s)\n", lost, example);
        violations++;
    }
    len = strlen(report);
    if (off) {
        snprintf(report + len, size - len,
                 "%lld events on the wire a number of times the relay's log does not account "
                 "for (%s)\n",
                 off, example);
        violations++;
    }
    res->wire_rows = rows;
    res->duplicates = dups;
    res->lost = lost;
    fprintf(stderr,
            "chaos: wire: %lld outbox rows, %lld messages read, %lld duplicates (%lld logged as "
            "delivered twice), %lld lost, %lld with more copies than logged acknowledgements%s\n",
            rows, on_wire, dups, logged_dups, lost, surplus,
            strict ? "" : " (not checked: a killed relay logs nothing of what it had in flight)");
    return violations;
}

/* 15. The broker leading the busiest partitions SIGKILLed, restarted 5 s later. */
static void f_cluster_leader_killed(struct result *res)
{
    int ranked[8];
    char name[24], cmd[64];
    double sync_s;
    if (leaders_by_traffic(ranked) < 3)
        fail_msg("fewer than 3 brokers in the cluster");
    node_name(ranked[0], name, sizeof(name));
    snprintf(cmd, sizeof(cmd), "kill %s", name);
    stack_cmd(cmd);
    sleep_ms(5000);
    stack_cmd("up");
    healed();
    sync_s = wait_in_sync(240000);
    snprintf(res->note, sizeof(res->note),
             "%s (node %d, leader of the busiest partitions) SIGKILLed, back after 5 s; all "
             "replicas in sync %.0f s after",
             name, ranked[0], sync_s);
}

/* 16. Two brokers SIGKILLed at once for 10 s: below min.insync.replicas (and the
 *     controller quorum), producers must wait, neither losing nor reordering. */
static void f_cluster_two_down(struct result *res)
{
    int ranked[8];
    char a[24], b[24], cmd[64];
    long long until, backlog, max_backlog = 0;
    double sync_s;
    if (leaders_by_traffic(ranked) < 3)
        fail_msg("fewer than 3 brokers in the cluster");
    node_name(ranked[0], a, sizeof(a));
    node_name(ranked[1], b, sizeof(b));
    snprintf(cmd, sizeof(cmd), "kill %s", a);
    stack_cmd(cmd);
    snprintf(cmd, sizeof(cmd), "kill %s", b);
    stack_cmd(cmd);
    until = now_ms() + 10000;
    while (now_ms() < until) {
        if ((backlog = relay_backlog()) > max_backlog)
            max_backlog = backlog;
        sleep_ms(1000);
    }
    stack_cmd("up");
    healed();
    sync_s = wait_in_sync(240000);
    snprintf(res->note, sizeof(res->note),
             "%s and %s SIGKILLed together for 10 s (1 of 3 left: below min ISR 2, no "
             "quorum); outbox backlog up to %lld rows meanwhile; in sync %.0f s after",
             a, b, max_backlog, sync_s);
}

/* 17. A rolling restart: each broker in turn stopped (SIGTERM, controlled shutdown) and
 *     started again, the next one only once every replica is back in sync. */
static void f_cluster_rolling(struct result *res)
{
    char name[24], cmd[64];
    double total = 0;
    for (int id = stack_brokers(); id >= 1; id--) {
        node_name(id, name, sizeof(name));
        snprintf(cmd, sizeof(cmd), "stop %s", name);
        stack_cmd(cmd);
        sleep_ms(2000);
        stack_cmd("up");
        total += wait_in_sync(240000);
    }
    healed();
    snprintf(res->note, sizeof(res->note),
             "kafka-3, kafka-2, kafka stopped and restarted in turn, each once all replicas "
             "were in sync (%.0f s of catching up in all)",
             total);
}

/* --- PostgreSQL failover (scripts/stack --pg-standby; make chaos-pg) ------------------- */

/* A number from the primary, as the superuser (PG_SUPERUSER_URL names both nodes,
 * target_session_attrs=read-write); sql takes no parameters. */
static long long super_num(const char *sql)
{
    PGconn *c = PQconnectdb(stack_env("PG_SUPERUSER_URL"));
    PGresult *r;
    long long v = -1;
    if (PQstatus(c) != CONNECTION_OK)
        fail_msg("superuser connection: %s", PQerrorMessage(c));
    r = PQexec(c, sql);
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
        v = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    else
        fail_msg("%s: %s", sql, PQerrorMessage(c));
    PQclear(r);
    PQfinish(c);
    return v;
}

/* The relay's leader locks (pg_try_advisory_lock(7170002), one per source database)
 * held on the primary, once at least want are (wait at most timeout_ms); -1 if never. */
static double wait_leader_locks(long long want, long timeout_ms)
{
    long long t0 = now_ms();
    while (now_ms() - t0 < timeout_ms) {
        if (super_num("SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = "
                      "7170002 AND granted") >= want)
            return (double)(now_ms() - t0) / 1000.0;
        sleep_ms(200);
    }
    return -1;
}

/* 18. The primary stopped -m immediate under load; 2 s later (an operator noticing) the
 *     synchronous standby is promoted (scripts/stack promote: pg_ctl promote). Every
 *     program finds the new primary by itself (target_session_attrs=read-write), the
 *     relay takes its leader locks there; then `up` rewinds the old primary (pg_rewind)
 *     into the new primary's synchronous standby, never a second primary. The frame
 *     checks that no accepted order, payment or event was lost. */
static void f_pg_failover(struct result *res)
{
    long long t0, sources = 5;
    double leader_s, promote_s;
    stack_cmd("kill postgres");
    t0 = now_ms();
    sleep_ms(2000);
    stack_cmd("promote");
    promote_s = (double)(now_ms() - t0) / 1000.0;
    healed();
    leader_s = wait_leader_locks(sources, 60000);
    if (leader_s < 0)
        fail_msg("the relay did not take its %lld leader locks on the new primary in 60 s",
                 sources);
    sleep_ms(3000); /* more load on the new primary alone */
    stack_cmd("up");
    if (super_num("SELECT count(*) FROM pg_stat_replication WHERE sync_state = 'sync'") != 1)
        fail_msg("after up, the new primary has no synchronous standby");
    snprintf(res->note, sizeof(res->note),
             "primary stopped -m immediate, standby promoted %.1f s later; relay leading on it "
             "%.1f s after; old primary rewound into its synchronous standby",
             promote_s, leader_s);
}

/* --- 19-20: a rolling upgrade from the previous release (tests/chaos/upgrade) ------- */

/* The stack starts on the release's programs (UPGRADE_OLD_BIN, run with UPGRADE_OLD_ENV,
 * e.g. SAGA_SCHEMA_DIR for single-object framing); each is swapped with
 * `scripts/stack up --replace`. Since 0.3.0 OrderConfirmed carries tracking_number
 * (written by the order-service, named in the notification): which version wrote an
 * OrderConfirmed shows on the wire, which version read it shows in the notification. */

/* PROG from the release build (old) or back to the current build. */
static void upgrade_run(const char *prog, int old)
{
    char cmd[1024];
    const char *bin = getenv("UPGRADE_OLD_BIN"), *env = getenv("UPGRADE_OLD_ENV");
    if (!env)
        env = "";
    if (old)
        snprintf(cmd, sizeof(cmd), "up --replace '%s=%s%sexec %s/%s'", prog, env, *env ? " " : "",
                 bin, prog);
    else
        snprintf(cmd, sizeof(cmd), "up --replace '%s='", prog);
    stack_cmd(cmd);
}

static long long dlq_total(void)
{
    rd_kafka_t *p = kafka_client(RD_KAFKA_PRODUCER, NULL);
    long long n = 0;
    for (int d = 0; d < 5; d++)
        n += topic_size(p, dlq_topics[d]);
    rd_kafka_destroy(p);
    return n;
}

/* OrderConfirmed on the wire since upgrade_mark(): by writer version (with or without
 * tracking_number) and framing; the order ids of each kind, comma-separated. */
struct confirmed_wire {
    long long with_tracking, without, single_object, confluent;
    char *ids_with, *ids_without;
};
static int64_t orders_from[64];

static void upgrade_mark(void)
{
    rd_kafka_t *rk = kafka_client(RD_KAFKA_PRODUCER, NULL);
    int parts = atoi(stack_env("TOPIC_PARTITIONS"));
    for (int p = 0; p < parts && p < 64; p++) {
        int64_t lo;
        if (rd_kafka_query_watermark_offsets(rk, "orders", p, &lo, &orders_from[p], 10000))
            fail_msg("watermarks of orders[%d]", p);
    }
    rd_kafka_destroy(rk);
}

static void id_append(char **list, const char *id)
{
    size_t had = *list ? strlen(*list) : 0;
    *list = realloc(*list, had + strlen(id) + 2);
    snprintf(*list + had, strlen(id) + 2, "%s%s", had ? "," : "", id);
}

static void confirmed_on_wire(struct confirmed_wire *c)
{
    char group[64], err[512];
    rd_kafka_t *rk =
        kafka_client(RD_KAFKA_CONSUMER, stack_unique("chaos-upgrade", group, sizeof(group)));
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(64);
    int parts = atoi(stack_env("TOPIC_PARTITIONS")), open_parts = 0;
    int64_t end[64];
    long long until = now_ms() + 120000;
    struct saga_serde *serde = NULL;
    struct saga_registry *reg = NULL;
    struct saga_event ev = {0};

    memset(c, 0, sizeof(*c));
    if (saga_serde_open(stack_env_opt("SCHEMA_REGISTRY_URL"), NULL, &serde, &reg, err,
                        sizeof(err)) != SAGA_OK)
        fail_msg("serde: %s", err);
    for (int p = 0; p < parts && p < 64; p++) {
        int64_t lo;
        if (rd_kafka_query_watermark_offsets(rk, "orders", p, &lo, &end[p], 10000))
            fail_msg("watermarks of orders[%d]", p);
        if (end[p] > orders_from[p]) {
            rd_kafka_topic_partition_list_add(l, "orders", p)->offset = orders_from[p];
            open_parts++;
        }
    }
    rd_kafka_assign(rk, l);
    while (open_parts > 0) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 5000);
        if (now_ms() > until)
            fail_msg("reading the orders topic: not at the end after 120 s");
        if (!m)
            continue;
        if (!m->err && m->offset < end[m->partition]) {
            if (m->offset + 1 == end[m->partition])
                open_parts--;
            if (m->len > 0 &&
                saga_serde_decode(serde, m->payload, m->len, &ev, err, sizeof(err)) ==
                    SAGA_DECODE_OK &&
                ev.type == SAGA_EV_ORDER_CONFIRMED) {
                if (((const unsigned char *)m->payload)[0] == 0)
                    c->confluent++;
                else
                    c->single_object++;
                if (ev.u.order_confirmed.tracking_number) {
                    c->with_tracking++;
                    id_append(&c->ids_with, ev.meta.order_id);
                } else {
                    c->without++;
                    id_append(&c->ids_without, ev.meta.order_id);
                }
            }
        }
        rd_kafka_message_destroy(m);
    }
    saga_event_release(&ev);
    saga_serde_destroy(serde);
    saga_registry_destroy(reg);
    rd_kafka_topic_partition_list_destroy(l);
    rd_kafka_destroy(rk);
}

/* How many of the orders in ids got a notification that names a tracking number
 * (named=1) or not (named=0). */
static long long notified(const char *ids, int named)
{
    char sql[256];
    if (!ids)
        return 0;
    snprintf(sql, sizeof(sql),
             "SELECT count(*) FROM notifications WHERE order_id = ANY(string_to_array($1, ','))"
             " AND (message LIKE '%%tracking number%%') = %s",
             named ? "true" : "false");
    return db_num("notification", sql, ids);
}

static const char *upgrade_from(void)
{
    const char *from = getenv("UPGRADE_FROM");
    return from ? from : "the release";
}

/* 19. Every program of the release running under load, then the relay and each
 *     service in turn replaced by the current build (5 s of load between swaps). */
static long long upgrade_dlq0;

static void f_upgrade(struct result *res)
{
    static const char *const order[] = {"outbox-relay",      "order-service",
                                        "inventory-service", "payment-service",
                                        "shipping-service",  "notification-service"};
    for (size_t i = 0; i < sizeof(order) / sizeof(order[0]); i++) {
        upgrade_run(order[i], 0);
        sleep_ms(5000);
    }
    snprintf(res->note, sizeof(res->note),
             "from %s: relay, order, inventory, payment, shipping, "
             "notification swapped in turn",
             upgrade_from());
}

/* 20. The downgrade: the order-service back to the release under load. */
static void f_downgrade(struct result *res)
{
    upgrade_run("order-service", 1);
    sleep_ms(5000);
    snprintf(res->note, sizeof(res->note), "order-service back to %s", upgrade_from());
}

/* Before a scenario: where the orders topic and the dead letters stand. */
static void upgrade_begin(void)
{
    upgrade_mark();
    upgrade_dlq0 = dlq_total();
}

/* After the scenario drained (the frame checked every invariant): no dead letter, and
 * each version read the other's OrderConfirmed. */
static void upgrade_end(struct result *res, int downgrade)
{
    struct confirmed_wire c;
    long long dlq = dlq_total() - upgrade_dlq0, old_read_new, new_read_new, new_read_old;
    size_t len = strlen(res->note);

    if (dlq)
        fail_msg("%lld event(s) dead-lettered", dlq);
    confirmed_on_wire(&c);
    /* the release's notification-service read the current order-service's events */
    old_read_new = notified(c.ids_with, 0);
    /* the current notification-service read them, and names the tracking number */
    new_read_new = notified(c.ids_with, 1);
    /* the current notification-service read the release's events */
    new_read_old = notified(c.ids_without, 0);
    fprintf(stderr,
            "chaos: OrderConfirmed on the wire: %lld from %s, %lld from the current build "
            "(%lld single-object, %lld Confluent); notified: %lld new by the old, %lld new by "
            "the new, %lld old\n",
            c.without, upgrade_from(), c.with_tracking, c.single_object, c.confluent, old_read_new,
            new_read_new, new_read_old);
    if (!downgrade && (!c.without || !c.with_tracking || !old_read_new || !new_read_new))
        fail_msg("upgrade: each count must be > 0");
    if (downgrade && (!c.without || !new_read_old))
        fail_msg("downgrade: each count must be > 0");
    snprintf(res->note + len, sizeof(res->note) - len,
             "%sOrderConfirmed: %lld old, %lld new (%lld single-object, %lld Confluent); "
             "%lld %s read by the %s notification-service; 0 dead letters",
             len ? "; " : "", c.without, c.with_tracking, c.single_object, c.confluent,
             downgrade ? new_read_old : old_read_new, downgrade ? "old" : "new",
             downgrade ? "current" : "old");
    free(c.ids_with);
    free(c.ids_without);
}

#define SCENARIO(fn, title)                                                                        \
    static void t_##fn(void **state)                                                               \
    {                                                                                              \
        (void)state;                                                                               \
        scenario(title, f_##fn);                                                                   \
    }
SCENARIO(kill_each, "1. SIGKILL each program in turn")
SCENARIO(relay_after_ack, "2. relay killed between ack and mark, standby takes over")
SCENARIO(kafka, "3. Kafka broker hard-killed and restarted")
SCENARIO(postgres, "4. Postgres stopped -m immediate and restarted")
SCENARIO(proxy, "5. connections paused and slowed (proxy, SIGSTOP)")
SCENARIO(replay, "6. a consumer group reset to the earliest offsets")
SCENARIO(poison, "7. poison messages on every topic")
SCENARIO(scale, "8. a service scaled to 3 and back, one member stopped")
SCENARIO(compensation, "9. crashes during compensation")
SCENARIO(relay_leader_killed, "10. two relays, the leader killed repeatedly")
SCENARIO(rebalance_storm, "11. rebalance storm, slow and transiently failing handler")
SCENARIO(registry, "12. schema registry down 10 s")
SCENARIO(pg_hung, "14. a service's database connection hung 20 s")

/* 13 needs the secured stack (tests/chaos/run starts it so unless CHAOS_SECURE=0). */
static void t_dlq_refused(void **state)
{
    (void)state;
    if (!stack_env_opt("KAFKA_SECURITY_PROTOCOL")) {
        fprintf(stderr, "chaos: 13 needs the secured stack (CHAOS_SECURE=0): skipped\n");
        skip();
    }
    scenario("13. a service's DLQ write refused (ACL removed), then restored", f_dlq_refused);
}

/* 15-17 need a stack with three brokers (make chaos-cluster, CHAOS_BROKERS=3). */
#define CLUSTER_SCENARIO(fn, title)                                                                \
    static void t_##fn(void **state)                                                               \
    {                                                                                              \
        (void)state;                                                                               \
        if (stack_brokers() < 3) {                                                                 \
            fprintf(stderr, "chaos: %s needs 3 brokers (CHAOS_BROKERS=3): skipped\n", title);      \
            skip();                                                                                \
        }                                                                                          \
        scenario_counted(title, f_##fn, WIRE_STRICT);                                              \
    }
CLUSTER_SCENARIO(cluster_leader_killed, "15. cluster: the busiest partitions' leader SIGKILLed")
CLUSTER_SCENARIO(cluster_two_down, "16. cluster: two brokers down at once for 10 s")
CLUSTER_SCENARIO(cluster_rolling, "17. cluster: a rolling restart of all three brokers")

/* 18 needs a stack with a PostgreSQL standby (make chaos-pg, CHAOS_PG_STANDBY=1). */
static void t_pg_failover(void **state)
{
    (void)state;
    if (!stack_env_opt("STACK_PG_STANDBY_PORT")) {
        fprintf(stderr, "chaos: 18 needs a PostgreSQL standby (CHAOS_PG_STANDBY=1): skipped\n");
        skip();
    }
    /* no relay is killed: every copy on the wire must be one the relay logged as
     * acknowledged (tests/chaos/run sets RELAY_LOG_DELIVERIES=1 for CHAOS_PG_STANDBY=1) */
    scenario_counted("18. PostgreSQL primary stopped -m immediate, standby promoted", f_pg_failover,
                     getenv("RELAY_LOG_DELIVERIES") ? WIRE_STRICT : 0);
}

/* 19-20 need a stack started on the release's programs (make chaos-upgrade,
 * tests/chaos/upgrade), which sets UPGRADE_OLD_BIN. */
#define UPGRADE_SCENARIO(fn, downgrade, title)                                                     \
    static void t_##fn(void **state)                                                               \
    {                                                                                              \
        (void)state;                                                                               \
        if (!getenv("UPGRADE_OLD_BIN")) {                                                          \
            fprintf(stderr, "chaos: %s needs tests/chaos/upgrade: skipped\n", title);              \
            skip();                                                                                \
        }                                                                                          \
        upgrade_begin();                                                                           \
        scenario(title, f_##fn);                                                                   \
        upgrade_end(&results[nresults - 1], downgrade);                                            \
    }
UPGRADE_SCENARIO(upgrade, 0, "19. rolling upgrade: relay and services swapped to the current build")
UPGRADE_SCENARIO(downgrade, 1, "20. downgrade: the order-service back to the release")

static void write_report(void)
{
    const char *path = getenv("CHAOS_REPORT");
    FILE *out = path ? fopen(path, "w") : NULL;
    for (int pass = 0; pass < 2; pass++) {
        FILE *f = pass ? out : stderr;
        if (!f)
            continue;
        fprintf(f, "Assignment strategy: %s%s.\n\n", strategy(),
                stack_env_opt("KAFKA_SECURITY_PROTOCOL") ? "; secured stack (SASL/SCRAM, ACLs)"
                                                         : "");
        fprintf(f, "| scenario | orders | violations | timed out | recovery | what happened |\n"
                   "|---|---:|---:|---:|---:|---|\n");
        for (int i = 0; i < nresults; i++) {
            char wire[160] = "";
            if (results[i].wire_rows)
                snprintf(wire, sizeof(wire),
                         "; on the wire: %lld outbox rows, %lld duplicates, %lld lost",
                         results[i].wire_rows, results[i].duplicates, results[i].lost);
            fprintf(f, "| %s | %d | %d | %d | %.1f s | %s%s |\n", results[i].name,
                    results[i].orders, results[i].violations, results[i].timed_out,
                    results[i].recovery_s, results[i].note, wire);
        }
    }
    if (out)
        fclose(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_kill_each),
        cmocka_unit_test(t_relay_after_ack),
        cmocka_unit_test(t_kafka),
        cmocka_unit_test(t_postgres),
        cmocka_unit_test(t_proxy),
        cmocka_unit_test(t_replay),
        cmocka_unit_test(t_poison),
        cmocka_unit_test(t_scale),
        cmocka_unit_test(t_compensation),
        cmocka_unit_test(t_relay_leader_killed),
        cmocka_unit_test(t_rebalance_storm),
        cmocka_unit_test(t_registry),
        cmocka_unit_test(t_dlq_refused),
        cmocka_unit_test(t_pg_hung),
        cmocka_unit_test(t_cluster_leader_killed),
        cmocka_unit_test(t_cluster_two_down),
        cmocka_unit_test(t_cluster_rolling),
        cmocka_unit_test(t_pg_failover),
        cmocka_unit_test(t_upgrade),
        cmocka_unit_test(t_downgrade),
    };
    struct CMUnitTest picked[sizeof(tests) / sizeof(tests[0])];
    const char *only = getenv("CHAOS_ONLY");
    size_t n = 0;
    int failed;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    /* CHAOS_ONLY: comma-separated globs of test names ('t_kafka', 't_re*,t_pg_hung') */
    for (size_t i = 0; i < sizeof(tests) / sizeof(tests[0]); i++) {
        int keep = !only || !*only;
        for (const char *g = only; g && *g && !keep;) {
            char glob[64];
            size_t len = strcspn(g, ",");
            snprintf(glob, sizeof(glob), "%.*s", (int)len, g);
            keep = fnmatch(glob, tests[i].name, 0) == 0;
            g += len + (g[len] == ',');
        }
        if (keep)
            picked[n++] = tests[i];
    }
    failed = _cmocka_run_group_tests("chaos", picked, n, NULL, NULL);
    write_report();
    return failed;
}
