/*
 * saga_auth (common/src/auth.c): the configuration and the token checks the order
 * API relies on, with keys made for the test (a secret, and RSA and EC key pairs
 * made by the openssl command line).
 */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <cmocka.h>
#include <jwt.h>
#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>

#include "saga/auth.h"

static char dir[] = "/tmp/test_auth-XXXXXX";
static char secret_file[128], rsa_priv[128], rsa_pub[128], ec_priv[128], ec_pub[128];
static char rsa2_priv[128], rsa2_pub[128], jwks_file[128];
static const char SECRET[] = "0123456789abcdef0123456789abcdef-test";

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static unsigned char *slurp(const char *path, size_t *len)
{
    char err[256];
    unsigned char *k = saga_auth_read_key(path, len, err, sizeof(err));
    if (!k)
        fail_msg("%s", err);
    return k;
}

static void clear_env(void)
{
    const char *vars[] = {"AUTH_MODE",      "AUTH_SECRET_FILE",     "AUTH_PUBLIC_KEY_FILE",
                          "AUTH_ALG",       "AUTH_ISSUER",          "AUTH_AUDIENCE",
                          "AUTH_JWKS_FILE", "AUTH_ALLOW_DEV_SECRET"};
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); i++)
        unsetenv(vars[i]);
}

static void load(struct saga_auth *a)
{
    char err[256];
    if (saga_auth_load(a, err, sizeof(err)) != SAGA_OK)
        fail_msg("saga_auth_load: %s", err);
}

/* A token signed by key with alg, kid in its header when not NULL, grants as JSON. */
static char *sign_kid(jwt_alg_t alg, const char *key_path, const char *kid, const char *grants)
{
    jwt_t *jwt;
    size_t len = 0;
    unsigned char *key = key_path ? slurp(key_path, &len) : NULL;
    char *tok;
    assert_int_equal(jwt_new(&jwt), 0);
    assert_int_equal(jwt_add_grants_json(jwt, grants), 0);
    if (kid)
        assert_int_equal(jwt_add_header(jwt, "kid", kid), 0);
    assert_int_equal(jwt_set_alg(jwt, alg, key, (int)len), 0);
    tok = jwt_encode_str(jwt);
    assert_non_null(tok);
    jwt_free(jwt);
    free(key);
    return tok;
}

/* A token signed by key with alg (libjwt does the signing), grants as JSON. */
static char *sign(jwt_alg_t alg, const char *key_path, const char *grants)
{
    return sign_kid(alg, key_path, NULL, grants);
}

static char *grants(const char *sub, const char *role, long exp_in, const char *extra)
{
    static char g[4096];
    snprintf(g, sizeof(g), "{\"sub\":\"%s\",\"role\":\"%s\",\"exp\":%ld%s}", sub, role,
             (long)time(NULL) + exp_in, extra ? extra : "");
    return g;
}

static saga_err_t verify(const struct saga_auth *a, const char *tok, struct saga_principal *who)
{
    char hdr[4200], err[256];
    saga_err_t e;
    snprintf(hdr, sizeof(hdr), "Bearer %s", tok);
    e = saga_auth_verify(a, hdr, NULL, who, err, sizeof(err));
    if (e)
        printf("refused: %s\n", err);
    return e;
}

static void test_hs256_round_trip(void **state)
{
    struct saga_auth a;
    struct saga_principal who;
    char err[256], *tok;
    (void)state;
    clear_env();
    setenv("AUTH_SECRET_FILE", secret_file, 1);
    load(&a);
    tok = saga_auth_mint_hs256((const unsigned char *)SECRET, strlen(SECRET), "cust-alice",
                               "customer", 60, err, sizeof(err));
    assert_non_null(tok);
    assert_int_equal(verify(&a, tok, &who), SAGA_OK);
    assert_int_equal(who.role, SAGA_ROLE_CUSTOMER);
    assert_string_equal(who.sub, "cust-alice");
    /* The scheme is case-insensitive; a bare token (EventSource's query) works too. */
    {
        char hdr[4200];
        snprintf(hdr, sizeof(hdr), "bearer %s", tok);
        assert_int_equal(saga_auth_verify(&a, hdr, NULL, &who, err, sizeof(err)), SAGA_OK);
        assert_int_equal(saga_auth_verify(&a, NULL, tok, &who, err, sizeof(err)), SAGA_OK);
        snprintf(hdr, sizeof(hdr), "Basic %s", tok);
        assert_int_equal(saga_auth_verify(&a, hdr, NULL, &who, err, sizeof(err)), SAGA_ERR_INVALID);
        assert_int_equal(saga_auth_verify(&a, NULL, NULL, &who, err, sizeof(err)),
                         SAGA_ERR_INVALID);
    }
    free(tok);
    saga_auth_release(&a);
}

