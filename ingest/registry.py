"""Device registry: which monitor belongs to which restaurant, and how big its kitchen is.

CSV, one row per device. Required columns: restaurant_id,name,district,device_id,stove_heads.
Optional: address,owner_name,owner_notify,profile,hj212_pw,lat,lon,dialect,interval_s,fan_on_a,purifier_on_a. ``owner_notify`` holds one or more
apprise URLs separated by spaces or ``;``. ``lat``/``lon`` place the kitchen on the dashboards' map: WGS-84
decimal degrees (GPS, OpenStreetMap; not the GCJ-02 of Gaode/AMap or Tencent maps, see docs/dashboards.md),
both or neither. UTF-8 (with or without BOM), GB18030/GBK as Excel in China saves CSV (detected and
logged), Excel's UTF-16 "Unicode text", or an .xlsx workbook directly (ingest/registry_file.py).
"""

from __future__ import annotations

import csv
import math
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, fields
from pathlib import Path

REQUIRED_COLUMNS = ("restaurant_id", "name", "district", "device_id", "stove_heads")
OPTIONAL_COLUMNS = (
    "address",
    "owner_name",
    "owner_notify",
    "profile",
    "hj212_pw",
    "lat",
    "lon",
    "dialect",
    "interval_s",
    "fan_on_a",
    "purifier_on_a",
)
#: WGS-84 ranges of the coordinate columns (decimal degrees).
COORDINATE_RANGES = {"lat": (-90.0, 90.0), "lon": (-180.0, 180.0)}
ALL_COLUMNS = REQUIRED_COLUMNS + OPTIONAL_COLUMNS


class RegistryError(ValueError):
    """The registry file is unusable; the message names the line and column."""


@dataclass(frozen=True, slots=True)
class Device:
    restaurant_id: str
    name: str
    district: str
    device_id: str
    stove_heads: int
    address: str = ""
    owner_name: str = ""
    owner_notify: str = ""
    profile: str = ""
    hj212_pw: str = ""
    #: WGS-84 decimal degrees, or None when the registry gives no position.
    lat: float | None = None
    lon: float | None = None
    #: Device dialect (ingest/dialects); empty: the default ``hj212-2017``.
    dialect: str = ""
    #: Reporting interval in seconds (60 for 1-minute data, 600 for 10-minute CN 2051 data); None: learned
    #: from the device's own data by the detector.
    interval_s: int | None = None
    #: On-thresholds in amperes for dialects that report fan / purifier current: a current at or above
    #: the threshold means on. None: the dialect's default threshold.
    fan_on_a: float | None = None
    purifier_on_a: float | None = None

    @property
    def notify_urls(self) -> list[str]:
        return [u for u in self.owner_notify.replace(";", " ").split() if u]

    @property
    def size_class(self) -> str:
        """GB 18483-2001 size class by reference stove heads: small 1-2, medium 3-5, large >=6."""
        if self.stove_heads >= 6:
            return "large"
        if self.stove_heads >= 3:
            return "medium"
        return "small"


