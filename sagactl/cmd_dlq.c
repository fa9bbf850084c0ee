/*
 * sagactl dlq list SERVICE|--topic T
 * sagactl dlq show SERVICE|--topic T PARTITION:OFFSET
 * sagactl dlq replay SERVICE|--topic T (PARTITION:OFFSET ... | --all)
 *
 * Reads a dead-letter topic from its beginning to its current end without a
 * consumer group (nothing is committed), and replays messages to the topic they
 * came from (dlq.source.topic) with their original key, value and headers.
 *
 * A dead letter goes back only where it could have come from (docs/SECURITY.md): a
 * service's DLQ only to a topic that service reads, any other DLQ never to one of the
 * suite's topics; and on a topic with an owner (the suite's, or SAGA_TOPIC_OWNERS) only
 * an event that decodes and belongs there (its type, meta.producer = the owner). Anything
 * else is "refused" with the reason on stderr and the exit status 1.
 *
 * On a topic with an owner a dead letter also goes back only if it is what was really on
 * that topic: the record at its dlq.source.partition / dlq.source.offset is read (an
 * assign at that offset, no group, nothing committed) and must have the same key and value,
 * byte for byte; it is that record (with its headers) that is replayed. Anyone who may
 * write a DLQ (a service's Kafka login) or a service's deferred table (its database login,
 * whose dead rows the runtime sweeps to its DLQ) can make a dead letter say anything, but
 * cannot put a record on another service's topic. A dead letter whose original is gone
 * (retention, compaction) is refused unless named with --force-unverified.
 *
 * A replay counts as done only when its delivery report says so (never because
 * rd_kafka_flush returned): each message gets one line, "replayed" on stdout or
 * "failed" with the cause on stderr, and any failure makes the exit status 1.
 * The dead letter stays in its topic either way, so a failed one can be replayed
 * again once the cause is fixed.
 */
#include <ctype.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "saga/kafka.h"
#include "saga/registry.h"
#include "saga/serde.h"
#include "saga/topology.h"
#include "sagactl.h"

static void dlq_usage(FILE *out)
{
    fprintf(out,
            "usage: sagactl dlq list   (SERVICE | --topic TOPIC)\n"
            "       sagactl dlq show   (SERVICE | --topic TOPIC) PARTITION:OFFSET\n"
            "       sagactl dlq replay (SERVICE | --topic TOPIC) (PARTITION:OFFSET ... | --all)\n"
            "\n"
            "SERVICE is order, inventory, payment, shipping or notification (its DLQ is\n"
            "<service>.dlq). list prints one line per dead letter: where it sits, when and\n"
            "why it failed, where it came from. show prints one with all its headers.\n"
            "replay sends the original message back to its source topic, with a\n"
            "dlq.replayed_from header; the dead letter itself stays where it is. It prints\n"
            "one line per message once the broker acknowledged it (replayed) or refused\n"
            "it (failed, with the cause), and exits 1 if any was not replayed.\n"
            "A dead letter is refused (not sent) unless its source topic is one the\n"
            "DLQ's service reads and its event decodes and belongs on that topic\n"
            "(its type, and meta.producer the topic's owner; SAGA_TOPIC_OWNERS names\n"
            "the owners of topics outside the suite), and, on a topic with an owner,\n"
            "unless it is the record at its source position (dlq.source.partition,\n"
            "dlq.source.offset), key and value byte for byte: that record is what is sent.\n"
            "\n"
            "  --timeout S   give up on an unreachable broker after S seconds (default 10)\n"
            "  --force-unverified\n"
            "                replay the dead letters named by PARTITION:OFFSET even if\n"
            "                their original is gone from the source topic (retention,\n"
            "                compaction), after you checked them: they are still checked\n"
            "                for topic, type and producer. Not with --all.\n");
}

struct ref {
    int32_t partition;
    int64_t offset;
};

/* Calls fn for every message of topic, beginning to current end. */
typedef int (*visit_fn)(rd_kafka_message_t *m, void *arg);

