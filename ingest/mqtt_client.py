"""The MQTT client every fumewatch service uses (paho v2 callback API): TLS, credentials, reconnect
back-off, the MQTT 5 CONNECT properties (session expiry, Receive Maximum), and a buffered socket read.

paho 2 reads each packet with at least three ``recv()`` calls (the command byte, each byte of the
remaining length, then the rest) and one ``select()``: four system calls per message. On a plain TCP
connection the client reads through :class:`BufferedSocket`, which takes up to 64 KiB per ``recv()``
from the kernel and hands paho the bytes it asks for. paho's loop already asks the socket for
``pending()`` bytes (for TLS, whose records it may hold decrypted) and then neither waits in
``select()`` nor skips the read, so buffered packets are processed at once (no added latency), and
paho's own handling of partial reads, closed connections and reconnects is unchanged. A read takes the
packets already buffered in one go (up to :data:`PACKETS_PER_READ`) before paho's loop turns to its
writes and keep-alive again.

Two more per-message costs of paho that a busy subscriber pays (BENCHMARKS.md, issue 14):

- An MQTT 5 PUBLISH gets a ``Properties`` object, whose constructor builds its three lookup tables anew
  and whose ``unpack`` first clears 27 names one ``hasattr`` at a time: about as much CPU as the rest of
  the packet. :class:`PublishProperties` shares the tables (they do not depend on the packet type) and
  returns at once when the packet has no properties (length 0), the usual case; anything else is
  unpacked by paho's own code. It is what paho's PUBLISH decoder constructs once this module is
  imported (:func:`_install_fast_properties`).
- ``ack(mid)`` queues one PUBACK, writes a byte to wake the network thread, and the network thread sends
  it with one ``send()``: per message. :meth:`Client.ack_many` queues the PUBACKs of a committed batch as
  one write.
"""

from __future__ import annotations

import logging
import socket
import struct
import sys
from collections.abc import Iterable

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ingest.config import Settings

log = logging.getLogger("fumewatch.ingest")
PUBACK = mqtt.PUBACK

SESSION_EXPIRY_S = 7 * 86400  # keep the broker-side session (and queued messages) for a week


#: Bytes taken from the kernel per real ``recv()``.
READ_BYTES = 65536
#: Buffered packets handled per read before paho's loop sends its queued packets (acks) again.
PACKETS_PER_READ = 256

_PUBACK = struct.Struct("!BBH")  # fixed header (PUBACK, remaining length 2), packet id: MQTT 3.1.1 and 5


class PublishProperties(Properties):
    """paho's ``Properties`` with the lookup tables shared and a short cut for "no properties"."""

    _tables = Properties(PacketTypes.PUBLISH)
    types = _tables.types
    names = _tables.names
    properties = _tables.properties

    def __init__(self, packetType: int) -> None:  # noqa: N803 - paho's name
        object.__setattr__(self, "packetType", packetType)

    def unpack(self, buffer: bytes | bytearray) -> tuple[Properties, int]:
        if buffer[:1] == b"\x00" and len(self.__dict__) == 1:  # length 0 and nothing to clear
            return self, 1
        return super().unpack(buffer)


def _install_fast_properties() -> None:
    """Have paho's packet decoders (``paho.mqtt._packet``, paho 2.2) build :class:`PublishProperties`;
    without that module (another paho) nothing is patched and paho's own class is used."""
    try:
        from paho.mqtt import _packet
    except ImportError:
        return
    if getattr(_packet, "Properties", None) is Properties:
        _packet.Properties = PublishProperties


_install_fast_properties()


