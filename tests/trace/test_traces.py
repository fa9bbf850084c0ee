#!/usr/bin/env python3
"""Every saga one trace, exported over OTLP (docs/OBSERVABILITY.md, "Traces").

    test_traces.py STACK_SCRIPT STACK_DIR BUILD_DIR TRACE_POISON

Starts a stack of its own (scripts/stack, ports auto) whose programs export spans to
an OTLP receiver (sampler always_on), then:

1. a confirmed order, a declined card (compensation), an unshippable destination
   (refund + release) and a timed-out order (payment-service killed past SAGA_TIMEOUT,
   then back): the receiver holds exactly one trace per order; every span of it carries
   the order id; every span's parent is in the trace (one root, POST /orders); one
   process span per handled event and consumer group, every event of the order's
   timeline handled somewhere; one publish span per outbox row (per timeline event),
   covering commit to acknowledgement; compensation spans marked; the timeout is a
   span; no program dropped a span.
2. the collector away for 10 s: sagas complete as usual, the programs count the spans
   they could not deliver (saga_trace_spans_dropped_total), and export resumes: an
   order placed once it is back has its whole trace.
3. (between the two) a message that decodes as no event, with an order's traceparent
   (TRACE_POISON, tests/trace/trace_poison.c, produces it): its dead letters are spans
   of that order's trace with status ERROR and the reason.

The receiver: by default the local stack's Jaeger (the binary `scripts/stack deps
--tests` builds, with scripts/jaeger/jaeger-local.yaml), read through its query API;
when it is not built, or with SAGA_TRACE_RECEIVER=builtin, tests/trace/otlp_receiver.py
in this process (OTLP/HTTP JSON, as a collector takes it). Another backend instead:

    SAGA_TRACE_RECEIVER   a shell command starting it in the foreground, with {otlp_port}
                          (its OTLP/HTTP port), {query_port} (its Jaeger query API / UI) and
                          {grpc_port} (a free port for whatever else it listens on), e.g.
                          JAEGER_OTLP_PORT={otlp_port} JAEGER_UI_PORT={query_port}
                          JAEGER_GRPC_PORT={grpc_port} jaeger --config=file:CONFIG.yaml
    SAGA_TRACE_QUERY      jaeger   (spans are read from http://127.0.0.1:{query_port}/api/traces)
"""
import json
import os
import re
import shlex
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from otlp_receiver import Receiver  # noqa: E402

FAILED = []
PROGRAMS = ["order-service", "inventory-service", "payment-service", "shipping-service",
            "notification-service", "outbox-relay"]
SAGA_TIMEOUT_S = 6


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        FAILED.append(what)
    return cond


def free_port():
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    p = s.getsockname()[1]
    s.close()
    return p


def stack_env(path):
    env = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if "=" in line and not line.startswith("#"):
                k, v = line.split("=", 1)
                env[k.removeprefix("export ").strip()] = v.strip().strip("'\"")
    return env


# --- the receiver ---------------------------------------------------------------------

class Builtin:
    def __init__(self):
        self.port = free_port()
        self.r = None

    def start(self):
        self.r = Receiver(self.port).start()

    def stop(self):
        self.r.stop()

    def spans_of(self, order_id):
        return [s for s in self.r.spans() if s["attrs"].get("saga.order_id") == order_id]

    def trace(self, trace_id):
        return [s for s in self.r.spans() if s["trace_id"] == trace_id]


