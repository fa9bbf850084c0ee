/*
 * The OTLP/HTTP JSON span exporter of saga/otel.h: configuration, sampler, the span ring
 * and its exporter thread.
 *
 * Why JSON and not protobuf: the OTLP/HTTP JSON encoding is part of the OTLP
 * specification and every collector and Jaeger accept it; it needs no generated code
 * (protobuf-c and a compiled copy of the OTLP .proto files would be a new dependency and
 * a build step for every consumer of this repository), and jansson and libcurl are
 * already dependencies (libcurl posts; the body is written by hand, below). What it costs
 * — a larger body — is paid on the exporter thread, never by a handler
 * (docs/BENCHMARKS.md, "Tracing").
 */
#include "saga/otel.h"

#include <errno.h>
#include <inttypes.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>

#include <curl/curl.h>

#include "saga/clock.h"
#include "saga/config.h"
#include "saga/http.h"
#include "saga/log.h"
#include "saga/metrics.h"
#include "saga/trace.h"
#include "saga/utf8.h"

_Atomic int saga_otel_enabled_flag;

#define MAX_RESOURCE        32
#define MAX_HEADERS         16
#define SAGA_OTEL_MAX_QUEUE 65536 /* OTEL_BSP_MAX_QUEUE_SIZE at most */

/* The exporter's state. The configuration is written by saga_otel_init and
 * saga_otel_shutdown (main thread) while no other thread uses it; the ring and
 * stop/flush are under mu; the counters are atomics. */
static struct {
    struct saga_sampler sampler;
    char *endpoint;
    char *res_kv[2 * MAX_RESOURCE]; /* key, value, ... (service.name first) */
    int nres;
    struct curl_slist *headers;
    long timeout_ms;
    long queue_size, batch_size, delay_ms, shutdown_ms;
    /* the ring, under mu */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct saga_span *ring;
    long head, n;
    int stop, flush;
    pthread_t thread;
    int started;
    _Atomic uint64_t exported, dropped_full, dropped_failed;
} X = {.mu = PTHREAD_MUTEX_INITIALIZER, .cv = PTHREAD_COND_INITIALIZER};

/* --- time, sampling ------------------------------------------------------------------- */

int64_t saga_otel_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int saga_sampler_parse(const char *name, const char *arg, struct saga_sampler *out, char *errstr,
                       size_t errstr_size)
{
    static const struct {
        const char *name;
        enum saga_sampler_kind root;
        int parent_based;
    } known[] = {
        {"always_on", SAGA_SAMPLER_ALWAYS_ON, 0},
        {"always_off", SAGA_SAMPLER_ALWAYS_OFF, 0},
        {"traceidratio", SAGA_SAMPLER_RATIO, 0},
        {"parentbased_always_on", SAGA_SAMPLER_ALWAYS_ON, 1},
        {"parentbased_always_off", SAGA_SAMPLER_ALWAYS_OFF, 1},
        {"parentbased_traceidratio", SAGA_SAMPLER_RATIO, 1},
    };
    if (!name || !*name)
        name = "parentbased_always_on";
    for (size_t i = 0; i < sizeof(known) / sizeof(known[0]); i++) {
        if (strcmp(name, known[i].name) != 0)
            continue;
        out->root = known[i].root;
        out->parent_based = known[i].parent_based;
        out->ratio = 1.0;
        if (out->root == SAGA_SAMPLER_RATIO && arg && *arg) {
            char *end;
            errno = 0;
            out->ratio = strtod(arg, &end);
            if (errno || *end || !(out->ratio >= 0.0 && out->ratio <= 1.0)) {
                snprintf(errstr, errstr_size,
                         "OTEL_TRACES_SAMPLER_ARG '%s' is not a ratio between 0 and 1", arg);
                return -1;
            }
        }
        return 0;
    }
    snprintf(errstr, errstr_size,
             "OTEL_TRACES_SAMPLER '%s' is not one of always_on, always_off, traceidratio, "
             "parentbased_always_on, parentbased_always_off, parentbased_traceidratio",
             name);
    return -1;
}

int saga_sampler_decide(const struct saga_sampler *s, const char *trace_id, int has_parent,
                        int parent_sampled)
{
    uint64_t v = 0;
    if (has_parent && s->parent_based)
        return parent_sampled;
    switch (s->root) {
    case SAGA_SAMPLER_ALWAYS_ON:
        return 1;
    case SAGA_SAMPLER_ALWAYS_OFF:
        return 0;
    case SAGA_SAMPLER_RATIO:
        if (s->ratio >= 1.0)
            return 1;
        if (s->ratio <= 0.0)
            return 0;
        for (int i = 16; i < 32 && trace_id[i]; i++) {
            char c = trace_id[i];
            v = v << 4 | (uint64_t)(c <= '9' ? c - '0' : c - 'a' + 10);
        }
        /* in integers: 0x7fffffffffffffff as a double is already 2^63 */
        return v < (uint64_t)(s->ratio * 18446744073709551616.0);
    }
    return 0;
}

