/*
 * sagactl watch [ORDER_ID] [--from-beginning] [--timeout S]
 * sagactl tail TOPIC [--from-beginning] [--count N] [--timeout S]
 *
 * Both read Kafka directly with a consumer that never joins a group and never
 * commits: every partition of the topics is assigned at its end (or beginning),
 * so watching changes nothing for the services' consumer groups. Every message
 * is decoded with the serde (single-object and Confluent framing; the registry
 * when SCHEMA_REGISTRY_URL is set); one that does not decode is reported in one
 * line, never fatal.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "saga/clock.h"
#include "saga/ids.h"
#include "saga/kafka.h"
#include "saga/registry.h"
#include "saga/topology.h"
#include "sagactl.h"

#define MAX_TOPICS SAGA_SERVICE_COUNT

/* --- the consumer ------------------------------------------------------------- */

struct follow {
    rd_kafka_t *rk;
    int ntopics;
    const char *topics[MAX_TOPICS];
    int parts[MAX_TOPICS];
    int64_t *end[MAX_TOPICS]; /* catch-up: the high watermark of each partition at start */
    int behind;               /* catch-up: partitions not read up to end yet */
};

static void follow_close(struct follow *f)
{
    if (f->rk) {
        rd_kafka_consumer_close(f->rk);
        rd_kafka_destroy(f->rk);
    }
    for (int t = 0; t < f->ntopics; t++)
        free(f->end[t]);
    memset(f, 0, sizeof(*f));
}

/*
 * Assigns every partition of topics at their end, or their beginning. With
 * catch_up, also notes where each partition ends now (follow_caught_up).
 */
static int follow_open(struct follow *f, const struct saga_config *cfg, const char *cmd,
                       const char **topics, int ntopics, int from_beginning, int catch_up)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_dup(cfg->kafka_conf);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_partition_list_t *asg;
    rd_kafka_resp_err_t err;
    char errstr[256];

    memset(f, 0, sizeof(*f));
    rd_kafka_conf_set(conf, "group.id", "sagactl-watch", NULL, 0); /* never joins: assign only */
    rd_kafka_conf_set(conf, "enable.auto.commit", "false", NULL, 0);
    rd_kafka_conf_set(conf, "enable.auto.offset.store", "false", NULL, 0);
    rd_kafka_conf_set(conf, "fetch.wait.max.ms", "100", NULL, 0);
    saga_kafka_conf_set_logger(conf, 1);
    if (!(f->rk = rd_kafka_new(RD_KAFKA_CONSUMER, conf, errstr, sizeof(errstr)))) {
        fprintf(stderr, "sagactl %s: %s\n", cmd, errstr);
        rd_kafka_conf_destroy(conf);
        return SAGACTL_EXIT_CONFIG;
    }
    if ((err = rd_kafka_metadata(f->rk, 1, NULL, &md, 10000)) != RD_KAFKA_RESP_ERR_NO_ERROR) {
        fprintf(stderr, "sagactl %s: kafka at %s did not answer: %s\n", cmd, cfg->kafka_bootstrap,
                rd_kafka_err2str(err));
        follow_close(f);
        return SAGACTL_EXIT_UNREACH;
    }
    for (int t = 0; t < ntopics; t++) {
        int found = 0;
        for (int i = 0; i < md->topic_cnt; i++)
            if (!strcmp(md->topics[i].topic, topics[t]) && !md->topics[i].err) {
                f->parts[t] = md->topics[i].partition_cnt;
                found = 1;
            }
        if (!found || f->parts[t] <= 0) {
            fprintf(stderr, "sagactl %s: no topic %s at %s\n", cmd, topics[t],
                    cfg->kafka_bootstrap);
            rd_kafka_metadata_destroy(md);
            follow_close(f);
            return SAGACTL_EXIT_FAILURE;
        }
        f->topics[t] = topics[t];
        f->ntopics++;
    }
    rd_kafka_metadata_destroy(md);

    asg = rd_kafka_topic_partition_list_new(8);
    for (int t = 0; t < ntopics; t++) {
        if (catch_up)
            f->end[t] = calloc((size_t)f->parts[t], sizeof(int64_t));
        for (int p = 0; p < f->parts[t]; p++) {
            rd_kafka_topic_partition_list_add(asg, topics[t], p)->offset =
                from_beginning ? RD_KAFKA_OFFSET_BEGINNING : RD_KAFKA_OFFSET_END;
            if (catch_up && f->end[t]) {
                int64_t lo = 0, hi = 0;
                if (rd_kafka_query_watermark_offsets(f->rk, topics[t], p, &lo, &hi, 10000))
                    lo = hi = 0; /* unknown: not waited for */
                f->end[t][p] = hi > lo ? hi : -1;
                f->behind += hi > lo;
            }
        }
    }
    err = rd_kafka_assign(f->rk, asg);
    rd_kafka_topic_partition_list_destroy(asg);
    if (err) {
        fprintf(stderr, "sagactl %s: assign: %s\n", cmd, rd_kafka_err2str(err));
        follow_close(f);
        return SAGACTL_EXIT_FAILURE;
    }
    return SAGACTL_EXIT_OK;
}

