#include "saga/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netdb.h>
#include <poll.h>
#include <pthread.h>
#include <semaphore.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "saga/config.h"
#include "saga/log.h"

#define WATCH_MS 200 /* how often the watchdog looks for requests past their deadline */

/*
 * A connection, from MHD's start to its close notification. The watchdog cuts one
 * whose request is not read whole in time: MHD's own timeout starts again with
 * every byte, so a client sending one byte a second would hold a thread forever.
 */
struct conn_state {
    struct conn_state *prev, *next; /* saga_http.conns, under mu */
    int fd;                         /* a dup of the socket: shutdown() by the watchdog */
    int64_t reading_since;          /* ms: waiting for a request since; 0 while answering */
    int cut;
};

struct saga_http {
    struct MHD_Daemon *d;
    struct saga_http_conf conf;
    int port;
    sem_t turns; /* handlers running at once: conf.threads */
    pthread_mutex_t mu;
    struct conn_state *conns;
    struct stream *streams;
    pthread_t watchdog;
    int watching;
    atomic_int stopping;
    char *tls_cert, *tls_key; /* PEM text */
};

/* A streamed body handed to MHD (saga_http_reply_stream). */
struct stream {
    struct saga_http *h;
    struct stream *prev, *next; /* saga_http.streams, under mu */
    char client[INET6_ADDRSTRLEN];
    int fd; /* a dup of the socket: is the client still there? */
    saga_http_stream_fn read;
    void (*free)(void *arg);
    void *arg;
};

struct req_ctx {
    char *body;
    size_t len, cap;
    int too_large;
    int refused; /* answered before the body was read */
};

static int64_t mono_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000 + 1; /* never 0 */
}

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

/* 1 when the client closed its end (or the connection broke). */
static int client_gone(int fd)
{
    struct pollfd p = {.fd = fd, .events = POLLRDHUP};
    if (fd < 0)
        return 0;
    return poll(&p, 1, 0) > 0 && (p.revents & (POLLRDHUP | POLLHUP | POLLERR | POLLNVAL));
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct stream *st = cls;
    ssize_t n;
    (void)pos;
    /* A stream writes only now and then (a heartbeat every 15 s): without this
     * look, a closed one would hold its slot until a write failed. */
    if (client_gone(st->fd))
        return MHD_CONTENT_READER_END_WITH_ERROR;
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
    pthread_mutex_lock(&st->h->mu);
    if (st->prev)
        st->prev->next = st->next;
    else
        st->h->streams = st->next;
    if (st->next)
        st->next->prev = st->prev;
    pthread_mutex_unlock(&st->h->mu);
    if (st->fd >= 0)
        close(st->fd);
    free(st);
}

static void client_address(struct MHD_Connection *conn, char *out, size_t size)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    const struct sockaddr *sa = ci ? ci->client_addr : NULL;
    socklen_t len =
        sa && sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
    if (!sa || getnameinfo(sa, len, out, (socklen_t)size, NULL, 0, NI_NUMERICHOST) != 0)
        snprintf(out, size, "?");
}

static struct conn_state *conn_state_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* The connection is answering (since 0) or waiting for its next request. */
static void set_reading(struct saga_http *h, struct MHD_Connection *conn, int64_t since)
{
    struct conn_state *cs = conn_state_of(conn);
    if (!cs)
        return;
    pthread_mutex_lock(&h->mu);
    cs->reading_since = since;
    pthread_mutex_unlock(&h->mu);
}

/*
 * A stream for r from conn's client, counted among h's streams; NULL (r's stream
 * released, r answered 429) when that client has max_streams_per_client open.
 */
