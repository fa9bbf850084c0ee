#!/usr/bin/env python3
"""A deliberately wrong service for the conformance kit's own test: it answers
/healthz, /readyz and /metrics on HTTP_LISTEN like a service, and does nothing
else (no Kafka, no database), so every duty that needs an event must FAIL.
Stops on SIGTERM, and by itself after SILENT_TTL seconds (default 900)."""
import http.server
import os
import signal
import sys
import threading


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        if self.path in ("/healthz", "/readyz"):
            body, ctype = b'{"status":"ok"}\n', "application/json"
        elif self.path == "/metrics":
            body, ctype = b"silent_up 1\n", "text/plain; version=0.0.4"
        else:
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, fmt, *args):
        pass


def main():
    host, _, port = os.environ.get("HTTP_LISTEN", "127.0.0.1:8083").rpartition(":")
    server = http.server.ThreadingHTTPServer((host or "127.0.0.1", int(port)), Handler)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
    ttl = threading.Timer(float(os.environ.get("SILENT_TTL", "900")), os._exit, (0,))
    ttl.daemon = True
    ttl.start()
    print(f"silent service on {host}:{port}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
