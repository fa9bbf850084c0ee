#!/usr/bin/env python3
"""A drop-in replacement for shipping-service, in plain Python.

It keeps the shipping contract of docs/REPLACING-A-SERVICE.md without any of the
project's C code:

  OrderPlaced       -> remember the shipping address (no event)
  PaymentAuthorized -> ShipmentScheduled, or ShipmentFailed when the country is on
                       the deny list (SHIP_DENY_COUNTRIES, default "AQ,BV") or the
                       address is incomplete; deferred until OrderPlaced arrives;
                       nothing for a cancelled order (tombstone)
  OrderCancelled    -> tombstone the order; ShipmentCancelled if one was scheduled

Each Kafka message is handled in ONE PostgreSQL transaction: the inbox row (so a
redelivered event has no second effect), the state change and the outbox row of
the event it emits (published by the shared outbox-relay). The Kafka offset is
committed only after that transaction commits.

Environment: DATABASE_URL, KAFKA_BOOTSTRAP_SERVERS (and any KAFKA_* setting),
SCHEMA_REGISTRY_URL (optional), HTTP_LISTEN (127.0.0.1:8083), LOG_LEVEL,
SAGA_SCHEMA_DIR (default: the repository's schemas/), SHIP_DENY_COUNTRIES.
"""
import io
import json
import os
import random
import signal
import struct
import sys
import threading
import time
import urllib.error
import urllib.request
import uuid
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import fastavro
from fastavro.schema import to_parsing_canonical_form
import psycopg
from confluent_kafka import Consumer, KafkaException, Producer

SERVICE = "shipping-service"  # the consumer group, inbox consumer and meta.producer
TOPICS = ["orders", "payments"]
OUT_TOPIC, DLQ_TOPIC = "shipping", "shipping.dlq"
CARRIER = "PyParcel"
NAMESPACE = "io.ordersaga.events"
DENY = {c.strip().upper() for c in os.environ.get("SHIP_DENY_COUNTRIES", "AQ,BV").split(",")}
LEVELS = {"debug": 10, "info": 20, "warn": 30, "error": 40}
LOG_LEVEL = LEVELS.get(os.environ.get("LOG_LEVEL", "info"), 20)


def log(level, msg, **fields):
    """One JSON object per line on stderr, like the other services."""
    if LEVELS[level] >= LOG_LEVEL:
        line = {"ts": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "level": level,
                "service": SERVICE, "msg": msg, **fields}
        print(json.dumps(line), file=sys.stderr, flush=True)


# --- Avro: schemas/*.avsc, both framings ------------------------------------------

def crc64_avro(data: bytes) -> int:
    """CRC-64-AVRO (the Avro spec's schema fingerprint)."""
    fp = 0xC15D213AA4D7A795
    for b in data:
        fp = (fp >> 8) ^ CRC_TABLE[(fp ^ b) & 0xFF]
    return fp


CRC_TABLE = []
for i in range(256):
    fp = i
    for _ in range(8):
        fp = (fp >> 1) ^ (0xC15D213AA4D7A795 & -(fp & 1))
    CRC_TABLE.append(fp)


def plain(schema):
    """The schema without logicalType annotations: ids stay str, times int (millis)."""
    if isinstance(schema, dict):
        return {k: plain(v) for k, v in schema.items() if k != "logicalType"}
    if isinstance(schema, list):
        return [plain(s) for s in schema]
    return schema


