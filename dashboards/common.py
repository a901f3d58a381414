"""Pieces both dashboards share: options, the datasource reference, template variables, field helpers."""

from __future__ import annotations

from dataclasses import dataclass

from grafana_foundation_sdk.builders import dashboard as db
from grafana_foundation_sdk.models import dashboard as dm

from dashboards.influxql import DATASOURCE_TYPE


@dataclass(frozen=True)
class Options:
    """Every knob of the generated dashboards, with its default and why."""

    #: uid of the InfluxDB datasource that dashboards/provisioning.py provisions (InfluxQL mode).
    datasource_uid: str = "fumewatch-influxdb"
    datasource_name: str = "FumeWatch InfluxDB"
    #: The dashboards' time zone (Grafana's dashboard ``timezone``: axes, time pickers and table times are
    #: shown in it whatever the browser's zone) and the zone of the daily buckets. ``fumewatch dashboards``
    #: passes ``--timezone`` or else the settings' ``display_tz`` (Asia/Shanghai by default).
    timezone: str = "Asia/Shanghai"
    #: "Currently open" panels look this far back: an event that is still open may have started before
    #: the dashboard's time range (a panel time override, shown on the panel as "Last 30 days").
    open_lookback: str = "30d"
    #: Minimum GROUP BY time($__interval): the monitors report once a minute (HJ 212 minute data).
    min_interval: str = "1m"
    #: Measurements: readings (ingest/store/influx.py), windows, events, maintenance reminders, case states
    #: and the registry (alerts/influx_sink.py; the last two copied by alerts/case_sync.py).
    reading_measurement: str = "fume_reading"
    window_measurement: str = "fume_window"
    event_measurement: str = "fume_event"
    #: One point per maintenance reminder (清洗提醒), rewritten in place as its outcome becomes known
    #: (dashboards/reminders.py); each reminder is also a ``fume_event`` point of kind ``REMINDER_KIND``.
    reminder_measurement: str = "fume_reminder"
    case_measurement: str = "fume_case"
    restaurant_measurement: str = "fume_restaurant"
    #: The registry is rewritten at each start of the alerts service and every 6 hours; its queries take
    #: each restaurant's last point this far back (so names survive an alerts service down for weeks).
    registry_lookback: str = "90d"
    #: Open cases are counted whatever their age (an inspection can take months): points this far back,
    #: i.e. all of them. The InfluxDB retention must keep case points at least as long.
    case_lookback: str = "3650d"
    #: The enforcement ladder counts episodes over 365 days ([notify] lookback_days): the "ladder level"
    #: of a restaurant is its latest ladder step (education / warning / enforcement) this far back.
    ladder_lookback: str = "365d"
    #: The map's "latest reference concentration": the last reading of this period (the map's time range).
    latest_lookback: str = "1h"
    #: Data completeness = oil-fume readings received / expected at one every expected_interval_s
    #: ([alerts] expected_interval_s: HJ 212 minute data), counted per 10-minute bucket.
    expected_interval_s: int = 60
    #: The map: fit to the restaurants' markers; the centre and zoom below only where nothing is placed
    #: (Beijing's Dongcheng by default). Marker size in pixels, for a big screen.
    map_center_lat: float = 39.9288
    map_center_lon: float = 116.4160
    map_zoom: int = 11
    map_marker_size: int = 9
    #: Default time ranges.
    city_time_from: str = "now-24h"
    restaurant_time_from: str = "now-7d"
    refresh: str = "1m"


DEFAULT_OPTIONS = Options()

#: Dashboard uids (stable: `fumewatch dashboards push` overwrites the same uid, Grafana keeps versions).
CITY_UID = "fumewatch-city"
RESTAURANT_UID = "fumewatch-restaurant"
TAGS = ["fumewatch", "油烟 / cooking fume"]

#: Regex-form "All": Grafana puts a custom all value into the query verbatim -> /^.*$/ matches every value.
ALL_VALUE = ".*"


def ds(opts: Options) -> dm.DataSourceRef:
    """Panels and variables point at the ``$datasource`` variable (default: the provisioned uid)."""
    return dm.DataSourceRef(type_val=DATASOURCE_TYPE, uid="${datasource}")


def bi(zh: str, en: str) -> str:
    """A bilingual label, "中文 / English"."""
    return f"{zh} / {en}"


def ident(name: str) -> str:
    """An InfluxQL identifier, double-quoted."""
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def since(duration: str) -> str:
    """A fixed lookback from now (``time > now() - 30d``) for panels that show "now" whatever the range."""
    return f"time > now() - {duration}"


#: The ``$district`` filter of the city dashboard's queries (regex form, as Grafana renders it).
DISTRICT = f"{ident('district')} =~ /^$district$/"

