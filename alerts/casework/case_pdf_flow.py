"""Page flow of the case file PDF: A4 portrait pages filled top to bottom with headings, wrapped text,
label/value facts, tables (wrapped cells, the header repeated on each page), charts and images; a new page
when one is full, and "page n of N" footers once the number of pages is known.

Positions are in points from the page's bottom-left corner (A4: 595 x 842 pt). Text is measured with
the fonts it is drawn in (matplotlib's Agg text metrics, cached per character), so a line breaks before it
reaches the margin: Chinese text may break between any two characters, other text at spaces where it can.
Every text is drawn with ``parse_math=False``: a ``$`` in an inspector's note is a dollar sign.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

A4_PORTRAIT = (8.27, 11.69)  # inches
PAGE_W, PAGE_H = A4_PORTRAIT[0] * 72, A4_PORTRAIT[1] * 72
LEFT, RIGHT = 42.0, PAGE_W - 42.0
TOP, BOTTOM = PAGE_H - 58.0, 46.0
INK, MUTED, ACCENT, HEAD_BG, ZEBRA = "#1d2733", "#5b6b7c", "#1f4e78", "#1f4e78", "#f0f4f8"


class Measure:
    """Widths of text in points (per-character Agg metrics at 10 pt, cached, scaled to the size)."""

    def __init__(self, fonts: Any) -> None:
        from matplotlib.backends.backend_agg import RendererAgg

        self.fonts = fonts
        self._r = RendererAgg(10, 10, 720)  # 10 px per point: metrics to a tenth of a point
        self._prop = fonts.props(size=10)
        self._cache: dict[str, float] = {}

    def _char(self, ch: str) -> float:
        w = self._cache.get(ch)
        if w is None:
            m = lambda s: self._r.get_text_width_height_descent(s, self._prop, ismath=False)[0]  # noqa: E731
            w = (m(f"x{ch}x") - m("xx")) / 100.0 if ch.isspace() else m(ch) / 100.0
            self._cache[ch] = w
        return w

    def width(self, s: str, size: float) -> float:
        return sum(self._char(ch) for ch in s) * size * 1.02  # 2 %: kerning and rounding

    def wrap(self, text: str, width: float, size: float) -> list[str]:
        """``text`` broken into lines no wider than ``width`` points (its own line breaks kept)."""
        out: list[str] = []
        for para in (text or "").split("\n"):
            line, w, brk = "", 0.0, -1  # brk: index in line after which a break may go
            for ch in para:
                cw = self._char(ch) * size * 1.02
                if line and w + cw > width:
                    if ch.isspace():
                        out.append(line.rstrip())
                        line, w, brk = "", 0.0, -1
                        continue
                    cut = brk + 1 if brk >= 0 else len(line)
                    out.append(line[:cut].rstrip())
                    line = line[cut:].lstrip()
                    w, brk = self.width(line, size), -1
                line += ch
                w += cw
                if ch.isspace() or ord(ch) >= 0x2E80 or ch in ";,":  # not "-": times stay whole
                    brk = len(line) - 1
                elif len(line) > 1 and ord(line[-2]) >= 0x2E80:
                    brk = len(line) - 2
            out.append(line.rstrip())
        return out or [""]


@dataclass(frozen=True)
class Col:
    """A table column: headings, share of the width, alignment."""

    zh: str
    en: str
    weight: float
    align: str = "left"


class Flow:
    """Figures (pages) filled in order; :meth:`finish` adds the footers and returns them."""

    def __init__(self, fonts: Any, head: Callable[[Any, int], None]) -> None:
        self.fonts, self.head = fonts, head
        self.m = Measure(fonts)
        self.pages: list[Any] = []
        self.fig: Any = None
        self.y = BOTTOM
        self._fresh = TOP + 1  # the y of a page with nothing on it yet
        self.section = ""

    # -- pages ----------------------------------------------------------------------------------------------

    def new_page(self) -> None:
        from matplotlib.figure import Figure

        self.fig = Figure(figsize=A4_PORTRAIT)
        self.pages.append(self.fig)
        self.head(self.fig, len(self.pages))
        self.y = TOP

    def need(self, h: float) -> bool:
        """Room for ``h`` points; True when a new page had to be started (with the section continued). On
        a page with nothing on it yet, no further page is started: what is taller than a page goes on."""
        if self.fig is not None and (self.y - h >= BOTTOM or self.y >= self._fresh):
            return False
        self.new_page()
        if self.section:
            self.put(LEFT, self.y - 9, f"{self.section} {self.fonts.label('（续）', '(cont.)')}", 8, MUTED)
            self.y -= 16
        self._fresh = self.y
        return True

    def finish(self, footer: Callable[[Any, int, int], None]) -> list[Any]:
        for i, fig in enumerate(self.pages, 1):
            footer(fig, i, len(self.pages))
        return self.pages

    # -- drawing ----------------------------------------------------------------------------------------------

    def put(self, x: float, y: float, s: str, size: float, color: str = INK, **kw: Any) -> None:
        self.fig.text(
            x / PAGE_W,
            y / PAGE_H,
            self.fonts.text(s),
            fontproperties=self.fonts.props(size=size),
            color=color,
            parse_math=False,
            **kw,
        )

    def rect(self, x: float, y: float, w: float, h: float, color: str) -> None:
        from matplotlib.patches import Rectangle

        self.fig.patches.append(
            Rectangle(
                (x / PAGE_W, y / PAGE_H),
                w / PAGE_W,
                h / PAGE_H,
                transform=self.fig.transFigure,
                color=color,
                zorder=0,
            )
        )

    def gap(self, h: float) -> None:
        self.y -= h

    def heading(self, zh: str, en: str, keep: float = 0.0) -> None:
        """A section heading (Chinese, the English small after it) with a rule under it; ``keep``: points
        of what follows that must be on the same page."""
        self.section = ""
        self.need(40 + keep)
        self.section = self.fonts.label(zh, en)
        self.y -= 18
        main = zh if self.fonts.cjk else en
        self.put(LEFT, self.y, main, 11.5, ACCENT)
        if self.fonts.cjk:
            self.put(LEFT + self.m.width(main, 11.5) + 6, self.y, en, 7.5, MUTED)
        self.rect(LEFT, self.y - 4, RIGHT - LEFT, 0.8, ACCENT)
        self.y -= 10

    def subheading(self, text: str) -> None:
        self.need(30)
        self.y -= 14
        self.put(LEFT, self.y, text, 9.5, ACCENT)
        self.y -= 3

    def para(self, text: str, size: float = 8.5, color: str = INK, indent: float = 0.0) -> None:
        pitch = size * 1.45
        for line in self.m.wrap(self.fonts.text(text), RIGHT - LEFT - indent, size):
            self.need(pitch)
            self.y -= pitch
            self.put(LEFT + indent, self.y, line, size, color)

    def facts(self, rows: Sequence[tuple[str, str, str]], label_w: float = 150.0, size: float = 8.5) -> None:
        """(Chinese label, English label, value) rows: the label column, the value wrapped beside it."""
        pitch = size * 1.45
        for zh, en, value in rows:
            lines = self.m.wrap(self.fonts.text(value), RIGHT - LEFT - label_w - 8, size)
            lab = zh if self.fonts.cjk else en
            small = en if self.fonts.cjk and en else ""
            zw = self.m.width(lab, size - 0.5)
            beside = small and zw + 4 + self.m.width(small, 6) <= label_w
            for i in range(max(len(lines), 1 if beside or not small else 2)):
                self.need(pitch)
                self.y -= pitch
                if i == 0:
                    self.put(LEFT + 6, self.y, lab, size - 0.5, MUTED)
                    if beside:
                        self.put(LEFT + 6 + zw + 4, self.y, small, 6, MUTED)
                elif i == 1 and small and not beside:
                    self.put(LEFT + 6, self.y + 1.5, small, 6, MUTED)
                if i < len(lines):
                    self.put(LEFT + label_w, self.y, lines[i], size)
            self.y -= 2

    def table(self, cols: Sequence[Col], rows: Sequence[Sequence[str]], size: float = 6.8) -> None:
        """A table; cells wrap inside their column, a row too tall for the rest of a page goes on on the next
        one, and each page repeats the header."""
        if not rows:
            self.para(self.fonts.label("无记录", "none"), 8, MUTED, indent=6)
            return
        total = sum(c.weight for c in cols)
        span = RIGHT - LEFT
        xs, acc = [], LEFT
        for c in cols:
            xs.append((acc, acc + c.weight / total * span))
            acc += c.weight / total * span
        pitch = size * 1.42
        pad = 3.0

        def header() -> None:
            hh = pitch * (2 if self.fonts.cjk else 1) + 2 * pad
            self.rect(LEFT - 2, self.y - hh, span + 4, hh, HEAD_BG)
            for (x0, x1), c in zip(xs, cols, strict=True):
                x, ha = (x1 - 3, "right") if c.align == "right" else (x0 + 3, "left")
                if self.fonts.cjk:
                    self.put(x, self.y - pad - pitch + 1.5, c.zh, size, "white", ha=ha)
                    self.put(x, self.y - pad - 2 * pitch + 2.5, c.en, size - 1.3, "#c9d6e3", ha=ha)
                else:
                    self.put(x, self.y - pad - pitch + 1.5, c.en, size, "white", ha=ha)
            self.y -= hh

        self.need(pitch * 4 + 2 * pad)
        self.y -= 3
        header()
        for r, row in enumerate(rows):
            cells = [
                self.m.wrap(self.fonts.text(v or ""), x1 - x0 - 6, size)
                for v, (x0, x1) in zip(row, xs, strict=True)
            ]
            n = max(len(c) for c in cells)
            i = 0
            while i < n:
                if self.y - pitch - 2 * pad < BOTTOM:
                    self.need(PAGE_H)  # a new page (none when this one is still empty)
                    header()
                fit = max(1, int((self.y - BOTTOM - 2 * pad) // pitch))
                k = min(n - i, fit)
                h = k * pitch + 2 * pad
                if r % 2:
                    self.rect(LEFT - 2, self.y - h, span + 4, h, ZEBRA)
                for (x0, x1), c, lines in zip(xs, cols, cells, strict=True):
                    x, ha = (x1 - 3, "right") if c.align == "right" else (x0 + 3, "left")
                    for j, line in enumerate(lines[i : i + k]):
                        self.put(x, self.y - pad - (j + 1) * pitch + 1.8, line, size, ha=ha)
                self.y -= h
                i += k
        self.y -= 4

    def axes(self, height: float, *, left: float = 40.0, bottom: float = 34.0, top: float = 22.0) -> Any:
        """Axes filling the width, ``height`` points tall in all (tick labels and title inside it)."""
        self.need(height)
        y0 = self.y - height
        ax = self.fig.add_axes(
            (
                (LEFT + left) / PAGE_W,
                (y0 + bottom) / PAGE_H,
                (RIGHT - LEFT - left - 4) / PAGE_W,
                (height - bottom - top) / PAGE_H,
            )
        )
        self.y = y0
        return ax

    @staticmethod
    def image_size(pixels: Any, max_w: float, max_h: float) -> tuple[float, float]:
        """(width, height) in points of ``pixels`` scaled to fit ``max_w`` x ``max_h``, keeping its aspect;
        a small image is not blown up past 96 pixels an inch (0.75 pt a pixel)."""
        h_px, w_px = pixels.shape[:2]
        scale = min(max_w / w_px, max_h / h_px, 0.75)
        return w_px * scale, h_px * scale

    def image(self, pixels: Any, max_w: float, max_h: float) -> None:
        """An image (an array H x W [x C]) scaled to fit ``max_w`` x ``max_h`` points, keeping its aspect."""
        w, h = self.image_size(pixels, max_w, max_h)
        self.need(h + 6)
        self.y -= h + 4
        ax = self.fig.add_axes((LEFT / PAGE_W, self.y / PAGE_H, w / PAGE_W, h / PAGE_H))
        ax.imshow(pixels, interpolation="none", aspect="auto")
        ax.set_xticks([])
        ax.set_yticks([])
        for side in ax.spines.values():
            side.set_color("#c9d6e3")
            side.set_linewidth(0.6)
        self.y -= 4
