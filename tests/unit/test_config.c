#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "saga/config.h"
#include "saga/kafka.h"

static int clear_env(void **state)
{
    unsetenv("DATABASE_URL");
    unsetenv("LOG_LEVEL");
    unsetenv("HTTP_LISTEN");
    unsetenv("SCHEMA_REGISTRY_URL");
    unsetenv("TOPIC_PARTITIONS");
    unsetenv("KAFKA_BOOTSTRAP_SERVERS");
    unsetenv("KAFKA_CLIENT_ID");
    unsetenv("KAFKA_NO_SUCH_THING");
    unsetenv("SAGA_TIMEOUT");
    return 0;
}

static void test_durations(void **state)
{
    int64_t ms;
    assert_int_equal(saga_parse_duration_ms("30s", &ms), SAGA_OK);
    assert_int_equal(ms, 30000);
    assert_int_equal(saga_parse_duration_ms("250ms", &ms), SAGA_OK);
    assert_int_equal(ms, 250);
    assert_int_equal(saga_parse_duration_ms("2m", &ms), SAGA_OK);
    assert_int_equal(ms, 120000);
    assert_int_equal(saga_parse_duration_ms("1h", &ms), SAGA_OK);
    assert_int_equal(ms, 3600000);
    assert_int_equal(saga_parse_duration_ms("45", &ms), SAGA_OK);
    assert_int_equal(ms, 45000);
    assert_int_equal(saga_parse_duration_ms("1.5s", &ms), SAGA_OK);
    assert_int_equal(ms, 1500);
    assert_int_equal(saga_parse_duration_ms("abc", &ms), SAGA_ERR_INVALID);
    assert_int_equal(saga_parse_duration_ms("10 s", &ms), SAGA_ERR_INVALID);
    assert_int_equal(saga_parse_duration_ms("-1s", &ms), SAGA_ERR_INVALID);
    assert_int_equal(saga_parse_duration_ms("5d", &ms), SAGA_ERR_INVALID);
    assert_int_equal(saga_parse_duration_ms("", &ms), SAGA_ERR_INVALID);
    /* strtod reads these, a duration must not (NAN once reached a float-to-int cast). */
    assert_int_equal(saga_parse_duration_ms("NAN", &ms), SAGA_ERR_INVALID);
    assert_int_equal(saga_parse_duration_ms("nans", &ms), SAGA_ERR_INVALID);
    assert_int_equal(saga_parse_duration_ms("inf", &ms), SAGA_ERR_INVALID);
    assert_int_equal(saga_parse_duration_ms("1e3ms", &ms), SAGA_ERR_INVALID);
    assert_int_equal(saga_parse_duration_ms("0x10s", &ms), SAGA_ERR_INVALID);
    assert_int_equal(saga_parse_duration_ms(".5s", &ms), SAGA_OK);
    assert_int_equal(ms, 500);
}

static void test_env_duration_names_variable(void **state)
{
    char err[256];
    int64_t ms;
    setenv("SAGA_TIMEOUT", "soon", 1);
    assert_int_equal(
        saga_env_duration_ms("SAGA_TIMEOUT", 30000, 1000, 60000, &ms, err, sizeof(err)),
        SAGA_ERR_CONFIG);
    assert_non_null(strstr(err, "SAGA_TIMEOUT"));
    assert_non_null(strstr(err, "soon"));
    setenv("SAGA_TIMEOUT", "10m", 1);
    assert_int_equal(
        saga_env_duration_ms("SAGA_TIMEOUT", 30000, 1000, 60000, &ms, err, sizeof(err)),
        SAGA_ERR_CONFIG);
    assert_non_null(strstr(err, "out of range"));
    setenv("SAGA_TIMEOUT", "", 1); /* empty means unset */
    assert_int_equal(
        saga_env_duration_ms("SAGA_TIMEOUT", 30000, 1000, 60000, &ms, err, sizeof(err)), SAGA_OK);
    assert_int_equal(ms, 30000);
}

