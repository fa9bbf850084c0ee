/*
 * Kafka plumbing shared by every program: librdkafka configuration from the
 * environment and topic administration through the Admin API.
 */
#ifndef SAGA_KAFKA_H
#define SAGA_KAFKA_H

#include <stdio.h>

#include <librdkafka/rdkafka.h>

#include "saga/err.h"

#define SAGA_KAFKA_DEFAULT_BOOTSTRAP "127.0.0.1:19092"

/*
 * Maps an environment variable name to a librdkafka property:
 * KAFKA_BOOTSTRAP_SERVERS -> bootstrap.servers, KAFKA_SASL_MECHANISMS -> sasl.mechanisms.
 * Returns 0, or -1 if name does not start with KAFKA_ or does not fit.
 */
int saga_kafka_env_to_prop(const char *name, char *prop, size_t size);

/*
 * The reverse: bootstrap.servers -> KAFKA_BOOTSTRAP_SERVERS. Returns 0, or -1 if the
 * name does not fit in size (name is then truncated).
 */
int saga_kafka_prop_to_env(const char *prop, char *name, size_t size);

/* 1 if the operator set prop through its KAFKA_* variable (a non-empty value), else 0:
 * a program's own default for prop then gives way. */
int saga_kafka_env_sets(const char *prop);

/*
 * A new configuration holding every KAFKA_* variable of the environment, with
 * bootstrap.servers defaulting to SAGA_KAFKA_DEFAULT_BOOTSTRAP. The caller owns
 * *out. On a property librdkafka rejects, returns SAGA_ERR_CONFIG naming the variable.
 */
saga_err_t saga_kafka_conf_from_env(rd_kafka_conf_t **out, char *errstr, size_t errstr_size);

/* Prints the KAFKA_* variables, masking those that hold secrets. */
void saga_kafka_conf_print(FILE *out);

/* 1 if a librdkafka property holds a secret (password, key, jaas config...). */
int saga_kafka_prop_is_secret(const char *prop);

/* Result of creating or checking one topic. */
struct saga_topic_status {
    const char *name;
    int partitions; /* partitions it has now (-1 if unknown) */
    int created;    /* 1 if this call created it */
    saga_err_t err; /* SAGA_OK, or why it could not be created */
    char errstr[256];
};

/*
 * Creates each topic that does not exist yet with the given partitions and
 * replication factor, through the Admin API (never by auto-creation). An
 * existing topic is left as it is and reported with its partition count.
 * status must have n entries. Returns SAGA_OK if every topic exists afterwards.
 */
saga_err_t saga_kafka_topics_ensure(rd_kafka_t *rk, const char **names, int n, int partitions,
                                    int replication, int timeout_ms,
                                    struct saga_topic_status *status);

/* Partition count of topic, 0 if it does not exist, -1 on error (errstr filled). */
int saga_kafka_topic_partitions(rd_kafka_t *rk, const char *topic, int timeout_ms, char *errstr,
                                size_t errstr_size);

/*
 * Routes librdkafka's own log lines through saga_log() (JSON on stderr), with
 * syslog levels mapped to ours. quiet=1 drops everything below debug instead,
 * for command-line tools whose output is for people.
 */
void saga_kafka_conf_set_logger(rd_kafka_conf_t *conf, int quiet);

#endif
