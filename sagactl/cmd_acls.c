/*
 * sagactl acls [list] [--timeout S]
 * sagactl acls plan [--principal PROGRAM=PRINCIPAL]...
 * sagactl acls create [--principal PROGRAM=PRINCIPAL]... [--wait S]
 *
 * The Kafka ACLs of least privilege (saga/topology.h: saga_acls_needed): the relay
 * writes the event topics, each service reads its inputs with its own group and
 * writes its own dead-letter topic. Principals default to User:<program>.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "saga/topology.h"
#include "sagactl.h"

#define MAX_ACLS      64
#define MAX_PRINCIPAL 8

struct principal_map {
    const char *program[MAX_PRINCIPAL];
    const char *principal[MAX_PRINCIPAL];
    int n;
};

static void acls_usage(FILE *out)
{
    fprintf(out, "usage: sagactl acls [list] [--timeout S]\n"
                 "       sagactl acls plan [--principal PROGRAM=PRINCIPAL]...\n"
                 "       sagactl acls create [--principal PROGRAM=PRINCIPAL]... [--wait S]\n"
                 "\n"
                 "list    prints every ACL the cluster holds (needs a principal allowed to\n"
                 "        describe them, e.g. a super user)\n"
                 "plan    prints the ACLs the suite needs, without contacting Kafka: the relay\n"
                 "        writes the five event topics; each service reads its input topics with\n"
                 "        its own consumer group and writes its own dead-letter topic\n"
                 "create  creates those ACLs through the Admin API (existing ones are kept;\n"
                 "        nothing is removed)\n"
                 "\n"
                 "  --principal PROGRAM=PRINCIPAL  the Kafka principal a program authenticates\n"
                 "                   as (default User:PROGRAM, e.g. User:payment-service);\n"
                 "                   PROGRAM is outbox-relay or a service such as payment-service\n"
                 "  --timeout S, --wait S  give up on an unreachable broker after S seconds\n"
                 "                   (default 10)\n");
}

static const char *principal_of(const struct principal_map *m, const char *program, char *buf,
                                size_t size)
{
    for (int i = 0; i < m->n; i++)
        if (strcmp(m->program[i], program) == 0)
            return m->principal[i];
    snprintf(buf, size, "User:%s", program);
    return buf;
}

static int add_principal(struct principal_map *m, const char *spec)
{
    const char *eq = spec ? strchr(spec, '=') : NULL;
    static char programs[MAX_PRINCIPAL][64];
    size_t len;

    if (!eq || eq == spec || eq[1] == '\0' || !strchr(eq + 1, ':')) {
        fprintf(stderr, "sagactl acls: --principal expects PROGRAM=TYPE:NAME, e.g. "
                        "payment-service=User:payments-prod\n");
        return -1;
    }
    len = (size_t)(eq - spec);
    if (m->n == MAX_PRINCIPAL || len >= sizeof(programs[0])) {
        fprintf(stderr, "sagactl acls: too many or too long --principal options\n");
        return -1;
    }
    memcpy(programs[m->n], spec, len);
    programs[m->n][len] = '\0';
    if (strcmp(programs[m->n], SAGA_RELAY_PROGRAM) != 0 && !saga_service_find(programs[m->n])) {
        fprintf(stderr,
                "sagactl acls: --principal: '%s' is not outbox-relay or a service program\n",
                programs[m->n]);
        return -1;
    }
    m->program[m->n] = saga_service_find(programs[m->n])
                           ? saga_service_find(programs[m->n])->program
                           : SAGA_RELAY_PROGRAM;
    m->principal[m->n] = eq + 1;
    m->n++;
    return 0;
}

static const char *operation_name(enum saga_acl_operation op)
{
    return op == SAGA_ACL_WRITE ? "WRITE" : "READ";
}

static const char *resource_name(enum saga_acl_resource r)
{
    return r == SAGA_ACL_GROUP ? "GROUP" : "TOPIC";
}

static rd_kafka_ResourceType_t resource_type(enum saga_acl_resource r)
{
    return r == SAGA_ACL_GROUP ? RD_KAFKA_RESOURCE_GROUP : RD_KAFKA_RESOURCE_TOPIC;
}

static rd_kafka_AclOperation_t operation_type(enum saga_acl_operation op)
{
    return op == SAGA_ACL_WRITE ? RD_KAFKA_ACL_OPERATION_WRITE : RD_KAFKA_ACL_OPERATION_READ;
}

static void print_row(const char *principal, const char *permission, const char *operation,
                      const char *resource, const char *pattern, const char *name, const char *host)
{
    printf("%-28s %-6s %-16s %-6s %-9s %-20s %s\n", principal, permission, operation, resource,
           pattern, name, host);
}

static int acls_plan(const struct principal_map *m)
{
    struct saga_acl a[MAX_ACLS];
    int n = saga_acls_needed(a, MAX_ACLS);
    char buf[96];

    print_row("PRINCIPAL", "PERMIT", "OPERATION", "TYPE", "PATTERN", "NAME", "HOST");
    for (int i = 0; i < n && i < MAX_ACLS; i++)
        print_row(principal_of(m, a[i].program, buf, sizeof(buf)), "ALLOW",
                  operation_name(a[i].operation), resource_name(a[i].resource), "LITERAL",
                  a[i].name, "*");
    return SAGACTL_EXIT_OK;
}

/* Waits for the admin result of type on q; NULL (with a message) on a timeout. */
static rd_kafka_event_t *admin_result(rd_kafka_queue_t *q, const char *what)
{
    rd_kafka_event_t *ev = rd_kafka_queue_poll(q, 30000);
    if (!ev) {
        fprintf(stderr, "sagactl acls: no answer from the broker to %s\n", what);
        return NULL;
    }
    if (rd_kafka_event_error(ev)) {
        fprintf(stderr, "sagactl acls: %s: %s\n", what, rd_kafka_event_error_string(ev));
        rd_kafka_event_destroy(ev);
        return NULL;
    }
    return ev;
}

