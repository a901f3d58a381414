"""City overview dashboard (uid ``fumewatch-city``) for the bureau's monitoring center.

Panels, all filtered by the ``$district`` multi-value variable (regex form, as Grafana renders it):
- the map (dashboards/citymap.py): every restaurant at its position, coloured by its state now;
- stats "currently": restaurants with an open exceedance, offline devices (each with a ``timeFrom``
  override of ``Options.open_lookback``, since an open event may have started before the dashboard's
  range), open enforcement cases of the case ledger whatever their age, and cases that started in the
  range (dashboards/cases.py);
- every restaurant today: name, compliance, data completeness, open events, ladder level, open cases
  (dashboards/roster.py);
- the enforcement cases (dashboards/cases.py);
- compliance rate by district = compliant valid windows / valid windows (``mean(compliant)`` over the
  valid 10-minute windows of ``fume_window``: compliant is 0/1 and only set on valid windows, so it is
  sum(compliant) / sum(valid) without a division that could divide by zero);
- restaurants in exceedance now with their peak;
- the latest event per restaurant as a table sortable by severity (links to the restaurant dashboard);
- events over time by kind;
- the row 优服务 / Service before penalty (dashboards/reminders.py), over the range: maintenance reminders
  sent, back under, the back-under share (back under / reminders whose outcome is known), went on to
  exceed, still above, pending, and the table of the reminders with the restaurant's name and the outcome;
- the row 数据可信性 / Data integrity (dashboards/integrity.py), over the range: the count of data-integrity
  findings and their table (start, district, restaurant, device, check, minutes).

Maintenance reminders (清洗提醒, ``fume_event`` kind ``maintenance_reminder``, open 0, level "") and
data-integrity findings (数据可信性存疑, kind ``data_integrity``, closed, level "") are not offences: every
panel that counts or lists offences leaves them out (``common.OFFENCES_ONLY``; the panels that select a
kind, exceedance or offline, never see them); the events-over-time chart shows each as a series of its own
(:data:`REMINDER_SERIES`, :data:`INTEGRITY_SERIES`).

Tables show restaurant names from the registry measurement through Grafana joins (dashboards/names.py).
"""

from __future__ import annotations

from grafana_foundation_sdk.builders import bargauge, common, stat, table, timeseries
from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.models import common as cm
from grafana_foundation_sdk.models import dashboard as dm

from dashboards import cases, citymap, integrity, names, reminders, roster
from dashboards.common import (
    CITY_UID,
    COMPLIANCE_THRESHOLDS,
    DISTRICT,
    INTEGRITY_KIND,
    OFFENCES_ONLY,
    REMINDER_KIND,
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
    severity_mappings,
    table_time,
    thresholds,
)
from dashboards.influxql import InfluxQL

TITLE = "城市餐饮油烟监控总览 / City cooking-fume overview"
#: Display name of the reminders' series in the events-over-time chart (its alias is the kind).
REMINDER_SERIES = bi("清洗提醒（非违法）", "Maintenance reminder (not an offence)")
#: Display name of the data-integrity findings' series there (dashboards/integrity.py has their own row).
INTEGRITY_SERIES = bi("数据可信性存疑（待核查）", "Data integrity in doubt (not an offence)")


def q_exceeding_restaurants(o: Options) -> str:
    """How many restaurants have an open exceedance (subquery: one row per restaurant, then count)."""
    e = ident(o.event_measurement)
    return (
        f'SELECT count("open") AS "restaurants" FROM ('
        f'SELECT max("open") AS "open" FROM {e} WHERE "kind" = \'exceedance\' AND "open" = 1 '
        f'AND {DISTRICT} AND $timeFilter GROUP BY "restaurant_id") WHERE $timeFilter'
    )


def q_offline_devices(o: Options) -> str:
    """How many devices have an open offline event (subquery: one row per device, then count)."""
    e = ident(o.event_measurement)
    return (
        f'SELECT count("open") AS "devices" FROM ('
        f'SELECT max("open") AS "open" FROM {e} WHERE "kind" = \'offline\' AND "open" = 1 '
        f'AND {DISTRICT} AND $timeFilter GROUP BY "device_id") WHERE $timeFilter'
    )


def q_compliance_by_district(o: Options) -> str:
    w = ident(o.window_measurement)
    return (
        f'SELECT mean("compliant") AS "compliance" FROM {w} '
        f'WHERE "valid" = 1 AND {DISTRICT} AND $timeFilter GROUP BY "district"'
    )


def q_exceeding_peaks(o: Options) -> str:
    e = ident(o.event_measurement)
    return (
        f'SELECT max("peak_mg_m3") AS "peak" FROM {e} '
        f'WHERE "kind" = \'exceedance\' AND "open" = 1 AND {DISTRICT} AND $timeFilter '
        f'GROUP BY "restaurant_id"'
    )


def q_latest_event(o: Options) -> str:
    """The latest event of each restaurant in the range (selector last() carries the point's other fields).

    Maintenance reminders and data-integrity findings are left out (not offences): one after an offence
    would hide the offence (last() takes the latest point), and the table is sorted by severity on the
    enforcement ladder."""
    e = ident(o.event_measurement)
    return (
        f'SELECT last("severity") AS "severity", "kind", "pollutant", "level", "state", "peak_mg_m3", '
        f'"limit_mg_m3", "event_id" FROM {e} WHERE {OFFENCES_ONLY} AND {DISTRICT} AND $timeFilter '
        f'GROUP BY "restaurant_id", "district"'
    )


def q_events_over_time(o: Options) -> str:
    """Events started per interval by kind; maintenance reminders and data-integrity findings are each a
    series of their own (:data:`REMINDER_SERIES`, :data:`INTEGRITY_SERIES`: not offences)."""
    e = ident(o.event_measurement)
    return (
        f'SELECT count("severity") AS "events" FROM {e} WHERE {DISTRICT} AND $timeFilter '
        f'GROUP BY time($__interval), "kind" fill(0)'
    )


def _count_stat(o: Options, title: str, description: str, query: str, color: str, *, now: bool) -> stat.Panel:
    p = (
        stat.Panel()
        .title(title)
        .description(description)
        .datasource(ds(o))
        .with_target(InfluxQL(query).ref_id("A"))
        .unit("none")
        .decimals(0)
        .no_value("0")
        .thresholds(common_thresholds(color))
        .color_mode(cm.BigValueColorMode.BACKGROUND)
        .graph_mode(cm.BigValueGraphMode.NONE)
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .span(6)
        .height(4)
    )
    if now:
        p = p.time_from(o.open_lookback)
    return p


def common_thresholds(color: str):
    return thresholds((None, "green"), (1, color))


def build(opts: Options | None = None) -> db.Dashboard:
    o = opts or Options()
    src = ds(o)
    restaurant_link = (
        f"/d/{RESTAURANT_UID}/?var-restaurant=${{__value.raw}}&var-district=${{__data.fields.district}}"
        "&${__url_time_range}"
    )
    d = (
        db.Dashboard(TITLE)
        .uid(CITY_UID)
        .description(
            "餐饮油烟在线监控：各区达标率、当前超标、离线设备与执法案件。"
            " / Online cooking-fume monitoring: compliance by district, current exceedances, offline devices"
            " and enforcement cases."
        )
        .tags(TAGS)
        .timezone(o.timezone)
        .time(o.city_time_from, "now")
        .refresh(o.refresh)
        .tooltip(dm.DashboardCursorSync.CROSSHAIR)
        .with_variable(datasource_variable(o))
        .with_variable(district_variable(o))
        .link(
            db.DashboardLink(bi("餐饮单位", "Restaurant"))
            .type(dm.DashboardLinkType.DASHBOARDS)
            .tags(["fumewatch"])
            .as_dropdown(False)
            .include_vars(False)
            .keep_time(True)
        )
    )
    d = d.with_panel(citymap.panel(o))
    d = d.with_panel(
        _count_stat(
            o,
            bi("超标餐饮单位（当前）", "Restaurants in exceedance now"),
            "有未结束超标事件的餐饮单位数。 / Restaurants with an open exceedance event.",
            q_exceeding_restaurants(o),
            "red",
            now=True,
        )
    )
    d = d.with_panel(
        _count_stat(
            o,
            bi("离线设备（当前）", "Offline devices now"),
            "有未结束离线事件的监测设备数。 / Monitors with an open offline event.",
            q_offline_devices(o),
            "orange",
            now=True,
        )
    )
    d = d.with_panel(
        _count_stat(
            o,
            bi("案件（未结案）", "Open cases"),
            "案件台账中未结案的案件（不论何时立案），与 `fumewatch cases` 一致。"
            " / Cases of the case ledger that are not closed, whenever they started (as `fumewatch cases`).",
            cases.q_open_cases(o),
            "red",
            now=False,
        )
    )
    d = d.with_panel(
        _count_stat(
            o,
            bi("案件（时段内立案）", "Cases opened in range"),
            "案件台账中时段内开始的案件。 / Cases of the case ledger that started in the time range.",
            cases.q_cases_in_range(o),
            "red",
            now=False,
        )
    )
    d = d.with_panel(roster.panel(o))
    d = d.with_panel(cases.panel(o))
    d = d.with_panel(
        bargauge.Panel()
        .title(bi("各区达标率", "Compliance rate by district"))
        .description(
            "达标的有效10分钟窗口 / 有效窗口（GB 18483-2001 按10分钟均值判定）。"
            " / Compliant valid 10-minute windows / valid windows (GB 18483-2001 judges 10-minute means)."
        )
        .datasource(src)
        .with_target(InfluxQL(q_compliance_by_district(o)).ref_id("A").alias("$tag_district"))
        .unit("percentunit")
        .min(0)
        .max(1)
        .decimals(1)
        .thresholds(thresholds(*COMPLIANCE_THRESHOLDS))
        .display_mode(cm.BarGaugeDisplayMode.GRADIENT)
        .orientation(cm.VizOrientation.HORIZONTAL)
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .span(12)
        .height(8)
    )
    d = d.with_panel(
        bargauge.Panel()
        .title(bi("当前超标餐饮单位（峰值）", "Restaurants in exceedance now (peak)"))
        .description(
            "未结束超标事件的折算峰值浓度。 / Peak reference-converted concentration of open exceedances."
        )
        .datasource(src)
        .time_from(o.open_lookback)
        .with_target(InfluxQL(q_exceeding_peaks(o)).ref_id("A").alias("$tag_restaurant_id"))
        .unit("conmgm3")
        .decimals(2)
        .thresholds(thresholds((None, "orange"), (2.0, "red")))
        .display_mode(cm.BarGaugeDisplayMode.BASIC)
        .orientation(cm.VizOrientation.HORIZONTAL)
        .reduce_options(common.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .span(12)
        .height(8)
    )
    sev = bi("严重度", "Severity")
    d = d.with_panel(
        table.Panel()
        .title(bi("餐饮单位最新事件（按严重度）", "Latest event per restaurant (by severity)"))
        .description(
            "每个餐饮单位时段内最近一次事件；点击名称或编号打开该单位仪表板。"
            " / Each restaurant's latest event in the range; click its name or id for its dashboard."
        )
        .datasource(src)
        .with_target(InfluxQL(q_latest_event(o)).ref_id("A").table())
        .with_target(InfluxQL(names.q_restaurants(o)).ref_id(names.REGISTRY_REF).table())
        .transformations(names.join_names("event_id", ["name", "restaurant_id"]))
        .sort_by([common.TableSortByFieldState().display_name(sev).desc(True)])
        .override_by_name("Time", table_time(bi("开始", "Start")))
        .override_by_name("name", names.name_column())
        .override_by_name(
            "restaurant_id",
            [
                *display_name(bi("单位编号", "Restaurant id")),
                dm.DynamicConfigValue(
                    id_val="links",
                    value=[
                        {"title": bi("打开单位仪表板", "Open restaurant dashboard"), "url": restaurant_link}
                    ],
                ),
            ],
        )
        .override_by_name("district", display_name(bi("区", "District")))
        .override_by_name("kind", display_name(bi("类型", "Kind")))
        .override_by_name("pollutant", display_name(bi("污染物", "Pollutant")))
        .override_by_name("level", display_name(bi("处置级别", "Level")))
        .override_by_name("state", display_name(bi("状态", "State")))
        .override_by_name(
            "severity",
            [
                *display_name(sev),
                dm.DynamicConfigValue(id_val="mappings", value=severity_mappings()),
                dm.DynamicConfigValue(id_val="thresholds", value=thresholds(*SEVERITY_THRESHOLDS).build()),
                dm.DynamicConfigValue(id_val="custom.cellOptions", value={"type": "color-background"}),
            ],
        )
        .override_by_name(
            "peak_mg_m3",
            [*display_name(bi("峰值", "Peak")), dm.DynamicConfigValue(id_val="unit", value="conmgm3")],
        )
        .override_by_name(
            "limit_mg_m3",
            [*display_name(bi("限值", "Limit")), dm.DynamicConfigValue(id_val="unit", value="conmgm3")],
        )
        .override_by_name("event_id", display_name(bi("事件编号", "Event id")))
        .span(24)
        .height(10)
    )
    d = d.with_panel(
        timeseries.Panel()
        .title(bi("事件趋势（按类型）", "Events over time (by kind)"))
        .description(
            "每个时间段开始的事件数；清洗提醒与数据可信性存疑各自单列（非违法，不计入处置阶梯）。"
            " / Events that started in each interval; maintenance reminders and data-integrity findings are"
            " each a series of their own (not offences, never on the enforcement ladder)."
        )
        .datasource(src)
        .interval("1h")
        .with_target(InfluxQL(q_events_over_time(o)).ref_id("A").alias("$tag_kind"))
        .override_by_name(
            REMINDER_KIND,
            [
                *display_name(REMINDER_SERIES),
                dm.DynamicConfigValue(id_val="color", value={"mode": "fixed", "fixedColor": "blue"}),
            ],
        )
        .override_by_name(
            INTEGRITY_KIND,
            [
                *display_name(INTEGRITY_SERIES),
                dm.DynamicConfigValue(id_val="color", value={"mode": "fixed", "fixedColor": "purple"}),
            ],
        )
        .unit("none")
        .decimals(0)
        .draw_style(cm.GraphDrawStyle.BARS)
        .fill_opacity(80)
        .stacking(common.StackingConfig().mode(cm.StackingMode.NORMAL))
        .legend(
            common.VizLegendOptions()
            .display_mode(cm.LegendDisplayMode.LIST)
            .placement(cm.LegendPlacement.BOTTOM)
            .show_legend(True)
        )
        .span(24)
        .height(8)
    )
    return integrity.add_row(reminders.add_row(d, o), o)
