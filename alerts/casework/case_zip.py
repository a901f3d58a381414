"""The case file (执法案卷): one zip with everything an inspector files or hands on, verifiable unaltered.

::

    case.pdf             A4, Chinese first: summary, evidence chart and windows, notices and receipts,
                         on-site record, audit trail, photos (:mod:`alerts.casework.case_pdf`)
    readings.csv         the raw readings of the deciding windows (UTF-8 with BOM, for Excel); without a
                         readings store the windows' summaries, under a comment line saying so
    case.json            the case view (:meth:`alerts.casework.Casework.view`); every epoch-ms time
                         ``x_ms`` also as ``x_local`` in the display zone with its offset
    attachments/<attachment_id>-<filename>   each attachment's bytes as uploaded
    manifest.sha256      ``sha256sum -c`` lines for every file above
    manifest.json        the same hashes and sizes, the case id and version, when and by what it was made

Everything is deterministic but ``manifest.json``'s ``generated``: the entries are sorted, every entry
carries the case's last-update time as its zip time, the PDF has no creation date. Two exports of an
unchanged case differ in that one field; ``manifest.sha256`` does not list ``manifest.json``, so it is
the same too. An attachment's hash is computed from the bytes written and checked against the SHA-256
stored at upload (``matches_upload`` in the manifest).
"""

from __future__ import annotations

import copy
import csv
import hashlib
import io
import json
import re
import zipfile
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from alerts.casework.case_pdf import render_case_pdf
from alerts.ledger.masking import scrub
from alerts.reports.cases import case_view
from ingest.timeutil import format_display, ms_to_utc, now_ms, zone

FORMAT, FORMAT_VERSION = "fumewatch-case-file", 1
#: Columns of readings.csv with a store (``time`` local with offset, ``time_ms`` UTC epoch ms).
READING_COLUMNS = (
    "time",
    "time_ms",
    "device_id",
    "restaurant_id",
    "oil_fume_mg_m3",
    "oil_fume_ref_mg_m3",
    "ref_converted",
    "flow_m3_h",
    "fan_on",
    "purifier_on",
    "pm_mg_m3",
    "nmhc_mg_m3",
    "source",
    "window_start",
)
#: Columns of readings.csv without a store: the deciding windows' summaries.
WINDOW_COLUMNS = (
    "event_id",
    "device_id",
    "window_start",
    "window_start_ms",
    "window_end",
    "window_end_ms",
    "mean_mg_m3",
    "max_mg_m3",
    "samples",
    "expected",
    "valid",
    "invalid_reason",
    "exceeds",
    "unconverted",
)
NO_STORE_LINE = (
    "# 未提供读数存储，原始读数不可用；以下为案件记录中判定窗口的汇总 / "
    "No readings store was given: raw readings are not available; these are the deciding windows' summaries "
    "from the case record"
)
_EPOCH_MS_MIN = 10**11  # an ``_ms`` value below this (1973) is a duration, not a time


