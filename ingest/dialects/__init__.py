"""Device dialects: how one family of monitors writes HJ 212 (factor codes, value suffixes, equipment state,
QN, checksum), so that a city's mixed installed base is understood rather than refused.

A dialect is a TOML file (this package's ``*.toml``, plus the files in ``[hj212] dialects_dir``; a user file
with a packaged name replaces it). A registry row chooses one with its ``dialect`` column (empty: the
default ``hj212-2017``). The site-wide ``[hj212.factors]`` map is applied on top of every device's dialect.
Layout of a file (docs/protocol.md has one table per shipped dialect):

- ``name``, ``description`` (one line, ``fumewatch dialects``), ``source`` (where the codes come from),
  ``extends`` (a dialect whose tables this one adds to, key by key);
- ``qn_optional`` (HJ 212-2005 frames without QN), ``crc_variants`` (opt-in checksums of
  :data:`ingest.hj212.CRC_VARIANTS`, every use counted);
- ``[suffix]`` CN -> value suffixes read for that command, first present wins;
- ``[factors]`` code -> quantity (:data:`QUANTITIES`);
- ``[states]`` code -> ``{target = fan|purifier, encoding = rs|switch|current, on_a = amperes}``;
- ``[keys]`` plain CP key (no suffix, e.g. ``FANSTATUS``) -> fan|purifier, 0/1;
- ``[scale]`` code -> multiplier (a vendor's flow in m3/s: 3600).

Public surface: :func:`load_dialects`, :class:`Dialects`, :class:`Dialect`, :class:`StateCode`,
:class:`DialectError`, :data:`DEFAULT_DIALECT`, :data:`QUANTITIES`.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

from ingest.hj212 import CRC_VARIANTS

DEFAULT_DIALECT = "hj212-2017"
#: Quantities a factor code may carry: judged or converted (the first four), or stored and shown.
QUANTITIES = ("oil_fume", "pm", "nmhc", "flow", "flue_temp", "humidity")
#: Equipment a state code may describe (Reading.fan_on / purifier_on).
TARGETS = ("fan", "purifier")
ENCODINGS = ("rs", "switch", "current")
#: Names under which flue temperature and humidity are kept in ``Reading.extra``.
STORED_QUANTITIES = {"flue_temp": "flue_temp_c", "humidity": "humidity_pct"}
DEFAULT_SUFFIX = {"2011": ("Rtd",), "2051": ("Avg",), "2061": ("Avg",)}
_KEYS = {
    "name",
    "description",
    "source",
    "extends",
    "qn_optional",
    "crc_variants",
    "suffix",
    "factors",
    "states",
    "keys",
    "scale",
}


class DialectError(ValueError):
    """A dialect file is malformed, or a dialect name is unknown; the message names the file and key."""


@dataclass(frozen=True, slots=True)
class StateCode:
    """An equipment-state code: which equipment, how the value encodes on/off, the default on-current."""

    target: str
    encoding: str
    on_a: float | None = None


@dataclass(frozen=True)
class Dialect:
    name: str
    description: str
    source: str
    origin: str  # "packaged" or the user file's path
    qn_optional: bool = False
    crc_variants: tuple[str, ...] = ()
    suffix: dict[str, tuple[str, ...]] = field(default_factory=lambda: dict(DEFAULT_SUFFIX))
    factors: dict[str, str] = field(default_factory=dict)
    states: dict[str, StateCode] = field(default_factory=dict)
    keys: dict[str, str] = field(default_factory=dict)
    scale: dict[str, float] = field(default_factory=dict)
    extends: str = ""
    #: Codes of the site-wide ``[hj212.factors]`` map: when a frame carries one of these and a dialect code
    #: for the same quantity, the site code's value is used (the other is kept in ``Reading.extra``).
    site_codes: frozenset[str] = frozenset()

    def with_site_factors(self, site: dict[str, str], site_scale: dict[str, float]) -> Dialect:
        """This dialect with the site-wide ``[hj212.factors]``/``[hj212.scale]`` applied on top: a code
        mapped to fan/purifier there is a 0/1 switch, any other target a quantity."""
        factors, states = dict(self.factors), dict(self.states)
        for code, target in site.items():
            if target in TARGETS:
                states[code] = StateCode(target, "switch")
                factors.pop(code, None)
            else:
                factors[code] = target
                states.pop(code, None)
        return Dialect(
            **{
                **self.__dict__,
                "factors": factors,
                "states": states,
                "scale": {**self.scale, **site_scale},
                "site_codes": frozenset(site),
            }
        )


class Dialects:
    """The dialects by name, packaged first, then user files (which may replace a packaged one)."""

    def __init__(self, dialects: dict[str, Dialect]) -> None:
        self._d = dialects

    def __iter__(self):
        return iter(sorted(self._d.values(), key=lambda d: (d.name != DEFAULT_DIALECT, d.name)))

    def __contains__(self, name: object) -> bool:
        return name in self._d

    def names(self) -> list[str]:
        return [d.name for d in self]

    def get(self, name: str) -> Dialect:
        """The dialect called ``name`` (empty: the default)."""
        d = self._d.get(name or DEFAULT_DIALECT)
        if d is None:
            raise DialectError(f"unknown dialect {name!r}; known: {', '.join(self.names())}")
        return d


def load_dialects(user_dir: str | Path | None = None) -> Dialects:
    """The packaged dialects plus the ``*.toml`` files of ``user_dir`` (if given)."""
    raw: dict[str, tuple[dict, str]] = {}
    for entry in sorted(resources.files(__package__).iterdir(), key=lambda e: e.name):
        if entry.name.endswith(".toml"):
            _add(raw, entry.read_text(encoding="utf-8"), f"ingest/dialects/{entry.name}", "packaged")
    if user_dir:
        d = Path(user_dir)
        if not d.is_dir():
            raise DialectError(f"[hj212] dialects_dir {str(d)!r} is not a directory")
        for p in sorted(d.glob("*.toml")):
            _add(raw, p.read_text(encoding="utf-8"), str(p), str(p))
    return Dialects({name: _resolve(name, raw, ()) for name in raw})


def _add(raw: dict, text: str, where: str, origin: str) -> None:
    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise DialectError(f"{where}: not valid TOML: {exc}") from None
    unknown = sorted(set(doc) - _KEYS)
    if unknown:
        raise DialectError(
            f"{where}: unknown key(s) {', '.join(unknown)}; allowed: {', '.join(sorted(_KEYS))}"
        )
    name = doc.get("name")
    if not isinstance(name, str) or not name.strip():
        raise DialectError(f"{where}: 'name' missing (a short id such as \"vendor-x\")")
    for key in ("description", "source"):
        if not isinstance(doc.get(key), str) or not doc[key].strip():
            raise DialectError(
                f"{where}: '{key}' missing: every dialect says what it is and where it comes from"
            )
    doc["_where"] = where
    raw[name] = (doc, origin)


def _resolve(name: str, raw: dict, chain: tuple[str, ...]) -> Dialect:
    doc, origin = raw[name]
    where = doc["_where"]
    if name in chain:
        raise DialectError(f"{where}: 'extends' loops: {' -> '.join((*chain, name))}")
    base_name = doc.get("extends", "")
    if base_name:
        if base_name not in raw:
            raise DialectError(f"{where}: extends unknown dialect {base_name!r}")
        base = _resolve(base_name, raw, (*chain, name))
    else:
        base = Dialect(name=name, description="", source="", origin=origin)
    suffix = dict(base.suffix)
    for cn, kinds in doc.get("suffix", {}).items():
        if isinstance(kinds, str):
            kinds = [kinds]
        if not kinds or not all(isinstance(k, str) and k for k in kinds):
            raise DialectError(f'{where}: suffix.{cn} must be a list of value suffixes such as ["Avg"]')
        suffix[str(cn)] = tuple(kinds)
    factors = dict(base.factors)
    for code, q in doc.get("factors", {}).items():
        if q not in QUANTITIES:
            raise DialectError(f"{where}: factors.{code} = {q!r}; allowed: {', '.join(QUANTITIES)}")
        factors[code] = q
    states = dict(base.states)
    for code, spec in doc.get("states", {}).items():
        states[code] = _state(spec, f"{where}: states.{code}")
        factors.pop(code, None)
    keys = dict(base.keys)
    for key, target in doc.get("keys", {}).items():
        if target not in TARGETS:
            raise DialectError(f"{where}: keys.{key} = {target!r}; allowed: fan, purifier")
        keys[key] = target
    scale = dict(base.scale)
    for code, k in doc.get("scale", {}).items():
        if isinstance(k, bool) or not isinstance(k, int | float) or not k > 0:
            raise DialectError(f"{where}: scale.{code} must be a positive number")
        scale[code] = float(k)
    variants = doc.get("crc_variants", list(base.crc_variants))
    bad = [v for v in variants if v not in CRC_VARIANTS]
    if bad:
        raise DialectError(f"{where}: crc_variants {bad}; known: {', '.join(CRC_VARIANTS)}")
    qn_optional = doc.get("qn_optional", base.qn_optional)
    if not isinstance(qn_optional, bool):
        raise DialectError(f"{where}: qn_optional must be true or false")
    return Dialect(
        name=name,
        description=doc["description"].strip(),
        source=" ".join(doc["source"].split()),
        origin=origin,
        qn_optional=qn_optional,
        crc_variants=tuple(variants),
        suffix=suffix,
        factors=factors,
        states=states,
        keys=keys,
        scale=scale,
        extends=base_name,
    )


def _state(spec: object, where: str) -> StateCode:
    if not isinstance(spec, dict):
        raise DialectError(f'{where} must be a table {{ target = "fan", encoding = "rs" }}')
    target, encoding, on_a = spec.get("target"), spec.get("encoding"), spec.get("on_a")
    if target not in TARGETS:
        raise DialectError(f"{where}.target = {target!r}; allowed: fan, purifier")
    if encoding not in ENCODINGS:
        raise DialectError(f"{where}.encoding = {encoding!r}; allowed: {', '.join(ENCODINGS)}")
    if encoding == "current":
        if isinstance(on_a, bool) or not isinstance(on_a, int | float) or not on_a > 0:
            raise DialectError(f"{where}.on_a: a current encoding needs a positive threshold in A")
        on_a = float(on_a)
    elif on_a is not None:
        raise DialectError(f'{where}.on_a only applies to encoding = "current"')
    return StateCode(target, encoding, on_a)
