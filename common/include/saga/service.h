/*
 * The skeleton every saga service runs on: configuration, database migrations
 * (the common tables and the service's own), the consumer runtime with the
 * service's handlers, and an HTTP server with /healthz, /readyz and /metrics
 * (plus the service's own routes). SIGTERM/SIGINT stop it gracefully.
 *
 *   static const struct saga_service svc = {
 *       .program = &payment_program, .info_name = "payment",
 *       .migrations = payment_migrations, .nmigrations = (int)(sizeof(payment_migrations) /
 * sizeof(payment_migrations[0])), .handlers = {[SAGA_EV_INVENTORY_RESERVED] = on_reserved, ...},
 *   };
 *   int main(int argc, char **argv) { return saga_service_main(&svc, argc, argv); }
 */
#ifndef SAGA_SERVICE_H
#define SAGA_SERVICE_H

#include <signal.h>
#include <stdatomic.h>

#include "saga/config.h"
#include "saga/consumer.h"
#include "saga/http.h"
#include "saga/migrate.h"
#include "saga/program.h"

struct saga_service {
    const struct saga_program *program;
    const char *info_name; /* "payment": its topics, group and DLQ from saga/topology.h */
    const struct saga_migration *migrations;
    int nmigrations;
    /* What its consumer group reads; NULL: the topics of the events the saga's declaration
     * (saga/choreography.h) has info_name consume, which are also what its Kafka ACLs allow. */
    const char *const *topics;
    int ntopics;
    saga_handler_fn handlers[SAGA_EV_COUNT];
    unsigned releases_deferred; /* see struct saga_consumer_conf */
    void *arg;                  /* passed to the handlers and hooks below */

    /* After the migrations, before consuming (threads, pools); may be NULL. */
    saga_err_t (*start)(void *arg, const struct saga_config *cfg, char *errstr, size_t errstr_size);
    /* After the consumer and the HTTP server stopped; may be NULL. */
    void (*stop)(void *arg);
    /* The service's own routes; leaving resp->status 0 falls through to the
     * common ones (and then 404). May be NULL. */
    saga_http_handler_fn http;
    /* Appends the service's own series to /metrics; may be NULL. */
    void (*metrics)(void *arg, struct saga_text *out);
    /* After each committed transaction of handled events, on the consumer thread (see
     * struct saga_consumer_conf); may be NULL. */
    void (*after_commit)(void *arg);
    size_t http_max_body; /* default 64 KiB */
};

/* Runs the service until SIGTERM/SIGINT; returns the process exit code. */
int saga_service_main(const struct saga_service *svc, int argc, char **argv);

/*
 * The stop flag the signal handlers set, read by every thread of the service (the
 * consumer's, the HTTP server's, a service's own): an atomic, since a volatile
 * sig_atomic_t is only safe between a signal handler and one thread. Lock-free, so a
 * signal handler may store to it (C11 7.14.1.1). A service may set it too (any thread).
 */
extern atomic_int saga_service_stopping;

/*
 * Connects to url, waiting and retrying with backoff while PostgreSQL is not
 * reachable (logging each failure), until it succeeds, a permanent error
 * (authentication, missing database) or saga_service_stopping. NULL then.
 */
PGconn *saga_service_connect(const char *url, char *errstr, size_t errstr_size);

#endif
