#!/usr/bin/env bash
# The promoted node crashes before its first checkpoint (scripts/stack up --pg-standby):
# the primary is stopped -m immediate, the standby promoted, a transaction commits on
# it, and it is stopped -m immediate too while its control file still names the old
# timeline (the checkpoint that follows a promotion is spread over minutes). The next
# `up` must start the promoted node as the primary and keep that commit: starting the
# old primary instead, and rewinding the promoted node into its standby, would lose
# every transaction committed since the failover.
#   it_pg_failover_crash.sh STACK_SCRIPT STACK_DIR BUILD_DIR
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
check "up --pg-standby succeeds" test "$RC" = 0
[ "$RC" = 0 ] || { echo "$OUT" | tail -n 5; finish; exit 1; }
. "$DIR/stack.env"
sql() { PGPASSWORD=$STACK_PW_POSTGRES PGCONNECT_TIMEOUT=5 psql -X -q -At -h 127.0.0.1 -p "$1" -U postgres -d postgres -c "$2" 2>/dev/null; }

"$STACK" kill postgres --dir "$DIR"
OUT=$("$STACK" promote --dir "$DIR" 2>&1)
check "the standby is promoted" test "$?" = 0
check "a transaction commits on the promoted node" \
    test "$(sql "$STACK_PG_STANDBY_PORT" "CREATE TABLE after_failover AS SELECT 42 AS x; SELECT x FROM after_failover")" = 42
OUT=$("$STACK" kill postgres --dir "$DIR" 2>&1)
echo "$OUT"
check "the promoted node is the one stopped -m immediate" contains "$OUT" "stopped postgres-2"

# (bounded: an up that waits for a node that never streams must not hang the test)
OUT=$(timeout 150 "$STACK" up --no-deps --dir "$DIR" --build "$BUILD" 2>&1)
echo "$OUT" | grep -E 'postgres|rewind'
check "the promoted node is started as the primary" \
    test "$(sql "$STACK_PG_STANDBY_PORT" "SELECT pg_is_in_recovery()")" = f
check "the transaction committed after the failover is still there" \
    test "$(sql "$STACK_PG_STANDBY_PORT" "SELECT x FROM after_failover")" = 42
check "the old primary is not a primary" \
    test "$(sql "$STACK_PG_PORT" "SELECT pg_is_in_recovery()")" != f
finish