/* Notes m for the catch-up; 1 when every partition has been read to its end at start. */
static int follow_caught_up(struct follow *f, const rd_kafka_message_t *m)
{
    const char *name = m ? rd_kafka_topic_name(m->rkt) : NULL;
    for (int t = 0; name && t < f->ntopics; t++)
        if (!strcmp(name, f->topics[t]) && f->end[t] && m->partition >= 0 &&
            m->partition < f->parts[t] && f->end[t][m->partition] >= 0 &&
            m->offset + 1 >= f->end[t][m->partition]) {
            f->end[t][m->partition] = -1;
            f->behind--;
        }
    return f->behind <= 0;
}

/* Reports a consumer error once until it changes (the client keeps retrying). */
static void follow_error(const char *cmd, const rd_kafka_message_t *m)
{
    static rd_kafka_resp_err_t last;
    if (m->err == RD_KAFKA_RESP_ERR__PARTITION_EOF || m->err == last)
        return;
    last = m->err;
    sagactl_progress_clear();
    fprintf(stderr, "sagactl %s: kafka: %s\n", cmd, rd_kafka_message_errstr(m));
}

/* --- sagactl watch -------------------------------------------------------------- */

static void watch_usage(FILE *out)
{
    fprintf(out, "usage: sagactl watch [ORDER_ID] [--from-beginning] [--timeout S]\n"
                 "\n"
                 "Follows the five event topics live and prints one line per event: the order\n"
                 "(first 8 characters of its id), when it happened (UTC), the service that\n"
                 "produced it, the event type and a summary. Compensations (InventoryReleased,\n"
                 "PaymentRefunded, ShipmentCancelled) are marked with ↩. On a terminal each\n"
                 "order gets a colour of its own. Nothing is committed: watching never moves\n"
                 "the services' consumer groups.\n"
                 "\n"
                 "With ORDER_ID only that order's events are shown, read from the beginning of\n"
                 "the topics (so a finished saga is shown whole, in causal order), and watch\n"
                 "exits 0 as soon as the saga is done: OrderConfirmed, or OrderCancelled with\n"
                 "every compensation owed (InventoryReserved -> InventoryReleased,\n"
                 "PaymentAuthorized -> PaymentRefunded, ShipmentScheduled -> ShipmentCancelled),\n"
                 "and in both cases the NotificationSent.\n"
                 "\n"
                 "  --from-beginning  read the topics from their beginning (the default with\n"
                 "                    ORDER_ID); otherwise only new events are shown\n"
                 "  --timeout S       stop after S seconds: with ORDER_ID the saga is not done\n"
                 "                    then, exit 1 (default 60; 0 waits forever); without, exit 0\n"
                 "                    (default: until interrupted)\n"
                 "\n"
                 "exit codes: 0 done (or interrupted / --timeout without ORDER_ID), 1 the saga\n"
                 "was not done in time or a topic is missing, 64 bad usage, 69 Kafka could not\n"
                 "be reached, 78 bad configuration\n");
}

struct entry { /* a line held back while a finished saga is read from the beginning */
    int64_t at;
    char event_id[40], cause[40];
    int depth;
    char *text;
};

