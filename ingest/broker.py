"""An MQTT broker for the demo and single-machine runs: Mosquitto when it is on PATH, else amqtt in-process.

amqtt is the zero-install default (a pure-Python MQTT 3.1.1 broker); Mosquitto is faster and speaks
MQTT 5. Either listens on 127.0.0.1 on a free port and is stopped with ``stop()``.
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import socket
import subprocess
import tempfile
import threading
import time
from pathlib import Path

log = logging.getLogger("fumewatch.broker")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _wait_port(port: int, timeout_s: float) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.05)
    return False


class EmbeddedBroker:
    """``kind`` is "mosquitto" or "amqtt"; ``protocol`` the best MQTT version it speaks ("5"/"3.1.1")."""

    def __init__(self, prefer: str = "auto", port: int | None = None) -> None:
        self.port = port or free_port()
        self.kind = ""
        self.protocol = "3.1.1"
        self._proc: subprocess.Popen | None = None
        self._tmp: tempfile.TemporaryDirectory | None = None
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._broker = None
        self._prefer = prefer

    @property
    def url(self) -> str:
        return f"mqtt://127.0.0.1:{self.port}"

    def start(self) -> EmbeddedBroker:
        exe = shutil.which("mosquitto") or (
            "/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None
        )
        if self._prefer in ("auto", "mosquitto") and exe:
            self._start_mosquitto(exe)
        elif self._prefer == "mosquitto":
            raise RuntimeError("mosquitto is not installed (apt-get install mosquitto)")
        else:
            self._start_amqtt()
        return self

    def _start_mosquitto(self, exe: str) -> None:
        self._tmp = tempfile.TemporaryDirectory(prefix="fumewatch-mosquitto-")
        conf = Path(self._tmp.name) / "mosquitto.conf"
        conf.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "persistence false\n"
            "max_inflight_messages 1000\n"
            "max_queued_messages 1000000\n"
            f"log_dest file {self._tmp.name}/mosquitto.log\n"
        )
        self._proc = subprocess.Popen(
            [exe, "-c", str(conf)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )
        if not _wait_port(self.port, 10):
            self.stop()
            raise RuntimeError("mosquitto did not start listening within 10 s")
        self.kind, self.protocol = "mosquitto", "5"

    def _start_amqtt(self) -> None:
        ready = threading.Event()
        errors: list[BaseException] = []

        def run() -> None:
            loop = asyncio.new_event_loop()
            self._loop = loop
            asyncio.set_event_loop(loop)

            async def main() -> None:
                from amqtt.broker import Broker

                config = {
                    "listeners": {"default": {"type": "tcp", "bind": f"127.0.0.1:{self.port}"}},
                    "plugins": {
                        "amqtt.plugins.authentication.AnonymousAuthPlugin": {"allow_anonymous": True}
                    },
                }
                self._broker = Broker(config)
                await self._broker.start()

            try:
                loop.run_until_complete(main())
            except BaseException as exc:  # reported to the starting thread
                errors.append(exc)
                ready.set()
                return
            ready.set()
            loop.run_forever()

        logging.getLogger("amqtt").setLevel(logging.WARNING)
        self._thread = threading.Thread(target=run, name="amqtt-broker", daemon=True)
        self._thread.start()
        ready.wait(15)
        if errors:
            raise RuntimeError(f"amqtt broker failed to start: {errors[0]}")
        if not _wait_port(self.port, 10):
            raise RuntimeError("amqtt broker did not start listening within 10 s")
        self.kind, self.protocol = "amqtt", "3.1.1"

    def stop(self) -> None:
        if self._proc is not None:
            self._proc.terminate()
            try:
                self._proc.wait(5)
            except subprocess.TimeoutExpired:
                self._proc.kill()
                self._proc.wait(5)
            self._proc = None
        if self._loop is not None and self._broker is not None:
            fut = asyncio.run_coroutine_threadsafe(self._broker.shutdown(), self._loop)
            try:
                fut.result(10)
            except Exception:  # shutting down anyway
                log.debug("amqtt shutdown raised", exc_info=True)
            self._loop.call_soon_threadsafe(self._loop.stop)
            if self._thread is not None:
                self._thread.join(5)
            self._loop = None
            self._broker = None
        if self._tmp is not None:
            self._tmp.cleanup()
            self._tmp = None

    def __enter__(self) -> EmbeddedBroker:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
