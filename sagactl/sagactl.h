/* sagactl: one function per subcommand, all diagnostics on stderr. */
#ifndef SAGACTL_H
#define SAGACTL_H

#include <signal.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>
#include <librdkafka/rdkafka.h>

#include "saga/config.h"
#include "saga/events.h"
#include "saga/serde.h"

/* Exit codes (docs/SAGACTL.md). */
#define SAGACTL_EXIT_OK      0
#define SAGACTL_EXIT_FAILURE 1  /* the command ran and the answer is "no" or it failed */
#define SAGACTL_EXIT_UNREACH 69 /* Kafka or the API could not be reached (EX_UNAVAILABLE) */
#define SAGACTL_EXIT_USAGE   64
#define SAGACTL_EXIT_CONFIG  78

int sagactl_topics(const struct saga_config *cfg, int argc, char **argv);
int sagactl_acls(const struct saga_config *cfg, int argc, char **argv);
int sagactl_schemas(int argc, char **argv);
int sagactl_dlq(const struct saga_config *cfg, int argc, char **argv);
/* cmd_orders.c: through the order API (ORDER_API_URL); no Kafka configuration needed. */
int sagactl_place(int argc, char **argv);
int sagactl_get(int argc, char **argv);
int sagactl_cancel(int argc, char **argv);
int sagactl_stuck(int argc, char **argv);
/* cmd_explain.c: explain through the order API; choreography needs nothing. */
int sagactl_explain(int argc, char **argv);
int sagactl_choreography(int argc, char **argv);
/* What the order (GET /orders/ID's JSON) waits for, per saga/choreography.h: up to max
 * into out, returns how many. */
struct saga_expectation;
int sagactl_expected(const json_t *order, struct saga_expectation *out, int max);
/* The same as one line: "payment-service: PaymentAuthorized or PaymentFailed; ...". */
void sagactl_waiting_text(const json_t *order, char *out, size_t size);
/* cmd_watch.c: straight from Kafka. */
int sagactl_watch(const struct saga_config *cfg, int argc, char **argv);
int sagactl_tail(const struct saga_config *cfg, int argc, char **argv);

/* --- util.c ----------------------------------------------------------------- */

/* 1 when stdout is a terminal and NO_COLOR is unset: colours and progress shown. */
int sagactl_fancy(void);
/* The ANSI sequence when fancy, "" otherwise. */
const char *sagactl_sgr(const char *code);
#define SGR_RESET  "0"
#define SGR_BOLD   "1"
#define SGR_DIM    "2"
#define SGR_RED    "31"
#define SGR_GREEN  "32"
#define SGR_YELLOW "33"
/* The colour of an event type: failures red, compensations yellow, the outcome bold. */
const char *sagactl_event_sgr(saga_event_type_t type);
/* A colour of its own for an order id (a hash of it), when fancy. */
const char *sagactl_order_sgr(const char *order_id);

