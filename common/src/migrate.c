#include "saga/migrate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "common_migrations.h" /* generated from common/migrations/NNN_name.sql */
#include "saga/pg.h"

/* The tables every service database has, in common/migrations/NNN_name.sql (embedded by
 * the build: common_migrations.h): outbox, inbox, deferred events. */
const struct saga_migration saga_common_migrations[] = {
    {1, "outbox, inbox and deferred events", common_sql_001_outbox_inbox_deferred},
    {2, "deferred events that failed when released", common_sql_002_deferred_dead},
    {3, "deferred keys and headers byte for byte", common_sql_003_deferred_raw},
};
const int saga_common_migration_count = 3;

static saga_err_t run(PGconn *conn, const char *sql, char *errstr, size_t errstr_size)
{
    PGresult *r = PQexec(conn, sql);
    saga_err_t err = SAGA_OK;
    ExecStatusType st = PQresultStatus(r);

    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        err = saga_pg_classify(conn, r);
        saga_pg_errstr(conn, errstr, errstr_size);
    }
    PQclear(r);
    return err;
}

saga_err_t saga_pg_migrate(PGconn *conn, const struct saga_migration *list, int n, int *applied,
                           char *errstr, size_t errstr_size)
{
    saga_err_t err;
    int count = 0;

    if (applied)
        *applied = 0;
    if ((err = run(conn,
                   "CREATE TABLE IF NOT EXISTS saga_migrations ("
                   "  version    int         PRIMARY KEY,"
                   "  name       text        NOT NULL,"
                   "  applied_at timestamptz NOT NULL DEFAULT now())",
                   errstr, errstr_size))) {
        /* Two instances creating it at once: one loses the race harmlessly. */
        if ((err = run(conn, "SELECT 1 FROM saga_migrations LIMIT 1", errstr, errstr_size)))
            return err;
    }
    for (int i = 0; i < n; i++) {
        char ver[16];
        const char *params[2] = {ver, list[i].name};
        PGresult *r;
        int done;

        snprintf(ver, sizeof(ver), "%d", list[i].version);
        if ((err = run(conn, "BEGIN", errstr, errstr_size)))
            return err;
        /* One migrator at a time per database, for as long as this transaction. */
        if ((err = run(conn, "SELECT pg_advisory_xact_lock(7170001)", errstr, errstr_size)))
            goto rollback;
        r = PQexecParams(conn, "SELECT name FROM saga_migrations WHERE version = $1", 1, NULL,
                         params, NULL, NULL, 0);
        if (PQresultStatus(r) != PGRES_TUPLES_OK) {
            err = saga_pg_classify(conn, r);
            saga_pg_errstr(conn, errstr, errstr_size);
            PQclear(r);
            goto rollback;
        }
        done = PQntuples(r) > 0;
        if (done && strcmp(PQgetvalue(r, 0, 0), list[i].name) != 0) {
            /* Another program's schema (a DATABASE_URL pointing at the wrong database):
             * skipping the migration would leave this program without its tables. */
            err = saga_errf(SAGA_ERR_PERMANENT, errstr, errstr_size,
                            "migration %d is recorded in this database as \"%s\", but this "
                            "program's migration %d is \"%s\": the database belongs to another "
                            "program (check DATABASE_URL)",
                            list[i].version, PQgetvalue(r, 0, 0), list[i].version, list[i].name);
            PQclear(r);
            goto rollback;
        }
        PQclear(r);
        if (!done) {
            if ((err = run(conn, list[i].sql, errstr, errstr_size))) {
                char msg[512];
                snprintf(msg, sizeof(msg), "migration %d (%s): %s", list[i].version, list[i].name,
                         errstr ? errstr : "");
                if (errstr)
                    snprintf(errstr, errstr_size, "%s", msg);
                goto rollback;
            }
            r = PQexecParams(conn, "INSERT INTO saga_migrations (version, name) VALUES ($1, $2)", 2,
                             NULL, params, NULL, NULL, 0);
            if (PQresultStatus(r) != PGRES_COMMAND_OK) {
                err = saga_pg_classify(conn, r);
                saga_pg_errstr(conn, errstr, errstr_size);
                PQclear(r);
                goto rollback;
            }
            PQclear(r);
            count++;
        }
        if ((err = run(conn, "COMMIT", errstr, errstr_size)))
            return err;
    }
    if (applied)
        *applied = count;
    return SAGA_OK;
rollback:
    PQclear(PQexec(conn, "ROLLBACK"));
    return err;
}
