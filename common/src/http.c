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
#include <sys/resource.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <microhttpd.h>

#include "saga/config.h"
#include "saga/clock.h"
#include "saga/log.h"

#define WATCH_MS 200 /* how often the watchdog looks for requests past their deadline */

#define CLIENT_KEY  (INET6_ADDRSTRLEN + 4) /* "192.0.2.1", "2001:db8:1:2::/64" */
#define MAX_PROXIES 64                     /* entries of HTTP_TRUSTED_PROXIES */
/*
 * Descriptors: each connection holds its socket and the watchdog's dup of it, a
 * stream one more dup. FD_RESERVE are kept for everything else the process opens
 * (database and Kafka connections, logs, the listening sockets); the public
 * connections are capped so that a flood cannot take those away (EMFILE).
 */
#define FDS_PER_CONNECTION 3
#define FD_RESERVE         128
/* Connections past max_connections are accepted and closed at once (counted);
 * past this many more, MHD refuses them at accept. */
#define REFUSE_SLACK     8
#define INTERNAL_THREADS 2 /* handlers of the internal listener at once */

/* An address or a network of HTTP_TRUSTED_PROXIES. */
struct cidr {
    int family; /* AF_INET or AF_INET6 */
    unsigned char addr[16];
    int bits;
};

/* The public listener or the internal one: the cls of MHD's callbacks. */
struct listener {
    struct saga_http *h;
    int internal;
};

/*
 * A connection, from MHD's start to its close notification. The watchdog cuts one
 * whose request is not read whole in time: MHD's own timeout starts again with
 * every byte, so a client sending one byte a second would hold a thread forever.
 */
struct conn_state {
    struct conn_state *prev, *next; /* saga_http.conns, under mu */
    int fd;                         /* a dup of the socket: shutdown() by the watchdog */
    int64_t reading_since;          /* ms: waiting for a request since; 0 while answering */
    int64_t answering_since;        /* ms: delivering an answer (not a stream) since; or 0 */
    int cut;
    int abort;    /* cut while answering: reset, not closed (close_abortively) */
    int internal; /* on the internal listener: its own caps and deadline */
    int refused;  /* over a cap: closed at once, not counted */
    int proxy;    /* from a trusted proxy: held to max_per_proxy */
    char client[CLIENT_KEY];
};

struct saga_http {
    struct MHD_Daemon *d, *internal_d;
    struct saga_http_conf conf;
    int port, internal_port;
    int max_connections; /* conf's, within RLIMIT_NOFILE */
    int max_per_proxy;   /* conf's, or half of max_connections */
    struct listener pub, internal;
    sem_t turns;          /* handlers running at once: conf.threads */
    sem_t internal_turns; /* and on the internal listener */
    int sems;             /* how many of the two are initialized */
    pthread_mutex_t mu;
    struct conn_state *conns;
    struct stream *streams;
    struct cidr proxies[MAX_PROXIES];
    int nproxies;
    pthread_t watchdog;
    int watching;
    atomic_int stopping;
    char *tls_cert, *tls_key; /* PEM text */
};

