"""case.pdf of the case file (执法案卷): A4 portrait, Chinese first with the English small, in the fonts of
the report PDFs (:func:`alerts.reports.charts.find_cjk_font`; Type 42, so the text can be searched).

Sections: the case summary; the evidence (per event its facts, the chart of concentration against the
limit over the deciding windows, the windows table); the notices with their receipts; the on-site record
(inspection, rectification order, recheck, the owner's statements, the closure); the audit trail; the
photos and documents. Every time is local in the display zone with its offset. What the ledger does not
hold is said to be missing, never filled in. The PDF carries no generation time (the manifest does), so an
unchanged case renders to the same bytes.
"""

from __future__ import annotations

import io
from collections.abc import Mapping, Sequence
from typing import Any

from alerts.casework.case_pdf_chart import draw_evidence
from alerts.casework.case_pdf_flow import LEFT, MUTED, PAGE_H, PAGE_W, RIGHT, Col, Flow
from alerts.casework.case_pdf_record import onsite_section, photos_section, trail_section
from alerts.casework.case_pdf_text import label, local, yes_no
from alerts.reports.cases import case_view, missing_text
from alerts.reports.formats.case_text import event_facts
from alerts.reports.model import POLLUTANT_LABELS, RULE_LABELS

TITLE_ZH, TITLE_EN = "餐饮油烟执法案卷", "Cooking-fume enforcement case file"

#: Readings per device (``Store.query`` rows) or None (no store), and a note on where they came from.
Readings = Mapping[str, Sequence[Mapping[str, Any]]] | None


def _mg(v: Any) -> str:
    return "–" if v is None else f"{v:.3f} mg/m³"


def render_case_pdf(
    view: Mapping[str, Any],
    *,
    tz: str,
    name: str,
    readings: Readings,
    readings_note: tuple[str, str],
    files: Mapping[str, bytes],
    fonts: Any,
) -> bytes:
    """The PDF of ``view`` (:meth:`alerts.casework.Casework.view`); ``files``: attachment id -> bytes."""
    import matplotlib as mpl
    from matplotlib.backends.backend_pdf import PdfPages

    from alerts.reports.formats.pdf import _PDF_LOCK, NO_CJK_FONT_NOTE

    case = view["case"]
    cid = case["case_id"]
    cv = case_view(case, {case.get("restaurant_id", ""): name})
    who = " ".join(x for x in (name, case.get("restaurant_id", "")) if x)

    def head(fig: Any, _page: int) -> None:
        y = (PAGE_H - 30) / PAGE_H
        props = fonts.props(size=7.5)
        fig.text(
            LEFT / PAGE_W,
            y,
            fonts.label(TITLE_ZH, TITLE_EN),
            fontproperties=props,
            color=MUTED,
            parse_math=False,
        )
        fig.text(
            RIGHT / PAGE_W,
            y,
            fonts.text(who),
            ha="right",
            fontproperties=props,
            color=MUTED,
            parse_math=False,
        )
        fig.patches.append(_rule(fig, (PAGE_H - 36) / PAGE_H))

    def footer(fig: Any, i: int, n: int) -> None:
        props = fonts.props(size=7)
        y = 24 / PAGE_H
        fig.text(
            LEFT / PAGE_W,
            y,
            fonts.label("案件", "Case") + f" {cid}",
            fontproperties=props,
            color=MUTED,
            parse_math=False,
        )
        page = f"第 {i} 页 / 共 {n} 页  Page {i} of {n}" if fonts.cjk else f"Page {i} of {n}"
        fig.text(RIGHT / PAGE_W, y, page, ha="right", fontproperties=props, color=MUTED, parse_math=False)

    flow = Flow(fonts, head)
    flow.new_page()
    flow.y -= 30
    if fonts.cjk:
        flow.put(LEFT, flow.y, TITLE_ZH, 22)
        flow.y -= 22
    flow.put(LEFT, flow.y, TITLE_EN, 12 if fonts.cjk else 20, "#1f4e78")
    flow.y -= 12
    summary = view.get("summary") or {}
    flow.para(
        fonts.label("案卷内容截至", "As of")
        + f" {local(case.get('updated_ms'), tz)} · "
        + fonts.label("案件版本", "case version")
        + f" {case.get('version', summary.get('version', '–'))}",
        8,
        MUTED,
    )
    if not fonts.cjk:
        flow.para(NO_CJK_FONT_NOTE, 8, "#8a5a00")
    _summary(flow, view, cv, tz, name)
    _evidence(flow, cv, tz, readings, readings_note)
    _notices(flow, view, cv, tz)
    onsite_section(flow, view, tz)
    trail_section(flow, view, tz)
    photos_section(flow, view, files, tz)

    buf = io.BytesIO()
    meta = {"Title": f"{TITLE_EN} {cid}", "Subject": TITLE_ZH, "Creator": "fumewatch", "CreationDate": None}
    with _PDF_LOCK, mpl.rc_context({"pdf.fonttype": 42}), PdfPages(buf, metadata=meta) as pdf:
        for fig in flow.finish(footer):
            pdf.savefig(fig)
    return buf.getvalue()


