"""The docker compose stack: structure, paths, ports, secrets and commands, checked without a Docker engine.

This machine has the docker CLI but no engine (and no compose plugin), so the compose file is checked with
PyYAML against the repository: every service has an image or a build, restart policies and health checks
where they belong, every bind-mounted path and referenced file exists, ports are unique, every secret comes
from .env, every ${VAR} is documented in .env.example, and each fumewatch command parses with the real
``fumewatch`` argument parser. ``docker compose config`` runs too where the compose plugin exists. The
stack itself is brought up by testcontainers where a Docker engine answers (``@pytest.mark.docker``).
"""

from __future__ import annotations

import argparse
import contextlib
import fnmatch
import http.server
import os
import re
import secrets
import shutil
import socket
import stat
import subprocess
import sys
import threading
import time
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest

yaml = pytest.importorskip("yaml", reason="PyYAML not installed (test extra)")

REPO = Path(__file__).resolve().parent.parent
COMPOSE = REPO / "docker-compose.yml"
ENV_EXAMPLE = REPO / ".env.example"
DOCKERFILE = REPO / "Dockerfile"
DOCKERIGNORE = REPO / ".dockerignore"
HEALTHCHECK = REPO / "deploy" / "docker" / "healthcheck.py"

ONE_SHOT = {"fumewatch-acl", "fumewatch-dashboards", "fumewatch-db-upgrade", "simulator"}
FUMEWATCH_IMAGE = "fumewatch:local"
#: fumewatch subcommands that other work streams add; their absence skips that one check, saying so.
LANDING_LATER = {"api": "alerts/api.py (`fumewatch api`)", "dashboards": "dashboards/cli.py"}
SECRET_KEY = re.compile(r"(PASSWORD|TOKEN|TOKENS|SECRET|_KEY|TARGETS)$")
VAR = re.compile(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)(?:(:?[-?])([^}]*))?\}")


def load_compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))


def services() -> dict[str, dict[str, Any]]:
    return load_compose()["services"]


def long_running() -> dict[str, dict[str, Any]]:
    return {n: s for n, s in services().items() if n not in ONE_SHOT}


def env_example() -> dict[str, str]:
    out = {}
    for line in ENV_EXAMPLE.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            key, sep, value = line.partition("=")
            assert sep, f".env.example: not KEY=VALUE: {line!r}"
            out[key.strip()] = value.strip()
    return out


def interpolate(text: str, env: dict[str, str] | None = None) -> str:
    """Compose-style ${VAR}, ${VAR:-default}, ${VAR:?msg} with ``env`` (defaults where unset)."""
    env = env or {}

    def sub(m: re.Match) -> str:
        name, op, arg = m.group(1), m.group(2), m.group(3)
        value = env.get(name, "")
        if value:
            return value
        if op in (":-", "-"):
            return arg or ""
        return f"__UNSET_{name}__"

    return VAR.sub(sub, text).replace("$$", "$")


def strings(obj: Any) -> list[str]:
    """Every string in the parsed compose file (keys and values; YAML comments are not part of it)."""
    if isinstance(obj, str):
        return [obj]
    if isinstance(obj, dict):
        return [x for k, v in obj.items() for x in (*strings(k), *strings(v))]
    if isinstance(obj, list):
        return [x for v in obj for x in strings(v)]
    return []


def var_uses() -> list[re.Match]:
    return [m for text in strings(load_compose()) for m in VAR.finditer(text)]


def command_of(svc: dict[str, Any]) -> list[str]:
    cmd = svc.get("command", [])
    return cmd.split() if isinstance(cmd, str) else [str(c) for c in cmd]


# ---------------------------------------------------------------------------------------------------------
# structure
# ---------------------------------------------------------------------------------------------------------


def test_expected_services_and_profiles() -> None:
    svcs = services()
    assert set(svcs) >= {
        "mosquitto", "influxdb", "grafana", "fumewatch-ingest", "fumewatch-alerts-0", "fumewatch-alerts-1", "fumewatch-api",
        "fumewatch-acl", "fumewatch-dashboards", "simulator", "postgres", "fumewatch-db-upgrade",
    }  # fmt: skip
    assert svcs["simulator"].get("profiles") == ["simulator"]
    assert all("profiles" not in s for n, s in svcs.items() if n != "simulator")
    assert svcs["influxdb"]["image"].startswith("influxdb:2.7")
    assert svcs["mosquitto"]["image"].startswith("eclipse-mosquitto:2")
    assert svcs["grafana"]["image"].startswith("grafana/grafana")
    assert svcs["postgres"]["image"] == "postgres:15"
    assert "ports" not in svcs["postgres"]  # reached on the compose network only
    hc = svcs["postgres"]["healthcheck"]["test"]
    assert hc[:2] == ["CMD", "pg_isready"] and "fumewatch" in hc


