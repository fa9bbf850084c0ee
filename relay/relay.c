#include "relay.h"
#include "relay_http.h"
#include "relay_ring.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>
#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>

#include "saga/clock.h"
#include "saga/fault.h"
#include "saga/kafka.h"
#include "saga/http.h"
#include "saga/log.h"
#include "saga/metrics.h"
#include "saga/otel.h"
#include "saga/outbox.h"
#include "saga/pg.h"
#include "saga/topology.h"
#include "saga/trace.h"

saga_err_t relay_settings_load(struct relay_settings *s, char *errstr, size_t errstr_size)
{
    long n;
    saga_err_t err;

    if ((err = saga_env_long("RELAY_BATCH_SIZE", 500, 1, 10000, &n, errstr, errstr_size)))
        return err;
    s->batch_size = (int)n;
    if ((err = saga_env_long("RELAY_LOG_DELIVERIES", 0, 0, 1, &n, errstr, errstr_size)))
        return err;
    s->log_deliveries = (int)n;
    if ((err = saga_env_duration_ms("RELAY_POLL_INTERVAL", 1000, 10, 3600000, &s->poll_ms, errstr,
                                    errstr_size)) ||
        (err = saga_env_duration_ms("RELAY_STANDBY_RETRY", 1000, 10, 60000, &s->standby_retry_ms,
                                    errstr, errstr_size)) ||
        (err = saga_env_duration_ms("RELAY_RETENTION", 3600000, 0, 30LL * 86400000,
                                    &s->retention_ms, errstr, errstr_size)) ||
        (err = saga_env_duration_ms("RELAY_PRUNE_INTERVAL", 60000, 100, 86400000,
                                    &s->prune_every_ms, errstr, errstr_size)))
        return err;
    return SAGA_OK;
}

void relay_settings_print(const struct relay_settings *s, FILE *out)
{
    fprintf(out, "RELAY_BATCH_SIZE=%d\n", s->batch_size);
    fprintf(out, "RELAY_POLL_INTERVAL=%" PRId64 "ms\n", s->poll_ms);
    fprintf(out, "RELAY_STANDBY_RETRY=%" PRId64 "ms\n", s->standby_retry_ms);
    fprintf(out, "RELAY_RETENTION=%" PRId64 "ms\n", s->retention_ms);
    fprintf(out, "RELAY_PRUNE_INTERVAL=%" PRId64 "ms\n", s->prune_every_ms);
    fprintf(out, "RELAY_LOG_DELIVERIES=%d\n", s->log_deliveries);
}

/* --- one source ------------------------------------------------------------- */

/* Topic handles kept per producer; a source publishes to one or two topics. */
#define RELAY_TOPIC_HANDLES 16

/*
 * How long acknowledged rows wait for their mark to ride in the next read (at most the poll
 * interval). Under load the next NOTIFY comes well within it, and the mark costs no
 * statement and no transaction of its own: one per wake-up instead of two (11.2 of the
 * saga's ~43 transactions per order at 50 orders/s were the relay's, half of them marks).
 * A quiet source marks on its own after this. A mark that waits costs nothing but a row
 * published again should the relay die meanwhile (consumers drop duplicates).
 */
#define RELAY_MARK_WAIT_MS 250

/* Commit -> acknowledgement latency, in 100 us buckets up to 2 s (the last one is "more"). */
#define LAT_BUCKETS 20001

struct source {
    const struct relay_source *src;
    const struct relay_settings *set;
    const struct saga_config *cfg;
    atomic_int *stop; /* shared by every source thread and the signal handler */
    pthread_t thread;
    rd_kafka_t *rk;
    /* Topic handles of rk, made with rd_kafka_topic_new so their metadata is asked for at
     * once; see topic_handle. */
    rd_kafka_topic_t *topics[RELAY_TOPIC_HANDLES];
    int ntopics;
    PGconn *conn;
    int leader;
    int waiting_for_table;
    int64_t last_prune_ms;
    int64_t published;
    struct relay_ring ring; /* the rows in flight */
    int64_t *lat;           /* LAT_BUCKETS counts */
    int64_t lat_n;
    int commit_ts; /* the server tracks commit timestamps: latency from the commit */
    /* for /metrics (read by the HTTP threads) */
    _Atomic int m_leader;
    _Atomic long long m_published, m_backlog, m_oldest_ms, m_delivery_failures, m_refused;
    char *owned;           /* the source's topics as a PostgreSQL text[] literal */
    int64_t refused_after; /* rows up to this id were looked at for a topic not owned */
    _Atomic int m_backlog_known;
    _Atomic int m_connected;
    int64_t last_backlog_ms;
    struct saga_hist m_latency;
    int fatal;
    char fatal_reason[512];
    /* librdkafka writes a byte to reports[1] when its main queue (delivery reports) turns
     * non-empty: the source waits for acknowledgements and NOTIFYs with one poll(). */
    int reports[2];
};

/* Set by the source thread whose producer failed for good, read by all of them. */
static atomic_int fatal_seen;

static int64_t now_ms(void)
{
    return saga_mono_ms();
}

static int stopping(const struct source *s)
{
    return atomic_load(s->stop) || atomic_load(&fatal_seen);
}

/* Tells /readyz and /metrics whether this source is connected and leads. */
static void share_state(struct source *s)
{
    s->m_leader = s->leader;
    s->m_connected = s->conn != NULL;
}

/* Waits ms, serving the producer's callbacks meanwhile: a fatal error (reported only
 * through rd_kafka_poll) ends a standby or a backing-off source at once. */
