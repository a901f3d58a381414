"""The simulated monitors as HJ 212 data loggers over TCP (``fumewatch simulate --gateway HOST:PORT
--format hj212``): :func:`run_gateway_simulation`.

Every device of the registry opens its own TCP connection to the gateway (asyncio: one task per
connection and one reading its answers, no thread per connection) and writes its frames in time order,
``batch`` frames per write: the frames of the MQTT hj212 path (:func:`~ingest.simulate.encode.encode_hj212`
with the registry's ``hj212_pw``), paced by simulated time the same way (``speed`` simulated seconds per
wall second; flat out when ``speed <= 0``).

Each frame's Flag (5) asks for an answer: after a write the logger waits up to ``answer_timeout_s`` for a
9014 data response with the QN of each of its frames (checked: header, length, CRC), writes the
unanswered ones again, at most ``resends`` times, then counts what is left as unanswered and goes on.
A connection the gateway closed (its idle timeout, a restart) is opened again for the next write; frames
written on a connection that closed before they were answered are resent on the new one. A gateway that
cannot be reached within ``connect_timeout_s`` ends the run (ConnectionError).

Fault messages (``inject_faults``, :class:`~ingest.simulate.faults.FaultPlan`: garbage bytes, a bad CRC,
a truncated frame, NaN, negative, a future time) are written, unawaited, on the connection of the device
they name, where the MQTT path publishes them to that device's topic; the unknown device's on a
connection of its own. Data-integrity faults (``model.inject``) are in the generated series already.
"""

from __future__ import annotations

import asyncio
import contextlib
import re
import resource
from collections import Counter
from dataclasses import dataclass, field

from ingest.config import DEFAULT_FACTORS
from ingest.config_gateway import parse_host_port
from ingest.hj212 import crc16
from ingest.registry import Registry
from ingest.simulate.encode import encode_hj212
from ingest.simulate.faults import FaultPlan
from ingest.simulate.model import DEFAULT_MODEL, KitchenModel
from ingest.simulate.series import SimReading, count_readings, generate

#: The data response's CN (HJ 212-2017 数据应答; ingest/gateway/protocol.py answers with it).
CN_DATA_RESPONSE = b"9014"
#: Connections being opened at once at the start (the gateway's listen backlog is 1024).
CONNECTS_AT_ONCE = 200
#: Frames (or writes of ``batch`` frames) a device may have waiting for its connection.
QUEUED_FRAMES = 64
_QN = re.compile(rb"QN=([^;&]*)")
_CN = re.compile(rb"CN=([^;&]*)")

#: A write: its frames, each with the QN its 9014 must carry (None: not waited for, a fault message).
Write = list[tuple[bytes, bytes | None]]


@dataclass
class GatewayStats:
    """What :func:`run_gateway_simulation` did. ``frames`` counts every frame (or fault message) written
    once; ``readings`` the valid readings among them, the frames that wait for a 9014: ``answered``,
    ``unanswered`` (after every resend) and ``resent`` (each frame written again counts once)."""

    frames: int = 0
    readings: int = 0
    answered: int = 0
    resent: int = 0
    unanswered: int = 0
    connections: int = 0  # opened, reconnections included
    peak_open: int = 0  # open at once
    bad_answers: int = 0  # answers with a wrong length or CRC (not counted as answers)
    faults: dict[str, int] = field(default_factory=dict)
    devices: int = 0
    elapsed_s: float = 0.0
    open_now: int = 0

    @property
    def frames_per_s(self) -> float:
        return self.answered / self.elapsed_s if self.elapsed_s > 0 else 0.0


@dataclass(frozen=True)
class _Options:
    host: str
    port: int
    answer_timeout_s: float
    resends: int
    connect_timeout_s: float


def _answer_qn(line: bytes) -> bytes | None:
    """The QN of a well-formed 9014 data response (header, length, CRC right), else None."""
    seg = line[6:-6]
    if not line.startswith(b"##") or line[2:6] != b"%04d" % len(seg):
        return None
    if line[-6:-2] != b"%04X" % crc16(seg):
        return None
    cn = _CN.search(seg)
    if cn is None or cn.group(1) != CN_DATA_RESPONSE:
        return b""
    qn = _QN.search(seg)
    return qn.group(1) if qn else b""


