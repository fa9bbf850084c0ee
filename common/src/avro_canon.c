#include "saga/avro_canon.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

static const char *const primitives[] = {"null",  "boolean", "int",   "long",
                                         "float", "double",  "bytes", "string"};

int saga_avro_is_primitive(const char *s)
{
    for (size_t i = 0; i < sizeof(primitives) / sizeof(primitives[0]); i++)
        if (strcmp(s, primitives[i]) == 0)
            return 1;
    return 0;
}

char *saga_avro_fullname(const char *name, const char *ns)
{
    char *out;
    if (strchr(name, '.') || !ns || !*ns)
        return strdup(name);
    out = malloc(strlen(ns) + strlen(name) + 2);
    if (out)
        sprintf(out, "%s.%s", ns, name);
    return out;
}

/* The namespace part of a fullname ("a.b.C" -> "a.b"), malloc'ed; "" if none. */
static char *namespace_of(const char *full)
{
    const char *dot = strrchr(full, '.');
    return dot ? strndup(full, (size_t)(dot - full)) : strdup("");
}

static json_t *canon(json_t *s, const char *ns, int depth, char *errstr, size_t errstr_size);

static json_t *canon_string(const char *s, const char *ns)
{
    char *full;
    json_t *j;
    if (saga_avro_is_primitive(s))
        return json_string(s);
    full = saga_avro_fullname(s, ns);
    j = full ? json_string(full) : NULL;
    free(full);
    return j;
}

static json_t *canon_named(json_t *s, const char *type, const char *ns, int depth, char *errstr,
                           size_t errstr_size)
{
    const char *name = json_string_value(json_object_get(s, "name"));
    json_t *jns = json_object_get(s, "namespace");
    char *full = NULL, *inner_ns = NULL;
    json_t *out = NULL;

    if (!name || !*name) {
        saga_errf(SAGA_ERR_INVALID, errstr, errstr_size, "a %s has no name", type);
        return NULL;
    }
    if (!strchr(name, '.') && json_is_string(jns))
        full = saga_avro_fullname(name, json_string_value(jns));
    else
        full = saga_avro_fullname(name, ns);
    inner_ns = full ? namespace_of(full) : NULL;
    if (!inner_ns)
        goto out;

    out = json_object();
    json_object_set_new(out, "name", json_string(full));
    json_object_set_new(out, "type", json_string(type));
    if (strcmp(type, "record") == 0 || strcmp(type, "error") == 0) {
        json_t *fields = json_object_get(s, "fields"), *cf = json_array(), *fld;
        size_t i;
        if (!json_is_array(fields)) {
            saga_errf(SAGA_ERR_INVALID, errstr, errstr_size, "record %s has no fields array", full);
            json_decref(cf);
            goto fail;
        }
        json_array_foreach(fields, i, fld)
        {
            const char *fname = json_string_value(json_object_get(fld, "name"));
            json_t *ft = json_object_get(fld, "type"), *cft, *o;
            if (!fname || !ft) {
                saga_errf(SAGA_ERR_INVALID, errstr, errstr_size,
                          "field %zu of %s needs a name and a type", i, full);
                json_decref(cf);
                goto fail;
            }
            if (!(cft = canon(ft, inner_ns, depth + 1, errstr, errstr_size))) {
                json_decref(cf);
                goto fail;
            }
            o = json_object();
            json_object_set_new(o, "name", json_string(fname));
            json_object_set_new(o, "type", cft);
            json_array_append_new(cf, o);
        }
        json_object_set_new(out, "fields", cf);
    } else if (strcmp(type, "enum") == 0) {
        json_t *sym = json_object_get(s, "symbols");
        if (!json_is_array(sym)) {
            saga_errf(SAGA_ERR_INVALID, errstr, errstr_size, "enum %s has no symbols", full);
            goto fail;
        }
        json_object_set(out, "symbols", sym);
    } else { /* fixed */
        json_t *size = json_object_get(s, "size");
        if (!json_is_integer(size)) {
            saga_errf(SAGA_ERR_INVALID, errstr, errstr_size, "fixed %s has no size", full);
            goto fail;
        }
        json_object_set_new(out, "size", json_integer(json_integer_value(size)));
    }
    goto out;
fail:
    json_decref(out);
    out = NULL;
out:
    free(full);
    free(inner_ns);
    return out;
}