/* A streamed body handed to MHD (saga_http_reply_stream). */
struct stream {
    struct saga_http *h;
    struct stream *prev, *next; /* saga_http.streams, under mu */
    char client[CLIENT_KEY];
    char principal[96]; /* "" when none */
    int fd;             /* a dup of the socket: is the client still there? */
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

/* --- refusals ----------------------------------------------------------------- */

static atomic_llong refused_total[SAGA_HTTP_REFUSED_N];
static const char *const refusal_names[SAGA_HTTP_REFUSED_N] = {
    [SAGA_HTTP_REFUSED_PER_CLIENT_CAP] = "per_client_cap",
    [SAGA_HTTP_REFUSED_CONNECTION_CAP] = "connection_cap",
    [SAGA_HTTP_REFUSED_STREAM_CAP] = "stream_cap",
    [SAGA_HTTP_REFUSED_PRINCIPAL_STREAM_CAP] = "principal_stream_cap",
    [SAGA_HTTP_REFUSED_DEADLINE] = "deadline",
    [SAGA_HTTP_REFUSED_HOST] = "host",
    [SAGA_HTTP_REFUSED_ORIGIN] = "origin",
    [SAGA_HTTP_REFUSED_FORM] = "form",
    [SAGA_HTTP_REFUSED_TOO_LARGE] = "too_large",
    [SAGA_HTTP_REFUSED_AUTH] = "auth",
    [SAGA_HTTP_REFUSED_DESCRIPTORS] = "descriptors",
    [SAGA_HTTP_REFUSED_PER_PROXY_CAP] = "per_proxy_cap",
    [SAGA_HTTP_REFUSED_RESPONSE_DEADLINE] = "response_deadline",
};

/* locality: any thread. locks: none, atomics. */
void saga_http_count_refused(saga_http_refusal_t why)
{
    if ((int)why >= 0 && why < SAGA_HTTP_REFUSED_N)
        atomic_fetch_add(&refused_total[why], 1);
}

void saga_http_write_metrics(struct saga_text *t, const char *service)
{
    saga_text_printf(t, "# HELP saga_http_refused_total Connections and requests the HTTP server"
                        " refused or cut, by reason.\n"
                        "# TYPE saga_http_refused_total counter\n");
    for (int i = 0; i < SAGA_HTTP_REFUSED_N; i++)
        saga_text_printf(t, "saga_http_refused_total{service=\"%s\",reason=\"%s\"} %lld\n", service,
                         refusal_names[i], (long long)atomic_load(&refused_total[i]));
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

void saga_http_set_principal(struct saga_http_response *resp, const char *principal)
{
    snprintf(resp->principal, sizeof(resp->principal), "%s", principal ? principal : "");
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

/* --- who the client is ---------------------------------------------------------- */

/* An IPv4-mapped IPv6 address (::ffff:a.b.c.d) as the IPv4 address it is. */
static void unmap(int *family, unsigned char addr[16])
{
    static const unsigned char mapped[12] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0xff, 0xff};
    if (*family == AF_INET6 && memcmp(addr, mapped, 12) == 0) {
        memmove(addr, addr + 12, 4);
        memset(addr + 4, 0, 12);
        *family = AF_INET;
    }
}

/* The address of sa; 0, or -1 when it is not IPv4 or IPv6. */
static int sockaddr_bytes(const struct sockaddr *sa, int *family, unsigned char addr[16])
{
    memset(addr, 0, 16);
    if (!sa)
        return -1;
    if (sa->sa_family == AF_INET) {
        memcpy(addr, &((const struct sockaddr_in *)(const void *)sa)->sin_addr, 4);
        *family = AF_INET;
    } else if (sa->sa_family == AF_INET6) {
        memcpy(addr, &((const struct sockaddr_in6 *)(const void *)sa)->sin6_addr, 16);
        *family = AF_INET6;
    } else {
        return -1;
    }
    unmap(family, addr);
    return 0;
}

/* An address written as text ("192.0.2.1", "192.0.2.1:1234", "2001:db8::1",
 * "[2001:db8::1]:1234"), n bytes of s; 0, or -1 when it is none. */
static int text_bytes(const char *s, size_t n, int *family, unsigned char addr[16])
{
    char buf[INET6_ADDRSTRLEN + 8];
    char *p = buf, *colon;

    while (n && (*s == ' ' || *s == '\t'))
        s++, n--;
    while (n && (s[n - 1] == ' ' || s[n - 1] == '\t'))
        n--;
    if (n == 0 || n >= sizeof(buf))
        return -1;
    memcpy(buf, s, n);
    buf[n] = '\0';
    if (*p == '[') {
        char *end = strchr(p, ']');
        if (!end)
            return -1;
        *end = '\0';
        p++;
    } else if ((colon = strchr(p, ':')) && !strchr(colon + 1, ':')) {
        *colon = '\0'; /* a.b.c.d:port */
    }
    memset(addr, 0, 16);
    if (inet_pton(AF_INET, p, addr) == 1)
        *family = AF_INET;
    else if (inet_pton(AF_INET6, p, addr) == 1)
        *family = AF_INET6;
    else
        return -1;
    unmap(family, addr);
    return 0;
}

/* The key a client's caps are counted by: an IPv4 address, or an IPv6 /64 (one
 * subscriber's network: they have 2^64 addresses to spread over). */
static void client_key(int family, const unsigned char *addr, char *out, size_t size)
{
    char text[INET6_ADDRSTRLEN];
    if (family == AF_INET) {
        inet_ntop(AF_INET, addr, out, (socklen_t)size);
        return;
    }
    {
        unsigned char net[16] = {0};
        memcpy(net, addr, 8);
        inet_ntop(AF_INET6, net, text, sizeof(text));
        snprintf(out, size, "%s/64", text);
    }
}

static int cidr_match(const struct cidr *c, int family, const unsigned char *addr)
{
    int whole = c->bits / 8, rest = c->bits % 8;
    if (c->family != family)
        return 0;
    if (memcmp(c->addr, addr, (size_t)whole) != 0)
        return 0;
    return !rest || ((c->addr[whole] ^ addr[whole]) & (0xff << (8 - rest))) == 0;
}

/* HTTP_TRUSTED_PROXIES ("10.0.0.0/8, 192.0.2.7, fd00::/8") into out: how many, or -1. */
static int parse_cidrs(const char *list, struct cidr *out, int max, char *errstr,
                       size_t errstr_size)
{
    int n = 0;
    while (list && *list) {
        size_t len;
        const char *slash;
        struct cidr c;
        char *end;

        while (*list == ' ' || *list == ',')
            list++;
        len = strcspn(list, ", ");
        if (!len)
            break;
        slash = memchr(list, '/', len);
        if (n >= max ||
            text_bytes(list, slash ? (size_t)(slash - list) : len, &c.family, c.addr) != 0 ||
            (slash && slash[1] == '['))
            goto bad;
        c.bits = c.family == AF_INET ? 32 : 128;
        if (slash) {
            long bits = strtol(slash + 1, &end, 10);
            if (end != list + len || end == slash + 1 || bits < 0 || bits > c.bits)
                goto bad;
            /* An IPv4 network given as ::ffff:a.b.c.d/104 was unmapped above. */
            if (c.family == AF_INET && memchr(list, ':', (size_t)(slash - list)))
                bits = bits >= 96 ? bits - 96 : 0;
            c.bits = (int)bits;
        }
        out[n++] = c;
        list += len;
        continue;
    bad:
        snprintf(errstr, errstr_size,
                 "HTTP_TRUSTED_PROXIES: '%.*s' is not an address or ADDRESS/BITS (at most %d)",
                 (int)len, list, max);
        return -1;
    }
    return n;
}

static int trusted(const struct saga_http *h, int family, const unsigned char *addr)
{
    for (int i = 0; i < h->nproxies; i++)
        if (cidr_match(&h->proxies[i], family, addr))
            return 1;
    return 0;
}

static enum MHD_Result collect_forwarded(void *cls, enum MHD_ValueKind kind, const char *key,
                                         const char *value)
{
    struct saga_text *t = cls;
    (void)kind;
    if (key && value && strcasecmp(key, "X-Forwarded-For") == 0)
        saga_text_printf(t, "%s%s", t->len ? "," : "", value);
    return MHD_YES;
}

/*
 * The client of a request: its peer, or, when the peer is a trusted proxy, the
 * right-most address of X-Forwarded-For that is not a trusted proxy (whatever is
 * left of it the client wrote itself). An entry that is not an address ends the
 * walk at the hop that added it.
 */
static void request_client(const struct saga_http *h, struct MHD_Connection *conn, char *out,
                           size_t size)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    unsigned char addr[16], next[16];
    int family, next_family;

    if (!ci || sockaddr_bytes(ci->client_addr, &family, addr) != 0) {
        snprintf(out, size, "?");
        return;
    }
    if (trusted(h, family, addr)) {
        struct saga_text xff = {0};
        size_t end;
        MHD_get_connection_values(conn, MHD_HEADER_KIND, collect_forwarded, &xff);
        end = xff.len;
        while (end > 0) {
            size_t start = end;
            while (start > 0 && xff.data[start - 1] != ',')
                start--;
            if (text_bytes(xff.data + start, end - start, &next_family, next) != 0)
                break;
            family = next_family;
            memcpy(addr, next, sizeof(addr));
            if (!trusted(h, family, addr))
                break;
            end = start ? start - 1 : 0;
        }
        free(xff.data);
    }
    client_key(family, addr, out, size);
}

static struct conn_state *conn_state_of(struct MHD_Connection *conn)
{
    const union MHD_ConnectionInfo *ci =
        MHD_get_connection_info(conn, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

/* The connection is answering (since 0) or waiting for its next request.
 * locality: the connection's thread. locks: takes h->mu (the watchdog reads it). */
static void set_reading(struct saga_http *h, struct MHD_Connection *conn, int64_t since)
{
    struct conn_state *cs = conn_state_of(conn);
    if (!cs)
        return;
    pthread_mutex_lock(&h->mu);
    cs->reading_since = since;
    if (since)
        cs->answering_since = 0; /* the answer was delivered */
    pthread_mutex_unlock(&h->mu);
}

/*
 * Resets a connection cut while answering, at once: a close, even with SO_LINGER 0,
 * would leave the kernel sending what the answer left in the socket's buffer
 * (megabytes, with pipelined requests) at the slow reader's pace until MHD's last
 * descriptor of it is gone. connect(AF_UNSPEC) disconnects the socket (RST) and
 * drops that buffer; MHD's thread then sees the error and closes the connection.
 * While a thread waits in send() the kernel refuses it (EBUSY): the connection's
 * close notification does it again.
 */
static void close_abortively(int fd)
{
    struct linger lg = {1, 0};
    struct sockaddr unspec = {.sa_family = AF_UNSPEC};
    if (fd < 0)
        return;
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    (void)connect(fd, &unspec, sizeof(unspec));
}

/* The connection delivers an answer (not a stream) from now: response_timeout_ms.
 * locality: the connection's thread. locks: takes h->mu. */
static void set_answering(struct saga_http *h, struct MHD_Connection *conn)
{
    struct conn_state *cs = conn_state_of(conn);
    if (!cs)
        return;
    pthread_mutex_lock(&h->mu);
    cs->answering_since = saga_mono_ms();
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

    int mine = 0;

    if (!st)
        abort();
    st->h = h;
    st->fd = -1;
    request_client(h, conn, st->client, sizeof(st->client));
    snprintf(st->principal, sizeof(st->principal), "%s", r->principal);
    pthread_mutex_lock(&h->mu);
    for (struct stream *o = h->streams; o; o = o->next) {
        open += strcmp(o->client, st->client) == 0;
        mine += st->principal[0] && strcmp(o->principal, st->principal) == 0;
    }
    if (open >= h->conf.max_streams_per_client || mine >= h->conf.max_streams_per_client) {
        pthread_mutex_unlock(&h->mu);
        free(st);
        saga_http_count_refused(open >= h->conf.max_streams_per_client
                                    ? SAGA_HTTP_REFUSED_STREAM_CAP
                                    : SAGA_HTTP_REFUSED_PRINCIPAL_STREAM_CAP);
        saga_http_reply_error(r, 429, "too_many_streams", "%s has %d streams open already",
                              open >= h->conf.max_streams_per_client ? "this client"
                                                                     : "this principal",
                              open >= h->conf.max_streams_per_client ? open : mine);
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
    /* A stream (/events) has its own rules; any other answer must be taken in time, or
     * a client reading it slowly (pipelined requests) holds its thread for ever. */
    if (!r->stream_read)
        set_answering(h, conn);
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
        saga_http_count_refused(SAGA_HTTP_REFUSED_HOST);
        saga_http_reply_error(resp, 421, "misdirected_request",
                              "this server does not answer for that host name"
                              " (API_ALLOWED_HOSTS)");
        return 1;
    }
    if (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0 || strcmp(method, "OPTIONS") == 0)
        return 0;
    origin = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Origin");
    if (origin && !origin_allowed(h, origin, host)) {
        saga_http_count_refused(SAGA_HTTP_REFUSED_ORIGIN);
        saga_http_reply_error(resp, 403, "cross_origin",
                              "requests from another origin are refused (API_ALLOWED_ORIGINS)");
        return 1;
    }
    ct = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_TYPE);
    if (is_form_type(ct)) {
        saga_http_count_refused(SAGA_HTTP_REFUSED_FORM);
        saga_http_reply_error(resp, 415, "unsupported_media_type",
                              "the API takes application/json");
        return 1;
    }
    return 0;
}

/* What the internal listener answers. */
static int is_internal_path(const char *url)
{
    return strcmp(url, "/healthz") == 0 || strcmp(url, "/readyz") == 0 ||
           strcmp(url, "/metrics") == 0;
}

/* A request, as MHD hands it over piece by piece; runs the handler once it is whole.
 * locality: the connection's own thread (MHD_USE_THREAD_PER_CONNECTION). locks: none held
 * while the handler runs; at most conf.threads handlers at once (the turns semaphore). */
static enum MHD_Result access_cb(void *cls, struct MHD_Connection *conn, const char *url,
                                 const char *method, const char *version, const char *upload_data,
                                 size_t *upload_data_size, void **con_cls)
{
    struct listener *l = cls;
    struct saga_http *h = l->h;
    struct req_ctx *ctx = *con_cls;
    struct conn_state *cs = conn_state_of(conn);
    struct saga_http_request req;
    struct saga_http_response resp;
    sem_t *turns = l->internal ? &h->internal_turns : &h->turns;
    (void)version;

    if (cs && cs->refused)
        return MHD_NO; /* over a cap, being closed */
    if (!ctx) {
        const char *cl =
            MHD_lookup_connection_value(conn, MHD_HEADER_KIND, MHD_HTTP_HEADER_CONTENT_LENGTH);
        if (!(ctx = calloc(1, sizeof(*ctx))))
            return MHD_NO;
        *con_cls = ctx;
        memset(&resp, 0, sizeof(resp));
        if (!l->internal && h->conf.browser_guards && guard_refuses(h, conn, method, &resp)) {
            ctx->refused = 1;
            return send_response(h, conn, &resp);
        }
        if (cl && strtoull(cl, NULL, 10) > h->conf.max_body) {
            /* Refused before the body is read (the connection is then closed). */
            memset(&resp, 0, sizeof(resp));
            saga_http_count_refused(SAGA_HTTP_REFUSED_TOO_LARGE);
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

    /* The request has arrived whole: its read deadline is met. The handler's time
     * (a turn, the database) and a stream's are not reading time. */
    set_reading(h, conn, 0);
    memset(&resp, 0, sizeof(resp));
    if (ctx->too_large) {
        saga_http_count_refused(SAGA_HTTP_REFUSED_TOO_LARGE);
        saga_http_reply_error(&resp, 413, "payload_too_large",
                              "request body is larger than %zu bytes", h->conf.max_body);
        return send_response(h, conn, &resp);
    }
    req.method = method;
    req.path = url;
    req.body = ctx->body ? ctx->body : "";
    req.body_len = ctx->len;
    req.conn = conn;
    if (l->internal ? !is_internal_path(url) : h->internal_d && strcmp(url, "/metrics") == 0) {
        /* The internal listener is for probes and scrapes; with one, /metrics is its. */
        saga_http_reply_error(&resp, 404, "not_found", "no such resource");
        return send_response(h, conn, &resp);
    }
    /* Every connection has a thread; at most conf.threads of them run a handler
     * (the internal listener's have turns of their own). */
    while (sem_wait(turns) != 0 && errno == EINTR)
        ;
    h->conf.handler(h->conf.arg, &req, &resp);
    sem_post(turns);
    return send_response(h, conn, &resp);
}

/* locality: the connection's thread. locks: takes h->mu. */
static void completed_cb(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    struct listener *l = cls;
    struct req_ctx *ctx = *con_cls;
    struct conn_state *cs = conn_state_of(conn);

    if (cs && toe != MHD_REQUEST_TERMINATED_COMPLETED_OK) {
        int timed_out = 0;
        pthread_mutex_lock(&l->h->mu);
        /* MHD's idle timeout (30 s without progress) ended an answer the client does
         * not take: as the watchdog's response deadline would have. */
        if (cs->answering_since && !cs->cut) {
            close_abortively(cs->fd);
            cs->cut = cs->abort = 1;
            timed_out = toe == MHD_REQUEST_TERMINATED_TIMEOUT_REACHED;
        }
        pthread_mutex_unlock(&l->h->mu);
        if (timed_out)
            saga_http_count_refused(SAGA_HTTP_REFUSED_RESPONSE_DEADLINE);
    }
    /* The next request on this connection (keep-alive) has its own deadline from now. */
    set_reading(l->h, conn, saga_mono_ms());
    if (ctx) {
        free(ctx->body);
        free(ctx);
        *con_cls = NULL;
    }
}

/* locality: the connection's thread (opened, closed). locks: takes h->mu. */
static void connection_cb(void *cls, struct MHD_Connection *conn, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    struct listener *l = cls;
    struct saga_http *h = l->h;
    struct conn_state *cs = *socket_context;

    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *ci =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CONNECTION_FD);
        const union MHD_ConnectionInfo *ai =
            MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        unsigned char addr[16];
        int family, total = 0, same = 0, same_peer = 0, why = -1;

        if (!(cs = calloc(1, sizeof(*cs))))
            abort();
        cs->fd = -1;
        cs->internal = l->internal;
        cs->reading_since = saga_mono_ms();
        if (ai && sockaddr_bytes(ai->client_addr, &family, addr) == 0) {
            client_key(family, addr, cs->client, sizeof(cs->client));
            cs->proxy = trusted(h, family, addr);
        } else {
            snprintf(cs->client, sizeof(cs->client), "?");
        }
        pthread_mutex_lock(&h->mu);
        for (struct conn_state *o = h->conns; o; o = o->next) {
            if (o->refused || o->internal != cs->internal)
                continue;
            total++;
            same += !o->proxy && strcmp(o->client, cs->client) == 0;
            same_peer += strcmp(o->client, cs->client) == 0;
        }
        if (cs->internal) {
            /* One peer gets a few, so that the kubelet's probes always find room. */
            if (total >= SAGA_HTTP_INTERNAL_CONNECTIONS)
                why = SAGA_HTTP_REFUSED_CONNECTION_CAP;
            else if (same_peer >= SAGA_HTTP_INTERNAL_PER_CLIENT)
                why = SAGA_HTTP_REFUSED_PER_CLIENT_CAP;
        } else if (total >= h->max_connections) {
            why = SAGA_HTTP_REFUSED_CONNECTION_CAP;
        } else if (!cs->proxy && same >= h->conf.max_per_client) {
            why = SAGA_HTTP_REFUSED_PER_CLIENT_CAP;
        } else if (cs->proxy && same_peer >= h->max_per_proxy) {
            /* Its clients have their own caps; the proxy itself (or one peer of a
             * too-wide HTTP_TRUSTED_PROXIES) does not get every connection. */
            why = SAGA_HTTP_REFUSED_PER_PROXY_CAP;
        }
        cs->refused = why >= 0;
        cs->next = h->conns;
        if (h->conns)
            h->conns->prev = cs;
        h->conns = cs;
        pthread_mutex_unlock(&h->mu);
        *socket_context = cs;
        /* A descriptor of our own: MHD closes its own once the connection is done,
         * and the number may be reused while the watchdog still holds it. */
        if (!cs->refused && ci && (cs->fd = fcntl(ci->connect_fd, F_DUPFD_CLOEXEC, 0)) < 0) {
            /* Out of descriptors (EMFILE): a connection the watchdog cannot cut is
             * not kept. */
            why = SAGA_HTTP_REFUSED_DESCRIPTORS;
            pthread_mutex_lock(&h->mu);
            cs->refused = 1;
            pthread_mutex_unlock(&h->mu);
        }
        if (why >= 0) {
            /* Closed at once: MHD's thread reads the end of the stream. */
            if (ci)
                shutdown(ci->connect_fd, SHUT_RDWR);
            saga_http_count_refused((saga_http_refusal_t)why);
        }
    } else if (code == MHD_CONNECTION_NOTIFY_CLOSED && cs) {
        pthread_mutex_lock(&h->mu);
        if (cs->prev)
            cs->prev->next = cs->next;
        else
            h->conns = cs->next;
        if (cs->next)
            cs->next->prev = cs->prev;
        pthread_mutex_unlock(&h->mu);
        /* Again: while MHD's thread waited in send() the kernel refused (EBUSY). */
        if (cs->abort)
            close_abortively(cs->fd);
        if (cs->fd >= 0)
            close(cs->fd);
        free(cs);
        *socket_context = NULL;
    }
}

/* The read deadline of cs: the internal listener's probes send a few lines. */
static long request_deadline_ms(const struct saga_http *h, const struct conn_state *cs)
{
    if (cs->internal && h->conf.request_timeout_ms > SAGA_HTTP_INTERNAL_REQUEST_MS)
        return SAGA_HTTP_INTERNAL_REQUEST_MS;
    return h->conf.request_timeout_ms;
}

/*
 * Cuts connections whose request did not arrive whole within request_timeout_ms,
 * or whose answer (not a stream) was not taken within response_timeout_ms.
 * locality: its own thread. locks: takes h->mu to walk the connections.
 */
static void *watchdog_main(void *arg)
{
    struct saga_http *h = arg;
    while (!atomic_load(&h->stopping)) {
        struct timespec ts = {0, WATCH_MS * 1000000L};
        int64_t now;
        int cut = 0, slow = 0;
        nanosleep(&ts, NULL);
        now = saga_mono_ms();
        pthread_mutex_lock(&h->mu);
        for (struct conn_state *cs = h->conns; cs; cs = cs->next) {
            if (cs->cut || cs->refused || cs->fd < 0)
                continue;
            if (cs->reading_since && now - cs->reading_since > request_deadline_ms(h, cs)) {
                cut++;
            } else if (cs->answering_since &&
                       now - cs->answering_since > h->conf.response_timeout_ms) {
                close_abortively(cs->fd);
                cs->abort = 1;
                slow++;
            } else {
                continue;
            }
            /* MHD's thread sees the end of the stream and closes the connection. */
            shutdown(cs->fd, SHUT_RDWR);
            cs->cut = 1;
        }
        pthread_mutex_unlock(&h->mu);
        for (int i = 0; i < cut; i++)
            saga_http_count_refused(SAGA_HTTP_REFUSED_DEADLINE);
        for (int i = 0; i < slow; i++)
            saga_http_count_refused(SAGA_HTTP_REFUSED_RESPONSE_DEADLINE);
        if (cut)
            saga_log(SAGA_LOG_DEBUG, NULL,
                     "http: %d connection(s) closed: no whole request within %ld ms"
                     " (HTTP_REQUEST_TIMEOUT)",
                     cut, h->conf.request_timeout_ms);
        if (slow)
            saga_log(SAGA_LOG_DEBUG, NULL,
                     "http: %d connection(s) closed: an answer not taken within %ld ms"
                     " (HTTP_RESPONSE_TIMEOUT)",
                     slow, h->conf.response_timeout_ms);
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
    struct cidr proxies[MAX_PROXIES];
    char host[256];
    long n;
    int64_t ms;
    int port;
    saga_err_t err;

    if ((err = saga_env_long("HTTP_MAX_CONNECTIONS", SAGA_HTTP_MAX_CONNECTIONS, 16, 100000, &n,
                             errstr, errstr_size)))
        return err;
    conf->max_connections = (int)n;
    if ((err = saga_env_long("HTTP_MAX_CONNECTIONS_PER_CLIENT", SAGA_HTTP_MAX_PER_CLIENT, 1, 100000,
                             &n, errstr, errstr_size)))
        return err;
    conf->max_per_client = (int)n;
    /* 0: half of HTTP_MAX_CONNECTIONS (saga_http_start). */
    if ((err = saga_env_long("HTTP_MAX_CONNECTIONS_PER_PROXY", 0, 0, 100000, &n, errstr,
                             errstr_size)))
        return err;
    conf->max_per_proxy = (int)n;
    if ((err = saga_env_long("HTTP_MAX_STREAMS_PER_CLIENT", SAGA_HTTP_MAX_STREAMS_PER_CLIENT, 1,
                             100000, &n, errstr, errstr_size)))
        return err;
    conf->max_streams_per_client = (int)n;
    if ((err = saga_env_duration_ms("HTTP_REQUEST_TIMEOUT", SAGA_HTTP_REQUEST_TIMEOUT_MS, 500,
                                    3600 * 1000, &ms, errstr, errstr_size)))
        return err;
    conf->request_timeout_ms = (long)ms;
    if ((err = saga_env_duration_ms("HTTP_RESPONSE_TIMEOUT", SAGA_HTTP_RESPONSE_TIMEOUT_MS, 1000,
                                    3600 * 1000, &ms, errstr, errstr_size)))
        return err;
    conf->response_timeout_ms = (long)ms;
    conf->trusted_proxies = saga_env("HTTP_TRUSTED_PROXIES", NULL);
    if (parse_cidrs(conf->trusted_proxies, proxies, MAX_PROXIES, errstr, errstr_size) < 0)
        return SAGA_ERR_CONFIG;
    conf->internal_addr = saga_env("HTTP_INTERNAL_ADDR", NULL);
    if (conf->internal_addr &&
        (saga_parse_hostport(conf->internal_addr, host, sizeof(host), &port) != SAGA_OK ||
         port < 0 || port > 65535))
        return saga_errf(SAGA_ERR_CONFIG, errstr, errstr_size,
                         "HTTP_INTERNAL_ADDR: expected host:port (e.g. 0.0.0.0:9090), got '%s'",
                         conf->internal_addr);
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
/*
 * MHD's messages, at most MHD_LOG_PER_S a second: out of descriptors, MHD says so
 * on every accept it retries (half a million lines a second were seen).
 */
#define MHD_LOG_PER_S 20
static void mhd_log(void *cls, const char *fmt, va_list ap)
{
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    static int64_t window;          /* under mu: the second being counted */
    static long in_window, dropped; /* under mu */
    long was_dropped = 0;
    int64_t now = saga_mono_ms() / 1000;
    char buf[512];
    size_t n;
    (void)cls;

    pthread_mutex_lock(&mu);
    if (now != window) {
        was_dropped = dropped;
        window = now;
        in_window = dropped = 0;
    }
    if (++in_window > MHD_LOG_PER_S) {
        dropped++;
        pthread_mutex_unlock(&mu);
        return;
    }
    pthread_mutex_unlock(&mu);
    if (was_dropped)
        saga_log(SAGA_LOG_WARN, NULL, "http: %ld more messages in the last second not logged",
                 was_dropped);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    n = strlen(buf);
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        buf[--n] = '\0';
    saga_log(SAGA_LOG_WARN, NULL, "http: %s", buf);
}

/*
 * The soft RLIMIT_NOFILE raised to the hard limit, once per process: every
 * connection holds two or three descriptors. Returns the limit now in force.
 */
static long open_files_limit(void)
{
    static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
    static long limit; /* under mu */
    struct rlimit rl;

    pthread_mutex_lock(&mu);
    if (!limit) {
        if (getrlimit(RLIMIT_NOFILE, &rl) != 0) {
            limit = 1024;
        } else {
            rlim_t was = rl.rlim_cur;
            if (rl.rlim_cur < rl.rlim_max) {
                rl.rlim_cur = rl.rlim_max;
                if (setrlimit(RLIMIT_NOFILE, &rl) != 0)
                    rl.rlim_cur = was;
            }
            limit =
                rl.rlim_cur == RLIM_INFINITY || rl.rlim_cur > 1048576 ? 1048576 : (long)rl.rlim_cur;
            if (rl.rlim_cur != was)
                saga_info("open files: RLIMIT_NOFILE raised from %lu to %ld", (unsigned long)was,
                          limit);
            else
                saga_info("open files: RLIMIT_NOFILE %ld", limit);
        }
    }
    pthread_mutex_unlock(&mu);
    return limit;
}

/* Starts a daemon for l on host:port; NULL (errstr set) on failure. */
static struct MHD_Daemon *listen_on(struct saga_http *h, struct listener *l, const char *host,
                                    int port, unsigned limit, int tls, int *bound_port,
                                    char *errstr, size_t errstr_size)
{
    struct addrinfo hints = {0}, *ai = NULL;
    struct MHD_Daemon *d;
    const union MHD_DaemonInfo *info;
    char service[16];
    /* A thread per connection: a handler or a stream may block without holding
     * up other connections; max_connections caps the threads, and
     * max_per_client keeps one client from taking them all. */
    unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_THREAD_PER_CONNECTION |
                     MHD_USE_ERROR_LOG | MHD_USE_AUTO;
    struct MHD_OptionItem opts[8];
    int rc, n = 0;

    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE | AI_NUMERICSERV;
    snprintf(service, sizeof(service), "%d", port);
    if ((rc = getaddrinfo(host, service, &hints, &ai)) != 0) {
        snprintf(errstr, errstr_size, "%s: cannot resolve '%s': %s",
                 l->internal ? "HTTP_INTERNAL_ADDR" : "HTTP_LISTEN", host, gai_strerror(rc));
        return NULL;
    }
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    if (tls) {
        flags |= MHD_USE_TLS;
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_CERT, 0, h->tls_cert};
        opts[n++] = (struct MHD_OptionItem){MHD_OPTION_HTTPS_MEM_KEY, 0, h->tls_key};
    }
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_SOCK_ADDR, 0, ai->ai_addr};
    /* MHD's own timeout starts again with every byte: it only ends idle connections.
     * The watchdog enforces request_timeout_ms. */
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_TIMEOUT, 30, NULL};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_CONNECTION_LIMIT, (intptr_t)limit, NULL};
    opts[n++] = (struct MHD_OptionItem){MHD_OPTION_END, 0, NULL};
    d = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, access_cb, l,
                         MHD_OPTION_EXTERNAL_LOGGER, mhd_log, NULL, MHD_OPTION_NOTIFY_COMPLETED,
                         completed_cb, l, MHD_OPTION_NOTIFY_CONNECTION, connection_cb, l,
                         MHD_OPTION_ARRAY, opts, MHD_OPTION_END);
    freeaddrinfo(ai);
    if (!d) {
        snprintf(errstr, errstr_size, "%s: cannot listen on %s:%d (address in use or not local%s?)",
                 l->internal ? "HTTP_INTERNAL_ADDR" : "HTTP_LISTEN", host, port,
                 tls ? ", or a bad API_TLS_CERT/API_TLS_KEY" : "");
        return NULL;
    }
    info = MHD_get_daemon_info(d, MHD_DAEMON_INFO_BIND_PORT);
    *bound_port = info ? info->port : port;
    return d;
}

