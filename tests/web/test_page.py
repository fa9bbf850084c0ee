#!/usr/bin/env python3
"""The live saga page of order-service (docs/WEB.md), on the test stack.

usage: test_page.py STACK_ENV ARTIFACT_DIR

1. GET /, /app.js, /style.css: content types, ETag (and 304), Cache-Control, CSP.
2. GET /events: an order placed through the API shows up as `event: timeline`
   messages with `id:` lines; Last-Event-ID resumes after that id.
3. Headless Chromium (Debian's /usr/bin/chromium driven by Playwright): the
   "Declined card" button places an order; without a reload the selected
   order's timeline shows CANCELLED / PAYMENT_FAILED and InventoryReleased.
   The screenshot is ARTIFACT_DIR/saga-page.png.
4. With the stack's tracing backend (TRACING_UI_URL in stack.env: the fixture runs
   `up --tracing`), the order's "Trace" link goes to TRACING_UI_URL/trace/<trace_id>
   of GET /orders/{id}; the test follows it and the backend's page for that trace
   is ARTIFACT_DIR/saga-trace.png. Without it, the page shows no trace link.

On the secured stack (ORDER_API_URL https://, ORDER_API_CACERT) all of it runs over
https: Python verifies the API's certificate with the stack's CA, and Chromium
trusts exactly the key of the certificate that CA verified (a pin), nothing else.
"""
import base64
import http.client
import json
import os
import re
import socket
import ssl
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request

CHROMIUM = os.environ.get("SAGA_CHROMIUM", "/usr/bin/chromium")
FAILED = []


def check(cond, what):
    print(("ok   " if cond else "FAIL ") + what, flush=True)
    if not cond:
        FAILED.append(what)
    return cond


def stack_env(path):
    env = {}
    with open(path) as f:
        for line in f:
            line = line.strip()
            if "=" in line and not line.startswith("#"):
                k, v = line.split("=", 1)
                env[k.removeprefix("export ").strip()] = v.strip().strip("'\"")
    return env


# The stack's operator token (stack.env), sent by every request below.
AUTH = {}
# https (the secured stack): a context that verifies the API with the stack's CA.
TLS = {}


def get(base, path, headers=None):
    req = urllib.request.Request(base + path, headers={**AUTH, **(headers or {})})
    try:
        with urllib.request.urlopen(req, timeout=10, **TLS) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def place(base, token="tok_visa"):
    body = json.dumps({
        "customer_id": "cust-alice", "currency": "EUR", "payment_token": token,
        "items": [{"sku": "sku-book", "quantity": 1}],
        "shipping_address": {"recipient": "Web Test", "line1": "Main Street 1",
                             "city": "Utrecht", "postal_code": "3511 AB", "country": "NL"}})
    req = urllib.request.Request(base + "/orders", data=body.encode(), method="POST",
                                 headers={"Content-Type": "application/json", **AUTH})
    with urllib.request.urlopen(req, timeout=10, **TLS) as r:
        return json.loads(r.read())["order_id"]


def test_assets(base):
    for path, ctype in (("/", "text/html"), ("/app.js", "text/javascript"),
                        ("/style.css", "text/css"), ("/favicon.svg", "image/svg+xml")):
        status, h, body = get(base, path)
        check(status == 200 and len(body) > 0, f"GET {path} is 200 with a body")
        check((h.get("Content-Type") or "").startswith(ctype),
              f"GET {path} Content-Type {h.get('Content-Type')!r} is {ctype}")
        check("default-src 'self'" in (h.get("Content-Security-Policy") or ""),
              f"GET {path} has a Content-Security-Policy with default-src 'self'")
        check(bool(h.get("Cache-Control")), f"GET {path} has Cache-Control")
        etag = h.get("ETag")
        if check(bool(etag), f"GET {path} has an ETag"):
            status, h2, body2 = get(base, path, {"If-None-Match": etag})
            check(status == 304 and not body2, f"GET {path} with If-None-Match is 304")
    status, _, body = get(base, "/")
    check(b"/app.js" in body and b"/style.css" in body, "the page loads app.js and style.css")
    check(b"http://" not in body and b"https://" not in body, "the page loads nothing from elsewhere")
    status, _, _ = get(base, "/nothing-here")
    check(status == 404, "GET /nothing-here is still 404")


class Stream:
    """GET /events read on a thread; lines collected."""

    def __init__(self, base, last_event_id=None):
        u = urllib.parse.urlsplit(base)
        if u.scheme == "https":
            self.conn = http.client.HTTPSConnection(u.hostname, u.port, timeout=30, **TLS)
        else:
            self.conn = http.client.HTTPConnection(u.hostname, u.port, timeout=30)
        headers = {"Accept": "text/event-stream", **AUTH}
        if last_event_id is not None:
            headers["Last-Event-ID"] = str(last_event_id)
        self.conn.request("GET", "/events", headers=headers)
        self.resp = self.conn.getresponse()
        self.messages = []  # (id, event, data)
        self.lock = threading.Lock()
        self.thread = threading.Thread(target=self._read, daemon=True)
        self.thread.start()

    def _read(self):
        ev = {}
        try:
            while True:
                line = self.resp.readline()
                if not line:
                    return
                line = line.decode().rstrip("\n")
                if line == "":
                    if "data" in ev:
                        with self.lock:
                            self.messages.append((ev.get("id"), ev.get("event", "message"),
                                                  ev["data"]))
                    ev = {}
                elif not line.startswith(":"):
                    k, _, v = line.partition(":")
                    ev[k] = v[1:] if v.startswith(" ") else v
        except Exception:
            return

    def wait(self, pred, timeout):
        end = time.time() + timeout
        while time.time() < end:
            with self.lock:
                for m in self.messages:
                    if pred(m):
                        return m
            time.sleep(0.1)
        return None

    def close(self):
        self.conn.close()


