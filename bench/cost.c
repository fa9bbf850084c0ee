/* cost: see cost.h. */
#include "cost.h"

#include <ctype.h>
#include <stdarg.h>
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <libpq-fe.h>

struct proc {
    long pid, ppid;
    double cpu_s; /* utime + stime + cutime + cstime */
};

/* Every process of the machine with its parent and CPU time. */
static int scan_procs(struct proc **out)
{
    DIR *d = opendir("/proc");
    struct dirent *de;
    int n = 0, cap = 0;
    double tick = (double)sysconf(_SC_CLK_TCK);
    *out = NULL;
    if (!d)
        return 0;
    while ((de = readdir(d))) {
        char path[300], buf[1024], *p;
        FILE *f;
        size_t len;
        long ppid;
        unsigned long long ut, st;
        long long cut, cst;
        if (!isdigit((unsigned char)de->d_name[0]))
            continue;
        snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
        if (!(f = fopen(path, "r")))
            continue;
        len = fread(buf, 1, sizeof(buf) - 1, f);
        fclose(f);
        buf[len] = '\0';
        /* pid (comm) state ppid ...: comm may hold spaces and parentheses */
        if (!(p = strrchr(buf, ')')))
            continue;
        if (sscanf(p + 2, "%*c %ld %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu %lld %lld", &ppid,
                   &ut, &st, &cut, &cst) != 5)
            continue;
        if (n == cap) {
            struct proc *np = realloc(*out, (size_t)(cap = cap ? cap * 2 : 512) * sizeof(*np));
            if (!np)
                break;
            *out = np;
        }
        (*out)[n].pid = atol(de->d_name);
        (*out)[n].ppid = ppid;
        (*out)[n].cpu_s = (double)(ut + st) / tick + (double)(cut + cst) / tick;
        n++;
    }
    closedir(d);
    return n;
}

/* root's CPU time and that of its live descendants, or -1 when root is not running. */
static double tree_cpu(const struct proc *ps, int n, long root)
{
    double sum = 0;
    int found = 0;
    for (int i = 0; i < n; i++) {
        long p = ps[i].pid;
        for (int depth = 0; p > 1 && depth < 32; depth++) {
            if (p == root) {
                sum += ps[i].cpu_s;
                found |= ps[i].pid == root;
                break;
            }
            long next = 0;
            for (int j = 0; j < n; j++)
                if (ps[j].pid == p) {
                    next = ps[j].ppid;
                    break;
                }
            p = next;
        }
    }
    return found ? sum : -1;
}

static long read_pid(const char *path)
{
    FILE *f = fopen(path, "r");
    long pid = 0;
    if (f) {
        if (fscanf(f, "%ld", &pid) != 1)
            pid = 0;
        fclose(f);
    }
    return pid;
}

static void add_proc(struct cost_snap *s, const char *name, double cpu_s)
{
    if (s->nprocs >= COST_MAX_PROCS)
        return;
    snprintf(s->procs[s->nprocs].name, sizeof(s->procs[0].name), "%s", name);
    s->procs[s->nprocs].cpu_s = cpu_s;
    s->nprocs++;
}

static void read_machine(struct cost_snap *s)
{
    FILE *f = fopen("/proc/stat", "r");
    unsigned long long v[8] = {0};
    double tick = (double)sysconf(_SC_CLK_TCK), total = 0;
    if (!f)
        return;
    if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4],
               &v[5], &v[6], &v[7]) == 8) {
        for (int i = 0; i < 8; i++)
            total += (double)v[i];
        s->total_s = total / tick;
        s->busy_s = (total - (double)v[3] - (double)v[4]) / tick; /* not idle, not iowait */
    }
    fclose(f);
}

