/*
 * FNV-1a (http://www.isthe.com/chongo/tech/comp/fnv/): small, stable, non-cryptographic
 * hashes for values that must not change between releases (tracking numbers, ETags)
 * and for hash tables. Not for anything an attacker may choose to collide.
 */
#ifndef SAGA_HASH_H
#define SAGA_HASH_H

#include <stddef.h>
#include <stdint.h>

/* 64-bit FNV-1a of len bytes. */
uint64_t saga_fnv1a64(const void *data, size_t len);

/* 64-bit FNV-1a of a NUL-terminated string (without the NUL). */
uint64_t saga_fnv1a64_str(const char *s);

/* 32-bit FNV-1a of a NUL-terminated string (without the NUL). */
uint32_t saga_fnv1a32_str(const char *s);

#endif