@pytest.mark.parametrize("name", sorted(load_compose()["services"]))
def test_service_has_image_or_build_and_restart_policy(name: str) -> None:
    svc = services()[name]
    assert svc.get("image") or svc.get("build"), f"{name}: neither image nor build"
    if "build" in svc:
        build = svc["build"]
        context = REPO / (build if isinstance(build, str) else build.get("context", "."))
        dockerfile = context / (
            "Dockerfile" if isinstance(build, str) else build.get("dockerfile", "Dockerfile")
        )
        assert dockerfile.is_file(), f"{name}: {dockerfile} missing"
    if name in ONE_SHOT:
        assert str(svc.get("restart", "no")) == "no", f"one-shot {name} must not restart"
    else:
        assert svc.get("restart") == "unless-stopped", f"{name}: restart policy"


@pytest.mark.parametrize("name", sorted(long_running()))
def test_long_running_service_has_healthcheck(name: str) -> None:
    hc = services()[name].get("healthcheck")
    assert hc and hc.get("test") and not hc.get("disable"), f"{name}: no healthcheck"
    test = hc["test"]
    assert test[0] in ("CMD", "CMD-SHELL") and len(test) > 1
    for key in ("interval", "timeout", "retries"):
        assert key in hc, f"{name}: healthcheck without {key}"


def test_dependencies_wait_for_jobs_and_health() -> None:
    svcs = services()
    assert svcs["mosquitto"]["depends_on"]["fumewatch-acl"]["condition"] == "service_completed_successfully"
    assert (
        svcs["grafana"]["depends_on"]["fumewatch-dashboards"]["condition"] == "service_completed_successfully"
    )
    for name, svc in svcs.items():
        deps = svc.get("depends_on", {})
        assert isinstance(deps, dict), f"{name}: use the long depends_on form with conditions"
        for dep, spec in deps.items():
            assert dep in svcs, f"{name} depends on unknown {dep}"
            if spec.get("condition") == "service_healthy":
                assert svcs[dep].get("healthcheck"), (
                    f"{name} waits for {dep} to be healthy; it has no healthcheck"
                )
            if spec.get("condition") == "service_completed_successfully":
                assert dep in ONE_SHOT
    for name in ("fumewatch-ingest", "fumewatch-alerts-0", "fumewatch-alerts-1", "fumewatch-api"):
        assert svcs[name]["depends_on"]["mosquitto"]["condition"] == "service_healthy"
        assert svcs[name]["depends_on"]["influxdb"]["condition"] == "service_healthy"
        assert svcs[name]["depends_on"]["postgres"]["condition"] == "service_healthy"
        # the schema is migrated once, before any service checks it
        assert (
            svcs[name]["depends_on"]["fumewatch-db-upgrade"]["condition"] == "service_completed_successfully"
        )
    upgrade = svcs["fumewatch-db-upgrade"]
    assert upgrade["depends_on"] == {"postgres": {"condition": "service_healthy"}}
    assert command_of(upgrade) == ["db", "upgrade"]


def _volumes(svc: dict[str, Any]) -> list[tuple[str, str, str]]:
    out = []
    for v in svc.get("volumes", []):
        if isinstance(v, dict):
            out.append((v["source"], v["target"], "ro" if v.get("read_only") else "rw"))
        else:
            parts = v.split(":")
            out.append((parts[0], parts[1], parts[2] if len(parts) > 2 else "rw"))
    return out


def test_bind_mounts_exist_and_named_volumes_are_declared() -> None:
    doc = load_compose()
    declared = set(doc.get("volumes") or {})
    used = set()
    for name, svc in doc["services"].items():
        for src, target, mode in _volumes(svc):
            assert target.startswith("/"), f"{name}: {target}"
            if src.startswith((".", "/")):
                host = (REPO / src).resolve()
                assert host.exists(), f"{name}: bind mount {src} does not exist"
                assert REPO in host.parents or host == REPO, f"{name}: {src} outside the repository"
                assert mode == "ro", f"{name}: bind mount {src} should be read-only"
            else:
                assert src in declared, f"{name}: volume {src} not declared under volumes:"
                used.add(src)
    assert declared == used, f"declared but unused volumes: {declared - used}"


