/*
 * A small HTTP/1.1 server on libmicrohttpd for every process: /healthz, /readyz
 * and /metrics of each service (docs/OBSERVABILITY.md) and the order API (docs/API.md).
 *
 * Every connection has a thread of its own (at most max_connections, fewer when
 * RLIMIT_NOFILE does not leave descriptors for that many; max_per_client from
 * one client); at most `threads` handlers run at once, the others wait their
 * turn. A request must arrive whole within request_timeout_ms of the
 * connection's start (or of the previous response's end); the handler's time
 * and a stream's do not count: a client trickling bytes cannot hold a thread
 * longer than that. A client, and a principal (saga_http_set_principal), may
 * keep max_streams_per_client streams open; a stream whose client went away is
 * ended within a stream callback's wait (docs/SECURITY.md).
 *
 * A client is an IPv4 address or an IPv6 /64; behind a proxy of
 * trusted_proxies, the right-most address of X-Forwarded-For that is not one of
 * them (the proxy's own connections are held to max_per_proxy). An answer must be
 * taken within response_timeout_ms. An internal listener (internal_addr) answers
 * /healthz, /readyz and /metrics with limits of its own (SAGA_HTTP_INTERNAL_*), so
 * that a flood of the public port, or one peer of the internal one, cannot fail a probe;
 * /metrics then leaves the public port. The
 * handler gets the whole body (up to max_body bytes: larger bodies get 413
 * without reaching it) and fills a response. Handlers may block (a database
 * call). A response may also be a stream (saga_http_reply_stream, e.g.
 * server-sent events): its callback runs on the connection's own thread after
 * the handler returned, so it occupies no handler turn while it waits.
 *
 *   static void handle(void *arg, const struct saga_http_request *req,
 *                      struct saga_http_response *resp)
 *   {
 *       if (saga_http_route(req, "GET", "/ping"))
 *           saga_http_reply_text(resp, 200, "pong\n");
 *   }
 */
#ifndef SAGA_HTTP_H
#define SAGA_HTTP_H

#include <stdarg.h>
#include <stddef.h>
#include <sys/types.h>

#include <jansson.h>

#include "saga/err.h"

struct MHD_Connection;
struct saga_text;

struct saga_http_request {
    const char *method; /* "GET" */
    const char *path;   /* "/orders/123", without the query string */
    const char *body;   /* NUL-terminated copy of the body ("" when none) */
    size_t body_len;
    struct MHD_Connection *conn;
};

/* A query argument ("?status=PENDING") or NULL. */
const char *saga_http_query(const struct saga_http_request *req, const char *key);
/* A request header (case-insensitive name) or NULL. */
const char *saga_http_header(const struct saga_http_request *req, const char *name);
/* 1 if req is method + path exactly. */
int saga_http_route(const struct saga_http_request *req, const char *method, const char *path);

#define SAGA_HTTP_MAX_HEADERS 8
/* Open connections at most by default (each has a thread); more are refused. */
#define SAGA_HTTP_MAX_CONNECTIONS 512
/* The internal listener's connections at most. */
#define SAGA_HTTP_INTERNAL_CONNECTIONS 16
/* On the internal listener: connections of one peer, and the time to read a request
 * (probes and scrapes send a few lines; a peer cannot starve the kubelet's probes). */
#define SAGA_HTTP_INTERNAL_PER_CLIENT 4
#define SAGA_HTTP_INTERNAL_REQUEST_MS 2000
/* Defaults of struct saga_http_conf's limits (HTTP_* variables, docs/CONFIGURATION.md). */
#define SAGA_HTTP_MAX_PER_CLIENT         32
#define SAGA_HTTP_REQUEST_TIMEOUT_MS     10000
#define SAGA_HTTP_RESPONSE_TIMEOUT_MS    30000
#define SAGA_HTTP_MAX_STREAMS_PER_CLIENT 8

