#include "saga/consumer.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include <jansson.h>

#include "saga/fault.h"
#include "saga/metrics.h"
#include "saga/trace.h"
#include "saga/ids.h"
#include "saga/kafka.h"
#include "saga/log.h"
#include "saga/outbox.h"
#include "saga/pg.h"
#include "saga/registry.h"

saga_err_t saga_consumer_settings_load(struct saga_consumer_settings *s, char *errstr,
                                       size_t errstr_size)
{
    long n;
    saga_err_t err;

    if ((err = saga_env_long("CONSUMER_BATCH_SIZE", 100, 1, 10000, &n, errstr, errstr_size)))
        return err;
    s->batch_size = (int)n;
    if ((err = saga_env_long("DLQ_MAX_ATTEMPTS", 3, 1, 1000, &n, errstr, errstr_size)))
        return err;
    s->max_attempts = (int)n;
    if ((err = saga_env_duration_ms("CONSUMER_BACKOFF_MIN", 100, 1, 60000, &s->backoff_min_ms,
                                    errstr, errstr_size)) ||
        (err = saga_env_duration_ms("CONSUMER_BACKOFF_MAX", 30000, 1, 3600000, &s->backoff_max_ms,
                                    errstr, errstr_size)) ||
        (err = saga_env_duration_ms("INBOX_RETENTION", 7LL * 86400000, 60000, 365LL * 86400000,
                                    &s->inbox_retention_ms, errstr, errstr_size)) ||
        (err = saga_env_duration_ms("INBOX_PRUNE_INTERVAL", 60000, 100, 86400000,
                                    &s->inbox_prune_every_ms, errstr, errstr_size)))
        return err;
    if (s->backoff_max_ms < s->backoff_min_ms)
        return saga_errf(SAGA_ERR_CONFIG, errstr, errstr_size,
                         "CONSUMER_BACKOFF_MAX is smaller than CONSUMER_BACKOFF_MIN");
    return SAGA_OK;
}

/* --- the handler's side ----------------------------------------------------- */

saga_err_t saga_tx_emit(struct saga_tx *tx, const struct saga_event *ev)
{
    struct saga_event copy;
    saga_err_t err;

    /* An event that carries its cause's trace context is emitted from this
     * handler's span instead: the next hop becomes its child. */
    if (tx->span[0] && ev->meta.traceparent && tx->cause_traceparent &&
        strcmp(ev->meta.traceparent, tx->cause_traceparent) == 0) {
        copy = *ev;
        copy.meta.traceparent = tx->span;
        ev = &copy;
    }
    err = saga_outbox_batch_add_event(tx->outbox, tx->serde, ev, tx->scratch, tx->errstr,
                                      sizeof(tx->errstr));
    if (!err) {
        tx->emitted++;
        if ((unsigned)ev->type < SAGA_EV_COUNT)
            tx->emitted_by_type[ev->type]++;
    }
    return err;
}

saga_handle_result_t saga_tx_pg_failure(struct saga_tx *tx, const PGresult *res)
{
    saga_pg_errstr(tx->conn, tx->errstr, sizeof(tx->errstr));
    return saga_pg_classify(tx->conn, res) == SAGA_ERR_TRANSIENT ? SAGA_HANDLE_TRANSIENT
                                                                 : SAGA_HANDLE_INVALID;
}

/* --- state ------------------------------------------------------------------- */

struct msg {
    rd_kafka_message_t *rkm;
    struct saga_event ev;
    saga_decode_err_t derr;
    char derrstr[256];
    int attempts;
    int64_t first_failed; /* wall clock ms, 0 until it first fails */
};

/* Outcomes of consumed events, for saga_events_consumed_total. */
enum {
    OUT_HANDLED,
    OUT_DUPLICATE,
    OUT_DEFERRED,
    OUT_RELEASED,
    OUT_SKIPPED,
    OUT_EMITTED,
    OUT_COUNT
};
static const char *const out_names[OUT_COUNT] = {"handled",  "duplicate", "deferred",
                                                 "released", "skipped",   "emitted"};

