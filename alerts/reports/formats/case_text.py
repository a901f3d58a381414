"""The text of a case section, shared by html and pdf: the case header and the facts of each event as
(Chinese label, English label, value) rows, and the table columns of the deciding windows and receipts."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from alerts.reports.cases import CASE_RECEIPT_COLUMNS, CASE_WINDOW_COLUMNS, c_ref_note, missing_text
from alerts.reports.formats.common import _label
from alerts.reports.timetext import local_text

#: Per-case tables leave out the case (and, for windows, the event) they belong to.
WINDOW_COLUMNS = tuple(c for c in CASE_WINDOW_COLUMNS if c.key not in ("case_id", "event_id"))
RECEIPT_COLUMNS = tuple(c for c in CASE_RECEIPT_COLUMNS if c.key != "case_id")
NO_CASES = ("本时段无执法案件", "No enforcement cases in this period")

Row = tuple[str, str, str]


def _t(ms: Any, tz: str, open_text: str = "") -> str:
    return local_text(int(ms), tz) if ms is not None else open_text


def _mg(v: Any) -> str:
    return "–" if v is None else f"{v:.3f} mg/m³"


def case_header(case: Mapping[str, Any], tz: str, cjk: bool = True) -> list[Row]:
    """The header rows of one case."""
    lab = lambda kind, code: _label(kind, code, True, cjk) or "–"  # noqa: E731
    ongoing = "进行中 ongoing" if cjk else "ongoing"
    rows: list[Row] = [
        ("案件编号", "Case ID", case["case_id"]),
        ("餐饮单位", "Restaurant", " ".join(x for x in (case["restaurant_id"], case["name"]) if x)),
        ("所属区", "District", case["district"] or "–"),
        ("处置等级", "Level", lab("level", case["level"])),
        ("第几次", "Step", "–" if case["step"] is None else str(case["step"])),
        ("案件状态", "Case status", case["status"] or "–"),
        ("时段", "Period", f"{_t(case['start_ms'], tz)} – {_t(case['end_ms'], tz, ongoing)} ({tz})"),
        ("判定规则", "Rule", lab("rule", case["rule"])),
        ("限值", "Limit", _mg(case["limit_mg_m3"])),
    ]
    if "step" not in case["missing"]:
        delivered = case["owner_delivered"]
        when = _t(case["owner_delivered_ms"], tz)
        rows += [
            ("整改期限", "Deadline", _t(case["deadline_ms"], tz, "–")),
            (
                "告知送达当事人",
                "Owner notified",
                (f"是 yes {when}" if cjk else f"yes {when}") if delivered else ("否 no" if cjk else "no"),
            ),
        ]
    for h in case["history"]:
        got = (
            ("已送达 delivered " if cjk else "delivered ") + _t(h["delivered_ms"], tz)
            if h["delivered"]
            else ("未送达 not delivered" if cjk else "not delivered")
        )
        rows.append(
            ("此前处置", "Earlier step", f"{lab('level', h['level'])} {_t(h['start_ms'], tz, '?')} · {got}")
        )
    rows += [("未记录", "Not recorded", missing_text([m], cjk=cjk)) for m in case["missing"]]
    return rows


def _states(m: Mapping[str, Any], dev: str, cjk: bool) -> str:
    s = m.get(dev) or {}
    words = ("开", "关", "未知") if cjk else ("on", "off", "unknown")
    en = ("on", "off", "unknown")
    return " / ".join(f"{w}{' ' + e if cjk else ''} {s.get(e, 0)}" for w, e in zip(words, en, strict=True))


def event_facts(e: Mapping[str, Any], tz: str, cjk: bool = True) -> list[Row]:
    """The facts of one event of a case: rule and source, limit, C, Q, n, C_ref, fan/purifier states."""
    rule = _label("rule", e["rule"], True, cjk) or "–"
    if e["rule_title"] and cjk:
        rule = f"{rule} ({e['rule_title']})"
    rows: list[Row] = [
        ("事件", "Event", f"{_label('kind', e['kind'], True, cjk)} · {e['event_id']}"),
        ("时段", "Period", f"{_t(e['start_ms'], tz)} – {_t(e['end_ms'], tz, '…')}"),
        ("判定规则", "Rule", rule),
        ("规则依据", "Rule source", e["rule_source"] or "–"),
        (
            "限值 / 峰值 / 均值",
            "Limit / peak / mean",
            " / ".join(_mg(e[k]) for k in ("limit_mg_m3", "peak_mg_m3", "mean_mg_m3")),
        ),
    ]
    m = e["measures"]
    if m is None:
        rows.append(("实测 C、Q、n", "C, Q, n", "未记录 not recorded" if cjk else "not recorded"))
        return rows
    q = m.get("q_m3_h")
    note = c_ref_note(e, cjk)
    rows += [
        ("实测浓度 C", "Measured C", _mg(m.get("c_mg_m3"))),
        (
            "实测风量 Q",
            "Measured flow Q",
            "未知 unknown" if q is None and cjk else "unknown" if q is None else f"{q:.0f} m³/h",
        ),
        ("基准灶头数 n", "Stove heads n", "–" if m.get("n_heads") is None else f"{m['n_heads']:g}"),
        (
            "基准风量折算浓度",
            "Reference concentration C_ref",
            _mg(m.get("c_ref_mg_m3")) + (f" ({note})" if note else ""),
        ),
        (
            "数据条数",
            "Readings",
            f"{m.get('readings', 0)} (已折算 converted {m.get('converted', 0)}, 未折算 unconverted {m.get('unconverted', 0)})"
            if cjk
            else f"{m.get('readings', 0)} (converted {m.get('converted', 0)}, unconverted {m.get('unconverted', 0)})",
        ),
        ("排烟风机", "Fan", _states(m, "fan", cjk)),
        ("净化器", "Purifier", _states(m, "purifier", cjk)),
    ]
    return rows
