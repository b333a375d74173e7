"""Source adapters: each module maps one bronze table to the canonical event shape.

An adapter module defines ``SOURCE`` (a short name), ``BRONZE_TABLE`` (a logical table name,
partitioned by ``event_date``) and ``to_canonical(bronze) -> DataFrame`` returning exactly
:data:`CANONICAL_SCHEMA`; optionally ``PAGE_PINGS = True`` when its tracker sends heartbeats
(``page_ping`` events), which makes the ``no_page_pings`` bot rule apply to its visitors, and
``VISITOR_COLUMN``, the bronze column its visitor id comes from (erasure finds a person's raw
rows by it).
Modules in this package are discovered by name, so adding a source
means adding one module here and nothing else.
"""

from __future__ import annotations

import importlib
import pkgutil
from dataclasses import dataclass
from types import ModuleType

from pyspark.sql import Column, DataFrame
from pyspark.sql import types as T

from decisionlake.core.frames import project

_S = T.StringType()

CANONICAL_SCHEMA = T.StructType(
    [
        T.StructField("source", _S, False),
        T.StructField("event_id", _S, False),
        T.StructField("event_ts", T.TimestampType(), False),
        T.StructField("event_date", T.DateType(), False),
        T.StructField("visitor_id", _S, False),
        T.StructField("user_id", _S),
        T.StructField("event_type", _S, False),
        T.StructField("url", _S),
        T.StructField("page_title", _S),
        T.StructField("referrer", _S),
        T.StructField("user_agent", _S),
        T.StructField("ip", _S),
        T.StructField("device_class_hint", _S),
        T.StructField("browser_hint", _S),
        T.StructField("os_hint", _S),
        T.StructField("utm_source_hint", _S),
        T.StructField("utm_medium_hint", _S),
        T.StructField("utm_campaign_hint", _S),
        T.StructField("fund_ticker", _S),
        T.StructField("asset_class", _S),
        T.StructField("topic", _S),
        T.StructField("source_session_id", _S),
        T.StructField("engagement_msec", T.LongType()),
        T.StructField("properties", T.MapType(_S, _S)),
        T.StructField("ingest_date", T.DateType()),
    ]
)


@dataclass(frozen=True)
class RegisteredAdapter:
    """A discovered adapter module."""

    source: str
    bronze_table: str
    module: ModuleType
    page_pings: bool = False
    visitor_column: str | None = None

    def to_canonical(self, bronze: DataFrame) -> DataFrame:
        return self.module.to_canonical(bronze)


def discover() -> list[RegisteredAdapter]:
    """Every adapter module of this package, sorted by source name."""
    found = []
    for info in pkgutil.iter_modules(__path__):
        if info.name.startswith("_"):
            continue
        module = importlib.import_module(f"{__name__}.{info.name}")
        found.append(
            RegisteredAdapter(
                module.SOURCE,
                module.BRONZE_TABLE,
                module,
                page_pings=bool(getattr(module, "PAGE_PINGS", False)),
                visitor_column=getattr(module, "VISITOR_COLUMN", None),
            )
        )
    return sorted(found, key=lambda a: a.source)


def select_canonical(df: DataFrame, columns: dict[str, Column]) -> DataFrame:
    """Project ``columns`` onto :data:`CANONICAL_SCHEMA` (absent ones become NULL), typed."""
    from pyspark.sql import functions as F

    unknown = set(columns) - set(CANONICAL_SCHEMA.fieldNames())
    if unknown:
        raise ValueError(f"not canonical columns: {sorted(unknown)}")
    return project(df, CANONICAL_SCHEMA, columns, otherwise=lambda _name: F.lit(None))
