"""Broker URLs and ``--connect-timeout`` as a user meets them: real ``python -m fumewatch`` processes.

Accepted forms: mqtt://, mqtts://, tcp:// (= mqtt), ssl:// (= mqtts) and bare host[:port]; anything else
is refused at config load listing them. A one-off command (simulate) gives up after --connect-timeout
(default 10 s) with one line; the services (ingest, alerts, run) do so for their first connection only
when --connect-timeout is given.
"""

from __future__ import annotations

import time
from pathlib import Path

import pytest
from servers import free_port, run_fumewatch

REPO = Path(__file__).resolve().parent.parent


run_cli = run_fumewatch  # python -m fumewatch ARGV in cwd (tests/servers.py)


@pytest.fixture
def registry(tmp_path: Path) -> Path:
    proc = run_cli(tmp_path, "simulate", "--write-registry", "registry.csv", "--restaurants", "2")
    assert proc.returncode == 0, proc.stderr
    return tmp_path / "registry.csv"


@pytest.mark.parametrize(
    "argv",
    [
        ["simulate", "--hours", "0.1"],
        ["ingest", "--store", "r.db", "--state", "s.db"],
        ["alerts", "--store", "r.db", "--state", "s.db"],
        ["run", "--store", "r.db", "--state", "s.db"],
    ],
)
@pytest.mark.parametrize("form", ["mqtt://127.0.0.1:{port}", "tcp://127.0.0.1:{port}", "127.0.0.1:{port}"])
def test_unreachable_broker_fails_fast_in_one_line(tmp_path, registry, argv, form):
    port = free_port()  # nothing listens there
    t0 = time.monotonic()
    proc = run_cli(
        tmp_path,
        *argv,
        "--registry",
        str(registry),
        "--broker",
        form.format(port=port),
        "--connect-timeout",
        "1",
    )
    elapsed = time.monotonic() - t0
    assert proc.returncode == 2, (proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    assert proc.stderr == (
        f"fumewatch {argv[0]}: cannot reach broker mqtt://127.0.0.1:{port} within 1 s: Connection refused\n"
    )
    assert elapsed < 15
    assert not (tmp_path / "r.db").exists() and not (tmp_path / "s.db").exists()


def test_unknown_host_fails_at_once(tmp_path, registry):
    proc = run_cli(
        tmp_path, "simulate", "--registry", str(registry), "--broker", "mqtt://no-such-host.invalid",
        "--connect-timeout", "5",
    )  # fmt: skip
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith(
        "fumewatch simulate: cannot reach broker mqtt://no-such-host.invalid:1883 within 5 s: "
    )
    assert len(proc.stderr.splitlines()) == 1


@pytest.mark.parametrize("url", ["http://127.0.0.1:1883", "ws://h", "mqtt://h:70000", "mqtt://h/fume"])
def test_other_broker_urls_are_refused_before_connecting(tmp_path, registry, url):
    proc = run_cli(tmp_path, "simulate", "--registry", str(registry), "--broker", url)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    [line] = proc.stderr.splitlines()
    assert line.startswith(f"fumewatch simulate: --broker: [mqtt] broker: broker URL {url!r}: ")
    for form in ("mqtt://", "mqtts://", "tcp://", "ssl://", "host[:port]"):
        assert form in line


@pytest.mark.integration
@pytest.mark.parametrize("scheme", ["mqtt://", "tcp://", ""])
def test_reachable_broker_with_connect_timeout(tmp_path, registry, mosquitto, scheme):
    proc = run_cli(
        tmp_path, "simulate", "--registry", str(registry), "--hours", "0.2",
        "--broker", f"{scheme}127.0.0.1:{mosquitto.port}", "--connect-timeout", "5",
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.startswith("sent 24 readings")
