"""Real servers for integration tests: Mosquitto, InfluxDB 1.x and a test-only /api/v2/write relay.

Plain library, no pytest inside (fixtures live in ``tests/conftest.py``). Every server gets a free port
on 127.0.0.1 and keeps its config, log and data files in the directory the caller hands in; stopping a
server ends its process (terminate, wait, kill on timeout) and deletes nothing.

Public names:
    free_port, wait_port, find_mosquitto, find_influxd, docker_available, docker_unavailable_reason,
    MosquittoServer, InfluxDB1Server, V2WriteRelay, ServerStartError
"""

from __future__ import annotations

import atexit
import contextlib
import functools
import gzip
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import zlib
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

__all__ = [
    "InfluxDB1Server",
    "MosquittoServer",
    "ServerStartError",
    "V2WriteRelay",
    "docker_available",
    "docker_unavailable_reason",
    "find_influxd",
    "find_mosquitto",
    "free_port",
    "wait_port",
]

LOCALHOST = "127.0.0.1"

# ---------------------------------------------------------------------------------------------------------
# small helpers
# ---------------------------------------------------------------------------------------------------------


class ServerStartError(RuntimeError):
    """A server did not come up; the message carries the tail of its log."""


_HANDED_OUT: set[int] = set()


def free_port(host: str = LOCALHOST) -> int:
    """Return a TCP port that is free on ``host`` right now (the usual bind-to-0 trick), never one this
    process handed out before: two calls in a row (a server's port and its metrics port) may otherwise
    get the same port back, since nothing holds the first one yet."""
    for _ in range(100):
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
            sock.bind((host, 0))
            port = int(sock.getsockname()[1])
        if port not in _HANDED_OUT:
            _HANDED_OUT.add(port)
            return port
    return port


def wait_port(host: str, port: int, timeout: float = 10.0, *, interval_s: float = 0.05) -> bool:
    """Wait until a TCP connect to ``host:port`` succeeds; True if it did within ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            with socket.create_connection((host, port), timeout=1.0):
                return True
        except OSError:
            if time.monotonic() >= deadline:
                return False
            time.sleep(interval_s)


def publish_mqtt(url: str, items: list[tuple[str, bytes]], timeout_s: float = 10.0) -> None:
    """Publish ``(topic, payload)`` pairs at QoS 1 to the broker at ``mqtt://host:port`` as a monitor
    would, waiting for every PUBACK."""
    import paho.mqtt.client as mqtt

    host, port = url.removeprefix("mqtt://").split(":")
    c = mqtt.Client(
        mqtt.CallbackAPIVersion.VERSION2, client_id=f"pub-{time.monotonic_ns()}", protocol=mqtt.MQTTv5
    )
    c.connect(host, int(port))
    c.loop_start()
    try:
        for info in [c.publish(t, p, qos=1) for t, p in items]:
            info.wait_for_publish(timeout_s)
    finally:
        c.loop_stop()
        c.disconnect()


def wait_for(
    pred: Callable[[], object], timeout: float = 30.0, what: str = "condition", interval_s: float = 0.05
) -> None:
    """Poll ``pred`` until it is true; AssertionError naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return
        time.sleep(interval_s)
    raise AssertionError(f"{what} not met within {timeout} s")


def find_mosquitto() -> str | None:
    """Path of the mosquitto broker binary (Debian puts it in /usr/sbin, often not on a user's PATH)."""
    return shutil.which("mosquitto") or _executable("/usr/sbin/mosquitto")


def find_influxd() -> str | None:
    """Path of the InfluxDB 1.x server binary."""
    return shutil.which("influxd") or _executable("/usr/bin/influxd")


def _executable(path: str) -> str | None:
    return path if os.path.isfile(path) and os.access(path, os.X_OK) else None


def _tail(path: Path, lines: int = 40) -> str:
    try:
        text = path.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return f"(no file {path})"
    return "\n".join(text.splitlines()[-lines:]) or f"({path} is empty)"


