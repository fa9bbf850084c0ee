/*
 * order-service's live saga page (docs/WEB.md):
 *
 *   GET /, /app.js, /style.css, /favicon.svg   the page (services/order/web/, embedded
 *                                              at build time), with ETag and CSP
 *   GET /events                                server-sent events: one "timeline"
 *                                              message per new timeline row
 *
 * One feed thread, with a database connection of its own (not a pool slot),
 * polls the timeline (joined with the order's current status) every 200 ms for
 * rows past the last seq it saw and appends them to a ring buffer; each
 * /events connection has a subscriber reading the ring from its own position,
 * on the connection's own HTTP thread (saga_http_reply_stream).
 *
 * With no /events stream open for EVENTS_IDLE_PAUSE (30 s), the feed stops polling
 * (it costs a query every 200 ms, a third of an idle stack's transactions). The first
 * stream to open again resumes it where it stopped, so the rows committed meanwhile
 * reach the ring in order; when more than CATCHUP_ROWS came, it jumps near the newest
 * row instead and every stream gets a resync (as after a restart), also one that comes
 * back later with a Last-Event-ID from before that jump.
 *
 * A seq is taken when a row is inserted but becomes visible at commit, so a
 * smaller seq can appear after a bigger one: the holes below the high-water
 * mark are polled again until they are final (rows of rolled-back transactions and
 * ON CONFLICT DO NOTHING leave holes that never fill). A hole is final once every
 * transaction that could still fill it has ended: the poll after the hole was seen
 * takes an xid of its own as the hole's mark (above every xid assigned before; the
 * transaction that took the seq had its xid before the seq: migration 102 makes the
 * seq's default ask for it first), and a later poll whose snapshot's xmin has reached
 * that mark and still finds no row gives the hole up. A hole whose mark is held up by a
 * long transaction anywhere on the server is given up after GAP_GRACE_MS of polls (a
 * pause or a lost connection not counted): its ids stay that long below it.
 *
 * So a message's id is not its seq but the feed's low-water mark after it: every row
 * with a seq up to the id was sent before or with this message (or its hole given up).
 * A stream that comes back with it (Last-Event-ID), to this instance or another, after a
 * restart or not, gets every row past it that the instance has, some of them again;
 * when the ring no longer holds all of those (it wrapped, or they came before a jump or
 * before the rows loaded at start), it gets a resync first.
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "embedded.h"
#include "order.h"
#include "saga/clock.h"
#include "saga/hash.h"
#include "saga/log.h"
#include "saga/pg.h"
#include "saga/service.h"

extern const struct saga_embedded_file order_web_assets[];
extern const size_t order_web_assets_count;

/* Timestamps as the order API writes them: 2026-11-22T00:03:38.090Z */
#define ISO_MS "'YYYY-MM-DD\"T\"HH24:MI:SS.MS\"Z\"'"

#define RING_SIZE       4096  /* messages kept for subscribers and Last-Event-ID */
#define MAX_SUBSCRIBERS 64    /* open /events streams at most */
#define POLL_MS         200   /* how often the feed looks at the timeline */
#define POLL_LIMIT      "500" /* rows per look */
#define BACKLOG_ROWS    256   /* rows loaded at start, for Last-Event-ID across restarts */
#define GAP_GRACE_MS    10000 /* a hole not final by then is given up */
#define CATCHUP_ROWS    2048  /* rows a resumed feed reads rather than jump over */

/* The page reloads its state on this (after a jump, or for a reader that fell behind). */
#define RESYNC       "event: resync\ndata: {}\n\n"
#define MAX_GAPS     1024
#define HEARTBEAT_MS 15000 /* a comment line when nothing else was sent */
#define WAIT_MS      250   /* a stream callback blocks at most this long */
#define STREAM_CHUNK (64 * 1024)

#define CSP                                                                                        \
    "default-src 'self'; base-uri 'none'; form-action 'self'; frame-ancestors 'none';"             \
    " object-src 'none'"

struct entry {
    long long seq;
    long long low;                        /* its id: the low-water mark after it */
    int all;                              /* for every stream, whatever its customer */
    char customer[SAGA_AUTH_MAX_SUB + 1]; /* the order's customer ("" when unknown) */
    char *msg;                            /* "id: ...\nevent: timeline\ndata: {...}\n\n" */
    size_t len;
};

