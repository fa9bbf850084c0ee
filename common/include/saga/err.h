/*
 * One error type for the whole project.
 *
 * Functions that can fail return saga_err_t (SAGA_OK on success) and, where a
 * message helps, fill a caller's errstr buffer. External failures are classified
 * at the adapter boundary: TRANSIENT means retrying later may succeed (a broker
 * or database that is down), PERMANENT means it never will (undecodable bytes).
 */
#ifndef SAGA_ERR_H
#define SAGA_ERR_H

#include <stddef.h>

typedef enum saga_err {
    SAGA_OK = 0,
    SAGA_ERR_INVALID,   /* bad argument or malformed input */
    SAGA_ERR_CONFIG,    /* bad configuration: fix it and restart */
    SAGA_ERR_TRANSIENT, /* retry may succeed */
    SAGA_ERR_PERMANENT, /* retrying will not help */
    SAGA_ERR_TIMEOUT,   /* gave up waiting */
    SAGA_ERR_NOMEM,     /* allocation failed */
    SAGA_ERR_IO,        /* local I/O failed */
    SAGA_ERR_NOT_FOUND, /* no such thing */
} saga_err_t;

/* A short lowercase description of err; never NULL. */
const char *saga_err2str(saga_err_t err);

/* snprintf into errstr (may be NULL or size 0); returns err for `return saga_errf(...)`. */
saga_err_t saga_errf(saga_err_t err, char *errstr, size_t errstr_size, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

/* Exit codes shared by every program (documented in docs/CONFIGURATION.md, "Exit codes"). */
#define SAGA_EXIT_OK      0
#define SAGA_EXIT_FAILURE 1  /* runtime failure (fatal Kafka error, ...) */
#define SAGA_EXIT_USAGE   64 /* bad command line (sysexits EX_USAGE) */
#define SAGA_EXIT_CONFIG  78 /* bad configuration (sysexits EX_CONFIG) */

#endif
