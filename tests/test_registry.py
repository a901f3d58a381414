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


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("restaurant_id,name,device_id,stove_heads\nR1,a,D1,2\n", "missing required column"),
        ("restaurant_id,name,district,device_id,stove_heads\nR1,a,x,D1,two\n", ":2: stove_heads"),
        ("restaurant_id,name,district,device_id,stove_heads\nR1,a,x,D1,0\n", "outside 1..200"),
        ("restaurant_id,name,district,device_id,stove_heads\nR1,a,x,,2\n", "empty device_id"),
        ("restaurant_id,name,district,device_id,stove_heads\nR1,a,x,D1,2\nR2,b,y,D1,3\n", "listed twice"),
    ],
)
def test_errors_name_the_problem(text, message):
    with pytest.raises(RegistryError, match=message):
        Registry.parse(text)


def test_missing_file_is_registry_error(tmp_path):
    with pytest.raises(RegistryError, match="cannot read registry"):
        Registry.load(tmp_path / "nope.csv")
