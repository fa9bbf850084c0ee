#include "saga/pg.h"

#include "saga/config.h"
#include "saga/log.h"

#include <libpq-events.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void one_line(char *s)
{
    size_t len = strlen(s);
    while (len > 0 && (s[len - 1] == '\n' || s[len - 1] == ' '))
        s[--len] = '\0';
    for (size_t i = 0; i < len; i++)
        if (s[i] == '\n' || s[i] == '\t')
            s[i] = ' ';
}

void saga_pg_errstr(const PGconn *conn, char *errstr, size_t errstr_size)
{
    if (!errstr || errstr_size == 0)
        return;
    snprintf(errstr, errstr_size, "%s", conn ? PQerrorMessage(conn) : "out of memory");
    one_line(errstr);
}

static int sqlstate_is_transient(const char *state)
{
    static const char *const transient[] = {
        "40001", /* serialization_failure */
        "40P01", /* deadlock_detected */
        "55P03", /* lock_not_available */
        "57P01", /* admin_shutdown */
        "57P02", /* crash_shutdown */
        "57P03", /* cannot_connect_now */
        "53300", /* too_many_connections */
        "53000", /* insufficient_resources */
    };
    if (!state)
        return 0;
    if (strncmp(state, "08", 2) == 0) /* connection exceptions */
        return 1;
    for (size_t i = 0; i < sizeof(transient) / sizeof(transient[0]); i++)
        if (strcmp(state, transient[i]) == 0)
            return 1;
    return 0;
}

saga_err_t saga_pg_classify(const PGconn *conn, const PGresult *res)
{
    const char *state = res ? PQresultErrorField(res, PG_DIAG_SQLSTATE) : NULL;

    if (conn && PQstatus(conn) != CONNECTION_OK)
        return SAGA_ERR_TRANSIENT;
    if (!state) /* no SQLSTATE: the result never came back, so the link broke */
        return SAGA_ERR_TRANSIENT;
    return sqlstate_is_transient(state) ? SAGA_ERR_TRANSIENT : SAGA_ERR_PERMANENT;
}

int saga_pg_idle_alive(PGconn *conn)
{
    struct pollfd p = {.events = POLLIN};

    if (!conn || PQstatus(conn) != CONNECTION_OK || (p.fd = PQsocket(conn)) < 0)
        return 0;
    /* Whatever arrived while idle (a NOTIFY, a parameter change, or the server's goodbye:
     * a FATAL message, then EOF) is read; at EOF libpq marks the connection bad. */
    for (int i = 0; i < 4 && poll(&p, 1, 0) > 0; i++) {
        if (p.revents & (POLLHUP | POLLERR | POLLNVAL))
            return 0;
        if (!PQconsumeInput(conn))
            return 0;
    }
    return PQstatus(conn) == CONNECTION_OK;
}

/* Server notices ("relation already exists, skipping") go to the debug log. */
static void notice_to_log(void *arg, const char *message)
{
    (void)arg;
    saga_log(SAGA_LOG_DEBUG, NULL, "postgres: %.*s", (int)strcspn(message, "\n"), message);
}

PGconn *saga_pg_connect(const char *url, saga_err_t *err, char *errstr, size_t errstr_size)
{
    PGconn *conn = PQconnectdb(url);
    const char *msg;

    if (conn && PQstatus(conn) == CONNECTION_OK) {
        PQsetNoticeProcessor(conn, notice_to_log, NULL);
        if (err)
            *err = SAGA_OK;
        return conn;
    }
    saga_pg_errstr(conn, errstr, errstr_size);
    msg = conn ? PQerrorMessage(conn) : "";
    /* libpq reports refusals by the server only as text; these never heal by waiting. */
    if (err)
        *err = (strstr(msg, "authentication failed") || strstr(msg, "does not exist") ||
                strstr(msg, "permission denied") || strstr(msg, "no pg_hba.conf entry") ||
                strstr(msg, "invalid"))
                   ? SAGA_ERR_PERMANENT
                   : SAGA_ERR_TRANSIENT;
    PQfinish(conn);
    return NULL;
}