/* How many public connections the descriptors allow, within conf's cap. */
static int connection_budget(const struct saga_http *h)
{
    long nofile = open_files_limit();
    long avail = nofile - FD_RESERVE - REFUSE_SLACK -
                 (h->conf.internal_addr ? 2 * (SAGA_HTTP_INTERNAL_CONNECTIONS + REFUSE_SLACK) : 0);
    long fit = avail / FDS_PER_CONNECTION;

    if (fit >= h->conf.max_connections)
        return h->conf.max_connections;
    if (fit < 16)
        fit = 16;
    saga_warn("http: HTTP_MAX_CONNECTIONS %d lowered to %ld: RLIMIT_NOFILE %ld leaves"
              " descriptors for no more (%d per connection, %d kept for the rest)",
              h->conf.max_connections, fit, nofile, FDS_PER_CONNECTION, FD_RESERVE);
    return (int)fit;
}

static void http_free(struct saga_http *h)
{
    if (h->internal_d)
        MHD_stop_daemon(h->internal_d);
    if (h->d)
        MHD_stop_daemon(h->d);
    atomic_store(&h->stopping, 1);
    if (h->watching)
        pthread_join(h->watchdog, NULL);
    if (h->sems > 0)
        sem_destroy(&h->turns);
    if (h->sems > 1)
        sem_destroy(&h->internal_turns);
    pthread_mutex_destroy(&h->mu);
    free(h->tls_cert);
    free(h->tls_key);
    free(h);
}

