/*
 * saga-conformance: checks that a running implementation of one service of the
 * saga (order, inventory, payment, shipping or notification) keeps its duties
 * (docs/REPLACING-A-SERVICE.md, docs/SERVICES.md, docs/EVENTS.md).
 *
 * The kit plays every other role: it produces the service's input events straight
 * to Kafka (with this project's serde, so the framing is the stack's) and reads the
 * service's output topic. Every order it uses is new, so other traffic on the
 * topics does not matter. It runs in phases; between them it waits until the
 * service's consumer group has committed up to the end of its input topics, its
 * outbox is published and the output topic is read to its end, so "no second
 * event" is checked after the service had every chance to emit one.
 *
 * Prints one line per duty, PASS or FAIL with what was wrong, and exits 0 only
 * when every duty passes (1 when one fails, 2 when it could not run at all).
 * See tests/contract/README.md.
 */
#include <curl/curl.h>
#include <inttypes.h>
#include <jansson.h>
#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "saga/choreography.h"
#include "saga/events.h"
#include "saga/headers.h"
#include "saga/ids.h"
#include "saga/registry.h"
#include "saga/serde.h"
#include "saga/topology.h"
#include "saga/trace.h"

#define MAX_ORDERS     32
#define MAX_INPUTS     128
#define MAX_SEEN       512
#define MAX_PARTITIONS 256
#define MAX_DEAD       16

/* --- the service under test ----------------------------------------------------- */

struct service_def {
    const char *name;  /* "shipping" */
    int http_offset;   /* its port: STACK_HTTP_PORT_BASE + this */
    const char *out;   /* the topic it writes */
    const char *in[5]; /* the topics it reads */
    saga_event_type_t emits[3];
    int nemits;
};

/* Every role as the saga's declaration has it (saga/topology.h, saga/choreography.h): the
 * topic it writes, the topics its events come from, the events it may emit. What each duty
 * below sends and expects for which order stays written out by hand (the scenarios). */
static struct service_def services[SAGA_SERVICE_COUNT];

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));

static void services_init(void)
{
    for (int i = 0; i < SAGA_SERVICE_COUNT; i++) {
        const struct saga_service_info *info = &saga_services[i];
        struct service_def *d = &services[i];
        unsigned emits = saga_choreo_emits(info->name);
        int n = saga_choreo_inputs(info->name, d->in, 5);
        d->name = info->name;
        d->http_offset = info->http_port - saga_services[0].http_port;
        d->out = info->topic;
        if (n > 5)
            die("%s reads %d topics: more than the kit knows", info->program, n);
        for (int t = 0; t < SAGA_EV_COUNT; t++)
            if (emits & SAGA_EV_BIT(t)) {
                if (d->nemits == 3)
                    die("%s emits more than 3 event types: more than the kit knows", info->program);
                d->emits[d->nemits++] = (saga_event_type_t)t;
            }
    }
}

/* --- state ------------------------------------------------------------------------ */

struct order {
    char id[SAGA_UUID_LEN + 1];
    char corr[SAGA_UUID_LEN + 1];
    const char *label;
    int seen_after_phase1;                      /* outputs seen by the end of phase 1 */
    char traceparent[SAGA_TRACEPARENT_LEN + 1]; /* sent with POST /orders (order service) */
};

/* Where the broker put a message the kit produced (its delivery report). */
struct delivery {
    int32_t partition;
    int64_t offset; /* -1 until delivered */
};

/* An event the kit produced (kept for re-sending and to know causation ids). */
struct input {
    char event_id[SAGA_UUID_LEN + 1];
    char traceparent[SAGA_TRACEPARENT_LEN + 1]; /* a trace of its own */
    struct order *order;
    struct saga_event ev;
    struct saga_order_line lines[4];
    int echo; /* stands for an event of the service itself (never sent) */
    struct delivery dl;
};

/* Bytes that are no event, produced to an input topic ahead of a good event. */
struct poison {
    struct order *order;
    const char *topic;
    char value[96];
    char mark[SAGA_UUID_LEN + 1]; /* its one header, kit.poison: a dead letter keeps it */
    struct delivery dl;
};

/* A message seen on the service's dead-letter topic. */
struct dead {
    char key[128];
    char *value;
    size_t len;
    rd_kafka_headers_t *headers;
};

/* An event the service emitted about one of the kit's orders. */
struct seen {
    struct order *order;
    int decoded;
    char error[256];
    struct saga_event ev;
    struct saga_event_headers h;
    char key[128];
};

static struct {
    const struct service_def *svc;
    char env_file[1024];
    char bootstrap[512];
    char registry_url[512];
    char http[256];
    char token[1024]; /* the order API's bearer token: SAGA_TOKEN or STACK_OPERATOR_TOKEN */
    char db_url[1024];
    long timeout_ms;
    long settle_ms;
    int verbose;
    char stop_cmd[2048]; /* stops the service with SIGTERM (--stop-command) */

    rd_kafka_t *producer, *consumer, *probe;
    struct saga_serde *serde;
    struct saga_registry *registry;
    int out_partitions;
    int64_t next[MAX_PARTITIONS]; /* the output topic read so far, per partition */
    PGconn *db;
    int group_note; /* said that the group's offsets cannot be used */
    int64_t started_ms;

    struct order orders[MAX_ORDERS];
    int norders;
    struct input inputs[MAX_INPUTS];
    int ninputs;
    struct seen seen[MAX_SEEN];
    int nseen;
    struct poison poisons[4];
    int npoisons;
    struct dead dead[MAX_DEAD];
    int ndead;
    int passed, failed;
} k;

static void die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
static void die(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("saga-conformance: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(2);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

/* --- configuration: stack.env or the environment ----------------------------------- */

/* The value of key in the stack.env file (if one was given), else in the environment. */
static const char *setting(const char *key, char *buf, size_t size)
{
    if (k.env_file[0]) {
        FILE *f = fopen(k.env_file, "r");
        char line[2048];
        size_t n = strlen(key);
        if (!f)
            die("cannot read %s", k.env_file);
        while (fgets(line, sizeof(line), f)) {
            /* KEY=value, or export KEY=value (what scripts/stack writes) */
            char *l = strncmp(line, "export ", 7) == 0 ? line + 7 : line;
            if (strncmp(l, key, n) == 0 && l[n] == '=') {
                char *v = l + n + 1;
                size_t len = strcspn(v, "\n");
                v[len] = '\0';
                if (len >= 2 && v[0] == '\'' && v[len - 1] == '\'') {
                    v[len - 1] = '\0';
                    v++;
                }
                snprintf(buf, size, "%s", v);
                fclose(f);
                return buf;
            }
        }
        fclose(f);
        return NULL;
    }
    const char *v = getenv(key);
    if (!v || !*v)
        return NULL;
    snprintf(buf, size, "%s", v);
    return buf;
}

/* --- Kafka ------------------------------------------------------------------------ */

static void on_delivery(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    struct delivery *d = m->_private;
    (void)rk, (void)opaque;
    if (d) {
        d->partition = m->partition;
        d->offset = m->err ? -1 : m->offset;
    }
}

static rd_kafka_t *kafka(rd_kafka_type_t type, const char *group)
{
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    char err[512];
    rd_kafka_t *rk;
    rd_kafka_conf_set(c, "bootstrap.servers", k.bootstrap, NULL, 0);
    rd_kafka_conf_set(c, "log_level", "3", NULL, 0);
    if (group) {
        rd_kafka_conf_set(c, "group.id", group, NULL, 0);
        rd_kafka_conf_set(c, "enable.auto.commit", "false", NULL, 0);
    }
    if (type == RD_KAFKA_PRODUCER) {
        rd_kafka_conf_set(c, "enable.idempotence", "true", NULL, 0);
        rd_kafka_conf_set(c, "partitioner", "murmur2_random", NULL, 0);
        rd_kafka_conf_set_dr_msg_cb(c, on_delivery);
    }
    if (!(rk = rd_kafka_new(type, c, err, sizeof(err))))
        die("kafka: %s", err);
    return rk;
}

static int topic_partitions(rd_kafka_t *rk, const char *topic)
{
    rd_kafka_topic_t *t = rd_kafka_topic_new(rk, topic, NULL);
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, t, &md, 15000);
    int n = -1;
    if (err == RD_KAFKA_RESP_ERR_NO_ERROR && md->topic_cnt == 1 && !md->topics[0].err)
        n = md->topics[0].partition_cnt;
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(t);
    if (n <= 0)
        die("topic %s: no metadata from %s (%s)", topic, k.bootstrap,
            err ? rd_kafka_err2str(err) : "unknown topic");
    return n > MAX_PARTITIONS ? MAX_PARTITIONS : n;
}

/* The service's dead-letter topic: "shipping.dlq". */
static const char *dlq_topic(void)
{
    const struct saga_service_info *info = saga_service_find(k.svc->name);
    return info ? info->dlq_topic : "";
}

/* Starts reading the output topic and the dead-letter topic at their current ends:
 * only what comes next counts. */
static void open_output(void)
{
    const char *topic = k.svc->out;
    rd_kafka_topic_partition_list_t *l;
    int ndlq;
    k.out_partitions = topic_partitions(k.consumer, topic);
    ndlq = topic_partitions(k.consumer, dlq_topic());
    l = rd_kafka_topic_partition_list_new(k.out_partitions + ndlq);
    for (int p = 0; p < k.out_partitions + ndlq; p++) {
        const char *t = p < k.out_partitions ? topic : dlq_topic();
        int part = p < k.out_partitions ? p : p - k.out_partitions;
        int64_t lo, hi;
        rd_kafka_resp_err_t err =
            rd_kafka_query_watermark_offsets(k.consumer, t, part, &lo, &hi, 15000);
        if (err)
            die("%s[%d]: %s", t, part, rd_kafka_err2str(err));
        if (p < k.out_partitions)
            k.next[p] = hi;
        rd_kafka_topic_partition_list_add(l, t, part)->offset = hi;
    }
    if (rd_kafka_assign(k.consumer, l))
        die("cannot assign %s and %s", topic, dlq_topic());
    rd_kafka_topic_partition_list_destroy(l);
}

/* Keeps a message of the dead-letter topic. */
static void take_dead(rd_kafka_message_t *m)
{
    struct dead *d;
    rd_kafka_headers_t *h = NULL;
    if (k.ndead >= MAX_DEAD)
        return;
    d = &k.dead[k.ndead++];
    snprintf(d->key, sizeof(d->key), "%.*s", m->key ? (int)m->key_len : 0,
             m->key ? (const char *)m->key : "");
    d->len = m->len;
    d->value = malloc(m->len + 1);
    if (!d->value)
        die("out of memory");
    if (m->len)
        memcpy(d->value, m->payload, m->len);
    d->value[m->len] = '\0';
    d->headers = rd_kafka_message_headers(m, &h) == RD_KAFKA_RESP_ERR_NO_ERROR
                     ? rd_kafka_headers_copy(h)
                     : rd_kafka_headers_new(1);
    if (k.verbose)
        fprintf(stderr, "  <- %s dead letter (key %s)\n", dlq_topic(), d->key);
}

static struct order *order_by_id(const char *id, size_t len)
{
    for (int i = 0; i < k.norders; i++)
        if (strlen(k.orders[i].id) == len && memcmp(k.orders[i].id, id, len) == 0)
            return &k.orders[i];
    return NULL;
}

static void take(rd_kafka_message_t *m)
{
    struct order *o;
    struct seen *s;
    rd_kafka_headers_t *h = NULL;
    char err[256];

    if (strcmp(rd_kafka_topic_name(m->rkt), k.svc->out)) {
        take_dead(m);
        return;
    }
    if (m->partition >= 0 && m->partition < MAX_PARTITIONS && m->offset + 1 > k.next[m->partition])
        k.next[m->partition] = m->offset + 1;
    if (!m->key || !(o = order_by_id(m->key, m->key_len)))
        return; /* not one of the kit's orders */
    if (k.nseen >= MAX_SEEN)
        die("more than %d events for the kit's orders: the service is looping", MAX_SEEN);
    s = &k.seen[k.nseen++];
    s->order = o;
    snprintf(s->key, sizeof(s->key), "%.*s", (int)m->key_len, (const char *)m->key);
    rd_kafka_message_headers(m, &h);
    saga_event_headers_read(h, &s->h);
    if (saga_serde_decode(k.serde, m->payload, m->len, &s->ev, err, sizeof(err)) ==
        SAGA_DECODE_OK) {
        s->decoded = 1;
    } else {
        snprintf(s->error, sizeof(s->error), "%s", err);
    }
    if (k.verbose)
        fprintf(stderr, "  <- %s %s for %s (%s)\n", k.svc->out,
                s->decoded ? saga_event_type_name(s->ev.type) : "undecodable", o->label, o->id);
}

/* Reads the output topic for up to ms milliseconds (returns early once at its end). */
static void drain(long ms)
{
    int64_t until = saga_now_ms() + ms;
    do {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(k.consumer, 100);
        if (!m)
            continue;
        if (!m->err)
            take(m);
        rd_kafka_message_destroy(m);
    } while (saga_now_ms() < until);
}

/* 1 when every partition of the output topic is read to its end. */
static int output_read(void)
{
    for (int p = 0; p < k.out_partitions; p++) {
        int64_t lo, hi;
        if (rd_kafka_query_watermark_offsets(k.probe, k.svc->out, p, &lo, &hi, 10000))
            return 0;
        if (k.next[p] < hi)
            return 0;
    }
    return 1;
}

/*
 * What the service's consumer group (<service>-service) has not committed yet on
 * its input topics; -2 when the group has committed nothing at all (the service
 * does not consume as that group), -1 on an error.
 */
static long long group_lag(void)
{
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(64);
    long long lag = 0;
    int any = 0;
    for (int t = 0; t < 5 && k.svc->in[t]; t++) {
        int n = topic_partitions(k.probe, k.svc->in[t]);
        for (int p = 0; p < n; p++)
            rd_kafka_topic_partition_list_add(l, k.svc->in[t], p);
    }
    if (rd_kafka_committed(k.probe, l, 10000)) {
        rd_kafka_topic_partition_list_destroy(l);
        return -1;
    }
    for (int i = 0; i < l->cnt; i++) {
        int64_t lo, hi;
        if (rd_kafka_query_watermark_offsets(k.probe, l->elems[i].topic, l->elems[i].partition, &lo,
                                             &hi, 10000)) {
            lag = -1;
            break;
        }
        if (l->elems[i].offset >= 0) {
            any = 1;
            lag += hi - l->elems[i].offset;
        } else {
            lag += hi - lo;
        }
    }
    rd_kafka_topic_partition_list_destroy(l);
    return lag < 0 ? -1 : any ? lag : -2;
}

/* Unpublished rows in the service's outbox, or -1 when that cannot be asked. */
static long long outbox_backlog(void)
{
    PGresult *r;
    long long n = -1;
    if (!k.db_url[0])
        return -1;
    if (!k.db) {
        k.db = PQconnectdb(k.db_url);
        if (PQstatus(k.db) != CONNECTION_OK) {
            PQfinish(k.db);
            k.db = NULL;
            k.db_url[0] = '\0'; /* do not try again */
            return -1;
        }
    }
    r = PQexec(k.db, "SELECT count(*) FROM outbox WHERE published_at IS NULL");
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1)
        n = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    PQclear(r);
    return n;
}

