#include "saga/config.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include <libpq-fe.h>

#include "saga/kafka.h"
#include "saga/pg.h"

const char *saga_env(const char *name, const char *def)
{
    const char *v = getenv(name);
    return (v && *v) ? v : def;
}

saga_err_t saga_env_long(const char *name, long def, long min, long max, long *out, char *errstr,
                         size_t errstr_size)
{
    const char *v = saga_env(name, NULL);
    char *end;
    long n;

    if (!v) {
        *out = def;
        return SAGA_OK;
    }
    errno = 0;
    n = strtol(v, &end, 10);
    if (errno || end == v || *end != '\0')
        return saga_errf(SAGA_ERR_CONFIG, errstr, errstr_size,
                         "%s: expected a whole number, got '%s'", name, v);
    if (n < min || n > max)
        return saga_errf(SAGA_ERR_CONFIG, errstr, errstr_size,
                         "%s: %ld is out of range (%ld to %ld)", name, n, min, max);
    *out = n;
    return SAGA_OK;
}

saga_err_t saga_parse_duration_ms(const char *s, int64_t *out)
{
    char *end;
    double n, mult;

    if (!s || !*s || isspace((unsigned char)*s))
        return SAGA_ERR_INVALID;
    errno = 0;
    n = strtod(s, &end);
    /* Plain decimals only: strtod also reads "nan", "inf", exponents and hex floats. */
    if (errno || end == s || end != s + strspn(s, "0123456789.") || !(n >= 0))
        return SAGA_ERR_INVALID;
    if (*end == '\0' || strcmp(end, "s") == 0)
        mult = 1000;
    else if (strcmp(end, "ms") == 0)
        mult = 1;
    else if (strcmp(end, "m") == 0)
        mult = 60000;
    else if (strcmp(end, "h") == 0)
        mult = 3600000;
    else
        return SAGA_ERR_INVALID;
    if (n * mult > 9.0e15)
        return SAGA_ERR_INVALID;
    *out = (int64_t)(n * mult + 0.5);
    return SAGA_OK;
}

saga_err_t saga_env_duration_ms(const char *name, int64_t def_ms, int64_t min_ms, int64_t max_ms,
                                int64_t *out, char *errstr, size_t errstr_size)
{
    const char *v = saga_env(name, NULL);
    int64_t ms;

    if (!v) {
        *out = def_ms;
        return SAGA_OK;
    }
    if (saga_parse_duration_ms(v, &ms) != SAGA_OK)
        return saga_errf(SAGA_ERR_CONFIG, errstr, errstr_size,
                         "%s: expected a duration like 500ms, 30s, 5m or 1h, got '%s'", name, v);
    if (ms < min_ms || ms > max_ms)
        return saga_errf(SAGA_ERR_CONFIG, errstr, errstr_size,
                         "%s: %s is out of range (%lldms to %lldms)", name, v, (long long)min_ms,
                         (long long)max_ms);
    *out = ms;
    return SAGA_OK;
}

saga_err_t saga_parse_hostport(const char *s, char *host, size_t host_size, int *port)
{
    const char *colon, *hs, *he;
    char *end;
    long p;

    if (!s || !*s)
        return SAGA_ERR_INVALID;
    if (s[0] == '[') {
        he = strchr(s, ']');
        if (!he || he[1] != ':')
            return SAGA_ERR_INVALID;
        hs = s + 1;
        colon = he + 1;
    } else {
        colon = strrchr(s, ':');
        if (!colon || memchr(s, ':', (size_t)(colon - s)))
            return SAGA_ERR_INVALID;
        hs = s;
        he = colon;
    }
    if ((size_t)(he - hs) >= host_size)
        return SAGA_ERR_INVALID;
    errno = 0;
    p = strtol(colon + 1, &end, 10);
    if (errno || end == colon + 1 || *end || p < 0 || p > 65535)
        return SAGA_ERR_INVALID;
    memcpy(host, hs, (size_t)(he - hs));
    host[he - hs] = '\0';
    *port = (int)p;
    return SAGA_OK;
}

/* Appends n bytes of s to buf (size), keeping it terminated; *len counts what was wanted. */
static void put(char *buf, size_t size, size_t *len, const char *s, size_t n)
{
    if (*len + 1 < size) {
        size_t room = size - 1 - *len;
        memcpy(buf + *len, s, n < room ? n : room);
        buf[*len + (n < room ? n : room)] = '\0';
    }
    *len += n;
}

