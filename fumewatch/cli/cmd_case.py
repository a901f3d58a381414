"""``fumewatch case``: one case for an inspector at the terminal — show it, act on it, attach a file,
export its case file. The same rules as the API and the console (:class:`alerts.casework.Casework`)."""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import orjson

from fumewatch.cli.common import CLIError, add_common, add_utc, existing_state, output_tz, settings_from


def _casework(args: argparse.Namespace):
    from alerts.casework import Casework
    from alerts.ledger import Ledger

    s: Any = settings_from(args)
    tz = output_tz(args, s)
    ledger = Ledger(existing_state(s))
    return s, ledger, Casework(ledger, tz, s.api.max_attachment_bytes)


def _actor(args: argparse.Namespace, s: Any) -> str:
    """The inspector named by ``--by``; one of FUMEWATCH_INSPECTOR_TOKENS' names when any are configured."""
    from alerts.api.settings import parse_inspectors

    name = (args.by or "").strip()
    if not name:
        raise CLIError("--by NAME is required: the inspector recorded in the case's audit trail")
    try:
        known = set(parse_inspectors(s.inspector.tokens).values())
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    if known and name not in known:
        raise CLIError(
            f"--by {name!r} is not an inspector of FUMEWATCH_INSPECTOR_TOKENS ({', '.join(sorted(known))})"
        )
    return name


def _fields(args: argparse.Namespace) -> dict[str, Any]:
    fields: dict[str, Any] = {}
    if args.json:
        try:
            loaded = orjson.loads(args.json)
        except orjson.JSONDecodeError as exc:
            raise CLIError(f"--json is not JSON: {exc}") from None
        if not isinstance(loaded, dict):
            raise CLIError("--json must be a JSON object of the action's fields")
        fields.update(loaded)
    for item in args.set or []:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise CLIError(f"--set {item!r}: use KEY=VALUE")
        key = key.strip()
        fields[key] = [v.strip() for v in value.split(",") if v.strip()] if key == "attachments" else value
    return fields


def _refusal(exc: Exception) -> CLIError:
    return CLIError(str(exc))


def cmd_case(args: argparse.Namespace) -> int:
    from alerts.casework import BadFields, IllegalAction
    from alerts.ledger.casework import CaseNotFound, StaleCase

    s, ledger, cw = _casework(args)
    try:
        if args.verb == "show":
            view = cw.view(args.case_id)
            if view is None:
                raise CLIError(f"no case {args.case_id!r}")
            if args.format == "json":
                print(orjson.dumps(view, option=orjson.OPT_INDENT_2).decode())
            else:
                print(render_text(view))
            return 0
        if args.verb == "act":
            who = _actor(args, s)
            try:
                case = cw.act(
                    args.case_id,
                    args.action,
                    _fields(args),
                    actor=who,
                    note=args.note or "",
                    version=args.version,
                )
            except (CaseNotFound, StaleCase, IllegalAction, BadFields) as exc:
                raise _refusal(exc) from None
            row = cw.summary(case)
            print(f"{row['case_id']}: {args.action} by {who} -> {row['status']} (version {row['version']})")
            return 0
        if args.verb == "attach":
            who = _actor(args, s)
            path = Path(args.file)
            try:
                data = path.read_bytes()
            except OSError as exc:
                raise CLIError(f"cannot read {path}: {exc.strerror or exc}") from None
            try:
                a = cw.attach(args.case_id, path.name, "", data, actor=who, note=args.note or "")
            except (CaseNotFound, IllegalAction, BadFields) as exc:
                raise _refusal(exc) from None
            print(f"{args.case_id}: attached {a['filename']} as {a['attachment_id']} (sha256 {a['sha256']})")
            return 0
        if args.verb == "file":
            return _case_file(args, s, ledger, cw)
    finally:
        ledger.close()
    raise CLIError(f"unknown verb {args.verb}")


def _case_file(args: argparse.Namespace, s: Any, ledger: Any, cw: Any) -> int:
    from fumewatch.cli.cmd_report import open_report_store
    from fumewatch.cli.common import load_registry

    try:
        from alerts.casework.case_zip import build_case_zip
    except ImportError:  # pragma: no cover - only while the module is missing
        raise CLIError("this build has no case file export") from None
    view = cw.view(args.case_id)
    if view is None:
        raise CLIError(f"no case {args.case_id!r}")
    names: dict[str, str] = {}
    if args.registry or Path(s.ingest.registry).exists():  # names are a courtesy: the case holds the ids
        names = {d.restaurant_id: d.name for d in load_registry(s)}
    store = open_report_store(getattr(args, "store", None), s)
    try:
        name, body = build_case_zip(view, ledger, store=store, tz=cw.tz, names=names)
    finally:
        if store is not None:
            store.close()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    path = out / name
    path.write_bytes(body)
    print(str(path))
    return 0