#: The ``fume_event`` kind of a maintenance reminder (清洗提醒): a friendly reminder to the owner before
#: any offence, written with open 0 and level "" (never on the enforcement ladder).
REMINDER_KIND = "maintenance_reminder"
#: The ``fume_event`` kind of a data-integrity finding (数据可信性存疑, docs/integrity.md; rule = the check):
#: a screening finding for inspectors, written closed with level "" (never on the enforcement ladder).
INTEGRITY_KIND = "data_integrity"
#: The ``fume_event`` kinds that are not offences (each shown on its own: dashboards/reminders.py,
#: dashboards/integrity.py).
NOT_OFFENCE_KINDS = (REMINDER_KIND, INTEGRITY_KIND)
#: The filter of every ``fume_event`` query that counts or lists offences: it leaves out the kinds that
#: are not offences (one ``"kind" != '...'`` per kind, joined by AND: use it with AND).
OFFENCES_ONLY = " AND ".join(f"{ident('kind')} != '{k}'" for k in NOT_OFFENCE_KINDS)


# ---------------------------------------------------------------------------------------- variables
def datasource_variable(opts: Options) -> db.DatasourceVariable:
    return (
        db.DatasourceVariable("datasource")
        .label(bi("数据源", "Data source"))
        .type(DATASOURCE_TYPE)
        .current(dm.VariableOption(text=opts.datasource_name, value=opts.datasource_uid, selected=True))
    )


def district_variable(opts: Options) -> db.QueryVariable:
    return (
        db.QueryVariable("district")
        .label(bi("区", "District"))
        .datasource(ds(opts))
        .query(f"SHOW TAG VALUES FROM {ident(opts.reading_measurement)} WITH KEY = {ident('district')}")
        .multi(True)
        .include_all(True)
        .all_value(ALL_VALUE)
        .current(dm.VariableOption(text=["All"], value=["$__all"], selected=True))
        .refresh(dm.VariableRefresh.ON_DASHBOARD_LOAD)
        .sort(dm.VariableSort.ALPHABETICAL_ASC)
    )


def restaurant_variable(opts: Options) -> db.QueryVariable:
    return (
        db.QueryVariable("restaurant")
        .label(bi("餐饮单位", "Restaurant"))
        .datasource(ds(opts))
        .query(
            f"SHOW TAG VALUES FROM {ident(opts.reading_measurement)} WITH KEY = {ident('restaurant_id')} "
            f"WHERE {ident('district')} =~ /^$district$/"
        )
        .multi(False)
        .include_all(False)
        .refresh(dm.VariableRefresh.ON_DASHBOARD_LOAD)
        .sort(dm.VariableSort.ALPHABETICAL_ASC)
    )


# ---------------------------------------------------------------------------------------- fields
def thresholds(*steps: tuple[float | None, str]) -> db.ThresholdsConfig:
    return (
        db.ThresholdsConfig()
        .mode(dm.ThresholdsMode.ABSOLUTE)
        .steps([dm.Threshold(value=v, color=c) for v, c in steps])
    )


#: Compliance rate 0..1: red below 90 %, orange below 98 %, green above.
COMPLIANCE_THRESHOLDS = ((None, "red"), (0.9, "orange"), (0.98, "green"))
#: Event severity (alerts/influx_sink.py): 0 other kinds, 1 education, 2 warning, 3 enforcement.
SEVERITY_THRESHOLDS = ((None, "blue"), (1, "yellow"), (2, "orange"), (3, "red"))


def display_name(name: str) -> list[dm.DynamicConfigValue]:
    return [dm.DynamicConfigValue(id_val="displayName", value=name)]


#: Unit of the time column of table panels: Grafana's custom date unit ``time:<moment.js format>``, which
#: it formats in the dashboard's time zone (``Options.timezone``, never the browser's), with the offset:
#: 2026-11-20T10:00:00+08:00, the form of the ``fumewatch`` listings.
TABLE_TIME_UNIT = "time:YYYY-MM-DDTHH:mm:ssZ"


def table_time(name: str) -> list[dm.DynamicConfigValue]:
    """The overrides of a table's time column: its heading and :data:`TABLE_TIME_UNIT`."""
    return [*display_name(name), dm.DynamicConfigValue(id_val="unit", value=TABLE_TIME_UNIT)]


def on_off_mappings() -> list[dm.ValueMapping]:
    return [
        dm.ValueMap(
            options={
                "0": dm.ValueMappingResult(text=bi("停", "off"), color="red", index=0),
                "1": dm.ValueMappingResult(text=bi("开", "on"), color="green", index=1),
            }
        )
    ]


def severity_mappings() -> list[dm.ValueMapping]:
    return [
        dm.ValueMap(
            options={
                "3": dm.ValueMappingResult(text=bi("3 执法", "3 enforcement"), color="red", index=0),
                "2": dm.ValueMappingResult(text=bi("2 告诫", "2 warning"), color="orange", index=1),
                "1": dm.ValueMappingResult(text=bi("1 劝导", "1 education"), color="yellow", index=2),
                "0": dm.ValueMappingResult(text=bi("0 其他", "0 other"), color="blue", index=3),
            }
        )
    ]


def grid(w: int, h: int) -> dm.GridPos:
    return dm.GridPos(w=w, h=h)
