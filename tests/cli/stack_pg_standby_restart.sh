#!/usr/bin/env bash
# --pg-standby: `up` brings a stopped standby back. The primary names it as its
# synchronous standby, so until it streams again every commit on the primary waits for
# it: `up` must not write (roles, passwords) in a way that waits before starting it.
# After `down` (both nodes stopped) and after `kill postgres-standby`.
#   stack_pg_standby_restart.sh STACK_SCRIPT BUILD_DIR
set -u
STACK=$1
BUILD=$2
. "$(dirname "$0")/lib.sh"
T=$(mktemp -d)
trap '"$STACK" down --dir "$T/s" >/dev/null 2>&1; rm -rf "$T"' EXIT
chmod 755 "$T"

up() { STACK_PROGRAMS="" timeout 60 "$STACK" up --no-deps --dir "$T/s" --build "$BUILD" --pg-standby "$@" 2>&1; }

OUT=$(up --ports auto)
check "up --pg-standby starts" contains "$OUT" "as its synchronous standby"
"$STACK" down --dir "$T/s" >/dev/null 2>&1
OUT=$(up)
RC=$?
echo "$OUT" | tail -n 3
check "up after down starts both nodes again (no wait for the stopped standby)" test "$RC" = 0
check "with the standby streaming" contains "$OUT" "as its synchronous standby"
"$STACK" kill postgres-standby --dir "$T/s" >/dev/null 2>&1
OUT=$(up)
RC=$?
echo "$OUT" | tail -n 3
check "up after kill postgres-standby brings it back" test "$RC" = 0
check "streaming" contains "$OUT" "as its synchronous standby"
"$STACK" down --dir "$T/s" >/dev/null 2>&1
finish
