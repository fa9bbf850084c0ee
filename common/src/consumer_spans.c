/*
 * The consumer runtime's spans (docs/OBSERVABILITY.md, "Traces"), kept apart from the
 * runtime's logic: consumer_tx.c and consumer.c call in at a few points, and every call
 * returns at once when span export is off (saga_otel_enabled()).
 *
 * Per handled event, when its transaction commits:
 *
 *   "<EventType> process" (CONSUMER)  id: the handler's span (tx->span, which the events
 *       it emits carry), parent: the event's traceparent; from the transaction's BEGIN
 *       to its COMMIT's end, with the messaging attributes of the message.
 *     "<EventType> handler" (INTERNAL)  the handler's statements inside the transaction.
 *     "COMMIT" (CLIENT)                 the transaction's commit (shared by its batch).
 *
 * Spans of a transaction that rolls back are discarded (the retry makes new ones), so an
 * event handled once has one process span. A dead letter is a span of its own, status
 * ERROR with the reason, a child of the dead event's traceparent.
 *
 * @locality the consumer's run thread, as everything in the runtime.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "consumer_internal.h"
#include "saga/otel.h"
#include "saga/trace.h"

/* Compensation steps, known by the event they emit: that event, the step it undoes. */
static const struct {
    saga_event_type_t emitted;
    const char *undoes;
} compensations[] = {
    {SAGA_EV_INVENTORY_RELEASED, "InventoryReserved"},
    {SAGA_EV_PAYMENT_REFUNDED, "PaymentAuthorized"},
    {SAGA_EV_SHIPMENT_CANCELLED, "ShipmentScheduled"},
};

static struct saga_span *pending_push(struct saga_consumer *c)
{
    struct consumer_spans *p = &c->spans;
    if (p->n == p->cap) {
        int cap = p->cap ? 2 * p->cap : 16;
        struct saga_span *v = realloc(p->v, (size_t)cap * sizeof(*v));
        if (!v)
            return NULL;
        p->v = v;
        p->cap = cap;
    }
    return &p->v[p->n++];
}

void consumer_spans_tx_begin(struct saga_consumer *c)
{
    if (!saga_otel_enabled())
        return;
    c->spans.n = 0;
    c->spans.tx_start = saga_otel_now_ns();
}

int64_t consumer_spans_now(void)
{
    return saga_otel_enabled() ? saga_otel_now_ns() : 0;
}

static void messaging_attrs(struct saga_span *s, const struct saga_consumer *c,
                            const rd_kafka_message_t *rkm, const char *order_id)
{
    char part[16];
    saga_span_str(s, "saga.order_id", order_id);
    saga_span_str(s, "messaging.system", "kafka");
    saga_span_str(s, "messaging.operation.type", "process");
    saga_span_str(s, "messaging.consumer.group.name", c->conf.group);
    if (!rkm)
        return;
    snprintf(part, sizeof(part), "%" PRId32, rkm->partition);
    saga_span_str(s, "messaging.destination.name", rd_kafka_topic_name(rkm->rkt));
    saga_span_str(s, "messaging.destination.partition.id", part);
    saga_span_int(s, "messaging.kafka.offset", rkm->offset);
    if (rkm->key && rkm->key_len < 64) {
        char key[64];
        memcpy(key, rkm->key, rkm->key_len);
        key[rkm->key_len] = '\0';
        saga_span_str(s, "messaging.kafka.message.key", key);
    }
}

void consumer_spans_handled(struct saga_consumer *c, const struct saga_event *ev,
                            const rd_kafka_message_t *rkm, const struct saga_tx *tx,
                            const int *emitted_before, int64_t handler_start, const char *outcome)
{
    struct saga_span *proc, *child;
    const char *type = saga_event_type_name(ev->type);
    char name[64], self[56];

    if (!saga_otel_enabled() || !tx->span[0] || !(proc = pending_push(c)))
        return;
    snprintf(name, sizeof(name), "%s process", type);
    if (!saga_span_begin_at(proc, name, SAGA_SPAN_CONSUMER, tx->span, ev->meta.traceparent,
                            c->spans.tx_start)) {
        c->spans.n--;
        return;
    }
    messaging_attrs(proc, c, rkm, ev->meta.order_id);
    saga_span_str(proc, "messaging.message.id", ev->meta.event_id);
    saga_span_str(proc, "saga.event_type", type);
    saga_span_str(proc, "saga.outcome", outcome);
    for (size_t i = 0; i < sizeof(compensations) / sizeof(compensations[0]); i++)
        if (tx->emitted_by_type[compensations[i].emitted] >
            emitted_before[compensations[i].emitted]) {
            saga_span_bool(proc, "saga.compensation", 1);
            saga_span_str(proc, "saga.compensates", compensations[i].undoes);
            break;
        }
    /* The handler's statements: a child, ended now. */
    if (!(child = pending_push(c)))
        return;
    proc = child - 1; /* pending_push may have moved the array */
    saga_otel_child(tx->span, self);
    snprintf(name, sizeof(name), "%s handler", type);
    if (!saga_span_begin_at(child, name, SAGA_SPAN_INTERNAL, self, tx->span, handler_start)) {
        c->spans.n--;
        return;
    }
    saga_span_str(child, "saga.order_id", ev->meta.order_id);
    saga_span_str(child, "db.system.name", "postgresql");
    saga_span_str(child, "saga.outcome", outcome);
    child->end_ns = saga_otel_now_ns();
}

