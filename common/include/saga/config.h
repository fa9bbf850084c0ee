/*
 * Configuration from environment variables (documented in docs/CONFIGURATION.md).
 *
 * An empty variable counts as unset. Every loader names the variable at fault
 * in errstr, so a program can exit with SAGA_EXIT_CONFIG and one clear line.
 */
#ifndef SAGA_CONFIG_H
#define SAGA_CONFIG_H

#include <stdint.h>
#include <stdio.h>

#include <librdkafka/rdkafka.h>

#include "saga/err.h"
#include "saga/log.h"

/* What a program needs from saga_config_load(). */
enum {
    SAGA_CONFIG_DATABASE = 1 << 0, /* DATABASE_URL is required */
    SAGA_CONFIG_HTTP = 1 << 1,     /* HTTP_LISTEN is read */
};

struct saga_config {
    char program[48];            /* "order-service" */
    saga_log_level_t log_level;  /* LOG_LEVEL, default info */
    char *database_url;          /* DATABASE_URL (libpq URI or key=value), or NULL */
    char http_host[64];          /* HTTP_LISTEN host, default 127.0.0.1 */
    int http_port;               /* HTTP_LISTEN port */
    char *schema_registry_url;   /* SCHEMA_REGISTRY_URL, or NULL: single-object framing */
    char *schema_dir;            /* SAGA_SCHEMA_DIR: more writer schemas to know, or NULL */
    int topic_partitions;        /* TOPIC_PARTITIONS, default 6 */
    int topic_replication;       /* TOPIC_REPLICATION_FACTOR, default 1 */
    rd_kafka_conf_t *kafka_conf; /* every KAFKA_* variable, owned; rd_kafka_conf_dup() it */
    char kafka_bootstrap[256];   /* bootstrap.servers, for messages */
};

/*
 * Reads the common variables for program (e.g. "order-service"). default_http_port
 * is used when HTTP_LISTEN is unset. On error returns SAGA_ERR_CONFIG with the
 * variable and the problem in errstr; cfg then holds nothing to release.
 */
saga_err_t saga_config_load(struct saga_config *cfg, const char *program, unsigned flags,
                            int default_http_port, char *errstr, size_t errstr_size);
void saga_config_release(struct saga_config *cfg);

/* Prints the effective configuration, one VAR=value per line, passwords masked. */
void saga_config_print(const struct saga_config *cfg, FILE *out);

/* getenv() where "" counts as unset: returns def then. */
const char *saga_env(const char *name, const char *def);

saga_err_t saga_env_long(const char *name, long def, long min, long max, long *out, char *errstr,
                         size_t errstr_size);

/*
 * A duration: "250ms", "30s", "5m", "1h", or a bare number of seconds. The result
 * is in milliseconds and must lie within [min_ms, max_ms].
 */
saga_err_t saga_env_duration_ms(const char *name, int64_t def_ms, int64_t min_ms, int64_t max_ms,
                                int64_t *out, char *errstr, size_t errstr_size);
saga_err_t saga_parse_duration_ms(const char *s, int64_t *out);

/* "host:port", "[v6]:port" or ":port" (host stays as given). */
saga_err_t saga_parse_hostport(const char *s, char *host, size_t host_size, int *port);

/* Copies url into buf with any password replaced by "****" (URI and key=value forms). */
const char *saga_redact_url(const char *url, char *buf, size_t size);

#endif
