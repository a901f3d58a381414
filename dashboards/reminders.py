"""优服务 / Service before penalty: maintenance reminders (清洗提醒) and what came of them.

When a restaurant's service-level reference concentration trends towards its limit, the alerts service
sends the owner a friendly reminder before any offence and writes it twice to InfluxDB:

- as a ``fume_event`` point of kind ``maintenance_reminder`` (open 0, level "": never on the enforcement
  ladder), which the offence panels leave out (``common.OFFENCES_ONLY``);
- as one ``fume_reminder`` point (``Options.reminder_measurement``), time = the reminder time, tags
  restaurant_id, device_id, district, rewritten in place (same series and time) as the outcome becomes
  known; fields event_id, outcome (``pending`` | ``back_under`` | ``exceeded`` | ``still_above``), the same
  outcome as four 0/1 integers pending, back_under, exceeded, still_above (exactly one is 1),
  threshold_mg_m3 (the reminder threshold) and mean_mg_m3 (the mean that triggered the reminder).

One point per reminder, so every figure is a plain aggregate over the dashboard's range (no ``last()`` per
reminder is needed), filtered by ``$district``:

- :func:`q_sent`: reminders sent, ``count("event_id")``;
- :func:`q_outcome`: reminders with one outcome, ``sum("<outcome>")`` (back under, went on to exceed,
  still above, pending);
- :func:`q_back_under_share`: back under / reminders whose outcome is known (sent - pending), written
  ``mean("back_under") ... WHERE "pending" = 0``: the 0/1 fields make the mean over the known reminders
  that ratio, the way the compliance rate is ``mean("compliant")`` over the valid windows (InfluxQL 1.x
  cannot divide the aggregates of two queries; this is one aggregate, and no value rather than a division
  by zero while every reminder is pending);
- :func:`q_table` / :func:`panel_table`: the reminders of the range, with the restaurant's name
  (dashboards/names.py) and the outcome in words (:data:`OUTCOMES`);
- :func:`q_restaurant_table` / :func:`restaurant_panel`: one restaurant's reminders, on the restaurant
  dashboard.
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import common, stat, table
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm

from dashboards import names
from dashboards.common import (
    DISTRICT,
    Options,
    bi,
    display_name,
    ds,
    ident,
    table_time,
    thresholds,
)
from dashboards.influxql import InfluxQL

ROW_TITLE = bi("优服务", "Service before penalty")
TABLE_TITLE = bi("清洗提醒明细", "Maintenance reminders in range")
RESTAURANT_TITLE = bi("清洗提醒", "Maintenance reminders")
TIME_HEADING = bi("提醒时间", "Reminded at")

#: Outcome of a reminder (the ``outcome`` field, and the name of its 0/1 field) -> (text, colour).
OUTCOMES = {
    "pending": (bi("待观察", "pending"), "blue"),
    "back_under": (bi("已回落", "back under"), "green"),
    "exceeded": (bi("后续超标", "went on to exceed"), "red"),
    "still_above": (bi("仍偏高", "still above"), "orange"),
}


def q_sent(o: Options) -> str:
    m = ident(o.reminder_measurement)
    return f'SELECT count("event_id") AS "reminders" FROM {m} WHERE {DISTRICT} AND $timeFilter'


def q_outcome(o: Options, outcome: str) -> str:
    """How many reminders of the range have ``outcome`` (the sum of its 0/1 field)."""
    if outcome not in OUTCOMES:
        raise ValueError(f"unknown reminder outcome {outcome!r}")
    m = ident(o.reminder_measurement)
    return f"SELECT sum({ident(outcome)}) AS {ident(outcome)} FROM {m} WHERE {DISTRICT} AND $timeFilter"


def q_back_under_share(o: Options) -> str:
    """back_under / (reminders - pending): the mean of the 0/1 back_under over the reminders not pending."""
    m = ident(o.reminder_measurement)
    return (
        f'SELECT mean("back_under") AS "back_under_share" FROM {m} '
        f'WHERE "pending" = 0 AND {DISTRICT} AND $timeFilter'
    )


def q_table(o: Options) -> str:
    m = ident(o.reminder_measurement)
    return (
        f'SELECT "outcome", "mean_mg_m3", "threshold_mg_m3", "event_id", "device_id", "restaurant_id", '
        f'"district" FROM {m} WHERE {DISTRICT} AND $timeFilter'
    )


def q_restaurant_table(o: Options, restaurant_filter: str) -> str:
    m = ident(o.reminder_measurement)
    return (
        f'SELECT "outcome", "mean_mg_m3", "threshold_mg_m3", "event_id", "device_id" FROM {m} '
        f"WHERE {restaurant_filter} AND $timeFilter"
    )


def outcome_mappings() -> list[dm.ValueMapping]:
    return [
        dm.ValueMap(
            options={
                k: dm.ValueMappingResult(text=text, color=color, index=i)
                for i, (k, (text, color)) in enumerate(OUTCOMES.items())
            }
        )
    ]


def _stat(
    o: Options, title: str, description: str, query: str, steps, *, unit: str = "none", no_value: str = "0"
) -> stat.Panel:
    return (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(ds(o))
        .with_target(InfluxQL(query).ref_id("A"))
        .unit(unit)
        .decimals(1 if unit == "percentunit" else 0)
        .no_value(no_value)
        .thresholds(thresholds(*steps))
        .color_mode(cm.BigValueColorMode.BACKGROUND)
        .graph_mode(cm.BigValueGraphMode.NONE)
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .span(4)
        .height(4)
    )


def stats(o: Options) -> list[stat.Panel]:
    """Six stats of the range, side by side: sent, back under, the share, went on to exceed, still above,
    pending."""
    return [
        _stat(
            o,
            bi("清洗提醒（时段内）", "Reminders sent in range"),
            "时段内发出的清洗提醒（非违法，不计入处置阶梯）。"
            " / Maintenance reminders sent in the range (not offences, never on the enforcement ladder).",
            q_sent(o),
            ((None, "blue"),),
        ),
        _stat(
            o,
            bi("提醒后已回落", "Back under after reminder"),
            "提醒后最近的有效服务时段回落到提醒阈值以下、且其后没有超标的提醒数。"
            " / Reminders after which the restaurant's latest valid services are back under the reminder"
            " threshold, with no exceedance since.",
            q_outcome(o, "back_under"),
            ((None, "green"),),
        ),
        _stat(
            o,
            bi("回落率", "Back-under share"),
            "已回落 / 已有结果的提醒（发出数 - 待观察）。 / Back under / reminders whose outcome is known"
            " (sent - pending).",
            q_back_under_share(o),
            ((None, "green"),),
            unit="percentunit",
            no_value="—",
        ),
        _stat(
            o,
            bi("提醒后超标", "Went on to exceed"),
            "提醒后仍发生超标事件的提醒数。 / Reminders followed by an exceedance event.",
            q_outcome(o, "exceeded"),
            ((None, "green"), (1, "red")),
        ),
        _stat(
            o,
            bi("仍偏高", "Still above"),
            "提醒后仍高于提醒阈值（尚未超标）的提醒数。 / Reminders after which the restaurant is still above"
            " the reminder threshold (no exceedance yet).",
            q_outcome(o, "still_above"),
            ((None, "green"), (1, "orange")),
        ),
        _stat(
            o,
            bi("待观察", "Pending"),
            "提醒后有效服务时段尚不足、结果未定的提醒数（不计入回落率）。"
            " / Reminders with too few services since to tell (left out of the back-under share).",
            q_outcome(o, "pending"),
            ((None, "blue"),),
        ),
    ]


def _common_overrides(p: table.Panel) -> table.Panel:
    return (
        p.override_by_name("Time", table_time(TIME_HEADING))
        .override_by_name(
            "mean_mg_m3",
            [*display_name(bi("触发均值", "Mean")), dm.DynamicConfigValue(id_val="unit", value="conmgm3")],
        )
        .override_by_name(
            "threshold_mg_m3",
            [
                *display_name(bi("提醒阈值", "Threshold")),
                dm.DynamicConfigValue(id_val="unit", value="conmgm3"),
            ],
        )
        .override_by_name(
            "outcome",
            [
                *display_name(bi("结果", "Outcome")),
                dm.DynamicConfigValue(id_val="mappings", value=outcome_mappings()),
                dm.DynamicConfigValue(id_val="custom.cellOptions", value={"type": "color-text"}),
            ],
        )
        .override_by_name("event_id", display_name(bi("提醒编号", "Reminder id")))
        .override_by_name("device_id", display_name(bi("设备", "Device")))
        .sort_by([common.TableSortByFieldState().display_name(TIME_HEADING).desc(True)])
    )


#: The city table's columns, in this order (the others follow).
TABLE_COLUMNS = ["Time", "name", "district", "mean_mg_m3", "threshold_mg_m3", "outcome"]


def panel_table(o: Options) -> table.Panel:
    p = (
        table.Panel()
        .title(TABLE_TITLE)
        .description(
            "时段内的清洗提醒：时间、餐饮单位、区、触发均值与提醒阈值、结果；点击名称打开该单位仪表板。"
            " / The range's maintenance reminders: time, restaurant, district, the mean that triggered it and"
            " the threshold, outcome; click the name for the restaurant's dashboard."
        )
        .datasource(ds(o))
        .with_target(InfluxQL(q_table(o)).ref_id("A").table())
        .with_target(InfluxQL(names.q_restaurants(o)).ref_id(names.REGISTRY_REF).table())
        .transformations(names.join_names("event_id", TABLE_COLUMNS))
        .override_by_name("name", names.name_column())
        .override_by_name(names.KEY, display_name(bi("单位编号", "Restaurant id")))
        .override_by_name("district", display_name(bi("区", "District")))
        .span(24)
        .height(8)
    )
    return _common_overrides(p)


def restaurant_panel(o: Options, restaurant_filter: str) -> table.Panel:
    p = (
        table.Panel()
        .title(RESTAURANT_TITLE)
        .description(
            "时段内发给本单位的清洗提醒（非违法）及其结果。"
            " / Maintenance reminders sent to this restaurant in the range (not offences) and their outcome."
        )
        .datasource(ds(o))
        .with_target(InfluxQL(q_restaurant_table(o, restaurant_filter)).ref_id("A").table())
        .span(24)
        .height(6)
    )
    return _common_overrides(p)


def add_row(d: db.Dashboard, o: Options) -> db.Dashboard:
    """The 优服务 row of the city dashboard: its heading, the six stats, the table."""
    d = d.with_row(db.Row(ROW_TITLE))
    for p in stats(o):
        d = d.with_panel(p)
    return d.with_panel(panel_table(o))
