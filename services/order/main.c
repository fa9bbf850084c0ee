/*
 * order-service: the HTTP API for placing and reading orders, the owner of each
 * order's outcome, the saga timeout sweeper and the saga timeline read model.
 */
#include <inttypes.h>
#include <stdio.h>

#include "saga/program.h"

struct order_settings {
    int64_t saga_timeout_ms; /* SAGA_TIMEOUT */
};

static saga_err_t order_settings_load(void *arg, char *errstr, size_t errstr_size)
{
    struct order_settings *s = arg;
    return saga_env_duration_ms("SAGA_TIMEOUT", 30000, 1000, 86400000, &s->saga_timeout_ms, errstr,
                                errstr_size);
}

static void order_settings_print(const void *arg, FILE *out)
{
    const struct order_settings *s = arg;
    fprintf(out, "SAGA_TIMEOUT=%" PRId64 "ms\n", s->saga_timeout_ms);
}

static struct order_settings settings;

static const struct saga_program order_program = {
    .name = "order-service",
    .summary = "Places and reads orders over HTTP and owns each order's saga outcome.",
    .config_flags = SAGA_CONFIG_DATABASE | SAGA_CONFIG_HTTP,
    .http_port = 8080,
    .env_help = "  SAGA_TIMEOUT              cancel PENDING orders older than this (default 30s)\n",
    .load = order_settings_load,
    .print = order_settings_print,
    .arg = &settings,
};

int main(int argc, char **argv)
{
    struct saga_config cfg;
    int code;

    if (!saga_program_init(&order_program, argc, argv, &cfg, &code))
        return code;
    saga_info("configuration ok (kafka %s, http %s:%d, saga timeout %" PRId64
              "ms); the saga handlers are not part of this build yet, exiting",
              cfg.kafka_bootstrap, cfg.http_host, cfg.http_port, settings.saga_timeout_ms);
    saga_config_release(&cfg);
    return SAGA_EXIT_OK;
}
