/*
 * OpenTelemetry span export (docs/OBSERVABILITY.md, "Traces"): OTLP over HTTP with the
 * JSON encoding, to OTEL_EXPORTER_OTLP_TRACES_ENDPOINT (used as is) or
 * OTEL_EXPORTER_OTLP_ENDPOINT + "/v1/traces", configured by the standard OTEL_*
 * variables (docs/CONFIGURATION.md). Off when neither endpoint is set.
 *
 * A span is a plain struct the caller fills (on its stack) between saga_span_begin and
 * saga_span_end; the end copies it into a bounded ring under one mutex and returns. One
 * exporter thread of its own takes batches from the ring and posts them; a slow or
 * absent collector therefore never blocks the caller: when the ring is full the span is
 * dropped and counted (saga_trace_spans_dropped_total{reason="queue_full"}), a batch the
 * collector did not take after its retries is counted as reason="export_failed".
 *
 * Off (no endpoint, OTEL_SDK_DISABLED=true, OTEL_TRACES_EXPORTER=none): saga_span_begin
 * returns 0 after reading one global flag, and every other call is a test of
 * s->recording: no allocation, no lock, no clock read.
 *
 * Span ids come from the W3C traceparents the saga already carries (saga/trace.h): a
 * span is described by its own context as a traceparent (trace id, span id, flags) and
 * its parent's traceparent (NULL for a root), so the ids in the events and in the
 * exported spans are the same ids.
 *
 * @locality saga_otel_init / saga_otel_shutdown: the main thread, once each. Everything
 * else: any thread.
 */
#ifndef SAGA_OTEL_H
#define SAGA_OTEL_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct saga_text;

enum { /* OTLP SpanKind */
       SAGA_SPAN_INTERNAL = 1,
       SAGA_SPAN_SERVER = 2,
       SAGA_SPAN_CLIENT = 3,
       SAGA_SPAN_PRODUCER = 4,
       SAGA_SPAN_CONSUMER = 5
};

enum { /* OTLP StatusCode */
       SAGA_SPAN_UNSET = 0,
       SAGA_SPAN_OK = 1,
       SAGA_SPAN_ERROR = 2
};

#define SAGA_SPAN_MAX_ATTRS 16
#define SAGA_SPAN_ATTR_LEN  80

struct saga_span_attr {
    const char *key; /* a string literal: never copied */
    int type;        /* 0 string, 1 int, 2 bool */
    int64_t i;
    char s[SAGA_SPAN_ATTR_LEN];
};

struct saga_span {
    int recording; /* 0: every call on this span does nothing */
    char trace_id[33], span_id[17], parent_id[17];
    char name[64];
    int kind, status;
    int nattrs;
    int64_t start_ns, end_ns; /* unix time, ns */
    char status_msg[160];
    struct saga_span_attr attrs[SAGA_SPAN_MAX_ATTRS];
};

/* Samplers of OTEL_TRACES_SAMPLER. */
enum saga_sampler_kind {
    SAGA_SAMPLER_ALWAYS_ON,
    SAGA_SAMPLER_ALWAYS_OFF,
    SAGA_SAMPLER_RATIO,
};
struct saga_sampler {
    enum saga_sampler_kind root; /* the decision for a span without a parent */
    int parent_based;            /* a span with a parent follows the parent's flag */
    double ratio;                /* SAGA_SAMPLER_RATIO: 0..1 */
};

/*
 * Reads the OTEL_* variables; program is the default service.name. 0, also when tracing
 * is off; -1 with errstr for a variable that does not parse (the program then exits as
 * for any bad configuration). Starts the exporter thread when on.
 */
int saga_otel_init(const char *program, char *errstr, size_t errstr_size);

/* Exports what is queued (bounded by OTEL_BSP_EXPORT_TIMEOUT), stops the thread and frees
 * everything. NULL-safe in spirit: does nothing when off or never started. */
void saga_otel_shutdown(void);

extern _Atomic int saga_otel_enabled_flag; /* read through saga_otel_enabled() */