/* One step of a spinner on stdout ("\r<frame> text"), when fancy; clear removes it. */
void sagactl_progress(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void sagactl_progress_clear(void);

/*
 * Text from outside (events, headers, keys, the API's answers) as sagactl prints it for
 * people: control characters (C0, DEL, C1) and bidirectional overrides escaped, as
 * \x1b or \u009b, and bytes that are not UTF-8 as \xNN; valid UTF-8 otherwise as it is.
 * The result lives until 16 more calls; NULL gives NULL (sagactl_safe) or "".
 */
const char *sagactl_safe(const char *s);
const char *sagactl_safen(const void *s, size_t len);
/*
 * JSON text made safe the same way, still JSON with the same meaning: DEL, C1 and
 * bidirectional overrides (which JSON may hold raw) as \u escapes; any other raw
 * control but newline and tab as \u00XX; bytes that are not UTF-8 as \ufffd.
 * Malloc'd (NULL when out of memory).
 */
char *sagactl_json_safe(const char *json);
/* json (one document) made safe so on stdout, with a newline at its end. */
void sagactl_print_json(const char *json);

/* "12.99 EUR" from minor units. */
const char *sagactl_money(int64_t minor, const char *currency, char *out, size_t size);
/* "HH:MM:SS.mmm" in UTC from milliseconds since the epoch. */
const char *sagactl_clock(int64_t epoch_ms, char *out, size_t size);
/* Milliseconds since the epoch of "2026-11-21T23:17:29.815Z"; -1 if it is not that. */
int64_t sagactl_parse_iso_ms(const char *s);
/* A whole number of seconds from 0 to max, or -1 (with a message naming opt). */
long sagactl_arg_seconds(const char *cmd, const char *opt, const char *v, long max);
/* A symbol name of one of saga/events.h's enums, "UNKNOWN" when out of range. */
const char *sagactl_enum_name(const char *const *names, int count, int value);

/*
 * A client for admin requests (a producer handle, logging quietly) once the cluster
 * answers a metadata request, waiting up to wait_s seconds; NULL with a message and
 * *rc set to SAGACTL_EXIT_CONFIG or SAGACTL_EXIT_UNREACH otherwise.
 */
rd_kafka_t *sagactl_admin_client(const struct saga_config *cfg, int wait_s, int *rc);

/* Set by SIGINT/SIGTERM once sagactl_catch_signals() ran. */
extern volatile sig_atomic_t sagactl_interrupted;
void sagactl_catch_signals(void);

/* --- api.c: the order API over libcurl -------------------------------------- */

struct sagactl_reply {
    long status;  /* HTTP status */
    json_t *json; /* the body parsed, or NULL */
    char *body;   /* the body as received, NUL-terminated */
    size_t len;
};

/* A W3C traceparent sagactl_api sends with every request (NULL: none); set by `place` when
 * it exports its span (saga/otel.h). */
extern const char *sagactl_api_traceparent;

/*
 * Sends method path (e.g. "/orders/ID") to ORDER_API_URL, with body (JSON) and an
 * Idempotency-Key when given. 0 when an answer came (whatever its status), -1 when
 * the API could not be reached (message on stderr). Release the reply.
 */
int sagactl_api(const char *cmd, const char *method, const char *path, const char *body,
                const char *idempotency_key, struct sagactl_reply *out);
void sagactl_reply_release(struct sagactl_reply *r);
/*
 * Takes the order API's client options out of argv (for place, get, cancel, stuck, before
 * they parse theirs): --cacert FILE, the CA an https API's certificate must be signed by
 * (default ORDER_API_CACERT). 0, or the exit code after a message: a --cacert without a
 * file, a CA file that cannot be read.
 */
int sagactl_api_options(const char *cmd, int *argc, char **argv);
/* 1 when the last sagactl_api that failed did so before anything was sent: the API's
 * certificate did not verify (retrying cannot help; nothing was placed). */
int sagactl_api_not_sent(void);
/* The help lines of those options, for the commands' usage. */
#define SAGACTL_API_OPTIONS_HELP                                                                   \
    "  --cacert FILE  the CA that signed an https order API's certificate (default\n"              \
    "                 ORDER_API_CACERT); the certificate and the host name are always\n"           \
    "                 verified; exit code 78 when FILE cannot be read\n"
/* Requests after this are sent as customer (its stack token), NULL: the operator. */
void sagactl_api_as_customer(const char *customer);
/* sagactl token mint: a bearer token signed with the local stack's HS256 secret. */
int sagactl_token(int argc, char **argv);
/* The API base URL, without a trailing slash. */
const char *sagactl_api_url(void);
/* Prints the API's error (message, fields) on stderr; returns the exit code for it. */
int sagactl_api_error(const char *cmd, const struct sagactl_reply *r);

/* --- event_json.c ----------------------------------------------------------- */

/*
 * Every field of ev as a JSON object with the Avro field names: meta as an object,
 * enums as their symbol names, money and times as integers, optional strings as
 * null when absent. NULL only when out of memory.
 */
json_t *sagactl_event_json(const struct saga_event *ev);

/*
 * One Kafka record as tail prints it: topic, partition, offset, key, timestamp,
 * headers, then event_type and event, or error when serde cannot decode payload.
 * hdrs may be NULL; timestamp < 0 is written as null.
 */
json_t *sagactl_record_json(struct saga_serde *serde, const char *topic, int32_t partition,
                            int64_t offset, const void *key, size_t key_len, int64_t timestamp,
                            const rd_kafka_headers_t *hdrs, const void *payload, size_t len);

/* A short line about ev: "declined: CARD_DECLINED", "refunded 34.99 EUR". */
const char *sagactl_event_summary(const struct saga_event *ev, char *out, size_t size);
/* 1 for InventoryReleased, PaymentRefunded, ShipmentCancelled. */
int sagactl_event_is_compensation(saga_event_type_t type);

/* The serde sagactl decodes with: the registry when SCHEMA_REGISTRY_URL is set. */
int sagactl_serde_open(const struct saga_config *cfg, const char *cmd, struct saga_serde **serde,
                       struct saga_registry **registry);

#endif