def _toml_str(value: object) -> str:
    """A TOML basic string (JSON escaping is a valid subset for paths and addresses)."""
    return json.dumps(str(value))


# A server object may be dropped without stop() when a test run dies half way; never leave
# daemons behind in that case.
_LIVE_PROCS: set[subprocess.Popen[bytes]] = set()
_LIVE_LOCK = threading.Lock()


def _stop_process(proc: subprocess.Popen[bytes], timeout: float) -> int | None:
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(timeout=10)
    with _LIVE_LOCK:
        _LIVE_PROCS.discard(proc)
    return proc.returncode


@atexit.register
def _stop_leftovers() -> None:
    with _LIVE_LOCK:
        procs = list(_LIVE_PROCS)
    for proc in procs:
        with contextlib.suppress(Exception):
            _stop_process(proc, timeout=5)


class _ServerProcess:
    """Common lifecycle of one child server process with stdout/stderr going to a file."""

    name = "server"
    host = LOCALHOST

    def __init__(self, tmpdir: str | os.PathLike[str], port: int | None) -> None:
        self.tmpdir = Path(tmpdir).resolve()
        self.tmpdir.mkdir(parents=True, exist_ok=True)
        self._port = port if port is not None else free_port()
        self._proc: subprocess.Popen[bytes] | None = None
        self.output_path = self.tmpdir / f"{self.name}.out"

    # subclasses provide these
    def _argv(self) -> list[str]:
        raise NotImplementedError

    def _write_config(self) -> None:
        raise NotImplementedError

    def _ready(self) -> bool:
        raise NotImplementedError

    def _env(self) -> dict[str, str]:
        return dict(os.environ)

    def _log_tail(self) -> str:
        return f"--- {self.output_path} ---\n{_tail(self.output_path)}"

    @property
    def port(self) -> int:
        return self._port

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc is not None else None

    @property
    def is_running(self) -> bool:
        return self._proc is not None and self._proc.poll() is None

    def start(self, timeout: float = 10.0) -> _ServerProcess:
        """Start the process and wait until it answers; raise ServerStartError with the log tail if not."""
        if self.is_running:
            return self
        if wait_port(self.host, self.port, timeout=0):
            # otherwise the readiness probe would happily talk to whoever owns the port
            raise ServerStartError(f"{self.name}: port {self.host}:{self.port} is already in use")
        self._write_config()
        with open(self.output_path, "ab") as out:
            self._proc = subprocess.Popen(
                self._argv(),
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=subprocess.STDOUT,
                cwd=self.tmpdir,
                env=self._env(),
                start_new_session=True,  # Ctrl-C in the terminal goes to pytest, which then stops us cleanly
            )
        with _LIVE_LOCK:
            _LIVE_PROCS.add(self._proc)
        deadline = time.monotonic() + timeout
        while True:
            code = self._proc.poll()
            if code is not None:
                _stop_process(self._proc, timeout=1)  # reaped already; just forget it
                self._proc = None
                raise ServerStartError(
                    f"{self.name} exited with status {code} on port {self.port}\n{self._log_tail()}"
                )
            if self._ready():
                return self
            if time.monotonic() >= deadline:
                self.stop()
                raise ServerStartError(
                    f"{self.name} not ready on port {self.port} after {timeout:g} s\n{self._log_tail()}"
                )
            time.sleep(0.05)

    def stop(self, timeout: float = 10.0) -> int | None:
        """Terminate, wait up to ``timeout`` s, kill if still alive. Returns the exit status (None if not started)."""
        proc, self._proc = self._proc, None
        if proc is None:
            return None
        return _stop_process(proc, timeout)

    def restart(self, timeout: float = 10.0) -> _ServerProcess:
        """Stop and start again on the same port with the same config and data directories."""
        self.stop()
        return self.start(timeout=timeout)

    def __enter__(self) -> Any:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = f"pid={self.pid}" if self.is_running else "stopped"
        return f"<{type(self).__name__} {self.host}:{self.port} {state}>"


