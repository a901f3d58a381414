"""Limit profiles: which emission limits apply to which kitchen, every value with its source.

The packaged ``alerts/profiles.toml`` holds the national standard (``gb18483``, the default) and local
standards (Beijing, Shanghai, Shenzhen, Shandong). A user file with the same layout may add profiles or
replace packaged ones. A restaurant's profile is the registry ``profile`` column, else the configured
default; :func:`check_registry` lists registry rows naming a profile that does not exist.

Public surface: :func:`load_profiles`, :class:`Profiles`, :class:`Profile`, :class:`Limit`,
:class:`SizeClass`, :func:`check_registry`, :class:`ProfileError`, :data:`POLLUTANTS`.
"""

from __future__ import annotations

import math
import tomllib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from alerts.rules import EXCEEDANCE_RULES
from ingest.registry import Device, Registry

#: Pollutants a profile may limit, in judging order. ``oil_fume`` is judged on the GB 18483-2001
#: reference concentration (``Reading.oil_fume_ref_mg_m3``), ``pm`` and ``nmhc`` as measured.
POLLUTANTS = ("oil_fume", "pm", "nmhc")

#: Default profile name (the national standard).
DEFAULT_PROFILE = "gb18483"

_ALL = "all"


class ProfileError(ValueError):
    """A profiles file is malformed, or a profile name is unknown. The message says which and where."""


@dataclass(frozen=True, slots=True)
class SizeClass:
    """Kitchen size class by reference stove heads (基准灶头数), ``min_heads <= n <= max_heads``."""

    name: str
    min_heads: int
    max_heads: int | None = None  # None: no upper bound

    def contains(self, stove_heads: int) -> bool:
        return stove_heads >= self.min_heads and (self.max_heads is None or stove_heads <= self.max_heads)


#: GB 18483-2001 表1 size classes, used when a profile does not define its own.
GB18483_SIZE_CLASSES = (
    SizeClass("small", 1, 2),
    SizeClass("medium", 3, 5),
    SizeClass("large", 6, None),
)
GB18483_SIZE_SOURCE = "GB 18483-2001 表1 饮食业单位的规模划分 (基准灶头数)"


@dataclass(frozen=True, slots=True)
class Limit:
    """Maximum allowed concentration of one pollutant, mg/m3, for all size classes or per class."""

    pollutant: str
    values_mg_m3: Mapping[str, float]  # size class -> limit; key "all" applies to every class
    source: str
    verified: bool = True
    note: str = ""

    def for_size(self, size_class: str | None) -> float | None:
        if size_class is not None and size_class in self.values_mg_m3:
            return self.values_mg_m3[size_class]
        return self.values_mg_m3.get(_ALL)


@dataclass(frozen=True, slots=True)
class Profile:
    """One limit profile (a standard). Immutable."""

    name: str
    title: str = ""
    standard: str = ""
    verified: bool = True
    note: str = ""
    size_classes: tuple[SizeClass, ...] = GB18483_SIZE_CLASSES
    size_classes_source: str = GB18483_SIZE_SOURCE
    limits: Mapping[str, Limit] = field(default_factory=dict)
    purifier_min_efficiency_pct: Mapping[str, float] = field(default_factory=dict)
    purifier_efficiency_source: str = ""
    #: Exceedance judgement rule (:data:`alerts.rules.EXCEEDANCE_RULES`); "" = ``[alerts] rule``.
    rule: str = ""
    #: Correction period of each ladder step, days; None = ``[alerts] correction_days``.
    correction_days: float | None = None
    #: Maintenance reminders at this share of the limit; None = ``[maintenance] share_of_limit``.
    maintenance_share_of_limit: float | None = None

    def size_class(self, stove_heads: int) -> str:
        """The profile's size class for a kitchen with ``stove_heads`` reference stove heads."""
        for sc in self.size_classes:
            if sc.contains(stove_heads):
                return sc.name
        raise ProfileError(f"profile {self.name!r}: no size class for {stove_heads} stove heads")

    def limit(self, pollutant: str, size_class: str | None) -> float | None:
        """The limit in mg/m3 for ``pollutant`` and ``size_class``, or None when the profile sets none."""
        lim = self.limits.get(pollutant)
        return None if lim is None else lim.for_size(size_class)

    def limit_source(self, pollutant: str) -> str:
        lim = self.limits.get(pollutant)
        return "" if lim is None else lim.source

    @property
    def pollutants(self) -> tuple[str, ...]:
        """Pollutants this profile limits, in :data:`POLLUTANTS` order."""
        return tuple(p for p in POLLUTANTS if p in self.limits)

    def limits_for(self, stove_heads: int) -> dict[str, float]:
        """``{pollutant: limit}`` for a kitchen of ``stove_heads``, only pollutants with a limit."""
        sc = self.size_class(stove_heads)
        out = {}
        for p in self.pollutants:
            v = self.limit(p, sc)
            if v is not None:
                out[p] = v
        return out


