#include "rules.h"

#include <ctype.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "saga/choreography.h"

static void field_error(struct order_errors *errs, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void field_error(struct order_errors *errs, const char *field, const char *fmt, ...)
{
    va_list ap;
    if (errs->n >= ORDER_MAX_FIELD_ERRORS)
        return;
    snprintf(errs->e[errs->n].field, sizeof(errs->e[0].field), "%s", field);
    va_start(ap, fmt);
    vsnprintf(errs->e[errs->n].message, sizeof(errs->e[0].message), fmt, ap);
    va_end(ap);
    errs->n++;
}

/* Length in characters (jansson guarantees valid UTF-8). */
static size_t utf8_chars(const char *s)
{
    size_t n = 0;
    for (; *s; s++)
        n += ((unsigned char)*s & 0xc0) != 0x80;
    return n;
}

static int has_control(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s < 0x20 || *s == 0x7f)
            return 1;
    return 0;
}

static int id_chars(const char *s)
{
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_' && *s != '.')
            return 0;
    return 1;
}

/*
 * A required (or optional) string field of obj. Returns it, or NULL after
 * recording why (or silently for an absent optional one).
 */
static const char *text_field(json_t *obj, const char *name, const char *path, size_t max,
                              int required, int ident, struct order_errors *errs)
{
    json_t *v = json_object_get(obj, name);
    const char *s;

    if (!v || json_is_null(v)) {
        if (required)
            field_error(errs, path, "is required");
        return NULL;
    }
    if (!json_is_string(v)) {
        field_error(errs, path, "must be a string");
        return NULL;
    }
    s = json_string_value(v);
    if (strlen(s) != json_string_length(v) || has_control(s)) {
        field_error(errs, path, "must not contain control characters");
        return NULL;
    }
    if (!*s) {
        if (required)
            field_error(errs, path, "must not be empty");
        return NULL;
    }
    if (utf8_chars(s) > max) {
        field_error(errs, path, "must be at most %zu characters", max);
        return NULL;
    }
    if (ident && !id_chars(s)) {
        field_error(errs, path, "may contain only letters, digits, '-', '_' and '.'");
        return NULL;
    }
    return s;
}

static void parse_address(json_t *a, struct order_request *out, struct order_errors *errs)
{
    struct saga_address *ad = &out->address;
    if (!a) {
        field_error(errs, "shipping_address", "is required");
        return;
    }
    if (!json_is_object(a)) {
        field_error(errs, "shipping_address", "must be an object");
        return;
    }
    ad->recipient = text_field(a, "recipient", "shipping_address.recipient", 100, 1, 0, errs);
    ad->line1 = text_field(a, "line1", "shipping_address.line1", ORDER_MAX_TEXT_LEN, 1, 0, errs);
    ad->line2 = text_field(a, "line2", "shipping_address.line2", ORDER_MAX_TEXT_LEN, 0, 0, errs);
    ad->city = text_field(a, "city", "shipping_address.city", 100, 1, 0, errs);
    ad->postal_code = text_field(a, "postal_code", "shipping_address.postal_code", 20, 1, 0, errs);
    ad->country = text_field(a, "country", "shipping_address.country", 2, 1, 0, errs);
    if (ad->country && (strlen(ad->country) != 2 || !isupper((unsigned char)ad->country[0]) ||
                        !isupper((unsigned char)ad->country[1]))) {
        field_error(errs, "shipping_address.country",
                    "must be an ISO 3166-1 alpha-2 code such as \"NL\"");
        ad->country = NULL;
    }
}

order_parse_t order_parse_request(const char *body, size_t len, struct order_request *out,
                                  struct order_errors *errs, char *errstr, size_t errstr_size)
{
    json_error_t jerr;
    json_t *root, *items;
    char path[64];

    memset(out, 0, sizeof(*out));
    errs->n = 0;
    root = json_loadb(body, len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        snprintf(errstr, errstr_size, "malformed JSON at line %d, column %d: %s", jerr.line,
                 jerr.column, jerr.text);
        return ORDER_PARSE_MALFORMED;
    }
    if (!json_is_object(root)) {
        snprintf(errstr, errstr_size, "the body must be a JSON object");
        json_decref(root);
        return ORDER_PARSE_MALFORMED;
    }
    out->root = root;
    out->customer_id = text_field(root, "customer_id", "customer_id", ORDER_MAX_ID_LEN, 1, 1, errs);
    out->currency = text_field(root, "currency", "currency", 3, 1, 0, errs);
    if (out->currency &&
        (strlen(out->currency) != 3 || !isupper((unsigned char)out->currency[0]) ||
         !isupper((unsigned char)out->currency[1]) || !isupper((unsigned char)out->currency[2]))) {
        field_error(errs, "currency", "must be an ISO 4217 code such as \"EUR\"");
        out->currency = NULL;
    }
    out->payment_token =
        text_field(root, "payment_token", "payment_token", ORDER_MAX_ID_LEN, 1, 1, errs);

