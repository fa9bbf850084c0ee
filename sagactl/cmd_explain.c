/*
 * sagactl explain ORDER_ID [--json]            what a saga did, what it waits for, and when
 *                                              the sweeper cancels it
 * sagactl choreography [--json | --mermaid]    the saga as declared (saga/choreography.h)
 *
 * Both read the one declaration of the saga; explain asks the order API (ORDER_API_URL) for
 * the order, so it needs no Kafka configuration.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>

#include "saga/choreography.h"
#include "sagactl.h"

static const char *jget(const json_t *o, const char *key)
{
    return json_string_value(json_object_get(o, key));
}

static int is_help(const char *a)
{
    return !strcmp(a, "--help") || !strcmp(a, "-h");
}

int sagactl_expected(const json_t *order, struct saga_expectation *out, int max)
{
    int seen[SAGA_EV_COUNT] = {0};
    json_t *e;
    size_t i;

    json_array_foreach(json_object_get(order, "timeline"), i, e)
    {
        saga_event_type_t t;
        if (jget(e, "event_type") && saga_event_type_parse(jget(e, "event_type"), &t) == 0 &&
            t < SAGA_EV_COUNT)
            seen[t]++;
    }
    return saga_choreo_expected(jget(order, "status"), seen, out, max);
}

void sagactl_waiting_text(const json_t *order, char *out, size_t size)
{
    struct saga_expectation x[16];
    int n = sagactl_expected(order, x, 16);
    size_t len = 0;

    out[0] = '\0';
    if (n == 0)
        snprintf(out, size, "nobody (the sweeper decides)");
    for (int i = 0; i < n && i < 16 && len < size; i++) {
        char one[256];
        saga_choreo_expectation_text(&x[i], one, sizeof(one));
        len += (size_t)snprintf(out + len, size - len, "%s%s", i ? "; " : "", one);
    }
}

/* "12 s", "4m05s": a duration for people. */
static void duration_text(long long ms, char *out, size_t size)
{
    long long s = (ms + 999) / 1000;
    if (s < 120)
        snprintf(out, size, "%lld s", s);
    else if (s < 7200)
        snprintf(out, size, "%lldm%02llds", s / 60, s % 60);
    else
        snprintf(out, size, "%lldh%02lldm", s / 3600, (s / 60) % 60);
}

/* --- sagactl explain -------------------------------------------------------------- */

static void explain_usage(FILE *out)
{
    fprintf(out, "usage: sagactl explain ORDER_ID [--json]\n"
                 "\n"
                 "Explains a saga from the order API and the saga's declaration\n"
                 "(sagactl choreography): the steps done (compensations marked with what they\n"
                 "undo), the steps expected next with who owes them (\"payment-service:\n"
                 "PaymentAuthorized or PaymentFailed\"), and for a PENDING order the time left\n"
                 "before order-service's sweeper cancels it (SAGA_TIMEOUT).\n"
                 "\n"
                 "  --json   {order_id, status, reason, done: [{event_type, service, occurred_at,\n"
                 "           undoes}], waiting_for: [{service, events, after, does}],\n"
                 "           deadline_in_ms, saga_timeout_ms}\n" SAGACTL_API_OPTIONS_HELP "\n"
                 "exit codes: 0 explained, 1 no such order or an API error, 64 bad usage, 69 the\n"
                 "order API could not be reached or verified (or answered 503)\n");
}

static json_t *explain_json(const json_t *o)
{
    struct saga_expectation x[16];
    json_t *waiting = json_object_get(o, "waiting"), *done = json_array(), *e;
    json_t *deadline = json_object_get(waiting, "deadline_in_ms");
    json_t *timeout = json_object_get(waiting, "saga_timeout_ms");
    int n = sagactl_expected(o, x, 16);
    size_t i;

    json_array_foreach(json_object_get(o, "timeline"), i, e)
    {
        saga_event_type_t t = SAGA_EV_COUNT, step;
        if (jget(e, "event_type"))
            saga_event_type_parse(jget(e, "event_type"), &t);
        step = t < SAGA_EV_COUNT ? saga_choreo_undoes(t) : SAGA_EV_COUNT;
        json_array_append_new(done, json_pack("{s:s?, s:s?, s:s?, s:o}", "event_type",
                                              jget(e, "event_type"), "service", jget(e, "service"),
                                              "occurred_at", jget(e, "occurred_at"), "undoes",
                                              step < SAGA_EV_COUNT
                                                  ? json_string(saga_event_type_name(step))
                                                  : json_null()));
    }
    return json_pack("{s:s?, s:s?, s:O?, s:o, s:o, s:O?, s:O?}", "order_id", jget(o, "order_id"),
                     "status", jget(o, "status"), "reason", json_object_get(o, "reason"), "done",
                     done, "waiting_for", saga_choreo_expected_json(x, n < 16 ? n : 16),
                     "deadline_in_ms", json_is_integer(deadline) ? deadline : json_null(),
                     "saga_timeout_ms", timeout ? timeout : json_null());
}

