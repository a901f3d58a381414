"""The gateway's connections in the state database (``gateway_connections``), for ``fumewatch devices``.

The gateway is a process of its own (``fumewatch hj212-gateway``, or a thread of ``fumewatch run``) and
``fumewatch devices`` runs elsewhere, so the gateway writes what it knows of each logger's connection where
the command can read it:

- :class:`StatusWatch`, on the gateway's event loop: it sees each connection come and go (it puts an
  :class:`ObservedConnections` dict in place of ``Gateway.connections``, which the server fills and
  empties, so nothing in the server had to change), notices within :data:`TICK_S` when a connection's
  first accepted frame binds its MN, and every ``[gateway] status_interval_s`` takes the rows of all
  bound connections. It only copies values on the loop (no database call there); it also keeps when the
  broker session went away (:meth:`StatusWatch.broker_down_for`, for /healthz).
- :class:`StatusWriter`, a thread of its own, writes them: the newest row per MN waits in a dict (a later
  one replaces it) and is upserted in one transaction; while the database is away the rows wait (the
  newest per MN, so what waits is bounded by the registry) and are tried again every :data:`RETRY_S`.
  The gateway never waits for the database.
- :func:`read_connections`: the rows, for ``fumewatch devices`` (it only reads: no table, no rows).

One row per MN. With several connections of one logger at once (a DTU that reconnected while its old
connection has not timed out yet) the row is the newest open one; when that ends and an older one is
still open, the row goes back to the older. Several gateways writing one database: a row of another
gateway is replaced only by a connection that began later, or by an open connection over an ended one.

At start a gateway marks the rows it left open (same ``instance``: host name and listening port) as ended
at their last update: the process that held them is gone. A gateway killed on another host leaves rows
that are no longer updated: ``fumewatch devices`` shows them as not reporting (:func:`is_stale`).
"""

from __future__ import annotations

import asyncio
import logging
import socket
import threading
import time
from typing import Any

import orjson
from sqlalchemy import and_, inspect, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from ingest.db import begin_write, display, make_engine
from ingest.state_schema import gateway_connections
from ingest.timeutil import now_ms

log = logging.getLogger("fumewatch.gateway")

#: Seconds between two looks at the connections not bound to an MN yet (and at the broker session).
TICK_S = 0.25
#: Seconds between two tries of the state database while it fails.
RETRY_S = 1.0
#: A row still open but not updated for this many status intervals (at least :data:`STALE_MIN_MS`) is a
#: gateway that stopped without saying so.
STALE_INTERVALS = 3
STALE_MIN_MS = 30_000
MAX_ERROR_CHARS = 500


def instance_name(port: int) -> str:
    """The ``instance`` of this gateway's rows: its host name and listening port."""
    return f"{socket.gethostname()}:{port}"


def is_stale(row: dict[str, Any], now: int, interval_s: float) -> bool:
    """True for a row still open whose gateway has not written it for :data:`STALE_INTERVALS` status
    intervals (at least :data:`STALE_MIN_MS`): that gateway stopped without marking it ended."""
    after = max(STALE_MIN_MS, int(STALE_INTERVALS * (interval_s or 5.0) * 1000))
    return row.get("disconnected_ms") is None and now - int(row["updated_ms"]) > after


def connection_row(conn: Any, instance: str, now: int, disconnected_ms: int | None = None) -> dict:
    """A ``gateway_connections`` row of ``conn`` (an ingest.gateway.server.Connection bound to its MN)."""
    return {
        "mn": _mn(conn),
        "instance": instance,
        "peer": conn.peer,
        "connected_since_ms": conn.since_ms,
        "frames": conn.frames,
        "acks": conn.acks,
        "refused": orjson.dumps(dict(sorted(conn.refused.items()))).decode(),
        "last_error": conn.last_error[:MAX_ERROR_CHARS],
        "last_frame_ms": conn.last_frame_ms or None,
        "disconnected_ms": disconnected_ms,
        "updated_ms": now,
    }


