#include "testdb.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

#include "stack_env.h"

static void super_exec(const char *sql)
{
    PGconn *c = PQconnectdb(stack_env("PG_SUPERUSER_URL"));
    PGresult *r;
    if (PQstatus(c) != CONNECTION_OK) {
        fprintf(stderr, "testdb: %s", PQerrorMessage(c));
        exit(1);
    }
    PQclear(PQexec(c, "SET client_min_messages = warning"));
    r = PQexec(c, sql);
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        fprintf(stderr, "testdb: %s: %s", sql, PQerrorMessage(c));
        exit(1);
    }
    PQclear(r);
    PQfinish(c);
}

void testdb_create(struct testdb *db, const char *prefix, const char *service)
{
    static int seq;
    char sql[512], var[64];

    snprintf(db->name, sizeof(db->name), "%s_%ld_%d", prefix, (long)getpid(), ++seq);
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s", db->name);
    super_exec(sql);
    snprintf(sql, sizeof(sql), "CREATE DATABASE %s OWNER %s_service", db->name, service);
    super_exec(sql);
    snprintf(sql, sizeof(sql),
             "REVOKE ALL ON DATABASE %s FROM PUBLIC; GRANT CONNECT ON DATABASE %s TO "
             "outbox_relay",
             db->name, db->name);
    super_exec(sql);
    snprintf(var, sizeof(var), "STACK_PW_%s", service);
    for (char *p = var; *p; p++)
        if (*p >= 'a' && *p <= 'z')
            *p = (char)(*p - 'a' + 'A');
    snprintf(db->owner_url, sizeof(db->owner_url), "postgresql://%s_service:%s@127.0.0.1:%s/%s",
             service, stack_env(var), stack_env("STACK_PG_PORT"), db->name);
    snprintf(db->relay_url, sizeof(db->relay_url), "postgresql://outbox_relay:%s@127.0.0.1:%s/%s",
             stack_env("STACK_PW_OUTBOX_RELAY"), stack_env("STACK_PG_PORT"), db->name);
}

void testdb_drop(const struct testdb *db)
{
    char sql[256];
    snprintf(sql, sizeof(sql), "DROP DATABASE IF EXISTS %s WITH (FORCE)", db->name);
    super_exec(sql);
}

long long testdb_scalar(const struct testdb *db, const char *sql)
{
    PGconn *c = PQconnectdb(db->owner_url);
    PGresult *r;
    long long v = -1;
    if (PQstatus(c) == CONNECTION_OK) {
        r = PQexec(c, sql);
        const char *state = PQresultErrorField(r, PG_DIAG_SQLSTATE);
        if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) > 0)
            v = atoll(PQgetvalue(r, 0, 0));
        else if (!state || strcmp(state, "42P01") != 0) /* no table yet: the caller waits */
            fprintf(stderr, "testdb: %s: %s", sql, PQerrorMessage(c));
        PQclear(r);
    }
    PQfinish(c);
    return v;
}
