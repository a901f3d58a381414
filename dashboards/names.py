"""Restaurant names in every table: the registry query and the Grafana transformations that join it.

InfluxQL has no joins, so a panel that shows names runs the registry query (``fume_restaurant``, written
by the alerts service, alerts/case_sync.py) as one more target, ``refId`` :data:`REGISTRY_REF`, and lets
Grafana join the frames on ``restaurant_id``:

- :func:`join_names` for tables with many rows per restaurant (events, cases): the registry frame is cut
  to restaurant_id and name (a transformation limited to that frame by ``filter: byRefId``, so the
  table's own time column is the only one left), joined "OUTER (TABULAR)" (which keeps duplicate keys),
  then rows without the table's own key (a restaurant with no event) are dropped.
- :func:`join_rows` for panels with one row per restaurant from several queries (the map, the table of
  every restaurant): every time column is dropped and the frames are joined "OUTER (TIME SERIES)" on
  restaurant_id (a multi-way join on unique values; the tabular join only pairs two frames at a time).

Grafana's InfluxQL frames name each column by its alias (``displayNameFromDS``), which is what the
transformations and overrides below match.
"""

from __future__ import annotations

from typing import Any

from grafana_foundation_sdk.models import dashboard as dm

from dashboards.common import DISTRICT, RESTAURANT_UID, Options, bi, display_name, ident, since

#: refId of the registry target of a panel.
REGISTRY_REF = "REG"
KEY = "restaurant_id"


def q_restaurants(o: Options, where: str = DISTRICT) -> str:
    """The current registry, one row per restaurant: the last point of each (restaurant, district) series
    in the lookback, without the tombstones (active = 0) of restaurants that left or moved."""
    m = ident(o.restaurant_measurement)
    cols = '"name", "address", "lat", "lon", "devices", "stove_heads"'
    return (
        f'SELECT {cols}, "active" FROM (SELECT last("active") AS "active", {cols} FROM {m} '
        f'WHERE {where} AND {since(o.registry_lookback)} GROUP BY "restaurant_id", "district") '
        f'WHERE "active" = 1 GROUP BY "restaurant_id", "district"'
    )


def transformation(
    tid: str, options: dict[str, Any], frame_ref: str | None = None
) -> dm.DataTransformerConfig:
    """A Grafana transformation; ``frame_ref``: apply it to that query's frame only (the others pass)."""
    flt = dm.MatcherConfig(id_val="byRefId", options=frame_ref) if frame_ref else None
    return dm.DataTransformerConfig(id_val=tid, options=options, filter_val=flt)


def drop_rows_without(field: str) -> dm.DataTransformerConfig:
    """Keep only the rows that have a value in ``field`` ("Filter data by values", exclude null)."""
    return transformation(
        "filterByValue",
        {
            "type": "exclude",
            "match": "any",
            "filters": [{"fieldName": field, "config": {"id": "isNull", "options": {}}}],
        },
    )


def order(fields: list[str], exclude: tuple[str, ...] = ()) -> dm.DataTransformerConfig:
    """Put ``fields`` first, in this order (the others follow as they came); hide ``exclude``."""
    return transformation(
        "organize",
        {
            "indexByName": {f: i for i, f in enumerate(fields)},
            "excludeByName": dict.fromkeys(exclude, True),
            "renameByName": {},
        },
    )


def join_names(key: str, first: list[str]) -> list[dm.DataTransformerConfig]:
    """Name column for a table with several rows per restaurant; ``key`` is a column every real row has."""
    return [
        transformation("filterFieldsByName", {"include": {"names": [KEY, "name"]}}, REGISTRY_REF),
        transformation("joinByField", {"byField": KEY, "mode": "outerTabular"}),
        drop_rows_without(key),
        order(first),
    ]


def join_rows() -> list[dm.DataTransformerConfig]:
    """One row per restaurant from several one-row-per-restaurant frames (no time columns)."""
    return [
        transformation("filterFieldsByName", {"exclude": {"names": ["Time"]}}),
        transformation("joinByField", {"byField": KEY, "mode": "outer"}),
    ]


def restaurant_link() -> dict[str, str]:
    """Data link to the restaurant dashboard for the row's restaurant (tables, map tooltips)."""
    return {
        "title": bi("打开单位仪表板", "Open restaurant dashboard"),
        "url": (
            f"/d/{RESTAURANT_UID}/?var-restaurant=${{__data.fields.{KEY}}}"
            "&var-district=${__data.fields.district}&${__url_time_range}"
        ),
    }


def name_column(link: bool = True) -> list[dm.DynamicConfigValue]:
    """Overrides of the name column: its heading and (by default) the link to the restaurant dashboard."""
    props = display_name(bi("名称", "Name"))
    if link:
        props.append(dm.DynamicConfigValue(id_val="links", value=[restaurant_link()]))
    return props
