"""``fumewatch api``: serve the HTTP API of :mod:`alerts.api` (reports, events, cases) and the inspectors'
console (:mod:`alerts.console`) with uvicorn."""

from __future__ import annotations

import argparse
import logging
import tomllib
from pathlib import Path
from typing import Any

from alerts.api import parse_tokens
from alerts.api.settings import parse_inspectors
from fumewatch.cli.common import (
    CLIError,
    add_common,
    check_owner_links,
    existing_state,
    load_registry,
    settings_from,
)
from fumewatch.settings import AppSettings

log = logging.getLogger("fumewatch.api")


def _refuse_tokens_in_toml(config: str | None) -> None:
    if not config:
        return
    try:
        data = tomllib.loads(Path(config).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError):
        return  # settings_from reports unreadable files
    for section, var in (("api", "FUMEWATCH_API_TOKENS"), ("inspector", "FUMEWATCH_INSPECTOR_TOKENS")):
        if "tokens" in (data.get(section) or {}):
            raise CLIError(
                f"{config}: [{section}] tokens must not be in the config file; set {var} in the "
                "environment or an .env file"
            )


def cmd_api(args: argparse.Namespace) -> int:
    import uvicorn

    from alerts.api import create_app
    from alerts.profiles import ProfileError, load_profiles
    from fumewatch.cli.cmd_report import open_report_store
    from ingest import logs

    _refuse_tokens_in_toml(args.config)
    overrides = {"api": {"host": args.host, "port": args.port}}
    s: Any = settings_from(args, AppSettings, **overrides)
    try:
        inspectors = parse_inspectors(s.inspector.tokens)
        tokens = parse_tokens(s.api.tokens, required=not inspectors)
    except ValueError as exc:
        raise CLIError(str(exc)) from None
    state = existing_state(s)
    logs.setup(s.logging.level, s.logging.format)
    registry = load_registry(s)
    try:
        profiles = load_profiles(s.alerts.profiles_file or None)
    except ProfileError as exc:
        raise CLIError(str(exc)) from None
    store = open_report_store(args.store, s)
    check_owner_links(s)
    app = create_app(
        state_path=state,
        registry=registry,
        tokens=tokens,
        inspectors=inspectors,
        api=s.api,
        report=s.report,
        display_tz=s.display_tz,
        detector=s.alerts.detector_config(),
        profiles=profiles,
        store=store,
        owner=s.owner,
        notify=s.notify,
        contact_of=s.district_contact,
    )
    log.info(
        "event=api_start host=%s port=%d tokens=%d inspectors=%d registry_devices=%d store=%s",
        s.api.host,
        s.api.port,
        len(tokens),
        len(inspectors),
        len(registry),
        "yes" if store is not None else "no",
    )
    log.info(
        "event=console_ready path=/console/ bind=%s:%d sign_in=%s session_hours=%g secure_cookies=%s",
        s.api.host,
        s.api.port,
        "inspector_or_read_token" if inspectors else "read_token_only",
        s.api.session_hours,
        "yes" if s.api.secure_cookies else "no",
    )
    config = uvicorn.Config(
        app,
        host=s.api.host,
        port=s.api.port,
        log_config=None,  # our key=value logging (logs.setup); uvicorn's own access log is off
        access_log=False,
        server_header=False,
        proxy_headers=bool(s.api.forwarded_allow_ips),
        forwarded_allow_ips=s.api.forwarded_allow_ips or None,
        timeout_keep_alive=5,
    )
    # uvicorn handles SIGINT/SIGTERM: it finishes open requests, runs the app's shutdown (closes the
    # ledger), then re-raises the signal so the process exits with it.
    try:
        uvicorn.Server(config).run()
    finally:
        if store is not None:
            store.close()
    return 0


def register(sub: argparse._SubParsersAction) -> None:
    sp = sub.add_parser(
        "api",
        help="HTTP API (reports, events, cases) and the inspectors' console at /console "
        "(FUMEWATCH_API_TOKENS read, FUMEWATCH_INSPECTOR_TOKENS act)",
        description="Serve GET /api/v1/reports/exceedances, GET /api/v1/events and GET /healthz. "
        "Tokens come only from the environment variable FUMEWATCH_API_TOKENS (comma-separated) or .env.",
    )
    add_common(sp, store=True, registry=True, state=True)
    sp.add_argument("--host", help="bind address (default 127.0.0.1; [api] host)")
    sp.add_argument("--port", type=int, help="port (default 8080; [api] port)")
    sp.set_defaults(func=cmd_api)
