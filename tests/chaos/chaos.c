/*
 * The chaos suite (`make chaos`, docs/RELIABILITY.md): each scenario runs under steady
 * load through the order API, breaks something on purpose, heals it, then waits until
 * every accepted order has its outcome and the stack is quiescent, and checks every
 * invariant of the design brief (§11) exactly. A results table (scenario, orders,
 * violations, recovery time) is printed at the end and written to CHAOS_REPORT.
 *
 * Runs against the stack named by SAGA_STACK_ENV; CHAOS_ONLY=<glob> picks scenarios.
 * Faults: SIGKILL of programs, `scripts/stack kill` of Kafka and Postgres, the relay's
 * fault hook, a TCP proxy in this process between one service and Postgres, SIGSTOP.
 */
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <poll.h>
#include <pthread.h>
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

#include <cmocka.h>
#include <curl/curl.h>
#include <librdkafka/rdkafka.h>

#include "../e2e/e2e.h"
#include "../support/proc.h"
#include "../support/stack_env.h"

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
    char note[160];
};
static struct result results[16];
static int nresults;

/* --- steady load ------------------------------------------------------------- */

static volatile int load_stop;
static int load_accepted, load_refused;
static pthread_t load_thread;

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
        if (rep.status == 202)
            __atomic_add_fetch(&load_accepted, 1, __ATOMIC_RELAXED);
        else
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
    load_accepted = load_refused = 0;
    pthread_create(&load_thread, NULL, load_main, NULL);
}

static void load_end(void)
{
    load_stop = 1;
    pthread_join(load_thread, NULL);
}

/* --- the scenario frame -------------------------------------------------------- */

static long long scenario_healed;
static int orders_out_of_order(char *example, size_t example_size);

/* Runs fault under load: 3 s of load first, the fault (which heals what it broke and
 * calls healed() at that moment), 3 s more load, then drain and check. */
