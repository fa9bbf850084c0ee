#include "saga/avro_compat.h"
#include "saga/avro_canon.h"
#include <stdarg.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_NAMES 256

/* Named types of one schema, by fullname. */
struct names {
    int n;
    char *full[MAX_NAMES];
    json_t *def[MAX_NAMES];
    char *ns[MAX_NAMES]; /* namespace that applies inside the definition */
};

struct ctx {
    struct names r, w;
    saga_compat_report_fn report;
    void *arg;
    int problems;
    /* pairs of records already being compared, so recursive types terminate */
    json_t *seen_r[64], *seen_w[64];
    int nseen;
};

static const char *short_name(const char *full)
{
    const char *dot = strrchr(full, '.');
    return dot ? dot + 1 : full;
}

static void collect(json_t *s, const char *ns, struct names *names, int depth)
{
    size_t i;
    json_t *x;

    if (depth > 64)
        return;
    if (json_is_array(s)) {
        json_array_foreach(s, i, x) collect(x, ns, names, depth + 1);
        return;
    }
    if (!json_is_object(s))
        return;
    {
        const char *type = json_string_value(json_object_get(s, "type"));
        const char *name = json_string_value(json_object_get(s, "name"));
        const char *own_ns = json_string_value(json_object_get(s, "namespace"));
        char *inner = NULL;

        if (!type) {
            collect(json_object_get(s, "type"), ns, names, depth + 1);
            return;
        }
        if (name && (strcmp(type, "record") == 0 || strcmp(type, "error") == 0 ||
                     strcmp(type, "enum") == 0 || strcmp(type, "fixed") == 0)) {
            char *full = saga_avro_fullname(name, strchr(name, '.') ? NULL : own_ns ? own_ns : ns);
            const char *dot = full ? strrchr(full, '.') : NULL;
            inner = full ? (dot ? strndup(full, (size_t)(dot - full)) : strdup("")) : NULL;
            if (full && inner && names->n < MAX_NAMES) {
                names->full[names->n] = full;
                names->def[names->n] = s;
                names->ns[names->n] = inner;
                names->n++;
            } else {
                free(full);
                free(inner);
                return;
            }
            json_array_foreach(json_object_get(s, "fields"), i, x)
                collect(json_object_get(x, "type"), inner, names, depth + 1);
            return;
        }
        collect(json_object_get(s, "items"), ns, names, depth + 1);
        collect(json_object_get(s, "values"), ns, names, depth + 1);
    }
}

static void names_free(struct names *n)
{
    for (int i = 0; i < n->n; i++) {
        free(n->full[i]);
        free(n->ns[i]);
    }
}

/* The namespace a definition was registered with (for references inside it). */
static const char *ns_of(const struct names *names, json_t *def, const char *fallback)
{
    for (int i = 0; i < names->n; i++)
        if (names->def[i] == def)
            return names->ns[i];
    return fallback;
}

/*
 * Resolves s to what it denotes: a primitive name (*prim set) or a definition
 * object / union array. References are looked up by fullname.
 */
static json_t *resolve(json_t *s, const char *ns, const struct names *names, const char **prim)
{
    *prim = NULL;
    for (int guard = 0; guard < 8; guard++) {
        if (json_is_string(s)) {
            const char *v = json_string_value(s);
            char *full;
            if (saga_avro_is_primitive(v)) {
                *prim = v;
                return NULL;
            }
            full = saga_avro_fullname(v, ns);
            for (int i = 0; full && i < names->n; i++) {
                if (strcmp(names->full[i], full) == 0) {
                    free(full);
                    return names->def[i];
                }
            }
            free(full);
            return NULL;
        }
        if (json_is_object(s)) {
            json_t *t = json_object_get(s, "type");
            const char *tn = json_string_value(t);
            if (!tn) {
                s = t;
                continue;
            }
            if (saga_avro_is_primitive(tn)) {
                *prim = tn;
                return NULL;
            }
            if (strcmp(tn, "record") && strcmp(tn, "error") && strcmp(tn, "enum") &&
                strcmp(tn, "fixed") && strcmp(tn, "array") && strcmp(tn, "map")) {
                s = t; /* {"type": "some.Named"} */
                continue;
            }
            return s;
        }
        return s; /* union array, or garbage */
    }
    return NULL;
}