/* Every ACL the broker lists, as a DescribeAcls result event (the caller destroys it);
 * NULL with a message when it does not answer. */
static rd_kafka_event_t *describe_all(rd_kafka_t *rk)
{
    char errstr[256];
    rd_kafka_AclBindingFilter_t *f = rd_kafka_AclBindingFilter_new(
        RD_KAFKA_RESOURCE_ANY, NULL, RD_KAFKA_RESOURCE_PATTERN_ANY, NULL, NULL,
        RD_KAFKA_ACL_OPERATION_ANY, RD_KAFKA_ACL_PERMISSION_TYPE_ANY, errstr, sizeof(errstr));
    rd_kafka_queue_t *q;
    rd_kafka_event_t *ev;

    if (!f) {
        fprintf(stderr, "sagactl acls: %s\n", errstr);
        return NULL;
    }
    q = rd_kafka_queue_new(rk);
    rd_kafka_DescribeAcls(rk, f, NULL, q);
    ev = admin_result(q, "DescribeAcls");
    rd_kafka_queue_destroy(q);
    rd_kafka_AclBinding_destroy(f);
    return ev;
}

/*
 * 1 once the broker lists every ACL of a: Kafka applies new ACLs asynchronously
 * (through the metadata log), so a program started right after CreateAcls could
 * still be refused; 0 if not yet, -1 if the broker cannot be asked.
 */
