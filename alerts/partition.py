"""Partitioned alerts workers (``fumewatch alerts --partition K/N``): which devices a worker owns, the
MQTT topics it subscribes to, and the lock that lets only one worker act for a partition.

**Ownership.** Device ``d`` belongs to partition ``blake2b-64(d) mod N`` (:func:`partition_of`): the first
8 bytes of the BLAKE2b digest of the UTF-8 device id, big-endian. It is stable across processes, machines
and Python versions (Python's own ``hash()`` is salted per process), and it depends on the device id
alone, so a device never moves while N stays the same. Notices and outbox rows without a device belong to
partition 0. A restaurant's devices may land in different partitions: its enforcement ladder is decided
in one ledger transaction with the restaurant locked (:func:`alerts.enforcement.episodes.decide`), so two
workers never decide one restaurant's step at once.

**Topics.** A partitioned worker subscribes to its devices' own topics (``{prefix}/{device}/reading`` and
``{prefix}/{device}/hj212``), in SUBSCRIBE packets of :data:`TOPICS_PER_PACKET` filters, and follows the
registry file as it changes (:class:`RegistryWatch`): new devices are subscribed, removed ones
unsubscribed.

**The lock** (:class:`PartitionLock`). PostgreSQL ledger: the session-level advisory lock
``(LOCK_NAMESPACE, K)`` on a connection of its own, held for the worker's life; the server releases it
when that connection ends (the process died, the host lost the network), and the standby that was
polling for it takes over. A worker also holds the shared advisory lock ``(LAYOUT_NAMESPACE, N)`` and
refuses to start while workers of another N run (their partitions would overlap). SQLite ledger (one
machine): an exclusive ``flock`` on ``<state>.alerts-K-of-N.lock``, released by the kernel when the
process ends. The active worker checks its lock every :data:`CHECK_S` seconds; a worker that lost it
stops (exit code 3) rather than risk acting next to the new holder.
"""

from __future__ import annotations

import fcntl
import hashlib
import logging
import os
import threading
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from sqlalchemy import text

from ingest.db import display, is_sqlite, make_engine
from ingest.registry import Device, Registry, RegistryError

log = logging.getLogger("fumewatch.alerts")

#: The two advisory-lock key spaces (int4 each): "fumewatch alerts partition" and "... layout".
LOCK_NAMESPACE = 0x66770001
LAYOUT_NAMESPACE = 0x66770002
#: Most partitions one layout may have.
MAX_PARTITIONS = 4096
#: Topic filters per SUBSCRIBE/UNSUBSCRIBE packet.
TOPICS_PER_PACKET = 500
#: How often the active worker checks that it still holds its lock, and a standby polls for it (s).
CHECK_S = 2.0
#: Topic levels a device id cannot contain when it is subscribed by name.
_TOPIC_SPECIAL = frozenset("+#/\x00")


class PartitionError(ValueError):
    """A partition that cannot be used (printed as one line by the command line)."""


