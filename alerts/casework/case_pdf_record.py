"""case.pdf sections from the casework record: the on-site record (inspection, rectification order,
recheck, the owner's evidence sent through their page and its review, statements, closure, from
``view["lifecycle"]``), the full audit trail, and the photos (JPEG and
PNG embedded, scaled; PDF and WebP documents listed with their hash). A section the ledger holds nothing
for says so."""

from __future__ import annotations

import io
from collections.abc import Mapping
from typing import Any

from alerts.casework.case_pdf_flow import LEFT, MUTED, RIGHT, Col, Flow
from alerts.casework.case_pdf_text import field_value, fields_text, label, local, yes_no, yuan
from alerts.casework.lifecycle import end_of_day_ms

#: Attachments drawn into the PDF; others (PDF documents, WebP) are listed only.
EMBEDDED_TYPES = ("image/jpeg", "image/png")
#: Longest side of an embedded photo, pixels (the original is in ``attachments/``).
MAX_PIXELS = 1600
#: Tallest an embedded photo is drawn, points (A4 is 842 pt tall).
PHOTO_H = 300.0


def _names(view: Mapping[str, Any]) -> dict[str, str]:
    return {a["attachment_id"]: a["filename"] for a in view.get("attachments") or []}


def _none(flow: Flow, zh: str, en: str) -> None:
    flow.para(flow.fonts.label(zh, en), 8, MUTED, indent=6)


