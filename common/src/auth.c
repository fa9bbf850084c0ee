/* Bearer tokens (saga/auth.h): libjwt does the signatures, this file the policy. */
#include <ctype.h>
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include <jansson.h>
#include <jwt.h>

#include "saga/auth.h"
#include "saga/config.h"
#include "saga/log.h"

#define MAX_KEY_BYTES (64 * 1024)
#define MAX_TOKEN_LEN 8192
#define CLOCK_SKEW_S  60

/*
 * The HS256 secret this repository's compose file once shipped
 * (deploy/compose/dev-auth-secret): it is in the git history for good, so anyone
 * can mint tokens with it. Refused unless AUTH_ALLOW_DEV_SECRET=1.
 */
static const char DEV_SECRET[] = "USRGjwmjmgZog/bPppjmBXEtDDwGVgQ2cinhnqQ2cju0vQ0/4CWpzpqNVUzaDhMg";

const char *saga_role2str(saga_role_t role)
{
    switch (role) {
    case SAGA_ROLE_CUSTOMER:
        return "customer";
    case SAGA_ROLE_OPERATOR:
        return "operator";
    case SAGA_ROLE_NONE:
        break;
    }
    return "none";
}

unsigned char *saga_auth_read_key(const char *path, size_t *len, char *errstr, size_t errstr_size)
{
    FILE *f = fopen(path, "rb");
    unsigned char *buf;
    size_t n;

    if (!f) {
        saga_errf(SAGA_ERR_CONFIG, errstr, errstr_size, "cannot read '%s': %s", path,
                  strerror(errno));
        return NULL;
    }
    if (!(buf = malloc(MAX_KEY_BYTES + 1)))
        abort();
    n = fread(buf, 1, MAX_KEY_BYTES + 1, f);
    fclose(f);
    if (n > MAX_KEY_BYTES) {
        free(buf);
        saga_errf(SAGA_ERR_CONFIG, errstr, errstr_size, "'%s' is larger than %d bytes", path,
                  MAX_KEY_BYTES);
        return NULL;
    }
    while (n && (buf[n - 1] == '\n' || buf[n - 1] == '\r'))
        n--;
    buf[n] = '\0';
    if (n == 0) {
        free(buf);
        saga_errf(SAGA_ERR_CONFIG, errstr, errstr_size, "'%s' is empty", path);
        return NULL;
    }
    *len = n;
    return buf;
}

static char *dup_or_null(const char *v)
{
    char *d;
    if (!v)
        return NULL;
    if (!(d = strdup(v)))
        abort();
    return d;
}

