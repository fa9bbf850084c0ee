#include "saga/hash.h"

#include <string.h>

#define FNV64_BASIS 14695981039346656037ULL
#define FNV64_PRIME 1099511628211ULL
#define FNV32_BASIS 2166136261u
#define FNV32_PRIME 16777619u

uint64_t saga_fnv1a64(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t h = FNV64_BASIS;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= FNV64_PRIME;
    }
    return h;
}

uint64_t saga_fnv1a64_str(const char *s)
{
    return saga_fnv1a64(s, strlen(s));
}

uint32_t saga_fnv1a32_str(const char *s)
{
    uint32_t h = FNV32_BASIS;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= FNV32_PRIME;
    }
    return h;
}
