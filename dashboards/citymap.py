"""The city dashboard's map (Grafana Geomap): one marker per restaurant, coloured by its state now.

Targets (all InfluxQL, table format, one row per restaurant):

- ``REG`` the registry (``fume_restaurant``): name, district, address, lat, lon (WGS-84), ``active`` = 1;
- ``REF`` the latest reference-converted oil-fume reading (``oil_fume_ref_mg_m3``) of the panel's time range
  (``Options.latest_lookback``, the last hour);
- ``EXC`` / ``PUR`` / ``OFF`` an open exceedance / purifier-off / offline event (``fume_event``, looking
  ``Options.open_lookback`` back), as the state code of :data:`STATES` (``max("open") * code``);
- ``CASE`` an open enforcement case (``fume_case``): its state code and the number of open cases.

Grafana joins them on restaurant_id (dashboards.names.join_rows), keeps the placed restaurants, and takes
``state`` = the largest code of the row ("Add field from calculation", reduce row, max): ``active`` gives
1 (compliant) to every registered restaurant, any open problem raises it. The marker colour, the legend
and the tooltip text come from the value mappings of ``state``; hovering a marker shows its name,
district, address, latest concentration, state and open cases, with a link to the restaurant dashboard.

The base map is Grafana's default layer (CARTO, WGS-84, which the registry's coordinates are in; an
administrator can change it for the whole server with ``[geomap] default_baselayer_config``). Chinese
tile services (Gaode/AMap, Tencent) are drawn in GCJ-02: see docs/dashboards.md before using one.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import common, geomap
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm
from grafana_foundation_sdk.models import geomap as gm

from dashboards import names
from dashboards.common import DISTRICT, Options, bi, display_name, ds, ident, since, thresholds
from dashboards.influxql import InfluxQL

TITLE = bi("餐饮单位分布与当前状态", "Restaurants on the map, state now")

#: State codes, worst last: (code, field or "", text, colour). ``active`` (the registry) gives 1.
STATES = (
    (1, "active", bi("达标", "compliant"), "green"),
    (2, "case_state", bi("有未结案件", "case open"), "purple"),
    (3, "offline", bi("离线", "offline"), "#8e8e8e"),
    (4, "purifier_off", bi("净化器关闭", "purifier off"), "orange"),
    (5, "exceedance", bi("超标", "exceedance open"), "red"),
)
EVENT_STATES = {"exceedance": 5, "purifier_off": 4, "offline": 3}
CASE_CODE = 2


def q_latest_ref(o: Options) -> str:
    r = ident(o.reading_measurement)
    return (
        f'SELECT last("oil_fume_ref_mg_m3") AS "oil_fume_ref_mg_m3" FROM {r} '
        f'WHERE {DISTRICT} AND $timeFilter GROUP BY "restaurant_id"'
    )


def q_event_state(o: Options, kind: str) -> str:
    """``<kind>`` = its state code for restaurants with an open event of that kind."""
    e = ident(o.event_measurement)
    return (
        f'SELECT max("open") * {EVENT_STATES[kind]} AS {ident(kind)} FROM {e} '
        f'WHERE "kind" = \'{kind}\' AND "open" = 1 AND {DISTRICT} AND {since(o.open_lookback)} '
        f'GROUP BY "restaurant_id"'
    )


def q_case_state(o: Options) -> str:
    c = ident(o.case_measurement)
    return (
        f'SELECT max("open") * {CASE_CODE} AS "case_state", sum("open") AS "open_cases" FROM {c} '
        f'WHERE "open" = 1 AND {DISTRICT} AND {since(o.case_lookback)} GROUP BY "restaurant_id"'
    )


def targets(o: Options) -> list[tuple[str, str]]:
    """(refId, query) of the map's targets."""
    return [
        (names.REGISTRY_REF, names.q_restaurants(o)),
        ("REF", q_latest_ref(o)),
        ("EXC", q_event_state(o, "exceedance")),
        ("PUR", q_event_state(o, "purifier_off")),
        ("OFF", q_event_state(o, "offline")),
        ("CASE", q_case_state(o)),
    ]


def state_mappings() -> list[dm.ValueMapping]:
    return [
        dm.ValueMap(
            options={
                str(code): dm.ValueMappingResult(text=text, color=color, index=i)
                for i, (code, _field, text, color) in enumerate(STATES)
            }
        )
    ]