_STATUS_ZH = {
    "open": "待分派",
    "assigned": "已分派",
    "inspected": "已现场检查",
    "rectification_ordered": "责令整改中",
    "rechecked": "已复查",
    "closed": "已结案",
}


def render_text(view: dict[str, Any]) -> str:
    """The case for a terminal: summary, on-site record, trail, attachments, notices."""
    s = view["summary"]
    lines = [
        f"案件 case {s['case_id']}  ({s['case_type']})",
        f"  餐饮单位 restaurant  {s['restaurant_id']}  {s.get('district', '')}  device {s['device_id']}",
        f"  状态 status          {s['status']} {_STATUS_ZH.get(s['status'], '')}"
        + (f"  outcome {s['outcome']}" if s["outcome"] else ""),
        f"  承办人 assignee      {s['assignee'] or '-'}    version {s['version']}",
        f"  开始 start           {s['start']}",
    ]
    if s["deadline"]:
        lines.append(
            f"  整改期限 deadline    {s['deadline']}" + ("  ** OVERDUE 已逾期 **" if s["overdue"] else "")
        )
    lc = view["lifecycle"]
    for key, title in (
        ("inspection", "现场检查 inspection"),
        ("rectification", "责令整改 rectification"),
        ("recheck", "复查 recheck"),
        ("closure", "结案 closure"),
    ):
        if key in lc:
            e = lc[key]
            detail = ", ".join(
                f"{k}={v}" for k, v in e.items() if k not in ("by", "at", "note") and not k.endswith("_ms")
            )
            lines.append(
                f"  {title}: {e['at']} by {e['by']}: {detail}" + (f" — {e['note']}" if e["note"] else "")
            )
    for st in lc.get("statements", []):
        lines.append(f"  陈述申辩 statement ({st.get('form', '')}): {st['at']} {st.get('statement', '')}")
    lines.append("  处理记录 audit trail:")
    for a in view["trail"]:
        move = f"{a['from_status'] or '-'} -> {a['to_status']}"
        lines.append(
            f"    {a['seq']:>3}  {a['at']}  {a['actor']:<10} {a['action']:<20} {move}"
            + (f"  {a['note']}" if a["note"] else "")
        )
    if view["attachments"]:
        lines.append("  附件 attachments:")
        for a in view["attachments"]:
            lines.append(
                f"    {a['attachment_id']}  {a['filename']}  {a['content_type']}  {a['size_bytes']} B  sha256 {a['sha256']}"
            )
    if view["notices"]:
        lines.append("  通知回执 notices:")
        for n in view["notices"]:
            lines.append(f"    {n['created']}  {n['channel']:<9} {n['status']:<8} {n['target']}")
    if view["allowed_actions"]:
        lines.append(f"  可执行 next actions: {', '.join(view['allowed_actions'])}")
    return "\n".join(lines)


def register(sub: argparse._SubParsersAction) -> None:
    from alerts.casework.lifecycle import ACTIONS

    sp = sub.add_parser("case", help="show a case, act on it, attach a file, export its case file")
    verbs = sp.add_subparsers(dest="verb", required=True, metavar="VERB")
    show = verbs.add_parser("show", help="the case: summary, on-site record, audit trail, notices")
    show.add_argument("case_id")
    show.add_argument("--format", choices=("text", "json"), default="text")
    act = verbs.add_parser("act", help="act on the case (version-checked, recorded in its audit trail)")
    act.add_argument("case_id")
    act.add_argument("action", choices=ACTIONS)
    act.add_argument("--by", metavar="NAME", help="the inspector acting (recorded in the trail)")
    act.add_argument("--note", metavar="TEXT")
    act.add_argument("--version", type=int, help="the version you read (default: the current one)")
    act.add_argument("--set", action="append", metavar="KEY=VALUE", help="an action field (repeatable)")
    act.add_argument("--json", metavar="OBJ", help="the action's fields as one JSON object")
    att = verbs.add_parser("attach", help="attach a photo (JPEG, PNG, WebP) or a PDF to the case")
    att.add_argument("case_id")
    att.add_argument("file")
    att.add_argument("--by", metavar="NAME")
    att.add_argument("--note", metavar="TEXT")
    f = verbs.add_parser("file", help="export the case file (执法案卷): a zip with PDF, CSV and a manifest")
    f.add_argument("case_id")
    f.add_argument("--out", metavar="DIR", required=True)
    for p in (show, act, att):
        add_common(p, state=True)
    add_common(f, state=True, store=True, registry=True)
    for p in (show, act, att, f):
        add_utc(p)
    sp.set_defaults(func=cmd_case)