static struct stream *stream_open(struct saga_http *h, struct MHD_Connection *conn,
                                  struct saga_http_response *r)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    struct stream *st = calloc(1, sizeof(*st));
    int open = 0;

    if (!st)
        abort();
    st->h = h;
    st->fd = -1;
    client_address(conn, st->client, sizeof(st->client));
    pthread_mutex_lock(&h->mu);
    for (struct stream *o = h->streams; o; o = o->next)
        open += strcmp(o->client, st->client) == 0;
    if (open >= h->conf.max_streams_per_client) {
        pthread_mutex_unlock(&h->mu);
        free(st);
        saga_http_reply_error(r, 429, "too_many_streams", "this client has %d streams open already",
                              open);
        saga_http_add_header(r, "Retry-After", "5");
        return NULL;
    }
    st->next = h->streams;
    if (h->streams)
        h->streams->prev = st;
    h->streams = st;
    pthread_mutex_unlock(&h->mu);
    if (ci)
        st->fd = fcntl(ci->connect_fd, F_DUPFD_CLOEXEC, 0);
    return st;
}

/* The MHD response for r (a streamed one takes r's stream); NULL on failure. */
static struct MHD_Response *make_response(struct saga_http *h, struct MHD_Connection *conn,
                                          struct saga_http_response *r)
{
    struct MHD_Response *mr;

