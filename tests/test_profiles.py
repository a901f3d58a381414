"""Limit profiles: packaged values and their sources, size classes, user overrides, registry checks."""

from __future__ import annotations

import pytest

from alerts.profiles import (
    DEFAULT_PROFILE,
    ProfileError,
    Profiles,
    check_registry,
    load_profiles,
)
from ingest.registry import Device, Registry


@pytest.fixture(scope="module")
def profiles() -> Profiles:
    return load_profiles()


def test_packaged_profiles_load(profiles: Profiles) -> None:
    assert set(profiles) == {"gb18483", "db11-1488", "db31-844", "szdbz-254", "db37-597"}
    assert DEFAULT_PROFILE == "gb18483"
    for p in profiles.values():
        assert p.standard and p.title
        assert p.size_classes_source
        for lim in p.limits.values():
            assert lim.source.strip(), f"{p.name}.{lim.pollutant} has no source"


def test_gb18483_values_and_sources(profiles: Profiles) -> None:
    gb = profiles.get("gb18483")
    assert gb.verified
    for size in ("small", "medium", "large"):
        assert gb.limit("oil_fume", size) == 2.0
    assert gb.limit("pm", "small") is None and gb.limit("nmhc", "large") is None
    assert gb.pollutants == ("oil_fume",)
    assert "GB 18483-2001" in gb.limit_source("oil_fume")
    assert dict(gb.purifier_min_efficiency_pct) == {"small": 60.0, "medium": 75.0, "large": 85.0}
    assert "GB 18483-2001" in gb.purifier_efficiency_source


@pytest.mark.parametrize(
    ("heads", "size"), [(1, "small"), (2, "small"), (3, "medium"), (5, "medium"), (6, "large"), (40, "large")]
)
def test_size_classes_by_stove_heads(profiles: Profiles, heads: int, size: str) -> None:
    assert profiles.get("gb18483").size_class(heads) == size
    # the registry's own classification agrees with the profile's table
    assert Device("r", "n", "d", "x", heads).size_class == size


def test_beijing_limits(profiles: Profiles) -> None:
    bj = profiles.get("db11-1488")
    assert bj.standard == "DB11/1488-2018"
    assert bj.limits_for(2) == {"oil_fume": 1.0, "pm": 5.0, "nmhc": 10.0}
    assert "颗粒物" in bj.limit_source("pm") and "非甲烷总烃" in bj.limit_source("nmhc")


def test_shanghai_shenzhen(profiles: Profiles) -> None:
    assert profiles.get("db31-844").standard == "DB31/844-2014"
    assert profiles.get("db31-844").limits_for(7) == {"oil_fume": 1.0}
    assert profiles.get("szdbz-254").standard == "SZDB/Z 254-2017"
    assert profiles.get("szdbz-254").limits_for(1) == {"oil_fume": 1.0}


def test_shandong_is_marked_secondary(profiles: Profiles) -> None:
    sd = profiles.get("db37-597")
    assert sd.verified is False
    assert "official text" in sd.note
    lim = sd.limits["oil_fume"]
    assert lim.verified is False and "secondary" in lim.source
    # limits differ by size class
    vals = [sd.limit("oil_fume", s) for s in ("small", "medium", "large")]
    assert len(set(vals)) == 3 and vals == sorted(vals, reverse=True)


def test_unknown_profile_is_a_clear_error(profiles: Profiles) -> None:
    with pytest.raises(ProfileError, match="unknown profile 'gb-18483'.*known: db11-1488"):
        profiles.get("gb-18483")


def test_for_device_uses_registry_column_else_default(profiles: Profiles) -> None:
    plain = Device("r1", "n", "d", "a", 2)
    bj = Device("r2", "n", "d", "b", 2, profile="db11-1488")
    assert profiles.for_device(plain, "gb18483").name == "gb18483"
    assert profiles.for_device(plain, "db31-844").name == "db31-844"
    assert profiles.for_device(bj, "gb18483").name == "db11-1488"
    with pytest.raises(ProfileError, match="device 'c'"):
        profiles.for_device(Device("r3", "n", "d", "c", 2, profile="nope"), "gb18483")