def partition_of(device_id: str, count: int) -> int:
    """The partition (0 .. count-1) that owns ``device_id``."""
    digest = hashlib.blake2b(device_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") % count


@dataclass(frozen=True, slots=True)
class Partition:
    """Partition ``index`` of ``count`` (``K/N``)."""

    index: int
    count: int

    @classmethod
    def parse(cls, value: str) -> Partition:
        """``"K/N"`` with 0 <= K < N <= MAX_PARTITIONS."""
        k, sep, n = value.strip().partition("/")
        try:
            if not sep:
                raise ValueError
            part = cls(int(k), int(n))
        except ValueError:
            raise PartitionError(f"partition {value!r}: expected K/N, e.g. 0/2 (worker K of N)") from None
        if not 1 <= part.count <= MAX_PARTITIONS:
            raise PartitionError(f"partition {value!r}: N must be 1 .. {MAX_PARTITIONS}")
        if not 0 <= part.index < part.count:
            raise PartitionError(f"partition {value!r}: K must be 0 .. {part.count - 1} (counted from 0)")
        return part

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"

    @property
    def slug(self) -> str:
        """For client ids and file names: ``0-of-2``."""
        return f"{self.index}-of-{self.count}"

    def owns(self, device_id: str | None) -> bool:
        if not device_id:
            return self.index == 0
        return partition_of(device_id, self.count) == self.index

    def select(self, registry: Registry) -> Registry:
        """The devices of ``registry`` this partition owns."""
        return Registry(d for d in registry if self.owns(d.device_id))


def device_topics(prefix: str, devices: Iterable[Device | str]) -> list[str]:
    """The topics a partitioned worker subscribes to for ``devices`` (ids with MQTT wildcards or ``/``
    are skipped and logged: they cannot be subscribed by name, nor published to)."""
    prefix = prefix.strip("/")
    out: list[str] = []
    for d in devices:
        dev = d if isinstance(d, str) else d.device_id
        if not dev or _TOPIC_SPECIAL & set(dev):
            log.warning("event=partition_topic_skipped device_id=%r reason=not_a_topic_level", dev)
            continue
        out += [f"{prefix}/{dev}/reading", f"{prefix}/{dev}/hj212"]
    return out


def chunks(items: list[str], size: int = TOPICS_PER_PACKET) -> list[list[str]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


# ----------------------------------------------------------------------------------------- registry


class RegistryWatch:
    """The registry file, loaded again when it changes (modification time or size): :meth:`poll`."""

    def __init__(self, path: str | Path, loaded: Registry) -> None:
        self.path = Path(path)
        self.current = loaded
        self._sig = self._signature()

    def _signature(self) -> tuple[int, int] | None:
        try:
            st = self.path.stat()
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def poll(self) -> Registry | None:
        """The new registry if the file changed and loads; None otherwise (a broken or missing file is
        logged once per change and the registry in use stays)."""
        sig = self._signature()
        if sig is None or sig == self._sig:
            return None
        self._sig = sig
        try:
            new = Registry.load(self.path)
        except (OSError, RegistryError, UnicodeError) as exc:
            log.error("event=registry_reload_failed path=%s error=%s", self.path, str(exc)[:300])
            return None
        self.current = new
        return new


# ----------------------------------------------------------------------------------------- lock


class PartitionLock:
    """Exclusive ownership of one partition, across processes and hosts (see the module docstring)."""

    def __init__(self, state: str | Path, partition: Partition) -> None:
        self.partition = partition
        self.state = str(state)
        self.held = False
        self._sqlite = is_sqlite(state)
        self._conn = None
        self._engine = None
        self._layout = False  # this session holds the shared layout lock
        self._fd: int | None = None

    def describe(self) -> str:
        if self._sqlite:
            return f"flock {self._lock_path()}"
        return f"advisory lock ({LOCK_NAMESPACE}, {self.partition.index}) on {display(self.state)}"

    def _lock_path(self) -> Path:
        return Path(f"{self.state}.alerts-{self.partition.slug}.lock")

    # -- taking it
    def acquire(self, stop: threading.Event, on_wait: Callable[[], None] | None = None) -> bool:
        """Block until the lock is ours (True) or ``stop`` is set (False). Raises PartitionError if
        workers of another partition count hold the layout."""
        first = True
        while not stop.is_set():
            if self.try_acquire():
                return True
            if first:
                log.info(
                    "event=partition_standby partition=%s lock=%r: another worker is active; waiting",
                    self.partition,
                    self.describe(),
                )
                first = False
            if on_wait is not None:
                on_wait()
            stop.wait(CHECK_S)
        return False

    def try_acquire(self) -> bool:
        if self.held:
            return True
        self.held = self._try_sqlite() if self._sqlite else self._try_pg()
        return self.held

    def _try_sqlite(self) -> bool:
        path = self._lock_path()
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, f"{os.getpid()}\n".encode())
        self._fd = fd
        return True

    def _pg(self):
        if self._conn is None:
            if self._engine is None:
                self._engine = make_engine(self.state)
            self._conn = self._engine.connect().execution_options(isolation_level="AUTOCOMMIT")
        return self._conn

    def _try_pg(self) -> bool:
        p = self.partition
        try:
            c = self._pg()
            others = c.execute(
                text(
                    "SELECT DISTINCT objid FROM pg_locks WHERE locktype = 'advisory' AND classid = :ns "
                    "AND objsubid = 2 AND granted AND objid <> :n "
                    # advisory locks belong to a database; pg_locks shows every database of the server
                    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                ),
                {"ns": LAYOUT_NAMESPACE, "n": p.count},
            ).scalars()
            other = sorted(int(x) for x in others)
            if other:
                raise PartitionError(
                    f"alerts workers with {' and '.join(f'N={n}' for n in other)} partitions are running on "
                    f"{display(self.state)}: stop them before starting a layout of N={p.count}"
                )
            if not self._layout:  # once per session (advisory locks stack)
                c.execute(
                    text("SELECT pg_advisory_lock_shared(:ns, :n)"), {"ns": LAYOUT_NAMESPACE, "n": p.count}
                )
                self._layout = True
            got = c.execute(
                text("SELECT pg_try_advisory_lock(:ns, :k)"), {"ns": LOCK_NAMESPACE, "k": p.index}
            ).scalar()
        except PartitionError:
            self._close_pg()
            raise
        except Exception as exc:  # the database is down: keep waiting, do not act
            log.warning("event=partition_lock_unavailable partition=%s error=%s", p, str(exc)[:200])
            self._close_pg()
            return False
        return bool(got)  # a standby keeps its connection and the shared layout lock, and asks again

    # -- keeping it
    def check(self) -> bool:
        """True while the lock is still ours (PostgreSQL: our connection is alive and holds it)."""
        if not self.held:
            return False
        if self._sqlite:
            return True  # a flock lasts as long as the descriptor: this process's life
        try:
            still = self._conn.execute(  # type: ignore[union-attr]
                text(
                    "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND pid = pg_backend_pid() "
                    "AND classid = :ns AND objid = :k AND objsubid = 2 AND granted"
                ),
                {"ns": LOCK_NAMESPACE, "k": self.partition.index},
            ).scalar()
        except Exception as exc:
            log.error(
                "event=partition_lock_check_failed partition=%s error=%s", self.partition, str(exc)[:200]
            )
            still = 0
        if not still:
            self.held = False
        return bool(still)

    def release(self) -> None:
        self.held = False
        if self._fd is not None:
            os.close(self._fd)  # closing the descriptor releases the flock
            self._fd = None
        self._close_pg()
        if self._engine is not None:
            self._engine.dispose()
            self._engine = None

    def _close_pg(self) -> None:
        self._layout = False
        if self._conn is not None:
            try:
                self._conn.close()  # ends the session: the server releases its advisory locks
            except Exception:
                pass
            self._conn = None
        if self._engine is not None:
            self._engine.dispose()  # the pooled connection too: only a closed session frees the lock
            self._engine = None


class Fence:
    """Called before every commit (and every CHECK_S by the command's loop): if the lock is gone, the
    process ends at once, as a crash would (exit code 3: no commit, no acknowledgement, no notice), and
    the worker now holding the lock continues from the ledger and the broker's session."""

    def __init__(self, lock: PartitionLock, exit: Callable[[int], None] = os._exit) -> None:
        self.lock = lock
        self._exit = exit

    def __call__(self) -> None:
        if self.lock.check():
            return
        log.error(
            "event=partition_lock_lost partition=%s lock=%r: exiting so two workers never act at once",
            self.lock.partition,
            self.lock.describe(),
        )
        logging.shutdown()
        self._exit(3)


def subscribe_devices(
    client, prefix: str, devices: Iterable[Device | str], *, unsubscribe: bool = False
) -> int:
    """(Un)subscribe ``devices``' topics at QoS 1 on a connected paho client, in packets of
    TOPICS_PER_PACKET filters; returns the number of topic filters."""
    topics = device_topics(prefix, devices)
    for part in chunks(topics):
        if unsubscribe:
            client.unsubscribe(part)
        else:
            client.subscribe([(t, 1) for t in part])
    return len(topics)