def test_named_volumes_for_state() -> None:
    vols = {n: {src: tgt for src, tgt, _ in _volumes(s)} for n, s in services().items()}
    assert vols["mosquitto"]["mosquitto-data"] == "/mosquitto/data"
    assert vols["influxdb"]["influxdb-data"] == "/var/lib/influxdb2"
    assert vols["grafana"]["grafana-data"] == "/var/lib/grafana"
    assert vols["postgres"]["postgres-data"] == "/var/lib/postgresql/data"
    for name in ("fumewatch-ingest", "fumewatch-alerts-0", "fumewatch-alerts-1", "fumewatch-api"):
        assert vols[name]["fumewatch-data"] == "/var/lib/fumewatch"
        assert vols[name]["./deploy/registry.csv"] == "/etc/fumewatch/registry.csv"


def _host_ports(svc: dict[str, Any]) -> list[tuple[str, int, int]]:
    out = []
    for p in svc.get("ports", []):
        spec = interpolate(str(p)).split("/")[0]
        parts = spec.split(":")
        ip = parts[0] if len(parts) == 3 else "0.0.0.0"
        out.append((ip, int(parts[-2]), int(parts[-1])))
    return out


def test_published_ports_are_unique_and_expected() -> None:
    seen: dict[int, str] = {}
    for name, svc in services().items():
        for _ip, host, _container in _host_ports(svc):
            assert host not in seen, f"host port {host} published by {seen.get(host)} and {name}"
            seen[host] = name
    ports = {n: _host_ports(s) for n, s in services().items()}
    assert ports["mosquitto"] == [("0.0.0.0", 1883, 1883)]
    assert ports["grafana"] == [("0.0.0.0", 3000, 3000)]
    assert ports["fumewatch-api"] == [("0.0.0.0", 8080, 8080)]
    assert ports["influxdb"] == [("127.0.0.1", 8086, 8086)]  # the admin UI stays on the host


# ---------------------------------------------------------------------------------------------------------
# secrets and .env.example
# ---------------------------------------------------------------------------------------------------------


def _environment(svc: dict[str, Any]) -> dict[str, str]:
    env = svc.get("environment", {})
    if isinstance(env, list):
        env = dict(item.split("=", 1) for item in env)
    return {k: "" if v is None else str(v) for k, v in env.items()}


def test_no_hard_coded_secrets() -> None:
    for name, svc in services().items():
        for key, value in _environment(svc).items():
            if SECRET_KEY.search(key):
                m = VAR.fullmatch(value)
                assert m, f"{name}: {key} must be a ${{VAR}} from .env, not {value!r}"
                assert m.group(2) in (None, ":?", "?") or not (m.group(3) or "").strip("[]"), (
                    f"{name}: {key} has a default value; secrets have none"
                )
            for m in re.finditer(r"://([^:/@\s]+):([^@\s]*)@", value):
                assert VAR.fullmatch(m.group(2)), f"{name}: {key} has a literal password in a URL"
        for arg in command_of(svc):
            assert not re.search(r"(?i)(password|token|secret)=\S", arg), f"{name}: secret in command {arg!r}"
    text = COMPOSE.read_text(encoding="utf-8")
    assert "DOCKER_INFLUXDB_INIT_ADMIN_TOKEN: ${INFLUXDB_TOKEN:?" in text


def test_required_settings_have_no_defaults() -> None:
    all_uses = var_uses()
    for var in (
        "MQTT_INGEST_PASSWORD", "MQTT_ALERTS_PASSWORD", "INFLUXDB_ADMIN_USER", "INFLUXDB_ADMIN_PASSWORD",
        "INFLUXDB_ORG", "INFLUXDB_BUCKET", "INFLUXDB_TOKEN", "GRAFANA_ADMIN_PASSWORD", "FUMEWATCH_API_TOKENS",
        "POSTGRES_PASSWORD",
    ):  # fmt: skip
        uses = [m for m in all_uses if m.group(1) == var]
        assert uses, f"{var} not used"
        assert all(m.group(2) == ":?" for m in uses), f"{var} must be ${{{var}:?...}} everywhere"


def test_every_variable_is_documented_in_env_example() -> None:
    used = {m.group(1) for m in var_uses()}
    documented = env_example()
    assert used - set(documented) == set(), "add to .env.example"
    assert set(documented) - used == set(), "documented in .env.example but unused in docker-compose.yml"
    text = ENV_EXAMPLE.read_text(encoding="utf-8")
    for var in documented:
        block = text[: text.index(f"\n{var}=")]
        comment = block.rsplit("\n\n", 1)[-1]
        assert "#" in comment, f".env.example: {var} has no explanation above it"


def test_env_example_holds_no_secrets() -> None:
    for key, value in env_example().items():
        if SECRET_KEY.search(key):
            assert value in ("", "[]"), f".env.example: {key} must be empty (a placeholder), not a value"
    assert "openssl rand" in ENV_EXAMPLE.read_text(encoding="utf-8")
    gitignore = (REPO / ".gitignore").read_text(encoding="utf-8").split()
    assert ".env" in gitignore


