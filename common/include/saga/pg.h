/*
 * PostgreSQL plumbing: connecting with a bounded wait, statements with a deadline,
 * classifying failures.
 *
 * A connection can hang without closing: a proxy or NAT in between stops forwarding
 * while its kernel still acknowledges, so neither TCP keepalives nor the kernel notice.
 * Every statement run through the functions below therefore has a client-side deadline
 * (PG_QUERY_TIMEOUT); when it passes, the connection is given up (PQstatus turns
 * CONNECTION_BAD, the result classifies as TRANSIENT) and the caller reconnects as after
 * any connection loss. The server may still finish the statement: as with any lost
 * connection, a COMMIT's outcome is then unknown.
 *
 * Thread safety: any thread, one connection per thread at a time (libpq's rule).
 */
#ifndef SAGA_PG_H
#define SAGA_PG_H

#include <stdint.h>
#include <stdio.h>

#include <libpq-fe.h>

#include "saga/err.h"

/*
 * Reads PG_CONNECT_TIMEOUT, PG_KEEPALIVE and PG_QUERY_TIMEOUT (docs/CONFIGURATION.md);
 * saga_config_load calls it. A program that never does gets them read at first use,
 * an invalid value then counting as unset. Call before other threads use libpq.
 */
saga_err_t saga_pg_settings_load(char *errstr, size_t errstr_size);
void saga_pg_settings_print(FILE *out);

/* PG_QUERY_TIMEOUT in milliseconds; 0: statements wait as long as it takes. */
int64_t saga_pg_query_timeout_ms(void);

/*
 * Connects to url with a bounded connect (connect_timeout) and TCP keepalives
 * (keepalives_idle/interval/count, tcp_user_timeout) from PG_CONNECT_TIMEOUT and
 * PG_KEEPALIVE, unless url sets them itself. On failure returns NULL with the
 * cause in errstr (one line, no password) and *err set: SAGA_ERR_TRANSIENT when the
 * server is unreachable or starting up, SAGA_ERR_PERMANENT when it refused us (auth,
 * no such database, no CONNECT privilege). err may be NULL.
 */
PGconn *saga_pg_connect(const char *url, saga_err_t *err, char *errstr, size_t errstr_size);

/*
 * Checks a libpq connection string (URI or key=value, one host or several) as far as
 * can be done without connecting: PQconninfoParse's syntax and keywords, and the value
 * of target_session_attrs, which libpq itself looks at only when it connects (a typo
 * there would pass every check and then fail every connection). On error returns
 * SAGA_ERR_CONFIG with the problem in errstr on one line, never the string itself (it
 * may hold a password).
 */
saga_err_t saga_pg_conninfo_check(const char *conninfo, char *errstr, size_t errstr_size);

/* PQping of url with the same connect and keepalive settings: 1 when the server
 * accepts connections, 0 otherwise. Waits at most the connect timeout. */
int saga_pg_ping(const char *url);

/*
 * Whether this process's PostgreSQL connections work, as far as it knows: 0 after
 * a statement hung past its deadline, a connection broke or a connection attempt
 * failed, until a statement or connection succeeds again. For /readyz.
 */
int saga_pg_healthy(void);

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
 * PQexecParams with the deadline, through a statement prepared once per connection and SQL text
 * (parsed and planned once, not at every call: most of PostgreSQL's CPU for the
 * suite's small statements). Up to 64 statements per connection, the rest run
 * unprepared; a reset or closed connection forgets them. SAGA_PG_PREPARE=off runs
 * everything unprepared (for a pooler in transaction mode that cannot keep them).
 */
PGresult *saga_pg_exec(PGconn *conn, const char *sql, int nparams, const char *const *values,
                       const int *lengths, const int *formats, int result_format);

/* PQexec, with the deadline. */
PGresult *saga_pg_query(PGconn *conn, const char *sql);

/* PQexecParams (never prepared), with the deadline. */
PGresult *saga_pg_query_params(PGconn *conn, const char *sql, int nparams,
                               const char *const *values, const int *lengths, const int *formats,
                               int result_format);

/* PQgetResult after a PQsendQuery, with the deadline: the next result, or NULL when
 * there are no more. A hang gives an error result, then NULL. */
PGresult *saga_pg_get_result(PGconn *conn);

/* Copies PQerrorMessage into errstr as one line. */
void saga_pg_errstr(const PGconn *conn, char *errstr, size_t errstr_size);

/*
 * The error of a failed result res as one line (the connection's when res carries none:
 * a statement that never got an answer). Prefer it to saga_pg_errstr after a statement:
 * the connection's message may already be cleared.
 */
void saga_pg_result_errstr(const PGconn *conn, const PGresult *res, char *errstr,
                           size_t errstr_size);

/*
 * PostgreSQL array literals for "$n::text[]" / "$n::bigint[]" parameters, built into a
 * saga_text (saga/http.h): saga_pg_array_begin, one saga_pg_array_text or
 * saga_pg_array_int per element, saga_pg_array_end. Elements are separated as needed;
 * text elements are always double-quoted with '"' and '\' escaped, a NULL element is
 * the SQL NULL. No elements gives "{}". Allocation failure aborts, as saga_text does.
 */
struct saga_text;
void saga_pg_array_begin(struct saga_text *t);
void saga_pg_array_text(struct saga_text *t, const char *s);
void saga_pg_array_int(struct saga_text *t, int64_t v);
void saga_pg_array_end(struct saga_text *t);

/* The literal of n strings ("{\"a\",\"b\"}"); malloc'd, the caller frees it. */
char *saga_pg_text_array(const char *const *items, size_t n);

#endif