struct gap { /* seqs lo..hi not seen yet, below the high-water mark */
    long long lo, hi;
    int64_t since_ms;
    unsigned long long mark; /* an xid taken the look after the hole was seen (0: not yet) */
};

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv; /* CLOCK_MONOTONIC; broadcast on new entries and on stop */
    struct entry ring[RING_SIZE];
    unsigned long long head; /* entries appended so far; entry p is ring[p % RING_SIZE] */
    int subscribers;
    long long complete_above; /* every row past this seq the feed has sent is in the ring */
    long long seen_max;       /* the highest seq the feed knows of: an id above it is not ours */
    int looked;               /* the first look is done: the rows loaded at start are in */
    int64_t pause_ms;         /* EVENTS_IDLE_PAUSE; 0: never */
    int64_t watched_ms;       /* when a stream was last seen open (or the start) */
    int64_t paused_ms;        /* when the feed paused */
    int paused;
    atomic_int stop;
    pthread_t thread;
    int started;
    const char *database_url;
    /* The feed thread's own. */
    long long hwm;       /* highest seq delivered */
    long long prime_max; /* holes at or below it are not waited for */
    int primed;
    int64_t lost_ms; /* when the feed lost the database (0: it has it) */
    struct gap gaps[MAX_GAPS];
    int ngaps;
} feed = {.mu = PTHREAD_MUTEX_INITIALIZER};

static int stopping(void)
{
    return saga_service_stopping || atomic_load(&feed.stop);
}

/* --- static assets ------------------------------------------------------------ */

static const struct {
    const char *path;
    const char *file;
    const char *type;
} assets[] = {
    {"/", "index.html", "text/html; charset=utf-8"},
    {"/index.html", "index.html", "text/html; charset=utf-8"},
    {"/app.js", "app.js", "text/javascript; charset=utf-8"},
    {"/style.css", "style.css", "text/css; charset=utf-8"},
    {"/favicon.svg", "favicon.svg", "image/svg+xml"},
};

static const struct saga_embedded_file *embedded(const char *name)
{
    for (size_t i = 0; i < order_web_assets_count; i++)
        if (strcmp(order_web_assets[i].path, name) == 0)
            return &order_web_assets[i];
    return NULL;
}

/* A strong ETag from the content (FNV-1a 64). */
static void etag_of(const struct saga_embedded_file *f, char *out, size_t size)
{
    snprintf(out, size, "\"%016" PRIx64 "\"", saga_fnv1a64(f->data, f->len));
}

/* If-None-Match names etag (or "*"); weak comparison, as RFC 9110 wants. */
static int etag_matches(const char *header, const char *etag)
{
    size_t elen = strlen(etag);
    while (header && *header) {
        size_t n;
        while (*header == ' ' || *header == '\t' || *header == ',')
            header++;
        if (strncmp(header, "W/", 2) == 0)
            header += 2;
        n = strcspn(header, ", \t");
        if ((n == 1 && header[0] == '*') || (n == elen && strncmp(header, etag, n) == 0))
            return 1;
        header += n;
    }
    return 0;
}

static void common_headers(struct saga_http_response *resp)
{
    saga_http_add_header(resp, "Content-Security-Policy", CSP);
    saga_http_add_header(resp, "X-Content-Type-Options", "nosniff");
    saga_http_add_header(resp, "Referrer-Policy", "no-referrer");
}

static void serve_asset(const struct saga_http_request *req, struct saga_http_response *resp,
                        const char *file, const char *type)
{
    const struct saga_embedded_file *f = embedded(file);
    char etag[24];
    char *body;

    if (!f) {
        saga_http_reply_error(resp, 404, "not_found", "no such resource");
        return;
    }
    etag_of(f, etag, sizeof(etag));
    if (etag_matches(saga_http_header(req, "If-None-Match"), etag)) {
        saga_http_reply(resp, 304, NULL, NULL, 0);
    } else {
        if (!(body = malloc(f->len + 1)))
            abort();
        memcpy(body, f->data, f->len + 1);
        saga_http_reply(resp, 200, type, body, f->len);
    }
    /* Not versioned by URL: the browser revalidates (a 304 while unchanged). */
    saga_http_add_header(resp, "Cache-Control", "no-cache");
    saga_http_add_header(resp, "ETag", etag);
    common_headers(resp);
}

/* --- the feed thread ---------------------------------------------------------- */

static json_t *nullable(const PGresult *r, int row, int col)
{
    return PQgetisnull(r, row, col) ? json_null() : json_string(PQgetvalue(r, row, col));
}

/* Columns of the feed's query (poll_once). */
enum {
    C_SEQ,
    C_ORDER,
    C_TYPE,
    C_SERVICE,
    C_SUMMARY,
    C_OCCURRED,
    C_EVENT_ID,
    C_CAUSATION,
    C_STATUS,
    C_REASON,
    C_DETAIL,
    C_CUSTOMER,
    C_CURRENCY,
    C_TOTAL,
    C_CREATED,
    C_TYPES,
};