# ---------------------------------------------------------------------------------------------------------
# fumewatch commands and settings inside the stack
# ---------------------------------------------------------------------------------------------------------


def _parser() -> argparse.ArgumentParser:
    from fumewatch.cli import build_parser

    return build_parser()


def _subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    action = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(action.choices)


FUMEWATCH_SERVICES = sorted(
    n for n, s in load_compose()["services"].items() if s.get("image") == FUMEWATCH_IMAGE
)


@pytest.mark.parametrize("name", FUMEWATCH_SERVICES)
def test_fumewatch_command_parses(name: str) -> None:
    cmd = [interpolate(c) for c in command_of(services()[name])]
    assert cmd, f"{name}: no command (the image's default is --help)"
    parser = _parser()
    if cmd[0] not in _subcommands(parser):
        if cmd[0] in LANDING_LATER:
            pytest.skip(f"`fumewatch {cmd[0]}` is not in this tree yet ({LANDING_LATER[cmd[0]]} lands it)")
        pytest.fail(f"{name}: `fumewatch {cmd[0]}` is not a fumewatch subcommand")
    try:
        args = parser.parse_args(cmd)
    except SystemExit as exc:
        pytest.fail(f"{name}: `fumewatch {' '.join(cmd)}` does not parse (exit {exc.code})")
    assert callable(getattr(args, "func", None))


def test_all_fumewatch_services_use_the_one_image() -> None:
    svcs = services()
    for name in ("fumewatch-acl", "fumewatch-dashboards", "fumewatch-ingest", "fumewatch-alerts-0", "fumewatch-alerts-1",
                 "fumewatch-api", "fumewatch-db-upgrade", "simulator"):  # fmt: skip
        assert svcs[name]["image"] == FUMEWATCH_IMAGE and svcs[name]["build"]["context"] == "."


def test_service_environment_reaches_the_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    """The FUMEWATCH_* variables compose sets are real setting names and land where they should."""
    from fumewatch.settings import AppSettings
    from ingest.config import load_settings

    fake = {
        "INFLUXDB_ORG": "city",
        "INFLUXDB_BUCKET": "fume",
        "INFLUXDB_TOKEN": "t0k",
        "MQTT_ALERTS_PASSWORD": "pw-alerts",
        "INSPECTOR_TARGETS": '["json://inspector.example/hook"]',
        "POSTGRES_PASSWORD": "pg-pw",
    }
    env = {k: interpolate(v, fake) for k, v in _environment(services()["fumewatch-alerts-0"]).items()}
    for key in [k for k in os.environ if k.startswith("FUMEWATCH_")]:
        monkeypatch.delenv(key)
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(REPO / "deploy")  # no stray .env in the working directory
    s = load_settings(None, None, AppSettings)
    assert s.mqtt.broker == "mqtt://mosquitto:1883" and s.mqtt.endpoint()[:2] == ("mosquitto", 1883)
    assert s.mqtt.username == "alerts" and s.mqtt.password.get_secret_value() == "pw-alerts"
    assert s.alerts.partition == "0/2" and s.metrics.port == 9101
    assert s.ingest.store == "http://influxdb:8086"
    assert s.ingest.registry == "/etc/fumewatch/registry.csv"
    assert s.ingest.state == "postgresql://fumewatch@postgres/fumewatch"
    assert env["PGPASSWORD"] == "pg-pw"  # the state password: from the environment, never in the URL
    from ingest.db import state_url

    assert state_url(s.ingest.state).password is None  # accepted: a URL without a password
    assert s.influx.buffer_file == "/var/lib/fumewatch/influx-buffer.db"  # on the fumewatch-data volume
    assert s.influx.first_wins_file == "/var/lib/fumewatch/influx-first-wins.db"
    assert (s.influx.org, s.influx.bucket, s.influx.token.get_secret_value()) == ("city", "fume", "t0k")
    assert s.influx.query_database == "fume"  # = the DBRP database the influxdb init script maps
    assert s.notify.inspector_targets == ["json://inspector.example/hook"]
    known_sections = set(AppSettings.model_fields)
    for name, svc in services().items():
        for key in _environment(svc):
            if key.startswith("FUMEWATCH_") and not key.startswith(("FUMEWATCH_ACL_", "FUMEWATCH_API_")):
                section, _, field = key.removeprefix("FUMEWATCH_").lower().partition("_")
                assert section in known_sections, f"{name}: {key}: no [{section}] settings"
                model = type(getattr(s, section))
                assert field in model.model_fields, f"{name}: {key}: no setting {section}.{field}"