static void nap(struct source *s, int64_t ms)
{
    int64_t end = now_ms() + ms;
    share_state(s);
    while (!stopping(s) && now_ms() < end) {
        int64_t left = end - now_ms();
        rd_kafka_poll(s->rk, (int)(left < 50 ? left : 50));
    }
}

static int64_t wall_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000 + ts.tv_nsec / 1000;
}

/*
 * RELAY_LOG_DELIVERIES=1: one line per delivery report, naming the row's event id, so
 * what is on the wire can be counted against what the relay was told (the chaos suite's
 * cluster scenarios do). A report of a retired ticket (a row given up and sent again)
 * is logged too: its copy is on the wire all the same. A failure that may have been
 * written (possibly persisted) says so: that copy may or may not be on the wire.
 */
static void log_delivery(const struct source *s, const rd_kafka_message_t *m)
{
    rd_kafka_headers_t *h = NULL;
    const void *id = NULL;
    size_t id_len = 0;

    if (rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR)
        rd_kafka_header_get_last(h, "event_id", &id, &id_len);
    if (!m->err)
        saga_log(SAGA_LOG_INFO, NULL,
                 "source %s: delivered event %.*s to %s [%d] at offset %" PRId64, s->src->name,
                 (int)id_len, id ? (const char *)id : "", rd_kafka_topic_name(m->rkt),
                 (int)m->partition, (int64_t)m->offset);
    else
        saga_log(SAGA_LOG_INFO, NULL, "source %s: not delivered event %.*s to %s [%d]: %s (%s)",
                 s->src->name, (int)id_len, id ? (const char *)id : "", rd_kafka_topic_name(m->rkt),
                 (int)m->partition, rd_kafka_err2str(m->err),
                 rd_kafka_message_status(m) == RD_KAFKA_MSG_STATUS_POSSIBLY_PERSISTED
                     ? "possibly persisted"
                     : "not persisted");
}

static void dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    struct source *s = opaque;
    struct relay_slot *st = relay_ring_report(&s->ring, m->_private, m->err, wall_us());
    (void)rk;
    if (s->set->log_deliveries)
        log_delivery(s, m);
    if (st) {
        st->partition = m->partition;
        st->offset = m->offset;
    }
}

/*
 * The publish span of a row Kafka acknowledged (docs/OBSERVABILITY.md, "Traces"): a child
 * of the span that wrote the row (the row's traceparent), from the row's commit (or
 * insert) to Kafka's acknowledgement, so the time in the outbox shows. Its own span id is
 * new: the message's traceparent stays the writer's (the relay never rewrites a row), so
 * the consumer's process span is this span's sibling under the writer's span.
 */
static void publish_span(struct source *s, const struct relay_slot *st)
{
    struct saga_span sp;
    char self[56], part[16];
    if (!st->traceparent[0])
        return;
    saga_otel_child(st->traceparent, self);
    if (!saga_span_begin_at(&sp, "outbox publish", SAGA_SPAN_PRODUCER, self, st->traceparent,
                            (st->created_us > 0 ? st->created_us : st->acked_us) * 1000))
        return;
    saga_span_str(&sp, "saga.order_id", st->key);
    saga_span_str(&sp, "messaging.system", "kafka");
    saga_span_str(&sp, "messaging.operation.type", "send");
    saga_span_str(&sp, "messaging.operation.name", "publish");
    saga_span_str(&sp, "messaging.destination.name", st->topic);
    saga_span_str(&sp, "messaging.kafka.message.key", st->key);
    snprintf(part, sizeof(part), "%" PRId32, st->partition);
    saga_span_str(&sp, "messaging.destination.partition.id", part);
    saga_span_int(&sp, "messaging.kafka.offset", st->offset);
    if (st->event_id[0])
        saga_span_str(&sp, "messaging.message.id", st->event_id);
    saga_span_str(&sp, "saga.outbox.source", s->src->name);
    saga_span_int(&sp, "saga.outbox.id", st->id);
    saga_span_int(&sp, "saga.outbox.dwell_us", st->acked_us - st->created_us);
    saga_span_end_at(&sp, st->acked_us * 1000);
}

static void lat_record(struct source *s, const struct relay_slot *st)
{
    int64_t d = st->acked_us - st->created_us, b;
    if (!s->lat || st->created_us <= 0)
        return;
    b = d < 0 ? 0 : d / 100;
    s->lat[b < LAT_BUCKETS - 1 ? b : LAT_BUCKETS - 1]++;
    s->lat_n++;
    saga_hist_observe(&s->m_latency, (double)(d < 0 ? 0 : d) / 1e6);
}

static double lat_percentile(const struct source *s, double q)
{
    int64_t want = (int64_t)((double)s->lat_n * q), seen = 0;
    if (want >= s->lat_n)
        want = s->lat_n - 1;
    for (int b = 0; b < LAT_BUCKETS; b++) {
        seen += s->lat[b];
        if (seen > want)
            return (double)(b + 1) / 10.0; /* upper edge, ms */
    }
    return 0;
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    struct source *s = opaque;
    char fatal[512];

    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        rd_kafka_fatal_error(rk, fatal, sizeof(fatal));
        snprintf(s->fatal_reason, sizeof(s->fatal_reason), "%s", fatal);
        s->fatal = 1;
        atomic_store(&fatal_seen, 1);
        saga_log(SAGA_LOG_ERROR, NULL, "source %s: fatal kafka error: %s", s->src->name, fatal);
        return;
    }
    /* Brokers down and the like: librdkafka retries by itself; say so once in a while. */
    saga_log(SAGA_LOG_WARN, NULL, "source %s: kafka: %s", s->src->name, reason);
}

