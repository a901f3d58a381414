"""``fumewatch dashboards build|push|queries`` (registered by fumewatch/cli/__init__.py through ``register``).

- ``build --out DIR``: DIR/dashboards/<uid>.json, DIR/provisioning/datasources/fumewatch.yaml and
  DIR/provisioning/dashboards/fumewatch.yaml; prints each path written.
- ``push --grafana URL``: uploads both dashboards (same uid, overwrite: Grafana keeps the versions) and
  creates the InfluxDB datasource when missing. Credentials: ``--token`` or FUMEWATCH_GRAFANA_TOKEN
  (service-account token), or ``--user`` with FUMEWATCH_GRAFANA_PASSWORD; never printed.
- ``queries``: every panel's InfluxQL as TSV (uid, source, panel, refId, query).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from pathlib import Path

from fumewatch.cli.common import CLIError, add_common, settings_from, tz_arg

TOKEN_ENV = "FUMEWATCH_GRAFANA_TOKEN"
USER_ENV = "FUMEWATCH_GRAFANA_USER"
PASSWORD_ENV = "FUMEWATCH_GRAFANA_PASSWORD"
INFLUX_TOKEN_ENVS = ("FUMEWATCH_INFLUX_TOKEN", "INFLUX_TOKEN")


def _options(args: argparse.Namespace):
    from dashboards.common import Options

    kw = {}
    if getattr(args, "datasource_uid", None):
        kw["datasource_uid"] = args.datasource_uid
    # the dashboards' zone: --timezone, else the display zone of the settings (--config, FUMEWATCH_DISPLAY_TZ)
    kw["timezone"] = getattr(args, "timezone", None) or settings_from(args).display_tz
    return Options(**kw)


def cmd_build(args: argparse.Namespace) -> int:
    from dashboards import build_all, provisioning

    out = Path(args.out)
    opts = _options(args)
    prov = provisioning.ProvisioningOptions(dashboards_path=args.dashboards_path, folder=args.folder)
    docs = build_all(opts)
    written: list[Path] = []
    ddir = out / "dashboards"
    ddir.mkdir(parents=True, exist_ok=True)
    for uid, doc in docs.items():
        path = ddir / f"{uid}.json"
        path.write_text(json.dumps(doc, ensure_ascii=False, indent=2) + "\n", encoding="utf-8")
        written.append(path)
    written += provisioning.write(out, opts, prov)
    for path in written:
        print(f"wrote {path}")
    return 0


def cmd_push(args: argparse.Namespace) -> int:
    from dashboards import build_all
    from dashboards.push import InfluxTarget, PushError, push

    token = args.token or os.environ.get(TOKEN_ENV, "")
    user = args.user or os.environ.get(USER_ENV, "")
    basic = None
    if not token:
        password = os.environ.get(PASSWORD_ENV, "")
        if not (user and password):
            raise CLIError(
                f"no Grafana credentials: --token or {TOKEN_ENV} (service-account token), "
                f"or --user / {USER_ENV} with {PASSWORD_ENV}"
            )
        basic = (user, password)
    influx = None
    if not args.no_datasource:
        influx_token = next((os.environ[e] for e in INFLUX_TOKEN_ENVS if os.environ.get(e)), "")
        influx = InfluxTarget(url=args.influx_url, database=args.influx_database, token=influx_token)
    opts = _options(args)
    try:
        results, ds_action = push(
            args.grafana,
            build_all(opts),
            token=token or None,
            basic=basic,
            folder=args.folder,
            opts=opts,
            influx=influx,
            timeout_s=args.timeout,
        )
    except PushError as exc:
        raise CLIError(str(exc)) from None
    if ds_action:
        print(f"datasource {opts.datasource_uid}: {ds_action}")
    for r in results:
        print(f"pushed {r.uid} version={r.version} url={r.url} ({r.title})")
    return 0


def cmd_queries(args: argparse.Namespace) -> int:
    from dashboards import build_all, queries

    out = sys.stdout
    out.write("uid\tsource\tpanel\trefId\tquery\n")
    for uid, doc in build_all(_options(args)).items():
        for q in queries(doc):
            out.write(f"{uid}\t{q.source}\t{q.panel}\t{q.ref_id}\t{q.query}\n")
    return 0


def _common(p: argparse.ArgumentParser) -> None:
    add_common(p)  # --config: the dashboards' zone defaults to its display_tz
    p.add_argument(
        "--datasource-uid", metavar="UID", help="InfluxDB datasource uid (default fumewatch-influxdb)"
    )
    p.add_argument(
        "--timezone",
        metavar="TZ",
        type=tz_arg,
        help="the dashboards' time zone (tables, axes) and zone of the daily buckets; default: display_tz "
        "of the settings (Asia/Shanghai)",
    )


def register(sub: argparse._SubParsersAction) -> None:
    from dashboards.provisioning import DEFAULT_DASHBOARDS_PATH, DEFAULT_FOLDER

    p = sub.add_parser("dashboards", help="Grafana dashboards and provisioning as code")
    dsub = p.add_subparsers(dest="dashboards_command", metavar="{build,push,queries}", required=True)

    sp = dsub.add_parser("build", help="write dashboard JSON and Grafana provisioning YAML")
    sp.add_argument("--out", required=True, metavar="DIR")
    sp.add_argument(
        "--dashboards-path",
        default=DEFAULT_DASHBOARDS_PATH,
        metavar="PATH",
        help=f"where Grafana finds DIR/dashboards (default {DEFAULT_DASHBOARDS_PATH})",
    )
    sp.add_argument("--folder", default=DEFAULT_FOLDER, help=f"Grafana folder (default {DEFAULT_FOLDER!r})")
    _common(sp)
    sp.set_defaults(func=cmd_build)

    sp = dsub.add_parser("push", help="upload the dashboards to a running Grafana (idempotent)")
    sp.add_argument("--grafana", required=True, metavar="URL", help="e.g. http://grafana:3000")
    sp.add_argument("--token", help=f"service-account token (better: {TOKEN_ENV} in the environment)")
    sp.add_argument("--user", help=f"basic auth user (password from {PASSWORD_ENV})")
    sp.add_argument("--folder", default=DEFAULT_FOLDER, help=f"Grafana folder (default {DEFAULT_FOLDER!r})")
    sp.add_argument(
        "--influx-url",
        default=os.environ.get("INFLUX_URL", "http://influxdb:8086"),
        help="URL for the datasource when it must be created (default $INFLUX_URL or http://influxdb:8086)",
    )
    sp.add_argument(
        "--influx-database",
        default=os.environ.get("INFLUX_DATABASE", "fumewatch"),
        help="InfluxQL database (2.x: DBRP-mapped name) for a created datasource; token from "
        "FUMEWATCH_INFLUX_TOKEN or INFLUX_TOKEN",
    )
    sp.add_argument("--no-datasource", action="store_true", help="do not create the datasource")
    sp.add_argument("--timeout", type=float, default=15.0, help="seconds per request")
    _common(sp)
    sp.set_defaults(func=cmd_push)

    sp = dsub.add_parser("queries", help="print every panel's InfluxQL (TSV)")
    _common(sp)
    sp.set_defaults(func=cmd_queries)
