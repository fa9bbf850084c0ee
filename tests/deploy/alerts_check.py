"""The alert rules (deploy/prometheus/alerts.yml) without a Prometheus server:
promtool checks them and runs their unit tests (alerts.test.yml: each rule fires on a
synthetic series and stays silent on a healthy one), and they are checked against the
code and the docs: every metric a rule uses is one the programs export, every rule has
a test that fires it and one that does not, a threshold comment and a runbook_url whose
section exists in docs/RUNBOOKS.md, and both Prometheus configurations load the file.

Usage: alerts_check.py REPO"""
import pathlib
import re
import shutil
import subprocess
import sys

import yaml

root = pathlib.Path(sys.argv[1])
prom = root / "deploy/prometheus"
failures = []

promtool = shutil.which("promtool")
if not promtool:
    print("FAIL - promtool is missing: run 'scripts/stack deps --tests' (Debian's prometheus package)")
    sys.exit(1)
for args in (["check", "rules", "alerts.yml"], ["test", "rules", "alerts.test.yml"],
             ["check", "config", "prometheus-local.yml"]):
    r = subprocess.run([promtool] + args, cwd=prom, stdout=subprocess.PIPE,
                       stderr=subprocess.STDOUT, text=True, timeout=60)
    if r.returncode != 0:
        failures.append(f"promtool {' '.join(args)} failed:\n{r.stdout}")

text = (prom / "alerts.yml").read_text()
rules = [r for g in yaml.safe_load(text)["groups"] for r in g["rules"]]
alerts = [r for r in rules if "alert" in r]

# Metrics the programs export (as tests/cli/deploy_check.py reads them), and Prometheus's own.
sources = "".join(p.read_text() for d in ("common", "relay", "services")
                  for p in (root / d).rglob("*.c"))
exported = set(re.findall(r'"(saga_[a-z0-9_]+)', sources)) | {"up"}

runbook = (root / "docs/RUNBOOKS.md").read_text()


def anchor(heading):
    """GitHub's anchor of a Markdown heading."""
    a = heading.strip().lower()
    a = re.sub(r"[^\w\- ]", "", a)
    return a.replace(" ", "-")


anchors = {anchor(h) for h in re.findall(r"^#{1,6} (.+)$", runbook, re.M)}

for r in alerts:
    name = r["alert"]
    for metric in set(re.findall(r"\b(saga_[a-z0-9_]+|up)\b", r["expr"])):
        base = re.sub(r"_(bucket|sum|count)$", "", metric)
        if metric not in exported and base not in exported:
            failures.append(f"{name}: uses {metric}, which no program exports")
    url = r.get("annotations", {}).get("runbook_url", "")
    m = re.fullmatch(r"docs/RUNBOOKS\.md#([\w-]+)", url)
    if not m:
        failures.append(f"{name}: runbook_url {url!r} is not docs/RUNBOOKS.md#section")
    elif m.group(1) not in anchors:
        failures.append(f"{name}: runbook_url {url} names no section of docs/RUNBOOKS.md")
    if r.get("labels", {}).get("severity") not in ("critical", "warning"):
        failures.append(f"{name}: severity is neither critical nor warning")
    for key in ("summary", "description"):
        if not r.get("annotations", {}).get(key):
            failures.append(f"{name}: no {key} annotation")

# Every rule comes after a comment that explains it (its threshold); a second rule of
# the same alert (another window) may follow the first directly.
lines, last = text.split("\n"), None
for i, line in enumerate(lines):
    m = re.match(r"\s*- alert: (\w+)", line)
    if not m:
        continue
    if not lines[i - 1].strip().startswith("#") and m.group(1) != last:
        failures.append(f"{m.group(1)}: no comment explaining its threshold above it")
    last = m.group(1)

tests = yaml.safe_load((prom / "alerts.test.yml").read_text())
fires, silent = set(), set()
for t in tests["tests"]:
    for a in t.get("alert_rule_test", []):
        (fires if a.get("exp_alerts") else silent).add(a["alertname"])
for name in sorted({r["alert"] for r in alerts}):
    if name not in fires:
        failures.append(f"{name}: alerts.test.yml has no case where it fires")
    if name not in silent:
        failures.append(f"{name}: alerts.test.yml has no case where it stays silent")

# Both Prometheus configurations load the rules; compose mounts the file next to its config.
for f in ("prometheus.yml", "prometheus-local.yml"):
    conf = yaml.safe_load((prom / f).read_text())
    if "alerts.yml" not in conf.get("rule_files", []):
        failures.append(f"deploy/prometheus/{f}: rule_files does not load alerts.yml")
compose = yaml.safe_load((root / "docker-compose.yml").read_text())
mounts = compose["services"]["prometheus"].get("volumes", [])
if "./deploy/prometheus/alerts.yml:/etc/prometheus/alerts.yml:ro" not in mounts:
    failures.append("docker-compose.yml: prometheus does not mount deploy/prometheus/alerts.yml "
                    "next to its prometheus.yml")

for f in failures:
    print("FAIL -", f)
if not failures:
    print(f"ok - {len(alerts)} alert rules pass promtool's tests, use exported metrics and "
          f"link their runbook sections")
sys.exit(1 if failures else 0)
