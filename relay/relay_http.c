#include "relay_http.h"

#include <stdio.h>
#include <stdlib.h>

#include <jansson.h>

#include "saga/http.h"
#include "saga/log.h"
#include "saga/otel.h"

struct relay_http {
    struct saga_http *server;
    int n;
    relay_view_fn *view;
    void *arg;
};

static void reply_readyz(struct relay_http *h, struct saga_http_response *resp)
{
    /* Ready when every source is either led here or watched as a standby. */
    json_t *srcs = json_object();
    int ok = 1;
    for (int i = 0; i < h->n; i++) {
        struct relay_view v;
        h->view(h->arg, i, &v);
        ok &= v.connected;
        json_object_set_new(srcs, v.name,
                            json_string(v.leader      ? "leader"
                                        : v.connected ? "standby"
                                                      : "disconnected"));
    }
    saga_http_reply_json(
        resp, ok ? 200 : 503,
        json_pack("{s:s, s:o}", "status", ok ? "ready" : "not ready", "sources", srcs));
}

static void reply_metrics(struct relay_http *h, struct saga_http_response *resp)
{
    struct saga_text t = {0};
    struct relay_view *v = calloc(h->n > 0 ? (size_t)h->n : 1, sizeof(*v));

    if (!v)
        abort();
    for (int i = 0; i < h->n; i++)
        h->view(h->arg, i, &v[i]);
    saga_http_write_metrics(&t, "outbox-relay");
    saga_otel_write_metrics(&t, "outbox-relay");
    saga_metric_head(&t, "saga_relay_leader", "gauge",
                     "1 when this relay leads the source (publishes), 0 as a standby.");
    for (int i = 0; i < h->n; i++)
        saga_text_printf(&t, "saga_relay_leader{source=\"%s\"} %d\n", v[i].name, v[i].leader);
    saga_metric_head(&t, "saga_outbox_backlog", "gauge",
                     "Outbox rows not yet published (measured by the leader every 2 s).");
    for (int i = 0; i < h->n; i++)
        if (v[i].backlog_known)
            saga_text_printf(&t, "saga_outbox_backlog{source=\"%s\"} %lld\n", v[i].name,
                             v[i].backlog);
    saga_metric_head(&t, "saga_outbox_oldest_pending_seconds", "gauge",
                     "Age of the oldest unpublished outbox row (0 when none).");
    for (int i = 0; i < h->n; i++)
        if (v[i].backlog_known)
            saga_text_printf(&t, "saga_outbox_oldest_pending_seconds{source=\"%s\"} %.3f\n",
                             v[i].name, (double)v[i].oldest_ms / 1000.0);
    saga_metric_head(&t, "saga_relay_published_total", "counter",
                     "Outbox rows published and marked.");
    for (int i = 0; i < h->n; i++)
        saga_text_printf(&t, "saga_relay_published_total{source=\"%s\"} %lld\n", v[i].name,
                         v[i].published);
    saga_metric_head(&t, "saga_relay_rows_refused_total", "counter",
                     "Outbox rows naming a topic their source does not own: never published.");
    for (int i = 0; i < h->n; i++)
        saga_text_printf(&t, "saga_relay_rows_refused_total{source=\"%s\"} %lld\n", v[i].name,
                         v[i].refused);
    saga_metric_head(&t, "saga_relay_delivery_failures_total", "counter",
                     "Rounds in which Kafka did not confirm a row (it is sent again).");
    for (int i = 0; i < h->n; i++)
        saga_text_printf(&t, "saga_relay_delivery_failures_total{source=\"%s\"} %lld\n", v[i].name,
                         v[i].delivery_failures);
    saga_metric_head(&t, "saga_relay_publish_latency_seconds", "histogram",
                     "From the outbox row's commit to Kafka's acknowledgement.");
    for (int i = 0; i < h->n; i++) {
        char labels[160];
        snprintf(labels, sizeof(labels), "source=\"%s\"", v[i].name);
        saga_hist_write(&t, "saga_relay_publish_latency_seconds", labels, v[i].latency);
    }
    free(v);
    saga_http_reply(resp, 200, "text/plain; version=0.0.4; charset=utf-8", t.data, t.len);
}

/* locality: the HTTP server's threads. */
static void handler(void *arg, const struct saga_http_request *req, struct saga_http_response *resp)
{
    struct relay_http *h = arg;

    if (saga_http_route(req, "GET", "/healthz"))
        saga_http_reply_json(resp, 200,
                             json_pack("{s:s, s:s}", "status", "ok", "service", "outbox-relay"));
    else if (saga_http_route(req, "GET", "/readyz"))
        reply_readyz(h, resp);
    else if (saga_http_route(req, "GET", "/metrics"))
        reply_metrics(h, resp);
}

struct relay_http *relay_http_start(const struct saga_config *cfg, int nsources,
                                    relay_view_fn *view, void *arg)
{
    struct saga_http_conf hc = {0};
    struct relay_http *h = calloc(1, sizeof(*h));
    char err[512];

    if (!h)
        return NULL;
    h->n = nsources;
    h->view = view;
    h->arg = arg;
    hc.host = cfg->http_host;
    hc.port = cfg->http_port;
    hc.handler = handler;
    hc.arg = h;
    hc.threads = 2;
    if (saga_http_conf_from_env(&hc, 0, err, sizeof(err)) != SAGA_OK ||
        saga_http_start(&h->server, &hc, err, sizeof(err)) != SAGA_OK) {
        saga_log(SAGA_LOG_ERROR, NULL, "%s", err);
        free(h);
        return NULL;
    }
    saga_log(SAGA_LOG_INFO, NULL, "listening on http://%s:%d (healthz, readyz, metrics)",
             cfg->http_host, saga_http_port(h->server));
    return h;
}

void relay_http_stop(struct relay_http *h)
{
    if (!h)
        return;
    saga_http_stop(h->server);
    free(h);
}