static int visit(const struct saga_config *cfg, const char *topic, int timeout_s, visit_fn fn,
                 void *arg)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_dup(cfg->kafka_conf);
    rd_kafka_topic_partition_list_t *asg;
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt;
    char errstr[256];
    int64_t *end;
    int parts, remaining = 0, rc = SAGACTL_EXIT_OK;
    rd_kafka_t *rk;

    rd_kafka_conf_set(conf, "group.id", "sagactl-dlq", NULL, 0); /* never joins: assign only */
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", NULL, 0);
    saga_kafka_conf_set_logger(conf, 1);
    if (!(rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr)))) {
        fprintf(stderr, "sagactl dlq: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        return SAGACTL_EXIT_CONFIG;
    }
    rkt = rd_kafka_topic_new(rk, topic, NULL);
    if (rd_kafka_metadata(rk, 0, rkt, &md, timeout_s * 1000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        fprintf(stderr, "sagactl dlq: kafka at %s did not answer\n", cfg->kafka_bootstrap);
        rd_kafka_topic_destroy(rkt);
        rd_kafka_destroy(rk);
        return SAGACTL_EXIT_UNREACH;
    }
    if (md->topic_cnt != 1 || md->topics[0].err) {
        fprintf(stderr, "sagactl dlq: no topic %s\n", topic);
        rd_kafka_metadata_destroy(md);
        rd_kafka_topic_destroy(rkt);
        rd_kafka_destroy(rk);
        return SAGACTL_EXIT_FAILURE;
    }
    parts = md->topics[0].partition_cnt;
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    end = calloc((size_t)parts, sizeof(*end));
    asg = rd_kafka_topic_partition_list_new(parts);
    for (int p = 0; p < parts; p++) {
        int64_t lo = 0, hi = 0;
        rd_kafka_query_watermark_offsets(rk, topic, p, &lo, &hi, timeout_s * 1000);
        end[p] = hi;
        if (hi > lo) {
            rd_kafka_topic_partition_list_add(asg, topic, p)->offset = lo;
            remaining++;
        }
    }
    rd_kafka_assign(rk, asg);
    rd_kafka_topic_partition_list_destroy(asg);
    for (time_t deadline = time(NULL) + timeout_s; remaining > 0 && time(NULL) < deadline;) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 200);
        if (!m)
            continue;
        if (!m->err && m->partition < parts && m->offset < end[m->partition]) {
            deadline = time(NULL) + timeout_s;
            if (fn(m, arg) != 0)
                rc = SAGACTL_EXIT_FAILURE;
            if (m->offset + 1 >= end[m->partition])
                remaining--;
        }
        rd_kafka_message_destroy(m);
    }
    if (remaining > 0) {
        fprintf(stderr, "sagactl dlq: stopped reading %s before its end (timeout)\n", topic);
        rc = SAGACTL_EXIT_UNREACH;
    }
    free(end);
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return rc;
}

static void header(rd_kafka_message_t *m, const char *name, char *buf, size_t size)
{
    rd_kafka_headers_t *h = NULL;
    const void *v;
    size_t len;
    buf[0] = '\0';
    if (!rd_kafka_message_headers(m, &h) && !rd_kafka_header_get_last(h, name, &v, &len) && v)
        snprintf(buf, size, "%.*s", (int)len, (const char *)v);
}

static int print_line(rd_kafka_message_t *m, void *arg)
{
    char reason[64], when[40], src[160], sp[16], so[24], att[8], type[64], error[160], from[220];
    int *count = arg;
    header(m, "dlq.reason", reason, sizeof(reason));
    header(m, "dlq.first_failed_at", when, sizeof(when));
    header(m, "dlq.source.topic", src, sizeof(src));
    header(m, "dlq.source.partition", sp, sizeof(sp));
    header(m, "dlq.source.offset", so, sizeof(so));
    header(m, "dlq.attempts", att, sizeof(att));
    header(m, "event_type", type, sizeof(type));
    header(m, "dlq.error", error, sizeof(error));
    if ((*count)++ == 0)
        printf("%-12s %-24s %-11s %-8s %-26s %-18s %s\n", "AT", "FIRST FAILED", "REASON",
               "ATTEMPTS", "FROM", "EVENT", "ERROR");
    /* Every header as text that cannot drive the terminal (a dead letter is anyone's). */
    snprintf(from, sizeof(from), "%s[%s]@%s", src, sp, so);
    printf("%" PRId32 ":%-10" PRId64 " %-24s %-11s %-8s %-26s %-18s %s\n", m->partition, m->offset,
           sagactl_safe(when), sagactl_safe(reason), sagactl_safe(att), sagactl_safe(from),
           type[0] ? sagactl_safe(type) : "-", sagactl_safe(error));
    return 0;
}

