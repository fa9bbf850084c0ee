/*
 * Structured logs: one JSON object per line on stderr.
 *
 *   {"ts":"2026-11-21T20:40:00.123Z","level":"info","service":"order-service",
 *    "msg":"order placed","order_id":"...","event_id":"...","correlation_id":"...",
 *    "trace_id":"..."}
 *
 * Each line is formatted on the stack and written with one write(2), so lines
 * from several threads never interleave. Any thread may call saga_log().
 */
#ifndef SAGA_LOG_H
#define SAGA_LOG_H

#include <stdarg.h>
#include <stddef.h>

typedef enum saga_log_level {
    SAGA_LOG_DEBUG = 0,
    SAGA_LOG_INFO,
    SAGA_LOG_WARN,
    SAGA_LOG_ERROR,
} saga_log_level_t;

/* Ids that tie a line to one order across services; any field may be NULL. */
struct saga_log_ids {
    const char *order_id;
    const char *event_id;
    const char *correlation_id;
    const char *trace_id;
};

/*
 * Ids of what the calling thread works on now (the consumer runtime sets the
 * handled event's around each handler): lines logged meanwhile carry them where
 * the caller gives none. NULL clears them. Copies the strings.
 */
void saga_log_context_set(const struct saga_log_ids *ids);

/* Set the service name and the lowest level written. Call once, before threads start. */
void saga_log_init(const char *service, saga_log_level_t min_level);

/* "debug", "info", "warn"/"warning", "error" (any case). Returns 0, or -1 if unknown. */
int saga_log_level_parse(const char *s, saga_log_level_t *out);
const char *saga_log_level_name(saga_log_level_t level);
int saga_log_enabled(saga_log_level_t level);

void saga_log(saga_log_level_t level, const struct saga_log_ids *ids, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/*
 * Format one line (with the trailing newline) into buf; returns its length.
 * A line longer than size is cut inside "msg" and still valid JSON. Exposed for tests.
 */
size_t saga_log_format(char *buf, size_t size, long long epoch_ms, saga_log_level_t level,
                       const char *service, const struct saga_log_ids *ids, const char *fmt,
                       va_list ap) __attribute__((format(printf, 7, 0)));

/*
 * Append s to buf as JSON string content (without quotes), escaping as needed and
 * never writing past size-1. Invalid UTF-8 bytes become U+FFFD. Returns bytes written.
 */
size_t saga_json_escape(char *buf, size_t size, const char *s);

#define saga_debug(...) saga_log(SAGA_LOG_DEBUG, NULL, __VA_ARGS__)
#define saga_info(...)  saga_log(SAGA_LOG_INFO, NULL, __VA_ARGS__)
#define saga_warn(...)  saga_log(SAGA_LOG_WARN, NULL, __VA_ARGS__)
#define saga_error(...) saga_log(SAGA_LOG_ERROR, NULL, __VA_ARGS__)

#endif
