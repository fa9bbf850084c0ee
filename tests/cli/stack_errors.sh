#!/usr/bin/env bash
# scripts/stack fails fast with a one-line cause and starts nothing when a port is
# taken; it notices and removes stale pid files; down on an empty directory is harmless.
set -u
STACK=$1
BUILD=$2
. "$(dirname "$0")/lib.sh"
T=$(mktemp -d)
trap 'kill $HOLDER 2>/dev/null; rm -rf "$T"' EXIT

# Hold a port on loopback with a plain listener.
PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
python3 -c "import socket,time; s=socket.socket(); s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); s.bind(('127.0.0.1',$PORT)); s.listen(); time.sleep(120)" &
HOLDER=$!
for _ in $(seq 50); do ss -Htln "sport = :$PORT" | grep -q . && break; sleep 0.1; done

OUT=$(STACK_PG_PORT=$PORT timeout 120 "$STACK" up --no-deps --dir "$T/s1" --build "$BUILD" 2>&1)
RC=$?
check "up with the postgres port taken fails" test "$RC" -ne 0
check "the cause names the port and its owner" contains "$OUT" "port $PORT for postgres is already in use by python3"
check "the cause says how to fix it" contains "$OUT" "STACK_PG_PORT"
check "nothing was left running" test -z "$(ls "$T/s1/run" 2>/dev/null)"

OUT=$(STACK_KAFKA_PORT=$PORT STACK_PG_PORT=$PORT timeout 120 "$STACK" status --dir "$T/s1" 2>&1)
check "status reports stopped components" contains "$OUT" "postgres               stopped"

# A shell that sourced another stack's stack.env exports that stack's state (its ports,
# passwords, PostgreSQL directory): up --dir ANOTHER does not take it for its own.
mkdir -p "$T/other"
cat >"$T/other/stack.env" <<EOF
export STACK_DIR='$T/other'
export STACK_PG_PORT=$PORT
export STACK_PW_POSTGRES=not-this-stacks
EOF
OUT=$(. "$T/other/stack.env" && STACK_PG_COMMIT_DELAY=2500 STACK_PROGRAMS="" timeout 120 \
    "$STACK" up --no-deps --ports auto --dir "$T/s3" --build "$BUILD" 2>&1)
RC=$?
check "up --dir elsewhere after sourcing another stack's stack.env starts" test "$RC" = 0
check "with ports of its own" not_contains "$OUT" "port $PORT for postgres is already in use"
check "and passwords of its own" not_contains "$(cat "$T/s3/stack.env" 2>/dev/null)" "not-this-stacks"

# STACK_PG_COMMIT_DELAY: PostgreSQL's group commit (commit_delay, with commit_siblings 1),
# set on the running server by every up; 1000 µs unless given, and a stack keeps the
# value it was last given (in DIR/pg_commit_delay, not in stack.env) until another is given.
pg_show() { (. "$T/s3/stack.env" && psql -X -qAt "$PG_SUPERUSER_URL" -c "SHOW $1" 2>&1); }
check "STACK_PG_COMMIT_DELAY reaches the server's commit_delay" test "$(pg_show commit_delay)" = 2500
check "with commit_siblings 1" test "$(pg_show commit_siblings)" = 1
check "up says so" contains "$OUT" "commit_delay 2500"
check "the stack remembers it" test "$(cat "$T/s3/pg_commit_delay" 2>&1)" = 2500
check "outside stack.env" not_contains "$(cat "$T/s3/stack.env")" "COMMIT_DELAY"
cp "$T/s3/stack.env" "$T/s3-at-2500.env"
STACK_PROGRAMS="" timeout 120 "$STACK" up --no-deps --dir "$T/s3" --build "$BUILD" >/dev/null 2>&1
check "an up without it keeps the stack's own" test "$(pg_show commit_delay)" = 2500
STACK_PG_COMMIT_DELAY=0 STACK_PROGRAMS="" timeout 120 "$STACK" up --no-deps --dir "$T/s3" \
    --build "$BUILD" >/dev/null 2>&1
check "STACK_PG_COMMIT_DELAY=0 turns it off" test "$(pg_show commit_delay)" = 0
# From a shell that sourced stack.env (as users do) while the stack still ran at 2500.
(. "$T/s3-at-2500.env" && STACK_PROGRAMS="" timeout 120 "$STACK" up --no-deps --dir "$T/s3" \
    --build "$BUILD") >/dev/null 2>&1
check "and it stays off over the next up, also from a shell that sourced the older stack.env" \
    test "$(pg_show commit_delay)" = 0
