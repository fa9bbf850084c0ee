#include "saga/outbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "saga/fault.h"
#include "saga/pg.h"

saga_err_t saga_outbox_append(PGconn *conn, const struct saga_outbox_row *row, char *errstr,
                              size_t errstr_size)
{
    static const char sql[] =
        "INSERT INTO outbox (topic, msg_key, event_type, event_id, payload, headers)"
        " VALUES ($1, $2, $3, $4, $5, $6::jsonb) RETURNING id";
    json_t *hdrs = json_object();
    char *hjson;
    const char *values[6];
    int lengths[6] = {0, 0, 0, 0, (int)row->payload_len, 0};
    int formats[6] = {0, 0, 0, 0, 1, 0};
    PGresult *r;
    saga_err_t err = SAGA_OK;

    if (PQtransactionStatus(conn) != PQTRANS_INTRANS) {
        json_decref(hdrs);
        return saga_errf(SAGA_ERR_INVALID, errstr, errstr_size,
                         "outbox append needs an open transaction (BEGIN first)");
    }
    if (!row->topic || !row->key || !row->event_type || !row->event_id || !row->payload) {
        json_decref(hdrs);
        return saga_errf(SAGA_ERR_INVALID, errstr, errstr_size,
                         "outbox row needs topic, key, event_type, event_id and payload");
    }
    for (int i = 0; i < row->nheaders; i++)
        json_object_set_new(hdrs, row->headers[i].name, json_string(row->headers[i].value));
    hjson = json_dumps(hdrs, JSON_COMPACT);
    json_decref(hdrs);
    if (!hjson)
        return saga_errf(SAGA_ERR_INVALID, errstr, errstr_size, "outbox headers are not UTF-8");
    values[0] = row->topic;
    values[1] = row->key;
    values[2] = row->event_type;
    values[3] = row->event_id;
    values[4] = row->payload;
    values[5] = hjson;
    r = saga_pg_exec(conn, sql, 6, values, lengths, formats, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        err = saga_pg_classify(conn, r);
        saga_pg_errstr(conn, errstr, errstr_size);
    }
    PQclear(r);
    free(hjson);
    return err;
}

saga_err_t saga_outbox_append_event(PGconn *conn, struct saga_serde *serde,
                                    const struct saga_event *ev, struct saga_buf *scratch,
                                    char *errstr, size_t errstr_size)
{
    struct saga_header h[5];
    struct saga_outbox_row row;
    int n = 0;
    saga_err_t err = saga_serde_encode(serde, ev, scratch, errstr, errstr_size);

    if (err)
        return err;
    h[n++] = (struct saga_header){"event_id", ev->meta.event_id};
    h[n++] = (struct saga_header){"event_type", saga_event_type_name(ev->type)};
    h[n++] = (struct saga_header){"correlation_id", ev->meta.correlation_id};
    if (ev->meta.causation_id)
        h[n++] = (struct saga_header){"causation_id", ev->meta.causation_id};
    if (ev->meta.traceparent)
        h[n++] = (struct saga_header){"traceparent", ev->meta.traceparent};
    row = (struct saga_outbox_row){saga_event_type_topic(ev->type),
                                   ev->meta.order_id,
                                   saga_event_type_name(ev->type),
                                   ev->meta.event_id,
                                   scratch->data,
                                   scratch->len,
                                   h,
                                   n};
    return saga_outbox_append(conn, &row, errstr, errstr_size);
}

/* --- batches ---------------------------------------------------------------- */

struct saga_outbox_pending {
    size_t topic, key, type, event_id, headers, payload; /* offsets into data */
    size_t payload_len;
};

