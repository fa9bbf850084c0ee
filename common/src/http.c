#include "saga/http.h"

#include <errno.h>
#include <netdb.h>
#include <semaphore.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include <microhttpd.h>

#include "saga/log.h"

struct saga_http {
    struct MHD_Daemon *d;
    struct saga_http_conf conf;
    int port;
    sem_t turns; /* handlers running at once: conf.threads */
};

/* A streamed body handed to MHD (saga_http_reply_stream). */
struct stream {
    saga_http_stream_fn read;
    void (*free)(void *arg);
    void *arg;
};

struct req_ctx {
    char *body;
    size_t len, cap;
    int too_large;
};

/* --- text buffer ------------------------------------------------------------- */

void saga_text_vprintf(struct saga_text *t, const char *fmt, va_list ap)
{
    va_list ap2;
    int n;

    va_copy(ap2, ap);
    n = vsnprintf(t->data ? t->data + t->len : NULL, t->data ? t->cap - t->len : 0, fmt, ap2);
    va_end(ap2);
    if (n < 0)
        return;
    if (!t->data || t->len + (size_t)n + 1 > t->cap) {
        size_t cap = t->cap ? t->cap : 256;
        char *p;
        while (cap < t->len + (size_t)n + 1)
            cap *= 2;
        if (!(p = realloc(t->data, cap)))
            abort();
        t->data = p;
        t->cap = cap;
        vsnprintf(t->data + t->len, t->cap - t->len, fmt, ap);
    }
    t->len += (size_t)n;
}

void saga_text_printf(struct saga_text *t, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    saga_text_vprintf(t, fmt, ap);
    va_end(ap);
}

/* --- requests and responses ------------------------------------------------- */

const char *saga_http_query(const struct saga_http_request *req, const char *key)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, key);
}

