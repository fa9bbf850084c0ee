/*
 * Bearer tokens for the order API (docs/API.md, "Authentication"): JWTs verified
 * with libjwt, keys from configuration (docs/CONFIGURATION.md):
 *
 *   AUTH_MODE             jwt (default) or off (local development only: every request
 *                         is an operator; the service says so loudly)
 *   AUTH_SECRET_FILE      HS256 shared secret, the file's bytes (trailing newline cut)
 *   AUTH_PUBLIC_KEY_FILE  RS256/ES256 public key (PEM), with AUTH_ALG
 *   AUTH_JWKS_FILE        instead: the provider's key set (RFC 7517: RSA n/e, EC P-256
 *                         x/y), the token's kid picks the key; the file is read again
 *                         when it changes (a key rotated without a restart)
 *   AUTH_ALG              HS256 (with a secret), RS256 (default with a key) or ES256
 *   AUTH_ISSUER, AUTH_AUDIENCE   when set, iss / aud must match; both required
 *                         with a public key or a JWKS (the provider signs other
 *                         applications' tokens with it too)
 *   AUTH_ALLOW_DEV_SECRET =1 accepts the development secret once published in this
 *                         repository (refused otherwise), loudly
 *
 * A token carries sub (the customer id, or the operator's name), role
 * ("customer" or "operator") and exp (required); exp, nbf and iat are JSON
 * numbers when present (anything else is refused). Only the configured
 * algorithm is accepted: alg=none, and an HS256 token signed with a public
 * key, are refused.
 */
#ifndef SAGA_AUTH_H
#define SAGA_AUTH_H

#include <stddef.h>
#include <stdio.h>

#include "saga/err.h"

typedef enum saga_role {
    SAGA_ROLE_NONE = 0, /* not authenticated */
    SAGA_ROLE_CUSTOMER, /* sub is the customer id: only their own orders */
    SAGA_ROLE_OPERATOR, /* every order, every saga */
} saga_role_t;

#define SAGA_AUTH_MAX_SUB 64

struct saga_principal {
    saga_role_t role;
    char sub[SAGA_AUTH_MAX_SUB + 1];
    /* Seconds since the epoch from which saga_auth_verify refuses the token (its exp
     * plus the clock skew allowed); 0: never (AUTH_MODE=off). Ends /events streams. */
    long valid_until;
};

struct saga_jwks; /* AUTH_JWKS_FILE's keys, read again when the file changes */

struct saga_auth {
    int off;                /* AUTH_MODE=off */
    int alg;                /* a jwt_alg_t (not with jwks: each key has its own) */
    unsigned char *key;     /* owned: secret or PEM, or NULL with jwks */
    struct saga_jwks *jwks; /* owned, or NULL */
    size_t key_len;
    char *issuer;   /* owned, or NULL */
    char *audience; /* owned, or NULL */
    int dev_secret; /* the published development secret, with AUTH_ALLOW_DEV_SECRET=1 */
};

/* Reads the AUTH_* variables. SAGA_ERR_CONFIG with the variable in errstr. */
saga_err_t saga_auth_load(struct saga_auth *a, char *errstr, size_t errstr_size);
void saga_auth_release(struct saga_auth *a);

/* The effective AUTH_* settings as NAME=value lines (--check-config); no secret. */
void saga_auth_print(const struct saga_auth *a, FILE *out);

/* Logs at warn what makes a's configuration unsafe (AUTH_MODE=off, the development
 * secret); nothing when there is nothing to say. Call once at start-up. */
void saga_auth_warn(const struct saga_auth *a);

/*
 * The principal of an Authorization header value ("Bearer <jwt>") or of a bare
 * token (authorization NULL and token set, e.g. the page's EventSource, which
 * cannot send headers). With AUTH_MODE=off: an operator named "anonymous".
 * SAGA_ERR_INVALID with the reason in errstr (no token, bad signature, expired...).
 * Any thread.
 */
saga_err_t saga_auth_verify(const struct saga_auth *a, const char *authorization, const char *token,
                            struct saga_principal *out, char *errstr, size_t errstr_size);

/*
 * An HS256 token for sub with role valid for ttl_s seconds, signed with key;
 * malloc'd, or NULL (errstr says why).
 */
char *saga_auth_mint_hs256(const unsigned char *key, size_t key_len, const char *sub,
                           const char *role, long ttl_s, char *errstr, size_t errstr_size);

/* A file's bytes without a trailing newline, malloc'd (NUL-terminated); NULL on error. */
unsigned char *saga_auth_read_key(const char *path, size_t *len, char *errstr, size_t errstr_size);

const char *saga_role2str(saga_role_t role);

#endif