class Profiles(Mapping[str, Profile]):
    """Profiles by name (a read-only mapping)."""

    def __init__(self, profiles: Mapping[str, Profile]) -> None:
        self._profiles = dict(profiles)

    def __getitem__(self, name: str) -> Profile:
        return self._profiles[name]

    def __iter__(self) -> Iterator[str]:
        return iter(self._profiles)

    def __len__(self) -> int:
        return len(self._profiles)

    def get(self, name: str) -> Profile:  # type: ignore[override]
        """The profile ``name``; raises :class:`ProfileError` naming the known profiles if unknown.

        (Unlike ``dict.get`` a missing name is an error: a typo in a profile must never silently fall
        back to another limit.)
        """
        try:
            return self._profiles[name]
        except KeyError:
            raise ProfileError(
                f"unknown profile {name!r}; known: {', '.join(sorted(self._profiles))}"
            ) from None

    def for_device(self, device: Device, default: str = DEFAULT_PROFILE) -> Profile:
        """The device's profile: the registry ``profile`` column, else ``default``."""
        name = device.profile.strip() or default
        try:
            return self.get(name)
        except ProfileError as exc:
            raise ProfileError(
                f"device {device.device_id!r} (restaurant {device.restaurant_id!r}): {exc}"
            ) from None


def check_registry(profiles: Profiles, registry: Registry, default: str | None = None) -> list[str]:
    """Problems that would stop the detector: unknown profile names and stove heads outside every class.

    Returns one human-readable line per problem (empty list: the registry is usable).
    """
    problems: list[str] = []
    known = ", ".join(sorted(profiles))
    if default is not None and default not in profiles:
        problems.append(f"default profile {default!r} is unknown; known: {known}")
    for d in registry:
        name = d.profile.strip() or default
        if name is None:
            continue
        if name not in profiles:
            if d.profile.strip():
                problems.append(
                    f"device {d.device_id!r} (restaurant {d.restaurant_id!r}): unknown profile {name!r}; "
                    f"known: {known}"
                )
            continue
        try:
            profiles[name].size_class(d.stove_heads)
        except ProfileError as exc:
            problems.append(f"device {d.device_id!r}: {exc}")
    return problems


def load_profiles(path: str | Path | None = None, *, packaged: bool = True) -> Profiles:
    """Load the packaged profiles, then (if ``path`` is given) the user file on top.

    A user profile replaces the packaged profile of the same name (or extends one with ``extends``).
    ``packaged=False`` loads only the user file.
    """
    layers: list[dict[str, dict]] = []
    if packaged:
        text = resources.files("alerts").joinpath("profiles.toml").read_text(encoding="utf-8")
        layers.append(_parse_toml(text, "alerts/profiles.toml"))
    if path is not None:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8-sig")
        except OSError as exc:
            raise ProfileError(f"cannot read profiles file {p}: {exc.strerror}") from exc
        layers.append(_parse_toml(text, str(p)))
    names = dict.fromkeys(n for layer in layers for n in layer)
    built = {name: _build(name, layers, len(layers), ()) for name in names}
    if not built:
        raise ProfileError("no profiles loaded")
    return Profiles(built)