const char *saga_http_header(const struct saga_http_request *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

int saga_http_route(const struct saga_http_request *req, const char *method, const char *path)
{
    return strcmp(req->method, method) == 0 && strcmp(req->path, path) == 0;
}

static void release_stream(struct saga_http_response *resp)
{
    if (resp->stream_free)
        resp->stream_free(resp->stream_arg);
    resp->stream_read = NULL;
    resp->stream_free = NULL;
    resp->stream_arg = NULL;
}

void saga_http_reply(struct saga_http_response *resp, int status, const char *content_type,
                     char *body, size_t len)
{
    free(resp->body);
    release_stream(resp);
    resp->status = status;
    resp->content_type = content_type;
    resp->body = body;
    resp->len = len;
}

void saga_http_reply_text(struct saga_http_response *resp, int status, const char *text)
{
    char *b = strdup(text);
    if (!b)
        abort();
    saga_http_reply(resp, status, "text/plain; charset=utf-8", b, strlen(b));
}

void saga_http_reply_json(struct saga_http_response *resp, int status, json_t *json)
{
    char *b = json_dumps(json, JSON_COMPACT);
    size_t n;
    json_decref(json);
    if (!b)
        abort();
    n = strlen(b);
    /* A trailing newline makes curl output readable. */
    b = realloc(b, n + 2);
    if (!b)
        abort();
    b[n++] = '\n';
    b[n] = '\0';
    saga_http_reply(resp, status, "application/json", b, n);
}

void saga_http_reply_error(struct saga_http_response *resp, int status, const char *code,
                           const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    saga_http_reply_json(resp, status, json_pack("{s:s, s:s}", "error", code, "message", msg));
}

void saga_http_reply_stream(struct saga_http_response *resp, int status, const char *content_type,
                            saga_http_stream_fn read_cb, void (*free_cb)(void *arg), void *arg)
{
    saga_http_reply(resp, status, content_type, NULL, 0);
    resp->stream_read = read_cb;
    resp->stream_free = free_cb;
    resp->stream_arg = arg;
}

void saga_http_add_header(struct saga_http_response *resp, const char *name, const char *value)
{
    if (resp->nheaders >= SAGA_HTTP_MAX_HEADERS)
        return;
    snprintf(resp->headers[resp->nheaders].name, sizeof(resp->headers[0].name), "%s", name);
    snprintf(resp->headers[resp->nheaders].value, sizeof(resp->headers[0].value), "%s", value);
    resp->nheaders++;
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct stream *st = cls;
    ssize_t n;
    (void)pos;
    n = st->read(st->arg, buf, max);
    if (n == SAGA_HTTP_STREAM_END)
        return MHD_CONTENT_READER_END_OF_STREAM;
    if (n < 0)
        return MHD_CONTENT_READER_END_WITH_ERROR;
    return n;
}

static void stream_free(void *cls)
{
    struct stream *st = cls;
    if (st->free)
        st->free(st->arg);
    free(st);
}

/* The MHD response for r (a streamed one takes r's stream); NULL on failure. */
static struct MHD_Response *make_response(struct saga_http_response *r)
{
    struct MHD_Response *mr;

    if (r->stream_read) {
        struct stream *st = malloc(sizeof(*st));
        if (!st) {
            release_stream(r);
            return NULL;
        }
        st->read = r->stream_read;
        st->free = r->stream_free;
        st->arg = r->stream_arg;
        /* From here on MHD owns the stream: it calls stream_free exactly once. */
        r->stream_read = NULL;
        r->stream_free = NULL;
        r->stream_arg = NULL;
        mr = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16 * 1024, stream_read, st,
                                               stream_free);
        if (!mr)
            stream_free(st);
        return mr;
    }
    mr = MHD_create_response_from_buffer(r->len, r->body ? r->body : (char *)"",
                                         r->body ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
    if (!mr)
        free(r->body);
    r->body = NULL;
    return mr;
}

static enum MHD_Result send_response(struct MHD_Connection *conn, struct saga_http_response *r)
{
    struct MHD_Response *mr;
    enum MHD_Result ret;

    if (!r->status)
        saga_http_reply_error(r, 404, "not_found", "no such resource");
    if (!(mr = make_response(r)))
        return MHD_NO;
    if (r->content_type)
        MHD_add_response_header(mr, MHD_HTTP_HEADER_CONTENT_TYPE, r->content_type);
    for (int i = 0; i < r->nheaders; i++)
        MHD_add_response_header(mr, r->headers[i].name, r->headers[i].value);
    ret = MHD_queue_response(conn, (unsigned)r->status, mr);
    MHD_destroy_response(mr);
    return ret;
}

static enum MHD_Result access_cb(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls)
{
    struct saga_http *h = cls;
    struct req_ctx *ctx = *con_cls;
    struct saga_http_request req;
    struct saga_http_response resp;
    (void)version;

    if (!ctx) {
        const char *cl =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (!(ctx = calloc(1, sizeof(*ctx))))
            return MHD_NO;
        *con_cls = ctx;
        if (cl && strtoull(cl, NULL, 10) > h->conf.max_body) {
            /* Refused before the body is read (the connection is then closed). */
            memset(&resp, 0, sizeof(resp));
            saga_http_reply_error(&resp, 413, "payload_too_large",
                                  "request body is larger than %zu bytes", h->conf.max_body);
            ctx->too_large = 2;
            return send_response(conn, &resp);
        }
        return MHD_YES;
    }
    if (ctx->too_large == 2) {
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (*upload_data_size) {
        size_t n = *upload_data_size;
        *upload_data_size = 0;
        if (ctx->too_large || ctx->len + n > h->conf.max_body) {
            ctx->too_large = 1;
            return MHD_YES;
        }
        if (ctx->len + n + 1 > ctx->cap) {
            size_t cap = ctx->cap ? ctx->cap * 2 : 1024;
            char *p;
            while (cap < ctx->len + n + 1)
                cap *= 2;
            if (!(p = realloc(ctx->body, cap)))
                return MHD_NO;
            ctx->body = p;
            ctx->cap = cap;
        }
        memcpy(ctx->body + ctx->len, upload_data, n);
        ctx->len += n;
        ctx->body[ctx->len] = '\0';
        return MHD_YES;
    }

    memset(&resp, 0, sizeof(resp));
    if (ctx->too_large) {
        saga_http_reply_error(&resp, 413, "payload_too_large",
                              "request body is larger than %zu bytes", h->conf.max_body);
        return send_response(conn, &resp);
    }
    req.method = method;
    req.path = url;
    req.body = ctx->body ? ctx->body : "";
    req.body_len = ctx->len;
    req.conn = conn;
    /* Every connection has a thread; at most conf.threads of them run a handler. */
    while (sem_wait(&h->turns) != 0 && errno == EINTR)
        ;
    h->conf.handler(h->conf.arg, &req, &resp);
    sem_post(&h->turns);
    return send_response(conn, &resp);
}

static void completed_cb(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct req_ctx *ctx = *con_cls;
    (void)cls;
    (void)conn;
    (void)toe;
    if (ctx) {
        free(ctx->body);
        free(ctx);
        *con_cls = NULL;
    }
}

static void mhd_log(void *cls, const char *fmt, va_list ap) __attribute__((format(printf, 2, 0)));
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    char buf[512];
    size_t n;
    (void)cls;
    vsnprintf(buf, sizeof(buf), fmt, ap);
    n = strlen(buf);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    saga_log(SAGA_LOG_WARN, NULL, "http: %s", buf);
}

saga_err_t saga_http_start(struct saga_http **out, const struct saga_http_conf *conf, char *errstr,
                           size_t errstr_size)
{
    struct addrinfo hints = {0}, *ai = NULL;
    struct saga_http *h;
    const union MHD_DaemonInfo *info;
    char port[16];
    const char *host = conf->host && *conf->host ? conf->host : "127.0.0.1";
    /* A thread per connection: a handler or a stream may block without holding
     * up other connections; SAGA_HTTP_MAX_CONNECTIONS caps the threads. */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                     MHD_USE_ERROR_LOG | MHD_USE_AUTO;
    int rc;

    *out = NULL;
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(port, sizeof(port), "%d", conf->port);
    if ((rc = getaddrinfo(host, port, &hints, &ai)) != 0) {
        snprintf(errstr, errstr_size, "HTTP_LISTEN: cannot resolve '%s': %s", host,
                 gai_strerror(rc));
        return SAGA_ERR_CONFIG;
    }
    if (!(h = calloc(1, sizeof(*h)))) {
        freeaddrinfo(ai);
        return saga_errf(SAGA_ERR_NOMEM, errstr, errstr_size, "HTTP server: out of memory");
    }
    h->conf = *conf;
    if (!h->conf.max_body)
        h->conf.max_body = 64 * 1024;
    if (h->conf.threads <= 0)
        h->conf.threads = 4;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    if (sem_init(&h->turns, 0, (unsigned)h->conf.threads) != 0) {
        int e = errno;
        freeaddrinfo(ai);
        free(h);
        return saga_errf(SAGA_ERR_NOMEM, errstr, errstr_size, "HTTP server: sem_init: %s",
                         strerror(e));
    }
    h->d = MHD_start_daemon(flags, (uint16_t)conf->port, NULL, NULL, access_cb, h,
                            MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_SOCK_ADDR,
                            ai->ai_addr, MHD_OPTION_CONNECTION_TIMEOUT, 30u,
                            MHD_OPTION_CONNECTION_LIMIT, (unsigned)SAGA_HTTP_MAX_CONNECTIONS,
                            MHD_OPTION_NOTIFY_COMPLETED, completed_cb, NULL, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!h->d) {
        sem_destroy(&h->turns);
        snprintf(errstr, errstr_size,
                 "HTTP_LISTEN: cannot listen on %s:%d (address in use or not local?)", host,
                 conf->port);
        free(h);
        return SAGA_ERR_CONFIG;
    }
    info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info ? info->port : conf->port;
    *out = h;
    return SAGA_OK;
}

int saga_http_port(const struct saga_http *h)
{
    return h->port;
}

void saga_http_stop(struct saga_http *h)
{
    if (!h)
        return;
    MHD_stop_daemon(h->d);
    sem_destroy(&h->turns);
    free(h);
}
