"""``fumewatch owner-link``: the owners' page links (docs/owner.md): list a restaurant's links, issue a new
one by hand (an owner lost theirs), revoke one or all of a restaurant's (the owner changed, a link was
forwarded). Revoking is effective at once for every process sharing the state database."""

from __future__ import annotations

import argparse

from fumewatch.cli.common import CLIError, add_common, existing_state, settings_from, write_rows
from ingest.timeutil import format_display, now_ms

COLUMNS = ("link_id", "restaurant_id", "notice_key", "issued_by", "issued", "expires", "revoked", "last_used")


def cmd_owner_link(args: argparse.Namespace) -> int:
    from alerts.ledger import Ledger
    from alerts.owner.links import OwnerLinkError, OwnerLinks

    s = settings_from(args)
    tz = s.display_tz
    with Ledger(existing_state(s)) as ledger:
        if args.action == "list":
            rows = [
                {
                    **r,
                    "issued": format_display(r["issued_ms"], tz),
                    "expires": format_display(r["expires_ms"], tz),
                    "revoked": format_display(r["revoked_ms"], tz) if r["revoked_ms"] else "",
                    "last_used": format_display(r["last_used_ms"], tz) if r["last_used_ms"] else "",
                }
                for r in ledger.list_owner_links(args.restaurant)
            ]
            write_rows(rows, COLUMNS, args.format if args.format != "table" else "csv")
            return 0
        if args.action == "revoke":
            if bool(args.link) == bool(args.restaurant):
                raise CLIError("revoke needs --link LINK_ID or --restaurant RESTAURANT_ID (all its links)")
            n = ledger.revoke_owner_links(
                at_ms=now_ms(),
                by=args.by,
                reason=args.reason,
                link_id=args.link,
                restaurant_id=args.restaurant,
            )
            print(f"revoked {n} link(s)")
            return 0 if n else 1
        # issue
        if not args.restaurant:
            raise CLIError("issue needs --restaurant RESTAURANT_ID")
        try:
            links = OwnerLinks.from_settings(ledger, s.owner)
        except OwnerLinkError as exc:
            raise CLIError(str(exc)) from None
        if links is None:
            raise CLIError("[owner] public_url is not set: no page to link to")
        url, row = links.issue(args.restaurant, by=args.by, days=args.days)
        print(url)
        print(f"link {row['link_id']} valid until {format_display(row['expires_ms'], tz)}")
        return 0


def register(sub: argparse._SubParsersAction) -> None:
    sp = sub.add_parser("owner-link", help="list, issue or revoke the owners' page links")
    add_common(sp, state=True)
    sp.add_argument("action", choices=("list", "issue", "revoke"))
    sp.add_argument("--restaurant", help="restaurant id (list: only its links; revoke: all its links)")
    sp.add_argument("--link", help="revoke: this link id")
    sp.add_argument("--by", default="operator", help="who issues or revokes (recorded)")
    sp.add_argument("--reason", default="", help="revoke: why (recorded)")
    sp.add_argument("--days", type=float, help="issue: valid this many days (default [owner] link_days)")
    sp.add_argument("--format", choices=("table", "csv", "json"), default="table")
    sp.set_defaults(func=cmd_owner_link)
