#!/usr/bin/env bash
# scripts/bench saga runs its extra cost pass with PostgreSQL's group commit at
# BENCH_GROUP_COMMIT_DELAY and then puts the stack's own commit_delay back: the open and
# closed loops after it measure the stack as `make up` makes it, and the printout says
# what the first cost pass ran with. loadgen is a stand-in that records the server's
# commit_delay for each pass (no programs run: STACK_PROGRAMS="").
set -u
BENCH=$1
BUILD=$(cd "$2" && pwd)
. "$(dirname "$0")/lib.sh"
T=$(mktemp -d)
STACK=$(dirname "$BENCH")/stack
trap '"$STACK" down --dir "$T/build/bench-stack" >/dev/null 2>&1
    "$STACK" down --dir "$T/nobuild/bench-stack" >/dev/null 2>&1; rm -rf "$T"' EXIT
chmod 755 "$T"

mkdir -p "$T/build/bin"
ln -s "$BUILD/bin/sagactl" "$T/build/bin/sagactl"
cat >"$T/build/bin/loadgen" <<'EOF'
#!/usr/bin/env bash
label= json=
while [ $# -gt 0 ]; do
    case $1 in
    --label) label=$2; shift ;;
    --json) json=$2; shift ;;
    esac
    shift
done
delay=$(psql -X -qAt "$PG_SUPERUSER_URL" -c 'SHOW commit_delay' 2>&1)
echo "$label: $delay" >>"$LOADGEN_SEEN"
[ -z "$json" ] || echo '{"p50_ms":10,"p99_ms":20,"throughput":100.0,"cost":{"wal_fsyncs":8.0,"transactions":33.0,"cpu_ms":{"stack":20.0}}}' >"$json"
EOF
chmod +x "$T/build/bin/loadgen"

OUT=$(LOADGEN_SEEN=$T/seen STACK_PROGRAMS="" BENCH_BUILD=$T/build BENCH_WARMUP=0 BENCH_SECONDS=1 \
    timeout 240 "$BENCH" saga 2>&1)
echo "$OUT" | tail -n 12
SEEN=$(cat "$T/seen" 2>/dev/null)
echo "$SEEN"
check "the cost pass runs at the stack's commit_delay (1000 µs, as make up)" contains "$SEEN" "cost: 1000"
check "the group commit pass at BENCH_GROUP_COMMIT_DELAY" contains "$SEEN" "cost, commit_delay 4000us: 4000"
check "the open loop after it at the stack's again" contains "$SEEN" "open loop: 1000"
check "and the closed loop" contains "$SEEN" "closed loop: 1000"
check "the printout names the first cost pass's commit_delay" contains "$OUT" "at commit_delay 1000 us: p50 10 ms"
check "the bench stack is down" test -z "$(ls "$T/build/bench-stack/run" 2>/dev/null)"

# A group-commit delay that is no number of microseconds is refused before anything starts.
OUT=$(STACK_PROGRAMS="" BENCH_GROUP_COMMIT_DELAY=4ms BENCH_BUILD=$T/build BENCH_WARMUP=0 \
    BENCH_SECONDS=1 timeout 60 "$BENCH" saga 2>&1)
RC=$?
check "BENCH_GROUP_COMMIT_DELAY=4ms is refused" test "$RC" -ne 0
check "with a cause that names it" contains "$OUT" "BENCH_GROUP_COMMIT_DELAY must be microseconds from 0 to 100000"

# An up that fails half-way (here: no sagactl to create the topics with, after
# PostgreSQL and Kafka started) leaves nothing running.
mkdir -p "$T/nobuild/bin"
OUT=$(STACK_PROGRAMS="" BENCH_BUILD=$T/nobuild BENCH_WARMUP=0 BENCH_SECONDS=1 timeout 240 "$BENCH" saga 2>&1)
RC=$?
check "bench fails when the stack does not come up" test "$RC" -ne 0
check "with the stack's cause" contains "$OUT" "sagactl is not built"
check "and stops the PostgreSQL it started" test ! -e "$T/nobuild/bench-stack/pg/data/postmaster.pid"
check "and the broker" test -z "$(ls "$T/nobuild/bench-stack/run" 2>/dev/null)"
finish