static int parse_ref(const char *s, struct ref *r)
{
    char *end;
    long p = strtol(s, &end, 10);
    if (end == s || *end != ':' || p < 0)
        return -1;
    r->partition = (int32_t)p;
    r->offset = strtoll(end + 1, &end, 10);
    return *end || r->offset < 0 ? -1 : 0;
}

/* What the delivery reports of a replay said (updated by replay_report). */
struct replay_outcome {
    int sent, replayed, failed;
};

struct pick {
    const struct ref *refs;
    int nrefs, all, found;
    rd_kafka_t *producer; /* replay */
    struct replay_outcome *outcome;
    const char *dlq;
    struct saga_serde *serde;
    struct saga_topic_owners owners; /* replay: SAGA_TOPIC_OWNERS */
    int refused;
    const struct saga_config *cfg;
    int timeout_s;
    int force_unverified; /* replay: a gone original does not refuse a named dead letter */
    rd_kafka_t *origin;   /* replay: reads the originals (origin_read); NULL until needed */
};

static int wanted(struct pick *p, rd_kafka_message_t *m)
{
    if (p->all)
        return 1;
    for (int i = 0; i < p->nrefs; i++)
        if (p->refs[i].partition == m->partition && p->refs[i].offset == m->offset)
            return 1;
    return 0;
}

static int show_one(rd_kafka_message_t *m, void *arg)
{
    struct pick *p = arg;
    rd_kafka_headers_t *h = NULL;
    const char *name;
    const void *v;
    size_t len;
    struct saga_event ev = {0};
    char err[256];

    if (!wanted(p, m))
        return 0;
    p->found++;
    printf("dead letter %s %" PRId32 ":%" PRId64 "\n", p->dlq, m->partition, m->offset);
    printf("  key      %s\n", sagactl_safen(m->key, m->key ? m->key_len : 0));
    if (!rd_kafka_message_headers(m, &h))
        for (size_t i = 0; !rd_kafka_header_get_all(h, i, &name, &v, &len); i++)
            printf("  %-22s %s\n", sagactl_safe(name), sagactl_safen(v, v ? len : 0));
    if (saga_serde_decode(p->serde, m->payload, m->len, &ev, err, sizeof(err)) == SAGA_DECODE_OK) {
        printf("  body     %s, order %s, event %s (%zu bytes)\n", saga_event_type_name(ev.type),
               sagactl_safe(ev.meta.order_id), sagactl_safe(ev.meta.event_id), m->len);
    } else {
        printf("  body     %zu bytes, not decodable here: %s\n  hex     ", m->len,
               sagactl_safe(err));
        for (size_t i = 0; i < m->len && i < 64; i++)
            printf(" %02x", ((const unsigned char *)m->payload)[i]);
        printf("%s\n", m->len > 64 ? " ..." : "");
    }
    saga_event_release(&ev);
    return 0;
}

/*
 * The delivery report of one replayed message (rd_kafka_poll / rd_kafka_flush on the
 * main thread): its one line. The message's opaque is its "DLQ/P/O to TOPIC", owned
 * by the message until here.
 */
static void replay_report(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    struct replay_outcome *o = opaque;
    char *what = m->_private;

    (void)rk;
    if (m->err) {
        o->failed++;
        fprintf(stderr, "failed %s: %s\n", what, rd_kafka_err2str(m->err));
    } else {
        o->replayed++;
        printf("replayed %s (partition %" PRId32 ", offset %" PRId64 ")\n", what, m->partition,
               m->offset);
    }
    fflush(stdout);
    free(what);
}

/* 0 when m may go back to topic (see the top of this file); -1 with why. */
static int replay_check(struct pick *p, rd_kafka_message_t *m, const char *topic, char *why,
                        size_t why_size)
{
    struct saga_event ev = {0};
    char err[256];
    int rc;

    if (saga_dlq_replay_allowed(p->dlq, topic, why, why_size) != 0)
        return -1;
    if (!saga_topic_owner(&p->owners, topic))
        return 0; /* no owner: nothing of the suite reads it, nothing to check against */
    if (saga_serde_decode(p->serde, m->payload, m->len, &ev, err, sizeof(err)) != SAGA_DECODE_OK) {
        snprintf(why, why_size, "its event does not decode here, so it cannot be checked: %s", err);
        saga_event_release(&ev);
        return -1;
    }
    rc = saga_event_belongs(&p->owners, topic, ev.type, ev.meta.producer, why, why_size);
    saga_event_release(&ev);
    return rc;
}

