"""The asyncio TCP server the data loggers connect to (``fumewatch hj212-gateway``).

One task per connection (no thread per connection): read what the socket gives, cut it into frames
(:class:`~ingest.gateway.framer.Framer`), and for each frame, in order:

1. the connection's frame rate (a token bucket): over it, the frame is refused unanswered, counted;
2. its MN: a connection's first frame naming a registry MN binds it (even if that frame is refused, so
   a logger with a wrong PW shows in ``fumewatch devices``); a later frame with another MN is refused
   (``mn_switch``) and goes to the bound device's topic, where ingest dead-letters it (``mn_mismatch``);
3. the registry, the CRC (the device's dialect) and the registry's ``hj212_pw``: a frame that fails is
   still published (to ``{prefix}/{MN}/hj212``, or ``{prefix}/_unbound/hj212`` when its MN cannot be a
   topic segment), so ingest keeps it as a dead letter with its reason, but it is never answered;
4. a valid frame is published with QoS 1; once the broker acknowledged it, a 9014 answers it if its Flag
   asks, and a time-calibration request (1013) gets a set-time command (1012).

Garbage between frames and oversize frames are counted and published as excerpts for their dead letters
(at most one a connection every :data:`GARBAGE_EVERY_S`). Idle connections are closed after
``idle_timeout_s`` without a frame (garbage does not keep one open); connections beyond ``max_connections`` (or ``max_connections_per_peer`` from one
address) are closed at once, counted.
"""

from __future__ import annotations

import asyncio
import logging
import re
import ssl
import time
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from ingest.config import Settings
from ingest.gateway import protocol
from ingest.gateway.framer import Framer, Piece
from ingest.gateway.publisher import Publisher
from ingest.hj212 import HJ212Error, parse_frame
from ingest.pipeline import Pipeline
from ingest.registry import Registry
from ingest.timeutil import now_ms, zone

log = logging.getLogger("fumewatch.gateway")

GARBAGE_EVERY_S = 10.0
#: Refusals that come in floods: logged at most once a connection every GARBAGE_EVERY_S (all counted).
QUIET = frozenset({"garbage", "oversize", "rate_limited"})
UNBOUND = "_unbound"
_MN = re.compile(rb"MN=([^;&]*)")
_TOPIC_SAFE = re.compile(r"^[^/+#\x00-\x1f\s]{1,64}$")


@dataclass
class Connection:
    """One logger's connection, as ``fumewatch devices`` and /metrics show it."""

    peer: str
    since_ms: int
    mn: str = ""
    #: The registry MN of the connection's first frame, valid or not (a logger whose frames are all
    #: refused still shows in fumewatch devices, with its last error).
    claimed_mn: str = ""
    frames: int = 0
    acks: int = 0
    refused: Counter = field(default_factory=Counter)
    last_error: str = ""
    last_frame_ms: int = 0
    _tokens: float = 0.0
    _refill: float = 0.0
    _garbage_at: float = 0.0
    hung_up: bool = False
    _logged_at: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "peer": self.peer,
            "since_ms": self.since_ms,
            "mn": self.mn,
            "claimed_mn": self.claimed_mn,
            "frames": self.frames,
            "acks": self.acks,
            "refused": dict(self.refused),
            "last_error": self.last_error,
            "last_frame_ms": self.last_frame_ms,
        }


