/*
 * The consumer runtime's Kafka side: the group membership and what this member holds,
 * when an offset is stored, waiting without losing the membership, and dead letters.
 *
 * What is held: every partition this member was given has an epoch that changes with
 * each assign and revoke. A message carries the epoch of its partition when it was
 * consumed; it counts as held only while its partition is assigned under that same
 * epoch. A revoke (eager, incremental or lost) therefore abandons exactly the revoked
 * partitions' messages: the kept partitions' messages stay in hand and are finished in
 * order, so their positions never pass an unhandled message.
 *
 * When an offset is stored: only after the message is finished (its transaction
 * committed, or its dead letter acknowledged), only while it is held. librdkafka commits
 * stored offsets every auto.commit.interval.ms and, for partitions taken away, when they
 * are unassigned (enable.auto.commit=true, the default here), so the next owner starts
 * right after the last finished message. A commit that fails during a cooperative
 * rebalance means redelivery to the next owner (the inbox makes it a duplicate), never
 * a gap.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "consumer_internal.h"
#include "saga/config.h"
#include "saga/fault.h"
#include "saga/kafka.h"
#include "saga/log.h"

static void error_free(rd_kafka_error_t *e, const char *what)
{
    if (e) {
        saga_log(SAGA_LOG_WARN, NULL, "kafka: %s: %s", what, rd_kafka_error_string(e));
        rd_kafka_error_destroy(e);
    }
}

/* Ends the run with reason (a broken assignment leaves partitions nobody consumes). */
static void set_fatal(struct saga_consumer *c, const char *what, const char *reason)
{
    snprintf(c->fatal_reason, sizeof(c->fatal_reason), "%.160s: %.340s", what, reason);
    c->fatal = 1;
    saga_log(SAGA_LOG_ERROR, NULL, "%s", c->fatal_reason);
}

/* --- what is held ------------------------------------------------------------- */

static struct held_part *part_find(const struct saga_consumer *c, const char *topic,
                                   int32_t partition)
{
    for (int i = 0; i < c->nparts; i++)
        if (c->parts[i].partition == partition && strcmp(c->parts[i].topic, topic) == 0)
            return &c->parts[i];
    return NULL;
}

static struct held_part *part_get(struct saga_consumer *c, const char *topic, int32_t partition)
{
    struct held_part *p = part_find(c, topic, partition);
    if (p)
        return p;
    if (c->nparts == c->capparts) {
        int cap = c->capparts ? c->capparts * 2 : 16;
        struct held_part *np = realloc(c->parts, (size_t)cap * sizeof(*np));
        if (!np)
            abort();
        c->parts = np;
        c->capparts = cap;
    }
    p = &c->parts[c->nparts++];
    if (!(p->topic = strdup(topic)))
        abort();
    p->partition = partition;
    p->epoch = 0;
    p->assigned = 0;
    return p;
}

static void parts_mark(struct saga_consumer *c, const rd_kafka_topic_partition_list_t *l,
                       int assigned)
{
    for (int i = 0; i < l->cnt; i++) {
        struct held_part *p = part_get(c, l->elems[i].topic, l->elems[i].partition);
        p->assigned = assigned;
        p->epoch = ++c->next_epoch;
    }
}

static void parts_mark_all_revoked(struct saga_consumer *c)
{
    for (int i = 0; i < c->nparts; i++) {
        if (c->parts[i].assigned) {
            c->parts[i].assigned = 0;
            c->parts[i].epoch = ++c->next_epoch;
        }
    }
}

int consumer_kafka_held(const struct saga_consumer *c, const struct msg *m)
{
    const struct held_part *p = part_find(c, rd_kafka_topic_name(m->rkm->rkt), m->rkm->partition);
    return p && p->assigned && p->epoch == m->epoch;
}

void consumer_kafka_store(struct saga_consumer *c, const struct msg *m)
{
    rd_kafka_topic_partition_list_t *l;
    rd_kafka_resp_err_t err;

    if (!consumer_kafka_held(c, m))
        return; /* its next owner starts from the last commit: a redelivery, not a gap */
    l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, rd_kafka_topic_name(m->rkm->rkt), m->rkm->partition)
        ->offset = m->rkm->offset + 1;
    err = rd_kafka_offsets_store(c->rk, l);
    if (err || l->elems[0].err)
        consumer_log_msg(SAGA_LOG_WARN, m, "offset not stored: %s",
                         rd_kafka_err2str(err ? err : l->elems[0].err));
    rd_kafka_topic_partition_list_destroy(l);
}

