/*
 * outbox-relay: moves committed outbox rows of every configured service database
 * to Kafka, one leader per database; other instances wait as hot standbys.
 */
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>

#include "relay.h"
#include "relay_sources.h"
#include "saga/config.h"
#include "saga/otel.h"
#include "saga/program.h"
#include "saga/topology.h"

struct relay_config {
    struct relay_sources sources;
    struct relay_settings settings;
};

static struct relay_config rc;
static atomic_int stop; /* read by every source thread: an atomic, lock-free */
_Static_assert(ATOMIC_INT_LOCK_FREE == 2, "the signal handler stores to stop");

static saga_err_t relay_config_load(void *arg, char *errstr, size_t errstr_size)
{
    struct relay_config *c = arg;
    saga_err_t err = relay_settings_load(&c->settings, errstr, errstr_size);
    if (!err)
        err =
            relay_sources_parse(&c->sources, saga_env("RELAY_SOURCES", NULL), errstr, errstr_size);
    if (!err)
        err = relay_sources_topics(&c->sources, saga_env("RELAY_SOURCE_TOPICS", NULL), errstr,
                                   errstr_size);
    return err;
}

static void relay_config_print(const void *arg, FILE *out)
{
    const struct relay_config *c = arg;
    relay_sources_print(&c->sources, out);
    relay_settings_print(&c->settings, out);
}

static const struct saga_program relay_program = {
    .name = "outbox-relay",
    .summary = "Publishes the committed outbox rows of each service database to Kafka.",
    .config_flags = SAGA_CONFIG_HTTP,
    .http_port = SAGA_RELAY_HTTP_PORT,
    .env_help = "  RELAY_SOURCES             whitespace-separated name=postgresql://... pairs "
                "(required)\n"
                "  RELAY_SOURCE_TOPICS       source=topic[,topic...] pairs: the topics a source's "
                "rows may go to\n"
                "                            (default: a source named after a service owns its "
                "topic)\n"
                "  RELAY_BATCH_SIZE          rows per round (default 500)\n"
                "  RELAY_POLL_INTERVAL       look for rows without a NOTIFY this often (1s)\n"
                "  RELAY_STANDBY_RETRY       a standby tries to take over this often (1s)\n"
                "  RELAY_RETENTION           delete published rows older than this (1h)\n"
                "  RELAY_PRUNE_INTERVAL      how often to delete them (60s)\n",
    .load = relay_config_load,
    .print = relay_config_print,
    .arg = &rc,
};

static void on_signal(int sig)
{
    (void)sig;
    atomic_store(&stop, 1);
}

int main(int argc, char **argv)
{
    struct saga_config cfg;
    struct sigaction sa;
    int code;

    if (!saga_program_init(&relay_program, argc, argv, &cfg, &code)) {
        relay_sources_release(&rc.sources);
        return code;
    }
    memset(&sa, 0, sizeof(sa));
    sa.sa_handler = on_signal;
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    signal(SIGPIPE, SIG_IGN);

    saga_info("starting: %d source%s, kafka %s", rc.sources.count, rc.sources.count == 1 ? "" : "s",
              cfg.kafka_bootstrap);
    code = relay_run(&cfg, &rc.sources, &rc.settings, &stop);
    saga_info("stopped");
    saga_otel_shutdown(); /* exports what is queued, within OTEL_BSP_EXPORT_TIMEOUT */
    relay_sources_release(&rc.sources);
    saga_config_release(&cfg);
    return code;
}