saga_err_t saga_auth_load(struct saga_auth *a, char *errstr, size_t errstr_size)
{
    const char *mode = saga_env("AUTH_MODE", "jwt");
    const char *secret_file = saga_env("AUTH_SECRET_FILE", NULL);
    const char *key_file = saga_env("AUTH_PUBLIC_KEY_FILE", NULL);
    const char *alg = saga_env("AUTH_ALG", NULL);

    memset(a, 0, sizeof(*a));
    if (strcmp(mode, "off") == 0) {
        a->off = 1;
        return SAGA_OK;
    }
    if (strcmp(mode, "jwt") != 0)
        return saga_errf(SAGA_ERR_CONFIG, errstr, errstr_size, "AUTH_MODE: '%s' is not jwt or off",
                         mode);
    if (!!secret_file == !!key_file)
        return saga_errf(SAGA_ERR_CONFIG, errstr, errstr_size,
                         "AUTH_SECRET_FILE or AUTH_PUBLIC_KEY_FILE: set exactly one (or "
                         "AUTH_MODE=off for local development)");
    if (secret_file) {
        if (alg && strcmp(alg, "HS256") != 0)
            return saga_errf(SAGA_ERR_CONFIG, errstr, errstr_size,
                             "AUTH_ALG: a shared secret (AUTH_SECRET_FILE) signs HS256, not %s",
                             alg);
        a->alg = JWT_ALG_HS256;
        if (!(a->key = saga_auth_read_key(secret_file, &a->key_len, errstr, errstr_size)))
            return SAGA_ERR_CONFIG;
        if (a->key_len < 32) {
            saga_auth_release(a);
            return saga_errf(SAGA_ERR_CONFIG, errstr, errstr_size,
                             "AUTH_SECRET_FILE: the secret must have at least 32 bytes");
        }
        if (a->key_len == sizeof(DEV_SECRET) - 1 && memcmp(a->key, DEV_SECRET, a->key_len) == 0) {
            const char *allow = saga_env("AUTH_ALLOW_DEV_SECRET", NULL);
            if (!allow || strcmp(allow, "1") != 0) {
                saga_auth_release(a);
                return saga_errf(SAGA_ERR_CONFIG, errstr, errstr_size,
                                 "AUTH_SECRET_FILE: '%s' is the development secret published in "
                                 "this project's repository (anyone can mint tokens with it): "
                                 "make your own (head -c 48 /dev/urandom | base64), or set "
                                 "AUTH_ALLOW_DEV_SECRET=1 for local development",
                                 secret_file);
            }
            a->dev_secret = 1;
        }
    } else {
        if (!alg || strcmp(alg, "RS256") == 0)
            a->alg = JWT_ALG_RS256;
        else if (strcmp(alg, "ES256") == 0)
            a->alg = JWT_ALG_ES256;
        else
            return saga_errf(SAGA_ERR_CONFIG, errstr, errstr_size,
                             "AUTH_ALG: a public key verifies RS256 or ES256, not %s", alg);
        if (!(a->key = saga_auth_read_key(key_file, &a->key_len, errstr, errstr_size)))
            return SAGA_ERR_CONFIG;
        if (!strstr((const char *)a->key, "-----BEGIN PUBLIC KEY-----")) {
            saga_auth_release(a);
            return saga_errf(SAGA_ERR_CONFIG, errstr, errstr_size,
                             "AUTH_PUBLIC_KEY_FILE: not a PEM public key");
        }
    }
    a->issuer = dup_or_null(saga_env("AUTH_ISSUER", NULL));
    a->audience = dup_or_null(saga_env("AUTH_AUDIENCE", NULL));
    /* An identity provider signs every application's tokens with the same key: in
     * public-key mode only aud (and iss) say that a token is for this API. */
    if (key_file && !a->audience) {
        saga_auth_release(a);
        return saga_errf(SAGA_ERR_CONFIG, errstr, errstr_size,
                         "AUTH_AUDIENCE: required with AUTH_PUBLIC_KEY_FILE (the identity "
                         "provider's key also signs tokens for its other applications; set the "
                         "aud it puts in tokens for this API)");
    }
    if (key_file && !a->issuer) {
        saga_auth_release(a);
        return saga_errf(SAGA_ERR_CONFIG, errstr, errstr_size,
                         "AUTH_ISSUER: required with AUTH_PUBLIC_KEY_FILE (the iss of the "
                         "identity provider's tokens)");
    }
    return SAGA_OK;
}

void saga_auth_print(const struct saga_auth *a, FILE *out)
{
    fprintf(out, "AUTH_MODE=%s\n", a->off ? "off" : "jwt");
    if (a->off)
        return;
    fprintf(out, "AUTH_ALG=%s\n", jwt_alg_str((jwt_alg_t)a->alg));
    if (a->issuer)
        fprintf(out, "AUTH_ISSUER=%s\n", a->issuer);
    if (a->audience)
        fprintf(out, "AUTH_AUDIENCE=%s\n", a->audience);
    if (a->dev_secret)
        fprintf(out, "AUTH_ALLOW_DEV_SECRET=1 (the published development secret: anyone can "
                     "mint tokens)\n");
}