const char *saga_otel_root_flags(const char *trace_id)
{
    if (!saga_otel_enabled())
        return "01";
    return saga_sampler_decide(&X.sampler, trace_id, 0, 0) ? "01" : "00";
}

void saga_otel_child(const char *parent, char out[56])
{
    /* Per thread: splitmix64 seeded once from getrandom (no syscall per span). */
    static _Thread_local uint64_t state;
    static const char hex[] = "0123456789abcdef";
    uint64_t z;
    if (!saga_traceparent_valid(parent)) {
        saga_traceparent_new(out);
        return;
    }
    if (!state && getrandom(&state, sizeof(state), 0) != (ssize_t)sizeof(state))
        state = (uint64_t)saga_otel_now_ns();
    do {
        z = (state += 0x9e3779b97f4a7c15ULL);
        z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
        z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
        z ^= z >> 31;
    } while (!z);
    memcpy(out, parent, SAGA_TRACEPARENT_LEN + 1);
    for (int i = 0; i < 16; i++)
        out[36 + i] = hex[(z >> (60 - 4 * i)) & 15];
}

void saga_otel_traceparent_root(char out[56])
{
    saga_traceparent_new(out);
    memcpy(out + 53, saga_otel_root_flags(out + 3), 2);
}

/* --- spans (any thread) --------------------------------------------------------------- */

/* The sampled flag of a valid traceparent: bit 0 of its flags, two hex digits (the last
 * digit's value, not its character: 'b' is odd, 0x62 is not). */
static int sampled_flag(const char *tp)
{
    char c = tp[54];
    return ((c <= '9' ? c - '0' : c - 'a' + 10) & 1) != 0;
}

int saga_span_begin_at(struct saga_span *s, const char *name, int kind, const char *self,
                       const char *parent, int64_t start_ns)
{
    int has_parent;
    s->recording = 0;
    if (!saga_otel_enabled() || !saga_traceparent_valid(self))
        return 0;
    has_parent = saga_traceparent_valid(parent);
    if (!saga_sampler_decide(&X.sampler, self + 3, has_parent,
                             sampled_flag(has_parent ? parent : self)))
        return 0;
    s->recording = 1;
    memcpy(s->trace_id, self + 3, 32);
    s->trace_id[32] = '\0';
    memcpy(s->span_id, self + 36, 16);
    s->span_id[16] = '\0';
    if (has_parent && strncmp(parent + 3, self + 3, 32) == 0) {
        memcpy(s->parent_id, parent + 36, 16);
        s->parent_id[16] = '\0';
    } else {
        s->parent_id[0] = '\0';
    }
    snprintf(s->name, sizeof(s->name), "%s", name);
    s->kind = kind;
    s->status = SAGA_SPAN_UNSET;
    s->status_msg[0] = '\0';
    s->nattrs = 0;
    s->start_ns = start_ns;
    s->end_ns = 0;
    return 1;
}

int saga_span_begin(struct saga_span *s, const char *name, int kind, const char *self,
                    const char *parent)
{
    if (!saga_otel_enabled()) {
        s->recording = 0;
        return 0;
    }
    return saga_span_begin_at(s, name, kind, self, parent, saga_otel_now_ns());
}

/* Copies src into dst (size n), cut at a character boundary, invalid bytes as '?'. */
static void copy_utf8(char *dst, size_t n, const char *src)
{
    size_t o = 0, len = strlen(src);
    for (size_t i = 0; i < len && o + 1 < n;) {
        size_t step = saga_utf8_seq_len((const unsigned char *)src + i, len - i);
        if (!step) {
            dst[o++] = '?';
            i++;
            continue;
        }
        if (o + step >= n)
            break;
        memcpy(dst + o, src + i, step);
        o += step;
        i += step;
    }
    dst[o] = '\0';
}

static struct saga_span_attr *attr_slot(struct saga_span *s, const char *key)
{
    if (!s->recording || s->nattrs >= SAGA_SPAN_MAX_ATTRS)
        return NULL;
    s->attrs[s->nattrs].key = key;
    return &s->attrs[s->nattrs++];
}

void saga_span_str(struct saga_span *s, const char *key, const char *value)
{
    struct saga_span_attr *a;
    if (!value || !(a = attr_slot(s, key)))
        return;
    a->type = 0;
    copy_utf8(a->s, sizeof(a->s), value);
}

