#!/usr/bin/env python3
"""A stand-in for the order API on 127.0.0.1 that records what clients send.

usage: capture_api.py PORTFILE LOG STATUSES
Answers the n-th POST with the n-th of STATUSES (comma-separated; the last one
repeats): 202 and 200 with an order, anything else with an API error. Appends
"METHOD PATH IDEMPOTENCY-KEY" per request to LOG; writes its port to PORTFILE.
"""
import json
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

portfile, log, statuses = sys.argv[1], sys.argv[2], [int(s) for s in sys.argv[3].split(",")]
seen = 0


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        global seen
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        with open(log, "a") as f:
            f.write("%s %s %s\n" % (self.command, self.path, self.headers.get("Idempotency-Key", "-")))
        status = statuses[min(seen, len(statuses) - 1)]
        seen += 1
        if status in (200, 202):
            body = {"order_id": "0b6f7c1a-2d3e-4f50-8a9b-c0d1e2f3a4b5", "status": "PENDING",
                    "total_amount": 1299, "currency": "EUR"}
        else:
            body = {"error": "unavailable", "message": "the database is unavailable; nothing was changed, retry later"}
        data = json.dumps(body, separators=(",", ":")).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if status == 503:
            self.send_header("Retry-After", "1")
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
with open(portfile + ".tmp", "w") as f:
    f.write(str(server.server_address[1]))
import os
os.rename(portfile + ".tmp", portfile)
server.serve_forever()