    items = json_object_get(root, "items");
    if (!items) {
        field_error(errs, "items", "is required");
    } else if (!json_is_array(items)) {
        field_error(errs, "items", "must be an array");
    } else if (json_array_size(items) == 0) {
        field_error(errs, "items", "must hold at least one item");
    } else if (json_array_size(items) > ORDER_MAX_ITEMS) {
        field_error(errs, "items", "must hold at most %d items", ORDER_MAX_ITEMS);
    } else {
        size_t i;
        json_t *it;
        json_array_foreach(items, i, it)
        {
            json_t *q;
            snprintf(path, sizeof(path), "items[%zu]", i);
            if (!json_is_object(it)) {
                field_error(errs, path, "must be an object");
                continue;
            }
            snprintf(path, sizeof(path), "items[%zu].sku", i);
            out->items[i].sku = text_field(it, "sku", path, ORDER_MAX_ID_LEN, 1, 1, errs);
            snprintf(path, sizeof(path), "items[%zu].quantity", i);
            q = json_object_get(it, "quantity");
            if (!q) {
                field_error(errs, path, "is required");
            } else if (!json_is_integer(q) || json_integer_value(q) < 1 ||
                       json_integer_value(q) > ORDER_MAX_QUANTITY) {
                field_error(errs, path, "must be an integer between 1 and %d", ORDER_MAX_QUANTITY);
            } else {
                out->items[i].quantity = (int32_t)json_integer_value(q);
            }
        }
        out->nitems = json_array_size(items);
    }
    parse_address(json_object_get(root, "shipping_address"), out, errs);
    if (errs->n) {
        order_request_release(out);
        return ORDER_PARSE_INVALID;
    }
    return ORDER_PARSE_OK;
}

void order_request_release(struct order_request *r)
{
    json_decref(r->root);
    memset(r, 0, sizeof(*r));
}

char *order_request_canonical(const struct order_request *r)
{
    return json_dumps(r->root, JSON_SORT_KEYS | JSON_COMPACT);
}

int order_content_type_is_json(const char *ct)
{
    size_t n = strlen("application/json");
    if (!ct)
        return 0;
    while (*ct == ' ')
        ct++;
    if (strncasecmp(ct, "application/json", n) != 0)
        return 0;
    ct += n;
    while (*ct == ' ')
        ct++;
    return *ct == '\0' || *ct == ';';
}

int order_idempotency_key_valid(const char *s)
{
    size_t n = 0;
    if (!s)
        return 0;
    for (; *s; s++, n++)
        if ((unsigned char)*s < 0x21 || (unsigned char)*s > 0x7e)
            return 0;
    return n >= 1 && n <= ORDER_MAX_KEY_LEN;
}

int order_status_valid(const char *s)
{
    return s && (strcmp(s, "PENDING") == 0 || strcmp(s, "CONFIRMED") == 0 ||
                 strcmp(s, "CANCELLED") == 0);
}

const char *order_compensation_state(const char *status, const int seen[SAGA_EV_COUNT])
{
    int done = 0, undone = 1;

    /* The steps and what undoes each: the choreography's (saga/choreography.h). */
    for (size_t i = 0; i < saga_ncompensations; i++)
        if (seen[saga_compensations[i].step] > 0) {
            done = 1;
            undone &= seen[saga_compensations[i].undo] > 0;
        }
    if (!status || strcmp(status, "CANCELLED") != 0 || !done)
        return "none";
    return undone ? "done" : "in_progress";
}

int order_event_is_compensation(saga_event_type_t t)
{
    return saga_choreo_undoes(t) != SAGA_EV_COUNT;
}