static void explain_print(const json_t *x)
{
    const char *status = jget(x, "status");
    json_t *done = json_object_get(x, "done"), *w = json_object_get(x, "waiting_for"), *e;
    json_t *deadline = json_object_get(x, "deadline_in_ms");
    json_t *timeout = json_object_get(x, "saga_timeout_ms");
    char text[64], at[32];
    size_t i;

    printf("%sorder %s%s  %s%s%s", sagactl_sgr(SGR_BOLD), sagactl_safe(jget(x, "order_id")),
           sagactl_sgr(SGR_RESET), sagactl_sgr(SGR_BOLD), sagactl_safe(status ? status : "?"),
           sagactl_sgr(SGR_RESET));
    if (jget(x, "reason"))
        printf(" (%s)", sagactl_safe(jget(x, "reason")));
    printf("\n\ndone:\n");
    json_array_foreach(done, i, e)
    {
        int64_t ms = sagactl_parse_iso_ms(jget(e, "occurred_at"));
        saga_event_type_t t = SAGA_EV_COUNT;
        const char *type = jget(e, "event_type");
        if (type)
            saga_event_type_parse(type, &t);
        printf("  %s  %s%-18s%s  ", ms >= 0 ? sagactl_clock(ms, at, sizeof(at)) : "?",
               t < SAGA_EV_COUNT ? sagactl_event_sgr(t) : "", type ? sagactl_safe(type) : "?",
               sagactl_sgr(SGR_RESET));
        if (jget(e, "undoes"))
            printf("%-22s  ↩ undoes %s", jget(e, "service") ? sagactl_safe(jget(e, "service")) : "",
                   jget(e, "undoes"));
        else
            printf("%s", jget(e, "service") ? sagactl_safe(jget(e, "service")) : "");
        printf("\n");
    }
    printf("\nwaiting for:\n");
    if (json_array_size(w) == 0)
        printf("  nothing: %s\n", status && !strcmp(status, "PENDING")
                                      ? "no step is owed, the sweeper decides"
                                      : "the saga is over");
    json_array_foreach(w, i, e)
    {
        json_t *ev;
        size_t k;
        printf("  %s%s%s: ", sagactl_sgr(SGR_YELLOW), sagactl_safe(jget(e, "service")),
               sagactl_sgr(SGR_RESET));
        json_array_foreach(json_object_get(e, "events"), k, ev)
            printf("%s%s", k ? " or " : "", json_string_value(ev));
        printf("  (after %s: %s)\n", jget(e, "after"), jget(e, "does"));
    }
    if (json_is_integer(deadline)) {
        long long left = json_integer_value(deadline);
        duration_text(left, text, sizeof(text));
        if (left > 0)
            printf("\n%stimes out in %s%s: order-service's sweeper cancels it (TIMEOUT) unless "
                   "an outcome comes first (SAGA_TIMEOUT %lld s)\n",
                   sagactl_sgr(SGR_BOLD), text, sagactl_sgr(SGR_RESET),
                   (long long)json_integer_value(timeout) / 1000);
        else
            printf("\n%stimed out%s: order-service's sweeper cancels it at its next look\n",
                   sagactl_sgr(SGR_BOLD), sagactl_sgr(SGR_RESET));
    }
}

