"""``fume_event`` points as alerts/influx_sink.py writes them (the dashboards read them, tests/test_dashboards.py)."""

from __future__ import annotations

from alerts.influx_sink import event_line
from alerts.model import DATA_INTEGRITY, Event


def test_event_line_of_a_data_integrity_finding_carries_its_check():
    e = Event(
        event_id="integrity:suspect_zero:DEV-1:1795600000000",
        kind=DATA_INTEGRITY,
        restaurant_id="R1",
        device_id="DEV-1",
        district="朝阳区",
        start_ms=1_795_601_800_000,
        end_ms=1_795_604_200_000,
        pollutant="oil_fume",
        state="closed",
        rule="suspect_zero",
        judgement={"check": "suspect_zero", "minutes": 40.0},
    )
    assert event_line(e) == (
        "fume_event,device_id=DEV-1,district=朝阳区,kind=data_integrity,pollutant=oil_fume,restaurant_id=R1 "
        'event_id="integrity:suspect_zero:DEV-1:1795600000000",state="closed",profile="",level="",open=0i,'
        'end_ms=1795604200000i,duration_s=2400i,severity=0i,rule="suspect_zero" 1795601800000'
    )


def test_event_line_escapes_the_rule_and_leaves_it_out_when_unset():
    base = dict(
        event_id="E1", kind="exceedance", restaurant_id="R1", device_id="D1", district="X", start_ms=0
    )
    odd = event_line(Event(**base, rule='a"b\\c'))
    assert ',rule="a\\"b\\\\c"' in odd
    assert "rule=" not in event_line(Event(**base))  # an event from before rules were recorded
    assert ',rule="gb18483"' in event_line(Event(**base, rule="gb18483", level="education"))
