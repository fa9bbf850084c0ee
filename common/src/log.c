#include "saga/log.h"
#include "saga/utf8.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

static char log_service[64] = "saga";
static saga_log_level_t log_min = SAGA_LOG_INFO;

void saga_log_init(const char *service, saga_log_level_t min_level)
{
    snprintf(log_service, sizeof(log_service), "%s", service ? service : "saga");
    log_min = min_level;
}

int saga_log_level_parse(const char *s, saga_log_level_t *out)
{
    static const struct {
        const char *name;
        saga_log_level_t level;
    } names[] = {
        {"debug", SAGA_LOG_DEBUG},  {"info", SAGA_LOG_INFO},   {"warn", SAGA_LOG_WARN},
        {"warning", SAGA_LOG_WARN}, {"error", SAGA_LOG_ERROR},
    };
    for (size_t i = 0; s && i < sizeof(names) / sizeof(names[0]); i++) {
        if (strcasecmp(s, names[i].name) == 0) {
            *out = names[i].level;
            return 0;
        }
    }
    return -1;
}

const char *saga_log_level_name(saga_log_level_t level)
{
    switch (level) {
    case SAGA_LOG_DEBUG:
        return "debug";
    case SAGA_LOG_INFO:
        return "info";
    case SAGA_LOG_WARN:
        return "warn";
    case SAGA_LOG_ERROR:
        return "error";
    }
    return "info";
}

int saga_log_enabled(saga_log_level_t level)
{
    return level >= log_min;
}

size_t saga_json_escape(char *buf, size_t size, const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t o = 0;

    if (size == 0)
        return 0;
    while (*p) {
        char esc[8];
        const char *piece = esc;
        size_t len, step = 1;

        switch (*p) {
        case '"':
            piece = "\\\"";
            break;
        case '\\':
            piece = "\\\\";
            break;
        case '\n':
            piece = "\\n";
            break;
        case '\r':
            piece = "\\r";
            break;
        case '\t':
            piece = "\\t";
            break;
        default:
            if (*p < 0x20) {
                snprintf(esc, sizeof(esc), "\\u%04x", *p);
            } else {
                step = saga_utf8_seq_len(p, 4);
                if (step == 0) {
                    piece = "\xef\xbf\xbd"; /* U+FFFD for a byte that is not UTF-8 */
                    step = 1;
                } else {
                    memcpy(esc, p, step);
                    esc[step] = '\0';
                }
            }
        }
        len = strlen(piece);
        if (o + len >= size)
            break; /* never split an escape or a character */
        memcpy(buf + o, piece, len);
        o += len;
        p += step;
    }
    buf[o] = '\0';
    return o;
}

/* Appends a literal; returns the new offset, never past size-1. */
static size_t put(char *buf, size_t size, size_t o, const char *lit)
{
    size_t len = strlen(lit);
    if (o + len >= size)
        len = size - 1 - o;
    memcpy(buf + o, lit, len);
    buf[o + len] = '\0';
    return o + len;
}

static size_t put_field(char *buf, size_t size, size_t o, const char *key, const char *val)
{
    if (!val || !*val)
        return o;
    o = put(buf, size, o, ",\"");
    o = put(buf, size, o, key);
    o = put(buf, size, o, "\":\"");
    o += saga_json_escape(buf + o, size - o, val);
    return put(buf, size, o, "\"");
}

size_t saga_log_format(char *buf, size_t size, long long epoch_ms, saga_log_level_t level,
                       const char *service, const struct saga_log_ids *ids, const char *fmt,
                       va_list ap)
{
    /* Room kept for the closing of the message and the ids, so a long message is cut
     * but the line stays one valid JSON object. */
    enum { RESERVE = 512 };
    char msg[4096], ts[40];
    time_t secs = (time_t)(epoch_ms / 1000);
    struct tm tm;
    size_t o = 0;

    if (size < RESERVE + 64)
        return 0;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    gmtime_r(&secs, &tm);
    strftime(ts, sizeof(ts), "%Y-%m-%dT%H:%M:%S", &tm);

    o = (size_t)snprintf(buf, size, "{\"ts\":\"%s.%03dZ\",\"level\":\"%s\",\"service\":\"", ts,
                         (int)(epoch_ms % 1000), saga_log_level_name(level));
    o += saga_json_escape(buf + o, size - RESERVE - o, service ? service : "");
    o = put(buf, size, o, "\",\"msg\":\"");
    o += saga_json_escape(buf + o, size - RESERVE - o, msg);
    o = put(buf, size, o, "\"");
    if (ids) {
        o = put_field(buf, size, o, "order_id", ids->order_id);
        o = put_field(buf, size, o, "event_id", ids->event_id);
        o = put_field(buf, size, o, "correlation_id", ids->correlation_id);
        o = put_field(buf, size, o, "trace_id", ids->trace_id);
    }
    o = put(buf, size, o, "}\n");
    return o;
}

/* The ids of what this thread works on now (saga_log_context_set). */
static _Thread_local struct {
    int set;
    char order_id[64], event_id[64], correlation_id[64], trace_id[33];
} ctx;

void saga_log_context_set(const struct saga_log_ids *ids)
{
    if (!ids) {
        ctx.set = 0;
        return;
    }
    snprintf(ctx.order_id, sizeof(ctx.order_id), "%s", ids->order_id ? ids->order_id : "");
    snprintf(ctx.event_id, sizeof(ctx.event_id), "%s", ids->event_id ? ids->event_id : "");
    snprintf(ctx.correlation_id, sizeof(ctx.correlation_id), "%s",
             ids->correlation_id ? ids->correlation_id : "");
    snprintf(ctx.trace_id, sizeof(ctx.trace_id), "%s", ids->trace_id ? ids->trace_id : "");
    ctx.set = 1;
}

static const char *pick(const char *given, const char *ctx_value)
{
    return given ? given : (*ctx_value ? ctx_value : NULL);
}

void saga_log(saga_log_level_t level, const struct saga_log_ids *ids, const char *fmt, ...)
{
    char line[8192];
    struct timespec now;
    struct saga_log_ids merged;
    va_list ap;
    size_t len;

    if (level < log_min)
        return;
    if (ctx.set) {
        merged.order_id = pick(ids ? ids->order_id : NULL, ctx.order_id);
        merged.event_id = pick(ids ? ids->event_id : NULL, ctx.event_id);
        merged.correlation_id = pick(ids ? ids->correlation_id : NULL, ctx.correlation_id);
        merged.trace_id = pick(ids ? ids->trace_id : NULL, ctx.trace_id);
        ids = &merged;
    }
    clock_gettime(CLOCK_REALTIME, &now);
    va_start(ap, fmt);
    len = saga_log_format(line, sizeof(line), (long long)now.tv_sec * 1000 + now.tv_nsec / 1000000,
                          level, log_service, ids, fmt, ap);
    va_end(ap);
    /* A failed write to stderr has nowhere better to be reported. */
    if (write(STDERR_FILENO, line, len) < 0)
        return;
}