static void test_hs256_refusals(void **state)
{
    struct saga_auth a;
    struct saga_principal who;
    char other[256], none[1024], *tok;
    (void)state;
    clear_env();
    setenv("AUTH_SECRET_FILE", secret_file, 1);
    load(&a);
    snprintf(other, sizeof(other), "%s/other", dir);
    write_file(other, "another-secret-another-secret-another-secret");
    /* Wrongly signed. */
    tok = sign(JWT_ALG_HS256, other, grants("cust-alice", "operator", 60, NULL));
    assert_int_equal(verify(&a, tok, &who), SAGA_ERR_INVALID);
    free(tok);
    /* Expired (beyond the 60 s of skew), no exp, not yet valid. */
    tok = sign(JWT_ALG_HS256, secret_file, grants("cust-alice", "customer", -120, NULL));
    assert_int_equal(verify(&a, tok, &who), SAGA_ERR_INVALID);
    free(tok);
    tok = sign(JWT_ALG_HS256, secret_file, "{\"sub\":\"cust-alice\",\"role\":\"customer\"}");
    assert_int_equal(verify(&a, tok, &who), SAGA_ERR_INVALID);
    free(tok);
    snprintf(none, sizeof(none), ",\"nbf\":%ld", (long)time(NULL) + 3600);
    tok = sign(JWT_ALG_HS256, secret_file, grants("cust-alice", "customer", 7200, none));
    assert_int_equal(verify(&a, tok, &who), SAGA_ERR_INVALID);
    free(tok);
    /* No or an unknown role; a subject that is no customer id. */
    tok = sign(JWT_ALG_HS256, secret_file, grants("cust-alice", "admin", 60, NULL));
    assert_int_equal(verify(&a, tok, &who), SAGA_ERR_INVALID);
    free(tok);
    tok = sign(JWT_ALG_HS256, secret_file, grants("cust alice'--", "customer", 60, NULL));
    assert_int_equal(verify(&a, tok, &who), SAGA_ERR_INVALID);
    free(tok);
    /* alg none, from libjwt itself. */
    tok = sign(JWT_ALG_NONE, NULL, grants("ops", "operator", 60, NULL));
    assert_int_equal(verify(&a, tok, &who), SAGA_ERR_INVALID);
    free(tok);
    assert_int_equal(verify(&a, "not.a.token", &who), SAGA_ERR_INVALID);
    saga_auth_release(&a);
}

/* iss and aud of the identity provider the public-key tests configure. */
#define IDP ",\"iss\":\"https://idp.example\",\"aud\":\"order-api\""

static void public_key_env(const char *key, const char *alg)
{
    clear_env();
    setenv("AUTH_PUBLIC_KEY_FILE", key, 1);
    if (alg)
        setenv("AUTH_ALG", alg, 1);
    setenv("AUTH_ISSUER", "https://idp.example", 1);
    setenv("AUTH_AUDIENCE", "order-api", 1);
}