/*
 * A streamed body: fills buf with up to max bytes and returns how many, 0 when
 * nothing is ready yet (it is called again), or one of the values below. It
 * runs on the connection's own thread and may block, but briefly (a second at
 * most), so that a stopping server is not kept waiting; it should end the
 * stream (SAGA_HTTP_STREAM_END) once the process is stopping.
 */
typedef ssize_t (*saga_http_stream_fn)(void *arg, char *buf, size_t max);
#define SAGA_HTTP_STREAM_END   ((ssize_t)-1) /* the body is complete */
#define SAGA_HTTP_STREAM_ERROR ((ssize_t)-2) /* abort: the connection is closed */

struct saga_http_response {
    int status; /* 0 until a handler replies: the server then answers 404 */
    char *body; /* malloc'd, owned by the response */
    size_t len;
    const char *content_type;
    struct {
        char name[40];
        char value[256];
    } headers[SAGA_HTTP_MAX_HEADERS];
    int nheaders;
    /* Who the response is for (saga_http_set_principal), "" when nobody in particular. */
    char principal[96];
    /* A streamed body instead of body (saga_http_reply_stream). */
    saga_http_stream_fn stream_read;
    void (*stream_free)(void *arg);
    void *stream_arg;
};

/* Replaces any body set before. */
void saga_http_reply(struct saga_http_response *resp, int status, const char *content_type,
                     char *body, size_t len);
void saga_http_reply_text(struct saga_http_response *resp, int status, const char *text);
/* Serializes (and releases) json. */
void saga_http_reply_json(struct saga_http_response *resp, int status, json_t *json);
/* {"error": code, "message": "..."} */
void saga_http_reply_error(struct saga_http_response *resp, int status, const char *code,
                           const char *fmt, ...) __attribute__((format(printf, 4, 5)));
void saga_http_add_header(struct saga_http_response *resp, const char *name, const char *value);
/*
 * Replies with a body of unknown length (chunked) that read_cb produces until
 * it returns SAGA_HTTP_STREAM_END. free_cb(arg) (may be NULL) runs exactly
 * once when the connection is done with it, also if the reply is never sent
 * or is replaced by another saga_http_reply* call.
 */
void saga_http_reply_stream(struct saga_http_response *resp, int status, const char *content_type,
                            saga_http_stream_fn read_cb, void (*free_cb)(void *arg), void *arg);

/*
 * The authenticated principal the response is for ("customer:cust-alice"): a
 * stream counts against that principal's max_streams_per_client as well as its
 * client's, so that one customer cannot hold every stream from many addresses.
 */
void saga_http_set_principal(struct saga_http_response *resp, const char *principal);

/* Why a request or connection was refused: saga_http_refused_total{reason}. */
typedef enum saga_http_refusal {
    SAGA_HTTP_REFUSED_PER_CLIENT_CAP,       /* a client's connections */
    SAGA_HTTP_REFUSED_CONNECTION_CAP,       /* all connections */
    SAGA_HTTP_REFUSED_STREAM_CAP,           /* a client's streams */
    SAGA_HTTP_REFUSED_PRINCIPAL_STREAM_CAP, /* a principal's streams */
    SAGA_HTTP_REFUSED_DEADLINE,             /* no whole request within request_timeout_ms */
    SAGA_HTTP_REFUSED_HOST,                 /* 421 */
    SAGA_HTTP_REFUSED_ORIGIN,               /* 403 */
    SAGA_HTTP_REFUSED_FORM,                 /* 415 */
    SAGA_HTTP_REFUSED_TOO_LARGE,            /* 413 */
    SAGA_HTTP_REFUSED_AUTH,                 /* 401, counted by the API */
    SAGA_HTTP_REFUSED_DESCRIPTORS,          /* no descriptor left for a connection */
    SAGA_HTTP_REFUSED_PER_PROXY_CAP,        /* a trusted proxy's connections */
    SAGA_HTTP_REFUSED_RESPONSE_DEADLINE,    /* an answer not taken within response_timeout_ms */
    SAGA_HTTP_REFUSED_N
} saga_http_refusal_t;