class Gateway:
    def __init__(self, settings: Settings, registry: Registry, publisher: Publisher) -> None:
        self.settings = settings
        self.g = settings.gateway
        self.registry = registry
        self.publisher = publisher
        self.prefix = settings.mqtt.topic_prefix.strip("/")
        self.decoder = Pipeline(settings, registry)  # for each device's dialect (its CRC variants)
        self.tz = zone(settings.hj212.timezone)
        self.connections: dict[int, Connection] = {}
        self.by_peer: Counter = Counter()
        self.totals: Counter = Counter()  # connections, frames, acks, refused:<reason>, garbage_bytes ...
        self.server: asyncio.base_events.Server | None = None

    async def start(self, host: str, port: int) -> asyncio.base_events.Server:
        ctx = None
        if self.g.tls_cert_file:
            ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ctx.load_cert_chain(self.g.tls_cert_file, self.g.tls_key_file or None)
        self.server = await asyncio.start_server(
            self._handle, host, port, ssl=ctx, limit=self.g.max_frame_bytes, backlog=1024
        )
        addr = self.server.sockets[0].getsockname()
        log.info("event=gateway_listening address=%s:%d tls=%s", addr[0], addr[1], bool(ctx))
        return self.server

    # ------------------------------------------------------------------ connections
    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peername = writer.get_extra_info("peername") or ("?", 0)
        peer_ip = str(peername[0])
        peer = f"{peer_ip}:{peername[1]}"
        if (
            len(self.connections) >= self.g.max_connections
            or self.by_peer[peer_ip] >= self.g.max_connections_per_peer
        ):
            which = (
                "max_connections"
                if len(self.connections) >= self.g.max_connections
                else "max_connections_per_peer"
            )
            self.totals[f"refused_connection:{which}"] += 1
            log.warning("event=gateway_connection_refused peer=%s limit=%s", peer, which)
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, OSError):
                pass
            return
        conn = Connection(peer, now_ms(), _tokens=float(self.g.max_frame_burst), _refill=time.monotonic())
        key = id(conn)
        self.connections[key] = conn
        self.by_peer[peer_ip] += 1
        self.totals["connections"] += 1
        framer = Framer(self.g.max_frame_bytes)
        why = "closed"
        # idle: no frame for idle_timeout_s (garbage does not keep a connection open)
        last_frame = time.monotonic()
        try:
            while True:
                left = self.g.idle_timeout_s - (time.monotonic() - last_frame)
                try:
                    if left <= 0:
                        raise TimeoutError
                    data = await asyncio.wait_for(reader.read(65536), left)
                except TimeoutError:
                    why = "idle_timeout"
                    self.totals["idle_timeouts"] += 1
                    break
                if not data:
                    break
                for piece in framer.feed(data):
                    if piece.kind == "frame":
                        last_frame = time.monotonic()
                    await self._piece(conn, piece, writer)
                if conn.hung_up:
                    why = "hung_up"
                    break
            for piece in framer.flush():
                await self._piece(conn, piece, writer)
        except (ConnectionError, OSError) as exc:
            why = f"error:{type(exc).__name__}"
        finally:
            del self.connections[key]
            self.by_peer[peer_ip] -= 1
            if self.by_peer[peer_ip] <= 0:
                del self.by_peer[peer_ip]
            log.info(
                "event=gateway_disconnected peer=%s mn=%s frames=%d acks=%d why=%s",
                peer,
                conn.mn,
                conn.frames,
                conn.acks,
                why,
            )
            writer.close()
            try:
                await writer.wait_closed()
            except (ConnectionError, OSError):
                pass

    def _refuse(self, conn: Connection, reason: str, detail: str = "") -> None:
        conn.refused[reason] += 1
        conn.last_error = f"{reason}: {detail}" if detail else reason
        self.totals[f"refused:{reason}"] += 1
        now = time.monotonic()
        if reason not in QUIET or now - conn._logged_at >= GARBAGE_EVERY_S:  # a flood is logged now and then
            conn._logged_at = now
            log.info(
                "event=gateway_refused peer=%s mn=%s reason=%s detail=%r count=%d",
                conn.peer,
                conn.mn,
                reason,
                detail[:120],
                conn.refused[reason],
            )

    def _take_token(self, conn: Connection) -> bool:
        now = time.monotonic()
        conn._tokens = min(
            float(self.g.max_frame_burst), conn._tokens + (now - conn._refill) * self.g.max_frames_per_s
        )
        conn._refill = now
        if conn._tokens < 1.0:
            return False
        conn._tokens -= 1.0
        return True

    def _topic(self, device_id: str) -> str:
        return f"{self.prefix}/{device_id if _TOPIC_SAFE.match(device_id) else UNBOUND}/hj212"

    # ------------------------------------------------------------------ pieces
    async def _piece(self, conn: Connection, piece: Piece, writer: asyncio.StreamWriter) -> None:
        if piece.kind != "frame":
            self.totals[f"{piece.kind}_bytes"] += piece.size
            self._refuse(conn, piece.kind, f"{piece.size} bytes")
            now = time.monotonic()
            if now - conn._garbage_at >= GARBAGE_EVERY_S:  # its dead letter, at most one in a while
                conn._garbage_at = now
                await self.publisher.forward(self._topic(conn.mn or UNBOUND), piece.data)
            return
        if not self._take_token(conn):
            self._refuse(conn, "rate_limited", f"over {self.g.max_frames_per_s:g} frames/s")
            return
        m = _MN.search(piece.data)
        mn = m.group(1).decode("ascii", "replace") if m else ""
        bound = conn.mn or conn.claimed_mn  # its first registry MN, even before a frame passed
        if bound and mn != bound:
            self._refuse(conn, "mn_switch", f"MN {mn[:64]!r} on a connection bound to {bound!r}")
            await self.publisher.forward(self._topic(bound), piece.data)  # ingest: mn_mismatch
            return
        device = self.registry.get(mn) if mn else None
        if device is not None and not conn.claimed_mn:
            conn.claimed_mn = mn  # a registry MN it says it is, before the checks (fumewatch devices)
        topic = self._topic(mn or UNBOUND)
        if device is None:
            self._refuse(conn, "unknown_device", mn[:64])
            await self.publisher.forward(topic, piece.data)  # ingest: unknown_device
            return
        dialect = self.decoder.dialect_of(device)
        text = piece.data.decode("ascii", "surrogateescape")
        try:
            frame = parse_frame(text, qn_optional=dialect.qn_optional, crc_variants=dialect.crc_variants)
        except HJ212Error as e:
            self._refuse(conn, f"hj212_{e.reason}", e.message[:120])
            await self.publisher.forward(topic, piece.data)  # ingest: its dead letter
            return
        if device.hj212_pw and frame.pw != device.hj212_pw:
            self._refuse(conn, "bad_pw")
            await self.publisher.forward(topic, piece.data)  # ingest: bad_pw
            return
        conn.mn = conn.mn or mn
        if not await self.publisher.publish(topic, piece.data, self.g.publish_timeout_s):
            self._refuse(conn, "broker_timeout", f"no acknowledgement in {self.g.publish_timeout_s:g} s")
            return
        conn.frames += 1
        conn.last_frame_ms = now_ms()
        self.totals["frames"] += 1
        answer = b""
        if frame.cn == protocol.CN_TIME_REQUEST:
            answer = protocol.set_time(frame, datetime.now(self.tz))
            self.totals["time_set"] += 1
        elif protocol.wants_answer(frame) and not protocol.is_response(frame):
            answer = protocol.data_response(frame)
        if answer and not conn.hung_up:
            try:
                writer.write(answer)
                await writer.drain()
            except (ConnectionError, OSError):
                # the logger hung up: the frames already read are still published (not answered)
                conn.hung_up = True
                return
            conn.acks += 1
            self.totals["acks"] += 1

    def snapshot(self) -> list[dict[str, Any]]:
        return [c.as_dict() for c in self.connections.values()]