static void test_public_keys_and_key_confusion(void **state)
{
    struct saga_auth a;
    struct saga_principal who;
    char *tok;
    (void)state;
    public_key_env(rsa_pub, NULL);
    load(&a); /* RS256 by default */
    tok = sign(JWT_ALG_RS256, rsa_priv, grants("ops-ada", "operator", 60, IDP));
    assert_int_equal(verify(&a, tok, &who), SAGA_OK);
    assert_int_equal(who.role, SAGA_ROLE_OPERATOR);
    free(tok);
    /* HS256 keyed with the public key, which everyone has: refused. */
    tok = sign(JWT_ALG_HS256, rsa_pub, grants("ops-ada", "operator", 60, IDP));
    assert_int_equal(verify(&a, tok, &who), SAGA_ERR_INVALID);
    free(tok);
    /* Another key pair's signature. */
    tok = sign(JWT_ALG_ES256, ec_priv, grants("ops-ada", "operator", 60, IDP));
    assert_int_equal(verify(&a, tok, &who), SAGA_ERR_INVALID);
    free(tok);
    saga_auth_release(&a);

    public_key_env(ec_pub, "ES256");
    load(&a);
    tok = sign(JWT_ALG_ES256, ec_priv, grants("cust-bob", "customer", 60, IDP));
    assert_int_equal(verify(&a, tok, &who), SAGA_OK);
    assert_string_equal(who.sub, "cust-bob");
    free(tok);
    saga_auth_release(&a);
}

/*
 * An identity provider signs tokens for many applications with one key: in
 * public-key mode, a token is ours only by its aud (and iss). Without
 * AUTH_AUDIENCE a token minted for another application of the same provider was
 * accepted; now the service does not start without AUTH_AUDIENCE and AUTH_ISSUER.
 */
static void test_public_key_needs_audience_and_issuer(void **state)
{
    struct saga_auth a;
    struct saga_principal who;
    char err[256], *tok;
    (void)state;
    public_key_env(rsa_pub, NULL);
    unsetenv("AUTH_AUDIENCE");
    assert_int_equal(saga_auth_load(&a, err, sizeof(err)), SAGA_ERR_CONFIG);
    assert_non_null(strstr(err, "AUTH_AUDIENCE"));
    public_key_env(ec_pub, "ES256");
    unsetenv("AUTH_ISSUER");
    assert_int_equal(saga_auth_load(&a, err, sizeof(err)), SAGA_ERR_CONFIG);
    assert_non_null(strstr(err, "AUTH_ISSUER"));
    setenv("AUTH_ISSUER", "", 1); /* empty is unset */
    assert_int_equal(saga_auth_load(&a, err, sizeof(err)), SAGA_ERR_CONFIG);

    /* Configured: the same provider's tokens for another application are refused. */
    public_key_env(rsa_pub, NULL);
    load(&a);
    tok = sign(JWT_ALG_RS256, rsa_priv,
               grants("ops-ada", "operator", 60,
                      ",\"iss\":\"https://idp.example\",\"aud\":\"billing-api\""));
    assert_int_equal(verify(&a, tok, &who), SAGA_ERR_INVALID);
    free(tok);
    tok = sign(JWT_ALG_RS256, rsa_priv,
               grants("ops-ada", "operator", 60, ",\"iss\":\"https://idp.example\""));
    assert_int_equal(verify(&a, tok, &who), SAGA_ERR_INVALID); /* no aud at all */
    free(tok);
    tok = sign(JWT_ALG_RS256, rsa_priv,
               grants("ops-ada", "operator", 60,
                      ",\"iss\":\"https://other.example\",\"aud\":\"order-api\""));
    assert_int_equal(verify(&a, tok, &who), SAGA_ERR_INVALID);
    free(tok);
    saga_auth_release(&a);
}

