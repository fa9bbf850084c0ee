#!/usr/bin/env python3
"""Writes tests/vectors/avro_vectors.json with an independent Avro implementation
(fastavro): the Parsing Canonical Form and CRC-64-AVRO fingerprint of every schema
in schemas/ and of tricky schemas, and the single-object encoding of sample
events. The C tests check our serde against this file; tests/python/test_interop.py
checks that this file is still what fastavro produces.

    python3 tests/vectors/make_vectors.py            # rewrite the file
    python3 tests/vectors/make_vectors.py --check    # exit 1 if it is stale
"""
import glob
import io
import json
import os
import struct
import sys

from fastavro import parse_schema, schemaless_writer
from fastavro.schema import fingerprint, to_parsing_canonical_form

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
OUT = os.path.join(ROOT, "tests", "vectors", "avro_vectors.json")

# Schemas that exercise the canonical-form rules: namespaces, fullnames, primitive
# object forms, nested named types, attributes that must be stripped, UTF-8.
TRICKY = [
    '"int"',
    '{"type": "int"}',
    '{"type": "string", "logicalType": "uuid"}',
    '["null", {"type": "long", "logicalType": "timestamp-millis"}]',
    '{"type": "fixed", "name": "Id", "namespace": "a.b", "size": 016, "doc": "x"}'.replace("016", "16"),
    '{"type": "enum", "name": "E", "symbols": ["A", "B"], "default": "A", "doc": "d"}',
    '{"type": "array", "items": {"type": "map", "values": "bytes"}}',
    '{"type": "record", "name": "R", "namespace": "x.y", "doc": "é \\u00e9", "fields": ['
    '{"name": "a", "type": {"type": "record", "name": "Inner", "fields": [{"name": "v", "type": "double"}]}, "default": {}},'
    '{"name": "b", "type": "Inner"},'
    '{"name": "c", "type": {"type": "enum", "name": "z.Other", "symbols": ["Q"]}},'
    '{"name": "d", "type": ["null", "z.Other", "Inner"], "aliases": ["dd"], "order": "descending"}]}',
]

META = {
    "event_id": "6f1c2b8e-8a52-4c1e-9d5e-2f3a4b5c6d7e",
    "order_id": "0b6f7c1a-2d3e-4f50-8a9b-c0d1e2f3a4b5",
    "correlation_id": "0b6f7c1a-2d3e-4f50-8a9b-c0d1e2f3a4b5",
    "causation_id": "9e8d7c6b-5a49-4382-9170-6f5e4d3c2b1a",
    "occurred_at": 1763757600123,
    "producer": "test-service",
    "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
}
META_MIN = dict(META, causation_id=None, traceparent=None)

# Mirrors tests/support/sample_events.c (full and minimal variants).
SAMPLES = [
    ("OrderPlaced", 0, {
        "meta": META, "customer_id": "cust-ada",
        "items": [{"sku": "sku-mug", "quantity": 2, "unit_price": 1250},
                  {"sku": "sku-tee", "quantity": 1, "unit_price": 2400}],
        "currency": "EUR", "total_amount": 4900, "payment_token": "tok_visa",
        "shipping_address": {"recipient": "Ada Lovelace", "line1": "12 St James's Square",
                             "line2": "Flat 3 — über den Wolken", "city": "London",
                             "postal_code": "SW1Y 4JH", "country": "GB"}}),
    ("OrderConfirmed", 0, {"meta": META, "total_amount": 4900, "currency": "EUR",
                           "tracking_number": "1Z999AA10123456784"}),
    ("OrderCancelled", 1, {"meta": META_MIN, "reason": "PAYMENT_FAILED", "detail": None}),
    ("InventoryReserved", 0, {"meta": META, "reservation_id": "res-1",
                              "items": [{"sku": "sku-mug", "quantity": 2},
                                        {"sku": "sku-tee", "quantity": 1}]}),
    ("NotificationSent", 0, {"meta": META, "notification_id": "ntf-1", "outcome": "CANCELLED",
                             "channel": "LOG", "recipient": "cust-ada",
                             "message": "Your order was cancelled: payment failed."}),
]


def fp_hex(canonical):
    # fastavro returns the fingerprint as hex of the little-endian bytes for CRC-64-AVRO
    return fingerprint(canonical, "CRC-64-AVRO")


def build():
    out = {"generator": "fastavro", "schemas": {}, "tricky": [], "single_object": []}
    for path in sorted(glob.glob(os.path.join(ROOT, "schemas", "*.avsc"))):
        with open(path, encoding="utf-8") as f:
            schema = json.load(f)
        canon = to_parsing_canonical_form(schema)
        out["schemas"][schema["name"]] = {"canonical": canon, "fingerprint": fp_hex(canon)}
    for text in TRICKY:
        canon = to_parsing_canonical_form(json.loads(text))
        out["tricky"].append({"schema": text, "canonical": canon, "fingerprint": fp_hex(canon)})
    for name, minimal, record in SAMPLES:
        with open(os.path.join(ROOT, "schemas", name + ".avsc"), encoding="utf-8") as f:
            schema = json.load(f)
        parsed = parse_schema(schema)
        body = io.BytesIO()
        schemaless_writer(body, parsed, record)
        fp = bytes.fromhex(fp_hex(to_parsing_canonical_form(schema)))
        out["single_object"].append({"type": name, "minimal": minimal,
                                     "hex": (b"\xc3\x01" + fp + body.getvalue()).hex()})
    return out


def main():
    data = json.dumps(build(), indent=2, ensure_ascii=False) + "\n"
    if "--check" in sys.argv:
        with open(OUT, encoding="utf-8") as f:
            if f.read() != data:
                print("tests/vectors/avro_vectors.json is stale: run tests/vectors/make_vectors.py")
                return 1
        print("tests/vectors/avro_vectors.json matches fastavro")
        return 0
    with open(OUT, "w", encoding="utf-8") as f:
        f.write(data)
    return 0


if __name__ == "__main__":
    sys.exit(main())