class Schemas:
    """The current schemas (what we write, and read into) and every known writer schema."""

    def __init__(self, directory: Path, registry_url: str | None):
        self.registry_url = registry_url.rstrip("/") if registry_url else None
        self.current = {}    # "ShipmentScheduled" -> (parsed schema, raw JSON text)
        self.by_fp = {}      # 8-byte little-endian fingerprint -> parsed writer schema
        self.by_id = {}      # registry id -> parsed writer schema
        self.id_of = {}      # "ShipmentScheduled" -> registry id (when writing Confluent)
        for path in sorted(directory.glob("**/*.avsc")):  # includes released/ versions
            text = path.read_text()
            parsed = fastavro.parse_schema(plain(json.loads(text)))
            pcf = to_parsing_canonical_form(json.loads(text))
            self.by_fp[struct.pack("<Q", crc64_avro(pcf.encode()))] = parsed
            if path.parent == directory:
                self.current[parsed["name"].rsplit(".", 1)[-1]] = (parsed, text)
        if "ShipmentScheduled" not in self.current:
            raise SystemExit(f"no event schemas in {directory} (set SAGA_SCHEMA_DIR)")

    def _registry(self, path, body=None):
        req = urllib.request.Request(
            self.registry_url + path, data=json.dumps(body).encode() if body else None,
            headers={"Content-Type": "application/vnd.schemaregistry.v1+json"})
        with urllib.request.urlopen(req, timeout=10) as resp:
            return json.load(resp)

    def decode(self, value: bytes):
        """(event type, record as a dict) of a message in either framing."""
        if value[:2] == b"\xc3\x01" and len(value) >= 10:  # Avro single-object
            writer, body = self.by_fp.get(value[2:10]), value[10:]
            if writer is None:
                raise ValueError(f"unknown schema fingerprint {value[2:10].hex()}")
        elif value[:1] == b"\x00" and len(value) >= 5:  # Confluent: magic 0, 4-byte id
            sid, body = struct.unpack(">I", value[1:5])[0], value[5:]
            if sid not in self.by_id:
                if not self.registry_url:
                    raise ValueError("Confluent framing but SCHEMA_REGISTRY_URL is not set")
                try:
                    text = self._registry(f"/schemas/ids/{sid}")["schema"]
                except urllib.error.HTTPError as e:  # an OSError: transient, but not a 404
                    if e.code == 404:
                        raise ValueError(f"schema id {sid} is unknown to the registry") from e
                    raise
                self.by_id[sid] = fastavro.parse_schema(plain(json.loads(text)))
            writer = self.by_id[sid]
        else:
            raise ValueError("neither single-object nor Confluent framing")
        name = writer["name"].rsplit(".", 1)[-1]
        reader = self.current[name][0] if name in self.current else writer
        return name, fastavro.schemaless_reader(io.BytesIO(body), writer, reader)

    def encode(self, name: str, topic: str, record: dict) -> bytes:
        """Confluent framing with a registry, single-object framing without."""
        schema, text = self.current[name]
        out = io.BytesIO()
        if self.registry_url:
            if name not in self.id_of:  # registers, or finds the schema already there
                subject = f"{topic}-{NAMESPACE}.{name}"
                self.id_of[name] = self._registry(f"/subjects/{subject}/versions",
                                                  {"schema": text})["id"]
            out.write(b"\x00" + struct.pack(">I", self.id_of[name]))
        else:
            pcf = to_parsing_canonical_form(json.loads(text))
            out.write(b"\xc3\x01" + struct.pack("<Q", crc64_avro(pcf.encode())))
        fastavro.schemaless_writer(out, schema, record)
        return out.getvalue()


# --- PostgreSQL: our tables ---------------------------------------------------------

