"""数据可信性 / Data integrity: the city dashboard's row of data-integrity findings (docs/integrity.md).

A finding of the alerts service's data-integrity checks (alerts/integrity: a monitor reading zero while
the fan runs, unlike its earlier services; one value for an hour ...) is a ``fume_event`` point of kind
``data_integrity`` (``common.INTEGRITY_KIND``): tags restaurant_id, device_id, district, kind, pollutant;
fields event_id, state (closed), level "", open 0, severity 0, duration_s (the span the check found),
rule (the check, alerts/influx_sink.py). It is a screening finding for inspectors, to check the monitor,
never an offence: the offence panels leave it out (``common.OFFENCES_ONLY``), and this row shows the
findings of the dashboard's range, filtered by ``$district``:

- :func:`q_count` / the stat: how many findings, ``count("event_id")`` (one point per finding: a service
  judged twice gives the same event id, series and time, so the same point);
- :func:`q_table` / :func:`panel_table`: each finding: its start in the display zone with the offset,
  district, restaurant (name from the registry, dashboards/names.py, linking to its dashboard), device, the
  check in words (:data:`CHECKS`) and the span in minutes (``"duration_s" / 60``).
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import common, stat, table
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm

from dashboards import names
from dashboards.common import (
    DISTRICT,
    INTEGRITY_KIND,
    Options,
    bi,
    display_name,
    ds,
    ident,
    table_time,
    thresholds,
)
from dashboards.influxql import InfluxQL

ROW_TITLE = bi("数据可信性", "Data integrity")
STAT_TITLE = bi("数据可信性存疑（时段内）", "Data-integrity findings in range")
TABLE_TITLE = bi("数据可信性存疑（待核查）", "Data integrity in doubt (to check)")
TIME_HEADING = bi("开始", "Start")
#: What both panels of the row say about the findings (Chinese, English).
NOT_AN_OFFENCE = (
    "这些是数据可信性筛查结果，供执法人员核查监测设备；不是违法认定，不计入处置阶梯，不通知当事人。",
    "These are screening findings for inspectors, to check the monitor: not offences, never on the"
    " enforcement ladder, never an owner notice.",
)


def _description(zh: str, en: str) -> str:
    return f"{zh}{NOT_AN_OFFENCE[0]} / {en} {NOT_AN_OFFENCE[1]}"


#: The check (the event's rule) -> its label. suspect_zero and suspect_flatline as the report and the case
#: file name them (alerts/reports/model.py RULE_LABELS); the others are the checks still to come (issue 16).
CHECKS = {
    "suspect_zero": bi("疑似零值", "suspect zero"),
    "suspect_flatline": bi("疑似恒值", "suspect flatline"),
    "suspect_replay": bi("疑似数据回放", "suspect replay"),
    "suspect_clone": bi("疑似数据克隆", "suspect clone"),
    "suspect_clock": bi("疑似时钟异常", "suspect clock"),
    "suspect_flow": bi("疑似流量异常", "suspect flow"),
}


def _where(o: Options) -> str:
    return f"{ident('kind')} = '{INTEGRITY_KIND}' AND {DISTRICT} AND $timeFilter"


def q_count(o: Options) -> str:
    """The findings of the range."""
    return f'SELECT count("event_id") AS "findings" FROM {ident(o.event_measurement)} WHERE {_where(o)}'


def q_table(o: Options) -> str:
    """Each finding of the range: the check, its span in minutes, the ids and the district."""
    return (
        f'SELECT "rule", "duration_s" / 60 AS "minutes", "event_id", "device_id", "restaurant_id", '
        f'"district" FROM {ident(o.event_measurement)} WHERE {_where(o)}'
    )


def check_mappings() -> list[dm.ValueMapping]:
    return [
        dm.ValueMap(
            options={
                k: dm.ValueMappingResult(text=text, index=i) for i, (k, text) in enumerate(CHECKS.items())
            }
        )
    ]


def panel_stat(o: Options) -> stat.Panel:
    return (
        stat.Panel()
        .title(STAT_TITLE)
        .description(_description("时段内的数据可信性存疑发现数。", "Data-integrity findings in the range."))
        .datasource(ds(o))
        .with_target(InfluxQL(q_count(o)).ref_id("A"))
        .unit("none")
        .decimals(0)
        .no_value("0")
        .thresholds(thresholds((None, "green"), (1, "purple")))
        .color_mode(cm.BigValueColorMode.BACKGROUND)
        .graph_mode(cm.BigValueGraphMode.NONE)
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .span(4)
        .height(8)
    )


#: The table's columns, in this order (the others follow).
TABLE_COLUMNS = ["Time", "district", "name", "device_id", "rule", "minutes"]


def panel_table(o: Options) -> table.Panel:
    return (
        table.Panel()
        .title(TABLE_TITLE)
        .description(
            _description(
                "时段内的数据可信性存疑：开始时间、区、餐饮单位、设备、检查项、持续分钟（所发现时段的长度）；"
                "点击名称打开该单位仪表板。核查前，该设备该时段的数据不宜单独作为案件证据。",
                "The range's data-integrity findings: start, district, restaurant, device, check, minutes"
                " (the span found); click the name for the restaurant's dashboard. Until checked, the"
                " device's data of that span should not be a case's only evidence.",
            )
        )
        .datasource(ds(o))
        .with_target(InfluxQL(q_table(o)).ref_id("A").table())
        .with_target(InfluxQL(names.q_restaurants(o)).ref_id(names.REGISTRY_REF).table())
        .transformations(names.join_names("event_id", TABLE_COLUMNS))
        .sort_by([common.TableSortByFieldState().display_name(TIME_HEADING).desc(True)])
        .override_by_name("Time", table_time(TIME_HEADING))
        .override_by_name("district", display_name(bi("区", "District")))
        .override_by_name("name", names.name_column())
        .override_by_name("device_id", display_name(bi("设备", "Device")))
        .override_by_name(
            "rule",
            [
                *display_name(bi("检查项", "Check")),
                dm.DynamicConfigValue(id_val="mappings", value=check_mappings()),
            ],
        )
        .override_by_name(
            "minutes",
            [*display_name(bi("持续（分钟）", "Minutes")), dm.DynamicConfigValue(id_val="decimals", value=0)],
        )
        .override_by_name("event_id", display_name(bi("发现编号", "Finding id")))
        .override_by_name(names.KEY, display_name(bi("单位编号", "Restaurant id")))
        .span(20)
        .height(8)
    )


def add_row(d: db.Dashboard, o: Options) -> db.Dashboard:
    """The 数据可信性 row of the city dashboard: its heading, the count, the table."""
    return d.with_row(db.Row(ROW_TITLE)).with_panel(panel_stat(o)).with_panel(panel_table(o))
