/*
 * The consumer runtime's loop and its one failure policy. Handlers and the runtime's own
 * statements return classified results (saga_handle_result_t); what follows is decided
 * here and nowhere else:
 *
 *   OK         the message is finished: its offset is stored.
 *   TRANSIENT  rolled back and retried with exponential, jittered backoff for as long as
 *              it lasts; the partition does not move (database or registry down,
 *              serialization failure, deadlock).
 *   INVALID    (permanent) retried DLQ_MAX_ATTEMPTS times in all, then the original
 *              message goes to the service's DLQ topic with error headers; its offset is
 *              stored only once the broker has acknowledged the dead letter. A dead letter
 *              the broker refuses is retried with backoff (the partition waits); a fatal
 *              error of the DLQ producer ends the run with its cause.
 *
 * Where an offset is stored and what a rebalance abandons: consumer_kafka.c. The
 * transaction, inbox and deferrals: consumer_tx.c.
 */
#include "saga/consumer.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>
#include <time.h>

#include "consumer_internal.h"
#include "saga/kafka.h"
#include "saga/log.h"
#include "saga/metrics.h"
#include "saga/outbox.h"
#include "saga/pg.h"
#include "saga/registry.h"

static const char *const out_names[OUT_COUNT] = {"handled",  "duplicate", "deferred",
                                                 "released", "skipped",   "emitted"};

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

/* --- small helpers ---------------------------------------------------------------- */

/* locality: the consumer thread, and librdkafka callbacks it serves in its polls.
 * locks: none (conf.stop, fatal and fenced are atomics). */
int consumer_stopping(const struct saga_consumer *c)
{
    return atomic_load(c->conf.stop) || c->fatal || c->fenced;
}

void consumer_log_msg(saga_log_level_t lvl, const struct msg *m, const char *fmt, ...)
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

/* --- life cycle ------------------------------------------------------------------- */

/* Every topic read has an owner whose events alone are handled from it (docs/SECURITY.md):
 * the suite's topics by the topology, others by SAGA_TOPIC_OWNERS. */
static saga_err_t topic_owners_load(struct saga_consumer *c, char *errstr, size_t errstr_size)
{
    saga_err_t err = saga_topic_owners_parse(&c->owners, saga_env("SAGA_TOPIC_OWNERS", NULL),
                                             errstr, errstr_size);
    for (int i = 0; !err && i < c->conf.ntopics; i++)
        if (!saga_topic_owner(&c->owners, c->conf.topics[i]))
            err = saga_errf(SAGA_ERR_CONFIG, errstr, errstr_size,
                            "topic '%s' is not one of the suite's: declare its producer in "
                            "SAGA_TOPIC_OWNERS (\"%s=<producer>\")",
                            c->conf.topics[i] ? c->conf.topics[i] : "",
                            c->conf.topics[i] ? c->conf.topics[i] : "");
    return err;
}

saga_err_t saga_consumer_new(struct saga_consumer **out, const struct saga_consumer_conf *conf,
                             char *errstr, size_t errstr_size)
{
    struct saga_consumer *c = calloc(1, sizeof(*c));
    saga_err_t err;

    if (!c)
        return saga_errf(SAGA_ERR_NOMEM, errstr, errstr_size, "out of memory");
    c->conf = *conf;
    c->seed = (unsigned)(saga_now_ms() ^ (int64_t)(uintptr_t)c);
    pthread_mutex_init(&c->mu_storage, NULL);
    c->mu = &c->mu_storage;
    err = saga_consumer_settings_load(&c->set, errstr, errstr_size);
    if (!err && !(c->batch = calloc((size_t)c->set.batch_size, sizeof(*c->batch))))
        err = saga_errf(SAGA_ERR_NOMEM, errstr, errstr_size, "out of memory");
    if (!err)
        err = topic_owners_load(c, errstr, errstr_size);
    if (!err)
        err = saga_serde_open(conf->cfg->schema_registry_url, conf->cfg->schema_dir, &c->serde,
                              &c->registry, errstr, errstr_size);
    if (!err)
        err = consumer_kafka_open(c, errstr, errstr_size);
    if (err) {
        saga_consumer_destroy(c);
        return err;
    }
    *out = c;
    return SAGA_OK;
}

void saga_consumer_destroy(struct saga_consumer *c)
{
    if (!c)
        return;
    consumer_kafka_destroy(c);
    consumer_tx_close(c);
    consumer_spans_release(c);
    saga_serde_destroy(c->serde);
    saga_registry_destroy(c->registry);
    saga_buf_release(&c->scratch);
    saga_outbox_batch_release(&c->outbox);
    free(c->batch);
    free(c);
}