# ---------------------------------------------------------------------------------------------------------
# Mosquitto
# ---------------------------------------------------------------------------------------------------------


class MosquittoServer(_ServerProcess):
    """A private mosquitto broker on 127.0.0.1:PORT, config/log/persistence in ``tmpdir``.

    ``extra_conf`` is appended verbatim to the generated mosquitto.conf (e.g. ``"log_type all"`` for per
    message logs, ``"max_queued_messages 10"``). ``restart()`` keeps port and persistence directory, so a
    persistent session with queued QoS>0 messages survives it when ``persistence=True``.
    """

    name = "mosquitto"

    def __init__(
        self,
        tmpdir: str | os.PathLike[str],
        *,
        port: int | None = None,
        persistence: bool = False,
        extra_conf: str = "",
        password_file: str | os.PathLike[str] | None = None,
        acl_file: str | os.PathLike[str] | None = None,
        allow_anonymous: bool = True,
        binary: str | None = None,
    ) -> None:
        super().__init__(tmpdir, port)
        found = binary or find_mosquitto()
        if found is None:
            raise FileNotFoundError("mosquitto not installed: apt-get install mosquitto")
        self.binary = found
        self.persistence = persistence
        self.extra_conf = extra_conf
        self.password_file = Path(password_file).resolve() if password_file else None
        self.acl_file = Path(acl_file).resolve() if acl_file else None
        self.allow_anonymous = allow_anonymous
        self.conf_path = self.tmpdir / "mosquitto.conf"
        self.log_path = self.tmpdir / "mosquitto.log"
        self.persistence_dir = self.tmpdir / "persistence"

    @property
    def url(self) -> str:
        return f"mqtt://{self.host}:{self.port}"

    def config_text(self) -> str:
        lines = [
            "# generated by tests/servers.py",
            # Started as root, mosquitto 2 switches to user 'mosquitto' before it opens the log file and
            # the persistence db, and cannot write into a root-owned 0700 temp dir. 'user root' = stay.
            *(["user root"] if hasattr(os, "geteuid") and os.geteuid() == 0 else []),
            f"persistence {'true' if self.persistence else 'false'}",
            # trailing slash: mosquitto 1.x concatenates location and file name
            f"persistence_location {self.persistence_dir}/",
            "persistence_file mosquitto.db",
            "autosave_interval 1",
            f"log_dest file {self.log_path}",
            "log_type error",
            "log_type warning",
            "log_type notice",
            "log_type information",
            "log_type subscribe",
            "log_type unsubscribe",
            "connection_messages true",
            "log_timestamp true",
            "log_timestamp_format %Y-%m-%dT%H:%M:%S",
            f"listener {self.port} {self.host}",
            # mosquitto 2 refuses anonymous clients by default once a listener is configured
            f"allow_anonymous {'true' if self.allow_anonymous else 'false'}",
        ]
        if self.password_file is not None:
            lines.append(f"password_file {self.password_file}")
        if self.acl_file is not None:
            lines.append(f"acl_file {self.acl_file}")
        if self.extra_conf:
            lines += ["# extra_conf", self.extra_conf.strip()]
        return "\n".join(lines) + "\n"

    def _write_config(self) -> None:
        self.persistence_dir.mkdir(parents=True, exist_ok=True)
        self.conf_path.write_text(self.config_text(), encoding="utf-8")

    def _argv(self) -> list[str]:
        return [self.binary, "-c", str(self.conf_path)]

    def _ready(self) -> bool:
        return wait_port(self.host, self.port, timeout=0)

    def _log_tail(self) -> str:
        return f"{super()._log_tail()}\n--- {self.log_path} ---\n{_tail(self.log_path)}"

    def log_text(self) -> str:
        """The broker's log file (plus anything it printed to stdout/stderr before logging was set up)."""
        parts = []
        for path in (self.output_path, self.log_path):
            with contextlib.suppress(OSError):
                parts.append(path.read_text(encoding="utf-8", errors="replace"))
        return "".join(parts)

    def start(self, timeout: float = 10.0) -> MosquittoServer:
        super().start(timeout)
        return self

    def restart(self, timeout: float = 10.0) -> MosquittoServer:
        super().restart(timeout)
        return self

    def __enter__(self) -> MosquittoServer:
        return self.start()