struct watch {
    const char *id; /* NULL: every order */
    struct saga_serde *serde;
    int seen[SAGA_EV_COUNT];
    int events;
    int holding; /* catching up: lines go to held[] */
    struct entry *held;
    size_t nheld, capheld;
};

/* One event line, without the newline. */
static void event_line(char *out, size_t size, const struct saga_event *ev)
{
    char at[32], summary[400], name[64];
    int comp = sagactl_event_is_compensation(ev->type);
    const char *type = saga_event_type_name(ev->type);
    size_t n = strlen(type ? type : "?");

    sagactl_event_summary(ev, summary, sizeof(summary));
    snprintf(name, sizeof(name), "%s%s%s%*s%s", sagactl_event_sgr(ev->type), comp ? "↩ " : "  ",
             type ? type : "?", n < 19 ? (int)(19 - n) : 0, "", sagactl_sgr(SGR_RESET));
    /* An event's strings are anyone's: escaped, so they cannot drive the terminal. */
    snprintf(out, size, "%s%.8s%s  %s  %-20s  %s  %s", sagactl_order_sgr(ev->meta.order_id),
             ev->meta.order_id ? sagactl_safe(ev->meta.order_id) : "????????",
             sagactl_sgr(SGR_RESET), sagactl_clock(ev->meta.occurred_at, at, sizeof(at)),
             ev->meta.producer ? sagactl_safe(ev->meta.producer) : "?", name,
             sagactl_safe(summary));
}

static void undecodable_line(char *out, size_t size, const rd_kafka_message_t *m, const char *why)
{
    char at[32], where[160], key[9] = "--------";
    int64_t ts = rd_kafka_message_timestamp(m, NULL);
    for (size_t i = 0; m->key && i < m->key_len && i < 8; i++) {
        char c = ((const char *)m->key)[i];
        key[i] = c > ' ' && c < 127 ? c : '?';
    }
    snprintf(where, sizeof(where), "%s[%" PRId32 "]@%" PRId64,
             sagactl_safe(rd_kafka_topic_name(m->rkt)), m->partition, m->offset);
    snprintf(out, size, "%s%s%s  %s  %-20s  %sundecodable message (%zu bytes): %s%s",
             sagactl_sgr(SGR_RED), key, sagactl_sgr(SGR_RESET), sagactl_clock(ts, at, sizeof(at)),
             where, sagactl_sgr(SGR_RED), m->len, sagactl_safe(why), sagactl_sgr(SGR_RESET));
}

static void emit(struct watch *w, const char *text, const struct saga_event *ev, int64_t at)
{
    struct entry *e;
    if (!w->holding) {
        sagactl_progress_clear();
        printf("%s\n", text);
        fflush(stdout);
        return;
    }
    if (w->nheld == w->capheld) {
        size_t cap = w->capheld ? 2 * w->capheld : 16;
        struct entry *grown = realloc(w->held, cap * sizeof(*grown));
        if (!grown) {
            printf("%s\n", text); /* out of memory: at least not lost */
            return;
        }
        w->held = grown;
        w->capheld = cap;
    }
    e = &w->held[w->nheld++];
    memset(e, 0, sizeof(*e));
    e->at = at;
    if (ev) {
        snprintf(e->event_id, sizeof(e->event_id), "%s",
                 ev->meta.event_id ? ev->meta.event_id : "");
        snprintf(e->cause, sizeof(e->cause), "%s",
                 ev->meta.causation_id ? ev->meta.causation_id : "");
    }
    e->text = strdup(text);
}

static int entry_cmp(const void *a, const void *b)
{
    const struct entry *x = a, *y = b;
    if (x->at != y->at)
        return x->at < y->at ? -1 : 1;
    return x->depth - y->depth;
}

/* Prints the held lines by time, an effect after its cause when the times tie. */
static void release_held(struct watch *w)
{
    for (size_t i = 0; i < w->nheld; i++) {
        int depth = 0;
        const char *cause = w->held[i].cause;
        /* the length of the chain of causes among the held events (bounded) */
        for (int hop = 0; cause[0] && hop < 32; hop++) {
            const char *next = NULL;
            for (size_t j = 0; j < w->nheld && !next; j++)
                if (!strcmp(w->held[j].event_id, cause))
                    next = w->held[j].cause;
            if (!next)
                break;
            depth++;
            cause = next;
        }
        w->held[i].depth = depth;
    }
    if (w->nheld > 1)
        qsort(w->held, w->nheld, sizeof(*w->held), entry_cmp);
    w->holding = 0;
    for (size_t i = 0; i < w->nheld; i++) {
        if (w->held[i].text)
            emit(w, w->held[i].text, NULL, 0);
        free(w->held[i].text);
    }
    free(w->held);
    w->held = NULL;
    w->nheld = w->capheld = 0;
}