/* --- callbacks (called from inside our own poll calls) ------------------------ */

/* locality: every callback below runs on the consumer thread, inside the
 * rd_kafka_consumer_poll / rd_kafka_poll / rd_kafka_flush calls it makes (no librdkafka
 * background thread calls them). locks: none needed for the consumer's own state; the
 * figures other threads read (lag, stats) are written under c->mu, the readiness flags
 * are atomics. */

static void rebalance_cb(rd_kafka_t *rk, rd_kafka_resp_err_t err,
                         rd_kafka_topic_partition_list_t *parts, void *opaque)
{
    struct saga_consumer *c = opaque;
    int cooperative = strcmp(rd_kafka_rebalance_protocol(rk), "COOPERATIVE") == 0;

    c->cooperative = cooperative; /* known for sure only once the group has chosen it */
    if (err == RD_KAFKA_RESP_ERR__ASSIGN_PARTITIONS) {
        saga_log(SAGA_LOG_INFO, NULL, "assigned %d partition%s", parts->cnt,
                 parts->cnt == 1 ? "" : "s");
        parts_mark(c, parts, 1);
        if (cooperative) {
            rd_kafka_error_t *e = rd_kafka_incremental_assign(rk, parts);
            if (e) {
                set_fatal(c, "incremental assign", rd_kafka_error_string(e));
                rd_kafka_error_destroy(e);
                return;
            }
            c->assigned += parts->cnt;
        } else {
            rd_kafka_resp_err_t aerr = rd_kafka_assign(rk, parts);
            if (aerr) {
                set_fatal(c, "assign", rd_kafka_err2str(aerr));
                return;
            }
            c->assigned = parts->cnt;
        }
        /* librdkafka keeps an application's pause on a partition across unassign and
         * assign: one paused by a wait, taken away and given back, would never be fetched
         * again. A wait in progress puts back what arrives from these (put_back). */
        rd_kafka_resume_partitions(rk, parts);
        c->joined = 1;
        return;
    }
    /* Revoked or lost: the messages in hand of these partitions are abandoned (their
     * epoch changes). With enable.auto.commit librdkafka commits the stored offsets of
     * the removed partitions as they are unassigned; without it we commit here. For lost
     * partitions (another member may own them already) we commit nothing; librdkafka's
     * own commit of them is refused by the broker (an old generation), which is harmless:
     * only finished messages were stored. */
    {
        int lost = rd_kafka_assignment_lost(rk);
        saga_log(SAGA_LOG_INFO, NULL, "%s %d partition%s", lost ? "lost" : "revoked", parts->cnt,
                 parts->cnt == 1 ? "" : "s");
        if (!lost && !c->auto_commit) {
            rd_kafka_resp_err_t cerr = rd_kafka_commit(rk, NULL, 0);
            if (cerr && cerr != RD_KAFKA_RESP_ERR__NO_OFFSET)
                saga_log(SAGA_LOG_INFO, NULL,
                         "commit on revoke: %s (the next owner gets redeliveries)",
                         rd_kafka_err2str(cerr));
        }
    }
    if (cooperative) {
        rd_kafka_error_t *e;
        parts_mark(c, parts, 0);
        if ((e = rd_kafka_incremental_unassign(rk, parts))) {
            set_fatal(c, "incremental unassign", rd_kafka_error_string(e));
            rd_kafka_error_destroy(e);
            return;
        }
        c->assigned -= parts->cnt;
    } else {
        rd_kafka_resp_err_t aerr;
        parts_mark_all_revoked(c);
        if ((aerr = rd_kafka_assign(rk, NULL))) {
            set_fatal(c, "unassign", rd_kafka_err2str(aerr));
            return;
        }
        c->assigned = 0;
    }
}

