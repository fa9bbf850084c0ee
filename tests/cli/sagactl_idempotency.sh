#!/usr/bin/env bash
# sagactl place always sends an Idempotency-Key (a new UUID unless --key gives one)
# and keeps it on its own retries, so an unclear failure never places an order
# twice; sagactl cancel (safe to repeat) retries too. Checked against a stand-in API
# on 127.0.0.1 (tests/cli/capture_api.py).
# usage: sagactl_idempotency.sh PATH/TO/sagactl
set -u
SAGACTL=$1
. "$(dirname "$0")/lib.sh"
T=$(mktemp -d)
SERVER=
trap '[ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null; rm -rf "$T"' EXIT
is_uuid() { [[ $1 =~ ^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$ ]]; }

serve() { # serve STATUSES: a fresh stand-in API; ORDER_API_URL points at it
    [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null && wait "$SERVER" 2>/dev/null
    rm -f "$T/port" "$T/log"
    touch "$T/log"
    python3 "$(dirname "$0")/capture_api.py" "$T/port" "$T/log" "$1" &
    SERVER=$!
    for _ in $(seq 400); do [ -s "$T/port" ] && break; sleep 0.05; done
    export ORDER_API_URL=http://127.0.0.1:$(cat "$T/port")
}
run() { # run ARGS...: OUT, ERR, RC
    "$SAGACTL" "$@" >"$T/out" 2>"$T/err"
    RC=$?
    OUT=$(cat "$T/out")
    ERR=$(cat "$T/err")
}
keys() { awk '{print $3}' "$T/log"; }

serve 202
run place
check "place exits 0" test "$RC" = 0
check "place sent one request" test "$(wc -l <"$T/log")" = 1
FIRST=$(keys)
check "with an Idempotency-Key that is a UUID" is_uuid "$FIRST"
run place
check "another place sends another key" test "$(keys | tail -n1)" != "$FIRST"
check "also a UUID" is_uuid "$(keys | tail -n1)"

serve 503,503,202
run place
check "place retries after a 503 and exits 0 once placed" test "$RC" = 0
check "three requests" test "$(wc -l <"$T/log")" = 3
check "all with one key" test "$(keys | sort -u | wc -l)" = 1
check "a UUID" is_uuid "$(keys | head -n1)"
check "and says it retries with the same key" contains "$ERR" "retrying with the same Idempotency-Key $(keys | head -n1)"

serve 503
run place --key my-key-1
check "place gives up after 4 attempts, exit 69" test "$RC" = 69
check "4 requests" test "$(wc -l <"$T/log")" = 4
check "each with the key given by --key" test "$(keys | sort -u)" = my-key-1
check "and says how to try again safely" contains "$ERR" "--key my-key-1 tries again"

serve 422
run place
check "a refused order is not retried (exit 1)" test "$RC" = 1
check "one request" test "$(wc -l <"$T/log")" = 1

ORDER=0b6f7c1a-2d3e-4f50-8a9b-c0d1e2f3a4b5
serve 503,200
run cancel "$ORDER" --json
check "cancel retries after a 503 and exits 0" test "$RC" = 0
check "two requests to the cancel endpoint" test "$(grep -c "^POST /orders/$ORDER/cancel " "$T/log")" = 2
check "and prints the order" contains "$OUT" "\"order_id\":\"$ORDER\""

serve 409
run cancel "$ORDER"
check "a refused cancellation is not retried (exit 1)" test "$RC" = 1 -a "$(wc -l <"$T/log")" = 1

finish
