"""Data-integrity findings (``data_integrity`` events, :mod:`alerts.integrity`) as people read them, in
every view that lists them (the report's integrity section, ``fumewatch devices --integrity``):

- the check's label: :data:`alerts.rules.CHECK_LABELS` (:func:`~alerts.rules.check_label`);
- :data:`NOTE`: what a finding is (a screening finding for inspectors, not an offence, not on the ladder);
- :func:`evidence_text`: a short text of the judgement's numbers (zero minutes against the earlier
  services, the flatline's value and readings, the copy's source and shift, the clock's and the flow's
  reasons). A check this module does not know yet (a newer one) is
  shown by its minutes and its other plain numbers, so any rule string works.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from alerts.rules import (
    SUSPECT_CLOCK,
    SUSPECT_CLONE,
    SUSPECT_FLATLINE,
    SUSPECT_FLOW,
    SUSPECT_REPLAY,
    SUSPECT_ZERO,
)
from ingest.timeutil import format_display

#: The head of every list of findings (Chinese, English).
NOTE = (
    "以下为数据可信性筛查结果，供执法人员核查监测设备；不是违法认定，不计入处置等级。",
    "Screening findings for inspectors to check the monitor: not offences, and not on the enforcement ladder.",
)

#: Judgement keys every finding has (shown in their own columns, not in the evidence text).
COMMON_KEYS = ("check", "minutes", "service_start_ms", "service_end_ms", "min_minutes")


def _num(v: Any) -> str:
    """A number as short as it is exact enough to read: 40 -> ``40``, 1.234 -> ``1.234``."""
    if isinstance(v, bool) or not isinstance(v, int | float):
        return str(v)
    return f"{v:.6g}"


def _mg(v: Any) -> str:
    return "–" if v is None else f"{v:.3f}"


def _zero(j: Mapping[str, Any], zh: bool) -> str:
    minutes, windows = _num(j.get("minutes", 0)), j.get("zero_windows", 0)
    limit = f"{j.get('zero_limit_mg_m3') or 0:.2f}"
    hist = [h for h in j.get("history") or [] if isinstance(h, Mapping)]
    past = _num(max((h.get("zero_min") or 0 for h in hist), default=0))
    means = sorted(h["mean_mg_m3"] for h in hist if isinstance(h.get("mean_mg_m3"), int | float))
    span = (
        "" if not means else _mg(means[0]) if means[0] == means[-1] else f"{_mg(means[0])}–{_mg(means[-1])}"
    )
    if zh:
        text = f"零值 {minutes} 分钟（{windows} 个有效窗口 ≤ {limit} mg/m³）"
        if not hist:
            return text + "；此前无可比营业时段"
        return (
            text + f"；此前 {len(hist)} 个营业时段最多 {past} 分钟" + (f"，均值 {span} mg/m³" if span else "")
        )
    text = f"{minutes} min at zero ({windows} valid windows ≤ {limit} mg/m³)"
    if not hist:
        return text + "; no earlier service to compare"
    services = "service" if len(hist) == 1 else "services"
    return (
        text
        + f"; the {len(hist)} earlier {services} at most {past} min"
        + (f", mean {span} mg/m³" if span else "")
    )


def _flatline(j: Mapping[str, Any], zh: bool) -> str:
    value, minutes, n = _num(j.get("value_mg_m3")), _num(j.get("minutes", 0)), j.get("readings", 0)
    if zh:
        return f"恒值 {value} mg/m³ 持续 {minutes} 分钟（{n} 条数据）"
    return f"{value} mg/m³ unchanged for {minutes} min ({n} readings)"


def _copy(j: Mapping[str, Any], zh: bool, tz: str) -> str:
    minutes, n = _num(j.get("minutes", 0)), j.get("readings", 0)
    shift = j.get("shift_mg_m3") or 0
    when = format_display(j["other_start_ms"], tz) if isinstance(j.get("other_start_ms"), int) else "?"
    other = j.get("other_device_id")
    if zh:
        src = f"设备 {other}（{j.get('other_restaurant_id', '?')}）同时段" if other else f"本设备 {when} 起"
        text = f"{minutes} 分钟（{n} 条）与{src}的数据相同"
        return text + (f"，整体相差 {shift:+.3f} mg/m³" if shift else "")
    src = (
        f"device {other} ({j.get('other_restaurant_id', '?')}) at the same time"
        if other
        else f"its own data from {when}"
    )
    text = f"{minutes} min ({n} readings) equal to {src}"
    return text + (f", shifted by {shift:+.3f} mg/m³" if shift else "")


def _clock(j: Mapping[str, Any], zh: bool) -> str:
    reasons = j.get("reasons") or []
    parts = []
    if "drift" in reasons:
        off = j.get("offset_s") or 0
        parts.append(f"时钟偏差 {_num(off)} 秒" if zh else f"clock offset {_num(off)} s")
    if "backwards" in reasons:
        b = j.get("backwards", 0)
        parts.append(f"时间倒退 {b} 次" if zh else f"time ran backwards {b} times")
    if "qn_repeated" in reasons:
        q = j.get("qn_repeats", 0)
        parts.append(f"QN 重复 {q} 次" if zh else f"{q} repeated QNs")
    return ("；" if zh else "; ").join(parts)


def _flow(j: Mapping[str, Any], zh: bool) -> str:
    reasons = j.get("reasons") or []
    med, exp = _num(j.get("median_flow_m3_h", 0)), _num(j.get("expected_flow_m3_h", 0))
    parts = []
    if "flow_low" in reasons or "flow_high" in reasons:
        parts.append(
            f"风量中位数 {med} m³/h（基准 {exp} m³/h）"
            if zh
            else f"median flow {med} m³/h (reference {exp} m³/h)"
        )
    if "flow_drops_when_high" in reasons:
        hi, lo = _num(j.get("high_median_flow_m3_h", 0)), _num(j.get("low_median_flow_m3_h", 0))
        parts.append(
            f"浓度高时风量 {hi} m³/h，低时 {lo} m³/h"
            if zh
            else f"flow {hi} m³/h when the fume is high, {lo} m³/h when low"
        )
    return ("；" if zh else "; ").join(parts)


def _other(j: Mapping[str, Any], zh: bool) -> str:
    """A check without its own text: its minutes and its other plain numbers and words, as stored."""
    parts = [f"{_num(j.get('minutes', 0))} 分钟" if zh else f"{_num(j.get('minutes', 0))} min"]
    parts += [
        f"{k} {_num(v)}"
        for k, v in j.items()
        if k not in COMMON_KEYS and not k.endswith("_ms") and isinstance(v, str | int | float)
    ]
    return ("；" if zh else "; ").join(parts)


def evidence_text(
    judgement: Mapping[str, Any] | None, lang: str = "zh", check: str = "", tz: str = "Asia/Shanghai"
) -> str:
    """The evidence of a finding in a line (``lang`` ``zh`` or ``en``); empty without a judgement.
    ``check``: the event's rule (else the judgement's ``check``); ``tz``: the zone of a time in it."""
    j = judgement or {}
    if not j:
        return ""
    zh = lang.startswith("zh")
    check = check or j.get("check", "")
    if check == SUSPECT_ZERO:
        return _zero(j, zh)
    if check == SUSPECT_FLATLINE:
        return _flatline(j, zh)
    if check in (SUSPECT_REPLAY, SUSPECT_CLONE):
        return _copy(j, zh, tz)
    if check == SUSPECT_CLOCK:
        return _clock(j, zh)
    if check == SUSPECT_FLOW:
        return _flow(j, zh)
    return _other(j, zh)
