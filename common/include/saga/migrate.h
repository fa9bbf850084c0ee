/*
 * Versioned schema migrations, applied by each program at start-up.
 *
 * A migration runs once per database, in version order, inside one transaction
 * with its bookkeeping row, so a crash leaves it applied or not at all. Several
 * instances starting together are serialized by a transaction-level advisory
 * lock. Versions 1-99 belong to common/ (outbox, inbox, deferred events);
 * services number theirs from 100.
 */
#ifndef SAGA_MIGRATE_H
#define SAGA_MIGRATE_H

#include <libpq-fe.h>

#include "saga/err.h"

struct saga_migration {
    int version;
    const char *name;
    const char *sql; /* may hold several statements */
};

/* The tables every service database has (inbox, outbox, deferred:
 * docs/REPLACING-A-SERVICE.md). */
extern const struct saga_migration saga_common_migrations[];
extern const int saga_common_migration_count;

/*
 * Applies every migration of list (n entries, ascending versions) that the
 * database has not recorded yet. Returns how many were applied in *applied (may
 * be NULL). TRANSIENT if the connection failed, PERMANENT if a migration did, or
 * if a version is recorded under another name (the database holds another
 * program's schema: nothing is applied or skipped then).
 */
saga_err_t saga_pg_migrate(PGconn *conn, const struct saga_migration *list, int n, int *applied,
                           char *errstr, size_t errstr_size);

#endif