struct saga_consumer {
    struct saga_consumer_conf conf;
    struct saga_consumer_settings set;
    rd_kafka_t *rk;
    rd_kafka_t *dlq;
    struct saga_serde *serde;
    struct saga_registry *registry;
    PGconn *conn;
    struct saga_buf scratch;
    struct saga_outbox_batch outbox;
    struct saga_consumer_stats stats; /* under mu */
    /* Per event type, by outcome: what the open transaction did (pend) and what
     * committed (total, under mu). */
    struct type_counts {
        int64_t n[SAGA_EV_COUNT][OUT_COUNT];
    } pend, total;
    struct saga_hist handler_latency[SAGA_EV_COUNT];
    pthread_mutex_t mu_storage;
    pthread_mutex_t *mu; /* &mu_storage, usable from const readers */
    /* consumer lag per topic from librdkafka's statistics (under mu) */
    struct {
        char topic[128];
        int64_t lag;
    } lag[16];
    int nlag;
    struct msg *batch;
    int nbatch;
    volatile int revoked; /* set in the rebalance callback: the batch in hand is not ours */
    _Atomic int assigned; /* partitions held now (for readiness) */
    _Atomic int joined;   /* 1 once the group gave this member its first assignment */
    int cooperative;
    int fatal;
    char fatal_reason[512];
    int64_t last_prune;
    unsigned seed;
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int64_t wall_ms(void)
{
    struct timeval tv;
    gettimeofday(&tv, NULL);
    return (int64_t)tv.tv_sec * 1000 + tv.tv_usec / 1000;
}

static int stopping(const struct saga_consumer *c)
{
    return *c->conf.stop || c->fatal;
}

static void log_event(saga_log_level_t lvl, const struct msg *m, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void log_event(saga_log_level_t lvl, const struct msg *m, const char *fmt, ...)
{
    struct saga_log_ids ids = {0};
    char text[1024];
    va_list ap;

    if (!saga_log_enabled(lvl))
        return;
    if (m->derr == SAGA_DECODE_OK) {
        ids.order_id = m->ev.meta.order_id;
        ids.event_id = m->ev.meta.event_id;
        ids.correlation_id = m->ev.meta.correlation_id;
    }
    va_start(ap, fmt);
    vsnprintf(text, sizeof(text), fmt, ap);
    va_end(ap);
    saga_log(lvl, &ids, "%s (%s [%" PRId32 "] @%" PRId64 ")", text,
             rd_kafka_topic_name(m->rkm->rkt), m->rkm->partition, m->rkm->offset);
}

/* --- Kafka callbacks ---------------------------------------------------------- */

static void error_free(rd_kafka_error_t *e)
{
    if (e) {
        saga_log(SAGA_LOG_WARN, NULL, "kafka: %s", rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
    }
}

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    struct saga_consumer *c = opaque;

    /* Known for sure only once the group has chosen it. */
    c->cooperative = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        saga_log(SAGA_LOG_INFO, NULL, "assigned %d partition%s", parts->cnt,
                 parts->cnt == 1 ? "" : "s");
        c->assigned += parts->cnt;
        c->joined = 1;
        if (c->cooperative)
            error_free(rd_kafka_incremental_assign(rk, parts));
        else
            rd_kafka_assign(rk, parts);
        return;
    }
    /* Revoked (or lost): what we stored is committed now, before another member
     * starts from the committed offsets; the batch in hand is abandoned. */
    c->revoked = 1;
    if (err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS) {
        rd_kafka_resp_err_t cerr = rd_kafka_commit(rk, NULL, 0);
        if (cerr && cerr != RD_KAFKA_RESP_ERR__NO_OFFSET)
            saga_log(SAGA_LOG_WARN, NULL, "commit on revoke: %s", rd_kafka_err2str(cerr));
    }
    saga_log(SAGA_LOG_INFO, NULL, "%s %d partition%s",
             err == RD_KAFKA_RESP_ERR__REVOKE_PARTITIONS ? "revoked" : "lost", parts->cnt,
             parts->cnt == 1 ? "" : "s");
    if (c->cooperative) {
        error_free(rd_kafka_incremental_unassign(rk, parts));
        c->assigned -= parts->cnt;
    } else {
        rd_kafka_assign(rk, NULL);
        c->assigned = 0;
    }
}

/* librdkafka's statistics (JSON, every statistics.interval.ms): the lag per topic. */
static int stats_cb(rd_kafka_t *rk, char *json, size_t len, void *opaque)
{
    struct saga_consumer *c = opaque;
    json_t *root = json_loadb(json, len, 0, NULL), *topics, *topic;
    const char *name;
    (void)rk;

    if (!root)
        return 0;
    topics = json_object_get(root, "topics");
    pthread_mutex_lock(c->mu);
    c->nlag = 0;
    json_object_foreach(topics, name, topic)
    {
        json_t *parts = json_object_get(topic, "partitions"), *p;
        const char *pid;
        int64_t lag = 0;
        if (c->nlag >= (int)(sizeof(c->lag) / sizeof(c->lag[0])))
            break;
        json_object_foreach(parts, pid, p)
        {
            /* consumer_lag is -1 for partitions not (yet) consumed by this member. */
            json_int_t l = json_integer_value(json_object_get(p, "consumer_lag"));
            if (strcmp(pid, "-1") != 0 && l > 0)
                lag += l;
        }
        snprintf(c->lag[c->nlag].topic, sizeof(c->lag[0].topic), "%s", name);
        c->lag[c->nlag].lag = lag;
        c->nlag++;
    }
    pthread_mutex_unlock(c->mu);
    json_decref(root);
    return 0; /* librdkafka frees json */
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    struct saga_consumer *c = opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        rd_kafka_fatal_error(rk, c->fatal_reason, sizeof(c->fatal_reason));
        c->fatal = 1;
        saga_log(SAGA_LOG_ERROR, NULL, "fatal kafka error: %s", c->fatal_reason);
        return;
    }
    saga_log(SAGA_LOG_WARN, NULL, "kafka: %s", reason);
}

