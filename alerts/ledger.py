"""The alerts state database: events, enforcement cases, notices, detector snapshots and finalised windows.

One SQLite file in WAL mode, given by path. It may be the same file in which ingest keeps its
``dead_letters`` table, so this module only creates its own tables (``events``, ``cases``, ``notices``,
``detector_state``, ``windows``) and never touches file-wide settings other than the journal mode
(no ``user_version``).

Concurrency model: one writer thread per process (the alerts service) plus any number of readers in other
processes (``fumewatch events``, reports). WAL lets readers see the last committed snapshot while the
writer holds a transaction; ``busy_timeout`` makes a second writer wait instead of failing. Within a
process the connection is guarded by a lock, so helper threads may read too. ``synchronous=FULL``: a
committed notice record survives power loss, not just a process crash.

Exactly-once notices (the ``notices`` table, see :meth:`Ledger.notice_begin`): a notice is identified by
(transition key, target). Before sending, the sender records the row as ``pending`` in its own transaction;
after the remote end accepted it, it records ``sent``. A row already ``sent`` makes :meth:`notice_begin`
answer False, so nothing is sent twice, across restarts too. A crash between the remote accept and the
``sent`` record leaves the row ``pending``; :meth:`pending_notices` lists those so the notifier resends them
(the remaining at-least-once window, documented in :mod:`alerts.enforcement.notify`).

Secrets are never stored: notice targets that are URLs are reduced to scheme + host (+ port), with any
user/password shown as ``***`` (:func:`mask_target`), and error texts are scrubbed the same way.
"""

from __future__ import annotations

import json
import re
import sqlite3
import threading
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from alerts.model import EXCEEDANCE, Event, WindowResult
from ingest.timeutil import now_ms

if TYPE_CHECKING:  # pandas is imported lazily: only reports need it
    import pandas as pd

#: Notice statuses.
PENDING = "pending"
SENT = "sent"
FAILED = "failed"
SKIPPED = "skipped"
NOTICE_STATUSES = (PENDING, SENT, FAILED, SKIPPED)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    event_id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    restaurant_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    district TEXT NOT NULL DEFAULT '',
    start_ms INTEGER NOT NULL,
    end_ms INTEGER,
    pollutant TEXT NOT NULL DEFAULT '',
    peak_mg_m3 REAL,
    mean_mg_m3 REAL,
    limit_mg_m3 REAL,
    profile TEXT NOT NULL DEFAULT '',
    level TEXT NOT NULL DEFAULT '',
    occurrence INTEGER,
    state TEXT NOT NULL DEFAULT 'open',
    evidence TEXT NOT NULL DEFAULT '[]',
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS events_by_restaurant ON events (restaurant_id, kind, start_ms, event_id);
CREATE INDEX IF NOT EXISTS events_by_start ON events (start_ms);

