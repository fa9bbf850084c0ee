#include "relay_ring.h"

#include <stdlib.h>

int relay_ring_init(struct relay_ring *r, int cap)
{
    r->cap = cap;
    r->head = 0;
    r->n = 0;
    r->slot = calloc((size_t)cap, sizeof(*r->slot));
    return r->slot ? 0 : -1;
}

void relay_ring_release(struct relay_ring *r)
{
    free(r->slot);
    r->slot = NULL;
    r->n = 0;
}

struct relay_slot *relay_ring_at(struct relay_ring *r, int i)
{
    return &r->slot[(r->head + i) % r->cap];
}

struct relay_slot *relay_ring_push(struct relay_ring *r, int64_t id, int64_t created_us,
                                   void **opaque)
{
    struct relay_slot *st = relay_ring_at(r, r->n);
    st->id = id;
    st->created_us = created_us;
    st->done = 0;
    st->err = 0;
    st->acked_us = 0;
    r->n++;
    *opaque = st;
    return st;
}

void relay_ring_report(struct relay_ring *r, void *opaque, rd_kafka_resp_err_t err,
                       int64_t acked_us)
{
    struct relay_slot *st = opaque;
    (void)r;
    if (!st)
        return;
    st->acked_us = acked_us;
    st->done = err ? -1 : 1;
    st->err = err;
}

int relay_ring_delivered(struct relay_ring *r, int *failed)
{
    int n = 0;
    while (n < r->n && relay_ring_at(r, n)->done == 1)
        n++;
    *failed = n < r->n && relay_ring_at(r, n)->done < 0;
    return n;
}

int relay_ring_pending(struct relay_ring *r)
{
    int pending = 0;
    for (int i = 0; i < r->n; i++)
        pending += relay_ring_at(r, i)->done == 0;
    return pending;
}

void relay_ring_pop(struct relay_ring *r, int n)
{
    r->head = (r->head + n) % r->cap;
    r->n -= n;
}

void relay_ring_reset(struct relay_ring *r)
{
    r->n = 0;
}
