/*
 * loadgen: places orders through the order API and measures placed -> outcome
 * latency from the event time stamps on the `orders` topic (OrderPlaced's
 * occurred_at to OrderConfirmed's / OrderCancelled's), like a user watching the
 * saga would.
 *
 *   loadgen --rate 100 --duration 30        open loop: 100 orders/s for 30 s
 *   loadgen --concurrency 16 --duration 30  closed loop: 16 clients, each placing an
 *                                           order and waiting for its outcome
 *   options: --fail-share 0.1 (declined cards), --warmup S, --json FILE,
 *            --label TEXT, --stack-dir DIR (RSS of the stack's programs, and the cost
 *            per order: CPU time of every process of the stack, and with
 *            PG_SUPERUSER_URL PostgreSQL's transactions and WAL, over the measured
 *            window; STACK_PG_BASE: where its PostgreSQL lives, default DIR/pg)
 *   env: ORDER_API_URL (ORDER_API_CACERT for https), SAGA_TOKEN or STACK_OPERATOR_TOKEN (the bearer
 * token), KAFKA_BOOTSTRAP_SERVERS, SCHEMA_REGISTRY_URL
 *
 * Each order has an Idempotency-Key of its own: a request that got no answer or a
 * 503 is sent again (up to 3 times) with the same key, never placing it twice.
 *
 * Prints a table and (with --json) writes the numbers as JSON. Exit 1 when
 * orders failed or did not finish.
 */
#include <dirent.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <curl/curl.h>
#include <librdkafka/rdkafka.h>

#include "saga/config.h"
#include "saga/hash.h"
#include "saga/events.h"
#include "saga/ids.h"
#include "saga/registry.h"
#include "saga/serde.h"

#include "cost.h"

#define MAX_WORKERS 256
#define TABLE_BITS  20

/* --- the orders we placed, by id ------------------------------------------------ */

struct entry {
    char id[37];
    _Atomic int state;  /* 0 free, 1 placed, 2 done */
    int64_t placed_at;  /* OrderPlaced.occurred_at, ms */
    int64_t outcome_at; /* the outcome's occurred_at, ms */
    int confirmed;
};

static struct entry *table;
static pthread_mutex_t table_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t table_cv = PTHREAD_COND_INITIALIZER;

static uint32_t hash(const char *s)
{
    return saga_fnv1a32_str(s);
}

/* The entry for id (created when create), under table_mu. */
static struct entry *lookup(const char *id, int create)
{
    uint32_t mask = (1u << TABLE_BITS) - 1, i = hash(id) & mask;
    for (uint32_t n = 0; n <= mask; n++, i = (i + 1) & mask) {
        struct entry *e = &table[i];
        if (!e->id[0]) {
            if (!create)
                return NULL;
            snprintf(e->id, sizeof(e->id), "%s", id);
            return e;
        }
        if (strcmp(e->id, id) == 0)
            return e;
    }
    return NULL;
}

/* --- settings and counters --------------------------------------------------------- */

static double rate;     /* open loop: orders per second (0: closed loop) */
static int concurrency; /* closed loop clients, or open loop senders */
static double duration = 30, warmup = 5, fail_share = 0.1;
static const char *api_url, *json_path, *label = "", *stack_dir;
static char auth_header[2048]; /* "Authorization: Bearer ...", or "" */
static int64_t t_start_ms, t_measure_ms, t_end_ms;
static _Atomic long undecodable;
static _Atomic long placed, http_errors, completed, confirmed_n, cancelled_n, next_index;
static _Atomic int stop_sending, stop_consuming;
static int64_t *lat; /* latencies of the measured orders, ms */
static _Atomic long nlat;
static long lat_cap;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_until(int64_t ms)
{
    int64_t d = ms - now_ms();
    if (d > 0) {
        struct timespec ts = {d / 1000, (d % 1000) * 1000000L};
        nanosleep(&ts, NULL);
    }
}

/* --- HTTP ---------------------------------------------------------------------------- */

struct body {
    char data[4096];
    size_t len;
};

