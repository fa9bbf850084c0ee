/*
 * W3C Trace Context (https://www.w3.org/TR/trace-context/): the traceparent an
 * order's events carry. POST /orders accepts one (or starts a trace); every
 * handler works in a child span of the event it handles, and the events it
 * emits carry that span, so one trace id follows an order through every hop
 * and every log line.
 *
 *   traceparent = "00-" trace-id(32 hex) "-" parent-id(16 hex) "-" flags(2 hex)
 */
#ifndef SAGA_TRACE_H
#define SAGA_TRACE_H

#define SAGA_TRACEPARENT_LEN 55

/* 1 if s is a valid version-00 traceparent (lower-case hex, ids not all zero). */
int saga_traceparent_valid(const char *s);

/* A new trace: random trace id and span id, sampled. */
void saga_traceparent_new(char out[SAGA_TRACEPARENT_LEN + 1]);

/* A child span of parent (same trace id and flags, new span id); a new trace if
 * parent is NULL or invalid. */
void saga_traceparent_child(const char *parent, char out[SAGA_TRACEPARENT_LEN + 1]);

/* The trace id part of tp into out[33] (empty string if tp is not valid). */
void saga_traceparent_trace_id(const char *tp, char out[33]);

#endif
