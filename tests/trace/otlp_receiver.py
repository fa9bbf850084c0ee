#!/usr/bin/env python3
"""An OTLP/HTTP receiver (JSON encoding) for the trace tests: it takes
POST /v1/traces as a collector does (ExportTraceServiceRequest in JSON, answered
with an empty ExportTraceServiceResponse) and keeps every span, flattened, for
GET /spans. Standard library only; listens on 127.0.0.1.

    otlp_receiver.py PORT             serve until killed
    otlp_receiver.py PORT --discard   answer 200 and keep nothing (a sink for the benchmark:
                                      it parses nothing, so it costs the machine little)

The test uses it when no real backend is given (SAGA_TRACE_RECEIVER, see
test_traces.py); it checks the request as a collector would (path, content
type, hex ids of the right length, a resource with service.name).
"""
import json
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


def _value(v):
    for k in ("stringValue", "boolValue", "doubleValue"):
        if k in v:
            return v[k]
    if "intValue" in v:
        return int(v["intValue"])
    return v


def flatten(body):
    """The spans of an ExportTraceServiceRequest as plain dicts; raises ValueError
    on what a collector would refuse."""
    out = []
    for rs in body["resourceSpans"]:
        res = {a["key"]: _value(a["value"]) for a in rs["resource"]["attributes"]}
        if not res.get("service.name"):
            raise ValueError("a resource without service.name")
        for ss in rs["scopeSpans"]:
            for s in ss["spans"]:
                if len(s["traceId"]) != 32 or len(s["spanId"]) != 16:
                    raise ValueError("ids are not hex of 16 and 8 bytes: %r" % s)
                int(s["traceId"], 16)
                int(s["spanId"], 16)
                if s.get("parentSpanId") and len(s["parentSpanId"]) != 16:
                    raise ValueError("bad parentSpanId %r" % s["parentSpanId"])
                out.append({
                    "service": res["service.name"],
                    "trace_id": s["traceId"],
                    "span_id": s["spanId"],
                    "parent_id": s.get("parentSpanId") or "",
                    "name": s["name"],
                    "kind": s.get("kind", 0),
                    "start": int(s["startTimeUnixNano"]),
                    "end": int(s["endTimeUnixNano"]),
                    "attrs": {a["key"]: _value(a["value"]) for a in s.get("attributes", [])},
                    "status": s.get("status", {}),
                })
    return out


class Receiver:
    """The receiver in a thread of the caller's process: start(), stop() (the port is
    closed: the programs see a collector that is not listening), spans()."""

    def __init__(self, port=0, discard=False):
        self.port = port
        self.discard = discard
        self._spans = []
        self._lock = threading.Lock()
        self._server = None
        self.requests = 0

    def start(self):
        recv = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                n = int(self.headers.get("Content-Length") or 0)
                data = self.rfile.read(n)
                if recv.discard:
                    recv.requests += 1
                    self.send_response(200)
                    self.send_header("Content-Length", "2")
                    self.end_headers()
                    self.wfile.write(b"{}")
                    return
                if self.path != "/v1/traces" or not (self.headers.get("Content-Type") or "").startswith("application/json"):
                    self.send_response(415 if self.path == "/v1/traces" else 404)
                    self.end_headers()
                    return
                try:
                    spans = flatten(json.loads(data))
                except (ValueError, KeyError, TypeError) as e:
                    body = json.dumps({"code": 3, "message": str(e)}).encode()
                    self.send_response(400)
                    self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    self.wfile.write(body)
                    return
                with recv._lock:
                    recv._spans.extend(spans)
                    recv.requests += 1
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def do_GET(self):
                if self.path != "/spans":
                    self.send_response(404)
                    self.end_headers()
                    return
                body = json.dumps(recv.spans()).encode()
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        ThreadingHTTPServer.allow_reuse_address = True
        self._server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        self.port = self._server.server_address[1]
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self

    def stop(self):
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def spans(self):
        with self._lock:
            return list(self._spans)


if __name__ == "__main__":
    r = Receiver(int(sys.argv[1]) if len(sys.argv) > 1 else 4318, "--discard" in sys.argv).start()
    print("listening on 127.0.0.1:%d" % r.port, flush=True)
    threading.Event().wait()
