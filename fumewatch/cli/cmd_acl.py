"""``fumewatch mqtt-acl``: the Mosquitto password file, ACL and device credentials (see :mod:`ingest.acl`)."""

from __future__ import annotations

import argparse
import sys

from fumewatch.cli.common import add_common, settings_from
from ingest.acl import (
    DEFAULT_SERVICE_ACCOUNTS,
    SERVICE_ROLES,
    _parse_owner,
    generate,
    parse_service_accounts,
)


def cmd_mqtt_acl(args: argparse.Namespace) -> int:
    s = settings_from(args)
    # --rotate alone: every account; --rotate ID ...: those; absent: none
    rotate: bool | list[str] = True if args.rotate == [] else list(args.rotate or ())
    res = generate(
        s.ingest.registry,
        args.out,
        service_accounts=args.service_accounts,
        rotate=rotate,
        topic_prefix=args.topic_prefix or s.mqtt.topic_prefix,
        credentials_path=args.credentials,
        owner=_parse_owner(args.owner),
    )
    print(
        f"wrote {res.passwd_path} and {res.acl_path}: {res.devices} device(s), service account(s) "
        f"{', '.join(res.services) or '(none)'}"
    )
    print(
        f"device passwords: {len(res.new_passwords)} new, {res.kept} kept, {len(res.rotated)} rotated; "
        f"{len(res.removed)} account(s) of devices no longer in the registry removed"
        + (
            f" ({', '.join(res.removed[:10])}{' ...' if len(res.removed) > 10 else ''})"
            if res.removed
            else ""
        )
    )
    print(
        f"WARNING: {res.credentials_path} holds device passwords in clear text (mode 0600). Hand each "
        "installer only their device's line; never commit or mail the file.",
        file=sys.stderr,
    )
    if any(a.role == "simulator" for a in parse_service_accounts(args.service_accounts)):
        print(
            "WARNING: the simulator role may publish as every device: for demos and load tests only.",
            file=sys.stderr,
        )
    if res.service_credentials_path is not None:
        print(
            f"WARNING: {res.service_credentials_path} holds generated service-account passwords (mode 0600); "
            "set FUMEWATCH_ACL_<NAME>_PASSWORD to supply them instead.",
            file=sys.stderr,
        )
    print("reload a running broker with SIGHUP (docker compose kill -s SIGHUP mosquitto)")
    return 0


def register(subparsers: argparse._SubParsersAction) -> None:
    sp = subparsers.add_parser(
        "mqtt-acl",
        help="write the Mosquitto password file, ACL and device credentials from the registry",
        description=(
            "Writes OUT/passwd (mosquitto_passwd format), OUT/acl (each device may only publish to "
            "<prefix>/<device_id>/#; service accounts read) and credentials.csv (device passwords for "
            "installers, mode 0600). Re-running keeps existing passwords unless --rotate. Service passwords "
            "come from FUMEWATCH_ACL_<NAME>_PASSWORD, else are generated into service-credentials.csv beside "
            "credentials.csv."
        ),
    )
    add_common(sp, registry=True)
    sp.add_argument("--out", required=True, metavar="DIR", help="directory for passwd and acl")
    sp.add_argument(
        "--service-accounts",
        default=DEFAULT_SERVICE_ACCOUNTS,
        metavar="LIST",
        help=f"comma-separated NAME or NAME:ROLE; roles: {', '.join(SERVICE_ROLES)} (default: %(default)s)",
    )
    sp.add_argument(
        "--credentials", metavar="CSV", help="device credentials file (default: OUT/credentials.csv)"
    )
    sp.add_argument(
        "--rotate",
        nargs="*",
        metavar="ID",
        help="new passwords: for these device ids / service accounts, or for all when none is given",
    )
    sp.add_argument("--topic-prefix", metavar="P", help="topic prefix (default: [mqtt] topic_prefix)")
    sp.add_argument(
        "--owner", metavar="UID[:GID]", help="chown passwd and acl (e.g. 1883:1883, Mosquitto's image)"
    )
    sp.set_defaults(func=cmd_mqtt_acl)
