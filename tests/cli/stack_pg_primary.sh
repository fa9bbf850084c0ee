#!/usr/bin/env bash
# --pg-standby: which node `up` starts as the primary when none runs and both lack
# standby.signal, from the data directories alone (nothing is started: both are
# incomplete, so `up` stops at the node it chose and names it).
#
# A node that `up` was rebuilding into a standby when it was interrupted (Ctrl-C, a
# time-out, a crash) — pg_basebackup under way, or pg_rewind done but standby.signal not
# yet written — already holds the new primary's timeline history file and a
# backup_label. It is not the primary: starting it as one would put the programs on a
# half-copied or rewound copy and lose what the real primary committed since.
#   stack_pg_primary.sh STACK_SCRIPT BUILD_DIR
set -u
STACK=$1
BUILD=$2
. "$(dirname "$0")/lib.sh"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
chmod 755 "$T"

# node DIR: a data directory as far as `up` looks at it before starting it, with the
# history file of timeline 2 (the promoted node's and what a rebuild copies first).
node() {
    mkdir -p "$1/pg_wal"
    echo 15 >"$1/PG_VERSION"
    printf '1\t0/3000000\tno recovery target specified\n' >"$1/pg_wal/00000002.history"
    : >"$1/postgresql.conf"
    : >"$1/pg_hba.conf"
}
PGB=$T/pg
node "$PGB/data"   # node 1: the old primary, being made again from node 2
node "$PGB/data-2" # node 2: promoted, stopped before its first checkpoint
echo "START WAL LOCATION: 0/5000028 (file 000000020000000000000005)" >"$PGB/data/backup_label"
[ "$(id -u)" -eq 0 ] && chown -R postgres: "$PGB"

OUT=$(STACK_PG_BASE=$PGB timeout 120 "$STACK" up --no-deps --dir "$T/s" --build "$BUILD" \
    --ports auto --pg-standby 2>&1)
echo "$OUT" | tail -n 3
check "up starts the promoted node as the primary, not the one being rebuilt" \
    contains "$OUT" "postgres-2 did not start"
check "up does not start the node being rebuilt as the primary" \
    test -z "$(echo "$OUT" | grep -F "postgres did not start")"
finish
