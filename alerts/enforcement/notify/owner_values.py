"""The values of the owner's page in notices: the link an owner notice carries, and a receipt's
submission (issue 15, docs/owner.md)."""

from __future__ import annotations

from typing import Any

from ingest.timeutil import format_local


def owner_link_values(
    link: tuple[str, int] | None, texts: dict[str, Any], tz: str, date_fmt: str
) -> dict[str, str]:
    """``owner_link`` (the URL, "" without one) and ``owner_link_line`` (the sentence carrying it; ""
    without a link, so a template's line stays empty rather than claiming a page that was not issued)."""
    if not link:
        return {"owner_link": "", "owner_link_line": ""}
    url, expires_ms = link
    return {
        "owner_link": url,
        # with its own paragraph break: templates put it right before the signature line
        "owner_link_line": texts["owner_link_line"].format(
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