/* Sets prop unless the operator chose it through KAFKA_*. */
static void conf_default(rd_kafka_conf_t *conf, const char *prop, const char *value)
{
    char buf[256];
    size_t size = sizeof(buf);
    char env[128] = "KAFKA_";
    size_t o = 6;
    for (const char *p = prop; *p && o < sizeof(env) - 1; p++)
        env[o++] = *p == '.' ? '_' : (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
    env[o] = '\0';
    if (!saga_env(env, NULL) || rd_kafka_conf_get(conf, prop, buf, &size) != RD_KAFKA_CONF_OK)
        rd_kafka_conf_set(conf, prop, value, NULL, 0);
}

/* --- life cycle --------------------------------------------------------------- */

saga_err_t saga_consumer_new(struct saga_consumer **out, const struct saga_consumer_conf *conf,
                             char *errstr, size_t errstr_size)
{
    struct saga_consumer *c = calloc(1, sizeof(*c));
    rd_kafka_conf_t *kc = NULL, *pc = NULL;
    rd_kafka_topic_partition_list_t *subs;
    saga_err_t err;
    char buf[256];

    if (!c)
        return saga_errf(SAGA_ERR_NOMEM, errstr, errstr_size, "out of memory");
    c->conf = *conf;
    c->seed = (unsigned)(wall_ms() ^ (int64_t)(uintptr_t)c);
    pthread_mutex_init(&c->mu_storage, NULL);
    c->mu = &c->mu_storage;
    if ((err = saga_consumer_settings_load(&c->set, errstr, errstr_size)))
        goto fail;
    if (!(c->batch = calloc((size_t)c->set.batch_size, sizeof(*c->batch)))) {
        err = saga_errf(SAGA_ERR_NOMEM, errstr, errstr_size, "out of memory");
        goto fail;
    }
    if ((err = saga_serde_open(conf->cfg->schema_registry_url, conf->cfg->schema_dir, &c->serde,
                               &c->registry, errstr, errstr_size)))
        goto fail;

    kc = rd_kafka_conf_dup(conf->cfg->kafka_conf);
    rd_kafka_conf_set(kc, "group.id", conf->group, NULL, 0);
    conf_default(kc, "auto.offset.reset", "earliest");
    conf_default(kc, "partition.assignment.strategy", "range,roundrobin");
    /* Offsets are stored by us after the database commit; librdkafka commits them. */
    rd_kafka_conf_set(kc, "enable.auto.offset.store", "false", NULL, 0);
    conf_default(kc, "enable.auto.commit", "true");
    conf_default(kc, "auto.commit.interval.ms", "1000");
    conf_default(kc, "enable.partition.eof", "false");
    snprintf(buf, sizeof(buf), "%s", conf->group);
    conf_default(kc, "client.id", buf);
    {
        char strategy[128];
        size_t size = sizeof(strategy);
        if (rd_kafka_conf_get(kc, "partition.assignment.strategy", strategy, &size) ==
            RD_KAFKA_CONF_OK)
            c->cooperative = strstr(strategy, "cooperative") != NULL;
    }
    rd_kafka_conf_set_rebalance_cb(kc, rebalance_cb);
    rd_kafka_conf_set_error_cb(kc, error_cb);
    conf_default(kc, "statistics.interval.ms", "5000");
    rd_kafka_conf_set_stats_cb(kc, stats_cb);
    rd_kafka_conf_set_opaque(kc, c);
    saga_kafka_conf_set_logger(kc, 0);
    if (!(c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, kc, buf, sizeof(buf)))) {
        err = saga_errf(SAGA_ERR_CONFIG, errstr, errstr_size, "kafka consumer: %s", buf);
        rd_kafka_conf_destroy(kc);
        goto fail;
    }
    rd_kafka_poll_set_consumer(c->rk);

    pc = rd_kafka_conf_dup(conf->cfg->kafka_conf);
    conf_default(pc, "enable.idempotence", "true");
    conf_default(pc, "partitioner", "murmur2_random");
    snprintf(buf, sizeof(buf), "%s-dlq", conf->group);
    conf_default(pc, "client.id", buf);
    /* A fatal error of the DLQ producer (e.g. no IDEMPOTENT_WRITE permission) ends the
     * run like one of the consumer: dead letters could not be written any more. */
    rd_kafka_conf_set_error_cb(pc, error_cb);
    rd_kafka_conf_set_opaque(pc, c);
    saga_kafka_conf_set_logger(pc, 0);
    if (!(c->dlq = rd_kafka_new(RD_KAFKA_PRODUCER, pc, buf, sizeof(buf)))) {
        err = saga_errf(SAGA_ERR_CONFIG, errstr, errstr_size, "kafka DLQ producer: %s", buf);
        rd_kafka_conf_destroy(pc);
        goto fail;
    }

    subs = rd_kafka_topic_partition_list_new(conf->ntopics);
    for (int i = 0; i < conf->ntopics; i++)
        rd_kafka_topic_partition_list_add(subs, conf->topics[i], RD_KAFKA_PARTITION_UA);
    {
        rd_kafka_resp_err_t serr = rd_kafka_subscribe(c->rk, subs);
        rd_kafka_topic_partition_list_destroy(subs);
        if (serr) {
            err = saga_errf(SAGA_ERR_CONFIG, errstr, errstr_size, "subscribe: %s",
                            rd_kafka_err2str(serr));
            goto fail;
        }
    }
    *out = c;
    return SAGA_OK;
fail:
    saga_consumer_destroy(c);
    return err;
}

void saga_consumer_destroy(struct saga_consumer *c)
{
    if (!c)
        return;
    if (c->rk)
        rd_kafka_destroy(c->rk);
    if (c->dlq)
        rd_kafka_destroy(c->dlq);
    if (c->conn)
        PQfinish(c->conn);
    saga_serde_destroy(c->serde);
    saga_registry_destroy(c->registry);
    saga_buf_release(&c->scratch);
    saga_outbox_batch_release(&c->outbox);
    free(c->batch);
    free(c);
}

void saga_consumer_stats(const struct saga_consumer *c, struct saga_consumer_stats *out)
{
    pthread_mutex_lock(c->mu);
    *out = c->stats;
    pthread_mutex_unlock(c->mu);
}

void saga_consumer_write_metrics(const struct saga_consumer *c, struct saga_text *t)
{
    const char *svc = c->conf.group;
    struct saga_consumer_stats st;
    pthread_mutex_t *mu = c->mu;

    saga_consumer_stats(c, &st);
    saga_metric_head(t, "saga_events_consumed_total", "counter",
                     "Events the consumer runtime finished in committed transactions, by type and"
                     " outcome (handled, duplicate, deferred, released, skipped).");
    pthread_mutex_lock(mu);
    for (int ty = 0; ty < SAGA_EV_COUNT; ty++)
        for (int o = 0; o < OUT_COUNT; o++)
            if (o != OUT_EMITTED && c->total.n[ty][o])
                saga_text_printf(t,
                                 "saga_events_consumed_total{service=\"%s\",event_type=\"%s\","
                                 "outcome=\"%s\"} %" PRId64 "\n",
                                 svc, saga_event_type_name((saga_event_type_t)ty), out_names[o],
                                 c->total.n[ty][o]);
    pthread_mutex_unlock(mu);
    saga_metric_head(t, "saga_handler_duration_seconds", "histogram",
                     "Time a handler took for one event (inside its transaction), by type.");
    for (int ty = 0; ty < SAGA_EV_COUNT; ty++) {
        char labels[128];
        if (!c->conf.handlers[ty])
            continue;
        snprintf(labels, sizeof(labels), "service=\"%s\",event_type=\"%s\"", svc,
                 saga_event_type_name((saga_event_type_t)ty));
        saga_hist_write(t, "saga_handler_duration_seconds", labels, &c->handler_latency[ty]);
    }
    saga_metric_head(t, "saga_consumer_retries_total", "counter",
                     "Transient failures retried with backoff.");
    saga_text_printf(t, "saga_consumer_retries_total{service=\"%s\"} %" PRId64 "\n", svc,
                     st.retries);
    saga_metric_head(t, "saga_dlq_messages_total", "counter",
                     "Messages sent to the service's dead-letter topic.");
    saga_text_printf(t, "saga_dlq_messages_total{service=\"%s\",topic=\"%s\"} %" PRId64 "\n", svc,
                     c->conf.dlq_topic, st.dead_lettered);
    saga_metric_head(t, "saga_consumer_lag", "gauge",
                     "Messages behind the end of each topic, over the partitions this member "
                     "holds (librdkafka statistics, every 5 s).");
    pthread_mutex_lock(mu);
    for (int i = 0; i < c->nlag; i++)
        saga_text_printf(t, "saga_consumer_lag{service=\"%s\",topic=\"%s\"} %" PRId64 "\n", svc,
                         c->lag[i].topic, c->lag[i].lag);
    pthread_mutex_unlock(mu);
    saga_metric_head(t, "saga_consumer_assigned_partitions", "gauge",
                     "Partitions this member holds now.");
    saga_text_printf(t, "saga_consumer_assigned_partitions{service=\"%s\"} %d\n", svc,
                     (int)c->assigned);
}

