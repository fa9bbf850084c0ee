/*
 * sagactl topics [list] [--timeout S]
 * sagactl topics create [--partitions N] [--replication N] [--wait S]
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "saga/kafka.h"
#include "saga/topology.h"
#include "sagactl.h"

static void topics_usage(FILE *out)
{
    fprintf(out,
            "usage: sagactl topics [list] [--timeout S]\n"
            "       sagactl topics create [--partitions N] [--replication N] [--wait S]\n"
            "\n"
            "list    prints each topic of the suite with its partition count, or 'missing';\n"
            "        exits 1 when a topic is missing\n"
            "create  creates every missing topic (TOPIC_PARTITIONS, TOPIC_REPLICATION_FACTOR\n"
            "        unless given); existing topics are left as they are\n"
            "\n"
            "  --timeout S      give up on an unreachable broker after S seconds (default 10)\n"
            "  --wait S         for create: wait up to S seconds for the broker (default 10)\n"
            "  --partitions N   partitions of new topics\n"
            "  --replication N  replication factor of new topics\n");
}

static long arg_long(const char *opt, const char *v, long min, long max, int *bad)
{
    char *end;
    long n = v ? strtol(v, &end, 10) : 0;
    if (!v || *end || end == v || n < min || n > max) {
        fprintf(stderr, "sagactl topics: %s expects a number from %ld to %ld\n", opt, min, max);
        *bad = 1;
    }
    return n;
}

static int topics_list(const struct saga_config *cfg, int timeout_s)
{
    const char *names[2 * SAGA_SERVICE_COUNT];
    int n = saga_topics_all(names, 2 * SAGA_SERVICE_COUNT), missing = 0, rc;
    rd_kafka_t *rk = sagactl_admin_client(cfg, timeout_s, &rc);

    if (!rk)
        return rc;
    for (int i = 0; i < n; i++) {
        char errstr[256];
        int p = saga_kafka_topic_partitions(rk, names[i], timeout_s * 1000, errstr, sizeof(errstr));
        if (p > 0) {
            printf("%-18s %d partitions\n", names[i], p);
        } else if (p == 0) {
            printf("%-18s missing\n", names[i]);
            missing++;
        } else {
            printf("%-18s error: %s\n", names[i], errstr);
            missing++;
        }
    }
    rd_kafka_destroy(rk);
    return missing ? SAGACTL_EXIT_FAILURE : SAGACTL_EXIT_OK;
}

static int topics_create(const struct saga_config *cfg, int partitions, int replication, int wait_s)
{
    const char *names[2 * SAGA_SERVICE_COUNT];
    struct saga_topic_status st[2 * SAGA_SERVICE_COUNT];
    int n = saga_topics_all(names, 2 * SAGA_SERVICE_COUNT), rc = SAGACTL_EXIT_OK;
    rd_kafka_t *rk = sagactl_admin_client(cfg, wait_s, &rc);

    if (!rk)
        return rc;
    saga_kafka_topics_ensure(rk, names, n, partitions, replication, 15000, st);
    for (int i = 0; i < n; i++) {
        if (st[i].err) {
            printf("%-18s failed: %s\n", st[i].name, st[i].errstr);
            rc = SAGACTL_EXIT_FAILURE;
        } else if (st[i].created) {
            printf("%-18s created, %d partitions\n", st[i].name, st[i].partitions);
        } else {
            printf("%-18s exists, %d partitions%s\n", st[i].name, st[i].partitions,
                   st[i].partitions != partitions ? " (not changed: partitions are only ever "
                                                    "added by hand, since that moves keys)"
                                                  : "");
        }
    }
    rd_kafka_destroy(rk);
    return rc;
}

int sagactl_topics(const struct saga_config *cfg, int argc, char **argv)
{
    int create = 0, bad = 0;
    long partitions = cfg->topic_partitions, replication = cfg->topic_replication, wait_s = 10;
    int i = 1;

    if (i < argc && strcmp(argv[i], "list") == 0) {
        i++;
    } else if (i < argc && strcmp(argv[i], "create") == 0) {
        create = 1;
        i++;
    }
    for (; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            topics_usage(stdout);
            return SAGACTL_EXIT_OK;
        } else if (strcmp(argv[i], "--timeout") == 0 || strcmp(argv[i], "--wait") == 0) {
            wait_s = arg_long(argv[i], v, 1, 3600, &bad);
            i++;
        } else if (create && strcmp(argv[i], "--partitions") == 0) {
            partitions = arg_long(argv[i], v, 1, 10000, &bad);
            i++;
        } else if (create && strcmp(argv[i], "--replication") == 0) {
            replication = arg_long(argv[i], v, 1, 32, &bad);
            i++;
        } else {
            fprintf(stderr, "sagactl topics: unknown argument '%s'\n", argv[i]);
            bad = 1;
        }
        if (bad)
            break;
    }
    if (bad) {
        topics_usage(stderr);
        return SAGACTL_EXIT_USAGE;
    }
    return create ? topics_create(cfg, (int)partitions, (int)replication, (int)wait_s)
                  : topics_list(cfg, (int)wait_s);
}