static void test_issuer_and_audience(void **state)
{
    struct saga_auth a;
    struct saga_principal who;
    char *tok;
    (void)state;
    clear_env();
    setenv("AUTH_SECRET_FILE", secret_file, 1);
    setenv("AUTH_ISSUER", "https://idp.example", 1);
    setenv("AUTH_AUDIENCE", "order-api", 1);
    load(&a);
    tok = sign(JWT_ALG_HS256, secret_file,
               grants("cust-alice", "customer", 60,
                      ",\"iss\":\"https://idp.example\",\"aud\":[\"x\",\"order-api\"]"));
    assert_int_equal(verify(&a, tok, &who), SAGA_OK);
    free(tok);
    tok = sign(JWT_ALG_HS256, secret_file,
               grants("cust-alice", "customer", 60,
                      ",\"iss\":\"https://evil.example\",\"aud\":\"order-api\""));
    assert_int_equal(verify(&a, tok, &who), SAGA_ERR_INVALID);
    free(tok);
    tok = sign(JWT_ALG_HS256, secret_file,
               grants("cust-alice", "customer", 60,
                      ",\"iss\":\"https://idp.example\",\"aud\":\"another-api\""));
    assert_int_equal(verify(&a, tok, &who), SAGA_ERR_INVALID);
    free(tok);
    saga_auth_release(&a);
}

/* A claim set with exp/nbf/iat written as given (raw JSON), signed with the secret. */
static char *with_dates(const char *dates)
{
    char g[512];
    snprintf(g, sizeof(g), "{\"sub\":\"cust-alice\",\"role\":\"customer\",%s}", dates);
    return sign(JWT_ALG_HS256, secret_file, g);
}

/*
 * NumericDate claims (RFC 7519 4.1.4) are JSON numbers: a string, a boolean, null, an
 * object is not a date and the token is refused, not the claim skipped. Before, a
 * token with "nbf":"9999999999" (never valid as a number) passed.
 */
static void test_date_claims_must_be_numbers(void **state)
{
    struct saga_auth a;
    struct saga_principal who;
    char d[256], *tok;
    long now = (long)time(NULL);
    const char *bad[] = {"\"9999999999\"", "true", "null", "{}", "[1]", "\"\""};
    (void)state;
    clear_env();
    setenv("AUTH_SECRET_FILE", secret_file, 1);
    load(&a);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        snprintf(d, sizeof(d), "\"exp\":%ld,\"nbf\":%s", now + 600, bad[i]);
        tok = with_dates(d);
        if (verify(&a, tok, &who) != SAGA_ERR_INVALID)
            fail_msg("a token with nbf %s was accepted", bad[i]);
        free(tok);
        snprintf(d, sizeof(d), "\"exp\":%ld,\"iat\":%s", now + 600, bad[i]);
        tok = with_dates(d);
        if (verify(&a, tok, &who) != SAGA_ERR_INVALID)
            fail_msg("a token with iat %s was accepted", bad[i]);
        free(tok);
        snprintf(d, sizeof(d), "\"exp\":%s", bad[i]);
        tok = with_dates(d);
        if (verify(&a, tok, &who) != SAGA_ERR_INVALID)
            fail_msg("a token with exp %s was accepted", bad[i]);
        free(tok);
    }
    /* Numbers are dates, fractions too (NumericDate allows them). */
    snprintf(d, sizeof(d), "\"exp\":%ld.5,\"nbf\":%ld.25,\"iat\":%ld", now + 600, now - 10, now);
    tok = with_dates(d);
    assert_int_equal(verify(&a, tok, &who), SAGA_OK);
    free(tok);
    snprintf(d, sizeof(d), "\"exp\":%ld.5,\"nbf\":%ld.5", now + 600, now + 3600);
    tok = with_dates(d);
    assert_int_equal(verify(&a, tok, &who), SAGA_ERR_INVALID); /* not valid yet */
    free(tok);
    snprintf(d, sizeof(d), "\"exp\":%ld.5", now - 3600);
    tok = with_dates(d);
    assert_int_equal(verify(&a, tok, &who), SAGA_ERR_INVALID); /* expired */
    free(tok);
    saga_auth_release(&a);
}

/*
 * exp plus the clock skew must not wrap: before, exp = INT64_MAX overflowed (a
 * signed overflow, undefined; UBSan stops the test, a plain build refused the token
 * as expired). Far-future and huge dates compare as they read.
 */
