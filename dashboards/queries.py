"""Every InfluxQL query of a dashboard, and Grafana's substitution of variables and macros, for tests.

:func:`queries` lists the queries of panels, annotations and query variables of a dashboard (built or read
from JSON). :func:`fill` turns one into the exact text Grafana sends to InfluxDB:

1. template variables, as Grafana's InfluxDB datasource interpolates raw InfluxQL (``$var``, ``${var}``,
   ``[[var]]``; format "regex"): a value is regex-escaped, several values become ``(a|b)``; a variable's
   custom "All" value (here ``.*``) goes in verbatim (pass it as :class:`Raw`); ``$__from``/``$__to`` are
   epoch milliseconds; unknown names stay as they are;
2. the backend macros of Grafana's InfluxQL query builder: ``$timeFilter`` ->
   ``time >= <from>ms and time <= <to>ms``, ``$interval`` and ``$__interval`` -> the interval text
   (``1m``, ``5m``, ``1h``, ``1d``), ``$__interval_ms`` -> milliseconds.

:func:`grafana_interval` computes ``$__interval`` the way Grafana does: (to - from) / max data points,
at least the panel's or datasource's minimum interval, rounded to Grafana's steps. :func:`panel_range` is
the range of a panel with a relative-time override (``timeFrom``: ``30d``, or ``now/d`` = "Today so far",
from local midnight in the dashboard's zone).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, NamedTuple
from zoneinfo import ZoneInfo

_DURATION_MS = {"ms": 1, "s": 1000, "m": 60_000, "h": 3_600_000, "d": 86_400_000, "w": 604_800_000}
_DURATION_MS["y"] = 365 * _DURATION_MS["d"]


class PanelQuery(NamedTuple):
    """One query of a dashboard. ``source`` is "panel", "annotation" or "variable"."""

    panel: str
    ref_id: str
    query: str
    source: str = "panel"
    #: The panel's relative-time override (``timeFrom``, e.g. "30d"): its $timeFilter is now-<that>..now.
    time_from: str | None = None
    #: The panel's minimum interval (``interval``), if any.
    min_interval: str | None = None
    #: "time_series" or "table".
    result_format: str = "time_series"


class Raw(str):
    """A variable value inserted verbatim (Grafana does so with a variable's custom "All" value)."""


#: The regex-form "All" of the dashboards' multi-value variables (their ``allValue``).
ALL = Raw(".*")


def _as_dict(dashboard: Any) -> dict:
    if isinstance(dashboard, dict):
        return dashboard
    from grafana_foundation_sdk.cog.encoder import JSONEncoder

    obj = dashboard.build() if hasattr(dashboard, "build") else dashboard
    return json.loads(json.dumps(obj, cls=JSONEncoder))


def queries(dashboard: Any) -> list[PanelQuery]:
    """All InfluxQL queries of ``dashboard`` (a builder, an SDK model or the JSON dict)."""
    d = _as_dict(dashboard)
    out: list[PanelQuery] = []

    def walk(panels: list[dict]) -> None:
        for p in panels:
            if p.get("type") == "row":
                walk(p.get("panels") or [])
                continue
            for t in p.get("targets") or []:
                if t.get("query") is None:
                    continue
                out.append(
                    PanelQuery(
                        panel=p.get("title", ""),
                        ref_id=t.get("refId", ""),
                        query=t["query"],
                        source="panel",
                        time_from=p.get("timeFrom"),
                        min_interval=p.get("interval"),
                        result_format=t.get("resultFormat", "time_series"),
                    )
                )

    walk(d.get("panels") or [])
    for a in (d.get("annotations") or {}).get("list") or []:
        target = a.get("target") or {}
        q = target.get("query") or a.get("query")
        if q:
            out.append(
                PanelQuery(
                    a.get("name", ""), target.get("refId", "Anno"), q, "annotation", None, None, "table"
                )
            )
    for v in (d.get("templating") or {}).get("list") or []:
        if v.get("type") == "query" and isinstance(v.get("query"), str):
            out.append(PanelQuery(f"${v['name']}", "variable", v["query"], "variable", None, None, "table"))
    return out


# ------------------------------------------------------------------------------------- substitution
_VARIABLE_RE = re.compile(r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^}]+))?(?::([^}]+))?\}")
_REGEX_SPECIAL = re.compile(r"[\\^$*+?.()|\[\]{}/]")


def regex_escape(value: str) -> str:
    """Grafana's regex escape (kbn.regexEscape / escapeRegex)."""
    return _REGEX_SPECIAL.sub(lambda m: "\\" + m.group(0), value)


