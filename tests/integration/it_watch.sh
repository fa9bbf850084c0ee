#!/usr/bin/env bash
# `make up WATCH=1` as a user sees it: scripts/stack up --watch runs Prometheus on a
# small stack of its own (the relay, order, inventory and payment), scraping every
# program at the stack's ports with the rules of deploy/prometheus/alerts.yml. Then
# payment-service is killed and orders are placed, and Prometheus's API
# (/api/v1/alerts) must show SagaProgramDown (payment-service) and SagasPending
# firing; `down` stops Prometheus with the rest.
#
# The rules are the real file with every `for:` shortened to 0s (STACK_ALERT_RULES
# points to that copy): the expressions and thresholds are the real ones, only the
# minute each must hold is skipped, so the test takes seconds, not minutes.
#   it_watch.sh STACK_SCRIPT STACK_DIR BUILD_DIR
set -u
STACK=$1
DIR=$2
BUILD=$3
REPO=$(cd "$(dirname "$0")/../.." && pwd)
. "$(dirname "$0")/../cli/lib.sh"

export STACK_PROGRAMS="outbox-relay order-service inventory-service payment-service"
mkdir -p "$DIR"
# A fresh Prometheus: the last samples of a previous run (another set of programs)
# would still count for 5 minutes after its restart.
rm -rf "$DIR/prometheus"
sed -E 's/^( +for:) .*/\1 0s/' "$REPO/deploy/prometheus/alerts.yml" >"$DIR/alerts-for-0s.yml"
export STACK_ALERT_RULES=$DIR/alerts-for-0s.yml

cleanup() { "$STACK" down --dir "$DIR" --build "$BUILD" >/dev/null 2>&1 || true; }
trap cleanup EXIT

OUT=$("$STACK" up --no-deps --dir "$DIR" --build "$BUILD" --ports auto --ttl 600 --watch 2>&1)
RC=$?
echo "$OUT" | tail -n 4
check "up --watch succeeds" test "$RC" = 0
[ "$RC" = 0 ] || { finish; exit 1; }
. "$DIR/stack.env"
check "stack.env names Prometheus's URL" test -n "${PROMETHEUS_URL:-}"
check "up prints Prometheus's URL" contains "$OUT" "Prometheus on $PROMETHEUS_URL"
check "Prometheus listens on loopback" contains "$PROMETHEUS_URL" "http://127.0.0.1:"
check "its data lives under the stack directory" test -d "$DIR/prometheus/data"
STATUS=$("$STACK" status --dir "$DIR" --build "$BUILD" 2>&1)
check "status shows prometheus running" grep -qE "^prometheus +running" <<<"$STATUS"

# alerts [STATE]: "alertname program" of every alert in STATE (default firing).
alerts() {
    curl -sf --max-time 5 "$PROMETHEUS_URL/api/v1/alerts" |
        jq -r --arg s "${1:-firing}" '.data.alerts[] | select(.state == $s) | "\(.labels.alertname) \(.labels.program // "")"'
}
# Every program is scraped at the stack's ports (the config's 8080... moved).
up_count=0
for ((i = 0; i < 60; i++)); do
    up_count=$(curl -sf --max-time 5 "$PROMETHEUS_URL/api/v1/query?query=up" |
        jq '[.data.result[] | select(.value[1] == "1")] | length' 2>/dev/null || echo 0)
    [ "$up_count" = 4 ] && break
    sleep 0.5
done
check "Prometheus scrapes all 4 programs (got $up_count up)" test "$up_count" = 4
rules=$(curl -sf "$PROMETHEUS_URL/api/v1/rules" | jq '[.data.groups[].rules[] | select(.health == "ok")] | length')
check "the alert rules are loaded and evaluate ($rules healthy)" test "${rules:-0}" -ge 15
check "no program is reported down while all run" test -z "$(alerts | grep '^SagaProgramDown')"

"$STACK" kill payment-service --dir "$DIR"
for i in 1 2 3; do "$BUILD/bin/sagactl" place >/dev/null; done
firing=""
for ((i = 0; i < 90; i++)); do
    firing=$(alerts)
    grep -qx "SagaProgramDown payment-service" <<<"$firing" && grep -q "^SagasPending" <<<"$firing" && break
    sleep 0.5
done
echo "firing after the kill: $(tr '\n' ';' <<<"$firing")"
check "SagaProgramDown fires for payment-service" grep -qx "SagaProgramDown payment-service" <<<"$firing"
check "SagasPending fires (orders wait for payment-service)" grep -q "^SagasPending" <<<"$firing"
check "no other program is reported down" test -z "$(grep '^SagaProgramDown' <<<"$firing" | grep -v payment-service)"
# The alert links its runbook section.
url=$(curl -sf "$PROMETHEUS_URL/api/v1/alerts" |
    jq -r '.data.alerts[] | select(.labels.alertname == "SagasPending") | .annotations.runbook_url' | head -n1)
check "SagasPending links its runbook ($url)" test "$url" = "docs/RUNBOOKS.md#sagaspending"

"$STACK" down --dir "$DIR" --build "$BUILD" >/dev/null 2>&1
check "down stops Prometheus" bash -c '! curl -sf -o /dev/null --max-time 2 "$1/-/ready"' _ "$PROMETHEUS_URL"
check "down leaves no prometheus pid file" test ! -e "$DIR/run/prometheus.pid"
trap - EXIT
finish
