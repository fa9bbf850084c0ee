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

#include <curl/curl.h>

#include "saga/config.h"
#include "saga/log.h"

/* ---- configuration ---- */

static int domain_ok(const char *d)
{
    size_t n = strlen(d);

    if (!n || d[0] == '.' || d[0] == '-' || d[n - 1] == '.' || strstr(d, ".."))
        return 0;
    for (size_t i = 0; i < n; i++)
        if (!((d[i] >= 'a' && d[i] <= 'z') || (d[i] >= 'A' && d[i] <= 'Z') ||
              (d[i] >= '0' && d[i] <= '9') || d[i] == '.' || d[i] == '-'))
            return 0;
    return 1;
}

int notif_address_ok(const char *addr)
{
    const char *at;

    if (!addr || !(at = strchr(addr, '@')) || at == addr || !at[1] || strchr(at + 1, '@'))
        return 0;
    for (const char *p = addr; *p; p++)
        if (*p <= ' ' || *p >= 0x7f || strchr("()<>[]:;,\"\\", *p))
            return 0;
    return 1;
}

saga_err_t notif_config_load(struct notif_config *c, char *errstr, size_t errstr_size)
{
    const char *v;

    memset(c, 0, sizeof(*c));
    v = saga_env("NOTIFY_SINK", "log");
    if (strcasecmp(v, "log") == 0)
        c->sink = NOTIF_SINK_LOG;
    else if (strcasecmp(v, "file") == 0)
        c->sink = NOTIF_SINK_FILE;
    else if (strcasecmp(v, "smtp") == 0)
        c->sink = NOTIF_SINK_SMTP;
    else
        return saga_errf(SAGA_ERR_CONFIG, errstr, errstr_size,
                         "NOTIFY_SINK: expected log, file or smtp, got '%s'", v);

    v = saga_env("NOTIFY_EMAIL_DOMAIN", "example.com");
    if (strlen(v) >= sizeof(c->email_domain) || !domain_ok(v))
        return saga_errf(SAGA_ERR_CONFIG, errstr, errstr_size,
                         "NOTIFY_EMAIL_DOMAIN: '%s' is not a domain name", v);
    snprintf(c->email_domain, sizeof(c->email_domain), "%s", v);

    v = saga_env("NOTIFY_FILE", NULL);
    if (!v && c->sink == NOTIF_SINK_FILE)
        return saga_errf(SAGA_ERR_CONFIG, errstr, errstr_size,
                         "NOTIFY_FILE is not set (required when NOTIFY_SINK=file)");
    if (v && strlen(v) >= sizeof(c->file))
        return saga_errf(SAGA_ERR_CONFIG, errstr, errstr_size, "NOTIFY_FILE: path too long");
    snprintf(c->file, sizeof(c->file), "%s", v ? v : "");

    v = saga_env("SMTP_URL", NULL);
    if (!v && c->sink == NOTIF_SINK_SMTP)
        return saga_errf(SAGA_ERR_CONFIG, errstr, errstr_size,
                         "SMTP_URL is not set (required when NOTIFY_SINK=smtp, e.g. "
                         "smtp://127.0.0.1:1025)");
    if (v) {
        char red[256];
        size_t skip = strncasecmp(v, "smtp://", 7) == 0    ? 7
                      : strncasecmp(v, "smtps://", 8) == 0 ? 8
                                                           : 0;
        if (!skip || !v[skip] || v[skip] == '/' || strlen(v) >= sizeof(c->smtp_url))
            return saga_errf(SAGA_ERR_CONFIG, errstr, errstr_size,
                             "SMTP_URL: expected smtp://host[:port] or smtps://host[:port], "
                             "got '%s'",
                             saga_redact_url(v, red, sizeof(red)));
        for (const char *p = v; *p; p++)
            if (*p <= ' ' || *p >= 0x7f)
                return saga_errf(SAGA_ERR_CONFIG, errstr, errstr_size,
                                 "SMTP_URL: spaces or control characters in '%s'",
                                 saga_redact_url(v, red, sizeof(red)));
    }
    snprintf(c->smtp_url, sizeof(c->smtp_url), "%s", v ? v : "");

    v = saga_env("SMTP_FROM", "orders@example.com");
    if (strlen(v) >= sizeof(c->smtp_from) || !notif_address_ok(v))
        return saga_errf(SAGA_ERR_CONFIG, errstr, errstr_size,
                         "SMTP_FROM: '%s' is not a plain address like orders@example.com", v);
    snprintf(c->smtp_from, sizeof(c->smtp_from), "%s", v);

    saga_err_t err = saga_env_duration_ms("SMTP_TIMEOUT", 10000, 100, 600000, &c->smtp_timeout_ms,
                                          errstr, errstr_size);
    if (!err)
        err = saga_env_duration_ms("NOTIFY_RETRY_MIN", 1000, 10, 3600000, &c->retry_min_ms, errstr,
                                   errstr_size);
    if (!err)
        err = saga_env_duration_ms("NOTIFY_RETRY_MAX", 300000, 10, 86400000, &c->retry_max_ms,
                                   errstr, errstr_size);
    if (!err && c->retry_max_ms < c->retry_min_ms)
        err = saga_errf(SAGA_ERR_CONFIG, errstr, errstr_size,
                        "NOTIFY_RETRY_MAX (%" PRId64
                        "ms) is shorter than NOTIFY_RETRY_MIN (%" PRId64 "ms)",
                        c->retry_max_ms, c->retry_min_ms);
    if (!err)
        err = saga_env_duration_ms("NOTIFY_POLL_INTERVAL", 5000, 10, 3600000, &c->poll_ms, errstr,
                                   errstr_size);
    return err;
}

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