static void test_date_arithmetic_saturates(void **state)
{
    struct saga_auth a;
    struct saga_principal who;
    char d[256], *tok;
    long now = (long)time(NULL);
    const char *far[] = {"9223372036854775807", "9223372036854775000", "4611686018427387904",
                         "1e300", "9.3e18"};
    (void)state;
    clear_env();
    setenv("AUTH_SECRET_FILE", secret_file, 1);
    load(&a);
    for (size_t i = 0; i < sizeof(far) / sizeof(far[0]); i++) {
        snprintf(d, sizeof(d), "\"exp\":%s", far[i]);
        tok = with_dates(d);
        if (verify(&a, tok, &who) != SAGA_OK)
            fail_msg("a token with exp %s was refused", far[i]);
        free(tok);
        /* ... and an nbf that far away is not valid yet. */
        snprintf(d, sizeof(d), "\"exp\":%ld,\"nbf\":%s", now + 600, far[i]);
        tok = with_dates(d);
        if (verify(&a, tok, &who) != SAGA_ERR_INVALID)
            fail_msg("a token with nbf %s was accepted", far[i]);
        free(tok);
    }
    /* The smallest dates: exp long past, nbf long past. */
    tok = with_dates("\"exp\":-9223372036854775807");
    assert_int_equal(verify(&a, tok, &who), SAGA_ERR_INVALID);
    free(tok);
    snprintf(d, sizeof(d), "\"exp\":%ld,\"nbf\":-9223372036854775807", now + 600);
    tok = with_dates(d);
    assert_int_equal(verify(&a, tok, &who), SAGA_OK);
    free(tok);
    saga_auth_release(&a);
}

static void test_configuration(void **state)
{
    struct saga_auth a;
    struct saga_principal who;
    char err[256], shortf[160];
    (void)state;
    clear_env();
    assert_int_equal(saga_auth_load(&a, err, sizeof(err)), SAGA_ERR_CONFIG); /* no key */
    assert_non_null(strstr(err, "AUTH_SECRET_FILE"));
    setenv("AUTH_SECRET_FILE", secret_file, 1);
    setenv("AUTH_PUBLIC_KEY_FILE", rsa_pub, 1);
    assert_int_equal(saga_auth_load(&a, err, sizeof(err)), SAGA_ERR_CONFIG); /* both */
    unsetenv("AUTH_PUBLIC_KEY_FILE");
    setenv("AUTH_ALG", "RS256", 1);
    assert_int_equal(saga_auth_load(&a, err, sizeof(err)), SAGA_ERR_CONFIG); /* secret, RS256 */
    unsetenv("AUTH_ALG");
    snprintf(shortf, sizeof(shortf), "%s/short", dir);
    write_file(shortf, "too-short\n");
    setenv("AUTH_SECRET_FILE", shortf, 1);
    assert_int_equal(saga_auth_load(&a, err, sizeof(err)), SAGA_ERR_CONFIG);
    setenv("AUTH_SECRET_FILE", "/nonexistent/secret", 1);
    assert_int_equal(saga_auth_load(&a, err, sizeof(err)), SAGA_ERR_CONFIG);
    setenv("AUTH_MODE", "maybe", 1);
    assert_int_equal(saga_auth_load(&a, err, sizeof(err)), SAGA_ERR_CONFIG);
    /* Off: everyone is the operator "anonymous". */
    setenv("AUTH_MODE", "off", 1);
    load(&a);
    assert_int_equal(saga_auth_verify(&a, NULL, NULL, &who, err, sizeof(err)), SAGA_OK);
    assert_int_equal(who.role, SAGA_ROLE_OPERATOR);
    saga_auth_release(&a);
    clear_env();
}

/* --- JWKS ------------------------------------------------------------------------ */

static void b64url(const unsigned char *p, size_t n, char *out)
{
    static const char a[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t i, o = 0;
    for (i = 0; i + 2 < n; i += 3) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8 | p[i + 2];
        out[o++] = a[v >> 18 & 63], out[o++] = a[v >> 12 & 63];
        out[o++] = a[v >> 6 & 63], out[o++] = a[v & 63];
    }
    if (n - i == 1) {
        unsigned v = (unsigned)p[i] << 16;
        out[o++] = a[v >> 18 & 63], out[o++] = a[v >> 12 & 63];
    } else if (n - i == 2) {
        unsigned v = (unsigned)p[i] << 16 | (unsigned)p[i + 1] << 8;
        out[o++] = a[v >> 18 & 63], out[o++] = a[v >> 12 & 63], out[o++] = a[v >> 6 & 63];
    }
    out[o] = '\0';
}

