/*
 * sagactl place [options]      POST /orders, optionally waiting for the saga's end
 * sagactl get ID [--json]      GET /orders/ID: outcome, compensation, timeline
 * sagactl cancel ID [--json]   POST /orders/ID/cancel, then the order as get shows it
 * sagactl stuck [--older-than S] [--json]   sagas PENDING for too long, and on whom
 *
 * All of them talk to the order API (ORDER_API_URL, default http://127.0.0.1:8080)
 * and need no Kafka configuration.
 */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>

#include "saga/ids.h"
#include "saga/otel.h"
#include "sagactl.h"

#define MAX_LINES 64

static const char *jget(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

/* jget as printed: the API's strings come from anyone (events, customers), so escaped. Use at
 * once (sagactl_safe's buffers are reused). */
static const char *jshow(const json_t *o, const char *key)
{
    return sagactl_safe(jget(o, key));
}

static int is_help(const char *a)
{
    return !strcmp(a, "--help") || !strcmp(a, "-h");
}

/* --- printing an order -------------------------------------------------------- */

static const char *status_sgr(const char *status)
{
    if (status && !strcmp(status, "CONFIRMED"))
        return sagactl_sgr("1;32");
    if (status && !strcmp(status, "CANCELLED"))
        return sagactl_sgr("1;31");
    return sagactl_sgr("1;33");
}

/* "HH:MM:SS.mmm" of an API time ("2026-11-21T23:17:29.815Z"), or the text as is. */
static const char *api_clock(const char *iso, char *out, size_t size)
{
    int64_t ms = sagactl_parse_iso_ms(iso);
    if (ms < 0) {
        snprintf(out, size, "%-12.12s", iso ? sagactl_safe(iso) : "?");
        return out;
    }
    return sagactl_clock(ms, out, size);
}

/* Prints s padded to width columns (s may hold one multi-byte character: the arrow). */
static void pad(const char *s, int width)
{
    int cols = 0;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++)
        cols += (*p & 0xC0) != 0x80;
    printf("%s%*s", s, width > cols ? width - cols : 0, "");
}

/*
 * "trace  ID  URL": the order's trace id and where the tracing backend's UI shows it,
 * from TRACING_UI_URL (stack.env sets it with make up TRACING=1), else the API's trace_url.
 */
static void print_trace(const json_t *o)
{
    const char *id = jget(o, "trace_id"), *ui = getenv("TRACING_UI_URL");
    const char *api_url = jget(o, "trace_url");
    size_t n;
    if (!id)
        return;
    printf("trace         %s", sagactl_safe(id));
    if (ui && *ui) {
        n = strlen(ui);
        while (n > 0 && ui[n - 1] == '/')
            n--;
        printf("  %s/trace/%s", sagactl_safen(ui, n), sagactl_safe(id));
    } else if (api_url) {
        printf("  %s", sagactl_safe(api_url));
    }
    printf("\n");
}

