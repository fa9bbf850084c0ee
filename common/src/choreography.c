/* The saga's choreography as data (saga/choreography.h): the one table and what reads it. */
#include "saga/choreography.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "saga/topology.h"

#define B(t) SAGA_EV_BIT(SAGA_EV_##t)

/*
 * Checked against each service's handlers (services/<name>/main.c, the .handlers table) and
 * what each handler emits; a change there is a change here (saga_service_main refuses a
 * suite service whose handlers and this table differ).
 */
const struct saga_reaction saga_reactions[] = {
    /* order-service: starts the saga, decides its outcome, keeps the timeline. */
    {"order", SAGA_EV_COUNT, B(ORDER_PLACED), 0, 0, 1, "POST /orders places the order"},
    {"order", SAGA_EV_ORDER_PLACED, 0, B(ORDER_CANCELLED), 1, 1,
     "the sweeper cancels it after SAGA_TIMEOUT (TIMEOUT), or the customer does "
     "(CUSTOMER_REQUEST)"},
    {"order", SAGA_EV_ORDER_CANCELLED, 0, 0, 0, 0, "records it on the timeline"},
    {"order", SAGA_EV_INVENTORY_RESERVED, 0, 0, 0, 0, "records it on the timeline"},
    {"order", SAGA_EV_INVENTORY_REJECTED, 0, B(ORDER_CANCELLED), 1, 0,
     "cancels the order (OUT_OF_STOCK)"},
    {"order", SAGA_EV_INVENTORY_RELEASED, 0, 0, 0, 0, "records it on the timeline"},
    {"order", SAGA_EV_PAYMENT_AUTHORIZED, 0, 0, 0, 0, "records it on the timeline"},
    {"order", SAGA_EV_PAYMENT_FAILED, 0, B(ORDER_CANCELLED), 1, 0,
     "cancels the order (PAYMENT_FAILED)"},
    {"order", SAGA_EV_PAYMENT_REFUNDED, 0, 0, 0, 0, "records it on the timeline"},
    {"order", SAGA_EV_SHIPMENT_SCHEDULED, B(ORDER_CONFIRMED), 0, 1, 0, "confirms the order"},
    {"order", SAGA_EV_SHIPMENT_FAILED, 0, B(ORDER_CANCELLED), 1, 0,
     "cancels the order (SHIPMENT_FAILED)"},
    {"order", SAGA_EV_SHIPMENT_CANCELLED, 0, 0, 0, 0, "records it on the timeline"},
    {"order", SAGA_EV_NOTIFICATION_SENT, 0, 0, 0, 0, "records it on the timeline"},

    /* inventory-service */
    {"inventory", SAGA_EV_ORDER_PLACED, B(INVENTORY_RESERVED), B(INVENTORY_REJECTED), 0, 0,
     "reserves every line, or none"},
    {"inventory", SAGA_EV_PAYMENT_FAILED, B(INVENTORY_RELEASED), 0, 1, 0,
     "releases the reservation (PAYMENT_FAILED)"},
    {"inventory", SAGA_EV_ORDER_CANCELLED, B(INVENTORY_RELEASED), 0, 1, 0,
     "releases the reservation if still held (ORDER_CANCELLED)"},
    {"inventory", SAGA_EV_ORDER_CONFIRMED, 0, 0, 0, 0, "the reservation becomes shipped stock"},

    /* payment-service */
    {"payment", SAGA_EV_ORDER_PLACED, 0, 0, 0, 0, "records the amount and token"},
    {"payment", SAGA_EV_INVENTORY_RESERVED, B(PAYMENT_AUTHORIZED), B(PAYMENT_FAILED), 0, 0,
     "charges the order"},
    {"payment", SAGA_EV_ORDER_CANCELLED, B(PAYMENT_REFUNDED), 0, 1, 0,
     "refunds a captured payment"},

    /* shipping-service */
    {"shipping", SAGA_EV_ORDER_PLACED, 0, 0, 0, 0, "records the address"},
    {"shipping", SAGA_EV_PAYMENT_AUTHORIZED, B(SHIPMENT_SCHEDULED), B(SHIPMENT_FAILED), 0, 0,
     "schedules the shipment"},
    {"shipping", SAGA_EV_ORDER_CANCELLED, B(SHIPMENT_CANCELLED), 0, 1, 0,
     "cancels a scheduled shipment"},

    /* notification-service: the first outcome only. */
    {"notification", SAGA_EV_ORDER_PLACED, 0, 0, 0, 0, "records the customer"},
    {"notification", SAGA_EV_ORDER_CONFIRMED, B(NOTIFICATION_SENT), 0, 0, 0, "tells the customer"},
    {"notification", SAGA_EV_ORDER_CANCELLED, B(NOTIFICATION_SENT), 0, 0, 0, "tells the customer"},
};
const size_t saga_nreactions = sizeof(saga_reactions) / sizeof(saga_reactions[0]);