def test_user_file_adds_and_overrides(tmp_path) -> None:
    f = tmp_path / "my_profiles.toml"
    f.write_text(
        """
[gb18483]
title = "stricter local copy"
standard = "GB 18483-2001 (city rule)"
[gb18483.limits.oil_fume]
all = 1.5
source = "city notice 2026-01"

[city-x]
extends = "db11-1488"
title = "City X"
standard = "X/1-2026"
[city-x.limits.oil_fume]
small = 1.2
medium = 1.0
large = 0.8
source = "X/1-2026 table 1"
verified = false

[gb-plus]
extends = "gb18483"
[gb-plus.limits.nmhc]
all = 20.0
source = "test"
""",
        encoding="utf-8",
    )
    p = load_profiles(f)
    # override replaces the packaged profile
    assert p.get("gb18483").limit("oil_fume", "small") == 1.5
    assert p.get("gb18483").limit_source("oil_fume") == "city notice 2026-01"
    # extends keeps the parent's other limits
    x = p.get("city-x")
    assert x.limits_for(1) == {"oil_fume": 1.2, "pm": 5.0, "nmhc": 10.0}
    assert x.limits_for(9)["oil_fume"] == 0.8
    assert x.limits["oil_fume"].verified is False and x.limits["pm"].verified is True
    # extends resolves against the user's override of gb18483 (same file wins)
    assert p.get("gb-plus").limits_for(3) == {"oil_fume": 1.5, "nmhc": 20.0}
    # packaged profiles not mentioned stay
    assert p.get("db31-844").limit("oil_fume", "large") == 1.0
    # without the packaged profiles, city-x has nothing to extend
    with pytest.raises(ProfileError, match="city-x.*extends unknown profile 'db11-1488'"):
        load_profiles(f, packaged=False)


def test_extends_own_name_starts_from_packaged(tmp_path) -> None:
    f = tmp_path / "p.toml"
    f.write_text(
        '[db11-1488]\nextends = "db11-1488"\n[db11-1488.limits.pm]\nall = 4.0\nsource = "tightened"\n',
        encoding="utf-8",
    )
    bj = load_profiles(f).get("db11-1488")
    assert bj.limits_for(2) == {"oil_fume": 1.0, "pm": 4.0, "nmhc": 10.0}
    assert bj.standard == "DB11/1488-2018"


def test_a_profile_chooses_its_rule_and_correction_period(tmp_path) -> None:
    f = tmp_path / "p.toml"
    f.write_text(
        '[screening]\nextends = "gb18483"\nrule = "consecutive"\ncorrection_days = 3\n'
        '[strict]\nextends = "screening"\nrule = "gb18483"\n',
        encoding="utf-8",
    )
    profiles = load_profiles(f)
    screening, strict = profiles.get("screening"), profiles.get("strict")
    assert (screening.rule, screening.correction_days) == ("consecutive", 3.0)
    assert (strict.rule, strict.correction_days) == ("gb18483", 3.0)  # inherited, then overridden
    assert (profiles.get("gb18483").rule, profiles.get("gb18483").correction_days) == ("", None)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ('[a]\nrule = "fastest"\n', "rule 'fastest' is not one of gb18483, consecutive"),
        ("[a]\ncorrection_days = 0\n", "correction_days"),
        ("[a.limits.oil_fume]\nall = 1.0\n", "source"),
        ('[a.limits.oil_fume]\nall = -1.0\nsource = "s"\n', "positive"),
        ('[a.limits.benzene]\nall = 1.0\nsource = "s"\n', "unknown pollutant"),
        ('[a.limits.oil_fume]\nsmall = 1.0\nsource = "s"\n', "no limit for size class"),
        ("[a]\nlimt = 1\n", "unknown key"),
        ('[a]\nextends = "zzz"\n', "extends unknown"),
        ("[a\n", "a"),
    ],
)
def test_bad_user_file(tmp_path, text: str, message: str) -> None:
    f = tmp_path / "bad.toml"
    f.write_text(text, encoding="utf-8")
    with pytest.raises(ProfileError, match=message):
        load_profiles(f)


def test_missing_user_file(tmp_path) -> None:
    with pytest.raises(ProfileError, match="cannot read"):
        load_profiles(tmp_path / "nope.toml")


def test_check_registry_flags_unknown_profiles(profiles: Profiles) -> None:
    reg = Registry.parse(
        "restaurant_id,name,district,device_id,stove_heads,profile\n"
        "R1,a,D,dev1,2,\n"
        "R2,b,D,dev2,4,db11-1488\n"
        "R3,c,D,dev3,4,DB11-1488\n"
        "R4,d,D,dev4,8,shanghai\n"
    )
    problems = check_registry(profiles, reg, "gb18483")
    assert len(problems) == 2
    assert "dev3" in problems[0] and "'DB11-1488'" in problems[0]
    assert "dev4" in problems[1] and "'shanghai'" in problems[1]
    assert check_registry(profiles, reg, "nope")[0].startswith("default profile 'nope' is unknown")
    ok = Registry.parse("restaurant_id,name,district,device_id,stove_heads,profile\nR1,a,D,dev1,2,db37-597\n")
    assert check_registry(profiles, ok, "gb18483") == []


def test_detector_refuses_registry_with_unknown_profile(profiles: Profiles) -> None:
    from alerts.detection.detector import Detector

    reg = Registry.parse("restaurant_id,name,district,device_id,stove_heads,profile\nR1,a,D,dev1,2,typo\n")
    with pytest.raises(ProfileError, match="dev1.*'typo'"):
        Detector(reg, profiles)