/* librdkafka's statistics (JSON, every statistics.interval.ms): the lag per topic.
 * locks: takes c->mu (the HTTP threads read the lag). */
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
        json_t *ps = json_object_get(topic, "partitions"), *p;
        const char *pid;
        int64_t lag = 0;
        if (c->nlag >= (int)(sizeof(c->lag) / sizeof(c->lag[0])))
            break;
        json_object_foreach(ps, pid, p)
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

/* A fatal error of rk (the consumer, or the DLQ producer), from its error callback or a
 * consumed message. */
static void on_fatal(struct saga_consumer *c, rd_kafka_t *rk)
{
    char why[400];
    if (rd_kafka_fatal_error(rk, why, sizeof(why)) == RD_KAFKA_RESP_ERR_FENCED_INSTANCE_ID &&
        rk == c->rk) {
        /* Another member joined under our SAGA_INSTANCE_ID: most often ourselves, after our
         * session timed out on our side (librdkafka joins again with a new member id, and
         * the old one's requests are then fenced). The run loop opens the consumer again
         * (consumer_kafka_refenced), or ends if it happens again soon: then another running
         * instance has the same id. */
        if (!c->fenced) {
            snprintf(c->fenced_reason, sizeof(c->fenced_reason), "%s", why);
            c->fenced = 1;
        }
        return;
    }
    if (!c->fatal)
        set_fatal(c, "fatal kafka error", why);
}

static void error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    struct saga_consumer *c = opaque;
    if (err == RD_KAFKA_RESP_ERR__FATAL) {
        on_fatal(c, rk);
        return;
    }
    saga_log(SAGA_LOG_WARN, NULL, "kafka: %s", reason);
}

/* The DLQ producer's delivery reports: only the dead letter in flight counts. */
static void dlq_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    struct saga_consumer *c = opaque;
    (void)rk;
    if ((uint64_t)(uintptr_t)m->_private != c->dlq_seq)
        return; /* one given up on before (stopping): nothing waits for it */
    c->dlq_err = m->err;
    c->dlq_done = 1;
}

/* Sets prop unless the operator chose it through KAFKA_*. */
static void conf_default(rd_kafka_conf_t *conf, const char *prop, const char *value)
{
    char buf[256];
    size_t size = sizeof(buf);
    if (!saga_kafka_env_sets(prop) || rd_kafka_conf_get(conf, prop, buf, &size) != RD_KAFKA_CONF_OK)
        rd_kafka_conf_set(conf, prop, value, NULL, 0);
}

/* --- life cycle ------------------------------------------------------------------ */

/* Makes the group's consumer (c->rk) and subscribes it to the group's topics. */
static saga_err_t open_consumer(struct saga_consumer *c, char *errstr, size_t errstr_size)
{
    const struct saga_consumer_conf *conf = &c->conf;
    rd_kafka_conf_t *kc;
    rd_kafka_topic_partition_list_t *subs;
    rd_kafka_resp_err_t serr;
    char buf[256], strategy[128];
    size_t size;

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
    /* A member that crashes keeps its partitions until its session times out; the saga
     * times out after SAGA_TIMEOUT (30 s by default), so the session must be much
     * shorter than that (librdkafka's default is 45 s). */
    conf_default(kc, "session.timeout.ms", "10000");
    /* Static membership (KIP-345): an instance restarted under the same id takes its
     * partitions back at once, without a rebalance and without waiting for its old
     * session to time out. */
    {
        const char *instance = saga_env("SAGA_INSTANCE_ID", NULL);
        if (instance && *instance)
            conf_default(kc, "group.instance.id", instance);
        size = sizeof(buf);
        c->static_member =
            rd_kafka_conf_get(kc, "group.instance.id", buf, &size) == RD_KAFKA_CONF_OK && buf[0];
    }
    size = sizeof(strategy);
    if (rd_kafka_conf_get(kc, "partition.assignment.strategy", strategy, &size) == RD_KAFKA_CONF_OK)
        c->cooperative = strstr(strategy, "cooperative") != NULL;
    size = sizeof(buf);
    c->auto_commit = rd_kafka_conf_get(kc, "enable.auto.commit", buf, &size) != RD_KAFKA_CONF_OK ||
                     strcmp(buf, "true") == 0;
    rd_kafka_conf_set_rebalance_cb(kc, rebalance_cb);
    rd_kafka_conf_set_error_cb(kc, error_cb);
    conf_default(kc, "statistics.interval.ms", "5000");
    rd_kafka_conf_set_stats_cb(kc, stats_cb);
    rd_kafka_conf_set_opaque(kc, c);
    saga_kafka_conf_set_logger(kc, 0);
    if (!(c->rk = rd_kafka_new(RD_KAFKA_CONSUMER, kc, buf, sizeof(buf)))) {
        rd_kafka_conf_destroy(kc);
        return saga_errf(SAGA_ERR_CONFIG, errstr, errstr_size, "kafka consumer: %s", buf);
    }
    rd_kafka_poll_set_consumer(c->rk);

    subs = rd_kafka_topic_partition_list_new(conf->ntopics);
    for (int i = 0; i < conf->ntopics; i++)
        rd_kafka_topic_partition_list_add(subs, conf->topics[i], RD_KAFKA_PARTITION_UA);
    serr = rd_kafka_subscribe(c->rk, subs);
    rd_kafka_topic_partition_list_destroy(subs);
    if (serr)
        return saga_errf(SAGA_ERR_CONFIG, errstr, errstr_size, "subscribe: %s",
                         rd_kafka_err2str(serr));
    return SAGA_OK;
}