static void print_order(const json_t *o)
{
    const char *status = jget(o, "status"), *reason = jget(o, "reason"),
               *detail = jget(o, "detail"), *comp = jget(o, "compensation");
    const char *created = jget(o, "created_at"), *completed = jget(o, "completed_at");
    json_t *items = json_object_get(o, "items"), *addr = json_object_get(o, "shipping_address");
    json_t *tl = json_object_get(o, "timeline"), *e, *it;
    char money[48];
    size_t i;

    printf("%sorder%s         %s\n", sagactl_sgr(SGR_BOLD), sagactl_sgr(SGR_RESET),
           jget(o, "order_id") ? jshow(o, "order_id") : "?");
    printf("status        %s%s%s", status_sgr(status), status ? sagactl_safe(status) : "?",
           sagactl_sgr(SGR_RESET));
    if (reason)
        printf("  %s%s%s", sagactl_safe(reason), detail ? ": " : "",
               detail ? sagactl_safe(detail) : "");
    printf("\n");
    printf("compensation  %s%s%s\n",
           comp && !strcmp(comp, "in_progress") ? sagactl_sgr(SGR_YELLOW) : "",
           comp ? sagactl_safe(comp) : "?", sagactl_sgr(SGR_RESET));
    printf("total         %s, customer %s\n",
           sagactl_money(json_integer_value(json_object_get(o, "total_amount")),
                         jget(o, "currency"), money, sizeof(money)),
           jget(o, "customer_id") ? jshow(o, "customer_id") : "?");
    json_array_foreach(items, i, it)
    {
        printf("%-14s%" JSON_INTEGER_FORMAT " x %s (%s) at %s\n", i == 0 ? "items" : "",
               json_integer_value(json_object_get(it, "quantity")),
               jget(it, "sku") ? jshow(it, "sku") : "?", jget(it, "name") ? jshow(it, "name") : "",
               sagactl_money(json_integer_value(json_object_get(it, "unit_price")),
                             jget(o, "currency"), money, sizeof(money)));
    }
    if (json_is_object(addr))
        printf("ship to       %s, %s, %s %s, %s\n",
               jget(addr, "recipient") ? jshow(addr, "recipient") : "",
               jget(addr, "line1") ? jshow(addr, "line1") : "",
               jget(addr, "postal_code") ? jshow(addr, "postal_code") : "",
               jget(addr, "city") ? jshow(addr, "city") : "",
               jget(addr, "country") ? jshow(addr, "country") : "");
    printf("created       %s\n", created ? sagactl_safe(created) : "?");
    if (completed) {
        int64_t a = sagactl_parse_iso_ms(created), b = sagactl_parse_iso_ms(completed);
        if (a >= 0 && b >= a)
            printf("completed     %s (after %" PRId64 ".%03" PRId64 " s)\n",
                   sagactl_safe(completed), (b - a) / 1000, (b - a) % 1000);
        else
            printf("completed     %s\n", sagactl_safe(completed));
    } else {
        printf("completed     -\n");
    }
    print_trace(o);
    printf("\n%s%-12s  %-20s  %-21s  %s%s\n", sagactl_sgr(SGR_BOLD), "TIME", "SERVICE", "  EVENT",
           "SUMMARY", sagactl_sgr(SGR_RESET));
    json_array_foreach(tl, i, e)
    {
        const char *type = jget(e, "event_type");
        int comp_ev = json_is_true(json_object_get(e, "compensation"));
        saga_event_type_t t;
        char at[32], name[80];
        snprintf(name, sizeof(name), "%s%s", comp_ev ? "↩ " : "  ",
                 type ? sagactl_safe(type) : "?");
        printf("%s  %-20s  %s", api_clock(jget(e, "occurred_at"), at, sizeof(at)),
               jget(e, "service") ? jshow(e, "service") : "?",
               type && saga_event_type_parse(type, &t) == 0 ? sagactl_event_sgr(t) : "");
        pad(name, 21);
        printf("%s  %s\n", sagactl_sgr(SGR_RESET), jget(e, "summary") ? jshow(e, "summary") : "");
    }
    if (json_array_size(tl) == 0)
        printf("(no events yet)\n");
    if (json_is_true(json_object_get(o, "timeline_truncated")))
        printf("(only the first %zu events: the order has more than the API's "
               "ORDER_TIMELINE_MAX)\n",
               json_array_size(tl));
}

/* GET /orders/ID into *r; returns -1 on an unreachable API (message printed). */
static int fetch_order(const char *cmd, const char *id, struct sagactl_reply *r)
{
    char path[512];
    char *esc = curl_easy_escape(NULL, id, 0);
    if (!esc) {
        fprintf(stderr, "sagactl %s: out of memory\n", cmd);
        return -1;
    }
    snprintf(path, sizeof(path), "/orders/%s", esc);
    curl_free(esc);
    return sagactl_api(cmd, "GET", path, NULL, NULL, r);
}

/* 1 when the saga is over: an outcome, no compensation pending, the notification sent. */
static int saga_over(const json_t *o)
{
    const char *status = jget(o, "status"), *comp = jget(o, "compensation");
    json_t *e;
    size_t i;
    if (!status || !strcmp(status, "PENDING") || (comp && !strcmp(comp, "in_progress")))
        return 0;
    json_array_foreach(json_object_get(o, "timeline"), i, e)
    {
        const char *t = jget(e, "event_type");
        if (t && !strcmp(t, "NotificationSent"))
            return 1;
    }
    return 0;
}

/* --- sagactl get ---------------------------------------------------------------- */

