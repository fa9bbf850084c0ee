/*
 * A small HTTP/1.1 server on libmicrohttpd for every process: /healthz, /readyz
 * and /metrics of each service (design brief §8) and the order API.
 *
 * Requests are served from a pool of threads; the handler gets the whole body
 * (up to max_body bytes: larger bodies get 413 without reaching it) and fills a
 * response. Handlers may block (a database call), so the pool is sized for that.
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

#include <jansson.h>

#include "saga/err.h"

struct MHD_Connection;

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

#define SAGA_HTTP_MAX_HEADERS 6

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

typedef void (*saga_http_handler_fn)(void *arg, const struct saga_http_request *req,
                                     struct saga_http_response *resp);

struct saga_http_conf {
    const char *host; /* "127.0.0.1", "0.0.0.0", "::" or a name */
    int port;         /* 0: any free port (see saga_http_port) */
    size_t max_body;  /* default 64 KiB */
    int threads;      /* default 4 */
    saga_http_handler_fn handler;
    void *arg;
};

struct saga_http;

saga_err_t saga_http_start(struct saga_http **out, const struct saga_http_conf *conf, char *errstr,
                           size_t errstr_size);
int saga_http_port(const struct saga_http *h);
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