def _parse_toml(text: str, source: str) -> dict[str, dict]:
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{source}: {exc}") from exc
    out = {}
    for name, body in data.items():
        if not isinstance(body, dict):
            raise ProfileError(f"{source}: top-level key {name!r} must be a profile table")
        out[name] = dict(body, _file=source)
    return out


def _lookup(name: str, layers: list[dict[str, dict]], below: int) -> tuple[dict, int] | None:
    """The topmost definition of ``name`` in ``layers[:below]`` and its layer index."""
    for i in range(below - 1, -1, -1):
        if name in layers[i]:
            return layers[i][name], i
    return None


def _build(
    name: str, layers: list[dict[str, dict]], below: int, seen: tuple[tuple[str, int], ...]
) -> Profile:
    found = _lookup(name, layers, below)
    if found is None:
        raise ProfileError(f"unknown profile {name!r}")
    body, level = found
    if (name, level) in seen:
        chain = " -> ".join(n for n, _ in (*seen, (name, level)))
        raise ProfileError(f"profile {name!r}: circular extends ({chain})")
    where = f"{body.get('_file', 'profiles')}: profile {name!r}"
    known_keys = {
        "title",
        "standard",
        "verified",
        "note",
        "size_classes",
        "limits",
        "purifier_min_efficiency_pct",
        "extends",
        "rule",
        "correction_days",
        "maintenance_share_of_limit",
        "_file",
    }
    unknown = set(body) - known_keys
    if unknown:
        raise ProfileError(f"{where}: unknown key(s) {', '.join(sorted(unknown))}")
    base: Profile | None = None
    if "extends" in body:
        parent = body["extends"]
        # extends = its own name: start from the definition below (the packaged profile of that name)
        parent_below = level if parent == name else len(layers)
        if _lookup(parent, layers, parent_below) is None:
            raise ProfileError(f"{where}: extends unknown profile {parent!r}")
        base = _build(parent, layers, parent_below, (*seen, (name, level)))

    verified = body.get("verified", base.verified if base else True)
    if not isinstance(verified, bool):
        raise ProfileError(f"{where}: verified must be true or false")

    if "size_classes" in body:
        size_classes, size_source = _size_classes(body["size_classes"], where)
    elif base is not None:
        size_classes, size_source = base.size_classes, base.size_classes_source
    else:
        size_classes, size_source = GB18483_SIZE_CLASSES, GB18483_SIZE_SOURCE
    class_names = {sc.name for sc in size_classes}

    limits: dict[str, Limit] = dict(base.limits) if base else {}
    lim_tab = body.get("limits", {})
    if not isinstance(lim_tab, dict):
        raise ProfileError(f"{where}: limits must be a table")
    for pollutant, spec in lim_tab.items():
        limits[pollutant] = _limit(pollutant, spec, class_names, verified, f"{where} limits.{pollutant}")

    eff: Mapping[str, float] = base.purifier_min_efficiency_pct if base else {}
    eff_source = base.purifier_efficiency_source if base else ""
    if "purifier_min_efficiency_pct" in body:
        tab = dict(body["purifier_min_efficiency_pct"])
        eff_source = _source(tab, f"{where} purifier_min_efficiency_pct")
        eff = {}
        for k, v in tab.items():
            if k not in class_names:
                raise ProfileError(f"{where} purifier_min_efficiency_pct: unknown size class {k!r}")
            eff[k] = _number(v, f"{where} purifier_min_efficiency_pct.{k}", upper=100.0)

    rule_name = body.get("rule", base.rule if base else "")
    if rule_name not in ("", *EXCEEDANCE_RULES):
        raise ProfileError(f"{where}: rule {rule_name!r} is not one of {', '.join(EXCEEDANCE_RULES)}")
    correction = body.get("correction_days", base.correction_days if base else None)
    if correction is not None:
        correction = _number(correction, f"{where} correction_days", upper=365.0)
    share = body.get("maintenance_share_of_limit", base.maintenance_share_of_limit if base else None)
    if share is not None:
        share = _number(share, f"{where} maintenance_share_of_limit", upper=0.99)

    return Profile(
        name=name,
        title=str(body.get("title", base.title if base else "")),
        standard=str(body.get("standard", base.standard if base else "")),
        verified=verified,
        note=str(body.get("note", base.note if base else "")),
        size_classes=size_classes,
        size_classes_source=size_source,
        limits=limits,
        purifier_min_efficiency_pct=eff,
        purifier_efficiency_source=eff_source,
        rule=rule_name,
        correction_days=correction,
        maintenance_share_of_limit=share,
    )


