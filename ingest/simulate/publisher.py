"""The MQTT client of the simulator: paho-mqtt v2 with a window of unacknowledged messages."""

from __future__ import annotations

import contextlib
import threading
import time


class _ProtocolRefused(ConnectionError):
    """The broker does not speak the MQTT version we tried."""


_RC_UNSUPPORTED_PROTOCOL = 0x84  # MQTT 5 reason code; paho maps 3.1.1 CONNACK rc 1 to it as well


class _Publisher:
    """paho-mqtt v2 client that counts acknowledgements and keeps at most ``max_in_flight`` unacknowledged.

    The in-flight window is enforced here, not by paho's ``max_inflight_messages_set``: paho rescans all
    of its outstanding messages on every PUBACK when it has a limit, which costs more than the network at
    1000 in flight (measured here: ~5-6k msg/s with paho's limit at 1000, ~12k msg/s with this window).
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        tls: bool,
        username: str,
        password: str,
        client_id: str,
        qos: int,
        max_in_flight: int = 1000,
        protocol: str = "5",
        connect_timeout_s: float = 10.0,
    ) -> None:
        import paho.mqtt.client as mqtt  # imported here: registry/generation work without paho

        self._qos = qos
        self._window = max(1, max_in_flight)
        self._cond = threading.Condition()
        self._sent = 0
        self._acked = 0
        self._connected = threading.Event()
        self._connect_error = ""
        self.protocol_refused = False
        if protocol == "5":
            c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, protocol=mqtt.MQTTv5)
        elif protocol == "3.1.1":
            c = mqtt.Client(
                mqtt.CallbackAPIVersion.VERSION2,
                client_id=client_id,
                protocol=mqtt.MQTTv311,
                clean_session=True,
            )
        else:
            raise ValueError(f"MQTT protocol {protocol!r}: use '5', '3.1.1' or 'auto'")
        c.max_inflight_messages_set(0)  # no paho-side limit: the window below bounds what is in flight
        c.max_queued_messages_set(0)
        if username:
            c.username_pw_set(username, password or None)
        if tls:
            c.tls_set()
        c.on_connect = self._on_connect
        c.on_disconnect = self._on_disconnect
        c.on_publish = self._on_publish
        self._client = c
        try:
            c.connect(host, port, keepalive=30)
        except OSError as exc:
            raise ConnectionError(f"cannot connect to MQTT broker {host}:{port}: {exc}") from exc
        c.loop_start()
        if not self._connected.wait(connect_timeout_s) or self._connect_error:
            c.loop_stop()
            with contextlib.suppress(Exception):
                c.disconnect()
            reason = self._connect_error or f"no CONNACK within {connect_timeout_s:.0f} s"
            error = _ProtocolRefused if self.protocol_refused else ConnectionError
            raise error(f"MQTT broker {host}:{port} refused the connection (MQTT {protocol}): {reason}")

    def _on_connect(self, client, userdata, flags, reason_code, properties) -> None:  # noqa: ANN001
        if reason_code.is_failure:
            self._connect_error = str(reason_code)
            self.protocol_refused = reason_code.value == _RC_UNSUPPORTED_PROTOCOL
        self._connected.set()

    def _on_disconnect(self, client, userdata, flags, reason_code, properties) -> None:  # noqa: ANN001
        if not self._connected.is_set():
            # Some brokers (amqtt) drop a connection speaking a protocol they do not know without a CONNACK.
            self._connect_error = f"connection closed before CONNACK ({reason_code})"
            self.protocol_refused = True
            self._connected.set()

    def _on_publish(self, client, userdata, mid, reason_code, properties) -> None:  # noqa: ANN001
        with self._cond:
            self._acked += 1
            if self._sent - self._acked <= self._window // 2:
                self._cond.notify_all()

    def publish(self, topic: str, payload: bytes) -> None:
        with self._cond:
            while self._sent - self._acked >= self._window:
                self._cond.wait(1.0)
            self._sent += 1
        # qos >= 1 messages stay queued in paho across a reconnect, so rc NO_CONN is not a loss.
        self._client.publish(topic, payload, qos=self._qos)

    def wait_all(self, stall_timeout_s: float = 30.0) -> None:
        """Block until every publish is acknowledged; TimeoutError when nothing moves for the timeout."""
        with self._cond:
            last = self._acked
            deadline = time.monotonic() + stall_timeout_s
            while self._acked < self._sent:
                self._cond.wait(0.2)
                if self._acked != last:
                    last, deadline = self._acked, time.monotonic() + stall_timeout_s
                elif time.monotonic() > deadline:
                    raise TimeoutError(
                        f"{self._sent - self._acked} of {self._sent} messages not acknowledged "
                        f"after {stall_timeout_s:.0f} s"
                    )

    def close(self) -> None:
        try:
            self._client.disconnect()
        finally:
            self._client.loop_stop()
