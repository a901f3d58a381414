"""Real notice receivers for tests: an SMTP server (aiosmtpd) and an HTTP webhook (ThreadingHTTPServer).

Plain library (fixtures ``smtp`` and ``webhook`` in conftest.py use it).
"""

from __future__ import annotations

import email
import json
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import policy
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class SmtpSink:
    port: int
    messages: list[EmailMessage] = field(default_factory=list)
    envelopes: list[tuple[str, list[str]]] = field(default_factory=list)

    def url(self, to: str = "owner@example.com") -> str:
        # Plain SMTP, no TLS, no login: apprise's mailto:// with an IP host, mode=insecure.
        return f"mailto://127.0.0.1:{self.port}?from=fumewatch@example.com&to={to}&mode=insecure"

    def wait(self, n: int, timeout: float = 5.0) -> None:
        deadline = time.monotonic() + timeout
        while len(self.messages) < n and time.monotonic() < deadline:
            time.sleep(0.01)


class Webhook:
    """Collects JSON POSTs; ``script[path]`` is a list of status codes to answer in turn (then 200)."""

    def __init__(self) -> None:
        self.received: list[tuple[str, dict[str, str], dict[str, Any]]] = []  # answered 2xx
        self.hits: dict[str, int] = {}
        self.script: dict[str, list[int]] = {}
        self.hold: dict[str, threading.Event] = {}  # path -> released when set
        self.arrived = threading.Event()
        self.lock = threading.Lock()
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                n = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(n) or b"{}")
                path = self.path.split("?", 1)[0]
                with hook.lock:
                    hook.hits[path] = hook.hits.get(path, 0) + 1
                    codes = hook.script.get(path) or []
                    code = codes.pop(0) if codes else 200
                    gate = hook.hold.pop(path, None)
                hook.arrived.set()
                if gate is not None:
                    gate.wait(10)
                if 200 <= code < 300:
                    with hook.lock:
                        hook.received.append((path, dict(self.headers), body))
                self.send_response(code)
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.port = self.server.server_address[1]
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def url(self, path: str, userinfo: str = "") -> str:
        return f"json://{userinfo}127.0.0.1:{self.port}{path}"

    def bodies(self, path: str) -> list[dict[str, Any]]:
        return [b for p, _, b in self.received if p == path]

    def close(self) -> None:
        for gate in self.hold.values():
            gate.set()
        self.server.shutdown()
        self.server.server_close()


@contextmanager
def smtp_sink() -> Iterator[SmtpSink]:
    from aiosmtpd import controller as aiosmtpd_controller

    port = free_port()
    sink = SmtpSink(port)

    class Handler:
        async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
            sink.envelopes.append((envelope.mail_from, list(envelope.rcpt_tos)))
            sink.messages.append(email.message_from_bytes(envelope.original_content, policy=policy.default))
            return "250 OK"

    controller = aiosmtpd_controller.Controller(Handler(), hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield sink
    finally:
        controller.stop()


@contextmanager
def webhook_receiver() -> Iterator[Webhook]:
    hook = Webhook()
    try:
        yield hook
    finally:
        hook.close()