def _rule(fig: Any, y: float) -> Any:
    from matplotlib.patches import Rectangle

    return Rectangle(
        (LEFT / PAGE_W, y), (RIGHT - LEFT) / PAGE_W, 0.6 / PAGE_H, transform=fig.transFigure, color="#c9d6e3"
    )


def _rules_text(cv: Mapping[str, Any], fonts: Any) -> tuple[str, str]:
    """(rule, its source) of the case's events, each distinct one once; the record's words only."""
    rules, sources = [], []
    for e in cv["events"]:
        zh, en = RULE_LABELS.get(e["rule"], (e["rule"], e["rule"]))
        text = (f"{zh} {en}" if fonts.cjk else en) if e["rule"] else fonts.label("未记录", "not recorded")
        if e["rule_title"] and fonts.cjk:
            text += f"：{e['rule_title']}"
        if text not in rules:
            rules.append(text)
        src = e["rule_source"] or fonts.label("未记录", "not recorded")
        if src not in sources:
            sources.append(src)
    return "\n".join(rules) or "–", "\n".join(sources) or "–"


def _summary(flow: Flow, view: Mapping[str, Any], cv: Mapping[str, Any], tz: str, name: str) -> None:
    fonts, cjk = flow.fonts, flow.fonts.cjk
    case = view["case"]
    flow.heading("一、案件概况", "Case summary")
    rid = case.get("restaurant_id", "")
    pol = case.get("pollutant") or ""
    pzh, pen = POLLUTANT_LABELS.get(pol, (pol, pol))
    end = local(case.get("end_ms"), tz, fonts.label("进行中", "ongoing"))
    rule, source = _rules_text(cv, fonts)
    step = cv.get("step")
    level = label("level", cv.get("level"), cjk) + (f" · 第 {step} 次 step {step}" if cjk and step else "")
    rows = [
        ("案件编号", "Case ID", case["case_id"]),
        ("案件类型", "Case type", label("case_type", case.get("case_type") or "enforcement", cjk)),
        (
            "餐饮单位",
            "Restaurant",
            (f"{name}（{rid}）" if cjk else f"{name} ({rid})")
            if name
            else f"{rid}（登记簿中无该单位名称 name not in the registry）"
            if cjk
            else f"{rid} (name not in the registry)",
        ),
        ("所属区", "District", case.get("district") or "–"),
        ("监测设备", "Device", case.get("device_id") or "–"),
        ("处置等级", "Level", level),
        ("超标时段", "Period", f"{local(case.get('start_ms'), tz)} – {end}"),
        ("污染物", "Pollutant", (f"{pzh} {pen}" if cjk else pen) if pol else "–"),
        ("判定规则", "Rule", rule),
        ("规则依据", "Standard / article", source),
        (
            "限值 / 峰值 / 均值",
            "Limit / peak / mean",
            " / ".join(_mg(case.get(k)) for k in ("limit_mg_m3", "peak_mg_m3", "mean_mg_m3")),
        ),
        ("案件状态", "Status", label("status", case.get("status"), cjk)),
        (
            "结案结果",
            "Outcome",
            label("outcome", case["outcome"], cjk)
            if case.get("outcome")
            else fonts.label("未结案", "not closed"),
        ),
        ("承办人", "Assignee", case.get("assignee") or fonts.label("未指派", "not assigned")),
        (
            "整改期限",
            "Rectification deadline",
            local(case.get("deadline_ms"), tz, fonts.label("未责令整改", "none ordered")),
        ),
    ]
    if cv.get("deadline_ms") is not None:
        rows.append(("本环节改正期限", "Correction period of the step", local(cv["deadline_ms"], tz)))
    if cv.get("owner_delivered") is not None:
        when = local(cv.get("owner_delivered_ms"), tz, "")
        rows.append(
            ("告知已送达当事人", "Owner notified", f"{yes_no(cv['owner_delivered'], cjk)} {when}".strip())
        )
    for h in cv.get("history") or []:
        got = (
            (fonts.label("已送达", "delivered") + " " + local(h.get("delivered_ms"), tz, ""))
            if h.get("delivered")
            else fonts.label("未送达", "not delivered")
        )
        rows.append(
            (
                "此前处置",
                "Earlier step",
                f"{label('level', h.get('level'), cjk)} {local(h.get('start_ms'), tz, '?')} · {got}",
            )
        )
    rows += [("未记录", "Not recorded", missing_text([m], cjk=cjk)) for m in cv.get("missing") or []]
    rows += [
        (
            "证据待核实",
            "Evidence under review",
            f"{label('check', f['check'], cjk)} {f['start']} – {f['end']}"
            + (f": {f.get('evidence') if cjk else f.get('evidence_en')}" if f.get("evidence") else "")
            + f" ({f['event_id']})",
        )
        for f in view.get("integrity") or []
    ]
    flow.facts(rows)