/* The public key in pem_path as a JWK (RFC 7517/7518) with kid, made with OpenSSL. */
static char *jwk_of(const char *pem_path, const char *kid)
{
    FILE *f = fopen(pem_path, "r");
    EVP_PKEY *k;
    static char out[8][2048];
    static int slot;
    char *o = out[slot++ % 8];
    assert_non_null(f);
    k = PEM_read_PUBKEY(f, NULL, NULL, NULL);
    fclose(f);
    assert_non_null(k);
    if (EVP_PKEY_is_a(k, "RSA")) {
        BIGNUM *n = NULL, *e = NULL;
        unsigned char nb[1024], eb[16];
        char n64[1400], e64[32];
        assert_int_equal(EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_N, &n), 1);
        assert_int_equal(EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_RSA_E, &e), 1);
        b64url(nb, (size_t)BN_bn2bin(n, nb), n64);
        b64url(eb, (size_t)BN_bn2bin(e, eb), e64);
        snprintf(o, 2048,
                 "{\"kty\":\"RSA\",\"kid\":\"%s\",\"use\":\"sig\",\"n\":\"%s\",\"e\":\"%s\"}", kid,
                 n64, e64);
        BN_free(n);
        BN_free(e);
    } else {
        unsigned char pub[65];
        size_t len = 0;
        char x64[64], y64[64];
        assert_int_equal(
            EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub), &len), 1);
        assert_int_equal(len, 65);
        b64url(pub + 1, 32, x64);
        b64url(pub + 33, 32, y64);
        snprintf(o, 2048,
                 "{\"kty\":\"EC\",\"kid\":\"%s\",\"crv\":\"P-256\",\"alg\":\"ES256\",\"x\":\"%s\","
                 "\"y\":\"%s\"}",
                 kid, x64, y64);
    }
    EVP_PKEY_free(k);
    return o;
}

/* Replaces the JWKS file as a deployment would: a new file renamed over the old. */
static void write_jwks(const char *keys)
{
    char tmp[160], text[8192];
    snprintf(tmp, sizeof(tmp), "%s.new", jwks_file);
    snprintf(text, sizeof(text), "{\"keys\":[%s]}", keys);
    write_file(tmp, text);
    assert_int_equal(rename(tmp, jwks_file), 0);
}

static void jwks_env(void)
{
    clear_env();
    setenv("AUTH_JWKS_FILE", jwks_file, 1);
    setenv("AUTH_ISSUER", "https://idp.example", 1);
    setenv("AUTH_AUDIENCE", "order-api", 1);
}

/*
 * A provider's key set (AUTH_JWKS_FILE): the token's kid picks the key, RSA and EC
 * keys side by side; a key is rotated by rewriting the file, without a restart.
 */