CREATE TABLE IF NOT EXISTS cases (
    case_id TEXT PRIMARY KEY,
    event_id TEXT NOT NULL UNIQUE,
    restaurant_id TEXT NOT NULL,
    device_id TEXT NOT NULL,
    district TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL DEFAULT 'open',
    start_ms INTEGER NOT NULL,
    end_ms INTEGER,
    record TEXT NOT NULL,
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS cases_by_restaurant ON cases (restaurant_id, start_ms);

CREATE TABLE IF NOT EXISTS notices (
    key TEXT NOT NULL,
    target TEXT NOT NULL,
    event_id TEXT NOT NULL,
    action TEXT NOT NULL,
    channel TEXT NOT NULL,
    restaurant_id TEXT NOT NULL DEFAULT '',
    device_id TEXT NOT NULL DEFAULT '',
    status TEXT NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    error TEXT NOT NULL DEFAULT '',
    payload TEXT NOT NULL DEFAULT '{}',
    created_ms INTEGER NOT NULL,
    updated_ms INTEGER NOT NULL,
    PRIMARY KEY (key, target)
);
CREATE INDEX IF NOT EXISTS notices_by_status ON notices (status, created_ms);
CREATE INDEX IF NOT EXISTS notices_by_event ON notices (event_id);

CREATE TABLE IF NOT EXISTS detector_state (
    name TEXT PRIMARY KEY,
    data TEXT NOT NULL,
    updated_ms INTEGER NOT NULL
);

CREATE TABLE IF NOT EXISTS windows (
    device_id TEXT NOT NULL,
    pollutant TEXT NOT NULL,
    start_ms INTEGER NOT NULL,
    end_ms INTEGER NOT NULL,
    samples INTEGER NOT NULL,
    expected INTEGER NOT NULL,
    valid INTEGER NOT NULL,
    invalid_reason TEXT NOT NULL DEFAULT '',
    mean_mg_m3 REAL,
    max_mg_m3 REAL,
    exceeds INTEGER NOT NULL,
    PRIMARY KEY (device_id, pollutant, start_ms)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS windows_by_start ON windows (start_ms);
"""

_SCHEMA_OBJECTS = tuple(re.findall(r"CREATE (?:TABLE|INDEX) IF NOT EXISTS (\w+)", _SCHEMA))

_EVENT_COLUMNS = (
    "event_id",
    "kind",
    "restaurant_id",
    "device_id",
    "district",
    "start_ms",
    "end_ms",
    "pollutant",
    "peak_mg_m3",
    "mean_mg_m3",
    "limit_mg_m3",
    "profile",
    "level",
    "state",
    "evidence",
)

_WINDOW_COLUMNS = (
    "device_id",
    "pollutant",
    "start_ms",
    "end_ms",
    "samples",
    "expected",
    "valid",
    "invalid_reason",
    "mean_mg_m3",
    "max_mg_m3",
    "exceeds",
)

_NOTICE_COLUMNS = (
    "key",
    "target",
    "event_id",
    "action",
    "channel",
    "restaurant_id",
    "device_id",
    "status",
    "attempts",
    "error",
    "payload",
    "created_ms",
    "updated_ms",
)

# ---------------------------------------------------------------------------------------------------------
# Secret masking
# ---------------------------------------------------------------------------------------------------------

_URL_IN_TEXT = re.compile(r"[A-Za-z][A-Za-z0-9+.-]*://[^\s'\"<>]+")
_HOST_PORT = re.compile(r"^(?P<host>\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9_.-]+)(?::(?P<port>\d{1,5}))?$")
_DUP_SUFFIX = re.compile(r"#\d+$")
_SECRET_KV = re.compile(r"(?i)((?:password|passwd|pass|pwd|token|secret|key|authorization)=)[^&\s]+")


def mask_target(target: str) -> str:
    """Reduce an apprise URL to what may be stored: scheme + host (+ port); user info becomes ``***``.

    ``mailto://user:pw@example.com?to=x@y.z`` -> ``mailto://***@example.com``;
    ``json://127.0.0.1:8080/hook?token=abc`` -> ``json://127.0.0.1:8080``. Many apprise schemes carry a
    token where a host would be (``dingtalk://TOKEN``, ``wecombot://KEY``, ``tgram://BOT:TOKEN/CHAT``):
    a "host" is kept only when it looks like a DNS name (has a dot), ``localhost`` or an IP address,
    otherwise it is shown as ``***`` too. A trailing ``#<n>`` (the notifier's marker that tells apart two
    targets which mask alike) is kept. Strings without ``://`` (labels such as ``mqtt:fume/v1/alerts/R1``
    or ``owner:none``) are stored as they are. Idempotent: masking a masked target changes nothing.
    """
    text = target.strip()
    if "://" not in text:
        return text
    dup = ""
    m = _DUP_SUFFIX.search(text)
    if m:
        dup = m.group(0)
        text = text[: m.start()]
    scheme, _, rest = text.partition("://")
    netloc = re.split(r"[/?#]", rest, maxsplit=1)[0]
    userinfo, at, hostport = netloc.rpartition("@")
    masked_user = "***@" if at and userinfo else ""
    hp = _HOST_PORT.match(hostport)
    if hp and _looks_like_host(hp.group("host")):
        host = hp.group("host") + (f":{hp.group('port')}" if hp.group("port") else "")
    elif hostport:
        host = "***"
    else:
        host = ""
    if masked_user and host == "***":
        masked_user = ""
    return f"{scheme.lower()}://{masked_user}{host}{dup}"


def _looks_like_host(host: str) -> bool:
    if host.startswith("["):
        return True
    if host.lower() == "localhost":
        return True
    return "." in host and not host.startswith(".") and not host.endswith(".")


def scrub(text: str, limit: int = 500) -> str:
    """Mask every URL and ``password=``/``token=``-style value in a free text (error messages)."""
    out = _URL_IN_TEXT.sub(lambda m: mask_target(m.group(0)), text)
    out = _SECRET_KV.sub(r"\1***", out)
    return out if len(out) <= limit else out[: limit - 1] + "…"


# ---------------------------------------------------------------------------------------------------------
# Records
# ---------------------------------------------------------------------------------------------------------


@dataclass(slots=True)
class NoticeRecord:
    """One row of the notice ledger: one notice of one transition to one target."""

    key: str
    target: str  # masked
    event_id: str
    action: str
    channel: str  # owner | inspector | mqtt
    restaurant_id: str
    device_id: str
    status: str  # pending | sent | failed | skipped
    attempts: int
    error: str
    payload: dict[str, Any] = field(default_factory=dict)
    created_ms: int = 0
    updated_ms: int = 0


def _dumps(obj: Any) -> str:
    return json.dumps(obj, ensure_ascii=False, separators=(",", ":"), default=str)


def _split_key(key: str) -> tuple[str, str]:
    event_id, sep, action = key.rpartition(":")
    return (event_id, action) if sep else (key, "")


# ---------------------------------------------------------------------------------------------------------
# Ledger
# ---------------------------------------------------------------------------------------------------------


def _where(since_ms: int | None, until_ms: int | None, **equals: Any) -> tuple[str, list[Any]]:
    """SQL filter for the listings: overlap with ``[since_ms, until_ms)`` on start_ms/end_ms (an open
    record, end NULL, overlaps every later period) and ``column = value`` for each value not None."""
    where, args = "1=1", []
    if since_ms is not None:
        where += " AND (end_ms IS NULL OR end_ms >= ?)"
        args.append(since_ms)
    if until_ms is not None:
        where += " AND start_ms < ?"
        args.append(until_ms)
    for col, val in equals.items():
        if val is not None:
            where += f" AND {col} = ?"
            args.append(val)
    return where, args


class Ledger:
    """The alerts state database at ``path`` (created with its parent folder if missing)."""

    def __init__(self, path: str | Path, busy_timeout_s: float = 30.0) -> None:
        p = Path(path)
        if str(p) != ":memory:" and not p.parent.exists():
            p.parent.mkdir(parents=True, exist_ok=True)
        self.path = str(p)
        self._conn = sqlite3.connect(
            self.path, timeout=busy_timeout_s, check_same_thread=False, isolation_level=None
        )
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=FULL")
        self._conn.execute(f"PRAGMA busy_timeout={int(busy_timeout_s * 1000)}")
        self._lock = threading.RLock()
        self._depth = 0
        if not self._schema_present():  # readers of an existing file never take the write lock
            with self.transaction() as c:
                for stmt in _SCHEMA.split(";"):
                    if stmt.strip():
                        c.execute(stmt)

    def _schema_present(self) -> bool:
        names = {r[0] for r in self._read("SELECT name FROM sqlite_master WHERE type IN ('table', 'index')")}
        return set(_SCHEMA_OBJECTS) <= names

    # -- plumbing -----------------------------------------------------------------------------------------

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction (``BEGIN IMMEDIATE``); nested uses join the outer one.

        Use it to make several writes atomic, e.g. the detector snapshot together with the events it
        opened: ``with ledger.transaction(): ledger.save_state(...); ledger.upsert_event(...)``.
        Never hold it across network I/O.
        """
        with self._lock:
            outer = self._depth == 0
            if outer:
                self._conn.execute("BEGIN IMMEDIATE")
            self._depth += 1
            try:
                yield self._conn
            except BaseException:
                self._depth -= 1
                if outer:
                    self._conn.execute("ROLLBACK")
                raise
            self._depth -= 1
            if outer:
                self._conn.execute("COMMIT")

    def _read(self, sql: str, args: Iterable[Any] = ()) -> list[tuple]:
        with self._lock:
            return self._conn.execute(sql, tuple(args)).fetchall()

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    def __enter__(self) -> Ledger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- events -------------------------------------------------------------------------------------------

    def upsert_event(self, event: Event) -> Event:
        """Insert or update ``event`` by ``event_id`` (idempotent); return the stored record.

        Every field is updated from ``event`` except ``level`` (and the ladder occurrence), which keep the
        value first assigned: an event passed with an empty level, or a different one, never changes it.
        A closed event is not reopened by an ``open`` version of it (a stale snapshot, e.g. the ``opened``
        transition's copy reaching the notifier after the close was stored): that update is ignored.
        """
        ts = now_ms()
        row = _event_row(event)
        with self.transaction() as c:
            c.execute(
                f"INSERT INTO events ({', '.join(_EVENT_COLUMNS)}, created_ms, updated_ms) "
                f"VALUES ({', '.join('?' * len(_EVENT_COLUMNS))}, ?, ?) "
                "ON CONFLICT(event_id) DO UPDATE SET "
                + ", ".join(
                    f"{col} = excluded.{col}" for col in _EVENT_COLUMNS if col not in ("event_id", "level")
                )
                + ", level = CASE WHEN events.level != '' THEN events.level ELSE excluded.level END"
                ", updated_ms = excluded.updated_ms"
                " WHERE NOT (events.state = 'closed' AND excluded.state = 'open')",
                (*row, ts, ts),
            )
            stored = self.get_event(event.event_id)
        assert stored is not None
        return stored

    def get_event(self, event_id: str) -> Event | None:
        rows = self._read(f"SELECT {', '.join(_EVENT_COLUMNS)} FROM events WHERE event_id = ?", (event_id,))
        return _event_from_row(rows[0]) if rows else None

    def list_events(
        self,
        since_ms: int | None = None,
        until_ms: int | None = None,
        restaurant_id: str | None = None,
        district: str | None = None,
        kind: str | None = None,
        state: str | None = None,
    ) -> list[Event]:
        """Events overlapping ``[since_ms, until_ms)``, ordered by start then id.

        Overlap: ``start < until`` and (``end >= since`` or the event is still open, ``end`` NULL).
        """
        where, args = _where(
            since_ms, until_ms, restaurant_id=restaurant_id, district=district, kind=kind, state=state
        )
        q = f"SELECT {', '.join(_EVENT_COLUMNS)} FROM events WHERE {where} ORDER BY start_ms, event_id"
        return [_event_from_row(r) for r in self._read(q, args)]

    def count_exceedances(
        self,
        restaurant_id: str,
        since_ms: int,
        until_ms: int | None = None,
        up_to_event_id: str | None = None,
    ) -> int:
        """Exceedance events of ``restaurant_id`` starting at or after ``since_ms``.

        With ``until_ms``: only those starting at or before it; with ``up_to_event_id`` too, events starting
        exactly at ``until_ms`` count only up to that id (the ladder's stable order: start, then id).
        """
        q = "SELECT COUNT(*) FROM events WHERE restaurant_id = ? AND kind = ? AND start_ms >= ?"
        args: list[Any] = [restaurant_id, EXCEEDANCE, since_ms]
        if until_ms is not None and up_to_event_id is not None:
            q += " AND (start_ms < ? OR (start_ms = ? AND event_id <= ?))"
            args += [until_ms, until_ms, up_to_event_id]
        elif until_ms is not None:
            q += " AND start_ms <= ?"
            args.append(until_ms)
        return int(self._read(q, args)[0][0])

    def set_level(self, event_id: str, level: str, occurrence: int | None = None) -> str:
        """Assign ``level`` (and the ladder occurrence) unless one is already set; return the stored level."""
        with self.transaction() as c:
            c.execute(
                "UPDATE events SET level = ?, occurrence = ?, updated_ms = ? WHERE event_id = ? AND level = ''",
                (level, occurrence, now_ms(), event_id),
            )
            row = c.execute("SELECT level FROM events WHERE event_id = ?", (event_id,)).fetchone()
        if row is None:
            raise KeyError(f"no event {event_id!r} in the ledger")
        return str(row[0])

    def get_occurrence(self, event_id: str) -> int | None:
        """The event's position on its restaurant's ladder, as recorded with its level (None if unset)."""
        rows = self._read("SELECT occurrence FROM events WHERE event_id = ?", (event_id,))
        return rows[0][0] if rows else None

    # -- cases --------------------------------------------------------------------------------------------

    def upsert_case(self, case: dict[str, Any]) -> None:
        """Insert or refresh an enforcement case (see :func:`alerts.enforcement.ladder.build_case`), by ``case_id``.

        A refresh keeps ``created_ms`` and the stored ``status`` (inspectors may have moved it on).
        """
        ts = now_ms()
        with self.transaction() as c:
            old = c.execute(
                "SELECT status, created_ms FROM cases WHERE case_id = ?", (case["case_id"],)
            ).fetchone()
            record = dict(case)
            if old is not None:
                record["status"], record["created_ms"] = old[0], old[1]
            record.setdefault("status", "open")
            record.setdefault("created_ms", ts)
            c.execute(
                "INSERT INTO cases (case_id, event_id, restaurant_id, device_id, district, status, start_ms, "
                "end_ms, record, created_ms, updated_ms) VALUES (?,?,?,?,?,?,?,?,?,?,?) "
                "ON CONFLICT(case_id) DO UPDATE SET end_ms = excluded.end_ms, record = excluded.record, "
                "updated_ms = excluded.updated_ms",
                (
                    record["case_id"],
                    record["event_id"],
                    record.get("restaurant_id", ""),
                    record.get("device_id", ""),
                    record.get("district", ""),
                    record["status"],
                    record["start_ms"],
                    record.get("end_ms"),
                    _dumps(record),
                    record["created_ms"],
                    ts,
                ),
            )

    def set_case_status(self, case_id: str, status: str) -> None:
        with self.transaction() as c:
            row = c.execute("SELECT record FROM cases WHERE case_id = ?", (case_id,)).fetchone()
            if row is None:
                raise KeyError(f"no case {case_id!r}")
            record = json.loads(row[0])
            record["status"] = status
            c.execute(
                "UPDATE cases SET status = ?, record = ?, updated_ms = ? WHERE case_id = ?",
                (status, _dumps(record), now_ms(), case_id),
            )

    def list_cases(
        self,
        since_ms: int | None = None,
        until_ms: int | None = None,
        restaurant_id: str | None = None,
        district: str | None = None,
        status: str | None = None,
    ) -> list[dict[str, Any]]:
        """Case records (dicts as built by :func:`alerts.enforcement.ladder.build_case`), same overlap rule as events."""
        where, args = _where(
            since_ms, until_ms, restaurant_id=restaurant_id, district=district, status=status
        )
        q = f"SELECT record, status FROM cases WHERE {where} ORDER BY start_ms, case_id"
        out = []
        for record, st in self._read(q, args):
            d = json.loads(record)
            d["status"] = st
            out.append(d)
        return out

    # -- detector state -----------------------------------------------------------------------------------

    def save_state(self, name: str, data: dict[str, Any]) -> None:
        """Store a JSON-serialisable snapshot under ``name`` (replaces the previous one)."""
        with self.transaction() as c:
            c.execute(
                "INSERT INTO detector_state (name, data, updated_ms) VALUES (?,?,?) "
                "ON CONFLICT(name) DO UPDATE SET data = excluded.data, updated_ms = excluded.updated_ms",
                (name, json.dumps(data, ensure_ascii=False, separators=(",", ":")), now_ms()),
            )

    def load_state(self, name: str) -> dict[str, Any] | None:
        rows = self._read("SELECT data FROM detector_state WHERE name = ?", (name,))
        return json.loads(rows[0][0]) if rows else None

    # -- windows ------------------------------------------------------------------------------------------

    def add_windows(self, windows: Iterable[WindowResult]) -> int:
        """Store finalised windows, idempotent on (device_id, pollutant, start_ms); return how many given."""
        rows = [
            (
                w.device_id,
                w.pollutant,
                w.start_ms,
                w.end_ms,
                w.samples,
                w.expected,
                int(w.valid),
                w.invalid_reason,
                w.mean_mg_m3,
                w.max_mg_m3,
                int(w.exceeds),
            )
            for w in windows
        ]
        if not rows:
            return 0
        with self.transaction() as c:
            c.executemany(
                f"INSERT INTO windows ({', '.join(_WINDOW_COLUMNS)}) VALUES ({', '.join('?' * len(_WINDOW_COLUMNS))}) "
                "ON CONFLICT(device_id, pollutant, start_ms) DO UPDATE SET "
                + ", ".join(f"{c} = excluded.{c}" for c in _WINDOW_COLUMNS[3:]),
                rows,
            )
        return len(rows)

    def list_windows(
        self,
        device_id: str | None = None,
        pollutant: str | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
        device_ids: Iterable[str] | None = None,
    ) -> list[WindowResult]:
        """Windows whose start lies in ``[since_ms, until_ms)``, ordered by device, pollutant, start."""
        q = f"SELECT {', '.join(_WINDOW_COLUMNS)} FROM windows WHERE 1=1"
        args: list[Any] = []
        if device_id is not None:
            q += " AND device_id = ?"
            args.append(device_id)
        if device_ids is not None:
            ids = list(device_ids)
            q += f" AND device_id IN ({', '.join('?' * len(ids))})" if ids else " AND 0"
            args += ids
        if pollutant is not None:
            q += " AND pollutant = ?"
            args.append(pollutant)
        if since_ms is not None:
            q += " AND start_ms >= ?"
            args.append(since_ms)
        if until_ms is not None:
            q += " AND start_ms < ?"
            args.append(until_ms)
        q += " ORDER BY device_id, pollutant, start_ms"
        return [
            WindowResult(
                device_id=r[0],
                pollutant=r[1],
                start_ms=r[2],
                end_ms=r[3],
                samples=r[4],
                expected=r[5],
                valid=bool(r[6]),
                invalid_reason=r[7],
                mean_mg_m3=r[8],
                max_mg_m3=r[9],
                exceeds=bool(r[10]),
            )
            for r in self._read(q, args)
        ]

    def windows_frame(self, **filters: Any) -> pd.DataFrame:
        """:meth:`list_windows` as a pandas DataFrame (one row per window, columns as the table)."""
        import pandas as pd

        rows = [{c: getattr(w, c) for c in _WINDOW_COLUMNS} for w in self.list_windows(**filters)]
        return pd.DataFrame(rows, columns=list(_WINDOW_COLUMNS))

    # -- notices: the exactly-once gate -------------------------------------------------------------------

    def notice_begin(self, key: str, channel: str, target: str, payload: dict[str, Any]) -> bool:
        """Claim the notice (``key``, ``target``) before sending it: True = go ahead and send.

        In one transaction: if a row for (key, masked target) is ``sent``, answer False (already
        delivered, do not send again). Otherwise insert it, or move a ``pending``/``failed``/``skipped`` row,
        to ``pending`` with ``payload`` and answer True. ``key`` is :attr:`Transition.key`
        (``event_id:action``); ``target`` is masked before it is stored (:func:`mask_target`).
        ``payload`` (JSON) should carry the rendered notice and ``device_id``/``restaurant_id``, so a
        resend after a crash uses the same text; it must hold no secrets.
        """
        return self._claim(key, channel, target, payload, PENDING, "")

    def notice_done(self, key: str, target: str, ok: bool, error: str = "", attempts: int = 1) -> None:
        """Record the outcome of a send claimed with :meth:`notice_begin`: ``sent`` or ``failed``.

        ``attempts`` is added to the row's count (a retried failure accumulates); ``error`` is scrubbed.
        """
        with self.transaction() as c:
            cur = c.execute(
                "UPDATE notices SET status = ?, error = ?, attempts = attempts + ?, updated_ms = ? "
                "WHERE key = ? AND target = ? AND status != ?",
                (
                    SENT if ok else FAILED,
                    "" if ok else scrub(error),
                    attempts,
                    now_ms(),
                    key,
                    mask_target(target),
                    SENT,
                ),
            )
            if cur.rowcount == 0:
                exists = c.execute(
                    "SELECT 1 FROM notices WHERE key = ? AND target = ?", (key, mask_target(target))
                ).fetchone()
                if exists is None:
                    raise KeyError(f"notice_done without notice_begin for {key!r} -> {mask_target(target)!r}")

    def notice_skip(self, key: str, channel: str, target: str, reason: str, payload: dict[str, Any]) -> bool:
        """Record a notice that is not sent for a reason that is not an error (e.g. no owner_notify URL).

        Returns False (and changes nothing) when that (key, target) was already sent.
        """
        return self._claim(key, channel, target, payload, SKIPPED, reason)

    def _claim(
        self, key: str, channel: str, target: str, payload: dict[str, Any], status: str, error: str
    ) -> bool:
        masked = mask_target(target)
        event_id, action = _split_key(key)
        ts = now_ms()
        with self.transaction() as c:
            row = c.execute(
                "SELECT status FROM notices WHERE key = ? AND target = ?", (key, masked)
            ).fetchone()
            if row is not None and row[0] == SENT:
                return False
            c.execute(
                "INSERT INTO notices (key, target, event_id, action, channel, restaurant_id, device_id, status, "
                "attempts, error, payload, created_ms, updated_ms) VALUES (?,?,?,?,?,?,?,?,0,?,?,?,?) "
                "ON CONFLICT(key, target) DO UPDATE SET status = excluded.status, error = excluded.error, "
                "channel = excluded.channel, payload = excluded.payload, updated_ms = excluded.updated_ms",
                (
                    key,
                    masked,
                    event_id,
                    action,
                    channel,
                    str(payload.get("restaurant_id", "")),
                    str(payload.get("device_id", "")),
                    status,
                    scrub(error),
                    _dumps(payload),
                    ts,
                    ts,
                ),
            )
        return True

    def notice_status(self, key: str, target: str) -> str | None:
        rows = self._read(
            "SELECT status FROM notices WHERE key = ? AND target = ?", (key, mask_target(target))
        )
        return rows[0][0] if rows else None

    def pending_notices(self) -> list[NoticeRecord]:
        """Notices claimed but never resolved (a crash between claim and outcome), oldest first."""
        return self._notices("status = ?", [PENDING])

    def list_notices(
        self,
        event_id: str | None = None,
        key: str | None = None,
        status: str | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
        restaurant_id: str | None = None,
        action: str | None = None,
    ) -> list[NoticeRecord]:
        """Notices ordered by created time; ``since_ms``/``until_ms``: created in ``[since_ms, until_ms)``."""
        where, args = _where(
            None, None, event_id=event_id, key=key, status=status, restaurant_id=restaurant_id, action=action
        )
        if since_ms is not None:
            where += " AND created_ms >= ?"
            args.append(since_ms)
        if until_ms is not None:
            where += " AND created_ms < ?"
            args.append(until_ms)
        return self._notices(where, args)

    def _notices(self, where: str, args: list[Any]) -> list[NoticeRecord]:
        rows = self._read(
            f"SELECT {', '.join(_NOTICE_COLUMNS)} FROM notices WHERE {where} ORDER BY created_ms, key, target",
            args,
        )
        return [
            NoticeRecord(
                key=r[0],
                target=r[1],
                event_id=r[2],
                action=r[3],
                channel=r[4],
                restaurant_id=r[5],
                device_id=r[6],
                status=r[7],
                attempts=r[8],
                error=r[9],
                payload=json.loads(r[10]),
                created_ms=r[11],
                updated_ms=r[12],
            )
            for r in rows
        ]

    def notice_keys(self, event_ids: Iterable[str]) -> set[str]:
        """Transition keys that have at least one notice row, among ``event_ids`` (for catch-up scans)."""
        ids = list(event_ids)
        if not ids:
            return set()
        rows = self._read(
            f"SELECT DISTINCT key FROM notices WHERE event_id IN ({', '.join('?' * len(ids))})", ids
        )
        return {r[0] for r in rows}


def _event_row(e: Event) -> tuple:
    return (
        e.event_id,
        e.kind,
        e.restaurant_id,
        e.device_id,
        e.district,
        e.start_ms,
        e.end_ms,
        e.pollutant,
        e.peak_mg_m3,
        e.mean_mg_m3,
        e.limit_mg_m3,
        e.profile,
        e.level,
        e.state,
        _dumps(e.evidence or []),
    )


def _event_from_row(r: tuple) -> Event:
    return Event(
        event_id=r[0],
        kind=r[1],
        restaurant_id=r[2],
        device_id=r[3],
        district=r[4],
        start_ms=r[5],
        end_ms=r[6],
        pollutant=r[7],
        peak_mg_m3=r[8],
        mean_mg_m3=r[9],
        limit_mg_m3=r[10],
        profile=r[11],
        level=r[12],
        state=r[13],
        evidence=json.loads(r[14]),
    )
