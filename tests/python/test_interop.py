#!/usr/bin/env python3
"""Our schemas and serde against two independent Avro implementations.

- every schema in schemas/ (and schemas/released/) parses with fastavro and with
  the Apache Avro Python library;
- `sagactl schemas list --json` gives the same Parsing Canonical Form and
  CRC-64-AVRO fingerprint as fastavro for every event;
- tests/vectors/avro_vectors.json (which the C tests check bytes against) is
  exactly what fastavro produces today.

usage: test_interop.py <repo> <path to sagactl>
"""
import glob
import json
import os
import subprocess
import sys

import avro.schema
from fastavro import parse_schema
from fastavro.schema import fingerprint, to_parsing_canonical_form

repo, sagactl = sys.argv[1], sys.argv[2]
passed = failed = 0


def check(what, ok, detail=""):
    global passed, failed
    if ok:
        passed += 1
        print(f"ok   - {what}")
    else:
        failed += 1
        print(f"FAIL - {what} {detail}")


files = sorted(glob.glob(os.path.join(repo, "schemas", "*.avsc")) +
               glob.glob(os.path.join(repo, "schemas", "released", "*", "*.avsc")))
check("there are schemas", len(files) >= 26, str(len(files)))
for path in files:
    rel = os.path.relpath(path, repo)
    with open(path, encoding="utf-8") as f:
        text = f.read()
    try:
        parse_schema(json.loads(text))
        check(f"fastavro parses {rel}", True)
    except Exception as e:  # noqa: BLE001 - report any parser refusal
        check(f"fastavro parses {rel}", False, repr(e))
    try:
        avro.schema.parse(text)
        check(f"apache avro parses {rel}", True)
    except Exception as e:  # noqa: BLE001
        check(f"apache avro parses {rel}", False, repr(e))

listing = json.loads(subprocess.run([sagactl, "schemas", "list", "--json"], check=True,
                                    capture_output=True, text=True).stdout)
check("sagactl lists 13 events", len(listing) == 13, str(len(listing)))
for entry in listing:
    with open(os.path.join(repo, "schemas", entry["event"] + ".avsc"), encoding="utf-8") as f:
        canon = to_parsing_canonical_form(json.load(f))
    check(f"{entry['event']} canonical form equals fastavro's", entry["canonical_form"] == canon)
    check(f"{entry['event']} fingerprint equals fastavro's",
          entry["fingerprint"] == fingerprint(canon, "CRC-64-AVRO"),
          f"{entry['fingerprint']} != {fingerprint(canon, 'CRC-64-AVRO')}")

gen = subprocess.run([sys.executable, os.path.join(repo, "tests", "vectors", "make_vectors.py"),
                      "--check"], capture_output=True, text=True)
check("tests/vectors/avro_vectors.json is what fastavro produces", gen.returncode == 0,
      gen.stdout + gen.stderr)

print(f"{passed} passed, {failed} failed")
sys.exit(1 if failed else 0)
