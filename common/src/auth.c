/* Bearer tokens (saga/auth.h): libjwt does the signatures, this file the policy. */
#include <ctype.h>
#include <errno.h>
#include <pthread.h>
#include <stdint.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>

#include <jansson.h>
#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>

#include "saga/auth.h"
#include "saga/config.h"
#include "saga/log.h"

#define MAX_KEY_BYTES (64 * 1024)
#define MAX_TOKEN_LEN 8192
#define CLOCK_SKEW_S  60
#define MAX_JWKS_KEYS 64
#define MAX_KID_LEN   128

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

/* --- JWKS (AUTH_JWKS_FILE) ----------------------------------------------------------
 *
 * libjwt 1.10 verifies with a PEM key and has no JWK parser: each JWK (RFC 7517/7518,
 * RSA n/e or EC P-256 x/y) is built into an OpenSSL public key and written out as PEM
 * once per read of the file; libjwt then verifies with the key the token's kid names.
 */

struct jwk {
    char kid[MAX_KID_LEN + 1];
    int alg;   /* a jwt_alg_t: RS256 or ES256 */
    char *pem; /* owned */
};

struct saga_jwks {
    pthread_mutex_t mu; /* guards everything below; held only to look up or reload */
    char *path;
    struct stat seen; /* the file as last read (or tried) */
    struct jwk *keys;
    size_t n;
};

static void jwk_set_free(struct jwk *keys, size_t n)
{
    if (!keys)
        return;
    for (size_t i = 0; i < n; i++)
        free(keys[i].pem);
    free(keys);
}

/* base64url without padding (RFC 7515 2) into a malloc'd buffer; NULL if it is not. */
static unsigned char *b64url_decode(const char *in, size_t *len)
{
    size_t n = strlen(in), o = 0;
    unsigned char *out;
    unsigned acc = 0;
    int bits = 0;

    if (n % 4 == 1 || !(out = malloc(n * 3 / 4 + 1)))
        return NULL;
    for (size_t i = 0; i < n; i++) {
        int v;
        char c = in[i];
        if (c >= 'A' && c <= 'Z')
            v = c - 'A';
        else if (c >= 'a' && c <= 'z')
            v = c - 'a' + 26;
        else if (c >= '0' && c <= '9')
            v = c - '0' + 52;
        else if (c == '-')
            v = 62;
        else if (c == '_')
            v = 63;
        else {
            free(out);
            return NULL;
        }
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (unsigned char)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    *len = o;
    return out;
}

/* A JWK member that must be base64url: its bytes, or NULL with errstr. */
static unsigned char *jwk_bytes(json_t *k, const char *name, size_t *len, char *errstr,
                                size_t errstr_size)
{
    const char *v = json_string_value(json_object_get(k, name));
    unsigned char *b = v && *v ? b64url_decode(v, len) : NULL;
    if (!b)
        snprintf(errstr, errstr_size, "\"%s\" is missing or not base64url", name);
    return b;
}

/* The PEM of an EVP_PKEY's public key, malloc'd. */
static char *pubkey_pem(EVP_PKEY *pkey)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data, *pem = NULL;
    long n;
    if (bio && PEM_write_bio_PUBKEY(bio, pkey) == 1 && (n = BIO_get_mem_data(bio, &data)) > 0 &&
        (pem = malloc((size_t)n + 1))) {
        memcpy(pem, data, (size_t)n);
        pem[n] = '\0';
    }
    BIO_free(bio);
    return pem;
}

/* An EVP_PKEY of type from params, checked as a public key. */
static EVP_PKEY *pkey_from(const char *type, OSSL_PARAM_BLD *bld)
{
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL), *check = NULL;
    EVP_PKEY *pkey = NULL;

    if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pkey, EVP_PKEY_PUBLIC_KEY, params) != 1)
        goto out;
    if (!(check = EVP_PKEY_CTX_new_from_pkey(NULL, pkey, NULL)) ||
        EVP_PKEY_public_check(check) != 1) {
        EVP_PKEY_free(pkey);
        pkey = NULL;
    }
out:
    EVP_PKEY_CTX_free(check);
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return pkey;
}

/*
 * One JWK into out (kid, alg, PEM). 1 when taken, 0 when it is no signing key of a
 * kind we verify with and may be skipped (use "enc"), -1 with errstr otherwise.
 */
