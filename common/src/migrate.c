#include "saga/migrate.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "saga/pg.h"

/*
 * outbox: one row per event to publish, written in the business transaction.
 *   Unpublished rows are found by a partial index; published ones are pruned by
 *   the relay after its retention. headers is a JSON object of UTF-8 strings.
 * inbox: what each consumer has processed, for exactly-once effects.
 * deferred: events that arrived before what they need (e.g. a trigger before its
 *   OrderPlaced), kept with their original bytes until it lands.
 * The outbox_relay role, where it exists, may read, mark and prune the outbox only.
 */
static const char outbox_v1[] =
    "CREATE TABLE outbox ("
    "  id           bigserial   PRIMARY KEY,"
    "  topic        text        NOT NULL,"
    "  msg_key      text        NOT NULL,"
    "  event_type   text        NOT NULL,"
    "  event_id     text        NOT NULL,"
    "  payload      bytea       NOT NULL,"
    "  headers      jsonb       NOT NULL DEFAULT '{}',"
    "  created_at   timestamptz NOT NULL DEFAULT clock_timestamp(),"
    "  published_at timestamptz"
    ");"
    "CREATE INDEX outbox_pending ON outbox (id) WHERE published_at IS NULL;"
    "CREATE INDEX outbox_published ON outbox (published_at) WHERE published_at IS NOT NULL;"
    "CREATE TABLE inbox ("
    "  consumer     text        NOT NULL,"
    "  event_id     text        NOT NULL,"
    "  processed_at timestamptz NOT NULL DEFAULT clock_timestamp(),"
    "  PRIMARY KEY (consumer, event_id)"
    ");"
    "CREATE INDEX inbox_processed_at ON inbox (processed_at);"
    "CREATE TABLE deferred ("
    "  id          bigserial   PRIMARY KEY,"
    "  consumer    text        NOT NULL,"
    "  wait_key    text        NOT NULL,"
    "  event_id    text        NOT NULL,"
    "  event_type  text        NOT NULL,"
    "  topic       text        NOT NULL,"
    "  kpartition  int         NOT NULL,"
    "  koffset     bigint      NOT NULL,"
    "  msg_key     text,"
    "  payload     bytea       NOT NULL,"
    "  headers     jsonb       NOT NULL DEFAULT '{}',"
    "  deferred_at timestamptz NOT NULL DEFAULT clock_timestamp(),"
    "  UNIQUE (consumer, event_id)"
    ");"
    "CREATE INDEX deferred_wait ON deferred (consumer, wait_key);"
    "DO $$ BEGIN"
    "  IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'outbox_relay') THEN"
    "    GRANT USAGE ON SCHEMA public TO outbox_relay;"
    "    GRANT SELECT, DELETE, UPDATE (published_at) ON outbox TO outbox_relay;"
    "  END IF;"
    "END $$;";

/* A deferred event that fails for good when it is released is marked dead, then sent to
 * the DLQ after the commit and deleted (consumer_tx.c). */
static const char deferred_dead_v2[] =
    "ALTER TABLE deferred ADD COLUMN dead_reason text, ADD COLUMN dead_at timestamptz;"
    "CREATE INDEX deferred_dead ON deferred (consumer, id) WHERE dead_reason IS NOT NULL;";

/* The key and the headers are kept byte for byte (raw_key, raw_headers): text and jsonb
 * refused some (a NUL, bytes that are not UTF-8), and such an event could not be deferred.
 * Rows from before keep msg_key and headers, which the runtime still reads. */
static const char deferred_raw_v3[] =
    "ALTER TABLE deferred ADD COLUMN raw_key bytea, ADD COLUMN raw_headers bytea;";

const struct saga_migration saga_common_migrations[] = {
    {1, "outbox, inbox and deferred events", outbox_v1},
    {2, "deferred events that failed when released", deferred_dead_v2},
    {3, "deferred keys and headers byte for byte", deferred_raw_v3},
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
