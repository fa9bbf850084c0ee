/*
 * The saga's choreography, declared once (docs/SERVICES.md, "The choreography"): for every
 * service the events it consumes and what it may emit in answer to each (the success and the
 * failure branch, or nothing), which event undoes which step, and the saga's deadline.
 *
 * Everything that used to restate it by hand reads this table instead: the consumer
 * subscriptions, the ACL plan and the DLQ replay targets (saga_choreo_inputs; topology.h's
 * events per topic are checked against it by tests/unit/test_choreography.c, and
 * saga_service_main refuses a suite service whose handlers differ from it), the order
 * service's compensation state, `sagactl stuck` and `sagactl explain`, the order API's `waiting`
 * field and so the saga page, the conformance kit, the Mermaid diagram in docs/SERVICES.md
 * (`sagactl choreography --mermaid`, checked for drift by the test choreography_docs) and
 * the e2e suite's timeline check (saga_choreo_check_timeline).
 *
 * Why a C table and not a file the build embeds: every program already links saga_common,
 * the table names the events by their saga_event_type_t (a typo does not compile) and needs
 * no parser, no file to ship and no failure mode at start-up. `sagactl choreography --json`
 * prints it for anything that is not C.
 *
 * Everything here is constant: any thread may call these functions.
 */
#ifndef SAGA_CHOREOGRAPHY_H
#define SAGA_CHOREOGRAPHY_H

#include <stddef.h>
#include <stdint.h>

#include <jansson.h>

#include "saga/events.h"

/* The saga's deadline: order-service cancels an order still PENDING this long after it was
 * placed (SAGA_TIMEOUT's default), looking every SAGA_SWEEP_INTERVAL (its default). */
#define SAGA_TIMEOUT_DEFAULT_MS        30000
#define SAGA_SWEEP_INTERVAL_DEFAULT_MS 1000

#define SAGA_EV_BIT(t) (1u << (t))

/*
 * One reaction: service, on consuming `on`, may emit one of `success` or one of `failure`
 * (bit sets of event types). `optional`: it may also emit nothing (a compensation with no
 * step to undo, an outcome decided by someone else first). A reaction with nothing to emit
 * records what it needs (event-carried state). `origin`: the service emits it by itself
 * (the order API, the sweeper), not in answer to an event it consumes; `on` is then the
 * event its causation_id names (SAGA_EV_COUNT: none).
 */
struct saga_reaction {
    const char *service; /* saga/topology.h's name: "payment" */
    saga_event_type_t on;
    unsigned success;
    unsigned failure;
    int optional;
    int origin;
    const char *does; /* one line: "charges the order" */
};

extern const struct saga_reaction saga_reactions[];
extern const size_t saga_nreactions;

/* Each compensation and the step it undoes. */
struct saga_compensation {
    saga_event_type_t undo; /* PaymentRefunded */
    saga_event_type_t step; /* PaymentAuthorized */
};

extern const struct saga_compensation saga_compensations[];
extern const size_t saga_ncompensations;

/* The saga's outcomes (order-service): OrderConfirmed and OrderCancelled. */
#define SAGA_CHOREO_OUTCOMES                                                                       \
    (SAGA_EV_BIT(SAGA_EV_ORDER_CONFIRMED) | SAGA_EV_BIT(SAGA_EV_ORDER_CANCELLED))

/* The step t undoes, or SAGA_EV_COUNT when t is no compensation. */
saga_event_type_t saga_choreo_undoes(saga_event_type_t t);

/* The events service (name "payment" or program "payment-service") consumes / may emit. */
unsigned saga_choreo_consumes(const char *service);
unsigned saga_choreo_emits(const char *service);

/*
 * The topics service's consumer group must read (each consumed event's topic, once, in the
 * order of saga_topics_all); up to max into out, returns how many there are.
 */
int saga_choreo_inputs(const char *service, const char **out, int max);

/* 1 when service (name or program) may emit type in answer to cause (SAGA_EV_COUNT: an
 * event with no cause on the timeline), per the table. */
int saga_choreo_allows(const char *service, saga_event_type_t cause, saga_event_type_t type);

/*
 * What a saga waits for: the reactions owed, given the order's status ("PENDING", ...) and
 * seen[t], how many events of type t its timeline holds. A reaction is owed when its event
 * has been seen and none it may emit has; while the order is PENDING every such step is
 * owed, after the outcome only compensations (for a step done) and what answers the
 * outcome itself (the notification). Fills up to max into out, returns how many.
 */
struct saga_expectation {
    const struct saga_reaction *r;
    unsigned events; /* r->success | r->failure */
};
int saga_choreo_expected(const char *status, const int seen[SAGA_EV_COUNT],
                         struct saga_expectation *out, int max);

/* "payment-service: PaymentAuthorized or PaymentFailed" into out. */
void saga_choreo_expectation_text(const struct saga_expectation *x, char *out, size_t size);

/*
 * The expectations as JSON (new reference): [{"service": "payment-service", "events":
 * ["PaymentAuthorized", "PaymentFailed"], "after": "InventoryReserved", "does": "..."}].
 */
json_t *saga_choreo_expected_json(const struct saga_expectation *x, int n);

/* One event of a saga timeline, as the order API lists it. */
struct saga_tl_event {
    const char *event_type; /* "PaymentRefunded" */
    const char *service;    /* its producer: "payment-service" */
    const char *event_id;
    const char *causation_id; /* NULL or "" when none */
};

/*
 * Checks a timeline against the table: every event's type is one its producer may emit,
 * and in answer to its cause when the cause is on the timeline too; every compensation has
 * its step on the timeline. 0, or -1 with the first violation in why.
 */
int saga_choreo_check_timeline(const struct saga_tl_event *e, size_t n, char *why, size_t why_size);

/* The whole table as JSON (new reference), `sagactl choreography --json`. */
json_t *saga_choreo_json(void);

/* The table as a Mermaid flowchart (malloc'd, NULL when out of memory): what
 * docs/SERVICES.md shows between its choreography markers. */
char *saga_choreo_mermaid(void);

#endif