/*
 * Waits until the service has handled everything produced so far and what it
 * emitted is read: its group's lag 0, its outbox empty and the output topic read
 * to the end, twice in a row. When the group's offsets say nothing, waits
 * settle_ms instead.
 */
static void barrier(const char *what)
{
    int64_t start = saga_now_ms(), until = start + k.timeout_ms, moved = start;
    long long lag = -1, backlog = -1, least = -1;
    int calm = 0;
    for (;;) {
        drain(200);
        lag = group_lag();
        if (lag == -2 && saga_now_ms() - start < k.settle_ms)
            continue; /* a new group commits its first offsets a moment after handling */
        if (lag == -2) {
            if (!k.group_note) {
                printf("note: consumer group %s-service has committed no offsets: the phase "
                       "ends after %ld ms instead of when its lag is 0\n",
                       k.svc->name, k.settle_ms);
                k.group_note = 1;
            }
            return;
        }
        if (lag >= 0 && (least < 0 || lag < least)) {
            least = lag;
            moved = saga_now_ms();
        }
        if (lag > 0 && saga_now_ms() - moved > 2 * k.settle_ms) {
            printf("note: %s: consumer group %s-service made no progress for %ld ms (lag %lld): "
                   "the phase ends\n",
                   what, k.svc->name, 2 * k.settle_ms, lag);
            return;
        }
        backlog = lag == 0 ? outbox_backlog() : -1;
        if (lag == 0 && backlog <= 0 && output_read()) {
            if (++calm >= 2)
                break;
        } else {
            calm = 0;
        }
        if (saga_now_ms() > until) {
            printf("note: %s: the service did not settle within %ld ms (consumer lag %lld, outbox "
                   "backlog %lld)\n",
                   what, k.timeout_ms, lag, backlog);
            return;
        }
        sleep_ms(calm ? 700 : 300);
    }
    drain(300);
}

/* --- events the kit produces ----------------------------------------------------- */

static struct order *new_order(const char *label)
{
    struct order *o = &k.orders[k.norders++];
    saga_uuid4(o->id);
    saga_uuid4(o->corr);
    o->label = label;
    return o;
}

/* A new input event for o, caused by cause (NULL for none), from producer. */
static struct input *input(struct order *o, saga_event_type_t type, const struct input *cause,
                           const char *producer)
{
    struct input *in;
    if (k.ninputs >= MAX_INPUTS)
        die("too many inputs");
    in = &k.inputs[k.ninputs++];
    saga_uuid4(in->event_id);
    in->order = o;
    saga_event_init(&in->ev, type);
    in->ev.meta.event_id = in->event_id;
    in->ev.meta.order_id = o->id;
    in->ev.meta.correlation_id = o->corr;
    in->ev.meta.causation_id = cause ? cause->event_id : NULL;
    in->ev.meta.occurred_at = saga_now_ms();
    in->ev.meta.producer = producer;
    /* A trace of its own, sampled or not by turns: what the service emits on it must be
     * a child of exactly this span (docs/REPLACING-A-SERVICE.md, traceparent). */
    saga_traceparent_new(in->traceparent);
    if (k.ninputs % 2 == 0)
        memcpy(in->traceparent + SAGA_TRACEPARENT_LEN - 2, "00", 2);
    in->ev.meta.traceparent = in->traceparent;
    in->dl.offset = -1;
    return in;
}

static struct input *order_placed(struct order *o, const char *customer, const char *token,
                                  const char *country, const char *items)
{
    struct input *in = input(o, SAGA_EV_ORDER_PLACED, NULL, "order-service");
    struct saga_order_placed *p = &in->ev.u.order_placed;
    int64_t total = 0;
    size_t n = 0;
    /* items: "sku:qty:price,..." */
    static char buf[MAX_INPUTS][256];
    char *save = NULL, *s;
    snprintf(buf[k.ninputs - 1], sizeof(buf[0]), "%s", items);
    for (s = strtok_r(buf[k.ninputs - 1], ",", &save); s && n < 4; s = strtok_r(NULL, ",", &save)) {
        char *q = strchr(s, ':'), *pr = q ? strchr(q + 1, ':') : NULL;
        if (!q || !pr)
            die("bad items %s", items);
        *q = *pr = '\0';
        in->lines[n].sku = s;
        in->lines[n].quantity = atoi(q + 1);
        in->lines[n].unit_price = atoll(pr + 1);
        total += in->lines[n].quantity * in->lines[n].unit_price;
        n++;
    }
    p->customer_id = customer;
    p->items = in->lines;
    p->item_count = n;
    p->currency = "EUR";
    p->total_amount = total;
    p->payment_token = token;
    p->shipping_address =
        (struct saga_address){"Ada Lovelace", "Main Street 1", NULL, "Utrecht", "3511 AB", country};
    return in;
}

#define STANDARD_ITEMS "sku-mug:2:1299,sku-book:1:899"

static struct input *order_cancelled(struct order *o, saga_cancel_reason_t reason,
                                     const char *detail)
{
    struct input *in = input(o, SAGA_EV_ORDER_CANCELLED, NULL, "order-service");
    in->ev.u.order_cancelled.reason = reason;
    in->ev.u.order_cancelled.detail = detail;
    return in;
}

static struct input *order_confirmed(struct order *o, const struct input *cause, int64_t total)
{
    struct input *in = input(o, SAGA_EV_ORDER_CONFIRMED, cause, "order-service");
    in->ev.u.order_confirmed.total_amount = total;
    in->ev.u.order_confirmed.currency = "EUR";
    return in;
}

static struct input *inventory_reserved(struct order *o, const struct input *placed)
{
    struct input *in = input(o, SAGA_EV_INVENTORY_RESERVED, placed, "inventory-service");
    static char ids[MAX_INPUTS][SAGA_UUID_LEN + 1];
    static struct saga_stock_line lines[MAX_INPUTS][4];
    const struct saga_order_placed *p = &placed->ev.u.order_placed;
    saga_uuid4(ids[k.ninputs - 1]);
    for (size_t i = 0; i < p->item_count; i++)
        lines[k.ninputs - 1][i] = (struct saga_stock_line){p->items[i].sku, p->items[i].quantity};
    in->ev.u.inventory_reserved.reservation_id = ids[k.ninputs - 1];
    in->ev.u.inventory_reserved.items = lines[k.ninputs - 1];
    in->ev.u.inventory_reserved.item_count = p->item_count;
    return in;
}

static struct input *payment_authorized(struct order *o, const struct input *placed)
{
    struct input *in = input(o, SAGA_EV_PAYMENT_AUTHORIZED, NULL, "payment-service");
    static char ids[MAX_INPUTS][SAGA_UUID_LEN + 1];
    saga_uuid4(ids[k.ninputs - 1]);
    in->ev.u.payment_authorized.payment_id = ids[k.ninputs - 1];
    in->ev.u.payment_authorized.customer_id = placed->ev.u.order_placed.customer_id;
    in->ev.u.payment_authorized.amount = placed->ev.u.order_placed.total_amount;
    in->ev.u.payment_authorized.currency = "EUR";
    return in;
}

static struct input *payment_failed(struct order *o, const struct input *placed)
{
    struct input *in = input(o, SAGA_EV_PAYMENT_FAILED, NULL, "payment-service");
    in->ev.u.payment_failed.reason = SAGA_PAYFAIL_CARD_DECLINED;
    in->ev.u.payment_failed.customer_id = placed->ev.u.order_placed.customer_id;
    in->ev.u.payment_failed.amount = placed->ev.u.order_placed.total_amount;
    in->ev.u.payment_failed.currency = "EUR";
    return in;
}

/* A copy of in with a new event id: the same trigger once more, as a new event. */
static struct input *again(const struct input *in)
{
    struct input *c;
    if (k.ninputs >= MAX_INPUTS)
        die("too many inputs");
    c = &k.inputs[k.ninputs++];
    *c = *in;
    saga_uuid4(c->event_id);
    c->ev.meta.event_id = c->event_id;
    saga_traceparent_new(c->traceparent);
    c->ev.meta.traceparent = c->traceparent;
    c->dl.offset = -1;
    if (in->ev.type == SAGA_EV_ORDER_PLACED)
        c->ev.u.order_placed.items = c->lines;
    return c;
}

/* Produces in (again, when called twice: a redelivery with the same event id). */
static void put(struct input *in)
{
    struct saga_buf buf = {0};
    rd_kafka_headers_t *h = rd_kafka_headers_new(8);
    char err[512];
    saga_err_t e;
    for (int attempt = 0;
         (e = saga_serde_encode(k.serde, &in->ev, &buf, err, sizeof(err))) == SAGA_ERR_TRANSIENT &&
         attempt < 20;
         attempt++)
        sleep_ms(500);
    if (e)
        die("encode %s: %s", saga_event_type_name(in->ev.type), err);
    if (saga_event_headers_add(h, &in->ev))
        die("headers of %s", saga_event_type_name(in->ev.type));
    if (rd_kafka_producev(k.producer, RD_KAFKA_V_TOPIC(saga_event_type_topic(in->ev.type)),
                          RD_KAFKA_V_KEY(in->order->id, strlen(in->order->id)),
                          RD_KAFKA_V_VALUE(buf.data, buf.len),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(h),
                          RD_KAFKA_V_OPAQUE((void *)&in->dl), RD_KAFKA_V_END))
        die("produce %s failed", saga_event_type_name(in->ev.type));
    if (k.verbose)
        fprintf(stderr, "  -> %s %s for %s\n", saga_event_type_topic(in->ev.type),
                saga_event_type_name(in->ev.type), in->order->label);
    saga_buf_release(&buf);
}

static void flush(void)
{
    if (rd_kafka_flush(k.producer, 30000))
        die("could not deliver the kit's events to %s", k.bootstrap);
}

/* --- what was seen --------------------------------------------------------------- */

static int count(const struct order *o, int type)
{
    int n = 0;
    for (int i = 0; i < k.nseen; i++)
        n += k.seen[i].order == o &&
             (type < 0 || (k.seen[i].decoded && (int)k.seen[i].ev.type == type));
    return n;
}

static const struct seen *nth(const struct order *o, saga_event_type_t type, int idx)
{
    for (int i = 0; i < k.nseen; i++)
        if (k.seen[i].order == o && k.seen[i].decoded && k.seen[i].ev.type == type && idx-- == 0)
            return &k.seen[i];
    return NULL;
}

/* "ShipmentScheduled, ShipmentCancelled" or "nothing": what the order got. */
static const char *got(const struct order *o)
{
    static char buf[4][512];
    static int which;
    char *b = buf[which++ % 4];
    size_t len = 0;
    b[0] = '\0';
    for (int i = 0; i < k.nseen && len < 400; i++)
        if (k.seen[i].order == o)
            len += (size_t)snprintf(b + len, 512 - len, "%s%s", len ? ", " : "",
                                    k.seen[i].decoded ? saga_event_type_name(k.seen[i].ev.type)
                                                      : "(undecodable)");
    return b[0] ? b : "nothing";
}

/* Waits (reading the output) until o has n events of type or the deadline passes. */
static void wait_for(const struct order *o, saga_event_type_t type, int n, int64_t deadline)
{
    while (count(o, (int)type) < n && saga_now_ms() < deadline)
        drain(200);
}

/* --- duties ---------------------------------------------------------------------- */

struct duty {
    char why[2048];
};