def build_case_zip(
    view: dict, ledger: Any, *, store: Any, tz: str, names: dict[str, str], font_file: str = ""
) -> tuple[str, bytes]:
    """(file name, zip bytes) of the case file of ``view`` (``Casework(ledger, tz).view(case_id)``).

    ``store``: the readings store (None: no raw readings; the chart and CSV use the case record's
    windows); ``names``: restaurant id -> name; ``font_file``: as ``[report] font_file``.
    """
    from alerts.reports.charts import find_cjk_font

    case = view["case"]
    cid = case["case_id"]
    name = names.get(case.get("restaurant_id", ""), "")
    cv = case_view(case, names)
    windows = [
        (e["event_id"], w) for e in cv["events"] for w in e["windows"] if w.get("start_ms") is not None
    ]
    readings, note, csv_bytes = _readings(store, windows, tz)

    files: dict[str, bytes] = {}
    attachments, unreadable = [], []
    for a in view.get("attachments") or []:
        got = ledger.case_attachment_data(cid, a["attachment_id"])
        if got is None:  # listed but its bytes are gone: say so (the PDF too), never skip silently
            unreadable.append(a["attachment_id"])
            continue
        meta, data = got
        path = f"attachments/{meta['attachment_id']}-{meta['filename']}"
        files[meta["attachment_id"]] = data
        digest = hashlib.sha256(data).hexdigest()
        attachments.append(
            {
                "attachment_id": meta["attachment_id"],
                "path": path,
                "sha256": digest,
                "uploaded_sha256": meta["sha256"],
                "matches_upload": digest == meta["sha256"],
            }
        )

    pdf = render_case_pdf(
        view,
        tz=tz,
        name=name,
        readings=readings,
        readings_note=note,
        files=files,
        fonts=find_cjk_font(font_file),
    )
    entries: dict[str, bytes] = {
        "case.pdf": pdf,
        "readings.csv": csv_bytes,
        "case.json": _case_json(view, name, tz),
    }
    for a in attachments:
        entries[a["path"]] = files[a["attachment_id"]]
    digests = {p: hashlib.sha256(b).hexdigest() for p, b in entries.items()}
    entries["manifest.sha256"] = "".join(f"{digests[p]}  {p}\n" for p in sorted(digests)).encode("utf-8")
    generated = now_ms()
    manifest = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "case_id": cid,
        "case_version": case.get("version"),
        "case_updated": format_display(case["updated_ms"], tz) if case.get("updated_ms") else None,
        "restaurant_id": case.get("restaurant_id", ""),
        "restaurant_name": name,
        "display_tz": tz,
        "generated": format_display(generated, tz),
        "generator": f"fumewatch {_version()}",
        "files": [{"path": p, "sha256": digests[p], "size_bytes": len(entries[p])} for p in sorted(digests)],
        "attachments": attachments,
        **({"attachments_unreadable": unreadable} if unreadable else {}),
        "readings": {
            "source": "store" if readings is not None else ("none" if store is None else "store_failed"),
            "count": sum(len(v) for v in readings.values()) if readings is not None else 0,
        },
        "verify": "unzip, then run: sha256sum -c manifest.sha256",
    }
    entries["manifest.json"] = _dumps(manifest)
    stamp = _zip_time(case.get("updated_ms") or case.get("created_ms") or case.get("start_ms") or 0, tz)
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_DEFLATED) as zf:
        for p in sorted(entries):
            info = zipfile.ZipInfo(p, date_time=stamp)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3  # Unix: the permissions below mean what they say
            info.external_attr = 0o644 << 16
            zf.writestr(info, entries[p], compresslevel=6)
    day = format_display(generated, tz)[:10]
    return f"案卷-{safe_id(cid)}-{day}.zip", buf.getvalue()


def safe_id(case_id: str) -> str:
    """``case_id`` as a file-name part: letters, digits, ``._-`` and CJK kept, anything else ``_``."""
    return re.sub(r"[^0-9A-Za-z._\-\u4e00-\u9fff]+", "_", case_id).strip("._") or "case"


def _version() -> str:
    try:
        from importlib.metadata import version

        return version("fumewatch")
    except Exception:  # noqa: BLE001 - not installed (a source checkout): the package's own version
        from ingest import __version__

        return __version__


def _zip_time(ms: int, tz: str) -> tuple[int, int, int, int, int, int]:
    dt = ms_to_utc(int(ms)).astimezone(zone(tz))
    if dt.year < 1980:  # the zip format starts in 1980
        dt = datetime(1980, 1, 1)
    return (dt.year, dt.month, dt.day, dt.hour, dt.minute, dt.second)


def _dumps(doc: Any) -> bytes:
    return (json.dumps(doc, ensure_ascii=False, indent=2, sort_keys=True, default=str) + "\n").encode("utf-8")


def _with_local(obj: Any, tz: str) -> Any:
    """``obj`` with every epoch-ms time ``x_ms`` also given as ``x_local`` (local ISO 8601 with offset)."""
    if isinstance(obj, dict):
        out = {k: _with_local(v, tz) for k, v in obj.items()}
        for k, v in obj.items():
            if (
                isinstance(k, str)
                and k.endswith("_ms")
                and isinstance(v, int)
                and not isinstance(v, bool)
                and v >= _EPOCH_MS_MIN
                and f"{k[:-3]}_local" not in obj
            ):
                out[f"{k[:-3]}_local"] = format_display(v, tz)
        return out
    if isinstance(obj, list | tuple):
        return [_with_local(v, tz) for v in obj]
    return obj


def _case_json(view: Mapping[str, Any], name: str, tz: str) -> bytes:
    doc = copy.deepcopy(dict(view))
    doc["summary"] = {**(doc.get("summary") or {}), "name": name}
    doc["display_tz"] = tz
    return _dumps(_with_local(doc, tz))


def _cell(v: Any) -> Any:
    if v is None:
        return ""
    if isinstance(v, bool):
        return "true" if v else "false"
    return v


