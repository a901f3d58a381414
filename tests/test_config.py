"""The sample config documents every setting with its default; precedence is defaults < TOML < flags < env."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest
from servers import run_fumewatch

from fumewatch.settings import AppSettings
from ingest.config import ConfigError, load_settings, parse_broker_url

REPO = Path(__file__).resolve().parent.parent
SAMPLE = REPO / "config" / "fumewatch.sample.toml"
SECRETS = {
    "inspector.tokens",
    "mqtt.password",
    "influx.token",
    "notify.inspector_targets",
    "api.tokens",
    "owner.link_secret",
}


def flat(d: dict, prefix: str = "") -> dict:
    out = {}
    for k, v in d.items():
        key = f"{prefix}{k}"
        if isinstance(v, dict) and k not in ("factors", "scale", "profile_standards"):
            out.update(flat(v, key + "."))
        else:
            out[key] = v
    return out


def test_sample_config_loads_and_equals_defaults(monkeypatch):
    for var in [v for v in __import__("os").environ if v.startswith("FUMEWATCH_")]:
        monkeypatch.delenv(var)
    loaded = load_settings(SAMPLE, cls=AppSettings)
    assert loaded.model_dump() == AppSettings().model_dump()


def test_sample_config_documents_every_setting_and_no_secret():
    sample = flat(tomllib.loads(SAMPLE.read_text(encoding="utf-8")))
    fields = flat(AppSettings().model_dump())
    undocumented = set(fields) - set(sample) - SECRETS
    assert not undocumented, f"settings missing from the sample config: {sorted(undocumented)}"
    assert not (SECRETS & set(sample)), "secrets must not be in the sample config"
    unknown = set(sample) - set(fields)
    assert not unknown, f"sample config has keys the code does not know: {sorted(unknown)}"


def test_precedence_toml_flags_env(tmp_path, monkeypatch):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[ingest]\nstore = "toml.db"\nstate = "toml-state.db"\n[influx]\norg = "city"\n')
    s = load_settings(cfg, {"ingest": {"store": "flag.db", "state": None}})
    assert (s.ingest.store, s.ingest.state, s.influx.org) == ("flag.db", "toml-state.db", "city")
    monkeypatch.setenv("FUMEWATCH_INGEST_STORE", "env.db")
    monkeypatch.setenv("FUMEWATCH_INFLUX_TOKEN", "s3cret")
    s = load_settings(cfg, {"ingest": {"store": "flag.db"}})
    assert s.ingest.store == "env.db"
    assert s.influx.token.get_secret_value() == "s3cret"
    assert "s3cret" not in s.model_dump_json()


def test_bad_config_is_a_clear_error(tmp_path):
    cfg = tmp_path / "bad.toml"
    cfg.write_text('[hj212.factors]\na34041 = "smoke"\n')
    with pytest.raises(ValueError, match="unknown mapping target"):
        load_settings(cfg)
    with pytest.raises(FileNotFoundError):
        load_settings(tmp_path / "missing.toml")


def test_broker_url_parsing():
    s = load_settings(None, {"mqtt": {"broker": "mqtts://dev:p%40ss@broker.example:8884"}})
    assert s.mqtt.endpoint() == ("broker.example", 8884, True, "dev", "p@ss")
    s = load_settings(None, {"mqtt": {"broker": "mqtt://10.0.0.1"}})
    assert s.mqtt.endpoint() == ("10.0.0.1", 1883, False, "", "")


# ---------------------------------------------------------------------- mistakes explain themselves
def _clean_env(monkeypatch) -> None:
    for var in [v for v in __import__("os").environ if v.startswith("FUMEWATCH_")]:
        monkeypatch.delenv(var)


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('[mqtt]\nbrokr = "x"\n', "c.toml: unknown key [mqtt] brokr (did you mean broker?)"),
        ('[mqqt]\nbroker = "x"\n', "c.toml: unknown section [mqqt] (did you mean [mqtt]?)"),
        ('display_tzz = "UTC"\n', "c.toml: unknown key display_tzz (did you mean display_tz?)"),
        # sections other packages add are checked the same way
        ("[alerts]\nwindow_ss = 600\n", "c.toml: unknown key [alerts] window_ss (did you mean window_s?)"),
        ('[notify]\nlocal = "en"\n', "c.toml: unknown key [notify] local (did you mean locale?)"),
        ("[report]\nmax_chart = 3\n", "c.toml: unknown key [report] max_chart (did you mean max_charts?)"),
        ("[api]\nprot = 1\n", "c.toml: unknown key [api] prot (did you mean port?)"),
        ('[alert]\nclock = "wall"\n', "c.toml: unknown section [alert] (did you mean [alerts]?)"),
    ],
)
def test_unknown_key_or_section_names_file_key_and_closest(tmp_path, monkeypatch, text, expected):
    _clean_env(monkeypatch)
    monkeypatch.chdir(tmp_path)
    (tmp_path / "c.toml").write_text(text)
    with pytest.raises(ConfigError) as err:
        load_settings("c.toml", cls=AppSettings)
    assert str(err.value) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (
            'display_tz = "Asia/Shangai"\n',
            "display_tz: unknown time zone 'Asia/Shangai' (did you mean Asia/Shanghai?)",
        ),
        ('[hj212]\ntimezone = "Asia/Shangai"\n', "[hj212] timezone: unknown time zone 'Asia/Shangai'"),
        ('[alerts]\nbusiness_tz = "Europe/Pari"\n', "[alerts] business_tz: unknown time zone 'Europe/Pari'"),
        ('[notify]\ndisplay_tz = "UTC+8"\n', "[notify] display_tz: unknown time zone 'UTC+8'"),
        ("[mqtt]\nqos = 7\n", "[mqtt] qos: Input should be less than or equal to 2 (got 7)"),
        ('[alerts]\nwindow_s = "ten"\n', "[alerts] window_s: Input should be a valid integer"),
        (
            '[mqtt]\nbroker = "http://h:1"\n',
            "[mqtt] broker: broker URL 'http://h:1': scheme 'http://' is not",
        ),
    ],
)
def test_bad_values_are_one_line_naming_file_and_key(tmp_path, monkeypatch, text, expected):
    _clean_env(monkeypatch)
    cfg = tmp_path / "c.toml"
    cfg.write_text(text)
    with pytest.raises(ConfigError) as err:
        load_settings(cfg, cls=AppSettings)
    msg = str(err.value)
    assert msg.startswith(f"{cfg}: {expected}"), msg
    assert "\n" not in msg


def test_environment_typos_are_refused_and_used_names_are_not(tmp_path, monkeypatch):
    _clean_env(monkeypatch)
    monkeypatch.chdir(tmp_path)
    used = {
        "FUMEWATCH_API_TOKENS": "t" * 20,
        "FUMEWATCH_STATE_PASSWORD": "pw",
        "FUMEWATCH_GRAFANA_TOKEN": "g",
        "FUMEWATCH_GRAFANA_USER": "u",
        "FUMEWATCH_GRAFANA_PASSWORD": "p",
        "FUMEWATCH_ACL_INGEST_PASSWORD": "p",
        "FUMEWATCH_ACL_INGEST_2_PASSWORD": "p",
        "FUMEWATCH_NOTIFY_INSPECTOR_TARGETS": "[]",
        "FUMEWATCH_NOTIFY_RETRIES": "0",
        "FUMEWATCH_HEALTHCHECK_URL": "http://x",
        "FUMEWATCH_INFLUXQL_DATABASE": "db",
        "FUMEWATCH_MQTT_CA_FILE": "",
    }
    for k, v in used.items():
        monkeypatch.setenv(k, v)
    s = load_settings(None, cls=AppSettings)
    assert s.notify.retries == 0
    monkeypatch.setenv("FUMEWATCH_MQTT_BROKR", "mqtt://x")
    with pytest.raises(
        ConfigError,
        match=r"^environment FUMEWATCH_MQTT_BROKR: unknown key \[mqtt\] brokr "
        r"\(did you mean FUMEWATCH_MQTT_BROKER\?\)$",
    ):
        load_settings(None, cls=AppSettings)
    monkeypatch.delenv("FUMEWATCH_MQTT_BROKR")
    monkeypatch.setenv("FUMEWATCH_ALERTS_BUSINESS_TZ", "Asia/Shangai")
    with pytest.raises(ConfigError, match="^environment FUMEWATCH_ALERTS_BUSINESS_TZ: .*Asia/Shanghai"):
        load_settings(None, cls=AppSettings)


def test_env_file_typos_are_refused(tmp_path, monkeypatch):
    _clean_env(monkeypatch)
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env").write_text("MQTT_INGEST_PASSWORD=x\nFUMEWATCH_INFLUX_TOKN=abc\n")
    with pytest.raises(ConfigError, match="FUMEWATCH_INFLUX_TOKN.*FUMEWATCH_INFLUX_TOKEN"):
        load_settings(None, cls=AppSettings)


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("mqtt://h", ("h", 1883, False)),
        ("mqtts://h", ("h", 8883, True)),
        ("tcp://h:1884", ("h", 1884, False)),
        ("ssl://h:8884", ("h", 8884, True)),
        ("h:1885", ("h", 1885, False)),
        ("h", ("h", 1883, False)),
    ],
)
def test_accepted_broker_url_forms(url, expected):
    assert parse_broker_url(url)[:3] == expected


@pytest.mark.parametrize(
    "url", ["http://h:1", "ws://h", "mqtt://h:99999", "mqtt://h:x", "mqtt://h/topic", ""]
)
def test_other_broker_urls_are_refused_listing_the_forms(url):
    with pytest.raises(ValueError, match="mqtt://.*mqtts://.*tcp://.*ssl://.*host\\[:port\\]"):
        parse_broker_url(url)
    with pytest.raises(ConfigError, match=r"command line: \[mqtt\] broker"):
        load_settings(None, {"mqtt": {"broker": url}})


CLI_MISTAKES = [
    ('[mqtt]\nbrokr = "x"\n', "unknown key [mqtt] brokr (did you mean broker?)"),
    ('[mqqt]\nbroker = "x"\n', "unknown section [mqqt] (did you mean [mqtt]?)"),
    (
        'display_tz = "Asia/Shangai"\n',
        "display_tz: unknown time zone 'Asia/Shangai' (did you mean Asia/Shanghai?)",
    ),
]


@pytest.mark.parametrize("command", ["config", "events", "readings", "notices", "report"])
@pytest.mark.parametrize(("text", "expected"), CLI_MISTAKES)
def test_cli_refuses_config_mistakes_in_one_line(tmp_path, command, text, expected):
    (tmp_path / "config.toml").write_text(text)
    extra = (
        ["--since", "2026-11-01", "--until", "2026-11-02", "--out", "r.csv"] if command == "report" else []
    )
    proc = run_cli(tmp_path, command, "--config", "config.toml", *extra)
    assert proc.returncode == 2
    assert proc.stderr == f"fumewatch {command}: config.toml: {expected}\n"
    assert "Traceback" not in proc.stderr


run_cli = run_fumewatch  # python -m fumewatch ARGV in cwd (tests/servers.py)


def test_time_zone_flags_are_checked_too(tmp_path):
    proc = run_cli(tmp_path, "dashboards", "build", "--out", "d", "--timezone", "Asia/Shangai")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert (
        "argument --timezone: unknown time zone 'Asia/Shangai' (did you mean Asia/Shanghai?)" in proc.stderr
    )
    assert not (tmp_path / "d").exists()


def test_demo_refuses_a_bad_broker_url_before_writing_anything(tmp_path):
    proc = run_cli(tmp_path, "demo", "--broker", "htp://x", "--data-dir", "demo")
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    assert proc.stderr.startswith(
        "fumewatch demo: broker URL 'htp://x': scheme 'htp://' is not accepted; use"
    )
    assert list(tmp_path.iterdir()) == []


def test_config_command_prints_every_section_and_no_secret(tmp_path):
    env = {
        "FUMEWATCH_NOTIFY_INSPECTOR_TARGETS": '["mailtos://user:pw-Xq1@mail.example.com?to=a@b", "wecombot://KEY-Xq2"]',
        "FUMEWATCH_API_TOKENS": "tok-Xq3-0123456789abcdef",
        "FUMEWATCH_INFLUX_TOKEN": "tok-Xq4",
    }
    proc = run_cli(tmp_path, "config", "--broker", "mqtt://dev:pw-Xq5@broker.example:1883", env=env)
    assert proc.returncode == 0, proc.stderr
    doc = __import__("json").loads(proc.stdout)
    assert {"mqtt", "ingest", "alerts", "notify", "report", "api"} <= set(doc)
    assert doc["mqtt"]["broker"] == "mqtt://dev:***@broker.example:1883"
    assert doc["notify"]["inspector_targets"] == ["mailtos://***@mail.example.com", "wecombot://***"]
    assert "Xq" not in proc.stdout


def test_owner_link_secret_is_refused_in_the_toml_file(tmp_path):
    cfg = tmp_path / "c.toml"
    cfg.write_text('[owner]\nlink_secret = "x"\n', encoding="utf-8")
    with pytest.raises(
        ValueError,
        match=r"\[owner\] link_secret is a secret: set it in the environment \(FUMEWATCH_OWNER_LINK_SECRET\)",
    ):
        load_settings(cfg, cls=AppSettings)