class ObservedConnections(dict):
    """``Gateway.connections`` that tells a :class:`StatusWatch` when the server adds a connection and when
    it removes one (the server's own operations: ``d[key] = conn``, ``del d[key]``, ``pop``). A failing
    watch is logged, never raised into the server."""

    def __init__(self, watch: StatusWatch) -> None:
        super().__init__()
        self._watch = watch

    def __setitem__(self, key: Any, conn: Any) -> None:
        super().__setitem__(key, conn)
        self._tell(self._watch.opened, key, conn)

    def __delitem__(self, key: Any) -> None:
        conn = self[key]
        super().__delitem__(key)
        self._tell(self._watch.closed, key, conn)

    def pop(self, key: Any, *default: Any) -> Any:
        if key not in self:
            return super().pop(key, *default)
        conn = super().pop(key)
        self._tell(self._watch.closed, key, conn)
        return conn

    @staticmethod
    def _tell(fn, key: Any, conn: Any) -> None:  # noqa: ANN001
        try:
            fn(key, conn)
        except Exception:  # the status is a view: a bug here must not break a logger's connection
            log.exception("event=gateway_status_watch_failed")


class StatusWatch:
    """The gateway's connections as rows, on its event loop (see the module's docstring)."""

    def __init__(self, gateway: Any, writer: StatusWriter | None, interval_s: float, instance: str) -> None:
        self.gateway = gateway
        self.writer = writer
        self.interval_s = interval_s
        self.instance = instance
        self._open: dict[Any, Any] = {}  # key -> Connection: every open connection
        self._unbound: set[Any] = set()  # keys of open connections whose MN is not bound yet
        self._by_mn: dict[str, set[Any]] = {}  # MN -> keys of its open, bound connections
        self._ended: dict[str, tuple[Any, int]] = {}  # MN -> (its last ended connection, ended at)
        self._down_since: float | None = time.monotonic()  # broker session: None while connected
        self._task: asyncio.Task | None = None
        observed = ObservedConnections(self)
        for key, conn in gateway.connections.items():
            dict.__setitem__(observed, key, conn)
            self.opened(key, conn)
        gateway.connections = observed

    # ---------------------------------------------------------------- the server's connections
    def opened(self, key: Any, conn: Any) -> None:
        self._open[key] = conn
        if _mn(conn):
            self._by_mn.setdefault(_mn(conn), set()).add(key)
        else:
            self._unbound.add(key)

    def closed(self, key: Any, conn: Any) -> None:
        self._open.pop(key, None)
        self._unbound.discard(key)
        if not _mn(conn):
            return  # never sent an accepted frame: no logger to show it for
        keys = self._by_mn.get(_mn(conn))
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._by_mn[_mn(conn)]
        self._ended[_mn(conn)] = (conn, now_ms())
        self._emit({_mn(conn)})

    def _bind_new(self) -> set[str]:
        """The MNs bound since the last look (their connections' first accepted frames)."""
        mns = set()
        for key in [k for k in self._unbound if _mn(self._open[k])]:
            self._unbound.discard(key)
            mn = _mn(self._open[key])
            self._by_mn.setdefault(mn, set()).add(key)
            mns.add(mn)
        return mns

    def _row(self, mn: str, now: int) -> dict | None:
        keys = self._by_mn.get(mn)
        if keys:
            newest = max((self._open[k] for k in keys), key=lambda c: c.since_ms)
            return connection_row(newest, self.instance, now)
        ended = self._ended.get(mn)
        return None if ended is None else connection_row(ended[0], self.instance, now, ended[1])

    def _emit(self, mns: set[str]) -> None:
        if self.writer is None or not mns:
            return
        now = now_ms()
        rows = [r for mn in mns if (r := self._row(mn, now)) is not None]
        self.writer.put(rows)

    # ---------------------------------------------------------------- the loop
    def start(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start looking, on the gateway's ``loop`` (the task runs once the loop does)."""
        self._task = loop.create_task(self._run(), name="gateway-status")

    async def _run(self) -> None:
        last = time.monotonic()
        while True:
            await asyncio.sleep(TICK_S)
            try:
                self._watch_broker()
                mns = self._bind_new()
                if self.interval_s and time.monotonic() - last >= self.interval_s:
                    last = time.monotonic()
                    mns |= set(self._by_mn)
                self._emit(mns)
            except Exception:
                log.exception("event=gateway_status_watch_failed")

    def _watch_broker(self) -> None:
        if self.gateway.publisher.connected.is_set():
            self._down_since = None
        elif self._down_since is None:
            self._down_since = time.monotonic()

    def broker_down_for(self) -> float:
        """Seconds the gateway's broker session has been away (0 while connected; since start before the
        first connection)."""
        if self.gateway.publisher.connected.is_set():
            return 0.0
        since = self._down_since
        return 0.0 if since is None else time.monotonic() - since

    def close(self, timeout_s: float = 10.0) -> None:
        """The gateway stops: connections still open end now; every row is written (within
        ``timeout_s``). Call on the loop thread once the server stopped."""
        if self._task is not None:
            self._task.cancel()
        self._bind_new()
        for key, conn in list(self._open.items()):
            self.closed(key, conn)
        if self.writer is not None:
            self.writer.close(timeout_s)


class StatusWriter:
    """Writes the rows :class:`StatusWatch` hands it to ``gateway_connections``, on a thread of its own."""

    def __init__(self, state: str, instance: str) -> None:
        self.state = display(state)
        self.instance = instance
        self._engine = make_engine(state)
        self._pending: dict[str, dict] = {}
        self._lock = threading.Lock()
        self._wake = threading.Event()
        self._closing = threading.Event()
        self._started = False  # the rows a previous run left open are marked ended
        self.rows_written = 0
        self.failures = 0
        self.last_error = ""
        self._thread = threading.Thread(target=self._run, name="gateway-status", daemon=True)

    def start(self) -> StatusWriter:
        self._thread.start()
        self._wake.set()  # first: the rows a previous run of this instance left open
        return self

    @property
    def pending(self) -> int:
        return len(self._pending)

    def put(self, rows: list[dict]) -> None:
        if not rows:
            return
        with self._lock:
            for r in rows:
                self._pending[r["mn"]] = r
        self._wake.set()

    def _run(self) -> None:
        failing = False
        while True:
            self._wake.wait()
            self._wake.clear()
            closing = self._closing.is_set()
            with self._lock:
                rows, self._pending = self._pending, {}
            try:
                with self._engine.connect() as conn:
                    begin_write(conn)
                    if not self._started:
                        self._end_left_open(conn)
                    if rows:
                        conn.execute(_upsert(conn.dialect.name), list(rows.values()))
                    conn.commit()
                self._started = True
                self.rows_written += len(rows)
                if failing:
                    log.info("event=gateway_status_written again rows=%d", len(rows))
                failing = False
            except Exception as exc:
                self.failures += 1
                self.last_error = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
                with self._lock:
                    for mn, r in rows.items():
                        self._pending.setdefault(mn, r)  # a newer row of the same MN wins
                if closing:
                    log.error(
                        "event=gateway_status_not_written rows=%d state=%s error=%s",
                        len(self._pending),
                        self.state,
                        self.last_error,
                    )
                    return
                if not failing:
                    log.warning(
                        "event=gateway_status_write_failed state=%s error=%s (retrying every %g s)",
                        self.state,
                        self.last_error,
                        RETRY_S,
                    )
                failing = True
                self._closing.wait(RETRY_S)
                self._wake.set()
                continue
            if closing:
                return

    def _end_left_open(self, conn) -> None:  # noqa: ANN001 - sqlalchemy Connection
        t = gateway_connections.c
        n = conn.execute(
            update(gateway_connections)
            .where(t.instance == self.instance, t.disconnected_ms.is_(None))
            .values(disconnected_ms=t.updated_ms)
        ).rowcount
        if n:
            log.info("event=gateway_status_left_open_ended rows=%d instance=%s", n, self.instance)

    def close(self, timeout_s: float = 10.0) -> None:
        """Write what waits (one try) and stop."""
        self._closing.set()
        self._wake.set()
        if self._thread.is_alive():
            self._thread.join(timeout_s)
        self._engine.dispose()


def _upsert(dialect: str):
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    stmt = insert(gateway_connections)
    t, new = gateway_connections.c, stmt.excluded
    return stmt.on_conflict_do_update(
        index_elements=["mn"],
        set_={c.name: new[c.name] for c in gateway_connections.columns if c.name != "mn"},
        where=or_(
            t.instance == new.instance,
            t.connected_since_ms <= new.connected_since_ms,
            and_(t.disconnected_ms.is_not(None), new.disconnected_ms.is_(None)),
        ),
    )


def read_connections(state: str) -> dict[str, dict[str, Any]] | None:
    """Each MN's row (``refused`` as a dict); None when the database has no ``gateway_connections``.
    Creates nothing."""
    engine = make_engine(state, create_dir=False)
    try:
        with engine.connect() as c:
            if "gateway_connections" not in set(inspect(c).get_table_names()):
                return None
            rows = c.execute(select(gateway_connections)).mappings().all()
    finally:
        engine.dispose()
    out = {}
    for r in rows:
        row = dict(r)
        row["refused"] = orjson.loads(row["refused"] or "{}")
        out[row["mn"]] = row
    return out


def _mn(conn: Any) -> str:
    """The MN a connection shows under: the one it is bound to, else the registry MN it claimed."""
    return conn.mn or getattr(conn, "claimed_mn", "")
