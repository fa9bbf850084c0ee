#include "arena.h"

#include <stdlib.h>
#include <string.h>

struct block {
    struct block *next;
    size_t used, cap;
    unsigned char data[];
};

struct saga_arena {
    struct block *head; /* the block being filled; older ones follow */
};

#define FIRST_BLOCK 4096

static struct block *block_new(size_t cap)
{
    struct block *b = malloc(sizeof(*b) + cap);
    if (b) {
        b->next = NULL;
        b->used = 0;
        b->cap = cap;
    }
    return b;
}

struct saga_arena *saga_arena_new(void)
{
    struct saga_arena *a = calloc(1, sizeof(*a));
    if (a && !(a->head = block_new(FIRST_BLOCK))) {
        free(a);
        return NULL;
    }
    return a;
}

void saga_arena_destroy(struct saga_arena *a)
{
    if (!a)
        return;
    for (struct block *b = a->head, *n; b; b = n) {
        n = b->next;
        free(b);
    }
    free(a);
}

void saga_arena_reset(struct saga_arena *a)
{
    struct block *b = a->head;
    /* Keep the oldest block (the first one allocated), free the rest. */
    while (b->next) {
        struct block *n = b->next;
        free(b);
        b = n;
    }
    b->used = 0;
    a->head = b;
}

static void *arena_take(struct saga_arena *a, size_t size)
{
    struct block *b = a->head;
    size_t need = (size + 7) & ~(size_t)7;
    void *p;

    if (need < size)
        return NULL;
    if (b->cap - b->used < need) {
        size_t cap = b->cap * 2 > need ? b->cap * 2 : need;
        struct block *nb = block_new(cap);
        if (!nb)
            return NULL;
        nb->next = b;
        a->head = b = nb;
    }
    p = b->data + b->used;
    b->used += need;
    return p;
}

void *saga_arena_alloc(struct saga_arena *a, size_t size)
{
    void *p = arena_take(a, size);
    if (p)
        memset(p, 0, size);
    return p;
}

char *saga_arena_strndup(struct saga_arena *a, const char *s, size_t len)
{
    char *p = arena_take(a, len + 1);
    if (p) {
        memcpy(p, s, len);
        p[len] = '\0';
    }
    return p;
}