    if (r->stream_read) {
        struct stream *st = stream_open(h, conn, r);
        if (!st)
            return make_response(h, conn, r); /* the 429 */
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

static enum MHD_Result send_response(struct saga_http *h, struct MHD_Connection *conn,
                                     struct saga_http_response *r)
{
    struct MHD_Response *mr;
    enum MHD_Result ret;

    set_reading(h, conn, 0);
    if (!r->status)
        saga_http_reply_error(r, 404, "not_found", "no such resource");
    if (!(mr = make_response(h, conn, r)))
        return MHD_NO;
    if (r->content_type)
        MHD_add_response_header(mr, MHD_HTTP_HEADER_CONTENT_TYPE, r->content_type);
    for (int i = 0; i < r->nheaders; i++)
        MHD_add_response_header(mr, r->headers[i].name, r->headers[i].value);
    ret = MHD_queue_response(conn, (unsigned)r->status, mr);
    MHD_destroy_response(mr);
    return ret;
}

/* 1 if name is in the comma-separated list (case-insensitive; "*" matches all). */
static int in_list(const char *list, const char *name, size_t name_len)
{
    while (list && *list) {
        size_t n;
        while (*list == ' ' || *list == ',')
            list++;
        n = strcspn(list, ", ");
        if ((n == 1 && *list == '*') || (n == name_len && strncasecmp(list, name, n) == 0))
            return 1;
        list += n;
    }
    return 0;
}

/*
 * Host names a page can only reach through our own address: an IP literal (DNS
 * rebinding needs a name the attacker controls), localhost, the listen host and
 * the configured ones.
 */
static int host_allowed(const struct saga_http *h, const char *host)
{
    char name[256];
    struct in_addr a4;
    size_t n;

    if (!host) /* HTTP/1.0 (MHD refuses an HTTP/1.1 request without one) */
        return 1;
    if (*host == '[') /* an IPv6 literal */
        return strchr(host, ']') != NULL;
    n = strcspn(host, ":");
    if (n == 0 || n >= sizeof(name))
        return 0;
    memcpy(name, host, n);
    name[n] = '\0';
    if (n > 1 && name[n - 1] == '.')
        name[--n] = '\0';
    if (inet_pton(AF_INET, name, &a4) == 1 || strcasecmp(name, "localhost") == 0 ||
        (h->conf.host && strcasecmp(name, h->conf.host) == 0))
        return 1;
    return in_list(h->conf.allowed_hosts, name, n);
}

/* An Origin the API takes a state change from: ours (the Host's), or a configured one. */
static int origin_allowed(const struct saga_http *h, const char *origin, const char *host)
{
    const char *authority = strstr(origin, "://");
    /* The scheme is not compared: behind a proxy that ends TLS the page is https and
     * this server http; a foreign page cannot have our host name anyway. */
    if (authority && host && strcasecmp(authority + 3, host) == 0)
        return 1;
    return in_list(h->conf.allowed_origins, origin, strlen(origin));
}

/* The content types an HTML form (or a "simple" cross-site request) can send. */
static int is_form_type(const char *ct)
{
    static const char *const forms[] = {"application/x-www-form-urlencoded", "multipart/form-data",
                                        "text/plain"};
    size_t n;
    if (!ct)
        return 0;
    while (*ct == ' ')
        ct++;
    n = strcspn(ct, "; ");
    for (size_t i = 0; i < sizeof(forms) / sizeof(forms[0]); i++)
        if (strlen(forms[i]) == n && strncasecmp(ct, forms[i], n) == 0)
            return 1;
    return 0;
}

/* 1 (resp filled) when the browser guards refuse the request. */
static int guard_refuses(const struct saga_http *h, struct MHD_Connection *conn, const char *method,
                         struct saga_http_response *resp)
{
    const char *host = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_HOST);
    const char *origin, *ct;

    if (!host_allowed(h, host)) {
        saga_http_reply_error(resp, 421, "misdirected_request",
                              "this server does not answer for that host name"
                              " (API_ALLOWED_HOSTS)");
        return 1;
    }
    if (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0 || strcmp(method, "OPTIONS") == 0)
        return 0;
    origin = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin");
    if (origin && !origin_allowed(h, origin, host)) {
        saga_http_reply_error(resp, 403, "cross_origin",
                              "requests from another origin are refused (API_ALLOWED_ORIGINS)");
        return 1;
    }
    ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (is_form_type(ct)) {
        saga_http_reply_error(resp, 415, "unsupported_media_type",
                              "the API takes application/json");
        return 1;
    }
    return 0;
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
        memset(&resp, 0, sizeof(resp));
        if (h->conf.browser_guards && guard_refuses(h, conn, method, &resp)) {
            ctx->refused = 1;
            return send_response(h, conn, &resp);
        }
        if (cl && strtoull(cl, NULL, 10) > h->conf.max_body) {
            /* Refused before the body is read (the connection is then closed). */
            memset(&resp, 0, sizeof(resp));
            saga_http_reply_error(&resp, 413, "payload_too_large",
                                  "request body is larger than %zu bytes", h->conf.max_body);
            ctx->refused = 1;
            return send_response(h, conn, &resp);
        }
        return MHD_YES;
    }
    if (ctx->refused) {
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
        return send_response(h, conn, &resp);
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
    return send_response(h, conn, &resp);
}

static void completed_cb(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct req_ctx *ctx = *con_cls;
    (void)toe;
    /* The next request on this connection has its own deadline from now. */
    set_reading(cls, conn, mono_ms());
    if (ctx) {
        free(ctx->body);
        free(ctx);
        *con_cls = NULL;
    }
}

static void connection_cb(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    struct saga_http *h = cls;
    struct conn_state *cs = *socket_context;

    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        if (!(cs = calloc(1, sizeof(*cs))))
            abort();
        /* A descriptor of our own: MHD closes its own once the connection is done,
         * and the number may be reused while the watchdog still holds it. */
        cs->fd = ci ? fcntl(ci->connect_fd, F_DUPFD_CLOEXEC, 0) : -1;
        cs->reading_since = mono_ms();
        pthread_mutex_lock(&h->mu);
        cs->next = h->conns;
        if (h->conns)
            h->conns->prev = cs;
        h->conns = cs;
        pthread_mutex_unlock(&h->mu);
        *socket_context = cs;
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED && cs) {
        pthread_mutex_lock(&h->mu);
        if (cs->prev)
            cs->prev->next = cs->next;
        else
            h->conns = cs->next;
        if (cs->next)
            cs->next->prev = cs->prev;
        pthread_mutex_unlock(&h->mu);
        if (cs->fd >= 0)
            close(cs->fd);
        free(cs);
        *socket_context = NULL;
    }
}