static int acls_in_force(rd_kafka_t *rk, const struct saga_acl *a, int n,
                         const struct principal_map *m)
{
    rd_kafka_event_t *ev = describe_all(rk);
    const rd_kafka_AclBinding_t **acls;
    size_t nacls = 0;
    char buf[96];
    int found = 0, answered = ev != NULL;

    if (ev) {
        acls = rd_kafka_DescribeAcls_result_acls(rd_kafka_event_DescribeAcls_result(ev), &nacls);
        for (int i = 0; i < n; i++) {
            const char *who = principal_of(m, a[i].program, buf, sizeof(buf));
            for (size_t j = 0; j < nacls; j++) {
                if (rd_kafka_AclBinding_restype(acls[j]) == resource_type(a[i].resource) &&
                    strcmp(rd_kafka_AclBinding_name(acls[j]), a[i].name) == 0 &&
                    strcmp(rd_kafka_AclBinding_principal(acls[j]), who) == 0 &&
                    rd_kafka_AclBinding_operation(acls[j]) == operation_type(a[i].operation) &&
                    rd_kafka_AclBinding_permission_type(acls[j]) ==
                        RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW) {
                    found++;
                    break;
                }
            }
        }
        rd_kafka_event_destroy(ev);
    }
    return answered ? found == n : -1;
}

static int acls_create(const struct saga_config *cfg, const struct principal_map *m, int wait_s)
{
    struct saga_acl a[MAX_ACLS];
    rd_kafka_AclBinding_t *b[MAX_ACLS];
    int n = saga_acls_needed(a, MAX_ACLS), rc = SAGACTL_EXIT_OK;
    char buf[96], errstr[256];
    rd_kafka_t *rk;
    rd_kafka_queue_t *q;
    rd_kafka_event_t *ev;
    const rd_kafka_acl_result_t **res;
    size_t nres = 0;

    if (n > MAX_ACLS)
        n = MAX_ACLS;
    for (int i = 0; i < n; i++) {
        b[i] = rd_kafka_AclBinding_new(
            resource_type(a[i].resource), a[i].name, RD_KAFKA_RESOURCE_PATTERN_LITERAL,
            principal_of(m, a[i].program, buf, sizeof(buf)), "*", operation_type(a[i].operation),
            RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW, errstr, sizeof(errstr));
        if (!b[i]) {
            fprintf(stderr, "sagactl acls: %s: %s\n", a[i].name, errstr);
            rd_kafka_AclBinding_destroy_array(b, (size_t)i);
            return SAGACTL_EXIT_USAGE;
        }
    }
    if (!(rk = sagactl_admin_client(cfg, wait_s, &rc))) {
        rd_kafka_AclBinding_destroy_array(b, (size_t)n);
        return rc;
    }
    q = rd_kafka_queue_new(rk);
    rd_kafka_CreateAcls(rk, b, (size_t)n, NULL, q);
    if ((ev = admin_result(q, "CreateAcls")) != NULL) {
        res = rd_kafka_CreateAcls_result_acls(rd_kafka_event_CreateAcls_result(ev), &nres);
        for (size_t i = 0; i < nres && i < (size_t)n; i++) {
            const rd_kafka_error_t *e = rd_kafka_acl_result_error(res[i]);
            const char *who = principal_of(m, a[i].program, buf, sizeof(buf));
            if (e && rd_kafka_error_code(e)) {
                printf("%-28s %-5s %-5s %-18s failed: %s\n", who, operation_name(a[i].operation),
                       resource_name(a[i].resource), a[i].name, rd_kafka_error_string(e));
                rc = SAGACTL_EXIT_FAILURE;
            } else {
                printf("%-28s %-5s %-5s %-18s allowed\n", who, operation_name(a[i].operation),
                       resource_name(a[i].resource), a[i].name);
            }
        }
        if (nres != (size_t)n)
            rc = SAGACTL_EXIT_FAILURE;
        rd_kafka_event_destroy(ev);
    } else {
        rc = SAGACTL_EXIT_FAILURE;
    }
    if (rc == SAGACTL_EXIT_OK) {
        /* Return only once the broker enforces them. */
        time_t deadline = time(NULL) + wait_s;
        int ok;
        while ((ok = acls_in_force(rk, a, n, m)) == 0 && time(NULL) < deadline) {
            struct timespec ts = {0, 100 * 1000 * 1000};
            nanosleep(&ts, NULL);
        }
        if (ok != 1) {
            fprintf(stderr, "sagactl acls: the broker does not list the new ACLs after %ds\n",
                    wait_s);
            rc = SAGACTL_EXIT_FAILURE;
        }
    }
    rd_kafka_queue_destroy(q);
    rd_kafka_AclBinding_destroy_array(b, (size_t)n);
    rd_kafka_destroy(rk);
    return rc;
}