static void get_usage(FILE *out)
{
    fprintf(out, "usage: sagactl get ORDER_ID [--json]\n"
                 "\n"
                 "Shows an order from the order API: status, reason, compensation state, total,\n"
                 "items, times, the order's trace (its id, and its link in the tracing UI from\n"
                 "TRACING_UI_URL or the API's trace_url) and the saga timeline (every event\n"
                 "seen, with its service; compensations marked with ↩). Times are UTC.\n"
                 "\n"
                 "  --json   print the API's JSON as it is (for jq)\n" SAGACTL_API_OPTIONS_HELP "\n"
                 "exit codes: 0 shown, 1 no such order or an API error, 64 bad usage, 69 the\n"
                 "order API could not be reached or verified (or answered 503)\n");
}

/*
 * Parses "ID [--json]" for command cmd: 0 with *id and *json set, or the exit code to
 * return (help shown: 0 is SAGACTL_EXIT_OK too, so *id stays NULL then).
 */
static int parse_id_json(const char *cmd, int argc, char **argv, void (*usage)(FILE *),
                         const char **id, int *json)
{
    *id = NULL;
    *json = 0;
    for (int i = 1; i < argc; i++) {
        if (is_help(argv[i])) {
            usage(stdout);
            return SAGACTL_EXIT_OK;
        } else if (!strcmp(argv[i], "--json")) {
            *json = 1;
        } else if (argv[i][0] != '-' && !*id) {
            *id = argv[i];
        } else {
            fprintf(stderr, "sagactl %s: unexpected '%s'\n", cmd, argv[i]);
            usage(stderr);
            return SAGACTL_EXIT_USAGE;
        }
    }
    if (!*id || !**id) {
        *id = NULL;
        usage(stderr);
        return SAGACTL_EXIT_USAGE;
    }
    return 0;
}

int sagactl_get(int argc, char **argv)
{
    const char *id;
    int json, rc;
    struct sagactl_reply r;

    if ((rc = parse_id_json("get", argc, argv, get_usage, &id, &json)) != 0 || !id)
        return rc;
    if (fetch_order("get", id, &r) != 0)
        return SAGACTL_EXIT_UNREACH;
    if (r.status == 200 && r.json) {
        if (json)
            sagactl_print_json(r.body);
        else
            print_order(r.json);
        rc = SAGACTL_EXIT_OK;
    } else if (r.status == 404) {
        fprintf(stderr, "sagactl get: no order %s\n", id);
        rc = SAGACTL_EXIT_FAILURE;
    } else {
        rc = sagactl_api_error("get", &r);
    }
    sagactl_reply_release(&r);
    return rc;
}

/* --- sagactl place -------------------------------------------------------------- */

static void place_usage(FILE *out)
{
    fprintf(out,
            "usage: sagactl place [--sku SKU[:QTY] ...] [--customer C] [--token T] [--country XX]\n"
            "                     [--key IDEMPOTENCY_KEY] [--wait [--timeout S]]\n"
            "                     [--declined | --insufficient-funds | --over-limit |\n"
            "                      --out-of-stock | --unshippable]\n"
            "\n"
            "Places an order through the order API and prints its id (only the id when\n"
            "stdout is not a terminal, so ID=$(sagactl place) works). Defaults: customer\n"
            "cust-alice, token tok_visa, one sku-book, shipped to a demo address in NL.\n"
            "While the API cannot be reached or answers 503 it tries again (4 attempts in all)\n"
            "with the same Idempotency-Key, so the order is placed at most once.\n"
            "\n"
            "  --sku SKU[:QTY]       an order line (repeatable; QTY defaults to 1); replaces the\n"
            "                        default line\n"
            "  --customer C          the customer id (cust-alice, cust-bob, cust-carol,\n"
            "                        cust-dave, cust-frugal)\n"
            "  --token T             the payment token (tok_visa, tok_mastercard, tok_amex, ...)\n"
            "  --country XX          the shipping country (ISO 3166-1 alpha-2)\n"
            "  --key K               the Idempotency-Key: the same key and body give the same\n"
            "                        order (default: a new UUID; every retry reuses the key)\n"
            "  --wait                wait until the saga is over (an outcome, every compensation\n"
            "                        done, the notification sent), then print the order like\n"
            "                        'sagactl get'\n"
            "  --timeout S           how long --wait waits (default 30)\n"
            "\n"
            "the deterministic failures (docs/API.md); options given explicitly win:\n"
            "  --declined            token tok_chargeDeclined: PAYMENT_FAILED, CARD_DECLINED\n"
            "  --insufficient-funds  token tok_chargeDeclinedInsufficientFunds\n"
            "  --over-limit          customer cust-frugal buying sku-headphones:\n"
            "                        CREDIT_LIMIT_EXCEEDED\n"
            "  --out-of-stock        a line of sku-sold-out: OUT_OF_STOCK\n"
            "  --unshippable         country AQ: SHIPMENT_FAILED, payment refunded\n"
            "\n" SAGACTL_API_OPTIONS_HELP "\n"
            "exit codes: 0 placed (with --wait: the saga is over, whatever its outcome),\n"
            "1 the API refused the order (its message on stderr) or --wait timed out,\n"
            "64 bad usage, 69 the order API could not be reached or verified (or answered\n"
            "503)\n");
}

