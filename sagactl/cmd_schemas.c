/*
 * sagactl schemas list [--json]
 * sagactl schemas check [--current DIR] [--released DIR]
 * sagactl schemas docs [--dir DIR]
 */
#include <ctype.h>
#include <dirent.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <avro.h>
#include <jansson.h>

#include "saga/avro_compat.h"
#include "saga/registry.h"
#include "saga/serde.h"
#include "sagactl.h"

static void schemas_usage(FILE *out)
{
    fprintf(out, "usage: sagactl schemas list [--json]\n"
                 "       sagactl schemas check [--current DIR] [--released DIR]\n"
                 "       sagactl schemas docs [--dir DIR]\n"
                 "       sagactl schemas register\n"
                 "\n"
                 "list   every event this binary ships: topic, fingerprint (as in the\n"
                 "       single-object header), registry subject\n"
                 "check  fails (exit 1) unless every schema in --current (default ./schemas)\n"
                 "       is BACKWARD and FORWARD compatible with the released set in --released\n"
                 "       (default: the newest directory under <current>/released)\n"
                 "docs   prints the event catalogue (docs/EVENTS.md) generated from --dir\n"
                 "       (default ./schemas)\n");
}

/* --- list ------------------------------------------------------------------ */

static int schemas_list(int as_json)
{
    struct saga_serde *s;
    char err[512];
    json_t *arr = json_array();

    if (saga_serde_new(&s, NULL, err, sizeof(err)) != SAGA_OK) {
        fprintf(stderr, "sagactl schemas: %s\n", err);
        json_decref(arr);
        return SAGACTL_EXIT_FAILURE;
    }
    if (!as_json)
        printf("%-18s %-14s %-16s  %s\n", "EVENT", "TOPIC", "FINGERPRINT", "REGISTRY SUBJECT");
    for (int t = 0; t < SAGA_EV_COUNT; t++) {
        uint64_t fp = saga_serde_fingerprint(s, (saga_event_type_t)t);
        char hex[17], subject[256];
        for (int i = 0; i < 8; i++)
            sprintf(hex + 2 * i, "%02x", (unsigned)(fp >> (8 * i)) & 0xff);
        saga_registry_subject((saga_event_type_t)t, subject, sizeof(subject));
        if (as_json)
            json_array_append_new(
                arr,
                json_pack("{s:s,s:s,s:s,s:s,s:s}", "event", saga_event_type_name(t), "topic",
                          saga_event_type_topic(t), "fingerprint", hex, "subject", subject,
                          "canonical_form", saga_serde_canonical_form(s, (saga_event_type_t)t)));
        else
            printf("%-18s %-14s %s  %s\n", saga_event_type_name(t), saga_event_type_topic(t), hex,
                   subject);
    }
    if (as_json) {
        char *out = json_dumps(arr, JSON_INDENT(2));
        puts(out);
        free(out);
    }
    json_decref(arr);
    saga_serde_destroy(s);
    return SAGACTL_EXIT_OK;
}

/* --- register ---------------------------------------------------------------- */

static int schemas_register(void)
{
    const char *url = getenv("SCHEMA_REGISTRY_URL");
    struct saga_registry *r;
    char err[512];
    int rc = SAGACTL_EXIT_OK;

    if (!url || !*url) {
        fprintf(stderr, "sagactl schemas register: SCHEMA_REGISTRY_URL is not set\n");
        return SAGACTL_EXIT_CONFIG;
    }
    if (saga_registry_new(&r, url, err, sizeof(err)) != SAGA_OK) {
        fprintf(stderr, "sagactl schemas register: %s\n", err);
        return SAGACTL_EXIT_CONFIG;
    }
    for (int t = 0; t < SAGA_EV_COUNT; t++) {
        char subject[256];
        int32_t id;
        saga_err_t e = saga_registry_event_id(r, (saga_event_type_t)t, &id, err, sizeof(err));
        saga_registry_subject((saga_event_type_t)t, subject, sizeof(subject));
        if (e) {
            fprintf(stderr, "sagactl schemas register: %s\n", err);
            rc = e == SAGA_ERR_TRANSIENT ? SAGACTL_EXIT_UNREACH : SAGACTL_EXIT_FAILURE;
            break;
        }
        printf("%-55s id %ld\n", subject, (long)id);
    }
    saga_registry_destroy(r);
    return rc;
}

/* --- loading a directory of schemas ---------------------------------------- */

struct schema_file {
    char name[128]; /* file name without .avsc */
    json_t *json;
};

struct schema_set {
    int n;
    struct schema_file f[64];
};

/* Events in saga order (OrderPlaced first), anything else after them by name. */
static int rank(const char *name)
{
    saga_event_type_t t;
    return saga_event_type_parse(name, &t) == 0 ? (int)t : SAGA_EV_COUNT;
}

