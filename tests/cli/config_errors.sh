#!/usr/bin/env bash
# Every program: --help and --version exit 0, an unknown option exits 64, bad
# configuration exits 78 with one line naming the variable, and --check-config
# prints the effective configuration with passwords masked.
set -u
BIN=$1
. "$(dirname "$0")/lib.sh"
unset PG_CONNECT_TIMEOUT PG_KEEPALIVE PG_QUERY_TIMEOUT DATABASE_URL HTTP_LISTEN LOG_LEVEL SCHEMA_REGISTRY_URL SAGA_SCHEMA_DIR TOPIC_PARTITIONS SAGA_TIMEOUT RELAY_SOURCES
unset AUTH_MODE AUTH_SECRET_FILE AUTH_PUBLIC_KEY_FILE AUTH_JWKS_FILE AUTH_ALG AUTH_ISSUER AUTH_AUDIENCE AUTH_ALLOW_DEV_SECRET
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
# order-service's bearer-token secret (docs/CONFIGURATION.md): without one it will not start.
printf '%s\n' 0123456789abcdef0123456789abcdef-config-test >"$T/secret"
export AUTH_SECRET_FILE=$T/secret
for v in $(env | sed -n 's/^\(KAFKA_[^=]*\)=.*/\1/p'); do unset "$v"; done
DB=postgresql://svc:s3cret@127.0.0.1:15432/svc

run() { # run ENV... -- PROGRAM ARGS...: sets OUT and RC
    local envs=()
    while [ "$1" != -- ]; do envs+=("$1"); shift; done
    shift
    OUT=$(env "${envs[@]}" "$BIN/$@" 2>&1)
    RC=$?
}

for p in order-service inventory-service payment-service shipping-service notification-service; do
    run -- "$p" --help
    check "$p --help exits 0 and documents DATABASE_URL" test "$RC" = 0 -a -n "$(contains "$OUT" DATABASE_URL && echo y)"
    run -- "$p" --version
    check "$p --version" test "$RC" = 0 -a -n "$(contains "$OUT" "$p 0." && echo y)"
    run -- "$p" --frobnicate
    check "$p unknown option exits 64" test "$RC" = 64
    run -- "$p"
    check "$p without DATABASE_URL exits 78 naming it" test "$RC" = 78 -a -n "$(contains "$OUT" "DATABASE_URL is not set" && echo y)"
    run DATABASE_URL=$DB HTTP_LISTEN=nonsense -- "$p"
    check "$p bad HTTP_LISTEN exits 78" test "$RC" = 78 -a -n "$(contains "$OUT" "HTTP_LISTEN" && echo y)"
    run DATABASE_URL=$DB KAFKA_NOT_A_PROPERTY=1 -- "$p"
    check "$p unknown KAFKA_ property exits 78" test "$RC" = 78 -a -n "$(contains "$OUT" "KAFKA_NOT_A_PROPERTY" && echo y)"
    run DATABASE_URL=$DB KAFKA_SASL_PASSWORD=hunter2 -- "$p" --check-config
    check "$p --check-config prints config" test "$RC" = 0 -a -n "$(contains "$OUT" "KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:19092" && echo y)"
    check "$p --check-config masks passwords" test -z "$(contains "$OUT" s3cret && echo y)$(contains "$OUT" hunter2 && echo y)"
    check "$p bad config message is one line" test "$(env DATABASE_URL=$DB LOG_LEVEL=loud "$BIN/$p" 2>&1 | wc -l)" = 1
done

run DATABASE_URL=$DB PG_QUERY_TIMEOUT=soon -- payment-service
check "a bad PG_QUERY_TIMEOUT exits 78 naming it" test "$RC" = 78 -a -n "$(contains "$OUT" "PG_QUERY_TIMEOUT" && echo y)"
run DATABASE_URL=$DB PG_KEEPALIVE=5s PG_CONNECT_TIMEOUT=3s -- payment-service --check-config
check "--check-config prints the PG_* settings" test "$RC" = 0 -a -n "$(contains "$OUT" "PG_KEEPALIVE=5000ms" && contains "$OUT" "PG_CONNECT_TIMEOUT=3000ms" && contains "$OUT" "PG_QUERY_TIMEOUT=30000ms" && echo y)"