void saga_auth_warn(const struct saga_auth *a)
{
    if (a->off)
        saga_warn("AUTHENTICATION IS OFF (AUTH_MODE=off): anyone who reaches this port may "
                  "place, read and cancel every order; for local development only");
    else if (a->dev_secret)
        saga_warn("AUTH_ALLOW_DEV_SECRET=1: tokens are signed with the development secret "
                  "published in this project's repository, so ANYONE CAN MINT AN OPERATOR "
                  "TOKEN for this API; for local development only");
}

void saga_auth_release(struct saga_auth *a)
{
    if (a->key)
        memset(a->key, 0, a->key_len);
    free(a->key);
    free(a->issuer);
    free(a->audience);
    memset(a, 0, sizeof(*a));
}

/* A subject as customer ids are written: 1-64 of letters, digits, '-', '_', '.'. */
static int sub_valid(const char *s)
{
    size_t n = s ? strlen(s) : 0;
    if (n < 1 || n > SAGA_AUTH_MAX_SUB)
        return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '-' && *s != '_' && *s != '.')
            return 0;
    return 1;
}

static int audience_matches(jwt_t *jwt, const char *want)
{
    const char *aud = jwt_get_grant(jwt, "aud");
    char *arr;
    json_t *j;
    size_t i;
    json_t *v;
    int found = 0;

    if (aud)
        return strcmp(aud, want) == 0;
    if (!(arr = jwt_get_grants_json(jwt, "aud")))
        return 0;
    j = json_loads(arr, 0, NULL);
    free(arr);
    json_array_foreach(j, i, v) if (json_is_string(v) && strcmp(json_string_value(v), want) == 0)
        found = 1;
    json_decref(j);
    return found;
}

/*
 * A NumericDate claim (RFC 7519 2): a JSON number of seconds, fractions allowed,
 * saturated to the int64_t range. 1 with *out, 0 when absent, -1 when present but
 * not a number (a string "9999999999" is no date: the token is refused, not the
 * claim skipped).
 */
static int date_claim(json_t *claims, const char *name, int64_t *out)
{
    json_t *v = json_object_get(claims, name);
    double d;

    if (!v)
        return 0;
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return 1;
    }
    if (!json_is_real(v))
        return -1;
    d = json_real_value(v);
    if (d >= 9223372036854775807.0)
        *out = INT64_MAX;
    else if (d <= -9223372036854775807.0)
        *out = INT64_MIN;
    else
        *out = (int64_t)d;
    return 1;
}

saga_err_t saga_auth_verify(const struct saga_auth *a, const char *authorization, const char *token,
                            struct saga_principal *out, char *errstr, size_t errstr_size)
{
    jwt_t *jwt = NULL;
    const char *sub, *role;
    char *all = NULL;
    json_t *claims = NULL;
    int64_t exp = 0, nbf = 0, iat = 0;
    int64_t now = (int64_t)time(NULL);
    saga_err_t e = SAGA_ERR_INVALID;

