#!/usr/bin/env python3
"""Prints bench/temporal/run's results side by side: one table per load, a column
per system and round (SYSTEM-rROUND-LOAD.json from bench/loadgen or temporal-bench)."""
import glob
import json
import os
import re
import sys

out = sys.argv[1]
SYSTEMS = ["saga", "temporal-pg", "temporal-dev"]
LOADS = [("open10", "open loop, 10 orders/s"), ("closed64", "closed loop, 64 clients"),
         ("open50", "open loop, 50 orders/s")]
runs = {}
for path in glob.glob(os.path.join(out, "*.json")):
    m = re.match(r"(.*)-r(\d+)-(\w+)\.json$", os.path.basename(path))
    if not m:
        continue
    try:
        runs[(m.group(1), int(m.group(2)), m.group(3))] = json.load(open(path))
    except ValueError:
        pass


def num(v, fmt):
    return "-" if v is None or v == -1 else fmt.format(v)


for load, title in LOADS:
    cols = sorted((k for k in runs if k[2] == load),
                  key=lambda k: (SYSTEMS.index(k[0]) if k[0] in SYSTEMS else 9, k[1]))
    if not cols:
        continue
    data = [runs[k] for k in cols]
    print()
    print(f"== {title} ==")
    width = 16
    print(f"{'':38}" + "".join(f"{k[0] + ' r' + str(k[1]):>{width}}" for k in cols))

    def row(name, f, fmt):
        vals = [f(d) for d in data]
        print(f"{name:38}" + "".join(f"{num(v, fmt):>{width}}" for v in vals))

    row("orders/s to outcome", lambda d: d.get("throughput"), "{:.1f}")
    row("placed / finished", lambda d: f"{d.get('placed')}/{d.get('finished')}", "{}")
    for p in ("p50", "p95", "p99"):
        row(f"placed -> outcome {p} ms", lambda d, p=p: d.get(p + "_ms"), "{}")
    procs = sorted({n for d in data for n in d.get("cost", {}).get("cpu_ms", {}) if n != "stack"})
    for n in procs:
        row(f"CPU ms/order {n}", lambda d, n=n: d.get("cost", {}).get("cpu_ms", {}).get(n), "{:.2f}")
    row("CPU ms/order, all of it", lambda d: d.get("cost", {}).get("cpu_ms", {}).get("stack"), "{:.2f}")
    row("machine busy %", lambda d: 100 * d["cost"]["machine_busy"] if "machine_busy" in d.get("cost", {}) else None,
        "{:.0f}")
    row("transactions/order", lambda d: d.get("cost", {}).get("transactions"), "{:.2f}")
    row("WAL records/order", lambda d: d.get("cost", {}).get("wal_records"), "{:.1f}")
    row("WAL bytes/order", lambda d: d.get("cost", {}).get("wal_bytes"), "{:.0f}")
    row("WAL fsyncs/order", lambda d: d.get("cost", {}).get("wal_fsyncs"), "{:.2f}")
    names = sorted({n for d in data for n in d.get("rss_kib", {})})
    for n in names:
        row(f"RSS MiB {n} (peak)",
            lambda d, n=n: (f"{d['rss_kib'][n]['now'] / 1024:.0f} ({d['rss_kib'][n]['peak'] / 1024:.0f})"
                            if n in d.get("rss_kib", {}) else None), "{}")
print()
print(f"(JSON and the full reports of each run: {out})")
