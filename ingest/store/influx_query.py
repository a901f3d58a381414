"""Reading an InfluxDB store: InfluxQL on the v1-compatible /query endpoint (1.x, 2.x DBRP, 3.x).

:class:`InfluxReader` is the reading half of :class:`ingest.store.influx.InfluxStore` (schema: there).
"""

from __future__ import annotations

from urllib.parse import urlencode

import orjson
import urllib3

from ingest.store.line_protocol import EXTRA_PREFIX, quote_ident, quote_literal


class InfluxQLError(RuntimeError):
    pass


class InfluxReader:
    """Queries for a store with ``url``, ``settings``, ``measurement``, ``_token`` and ``_http``."""

    def influxql(self, q: str, *, database: str | None = None) -> list[dict]:
        """Run an InfluxQL query on /query; returns the statements' series (chunked, epoch ms)."""
        params = {"db": database or self.settings.query_database, "q": q, "epoch": "ms", "chunked": "true"}
        headers = {"Accept": "application/json"}
        if self._token:
            headers["Authorization"] = f"Token {self._token}"
        try:
            resp = self._http.request("GET", f"{self.url}/query?{urlencode(params)}", headers=headers)
        except urllib3.exceptions.HTTPError as exc:
            raise InfluxQLError(f"InfluxDB at {self.url} unreachable: {_short(exc)}") from None
        if resp.status >= 400:
            raise InfluxQLError(f"InfluxQL query failed: HTTP {resp.status} {resp.data[:200]!r}")
        series: dict[tuple, dict] = {}
        for chunk in resp.data.splitlines():
            if not chunk.strip():
                continue
            doc = orjson.loads(chunk)
            if "error" in doc:
                raise InfluxQLError(f"InfluxQL error: {doc['error']}")
            for result in doc.get("results", []):
                if "error" in result:
                    raise InfluxQLError(f"InfluxQL error: {result['error']}")
                for s in result.get("series", []):
                    key = (
                        result.get("statement_id", 0),
                        s.get("name"),
                        tuple(sorted((s.get("tags") or {}).items())),
                    )
                    have = series.get(key)
                    if have is None:
                        series[key] = {
                            "name": s.get("name"),
                            "tags": s.get("tags") or {},
                            "columns": s["columns"],
                            "values": list(s.get("values", [])),
                        }
                    else:
                        have["values"].extend(s.get("values", []))
        return list(series.values())

    def query(
        self,
        *,
        restaurant_id: str | None = None,
        device_id: str | None = None,
        since_ms: int | None = None,
        until_ms: int | None = None,
        hourly: bool = False,
    ) -> list[dict]:
        m = f"{self.measurement}_hourly" if hourly else self.measurement
        cond = []
        if since_ms is not None:
            cond.append(f"time >= {int(since_ms)}ms")
        if until_ms is not None:
            cond.append(f"time < {int(until_ms)}ms")
        if restaurant_id is not None:
            cond.append(f"restaurant_id = {quote_literal(restaurant_id)}")
        if device_id is not None:
            cond.append(f"device_id = {quote_literal(device_id)}")
        q = f"SELECT * FROM {quote_ident(m)}"
        if cond:
            q += " WHERE " + " AND ".join(cond)
        rows: list[dict] = []
        for s in self.influxql(q):
            cols = s["columns"]
            for values in s["values"]:
                d = dict(zip(cols, values, strict=False))
                rows.append(_row_from_influx(d))
        rows.sort(key=lambda d: (d["time_ms"], d["device_id"]))
        return rows

    def counts_by_restaurant(self) -> dict[str, int]:
        q = f"SELECT COUNT(oil_fume_mg_m3) FROM {quote_ident(self.measurement)} GROUP BY restaurant_id"
        out: dict[str, int] = {}
        for s in self.influxql(q):
            rid = s["tags"].get("restaurant_id", "")
            idx = s["columns"].index("count")
            out[rid] = int(sum(v[idx] for v in s["values"]))
        return dict(sorted(out.items()))

    def count(self) -> int:
        return sum(self.counts_by_restaurant().values())


def _bool(v: object) -> bool | None:
    if v is None:
        return None
    return bool(v)


def _row_from_influx(d: dict) -> dict:
    return {
        "device_id": d.get("device_id"),
        "time_ms": int(d["time"]),
        "restaurant_id": d.get("restaurant_id"),
        "district": d.get("district"),
        "oil_fume_mg_m3": d.get("oil_fume_mg_m3"),
        "oil_fume_ref_mg_m3": d.get("oil_fume_ref_mg_m3"),
        "ref_converted": bool(d.get("ref_converted")),
        "pm_mg_m3": d.get("pm_mg_m3"),
        "nmhc_mg_m3": d.get("nmhc_mg_m3"),
        "flow_m3_h": d.get("flow_m3_h"),
        "fan_on": _bool(d.get("fan_on")),
        "purifier_on": _bool(d.get("purifier_on")),
        "source": d.get("source"),
        "flags": _flags(d.get("flags")),
        "extra": {
            k[len(EXTRA_PREFIX) :]: v for k, v in d.items() if k.startswith(EXTRA_PREFIX) and v is not None
        }
        or None,
        "excluded": d.get("excluded") or "",
    }


def _flags(text: str | None) -> dict | None:
    if not text:
        return None
    return dict(item.partition("=")[::2] for item in text.split(","))


def _short(exc: BaseException) -> str:
    text = str(exc).replace("\n", " ")
    return text[:300]
