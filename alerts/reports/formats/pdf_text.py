"""What the PDF pages share: the page size, clipping cell text to a column and the core-font text class."""

from __future__ import annotations

from alerts.reports.formats.common import _width

_A4_LANDSCAPE = (11.69, 8.27)


def _clip(text: str, width: int) -> str:
    if _width(text) <= width:
        return text
    out, w = [], 0
    for ch in text:
        cw = 2 if ord(ch) >= 0x2E80 else 1
        if w + cw > width - 1:
            break
        out.append(ch)
        w += cw
    return "".join(out) + "…"


def _core_text_class():
    """A matplotlib ``Text`` typeset with the PDF core font Helvetica (AFM metrics, not embedded).

    matplotlib's PDF backend lays TrueType text out glyph by glyph in Python (about 0.1 ms per
    character); a core font is written as one string, about 5x faster per table cell. Table cells that are
    pure ASCII (ids, numbers, times) use it, Chinese cells keep the CJK TrueType font. The backend reads
    ``pdf.use14corefonts`` when it draws and measures each text, so it is switched on just for these
    texts; :data:`_PDF_LOCK` keeps two PDF renders in one process from seeing each other's switch.
    """
    import matplotlib as mpl
    from matplotlib.text import Text

    class CoreText(Text):
        def draw(self, renderer) -> None:
            old = mpl.rcParams["pdf.use14corefonts"]
            mpl.rcParams["pdf.use14corefonts"] = True
            try:
                super().draw(renderer)
            finally:
                mpl.rcParams["pdf.use14corefonts"] = old

    return CoreText
