#include "avro_validate.h"

#include <stdlib.h>
#include <string.h>

#include "saga/utf8.h"

enum vop {
    V_NULL,
    V_BOOL,
    V_INT,
    V_LONG,
    V_FLOAT,
    V_DOUBLE,
    V_BYTES,
    V_STRING,
    V_FIXED,
    V_ENUM,
    V_UNION,
    V_RECORD,
    V_ARRAY,
    V_MAP
};

struct vnode {
    enum vop op;
    uint32_t n;          /* symbols, branches, fields; size of a fixed */
    size_t min_size;     /* fewest bytes one datum takes */
    struct vnode **kids; /* branches, fields, or the one item type */
};

struct saga_vprog {
    struct vnode *root;
    /* every node, for freeing; and the schema each came from, for named types */
    struct vnode **nodes;
    avro_schema_t *from;
    size_t nnodes, cap;
};

static avro_schema_t unlink_schema(avro_schema_t s)
{
    while (s && avro_typeof(s) == AVRO_LINK)
        s = avro_schema_link_target(s);
    return s;
}

static struct vnode *compile(struct saga_vprog *p, avro_schema_t s, int depth)
{
    struct vnode *v;
    size_t nk = 0;

    s = unlink_schema(s);
    if (!s || depth > 64)
        return NULL;
    /* A named type compiles once; a recursive reference finds it here. */
    for (size_t i = 0; i < p->nnodes; i++)
        if (p->from[i] == s)
            return p->nodes[i];
    if (p->nnodes == p->cap) {
        size_t cap = p->cap ? p->cap * 2 : 32;
        struct vnode **nn = realloc(p->nodes, cap * sizeof(*nn));
        avro_schema_t *nf;
        if (!nn)
            return NULL;
        p->nodes = nn;
        if (!(nf = realloc(p->from, cap * sizeof(*nf))))
            return NULL;
        p->from = nf;
        p->cap = cap;
    }
    if (!(v = calloc(1, sizeof(*v))))
        return NULL;
    p->nodes[p->nnodes] = v;
    p->from[p->nnodes] = s;
    p->nnodes++;

    switch (avro_typeof(s)) {
    case AVRO_NULL:
        v->op = V_NULL;
        break;
    case AVRO_BOOLEAN:
        v->op = V_BOOL;
        v->min_size = 1;
        break;
    case AVRO_INT32:
        v->op = V_INT;
        v->min_size = 1;
        break;
    case AVRO_INT64:
        v->op = V_LONG;
        v->min_size = 1;
        break;
    case AVRO_FLOAT:
        v->op = V_FLOAT;
        v->min_size = 4;
        break;
    case AVRO_DOUBLE:
        v->op = V_DOUBLE;
        v->min_size = 8;
        break;
    case AVRO_BYTES:
        v->op = V_BYTES;
        v->min_size = 1;
        break;
    case AVRO_STRING:
        v->op = V_STRING;
        v->min_size = 1;
        break;
    case AVRO_FIXED:
        v->op = V_FIXED;
        if (avro_schema_fixed_size(s) < 0 || avro_schema_fixed_size(s) > (1 << 20))
            return NULL;
        v->n = (uint32_t)avro_schema_fixed_size(s);
        v->min_size = v->n;
        break;
    case AVRO_ENUM:
        v->op = V_ENUM;
        v->n = (uint32_t)avro_schema_enum_number_of_symbols(s);
        v->min_size = 1;
        break;
    case AVRO_UNION:
        v->op = V_UNION;
        v->n = (uint32_t)avro_schema_union_size(s);
        v->min_size = 1;
        nk = v->n;
        break;
    case AVRO_RECORD:
        v->op = V_RECORD;
        v->n = (uint32_t)avro_schema_record_size(s);
        nk = v->n;
        break;
    case AVRO_ARRAY:
    case AVRO_MAP:
        v->op = avro_typeof(s) == AVRO_ARRAY ? V_ARRAY : V_MAP;
        v->min_size = 1;
        nk = 1;
        break;
    default:
        return NULL;
    }
    if (nk) {
        if (!(v->kids = calloc(nk, sizeof(*v->kids))))
            return NULL;
        for (size_t i = 0; i < nk; i++) {
            avro_schema_t k = v->op == V_UNION    ? avro_schema_union_branch(s, (int)i)
                              : v->op == V_RECORD ? avro_schema_record_field_get_by_index(s, (int)i)
                              : v->op == V_ARRAY  ? avro_schema_array_items(s)
                                                  : avro_schema_map_values(s);
            if (!(v->kids[i] = compile(p, k, depth + 1)))
                return NULL;
            if (v->op == V_RECORD)
                v->min_size += v->kids[i]->min_size;
        }
    }
    return v;
}

