#include "saga/err.h"

#include <stdarg.h>
#include <stdio.h>

const char *saga_err2str(saga_err_t err)
{
    switch (err) {
    case SAGA_OK:
        return "success";
    case SAGA_ERR_INVALID:
        return "invalid input";
    case SAGA_ERR_CONFIG:
        return "configuration error";
    case SAGA_ERR_TRANSIENT:
        return "transient failure";
    case SAGA_ERR_PERMANENT:
        return "permanent failure";
    case SAGA_ERR_TIMEOUT:
        return "timed out";
    case SAGA_ERR_NOMEM:
        return "out of memory";
    case SAGA_ERR_IO:
        return "i/o error";
    case SAGA_ERR_NOT_FOUND:
        return "not found";
    }
    return "unknown error";
}

saga_err_t saga_errf(saga_err_t err, char *errstr, size_t errstr_size, const char *fmt, ...)
{
    if (errstr && errstr_size > 0) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(errstr, errstr_size, fmt, ap);
        va_end(ap);
    }
    return err;
}
