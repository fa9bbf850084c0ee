#include "saga/utf8.h"

#include <stdint.h>
#include <string.h>

size_t saga_utf8_seq_len(const unsigned char *s, size_t avail)
{
    unsigned char c;
    size_t n;
    unsigned int cp;

    if (avail == 0)
        return 0;
    c = s[0];
    if (c < 0x80)
        return 1;
    if (c >= 0xc2 && c <= 0xdf) {
        n = 2;
        cp = c & 0x1f;
    } else if (c >= 0xe0 && c <= 0xef) {
        n = 3;
        cp = c & 0x0f;
    } else if (c >= 0xf0 && c <= 0xf4) {
        n = 4;
        cp = c & 0x07;
    } else {
        return 0;
    }
    if (n > avail)
        return 0;
    for (size_t i = 1; i < n; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        cp = (cp << 6) | (s[i] & 0x3f);
    }
    if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
        (n == 4 && (cp < 0x10000 || cp > 0x10ffff)))
        return 0;
    return n;
}

/* 1 if none of the 8 bytes at p is NUL or has its high bit set. */
static int word_is_plain_ascii(const unsigned char *p)
{
    uint64_t w;
    memcpy(&w, p, 8);
    /* high bit set anywhere, or a zero byte (the classic haszero trick) */
    return ((w | ((w - 0x0101010101010101ULL) & ~w)) & 0x8080808080808080ULL) == 0;
}

int saga_utf8_valid_nonul(const char *s, size_t len)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;

    while (i < len) {
        size_t n;
        if (len - i >= 8 && word_is_plain_ascii(p + i)) {
            i += 8;
            continue;
        }
        if (p[i] != 0 && p[i] < 0x80) { /* the common case: ASCII */
            i++;
            continue;
        }
        if (p[i] == 0 || (n = saga_utf8_seq_len(p + i, len - i)) == 0)
            return 0;
        i += n;
    }
    return 1;
}

__attribute__((no_sanitize_address)) size_t saga_utf8_strlen(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    size_t i = 0;

    for (;;) {
        size_t n;
#if defined(__BYTE_ORDER__) && __BYTE_ORDER__ == __ORDER_LITTLE_ENDIAN__
        /* A word never read across a page boundary cannot fault, even past the NUL. */
        while (((uintptr_t)(p + i) & 4095) <= 4096 - 8) {
            uint64_t w, stop;
            __builtin_memcpy(&w, p + i, 8);
            /* bytes with the high bit set, and zero bytes (exact for the lowest one) */
            stop = (w | ((w - 0x0101010101010101ULL) & ~w)) & 0x8080808080808080ULL;
            if (!stop) {
                i += 8;
                continue;
            }
            i += (size_t)__builtin_ctzll(stop) / 8; /* the first byte to look at */
            break;
        }
#endif
        if (p[i] == 0)
            return i;
        if (p[i] < 0x80) {
            i++;
            continue;
        }
        if ((n = saga_utf8_seq_len(p + i, 4)) == 0)
            return (size_t)-1;
        i += n;
    }
}
