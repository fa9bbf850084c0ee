#!/usr/bin/env bash
# sagactl place / get / watch / tail / stuck against the real stack (the ctest
# fixture "stack"): orders through the order API, their events from Kafka.
# usage: sagactl_orders.sh PATH/TO/sagactl PATH/TO/stack.env
set -u
SAGACTL=$1
STACK_ENV=$2
. "$(dirname "$0")/lib.sh"
if [ ! -r "$STACK_ENV" ]; then
    echo "no $STACK_ENV: is the stack fixture up?" >&2
    exit 1
fi
set -a
. "$STACK_ENV"
set +a
unset NO_COLOR
command -v jq >/dev/null || { echo "jq is needed" >&2; exit 1; }
T=$(mktemp -d)
trap 'kill $(jobs -p) 2>/dev/null; rm -rf "$T"' EXIT
ALL=$T/all-stdout     # every stdout of sagactl below, to look for colour codes
ALL_ERR=$T/all-stderr # and every stderr, for sanitizer reports

run() { # run ARGS...: OUT (stdout), ERR (stderr), RC
    "$SAGACTL" "$@" >"$T/out" 2>"$T/err"
    RC=$?
    OUT=$(cat "$T/out")
    ERR=$(cat "$T/err")
    cat "$T/out" >>"$ALL"
    cat "$T/err" >>"$ALL_ERR"
}
is_uuid() { [[ $1 =~ ^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$ ]]; }
jqok() { jq -e "$2" <<<"$1" >/dev/null 2>&1; }

# --- help and usage --------------------------------------------------------------
for c in place get cancel watch tail stuck explain choreography; do
    run $c --help
    check "sagactl $c --help exits 0 with a usage" test "$RC" = 0 -a -n "$(contains "$OUT" "usage: sagactl $c" && echo y)"
done
run help
check "sagactl help lists the new commands" test -n "$(contains "$OUT" "watch [ORDER_ID]" && contains "$OUT" "ORDER_API_URL" && echo y)"
run place --bogus
check "place with an unknown option exits 64" test "$RC" = 64
run place --sku ":3"
check "place --sku without a SKU exits 64" test "$RC" = 64
run place --sku sku-book:x
check "place --sku with a bad quantity exits 64" test "$RC" = 64
run get
check "get without an id exits 64" test "$RC" = 64
run watch not-an-order-id
check "watch with something that is not an order id exits 64" test "$RC" = 64
run tail
check "tail without a topic exits 64" test "$RC" = 64
run tail orders --count 0
check "tail --count 0 exits 64" test "$RC" = 64
run stuck --older-than soon
check "stuck --older-than without a number exits 64" test "$RC" = 64

# --- place and get ------------------------------------------------------------------
run place
ID=$OUT
check "place prints only an order id when piped" is_uuid "$ID"
run place --declined --wait
DECLINED=$(head -n1 <<<"$OUT" | awk '{print $2}')
check "place --declined --wait exits 0 once the saga is over" test "$RC" = 0
check "and shows the order id" is_uuid "$DECLINED"
check "and CANCELLED" contains "$OUT" "CANCELLED"
check "and PAYMENT_FAILED: CARD_DECLINED" contains "$OUT" "PAYMENT_FAILED: CARD_DECLINED"
check "and the compensation done" grep -qE '^compensation +done' <<<"$OUT"
check "and the released stock, marked as a compensation" contains "$OUT" "↩ InventoryReleased"
check "and the notification" contains "$OUT" "NotificationSent"

run get "$DECLINED" --json
check "get --json exits 0" test "$RC" = 0
check "get --json is the API's order" jqok "$OUT" ".order_id == \"$DECLINED\" and .status == \"CANCELLED\" and .reason == \"PAYMENT_FAILED\" and .detail == \"CARD_DECLINED\" and .compensation == \"done\""
check "with its timeline" jqok "$OUT" '[.timeline[].event_type] | index("PaymentFailed") and index("InventoryReleased") and index("NotificationSent")'
TRACE=$(jq -r '.trace_id // empty' <<<"$OUT")
check "and its trace id ($TRACE)" grep -qE '^[0-9a-f]{32}$' <<<"$TRACE"
run get "$DECLINED"
# The fixture runs the tracing backend (up --tracing): its UI's URL is in stack.env.
if [ -n "${TRACING_UI_URL:-}" ]; then
    check "get shows the trace and where the tracing UI shows it" grep -qxE "trace +$TRACE +$TRACING_UI_URL/trace/$TRACE" <<<"$OUT"
else
    check "get shows the trace id" grep -qxE "trace +$TRACE" <<<"$OUT"
fi
check "get shows the timeline as a table" grep -qE '^[0-9]{2}:[0-9]{2}:[0-9]{2}\.[0-9]{3}  payment-service +PaymentFailed +declined: CARD_DECLINED' <<<"$OUT"
run get 00000000-0000-4000-8000-000000000000
check "get of an unknown order exits 1" test "$RC" = 1
check "and says so" contains "$ERR" "no order 00000000-0000-4000-8000-000000000000"