/* --- prepared statements ------------------------------------------------------------ */

#define PREP_MAX 64

/* The statements prepared on one connection (its libpq instance data). */
struct prep_cache {
    int n;
    uint64_t hash[PREP_MAX];
    char *sql[PREP_MAX];
};

static void prep_clear(struct prep_cache *pc)
{
    for (int i = 0; i < pc->n; i++)
        free(pc->sql[i]);
    pc->n = 0;
}

/* libpq tells us when the session behind the connection changes or ends. */
static int prep_event(PGEventId id, void *info, void *pass)
{
    (void)pass;
    if (id == PGEVT_CONNRESET) {
        PGconn *conn = ((PGEventConnReset *)info)->conn;
        struct prep_cache *pc = PQinstanceData(conn, prep_event);
        if (pc)
            prep_clear(pc); /* a new backend knows none of them */
    } else if (id == PGEVT_CONNDESTROY) {
        PGconn *conn = ((PGEventConnDestroy *)info)->conn;
        struct prep_cache *pc = PQinstanceData(conn, prep_event);
        if (pc) {
            prep_clear(pc);
            free(pc);
            PQsetInstanceData(conn, prep_event, NULL);
        }
    }
    return 1;
}

static uint64_t fnv1a(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) {
        h ^= (unsigned char)*s;
        h *= 1099511628211ULL;
    }
    return h;
}

static int prepare_enabled(void)
{
    static int enabled = -1;
    if (enabled < 0) {
        const char *v = saga_env("SAGA_PG_PREPARE", "on");
        enabled = !(strcmp(v, "off") == 0 || strcmp(v, "0") == 0 || strcmp(v, "false") == 0);
    }
    return enabled;
}

PGresult *saga_pg_exec(PGconn *conn, const char *sql, int nparams, const char *const *values,
                       const int *lengths, const int *formats, int result_format)
{
    struct prep_cache *pc;
    uint64_t h;
    char name[32];
    int i;

    if (!conn || !prepare_enabled())
        return PQexecParams(conn, sql, nparams, NULL, values, lengths, formats, result_format);
    if (!(pc = PQinstanceData(conn, prep_event))) {
        if (!(pc = calloc(1, sizeof(*pc))))
            return PQexecParams(conn, sql, nparams, NULL, values, lengths, formats, result_format);
        if (!PQregisterEventProc(conn, prep_event, "saga-prepared", NULL) ||
            !PQsetInstanceData(conn, prep_event, pc)) {
            free(pc);
            return PQexecParams(conn, sql, nparams, NULL, values, lengths, formats, result_format);
        }
    }
    h = fnv1a(sql);
    for (i = 0; i < pc->n; i++)
        if (pc->hash[i] == h && strcmp(pc->sql[i], sql) == 0)
            break;
    snprintf(name, sizeof(name), "saga_%d", i);
    if (i == pc->n) {
        PGresult *r;
        char *copy;
        if (pc->n == PREP_MAX || !(copy = strdup(sql))) /* full: the rare rest unprepared */
            return PQexecParams(conn, sql, nparams, NULL, values, lengths, formats, result_format);
        r = PQprepare(conn, name, sql, nparams, NULL);
        if (PQresultStatus(r) != PGRES_COMMAND_OK) {
            free(copy);
            return r; /* the statement's own error (syntax, aborted transaction, ...) */
        }
        PQclear(r);
        pc->hash[pc->n] = h;
        pc->sql[pc->n] = copy;
        pc->n++;
    }
    {
        PGresult *r = PQexecPrepared(conn, name, nparams, values, lengths, formats, result_format);
        const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        /* Gone from the session (DISCARD ALL, a pooler): prepare afresh next time. */
        if (state && strcmp(state, "26000") == 0)
            prep_clear(pc);
        return r;
    }
}