static void test_env_long(void **state)
{
    char err[256];
    long n;
    setenv("TOPIC_PARTITIONS", "12", 1);
    assert_int_equal(saga_env_long("TOPIC_PARTITIONS", 6, 1, 100, &n, err, sizeof(err)), SAGA_OK);
    assert_int_equal(n, 12);
    setenv("TOPIC_PARTITIONS", "12x", 1);
    assert_int_equal(saga_env_long("TOPIC_PARTITIONS", 6, 1, 100, &n, err, sizeof(err)),
                     SAGA_ERR_CONFIG);
    assert_non_null(strstr(err, "TOPIC_PARTITIONS"));
    setenv("TOPIC_PARTITIONS", "0", 1);
    assert_int_equal(saga_env_long("TOPIC_PARTITIONS", 6, 1, 100, &n, err, sizeof(err)),
                     SAGA_ERR_CONFIG);
}

static void test_hostport(void **state)
{
    char host[64];
    int port;
    assert_int_equal(saga_parse_hostport("127.0.0.1:8080", host, sizeof(host), &port), SAGA_OK);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 8080);
    assert_int_equal(saga_parse_hostport("[::1]:9000", host, sizeof(host), &port), SAGA_OK);
    assert_string_equal(host, "::1");
    assert_int_equal(saga_parse_hostport(":81", host, sizeof(host), &port), SAGA_OK);
    assert_string_equal(host, "");
    assert_int_equal(saga_parse_hostport("localhost", host, sizeof(host), &port), SAGA_ERR_INVALID);
    /* Port 0: any free port (tests run several relays on one host). */
    assert_int_equal(saga_parse_hostport("h:0", host, sizeof(host), &port), SAGA_OK);
    assert_int_equal(port, 0);
    assert_int_equal(saga_parse_hostport("h:-1", host, sizeof(host), &port), SAGA_ERR_INVALID);
    assert_int_equal(saga_parse_hostport("h:70000", host, sizeof(host), &port), SAGA_ERR_INVALID);
    assert_int_equal(saga_parse_hostport("::1:80", host, sizeof(host), &port), SAGA_ERR_INVALID);
}

static void test_redact(void **state)
{
    char buf[256];
    assert_string_equal(saga_redact_url("postgresql://u:secret@h:5432/db", buf, sizeof(buf)),
                        "postgresql://u:****@h:5432/db");
    assert_string_equal(saga_redact_url("postgresql://u@h/db", buf, sizeof(buf)),
                        "postgresql://u@h/db");
    assert_string_equal(saga_redact_url("host=h password=secret dbname=d", buf, sizeof(buf)),
                        "host=h password=**** dbname=d");
    assert_string_equal(saga_redact_url("host=h password='a b\\'c' dbname=d", buf, sizeof(buf)),
                        "host=h password=**** dbname=d");
    /* Multi-host strings (a primary and its standby, docs/DEPLOYING.md). */
    assert_string_equal(
        saga_redact_url("postgresql://u:secret@h1:5432,h2:5433/db?target_session_attrs=read-write",
                        buf, sizeof(buf)),
        "postgresql://u:****@h1:5432,h2:5433/db?target_session_attrs=read-write");
    assert_string_equal(
        saga_redact_url("postgresql://u:secret@/db?host=/s,/s&port=1,2", buf, sizeof(buf)),
        "postgresql://u:****@/db?host=/s,/s&port=1,2");
    assert_string_equal(saga_redact_url("host=h1,h2 port=1,2 password=secret "
                                        "target_session_attrs=read-write",
                                        buf, sizeof(buf)),
                        "host=h1,h2 port=1,2 password=**** target_session_attrs=read-write");
    /* A URI may carry the password as a parameter instead. */
    assert_string_equal(
        saga_redact_url("postgresql://u@h1:1,h2:2/db?password=secret&"
                        "target_session_attrs=read-write",
                        buf, sizeof(buf)),
        "postgresql://u@h1:1,h2:2/db?password=****&target_session_attrs=read-write");
    assert_string_equal(
        saga_redact_url("postgresql://u@h/db?sslmode=require&password=secret", buf, sizeof(buf)),
        "postgresql://u@h/db?sslmode=require&password=****");
}

