#!/usr/bin/env bash
# What a waiting saga says about itself (docs/SAGACTL.md "explain", docs/WEB.md): on a
# small stack of its own (relay, order, inventory, payment) with SAGA_TIMEOUT=60s,
# payment-service is killed and an order placed. Once inventory-service has reserved,
# `sagactl explain` (text and --json) and the saga page must say the saga waits for
# payment-service (PaymentAuthorized or PaymentFailed) and when it times out; `sagactl
# stuck` names the same debtor.
#   it_explain.sh STACK_SCRIPT STACK_DIR BUILD_DIR PYTHON WEB_TEST ARTIFACT_DIR
set -u
STACK=$1
DIR=$2
BUILD=$3
PYTHON=$4
WEB_TEST=$5
ARTIFACTS=$6
. "$(dirname "$0")/../cli/lib.sh"

export STACK_PROGRAMS="outbox-relay order-service inventory-service payment-service"
export SAGA_TIMEOUT=60s
mkdir -p "$DIR"
cleanup() { "$STACK" down --dir "$DIR" --build "$BUILD" >/dev/null 2>&1 || true; }
trap cleanup EXIT

OUT=$("$STACK" up --no-deps --dir "$DIR" --build "$BUILD" --ports auto --ttl 600 2>&1)
RC=$?
echo "$OUT" | tail -n 3
check "up succeeds" test "$RC" = 0
[ "$RC" = 0 ] || { finish; exit 1; }
set -a
. "$DIR/stack.env"
set +a
SAGACTL=$BUILD/bin/sagactl

"$STACK" kill payment-service --dir "$DIR"
ID=$("$SAGACTL" place)
check "an order is placed with payment-service down ($ID)" test -n "$ID"
reserved=""
for ((i = 0; i < 120; i++)); do
    reserved=$("$SAGACTL" get "$ID" --json 2>/dev/null | jq -r '[.timeline[].event_type] | index("InventoryReserved") // empty')
    [ -n "$reserved" ] && break
    sleep 0.5
done
check "inventory-service reserved its stock" test -n "$reserved"

OUT=$("$SAGACTL" explain "$ID" 2>&1)
RC=$?
echo "$OUT"
check "explain exits 0" test "$RC" = 0
check "explain says the saga waits for payment-service" contains "$OUT" "payment-service: PaymentAuthorized or PaymentFailed"
check "after InventoryReserved" contains "$OUT" "(after InventoryReserved: charges the order)"
check "explain says when it times out" grep -qE '^times out in [0-9]+ s: order-service.s sweeper cancels it \(TIMEOUT\) unless an outcome comes first \(SAGA_TIMEOUT 60 s\)' <<<"$OUT"
check "explain lists the steps done" grep -qE 'InventoryReserved +inventory-service' <<<"$OUT"
JSON=$("$SAGACTL" explain "$ID" --json)
check "explain --json: waiting_for is payment-service alone" jq -e '.status == "PENDING" and (.waiting_for | length) == 1 and .waiting_for[0].service == "payment-service" and .waiting_for[0].events == ["PaymentAuthorized", "PaymentFailed"] and .waiting_for[0].after == "InventoryReserved"' <<<"$JSON" >/dev/null
check "explain --json: the deadline is within SAGA_TIMEOUT" jq -e '.saga_timeout_ms == 60000 and .deadline_in_ms > 0 and .deadline_in_ms <= 60000' <<<"$JSON" >/dev/null
API=$(curl -sf -H "Authorization: Bearer $STACK_OPERATOR_TOKEN" "$ORDER_API_URL/orders/$ID")
check "the order API's waiting field says the same" jq -e '.waiting.on[0].service == "payment-service" and .waiting.deadline_in_ms > 0' <<<"$API" >/dev/null
STUCK=$("$SAGACTL" stuck --older-than 0 --json)
check "stuck names payment-service as the debtor" jq -e --arg id "$ID" '[.[] | select(.order_id == $id)][0].waiting_on == "payment-service: PaymentAuthorized or PaymentFailed"' <<<"$STUCK" >/dev/null

if "$PYTHON" -c 'import playwright' 2>/dev/null && [ -x "${SAGA_CHROMIUM:-/usr/bin/chromium}" ]; then
    "$PYTHON" "$WEB_TEST" "$DIR/stack.env" "$ID" payment-service "PaymentAuthorized or PaymentFailed" "$ARTIFACTS"
    check "the saga page says the same, counting down" test $? = 0
else
    check "playwright and chromium are there for the page's check" false
fi
"$STACK" down --dir "$DIR" --build "$BUILD" >/dev/null 2>&1
trap - EXIT
finish