void saga_span_int(struct saga_span *s, const char *key, int64_t value)
{
    struct saga_span_attr *a = attr_slot(s, key);
    if (!a)
        return;
    a->type = 1;
    a->i = value;
}

void saga_span_bool(struct saga_span *s, const char *key, int value)
{
    struct saga_span_attr *a = attr_slot(s, key);
    if (!a)
        return;
    a->type = 2;
    a->i = value != 0;
}

void saga_span_error(struct saga_span *s, const char *fmt, ...)
{
    char buf[sizeof(s->status_msg)];
    va_list ap;
    if (!s->recording)
        return;
    va_start(ap, fmt);
    vsnprintf(buf, sizeof(buf), fmt, ap);
    va_end(ap);
    copy_utf8(s->status_msg, sizeof(s->status_msg), buf);
    s->status = SAGA_SPAN_ERROR;
}

/* locality: any thread (the span's owner). locks: takes X.mu to queue the span. */
void saga_span_end_at(struct saga_span *s, int64_t end_ns)
{
    if (!s->recording)
        return;
    s->recording = 0;
    s->end_ns = end_ns < s->start_ns ? s->start_ns : end_ns;
    pthread_mutex_lock(&X.mu);
    if (!X.ring || X.stop || X.n >= X.queue_size) {
        pthread_mutex_unlock(&X.mu);
        atomic_fetch_add(&X.dropped_full, 1);
        return;
    }
    X.ring[(X.head + X.n) % X.queue_size] = *s;
    X.n++;
    if (X.n == 1 || X.n >= X.batch_size) /* the first span wakes an idle exporter */
        pthread_cond_signal(&X.cv);
    pthread_mutex_unlock(&X.mu);
}

void saga_span_end(struct saga_span *s)
{
    if (!s->recording)
        return;
    saga_span_end_at(s, saga_otel_now_ns());
}

/* --- encoding ----------------------------------------------------------------------- */

/*
 * Written by hand into one growing buffer: with jansson (an object per span and per
 * attribute, then a dump) the exporter thread spent more CPU per span than the span's
 * whole life on the handler's side. Strings are escaped for JSON; span strings are valid
 * UTF-8 already (copy_utf8), resource values come from the environment as they are.
 */
struct jbuf {
    char *p;
    size_t n, cap;
    int oom;
};

static void jreserve(struct jbuf *b, size_t more)
{
    char *np;
    size_t cap;
    if (b->oom || b->n + more + 1 <= b->cap)
        return;
    cap = b->cap ? b->cap : 4096;
    while (cap < b->n + more + 1)
        cap *= 2;
    if (!(np = realloc(b->p, cap))) {
        b->oom = 1;
        return;
    }
    b->p = np;
    b->cap = cap;
}

static void jraw(struct jbuf *b, const char *s, size_t len)
{
    jreserve(b, len);
    if (b->oom)
        return;
    memcpy(b->p + b->n, s, len);
    b->n += len;
    b->p[b->n] = '\0';
}

#define JLIT(b, lit) jraw(b, lit, sizeof(lit) - 1)

/* A JSON string, quoted and escaped. */
static void jstr(struct jbuf *b, const char *s)
{
    static const char hex[] = "0123456789abcdef";
    size_t len = strlen(s);
    jreserve(b, 6 * len + 2);
    if (b->oom)
        return;
    b->p[b->n++] = '"';
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c == '"' || *c == '\\') {
            b->p[b->n++] = '\\';
            b->p[b->n++] = (char)*c;
        } else if (*c < 0x20) {
            memcpy(b->p + b->n, "\\u00", 4);
            b->p[b->n + 4] = hex[*c >> 4];
            b->p[b->n + 5] = hex[*c & 15];
            b->n += 6;
        } else {
            b->p[b->n++] = (char)*c;
        }
    }
    b->p[b->n++] = '"';
    b->p[b->n] = '\0';
}

static void jint_str(struct jbuf *b, int64_t v) /* int64 as a JSON string, as OTLP/JSON has it */
{
    char t[32];
    int len = snprintf(t, sizeof(t), "\"%" PRId64 "\"", v);
    jraw(b, t, (size_t)len);
}

static void jkv_string(struct jbuf *b, const char *k, const char *v)
{
    JLIT(b, "{\"key\":");
    jstr(b, k);
    JLIT(b, ",\"value\":{\"stringValue\":");
    jstr(b, v);
    JLIT(b, "}}");
}

