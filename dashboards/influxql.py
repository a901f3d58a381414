"""InfluxQL query and annotation types for grafana-foundation-sdk.

The SDK (10.1 line, and every later line up to 11.6) has no builder or model for Grafana's InfluxDB
datasource, so this module adds the two pieces through the SDK's own extension points:

- :class:`InfluxQLQuery` is a ``cogvariants.Dataquery`` (what panels hold in ``targets``) and
  :class:`InfluxQL` its builder; :func:`register` makes ``Dashboard.from_json`` parse targets of panels
  whose datasource type is ``influxdb`` back into :class:`InfluxQLQuery` instead of an opaque bag.
- :class:`InfluxAnnotationTarget` extends the SDK's ``AnnotationTarget`` with the InfluxQL fields Grafana's
  InfluxDB datasource reads (``query``, ``rawQuery``, ``fromAnnotations``, ``textColumn``, ``tagsColumn``);
  :class:`InfluxAnnotation` builds it. Grafana only migrates an annotation target that has no ``query``,
  so this modern form is used as is by Grafana 10 and later. The SDK's ``AnnotationTarget.from_json``
  keeps only its own four keys (limit, matchAny, tags, type): see :data:`ANNOTATION_ONLY_KEYS`.

Queries are raw InfluxQL (``rawQuery: true``), the form Grafana sends to InfluxDB 1.x, 2.x (DBRP) and 3.x.
"""

from __future__ import annotations

import typing

from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.cog import runtime as cogruntime
from grafana_foundation_sdk.cog import variants as cogvariants
from grafana_foundation_sdk.models import dashboard as dm

DATASOURCE_TYPE = "influxdb"

ResultFormat = typing.Literal["time_series", "table"]

#: Keys of an InfluxQL annotation target that the SDK's AnnotationTarget model does not carry.
ANNOTATION_ONLY_KEYS = (
    "refId",
    "query",
    "rawQuery",
    "fromAnnotations",
    "textEditor",
    "resultFormat",
    "textColumn",
    "tagsColumn",
    "timeEndColumn",
    "titleColumn",
)


class InfluxQLQuery(cogvariants.Dataquery):
    """One raw InfluxQL target of a panel (the JSON Grafana's InfluxDB datasource stores)."""

    def __init__(
        self,
        query: str = "",
        ref_id: str = "A",
        result_format: ResultFormat = "time_series",
        alias: str | None = None,
        hide: bool | None = None,
        datasource: dm.DataSourceRef | None = None,
    ) -> None:
        self.query = query
        self.ref_id = ref_id
        self.result_format = result_format
        self.alias = alias
        self.hide = hide
        self.datasource = datasource

    def to_json(self) -> dict[str, object]:
        payload: dict[str, object] = {
            "refId": self.ref_id,
            "query": self.query,
            "rawQuery": True,
            "resultFormat": self.result_format,
        }
        if self.alias is not None:
            payload["alias"] = self.alias
        if self.hide is not None:
            payload["hide"] = self.hide
        if self.datasource is not None:
            payload["datasource"] = self.datasource
        return payload

    @classmethod
    def from_json(cls, data: dict[str, typing.Any]) -> typing.Self:
        ds = data.get("datasource")
        return cls(
            query=data.get("query", ""),
            ref_id=data.get("refId", "A"),
            result_format=data.get("resultFormat", "time_series"),
            alias=data.get("alias"),
            hide=data.get("hide"),
            datasource=dm.DataSourceRef.from_json(ds) if isinstance(ds, dict) else None,
        )


class InfluxQL(cogbuilder.Builder[cogvariants.Dataquery]):
    """Builder of :class:`InfluxQLQuery`: ``InfluxQL('SELECT ...').ref_id('B').table()``."""

    def __init__(self, query: str) -> None:
        self._internal = InfluxQLQuery(query=query)

    def build(self) -> InfluxQLQuery:
        return self._internal

    def ref_id(self, ref_id: str) -> typing.Self:
        self._internal.ref_id = ref_id
        return self

    def table(self) -> typing.Self:
        """Result format "table": one row per point, tag columns included (for table panels)."""
        self._internal.result_format = "table"
        return self

    def alias(self, alias: str) -> typing.Self:
        """Series name pattern: ``$tag_<key>``, ``$col``, ``$m`` as Grafana's InfluxDB datasource reads it."""
        self._internal.alias = alias
        return self

    def datasource(self, ref: dm.DataSourceRef) -> typing.Self:
        self._internal.datasource = ref
        return self


class InfluxAnnotationTarget(dm.AnnotationTarget):
    """An InfluxQL annotation target: time column -> marker time, ``textColumn``/``tagsColumn`` -> text/tags."""

    def __init__(
        self,
        query: str = "",
        text_column: str = "",
        tags_column: str = "",
        time_end_column: str = "",
        ref_id: str = "Anno",
        limit: int = 100,
    ) -> None:
        super().__init__(limit=limit, match_any=False, tags=[], type_val="tags")
        self.query = query
        self.text_column = text_column
        self.tags_column = tags_column
        self.time_end_column = time_end_column
        self.ref_id = ref_id

    def to_json(self) -> dict[str, object]:
        payload = super().to_json()
        payload.update(
            {
                "refId": self.ref_id,
                "query": self.query,
                "rawQuery": True,
                "fromAnnotations": True,
                "textEditor": True,
                "resultFormat": "table",
                "textColumn": self.text_column,
                "tagsColumn": self.tags_column,
                "timeEndColumn": self.time_end_column,
                "titleColumn": "",
            }
        )
        return payload


class InfluxAnnotation(cogbuilder.Builder[dm.AnnotationTarget]):
    """Builder of :class:`InfluxAnnotationTarget`, for ``dashboard.AnnotationQuery().target(...)``."""

    def __init__(self, query: str) -> None:
        self._internal = InfluxAnnotationTarget(query=query)

    def build(self) -> InfluxAnnotationTarget:
        return self._internal

    def text_column(self, column: str) -> typing.Self:
        self._internal.text_column = column
        return self

    def tags_column(self, columns: str) -> typing.Self:
        """Comma-separated column names whose values become the annotation's tags."""
        self._internal.tags_column = columns
        return self

    def time_end_column(self, column: str) -> typing.Self:
        self._internal.time_end_column = column
        return self


def register() -> None:
    """Teach the SDK's JSON parser our InfluxQL targets (idempotent)."""
    cogruntime.register_dataquery_variant(
        cogruntime.DataqueryConfig(identifier=DATASOURCE_TYPE, from_json_hook=InfluxQLQuery.from_json)
    )
