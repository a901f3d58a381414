"""fumewatch dashboards: Grafana dashboards and provisioning as code.

Public names:
    build_all(opts) -> {uid: dashboard JSON dict}; city / restaurant builders in dashboards.city and
    dashboards.restaurant; Options; queries(dashboard) and fill(query, variables, from_ms, to_ms, interval)
    for testing every panel's InfluxQL; validate(doc) (round trip through the SDK's models).
"""

from __future__ import annotations

import json
from typing import Any

from dashboards.common import CITY_UID, RESTAURANT_UID, Options
from dashboards.queries import ALL, PanelQuery, Raw, fill, grafana_interval, queries

__all__ = [
    "ALL",
    "CITY_UID",
    "RESTAURANT_UID",
    "Options",
    "PanelQuery",
    "Raw",
    "build_all",
    "fill",
    "grafana_interval",
    "queries",
    "to_json",
    "validate",
]


def to_json(dashboard: Any) -> dict:
    """A dashboard builder or SDK model as the JSON dict Grafana stores (panel ids numbered from 1)."""
    from grafana_foundation_sdk.cog.encoder import JSONEncoder

    obj = dashboard.build() if hasattr(dashboard, "build") else dashboard
    doc = json.loads(json.dumps(obj, cls=JSONEncoder, ensure_ascii=False))
    next_id = 1
    for panel in doc.get("panels") or []:
        if not panel.get("id"):  # none, or the SDK's 0 of a row
            panel["id"] = next_id
        next_id = max(next_id, int(panel["id"])) + 1
    return doc


def build_all(opts: Options | None = None) -> dict[str, dict]:
    """Both dashboards as JSON dicts, keyed by uid."""
    from dashboards import city, restaurant

    o = opts or Options()
    return {CITY_UID: to_json(city.build(o)), RESTAURANT_UID: to_json(restaurant.build(o))}


def validate(doc: dict) -> dict:
    """Parse ``doc`` with the SDK's models and serialise it again; returns the re-serialised JSON.

    Raises when the SDK's models cannot read the document. Our InfluxQL targets parse back into
    dashboards.influxql.InfluxQLQuery; the InfluxQL keys of annotation targets are not part of the SDK's
    AnnotationTarget model (dashboards.influxql.ANNOTATION_ONLY_KEYS) and are dropped by the round trip.
    """
    from grafana_foundation_sdk.cog.encoder import JSONEncoder
    from grafana_foundation_sdk.cog.plugins import register_default_plugins
    from grafana_foundation_sdk.models.dashboard import Dashboard

    from dashboards.influxql import register

    register_default_plugins()
    register()
    model = Dashboard.from_json(doc)
    return json.loads(json.dumps(model, cls=JSONEncoder, ensure_ascii=False))
