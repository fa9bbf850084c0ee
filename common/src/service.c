#include "saga/service.h"

#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "saga/choreography.h"
#include "saga/clock.h"
#include "saga/log.h"
#include "saga/metrics.h"
#include "saga/otel.h"
#include "saga/pg.h"
#include "saga/topology.h"

atomic_int saga_service_stopping;
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "a signal handler stores to saga_service_stopping");

struct runner {
    const struct saga_service *svc;
    const struct saga_config *cfg;
    struct saga_consumer *consumer;
};

static void on_signal(int sig)
{
    (void)sig;
    atomic_store(&saga_service_stopping, 1);
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

PGconn *saga_service_connect(const char *url, char *errstr, size_t errstr_size)
{
    long backoff = 200;
    for (;;) {
        saga_err_t err = SAGA_OK;
        PGconn *conn = saga_pg_connect(url, &err, errstr, errstr_size);
        if (conn)
            return conn;
        if (err != SAGA_ERR_TRANSIENT || saga_service_stopping)
            return NULL;
        saga_warn("database not reachable, retrying in %ld ms: %s", backoff, errstr);
        for (long waited = 0; waited < backoff && !saga_service_stopping; waited += 100)
            sleep_ms(100);
        if (saga_service_stopping)
            return NULL;
        backoff = backoff * 2 > 5000 ? 5000 : backoff * 2;
    }
}

/*
 * Whether the database answers a new connection, asked at most once per
 * READY_CHECK_MS however many probe /readyz: a connection per probe made 16
 * pollers slow every POST twelvefold. Probes arriving while one asks wait for
 * its answer.
 */
#define READY_CHECK_MS 1000
/* locality: the HTTP threads (/readyz). locks: takes mu, held across the ping. */
static int database_reachable(const char *url)
{
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    static int64_t checked_ms; /* under mu */
    static int reachable;      /* under mu */
    int64_t now;
    int ok;

    pthread_mutex_lock(&mu);
    now = saga_mono_ms();
    if (!checked_ms || now - checked_ms >= READY_CHECK_MS) {
        reachable = saga_pg_ping(url);
        checked_ms = saga_mono_ms();
    }
    ok = reachable;
    pthread_mutex_unlock(&mu);
    return ok;
}

/* locality: the HTTP threads (/metrics). locks: none held; the consumer's figures are
 * read under its own lock (saga_consumer_write_metrics), the rest are atomics. */
static void common_metrics(struct runner *r, struct saga_text *t)
{
    const char *svc = r->cfg->program;

    saga_consumer_write_metrics(r->consumer, t);
    saga_http_write_metrics(t, svc);
    saga_otel_write_metrics(t, svc);
    saga_produced_write(t, svc);
    saga_metric_head(t, "saga_consumer_joined", "gauge",
                     "1 once the consumer group gave this member work.");
    saga_text_printf(t, "saga_consumer_joined{service=\"%s\"} %d\n", svc,
                     saga_consumer_joined(r->consumer));
}

static void http_handler(void *arg, const struct saga_http_request *req,
                         struct saga_http_response *resp)
{
    struct runner *r = arg;

    if (r->svc->http) {
        r->svc->http(r->svc->arg, req, resp);
        if (resp->status)
            return;
    }
    if (saga_http_route(req, "GET", "/healthz")) {
        saga_http_reply_json(resp, 200,
                             json_pack("{s:s, s:s}", "status", "ok", "service", r->cfg->program));
    } else if (saga_http_route(req, "GET", "/readyz")) {
        /* The database answers a new connection (asked at most once a second), and the
         * process's own connections work: none hung past PG_QUERY_TIMEOUT or broke
         * without a success since. */
        int db = saga_pg_healthy() && database_reachable(r->cfg->database_url);
        int joined = saga_consumer_joined(r->consumer);
        int ok = db && joined && !saga_service_stopping;
        saga_http_reply_json(resp, ok ? 200 : 503,
                             json_pack("{s:s, s:s, s:b, s:b}", "status", ok ? "ready" : "not ready",
                                       "service", r->cfg->program, "database", db,
                                       "consumer_joined", joined));
    } else if (saga_http_route(req, "GET", "/metrics")) {
        struct saga_text t = {0};
        common_metrics(r, &t);
        if (r->svc->metrics)
            r->svc->metrics(r->svc->arg, &t);
        saga_http_reply(resp, 200, "text/plain; version=0.0.4; charset=utf-8", t.data, t.len);
    } else if (strcmp(req->path, "/healthz") == 0 || strcmp(req->path, "/readyz") == 0 ||
               strcmp(req->path, "/metrics") == 0) {
        saga_http_reply_error(resp, 405, "method_not_allowed", "%s takes GET", req->path);
        saga_http_add_header(resp, "Allow", "GET");
    }
}

int saga_service_main(const struct saga_service *svc, int argc, char **argv)
{
    const struct saga_service_info *info = saga_service_find(svc->info_name);
    const char *inputs[SAGA_SERVICE_COUNT]; /* what it reads, from the saga's declaration */
    struct saga_consumer_conf cc = {0};
    struct saga_http_conf hc = {0};
    struct saga_http *http = NULL;
    struct runner r = {svc, NULL, NULL};
    struct saga_config cfg;
    struct sigaction sa;
    char err[512];
    PGconn *conn;
    int code, started = 0;

    if (!saga_program_init(svc->program, argc, argv, &cfg, &code))
        return code;
    r.cfg = &cfg;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    code = SAGA_EXIT_FAILURE;
    /* A suite service consumes what the choreography declares (saga/choreography.h): a
     * handler added or dropped without the declaration would make every tool that reads it
     * (sagactl explain, the saga page, the ACL plan) wrong. */
    if (info && !svc->topics) {
        unsigned handled = 0, declared = saga_choreo_consumes(info->name);
        for (int t = 0; t < SAGA_EV_COUNT; t++)
            if (svc->handlers[t])
                handled |= SAGA_EV_BIT(t);
        if (handled != declared) {
            for (int t = 0; t < SAGA_EV_COUNT; t++)
                if ((handled ^ declared) & SAGA_EV_BIT(t))
                    saga_error("%s %s %s, but saga/choreography.h says it %s", info->program,
                               handled & SAGA_EV_BIT(t) ? "handles" : "does not handle",
                               saga_event_type_name((saga_event_type_t)t),
                               handled & SAGA_EV_BIT(t) ? "does not" : "does");
            goto out;
        }
    }
    if (!(conn = saga_service_connect(cfg.database_url, err, sizeof(err)))) {
        if (saga_service_stopping) {
            code = SAGA_EXIT_OK;
            goto out;
        }
        saga_error("cannot connect to the database: %s", err);
        goto out;
    }
    if (saga_pg_migrate(conn, saga_common_migrations, saga_common_migration_count, NULL, err,
                        sizeof(err)) ||
        (svc->nmigrations &&
         saga_pg_migrate(conn, svc->migrations, svc->nmigrations, NULL, err, sizeof(err)))) {
        saga_error("database migration failed: %s", err);
        PQfinish(conn);
        goto out;
    }
    PQfinish(conn);

    if (svc->start) {
        if (svc->start(svc->arg, &cfg, err, sizeof(err))) {
            saga_error("start: %s", err);
            goto out;
        }
        started = 1;
    }

    cc.cfg = &cfg;
    cc.group = info->group;
    cc.dlq_topic = info->dlq_topic;
    cc.topics = svc->topics ? svc->topics : inputs;
    cc.ntopics =
        svc->topics ? svc->ntopics : saga_choreo_inputs(info->name, inputs, SAGA_SERVICE_COUNT);
    memcpy(cc.handlers, svc->handlers, sizeof(cc.handlers));
    cc.arg = svc->arg;
    cc.releases_deferred = svc->releases_deferred;
    cc.stop = &saga_service_stopping;
    cc.after_commit = svc->after_commit;
    if (saga_consumer_new(&r.consumer, &cc, err, sizeof(err))) {
        saga_error("consumer: %s", err);
        goto out;
    }

    hc.host = cfg.http_host;
    hc.port = cfg.http_port;
    hc.max_body = svc->http_max_body;
    hc.handler = http_handler;
    hc.arg = &r;
    /* A service with an API of its own gets the guards of one a browser can reach. */
    if (saga_http_conf_from_env(&hc, svc->http != NULL, err, sizeof(err)) ||
        saga_http_start(&http, &hc, err, sizeof(err))) {
        saga_error("%s", err);
        code = SAGA_EXIT_CONFIG;
        goto out;
    }
    saga_info("listening on %s://%s:%d (%s); consuming as %s", saga_http_scheme(http),
              cfg.http_host, saga_http_port(http),
              saga_http_internal_port(http) ? "healthz, readyz; metrics on the internal listener"
                                            : "healthz, readyz, metrics",
              info->group);

    code = saga_consumer_run(r.consumer);
    saga_info("stopping");

out:
    saga_http_stop(http);
    if (started && svc->stop)
        svc->stop(svc->arg);
    if (r.consumer)
        saga_consumer_destroy(r.consumer);
    saga_otel_shutdown(); /* exports what is queued, within OTEL_BSP_EXPORT_TIMEOUT */
    saga_config_release(&cfg);
    return code;
}