static int cmp_file(const void *a, const void *b)
{
    const struct schema_file *x = a, *y = b;
    int rx = rank(x->name), ry = rank(y->name);
    return rx != ry ? rx - ry : strcmp(x->name, y->name);
}

/* GitHub's anchor for a heading: lowercase, spaces as dashes. */
static const char *anchor(const char *heading, char *buf, size_t size)
{
    size_t i = 0;
    for (; heading[i] && i + 1 < size; i++)
        buf[i] = heading[i] == ' ' ? '-' : (char)tolower((unsigned char)heading[i]);
    buf[i] = '\0';
    return buf;
}

static int load_dir(const char *dir, struct schema_set *set)
{
    DIR *d = opendir(dir);
    struct dirent *de;

    set->n = 0;
    if (!d) {
        fprintf(stderr, "sagactl schemas: cannot open %s\n", dir);
        return -1;
    }
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        char path[4096];
        json_error_t jerr;
        avro_schema_t as;
        char *text;

        if (len < 6 || strcmp(de->d_name + len - 5, ".avsc") != 0 || len - 5 >= 128)
            continue;
        if (set->n == 64) {
            fprintf(stderr, "sagactl schemas: more than 64 schemas in %s\n", dir);
            closedir(d);
            return -1;
        }
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        if (!(set->f[set->n].json = json_load_file(path, 0, &jerr))) {
            fprintf(stderr, "sagactl schemas: %s: line %d: %s\n", path, jerr.line, jerr.text);
            closedir(d);
            return -1;
        }
        /* It must parse with avro-c as well, exactly as the services will load it. */
        text = json_dumps(set->f[set->n].json, JSON_COMPACT);
        if (!text || avro_schema_from_json_length(text, strlen(text), &as) != 0) {
            fprintf(stderr, "sagactl schemas: %s: avro-c: %s\n", path, avro_strerror());
            free(text);
            json_decref(set->f[set->n].json);
            closedir(d);
            return -1;
        }
        avro_schema_decref(as);
        free(text);
        snprintf(set->f[set->n].name, sizeof(set->f[0].name), "%.*s", (int)(len - 5), de->d_name);
        set->n++;
    }
    closedir(d);
    qsort(set->f, (size_t)set->n, sizeof(set->f[0]), cmp_file);
    return 0;
}

static void set_free(struct schema_set *set)
{
    for (int i = 0; i < set->n; i++)
        json_decref(set->f[i].json);
    set->n = 0;
}

/* --- check ------------------------------------------------------------------ */

static int newest_release(const char *current, char *out, size_t size)
{
    char dir[4096];
    DIR *d;
    struct dirent *de;
    char best[256] = "";

    snprintf(dir, sizeof(dir), "%s/released", current);
    if (!(d = opendir(dir)))
        return -1;
    while ((de = readdir(d)))
        if (de->d_name[0] != '.' && strverscmp(de->d_name, best) > 0)
            snprintf(best, sizeof(best), "%s", de->d_name);
    closedir(d);
    if (!best[0])
        return -1;
    return snprintf(out, size, "%s/%s", dir, best) < (int)size ? 0 : -1;
}

struct report_ctx {
    const char *direction;
    int count;
};

static void report(void *arg, const char *path, const char *problem)
{
    struct report_ctx *r = arg;
    printf("%s %s: %s\n", r->direction, path, problem);
    r->count++;
}

static int schemas_check(const char *current, const char *released)
{
    struct schema_set cur, rel;
    char reldir[4096];
    int problems = 0;

    if (!released) {
        if (newest_release(current, reldir, sizeof(reldir)) != 0) {
            fprintf(stderr, "sagactl schemas: no released versions under %s/released\n", current);
            return SAGACTL_EXIT_FAILURE;
        }
        released = reldir;
    }
    if (load_dir(current, &cur) != 0)
        return SAGACTL_EXIT_FAILURE;
    if (load_dir(released, &rel) != 0) {
        set_free(&cur);
        return SAGACTL_EXIT_FAILURE;
    }
    for (int i = 0; i < rel.n; i++) {
        json_t *now = NULL;
        struct report_ctx back = {"BACKWARD", 0}, fwd = {"FORWARD", 0};
        for (int j = 0; j < cur.n; j++)
            if (strcmp(cur.f[j].name, rel.f[i].name) == 0)
                now = cur.f[j].json;
        if (!now) {
            printf("REMOVED %s: released, but gone from %s\n", rel.f[i].name, current);
            problems++;
            continue;
        }
        /* New readers read old events; old readers read new events. */
        saga_avro_compat_check(now, rel.f[i].json, report, &back);
        saga_avro_compat_check(rel.f[i].json, now, report, &fwd);
        problems += back.count + fwd.count;
    }
    if (problems == 0)
        printf("ok: %d schemas in %s are backward and forward compatible with %s (%d released)\n",
               cur.n, current, released, rel.n);
    else
        printf("%d incompatible change%s against %s\n", problems, problems == 1 ? "" : "s",
               released);
    set_free(&cur);
    set_free(&rel);
    return problems ? SAGACTL_EXIT_FAILURE : SAGACTL_EXIT_OK;
}