def test_acl_job_and_broker_share_the_files() -> None:
    svcs = services()
    acl_cmd = command_of(svcs["fumewatch-acl"])
    acl_vols = {src: tgt for src, tgt, _ in _volumes(svcs["fumewatch-acl"])}
    out_dir = acl_cmd[acl_cmd.index("--out") + 1]
    assert acl_vols["mqtt-auth"] == out_dir
    creds = acl_cmd[acl_cmd.index("--credentials") + 1]
    assert Path(creds).parent.as_posix() == acl_vols["mqtt-credentials"]  # device passwords not in the broker
    assert acl_cmd[acl_cmd.index("--owner") + 1] == "1883:1883"  # eclipse-mosquitto's uid:gid
    mq_vols = {tgt: (src, mode) for src, tgt, mode in _volumes(svcs["mosquitto"])}
    conf_target = "/mosquitto/config/mosquitto.conf"
    conf_src = mq_vols[conf_target][0]
    conf = (REPO / conf_src).read_text(encoding="utf-8")
    settings = dict(
        line.split(None, 1) for line in conf.splitlines() if line.strip() and not line.startswith("#")
    )
    auth_mount = next(t for t, (src, _m) in mq_vols.items() if src == "mqtt-auth")
    assert mq_vols[auth_mount][1] == "ro"
    assert settings["password_file"] == f"{auth_mount}/passwd"
    assert settings["acl_file"] == f"{auth_mount}/acl"
    assert settings["allow_anonymous"] == "false"
    data_mount = next(t for t, (src, _m) in mq_vols.items() if src == "mosquitto-data")
    assert settings["persistence_location"].rstrip("/") == data_mount
    for name in ("fumewatch-ingest", "fumewatch-alerts-0", "fumewatch-alerts-1"):
        env = _environment(svcs[name])
        user = env["FUMEWATCH_MQTT_USERNAME"]
        assert user in interpolate(acl_cmd[acl_cmd.index("--service-accounts") + 1]).split(",")
        assert f"FUMEWATCH_ACL_{user.upper()}_PASSWORD" in _environment(svcs["fumewatch-acl"])
        assert (
            _environment(svcs["fumewatch-acl"])[f"FUMEWATCH_ACL_{user.upper()}_PASSWORD"]
            == env["FUMEWATCH_MQTT_PASSWORD"]
        )


def test_grafana_finds_what_dashboards_build_writes(tmp_path: Path) -> None:
    svcs = services()
    cmd = command_of(svcs["fumewatch-dashboards"])
    if "dashboards" not in _subcommands(_parser()):
        pytest.skip(
            f"`fumewatch dashboards` is not in this tree yet ({LANDING_LATER['dashboards']} lands it)"
        )
    out_in_job = cmd[cmd.index("--out") + 1]
    job_vol = next(src for src, tgt, _ in _volumes(svcs["fumewatch-dashboards"]) if tgt == out_in_job)
    grafana_mount = next(tgt for src, tgt, _ in _volumes(svcs["grafana"]) if src == job_vol)
    genv = _environment(svcs["grafana"])
    # run the real build into a stand-in for the volume, with the job's own arguments
    from fumewatch.cli import main

    args = [tmp_path.as_posix() if a == out_in_job else a for a in cmd]
    assert main(args) == 0
    prov_dir = genv["GF_PATHS_PROVISIONING"]
    assert prov_dir.startswith(grafana_mount + "/")
    local_prov = tmp_path / prov_dir.removeprefix(grafana_mount + "/")
    ds = yaml.safe_load((local_prov / "datasources" / "fumewatch.yaml").read_text(encoding="utf-8"))
    provider = yaml.safe_load((local_prov / "dashboards" / "fumewatch.yaml").read_text(encoding="utf-8"))
    dash_path = provider["providers"][0]["options"]["path"]
    assert dash_path.startswith(grafana_mount + "/")
    local_dash = tmp_path / dash_path.removeprefix(grafana_mount + "/")
    assert sorted(local_dash.glob("*.json")), f"no dashboards where Grafana looks ({dash_path})"
    datasource = ds["datasources"][0]
    assert datasource["uid"] == "fumewatch-influxdb"
    # every ${VAR} the provisioned datasource needs is in Grafana's environment
    needed = set(re.findall(r"\$\{?([A-Z_][A-Z0-9_]*)", yaml.safe_dump(ds)))
    assert needed and needed <= set(genv), f"Grafana lacks {needed - set(genv)}"
    assert genv["INFLUX_DATABASE"] == "${INFLUXDB_BUCKET:?set INFLUXDB_BUCKET in .env}"
    assert genv["GF_AUTH_ANONYMOUS_ENABLED"] == "false"


