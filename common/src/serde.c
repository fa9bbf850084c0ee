#include "saga/serde.h"

#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <avro.h>
#include <jansson.h>

#include "arena.h"
#include "avro_validate.h"
#include "embedded.h"
#include "event_desc.h"
#include "saga/avro_canon.h"
#include "saga/registry.h"
#include "saga/utf8.h"

_Static_assert(sizeof(saga_cancel_reason_t) == sizeof(int), "enums are stored as int");

#define SINGLE_OBJECT_HEADER 10 /* C3 01 + 8-byte fingerprint */
#define CONFLUENT_HEADER     5  /* 00 + 4-byte id */

/* --- process-wide: the schemas this binary ships, bound to the structs ---- */

static struct {
    pthread_once_t once;
    int ok;
    char errstr[512];
    json_t *json[SAGA_EV_COUNT]; /* parsed reader schemas; defaults point into them */
    const struct saga_embedded_file *file[SAGA_EV_COUNT];
} G = {PTHREAD_ONCE_INIT, 0, "", {0}, {0}};

static void global_init(void)
{
    for (int t = 0; t < SAGA_EV_COUNT; t++) {
        char path[64], err[200];
        json_error_t jerr;

        snprintf(path, sizeof(path), "%s.avsc", saga_event_descs[t]->name);
        for (size_t i = 0; i < saga_embedded_schemas_count; i++)
            if (strcmp(saga_embedded_schemas[i].path, path) == 0)
                G.file[t] = &saga_embedded_schemas[i];
        if (!G.file[t]) {
            snprintf(G.errstr, sizeof(G.errstr), "schemas/%s is not compiled in", path);
            return;
        }
        G.json[t] = json_loadb(G.file[t]->data, G.file[t]->len, 0, &jerr);
        if (!G.json[t]) {
            snprintf(G.errstr, sizeof(G.errstr), "schemas/%s: %s", path, jerr.text);
            return;
        }
        if (saga_event_desc_bind(saga_event_descs[t], G.json[t], err, sizeof(err)) != 0) {
            snprintf(G.errstr, sizeof(G.errstr), "schemas/%s does not match saga/events.h: %s",
                     path, err);
            return;
        }
    }
    G.ok = 1;
}

const char *saga_serde_schema_json(saga_event_type_t type)
{
    pthread_once(&G.once, global_init);
    return (unsigned)type < SAGA_EV_COUNT && G.file[type] ? G.file[type]->data : NULL;
}

const char *saga_decode_err2str(saga_decode_err_t err)
{
    static const char *const names[] = {
        [SAGA_DECODE_OK] = "ok",
        [SAGA_DECODE_EMPTY] = "empty message",
        [SAGA_DECODE_BAD_MAGIC] = "unknown framing (neither single-object nor Confluent)",
        [SAGA_DECODE_TRUNCATED] = "truncated",
        [SAGA_DECODE_UNKNOWN_FINGERPRINT] = "unknown schema fingerprint",
        [SAGA_DECODE_UNKNOWN_SCHEMA_ID] = "unknown schema id",
        [SAGA_DECODE_REGISTRY_UNAVAILABLE] = "schema registry unavailable",
        [SAGA_DECODE_BAD_SCHEMA] = "unparsable writer schema",
        [SAGA_DECODE_NOT_AN_EVENT] = "not a saga event",
        [SAGA_DECODE_INCOMPATIBLE] = "incompatible writer schema",
        [SAGA_DECODE_BAD_VARINT] = "malformed varint",
        [SAGA_DECODE_BAD_LENGTH] = "bad length",
        [SAGA_DECODE_BAD_UTF8] = "string is not UTF-8",
        [SAGA_DECODE_BAD_UNION] = "union branch out of range",
        [SAGA_DECODE_BAD_ENUM] = "enum symbol out of range",
        [SAGA_DECODE_BAD_VALUE] = "malformed value",
        [SAGA_DECODE_TOO_LARGE] = "too large",
        [SAGA_DECODE_TRAILING_BYTES] = "trailing bytes",
        [SAGA_DECODE_NOMEM] = "out of memory",
    };
    return (unsigned)err < sizeof(names) / sizeof(names[0]) && names[err] ? names[err]
                                                                          : "unknown error";
}

saga_err_t saga_decode_err_class(saga_decode_err_t err)
{
    switch (err) {
    case SAGA_DECODE_OK:
        return SAGA_OK;
    case SAGA_DECODE_REGISTRY_UNAVAILABLE:
        return SAGA_ERR_TRANSIENT;
    case SAGA_DECODE_NOMEM:
        return SAGA_ERR_NOMEM;
    default:
        return SAGA_ERR_PERMANENT;
    }
}

/* --- decode plans: a writer schema projected onto a reader struct -------- */

struct rplan;

struct fplan {
    int widx;          /* writer field index, or -1: take the reader's default */
    avro_type_t wtype; /* writer field type (links resolved) */
    int null_branch;   /* FK_OPT_STRING from a union: branch indices, -1 if absent */
    int str_branch;
    int *enum_map;     /* FK_ENUM: writer symbol -> reader value, -1 if none */
    struct rplan *sub; /* FK_RECORD, FK_ARRAY */
};

struct rplan {
    const struct saga_record_desc *desc;
    struct fplan f[];
};

static void plan_free(struct rplan *p)
{
    if (!p)
        return;
    for (int i = 0; i < p->desc->nfields; i++) {
        free(p->f[i].enum_map);
        plan_free(p->f[i].sub);
    }
    free(p);
}

static avro_schema_t unlink_schema(avro_schema_t s)
{
    while (s && avro_typeof(s) == AVRO_LINK)
        s = avro_schema_link_target(s);
    return s;
}