const struct saga_compensation saga_compensations[] = {
    {SAGA_EV_INVENTORY_RELEASED, SAGA_EV_INVENTORY_RESERVED},
    {SAGA_EV_PAYMENT_REFUNDED, SAGA_EV_PAYMENT_AUTHORIZED},
    {SAGA_EV_SHIPMENT_CANCELLED, SAGA_EV_SHIPMENT_SCHEDULED},
};
const size_t saga_ncompensations = sizeof(saga_compensations) / sizeof(saga_compensations[0]);

saga_event_type_t saga_choreo_undoes(saga_event_type_t t)
{
    for (size_t i = 0; i < saga_ncompensations; i++)
        if (saga_compensations[i].undo == t)
            return saga_compensations[i].step;
    return SAGA_EV_COUNT;
}

/* The topology name of a service given by name or program. */
static const char *service_name(const char *service)
{
    const struct saga_service_info *s = saga_service_find(service);
    return s ? s->name : service;
}

static const char *program_of(const char *name)
{
    const struct saga_service_info *s = saga_service_find(name);
    return s ? s->program : name;
}

unsigned saga_choreo_consumes(const char *service)
{
    const char *name = service_name(service);
    unsigned bits = 0;
    for (size_t i = 0; name && i < saga_nreactions; i++)
        if (!saga_reactions[i].origin && !strcmp(saga_reactions[i].service, name))
            bits |= SAGA_EV_BIT(saga_reactions[i].on);
    return bits;
}

unsigned saga_choreo_emits(const char *service)
{
    const char *name = service_name(service);
    unsigned bits = 0;
    for (size_t i = 0; name && i < saga_nreactions; i++)
        if (!strcmp(saga_reactions[i].service, name))
            bits |= saga_reactions[i].success | saga_reactions[i].failure;
    return bits;
}

int saga_choreo_inputs(const char *service, const char **out, int max)
{
    unsigned consumes = saga_choreo_consumes(service);
    int n = 0;
    for (int s = 0; s < SAGA_SERVICE_COUNT; s++) {
        if (!(consumes & saga_services[s].events))
            continue;
        if (n < max)
            out[n] = saga_services[s].topic;
        n++;
    }
    return n;
}

int saga_choreo_allows(const char *service, saga_event_type_t cause, saga_event_type_t type)
{
    const char *name = service_name(service);
    for (size_t i = 0; name && i < saga_nreactions; i++) {
        const struct saga_reaction *r = &saga_reactions[i];
        if (!strcmp(r->service, name) && r->on == cause &&
            ((r->success | r->failure) & SAGA_EV_BIT(type)))
            return 1;
    }
    return 0;
}

/* 1 when every event of bits undoes a step. */
static int all_compensations(unsigned bits)
{
    for (int t = 0; t < SAGA_EV_COUNT; t++)
        if ((bits & SAGA_EV_BIT(t)) && saga_choreo_undoes((saga_event_type_t)t) == SAGA_EV_COUNT)
            return 0;
    return bits != 0;
}

int saga_choreo_expected(const char *status, const int seen[SAGA_EV_COUNT],
                         struct saga_expectation *out, int max)
{
    int pending = status && !strcmp(status, "PENDING"), n = 0;

    for (size_t i = 0; i < saga_nreactions; i++) {
        const struct saga_reaction *r = &saga_reactions[i];
        unsigned emits = r->success | r->failure;
        int done = 0, step_done = 0, owed;
        if (r->origin || !emits || !seen[r->on])
            continue;
        for (int t = 0; t < SAGA_EV_COUNT; t++)
            if (emits & SAGA_EV_BIT(t)) {
                saga_event_type_t step = saga_choreo_undoes((saga_event_type_t)t);
                done |= seen[t] > 0;
                step_done |= step != SAGA_EV_COUNT && seen[step] > 0;
            }
        if (done)
            continue;
        if (all_compensations(emits))
            owed = step_done; /* nothing to undo, nothing owed */
        else if (pending)
            owed = 1; /* every step, and the order's decision */
        else          /* the outcome is decided: the forward steps may never come (a tombstone stops
                       * them), what answers the outcome itself is owed */
            owed = !r->optional && (SAGA_CHOREO_OUTCOMES & SAGA_EV_BIT(r->on)) != 0;
        if (!owed)
            continue;
        if (n < max) {
            out[n].r = r;
            out[n].events = emits;
        }
        n++;
    }
    return n;
}

