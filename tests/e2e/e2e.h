/*
 * Support for the end-to-end tests: the order API over HTTP (libcurl), the
 * service databases (as each service's role), Kafka (quiescence from the
 * consumer groups' committed offsets, re-publishing and injecting events), and
 * the invariants of docs/RELIABILITY.md ("The saga on top of it") checked across all
 * of it.
 */
#ifndef SAGA_E2E_H
#define SAGA_E2E_H

#include <jansson.h>
#include <libpq-fe.h>
#include <librdkafka/rdkafka.h>

#include "saga/events.h"

/* --- HTTP ---------------------------------------------------------------------- */

struct api_reply {
    long status;
    json_t *json; /* NULL if the body is not JSON */
    char location[256];
    int replayed; /* Idempotent-Replayed: true */
    char retry_after[16];
};

/* method path against ORDER_API_URL; headers is NULL or "Name: value" lines. Sent as
 * the stack's operator (STACK_OPERATOR_TOKEN) unless headers name an Authorization
 * ("Authorization:" alone: none). */
void api(struct api_reply *out, const char *method, const char *path, const char *content_type,
         const char *body, size_t body_len, const char *const *headers);
void api_reply_free(struct api_reply *r);

/* An order body: items as "sku:qty,sku:qty". */
char *order_body(const char *customer, const char *token, const char *country, const char *items);

/* POST /orders with body; asserts 202 and returns the order id (static buffer per call site). */
void place(const char *customer, const char *token, const char *country, const char *items,
           char order_id[37]);

/* GET /orders/{id} until pred holds (or timeout_ms); returns the last JSON (caller decrefs). */
json_t *wait_order(const char *order_id, int (*pred)(json_t *order), int timeout_ms);
int order_terminal(json_t *o); /* CONFIRMED or CANCELLED */
int order_settled(json_t *o);  /* terminal and compensation not in progress */
const char *jstr(json_t *o, const char *key);
/* The number of events of type in the order's timeline. */
int timeline_count(json_t *o, const char *type);

/*
 * The drift check: the order's timeline (GET /orders/{id}'s JSON) against the saga's
 * declaration (saga/choreography.h, saga_choreo_check_timeline). 0, or -1 with why. Every
 * order wait_order returns is checked (fail_msg on a violation), so every timeline the e2e
 * tests wait for is.
 */
int timeline_fits_choreography(json_t *o, char *why, size_t size);

/* GET a URL; returns the body (malloc'd) or NULL on a transport error; *status gets the code. */
char *http_get(const char *url, long *status);
/* The /metrics text of the program on STACK_HTTP_PORT_BASE + offset (0 order ... 5 relay). */
char *scrape(int offset);
/* The value of the series written exactly as series ("name{a=\"b\"}"), or -1 if absent. */
double metric(const char *text, const char *series);

/* --- databases ----------------------------------------------------------------- */

/* A connection to <service>_service as its own role (cached). */
PGconn *db(const char *service);
/* The first column of the first row as a number; one optional text parameter. */
long long db_num(const char *service, const char *sql, const char *param);
/* The first column of the first row as text (malloc'd, "" for NULL/no row). */
char *db_text(const char *service, const char *sql, const char *param);

/* --- Kafka ------------------------------------------------------------------- */

/* A client of the test stack's Kafka: a consumer in group (offsets committed by hand,
 * never automatically), or an idempotent producer with the Java partitioner. */
rd_kafka_t *kafka_client(rd_kafka_type_t type, const char *group);

/*
 * Waits until every outbox is published and every consumer group has committed
 * up to the end of its topics, twice in a row (handling makes new events).
 */
void wait_quiescent(int timeout_ms);

/* Re-publishes every message of order_id found on the five topics; returns how many. */
int republish_order(const char *order_id);

/* Encodes ev (the stack's framing) and produces it to its topic, keyed by its order id. */
void produce_event(const struct saga_event *ev);

/* --- invariants ---------------------------------------------------------------- */

/* Checks the invariants (docs/RELIABILITY.md) over the whole stack; returns the violations (0 =
 * none), described in report. */
int check_invariants(char *report, size_t size);

#endif
