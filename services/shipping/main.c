/*
 * shipping-service: shipments; schedules on PaymentAuthorized, cancels on OrderCancelled.
 */
#include "saga/program.h"

static const struct saga_program shipping_program = {
    .name = "shipping-service",
    .summary = "Schedules and cancels shipments for orders.",
    .config_flags = SAGA_CONFIG_DATABASE | SAGA_CONFIG_HTTP,
    .http_port = 8083,
};

int main(int argc, char **argv)
{
    struct saga_config cfg;
    int code;

    if (!saga_program_init(&shipping_program, argc, argv, &cfg, &code))
        return code;
    saga_info("configuration ok (kafka %s, http %s:%d); the saga handlers are not part of this "
              "build yet, exiting",
              cfg.kafka_bootstrap, cfg.http_host, cfg.http_port);
    saga_config_release(&cfg);
    return SAGA_EXIT_OK;
}
