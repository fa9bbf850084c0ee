"""Static checks of deploy/: the Grafana dashboard is valid JSON whose queries use
only metrics the programs export, and the Prometheus scrape targets are the
programs' HTTP ports (common/src/topology.c)."""
import json
import pathlib
import re
import sys

root = pathlib.Path(sys.argv[1])
failures = []

sources = "".join(p.read_text() for d in ("common", "relay", "services")
                  for p in (root / d).rglob("*.c"))
exported = set(re.findall(r'"(saga_[a-z0-9_]+)', sources))

dash = json.loads((root / "deploy/grafana/dashboards/order-saga.json").read_text())
exprs = [t["expr"] for p in dash["panels"] for t in p.get("targets", [])]
if not exprs:
    failures.append("the dashboard has no queries")
ids = [p["id"] for p in dash["panels"]]
if len(ids) != len(set(ids)):
    failures.append("panel ids repeat")
for e in exprs:
    for name in re.findall(r"\b(saga_[a-z0-9_]+)", e):
        base = re.sub(r"_(bucket|sum|count)$", "", name)
        if name not in exported and base not in exported:
            failures.append(f"dashboard query uses {name}, which no program exports: {e}")

topology = (root / "common/src/topology.c").read_text()
ports = sorted(int(p) for p in re.findall(r'"[a-z_]+_service",\s*(\d+),', topology))
if len(ports) != 5:
    failures.append(f"could not read the five services' ports from topology.c: {ports}")
ports.append(8085)  # SAGA_RELAY_HTTP_PORT
for f in ("deploy/prometheus/prometheus.yml", "deploy/prometheus/prometheus-local.yml"):
    text = (root / f).read_text()
    got = sorted(int(p) for p in re.findall(r"^\s+- [\w.-]+:(\d+)\s*$", text, re.M))
    if got != sorted(ports):
        failures.append(f"{f}: scrape targets on ports {got}, the programs listen on {sorted(ports)}")

for f in failures:
    print("FAIL -", f)
if not failures:
    print(f"ok - {len(exprs)} dashboard queries use exported metrics; scrape targets match")
sys.exit(1 if failures else 0)
