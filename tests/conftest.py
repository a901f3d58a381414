"""Shared pytest fixtures for fumewatch tests.

Sections (add new ones at the end of the file, each under its own banner):
  1. Helpers: CI detection, missing-binary policy
  2. Real servers: mosquitto_binary, influxd_binary, mosquitto, make_mosquitto, influxdb, influx_relay,
     influx_db
  3. Docker / testcontainers: docker_available, auto-skip of @pytest.mark.docker tests
  4. Real notice receivers: smtp, webhook
  5. State databases on both backends: postgres_admin, pg_empty_url, state_url (sqlite | postgresql)

The server classes themselves live in tests/servers.py (plain library, no pytest).
"""

from __future__ import annotations

import os
import sys
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

# Make tests/servers.py importable as `servers` whatever pytest's import mode is.
sys.path.insert(0, str(Path(__file__).resolve().parent))

import servers  # noqa: E402

# =========================================================================================================
# 1. Helpers
# =========================================================================================================


def in_ci() -> bool:
    """True on CI (CI=true), where a missing server binary is a failure, not a skip."""
    return os.environ.get("CI", "").strip().lower() in {"1", "true", "yes"}


def require_binary(path: str | None, message: str) -> str:
    """Return ``path``; if it is None skip the test (``message`` is the reason), or fail loudly on CI."""
    if path is None:
        if in_ci():
            pytest.fail(f"{message} (CI=true: CI must provide it, see .ci/run)", pytrace=False)
        pytest.skip(message)
    return path


# =========================================================================================================
# 2. Real servers (each on a free 127.0.0.1 port, files under pytest's tmp dirs)
# =========================================================================================================


@pytest.fixture(scope="session")
def mosquitto_binary() -> str:
    """Path of the mosquitto binary; skips (fails on CI) when it is not installed."""
    return require_binary(servers.find_mosquitto(), "mosquitto not installed: apt-get install mosquitto")


@pytest.fixture(scope="session")
def influxd_binary() -> str:
    """Path of the influxd (1.x) binary; skips (fails on CI) when it is not installed."""
    return require_binary(servers.find_influxd(), "influxd not installed: apt-get install influxdb")


@pytest.fixture(scope="session")
def mosquitto(
    tmp_path_factory: pytest.TempPathFactory, mosquitto_binary: str
) -> Iterator[servers.MosquittoServer]:
    """One started mosquitto broker for the whole session (anonymous, no persistence)."""
    with servers.MosquittoServer(tmp_path_factory.mktemp("mosquitto"), binary=mosquitto_binary) as broker:
        yield broker


@pytest.fixture
def make_mosquitto(tmp_path: Path, mosquitto_binary: str) -> Iterator[Callable[..., servers.MosquittoServer]]:
    """Factory for private, started brokers (own port and dir) that a test may restart or stop.

    ``make_mosquitto(persistence=True, extra_conf="...")`` takes MosquittoServer's keyword arguments;
    every broker made is stopped at teardown.
    """
    made: list[servers.MosquittoServer] = []

    def make(**kwargs: Any) -> servers.MosquittoServer:
        broker = servers.MosquittoServer(
            tmp_path / f"mosquitto{len(made)}", binary=mosquitto_binary, **kwargs
        )
        made.append(broker)
        return broker.start()

    yield make
    for broker in made:
        broker.stop()


@pytest.fixture(scope="session")
def influxdb(
    tmp_path_factory: pytest.TempPathFactory, influxd_binary: str
) -> Iterator[servers.InfluxDB1Server]:
    """One started InfluxDB 1.x server (Debian's 1.6.7 here) for the whole session."""
    with servers.InfluxDB1Server(tmp_path_factory.mktemp("influxdb"), binary=influxd_binary) as server:
        yield server


@pytest.fixture(scope="session")
def influx_relay(influxdb: servers.InfluxDB1Server) -> Iterator[servers.V2WriteRelay]:
    """Test-only /api/v2/write -> /write relay in front of ``influxdb`` (see servers.V2WriteRelay)."""
    with servers.V2WriteRelay(influxdb.url) as relay:
        yield relay