static int batch_put(struct saga_outbox_batch *b, const void *p, size_t len, int nul, size_t *at)
{
    size_t need = b->len + len + (nul ? 1 : 0);
    if (need > b->capdata) {
        size_t cap = b->capdata ? b->capdata * 2 : 16384;
        unsigned char *d;
        while (cap < need)
            cap *= 2;
        if (!(d = realloc(b->data, cap)))
            return -1;
        b->data = d;
        b->capdata = cap;
    }
    *at = b->len;
    memcpy(b->data + b->len, p, len);
    b->len += len;
    if (nul)
        b->data[b->len++] = '\0';
    return 0;
}

static int batch_str(struct saga_outbox_batch *b, const char *s, size_t *at)
{
    return batch_put(b, s, strlen(s), 1, at);
}

saga_err_t saga_outbox_batch_add_event(struct saga_outbox_batch *b, struct saga_serde *serde,
                                       const struct saga_event *ev, struct saga_buf *scratch,
                                       char *errstr, size_t errstr_size)
{
    struct saga_outbox_pending *r;
    json_t *h;
    char *hjson;
    saga_err_t err = saga_serde_encode(serde, ev, scratch, errstr, errstr_size);
    int bad;

    if (err)
        return err;
    if (b->n == b->cap) {
        int cap = b->cap ? b->cap * 2 : 64;
        struct saga_outbox_pending *rows = realloc(b->rows, (size_t)cap * sizeof(*rows));
        if (!rows)
            return saga_errf(SAGA_ERR_NOMEM, errstr, errstr_size, "out of memory");
        b->rows = rows;
        b->cap = cap;
    }
    h = json_pack("{s:s,s:s,s:s}", "event_id", ev->meta.event_id, "event_type",
                  saga_event_type_name(ev->type), "correlation_id", ev->meta.correlation_id);
    if (h && ev->meta.causation_id)
        json_object_set_new(h, "causation_id", json_string(ev->meta.causation_id));
    if (h && ev->meta.traceparent)
        json_object_set_new(h, "traceparent", json_string(ev->meta.traceparent));
    hjson = h ? json_dumps(h, JSON_COMPACT) : NULL;
    json_decref(h);
    if (!hjson)
        return saga_errf(SAGA_ERR_INVALID, errstr, errstr_size, "event headers are not UTF-8");
    r = &b->rows[b->n];
    bad = batch_str(b, saga_event_type_topic(ev->type), &r->topic) ||
          batch_str(b, ev->meta.order_id, &r->key) ||
          batch_str(b, saga_event_type_name(ev->type), &r->type) ||
          batch_str(b, ev->meta.event_id, &r->event_id) || batch_str(b, hjson, &r->headers) ||
          batch_put(b, scratch->data, scratch->len, 0, &r->payload);
    free(hjson);
    if (bad)
        return saga_errf(SAGA_ERR_NOMEM, errstr, errstr_size, "out of memory");
    r->payload_len = scratch->len;
    b->n++;
    return SAGA_OK;
}

void saga_outbox_batch_reset(struct saga_outbox_batch *b)
{
    b->n = 0;
    b->len = 0;
}

void saga_outbox_batch_release(struct saga_outbox_batch *b)
{
    free(b->rows);
    free(b->data);
    memset(b, 0, sizeof(*b));
}