def transformations() -> list[dm.DataTransformerConfig]:
    helpers = [f for _code, f, _t, _c in STATES]
    return [
        *names.join_rows(),
        names.drop_rows_without("lat"),  # unplaced restaurants, and rows of restaurants not in the registry
        names.transformation(
            "calculateField",
            {
                "mode": "reduceRow",
                "reduce": {"reducer": "max", "include": helpers},
                "alias": "state",
                "replaceFields": False,
                "timeSeries": False,  # one frame with no time field: no join by time first
            },
        ),
        names.order(
            ["name", "district", "address", "oil_fume_ref_mg_m3", "state", "open_cases"],
            exclude=tuple(helpers) + ("devices", "stove_heads"),
        ),
    ]


def _marker_layer(o: Options) -> common.MapLayerOptions:
    return (
        common.MapLayerOptions()
        .type("markers")
        .name(bi("餐饮单位", "Restaurants"))
        .config(
            {
                "showLegend": True,
                "style": {
                    "color": {"field": "state", "fixed": "green"},
                    "opacity": 0.85,
                    "size": {"fixed": o.map_marker_size, "min": 2, "max": 15},
                    "symbol": {"mode": "fixed", "fixed": "img/icons/marker/circle.svg"},
                    "symbolAlign": {"horizontal": "center", "vertical": "center"},
                },
            }
        )
        .location(
            common.FrameGeometrySource()
            .mode(cm.FrameGeometrySourceMode.COORDS)
            .latitude("lat")
            .longitude("lon")
        )
        .tooltip(True)
    )


def _hidden_in_tooltip() -> list[dm.DynamicConfigValue]:
    return [
        dm.DynamicConfigValue(
            id_val="custom.hideFrom", value={"tooltip": True, "viz": False, "legend": False}
        )
    ]


def panel(o: Options) -> geomap.Panel:
    p = (
        geomap.Panel()
        .title(TITLE)
        .description(
            "每个点是一家餐饮单位（登记的 WGS-84 坐标），颜色为当前状态：超标、净化器关闭、离线、有未结案件或达标；"
            "悬停查看名称、区、最新折算浓度，点击链接打开该单位仪表板。"
            " / One marker per restaurant (its registered WGS-84 position), coloured by its state now:"
            " exceedance, purifier off, offline, open case or compliant. Hover for the name, district and"
            " latest reference concentration; the link opens the restaurant's dashboard."
        )
        .datasource(ds(o))
        .time_from(o.latest_lookback)
    )
    for ref, q in targets(o):
        p = p.with_target(InfluxQL(q).ref_id(ref).table())
    return (
        p.transformations(transformations())
        .view(
            geomap.MapViewConfig()
            .id(gm.MapCenterID.FIT)
            .all_layers(True)
            .padding(5)
            .max_zoom(16)
            .lat(o.map_center_lat)  # type: ignore[arg-type]  # the SDK types degrees as int
            .lon(o.map_center_lon)  # type: ignore[arg-type]
            .zoom(o.map_zoom)
        )
        .controls(geomap.ControlsOptions().show_zoom(True).mouse_wheel_zoom(True).show_attribution(True))
        .basemap(common.MapLayerOptions().type("default").name(bi("底图", "Basemap")))
        .layers([_marker_layer(o)])
        .tooltip(geomap.TooltipOptions().mode(gm.TooltipMode.DETAILS))
        .override_by_name(
            "state",
            [
                *display_name(bi("当前状态", "State now")),
                dm.DynamicConfigValue(id_val="mappings", value=state_mappings()),
                dm.DynamicConfigValue(
                    id_val="thresholds",
                    value=thresholds(*((None if c == 1 else c, col) for c, _f, _t, col in STATES)).build(),
                ),
                dm.DynamicConfigValue(id_val="color", value={"mode": "thresholds"}),
            ],
        )
        .override_by_name("name", names.name_column())
        .override_by_name("district", display_name(bi("区", "District")))
        .override_by_name("address", display_name(bi("地址", "Address")))
        .override_by_name(
            "oil_fume_ref_mg_m3",
            [
                *display_name(bi("最新折算浓度", "Latest reference concentration")),
                dm.DynamicConfigValue(id_val="unit", value="conmgm3"),
                dm.DynamicConfigValue(id_val="decimals", value=2),
            ],
        )
        .override_by_name("open_cases", display_name(bi("未结案件", "Open cases")))
        .override_by_name(names.KEY, display_name(bi("单位编号", "Restaurant id")))
        .override_by_name("lat", _hidden_in_tooltip())
        .override_by_name("lon", _hidden_in_tooltip())
        .span(24)
        .height(14)
    )