static size_t on_body(char *p, size_t size, size_t n, void *arg)
{
    struct body *b = arg;
    size_t add = size * n, room = sizeof(b->data) - 1 - b->len;
    memcpy(b->data + b->len, p, add < room ? add : room);
    b->len += add < room ? add : room;
    b->data[b->len] = '\0';
    return add;
}

static const char *const skus[] = {"sku-book", "sku-mug", "sku-tshirt", "sku-headphones",
                                   "sku-lamp"};
static const char *const customers[] = {"cust-alice", "cust-bob", "cust-carol", "cust-dave"};

/*
 * Places one order; returns 1 and its id, or 0. Every order carries an
 * Idempotency-Key of its own, kept when a request gets no answer or a 503 and is
 * sent again (up to 3 times): a retry never places the order twice.
 */
static int place(CURL *c, unsigned *seed, char id[37])
{
    char body[1024], items[256], url[512], key[SAGA_UUID_LEN + 1], keyhdr[64];
    struct curl_slist *h = NULL;
    long status = 0;
    size_t o = 0;
    int n = 1 + (int)(rand_r(seed) % 3), ok = 0;
    int fail = (double)rand_r(seed) / RAND_MAX < fail_share;

    for (int i = 0; i < n; i++)
        o += (size_t)snprintf(items + o, sizeof(items) - o, "%s{\"sku\":\"%s\",\"quantity\":%d}",
                              i ? "," : "", skus[rand_r(seed) % 5], 1 + (int)(rand_r(seed) % 3));
    snprintf(body, sizeof(body),
             "{\"customer_id\":\"%s\",\"currency\":\"EUR\",\"payment_token\":\"%s\",\"items\":[%s],"
             "\"shipping_address\":{\"recipient\":\"Load Test\",\"line1\":\"Main Street 1\","
             "\"city\":\"Utrecht\",\"postal_code\":\"3511 AB\",\"country\":\"NL\"}}",
             customers[rand_r(seed) % 4], fail ? "tok_chargeDeclined" : "tok_visa", items);
    snprintf(url, sizeof(url), "%s/orders", api_url);
    saga_uuid4(key);
    snprintf(keyhdr, sizeof(keyhdr), "Idempotency-Key: %s", key);
    h = curl_slist_append(
        curl_slist_append(curl_slist_append(NULL, "Content-Type: application/json"), "Expect:"),
        keyhdr);
    if (auth_header[0])
        h = curl_slist_append(h, auth_header);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, h);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    for (int attempt = 0; attempt < 4 && !ok; attempt++) {
        struct body b = {{0}, 0};
        const char *k;
        if (attempt)
            usleep(200u * 1000u << attempt);
        curl_easy_setopt(c, CURLOPT_WRITEDATA, &b);
        status = 0;
        if (curl_easy_perform(c) == CURLE_OK)
            curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &status);
        if (status == 202 || status == 200) { /* 200: an earlier attempt had placed it */
            if ((k = strstr(b.data, "\"order_id\":\"")) != NULL) {
                snprintf(id, 37, "%.36s", k + 12);
                ok = 1;
            }
            break;
        }
        if (status != 0 && status != 503)
            break; /* refused: sending it again would not help */
    }
    curl_slist_free_all(h);
    return ok;
}