/* What origin_read found at a dead letter's source position. */
enum origin {
    ORIGIN_FOUND,   /* *out is the record there */
    ORIGIN_NONE,    /* there is no such record and never was (why says so) */
    ORIGIN_GONE,    /* it was there and is not any more: retention, compaction (why) */
    ORIGIN_UNKNOWN, /* the broker did not tell (why) */
};

/* Parses a decimal header value into *v (>= 0); -1 when it is not one. */
static int header_int64(rd_kafka_message_t *m, const char *name, int64_t *v)
{
    char buf[32], *end;
    header(m, name, buf, sizeof(buf));
    if (!isdigit((unsigned char)buf[0]))
        return -1;
    *v = strtoll(buf, &end, 10);
    return *end || *v < 0 ? -1 : 0;
}

/*
 * The record at topic/partition/offset, read with p->origin (made here on first use: a
 * consumer that only assigns, joins no group and commits nothing). A transaction's marker
 * or a compacted record leaves a hole in the offsets and an aborted record is not read
 * (read_committed), so the first record at or after offset is read and must be at offset.
 */
static enum origin origin_read(struct pick *p, const char *topic, int32_t partition, int64_t offset,
                               rd_kafka_message_t **out, char *why, size_t why_size)
{
    rd_kafka_topic_partition_list_t *asg;
    rd_kafka_resp_err_t err;
    int64_t lo = 0, hi = 0;
    enum origin res = ORIGIN_UNKNOWN;
    const char *hint =
        p->force_unverified ? "" : "; replay it with --force-unverified after checking it";
    char at[300];

    *out = NULL;
    snprintf(at, sizeof(at), "%s/%" PRId32 "/%" PRId64, topic, partition, offset);
    if (!p->origin) {
        rd_kafka_conf_t *conf = rd_kafka_conf_dup(p->cfg->kafka_conf);
        char errstr[256];
        rd_kafka_conf_set(conf, "group.id", "sagactl-dlq-origin", NULL, 0); /* assign only */
        rd_kafka_conf_set(conf, "enable.auto.commit", "false", NULL, 0);
        rd_kafka_conf_set(conf, "enable.auto.offset.store", "false", NULL, 0);
        rd_kafka_conf_set(conf, "enable.partition.eof", "true", NULL, 0);
        rd_kafka_conf_set(conf, "auto.offset.reset", "error", NULL, 0); /* never another one */
        rd_kafka_conf_set(conf, "isolation.level", "read_committed", NULL, 0);
        saga_kafka_conf_set_logger(conf, 1);
        if (!(p->origin = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr)))) {
            rd_kafka_conf_destroy(conf);
            snprintf(why, why_size, "cannot read the original at %s: %s", at, errstr);
            return ORIGIN_UNKNOWN;
        }
    }
    err = rd_kafka_query_watermark_offsets(p->origin, topic, partition, &lo, &hi,
                                           p->timeout_s * 1000);
    if (err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART ||
        err == RD_KAFKA_RESP_ERR__UNKNOWN_PARTITION || err == RD_KAFKA_RESP_ERR__UNKNOWN_TOPIC) {
        snprintf(why, why_size, "there is no record at %s (no such partition)", at);
        return ORIGIN_NONE;
    }
    if (err) {
        snprintf(why, why_size, "cannot read the original at %s: %s", at, rd_kafka_err2str(err));
        return ORIGIN_UNKNOWN;
    }
    if (offset >= hi) {
        snprintf(why, why_size, "there is no record at %s (the partition ends at %" PRId64 ")", at,
                 hi);
        return ORIGIN_NONE;
    }
    if (offset < lo) {
        snprintf(why, why_size,
                 "the original at %s is gone (retention: the partition starts at %" PRId64 ")%s",
                 at, lo, hint);
        return ORIGIN_GONE;
    }
    asg = rd_kafka_topic_partition_list_new(1);
    rd_kafka_topic_partition_list_add(asg, topic, partition)->offset = offset;
    err = rd_kafka_assign(p->origin, asg);
    rd_kafka_topic_partition_list_destroy(asg);
    if (err) {
        snprintf(why, why_size, "cannot read the original at %s: %s", at, rd_kafka_err2str(err));
        return ORIGIN_UNKNOWN;
    }
    snprintf(why, why_size, "cannot read the original at %s (timeout)", at);
    for (time_t deadline = time(NULL) + p->timeout_s; time(NULL) < deadline;) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(p->origin, 200);
        if (!m)
            continue;
        if (m->rkt && (strcmp(rd_kafka_topic_name(m->rkt), topic) || m->partition != partition)) {
            rd_kafka_message_destroy(m); /* of an earlier assignment */
            continue;
        }
        if (!m->err && m->offset == offset) {
            *out = m;
            res = ORIGIN_FOUND;
            break;
        }
        /* Past it or the partition's end: within the log, offset holds no record a
         * consumer reads (a transaction's marker, an aborted record, or one compacted
         * away). Never overridable: a marker's offset never held an event, and any
         * transactional batch leaves one for a forger to name. */
        if ((!m->err && m->offset > offset) || m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF) {
            snprintf(why, why_size,
                     "there is no record at %s (the offset holds a transaction marker, an "
                     "aborted or a compacted-away record)",
                     at);
            res = ORIGIN_NONE;
            rd_kafka_message_destroy(m);
            break;
        }
        /* Out of range: retention removed it while we looked. */
        if (m->err == RD_KAFKA_RESP_ERR__AUTO_OFFSET_RESET ||
            m->err == RD_KAFKA_RESP_ERR_OFFSET_OUT_OF_RANGE) {
            snprintf(why, why_size, "the original at %s is gone (retention)%s", at, hint);
            res = ORIGIN_GONE;
            rd_kafka_message_destroy(m);
            break;
        }
        if (m->err) {
            snprintf(why, why_size, "cannot read the original at %s: %s", at,
                     rd_kafka_message_errstr(m));
        }
        rd_kafka_message_destroy(m);
    }
    rd_kafka_assign(p->origin, NULL);
    return res;
}