static int jwk_parse(json_t *k, struct jwk *out, char *errstr, size_t errstr_size)
{
    const char *kty = json_string_value(json_object_get(k, "kty"));
    const char *kid = json_string_value(json_object_get(k, "kid"));
    const char *use = json_string_value(json_object_get(k, "use"));
    const char *alg = json_string_value(json_object_get(k, "alg"));
    OSSL_PARAM_BLD *bld = OSSL_PARAM_BLD_new();
    EVP_PKEY *pkey = NULL;
    unsigned char *a = NULL, *b = NULL;
    size_t alen = 0, blen = 0;
    BIGNUM *n = NULL, *e = NULL;
    int rc = -1;

    if (!bld)
        abort();
    if (use && strcmp(use, "sig") != 0) {
        rc = 0; /* an encryption key of the same provider */
        goto out;
    }
    if (!kid || !*kid || strlen(kid) > MAX_KID_LEN) {
        snprintf(errstr, errstr_size, "a key has no \"kid\" (1-%d characters)", MAX_KID_LEN);
        goto out;
    }
    snprintf(out->kid, sizeof(out->kid), "%s", kid);
    if (kty && strcmp(kty, "RSA") == 0) {
        if (alg && strcmp(alg, "RS256") != 0) {
            snprintf(errstr, errstr_size, "key %s: alg %s, only RS256 for RSA", kid, alg);
            goto out;
        }
        if (!(a = jwk_bytes(k, "n", &alen, errstr, errstr_size)) ||
            !(b = jwk_bytes(k, "e", &blen, errstr, errstr_size)))
            goto bad;
        n = BN_bin2bn(a, (int)alen, NULL);
        e = BN_bin2bn(b, (int)blen, NULL);
        if (!n || !e || BN_num_bits(n) < 2048) {
            snprintf(errstr, errstr_size, "\"n\" is shorter than 2048 bits");
            goto bad;
        }
        if (OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) != 1 ||
            OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) != 1 ||
            !(pkey = pkey_from("RSA", bld))) {
            snprintf(errstr, errstr_size, "not an RSA public key");
            goto bad;
        }
        out->alg = JWT_ALG_RS256;
    } else if (kty && strcmp(kty, "EC") == 0) {
        const char *crv = json_string_value(json_object_get(k, "crv"));
        unsigned char pt[65];
        if (!crv || strcmp(crv, "P-256") != 0 || (alg && strcmp(alg, "ES256") != 0)) {
            snprintf(errstr, errstr_size, "key %s: only crv P-256 (ES256) for EC", kid);
            goto out;
        }
        if (!(a = jwk_bytes(k, "x", &alen, errstr, errstr_size)) ||
            !(b = jwk_bytes(k, "y", &blen, errstr, errstr_size)))
            goto bad;
        if (alen != 32 || blen != 32) {
            snprintf(errstr, errstr_size, "\"x\" and \"y\" must be 32 bytes each");
            goto bad;
        }
        pt[0] = 0x04; /* an uncompressed point */
        memcpy(pt + 1, a, 32);
        memcpy(pt + 33, b, 32);
        if (OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) !=
                1 ||
            OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof(pt)) != 1 ||
            !(pkey = pkey_from("EC", bld))) {
            snprintf(errstr, errstr_size, "not a point on P-256");
            goto bad;
        }
        out->alg = JWT_ALG_ES256;
    } else {
        snprintf(errstr, errstr_size, "key %s: kty %s, only RSA and EC public keys", kid,
                 kty ? kty : "(none)");
        goto out;
    }
    if (!(out->pem = pubkey_pem(pkey)))
        abort();
    rc = 1;
    goto out;
bad : {
    char why[160];
    snprintf(why, sizeof(why), "%s", errstr);
    snprintf(errstr, errstr_size, "key %s: %s", kid, why);
}
out:
    BN_free(n);
    BN_free(e);
    free(a);
    free(b);
    EVP_PKEY_free(pkey);
    OSSL_PARAM_BLD_free(bld);
    return rc;
}

