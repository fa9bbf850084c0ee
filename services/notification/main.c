/*
 * notification-service: tells the customer each order's outcome, exactly once per outcome.
 */
#include "saga/program.h"

static const struct saga_program notification_program = {
    .name = "notification-service",
    .summary = "Notifies customers of order outcomes.",
    .config_flags = SAGA_CONFIG_DATABASE | SAGA_CONFIG_HTTP,
    .http_port = 8084,
};

int main(int argc, char **argv)
{
    struct saga_config cfg;
    int code;

    if (!saga_program_init(&notification_program, argc, argv, &cfg, &code))
        return code;
    saga_info("configuration ok (kafka %s, http %s:%d); the saga handlers are not part of this "
              "build yet, exiting",
              cfg.kafka_bootstrap, cfg.http_host, cfg.http_port);
    saga_config_release(&cfg);
    return SAGA_EXIT_OK;
}