static char *format_message(const PGresult *r, int i, long long id, size_t *len)
{
    int seen[SAGA_EV_COUNT];
    saga_event_type_t type = SAGA_EV_COUNT;
    const char *status = PQgetisnull(r, i, C_STATUS) ? NULL : PQgetvalue(r, i, C_STATUS);
    long long seq = strtoll(PQgetvalue(r, i, C_SEQ), NULL, 10);
    json_t *o;
    char *data, *msg;
    size_t n;

    order_count_event_types(PQgetvalue(r, i, C_TYPES), seen);
    saga_event_type_parse(PQgetvalue(r, i, C_TYPE), &type);
    o = json_pack(
        "{s:s, s:o, s:o, s:o, s:s, s:s, s:s, s:s, s:s, s:I, s:s, s:o, s:b, s:o, s:o, s:o, s:o}",
        "order_id", PQgetvalue(r, i, C_ORDER), "status", status ? json_string(status) : json_null(),
        "reason", nullable(r, i, C_REASON), "detail", nullable(r, i, C_DETAIL), "compensation",
        status ? order_compensation_state(status, seen) : "none", "event_type",
        PQgetvalue(r, i, C_TYPE), "service", PQgetvalue(r, i, C_SERVICE), "summary",
        PQgetvalue(r, i, C_SUMMARY), "occurred_at", PQgetvalue(r, i, C_OCCURRED), "seq",
        (json_int_t)seq, "event_id", PQgetvalue(r, i, C_EVENT_ID), "causation_id",
        nullable(r, i, C_CAUSATION), "event_is_compensation",
        type < SAGA_EV_COUNT && order_event_is_compensation(type), "customer_id",
        nullable(r, i, C_CUSTOMER), "currency", nullable(r, i, C_CURRENCY), "total_amount",
        PQgetisnull(r, i, C_TOTAL)
            ? json_null()
            : json_integer((json_int_t)strtoll(PQgetvalue(r, i, C_TOTAL), NULL, 10)),
        "created_at", nullable(r, i, C_CREATED));
    if (!o || !(data = json_dumps(o, JSON_COMPACT)))
        abort();
    json_decref(o);
    /* JSON_COMPACT has no newline, so one data: line carries it. */
    n = strlen(data) + 64;
    if (!(msg = malloc(n)))
        abort();
    *len = (size_t)snprintf(msg, n, "id: %lld\nevent: timeline\ndata: %s\n\n", id, data);
    free(data);
    return msg;
}

static void gap_add(long long lo, long long hi, int64_t now, unsigned long long mark)
{
    if (feed.ngaps == MAX_GAPS) {
        /* Too many holes at once: the oldest is given up. */
        int oldest = 0;
        for (int i = 1; i < feed.ngaps; i++)
            if (feed.gaps[i].since_ms < feed.gaps[oldest].since_ms)
                oldest = i;
        feed.gaps[oldest] = feed.gaps[--feed.ngaps];
    }
    feed.gaps[feed.ngaps++] = (struct gap){lo, hi, now, mark};
}

/* A hole's row came: its range splits around it. */
static void gap_remove(long long seq)
{
    for (int i = 0; i < feed.ngaps; i++) {
        struct gap g = feed.gaps[i];
        if (seq < g.lo || seq > g.hi)
            continue;
        feed.gaps[i] = feed.gaps[--feed.ngaps];
        if (g.lo < seq)
            gap_add(g.lo, seq - 1, g.since_ms, g.mark);
        if (seq < g.hi)
            gap_add(seq + 1, g.hi, g.since_ms, g.mark);
        return;
    }
}

/* Every row with a seq up to this was sent (or its hole given up): the lowest hole
 * waited for, less one, or the high-water mark. */
static long long low_water(void)
{
    long long low = feed.hwm;
    for (int i = 0; i < feed.ngaps; i++)
        if (feed.gaps[i].lo - 1 < low)
            low = feed.gaps[i].lo - 1;
    return low;
}

/* The holes' 10 s count the time the feed looked only (not a pause, not an outage). */
static void gaps_shift(int64_t ms)
{
    for (int i = 0; i < feed.ngaps; i++)
        feed.gaps[i].since_ms += ms;
}

static void gaps_expire(int64_t now)
{
    for (int i = 0; i < feed.ngaps;)
        if (now - feed.gaps[i].since_ms > GAP_GRACE_MS)
            feed.gaps[i] = feed.gaps[--feed.ngaps];
        else
            i++;
}

