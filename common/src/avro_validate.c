#include "avro_validate.h"

#include <string.h>

#include "saga/utf8.h"

struct walk {
    const unsigned char *p, *end, *start;
    const unsigned char *err_at; /* where the innermost failing value starts */
    size_t items;
};

static saga_decode_err_t read_long(struct walk *w, int64_t *out)
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

static saga_decode_err_t read_int(struct walk *w, int64_t *out)
{
    saga_decode_err_t e = read_long(w, out);
    if (e == SAGA_DECODE_OK && (*out < INT32_MIN || *out > INT32_MAX))
        return SAGA_DECODE_BAD_VARINT;
    return e;
}

static saga_decode_err_t read_length(struct walk *w, int64_t *len)
{
    saga_decode_err_t e = read_long(w, len);
    if (e)
        return e;
    if (*len < 0 || *len > w->end - w->p)
        return SAGA_DECODE_BAD_LENGTH;
    return SAGA_DECODE_OK;
}

static avro_schema_t unlink_schema(avro_schema_t s)
{
    while (s && avro_typeof(s) == AVRO_LINK)
        s = avro_schema_link_target(s);
    return s;
}

/* The fewest bytes one datum of s can take (0 is possible: null, empty records). */
static size_t min_size(avro_schema_t s, int depth)
{
    s = unlink_schema(s);
    if (!s || depth > SAGA_AVRO_MAX_DEPTH)
        return 0;
    switch (avro_typeof(s)) {
    case AVRO_NULL:
        return 0;
    case AVRO_FLOAT:
        return 4;
    case AVRO_DOUBLE:
        return 8;
    case AVRO_FIXED:
        return (size_t)avro_schema_fixed_size(s);
    case AVRO_RECORD: {
        size_t n = 0;
        for (size_t i = 0; i < avro_schema_record_size(s); i++)
            n += min_size(avro_schema_record_field_get_by_index(s, (int)i), depth + 1);
        return n;
    }
    default: /* everything else starts with at least one varint byte */
        return 1;
    }
}

static saga_decode_err_t walk(struct walk *w, avro_schema_t s, int depth);

static saga_decode_err_t walk_blocks(struct walk *w, avro_schema_t item, int is_map, int depth)
{
    size_t item_min = min_size(item, depth + 1) + (is_map ? 1 : 0);

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
            if ((e = read_length(w, &bytes))) /* the block's size in bytes */
                return e;
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
                if ((e = read_length(w, &klen)))
                    return e;
                if (!saga_utf8_valid_nonul((const char *)w->p, (size_t)klen))
                    return SAGA_DECODE_BAD_UTF8;
                w->p += klen;
            }
            if ((e = walk(w, item, depth + 1)))
                return e;
        }
    }
}

static saga_decode_err_t walk_value(struct walk *w, avro_schema_t s, int depth);

static saga_decode_err_t walk(struct walk *w, avro_schema_t s, int depth)
{
    const unsigned char *start = w->p;
    saga_decode_err_t e = walk_value(w, s, depth);
    if (e && !w->err_at)
        w->err_at = start;
    return e;
}

static saga_decode_err_t walk_value(struct walk *w, avro_schema_t s, int depth)
{
    saga_decode_err_t e;
    int64_t n;

    s = unlink_schema(s);
    if (!s || depth > SAGA_AVRO_MAX_DEPTH)
        return SAGA_DECODE_TOO_LARGE;
    switch (avro_typeof(s)) {
    case AVRO_NULL:
        return SAGA_DECODE_OK;
    case AVRO_BOOLEAN:
        if (w->p >= w->end)
            return SAGA_DECODE_TRUNCATED;
        if (*w->p > 1)
            return SAGA_DECODE_BAD_VALUE;
        w->p++;
        return SAGA_DECODE_OK;
    case AVRO_INT32:
        return read_int(w, &n);
    case AVRO_INT64:
        return read_long(w, &n);
    case AVRO_FLOAT:
    case AVRO_DOUBLE: {
        size_t size = avro_typeof(s) == AVRO_FLOAT ? 4 : 8;
        if ((size_t)(w->end - w->p) < size)
            return SAGA_DECODE_TRUNCATED;
        w->p += size;
        return SAGA_DECODE_OK;
    }
    case AVRO_FIXED: {
        int64_t size = avro_schema_fixed_size(s);
        if (size < 0 || size > w->end - w->p)
            return SAGA_DECODE_TRUNCATED;
        w->p += size;
        return SAGA_DECODE_OK;
    }
    case AVRO_BYTES:
    case AVRO_STRING:
        if ((e = read_long(w, &n)))
            return e;
        if (n < 0 || n > w->end - w->p)
            return SAGA_DECODE_BAD_LENGTH;
        if (avro_typeof(s) == AVRO_STRING && !saga_utf8_valid_nonul((const char *)w->p, (size_t)n))
            return SAGA_DECODE_BAD_UTF8;
        w->p += n;
        return SAGA_DECODE_OK;
    case AVRO_ENUM:
        if ((e = read_int(w, &n)))
            return e;
        if (n < 0 || n >= avro_schema_enum_number_of_symbols(s))
            return SAGA_DECODE_BAD_ENUM;
        return SAGA_DECODE_OK;
    case AVRO_UNION:
        if ((e = read_long(w, &n)))
            return e;
        if (n < 0 || (uint64_t)n >= avro_schema_union_size(s))
            return SAGA_DECODE_BAD_UNION;
        return walk(w, avro_schema_union_branch(s, (int)n), depth + 1);
    case AVRO_RECORD:
        for (size_t i = 0; i < avro_schema_record_size(s); i++)
            if ((e = walk(w, avro_schema_record_field_get_by_index(s, (int)i), depth + 1)))
                return e;
        return SAGA_DECODE_OK;
    case AVRO_ARRAY:
        return walk_blocks(w, avro_schema_array_items(s), 0, depth);
    case AVRO_MAP:
        return walk_blocks(w, avro_schema_map_values(s), 1, depth);
    default:
        return SAGA_DECODE_BAD_SCHEMA;
    }
}

saga_decode_err_t saga_avro_validate(avro_schema_t schema, const unsigned char *data, size_t len,
                                     size_t *where)
{
    struct walk w = {data, data + len, data, NULL, 0};
    saga_decode_err_t e = walk(&w, schema, 0);

    if (e == SAGA_DECODE_OK && w.p != w.end)
        e = SAGA_DECODE_TRAILING_BYTES;
    if (where)
        *where =
            (size_t)((e && w.err_at && e != SAGA_DECODE_TRAILING_BYTES ? w.err_at : w.p) - w.start);
    return e;
}