void saga_vprog_free(struct saga_vprog *p)
{
    if (!p)
        return;
    for (size_t i = 0; i < p->nnodes; i++) {
        free(p->nodes[i]->kids);
        free(p->nodes[i]);
    }
    free(p->nodes);
    free(p->from);
    free(p);
}

struct saga_vprog *saga_vprog_new(avro_schema_t schema)
{
    struct saga_vprog *p = calloc(1, sizeof(*p));
    if (p && !(p->root = compile(p, schema, 0))) {
        saga_vprog_free(p);
        return NULL;
    }
    return p;
}

/* --- the walk --------------------------------------------------------------- */

struct walk {
    const unsigned char *p, *end, *start;
    const unsigned char *err_at; /* where the innermost failing value starts */
    size_t items;
};

static inline saga_decode_err_t read_long(struct walk *w, int64_t *out)
{
    uint64_t v = 0;
    int shift = 0;

    for (int i = 0; i < 10; i++) {
        unsigned char b;
        if (w->p >= w->end)
            return SAGA_DECODE_TRUNCATED;
        b = *w->p++;
        if (i == 9 && b > 1) /* the tenth byte holds the 64th bit only */
            return SAGA_DECODE_BAD_VARINT;
        v |= (uint64_t)(b & 0x7f) << shift;
        if (!(b & 0x80)) {
            *out = (int64_t)((v >> 1) ^ (0 - (v & 1)));
            return SAGA_DECODE_OK;
        }
        shift += 7;
    }
    return SAGA_DECODE_BAD_VARINT;
}

static inline saga_decode_err_t read_int(struct walk *w, int64_t *out)
{
    saga_decode_err_t e = read_long(w, out);
    if (e == SAGA_DECODE_OK && (*out < INT32_MIN || *out > INT32_MAX))
        return SAGA_DECODE_BAD_VARINT;
    return e;
}

static saga_decode_err_t walk(struct walk *w, const struct vnode *v, int depth);

static saga_decode_err_t walk_blocks(struct walk *w, const struct vnode *v, int depth)
{
    const struct vnode *item = v->kids[0];
    int is_map = v->op == V_MAP;
    size_t item_min = item->min_size + (is_map ? 1 : 0);

    for (;;) {
        int64_t count, bytes;
        saga_decode_err_t e = read_long(w, &count);
        if (e)
            return e;
        if (count == 0)
            return SAGA_DECODE_OK;
        if (count < 0) {
            if (count == INT64_MIN)
                return SAGA_DECODE_BAD_LENGTH;
            count = -count;
            if ((e = read_long(w, &bytes))) /* the block's size in bytes */
                return e;
            if (bytes < 0 || bytes > w->end - w->p)
                return SAGA_DECODE_BAD_LENGTH;
        }
        /* Every item takes at least item_min bytes; zero-size items are capped by count. */
        if (item_min > 0 && (uint64_t)count > (uint64_t)(w->end - w->p) / item_min)
            return SAGA_DECODE_BAD_LENGTH;
        if ((uint64_t)count > SAGA_AVRO_MAX_ITEMS - w->items)
            return SAGA_DECODE_TOO_LARGE;
        w->items += (size_t)count;
        for (int64_t i = 0; i < count; i++) {
            if (is_map) {
                int64_t klen;
                if ((e = read_long(w, &klen)))
                    return e;
                if (klen < 0 || klen > w->end - w->p)
                    return SAGA_DECODE_BAD_LENGTH;
                if (!saga_utf8_valid_nonul((const char *)w->p, (size_t)klen))
                    return SAGA_DECODE_BAD_UTF8;
                w->p += klen;
            }
            if ((e = walk(w, item, depth + 1)))
                return e;
        }
    }
}

