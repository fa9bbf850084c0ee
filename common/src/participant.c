#include "saga/participant.h"

#include <stdio.h>
#include <string.h>

#include "saga/log.h"

static saga_handle_result_t upsert(struct saga_tx *tx, const char *order_id, const char *columns,
                                   struct saga_order_row *row)
{
    const char *p[1] = {order_id};
    char sql[1024];
    saga_handle_result_t res;

    memset(row, 0, sizeof(*row));
    snprintf(sql, sizeof(sql),
             "INSERT INTO orders (order_id) VALUES ($1)"
             " ON CONFLICT (order_id) DO UPDATE SET updated_at = now()"
             " RETURNING placed, cancelled%s%s",
             columns ? ", " : "", columns ? columns : "");
    if ((res = saga_tx_query(tx, &row->res, sql, 1, p)) != SAGA_HANDLE_OK)
        return res;
    row->placed = PQgetvalue(row->res, 0, 0)[0] == 't';
    row->cancelled = PQgetvalue(row->res, 0, 1)[0] == 't';
    row->gate = row->cancelled ? SAGA_ORDER_CANCELLED
                : row->placed  ? SAGA_ORDER_PLACED
                               : SAGA_ORDER_WAITING;
    return SAGA_HANDLE_OK;
}

saga_handle_result_t saga_order_lock(struct saga_tx *tx, const char *order_id, const char *columns,
                                     struct saga_order_row *row)
{
    return upsert(tx, order_id, columns, row);
}

saga_handle_result_t saga_order_trigger(struct saga_tx *tx, const struct saga_event *ev,
                                        const char *columns, struct saga_order_row *row)
{
    saga_handle_result_t res = upsert(tx, ev->meta.order_id, columns, row);

    if (res != SAGA_HANDLE_OK)
        return res;
    if (row->gate == SAGA_ORDER_WAITING)
        return SAGA_HANDLE_DEFER; /* kept; run again when OrderPlaced releases it */
    if (row->gate == SAGA_ORDER_CANCELLED)
        saga_log(SAGA_LOG_INFO,
                 &(struct saga_log_ids){ev->meta.order_id, ev->meta.event_id,
                                        ev->meta.correlation_id, NULL},
                 "%s for an order cancelled %s: nothing to do", saga_event_type_name(ev->type),
                 row->placed ? "already" : "before it was placed here");
    return SAGA_HANDLE_OK;
}

saga_handle_result_t saga_order_cancel(struct saga_tx *tx, const char *order_id,
                                       const char *columns, struct saga_order_row *row)
{
    const char *p[1] = {order_id};
    saga_handle_result_t res = upsert(tx, order_id, columns, row);

    if (res == SAGA_HANDLE_OK && !row->cancelled)
        res =
            saga_tx_query(tx, NULL, "UPDATE orders SET cancelled = true WHERE order_id = $1", 1, p);
    row->gate = SAGA_ORDER_CANCELLED;
    return res;
}

const char *saga_order_col(const struct saga_order_row *row, int i)
{
    if (!row->res || PQgetisnull(row->res, 0, i + 2))
        return NULL;
    return PQgetvalue(row->res, 0, i + 2);
}

void saga_order_row_release(struct saga_order_row *row)
{
    PQclear(row->res);
    row->res = NULL;
}