static int same_bytes(const void *a, size_t alen, const void *b, size_t blen)
{
    if (!a || !b)
        return !a && !b;
    return alen == blen && (alen == 0 || memcmp(a, b, alen) == 0);
}

/*
 * 0 when the record at m's source position on topic is m's key and value byte for byte,
 * with *orig that record (the caller destroys it); also 0, with *orig NULL, when the
 * original is gone and m was named with --force-unverified (a warning says so). -1 with
 * why otherwise.
 */
static int origin_check(struct pick *p, rd_kafka_message_t *m, const char *topic,
                        rd_kafka_message_t **orig, char *why, size_t why_size)
{
    int64_t partition, offset;
    enum origin found;

    *orig = NULL;
    if (header_int64(m, "dlq.source.partition", &partition) != 0 || partition > INT32_MAX ||
        header_int64(m, "dlq.source.offset", &offset) != 0) {
        snprintf(why, why_size,
                 "it names no source position (dlq.source.partition, dlq.source.offset), so it "
                 "cannot be checked against the record it claims to be");
        return -1;
    }
    found = origin_read(p, topic, (int32_t)partition, offset, orig, why, why_size);
    if (found == ORIGIN_GONE && p->force_unverified) {
        fprintf(stderr, "unverified %s/%" PRId32 "/%" PRId64 ": %s; sent as --force-unverified\n",
                p->dlq, m->partition, m->offset, sagactl_safe(why));
        return 0;
    }
    if (found != ORIGIN_FOUND)
        return -1;
    if (!same_bytes(m->key, m->key_len, (*orig)->key, (*orig)->key_len) ||
        !same_bytes(m->payload, m->len, (*orig)->payload, (*orig)->len)) {
        snprintf(why, why_size,
                 "it is not the record at %s/%" PRId64 "/%" PRId64 " (its %s differs from the one "
                 "there)",
                 topic, partition, offset,
                 same_bytes(m->key, m->key_len, (*orig)->key, (*orig)->key_len) ? "value" : "key");
        rd_kafka_message_destroy(*orig);
        *orig = NULL;
        return -1;
    }
    return 0;
}

