/*
 * sagactl: the operator and user command line of the order saga suite.
 */
#include <stdio.h>
#include <string.h>

#include "sagactl.h"

static void usage(FILE *out)
{
    fprintf(
        out,
        "usage: sagactl <command> [options]\n"
        "\n"
        "commands:\n"
        "  topics [list]        show the suite's topics and their partitions\n"
        "  topics create        create the missing topics through the Admin API\n"
        "  acls [list]          the ACLs the cluster holds\n"
        "  acls plan|create     the Kafka ACLs of least privilege the suite needs:\n"
        "                       print them, or create them through the Admin API\n"
        "  dlq list SERVICE     the dead letters of a service\n"
        "  dlq show SERVICE P:O one dead letter with its headers\n"
        "  dlq replay SERVICE (P:O ... | --all)  send dead letters back to their topic\n"
        "  schemas [list]       the events this binary ships, with fingerprints\n"
        "  schemas check        refuse incompatible changes to schemas/\n"
        "  schemas docs         print the event catalogue (docs/EVENTS.md)\n"
        "  place [options]      place an order through the order API, print its id;\n"
        "                       --wait follows its saga to the end\n"
        "  get ORDER_ID         an order: outcome, compensation, saga timeline\n"
        "  cancel ORDER_ID      cancel a PENDING order through the order API\n"
        "  stuck                sagas PENDING for too long, and the step they wait on\n"
        "  explain ORDER_ID     a saga's steps done, the steps owed next and by whom,\n"
        "                       and the time left before it times out\n"
        "  choreography         the saga as declared: who reacts to what, what undoes\n"
        "                       what (--json, --mermaid)\n"
        "  watch [ORDER_ID]     follow the events of every order (or of one) live\n"
        "  tail TOPIC           any topic's messages as JSON lines (for jq)\n"
        "  token mint --sub S --role customer|operator  a bearer token for the\n"
        "                       order API, signed with the stack's HS256 secret\n"
        "  version              print the version\n"
        "  help                 print this help\n"
        "\n"
        "Run 'sagactl <command> --help' for a command's options.\n"
        "\n"
        "environment: KAFKA_BOOTSTRAP_SERVERS (default 127.0.0.1:19092), any KAFKA_*\n"
        "librdkafka property, SCHEMA_REGISTRY_URL (decoding Confluent framing),\n"
        "TOPIC_PARTITIONS (default 6), TOPIC_REPLICATION_FACTOR (default 1), LOG_LEVEL,\n"
        "ORDER_API_URL (default http://127.0.0.1:8080) for place, get, cancel, stuck, explain,\n"
        "ORDER_API_CACERT (the CA of an https API's certificate; or --cacert FILE),\n"
        "SAGA_TOKEN (the bearer token; else a sourced stack.env's STACK_TOKEN_<CUSTOMER>\n"
        "for place, STACK_OPERATOR_TOKEN otherwise),\n"
        "NO_COLOR (set: no colours or progress even on a terminal).\n"
        "\n"
        "exit codes: 0 ok, 1 failed or not as expected, 64 bad usage, 69 Kafka or the\n"
        "order API unreachable, 78 bad configuration\n");
}

int main(int argc, char **argv)
{
    struct saga_config cfg;
    char errstr[512];
    int rc;

    if (argc < 2) {
        usage(stderr);
        return SAGACTL_EXIT_USAGE;
    }
    if (strcmp(argv[1], "help") == 0 || strcmp(argv[1], "--help") == 0 ||
        strcmp(argv[1], "-h") == 0) {
        usage(stdout);
        return SAGACTL_EXIT_OK;
    }
    if (strcmp(argv[1], "version") == 0 || strcmp(argv[1], "--version") == 0) {
        printf("sagactl %s\n", SAGA_VERSION);
        return SAGACTL_EXIT_OK;
    }
    /* These need no Kafka configuration. */
    if (strcmp(argv[1], "schemas") == 0)
        return sagactl_schemas(argc - 1, argv + 1);
    if (strcmp(argv[1], "token") == 0)
        return sagactl_token(argc - 1, argv + 1);
    if (strcmp(argv[1], "choreography") == 0)
        return sagactl_choreography(argc - 1, argv + 1);
    /* These talk to the order API. */
    if (!strcmp(argv[1], "place") || !strcmp(argv[1], "get") || !strcmp(argv[1], "cancel") ||
        !strcmp(argv[1], "stuck") || !strcmp(argv[1], "explain")) {
        if ((rc = sagactl_api_options(argv[1], &argc, argv)) != 0)
            return rc;
    }
    if (strcmp(argv[1], "place") == 0)
        return sagactl_place(argc - 1, argv + 1);
    if (strcmp(argv[1], "get") == 0)
        return sagactl_get(argc - 1, argv + 1);
    if (strcmp(argv[1], "cancel") == 0)
        return sagactl_cancel(argc - 1, argv + 1);
    if (strcmp(argv[1], "stuck") == 0)
        return sagactl_stuck(argc - 1, argv + 1);
    if (strcmp(argv[1], "explain") == 0)
        return sagactl_explain(argc - 1, argv + 1);
    if (saga_config_load(&cfg, "sagactl", 0, 0, errstr, sizeof(errstr)) != SAGA_OK) {
        fprintf(stderr, "sagactl: config: %s\n", errstr);
        return SAGACTL_EXIT_CONFIG;
    }
    saga_log_init("sagactl", cfg.log_level);

    if (strcmp(argv[1], "topics") == 0) {
        rc = sagactl_topics(&cfg, argc - 1, argv + 1);
    } else if (strcmp(argv[1], "acls") == 0) {
        rc = sagactl_acls(&cfg, argc - 1, argv + 1);
    } else if (strcmp(argv[1], "dlq") == 0) {
        rc = sagactl_dlq(&cfg, argc - 1, argv + 1);
    } else if (strcmp(argv[1], "watch") == 0) {
        rc = sagactl_watch(&cfg, argc - 1, argv + 1);
    } else if (strcmp(argv[1], "tail") == 0) {
        rc = sagactl_tail(&cfg, argc - 1, argv + 1);
    } else {
        fprintf(stderr, "sagactl: unknown command '%s' (try 'sagactl help')\n", argv[1]);
        rc = SAGACTL_EXIT_USAGE;
    }
    saga_config_release(&cfg);
    return rc;
}