# outbox, inbox and deferred have exactly the columns of the common migration
# (common/migrations/001_outbox_inbox_deferred.sql), so the shared outbox-relay
# publishes our outbox; they are
# recorded as its version 1 in saga_migrations, so a service built on common/ can
# take the database over. Our own state: py_orders, py_shipments.
DDL = """
CREATE TABLE IF NOT EXISTS saga_migrations (
  version int PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now());
CREATE TABLE IF NOT EXISTS outbox (
  id bigserial PRIMARY KEY, topic text NOT NULL, msg_key text NOT NULL,
  event_type text NOT NULL, event_id text NOT NULL, payload bytea NOT NULL,
  headers jsonb NOT NULL DEFAULT '{}',
  created_at timestamptz NOT NULL DEFAULT clock_timestamp(), published_at timestamptz);
CREATE INDEX IF NOT EXISTS outbox_pending ON outbox (id) WHERE published_at IS NULL;
CREATE INDEX IF NOT EXISTS outbox_published ON outbox (published_at)
  WHERE published_at IS NOT NULL;
CREATE TABLE IF NOT EXISTS inbox (
  consumer text NOT NULL, event_id text NOT NULL,
  processed_at timestamptz NOT NULL DEFAULT clock_timestamp(), PRIMARY KEY (consumer, event_id));
CREATE INDEX IF NOT EXISTS inbox_processed_at ON inbox (processed_at);
CREATE TABLE IF NOT EXISTS deferred (
  id bigserial PRIMARY KEY, consumer text NOT NULL, wait_key text NOT NULL,
  event_id text NOT NULL, event_type text NOT NULL, topic text NOT NULL,
  kpartition int NOT NULL, koffset bigint NOT NULL, msg_key text, payload bytea NOT NULL,
  headers jsonb NOT NULL DEFAULT '{}', deferred_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  UNIQUE (consumer, event_id));
CREATE INDEX IF NOT EXISTS deferred_wait ON deferred (consumer, wait_key);
CREATE TABLE IF NOT EXISTS py_orders (
  order_id text PRIMARY KEY, placed boolean NOT NULL DEFAULT false,
  cancelled boolean NOT NULL DEFAULT false,  -- the tombstone
  country text, line1 text, city text, postal_code text);
CREATE TABLE IF NOT EXISTS py_shipments (
  shipment_id text PRIMARY KEY, order_id text NOT NULL UNIQUE,
  status text NOT NULL CHECK (status IN ('scheduled', 'failed', 'cancelled')),
  tracking_number text, country text NOT NULL,
  created_at timestamptz NOT NULL DEFAULT now());
DO $$ BEGIN
  IF EXISTS (SELECT FROM pg_roles WHERE rolname = 'outbox_relay') THEN
    GRANT USAGE ON SCHEMA public TO outbox_relay;
    GRANT SELECT, DELETE, UPDATE (published_at) ON outbox TO outbox_relay;
  END IF;
END $$;
INSERT INTO saga_migrations (version, name) VALUES (1, 'outbox, inbox and deferred events')
  ON CONFLICT DO NOTHING;
"""