# --- explain (a finished saga; a waiting one is tests/integration/it_explain.sh) ------
run explain "$DECLINED" --json
check "explain --json exits 0" test "$RC" = 0
check "explain --json lists the steps done, the release marked as undoing the reservation" jqok "$OUT" '.status == "CANCELLED" and ([.done[] | select(.event_type == "InventoryReleased")][0].undoes == "InventoryReserved")'
check "a finished saga waits for nothing and has no deadline" jqok "$OUT" '(.waiting_for | length) == 0 and .deadline_in_ms == null'
run explain "$DECLINED"
check "explain says the saga is over" contains "$OUT" "nothing: the saga is over"
run explain 00000000-0000-4000-8000-000000000000
check "explain of an unknown order exits 1" test "$RC" = 1
run explain
check "explain without an id exits 64" test "$RC" = 64

# --- cancel -------------------------------------------------------------------------
run cancel "$DECLINED" --json
check "cancel of a cancelled order exits 0 and shows it unchanged" test "$RC" = 0 -a -n "$(jqok "$OUT" ".order_id == \"$DECLINED\" and .status == \"CANCELLED\" and .reason == \"PAYMENT_FAILED\"" && echo y)"
run place --wait
CONFIRMED=$(head -n1 <<<"$OUT" | awk '{print $2}')
run cancel "$CONFIRMED"
check "cancel of a CONFIRMED order exits 1" test "$RC" = 1
check "and says why" contains "$ERR" "is CONFIRMED"
run cancel 00000000-0000-4000-8000-000000000000
check "cancel of an unknown order exits 1" test "$RC" = 1
run cancel
check "cancel without an id exits 64" test "$RC" = 64

KEY="sagactl-test-$$-$RANDOM"
run place --key "$KEY"
K1=$OUT
run place --key "$KEY"
check "the same Idempotency-Key gives the same order" test -n "$K1" -a "$OUT" = "$K1"
run place --sku sku-does-not-exist:1
check "an order the API refuses exits 1" test "$RC" = 1
check "with the API's message on stderr" contains "$ERR" "validation_failed"
check "naming the field" contains "$ERR" "items[0]"

run place --over-limit --wait
check "place --over-limit: CREDIT_LIMIT_EXCEEDED" contains "$OUT" "PAYMENT_FAILED: CREDIT_LIMIT_EXCEEDED"
run place --insufficient-funds --wait
check "place --insufficient-funds: INSUFFICIENT_FUNDS" contains "$OUT" "PAYMENT_FAILED: INSUFFICIENT_FUNDS"
run place --out-of-stock --wait
check "place --out-of-stock: OUT_OF_STOCK" contains "$OUT" "OUT_OF_STOCK: sku-sold-out"
run place --unshippable --wait
UNSHIPPABLE=$(head -n1 <<<"$OUT" | awk '{print $2}')
check "place --unshippable: SHIPMENT_FAILED and a refund" test -n "$(contains "$OUT" "SHIPMENT_FAILED: UNSUPPORTED_DESTINATION" && contains "$OUT" "↩ PaymentRefunded" && echo y)"
run place --sku sku-mug:2 --sku sku-lamp --customer cust-bob --wait --timeout 60
check "place with two lines confirms" test -n "$(contains "$OUT" "CONFIRMED" && contains "$OUT" "2 x sku-mug" && contains "$OUT" "1 x sku-lamp" && echo y)"

# --- watch ----------------------------------------------------------------------------
run watch "$DECLINED" --timeout 60
check "watch of a finished saga exits 0" test "$RC" = 0
for ev in OrderPlaced InventoryReserved PaymentFailed OrderCancelled InventoryReleased NotificationSent; do
    check "watch shows $ev" contains "$OUT" "$ev"
done
check "watch marks the compensation" contains "$OUT" "↩ InventoryReleased"
check "watch summarizes" contains "$OUT" "declined: CARD_DECLINED"
check "watch shows only that order" test "$(grep -vc "^${DECLINED:0:8} " <<<"$OUT")" = 0
run watch "$UNSHIPPABLE" --timeout 60
check "watch waits for every compensation owed" test -n "$(contains "$OUT" "PaymentRefunded" && contains "$OUT" "InventoryReleased" && echo y)"
check "one line per event" test "$(wc -l <<<"$OUT")" = 8

# live, all orders: only what happens after it started
"$SAGACTL" watch --timeout 20 >"$T/live" 2>"$T/live.err" &
WATCH=$!
sleep 4
run place --wait
LIVE_ID=$(head -n1 <<<"$OUT" | awk '{print $2}')
wait $WATCH
check "watch without an id follows until --timeout, exit 0" test $? = 0
cat "$T/live" >>"$ALL"
cat "$T/live.err" >>"$ALL_ERR"
check "and shows a new order's saga" test "$(grep -c "^${LIVE_ID:0:8} " "$T/live")" -ge 6
check "but not the orders before it" test "$(grep -c "^${DECLINED:0:8} " "$T/live")" = 0