/* Cuts connections whose request did not arrive whole within request_timeout_ms. */
static void *watchdog_main(void *arg)
{
    struct saga_http *h = arg;
    while (!atomic_load(&h->stopping)) {
        struct timespec ts = {0, WATCH_MS * 1000000L};
        int64_t now;
        int cut = 0;
        nanosleep(&ts, NULL);
        now = mono_ms();
        pthread_mutex_lock(&h->mu);
        for (struct conn_state *cs = h->conns; cs; cs = cs->next)
            if (!cs->cut && cs->reading_since &&
                now - cs->reading_since > h->conf.request_timeout_ms && cs->fd >= 0) {
                /* MHD's thread sees the end of the stream and closes the connection. */
                shutdown(cs->fd, SHUT_RDWR);
                cs->cut = 1;
                cut++;
            }
        pthread_mutex_unlock(&h->mu);
        if (cut)
            saga_log(SAGA_LOG_DEBUG, NULL,
                     "http: %d connection(s) closed: no whole request within %ld ms"
                     " (HTTP_REQUEST_TIMEOUT)",
                     cut, h->conf.request_timeout_ms);
    }
    return NULL;
}

static char *read_pem(const char *path, char *errstr, size_t errstr_size)
{
    FILE *in = fopen(path, "rb");
    char *buf = NULL;
    size_t len = 0, cap = 0, n;

    if (!in) {
        snprintf(errstr, errstr_size, "cannot open %s: %s", path, strerror(errno));
        return NULL;
    }
    do {
        if (len + 4096 + 1 > cap) {
            char *p;
            cap = cap ? cap * 2 : 8192;
            if (!(p = realloc(buf, cap)))
                abort();
            buf = p;
        }
        n = fread(buf + len, 1, cap - len - 1, in);
        len += n;
    } while (n > 0 && len < 1024 * 1024);
    fclose(in);
    buf[len] = '\0';
    return buf;
}

