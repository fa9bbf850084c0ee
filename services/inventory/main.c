/*
 * inventory-service: stock and reservations; reserves on OrderPlaced, releases on PaymentFailed and
 * OrderCancelled.
 */
#include "saga/program.h"

static const struct saga_program inventory_program = {
    .name = "inventory-service",
    .summary = "Reserves and releases stock for orders.",
    .config_flags = SAGA_CONFIG_DATABASE | SAGA_CONFIG_HTTP,
    .http_port = 8081,
};

int main(int argc, char **argv)
{
    struct saga_config cfg;
    int code;

    if (!saga_program_init(&inventory_program, argc, argv, &cfg, &code))
        return code;
    saga_info("configuration ok (kafka %s, http %s:%d); the saga handlers are not part of this "
              "build yet, exiting",
              cfg.kafka_bootstrap, cfg.http_host, cfg.http_port);
    saga_config_release(&cfg);
    return SAGA_EXIT_OK;
}
