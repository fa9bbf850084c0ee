#!/usr/bin/env bash
# --pg-standby: the group commit an `up` sets (STACK_PG_COMMIT_DELAY) is the promoted
# standby's too. The standby was made by an earlier `up` with another value; after
# `kill postgres` and `promote` the new primary runs with the value of the last `up`.
#   stack_pg_standby_commit_delay.sh STACK_SCRIPT BUILD_DIR
set -u
STACK=$1
BUILD=$2
. "$(dirname "$0")/lib.sh"
T=$(mktemp -d)
trap '"$STACK" down --dir "$T/s" >/dev/null 2>&1; rm -rf "$T"' EXIT
chmod 755 "$T"

up() { STACK_PROGRAMS="" timeout 180 "$STACK" up --no-deps --dir "$T/s" --build "$BUILD" --ports auto --pg-standby 2>&1; }
show() { (. "$T/s/stack.env" && PGPASSWORD=$STACK_PW_POSTGRES psql -X -qAt -h 127.0.0.1 -p "$1" -U postgres -d postgres -c "SHOW $2" 2>&1); }

OUT=$(up)
check "up --pg-standby starts (the standby made with the default, 1000 µs)" contains "$OUT" "as its synchronous standby"
OUT=$(STACK_PG_COMMIT_DELAY=0 up)
check "an up with STACK_PG_COMMIT_DELAY=0 and the standby running" contains "$OUT" "group commit off"
. "$T/s/stack.env"
check "turns it off on the primary" test "$(show "$STACK_PG_PORT" commit_delay)" = 0
"$STACK" kill postgres --dir "$T/s" >/dev/null 2>&1
OUT=$("$STACK" promote --dir "$T/s" 2>&1)
check "the standby is promoted" contains "$OUT" "promoted postgres-2"
echo "postgres-2 after promote: commit_delay $(show "$STACK_PG_STANDBY_PORT" commit_delay), commit_siblings $(show "$STACK_PG_STANDBY_PORT" commit_siblings)"
check "and runs with the last up's commit_delay" test "$(show "$STACK_PG_STANDBY_PORT" commit_delay)" = 0
check "and commit_siblings" test "$(show "$STACK_PG_STANDBY_PORT" commit_siblings)" = 5
"$STACK" down --dir "$T/s" >/dev/null 2>&1
finish