/* Appends s to out (size bytes, *len used), cut short at its end, always terminated. */
static void append(char *out, size_t size, size_t *len, const char *s)
{
    size_t add = strlen(s);
    if (*len + 1 >= size)
        return;
    if (add > size - *len - 1)
        add = size - *len - 1;
    memcpy(out + *len, s, add);
    *len += add;
    out[*len] = '\0';
}

void saga_choreo_expectation_text(const struct saga_expectation *x, char *out, size_t size)
{
    size_t len = 0;
    int first = 1;
    if (!size)
        return;
    out[0] = '\0';
    append(out, size, &len, program_of(x->r->service));
    append(out, size, &len, ": ");
    for (int t = 0; t < SAGA_EV_COUNT; t++)
        if (x->events & SAGA_EV_BIT(t)) {
            if (!first)
                append(out, size, &len, " or ");
            append(out, size, &len, saga_event_type_name((saga_event_type_t)t));
            first = 0;
        }
}

static json_t *event_names(unsigned bits)
{
    json_t *a = json_array();
    for (int t = 0; t < SAGA_EV_COUNT; t++)
        if (bits & SAGA_EV_BIT(t))
            json_array_append_new(a, json_string(saga_event_type_name((saga_event_type_t)t)));
    return a;
}

json_t *saga_choreo_expected_json(const struct saga_expectation *x, int n)
{
    json_t *a = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(a, json_pack("{s:s, s:o, s:s, s:s}", "service",
                                           program_of(x[i].r->service), "events",
                                           event_names(x[i].events), "after",
                                           saga_event_type_name(x[i].r->on), "does", x[i].r->does));
    return a;
}

static int parse_type(const char *name, saga_event_type_t *t)
{
    return name && saga_event_type_parse(name, t) == 0 && *t < SAGA_EV_COUNT;
}

int saga_choreo_check_timeline(const struct saga_tl_event *e, size_t n, char *why, size_t why_size)
{
    for (size_t i = 0; i < n; i++) {
        saga_event_type_t type, cause = SAGA_EV_COUNT, step;
        const char *cause_name = NULL;
        int found_step = 0;

        if (!parse_type(e[i].event_type, &type)) {
            snprintf(why, why_size, "%s is no event of the saga",
                     e[i].event_type ? e[i].event_type : "(null)");
            return -1;
        }
        if (e[i].causation_id && *e[i].causation_id)
            for (size_t j = 0; j < n; j++)
                if (e[j].event_id && !strcmp(e[j].event_id, e[i].causation_id) &&
                    parse_type(e[j].event_type, &cause))
                    cause_name = e[j].event_type;
        if (!(saga_choreo_emits(e[i].service) & SAGA_EV_BIT(type))) {
            snprintf(why, why_size, "%s from %s: no step of %s emits it", e[i].event_type,
                     e[i].service ? e[i].service : "(no producer)",
                     e[i].service ? e[i].service : "anyone");
            return -1;
        }
        if (cause_name && !saga_choreo_allows(e[i].service, cause, type)) {
            snprintf(why, why_size, "%s from %s in answer to %s: no step allows it",
                     e[i].event_type, e[i].service, cause_name);
            return -1;
        }
        if (!cause_name && (!e[i].causation_id || !*e[i].causation_id) &&
            !saga_choreo_allows(e[i].service, SAGA_EV_COUNT, type)) {
            snprintf(why, why_size, "%s from %s has no cause, and only a saga's start may",
                     e[i].event_type, e[i].service);
            return -1;
        }
        step = saga_choreo_undoes(type);
        if (step == SAGA_EV_COUNT)
            continue;
        for (size_t j = 0; j < n; j++) {
            saga_event_type_t t;
            found_step |= parse_type(e[j].event_type, &t) && t == step;
        }
        if (!found_step) {
            snprintf(why, why_size, "%s without %s: a compensation of a step never done",
                     e[i].event_type, saga_event_type_name(step));
            return -1;
        }
    }
    return 0;
}

