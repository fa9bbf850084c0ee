/* notification-service's configuration: its environment variables and the sinks they name. */
#include "rules.h"

#include <inttypes.h>
#include <string.h>
#include <strings.h>

#include "saga/config.h"

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
