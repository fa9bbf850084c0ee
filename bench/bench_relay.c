/*
 * bench_relay: the outbox-relay on the real stack.
 *
 *  1. drain: N committed outbox rows waiting; start the relay; rows/s until the
 *     last is marked published. Target >= 20,000 events/s.
 *  2. latency: after a pass of the same load that only warms up, rows committed
 *     at a steady rate (default 1,000/s, two writers) while the relay runs; for
 *     each row, commit (COMMIT returned) -> Kafka ack. The relay marks a row
 *     published (published_at = clock_timestamp()) only once the broker has
 *     acknowledged it, so commit -> marked bounds commit -> ack from above by the
 *     relay's UPDATE. Target p99 <= 10 ms at 1,000 events/s. Printed beside it:
 *     commit -> seen by a Kafka consumer (adds the consumer's fetch), and, to say
 *     where a tail comes from, how long the COMMIT itself took (the WAL flush,
 *     before the row exists for anyone), commit -> produced (the message's
 *     timestamp, set by the relay's producer; 1 ms resolution) and produced ->
 *     consumed (the broker's append and the consumer's fetch).
 *
 *   SAGA_STACK_ENV=<stack>/stack.env bench_relay RELAY_BINARY [rows] [rate] [seconds]
 *
 * BENCH_RELAY_WARMUP  seconds of the warm-up pass (default 60)
 * BENCH_RELAY_ENV     one more NAME=VALUE for the relay, for A/B runs
 *                     (e.g. KAFKA_LINGER_MS=1)
 * BENCH_FETCH_WAIT    the reader's fetch.wait.max.ms (default 100)
 */
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "proc.h"
#include "saga/kafka.h"
#include "saga/migrate.h"
#include "saga/outbox.h"
#include "saga/pg.h"
#include "stack_env.h"
#include "testdb.h"

static struct testdb db;
static char topic[96];

static int64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

static PGconn *connect_owner(void)
{
    char err[512];
    PGconn *c = saga_pg_connect(db.owner_url, NULL, err, sizeof(err));
    if (!c) {
        fprintf(stderr, "bench_relay: %s\n", err);
        exit(1);
    }
    return c;
}

static void exec_or_die(PGconn *c, const char *sql)
{
    PGresult *r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        fprintf(stderr, "bench_relay: %s: %s", sql, PQerrorMessage(c));
        exit(1);
    }
    PQclear(r);
}

/* Commits and wakes the relay, as the services do. */
static void commit_or_die(PGconn *c)
{
    char err[512];
    if (saga_outbox_commit_notify(c, err, sizeof(err)) != SAGA_OK) {
        fprintf(stderr, "bench_relay: COMMIT: %s\n", err);
        exit(1);
    }
}

static void append(PGconn *c, int64_t seq, const char *payload)
{
    char key[32], id[32], err[512];
    struct saga_header h[1] = {{"event_id", id}};
    struct saga_outbox_row row = {topic, key, "BenchEvent", id, payload, strlen(payload), h, 1};
    snprintf(key, sizeof(key), "order-%" PRId64, seq % 1000);
    snprintf(id, sizeof(id), "e-%" PRId64, seq);
    if (saga_outbox_append(c, &row, err, sizeof(err)) != SAGA_OK) {
        fprintf(stderr, "bench_relay: append: %s\n", err);
        exit(1);
    }
}

static long long unpublished(void)
{
    return testdb_scalar(&db, "SELECT count(*) FROM outbox WHERE published_at IS NULL");
}

/* --- latency: writers and a reader ------------------------------------------- */

/* Per row i of a writer: when its COMMIT was sent and returned, when it was produced
 * (the message timestamp), marked published by the relay and consumed; 0 until known. */
struct row_times {
    int64_t before_us, after_us, produced_us, marked_us, seen_us;
};

struct writer {
    pthread_t t;
    int id, rate;
    double seconds;
    int64_t seq_base, written, cap;
    struct row_times *rows;
    volatile int done;
};

