/*
 * Internal: a bump allocator for what one decoded event owns (strings, arrays).
 * Reset keeps the first block, so a reused event allocates nothing in steady state.
 */
#ifndef SAGA_ARENA_H
#define SAGA_ARENA_H

#include <stddef.h>

struct saga_arena;

struct saga_arena *saga_arena_new(void);
void saga_arena_destroy(struct saga_arena *a);
void saga_arena_reset(struct saga_arena *a);
/* Zeroed, 8-byte aligned memory; NULL only if malloc fails. */
void *saga_arena_alloc(struct saga_arena *a, size_t size);
char *saga_arena_strndup(struct saga_arena *a, const char *s, size_t len);

#endif
