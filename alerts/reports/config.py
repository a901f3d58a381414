"""The ``[report]`` settings section (environment: ``FUMEWATCH_REPORT_<KEY>``)."""

from __future__ import annotations

from pydantic import BaseModel, Field


class ReportSettings(BaseModel):
    # html/pdf: chart the this-many exceedance events with the highest peak (0 = no charts).
    max_charts: int = Field(20, ge=0, le=500)
    # Minutes of readings shown before the start and after the end of a charted event.
    chart_margin_min: float = Field(60.0, ge=0, le=24 * 60)
    # A font file with Chinese glyphs for charts and PDF; "" = the first one `fc-list :lang=zh` finds
    # (the set-up installs Debian's fonts-wqy-microhei); "none" = use none. Without one, charts and PDF use
    # English labels and Chinese data text shows as "?" (csv, xlsx and html text is unaffected), and a
    # warning naming the package is logged (stderr for `fumewatch report`).
    font_file: str = ""
    # pdf: at most this many event rows (exceedance first, then purifier off, offline, late data); the full
    # list is always in csv/xlsx/html. PDF text costs about 0.1 ms per character to typeset.
    pdf_max_event_rows: int = Field(1000, ge=0)
