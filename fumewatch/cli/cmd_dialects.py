"""``fumewatch dialects``: the device dialects a registry row may name (packaged and ``[hj212] dialects_dir``),
one line each, or one dialect's whole table with ``--show NAME``."""

from __future__ import annotations

import argparse

from fumewatch.cli.common import CLIError, add_common, settings_from, write_rows
from ingest.dialects import DialectError, load_dialects

COLUMNS = ("name", "origin", "description")


def cmd_dialects(args: argparse.Namespace) -> int:
    s = settings_from(args)
    try:
        dialects = load_dialects(s.hj212.dialects_dir or None)
        if args.show:
            return _show(dialects.get(args.show))
    except DialectError as exc:
        raise CLIError(str(exc)) from None
    rows = [{"name": d.name, "origin": d.origin, "description": d.description} for d in dialects]
    if args.format != "table":
        write_rows(rows, COLUMNS, args.format)
        return 0
    width = max(len(r["name"]) for r in rows)
    for r in rows:
        mark = "" if r["origin"] == "packaged" else f"  [{r['origin']}]"
        print(f"{r['name']:<{width}}  {r['description']}{mark}")
    return 0


def _show(d) -> int:
    print(f"{d.name}  ({d.origin}{', extends ' + d.extends if d.extends else ''})")
    print(f"  {d.description}")
    print(f"  source: {d.source}")
    print(f"  QN may be missing: {'yes' if d.qn_optional else 'no'}")
    print(f"  CRC variants admitted: {', '.join(d.crc_variants) or 'none'}")
    print("  value suffix by CN: " + ", ".join(f"{cn} {'/'.join(k)}" for cn, k in sorted(d.suffix.items())))
    for code, q in d.factors.items():
        print(f"  factor  {code:<12} {q}")
    for code, st in d.states.items():
        extra = f", on at >= {st.on_a:g} A" if st.on_a else ""
        print(f"  state   {code:<12} {st.target} ({st.encoding}{extra})")
    for key, target in d.keys.items():
        print(f"  key     {key:<12} {target} (0/1)")
    for code, k in d.scale.items():
        print(f"  scale   {code:<12} x {k:g}")
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    sp = sub.add_parser("dialects", help="list the device dialects (registry column dialect)")
    add_common(sp)
    sp.add_argument("--show", metavar="NAME", help="one dialect's codes, suffixes and state encodings")
    sp.add_argument("--format", choices=("table", "csv", "json"), default="table")
    sp.set_defaults(func=cmd_dialects)