static rd_kafka_t *make_producer(struct source *s, char *errstr, size_t errstr_size)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_dup(s->cfg->kafka_conf);
    static const char *const defaults[][2] = {
        {"enable.idempotence", "true"}, /* acks=all, ordered retries, no duplicates from retries */
        {"partitioner", "murmur2_random"}, /* the Java client's partitioning */
        /* Send at once: a message waits only while the connection has requests in
         * flight, and those fill the next batch. With 1 ms, commit -> ack p50 at
         * 1,000 rows/s was 2.2-2.5 ms instead of 1.2 ms (scripts/bench relay). */
        {"linger.ms", "0"},
        {"socket.nagle.disable", "true"}, /* as the Java client and the broker do */
        /* Never give a message up: a message that timed out while later ones of the same
         * partition got through would break the order per key. Kafka down means waiting. */
        {"message.timeout.ms", "0"},
        /* Any other failure that would leave a gap is fatal: the relay exits with the
         * cause and a restart resumes from the outbox, in order. */
        {"enable.gapless.guarantee", "true"},
    };
    char client_id[128];
    rd_kafka_t *rk;

    /* Our defaults, unless KAFKA_* said otherwise. */
    for (size_t i = 0; i < sizeof(defaults) / sizeof(defaults[0]); i++) {
        if (!saga_kafka_env_sets(defaults[i][0]))
            rd_kafka_conf_set(conf, defaults[i][0], defaults[i][1], NULL, 0);
    }
    snprintf(client_id, sizeof(client_id), "outbox-relay-%s", s->src->name);
    rd_kafka_conf_set(conf, "client.id", client_id, NULL, 0);
    rd_kafka_conf_set_dr_msg_cb(conf, dr_cb);
    rd_kafka_conf_set_error_cb(conf, error_cb);
    rd_kafka_conf_set_opaque(conf, s);
    saga_kafka_conf_set_logger(conf, 0);
    rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, errstr_size);
    if (!rk) {
        rd_kafka_conf_destroy(conf);
        return NULL;
    }
    if (s->reports[1] >= 0) {
        rd_kafka_queue_t *q = rd_kafka_queue_get_main(rk);
        rd_kafka_queue_io_event_enable(q, s->reports[1], "r", 1);
        rd_kafka_queue_destroy(q);
    }
    return rk;
}

/*
 * The handle of topic in s->rk, made on first use. A message produced by topic name to a
 * topic the producer has not seen waits for librdkafka's once-a-second scan of unknown
 * topics before its metadata is asked for (up to 1 s; measured 0.5-1 s on the first row of
 * every topic after a start). rd_kafka_topic_new asks at once. NULL when the table is full:
 * then the message goes by name.
 */
static rd_kafka_topic_t *topic_handle(struct source *s, const char *topic)
{
    rd_kafka_topic_t *rkt;
    for (int i = 0; i < s->ntopics; i++)
        if (strcmp(rd_kafka_topic_name(s->topics[i]), topic) == 0)
            return s->topics[i];
    if (s->ntopics == RELAY_TOPIC_HANDLES || !(rkt = rd_kafka_topic_new(s->rk, topic, NULL)))
        return NULL;
    s->topics[s->ntopics++] = rkt;
    return rkt;
}

/* Before s->rk is destroyed. */
static void topics_release(struct source *s)
{
    for (int i = 0; i < s->ntopics; i++)
        rd_kafka_topic_destroy(s->topics[i]);
    s->ntopics = 0;
}

/* A fresh producer learns the metadata of the source's own topic before its first row. */
static void topics_prepare(struct source *s)
{
    for (int i = 0; i < s->src->ntopics; i++)
        topic_handle(s, s->src->topics[i]);
}

static void drop_connection(struct source *s, const char *why)
{
    if (s->conn) {
        saga_log(SAGA_LOG_WARN, NULL, "source %s: %s; reconnecting%s", s->src->name, why,
                 s->leader ? " (leadership given up)" : "");
        PQfinish(s->conn);
    }
    s->conn = NULL;
    s->leader = 0;
}

/* Connects and takes the leader lock if free. Returns 1 when this relay leads. */
static int ensure_leader(struct source *s)
{
    PGresult *r;
    int got;

    if (!s->conn) {
        char err[512];
        saga_err_t e;
        s->conn = saga_pg_connect(s->src->url, &e, err, sizeof(err));
        if (!s->conn) {
            saga_log(e == SAGA_ERR_PERMANENT ? SAGA_LOG_ERROR : SAGA_LOG_WARN, NULL,
                     "source %s: cannot connect: %s; retrying", s->src->name, err);
            return 0;
        }
    }
    /* Session-level: held until this connection ends, however it ends. */
    r = saga_pg_query(s->conn, "SELECT pg_try_advisory_lock(7170002)");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        char err[512];
        saga_pg_errstr(s->conn, err, sizeof(err));
        PQclear(r);
        drop_connection(s, err);
        return 0;
    }
    got = strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    if (!got)
        return 0;
    /* Latency is measured from each row's commit when the server records commit times
     * (track_commit_timestamp), otherwise from its insert (created_at). */
    r = saga_pg_query(s->conn, "SHOW track_commit_timestamp");
    s->commit_ts = PQresultStatus(r) == PGRES_TUPLES_OK && strcmp(PQgetvalue(r, 0, 0), "on") == 0;
    PQclear(r);
    /* The relay's own writes (marks, pruning) may be lost in a crash without harm: the
     * rows are published again and consumers deduplicate. So they need not wait for
     * the WAL flush. The services' outbox inserts keep synchronous commit. */
    r = saga_pg_query(s->conn, "SET synchronous_commit = off; LISTEN " SAGA_OUTBOX_CHANNEL);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        PQclear(r);
        drop_connection(s, "LISTEN failed");
        return 0;
    }
    PQclear(r);
    s->leader = 1;
    saga_log(SAGA_LOG_INFO, NULL, "source %s: leader, publishing", s->src->name);
    return 1;
}