STACK_PROGRAMS="" timeout 120 "$STACK" up --no-deps --dir "$T/s5" --ports auto --build "$BUILD" \
    >/dev/null 2>&1
check "a new stack starts at the default, 1000 µs" \
    test "$( (. "$T/s5/stack.env" && psql -X -qAt "$PG_SUPERUSER_URL" -c "SHOW commit_delay") 2>&1)" = 1000
# The single broker is sized for the stack's small machine: 1 network thread and 2 I/O
# threads, not Kafka's 3 and 8 (docs/BENCHMARKS.md: a tenth less of the broker's CPU
# per order at 50 orders/s, a fifth in the closed loop, on 2 cores). Asked of the
# running broker, with the stack's own Kafka (the version scripts/stack takes).
KAFKA_VERSION=$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$(dirname "$STACK")/kafka/pom.xml")
KAFKA_LIBS=${STACK_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/order-saga}/kafka-$KAFKA_VERSION/libs
BROKER=$( (. "$T/s5/stack.env" && java -cp "$KAFKA_LIBS/*" kafka.admin.ConfigCommand \
    --bootstrap-server "$KAFKA_BOOTSTRAP_SERVERS" --entity-type brokers --entity-name 1 \
    --describe --all) 2>&1)
check "the broker runs 1 network thread" contains "$BROKER" "num.network.threads=1 "
check "and 2 I/O threads" contains "$BROKER" "num.io.threads=2 "
"$STACK" down --dir "$T/s5" >/dev/null 2>&1
OUT=$(STACK_PG_COMMIT_DELAY=2ms STACK_PROGRAMS="" timeout 120 "$STACK" up --no-deps \
    --dir "$T/s3" --build "$BUILD" 2>&1)
RC=$?
check "a commit delay that is no number of microseconds is refused" test "$RC" -ne 0
check "with a cause that names the variable and its range" \
    contains "$OUT" "STACK_PG_COMMIT_DELAY must be microseconds from 0 to 100000"
check "and the server is left as it was" test "$(pg_show commit_delay)" = 0
# A remembered value edited by hand to one PostgreSQL would refuse: refused the same way.
echo 1s >"$T/s3/pg_commit_delay"
OUT=$(STACK_PROGRAMS="" timeout 120 "$STACK" up --no-deps --dir "$T/s3" --build "$BUILD" 2>&1)
RC=$?
check "a remembered commit delay that is no number of microseconds is refused" test "$RC" -ne 0
check "with the same cause" contains "$OUT" "STACK_PG_COMMIT_DELAY must be microseconds from 0 to 100000"
check "naming the value and where it came from" contains "$OUT" "not '1s' (from $T/s3/pg_commit_delay)"
"$STACK" down --dir "$T/s3" >/dev/null 2>&1

mkdir -p "$T/s2/run"
echo "# empty" >"$T/s2/stack.env"
sleep 0 & DEAD=$!
wait $DEAD
echo $DEAD >"$T/s2/run/kafka.pid"
OUT=$("$STACK" status --dir "$T/s2" 2>&1)
RC=$?
check "status exits 3 when nothing runs" test "$RC" = 3
check "status names the stale pid file" contains "$OUT" "removing stale pid file $T/s2/run/kafka.pid"
check "the stale pid file is gone" test ! -e "$T/s2/run/kafka.pid"

OUT=$("$STACK" down --dir "$T/nothing-here" 2>&1)
check "down where nothing ran is harmless" test $? = 0
check "and says so" contains "$OUT" "nothing to stop"

OUT=$("$STACK" up --bogus 2>&1)
check "unknown option is refused" contains "$OUT" "unknown option '--bogus'"

# A Kafka cluster is 1 or 3 brokers, and a stack keeps the count its data was made for
# (refused before stack.env is written, so the refusal changes nothing).
OUT=$("$STACK" up --brokers 2 2>&1)
check "--brokers 2 is refused" contains "$OUT" "--brokers takes 1 or 3"
mkdir -p "$T/s4/kafka/data"
echo "cluster.id=x" >"$T/s4/kafka/data/meta.properties"
OUT=$(timeout 120 "$STACK" up --no-deps --brokers 3 --dir "$T/s4" --build "$BUILD" 2>&1)
RC=$?
check "--brokers 3 on a single broker's data fails" test "$RC" -ne 0
check "and says why" contains "$OUT" "was made for 1 broker(s), not 3"
check "and writes no stack.env" test ! -e "$T/s4/stack.env"
finish