def _format(value: str | Sequence[str], fmt: str | None) -> str:
    if isinstance(value, Raw):
        return str(value)
    values = [value] if isinstance(value, str) else list(value)
    if fmt in ("raw", "text"):
        return ",".join(values)
    if fmt == "csv":
        return ",".join(values)
    if fmt == "pipe":
        return "|".join(values)
    # "regex": the format Grafana's InfluxDB datasource applies to raw InfluxQL
    escaped = [v if isinstance(v, Raw) else regex_escape(v) for v in values]
    return escaped[0] if len(escaped) == 1 else "(" + "|".join(escaped) + ")"


def interpolate(query: str, variables: Mapping[str, str | Sequence[str]], from_ms: int, to_ms: int) -> str:
    """Step 1: template variables (what Grafana's frontend templateSrv does)."""
    builtins: dict[str, str] = {"__from": Raw(str(int(from_ms))), "__to": Raw(str(int(to_ms)))}

    def sub(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2) or m.group(4)
        fmt = m.group(3) or m.group(6)
        if name in variables:
            return _format(variables[name], fmt)
        if name in builtins:
            return builtins[name]
        return m.group(0)

    return _VARIABLE_RE.sub(sub, query)


def parse_duration_ms(text: str) -> int:
    m = re.fullmatch(r"\s*<?>?(\d+)(ms|s|m|h|d|w|y)\s*", text)
    if not m:
        raise ValueError(f"not a Grafana duration: {text!r}")
    return int(m.group(1)) * _DURATION_MS[m.group(2)]


def panel_range(time_from: str, now_ms: int, tz: str) -> tuple[int, int]:
    """(from, to) in epoch ms of a panel whose ``timeFrom`` is ``time_from``, at ``now_ms``, in zone ``tz``."""
    if time_from.strip() == "now/d":
        local = datetime.fromtimestamp(now_ms / 1000, ZoneInfo(tz))
        midnight = local.replace(hour=0, minute=0, second=0, microsecond=0)
        return int(midnight.timestamp() * 1000), now_ms
    return now_ms - parse_duration_ms(time_from), now_ms


def format_duration(ms: int) -> str:
    """Grafana's FormatDuration: the largest whole unit (y, d, h, m, s, ms)."""
    for unit in ("y", "d", "h", "m", "s"):
        if ms >= _DURATION_MS[unit]:
            return f"{ms // _DURATION_MS[unit]}{unit}"
    return f"{max(ms, 1)}ms"


# (upper bound ms, rounded ms) of Grafana's roundInterval
_ROUND = (
    (10, 1),
    (15, 10),
    (35, 20),
    (75, 50),
    (150, 100),
    (350, 200),
    (750, 500),
    (1_500, 1_000),
    (3_500, 2_000),
    (7_500, 5_000),
    (12_500, 10_000),
    (17_500, 15_000),
    (25_000, 20_000),
    (45_000, 30_000),
    (90_000, 60_000),
    (210_000, 120_000),
    (450_000, 300_000),
    (750_000, 600_000),
    (1_050_000, 900_000),
    (1_500_000, 1_200_000),
    (2_700_000, 1_800_000),
    (5_400_000, 3_600_000),
    (9_000_000, 7_200_000),
    (16_200_000, 10_800_000),
    (32_400_000, 21_600_000),
    (86_400_000, 43_200_000),
    (172_800_000, 86_400_000),
    (604_800_000, 86_400_000),
    (1_814_400_000, 604_800_000),
)


def round_interval(ms: float) -> int:
    for bound, rounded in _ROUND:
        if ms <= bound:
            return rounded
    return 2_592_000_000 if ms < 3_628_800_000 else 31_536_000_000


def grafana_interval(
    from_ms: int, to_ms: int, max_data_points: int = 1500, min_interval: str | None = None
) -> str:
    """``$__interval`` for a range: (to - from) / max data points, >= min interval, then rounded."""
    raw = (to_ms - from_ms) / max(1, max_data_points)
    floor_ms = parse_duration_ms(min_interval) if min_interval else 1
    if raw < floor_ms:
        return format_duration(floor_ms)
    return format_duration(round_interval(raw))


def time_filter(from_ms: int, to_ms: int) -> str:
    """Grafana's InfluxQL $timeFilter (backend query builder)."""
    return f"time >= {int(from_ms)}ms and time <= {int(to_ms)}ms"


def fill(
    query: str,
    variables: Mapping[str, str | Sequence[str]],
    time_from_ms: int,
    time_to_ms: int,
    interval: str | int = "1m",
) -> str:
    """The InfluxQL Grafana sends for ``query`` (steps 1 and 2 of the module docstring)."""
    interval_ms = interval if isinstance(interval, int) else parse_duration_ms(interval)
    interval_text = format_duration(interval_ms)
    q = interpolate(query, variables, time_from_ms, time_to_ms)
    q = q.replace("$timeFilter", time_filter(time_from_ms, time_to_ms))
    q = q.replace("$interval", interval_text)
    q = q.replace("$__interval_ms", str(interval_ms))
    q = q.replace("$__interval", interval_text)
    return q