class _Logger:
    """One device's data logger: its connection, its queue of writes, the answers it waits for."""

    def __init__(self, device_id: str, opts: _Options, stats: GatewayStats, connects: asyncio.Semaphore):
        self.device_id = device_id
        self.opts = opts
        self.stats = stats
        self.connects = connects
        self.queue: asyncio.Queue[Write | None] = asyncio.Queue()
        self.writer: asyncio.StreamWriter | None = None
        self._reading: asyncio.Task | None = None
        self._waiting: Counter = Counter()  # QN -> frames of the current write still unanswered
        self._left = 0
        self._answered = asyncio.Event()  # every frame of the write answered, or the connection ended

    # ------------------------------------------------------------------ the connection
    async def connect(self) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.opts.connect_timeout_s
        delay = 0.05
        async with self.connects:
            while True:
                try:
                    async with asyncio.timeout_at(deadline):
                        reader, writer = await asyncio.open_connection(self.opts.host, self.opts.port)
                    break
                except OSError as exc:  # refused, unreachable, TimeoutError
                    if loop.time() + delay >= deadline:
                        reason = exc.strerror or str(exc) or type(exc).__name__
                        raise ConnectionError(
                            f"cannot connect to the HJ 212 gateway {self.opts.host}:{self.opts.port} "
                            f"within {self.opts.connect_timeout_s:g} s: {reason}"
                        ) from None
                    await asyncio.sleep(delay)
                    delay = min(1.0, delay * 2)
        self.writer = writer
        self._reading = asyncio.create_task(self._read(reader))
        self.stats.connections += 1
        self.stats.open_now += 1
        self.stats.peak_open = max(self.stats.peak_open, self.stats.open_now)

    async def _read(self, reader: asyncio.StreamReader) -> None:
        """The answers, until the gateway closes the connection."""
        try:
            while True:
                line = await reader.readuntil(b"\r\n")
                qn = _answer_qn(line)
                if qn is None:
                    self.stats.bad_answers += 1
                elif self._waiting[qn] > 0:
                    self._waiting[qn] -= 1
                    self._left -= 1
                    if self._left == 0:
                        self._answered.set()
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, OSError):
            pass
        finally:
            self._answered.set()  # whoever waits stops waiting: the connection is over

    @property
    def connected(self) -> bool:
        return self.writer is not None and self._reading is not None and not self._reading.done()

    async def close(self, linger_s: float) -> None:
        """Stop writing and let the gateway finish what it read (it closes once it has), then close."""
        writer, reading = self.writer, self._reading
        self.writer = self._reading = None
        if writer is None or reading is None:
            return
        with contextlib.suppress(ConnectionError, OSError, RuntimeError):
            if not reading.done() and writer.can_write_eof():
                writer.write_eof()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(asyncio.shield(reading), linger_s)
        reading.cancel()
        writer.close()
        with contextlib.suppress(ConnectionError, OSError):
            await writer.wait_closed()
        self.stats.open_now -= 1

    # ------------------------------------------------------------------ writing
    async def run(self) -> None:
        while (write := await self.queue.get()) is not None:
            await self._send(write)
        await self.close(self.opts.answer_timeout_s)

    async def _send(self, write: Write) -> None:
        attempt = 0
        while True:
            if not self.connected:
                await self.close(0)
                await self.connect()
            assert self.writer is not None
            expect = [(f, qn) for f, qn in write if qn is not None]
            self._waiting = Counter(qn for _, qn in expect)
            self._left = len(expect)
            self._answered.clear()
            try:
                self.writer.write(b"".join(f for f, _ in write))
                await self.writer.drain()
                if expect:
                    with contextlib.suppress(TimeoutError):
                        async with asyncio.timeout(self.opts.answer_timeout_s):
                            await self._answered.wait()
            except (ConnectionError, OSError):
                pass  # the reader ends too; what was not answered is sent again
            left = self._unanswered(expect)
            self._waiting = Counter()
            self.stats.answered += len(expect) - len(left)
            if not left:
                return
            if attempt >= self.opts.resends:
                self.stats.unanswered += len(left)
                return
            attempt += 1
            self.stats.resent += len(left)
            write = left
            if not self.connected:
                await asyncio.sleep(0.2)  # closed on us (a limit, a restart): not at once again

    def _unanswered(self, expect: Write) -> Write:
        """The frames of ``expect`` whose answers did not come (of frames sharing a QN, the last ones)."""
        owed = Counter({qn: n for qn, n in self._waiting.items() if n > 0})
        left = []
        for f, qn in reversed(expect):
            if owed[qn] > 0:
                owed[qn] -= 1
                left.append((f, qn))
        return left[::-1]


def parse_gateway(text: str) -> tuple[str, int]:
    """``--gateway HOST:PORT``: a host and a port are both needed."""
    return parse_host_port(text, "--gateway")


def _qn_of(frame: bytes) -> bytes:
    m = _QN.search(frame)
    return m.group(1) if m else b""