static int saga_done(const int *seen)
{
    int owed_done = (!seen[SAGA_EV_INVENTORY_RESERVED] || seen[SAGA_EV_INVENTORY_RELEASED]) &&
                    (!seen[SAGA_EV_PAYMENT_AUTHORIZED] || seen[SAGA_EV_PAYMENT_REFUNDED]) &&
                    (!seen[SAGA_EV_SHIPMENT_SCHEDULED] || seen[SAGA_EV_SHIPMENT_CANCELLED]);
    return seen[SAGA_EV_NOTIFICATION_SENT] &&
           (seen[SAGA_EV_ORDER_CONFIRMED] || (seen[SAGA_EV_ORDER_CANCELLED] && owed_done));
}

/* What a saga that is not done yet still waits for. */
static const char *saga_awaits(const int *seen)
{
    if (!seen[SAGA_EV_ORDER_CONFIRMED] && !seen[SAGA_EV_ORDER_CANCELLED])
        return "the outcome";
    if (seen[SAGA_EV_ORDER_CANCELLED]) {
        if (seen[SAGA_EV_INVENTORY_RESERVED] && !seen[SAGA_EV_INVENTORY_RELEASED])
            return "InventoryReleased";
        if (seen[SAGA_EV_PAYMENT_AUTHORIZED] && !seen[SAGA_EV_PAYMENT_REFUNDED])
            return "PaymentRefunded";
        if (seen[SAGA_EV_SHIPMENT_SCHEDULED] && !seen[SAGA_EV_SHIPMENT_CANCELLED])
            return "ShipmentCancelled";
    }
    return "NotificationSent";
}

static int key_is(const rd_kafka_message_t *m, const char *id)
{
    size_t n = strlen(id);
    return m->key_len == n && strncasecmp((const char *)m->key, id, n) == 0;
}

static void watch_message(struct watch *w, const rd_kafka_message_t *m)
{
    struct saga_event ev = {0};
    char err[256] = "", line[1024];
    saga_decode_err_t de;

    if (w->id && m->key && !key_is(m, w->id))
        return; /* keyed by another order: not even decoded */
    de = saga_serde_decode(w->serde, m->payload, m->len, &ev, err, sizeof(err));
    if (de != SAGA_DECODE_OK) {
        if (!w->id || m->key) { /* with an id: only undecodable messages keyed by it */
            undecodable_line(line, sizeof(line), m, err[0] ? err : saga_decode_err2str(de));
            emit(w, line, NULL, rd_kafka_message_timestamp(m, NULL));
        }
        return;
    }
    if (!w->id || (ev.meta.order_id && !strcasecmp(ev.meta.order_id, w->id))) {
        if ((unsigned)ev.type < SAGA_EV_COUNT)
            w->seen[ev.type]++;
        w->events++;
        event_line(line, sizeof(line), &ev);
        emit(w, line, &ev, ev.meta.occurred_at);
    }
    saga_event_release(&ev);
}

int sagactl_watch(const struct saga_config *cfg, int argc, char **argv)
{
    const char *topics[MAX_TOPICS];
    struct follow f;
    struct watch w;
    struct saga_registry *registry = NULL;
    int from_beginning = 0, rc, done = 0, caught_up;
    long timeout_s = -1;
    int64_t start, deadline, idle_since;

    memset(&w, 0, sizeof(w));
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            watch_usage(stdout);
            return SAGACTL_EXIT_OK;
        } else if (!strcmp(argv[i], "--from-beginning")) {
            from_beginning = 1;
        } else if (!strcmp(argv[i], "--timeout") && i + 1 < argc) {
            if ((timeout_s = sagactl_arg_seconds("watch", argv[i], argv[i + 1], 86400 * 365)) < 0)
                return SAGACTL_EXIT_USAGE;
            i++;
        } else if (argv[i][0] != '-' && !w.id && saga_uuid_valid(argv[i])) {
            w.id = argv[i];
        } else {
            fprintf(stderr, "sagactl watch: unexpected '%s'%s\n", argv[i],
                    argv[i][0] != '-' ? " (an order id is a UUID)" : "");
            watch_usage(stderr);
            return SAGACTL_EXIT_USAGE;
        }
    }
    if (w.id) {
        from_beginning = 1;
        if (timeout_s < 0)
            timeout_s = 60;
    }
    for (int i = 0; i < SAGA_SERVICE_COUNT; i++)
        topics[i] = saga_services[i].topic;
    if ((rc = sagactl_serde_open(cfg, "watch", &w.serde, &registry)) != SAGACTL_EXIT_OK)
        return rc;
    rc = follow_open(&f, cfg, "watch", topics, SAGA_SERVICE_COUNT, from_beginning, w.id != NULL);
    if (rc != SAGACTL_EXIT_OK) {
        saga_serde_destroy(w.serde);
        saga_registry_destroy(registry);
        return rc;
    }
    sagactl_catch_signals();
    w.holding = w.id != NULL;
    caught_up = !w.holding || f.behind <= 0;
    if (!w.id && sagactl_fancy())
        fprintf(stderr, "%swatching %s, %s, %s, %s, %s%s (Ctrl-C stops)%s\n", sagactl_sgr(SGR_DIM),
                topics[0], topics[1], topics[2], topics[3], topics[4],
                from_beginning ? " from their beginning" : "", sagactl_sgr(SGR_RESET));
    start = idle_since = saga_mono_ms();
    deadline = timeout_s > 0 ? start + timeout_s * 1000 : INT64_MAX;
    while (!sagactl_interrupted && !done && saga_mono_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(f.rk, 100);
        if (m && m->err) {
            follow_error("watch", m);
        } else if (m) {
            watch_message(&w, m);
            if (!caught_up)
                caught_up = follow_caught_up(&f, m);
            idle_since = saga_mono_ms();
        } else if (!caught_up && saga_mono_ms() - idle_since > 3000) {
            caught_up = 1; /* nothing more arrives: what was there has been read */
        }
        if (m)
            rd_kafka_message_destroy(m);
        if (w.id) {
            /* a finished saga is shown whole: everything up to the topics' ends is read */
            if (w.holding && caught_up)
                release_held(&w);
            done = !w.holding && saga_done(w.seen);
            if (!done && !w.holding)
                sagactl_progress("watching %.8s: %d event%s, waiting for %s (%.0fs)", w.id,
                                 w.events, w.events == 1 ? "" : "s", saga_awaits(w.seen),
                                 (double)(saga_mono_ms() - start) / 1000.0);
        }
    }
    if (w.holding)
        release_held(&w);
    sagactl_progress_clear();
    rc = SAGACTL_EXIT_OK;
    if (w.id && !done) {
        fprintf(stderr,
                "sagactl watch: the saga of %s is not done%s: %d event%s seen, waiting "
                "for %s\n",
                w.id,
                sagactl_interrupted ? " (interrupted)" : (timeout_s > 0 ? " within --timeout" : ""),
                w.events, w.events == 1 ? "" : "s", saga_awaits(w.seen));
        rc = SAGACTL_EXIT_FAILURE;
    }
    follow_close(&f);
    saga_serde_destroy(w.serde);
    saga_registry_destroy(registry);
    return rc;
}

/* --- sagactl tail ----------------------------------------------------------------- */

static void tail_usage(FILE *out)
{
    fprintf(out,
            "usage: sagactl tail TOPIC [--from-beginning] [--count N] [--timeout S]\n"
            "\n"
            "Prints the messages of any topic (dead-letter topics too) as JSON lines, one\n"
            "object per message, for jq:\n"
            "  {\"topic\", \"partition\", \"offset\", \"key\", \"timestamp\", \"headers\": {...},\n"
            "   \"event_type\", \"event\": {every field; enums as symbols, money in minor units,\n"
            "   times in epoch milliseconds}}\n"
            "or, for a message that does not decode, \"error\" (and \"error_code\", \"size\")\n"
            "instead of event_type and event. Nothing is committed.\n"
            "\n"
            "  --from-beginning  start at the beginning of each partition (default: at the\n"
            "                    end, printing only new messages)\n"
            "  --count N         exit after N messages\n"
            "  --timeout S       exit after S seconds (default: never)\n"
            "\n"
            "exit codes: 0 done (N messages, interrupted, or --timeout without --count),\n"
            "1 fewer than N messages within --timeout, or no such topic, 64 bad usage,\n"
            "69 Kafka could not be reached, 78 bad configuration\n");
}

int sagactl_tail(const struct saga_config *cfg, int argc, char **argv)
{
    const char *topic = NULL;
    struct follow f;
    struct saga_serde *serde = NULL;
    struct saga_registry *registry = NULL;
    int from_beginning = 0, rc;
    long timeout_s = 0, count = 0, printed = 0;
    int64_t deadline;

    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--help") || !strcmp(argv[i], "-h")) {
            tail_usage(stdout);
            return SAGACTL_EXIT_OK;
        } else if (!strcmp(argv[i], "--from-beginning")) {
            from_beginning = 1;
        } else if (!strcmp(argv[i], "--timeout") && i + 1 < argc) {
            if ((timeout_s = sagactl_arg_seconds("tail", argv[i], argv[i + 1], 86400 * 365)) < 0)
                return SAGACTL_EXIT_USAGE;
            i++;
        } else if (!strcmp(argv[i], "--count") && i + 1 < argc) {
            char *end;
            count = strtol(argv[i + 1], &end, 10);
            if (end == argv[i + 1] || *end || count < 1) {
                fprintf(stderr, "sagactl tail: --count expects a number of messages, 1 or more\n");
                return SAGACTL_EXIT_USAGE;
            }
            i++;
        } else if (argv[i][0] != '-' && !topic) {
            topic = argv[i];
        } else {
            fprintf(stderr, "sagactl tail: unexpected '%s'\n", argv[i]);
            tail_usage(stderr);
            return SAGACTL_EXIT_USAGE;
        }
    }
    if (!topic) {
        tail_usage(stderr);
        return SAGACTL_EXIT_USAGE;
    }
    if ((rc = sagactl_serde_open(cfg, "tail", &serde, &registry)) != SAGACTL_EXIT_OK)
        return rc;
    if ((rc = follow_open(&f, cfg, "tail", &topic, 1, from_beginning, 0)) != SAGACTL_EXIT_OK) {
        saga_serde_destroy(serde);
        saga_registry_destroy(registry);
        return rc;
    }
    sagactl_catch_signals();
    deadline = timeout_s > 0 ? saga_mono_ms() + timeout_s * 1000 : INT64_MAX;
    while (!sagactl_interrupted && (count == 0 || printed < count) && saga_mono_ms() < deadline) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(f.rk, 100);
        if (!m)
            continue;
        if (m->err) {
            follow_error("tail", m);
        } else {
            rd_kafka_headers_t *h = NULL;
            json_t *j;
            char *s;
            if (rd_kafka_message_headers(m, &h) != RD_KAFKA_RESP_ERR_NO_ERROR)
                h = NULL;
            j = sagactl_record_json(serde, rd_kafka_topic_name(m->rkt), m->partition, m->offset,
                                    m->key, m->key_len, rd_kafka_message_timestamp(m, NULL), h,
                                    m->payload, m->len);
            if (j && (s = json_dumps(j, JSON_COMPACT))) {
                sagactl_print_json(s);
                fflush(stdout);
                free(s);
                printed++;
            }
            json_decref(j);
        }
        rd_kafka_message_destroy(m);
    }
    rc = SAGACTL_EXIT_OK;
    if (count > 0 && printed < count && !sagactl_interrupted) {
        fprintf(stderr, "sagactl tail: %ld of %ld messages from %s within %lds\n", printed, count,
                topic, timeout_s);
        rc = SAGACTL_EXIT_FAILURE;
    }
    follow_close(&f);
    saga_serde_destroy(serde);
    saga_registry_destroy(registry);
    return rc;
}