saga_err_t consumer_kafka_open(struct saga_consumer *c, char *errstr, size_t errstr_size)
{
    const struct saga_consumer_conf *conf = &c->conf;
    rd_kafka_conf_t *pc;
    char buf[256];
    saga_err_t e;

    if ((e = open_consumer(c, errstr, errstr_size)))
        return e;
    pc = rd_kafka_conf_dup(conf->cfg->kafka_conf);
    conf_default(pc, "enable.idempotence", "true");
    conf_default(pc, "partitioner", "murmur2_random");
    snprintf(buf, sizeof(buf), "%s-dlq", conf->group);
    conf_default(pc, "client.id", buf);
    /* A refused write (TOPIC_AUTHORIZATION_FAILED) leaves the topic in an error state
     * until the next metadata refresh (5 min by default): a restored ACL should count
     * within seconds. One topic, so a frequent refresh costs nothing. */
    conf_default(pc, "topic.metadata.refresh.interval.ms", "10000");
    /* A dead letter counts as sent when its delivery report says so. A fatal error of the
     * DLQ producer (e.g. its idempotent producer id refused) ends the run like one of the
     * consumer: dead letters could not be written any more. */
    rd_kafka_conf_set_dr_msg_cb(pc, dlq_dr_cb);
    rd_kafka_conf_set_error_cb(pc, error_cb);
    rd_kafka_conf_set_opaque(pc, c);
    saga_kafka_conf_set_logger(pc, 0);
    if (!(c->dlq = rd_kafka_new(RD_KAFKA_PRODUCER, pc, buf, sizeof(buf)))) {
        rd_kafka_conf_destroy(pc);
        return saga_errf(SAGA_ERR_CONFIG, errstr, errstr_size, "kafka DLQ producer: %s", buf);
    }

    return SAGA_OK;
}

/* How soon a second fencing means another running instance has our id, not a session of
 * ours that timed out. */
#define FENCED_AGAIN_MS 30000

void consumer_kafka_refenced(struct saga_consumer *c)
{
    int64_t now = saga_mono_ms();
    char err[512];

    if (c->fenced_at && now - c->fenced_at < FENCED_AGAIN_MS) {
        set_fatal(c,
                  "fenced twice within 30 s: another running instance of this group has the "
                  "same SAGA_INSTANCE_ID (group.instance.id)",
                  c->fenced_reason);
        return;
    }
    saga_log(SAGA_LOG_WARN, NULL,
             "fenced (%s): no other instance should have our SAGA_INSTANCE_ID, so our own "
             "session timed out; opening the consumer again",
             c->fenced_reason);
    /* The fenced consumer can neither commit nor leave: destroyed as it is. What it held
     * is given up (its stored offsets were committed at most a second before; what came
     * after is read again, and the inbox knows it). */
    parts_mark_all_revoked(c);
    c->assigned = 0;
    rd_kafka_destroy_flags(c->rk, RD_KAFKA_DESTROY_F_NO_CONSUMER_CLOSE);
    c->rk = NULL;
    c->fenced = 0;
    c->fenced_at = now;
    if (saga_fault_armed("consumer.reopen")) /* test hook: the reopening fails */
        set_fatal(c, "opening the consumer again", "SAGA_FAULT consumer.reopen");
    else if (open_consumer(c, err, sizeof(err)))
        set_fatal(c, "opening the consumer again", err);
}

