#!/usr/bin/env bash
# The conformance kit's own tests (CTest contract_kit_fails and contract_kit_faults), on
# the contract stack; each shows that checks of the kit can FAIL, and say why.
#   kit_fails.sh STACK_DIR BUILD_DIR [silent]
#       a "shipping service" that answers /readyz and does nothing else, started with
#       --replace, must FAIL the duties that need events, with the reason; it got the
#       environment the built-in gets; and after a kill, `up` restarts the replacement.
#   kit_fails.sh STACK_DIR BUILD_DIR faults
#       a shipping service that does everything else right (broken-shipping.py: the
#       Python example with four faults) must FAIL exactly the duties it breaks, each
#       with its reason: INVALID_ADDRESS, the traceparent rule, dead letters, and the
#       commit on SIGTERM.
set -euo pipefail
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
DIR=$1 BUILD=$2 MODE=${3:-silent}
STACK="$HERE/../../scripts/stack"
out=$(mktemp)
trap 'rm -f "$out"' EXIT
fail() {
    echo "kit_fails: $*" >&2
    exit 1
}

if [ "$MODE" = faults ]; then
    # A service that does everything else right fails each duty it gets wrong, for that
    # reason: broken-shipping.py is the Python example with four faults (see its header).
    python=$("$HERE/../../examples/shipping-python/run" --venv)
    rc=0
    "$HERE/run" shipping --stack-dir "$DIR" --build "$BUILD" \
        --replace "exec '$python' '$HERE/broken-shipping.py'" -- --timeout 5 --settle 2 |
        tee "$out" || rc=$?
    [ "$rc" = 1 ] || fail "the kit exited $rc against the broken service; expected 1"
    expect() { # expect DUTY REASON: a FAIL line for DUTY, with REASON on its next line
        grep -A1 "^FAIL shipping: $1" "$out" | grep -q -- "$2" ||
            fail "no FAIL line for '$1' saying '$2'"
    }
    expect 'fails a shipment to an invalid address' 'expected exactly one ShipmentFailed, got ShipmentScheduled'
    expect 'every event it emits is a child of its cause' 'expected its cause.s'
    expect 'dead-letters a message that is no event' 'nothing came to shipping.dlq'
    expect 'stops on SIGTERM' 'was handled, yet after SIGTERM group shipping-service has committed'
    # ... and only those: what it does right passes.
    for duty in 'schedules a shipment' 'fails a shipment to country AQ' 'every event it emits is decodable' \
        'acts once per order' 'cancels a scheduled shipment' 'keeps a PaymentAuthorized' 'does nothing for a cancelled'; do
        grep -q "^PASS shipping: $duty" "$out" || fail "the broken service should PASS '$duty'"
    done
    echo "kit_fails: the kit fails each of the four faults of broken-shipping.py, with its reason"
    exit 0
fi

# Bad --replace options fail before anything starts.
msg=$("$STACK" up --dir "$DIR" --build "$BUILD" --no-deps --replace nosuch=true 2>&1) &&
    fail "--replace nosuch=... was accepted"
grep -q "'nosuch' is not a service" <<<"$msg" || fail "unclear error: $msg"
msg=$("$STACK" up --dir "$DIR" --build "$BUILD" --no-deps --replace shipping 2>&1) &&
    fail "--replace without = was accepted"
grep -q "takes SERVICE=COMMAND" <<<"$msg" || fail "unclear error: $msg"

# A replacement that exits at once fails the run, with its output.
rc=0
"$HERE/run" shipping --stack-dir "$DIR" --build "$BUILD" --replace 'echo no shipping today >&2; exit 3' \
    >"$out" 2>&1 || rc=$?
cat "$out"
[ "$rc" = 1 ] || fail "a replacement that exits: the run exited $rc; expected 1"
grep -q '^FAIL shipping: starts and answers GET /readyz' "$out" || fail "no FAIL line for the start"
grep -q 'no shipping today' "$out" || fail "the replacement's output is not shown"

rc=0
"$HERE/run" shipping --stack-dir "$DIR" --build "$BUILD" \
    --replace "env | sort > '$DIR/replacement.env'; exec python3 '$HERE/silent-service.py'" \
    -- --timeout 5 --settle 1 | tee "$out" || rc=$?
[ "$rc" = 1 ] || fail "the kit exited $rc against a silent service; expected 1"
grep -q '^FAIL shipping: schedules a shipment' "$out" || fail "no FAIL line for the shipment"
grep -q 'expected exactly one ShipmentScheduled, got nothing' "$out" || fail "the FAIL line says not why"
grep -q '^FAIL shipping: every event it emits' "$out" || fail "no FAIL line for the envelope"
grep -q '^PASS shipping: answers GET /readyz' "$out" || fail "/readyz of the silent service not seen"
grep -q '^shipping: [0-9]* of [0-9]* duties pass' "$out" || fail "no summary line"

grep -q '^FAIL shipping: stops on SIGTERM' "$out" || fail "no FAIL line for the graceful stop"

# The replacement's environment is the built-in's (scripts/stack program_env).
# shellcheck disable=SC1091
. "$DIR/stack.env"
envf=$DIR/replacement.env
want() { grep -qxF -- "$1" "$envf" || fail "the replacement's environment lacks $1"; }
# (its own role, password and database; over the stack's Unix socket, as the built-ins)
grep -q "^DATABASE_URL=${SHIPPING_DATABASE_URL%%@*}@/shipping_service?host=/" "$envf" ||
    fail "the replacement's environment lacks its own DATABASE_URL (${SHIPPING_DATABASE_URL%%:*}://shipping_service:…@/shipping_service?host=…)"
want "HTTP_LISTEN=127.0.0.1:$((STACK_HTTP_PORT_BASE + 3))"
want "KAFKA_BOOTSTRAP_SERVERS=$KAFKA_BOOTSTRAP_SERVERS"
want "TOPIC_PARTITIONS=$TOPIC_PARTITIONS"
grep -q '^LOG_LEVEL=' "$envf" || fail "the replacement's environment lacks LOG_LEVEL"

# Killed, it comes back as the replacement (remembered in the stack directory).
rm -f "$envf"
STACK_PROGRAMS="outbox-relay shipping-service" "$STACK" up --dir "$DIR" --build "$BUILD" --no-deps >/dev/null
[ -f "$envf" ] || fail "up after a kill did not start the replacement again"
status=$("$STACK" status --dir "$DIR" --build "$BUILD" || true)
grep -q "replaced by: bash -c 'env | sort" <<<"$status" || fail "status does not show the replacement"
"$STACK" stop shipping-service --dir "$DIR" --build "$BUILD" >/dev/null
echo "kit_fails: the kit fails a silent service with reasons; the replacement got the built-in's environment"
