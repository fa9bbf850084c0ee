#include "relay_sources.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include <libpq-fe.h>

#include "saga/config.h"
#include "saga/pg.h"
#include "saga/topology.h"

static int valid_name(const char *s, size_t len)
{
    if (len == 0)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '_' && s[i] != '-')
            return 0;
    return 1;
}

saga_err_t relay_sources_parse(struct relay_sources *out, const char *spec, char *errstr,
                               size_t errstr_size)
{
    const char *p = spec;
    saga_err_t err = SAGA_OK;

    memset(out, 0, sizeof(*out));
    if (!spec)
        return saga_errf(SAGA_ERR_CONFIG, errstr, errstr_size,
                         "RELAY_SOURCES is not set (e.g. \"order=postgresql://...\")");
    for (;;) {
        const char *start, *eq, *end;
        char *url, msg[256];
        struct relay_source *s;

        while (isspace((unsigned char)*p))
            p++;
        if (!*p)
            break;
        start = p;
        while (*p && !isspace((unsigned char)*p))
            p++;
        end = p;
        eq = memchr(start, '=', (size_t)(end - start));
        if (!eq || !valid_name(start, (size_t)(eq - start)) || eq + 1 == end ||
            (size_t)(eq - start) >= sizeof(out->src[0].name)) {
            /* the word may be a URL with its password (the name forgotten): redacted */
            char *word = strndup(start, (size_t)(end - start)), red[64] = "?";
            if (word)
                saga_redact_url(word, red, sizeof(red));
            free(word);
            err = saga_errf(SAGA_ERR_CONFIG, errstr, errstr_size,
                            "RELAY_SOURCES: expected name=postgresql://... at '%.40s'", red);
            goto fail;
        }
        for (int i = 0; i < out->count; i++) {
            if (strncmp(out->src[i].name, start, (size_t)(eq - start)) == 0 &&
                out->src[i].name[eq - start] == '\0') {
                err = saga_errf(SAGA_ERR_CONFIG, errstr, errstr_size,
                                "RELAY_SOURCES: source '%.*s' is named twice", (int)(eq - start),
                                start);
                goto fail;
            }
        }
        if (out->count == RELAY_MAX_SOURCES) {
            err = saga_errf(SAGA_ERR_CONFIG, errstr, errstr_size,
                            "RELAY_SOURCES: more than %d sources", RELAY_MAX_SOURCES);
            goto fail;
        }
        url = strndup(eq + 1, (size_t)(end - eq - 1));
        if (!url) {
            err = SAGA_ERR_NOMEM;
            goto fail;
        }
        if (saga_pg_conninfo_check(url, msg, sizeof(msg)) != SAGA_OK) {
            /* the whole word redacted: a "password=..." appended to a URL with a space is a
             * word of its own, its name "password" */
            char red[512], *word = strndup(start, (size_t)(end - start));
            err = saga_errf(SAGA_ERR_CONFIG, errstr, errstr_size, "RELAY_SOURCES: %.*s: %s (%s)",
                            (int)(eq - start), start, msg,
                            word ? saga_redact_url(word, red, sizeof(red)) : "****");
            free(word);
            free(url);
            goto fail;
        }
        s = &out->src[out->count++];
        memcpy(s->name, start, (size_t)(eq - start));
        s->name[eq - start] = '\0';
        s->url = url;
    }
    if (out->count == 0)
        return saga_errf(SAGA_ERR_CONFIG, errstr, errstr_size,
                         "RELAY_SOURCES names no source (e.g. \"order=postgresql://...\")");
    return SAGA_OK;

fail:
    relay_sources_release(out);
    return err;
}

/* Kafka's legal topic names: [a-zA-Z0-9._-], at most 249 characters. */
static int valid_topic(const char *s, size_t len)
{
    if (len == 0 || len > 249)
        return 0;
    for (size_t i = 0; i < len; i++)
        if (!isalnum((unsigned char)s[i]) && s[i] != '.' && s[i] != '_' && s[i] != '-')
            return 0;
    return 1;
}

