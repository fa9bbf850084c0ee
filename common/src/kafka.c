#include "saga/kafka.h"
#include "saga/config.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

extern char **environ;

int saga_kafka_env_to_prop(const char *name, char *prop, size_t size)
{
    size_t i, len;

    if (strncmp(name, "KAFKA_", 6) != 0)
        return -1;
    name += 6;
    len = strlen(name);
    if (len == 0 || len >= size)
        return -1;
    for (i = 0; i < len; i++)
        prop[i] = name[i] == '_' ? '.' : (char)tolower((unsigned char)name[i]);
    prop[len] = '\0';
    return 0;
}

int saga_kafka_prop_to_env(const char *prop, char *name, size_t size)
{
    size_t o = 0;
    const char *p;

    if (size == 0)
        return -1;
    for (p = "KAFKA_"; *p && o < size - 1; p++)
        name[o++] = *p;
    for (p = prop; *p && o < size - 1; p++)
        name[o++] = *p == '.' ? '_' : (char)toupper((unsigned char)*p);
    name[o] = '\0';
    return *p ? -1 : 0;
}

int saga_kafka_env_sets(const char *prop)
{
    char name[128];
    return saga_kafka_prop_to_env(prop, name, sizeof(name)) == 0 && saga_env(name, NULL) != NULL;
}

int saga_kafka_prop_is_secret(const char *prop)
{
    return strstr(prop, "password") || strstr(prop, "secret") || strstr(prop, "jaas") ||
           strstr(prop, "key.pem") || strcmp(prop, "ssl.key.location") == 0;
}

saga_err_t saga_kafka_conf_from_env(rd_kafka_conf_t **out, char *errstr, size_t errstr_size)
{
    rd_kafka_conf_t *conf = rd_kafka_conf_new();
    char rkerr[256];
    int have_bootstrap = 0;

    for (char **e = environ; *e; e++) {
        char name[128], prop[128];
        const char *eq = strchr(*e, '=');
        size_t nlen;

        if (!eq || strncmp(*e, "KAFKA_", 6) != 0)
            continue;
        nlen = (size_t)(eq - *e);
        if (nlen >= sizeof(name))
            continue;
        memcpy(name, *e, nlen);
        name[nlen] = '\0';
        if (eq[1] == '\0')
            continue; /* empty means unset */
        if (saga_kafka_env_to_prop(name, prop, sizeof(prop)) != 0)
            continue;
        if (rd_kafka_conf_set(conf, prop, eq + 1, rkerr, sizeof(rkerr)) != RD_KAFKA_CONF_OK) {
            rd_kafka_conf_destroy(conf);
            return saga_errf(SAGA_ERR_CONFIG, errstr, errstr_size, "%s (librdkafka %s): %s", name,
                             prop, rkerr);
        }
        if (strcmp(prop, "bootstrap.servers") == 0)
            have_bootstrap = 1;
    }
    if (!have_bootstrap)
        rd_kafka_conf_set(conf, "bootstrap.servers", SAGA_KAFKA_DEFAULT_BOOTSTRAP, NULL, 0);
    *out = conf;
    return SAGA_OK;
}

void saga_kafka_conf_print(FILE *out)
{
    int have_bootstrap = 0;

    for (char **e = environ; *e; e++) {
        char name[128], prop[128];
        const char *eq = strchr(*e, '=');
        size_t nlen;

        if (!eq || strncmp(*e, "KAFKA_", 6) != 0 || eq[1] == '\0')
            continue;
        nlen = (size_t)(eq - *e);
        if (nlen >= sizeof(name))
            continue;
        memcpy(name, *e, nlen);
        name[nlen] = '\0';
        if (saga_kafka_env_to_prop(name, prop, sizeof(prop)) != 0)
            continue;
        if (strcmp(prop, "bootstrap.servers") == 0)
            have_bootstrap = 1;
        fprintf(out, "%s=%s\n", name, saga_kafka_prop_is_secret(prop) ? "****" : eq + 1);
    }
    if (!have_bootstrap)
        fprintf(out, "KAFKA_BOOTSTRAP_SERVERS=%s\n", SAGA_KAFKA_DEFAULT_BOOTSTRAP);
}

int saga_kafka_topic_partitions(rd_kafka_t *rk, const char *topic, int timeout_ms, char *errstr,
                                size_t errstr_size)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_topic_t *rkt = rd_kafka_topic_new(rk, topic, NULL);
    rd_kafka_resp_err_t err;
    int n = -1;

    if (!rkt) {
        saga_errf(SAGA_ERR_INVALID, errstr, errstr_size, "topic '%s': %s", topic,
                  rd_kafka_err2str(rd_kafka_last_error()));
        return -1;
    }
    err = rd_kafka_metadata(rk, 0, rkt, &md, timeout_ms);
    if (err) {
        saga_errf(SAGA_ERR_TRANSIENT, errstr, errstr_size, "metadata for '%s': %s", topic,
                  rd_kafka_err2str(err));
    } else if (md->topic_cnt != 1) {
        saga_errf(SAGA_ERR_PERMANENT, errstr, errstr_size, "metadata for '%s': no topic returned",
                  topic);
    } else if (md->topics[0].err == RD_KAFKA_RESP_ERR_UNKNOWN_TOPIC_OR_PART) {
        n = 0;
    } else if (md->topics[0].err) {
        saga_errf(SAGA_ERR_TRANSIENT, errstr, errstr_size, "metadata for '%s': %s", topic,
                  rd_kafka_err2str(md->topics[0].err));
    } else {
        n = md->topics[0].partition_cnt;
    }
    if (md)
        rd_kafka_metadata_destroy(md);
    rd_kafka_topic_destroy(rkt);
    return n;
}

