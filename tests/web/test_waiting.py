#!/usr/bin/env python3
"""The saga page's "waiting for" line (docs/WEB.md), for an order whose saga waits.

usage: test_waiting.py STACK_ENV ORDER_ID SERVICE EVENTS ARTIFACT_DIR

Headless Chromium opens the page with the customer's token, selects ORDER_ID in the
list and expects under its timeline "waiting for SERVICE (EVENTS), times out in N s",
N counting down without a reload. Run by tests/integration/it_explain.sh with
payment-service stopped. The screenshot is ARTIFACT_DIR/saga-page-waiting.png.
"""
import os
import re
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from test_page import CHROMIUM, FAILED, check, stack_env  # noqa: E402


def main():
    if len(sys.argv) != 6:
        print(__doc__, file=sys.stderr)
        return 2
    env = stack_env(sys.argv[1])
    order_id, service, events, artifacts = sys.argv[2:6]
    base = env["ORDER_API_URL"].rstrip("/")
    from playwright.sync_api import expect, sync_playwright

    os.makedirs(artifacts, exist_ok=True)
    want = f"waiting for {service} ({events}), times out in "
    with sync_playwright() as p:
        args = ["--no-sandbox"] if os.geteuid() == 0 else []
        browser = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=args)
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        page.goto(base + "/#token=" + env.get("STACK_TOKEN_CUST_ALICE", ""))
        page.wait_for_selector("#feed-state[data-state=live]", timeout=15000)
        page.locator(f"#orders tr[data-order-id='{order_id}'] button").click(timeout=15000)
        line = page.locator("#tl-waiting")
        try:
            expect(line).to_contain_text(want, timeout=15000)
        except AssertionError:
            pass
        first = line.text_content() or ""
        check(first.startswith(want), f"the page says {want!r}…: {first!r}")
        page.wait_for_timeout(2500)
        second = line.text_content() or ""
        n1 = re.search(r"times out in (\d+) s", first)
        n2 = re.search(r"times out in (\d+) s", second)
        check(bool(n1 and n2) and int(n2.group(1)) < int(n1.group(1)),
              f"and counts down live: {first!r} then {second!r}")
        page.screenshot(path=os.path.join(artifacts, "saga-page-waiting.png"), full_page=True)
        browser.close()
    print("test_waiting: " + ("all checks passed" if not FAILED else f"{len(FAILED)} failed"))
    return 1 if FAILED else 0


if __name__ == "__main__":
    sys.exit(main())