struct line {
    char sku[128];
    long qty;
};

static int parse_line(const char *s, struct line *l)
{
    const char *colon = strrchr(s, ':');
    size_t n = colon ? (size_t)(colon - s) : strlen(s);
    char *end;
    if (n == 0 || n >= sizeof(l->sku))
        return -1;
    memcpy(l->sku, s, n);
    l->sku[n] = '\0';
    l->qty = 1;
    if (colon) {
        l->qty = strtol(colon + 1, &end, 10);
        if (end == colon + 1 || *end || l->qty < 1 || l->qty > 1000000)
            return -1;
    }
    return 0;
}

static char *place_body(const char *customer, const char *token, const char *country,
                        const struct line *lines, int nlines)
{
    json_t *items = json_array(), *o;
    char *s;
    for (int i = 0; i < nlines; i++)
        json_array_append_new(items, json_pack("{s:s, s:I}", "sku", lines[i].sku, "quantity",
                                               (json_int_t)lines[i].qty));
    o = json_pack("{s:s, s:s, s:s, s:o, s:{s:s, s:s, s:s, s:s, s:s}}", "customer_id", customer,
                  "currency", "EUR", "payment_token", token, "items", items, "shipping_address",
                  "recipient", "Ada Lovelace", "line1", "Main Street 1", "city", "Utrecht",
                  "postal_code", "3511 AB", "country", country);
    if (!o)
        return NULL;
    s = json_dumps(o, JSON_COMPACT);
    json_decref(o);
    return s;
}

/* Polls the order until its saga is over; prints it. */
static int place_wait(const char *id, long timeout_s)
{
    struct timespec start, now;
    struct sagactl_reply r;
    const char *status = "?";
    int rc = SAGACTL_EXIT_FAILURE;
    long elapsed_ms = 0;
    json_t *last = NULL;

    clock_gettime(CLOCK_MONOTONIC, &start);
    sagactl_catch_signals();
    for (;;) {
        if (fetch_order("place", id, &r) != 0) {
            rc = SAGACTL_EXIT_UNREACH;
            break;
        }
        if (r.status == 200 && r.json) {
            json_decref(last);
            last = json_incref(r.json);
            status = jget(last, "status") ? jget(last, "status") : "?";
            if (saga_over(last)) {
                sagactl_reply_release(&r);
                rc = SAGACTL_EXIT_OK;
                break;
            }
        } else if (r.status != 503) {
            sagactl_progress_clear();
            rc = sagactl_api_error("place", &r);
            sagactl_reply_release(&r);
            break;
        }
        sagactl_reply_release(&r);
        clock_gettime(CLOCK_MONOTONIC, &now);
        elapsed_ms = (now.tv_sec - start.tv_sec) * 1000 + (now.tv_nsec - start.tv_nsec) / 1000000;
        if (elapsed_ms >= timeout_s * 1000 || sagactl_interrupted)
            break;
        sagactl_progress("waiting for the saga of %.8s: %s, %zu event%s (%.1fs)", sagactl_safe(id),
                         sagactl_safe(status), json_array_size(json_object_get(last, "timeline")),
                         json_array_size(json_object_get(last, "timeline")) == 1 ? "" : "s",
                         (double)elapsed_ms / 1000.0);
        usleep(200 * 1000);
    }
    sagactl_progress_clear();
    if (last && rc != SAGACTL_EXIT_UNREACH)
        print_order(last);
    if (rc == SAGACTL_EXIT_FAILURE && (elapsed_ms >= timeout_s * 1000 || sagactl_interrupted))
        fprintf(stderr, "sagactl place: the saga of %s is not over after %.1fs (status %s)\n",
                sagactl_safe(id), (double)elapsed_ms / 1000.0, sagactl_safe(status));
    json_decref(last);
    return rc;
}

