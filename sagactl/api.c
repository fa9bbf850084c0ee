/*
 * The order API client of sagactl: one libcurl request per call against
 * ORDER_API_URL (default http://127.0.0.1:8080), JSON in and out. An https API's
 * certificate is always verified, and its host name: against the CA of --cacert or
 * ORDER_API_CACERT when given (the secured local stack's), else the system's.
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <curl/curl.h>

#include "saga/config.h"
#include "sagactl.h"

#define API_DEFAULT_URL "http://127.0.0.1:8080"
#define API_MAX_BODY    (16u << 20) /* a page of 100 orders is far below this */

const char *sagactl_api_url(void)
{
    static char url[512];
    if (!url[0]) {
        size_t n;
        snprintf(url, sizeof(url), "%s", saga_env("ORDER_API_URL", API_DEFAULT_URL));
        n = strlen(url);
        while (n > 0 && url[n - 1] == '/')
            url[--n] = '\0';
    }
    return url;
}

static char api_customer[80];
static const char *api_cacert; /* --cacert, else ORDER_API_CACERT, else NULL */
static int api_not_sent;       /* the last request failed before it was sent */

int sagactl_api_not_sent(void)
{
    return api_not_sent;
}

int sagactl_api_options(const char *cmd, int *argc, char **argv)
{
    int out = 1, help = 0;

    api_cacert = saga_env("ORDER_API_CACERT", NULL);
    for (int i = 1; i < *argc; i++) {
        if (!strcmp(argv[i], "--cacert") || !strncmp(argv[i], "--cacert=", 9)) {
            const char *v = argv[i][8] == '=' ? argv[i] + 9 : i + 1 < *argc ? argv[++i] : NULL;
            if (!v || !*v) {
                fprintf(stderr, "sagactl %s: --cacert expects the file of a CA certificate\n", cmd);
                return SAGACTL_EXIT_USAGE;
            }
            api_cacert = v;
            continue;
        }
        help |= !strcmp(argv[i], "--help") || !strcmp(argv[i], "-h");
        argv[out++] = argv[i];
    }
    *argc = out;
    argv[out] = NULL;
    if (api_cacert && !help && access(api_cacert, R_OK) != 0) {
        fprintf(stderr, "sagactl %s: cannot read the order API's CA certificate %s (%s): %s\n", cmd,
                api_cacert,
                saga_env("ORDER_API_CACERT", NULL) == api_cacert ? "ORDER_API_CACERT" : "--cacert",
                strerror(errno));
        return SAGACTL_EXIT_CONFIG;
    }
    return 0;
}

/* Prints why a request failed: a certificate that did not verify says what to check. */
static void api_failed(const char *cmd, CURLcode rc, const char *errbuf)
{
    /* The error may quote the server's certificate: text from outside. */
    const char *why = sagactl_safe(errbuf[0] ? errbuf : curl_easy_strerror(rc));

    if (rc != CURLE_PEER_FAILED_VERIFICATION && rc != CURLE_SSL_CACERT_BADFILE) {
        fprintf(stderr, "sagactl %s: the order API at %s could not be reached: %s\n", cmd,
                sagactl_api_url(), why);
        return;
    }
    fprintf(stderr, "sagactl %s: the order API at %s could not be verified: %s\n", cmd,
            sagactl_api_url(), why);
    if (strstr(errbuf, "host name") || strstr(errbuf, "subject name"))
        fprintf(stderr, "  its certificate is not for the host in ORDER_API_URL: use a name or "
                        "address the certificate names\n");
    else if (api_cacert)
        fprintf(stderr,
                "  its certificate is not signed by the CA in %s (--cacert or "
                "ORDER_API_CACERT)\n",
                api_cacert);
    else
        fprintf(stderr, "  no CA given, so only the system's are trusted: set ORDER_API_CACERT "
                        "or --cacert FILE to the CA that signed its certificate (the secured "
                        "local stack's stack.env sets it)\n");
}

void sagactl_api_as_customer(const char *customer)
{
    snprintf(api_customer, sizeof(api_customer), "%s", customer ? customer : "");
}

/*
 * The bearer token: SAGA_TOKEN; else the local stack's (a sourced stack.env): the
 * customer's own (STACK_TOKEN_CUST_ALICE) when one is named, else the operator's.
 */
static const char *api_token(void)
{
    char var[128];
    const char *t = saga_env("SAGA_TOKEN", NULL);
    size_t n;
    if (t)
        return t;
    if (api_customer[0]) {
        n = (size_t)snprintf(var, sizeof(var), "STACK_TOKEN_%s", api_customer);
        for (size_t i = 12; i < n && i < sizeof(var); i++)
            var[i] = var[i] == '-' || var[i] == '.' ? '_' : (char)toupper((unsigned char)var[i]);
        if ((t = saga_env(var, NULL)))
            return t;
    }
    return saga_env("STACK_OPERATOR_TOKEN", NULL);
}

static size_t on_body(char *data, size_t size, size_t nmemb, void *arg)
{
    struct sagactl_reply *r = arg;
    size_t n = size * nmemb;
    char *grown;
    if (r->len + n + 1 > API_MAX_BODY || !(grown = realloc(r->body, r->len + n + 1)))
        return 0; /* curl fails the transfer */
    r->body = grown;
    memcpy(r->body + r->len, data, n);
    r->len += n;
    r->body[r->len] = '\0';
    return n;
}