void notif_config_print(const struct notif_config *c, FILE *out)
{
    char red[sizeof(c->smtp_url) + 8];

    fprintf(out, "NOTIFY_SINK=%s\n", notif_sink_name(c->sink));
    fprintf(out, "NOTIFY_EMAIL_DOMAIN=%s\n", c->email_domain);
    fprintf(out, "NOTIFY_FILE=%s\n", c->file);
    fprintf(out, "SMTP_URL=%s\n",
            c->smtp_url[0] ? saga_redact_url(c->smtp_url, red, sizeof(red)) : "");
    fprintf(out, "SMTP_FROM=%s\n", c->smtp_from);
    fprintf(out, "SMTP_TIMEOUT=%" PRId64 "ms\n", c->smtp_timeout_ms);
    fprintf(out, "NOTIFY_RETRY_MIN=%" PRId64 "ms\n", c->retry_min_ms);
    fprintf(out, "NOTIFY_RETRY_MAX=%" PRId64 "ms\n", c->retry_max_ms);
    fprintf(out, "NOTIFY_POLL_INTERVAL=%" PRId64 "ms\n", c->poll_ms);
}

const char *notif_sink_name(notif_sink_t sink)
{
    switch (sink) {
    case NOTIF_SINK_FILE:
        return "file";
    case NOTIF_SINK_SMTP:
        return "smtp";
    case NOTIF_SINK_LOG:
    default:
        return "log";
    }
}

