/* notification-service's rules: when to retry, the texts it renders, the file sink's lines.
 * Its configuration is in config.c, its e-mail (message and SMTP) in smtp.c. */
#include "rules.h"

#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "saga/config.h"
#include "saga/log.h"

int64_t notif_retry_delay_ms(int attempts, int64_t min_ms, int64_t max_ms, uint32_t rnd)
{
    int64_t d = min_ms;

    for (int i = 1; i < attempts && d < max_ms; i++)
        d *= 2;
    if (d > max_ms)
        d = max_ms;
    /* Between half of it and all of it. */
    return d - (int64_t)((uint64_t)(d / 2) * rnd / UINT32_MAX);
}

/* ---- texts ---- */

void notif_format_money(char *buf, size_t size, int64_t minor)
{
    uint64_t u = minor < 0 ? (uint64_t)0 - (uint64_t)minor : (uint64_t)minor;
    snprintf(buf, size, "%s%" PRIu64 ".%02" PRIu64, minor < 0 ? "-" : "", u / 100, u % 100);
}

const char *notif_cancel_reason_text(saga_cancel_reason_t reason)
{
    switch (reason) {
    case SAGA_CANCEL_OUT_OF_STOCK:
        return "an item is out of stock";
    case SAGA_CANCEL_PAYMENT_FAILED:
        return "the payment failed";
    case SAGA_CANCEL_SHIPMENT_FAILED:
        return "we cannot ship to that address";
    case SAGA_CANCEL_TIMEOUT:
        return "it took too long to complete";
    case SAGA_CANCEL_CUSTOMER_REQUEST:
        return "you asked us to cancel it";
    case SAGA_CANCEL_UNKNOWN:
    default:
        return "it could not be completed";
    }
}

void notif_short_id(char out[9], const char *order_id)
{
    size_t i = 0;

    for (; order_id && i < 8 && order_id[i]; i++) {
        char ch = order_id[i];
        int ok = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9') ||
                 ch == '-' || ch == '_';
        out[i] = ok ? ch : '_';
    }
    out[i] = '\0';
}

/* Writes s with every control character replaced by a space. */
void notif_put_clean(FILE *f, const char *s)
{
    const unsigned char *u = (const unsigned char *)s;
    for (; u && *u; u++) {
        /* Unicode's line breaks and controls too: C1 (U+0080-U+009F, NEL among them) and
         * U+2028/U+2029 (line and paragraph separator), each one space */
        if (u[0] == 0xc2 && u[1] >= 0x80 && u[1] <= 0x9f)
            u++;
        else if (u[0] == 0xe2 && u[1] == 0x80 && (u[2] == 0xa8 || u[2] == 0xa9))
            u += 2;
        else if (*u >= 0x20 && *u != 0x7f) {
            fputc(*u, f);
            continue;
        }
        fputc(' ', f);
    }
}

/* Closes an open_memstream() stream; its buffer, or NULL (freed) if writing failed. */
char *notif_stream_done(FILE *f, char **buf)
{
    if (fclose(f) != 0) {
        free(*buf);
        return NULL;
    }
    return *buf;
}

char *notif_render(const struct notif_facts *f)
{
    char shortid[9], money[32], *buf = NULL;
    size_t len;
    FILE *m;

    if (f->outcome != SAGA_OUTCOME_CONFIRMED && f->outcome != SAGA_OUTCOME_CANCELLED)
        return NULL;
    if (!(m = open_memstream(&buf, &len)))
        return NULL;
    notif_short_id(shortid, f->order_id);
    fputs("Hello", m);
    if (f->recipient_name && f->recipient_name[0]) {
        fputc(' ', m);
        notif_put_clean(m, f->recipient_name);
    }
    fprintf(m, ", your order %s ", shortid);
    if (f->outcome == SAGA_OUTCOME_CONFIRMED) {
        notif_format_money(money, sizeof(money), f->total_amount);
        fprintf(m, "is confirmed: %s", money);
        if (f->currency && f->currency[0]) {
            fputc(' ', m);
            notif_put_clean(m, f->currency);
        }
        /* any writer's: one longer than a carrier's is not shown */
        if (f->tracking_number && f->tracking_number[0] &&
            strlen(f->tracking_number) <= NOTIF_TRACKING_MAX) {
            fputs(". It ships with tracking number ", m);
            notif_put_clean(m, f->tracking_number);
            fputc('.', m);
        } else {
            fputs(". It will ship soon.", m);
        }
    } else {
        fprintf(m, "was cancelled: %s", notif_cancel_reason_text(f->reason));
        if (f->detail && f->detail[0]) {
            fputs(" (", m);
            notif_put_clean(m, f->detail);
            fputc(')', m);
        }
        fputc('.', m);
    }
    return notif_stream_done(m, &buf);
}

