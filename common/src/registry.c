#include "saga/registry.h"

#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <curl/curl.h>
#include <jansson.h>

#include "saga/serde.h"

struct cached_schema {
    int32_t id;
    char *json;
};

struct saga_registry {
    char *url;
    pthread_mutex_t lock;
    CURL *curl;                       /* one connection, reused; guarded by lock */
    int32_t event_ids[SAGA_EV_COUNT]; /* -1 until registered */
    struct cached_schema *cache;      /* every schema fetched by id: grows, never refuses one */
    size_t ncached, capcached;
};

static pthread_once_t curl_once = PTHREAD_ONCE_INIT;
static void curl_init_once(void)
{
    curl_global_init(CURL_GLOBAL_DEFAULT);
}

saga_err_t saga_registry_new(struct saga_registry **out, const char *url, char *errstr,
                             size_t errstr_size)
{
    struct saga_registry *r;
    size_t len;

    if (!url || (strncmp(url, "http://", 7) != 0 && strncmp(url, "https://", 8) != 0))
        return saga_errf(SAGA_ERR_CONFIG, errstr, errstr_size,
                         "schema registry URL must start with http:// or https://");
    pthread_once(&curl_once, curl_init_once);
    if (!(r = calloc(1, sizeof(*r))) || !(r->url = strdup(url)) || !(r->curl = curl_easy_init())) {
        if (r) {
            free(r->url);
            free(r);
        }
        return saga_errf(SAGA_ERR_NOMEM, errstr, errstr_size, "out of memory");
    }
    len = strlen(r->url);
    while (len > 0 && r->url[len - 1] == '/')
        r->url[--len] = '\0';
    pthread_mutex_init(&r->lock, NULL);
    for (int i = 0; i < SAGA_EV_COUNT; i++)
        r->event_ids[i] = -1;
    *out = r;
    return SAGA_OK;
}

void saga_registry_destroy(struct saga_registry *r)
{
    if (!r)
        return;
    for (size_t i = 0; i < r->ncached; i++)
        free(r->cache[i].json);
    free(r->cache);
    curl_easy_cleanup(r->curl);
    pthread_mutex_destroy(&r->lock);
    free(r->url);
    free(r);
}

const char *saga_registry_subject(saga_event_type_t type, char *buf, size_t size)
{
    snprintf(buf, size, "%s-%s.%s", saga_event_type_topic(type), SAGA_EVENTS_NAMESPACE,
             saga_event_type_name(type));
    return buf;
}

struct body {
    char *data;
    size_t len;
};

static size_t collect(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    struct body *b = userdata;
    size_t n = size * nmemb;
    char *d;
    if (b->len + n > 4 * 1024 * 1024) /* no schema is this large */
        return 0;
    if (!(d = realloc(b->data, b->len + n + 1)))
        return 0;
    memcpy(d + b->len, ptr, n);
    b->len += n;
    d[b->len] = '\0';
    b->data = d;
    return n;
}

/*
 * One request under r->lock. Returns SAGA_OK with the HTTP status in *status and
 * the parsed JSON body (or NULL) in *json; TRANSIENT if no answer came.
 */