def _raise_open_files_limit(n_connections: int) -> None:
    """A connection is a file descriptor: raise the soft limit towards the hard one when too low."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = n_connections + 256
    if soft != resource.RLIM_INFINITY and soft < need:
        new = need if hard == resource.RLIM_INFINITY else min(need, hard)
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (new, hard))


def run_gateway_simulation(
    gateway: tuple[str, int],
    registry: Registry,
    *,
    start_ms: int,
    hours: float,
    speed: float,
    seed: int = 1,
    interval_s: int = 60,
    batch: int = 1,
    inject_faults: bool = False,
    topic_prefix: str = "fume/v1",
    factors: dict[str, str] | None = None,
    tz: str = "Asia/Shanghai",
    model: KitchenModel = DEFAULT_MODEL,
    answer_timeout_s: float = 10.0,
    resends: int = 3,
    connect_timeout_s: float = 10.0,
) -> GatewayStats:
    """Send :func:`generate`'s readings as HJ 212 frames to the gateway at ``gateway`` (host, port), one
    TCP connection per device; returns once every device's frames are answered or given up on."""
    if batch < 1:
        raise ValueError("batch must be >= 1")
    if resends < 0 or answer_timeout_s <= 0:
        raise ValueError("resends must be >= 0 and answer_timeout_s > 0")
    opts = _Options(gateway[0], gateway[1], answer_timeout_s, resends, connect_timeout_s)
    _raise_open_files_limit(len(registry) + 1)
    return asyncio.run(
        _simulate(
            opts, registry, start_ms=start_ms, hours=hours, speed=speed, seed=seed, interval_s=interval_s,
            batch=batch, inject_faults=inject_faults, topic_prefix=topic_prefix,
            factors=dict(factors or DEFAULT_FACTORS), tz=tz, model=model,
        )
    )  # fmt: skip


async def _simulate(
    opts: _Options,
    registry: Registry,
    *,
    start_ms: int,
    hours: float,
    speed: float,
    seed: int,
    interval_s: int,
    batch: int,
    inject_faults: bool,
    topic_prefix: str,
    factors: dict[str, str],
    tz: str,
    model: KitchenModel,
) -> GatewayStats:
    stats = GatewayStats(devices=len(registry))
    pws = {d.device_id: (d.hj212_pw or "123456") for d in registry}
    total = count_readings(registry, start_ms, hours, seed=seed, interval_s=interval_s, model=model)
    faults = FaultPlan(
        registry=registry,
        enabled=inject_faults,
        total=total,
        hours=hours,
        seed=seed,
        fmt="hj212",
        model=model,
    )
    connects = asyncio.Semaphore(CONNECTS_AT_ONCE)
    loggers = {d.device_id: _Logger(d.device_id, opts, stats, connects) for d in registry}
    limit = max(1, QUEUED_FRAMES // batch)
    for lg in loggers.values():
        lg.queue = asyncio.Queue(limit)
    try:
        await _gather_first_error(*(lg.connect() for lg in loggers.values()))
        loop = asyncio.get_running_loop()
        wall0 = loop.time()
        async with asyncio.TaskGroup() as tg:
            for lg in loggers.values():
                tg.create_task(lg.run())

            def logger_of(dev: str) -> _Logger:
                if dev not in loggers:  # the unknown device: a connection of its own, opened on its write
                    loggers[dev] = _Logger(dev, opts, stats, connects)
                    tg.create_task(loggers[dev].run())
                return loggers[dev]

            def frame(r: SimReading) -> tuple[bytes, bytes]:
                f = encode_hj212(r, factors=factors, tz=tz, pw=pws[r.device_id])
                return f, _qn_of(f)

            buffers: dict[str, Write] = {}
            step_t = None
            done = 0
            for r in generate(registry, start_ms, hours, seed=seed, interval_s=interval_s, model=model):
                if r.time_ms != step_t:
                    step_t = r.time_ms
                    wait = wall0 + (r.time_ms - start_ms) / 1000 / speed - loop.time() if speed > 0 else 0
                    await asyncio.sleep(max(0.0, wait))  # and the connections' turn at every step
                buf = buffers.setdefault(r.device_id, [])
                buf.append(frame(r))
                if len(buf) >= batch:
                    await loggers[r.device_id].queue.put(buf)
                    buffers[r.device_id] = []
                stats.frames += 1
                stats.readings += 1
                for dev, _topic, payload in faults.after(
                    done, r, topic_prefix=topic_prefix, factors=factors, tz=tz, pws=pws
                ):
                    await logger_of(dev).queue.put([(payload, None)])
                    stats.frames += 1
                done += 1
            for dev, buf in buffers.items():
                if buf:
                    await loggers[dev].queue.put(buf)
            for lg in list(loggers.values()):
                await lg.queue.put(None)
        stats.elapsed_s = loop.time() - wall0
    except BaseExceptionGroup as group:  # a connection that could not be opened ends the run
        raise _first(group) from None
    finally:
        for lg in loggers.values():
            await lg.close(0)
    stats.faults = dict(faults.counts)
    return stats


async def _gather_first_error(*coros) -> None:
    """Run ``coros`` concurrently; the first error cancels the rest and is raised."""
    async with asyncio.TaskGroup() as tg:
        for c in coros:
            tg.create_task(c)


def _first(group: BaseExceptionGroup) -> BaseException:
    exc: BaseException = group
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc
