"""The evidence chart of a case file: one device's deciding windows (mean as a bar over the window, max as
a marker, invalid windows grey), the raw readings of those windows when a readings store was given (the
judged value, and the measured concentration thin), and the limit. The time axis is local time in the
display zone; its label names the zone and the UTC offset."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from alerts.reports.model import POLLUTANT_LABELS, READING_FIELD
from alerts.reports.timetext import local_text

_MEASURED = {"oil_fume": "oil_fume_mg_m3", "pm": "pm_mg_m3", "nmhc": "nmhc_mg_m3"}


def _local(ms: Sequence[int], tz: str) -> pd.DatetimeIndex:
    return pd.to_datetime(np.asarray(ms, dtype="int64"), unit="ms", utc=True).tz_convert(tz).tz_localize(None)


def draw_evidence(
    ax: Any,
    windows: Sequence[Mapping[str, Any]],
    readings: Sequence[Mapping[str, Any]] | None,
    *,
    pollutant: str,
    limit_mg_m3: float | None,
    tz: str,
    fonts: Any,
    title: str,
) -> None:
    """Draw one device's evidence on ``ax``; ``readings`` None: no store was given (windows only)."""
    import matplotlib.dates as mdates

    fp = fonts.props(size=6.5)
    zh, en = POLLUTANT_LABELS.get(pollutant, (pollutant, pollutant))
    ws = [w for w in windows if w.get("start_ms") is not None]
    if readings:
        field = READING_FIELD.get(pollutant, "oil_fume_ref_mg_m3")
        pts = [(r["time_ms"], r.get(field)) for r in readings if r.get(field) is not None]
        if pts:
            t, v = zip(*pts, strict=True)
            judged = fonts.label(f"读数（{zh}，折算）", f"readings ({en}, reference)")
            if pollutant != "oil_fume":
                judged = fonts.label(f"读数（{zh}）", f"readings ({en})")
            ax.plot(_local(t, tz), v, color="#1d3557", lw=0.9, marker=".", ms=2.2, label=judged, zorder=3)
        measured = _MEASURED.get(pollutant)
        if pollutant == "oil_fume" and measured:
            mpts = [(r["time_ms"], r.get(measured)) for r in readings if r.get(measured) is not None]
            if mpts:
                t, v = zip(*mpts, strict=True)
                ax.plot(
                    _local(t, tz),
                    v,
                    color="#8d99ae",
                    lw=0.7,
                    ls=":",
                    label=fonts.label("实测浓度", "measured"),
                    zorder=2,
                )
    for valid in (True, False):
        sel = [w for w in ws if bool(w.get("valid", True)) is valid and w.get("mean_mg_m3") is not None]
        if not sel:
            continue
        t0 = _local([w["start_ms"] for w in sel], tz)
        t1 = _local([w.get("end_ms") or w["start_ms"] for w in sel], tz)
        color = "#f4a261" if valid else "#adb5bd"
        lab = (
            fonts.label("窗口均值", "window mean")
            if valid
            else fonts.label("无效窗口均值", "invalid window mean")
        )
        ax.hlines([w["mean_mg_m3"] for w in sel], t0, t1, color=color, lw=3.0, label=lab, zorder=4)
        mx = [
            (a + (b - a) / 2, w["max_mg_m3"])
            for a, b, w in zip(t0, t1, sel, strict=True)
            if w.get("max_mg_m3") is not None
        ]
        if mx and valid:
            ax.plot(
                [m for m, _ in mx],
                [v for _, v in mx],
                "v",
                ms=3.5,
                color="#c1121f",
                label=fonts.label("窗口最大值", "window max"),
                zorder=5,
            )
    for w in ws:  # window boundaries
        ax.axvline(_local([w["start_ms"]], tz)[0], color="#dddddd", lw=0.5, zorder=1)
    if limit_mg_m3 is not None:
        ax.axhline(
            limit_mg_m3,
            color="#e63946",
            ls="--",
            lw=1.1,
            label=fonts.label(f"限值 {limit_mg_m3:g} mg/m³", f"limit {limit_mg_m3:g} mg/m³"),
            zorder=3,
        )
    if ws:
        lo = min(w["start_ms"] for w in ws)
        hi = max(w.get("end_ms") or w["start_ms"] for w in ws)
        pad = max(60_000, (hi - lo) // 40)
        a, b = _local([lo - pad, hi + pad], tz)
        ax.set_xlim(a, b)
        ax.set_xlabel(f"{tz} (UTC{local_text(lo, tz, '')})", fontsize=6.5)
    else:
        ax.text(
            0.5,
            0.5,
            fonts.label("无判定窗口", "no windows"),
            transform=ax.transAxes,
            ha="center",
            fontproperties=fp,
        )
    ax.set_ylim(bottom=0)
    ax.set_ylabel("mg/m³", fontproperties=fp)
    loc = mdates.AutoDateLocator(minticks=4, maxticks=9)
    ax.xaxis.set_major_locator(loc)
    ax.xaxis.set_major_formatter(
        mdates.ConciseDateFormatter(
            loc,
            formats=["%Y", "%m", "%m-%d", "%H:%M", "%H:%M", "%S.%f"],
            zero_formats=["", "%Y", "%m", "%m-%d", "%H:%M", "%H:%M"],
            offset_formats=["", "%Y", "%Y-%m", "%Y-%m-%d", "%Y-%m-%d", "%Y-%m-%d %H:%M"],
        )
    )
    ax.tick_params(labelsize=6.5)
    ax.xaxis.get_offset_text().set_fontsize(6.5)
    ax.grid(True, axis="y", color="#e5e5e5", lw=0.5)
    ax.set_title(fonts.text(title), fontproperties=fonts.props(size=8), loc="left", parse_math=False)
    if ax.get_legend_handles_labels()[0]:
        src = (
            fonts.label("数据：原始读数与判定窗口", "data: raw readings and deciding windows")
            if readings is not None
            else fonts.label("数据：案件记录中的判定窗口", "data: the case record's deciding windows")
        )
        ax.legend(
            loc="lower right",
            prop=fonts.props(size=6),
            framealpha=0.85,
            ncols=3,
            title=src,
            title_fontproperties=fonts.props(size=6),
        )