static void span_json(struct jbuf *b, const struct saga_span *s)
{
    char t[48];
    int len;
    JLIT(b, "{\"traceId\":\"");
    jraw(b, s->trace_id, strlen(s->trace_id));
    JLIT(b, "\",\"spanId\":\"");
    jraw(b, s->span_id, strlen(s->span_id));
    JLIT(b, "\"");
    if (s->parent_id[0]) {
        JLIT(b, ",\"parentSpanId\":\"");
        jraw(b, s->parent_id, strlen(s->parent_id));
        JLIT(b, "\"");
    }
    JLIT(b, ",\"name\":");
    jstr(b, s->name);
    len = snprintf(t, sizeof(t), ",\"kind\":%d", s->kind);
    jraw(b, t, (size_t)len);
    JLIT(b, ",\"startTimeUnixNano\":");
    jint_str(b, s->start_ns);
    JLIT(b, ",\"endTimeUnixNano\":");
    jint_str(b, s->end_ns);
    JLIT(b, ",\"attributes\":[");
    for (int i = 0; i < s->nattrs; i++) {
        const struct saga_span_attr *a = &s->attrs[i];
        if (i)
            JLIT(b, ",");
        JLIT(b, "{\"key\":");
        jstr(b, a->key);
        if (a->type == 0) {
            JLIT(b, ",\"value\":{\"stringValue\":");
            jstr(b, a->s);
        } else if (a->type == 1) {
            JLIT(b, ",\"value\":{\"intValue\":");
            jint_str(b, a->i);
        } else if (a->i) {
            JLIT(b, ",\"value\":{\"boolValue\":true");
        } else {
            JLIT(b, ",\"value\":{\"boolValue\":false");
        }
        JLIT(b, "}}");
    }
    if (s->status == SAGA_SPAN_ERROR) {
        if (s->nattrs)
            JLIT(b, ",");
        jkv_string(b, "error.type", s->status_msg);
    }
    JLIT(b, "]");
    if (s->status != SAGA_SPAN_UNSET) {
        len = snprintf(t, sizeof(t), ",\"status\":{\"code\":%d,\"message\":", s->status);
        jraw(b, t, (size_t)len);
        jstr(b, s->status_msg);
        JLIT(b, "}");
    }
    JLIT(b, "}");
}

char *saga_otel_encode(const char *const *resource_kv, int nresource, const struct saga_span *spans,
                       int n)
{
    struct jbuf b = {0};
    JLIT(&b, "{\"resourceSpans\":[{\"resource\":{\"attributes\":[");
    for (int i = 0; i < nresource; i++) {
        if (i)
            JLIT(&b, ",");
        jkv_string(&b, resource_kv[2 * i], resource_kv[2 * i + 1]);
    }
    JLIT(&b, "]},\"scopeSpans\":[{\"scope\":{\"name\":\"order-saga\",\"version\":\"" SAGA_VERSION
             "\"},\"spans\":[");
    for (int i = 0; i < n; i++) {
        if (i)
            JLIT(&b, ",");
        span_json(&b, &spans[i]);
    }
    JLIT(&b, "]}]}]}");
    if (b.oom) {
        free(b.p);
        return NULL;
    }
    return b.p;
}

/* --- configuration -------------------------------------------------------------------- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    c = (char)(c | 32);
    return c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
}

static void percent_decode(char *s)
{
    char *o = s;
    for (char *p = s; *p; p++) {
        if (*p == '%' && p[1] && p[2] && hexval(p[1]) >= 0 && hexval(p[2]) >= 0) {
            *o++ = (char)(hexval(p[1]) << 4 | hexval(p[2]));
            p += 2;
        } else {
            *o++ = *p;
        }
    }
    *o = '\0';
}

static char *trim(char *s)
{
    char *e;
    while (*s == ' ' || *s == '\t')
        s++;
    e = s + strlen(s);
    while (e > s && (e[-1] == ' ' || e[-1] == '\t'))
        *--e = '\0';
    return s;
}

int saga_otel_parse_pairs(const char *list, void (*fn)(void *arg, const char *k, const char *v),
                          void *arg, char *errstr, size_t errstr_size)
{
    char *copy, *save = NULL;
    int rc = 0;
    if (!list || !*list)
        return 0;
    if (!(copy = strdup(list)))
        abort();
    for (char *item = strtok_r(copy, ",", &save); item; item = strtok_r(NULL, ",", &save)) {
        char *eq = strchr(item, '='), *k, *v;
        if (!*trim(item))
            continue;
        if (!eq) {
            snprintf(errstr, errstr_size, "'%s' is not key=value", trim(item));
            rc = -1;
            break;
        }
        *eq = '\0';
        k = trim(item);
        v = trim(eq + 1);
        percent_decode(k);
        percent_decode(v);
        if (!*k) {
            snprintf(errstr, errstr_size, "an entry has an empty key");
            rc = -1;
            break;
        }
        fn(arg, k, v);
    }
    free(copy);
    return rc;
}

static void add_resource(void *arg, const char *k, const char *v)
{
    (void)arg;
    for (int i = 0; i < X.nres; i++)
        if (strcmp(X.res_kv[2 * i], k) == 0) {
            free(X.res_kv[2 * i + 1]);
            if (!(X.res_kv[2 * i + 1] = strdup(v)))
                abort();
            return;
        }
    if (X.nres >= MAX_RESOURCE)
        return;
    if (!(X.res_kv[2 * X.nres] = strdup(k)) || !(X.res_kv[2 * X.nres + 1] = strdup(v)))
        abort();
    X.nres++;
}

/*
 * A header goes out as one line as it is (libcurl does not check it): a percent-decoded
 * CR or LF would end the line and add headers, or a request, of its own. So a name is
 * printable ASCII without ':' or space, a value has no control character but tab; arg
 * (an int) is set to 1 for one that is not.
 */