static int replay_one(rd_kafka_message_t *m, void *arg)
{
    struct pick *p = arg;
    rd_kafka_headers_t *src = NULL, *h;
    rd_kafka_message_t *orig = NULL, *sent;
    const char *name;
    const void *v;
    size_t len, wlen;
    char topic[256], from[300], why[768], *what;
    rd_kafka_resp_err_t err;

    if (!wanted(p, m))
        return 0;
    p->found++;
    header(m, "dlq.source.topic", topic, sizeof(topic));
    snprintf(from, sizeof(from), "%s/%" PRId32 "/%" PRId64, p->dlq, m->partition, m->offset);
    if (!topic[0]) {
        fprintf(stderr, "failed %s: it has no dlq.source.topic header\n", from);
        return -1;
    }
    if (replay_check(p, m, topic, why, sizeof(why)) != 0 ||
        (saga_topic_owner(&p->owners, topic) &&
         origin_check(p, m, topic, &orig, why, sizeof(why)) != 0)) {
        p->refused++;
        fprintf(stderr, "refused %s to %s: %s\n", from, sagactl_safe(topic), sagactl_safe(why));
        return -1;
    }
    /* What goes back is what was there: the original's headers, not the dead letter's. */
    sent = orig ? orig : m;
    /* what: for the messages, so the topic as shown (escaped); topic itself stays as it is. */
    wlen = strlen(from) + strlen(sagactl_safe(topic)) + 5;
    if (!(what = malloc(wlen))) {
        fprintf(stderr, "failed %s to %s: out of memory\n", from, sagactl_safe(topic));
        if (orig)
            rd_kafka_message_destroy(orig);
        return -1;
    }
    snprintf(what, wlen, "%s to %s", from, sagactl_safe(topic));
    h = rd_kafka_headers_new(8);
    if (!rd_kafka_message_headers(sent, &src))
        for (size_t i = 0; !rd_kafka_header_get_all(src, i, &name, &v, &len); i++)
            if (strncmp(name, "dlq.", 4) != 0)
                rd_kafka_header_add(h, name, -1, v, (ssize_t)len);
    rd_kafka_header_add(h, "dlq.replayed_from", -1, from, -1);
    for (;;) {
        err = rd_kafka_producev(
            p->producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(sent->key, sent->key_len),
            RD_KAFKA_V_VALUE(sent->payload, sent->len), RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY),
            RD_KAFKA_V_HEADERS(h), RD_KAFKA_V_OPAQUE(what), RD_KAFKA_V_END);
        if (err != RD_KAFKA_RESP_ERR__QUEUE_FULL)
            break;
        rd_kafka_poll(p->producer, 100); /* reports make room */
    }
    if (orig)
        rd_kafka_message_destroy(orig); /* copied (RD_KAFKA_MSG_F_COPY) */
    if (err) {
        rd_kafka_headers_destroy(h);
        fprintf(stderr, "failed %s: %s\n", what, rd_kafka_err2str(err));
        free(what);
        return -1;
    }
    p->outcome->sent++;
    rd_kafka_poll(p->producer, 0);
    return 0;
}

