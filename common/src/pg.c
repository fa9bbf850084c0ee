#include "saga/pg.h"

#include "saga/config.h"
#include "saga/clock.h"
#include "saga/hash.h"
#include "saga/http.h"
#include "saga/log.h"

#include <errno.h>
#include <inttypes.h>
#include <libpq-events.h>
#include <poll.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>

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

void saga_pg_result_errstr(const PGconn *conn, const PGresult *res, char *errstr,
                           size_t errstr_size)
{
    const char *m = res ? PQresultErrorMessage(res) : NULL;
    if (!m || !*m) {
        saga_pg_errstr(conn, errstr, errstr_size);
        return;
    }
    if (!errstr || errstr_size == 0)
        return;
    snprintf(errstr, errstr_size, "%s", m);
    one_line(errstr);
}

/* --- settings --------------------------------------------------------------------- */

static struct {
    int64_t connect_ms, keepalive_ms, query_ms;
} settings = {10000, 30000, 30000};
static atomic_int settings_loaded;
static pthread_once_t settings_once = PTHREAD_ONCE_INIT;

saga_err_t saga_pg_settings_load(char *errstr, size_t errstr_size)
{
    int64_t c, k, q;
    saga_err_t err;
    /* libpq counts connect_timeout in whole seconds, at least 2. */
    if ((err = saga_env_duration_ms("PG_CONNECT_TIMEOUT", 10000, 2000, 3600000, &c, errstr,
                                    errstr_size)) ||
        (err = saga_env_duration_ms("PG_KEEPALIVE", 30000, 0, 7200000, &k, errstr, errstr_size)) ||
        (err =
             saga_env_duration_ms("PG_QUERY_TIMEOUT", 30000, 0, 86400000, &q, errstr, errstr_size)))
        return err;
    if (k > 0 && k < 1000)
        return saga_errf(SAGA_ERR_CONFIG, errstr, errstr_size,
                         "PG_KEEPALIVE: 0 (off) or at least 1s, got %" PRId64 "ms", k);
    if (q > 0 && q < 100)
        return saga_errf(SAGA_ERR_CONFIG, errstr, errstr_size,
                         "PG_QUERY_TIMEOUT: 0 (none) or at least 100ms, got %" PRId64 "ms", q);
    settings.connect_ms = c;
    settings.keepalive_ms = k;
    settings.query_ms = q;
    settings_loaded = 1;
    return SAGA_OK;
}

static void settings_load_once(void)
{
    char err[256];
    if (!settings_loaded && saga_pg_settings_load(err, sizeof(err)) != SAGA_OK)
        saga_log(SAGA_LOG_WARN, NULL, "%s; using the defaults", err);
}

static void settings_get(void)
{
    if (!settings_loaded)
        pthread_once(&settings_once, settings_load_once);
}

void saga_pg_settings_print(FILE *out)
{
    settings_get();
    fprintf(out, "PG_CONNECT_TIMEOUT=%" PRId64 "ms\n", settings.connect_ms);
    fprintf(out, "PG_KEEPALIVE=%" PRId64 "ms\n", settings.keepalive_ms);
    fprintf(out, "PG_QUERY_TIMEOUT=%" PRId64 "ms\n", settings.query_ms);
}

int64_t saga_pg_query_timeout_ms(void)
{
    settings_get();
    return settings.query_ms;
}

/* The libpq options every connection gets unless its URL sets them (libpq lets a later
 * value win: these come before the expanded dbname). */
struct conn_params {
    const char *keys[11], *values[11];
    char connect_timeout[24], idle[24], interval[24], user_timeout[24], options[256];
};