@dataclass(frozen=True)
class InfluxTestDB:
    """A fresh database for one test. Point influxdb-client at ``relay_url`` with bucket=``name``."""

    name: str
    relay_url: str
    server: servers.InfluxDB1Server
    relay: servers.V2WriteRelay

    def query(self, q: str, **kwargs: Any) -> dict[str, Any]:
        """InfluxQL against this database, parsed JSON."""
        return self.server.query(self.name, q, **kwargs)

    def points(self, q: str, **kwargs: Any) -> list[dict[str, Any]]:
        """InfluxQL against this database, rows as dicts."""
        return self.server.points(self.name, q, **kwargs)


@pytest.fixture
def influx_db(
    influxdb: servers.InfluxDB1Server, influx_relay: servers.V2WriteRelay
) -> Iterator[InfluxTestDB]:
    """A uniquely named, freshly created database; the shared relay is healthy at start and at end."""
    influx_relay.resume()
    influx_relay.fail_with(None)
    influx_relay.reset_counts()
    name = f"test_{uuid.uuid4().hex[:12]}"
    influxdb.create_database(name)
    yield InfluxTestDB(name=name, relay_url=influx_relay.url, server=influxdb, relay=influx_relay)
    influx_relay.fail_with(None)
    influx_relay.resume()
    if influxdb.is_running:
        influxdb.drop_database(name)


# =========================================================================================================
# 3. Docker / testcontainers
# =========================================================================================================


@pytest.fixture(scope="session", name="docker_available")
def docker_available_fixture() -> bool:
    """Whether a Docker engine answers (a docker CLI alone is only a client). Does not skip by itself."""
    return servers.docker_available()


def pytest_runtest_setup(item: pytest.Item) -> None:
    """Tests marked ``@pytest.mark.docker`` (testcontainers) skip, saying why, where no engine answers."""
    if item.get_closest_marker("docker") is not None:
        reason = servers.docker_unavailable_reason()
        if reason is not None:
            pytest.skip(reason)


# =========================================================================================================
# 4. Real notice receivers (tests/receivers.py): an SMTP server and an HTTP webhook
# =========================================================================================================


@pytest.fixture
def smtp() -> Iterator[Any]:
    """A real SMTP server (aiosmtpd) on a free port collecting messages; ``.url(to)`` is an apprise URL."""
    pytest.importorskip("aiosmtpd.controller", reason="aiosmtpd not installed (test extra)")
    import receivers

    with receivers.smtp_sink() as sink:
        yield sink


@pytest.fixture
def webhook() -> Iterator[Any]:
    """A real HTTP receiver collecting JSON POSTs; ``.url(path)`` is an apprise json:// URL."""
    import receivers

    with receivers.webhook_receiver() as hook:
        yield hook


# =========================================================================================================
# 5. State databases on both backends: SQLite files and private PostgreSQL databases
# =========================================================================================================

PG_ADMIN_URL = servers.PG_ADMIN_URL
private_pg_database = servers.private_pg_database


def postgres_unavailable_reason() -> str | None:
    """None when PostgreSQL answers at PG_ADMIN_URL, else why not."""
    try:
        import psycopg
    except ImportError:
        return "psycopg (3) is not installed"
    try:
        psycopg.connect(PG_ADMIN_URL, connect_timeout=3).close()
    except psycopg.Error as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return f"PostgreSQL not reachable at {PG_ADMIN_URL}: {first}"
    return None


@pytest.fixture(scope="session")
def postgres_admin() -> str:
    """The admin URL of a reachable PostgreSQL; skips with the reason (fails on CI) when there is none."""
    reason = postgres_unavailable_reason()
    if reason is not None:
        if in_ci():
            pytest.fail(f"{reason} (CI=true: .ci/run must start PostgreSQL)", pytrace=False)
        pytest.skip(reason)
    return PG_ADMIN_URL


@pytest.fixture
def pg_empty_url(postgres_admin: str) -> Iterator[str]:
    """A private, empty PostgreSQL database (no schema), dropped after the test."""
    with private_pg_database(postgres_admin) as url:
        yield url


@pytest.fixture(params=["sqlite", "postgresql"])
def state_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A state database at the newest revision (``fumewatch db upgrade``): an SQLite path, or the URL of
    a private PostgreSQL database created for this test and dropped after it."""
    from fumewatch.db import upgrade

    if request.param == "sqlite":
        path = str(tmp_path / "state.db")
        upgrade(path)
        yield path
        return
    admin = request.getfixturevalue("postgres_admin")
    with private_pg_database(admin) as url:
        upgrade(url)
        yield url