static void scenario(const char *name, void (*fault)(struct result *))
{
    struct result *res = &results[nresults++];
    long long before = db_num("order", "SELECT count(*) FROM orders", NULL);
    char report[4096];
    long long stored;

    memset(res, 0, sizeof(*res));
    res->name = name;
    fprintf(stderr, "chaos: %s\n", name);
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
    fprintf(stderr,
            "chaos: %s: %d orders (%d not accepted), %d violations, recovered in %.1f s%s%s\n",
            name, res->orders, load_refused, res->violations, res->recovery_s,
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

/* Starts another instance of program (e.g. "inventory-service", "outbox-relay") with the
 * stack's environment; database_url overrides the service's own when not NULL. */
static pid_t spawn(const char *program, const char *database_url, const char *extra,
                   const char *tag)
{
    static char env[8][2048];
    const char *envp[9];
    char path[512], log[512], var[64];
    int n = 0;
    snprintf(env[n++], sizeof(env[0]), "KAFKA_BOOTSTRAP_SERVERS=%s",
             stack_env("KAFKA_BOOTSTRAP_SERVERS"));
    snprintf(env[n++], sizeof(env[0]), "TOPIC_PARTITIONS=%s", stack_env("TOPIC_PARTITIONS"));
    snprintf(env[n++], sizeof(env[0]), "HTTP_LISTEN=127.0.0.1:0");
    if (stack_env_opt("SCHEMA_REGISTRY_URL"))
        snprintf(env[n++], sizeof(env[0]), "SCHEMA_REGISTRY_URL=%s",
                 stack_env_opt("SCHEMA_REGISTRY_URL"));
    if (strcmp(program, "outbox-relay") == 0) {
        snprintf(env[n++], sizeof(env[0]), "RELAY_SOURCES=%s", stack_env("RELAY_SOURCES"));
    } else {
        snprintf(var, sizeof(var), "%.*s_DATABASE_URL", (int)strcspn(program, "-"), program);
        for (char *p = var; *p; p++)
            *p = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
        snprintf(env[n++], sizeof(env[0]), "DATABASE_URL=%s",
                 database_url ? database_url : stack_env(var));
    }
    if (extra)
        snprintf(env[n++], sizeof(env[0]), "%s", extra);
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

/* --- a TCP proxy that can pause and slow what it forwards ------------------------ */

enum proxy_mode { PROXY_PASS, PROXY_PAUSE, PROXY_SLOW };

static struct {
    int listen_fd, port, target_port;
    volatile int mode, stop;
    pthread_t thread;
} proxy;

#define PROXY_MAX 32

static void *proxy_main(void *arg)
{
    struct pollfd fds[1 + 2 * PROXY_MAX];
    int peer[1 + 2 * PROXY_MAX];
    int n = 1;
    char buf[65536];
    (void)arg;
    fds[0] = (struct pollfd){.fd = proxy.listen_fd, .events = POLLIN};
    while (!proxy.stop) {
        int paused = proxy.mode == PROXY_PAUSE;
        for (int i = 1; i < n; i++)
            fds[i].events = paused ? 0 : POLLIN;
        if (poll(fds, (nfds_t)n, 100) <= 0)
            continue;
        if ((fds[0].revents & POLLIN) && n + 2 <= 1 + 2 * PROXY_MAX) {
            int c = accept(proxy.listen_fd, NULL, NULL);
            int s = socket(AF_INET, SOCK_STREAM, 0);
            struct sockaddr_in to = {.sin_family = AF_INET,
                                     .sin_port = htons((uint16_t)proxy.target_port),
                                     .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
            if (c >= 0 && s >= 0 && connect(s, (struct sockaddr *)&to, sizeof(to)) == 0) {
                fds[n] = (struct pollfd){.fd = c, .events = POLLIN};
                peer[n++] = s;
                fds[n] = (struct pollfd){.fd = s, .events = POLLIN};
                peer[n++] = c;
            } else {
                if (c >= 0)
                    close(c);
                if (s >= 0)
                    close(s);
            }
        }
        for (int i = 1; i < n; i++) {
            ssize_t got;
            if (!(fds[i].revents & (POLLIN | POLLHUP | POLLERR)))
                continue;
            got = read(fds[i].fd, buf, sizeof(buf));
            if (got > 0) {
                if (proxy.mode == PROXY_SLOW)
                    sleep_ms(150);
                for (ssize_t off = 0; off < got;) {
                    ssize_t w = write(peer[i], buf + off, (size_t)(got - off));
                    if (w <= 0)
                        break;
                    off += w;
                }
                continue;
            }
            /* one side closed: close the pair, compact the table */
            {
                int a = fds[i].fd, b = peer[i];
                close(a);
                close(b);
                for (int j = 1; j < n; j++)
                    if (fds[j].fd == a || fds[j].fd == b) {
                        fds[j] = fds[n - 1];
                        peer[j] = peer[n - 1];
                        n--;
                        j--;
                    }
                i = 0;
            }
        }
    }
    for (int i = 1; i < n; i++)
        close(fds[i].fd);
    return NULL;
}

static void proxy_start(int target_port)
{
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(a);
    signal(SIGPIPE, SIG_IGN);
    proxy.listen_fd = socket(AF_INET, SOCK_STREAM, 0);
    assert_true(proxy.listen_fd >= 0);
    assert_int_equal(bind(proxy.listen_fd, (struct sockaddr *)&a, sizeof(a)), 0);
    assert_int_equal(listen(proxy.listen_fd, 16), 0);
    getsockname(proxy.listen_fd, (struct sockaddr *)&a, &len);
    proxy.port = ntohs(a.sin_port);
    proxy.target_port = target_port;
    proxy.mode = PROXY_PASS;
    proxy.stop = 0;
    pthread_create(&proxy.thread, NULL, proxy_main, NULL);
}

static void proxy_end(void)
{
    proxy.stop = 1;
    pthread_join(proxy.thread, NULL);
    close(proxy.listen_fd);
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

/* 5. A TCP proxy between the payment-service and Postgres, paused then slowed; the
 *    Kafka broker paused (SIGSTOP) as well, so every client's connections hang. */
static void f_proxy(struct result *res)
{
    char url[1024], pgport[16];
    const char *orig = stack_env("PAYMENT_DATABASE_URL");
    const char *at = strrchr(orig, '@'), *slash;
    pid_t svc, broker = stack_pid("kafka");

    assert_non_null(at);
    slash = strchr(at, '/');
    assert_non_null(slash);
    snprintf(pgport, sizeof(pgport), "%s", stack_env("STACK_PG_PORT"));
    proxy_start(atoi(pgport));
    snprintf(url, sizeof(url), "%.*s@127.0.0.1:%d%s", (int)(at - orig), orig, proxy.port, slash);
    stack_cmd("kill payment-service");
    svc = spawn("payment-service", url, NULL, "payment-proxied");
    sleep_ms(4000);
    proxy.mode = PROXY_PAUSE;
    sleep_ms(8000);
    proxy.mode = PROXY_SLOW;
    sleep_ms(8000);
    proxy.mode = PROXY_PASS;
    kill(broker, SIGSTOP);
    sleep_ms(8000);
    kill(broker, SIGCONT);
    sleep_ms(5000);
    /* the stack's own payment-service comes back; the proxied one leaves */
    proc_stop(svc, SIGTERM, 30000);
    stack_cmd("up");
    proxy_end();
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

static void write_report(void)
{
    const char *path = getenv("CHAOS_REPORT");
    FILE *out = path ? fopen(path, "w") : NULL;
    for (int pass = 0; pass < 2; pass++) {
        FILE *f = pass ? out : stderr;
        if (!f)
            continue;
        fprintf(f, "| scenario | orders | violations | recovery | what happened |\n"
                   "|---|---:|---:|---:|---|\n");
        for (int i = 0; i < nresults; i++)
            fprintf(f, "| %s | %d | %d | %.1f s | %s |\n", results[i].name, results[i].orders,
                    results[i].violations, results[i].recovery_s, results[i].note);
    }
    if (out)
        fclose(out);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(t_kill_each),    cmocka_unit_test(t_relay_after_ack),
        cmocka_unit_test(t_kafka),        cmocka_unit_test(t_postgres),
        cmocka_unit_test(t_proxy),        cmocka_unit_test(t_replay),
        cmocka_unit_test(t_poison),       cmocka_unit_test(t_scale),
        cmocka_unit_test(t_compensation), cmocka_unit_test(t_relay_leader_killed),
    };
    int failed;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (getenv("CHAOS_ONLY"))
        cmocka_set_test_filter(getenv("CHAOS_ONLY"));
    failed = cmocka_run_group_tests(tests, NULL, NULL);
    write_report();
    return failed;
}