static void test_jwks_keys_by_kid_and_rotation(void **state)
{
    struct saga_auth a;
    struct saga_principal who;
    char keys[6000], g[4096], *tok;
    (void)state;
    snprintf(g, sizeof(g), "%s", grants("cust-bob", "customer", 60, IDP));
    snprintf(keys, sizeof(keys), "%s,%s", jwk_of(rsa_pub, "rsa-2024"), jwk_of(ec_pub, "ec-1"));
    write_jwks(keys);
    jwks_env();
    load(&a);
    /* Each key by its kid. */
    tok = sign_kid(JWT_ALG_RS256, rsa_priv, "rsa-2024", g);
    assert_int_equal(verify(&a, tok, &who), SAGA_OK);
    assert_string_equal(who.sub, "cust-bob");
    free(tok);
    tok = sign_kid(JWT_ALG_ES256, ec_priv, "ec-1", g);
    assert_int_equal(verify(&a, tok, &who), SAGA_OK);
    free(tok);
    /* An unknown kid, no kid, a kid naming the other key, a key not in the set. */
    tok = sign_kid(JWT_ALG_RS256, rsa_priv, "rsa-1999", g);
    assert_int_equal(verify(&a, tok, &who), SAGA_ERR_INVALID);
    free(tok);
    tok = sign_kid(JWT_ALG_RS256, rsa_priv, NULL, g);
    assert_int_equal(verify(&a, tok, &who), SAGA_ERR_INVALID);
    free(tok);
    tok = sign_kid(JWT_ALG_RS256, rsa_priv, "ec-1", g);
    assert_int_equal(verify(&a, tok, &who), SAGA_ERR_INVALID);
    free(tok);
    tok = sign_kid(JWT_ALG_RS256, rsa2_priv, "rsa-2024", g);
    assert_int_equal(verify(&a, tok, &who), SAGA_ERR_INVALID);
    free(tok);
    /* HS256 keyed with the public key's PEM, and alg none, under a good kid. */
    tok = sign_kid(JWT_ALG_HS256, rsa_pub, "rsa-2024", g);
    assert_int_equal(verify(&a, tok, &who), SAGA_ERR_INVALID);
    free(tok);
    tok = sign_kid(JWT_ALG_NONE, NULL, "rsa-2024", g);
    assert_int_equal(verify(&a, tok, &who), SAGA_ERR_INVALID);
    free(tok);
    /* Another audience of the same provider. */
    tok = sign_kid(JWT_ALG_RS256, rsa_priv, "rsa-2024",
                   grants("cust-bob", "customer", 60,
                          ",\"iss\":\"https://idp.example\",\"aud\":\"billing-api\""));
    assert_int_equal(verify(&a, tok, &who), SAGA_ERR_INVALID);
    free(tok);

    /* Rotation: the provider adds rsa-2025 and drops rsa-2024; the file is rewritten. */
    snprintf(keys, sizeof(keys), "%s,%s", jwk_of(rsa2_pub, "rsa-2025"), jwk_of(ec_pub, "ec-1"));
    write_jwks(keys);
    tok = sign_kid(JWT_ALG_RS256, rsa2_priv, "rsa-2025", g);
    assert_int_equal(verify(&a, tok, &who), SAGA_OK);
    free(tok);
    tok = sign_kid(JWT_ALG_RS256, rsa_priv, "rsa-2024", g);
    assert_int_equal(verify(&a, tok, &who), SAGA_ERR_INVALID);
    free(tok);
    /* A broken rewrite keeps the keys last read (and says so in the log). */
    write_jwks("{\"kty\":\"RSA\",\"kid\":\"broken\"");
    tok = sign_kid(JWT_ALG_RS256, rsa2_priv, "rsa-2025", g);
    assert_int_equal(verify(&a, tok, &who), SAGA_OK);
    free(tok);
    saga_auth_release(&a);
}