/* A static member does not leave its group when it closes (KIP-345): its partitions
 * would wait for it until its session times out. A graceful stop is not a crash: the
 * member unsubscribes first, which gives its partitions up and leaves the group at
 * once (librdkafka sends LeaveGroup on an unsubscribe, not on a close). A crashed one
 * keeps them for its restart. */
static void leave_group(struct saga_consumer *c)
{
    rd_kafka_resp_err_t err = rd_kafka_unsubscribe(c->rk);
    int64_t until = saga_mono_ms() + 10000;
    if (err) {
        saga_log(SAGA_LOG_WARN, NULL, "unsubscribe: %s", rd_kafka_err2str(err));
        return;
    }
    /* librdkafka sends LeaveGroup once the revocation (served by our poll, even of an
     * empty assignment) is done, and resets the member id as it does: an empty
     * assignment alone does not mean the member has left (rd_kafka_consumer_close would
     * then keep a static member in its group). */
    while (saga_mono_ms() < until) {
        rd_kafka_message_t *m;
        char *id = rd_kafka_memberid(c->rk);
        int left = !id || !*id;
        if (id)
            rd_kafka_mem_free(c->rk, id);
        if (left)
            break;
        /* Serves the revocation; a message still arriving is not taken (its offset
         * was not stored, so the partition's next owner reads it). */
        if ((m = rd_kafka_consumer_poll(c->rk, 100)))
            rd_kafka_message_destroy(m);
    }
}

void consumer_kafka_close(struct saga_consumer *c)
{
    if (c->rk) { /* NULL after a reopening that failed (consumer_kafka_refenced) */
        rd_kafka_resp_err_t err = rd_kafka_commit(c->rk, NULL, 0);
        if (err && err != RD_KAFKA_RESP_ERR__NO_OFFSET)
            saga_log(SAGA_LOG_WARN, NULL, "final commit: %s", rd_kafka_err2str(err));
        if (c->static_member && !c->fatal)
            leave_group(c);
        rd_kafka_consumer_close(c->rk);
    }
    rd_kafka_flush(c->dlq, 10000);
}

void consumer_kafka_destroy(struct saga_consumer *c)
{
    if (c->rk)
        rd_kafka_destroy(c->rk);
    if (c->dlq)
        rd_kafka_destroy(c->dlq);
    for (int i = 0; i < c->nparts; i++)
        free(c->parts[i].topic);
    free(c->parts);
}

/* --- consuming ------------------------------------------------------------------ */

static void take(struct saga_consumer *c, rd_kafka_message_t *m)
{
    const struct held_part *p = part_find(c, rd_kafka_topic_name(m->rkt), m->partition);
    struct msg *slot = &c->batch[c->nbatch++];
    slot->rkm = m;
    /* A message of a partition not (or no longer) held is taken with an epoch that never
     * matches: it is abandoned, and the partition's owner gets it from the last commit. */
    slot->epoch = p && p->assigned ? p->epoch : UINT64_MAX;
}

void consumer_kafka_poll_batch(struct saga_consumer *c, int timeout_ms)
{
    rd_kafka_message_t *m = rd_kafka_consumer_poll(c->rk, timeout_ms);

    rd_kafka_poll(c->dlq, 0); /* serves the DLQ producer's callbacks */
    while (m) {
        if (m->err) {
            if (m->err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
                saga_log(SAGA_LOG_WARN, NULL, "consume: %s", rd_kafka_message_errstr(m));
            if (m->err == RD_KAFKA_RESP_ERR__FATAL)
                on_fatal(c, c->rk);
            rd_kafka_message_destroy(m);
        } else {
            take(c, m);
        }
        if (c->nbatch == c->set.batch_size)
            break;
        m = rd_kafka_consumer_poll(c->rk, 0);
    }
}

/* Puts m's partition back to m (it will be consumed again) and keeps it paused. */
static void put_back(struct saga_consumer *c, const rd_kafka_message_t *m)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(l, rd_kafka_topic_name(m->rkt), m->partition)->offset =
        m->offset;
    error_free(rd_kafka_seek_partitions(c->rk, l, 5000), "seek back");
    rd_kafka_pause_partitions(c->rk, l);
    rd_kafka_topic_partition_list_destroy(l);
}