static void *write_steadily(void *arg)
{
    struct writer *w = arg;
    PGconn *c = connect_owner();
    int64_t start = wall_us(), period = 1000000 / w->rate;
    char payload[64];

    for (int64_t i = 0;; i++) {
        int64_t due = start + i * period, now = wall_us();
        if (now - start > (int64_t)(w->seconds * 1e6))
            break;
        if (due > now)
            usleep((useconds_t)(due - now));
        if (i >= w->cap)
            break;
        exec_or_die(c, "BEGIN");
        /* The payload names the row: "<writer>:<i>". */
        snprintf(payload, sizeof(payload), "%d:%" PRId64, w->id, i);
        append(c, w->seq_base + i, payload);
        w->rows[i].before_us = wall_us();
        commit_or_die(c);
        w->rows[i].after_us = wall_us();
        w->written++;
    }
    PQfinish(c);
    w->done = 1;
    return NULL;
}

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

/* Sorts v and returns its q-quantile in ms. */
static double quantile_ms(int64_t *v, size_t n, double q)
{
    size_t i;
    if (!n)
        return 0;
    qsort(v, n, sizeof(*v), cmp64);
    i = (size_t)((double)n * q);
    return (double)v[i < n ? i : n - 1] / 1000;
}

/* Reads when the relay marked each row of writers w[0..nw) published; the rows'
 * event ids are "e-<seq_base + i>". Returns how many rows were found marked. */
static int64_t read_marked(PGconn *c, struct writer *w, int nw)
{
    PGresult *r = PQexec(c, "SELECT event_id, (extract(epoch FROM published_at) * 1000000)::bigint"
                            " FROM outbox WHERE published_at IS NOT NULL");
    int64_t found = 0;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        fprintf(stderr, "bench_relay: reading published_at: %s", PQerrorMessage(c));
        exit(1);
    }
    for (int j = 0; j < PQntuples(r); j++) {
        long long seq = atoll(PQgetvalue(r, j, 0) + 2);
        for (int k = 0; k < nw; k++)
            if (seq >= w[k].seq_base && seq - w[k].seq_base < w[k].written) {
                w[k].rows[seq - w[k].seq_base].marked_us = atoll(PQgetvalue(r, j, 1));
                found++;
            }
    }
    PQclear(r);
    return found;
}

enum {
    SPAN_COMMIT,
    SPAN_TO_MARKED,
    SPAN_TO_CONSUMED,
    SPAN_TO_PRODUCED,
    SPAN_PRODUCED_TO_CONSUMED,
    SPANS
};

/* The spans of every row seen and marked, one array per span; returns how many rows.
 * Rows the relay saw before their writer heard the COMMIT's answer count as 0. */
static size_t spans_of(struct writer *w, int nw, int64_t **span)
{
    size_t n = 0;
    for (int k = 0; k < nw; k++)
        for (int64_t i = 0; i < w[k].written; i++) {
            const struct row_times *t = &w[k].rows[i];
            int64_t v[SPANS];
            if (!t->seen_us || !t->marked_us)
                continue;
            v[SPAN_COMMIT] = t->after_us - t->before_us;
            v[SPAN_TO_MARKED] = t->marked_us - t->after_us;
            v[SPAN_TO_CONSUMED] = t->seen_us - t->after_us;
            v[SPAN_TO_PRODUCED] = t->produced_us - t->after_us;
            v[SPAN_PRODUCED_TO_CONSUMED] = t->seen_us - t->produced_us;
            for (int j = 0; j < SPANS; j++)
                span[j][n] = v[j] > 0 ? v[j] : 0;
            n++;
        }
    return n;
}