class Shipping:
    """The handlers. Each runs inside the caller's transaction (cursor cur)."""

    DEFER = "defer"

    def __init__(self, schemas: Schemas):
        self.schemas = schemas

    def emit(self, cur, name: str, cause: dict, body: dict):
        """Appends an event caused by cause to the outbox (the relay publishes it)."""
        cm = cause["meta"]
        parent = cm.get("traceparent") or ""
        trace = parent[3:35] if len(parent) == 55 else uuid.uuid4().hex
        flags = parent[53:55] if len(parent) == 55 else "01"
        meta = {"event_id": str(uuid.uuid4()), "order_id": cm["order_id"],
                "correlation_id": cm["correlation_id"], "causation_id": cm["event_id"],
                "occurred_at": int(time.time() * 1000), "producer": SERVICE,
                "traceparent": f"00-{trace}-{random.getrandbits(64):016x}-{flags}"}
        payload = self.schemas.encode(name, OUT_TOPIC, {"meta": meta, **body})
        headers = {"event_id": meta["event_id"], "event_type": name,
                   "correlation_id": meta["correlation_id"],
                   "causation_id": meta["causation_id"], "traceparent": meta["traceparent"]}
        cur.execute("INSERT INTO outbox (topic, msg_key, event_type, event_id, payload, headers)"
                    " VALUES (%s, %s, %s, %s, %s, %s)",
                    (OUT_TOPIC, meta["order_id"], name, meta["event_id"], payload,
                     json.dumps(headers)))
        cur.execute("SELECT pg_notify('saga_outbox', '')")  # wakes the relay at commit
        log("info", f"emitted {name}", order_id=meta["order_id"], event_id=meta["event_id"])

    def lock_order(self, cur, order_id):
        """Locks (creating if missing) the order's row: one handler per order at a time."""
        cur.execute("INSERT INTO py_orders (order_id) VALUES (%s) ON CONFLICT (order_id)"
                    " DO UPDATE SET order_id = EXCLUDED.order_id"
                    " RETURNING placed, cancelled, country, line1, city, postal_code",
                    (order_id,))
        return cur.fetchone()

    def on_order_placed(self, cur, ev):
        a = ev["shipping_address"]
        cur.execute("INSERT INTO py_orders (order_id, placed, country, line1, city, postal_code)"
                    " VALUES (%s, true, %s, %s, %s, %s) ON CONFLICT (order_id) DO UPDATE"
                    " SET placed = true, country = EXCLUDED.country, line1 = EXCLUDED.line1,"
                    " city = EXCLUDED.city, postal_code = EXCLUDED.postal_code"
                    " WHERE NOT py_orders.placed",
                    (ev["meta"]["order_id"], a["country"], a["line1"], a["city"],
                     a["postal_code"]))

    def on_payment_authorized(self, cur, ev):
        order_id = ev["meta"]["order_id"]
        placed, cancelled, country, line1, city, postal = self.lock_order(cur, order_id)
        if cancelled:
            return None  # tombstone: nothing to ship
        if not placed:
            return self.DEFER  # OrderPlaced has not arrived yet
        cur.execute("SELECT 1 FROM py_shipments WHERE order_id = %s", (order_id,))
        if cur.fetchone():
            return None  # decided already
        shipment_id, country = str(uuid.uuid4()), country or ""
        # The built-in's rule: a country of two ASCII letters; street, city, postal code not blank.
        incomplete = not (len(country) == 2 and country.isascii() and country.isalpha()) or \
            not all(s and s.strip() for s in (line1, city, postal))
        if incomplete or country.upper() in DENY:
            cur.execute("INSERT INTO py_shipments (shipment_id, order_id, status, country)"
                        " VALUES (%s, %s, 'failed', %s)", (shipment_id, order_id, country))
            reason = "INVALID_ADDRESS" if incomplete else "UNSUPPORTED_DESTINATION"
            self.emit(cur, "ShipmentFailed", ev, {"reason": reason, "country": country})
        else:
            tracking = "PY-" + shipment_id[:8].upper()
            cur.execute("INSERT INTO py_shipments (shipment_id, order_id, status,"
                        " tracking_number, country) VALUES (%s, %s, 'scheduled', %s, %s)",
                        (shipment_id, order_id, tracking, country))
            self.emit(cur, "ShipmentScheduled", ev, {"shipment_id": shipment_id,
                                                     "tracking_number": tracking,
                                                     "carrier": CARRIER})
        return None

    def on_order_cancelled(self, cur, ev):
        order_id = ev["meta"]["order_id"]
        self.lock_order(cur, order_id)
        cur.execute("UPDATE py_orders SET cancelled = true WHERE order_id = %s", (order_id,))
        cur.execute("UPDATE py_shipments SET status = 'cancelled'"
                    " WHERE order_id = %s AND status = 'scheduled'"
                    " RETURNING shipment_id, tracking_number", (order_id,))
        row = cur.fetchone()
        if row:  # compensation, once: only a scheduled shipment is cancelled
            self.emit(cur, "ShipmentCancelled", ev,
                      {"shipment_id": row[0], "tracking_number": row[1]})
        return None

    HANDLERS = {"OrderPlaced": on_order_placed, "PaymentAuthorized": on_payment_authorized,
                "OrderCancelled": on_order_cancelled}
    RELEASES_DEFERRED = {"OrderPlaced", "OrderCancelled"}


# --- the consumer loop ----------------------------------------------------------------