static json_t *canon(json_t *s, const char *ns, int depth, char *errstr, size_t errstr_size)
{
    if (depth > 64) {
        saga_errf(SAGA_ERR_INVALID, errstr, errstr_size, "schema nested deeper than 64");
        return NULL;
    }
    if (json_is_string(s))
        return canon_string(json_string_value(s), ns);
    if (json_is_array(s)) {
        json_t *out = json_array(), *b;
        size_t i;
        json_array_foreach(s, i, b)
        {
            json_t *cb = canon(b, ns, depth + 1, errstr, errstr_size);
            if (!cb) {
                json_decref(out);
                return NULL;
            }
            json_array_append_new(out, cb);
        }
        return out;
    }
    if (json_is_object(s)) {
        json_t *t = json_object_get(s, "type");
        const char *type = json_string_value(t);
        if (!t) {
            saga_errf(SAGA_ERR_INVALID, errstr, errstr_size, "an object schema has no type");
            return NULL;
        }
        if (!type) /* {"type": {...}} or {"type": [...]}: the inner schema */
            return canon(t, ns, depth + 1, errstr, errstr_size);
        if (strcmp(type, "record") == 0 || strcmp(type, "error") == 0 ||
            strcmp(type, "enum") == 0 || strcmp(type, "fixed") == 0)
            return canon_named(s, type, ns, depth, errstr, errstr_size);
        if (strcmp(type, "array") == 0 || strcmp(type, "map") == 0) {
            const char *key = type[0] == 'a' ? "items" : "values";
            json_t *inner = json_object_get(s, key), *ci, *out;
            if (!inner) {
                saga_errf(SAGA_ERR_INVALID, errstr, errstr_size, "%s without %s", type, key);
                return NULL;
            }
            if (!(ci = canon(inner, ns, depth + 1, errstr, errstr_size)))
                return NULL;
            out = json_object();
            json_object_set_new(out, "type", json_string(type));
            json_object_set_new(out, key, ci);
            return out;
        }
        return canon_string(type, ns); /* {"type":"int", ...} or {"type":"a.B"} */
    }
    saga_errf(SAGA_ERR_INVALID, errstr, errstr_size, "a schema must be a string, object or array");
    return NULL;
}

char *saga_avro_canonical_form(const char *json, size_t len, char *errstr, size_t errstr_size)
{
    json_error_t jerr;
    json_t *root = json_loadb(json, len, JSON_DECODE_ANY, &jerr), *c;
    char *out;

    if (!root) {
        saga_errf(SAGA_ERR_INVALID, errstr, errstr_size, "schema is not JSON: %s (line %d)",
                  jerr.text, jerr.line);
        return NULL;
    }
    c = canon(root, "", 0, errstr, errstr_size);
    json_decref(root);
    if (!c)
        return NULL;
    out = json_dumps(c, JSON_COMPACT | JSON_ENCODE_ANY | JSON_PRESERVE_ORDER);
    json_decref(c);
    if (!out)
        saga_errf(SAGA_ERR_NOMEM, errstr, errstr_size, "out of memory");
    return out;
}

#define CRC64_AVRO_EMPTY 0xc15d213aa4d7a795ULL

static uint64_t crc64_table[256];
static pthread_once_t crc64_once = PTHREAD_ONCE_INIT;

static void crc64_init(void)
{
    for (int i = 0; i < 256; i++) {
        uint64_t f = (uint64_t)i;
        for (int j = 0; j < 8; j++)
            f = (f >> 1) ^ (CRC64_AVRO_EMPTY & (0 - (f & 1)));
        crc64_table[i] = f;
    }
}

uint64_t saga_avro_fingerprint64(const void *data, size_t len)
{
    const unsigned char *p = data;
    uint64_t fp = CRC64_AVRO_EMPTY;

    pthread_once(&crc64_once, crc64_init);
    for (size_t i = 0; i < len; i++)
        fp = (fp >> 8) ^ crc64_table[(fp ^ p[i]) & 0xff];
    return fp;
}
