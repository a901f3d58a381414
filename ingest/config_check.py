"""Mistakes in settings, explained in one line: unknown keys and sections, bad values, unknown time zones.

Generic over any settings model (:class:`ingest.config.Settings` or a subclass that adds sections): it
walks the model's fields, so every section any package adds is checked the same way. Each problem is a
:class:`ConfigError` (a ``ValueError``) whose message names where the value came from (the TOML file, an
environment variable, or a command-line flag), the key and the problem, with the closest known key when
there is one::

    config.toml: unknown key [mqtt] brokr (did you mean broker?)
    config.toml: display_tz: unknown time zone 'Asia/Shangai' (did you mean Asia/Shanghai?)
    environment FUMEWATCH_MQTT_QOS: [mqtt] qos: Input should be less than or equal to 2
"""

from __future__ import annotations

import difflib
import os
import re
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ValidationError

ENV_PREFIX = "FUMEWATCH_"

#: FUMEWATCH_* variables that are not settings fields but are read elsewhere (never refused):
#: service passwords for the broker's ACL (ingest/acl.py), Grafana credentials (dashboards), the
#: PostgreSQL password of the state ledger, and names the container images and health check use.
ENV_NOT_SETTINGS = re.compile(
    r"FUMEWATCH_(ACL_.+|GRAFANA_.+|STATE_.+|HEALTHCHECK_URL|IMAGE|SERVICES|INFLUXQL_.+)",
    re.IGNORECASE,
)


def is_tz_field(name: str) -> bool:
    """Setting names that hold an IANA time zone name; every one is checked at load."""
    return name in ("timezone", "tz") or name.endswith("_tz")


class ConfigError(ValueError):
    """A settings mistake, as one line naming the source, the key and the problem."""


def _section_model(model: type[BaseModel], name: str) -> type[BaseModel] | None:
    ann = model.model_fields[name].annotation
    return ann if isinstance(ann, type) and issubclass(ann, BaseModel) else None


def _suggest(word: str, known: list[str], what: str) -> str:
    close = difflib.get_close_matches(word, known, n=1, cutoff=0.6)
    if close:
        return f" (did you mean {close[0]}?)"
    return f" (known {what}: {', '.join(known)})" if known else ""


def read_toml(path: Path) -> dict[str, Any]:
    try:
        return tomllib.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read the config file: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{path}: the config file is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{path}: not valid TOML: {exc}") from None


def check_toml_keys(model: type[BaseModel], data: Mapping[str, Any], source: str) -> None:
    """Refuse the first key or section of ``data`` that ``model`` does not have."""
    for problem in _unknown(model, data, ()):
        raise ConfigError(f"{source}: {problem}")


def _unknown(model: type[BaseModel], data: Mapping[str, Any], path: tuple[str, ...]) -> Iterator[str]:
    fields = list(model.model_fields)
    for key, value in data.items():
        if key not in model.model_fields:
            if not path and isinstance(value, dict):
                sections = [f for f in fields if _section_model(model, f) is not None]
                close = difflib.get_close_matches(key, sections, n=1, cutoff=0.6)
                hint = (
                    f" (did you mean [{close[0]}]?)" if close else f" (known sections: {', '.join(sections)})"
                )
                yield f"unknown section [{key}]{hint}"
            else:
                where = f"[{'.'.join(path)}] " if path else ""
                yield f"unknown key {where}{key}{_suggest(key, fields, 'keys')}"
            continue
        extra = model.model_fields[key].json_schema_extra
        if isinstance(extra, dict) and extra.get("env_only"):
            where = f"[{'.'.join(path)}] " if path else ""
            env = "FUMEWATCH_" + "_".join((*path, key)).upper()
            yield f"{where}{key} is a secret: set it in the environment ({env}) or .env, never in the TOML file"
            continue
        sub = _section_model(model, key)
        if sub is not None and isinstance(value, dict):
            yield from _unknown(sub, value, (*path, key))


def env_values(env_file: str | Path | None = ".env") -> dict[str, str]:
    """FUMEWATCH_* variables of the environment and of ``env_file`` (if it exists), upper-cased names."""
    out: dict[str, str] = {}
    if env_file is not None and Path(env_file).is_file():
        from dotenv import dotenv_values

        out.update({k.upper(): v or "" for k, v in dotenv_values(env_file).items()})
    out.update({k.upper(): v for k, v in os.environ.items()})
    return {k: v for k, v in out.items() if k.startswith(ENV_PREFIX)}