class Jaeger:
    """A real backend started by SAGA_TRACE_RECEIVER, read through Jaeger's query API."""

    def __init__(self, command):
        self.port, self.query_port = free_port(), free_port()
        self.command = command.format(otlp_port=self.port, query_port=self.query_port,
                                      grpc_port=free_port())
        self.proc = None

    def start(self):
        self.proc = subprocess.Popen(self.command, shell=True, start_new_session=True,
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.time() + 60
        while time.time() < deadline:
            try:
                urllib.request.urlopen("http://127.0.0.1:%d/api/services" % self.query_port, timeout=2)
                socket.create_connection(("127.0.0.1", self.port), timeout=2).close()
                return
            except OSError:
                time.sleep(0.5)
        raise SystemExit("the receiver (%s) did not come up" % self.command)

    def stop(self):
        if self.proc:
            os.killpg(self.proc.pid, signal.SIGTERM)
            self.proc.wait(timeout=30)
            self.proc = None

    def _get(self, path):
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (self.query_port, path), timeout=10) as r:
            return json.loads(r.read())

    def _flatten(self, trace):
        procs = {k: v["serviceName"] for k, v in trace.get("processes", {}).items()}
        out = []
        for s in trace["spans"]:
            tags = {t["key"]: t["value"] for t in s.get("tags", [])}
            parent = next((r["spanID"] for r in s.get("references", []) if r["refType"] == "CHILD_OF"), "")
            status = {}
            if tags.get("otel.status_code") == "ERROR" or tags.get("error") is True:
                status = {"code": 2, "message": tags.get("otel.status_description", "")}
            out.append({"service": procs.get(s["processID"], ""), "trace_id": s["traceID"].rjust(32, "0"),
                        "span_id": s["spanID"].rjust(16, "0"), "parent_id": parent.rjust(16, "0") if parent else "",
                        "name": s["operationName"], "start": s["startTime"] * 1000,
                        "end": (s["startTime"] + s["duration"]) * 1000, "attrs": tags, "status": status})
        return out

    def spans_of(self, order_id):
        tags = urllib.parse.quote(json.dumps({"saga.order_id": order_id}))
        ids = set()
        for svc in PROGRAMS:
            try:
                d = self._get("/api/traces?service=%s&tags=%s&lookback=1h&limit=20" % (svc, tags))
            except urllib.error.HTTPError:
                continue
            for t in d.get("data") or []:
                ids.add(t["traceID"])
        spans = []
        for t in ids:
            spans += [s for s in self.trace(t) if s["attrs"].get("saga.order_id") == order_id]
        return spans

    def trace(self, trace_id):
        try:
            d = self._get("/api/traces/%s" % trace_id)
        except urllib.error.HTTPError:
            return []
        return [s for t in d.get("data") or [] for s in self._flatten(t)]


# --- the stack and its API --------------------------------------------------------------

class Stack:
    def __init__(self, script, directory, build, otlp_port):
        self.script, self.dir, self.build = script, directory, build
        self.env = dict(os.environ)
        self.env.update({
            "OTEL_EXPORTER_OTLP_ENDPOINT": "http://127.0.0.1:%d" % otlp_port,
            "OTEL_TRACES_SAMPLER": "always_on",
            "OTEL_BSP_SCHEDULE_DELAY": "200",
            "OTEL_RESOURCE_ATTRIBUTES": "deployment.environment=test",
            "SAGA_TIMEOUT": "%ds" % SAGA_TIMEOUT_S,
            "SAGA_SWEEP_INTERVAL": "1s",
            "RELAY_POLL_INTERVAL": "30m",
        })

    def run(self, *args, check_rc=True):
        cmd = [self.script, *args, "--dir", self.dir, "--build", self.build]
        rc = subprocess.run(cmd, env=self.env).returncode
        if check_rc and rc != 0:
            raise SystemExit("%s failed (%d)" % (" ".join(cmd), rc))

    def up(self):
        os.makedirs(os.path.join(self.dir, "logs"), exist_ok=True)
        self.run("up", "--no-deps", "--ports", "auto", "--ttl", "3600")
        self.senv = stack_env(os.path.join(self.dir, "stack.env"))
        self.base = self.senv["ORDER_API_URL"].rstrip("/")
        self.auth = {}
        if self.senv.get("STACK_OPERATOR_TOKEN"):
            self.auth["Authorization"] = "Bearer " + self.senv["STACK_OPERATOR_TOKEN"]

    def down(self):
        subprocess.run([self.script, "down", "--dir", self.dir, "--build", self.build], env=self.env)

    def api(self, method, path, body=None):
        data = json.dumps(body).encode() if body is not None else None
        req = urllib.request.Request(self.base + path, data=data, method=method,
                                     headers={"Content-Type": "application/json", **self.auth})
        try:
            with urllib.request.urlopen(req, timeout=15) as r:
                return r.status, json.loads(r.read() or b"null")
        except urllib.error.HTTPError as e:
            return e.code, None

    def place(self, token="tok_visa", country="NL", sku="sku-book"):
        status, o = self.api("POST", "/orders", {
            "customer_id": "cust-alice", "currency": "EUR", "payment_token": token,
            "items": [{"sku": sku, "quantity": 1}],
            "shipping_address": {"recipient": "Trace Test", "line1": "Main Street 1",
                                 "city": "Utrecht", "postal_code": "3511 AB", "country": country}})
        if status != 202:
            raise SystemExit("POST /orders answered %s" % status)
        return o["order_id"]

    def wait_order(self, order_id, pred, timeout_s):
        deadline = time.time() + timeout_s
        o = None
        while time.time() < deadline:
            _, o = self.api("GET", "/orders/" + order_id)
            if o and pred(o):
                return o
            time.sleep(0.3)
        return o

    def metric_sum(self, name, label_filter=""):
        total = 0.0
        port0 = int(self.senv["STACK_HTTP_PORT_BASE"])
        for off in range(6):
            try:
                with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % (port0 + off), timeout=5) as r:
                    text = r.read().decode()
            except OSError:
                continue
            for line in text.splitlines():
                if line.startswith(name + "{") and label_filter in line:
                    total += float(line.rsplit(" ", 1)[1])
        return total