static void add_header(void *arg, const char *k, const char *v)
{
    char line[1024];
    int *bad = arg;
    for (const unsigned char *c = (const unsigned char *)k; *c; c++)
        if (*c <= ' ' || *c >= 0x7f || *c == ':')
            *bad = 1;
    for (const unsigned char *c = (const unsigned char *)v; *c; c++)
        if ((*c < ' ' && *c != '\t') || *c == 0x7f)
            *bad = 1;
    if (*bad)
        return;
    snprintf(line, sizeof(line), "%s: %s", k, v);
    X.headers = curl_slist_append(X.headers, line);
}

/* The first of the variables a, b that is set (b may be NULL). */
static const char *env2(const char *a, const char *b)
{
    const char *v = saga_env(a, NULL);
    return v ? v : b ? saga_env(b, NULL) : NULL;
}

/* A number up to 3,600,000 (milliseconds, or spans): what env_ms and env_count read. */
static int env_number(const char *a, const char *b, long def, long *out, const char *what,
                      char *errstr, size_t errstr_size);

static int env_ms(const char *a, const char *b, long def, long *out, char *errstr,
                  size_t errstr_size)
{
    return env_number(a, b, def, out, "a number of milliseconds", errstr, errstr_size);
}

static int env_count(const char *a, long def, long *out, char *errstr, size_t errstr_size)
{
    return env_number(a, NULL, def, out, "a number of spans (up to 3600000)", errstr, errstr_size);
}

static int env_number(const char *a, const char *b, long def, long *out, const char *what,
                      char *errstr, size_t errstr_size)
{
    const char *v = env2(a, b);
    char *end;
    long n;
    if (!v) {
        *out = def;
        return 0;
    }
    errno = 0;
    n = strtol(v, &end, 10);
    if (errno || *end || n < 0 || n > 3600000) {
        snprintf(errstr, errstr_size, "%s '%s' is not %s", saga_env(a, NULL) ? a : b, v, what);
        return -1;
    }
    *out = n;
    return 0;
}

static void release_config(void)
{
    free(X.endpoint);
    X.endpoint = NULL;
    for (int i = 0; i < 2 * X.nres; i++)
        free(X.res_kv[i]);
    X.nres = 0;
    curl_slist_free_all(X.headers);
    X.headers = NULL;
    free(X.ring);
    X.ring = NULL;
}

static void *exporter_main(void *arg);

/* locality: the main thread, once, before any other thread ends a span. locks: none
 * needed then; starts the exporter thread. */