static void measure_backlog(struct source *s);

/* Waits up to ms for a NOTIFY; returns 1 when one came, 0 when the time passed (or the
 * relay stops), -1 if the connection broke. While it waits, however long, it serves the
 * producer's callbacks (a fatal error ends the relay at once), and the leader keeps its
 * backlog gauges current. */
static int wait_for_notify(struct source *s, int64_t ms)
{
    int64_t end = now_ms() + ms;
    int sock = PQsocket(s->conn);
    PGnotify *pending;
    int had = 0;

    share_state(s);

    /* libpq may already have read notifications while running the last round's
     * statements; they wait in its queue, not on the socket. */
    if (!PQconsumeInput(s->conn))
        return -1;
    while ((pending = PQnotifies(s->conn))) {
        had = 1;
        PQfreemem(pending);
    }
    if (had)
        return 1;
    while (!stopping(s) && now_ms() < end) {
        struct pollfd pfd = {sock, POLLIN, 0};
        int64_t left = end - now_ms();
        int rc = poll(&pfd, 1, (int)(left < 200 ? left : 200));
        PGnotify *n;
        int woke = 0;

        if (rc < 0 && errno != EINTR)
            return -1;
        rd_kafka_poll(s->rk, 0);
        if (s->leader && now_ms() - s->last_backlog_ms >= 2000) {
            /* A NOTIFY arriving meanwhile waits in libpq's queue, looked at below. */
            measure_backlog(s);
            if (PQstatus(s->conn) != CONNECTION_OK)
                return -1;
        } else if (rc <= 0) {
            continue;
        }
        if (!PQconsumeInput(s->conn))
            return -1;
        while ((n = PQnotifies(s->conn))) {
            woke = 1;
            PQfreemem(n);
        }
        if (woke)
            return 1;
    }
    return 0;
}

static void prune(struct source *s)
{
    char ms[32];
    const char *params[1] = {ms};
    PGresult *r;

    if (now_ms() - s->last_prune_ms < s->set->prune_every_ms)
        return;
    s->last_prune_ms = now_ms();
    snprintf(ms, sizeof(ms), "%" PRId64, s->set->retention_ms);
    /* In slices, so a large backlog of old rows never holds locks for long. */
    for (int i = 0; i < 100 && !stopping(s); i++) {
        int n;
        r = saga_pg_exec(s->conn,
                         "DELETE FROM outbox WHERE id IN (SELECT id FROM outbox"
                         " WHERE published_at < clock_timestamp() - $1::bigint * interval '1 ms'"
                         " ORDER BY published_at LIMIT 5000)",
                         1, params, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            char err[512];
            saga_pg_errstr(s->conn, err, sizeof(err));
            saga_log(SAGA_LOG_WARN, NULL, "source %s: pruning: %s", s->src->name, err);
            PQclear(r);
            return;
        }
        n = atoi(PQcmdTuples(r));
        PQclear(r);
        if (n > 0)
            saga_log(SAGA_LOG_DEBUG, NULL, "source %s: pruned %d published rows", s->src->name, n);
        if (n < 5000)
            return;
    }
}

static int64_t be64(const char *p)
{
    const unsigned char *u = (const unsigned char *)p;
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = v << 8 | u[i];
    return (int64_t)v;
}

static rd_kafka_headers_t *headers_from_json(const char *text, int len)
{
    json_t *j = json_loadb(text, (size_t)len, 0, NULL), *v;
    rd_kafka_headers_t *h = rd_kafka_headers_new(8);
    const char *k;

    json_object_foreach(j, k, v)
    {
        if (json_is_string(v))
            rd_kafka_header_add(h, k, -1, json_string_value(v), (ssize_t)json_string_length(v));
    }
    json_decref(j);
    return h;
}

/*
 * Publishing is pipelined: rows are read and produced while earlier ones still
 * wait for Kafka's acknowledgement, and the delivered prefix of what is in flight
 * is marked as acknowledgements arrive. Each message carries its row's ticket in the
 * ring (relay_ring.h), so a report of a row given up, or of a retired producer,
 * marks nothing; rows in flight are excluded from the next read by id. After a failed delivery
 * nothing more is sent until every report is in; the delivered prefix is marked and the rest is
 * read again, after.
 */

static int ring_count(const struct source *s)
{
    return relay_ring_count(&s->ring);
}

static struct relay_slot *ring_at(struct source *s, int i)
{
    return relay_ring_at(&s->ring, i);
}

/* Serves delivery reports, waiting up to ms for the first. */
static void serve_reports(struct source *s, int ms)
{
    rd_kafka_poll(s->rk, ms);
}

/*
 * Waits up to ms for a delivery report or for anything on the database connection (a
 * NOTIFY), whichever comes first, and serves the reports. Before, the source polled
 * librdkafka every 1 ms while acknowledgements were due: with acks slow (a saturated
 * machine) that loop cost the relay several ms of CPU per order.
 */