const char *sagactl_api_traceparent;

int sagactl_api(const char *cmd, const char *method, const char *path, const char *body,
                const char *idempotency_key, struct sagactl_reply *out)
{
    static int curl_ready;
    char url[2048], errbuf[CURL_ERROR_SIZE] = "", keyhdr[300], *authhdr = NULL;
    const char *token = api_token();
    struct curl_slist *hdrs = NULL;
    CURLcode rc;
    CURL *c;

    memset(out, 0, sizeof(*out));
    if (!curl_ready) {
        curl_global_init(CURL_GLOBAL_DEFAULT);
        curl_ready = 1;
    }
    if (!(c = curl_easy_init())) {
        fprintf(stderr, "sagactl %s: out of memory\n", cmd);
        return -1;
    }
    snprintf(url, sizeof(url), "%s%s", sagactl_api_url(), path);
    curl_easy_setopt(c, CURLOPT_URL, url);
    curl_easy_setopt(c, CURLOPT_CUSTOMREQUEST, method);
    curl_easy_setopt(c, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c, CURLOPT_CONNECTTIMEOUT_MS, 5000L);
    curl_easy_setopt(c, CURLOPT_TIMEOUT_MS, 30000L);
    curl_easy_setopt(c, CURLOPT_ERRORBUFFER, errbuf);
    curl_easy_setopt(c, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c, CURLOPT_WRITEDATA, out);
    curl_easy_setopt(c, CURLOPT_USERAGENT, "sagactl/" SAGA_VERSION);
    /* libcurl's defaults, said out loud: https is verified, certificate and host name. */
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYPEER, 1L);
    curl_easy_setopt(c, CURLOPT_SSL_VERIFYHOST, 2L);
    if (api_cacert)
        curl_easy_setopt(c, CURLOPT_CAINFO, api_cacert);
    hdrs = curl_slist_append(hdrs, "Accept: application/json");
    if (body) {
        hdrs = curl_slist_append(hdrs, "Content-Type: application/json");
        curl_easy_setopt(c, CURLOPT_POSTFIELDS, body);
        curl_easy_setopt(c, CURLOPT_POSTFIELDSIZE, (long)strlen(body));
    }
    if (idempotency_key) {
        snprintf(keyhdr, sizeof(keyhdr), "Idempotency-Key: %s", idempotency_key);
        hdrs = curl_slist_append(hdrs, keyhdr);
    }
    if (sagactl_api_traceparent) {
        char tphdr[80];
        snprintf(tphdr, sizeof(tphdr), "traceparent: %s", sagactl_api_traceparent);
        hdrs = curl_slist_append(hdrs, tphdr);
    }
    if (token) {
        size_t n = strlen(token) + 32;
        if (!(authhdr = malloc(n)))
            abort();
        snprintf(authhdr, n, "Authorization: Bearer %s", token);
        hdrs = curl_slist_append(hdrs, authhdr);
    }
    curl_easy_setopt(c, CURLOPT_HTTPHEADER, hdrs);
    rc = curl_easy_perform(c);
    free(authhdr);
    if (rc == CURLE_OK)
        curl_easy_getinfo(c, CURLINFO_RESPONSE_CODE, &out->status);
    curl_slist_free_all(hdrs);
    curl_easy_cleanup(c);
    api_not_sent = rc == CURLE_PEER_FAILED_VERIFICATION || rc == CURLE_SSL_CACERT_BADFILE;
    if (rc != CURLE_OK) {
        api_failed(cmd, rc, errbuf);
        sagactl_reply_release(out);
        return -1;
    }
    if (out->body)
        out->json = json_loadb(out->body, out->len, 0, NULL);
    return 0;
}

void sagactl_reply_release(struct sagactl_reply *r)
{
    json_decref(r->json);
    free(r->body);
    memset(r, 0, sizeof(*r));
}

int sagactl_api_error(const char *cmd, const struct sagactl_reply *r)
{
    const char *msg = json_string_value(json_object_get(r->json, "message"));
    const char *code = json_string_value(json_object_get(r->json, "error"));
    json_t *fields = json_object_get(r->json, "fields"), *f;
    size_t i;

    if (msg)
        fprintf(stderr, "sagactl %s: the order API answered %ld %s: %s\n", cmd, r->status,
                code ? sagactl_safe(code) : "", sagactl_safe(msg));
    else
        fprintf(stderr, "sagactl %s: the order API answered %ld%s%s\n", cmd, r->status,
                r->len ? ": " : "", sagactl_safen(r->body, r->len > 300 ? 300 : r->len));
    json_array_foreach(fields, i, f)
    {
        const char *field = json_string_value(json_object_get(f, "field"));
        const char *why = json_string_value(json_object_get(f, "message"));
        fprintf(stderr, "  %s: %s\n", field ? sagactl_safe(field) : "?",
                why ? sagactl_safe(why) : "?");
    }
    return r->status == 503 ? SAGACTL_EXIT_UNREACH : SAGACTL_EXIT_FAILURE;
}