saga_channel_t notif_sink_channel(notif_sink_t sink)
{
    switch (sink) {
    case NOTIF_SINK_LOG:
        return SAGA_CHANNEL_LOG;
    case NOTIF_SINK_FILE:
        return SAGA_CHANNEL_FILE;
    case NOTIF_SINK_SMTP:
        return SAGA_CHANNEL_EMAIL;
    default:
        return SAGA_CHANNEL_UNKNOWN;
    }
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
static void put_clean(FILE *f, const char *s)
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
static char *stream_done(FILE *f, char **buf)
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
        put_clean(m, f->recipient_name);
    }
    fprintf(m, ", your order %s ", shortid);
    if (f->outcome == SAGA_OUTCOME_CONFIRMED) {
        notif_format_money(money, sizeof(money), f->total_amount);
        fprintf(m, "is confirmed: %s", money);
        if (f->currency && f->currency[0]) {
            fputc(' ', m);
            put_clean(m, f->currency);
        }
        /* any writer's: one longer than a carrier's is not shown */
        if (f->tracking_number && f->tracking_number[0] &&
            strlen(f->tracking_number) <= NOTIF_TRACKING_MAX) {
            fputs(". It ships with tracking number ", m);
            put_clean(m, f->tracking_number);
            fputc('.', m);
        } else {
            fputs(". It will ship soon.", m);
        }
    } else {
        fprintf(m, "was cancelled: %s", notif_cancel_reason_text(f->reason));
        if (f->detail && f->detail[0]) {
            fputs(" (", m);
            put_clean(m, f->detail);
            fputc(')', m);
        }
        fputc('.', m);
    }
    return stream_done(m, &buf);
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
    return stream_done(m, &buf);
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

/* ---- e-mail ---- */

void notif_rfc5322_date(char out[40], int64_t epoch_ms)
{
    static const char *const days[] = {"Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"};
    static const char *const months[] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                         "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    time_t sec = (time_t)(epoch_ms / 1000);
    struct tm tm;

    gmtime_r(&sec, &tm);
    snprintf(out, 40, "%s, %02d %s %04d %02d:%02d:%02d +0000", days[tm.tm_wday % 7], tm.tm_mday,
             months[tm.tm_mon % 12], tm.tm_year + 1900, tm.tm_hour, tm.tm_min, tm.tm_sec);
}

/* Body lines: wrapped at spaces near 76 columns, never longer than 998 bytes. */
static void put_wrapped(FILE *f, const char *s)
{
    enum { WIDTH = 76, HARD = 990 };

    for (;;) {
        size_t n = strlen(s), cut;
        if (n <= WIDTH) {
            put_clean(f, s);
            fputs("\r\n", f);
            return;
        }
        for (cut = WIDTH; cut > 0 && s[cut] != ' '; cut--)
            ;
        if (!cut) { /* one long word: break after it, or hard at a UTF-8 boundary */
            const char *sp = strchr(s + WIDTH, ' ');
            cut = sp && (size_t)(sp - s) <= HARD ? (size_t)(sp - s) : (n <= HARD ? n : HARD);
            while (cut < n && cut > 1 && ((unsigned char)s[cut] & 0xc0) == 0x80)
                cut--;
        }
        for (size_t i = 0; i < cut; i++)
            fputc(((unsigned char)s[i] < 0x20 || s[i] == 0x7f) ? ' ' : s[i], f);
        fputs("\r\n", f);
        s += cut;
        while (*s == ' ')
            s++;
        if (!*s)
            return;
    }
}

char *notif_email_build(const char *from, const char *to, const char *subject,
                        const char *notification_id, int64_t date_ms, const char *body)
{
    const char *domain = strchr(from, '@');
    char date[40], *buf = NULL;
    size_t len;
    FILE *m;

    if (!(m = open_memstream(&buf, &len)))
        return NULL;
    notif_rfc5322_date(date, date_ms);
    fputs("From: ", m);
    put_clean(m, from);
    fputs("\r\nTo: ", m);
    put_clean(m, to);
    fputs("\r\nSubject: ", m);
    put_clean(m, subject);
    fprintf(m, "\r\nDate: %s\r\nMessage-ID: <", date);
    put_clean(m, notification_id);
    fputc('@', m);
    put_clean(m, domain ? domain + 1 : "localhost");
    fputs(">\r\nMIME-Version: 1.0\r\n"
          "Content-Type: text/plain; charset=UTF-8\r\n"
          "Content-Transfer-Encoding: 8bit\r\n"
          "\r\n",
          m);
    put_wrapped(m, body ? body : "");
    return stream_done(m, &buf);
}

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;

static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