def onsite_section(flow: Flow, view: Mapping[str, Any], tz: str) -> None:
    fonts, cjk = flow.fonts, flow.fonts.cjk
    lc = view.get("lifecycle") or {}
    trail = view.get("trail") or []
    names = _names(view)

    def fv(key: str, entry: Mapping[str, Any]) -> str:
        return field_value(key, entry.get(key), tz, cjk, names)

    def by(entry: Mapping[str, Any]) -> list[tuple[str, str, str]]:
        rows = [
            ("记录人", "Recorded by", entry.get("by") or "–"),
            ("记录时间", "Recorded at", entry.get("at") or "–"),
        ]
        return rows + ([("备注", "Note", entry["note"])] if entry.get("note") else [])

    flow.heading("四、现场执法记录", "On-site record")

    flow.subheading(fonts.label("现场检查", "Inspection"))
    insp = lc.get("inspection")
    if insp is None:
        _none(flow, "无现场检查记录", "No on-site inspection is recorded")
    else:
        n = sum(1 for a in trail if a["action"] == "inspect")
        if n > 1:
            flow.para(
                fonts.label(
                    f"共 {n} 次现场检查记录，此处为最近一次；此前各次见审计记录",
                    f"{n} inspections recorded; the latest is shown, the earlier ones are in the audit trail",
                ),
                7.5,
                MUTED,
                indent=6,
            )
        flow.facts(
            [
                ("检查时间", "Inspected at", fv("inspected_at_ms", insp)),
                ("检查情况", "Findings", insp.get("findings") or "–"),
                ("油烟净化器", "Purifier", fv("purifier", insp)),
                ("排烟风机", "Fan", fv("fan", insp)),
                ("现场照片", "Photos", fv("attachments", insp)),
                *by(insp),
            ]
        )

    flow.subheading(fonts.label("责令整改", "Rectification order"))
    order = lc.get("rectification")
    if order is None:
        _none(flow, "未责令整改", "No rectification was ordered")
    else:
        day = order.get("deadline")
        end = f"{day}（{fonts.label('截止', 'until')} {local(end_of_day_ms(day, tz), tz)}）" if day else "–"
        flow.facts(
            [
                ("整改期限", "Deadline", end),
                ("整改要求", "Requirements", order.get("requirements") or "–"),
                *by(order),
            ]
        )

    flow.subheading(fonts.label("复查", "Recheck"))
    rc = lc.get("recheck")
    if rc is None:
        _none(flow, "无复查记录", "No recheck is recorded")
    else:
        flow.facts(
            [
                ("复查时间", "Rechecked at", fv("rechecked_at_ms", rc)),
                ("是否整改到位", "Rectified", yes_no(rc.get("rectified"), cjk)),
                ("复查情况", "Findings", rc.get("findings") or "–"),
                ("复查照片", "Photos", fv("attachments", rc)),
                *by(rc),
            ]
        )

    flow.subheading(fonts.label("当事人网上提交的整改材料", "Rectification evidence sent by the owner"))
    evidence = lc.get("owner_evidence") or []
    if not evidence:
        _none(flow, "当事人未通过专属页面提交整改材料", "The owner sent no evidence through their page")
    for ev in evidence:
        sent = ev.get("sent") or {}
        hashes = "; ".join(
            f"{names.get(aid, aid)}: SHA-256 {str(meta.get('sha256', ''))[:16]}…, {meta.get('bytes', '?')} B"
            for aid, meta in sent.items()
        )
        flow.facts(
            [
                ("提交编号", "Submission", ev.get("submission_id") or "–"),
                ("提交时间", "Sent at", fv("submitted_at_ms", ev) if ev.get("submitted_at_ms") else "–"),
                ("说明", "Note", ev.get("note") or "–"),
                ("附件", "Attachments", fv("attachments", ev)),
                ("原始文件", "Files as sent", hashes or "–"),
                (
                    "来源",
                    "Source",
                    fonts.label("负责人专属页面", "the owner's page") + f" (link {ev.get('link_id') or '–'})",
                ),
            ]
        )
        flow.gap(4)
    for rv in lc.get("reviews") or []:
        flow.facts(
            [
                ("材料审核", "Review of", rv.get("submission_id") or "–"),
                ("是否整改到位", "Rectified", yes_no(rv.get("rectified"), cjk)),
                ("审核意见", "Findings", rv.get("findings") or "–"),
                *by(rv),
            ]
        )
        flow.gap(4)

    flow.subheading(fonts.label("当事人陈述、申辩", "The owner's statements"))
    statements = lc.get("statements") or []
    if not statements:
        _none(flow, "无当事人陈述、申辩记录", "No statement of the owner is recorded")
    for s in statements:
        flow.facts(
            [
                ("形式", "Form", fv("form", s)),
                (
                    "陈述时间",
                    "Given at",
                    fv("given_at_ms", s) if s.get("given_at_ms") else fonts.label("未记录", "not recorded"),
                ),
                ("内容", "Statement", s.get("statement") or "–"),
                ("附件", "Attachments", fv("attachments", s)),
                *by(s),
            ]
        )
        flow.gap(4)

    flow.subheading(fonts.label("结案", "Closure"))
    c = lc.get("closure")
    if c is None:
        _none(flow, "尚未结案", "The case is not closed")
        return
    rows = [("结案结果", "Outcome", label("outcome", c.get("outcome"), cjk))]
    if c.get("outcome") == "penalized":
        rows += [
            ("行政处罚决定书文号", "Decision number", c.get("decision_number") or "–"),
            ("罚款金额", "Amount", yuan(c.get("amount_yuan"))),
        ]
    elif c.get("outcome") == "not_punished":
        rows.append(("适用免罚清单事项", "Exemption item", c.get("exemption_item") or "–"))
    elif c.get("outcome") == "dismissed":
        rows.append(("撤销原因", "Dismiss reason", label("dismiss", c.get("dismiss_reason"), cjk)))
    flow.facts(
        [
            *rows,
            ("结案说明", "Note", c.get("note") or "–"),
            ("结案人", "Closed by", c.get("by") or "–"),
            ("结案时间", "Closed at", c.get("at") or "–"),
        ]
    )


def trail_section(flow: Flow, view: Mapping[str, Any], tz: str) -> None:
    fonts, cjk = flow.fonts, flow.fonts.cjk
    names = _names(view)
    flow.heading("五、审计记录", "Audit trail")
    flow.para(
        fonts.label(
            "案件的全部操作记录（只增不改），按序号排列",
            "Every action on the case (append-only), in order",
        ),
        7.5,
        MUTED,
    )
    rows = []
    for a in view.get("trail") or []:
        frm = label("status", a.get("from_status"), cjk) if a.get("from_status") else "–"
        detail = "\n".join(
            x for x in (a.get("note") or "", fields_text(a.get("fields") or {}, tz, cjk, names)) if x
        )
        rows.append(
            [
                str(a.get("seq", "")),
                a.get("at") or local(a.get("at_ms"), tz),
                a.get("actor") or "–",
                label("action", a.get("action"), cjk),
                f"{frm} → {label('status', a.get('to_status'), cjk)}",
                detail or "–",
            ]
        )
    flow.table(
        [
            Col("序号", "Seq", 20, "right"),
            Col("时间", "Time", 114),
            Col("操作人", "Actor", 44),
            Col("操作", "Action", 54),
            Col("状态变化", "From → to", 88),
            Col("说明与内容", "Note and fields", 180),
        ],
        rows,
    )