static saga_err_t request(struct saga_registry *r, const char *path, const char *post, long *status,
                          json_t **json, char *errstr, size_t errstr_size)
{
    struct curl_slist *hdrs = NULL;
    struct body b = {NULL, 0};
    char url[1024];
    CURLcode rc;

    snprintf(url, sizeof(url), "%s%s", r->url, path);
    curl_easy_reset(r->curl);
    curl_easy_setopt(r->curl, CURLOPT_URL, url);
    curl_easy_setopt(r->curl, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(r->curl, CURLOPT_CONNECTTIMEOUT_MS, 3000L);
    curl_easy_setopt(r->curl, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(r->curl, CURLOPT_WRITEFUNCTION, collect);
    curl_easy_setopt(r->curl, CURLOPT_WRITEDATA, &b);
    hdrs = curl_slist_append(hdrs, "Accept: application/vnd.schemaregistry.v1+json, "
                                   "application/json");
    if (post) {
        hdrs = curl_slist_append(hdrs, "Content-Type: application/vnd.schemaregistry.v1+json");
        curl_easy_setopt(r->curl, CURLOPT_POSTFIELDS, post);
    }
    curl_easy_setopt(r->curl, CURLOPT_HTTPHEADER, hdrs);
    rc = curl_easy_perform(r->curl);
    curl_slist_free_all(hdrs);
    *json = NULL;
    if (rc != CURLE_OK) {
        free(b.data);
        return saga_errf(SAGA_ERR_TRANSIENT, errstr, errstr_size, "schema registry %s: %s", r->url,
                         curl_easy_strerror(rc));
    }
    curl_easy_getinfo(r->curl, CURLINFO_RESPONSE_CODE, status);
    if (b.data)
        *json = json_loadb(b.data, b.len, 0, NULL);
    free(b.data);
    return SAGA_OK;
}

static saga_err_t http_error(long status, json_t *body, const char *what, char *errstr,
                             size_t errstr_size)
{
    const char *msg = json_string_value(json_object_get(body, "message"));
    return saga_errf(status >= 500 || status == 429 ? SAGA_ERR_TRANSIENT
                     : status == 404                ? SAGA_ERR_NOT_FOUND
                                                    : SAGA_ERR_PERMANENT,
                     errstr, errstr_size, "schema registry: %s: HTTP %ld%s%s", what, status,
                     msg ? ": " : "", msg ? msg : "");
}

saga_err_t saga_registry_register(struct saga_registry *r, const char *subject,
                                  const char *schema_json, int32_t *id, char *errstr,
                                  size_t errstr_size)
{
    json_t *req = json_pack("{s:s}", "schema", schema_json), *resp = NULL;
    char *post = req ? json_dumps(req, JSON_COMPACT) : NULL, *esc;
    char path[512];
    long status = 0;
    saga_err_t err;

    json_decref(req);
    if (!post)
        return saga_errf(SAGA_ERR_NOMEM, errstr, errstr_size, "out of memory");
    pthread_mutex_lock(&r->lock);
    esc = curl_easy_escape(r->curl, subject, 0);
    snprintf(path, sizeof(path), "/subjects/%s/versions", esc ? esc : subject);
    curl_free(esc);
    err = request(r, path, post, &status, &resp, errstr, errstr_size);
    pthread_mutex_unlock(&r->lock);
    free(post);
    if (err)
        return err;
    if (status == 200 && json_is_integer(json_object_get(resp, "id"))) {
        *id = (int32_t)json_integer_value(json_object_get(resp, "id"));
        err = SAGA_OK;
    } else {
        char what[300];
        snprintf(what, sizeof(what), "registering %s", subject);
        err = http_error(status, resp, what, errstr, errstr_size);
        if (err == SAGA_ERR_NOT_FOUND)
            err = SAGA_ERR_PERMANENT;
    }
    json_decref(resp);
    return err;
}

saga_err_t saga_registry_event_id(struct saga_registry *r, saga_event_type_t type, int32_t *id,
                                  char *errstr, size_t errstr_size)
{
    char subject[256];
    int32_t got;
    saga_err_t err;

    if ((unsigned)type >= SAGA_EV_COUNT)
        return saga_errf(SAGA_ERR_INVALID, errstr, errstr_size, "no event type %d", (int)type);
    pthread_mutex_lock(&r->lock);
    got = r->event_ids[type];
    pthread_mutex_unlock(&r->lock);
    if (got >= 0) {
        *id = got;
        return SAGA_OK;
    }
    err = saga_registry_register(r, saga_registry_subject(type, subject, sizeof(subject)),
                                 saga_serde_schema_json(type), &got, errstr, errstr_size);
    if (err)
        return err;
    pthread_mutex_lock(&r->lock);
    r->event_ids[type] = got;
    pthread_mutex_unlock(&r->lock);
    *id = got;
    return SAGA_OK;
}

saga_err_t saga_registry_register_all(struct saga_registry *r, char *errstr, size_t errstr_size)
{
    for (int t = 0; t < SAGA_EV_COUNT; t++) {
        int32_t id;
        saga_err_t err = saga_registry_event_id(r, (saga_event_type_t)t, &id, errstr, errstr_size);
        if (err)
            return err;
    }
    return SAGA_OK;
}

/* Remembers schema as id's (under r->lock). Out of memory, it is simply not cached. */
static void cache_add(struct saga_registry *r, int32_t id, const char *schema)
{
    char *copy;

    if (r->ncached == r->capcached) {
        size_t cap = r->capcached ? r->capcached * 2 : 32;
        struct cached_schema *grown = realloc(r->cache, cap * sizeof(*grown));
        if (!grown)
            return;
        r->cache = grown;
        r->capcached = cap;
    }
    if (!(copy = strdup(schema)))
        return;
    r->cache[r->ncached].id = id;
    r->cache[r->ncached].json = copy;
    r->ncached++;
}

saga_err_t saga_registry_get(struct saga_registry *r, int32_t id, char **json, char *errstr,
                             size_t errstr_size)
{
    char path[64];
    long status = 0;
    json_t *resp = NULL;
    const char *schema;
    saga_err_t err;

    pthread_mutex_lock(&r->lock);
    for (size_t i = 0; i < r->ncached; i++) {
        if (r->cache[i].id == id) {
            *json = strdup(r->cache[i].json);
            pthread_mutex_unlock(&r->lock);
            return *json ? SAGA_OK : SAGA_ERR_NOMEM;
        }
    }
    snprintf(path, sizeof(path), "/schemas/ids/%ld", (long)id);
    err = request(r, path, NULL, &status, &resp, errstr, errstr_size);
    if (err)
        goto out;
    schema = json_string_value(json_object_get(resp, "schema"));
    if (status != 200 || !schema) {
        char what[64];
        snprintf(what, sizeof(what), "schema id %ld", (long)id);
        err = http_error(status == 200 ? 502 : status, resp, what, errstr, errstr_size);
        goto out;
    }
    if (!(*json = strdup(schema))) {
        err = SAGA_ERR_NOMEM;
        goto out;
    }
    cache_add(r, id, schema);
out:
    pthread_mutex_unlock(&r->lock);
    json_decref(resp);
    return err;
}
