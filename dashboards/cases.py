"""Cases on the city dashboard, from the case ledger's copy ``fume_case``.

The alerts service copies every case of the case ledger to ``fume_case`` (alerts/case_sync.py): one point
per case at its start, rewritten when the case changes, ``open`` = 1 unless its status is ``closed``. So
the number of open cases is ``sum("open")`` over the case points (one point per case: no ``last()`` per
case is needed), and it matches ``fumewatch cases`` (status other than closed) once the copy has caught
up (within ``DashboardSync.interval_s``, 15 s). Every case type counts, as ``fumewatch cases`` lists them
(``case_type`` is a tag: enforcement cases, and the inspectors' owner-unreachable cases of the case
lifecycle); the cases table shows the type.

- :func:`q_open_cases`: open cases now, whatever their age (``Options.case_lookback``);
- :func:`q_cases_in_range`: cases that started in the dashboard's range;
- :func:`panel`: a table of the open cases and of every case that changed in the range (a case closed
  this morning stays visible with its outcome), with the restaurant's name.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import common, table
from grafana_foundation_sdk.models import dashboard as dm

from dashboards import names
from dashboards.common import (
    DISTRICT,
    TABLE_TIME_UNIT,
    Options,
    bi,
    display_name,
    ds,
    ident,
    since,
    table_time,
)
from dashboards.influxql import InfluxQL

TITLE = bi("案件", "Cases")

#: Case statuses (alerts/enforcement, the case lifecycle) -> (text, colour).
STATUSES = {
    "open": (bi("待处理", "open"), "red"),
    "assigned": (bi("已分派", "assigned"), "orange"),
    "inspected": (bi("已现场检查", "inspected"), "yellow"),
    "rectification_ordered": (bi("已责令整改", "rectification ordered"), "purple"),
    "rechecked": (bi("已复查", "rechecked"), "blue"),
    "closed": (bi("已结案", "closed"), "green"),
}
#: Outcomes of a closed case.
OUTCOMES = {
    "rectified": bi("已整改", "rectified"),
    "penalized": bi("已处罚", "penalized"),
    "not_punished": bi("不予处罚（首违轻微）", "not punished (minor first offence)"),
    "dismissed": bi("撤销", "dismissed"),
    "served": bi("已现场送达", "served on site"),
}
CASE_TYPES = {
    "enforcement": bi("执法", "enforcement"),
    "owner_unreachable": bi("现场送达", "owner unreachable"),
}


def q_open_cases(o: Options) -> str:
    c = ident(o.case_measurement)
    return (
        f'SELECT sum("open") AS "cases" FROM {c} WHERE "open" = 1 AND {DISTRICT} AND {since(o.case_lookback)}'
    )


def q_cases_in_range(o: Options) -> str:
    c = ident(o.case_measurement)
    return f'SELECT count("open") AS "cases" FROM {c} WHERE {DISTRICT} AND $timeFilter'


def q_case_table(o: Options) -> str:
    """Open cases and cases changed since the start of the dashboard's range (``${__from}``, epoch ms)."""
    c = ident(o.case_measurement)
    return (
        f'SELECT "case_id", "status", "outcome", "assignee", "updated_ms", "event_id", "restaurant_id", '
        f'"district", "case_type" FROM {c} WHERE ("open" = 1 OR "updated_ms" >= ${{__from}}) AND {DISTRICT} '
        f"AND {since(o.case_lookback)}"
    )


def _mappings(items: dict[str, tuple[str, str | None]]) -> list[dm.ValueMapping]:
    return [
        dm.ValueMap(
            options={
                k: dm.ValueMappingResult(text=text, color=color, index=i)
                for i, (k, (text, color)) in enumerate(items.items())
            }
        )
    ]


def panel(o: Options) -> table.Panel:
    start = bi("开始", "Start")
    return (
        table.Panel()
        .title(TITLE)
        .description(
            "案件台账中未结案的案件，以及时段内有变动的案件（含结案结果）；点击名称打开该单位仪表板。"
            " / Cases of the case ledger that are not closed, and every case that changed in the range"
            " (with its outcome); click the name for the restaurant's dashboard."
        )
        .datasource(ds(o))
        .with_target(InfluxQL(q_case_table(o)).ref_id("A").table())
        .with_target(InfluxQL(names.q_restaurants(o)).ref_id(names.REGISTRY_REF).table())
        .transformations(names.join_names("case_id", ["name", "district", "status", "outcome"]))
        .sort_by([common.TableSortByFieldState().display_name(start).desc(True)])
        .override_by_name("Time", table_time(start))
        .override_by_name("name", names.name_column())
        .override_by_name(names.KEY, display_name(bi("单位编号", "Restaurant id")))
        .override_by_name("district", display_name(bi("区", "District")))
        .override_by_name(
            "status",
            [
                *display_name(bi("状态", "Status")),
                dm.DynamicConfigValue(id_val="mappings", value=_mappings(STATUSES)),
                dm.DynamicConfigValue(id_val="custom.cellOptions", value={"type": "color-text"}),
            ],
        )
        .override_by_name(
            "outcome",
            [
                *display_name(bi("结果", "Outcome")),
                dm.DynamicConfigValue(
                    id_val="mappings", value=_mappings({k: (v, None) for k, v in OUTCOMES.items()})
                ),
            ],
        )
        .override_by_name("assignee", display_name(bi("承办人", "Assignee")))
        .override_by_name(
            "case_type",
            [
                *display_name(bi("类型", "Type")),
                dm.DynamicConfigValue(
                    id_val="mappings", value=_mappings({k: (v, None) for k, v in CASE_TYPES.items()})
                ),
            ],
        )
        .override_by_name(
            "updated_ms",
            [
                *display_name(bi("最近变动", "Last change")),
                dm.DynamicConfigValue(id_val="unit", value=TABLE_TIME_UNIT),
            ],
        )
        .override_by_name("case_id", display_name(bi("案件编号", "Case id")))
        .override_by_name("event_id", display_name(bi("事件编号", "Event id")))
        .span(24)
        .height(8)
    )
