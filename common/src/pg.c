#include "saga/pg.h"

#include "saga/log.h"

#include <poll.h>
#include <stdio.h>
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
