"""The HJ 212 TCP gateway (``fumewatch hj212-gateway``, ``[gateway] listen``): data loggers connect over
TCP and write frames; each frame goes to the broker as ``fume/v1/{MN}/hj212`` (QoS 1), so ingest decodes
it exactly as a frame sent over MQTT (docs/gateway.md).

- ``framer.py``: frames out of a byte stream;
- ``protocol.py``: what the gateway answers (9014 data response, 1012 set time);
- ``publisher.py``: the broker session, an acknowledgement awaited per frame;
- ``server.py``: the asyncio server, one task per connection, its limits and counters;
- ``runner.py``: the server on a loop thread of its own (``fumewatch hj212-gateway``, ``fumewatch run``);
- ``status.py``: the connections written to the state database for ``fumewatch devices``;
- ``metrics.py``: its /metrics families and /healthz;
- ``settings.py``: ``[gateway]``.
"""