static int acls_list(const struct saga_config *cfg, int wait_s)
{
    const rd_kafka_AclBinding_t **acls;
    rd_kafka_event_t *ev;
    rd_kafka_t *rk;
    size_t n = 0;
    int rc;

    if (!(rk = sagactl_admin_client(cfg, wait_s, &rc)))
        return rc;
    rc = SAGACTL_EXIT_FAILURE;
    if ((ev = describe_all(rk)) != NULL) {
        rc = SAGACTL_EXIT_OK;
        acls = rd_kafka_DescribeAcls_result_acls(rd_kafka_event_DescribeAcls_result(ev), &n);
        if (n == 0)
            fprintf(stderr, "sagactl acls: no ACLs visible (listing them needs DESCRIBE on the "
                            "cluster, e.g. a super user; librdkafka reports a refusal as an "
                            "empty list)\n");
        print_row("PRINCIPAL", "PERMIT", "OPERATION", "TYPE", "PATTERN", "NAME", "HOST");
        for (size_t i = 0; i < n; i++)
            print_row(rd_kafka_AclBinding_principal(acls[i]),
                      rd_kafka_AclPermissionType_name(rd_kafka_AclBinding_permission_type(acls[i])),
                      rd_kafka_AclOperation_name(rd_kafka_AclBinding_operation(acls[i])),
                      /* Kafka's CLUSTER resource is librdkafka's BROKER type (4) */
                      rd_kafka_AclBinding_restype(acls[i]) == RD_KAFKA_RESOURCE_BROKER
                          ? "CLUSTER"
                          : rd_kafka_ResourceType_name(rd_kafka_AclBinding_restype(acls[i])),
                      rd_kafka_ResourcePatternType_name(
                          rd_kafka_AclBinding_resource_pattern_type(acls[i])),
                      rd_kafka_AclBinding_name(acls[i]), rd_kafka_AclBinding_host(acls[i]));
        rd_kafka_event_destroy(ev);
    }
    rd_kafka_destroy(rk);
    return rc;
}

int sagactl_acls(const struct saga_config *cfg, int argc, char **argv)
{
    struct principal_map m = {.n = 0};
    enum { LIST, PLAN, CREATE } what = LIST;
    long wait_s = 10;
    int i = 1;

    if (i < argc && strcmp(argv[i], "list") == 0) {
        i++;
    } else if (i < argc && strcmp(argv[i], "plan") == 0) {
        what = PLAN;
        i++;
    } else if (i < argc && strcmp(argv[i], "create") == 0) {
        what = CREATE;
        i++;
    }
    for (; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            acls_usage(stdout);
            return SAGACTL_EXIT_OK;
        } else if (what != LIST && strcmp(argv[i], "--principal") == 0) {
            if (add_principal(&m, v) != 0)
                return SAGACTL_EXIT_USAGE;
            i++;
        } else if (what != PLAN &&
                   (strcmp(argv[i], "--timeout") == 0 || strcmp(argv[i], "--wait") == 0)) {
            if ((wait_s = sagactl_arg_seconds("acls", argv[i], v, 3600)) < 1) {
                if (wait_s == 0)
                    fprintf(stderr, "sagactl acls: %s must be at least 1 second\n", argv[i]);
                return SAGACTL_EXIT_USAGE;
            }
            i++;
        } else {
            fprintf(stderr, "sagactl acls: unknown argument '%s'\n", argv[i]);
            acls_usage(stderr);
            return SAGACTL_EXIT_USAGE;
        }
    }
    switch (what) {
    case PLAN:
        return acls_plan(&m);
    case CREATE:
        return acls_create(cfg, &m, (int)wait_s);
    default:
        return acls_list(cfg, (int)wait_s);
    }
}