def settled(o):
    return o.get("status") in ("CONFIRMED", "CANCELLED") and o.get("compensation") in (None, "done", "none")


def timeline(o):
    return o.get("timeline") or []


# --- the checks -----------------------------------------------------------------------

def check_trace(stack, recv, order_id, label, expect_compensates=(), expect_names=()):
    """The trace of order_id once it and the order's timeline stopped growing."""
    deadline = time.time() + 30
    spans, last = [], -1
    while time.time() < deadline:
        _, o = stack.api("GET", "/orders/" + order_id)
        events = {e["event_id"]: e["event_type"] for e in timeline(o or {})}
        spans = recv.spans_of(order_id)
        publishes = [s for s in spans if s["name"] == "outbox publish"]
        if len(spans) == last and len(publishes) == len(events):
            break
        last = len(spans)
        time.sleep(1.5)
    traces = {s["trace_id"] for s in spans}
    if not check(len(traces) == 1, "%s: the order's spans are one trace (%d traces, %d spans)"
                 % (label, len(traces), len(spans))):
        return spans
    trace = recv.trace(traces.pop())
    check(all(s["attrs"].get("saga.order_id") == order_id for s in trace),
          "%s: every span of the trace carries saga.order_id (%d spans)" % (label, len(trace)))
    ids = {s["span_id"] for s in trace}
    roots = [s for s in trace if not s["parent_id"]]
    orphans = [s["name"] for s in trace if s["parent_id"] and s["parent_id"] not in ids]
    check(len(roots) == 1 and roots[0]["name"] == "POST /orders",
          "%s: one root, the POST /orders server span (%s)" % (label, [r["name"] for r in roots]))
    check(not orphans, "%s: every span's parent is in the trace (orphans: %s)" % (label, orphans))
    check(len(ids) == len(trace), "%s: span ids are unique" % label)
    root = roots[0] if roots else {"attrs": {}}
    check(root["attrs"].get("http.request.method") == "POST" and root["attrs"].get("http.route") == "/orders"
          and root["attrs"].get("http.response.status_code") == 202,
          "%s: the server span has http.request.method, http.route, http.response.status_code" % label)

    # One publish span per outbox row: every event of the order was written once.
    pubs = [s for s in trace if s["name"] == "outbox publish"]
    pub_events = [s["attrs"].get("messaging.message.id") for s in pubs]
    check(sorted(pub_events) == sorted(events),
          "%s: one publish span per outbox row (%d spans, %d events in the timeline)"
          % (label, len(pubs), len(events)))
    check(all(s["attrs"].get("messaging.system") == "kafka" and s["attrs"].get("messaging.operation.type") == "send"
              and s["attrs"].get("messaging.destination.name") and "messaging.kafka.offset" in s["attrs"]
              and "messaging.destination.partition.id" in s["attrs"] and s["end"] >= s["start"] for s in pubs),
          "%s: publish spans carry the messaging attributes (system, send, topic, partition, offset)" % label)

    # One process span per handled event and group; every event handled somewhere.
    procs = [s for s in trace if s["name"].endswith(" process")
             and s["attrs"].get("saga.outcome") in ("handled", "released")]
    seen = {}
    for s in procs:
        k = (s["attrs"].get("messaging.consumer.group.name"), s["attrs"].get("messaging.message.id"))
        seen[k] = seen.get(k, 0) + 1
    dups = [k for k, n in seen.items() if n > 1]
    check(not dups, "%s: one process span per handled event and consumer group (twice: %s)" % (label, dups))
    handled = {k[1] for k in seen}
    unhandled = [events[e] for e in events if e not in handled]
    check(not unhandled, "%s: every event of the timeline has a process span (not: %s)" % (label, unhandled))
    by_id = {s["span_id"]: s for s in trace}
    wrong_parent = [s["name"] for s in procs
                    if by_id.get(s["parent_id"], {}).get("span_id") not in
                    {p["parent_id"] for p in pubs if p["attrs"].get("messaging.message.id") == s["attrs"].get("messaging.message.id")}]
    check(not wrong_parent, "%s: each process span is a sibling of its event's publish span, "
          "under the span that wrote the event (not: %s)" % (label, wrong_parent))
    check(all(s["attrs"].get("messaging.operation.type") == "process" and s["attrs"].get("messaging.consumer.group.name")
              for s in procs), "%s: process spans carry messaging.operation.type=process and the group" % label)
    kids = {s["parent_id"] for s in trace if s["name"].endswith(" handler") or s["name"] == "COMMIT"}
    check(all(p["span_id"] in kids for p in procs),
          "%s: every process span has its handler and COMMIT child spans" % label)

    # A compensation span per compensating event of the timeline, naming the step it undoes
    # (a late participant may add one: payment authorizing after a timeout, then refunding).
    undoes = {"InventoryReleased": "InventoryReserved", "PaymentRefunded": "PaymentAuthorized",
              "ShipmentCancelled": "ShipmentScheduled"}
    want = sorted(undoes[t] for t in events.values() if t in undoes)
    marked = sorted(s["attrs"].get("saga.compensates") for s in trace if s["attrs"].get("saga.compensation") is True)
    check(marked == want and set(expect_compensates) <= set(marked),
          "%s: compensation spans marked, one per compensating event %s (at least %s; found %s)"
          % (label, want, sorted(expect_compensates), marked))
    names = {s["name"] for s in trace}
    for n in expect_names:
        check(n in names, "%s: the trace has a '%s' span" % (label, n))
    return trace