run DATABASE_URL=$DB SAGA_SCHEMA_DIR=/nonexistent -- payment-service
check "a SAGA_SCHEMA_DIR that is not a directory exits 78" test "$RC" = 78 -a -n "$(contains "$OUT" "SAGA_SCHEMA_DIR" && echo y)"

run DATABASE_URL=$DB AUTH_SECRET_FILE= -- order-service
check "order-service without a token key exits 78 naming AUTH_SECRET_FILE" test "$RC" = 78 -a -n "$(contains "$OUT" "AUTH_SECRET_FILE" && echo y)"
run DATABASE_URL=$DB AUTH_SECRET_FILE=/nonexistent -- order-service
check "order-service with an unreadable secret exits 78" test "$RC" = 78 -a -n "$(contains "$OUT" "/nonexistent" && echo y)"
run DATABASE_URL=$DB AUTH_MODE=maybe -- order-service
check "order-service with a bad AUTH_MODE exits 78" test "$RC" = 78 -a -n "$(contains "$OUT" "AUTH_MODE" && echo y)"
run DATABASE_URL=$DB AUTH_MODE=off TRACING_UI_URL='javascript:alert(1)' -- order-service
check "order-service with a TRACING_UI_URL that is not http(s) exits 78" test "$RC" = 78 -a -n "$(contains "$OUT" "TRACING_UI_URL" && echo y)"
run DATABASE_URL=$DB AUTH_SECRET_FILE= AUTH_MODE=off -- order-service --check-config
check "AUTH_MODE=off needs no key and --check-config says so" test "$RC" = 0 -a -n "$(contains "$OUT" "AUTH_MODE=off" && echo y)"
# Public-key mode: tokens are ours only by their aud and iss (the identity provider signs
# other applications' tokens with the same key), so both are required.
openssl genpkey -algorithm EC -pkeyopt ec_paramgen_curve:P-256 2>/dev/null | openssl pkey -pubout -out "$T/idp.pub"
run DATABASE_URL=$DB AUTH_SECRET_FILE= AUTH_PUBLIC_KEY_FILE=$T/idp.pub AUTH_ALG=ES256 AUTH_ISSUER=https://idp.example -- order-service --check-config
check "order-service with a public key but no AUTH_AUDIENCE exits 78 naming it" test "$RC" = 78 -a -n "$(contains "$OUT" "AUTH_AUDIENCE" && echo y)"
run DATABASE_URL=$DB AUTH_SECRET_FILE= AUTH_PUBLIC_KEY_FILE=$T/idp.pub AUTH_ALG=ES256 AUTH_AUDIENCE=order-api -- order-service --check-config
check "order-service with a public key but no AUTH_ISSUER exits 78 naming it" test "$RC" = 78 -a -n "$(contains "$OUT" "AUTH_ISSUER" && echo y)"
run DATABASE_URL=$DB AUTH_SECRET_FILE= AUTH_PUBLIC_KEY_FILE=$T/idp.pub AUTH_ALG=ES256 AUTH_ISSUER=https://idp.example AUTH_AUDIENCE=order-api -- order-service --check-config
check "order-service with a public key, AUTH_ISSUER and AUTH_AUDIENCE starts" test "$RC" = 0 -a -n "$(contains "$OUT" "AUTH_AUDIENCE=order-api" && echo y)"
printf '{"keys":[{"kty":"EC","kid":"k1","crv":"P-256","x":"AAAA","y":"AAAA"}]}' >"$T/bad-jwks.json"
run DATABASE_URL=$DB AUTH_SECRET_FILE= AUTH_JWKS_FILE=$T/bad-jwks.json AUTH_ISSUER=https://idp.example AUTH_AUDIENCE=order-api -- order-service --check-config
check "order-service with a bad AUTH_JWKS_FILE exits 78 naming it" test "$RC" = 78 -a -n "$(contains "$OUT" "AUTH_JWKS_FILE" && echo y)"
b64url() { python3 -c 'import base64, sys; print(base64.urlsafe_b64encode(bytes.fromhex(sys.stdin.read().strip())).decode().rstrip("="))'; }
openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 2>/dev/null | openssl pkey -pubout -out "$T/rsa.pub"
n=$(openssl rsa -pubin -in "$T/rsa.pub" -noout -modulus | cut -d= -f2 | b64url)
printf '{"keys":[{"kty":"RSA","kid":"2025-1","use":"sig","n":"%s","e":"AQAB"}]}' "$n" >"$T/jwks.json"
run DATABASE_URL=$DB AUTH_SECRET_FILE= AUTH_JWKS_FILE=$T/jwks.json AUTH_ISSUER=https://idp.example AUTH_AUDIENCE=order-api -- order-service --check-config
check "order-service with a JWKS starts and --check-config names it" test "$RC" = 0 -a -n "$(contains "$OUT" "AUTH_JWKS_FILE=$T/jwks.json (1 keys" && echo y)"
# The development secret once committed as deploy/compose/dev-auth-secret is known to
# everyone: refused unless AUTH_ALLOW_DEV_SECRET=1 (and then said loudly).
printf '%s\n' USRGjwmjmgZog/bPppjmBXEtDDwGVgQ2cinhnqQ2cju0vQ0/4CWpzpqNVUzaDhMg >"$T/dev-secret"
run DATABASE_URL=$DB AUTH_SECRET_FILE=$T/dev-secret -- order-service --check-config
check "order-service with the well-known development secret exits 78 naming AUTH_ALLOW_DEV_SECRET" test "$RC" = 78 -a -n "$(contains "$OUT" "AUTH_ALLOW_DEV_SECRET" && echo y)"
run DATABASE_URL=$DB AUTH_SECRET_FILE=$T/dev-secret AUTH_ALLOW_DEV_SECRET=1 -- order-service --check-config
check "AUTH_ALLOW_DEV_SECRET=1 takes it and --check-config says so" test "$RC" = 0 -a -n "$(contains "$OUT" "AUTH_ALLOW_DEV_SECRET=1" && echo y)"
run DATABASE_URL=$DB SAGA_TIMEOUT=forever -- order-service
check "order-service bad SAGA_TIMEOUT exits 78" test "$RC" = 78 -a -n "$(contains "$OUT" "SAGA_TIMEOUT" && echo y)"
run DATABASE_URL=$DB SAGA_TIMEOUT=45s -- order-service --check-config
check "order-service shows SAGA_TIMEOUT" test "$RC" = 0 -a -n "$(contains "$OUT" "SAGA_TIMEOUT=45000ms" && echo y)"

run -- outbox-relay
check "outbox-relay without RELAY_SOURCES exits 78" test "$RC" = 78 -a -n "$(contains "$OUT" "RELAY_SOURCES is not set" && echo y)"
run "RELAY_SOURCES=order=postgresql://r:pw1@h/o inventory=postgresql://r:pw2@h/i" -- outbox-relay --check-config
check "outbox-relay --check-config lists sources masked" test "$RC" = 0 -a -n "$(contains "$OUT" "order=postgresql://r:****@h/o inventory=" && echo y)"

run -- sagactl
check "sagactl without a command exits 64" test "$RC" = 64
run -- sagactl help
check "sagactl help" test "$RC" = 0 -a -n "$(contains "$OUT" "topics create" && echo y)"
run -- sagactl topics --help
check "sagactl topics --help" test "$RC" = 0
run -- sagactl topics --bogus
check "sagactl topics bad option exits 64" test "$RC" = 64
run TOPIC_PARTITIONS=zero -- sagactl topics
check "sagactl bad TOPIC_PARTITIONS exits 78" test "$RC" = 78
run KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:1 -- sagactl topics --timeout 2
check "sagactl with no broker exits 69 with the address" test "$RC" = 69 -a -n "$(contains "$OUT" "127.0.0.1:1 did not answer" && echo y)"
finish