static int by_time(const void *a, const void *b)
{
    const struct order_tl_entry *x = a, *y = b;
    if (x->occurred_at != y->occurred_at)
        return x->occurred_at < y->occurred_at ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

/* An event's id and its position in the time-sorted timeline. */
struct tl_id {
    const char *id;
    size_t pos;
};

static int by_id(const void *a, const void *b)
{
    const struct tl_id *x = a, *y = b;
    int c = strcmp(x->id, y->id);
    return c ? c : (x->pos > y->pos) - (x->pos < y->pos);
}

/* The first entry of ids (sorted by id) whose id is id, or n. */
static size_t find_id(const struct tl_id *ids, size_t n, const char *id)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (strcmp(ids[mid].id, id) < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo < n && strcmp(ids[lo].id, id) == 0 ? lo : n;
}

static void heap_push(size_t *h, size_t *len, size_t v)
{
    size_t i = (*len)++;
    while (i > 0 && h[(i - 1) / 2] > v) {
        h[i] = h[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    h[i] = v;
}

static size_t heap_pop(size_t *h, size_t *len)
{
    size_t top = h[0], v = h[--*len], i = 0;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= *len)
            break;
        if (c + 1 < *len && h[c + 1] < h[c])
            c++;
        if (h[c] >= v)
            break;
        h[i] = h[c];
        i = c;
    }
    if (*len)
        h[i] = v;
    return top;
}

/*
 * Kahn's topological sort with the time order as priority, O(n log n): the
 * earliest event whose cause is not still waiting, repeatedly (on a cycle, the
 * earliest left). Events sharing an event_id form a group; an event waits while
 * any other event of its cause's group is not yet placed.
 */
void order_timeline_causal_sort(struct order_tl_entry *e, size_t n)
{
    struct order_tl_entry *out;
    struct tl_id *ids;
    size_t *group, *left, *cause, *wstart, *fill, *waiters, *heap, hlen = 0, m = 0, scan = 0,
                                                                   ngroups = 0;
    char *done, *queued;

    if (n < 2)
        return;
    qsort(e, n, sizeof(*e), by_time);
    out = malloc(n * sizeof(*out));
    ids = malloc(n * sizeof(*ids));
    group = malloc(n * sizeof(*group));      /* position -> its event_id's group */
    left = calloc(n, sizeof(*left));         /* group -> events not yet placed */
    cause = malloc(n * sizeof(*cause));      /* position -> its cause's group, or n */
    wstart = calloc(n + 1, sizeof(*wstart)); /* group -> its waiters in waiters[] */
    fill = malloc(n * sizeof(*fill));
    waiters = malloc(n * sizeof(*waiters));
    heap = malloc(n * sizeof(*heap));
    done = calloc(n, 1);
    queued = calloc(n, 1);
    if (!out || !ids || !group || !left || !cause || !wstart || !fill || !waiters || !heap ||
        !done || !queued)
        abort();
    for (size_t i = 0; i < n; i++) {
        ids[i].id = e[i].event_id;
        ids[i].pos = i;
    }
    qsort(ids, n, sizeof(*ids), by_id);
    for (size_t k = 0; k < n; k++) {
        if (k > 0 && strcmp(ids[k].id, ids[k - 1].id) != 0)
            ngroups++;
        group[ids[k].pos] = ngroups;
        left[ngroups]++;
    }
    ngroups++;
    for (size_t i = 0; i < n; i++) {
        size_t at = e[i].causation_id ? find_id(ids, n, e[i].causation_id) : n;
        cause[i] = at < n ? group[ids[at].pos] : n;
        if (cause[i] < n)
            wstart[cause[i] + 1]++;
    }
    for (size_t g = 0; g < ngroups; g++)
        wstart[g + 1] += wstart[g];
    memcpy(fill, wstart, ngroups * sizeof(*fill));
    for (size_t i = 0; i < n; i++)
        if (cause[i] < n)
            waiters[fill[cause[i]]++] = i;
    /* Ready: no cause in the timeline, or the only event left of its cause's group is itself. */
    for (size_t i = 0; i < n; i++)
        if (cause[i] == n || left[cause[i]] == (cause[i] == group[i] ? 1u : 0u)) {
            queued[i] = 1;
            heap_push(heap, &hlen, i);
        }
    while (m < n) {
        size_t pick, g;
        if (hlen) {
            pick = heap_pop(heap, &hlen);
        } else { /* a cycle (bad data): keep time order for the rest */
            while (done[scan] || queued[scan])
                scan++;
            pick = scan;
        }
        done[pick] = 1;
        out[m++] = e[pick];
        g = group[pick];
        if (--left[g] > 1)
            continue;
        /* Group g is down to one event (its waiter if it causes itself) or to none. */
        for (size_t w = wstart[g]; w < wstart[g + 1]; w++) {
            size_t i = waiters[w];
            if (!done[i] && !queued[i] && left[g] == (group[i] == g ? 1u : 0u)) {
                queued[i] = 1;
                heap_push(heap, &hlen, i);
            }
        }
    }
    memcpy(e, out, n * sizeof(*e));
    free(out);
    free(ids);
    free(group);
    free(left);
    free(cause);
    free(wstart);
    free(fill);
    free(waiters);
    free(heap);
    free(done);
    free(queued);
}

void order_format_money(int64_t minor, const char *currency, char *out, size_t size)
{
    uint64_t a = minor < 0 ? (uint64_t)0 - (uint64_t)minor : (uint64_t)minor;
    snprintf(out, size, "%s%" PRIu64 ".%02" PRIu64 " %s", minor < 0 ? "-" : "", a / 100, a % 100,
             currency ? currency : "");
}

void order_count_event_types(const char *csv, int seen[SAGA_EV_COUNT])
{
    char name[64];
    memset(seen, 0, sizeof(int) * SAGA_EV_COUNT);
    while (csv && *csv) {
        size_t n = strcspn(csv, ",");
        saga_event_type_t t;
        snprintf(name, sizeof(name), "%.*s", (int)n, csv);
        if (saga_event_type_parse(name, &t) == 0)
            seen[t]++;
        csv += n + (csv[n] == ',');
    }
}

const char *order_tracking_number_passed_on(const char *t)
{
    size_t n = 0;
    if (!t)
        return NULL;
    for (; t[n]; n++) {
        char c = t[n];
        if (n == ORDER_TRACKING_MAX || !((c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') ||
                                         (c >= 'a' && c <= 'z') || c == ' ' || c == '-'))
            return NULL;
    }
    /* it begins and ends with a letter or digit: not blank, not dashes, not padded */
    return n && t[0] != ' ' && t[0] != '-' && t[n - 1] != ' ' && t[n - 1] != '-' ? t : NULL;
}