static void wait_for_reports(struct source *s, int ms)
{
    struct pollfd pfd[2] = {{s->reports[0], POLLIN, 0}, {PQsocket(s->conn), POLLIN, 0}};
    char buf[64];

    if (s->reports[0] < 0) {
        serve_reports(s, 1);
        return;
    }
    /* A report queued before the pipe was last drained is served here without waiting;
     * one queued later writes to the pipe. */
    while (read(s->reports[0], buf, sizeof(buf)) > 0)
        ;
    if (rd_kafka_poll(s->rk, 0) > 0 || !relay_ring_pending(&s->ring))
        return;
    if (poll(pfd, pfd[1].fd >= 0 ? 2 : 1, ms) > 0)
        rd_kafka_poll(s->rk, 0);
}

/* Waits up to ms (-1: until stopping) for every report of what is in flight; 1 when all
 * are in. Messages never time out, so with Kafka away this waits for Kafka. */
static int drain_reports(struct source *s, int64_t ms)
{
    int64_t until = now_ms() + ms;
    for (;;) {
        if (!relay_ring_pending(&s->ring))
            return 1;
        if ((ms >= 0 && now_ms() >= until) || (ms < 0 && stopping(s)))
            return 0;
        serve_reports(s, 100);
    }
}

/* Gives up what is in flight: a fresh producer, so nothing queued under the old one
 * reaches Kafka later. (Sent again by whichever relay leads; consumers skip duplicates.) */
static void abandon_in_flight(struct source *s)
{
    char err[512];
    rd_kafka_t *fresh;
    if (drain_reports(s, 2000))
        return;
    if (!(fresh = make_producer(s, err, sizeof(err)))) {
        saga_log(SAGA_LOG_WARN, NULL, "source %s: kafka producer: %s", s->src->name, err);
        /* Keep the old one: its messages arrive once Kafka is back. Their reports come
         * late, after the ring was given up and its slots reused: their tickets are
         * retired, so they mark nothing (test_relay_ring). */
        return;
    }
    saga_log(SAGA_LOG_INFO, NULL, "source %s: %d rows in flight given up; sent again later",
             s->src->name, ring_count(s));
    topics_release(s);
    rd_kafka_destroy(s->rk);
    s->rk = fresh;
    topics_prepare(s);
}

/* "{id,...}" of the ring's rows [from, to); NULL when out of memory. */
static char *ring_ids(struct source *s, int from, int to)
{
    struct saga_text ids = {0};
    saga_pg_array_begin(&ids);
    for (int i = from; i < to; i++)
        saga_pg_array_int(&ids, ring_at(s, i)->id);
    saga_pg_array_end(&ids);
    return ids.data;
}

/* How many rows at the ring's head Kafka acknowledged (they wait for their mark); sets
 * *failed if the row after them failed. */
static int delivered_prefix(struct source *s, int *failed)
{
    *failed = 0;
    if (ring_count(s) > 0 && saga_fault_armed("relay.kafka_fatal")) {
        /* The test hook raises a real fatal error in the idempotent producer (as a fenced
         * epoch would): the relay must stop with the cause, rows left unmarked. */
        rd_kafka_test_fatal_error(s->rk, RD_KAFKA_RESP_ERR_OUT_OF_ORDER_SEQUENCE_NUMBER,
                                  "injected by SAGA_FAULT=relay.kafka_fatal");
        serve_reports(s, 100);
    }
    return relay_ring_delivered(&s->ring, failed);
}

/* Before a statement marks n rows. */
static void before_marking(struct source *s, int n)
{
    if (n > 0 && saga_fault_armed("relay.after_ack")) {
        /* The test hook wants the moment when everything sent is acknowledged and
         * nothing is marked yet. */
        drain_reports(s, -1);
        saga_fault_point("relay.after_ack");
    }
}

/* After the statement that marked the n rows at the ring's head. */
static void marked(struct source *s, int n)
{
    for (int i = 0; i < n; i++) {
        lat_record(s, ring_at(s, i));
        if (saga_otel_enabled())
            publish_span(s, ring_at(s, i));
    }
    relay_ring_pop(&s->ring, n);
    s->published += n;
    s->m_published += n;
}

/* Marks the n delivered rows at the ring's head in a statement of their own; -1 on a
 * database failure (the connection is dropped). */
static int mark_now(struct source *s, int n)
{
    char *ids;
    PGresult *r;
    const char *p[1];

    if (n == 0)
        return 0;
    before_marking(s, n);
    if (!(ids = ring_ids(s, 0, n)))
        return -1;
    p[0] = ids;
    r = saga_pg_exec(s->conn,
                     "UPDATE outbox SET published_at = clock_timestamp()"
                     " WHERE id = ANY($1::bigint[])",
                     1, p, NULL, NULL, 0);
    free(ids);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        char err[512];
        saga_pg_errstr(s->conn, err, sizeof(err));
        PQclear(r);
        drop_connection(s, err);
        return -1;
    }
    PQclear(r);
    marked(s, n);
    return 0;
}

/* Produces one row (copied) by handle, or by name when there is none. */
static rd_kafka_resp_err_t produce(struct source *s, rd_kafka_topic_t *rkt, const char *topic,
                                   char *key, size_t key_len, char *value, size_t value_len,
                                   rd_kafka_headers_t *h, void *opaque)
{
    if (rkt)
        return rd_kafka_producev(s->rk, RD_KAFKA_V_RKT(rkt), RD_KAFKA_V_KEY(key, key_len),
                                 RD_KAFKA_V_VALUE(value, value_len),
                                 RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(h),
                                 RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
    return rd_kafka_producev(s->rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, key_len),
                             RD_KAFKA_V_VALUE(value, value_len),
                             RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(h),
                             RD_KAFKA_V_OPAQUE(opaque), RD_KAFKA_V_END);
}