saga_handle_result_t saga_tx_query(struct saga_tx *tx, PGresult **res, const char *sql, int nparams,
                                   const char *const *params)
{
    PGresult *r = saga_pg_exec(tx->conn, sql, nparams, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    saga_handle_result_t out;

    if (res)
        *res = NULL;
    if (st == PGRES_COMMAND_OK || st == PGRES_TUPLES_OK) {
        if (res)
            *res = r;
        else
            PQclear(r);
        return SAGA_HANDLE_OK;
    }
    out = saga_tx_pg_failure(tx, r);
    PQclear(r);
    return out;
}

char *saga_pg_text_array(const char *const *items, size_t n)
{
    size_t len = 3;
    char *out, *o;

    for (size_t i = 0; i < n; i++)
        len += 3 + 2 * strlen(items[i]);
    if (!(o = out = malloc(len)))
        abort();
    *o++ = '{';
    for (size_t i = 0; i < n; i++) {
        if (i)
            *o++ = ',';
        *o++ = '"';
        for (const char *p = items[i]; *p; p++) {
            if (*p == '"' || *p == '\\')
                *o++ = '\\';
            *o++ = *p;
        }
        *o++ = '"';
    }
    *o++ = '}';
    *o = '\0';
    return out;
}

void saga_event_follow(struct saga_event *out, saga_event_type_t type,
                       const struct saga_event *cause, const char *producer, char id_buf[37])
{
    saga_event_init(out, type);
    saga_uuid4(id_buf);
    out->meta.event_id = id_buf;
    out->meta.order_id = cause->meta.order_id;
    out->meta.correlation_id = cause->meta.correlation_id;
    out->meta.causation_id = cause->meta.event_id;
    out->meta.occurred_at = saga_now_ms();
    out->meta.producer = producer;
    out->meta.traceparent = cause->meta.traceparent;
}

int saga_consumer_joined(const struct saga_consumer *c)
{
    return c->joined;
}

/* --- database ------------------------------------------------------------------ */

static int ensure_conn(struct saga_consumer *c, char *errstr, size_t errstr_size)
{
    saga_err_t e;
    if (c->conn && saga_pg_idle_alive(c->conn))
        return 0;
    if (c->conn) {
        PQfinish(c->conn);
        c->conn = NULL;
    }
    c->conn = saga_pg_connect(c->conf.cfg->database_url, &e, errstr, errstr_size);
    return c->conn ? 0 : -1;
}

/* Runs a statement of the runtime's own; 0, or -1 with errstr. */
static int exec_params(struct saga_consumer *c, const char *sql, int n, const char *const *params,
                       const int *lengths, const int *formats, PGresult **res, char *errstr,
                       size_t errstr_size)
{
    PGresult *r = saga_pg_exec(c->conn, sql, n, params, lengths, formats, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        saga_pg_errstr(c->conn, errstr, errstr_size);
        PQclear(r);
        return -1;
    }
    if (res)
        *res = r;
    else
        PQclear(r);
    return 0;
}

static void prune_inbox(struct saga_consumer *c)
{
    char ms[32], err[256];
    const char *params[2] = {c->conf.group, ms};

    if (mono_ms() - c->last_prune < c->set.inbox_prune_every_ms ||
        ensure_conn(c, err, sizeof(err)) != 0)
        return;
    c->last_prune = mono_ms();
    snprintf(ms, sizeof(ms), "%" PRId64, c->set.inbox_retention_ms);
    if (exec_params(c,
                    "DELETE FROM inbox WHERE ctid IN (SELECT ctid FROM inbox WHERE consumer = $1"
                    " AND processed_at < clock_timestamp() - $2::bigint * interval '1 ms'"
                    " LIMIT 10000)",
                    2, params, NULL, NULL, NULL, err, sizeof(err)) != 0)
        saga_log(SAGA_LOG_WARN, NULL, "pruning the inbox: %s", err);
}

/* --- handling ------------------------------------------------------------------ */

static saga_handle_result_t run_handler(struct saga_consumer *c, struct saga_tx *tx,
                                        const struct saga_event *ev, int *duplicate)
{
    const char *params[2] = {c->conf.group, ev->meta.event_id};
    PGresult *r;
    int inserted;

    *duplicate = 0;
    if (exec_params(c,
                    "INSERT INTO inbox (consumer, event_id) VALUES ($1, $2)"
                    " ON CONFLICT DO NOTHING",
                    2, params, NULL, NULL, &r, tx->errstr, sizeof(tx->errstr)) != 0)
        return SAGA_HANDLE_TRANSIENT;
    inserted = atoi(PQcmdTuples(r));
    PQclear(r);
    if (!inserted) {
        *duplicate = 1;
        return SAGA_HANDLE_OK;
    }
    {
        saga_handle_result_t res;
        tx->cause_traceparent = ev->meta.traceparent;
        saga_traceparent_child(ev->meta.traceparent, tx->span);
        res = c->conf.handlers[ev->type](tx, ev, c->conf.arg);
        tx->span[0] = '\0';
        return res;
    }
}

static saga_handle_result_t defer_event(struct saga_consumer *c, struct saga_tx *tx,
                                        const struct msg *m)
{
    char part[16], off[32];
    const char *p2[2] = {c->conf.group, m->ev.meta.event_id};
    const char *p[10];
    int len[10] = {0}, fmt[10] = {0};
    char key[256];

    /* Not processed after all: its inbox row goes, the message is kept whole. */
    if (exec_params(c, "DELETE FROM inbox WHERE consumer = $1 AND event_id = $2", 2, p2, NULL, NULL,
                    NULL, tx->errstr, sizeof(tx->errstr)) != 0)
        return SAGA_HANDLE_TRANSIENT;
    snprintf(part, sizeof(part), "%" PRId32, m->rkm->partition);
    snprintf(off, sizeof(off), "%" PRId64, m->rkm->offset);
    snprintf(key, sizeof(key), "%.*s", (int)(m->rkm->key_len < 255 ? m->rkm->key_len : 255),
             m->rkm->key ? (const char *)m->rkm->key : "");
    p[0] = c->conf.group;
    p[1] = m->ev.meta.order_id;
    p[2] = m->ev.meta.event_id;
    p[3] = saga_event_type_name(m->ev.type);
    p[4] = rd_kafka_topic_name(m->rkm->rkt);
    p[5] = part;
    p[6] = off;
    p[7] = key;
    p[8] = m->rkm->payload;
    len[8] = (int)m->rkm->len;
    fmt[8] = 1;
    if (exec_params(c,
                    "INSERT INTO deferred (consumer, wait_key, event_id, event_type, topic,"
                    " kpartition, koffset, msg_key, payload)"
                    " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9)"
                    " ON CONFLICT (consumer, event_id) DO NOTHING",
                    9, p, len, fmt, NULL, tx->errstr, sizeof(tx->errstr)) != 0)
        return SAGA_HANDLE_TRANSIENT;
    c->pend.n[m->ev.type][OUT_DEFERRED]++;
    log_event(SAGA_LOG_INFO, m, "deferred %s until its order's prerequisite arrives",
              saga_event_type_name(m->ev.type));
    return SAGA_HANDLE_OK;
}

/* Runs the events deferred for order_id again, inside tx. */
static saga_handle_result_t release_deferred(struct saga_consumer *c, struct saga_tx *tx,
                                             const char *order_id)
{
    const char *params[2] = {c->conf.group, order_id};
    PGresult *r;
    saga_handle_result_t res = SAGA_HANDLE_OK;

    r = saga_pg_exec(c->conn,
                     "SELECT id, payload FROM deferred WHERE consumer = $1 AND wait_key = $2"
                     " ORDER BY id FOR UPDATE",
                     2, params, NULL, NULL, 1);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        saga_pg_errstr(c->conn, tx->errstr, sizeof(tx->errstr));
        PQclear(r);
        return SAGA_HANDLE_TRANSIENT;
    }
    for (int i = 0; i < PQntuples(r) && res == SAGA_HANDLE_OK; i++) {
        struct saga_event ev = {0};
        char derr[256], id[32];
        const char *pid[1] = {id};
        const unsigned char *b = (const unsigned char *)PQgetvalue(r, i, 0);
        uint64_t v = 0;
        int dup = 0;
        saga_handle_result_t hr;

        for (int k = 0; k < 8; k++)
            v = v << 8 | b[k];
        snprintf(id, sizeof(id), "%" PRIu64, v);
        if (saga_serde_decode(c->serde, PQgetvalue(r, i, 1), (size_t)PQgetlength(r, i, 1), &ev,
                              derr, sizeof(derr)) != SAGA_DECODE_OK ||
            !c->conf.handlers[ev.type]) {
            /* It decoded when it was deferred; if it no longer does, it is kept for an
             * operator rather than dropped. */
            saga_log(SAGA_LOG_ERROR, NULL, "deferred row %s no longer decodes: %s", id, derr);
            saga_event_release(&ev);
            continue;
        }
        hr = run_handler(c, tx, &ev, &dup);
        if (hr == SAGA_HANDLE_OK) {
            if (exec_params(c, "DELETE FROM deferred WHERE id = $1", 1, pid, NULL, NULL, NULL,
                            tx->errstr, sizeof(tx->errstr)) != 0)
                hr = SAGA_HANDLE_TRANSIENT;
            else if (!dup)
                c->pend.n[ev.type][OUT_RELEASED]++;
            saga_log(SAGA_LOG_INFO,
                     &(struct saga_log_ids){ev.meta.order_id, ev.meta.event_id,
                                            ev.meta.correlation_id, NULL},
                     "ran deferred %s", saga_event_type_name(ev.type));
        } else if (hr == SAGA_HANDLE_DEFER) {
            const char *p2[2] = {c->conf.group, ev.meta.event_id};
            hr = exec_params(c, "DELETE FROM inbox WHERE consumer = $1 AND event_id = $2", 2, p2,
                             NULL, NULL, NULL, tx->errstr, sizeof(tx->errstr)) == 0
                     ? SAGA_HANDLE_OK
                     : SAGA_HANDLE_TRANSIENT;
        }
        res = hr;
        saga_event_release(&ev);
    }
    PQclear(r);
    return res;
}

