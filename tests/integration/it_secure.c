/*
 * The secured stack (scripts/stack --secure, `make up SECURE=1`): Kafka takes only
 * TLS connections with a SCRAM-SHA-512 login, and each program may do only what
 * its ACLs allow (sagactl acls plan). Runs against its own stack (the secure_stack
 * fixture); every refusal is shown next to the same client doing what it is allowed,
 * so a broken login cannot pass for a refusal.
 */
#include <dirent.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <librdkafka/rdkafka.h>

#include "../e2e/e2e.h"
#include "proc.h"
#include "stack_env.h"

/* --- clients with a chosen login ------------------------------------------------ */

struct login {
    const char *protocol; /* security.protocol */
    const char *user;     /* NULL: no SASL settings */
    const char *password;
    int trust_ca; /* 1: the stack's CA; 0: the system's trust store only */
};

struct probe {
    int errors[32]; /* every error the error callback saw, in order */
    int nerrors;
    int delivered;              /* a delivery report arrived */
    rd_kafka_resp_err_t dr_err; /* its error */
};

static void probe_error_cb(rd_kafka_t *rk, int err, const char *reason, void *opaque)
{
    struct probe *p = opaque;
    (void)rk;
    (void)reason;
    if (p->nerrors < 32)
        p->errors[p->nerrors++] = err;
}

static void probe_dr_cb(rd_kafka_t *rk, const rd_kafka_message_t *m, void *opaque)
{
    struct probe *p = opaque;
    (void)rk;
    p->delivered = 1;
    p->dr_err = m->err;
}

/* 1 if the error callback reported err. */
static int saw(const struct probe *p, rd_kafka_resp_err_t err)
{
    for (int i = 0; i < p->nerrors; i++)
        if (p->errors[i] == (int)err)
            return 1;
    return 0;
}

/* The password of a program's Kafka login, from stack.env. */
static const char *password_of(const char *program)
{
    char var[96] = "STACK_KAFKA_PW_";
    size_t o = strlen(var);
    for (const char *p = program; *p && o < sizeof(var) - 1; p++)
        var[o++] = *p == '-' ? '_' : (char)(*p >= 'a' && *p <= 'z' ? *p - 32 : *p);
    var[o] = '\0';
    return stack_env(var);
}

static struct login as(const char *program)
{
    return (struct login){"SASL_SSL", program, password_of(program), 1};
}

static rd_kafka_t *client(rd_kafka_type_t type, struct login l, const char *group, struct probe *p)
{
    rd_kafka_conf_t *c = rd_kafka_conf_new();
    char err[256];
    rd_kafka_t *rk;

    memset(p, 0, sizeof(*p));
    rd_kafka_conf_set(c, "bootstrap.servers", stack_env("KAFKA_BOOTSTRAP_SERVERS"), NULL, 0);
    assert_int_equal(rd_kafka_conf_set(c, "security.protocol", l.protocol, err, sizeof(err)),
                     RD_KAFKA_CONF_OK);
    if (l.user) {
        rd_kafka_conf_set(c, "sasl.mechanisms", "SCRAM-SHA-512", NULL, 0);
        rd_kafka_conf_set(c, "sasl.username", l.user, NULL, 0);
        rd_kafka_conf_set(c, "sasl.password", l.password, NULL, 0);
    }
    if (l.trust_ca)
        rd_kafka_conf_set(c, "ssl.ca.location", stack_env("KAFKA_SSL_CA_LOCATION"), NULL, 0);
    if (group) {
        rd_kafka_conf_set(c, "group.id", group, NULL, 0);
        rd_kafka_conf_set(c, "enable.auto.commit", "false", NULL, 0);
        rd_kafka_conf_set(c, "auto.offset.reset", "earliest", NULL, 0);
        rd_kafka_conf_set(c, "enable.partition.eof", "true", NULL, 0);
    }
    if (type == RD_KAFKA_PRODUCER) {
        rd_kafka_conf_set(c, "message.timeout.ms", "15000", NULL, 0);
        rd_kafka_conf_set(c, "enable.idempotence", "true", NULL, 0);
        rd_kafka_conf_set_dr_msg_cb(c, probe_dr_cb);
    }
    rd_kafka_conf_set(c, "log_level", "0", NULL, 0); /* refusals are expected here */
    rd_kafka_conf_set_error_cb(c, probe_error_cb);
    rd_kafka_conf_set_opaque(c, p);
    rk = rd_kafka_new(type, c, err, sizeof(err));
    if (!rk)
        fail_msg("kafka: %s", err);
    return rk;
}

