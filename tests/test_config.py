"""The sample config documents every setting with its default; precedence is defaults < TOML < flags < env."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from fumewatch.settings import AppSettings
from ingest.config import load_settings

SAMPLE = Path(__file__).resolve().parent.parent / "config" / "fumewatch.sample.toml"
SECRETS = {"mqtt.password", "influx.token", "notify.inspector_targets", "api.tokens"}


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