static CURL *curl_for_api(void)
{
    CURL *c = curl_easy_init();
    curl_easy_setopt(c, CURLOPT_TIMEOUT, 30L);
    curl_easy_setopt(c, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(c, CURLOPT_TCP_NODELAY, 1L);
    if (saga_env("ORDER_API_CACERT", NULL)) /* an https API (make up SECURE=1) */
        curl_easy_setopt(c, CURLOPT_CAINFO, saga_env("ORDER_API_CACERT", NULL));
    return c;
}

static void record_placed(const char *id)
{
    pthread_mutex_lock(&table_mu);
    struct entry *e = lookup(id, 1);
    if (e && e->state == 0)
        e->state = 1;
    pthread_mutex_unlock(&table_mu);
    placed++;
}

static void *sender_main(void *arg)
{
    unsigned seed = (unsigned)(uintptr_t)arg * 2654435761u + (unsigned)time(NULL);
    CURL *c = curl_for_api();
    char id[37];

    while (!stop_sending) {
        if (rate > 0) {
            /* open loop: order i is due at start + i / rate, whoever sends it */
            long i = next_index++;
            int64_t due = t_start_ms + (int64_t)((double)i * 1000.0 / rate);
            if (due >= t_end_ms)
                break;
            sleep_until(due);
        } else if (now_ms() >= t_end_ms) {
            break;
        }
        if (!place(c, &seed, id)) {
            http_errors++;
            continue;
        }
        record_placed(id);
        if (rate <= 0) {
            /* closed loop: wait for this order's outcome before the next */
            pthread_mutex_lock(&table_mu);
            struct entry *e = lookup(id, 1);
            int64_t give_up = now_ms() + 60000;
            while (e && e->state != 2 && now_ms() < give_up && !stop_sending) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_nsec += 200 * 1000000L;
                if (ts.tv_nsec >= 1000000000L) {
                    ts.tv_sec++;
                    ts.tv_nsec -= 1000000000L;
                }
                pthread_cond_timedwait(&table_cv, &table_mu, &ts);
            }
            pthread_mutex_unlock(&table_mu);
        }
    }
    curl_easy_cleanup(c);
    return NULL;
}

/* --- the orders topic ------------------------------------------------------------- */

static void on_event(const struct saga_event *ev)
{
    struct entry *e;
    pthread_mutex_lock(&table_mu);
    e = lookup(ev->meta.order_id, ev->type == SAGA_EV_ORDER_PLACED);
    if (!e) {
        pthread_mutex_unlock(&table_mu);
        return;
    }
    if (ev->type == SAGA_EV_ORDER_PLACED) {
        e->placed_at = ev->meta.occurred_at;
    } else if ((ev->type == SAGA_EV_ORDER_CONFIRMED || ev->type == SAGA_EV_ORDER_CANCELLED) &&
               e->state != 2) {
        e->outcome_at = ev->meta.occurred_at;
        e->confirmed = ev->type == SAGA_EV_ORDER_CONFIRMED;
        e->state = 2;
        completed++;
        if (e->confirmed)
            confirmed_n++;
        else
            cancelled_n++;
        if (e->placed_at && e->placed_at >= t_measure_ms && e->placed_at < t_end_ms) {
            long i = nlat++;
            if (i < lat_cap)
                lat[i] = e->outcome_at - e->placed_at;
        }
        pthread_cond_broadcast(&table_cv);
    }
    pthread_mutex_unlock(&table_mu);
}

struct consumer_arg {
    rd_kafka_t *rk;
    struct saga_serde *serde;
    _Atomic int ready;
};

static void *consumer_main(void *p)
{
    struct consumer_arg *a = p;
    char err[256];
    int polls = 0;
    while (!stop_consuming) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(a->rk, 100);
        if (++polls > 5)
            a->ready = 1;
        if (!m)
            continue;
        if (!m->err) {
            struct saga_event ev = {0};
            if (saga_serde_decode(a->serde, m->payload, m->len, &ev, err, sizeof(err)) ==
                SAGA_DECODE_OK) {
                on_event(&ev);
                saga_event_release(&ev);
            } else if (undecodable++ == 0) {
                fprintf(stderr,
                        "loadgen: cannot decode an event on orders (%s);"
                        " is SCHEMA_REGISTRY_URL set as for the stack?\n",
                        err);
            }
        }
        rd_kafka_message_destroy(m);
    }
    return NULL;
}