/* locality: any thread (readiness, from the HTTP threads). locks: none, an atomic. */
int saga_consumer_joined(const struct saga_consumer *c)
{
    return c->joined;
}

/* --- metrics ---------------------------------------------------------------------- */

/* locality: any thread. locks: takes c->mu. */
void saga_consumer_stats(const struct saga_consumer *c, struct saga_consumer_stats *out)
{
    pthread_mutex_lock(c->mu);
    *out = c->stats;
    pthread_mutex_unlock(c->mu);
}

/* What the committed transaction did becomes part of the totals.
 * locality: the consumer thread (saga_consumer_run). locks: takes c->mu for the totals;
 * c->pend is the consumer thread's own. */
void consumer_count_commit(struct saga_consumer *c, const struct saga_tx *tx)
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

/* locality: any thread (the HTTP threads, for /metrics). locks: takes c->mu. */
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
    saga_metric_head(t, "saga_dlq_write_failures_total", "counter",
                     "Dead letters the broker refused or did not acknowledge (retried with "
                     "backoff; the partition waits).");
    saga_text_printf(t, "saga_dlq_write_failures_total{service=\"%s\",topic=\"%s\"} %" PRId64 "\n",
                     svc, c->conf.dlq_topic, st.dlq_failures);
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

/* --- the failure policy -------------------------------------------------------------- */

static void count_retry(struct saga_consumer *c)
{
    pthread_mutex_lock(c->mu);
    c->stats.retries++;
    pthread_mutex_unlock(c->mu);
}

/* Waits an exponential, jittered delay for attempt (membership kept, m's partition held). */
static void backoff(struct saga_consumer *c, const struct msg *m, int attempt)
{
    int64_t d = c->set.backoff_min_ms;

    for (int i = 0; i < attempt && d < c->set.backoff_max_ms; i++)
        d *= 2;
    if (d > c->set.backoff_max_ms)
        d = c->set.backoff_max_ms;
    d = d / 2 + (int64_t)(rand_r(&c->seed) % (unsigned)(d / 2 + 1));
    consumer_kafka_wait(c, d, m, 0);
}

/* Sends the original message to the DLQ with error headers; 0 once the broker has it. */
static int dead_letter(struct saga_consumer *c, struct msg *m, const char *reason,
                       const char *error)
{
    rd_kafka_headers_t *src = NULL, *h;
    char part[16], off[32], att[16], first[40], err[512];
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
    if (consumer_kafka_send_dlq(c, m, m->rkm->key, m->rkm->key_len, m->rkm->payload, m->rkm->len, h,
                                0, err, sizeof(err)) != 0) {
        pthread_mutex_lock(c->mu);
        c->stats.dlq_failures++;
        pthread_mutex_unlock(c->mu);
        consumer_log_msg(SAGA_LOG_ERROR, m, "dead letter not written, retrying: %s", err);
        return -1;
    }
    pthread_mutex_lock(c->mu);
    c->stats.dead_lettered++;
    pthread_mutex_unlock(c->mu);
    consumer_spans_dead_letter(c, m, reason, error);
    consumer_log_msg(SAGA_LOG_ERROR, m, "sent to %s after %d attempt%s: %s: %s", c->conf.dlq_topic,
                     m->attempts, m->attempts == 1 ? "" : "s", reason, error);
    return 0;
}

/* Handles one message in its own transaction until it is finished; 0, or -1 if abandoned
 * (stopping, or its partition was taken away: its next owner gets it again). */