class BufferedSocket:
    """A connected TCP socket whose ``recv(n)`` is served from a user-space buffer filled by one
    ``recv(READ_BYTES)`` when it is empty. ``pending()`` (the buffered bytes) tells paho's loop to read
    without waiting in ``select()``. Everything else is the socket's own."""

    __slots__ = ("_sock", "_data", "_pos")

    def __init__(self, sock: socket.socket) -> None:
        self._sock = sock
        self._data = b""
        self._pos = 0

    def recv(self, bufsize: int) -> bytes:
        data, pos = self._data, self._pos
        if pos < len(data):
            end = pos + bufsize
            self._pos = end
            return data[pos:end]
        data = self._sock.recv(max(bufsize, READ_BYTES))  # raises BlockingIOError when nothing is there
        if len(data) <= bufsize:
            self._data, self._pos = b"", 0
            return data
        self._data, self._pos = data, bufsize
        return data[:bufsize]

    def pending(self) -> int:
        return len(self._data) - self._pos

    def fileno(self) -> int:
        return self._sock.fileno()

    def __getattr__(self, name: str):  # send, close, setblocking, setsockopt, ...
        return getattr(self._sock, name)


class Client(mqtt.Client):
    """paho's client reading plain TCP connections through :class:`BufferedSocket` (TLS, websockets
    and Unix sockets as paho reads them)."""

    def loop_read(self, max_packets: int = 1) -> mqtt.MQTTErrorCode:
        rc = super().loop_read(max_packets)
        sock, n = self._sock, 1
        while not rc and n < PACKETS_PER_READ and type(sock) is BufferedSocket and sock.pending():
            if self._sock is not sock:  # closed or reconnected meanwhile
                break
            rc = super().loop_read(max_packets)
            n += 1
        return rc

    def ack_many(self, mids: Iterable[int]) -> None:
        """``ack(mid, 1)`` for each of ``mids`` (QoS 1, manual ack), queued as one write."""
        if not self._manual_ack:
            return
        packet = b"".join([_PUBACK.pack(PUBACK, 2, mid) for mid in mids])
        if packet:
            self._packet_queue(PUBACK, packet, 0, 1)

    def _create_socket(self):
        sock = super()._create_socket()
        if type(sock) is socket.socket and sock.family in (socket.AF_INET, socket.AF_INET6):
            return BufferedSocket(sock)
        return sock


def make_client(settings: Settings, client_id: str, *, manual_ack: bool = False) -> mqtt.Client:
    """A paho client configured from the [mqtt] settings (protocol, TLS, credentials, reconnect)."""
    m = settings.mqtt
    host, port, tls, user, pw = m.endpoint()
    protocol = mqtt.MQTTv5 if m.protocol == "5" else mqtt.MQTTv311
    kwargs = {}
    if protocol == mqtt.MQTTv311:
        kwargs["clean_session"] = False
    client = Client(
        mqtt.CallbackAPIVersion.VERSION2,
        client_id=client_id,
        protocol=protocol,
        manual_ack=manual_ack,
        reconnect_on_failure=True,
        **kwargs,
    )
    if user:
        client.username_pw_set(user, pw or None)
    if tls:
        client.tls_set(
            ca_certs=m.ca_file or None,
            certfile=m.cert_file or None,
            keyfile=m.key_file or None,
        )
    client.reconnect_delay_set(int(max(1, m.reconnect_min_s)), int(max(1, m.reconnect_max_s)))

    def on_connect_fail(client: mqtt.Client, userdata: object) -> None:
        # paho calls this inside its except block: the exception says why (refused, TLS, DNS ...)
        log.warning("event=broker_connect_failed client_id=%s error=%s", client_id, sys.exc_info()[1])

    client.on_connect_fail = on_connect_fail
    client.max_inflight_messages_set(1000)
    client.max_queued_messages_set(0)
    client._fw_endpoint = (host, port)  # type: ignore[attr-defined]
    return client


def connect_properties(settings: Settings) -> Properties | None:
    if settings.mqtt.protocol != "5":
        return None
    props = Properties(PacketTypes.CONNECT)
    props.SessionExpiryInterval = SESSION_EXPIRY_S
    props.ReceiveMaximum = settings.mqtt.receive_maximum
    return props
