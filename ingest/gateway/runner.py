"""Running the gateway: in the foreground (``fumewatch hj212-gateway``) or on a thread of its own beside
the ingest service (``fumewatch run`` with ``[gateway] listen``): an asyncio loop, the server, the
publisher and the connections' status (ingest/gateway/status.py), until told to stop.

Stopping: the server stops listening, the open connections are closed (their handlers cancelled: a frame
waiting for the broker's acknowledgement is not answered, so the logger sends it again), their rows are
written as ended, then the broker session ends.
"""

from __future__ import annotations

import asyncio
import logging
import threading

from ingest.config import Settings
from ingest.config_gateway import parse_host_port
from ingest.gateway.publisher import Publisher
from ingest.gateway.server import Gateway
from ingest.gateway.status import StatusWatch, StatusWriter, instance_name
from ingest.registry import Registry

log = logging.getLogger("fumewatch.gateway")

#: Seconds the open connections get to close when the gateway stops.
CLOSE_TIMEOUT_S = 5.0


def parse_listen(text: str) -> tuple[str, int]:
    """``--listen HOST:PORT``: an empty host is 127.0.0.1, port 0 lets the system pick."""
    return parse_host_port(text, "--listen", default_host="127.0.0.1", any_port=True)


class GatewayRunner:
    """The gateway on its own event loop thread; :attr:`address` once listening.

    ``state``: the state database the connections are written to (``gateway_connections``, every
    ``[gateway] status_interval_s``); None or a status interval of 0: not written."""

    def __init__(self, settings: Settings, registry: Registry, listen: str, state: str | None = None) -> None:
        self.settings = settings
        self.registry = registry
        self.host, self.port = parse_listen(listen)
        self.state = state if settings.gateway.status_interval_s else None
        self.gateway: Gateway | None = None
        self.publisher: Publisher | None = None
        self.watch: StatusWatch | None = None
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

    @property
    def listen_text(self) -> str:
        host, port = self.address or (self.host, self.port)
        return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"

    def listening(self) -> bool:
        server = self.gateway.server if self.gateway is not None else None
        return server is not None and server.is_serving()

    def broker_down_for(self) -> float:
        return self.watch.broker_down_for() if self.watch is not None else 0.0

    @property
    def status_writer(self) -> StatusWriter | None:
        return self.watch.writer if self.watch is not None else None

    def _run(self) -> None:
        loop = self._loop = asyncio.new_event_loop()
        asyncio.set_event_loop(loop)
        publisher = self.publisher = Publisher(self.settings, loop)
        server = None
        try:
            self.gateway = Gateway(self.settings, self.registry, publisher)
            server = loop.run_until_complete(self.gateway.start(self.host, self.port))
            self.address = server.sockets[0].getsockname()[:2]
            instance = instance_name(self.address[1])
            writer = StatusWriter(self.state, instance).start() if self.state else None
            self.watch = StatusWatch(self.gateway, writer, self.settings.gateway.status_interval_s, instance)
            self.watch.start(loop)
            publisher.start()
        except BaseException as exc:  # the port is taken, a TLS file is missing ...
            self._error = exc
            if server is not None:
                server.close()
            if self.watch is not None and self.watch.writer is not None:
                self.watch.writer.close()
            loop.close()
            self._ready.set()
            return
        self._ready.set()
        try:
            loop.run_forever()
        finally:
            self._shutdown(loop, server)

    def _shutdown(self, loop: asyncio.AbstractEventLoop, server: asyncio.base_events.Server) -> None:
        server.close()
        loop.set_exception_handler(_quiet_cancelled)
        handlers = [t for t in asyncio.all_tasks(loop) if not t.done()]
        for task in handlers:
            task.cancel()
        if handlers:
            loop.run_until_complete(asyncio.wait(handlers, timeout=CLOSE_TIMEOUT_S))
        loop.run_until_complete(server.wait_closed())
        n = len(self.gateway.connections) if self.gateway is not None else 0
        if n:
            log.warning("event=gateway_connections_not_closed connections=%d", n)
        try:
            if self.watch is not None:
                self.watch.close()
        finally:
            self.publisher.stop()
            loop.close()
            log.info("event=gateway_stopped listen=%s", self.listen_text)

    def stop(self) -> None:
        """Stop the gateway and wait for its thread (idempotent)."""
        loop = self._loop
        if loop is not None and not loop.is_closed():
            try:
                loop.call_soon_threadsafe(loop.stop)
            except RuntimeError:  # closed meanwhile
                pass
        if self._thread is not None and self._thread is not threading.current_thread():
            self._thread.join(CLOSE_TIMEOUT_S + 15)


def _quiet_cancelled(loop: asyncio.AbstractEventLoop, context: dict) -> None:
    """Python 3.11's start_server callback asks a cancelled handler task for its exception and logs the
    CancelledError that raises ("Exception in callback ..."): that is the stop, not an error (3.12 checks
    ``task.cancelled()`` first). Everything else goes to the default handler."""
    if isinstance(context.get("exception"), asyncio.CancelledError):
        return
    loop.default_exception_handler(context)