static void test_jwks_configuration(void **state)
{
    struct saga_auth a;
    char err[256], keys[4096];
    const char *bad[] = {
        "",                                                              /* no keys */
        "{\"kty\":\"RSA\",\"kid\":\"k\",\"n\":\"AQAB\",\"e\":\"AQAB\"}", /* a tiny modulus */
        "{\"kty\":\"RSA\",\"kid\":\"k\",\"n\":\"!!!\",\"e\":\"AQAB\"}",  /* not base64url */
        "{\"kty\":\"EC\",\"kid\":\"k\",\"crv\":\"P-256\",\"x\":\"AAAA\",\"y\":\"AAAA\"}",
        "{\"kty\":\"oct\",\"kid\":\"k\",\"k\":\"c2VjcmV0\"}", /* a secret in a key set */
    };
    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        write_jwks(bad[i]);
        jwks_env();
        if (saga_auth_load(&a, err, sizeof(err)) != SAGA_ERR_CONFIG)
            fail_msg("the key set [%s] was accepted", bad[i]);
        assert_non_null(strstr(err, "AUTH_JWKS_FILE"));
    }
    /* Two keys with one kid; a key without a kid. */
    snprintf(keys, sizeof(keys), "%s,%s", jwk_of(rsa_pub, "same"), jwk_of(ec_pub, "same"));
    write_jwks(keys);
    assert_int_equal(saga_auth_load(&a, err, sizeof(err)), SAGA_ERR_CONFIG);
    write_jwks("{\"kty\":\"EC\",\"crv\":\"P-256\",\"x\":\"AAAA\",\"y\":\"AAAA\"}");
    assert_int_equal(saga_auth_load(&a, err, sizeof(err)), SAGA_ERR_CONFIG);
    /* Good keys, but no audience or issuer; or with another key source. */
    write_jwks(jwk_of(rsa_pub, "k"));
    unsetenv("AUTH_AUDIENCE");
    assert_int_equal(saga_auth_load(&a, err, sizeof(err)), SAGA_ERR_CONFIG);
    assert_non_null(strstr(err, "AUTH_AUDIENCE"));
    jwks_env();
    unsetenv("AUTH_ISSUER");
    assert_int_equal(saga_auth_load(&a, err, sizeof(err)), SAGA_ERR_CONFIG);
    assert_non_null(strstr(err, "AUTH_ISSUER"));
    jwks_env();
    setenv("AUTH_PUBLIC_KEY_FILE", rsa_pub, 1);
    assert_int_equal(saga_auth_load(&a, err, sizeof(err)), SAGA_ERR_CONFIG);
    jwks_env();
    setenv("AUTH_JWKS_FILE", "/nonexistent/jwks.json", 1);
    assert_int_equal(saga_auth_load(&a, err, sizeof(err)), SAGA_ERR_CONFIG);
    assert_non_null(strstr(err, "/nonexistent/jwks.json"));
    jwks_env();
    load(&a);
    saga_auth_release(&a);
    clear_env();
}

static int setup(void **state)
{
    char cmd[2048];
    (void)state;
    if (!mkdtemp(dir))
        return -1;
    snprintf(secret_file, sizeof(secret_file), "%s/secret", dir);
    snprintf(rsa_priv, sizeof(rsa_priv), "%s/rsa.pem", dir);
    snprintf(rsa_pub, sizeof(rsa_pub), "%s/rsa.pub", dir);
    snprintf(ec_priv, sizeof(ec_priv), "%s/ec.pem", dir);
    snprintf(ec_pub, sizeof(ec_pub), "%s/ec.pub", dir);
    snprintf(rsa2_priv, sizeof(rsa2_priv), "%s/rsa2.pem", dir);
    snprintf(rsa2_pub, sizeof(rsa2_pub), "%s/rsa2.pub", dir);
    snprintf(jwks_file, sizeof(jwks_file), "%s/jwks.json", dir);
    write_file(secret_file, SECRET);
    snprintf(cmd, sizeof(cmd),
             "openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out %s 2>/dev/null &&"
             " openssl pkey -in %s -pubout -out %s &&"
             " openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 -out %s 2>/dev/null"
             " && openssl pkey -in %s -pubout -out %s &&"
             " openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out %s 2>/dev/null &&"
             " openssl pkey -in %s -pubout -out %s",
             rsa_priv, rsa_priv, rsa_pub, ec_priv, ec_priv, ec_pub, rsa2_priv, rsa2_priv, rsa2_pub);
    return system(cmd) == 0 ? 0 : -1;
}

static int teardown(void **state)
{
    char cmd[256];
    (void)state;
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hs256_round_trip),
        cmocka_unit_test(test_hs256_refusals),
        cmocka_unit_test(test_public_keys_and_key_confusion),
        cmocka_unit_test(test_public_key_needs_audience_and_issuer),
        cmocka_unit_test(test_issuer_and_audience),
        cmocka_unit_test(test_configuration),
        cmocka_unit_test(test_date_claims_must_be_numbers),
        cmocka_unit_test(test_date_arithmetic_saturates),
        cmocka_unit_test(test_jwks_keys_by_kid_and_rotation),
        cmocka_unit_test(test_jwks_configuration),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
