#!/usr/bin/env python3
"""Container health check of the fumewatch image (standard library only; the slim image has no curl).

    fumewatch-healthcheck               what PID 1 runs decides: `fumewatch api` -> http,
                                        `fumewatch ingest|alerts|run` -> mqtt, anything else -> healthy
    fumewatch-healthcheck http [URL]    GET URL (default $FUMEWATCH_HEALTHCHECK_URL or
                                        http://127.0.0.1:8080/healthz) answers 2xx within 4 s
    fumewatch-healthcheck mqtt [PORT]   this container holds an ESTABLISHED TCP connection to the broker
                                        port (default: the port of $FUMEWATCH_MQTT_BROKER, else 1883/8883)

The mqtt check reads /proc/net/tcp{,6} of the container's network namespace: the service is healthy while
its MQTT client is connected (paho reconnects by itself; a long disconnection turns the container
unhealthy). Exit status 0 = healthy, 1 = unhealthy, with one line saying why.
"""

from __future__ import annotations

import os
import sys
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import urlsplit

ESTABLISHED = "01"
DEFAULT_URL = "http://127.0.0.1:8080/healthz"
CHECKS = {"api": "http", "ingest": "mqtt", "alerts": "mqtt", "run": "mqtt"}


def broker_port() -> int:
    url = os.environ.get("FUMEWATCH_MQTT_BROKER", "mqtt://127.0.0.1:1883")
    parts = urlsplit(url if "://" in url else f"mqtt://{url}")
    tls = parts.scheme in ("mqtts", "ssl") or bool(os.environ.get("FUMEWATCH_MQTT_CA_FILE"))
    return parts.port or (8883 if tls else 1883)


def mqtt_connected(port: int) -> tuple[bool, str]:
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            if len(fields) > 3 and fields[3] == ESTABLISHED and int(fields[2].rsplit(":", 1)[1], 16) == port:
                return True, f"connected to the broker (port {port})"
    return False, f"no established connection to the broker port {port}"


def http_ok(url: str) -> tuple[bool, str]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
    try:
        with opener.open(url, timeout=4) as resp:
            return 200 <= resp.status < 300, f"{url} answered {resp.status}"
    except urllib.error.HTTPError as exc:
        return False, f"{url} answered {exc.code}"
    except OSError as exc:
        return False, f"{url}: {exc}"


def pid1_command() -> str:
    """The long-running fumewatch command PID 1 runs (api, ingest, alerts, run), or ''."""
    try:
        argv = Path("/proc/1/cmdline").read_bytes().decode(errors="replace").split("\0")
    except OSError:
        return ""
    for i, arg in enumerate(argv):
        is_module = arg == "-m" and i + 1 < len(argv) and argv[i + 1] == "fumewatch"  # python -m fumewatch
        if is_module or os.path.basename(arg) == "fumewatch":
            return next((a for a in argv[i + 1 :] if a in CHECKS), "")
    return ""


def main(argv: list[str]) -> int:
    mode = argv[0] if argv else ""
    if not mode:
        command = pid1_command()
        mode = CHECKS.get(command, "none")
    if mode == "http":
        ok, why = http_ok(
            argv[1] if len(argv) > 1 else os.environ.get("FUMEWATCH_HEALTHCHECK_URL", DEFAULT_URL)
        )
    elif mode == "mqtt":
        ok, why = mqtt_connected(int(argv[1]) if len(argv) > 1 else broker_port())
    elif mode == "none":
        ok, why = True, "nothing to check for this command"
    else:
        print(f"usage: fumewatch-healthcheck [http [URL] | mqtt [PORT]], not {mode!r}", file=sys.stderr)
        return 2
    print(("healthy: " if ok else "unhealthy: ") + why)
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
