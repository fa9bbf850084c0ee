/*
 * The consumer runtime's database side: one transaction per batch that holds the inbox
 * rows, the handlers' effects, deferrals, releases and the outbox rows they emit. Every
 * statement's failure is classified here, by SQLSTATE (saga_pg_classify): TRANSIENT
 * (connection, serialization, deadlock, resources) or INVALID (it will never work for this
 * event, e.g. an event id too long for the inbox's index: SQLSTATE 54000). What follows
 * from the class is consumer.c's decision, not this file's.
 *
 * A batch of events this service only skips (no handler) opens no transaction.
 *
 * Deferred events released by their prerequisite run under a savepoint each: one that
 * fails for good is marked dead (and sent to the DLQ after the commit, by
 * consumer_tx_dead_letter_released) without failing the prerequisite.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <jansson.h>

#include "consumer_internal.h"
#include "saga/fault.h"
#include "saga/ids.h"
#include "saga/log.h"
#include "saga/outbox.h"
#include "saga/pg.h"
#include "saga/trace.h"
#include "saga/utf8.h"

/* --- the handler's side ----------------------------------------------------- */

saga_handle_result_t saga_tx_emit(struct saga_tx *tx, const struct saga_event *ev)
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
    if (err == SAGA_ERR_TRANSIENT) /* e.g. the schema registry cannot be reached */
        return SAGA_HANDLE_TRANSIENT;
    if (err)
        return SAGA_HANDLE_INVALID;
    tx->emitted++;
    if ((unsigned)ev->type < SAGA_EV_COUNT)
        tx->emitted_by_type[ev->type]++;
    return SAGA_HANDLE_OK;
}

/* Runs sql on conn; OK (*res the result when res is not NULL), or the failure classified by
 * SQLSTATE with errstr. The one place statements' failures become results. */
static saga_handle_result_t run_classified(PGconn *conn, const char *sql, int n,
                                           const char *const *params, const int *lengths,
                                           const int *formats, int result_format, PGresult **res,
                                           char *errstr, size_t errstr_size)
{
    PGresult *r = saga_pg_exec(conn, sql, n, params, lengths, formats, result_format);
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
    saga_pg_result_errstr(conn, r, errstr, errstr_size);
    out = saga_pg_classify(conn, r) == SAGA_ERR_TRANSIENT ? SAGA_HANDLE_TRANSIENT
                                                          : SAGA_HANDLE_INVALID;
    PQclear(r);
    return out;
}

saga_handle_result_t saga_tx_pg_failure(struct saga_tx *tx, const PGresult *res)
{
    saga_pg_result_errstr(tx->conn, res, tx->errstr, sizeof(tx->errstr));
    return saga_pg_classify(tx->conn, res) == SAGA_ERR_TRANSIENT ? SAGA_HANDLE_TRANSIENT
                                                                 : SAGA_HANDLE_INVALID;
}