saga_err_t saga_kafka_topics_ensure(rd_kafka_t *rk, const char **names, int n, int partitions,
                                    int replication, int timeout_ms,
                                    struct saga_topic_status *status)
{
    rd_kafka_NewTopic_t **nt = calloc((size_t)n, sizeof(*nt));
    rd_kafka_AdminOptions_t *opts = NULL;
    rd_kafka_queue_t *q = NULL;
    rd_kafka_event_t *ev = NULL;
    saga_err_t ret = SAGA_OK;
    char errbuf[256];

    /* Every status says something, whatever fails below (the callers print each one). */
    for (int i = 0; i < n; i++) {
        memset(&status[i], 0, sizeof(status[i]));
        status[i].name = names[i];
        status[i].partitions = -1;
        if (!nt) {
            status[i].err = SAGA_ERR_NOMEM;
            snprintf(status[i].errstr, sizeof(status[i].errstr), "out of memory");
        }
    }
    if (!nt)
        return SAGA_ERR_NOMEM;
    for (int i = 0; i < n; i++) {
        nt[i] = rd_kafka_NewTopic_new(names[i], partitions, replication, errbuf, sizeof(errbuf));
        if (!nt[i]) {
            status[i].err = SAGA_ERR_INVALID;
            snprintf(status[i].errstr, sizeof(status[i].errstr), "%s", errbuf);
            ret = SAGA_ERR_INVALID;
        }
    }
    if (ret)
        goto out;

    q = rd_kafka_queue_new(rk);
    opts = rd_kafka_AdminOptions_new(rk, RD_KAFKA_ADMIN_OP_CREATETOPICS);
    rd_kafka_AdminOptions_set_operation_timeout(opts, timeout_ms, errbuf, sizeof(errbuf));
    rd_kafka_AdminOptions_set_request_timeout(opts, timeout_ms, errbuf, sizeof(errbuf));
    rd_kafka_CreateTopics(rk, nt, (size_t)n, opts, q);
    ev = rd_kafka_queue_poll(q, timeout_ms + 5000);
    if (!ev) {
        for (int i = 0; i < n; i++) {
            status[i].err = SAGA_ERR_TIMEOUT;
            snprintf(status[i].errstr, sizeof(status[i].errstr), "no answer from the broker");
        }
        ret = SAGA_ERR_TIMEOUT;
        goto out;
    }
    if (rd_kafka_event_error(ev)) {
        for (int i = 0; i < n; i++) {
            status[i].err = SAGA_ERR_TRANSIENT;
            snprintf(status[i].errstr, sizeof(status[i].errstr), "%s",
                     rd_kafka_event_error_string(ev));
        }
        ret = SAGA_ERR_TRANSIENT;
        goto out;
    }

    {
        const rd_kafka_CreateTopics_result_t *res = rd_kafka_event_CreateTopics_result(ev);
        size_t cnt = 0;
        const rd_kafka_topic_result_t **tr = rd_kafka_CreateTopics_result_topics(res, &cnt);

        for (size_t j = 0; j < cnt; j++) {
            const char *name = rd_kafka_topic_result_name(tr[j]);
            rd_kafka_resp_err_t terr = rd_kafka_topic_result_error(tr[j]);
            for (int i = 0; i < n; i++) {
                if (strcmp(names[i], name) != 0)
                    continue;
                if (terr == RD_KAFKA_RESP_ERR_NO_ERROR) {
                    status[i].created = 1;
                } else if (terr != RD_KAFKA_RESP_ERR_TOPIC_ALREADY_EXISTS) {
                    const char *es = rd_kafka_topic_result_error_string(tr[j]);
                    status[i].err = SAGA_ERR_PERMANENT;
                    snprintf(status[i].errstr, sizeof(status[i].errstr), "%s",
                             es ? es : rd_kafka_err2str(terr));
                    ret = SAGA_ERR_PERMANENT;
                }
            }
        }
    }

    /* Report what each topic has now; a new topic's metadata may lag a moment. */
    for (int i = 0; i < n; i++) {
        if (status[i].err)
            continue;
        for (int tries = 0; tries < 50; tries++) {
            int p = saga_kafka_topic_partitions(rk, names[i], timeout_ms, errbuf, sizeof(errbuf));
            status[i].partitions = p;
            if (p > 0)
                break;
            rd_kafka_poll(rk, 100);
        }
        if (status[i].partitions <= 0) {
            status[i].err = SAGA_ERR_TIMEOUT;
            snprintf(status[i].errstr, sizeof(status[i].errstr), "created but not visible yet");
            ret = SAGA_ERR_TIMEOUT;
        }
    }

out:
    if (ev)
        rd_kafka_event_destroy(ev);
    if (opts)
        rd_kafka_AdminOptions_destroy(opts);
    if (q)
        rd_kafka_queue_destroy(q);
    for (int i = 0; i < n; i++)
        if (nt[i])
            rd_kafka_NewTopic_destroy(nt[i]);
    free(nt);
    return ret;
}

#include "saga/log.h"

static void kafka_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    saga_log_level_t l = level <= 3   ? SAGA_LOG_ERROR
                         : level == 4 ? SAGA_LOG_WARN
                         : level <= 6 ? SAGA_LOG_INFO
                                      : SAGA_LOG_DEBUG;
    saga_log(l, NULL, "librdkafka %s: %s", fac, buf);
}

static void kafka_quiet_log_cb(const rd_kafka_t *rk, int level, const char *fac, const char *buf)
{
    saga_log(SAGA_LOG_DEBUG, NULL, "librdkafka %s: %s", fac, buf);
}

void saga_kafka_conf_set_logger(rd_kafka_conf_t *conf, int quiet)
{
    rd_kafka_conf_set_log_cb(conf, quiet ? kafka_quiet_log_cb : kafka_log_cb);
}