saga_err_t relay_sources_topics(struct relay_sources *s, const char *spec, char *errstr,
                                size_t errstr_size)
{
    const char *p = spec ? spec : "";

    for (int i = 0; i < s->count; i++)
        s->src[i].ntopics = 0;
    for (;;) {
        const char *start, *eq, *end, *t;
        struct relay_source *src = NULL;

        while (isspace((unsigned char)*p))
            p++;
        if (!*p)
            break;
        start = p;
        while (*p && !isspace((unsigned char)*p))
            p++;
        end = p;
        if (!(eq = memchr(start, '=', (size_t)(end - start))) || eq + 1 == end)
            return saga_errf(SAGA_ERR_CONFIG, errstr, errstr_size,
                             "RELAY_SOURCE_TOPICS: expected source=topic[,topic...] at '%.*s'",
                             (int)(end - start > 60 ? 60 : end - start), start);
        for (int i = 0; i < s->count; i++)
            if (strlen(s->src[i].name) == (size_t)(eq - start) &&
                strncmp(s->src[i].name, start, (size_t)(eq - start)) == 0)
                src = &s->src[i];
        if (!src)
            return saga_errf(SAGA_ERR_CONFIG, errstr, errstr_size,
                             "RELAY_SOURCE_TOPICS: '%.*s' is not a source of RELAY_SOURCES",
                             (int)(eq - start > 60 ? 60 : eq - start), start);
        if (src->ntopics)
            return saga_errf(SAGA_ERR_CONFIG, errstr, errstr_size,
                             "RELAY_SOURCE_TOPICS: source '%s' is named twice", src->name);
        for (t = eq + 1; t < end;) {
            const char *comma = memchr(t, ',', (size_t)(end - t));
            size_t len = (size_t)((comma ? comma : end) - t);
            if (!valid_topic(t, len))
                return saga_errf(SAGA_ERR_CONFIG, errstr, errstr_size,
                                 "RELAY_SOURCE_TOPICS: '%.*s' is not a topic name",
                                 (int)(len > 60 ? 60 : len), t);
            if (src->ntopics == RELAY_MAX_SOURCE_TOPICS)
                return saga_errf(SAGA_ERR_CONFIG, errstr, errstr_size,
                                 "RELAY_SOURCE_TOPICS: more than %d topics for source '%s'",
                                 RELAY_MAX_SOURCE_TOPICS, src->name);
            memcpy(src->topics[src->ntopics], t, len);
            src->topics[src->ntopics++][len] = '\0';
            t = comma ? comma + 1 : end;
        }
    }
    for (int i = 0; i < s->count; i++) {
        const struct saga_service_info *svc = saga_service_find(s->src[i].name);
        if (s->src[i].ntopics)
            continue;
        if (!svc)
            return saga_errf(SAGA_ERR_CONFIG, errstr, errstr_size,
                             "source '%s' owns no topic: name it after a service (order, "
                             "inventory, payment, shipping, notification) or give its topics in "
                             "RELAY_SOURCE_TOPICS (\"%s=topic\")",
                             s->src[i].name, s->src[i].name);
        snprintf(s->src[i].topics[0], sizeof(s->src[i].topics[0]), "%s", svc->topic);
        s->src[i].ntopics = 1;
    }
    return SAGA_OK;
}

void relay_sources_release(struct relay_sources *s)
{
    for (int i = 0; i < s->count; i++)
        free(s->src[i].url);
    memset(s, 0, sizeof(*s));
}

void relay_sources_print(const struct relay_sources *s, FILE *out)
{
    char red[512];

    fprintf(out, "RELAY_SOURCES=");
    for (int i = 0; i < s->count; i++)
        fprintf(out, "%s%s=%s", i ? " " : "", s->src[i].name,
                saga_redact_url(s->src[i].url, red, sizeof(red)));
    fprintf(out, "\nRELAY_SOURCE_TOPICS=");
    for (int i = 0; i < s->count; i++) {
        fprintf(out, "%s%s=", i ? " " : "", s->src[i].name);
        for (int t = 0; t < s->src[i].ntopics; t++)
            fprintf(out, "%s%s", t ? "," : "", s->src[i].topics[t]);
    }
    fprintf(out, "\n");
}
