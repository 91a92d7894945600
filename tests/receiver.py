"""A local webhook receiver on 127.0.0.1 that can fail, hang, and recover on command."""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def verify(secret: str, header: str, body: bytes, tolerance: float = 300) -> bool:
    """Check an ``X-Anning-Signature`` header the way docs/webhooks.md tells receivers to."""
    parts = dict(item.split("=", 1) for item in header.split(","))
    timestamp = int(parts["t"])
    expected = hmac.new(secret.encode(), f"{timestamp}.".encode() + body, hashlib.sha256)
    return hmac.compare_digest(expected.hexdigest(), parts["v1"]) and (
        abs(time.time() - timestamp) <= tolerance
    )


@dataclass
class Delivery:
    """One POST as the receiver saw it."""

    delivery_id: str
    signature: str
    body: bytes
    accepted: bool
    host: str = ""  # the Host header it came with

    @property
    def payload(self) -> dict[str, Any]:
        """Return the JSON body."""
        return json.loads(self.body)  # type: ignore[no-any-return]

    @property
    def seqs(self) -> list[int]:
        """Return the feed numbers delivered."""
        return [c["seq"] for c in self.payload["changes"]]


@dataclass
class Receiver:
    """``mode``: ``ok`` (204), ``fail`` (500) or ``hang`` (no answer in time: not acknowledged).

    Every mode first waits ``delay`` seconds (a slow receiver).
    """

    mode: str = "ok"
    delay: float = 0.0
    deliveries: list[Delivery] = field(default_factory=list)

    def __post_init__(self) -> None:
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["Content-Length"]))
                mode = receiver.mode
                time.sleep(receiver.delay)
                accepted = mode == "ok"
                receiver.deliveries.append(
                    Delivery(
                        self.headers.get("X-Anning-Delivery", ""),
                        self.headers.get("X-Anning-Signature", ""),
                        body,
                        accepted,
                        self.headers.get("Host", ""),
                    )
                )
                try:
                    self.send_response(204 if accepted else 500)
                    self.end_headers()
                except OSError:
                    pass  # the worker gave up waiting: that is the point of "hang"

            def log_message(self, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}/hook"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def accepted_seqs(self) -> set[int]:
        """Return every feed number the receiver acknowledged."""
        return {s for d in list(self.deliveries) if d.accepted for s in d.seqs}

    def close(self) -> None:
        """Stop serving."""
        self.server.shutdown()
        self.server.server_close()