def test_influxdb_init_script_maps_the_bucket() -> None:
    svc = services()["influxdb"]
    init_src = next(src for src, tgt, _ in _volumes(svc) if tgt == "/docker-entrypoint-initdb.d")
    scripts = sorted((REPO / init_src).glob("*.sh"))
    assert scripts, "no init script"
    for script in scripts:
        mode = script.stat().st_mode
        assert mode & stat.S_IXUSR and mode & stat.S_IXOTH, f"{script} must be executable (run-parts)"
        text = script.read_text(encoding="utf-8")
        assert text.startswith("#!/bin/bash") or text.startswith("#!/bin/sh")
        if shutil.which("bash"):
            subprocess.run(["bash", "-n", str(script)], check=True, timeout=30)
    text = "\n".join(s.read_text(encoding="utf-8") for s in scripts)
    assert "influx v1 dbrp create" in text and "DOCKER_INFLUXDB_INIT_BUCKET_ID" in text
    assert "--db" in text and "DOCKER_INFLUXDB_INIT_BUCKET" in text and "--default" in text
    assert svc["environment"]["DOCKER_INFLUXDB_INIT_MODE"] == "setup"


# ---------------------------------------------------------------------------------------------------------
# Dockerfile, .dockerignore, health check script
# ---------------------------------------------------------------------------------------------------------


def _dockerfile_instructions() -> list[tuple[str, str]]:
    text = DOCKERFILE.read_text(encoding="utf-8").replace("\\\n", " ")
    out = []
    for line in text.splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            word, _, rest = line.partition(" ")
            out.append((word.upper(), rest.strip()))
    return out


def _ignored(path: str, patterns: list[str]) -> bool:
    """Enough of .dockerignore's rules for our patterns: last match wins, '!' re-includes, '**/' any depth."""
    ignored = False
    parts = path.split("/")
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    for pat in patterns:
        neg = pat.startswith("!")
        p = pat[1:] if neg else pat
        p = p.strip("/")
        candidates = [p, p.removeprefix("**/")] if p.startswith("**/") else [p]
        for cand in candidates:
            if any(fnmatch.fnmatchcase(pre, cand) for pre in prefixes) or (
                p.startswith("**/") and any(fnmatch.fnmatchcase(seg, cand) for seg in parts)
            ):
                ignored = not neg
                break
    return ignored


def test_dockerfile() -> None:
    ins = _dockerfile_instructions()
    froms = [rest for word, rest in ins if word == "FROM"]
    assert froms and all(f.split()[0] == "python:3.11-slim" for f in froms)
    users = [rest for word, rest in ins if word == "USER"]
    assert users and users[-1].split(":")[0] not in ("root", "0"), "the image must not run as root"
    entry = [rest for word, rest in ins if word == "ENTRYPOINT"]
    assert entry == ['["fumewatch"]']
    health = [rest for word, rest in ins if word == "HEALTHCHECK"]
    assert health and "fumewatch-healthcheck" in health[-1]
    assert any(word == "RUN" and "pip install" in rest for word, rest in ins)
    patterns = [
        ln.strip()
        for ln in DOCKERIGNORE.read_text(encoding="utf-8").splitlines()
        if ln.strip() and not ln.startswith("#")
    ]
    for word, rest in ins:
        if word != "COPY" or "--from=" in rest:
            continue
        *sources, _dest = [a for a in rest.split() if not a.startswith("--")]
        for src in sources:
            assert (REPO / src).exists(), f"COPY {src}: missing"
            assert not _ignored(src.rstrip("/"), patterns), f"COPY {src}: excluded by .dockerignore"
    for secret in (".env", "deploy/credentials.csv", "data/fumewatch.db", ".git", ".venv"):
        assert _ignored(secret, patterns), f".dockerignore should exclude {secret}"


def test_sample_registry_is_valid() -> None:
    from ingest import acl
    from ingest.registry import Registry

    reg = Registry.load(REPO / "deploy" / "registry.csv")
    assert len(reg) >= 3
    for d in reg:
        assert d.device_id not in acl.RESERVED_DEVICE_IDS


def _run_healthcheck(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, str(HEALTHCHECK), *args],
        capture_output=True,
        text=True,
        timeout=30,
        env={**os.environ, **(env or {})},
    )