def test_events(base):
    s = Stream(base)
    check(s.resp.status == 200, "GET /events is 200")
    check((s.resp.getheader("Content-Type") or "").startswith("text/event-stream"),
          "GET /events is text/event-stream")
    time.sleep(0.3)
    order_id = place(base, "tok_chargeDeclined")

    def of(kind):
        return lambda m: (m[1] == "timeline" and json.loads(m[2])["order_id"] == order_id
                          and json.loads(m[2])["event_type"] == kind)

    placed = s.wait(of("OrderPlaced"), 10)
    check(placed is not None, "/events streams OrderPlaced of an order placed by the API")
    released = s.wait(of("InventoryReleased"), 30)
    check(released is not None, "/events streams the order's InventoryReleased")
    if placed:
        d = json.loads(placed[2])
        check(placed[0] is not None and placed[0].isdigit() and int(placed[0]) <= d["seq"],
              "each message has an id: line, at most its seq (the feed's low-water mark)")
        for k in ("order_id", "status", "reason", "compensation", "event_type", "service",
                  "summary", "occurred_at", "seq"):
            check(k in d, f"timeline data has {k}")
    if released:
        d = json.loads(released[2])
        check(d["status"] == "CANCELLED" and d["reason"] == "PAYMENT_FAILED",
              "InventoryReleased comes with status CANCELLED / PAYMENT_FAILED")
    s.close()
    if placed:
        # A reconnecting browser sends Last-Event-ID: it gets what followed, not the past
        # (the id is the feed's low-water mark: rows past it may come again, none up to it).
        r = Stream(base, last_event_id=placed[0])
        m = r.wait(lambda m: m[1] == "timeline" and json.loads(m[2])["order_id"] == order_id
                   and json.loads(m[2])["event_type"] != "OrderPlaced", 10)
        check(m is not None, "Last-Event-ID resumes: the order's next event comes")
        with r.lock:
            seqs = [json.loads(x[2])["seq"] for x in r.messages if x[1] == "timeline"]
        check(all(q > int(placed[0]) for q in seqs),
              f"nothing up to Last-Event-ID {placed[0]} comes again (seqs {seqs[:10]})")
        check(not any(x[1] == "resync" for x in r.messages), "and no resync")
        r.close()


def spki_pin(base):
    """The base64 SHA-256 of the public key of the certificate the API presents, once the
    stack's CA verified it (Chromium's --ignore-certificate-errors-spki-list format)."""
    u = urllib.parse.urlsplit(base)
    raw = socket.create_connection((u.hostname, u.port), timeout=10)
    with TLS["context"].wrap_socket(raw, server_hostname=u.hostname) as sock:
        der = sock.getpeercert(binary_form=True)
    pub = subprocess.run(["openssl", "x509", "-inform", "DER", "-pubkey", "-noout"],
                         input=der, capture_output=True, check=True).stdout
    spki = subprocess.run(["openssl", "pkey", "-pubin", "-outform", "DER"], input=pub,
                          capture_output=True, check=True).stdout
    digest = subprocess.run(["openssl", "dgst", "-sha256", "-binary"], input=spki,
                            capture_output=True, check=True).stdout
    return base64.b64encode(digest).decode()