static void why(struct duty *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void why(struct duty *d, const char *fmt, ...)
{
    size_t len = strlen(d->why);
    va_list ap;
    if (len + 4 >= sizeof(d->why))
        return;
    if (len)
        len += (size_t)snprintf(d->why + len, sizeof(d->why) - len, "; ");
    va_start(ap, fmt);
    vsnprintf(d->why + len, sizeof(d->why) - len, fmt, ap);
    va_end(ap);
}

static void report(const struct duty *d, const char *text)
{
    if (d->why[0]) {
        printf("FAIL %s: %s\n     %s\n", k.svc->name, text, d->why);
        k.failed++;
    } else {
        printf("PASS %s: %s\n", k.svc->name, text);
        k.passed++;
    }
    fflush(stdout);
}

/*
 * Exactly one event of type for o, caused by cause (when given); returns it or
 * NULL (with the reason in d).
 */
static const struct seen *one(struct duty *d, const struct order *o, saga_event_type_t type,
                              const struct input *cause)
{
    int n = count(o, (int)type);
    const struct seen *s;
    if (n != 1) {
        why(d, "order %.8s (%s): expected exactly one %s, got %s", o->id, o->label,
            saga_event_type_name(type), got(o));
        return NULL;
    }
    s = nth(o, type, 0);
    if (cause && (!s->ev.meta.causation_id || strcmp(s->ev.meta.causation_id, cause->event_id)))
        why(d, "order %.8s (%s): %s has causation_id %s, expected %s (the %s's event_id)", o->id,
            o->label, saga_event_type_name(type),
            s->ev.meta.causation_id ? s->ev.meta.causation_id : "null", cause->event_id,
            saga_event_type_name(cause->ev.type));
    return s;
}

static void none(struct duty *d, const struct order *o, int type)
{
    if (count(o, type))
        why(d, "order %.8s (%s): expected %s, got %s", o->id, o->label,
            type < 0 ? "no event" : "no more events of that kind", got(o));
}

/* "does nothing" means something only for a service that does something. */
static void did_something(struct duty *d)
{
    if (!k.nseen)
        why(d, "cannot tell: it emitted no event for any order");
}

static int empty(const char *s)
{
    return !s || !*s;
}

static void same_str(struct duty *d, const char *what, const char *have, const char *want)
{
    if (!have || strcmp(have, want))
        why(d, "%s is \"%s\", expected \"%s\"", what, have ? have : "(null)", want);
}

/* Every event the service emitted for the kit's orders: decodable, of a type it
 * publishes, with the envelope and headers of docs/EVENTS.md. */
static void check_envelopes(void)
{
    struct duty d = {{0}};
    int n = 0;
    for (int i = 0; i < k.nseen; i++) {
        const struct seen *s = &k.seen[i];
        const struct saga_event_meta *m = &s->ev.meta;
        const char *type;
        char err[256];
        int known = 0, cause_ok = 0;
        n++;
        if (!s->decoded) {
            why(&d, "an event for order %.8s cannot be decoded: %s", s->order->id, s->error);
            continue;
        }
        type = saga_event_type_name(s->ev.type);
        for (int t = 0; t < k.svc->nemits; t++)
            known |= k.svc->emits[t] == s->ev.type;
        if (!known || strcmp(saga_event_type_topic(s->ev.type), k.svc->out))
            why(&d, "%s on topic %s is not an event this service publishes", type, k.svc->out);
        if (!saga_uuid_valid(m->event_id))
            why(&d, "%s: event_id \"%s\" is not a UUID", type, m->event_id);
        for (int j = 0; j < k.ninputs; j++)
            if (!k.inputs[j].echo && strcmp(m->event_id, k.inputs[j].event_id) == 0)
                why(&d, "%s reuses the event_id of its input %s", type,
                    saga_event_type_name(k.inputs[j].ev.type));
        for (int j = 0; j < i; j++)
            if (k.seen[j].decoded && strcmp(k.seen[j].ev.meta.event_id, m->event_id) == 0)
                why(&d, "%s: event_id %s emitted twice", type, m->event_id);
        if (strcmp(m->order_id, s->order->id) || strcmp(s->key, s->order->id))
            why(&d, "%s: key \"%s\" and meta.order_id \"%s\" must both be the order id %s", type,
                s->key, m->order_id, s->order->id);
        if (!m->correlation_id || strcmp(m->correlation_id, s->order->corr))
            why(&d, "%s: correlation_id \"%s\", expected the saga's \"%s\"", type,
                m->correlation_id ? m->correlation_id : "(null)", s->order->corr);
        for (int j = 0; j < k.ninputs; j++)
            if (m->causation_id && k.inputs[j].order == s->order &&
                strcmp(m->causation_id, k.inputs[j].event_id) == 0) {
                cause_ok = 1;
                /* The step it takes is one the saga's declaration has. */
                if (!saga_choreo_allows(k.svc->name, k.inputs[j].ev.type, s->ev.type))
                    why(&d,
                        "%s in answer to %s: the saga's declaration has no such step (sagactl "
                        "choreography)",
                        type, saga_event_type_name(k.inputs[j].ev.type));
            }
        /* The order service starts sagas (OrderPlaced) and cancels by itself (customer,
         * timeout): no cause, or the order's OrderPlaced. */
        for (int j = 0; j < k.nseen; j++)
            cause_ok |= m->causation_id && k.seen[j].order == s->order && k.seen[j].decoded &&
                        k.seen[j].ev.type == SAGA_EV_ORDER_PLACED &&
                        strcmp(m->causation_id, k.seen[j].ev.meta.event_id) == 0;
        if (!m->causation_id && (s->ev.type == SAGA_EV_ORDER_PLACED ||
                                 (s->ev.type == SAGA_EV_ORDER_CANCELLED &&
                                  (s->ev.u.order_cancelled.reason == SAGA_CANCEL_CUSTOMER_REQUEST ||
                                   s->ev.u.order_cancelled.reason == SAGA_CANCEL_TIMEOUT))))
            cause_ok = 1;
        if (!cause_ok)
            why(&d, "%s: causation_id \"%s\" is not the event_id of an event of its order", type,
                m->causation_id ? m->causation_id : "(null)");
        if (empty(m->producer))
            why(&d, "%s: producer is empty", type);
        else if (saga_event_belongs(NULL, k.svc->out, s->ev.type, m->producer, err, sizeof(err)))
            why(&d, "%s: the suite's consumers dead-letter it: %s", type, err);
        if (m->occurred_at < k.started_ms - 600000 || m->occurred_at > saga_now_ms() + 600000)
            why(&d, "%s: occurred_at %" PRId64 " is not the time it was made (ms since the epoch)",
                type, m->occurred_at);
        if (!s->h.event_id[0] || !s->h.event_type[0] || !s->h.correlation_id[0] ||
            (m->causation_id && !s->h.causation_id[0]))
            why(&d,
                "%s: Kafka headers event_id, event_type, correlation_id, causation_id missing "
                "(have: %s%s%s%s)",
                type, s->h.event_id[0] ? "event_id " : "", s->h.event_type[0] ? "event_type " : "",
                s->h.correlation_id[0] ? "correlation_id " : "",
                s->h.causation_id[0] ? "causation_id" : "");
        else if (saga_event_headers_check(&s->h, &s->ev, err, sizeof(err)))
            why(&d, "%s: headers disagree with the body: %s", type, err);
    }
    if (!n)
        why(&d, "it emitted no event at all");
    report(&d, "every event it emits is decodable and carries the envelope and Kafka headers of "
               "docs/EVENTS.md (key = order id, correlation id, causation id = its trigger)");
}

/* --- the traceparent rule ------------------------------------------------------------ */

/* The traceparent of the event whose event_id is id (the kit's or the service's own
 * OrderPlaced), or NULL. */
static const char *traceparent_of(const struct order *o, const char *id)
{
    if (!id)
        return NULL;
    for (int j = 0; j < k.ninputs; j++)
        if (k.inputs[j].order == o && strcmp(id, k.inputs[j].event_id) == 0)
            return k.inputs[j].traceparent[0] ? k.inputs[j].traceparent : NULL;
    for (int j = 0; j < k.nseen; j++)
        if (k.seen[j].order == o && k.seen[j].decoded &&
            strcmp(id, k.seen[j].ev.meta.event_id) == 0)
            return k.seen[j].ev.meta.traceparent;
    return NULL;
}

/* Every event it emits because of another is a child of that event's span:
 * 00-<the cause's trace id>-<a new span id>-<the cause's flags>, in meta.traceparent
 * and in the traceparent header. An event without a cause (the order service's
 * OrderPlaced, a customer's cancellation) is a child of the traceparent the kit sent
 * with POST /orders. */
static void check_traces(void)
{
    struct duty d = {{0}};
    int n = 0;
    for (int i = 0; i < k.nseen; i++) {
        const struct seen *s = &k.seen[i];
        const char *tp, *cause, *type;
        if (!s->decoded)
            continue;
        type = saga_event_type_name(s->ev.type);
        tp = s->ev.meta.traceparent;
        cause = traceparent_of(s->order, s->ev.meta.causation_id);
        if (!cause && s->order->traceparent[0])
            cause = s->order->traceparent;
        if (!cause)
            continue; /* nothing to be the child of */
        n++;
        if (!tp || !saga_traceparent_valid(tp)) {
            why(&d,
                "%s for order %.8s: meta.traceparent \"%s\" is not a W3C traceparent "
                "(00-<32 hex>-<16 hex>-<2 hex>)",
                type, s->order->id, tp ? tp : "(null)");
            continue;
        }
        if (strncmp(tp + 3, cause + 3, 32))
            why(&d, "%s for order %.8s: trace id %.32s, expected its cause's %.32s", type,
                s->order->id, tp + 3, cause + 3);
        else if (strncmp(tp + 36, cause + 36, 16) == 0)
            why(&d, "%s for order %.8s: span id %.16s is its cause's, expected a new one", type,
                s->order->id, tp + 36);
        else if (strcmp(tp + 53, cause + 53))
            why(&d, "%s for order %.8s: trace flags %s, expected its cause's %s", type,
                s->order->id, tp + 53, cause + 53);
        if (strcmp(s->h.traceparent, tp))
            why(&d, "%s for order %.8s: Kafka header traceparent \"%s\" is not meta.traceparent",
                type, s->order->id, s->h.traceparent);
    }
    if (!n)
        why(&d, "it emitted no event caused by one of the kit's");
    report(&d, "every event it emits is a child of its cause's span (traceparent "
               "00-<cause's trace id>-<new span id>-<cause's flags>, body and header)");
}

/* --- dead letters ---------------------------------------------------------------------- */

/* Produces bytes that decode in neither framing to topic, keyed by o: the kit puts a
 * good event for o after it (same key, same partition), which must be handled too. */
static struct poison *poison(struct order *o, const char *topic)
{
    struct poison *p;
    char mark[SAGA_UUID_LEN + 1];
    rd_kafka_headers_t *h = rd_kafka_headers_new(1);
    if (k.npoisons >= (int)(sizeof(k.poisons) / sizeof(k.poisons[0])))
        die("too many poison messages");
    p = &k.poisons[k.npoisons++];
    p->order = o;
    p->topic = topic;
    p->dl.offset = -1;
    saga_uuid4(mark); /* a local copy: gcc's -Wrestrict sees p->value and p->mark both in k */
    memcpy(p->mark, mark, sizeof(p->mark));
    snprintf(p->value, sizeof(p->value), "saga-conformance: not an event %s", mark);
    rd_kafka_header_add(h, "kit.poison", -1, p->mark, -1);
    if (rd_kafka_producev(k.producer, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(o->id, strlen(o->id)),
                          RD_KAFKA_V_VALUE(p->value, strlen(p->value)),
                          RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_HEADERS(h),
                          RD_KAFKA_V_OPAQUE((void *)&p->dl), RD_KAFKA_V_END))
        die("produce to %s failed", topic);
    if (k.verbose)
        fprintf(stderr, "  -> %s poison for %s\n", topic, o->label);
    return p;
}

/* The dead letter of p, when one came. */
static const struct dead *dead_of(const struct poison *p)
{
    for (int i = 0; i < k.ndead; i++)
        if (k.dead[i].len == strlen(p->value) &&
            memcmp(k.dead[i].value, p->value, k.dead[i].len) == 0)
            return &k.dead[i];
    return NULL;
}

/* Waits (reading the output) until p has its dead letter or the deadline passes. */
static void wait_for_dead(const struct poison *p, int64_t deadline)
{
    while (!dead_of(p) && saga_now_ms() < deadline)
        drain(200);
}

/* The header name of d as a string in buf ("" when missing). */
static const char *dead_header(const struct dead *d, const char *name, char *buf, size_t size)
{
    const void *v = NULL;
    size_t len = 0;
    buf[0] = '\0';
    if (rd_kafka_header_get_last(d->headers, name, &v, &len) == RD_KAFKA_RESP_ERR_NO_ERROR && v)
        snprintf(buf, size, "%.*s", (int)len, (const char *)v);
    return buf;
}

/* 1 if s is a decimal integer. */
static int decimal(const char *s)
{
    if (!*s)
        return 0;
    for (; *s; s++)
        if (*s < '0' || *s > '9')
            return 0;
    return 1;
}

/* p went to <service>.dlq with the original key, value and headers and the dlq.*
 * headers of docs/REPLACING-A-SERVICE.md, and the good event for the same order after it
 * in its partition was handled (one event of type for p's order, caused by good). */
static void check_dead_letter(const struct poison *p, const struct input *good,
                              saga_event_type_t type)
{
    struct duty d = {{0}};
    const struct dead *dl;
    char v[256], want[64], text[512];
    if (p->dl.offset < 0)
        why(&d, "the kit could not deliver its poison message to %s", p->topic);
    else if (!(dl = dead_of(p)))
        why(&d,
            "bytes that are no event at %s[%d] offset %" PRId64 " (order %.8s): nothing came to %s",
            p->topic, (int)p->dl.partition, p->dl.offset, p->order->id, dlq_topic());
    else {
        if (strcmp(dl->key, p->order->id))
            why(&d, "the dead letter's key is \"%s\", expected the original %s", dl->key,
                p->order->id);
        if (strcmp(dead_header(dl, "kit.poison", v, sizeof(v)), p->mark))
            why(&d, "the dead letter lost the original header kit.poison");
        if (strcmp(dead_header(dl, "dlq.reason", v, sizeof(v)), "undecodable"))
            why(&d, "dlq.reason is \"%s\", expected \"undecodable\"", v);
        if (!*dead_header(dl, "dlq.error", v, sizeof(v)))
            why(&d, "dlq.error is missing or empty");
        snprintf(want, sizeof(want), "%s-service", k.svc->name);
        if (strcmp(dead_header(dl, "dlq.consumer", v, sizeof(v)), want))
            why(&d, "dlq.consumer is \"%s\", expected \"%s\" (its consumer group)", v, want);
        if (strcmp(dead_header(dl, "dlq.source.topic", v, sizeof(v)), p->topic))
            why(&d, "dlq.source.topic is \"%s\", expected \"%s\"", v, p->topic);
        snprintf(want, sizeof(want), "%d", (int)p->dl.partition);
        if (strcmp(dead_header(dl, "dlq.source.partition", v, sizeof(v)), want))
            why(&d, "dlq.source.partition is \"%s\", expected \"%s\"", v, want);
        snprintf(want, sizeof(want), "%" PRId64, p->dl.offset);
        if (strcmp(dead_header(dl, "dlq.source.offset", v, sizeof(v)), want))
            why(&d, "dlq.source.offset is \"%s\", expected \"%s\"", v, want);
        if (!decimal(dead_header(dl, "dlq.attempts", v, sizeof(v))) || atoi(v) < 1)
            why(&d, "dlq.attempts is \"%s\", expected a count of attempts (1 or more)", v);
        dead_header(dl, "dlq.first_failed_at", v, sizeof(v));
        if (strlen(v) < 20 || v[4] != '-' || v[7] != '-' || v[10] != 'T' || v[13] != ':' ||
            v[strlen(v) - 1] != 'Z')
            why(&d,
                "dlq.first_failed_at is \"%s\", expected UTC in ISO 8601 "
                "(2026-01-31T12:00:00.000Z)",
                v);
    }
    if (good->dl.offset >= 0 && good->dl.partition == p->dl.partition &&
        good->dl.offset < p->dl.offset)
        why(&d, "(kit) the good event came before the poison in its partition");
    if (!count(p->order, (int)type))
        why(&d, "the partition did not move on: the %s after it (order %.8s) gave %s, expected %s",
            saga_event_type_name(good->ev.type), p->order->id, got(p->order),
            saga_event_type_name(type));
    else
        one(&d, p->order, type, good);
    snprintf(text, sizeof(text),
             "dead-letters a message that is no event (%s -> %s, original key, value and "
             "headers, dlq.* headers) and handles the next event of its partition",
             p->topic, dlq_topic());
    report(&d, text);
}

/* --- a graceful stop --------------------------------------------------------------------- */

/*
 * The last phase: the service has just handled ins (o's event of type is seen); the kit
 * stops it at once with --stop-command (SIGTERM) and asks the group's committed offsets,
 * which must be past every one of ins (docs/REPLACING-A-SERVICE.md: on SIGTERM, commit
 * offsets, leave the group, exit within 20 s). Without --stop-command: a note.
 */
static void check_stop(const struct order *o, struct input *const *ins, int nins,
                       saga_event_type_t type)
{
    struct duty d = {{0}};
    rd_kafka_topic_partition_list_t *l;
    char line[512];
    FILE *f;
    int64_t t0;
    int killed = 0, rc;
    if (!k.stop_cmd[0]) {
        printf("note: no --stop-command: the graceful stop on SIGTERM is not checked\n");
        return;
    }
    if (k.nseen) /* a service that emitted nothing at all will not start now */
        wait_for(o, type, 1, saga_now_ms() + k.timeout_ms);
    if (!count(o, (int)type)) {
        why(&d, "nothing to stop after: order %.8s (%s) got %s, expected %s", o->id, o->label,
            got(o), saga_event_type_name(type));
        report(&d, "stops on SIGTERM and commits the offsets of what it handled");
        return;
    }
    fflush(stdout);
    t0 = saga_now_ms();
    if (!(f = popen(k.stop_cmd, "r")))
        die("cannot run the stop command: %s", k.stop_cmd);
    while (fgets(line, sizeof(line), f))
        killed |= strstr(line, "did not stop within") != NULL;
    rc = pclose(f);
    if (rc != 0)
        why(&d, "the stop command `%s` failed (status %d)", k.stop_cmd, rc);
    if (killed)
        why(&d, "it did not exit within 20 s of SIGTERM and was killed");
    l = rd_kafka_topic_partition_list_new(nins);
    for (int i = 0; i < nins; i++)
        rd_kafka_topic_partition_list_add(l, saga_event_type_topic(ins[i]->ev.type),
                                          ins[i]->dl.partition);
    if (rd_kafka_committed(k.probe, l, 10000))
        die("cannot ask the committed offsets of group %s-service", k.svc->name);
    for (int i = 0; i < nins; i++) {
        const char *topic = saga_event_type_topic(ins[i]->ev.type);
        int64_t committed =
            rd_kafka_topic_partition_list_find(l, topic, ins[i]->dl.partition)->offset;
        if (committed <= ins[i]->dl.offset)
            why(&d,
                "%s at %s[%d] offset %" PRId64 " was handled, yet after SIGTERM group %s-service "
                "has committed %s%" PRId64 " (a restart handles it again)",
                saga_event_type_name(ins[i]->ev.type), topic, (int)ins[i]->dl.partition,
                ins[i]->dl.offset, k.svc->name, committed < 0 ? "nothing: " : "", committed);
    }
    rd_kafka_topic_partition_list_destroy(l);
    printf("note: stopped in %" PRId64 " ms\n", saga_now_ms() - t0);
    report(&d, "stops on SIGTERM at once after handling events and commits their offsets "
               "(the group's committed offsets are past them; exits within 20 s)");
}

/* --- HTTP ------------------------------------------------------------------------ */

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    char **b = arg;
    size_t old = *b ? strlen(*b) : 0, add = size * n;
    char *nb = realloc(*b, old + add + 1);
    if (!nb)
        return 0;
    memcpy(nb + old, p, add);
    nb[old + add] = '\0';
    *b = nb;
    return add;
}