int saga_otel_init(const char *program, char *errstr, size_t errstr_size)
{
    const char *ep = saga_env("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", NULL);
    const char *base = saga_env("OTEL_EXPORTER_OTLP_ENDPOINT", NULL);
    const char *disabled = saga_env("OTEL_SDK_DISABLED", NULL);
    const char *exporter = saga_env("OTEL_TRACES_EXPORTER", NULL);
    const char *proto = env2("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL", "OTEL_EXPORTER_OTLP_PROTOCOL");
    char err[256];
    int bad_header = 0, rc;
    sigset_t all, old;

    saga_otel_enabled_flag = 0;
    if (saga_sampler_parse(saga_env("OTEL_TRACES_SAMPLER", NULL),
                           saga_env("OTEL_TRACES_SAMPLER_ARG", NULL), &X.sampler, errstr,
                           errstr_size))
        return -1;
    if ((disabled && strcmp(disabled, "true") == 0) || (exporter && strcmp(exporter, "none") == 0))
        return 0;
    if (exporter && strcmp(exporter, "otlp") != 0) {
        snprintf(errstr, errstr_size, "OTEL_TRACES_EXPORTER '%s': only otlp (or none) is supported",
                 exporter);
        return -1;
    }
    if (proto && strcmp(proto, "http/json") != 0) {
        snprintf(errstr, errstr_size,
                 "OTEL_EXPORTER_OTLP_PROTOCOL '%s': only http/json is supported (unset means "
                 "http/json here)",
                 proto);
        return -1;
    }
    if (!ep && !base)
        return 0;
    if (ep) {
        X.endpoint = strdup(ep);
    } else {
        size_t l = strlen(base);
        while (l && base[l - 1] == '/')
            l--;
        if ((X.endpoint = malloc(l + sizeof("/v1/traces"))))
            sprintf(X.endpoint, "%.*s/v1/traces", (int)l, base);
    }
    if (!X.endpoint)
        abort();
    if (strncmp(X.endpoint, "http://", 7) != 0 && strncmp(X.endpoint, "https://", 8) != 0) {
        snprintf(errstr, errstr_size, "the OTLP endpoint '%s' is not an http:// or https:// URL",
                 X.endpoint);
        release_config();
        return -1;
    }
    {
        const char *svc = saga_env("OTEL_SERVICE_NAME", NULL);
        add_resource(NULL, "service.name", program);
        if (saga_otel_parse_pairs(saga_env("OTEL_RESOURCE_ATTRIBUTES", NULL), add_resource, NULL,
                                  err, sizeof(err))) {
            snprintf(errstr, errstr_size, "OTEL_RESOURCE_ATTRIBUTES: %s", err);
            release_config();
            return -1;
        }
        if (svc)
            add_resource(NULL, "service.name", svc);
        add_resource(NULL, "telemetry.sdk.name", "order-saga");
        add_resource(NULL, "telemetry.sdk.version", SAGA_VERSION);
    }
    X.headers = curl_slist_append(NULL, "Content-Type: application/json");
    /* No "Expect: 100-continue" round trip before a large batch. */
    X.headers = curl_slist_append(X.headers, "Expect:");
    if (saga_otel_parse_pairs(saga_env("OTEL_EXPORTER_OTLP_HEADERS", NULL), add_header, &bad_header,
                              err, sizeof(err)) ||
        saga_otel_parse_pairs(saga_env("OTEL_EXPORTER_OTLP_TRACES_HEADERS", NULL), add_header,
                              &bad_header, err, sizeof(err)) ||
        (bad_header && snprintf(err, sizeof(err),
                                "a header name or value holds a control character (a decoded "
                                "%%0D, %%0A...) or a name holds ':' or a space") > 0)) {
        snprintf(errstr, errstr_size, "OTEL_EXPORTER_OTLP_HEADERS: %s", err);
        release_config();
        return -1;
    }
    /* Our default export timeout is 3 s, not the specification's 10 s: a batch that takes
     * longer holds the queue behind it, and spans pile up (and are dropped) meanwhile. */
    if (env_ms("OTEL_EXPORTER_OTLP_TRACES_TIMEOUT", "OTEL_EXPORTER_OTLP_TIMEOUT", 3000,
               &X.timeout_ms, errstr, errstr_size) ||
        env_ms("OTEL_BSP_SCHEDULE_DELAY", NULL, 1000, &X.delay_ms, errstr, errstr_size) ||
        env_ms("OTEL_BSP_EXPORT_TIMEOUT", NULL, 5000, &X.shutdown_ms, errstr, errstr_size) ||
        env_count("OTEL_BSP_MAX_QUEUE_SIZE", 2048, &X.queue_size, errstr, errstr_size) ||
        env_count("OTEL_BSP_MAX_EXPORT_BATCH_SIZE", 512, &X.batch_size, errstr, errstr_size)) {
        release_config();
        return -1;
    }
    /* The specification: the batch is at most the queue, or a full queue would never be a
     * full batch, and spans would be dropped until the schedule delay. */
    if (X.batch_size > X.queue_size)
        X.batch_size = X.queue_size;
    if (X.queue_size < 1 || X.batch_size < 1) {
        snprintf(errstr, errstr_size,
                 "OTEL_BSP_MAX_QUEUE_SIZE and OTEL_BSP_MAX_EXPORT_BATCH_SIZE must be at least 1");
        release_config();
        return -1;
    }
    /* The queue is allocated at start: beyond this it would take more memory than any
     * program here has (about 2 KB a span: 128 MiB at the limit, and as much again for an export
     * batch as large). */
    if (X.queue_size > SAGA_OTEL_MAX_QUEUE) {
        snprintf(errstr, errstr_size,
                 "OTEL_BSP_MAX_QUEUE_SIZE %ld is too large: at most %d spans (each holds "
                 "about %zu bytes, allocated at start)",
                 X.queue_size, SAGA_OTEL_MAX_QUEUE, sizeof(*X.ring));
        release_config();
        return -1;
    }
    if (X.timeout_ms < 1)
        X.timeout_ms = 1;
    if (!(X.ring = calloc((size_t)X.queue_size, sizeof(*X.ring)))) {
        snprintf(errstr, errstr_size, "OTEL_BSP_MAX_QUEUE_SIZE %ld: out of memory", X.queue_size);
        release_config();
        return -1;
    }
    X.head = X.n = 0;
    X.stop = X.flush = 0;
    curl_global_init(CURL_GLOBAL_DEFAULT);
    /* The exporter takes no signal: a SIGTERM goes to a thread that acts on it at once.
     * Except a fault of its own: one raised while blocked is undefined (POSIX), and Linux
     * then kills the process without the sanitizers' handler and its report. */
    sigfillset(&all);
    sigdelset(&all, SIGSEGV);
    sigdelset(&all, SIGBUS);
    sigdelset(&all, SIGFPE);
    sigdelset(&all, SIGILL);
    sigdelset(&all, SIGTRAP);
    sigdelset(&all, SIGSYS);
    pthread_sigmask(SIG_SETMASK, &all, &old);
    rc = pthread_create(&X.thread, NULL, exporter_main, NULL);
    pthread_sigmask(SIG_SETMASK, &old, NULL);
    if (rc != 0) {
        snprintf(errstr, errstr_size, "cannot start the span exporter thread");
        curl_global_cleanup();
        release_config();
        return -1;
    }
    X.started = 1;
    saga_otel_enabled_flag = 1;
    return 0;
}