@pytest.mark.integration
def test_healthcheck_script_mqtt_mode(mosquitto) -> None:
    import paho.mqtt.client as mqtt

    down = _run_healthcheck("mqtt", env={"FUMEWATCH_MQTT_BROKER": f"mqtt://mosquitto:{mosquitto.port}"})
    assert down.returncode == 1 and "unhealthy" in down.stdout
    c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="healthcheck-test")
    c.connect(mosquitto.host, mosquitto.port)
    c.loop_start()
    try:
        deadline = time.monotonic() + 5
        while not c.is_connected() and time.monotonic() < deadline:
            time.sleep(0.05)
        up = _run_healthcheck("mqtt", env={"FUMEWATCH_MQTT_BROKER": f"mqtt://mosquitto:{mosquitto.port}"})
        assert up.returncode == 0, up.stdout
    finally:
        c.disconnect()
        c.loop_stop()


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200

    def do_GET(self) -> None:  # noqa: N802
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, *args: Any) -> None:
        pass


def test_healthcheck_script_http_mode() -> None:
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Health)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}/healthz"
    try:
        assert _run_healthcheck("http", url).returncode == 0
        _Health.status = 503
        assert _run_healthcheck("http", url).returncode == 1
    finally:
        _Health.status = 200
        server.shutdown()
        server.server_close()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]
    assert _run_healthcheck("http", f"http://127.0.0.1:{closed}/healthz").returncode == 1
    assert _run_healthcheck("bogus").returncode == 2


# ---------------------------------------------------------------------------------------------------------
# docker compose itself (only where the CLI plugin / an engine exist)
# ---------------------------------------------------------------------------------------------------------


def write_test_env(folder: Path) -> Path:
    """A complete .env for the stack: .env.example's keys, throwaway random secrets, fixed names."""
    values = dict(env_example())
    for key in values:
        if SECRET_KEY.search(key) and key != "INSPECTOR_TARGETS":
            values[key] = secrets.token_hex(16)
    values.update(INFLUXDB_ADMIN_USER="fumewatch", INFLUXDB_ORG="fumewatch", INFLUXDB_BUCKET="fumewatch")
    values["MQTT_SERVICE_ACCOUNTS"] = "ingest,alerts,simulator"
    path = folder / ".env"
    path.write_text("".join(f"{k}={v}\n" for k, v in values.items()), encoding="utf-8")
    return path


def test_a_filled_in_env_file_satisfies_every_variable(tmp_path: Path) -> None:
    env = dict(line.split("=", 1) for line in write_test_env(tmp_path).read_text().splitlines())
    unset = [text for text in strings(load_compose()) if "__UNSET_" in interpolate(text, env)]
    assert unset == [], "required variables stayed unset"
    token = services()["influxdb"]["environment"]["DOCKER_INFLUXDB_INIT_ADMIN_TOKEN"]
    assert interpolate(token, env) == env["INFLUXDB_TOKEN"]


def _compose_cli() -> list[str] | None:
    docker = shutil.which("docker")
    if docker is None:
        return None
    try:
        res = subprocess.run([docker, "compose", "version"], capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired):
        return None
    return [docker, "compose"] if res.returncode == 0 else None


