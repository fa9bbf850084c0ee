#include "saga/program.h"

#include <stdio.h>
#include <string.h>

#include "saga/otel.h"

static void usage(const struct saga_program *prog, FILE *out)
{
    fprintf(out,
            "usage: %s [--check-config] [--help] [--version]\n"
            "\n"
            "%s\n"
            "\n"
            "options:\n"
            "  --check-config  validate the configuration, print it (passwords masked), exit\n"
            "  --version       print the version and exit\n"
            "  --help          print this help and exit\n"
            "\n"
            "environment (empty means unset):\n"
            "  LOG_LEVEL                 debug, info, warn or error (default info)\n",
            prog->name, prog->summary);
    if (prog->config_flags & SAGA_CONFIG_DATABASE)
        fprintf(out, "  DATABASE_URL              libpq URI or key=value string (required)\n"
                     "  SAGA_PG_PREPARE           off: no prepared statements (for a pooler in "
                     "transaction mode; default on)\n");
    fprintf(out,
            "  PG_CONNECT_TIMEOUT        give up connecting to PostgreSQL after (default 10s)\n"
            "  PG_KEEPALIVE              TCP keepalive idle time, 0 off (default 30s)\n"
            "  PG_QUERY_TIMEOUT          give a statement with no answer up after, and its\n"
            "                            connection (default 30s; 0 no limit)\n");
    if (prog->config_flags & SAGA_CONFIG_HTTP)
        fprintf(out,
                "  HTTP_LISTEN               host:port of the HTTP endpoints (default "
                "127.0.0.1:%d)\n",
                prog->http_port);
    fprintf(out, "  KAFKA_BOOTSTRAP_SERVERS   Kafka brokers (default 127.0.0.1:19092)\n"
                 "  KAFKA_*                   any librdkafka property: KAFKA_SASL_MECHANISMS -> "
                 "sasl.mechanisms\n"
                 "  SCHEMA_REGISTRY_URL       Confluent-compatible registry; unset: Avro "
                 "single-object framing\n"
                 "  SAGA_SCHEMA_DIR           directory of extra writer schemas (*.avsc) to read\n"
                 "  TOPIC_PARTITIONS          partitions of the topics (default 6)\n");
    if (prog->env_help)
        fputs(prog->env_help, out);
    fprintf(out, "\nexit codes: 0 ok, 1 runtime failure, 64 bad usage, 78 bad configuration\n");
}

int saga_program_config_error(const struct saga_program *prog, const char *msg)
{
    fprintf(stderr, "%s: config: %s\n", prog->name, msg);
    return SAGA_EXIT_CONFIG;
}

int saga_program_init(const struct saga_program *prog, int argc, char **argv,
                      struct saga_config *cfg, int *exit_code)
{
    char errstr[512];
    int check_only = 0;

    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            usage(prog, stdout);
            *exit_code = SAGA_EXIT_OK;
            return 0;
        } else if (strcmp(argv[i], "--version") == 0) {
            printf("%s %s\n", prog->name, SAGA_VERSION);
            *exit_code = SAGA_EXIT_OK;
            return 0;
        } else if (strcmp(argv[i], "--check-config") == 0) {
            check_only = 1;
        } else {
            fprintf(stderr, "%s: unknown option '%s' (try --help)\n", prog->name, argv[i]);
            *exit_code = SAGA_EXIT_USAGE;
            return 0;
        }
    }

    if (saga_config_load(cfg, prog->name, prog->config_flags, prog->http_port, errstr,
                         sizeof(errstr)) != SAGA_OK) {
        *exit_code = saga_program_config_error(prog, errstr);
        return 0;
    }
    if (prog->load && prog->load(prog->arg, errstr, sizeof(errstr)) != SAGA_OK) {
        saga_config_release(cfg);
        *exit_code = saga_program_config_error(prog, errstr);
        return 0;
    }
    if (check_only) {
        saga_config_print(cfg, stdout);
        if (prog->print)
            prog->print(prog->arg, stdout);
        saga_config_release(cfg);
        *exit_code = SAGA_EXIT_OK;
        return 0;
    }
    saga_log_init(prog->name, cfg->log_level);
    /* Span export (saga/otel.h): off unless an OTLP endpoint is set. */
    if (saga_otel_init(prog->name, errstr, sizeof(errstr))) {
        saga_config_release(cfg);
        *exit_code = saga_program_config_error(prog, errstr);
        return 0;
    }
    return 1;
}
