/*
 * Small helpers of the sagactl commands: terminal colours and progress (only on a
 * terminal, never with NO_COLOR), money and time formatting, option values, signals.
 */
#include <inttypes.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "saga/hash.h"
#include "saga/kafka.h"
#include "sagactl.h"

int sagactl_fancy(void)
{
    static int fancy = -1;
    if (fancy < 0) {
        const char *no_color = getenv("NO_COLOR");
        fancy = isatty(STDOUT_FILENO) && !(no_color && *no_color);
    }
    return fancy;
}

const char *sagactl_sgr(const char *code)
{
    static char buf[8][16];
    static int next;
    char *b;
    if (!sagactl_fancy())
        return "";
    b = buf[next++ % 8];
    snprintf(b, sizeof(buf[0]), "\033[%sm", code);
    return b;
}

const char *sagactl_order_sgr(const char *order_id)
{
    /* cyan, magenta, blue, bright cyan, bright magenta, bright blue, bright white, white-ish */
    static const char *const palette[] = {"36", "35", "34", "96", "95", "94", "1;36", "1;35"};
    uint32_t h;
    if (!order_id)
        return sagactl_sgr(SGR_DIM);
    h = saga_fnv1a32_str(order_id);
    return sagactl_sgr(palette[h % (sizeof(palette) / sizeof(palette[0]))]);
}

static int progress_shown;

void sagactl_progress(const char *fmt, ...)
{
    static const char *const frames[] = {"|", "/", "-", "\\"};
    static unsigned step;
    va_list ap;
    if (!sagactl_fancy())
        return;
    printf("\r\033[K%s%s ", sagactl_sgr(SGR_DIM), frames[step++ % 4]);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    printf("%s", sagactl_sgr(SGR_RESET));
    fflush(stdout);
    progress_shown = 1;
}

void sagactl_progress_clear(void)
{
    if (progress_shown) {
        printf("\r\033[K");
        fflush(stdout);
        progress_shown = 0;
    }
}

const char *sagactl_money(int64_t minor, const char *currency, char *out, size_t size)
{
    uint64_t a = minor < 0 ? (uint64_t)0 - (uint64_t)minor : (uint64_t)minor;
    snprintf(out, size, "%s%" PRIu64 ".%02" PRIu64 " %s", minor < 0 ? "-" : "", a / 100, a % 100,
             currency ? currency : "");
    return out;
}

const char *sagactl_clock(int64_t epoch_ms, char *out, size_t size)
{
    time_t t = (time_t)(epoch_ms / 1000);
    struct tm tm;
    if (epoch_ms < 0 || !gmtime_r(&t, &tm)) {
        snprintf(out, size, "%-12s", "?");
        return out;
    }
    snprintf(out, size, "%02d:%02d:%02d.%03d", tm.tm_hour, tm.tm_min, tm.tm_sec,
             (int)(epoch_ms % 1000));
    return out;
}

int64_t sagactl_parse_iso_ms(const char *s)
{
    struct tm tm = {0};
    int ms = 0, n = 0;
    if (!s || sscanf(s, "%4d-%2d-%2dT%2d:%2d:%2d%n", &tm.tm_year, &tm.tm_mon, &tm.tm_mday,
                     &tm.tm_hour, &tm.tm_min, &tm.tm_sec, &n) != 6)
        return -1;
    if (s[n] == '.') {
        int digits = 0;
        for (n++; s[n] >= '0' && s[n] <= '9'; n++, digits++)
            if (digits < 3)
                ms = ms * 10 + (s[n] - '0');
        for (; digits < 3; digits++)
            ms *= 10;
    }
    tm.tm_year -= 1900;
    tm.tm_mon -= 1;
    return (int64_t)timegm(&tm) * 1000 + ms;
}

long sagactl_arg_seconds(const char *cmd, const char *opt, const char *v, long max)
{
    char *end;
    long n = v ? strtol(v, &end, 10) : -1;
    if (!v || end == v || *end || n < 0 || n > max) {
        fprintf(stderr, "sagactl %s: %s expects a number of seconds from 0 to %ld\n", cmd, opt,
                max);
        return -1;
    }
    return n;
}

const char *sagactl_event_sgr(saga_event_type_t type)
{
    switch (type) {
    case SAGA_EV_ORDER_CONFIRMED:
        return sagactl_sgr("1;32");
    case SAGA_EV_ORDER_CANCELLED:
        return sagactl_sgr("1;31");
    case SAGA_EV_INVENTORY_REJECTED:
    case SAGA_EV_PAYMENT_FAILED:
    case SAGA_EV_SHIPMENT_FAILED:
        return sagactl_sgr(SGR_RED);
    case SAGA_EV_INVENTORY_RELEASED:
    case SAGA_EV_PAYMENT_REFUNDED:
    case SAGA_EV_SHIPMENT_CANCELLED:
        return sagactl_sgr(SGR_YELLOW);
    default:
        return "";
    }
}

const char *sagactl_enum_name(const char *const *names, int count, int value)
{
    return value >= 0 && value < count ? names[value] : "UNKNOWN";
}

volatile sig_atomic_t sagactl_interrupted;

static void on_signal(int sig)
{
    (void)sig;
    sagactl_interrupted = 1;
}

void sagactl_catch_signals(void)
{
    struct sigaction sa;
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigemptyset(&sa.sa_mask);
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);
}