/* The keys of the JWKS file at path; -1 with errstr (which names the file). */
static int jwks_read(const char *path, struct jwk **keys, size_t *n, char *errstr,
                     size_t errstr_size)
{
    char why[256] = "";
    size_t len, i;
    unsigned char *text = saga_auth_read_key(path, &len, why, sizeof(why));
    json_t *root = NULL, *arr, *k;
    struct jwk *set = NULL;
    size_t count = 0;
    int rc = -1;

    if (!text)
        goto out;
    root = json_loadb((const char *)text, len, JSON_REJECT_DUPLICATES, NULL);
    arr = json_object_get(root, "keys");
    if (!json_is_array(arr)) {
        snprintf(why, sizeof(why), "'%s' is not a JWKS (an object with a \"keys\" array)", path);
        goto out;
    }
    if (!(set = calloc(MAX_JWKS_KEYS, sizeof(*set))))
        abort();
    json_array_foreach(arr, i, k)
    {
        int got;
        if (count == MAX_JWKS_KEYS) {
            snprintf(why, sizeof(why), "'%s' has more than %d keys", path, MAX_JWKS_KEYS);
            goto out;
        }
        if ((got = jwk_parse(k, &set[count], why, sizeof(why))) < 0)
            goto out;
        if (got == 0)
            continue;
        for (size_t j = 0; j < count; j++)
            if (strcmp(set[j].kid, set[count].kid) == 0) {
                snprintf(why, sizeof(why), "two keys have the kid %s", set[count].kid);
                count++;
                goto out;
            }
        count++;
    }
    if (count == 0) {
        snprintf(why, sizeof(why), "'%s' holds no RSA or EC signing key", path);
        goto out;
    }
    *keys = set;
    *n = count;
    set = NULL;
    rc = 0;
out:
    if (rc)
        saga_errf(SAGA_ERR_CONFIG, errstr, errstr_size, "AUTH_JWKS_FILE: %s", why);
    jwk_set_free(set, count);
    json_decref(root);
    free(text);
    return rc;
}

static int same_file(const struct stat *x, const struct stat *y)
{
    return x->st_dev == y->st_dev && x->st_ino == y->st_ino && x->st_size == y->st_size &&
           x->st_mtim.tv_sec == y->st_mtim.tv_sec && x->st_mtim.tv_nsec == y->st_mtim.tv_nsec &&
           x->st_ctim.tv_sec == y->st_ctim.tv_sec && x->st_ctim.tv_nsec == y->st_ctim.tv_nsec;
}

/*
 * Reads the file again when it changed since the last look (a stat per token). A
 * file that no longer reads keeps the keys read before, logged once per change.
 * Called with j->mu held.
 */
static void jwks_refresh(struct saga_jwks *j)
{
    struct stat st;
    struct jwk *keys;
    size_t n;
    char err[300];

    if (stat(j->path, &st) != 0 || same_file(&st, &j->seen))
        return;
    j->seen = st;
    if (jwks_read(j->path, &keys, &n, err, sizeof(err)) != 0) {
        saga_log(SAGA_LOG_ERROR, NULL, "%s; the %zu key(s) read before stay in use", err, j->n);
        return;
    }
    jwk_set_free(j->keys, j->n);
    j->keys = keys;
    j->n = n;
    saga_log(SAGA_LOG_INFO, NULL, "AUTH_JWKS_FILE: %zu key(s) read from '%s'", n, j->path);
}

static struct saga_jwks *jwks_open(const char *path, char *errstr, size_t errstr_size)
{
    struct saga_jwks *j = calloc(1, sizeof(*j));
    if (!j || !(j->path = strdup(path)))
        abort();
    pthread_mutex_init(&j->mu, NULL);
    if (stat(path, &j->seen) != 0)
        saga_errf(SAGA_ERR_CONFIG, errstr, errstr_size, "AUTH_JWKS_FILE: cannot read '%s': %s",
                  path, strerror(errno));
    else if (jwks_read(path, &j->keys, &j->n, errstr, errstr_size) == 0)
        return j;
    pthread_mutex_destroy(&j->mu);
    free(j->path);
    free(j);
    return NULL;
}

static void jwks_close(struct saga_jwks *j)
{
    if (!j)
        return;
    jwk_set_free(j->keys, j->n);
    pthread_mutex_destroy(&j->mu);
    free(j->path);
    free(j);
}

/* The kid in a compact JWS's header, or 0 (not readable, no kid). */
static int token_kid(const char *token, char kid[MAX_KID_LEN + 1])
{
    const char *dot = strchr(token, '.');
    char seg[1024];
    unsigned char *hdr;
    size_t len;
    json_t *h;
    const char *k;
    int ok = 0;

    if (!dot || (size_t)(dot - token) >= sizeof(seg))
        return 0;
    memcpy(seg, token, (size_t)(dot - token));
    seg[dot - token] = '\0';
    if (!(hdr = b64url_decode(seg, &len)))
        return 0;
    h = json_loadb((const char *)hdr, len, 0, NULL);
    k = json_string_value(json_object_get(h, "kid"));
    if (k && *k && strlen(k) <= MAX_KID_LEN) {
        snprintf(kid, MAX_KID_LEN + 1, "%s", k);
        ok = 1;
    }
    json_decref(h);
    free(hdr);
    return ok;
}

