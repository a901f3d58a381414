"""pdf: the enforcement-case pages. Each case starts on a new page: the header (case id, restaurant,
district, level and step, status, period in local time with the offset, deadline, owner delivery, earlier
steps, what the record does not hold), then per event its facts (rule and source, limit, C, Q, n, C_ref,
fan/purifier states) and the table of its deciding windows, then the receipts table. The content flows on
to further pages as needed (a table's header is repeated on each page)."""

from __future__ import annotations

import numpy as np

from alerts.reports.cases import case_tables
from alerts.reports.formats.case_text import (
    NO_CASES,
    RECEIPT_COLUMNS,
    WINDOW_COLUMNS,
    case_header,
    event_facts,
)
from alerts.reports.formats.common import _NUMERIC, display_cells
from alerts.reports.formats.pdf_text import _A4_LANDSCAPE, _clip, _core_text_class
from alerts.reports.model import Report

#: Column widths (half-width characters) of the per-case tables, by key.
_WIDTHS = {
    "device_id": 8,
    "start": 23,
    "end": 23,
    "mean_mg_m3": 8,
    "max_mg_m3": 8,
    "samples": 6,
    "expected": 6,
    "valid": 5,
    "invalid_reason": 11,
    "exceeds": 5,
    "in_group": 11,
    "unconverted": 9,
    "time": 23,
    "event_id": 40,
    "action": 9,
    "channel": 9,
    "target": 24,
    "template": 12,
    "status": 8,
    "attempts": 6,
    "error": 20,
}
_TOP, _BOTTOM, _PITCH = 0.90, 0.05, 0.0205
_X0, _X1 = 0.035, 0.965


class _Flow:
    """Lines and table rows placed top to bottom, a new page (with a continuation head) when one is full."""

    def __init__(self, pdf, report: Report, fonts, head) -> None:  # noqa: ANN001
        self.pdf, self.report, self.fonts, self.head = pdf, report, fonts, head
        self.fig = None
        self.y = 0.0
        self.title = ""
        self.pages = 0

    def page(self, title: str) -> None:
        from matplotlib.figure import Figure

        self.flush()
        self.title = title
        self.pages += 1
        self.fig = Figure(figsize=_A4_LANDSCAPE)
        self.head(self.fig, self.fonts, title, self.report, f"{self.pages}")
        self.y = _TOP

    def flush(self) -> None:
        if self.fig is not None:
            self.pdf.savefig(self.fig)
            self.fig = None

    def room(self, lines: int = 1) -> bool:
        """Make sure ``lines`` rows fit; False when a new page had to be started."""
        if self.y - lines * _PITCH >= _BOTTOM:
            return True
        cont = self.fonts.label("（续）", "(cont.)")
        self.page(self.title if self.title.endswith(cont) else f"{self.title} {cont}")
        return False

    def text(self, s: str, *, size: float = 8.5, bold: bool = False, x: float = _X0, color="#1d2733") -> None:
        self.room()
        self.y -= _PITCH
        weight = "bold" if bold else "normal"
        self.fig.text(
            x,
            self.y,
            self.fonts.text(s),
            fontproperties=self.fonts.props(size=size, weight=weight),
            color=color,
        )

    def facts(self, rows) -> None:  # noqa: ANN001
        for zh, en, v in rows:
            self.room()
            self.y -= _PITCH
            lab = self.fonts.label(zh, en)
            self.fig.text(_X0 + 0.01, self.y, lab, fontproperties=self.fonts.props(size=8), color="#5b6b7c")
            self.fig.text(_X0 + 0.25, self.y, self.fonts.text(v), fontproperties=self.fonts.props(size=8))

    def table(self, df, columns) -> None:  # noqa: ANN001
        from matplotlib.patches import Rectangle

        fonts = self.fonts
        if df.empty:
            self.text(fonts.label("无记录", "none"), size=8, x=_X0 + 0.01, color="#5b6b7c")
            return
        widths = np.array([_WIDTHS.get(c.key, 10) for c in columns], dtype=float)
        xs = _X0 + np.concatenate([[0], np.cumsum(widths)[:-1]]) / widths.sum() * (_X1 - _X0)
        right = _X0 + np.cumsum(widths) / widths.sum() * (_X1 - _X0)
        cells = [
            [_clip(fonts.text(v), int(w)) for v in display_cells(df, c, bilingual=False, cjk=fonts.cjk)]
            for c, w in zip(columns, widths, strict=True)
        ]
        from matplotlib.font_manager import FontProperties

        fp, hp = fonts.props(size=6.5, single=True), fonts.props(size=6.5, weight="bold")
        core_fp = FontProperties(family="Helvetica", weight="medium", size=6.5)
        core_text = _core_text_class()

        def x_of(j: int) -> tuple[float, str]:
            return (right[j] - 0.005, "right") if columns[j].kind in _NUMERIC else (xs[j] + 0.005, "left")

        def header() -> None:
            self.y -= 2 * _PITCH
            self.fig.patches.append(
                Rectangle(
                    (_X0 - 0.005, self.y),
                    _X1 - _X0 + 0.01,
                    2 * _PITCH,
                    transform=self.fig.transFigure,
                    color="#1f4e78",
                    zorder=0,
                )
            )
            for j, c in enumerate(columns):
                x, ha = x_of(j)
                label = f"{c.zh}\n{c.en}" if fonts.cjk else c.en
                self.fig.text(
                    x, self.y + 0.004, _clip(label, 99), ha=ha, va="bottom", color="white", fontproperties=hp
                )

        self.room(3)
        self.y -= _PITCH * 0.4
        header()
        for i in range(len(df)):
            if not self.room():
                header()
            self.y -= _PITCH
            if i % 2:
                self.fig.patches.append(
                    Rectangle(
                        (_X0 - 0.005, self.y - _PITCH * 0.28),
                        _X1 - _X0 + 0.01,
                        _PITCH,
                        transform=self.fig.transFigure,
                        color="#f0f4f8",
                        zorder=0,
                    )
                )
            for j in range(len(columns)):
                v = cells[j][i]
                if not v:
                    continue
                x, ha = x_of(j)
                if v.isascii():
                    self.fig.add_artist(core_text(x, self.y, v, ha=ha, fontproperties=core_fp))
                else:
                    self.fig.text(x, self.y, v, ha=ha, fontproperties=fp)