static void read_pg(struct cost_snap *s, const char *pg_url)
{
    PGconn *c = PQconnectdb(pg_url);
    PGresult *r;
    if (PQstatus(c) != CONNECTION_OK) {
        snprintf(s->pg_error, sizeof(s->pg_error), "%s", PQerrorMessage(c));
        PQfinish(c);
        return;
    }
    r = PQexec(c, "SELECT (SELECT coalesce(sum(xact_commit + xact_rollback), 0)"
                  " FROM pg_stat_database), wal_records, wal_bytes, wal_sync, wal_write"
                  " FROM pg_stat_wal");
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
        s->xacts = atoll(PQgetvalue(r, 0, 0));
        s->wal_records = atoll(PQgetvalue(r, 0, 1));
        s->wal_bytes = atoll(PQgetvalue(r, 0, 2));
        s->wal_syncs = atoll(PQgetvalue(r, 0, 3));
        s->wal_writes = atoll(PQgetvalue(r, 0, 4));
        s->pg_ok = 1;
    } else {
        snprintf(s->pg_error, sizeof(s->pg_error), "%s", PQerrorMessage(c));
    }
    PQclear(r);
    /* Per database: which service's transactions they are. */
    r = PQexec(c, "SELECT datname, xact_commit + xact_rollback FROM pg_stat_database"
                  " WHERE datname IS NOT NULL ORDER BY datname");
    if (PQresultStatus(r) == PGRES_TUPLES_OK)
        for (int i = 0; i < PQntuples(r) && s->ndbs < COST_MAX_DBS; i++) {
            snprintf(s->dbs[s->ndbs].name, sizeof(s->dbs[0].name), "%s", PQgetvalue(r, i, 0));
            s->dbs[s->ndbs].xacts = atoll(PQgetvalue(r, i, 1));
            s->ndbs++;
        }
    PQclear(r);
    PQfinish(c);
}

/* Orders the processes by name (the name is the first member of each). */
static int by_name(const void *a, const void *b)
{
    return strcmp((const char *)a, (const char *)b);
}

void cost_snap_take(const char *stack_dir, const char *pg_base, const char *pg_url,
                    struct cost_snap *s)
{
    struct proc *ps = NULL;
    int n;
    char path[600];
    DIR *d;
    struct dirent *de;

    memset(s, 0, sizeof(*s));
    /* PostgreSQL first: the stack's statements are what the rest of the snapshot sees. */
    if (pg_url)
        read_pg(s, pg_url);
    read_machine(s);
    n = scan_procs(&ps);
    snprintf(path, sizeof(path), "%s/run", stack_dir);
    if ((d = opendir(path))) {
        while ((de = readdir(d))) {
            size_t len = strlen(de->d_name);
            char name[48];
            if (len < 5 || len - 4 >= sizeof(name) || strcmp(de->d_name + len - 4, ".pid") != 0 ||
                strncmp(de->d_name, "watchdog", 8) == 0)
                continue;
            snprintf(name, sizeof(name), "%.*s", (int)(len - 4), de->d_name);
            snprintf(path, sizeof(path), "%s/run/%s", stack_dir, de->d_name);
            add_proc(s, name, tree_cpu(ps, n, read_pid(path)));
        }
        closedir(d);
    }
    if (pg_base)
        snprintf(path, sizeof(path), "%s/data/postmaster.pid", pg_base);
    else
        snprintf(path, sizeof(path), "%s/pg/data/postmaster.pid", stack_dir);
    add_proc(s, "postgres", tree_cpu(ps, n, read_pid(path)));
    qsort(s->procs, (size_t)s->nprocs, sizeof(s->procs[0]), by_name);
    free(ps);
}

/* fprintf to out, if any. */
__attribute__((format(printf, 2, 3))) static void say(FILE *out, const char *fmt, ...)
{
    va_list ap;
    if (!out)
        return;
    va_start(ap, fmt);
    vfprintf(out, fmt, ap);
    va_end(ap);
}