def _source(tab: dict, where: str) -> str:
    src = tab.pop("source", None)
    if not isinstance(src, str) or not src.strip():
        raise ProfileError(f"{where}: every value needs a non-empty 'source' string")
    return src


def _number(v: Any, where: str, upper: float | None = None) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v) or v <= 0:
        raise ProfileError(f"{where}: {v!r} is not a positive number")
    if upper is not None and v > upper:
        raise ProfileError(f"{where}: {v!r} is above {upper}")
    return float(v)


def _size_classes(tab: Any, where: str) -> tuple[tuple[SizeClass, ...], str]:
    if not isinstance(tab, dict):
        raise ProfileError(f"{where}: size_classes must be a table")
    tab = dict(tab)
    src = _source(tab, f"{where} size_classes")
    out = []
    for cname, spec in tab.items():
        if not isinstance(spec, dict) or "min_heads" not in spec:
            raise ProfileError(f"{where} size_classes.{cname}: needs min_heads (and optional max_heads)")
        lo, hi = spec["min_heads"], spec.get("max_heads")
        if not isinstance(lo, int) or lo < 1 or (hi is not None and (not isinstance(hi, int) or hi < lo)):
            raise ProfileError(f"{where} size_classes.{cname}: bad min_heads/max_heads {lo!r}/{hi!r}")
        out.append(SizeClass(cname, lo, hi))
    out.sort(key=lambda s: s.min_heads)
    for a, b in zip(out, out[1:], strict=False):
        if a.max_heads is None or a.max_heads >= b.min_heads:
            raise ProfileError(f"{where} size_classes: {a.name!r} and {b.name!r} overlap")
    if not out:
        raise ProfileError(f"{where} size_classes: no classes defined")
    return tuple(out), src


def _limit(pollutant: str, spec: Any, class_names: set[str], verified: bool, where: str) -> Limit:
    if pollutant not in POLLUTANTS:
        raise ProfileError(f"{where}: unknown pollutant {pollutant!r}; known: {', '.join(POLLUTANTS)}")
    if not isinstance(spec, dict):
        raise ProfileError(f"{where}: must be a table with a value and a source")
    tab = dict(spec)
    src = _source(tab, where)
    lim_verified = tab.pop("verified", verified)
    if not isinstance(lim_verified, bool):
        raise ProfileError(f"{where}: verified must be true or false")
    note = str(tab.pop("note", ""))
    tab.pop("unit", None)
    values: dict[str, float] = {}
    for k, v in tab.items():
        if k != _ALL and k not in class_names:
            raise ProfileError(f"{where}: unknown size class {k!r}; known: {', '.join(sorted(class_names))}")
        values[k] = _number(v, f"{where}.{k}")
    if not values:
        raise ProfileError(f"{where}: no limit value")
    if _ALL not in values and set(values) != class_names:
        missing = ", ".join(sorted(class_names - set(values)))
        raise ProfileError(f"{where}: no limit for size class(es) {missing} (give them or an 'all' value)")
    return Limit(pollutant, values, src, lim_verified, note)