/* Keeps what the row's publish span needs in its slot. */
static void slot_trace(struct relay_slot *st, rd_kafka_headers_t *h, const char *topic,
                       const char *key, int key_len)
{
    const void *v;
    size_t len;
    if (rd_kafka_header_get_last(h, "traceparent", &v, &len) || len != SAGA_TRACEPARENT_LEN)
        return;
    memcpy(st->traceparent, v, len);
    st->traceparent[len] = '\0';
    snprintf(st->topic, sizeof(st->topic), "%.63s", topic);
    snprintf(st->key, sizeof(st->key), "%.*s", key_len, key);
    st->event_id[0] = '\0';
    if (!rd_kafka_header_get_last(h, "event_id", &v, &len) && len < sizeof(st->event_id)) {
        memcpy(st->event_id, v, len);
        st->event_id[len] = '\0';
    }
}

/*
 * Marks the `marks` delivered rows at the ring's head and reads up to `room` unpublished rows
 * not in flight, in id order, in one statement (one transaction), and produces them into the
 * ring. Returns how many it read, or -1 on a database failure.
 */
static int read_and_produce(struct source *s, int room, int marks)
{
    char limit[16], *ids, *mark_ids;
    const char *params[4];
    PGresult *r;
    int n;

    before_marking(s, marks);
    ids = ring_ids(s, 0, ring_count(s));
    mark_ids = ring_ids(s, 0, marks);
    if (!ids || !mark_ids) {
        free(ids);
        free(mark_ids);
        return -1;
    }
    snprintf(limit, sizeof(limit), "%d", room);
    params[0] = limit;
    params[1] = ids; /* in flight or marked right now: not read again */
    params[2] = s->owned;
    params[3] = mark_ids;
    /* Only rows for the source's own topics: any other is refused (find_refused), and
     * never holds up the rows behind it. The UPDATE runs whether or not anything reads
     * its result; the SELECT sees the rows as they were before it (one snapshot), so the
     * marked ones are kept out by $2. */
    r = saga_pg_exec(s->conn,
                     s->commit_ts
                         ? "WITH marked AS (UPDATE outbox SET published_at = clock_timestamp()"
                           " WHERE id = ANY($4::bigint[]))"
                           " SELECT id, topic, msg_key, payload, headers::text, (extract(epoch FROM"
                           " coalesce(pg_xact_commit_timestamp(xmin), created_at)) * 1000000)"
                           "::bigint FROM outbox"
                           " WHERE published_at IS NULL AND NOT (id = ANY($2::bigint[]))"
                           " AND topic = ANY($3::text[])"
                           " ORDER BY id LIMIT $1::int"
                         : "WITH marked AS (UPDATE outbox SET published_at = clock_timestamp()"
                           " WHERE id = ANY($4::bigint[]))"
                           " SELECT id, topic, msg_key, payload, headers::text,"
                           " (extract(epoch FROM created_at) * 1000000)::bigint FROM outbox"
                           " WHERE published_at IS NULL AND NOT (id = ANY($2::bigint[]))"
                           " AND topic = ANY($3::text[])"
                           " ORDER BY id LIMIT $1::int",
                     4, params, NULL, NULL, 1 /* binary results */);
    free(ids);
    free(mark_ids);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        int no_table = state && strcmp(state, "42P01") == 0; /* state lives in r */
        char err[512];
        saga_pg_errstr(s->conn, err, sizeof(err));
        PQclear(r);
        if (no_table && PQstatus(s->conn) == CONNECTION_OK) {
            /* The service has not created its outbox yet: wait for it. */
            if (!s->waiting_for_table)
                saga_log(SAGA_LOG_WARN, NULL, "source %s: no outbox table yet; waiting",
                         s->src->name);
            s->waiting_for_table = 1;
            return 0;
        }
        drop_connection(s, err);
        return -1;
    }
    s->waiting_for_table = 0;
    marked(s, marks);
    n = PQntuples(r);
    for (int i = 0; i < n; i++) {
        char topic[256];
        rd_kafka_topic_t *rkt;
        rd_kafka_headers_t *h = headers_from_json(PQgetvalue(r, i, 4), PQgetlength(r, i, 4));
        void *opaque;
        struct relay_slot *st = relay_ring_push(&s->ring, be64(PQgetvalue(r, i, 0)),
                                                be64(PQgetvalue(r, i, 5)), &opaque);
        rd_kafka_resp_err_t err;

        snprintf(topic, sizeof(topic), "%.*s", PQgetlength(r, i, 1), PQgetvalue(r, i, 1));
        st->traceparent[0] = '\0';
        if (saga_otel_enabled()) /* for the row's publish span */
            slot_trace(st, h, topic, PQgetvalue(r, i, 2), PQgetlength(r, i, 2));
        rkt = topic_handle(s, topic);
        for (;;) {
            err = produce(s, rkt, topic, PQgetvalue(r, i, 2), (size_t)PQgetlength(r, i, 2),
                          PQgetvalue(r, i, 3), (size_t)PQgetlength(r, i, 3), h, opaque);
            if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
                break;
            serve_reports(s, 50);
        }
        if (err) {
            rd_kafka_headers_destroy(h);
            st->done = -1;
            st->err = err;
            n = i + 1; /* nothing after it may overtake it; it is read again, first */
            break;
        }
    }
    PQclear(r);
    return n;
}

/* 1 if a NOTIFY is waiting (read without blocking); -1 if the connection broke. */
static int notified(struct source *s)
{
    PGnotify *n;
    int any = 0;
    if (!PQconsumeInput(s->conn))
        return -1;
    while ((n = PQnotifies(s->conn))) {
        any = 1;
        PQfreemem(n);
    }
    return any;
}