void consumer_spans_commit(struct saga_consumer *c, int64_t commit_start, int batch_events)
{
    int64_t end;
    int n;
    if (!saga_otel_enabled())
        return;
    end = saga_otel_now_ns();
    n = c->spans.n;
    for (int i = 0; i < n; i++) {
        struct saga_span *s = &c->spans.v[i], commit;
        char self[56], parent[56];
        if (s->kind != SAGA_SPAN_CONSUMER) {
            saga_span_end_at(s, s->end_ns);
            continue;
        }
        /* The commit, a child of each process span (each trace sees its own). */
        snprintf(parent, sizeof(parent), "00-%s-%s-01", s->trace_id, s->span_id);
        saga_otel_child(parent, self);
        if (saga_span_begin_at(&commit, "COMMIT", SAGA_SPAN_CLIENT, self, parent, commit_start)) {
            saga_span_str(&commit, "saga.order_id", s->attrs[0].s);
            saga_span_str(&commit, "db.system.name", "postgresql");
            saga_span_str(&commit, "db.operation.name", "COMMIT");
            saga_span_int(&commit, "saga.batch.events", batch_events);
            saga_span_end_at(&commit, end);
        }
        saga_span_end_at(s, end);
    }
    c->spans.n = 0;
}

void consumer_spans_discard(struct saga_consumer *c)
{
    c->spans.n = 0;
}

void consumer_spans_dead_letter(struct saga_consumer *c, const struct msg *m, const char *reason,
                                const char *error)
{
    struct saga_span s;
    const char *tp = m->derr == SAGA_DECODE_OK ? m->ev.meta.traceparent : NULL;
    char header_tp[56], self[56];
    const char *order_id = m->derr == SAGA_DECODE_OK ? m->ev.meta.order_id : NULL;

    if (!saga_otel_enabled())
        return;
    if (!tp) { /* undecodable: the traceparent header, if it has one */
        rd_kafka_headers_t *h = NULL;
        const void *v;
        size_t len;
        if (rd_kafka_message_headers(m->rkm, &h) == RD_KAFKA_RESP_ERR_NO_ERROR &&
            !rd_kafka_header_get_last(h, "traceparent", &v, &len) && len == SAGA_TRACEPARENT_LEN) {
            memcpy(header_tp, v, len);
            header_tp[len] = '\0';
            tp = header_tp;
        }
    }
    if (!saga_traceparent_valid(tp))
        return;
    saga_otel_child(tp, self);
    if (!saga_span_begin_at(&s, "dead letter", SAGA_SPAN_PRODUCER, self, tp,
                            m->first_failed > 0 ? m->first_failed * 1000000 : saga_otel_now_ns()))
        return;
    if (order_id)
        messaging_attrs(&s, c, m->rkm, order_id);
    else {
        char key[64] = "";
        if (m->rkm->key && m->rkm->key_len < sizeof(key)) {
            memcpy(key, m->rkm->key, m->rkm->key_len);
            key[m->rkm->key_len] = '\0';
        }
        messaging_attrs(&s, c, m->rkm, key);
    }
    saga_span_str(&s, "saga.dlq.topic", c->conf.dlq_topic);
    saga_span_str(&s, "saga.dlq.reason", reason);
    saga_span_int(&s, "saga.dlq.attempts", m->attempts);
    saga_span_error(&s, "%s: %s", reason, error);
    saga_span_end(&s);
}

void consumer_spans_release(struct saga_consumer *c)
{
    free(c->spans.v);
    c->spans.v = NULL;
    c->spans.n = c->spans.cap = 0;
}