def _pixels(data: bytes) -> Any:
    """The photo as an RGB array, turned upright (EXIF) and at most :data:`MAX_PIXELS` on its long side."""
    import numpy as np
    from PIL import Image, ImageOps

    with Image.open(io.BytesIO(data)) as img:
        img.draft("RGB", (MAX_PIXELS, MAX_PIXELS))
        im = ImageOps.exif_transpose(img)
        if im.mode in ("RGBA", "LA", "P"):
            im = im.convert("RGBA")
            bg = Image.new("RGB", im.size, "white")
            bg.paste(im, mask=im.split()[-1])
            im = bg
        im = im.convert("RGB")
        im.thumbnail((MAX_PIXELS, MAX_PIXELS))
        return np.asarray(im)


def _decoded(a: Mapping[str, Any], files: Mapping[str, bytes]) -> tuple[Any, str]:
    """(pixels or None, why a photo cannot be shown or "")."""
    data = files.get(a["attachment_id"])
    if data is None:
        return None, "unreadable"
    if a.get("content_type") not in EMBEDDED_TYPES:
        return None, ""
    try:
        return _pixels(data), ""
    except Exception as exc:  # noqa: BLE001 - a damaged photo must not lose the case file
        return None, type(exc).__name__


def photos_section(flow: Flow, view: Mapping[str, Any], files: Mapping[str, bytes], tz: str) -> None:
    fonts = flow.fonts
    atts = view.get("attachments") or []
    decoded = [_decoded(a, files) for a in atts]
    # an attachment's facts and its photo go on one page when they fit on one
    height = [
        130 + (flow.image_size(p, RIGHT - LEFT, PHOTO_H)[1] + 20 if p is not None else 0) for p, _ in decoded
    ]
    flow.heading("六、照片与附件", "Photos and attachments", keep=height[0] if height else 0)
    if not atts:
        _none(flow, "本案无照片或附件", "No photos or documents are attached to this case")
        return
    used: dict[str, list[str]] = {}
    for a in view.get("trail") or []:
        for att in (a.get("fields") or {}).get("attachments") or []:
            used.setdefault(att, []).append(f"#{a['seq']} {label('action', a['action'], fonts.cjk)}")
    for i, (a, (pixels, problem), h) in enumerate(zip(atts, decoded, height, strict=True), 1):
        aid = a["attachment_id"]
        flow.need(h)
        flow.subheading(fonts.label(f"附件 {i}", f"Attachment {i}") + f" · {a.get('filename', '')}")
        flow.facts(
            [
                ("附件编号", "Attachment ID", aid),
                ("文件", "File in this package", f"attachments/{aid}-{a.get('filename', '')}"),
                (
                    "类型 / 大小",
                    "Type / size",
                    f"{a.get('content_type', '')} · {a.get('size_bytes', 0):,} bytes",
                ),
                ("SHA-256（上传时）", "SHA-256 at upload", a.get("sha256") or "–"),
                (
                    "上传人 / 时间",
                    "Uploaded by / at",
                    f"{a.get('uploaded_by') or '–'} · {a.get('at') or local(a.get('at_ms'), tz)}",
                ),
                *([("说明", "Note", a["note"])] if a.get("note") else []),
                (
                    "引用记录",
                    "Referenced by",
                    "; ".join(used.get(aid, []))
                    or fonts.label("未被检查等记录引用", "no record refers to it"),
                ),
            ],
            label_w=130,
            size=7.5,
        )
        if problem == "unreadable":
            text = fonts.label(
                "附件内容无法从台账读取，未收入本案卷",
                "its bytes could not be read from the ledger: not in this file",
            )
            flow.para(text, 7.5, "#8a5a00", indent=6)
        elif problem:
            text = fonts.label("照片无法显示", "the photo cannot be displayed") + f" ({problem})"
            flow.para(text, 7.5, "#8a5a00", indent=6)
        elif pixels is None:
            what = fonts.label(
                "文档未嵌入本 PDF，原件见上列文件", "not embedded in this PDF: the original is the file above"
            )
            flow.para(what, 7.5, MUTED, indent=6)
        else:
            flow.image(pixels, RIGHT - LEFT, PHOTO_H)
            flow.para(
                fonts.label("缩放显示；原件见上列文件", "scaled for display; the original is the file above"),
                6.5,
                MUTED,
            )