/* 1 when spans are exported (set by saga_otel_init, cleared by saga_otel_shutdown). */
static inline int saga_otel_enabled(void)
{
    return atomic_load_explicit(&saga_otel_enabled_flag, memory_order_relaxed);
}

/*
 * Starts span s, named name, of kind SAGA_SPAN_*: its own context is self (a traceparent:
 * trace id, span id, flags), its parent's parent (a traceparent, or NULL for a root).
 * Returns 1 when the span records (tracing on, self valid, the sampler says yes), else 0
 * and s->recording = 0. The start time is now.
 */
int saga_span_begin(struct saga_span *s, const char *name, int kind, const char *self,
                    const char *parent);
/* As saga_span_begin, the start time given (unix ns). */
int saga_span_begin_at(struct saga_span *s, const char *name, int kind, const char *self,
                       const char *parent, int64_t start_ns);

/* Attributes; the key must be a string literal (it is not copied). Values longer than
 * SAGA_SPAN_ATTR_LEN - 1 bytes are cut, invalid UTF-8 becomes '?'. Beyond
 * SAGA_SPAN_MAX_ATTRS attributes the rest are left out. */
void saga_span_str(struct saga_span *s, const char *key, const char *value);
void saga_span_int(struct saga_span *s, const char *key, int64_t value);
void saga_span_bool(struct saga_span *s, const char *key, int value);
/* Status ERROR with a description (printf format), also as the attribute error.type. */
void saga_span_error(struct saga_span *s, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));

/* Ends s now (or at end_ns, unix ns) and queues it for export; never blocks on I/O. */
void saga_span_end(struct saga_span *s);
void saga_span_end_at(struct saga_span *s, int64_t end_ns);

/* Unix time in ns. */
int64_t saga_otel_now_ns(void);

/* The trace flags ("01" sampled, "00" not) a new trace (no parent) gets from the sampler;
 * "01" when tracing is off (the events carry sampled traces, as before). */
const char *saga_otel_root_flags(const char *trace_id);

/* A child of parent (same trace and flags, a new span id) for a span only the exporter
 * sees: as saga_traceparent_child, without a getrandom call per span. */
void saga_otel_child(const char *parent, char out[56]);

/* A new root traceparent whose flags follow the sampler. */
void saga_otel_traceparent_root(char out[56]);

/* saga_trace_spans_exported_total and saga_trace_spans_dropped_total{reason} for /metrics
 * (zeros when off). */
void saga_otel_write_metrics(struct saga_text *t, const char *service);

/* Counters as numbers (for tests and tools). */
struct saga_otel_stats {
    uint64_t exported, dropped_queue_full, dropped_export_failed;
};
void saga_otel_stats(struct saga_otel_stats *out);

/* --- pieces, exposed for the unit tests ----------------------------------------------- */

/* OTEL_TRACES_SAMPLER / _ARG values into out; -1 with errstr for an unknown sampler or a
 * ratio outside 0..1. name NULL: parentbased_always_on (the specification's default). */
int saga_sampler_parse(const char *name, const char *arg, struct saga_sampler *out, char *errstr,
                       size_t errstr_size);
/* 1 if a span of trace_id (32 hex) records: has_parent says whether it has a parent and
 * parent_sampled that parent's sampled flag. traceidratio compares the trace id's last
 * 8 bytes with ratio * 2^64, as the specification's reference samplers do. */
int saga_sampler_decide(const struct saga_sampler *s, const char *trace_id, int has_parent,
                        int parent_sampled);

/* A "k=v,k2=v2" list (OTEL_RESOURCE_ATTRIBUTES, OTEL_EXPORTER_OTLP_HEADERS), values
 * percent-decoded; calls fn for each pair. -1 with errstr for an entry without '='. */
int saga_otel_parse_pairs(const char *list, void (*fn)(void *arg, const char *k, const char *v),
                          void *arg, char *errstr, size_t errstr_size);

/* The OTLP/JSON request body (ExportTraceServiceRequest) for spans[0..n) under the
 * resource attributes (service.name first): malloc'd, NULL when out of memory. */
char *saga_otel_encode(const char *const *resource_kv, int nresource, const struct saga_span *spans,
                       int n);

#endif