void consumer_kafka_wait(struct saga_consumer *c, int64_t ms, const struct msg *m, int until_report)
{
    rd_kafka_topic_partition_list_t *asg = NULL;
    int64_t end = saga_mono_ms() + ms;

    /* Paused, the assignment fetches nothing; polling keeps the membership alive and
     * serves rebalances. What is fetched stays where it was: librdkafka resumes a
     * partition at the position after the last message it gave us. */
    if (!rd_kafka_assignment(c->rk, &asg))
        rd_kafka_pause_partitions(c->rk, asg);
    while (!consumer_stopping(c) && saga_mono_ms() < end) {
        rd_kafka_message_t *km;
        if (until_report && c->dlq_done)
            break;
        if (m && !consumer_kafka_held(c, m))
            break;
        rd_kafka_poll(c->dlq, 0);
        km = rd_kafka_consumer_poll(c->rk, until_report ? 20 : 100);
        if (km) {
            /* From a partition assigned meanwhile (not paused yet): consumed again later. */
            if (!km->err)
                put_back(c, km);
            else if (km->err == RD_KAFKA_RESP_ERR__FATAL)
                on_fatal(c, c->rk);
            rd_kafka_message_destroy(km);
        }
    }
    if (asg)
        rd_kafka_topic_partition_list_destroy(asg);
    if (!rd_kafka_assignment(c->rk, &asg)) {
        rd_kafka_resume_partitions(c->rk, asg);
        rd_kafka_topic_partition_list_destroy(asg);
    }
}

int consumer_kafka_send_dlq(struct saga_consumer *c, const struct msg *m, void *key, size_t key_len,
                            void *value, size_t len, rd_kafka_headers_t *h, int64_t timeout_ms,
                            char *errstr, size_t errstr_size)
{
    rd_kafka_resp_err_t err;
    int64_t end = timeout_ms > 0 ? saga_mono_ms() + timeout_ms : INT64_MAX;

    c->dlq_seq++;
    c->dlq_done = 0;
    c->dlq_err = RD_KAFKA_RESP_ERR_NO_ERROR;
    err = rd_kafka_producev(c->dlq, RD_KAFKA_V_TOPIC(c->conf.dlq_topic),
                            RD_KAFKA_V_KEY(key, key_len), RD_KAFKA_V_VALUE(value, len),
                            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(h),
                            RD_KAFKA_V_OPAQUE((void *)(uintptr_t)c->dlq_seq), RD_KAFKA_V_END);
    if (err) {
        rd_kafka_headers_destroy(h);
        snprintf(errstr, errstr_size, "cannot send to %s: %s", c->conf.dlq_topic,
                 rd_kafka_err2str(err));
        return -1;
    }
    /* The report comes after the broker's answer, or after message.timeout.ms. */
    while (!c->dlq_done && !consumer_stopping(c) && (!m || consumer_kafka_held(c, m)) &&
           saga_mono_ms() < end)
        consumer_kafka_wait(c, 1000, m, 1);
    if (!c->dlq_done) {
        /* Its report, should it come, is stale now: a second dead letter may follow. */
        snprintf(errstr, errstr_size, "gave up waiting for %s to acknowledge (%s)",
                 c->conf.dlq_topic,
                 consumer_stopping(c)    ? "stopping"
                 : saga_mono_ms() >= end ? "timed out"
                                         : "partition revoked");
        c->dlq_seq++;
        return -1;
    }
    if (c->dlq_err) {
        snprintf(errstr, errstr_size, "%s refused the dead letter: %s", c->conf.dlq_topic,
                 rd_kafka_err2str(c->dlq_err));
        return -1;
    }
    return 0;
}