def test_browser(base, artifacts, customer_token, tracing_ui=None):
    from playwright.sync_api import expect, sync_playwright

    shot = os.path.join(artifacts, "saga-page.png")
    os.makedirs(artifacts, exist_ok=True)
    problems = []
    with sync_playwright() as p:
        args = ["--no-sandbox"] if os.geteuid() == 0 else []
        if base.startswith("https:"):
            # The page over https: the browser trusts the API's own key and nothing else.
            args.append("--ignore-certificate-errors-spki-list=" + spki_pin(base))
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        # (The 503 the test injects below is logged by the browser itself: expected.)
        page.on("console", lambda m: m.type == "error" and "status of 503" not in m.text
                and problems.append(m.text))
        page.on("pageerror", lambda e: problems.append(str(e)))
        # Without a token the page asks for one and calls nothing but the catalogue.
        page.goto(base + "/")
        page.wait_for_selector("#feed-state[data-state=signed-out]", timeout=15000)
        check(True, "without a token the page asks for one")
        # Alice's token through the link's #token=, as scripts/stack prints it.
        page.goto("about:blank")
        page.goto(base + "/#token=" + customer_token)
        page.wait_for_selector("#feed-state[data-state=live]", timeout=15000)
        check("#token" not in page.url, "the token is taken out of the address bar")
        page.wait_for_selector("#f-sku option[value=sku-headphones]", state="attached",
                               timeout=15000)
        page.evaluate("window.__noReload = 42")
        # The first POST /orders fails with a 503: the page must send it again with the same
        # Idempotency-Key (a UUID of its own), so it never places an order twice.
        keys = []

        def first_post_fails(route, request):
            if request.method == "POST":
                keys.append(request.headers.get("idempotency-key"))
                if len(keys) == 1:
                    route.fulfill(status=503, content_type="application/json",
                                  body='{"error":"unavailable","message":"test: try again"}')
                    return
            route.continue_()

        page.route("**/orders", first_post_fails)
        page.get_by_role("button", name="Declined card").click()
        # (Locators, not wait_for_function: the page's CSP forbids eval.)
        expect(page.locator("#tl-status")).to_have_text("CANCELLED", timeout=30000)
        check(True, "the page shows the declined order CANCELLED")
        check("PAYMENT_FAILED" in page.text_content("#tl-reason"),
              "the page shows the reason PAYMENT_FAILED")
        page.wait_for_selector("#tl li[data-event-type=InventoryReleased].undo", timeout=30000)
        check(True, "the timeline shows InventoryReleased as a compensation")
        check(page.locator("#tl li[data-event-type=PaymentFailed].failure").count() == 1,
              "the timeline shows PaymentFailed as a failure")
        check(page.evaluate("window.__noReload") == 42, "the page was not reloaded")
        uuid = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$")
        check(len(keys) == 2 and keys[0] == keys[1] and uuid.match(keys[0] or ""),
              f"the page sent an Idempotency-Key and kept it on its retry: {keys}")
        order_id = page.text_content("#tl-order")
        row = page.locator(f"#orders tr[data-order-id='{order_id}']")
        check(row.count() == 1 and "CANCELLED" in row.inner_text(),
              "the order list shows the order CANCELLED")
        # The order's trace in the tracing backend's UI (GET /orders/{id}: trace_url).
        link = page.locator("#tl-trace")
        if tracing_ui:
            expect(link).to_be_visible(timeout=10000)
            href = link.get_attribute("href") or ""
            order = json.loads(get(base, "/orders/" + order_id)[2])
            check(re.fullmatch(re.escape(tracing_ui.rstrip("/")) + r"/trace/[0-9a-f]{32}", href) is not None
                  and href.endswith("/trace/" + (order.get("trace_id") or "-")),
                  f"the order links its trace in the tracing UI: {href}")
        else:
            check(not link.is_visible(), "without a tracing UI the page shows no trace link")
        page.wait_for_timeout(500)
        page.screenshot(path=shot, full_page=True)
        if tracing_ui and link.is_visible():
            trace_page = browser.new_page(viewport={"width": 1400, "height": 700})
            trace_page.goto(link.get_attribute("href"))
            expect(trace_page.locator("#title")).to_have_text(re.compile("^Trace [0-9a-f]{32}$"),
                                                              timeout=15000)
            # Spans arrive within a second or two of the work; the page polls until then.
            try:
                trace_page.wait_for_selector("#trace tr.span", timeout=10000)
                spans = trace_page.locator("#trace tr.span").count()
            except Exception:
                spans = 0
            print(f"the trace page shows {spans} spans of the order", flush=True)
            check(spans > 0 or trace_page.locator("#no-spans").count() == 1,
                  "the tracing UI shows the order's trace (or says it has no spans yet): "
                  + trace_page.locator("#main").inner_text()[:200])
            trace_page.screenshot(path=os.path.join(artifacts, "saga-trace.png"), full_page=True)
        browser.close()
    check(not problems, "no console errors or CSP violations: " + "; ".join(problems))
    print(f"screenshot: {shot}", flush=True)


def main():
    if len(sys.argv) != 3:
        print(__doc__, file=sys.stderr)
        return 2
    env = stack_env(sys.argv[1])
    base = env["ORDER_API_URL"].rstrip("/")
    if env.get("STACK_OPERATOR_TOKEN"):
        AUTH["Authorization"] = "Bearer " + env["STACK_OPERATOR_TOKEN"]
    if base.startswith("https:"):
        TLS["context"] = ssl.create_default_context(cafile=env["ORDER_API_CACERT"])
        check(True, f"the API is {base}, verified with {env['ORDER_API_CACERT']}")
    artifacts = sys.argv[2]
    test_assets(base)
    test_events(base)
    try:
        test_browser(base, artifacts, env.get("STACK_TOKEN_CUST_ALICE", ""), env.get("TRACING_UI_URL"))
    except Exception as e:  # a timeout names what did not appear
        check(False, f"browser: {type(e).__name__}: {e}")
    total = 0 if FAILED else 1
    print(f"web_page: {len(FAILED)} failed" if FAILED else "web_page: all checks passed")
    print(f"{total} passed, {1 - total} failed")
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