# ---------------------------------------------------------------------------------------------------------
# InfluxDB 1.x
# ---------------------------------------------------------------------------------------------------------

# urllib honours http_proxy/HTTP_PROXY; never send 127.0.0.1 traffic through a proxy from the environment.
_NO_PROXY_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


class InfluxDB1Server(_ServerProcess):
    """A private ``influxd`` (1.x, tested with Debian's 1.6.7) on 127.0.0.1:PORT, data in ``tmpdir``.

    HTTP API on ``url``; the RPC/backup service gets its own free port instead of the default :8088 so
    that several servers (and a system influxdb) can run side by side.
    """

    name = "influxd"

    def __init__(
        self,
        tmpdir: str | os.PathLike[str],
        *,
        port: int | None = None,
        binary: str | None = None,
    ) -> None:
        super().__init__(tmpdir, port)
        found = binary or find_influxd()
        if found is None:
            raise FileNotFoundError("influxd not installed: apt-get install influxdb")
        self.binary = found
        self.rpc_port = free_port()
        self.conf_path = self.tmpdir / "influxdb.conf"

    @property
    def url(self) -> str:
        return f"http://{self.host}:{self.port}"

    def config_text(self) -> str:
        d = self.tmpdir
        return f"""# generated by tests/servers.py for InfluxDB 1.6.x
# upstream key is reporting-disabled; Debian's build renamed it reporting-enabled. Unknown keys are ignored.
reporting-disabled = true
reporting-enabled = false
bind-address = {_toml_str(f"{self.host}:{self.rpc_port}")}

[meta]
  dir = {_toml_str(d / "meta")}
  logging-enabled = false

[data]
  dir = {_toml_str(d / "data")}
  wal-dir = {_toml_str(d / "wal")}
  query-log-enabled = false
  trace-logging-enabled = false

[monitor]
  store-enabled = false

[subscriber]
  enabled = false

[continuous_queries]
  log-enabled = false

[http]
  enabled = true
  bind-address = {_toml_str(f"{self.host}:{self.port}")}
  auth-enabled = false
  log-enabled = false
  pprof-enabled = false

[logging]
  level = "warn"
  suppress-logo = true
"""

    def _write_config(self) -> None:
        self.conf_path.write_text(self.config_text(), encoding="utf-8")

    def _argv(self) -> list[str]:
        return [self.binary, "-config", str(self.conf_path)]

    def _env(self) -> dict[str, str]:
        # INFLUXDB_* environment variables override the config file in influxd; keep ours authoritative.
        return {k: v for k, v in os.environ.items() if not k.startswith("INFLUXDB_")}

    def _ready(self) -> bool:
        return self.ping()

    def start(self, timeout: float = 30.0) -> InfluxDB1Server:
        super().start(timeout)
        return self

    def restart(self, timeout: float = 30.0) -> InfluxDB1Server:
        super().restart(timeout)
        return self

    def __enter__(self) -> InfluxDB1Server:
        return self.start()

    def log_text(self) -> str:
        try:
            return self.output_path.read_text(encoding="utf-8", errors="replace")
        except OSError:
            return ""

    # --- HTTP API -----------------------------------------------------------------------------------------

    def ping(self) -> bool:
        """True when GET /ping answers 204."""
        try:
            with _NO_PROXY_OPENER.open(f"{self.url}/ping", timeout=2) as resp:
                return resp.status == 204
        except (OSError, http.client.HTTPException):
            return False

    def query(self, db: str | None, q: str, *, epoch: str | None = None) -> dict[str, Any]:
        """Run InfluxQL via POST /query and return the parsed JSON (statement errors stay in the result)."""
        params = {"q": q}
        if db:
            params["db"] = db
        if epoch:
            params["epoch"] = epoch
        data = urllib.parse.urlencode(params).encode()
        req = urllib.request.Request(f"{self.url}/query", data=data, method="POST")
        req.add_header("Content-Type", "application/x-www-form-urlencoded")
        try:
            with _NO_PROXY_OPENER.open(req, timeout=30) as resp:
                return json.loads(resp.read() or b"{}")
        except urllib.error.HTTPError as exc:
            body = exc.read().decode("utf-8", errors="replace")
            raise RuntimeError(f"InfluxDB /query {exc.code}: {body.strip()} (q={q!r})") from None

    def points(self, db: str, q: str, *, epoch: str | None = None) -> list[dict[str, Any]]:
        """Rows of all series of the first statement as dicts (tags of GROUP BY merged in)."""
        result = self.query(db, q, epoch=epoch)["results"][0]
        if "error" in result:
            raise RuntimeError(f"InfluxQL error: {result['error']} (q={q!r})")
        rows: list[dict[str, Any]] = []
        for series in result.get("series", []):
            for values in series.get("values", []):
                row = dict(zip(series["columns"], values, strict=True))
                row.update(series.get("tags", {}))
                rows.append(row)
        return rows

    def create_database(self, name: str) -> None:
        self._statement(f"CREATE DATABASE {_quote_ident(name)}")

    def drop_database(self, name: str) -> None:
        self._statement(f"DROP DATABASE {_quote_ident(name)}")

    def _statement(self, q: str) -> None:
        result = self.query(None, q)["results"][0]
        if "error" in result:
            raise RuntimeError(f"InfluxQL error: {result['error']} (q={q!r})")