/* --- the exporter thread ------------------------------------------------------------- */

static size_t discard(char *p, size_t size, size_t n, void *arg)
{
    (void)p;
    (void)arg;
    return size * n;
}

/* One POST; the HTTP status, or 0 when it did not get through (connection, timeout). Once
 * stopping (deadline set), it may not outlive the deadline. */
static long post(CURL *curl, const char *body, int64_t deadline)
{
    long code = 0, timeout = X.timeout_ms;
    if (deadline) {
        int64_t left = deadline - saga_mono_ms();
        if (left <= 0)
            return 0;
        if (left < timeout)
            timeout = (long)left;
    }
    curl_easy_setopt(curl, CURLOPT_URL, X.endpoint);
    curl_easy_setopt(curl, CURLOPT_HTTPHEADER, X.headers);
    curl_easy_setopt(curl, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(curl, CURLOPT_TIMEOUT_MS, timeout);
    curl_easy_setopt(curl, CURLOPT_CONNECTTIMEOUT_MS, timeout);
    curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(curl, CURLOPT_WRITEFUNCTION, discard);
    if (curl_easy_perform(curl) != CURLE_OK)
        return 0;
    curl_easy_getinfo(curl, CURLINFO_RESPONSE_CODE, &code);
    return code;
}

/* Waits ms unless stopping; 1 if stopping. locality: the exporter thread. locks: takes
 * X.mu, holds none on return. */
static int pause_ms(int64_t ms)
{
    struct timespec until;
    int stop;
    clock_gettime(CLOCK_REALTIME, &until);
    until.tv_sec += ms / 1000;
    until.tv_nsec += (ms % 1000) * 1000000;
    if (until.tv_nsec >= 1000000000) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000;
    }
    pthread_mutex_lock(&X.mu);
    while (!X.stop && pthread_cond_timedwait(&X.cv, &X.mu, &until) != ETIMEDOUT)
        ;
    stop = X.stop;
    pthread_mutex_unlock(&X.mu);
    return stop;
}

/*
 * Exports batch[0..n): retried with backoff (0.2 s doubling to 3.2 s, 5 tries) when the
 * collector cannot be reached or says 429/502/503/504, which OTLP calls retryable;
 * meanwhile the ring fills and drops what does not fit. Once stopping (deadline set, or
 * set while waiting), retries go on only while the shutdown deadline allows.
 */
/* locality: the exporter thread. locks: none held (posts with X.mu released). */
static void export_batch(CURL *curl, const struct saga_span *batch, int n, int64_t deadline)
{
    char *body = saga_otel_encode((const char *const *)X.res_kv, X.nres, batch, n);
    long code = 0;
    if (!body) {
        atomic_fetch_add(&X.dropped_failed, (uint64_t)n);
        return;
    }
    for (int attempt = 0; attempt < 5; attempt++) {
        int64_t wait = 200LL << attempt;
        code = post(curl, body, deadline);
        if (code >= 200 && code < 300)
            break;
        if ((code && code != 429 && code != 502 && code != 503 && code != 504) || attempt == 4)
            break;
        if (!deadline) {
            if (pause_ms(wait)) /* stopping: go on under the shutdown deadline */
                deadline = saga_mono_ms() + X.shutdown_ms;
        } else {
            struct timespec ts = {(time_t)(wait / 1000), (long)(wait % 1000) * 1000000L};
            if (saga_mono_ms() + wait >= deadline)
                break;
            nanosleep(&ts, NULL);
        }
    }
    free(body);
    if (code >= 200 && code < 300) {
        atomic_fetch_add(&X.exported, (uint64_t)n);
    } else {
        atomic_fetch_add(&X.dropped_failed, (uint64_t)n);
        saga_log(SAGA_LOG_DEBUG, NULL, "span export to %s failed (%s %ld): %d spans lost",
                 X.endpoint, code ? "HTTP" : "unreachable", code, n);
    }
}