def test_docker_compose_config(tmp_path: Path) -> None:
    """`docker compose config` validates the file against the compose spec; it needs no engine."""
    cli = _compose_cli()
    if cli is None:
        pytest.skip(
            "docker compose plugin not installed here (`docker compose version` fails); PyYAML checks above"
        )
    env = write_test_env(tmp_path)
    res = subprocess.run(
        [*cli, "--env-file", str(env), "-f", str(COMPOSE), "--profile", "simulator", "config", "--quiet"],
        capture_output=True, text=True, timeout=120, cwd=REPO,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    missing = subprocess.run(
        [*cli, "--env-file", os.devnull, "-f", str(COMPOSE), "config", "--quiet"],
        capture_output=True, text=True, timeout=120, cwd=REPO,
        env={k: v for k, v in os.environ.items() if not re.match(r"(MQTT|INFLUXDB|GRAFANA|FUMEWATCH|POSTGRES)_", k)},
    )  # fmt: skip
    assert missing.returncode != 0 and "set " in missing.stderr and ".env" in missing.stderr


@pytest.mark.docker
@pytest.mark.integration
@pytest.mark.timeout(1200)
def test_stack_comes_up_and_a_reading_flows(tmp_path: Path) -> None:
    """The whole stack in Docker: /healthz answers, a reading published as a device lands in InfluxDB."""
    import json

    import paho.mqtt.client as mqtt
    from testcontainers.compose import DockerCompose

    env_path = write_test_env(tmp_path)
    env = dict(line.split("=", 1) for line in env_path.read_text().splitlines())
    cli = _compose_cli()
    if cli is None:
        pytest.skip("docker compose plugin not installed")
    stack = DockerCompose(
        REPO, compose_file_name="docker-compose.yml", env_file=str(env_path), build=True, wait=False
    )
    with stack:
        status = 0
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and status != 200:
            with contextlib.suppress(OSError):
                status = urllib.request.urlopen("http://127.0.0.1:8080/healthz", timeout=5).status
            time.sleep(2)
        assert status == 200, "/healthz did not answer 200"
        creds = subprocess.run(
            [*cli, "--env-file", str(env_path), "-f", str(COMPOSE), "run", "--rm", "--no-deps",
             "--entrypoint", "cat", "fumewatch-acl", "/credentials/credentials.csv"],
            capture_output=True, text=True, timeout=120, cwd=REPO, check=True,
        ).stdout  # fmt: skip
        device, _, password = creds.splitlines()[1].split(",")
        c = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id=device, protocol=mqtt.MQTTv5)
        c.username_pw_set(device, password)
        c.connect("127.0.0.1", 1883)
        c.loop_start()
        ts = int(time.time() * 1000) // 60_000 * 60_000
        doc = {"ts": ts, "oil_fume": 0.7, "flow": 4000.0, "fan": 1, "purifier": 1}
        info = c.publish(f"fume/v1/{device}/reading", json.dumps(doc), qos=1)
        info.wait_for_publish(10)
        c.disconnect()
        c.loop_stop()
        query = f"SELECT * FROM fume_reading WHERE device_id='{device}'"
        q = urllib.parse.urlencode({"db": env["INFLUXDB_BUCKET"], "q": query})
        req = urllib.request.Request(
            f"http://127.0.0.1:8086/query?{q}", headers={"Authorization": f"Token {env['INFLUXDB_TOKEN']}"}
        )
        rows: list = []
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and not rows:
            with contextlib.suppress(OSError, KeyError, IndexError):
                result = json.loads(urllib.request.urlopen(req, timeout=10).read())
                rows = result["results"][0]["series"][0]["values"]
            time.sleep(1)
        assert rows, "the reading did not reach InfluxDB through the DBRP mapping"


def test_alerts_run_in_two_partitions_with_http_health() -> None:
    """Compose shows N=2 (docs/scaling.md): the workers differ in their partition only, and their health
    check asks /healthz (a standby has no MQTT connection, and says so there)."""
    svcs = services()
    workers = {n: s for n, s in svcs.items() if n.startswith("fumewatch-alerts")}
    assert set(workers) == {"fumewatch-alerts-0", "fumewatch-alerts-1"}
    envs = {n: _environment(s) for n, s in workers.items()}
    assert [envs[n]["FUMEWATCH_ALERTS_PARTITION"] for n in sorted(envs)] == ["0/2", "1/2"]
    a, b = (dict(e, FUMEWATCH_ALERTS_PARTITION="") for e in envs.values())
    assert a == b
    for n, s in workers.items():
        assert command_of(s) == ["alerts"]
        port = envs[n]["FUMEWATCH_METRICS_PORT"]
        assert s["healthcheck"]["test"][-2:] == ["http", f"http://127.0.0.1:{port}/healthz"]


def test_kubernetes_statefulsets_run_one_active_and_one_standby_per_partition() -> None:
    """deploy/k8s/fumewatch-alerts.yaml (no cluster here: it is parsed, not applied): the ordinal in the
    pod name is the partition, both StatefulSets have N replicas, and the command parses."""
    import shlex

    from alerts.config import AlertsSettings
    from alerts.partition import Partition

    docs = list(yaml.safe_load_all((REPO / "deploy" / "k8s" / "fumewatch-alerts.yaml").read_text()))
    assert [d["kind"] for d in docs] == ["StatefulSet", "StatefulSet"]
    for doc in docs:
        spec = doc["spec"]
        [container] = spec["template"]["spec"]["containers"]
        assert container["command"][:2] == ["sh", "-c"]
        script = container["command"][2]
        n = spec["replicas"]
        for ordinal in range(n):
            pod = f"{doc['metadata']['name']}-{ordinal}"
            expanded = script.replace('"${HOSTNAME##*-}', f'"{pod.rsplit("-", 1)[1]}')
            argv = shlex.split(expanded)
            assert argv[:3] == ["exec", "fumewatch", "alerts"]
            args = _parser().parse_args(argv[2:])
            assert Partition.parse(args.partition) == Partition(ordinal, n)
            AlertsSettings(partition=args.partition)
        env = {e["name"]: e.get("value") for e in container["env"]}
        assert env["FUMEWATCH_INGEST_STATE"].startswith("postgresql://")
        assert "PGPASSWORD" in env and env["PGPASSWORD"] is None  # from a secret, never inline
        assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    assert docs[0]["spec"]["replicas"] == docs[1]["spec"]["replicas"]