saga_err_t saga_outbox_commit_notify(PGconn *conn, char *errstr, size_t errstr_size)
{
    /* One round trip, two transactions: the COMMIT, then the NOTIFY in a transaction of its
     * own, which writes no WAL of its own, so it commits without waiting for a flush and holds
     * the notification queue's lock only for a moment. A failed NOTIFY is harmless: the
     * relay's poll finds the rows. */
    PGresult *r;
    saga_err_t err = SAGA_OK;

    saga_fault_break_socket("outbox.commit_lost", PQsocket(conn));
    saga_fault_halfopen_socket("outbox.commit_halfopen", PQsocket(conn));
    if (!PQsendQuery(conn, "COMMIT; SELECT pg_notify('" SAGA_OUTBOX_CHANNEL "', '')")) {
        saga_pg_errstr(conn, errstr, errstr_size);
        return SAGA_ERR_TRANSIENT;
    }
    saga_fault_break_socket("outbox.commit_sent", PQsocket(conn));
    /* The COMMIT's; after a failed one the server runs nothing more. */
    r = saga_pg_get_result(conn);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        err = saga_pg_classify(conn, r);
        saga_pg_errstr(conn, errstr, errstr_size);
        if (!err)
            err = SAGA_ERR_TRANSIENT;
    } else if (strcmp(PQcmdStatus(r), "COMMIT") != 0) {
        /* COMMIT of a transaction that had failed succeeds as a ROLLBACK. */
        err = saga_errf(SAGA_ERR_PERMANENT, errstr, errstr_size,
                        "the transaction had failed; COMMIT rolled it back");
    }
    PQclear(r);
    saga_fault_break_socket("outbox.commit_answered", PQsocket(conn));
    /* The NOTIFY's result, or the error of a connection lost after the COMMIT's answer:
     * neither changes what the COMMIT did. */
    while ((r = saga_pg_get_result(conn)))
        PQclear(r);
    return err;
}

saga_err_t saga_outbox_batch_flush(PGconn *conn, struct saga_outbox_batch *b, char *errstr,
                                   size_t errstr_size)
{
    /* At most this many rows per statement (6 parameters each, under libpq's 65535). */
    enum { CHUNK = 1000 };
    saga_err_t err = SAGA_OK;

    if (b->n == 0)
        return SAGA_OK;
    if (PQtransactionStatus(conn) != PQTRANS_INTRANS)
        return saga_errf(SAGA_ERR_INVALID, errstr, errstr_size,
                         "outbox flush needs an open transaction (BEGIN first)");
    for (int from = 0; from < b->n && !err; from += CHUNK) {
        int n = b->n - from < CHUNK ? b->n - from : CHUNK;
        size_t cap = 256 + (size_t)n * 64, o;
        char *sql = malloc(cap);
        const char **values = calloc((size_t)n * 6, sizeof(*values));
        int *lengths = calloc((size_t)n * 6, sizeof(*lengths));
        int *formats = calloc((size_t)n * 6, sizeof(*formats));
        PGresult *r;

        if (!sql || !values || !lengths || !formats) {
            free(sql);
            free(values);
            free(lengths);
            free(formats);
            return saga_errf(SAGA_ERR_NOMEM, errstr, errstr_size, "out of memory");
        }
        o = (size_t)snprintf(sql, cap,
                             "WITH row AS (INSERT INTO outbox (topic, msg_key, event_type, "
                             "event_id, payload, headers) VALUES ");
        for (int i = 0; i < n; i++) {
            const struct saga_outbox_pending *p = &b->rows[from + i];
            int k = i * 6;
            o += (size_t)snprintf(sql + o, cap - o, "%s($%d,$%d,$%d,$%d,$%d,$%d::jsonb)",
                                  i ? "," : "", k + 1, k + 2, k + 3, k + 4, k + 5, k + 6);
            values[k] = (const char *)b->data + p->topic;
            values[k + 1] = (const char *)b->data + p->key;
            values[k + 2] = (const char *)b->data + p->type;
            values[k + 3] = (const char *)b->data + p->event_id;
            values[k + 4] = (const char *)b->data + p->payload;
            lengths[k + 4] = (int)p->payload_len;
            formats[k + 4] = 1;
            values[k + 5] = (const char *)b->data + p->headers;
        }
        snprintf(sql + o, cap - o, " RETURNING id) SELECT count(*) FROM row");
        r = saga_pg_query_params(conn, sql, n * 6, values, lengths, formats, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            err = saga_pg_classify(conn, r);
            saga_pg_errstr(conn, errstr, errstr_size);
        }
        PQclear(r);
        free(sql);
        free(values);
        free(lengths);
        free(formats);
    }
    saga_outbox_batch_reset(b);
    return err;
}