/* Starts the feed from the newest row: with backlog rows before it (at start, for
 * Last-Event-ID across restarts), or none (after a pause). */
static int prime(PGconn *conn, long long backlog)
{
    PGresult *r = saga_pg_query(conn, "SELECT coalesce(max(seq), 0) FROM timeline");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        char err[512];
        saga_pg_errstr(conn, err, sizeof(err));
        saga_warn("web feed: %s", err);
        PQclear(r);
        return -1;
    }
    feed.prime_max = strtoll(PQgetvalue(r, 0, 0), NULL, 10);
    feed.hwm = feed.prime_max > backlog ? feed.prime_max - backlog : 0;
    feed.primed = 1;
    PQclear(r);
    return 0;
}

/*
 * The rows past the high-water mark ($1) and the holes below it ($2), each
 * with its order's current state. Two index range scans, not one OR.
 */
static const char POLL_SQL[] =
    "SELECT t.seq, t.order_id, t.event_type, t.service, t.summary,"
    " to_char(t.occurred_at AT TIME ZONE 'UTC', " ISO_MS "), t.event_id, t.causation_id,"
    " o.status, o.reason, o.detail, o.customer_id, o.currency, o.total_amount,"
    " to_char(o.created_at AT TIME ZONE 'UTC', " ISO_MS "),"
    " (SELECT string_agg(x.event_type, ',') FROM timeline x WHERE x.order_id = t.order_id)"
    " FROM ((SELECT * FROM timeline WHERE seq > $1::bigint ORDER BY seq LIMIT " POLL_LIMIT ")"
    "  UNION ALL (SELECT x.* FROM timeline x JOIN unnest($2::bigint[], $3::bigint[]) g(lo, hi)"
    "   ON x.seq BETWEEN g.lo AND g.hi)) t"
    " LEFT JOIN orders o ON o.order_id = t.order_id"
    " ORDER BY t.seq";

/*
 * With holes to look at, before the look: the server's snapshot's xmin now, and for the
 * holes seen before that have no mark yet, an xid of the feed's own as their mark (taken
 * only then: one xid per hole, not per look). Not the snapshot's xmax for the mark: that
 * is latestCompletedXid + 1, below the xid of a transaction still running that got its
 * xid after the last one to end (xmin skips it). An xid taken now is above every xid
 * assigned before (this statement's snapshot, for xmin, comes before it). *xmin = 0
 * (nothing final this look) when there are no holes, or when the statement failed on a
 * connection that still works (the look goes on: marks only ever wait longer). -1 when
 * the connection is gone.
 */
static int snapshot_marks(PGconn *conn, unsigned long long *xmin)
{
    PGresult *r;
    unsigned long long xid = 0;
    int unmarked = 0;

    *xmin = 0;
    for (int i = 0; i < feed.ngaps; i++)
        unmarked |= !feed.gaps[i].mark;
    if (feed.ngaps == 0)
        return 0;
    r = saga_pg_query(conn, unmarked ? "SELECT pg_snapshot_xmin(pg_current_snapshot())::text,"
                                       " pg_current_xact_id()::text"
                                     : "SELECT pg_snapshot_xmin(pg_current_snapshot())::text");
    if (PQresultStatus(r) != PGRES_TUPLES_OK || PQntuples(r) != 1) {
        char err[512];
        saga_pg_errstr(conn, err, sizeof(err));
        saga_warn("web feed: the holes' marks: %s", err);
        PQclear(r);
        return PQstatus(conn) == CONNECTION_OK ? 0 : -1;
    }
    *xmin = strtoull(PQgetvalue(r, 0, 0), NULL, 10);
    if (unmarked)
        xid = strtoull(PQgetvalue(r, 0, 1), NULL, 10);
    PQclear(r);
    for (int i = 0; xid && i < feed.ngaps; i++)
        if (!feed.gaps[i].mark)
            feed.gaps[i].mark = xid;
    return 0;
}

/* After a look: the holes it found final (their rows did not come) are given up. */
static void gaps_final(unsigned long long xmin)
{
    for (int i = 0; i < feed.ngaps;)
        if (feed.gaps[i].mark && feed.gaps[i].mark <= xmin)
            feed.gaps[i] = feed.gaps[--feed.ngaps];
        else
            i++;
}

