"""Per-restaurant compliance dashboard (uid ``fumewatch-restaurant``), one restaurant at a time.

Variables: ``$datasource``, ``$district`` (narrows the restaurant list) and ``$restaurant``
(``SHOW TAG VALUES ... restaurant_id``). Panels:
- compliance in the range, peak reference-converted concentration, open events;
- reference-converted oil fume (GB 18483-2001: C_ref = C x Q / (n x 2000)), mean per ``$__interval`` and
  device, with the measured value and the limit from ``fume_window.limit_mg_m3`` as a red dashed line
  (the limit follows the restaurant's profile, so it is a series rather than a fixed threshold);
- PM and NMHC where the monitor reports them, with their limits;
- fan and purifier state timeline (fan: on if on at any time in the interval; purifier: off if off at
  any time in the interval, the conservative reading for a purifier);
- daily compliance rate in local days (GROUP BY time(1d) ... tz(<display zone>));
- the restaurant's events as a table (with its name from the registry, dashboards/names.py), and
  exceedance / purifier-off / offline events as annotations.

Maintenance reminders (``fume_event`` kind ``maintenance_reminder``) and data-integrity findings (kind
``data_integrity``) are not offences: the open-events stat and the events table leave them out
(``common.OFFENCES_ONLY``). The last panel lists the restaurant's
reminders of the range from ``fume_reminder`` (time, device, the mean that triggered it, the threshold,
the outcome in words; dashboards/reminders.py).
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import common, stat, statetimeline, table, timeseries
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm

from dashboards import names, reminders
from dashboards.common import (
    COMPLIANCE_THRESHOLDS,
    OFFENCES_ONLY,
    RESTAURANT_UID,
    SEVERITY_THRESHOLDS,
    TAGS,
    Options,
    bi,
    datasource_variable,
    display_name,
    district_variable,
    ds,
    ident,
    on_off_mappings,
    restaurant_variable,
    severity_mappings,
    table_time,
    thresholds,
)
from dashboards.influxql import InfluxAnnotation, InfluxQL

TITLE = "餐饮单位油烟监控 / Restaurant compliance"

RESTAURANT = f"{ident('restaurant_id')} =~ /^$restaurant$/"


def q_compliance(o: Options) -> str:
    w = ident(o.window_measurement)
    return f'SELECT mean("compliant") AS "compliance" FROM {w} WHERE "valid" = 1 AND {RESTAURANT} AND $timeFilter'


def q_peak(o: Options) -> str:
    r = ident(o.reading_measurement)
    return f'SELECT max("oil_fume_ref_mg_m3") AS "peak" FROM {r} WHERE {RESTAURANT} AND $timeFilter'


def q_open_events(o: Options) -> str:
    e = ident(o.event_measurement)
    return (
        f'SELECT count("severity") AS "open" FROM {e} '
        f'WHERE "open" = 1 AND {OFFENCES_ONLY} AND {RESTAURANT} AND $timeFilter'
    )


def q_oil_fume(o: Options) -> str:
    r = ident(o.reading_measurement)
    return (
        f'SELECT mean("oil_fume_ref_mg_m3") AS "ref", mean("oil_fume_mg_m3") AS "measured" FROM {r} '
        f'WHERE {RESTAURANT} AND $timeFilter GROUP BY time($__interval), "device_id" fill(null)'
    )


def q_oil_fume_limit(o: Options) -> str:
    w = ident(o.window_measurement)
    return (
        f'SELECT max("limit_mg_m3") AS "limit" FROM {w} '
        f"WHERE \"pollutant\" = 'oil_fume' AND {RESTAURANT} AND $timeFilter "
        f"GROUP BY time($__interval) fill(previous)"
    )


def q_pm_nmhc(o: Options) -> str:
    r = ident(o.reading_measurement)
    return (
        f'SELECT mean("pm_mg_m3") AS "pm", mean("nmhc_mg_m3") AS "nmhc" FROM {r} '
        f'WHERE {RESTAURANT} AND $timeFilter GROUP BY time($__interval), "device_id" fill(null)'
    )


def q_pm_nmhc_limit(o: Options) -> str:
    w = ident(o.window_measurement)
    return (
        f'SELECT max("limit_mg_m3") AS "limit" FROM {w} '
        f'WHERE "pollutant" =~ /^(pm|nmhc)$/ AND {RESTAURANT} AND $timeFilter '
        f'GROUP BY time($__interval), "pollutant" fill(previous)'
    )


def q_fan_purifier(o: Options) -> str:
    r = ident(o.reading_measurement)
    return (
        f'SELECT max("fan_on") AS "fan", min("purifier_on") AS "purifier" FROM {r} '
        f'WHERE {RESTAURANT} AND $timeFilter GROUP BY time($__interval), "device_id" fill(null)'
    )


def q_daily_compliance(o: Options) -> str:
    w = ident(o.window_measurement)
    tz = o.timezone.replace("'", "")
    return (
        f'SELECT mean("compliant") AS "compliance" FROM {w} WHERE "valid" = 1 AND {RESTAURANT} AND $timeFilter '
        f"GROUP BY time(1d) fill(none) tz('{tz}')"
    )


def q_events(o: Options) -> str:
    """The restaurant's events in the range, maintenance reminders and data-integrity findings left out
    (not offences)."""
    e = ident(o.event_measurement)
    return (
        f'SELECT "severity", "kind", "pollutant", "level", "state", "peak_mg_m3", "limit_mg_m3", '
        f'"duration_s", "event_id", "restaurant_id" FROM {e} WHERE {OFFENCES_ONLY} AND {RESTAURANT} '
        f"AND $timeFilter"
    )


def q_reminders(o: Options) -> str:
    """The restaurant's maintenance reminders in the range and their outcome (dashboards/reminders.py)."""
    return reminders.q_restaurant_table(o, RESTAURANT)


