"""Registry CSV: required columns, clear errors with line numbers, BOM-tolerant, round trip."""

from __future__ import annotations

import pytest

from ingest.registry import Registry, RegistryError

GOOD = (
    "\ufeffrestaurant_id,name,district,device_id,stove_heads,owner_notify,profile\n"
    "R1,老王牛肉面,朝阳区,D1,2,mailto://a@b.c; json://h/x,\n"
    "R2,粤香烧腊,海淀区,D2,7,,db11-1488\n"
)


def test_parse_and_lookup(tmp_path):
    reg = Registry.parse(GOOD)
    assert len(reg) == 2 and "D1" in reg and reg.get("D9") is None
    d1 = reg.get("D1")
    assert d1.name == "老王牛肉面" and d1.stove_heads == 2 and d1.size_class == "small"
    assert d1.notify_urls == ["mailto://a@b.c", "json://h/x"]
    assert reg.get("D2").size_class == "large" and reg.get("D2").profile == "db11-1488"
    p = tmp_path / "r.csv"
    reg.write_csv(p)
    again = Registry.load(p)
    assert [d.device_id for d in again] == ["D1", "D2"] and again.get("D1") == d1


GEO = "restaurant_id,name,district,device_id,stove_heads,lat,lon\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("restaurant_id,name,device_id,stove_heads\nR1,a,D1,2\n", "missing required column"),
        ("restaurant_id,name,district,device_id,stove_heads\nR1,a,x,D1,two\n", ":2: stove_heads"),
        ("restaurant_id,name,district,device_id,stove_heads\nR1,a,x,D1,0\n", "outside 1..200"),
        ("restaurant_id,name,district,device_id,stove_heads\nR1,a,x,,2\n", "empty device_id"),
        ("restaurant_id,name,district,device_id,stove_heads\nR1,a,x,D1,2\nR2,b,y,D1,3\n", "listed twice"),
        (
            f"{GEO}R1,a,x,D1,2,39°55'N,116.44\n",
            ':2: lat "39°55\'N" is not a number \\(WGS-84 decimal degrees',
        ),
        (f"{GEO}R1,a,x,D1,2,39.92,east\n", ":2: lon 'east' is not a number"),
        (f"{GEO}R1,a,x,D1,2,116.44,39.92\n", r":2: lat 116.44 outside -90..90 \(lat and lon swapped\?\)"),
        (f"{GEO}R1,a,x,D1,2,39.92,200\n", ":2: lon 200 outside -180..180"),
        (f"{GEO}R1,a,x,D1,2,nan,116.44\n", ":2: lat nan outside -90..90"),
        (f"{GEO}R1,a,x,D1,2,39.92,\n", r":2: lat '39.92' given without lon \(give both or neither\)"),
        (f"{GEO}R1,a,x,D1,2,,116.44\n", ":2: lon '116.44' given without lat"),
    ],
)
def test_errors_name_the_problem(text, message):
    with pytest.raises(RegistryError, match=message) as info:
        Registry.parse(text)
    assert "\n" not in str(info.value)  # one line, like the registry's other errors


def test_coordinates_are_optional_wgs84_degrees(tmp_path):
    reg = Registry.parse(f"{GEO}R1,老王牛肉面,朝阳区,D1,2,39.9219,116.4432\nR2,b,海淀区,D2,3,,\n")
    assert (reg.get("D1").lat, reg.get("D1").lon) == (39.9219, 116.4432)
    assert (reg.get("D2").lat, reg.get("D2").lon) == (None, None)
    assert Registry.parse(GOOD).get("D1").lat is None  # no lat/lon columns at all
    p = tmp_path / "r.csv"
    reg.write_csv(p)
    assert (
        p.read_text(encoding="utf-8")
        .splitlines()[0]
        .endswith(",lat,lon,dialect,interval_s,fan_on_a,purifier_on_a")
    )
    again = Registry.load(p)
    assert list(again) == list(reg)
    edge = Registry.parse(f"{GEO}R1,a,x,D1,2,-90,180\nR2,b,x,D2,2, 90 , -180 \n")
    assert [(d.lat, d.lon) for d in edge] == [(-90.0, 180.0), (90.0, -180.0)]


def test_missing_file_is_registry_error(tmp_path):
    with pytest.raises(RegistryError, match="cannot read registry"):
        Registry.load(tmp_path / "nope.csv")
