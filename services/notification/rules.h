/*
 * notification-service's rules and sinks, free of Kafka and PostgreSQL (unit-tested
 * in tests/unit/test_notification_rules.c): its configuration, the texts it renders
 * (pure functions) and the three places a notification can go (a log line, a file
 * of JSON lines, an e-mail over SMTP with libcurl).
 *
 * One header, three files: config.c (the environment, the sinks' names), rules.c (retry
 * delays, texts, the file sink) and smtp.c (the e-mail message and its sending).
 */
#ifndef NOTIFICATION_RULES_H
#define NOTIFICATION_RULES_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "saga/err.h"
#include "saga/events.h"

typedef enum {
    NOTIF_SINK_LOG = 0,
    NOTIF_SINK_FILE,
    NOTIF_SINK_SMTP,
} notif_sink_t;

/* The service's own environment variables (see NOTIF_ENV_HELP). */
struct notif_config {
    notif_sink_t sink;       /* NOTIFY_SINK: log (default), file or smtp */
    char email_domain[254];  /* NOTIFY_EMAIL_DOMAIN, default example.com */
    char file[4096];         /* NOTIFY_FILE, required when sink is file */
    char smtp_url[1024];     /* SMTP_URL, required when sink is smtp */
    char smtp_from[320];     /* SMTP_FROM, default orders@example.com */
    int64_t smtp_timeout_ms; /* SMTP_TIMEOUT, default 10s */
    int64_t retry_min_ms;    /* NOTIFY_RETRY_MIN, default 1s: first wait after a failure */
    int64_t retry_max_ms;    /* NOTIFY_RETRY_MAX, default 5m: longest wait between attempts */
    int64_t poll_ms;         /* NOTIFY_POLL_INTERVAL, default 5s: look for due ones unwoken */
};

#define NOTIF_ENV_HELP                                                                             \
    "  NOTIFY_SINK               where notifications go: log, file or smtp (default log)\n"        \
    "  NOTIFY_EMAIL_DOMAIN       recipient is <customer_id>@<this> (default example.com)\n"        \
    "  NOTIFY_FILE               file to append JSON lines to (required when NOTIFY_SINK=file)\n"  \
    "  SMTP_URL                  smtp://host:port or smtps://user:pw@host:port (required when "    \
    "NOTIFY_SINK=smtp)\n"                                                                          \
    "  SMTP_FROM                 envelope and From: address (default orders@example.com)\n"        \
    "  SMTP_TIMEOUT              give up on one SMTP delivery after this long (default 10s)\n"     \
    "  NOTIFY_RETRY_MIN          first wait before retrying a failed delivery (default 1s)\n"      \
    "  NOTIFY_RETRY_MAX          longest wait between attempts, doubling from the first "          \
    "(default 5m)\n"                                                                               \
    "  NOTIFY_POLL_INTERVAL      the sender looks for due notifications this often even "          \
    "unwoken (default 5s)\n"

/* Reads the variables above; SAGA_ERR_CONFIG naming the variable at fault. */
saga_err_t notif_config_load(struct notif_config *c, char *errstr, size_t errstr_size);
/* One VAR=value line each, the SMTP password masked. */
void notif_config_print(const struct notif_config *c, FILE *out);

const char *notif_sink_name(notif_sink_t sink);       /* "log", "file", "smtp" */
saga_channel_t notif_sink_channel(notif_sink_t sink); /* LOG, FILE, EMAIL */

/* Minor units as major units with two decimals: 2598 -> "25.98", -5 -> "-0.05". */
void notif_format_money(char *buf, size_t size, int64_t minor);

/* What a cancellation reason tells the customer ("an item is out of stock"). */
const char *notif_cancel_reason_text(saga_cancel_reason_t reason);

/* The first 8 characters of order_id; characters other than [A-Za-z0-9_-] become '_'. */
void notif_short_id(char out[9], const char *order_id);

/* What a notification says, from the order's outcome event and OrderPlaced. */
struct notif_facts {
    saga_outcome_t outcome; /* CONFIRMED or CANCELLED */
    const char *order_id;
    const char *recipient_name;  /* shipping_address.recipient; NULL or "": "Hello," */
    int64_t total_amount;        /* minor units (confirmed) */
    const char *currency;        /* (confirmed) */
    const char *tracking_number; /* (confirmed) NULL, "" or too long: "It will ship soon." */
    saga_cancel_reason_t reason; /* (cancelled) */
    const char *detail;          /* (cancelled) or NULL */
};