def pdf_cases(pdf, report: Report, fonts, head) -> None:  # noqa: ANN001
    """Append the case pages to ``pdf``; ``head`` draws a page head (:func:`pdf._pdf_page_head`)."""
    tz = report.display_tz
    flow = _Flow(pdf, report, fonts, head)
    title = fonts.label("执法案件", "Enforcement cases")
    if not report.cases:
        flow.page(title)
        flow.text(fonts.label(*NO_CASES), size=11)
        flow.flush()
        return
    tables = case_tables(report.cases, tz)
    wins, recs = tables["case_windows"], tables["case_receipts"]
    for case in report.cases:
        cid = case["case_id"]
        flow.page(f"{title} · {cid}")
        flow.facts(case_header(case, tz, fonts.cjk))
        for e in case["events"]:
            flow.room(4)
            flow.y -= _PITCH * 0.5
            flow.text(
                fonts.label("事件", "Event") + f" {e['event_id']}", size=9.5, bold=True, color="#1f4e78"
            )
            flow.facts(event_facts(e, tz, fonts.cjk)[1:])
            flow.text(fonts.label("判定窗口", "Deciding windows"), size=8.5, bold=True)
            flow.table(wins[(wins["case_id"] == cid) & (wins["event_id"] == e["event_id"])], WINDOW_COLUMNS)
        flow.room(4)
        flow.y -= _PITCH * 0.5
        flow.text(fonts.label("通知回执", "Notice receipts"), size=9.5, bold=True, color="#1f4e78")
        if "receipts" in case["missing"]:
            flow.text(fonts.label("未记录", "not recorded"), size=8, x=_X0 + 0.01, color="#8a5a00")
        else:
            flow.table(recs[recs["case_id"] == cid], RECEIPT_COLUMNS)
    flow.flush()