enum { POST_ATTEMPTS = 4 };

/*
 * POST path, sent again while the API cannot be reached or answers 503 (0.5 s, 1 s,
 * 2 s apart, POST_ATTEMPTS in all). Only for requests that are safe to repeat: an
 * order with its Idempotency-Key key (a retry returns the order the first attempt
 * placed, if it did, instead of placing a second one), or a cancellation.
 * 0 with the last answer in r, -1 when the API could not be reached at all.
 */
static int post_retrying(const char *cmd, const char *path, const char *body, const char *key,
                         struct sagactl_reply *r)
{
    for (int attempt = 1;; attempt++) {
        int rc = sagactl_api(cmd, "POST", path, body, key, r);
        /* (a certificate that did not verify will not verify the next time either) */
        if ((rc == 0 && r->status != 503) || attempt == POST_ATTEMPTS || sagactl_interrupted ||
            (rc != 0 && sagactl_api_not_sent()))
            return rc;
        if (rc == 0)
            sagactl_reply_release(r);
        fprintf(stderr, "sagactl %s: %s; retrying%s%s (%d of %d)\n", cmd,
                rc ? "no answer" : "the order API answered 503",
                key ? " with the same Idempotency-Key " : "", key ? key : "", attempt + 1,
                POST_ATTEMPTS);
        usleep(500u * 1000u << (attempt - 1));
    }
}