def q_restaurant(o: Options) -> str:
    """The restaurant's registry row (its name for the events table)."""
    return names.q_restaurants(o, RESTAURANT)


def q_annotation(o: Options, kind: str) -> str:
    e = ident(o.event_measurement)
    cols = '"peak_mg_m3", "pollutant", "level", "state"' if kind == "exceedance" else '"event_id", "state"'
    return f"SELECT {cols} FROM {e} WHERE \"kind\" = '{kind}' AND {RESTAURANT} AND $timeFilter"


#: (kind, name, colour, text column, tag columns) of the annotation queries.
ANNOTATIONS = (
    ("exceedance", bi("超标事件", "Exceedance events"), "red", "peak_mg_m3", "pollutant,level,state"),
    ("purifier_off", bi("净化器关闭", "Purifier off"), "orange", "event_id", "state"),
    ("offline", bi("设备离线", "Device offline"), "purple", "event_id", "state"),
)


def _limit_override() -> list[dm.DynamicConfigValue]:
    return [
        dm.DynamicConfigValue(id_val="color", value={"mode": "fixed", "fixedColor": "red"}),
        dm.DynamicConfigValue(id_val="custom.lineStyle", value={"fill": "dash", "dash": [10, 10]}),
        dm.DynamicConfigValue(id_val="custom.lineWidth", value=2),
        dm.DynamicConfigValue(id_val="custom.fillOpacity", value=0),
        dm.DynamicConfigValue(id_val="custom.lineInterpolation", value="stepAfter"),
    ]