static int plan_err(char *errstr, size_t size, const char *rec, const char *field, const char *what)
{
    snprintf(errstr, size, "%s.%s: %s", rec, field, what);
    return -1;
}

/* Plans reading writer record w into desc; returns NULL with errstr on incompatibility. */
static struct rplan *plan_build(const struct saga_record_desc *desc, avro_schema_t w, char *errstr,
                                size_t errstr_size)
{
    struct rplan *p = calloc(1, sizeof(*p) + (size_t)desc->nfields * sizeof(struct fplan));

    if (!p) {
        snprintf(errstr, errstr_size, "out of memory");
        return NULL;
    }
    p->desc = desc;
    for (int i = 0; i < desc->nfields; i++) {
        const struct saga_field_desc *fd = &desc->fields[i];
        struct fplan *fp = &p->f[i];
        avro_schema_t ws;
        avro_type_t t;
        int bad = 0;

        fp->null_branch = fp->str_branch = -1;
        fp->widx = avro_schema_record_field_get_index(w, fd->name);
        if (fp->widx < 0) {
            if (!fd->def) {
                plan_err(errstr, errstr_size, desc->name, fd->name,
                         "the writer lacks this field and the reader has no default");
                goto fail;
            }
            continue;
        }
        ws = unlink_schema(avro_schema_record_field_get_by_index(w, fp->widx));
        t = fp->wtype = avro_typeof(ws);
        switch (fd->kind) {
        case FK_STRING:
            bad = t != AVRO_STRING;
            break;
        case FK_OPT_STRING:
            if (t == AVRO_UNION) {
                for (size_t b = 0; b < avro_schema_union_size(ws); b++) {
                    avro_type_t bt =
                        avro_typeof(unlink_schema(avro_schema_union_branch(ws, (int)b)));
                    if (bt == AVRO_NULL)
                        fp->null_branch = (int)b;
                    else if (bt == AVRO_STRING)
                        fp->str_branch = (int)b;
                    else
                        bad = 1; /* a branch the reader could not hold */
                }
            } else {
                bad = t != AVRO_STRING && t != AVRO_NULL;
            }
            break;
        case FK_INT:
            bad = t != AVRO_INT32;
            break;
        case FK_LONG:
            bad = t != AVRO_INT64 && t != AVRO_INT32;
            break;
        case FK_ENUM: {
            int n;
            if (t != AVRO_ENUM) {
                bad = 1;
                break;
            }
            n = avro_schema_enum_number_of_symbols(ws);
            if (!(fp->enum_map = malloc((size_t)(n > 0 ? n : 1) * sizeof(int)))) {
                snprintf(errstr, errstr_size, "out of memory");
                goto fail;
            }
            for (int s = 0; s < n; s++) {
                const char *sym = avro_schema_enum_get(ws, s);
                fp->enum_map[s] = fd->en->default_index;
                for (int r = 0; sym && r < fd->en->nsymbols; r++)
                    if (strcmp(sym, fd->en->symbols[r]) == 0)
                        fp->enum_map[s] = r;
            }
            break;
        }
        case FK_RECORD:
            if (t != AVRO_RECORD) {
                bad = 1;
                break;
            }
            if (!(fp->sub = plan_build(fd->rec, ws, errstr, errstr_size)))
                goto fail;
            break;
        case FK_ARRAY: {
            avro_schema_t items =
                t == AVRO_ARRAY ? unlink_schema(avro_schema_array_items(ws)) : NULL;
            if (!items || avro_typeof(items) != AVRO_RECORD) {
                bad = 1;
                break;
            }
            if (!(fp->sub = plan_build(fd->rec, items, errstr, errstr_size)))
                goto fail;
            break;
        }
        }
        if (bad) {
            char what[96];
            snprintf(what, sizeof(what), "the writer's type %s cannot be read here",
                     avro_schema_type_name(ws));
            plan_err(errstr, errstr_size, desc->name, fd->name, what);
            goto fail;
        }
    }
    return p;
fail:
    plan_free(p);
    return NULL;
}

/* --- defaults ------------------------------------------------------------- */

static int apply_record_default(const struct saga_record_desc *desc, json_t *obj, char *base,
                                struct saga_arena *a);

/* Stores the JSON default def for fd at dst. Returns 0, or -1 if def does not fit. */
static int apply_default(const struct saga_field_desc *fd, json_t *def, void *dst,
                         struct saga_arena *a)
{
    switch (fd->kind) {
    case FK_STRING:
    case FK_OPT_STRING:
        if (json_is_null(def) && fd->kind == FK_OPT_STRING) {
            *(const char **)dst = NULL;
            return 0;
        }
        if (!json_is_string(def))
            return -1;
        return (*(const char **)dst =
                    saga_arena_strndup(a, json_string_value(def), json_string_length(def)))
                   ? 0
                   : -1;
    case FK_INT:
        if (!json_is_integer(def))
            return -1;
        *(int32_t *)dst = (int32_t)json_integer_value(def);
        return 0;
    case FK_LONG:
        if (!json_is_integer(def))
            return -1;
        *(int64_t *)dst = (int64_t)json_integer_value(def);
        return 0;
    case FK_ENUM:
        for (int s = 0; json_is_string(def) && s < fd->en->nsymbols; s++) {
            if (strcmp(json_string_value(def), fd->en->symbols[s]) == 0) {
                *(int *)dst = s;
                return 0;
            }
        }
        return -1;
    case FK_RECORD:
        return json_is_object(def) ? apply_record_default(fd->rec, def, dst, a) : -1;
    case FK_ARRAY: {
        size_t n = json_array_size(def);
        char *items;
        if (!json_is_array(def))
            return -1;
        items = n ? saga_arena_alloc(a, n * fd->rec->size) : NULL;
        if (n && !items)
            return -1;
        for (size_t i = 0; i < n; i++)
            if (!json_is_object(json_array_get(def, i)) ||
                apply_record_default(fd->rec, json_array_get(def, i), items + i * fd->rec->size,
                                     a) != 0)
                return -1;
        *(void **)dst = items;
        *(size_t *)((char *)dst - fd->off + fd->count_off) = n;
        return 0;
    }
    }
    return -1;
}