def check_env_keys(model: type[BaseModel], env: Mapping[str, str]) -> None:
    """Refuse FUMEWATCH_<SECTION>_<KEY> where SECTION is a settings section that has no KEY.

    Variables whose first word is not a section (FUMEWATCH_ACL_..., FUMEWATCH_GRAFANA_...) are left to
    whoever reads them.
    """
    for name in sorted(env):
        if ENV_NOT_SETTINGS.fullmatch(name):
            continue
        section, _, key = name[len(ENV_PREFIX) :].lower().partition("_")
        if section not in model.model_fields or not key:
            continue
        sub = _section_model(model, section)
        if sub is None or key in sub.model_fields:
            continue
        keys = list(sub.model_fields)
        close = difflib.get_close_matches(key, keys, n=1, cutoff=0.6)
        hint = (
            f" (did you mean {ENV_PREFIX}{section.upper()}_{close[0].upper()}?)"
            if close
            else f" (known keys: {', '.join(keys)})"
        )
        raise ConfigError(f"environment {name}: unknown key [{section}] {key}{hint}")


def _lookup(data: Mapping[str, Any], loc: tuple[Any, ...]) -> bool:
    cur: Any = data
    for part in loc:
        if not isinstance(cur, Mapping) or part not in cur:
            return False
        cur = cur[part]
    return True


@dataclass(frozen=True)
class Sources:
    """Where values came from, to name the right one in a message (env > flags > TOML > defaults)."""

    toml: Mapping[str, Any]
    toml_name: str | None
    env: Mapping[str, str]
    flags: Mapping[str, Any]
    #: (section, key) -> the flag that set it, e.g. ("mqtt", "broker") -> "--broker"
    flag_names: Mapping[tuple[str, ...], str] = field(default_factory=dict)

    def of(self, loc: tuple[Any, ...]) -> str:
        parts = [str(p) for p in loc]
        name = ENV_PREFIX + "_".join(parts[:2]).upper()
        if parts and name in self.env:
            return f"environment {name}"
        if _lookup(self.flags, loc):
            return self.flag_names.get(tuple(parts[:2]), "command line")
        if self.toml_name is not None and _lookup(self.toml, loc):
            return self.toml_name
        return "default settings"


def _key(loc: tuple[Any, ...]) -> str:
    parts = [str(p) for p in loc]
    if len(parts) == 1:
        return parts[0]
    return f"[{parts[0]}] {'.'.join(parts[1:])}" if parts else "settings"


_SECRET_WORDS = ("password", "token", "secret", "targets")


def explain_validation(exc: ValidationError, sources: Sources) -> ConfigError:
    """The first error of ``exc`` as one line (the count of the others appended)."""
    errors = exc.errors(include_url=False)
    err = errors[0]
    loc = tuple(p for p in err["loc"] if not isinstance(p, int))
    msg = str(err["msg"]).removeprefix("Value error, ")
    got = ""
    if not any(w in "_".join(map(str, loc)) for w in _SECRET_WORDS) and "input" in err:
        shown = repr(err["input"])
        if len(shown) <= 60 and not isinstance(err["input"], dict) and shown not in msg:
            got = f" (got {shown})"
    more = f" (and {len(errors) - 1} more problem(s))" if len(errors) > 1 else ""
    text = f"{sources.of(loc)}: {_key(loc)}: {msg}{got}{more}"
    return ConfigError(" ".join(text.split()))


@lru_cache(maxsize=1)
def _zones() -> tuple[str, ...]:
    import zoneinfo

    return tuple(sorted(zoneinfo.available_timezones()))


def check_timezone(name: str) -> str | None:
    """None when ``name`` is an IANA time zone this machine knows, else the problem (with a suggestion)."""
    import zoneinfo

    try:
        zoneinfo.ZoneInfo(name)
        return None
    except (zoneinfo.ZoneInfoNotFoundError, ValueError, OSError):
        pass
    close = difflib.get_close_matches(name, _zones(), n=1, cutoff=0.6)
    if not close:
        lowered = {z.lower(): z for z in _zones()}
        close = [lowered[name.lower()]] if name.lower() in lowered else []
    hint = f" (did you mean {close[0]}?)" if close else " (use an IANA name such as Asia/Shanghai or UTC)"
    return f"unknown time zone {name!r}{hint}"


def check_timezones(settings: BaseModel, sources: Sources) -> None:
    """Refuse the first time-zone setting (``*_tz``, ``timezone``) that names no known zone."""
    for loc, value in _tz_values(settings, ()):
        problem = check_timezone(value)
        if problem:
            raise ConfigError(f"{sources.of(loc)}: {_key(loc)}: {problem}")


def _tz_values(model: BaseModel, path: tuple[str, ...]) -> Iterator[tuple[tuple[str, ...], str]]:
    for name in type(model).model_fields:
        value = getattr(model, name, None)
        if isinstance(value, BaseModel):
            yield from _tz_values(value, (*path, name))
        elif is_tz_field(name) and isinstance(value, str):
            yield (*path, name), value