    memset(out, 0, sizeof(*out));
    if (a->off) {
        out->role = SAGA_ROLE_OPERATOR;
        snprintf(out->sub, sizeof(out->sub), "anonymous");
        return SAGA_OK;
    }
    if (authorization && *authorization) {
        if (strncasecmp(authorization, "Bearer ", 7) != 0)
            return saga_errf(e, errstr, errstr_size, "the Authorization header is not Bearer");
        token = authorization + 7;
        while (*token == ' ')
            token++;
    }
    if (!token || !*token)
        return saga_errf(e, errstr, errstr_size, "no bearer token");
    if (strlen(token) > MAX_TOKEN_LEN)
        return saga_errf(e, errstr, errstr_size, "the token is too long");
    if (jwt_decode(&jwt, token, a->key, (int)a->key_len) != 0 || !jwt)
        return saga_errf(e, errstr, errstr_size,
                         "the token is malformed or its signature is wrong");
    /* Only the configured algorithm: never none, never HMAC keyed with a public key. */
    if ((int)jwt_get_alg(jwt) != a->alg) {
        saga_errf(e, errstr, errstr_size, "the token is signed with %s, not %s",
                  jwt_alg_str(jwt_get_alg(jwt)), jwt_alg_str((jwt_alg_t)a->alg));
        goto out;
    }
    if (!(all = jwt_get_grants_json(jwt, NULL)) || !(claims = json_loads(all, 0, NULL))) {
        saga_errf(e, errstr, errstr_size, "the token's claims are not a JSON object");
        goto out;
    }
    if (date_claim(claims, "exp", &exp) != 1 || date_claim(claims, "nbf", &nbf) < 0 ||
        date_claim(claims, "iat", &iat) < 0) {
        saga_errf(e, errstr, errstr_size,
                  "the token has no exp, or an exp, nbf or iat that is not a number");
        goto out;
    }
    /* now is a present-day time: now -/+ the skew cannot overflow, exp +/- it could. */
    if (exp <= now - CLOCK_SKEW_S) {
        saga_errf(e, errstr, errstr_size, "the token expired");
        goto out;
    }
    if (json_object_get(claims, "nbf") && nbf > now + CLOCK_SKEW_S) {
        saga_errf(e, errstr, errstr_size, "the token is not valid yet");
        goto out;
    }
    if (a->issuer && (!jwt_get_grant(jwt, "iss") || strcmp(jwt_get_grant(jwt, "iss"), a->issuer))) {
        saga_errf(e, errstr, errstr_size, "the token's issuer is not %s", a->issuer);
        goto out;
    }
    if (a->audience && !audience_matches(jwt, a->audience)) {
        saga_errf(e, errstr, errstr_size, "the token is not for audience %s", a->audience);
        goto out;
    }
    sub = jwt_get_grant(jwt, "sub");
    role = jwt_get_grant(jwt, "role");
    if (!sub_valid(sub)) {
        saga_errf(e, errstr, errstr_size, "the token's sub is missing or not a customer id");
        goto out;
    }
    if (role && strcmp(role, "customer") == 0)
        out->role = SAGA_ROLE_CUSTOMER;
    else if (role && strcmp(role, "operator") == 0)
        out->role = SAGA_ROLE_OPERATOR;
    else {
        saga_errf(e, errstr, errstr_size, "the token's role is not customer or operator");
        goto out;
    }
    snprintf(out->sub, sizeof(out->sub), "%s", sub);
    e = SAGA_OK;
out:
    json_decref(claims);
    free(all);
    jwt_free(jwt);
    return e;
}

char *saga_auth_mint_hs256(const unsigned char *key, size_t key_len, const char *sub,
                           const char *role, long ttl_s, char *errstr, size_t errstr_size)
{
    jwt_t *jwt = NULL;
    char *tok = NULL;
    long now = (long)time(NULL);

    if (!sub_valid(sub)) {
        saga_errf(SAGA_ERR_INVALID, errstr, errstr_size,
                  "'%s' is not a valid subject (1-64 letters, digits, '-', '_', '.')",
                  sub ? sub : "");
        return NULL;
    }
    if (strcmp(role, "customer") != 0 && strcmp(role, "operator") != 0) {
        saga_errf(SAGA_ERR_INVALID, errstr, errstr_size, "role '%s' is not customer or operator",
                  role);
        return NULL;
    }
    if (jwt_new(&jwt) != 0 || jwt_add_grant(jwt, "sub", sub) != 0 ||
        jwt_add_grant(jwt, "role", role) != 0 || jwt_add_grant_int(jwt, "iat", now) != 0 ||
        jwt_add_grant_int(jwt, "exp", now + ttl_s) != 0 ||
        jwt_set_alg(jwt, JWT_ALG_HS256, key, (int)key_len) != 0 || !(tok = jwt_encode_str(jwt)))
        saga_errf(SAGA_ERR_INVALID, errstr, errstr_size, "cannot sign the token");
    jwt_free(jwt);
    return tok;
}
