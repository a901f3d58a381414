"""InfluxDB line protocol and InfluxQL quoting for the readings (schema: ingest/store/influx.py)."""

from __future__ import annotations

from ingest.model import Reading

_FIELDS_FLOAT = ("oil_fume_mg_m3", "oil_fume_ref_mg_m3", "pm_mg_m3", "nmhc_mg_m3", "flow_m3_h")


def _escape_tag(v: str) -> str:
    return (
        v.replace("\\", "\\\\")
        .replace(",", "\\,")
        .replace("=", "\\=")
        .replace(" ", "\\ ")
        .replace("\n", "\\n")
    )


def _escape_str_field(v: str) -> str:
    return v.replace("\\", "\\\\").replace('"', '\\"')


def quote_ident(name: str) -> str:
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def quote_literal(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def to_line(r: Reading, measurement: str) -> str:
    tags = (
        f"{measurement},device_id={_escape_tag(r.device_id)},district={_escape_tag(r.district)},"
        f"restaurant_id={_escape_tag(r.restaurant_id)}"
    )
    fields = [
        f"oil_fume_mg_m3={r.oil_fume_mg_m3!r}",
        f"oil_fume_ref_mg_m3={r.oil_fume_ref_mg_m3!r}",
        f"ref_converted={1 if r.ref_converted else 0}i",
    ]
    if r.pm_mg_m3 is not None:
        fields.append(f"pm_mg_m3={r.pm_mg_m3!r}")
    if r.nmhc_mg_m3 is not None:
        fields.append(f"nmhc_mg_m3={r.nmhc_mg_m3!r}")
    if r.flow_m3_h is not None:
        fields.append(f"flow_m3_h={r.flow_m3_h!r}")
    if r.fan_on is not None:
        fields.append(f"fan_on={1 if r.fan_on else 0}i")
    if r.purifier_on is not None:
        fields.append(f"purifier_on={1 if r.purifier_on else 0}i")
    fields.append(f'source="{_escape_str_field(r.source)}"')
    if r.flags:
        text = ",".join(f"{k}={v}" for k, v in r.flags.items())
        fields.append(f'flags="{_escape_str_field(text)}"')
    if r.excluded:
        fields.append(f'excluded="{_escape_str_field(r.excluded)}"')
    if r.extra:
        # Always strings: a code sent as a number once and as text once must not make InfluxDB refuse the
        # batch (field type conflict); the value is kept exactly as sent.
        for k, v in r.extra.items():
            fields.append(f'{EXTRA_PREFIX}{_escape_key(k)}="{_escape_str_field(v)}"')
    return f"{tags} {','.join(fields)} {r.time_ms}"


#: InfluxDB field prefix of ``Reading.extra`` entries (the codes a dialect does not know).
EXTRA_PREFIX = "x_"


def _escape_key(v: str) -> str:
    return (
        v.replace("\\", "\\\\").replace(",", "\\,").replace("=", "\\=").replace(" ", "\\ ").replace("\n", "")
    )