saga_err_t saga_auth_load(struct saga_auth *a, char *errstr, size_t errstr_size)
{
    const char *mode = saga_env("AUTH_MODE", "jwt");
    const char *secret_file = saga_env("AUTH_SECRET_FILE", NULL);
    const char *key_file = saga_env("AUTH_PUBLIC_KEY_FILE", NULL);
    const char *jwks_file = saga_env("AUTH_JWKS_FILE", NULL);
    const char *alg = saga_env("AUTH_ALG", NULL);
    const char *provider = key_file ? "AUTH_PUBLIC_KEY_FILE" : "AUTH_JWKS_FILE";

    memset(a, 0, sizeof(*a));
    if (strcmp(mode, "off") == 0) {
        a->off = 1;
        return SAGA_OK;
    }
    if (strcmp(mode, "jwt") != 0)
        return saga_errf(SAGA_ERR_CONFIG, errstr, errstr_size, "AUTH_MODE: '%s' is not jwt or off",
                         mode);
    if (!!secret_file + !!key_file + !!jwks_file != 1)
        return saga_errf(SAGA_ERR_CONFIG, errstr, errstr_size,
                         "AUTH_SECRET_FILE, AUTH_PUBLIC_KEY_FILE or AUTH_JWKS_FILE: set exactly "
                         "one (or AUTH_MODE=off for local development)");
    if (jwks_file) {
        if (alg)
            return saga_errf(SAGA_ERR_CONFIG, errstr, errstr_size,
                             "AUTH_ALG: not with AUTH_JWKS_FILE (each key's kty and alg decide)");
        if (!(a->jwks = jwks_open(jwks_file, errstr, errstr_size)))
            return SAGA_ERR_CONFIG;
    } else if (secret_file) {
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
    if (!secret_file && !a->audience) {
        saga_auth_release(a);
        return saga_errf(SAGA_ERR_CONFIG, errstr, errstr_size,
                         "AUTH_AUDIENCE: required with %s (the identity provider's key also "
                         "signs tokens for its other applications; set the aud it puts in "
                         "tokens for this API)",
                         provider);
    }
    if (!secret_file && !a->issuer) {
        saga_auth_release(a);
        return saga_errf(SAGA_ERR_CONFIG, errstr, errstr_size,
                         "AUTH_ISSUER: required with %s (the iss of the identity provider's "
                         "tokens)",
                         provider);
    }
    return SAGA_OK;
}

void saga_auth_print(const struct saga_auth *a, FILE *out)
{
    fprintf(out, "AUTH_MODE=%s\n", a->off ? "off" : "jwt");
    if (a->off)
        return;
    if (a->jwks)
        fprintf(out,
                "AUTH_JWKS_FILE=%s (%zu keys: RS256/ES256 by kid, read again when it changes)\n",
                a->jwks->path, a->jwks->n);
    else
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
    jwks_close(a->jwks);
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
    const unsigned char *key = a->key;
    size_t key_len = a->key_len;
    int alg = a->alg;
    char *pem = NULL;

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
    if (a->jwks) {
        /* The key the token's kid names, copied out: the file may be read again meanwhile. */
        char kid[MAX_KID_LEN + 1];
        if (!token_kid(token, kid))
            return saga_errf(e, errstr, errstr_size, "the token has no kid (AUTH_JWKS_FILE)");
        pthread_mutex_lock(&a->jwks->mu);
        jwks_refresh(a->jwks);
        for (size_t i = 0; i < a->jwks->n; i++)
            if (strcmp(a->jwks->keys[i].kid, kid) == 0) {
                alg = a->jwks->keys[i].alg;
                if (!(pem = strdup(a->jwks->keys[i].pem)))
                    abort();
            }
        pthread_mutex_unlock(&a->jwks->mu);
        if (!pem)
            return saga_errf(e, errstr, errstr_size,
                             "no key with the token's kid in AUTH_JWKS_FILE");
        key = (const unsigned char *)pem;
        key_len = strlen(pem);
    }
    if (jwt_decode(&jwt, token, key, (int)key_len) != 0 || !jwt) {
        saga_errf(e, errstr, errstr_size, "the token is malformed or its signature is wrong");
        goto out;
    }
    /* Only the key's algorithm: never none, never HMAC keyed with a public key. */
    if ((int)jwt_get_alg(jwt) != alg) {
        saga_errf(e, errstr, errstr_size, "the token is signed with %s, not %s",
                  jwt_alg_str(jwt_get_alg(jwt)), jwt_alg_str((jwt_alg_t)alg));
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
    /* Saturating: a token may carry an exp near the largest time there is. */
    out->valid_until = exp > LONG_MAX - CLOCK_SKEW_S ? LONG_MAX : (long)(exp + CLOCK_SKEW_S);
    e = SAGA_OK;
out:
    json_decref(claims);
    free(all);
    free(pem);
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
