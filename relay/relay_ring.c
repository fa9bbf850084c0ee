#include "relay_ring.h"

#include <stdint.h>
#include <stdlib.h>

int relay_ring_init(struct relay_ring *r, int cap)
{
    r->cap = cap;
    r->head = 1; /* no ticket is 0, so no message carries NULL */
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
    return &r->slot[(r->head + (uint64_t)i) % (uint64_t)r->cap];
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
    st->ticket = r->head + (uint64_t)r->n;
    r->n++;
    *opaque = (void *)(uintptr_t)st->ticket;
    return st;
}

struct relay_slot *relay_ring_report(struct relay_ring *r, void *opaque, rd_kafka_resp_err_t err,
                                     int64_t acked_us)
{
    /* The distance from the head, in the pointer's width (tickets wrap with it where
     * pointers are 32 bits): retired tickets (given up, or popped) lie below the head,
     * so far away; no ticket at or past head + n has been handed out. */
    uintptr_t ahead = (uintptr_t)opaque - (uintptr_t)r->head;
    struct relay_slot *st;
    if (ahead >= (uintptr_t)r->n)
        return NULL;
    st = relay_ring_at(r, (int)ahead);
    if (st->ticket != r->head + ahead)
        return NULL;
    st->acked_us = acked_us;
    st->done = err ? -1 : 1;
    st->err = err;
    return st;
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
    r->head += (uint64_t)n;
    r->n -= n;
}

void relay_ring_reset(struct relay_ring *r)
{
    r->head += (uint64_t)r->n; /* the rows' tickets are never handed out again */
    r->n = 0;
}
