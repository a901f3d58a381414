"""Charts for html/pdf reports, and the font that makes Chinese text print (matplotlib, no pyplot).

Only matplotlib's object API is used (``Figure`` without pyplot), so charts can be drawn from several
threads (the report API) without pyplot's global state.

Chinese glyphs need a CJK font: :func:`find_cjk_font` takes ``[report] font_file`` if set, else the first
font ``fc-list :lang=zh`` lists (the set-up installs ``fonts-wqy-microhei``, :data:`CJK_FONT_PACKAGE`;
``fonts-noto-cjk`` works too), else a CJK family matplotlib already knows. Without one, labels are English
and Chinese data text is replaced by ``?`` (:meth:`Fonts.text`), so no page shows empty "tofu" boxes, and
one warning (:data:`NO_CJK_FONT_WARNING`, naming the package to install) is logged per process: on stderr
for ``fumewatch report``, in the service log for the API.

``FUMEWATCH_CJK_FONT_DIR`` (:data:`FONT_DIR_ENV`), when set, replaces the system search: the font files in
that directory (``*.ttf``, ``*.ttc``, ``*.otf``, taken to hold Chinese glyphs) are the only candidates, so
an empty directory means "no Chinese font" (tests use that), and a font kept outside the system font
directories can be used without fontconfig.
"""

from __future__ import annotations

import base64
import io
import logging
import os
import re
import shutil
import subprocess
import threading
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from alerts.reports.model import ChartData
from alerts.reports.timetext import local_text

log = logging.getLogger("fumewatch.reports")

#: The Debian package of the Chinese font the set-up installs (.ci/run and the Dockerfile, with fontconfig).
CJK_FONT_PACKAGE = "fonts-wqy-microhei"
#: Logged once per process when a chart or PDF is drawn without a Chinese font.
NO_CJK_FONT_WARNING = (
    "fumewatch report: no Chinese font found; names print as '?'. "
    f"Install one: apt-get install {CJK_FONT_PACKAGE}"
)
#: A directory searched for a Chinese font instead of the system's fonts (see the module docstring).
FONT_DIR_ENV = "FUMEWATCH_CJK_FONT_DIR"
_FONT_SUFFIXES = (".ttf", ".ttc", ".otf")

#: CJK families matplotlib may already know (macOS/Windows/Linux), in order of preference.
_KNOWN_CJK = (
    "Noto Sans CJK SC",
    "Noto Sans SC",
    "Source Han Sans SC",
    "WenQuanYi Micro Hei",
    "WenQuanYi Zen Hei",
    "Microsoft YaHei",
    "PingFang SC",
    "SimHei",
    "AR PL UMing CN",
)
#: Characters a Latin fallback font (DejaVu Sans) cannot draw: CJK and everything above it in the BMP.
_NON_LATIN = re.compile(r"[\u2e80-\uffef]+")
_lock = threading.Lock()


@dataclass(frozen=True)
class Fonts:
    """The font families to use, and whether Chinese text can be shown."""

    family: tuple[str, ...]
    cjk: bool
    cjk_name: str = ""

    def label(self, zh: str, en: str) -> str:
        """A bilingual label ``"zh en"``, or the English one without a CJK font."""
        return f"{zh} {en}" if self.cjk else en

    def text(self, s: str) -> str:
        """Data text as it can be drawn: unchanged with a CJK font, else runs of CJK characters -> ``?``."""
        return s if self.cjk else _NON_LATIN.sub("?", s)

    def props(self, size: float | None = None, weight: str = "normal", *, single: bool = False):
        """Font properties; ``single``: the first family only (no fallback chain: 20 % faster PDF text,
        for table cells, which a CJK font covers entirely)."""
        from matplotlib.font_manager import FontProperties

        if single:
            return FontProperties(family=self.family[0], size=size, weight="normal" if self.cjk else weight)

        # CJK faces rarely ship a bold weight; asking for one only makes matplotlib log a warning.
        return FontProperties(family=list(self.family), size=size, weight="normal" if self.cjk else weight)


def _fc_list_zh() -> list[str]:
    exe = shutil.which("fc-list")
    if exe is None:
        return []
    try:
        out = subprocess.run(
            [exe, "-f", "%{file}|%{family}\n", ":lang=zh"],
            capture_output=True,
            text=True,
            timeout=10,
            check=False,
        ).stdout
    except (OSError, subprocess.SubprocessError):
        return []
    found = []
    for line in out.splitlines():
        path, _, family = line.partition("|")
        if path.strip():
            fam = family.lower()
            # prefer sans-serif Simplified Chinese faces, and proportional over monospaced ones
            score = (
                0
                if "sans cjk sc" in fam or "micro hei" in fam
                else 1
                if "sans" in fam or "hei" in fam
                else 2,
                1 if "mono" in fam else 0,
                path,
            )
            found.append((score, path.strip()))
    return [p for _, p in sorted(found)]


def _font_dir_files(font_dir: str) -> list[str]:
    d = Path(font_dir)
    if not d.is_dir():
        return []
    return sorted(str(p) for p in d.iterdir() if p.suffix.lower() in _FONT_SUFFIXES and p.is_file())


def find_cjk_font(font_file: str = "") -> Fonts:
    """The fonts for charts and PDF pages. ``font_file``: a font path, ``""`` (search) or ``"none"``.

    Without a Chinese font (and unless ``font_file`` is ``"none"``) logs :data:`NO_CJK_FONT_WARNING` once.
    """
    return _find_cjk_font(font_file, os.environ.get(FONT_DIR_ENV))