static void conn_params_init(struct conn_params *p, const char *url)
{
    int n = 0;
    int64_t idle = 0, interval = 0;

    settings_get();
    snprintf(p->connect_timeout, sizeof(p->connect_timeout), "%" PRId64,
             (settings.connect_ms + 999) / 1000);
    p->keys[n] = "connect_timeout";
    p->values[n++] = p->connect_timeout;
    if (settings.keepalive_ms > 0) {
        /* Probes every third of the idle time, three of them: a dead peer is found after
         * about twice PG_KEEPALIVE, and data unacknowledged that long gives up too. */
        idle = settings.keepalive_ms / 1000;
        interval = idle / 3 > 0 ? idle / 3 : 1;
        snprintf(p->idle, sizeof(p->idle), "%" PRId64, idle);
        snprintf(p->interval, sizeof(p->interval), "%" PRId64, interval);
        snprintf(p->user_timeout, sizeof(p->user_timeout), "%" PRId64,
                 (idle + 3 * interval) * 1000);
        p->keys[n] = "keepalives";
        p->values[n++] = "1";
        p->keys[n] = "keepalives_idle";
        p->values[n++] = p->idle;
        p->keys[n] = "keepalives_interval";
        p->values[n++] = p->interval;
        p->keys[n] = "keepalives_count";
        p->values[n++] = "3";
        p->keys[n] = "tcp_user_timeout";
        p->values[n++] = p->user_timeout;
        /* The server's side of the same: a session whose client vanished (a connection
         * given up at PG_QUERY_TIMEOUT on a dead path, whose FIN never arrived) ends
         * within about twice PG_KEEPALIVE, releasing its locks (a relay's leader lock,
         * an order's row) instead of holding them for the kernel's two hours; and a
         * backend waiting on a lock looks at its client every second, so retries do not
         * pile up waiting backends. All user-settable; PG_KEEPALIVE=0 (e.g. behind a
         * pooler that refuses startup options) turns both sides off. */
        snprintf(p->options, sizeof(p->options),
                 "-c tcp_keepalives_idle=%" PRId64 " -c tcp_keepalives_interval=%" PRId64
                 " -c tcp_keepalives_count=3 -c tcp_user_timeout=%" PRId64
                 " -c client_connection_check_interval=1000",
                 idle, interval, (idle + 3 * interval) * 1000);
        p->keys[n] = "options";
        p->values[n++] = p->options;
    }
    /* Every program writes: a multi-host URL goes on past a standby (or a read-only
     * server) to the primary, instead of staying there with each write refused. */
    p->keys[n] = "target_session_attrs";
    p->values[n++] = "read-write";
    p->keys[n] = "dbname";
    p->values[n++] = url;
    p->keys[n] = NULL;
    p->values[n] = NULL;
}