/* locality: the thread that owns the server (the program's main thread). locks: none;
 * starts MHD's threads and the watchdog. */
saga_err_t saga_http_start(struct saga_http **out, const struct saga_http_conf *conf, char *errstr,
                           size_t errstr_size)
{
    struct saga_http *h;
    char why[300], ihost[256];
    const char *host = conf->host && *conf->host ? conf->host : "127.0.0.1";
    int iport = 0, tls = 0;

    *out = NULL;
    if (!(h = calloc(1, sizeof(*h))))
        return saga_errf(SAGA_ERR_NOMEM, errstr, errstr_size, "HTTP server: out of memory");
    h->conf = *conf;
    h->pub = (struct listener){h, 0};
    h->internal = (struct listener){h, 1};
    if (!h->conf.max_body)
        h->conf.max_body = 64 * 1024;
    if (h->conf.threads <= 0)
        h->conf.threads = 4;
    if (h->conf.max_per_client <= 0)
        h->conf.max_per_client = SAGA_HTTP_MAX_PER_CLIENT;
    if (h->conf.request_timeout_ms <= 0)
        h->conf.request_timeout_ms = SAGA_HTTP_REQUEST_TIMEOUT_MS;
    if (h->conf.response_timeout_ms <= 0)
        h->conf.response_timeout_ms = SAGA_HTTP_RESPONSE_TIMEOUT_MS;
    if (h->conf.max_streams_per_client <= 0)
        h->conf.max_streams_per_client = SAGA_HTTP_MAX_STREAMS_PER_CLIENT;
    if (h->conf.max_connections <= 0)
        h->conf.max_connections = SAGA_HTTP_MAX_CONNECTIONS;
    pthread_mutex_init(&h->mu, NULL);
    if (sem_init(&h->turns, 0, (unsigned)h->conf.threads) == 0)
        h->sems = 1;
    if (h->sems == 1 && sem_init(&h->internal_turns, 0, INTERNAL_THREADS) == 0)
        h->sems = 2;
    if (h->sems < 2) {
        snprintf(errstr, errstr_size, "HTTP server: sem_init: %s", strerror(errno));
        http_free(h);
        return SAGA_ERR_NOMEM;
    }
    if ((h->nproxies = parse_cidrs(h->conf.trusted_proxies, h->proxies, MAX_PROXIES, errstr,
                                   errstr_size)) < 0) {
        h->nproxies = 0;
        http_free(h);
        return SAGA_ERR_CONFIG;
    }
    if (h->conf.internal_addr) {
        if (saga_parse_hostport(h->conf.internal_addr, ihost, sizeof(ihost), &iport) != SAGA_OK) {
            snprintf(errstr, errstr_size, "HTTP_INTERNAL_ADDR: expected host:port, got '%s'",
                     h->conf.internal_addr);
            http_free(h);
            return SAGA_ERR_CONFIG;
        }
        if (!ihost[0])
            snprintf(ihost, sizeof(ihost), "0.0.0.0");
    }
    if (h->conf.tls_cert && *h->conf.tls_cert) {
        if (MHD_is_feature_supported(MHD_FEATURE_TLS) != MHD_YES) {
            snprintf(errstr, errstr_size, "API_TLS_CERT: this libmicrohttpd has no TLS");
            http_free(h);
            return SAGA_ERR_CONFIG;
        }
        if (!(h->tls_cert = read_pem(h->conf.tls_cert, why, sizeof(why))) ||
            !(h->tls_key = read_pem(h->conf.tls_key ? h->conf.tls_key : "", why, sizeof(why)))) {
            snprintf(errstr, errstr_size, "API_TLS_CERT/API_TLS_KEY: %s", why);
            http_free(h);
            return SAGA_ERR_CONFIG;
        }
        tls = 1;
    }
    h->max_connections = connection_budget(h);
    h->max_per_proxy = h->conf.max_per_proxy > 0 ? h->conf.max_per_proxy : h->max_connections / 2;
    if (h->max_per_proxy < 1)
        h->max_per_proxy = 1;
    if (!(h->d =
              listen_on(h, &h->pub, host, conf->port, (unsigned)(h->max_connections + REFUSE_SLACK),
                        tls, &h->port, errstr, errstr_size))) {
        http_free(h);
        return SAGA_ERR_CONFIG;
    }
    /* Probes and scrapes come from inside the cluster: plain http. */
    if (h->conf.internal_addr &&
        !(h->internal_d = listen_on(h, &h->internal, ihost, iport,
                                    SAGA_HTTP_INTERNAL_CONNECTIONS + REFUSE_SLACK, 0,
                                    &h->internal_port, errstr, errstr_size))) {
        http_free(h);
        return SAGA_ERR_CONFIG;
    }
    if (pthread_create(&h->watchdog, NULL, watchdog_main, h) == 0)
        h->watching = 1;
    if (h->internal_d)
        saga_info("internal listener on http://%s:%d (healthz, readyz, metrics)", ihost,
                  h->internal_port);
    *out = h;
    return SAGA_OK;
}

int saga_http_port(const struct saga_http *h)
{
    return h->port;
}

int saga_http_internal_port(const struct saga_http *h)
{
    return h->internal_port;
}

const char *saga_http_scheme(const struct saga_http *h)
{
    return h->tls_cert ? "https" : "http";
}

/* locality: the thread that started h. locks: none held by the caller; joins MHD's
 * threads and the watchdog. */
void saga_http_stop(struct saga_http *h)
{
    if (!h)
        return;
    http_free(h);
}
