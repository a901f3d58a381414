"""Upload the dashboards to a running Grafana with grafana-client.

Idempotent: each dashboard is posted with its fixed uid and ``overwrite: true``, so a second push replaces
the same dashboard and Grafana records a new version (its history keeps the old ones). The InfluxDB
datasource (uid ``fumewatch-influxdb``) is created when Grafana has none with that uid; an existing one is
left as it is. Credentials are a service-account token (Bearer) or a user and password (basic auth); they
are never printed or logged.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from dashboards import provisioning
from dashboards.common import Options

log = logging.getLogger("fumewatch.dashboards.push")


class PushError(RuntimeError):
    """Grafana could not be reached or refused a request (the message never contains a credential)."""


@dataclass(frozen=True)
class Pushed:
    uid: str
    title: str
    version: int
    url: str
    status: str


@dataclass(frozen=True)
class InfluxTarget:
    """What the datasource created by a push points at (only used when Grafana has no such datasource)."""

    url: str
    database: str
    token: str = ""


def _api(url: str, credential, timeout_s: float):
    from grafana_client import GrafanaApi

    return GrafanaApi.from_url(url, credential=credential, timeout=timeout_s)


def _call(what: str, fn, *args, **kwargs):
    import niquests
    from grafana_client.client import GrafanaClientError, GrafanaException, GrafanaUnauthorizedError

    try:
        return fn(*args, **kwargs)
    except GrafanaUnauthorizedError:
        raise PushError(f"{what}: Grafana refused the credentials (401)") from None
    except GrafanaClientError as exc:
        raise PushError(f"{what}: HTTP {exc.status_code} {_short(exc.message)}") from None
    except GrafanaException as exc:
        raise PushError(f"{what}: {_short(exc.message)}") from None
    except (niquests.exceptions.RequestException, OSError) as exc:
        raise PushError(f"{what}: Grafana unreachable ({type(exc).__name__})") from None


def _short(text: object) -> str:
    return str(text).replace("\n", " ")[:200]


def ensure_datasource(api, opts: Options, influx: InfluxTarget) -> str:
    """Create the datasource when missing; returns "exists" or "created"."""
    from grafana_client.client import GrafanaClientError

    try:
        api.datasource.get_datasource_by_uid(opts.datasource_uid)
        return "exists"
    except GrafanaClientError as exc:
        if exc.status_code != 404:
            raise
    body = provisioning.datasource(opts)
    body.pop("editable", None)
    body["isDefault"] = False
    body["url"] = influx.url
    body["jsonData"]["dbName"] = influx.database
    if influx.token:
        body["secureJsonData"] = {"httpHeaderValue1": f"Token {influx.token}"}
    else:
        body["jsonData"].pop("httpHeaderName1", None)
        body.pop("secureJsonData", None)
    api.datasource.create_datasource(body)
    return "created"


def ensure_folder(api, title: str) -> str:
    """The uid of the folder titled ``title`` (created when missing)."""
    for f in api.folder.get_all_folders() or []:
        if f.get("title") == title:
            return f["uid"]
    return api.folder.create_folder(title)["uid"]


def push(
    grafana_url: str,
    dashboards: dict[str, dict],
    *,
    token: str | None = None,
    basic: tuple[str, str] | None = None,
    folder: str | None = None,
    opts: Options | None = None,
    influx: InfluxTarget | None = None,
    timeout_s: float = 15.0,
    message: str = "fumewatch dashboards push",
) -> tuple[list[Pushed], str | None]:
    """Upload ``dashboards`` ({uid: JSON}); returns what Grafana answered and the datasource action."""
    o = opts or Options()
    credential = token if token else basic
    api = _api(grafana_url, credential, timeout_s)
    _call("health check", api.health.check)
    ds_action = None
    if influx is not None:
        ds_action = _call("datasource", ensure_datasource, api, o, influx)
    folder_uid = _call("folder", ensure_folder, api, folder) if folder else None
    results = []
    for uid, doc in dashboards.items():
        body: dict = {"dashboard": {**doc, "id": None, "uid": uid}, "overwrite": True, "message": message}
        if folder_uid:
            body["folderUid"] = folder_uid
        resp = _call(f"dashboard {uid}", api.dashboard.update_dashboard, body)
        results.append(
            Pushed(
                uid=resp.get("uid", uid),
                title=doc.get("title", ""),
                version=int(resp.get("version", 0)),
                url=resp.get("url", ""),
                status=resp.get("status", ""),
            )
        )
        log.info("event=dashboard_pushed uid=%s version=%s", uid, resp.get("version"))
    return results, ds_action