int sagactl_place(int argc, char **argv)
{
    const char *customer = "cust-alice", *token = "tok_visa", *country = "NL", *key = NULL;
    const char *sc_customer = NULL, *sc_token = NULL, *sc_country = NULL, *sc_sku = NULL;
    struct line lines[MAX_LINES];
    int nlines = 0, wait = 0, rc;
    long timeout_s = 30;
    struct sagactl_reply r;
    const char *id;
    char *body, generated_key[SAGA_UUID_LEN + 1];

    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (is_help(a)) {
            place_usage(stdout);
            return SAGACTL_EXIT_OK;
        } else if (!strcmp(a, "--sku") && v) {
            if (nlines == MAX_LINES || parse_line(v, &lines[nlines]) != 0) {
                fprintf(stderr,
                        "sagactl place: --sku expects SKU or SKU:QTY (at most %d), not "
                        "'%s'\n",
                        MAX_LINES, v);
                return SAGACTL_EXIT_USAGE;
            }
            nlines++;
            i++;
        } else if (!strcmp(a, "--customer") && v) {
            customer = v;
            i++;
        } else if (!strcmp(a, "--token") && v) {
            token = v;
            i++;
        } else if (!strcmp(a, "--country") && v) {
            country = v;
            i++;
        } else if (!strcmp(a, "--key") && v) {
            key = v;
            i++;
        } else if (!strcmp(a, "--timeout") && v) {
            if ((timeout_s = sagactl_arg_seconds("place", a, v, 86400)) < 0)
                return SAGACTL_EXIT_USAGE;
            i++;
        } else if (!strcmp(a, "--wait")) {
            wait = 1;
        } else if (!strcmp(a, "--declined")) {
            sc_token = "tok_chargeDeclined";
        } else if (!strcmp(a, "--insufficient-funds")) {
            sc_token = "tok_chargeDeclinedInsufficientFunds";
        } else if (!strcmp(a, "--over-limit")) {
            sc_customer = "cust-frugal";
            sc_sku = "sku-headphones";
        } else if (!strcmp(a, "--out-of-stock")) {
            sc_sku = "sku-sold-out";
        } else if (!strcmp(a, "--unshippable")) {
            sc_country = "AQ";
        } else {
            fprintf(stderr, "sagactl place: unexpected '%s'\n", a);
            place_usage(stderr);
            return SAGACTL_EXIT_USAGE;
        }
    }
    /* A shortcut sets what the option it stands for did not set explicitly. */
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--customer"))
            sc_customer = NULL;
        else if (!strcmp(argv[i], "--token"))
            sc_token = NULL;
        else if (!strcmp(argv[i], "--country"))
            sc_country = NULL;
    }
    customer = sc_customer ? sc_customer : customer;
    token = sc_token ? sc_token : token;
    country = sc_country ? sc_country : country;
    if (nlines == 0) {
        snprintf(lines[0].sku, sizeof(lines[0].sku), "%s", sc_sku ? sc_sku : "sku-book");
        lines[0].qty = 1;
        nlines = 1;
    }
    sagactl_api_as_customer(customer);
    if (!(body = place_body(customer, token, country, lines, nlines))) {
        fprintf(stderr, "sagactl place: the order cannot be written as JSON (not UTF-8?)\n");
        return SAGACTL_EXIT_USAGE;
    }
    /* Always a key, so that no retry (ours, or the user's after an unclear failure) can
     * place the order twice. */
    if (!key) {
        saga_uuid4(generated_key);
        key = generated_key;
    }
    {
        /* With an OTLP endpoint set, the order's trace starts here: a client span whose
         * context the request carries (docs/OBSERVABILITY.md). */
        char tp[56], err[256];
        struct saga_span span;
        if (saga_otel_init("sagactl", err, sizeof(err))) {
            fprintf(stderr, "sagactl place: %s\n", err);
            free(body);
            return SAGACTL_EXIT_USAGE;
        }
        saga_otel_traceparent_root(tp);
        if (saga_span_begin(&span, "POST /orders", SAGA_SPAN_CLIENT, tp, NULL))
            sagactl_api_traceparent = tp;
        rc = post_retrying("place", "/orders", body, key, &r);
        sagactl_api_traceparent = NULL;
        if (span.recording) {
            saga_span_str(&span, "http.request.method", "POST");
            saga_span_str(&span, "url.full", "/orders");
            if (rc == 0) {
                saga_span_int(&span, "http.response.status_code", r.status);
                if (jget(r.json, "order_id"))
                    saga_span_str(&span, "saga.order_id", jget(r.json, "order_id"));
            }
            if (rc != 0 || r.status >= 400)
                saga_span_error(&span, rc ? "no answer" : "HTTP %ld", rc ? 0L : (long)r.status);
            saga_span_end(&span);
        }
        saga_otel_shutdown(); /* sends the span, within OTEL_BSP_EXPORT_TIMEOUT */
    }
    free(body);
    if ((rc != 0 && !sagactl_api_not_sent()) || (rc == 0 && r.status == 503))
        fprintf(stderr,
                "sagactl place: whether the order was placed is not known; the same command with "
                "--key %s tries again without placing it twice\n",
                key);
    if (rc != 0)
        return SAGACTL_EXIT_UNREACH;
    id = jget(r.json, "order_id");
    if ((r.status != 200 && r.status != 201 && r.status != 202) || !id) {
        rc = sagactl_api_error("place", &r);
        sagactl_reply_release(&r);
        return rc;
    }
    if (sagactl_fancy()) {
        char money[48];
        printf("placed order %s%s%s (%s, %s)%s\n", sagactl_sgr(SGR_BOLD), sagactl_safe(id),
               sagactl_sgr(SGR_RESET),
               sagactl_money(json_integer_value(json_object_get(r.json, "total_amount")),
                             jget(r.json, "currency"), money, sizeof(money)),
               jget(r.json, "status") ? jshow(r.json, "status") : "?",
               r.status == 200 && key != generated_key
                   ? " - the order placed earlier with this Idempotency-Key"
                   : "");
    } else if (!wait) {
        printf("%s\n", sagactl_safe(id));
    }
    fflush(stdout);
    rc = wait ? place_wait(id, timeout_s) : SAGACTL_EXIT_OK;
    sagactl_reply_release(&r);
    return rc;
}

/* --- sagactl cancel ------------------------------------------------------------- */