/* One look at the timeline; -1 on a database error. */
static int poll_once(PGconn *conn)
{
    struct saga_text gaps = {0};
    char hwm[32], err[512];
    const char *p[3] = {hwm, NULL, NULL};
    struct saga_text his = {0};
    int64_t now = saga_mono_ms();
    unsigned long long xmin;
    PGresult *r;
    int n;

    if (feed.lost_ms) {
        gaps_shift(now - feed.lost_ms);
        feed.lost_ms = 0;
    }
    gaps_expire(now);
    if (snapshot_marks(conn, &xmin) < 0)
        return -1;
    snprintf(hwm, sizeof(hwm), "%lld", feed.hwm);
    saga_pg_array_begin(&gaps);
    saga_pg_array_begin(&his);
    for (int i = 0; i < feed.ngaps; i++) {
        saga_pg_array_int(&gaps, feed.gaps[i].lo);
        saga_pg_array_int(&his, feed.gaps[i].hi);
    }
    saga_pg_array_end(&gaps);
    saga_pg_array_end(&his);
    p[1] = gaps.data;
    p[2] = his.data;
    r = saga_pg_exec(conn, POLL_SQL, 3, p, NULL, NULL, 0);
    free(gaps.data);
    free(his.data);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        saga_pg_errstr(conn, err, sizeof(err));
        saga_warn("web feed: %s", err);
        PQclear(r);
        return -1;
    }
    n = PQntuples(r);
    for (int i = 0; i < n; i++) {
        long long seq = strtoll(PQgetvalue(r, i, C_SEQ), NULL, 10);
        struct entry e = {.seq = seq}, old;
        if (seq <= feed.hwm) {
            gap_remove(seq);
        } else {
            long long lo = feed.hwm + 1 > feed.prime_max + 1 ? feed.hwm + 1 : feed.prime_max + 1;
            if (lo < seq)
                gap_add(lo, seq - 1, now, 0);
            feed.hwm = seq;
        }
        e.low = low_water();
        e.msg = format_message(r, i, e.low, &e.len);
        if (!PQgetisnull(r, i, C_CUSTOMER))
            snprintf(e.customer, sizeof(e.customer), "%s", PQgetvalue(r, i, C_CUSTOMER));
        pthread_mutex_lock(&feed.mu);
        old = feed.ring[feed.head % RING_SIZE];
        feed.ring[feed.head % RING_SIZE] = e;
        feed.head++;
        if (old.msg && old.seq > feed.complete_above) /* the ring lets go of it */
            feed.complete_above = old.seq;
        if (seq > feed.seen_max)
            feed.seen_max = seq;
        pthread_mutex_unlock(&feed.mu);
        free(old.msg);
    }
    PQclear(r);
    gaps_final(xmin);
    if (n || !feed.looked) {
        pthread_mutex_lock(&feed.mu);
        feed.looked = 1;
        pthread_cond_broadcast(&feed.cv);
        pthread_mutex_unlock(&feed.mu);
    }
    return n;
}