static rd_kafka_t *orders_consumer(const struct saga_config *cfg)
{
    rd_kafka_conf_t *kc = rd_kafka_conf_dup(cfg->kafka_conf);
    const struct rd_kafka_metadata *md;
    rd_kafka_topic_partition_list_t *l = rd_kafka_topic_partition_list_new(16);
    char err[256];
    rd_kafka_t *rk;

    rd_kafka_conf_set(kc, "group.id", "loadgen", NULL, 0);
    rd_kafka_conf_set(kc, "enable.auto.commit", "false", NULL, 0);
    if (rate > 0) {
        /* Open loop: latency comes from the events' own time stamps, so the reader may
         * take 100 ms of them at a time. Fetching each event as it comes cost the broker
         * 2.5 requests per order, a tenth of its requests, counted as the stack's cost. */
        rd_kafka_conf_set(kc, "fetch.wait.max.ms", "100", NULL, 0);
        rd_kafka_conf_set(kc, "fetch.min.bytes", "1000000", NULL, 0);
    } else {
        /* Closed loop: each client waits for its order's outcome to place the next. */
        rd_kafka_conf_set(kc, "fetch.wait.max.ms", "10", NULL, 0);
    }
    if (!(rk = rd_kafka_new(RD_KAFKA_CONSUMER, kc, err, sizeof(err)))) {
        fprintf(stderr, "loadgen: kafka: %s\n", err);
        exit(1);
    }
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, "orders", NULL);
    if (rd_kafka_metadata(rk, 0, rkt, &md, 10000) || md->topic_cnt != 1) {
        fprintf(stderr, "loadgen: no metadata for the orders topic (is the stack up?)\n");
        exit(1);
    }
    for (int p = 0; p < md->topics[0].partition_cnt; p++)
        rd_kafka_topic_partition_list_add(l, "orders", p)->offset = RD_KAFKA_OFFSET_END;
    rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    rd_kafka_assign(rk, l);
    rd_kafka_topic_partition_list_destroy(l);
    return rk;
}

/* --- report ----------------------------------------------------------------------- */

static int cmp64(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return x < y ? -1 : x > y;
}

static int64_t pct(const int64_t *v, long n, double q)
{
    long i;
    if (n == 0)
        return -1;
    i = (long)ceil(q * (double)n) - 1;
    return v[i < 0 ? 0 : i >= n ? n - 1 : i];
}

struct rss {
    char name[64];
    long kb, peak_kb;
};

static int read_rss(struct rss *out, int max)
{
    char path[512], line[256];
    int n = 0;
    DIR *d;
    struct dirent *de;
    if (!stack_dir || !(d = opendir(stack_dir)))
        return 0;
    closedir(d);
    snprintf(path, sizeof(path), "%s/run", stack_dir);
    if (!(d = opendir(path)))
        return 0;
    while ((de = readdir(d)) && n < max) {
        FILE *f;
        long pid;
        size_t len = strlen(de->d_name);
        if (len < 5 || strcmp(de->d_name + len - 4, ".pid") != 0 ||
            strncmp(de->d_name, "kafka", 5) == 0 || strncmp(de->d_name, "registry", 8) == 0 ||
            strncmp(de->d_name, "watchdog", 8) == 0)
            continue;
        snprintf(path, sizeof(path), "%s/run/%s", stack_dir, de->d_name);
        if (!(f = fopen(path, "r")))
            continue;
        if (fscanf(f, "%ld", &pid) != 1)
            pid = 0;
        fclose(f);
        snprintf(path, sizeof(path), "/proc/%ld/status", pid);
        if (!pid || !(f = fopen(path, "r")))
            continue;
        snprintf(out[n].name, sizeof(out[n].name), "%.*s", (int)(len - 4), de->d_name);
        out[n].kb = out[n].peak_kb = 0;
        while (fgets(line, sizeof(line), f)) {
            if (strncmp(line, "VmRSS:", 6) == 0)
                out[n].kb = strtol(line + 6, NULL, 10);
            else if (strncmp(line, "VmHWM:", 6) == 0)
                out[n].peak_kb = strtol(line + 6, NULL, 10);
        }
        fclose(f);
        n++;
    }
    closedir(d);
    return n;
}

static void usage(void)
{
    fprintf(stderr, "usage: loadgen (--rate R | --concurrency C) [--duration S] [--warmup S]\n"
                    "               [--fail-share P] [--senders N] [--json FILE] [--label TEXT]\n"
                    "               [--stack-dir DIR]\n");
    exit(64);
}