static void problem(struct ctx *c, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void problem(struct ctx *c, const char *path, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    c->problems++;
    if (c->report)
        c->report(c->arg, path, msg);
}

static const char *kind(json_t *def, const char *prim)
{
    if (prim)
        return prim;
    if (json_is_array(def))
        return "union";
    if (json_is_object(def))
        return json_string_value(json_object_get(def, "type"));
    return "unknown";
}

static int promotes(const char *w, const char *r)
{
    if (strcmp(w, r) == 0)
        return 1;
    if (strcmp(w, "int") == 0)
        return !strcmp(r, "long") || !strcmp(r, "float") || !strcmp(r, "double");
    if (strcmp(w, "long") == 0)
        return !strcmp(r, "float") || !strcmp(r, "double");
    if (strcmp(w, "float") == 0)
        return !strcmp(r, "double");
    if (strcmp(w, "string") == 0)
        return !strcmp(r, "bytes");
    if (strcmp(w, "bytes") == 0)
        return !strcmp(r, "string");
    return 0;
}

static void check(struct ctx *c, json_t *r, const char *rns, json_t *w, const char *wns,
                  const char *path, int depth);

/* 1 if check(r, w) would report nothing (used to pick a union branch). */
static int quiet_ok(struct ctx *c, json_t *r, const char *rns, json_t *w, const char *wns,
                    int depth)
{
    struct ctx q = *c;
    q.report = NULL;
    q.problems = 0;
    check(&q, r, rns, w, wns, "", depth);
    return q.problems == 0;
}

static void check_record(struct ctx *c, json_t *rd, json_t *wd, const char *path, int depth)
{
    json_t *rf, *wf, *rfields = json_object_get(rd, "fields"),
                     *wfields = json_object_get(wd, "fields");
    const char *rns = ns_of(&c->r, rd, ""), *wns = ns_of(&c->w, wd, "");
    size_t i, j;

    for (int k = 0; k < c->nseen; k++)
        if (c->seen_r[k] == rd && c->seen_w[k] == wd)
            return;
    if (c->nseen < 64) {
        c->seen_r[c->nseen] = rd;
        c->seen_w[c->nseen] = wd;
        c->nseen++;
    }
    json_array_foreach(rfields, i, rf)
    {
        const char *fname = json_string_value(json_object_get(rf, "name"));
        char sub[512];
        int found = 0;
        if (!fname)
            continue;
        snprintf(sub, sizeof(sub), "%s.%s", path, fname);
        json_array_foreach(wfields, j, wf)
        {
            const char *wname = json_string_value(json_object_get(wf, "name"));
            if (wname && strcmp(wname, fname) == 0) {
                found = 1;
                check(c, json_object_get(rf, "type"), rns, json_object_get(wf, "type"), wns, sub,
                      depth + 1);
                break;
            }
        }
        if (!found && !json_object_get(rf, "default"))
            problem(c, sub,
                    "the reader needs this field, the writer lacks it and it has no "
                    "default");
    }
}

static void check(struct ctx *c, json_t *r, const char *rns, json_t *w, const char *wns,
                  const char *path, int depth)
{
    const char *rp, *wp;
    json_t *rd = resolve(r, rns, &c->r, &rp), *wd = resolve(w, wns, &c->w, &wp);
    const char *rk = kind(rd, rp), *wk = kind(wd, wp);
    size_t i;
    json_t *b;

    if (depth > 64)
        return;
    if (!rk || !wk || (!rp && !rd) || (!wp && !wd)) {
        problem(c, path, "a type could not be resolved");
        return;
    }
    if (strcmp(wk, "union") == 0) {
        /* Every branch the writer may use must be readable. */
        json_array_foreach(wd, i, b)
        {
            char sub[512];
            const char *bp;
            json_t *bd = resolve(b, wns, &c->w, &bp);
            snprintf(sub, sizeof(sub), "%s<%s>", path, kind(bd, bp) ? kind(bd, bp) : "?");
            check(c, r, rns, b, wns, sub, depth + 1);
        }
        return;
    }
    if (strcmp(rk, "union") == 0) {
        json_array_foreach(rd, i, b)
        {
            if (quiet_ok(c, b, rns, w, wns, depth + 1))
                return;
        }
        problem(c, path, "the writer's %s matches no branch of the reader's union", wk);
        return;
    }
    if (rp || wp) {
        if (!rp || !wp || !promotes(wp, rp))
            problem(c, path, "the writer's %s cannot be read as %s", wk, rk);
        return;
    }
    if (strcmp(rk, wk) != 0) {
        problem(c, path, "the writer's %s cannot be read as %s", wk, rk);
        return;
    }
    if (strcmp(rk, "record") == 0 || strcmp(rk, "error") == 0 || strcmp(rk, "enum") == 0 ||
        strcmp(rk, "fixed") == 0) {
        const char *rn = json_string_value(json_object_get(rd, "name"));
        const char *wn = json_string_value(json_object_get(wd, "name"));
        if (!rn || !wn || strcmp(short_name(rn), short_name(wn)) != 0) {
            problem(c, path, "the writer's %s %s is not the reader's %s", wk, wn ? wn : "?",
                    rn ? rn : "?");
            return;
        }
    }
    if (strcmp(rk, "record") == 0 || strcmp(rk, "error") == 0) {
        check_record(c, rd, wd, path, depth);
    } else if (strcmp(rk, "enum") == 0) {
        json_t *rs = json_object_get(rd, "symbols"), *ws = json_object_get(wd, "symbols"), *x, *y;
        int has_default = json_is_string(json_object_get(rd, "default"));
        json_array_foreach(ws, i, x)
        {
            size_t j;
            int found = 0;
            json_array_foreach(rs, j, y) found |= json_equal(x, y);
            if (!found && !has_default)
                problem(c, path,
                        "the writer's symbol %s is unknown to the reader, whose enum "
                        "has no default",
                        json_string_value(x) ? json_string_value(x) : "?");
        }
    } else if (strcmp(rk, "fixed") == 0) {
        if (!json_equal(json_object_get(rd, "size"), json_object_get(wd, "size")))
            problem(c, path, "fixed sizes differ");
    } else if (strcmp(rk, "array") == 0) {
        char sub[512];
        snprintf(sub, sizeof(sub), "%s[]", path);
        check(c, json_object_get(rd, "items"), rns, json_object_get(wd, "items"), wns, sub,
              depth + 1);
    } else if (strcmp(rk, "map") == 0) {
        char sub[512];
        snprintf(sub, sizeof(sub), "%s{}", path);
        check(c, json_object_get(rd, "values"), rns, json_object_get(wd, "values"), wns, sub,
              depth + 1);
    }
}

int saga_avro_compat_check(json_t *reader, json_t *writer, saga_compat_report_fn report, void *arg)
{
    struct ctx *c = calloc(1, sizeof(*c));
    const char *rn = json_string_value(json_object_get(reader, "name"));
    int n;

    if (!c)
        return 1;
    c->report = report;
    c->arg = arg;
    collect(reader, "", &c->r, 0);
    collect(writer, "", &c->w, 0);
    check(c, reader, "", writer, "", rn ? short_name(rn) : "", 0);
    n = c->problems;
    names_free(&c->r);
    names_free(&c->w);
    free(c);
    return n;
}