POISON = None


def stack_jaeger(script):
    """The command that runs the local stack's Jaeger (scripts/stack up --tracing) with its
    configuration, when `scripts/stack deps --tests` has built it; else "" (this test's
    own receiver)."""
    repo = os.path.dirname(os.path.dirname(os.path.abspath(script)))
    binary = os.environ.get("STACK_JAEGER_BIN")
    if not binary:
        with open(os.path.join(repo, "scripts", "jaeger", "go.mod")) as f:
            m = re.search(r"^\s*github\.com/jaegertracing/jaeger v([0-9.]+)", f.read(), re.M)
        cache = os.environ.get("STACK_CACHE") or os.path.join(
            os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache"), "order-saga")
        binary = os.path.join(cache, "jaeger-%s" % m.group(1), "jaeger") if m else ""
    if not binary or not os.access(binary, os.X_OK):
        print("# no Jaeger built (scripts/stack deps --tests builds it): this test's own receiver",
              flush=True)
        return ""
    jaeger_dir = os.path.join(repo, "scripts", "jaeger")
    return ("JAEGER_OTLP_PORT={otlp_port} JAEGER_UI_PORT={query_port} JAEGER_GRPC_PORT={grpc_port} "
            "JAEGER_UI_ASSETS=%s exec %s --config=file:%s" % (
                shlex.quote(os.path.join(jaeger_dir, "ui")), shlex.quote(binary),
                shlex.quote(os.path.join(jaeger_dir, "jaeger-local.yaml"))))


def main():
    global POISON
    script, directory, build, POISON = sys.argv[1:5]
    command = os.environ.get("SAGA_TRACE_RECEIVER")
    if command is None:
        command = stack_jaeger(script)
    elif command == "builtin":
        command = ""
    recv = Jaeger(command) if command else Builtin()
    print("# receiver: %s" % (command or "tests/trace/otlp_receiver.py (OTLP/HTTP JSON)"), flush=True)
    recv.start()
    stack = Stack(script, directory, build, recv.port)
    try:
        stack.up()
        run(stack, recv)
    finally:
        stack.down()
        recv.stop()
    # The programs stopped gracefully, exporter threads included: no sanitizer report.
    for p in PROGRAMS:
        log = os.path.join(directory, "logs", p + ".log")
        if os.path.exists(log):
            with open(log, errors="replace") as f:
                text = f.read()
            check(not re.search(r"ERROR: (Address|Leak)Sanitizer|runtime error:", text),
                  "%s logged no sanitizer report" % p)
    if FAILED:
        print("%d check(s) failed" % len(FAILED))
        return 1
    print("all checks passed")
    return 0


def run(stack, recv):
    # 1. the four sagas
    confirmed = stack.place()
    declined = stack.place(token="tok_chargeDeclined")
    unshippable = stack.place(country="AQ")
    outcomes = {}
    for oid in (confirmed, declined, unshippable):
        outcomes[oid] = stack.wait_order(oid, settled, 60)
    stack.run("stop", "payment-service")  # gracefully: its queued spans are sent
    timed_out = stack.place()
    o = stack.wait_order(timed_out, lambda o: o.get("status") == "CANCELLED", SAGA_TIMEOUT_S + 30)
    check(o and o.get("reason") == "TIMEOUT", "the order without payment-service timed out")
    stack.run("up", "--no-deps")  # payment-service back: it sees the cancelled order's events
    outcomes[timed_out] = stack.wait_order(timed_out, settled, 60)

    check(outcomes[confirmed].get("status") == "CONFIRMED", "the first order is CONFIRMED")
    check_trace(stack, recv, confirmed, "confirmed",
                expect_names=("OrderPlaced process", "OrderConfirmed process", "COMMIT",
                              "order transaction"))
    check(outcomes[declined].get("reason") == "PAYMENT_FAILED" or outcomes[declined].get("status") == "CANCELLED",
          "the declined card's order is CANCELLED")
    check_trace(stack, recv, declined, "declined card", expect_compensates=("InventoryReserved",))
    check_trace(stack, recv, unshippable, "unshippable",
                expect_compensates=("InventoryReserved", "PaymentAuthorized"))
    check_trace(stack, recv, timed_out, "timed out", expect_compensates=("InventoryReserved",),
                expect_names=("order timeout",))
    time.sleep(1)
    dropped = stack.metric_sum("saga_trace_spans_dropped_total")
    exported = stack.metric_sum("saga_trace_spans_exported_total")
    check(dropped == 0 and exported > 0,
          "no program dropped a span (dropped %d, exported %d)" % (dropped, exported))

    # A dead letter in the order's trace: bytes that are no event, with the order's
    # traceparent, on a topic three services read.
    trace = recv.spans_of(confirmed)
    root = next((s for s in trace if not s["parent_id"]), None)
    if check(root is not None, "the confirmed order's trace has its root"):
        tp = "00-%s-%s-01" % (root["trace_id"], root["span_id"])
        rc = subprocess.run([POISON, stack.senv["KAFKA_BOOTSTRAP_SERVERS"], "payments", confirmed, tp]).returncode
        check(rc == 0, "a poison message with the order's traceparent is on the payments topic")
        deadline = time.time() + 90
        dead = []
        while time.time() < deadline and not dead:
            time.sleep(2)
            dead = [s for s in recv.trace(root["trace_id"]) if s["name"] == "dead letter"]
        ids = {s["span_id"] for s in recv.trace(root["trace_id"])}
        check(dead and all(s["status"].get("code") == 2 and "undecodable" in s["status"].get("message", "")
                           and s["attrs"].get("saga.dlq.topic", "").endswith(".dlq")
                           and s["attrs"].get("saga.order_id") == confirmed and s["parent_id"] in ids
                           for s in dead),
              "the dead letter is a span of the order's trace with status ERROR and its reason (%s)"
              % [(s["service"], s["status"].get("message")) for s in dead])

    # 2. the collector away for 10 s
    recv.stop()
    t0 = time.time()
    away = [stack.place() for _ in range(3)]
    slow = []
    for oid in away:
        o = stack.wait_order(oid, settled, 30)
        if not (o and o.get("status") == "CONFIRMED"):
            slow.append(oid)
    took = time.time() - t0
    check(not slow and took < 20,
          "with the collector away, sagas complete as usual (3 orders in %.1f s)" % took)
    time.sleep(max(0.0, 10 - (time.time() - t0)))
    # The spans of those sagas are lost once their batch's retries are over (~6 s).
    deadline = time.time() + 30
    while time.time() < deadline and stack.metric_sum("saga_trace_spans_dropped_total") == 0:
        time.sleep(1)
    lost = stack.metric_sum("saga_trace_spans_dropped_total")
    check(lost > 0, "the programs count the spans they could not deliver (%d)" % lost)
    recv.start()
    back = stack.place()
    o = stack.wait_order(back, settled, 60)
    check(o and o.get("status") == "CONFIRMED", "an order placed with the collector back is CONFIRMED")
    check_trace(stack, recv, back, "collector back")


if __name__ == "__main__":
    sys.exit(main())