def _quote_ident(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


# ---------------------------------------------------------------------------------------------------------
# /api/v2/write -> /write relay
# ---------------------------------------------------------------------------------------------------------

_PRECISIONS = {"ns": "n", "us": "u", "ms": "ms", "s": "s"}
_HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "host",
    "content-length",
}


class V2WriteRelay:
    """TEST-ONLY HTTP relay that lets influxdb-client's v2 write path land in an InfluxDB 1.x server.

    Why: the product writes through influxdb-client's WriteApi, which always posts to ``/api/v2/write``
    (InfluxDB 2.x/3.x/1.8+). The InfluxDB on the build machine is Debian's 1.6.7, which has no
    ``/api/v2/write``. Mocking the client would test nothing, so this relay accepts the real client's
    request and forwards it to 1.6's ``/write``:

        POST /api/v2/write?org=O&bucket=DB[/RP]&precision=ns|us|ms|s   (body may be Content-Encoding: gzip)
          -> POST {target}/write?db=DB[&rp=RP]&precision=n|u|ms|s       (plain line protocol)

    and answers with the upstream status (204 on success) and body. Every other request (``/query``,
    ``/ping``, ``/health``, ...; any method) is proxied unchanged. Never use it outside tests.

    Test controls: ``fail_with(503)`` makes ``/api/v2/write`` answer that status without forwarding
    (``fail_with(None)`` restores); ``pause()`` closes the listening socket and open connections (clients get
    "connection refused"), ``resume()`` listens again on the same port. Counters: ``writes`` and ``points``
    (forwarded and accepted upstream), ``rejected`` (answered by fail_with), ``errors`` (upstream non-2xx or
    unreachable); ``last_body`` is the last accepted line protocol.
    """

    def __init__(self, target_url: str, *, port: int | None = None, upstream_timeout_s: float = 30.0) -> None:
        parts = urllib.parse.urlsplit(target_url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"target_url must be http(s)://host:port, got {target_url!r}")
        self.target_url = target_url.rstrip("/")
        self._target = parts
        self._base_path = parts.path.rstrip("/")
        self.host = LOCALHOST
        self._port = port or 0
        self.upstream_timeout_s = upstream_timeout_s
        self._lock = threading.Lock()
        self._server: _RelayHTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._conns: set[socket.socket] = set()
        self._fail_status: int | None = None
        self.writes = 0
        self.points = 0
        self.rejected = 0
        self.errors = 0
        self.last_body: bytes | None = None

    # --- lifecycle ----------------------------------------------------------------------------------------

    @property
    def port(self) -> int:
        return self._port

    @property
    def url(self) -> str:
        if not self._port:
            raise RuntimeError("relay not started yet")
        return f"http://{self.host}:{self._port}"

    @property
    def is_listening(self) -> bool:
        return self._server is not None

    def start(self) -> V2WriteRelay:
        if self._server is not None:
            return self
        server = _RelayHTTPServer((self.host, self._port), _RelayHandler, self)
        self._port = int(server.server_address[1])
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.1}, name="v2-write-relay", daemon=True
        )
        thread.start()
        self._server, self._thread = server, thread
        return self

    def stop(self) -> None:
        server, thread = self._server, self._thread
        self._server = self._thread = None
        if server is not None:
            server.shutdown()
            server.server_close()
        if thread is not None:
            thread.join(timeout=5)
        self._drop_connections()

    def pause(self) -> None:
        """Simulate an outage: stop listening (connection refused) and cut open connections."""
        self.stop()

    def resume(self) -> None:
        """Listen again on the same port."""
        self.start()

    def fail_with(self, status: int | None) -> None:
        """Answer /api/v2/write with ``status`` without forwarding; None restores normal relaying."""
        with self._lock:
            self._fail_status = status

    def reset_counts(self) -> None:
        with self._lock:
            self.writes = self.points = self.rejected = self.errors = 0
            self.last_body = None

    def __enter__(self) -> V2WriteRelay:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"<V2WriteRelay {self.host}:{self._port} -> {self.target_url} listening={self.is_listening}>"

    # --- internals used by the handler --------------------------------------------------------------------

    def _track(self, conn: socket.socket, add: bool) -> None:
        with self._lock:
            (self._conns.add if add else self._conns.discard)(conn)

    def _drop_connections(self) -> None:
        with self._lock:
            conns, self._conns = list(self._conns), set()
        for conn in conns:
            with contextlib.suppress(OSError):
                conn.shutdown(socket.SHUT_RDWR)

    def _upstream(
        self, method: str, path_qs: str, body: bytes | None, headers: dict[str, str]
    ) -> tuple[int, list[tuple[str, str]], bytes]:
        cls = http.client.HTTPSConnection if self._target.scheme == "https" else http.client.HTTPConnection
        conn = cls(self._target.hostname, self._target.port, timeout=self.upstream_timeout_s)
        try:
            conn.request(method, self._base_path + path_qs, body=body, headers=headers)
            resp = conn.getresponse()
            return resp.status, resp.getheaders(), resp.read()
        finally:
            conn.close()


