/*
 * The start of every long-running program: command line, configuration, logging.
 *
 *   static const struct saga_program prog = {"inventory-service", "...", SAGA_CONFIG_DATABASE
 *                                            | SAGA_CONFIG_HTTP, 8081, NULL};
 *   int code;
 *   if (!saga_program_init(&prog, argc, argv, &cfg, &code))
 *       return code;
 */
#ifndef SAGA_PROGRAM_H
#define SAGA_PROGRAM_H

#include "saga/config.h"

struct saga_program {
    const char *name;      /* "order-service" */
    const char *summary;   /* one line for --help */
    unsigned config_flags; /* SAGA_CONFIG_* */
    int http_port;         /* default HTTP_LISTEN port */
    const char *env_help;  /* extra "VAR  meaning" lines for --help, or NULL */
    /* Reads the program's own variables into arg; NULL if it has none. */
    saga_err_t (*load)(void *arg, char *errstr, size_t errstr_size);
    /* Prints them for --check-config; may be NULL. */
    void (*print)(const void *arg, FILE *out);
    void *arg;
};

/*
 * Handles --help, --version and --check-config, loads the configuration into cfg
 * and starts logging. Returns 1 when the program should go on running (cfg is then
 * the caller's to release), or 0 with *exit_code set when it should exit now:
 * SAGA_EXIT_OK after --help/--version/--check-config, SAGA_EXIT_USAGE for a bad
 * option, SAGA_EXIT_CONFIG for bad configuration (cause printed on stderr).
 */
int saga_program_init(const struct saga_program *prog, int argc, char **argv,
                      struct saga_config *cfg, int *exit_code);

/* Prints "<program>: config: <msg>" on stderr and returns SAGA_EXIT_CONFIG. */
int saga_program_config_error(const struct saga_program *prog, const char *msg);

#endif