class Registry:
    """Devices by id, restaurants by id. Immutable once loaded."""

    def __init__(self, devices: Iterable[Device]) -> None:
        self._devices: dict[str, Device] = {}
        for d in devices:
            if d.device_id in self._devices:
                raise RegistryError(f"device_id {d.device_id!r} listed twice")
            self._devices[d.device_id] = d

    def __len__(self) -> int:
        return len(self._devices)

    def __iter__(self) -> Iterator[Device]:
        return iter(self._devices.values())

    def __contains__(self, device_id: object) -> bool:
        return device_id in self._devices

    def get(self, device_id: str) -> Device | None:
        return self._devices.get(device_id)

    def restaurants(self) -> dict[str, list[Device]]:
        out: dict[str, list[Device]] = {}
        for d in self._devices.values():
            out.setdefault(d.restaurant_id, []).append(d)
        return out

    @classmethod
    def load(cls, path: str | Path) -> Registry:
        """The registry at ``path``: CSV (UTF-8, GB18030/GBK, UTF-16 text) or .xlsx (ingest.registry_file)."""
        from ingest.registry_file import RegistryFileError, read_table

        p = Path(path)
        try:
            header, rows = read_table(p)
        except RegistryFileError as exc:
            raise RegistryError(str(exc)) from None
        return cls._from_rows(header, rows, str(p))

    @classmethod
    def parse(cls, text: str, source: str = "<registry>") -> Registry:
        from ingest.registry_file import csv_table

        header, rows = csv_table(text, source)
        return cls._from_rows(header, rows, source)

    @classmethod
    def _from_rows(
        cls, header: list[str], rows: Iterable[tuple[int, dict[str, str]]], source: str
    ) -> Registry:
        missing = [c for c in REQUIRED_COLUMNS if c not in header]
        if missing:
            from ingest.registry_file import FIX

            raise RegistryError(
                f"{source}:1: missing required column(s) {', '.join(missing)}: the first line must name the "
                f"columns {','.join(REQUIRED_COLUMNS)} (found {','.join(h for h in header if h)[:120] or 'nothing'})"
                + (
                    "; the file looks mis-encoded: " + FIX
                    if any("\ufffd" in h or "�" in h for h in header)
                    else ""
                )
            )
        devices = []
        for lineno, row in rows:
            if not any(row.values()):
                continue
            for col in REQUIRED_COLUMNS:
                if not row.get(col):
                    raise RegistryError(f"{source}:{lineno}: empty {col}")
            try:
                heads = int(row["stove_heads"])
            except ValueError as exc:
                raise RegistryError(
                    f"{source}:{lineno}: stove_heads {row['stove_heads']!r} is not a whole number"
                ) from exc
            if heads < 1 or heads > 200:
                raise RegistryError(f"{source}:{lineno}: stove_heads {heads} outside 1..200")
            known = {f.name for f in fields(Device)}
            kwargs: dict = {k: v for k, v in row.items() if k in known}
            kwargs["stove_heads"] = heads
            kwargs["lat"], kwargs["lon"] = _coordinates(row, f"{source}:{lineno}")
            kwargs.update(_cadence_and_thresholds(row, f"{source}:{lineno}"))
            devices.append(Device(**kwargs))
        try:
            return cls(devices)
        except RegistryError as exc:
            raise RegistryError(f"{source}: {exc}") from exc

    def write_csv(self, path: str | Path) -> None:
        with open(path, "w", newline="", encoding="utf-8") as fh:
            w = csv.DictWriter(fh, fieldnames=list(ALL_COLUMNS))
            w.writeheader()
            for d in self._devices.values():
                w.writerow({c: "" if getattr(d, c) is None else getattr(d, c) for c in ALL_COLUMNS})


def _cadence_and_thresholds(row: dict[str, str], where: str) -> dict:
    """``interval_s`` (whole seconds 1..86400) and the current thresholds (amperes > 0) of a row; an empty
    cell is None (the default)."""
    out: dict = {}
    text = (row.get("interval_s") or "").strip()
    if text:
        try:
            value = int(text)
        except ValueError:
            raise RegistryError(
                f"{where}: interval_s {text!r} is not a whole number of seconds (60 for 1-minute data, "
                "600 for 10-minute data; leave it empty to learn it from the data)"
            ) from None
        if not 1 <= value <= 86_400:
            raise RegistryError(f"{where}: interval_s {value} outside 1..86400 seconds")
        out["interval_s"] = value
    else:
        out["interval_s"] = None
    for col in ("fan_on_a", "purifier_on_a"):
        text = (row.get(col) or "").strip()
        if not text:
            out[col] = None
            continue
        try:
            value = float(text)
        except ValueError:
            raise RegistryError(f"{where}: {col} {text!r} is not a current in amperes (e.g. 0.5)") from None
        if not math.isfinite(value) or value <= 0 or value > 1000:
            raise RegistryError(f"{where}: {col} {text} outside 0..1000 A (must be above 0)")
        out[col] = value
    out["dialect"] = (row.get("dialect") or "").strip()
    return out


def _coordinates(row: dict[str, str], where: str) -> tuple[float | None, float | None]:
    """The row's (lat, lon): both None when both cells are empty; a RegistryError naming the cell otherwise."""
    text = {c: row.get(c, "") for c in COORDINATE_RANGES}
    if not any(text.values()):
        return None, None
    for col, other in (("lat", "lon"), ("lon", "lat")):
        if not text[col]:
            raise RegistryError(
                f"{where}: {other} {text[other]!r} given without {col} (give both or neither)"
            )
    out = {}
    for col, (low, high) in COORDINATE_RANGES.items():
        try:
            v = float(text[col])
        except ValueError:
            raise RegistryError(
                f"{where}: {col} {text[col]!r} is not a number (WGS-84 decimal degrees, e.g. 39.9219)"
            ) from None
        if not math.isfinite(v) or not low <= v <= high:
            hint = " (lat and lon swapped?)" if col == "lat" and abs(v) <= 180 else ""
            raise RegistryError(f"{where}: {col} {text[col]} outside {low:g}..{high:g}{hint}")
        out[col] = v
    return out["lat"], out["lon"]