class _RelayHTTPServer(ThreadingHTTPServer):
    daemon_threads = True
    allow_reuse_address = True

    def __init__(
        self, addr: tuple[str, int], handler: type[BaseHTTPRequestHandler], relay: V2WriteRelay
    ) -> None:
        self.relay = relay
        super().__init__(addr, handler)

    def handle_error(self, request: Any, client_address: Any) -> None:
        # connections cut by pause()/stop() are expected; anything else is worth a traceback
        exc = sys.exc_info()[1]
        if isinstance(exc, OSError):
            return
        super().handle_error(request, client_address)


class _RelayHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    timeout = 60  # idle keep-alive connections end eventually
    server: _RelayHTTPServer
    server_version = "fumewatch-test-relay"

    @property
    def relay(self) -> V2WriteRelay:
        return self.server.relay

    def setup(self) -> None:
        super().setup()
        self.relay._track(self.connection, True)

    def finish(self) -> None:
        try:
            super().finish()
        finally:
            self.relay._track(self.connection, False)

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        pass  # quiet; counters tell tests what happened

    # every method goes through one dispatcher
    def do_GET(self) -> None:
        self._dispatch()

    do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = do_GET

    def _dispatch(self) -> None:
        parts = urllib.parse.urlsplit(self.path)
        body = self._read_body()
        if self.command == "POST" and parts.path.rstrip("/") == "/api/v2/write":
            self._write(parts.query, body)
        else:
            self._proxy(body)

    def _read_body(self) -> bytes | None:
        if "chunked" in self.headers.get("Transfer-Encoding", "").lower():
            chunks = []
            while True:
                size = int(self.rfile.readline().split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    while self.rfile.readline() not in (b"\r\n", b"\n", b""):
                        pass  # trailers
                    break
                chunks.append(self.rfile.read(size))
                self.rfile.readline()
            return b"".join(chunks)
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else None

    def _write(self, query: str, body: bytes | None) -> None:
        relay = self.relay
        qs = urllib.parse.parse_qs(query)
        bucket = qs.get("bucket", [""])[0]
        precision = qs.get("precision", ["ns"])[0]
        with relay._lock:
            fail = relay._fail_status
            if fail is not None:
                relay.rejected += 1
        if fail is not None:
            self._json(fail, {"code": "unavailable", "message": f"test relay told to fail with {fail}"})
            return
        if not bucket:
            self._json(400, {"code": "invalid", "message": "bucket is required"})
            return
        if precision not in _PRECISIONS:
            self._json(400, {"code": "invalid", "message": f"invalid precision {precision!r}"})
            return
        data = body or b""
        encoding = self.headers.get("Content-Encoding", "identity").strip().lower()
        try:
            if encoding == "gzip":
                data = gzip.decompress(data)
            elif encoding == "deflate":
                data = zlib.decompress(data)
            elif encoding not in ("", "identity"):
                self._json(415, {"code": "invalid", "message": f"unsupported Content-Encoding {encoding!r}"})
                return
        except (OSError, zlib.error, EOFError) as exc:
            self._json(400, {"code": "invalid", "message": f"cannot decode body: {exc}"})
            return
        db, _, rp = bucket.partition("/")
        params = {"db": db, "precision": _PRECISIONS[precision]}
        if rp:
            params["rp"] = rp
        try:
            status, headers, resp_body = relay._upstream(
                "POST",
                "/write?" + urllib.parse.urlencode(params),
                data,
                {"Content-Type": "text/plain; charset=utf-8"},
            )
        except (OSError, http.client.HTTPException) as exc:
            with relay._lock:
                relay.errors += 1
            self._json(502, {"code": "unavailable", "message": f"upstream {relay.target_url}: {exc}"})
            return
        with relay._lock:
            if 200 <= status < 300:
                relay.writes += 1
                relay.points += _count_points(data)
                relay.last_body = data
            else:
                relay.errors += 1
        self._respond(status, headers, resp_body)

    def _proxy(self, body: bytes | None) -> None:
        headers = {k: v for k, v in self.headers.items() if k.lower() not in _HOP_BY_HOP}
        try:
            status, resp_headers, resp_body = self.relay._upstream(self.command, self.path, body, headers)
        except (OSError, http.client.HTTPException) as exc:
            self._json(502, {"code": "unavailable", "message": f"upstream {self.relay.target_url}: {exc}"})
            return
        self._respond(status, resp_headers, resp_body)

    def _respond(self, status: int, headers: list[tuple[str, str]], body: bytes) -> None:
        self.send_response(status)
        for key, value in headers:
            if key.lower() not in _HOP_BY_HOP and key.lower() not in ("date", "server"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        if self.command != "HEAD" and body:
            self.wfile.write(body)

    def _json(self, status: int, payload: dict[str, Any]) -> None:
        self._respond(
            status, [("Content-Type", "application/json; charset=utf-8")], json.dumps(payload).encode()
        )


def _count_points(line_protocol: bytes) -> int:
    return sum(
        1 for line in line_protocol.splitlines() if line.strip() and not line.lstrip().startswith(b"#")
    )


# ---------------------------------------------------------------------------------------------------------
# Docker engine probe (for testcontainers tests)
# ---------------------------------------------------------------------------------------------------------


def docker_available(timeout_s: float = 3.0) -> bool:
    """True when a Docker engine answers (a docker CLI alone is only a client and is not enough)."""
    return docker_unavailable_reason(timeout_s) is None


@functools.lru_cache(maxsize=1)
def docker_unavailable_reason(timeout_s: float = 3.0) -> str | None:
    """None when a Docker engine answers, else why not (the text tests use as their skip reason)."""
    docker_host = os.environ.get("DOCKER_HOST", "")
    if docker_host.startswith("unix://"):
        if _docker_ping_unix(docker_host.removeprefix("unix://"), timeout_s):
            return None
    elif docker_host.startswith("tcp://"):
        if _docker_ping_tcp(docker_host.removeprefix("tcp://"), timeout_s):
            return None
    elif not docker_host and _docker_ping_unix("/var/run/docker.sock", timeout_s):
        return None
    cli = shutil.which("docker")
    if cli is not None:
        try:
            res = subprocess.run(
                [cli, "info", "--format", "{{.ServerVersion}}"],
                capture_output=True,
                text=True,
                timeout=timeout_s,
                check=False,
            )
            if res.returncode == 0 and res.stdout.strip():
                return None
        except (OSError, subprocess.TimeoutExpired):
            pass
        return "no Docker engine here (docker CLI is only a client)"
    return "no Docker engine here (no docker CLI, no answering Docker socket)"


def _docker_ping_unix(path: str, timeout_s: float) -> bool:
    if not os.path.exists(path):
        return False
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
            sock.settimeout(timeout_s)
            sock.connect(path)
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            return _is_http_200(sock.recv(64))
    except OSError:
        return False


def _docker_ping_tcp(hostport: str, timeout_s: float) -> bool:
    host, _, port = hostport.rstrip("/").rpartition(":")
    try:
        with socket.create_connection((host or LOCALHOST, int(port or 2375)), timeout=timeout_s) as sock:
            sock.settimeout(timeout_s)
            sock.sendall(b"GET /_ping HTTP/1.0\r\nHost: docker\r\n\r\n")
            return _is_http_200(sock.recv(64))
    except (OSError, ValueError):
        return False


def _is_http_200(head: bytes) -> bool:
    first = head.split(b"\r\n", 1)[0].split()
    return len(first) >= 2 and first[0].startswith(b"HTTP/") and first[1] == b"200"


def run_fumewatch(
    cwd: Path, *argv: str, env: dict | None = None, timeout: float = 60
) -> subprocess.CompletedProcess:
    """``python -m fumewatch ARGV`` as a real process in ``cwd``, the way a user runs it, without the
    caller's FUMEWATCH_* variables (``env`` adds some)."""
    base = {k: v for k, v in os.environ.items() if not k.startswith("FUMEWATCH_")}
    base["PYTHONPATH"] = str(Path(__file__).resolve().parent.parent)
    return subprocess.run(
        [sys.executable, "-m", "fumewatch", *argv],
        capture_output=True,
        text=True,
        cwd=cwd,
        env={**base, **(env or {})},
        timeout=timeout,
    )


# ----------------------------------------------------------------------------------------- PostgreSQL

#: The PostgreSQL server of this machine (and of CI: .ci/run starts it); trust auth for user postgres.
PG_ADMIN_URL = os.environ.get("FUMEWATCH_TEST_PG", "postgresql://postgres@127.0.0.1:5432/postgres")


@contextlib.contextmanager
def private_pg_database(admin_url: str = PG_ADMIN_URL, prefix: str = "fumewatch_test"):
    """CREATE a uniquely named database, yield its URL (no password), DROP it ... WITH (FORCE) after
    (tests and benchmarks: each run has its own)."""
    import uuid

    import psycopg

    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield admin_url.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