void cost_report(const struct cost_snap *a, const struct cost_snap *b, long orders, FILE *out,
                 FILE *json)
{
    double total = 0, per = orders > 0 ? 1.0 / (double)orders : 0, window = b->total_s - a->total_s;
    int first = 1;

    say(out, "  cost per order     (%ld orders finished in the window)\n", orders);
    if (json)
        fprintf(json, "\"cost\":{\"orders\":%ld,\"cpu_ms\":{", orders);
    for (int i = 0; i < b->nprocs; i++) {
        double d = -1;
        for (int j = 0; j < a->nprocs; j++)
            if (!strcmp(a->procs[j].name, b->procs[i].name) && a->procs[j].cpu_s >= 0 &&
                b->procs[i].cpu_s >= 0)
                d = b->procs[i].cpu_s - a->procs[j].cpu_s;
        if (d < 0) {
            say(out, "    CPU %-22s      n/a (not running throughout)\n", b->procs[i].name);
            continue;
        }
        total += d;
        say(out, "    CPU %-22s %8.2f ms\n", b->procs[i].name, d * 1000 * per);
        if (json)
            fprintf(json, "%s\"%s\":%.3f", first ? "" : ",", b->procs[i].name, d * 1000 * per);
        first = 0;
    }
    say(out, "    CPU %-22s %8.2f ms\n", "whole stack", total * 1000 * per);
    if (window > 0)
        say(out, "    machine busy         %8.1f %% of all cores (the load generator included)\n",
            100.0 * (b->busy_s - a->busy_s) / window);
    if (json)
        fprintf(json, "%s\"stack\":%.3f},\"machine_busy\":%.3f", first ? "" : ",",
                total * 1000 * per, window > 0 ? (b->busy_s - a->busy_s) / window : 0);
    if (a->pg_ok && b->pg_ok) {
        say(out, "    transactions         %8.2f (every database)\n",
            (double)(b->xacts - a->xacts) * per);
        for (int i = 0; i < b->ndbs; i++) {
            int64_t before = 0;
            for (int j = 0; j < a->ndbs; j++)
                if (!strcmp(a->dbs[j].name, b->dbs[i].name))
                    before = a->dbs[j].xacts;
            if (b->dbs[i].xacts - before > 0)
                say(out, "      in %-19s %8.2f\n", b->dbs[i].name,
                    (double)(b->dbs[i].xacts - before) * per);
        }
        say(out, "    WAL records          %8.1f\n",
            (double)(b->wal_records - a->wal_records) * per);
        say(out, "    WAL bytes            %8.0f\n", (double)(b->wal_bytes - a->wal_bytes) * per);
        say(out, "    WAL fsyncs           %8.2f (writes %.2f)\n",
            (double)(b->wal_syncs - a->wal_syncs) * per,
            (double)(b->wal_writes - a->wal_writes) * per);
        if (json)
            fprintf(json,
                    ",\"transactions\":%.3f,\"wal_records\":%.2f,\"wal_bytes\":%.1f,"
                    "\"wal_fsyncs\":%.3f,\"wal_writes\":%.3f",
                    (double)(b->xacts - a->xacts) * per,
                    (double)(b->wal_records - a->wal_records) * per,
                    (double)(b->wal_bytes - a->wal_bytes) * per,
                    (double)(b->wal_syncs - a->wal_syncs) * per,
                    (double)(b->wal_writes - a->wal_writes) * per);
        if (json) {
            fprintf(json, ",\"transactions_by_database\":{");
            for (int i = 0, n = 0; i < b->ndbs; i++) {
                int64_t before = 0;
                for (int j = 0; j < a->ndbs; j++)
                    if (!strcmp(a->dbs[j].name, b->dbs[i].name))
                        before = a->dbs[j].xacts;
                if (b->dbs[i].xacts - before > 0)
                    fprintf(json, "%s\"%s\":%.3f", n++ ? "," : "", b->dbs[i].name,
                            (double)(b->dbs[i].xacts - before) * per);
            }
            fprintf(json, "}");
        }
    } else {
        say(out, "    database counters    n/a (%s)\n",
            a->pg_ok         ? b->pg_error
            : a->pg_error[0] ? a->pg_error
                             : "PG_SUPERUSER_URL unset");
    }
    if (json)
        fprintf(json, "}");
}
