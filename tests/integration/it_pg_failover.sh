#!/usr/bin/env bash
# `make up PG_STANDBY=1` failing over, as an operator would see it: a stack of its own
# with PostgreSQL as a primary and a synchronous streaming standby (scripts/stack up
# --pg-standby). An order is placed and completes; the primary is stopped -m immediate
# and the standby promoted (scripts/stack promote, i.e. pg_ctl promote); with no program
# restarted, a second order is placed and completes and the first one is still there
# (every program found the new primary by itself: target_session_attrs=read-write), the
# relay leads every source on the new primary. Then `up` brings the old primary back
# as a standby of the new one (pg_rewind), never as a second primary, and a third order
# completes with it as the synchronous standby. The chaos suite does the same under
# load (make chaos-pg, scenario 18).
#   it_pg_failover.sh STACK_SCRIPT STACK_DIR BUILD_DIR
set -u
STACK=$1
DIR=$2
BUILD=$3
. "$(dirname "$0")/../cli/lib.sh"

cleanup() { "$STACK" down --dir "$DIR" --build "$BUILD" >/dev/null 2>&1 || true; }
trap cleanup EXIT
cleanup
rm -rf "$DIR"

OUT=$("$STACK" up --no-deps --dir "$DIR" --build "$BUILD" --ports auto --ttl 600 --pg-standby 2>&1)
RC=$?
echo "$OUT" | grep -E 'postgres|ready|error' | tail -n 8
check "up --pg-standby succeeds" test "$RC" = 0
[ "$RC" = 0 ] || { finish; exit 1; }
. "$DIR/stack.env"
check "stack.env names the standby's port" test -n "${STACK_PG_STANDBY_PORT:-}"
check "every DATABASE_URL names both nodes, read-write" \
    contains "$ORDER_DATABASE_URL" "@127.0.0.1:$STACK_PG_PORT,127.0.0.1:$STACK_PG_STANDBY_PORT/order_service?target_session_attrs=read-write"
check "RELAY_SOURCES names both nodes" contains "$RELAY_SOURCES" "127.0.0.1:$STACK_PG_PORT,127.0.0.1:$STACK_PG_STANDBY_PORT/payment_service?target_session_attrs=read-write"
sql() { PGPASSWORD=$STACK_PW_POSTGRES PGCONNECT_TIMEOUT=5 psql -X -At -h 127.0.0.1 -p "$1" -U postgres -d postgres -c "$2" 2>/dev/null; }
check "the standby streams synchronously" \
    test "$(sql "$STACK_PG_PORT" "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'postgres-2'")" = sync
check "commits wait for it (synchronous_commit on)" test "$(sql "$STACK_PG_PORT" "SHOW synchronous_commit")" = on

# place: an order's id, retried while the order API refuses (a failover under way)
place() {
    local id i
    for ((i = 0; i < 60; i++)); do
        id=$("$BUILD/bin/sagactl" place --customer cust-alice 2>/dev/null) && { echo "$id"; return 0; }
        sleep 1
    done
    return 1
}
# status ID: its status as the order API says it
status() {
    curl -sf --max-time 5 -H "Authorization: Bearer $STACK_OPERATOR_TOKEN" "$ORDER_API_URL/orders/$1" | jq -r .status
}
# wait_confirmed ID: until the saga confirmed it (60 s)
wait_confirmed() {
    local i
    for ((i = 0; i < 120; i++)); do
        [ "$(status "$1")" = CONFIRMED ] && return 0
        sleep 0.5
    done
    return 1
}
pids() { cat "$DIR"/run/{outbox-relay,order-service,inventory-service,payment-service,shipping-service,notification-service}.pid | tr '\n' ' '; }

A=$(place)
check "an order is placed ($A)" test -n "$A"
check "and completes" wait_confirmed "$A"
PIDS=$(pids)

OUT=$("$STACK" kill postgres --dir "$DIR" 2>&1)
echo "$OUT"
check "the primary is stopped -m immediate" contains "$OUT" "stopped postgres (pid"
OUT=$("$STACK" promote --dir "$DIR" 2>&1)
RC=$?
echo "$OUT"
check "the standby is promoted" test "$RC" = 0
check "the promoted node takes writes" test "$(sql "$STACK_PG_STANDBY_PORT" "SELECT pg_is_in_recovery()")" = f

B=$(place)
check "an order is placed after the failover ($B)" test -n "$B"
check "and completes" wait_confirmed "$B"
check "the first order is still there, confirmed" test "$(status "$A")" = CONFIRMED
check "no program was restarted (each found the new primary itself)" test "$(pids)" = "$PIDS"
leaders=$(curl -sf --max-time 5 "http://127.0.0.1:$((STACK_HTTP_PORT_BASE + 5))/metrics" | grep -c '^saga_relay_leader{.*} 1$')
check "the relay leads all 5 sources again (got $leaders)" test "$leaders" = 5
locks=$(sql "$STACK_PG_STANDBY_PORT" "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND objid = 7170002 AND granted")
check "its 5 leader locks are held on the new primary (got $locks)" test "$locks" = 5

OUT=$("$STACK" up --no-deps --dir "$DIR" --build "$BUILD" 2>&1)
RC=$?
echo "$OUT" | grep -E 'postgres|rewind'
check "up after the failover succeeds" test "$RC" = 0
check "it rewinds the old primary" contains "$OUT" "rewinding it into a standby (pg_rewind)"
check "pg_rewind did it (no new base backup)" not_contains "$OUT" "making it again with pg_basebackup"
check "the old primary is back as a standby, not a primary" test "$(sql "$STACK_PG_PORT" "SELECT pg_is_in_recovery()")" = t
check "it is the new primary's synchronous standby" \
    test "$(sql "$STACK_PG_STANDBY_PORT" "SELECT sync_state FROM pg_stat_replication WHERE application_name = 'postgres'")" = sync
STATUS=$("$STACK" status --dir "$DIR" --build "$BUILD" 2>&1)
check "status shows the roles" grep -qE '^postgres-2 +running .* primary$' <<<"$STATUS"
C=$(place)
check "a third order completes" wait_confirmed "$C"
check "the orders of both primaries are there" test "$(status "$A") $(status "$B")" = "CONFIRMED CONFIRMED"

OUT=$("$STACK" down --dir "$DIR" --build "$BUILD" 2>&1)
check "down stops both nodes" test "$(grep -c 'stopped postgres' <<<"$OUT")" = 2
finish