int sagactl_dlq(const struct saga_config *cfg, int argc, char **argv)
{
    const char *sub = argc > 1 ? argv[1] : "", *dlq = NULL;
    struct ref refs[64];
    struct replay_outcome outcome = {0, 0, 0};
    struct pick pick = {.refs = refs, .outcome = &outcome};
    int timeout_s = 10, count = 0, rc;
    char err[512];

    if (!strcmp(sub, "--help") || !strcmp(sub, "-h") || !strcmp(sub, "help")) {
        dlq_usage(stdout);
        return SAGACTL_EXIT_OK;
    }
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            dlq_usage(stdout);
            return SAGACTL_EXIT_OK;
        } else if (!strcmp(argv[i], "--topic") && i + 1 < argc) {
            dlq = argv[++i];
        } else if (!strcmp(argv[i], "--timeout") && i + 1 < argc) {
            timeout_s = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--all")) {
            pick.all = 1;
        } else if (!strcmp(argv[i], "--force-unverified") && !strcmp(sub, "replay")) {
            pick.force_unverified = 1;
        } else if (isdigit((unsigned char)argv[i][0]) && pick.nrefs < 64 &&
                   parse_ref(argv[i], &refs[pick.nrefs]) == 0) {
            pick.nrefs++;
        } else if (!dlq && saga_service_find(argv[i])) {
            dlq = saga_service_find(argv[i])->dlq_topic;
        } else {
            fprintf(stderr, "sagactl dlq: unexpected '%s'\n", argv[i]);
            dlq_usage(stderr);
            return SAGACTL_EXIT_USAGE;
        }
    }
    if (!dlq || timeout_s <= 0 ||
        (strcmp(sub, "list") && strcmp(sub, "show") && strcmp(sub, "replay")) ||
        (!strcmp(sub, "show") && pick.nrefs == 0) ||
        (!strcmp(sub, "replay") && pick.nrefs == 0 && !pick.all) ||
        (pick.force_unverified && pick.all)) {
        dlq_usage(stderr);
        return SAGACTL_EXIT_USAGE;
    }
    pick.dlq = dlq;
    pick.cfg = cfg;
    pick.timeout_s = timeout_s;
    if (!strcmp(sub, "list")) {
        rc = visit(cfg, dlq, timeout_s, print_line, &count);
        if (rc == SAGACTL_EXIT_OK && count == 0)
            printf("%s is empty\n", dlq);
        return rc;
    }
    if (!strcmp(sub, "show")) {
        struct saga_registry *registry = NULL; /* Confluent framing needs its schema ids */
        if ((rc = sagactl_serde_open(cfg, "dlq", &pick.serde, &registry)) != SAGACTL_EXIT_OK)
            return rc;
        rc = visit(cfg, dlq, timeout_s, show_one, &pick);
        saga_serde_destroy(pick.serde);
        saga_registry_destroy(registry);
    } else {
        struct saga_registry *registry = NULL;
        rd_kafka_conf_t *pc;
        if (saga_topic_owners_parse(&pick.owners, saga_env("SAGA_TOPIC_OWNERS", NULL), err,
                                    sizeof(err)) != SAGA_OK) {
            fprintf(stderr, "sagactl dlq: %s\n", err);
            return SAGACTL_EXIT_CONFIG;
        }
        if ((rc = sagactl_serde_open(cfg, "dlq", &pick.serde, &registry)) != SAGACTL_EXIT_OK)
            return rc;
        pc = rd_kafka_conf_dup(cfg->kafka_conf);
        rd_kafka_conf_set(pc, "enable.idempotence", "true", NULL, 0);
        rd_kafka_conf_set(pc, "partitioner", "murmur2_random", NULL, 0);
        saga_kafka_conf_set_logger(pc, 1);
        rd_kafka_conf_set_dr_msg_cb(pc, replay_report);
        rd_kafka_conf_set_opaque(pc, &outcome);
        if (!(pick.producer = rd_kafka_new(RD_KAFKA_PRODUCER, pc, err, sizeof(err)))) {
            fprintf(stderr, "sagactl dlq: %s\n", err);
            rd_kafka_conf_destroy(pc);
            saga_serde_destroy(pick.serde);
            saga_registry_destroy(registry);
            return SAGACTL_EXIT_CONFIG;
        }
        rc = visit(cfg, dlq, timeout_s, replay_one, &pick);
        if (rd_kafka_flush(pick.producer, timeout_s * 1000) != RD_KAFKA_RESP_ERR_NO_ERROR) {
            /* Whatever is still queued or in flight gets a report now (an in-flight one
             * may yet have been written: the line says it was not confirmed). */
            rd_kafka_purge(pick.producer, RD_KAFKA_PURGE_F_QUEUE | RD_KAFKA_PURGE_F_INFLIGHT);
            rd_kafka_flush(pick.producer, 5000);
        }
        if (outcome.replayed + outcome.failed < outcome.sent)
            fprintf(stderr, "sagactl dlq: %d replays got no delivery report\n",
                    outcome.sent - outcome.replayed - outcome.failed);
        if (outcome.replayed < outcome.sent) {
            fprintf(stderr, "sagactl dlq: %d of %d messages were not replayed\n",
                    outcome.sent - outcome.replayed, outcome.sent);
            rc = SAGACTL_EXIT_FAILURE;
        }
        if (pick.refused) {
            fprintf(stderr, "sagactl dlq: %d dead letter%s refused (not sent)\n", pick.refused,
                    pick.refused == 1 ? "" : "s");
            rc = SAGACTL_EXIT_FAILURE;
        }
        rd_kafka_destroy(pick.producer);
        if (pick.origin) {
            rd_kafka_consumer_close(pick.origin);
            rd_kafka_destroy(pick.origin);
        }
        saga_serde_destroy(pick.serde);
        saga_registry_destroy(registry);
    }
    if (rc == SAGACTL_EXIT_OK && pick.found < (pick.all ? 0 : pick.nrefs)) {
        fprintf(stderr, "sagactl dlq: %d of the given positions are not in %s\n",
                pick.nrefs - pick.found, dlq);
        rc = SAGACTL_EXIT_FAILURE;
    }
    return rc;
}
