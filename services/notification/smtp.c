/* notification-service's e-mail: the RFC 5322 message and its delivery over SMTP (libcurl). */
#include "rules.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <curl/curl.h>

#include "saga/config.h"
#include "saga/log.h"

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
            notif_put_clean(f, s);
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
    notif_put_clean(m, from);
    fputs("\r\nTo: ", m);
    notif_put_clean(m, to);
    fputs("\r\nSubject: ", m);
    notif_put_clean(m, subject);
    fprintf(m, "\r\nDate: %s\r\nMessage-ID: <", date);
    notif_put_clean(m, notification_id);
    fputc('@', m);
    notif_put_clean(m, domain ? domain + 1 : "localhost");
    fputs(">\r\nMIME-Version: 1.0\r\n"
          "Content-Type: text/plain; charset=UTF-8\r\n"
          "Content-Transfer-Encoding: 8bit\r\n"
          "\r\n",
          m);
    put_wrapped(m, body ? body : "");
    return notif_stream_done(m, &buf);
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