/* A metadata request; its error (NO_ERROR when the broker answered). */
static rd_kafka_resp_err_t metadata(rd_kafka_t *rk, int timeout_ms)
{
    const struct rd_kafka_metadata *md = NULL;
    rd_kafka_resp_err_t err = rd_kafka_metadata(rk, 0, NULL, &md, timeout_ms);
    if (md)
        rd_kafka_metadata_destroy(md);
    return err;
}

/* --- logins ----------------------------------------------------------------------- */

static void test_plaintext_client_is_refused(void **state)
{
    struct probe p;
    rd_kafka_t *rk =
        client(RD_KAFKA_PRODUCER, (struct login){"PLAINTEXT", NULL, NULL, 0}, NULL, &p);
    (void)state;
    assert_int_not_equal(metadata(rk, 5000), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_destroy(rk);

    rk = client(RD_KAFKA_PRODUCER, as("payment-service"), NULL, &p);
    assert_int_equal(metadata(rk, 20000), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_destroy(rk);
}

/* A client logging in as l gets no answer from the broker, and its error callback
 * reports why. */
static void assert_refused(struct login l, rd_kafka_resp_err_t why)
{
    struct probe p;
    rd_kafka_t *rk = client(RD_KAFKA_PRODUCER, l, NULL, &p);
    assert_int_not_equal(metadata(rk, 8000), RD_KAFKA_RESP_ERR_NO_ERROR);
    rd_kafka_poll(rk, 100); /* serve the error callback */
    assert_true(saw(&p, why));
    rd_kafka_destroy(rk);
}

static void test_wrong_password_is_refused(void **state)
{
    struct login l = as("payment-service");
    (void)state;

    l.password = "not-the-password";
    assert_refused(l, RD_KAFKA_RESP_ERR__AUTHENTICATION);
    l = as("payment-service");
    l.user = "nobody";
    assert_refused(l, RD_KAFKA_RESP_ERR__AUTHENTICATION);
}

static void test_broker_certificate_is_verified(void **state)
{
    struct login l = as("payment-service");
    (void)state;

    /* Without the stack's CA the broker's certificate is not trusted. */
    l.trust_ca = 0;
    assert_refused(l, RD_KAFKA_RESP_ERR__SSL);
}

/* --- ACLs --------------------------------------------------------------------------- */

/* Produces one message to topic as login; the delivery report's error. */
static rd_kafka_resp_err_t produce_as(struct login l, const char *topic)
{
    struct probe p;
    rd_kafka_t *rk = client(RD_KAFKA_PRODUCER, l, NULL, &p);
    rd_kafka_resp_err_t err;
    char key[64];

    stack_unique("it-secure", key, sizeof(key));
    err = rd_kafka_producev(rk, RD_KAFKA_V_TOPIC(topic), RD_KAFKA_V_KEY(key, strlen(key)),
                            RD_KAFKA_V_VALUE("not an event", 12),
                            RD_KAFKA_V_MSGFLAGS(RD_KAFKA_MSG_F_COPY), RD_KAFKA_V_END);
    if (!err) {
        rd_kafka_flush(rk, 30000);
        err = p.delivered ? p.dr_err : RD_KAFKA_RESP_ERR__TIMED_OUT;
    }
    rd_kafka_destroy(rk);
    return err;
}

static void test_a_service_writes_only_its_dead_letter_topic(void **state)
{
    (void)state;
    /* Allowed: its own DLQ (and this is what proves the login works). */
    assert_int_equal(produce_as(as("payment-service"), "payment.dlq"), RD_KAFKA_RESP_ERR_NO_ERROR);
    /* Refused: another service's topic, another service's DLQ, and even its own event
     * topic, which only the relay writes (every event goes through the outbox). */
    assert_int_equal(produce_as(as("payment-service"), "orders"),
                     RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
    assert_int_equal(produce_as(as("payment-service"), "shipping.dlq"),
                     RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
    assert_int_equal(produce_as(as("payment-service"), "payments"),
                     RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
    assert_int_equal(produce_as(as("notification-service"), "notifications"),
                     RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
}

static void test_the_relay_writes_event_topics_and_nothing_else(void **state)
{
    (void)state;
    assert_int_equal(produce_as(as("outbox-relay"), "order.dlq"),
                     RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
    /* (Writing an event topic as the relay is what the saga test below does.) */
}

/*
 * Reads topic as login with group.id group (NULL: a throwaway one): join=1 subscribes
 * (joins the group), join=0 assigns partition 0 (fetches without joining, so the
 * running service that owns the group is not disturbed). The first error seen, or
 * NO_ERROR once a fetch succeeded.
 */
static rd_kafka_resp_err_t consume_as(struct login l, const char *group, int join,
                                      const char *topic)
{
    struct probe p;
    char own[96];
    rd_kafka_t *rk = client(RD_KAFKA_CONSUMER, l, group ? group : stack_unique("it", own, 96), &p);
    rd_kafka_topic_partition_list_t *parts = rd_kafka_topic_partition_list_new(1);
    rd_kafka_resp_err_t err = RD_KAFKA_RESP_ERR__TIMED_OUT;
    time_t until = time(NULL) + 30;

    rd_kafka_poll_set_consumer(rk);
    if (join) {
        rd_kafka_topic_partition_list_add(parts, topic, RD_KAFKA_PARTITION_UA);
        rd_kafka_subscribe(rk, parts);
    } else {
        rd_kafka_topic_partition_list_add(parts, topic, 0)->offset = RD_KAFKA_OFFSET_BEGINNING;
        rd_kafka_assign(rk, parts);
    }
    rd_kafka_topic_partition_list_destroy(parts);
    while (time(NULL) < until) {
        rd_kafka_message_t *m = rd_kafka_consumer_poll(rk, 500);
        /* A message or the end of the partition: a fetch was answered. */
        if (!m)
            continue;
        err = m->err;
        rd_kafka_message_destroy(m);
        /* Without a group of its own, only the topic's answer counts (librdkafka also
         * asks for the coordinator of the throwaway group.id, which is refused too). */
        if (!group && err == RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED) {
            err = RD_KAFKA_RESP_ERR__TIMED_OUT;
            continue;
        }
        if (err != RD_KAFKA_RESP_ERR__PARTITION_EOF)
            break;
        err = RD_KAFKA_RESP_ERR_NO_ERROR;
        break;
    }
    rd_kafka_consumer_close(rk);
    rd_kafka_destroy(rk);
    return err;
}

static void test_a_service_reads_only_its_inputs_with_its_group(void **state)
{
    (void)state;
    /* notification-service reads orders with its group id... */
    assert_int_equal(consume_as(as("notification-service"), "notification-service", 0, "orders"),
                     RD_KAFKA_RESP_ERR_NO_ERROR);
    /* ...but not payments (not one of its inputs; subscribing in its own group
     * briefly rebalances the running notification-service, which is harmless)... */
    assert_int_equal(consume_as(as("notification-service"), "notification-service", 1, "payments"),
                     RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
    /* ...and cannot join another service's group (it could take its partitions). */
    assert_int_equal(consume_as(as("notification-service"), "payment-service", 1, "orders"),
                     RD_KAFKA_RESP_ERR_GROUP_AUTHORIZATION_FAILED);
    /* The relay reads nothing. */
    assert_int_equal(consume_as(as("outbox-relay"), NULL, 0, "orders"),
                     RD_KAFKA_RESP_ERR_TOPIC_AUTHORIZATION_FAILED);
}

/* The lines (header dropped, sorted) that `sagactl ARGS` prints as the admin login. */
static char *sagactl_lines(const char *args)
{
    char cmd[2048], *out = NULL;
    size_t len = 0;
    FILE *f, *mem = open_memstream(&out, &len);
    char line[512];

    snprintf(cmd, sizeof(cmd), "set -a; . '%s' && '%s' acls %s | sort", getenv("SAGA_STACK_ENV"),
             SAGACTL, args);
    assert_non_null(f = popen(cmd, "r"));
    while (fgets(line, sizeof(line), f))
        if (strncmp(line, "PRINCIPAL", 9) != 0)
            fputs(line, mem);
    assert_int_equal(pclose(f), 0);
    fclose(mem);
    return out;
}

static void test_the_broker_holds_exactly_the_planned_acls(void **state)
{
    char *plan = sagactl_lines("plan"), *held = sagactl_lines("list");
    int lines = 0;
    (void)state;
    for (const char *p = plan; *p; p++)
        lines += *p == '\n';
    assert_int_equal(lines, 27);
    assert_string_equal(held, plan);
    free(plan);
    free(held);
}

/* --- a permission missing: the program stops with the cause ------------------------ */

/* Creates (create=1) or deletes the ACL "principal may WRITE topic". */
static void write_acl(const char *principal, const char *topic, int create)
{
    struct probe p;
    rd_kafka_t *rk = client(RD_KAFKA_PRODUCER, as("admin"), NULL, &p);
    rd_kafka_queue_t *q = rd_kafka_queue_new(rk);
    char err[256];
    rd_kafka_event_t *ev;

    if (create) {
        rd_kafka_AclBinding_t *b = rd_kafka_AclBinding_new(
            RD_KAFKA_RESOURCE_TOPIC, topic, RD_KAFKA_RESOURCE_PATTERN_LITERAL, principal, "*",
            RD_KAFKA_ACL_OPERATION_WRITE, RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW, err, sizeof(err));
        assert_non_null(b);
        rd_kafka_CreateAcls(rk, &b, 1, NULL, q);
        rd_kafka_AclBinding_destroy(b);
    } else {
        rd_kafka_AclBindingFilter_t *f = rd_kafka_AclBindingFilter_new(
            RD_KAFKA_RESOURCE_TOPIC, topic, RD_KAFKA_RESOURCE_PATTERN_LITERAL, principal, "*",
            RD_KAFKA_ACL_OPERATION_WRITE, RD_KAFKA_ACL_PERMISSION_TYPE_ALLOW, err, sizeof(err));
        assert_non_null(f);
        rd_kafka_DeleteAcls(rk, &f, 1, NULL, q);
        rd_kafka_AclBinding_destroy(f);
    }
    assert_non_null(ev = rd_kafka_queue_poll(q, 30000));
    if (rd_kafka_event_error(ev))
        fail_msg("%s: %s", create ? "CreateAcls" : "DeleteAcls", rd_kafka_event_error_string(ev));
    rd_kafka_event_destroy(ev);
    rd_kafka_queue_destroy(q);
    rd_kafka_destroy(rk);
}

/*
 * Runs binary with env until it ends with "Cluster authorization failed" in its log (ACL
 * changes take effect asynchronously, so it starts after a moment, and again if it ended
 * for another reason). Returns its wait status; fails if it keeps running.
 */
static int run_until_refused(const char *binary, const char *const *env, const char *log)
{
    int status = -1;
    for (int attempt = 0; attempt < 10; attempt++) {
        pid_t pid;
        usleep(1000000);
        unlink(log);
        pid = proc_start(binary, env, log);
        status = proc_wait(pid, 30000);
        if (status == -1) {
            proc_stop(pid, SIGTERM, 20000); /* leaves the group: the saga test is next */
            write_acl("User:shipping-service", "shipping.dlq", 1);
            fail_msg("%s kept running without a producer id (log %s)", binary, log);
        }
        if (log_wait(log, "Cluster authorization failed", 0))
            break;
    }
    return status;
}

static void test_a_program_refused_a_permission_it_needs_stops_with_the_cause(void **state)
{
    char log[1024], url[2048], listen[64], pw[256], ca[1024], bootstrap[256];
    const char *env[] = {url,
                         listen,
                         bootstrap,
                         "KAFKA_SECURITY_PROTOCOL=SASL_SSL",
                         "KAFKA_SASL_MECHANISMS=SCRAM-SHA-512",
                         "KAFKA_SASL_USERNAME=shipping-service",
                         pw,
                         ca,
                         NULL};
    int status;
    (void)state;

    /* A second shipping-service whose login lost WRITE on shipping.dlq, the only topic
     * it may write: its idempotent dead-letter producer cannot get a producer id, a
     * fatal error (the running one got its id at start). */
    write_acl("User:shipping-service", "shipping.dlq", 0);
    snprintf(log, sizeof(log), "%s/logs/it_secure_shipping.log", stack_env("STACK_DIR"));
    snprintf(url, sizeof(url), "DATABASE_URL=%s", stack_env("SHIPPING_DATABASE_URL"));
    snprintf(listen, sizeof(listen), "HTTP_LISTEN=127.0.0.1:%d",
             atoi(stack_env("STACK_HTTP_PORT_BASE")) + 10);
    snprintf(bootstrap, sizeof(bootstrap), "KAFKA_BOOTSTRAP_SERVERS=%s",
             stack_env("KAFKA_BOOTSTRAP_SERVERS"));
    snprintf(pw, sizeof(pw), "KAFKA_SASL_PASSWORD=%s", password_of("shipping-service"));
    snprintf(ca, sizeof(ca), "KAFKA_SSL_CA_LOCATION=%s", stack_env("KAFKA_SSL_CA_LOCATION"));
    status = run_until_refused(SAGA_BIN_DIR "/shipping-service", env, log);
    assert_true(WIFEXITED(status));
    assert_int_not_equal(WEXITSTATUS(status), 0);
    assert_true(log_wait(log, "fatal kafka error", 0));
    assert_true(log_wait(log, "Cluster authorization failed", 0));

    /* The same for an outbox-relay started with that login: its producers are refused an
     * id, and it exits non-zero naming the source, while the stack's relay (which holds
     * the leader locks) publishes on. */
    snprintf(log, sizeof(log), "%s/logs/it_secure_relay.log", stack_env("STACK_DIR"));
    snprintf(url, sizeof(url), "RELAY_SOURCES=%s", stack_env("RELAY_SOURCES"));
    status = run_until_refused(SAGA_BIN_DIR "/outbox-relay", env, log);
    write_acl("User:shipping-service", "shipping.dlq", 1);
    assert_true(WIFEXITED(status));
    assert_int_not_equal(WEXITSTATUS(status), 0);
    assert_true(log_wait(log, "outbox-relay: fatal kafka error on source", 0));
    assert_true(log_wait(log, "Cluster authorization failed", 0));
}

/* --- the saga, with every program on its own login ----------------------------------- */

static void test_the_saga_completes(void **state)
{
    char confirmed[37], declined[37], report[4096];
    json_t *o;
    (void)state;

    place("cust-alice", "tok_visa", "NL", "sku-book:1", confirmed);
    place("cust-bob", "tok_chargeDeclined", "NL", "sku-mug:2", declined);
    o = wait_order(confirmed, order_settled, 60000);
    assert_non_null(o);
    assert_string_equal(jstr(o, "status"), "CONFIRMED");
    json_decref(o);
    o = wait_order(declined, order_settled, 60000);
    assert_non_null(o);
    assert_string_equal(jstr(o, "status"), "CANCELLED");
    assert_int_equal(timeline_count(o, "InventoryReleased"), 1);
    json_decref(o);
    wait_quiescent(90000);
    if (check_invariants(report, sizeof(report)) != 0)
        fail_msg("invariants: %s", report);
}

/* --- the order API over https --------------------------------------------------------- */

/*
 * Runs cmd with sh, stack.env sourced (as a user who did `set -a; . stack.env`), stderr
 * with stdout; its exit status, and what it printed in *out (malloc'd).
 */
static int shell(const char *cmd, char **out)
{
    char *full = NULL, buf[4096];
    size_t len = 0, n;
    FILE *mem = open_memstream(out, &len), *f;
    int status;

    assert_true(asprintf(&full, "set -a; . '%s'; set +a; exec 2>&1; %s", getenv("SAGA_STACK_ENV"),
                         cmd) > 0);
    assert_non_null(f = popen(full, "r"));
    while ((n = fread(buf, 1, sizeof(buf), f)) > 0)
        fwrite(buf, 1, n, mem);
    status = pclose(f);
    fclose(mem);
    free(full);
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Asserts that `sagactl get id ARGS` (after env, shell assignments or unsets) ends with
 * want and prints every one of the NULL-terminated expected texts. */
static void sagactl_get(const char *env, const char *id, const char *args, int want, ...)
{
    char cmd[4096], *out = NULL;
    const char *text;
    va_list ap;
    int rc;

    snprintf(cmd, sizeof(cmd), "%s '%s' get %s %s", env, SAGACTL, id, args);
    rc = shell(cmd, &out);
    if (rc != want)
        fail_msg("%s: exit %d, not %d:\n%s", cmd, rc, want, out);
    va_start(ap, want);
    while ((text = va_arg(ap, const char *)) != NULL)
        if (!strstr(out, text))
            fail_msg("%s: does not say \"%s\":\n%s", cmd, text, out);
    va_end(ap);
    free(out);
}

static void test_the_api_speaks_https_verified_with_the_stacks_ca(void **state)
{
    const char *url = stack_env("ORDER_API_URL"), *ca = stack_env_opt("ORDER_API_CACERT");
    int port = atoi(stack_env("STACK_HTTP_PORT_BASE"));
    char id[37], plain[128], other[1024], cmd[4096], args[1200], *out = NULL;
    long status;
    (void)state;

    /* stack.env names the API by https, and the stack's CA that signed its certificate. */
    if (strncmp(url, "https://127.0.0.1:", 18) != 0)
        fail_msg("ORDER_API_URL is %s, not https", url);
    assert_non_null(ca);
    assert_string_equal(ca, stack_env("KAFKA_SSL_CA_LOCATION"));

    /* An order placed over https, read with sagactl: the CA from a sourced stack.env... */
    place("cust-alice", "tok_visa", "NL", "sku-book:1", id);
    sagactl_get("", id, "", 0, id, "cust-alice", NULL);
    /* ...or given with --cacert. */
    snprintf(args, sizeof(args), "--cacert '%s'", ca);
    sagactl_get("unset ORDER_API_CACERT;", id, args, 0, id, "cust-alice", NULL);

    /* Plain http on the API's port gets no answer at all. */
    snprintf(plain, sizeof(plain), "http://127.0.0.1:%d/healthz", port);
    assert_null(http_get(plain, &status));
    assert_int_equal(status, 0);

    /* Without the stack's CA (the system's trust store only): refused, saying why. */
    sagactl_get("unset ORDER_API_CACERT;", id, "", 69, "could not be verified", "no CA given",
                "ORDER_API_CACERT", NULL);
    /* With another CA: refused the same way. */
    snprintf(other, sizeof(other), "%s/it_secure_other_ca", stack_env("STACK_DIR"));
    snprintf(cmd, sizeof(cmd),
             "openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes"
             " -keyout '%s.key' -out '%s.pem' -days 1 -subj '/CN=not the stack CA'",
             other, other);
    assert_int_equal(shell(cmd, &out), 0);
    free(out);
    snprintf(args, sizeof(args), "--cacert '%s.pem'", other);
    sagactl_get("", id, args, 69, "could not be verified", "not signed by the CA", NULL);
    /* A --cacert that is not there: a configuration error, before any request. */
    sagactl_get("", id, "--cacert /nonexistent/ca.pem", 78, "/nonexistent/ca.pem", NULL);
    /* The right CA, but a name the certificate was not made for (the same address
     * written as IPv4-mapped IPv6): refused. */
    snprintf(cmd, sizeof(cmd), "ORDER_API_URL='https://[::ffff:127.0.0.1]:%d'", port);
    sagactl_get(cmd, id, "", 69, "could not be verified", "not for the host", NULL);
}

/* --- secrets ------------------------------------------------------------------------- */

/* 1 if needle occurs in the file at path. */
static int file_contains(const char *path, const char *needle)
{
    FILE *f = fopen(path, "r");
    size_t n = strlen(needle), cap = 1 << 20, len;
    char *buf;
    int found = 0;

    if (!f)
        return 0;
    buf = malloc(cap + n);
    assert_non_null(buf);
    len = 0;
    for (;;) {
        size_t got = fread(buf + len, 1, cap, f);
        if (got == 0)
            break;
        len += got;
        if (memmem(buf, len, needle, n)) {
            found = 1;
            break;
        }
        /* keep the last n-1 bytes: a match may straddle two reads */
        if (len >= n) {
            memmove(buf, buf + len - (n - 1), n - 1);
            len = n - 1;
        }
    }
    free(buf);
    fclose(f);
    return found;
}

static void test_no_secret_in_any_log(void **state)
{
    static const char *const secrets[] = {
        "STACK_KAFKA_PW_ADMIN",
        "STACK_KAFKA_PW_CONTROLLER",
        "STACK_KAFKA_PW_OUTBOX_RELAY",
        "STACK_KAFKA_PW_ORDER_SERVICE",
        "STACK_KAFKA_PW_PAYMENT_SERVICE",
        "STACK_KAFKA_PW_NOTIFICATION_SERVICE",
        "STACK_PW_POSTGRES",
        "STACK_PW_OUTBOX_RELAY",
        "STACK_PW_ORDER",
        "STACK_PW_PAYMENT",
    };
    char dir[1024], path[2048];
    struct dirent *e;
    struct stat st;
    DIR *d;
    int files = 0;
    (void)state;

    snprintf(dir, sizeof(dir), "%s/logs", stack_env("STACK_DIR"));
    assert_non_null(d = opendir(dir));
    while ((e = readdir(d)) != NULL) {
        if (e->d_name[0] == '.')
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
            continue;
        files++;
        for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++) {
            const char *pw = stack_env(secrets[i]);
            assert_true(strlen(pw) >= 16);
            if (file_contains(path, pw))
                fail_msg("%s holds the value of %s", path, secrets[i]);
        }
    }
    closedir(d);
    /* kafka.log, the relay's and the five services' logs at least. */
    assert_true(files >= 7);

    /* The files that hold secrets are private. */
    snprintf(path, sizeof(path), "%s/kafka/server.properties", stack_env("STACK_DIR"));
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 077, 0);
    snprintf(path, sizeof(path), "%s/secrets/broker.pem", stack_env("STACK_DIR"));
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 077, 0);
    snprintf(path, sizeof(path), "%s/secrets/api.key", stack_env("STACK_DIR"));
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 077, 0);
    snprintf(path, sizeof(path), "%s/stack.env", stack_env("STACK_DIR"));
    assert_int_equal(stat(path, &st), 0);
    assert_int_equal(st.st_mode & 077, 0);
}

/*
 * No password on a command line (where every local user sees it, in ps or /proc/PID/cmdline):
 * test_stack.sh sampled the command line of everything the secured stack's start-up ran
 * (tests/cli/cmdline_sampler.py, every 20 ms) into logs/startup-cmdlines.log.
 */
static void test_no_secret_on_a_command_line_during_start_up(void **state)
{
    static const char *const secrets[] = {
        "STACK_KAFKA_PW_ADMIN",
        "STACK_KAFKA_PW_CONTROLLER",
        "STACK_KAFKA_PW_OUTBOX_RELAY",
        "STACK_KAFKA_PW_ORDER_SERVICE",
        "STACK_KAFKA_PW_INVENTORY_SERVICE",
        "STACK_KAFKA_PW_PAYMENT_SERVICE",
        "STACK_KAFKA_PW_SHIPPING_SERVICE",
        "STACK_KAFKA_PW_NOTIFICATION_SERVICE",
        "STACK_PW_POSTGRES",
        "STACK_PW_OUTBOX_RELAY",
        "STACK_PW_ORDER",
        "STACK_PW_INVENTORY",
        "STACK_PW_PAYMENT",
        "STACK_PW_SHIPPING",
        "STACK_PW_NOTIFICATION",
    };
    char path[1024];
    (void)state;

    snprintf(path, sizeof(path), "%s/logs/startup-cmdlines.log", stack_env("STACK_DIR"));
    /* The sampler saw the start-up: the broker, and the format step when there was one. */
    if (!file_contains(path, "kafka.Kafka"))
        fail_msg("%s does not show the broker's start: the start-up was not sampled", path);
    if (file_contains(path, "formatted during this start-up: yes") &&
        !file_contains(path, "kafka.tools.StorageTool") &&
        !file_contains(path, "kafka-format.args")) /* its java argument file */
        fail_msg("%s does not show the format step of a fresh start", path);
    for (size_t i = 0; i < sizeof(secrets) / sizeof(secrets[0]); i++) {
        const char *pw = stack_env(secrets[i]);
        assert_true(strlen(pw) >= 16);
        if (file_contains(path, pw))
            fail_msg("the value of %s was on a command line (%s)", secrets[i], path);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plaintext_client_is_refused),
        cmocka_unit_test(test_wrong_password_is_refused),
        cmocka_unit_test(test_broker_certificate_is_verified),
        cmocka_unit_test(test_a_service_writes_only_its_dead_letter_topic),
        cmocka_unit_test(test_the_relay_writes_event_topics_and_nothing_else),
        cmocka_unit_test(test_a_service_reads_only_its_inputs_with_its_group),
        cmocka_unit_test(test_the_broker_holds_exactly_the_planned_acls),
        cmocka_unit_test(test_a_program_refused_a_permission_it_needs_stops_with_the_cause),
        cmocka_unit_test(test_the_saga_completes),
        cmocka_unit_test(test_the_api_speaks_https_verified_with_the_stacks_ca),
        cmocka_unit_test(test_no_secret_on_a_command_line_during_start_up),
        /* last: after the saga ran, every program has logged its work */
        cmocka_unit_test(test_no_secret_in_any_log),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