/* Every way libpq takes a password is masked: a second password= (libpq keeps the last),
 * sslpassword= before it, spaces around '=', a percent-encoded parameter name. */
static void test_redact_every_password(void **state)
{
    static const char *const urls[] = {
        "host=h sslpassword=x password=secret",
        "host=h password = secret dbname=d",
        "host=h junk password=secret",
        "password=a password=secret host=h",
        "postgresql://u@h/db?password=a&password=secret",
        "postgresql://u@h/db?pass%77ord=secret",
        "postgresql://u@h/db?sslpassword=x&password=secret",
        "postgresql://u:p?secret@h/db", /* libpq: user u, password p?secret */
        /* a key=value string is one whatever "://" a value holds (libpq: URI only by prefix) */
        "host=h password=ab://secret",
        "host=h password=secret application_name=http://x",
        /* a '/' left unencoded in the password (base64 has them): libpq reads host u, port
         * ab and no password, but it is the user's password all the same */
        "postgresql://u:ab/secret@h/db",
        "postgresql://u:Zm9v/secret==@h1:5432,h2:5432/db?sslmode=require",
        /* both '/' and '?' left unencoded in the password */
        "postgresql://u:ab/c?secret@h/db",
        "postgresql://u:ab/c?d=secret@h/db",
        /* a scheme libpq does not take for a URI: a key=value string (refused by libpq),
         * whose password= is masked all the same */
        "a://b=1 password=secret",
        "http://x password=secret",
        /* a password holding a space: an SMTP_URL (any scheme libpq does not know) */
        "smtp://mailer:secret word@h:25",
        "smtp://mailer:pass secret@h:25",
        /* a password= appended to a URI with a space: libpq reads it into the dbname */
        "postgresql://u@h/db password=secret",
        /* the user information without its "@host": libpq reads host u, port secret */
        "postgresql://u:secret",
        "postgresql://u:secret/db",
        /* a password beginning with digits, holding '/' then '?' with no '=' after it */
        "postgresql://u:123/secret?x@h/db",
        /* a key left empty before the password: libpq reads "password=secret" as its value */
        "host=h user= password=secret",
        "host=h user =  password=secret",
    };
    char buf[256];
    (void)state;
    for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
        saga_redact_url(urls[i], buf, sizeof(buf));
        if (strstr(buf, "secret"))
            fail_msg("redacted \"%s\" still shows the password: %s", urls[i], buf);
    }
    /* What is not a password stays as it was. */
    assert_string_equal(saga_redact_url("host=h junk  password = 'a b' x=1", buf, sizeof(buf)),
                        "host=h junk  password=**** x=1");
    assert_string_equal(saga_redact_url("postgresql://u:p@h/db?a=1&&Password=s&b", buf, 26),
                        "postgresql://u:****@h/db?");
    /* an '@' in a query value is no user information */
    assert_string_equal(saga_redact_url("postgresql://h:5432/db?user=a@b", buf, sizeof(buf)),
                        "postgresql://h:5432/db?user=a@b");
    assert_string_equal(
        saga_redact_url("postgresql://h1:5432,h2:5433/db?options=a@b", buf, sizeof(buf)),
        "postgresql://h1:5432,h2:5433/db?options=a@b");
    /* nor after an IPv6 host, with or without its port */
    assert_string_equal(saga_redact_url("postgresql://[::1]:5432/db?user=a@b", buf, sizeof(buf)),
                        "postgresql://[::1]:5432/db?user=a@b");
    assert_string_equal(saga_redact_url("postgresql://[::1]/db?user=a@b", buf, sizeof(buf)),
                        "postgresql://[::1]/db?user=a@b");
    /* a port that is no number after the user information is shown (it is a port) */
    assert_string_equal(saga_redact_url("postgresql://u:pw@h:$PORT/db", buf, sizeof(buf)),
                        "postgresql://u:****@h:$PORT/db");
    assert_string_equal(saga_redact_url("smtp://mailer:pw@h:25", buf, sizeof(buf)),
                        "smtp://mailer:****@h:25");
}