static void nap(int64_t ms)
{
    for (int64_t waited = 0; waited < ms && !stopping(); waited += 50) {
        struct timespec ts = {0, 50 * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* 1 while no stream has been open for feed.pause_ms: the feed does not poll. A call that
 * finds it so sets feed.paused (the feed thread's own): the next poll resumes first. */
static int idle_paused(void)
{
    int64_t now = saga_mono_ms();
    int paused;
    pthread_mutex_lock(&feed.mu);
    if (feed.subscribers > 0 || feed.pause_ms <= 0)
        feed.watched_ms = now;
    paused = feed.pause_ms > 0 && now - feed.watched_ms >= feed.pause_ms;
    if (paused && !feed.paused) {
        feed.paused = 1;
        feed.paused_ms = now;
    }
    pthread_mutex_unlock(&feed.mu);
    return paused;
}

/* A stream opened after a pause: the feed goes on where it stopped, or, with more than
 * CATCHUP_ROWS since, near the newest row with a resync for every stream. 0, or -1 on a
 * database error. */
static int resume(PGconn *conn)
{
    long long hwm = feed.hwm;
    struct entry e = {.seq = 0, .all = 1}, old;
    int64_t paused_for = saga_mono_ms() - feed.paused_ms;
    if (prime(conn, 0) < 0)
        return -1;
    if (feed.prime_max - hwm <= CATCHUP_ROWS) {
        /* Read on from here; the holes below it are still looked at for the rest of their
         * GAP_GRACE_MS, the pause not counted (a row committed into one during the pause
         * comes now, as it would have without the pause). */
        feed.hwm = hwm;
        feed.prime_max = hwm;
        gaps_shift(paused_for);
        return 0;
    }
    saga_info("web feed: %lld timeline rows came while no page watched; streams resync",
              feed.prime_max - hwm);
    /* After the resync, from BACKLOG_ROWS below the newest row, waiting for the holes there:
     * a transaction still open now commits after the page reloaded, and its row must come. */
    feed.hwm = feed.prime_max > BACKLOG_ROWS ? feed.prime_max - BACKLOG_ROWS : 0;
    feed.prime_max = feed.hwm;
    /* The holes below the old high-water mark are still waited for (the pause not counted):
     * a transaction open across the jump commits after the page reloaded. */
    gaps_shift(paused_for);
    e.msg = strdup(RESYNC);
    if (!e.msg)
        abort();
    e.len = strlen(RESYNC);
    pthread_mutex_lock(&feed.mu);
    old = feed.ring[feed.head % RING_SIZE];
    feed.ring[feed.head % RING_SIZE] = e;
    feed.head++;
    /* The rows jumped over are not in the ring: a stream that comes back from below them
     * resyncs too. */
    if (old.msg && old.seq > feed.complete_above)
        feed.complete_above = old.seq;
    if (feed.hwm > feed.complete_above)
        feed.complete_above = feed.hwm;
    if (feed.prime_max > feed.seen_max)
        feed.seen_max = feed.prime_max;
    pthread_cond_broadcast(&feed.cv);
    pthread_mutex_unlock(&feed.mu);
    free(old.msg);
    return 0;
}

static void *feed_main(void *arg)
{
    PGconn *conn = NULL;
    (void)arg;
    while (!stopping()) {
        if (!conn) {
            char err[512];
            if (!(conn = saga_service_connect(feed.database_url, err, sizeof(err)))) {
                if (!stopping())
                    saga_warn("web feed: cannot connect to the database: %s", err);
                nap(5000);
                continue;
            }
            if (!feed.primed) {
                long long seen;
                if (prime(conn, BACKLOG_ROWS) < 0) {
                    PQfinish(conn);
                    conn = NULL;
                    nap(1000);
                    continue;
                }
                /* The holes in the backlog are waited for as any: a transaction open now
                 * (another instance's, this one's consumer's) commits a row below the
                 * newest one after this look. */
                seen = feed.prime_max;
                feed.prime_max = feed.hwm;
                /* Below the rows loaded, the ring holds nothing. */
                pthread_mutex_lock(&feed.mu);
                feed.complete_above = feed.hwm;
                feed.seen_max = seen;
                pthread_mutex_unlock(&feed.mu);
            }
        }
        if (idle_paused()) {
            nap(POLL_MS);
            continue;
        }
        if (feed.paused) { /* a stream opened */
            if (resume(conn) < 0) {
                if (PQstatus(conn) != CONNECTION_OK) {
                    PQfinish(conn);
                    conn = NULL;
                }
                nap(1000);
                continue;
            }
            feed.paused = 0;
        }
        if (poll_once(conn) < 0) {
            if (!feed.lost_ms)
                feed.lost_ms = saga_mono_ms();
            if (PQstatus(conn) != CONNECTION_OK) {
                PQfinish(conn);
                conn = NULL;
            }
        }
        nap(POLL_MS);
    }
    if (conn)
        PQfinish(conn);
    return NULL;
}

saga_err_t order_web_start(struct order_app *app, char *errstr, size_t errstr_size)
{
    pthread_condattr_t ca;

    feed.database_url = app->cfg->database_url;
    feed.pause_ms = app->events_pause_ms;
    feed.watched_ms = saga_mono_ms();
    feed.complete_above = LLONG_MAX; /* until the first look: a resuming stream resyncs */
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&feed.cv, &ca);
    pthread_condattr_destroy(&ca);
    atomic_store(&feed.stop, 0);
    if (pthread_create(&feed.thread, NULL, feed_main, NULL) != 0) {
        snprintf(errstr, errstr_size, "cannot start the web feed thread");
        pthread_cond_destroy(&feed.cv);
        return SAGA_ERR_NOMEM;
    }
    feed.started = 1;
    return SAGA_OK;
}

void order_web_stop(struct order_app *app)
{
    (void)app;
    if (!feed.started)
        return;
    atomic_store(&feed.stop, 1);
    pthread_mutex_lock(&feed.mu);
    pthread_cond_broadcast(&feed.cv);
    pthread_mutex_unlock(&feed.mu);
    pthread_join(feed.thread, NULL);
    feed.started = 0;
    /* The HTTP server stopped before this: no subscriber is left. */
    for (int i = 0; i < RING_SIZE; i++) {
        free(feed.ring[i].msg);
        feed.ring[i].msg = NULL;
    }
    pthread_cond_destroy(&feed.cv);
}

/* --- /events -------------------------------------------------------------------- */

struct subscriber {
    unsigned long long next;         /* the ring position it reads next */
    unsigned long long filter_until; /* before this position ... */
    long long skip_upto;             /* ... entries with seq <= this were seen (Last-Event-ID) */
    char *out;                       /* what to send */
    size_t len, off, cap;
    int64_t last_ms;                      /* when it last got something to send */
    char customer[SAGA_AUTH_MAX_SUB + 1]; /* only this customer's sagas; "" = every saga */
    long valid_until; /* epoch s: the token is refused from then on; 0 = never */
    int ending;       /* the last message is queued: end after it */
};

static void sub_append(struct subscriber *s, const char *data, size_t n)
{
    if (s->len + n > s->cap) {
        size_t cap = s->cap ? s->cap : 4096;
        char *p;
        while (cap < s->len + n)
            cap *= 2;
        if (!(p = realloc(s->out, cap)))
            abort();
        s->out = p;
        s->cap = cap;
    }
    memcpy(s->out + s->len, data, n);
    s->len += n;
}

/* The last message of a stream whose token expired: the page asks for a new one. */
#define TOKEN_EXPIRED "event: end\ndata: {\"reason\":\"token_expired\"}\n\n"

/* Waits (at most WAIT_MS) for something to send; -1 when the service is stopping. */
static int sub_fill(struct subscriber *s)
{
    struct timespec until;
    int64_t now = saga_mono_ms();

    clock_gettime(CLOCK_MONOTONIC, &until);
    until.tv_sec += WAIT_MS / 1000;
    until.tv_nsec += (WAIT_MS % 1000) * 1000000L;
    if (until.tv_nsec >= 1000000000L) {
        until.tv_sec++;
        until.tv_nsec -= 1000000000L;
    }
    pthread_mutex_lock(&feed.mu);
    while (!stopping() && s->next == feed.head && now - s->last_ms < HEARTBEAT_MS) {
        if (pthread_cond_timedwait(&feed.cv, &feed.mu, &until) == ETIMEDOUT)
            break;
        now = saga_mono_ms();
    }
    if (stopping()) {
        pthread_mutex_unlock(&feed.mu);
        return -1;
    }
    if (s->next < feed.head) {
        unsigned long long oldest = feed.head > RING_SIZE ? feed.head - RING_SIZE : 0;
        if (s->next < oldest) {
            /* Too slow a reader: messages were overwritten; the page reloads its state. */
            sub_append(s, RESYNC, strlen(RESYNC));
            s->next = oldest;
        }
        while (s->next < feed.head && s->len < STREAM_CHUNK) {
            const struct entry *e = &feed.ring[s->next % RING_SIZE];
            if ((s->next >= s->filter_until || e->seq > s->skip_upto) &&
                (e->all || !s->customer[0] || strcmp(s->customer, e->customer) == 0))
                sub_append(s, e->msg, e->len);
            s->next++;
        }
    } else if (now - s->last_ms >= HEARTBEAT_MS) {
        sub_append(s, ": heartbeat\n\n", strlen(": heartbeat\n\n"));
    }
    pthread_mutex_unlock(&feed.mu);
    if (s->len)
        s->last_ms = saga_mono_ms();
    return 0;
}

static ssize_t sse_read(void *arg, char *buf, size_t max)
{
    struct subscriber *s = arg;
    size_t n;

    if (s->off == s->len) {
        s->off = s->len = 0;
        if (s->ending)
            return SAGA_HTTP_STREAM_END;
        /* A stream lives no longer than its token: the request that opened it would
         * be refused now (a revoked customer keeps no window open). */
        if (s->valid_until && (long)time(NULL) >= s->valid_until) {
            sub_append(s, TOKEN_EXPIRED, strlen(TOKEN_EXPIRED));
            s->ending = 1;
        } else if (sub_fill(s) < 0) {
            return SAGA_HTTP_STREAM_END;
        }
        if (!s->len)
            return 0; /* called again: nothing blocks for longer than WAIT_MS */
    }
    n = s->len - s->off < max ? s->len - s->off : max;
    memcpy(buf, s->out + s->off, n);
    s->off += n;
    return (ssize_t)n;
}

static void sse_free(void *arg)
{
    struct subscriber *s = arg;
    pthread_mutex_lock(&feed.mu);
    feed.subscribers--;
    pthread_mutex_unlock(&feed.mu);
    free(s->out);
    free(s);
}

static int parse_seq(const char *s, long long *out)
{
    char *end;
    if (!s || !isdigit((unsigned char)*s) || strlen(s) > 18)
        return 0;
    *out = strtoll(s, &end, 10);
    return *end == '\0';
}

static void serve_events(struct order_app *app, const struct saga_http_request *req,
                         struct saga_http_response *resp)
{
    const char *last = saga_http_header(req, "Last-Event-ID");
    struct saga_principal who;
    struct subscriber *s;
    long long last_seq = 0;
    int resume = 0, complete = 0;

    /* EventSource sends no header: the page passes its token as ?access_token=. */
    if (order_authenticate(app, req, saga_http_query(req, "access_token"), &who, resp) != 0)
        return;

    if (!last || !*last)
        last = saga_http_query(req, "last_event_id");
    resume = parse_seq(last, &last_seq);
    pthread_mutex_lock(&feed.mu);
    if (feed.subscribers >= MAX_SUBSCRIBERS) {
        pthread_mutex_unlock(&feed.mu);
        saga_http_reply_error(resp, 503, "unavailable", "too many event streams are open");
        saga_http_add_header(resp, "Retry-After", "5");
        return;
    }
    if (!(s = calloc(1, sizeof(*s))))
        abort();
    feed.subscribers++;
    if (who.role == SAGA_ROLE_CUSTOMER)
        snprintf(s->customer, sizeof(s->customer), "%s", who.sub);
    s->valid_until = who.valid_until;
    if (resume && !feed.looked) {
        /* Right after a start (every page reconnects at once): the first look is waited
         * for, 2 s at most, so that the rows loaded at start are in the ring (without them
         * the stream gets a resync). */
        struct timespec until;
        clock_gettime(CLOCK_MONOTONIC, &until);
        until.tv_sec += 2;
        while (!feed.looked && !stopping() &&
               pthread_cond_timedwait(&feed.cv, &feed.mu, &until) != ETIMEDOUT)
            ;
    }
    s->next = feed.head;
    if (resume) {
        /* Every row past its id that this instance has sent, in the order sent (some the
         * stream saw already: the rows past the id it had when it went away). When the
         * ring does not hold all of them, a resync first: the page reloads. */
        s->next = feed.head > RING_SIZE ? feed.head - RING_SIZE : 0;
        /* from its first entry it has not seen: an entry overwritten before the first fill
         * is then one it had (no resync for it) */
        while (s->next < feed.head && feed.ring[s->next % RING_SIZE].seq <= last_seq)
            s->next++;
        s->filter_until = feed.head;
        s->skip_upto = last_seq;
        /* an id above every seq the feed knows is not from this timeline (made again) */
        complete = last_seq >= feed.complete_above && last_seq <= feed.seen_max;
    }
    pthread_mutex_unlock(&feed.mu);
    /* The browser reconnects after 2 s; the first bytes open the stream at once. */
    sub_append(s, "retry: 2000\n: saga timeline events\n\n",
               strlen("retry: 2000\n: saga timeline events\n\n"));
    if (resume && !complete)
        sub_append(s, RESYNC, strlen(RESYNC));
    s->last_ms = saga_mono_ms();
    saga_http_reply_stream(resp, 200, "text/event-stream", sse_read, sse_free, s);
    /* One principal's streams are capped however many addresses it comes from
     * (with AUTH_MODE=off everyone is the same "anonymous": only addresses count). */
    if (!app->auth->off) {
        char principal[96];
        snprintf(principal, sizeof(principal), "%s:%s", saga_role2str(who.role), who.sub);
        saga_http_set_principal(resp, principal);
    }
    saga_http_add_header(resp, "Cache-Control", "no-store");
    saga_http_add_header(resp, "X-Accel-Buffering", "no");
    common_headers(resp);
}

/* --- routes ----------------------------------------------------------------------- */

int order_web_http(struct order_app *app, const struct saga_http_request *req,
                   struct saga_http_response *resp)
{
    int get = strcmp(req->method, "GET") == 0 || strcmp(req->method, "HEAD") == 0;

    for (size_t i = 0; i < sizeof(assets) / sizeof(assets[0]); i++)
        if (strcmp(req->path, assets[i].path) == 0) {
            if (get) {
                serve_asset(req, resp, assets[i].file, assets[i].type);
            } else {
                saga_http_reply_error(resp, 405, "method_not_allowed", "%s takes GET", req->path);
                saga_http_add_header(resp, "Allow", "GET, HEAD");
            }
            return 1;
        }
    if (strcmp(req->path, "/events") == 0) {
        if (get) {
            serve_events(app, req, resp);
        } else {
            saga_http_reply_error(resp, 405, "method_not_allowed", "/events takes GET");
            saga_http_add_header(resp, "Allow", "GET");
        }
        return 1;
    }
    return 0;
}