saga_err_t saga_pg_conninfo_check(const char *conninfo, char *errstr, size_t errstr_size)
{
    /* libpq 14's values (fe-connect.c); "read-write" is what finds a promoted standby */
    static const char *const attrs[] = {"any",     "read-write", "read-only",
                                        "primary", "standby",    "prefer-standby"};
    char *pqerr = NULL;
    PQconninfoOption *opts = PQconninfoParse(conninfo ? conninfo : "", &pqerr);
    saga_err_t err = SAGA_OK;

    if (!opts) {
        size_t len = 0;
        const char *m = pqerr ? pqerr : "out of memory";
        const char *first = strchr(m, '"'), *last = strrchr(m, '"');
        /* libpq quotes the token it stumbled on ("invalid percent-encoded token:
         * \"sec%zzret\""): it may be the password, so nothing from the first quote to the
         * last is kept (the token may hold quotes itself). Its messages end with a newline;
         * ours is one line. */
        for (const char *c = m; errstr && *c && len + 4 < errstr_size; c++) {
            if (c == first) {
                memcpy(errstr + len, "\"\"", 2), len += 2;
                c = last;
            } else {
                errstr[len++] = *c == '\n' ? ' ' : *c;
            }
        }
        while (len && errstr[len - 1] == ' ')
            len--;
        if (errstr && errstr_size)
            errstr[len] = '\0';
        PQfreemem(pqerr);
        return SAGA_ERR_CONFIG;
    }
    for (PQconninfoOption *o = opts; o->keyword; o++) {
        size_t i, n = sizeof(attrs) / sizeof(attrs[0]);
        /* A port that is no number: most likely a URI password with an unencoded "/" (libpq
         * then reads "user:pass" as host:port), which libpq would quote in its error at
         * every connection attempt. Not quoted here. */
        if (strcmp(o->keyword, "port") == 0 && o->val &&
            o->val[strspn(o->val, "0123456789, \t")] != '\0')
            err = saga_errf(SAGA_ERR_CONFIG, errstr, errstr_size,
                            "a port is not a number (in a URI, a password holding '/', '?', "
                            "'#' or '@' must be percent-encoded: %%2F, %%3F, %%23, %%40)");
        /* "sslmode= password=x": libpq takes "password=x" for the value (a template's
         * variable left unset) and would quote it where it looks at it */
        if (o->val && !strcasestr(o->keyword, "pass") && strchr(o->val, '=')) {
            const char *eq = strchr(o->val, '='), *c = o->val;
            size_t word = strspn(o->val, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ_%");
            while (c + 4 <= eq && strncasecmp(c, "pass", 4) != 0)
                c++;
            if (o->val + word == eq && c + 4 <= eq) {
                err = saga_errf(SAGA_ERR_CONFIG, errstr, errstr_size,
                                "%s is empty: libpq takes the password parameter after it for "
                                "its value (write %s='' for an empty value)",
                                o->keyword, o->keyword);
                continue;
            }
        }
        if (strcmp(o->keyword, "target_session_attrs") != 0 || !o->val)
            continue;
        for (i = 0; i < n && strcmp(o->val, attrs[i]) != 0; i++)
            ;
        if (i == n)
            err = saga_errf(SAGA_ERR_CONFIG, errstr, errstr_size,
                            "invalid target_session_attrs value: \"%.40s\" (expected any, "
                            "read-write, read-only, primary, standby or prefer-standby)",
                            o->val);
        else if (strcmp(o->val, "read-only") == 0 || strcmp(o->val, "standby") == 0 ||
                 strcmp(o->val, "prefer-standby") == 0)
            /* libpq knows these, but every program writes: each would settle on a server
             * that refuses every write and retry that for ever */
            err = saga_errf(SAGA_ERR_CONFIG, errstr, errstr_size,
                            "target_session_attrs=%s would keep this program on a server "
                            "that refuses writes (use read-write, primary or any)",
                            o->val);
    }
    PQconninfoFree(opts);
    return err;
}

/* --- health, for readiness --------------------------------------------------------- */

/* Monotonic ms of the last success and the last trouble of any connection. */
static _Atomic int64_t last_ok_ms, last_trouble_ms;

static void note_ok(void)
{
    last_ok_ms = saga_mono_ms();
}

static void note_trouble(void)
{
    last_trouble_ms = saga_mono_ms();
}

int saga_pg_healthy(void)
{
    return last_trouble_ms <= last_ok_ms;
}

static int sqlstate_is_transient(const char *state)
{
    static const char *const transient[] = {
        "40001", /* serialization_failure */
        "40P01", /* deadlock_detected */
        "55P03", /* lock_not_available */
        /* The deployment, not the event: a read-only server after a failover, a revoked
         * grant, a migration not applied yet. Waiting is right; dead-lettering every event
         * until someone notices is not. */
        "25006", /* read_only_sql_transaction */
        "42501", /* insufficient_privilege */
        "42P01", /* undefined_table */
    };
    if (!state)
        return 0;
    /* By class: connection exceptions (08), insufficient resources (53: disk full, out
     * of memory, too many connections), operator intervention (57: a cancelled statement,
     * a shutdown), system errors (58: I/O), internal errors (XX). */
    if (strncmp(state, "08", 2) == 0 || strncmp(state, "53", 2) == 0 ||
        strncmp(state, "57", 2) == 0 || strncmp(state, "58", 2) == 0 ||
        strncmp(state, "XX", 2) == 0)
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
    struct conn_params p;
    PGconn *conn;
    const char *msg;

    conn_params_init(&p, url);
    conn = PQconnectdbParams(p.keys, p.values, 1);
    if (conn && PQstatus(conn) == CONNECTION_OK) {
        PQsetNoticeProcessor(conn, notice_to_log, NULL);
        note_ok();
        if (err)
            *err = SAGA_OK;
        return conn;
    }
    note_trouble();
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

int saga_pg_ping(const char *url)
{
    struct conn_params p;
    conn_params_init(&p, url);
    return PQpingParams(p.keys, p.values, 1) == PQPING_OK;
}

/* --- statements with a deadline ----------------------------------------------------- */

/* The connection hung: nothing came back in time. Shutting the socket down makes libpq
 * read EOF, so the connection turns bad the ordinary way (the caller's loss path) and
 * the statement's result is an error. */
static void give_up(PGconn *conn, int64_t waited_ms)
{
    int sock = PQsocket(conn);
    saga_log(SAGA_LOG_WARN, NULL,
             "postgres: no answer within %" PRId64 " ms (PG_QUERY_TIMEOUT); the connection"
             " is given up",
             waited_ms);
    note_trouble();
    if (sock >= 0)
        shutdown(sock, SHUT_RDWR);
    PQconsumeInput(conn);
}

/* Sends what libpq buffered and waits until a result can be read without blocking, or
 * the deadline (0: none) passes (-1; the connection is then given up). */
static int await_ready(PGconn *conn, int64_t started, int64_t deadline)
{
    for (;;) {
        int flush = PQflush(conn); /* 0 all sent, 1 more to send, -1 failed */
        struct pollfd pfd;
        int64_t left;
        int rc;

        if (flush < 0 || (flush == 0 && !PQisBusy(conn)))
            return 0; /* a failure reads as an error result */
        pfd.fd = PQsocket(conn);
        pfd.events = (short)(POLLIN | (flush ? POLLOUT : 0));
        pfd.revents = 0;
        if (pfd.fd < 0)
            return 0;
        left = deadline ? deadline - saga_mono_ms() : 1000;
        if (left <= 0) {
            give_up(conn, saga_mono_ms() - started);
            return -1;
        }
        rc = poll(&pfd, 1, (int)(left < 1000 ? left : 1000));
        if (rc < 0 && errno != EINTR)
            return 0;
        if (rc > 0 && (pfd.revents & (POLLIN | POLLHUP | POLLERR)) && !PQconsumeInput(conn))
            return 0;
    }
}

static int64_t deadline_from(int64_t started)
{
    int64_t q = saga_pg_query_timeout_ms();
    return q > 0 ? started + q : 0;
}

/* What PQexec would return after a PQsend*: the last result, or the first error. */
static PGresult *collect(PGconn *conn, int64_t started, int sent)
{
    int64_t deadline = deadline_from(started);
    PGresult *keep = NULL, *r;

    if (!sent) {
        if (PQstatus(conn) != CONNECTION_OK)
            note_trouble();
        else
            PQsetnonblocking(conn, 0);
        return PQmakeEmptyPGresult(conn, PGRES_FATAL_ERROR);
    }
    for (;;) {
        await_ready(conn, started, deadline); /* after a hang, libpq reports the loss */
        if (!(r = PQgetResult(conn)))
            break;
        if (keep && PQresultStatus(keep) == PGRES_FATAL_ERROR) {
            PQclear(r);
        } else {
            PQclear(keep);
            keep = r;
        }
        if (PQstatus(conn) == CONNECTION_BAD)
            break;
    }
    if (PQstatus(conn) == CONNECTION_OK) {
        PQsetnonblocking(conn, 0); /* nothing left to send: cannot block */
        note_ok();
    } else {
        note_trouble();
    }
    return keep ? keep : PQmakeEmptyPGresult(conn, PGRES_FATAL_ERROR);
}

/* Sends in nonblocking mode, so a statement too big for the socket buffers cannot block
 * on a hung connection either; collect() sets blocking mode back for the caller's plain
 * libpq calls once everything is sent. */
#define SEND(conn, call) (PQsetnonblocking(conn, 1) == 0 ? (call) : 0)

PGresult *saga_pg_query(PGconn *conn, const char *sql)
{
    int64_t started = saga_mono_ms();
    int sent;
    if (!conn)
        return NULL;
    sent = SEND(conn, PQsendQuery(conn, sql));
    return collect(conn, started, sent);
}

PGresult *saga_pg_query_params(PGconn *conn, const char *sql, int nparams,
                               const char *const *values, const int *lengths, const int *formats,
                               int result_format)
{
    int64_t started = saga_mono_ms();
    int sent;
    if (!conn)
        return NULL;
    sent = SEND(
        conn, PQsendQueryParams(conn, sql, nparams, NULL, values, lengths, formats, result_format));
    return collect(conn, started, sent);
}

PGresult *saga_pg_get_result(PGconn *conn)
{
    int64_t started = saga_mono_ms();
    PGresult *r;
    if (!conn)
        return NULL;
    await_ready(conn, started, deadline_from(started));
    r = PQgetResult(conn);
    if (PQstatus(conn) == CONNECTION_OK)
        note_ok();
    else
        note_trouble();
    return r;
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
        return saga_pg_query_params(conn, sql, nparams, values, lengths, formats, result_format);
    if (!(pc = PQinstanceData(conn, prep_event))) {
        if (!(pc = calloc(1, sizeof(*pc))))
            return saga_pg_query_params(conn, sql, nparams, values, lengths, formats,
                                        result_format);
        if (!PQregisterEventProc(conn, prep_event, "saga-prepared", NULL) ||
            !PQsetInstanceData(conn, prep_event, pc)) {
            free(pc);
            return saga_pg_query_params(conn, sql, nparams, values, lengths, formats,
                                        result_format);
        }
    }
    h = saga_fnv1a64_str(sql);
    for (i = 0; i < pc->n; i++)
        if (pc->hash[i] == h && strcmp(pc->sql[i], sql) == 0)
            break;
    snprintf(name, sizeof(name), "saga_%d", i);
    if (i == pc->n) {
        PGresult *r;
        char *copy;
        int64_t started = saga_mono_ms();
        int sent;
        if (pc->n == PREP_MAX || !(copy = strdup(sql))) /* full: the rare rest unprepared */
            return saga_pg_query_params(conn, sql, nparams, values, lengths, formats,
                                        result_format);
        sent = SEND(conn, PQsendPrepare(conn, name, sql, nparams, NULL));
        r = collect(conn, started, sent);
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
        int64_t started = saga_mono_ms();
        int sent = SEND(conn, PQsendQueryPrepared(conn, name, nparams, values, lengths, formats,
                                                  result_format));
        PGresult *r = collect(conn, started, sent);
        const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        /* Gone from the session (DISCARD ALL, a pooler): prepare afresh next time. */
        if (state && strcmp(state, "26000") == 0)
            prep_clear(pc);
        return r;
    }
}

/* --- array literals ---------------------------------------------------------- */

/* A comma unless the literal was just opened. */
static void array_sep(struct saga_text *t)
{
    if (t->len > 0 && t->data[t->len - 1] != '{')
        saga_text_printf(t, ",");
}

void saga_pg_array_begin(struct saga_text *t)
{
    saga_text_printf(t, "{");
}

void saga_pg_array_text(struct saga_text *t, const char *s)
{
    array_sep(t);
    if (!s) {
        saga_text_printf(t, "NULL");
        return;
    }
    saga_text_printf(t, "\"");
    while (*s) {
        size_t run = strcspn(s, "\"\\");
        saga_text_printf(t, "%.*s", (int)run, s);
        s += run;
        if (*s)
            saga_text_printf(t, "\\%c", *s++);
    }
    saga_text_printf(t, "\"");
}

void saga_pg_array_int(struct saga_text *t, int64_t v)
{
    array_sep(t);
    saga_text_printf(t, "%" PRId64, v);
}

void saga_pg_array_end(struct saga_text *t)
{
    saga_text_printf(t, "}");
}

char *saga_pg_text_array(const char *const *items, size_t n)
{
    struct saga_text t = {0};
    saga_pg_array_begin(&t);
    for (size_t i = 0; i < n; i++)
        saga_pg_array_text(&t, items[i]);
    saga_pg_array_end(&t);
    return t.data;
}
