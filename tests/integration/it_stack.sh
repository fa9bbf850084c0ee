#!/usr/bin/env bash
# The test stack as a user sees it: status shows Kafka, Postgres, the topics and
# the databases; a second `up` is harmless and keeps the same processes.
set -u
STACK=$1
DIR=$2
BUILD=$3
. "$(dirname "$0")/../cli/lib.sh"

OUT=$("$STACK" status --dir "$DIR" --build "$BUILD" 2>&1)
RC=$?
echo "$OUT"
check "status exits 0 when everything runs" test "$RC" = 0
check "status shows kafka running" contains "$OUT" "kafka                  running"
check "status shows postgres running" contains "$OUT" "postgres               running"
check "status shows the schema registry running" contains "$OUT" "registry               running"
# A user sources stack.env (no `set -a`) and runs sagactl: it talks to this stack (its
# ports are not the defaults), with the customer's token, not to whatever holds 8080.
PLACED=$(bash -c '. "$1" && "$2" place --customer cust-alice' _ "$DIR/stack.env" "$BUILD/bin/sagactl" 2>&1)
check "sagactl after '. stack.env' places an order (got: $PLACED)" grep -qE '^[0-9a-f-]{36}$' <<<"$PLACED"
. "$DIR/stack.env"
check "the order sagactl placed is in this stack" \
    curl -sf -o /dev/null -H "Authorization: Bearer $STACK_OPERATOR_TOKEN" "$ORDER_API_URL/orders/$PLACED"
# Without --secure the order API is plain http and there is no CA to trust.
check "status shows the order API on http" contains "$OUT" "order API http://127.0.0.1:$STACK_HTTP_PORT_BASE"
check "stack.env names no API CA without --secure" test -z "${ORDER_API_CACERT:-}"
check "the registry serves the suite's subjects" contains "$(curl -sf "$SCHEMA_REGISTRY_URL/subjects")" "payments-io.ordersaga.events.PaymentFailed"
for t in orders inventory payments shipping notifications order.dlq inventory.dlq payment.dlq shipping.dlq notification.dlq; do
    check "status lists topic $t" grep -qE "topic $t +[0-9]+ partitions" <<<"$OUT"
done
for d in order inventory payment shipping notification; do
    check "status lists database ${d}_service" contains "$OUT" "database ${d}_service"
done

# The logs hold customer names and addresses: the stack's owner reads them, no one else.
check "the logs directory is private (0700)" test "$(stat -c %a "$DIR/logs")" = 700
for f in kafka registry order-service payment-service notification-service; do
    check "logs/$f.log is private (0600)" test "$(stat -c %a "$DIR/logs/$f.log")" = 600
done

KPID=$(cat "$DIR/run/kafka.pid")
OUT=$("$STACK" up --no-deps --dir "$DIR" --build "$BUILD" 2>&1)
RC=$?
echo "$OUT"
check "a second up succeeds" test "$RC" = 0
check "a second up keeps kafka" contains "$OUT" "kafka already running (pid $KPID"
check "a second up keeps postgres" contains "$OUT" "postgres already running"
check "a second up keeps the registry" contains "$OUT" "schema registry already running"
# The stack is in a directory of its own: `make down` would stop .stack, not this one.
check "up says how to stop this stack" contains "$OUT" "'$STACK down --dir $DIR' stops it"
check "kafka pid unchanged" test "$(cat "$DIR/run/kafka.pid")" = "$KPID"
# This shell sourced stack.env (which exports it): a program started from here gets its
# own environment from the stack, not every password in stack.env.
"$STACK" stop notification-service --dir "$DIR" --build "$BUILD" >/dev/null 2>&1
"$STACK" up --no-deps --dir "$DIR" --build "$BUILD" >/dev/null 2>&1
check "up after '. stack.env' restarts notification-service" test -s "$DIR/run/notification-service.pid"
NENV=$(tr '\0' '\n' <"/proc/$(cat "$DIR/run/notification-service.pid")/environ" 2>/dev/null)
lacks() { ! grep -qF -- "$2" <<<"$1"; }
# (the stack's programs reach PostgreSQL over its Unix socket, stack.env over 127.0.0.1:
# same role, password and database)
check "it has its own database URL" contains "$NENV" "DATABASE_URL=${NOTIFICATION_DATABASE_URL%%@*}@"
check "it has its own database" contains "$(grep '^DATABASE_URL=' <<<"$NENV")" "/notification_service"
check "it gets no superuser URL from the sourced stack.env" lacks "$NENV" "PG_SUPERUSER_URL="
check "it gets no other service's database URL" lacks "$NENV" "ORDER_DATABASE_URL="
check "stack.env is private" test "$(stat -c %a "$DIR/stack.env")" = 600
finish