/*
 * The one-line text (malloc'd; NULL only if out of memory). Control characters (ASCII
 * and Unicode's: C1, U+2028, U+2029) in
 * the inputs become spaces, so the text is always a single line:
 *   "Hello Ada, your order 1b4e28ba is confirmed: 25.98 EUR. It will ship soon."
 *   "... confirmed: 25.98 EUR. It ships with tracking number SP4471235690." (tracking_number)
 *   "Hello Ada, your order 1b4e28ba was cancelled: the payment failed (declined)."
 */
char *notif_render(const struct notif_facts *f);

/* The longest tracking number notif_render shows (bytes). */
#define NOTIF_TRACKING_MAX 64

/* "Your order <short> is confirmed" / "... was cancelled" (malloc'd). */
char *notif_subject(saga_outcome_t outcome, const char *order_id);

/* "<customer_id>@<domain>" (malloc'd). */
char *notif_recipient(const char *customer_id, const char *domain);

/*
 * 1 if addr is a plain "local@domain" address safe to put in SMTP commands and
 * headers: one '@', non-empty parts, printable ASCII without spaces or any of
 * ()<>[]:;,"\ .
 */
int notif_address_ok(const char *addr);

/* What the file and SMTP sinks record of one notification. */
struct notif_record {
    const char *notification_id;
    const char *order_id;
    saga_outcome_t outcome;
    const char *recipient;
    const char *message;
    int64_t sent_at_ms; /* milliseconds since the epoch */
};

/*
 * One JSON object and a newline (malloc'd):
 * {"notification_id","order_id","outcome","recipient","message","sent_at"}
 * with sent_at as "2026-11-21T20:40:00.123Z".
 */
char *notif_file_line(const struct notif_record *r);

/*
 * Appends notif_file_line(r) to path (created 0640 if missing) with O_APPEND and
 * one write(2), then fsync(2). A short write is cut off again, so the file only
 * ever holds whole lines. SAGA_ERR_IO with the cause in errstr.
 */
saga_err_t notif_file_append(const char *path, const struct notif_record *r, char *errstr,
                             size_t errstr_size);

/* RFC 5322 date: "Sat, 21 Nov 2026 20:40:00 +0000". */
void notif_rfc5322_date(char out[40], int64_t epoch_ms);

/*
 * The whole RFC 5322 message (malloc'd), CRLF line ends: From, To, Subject, Date,
 * Message-ID <notification_id@from's domain>, MIME-Version, a UTF-8 text/plain
 * Content-Type, then the message as body wrapped at 76 columns.
 */
char *notif_email_build(const char *from, const char *to, const char *subject,
                        const char *notification_id, int64_t date_ms, const char *body);

/*
 * How long to wait before the next attempt after `attempts` failed ones (1 or more):
 * min_ms doubled per earlier failure, at most max_ms, then jittered down by up to a
 * half with rnd (any 32-bit random number), so failed mails do not retry in step.
 */
int64_t notif_retry_delay_ms(int attempts, int64_t min_ms, int64_t max_ms, uint32_t rnd);

/* Calls curl_global_init once; call before threads (the unit test and service start). */
void notif_sinks_init(void);

/*
 * Sends payload (a whole message, CRLF line ends) to one recipient through the
 * SMTP server at url (smtp:// or smtps://, credentials in the URL; STARTTLS is
 * used when offered). SAGA_ERR_TRANSIENT for what may pass (server unreachable,
 * 4xx replies, timeouts), SAGA_ERR_PERMANENT for a 5xx reply; errstr says why.
 */
saga_err_t notif_smtp_send(const char *url, const char *from, const char *to, const char *payload,
                           int64_t timeout_ms, char *errstr, size_t errstr_size);

/* Internal, shared by rules.c and smtp.c: writes s with every control character replaced
 * by a space; closes an open_memstream() stream, giving its buffer or NULL (freed) if
 * writing failed. */
void notif_put_clean(FILE *f, const char *s);
char *notif_stream_done(FILE *f, char **buf);

#endif