/* Counts a refusal (any thread). */
void saga_http_count_refused(saga_http_refusal_t why);
/* saga_http_refused_total of this process, for /metrics (any thread). */
void saga_http_write_metrics(struct saga_text *t, const char *service);

typedef void (*saga_http_handler_fn)(void *arg, const struct saga_http_request *req,
                                     struct saga_http_response *resp);

struct saga_http_conf {
    const char *host; /* "127.0.0.1", "0.0.0.0", "::" or a name */
    int port;         /* 0: any free port (see saga_http_port) */
    size_t max_body;  /* default 64 KiB */
    int threads;      /* handlers running at once, default 4 (streams do not count) */
    saga_http_handler_fn handler;
    void *arg;
    /* Limits per client address; 0: the SAGA_HTTP_* defaults. */
    int max_per_client;         /* open connections; more are closed at once */
    long request_timeout_ms;    /* to read a request, not reset by each byte */
    int max_streams_per_client; /* open streams; more get 429 */
    int max_connections;        /* 0: SAGA_HTTP_MAX_CONNECTIONS */
    /* Connections from one trusted proxy (its clients have their own caps); 0: half
     * of max_connections, so one peer in trusted_proxies cannot hold them all. */
    int max_per_proxy;
    /* To deliver an answer (not a stream) once queued: a client that reads it slowly
     * (pipelining requests, say) does not hold its connection past this. */
    long response_timeout_ms;
    /* Comma-separated addresses and CIDRs whose X-Forwarded-For names the client. */
    const char *trusted_proxies;
    /* "host:port" of the internal listener (/healthz, /readyz, /metrics), or NULL. */
    const char *internal_addr;
    /*
     * The guards of an API a browser can reach (0: off). The Host header must name
     * localhost, an IP address, the listen host or one of allowed_hosts (else 421:
     * DNS rebinding); POST, PUT, PATCH and DELETE must come without an Origin, from
     * the same origin or from one of allowed_origins (else 403), and not as a form
     * (a form's content type gets 415): cross-site request forgery.
     */
    int browser_guards;
    const char *allowed_hosts;   /* comma-separated host names, "*" any; may be NULL */
    const char *allowed_origins; /* comma-separated "scheme://host[:port]"; may be NULL */
    /* PEM files: the server speaks https only (both, or neither). */
    const char *tls_cert;
    const char *tls_key;
};

/*
 * Fills conf's limits from HTTP_MAX_CONNECTIONS, HTTP_MAX_CONNECTIONS_PER_CLIENT,
 * HTTP_REQUEST_TIMEOUT, HTTP_MAX_STREAMS_PER_CLIENT, HTTP_TRUSTED_PROXIES and
 * HTTP_INTERNAL_ADDR and, when api, turns the browser guards on with
 * API_ALLOWED_HOSTS, API_ALLOWED_ORIGINS, API_TLS_CERT and API_TLS_KEY. The strings
 * point into the environment.
 */
saga_err_t saga_http_conf_from_env(struct saga_http_conf *conf, int api, char *errstr,
                                   size_t errstr_size);

struct saga_http;

/*
 * Starts the server (and its internal listener). The first start in a process
 * raises the soft RLIMIT_NOFILE to the hard limit.
 */
saga_err_t saga_http_start(struct saga_http **out, const struct saga_http_conf *conf, char *errstr,
                           size_t errstr_size);
int saga_http_port(const struct saga_http *h);
/* The internal listener's port, 0 when there is none. */
int saga_http_internal_port(const struct saga_http *h);
/* "https" when tls_cert is set, else "http". */
const char *saga_http_scheme(const struct saga_http *h);
/* Stops accepting, waits for the requests in progress. NULL-safe. */
void saga_http_stop(struct saga_http *h);

/* A growable text buffer for building bodies (metrics). */
struct saga_text {
    char *data;
    size_t len, cap;
};
void saga_text_printf(struct saga_text *t, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
void saga_text_vprintf(struct saga_text *t, const char *fmt, va_list ap)
    __attribute__((format(printf, 2, 0)));

#endif
