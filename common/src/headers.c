#include "saga/headers.h"

#include <stdio.h>
#include <string.h>

static saga_err_t add(rd_kafka_headers_t *hdrs, const char *name, const char *value)
{
    if (!value)
        return SAGA_OK;
    return rd_kafka_header_add(hdrs, name, -1, value, -1) ? SAGA_ERR_INVALID : SAGA_OK;
}

saga_err_t saga_event_headers_add(rd_kafka_headers_t *hdrs, const struct saga_event *ev)
{
    saga_err_t err;
    if ((err = add(hdrs, "event_id", ev->meta.event_id)) ||
        (err = add(hdrs, "event_type", saga_event_type_name(ev->type))) ||
        (err = add(hdrs, "correlation_id", ev->meta.correlation_id)) ||
        (err = add(hdrs, "causation_id", ev->meta.causation_id)) ||
        (err = add(hdrs, "traceparent", ev->meta.traceparent)))
        return err;
    return SAGA_OK;
}

static void get(const rd_kafka_headers_t *hdrs, const char *name, char *buf, size_t size)
{
    const void *v;
    size_t len;
    buf[0] = '\0';
    if (hdrs && rd_kafka_header_get_last(hdrs, name, &v, &len) == RD_KAFKA_RESP_ERR_NO_ERROR && v &&
        len < size) {
        memcpy(buf, v, len);
        buf[len] = '\0';
    }
}

void saga_event_headers_read(const rd_kafka_headers_t *hdrs, struct saga_event_headers *out)
{
    get(hdrs, "event_id", out->event_id, sizeof(out->event_id));
    get(hdrs, "event_type", out->event_type, sizeof(out->event_type));
    get(hdrs, "correlation_id", out->correlation_id, sizeof(out->correlation_id));
    get(hdrs, "causation_id", out->causation_id, sizeof(out->causation_id));
    get(hdrs, "traceparent", out->traceparent, sizeof(out->traceparent));
}

static int differs(const char *hdr, const char *body)
{
    return hdr[0] && strcmp(hdr, body ? body : "") != 0;
}

int saga_event_headers_check(const struct saga_event_headers *h, const struct saga_event *ev,
                             char *errstr, size_t errstr_size)
{
    const char *what = differs(h->event_id, ev->meta.event_id)                  ? "event_id"
                       : differs(h->event_type, saga_event_type_name(ev->type)) ? "event_type"
                       : differs(h->correlation_id, ev->meta.correlation_id)    ? "correlation_id"
                       : differs(h->causation_id, ev->meta.causation_id)        ? "causation_id"
                       : differs(h->traceparent, ev->meta.traceparent)          ? "traceparent"
                                                                                : NULL;
    if (!what)
        return 0;
    snprintf(errstr, errstr_size, "header %s disagrees with the event body", what);
    return -1;
}
