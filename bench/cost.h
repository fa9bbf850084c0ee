/*
 * cost: what a stretch of load cost the whole stack, to divide by the orders it
 * finished. CPU time of every process of a local stack (its programs, the broker,
 * the registry, PostgreSQL with all its backends) from /proc, and PostgreSQL's
 * transactions and WAL from pg_stat_database and pg_stat_wal.
 *
 * A process's CPU time is its own (utime + stime) plus that of the children it has
 * waited for (cutime + cstime), summed over it and its live descendants: a backend
 * that ended during the stretch is counted through the postmaster.
 */
#ifndef SAGA_BENCH_COST_H
#define SAGA_BENCH_COST_H

#include <stdint.h>
#include <stdio.h>

#define COST_MAX_PROCS 16
#define COST_MAX_DBS   16

struct cost_snap {
    int nprocs;
    struct {
        char name[48];
        double cpu_s; /* -1: not running */
    } procs[COST_MAX_PROCS];
    double busy_s, total_s; /* the machine (all cores), from /proc/stat */
    int pg_ok;              /* the counters below were read */
    int64_t xacts;          /* commits + rollbacks, every database */
    int64_t wal_records, wal_bytes, wal_syncs, wal_writes;
    int ndbs; /* xacts per database, by name (the ones with any) */
    struct {
        char name[64];
        int64_t xacts;
    } dbs[COST_MAX_DBS];
    char pg_error[160];
};

/* Takes a snapshot of the stack in stack_dir (run/<name>.pid, PostgreSQL under
 * pg_base, NULL: stack_dir/pg); pg_url: a superuser's URL (NULL: no database counters). */
void cost_snap_take(const char *stack_dir, const char *pg_base, const char *pg_url,
                    struct cost_snap *s);

/* Prints what happened between a and b per order (orders finished between them) as an
 * indented table to out (NULL: none), and to json (NULL: none) as a JSON member
 * "cost":{...}. */
void cost_report(const struct cost_snap *a, const struct cost_snap *b, long orders, FILE *out,
                 FILE *json);

#endif