# a saga that cannot be done: timeout
run watch 00000000-0000-4000-8000-000000000000 --timeout 3
check "watch of an order without events times out with exit 1" test "$RC" = 1
check "saying what it waits for" contains "$ERR" "not done"

# --- tail ------------------------------------------------------------------------------
run tail orders --from-beginning --count 3 --timeout 60
check "tail --count 3 exits 0" test "$RC" = 0
check "tail --count 3 prints 3 lines" test "$(wc -l <<<"$OUT")" = 3
check "each a JSON object with an event_type" test "$(jq -c 'select(.event_type | type == "string") | .topic' <<<"$OUT" 2>/dev/null | grep -c '"orders"')" = 3
check "with the event's fields" test "$(jq -c 'select(.event.meta.order_id == .key and (.event.meta.occurred_at | type) == "number" and .headers.event_type == .event_type)' <<<"$OUT" | wc -l)" = 3
run tail payments --from-beginning --timeout 5
check "tail decodes enums as their symbols" jqok "$(grep PaymentFailed <<<"$OUT" | head -n1)" '.event.reason | IN("CARD_DECLINED", "INSUFFICIENT_FUNDS", "CREDIT_LIMIT_EXCEEDED", "UNKNOWN_CUSTOMER")'
check "and money as integers" jqok "$(grep PaymentFailed <<<"$OUT" | head -n1)" '.event.amount | type == "number"'
run tail payment.dlq --from-beginning --timeout 3
check "tail reads a dead-letter topic (exit 0 after --timeout)" test "$RC" = 0
run tail no-such-topic --timeout 3
check "tail of a missing topic exits 1" test "$RC" = 1
run tail orders --count 1000000 --timeout 2
check "tail --count N not reached within --timeout exits 1" test "$RC" = 1

# --- stuck -------------------------------------------------------------------------------
run stuck --older-than 3600
check "stuck --older-than 3600 exits 0" test "$RC" = 0
check "and lists nothing" contains "$OUT" "no saga has been PENDING for more than 3600s"
run stuck --older-than 3600 --json
check "stuck --json is an empty array" jqok "$OUT" 'length == 0'

# --- tokens (docs/API.md, "Authentication") ---------------------------------------------
SAGA_TOKEN=not-a-token run get "$ID"
check "get with a bad token exits 1" test "$RC" = 1
check "and says the API refused it" contains "$ERR" "unauthorized"
run place --customer cust-bob
BOBS=$OUT
check "place --customer cust-bob places with Bob's own token" test "$RC" = 0
SAGA_TOKEN=$STACK_TOKEN_CUST_ALICE run get "$BOBS"
check "Alice's token does not find Bob's order" test "$RC" = 1
SAGA_TOKEN=$STACK_TOKEN_CUST_ALICE run stuck --older-than 3600
check "stuck with a customer's token lists only theirs, and succeeds" test "$RC" = 0
run token mint --sub cust-erin
check "token mint prints a JWT" test -n "$(grep -E '^[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+$' <<<"$OUT")"
SAGA_TOKEN=$OUT run place --customer cust-erin
check "and the API takes it" test "$RC" = 0
run token mint --sub 'bad sub'
check "token mint refuses a subject that is no customer id" test "$RC" = 64

# --- unreachable -------------------------------------------------------------------------
ORDER_API_URL=http://127.0.0.1:1 run place
check "place with the API unreachable exits 69" test "$RC" = 69
check "and names it" contains "$ERR" "http://127.0.0.1:1"
ORDER_API_URL=http://127.0.0.1:1 run get "$ID"
check "get with the API unreachable exits 69" test "$RC" = 69
ORDER_API_URL=http://127.0.0.1:1 run stuck
check "stuck with the API unreachable exits 69" test "$RC" = 69
KAFKA_BOOTSTRAP_SERVERS=127.0.0.1:1 run tail orders
check "tail with Kafka unreachable exits 69" test "$RC" = 69

# --- plain output when piped -----------------------------------------------------------
check "piped output has no ANSI escapes" test "$(grep -c $'\e\\[' "$ALL")" = 0
if command -v script >/dev/null; then # a terminal: colours, unless NO_COLOR
    TTY=$(script -qec "'$SAGACTL' get $DECLINED" /dev/null 2>&1)
    check "on a terminal get uses colours" grep -q $'\e\\[' <<<"$TTY"
    TTY=$(NO_COLOR=1 script -qec "'$SAGACTL' get $DECLINED" /dev/null 2>&1)
    check "but not with NO_COLOR" test "$(grep -c $'\e\\[' <<<"$TTY")" = 0
    check "still the same order" contains "$TTY" "$DECLINED"
fi
if grep -qE 'Sanitizer|runtime error:' "$ALL_ERR"; then
    grep -E -A5 'Sanitizer|runtime error:' "$ALL_ERR" | head -n 40
    check "no sanitizer reports" false
fi
finish