void notif_sinks_init(void)
{
    pthread_once(&curl_once, curl_init_once);
}

struct upload {
    const char *data;
    size_t len, pos;
};

static size_t upload_read(char *buf, size_t size, size_t nitems, void *arg)
{
    struct upload *u = arg;
    size_t n = u->len - u->pos;

    if (n > size * nitems)
        n = size * nitems;
    memcpy(buf, u->data + u->pos, n);
    u->pos += n;
    return n;
}

/* 1 when url carries credentials (smtp://user:password@host). */
static int smtp_url_has_user(const char *url)
{
    CURLU *u = curl_url();
    char *user = NULL;
    int has = 0;

    if (u && curl_url_set(u, CURLUPART_URL, url, 0) == CURLUE_OK &&
        curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK)
        has = user && *user;
    curl_free(user);
    curl_url_cleanup(u);
    return has;
}

saga_err_t notif_smtp_send(const char *url, const char *from, const char *to, const char *payload,
                           int64_t timeout_ms, char *errstr, size_t errstr_size)
{
    struct upload up = {payload, strlen(payload), 0};
    char ebuf[CURL_ERROR_SIZE] = "", mail_from[400], rcpt[400];
    struct curl_slist *rcpts = NULL;
    saga_err_t err = SAGA_OK;
    long reply = 0;
    CURLcode rc;
    CURL *c;

    if (!notif_address_ok(from) || !notif_address_ok(to))
        return saga_errf(SAGA_ERR_PERMANENT, errstr, errstr_size,
                         "'%s' or '%s' is not a plain e-mail address", from, to);
    notif_sinks_init();
    snprintf(mail_from, sizeof(mail_from), "<%s>", from);
    snprintf(rcpt, sizeof(rcpt), "<%s>", to);
    if (!(c = curl_easy_init()) || !(rcpts = curl_slist_append(NULL, rcpt))) {
        curl_easy_cleanup(c);
        return saga_errf(SAGA_ERR_TRANSIENT, errstr, errstr_size, "SMTP: curl setup failed");
    }
    curl_easy_setopt(c, CURLOPT_URL, url);
#if LIBCURL_VERSION_NUM >= 0x075500
    curl_easy_setopt(c, CURLOPT_PROTOCOLS_STR, "smtp,smtps");
#else
    curl_easy_setopt(c, CURLOPT_PROTOCOLS, (long)(CURLPROTO_SMTP | CURLPROTO_SMTPS));
#endif
    /* With a user name in the URL, STARTTLS is required: a man in the middle who
     * strips it from the server's EHLO must not get the password in clear text. */
    curl_easy_setopt(c, CURLOPT_USE_SSL,
                     (long)(smtp_url_has_user(url) ? CURLUSESSL_ALL : CURLUSESSL_TRY));
    curl_easy_setopt(c, CURLOPT_MAIL_FROM, mail_from);
    curl_easy_setopt(c, CURLOPT_MAIL_RCPT, rcpts);
    curl_easy_setopt(c, CURLOPT_READFUNCTION, upload_read);
    curl_easy_setopt(c, CURLOPT_READDATA, &up);
    curl_easy_setopt(c, CURLOPT_UPLOAD, 1L);
    curl_easy_setopt(c, CURLOPT_INFILESIZE_LARGE, (curl_off_t)up.len);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, (long)timeout_ms);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, ebuf);
    rc = curl_easy_perform(c);
    if (rc != CURLE_OK) {
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &reply);
        /* RFC 5321: 5xx replies are permanent, 4xx and no reply at all may pass. */
        err = reply >= 500 && reply < 600 ? SAGA_ERR_PERMANENT : SAGA_ERR_TRANSIENT;
        saga_errf(err, errstr, errstr_size, "SMTP delivery to %s failed: %s (last reply %ld)", to,
                  ebuf[0] ? ebuf : curl_easy_strerror(rc), reply);
    }
    curl_slist_free_all(rcpts);
    curl_easy_cleanup(c);
    return err;
}
