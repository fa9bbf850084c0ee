/* sagactl: one function per subcommand, all diagnostics on stderr. */
#ifndef SAGACTL_H
#define SAGACTL_H

#include "saga/config.h"

/* Exit codes (docs/SAGACTL.md). */
#define SAGACTL_EXIT_OK      0
#define SAGACTL_EXIT_FAILURE 1  /* the command ran and the answer is "no" or it failed */
#define SAGACTL_EXIT_UNREACH 69 /* Kafka or the API could not be reached (EX_UNAVAILABLE) */
#define SAGACTL_EXIT_USAGE   64
#define SAGACTL_EXIT_CONFIG  78

int sagactl_topics(const struct saga_config *cfg, int argc, char **argv);
int sagactl_schemas(int argc, char **argv);
int sagactl_dlq(const struct saga_config *cfg, int argc, char **argv);

#endif
