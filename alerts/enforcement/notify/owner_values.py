"""The values of the owner's page in notices: the link an owner notice carries, and a receipt's
submission (issue 15, docs/owner.md)."""

from __future__ import annotations

from typing import Any

from ingest.timeutil import format_local


def owner_link_values(
    link: tuple[str, int] | None, texts: dict[str, Any], tz: str, date_fmt: str, *, forms: bool = True
) -> dict[str, str]:
    """``owner_link`` (the URL, "" without one) and ``owner_link_line`` (the sentence carrying it; ""
    without a link, so a template's line stays empty rather than claiming a page that was not issued).
    ``forms``: the page offers the evidence and statement forms (a ladder step); without them the line
    only offers the data (offline, restored, a maintenance reminder)."""
    if not link:
        return {"owner_link": "", "owner_link_line": ""}
    url, expires_ms = link
    return {
        "owner_link": url,
        # with its own paragraph break: templates put it right before the signature line
        "owner_link_line": texts["owner_link_line" if forms else "owner_link_line_view"].format(
            url=url, expires=format_local(expires_ms, tz, date_fmt)
        )
        + "\n\n",
    }


def submission_values(sub: dict[str, Any] | None, texts: dict[str, Any], tz: str) -> dict[str, str]:
    """The receipt's values: what the owner sent, its id, when it arrived, how many files."""
    none = texts["none"]
    if not sub:
        return {
            k: none for k in ("submission_kind", "submission_id", "submission_received", "submission_files")
        }
    return {
        "submission_kind": texts["submission_kind"].get(sub["kind"], sub["kind"]),
        "submission_id": sub["submission_id"],
        "submission_received": format_local(sub["received_ms"], tz),
        "submission_files": texts["submission_files"].format(n=len(sub.get("attachments") or [])),
    }


def reminder_values(event: Any, texts: dict[str, Any], tz: str, date_fmt: str) -> dict[str, str]:
    """A maintenance reminder's values (alerts/maintenance): the services it looked at, the basis in
    words, the threshold and share; "—" for other events."""
    none = texts["none"]
    j = event.judgement if event.kind == "maintenance_reminder" else {}
    if not j:
        return {
            k: none for k in ("reminder_services", "reminder_basis", "reminder_threshold", "reminder_share")
        }
    services = j.get("service_values") or []
    lines = [
        texts["reminder_service"].format(
            start=format_local(s["start_ms"], tz, "%m-%d %H:%M"),
            end=format_local(s["end_ms"], tz, "%H:%M"),
            value=f"{s['value_mg_m3']:.2f}",
        )
        for s in services
    ]
    share = f"{j['share_of_limit'] * 100:.0f} %"
    if j.get("basis") == "trend":
        basis = texts["reminder_trend"].format(
            n=len(services),
            slope=f"{j.get('slope_mg_m3_per_day') or 0:.2f}",
            cross=format_local(j["projected_cross_ms"], tz, date_fmt),
        )
    else:
        basis = texts["reminder_level"].format(
            n=j["services"],
            mean=f"{j['mean_mg_m3']:.2f}",
            share=share,
            threshold=f"{j['threshold_mg_m3']:.2f}",
        )
    return {
        "reminder_services": "\n".join(lines) or none,
        "reminder_basis": basis,
        "reminder_threshold": f"{j['threshold_mg_m3']:.2f}",
        "reminder_share": share,
    }
