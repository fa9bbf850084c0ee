#include "saga/outbox.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

#include "saga/pg.h"

saga_err_t saga_outbox_append(PGconn *conn, const struct saga_outbox_row *row, char *errstr,
                              size_t errstr_size)
{
    /* The insert and the wake-up in one round trip. */
    static const char sql[] =
        "WITH row AS (INSERT INTO outbox (topic, msg_key, event_type, event_id, payload, headers)"
        "             VALUES ($1, $2, $3, $4, $5, $6::jsonb) RETURNING id)"
        " SELECT id, pg_notify('" SAGA_OUTBOX_CHANNEL "', '') FROM row";
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
    r = PQexecParams(conn, sql, 6, NULL, values, lengths, formats, 0);
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
