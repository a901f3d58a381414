"""The MQTT client every fumewatch service uses (paho v2 callback API): TLS, credentials, reconnect
back-off, and the MQTT 5 CONNECT properties (session expiry, Receive Maximum)."""

from __future__ import annotations

import logging
import sys

import paho.mqtt.client as mqtt
from paho.mqtt.packettypes import PacketTypes
from paho.mqtt.properties import Properties

from ingest.config import Settings

log = logging.getLogger("fumewatch.ingest")

SESSION_EXPIRY_S = 7 * 86400  # keep the broker-side session (and queued messages) for a week


def make_client(settings: Settings, client_id: str, *, manual_ack: bool = False) -> mqtt.Client:
    """A paho client configured from the [mqtt] settings (protocol, TLS, credentials, reconnect)."""
    m = settings.mqtt
    host, port, tls, user, pw = m.endpoint()
    protocol = mqtt.MQTTv5 if m.protocol == "5" else mqtt.MQTTv311
    kwargs = {}
    if protocol == mqtt.MQTTv311:
        kwargs["clean_session"] = False
    client = mqtt.Client(
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