def _evidence(flow: Flow, cv: Mapping[str, Any], tz: str, readings: Readings, note: tuple[str, str]) -> None:
    fonts, cjk = flow.fonts, flow.fonts.cjk
    flow.heading("二、监测证据", "Monitoring evidence")
    flow.para(fonts.label(*note), 7.5, MUTED)
    for i, e in enumerate(cv["events"], 1):
        flow.subheading(fonts.label(f"事件 {i}", f"Event {i}") + f" · {e['event_id']}")
        end = local(e.get("end_ms"), tz, fonts.label("进行中", "ongoing"))
        rows = [
            ("事件类型", "Kind", label("kind", e["kind"], cjk)),
            ("时段", "Period", f"{local(e.get('start_ms'), tz)} – {end}"),
            *event_facts(e, tz, cjk)[2:],
        ]
        flow.facts(rows)
        by_device: dict[str, list[Mapping[str, Any]]] = {}
        for w in e["windows"]:
            by_device.setdefault(w.get("device_id") or "", []).append(w)
        if not by_device:
            flow.para(
                fonts.label("本事件无判定窗口记录", "No deciding windows recorded for this event"),
                8,
                MUTED,
                indent=6,
            )
            continue
        for dev, ws in sorted(by_device.items()):
            lo = min(w["start_ms"] for w in ws if w.get("start_ms") is not None)
            hi = max((w.get("end_ms") or w["start_ms"]) for w in ws if w.get("start_ms") is not None)
            rows_of = (
                None if readings is None else [r for r in readings.get(dev, ()) if lo <= r["time_ms"] < hi]
            )
            title = f"{dev} · {fonts.label('浓度与限值', 'concentration vs limit')} · {local(lo, tz)} – {local(hi, tz)}"
            ax = flow.axes(215)
            draw_evidence(
                ax,
                ws,
                rows_of,
                pollutant=e.get("pollutant") or "oil_fume",
                limit_mg_m3=e.get("limit_mg_m3"),
                tz=tz,
                fonts=fonts,
                title=title,
            )
        flow.table(*_windows_table(e["windows"], tz, cjk))


