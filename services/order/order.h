/* order-service internals shared by main.c (saga, sweeper) and api.c (HTTP). */
#ifndef ORDER_H
#define ORDER_H

#include <pthread.h>
#include <stdatomic.h>

#include <libpq-fe.h>

#include "rules.h"
#include "saga/auth.h"
#include "saga/config.h"
#include "saga/http.h"
#include "saga/otel.h"
#include "saga/registry.h"
#include "saga/serde.h"

#define ORDER_POOL_SIZE 6 /* HTTP threads + sweeper, with room */

/* A database connection with what writing events needs; used by one thread at a time. */
struct order_slot {
    PGconn *conn;
    struct saga_serde *serde;
    struct saga_registry *registry;
    struct saga_buf scratch;
    int busy;
};

struct order_app {
    const struct saga_config *cfg;
    const struct saga_auth *auth; /* who may call the API (AUTH_*) */
    int64_t timeout_ms;           /* SAGA_TIMEOUT */
    int64_t sweep_every_ms;       /* how often the sweeper looks */
    long timeline_max;          /* ORDER_TIMELINE_MAX: timeline entries GET /orders/{id} returns */
    const char *tracing_ui_url; /* TRACING_UI_URL: trace_url in GET /orders/{id}, or NULL */
    int64_t events_pause_ms;    /* EVENTS_IDLE_PAUSE: the /events feed pauses with no stream */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct order_slot slots[ORDER_POOL_SIZE];
    pthread_t sweeper;
    int sweeper_started;
    _Atomic long long http_status[6]; /* by status class: [2] = 2xx ... [5] = 5xx */
    _Atomic long long placed, replayed, swept, customer_cancels;
};

extern struct order_app order_app;

/* A free slot with a live connection, or NULL (database unavailable: errstr says why).
 * locality: the HTTP threads. locks: takes app->mu to pick a slot, waits up to 5 s for
 * one; the slot is then the caller's alone until order_pool_put. */
struct order_slot *order_pool_get(struct order_app *app, char *errstr, size_t errstr_size);
/* broken: the connection failed mid-use and is reset before its next use.
 * locality: the thread that got the slot. locks: takes app->mu. */
void order_pool_put(struct order_app *app, struct order_slot *slot, int broken);

/*
 * Cancels order_id if it is still PENDING, in conn's open transaction: the
 * status, OrderCancelled to the outbox (caused by cause_id, or the order's
 * OrderPlaced) and the timeline. *status gets the status it has afterwards,
 * *changed is 1 if this call cancelled it.
 * Returns SAGA_ERR_NOT_FOUND for an unknown order.
 * When it cancels, span (saga/otel.h; recording 0 before the call) is begun as the
 * cancellation's span: the span OrderCancelled carries, a child of the order's span,
 * kind is SAGA_SPAN_SERVER (the customer's request) or SAGA_SPAN_INTERNAL (the sweeper).
 * The caller ends it once the transaction's outcome is known.
 */
saga_err_t order_cancel_in_tx(struct order_slot *slot, const char *order_id,
                              saga_cancel_reason_t reason, const char *detail, char *status,
                              size_t status_size, int *changed, struct saga_span *span,
                              char *errstr, size_t errstr_size);

/* Adds ev to its order's timeline (once per event_id), in conn's open transaction. */
saga_err_t order_timeline_add(PGconn *conn, const struct saga_event *ev, char *errstr,
                              size_t errstr_size);

/* Routes of the order API; falls through (status 0) for /healthz, /readyz, /metrics. */
void order_http(void *arg, const struct saga_http_request *req, struct saga_http_response *resp);
void order_metrics(void *arg, struct saga_text *out);

/* The live saga page (web.c, docs/WEB.md): 1 if req was one of its routes (/, /events, ...). */
int order_web_http(struct order_app *app, const struct saga_http_request *req,
                   struct saga_http_response *resp);
/*
 * The caller of req (Authorization: Bearer, or token when not NULL: /events takes
 * ?access_token= as EventSource sends no header) in *who: 0, or -1 after answering 401 in
 * resp.
 */
int order_authenticate(struct order_app *app, const struct saga_http_request *req,
                       const char *token, struct saga_principal *who,
                       struct saga_http_response *resp);
/* Its feed thread (own database connection): started in order_start, stopped in order_stop. */
saga_err_t order_web_start(struct order_app *app, char *errstr, size_t errstr_size);
void order_web_stop(struct order_app *app);

#endif
