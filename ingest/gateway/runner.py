"""Running the gateway: in the foreground (``fumewatch hj212-gateway``) or on a thread of its own beside
the ingest service (``fumewatch run`` with ``[gateway] listen``): an asyncio loop, the server and the
publisher, until told to stop."""

from __future__ import annotations

import asyncio
import logging
import threading

from ingest.config import Settings
from ingest.gateway.publisher import Publisher
from ingest.gateway.server import Gateway
from ingest.registry import Registry

log = logging.getLogger("fumewatch.gateway")


def parse_listen(text: str) -> tuple[str, int]:
    """``HOST:PORT`` (``[::1]:9212`` for IPv6) -> (host, port); a ValueError says what is wrong."""
    host, sep, port = text.strip().rpartition(":")
    if not sep or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise ValueError(f"--listen {text!r}: give HOST:PORT, e.g. 127.0.0.1:9212")
    return host.strip("[]") or "127.0.0.1", int(port)


class GatewayRunner:
    """The gateway on its own event loop thread; :attr:`address` once listening."""

    def __init__(self, settings: Settings, registry: Registry, listen: str) -> None:
        self.settings = settings
        self.registry = registry
        self.host, self.port = parse_listen(listen)
        self.gateway: Gateway | None = None
        self.address: tuple[str, int] | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._ready = threading.Event()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None

    def start(self, timeout_s: float = 10.0) -> None:
        self._thread = threading.Thread(target=self._run, name="hj212-gateway", daemon=True)
        self._thread.start()
        if not self._ready.wait(timeout_s):
            raise TimeoutError("the HJ 212 gateway did not start listening")
        if self._error is not None:
            raise self._error

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        publisher = Publisher(self.settings, loop)
        try:
            self.gateway = Gateway(self.settings, self.registry, publisher)
            server = loop.run_until_complete(self.gateway.start(self.host, self.port))
            self.address = server.sockets[0].getsockname()[:2]
        except BaseException as exc:  # the port is taken, a TLS file is missing ...
            self._error = exc
            self._ready.set()
            return
        publisher.start()
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            server.close()
            loop.run_until_complete(server.wait_closed())
            publisher.stop()
            loop.close()

    def stop(self) -> None:
        if self._loop is not None and self._loop.is_running():
            self._loop.call_soon_threadsafe(self._loop.stop)
        if self._thread is not None:
            self._thread.join(10)
