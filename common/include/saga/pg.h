/*
 * PostgreSQL plumbing: connecting with a bounded wait and classifying failures.
 */
#ifndef SAGA_PG_H
#define SAGA_PG_H

#include <libpq-fe.h>

#include "saga/err.h"

/*
 * Connects to url. On failure returns NULL with the cause in errstr (one line,
 * no password) and *err set: SAGA_ERR_TRANSIENT when the server is unreachable
 * or starting up, SAGA_ERR_PERMANENT when it refused us (auth, no such database,
 * no CONNECT privilege). err may be NULL.
 */
PGconn *saga_pg_connect(const char *url, saga_err_t *err, char *errstr, size_t errstr_size);

/*
 * Classifies a failed result by SQLSTATE: connection loss, serialization failure,
 * deadlock, "cannot connect now", too many connections and lock timeouts are
 * transient; everything else is permanent.
 */
saga_err_t saga_pg_classify(const PGconn *conn, const PGresult *res);

/* Whether an idle connection is still usable, without a round trip: a server that
 * restarted or ended the session has left a message or EOF on the socket, which this
 * reads. Returns 0 when the connection is gone (the caller reconnects). */
int saga_pg_idle_alive(PGconn *conn);

/*
 * PQexecParams, but through a statement prepared once per connection and SQL text
 * (parsed and planned once, not at every call: most of PostgreSQL's CPU for the
 * suite's small statements). Up to 64 statements per connection, the rest run
 * unprepared; a reset or closed connection forgets them. SAGA_PG_PREPARE=off runs
 * everything unprepared (for a pooler in transaction mode that cannot keep them).
 */
PGresult *saga_pg_exec(PGconn *conn, const char *sql, int nparams, const char *const *values,
                       const int *lengths, const int *formats, int result_format);

/* Copies PQerrorMessage into errstr as one line. */
void saga_pg_errstr(const PGconn *conn, char *errstr, size_t errstr_size);

#endif