static saga_decode_err_t walk_value(struct walk *w, const struct vnode *v, int depth)
{
    saga_decode_err_t e;
    int64_t n;

    if (depth > SAGA_AVRO_MAX_DEPTH)
        return SAGA_DECODE_TOO_LARGE;
    switch (v->op) {
    case V_NULL:
        return SAGA_DECODE_OK;
    case V_BOOL:
        if (w->p >= w->end)
            return SAGA_DECODE_TRUNCATED;
        if (*w->p > 1)
            return SAGA_DECODE_BAD_VALUE;
        w->p++;
        return SAGA_DECODE_OK;
    case V_INT:
        return read_int(w, &n);
    case V_LONG:
        return read_long(w, &n);
    case V_FLOAT:
    case V_DOUBLE:
    case V_FIXED: {
        size_t size = v->op == V_FLOAT ? 4 : v->op == V_DOUBLE ? 8 : v->n;
        if ((size_t)(w->end - w->p) < size)
            return SAGA_DECODE_TRUNCATED;
        w->p += size;
        return SAGA_DECODE_OK;
    }
    case V_BYTES:
    case V_STRING:
        if ((e = read_long(w, &n)))
            return e;
        if (n < 0 || n > w->end - w->p)
            return SAGA_DECODE_BAD_LENGTH;
        if (v->op == V_STRING && !saga_utf8_valid_nonul((const char *)w->p, (size_t)n))
            return SAGA_DECODE_BAD_UTF8;
        w->p += n;
        return SAGA_DECODE_OK;
    case V_ENUM:
        if ((e = read_int(w, &n)))
            return e;
        return n < 0 || n >= (int64_t)v->n ? SAGA_DECODE_BAD_ENUM : SAGA_DECODE_OK;
    case V_UNION:
        if ((e = read_long(w, &n)))
            return e;
        if (n < 0 || n >= (int64_t)v->n)
            return SAGA_DECODE_BAD_UNION;
        return walk(w, v->kids[n], depth + 1);
    case V_RECORD:
        for (uint32_t i = 0; i < v->n; i++)
            if ((e = walk(w, v->kids[i], depth + 1)))
                return e;
        return SAGA_DECODE_OK;
    case V_ARRAY:
    case V_MAP:
        return walk_blocks(w, v, depth);
    }
    return SAGA_DECODE_BAD_SCHEMA;
}

static saga_decode_err_t walk(struct walk *w, const struct vnode *v, int depth)
{
    const unsigned char *start = w->p;
    saga_decode_err_t e = walk_value(w, v, depth);
    if (e && !w->err_at)
        w->err_at = start;
    return e;
}

saga_decode_err_t saga_avro_validate(const struct saga_vprog *p, const unsigned char *data,
                                     size_t len, size_t *where)
{
    struct walk w = {data, data + len, data, NULL, 0};
    saga_decode_err_t e = walk(&w, p->root, 0);

    if (e == SAGA_DECODE_OK && w.p != w.end)
        e = SAGA_DECODE_TRAILING_BYTES;
    if (where)
        *where =
            (size_t)((e && w.err_at && e != SAGA_DECODE_TRAILING_BYTES ? w.err_at : w.p) - w.start);
    return e;
}
