/*
 * Test support: a fresh database on the test stack's PostgreSQL, owned by one
 * service role and reachable by the outbox_relay role, like the stack's own —
 * so tests never share tables. Dropped by testdb_drop.
 */
#ifndef SAGA_TEST_TESTDB_H
#define SAGA_TEST_TESTDB_H

struct testdb {
    char name[64];
    char owner_url[512]; /* as the owning service role */
    char relay_url[512]; /* as outbox_relay */
};

/* Creates "<prefix>_<pid>_<n>" owned by <service>_service; aborts the test on failure. */
void testdb_create(struct testdb *db, const char *prefix, const char *service);
void testdb_drop(const struct testdb *db);

/* Runs sql as the owner and returns the first column of the first row as a number. */
long long testdb_scalar(const struct testdb *db, const char *sql);

#endif
