#!/usr/bin/env bash
# `make up TRACING=1` as a user sees it: scripts/stack up --tracing runs the tracing
# backend (Jaeger v2, built into the cache by `scripts/stack deps --tests`) on a small
# stack of its own (order-service only) and points the programs at it. The test checks
# the addresses in stack.env and what up prints; that order-service was started with
# the standard OTEL_* variables naming that backend; that the backend takes an OTLP/HTTP
# JSON span (as curl or any exporter posts it) and returns it from its query API; that
# its UI serves an order's trace page; that an order's trace id comes back from the API
# with the UI's link and from `sagactl get`; and that `down` stops the backend.
#   it_tracing.sh STACK_SCRIPT STACK_DIR BUILD_DIR
set -u
STACK=$1
DIR=$2
BUILD=$3
. "$(dirname "$0")/../cli/lib.sh"

export STACK_PROGRAMS="order-service"
mkdir -p "$DIR"
cleanup() { "$STACK" down --dir "$DIR" --build "$BUILD" >/dev/null 2>&1 || true; }
trap cleanup EXIT

OUT=$("$STACK" up --no-deps --dir "$DIR" --build "$BUILD" --ports auto --ttl 600 --tracing 2>&1)
RC=$?
echo "$OUT" | tail -n 4
check "up --tracing succeeds" test "$RC" = 0
[ "$RC" = 0 ] || { finish; exit 1; }
. "$DIR/stack.env"
check "stack.env names the tracing UI's URL" test -n "${TRACING_UI_URL:-}"
check "the UI listens on loopback ($TRACING_UI_URL)" contains "$TRACING_UI_URL" "http://127.0.0.1:"
check "up prints the UI's URL" contains "$OUT" "Jaeger on $TRACING_UI_URL"
check "stack.env names the OTLP endpoint" test "${OTEL_EXPORTER_OTLP_ENDPOINT:-}" = "http://127.0.0.1:$STACK_TRACING_OTLP_PORT"
STATUS=$("$STACK" status --dir "$DIR" --build "$BUILD" 2>&1)
check "status shows jaeger running" grep -qE "^jaeger +running" <<<"$STATUS"

# The program's environment, as the stack started it.
pid=$(cat "$DIR/run/order-service.pid")
envof() { tr '\0' '\n' <"/proc/$pid/environ" | sed -n "s/^$1=//p"; }
check "order-service exports to the stack's backend" test "$(envof OTEL_EXPORTER_OTLP_ENDPOINT)" = "$OTEL_EXPORTER_OTLP_ENDPOINT"
check "order-service has its own service name" test "$(envof OTEL_SERVICE_NAME)" = order-service
check "order-service knows the UI's URL" test "$(envof TRACING_UI_URL)" = "$TRACING_UI_URL"

# One span, OTLP/HTTP JSON, as an exporter posts it.
TID=$(od -An -N16 -tx1 /dev/urandom | tr -d ' \n')
SID=$(od -An -N8 -tx1 /dev/urandom | tr -d ' \n')
NOW=$(date +%s%N)
SPAN='{"resourceSpans":[{"resource":{"attributes":[{"key":"service.name","value":{"stringValue":"it-tracing"}}]},
 "scopeSpans":[{"scope":{"name":"it_tracing"},"spans":[{"traceId":"'$TID'","spanId":"'$SID'",
 "name":"process OrderPlaced","kind":5,"startTimeUnixNano":"'$((NOW - 3000000))'","endTimeUnixNano":"'$NOW'",
 "attributes":[{"key":"saga.order_id","value":{"stringValue":"it-tracing-order"}},
               {"key":"saga.compensation","value":{"boolValue":true}}]}]}]}]}'
code=$(curl -s -o /dev/null -w '%{http_code}' --max-time 5 -H 'Content-Type: application/json' \
    --data "$SPAN" "$OTEL_EXPORTER_OTLP_ENDPOINT/v1/traces")
check "the backend accepts an OTLP/HTTP JSON span (HTTP $code)" test "$code" = 200
got=""
for ((i = 0; i < 50; i++)); do
    got=$(curl -sf --max-time 5 "$TRACING_UI_URL/api/traces/$TID" 2>/dev/null |
        jq -r '.data[0] | .spans[0] as $s | "\($s.spanID) \($s.operationName) \(.processes[$s.processID].serviceName) \($s.tags[] | select(.key == "saga.order_id") | .value)"' 2>/dev/null)
    [ -n "$got" ] && break
    sleep 0.2
done
check "its query API returns the span ($got)" test "$got" = "$SID process OrderPlaced it-tracing it-tracing-order"
page=$(curl -sf --max-time 5 "$TRACING_UI_URL/trace/$TID")
check "its UI serves the trace page at /trace/ID" contains "$page" "api/traces/"

# An order's trace: in the API's answer with the UI's link, and in sagactl get.
ID=$("$BUILD/bin/sagactl" place 2>/dev/null)
check "an order is placed ($ID)" test -n "$ID"
json=$("$BUILD/bin/sagactl" get "$ID" --json)
trace=$(jq -r '.trace_id // empty' <<<"$json")
check "GET /orders/{id} has the order's trace id ($trace)" grep -qE '^[0-9a-f]{32}$' <<<"$trace"
check "GET /orders/{id} links it in the UI" test "$(jq -r '.trace_url // empty' <<<"$json")" = "$TRACING_UI_URL/trace/$trace"
shown=$(NO_COLOR=1 "$BUILD/bin/sagactl" get "$ID")
check "sagactl get prints the trace id and its URL" grep -qxE "trace +$trace +$TRACING_UI_URL/trace/$trace" <<<"$shown"
shown=$(env -u TRACING_UI_URL NO_COLOR=1 "$BUILD/bin/sagactl" get "$ID")
check "without TRACING_UI_URL, sagactl get uses the API's link" grep -qxE "trace +$trace +$TRACING_UI_URL/trace/$trace" <<<"$shown"

# Jaeger runs until down: an up without --tracing (a program stopped and started again)
# keeps the programs pointed at it and stack.env naming it.
ui=$TRACING_UI_URL
"$STACK" stop order-service --dir "$DIR" --build "$BUILD" >/dev/null 2>&1
"$STACK" up --no-deps --dir "$DIR" --build "$BUILD" >/dev/null 2>&1
pid=$(cat "$DIR/run/order-service.pid" 2>/dev/null || echo none)
check "after an up without --tracing, stack.env still names the UI" grep -qxF "export TRACING_UI_URL=$ui" "$DIR/stack.env"
check "a program started by it still exports to the backend" test "$(envof OTEL_EXPORTER_OTLP_ENDPOINT)" = "$OTEL_EXPORTER_OTLP_ENDPOINT"

"$STACK" down --dir "$DIR" --build "$BUILD" >/dev/null 2>&1
check "down stops the backend" bash -c '! curl -sf -o /dev/null --max-time 2 "$1/api/services"' _ "$TRACING_UI_URL"
check "down leaves no tracing pid file" test ! -e "$DIR/run/tracing.pid"
trap - EXIT
finish