/* A connection string libpq refuses to parse: its message quotes the offending token,
 * which may be the password itself. */
static void test_load_parse_error_hides_password(void **state)
{
    static const char *const urls[] = {
        "postgresql://u:sec%zzret@h/db",
        "postgresql://u@h/db?password=sec%zzret",
        "postgresql://u@h/db?password=sec%00ret",
        /* a '"' in the token: libpq's quotes around it are not balanced any more */
        "postgresql://u:k\"9%Qzsecret@h/db",
        "postgresql://u@h/db?password=ab\"secret%zz",
        /* an unencoded '/' in the password: libpq reads host u and port "ab" and would say
         * so (quoting it) only at every connection attempt */
        "postgresql://u:sec/ret@h/db",
        /* a key left empty before the password (a template's unset variable): libpq reads
         * "password=sec" as its value, and would quote it when it looks at it (sslmode at
         * every connection attempt) */
        "host=h target_session_attrs= password=sec",
        "host=h sslmode= password=sec",
        "host=h user= password=sec dbname=d",
    };
    struct saga_config cfg;
    char err[512];
    (void)state;
    for (size_t i = 0; i < sizeof(urls) / sizeof(urls[0]); i++) {
        setenv("DATABASE_URL", urls[i], 1);
        assert_int_equal(
            saga_config_load(&cfg, "x-service", SAGA_CONFIG_DATABASE, 8080, err, sizeof(err)),
            SAGA_ERR_CONFIG);
        assert_non_null(strstr(err, "DATABASE_URL"));
        if (strstr(err, "sec"))
            fail_msg("error for \"%s\" shows the password: %s", urls[i], err);
    }
}

/* A value holding "password=" that is no swallowed parameter is taken as it is. */
static void test_load_options_with_password_setting(void **state)
{
    struct saga_config cfg;
    char err[512] = "";
    (void)state;
    setenv("DATABASE_URL", "host=h options='-c password_encryption=scram-sha-256'", 1);
    assert_int_equal(
        saga_config_load(&cfg, "x-service", SAGA_CONFIG_DATABASE, 8080, err, sizeof(err)), SAGA_OK);
    saga_config_release(&cfg);
}

static void test_load_requires_database_url(void **state)
{
    struct saga_config cfg;
    char err[512];
    assert_int_equal(
        saga_config_load(&cfg, "x-service", SAGA_CONFIG_DATABASE, 8080, err, sizeof(err)),
        SAGA_ERR_CONFIG);
    assert_non_null(strstr(err, "DATABASE_URL is not set"));

    setenv("DATABASE_URL", "postgresql://u:pw@h/db?bogus=1", 1);
    assert_int_equal(
        saga_config_load(&cfg, "x-service", SAGA_CONFIG_DATABASE, 8080, err, sizeof(err)),
        SAGA_ERR_CONFIG);
    assert_non_null(strstr(err, "DATABASE_URL"));
    assert_null(strstr(err, "pw")); /* the password never reaches a message */
    assert_null(strchr(err, '\n'));
}

/* A multi-host DATABASE_URL loads; a target_session_attrs libpq would refuse only when it
 * connects (PQconninfoParse does not look at values) is refused by the configuration
 * check, which is where --check-config finds it. */