rd_kafka_t *sagactl_admin_client(const struct saga_config *cfg, int wait_s, int *rc)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_dup(cfg->kafka_conf);
    time_t deadline = time(NULL) + wait_s;
    rd_kafka_resp_err_t err;
    char errstr[256];
    rd_kafka_t *rk;

    saga_kafka_conf_set_logger(conf, 1);
    if (!(rk = rd_kafka_new(RD_KAFKA_PRODUCER, conf, errstr, sizeof(errstr)))) {
        fprintf(stderr, "sagactl: kafka client: %s\n", errstr);
        rd_kafka_conf_destroy(conf);
        *rc = SAGACTL_EXIT_CONFIG;
        return NULL;
    }
    do {
        const struct rd_kafka_metadata *md;
        if (!(err = rd_kafka_metadata(rk, 0, NULL, &md, 2000))) {
            rd_kafka_metadata_destroy(md);
            return rk;
        }
    } while (time(NULL) < deadline);
    fprintf(stderr, "sagactl: kafka at %s did not answer within %ds: %s\n", cfg->kafka_bootstrap,
            wait_s, rd_kafka_err2str(err));
    rd_kafka_destroy(rk);
    *rc = SAGACTL_EXIT_UNREACH;
    return NULL;
}

/* --- what sagactl prints from events, headers and the API --------------------- */

/* The length of the UTF-8 sequence at s (at most n bytes), or 0 if it is not valid. */
static size_t utf8_len(const unsigned char *s, size_t n, uint32_t *cp)
{
    size_t len;
    uint32_t c;
    if (s[0] < 0x80) {
        *cp = s[0];
        return 1;
    }
    if (s[0] >= 0xc2 && s[0] <= 0xdf) {
        len = 2;
        c = s[0] & 0x1f;
    } else if (s[0] >= 0xe0 && s[0] <= 0xef) {
        len = 3;
        c = s[0] & 0x0f;
    } else if (s[0] >= 0xf0 && s[0] <= 0xf4) {
        len = 4;
        c = s[0] & 0x07;
    } else {
        return 0;
    }
    if (len > n)
        return 0;
    for (size_t i = 1; i < len; i++) {
        if ((s[i] & 0xc0) != 0x80)
            return 0;
        c = (c << 6) | (s[i] & 0x3f);
    }
    if ((len == 3 && c < 0x800) || (len == 4 && (c < 0x10000 || c > 0x10ffff)) ||
        (c >= 0xd800 && c <= 0xdfff))
        return 0;
    *cp = c;
    return len;
}

/* Code points a terminal acts on rather than shows: C0, DEL, C1, and the bidirectional
 * overrides and isolates that reorder what is shown around them. */
static int is_control(uint32_t c)
{
    return c < 0x20 || (c >= 0x7f && c <= 0x9f) || (c >= 0x202a && c <= 0x202e) ||
           (c >= 0x2066 && c <= 0x2069);
}

/* One of 16 buffers in turn (freed when its turn comes again). */
static char *scratch(size_t size)
{
    static char *bufs[16];
    static unsigned next;
    char **b = &bufs[next++ % 16];
    free(*b);
    *b = malloc(size);
    return *b;
}

const char *sagactl_safen(const void *data, size_t n)
{
    const unsigned char *s = data;
    char *out, *o;
    if (!s)
        return "";
    if (!(out = scratch(n * 6 + 1))) /* "\u202e" for 3 bytes, "\x1b" for 1: at most 6x */
        return "";
    o = out;
    for (size_t i = 0; i < n;) {
        uint32_t c;
        size_t len = utf8_len(s + i, n - i, &c);
        if (len == 0) {
            o += sprintf(o, "\\x%02x", s[i]); /* not UTF-8: the byte */
            i++;
            continue;
        }
        if (!is_control(c))
            memcpy(o, s + i, len), o += len;
        else if (c < 0x80)
            o += sprintf(o, "\\x%02x", (unsigned)c);
        else
            o += sprintf(o, "\\u%04x", (unsigned)c);
        i += len;
    }
    *o = '\0';
    return out;
}

const char *sagactl_safe(const char *s)
{
    return s ? sagactl_safen(s, strlen(s)) : NULL;
}

char *sagactl_json_safe(const char *json)
{
    const unsigned char *s = (const unsigned char *)json;
    size_t n = strlen(json);
    char *out = malloc(n * 6 + 1), *o = out;
    if (!out)
        return NULL;
    for (size_t i = 0; i < n;) {
        uint32_t c;
        size_t len = utf8_len(s + i, n - i, &c);
        if (len == 0) {
            o += sprintf(o, "\\uFFFD"); /* not UTF-8 (not JSON either): the replacement */
            i++;
            continue;
        }
        if (is_control(c) && c != '\n' && c != '\t')
            o += sprintf(o, "\\u%04X", (unsigned)c);
        else
            memcpy(o, s + i, len), o += len;
        i += len;
    }
    *o = '\0';
    return out;
}

void sagactl_print_json(const char *json)
{
    char *safe = sagactl_json_safe(json);
    size_t n;
    if (!safe)
        return;
    n = strlen(safe);
    printf("%s%s", safe, n && safe[n - 1] == '\n' ? "" : "\n");
    free(safe);
}