int main(int argc, char **argv)
{
    const char *relay_bin = argc > 1 ? argv[1] : "outbox-relay";
    long rows = argc > 2 ? atol(argv[2]) : 50000;
    int rate = argc > 3 ? atoi(argv[3]) : 1000;
    double seconds = argc > 4 ? atof(argv[4]) : 10;
    /* The first pass at the same rate only warms up: a fresh broker's JVM compiles its hot
     * paths for about a minute, taking a core, and stalls the pipeline while it does. */
    double warmup = getenv("BENCH_RELAY_WARMUP") ? atof(getenv("BENCH_RELAY_WARMUP")) : 60;
    char env_sources[700], env_kafka[300], log[300], err[512];
    const char *env[7];
    rd_kafka_t *admin;
    struct saga_topic_status st;
    const char *names[1];
    PGconn *c;
    pid_t relay;
    int64_t t0, t_leader, t_done;
    double drain_rate;

    testdb_create(&db, "bench_relay", "order");
    c = connect_owner();
    if (saga_pg_migrate(c, saga_common_migrations, saga_common_migration_count, NULL, err,
                        sizeof(err))) {
        fprintf(stderr, "bench_relay: %s\n", err);
        return 1;
    }
    stack_unique("bench-relay", topic, sizeof(topic));
    names[0] = topic;
    {
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        rd_kafka_conf_set(conf, "bootstrap.servers", stack_env("KAFKA_BOOTSTRAP_SERVERS"), NULL, 0);
        admin = rd_kafka_new(RD_KAFKA_PRODUCER, conf, NULL, 0);
    }
    if (saga_kafka_topics_ensure(admin, names, 1, 6, 1, 10000, &st) != SAGA_OK) {
        fprintf(stderr, "bench_relay: topic: %s\n", st.errstr);
        return 1;
    }
    rd_kafka_destroy(admin);

    snprintf(env_sources, sizeof(env_sources), "RELAY_SOURCES=bench=%s", db.relay_url);
    snprintf(env_kafka, sizeof(env_kafka), "KAFKA_BOOTSTRAP_SERVERS=%s",
             stack_env("KAFKA_BOOTSTRAP_SERVERS"));
    snprintf(log, sizeof(log), "/tmp/%s.log", db.name);
    unlink(log);
    env[0] = env_sources;
    env[1] = env_kafka;
    env[2] = getenv("BENCH_RELAY_POLL") ? getenv("BENCH_RELAY_POLL") : "RELAY_POLL_INTERVAL=1s";
    env[3] = "LOG_LEVEL=info";
    env[4] = "HTTP_LISTEN=127.0.0.1:0";
    env[5] = getenv("BENCH_RELAY_ENV"); /* one more NAME=VALUE for the relay, for A/B runs */
    env[6] = NULL;

    /* 0. warm-up: the broker's and the database's first minutes are slower */
    printf("bench_relay: warming up...\n");
    relay = proc_start(relay_bin, env, log);
    for (long round = 0; round < rows / 1000; round++) {
        exec_or_die(c, "BEGIN");
        for (int k = 0; k < 1000; k++)
            append(c, 1000000000 + round * 1000 + k, "warm-up");
        commit_or_die(c);
    }
    while (unpublished() > 0)
        usleep(10000);
    proc_stop(relay, SIGTERM, 20000);

    /* 1. drain */
    printf("bench_relay: writing %ld outbox rows...\n", rows);
    for (long i = 0; i < rows;) {
        exec_or_die(c, "BEGIN");
        for (int k = 0; k < 1000 && i < rows; k++, i++)
            append(c, i,
                   "{\"a realistic payload is about two hundred and seventy bytes; this "
                   "one is shorter but the relay does not look inside\"}");
        commit_or_die(c);
    }
    t0 = wall_us();
    relay = proc_start(relay_bin, env, log);
    while (unpublished() == rows && wall_us() - t0 < 30000000)
        usleep(2000);
    t_leader = wall_us();
    while (unpublished() > 0 && wall_us() - t0 < 300000000)
        usleep(5000);
    t_done = wall_us();
    drain_rate = (double)rows / ((double)(t_done - t_leader) / 1e6);
    printf("  drain: %ld rows in %.2f s after the first was marked: %.0f events/s "
           "(target >= 20000: %s)\n",
           rows, (double)(t_done - t_leader) / 1e6, drain_rate,
           drain_rate >= 20000 ? "MET" : "MISSED");

    /* 2. latency at a steady rate: a first pass warms the path up, the second counts. The
     * relay is started afresh for each pass, so its own measurement (created_at to
     * delivery report, logged when it stops) covers just that pass. */
    proc_stop(relay, SIGTERM, 20000);
    for (int pass = 0; pass < 2; pass++) {
        rd_kafka_conf_t *conf = rd_kafka_conf_new();
        rd_kafka_topic_partition_list_t *asg = rd_kafka_topic_partition_list_new(6);
        rd_kafka_t *consumer;
        struct writer w[2];
        int64_t *span[SPANS], seen = 0, marked, end;
        size_t n, cap = (size_t)(rate * (pass ? seconds : warmup)) + 1000;

        rd_kafka_conf_set(conf, "bootstrap.servers", stack_env("KAFKA_BOOTSTRAP_SERVERS"), NULL, 0);
        rd_kafka_conf_set(conf, "group.id", "bench-relay-reader", NULL, 0);
        rd_kafka_conf_set(conf, "enable.auto.commit", "false", NULL, 0);
        rd_kafka_conf_set(conf, "fetch.wait.max.ms",
                          getenv("BENCH_FETCH_WAIT") ? getenv("BENCH_FETCH_WAIT") : "100", NULL, 0);
        rd_kafka_conf_set(conf, "fetch.error.backoff.ms", "1", NULL, 0);
        consumer = rd_kafka_new(RD_KAFKA_CONSUMER, conf, NULL, 0);
        for (int p = 0; p < 6; p++)
            rd_kafka_topic_partition_list_add(asg, topic, p)->offset = RD_KAFKA_OFFSET_END;
        rd_kafka_assign(consumer, asg);
        rd_kafka_topic_partition_list_destroy(asg);
        for (int i = 0; i < 20; i++) { /* let the assignment settle */
            rd_kafka_message_t *m = rd_kafka_consumer_poll(consumer, 50);
            if (m)
                rd_kafka_message_destroy(m);
        }
        snprintf(log, sizeof(log), "/tmp/%s.pass%d.log", db.name, pass);
        unlink(log);
        relay = proc_start(relay_bin, env, log);
        if (!log_wait(log, "leader, publishing", 30000)) {
            fprintf(stderr, "bench_relay: the relay did not start; see %s\n", log);
            return 1;
        }
        /* Its producer's start (metadata, idempotence id) is not what is measured. */
        exec_or_die(c, "BEGIN");
        append(c, 2000000000LL + pass, "warm-up");
        commit_or_die(c);
        while (unpublished() > 0)
            usleep(1000);
        for (int i = 0; i < 2; i++) {
            w[i] = (struct writer){.id = i,
                                   .seq_base = (int64_t)(pass * 2 + i + 1) * 100000000,
                                   .rate = rate / 2,
                                   .seconds = pass ? seconds : warmup,
                                   .cap = (int64_t)cap,
                                   .rows = calloc(cap, sizeof(struct row_times))};
            pthread_create(&w[i].t, NULL, write_steadily, &w[i]);
        }
        end = wall_us() + (int64_t)(((pass ? seconds : warmup) + 10) * 1e6);
        while (wall_us() < end) {
            rd_kafka_message_t *m = rd_kafka_consumer_poll(consumer, 100);
            int64_t now = wall_us();
            if (m) {
                int k;
                long long i;
                char buf[32];
                snprintf(buf, sizeof(buf), "%.*s", m->len < 31 ? (int)m->len : 31,
                         (const char *)m->payload);
                if (!m->err && sscanf(buf, "%d:%lld", &k, &i) == 2 && k >= 0 && k < 2 && i >= 0 &&
                    i < (long long)cap && !w[k].rows[i].seen_us) {
                    w[k].rows[i].seen_us = now;
                    w[k].rows[i].produced_us = rd_kafka_message_timestamp(m, NULL) * 1000;
                    seen++;
                }
                rd_kafka_message_destroy(m);
            }
            if (w[0].done && w[1].done && seen >= w[0].written + w[1].written)
                break;
        }
        for (int i = 0; i < 2; i++)
            pthread_join(w[i].t, NULL);
        while (unpublished() > 0)
            usleep(10000);
        proc_stop(relay, SIGTERM, 20000);
        marked = read_marked(c, w, 2);
        for (int j = 0; j < SPANS; j++)
            span[j] = calloc(2 * cap, sizeof(int64_t));
        n = spans_of(w, 2, span);
        if (n && pass == 1) {
            char line[1024] = "", *at;
            FILE *lf = fopen(log, "r");
            double p50 = quantile_ms(span[SPAN_TO_MARKED], n, 0.5),
                   p99 = quantile_ms(span[SPAN_TO_MARKED], n, 0.99),
                   max = quantile_ms(span[SPAN_TO_MARKED], n, 1.0),
                   c50 = quantile_ms(span[SPAN_TO_CONSUMED], n, 0.5),
                   c99 = quantile_ms(span[SPAN_TO_CONSUMED], n, 0.99),
                   cmax = quantile_ms(span[SPAN_TO_CONSUMED], n, 1.0);
            printf("  latency at %d events/s for %.0f s (%zu of %" PRId64
                   " events marked published and seen by a consumer):\n"
                   "    commit -> kafka ack (the relay marks a row published after its ack):"
                   " p50 %.2f ms, p99 %.2f ms, max %.2f ms (target p99 <= 10 ms: %s)\n"
                   "    commit -> consumed (adds the consumer's fetch): p50 %.2f ms, p99 %.2f ms,"
                   " max %.2f ms\n",
                   rate, seconds, n, w[0].written + w[1].written, p50, p99, max,
                   p99 <= 10 ? "MET" : "MISSED", c50, c99, cmax);
            if (marked != w[0].written + w[1].written)
                printf("    (%" PRId64 " rows found marked, of %" PRId64 ")\n", marked,
                       w[0].written + w[1].written);
            printf("    where it goes (p50 / p99 / max ms): the COMMIT itself %.2f / %.2f / %.2f;"
                   " commit -> produced %.1f / %.1f / %.1f; produced -> consumed %.1f / %.1f / "
                   "%.1f\n",
                   quantile_ms(span[SPAN_COMMIT], n, 0.5), quantile_ms(span[SPAN_COMMIT], n, 0.99),
                   quantile_ms(span[SPAN_COMMIT], n, 1.0),
                   quantile_ms(span[SPAN_TO_PRODUCED], n, 0.5),
                   quantile_ms(span[SPAN_TO_PRODUCED], n, 0.99),
                   quantile_ms(span[SPAN_TO_PRODUCED], n, 1.0),
                   quantile_ms(span[SPAN_PRODUCED_TO_CONSUMED], n, 0.5),
                   quantile_ms(span[SPAN_PRODUCED_TO_CONSUMED], n, 0.99),
                   quantile_ms(span[SPAN_PRODUCED_TO_CONSUMED], n, 1.0));
            while (lf && fgets(line, sizeof(line), lf))
                if ((at = strstr(line, " to kafka ack")))
                    printf("    inside the relay (commit time -> delivery report): %.*s\n",
                           (int)strcspn(at + 13, "\""), at + 13);
            if (lf)
                fclose(lf);
            printf("{\"bench\":\"relay\",\"drain_events_per_s\":%.0f,\"rate\":%d,"
                   "\"p50_ms\":%.2f,\"p99_ms\":%.2f,\"max_ms\":%.2f,\"consumed_p50_ms\":%.2f,"
                   "\"consumed_p99_ms\":%.2f,\"commit_p99_ms\":%.2f}\n",
                   drain_rate, rate, p50, p99, max, c50, c99,
                   quantile_ms(span[SPAN_COMMIT], n, 0.99));
        }
        for (int j = 0; j < SPANS; j++)
            free(span[j]);
        for (int i = 0; i < 2; i++)
            free(w[i].rows);
        rd_kafka_consumer_close(consumer);
        rd_kafka_destroy(consumer);
    }
    PQfinish(c);
    testdb_drop(&db);
    return 0;
}
