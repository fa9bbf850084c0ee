/*
 * payment-service: customer accounts and payments; authorizes on InventoryReserved, refunds on
 * OrderCancelled.
 */
#include "saga/program.h"

static const struct saga_program payment_program = {
    .name = "payment-service",
    .summary = "Authorizes and refunds payments for orders.",
    .config_flags = SAGA_CONFIG_DATABASE | SAGA_CONFIG_HTTP,
    .http_port = 8082,
};

int main(int argc, char **argv)
{
    struct saga_config cfg;
    int code;

    if (!saga_program_init(&payment_program, argc, argv, &cfg, &code))
        return code;
    saga_info("configuration ok (kafka %s, http %s:%d); the saga handlers are not part of this "
              "build yet, exiting",
              cfg.kafka_bootstrap, cfg.http_host, cfg.http_port);
    saga_config_release(&cfg);
    return SAGA_EXIT_OK;
}