/*
 * Rows naming a topic the source does not own (a service's database login is not a licence
 * to publish as another service): each is logged and counted once per process, and stays
 * unpublished (and in the backlog gauges) until someone deletes it.
 */
static void find_refused(struct source *s)
{
    char after[24];
    const char *params[2] = {after, s->owned};
    PGresult *r;

    snprintf(after, sizeof(after), "%" PRId64, s->refused_after);
    r = saga_pg_exec(s->conn,
                     "SELECT id, topic, event_type, event_id FROM outbox"
                     " WHERE published_at IS NULL AND id > $1::bigint"
                     " AND NOT (topic = ANY($2::text[])) ORDER BY id LIMIT 100",
                     2, params, NULL, NULL, 0);
    if (PQresultStatus(r) == PGRES_TUPLES_OK) {
        for (int i = 0; i < PQntuples(r); i++) {
            s->refused_after = strtoll(PQgetvalue(r, i, 0), NULL, 10);
            s->m_refused++;
            saga_log(SAGA_LOG_ERROR, NULL,
                     "source %s: outbox row %s (%.64s, event %.64s) names topic '%.128s', which "
                     "the source does not own: refused, left unpublished",
                     s->src->name, PQgetvalue(r, i, 0), PQgetvalue(r, i, 2), PQgetvalue(r, i, 3),
                     PQgetvalue(r, i, 1));
        }
    }
    PQclear(r);
}

/* The backlog of unpublished rows and the age of the oldest, for /metrics. */
static void measure_backlog(struct source *s)
{
    PGresult *r =
        saga_pg_query(s->conn, "SELECT count(*), coalesce((extract(epoch FROM clock_timestamp() -"
                               " min(created_at)) * 1000)::bigint, 0) FROM outbox"
                               " WHERE published_at IS NULL");
    s->last_backlog_ms = now_ms();
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
        s->m_backlog = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
        s->m_oldest_ms = strtoll(PQgetvalue(r, 0, 1), NULL, 10);
        s->m_backlog_known = 1;
    } else {
        s->m_backlog_known = 0; /* no outbox table yet, or the connection broke: the loop sees */
    }
    PQclear(r);
    if (s->m_backlog_known && s->m_backlog > 0)
        find_refused(s);
}

/* The figures /readyz and /metrics show of source i (relay_http.h).
 * locality: the HTTP threads; locks: none, the m_* fields are atomics. */
static void source_view(void *arg, int i, struct relay_view *out)
{
    struct source *s = (struct source *)arg + i;
    out->name = s->src->name;
    out->leader = s->m_leader;
    out->connected = s->m_connected;
    out->backlog_known = s->m_backlog_known;
    out->backlog = s->m_backlog;
    out->oldest_ms = s->m_oldest_ms;
    out->published = s->m_published;
    out->refused = s->m_refused;
    out->delivery_failures = s->m_delivery_failures;
    out->latency = &s->m_latency;
}

static void *source_main(void *arg)
{
    struct source *s = arg;
    int64_t backoff = 100;
    int announced_standby = 0, want_read = 1;

    while (!stopping(s)) {
        int n, failed = 0, room, note, acked;
        int64_t mark_wait;
        share_state(s);
        if (s->leader && now_ms() - s->last_backlog_ms >= 2000)
            measure_backlog(s);
        if (!s->leader) {
            s->m_backlog_known = 0;
            /* Whatever was in flight under the last connection is sent again. */
            if (ring_count(s))
                abandon_in_flight(s);
            relay_ring_reset(&s->ring);
            if (!ensure_leader(s)) {
                if (s->conn && !announced_standby) {
                    saga_log(SAGA_LOG_INFO, NULL, "source %s: another relay leads; standing by",
                             s->src->name);
                    announced_standby = 1;
                }
                nap(s, s->conn ? s->set->standby_retry_ms : backoff);
                if (!s->conn)
                    backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
                continue;
            }
            announced_standby = 0;
            backoff = 100;
            want_read = 1;
        }
        serve_reports(s, 0);
        acked = delivered_prefix(s, &failed);
        if (failed) {
            if (mark_now(s, acked) != 0) {
                nap(s, backoff);
                backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
                continue;
            }
            struct relay_slot *head = ring_at(s, 0);
            int64_t id = head->id;
            rd_kafka_resp_err_t err = head->err;
            drain_reports(s, -1);
            /* Only the delivered prefix was marked: the rest is read and sent again, after. */
            s->m_delivery_failures++;
            saga_log(SAGA_LOG_WARN, NULL,
                     "source %s: %d rows not confirmed (first: id %" PRId64 ": %s); retrying",
                     s->src->name, ring_count(s), id, rd_kafka_err2str(err));
            relay_ring_reset(&s->ring);
            want_read = 1;
            nap(s, backoff);
            backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
            continue;
        }
        if ((note = notified(s)) < 0) {
            drop_connection(s, "connection lost");
            continue;
        }
        want_read |= note;
        room = s->ring.cap - ring_count(s) + acked; /* the acknowledged leave as it reads */
        if (room > s->set->batch_size)
            room = s->set->batch_size;
        if (want_read && room > 0) {
            if ((n = read_and_produce(s, room, acked)) < 0) {
                nap(s, backoff);
                backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
                continue;
            }
            backoff = 100;
            want_read = n == room; /* a full read: there may be more */
            if (n > 0)
                continue;
        }
        mark_wait = s->set->poll_ms < RELAY_MARK_WAIT_MS ? s->set->poll_ms : RELAY_MARK_WAIT_MS;
        if (relay_ring_pending(&s->ring) > 0) {
            /* Acknowledgements due; a NOTIFY is noticed next round. The acknowledged rows
             * before the first one due (a slow or absent broker holds it up, for as long as
             * it takes) wait for their mark no longer than when nothing is due. */
            int head_failed, done = relay_ring_delivered(&s->ring, &head_failed);
            if (done > 0 && !head_failed &&
                wall_us() - ring_at(s, 0)->acked_us >= mark_wait * 1000) {
                if (mark_now(s, done) != 0)
                    nap(s, backoff);
                continue;
            }
            wait_for_reports(s, 100);
            continue;
        }
        if (ring_count(s) > 0) {
            /* All acknowledged: their mark rides in the next read if a NOTIFY comes soon,
             * otherwise it goes alone. */
            int woke = wait_for_notify(s, mark_wait);
            if (woke < 0)
                drop_connection(s, "connection lost while waiting");
            else if (!woke && mark_now(s, ring_count(s)) != 0)
                nap(s, backoff);
            want_read = woke > 0;
            continue;
        }
        prune(s);
        if (wait_for_notify(s, s->set->poll_ms) < 0)
            drop_connection(s, "connection lost while waiting");
        want_read = 1; /* a NOTIFY, or the poll interval passed */
    }
    drain_reports(s, 10000); /* what is acknowledged by then is marked; the rest is sent again */
    if (s->leader) {
        int failed;
        mark_now(s, delivered_prefix(s, &failed));
    }
    rd_kafka_flush(s->rk, 10000);
    saga_log(SAGA_LOG_INFO, NULL,
             "source %s: stopped after publishing %" PRId64 " rows; %s to kafka ack"
             " p50 %.1f ms, p99 %.1f ms, max under %.1f ms",
             s->src->name, s->published, s->commit_ts ? "commit" : "insert", lat_percentile(s, 0.5),
             lat_percentile(s, 0.99), lat_percentile(s, 1.0));
    return NULL;
}