int sagactl_explain(int argc, char **argv)
{
    const char *id = NULL;
    int json = 0, rc;
    struct sagactl_reply r;
    char path[512], *esc;

    for (int i = 1; i < argc; i++) {
        if (is_help(argv[i])) {
            explain_usage(stdout);
            return SAGACTL_EXIT_OK;
        } else if (!strcmp(argv[i], "--json")) {
            json = 1;
        } else if (argv[i][0] != '-' && !id && argv[i][0]) {
            id = argv[i];
        } else {
            fprintf(stderr, "sagactl explain: unexpected '%s'\n", argv[i]);
            explain_usage(stderr);
            return SAGACTL_EXIT_USAGE;
        }
    }
    if (!id) {
        explain_usage(stderr);
        return SAGACTL_EXIT_USAGE;
    }
    if (!(esc = curl_easy_escape(NULL, id, 0))) {
        fprintf(stderr, "sagactl explain: out of memory\n");
        return SAGACTL_EXIT_FAILURE;
    }
    snprintf(path, sizeof(path), "/orders/%s", esc);
    curl_free(esc);
    if (sagactl_api("explain", "GET", path, NULL, NULL, &r) != 0)
        return SAGACTL_EXIT_UNREACH;
    if (r.status == 200 && r.json) {
        json_t *x = explain_json(r.json);
        if (json) {
            char *s = json_dumps(x, JSON_INDENT(2));
            sagactl_print_json(s ? s : "{}");
            free(s);
        } else {
            explain_print(x);
        }
        json_decref(x);
        rc = SAGACTL_EXIT_OK;
    } else if (r.status == 404) {
        fprintf(stderr, "sagactl explain: no order %s\n", sagactl_safe(id));
        rc = SAGACTL_EXIT_FAILURE;
    } else {
        rc = sagactl_api_error("explain", &r);
    }
    sagactl_reply_release(&r);
    return rc;
}

/* --- sagactl choreography --------------------------------------------------------- */

static void choreography_usage(FILE *out)
{
    fprintf(out, "usage: sagactl choreography [--json | --mermaid]\n"
                 "\n"
                 "Prints the saga as declared once in the code (common/src/choreography.c): for\n"
                 "every service the events it consumes and what it may emit in answer, what\n"
                 "undoes what, and the deadline. --mermaid prints the flowchart of\n"
                 "docs/SERVICES.md (the test choreography_docs keeps the two equal).\n"
                 "\n"
                 "exit codes: 0 printed, 64 bad usage\n");
}

int sagactl_choreography(int argc, char **argv)
{
    int mode = 0; /* 0 text, 1 JSON, 2 Mermaid */

    for (int i = 1; i < argc; i++) {
        if (is_help(argv[i])) {
            choreography_usage(stdout);
            return SAGACTL_EXIT_OK;
        } else if (!strcmp(argv[i], "--json")) {
            mode = 1;
        } else if (!strcmp(argv[i], "--mermaid")) {
            mode = 2;
        } else {
            fprintf(stderr, "sagactl choreography: unexpected '%s'\n", argv[i]);
            choreography_usage(stderr);
            return SAGACTL_EXIT_USAGE;
        }
    }
    if (mode == 2) {
        char *m = saga_choreo_mermaid();
        if (!m)
            return SAGACTL_EXIT_FAILURE;
        fputs(m, stdout);
        free(m);
    } else if (mode == 1) {
        json_t *j = saga_choreo_json();
        char *s = json_dumps(j, JSON_INDENT(2));
        printf("%s\n", s ? s : "{}");
        free(s);
        json_decref(j);
    } else {
        for (size_t i = 0; i < saga_nreactions; i++) {
            const struct saga_reaction *r = &saga_reactions[i];
            struct saga_expectation x = {r, r->success | r->failure};
            char what[256];
            saga_choreo_expectation_text(&x, what, sizeof(what));
            if (!x.events)
                snprintf(what, sizeof(what), "%s-service: nothing", r->service);
            printf("%-18s -> %-60s %s%s\n",
                   r->on < SAGA_EV_COUNT ? saga_event_type_name(r->on) : "(start)", what,
                   r->origin     ? "[by itself] "
                   : r->optional ? "[or nothing] "
                                 : "",
                   r->does);
        }
        printf("\n");
        for (size_t i = 0; i < saga_ncompensations; i++)
            printf("%s undoes %s\n", saga_event_type_name(saga_compensations[i].undo),
                   saga_event_type_name(saga_compensations[i].step));
        printf("\ndeadline: order-service's sweeper cancels a saga PENDING for SAGA_TIMEOUT "
               "(default %d s), looking every SAGA_SWEEP_INTERVAL (default %d s)\n",
               SAGA_TIMEOUT_DEFAULT_MS / 1000, SAGA_SWEEP_INTERVAL_DEFAULT_MS / 1000);
    }
    return SAGACTL_EXIT_OK;
}