int main(int argc, char **argv)
{
    struct saga_config cfg;
    struct consumer_arg ca = {0};
    struct saga_registry *reg = NULL;
    pthread_t workers[MAX_WORKERS], consumer;
    struct rss rss[16];
    struct cost_snap cost_a, cost_b;
    long done_at_measure = 0, done_at_end = 0;
    int senders = 0, nrss, ok, have_cost = 0;
    char err[512];
    long measured, expected;
    double secs;

    for (int i = 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(argv[i], "--rate") && v)
            rate = atof(v), i++;
        else if (!strcmp(argv[i], "--concurrency") && v)
            concurrency = atoi(v), i++;
        else if (!strcmp(argv[i], "--senders") && v)
            senders = atoi(v), i++;
        else if (!strcmp(argv[i], "--duration") && v)
            duration = atof(v), i++;
        else if (!strcmp(argv[i], "--warmup") && v)
            warmup = atof(v), i++;
        else if (!strcmp(argv[i], "--fail-share") && v)
            fail_share = atof(v), i++;
        else if (!strcmp(argv[i], "--json") && v)
            json_path = v, i++;
        else if (!strcmp(argv[i], "--label") && v)
            label = v, i++;
        else if (!strcmp(argv[i], "--stack-dir") && v)
            stack_dir = v, i++;
        else
            usage();
    }
    if ((rate <= 0) == (concurrency <= 0) || duration <= 0)
        usage();
    if (rate > 0)
        concurrency = senders > 0 ? senders : (int)fmin(64, fmax(4, rate / 20));
    if (concurrency > MAX_WORKERS)
        concurrency = MAX_WORKERS;
    if (saga_config_load(&cfg, "loadgen", 0, 0, err, sizeof(err))) {
        fprintf(stderr, "loadgen: %s\n", err);
        return 78;
    }
    saga_log_init("loadgen", SAGA_LOG_WARN);
    api_url = saga_env("ORDER_API_URL", "http://127.0.0.1:8080");
    /* The operator places for every customer: SAGA_TOKEN, else the stack's. */
    {
        const char *t = saga_env("SAGA_TOKEN", saga_env("STACK_OPERATOR_TOKEN", NULL));
        if (t)
            snprintf(auth_header, sizeof(auth_header), "Authorization: Bearer %s", t);
    }
    if (saga_serde_open(cfg.schema_registry_url, NULL, &ca.serde, &reg, err, sizeof(err))) {
        fprintf(stderr, "loadgen: %s\n", err);
        return 78;
    }
    table = calloc((size_t)1 << TABLE_BITS, sizeof(*table));
    lat_cap = (long)((rate > 0 ? rate : 2000) * (duration + warmup) * 2) + 1000;
    lat = calloc((size_t)lat_cap, sizeof(*lat));
    if (!table || !lat)
        return 1;
    curl_global_init(CURL_GLOBAL_DEFAULT);

    ca.rk = orders_consumer(&cfg);
    pthread_create(&consumer, NULL, consumer_main, &ca);
    while (!ca.ready)
        sleep_until(now_ms() + 50);

    t_start_ms = now_ms();
    t_measure_ms = t_start_ms + (int64_t)(warmup * 1000);
    t_end_ms = t_measure_ms + (int64_t)(duration * 1000);
    for (int i = 0; i < concurrency; i++)
        pthread_create(&workers[i], NULL, sender_main, (void *)(uintptr_t)(i + 1));
    if (stack_dir) {
        /* The cost of the measured window, divided by the orders finished in it. */
        const char *pg_url = saga_env("PG_SUPERUSER_URL", NULL),
                   *pg_base = saga_env("STACK_PG_BASE", NULL);
        sleep_until(t_measure_ms);
        done_at_measure = completed;
        cost_snap_take(stack_dir, pg_base, pg_url, &cost_a);
        sleep_until(t_end_ms);
        cost_snap_take(stack_dir, pg_base, pg_url, &cost_b);
        done_at_end = completed;
        have_cost = 1;
    }
    for (int i = 0; i < concurrency; i++)
        pthread_join(workers[i], NULL);
    /* the stragglers: wait (up to 60 s) until every placed order has its outcome */
    for (int64_t until = now_ms() + 60000; completed < placed && now_ms() < until;)
        sleep_until(now_ms() + 100);
    nrss = read_rss(rss, 16);
    stop_consuming = 1;
    pthread_join(consumer, NULL);

    measured = nlat < lat_cap ? nlat : lat_cap;
    qsort(lat, (size_t)measured, sizeof(*lat), cmp64);
    secs = duration;
    expected = rate > 0 ? (long)(rate * duration) : -1;
    ok = http_errors == 0 && completed == placed;

    if (rate > 0)
        printf("loadgen %s: open loop at %.0f orders/s", label, rate);
    else
        printf("loadgen %s: closed loop, %d clients", label, concurrency);
    printf(", %.0f s measured after %.0f s warm-up, %.0f%% declined cards\n", duration, warmup,
           fail_share * 100);
    if (rate > 0)
        printf("  offered            %8.1f orders/s (%d senders)\n", rate, concurrency);
    else
        printf("  clients            %8d\n", concurrency);
    printf("  placed             %8ld (HTTP errors %ld)\n", (long)placed, (long)http_errors);
    printf("  finished           %8ld (confirmed %ld, cancelled %ld)\n", (long)completed,
           (long)confirmed_n, (long)cancelled_n);
    printf("  throughput         %8.1f orders/s to outcome (measured window)\n",
           (double)measured / secs);
    printf("  placed -> outcome  p50 %" PRId64 " ms, p95 %" PRId64 " ms, p99 %" PRId64
           " ms, max %" PRId64 " ms (%ld orders)\n",
           pct(lat, measured, 0.5), pct(lat, measured, 0.95), pct(lat, measured, 0.99),
           pct(lat, measured, 1.0), measured);
    for (int i = 0; i < nrss; i++)
        printf("  RSS %-22s %6.1f MiB (peak %.1f MiB)\n", rss[i].name, rss[i].kb / 1024.0,
               rss[i].peak_kb / 1024.0);
    if (have_cost)
        cost_report(&cost_a, &cost_b, done_at_end - done_at_measure, stdout, NULL);
    if (json_path) {
        FILE *f = fopen(json_path, "w");
        if (f) {
            fprintf(f,
                    "{\"label\":\"%s\",\"mode\":\"%s\",\"rate\":%.1f,\"clients\":%d,"
                    "\"duration_s\":%.1f,\"placed\":%ld,\"http_errors\":%ld,\"finished\":%ld,"
                    "\"confirmed\":%ld,\"cancelled\":%ld,\"throughput\":%.2f,\"p50_ms\":%" PRId64
                    ",\"p95_ms\":%" PRId64 ",\"p99_ms\":%" PRId64 ",\"max_ms\":%" PRId64
                    ",\"rss_kib\":{",
                    label, rate > 0 ? "open" : "closed", rate, concurrency, duration, (long)placed,
                    (long)http_errors, (long)completed, (long)confirmed_n, (long)cancelled_n,
                    (double)measured / secs, pct(lat, measured, 0.5), pct(lat, measured, 0.95),
                    pct(lat, measured, 0.99), pct(lat, measured, 1.0));
            for (int i = 0; i < nrss; i++)
                fprintf(f, "%s\"%s\":{\"now\":%ld,\"peak\":%ld}", i ? "," : "", rss[i].name,
                        rss[i].kb, rss[i].peak_kb);
            fprintf(f, "}");
            if (have_cost) {
                fprintf(f, ",");
                cost_report(&cost_a, &cost_b, done_at_end - done_at_measure, NULL, f);
            }
            fprintf(f, "}\n");
            fclose(f);
        }
    }
    (void)expected;
    rd_kafka_consumer_close(ca.rk);
    rd_kafka_destroy(ca.rk);
    saga_serde_destroy(ca.serde);
    saga_registry_destroy(reg);
    saga_config_release(&cfg);
    free(table);
    free(lat);
    return ok ? 0 : 1;
}