/* Handles one decoded message inside the open transaction tx; dup: its inbox claim failed. */
static saga_handle_result_t handle(struct saga_consumer *c, struct saga_tx *tx, struct msg *m,
                                   int dup)
{
    saga_handle_result_t r = SAGA_HANDLE_OK;

    if (!c->conf.handlers[m->ev.type]) {
        c->pend.n[m->ev.type][OUT_SKIPPED]++;
        return SAGA_HANDLE_OK;
    }
    tx->errstr[0] = '\0';
    if (!dup) {
        char trace_id[33];
        struct saga_log_ids ids = {m->ev.meta.order_id, m->ev.meta.event_id,
                                   m->ev.meta.correlation_id, NULL};
        struct timespec t0, t1;
        /* The handler works in a child span of the event's trace; its lines carry the ids. */
        tx->cause_traceparent = m->ev.meta.traceparent;
        saga_traceparent_child(m->ev.meta.traceparent, tx->span);
        saga_traceparent_trace_id(tx->span, trace_id);
        ids.trace_id = trace_id;
        saga_log_context_set(&ids);
        clock_gettime(CLOCK_MONOTONIC, &t0);
        r = c->conf.handlers[m->ev.type](tx, &m->ev, c->conf.arg);
        clock_gettime(CLOCK_MONOTONIC, &t1);
        saga_log_context_set(NULL);
        tx->span[0] = '\0';
        saga_hist_observe(&c->handler_latency[m->ev.type],
                          (double)(t1.tv_sec - t0.tv_sec) +
                              (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
    }
    if (dup) {
        c->pend.n[m->ev.type][OUT_DUPLICATE]++;
        log_event(SAGA_LOG_DEBUG, m, "duplicate %s skipped", saga_event_type_name(m->ev.type));
        return SAGA_HANDLE_OK;
    }
    if (r == SAGA_HANDLE_DEFER)
        return defer_event(c, tx, m);
    if (r != SAGA_HANDLE_OK)
        return r;
    c->pend.n[m->ev.type][OUT_HANDLED]++;
    if (c->conf.releases_deferred & (1u << m->ev.type))
        r = release_deferred(c, tx, m->ev.meta.order_id);
    return r;
}

/*
 * Records every handled message of msgs in the inbox with one statement; dup[i]
 * is set for those already there (or repeated within msgs). 0, or -1 with errstr.
 */
static int claim_inbox(struct saga_consumer *c, struct msg *msgs, int n, int *dup, char *errstr,
                       size_t errstr_size)
{
    size_t cap = 64, o = 0;
    char *arr = malloc(cap);
    const char *params[2];
    PGresult *r = NULL;
    int any = 0, rc = -1;

    if (!arr)
        return -1;
    arr[o++] = '{';
    for (int i = 0; i < n; i++) {
        const char *id;
        dup[i] = 0;
        if (!c->conf.handlers[msgs[i].ev.type])
            continue;
        id = msgs[i].ev.meta.event_id;
        if (o + 2 * strlen(id) + 8 > cap) {
            char *na;
            cap = (o + 2 * strlen(id) + 8) * 2;
            if (!(na = realloc(arr, cap)))
                goto out;
            arr = na;
        }
        if (any++)
            arr[o++] = ',';
        arr[o++] = '"';
        for (const char *p = id; *p; p++) {
            if (*p == '"' || *p == '\\')
                arr[o++] = '\\';
            arr[o++] = *p;
        }
        arr[o++] = '"';
    }
    arr[o++] = '}';
    arr[o] = '\0';
    if (!any) {
        rc = 0;
        goto out;
    }
    params[0] = c->conf.group;
    params[1] = arr;
    if (exec_params(c,
                    "INSERT INTO inbox (consumer, event_id)"
                    " SELECT $1, id FROM unnest($2::text[]) WITH ORDINALITY AS t(id, n) ORDER BY n"
                    " ON CONFLICT DO NOTHING RETURNING event_id",
                    2, params, NULL, NULL, &r, errstr, errstr_size) != 0)
        goto out;
    {
        int rows = PQntuples(r);
        char *claimed = calloc((size_t)rows + 1, 1);
        if (!claimed)
            goto out;
        for (int i = 0; i < n; i++) {
            int found = 0;
            if (!c->conf.handlers[msgs[i].ev.type])
                continue;
            for (int k = 0; k < rows && !found; k++) {
                if (!claimed[k] && strcmp(PQgetvalue(r, k, 0), msgs[i].ev.meta.event_id) == 0) {
                    claimed[k] = 1;
                    found = 1;
                }
            }
            dup[i] = !found;
        }
        free(claimed);
    }
    rc = 0;
out:
    PQclear(r);
    free(arr);
    return rc;
}

/* What the committed transaction did becomes part of the totals. */
static void commit_counts(struct saga_consumer *c, const struct saga_tx *tx)
{
    pthread_mutex_lock(c->mu);
    for (int t = 0; t < SAGA_EV_COUNT; t++) {
        for (int o = 0; o < OUT_COUNT; o++)
            c->total.n[t][o] += c->pend.n[t][o];
        c->total.n[t][OUT_EMITTED] += tx->emitted_by_type[t];
        c->stats.handled += c->pend.n[t][OUT_HANDLED];
        c->stats.duplicates += c->pend.n[t][OUT_DUPLICATE];
        c->stats.deferred += c->pend.n[t][OUT_DEFERRED];
        c->stats.released += c->pend.n[t][OUT_RELEASED];
        c->stats.skipped += c->pend.n[t][OUT_SKIPPED];
        if (tx->emitted_by_type[t])
            saga_produced_add((saga_event_type_t)t, tx->emitted_by_type[t]);
    }
    pthread_mutex_unlock(c->mu);
    memset(&c->pend, 0, sizeof(c->pend));
}

/*
 * Handles msgs[from..to) in one transaction. On failure everything is rolled
 * back and *failed_at says which message failed (-1: the transaction itself).
 */
static saga_handle_result_t run_tx(struct saga_consumer *c, struct msg *msgs, int n, int *failed_at,
                                   char *errstr, size_t errstr_size)
{
    struct saga_tx tx = {0};
    saga_handle_result_t r = SAGA_HANDLE_OK;
    int *dup, emitted;

    *failed_at = -1;
    if (ensure_conn(c, errstr, errstr_size) != 0)
        return SAGA_HANDLE_TRANSIENT;
    tx.conn = c->conn;
    tx.consumer = c->conf.group;
    tx.serde = c->serde;
    tx.scratch = &c->scratch;
    tx.outbox = &c->outbox;
    saga_outbox_batch_reset(&c->outbox);
    memset(&c->pend, 0, sizeof(c->pend));
    if (!(dup = calloc((size_t)n, sizeof(*dup))))
        return SAGA_HANDLE_TRANSIENT;
    if (exec_params(c, "BEGIN", 0, NULL, NULL, NULL, NULL, errstr, errstr_size) != 0 ||
        claim_inbox(c, msgs, n, dup, errstr, errstr_size) != 0) {
        PQclear(PQexec(c->conn, "ROLLBACK"));
        free(dup);
        return SAGA_HANDLE_TRANSIENT;
    }
    for (int i = 0; i < n && r == SAGA_HANDLE_OK; i++) {
        r = handle(c, &tx, &msgs[i], dup[i]);
        if (r != SAGA_HANDLE_OK) {
            *failed_at = i;
            snprintf(errstr, errstr_size, "%s", tx.errstr[0] ? tx.errstr : "handler failed");
        }
        if (n > 1 && i == n / 2)
            saga_fault_point("consumer.mid_batch");
    }
    free(dup);
    emitted = tx.outbox->n;
    if (r == SAGA_HANDLE_OK && emitted &&
        saga_outbox_batch_flush(c->conn, tx.outbox, errstr, errstr_size) != SAGA_OK)
        r = SAGA_HANDLE_TRANSIENT;
    if (r != SAGA_HANDLE_OK) {
        PQclear(PQexec(c->conn, "ROLLBACK"));
        saga_outbox_batch_reset(&c->outbox);
        return r;
    }
    /* With rows for the relay, the NOTIFY follows the commit: see saga/outbox.h. */
    if (emitted ? saga_outbox_commit_notify(c->conn, errstr, errstr_size) != SAGA_OK
                : exec_params(c, "COMMIT", 0, NULL, NULL, NULL, NULL, errstr, errstr_size) != 0)
        return SAGA_HANDLE_TRANSIENT; /* not committed, or unknown: redo (the inbox decides) */
    saga_fault_point("consumer.after_commit");
    commit_counts(c, &tx);
    return SAGA_HANDLE_OK;
}

static void store_offset(struct saga_consumer *c, const struct msg *m)
{
    rd_kafka_topic_partition_list_t *l;
    if (c->revoked)
        return;
    l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, rd_kafka_topic_name(m->rkm->rkt), m->rkm->partition)
        ->offset = m->rkm->offset + 1;
    rd_kafka_offsets_store(c->rk, l); /* a partition no longer assigned refuses: fine */
    rd_kafka_topic_partition_list_destroy(l);
}

/*
 * Waits an exponential, jittered delay for attempt while keeping the group
 * membership alive: the assignment is paused and the consumer polled.
 */
static void backoff(struct saga_consumer *c, int attempt)
{
    int64_t d = c->set.backoff_min_ms, end;
    rd_kafka_topic_partition_list_t *asg = NULL;

    for (int i = 0; i < attempt && d < c->set.backoff_max_ms; i++)
        d *= 2;
    if (d > c->set.backoff_max_ms)
        d = c->set.backoff_max_ms;
    d = d / 2 + (int64_t)(rand_r(&c->seed) % (unsigned)(d / 2 + 1));
    if (!rd_kafka_assignment(c->rk, &asg))
        rd_kafka_pause_partitions(c->rk, asg);
    end = mono_ms() + d;
    while (!stopping(c) && !c->revoked && mono_ms() < end) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, 100);
        if (m) {
            /* From a partition assigned meanwhile: put it back for later. */
            if (!m->err) {
                rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
                rd_kafka_topic_partition_list_add(l, rd_kafka_topic_name(m->rkt), m->partition)
                    ->offset = m->offset;
                error_free(rd_kafka_seek_partitions(c->rk, l, 5000));
                rd_kafka_pause_partitions(c->rk, l);
                rd_kafka_topic_partition_list_destroy(l);
            }
            rd_kafka_message_destroy(m);
        }
    }
    if (asg) {
        rd_kafka_resume_partitions(c->rk, asg);
        rd_kafka_topic_partition_list_destroy(asg);
    }
    {
        rd_kafka_topic_partition_list_t *now = NULL;
        if (!rd_kafka_assignment(c->rk, &now)) {
            rd_kafka_resume_partitions(c->rk, now);
            rd_kafka_topic_partition_list_destroy(now);
        }
    }
}