def _csv(rows: Sequence[Sequence[Any]], header: Sequence[str], comment: str = "") -> bytes:
    buf = io.StringIO()
    if comment:
        buf.write(comment + "\r\n")
    w = csv.writer(buf, lineterminator="\r\n")
    w.writerow(header)
    for r in rows:
        w.writerow([_cell(v) for v in r])
    return ("\ufeff" + buf.getvalue()).encode("utf-8")


def _readings(
    store: Any, windows: list[tuple[str, Mapping[str, Any]]], tz: str
) -> tuple[dict[str, list[dict]] | None, tuple[str, str], bytes]:
    """(readings per device or None, the note the PDF prints (Chinese, English), readings.csv)."""
    spans: dict[str, list[int]] = {}
    for _, w in windows:
        lo, hi = w["start_ms"], w.get("end_ms") or w["start_ms"]
        span = spans.setdefault(w.get("device_id") or "", [lo, hi])
        span[0], span[1] = min(span[0], lo), max(span[1], hi)
    problem = ""
    if store is not None:
        try:
            got = {
                dev: [
                    r for r in store.query(device_id=dev, since_ms=lo, until_ms=hi) if not r.get("interval_s")
                ]
                for dev, (lo, hi) in sorted(spans.items())
                if dev
            }
        except Exception as exc:  # noqa: BLE001 - a store outage must not lose the case file
            problem = scrub(f"{type(exc).__name__}: {exc}", 200)
        else:
            return got, _store_note(got, spans, tz), _readings_csv(got, windows, tz)
    rows = [
        [
            eid,
            w.get("device_id", ""),
            format_display(w["start_ms"], tz),
            w["start_ms"],
            format_display(w["end_ms"], tz) if w.get("end_ms") else "",
            w.get("end_ms"),
            w.get("mean_mg_m3"),
            w.get("max_mg_m3"),
            w.get("samples"),
            w.get("expected"),
            w.get("valid"),
            w.get("invalid_reason") or "",
            w.get("exceeds"),
            w.get("unconverted") or 0,
        ]
        for eid, w in windows
    ]
    if problem:
        comment = (
            f"# 读数存储查询失败，原始读数不可用；以下为判定窗口的汇总 / The readings store failed ({problem}): "
            "raw readings are not available; these are the deciding windows' summaries from the case record"
        )
        note = (
            f"读数存储查询失败（{problem}）：图中为案件记录中的窗口均值与最大值，原始读数不可用。",
            f"The readings store failed ({problem}): the chart shows the window means and maxima of the case record.",
        )
    else:
        comment = NO_STORE_LINE
        note = (
            "未提供读数存储：图中为案件记录中的窗口均值与最大值，原始读数不可用。",
            "No readings store was given: the chart shows the window means and maxima of the case record; "
            "raw readings are not available.",
        )
    return None, note, _csv(rows, WINDOW_COLUMNS, comment.replace("\n", " "))


def _store_note(got: Mapping[str, list], spans: Mapping[str, list[int]], tz: str) -> tuple[str, str]:
    n = sum(len(v) for v in got.values())
    parts = [
        f"{dev} {format_display(lo, tz)} – {format_display(hi, tz)}"
        for dev, (lo, hi) in sorted(spans.items())
    ]
    where = "; ".join(parts) or "–"
    return (
        f"原始读数：读数存储中判定窗口时段内共 {n} 条（{where}），逐条见 readings.csv。",
        f"Raw readings: {n} in the readings store over the deciding windows ({where}); each is in readings.csv.",
    )


def _readings_csv(
    got: Mapping[str, list[dict]], windows: list[tuple[str, Mapping[str, Any]]], tz: str
) -> bytes:
    by_dev: dict[str, list[Mapping[str, Any]]] = {}
    for _, w in windows:
        by_dev.setdefault(w.get("device_id") or "", []).append(w)
    rows = []
    for r in sorted((r for rs in got.values() for r in rs), key=lambda r: (r["time_ms"], r["device_id"])):
        t = r["time_ms"]
        win = next(
            (
                w
                for w in by_dev.get(r["device_id"], [])
                if w["start_ms"] <= t < (w.get("end_ms") or w["start_ms"])
            ),
            None,
        )
        rows.append(
            [
                format_display(t, tz),
                t,
                *(r.get(k) for k in READING_COLUMNS[2:-1]),
                format_display(win["start_ms"], tz) if win else "",
            ]
        )
    return _csv(rows, READING_COLUMNS)
