#!/usr/bin/env python3
"""A deliberately wrong shipping service for the conformance kit's own test
(kit_fails.sh): the Python example (examples/shipping-python) with four faults, one
for each duty a service can get wrong while doing everything else right, so each of
those checks must FAIL, with its reason:

  - it takes a blank street, city or postal code, or a country of three letters, for
    a good address (ShipmentScheduled where INVALID_ADDRESS is due);
  - every event it emits starts a new trace instead of a child of its cause's span;
  - it drops a message it cannot decode instead of dead-lettering it;
  - it commits each offset only 3 s after handling the message, and not at all when
    it stops: after SIGTERM the group's offsets lag behind what it handled.

Run it with the example's virtualenv: `$(examples/shipping-python/run --venv) broken-shipping.py`.
"""
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[2] / "examples" / "shipping-python"))
import shipping_service as example  # noqa: E402

COMMIT_DELAY = 3.0  # seconds between handling a message and committing its offset


def placed_any_address(self, cur, ev):
    a = ev["shipping_address"]
    for field in ("line1", "city", "postal_code"):
        if not (a.get(field) or "").strip():
            a[field] = "somewhere"
    a["country"] = (a.get("country") or "NL")[:2]
    return placed_as_example(self, cur, ev)


def emit_new_trace(self, cur, name, cause, body):
    cause = {**cause, "meta": {**cause["meta"], "traceparent": None}}
    return emit_as_example(self, cur, name, cause, body)


def drop_dead_letter(self, msg, reason, error):
    example.log("warn", f"dropped a message at {msg.topic()}[{msg.partition()}]@{msg.offset()}"
                f" ({reason}: {error}) instead of dead-lettering it")


class LateCommits:
    """The example's consumer, whose commits lag COMMIT_DELAY behind and are dropped on close."""

    def __init__(self, consumer):
        self.consumer = consumer
        self.pending = []  # (when handled, message)

    def __getattr__(self, name):
        return getattr(self.consumer, name)

    def commit(self, message=None, asynchronous=False):
        self.pending.append((time.monotonic(), message))

    def poll(self, timeout):
        now = time.monotonic()
        while self.pending and now - self.pending[0][0] >= COMMIT_DELAY:
            _, msg = self.pending.pop(0)
            try:
                self.consumer.commit(message=msg, asynchronous=False)
            except example.KafkaException as e:
                example.log("warn", f"offset commit failed: {e}")
        return self.consumer.poll(timeout)

    def close(self):
        self.consumer.close()  # what is pending is never committed


class BrokenRuntime(example.Runtime):
    def __init__(self):
        super().__init__()
        self.consumer = LateCommits(self.consumer)


placed_as_example = example.Shipping.on_order_placed
emit_as_example = example.Shipping.emit
example.Shipping.HANDLERS["OrderPlaced"] = placed_any_address
example.Shipping.emit = emit_new_trace
example.Runtime.dead_letter = drop_dead_letter
example.Runtime = BrokenRuntime

if __name__ == "__main__":
    example.main()