static void cancel_usage(FILE *out)
{
    fprintf(out, "usage: sagactl cancel ORDER_ID [--json]\n"
                 "\n"
                 "Cancels a PENDING order (reason CUSTOMER_REQUEST) through the order API and\n"
                 "shows it like 'sagactl get'. A cancelled order is shown as it is; a CONFIRMED\n"
                 "one cannot be cancelled. Cancelling is safe to repeat, so while the API cannot\n"
                 "be reached or answers 503 it tries again (4 attempts in all).\n"
                 "\n"
                 "  --json   print the API's JSON as it is (for jq)\n" SAGACTL_API_OPTIONS_HELP "\n"
                 "exit codes: 0 the order is cancelled, 1 no such order, CONFIRMED, or an API\n"
                 "error, 64 bad usage, 69 the order API could not be reached or verified (or\n"
                 "answered 503)\n");
}

int sagactl_cancel(int argc, char **argv)
{
    const char *id;
    int json, rc;
    struct sagactl_reply r;
    char path[512], *esc;

    if ((rc = parse_id_json("cancel", argc, argv, cancel_usage, &id, &json)) != 0 || !id)
        return rc;
    if (!(esc = curl_easy_escape(NULL, id, 0))) {
        fprintf(stderr, "sagactl cancel: out of memory\n");
        return SAGACTL_EXIT_FAILURE;
    }
    snprintf(path, sizeof(path), "/orders/%s/cancel", esc);
    curl_free(esc);
    if (post_retrying("cancel", path, NULL, NULL, &r) != 0)
        return SAGACTL_EXIT_UNREACH;
    if (r.status == 200 && r.json) {
        if (json)
            sagactl_print_json(r.body);
        else
            print_order(r.json);
        rc = SAGACTL_EXIT_OK;
    } else {
        rc = sagactl_api_error("cancel", &r);
    }
    sagactl_reply_release(&r);
    return rc;
}

/* --- sagactl stuck -------------------------------------------------------------- */

static void stuck_usage(FILE *out)
{
    fprintf(out,
            "usage: sagactl stuck [--older-than S] [--json]\n"
            "\n"
            "Lists the sagas still PENDING more than S seconds (default 30) after the order\n"
            "was placed, with who owes each its next step, from its timeline and the saga's\n"
            "declaration (\"payment-service: PaymentAuthorized or PaymentFailed\"; see\n"
            "sagactl explain ORDER_ID for one saga in full).\n"
            "\n"
            "  --older-than S   the age from which a pending saga counts as stuck\n"
            "  --json           a JSON array of {order_id, created_at, age_seconds,\n"
            "                   waiting_on, last_event, last_event_at}\n" SAGACTL_API_OPTIONS_HELP
            "\n"
            "exit codes: 0 none stuck, 1 some are stuck (or an API error), 64 bad usage,\n"
            "69 the order API could not be reached or verified (or answered 503)\n");
}

/* The last event on a pending order's timeline (NULL: none). */
static const json_t *last_event(const json_t *order)
{
    const json_t *tl = json_object_get(order, "timeline");
    size_t n = json_array_size(tl);
    return n ? json_array_get(tl, n - 1) : NULL;
}

static void age_text(long s, char *out, size_t size)
{
    if (s < 120)
        snprintf(out, size, "%lds", s);
    else if (s < 7200)
        snprintf(out, size, "%ldm%02lds", s / 60, s % 60);
    else
        snprintf(out, size, "%ldh%02ldm", s / 3600, (s / 60) % 60);
}