static void test_load_multi_host_database_url(void **state)
{
    struct saga_config cfg;
    char err[512];
    (void)state;
    setenv("DATABASE_URL",
           "postgresql://u:pw@127.0.0.1:1,127.0.0.1:2/db?target_session_attrs=read-write", 1);
    assert_int_equal(
        saga_config_load(&cfg, "x-service", SAGA_CONFIG_DATABASE, 8080, err, sizeof(err)), SAGA_OK);
    saga_config_release(&cfg);
    setenv("DATABASE_URL", "host=a,b port=1,2 password=pw target_session_attrs=primary", 1);
    assert_int_equal(
        saga_config_load(&cfg, "x-service", SAGA_CONFIG_DATABASE, 8080, err, sizeof(err)), SAGA_OK);
    saga_config_release(&cfg);
    setenv("DATABASE_URL",
           "postgresql://u:secret@127.0.0.1:1,127.0.0.1:2/db?target_session_attrs=readwrite", 1);
    assert_int_equal(
        saga_config_load(&cfg, "x-service", SAGA_CONFIG_DATABASE, 8080, err, sizeof(err)),
        SAGA_ERR_CONFIG);
    assert_non_null(strstr(err, "target_session_attrs"));
    assert_non_null(strstr(err, "readwrite"));
    assert_null(strstr(err, "secret"));
    /* libpq knows these, but every program writes: each would keep it on a server that
     * refuses every write, retried for ever */
    for (const char *const *v =
             (const char *const[]){"read-only", "standby", "prefer-standby", NULL};
         *v; v++) {
        char url[160];
        snprintf(url, sizeof(url),
                 "postgresql://u:secret@127.0.0.1:1,127.0.0.1:2/db?target_session_attrs=%s", *v);
        setenv("DATABASE_URL", url, 1);
        assert_int_equal(
            saga_config_load(&cfg, "x-service", SAGA_CONFIG_DATABASE, 8080, err, sizeof(err)),
            SAGA_ERR_CONFIG);
        assert_non_null(strstr(err, *v));
        assert_non_null(strstr(err, "writes"));
        assert_null(strstr(err, "secret"));
    }
}

static void test_load_defaults(void **state)
{
    struct saga_config cfg;
    char err[512];
    setenv("DATABASE_URL", "postgresql://u:pw@127.0.0.1:15432/db", 1);
    assert_int_equal(saga_config_load(&cfg, "x-service", SAGA_CONFIG_DATABASE | SAGA_CONFIG_HTTP,
                                      8083, err, sizeof(err)),
                     SAGA_OK);
    assert_string_equal(cfg.program, "x-service");
    assert_string_equal(cfg.database_url, "postgresql://u:pw@127.0.0.1:15432/db");
    assert_string_equal(cfg.http_host, "127.0.0.1");
    assert_int_equal(cfg.http_port, 8083);
    assert_int_equal(cfg.topic_partitions, 6);
    assert_int_equal(cfg.log_level, SAGA_LOG_INFO);
    assert_null(cfg.schema_registry_url);
    assert_string_equal(cfg.kafka_bootstrap, SAGA_KAFKA_DEFAULT_BOOTSTRAP);
    saga_config_release(&cfg);
}

static void test_load_rejects_bad_values(void **state)
{
    struct saga_config cfg;
    char err[512];

    setenv("LOG_LEVEL", "chatty", 1);
    assert_int_equal(saga_config_load(&cfg, "x", 0, 0, err, sizeof(err)), SAGA_ERR_CONFIG);
    assert_non_null(strstr(err, "LOG_LEVEL"));
    unsetenv("LOG_LEVEL");

    setenv("HTTP_LISTEN", "8080", 1);
    assert_int_equal(saga_config_load(&cfg, "x", SAGA_CONFIG_HTTP, 8080, err, sizeof(err)),
                     SAGA_ERR_CONFIG);
    assert_non_null(strstr(err, "HTTP_LISTEN"));
    unsetenv("HTTP_LISTEN");

    setenv("SCHEMA_REGISTRY_URL", "registry:8081", 1);
    assert_int_equal(saga_config_load(&cfg, "x", 0, 0, err, sizeof(err)), SAGA_ERR_CONFIG);
    assert_non_null(strstr(err, "SCHEMA_REGISTRY_URL"));
    unsetenv("SCHEMA_REGISTRY_URL");

    setenv("KAFKA_NO_SUCH_THING", "1", 1);
    assert_int_equal(saga_config_load(&cfg, "x", 0, 0, err, sizeof(err)), SAGA_ERR_CONFIG);
    assert_non_null(strstr(err, "KAFKA_NO_SUCH_THING"));
    assert_non_null(strstr(err, "no.such.thing"));
}