char *notif_subject(saga_outcome_t outcome, const char *order_id)
{
    char shortid[9], *s = NULL;

    notif_short_id(shortid, order_id);
    if (asprintf(&s, "Your order %s %s", shortid,
                 outcome == SAGA_OUTCOME_CONFIRMED ? "is confirmed" : "was cancelled") < 0)
        return NULL;
    return s;
}

char *notif_recipient(const char *customer_id, const char *domain)
{
    char *s = NULL;

    if (asprintf(&s, "%s@%s", customer_id ? customer_id : "", domain) < 0)
        return NULL;
    return s;
}

static void iso_time(char out[32], int64_t ms)
{
    time_t sec = (time_t)(ms / 1000);
    struct tm tm;
    char base[24];

    gmtime_r(&sec, &tm);
    strftime(base, sizeof(base), "%Y-%m-%dT%H:%M:%S", &tm);
    snprintf(out, 32, "%s.%03dZ", base, (int)(ms % 1000));
}

/* fputs of s as a JSON string, quotes included. */
static void put_json(FILE *f, const char *s)
{
    size_t n = s ? strlen(s) : 0;
    char *buf = malloc(n * 6 + 1);

    if (!buf) {
        fputs("\"\"", f);
        return;
    }
    buf[0] = '\0';
    saga_json_escape(buf, n * 6 + 1, s ? s : "");
    fprintf(f, "\"%s\"", buf);
    free(buf);
}

char *notif_file_line(const struct notif_record *r)
{
    char *buf = NULL, when[32];
    size_t len;
    FILE *m;

    if (!(m = open_memstream(&buf, &len)))
        return NULL;
    iso_time(when, r->sent_at_ms);
    fputs("{\"notification_id\":", m);
    put_json(m, r->notification_id);
    fputs(",\"order_id\":", m);
    put_json(m, r->order_id);
    fputs(",\"outcome\":", m);
    put_json(m, (unsigned)r->outcome <= SAGA_OUTCOME_CANCELLED ? saga_outcome_names[r->outcome]
                                                               : "UNKNOWN");
    fputs(",\"recipient\":", m);
    put_json(m, r->recipient);
    fputs(",\"message\":", m);
    put_json(m, r->message);
    fprintf(m, ",\"sent_at\":\"%s\"}\n", when);
    return notif_stream_done(m, &buf);
}

/* Appends of this process one at a time, so a short write can be cut off again. */
static pthread_mutex_t file_lock = PTHREAD_MUTEX_INITIALIZER;

saga_err_t notif_file_append(const char *path, const struct notif_record *r, char *errstr,
                             size_t errstr_size)
{
    char *line = notif_file_line(r);
    saga_err_t err = SAGA_OK;
    struct stat st;
    size_t len;
    ssize_t n;
    int fd;

    if (!line)
        return saga_errf(SAGA_ERR_NOMEM, errstr, errstr_size, "out of memory");
    len = strlen(line);
    pthread_mutex_lock(&file_lock);
    fd = open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0640);
    if (fd < 0) {
        err = saga_errf(SAGA_ERR_IO, errstr, errstr_size, "NOTIFY_FILE %s: open: %s", path,
                        strerror(errno));
        goto out;
    }
    if (fstat(fd, &st) != 0) {
        err = saga_errf(SAGA_ERR_IO, errstr, errstr_size, "NOTIFY_FILE %s: fstat: %s", path,
                        strerror(errno));
        goto out;
    }
    do
        n = write(fd, line, len);
    while (n < 0 && errno == EINTR);
    if (n < 0) {
        err = saga_errf(SAGA_ERR_IO, errstr, errstr_size, "NOTIFY_FILE %s: write: %s", path,
                        strerror(errno));
    } else if ((size_t)n < len) {
        /* Only whole lines: take the fragment back (ENOSPC, EFBIG, a quota). */
        if (ftruncate(fd, st.st_size) != 0)
            saga_warn("NOTIFY_FILE %s: cannot cut off a partial line: %s", path, strerror(errno));
        err = saga_errf(SAGA_ERR_IO, errstr, errstr_size,
                        "NOTIFY_FILE %s: short write (%zd of %zu bytes)", path, n, len);
    } else if (fsync(fd) != 0) {
        err = saga_errf(SAGA_ERR_IO, errstr, errstr_size, "NOTIFY_FILE %s: fsync: %s", path,
                        strerror(errno));
    }
out:
    if (fd >= 0)
        close(fd);
    pthread_mutex_unlock(&file_lock);
    free(line);
    return err;
}