saga_handle_result_t saga_tx_query(struct saga_tx *tx, PGresult **res, const char *sql, int nparams,
                                   const char *const *params)
{
    return run_classified(tx->conn, sql, nparams, params, NULL, NULL, 0, res, tx->errstr,
                          sizeof(tx->errstr));
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

/* --- the runtime's own statements ------------------------------------------------ */

static saga_handle_result_t ensure_conn(struct saga_consumer *c, char *errstr, size_t errstr_size)
{
    saga_err_t e;
    if (c->conn && saga_pg_idle_alive(c->conn))
        return SAGA_HANDLE_OK;
    if (c->conn) {
        PQfinish(c->conn);
        c->conn = NULL;
    }
    c->conn = saga_pg_connect(c->conf.cfg->database_url, &e, errstr, errstr_size);
    return c->conn ? SAGA_HANDLE_OK : SAGA_HANDLE_TRANSIENT;
}

void consumer_tx_close(struct saga_consumer *c)
{
    if (c->conn) {
        PQfinish(c->conn);
        c->conn = NULL;
    }
}

/* Runs a statement of the runtime's own; OK, or the failure classified with errstr. */
static saga_handle_result_t exec_sql(struct saga_consumer *c, const char *sql, int n,
                                     const char *const *params, const int *lengths,
                                     const int *formats, int result_format, PGresult **res,
                                     char *errstr, size_t errstr_size)
{
    return run_classified(c->conn, sql, n, params, lengths, formats, result_format, res, errstr,
                          errstr_size);
}

#define EXEC(c, sql, n, p, res, tx)                                                                \
    exec_sql(c, sql, n, p, NULL, NULL, 0, res, (tx)->errstr, sizeof((tx)->errstr))

void consumer_tx_prune_inbox(struct saga_consumer *c)
{
    char ms[32], err[256];
    const char *params[2] = {c->conf.group, ms};

    if (saga_mono_ms() - c->last_prune < c->set.inbox_prune_every_ms ||
        ensure_conn(c, err, sizeof(err)) != SAGA_HANDLE_OK)
        return;
    c->last_prune = saga_mono_ms();
    snprintf(ms, sizeof(ms), "%" PRId64, c->set.inbox_retention_ms);
    if (exec_sql(c,
                 "DELETE FROM inbox WHERE ctid IN (SELECT ctid FROM inbox WHERE consumer = $1"
                 " AND processed_at < clock_timestamp() - $2::bigint * interval '1 ms'"
                 " LIMIT 10000)",
                 2, params, NULL, NULL, 0, NULL, err, sizeof(err)) != SAGA_HANDLE_OK)
        saga_log(SAGA_LOG_WARN, NULL, "pruning the inbox: %s", err);
}

/* --- handling -------------------------------------------------------------------- */

/* Claims ev in the inbox and runs its handler (release path: one event at a time). */
static saga_handle_result_t run_handler(struct saga_consumer *c, struct saga_tx *tx,
                                        const struct saga_event *ev, int *duplicate)
{
    const char *params[2] = {c->conf.group, ev->meta.event_id};
    saga_handle_result_t res;
    PGresult *r;
    int inserted;

    *duplicate = 0;
    if ((res = EXEC(c,
                    "INSERT INTO inbox (consumer, event_id) VALUES ($1, $2)"
                    " ON CONFLICT DO NOTHING",
                    2, params, &r, tx)) != SAGA_HANDLE_OK)
        return res;
    inserted = atoi(PQcmdTuples(r));
    PQclear(r);
    if (!inserted) {
        *duplicate = 1;
        return SAGA_HANDLE_OK;
    }
    tx->cause_traceparent = ev->meta.traceparent;
    saga_traceparent_child(ev->meta.traceparent, tx->span);
    {
        int before[SAGA_EV_COUNT];
        int64_t t0 = consumer_spans_now();
        memcpy(before, tx->emitted_by_type, sizeof(before));
        res = c->conf.handlers[ev->type](tx, ev, c->conf.arg);
        if (res == SAGA_HANDLE_OK)
            consumer_spans_handled(c, ev, NULL, tx, before, t0, "released");
    }
    tx->span[0] = '\0';
    return res;
}

/*
 * The message's Kafka headers, packed byte for byte (any name, any value, NULL values
 * too): per header a 2-byte name length, the name, a 4-byte value length (0xffffffff:
 * NULL) and the value, lengths big-endian. *len gets the size; malloc'd, NULL when out
 * of memory. Kept in deferred.raw_headers, so a dead letter made from the row carries
 * exactly the headers the message came with.
 */
static unsigned char *headers_pack(const rd_kafka_message_t *rkm, size_t *len)
{
    rd_kafka_headers_t *h = NULL;
    const char *name;
    const void *val;
    size_t size, o = 0, cap = 64;
    unsigned char *out = malloc(cap);

    if (!out)
        return NULL;
    if (rd_kafka_message_headers(rkm, &h) == RD_KAFKA_RESP_ERR_NO_ERROR)
        for (size_t i = 0; !rd_kafka_header_get_all(h, i, &name, &val, &size); i++) {
            size_t nlen = strlen(name) > 0xffff ? 0xffff : strlen(name);
            uint32_t vlen = val ? (uint32_t)size : 0xffffffffu;
            size_t need = o + 6 + nlen + (val ? size : 0);
            if (need > cap) {
                unsigned char *n;
                cap = need * 2;
                if (!(n = realloc(out, cap))) {
                    free(out);
                    return NULL;
                }
                out = n;
            }
            out[o++] = (unsigned char)(nlen >> 8);
            out[o++] = (unsigned char)nlen;
            memcpy(out + o, name, nlen);
            o += nlen;
            for (int k = 3; k >= 0; k--)
                out[o++] = (unsigned char)(vlen >> (8 * k));
            if (val) {
                memcpy(out + o, val, size);
                o += size;
            }
        }
    *len = o;
    return out;
}

/* The headers headers_pack packed; what does not parse is left out. */
static rd_kafka_headers_t *headers_unpack(const unsigned char *b, size_t len)
{
    rd_kafka_headers_t *h = rd_kafka_headers_new(16);
    size_t o = 0;

    while (o + 2 <= len) {
        size_t nlen = (size_t)b[o] << 8 | b[o + 1];
        uint32_t vlen;
        char name[0x10000];
        o += 2;
        if (o + nlen + 4 > len)
            break;
        memcpy(name, b + o, nlen);
        name[nlen] = '\0';
        o += nlen;
        vlen = (uint32_t)b[o] << 24 | (uint32_t)b[o + 1] << 16 | (uint32_t)b[o + 2] << 8 | b[o + 3];
        o += 4;
        if (vlen == 0xffffffffu) {
            rd_kafka_header_add(h, name, (ssize_t)nlen, NULL, 0);
            continue;
        }
        if (o + vlen > len)
            break;
        rd_kafka_header_add(h, name, (ssize_t)nlen, b + o, (ssize_t)vlen);
        o += vlen;
    }
    return h;
}

static saga_handle_result_t defer_event(struct saga_consumer *c, struct saga_tx *tx,
                                        const struct msg *m)
{
    char part[16], off[32];
    const char *p2[2] = {c->conf.group, m->ev.meta.event_id};
    const char *p[10];
    int len[10] = {0}, fmt[10] = {0};
    unsigned char *headers;
    size_t hlen;
    saga_handle_result_t res;

    /* Not processed after all: its inbox row goes, the message is kept whole. */
    if ((res = EXEC(c, "DELETE FROM inbox WHERE consumer = $1 AND event_id = $2", 2, p2, NULL,
                    tx)) != SAGA_HANDLE_OK)
        return res;
    snprintf(part, sizeof(part), "%" PRId32, m->rkm->partition);
    snprintf(off, sizeof(off), "%" PRId64, m->rkm->offset);
    if (!(headers = headers_pack(m->rkm, &hlen))) {
        snprintf(tx->errstr, sizeof(tx->errstr), "out of memory");
        return SAGA_HANDLE_TRANSIENT;
    }
    p[0] = c->conf.group;
    p[1] = m->ev.meta.order_id;
    p[2] = m->ev.meta.event_id;
    p[3] = saga_event_type_name(m->ev.type);
    p[4] = rd_kafka_topic_name(m->rkm->rkt);
    p[5] = part;
    p[6] = off;
    /* The key and the headers byte for byte (bytea): whatever they hold. */
    p[7] = m->rkm->key; /* NULL: no key */
    len[7] = (int)m->rkm->key_len;
    fmt[7] = 1;
    p[8] = m->rkm->payload;
    len[8] = (int)m->rkm->len;
    fmt[8] = 1;
    p[9] = (const char *)headers;
    len[9] = (int)hlen;
    fmt[9] = 1;
    res = exec_sql(c,
                   "INSERT INTO deferred (consumer, wait_key, event_id, event_type, topic,"
                   " kpartition, koffset, raw_key, payload, raw_headers)"
                   " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10)"
                   " ON CONFLICT (consumer, event_id) DO NOTHING",
                   10, p, len, fmt, 0, NULL, tx->errstr, sizeof(tx->errstr));
    free(headers);
    if (res != SAGA_HANDLE_OK)
        return res;
    c->pend.n[m->ev.type][OUT_DEFERRED]++;
    consumer_log_msg(SAGA_LOG_INFO, m, "deferred %s until its order's prerequisite arrives",
                     saga_event_type_name(m->ev.type));
    return SAGA_HANDLE_OK;
}

/*
 * Marks deferred row id dead (it goes to the DLQ after the commit) with why, made valid
 * UTF-8 first (a reason cut in the middle of a character must not fail the statement, and
 * with it the prerequisite's transaction).
 */
static saga_handle_result_t mark_dead(struct saga_consumer *c, struct saga_tx *tx, const char *id,
                                      const char *why)
{
    char clean[512];
    const char *p[2] = {id, clean};
    size_t o = 0, n = strlen(why);

    for (size_t i = 0; i < n && o + 4 < sizeof(clean);) {
        size_t step = saga_utf8_seq_len((const unsigned char *)why + i, n - i);
        if (!step) {
            clean[o++] = '?';
            i++;
            continue;
        }
        memcpy(clean + o, why + i, step);
        o += step;
        i += step;
    }
    clean[o] = '\0';
    c->dead_pending = 1;
    return EXEC(c,
                "UPDATE deferred SET dead_reason = $2, dead_at = clock_timestamp() WHERE id = $1",
                2, p, NULL, tx);
}

/* Runs the events deferred for order_id again, inside tx, each under a savepoint. */
static saga_handle_result_t release_deferred(struct saga_consumer *c, struct saga_tx *tx,
                                             const char *order_id)
{
    const char *params[2] = {c->conf.group, order_id};
    saga_handle_result_t res = SAGA_HANDLE_OK;
    PGresult *r;

    if ((res = exec_sql(c,
                        "SELECT id, payload FROM deferred WHERE consumer = $1 AND wait_key = $2"
                        " AND dead_reason IS NULL ORDER BY id FOR UPDATE",
                        2, params, NULL, NULL, 1, &r, tx->errstr, sizeof(tx->errstr))) !=
        SAGA_HANDLE_OK)
        return res;
    for (int i = 0; i < PQntuples(r) && res == SAGA_HANDLE_OK; i++) {
        struct saga_event ev = {0};
        char derr[256] = "", id[32], why[300];
        const char *pid[1] = {id};
        const unsigned char *b = (const unsigned char *)PQgetvalue(r, i, 0);
        uint64_t v = 0;
        int dup = 0;
        saga_handle_result_t hr;

        for (int k = 0; k < 8; k++)
            v = v << 8 | b[k];
        snprintf(id, sizeof(id), "%" PRIu64, v);
        if (saga_serde_decode(c->serde, PQgetvalue(r, i, 1), (size_t)PQgetlength(r, i, 1), &ev,
                              derr, sizeof(derr)) != SAGA_DECODE_OK) {
            /* It decoded when it was deferred (schemas changed since?): to the DLQ. */
            snprintf(why, sizeof(why), "no longer decodes: %s", derr);
            saga_log(SAGA_LOG_ERROR, NULL, "deferred row %s %s", id, why);
            saga_event_release(&ev);
            res = mark_dead(c, tx, id, why);
            continue;
        }
        if (!c->conf.handlers[ev.type]) {
            snprintf(why, sizeof(why), "no handler for %s any more", saga_event_type_name(ev.type));
            saga_log(SAGA_LOG_ERROR, NULL, "deferred row %s: %s", id, why);
            saga_event_release(&ev);
            res = mark_dead(c, tx, id, why);
            continue;
        }
        if ((res = EXEC(c, "SAVEPOINT saga_release", 0, NULL, NULL, tx)) != SAGA_HANDLE_OK) {
            saga_event_release(&ev);
            break;
        }
        tx->errstr[0] = '\0';
        hr = run_handler(c, tx, &ev, &dup);
        if (hr == SAGA_HANDLE_OK) {
            res = EXEC(c, "RELEASE SAVEPOINT saga_release", 0, NULL, NULL, tx);
            if (res == SAGA_HANDLE_OK)
                res = EXEC(c, "DELETE FROM deferred WHERE id = $1", 1, pid, NULL, tx);
            if (res == SAGA_HANDLE_OK && !dup)
                c->pend.n[ev.type][OUT_RELEASED]++;
            saga_log(SAGA_LOG_INFO,
                     &(struct saga_log_ids){ev.meta.order_id, ev.meta.event_id,
                                            ev.meta.correlation_id, NULL},
                     "ran deferred %s", saga_event_type_name(ev.type));
        } else if (hr == SAGA_HANDLE_DEFER) {
            /* Still waiting (for something else): its inbox claim is undone with the rest. */
            res = EXEC(c, "ROLLBACK TO SAVEPOINT saga_release", 0, NULL, NULL, tx);
            if (res == SAGA_HANDLE_OK) /* no subtransactions piling up */
                res = EXEC(c, "RELEASE SAVEPOINT saga_release", 0, NULL, NULL, tx);
        } else if (hr == SAGA_HANDLE_TRANSIENT) {
            res = SAGA_HANDLE_TRANSIENT; /* the whole transaction is tried again */
        } else {
            /* This event can never be handled: it alone goes to the DLQ; what released
             * it stays handled. */
            snprintf(why, sizeof(why), "%s", tx->errstr[0] ? tx->errstr : "handler failed");
            saga_log(SAGA_LOG_ERROR,
                     &(struct saga_log_ids){ev.meta.order_id, ev.meta.event_id,
                                            ev.meta.correlation_id, NULL},
                     "deferred %s failed when released: %s; it goes to %s",
                     saga_event_type_name(ev.type), why, c->conf.dlq_topic);
            res = EXEC(c, "ROLLBACK TO SAVEPOINT saga_release", 0, NULL, NULL, tx);
            if (res == SAGA_HANDLE_OK)
                res = EXEC(c, "RELEASE SAVEPOINT saga_release", 0, NULL, NULL, tx);
            if (res == SAGA_HANDLE_OK)
                res = mark_dead(c, tx, id, why);
        }
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
    if (dup) {
        c->pend.n[m->ev.type][OUT_DUPLICATE]++;
        consumer_log_msg(SAGA_LOG_DEBUG, m, "duplicate %s skipped",
                         saga_event_type_name(m->ev.type));
        return SAGA_HANDLE_OK;
    }
    {
        char trace_id[33];
        struct saga_log_ids ids = {m->ev.meta.order_id, m->ev.meta.event_id,
                                   m->ev.meta.correlation_id, NULL};
        struct timespec t0, t1;
        int before[SAGA_EV_COUNT];
        int64_t span_t0 = consumer_spans_now();
        memcpy(before, tx->emitted_by_type, sizeof(before));
        /* The handler works in a child span of the event's trace; its lines carry the ids. */
        tx->cause_traceparent = m->ev.meta.traceparent;
        saga_traceparent_child(m->ev.meta.traceparent, tx->span);
        saga_traceparent_trace_id(tx->span, trace_id);
        ids.trace_id = trace_id;
        saga_log_context_set(&ids);
        clock_gettime(CLOCK_MONOTONIC, &t0);
        if (saga_fault_flaky_handler()) { /* test hook: SAGA_FAULT=handler.flaky:... */
            r = SAGA_HANDLE_TRANSIENT;
            snprintf(tx->errstr, sizeof(tx->errstr), "SAGA_FAULT handler.flaky");
        } else {
            r = c->conf.handlers[m->ev.type](tx, &m->ev, c->conf.arg);
        }
        clock_gettime(CLOCK_MONOTONIC, &t1);
        saga_log_context_set(NULL);
        if (r == SAGA_HANDLE_OK || r == SAGA_HANDLE_DEFER)
            consumer_spans_handled(c, &m->ev, m->rkm, tx, before, span_t0,
                                   r == SAGA_HANDLE_OK ? "handled" : "deferred");
        tx->span[0] = '\0';
        saga_hist_observe(&c->handler_latency[m->ev.type],
                          (double)(t1.tv_sec - t0.tv_sec) +
                              (double)(t1.tv_nsec - t0.tv_nsec) / 1e9);
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
 * Records every handled message of msgs in the inbox with one statement; dup[i] is set
 * for those already there (or repeated within msgs).
 */
static saga_handle_result_t claim_inbox(struct saga_consumer *c, struct msg *msgs, int n, int *dup,
                                        char *errstr, size_t errstr_size)
{
    const char **ids = malloc((size_t)n * sizeof(*ids));
    const char *params[2];
    char *arr = NULL;
    PGresult *r = NULL;
    saga_handle_result_t res;
    int k = 0;

    if (!ids) {
        snprintf(errstr, errstr_size, "out of memory");
        return SAGA_HANDLE_TRANSIENT;
    }
    for (int i = 0; i < n; i++) {
        dup[i] = 0;
        if (c->conf.handlers[msgs[i].ev.type])
            ids[k++] = msgs[i].ev.meta.event_id;
    }
    if (!k) {
        free(ids);
        return SAGA_HANDLE_OK;
    }
    arr = saga_pg_text_array(ids, (size_t)k);
    free(ids);
    params[0] = c->conf.group;
    params[1] = arr;
    res = exec_sql(c,
                   "INSERT INTO inbox (consumer, event_id)"
                   " SELECT $1, id FROM unnest($2::text[]) WITH ORDINALITY AS t(id, n) ORDER BY n"
                   " ON CONFLICT DO NOTHING RETURNING event_id",
                   2, params, NULL, NULL, 0, &r, errstr, errstr_size);
    free(arr);
    if (res != SAGA_HANDLE_OK)
        return res;
    {
        int rows = PQntuples(r);
        char *claimed = calloc((size_t)rows + 1, 1);
        if (!claimed) {
            PQclear(r);
            snprintf(errstr, errstr_size, "out of memory");
            return SAGA_HANDLE_TRANSIENT;
        }
        for (int i = 0; i < n; i++) {
            int found = 0;
            if (!c->conf.handlers[msgs[i].ev.type])
                continue;
            for (int j = 0; j < rows && !found; j++) {
                if (!claimed[j] && strcmp(PQgetvalue(r, j, 0), msgs[i].ev.meta.event_id) == 0) {
                    claimed[j] = 1;
                    found = 1;
                }
            }
            dup[i] = !found;
        }
        free(claimed);
    }
    PQclear(r);
    return SAGA_HANDLE_OK;
}

static void rollback(struct saga_consumer *c)
{
    consumer_spans_discard(c);
    PQclear(saga_pg_query(c->conn, "ROLLBACK")); /* bounded by PG_QUERY_TIMEOUT */
    saga_outbox_batch_reset(&c->outbox);
}

saga_handle_result_t consumer_tx_run(struct saga_consumer *c, struct msg *msgs, int n,
                                     int *failed_at, char *errstr, size_t errstr_size)
{
    struct saga_tx tx = {0};
    saga_handle_result_t r;
    int *dup, emitted;
    int64_t commit_start;

    *failed_at = -1;
    /* Events this service has no handler for are only counted: no transaction, no inbox
     * row (they have no effect to do once), so a batch of nothing else needs no database
     * at all; their offsets move with the batch's. */
    {
        int handled = 0;
        for (int i = 0; i < n && !handled; i++)
            handled = c->conf.handlers[msgs[i].ev.type] != NULL;
        if (!handled) {
            memset(&c->pend, 0, sizeof(c->pend));
            for (int i = 0; i < n; i++)
                c->pend.n[msgs[i].ev.type][OUT_SKIPPED]++;
            consumer_count_commit(c, &tx);
            return SAGA_HANDLE_OK;
        }
    }
    if ((r = ensure_conn(c, errstr, errstr_size)) != SAGA_HANDLE_OK)
        return r;
    tx.conn = c->conn;
    tx.consumer = c->conf.group;
    tx.serde = c->serde;
    tx.scratch = &c->scratch;
    tx.outbox = &c->outbox;
    saga_outbox_batch_reset(&c->outbox);
    memset(&c->pend, 0, sizeof(c->pend));
    if (!(dup = calloc((size_t)n, sizeof(*dup)))) {
        snprintf(errstr, errstr_size, "out of memory");
        return SAGA_HANDLE_TRANSIENT;
    }
    consumer_spans_tx_begin(c);
    r = exec_sql(c, "BEGIN", 0, NULL, NULL, NULL, 0, NULL, errstr, errstr_size);
    if (r == SAGA_HANDLE_OK)
        r = claim_inbox(c, msgs, n, dup, errstr, errstr_size);
    if (r != SAGA_HANDLE_OK) {
        rollback(c);
        free(dup);
        return r;
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
    if (r == SAGA_HANDLE_OK && emitted) {
        saga_err_t e = saga_outbox_batch_flush(c->conn, tx.outbox, errstr, errstr_size);
        if (e)
            r = e == SAGA_ERR_PERMANENT ? SAGA_HANDLE_INVALID : SAGA_HANDLE_TRANSIENT;
    }
    if (r != SAGA_HANDLE_OK) {
        rollback(c);
        return r;
    }
    /* With rows for the relay, the NOTIFY follows the commit: see saga/outbox.h. A COMMIT
     * whose outcome is unknown is redone as a whole: the inbox decides what ran. */
    commit_start = consumer_spans_now();
    if (emitted) {
        saga_err_t e = saga_outbox_commit_notify(c->conn, errstr, errstr_size);
        if (e) {
            consumer_spans_discard(c);
            return e == SAGA_ERR_PERMANENT ? SAGA_HANDLE_INVALID : SAGA_HANDLE_TRANSIENT;
        }
    } else {
        PGresult *cr;
        if ((r = exec_sql(c, "COMMIT", 0, NULL, NULL, NULL, 0, &cr, errstr, errstr_size)) !=
            SAGA_HANDLE_OK) {
            consumer_spans_discard(c);
            return r;
        }
        /* A transaction a handler let fail (and then returned OK) ends as ROLLBACK. */
        if (strcmp(PQcmdStatus(cr), "COMMIT") != 0) {
            snprintf(errstr, errstr_size,
                     "the transaction was rolled back (%s): a handler"
                     " went on after a failed statement",
                     PQcmdStatus(cr));
            PQclear(cr);
            consumer_spans_discard(c);
            return SAGA_HANDLE_INVALID;
        }
        PQclear(cr);
    }
    consumer_spans_commit(c, commit_start, n);
    saga_fault_point("consumer.after_commit");
    consumer_count_commit(c, &tx);
    if (c->conf.after_commit)
        c->conf.after_commit(c->conf.arg);
    return SAGA_HANDLE_OK;
}

/* --- dead letters of released events ---------------------------------------------- */

/* Kafka headers from the JSON object a deferred row keeps, plus the DLQ's own. */
static rd_kafka_headers_t *row_headers(const char *json)
{
    json_t *o = json_loads(json, 0, NULL), *v;
    rd_kafka_headers_t *h = rd_kafka_headers_new(16);
    const char *name;

    json_object_foreach(o, name, v)
    {
        if (json_is_string(v))
            rd_kafka_header_add(h, name, -1, json_string_value(v), (ssize_t)json_string_length(v));
    }
    json_decref(o);
    return h;
}

void consumer_tx_dead_letter_released(struct saga_consumer *c, int force)
{
    const char *params[1] = {c->conf.group};
    char err[512];
    PGresult *r;

    /* Forced (after a batch) only when a committed transaction may have marked one; else
     * every few seconds, and not before last_dead_sweep after a failure. */
    if (force ? !c->dead_pending : saga_mono_ms() < c->last_dead_sweep + 5000)
        return;
    c->dead_pending = 0;
    c->last_dead_sweep = saga_mono_ms();
    if (ensure_conn(c, err, sizeof(err)) != SAGA_HANDLE_OK)
        return;
    if (exec_sql(c,
                 "SELECT id::text, topic, kpartition::text, koffset::text, msg_key, payload,"
                 " headers::text, dead_reason,"
                 " to_char(dead_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'),"
                 " raw_key, raw_headers"
                 " FROM deferred WHERE consumer = $1 AND dead_reason IS NOT NULL ORDER BY id"
                 " LIMIT 100",
                 1, params, NULL, NULL, 1, &r, err, sizeof(err)) != SAGA_HANDLE_OK) {
        saga_log(SAGA_LOG_WARN, NULL, "reading deferred events to dead-letter: %s", err);
        return;
    }
    for (int i = 0; i < PQntuples(r) && !consumer_stopping(c); i++) {
        char id[32], topic[256], part[16], off[32], when[40], reason[512];
        rd_kafka_headers_t *h;
        /* Rows deferred before raw_key and raw_headers existed have the text forms. */
        int raw = !PQgetisnull(r, i, 10);
        char *key = raw ? (PQgetisnull(r, i, 9) ? NULL : PQgetvalue(r, i, 9))
                        : (PQgetisnull(r, i, 4) ? NULL : PQgetvalue(r, i, 4));
        size_t key_len = !key ? 0 : raw ? (size_t)PQgetlength(r, i, 9) : strlen(key);
        const char *pid[1] = {id};

        /* Binary results: the text columns are as they are, NUL-terminated by libpq. */
        snprintf(id, sizeof(id), "%s", PQgetvalue(r, i, 0));
        snprintf(topic, sizeof(topic), "%s", PQgetvalue(r, i, 1));
        snprintf(part, sizeof(part), "%s", PQgetvalue(r, i, 2));
        snprintf(off, sizeof(off), "%s", PQgetvalue(r, i, 3));
        snprintf(reason, sizeof(reason), "%s", PQgetvalue(r, i, 7));
        snprintf(when, sizeof(when), "%s", PQgetvalue(r, i, 8));
        h = raw ? headers_unpack((const unsigned char *)PQgetvalue(r, i, 10),
                                 (size_t)PQgetlength(r, i, 10))
                : row_headers(PQgetvalue(r, i, 6));
        rd_kafka_header_add(h, "dlq.reason", -1, "invalid", -1);
        rd_kafka_header_add(h, "dlq.error", -1, reason, -1);
        rd_kafka_header_add(h, "dlq.consumer", -1, c->conf.group, -1);
        rd_kafka_header_add(h, "dlq.source.topic", -1, topic, -1);
        rd_kafka_header_add(h, "dlq.source.partition", -1, part, -1);
        rd_kafka_header_add(h, "dlq.source.offset", -1, off, -1);
        rd_kafka_header_add(h, "dlq.attempts", -1, "1", -1);
        rd_kafka_header_add(h, "dlq.first_failed_at", -1, when, -1);
        rd_kafka_header_add(h, "dlq.released", -1, "true", -1);
        if (consumer_kafka_send_dlq(c, NULL, key, key_len, PQgetvalue(r, i, 5),
                                    (size_t)PQgetlength(r, i, 5), h, 2000, err, sizeof(err)) != 0) {
            /* The consumer must not wait on the DLQ for long here: try again in 30 s. */
            saga_log(SAGA_LOG_WARN, NULL, "deferred row %s stays until %s takes it: %s", id,
                     c->conf.dlq_topic, err);
            c->last_dead_sweep = saga_mono_ms() + 25000;
            break;
        }
        pthread_mutex_lock(c->mu);
        c->stats.dead_lettered++;
        pthread_mutex_unlock(c->mu);
        saga_log(SAGA_LOG_ERROR, NULL, "deferred row %s (%s [%s] @%s) sent to %s: %s", id, topic,
                 part, off, c->conf.dlq_topic, reason);
        if (exec_sql(c, "DELETE FROM deferred WHERE id = $1", 1, pid, NULL, NULL, 0, NULL, err,
                     sizeof(err)) != SAGA_HANDLE_OK) {
            /* Sent again next time: a duplicate dead letter, never a lost one. */
            saga_log(SAGA_LOG_WARN, NULL, "deferred row %s sent but not deleted: %s", id, err);
            break;
        }
    }
    PQclear(r);
}