int sagactl_stuck(int argc, char **argv)
{
    long older = 30;
    int json = 0, rc = SAGACTL_EXIT_OK, pages = 0;
    char cursor[64] = "", path[256];
    json_t *found = json_array();
    struct timespec wall;
    int64_t now_ms;

    for (int i = 1; i < argc; i++) {
        if (is_help(argv[i])) {
            stuck_usage(stdout);
            json_decref(found);
            return SAGACTL_EXIT_OK;
        } else if (!strcmp(argv[i], "--json")) {
            json = 1;
        } else if (!strcmp(argv[i], "--older-than") && i + 1 < argc) {
            if ((older = sagactl_arg_seconds("stuck", argv[i], argv[i + 1], 10L * 365 * 86400)) <
                0) {
                json_decref(found);
                return SAGACTL_EXIT_USAGE;
            }
            i++;
        } else {
            fprintf(stderr, "sagactl stuck: unexpected '%s'\n", argv[i]);
            stuck_usage(stderr);
            json_decref(found);
            return SAGACTL_EXIT_USAGE;
        }
    }
    clock_gettime(CLOCK_REALTIME, &wall);
    now_ms = (int64_t)wall.tv_sec * 1000 + wall.tv_nsec / 1000000;

    /* Every PENDING order, newest first, a page at a time. */
    do {
        struct sagactl_reply r;
        json_t *o, *next;
        size_t i;
        snprintf(path, sizeof(path), "/orders?status=PENDING&limit=100%s%s",
                 cursor[0] ? "&cursor=" : "", cursor);
        if (sagactl_api("stuck", "GET", path, NULL, NULL, &r) != 0) {
            rc = SAGACTL_EXIT_UNREACH;
            break;
        }
        if (r.status != 200 || !json_is_array(json_object_get(r.json, "orders"))) {
            rc = sagactl_api_error("stuck", &r);
            sagactl_reply_release(&r);
            break;
        }
        json_array_foreach(json_object_get(r.json, "orders"), i, o)
        {
            int64_t created = sagactl_parse_iso_ms(jget(o, "created_at"));
            if (created >= 0 && now_ms - created > older * 1000 && jget(o, "order_id"))
                json_array_append(found, o);
        }
        next = json_object_get(r.json, "next_cursor");
        if (json_is_string(next) && strlen(json_string_value(next)) < sizeof(cursor) &&
            strcmp(json_string_value(next), cursor))
            snprintf(cursor, sizeof(cursor), "%s", json_string_value(next));
        else
            cursor[0] = '\0';
        sagactl_reply_release(&r);
    } while (cursor[0] && ++pages < 10000);

    if (rc == SAGACTL_EXIT_OK) {
        json_t *out = json_array(), *o;
        size_t i;
        json_array_foreach(found, i, o)
        {
            const char *id = jget(o, "order_id");
            struct sagactl_reply r;
            const json_t *last;
            char wait[512];
            if (fetch_order("stuck", id, &r) != 0) {
                rc = SAGACTL_EXIT_UNREACH;
                break;
            }
            if (r.status == 200 && r.json && jget(r.json, "status") &&
                !strcmp(jget(r.json, "status"), "PENDING")) {
                int64_t created = sagactl_parse_iso_ms(jget(o, "created_at"));
                sagactl_waiting_text(r.json, wait, sizeof(wait));
                last = last_event(r.json);
                json_array_append_new(
                    out, json_pack("{s:s, s:s, s:I, s:s, s:s?, s:s?}", "order_id", id, "created_at",
                                   jget(o, "created_at"), "age_seconds",
                                   (json_int_t)((now_ms - created) / 1000), "waiting_on", wait,
                                   "last_event", last ? jget(last, "event_type") : NULL,
                                   "last_event_at", last ? jget(last, "occurred_at") : NULL));
            } else if (r.status != 200 && r.status != 404) {
                rc = sagactl_api_error("stuck", &r);
                sagactl_reply_release(&r);
                break;
            }
            sagactl_reply_release(&r);
        }
        if (rc == SAGACTL_EXIT_OK) {
            if (json) {
                char *s = json_dumps(out, JSON_INDENT(2));
                sagactl_print_json(s ? s : "[]");
                free(s);
            } else if (json_array_size(out) == 0) {
                printf("no saga has been PENDING for more than %lds\n", older);
            } else {
                printf("%s%-36s  %-8s  %-52s  %s%s\n", sagactl_sgr(SGR_BOLD), "ORDER", "AGE",
                       "WAITING ON", "LAST STEP", sagactl_sgr(SGR_RESET));
                json_array_foreach(out, i, o)
                {
                    char age[32], at[32];
                    const char *le = jget(o, "last_event");
                    age_text((long)json_integer_value(json_object_get(o, "age_seconds")), age,
                             sizeof(age));
                    printf("%-36s  %s%-8s%s  %-52s  %s%s%s\n", jshow(o, "order_id"),
                           sagactl_sgr(SGR_YELLOW), age, sagactl_sgr(SGR_RESET),
                           jshow(o, "waiting_on"), le ? sagactl_safe(le) : "-", le ? " at " : "",
                           le ? api_clock(jget(o, "last_event_at"), at, sizeof(at)) : "");
                }
            }
            if (json_array_size(out) > 0)
                rc = SAGACTL_EXIT_FAILURE;
        }
        json_decref(out);
    }
    json_decref(found);
    return rc;
}