json_t *saga_choreo_json(void)
{
    json_t *root = json_object(), *services = json_array(), *comp = json_array();

    for (int s = 0; s < SAGA_SERVICE_COUNT; s++) {
        const struct saga_service_info *info = &saga_services[s];
        json_t *reactions = json_array(), *origins = json_array();
        for (size_t i = 0; i < saga_nreactions; i++) {
            const struct saga_reaction *r = &saga_reactions[i];
            json_t *o;
            if (strcmp(r->service, info->name))
                continue;
            o = json_pack(
                "{s:o, s:o, s:o, s:b, s:s}", "on",
                r->on < SAGA_EV_COUNT ? json_string(saga_event_type_name(r->on)) : json_null(),
                "success", event_names(r->success), "failure", event_names(r->failure),
                "may_emit_nothing", r->optional || !(r->success | r->failure), "does", r->does);
            json_array_append_new(r->origin ? origins : reactions, o);
        }
        json_array_append_new(services,
                              json_pack("{s:s, s:o, s:o, s:o}", "service", info->program,
                                        "consumes", event_names(saga_choreo_consumes(info->name)),
                                        "reactions", reactions, "origins", origins));
    }
    for (size_t i = 0; i < saga_ncompensations; i++)
        json_array_append_new(
            comp, json_pack("{s:s, s:s}", "event", saga_event_type_name(saga_compensations[i].undo),
                            "undoes", saga_event_type_name(saga_compensations[i].step)));
    json_object_set_new(root, "services", services);
    json_object_set_new(root, "compensations", comp);
    json_object_set_new(root, "outcomes", event_names(SAGA_CHOREO_OUTCOMES));
    json_object_set_new(root, "deadline",
                        json_pack("{s:I, s:I, s:s}", "saga_timeout_ms",
                                  (json_int_t)SAGA_TIMEOUT_DEFAULT_MS, "sweep_interval_ms",
                                  (json_int_t)SAGA_SWEEP_INTERVAL_DEFAULT_MS, "by",
                                  "order-service's sweeper: OrderCancelled(TIMEOUT)"));
    return root;
}

/* --- Mermaid ----------------------------------------------------------------------- */

struct buf {
    char *p;
    size_t len, cap;
    int oom;
};

static void put(struct buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct buf *b, const char *fmt, ...)
{
    va_list ap;
    int w;
    if (b->oom)
        return;
    for (;;) {
        va_start(ap, fmt);
        w = vsnprintf(b->p ? b->p + b->len : NULL, b->p ? b->cap - b->len : 0, fmt, ap);
        va_end(ap);
        if (w < 0) {
            b->oom = 1;
            return;
        }
        if (b->p && (size_t)w < b->cap - b->len) {
            b->len += (size_t)w;
            return;
        }
        {
            size_t cap = (b->cap ? b->cap * 2 : 1024) + (size_t)w;
            char *p = realloc(b->p, cap);
            if (!p) {
                b->oom = 1;
                return;
            }
            b->p = p;
            b->cap = cap;
        }
    }
}

char *saga_choreo_mermaid(void)
{
    struct buf b = {0};

    put(&b, "flowchart TD\n");
    put(&b, "    start([POST /orders])\n");
    put(&b, "    sweeper([customer cancel, or SAGA_TIMEOUT %ds: the sweeper])\n",
        SAGA_TIMEOUT_DEFAULT_MS / 1000);
    for (size_t i = 0; i < saga_nreactions; i++) {
        const struct saga_reaction *r = &saga_reactions[i];
        const char *from = r->origin ? (r->on == SAGA_EV_COUNT ? "start" : "sweeper")
                                     : saga_event_type_name(r->on);
        for (int t = 0; t < SAGA_EV_COUNT; t++) {
            const char *to = saga_event_type_name((saga_event_type_t)t);
            if ((r->success | r->failure) & SAGA_EV_BIT(t))
                put(&b, "    %s -->|%s| %s\n", from, program_of(r->service), to);
        }
    }
    for (size_t i = 0; i < saga_ncompensations; i++)
        put(&b, "    %s -. undoes .-> %s\n", saga_event_type_name(saga_compensations[i].undo),
            saga_event_type_name(saga_compensations[i].step));
    put(&b, "    classDef failure stroke:#c62828,color:#c62828\n");
    put(&b, "    classDef undo stroke:#ef6c00,color:#ef6c00,stroke-dasharray:4\n");
    put(&b, "    class InventoryRejected,PaymentFailed,ShipmentFailed,OrderCancelled failure\n");
    put(&b, "    class ");
    for (size_t i = 0; i < saga_ncompensations; i++)
        put(&b, "%s%s", i ? "," : "", saga_event_type_name(saga_compensations[i].undo));
    put(&b, " undo\n");
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}
