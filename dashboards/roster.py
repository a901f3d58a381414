"""The city dashboard's table of every restaurant, today: one row per registered restaurant.

The panel's time range is "today so far" (``timeFrom: now/d``, local days in the dashboard's time zone), so
``$timeFilter`` is local midnight .. now. Targets (InfluxQL, table format, one row per restaurant), joined
on restaurant_id by Grafana (dashboards.names.join_rows); only restaurants of the registry keep a row:

- ``REG`` name and district (``fume_restaurant``);
- ``COMP`` today's compliance rate: compliant valid 10-minute windows / valid windows (``fume_window``,
  the same ratio as the other compliance panels);
- ``DATA`` data completeness: oil-fume readings received / expected, one expected every
  ``Options.expected_interval_s``, averaged over the restaurant's 10-minute buckets since midnight
  (``count`` per bucket with ``fill(0)``, so a silent bucket counts as 0; the bucket under way counts
  as expected too, so the rate dips a little until it fills up). A device silent all day has no bucket at
  all: its restaurant shows no value there (and the map shows it offline);
- ``OPEN`` open events (``fume_event``, ``Options.open_lookback`` back);
- ``LADDER`` the ladder level: the latest ladder step (education / warning / enforcement) of the
  restaurant's events in ``Options.ladder_lookback`` (the ladder's 365-day look-back);
- neither counts maintenance reminders (kind ``maintenance_reminder``) nor data-integrity findings (kind
  ``data_integrity``), ``common.OFFENCES_ONLY``: they are written with open 0 and severity 0 anyway, and
  the explicit filter keeps it so whatever they carry;
- ``CASE`` open enforcement cases (``fume_case``).
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import common, table
from grafana_foundation_sdk.models import dashboard as dm

from dashboards import names
from dashboards.common import (
    COMPLIANCE_THRESHOLDS,
    DISTRICT,
    OFFENCES_ONLY,
    SEVERITY_THRESHOLDS,
    Options,
    bi,
    display_name,
    ds,
    ident,
    severity_mappings,
    since,
    thresholds,
)
from dashboards.influxql import InfluxQL

TITLE = bi("全部餐饮单位（今日）", "Every restaurant (today)")
#: The panel's relative time: Grafana's "Today so far" (now/d .. now in the dashboard's zone).
TODAY = "now/d"
BUCKET_S = 600
#: Data completeness: red below 75 % (the detector's min_valid_share of a window), orange below 90 %.
COMPLETENESS_THRESHOLDS = ((None, "red"), (0.75, "orange"), (0.9, "green"))


def q_compliance_today(o: Options) -> str:
    w = ident(o.window_measurement)
    return (
        f'SELECT mean("compliant") AS "compliance" FROM {w} '
        f'WHERE "valid" = 1 AND {DISTRICT} AND $timeFilter GROUP BY "restaurant_id"'
    )


def q_completeness(o: Options) -> str:
    r = ident(o.reading_measurement)
    per_bucket = BUCKET_S // o.expected_interval_s
    return (
        f'SELECT mean("n") / {per_bucket} AS "completeness" FROM (SELECT count("oil_fume_mg_m3") AS "n" '
        f"FROM {r} WHERE {DISTRICT} AND $timeFilter "
        f'GROUP BY time({BUCKET_S // 60}m), "restaurant_id", "device_id" fill(0)) GROUP BY "restaurant_id"'
    )


def q_open_events(o: Options) -> str:
    e = ident(o.event_measurement)
    return (
        f'SELECT count("severity") AS "open_events" FROM {e} WHERE "open" = 1 AND {OFFENCES_ONLY} '
        f'AND {DISTRICT} AND {since(o.open_lookback)} GROUP BY "restaurant_id"'
    )


def q_ladder(o: Options) -> str:
    e = ident(o.event_measurement)
    return (
        f'SELECT last("severity") AS "ladder" FROM {e} WHERE "severity" > 0 AND {OFFENCES_ONLY} '
        f'AND {DISTRICT} AND {since(o.ladder_lookback)} GROUP BY "restaurant_id"'
    )


def q_open_cases(o: Options) -> str:
    c = ident(o.case_measurement)
    return (
        f'SELECT sum("open") AS "open_cases" FROM {c} WHERE "open" = 1 AND {DISTRICT} '
        f'AND {since(o.case_lookback)} GROUP BY "restaurant_id"'
    )


def targets(o: Options) -> list[tuple[str, str]]:
    return [
        (names.REGISTRY_REF, names.q_restaurants(o)),
        ("COMP", q_compliance_today(o)),
        ("DATA", q_completeness(o)),
        ("OPEN", q_open_events(o)),
        ("LADDER", q_ladder(o)),
        ("CASE", q_open_cases(o)),
    ]


COLUMNS = ["name", "district", "compliance", "completeness", "open_events", "ladder", "open_cases"]


def transformations() -> list[dm.DataTransformerConfig]:
    hidden = ("active", "address", "lat", "lon", "devices", "stove_heads")
    return [*names.join_rows(), names.drop_rows_without("name"), names.order(COLUMNS, exclude=hidden)]


def _rate(title: str, steps) -> list[dm.DynamicConfigValue]:
    return [
        *display_name(title),
        dm.DynamicConfigValue(id_val="unit", value="percentunit"),
        dm.DynamicConfigValue(id_val="decimals", value=1),
        dm.DynamicConfigValue(id_val="thresholds", value=thresholds(*steps).build()),
        dm.DynamicConfigValue(id_val="color", value={"mode": "thresholds"}),
        dm.DynamicConfigValue(id_val="custom.cellOptions", value={"type": "color-text"}),
        dm.DynamicConfigValue(id_val="noValue", value=bi("无数据", "no data")),
    ]


def _count(title: str, color: str) -> list[dm.DynamicConfigValue]:
    return [
        *display_name(title),
        dm.DynamicConfigValue(id_val="noValue", value="0"),
        dm.DynamicConfigValue(id_val="thresholds", value=thresholds((None, "green"), (1, color)).build()),
        dm.DynamicConfigValue(id_val="color", value={"mode": "thresholds"}),
        dm.DynamicConfigValue(id_val="custom.cellOptions", value={"type": "color-text"}),
    ]


def panel(o: Options) -> table.Panel:
    p = (
        table.Panel()
        .title(TITLE)
        .description(
            "每家登记的餐饮单位：今日（本地日）达标率、数据完整率、进行中事件、处置阶梯级别、未结案件；"
            "点击表头排序，点击名称打开该单位仪表板。"
            " / Every registered restaurant: today's (local day) compliance rate, data completeness, open"
            " events, ladder level and open cases; click a heading to sort, a name for its dashboard."
        )
        .datasource(ds(o))
        .time_from(TODAY)
    )
    for ref, q in targets(o):
        p = p.with_target(InfluxQL(q).ref_id(ref).table())
    return (
        p.transformations(transformations())
        .sort_by(
            [common.TableSortByFieldState().display_name(bi("今日达标率", "Compliance today")).desc(False)]
        )
        .override_by_name("name", names.name_column())
        .override_by_name(names.KEY, display_name(bi("单位编号", "Restaurant id")))
        .override_by_name("district", display_name(bi("区", "District")))
        .override_by_name("compliance", _rate(bi("今日达标率", "Compliance today"), COMPLIANCE_THRESHOLDS))
        .override_by_name(
            "completeness", _rate(bi("数据完整率", "Data completeness"), COMPLETENESS_THRESHOLDS)
        )
        .override_by_name("open_events", _count(bi("进行中事件", "Open events"), "red"))
        .override_by_name(
            "ladder",
            [
                *display_name(bi("处置级别", "Ladder level")),
                dm.DynamicConfigValue(id_val="mappings", value=severity_mappings()),
                dm.DynamicConfigValue(id_val="thresholds", value=thresholds(*SEVERITY_THRESHOLDS).build()),
                dm.DynamicConfigValue(id_val="color", value={"mode": "thresholds"}),
                dm.DynamicConfigValue(id_val="custom.cellOptions", value={"type": "color-background"}),
                dm.DynamicConfigValue(id_val="noValue", value="—"),
            ],
        )
        .override_by_name("open_cases", _count(bi("未结案件", "Open cases"), "purple"))
        .span(24)
        .height(10)
    )