static long http_get(const char *path, char **body)
{
    CURL *c = curl_easy_init();
    char url[512];
    long status = 0;
    *body = NULL;
    snprintf(url, sizeof(url), "%s%s", k.http, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 10L);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, body);
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(c);
    return status;
}

static void check_http(void)
{
    struct duty d = {{0}};
    char *body;
    long st;
    if (!k.http[0]) {
        printf("note: no HTTP address (STACK_HTTP_PORT_BASE or --http): /readyz and /metrics "
               "not checked\n");
        return;
    }
    if ((st = http_get("/readyz", &body)) != 200)
        why(&d, "GET %s/readyz answered %ld", k.http, st);
    free(body);
    report(&d, "answers GET /readyz with 200");

    memset(&d, 0, sizeof(d));
    st = http_get("/metrics", &body);
    if (st != 200) {
        why(&d, "GET %s/metrics answered %ld", k.http, st);
    } else {
        int samples = 0;
        for (const char *p = body; p && *p; p = strchr(p, '\n') ? strchr(p, '\n') + 1 : NULL)
            samples += (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_';
        if (!samples)
            why(&d, "GET %s/metrics has no sample line (Prometheus text format)", k.http);
    }
    free(body);
    report(&d, "serves Prometheus metrics on GET /metrics");
}

/* --- shipping ---------------------------------------------------------------------- */

static void shipping(void)
{
    struct order *a = new_order("happy path"), *b = new_order("country AQ"),
                 *c = new_order("PaymentAuthorized first"),
                 *dd = new_order("cancelled before placed"),
                 *e = new_order("cancelled before paid"), *g = new_order("blank city"),
                 *h = new_order("country NLD"), *p = new_order("after a poison message"),
                 *st = new_order("stopped after");
    struct input *op_a = order_placed(a, "cust-alice", "tok_visa", "NL", STANDARD_ITEMS),
                 *op_b = order_placed(b, "cust-alice", "tok_visa", "AQ", STANDARD_ITEMS),
                 *op_c = order_placed(c, "cust-alice", "tok_visa", "DE", STANDARD_ITEMS),
                 *oc_d = order_cancelled(dd, SAGA_CANCEL_CUSTOMER_REQUEST, NULL),
                 *op_d = order_placed(dd, "cust-alice", "tok_visa", "NL", STANDARD_ITEMS),
                 *op_e = order_placed(e, "cust-alice", "tok_visa", "NL", STANDARD_ITEMS),
                 *oc_e = order_cancelled(e, SAGA_CANCEL_CUSTOMER_REQUEST, NULL),
                 *op_g = order_placed(g, "cust-alice", "tok_visa", "NL", STANDARD_ITEMS),
                 *op_h = order_placed(h, "cust-alice", "tok_visa", "NLD", STANDARD_ITEMS),
                 *op_p = order_placed(p, "cust-alice", "tok_visa", "NL", STANDARD_ITEMS),
                 *op_st = order_placed(st, "cust-alice", "tok_visa", "NL", STANDARD_ITEMS);
    struct input *pa_a = payment_authorized(a, op_a), *pa_b = payment_authorized(b, op_b),
                 *pa_c = payment_authorized(c, op_c), *pa_d = payment_authorized(dd, op_d),
                 *pa_e = payment_authorized(e, op_e), *pa_g = payment_authorized(g, op_g),
                 *pa_h = payment_authorized(h, op_h), *pa_p = payment_authorized(p, op_p),
                 *pa_st = payment_authorized(st, op_st);
    struct input *pa_a2, *oc_a, *oc_a2, *oc_b;
    struct input *stopped[2] = {op_st, pa_st};
    const struct poison *bad;
    const struct seen *sched, *s;
    struct duty d;
    int64_t deadline;

    /* Invalid addresses (docs/SERVICES.md): a blank city, a country of three letters. */
    op_g->ev.u.order_placed.shipping_address.city = "  ";

    /* 1: what must come first; PaymentAuthorized for c without its OrderPlaced. */
    put(op_a), put(op_b), put(oc_d), put(op_d), put(op_e), put(oc_e), put(pa_c), put(op_g),
        put(op_h), put(op_p);
    flush();
    barrier("phase 1");
    c->seen_after_phase1 = count(c, -1);

    /* 2: the triggers; c's OrderPlaced; p's trigger behind a poison message. */
    put(pa_a), put(pa_b), put(pa_d), put(pa_e), put(op_c), put(pa_g), put(pa_h);
    bad = poison(p, "payments");
    put(pa_p);
    flush();
    deadline = saga_now_ms() + k.timeout_ms;
    wait_for(a, SAGA_EV_SHIPMENT_SCHEDULED, 1, deadline);
    wait_for(b, SAGA_EV_SHIPMENT_FAILED, 1, deadline);
    wait_for(c, SAGA_EV_SHIPMENT_SCHEDULED, 1, deadline);
    wait_for(p, SAGA_EV_SHIPMENT_SCHEDULED, 1, deadline);
    wait_for_dead(bad, deadline);
    barrier("phase 2");

    /* 3: redeliveries (same event ids), a second trigger, a cancellation of a failure. */
    pa_a2 = again(pa_a);
    oc_b = order_cancelled(b, SAGA_CANCEL_SHIPMENT_FAILED, "UNSUPPORTED_DESTINATION");
    put(op_a), put(pa_a), put(pa_a2), put(oc_b);
    flush();
    barrier("phase 3");

    /* 4: the compensation, redelivered and repeated. */
    oc_a = order_cancelled(a, SAGA_CANCEL_TIMEOUT, NULL);
    oc_a2 = again(oc_a);
    put(oc_a), put(oc_a), put(oc_a2);
    flush();
    wait_for(a, SAGA_EV_SHIPMENT_CANCELLED, 1, saga_now_ms() + k.timeout_ms);
    barrier("phase 4");

    memset(&d, 0, sizeof(d));
    if ((sched = one(&d, a, SAGA_EV_SHIPMENT_SCHEDULED, pa_a))) {
        const struct saga_shipment_scheduled *x = &sched->ev.u.shipment_scheduled;
        if (empty(x->tracking_number) || empty(x->shipment_id) || empty(x->carrier))
            why(&d,
                "ShipmentScheduled needs shipment_id, tracking_number and carrier (got \"%s\", "
                "\"%s\", \"%s\")",
                x->shipment_id, x->tracking_number, x->carrier);
    }
    none(&d, a, SAGA_EV_SHIPMENT_FAILED);
    report(&d, "schedules a shipment with a tracking number on PaymentAuthorized "
               "(OrderPlaced + PaymentAuthorized -> one ShipmentScheduled)");

    memset(&d, 0, sizeof(d));
    if ((s = one(&d, b, SAGA_EV_SHIPMENT_FAILED, pa_b))) {
        if (s->ev.u.shipment_failed.reason != SAGA_SHIPFAIL_UNSUPPORTED_DESTINATION)
            why(&d, "ShipmentFailed reason is %s, expected UNSUPPORTED_DESTINATION",
                saga_shipment_failure_names[s->ev.u.shipment_failed.reason]);
        same_str(&d, "ShipmentFailed country", s->ev.u.shipment_failed.country, "AQ");
    }
    none(&d, b, SAGA_EV_SHIPMENT_SCHEDULED);
    report(&d, "fails a shipment to country AQ (ShipmentFailed, UNSUPPORTED_DESTINATION)");

    memset(&d, 0, sizeof(d));
    for (int i = 0; i < 2; i++) {
        const struct order *o = i ? h : g;
        if ((s = one(&d, o, SAGA_EV_SHIPMENT_FAILED, i ? pa_h : pa_g)) &&
            s->ev.u.shipment_failed.reason != SAGA_SHIPFAIL_INVALID_ADDRESS)
            why(&d, "order %.8s (%s): ShipmentFailed reason is %s, expected INVALID_ADDRESS", o->id,
                o->label, saga_shipment_failure_names[s->ev.u.shipment_failed.reason]);
        none(&d, o, SAGA_EV_SHIPMENT_SCHEDULED);
    }
    report(&d, "fails a shipment to an invalid address: a blank city, a country not of two "
               "letters (ShipmentFailed, INVALID_ADDRESS)");

    check_envelopes();
    check_traces();
    check_dead_letter(bad, pa_p, SAGA_EV_SHIPMENT_SCHEDULED);

    memset(&d, 0, sizeof(d));
    if (count(a, SAGA_EV_SHIPMENT_SCHEDULED) > 1)
        why(&d,
            "OrderPlaced and PaymentAuthorized delivered again (same event ids) or a second "
            "PaymentAuthorized: got %s",
            got(a));
    if (count(a, SAGA_EV_SHIPMENT_CANCELLED) > 1)
        why(&d, "OrderCancelled delivered again (same event id) or repeated: got %s", got(a));
    if (!count(a, SAGA_EV_SHIPMENT_SCHEDULED))
        why(&d, "nothing to compare: no ShipmentScheduled at all");
    report(&d, "acts once per order: redelivered events (same event ids) and a second "
               "PaymentAuthorized or OrderCancelled (new event ids) emit nothing more");

    memset(&d, 0, sizeof(d));
    if ((s = one(&d, a, SAGA_EV_SHIPMENT_CANCELLED, oc_a)) && sched) {
        same_str(&d, "ShipmentCancelled shipment_id", s->ev.u.shipment_cancelled.shipment_id,
                 sched->ev.u.shipment_scheduled.shipment_id);
        same_str(&d, "ShipmentCancelled tracking_number",
                 s->ev.u.shipment_cancelled.tracking_number,
                 sched->ev.u.shipment_scheduled.tracking_number);
    }
    none(&d, b, SAGA_EV_SHIPMENT_CANCELLED);
    report(&d, "cancels a scheduled shipment on OrderCancelled, once (ShipmentCancelled); "
               "nothing for a failed one");

    memset(&d, 0, sizeof(d));
    if (c->seen_after_phase1)
        why(&d, "before its OrderPlaced arrived, PaymentAuthorized already gave %s", got(c));
    one(&d, c, SAGA_EV_SHIPMENT_SCHEDULED, pa_c);
    report(&d, "keeps a PaymentAuthorized that arrives before its OrderPlaced and schedules "
               "the shipment when OrderPlaced arrives");

    memset(&d, 0, sizeof(d));
    did_something(&d);
    none(&d, dd, -1);
    none(&d, e, -1);
    report(&d, "does nothing for a cancelled order (OrderCancelled, then OrderPlaced and "
               "PaymentAuthorized; or OrderPlaced, OrderCancelled, PaymentAuthorized)");

    /* Last: a new order handled, then SIGTERM at once. */
    put(op_st), put(pa_st);
    flush();
    check_stop(st, stopped, 2, SAGA_EV_SHIPMENT_SCHEDULED);
}

/* --- payment ------------------------------------------------------------------------ */

static void payment_declined(const char *label, const struct order *o, const struct input *ir,
                             saga_payment_failure_t reason, const char *customer, int64_t amount)
{
    struct duty d = {{0}};
    const struct seen *s;
    char text[256];
    if ((s = one(&d, o, SAGA_EV_PAYMENT_FAILED, ir))) {
        const struct saga_payment_failed *x = &s->ev.u.payment_failed;
        if (x->reason != reason)
            why(&d, "PaymentFailed reason is %s, expected %s",
                saga_payment_failure_names[x->reason], saga_payment_failure_names[reason]);
        same_str(&d, "PaymentFailed customer_id", x->customer_id, customer);
        same_str(&d, "PaymentFailed currency", x->currency, "EUR");
        if (x->amount != amount)
            why(&d, "PaymentFailed amount %" PRId64 ", expected %" PRId64, x->amount, amount);
    }
    none(&d, o, SAGA_EV_PAYMENT_AUTHORIZED);
    snprintf(text, sizeof(text), "declines %s (PaymentFailed, %s)", label,
             saga_payment_failure_names[reason]);
    report(&d, text);
}

static void payment(void)
{
    struct order *a = new_order("happy path"), *b = new_order("tok_chargeDeclined"),
                 *b2 = new_order("tok_chargeDeclinedInsufficientFunds"),
                 *b3 = new_order("over the credit limit"), *b4 = new_order("unknown customer"),
                 *c = new_order("InventoryReserved first"),
                 *dd = new_order("cancelled before placed"),
                 *e = new_order("cancelled before reserved"),
                 *p = new_order("after a poison message"), *st = new_order("stopped after");
    struct input *op_a = order_placed(a, "cust-alice", "tok_visa", "NL", STANDARD_ITEMS),
                 *op_p = order_placed(p, "cust-alice", "tok_visa", "NL", STANDARD_ITEMS),
                 *op_st = order_placed(st, "cust-alice", "tok_visa", "NL", STANDARD_ITEMS),
                 *op_b = order_placed(b, "cust-alice", "tok_chargeDeclined", "NL", STANDARD_ITEMS),
                 *op_b2 = order_placed(b2, "cust-alice", "tok_chargeDeclinedInsufficientFunds",
                                       "NL", STANDARD_ITEMS),
                 *op_b3 = order_placed(b3, "cust-frugal", "tok_visa", "NL", "sku-lamp:1:6000"),
                 *op_b4 = order_placed(b4, "cust-nobody-knows", "tok_visa", "NL", STANDARD_ITEMS),
                 *op_c = order_placed(c, "cust-bob", "tok_mastercard", "NL", STANDARD_ITEMS),
                 *oc_d = order_cancelled(dd, SAGA_CANCEL_CUSTOMER_REQUEST, NULL),
                 *op_d = order_placed(dd, "cust-alice", "tok_visa", "NL", STANDARD_ITEMS),
                 *op_e = order_placed(e, "cust-alice", "tok_visa", "NL", STANDARD_ITEMS),
                 *oc_e = order_cancelled(e, SAGA_CANCEL_CUSTOMER_REQUEST, NULL);
    struct input *ir_a = inventory_reserved(a, op_a), *ir_b = inventory_reserved(b, op_b),
                 *ir_b2 = inventory_reserved(b2, op_b2), *ir_b3 = inventory_reserved(b3, op_b3),
                 *ir_b4 = inventory_reserved(b4, op_b4), *ir_c = inventory_reserved(c, op_c),
                 *ir_d = inventory_reserved(dd, op_d), *ir_e = inventory_reserved(e, op_e),
                 *ir_p = inventory_reserved(p, op_p), *ir_st = inventory_reserved(st, op_st);
    struct input *ir_a2, *oc_a, *oc_a2, *oc_b;
    struct input *stopped[2] = {op_st, ir_st};
    const struct poison *bad;
    const struct seen *auth, *s;
    struct duty d;
    int64_t deadline, total = op_a->ev.u.order_placed.total_amount;

    put(op_a), put(op_b), put(op_b2), put(op_b3), put(op_b4), put(oc_d), put(op_d), put(op_e),
        put(oc_e), put(ir_c), put(op_p);
    flush();
    barrier("phase 1");
    c->seen_after_phase1 = count(c, -1);

    put(ir_a), put(ir_b), put(ir_b2), put(ir_b3), put(ir_b4), put(ir_d), put(ir_e), put(op_c);
    bad = poison(p, "inventory");
    put(ir_p);
    flush();
    deadline = saga_now_ms() + k.timeout_ms;
    wait_for(p, SAGA_EV_PAYMENT_AUTHORIZED, 1, deadline);
    wait_for_dead(bad, deadline);
    wait_for(a, SAGA_EV_PAYMENT_AUTHORIZED, 1, deadline);
    wait_for(b, SAGA_EV_PAYMENT_FAILED, 1, deadline);
    wait_for(c, SAGA_EV_PAYMENT_AUTHORIZED, 1, deadline);
    barrier("phase 2");

    ir_a2 = again(ir_a);
    oc_b = order_cancelled(b, SAGA_CANCEL_PAYMENT_FAILED, "CARD_DECLINED");
    put(op_a), put(ir_a), put(ir_a2), put(oc_b);
    flush();
    barrier("phase 3");

    oc_a = order_cancelled(a, SAGA_CANCEL_SHIPMENT_FAILED, "UNSUPPORTED_DESTINATION");
    oc_a2 = again(oc_a);
    put(oc_a), put(oc_a), put(oc_a2);
    flush();
    wait_for(a, SAGA_EV_PAYMENT_REFUNDED, 1, saga_now_ms() + k.timeout_ms);
    barrier("phase 4");

    memset(&d, 0, sizeof(d));
    if ((auth = one(&d, a, SAGA_EV_PAYMENT_AUTHORIZED, ir_a))) {
        const struct saga_payment_authorized *x = &auth->ev.u.payment_authorized;
        if (empty(x->payment_id))
            why(&d, "PaymentAuthorized has no payment_id");
        same_str(&d, "PaymentAuthorized customer_id", x->customer_id, "cust-alice");
        same_str(&d, "PaymentAuthorized currency", x->currency, "EUR");
        if (x->amount != total)
            why(&d, "PaymentAuthorized amount %" PRId64 ", expected OrderPlaced's total %" PRId64,
                x->amount, total);
    }
    none(&d, a, SAGA_EV_PAYMENT_FAILED);
    report(&d, "charges the order's total on InventoryReserved (tok_visa, cust-alice -> one "
               "PaymentAuthorized)");

    payment_declined("tok_chargeDeclined", b, ir_b, SAGA_PAYFAIL_CARD_DECLINED, "cust-alice",
                     total);
    payment_declined("tok_chargeDeclinedInsufficientFunds", b2, ir_b2,
                     SAGA_PAYFAIL_INSUFFICIENT_FUNDS, "cust-alice", total);
    payment_declined("cust-frugal over its 50.00 credit limit", b3, ir_b3,
                     SAGA_PAYFAIL_CREDIT_LIMIT_EXCEEDED, "cust-frugal", 6000);
    payment_declined("an unknown customer", b4, ir_b4, SAGA_PAYFAIL_UNKNOWN_CUSTOMER,
                     "cust-nobody-knows", total);

    check_envelopes();
    check_traces();
    check_dead_letter(bad, ir_p, SAGA_EV_PAYMENT_AUTHORIZED);

    memset(&d, 0, sizeof(d));
    if (count(a, SAGA_EV_PAYMENT_AUTHORIZED) > 1)
        why(&d,
            "OrderPlaced and InventoryReserved delivered again (same event ids) or a second "
            "InventoryReserved: got %s",
            got(a));
    if (count(a, SAGA_EV_PAYMENT_REFUNDED) > 1)
        why(&d, "OrderCancelled delivered again (same event id) or repeated: got %s", got(a));
    if (!count(a, SAGA_EV_PAYMENT_AUTHORIZED))
        why(&d, "nothing to compare: no PaymentAuthorized at all");
    report(&d, "acts once per order: redelivered events (same event ids) and a second "
               "InventoryReserved or OrderCancelled (new event ids) emit nothing more");

    memset(&d, 0, sizeof(d));
    if ((s = one(&d, a, SAGA_EV_PAYMENT_REFUNDED, oc_a)) && auth) {
        same_str(&d, "PaymentRefunded payment_id", s->ev.u.payment_refunded.payment_id,
                 auth->ev.u.payment_authorized.payment_id);
        same_str(&d, "PaymentRefunded currency", s->ev.u.payment_refunded.currency, "EUR");
        if (s->ev.u.payment_refunded.amount != total)
            why(&d, "PaymentRefunded amount %" PRId64 ", expected %" PRId64,
                s->ev.u.payment_refunded.amount, total);
    }
    none(&d, b, SAGA_EV_PAYMENT_REFUNDED);
    report(&d, "refunds a captured payment on OrderCancelled, once (PaymentRefunded); "
               "nothing for a declined one");

    memset(&d, 0, sizeof(d));
    if (c->seen_after_phase1)
        why(&d, "before its OrderPlaced arrived, InventoryReserved already gave %s", got(c));
    if ((s = one(&d, c, SAGA_EV_PAYMENT_AUTHORIZED, ir_c)))
        same_str(&d, "PaymentAuthorized customer_id", s->ev.u.payment_authorized.customer_id,
                 "cust-bob");
    report(&d, "keeps an InventoryReserved that arrives before its OrderPlaced and charges "
               "when OrderPlaced arrives");

    memset(&d, 0, sizeof(d));
    did_something(&d);
    none(&d, dd, -1);
    none(&d, e, -1);
    report(&d, "does nothing for a cancelled order (OrderCancelled, then OrderPlaced and "
               "InventoryReserved; or OrderPlaced, OrderCancelled, InventoryReserved)");

    put(op_st), put(ir_st);
    flush();
    check_stop(st, stopped, 2, SAGA_EV_PAYMENT_AUTHORIZED);
}

/* --- inventory ---------------------------------------------------------------------- */

/* The lines of ev (InventoryReserved/Released) summed per SKU equal want ("sku:n,..."). */
static void same_lines(struct duty *d, const char *what, const struct saga_stock_line *lines,
                       size_t n, const char *want)
{
    char buf[256], *save = NULL, *s;
    int total_want = 0, total_have = 0;
    snprintf(buf, sizeof(buf), "%s", want);
    for (size_t i = 0; i < n; i++)
        total_have += lines[i].quantity;
    for (s = strtok_r(buf, ",", &save); s; s = strtok_r(NULL, ",", &save)) {
        char *q = strchr(s, ':');
        int sum = 0;
        *q = '\0';
        for (size_t i = 0; i < n; i++)
            if (lines[i].sku && strcmp(lines[i].sku, s) == 0)
                sum += lines[i].quantity;
        if (sum != atoi(q + 1))
            why(d, "%s holds %d of %s, expected %d", what, sum, s, atoi(q + 1));
        total_want += atoi(q + 1);
    }
    if (total_have != total_want)
        why(d, "%s holds %d units in all, expected %d", what, total_have, total_want);
}

static void inventory(void)
{
    struct order *a = new_order("happy path"), *b = new_order("sku-sold-out"),
                 *b2 = new_order("unknown SKU"), *f = new_order("payment failed"),
                 *c = new_order("PaymentFailed first"), *dd = new_order("cancelled before placed"),
                 *p = new_order("after a poison message"), *st = new_order("stopped after");
    const char *items_a = "sku-mug:2:1299,sku-book:1:899,sku-mug:1:1299";
    struct input *op_a = order_placed(a, "cust-alice", "tok_visa", "NL", items_a),
                 *op_b = order_placed(b, "cust-alice", "tok_visa", "NL",
                                      "sku-book:1:899,sku-sold-out:1:500"),
                 *op_b2 =
                     order_placed(b2, "cust-alice", "tok_visa", "NL", "sku-no-such-thing:1:100"),
                 *op_f = order_placed(f, "cust-alice", "tok_visa", "NL", STANDARD_ITEMS),
                 *op_c = order_placed(c, "cust-alice", "tok_visa", "NL", STANDARD_ITEMS),
                 *oc_d = order_cancelled(dd, SAGA_CANCEL_CUSTOMER_REQUEST, NULL),
                 *op_d = order_placed(dd, "cust-alice", "tok_visa", "NL", STANDARD_ITEMS),
                 *op_p = order_placed(p, "cust-alice", "tok_visa", "NL", STANDARD_ITEMS),
                 *op_st = order_placed(st, "cust-alice", "tok_visa", "NL", STANDARD_ITEMS);
    struct input *pf_c = payment_failed(c, op_c), *pf_f, *op_a2, *oc_a, *oc_a2, *oc_b, *oc_f;
    struct input *stopped[1] = {op_st};
    const struct poison *bad;
    const struct seen *res, *s;
    struct duty d;
    int64_t deadline;

    put(op_a), put(op_b), put(op_b2), put(op_f), put(pf_c), put(oc_d), put(op_d);
    bad = poison(p, "orders");
    put(op_p);
    flush();
    deadline = saga_now_ms() + k.timeout_ms;
    wait_for(p, SAGA_EV_INVENTORY_RESERVED, 1, deadline);
    wait_for_dead(bad, deadline);
    wait_for(a, SAGA_EV_INVENTORY_RESERVED, 1, deadline);
    wait_for(f, SAGA_EV_INVENTORY_RESERVED, 1, deadline);
    barrier("phase 1");
    c->seen_after_phase1 = count(c, -1);

    op_a2 = again(op_a);
    pf_f = payment_failed(f, op_f);
    oc_b = order_cancelled(b, SAGA_CANCEL_OUT_OF_STOCK, NULL);
    put(op_a), put(op_a2), put(pf_f), put(op_c), put(oc_b);
    flush();
    deadline = saga_now_ms() + k.timeout_ms;
    wait_for(f, SAGA_EV_INVENTORY_RELEASED, 1, deadline);
    wait_for(c, SAGA_EV_INVENTORY_RELEASED, 1, deadline);
    barrier("phase 2");

    oc_a = order_cancelled(a, SAGA_CANCEL_PAYMENT_FAILED, "CARD_DECLINED");
    oc_a2 = again(oc_a);
    oc_f = order_cancelled(f, SAGA_CANCEL_PAYMENT_FAILED, "CARD_DECLINED");
    put(oc_a), put(oc_a), put(oc_a2), put(oc_f);
    flush();
    wait_for(a, SAGA_EV_INVENTORY_RELEASED, 1, saga_now_ms() + k.timeout_ms);
    barrier("phase 3");

    memset(&d, 0, sizeof(d));
    if ((res = one(&d, a, SAGA_EV_INVENTORY_RESERVED, op_a))) {
        if (empty(res->ev.u.inventory_reserved.reservation_id))
            why(&d, "InventoryReserved has no reservation_id");
        same_lines(&d, "InventoryReserved", res->ev.u.inventory_reserved.items,
                   res->ev.u.inventory_reserved.item_count, "sku-mug:3,sku-book:1");
    }
    none(&d, a, SAGA_EV_INVENTORY_REJECTED);
    report(&d, "reserves every line on OrderPlaced (one InventoryReserved with the order's "
               "quantities)");

    memset(&d, 0, sizeof(d));
    if ((s = one(&d, b, SAGA_EV_INVENTORY_REJECTED, op_b))) {
        if (s->ev.u.inventory_rejected.reason != SAGA_REJECT_OUT_OF_STOCK)
            why(&d, "InventoryRejected reason is %s, expected OUT_OF_STOCK",
                saga_reject_reason_names[s->ev.u.inventory_rejected.reason]);
        if (s->ev.u.inventory_rejected.sku)
            same_str(&d, "InventoryRejected sku", s->ev.u.inventory_rejected.sku, "sku-sold-out");
    }
    none(&d, b, SAGA_EV_INVENTORY_RESERVED);
    none(&d, b, SAGA_EV_INVENTORY_RELEASED);
    report(&d, "rejects an order with sku-sold-out, reserving nothing (InventoryRejected, "
               "OUT_OF_STOCK); nothing on its OrderCancelled");

    memset(&d, 0, sizeof(d));
    if ((s = one(&d, b2, SAGA_EV_INVENTORY_REJECTED, op_b2)) &&
        s->ev.u.inventory_rejected.reason != SAGA_REJECT_UNKNOWN_SKU)
        why(&d, "InventoryRejected reason is %s, expected UNKNOWN_SKU",
            saga_reject_reason_names[s->ev.u.inventory_rejected.reason]);
    report(&d, "rejects an order with an unknown SKU (InventoryRejected, UNKNOWN_SKU)");

    check_envelopes();
    check_traces();
    check_dead_letter(bad, op_p, SAGA_EV_INVENTORY_RESERVED);

    memset(&d, 0, sizeof(d));
    if (count(a, SAGA_EV_INVENTORY_RESERVED) > 1)
        why(&d, "OrderPlaced delivered again (same event id) or a second OrderPlaced: got %s",
            got(a));
    if (count(a, SAGA_EV_INVENTORY_RELEASED) > 1)
        why(&d, "OrderCancelled delivered again (same event id) or repeated: got %s", got(a));
    if (!count(a, SAGA_EV_INVENTORY_RESERVED))
        why(&d, "nothing to compare: no InventoryReserved at all");
    report(&d, "acts once per order: redelivered events (same event ids) and a second "
               "OrderPlaced or OrderCancelled (new event ids) emit nothing more");

    memset(&d, 0, sizeof(d));
    if ((s = one(&d, a, SAGA_EV_INVENTORY_RELEASED, oc_a)) && res) {
        same_str(&d, "InventoryReleased reservation_id", s->ev.u.inventory_released.reservation_id,
                 res->ev.u.inventory_reserved.reservation_id);
        if (s->ev.u.inventory_released.reason != SAGA_RELEASE_ORDER_CANCELLED)
            why(&d, "InventoryReleased reason is %s, expected ORDER_CANCELLED",
                saga_release_reason_names[s->ev.u.inventory_released.reason]);
        same_lines(&d, "InventoryReleased", s->ev.u.inventory_released.items,
                   s->ev.u.inventory_released.item_count, "sku-mug:3,sku-book:1");
    }
    report(&d, "releases the reservation on OrderCancelled, once (InventoryReleased, "
               "ORDER_CANCELLED)");

    memset(&d, 0, sizeof(d));
    if ((s = one(&d, f, SAGA_EV_INVENTORY_RELEASED, pf_f)) &&
        s->ev.u.inventory_released.reason != SAGA_RELEASE_PAYMENT_FAILED)
        why(&d, "InventoryReleased reason is %s, expected PAYMENT_FAILED",
            saga_release_reason_names[s->ev.u.inventory_released.reason]);
    report(&d, "releases the reservation on PaymentFailed (InventoryReleased, PAYMENT_FAILED), "
               "and not again on the OrderCancelled that follows");

    memset(&d, 0, sizeof(d));
    if (c->seen_after_phase1)
        why(&d, "before its OrderPlaced arrived, PaymentFailed already gave %s", got(c));
    one(&d, c, SAGA_EV_INVENTORY_RESERVED, op_c);
    if ((s = one(&d, c, SAGA_EV_INVENTORY_RELEASED, pf_c)) &&
        s->ev.u.inventory_released.reason != SAGA_RELEASE_PAYMENT_FAILED)
        why(&d, "InventoryReleased reason is %s, expected PAYMENT_FAILED",
            saga_release_reason_names[s->ev.u.inventory_released.reason]);
    report(&d, "keeps a PaymentFailed that arrives before its OrderPlaced and releases what "
               "OrderPlaced reserved when it arrives");

    memset(&d, 0, sizeof(d));
    did_something(&d);
    none(&d, dd, -1);
    report(&d, "does nothing for a cancelled order (OrderCancelled, then OrderPlaced: nothing "
               "reserved)");

    put(op_st);
    flush();
    check_stop(st, stopped, 1, SAGA_EV_INVENTORY_RESERVED);
}

/* --- notification ------------------------------------------------------------------- */

static void notified(struct duty *d, const struct seen *s, saga_outcome_t outcome,
                     const char *customer)
{
    const struct saga_notification_sent *x = &s->ev.u.notification_sent;
    if (x->outcome != outcome)
        why(d, "NotificationSent outcome is %s, expected %s", saga_outcome_names[x->outcome],
            saga_outcome_names[outcome]);
    if (empty(x->notification_id))
        why(d, "NotificationSent has no notification_id");
    if (!x->recipient || strncmp(x->recipient, customer, strlen(customer)) ||
        x->recipient[strlen(customer)] != '@')
        why(d, "NotificationSent recipient is \"%s\", expected %s@<domain>",
            x->recipient ? x->recipient : "(null)", customer);
    if (empty(x->message))
        why(d, "NotificationSent has an empty message");
}

static void notification(void)
{
    struct order *a = new_order("confirmed"), *b = new_order("cancelled"),
                 *c = new_order("OrderConfirmed first"), *p = new_order("after a poison message"),
                 *st = new_order("stopped after");
    struct input *op_a = order_placed(a, "cust-alice", "tok_visa", "NL", STANDARD_ITEMS),
                 *op_p = order_placed(p, "cust-alice", "tok_visa", "NL", STANDARD_ITEMS),
                 *op_st = order_placed(st, "cust-alice", "tok_visa", "NL", STANDARD_ITEMS),
                 *op_b = order_placed(b, "cust-bob", "tok_chargeDeclined", "NL", STANDARD_ITEMS),
                 *op_c = order_placed(c, "cust-carol", "tok_visa", "NL", STANDARD_ITEMS);
    int64_t total = op_a->ev.u.order_placed.total_amount, deadline;
    struct input *conf_a = order_confirmed(a, NULL, total),
                 *conf_c = order_confirmed(c, NULL, total),
                 *oc_b = order_cancelled(b, SAGA_CANCEL_PAYMENT_FAILED, "CARD_DECLINED"),
                 *conf_p = order_confirmed(p, NULL, total),
                 *conf_st = order_confirmed(st, NULL, total);
    struct input *conf_a2, *oc_a, *conf_b;
    struct input *stopped[2] = {op_st, conf_st};
    const struct poison *bad;
    const struct seen *s;
    struct duty d;

    put(op_a), put(op_b), put(conf_c), put(op_p);
    flush();
    barrier("phase 1");
    c->seen_after_phase1 = count(c, -1);

    put(conf_a), put(oc_b), put(op_c);
    bad = poison(p, "orders");
    put(conf_p);
    flush();
    deadline = saga_now_ms() + k.timeout_ms;
    wait_for(p, SAGA_EV_NOTIFICATION_SENT, 1, deadline);
    wait_for_dead(bad, deadline);
    wait_for(a, SAGA_EV_NOTIFICATION_SENT, 1, deadline);
    wait_for(b, SAGA_EV_NOTIFICATION_SENT, 1, deadline);
    wait_for(c, SAGA_EV_NOTIFICATION_SENT, 1, deadline);
    barrier("phase 2");

    conf_a2 = again(conf_a);
    oc_a = order_cancelled(a, SAGA_CANCEL_TIMEOUT, NULL);
    conf_b = order_confirmed(b, NULL, total);
    put(op_a), put(conf_a), put(conf_a2), put(oc_a), put(conf_b);
    flush();
    barrier("phase 3");

    memset(&d, 0, sizeof(d));
    if ((s = one(&d, a, SAGA_EV_NOTIFICATION_SENT, conf_a)))
        notified(&d, s, SAGA_OUTCOME_CONFIRMED, "cust-alice");
    report(&d, "tells the customer about OrderConfirmed (one NotificationSent, CONFIRMED)");

    memset(&d, 0, sizeof(d));
    if ((s = one(&d, b, SAGA_EV_NOTIFICATION_SENT, oc_b)))
        notified(&d, s, SAGA_OUTCOME_CANCELLED, "cust-bob");
    report(&d, "tells the customer about OrderCancelled (one NotificationSent, CANCELLED)");

    check_envelopes();
    check_traces();
    check_dead_letter(bad, conf_p, SAGA_EV_NOTIFICATION_SENT);

    memset(&d, 0, sizeof(d));
    if (count(a, SAGA_EV_NOTIFICATION_SENT) > 1)
        why(&d,
            "OrderPlaced and OrderConfirmed delivered again (same event ids), a second "
            "OrderConfirmed or a later OrderCancelled: got %s",
            got(a));
    if (count(b, SAGA_EV_NOTIFICATION_SENT) > 1)
        why(&d, "OrderConfirmed after OrderCancelled: got %s", got(b));
    if (!count(a, SAGA_EV_NOTIFICATION_SENT))
        why(&d, "nothing to compare: no NotificationSent at all");
    report(&d, "notifies once per order: redelivered events (same event ids), a repeated "
               "outcome and a later other outcome emit nothing more");

    memset(&d, 0, sizeof(d));
    if (c->seen_after_phase1)
        why(&d, "before its OrderPlaced arrived, OrderConfirmed already gave %s", got(c));
    if ((s = one(&d, c, SAGA_EV_NOTIFICATION_SENT, conf_c)))
        notified(&d, s, SAGA_OUTCOME_CONFIRMED, "cust-carol");
    report(&d, "keeps an OrderConfirmed that arrives before its OrderPlaced and notifies when "
               "OrderPlaced arrives");

    put(op_st), put(conf_st);
    flush();
    check_stop(st, stopped, 2, SAGA_EV_NOTIFICATION_SENT);
}

/* --- order ------------------------------------------------------------------------ */

/* The traceparent header of the next request (place()), or NULL. */
static const char *http_traceparent;

/* method path (body: JSON or NULL) against the service; returns the status, *json the
 * reply (or NULL). */
static long http_json(const char *method, const char *path, const char *body, json_t **json)
{
    CURL *c = curl_easy_init();
    struct curl_slist *h = NULL;
    char url[512], *reply = NULL;
    long status = 0;
    *json = NULL;
    snprintf(url, sizeof(url), "%s%s", k.http, path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, &reply);
    h = curl_slist_append(h, "Content-Type: application/json");
    h = curl_slist_append(h, "Expect:");
    if (k.token[0]) {
        char auth[1100];
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", k.token);
        h = curl_slist_append(h, auth);
    }
    if (http_traceparent) {
        char tp[128];
        snprintf(tp, sizeof(tp), "traceparent: %s", http_traceparent);
        h = curl_slist_append(h, tp);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    if (body)
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    if (curl_easy_perform(c) == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
    if (reply)
        *json = json_loads(reply, 0, NULL);
    free(reply);
    curl_slist_free_all(h);
    curl_easy_cleanup(c);
    return status;
}

static const char *jstr(json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : "";
}

/* POST /orders for customer/token/country with sku-mug x2 and sku-book x1; the new
 * order (NULL with the reason in d when refused). */
static struct order *place(struct duty *d, const char *label, const char *customer,
                           const char *token, const char *country)
{
    char body[1024], tp[SAGA_TRACEPARENT_LEN + 1];
    json_t *j;
    long st;
    struct order *o;
    saga_traceparent_new(tp); /* the caller's trace: OrderPlaced is a child of it */
    snprintf(body, sizeof(body),
             "{\"customer_id\": \"%s\", \"currency\": \"EUR\", \"payment_token\": \"%s\","
             " \"items\": [{\"sku\": \"sku-mug\", \"quantity\": 2}, {\"sku\": \"sku-book\","
             " \"quantity\": 1}], \"shipping_address\": {\"recipient\": \"Ada Lovelace\","
             " \"line1\": \"Main Street 1\", \"city\": \"Utrecht\", \"postal_code\": \"3511 AB\","
             " \"country\": \"%s\"}}",
             customer, token, country);
    http_traceparent = tp;
    st = http_json("POST", "/orders", body, &j);
    http_traceparent = NULL;
    if (st != 202 || !saga_uuid_valid(jstr(j, "order_id"))) {
        why(d, "POST /orders (%s) answered %ld%s%s", label, st, j ? ": " : "",
            j ? jstr(j, "message") : "");
        json_decref(j);
        return NULL;
    }
    o = &k.orders[k.norders++];
    snprintf(o->id, sizeof(o->id), "%s", jstr(j, "order_id"));
    snprintf(o->traceparent, sizeof(o->traceparent), "%s", tp);
    o->label = label;
    json_decref(j);
    return o;
}

/* The order's status from GET /orders/{id}, or "" (static buffer). */
static const char *status_of(const struct order *o)
{
    static char buf[32];
    char path[128];
    json_t *j;
    snprintf(path, sizeof(path), "/orders/%s", o->id);
    buf[0] = '\0';
    if (http_json("GET", path, NULL, &j) == 200)
        snprintf(buf, sizeof(buf), "%s", jstr(j, "status"));
    json_decref(j);
    return buf;
}

/* Waits for o's OrderPlaced and takes its correlation id for the events the kit adds. */
static const struct input *placed_input(struct order *o)
{
    const struct seen *s;
    struct input *in;
    wait_for(o, SAGA_EV_ORDER_PLACED, 1, saga_now_ms() + k.timeout_ms);
    if (!(s = nth(o, SAGA_EV_ORDER_PLACED, 0)))
        return NULL;
    snprintf(o->corr, sizeof(o->corr), "%s", s->ev.meta.correlation_id);
    /* Stands for the service's OrderPlaced as the cause of what the kit sends next. */
    in = input(o, SAGA_EV_ORDER_PLACED, NULL, "order-service");
    snprintf(in->event_id, sizeof(in->event_id), "%s", s->ev.meta.event_id);
    in->echo = 1;
    in->ev.u.order_placed = s->ev.u.order_placed;
    snprintf(in->traceparent, sizeof(in->traceparent), "%s",
             s->ev.meta.traceparent ? s->ev.meta.traceparent : "");
    return in;
}

static void cancelled_by(struct duty *d, const struct order *o, const struct input *cause,
                         saga_cancel_reason_t reason, const char *detail)
{
    const struct seen *s;
    if (!o)
        return;
    if ((s = one(d, o, SAGA_EV_ORDER_CANCELLED, cause))) {
        const struct saga_order_cancelled *x = &s->ev.u.order_cancelled;
        if (x->reason != reason)
            why(d, "OrderCancelled reason is %s, expected %s", saga_cancel_reason_names[x->reason],
                saga_cancel_reason_names[reason]);
        if (detail && x->detail && !strstr(x->detail, detail))
            why(d, "OrderCancelled detail \"%s\" does not name %s", x->detail, detail);
    }
    none(d, o, SAGA_EV_ORDER_CONFIRMED);
    if (strcmp(status_of(o), "CANCELLED"))
        why(d, "GET /orders/%.8s says \"%s\", expected CANCELLED", o->id, status_of(o));
}

static void order(void)
{
    struct duty placing = {{0}}, d;
    struct order *a = place(&placing, "confirmed", "cust-alice", "tok_visa", "NL"),
                 *b = place(&placing, "out of stock", "cust-alice", "tok_visa", "NL"),
                 *c = place(&placing, "payment failed", "cust-alice", "tok_visa", "NL"),
                 *e = place(&placing, "shipment failed", "cust-alice", "tok_visa", "NL"),
                 *f = place(&placing, "customer cancel", "cust-alice", "tok_visa", "NL"),
                 *p = place(&placing, "after a poison message", "cust-alice", "tok_visa", "NL"),
                 *u = new_order("unknown to the service"), *sto;
    const struct input *op_a = NULL, *op_b = NULL, *op_c = NULL, *op_e = NULL, *op_f = NULL,
                       *op_p = NULL;
    struct input *ir_a = NULL, *pa_a = NULL, *ss_a = NULL, *rj_b = NULL, *pf_c = NULL, *sf_e = NULL,
                 *rj_p = NULL, *ss_u;
    const struct poison *bad = NULL;
    const struct seen *s;
    int64_t deadline;
    long st;
    json_t *j;
    char path[128];

    /* 1: the orders placed; one cancelled by its customer; an event about an order the
     * service never had. */
    if (a)
        op_a = placed_input(a);
    if (b)
        op_b = placed_input(b);
    if (c)
        op_c = placed_input(c);
    if (e)
        op_e = placed_input(e);
    if (f && (op_f = placed_input(f))) {
        snprintf(path, sizeof(path), "/orders/%s/cancel", f->id);
        if ((st = http_json("POST", path, "{}", &j)) != 200)
            why(&placing, "POST %s answered %ld", path, st);
        json_decref(j);
    }
    ss_u = input(u, SAGA_EV_SHIPMENT_SCHEDULED, NULL, "shipping-service");
    ss_u->ev.u.shipment_scheduled = (struct saga_shipment_scheduled){ss_u->event_id, "SP0", "X"};
    put(ss_u);
    flush();
    barrier("phase 1");

    /* 2: the other services' answers. */
    if (op_a) {
        ir_a = inventory_reserved(a, op_a);
        ir_a->ev.meta.causation_id = op_a->event_id;
        pa_a = payment_authorized(a, op_a);
        pa_a->ev.meta.causation_id = ir_a->event_id;
        ss_a = input(a, SAGA_EV_SHIPMENT_SCHEDULED, pa_a, "shipping-service");
        ss_a->ev.u.shipment_scheduled =
            (struct saga_shipment_scheduled){pa_a->event_id, "SP0123456789", "SagaPost"};
        put(ir_a), put(pa_a), put(ss_a);
    }
    if (op_b) {
        rj_b = input(b, SAGA_EV_INVENTORY_REJECTED, op_b, "inventory-service");
        rj_b->ev.u.inventory_rejected.reason = SAGA_REJECT_OUT_OF_STOCK;
        rj_b->ev.u.inventory_rejected.sku = "sku-mug";
        put(rj_b);
    }
    if (op_c) {
        pf_c = payment_failed(c, op_c);
        put(pf_c);
    }
    if (op_e) {
        sf_e = input(e, SAGA_EV_SHIPMENT_FAILED, NULL, "shipping-service");
        sf_e->ev.u.shipment_failed.reason = SAGA_SHIPFAIL_UNSUPPORTED_DESTINATION;
        sf_e->ev.u.shipment_failed.country = "NL";
        put(sf_e);
    }
    if (p && (op_p = placed_input(p))) {
        bad = poison(p, "inventory");
        rj_p = input(p, SAGA_EV_INVENTORY_REJECTED, op_p, "inventory-service");
        rj_p->ev.u.inventory_rejected.reason = SAGA_REJECT_OUT_OF_STOCK;
        rj_p->ev.u.inventory_rejected.sku = "sku-mug";
        put(rj_p);
    }
    flush();
    deadline = saga_now_ms() + k.timeout_ms;
    if (a)
        wait_for(a, SAGA_EV_ORDER_CONFIRMED, 1, deadline);
    if (b)
        wait_for(b, SAGA_EV_ORDER_CANCELLED, 1, deadline);
    if (c)
        wait_for(c, SAGA_EV_ORDER_CANCELLED, 1, deadline);
    if (e)
        wait_for(e, SAGA_EV_ORDER_CANCELLED, 1, deadline);
    if (p)
        wait_for(p, SAGA_EV_ORDER_CANCELLED, 1, deadline);
    if (bad)
        wait_for_dead(bad, deadline);
    barrier("phase 2");

    /* 3: redeliveries, repeats, and outcomes that come too late. */
    if (ss_a) {
        struct input *sf_a = input(a, SAGA_EV_SHIPMENT_FAILED, pa_a, "shipping-service");
        sf_a->ev.u.shipment_failed.reason = SAGA_SHIPFAIL_UNSUPPORTED_DESTINATION;
        sf_a->ev.u.shipment_failed.country = "NL";
        put(ss_a), put(again(ss_a)), put(sf_a);
    }
    if (rj_b)
        put(rj_b);
    if (sf_e) {
        struct input *ss_e = input(e, SAGA_EV_SHIPMENT_SCHEDULED, NULL, "shipping-service");
        ss_e->ev.u.shipment_scheduled =
            (struct saga_shipment_scheduled){ss_e->event_id, "SP9876543210", "SagaPost"};
        put(ss_e);
    }
    flush();
    barrier("phase 3");

    memset(&d, 0, sizeof(d));
    strcpy(d.why, placing.why);
    if (a && (s = one(&d, a, SAGA_EV_ORDER_PLACED, NULL))) {
        const struct saga_order_placed *x = &s->ev.u.order_placed;
        int64_t sum = 0;
        int mugs = 0, books = 0;
        for (size_t i = 0; i < x->item_count; i++) {
            sum += x->items[i].quantity * x->items[i].unit_price;
            mugs += strcmp(x->items[i].sku, "sku-mug") ? 0 : x->items[i].quantity;
            books += strcmp(x->items[i].sku, "sku-book") ? 0 : x->items[i].quantity;
            if (x->items[i].unit_price <= 0)
                why(&d, "OrderPlaced line %s has unit_price %" PRId64, x->items[i].sku,
                    x->items[i].unit_price);
        }
        if (mugs != 2 || books != 1 || x->item_count > 2)
            why(&d, "OrderPlaced lines are not the order's (sku-mug x2, sku-book x1)");
        if (x->total_amount != sum)
            why(&d, "OrderPlaced total_amount %" PRId64 " is not the sum of its lines %" PRId64,
                x->total_amount, sum);
        same_str(&d, "OrderPlaced customer_id", x->customer_id, "cust-alice");
        same_str(&d, "OrderPlaced currency", x->currency, "EUR");
        same_str(&d, "OrderPlaced payment_token", x->payment_token, "tok_visa");
        same_str(&d, "OrderPlaced country", x->shipping_address.country, "NL");
        same_str(&d, "OrderPlaced city", x->shipping_address.city, "Utrecht");
        if (s->ev.meta.causation_id)
            why(&d, "OrderPlaced has causation_id %s, expected null", s->ev.meta.causation_id);
    }
    report(&d, "accepts POST /orders (202) and publishes one OrderPlaced with the order's lines, "
               "total, token and address");

    memset(&d, 0, sizeof(d));
    if (!a)
        why(&d, "no order to confirm");
    else if ((s = one(&d, a, SAGA_EV_ORDER_CONFIRMED, ss_a)) && op_a) {
        if (s->ev.u.order_confirmed.total_amount != op_a->ev.u.order_placed.total_amount)
            why(&d, "OrderConfirmed total_amount %" PRId64 ", expected %" PRId64,
                s->ev.u.order_confirmed.total_amount, op_a->ev.u.order_placed.total_amount);
        same_str(&d, "OrderConfirmed currency", s->ev.u.order_confirmed.currency, "EUR");
    }
    if (a && strcmp(status_of(a), "CONFIRMED"))
        why(&d, "GET /orders/%.8s says \"%s\", expected CONFIRMED", a->id, status_of(a));
    report(&d, "confirms the order on ShipmentScheduled (one OrderConfirmed with its total; "
               "GET /orders/{id} says CONFIRMED)");

    memset(&d, 0, sizeof(d));
    if (!b)
        why(&d, "no order");
    cancelled_by(&d, b, rj_b, SAGA_CANCEL_OUT_OF_STOCK, NULL);
    report(&d, "cancels on InventoryRejected (OrderCancelled, OUT_OF_STOCK)");

    memset(&d, 0, sizeof(d));
    if (!c)
        why(&d, "no order");
    cancelled_by(&d, c, pf_c, SAGA_CANCEL_PAYMENT_FAILED, "CARD_DECLINED");
    report(&d, "cancels on PaymentFailed (OrderCancelled, PAYMENT_FAILED)");

    memset(&d, 0, sizeof(d));
    if (!e)
        why(&d, "no order");
    cancelled_by(&d, e, sf_e, SAGA_CANCEL_SHIPMENT_FAILED, "UNSUPPORTED_DESTINATION");
    report(&d, "cancels on ShipmentFailed (OrderCancelled, SHIPMENT_FAILED)");

    memset(&d, 0, sizeof(d));
    if (!f)
        why(&d, "no order");
    cancelled_by(&d, f, NULL, SAGA_CANCEL_CUSTOMER_REQUEST, NULL);
    report(&d, "cancels a pending order on POST /orders/{id}/cancel (OrderCancelled, "
               "CUSTOMER_REQUEST)");

    check_envelopes();
    check_traces();
    if (bad && rj_p) {
        check_dead_letter(bad, rj_p, SAGA_EV_ORDER_CANCELLED);
    } else {
        memset(&d, 0, sizeof(d));
        why(&d, "no order to send it for (POST /orders failed)");
        report(&d, "dead-letters a message that is no event and handles the next event of its "
                   "partition");
    }

    memset(&d, 0, sizeof(d));
    if (a && count(a, SAGA_EV_ORDER_CONFIRMED) + count(a, SAGA_EV_ORDER_CANCELLED) > 1)
        why(&d,
            "ShipmentScheduled delivered again (same event id) or repeated, or a late "
            "ShipmentFailed: got %s",
            got(a));
    if (e && count(e, SAGA_EV_ORDER_CONFIRMED) + count(e, SAGA_EV_ORDER_CANCELLED) > 1)
        why(&d, "ShipmentScheduled after the order was cancelled: got %s", got(e));
    if (b && count(b, SAGA_EV_ORDER_CANCELLED) > 1)
        why(&d, "InventoryRejected delivered again: got %s", got(b));
    if (a && strcmp(status_of(a), "CONFIRMED"))
        why(&d, "GET /orders/%.8s now says \"%s\"", a->id, status_of(a));
    if (e && strcmp(status_of(e), "CANCELLED"))
        why(&d, "GET /orders/%.8s now says \"%s\"", e->id, status_of(e));
    if (!a || !count(a, SAGA_EV_ORDER_CONFIRMED))
        why(&d, "nothing to compare: no OrderConfirmed at all");
    report(&d, "first writer wins, once: redelivered and repeated events, and a late outcome "
               "(ShipmentFailed after OrderConfirmed, ShipmentScheduled after OrderCancelled), "
               "change nothing");

    memset(&d, 0, sizeof(d));
    did_something(&d);
    none(&d, u, -1);
    report(&d, "ignores events about orders it does not know");

    /* Last: a new order rejected by inventory, then SIGTERM at once. */
    if (k.stop_cmd[0]) {
        const struct input *op_st;
        struct input *rj_st;
        memset(&d, 0, sizeof(d));
        if (!(sto = place(&d, "stopped after", "cust-alice", "tok_visa", "NL")) ||
            !(op_st = placed_input(sto))) {
            why(&d, "no order to stop after (POST /orders or its OrderPlaced failed)");
            report(&d, "stops on SIGTERM at once after handling events and commits their offsets");
            return;
        }
        rj_st = input(sto, SAGA_EV_INVENTORY_REJECTED, op_st, "inventory-service");
        rj_st->ev.u.inventory_rejected.reason = SAGA_REJECT_OUT_OF_STOCK;
        rj_st->ev.u.inventory_rejected.sku = "sku-mug";
        put(rj_st);
        flush();
        check_stop(sto, &rj_st, 1, SAGA_EV_ORDER_CANCELLED);
    } else {
        check_stop(NULL, NULL, 0, SAGA_EV_ORDER_CANCELLED);
    }
}

/* --- main ------------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: saga-conformance SERVICE [options]\n"
            "  SERVICE: order, inventory, payment, shipping or notification, already running\n"
            "  --stack-env FILE  addresses from this stack.env (default $SAGA_STACK_ENV, else\n"
            "                    the environment: KAFKA_BOOTSTRAP_SERVERS, SCHEMA_REGISTRY_URL,\n"
            "                    STACK_HTTP_PORT_BASE, <SERVICE>_DATABASE_URL)\n"
            "  --http URL        the service's HTTP address (default from STACK_HTTP_PORT_BASE)\n"
            "  --timeout SEC     how long to wait for an expected event (default 30)\n"
            "  --settle SEC      a phase ends after SEC when the service's consumer group has\n"
            "                    no offsets, after 2 x SEC when its lag does not move (default 5)\n"
            "  --stop-command CMD  at the end, stop the service with CMD (sh -c; it sends\n"
            "                    SIGTERM) right after it handled events, and check that its\n"
            "                    group committed their offsets (tests/contract/run sets it)\n"
            "  -v                print every event produced and seen\n"
            "Exit status: 0 every duty passes, 1 some fail, 2 could not run.\n");
}

int main(int argc, char **argv)
{
    char buf[1024], err[512];
    const char *v;

    if (argc < 2 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "--help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    services_init();
    for (size_t i = 0; i < sizeof(services) / sizeof(services[0]); i++)
        if (strcmp(argv[1], services[i].name) == 0 ||
            (strncmp(argv[1], services[i].name, strlen(services[i].name)) == 0 &&
             strcmp(argv[1] + strlen(services[i].name), "-service") == 0))
            k.svc = &services[i];
    if (!k.svc) {
        fprintf(stderr,
                "saga-conformance: '%s' is not a service the kit checks (order, inventory, "
                "payment, shipping, notification)\n",
                argv[1]);
        return 2;
    }
    k.timeout_ms = 30000;
    k.settle_ms = 5000;
    if ((v = getenv("SAGA_STACK_ENV")) && *v)
        snprintf(k.env_file, sizeof(k.env_file), "%s", v);
    for (int i = 2; i < argc; i++) {
        const char *arg = argv[i], *val = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(arg, "-v") == 0) {
            k.verbose = 1;
            continue;
        }
        if (!val) {
            usage(stderr);
            return 2;
        }
        if (strcmp(arg, "--stack-env") == 0)
            snprintf(k.env_file, sizeof(k.env_file), "%s", val);
        else if (strcmp(arg, "--stop-command") == 0)
            snprintf(k.stop_cmd, sizeof(k.stop_cmd), "%s", val);
        else if (strcmp(arg, "--http") == 0)
            snprintf(k.http, sizeof(k.http), "%s", val);
        else if (strcmp(arg, "--timeout") == 0 && atol(val) > 0)
            k.timeout_ms = atol(val) * 1000;
        else if (strcmp(arg, "--settle") == 0 && atol(val) > 0)
            k.settle_ms = atol(val) * 1000;
        else {
            usage(stderr);
            return 2;
        }
        i++;
    }

    if (!setting("KAFKA_BOOTSTRAP_SERVERS", k.bootstrap, sizeof(k.bootstrap)))
        die("KAFKA_BOOTSTRAP_SERVERS is not set (give --stack-env FILE)");
    setting("SCHEMA_REGISTRY_URL", k.registry_url, sizeof(k.registry_url));
    {
        char var[64];
        snprintf(var, sizeof(var), "%s_DATABASE_URL", k.svc->name);
        for (char *p = var; *p; p++)
            *p = (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
        setting(var, k.db_url, sizeof(k.db_url));
    }
    if (!setting("SAGA_TOKEN", k.token, sizeof(k.token)))
        setting("STACK_OPERATOR_TOKEN", k.token, sizeof(k.token));
    if (!k.http[0] && setting("STACK_HTTP_PORT_BASE", buf, sizeof(buf)))
        snprintf(k.http, sizeof(k.http), "http://127.0.0.1:%d", atoi(buf) + k.svc->http_offset);

    if (saga_serde_open(k.registry_url[0] ? k.registry_url : NULL, NULL, &k.serde, &k.registry, err,
                        sizeof(err)))
        die("serde: %s", err);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    k.started_ms = saga_now_ms();
    k.producer = kafka(RD_KAFKA_PRODUCER, NULL);
    {
        char group[128];
        snprintf(group, sizeof(group), "saga-conformance-%" PRId64, k.started_ms);
        k.consumer = kafka(RD_KAFKA_CONSUMER, group);
        snprintf(group, sizeof(group), "%s-service", k.svc->name);
        k.probe = kafka(RD_KAFKA_CONSUMER, group); /* only asks for the group's offsets */
    }
    open_output();
    printf("checking %s-service (Kafka %s, %s framing%s%s)\n", k.svc->name, k.bootstrap,
           k.registry_url[0] ? "Confluent" : "single-object", k.http[0] ? ", HTTP " : "", k.http);
    fflush(stdout);

    check_http();
    if (strcmp(k.svc->name, "order") == 0)
        order();
    else if (strcmp(k.svc->name, "shipping") == 0)
        shipping();
    else if (strcmp(k.svc->name, "payment") == 0)
        payment();
    else if (strcmp(k.svc->name, "inventory") == 0)
        inventory();
    else
        notification();

    printf("%s: %d of %d duties pass\n", k.svc->name, k.passed, k.passed + k.failed);
    for (int i = 0; i < k.nseen; i++)
        saga_event_release(&k.seen[i].ev);
    for (int i = 0; i < k.ndead; i++) {
        free(k.dead[i].value);
        rd_kafka_headers_destroy(k.dead[i].headers);
    }
    rd_kafka_consumer_close(k.consumer);
    rd_kafka_destroy(k.consumer);
    rd_kafka_destroy(k.probe);
    rd_kafka_destroy(k.producer);
    saga_serde_destroy(k.serde);
    if (k.registry)
        saga_registry_destroy(k.registry);
    if (k.db)
        PQfinish(k.db);
    curl_global_cleanup();
    return k.failed ? 1 : 0;
}