class Runtime:
    def __init__(self):
        self.stopping = threading.Event()
        self.joined = threading.Event()
        self.counts = {}  # (event type, outcome) -> count, for /metrics
        here = Path(__file__).resolve().parent
        schema_dir = Path(os.environ.get("SAGA_SCHEMA_DIR") or here.parent.parent / "schemas")
        self.schemas = Schemas(schema_dir, os.environ.get("SCHEMA_REGISTRY_URL") or None)
        self.shipping = Shipping(self.schemas)
        self.db_url = os.environ["DATABASE_URL"]
        kafka = {k[6:].lower().replace("_", "."): v for k, v in os.environ.items()
                 if k.startswith("KAFKA_") and v}  # KAFKA_BOOTSTRAP_SERVERS -> bootstrap.servers
        self.consumer = Consumer({**kafka, "group.id": SERVICE, "enable.auto.commit": False,
                                  "auto.offset.reset": "earliest", "client.id": SERVICE,
                                  "partition.assignment.strategy": "range,roundrobin"})
        self.dlq = Producer({**kafka, "enable.idempotence": True, "partitioner": "murmur2_random",
                             "client.id": SERVICE + "-dlq"})
        self.conn = None

    def count(self, name, outcome):
        self.counts[(name, outcome)] = self.counts.get((name, outcome), 0) + 1

    def connect(self):
        while not self.stopping.is_set():
            try:
                self.conn = psycopg.connect(self.db_url, autocommit=True)
                return
            except psycopg.OperationalError as e:
                log("warn", f"database not reachable: {e}; retrying")
                time.sleep(1)

    def run_one(self, cur, name, ev, msg=None):
        """Inbox claim + handler. Returns the outcome; on DEFER keeps the message."""
        cur.execute("INSERT INTO inbox (consumer, event_id) VALUES (%s, %s)"
                    " ON CONFLICT DO NOTHING", (SERVICE, ev["meta"]["event_id"]))
        if cur.rowcount == 0:
            return "duplicate"
        result = Shipping.HANDLERS[name](self.shipping, cur, ev)
        if result != Shipping.DEFER:
            return "handled"
        # Not processed after all: the inbox row goes, the message is kept whole.
        cur.execute("DELETE FROM inbox WHERE consumer = %s AND event_id = %s",
                    (SERVICE, ev["meta"]["event_id"]))
        if msg is not None:
            cur.execute("INSERT INTO deferred (consumer, wait_key, event_id, event_type, topic,"
                        " kpartition, koffset, msg_key, payload) VALUES"
                        " (%s, %s, %s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                        (SERVICE, ev["meta"]["order_id"], ev["meta"]["event_id"], name,
                         msg.topic(), msg.partition(), msg.offset(),
                         (msg.key() or b"").decode(), msg.value()))
        log("info", f"deferred {name} until its OrderPlaced", order_id=ev["meta"]["order_id"])
        return "deferred"

    def release_deferred(self, cur, order_id):
        """Runs again what was deferred for order_id (in the same transaction)."""
        cur.execute("SELECT id, payload FROM deferred WHERE consumer = %s AND wait_key = %s"
                    " ORDER BY id FOR UPDATE", (SERVICE, order_id))
        for row_id, payload in cur.fetchall():
            name, ev = self.schemas.decode(bytes(payload))
            if self.run_one(cur, name, ev) != "deferred":
                cur.execute("DELETE FROM deferred WHERE id = %s", (row_id,))
                self.count(name, "released")

    def handle(self, msg):
        """One message, one transaction. Raises on a transient failure (retried)."""
        try:
            name, ev = self.schemas.decode(msg.value() or b"")
        except OSError:
            raise  # the schema registry cannot be asked right now: transient
        except Exception as e:  # permanent: it will never decode
            return self.dead_letter(msg, "undecodable", str(e))
        if name not in Shipping.HANDLERS:
            self.count(name, "skipped")
            return
        with self.conn.transaction(), self.conn.cursor() as cur:
            outcome = self.run_one(cur, name, ev, msg)
            if outcome == "handled" and name in Shipping.RELEASES_DEFERRED:
                self.release_deferred(cur, ev["meta"]["order_id"])
        self.count(name, outcome)

    def dead_letter(self, msg, reason, error):
        headers = list(msg.headers() or []) + [
            ("dlq.reason", reason), ("dlq.error", error), ("dlq.consumer", SERVICE),
            ("dlq.source.topic", msg.topic()), ("dlq.source.partition", str(msg.partition())),
            ("dlq.source.offset", str(msg.offset())), ("dlq.attempts", "1"),
            ("dlq.first_failed_at", time.strftime("%Y-%m-%dT%H:%M:%S.000Z", time.gmtime()))]
        self.dlq.produce(DLQ_TOPIC, msg.value(), msg.key(), headers=headers)
        if self.dlq.flush(30) != 0:
            raise RuntimeError(f"{DLQ_TOPIC} did not acknowledge")
        log("error", f"sent to {DLQ_TOPIC}: {reason}: {error}")
        self.count("unknown", "dead_lettered")

    def run(self):
        self.connect()
        if self.stopping.is_set():
            return
        with self.conn.transaction():  # one migrator at a time: the C services' lock
            self.conn.execute("SELECT pg_advisory_xact_lock(7170001)")
            self.conn.execute(DDL)
        self.consumer.subscribe(TOPICS, on_assign=lambda c, p: self.joined.set())
        log("info", f"consuming {TOPICS} as {SERVICE}")
        while not self.stopping.is_set():
            msg = self.consumer.poll(0.5)
            if msg is None:
                continue
            if msg.error():
                if msg.error().fatal():
                    raise KafkaException(msg.error())
                log("warn", f"kafka: {msg.error()}")
                continue
            delay = 0.1
            while True:
                try:
                    self.handle(msg)
                    break
                except (psycopg.OperationalError, psycopg.errors.SerializationFailure,
                        psycopg.errors.DeadlockDetected, RuntimeError, OSError) as e:
                    # Transient: roll back (done by the transaction block), wait, retry.
                    log("warn", f"retrying in {delay:.1f}s: {e}")
                    if self.stopping.wait(delay):
                        return  # not committed: redelivered after the restart
                    delay = min(delay * 2, 30) * random.uniform(0.8, 1.2)
                    if self.conn.closed or self.conn.broken:
                        self.connect()
                except Exception as e:  # permanent: this event can never be handled
                    self.dead_letter(msg, "invalid", repr(e))
                    break
            # Only now, after the database commit: the next start resumes after it.
            try:
                self.consumer.commit(message=msg, asynchronous=False)
            except KafkaException as e:  # e.g. partition revoked: redelivered, then a duplicate
                log("warn", f"offset commit failed: {e}")

    def close(self):
        self.consumer.close()  # leaves the group cleanly
        self.dlq.flush(10)
        if self.conn:
            self.conn.close()


