#!/usr/bin/env bash
# Least privilege in PostgreSQL, checked on the running test stack: each service's role
# reaches only its own database, and the relay's role only what publishing needs
# (read the outbox, set published_at, delete published rows) — nothing else.
#
#   it_privileges.sh STACK_DIR
set -euo pipefail
. "$(dirname "$0")/../cli/lib.sh"

STACK_DIR=$1
# shellcheck disable=SC1091
. "$STACK_DIR/stack.env"
SERVICES=(order inventory payment shipping notification)
# A table of each service's own besides inbox/outbox (the relay must not read them).
declare -A OWN_TABLE=([order]=orders [inventory]=stock [payment]=payments
    [shipping]=shipments [notification]=notifications)

# sql URL STATEMENT: runs it, prints psql's output (errors included); fails like psql.
sql() { PGCONNECT_TIMEOUT=10 psql "$1" -v ON_ERROR_STOP=1 -XAtq -c "$2" 2>&1; }
# refused URL STATEMENT NEEDLE: the statement fails and says NEEDLE.
refused() {
    local out
    if out=$(sql "$1" "$2"); then
        echo "     (it ran: $out)"
        return 1
    fi
    contains "$out" "$3" || {
        echo "     (failed differently: $out)"
        return 1
    }
}
db_url() { # db_url ROLE_URL DATABASE: the same credentials against another database
    sed "s:/[a-z_]*\$:/$2:" <<<"$1"
}
relay_url() { # relay_url SERVICE
    local pair
    for pair in $RELAY_SOURCES; do
        [ "${pair%%=*}" = "$1" ] && echo "${pair#*=}"
    done
    return 0
}

for s in "${SERVICES[@]}"; do
    var=${s^^}_DATABASE_URL
    url=${!var}
    check "$s: its role works in its own database" \
        bash -c '[ "$(psql "$1" -XAtqc "SELECT count(*) >= 0 FROM outbox")" = t ]' _ "$url"
    check "$s: its role is no superuser and cannot create roles or databases" \
        bash -c '[ "$(psql "$1" -XAtqc "SELECT rolsuper OR rolcreaterole OR rolcreatedb FROM pg_roles WHERE rolname = current_user")" = f ]' _ "$url"
    for other in "${SERVICES[@]}"; do
        [ "$other" = "$s" ] && continue
        check "$s: its role cannot connect to ${other}_service" \
            refused "$(db_url "$url" "${other}_service")" "SELECT 1" "permission denied"
    done
    rurl=$(relay_url "$s")
    check "relay on $s: reads the outbox" \
        bash -c '[ "$(psql "$1" -XAtqc "SELECT count(*) >= 0 FROM outbox")" = t ]' _ "$rurl"
    check "relay on $s: may set published_at" \
        bash -c 'psql "$1" -XAtq -v ON_ERROR_STOP=1 -c "BEGIN" -c "UPDATE outbox SET published_at = published_at WHERE false" -c "ROLLBACK" >/dev/null' _ "$rurl"
    check "relay on $s: cannot change an event's payload" \
        refused "$rurl" "UPDATE outbox SET payload = payload WHERE false" "permission denied"
    check "relay on $s: cannot insert into the outbox" \
        refused "$rurl" "INSERT INTO outbox (topic) SELECT 'x' WHERE false" "permission denied"
    check "relay on $s: cannot read the inbox" \
        refused "$rurl" "SELECT 1 FROM inbox LIMIT 1" "permission denied"
    check "relay on $s: cannot read ${OWN_TABLE[$s]}" \
        refused "$rurl" "SELECT 1 FROM ${OWN_TABLE[$s]} LIMIT 1" "permission denied"
    check "relay on $s: cannot create tables" \
        refused "$rurl" "CREATE TABLE relay_was_here (x int)" "permission denied"
done

finish