saga_err_t saga_http_conf_from_env(struct saga_http_conf *conf, int api, char *errstr,
                                   size_t errstr_size)
{
    long n;
    int64_t ms;
    saga_err_t err;

    if ((err = saga_env_long("HTTP_MAX_CONNECTIONS_PER_CLIENT", SAGA_HTTP_MAX_PER_CLIENT, 1,
                             SAGA_HTTP_MAX_CONNECTIONS, &n, errstr, errstr_size)))
        return err;
    conf->max_per_client = (int)n;
    if ((err = saga_env_long("HTTP_MAX_STREAMS_PER_CLIENT", SAGA_HTTP_MAX_STREAMS_PER_CLIENT, 1,
                             SAGA_HTTP_MAX_CONNECTIONS, &n, errstr, errstr_size)))
        return err;
    conf->max_streams_per_client = (int)n;
    if ((err = saga_env_duration_ms("HTTP_REQUEST_TIMEOUT", SAGA_HTTP_REQUEST_TIMEOUT_MS, 500,
                                    3600 * 1000, &ms, errstr, errstr_size)))
        return err;
    conf->request_timeout_ms = (long)ms;
    if (!api)
        return SAGA_OK;
    conf->browser_guards = 1;
    conf->allowed_hosts = saga_env("API_ALLOWED_HOSTS", NULL);
    conf->allowed_origins = saga_env("API_ALLOWED_ORIGINS", NULL);
    conf->tls_cert = saga_env("API_TLS_CERT", NULL);
    conf->tls_key = saga_env("API_TLS_KEY", NULL);
    if (!conf->tls_cert != !conf->tls_key)
        return saga_errf(SAGA_ERR_CONFIG, errstr, errstr_size,
                         "API_TLS_CERT and API_TLS_KEY: set both (https) or neither (http)");
    return SAGA_OK;
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
    char port[16], why[300];
    const char *host = conf->host && *conf->host ? conf->host : "127.0.0.1";
    /* A thread per connection: a handler or a stream may block without holding
     * up other connections; SAGA_HTTP_MAX_CONNECTIONS caps the threads, and
     * max_per_client keeps one client from taking them all. */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                     MHD_USE_ERROR_LOG | MHD_USE_AUTO;
    struct MHD_OptionItem opts[16];
    int rc, n = 0;

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
    if (h->conf.max_per_client <= 0)
        h->conf.max_per_client = SAGA_HTTP_MAX_PER_CLIENT;
    if (h->conf.request_timeout_ms <= 0)
        h->conf.request_timeout_ms = SAGA_HTTP_REQUEST_TIMEOUT_MS;
    if (h->conf.max_streams_per_client <= 0)
        h->conf.max_streams_per_client = SAGA_HTTP_MAX_STREAMS_PER_CLIENT;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    pthread_mutex_init(&h->mu, NULL);
    if (h->conf.tls_cert && *h->conf.tls_cert) {
        if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
            snprintf(errstr, errstr_size, "API_TLS_CERT: this libmicrohttpd has no TLS");
            goto fail_config;
        }
        if (!(h->tls_cert = read_pem(h->conf.tls_cert, why, sizeof(why))) ||
            !(h->tls_key = read_pem(h->conf.tls_key ? h->conf.tls_key : "", why, sizeof(why)))) {
            snprintf(errstr, errstr_size, "API_TLS_CERT/API_TLS_KEY: %s", why);
            goto fail_config;
        }
        flags |= MHD_USE_TLS;
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, h->tls_cert};
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, h->tls_key};
    }
    if (sem_init(&h->turns, 0, (unsigned)h->conf.threads) != 0) {
        int e = errno;
        freeaddrinfo(ai);
        pthread_mutex_destroy(&h->mu);
        free(h->tls_cert);
        free(h->tls_key);
        free(h);
        return saga_errf(SAGA_ERR_NOMEM, errstr, errstr_size, "HTTP server: sem_init: %s",
                         strerror(e));
    }
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_SOCK_ADDR, 0, ai->ai_addr};
    /* MHD's own timeout starts again with every byte: it only ends idle connections.
     * The watchdog enforces request_timeout_ms. */
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_TIMEOUT, 30, NULL};
    opts[n++] =
        (struct MHD_OptionItem){MHD_OPTION_CONNECTION_LIMIT, SAGA_HTTP_MAX_CONNECTIONS, NULL};
    opts[n++] =
        (struct MHD_OptionItem){MHD_OPTION_PER_IP_CONNECTION_LIMIT, h->conf.max_per_client, NULL};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    h->d = MHD_start_daemon(flags, (uint16_t)conf->port, NULL, NULL, access_cb, h,
                            MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_NOTIFY_COMPLETED,
                            completed_cb, h, MHD_OPTION_NOTIFY_CONNECTION, connection_cb, h,
                            MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!h->d) {
        sem_destroy(&h->turns);
        snprintf(errstr, errstr_size,
                 "HTTP_LISTEN: cannot listen on %s:%d (address in use or not local%s?)", host,
                 conf->port, h->tls_cert ? ", or a bad API_TLS_CERT/API_TLS_KEY" : "");
        pthread_mutex_destroy(&h->mu);
        free(h->tls_cert);
        free(h->tls_key);
        free(h);
        return SAGA_ERR_CONFIG;
    }
    if (pthread_create(&h->watchdog, NULL, watchdog_main, h) == 0)
        h->watching = 1;
    info = MHD_get_daemon_info(h->d, MHD_DAEMON_INFO_BIND_PORT);
    h->port = info ? info->port : conf->port;
    *out = h;
    return SAGA_OK;

fail_config:
    freeaddrinfo(ai);
    pthread_mutex_destroy(&h->mu);
    free(h->tls_cert);
    free(h->tls_key);
    free(h);
    return SAGA_ERR_CONFIG;
}

int saga_http_port(const struct saga_http *h)
{
    return h->port;
}

const char *saga_http_scheme(const struct saga_http *h)
{
    return h->tls_cert ? "https" : "http";
}

void saga_http_stop(struct saga_http *h)
{
    if (!h)
        return;
    MHD_stop_daemon(h->d);
    atomic_store(&h->stopping, 1);
    if (h->watching)
        pthread_join(h->watchdog, NULL);
    sem_destroy(&h->turns);
    pthread_mutex_destroy(&h->mu);
    free(h->tls_cert);
    free(h->tls_key);
    free(h);
}