@lru_cache(maxsize=8)
def _find_cjk_font(font_file: str, font_dir: str | None) -> Fonts:
    from matplotlib import font_manager

    latin = "DejaVu Sans"
    if font_file.strip().lower() == "none":
        return Fonts((latin,), False)
    if font_file.strip():
        candidates = [font_file]
    elif font_dir is not None:
        candidates = _font_dir_files(font_dir)
    else:
        candidates = _fc_list_zh()
    with _lock:
        for path in candidates:
            try:
                font_manager.fontManager.addfont(path)
                name = font_manager.FontProperties(fname=path).get_name()
            except Exception as exc:  # unreadable or unsupported file: try the next one
                log.warning("event=report_font_unusable path=%s error=%s", path, exc)
                continue
            return Fonts((name, latin), True, name)
        known = {f.name for f in font_manager.fontManager.ttflist}
    if font_dir is None or font_file.strip():  # FUMEWATCH_CJK_FONT_DIR replaces the system's fonts
        for name in _KNOWN_CJK:
            if name in known:
                return Fonts((name, latin), True, name)
    log.warning(NO_CJK_FONT_WARNING)
    return Fonts((latin,), False)


def _local(ms: np.ndarray, tz: str) -> pd.DatetimeIndex:
    """Epoch ms -> naive local datetimes (matplotlib then labels them as local time)."""
    return pd.to_datetime(np.asarray(ms, dtype="int64"), unit="ms", utc=True).tz_convert(tz).tz_localize(None)


def draw_chart(ax, c: ChartData, tz: str, fonts: Fonts, *, compact: bool = False) -> None:
    """Draw concentration vs limit around one exceedance event on ``ax``."""
    import matplotlib.dates as mdates

    fp = fonts.props(size=7 if compact else 8)
    start, end = _local(np.array([c.start_ms, c.end_ms]), tz)
    ax.axvspan(start, end, color="#f4a261", alpha=0.18, lw=0, label=fonts.label("超标时段", "event"))
    what = {
        "oil_fume": ("油烟(折算)", "oil fume (reference)"),
        "pm": ("颗粒物", "PM"),
        "nmhc": ("非甲烷总烃", "NMHC"),
    }
    zh, en = what.get(c.pollutant, (c.pollutant, c.pollutant))
    if c.source == "readings" and len(c.times_ms):
        t = _local(c.times_ms, tz)
        ax.plot(t, c.values, color="#1d3557", lw=1.0, label=fonts.label(zh, en))
    elif len(c.times_ms):
        t0, t1 = _local(c.times_ms, tz), _local(c.ends_ms if c.ends_ms is not None else c.times_ms, tz)
        ax.hlines(
            c.values, t0, t1, color="#1d3557", lw=2.0, label=fonts.label(f"{zh}窗口均值", f"{en} window mean")
        )
        if c.max_values is not None and np.isfinite(c.max_values).any():
            mid = t0 + (t1 - t0) / 2
            ax.plot(
                mid, c.max_values, "v", ms=3, color="#457b9d", label=fonts.label("窗口最大值", "window max")
            )
    else:
        ax.text(
            0.5, 0.5, fonts.label("无数据", "no data"), transform=ax.transAxes, ha="center", fontproperties=fp
        )
    if c.limit_mg_m3 is not None:
        ax.axhline(
            c.limit_mg_m3,
            color="#e63946",
            ls="--",
            lw=1.2,
            label=fonts.label(f"限值 {c.limit_mg_m3:g}", f"limit {c.limit_mg_m3:g}"),
        )
    ax.set_ylim(bottom=0)
    ax.set_ylabel("mg/m³", fontproperties=fp)
    loc = mdates.AutoDateLocator()
    ax.xaxis.set_major_locator(loc)
    ax.xaxis.set_major_formatter(mdates.ConciseDateFormatter(loc))
    ax.tick_params(labelsize=7)
    ax.set_xlabel(f"{tz} (UTC{local_text(c.start_ms, tz, '')})", fontsize=7)  # the axis is local time
    ax.xaxis.get_offset_text().set_fontsize(7)
    ax.grid(True, color="#dddddd", lw=0.5)
    # Without a CJK font the (Chinese) name and district would only be "?": the ids identify the event.
    who = [c.restaurant_id, c.name, c.district] if fonts.cjk else [c.restaurant_id]
    title = " · ".join(
        [
            " ".join(x for x in who[:2] if x),
            *(x for x in who[2:] if x),
            c.device_id,
            local_text(c.start_ms, tz),
            f"{fonts.label('峰值', 'peak')} {c.peak_mg_m3:.2f} mg/m³",
            *([fonts.label("进行中", "open")] if c.open else []),
        ]
    )
    ax.set_title(title, fontproperties=fonts.props(size=8 if compact else 9, weight="bold"), loc="left")
    src = (
        fonts.label("数据: 原始读数", "data: readings")
        if c.source == "readings"
        else fonts.label("数据: 事件窗口", "data: event windows")
    )
    ax.legend(
        loc="upper right",
        prop=fonts.props(size=6.5),
        framealpha=0.8,
        title=src,
        title_fontproperties=fonts.props(size=6.5),
    )


def chart_png(c: ChartData, tz: str, fonts: Fonts, *, dpi: int = 100) -> bytes:
    """One chart as PNG bytes (for html)."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(9.0, 3.0), dpi=dpi)
    fig.subplots_adjust(left=0.065, right=0.985, top=0.9, bottom=0.14)  # fixed: a layout engine costs 3x
    draw_chart(fig.add_subplot(), c, tz, fonts)
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def chart_data_uri(c: ChartData, tz: str, fonts: Fonts) -> str:
    return "data:image/png;base64," + base64.b64encode(chart_png(c, tz, fonts)).decode("ascii")