# --- HTTP: /healthz, /readyz, /metrics ------------------------------------------------

def serve_http(rt: Runtime):
    host, _, port = os.environ.get("HTTP_LISTEN", "127.0.0.1:8083").rpartition(":")

    class Handler(BaseHTTPRequestHandler):
        def reply(self, status, body, ctype="application/json"):
            data = body.encode()
            self.send_response(status)
            self.send_header("Content-Type", ctype)
            self.send_header("Content-Length", str(len(data)))
            self.end_headers()
            self.wfile.write(data)

        def do_GET(self):
            if self.path == "/healthz":
                self.reply(200, json.dumps({"status": "ok", "service": SERVICE}))
            elif self.path == "/readyz":
                db = rt.conn is not None and not rt.conn.closed and not rt.conn.broken
                ok = db and rt.joined.is_set() and not rt.stopping.is_set()
                self.reply(200 if ok else 503, json.dumps(
                    {"status": "ready" if ok else "not ready", "service": SERVICE,
                     "database": db, "consumer_joined": rt.joined.is_set()}))
            elif self.path == "/metrics":
                lines = ["# TYPE saga_consumer_joined gauge",
                         f'saga_consumer_joined{{service="{SERVICE}"}} {int(rt.joined.is_set())}',
                         "# TYPE saga_events_consumed_total counter"] + [
                    f'saga_events_consumed_total{{service="{SERVICE}",event_type="{t}",'
                    f'outcome="{o}"}} {n}' for (t, o), n in sorted(dict(rt.counts).items())]
                self.reply(200, "\n".join(lines) + "\n", "text/plain; version=0.0.4")
            else:
                self.reply(404, json.dumps({"error": "not_found"}))

        def log_message(self, *args):
            pass  # no access log

    server = ThreadingHTTPServer((host or "127.0.0.1", int(port)), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    log("info", f"listening on http://{host}:{port} (healthz, readyz, metrics)")
    return server


def main():
    rt = Runtime()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: rt.stopping.set())  # finish the message in hand, then stop
    server = serve_http(rt)
    try:
        rt.run()
    finally:
        rt.close()
        server.shutdown()
        log("info", "stopped")


if __name__ == "__main__":
    main()