/* {"t1","t2"}: the source's topics for "$n::text[]". */
static char *owned_literal(const struct relay_source *src)
{
    struct saga_text lit = {0};
    saga_pg_array_begin(&lit);
    for (int i = 0; i < src->ntopics; i++)
        saga_pg_array_text(&lit, src->topics[i]);
    saga_pg_array_end(&lit);
    return lit.data;
}

int relay_run(const struct saga_config *cfg, const struct relay_sources *sources,
              const struct relay_settings *settings, atomic_int *stop)
{
    struct source *src = calloc((size_t)sources->count, sizeof(*src));
    struct relay_http *http = NULL;
    int rc = SAGA_EXIT_OK, started = 0;

    if (!src)
        return SAGA_EXIT_FAILURE;
    for (int i = 0; i < sources->count; i++)
        src[i].reports[0] = src[i].reports[1] = -1;
    for (int i = 0; i < sources->count; i++) {
        char err[512];
        src[i].src = &sources->src[i];
        if (!(src[i].owned = owned_literal(&sources->src[i]))) {
            rc = SAGA_EXIT_FAILURE;
            goto out;
        }
        src[i].set = settings;
        src[i].cfg = cfg;
        src[i].stop = stop;
        if (pipe(src[i].reports) != 0 || fcntl(src[i].reports[0], F_SETFL, O_NONBLOCK) != 0 ||
            fcntl(src[i].reports[1], F_SETFL, O_NONBLOCK) != 0) {
            saga_log(SAGA_LOG_ERROR, NULL, "source %s: pipe: %s", src[i].src->name,
                     strerror(errno));
            rc = SAGA_EXIT_FAILURE;
            goto out;
        }
        if (relay_ring_init(&src[i].ring,
                            settings->batch_size * 4 > 2048 ? settings->batch_size * 4 : 2048) ||
            !(src[i].lat = calloc(LAT_BUCKETS, sizeof(*src[i].lat)))) {
            rc = SAGA_EXIT_FAILURE;
            goto out;
        }
        if (!(src[i].rk = make_producer(&src[i], err, sizeof(err)))) {
            saga_log(SAGA_LOG_ERROR, NULL, "source %s: kafka producer: %s", src[i].src->name, err);
            rc = SAGA_EXIT_CONFIG;
            goto out;
        }
        topics_prepare(&src[i]);
    }
    if (!(http = relay_http_start(cfg, sources->count, source_view, src))) {
        rc = SAGA_EXIT_CONFIG;
        goto out;
    }
    for (int i = 0; i < sources->count; i++, started++) {
        if (pthread_create(&src[i].thread, NULL, source_main, &src[i]) != 0) {
            saga_log(SAGA_LOG_ERROR, NULL, "cannot start a thread for source %s", src[i].src->name);
            atomic_store(stop, 1);
            rc = SAGA_EXIT_FAILURE;
            break;
        }
    }
    for (int i = 0; i < started; i++)
        pthread_join(src[i].thread, NULL);
    for (int i = 0; i < sources->count; i++) {
        if (src[i].fatal) {
            fprintf(stderr, "outbox-relay: fatal kafka error on source %s: %s\n", src[i].src->name,
                    src[i].fatal_reason);
            rc = SAGA_EXIT_FAILURE;
        }
    }
out:
    relay_http_stop(http);
    for (int i = 0; i < sources->count; i++) {
        if (src[i].conn)
            PQfinish(src[i].conn);
        topics_release(&src[i]);
        if (src[i].rk)
            rd_kafka_destroy(src[i].rk);
        relay_ring_release(&src[i].ring);
        if (src[i].reports[0] >= 0) {
            close(src[i].reports[0]);
            close(src[i].reports[1]);
        }
        free(src[i].lat);
        free(src[i].owned);
    }
    free(src);
    return rc;
}
