/* UTF-8 checks shared by logging and the Avro decoder. */
#ifndef SAGA_UTF8_H
#define SAGA_UTF8_H

#include <stddef.h>

/*
 * Length of the well-formed UTF-8 sequence at s (1 to 4), or 0 if the bytes
 * there are not one (overlong forms, surrogates and values past U+10FFFF are
 * not). At most avail bytes are looked at.
 */
size_t saga_utf8_seq_len(const unsigned char *s, size_t avail);

/*
 * strlen() and the UTF-8 check in one pass over a NUL-terminated string: returns
 * its length, or (size_t)-1 if it is not well-formed UTF-8. Reads aligned 8-byte
 * words, which may extend past the terminator but never past its page (the same
 * trick as glibc's strlen, so it is exempt from AddressSanitizer).
 */
size_t saga_utf8_strlen(const char *s);

/* 1 if s[0..len) is well-formed UTF-8 with no NUL character. */
int saga_utf8_valid_nonul(const char *s, size_t len);

#endif