static int apply_record_default(const struct saga_record_desc *desc, json_t *obj, char *base,
                                struct saga_arena *a)
{
    for (int i = 0; i < desc->nfields; i++) {
        const struct saga_field_desc *fd = &desc->fields[i];
        json_t *v = json_object_get(obj, fd->name);
        if (!v)
            v = fd->def;
        if (!v || apply_default(fd, v, base + fd->off, a) != 0)
            return -1;
    }
    return 0;
}

/* --- the serde ------------------------------------------------------------ */

struct known {
    uint64_t fingerprint;
    int32_t registry_id; /* -1 unless it came from the registry */
    int type;            /* saga_event_type_t, or -1 if it names no saga event */
    avro_schema_t schema;
    avro_value_iface_t *iface;
    avro_value_t value;       /* reused for every read */
    struct saga_vprog *vprog; /* checks bytes before avro-c reads them */
    struct rplan *plan;       /* NULL when type < 0 or incompatible */
    char plan_errstr[200];
};

/*
 * The avro-c handles of a record value's fields (and of nested records), looked
 * up once: a field's handle stays valid for the life of the value.
 */
struct ecache {
    int n;
    avro_value_t *v;
    struct ecache **sub;   /* per field: the nested record's cache, or NULL */
    struct ecache ***elem; /* per array field: its elements' caches (nelem of them) */
    size_t *nelem;
};

static void ecache_free(struct ecache *c);

static void elems_free(struct ecache *c, int field)
{
    for (size_t j = 0; c->elem[field] && j < c->nelem[field]; j++)
        ecache_free(c->elem[field][j]);
    free(c->elem[field]);
    c->elem[field] = NULL;
    c->nelem[field] = 0;
}

static void ecache_free(struct ecache *c)
{
    if (!c)
        return;
    for (int i = 0; i < c->n; i++) {
        ecache_free(c->sub[i]);
        elems_free(c, i);
    }
    free(c->v);
    free(c->sub);
    free(c->elem);
    free(c->nelem);
    free(c);
}

static struct ecache *ecache_new(const struct saga_record_desc *desc, avro_value_t *rec)
{
    struct ecache *c = calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->n = desc->nfields;
    c->v = calloc((size_t)c->n, sizeof(*c->v));
    c->sub = calloc((size_t)c->n, sizeof(*c->sub));
    c->elem = calloc((size_t)c->n, sizeof(*c->elem));
    c->nelem = calloc((size_t)c->n, sizeof(*c->nelem));
    if (!c->v || !c->sub || !c->elem || !c->nelem)
        goto fail;
    for (int i = 0; i < c->n; i++) {
        if (avro_value_get_by_index(rec, (size_t)i, &c->v[i], NULL) != 0)
            goto fail;
        if (desc->fields[i].kind == FK_RECORD &&
            !(c->sub[i] = ecache_new(desc->fields[i].rec, &c->v[i])))
            goto fail;
    }
    return c;
fail:
    ecache_free(c);
    return NULL;
}

struct saga_serde {
    struct saga_registry *registry;
    struct known **known; /* each entry allocated alone: reader[].k and last point at them */
    size_t nknown, capknown;
    struct known *last; /* the last one used: most messages repeat it */
    struct {
        struct known *k; /* the reader schema (also a known writer schema) */
        char *canonical;
        avro_value_t enc;     /* a value of its own for encoding, so decodes never disturb it */
        struct ecache *cache; /* the handles of enc's fields */
    } reader[SAGA_EV_COUNT];
    avro_writer_t writer;
    avro_reader_t reader_mem;
};

static void known_release(struct known *k)
{
    plan_free(k->plan);
    saga_vprog_free(k->vprog);
    if (k->iface) {
        avro_value_decref(&k->value);
        avro_value_iface_decref(k->iface);
    }
    if (k->schema)
        avro_schema_decref(k->schema);
}

/*
 * Parses json as a writer schema and adds it (if new). *out points at the entry.
 * Decode errors come back as saga_decode_err_t with errstr.
 */