/* Sends the original message to the DLQ with error headers; 0 once Kafka has it. */
static int dead_letter(struct saga_consumer *c, struct msg *m, const char *reason,
                       const char *error)
{
    rd_kafka_headers_t *src = NULL, *h;
    char part[16], off[32], att[16], first[40];
    rd_kafka_resp_err_t err;
    h = rd_kafka_message_headers(m->rkm, &src) == RD_KAFKA_RESP_ERR_NO_ERROR
            ? rd_kafka_headers_copy(src)
            : rd_kafka_headers_new(8);
    snprintf(part, sizeof(part), "%" PRId32, m->rkm->partition);
    snprintf(off, sizeof(off), "%" PRId64, m->rkm->offset);
    snprintf(att, sizeof(att), "%d", m->attempts);
    {
        time_t s = (time_t)(m->first_failed / 1000);
        struct tm tm;
        char t[32];
        gmtime_r(&s, &tm);
        strftime(t, sizeof(t), "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(first, sizeof(first), "%s.%03dZ", t, (int)(m->first_failed % 1000));
    }
    rd_kafka_header_add(h, "dlq.reason", -1, reason, -1);
    rd_kafka_header_add(h, "dlq.error", -1, error, -1);
    rd_kafka_header_add(h, "dlq.consumer", -1, c->conf.group, -1);
    rd_kafka_header_add(h, "dlq.source.topic", -1, rd_kafka_topic_name(m->rkm->rkt), -1);
    rd_kafka_header_add(h, "dlq.source.partition", -1, part, -1);
    rd_kafka_header_add(h, "dlq.source.offset", -1, off, -1);
    rd_kafka_header_add(h, "dlq.attempts", -1, att, -1);
    rd_kafka_header_add(h, "dlq.first_failed_at", -1, first, -1);
    err = rd_kafka_producev(
        c->dlq, RD_KAFKA_V_TOPIC(c->conf.dlq_topic), RD_KAFKA_V_KEY(m->rkm->key, m->rkm->key_len),
        RD_KAFKA_V_VALUE(m->rkm->payload, m->rkm->len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
        RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_END);
    if (err) {
        rd_kafka_headers_destroy(h);
        log_event(SAGA_LOG_WARN, m, "cannot send to %s: %s", c->conf.dlq_topic,
                  rd_kafka_err2str(err));
        return -1;
    }
    /* flush waits for the delivery report; one in flight at a time here. */
    if ((err = rd_kafka_flush(c->dlq, 30000)) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        log_event(SAGA_LOG_WARN, m, "%s did not acknowledge: %s", c->conf.dlq_topic,
                  rd_kafka_err2str(err));
        return -1;
    }
    pthread_mutex_lock(c->mu);
    c->stats.dead_lettered++;
    pthread_mutex_unlock(c->mu);
    log_event(SAGA_LOG_ERROR, m, "sent to %s after %d attempt%s: %s: %s", c->conf.dlq_topic,
              m->attempts, m->attempts == 1 ? "" : "s", reason, error);
    return 0;
}

/* Handles one message in its own transaction until done; 0, or -1 if abandoned. */
static int process_one(struct saga_consumer *c, struct msg *m)
{
    int transient = 0;

    for (;;) {
        char err[512] = "";
        saga_handle_result_t r;
        int failed_at;

        if (stopping(c) || c->revoked)
            return -1; /* not stored: redelivered to whoever owns it next */
        if (m->derr == SAGA_DECODE_REGISTRY_UNAVAILABLE) {
            pthread_mutex_lock(c->mu);
            c->stats.retries++;
            pthread_mutex_unlock(c->mu);
            log_event(SAGA_LOG_WARN, m, "cannot decode yet: %s; retrying", m->derrstr);
            backoff(c, transient++);
            m->derr = saga_serde_decode(c->serde, m->rkm->payload, m->rkm->len, &m->ev, m->derrstr,
                                        sizeof(m->derrstr));
            continue;
        }
        if (m->derr != SAGA_DECODE_OK) {
            r = SAGA_HANDLE_INVALID;
            snprintf(err, sizeof(err), "%s", m->derrstr);
        } else {
            r = run_tx(c, m, 1, &failed_at, err, sizeof(err));
        }
        if (r == SAGA_HANDLE_OK) {
            store_offset(c, m);
            return 0;
        }
        if (r == SAGA_HANDLE_TRANSIENT) {
            pthread_mutex_lock(c->mu);
            c->stats.retries++;
            pthread_mutex_unlock(c->mu);
            /* Every time: the backoff grows to CONSUMER_BACKOFF_MAX, so this stays rare. */
            log_event(SAGA_LOG_WARN, m, "transient failure: %s; retrying with backoff", err);
            backoff(c, transient++);
            continue;
        }
        /* Permanent: a few attempts, then the DLQ. */
        if (!m->first_failed)
            m->first_failed = wall_ms();
        m->attempts++;
        if (m->attempts < c->set.max_attempts) {
            pthread_mutex_lock(c->mu);
            c->stats.retries++;
            pthread_mutex_unlock(c->mu);
            log_event(SAGA_LOG_WARN, m, "attempt %d failed: %s", m->attempts, err);
            backoff(c, m->attempts - 1);
            continue;
        }
        if (dead_letter(c, m, m->derr != SAGA_DECODE_OK ? "undecodable" : "invalid", err) == 0) {
            store_offset(c, m);
            return 0;
        }
        backoff(c, transient++); /* Kafka is down for the DLQ too: keep the message */
    }
}

static void process_batch(struct saga_consumer *c)
{
    int all_decoded = 1;

    for (int i = 0; i < c->nbatch; i++) {
        struct msg *m = &c->batch[i];
        m->derr = m->rkm->payload ? saga_serde_decode(c->serde, m->rkm->payload, m->rkm->len,
                                                      &m->ev, m->derrstr, sizeof(m->derrstr))
                                  : SAGA_DECODE_EMPTY;
        if (m->derr == SAGA_DECODE_EMPTY)
            snprintf(m->derrstr, sizeof(m->derrstr), "%s", saga_decode_err2str(m->derr));
        all_decoded &= m->derr == SAGA_DECODE_OK;
    }
    if (c->nbatch > 1 && all_decoded) {
        char err[512];
        int failed_at;
        if (run_tx(c, c->batch, c->nbatch, &failed_at, err, sizeof(err)) == SAGA_HANDLE_OK) {
            for (int i = 0; i < c->nbatch; i++)
                store_offset(c, &c->batch[i]);
            return;
        }
        saga_log(SAGA_LOG_DEBUG, NULL, "batch of %d failed (%s); one by one", c->nbatch, err);
    }
    for (int i = 0; i < c->nbatch; i++)
        if (process_one(c, &c->batch[i]) != 0)
            return;
}

static void free_batch(struct saga_consumer *c)
{
    for (int i = 0; i < c->nbatch; i++) {
        saga_event_release(&c->batch[i].ev);
        rd_kafka_message_destroy(c->batch[i].rkm);
        memset(&c->batch[i], 0, sizeof(c->batch[i]));
    }
    c->nbatch = 0;
}

int saga_consumer_run(struct saga_consumer *c)
{
    rd_kafka_resp_err_t err;

    saga_log(SAGA_LOG_INFO, NULL, "consuming as %s (%s rebalancing, batches of %d)", c->conf.group,
             c->cooperative ? "cooperative" : "eager", c->set.batch_size);
    while (!stopping(c)) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, 500);
        rd_kafka_poll(c->dlq, 0); /* serves the DLQ producer's error callback */
        c->revoked = 0;
        while (m) {
            if (m->err) {
                if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                    saga_log(SAGA_LOG_WARN, NULL, "consume: %s", rd_kafka_message_errstr(m));
                rd_kafka_message_destroy(m);
            } else {
                c->batch[c->nbatch++].rkm = m;
            }
            if (c->nbatch == c->set.batch_size)
                break;
            m = rd_kafka_consumer_poll(c->rk, 0);
        }
        if (c->nbatch) {
            process_batch(c);
            free_batch(c);
        } else {
            prune_inbox(c);
        }
    }
    saga_log(SAGA_LOG_INFO, NULL,
             "stopping: handled %" PRId64 ", duplicates %" PRId64 ", deferred %" PRId64
             ", dead-lettered %" PRId64,
             c->stats.handled, c->stats.duplicates, c->stats.deferred, c->stats.dead_lettered);
    err = rd_kafka_commit(c->rk, NULL, 0);
    if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
        saga_log(SAGA_LOG_WARN, NULL, "final commit: %s", rd_kafka_err2str(err));
    rd_kafka_consumer_close(c->rk);
    rd_kafka_flush(c->dlq, 10000);
    if (c->fatal) {
        fprintf(stderr, "%s: fatal kafka error: %s\n", c->conf.group, c->fatal_reason);
        return SAGA_EXIT_FAILURE;
    }
    return SAGA_EXIT_OK;
}
