#!/usr/bin/env bash
# sagactl schemas: the compatibility check passes on the repo and catches breaking
# changes; docs/EVENTS.md is what the schemas generate.
set -u
SAGACTL=$1
REPO=$2
. "$(dirname "$0")/lib.sh"
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
REL=$REPO/schemas/released/$(ls "$REPO/schemas/released" | sort -V | tail -n1)

OUT=$("$SAGACTL" schemas check --current "$REPO/schemas" 2>&1)
check "the repo's schemas are compatible with the last release" test $? = 0
check "and it says so" contains "$OUT" "backward and forward compatible"

fresh() { rm -rf "$T/s" && mkdir "$T/s" && cp "$REPO"/schemas/*.avsc "$T/s/"; }

fresh
cp "$REPO/tests/vectors/evolution/OrderCancelled.v2.avsc" "$T/s/OrderCancelled.avsc"
OUT=$("$SAGACTL" schemas check --current "$T/s" --released "$REL" 2>&1)
check "removing a defaulted field, adding one and a symbol is compatible" test $? = 0

fresh
cp "$REPO/tests/vectors/compat/OrderPlaced.incompatible.avsc" "$T/s/OrderPlaced.avsc"
OUT=$("$SAGACTL" schemas check --current "$T/s" --released "$REL" 2>&1)
check "a changed field type fails" test $? = 1
check "naming the field both ways" contains "$OUT" "BACKWARD OrderPlaced.customer_id: the writer's string cannot be read as long"
check "and forward" contains "$OUT" "FORWARD OrderPlaced.customer_id"

fresh
cp "$REPO/tests/vectors/compat/OrderConfirmed.nodefault.avsc" "$T/s/OrderConfirmed.avsc"
OUT=$("$SAGACTL" schemas check --current "$T/s" --released "$REL" 2>&1)
check "a field added without a default fails" test $? = 1
check "as a backward break" contains "$OUT" "BACKWARD OrderConfirmed.note: the reader needs this field"

fresh
rm "$T/s/ShipmentFailed.avsc"
OUT=$("$SAGACTL" schemas check --current "$T/s" --released "$REL" 2>&1)
check "removing an event fails" contains "$OUT" "REMOVED ShipmentFailed"

# A new enum symbol: fine while the old reader's enum has a default, a break otherwise.
fresh
mkdir "$T/rel-nodefault" && cp "$REL"/*.avsc "$T/rel-nodefault/"
python3 - "$T/s/OrderCancelled.avsc" "$T/rel-nodefault/OrderCancelled.avsc" <<'PY'
import json, sys
cur, old = json.load(open(sys.argv[1])), json.load(open(sys.argv[2]))
for f in cur["fields"]:
    if f["name"] == "reason":
        f["type"]["symbols"].append("FRAUD_SUSPECTED")
for f in old["fields"]:
    if f["name"] == "reason":
        f["type"].pop("default")
json.dump(cur, open(sys.argv[1], "w"))
json.dump(old, open(sys.argv[2], "w"))
PY
OUT=$("$SAGACTL" schemas check --current "$T/s" --released "$REL" 2>&1)
check "a new enum symbol is compatible when the enum has a default" test $? = 0
OUT=$("$SAGACTL" schemas check --current "$T/s" --released "$T/rel-nodefault" 2>&1)
check "a new symbol an old reader without an enum default cannot read fails" contains "$OUT" "FORWARD OrderCancelled.reason: the writer's symbol FRAUD_SUSPECTED is unknown"

printf '{"type":"record","name":"X","fields":[{"name":"a","type":"nope"}]}' >"$T/s/Broken.avsc"
OUT=$("$SAGACTL" schemas check --current "$T/s" --released "$REL" 2>&1)
check "a schema avro-c cannot parse fails" contains "$OUT" "Broken.avsc: avro-c"

OUT=$("$SAGACTL" schemas docs --dir "$REPO/schemas" 2>&1)
check "docs/EVENTS.md is current (run make docs)" test "$OUT" = "$(cat "$REPO/docs/EVENTS.md")"
check "the catalogue covers every event" test "$(grep -c '^## ' <<<"$OUT")" -ge 15
finish