static saga_decode_err_t known_add(struct saga_serde *s, const char *json, size_t len,
                                   int32_t registry_id, struct known **out, char *errstr,
                                   size_t errstr_size)
{
    char *canon = saga_avro_canonical_form(json, len, errstr, errstr_size);
    uint64_t fp;
    struct known k = {0}, *slot;
    char fullname[256];
    saga_event_type_t type;

    if (!canon)
        return SAGA_DECODE_BAD_SCHEMA;
    fp = saga_avro_fingerprint64(canon, strlen(canon));
    free(canon);
    for (size_t i = 0; i < s->nknown; i++) {
        if (s->known[i]->fingerprint == fp) {
            if (registry_id >= 0 && s->known[i]->registry_id < 0)
                s->known[i]->registry_id = registry_id;
            if (registry_id < 0 || s->known[i]->registry_id == registry_id) {
                *out = s->known[i];
                return SAGA_DECODE_OK;
            }
        }
    }
    /* The table grows with every writer schema met (no fixed limit: a limit would send valid
     * events of the next schema version to the DLQ); the entries themselves never move. */
    if (s->nknown == s->capknown) {
        size_t cap = s->capknown ? s->capknown * 2 : 64;
        struct known **grown = realloc(s->known, cap * sizeof(*grown));
        if (!grown) {
            snprintf(errstr, errstr_size, "out of memory");
            return SAGA_DECODE_NOMEM;
        }
        s->known = grown;
        s->capknown = cap;
    }
    k.fingerprint = fp;
    k.registry_id = registry_id;
    k.type = -1;
    if (avro_schema_from_json_length(json, len, &k.schema) != 0) {
        snprintf(errstr, errstr_size, "writer schema: %s", avro_strerror());
        return SAGA_DECODE_BAD_SCHEMA;
    }
    if (avro_typeof(k.schema) != AVRO_RECORD) {
        snprintf(errstr, errstr_size, "writer schema is a %s, not a record",
                 avro_schema_type_name(k.schema));
    } else {
        const char *ns = avro_schema_namespace(k.schema);
        snprintf(fullname, sizeof(fullname), "%s%s%s", ns ? ns : "", ns && *ns ? "." : "",
                 avro_schema_name(k.schema));
        if (strncmp(fullname, SAGA_EVENTS_NAMESPACE ".", strlen(SAGA_EVENTS_NAMESPACE) + 1) == 0 &&
            saga_event_type_parse(fullname, &type) == 0) {
            k.type = (int)type;
            k.plan =
                plan_build(saga_event_descs[type], k.schema, k.plan_errstr, sizeof(k.plan_errstr));
        } else {
            snprintf(k.plan_errstr, sizeof(k.plan_errstr), "%.160s is not a saga event", fullname);
        }
    }
    if (!(k.vprog = saga_vprog_new(k.schema))) {
        snprintf(errstr, errstr_size, "writer schema: unsupported or too deeply nested");
        known_release(&k);
        return SAGA_DECODE_BAD_SCHEMA;
    }
    if (!(k.iface = avro_generic_class_from_schema(k.schema)) ||
        avro_generic_value_new(k.iface, &k.value) != 0) {
        snprintf(errstr, errstr_size, "writer schema: %s", avro_strerror());
        if (k.iface)
            avro_value_iface_decref(k.iface);
        k.iface = NULL;
        known_release(&k);
        return SAGA_DECODE_BAD_SCHEMA;
    }
    if (!(slot = malloc(sizeof(*slot)))) {
        snprintf(errstr, errstr_size, "out of memory");
        known_release(&k);
        return SAGA_DECODE_NOMEM;
    }
    *slot = k;
    s->known[s->nknown++] = slot;
    *out = slot;
    return SAGA_DECODE_OK;
}

saga_err_t saga_serde_add_schema(struct saga_serde *s, const char *json, size_t len, char *errstr,
                                 size_t errstr_size)
{
    struct known *k;
    saga_decode_err_t e = known_add(s, json, len, -1, &k, errstr, errstr_size);
    return e == SAGA_DECODE_OK      ? SAGA_OK
           : e == SAGA_DECODE_NOMEM ? SAGA_ERR_NOMEM
                                    : SAGA_ERR_INVALID;
}

saga_err_t saga_serde_add_registry_schema(struct saga_serde *s, int32_t id, const char *json,
                                          size_t len, char *errstr, size_t errstr_size)
{
    struct known *k;
    saga_decode_err_t e;

    if (id < 0)
        return saga_errf(SAGA_ERR_INVALID, errstr, errstr_size, "negative schema id %ld", (long)id);
    e = known_add(s, json, len, id, &k, errstr, errstr_size);
    if (e == SAGA_DECODE_OK && k->registry_id != id)
        return saga_errf(SAGA_ERR_INVALID, errstr, errstr_size,
                         "that schema is already known as id %ld", (long)k->registry_id);
    return e == SAGA_DECODE_OK      ? SAGA_OK
           : e == SAGA_DECODE_NOMEM ? SAGA_ERR_NOMEM
                                    : SAGA_ERR_INVALID;
}