/* A parameter whose value is masked: any name holding "pass" (password, sslpassword, a
 * misspelling), or any percent-encoded name (libpq decodes "pass%77ord" to password). */
static int secret_key(const char *k, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (k[i] == '%' || (i + 4 <= n && strncasecmp(k + i, "pass", 4) == 0))
            return 1;
    return 0;
}

/* The "://" that ends the URI scheme s begins with (letters, digits, "+", "-", "."), or
 * NULL: libpq takes a string for a URI only by its prefix ("postgresql://"). */
static const char *uri_scheme_end(const char *s)
{
    size_t n = strspn(s, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789+-.");
    return n && strncmp(s + n, "://", 3) == 0 ? s + n : NULL;
}

/* Appends the n bytes of a key=value string's value (or stray word) at s: redacted when
 * it is itself a URI (quoted or not), which may hold a password (a RELAY_SOURCES
 * name=URL, a URL where a key was meant). */
static void put_value(char *buf, size_t size, size_t *len, const char *s, size_t n)
{
    size_t q = n && *s == '\'';
    char *raw, *red;

    if (!uri_scheme_end(s + q)) {
        put(buf, size, len, s, n);
        return;
    }
    raw = strndup(s + q, n - q);
    red = malloc(3 * n + 16); /* each "****" stands for at least "p=" */
    if (raw && red) {
        put(buf, size, len, s, q);
        saga_redact_url(raw, red, 3 * n + 16);
        put(buf, size, len, red, strlen(red));
    } else {
        put(buf, size, len, "****", 4);
    }
    free(raw);
    free(red);
}

/* Appends the URI url (its scheme ending at scheme) to buf with its password masked. */
static void redact_uri(const char *url, const char *scheme, char *buf, size_t size, size_t *len)
{
    const char *auth = scheme + 3, *p, *q;
    /* libpq: the user information ends at an "@" before the first "/". A password with
     * an unencoded "/" (base64 has them) is none to libpq, but it is the user's
     * password: an "@" with no "?" before it counts too, and so does one after a "?"
     * unless it is in a query value ("?user=a@b": "=" before it in its parameter) after
     * a host that is one: an IPv6 address or a port (digits, then "/", "," or "?"). */
    const char *slash = strchr(auth, '/');
    const char *at = strchr(auth, '@');
    const char *colon = at ? memchr(auth, ':', (size_t)(at - auth)) : NULL;
    const char *qm = colon && slash && at > slash ? memchr(auth, '?', (size_t)(at - auth)) : NULL;
    if (qm) {
        const char *param = qm + 1;
        size_t digits = strspn(colon + 1, "0123456789");
        char after = colon[1 + digits];
        for (const char *c = param; c < at; c++)
            if (*c == '&')
                param = c + 1;
        if ((auth[0] == '[' || (digits && (after == '/' || after == ',' || after == '?'))) &&
            memchr(param, '=', (size_t)(at - param)))
            colon = NULL; /* host:port/...?key=...@...: the "@" is in the query */
    }
    if (colon) {
        put(buf, size, len, url, (size_t)(colon + 1 - url));
        put(buf, size, len, "****", 4);
        p = at;
    } else {
        /* No user information: a first host's port that is no number ("u:secret", the
         * "@host" left out or cut off at a space) is more likely a password than a port. */
        size_t an = strcspn(auth, "/?,");
        const char *h = auth, *pc;
        if (*h == '[' && memchr(h, ']', an))
            h = (const char *)memchr(h, ']', an) + 1;
        pc = memchr(auth, '@', an) ? NULL : memchr(h, ':', (size_t)(auth + an - h));
        p = url;
        if (pc && strspn(pc + 1, "0123456789") < (size_t)(auth + an - pc - 1)) {
            put(buf, size, len, url, (size_t)(pc + 1 - url));
            put(buf, size, len, "****", 4);
            p = auth + an;
        }
    }
    /* libpq also takes the password as a parameter (?password=...), as often as given */
    q = strchr(p, '?');
    if (!q) {
        put(buf, size, len, p, strlen(p));
        return;
    }
    put(buf, size, len, p, (size_t)(q + 1 - p));
    for (p = q + 1; *p;) {
        size_t n = strcspn(p, "&"), k = strcspn(p, "=&");
        if (k < n && secret_key(p, k)) {
            put(buf, size, len, p, k + 1);
            put(buf, size, len, "****", 4);
        } else {
            put(buf, size, len, p, n);
        }
        p += n;
        if (*p)
            put(buf, size, len, p++, 1);
    }
}

/* Appends the key=value string s to buf with every password value masked. */
static void redact_keyvalue(const char *s, char *buf, size_t size, size_t *len)
{
    const char *p;
    /* libpq allows spaces around '=', quoted values, any key twice */
    for (p = s; *p;) {
        const char *k = p, *v;
        size_t kn;
        if (isspace((unsigned char)*p)) {
            put(buf, size, len, p++, 1);
            continue;
        }
        while (*p && *p != '=' && !isspace((unsigned char)*p))
            p++;
        kn = (size_t)(p - k);
        while (isspace((unsigned char)*p))
            p++;
        if (*p != '=') { /* not key=value: libpq refuses it; show the word alone */
            put_value(buf, size, len, k, kn);
            p = k + kn;
            continue;
        }
        p++;
        while (isspace((unsigned char)*p))
            p++;
        v = p;
        if (*p == '\'') {
            p++;
            while (*p && *p != '\'')
                p += (*p == '\\' && p[1]) ? 2 : 1;
            if (*p)
                p++;
        } else {
            while (*p && !isspace((unsigned char)*p))
                p += (*p == '\\' && p[1]) ? 2 : 1;
        }
        put(buf, size, len, k, kn);
        put(buf, size, len, "=", 1);
        if (secret_key(k, kn)) {
            put(buf, size, len, "****", 4);
        } else {
            /* "user= password=x": libpq skips the space and takes "password=x" for the
             * value (a template's variable left unset) */
            const char *eq = *v != '\'' ? memchr(v, '=', (size_t)(p - v)) : NULL;
            if (eq && secret_key(v, (size_t)(eq - v))) {
                put(buf, size, len, v, (size_t)(eq + 1 - v));
                put(buf, size, len, "****", 4);
            } else {
                put_value(buf, size, len, v, (size_t)(p - v));
            }
        }
    }
}

const char *saga_redact_url(const char *url, char *buf, size_t size)
{
    const char *scheme;
    size_t len = 0;

    if (!size)
        return buf;
    buf[0] = '\0';
    if (!url) {
        snprintf(buf, size, "(unset)");
        return buf;
    }
    /* A URI only when it begins with a scheme: a key=value string whose value holds "://"
     * is still key=value. */
    scheme = uri_scheme_end(url);
    if (!scheme) {
        redact_keyvalue(url, buf, size, &len);
    } else if (!url[strcspn(url, " \t\n\r\f\v")]) {
        redact_uri(url, scheme, buf, size, &len);
    } else {
        /* A URI with a space: its user information is masked as a URI's (an SMTP_URL's
         * password may hold a space), then whatever follows a space as key=value ("a://b=1
         * password=x", "postgresql://h/db password=x": libpq reads that into the dbname). */
        size_t tsize = 3 * strlen(url) + 16; /* each "****" stands for at least ":@" */
        size_t tlen = 0;
        char *tmp = malloc(tsize);
        if (!tmp) {
            snprintf(buf, size, "****");
            return buf;
        }
        tmp[0] = '\0';
        redact_uri(url, scheme, tmp, tsize, &tlen);
        redact_keyvalue(tmp, buf, size, &len);
        free(tmp);
    }
    return buf;
}

static char *dup_or_null(const char *s)
{
    return s ? strdup(s) : NULL;
}

saga_err_t saga_config_load(struct saga_config *cfg, const char *program, unsigned flags,
                            int default_http_port, char *errstr, size_t errstr_size)
{
    const char *v;
    long n;
    saga_err_t err;
    size_t bsize;

    memset(cfg, 0, sizeof(*cfg));
    snprintf(cfg->program, sizeof(cfg->program), "%s", program);

    v = saga_env("LOG_LEVEL", "info");
    if (saga_log_level_parse(v, &cfg->log_level) != 0)
        return saga_errf(SAGA_ERR_CONFIG, errstr, errstr_size,
                         "LOG_LEVEL: expected debug, info, warn or error, got '%s'", v);

    v = saga_env("DATABASE_URL", NULL);
    if (flags & SAGA_CONFIG_DATABASE) {
        char msg[256];

        if (!v)
            return saga_errf(SAGA_ERR_CONFIG, errstr, errstr_size,
                             "DATABASE_URL is not set (e.g. "
                             "postgresql://order_service:secret@127.0.0.1:15432/order_service)");
        if (saga_pg_conninfo_check(v, msg, sizeof(msg)) != SAGA_OK) {
            char red[512];
            return saga_errf(SAGA_ERR_CONFIG, errstr, errstr_size, "DATABASE_URL: %s (%s)", msg,
                             saga_redact_url(v, red, sizeof(red)));
        }
        cfg->database_url = strdup(v);
    }

    if (flags & SAGA_CONFIG_HTTP) {
        v = saga_env("HTTP_LISTEN", NULL);
        if (v) {
            if (saga_parse_hostport(v, cfg->http_host, sizeof(cfg->http_host), &cfg->http_port) !=
                SAGA_OK) {
                err = saga_errf(SAGA_ERR_CONFIG, errstr, errstr_size,
                                "HTTP_LISTEN: expected host:port (e.g. 127.0.0.1:%d), got '%s'",
                                default_http_port, v);
                goto fail;
            }
            if (!cfg->http_host[0])
                snprintf(cfg->http_host, sizeof(cfg->http_host), "0.0.0.0");
        } else {
            snprintf(cfg->http_host, sizeof(cfg->http_host), "127.0.0.1");
            cfg->http_port = default_http_port;
        }
    }

    v = saga_env("SCHEMA_REGISTRY_URL", NULL);
    if (v) {
        if (strncmp(v, "http://", 7) != 0 && strncmp(v, "https://", 8) != 0) {
            err =
                saga_errf(SAGA_ERR_CONFIG, errstr, errstr_size,
                          "SCHEMA_REGISTRY_URL: expected an http:// or https:// URL, got '%s'", v);
            goto fail;
        }
        cfg->schema_registry_url = dup_or_null(v);
    }

    v = saga_env("SAGA_SCHEMA_DIR", NULL);
    if (v) {
        struct stat st;
        if (stat(v, &st) != 0 || !S_ISDIR(st.st_mode)) {
            err = saga_errf(SAGA_ERR_CONFIG, errstr, errstr_size,
                            "SAGA_SCHEMA_DIR: '%s' is not a directory", v);
            goto fail;
        }
        cfg->schema_dir = dup_or_null(v);
    }

    if ((err = saga_env_long("TOPIC_PARTITIONS", 6, 1, 10000, &n, errstr, errstr_size)))
        goto fail;
    cfg->topic_partitions = (int)n;
    if ((err = saga_env_long("TOPIC_REPLICATION_FACTOR", 1, 1, 32, &n, errstr, errstr_size)))
        goto fail;
    cfg->topic_replication = (int)n;

    if ((err = saga_pg_settings_load(errstr, errstr_size)))
        goto fail;
    if ((err = saga_kafka_conf_from_env(&cfg->kafka_conf, errstr, errstr_size)))
        goto fail;
    bsize = sizeof(cfg->kafka_bootstrap);
    if (rd_kafka_conf_get(cfg->kafka_conf, "bootstrap.servers", cfg->kafka_bootstrap, &bsize) !=
        RD_KAFKA_CONF_OK)
        cfg->kafka_bootstrap[0] = '\0';
    return SAGA_OK;

fail:
    saga_config_release(cfg);
    return err;
}

void saga_config_release(struct saga_config *cfg)
{
    free(cfg->database_url);
    free(cfg->schema_registry_url);
    free(cfg->schema_dir);
    if (cfg->kafka_conf)
        rd_kafka_conf_destroy(cfg->kafka_conf);
    memset(cfg, 0, sizeof(*cfg));
}

void saga_config_print(const struct saga_config *cfg, FILE *out)
{
    char red[1024];

    fprintf(out, "LOG_LEVEL=%s\n", saga_log_level_name(cfg->log_level));
    if (cfg->database_url)
        fprintf(out, "DATABASE_URL=%s\n", saga_redact_url(cfg->database_url, red, sizeof(red)));
    if (cfg->http_port)
        fprintf(out, "HTTP_LISTEN=%s:%d\n", cfg->http_host, cfg->http_port);
    fprintf(out, "SCHEMA_REGISTRY_URL=%s\n",
            cfg->schema_registry_url ? cfg->schema_registry_url : "");
    fprintf(out, "SAGA_SCHEMA_DIR=%s\n", cfg->schema_dir ? cfg->schema_dir : "");
    fprintf(out, "TOPIC_PARTITIONS=%d\n", cfg->topic_partitions);
    fprintf(out, "TOPIC_REPLICATION_FACTOR=%d\n", cfg->topic_replication);
    saga_pg_settings_print(out);
    saga_kafka_conf_print(out);
}
