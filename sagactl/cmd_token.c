/*
 * sagactl token mint: a bearer token for the order API (docs/API.md,
 * "Authentication"), signed HS256 with the shared secret the local stack made
 * (AUTH_SECRET_FILE, else STACK_AUTH_SECRET_FILE of a sourced stack.env). A
 * production deployment has its own identity provider; this is for the local
 * stack, the tests and the walkthrough.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "saga/auth.h"
#include "saga/config.h"
#include "sagactl.h"

static void usage(FILE *out)
{
    fprintf(out,
            "usage: sagactl token mint --sub SUBJECT [--role customer|operator] [--ttl SECONDS]\n"
            "                          [--secret-file FILE]\n"
            "\n"
            "Prints a bearer token for the order API: sub is the customer id (role customer,\n"
            "the default) or the operator's name (role operator). It is valid for --ttl\n"
            "seconds (default 2592000, 30 days) and signed HS256 with the secret in\n"
            "--secret-file (default AUTH_SECRET_FILE, else STACK_AUTH_SECRET_FILE).\n");
}

int sagactl_token(int argc, char **argv)
{
    const char *sub = NULL, *role = "customer", *file = NULL;
    long ttl = 30L * 24 * 3600;
    unsigned char *key;
    size_t key_len;
    char err[512], *tok, *end;

    if (argc < 2 || strcmp(argv[1], "mint") != 0) {
        usage(argc >= 2 && !strcmp(argv[1], "--help") ? stdout : stderr);
        return argc >= 2 && !strcmp(argv[1], "--help") ? SAGACTL_EXIT_OK : SAGACTL_EXIT_USAGE;
    }
    for (int i = 2; i < argc; i += 2) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            usage(stdout);
            return SAGACTL_EXIT_OK;
        } else if (!strcmp(a, "--sub") && v) {
            sub = v;
        } else if (!strcmp(a, "--role") && v) {
            role = v;
        } else if (!strcmp(a, "--secret-file") && v) {
            file = v;
        } else if (!strcmp(a, "--ttl") && v) {
            ttl = strtol(v, &end, 10);
            if (*end || ttl < 1 || ttl > 10L * 365 * 24 * 3600) {
                fprintf(stderr, "sagactl token: --ttl '%s' is not a number of seconds\n", v);
                return SAGACTL_EXIT_USAGE;
            }
        } else {
            fprintf(stderr, "sagactl token: unknown option '%s' (or its value is missing)\n", a);
            usage(stderr);
            return SAGACTL_EXIT_USAGE;
        }
    }
    if (!sub) {
        fprintf(stderr, "sagactl token: --sub is required\n");
        return SAGACTL_EXIT_USAGE;
    }
    if (!file)
        file = saga_env("AUTH_SECRET_FILE", saga_env("STACK_AUTH_SECRET_FILE", NULL));
    if (!file) {
        fprintf(stderr, "sagactl token: no secret: pass --secret-file, or set AUTH_SECRET_FILE "
                        "(or source the stack's stack.env)\n");
        return SAGACTL_EXIT_CONFIG;
    }
    if (!(key = saga_auth_read_key(file, &key_len, err, sizeof(err)))) {
        fprintf(stderr, "sagactl token: %s\n", err);
        return SAGACTL_EXIT_CONFIG;
    }
    tok = saga_auth_mint_hs256(key, key_len, sub, role, ttl, err, sizeof(err));
    memset(key, 0, key_len);
    free(key);
    if (!tok) {
        fprintf(stderr, "sagactl token: %s\n", err);
        return SAGACTL_EXIT_USAGE;
    }
    printf("%s\n", tok);
    free(tok);
    return SAGACTL_EXIT_OK;
}