static int process_one(struct saga_consumer *c, struct msg *m)
{
    int transient = 0;

    for (;;) {
        saga_handle_result_t r;
        int failed_at;

        if (consumer_stopping(c) || !consumer_kafka_held(c, m))
            return -1; /* not stored: redelivered to whoever owns it next */
        if (m->attempts >= c->set.max_attempts) {
            /* Its attempts are used up: only the dead letter is left to write. */
            if (dead_letter(c, m, m->derr != SAGA_DECODE_OK ? "undecodable" : "invalid",
                            m->error) == 0) {
                consumer_kafka_store(c, m);
                return 0;
            }
            backoff(c, m, transient++); /* the DLQ refused or is down: keep the message */
            continue;
        }
        if (m->derr == SAGA_DECODE_REGISTRY_UNAVAILABLE) {
            count_retry(c);
            consumer_log_msg(SAGA_LOG_WARN, m, "cannot decode yet: %s; retrying", m->derrstr);
            backoff(c, m, transient++);
            saga_event_release(&m->ev);
            m->derr = saga_serde_decode(c->serde, m->rkm->payload, m->rkm->len, &m->ev, m->derrstr,
                                        sizeof(m->derrstr));
            if (m->derr == SAGA_DECODE_OK)
                saga_event_belongs(&c->owners, rd_kafka_topic_name(m->rkm->rkt), m->ev.type,
                                   m->ev.meta.producer, m->refused, sizeof(m->refused));
            continue;
        }
        if (m->derr != SAGA_DECODE_OK) {
            r = SAGA_HANDLE_INVALID;
            snprintf(m->error, sizeof(m->error), "%s", m->derrstr);
        } else if (m->refused[0]) {
            r = SAGA_HANDLE_INVALID; /* forged or misrouted: never reaches a handler */
            snprintf(m->error, sizeof(m->error), "%s", m->refused);
        } else {
            r = consumer_tx_run(c, m, 1, &failed_at, m->error, sizeof(m->error));
        }
        if (r == SAGA_HANDLE_OK) {
            consumer_kafka_store(c, m);
            return 0;
        }
        if (r == SAGA_HANDLE_TRANSIENT) {
            count_retry(c);
            /* Every time: the backoff grows to CONSUMER_BACKOFF_MAX, so this stays rare. */
            consumer_log_msg(SAGA_LOG_WARN, m, "transient failure: %s; retrying with backoff",
                             m->error);
            backoff(c, m, transient++);
            continue;
        }
        /* Permanent (INVALID): a few attempts, then the DLQ. */
        if (!m->first_failed)
            m->first_failed = saga_now_ms();
        m->attempts++;
        if (m->attempts < c->set.max_attempts) {
            count_retry(c);
            consumer_log_msg(SAGA_LOG_WARN, m, "attempt %d failed: %s", m->attempts, m->error);
            backoff(c, m, m->attempts - 1);
        }
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
        if (m->derr == SAGA_DECODE_OK)
            saga_event_belongs(&c->owners, rd_kafka_topic_name(m->rkm->rkt), m->ev.type,
                               m->ev.meta.producer, m->refused, sizeof(m->refused));
        all_decoded &= m->derr == SAGA_DECODE_OK && !m->refused[0] && consumer_kafka_held(c, m);
    }
    if (c->nbatch > 1 && all_decoded) {
        char err[512] = "";
        int failed_at;
        if (consumer_tx_run(c, c->batch, c->nbatch, &failed_at, err, sizeof(err)) ==
            SAGA_HANDLE_OK) {
            for (int i = 0; i < c->nbatch; i++)
                consumer_kafka_store(c, &c->batch[i]);
            consumer_tx_dead_letter_released(c, 1);
            consumer_tx_dead_letter_released(c, 0);
            return;
        }
        saga_log(SAGA_LOG_DEBUG, NULL, "batch of %d failed (%s); one by one", c->nbatch, err);
    }
    /* In order; a message abandoned because its partition was taken away does not hold up
     * the kept partitions' messages behind it. */
    for (int i = 0; i < c->nbatch && !consumer_stopping(c); i++)
        process_one(c, &c->batch[i]);
    consumer_tx_dead_letter_released(c, 1);
    consumer_tx_dead_letter_released(c, 0);
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
    saga_log(SAGA_LOG_INFO, NULL, "consuming as %s (%s rebalancing, batches of %d)", c->conf.group,
             c->cooperative ? "cooperative" : "eager", c->set.batch_size);
    c->dead_pending = 1; /* left from before a crash? */
    consumer_tx_dead_letter_released(c, 1);
    for (;;) {
        /* Fenced (its own session timed out, most often): the batch was left where it
         * was, and a new consumer takes the old one's place. */
        if (c->fenced && !atomic_load(c->conf.stop) && !c->fatal)
            consumer_kafka_refenced(c);
        if (consumer_stopping(c))
            break;
        consumer_kafka_poll_batch(c, 500);
        if (c->nbatch) {
            process_batch(c);
            free_batch(c);
        } else {
            consumer_tx_prune_inbox(c);
            consumer_tx_dead_letter_released(c, 0);
        }
    }
    saga_log(SAGA_LOG_INFO, NULL,
             "stopping: handled %" PRId64 ", duplicates %" PRId64 ", deferred %" PRId64
             ", dead-lettered %" PRId64,
             c->stats.handled, c->stats.duplicates, c->stats.deferred, c->stats.dead_lettered);
    consumer_kafka_close(c);
    if (c->fatal) {
        fprintf(stderr, "%s: %s\n", c->conf.group, c->fatal_reason);
        return SAGA_EXIT_FAILURE;
    }
    return SAGA_EXIT_OK;
}