/* --- docs ------------------------------------------------------------------- */

static const char *strval(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

/* A human description of a field type; named records are collected for their own tables. */
static void type_text(json_t *t, char *buf, size_t size, json_t **nested, int *nnested)
{
    if (json_is_string(t)) {
        snprintf(buf, size, "`%s`", json_string_value(t));
    } else if (json_is_array(t)) {
        char a[256] = "", b[256] = "";
        if (json_array_size(t) == 2 && strcmp(strval(json_array_get(t, 0), "type"), "") == 0 &&
            json_is_string(json_array_get(t, 0)) &&
            strcmp(json_string_value(json_array_get(t, 0)), "null") == 0) {
            type_text(json_array_get(t, 1), b, sizeof(b), nested, nnested);
            snprintf(buf, size, "%s or null", b);
        } else {
            for (size_t i = 0; i < json_array_size(t); i++) {
                type_text(json_array_get(t, i), b, sizeof(b), nested, nnested);
                snprintf(a + strlen(a), sizeof(a) - strlen(a), "%s%s", i ? " \\| " : "", b);
            }
            snprintf(buf, size, "union of %s", a);
        }
    } else {
        const char *type = strval(t, "type"), *lt = strval(t, "logicalType");
        if (strcmp(type, "record") == 0) {
            char a[128], h[160];
            snprintf(h, sizeof(h), "%s record", strval(t, "name"));
            snprintf(buf, size, "[%s](#%s)", strval(t, "name"), anchor(h, a, sizeof(a)));
            for (int i = 0; i < *nnested; i++)
                if (strcmp(strval(nested[i], "name"), strval(t, "name")) == 0)
                    return;
            if (*nnested < 16)
                nested[(*nnested)++] = t;
        } else if (strcmp(type, "enum") == 0) {
            json_t *syms = json_object_get(t, "symbols");
            size_t o;
            o = (size_t)snprintf(buf, size, "enum `%s`: ", strval(t, "name"));
            for (size_t i = 0; i < json_array_size(syms) && o < size; i++)
                o += (size_t)snprintf(buf + o, size - o, "%s`%s`", i ? ", " : "",
                                      json_string_value(json_array_get(syms, i)));
            if (o < size && json_is_string(json_object_get(t, "default")))
                snprintf(buf + o, size - o, " (default `%s`)", strval(t, "default"));
        } else if (strcmp(type, "array") == 0) {
            char b[256];
            type_text(json_object_get(t, "items"), b, sizeof(b), nested, nnested);
            snprintf(buf, size, "array of %s", b);
        } else if (*lt) {
            snprintf(buf, size, "`%s` (%s)", type, lt);
        } else {
            snprintf(buf, size, "`%s`", type);
        }
    }
}

static void fields_table(json_t *rec, json_t **nested, int *nnested)
{
    json_t *f;
    size_t i;
    printf("| field | type | default | meaning |\n|---|---|---|---|\n");
    json_array_foreach(json_object_get(rec, "fields"), i, f)
    {
        char type[1024], def[128] = "";
        json_t *d = json_object_get(f, "default");
        type_text(json_object_get(f, "type"), type, sizeof(type), nested, nnested);
        if (d) {
            char *dj = json_dumps(d, JSON_ENCODE_ANY | JSON_COMPACT);
            snprintf(def, sizeof(def), "`%s`", dj ? dj : "?");
            free(dj);
        }
        printf("| `%s` | %s | %s | %s |\n", strval(f, "name"), type, def, strval(f, "doc"));
    }
    printf("\n");
}

static int schemas_docs(const char *dir)
{
    struct schema_set set;
    json_t *meta = NULL;

    if (load_dir(dir, &set) != 0)
        return SAGACTL_EXIT_FAILURE;
    printf("# Event catalogue\n\n"
           "<!-- Generated by `sagactl schemas docs` from schemas/*.avsc; do not edit by hand:\n"
           "     run `make docs`. A test fails when this file is stale. -->\n\n"
           "Every event is one Avro record, defined in a self-contained file under `schemas/`\n"
           "(namespace `io.ordersaga.events`). Every event is keyed by its `order_id`, so all\n"
           "events of one order keep their order within a topic. Each carries the `meta`\n"
           "envelope ([EventMeta](#eventmeta-record)) and these Kafka headers (UTF-8), which\n"
           "repeat the body: `event_id`, `event_type` (the record name, e.g. `OrderPlaced`),\n"
           "`correlation_id`, `causation_id` and `traceparent` (the last two only when set).\n\n"
           "Framing: with `SCHEMA_REGISTRY_URL` set, the Confluent wire format (`00`, 4-byte\n"
           "big-endian schema id, Avro binary; subjects `<topic>-io.ordersaga.events.<Name>`);\n"
           "without it, Avro single-object encoding (`C3 01`, the 8-byte little-endian\n"
           "CRC-64-AVRO fingerprint of the schema's Parsing Canonical Form, Avro binary).\n"
           "Readers accept both. `sagactl schemas list` prints every fingerprint and subject.\n\n"
           "Evolution: only changes that are both backward and forward compatible (add or\n"
           "remove a field that has a default; add an enum symbol — every enum defaults to\n"
           "`UNKNOWN`). `sagactl schemas check` enforces this against `schemas/released/`.\n\n");
    printf("## Summary\n\n| event | topic | producer | consumers | emitted when |\n"
           "|---|---|---|---|---|\n");
    for (int i = 0; i < set.n; i++) {
        json_t *s = set.f[i].json, *c;
        size_t k;
        char a[128];
        printf("| [%s](#%s) | `%s` | %s | ", strval(s, "name"), anchor(set.f[i].name, a, sizeof(a)),
               strval(s, "x-topic"), strval(s, "x-producer"));
        json_array_foreach(json_object_get(s, "x-consumers"), k, c)
            printf("%s%s", k ? ", " : "", json_string_value(c));
        printf(" | %s |\n", strval(s, "x-when"));
    }
    printf("\n");
    for (int i = 0; i < set.n; i++) {
        json_t *s = set.f[i].json, *nested[16], *c;
        int nnested = 0;
        size_t k;
        printf("## %s\n\n%s\n\n", strval(s, "name"), strval(s, "doc"));
        printf("- topic: `%s`, key: `order_id`\n- producer: %s\n- consumers: ",
               strval(s, "x-topic"), strval(s, "x-producer"));
        json_array_foreach(json_object_get(s, "x-consumers"), k, c)
            printf("%s%s", k ? ", " : "", json_string_value(c));
        printf("\n- emitted when: %s\n- schema: `schemas/%s.avsc`\n\n", strval(s, "x-when"),
               set.f[i].name);
        fields_table(s, nested, &nnested);
        for (int n = 0; n < nnested; n++) {
            if (strcmp(strval(nested[n], "name"), "EventMeta") == 0) {
                meta = nested[n];
                continue;
            }
            printf("### %s record\n\n%s\n\n", strval(nested[n], "name"), strval(nested[n], "doc"));
            fields_table(nested[n], nested, &nnested);
        }
    }
    if (meta) {
        json_t *nested[16];
        int nnested = 0;
        printf("## EventMeta record\n\n%s Identical in every event.\n\n", strval(meta, "doc"));
        fields_table(meta, nested, &nnested);
    }
    set_free(&set);
    return SAGACTL_EXIT_OK;
}

int sagactl_schemas(int argc, char **argv)
{
    const char *sub = argc > 1 ? argv[1] : "list";
    const char *current = "schemas", *released = NULL;
    int as_json = 0;

    for (int i = argc > 1 ? 2 : 1; i < argc; i++) {
        const char *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(argv[i], "--help") == 0 || strcmp(argv[i], "-h") == 0) {
            schemas_usage(stdout);
            return SAGACTL_EXIT_OK;
        } else if (strcmp(argv[i], "--json") == 0) {
            as_json = 1;
        } else if ((strcmp(argv[i], "--current") == 0 || strcmp(argv[i], "--dir") == 0) && v) {
            current = v;
            i++;
        } else if (strcmp(argv[i], "--released") == 0 && v) {
            released = v;
            i++;
        } else {
            fprintf(stderr, "sagactl schemas: unknown argument '%s'\n", argv[i]);
            schemas_usage(stderr);
            return SAGACTL_EXIT_USAGE;
        }
    }
    if (strcmp(sub, "--help") == 0 || strcmp(sub, "-h") == 0) {
        schemas_usage(stdout);
        return SAGACTL_EXIT_OK;
    }
    if (strcmp(sub, "list") == 0)
        return schemas_list(as_json);
    if (strcmp(sub, "check") == 0)
        return schemas_check(current, released);
    if (strcmp(sub, "docs") == 0)
        return schemas_docs(current);
    if (strcmp(sub, "register") == 0)
        return schemas_register();
    fprintf(stderr, "sagactl schemas: unknown command '%s'\n", sub);
    schemas_usage(stderr);
    return SAGACTL_EXIT_USAGE;
}