def _windows_table(
    windows: Sequence[Mapping[str, Any]], tz: str, cjk: bool
) -> tuple[list[Col], list[list[str]]]:
    groups = any(w.get("in_group") is not None for w in windows)
    cols = [
        Col("设备", "Device", 36),
        Col("窗口开始", "Start", 94),
        Col("窗口结束", "End", 94),
        Col("均值 mg/m³", "Mean", 40, "right"),
        Col("最大值 mg/m³", "Max", 44, "right"),
        Col("实收/应收", "Samples", 38, "right"),
        Col("有效", "Valid", 46),
        Col("超标", "Exceeds", 30),
        *([Col("属超标判定组", "In group", 44)] if groups else []),
        Col("未折算", "Unconverted", 36, "right"),
    ]
    rows = []
    for w in windows:
        f = lambda v: "" if v is None else f"{v:.3f}"  # noqa: E731
        valid = yes_no(w.get("valid"), cjk)
        if w.get("invalid_reason"):
            valid += f" ({w['invalid_reason']})"
        rows.append(
            [
                w.get("device_id") or "",
                local(w.get("start_ms"), tz, ""),
                local(w.get("end_ms"), tz, ""),
                f(w.get("mean_mg_m3")),
                f(w.get("max_mg_m3")),
                f"{w.get('samples') if w.get('samples') is not None else '–'}/{w.get('expected') if w.get('expected') is not None else '–'}",
                valid,
                yes_no(w.get("exceeds"), cjk),
                *([yes_no(w.get("in_group"), cjk)] if groups else []),
                str(w.get("unconverted") or 0),
            ]
        )
    return cols, rows


def _notices(flow: Flow, view: Mapping[str, Any], cv: Mapping[str, Any], tz: str) -> None:
    fonts, cjk = flow.fonts, flow.fonts.cjk
    flow.heading("三、通知与送达回执", "Notices and receipts")
    from alerts.ledger.masking import mask_target, scrub

    index = {e["event_id"]: i for i, e in enumerate(cv["events"], 1)}
    rows = []
    for n in view.get("notices") or []:
        key = str(n.get("key") or "")
        ev = next((eid for eid in index if key.startswith(eid + ":")), "")
        action = key[len(ev) + 1 :] if ev else key
        rows.append(
            [
                fonts.label(f"事件 {index[ev]}", f"Event {index[ev]}") if ev else "–",
                f"{label('template', n.get('template'), cjk)}\n{action}",
                label("channel", n.get("channel"), cjk),
                mask_target(str(n.get("target") or "")),
                label("notice_status", n.get("status"), cjk),
                str(n.get("attempts") if n.get("attempts") is not None else "–"),
                n.get("updated") or n.get("created") or "–",
                scrub(str(n.get("error") or "")),
            ]
        )
    if not rows:
        text = fonts.label(
            "通知台账中无该案件事件的通知记录", "The notice ledger holds no notice of this case's events"
        )
        flow.para(text, 8, MUTED, indent=6)
        return
    flow.table(
        [
            Col("事件", "Event", 34),
            Col("通知", "Notice", 62),
            Col("渠道", "Channel", 44),
            Col("接收方（已脱敏）", "Target (masked)", 92),
            Col("状态", "Status", 40),
            Col("次数", "Tries", 24, "right"),
            Col("状态时间", "Time", 96),
            Col("错误", "Error", 70),
        ],
        rows,
    )