int saga_serde_add_schema_dir(struct saga_serde *s, const char *dir, char *errstr,
                              size_t errstr_size)
{
    DIR *d = opendir(dir);
    struct dirent *de;
    int n = 0;

    if (!d) {
        saga_errf(SAGA_ERR_CONFIG, errstr, errstr_size, "%s: %s", dir, strerror(errno));
        return -1;
    }
    while ((de = readdir(d))) {
        char path[4096], err[256];
        size_t len = strlen(de->d_name);
        json_error_t jerr;
        json_t *j;
        char *text;

        if (len < 6 || strcmp(de->d_name + len - 5, ".avsc") != 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
        if (!(j = json_load_file(path, 0, &jerr))) {
            saga_errf(SAGA_ERR_CONFIG, errstr, errstr_size, "%s: %s", path, jerr.text);
            n = -1;
            break;
        }
        text = json_dumps(j, JSON_COMPACT);
        json_decref(j);
        if (!text || saga_serde_add_schema(s, text, strlen(text), err, sizeof(err)) != SAGA_OK) {
            saga_errf(SAGA_ERR_CONFIG, errstr, errstr_size, "%s: %s", path,
                      text ? err : "out of memory");
            free(text);
            n = -1;
            break;
        }
        free(text);
        n++;
    }
    closedir(d);
    return n;
}

void saga_serde_destroy(struct saga_serde *s)
{
    if (!s)
        return;
    for (size_t i = 0; i < s->nknown; i++) {
        known_release(s->known[i]);
        free(s->known[i]);
    }
    free(s->known);
    for (int t = 0; t < SAGA_EV_COUNT; t++) {
        free(s->reader[t].canonical);
        ecache_free(s->reader[t].cache);
        if (s->reader[t].enc.self)
            avro_value_decref(&s->reader[t].enc);
    }
    if (s->writer)
        avro_writer_free(s->writer);
    if (s->reader_mem)
        avro_reader_free(s->reader_mem);
    free(s);
}

saga_err_t saga_serde_new(struct saga_serde **out, const struct saga_serde_conf *conf, char *errstr,
                          size_t errstr_size)
{
    struct saga_serde *s;
    static const char empty[1];

    pthread_once(&G.once, global_init);
    if (!G.ok)
        return saga_errf(SAGA_ERR_PERMANENT, errstr, errstr_size, "%s", G.errstr);
    if (!(s = calloc(1, sizeof(*s))))
        return saga_errf(SAGA_ERR_NOMEM, errstr, errstr_size, "out of memory");
    s->registry = conf ? conf->registry : NULL;
    s->writer = avro_writer_memory(empty, 0);
    s->reader_mem = avro_reader_memory(empty, 0);
    if (!s->writer || !s->reader_mem)
        goto nomem;
    /* Every embedded schema plus room for some added later or fetched from a registry. */
    s->capknown = saga_embedded_schemas_count + 64;
    if (!(s->known = calloc(s->capknown, sizeof(*s->known))))
        goto nomem;
    for (int t = 0; t < SAGA_EV_COUNT; t++) {
        char err[256];
        struct known *k = NULL;
        if (known_add(s, G.file[t]->data, G.file[t]->len, -1, &k, err, sizeof(err)) || !k->plan) {
            saga_errf(SAGA_ERR_PERMANENT, errstr, errstr_size, "schemas/%s.avsc: %s",
                      saga_event_type_name((saga_event_type_t)t), k ? k->plan_errstr : err);
            saga_serde_destroy(s);
            return SAGA_ERR_PERMANENT;
        }
        s->reader[t].k = k;
        s->reader[t].canonical =
            saga_avro_canonical_form(G.file[t]->data, G.file[t]->len, err, sizeof(err));
        if (!s->reader[t].canonical || avro_generic_value_new(k->iface, &s->reader[t].enc) != 0 ||
            !(s->reader[t].cache = ecache_new(saga_event_descs[t], &s->reader[t].enc)))
            goto nomem;
    }
    for (size_t i = 0; i < saga_embedded_schemas_count; i++) {
        struct known *k;
        char err[256];
        if (strncmp(saga_embedded_schemas[i].path, "released/", 9) != 0)
            continue;
        if (known_add(s, saga_embedded_schemas[i].data, saga_embedded_schemas[i].len, -1, &k, err,
                      sizeof(err)) != SAGA_DECODE_OK) {
            saga_errf(SAGA_ERR_PERMANENT, errstr, errstr_size, "schemas/%s: %s",
                      saga_embedded_schemas[i].path, err);
            saga_serde_destroy(s);
            return SAGA_ERR_PERMANENT;
        }
    }
    *out = s;
    return SAGA_OK;
nomem:
    saga_serde_destroy(s);
    return saga_errf(SAGA_ERR_NOMEM, errstr, errstr_size, "out of memory");
}

saga_err_t saga_serde_open(const char *registry_url, const char *schema_dir,
                           struct saga_serde **out, struct saga_registry **registry, char *errstr,
                           size_t errstr_size)
{
    struct saga_serde_conf conf = {NULL};
    saga_err_t err;

    *out = NULL;
    *registry = NULL;
    if (registry_url && (err = saga_registry_new(registry, registry_url, errstr, errstr_size)))
        return err;
    conf.registry = *registry;
    if ((err = saga_serde_new(out, &conf, errstr, errstr_size)))
        goto fail;
    if (schema_dir && saga_serde_add_schema_dir(*out, schema_dir, errstr, errstr_size) < 0) {
        err = SAGA_ERR_CONFIG;
        goto fail;
    }
    return SAGA_OK;
fail:
    saga_serde_destroy(*out);
    saga_registry_destroy(*registry);
    *out = NULL;
    *registry = NULL;
    return err;
}

uint64_t saga_serde_fingerprint(const struct saga_serde *s, saga_event_type_t type)
{
    return (unsigned)type < SAGA_EV_COUNT ? s->reader[type].k->fingerprint : 0;
}

const char *saga_serde_canonical_form(const struct saga_serde *s, saga_event_type_t type)
{
    return (unsigned)type < SAGA_EV_COUNT ? s->reader[type].canonical : NULL;
}

void saga_buf_release(struct saga_buf *b)
{
    free(b->data);
    memset(b, 0, sizeof(*b));
}

static int buf_reserve(struct saga_buf *b, size_t cap)
{
    unsigned char *d;
    if (b->cap >= cap)
        return 0;
    if (cap < 256)
        cap = 256;
    if (!(d = realloc(b->data, cap)))
        return -1;
    b->data = d;
    b->cap = cap;
    return 0;
}

/* --- encode: struct -> avro value ------------------------------------------ */

/*
 * The value borrows str (no copy): it is written out before saga_serde_encode
 * returns, and the next encode replaces it.
 */
static int set_string(avro_value_t *v, const char *str, const char *rec, const char *field,
                      char *errstr, size_t errstr_size)
{
    size_t len = saga_utf8_strlen(str);
    avro_wrapped_buffer_t wb;
    if (len == (size_t)-1)
        return plan_err(errstr, errstr_size, rec, field, "is not valid UTF-8");
    if (avro_wrapped_buffer_new(&wb, str, len + 1) != 0 || avro_value_give_string_len(v, &wb) != 0)
        return plan_err(errstr, errstr_size, rec, field, avro_strerror());
    return 0;
}

static int fill_field(const struct saga_field_desc *fd, const struct saga_record_desc *desc,
                      avro_value_t *v, const char *base, char *errstr, size_t errstr_size)
{
    const void *src = base + fd->off;
    avro_value_t branch;

    switch (fd->kind) {
    case FK_STRING: {
        const char *str = *(const char *const *)src;
        if (!str)
            return plan_err(errstr, errstr_size, desc->name, fd->name, "is required but NULL");
        return set_string(v, str, desc->name, fd->name, errstr, errstr_size);
    }
    case FK_OPT_STRING: {
        const char *str = *(const char *const *)src;
        if (avro_value_set_branch(v, str ? 1 : 0, &branch) != 0)
            return plan_err(errstr, errstr_size, desc->name, fd->name, avro_strerror());
        return str ? set_string(&branch, str, desc->name, fd->name, errstr, errstr_size)
                   : avro_value_set_null(&branch);
    }
    case FK_INT:
        return avro_value_set_int(v, *(const int32_t *)src);
    case FK_LONG:
        return avro_value_set_long(v, *(const int64_t *)src);
    case FK_ENUM: {
        int e = *(const int *)src;
        if (e < 0 || e >= fd->en->nsymbols) {
            char what[64];
            snprintf(what, sizeof(what), "enum value %d is out of range", e);
            return plan_err(errstr, errstr_size, desc->name, fd->name, what);
        }
        return avro_value_set_enum(v, e);
    }
    case FK_RECORD: /* fill_cached handles these two */
    case FK_ARRAY:
        break;
    }
    return -1;
}

/*
 * Fills the array at field i of c with n records. Elements left by the previous
 * encode are reused (avro-c can only clear an array, not shrink it); their handles
 * are cached until the array changes shape, since appending may move them.
 */
static int fill_cached(const struct saga_record_desc *desc, struct ecache *c, const char *base,
                       char *errstr, size_t errstr_size);

static int fill_array(const struct saga_field_desc *fd, const struct saga_record_desc *desc,
                      struct ecache *c, int i, const char *base, char *errstr, size_t errstr_size)
{
    avro_value_t *v = &c->v[i], item;
    const char *items = *(const char *const *)(base + fd->off);
    size_t n = *(const size_t *)(base + fd->count_off), have = 0;

    if (n && !items)
        return plan_err(errstr, errstr_size, desc->name, fd->name, "has a count but no items");
    if (avro_value_get_size(v, &have) != 0 || have > n) {
        avro_value_reset(v);
        have = 0;
    }
    if (have != n || c->nelem[i] != n) {
        elems_free(c, i);
        for (size_t j = have; j < n; j++)
            if (avro_value_append(v, &item, NULL) != 0)
                return -1;
        if (n && !(c->elem[i] = calloc(n, sizeof(*c->elem[i]))))
            return -1;
        for (size_t j = 0; j < n; j++) {
            if (avro_value_get_by_index(v, j, &item, NULL) != 0 ||
                !(c->elem[i][j] = ecache_new(fd->rec, &item))) {
                c->nelem[i] = j;
                elems_free(c, i);
                return -1;
            }
        }
        c->nelem[i] = n;
    }
    for (size_t j = 0; j < n; j++)
        if (fill_cached(fd->rec, c->elem[i][j], items + j * fd->rec->size, errstr, errstr_size))
            return -1;
    return 0;
}

static int fill_cached(const struct saga_record_desc *desc, struct ecache *c, const char *base,
                       char *errstr, size_t errstr_size)
{
    for (int i = 0; i < desc->nfields; i++) {
        const struct saga_field_desc *fd = &desc->fields[i];
        int rc = fd->kind == FK_RECORD
                     ? fill_cached(fd->rec, c->sub[i], base + fd->off, errstr, errstr_size)
                 : fd->kind == FK_ARRAY ? fill_array(fd, desc, c, i, base, errstr, errstr_size)
                                        : fill_field(fd, desc, &c->v[i], base, errstr, errstr_size);
        if (rc != 0) {
            if (errstr && errstr_size && !errstr[0])
                plan_err(errstr, errstr_size, desc->name, fd->name, avro_strerror());
            return -1;
        }
    }
    return 0;
}

saga_err_t saga_serde_encode(struct saga_serde *s, const struct saga_event *ev,
                             struct saga_buf *out, char *errstr, size_t errstr_size)
{
    struct known *k;
    avro_value_t *value;
    size_t hdr;
    int rc;

    if (errstr && errstr_size)
        errstr[0] = '\0';
    if ((unsigned)ev->type >= SAGA_EV_COUNT)
        return saga_errf(SAGA_ERR_INVALID, errstr, errstr_size, "no event type %d", (int)ev->type);
    k = s->reader[ev->type].k;
    value = &s->reader[ev->type].enc;
    if (fill_cached(saga_event_descs[ev->type], s->reader[ev->type].cache, (const char *)ev, errstr,
                    errstr_size) != 0)
        return SAGA_ERR_INVALID;

    if (buf_reserve(out, 512) != 0)
        return saga_errf(SAGA_ERR_NOMEM, errstr, errstr_size, "out of memory");
    if (s->registry) {
        int32_t id;
        saga_err_t err = saga_registry_event_id(s->registry, ev->type, &id, errstr, errstr_size);
        if (err)
            return err;
        out->data[0] = 0;
        out->data[1] = (unsigned char)((uint32_t)id >> 24);
        out->data[2] = (unsigned char)((uint32_t)id >> 16);
        out->data[3] = (unsigned char)((uint32_t)id >> 8);
        out->data[4] = (unsigned char)id;
        hdr = CONFLUENT_HEADER;
    } else {
        out->data[0] = 0xc3;
        out->data[1] = 0x01;
        for (int i = 0; i < 8; i++)
            out->data[2 + i] = (unsigned char)(k->fingerprint >> (8 * i));
        hdr = SINGLE_OBJECT_HEADER;
    }
    avro_writer_memory_set_dest(s->writer, (const char *)out->data + hdr,
                                (int64_t)(out->cap - hdr));
    rc = avro_value_write(s->writer, value);
    if (rc == ENOSPC) {
        size_t size = 0;
        if (avro_value_sizeof(value, &size) != 0 || buf_reserve(out, hdr + size) != 0)
            return saga_errf(SAGA_ERR_NOMEM, errstr, errstr_size, "out of memory");
        avro_writer_memory_set_dest(s->writer, (const char *)out->data + hdr,
                                    (int64_t)(out->cap - hdr));
        rc = avro_value_write(s->writer, value);
    }
    if (rc != 0)
        return saga_errf(SAGA_ERR_INVALID, errstr, errstr_size, "avro: %s", avro_strerror());
    out->len = hdr + (size_t)avro_writer_tell(s->writer);
    return SAGA_OK;
}

/* --- decode: bytes -> avro value -> struct --------------------------------- */

static int project_record(const struct rplan *p, avro_value_t *rec, char *base,
                          struct saga_arena *a, char *errstr, size_t errstr_size);

static int get_string(avro_value_t *v, const char **dst, struct saga_arena *a)
{
    const char *str;
    size_t size;
    if (avro_value_get_string(v, &str, &size) != 0)
        return -1;
    /* size counts the NUL avro-c keeps after the bytes */
    return (*dst = saga_arena_strndup(a, str, size ? size - 1 : 0)) ? 0 : -1;
}

static int project_field(const struct saga_field_desc *fd, const struct fplan *fp, avro_value_t *v,
                         char *base, struct saga_arena *a, char *errstr, size_t errstr_size)
{
    void *dst = base + fd->off;

    switch (fd->kind) {
    case FK_STRING:
        return get_string(v, (const char **)dst, a);
    case FK_OPT_STRING: {
        avro_value_t branch;
        int d;
        if (fp->wtype == AVRO_NULL) {
            *(const char **)dst = NULL;
            return 0;
        }
        if (fp->wtype == AVRO_STRING)
            return get_string(v, (const char **)dst, a);
        if (avro_value_get_discriminant(v, &d) != 0 ||
            avro_value_get_current_branch(v, &branch) != 0)
            return -1;
        if (d == fp->null_branch) {
            *(const char **)dst = NULL;
            return 0;
        }
        return get_string(&branch, (const char **)dst, a);
    }
    case FK_INT:
        return avro_value_get_int(v, (int32_t *)dst);
    case FK_LONG:
        if (fp->wtype == AVRO_INT32) {
            int32_t i;
            if (avro_value_get_int(v, &i) != 0)
                return -1;
            *(int64_t *)dst = i;
            return 0;
        }
        return avro_value_get_long(v, (int64_t *)dst);
    case FK_ENUM: {
        int sym;
        if (avro_value_get_enum(v, &sym) != 0)
            return -1;
        if (fp->enum_map[sym] < 0) {
            plan_err(errstr, errstr_size, "", fd->name,
                     "enum symbol unknown to this reader, which has no default");
            return -2;
        }
        *(int *)dst = fp->enum_map[sym];
        return 0;
    }
    case FK_RECORD:
        return project_record(fp->sub, v, dst, a, errstr, errstr_size);
    case FK_ARRAY: {
        size_t n = 0;
        char *items;
        if (avro_value_get_size(v, &n) != 0)
            return -1;
        items = n ? saga_arena_alloc(a, n * fd->rec->size) : NULL;
        if (n && !items)
            return -1;
        for (size_t i = 0; i < n; i++) {
            avro_value_t item;
            int rc;
            if (avro_value_get_by_index(v, i, &item, NULL) != 0)
                return -1;
            if ((rc = project_record(fp->sub, &item, items + i * fd->rec->size, a, errstr,
                                     errstr_size)) != 0)
                return rc;
        }
        *(char **)dst = items;
        *(size_t *)(base + fd->count_off) = n;
        return 0;
    }
    }
    return -1;
}

/* 0, -1 on an avro-c or memory failure, -2 on an enum without a reader default. */
static int project_record(const struct rplan *p, avro_value_t *rec, char *base,
                          struct saga_arena *a, char *errstr, size_t errstr_size)
{
    for (int i = 0; i < p->desc->nfields; i++) {
        const struct saga_field_desc *fd = &p->desc->fields[i];
        const struct fplan *fp = &p->f[i];
        avro_value_t fv;
        int rc;

        if (fp->widx < 0) {
            if (apply_default(fd, fd->def, base + fd->off, a) != 0) {
                plan_err(errstr, errstr_size, p->desc->name, fd->name,
                         "the reader's default does not fit the field");
                return -2;
            }
            continue;
        }
        if (avro_value_get_by_index(rec, (size_t)fp->widx, &fv, NULL) != 0)
            return -1;
        if ((rc = project_field(fd, fp, &fv, base, a, errstr, errstr_size)) != 0)
            return rc;
    }
    return 0;
}

static saga_decode_err_t fail(struct saga_event *ev, saga_decode_err_t e, char *errstr,
                              size_t errstr_size, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static saga_decode_err_t fail(struct saga_event *ev, saga_decode_err_t e, char *errstr,
                              size_t errstr_size, const char *fmt, ...)
{
    if (errstr && errstr_size) {
        char detail[512] = "";
        if (fmt) {
            va_list ap;
            va_start(ap, fmt);
            vsnprintf(detail, sizeof(detail), fmt, ap);
            va_end(ap);
        }
        snprintf(errstr, errstr_size, "%s%s%s", saga_decode_err2str(e), detail[0] ? ": " : "",
                 detail);
    }
    saga_event_release(ev);
    return e;
}

/* Finds (or fetches) the writer schema named by the framing. */
static saga_decode_err_t find_writer(struct saga_serde *s, const unsigned char *p, size_t len,
                                     struct known **out, size_t *hdr, char *errstr,
                                     size_t errstr_size)
{
    if (len >= 2 && p[0] == 0xc3 && p[1] == 0x01) {
        uint64_t fp = 0;
        if (len < SINGLE_OBJECT_HEADER) {
            snprintf(errstr, errstr_size, "%zu bytes, the single-object header alone is 10", len);
            return SAGA_DECODE_TRUNCATED;
        }
        for (int i = 0; i < 8; i++)
            fp |= (uint64_t)p[2 + i] << (8 * i);
        *hdr = SINGLE_OBJECT_HEADER;
        if (s->last && s->last->fingerprint == fp) {
            *out = s->last;
            return SAGA_DECODE_OK;
        }
        for (size_t i = 0; i < s->nknown; i++) {
            if (s->known[i]->fingerprint == fp) {
                *out = s->last = s->known[i];
                return SAGA_DECODE_OK;
            }
        }
        snprintf(errstr, errstr_size,
                 "%016llx (add the writer's schema with SAGA_SCHEMA_DIR, or use a registry)",
                 (unsigned long long)fp);
        return SAGA_DECODE_UNKNOWN_FINGERPRINT;
    }
    if (p[0] == 0x00) {
        int32_t id;
        char *json = NULL;
        saga_err_t err;
        saga_decode_err_t e;

        if (len < CONFLUENT_HEADER) {
            snprintf(errstr, errstr_size, "%zu bytes, the Confluent header alone is 5", len);
            return SAGA_DECODE_TRUNCATED;
        }
        id = (int32_t)((uint32_t)p[1] << 24 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 8 | p[4]);
        *hdr = CONFLUENT_HEADER;
        if (s->last && s->last->registry_id == id) {
            *out = s->last;
            return SAGA_DECODE_OK;
        }
        for (size_t i = 0; i < s->nknown; i++) {
            if (s->known[i]->registry_id == id) {
                *out = s->last = s->known[i];
                return SAGA_DECODE_OK;
            }
        }
        if (!s->registry) {
            snprintf(errstr, errstr_size,
                     "%ld, and no schema registry is configured "
                     "(SCHEMA_REGISTRY_URL)",
                     (long)id);
            return SAGA_DECODE_UNKNOWN_SCHEMA_ID;
        }
        err = saga_registry_get(s->registry, id, &json, errstr, errstr_size);
        if (err == SAGA_ERR_NOT_FOUND)
            return SAGA_DECODE_UNKNOWN_SCHEMA_ID;
        if (err == SAGA_ERR_NOMEM)
            return SAGA_DECODE_NOMEM;
        if (err)
            return SAGA_DECODE_REGISTRY_UNAVAILABLE;
        e = known_add(s, json, strlen(json), id, out, errstr, errstr_size);
        free(json);
        if (e == SAGA_DECODE_OK)
            s->last = *out;
        return e;
    }
    snprintf(errstr, errstr_size, "first byte 0x%02x", p[0]);
    return SAGA_DECODE_BAD_MAGIC;
}

saga_decode_err_t saga_serde_decode(struct saga_serde *s, const void *data, size_t len,
                                    struct saga_event *ev, char *errstr, size_t errstr_size)
{
    const unsigned char *p = data;
    struct known *k = NULL;
    size_t hdr = 0, where = 0;
    saga_decode_err_t e;
    char detail[256] = "";
    int rc;

    if (ev->arena)
        saga_arena_reset(ev->arena);
    else if (!(ev->arena = saga_arena_new()))
        return fail(ev, SAGA_DECODE_NOMEM, errstr, errstr_size, NULL);
    {
        struct saga_arena *a = ev->arena;
        memset(ev, 0, sizeof(*ev));
        ev->arena = a;
    }
    if (!p || len == 0)
        return fail(ev, SAGA_DECODE_EMPTY, errstr, errstr_size, NULL);
    if ((e = find_writer(s, p, len, &k, &hdr, detail, sizeof(detail))))
        return fail(ev, e, errstr, errstr_size, "%s", detail);
    if (k->type < 0 || !k->plan)
        return fail(ev, k->type < 0 ? SAGA_DECODE_NOT_AN_EVENT : SAGA_DECODE_INCOMPATIBLE, errstr,
                    errstr_size, "%s", k->plan_errstr);
    if ((e = saga_avro_validate(k->vprog, p + hdr, len - hdr, &where)))
        return fail(ev, e, errstr, errstr_size, "at byte %zu of %zu", hdr + where, len);

    avro_value_reset(&k->value);
    avro_reader_memory_set_source(s->reader_mem, (const char *)p + hdr, (int64_t)(len - hdr));
    if (avro_value_read(s->reader_mem, &k->value) != 0)
        return fail(ev, SAGA_DECODE_BAD_VALUE, errstr, errstr_size, "avro: %s", avro_strerror());
    ev->type = (saga_event_type_t)k->type;
    rc = project_record(k->plan, &k->value, (char *)ev, ev->arena, detail, sizeof(detail));
    if (rc == -2)
        return fail(ev, SAGA_DECODE_BAD_ENUM, errstr, errstr_size, "%s", detail);
    if (rc != 0)
        return fail(ev, SAGA_DECODE_NOMEM, errstr, errstr_size, "%s", avro_strerror());
    if (errstr && errstr_size)
        errstr[0] = '\0';
    return SAGA_DECODE_OK;
}

/* --- events ---------------------------------------------------------------- */

void saga_event_init(struct saga_event *ev, saga_event_type_t type)
{
    memset(ev, 0, sizeof(*ev));
    ev->type = type;
}

void saga_event_release(struct saga_event *ev)
{
    if (!ev)
        return;
    saga_arena_destroy(ev->arena);
    memset(ev, 0, sizeof(*ev));
}