static void test_kafka_passthrough(void **state)
{
    rd_kafka_conf_t *conf;
    char err[256], val[256], prop[64];
    size_t size = sizeof(val);

    assert_int_equal(saga_kafka_env_to_prop("KAFKA_SASL_MECHANISMS", prop, sizeof(prop)), 0);
    assert_string_equal(prop, "sasl.mechanisms");
    assert_int_equal(saga_kafka_env_to_prop("KAFKA_", prop, sizeof(prop)), -1);
    assert_int_equal(saga_kafka_env_to_prop("OTHER", prop, sizeof(prop)), -1);
    assert_int_equal(saga_kafka_prop_to_env("sasl.mechanisms", prop, sizeof(prop)), 0);
    assert_string_equal(prop, "KAFKA_SASL_MECHANISMS");
    assert_int_equal(saga_kafka_prop_to_env("enable.idempotence", prop, 12), -1);
    assert_string_equal(prop, "KAFKA_ENABL");
    assert_false(saga_kafka_env_sets("linger.ms"));
    setenv("KAFKA_LINGER_MS", "", 1); /* empty means unset */
    assert_false(saga_kafka_env_sets("linger.ms"));
    setenv("KAFKA_LINGER_MS", "5", 1);
    assert_true(saga_kafka_env_sets("linger.ms"));
    unsetenv("KAFKA_LINGER_MS");

    setenv("KAFKA_BOOTSTRAP_SERVERS", "127.0.0.1:1234", 1);
    setenv("KAFKA_CLIENT_ID", "from-env", 1);
    assert_int_equal(saga_kafka_conf_from_env(&conf, err, sizeof(err)), SAGA_OK);
    assert_int_equal(rd_kafka_conf_get(conf, "bootstrap.servers", val, &size), RD_KAFKA_CONF_OK);
    assert_string_equal(val, "127.0.0.1:1234");
    size = sizeof(val);
    assert_int_equal(rd_kafka_conf_get(conf, "client.id", val, &size), RD_KAFKA_CONF_OK);
    assert_string_equal(val, "from-env");
    rd_kafka_conf_destroy(conf);

    assert_true(saga_kafka_prop_is_secret("sasl.password"));
    assert_true(saga_kafka_prop_is_secret("ssl.key.password"));
    assert_false(saga_kafka_prop_is_secret("bootstrap.servers"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_durations, clear_env),
        cmocka_unit_test_setup(test_env_duration_names_variable, clear_env),
        cmocka_unit_test_setup(test_env_long, clear_env),
        cmocka_unit_test_setup(test_hostport, clear_env),
        cmocka_unit_test_setup(test_redact, clear_env),
        cmocka_unit_test_setup(test_redact_every_password, clear_env),
        cmocka_unit_test_setup(test_load_parse_error_hides_password, clear_env),
        cmocka_unit_test_setup(test_load_multi_host_database_url, clear_env),
        cmocka_unit_test_setup(test_load_options_with_password_setting, clear_env),
        cmocka_unit_test_setup(test_load_requires_database_url, clear_env),
        cmocka_unit_test_setup(test_load_defaults, clear_env),
        cmocka_unit_test_setup(test_load_rejects_bad_values, clear_env),
        cmocka_unit_test_setup(test_kafka_passthrough, clear_env),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