/* The exporter thread: takes batches off the ring under X.mu, exports them without it. */
static void *exporter_main(void *arg)
{
    CURL *curl = curl_easy_init();
    struct saga_span *batch = calloc((size_t)X.batch_size, sizeof(*batch));
    int64_t deadline = 0;
    (void)arg;
    if (!curl || !batch)
        abort();
    for (;;) {
        int n = 0;
        struct timespec until;
        pthread_mutex_lock(&X.mu);
        /* Idle, the thread sleeps until the first span (saga_span_end_at wakes it): with
         * OTEL_BSP_SCHEDULE_DELAY=0 a timed wait alone would return at once, round after
         * round, and spin. The delay counts from the first span of a batch. */
        while (!X.stop && X.n == 0)
            pthread_cond_wait(&X.cv, &X.mu);
        clock_gettime(CLOCK_REALTIME, &until);
        until.tv_sec += X.delay_ms / 1000;
        until.tv_nsec += (X.delay_ms % 1000) * 1000000;
        if (until.tv_nsec >= 1000000000) {
            until.tv_sec++;
            until.tv_nsec -= 1000000000;
        }
        while (!X.stop && X.n < X.batch_size &&
               pthread_cond_timedwait(&X.cv, &X.mu, &until) != ETIMEDOUT)
            ;
        if (X.stop && !deadline)
            deadline = saga_mono_ms() + X.shutdown_ms;
        while (n < X.batch_size && X.n > 0) {
            batch[n++] = X.ring[X.head];
            X.head = (X.head + 1) % X.queue_size;
            X.n--;
        }
        pthread_mutex_unlock(&X.mu);
        if (n) {
            if (deadline && saga_mono_ms() >= deadline)
                atomic_fetch_add(&X.dropped_failed, (uint64_t)n);
            else
                export_batch(curl, batch, n, deadline);
        }
        if (deadline) {
            pthread_mutex_lock(&X.mu);
            n = (int)X.n;
            pthread_mutex_unlock(&X.mu);
            if (!n)
                break;
        }
    }
    free(batch);
    curl_easy_cleanup(curl);
    return NULL;
}

/* locality: the main thread, once, after the threads that end spans have stopped (later
 * spans are dropped). locks: takes X.mu; joins the exporter thread. */
void saga_otel_shutdown(void)
{
    if (!X.started)
        return;
    saga_otel_enabled_flag = 0;
    pthread_mutex_lock(&X.mu);
    X.stop = 1;
    pthread_cond_broadcast(&X.cv);
    pthread_mutex_unlock(&X.mu);
    pthread_join(X.thread, NULL);
    X.started = 0;
    curl_global_cleanup();
    pthread_mutex_lock(&X.mu);
    release_config();
    X.n = X.head = 0;
    pthread_mutex_unlock(&X.mu);
}

/* --- counters --------------------------------------------------------------------------- */

/* locality: any thread (the HTTP threads, for /metrics). locks: none, atomics. */
void saga_otel_stats(struct saga_otel_stats *out)
{
    out->exported = atomic_load(&X.exported);
    out->dropped_queue_full = atomic_load(&X.dropped_full);
    out->dropped_export_failed = atomic_load(&X.dropped_failed);
}

void saga_otel_write_metrics(struct saga_text *t, const char *service)
{
    struct saga_otel_stats st;
    saga_otel_stats(&st);
    saga_metric_head(t, "saga_trace_spans_exported_total", "counter",
                     "Spans the OTLP collector accepted.");
    saga_text_printf(t, "saga_trace_spans_exported_total{service=\"%s\"} %" PRIu64 "\n", service,
                     st.exported);
    saga_metric_head(t, "saga_trace_spans_dropped_total", "counter",
                     "Spans lost: the export queue was full, or the collector did not take "
                     "them after retries.");
    saga_text_printf(
        t, "saga_trace_spans_dropped_total{service=\"%s\",reason=\"queue_full\"} %" PRIu64 "\n",
        service, st.dropped_queue_full);
    saga_text_printf(t,
                     "saga_trace_spans_dropped_total{service=\"%s\",reason=\"export_failed\"} "
                     "%" PRIu64 "\n",
                     service, st.dropped_export_failed);
}