def build(opts: Options | None = None) -> db.Dashboard:
    o = opts or Options()
    src = ds(o)
    d = (
        db.Dashboard(TITLE)
        .uid(RESTAURANT_UID)
        .description(
            "单个餐饮单位：折算油烟浓度与限值、颗粒物与非甲烷总烃、风机与净化器状态、日达标率与事件。"
            " / One restaurant: reference-converted oil fume against its limit, PM and NMHC, fan and"
            " purifier state, daily compliance rate and events."
        )
        .tags(TAGS)
        .timezone(o.timezone)
        .time(o.restaurant_time_from, "now")
        .refresh(o.refresh)
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .with_variable(datasource_variable(o))
        .with_variable(district_variable(o))
        .with_variable(restaurant_variable(o))
        .link(
            db.DashboardLink(bi("城市总览", "City overview"))
            .type(dm.DashboardLinkType.DASHBOARDS)
            .tags(["fumewatch"])
            .as_dropdown(False)
            .include_vars(False)
            .keep_time(True)
        )
    )
    for kind, name, color, text_col, tags_col in ANNOTATIONS:
        d = d.annotation(
            db.AnnotationQuery()
            .name(name)
            .datasource(src)
            .enable(True)
            .hide(False)
            .icon_color(color)
            .target(InfluxAnnotation(q_annotation(o, kind)).text_column(text_col).tags_column(tags_col))
        )
    d = d.with_panel(
        stat.Panel()
        .title(bi("时段达标率", "Compliance rate in range"))
        .description("达标的有效窗口 / 有效窗口。 / Compliant valid windows / valid windows.")
        .datasource(src)
        .with_target(InfluxQL(q_compliance(o)).ref_id("A"))
        .unit("percentunit")
        .decimals(1)
        .thresholds(thresholds(*COMPLIANCE_THRESHOLDS))
        .color_mode(cm.BigValueColorMode.BACKGROUND)
        .graph_mode(cm.BigValueGraphMode.NONE)
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .span(8)
        .height(4)
    )
    d = d.with_panel(
        stat.Panel()
        .title(bi("时段最高折算浓度", "Peak reference concentration in range"))
        .description(
            "GB 18483-2001 折算到基准风量后的最高读数。 / Highest reading after the GB 18483 conversion."
        )
        .datasource(src)
        .with_target(InfluxQL(q_peak(o)).ref_id("A"))
        .unit("conmgm3")
        .decimals(2)
        .thresholds(thresholds((None, "green"), (2.0, "red")))
        .color_mode(cm.BigValueColorMode.VALUE)
        .graph_mode(cm.BigValueGraphMode.NONE)
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .span(8)
        .height(4)
    )
    d = d.with_panel(
        stat.Panel()
        .title(bi("进行中事件", "Open events"))
        .description(
            "未结束的超标、净化器关闭、离线等事件。 / Open exceedance, purifier-off, offline... events."
        )
        .datasource(src)
        .time_from(o.open_lookback)
        .with_target(InfluxQL(q_open_events(o)).ref_id("A"))
        .unit("none")
        .decimals(0)
        .no_value("0")
        .thresholds(thresholds((None, "green"), (1, "red")))
        .color_mode(cm.BigValueColorMode.BACKGROUND)
        .graph_mode(cm.BigValueGraphMode.NONE)
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .span(8)
        .height(4)
    )
    d = d.with_panel(
        timeseries.Panel()
        .title(bi("折算油烟浓度与限值", "Oil fume (reference-converted) and limit"))
        .description(
            "C_ref = C × Q / (灶头数 × 2000 m³/h)（GB 18483-2001）；红色虚线为适用限值。"
            " / C_ref = C × Q / (stove heads × 2000 m³/h) (GB 18483-2001); the red dashed line is the limit."
        )
        .datasource(src)
        .interval(o.min_interval)
        .with_target(InfluxQL(q_oil_fume(o)).ref_id("A").alias("$tag_device_id $col"))
        .with_target(InfluxQL(q_oil_fume_limit(o)).ref_id("B").alias(bi("限值", "limit")))
        .unit("conmgm3")
        .decimals(2)
        .min(0)
        .line_width(1)
        .fill_opacity(10)
        .span_nulls(False)
        .override_by_query("B", _limit_override())
        .legend(
            common.VizLegendOptions()
            .display_mode(cm.LegendDisplayMode.LIST)
            .placement(cm.LegendPlacement.BOTTOM)
            .show_legend(True)
        )
        .override_by_regexp(
            ".*measured$", [dm.DynamicConfigValue(id_val="custom.lineStyle", value={"fill": "dot"})]
        )
        .span(24)
        .height(9)
    )
    d = d.with_panel(
        timeseries.Panel()
        .title(bi("颗粒物与非甲烷总烃", "PM and NMHC"))
        .description(
            "监测仪上报时显示（地方标准如 DB11/1488-2018 规定限值）。"
            " / Shown where the monitor reports them (limits from local standards such as DB11/1488-2018)."
        )
        .datasource(src)
        .interval(o.min_interval)
        .with_target(InfluxQL(q_pm_nmhc(o)).ref_id("A").alias("$tag_device_id $col"))
        .with_target(InfluxQL(q_pm_nmhc_limit(o)).ref_id("B").alias(bi("限值", "limit") + " $tag_pollutant"))
        .unit("conmgm3")
        .decimals(2)
        .min(0)
        .line_width(1)
        .fill_opacity(10)
        .legend(
            common.VizLegendOptions()
            .display_mode(cm.LegendDisplayMode.LIST)
            .placement(cm.LegendPlacement.BOTTOM)
            .show_legend(True)
        )
        .override_by_query("B", _limit_override())
        .span(24)
        .height(8)
    )
    d = d.with_panel(
        statetimeline.Panel()
        .title(bi("风机与净化器状态", "Fan and purifier state"))
        .description(
            "风机：时段内任一时刻开即为开；净化器：任一时刻关即为关。"
            " / Fan: on if on at any time in the interval; purifier: off if off at any time in it."
        )
        .datasource(src)
        .interval(o.min_interval)
        .with_target(InfluxQL(q_fan_purifier(o)).ref_id("A").alias("$tag_device_id $col"))
        .mappings(on_off_mappings())
        .thresholds(thresholds((None, "red"), (1, "green")))
        .legend(
            common.VizLegendOptions()
            .display_mode(cm.LegendDisplayMode.LIST)
            .placement(cm.LegendPlacement.BOTTOM)
            .show_legend(True)
        )
        .show_value(cm.VisibilityMode.NEVER)
        .merge_values(True)
        .line_width(0)
        .fill_opacity(70)
        .row_height(0.8)
        .span(24)
        .height(6)
    )
    d = d.with_panel(
        timeseries.Panel()
        .title(bi("日达标率", "Daily compliance rate"))
        .description(
            f"按本地日（{o.timezone}）统计：达标的有效窗口 / 有效窗口。"
            f" / Per local day ({o.timezone}): compliant valid windows / valid windows."
        )
        .datasource(src)
        .with_target(InfluxQL(q_daily_compliance(o)).ref_id("A").alias(bi("达标率", "compliance")))
        .unit("percentunit")
        .min(0)
        .max(1)
        .decimals(1)
        .draw_style(cm.GraphDrawStyle.BARS)
        .fill_opacity(70)
        .thresholds(thresholds(*COMPLIANCE_THRESHOLDS))
        .legend(
            common.VizLegendOptions()
            .display_mode(cm.LegendDisplayMode.LIST)
            .placement(cm.LegendPlacement.BOTTOM)
            .show_legend(True)
        )
        .color_scheme(db.FieldColor().mode(dm.FieldColorModeId.THRESHOLDS))
        .span(12)
        .height(8)
    )
    d = d.with_panel(
        table.Panel()
        .title(bi("事件", "Events"))
        .description("时段内开始的事件。 / Events that started in the range.")
        .datasource(src)
        .with_target(InfluxQL(q_events(o)).ref_id("A").table())
        .with_target(InfluxQL(q_restaurant(o)).ref_id(names.REGISTRY_REF).table())
        .transformations(names.join_names("event_id", ["name"]))
        .sort_by([common.TableSortByFieldState().display_name(bi("开始", "Start")).desc(True)])
        .override_by_name("Time", table_time(bi("开始", "Start")))
        .override_by_name("name", names.name_column(link=False))
        .override_by_name(names.KEY, display_name(bi("单位编号", "Restaurant id")))
        .override_by_name(
            "severity",
            [
                *display_name(bi("严重度", "Severity")),
                dm.DynamicConfigValue(id_val="mappings", value=severity_mappings()),
                dm.DynamicConfigValue(id_val="thresholds", value=thresholds(*SEVERITY_THRESHOLDS).build()),
                dm.DynamicConfigValue(id_val="custom.cellOptions", value={"type": "color-background"}),
            ],
        )
        .override_by_name("kind", display_name(bi("类型", "Kind")))
        .override_by_name("pollutant", display_name(bi("污染物", "Pollutant")))
        .override_by_name("level", display_name(bi("处置级别", "Level")))
        .override_by_name("state", display_name(bi("状态", "State")))
        .override_by_name(
            "peak_mg_m3",
            [*display_name(bi("峰值", "Peak")), dm.DynamicConfigValue(id_val="unit", value="conmgm3")],
        )
        .override_by_name(
            "limit_mg_m3",
            [*display_name(bi("限值", "Limit")), dm.DynamicConfigValue(id_val="unit", value="conmgm3")],
        )
        .override_by_name(
            "duration_s",
            [*display_name(bi("持续", "Duration")), dm.DynamicConfigValue(id_val="unit", value="s")],
        )
        .override_by_name("event_id", display_name(bi("事件编号", "Event id")))
        .span(12)
        .height(8)
    )
    return d.with_panel(reminders.restaurant_panel(o, RESTAURANT))
