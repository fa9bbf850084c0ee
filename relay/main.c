/*
 * outbox-relay: moves committed outbox rows of every configured service database
 * to Kafka, one leader per database.
 */
#include <stdio.h>

#include "relay_sources.h"
#include "saga/config.h"
#include "saga/program.h"
#include "saga/topology.h"

static struct relay_sources sources;

static saga_err_t relay_settings_load(void *arg, char *errstr, size_t errstr_size)
{
    return relay_sources_parse(arg, saga_env("RELAY_SOURCES", NULL), errstr, errstr_size);
}

static void relay_settings_print(const void *arg, FILE *out)
{
    relay_sources_print(arg, out);
}

static const struct saga_program relay_program = {
    .name = "outbox-relay",
    .summary = "Publishes the committed outbox rows of each service database to Kafka.",
    .config_flags = SAGA_CONFIG_HTTP,
    .http_port = SAGA_RELAY_HTTP_PORT,
    .env_help = "  RELAY_SOURCES             whitespace-separated name=postgresql://... pairs "
                "(required)\n",
    .load = relay_settings_load,
    .print = relay_settings_print,
    .arg = &sources,
};

int main(int argc, char **argv)
{
    struct saga_config cfg;
    int code;

    if (!saga_program_init(&relay_program, argc, argv, &cfg, &code)) {
        relay_sources_release(&sources);
        return code;
    }
    saga_info("configuration ok (%d sources, kafka %s); publishing is not part of this build "
              "yet, exiting",
              sources.count, cfg.kafka_bootstrap);
    relay_sources_release(&sources);
    saga_config_release(&cfg);
    return SAGA_EXIT_OK;
}
