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

/* 1 if s[0..len) is well-formed UTF-8 with no NUL character. */
int saga_utf8_valid_nonul(const char *s, size_t len);

#endif
