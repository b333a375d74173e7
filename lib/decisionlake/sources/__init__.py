"""Raw sources: one module each, enabled by one config entry.

A source module defines ``SOURCE``, a :class:`Source`: its ingest spec (landing folder, line
format and rules, bronze schema, key, partitioning: :class:`~decisionlake.io.ingest.
LineIngestSpec`), and what the shared code must know of it instead of naming it:

- ``events``: how its bronze rows become canonical events (:class:`Events`), for a source of
  web behaviour. ``build_sessions`` reads every enabled source that has one; the visitor
  column tells erasure where a person's raw rows are; ``page_pings`` makes the
  ``no_page_pings`` bot rule apply to its visitors.
- ``derived``: tables rebuilt from the whole bronze table after each ingest (the CRM's
  PII-free ``silver.advisors``).

The config entry ``ingest.<name>`` enables it (limits, ``table``, and ``module`` when the module
is not ``decisionlake.sources.<name>``). Tables are named by convention: ``bronze.<name>_events``
and ``bronze.<name>_events_quarantine`` unless ``table`` says otherwise. One generic job ingests
any of them: ``decisionlake run ingest --source <name>``.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import types as T

from decisionlake.config import AppConfig, ConfigError, SourceConfig, source_module, source_tables
from decisionlake.io.ingest import IngestTarget, LineIngestSpec


@dataclass(frozen=True)
class Events:
    """How a source's bronze rows become canonical events."""

    to_canonical: Callable[[DataFrame], DataFrame]
    """bronze rows -> :data:`~decisionlake.sources.canonical.CANONICAL_SCHEMA`, ``source`` set
    to the source's name."""
    visitor_column: str
    """The bronze column its visitor id comes from: erasure finds a person's raw rows by it."""
    page_pings: bool = False
    """Its tracker sends a heartbeat (``page_ping``) while a page stays open."""


@dataclass(frozen=True)
class Derived:
    """A table rebuilt from the whole bronze table after each ingest."""

    table: str
    build: Callable[..., DataFrame]
    """``build(bronze, *, key)``: ``key`` is the pseudonymisation key, for PII-free copies."""


@dataclass(frozen=True)
class Source:
    """What a source module declares as ``SOURCE``."""

    ingest: LineIngestSpec
    events: Events | None = None
    derived: tuple[Derived, ...] = ()


def event_ingest(
    landing_dir: str,
    *,
    bronze_schema: T.StructType,
    validate: Callable[..., DataFrame],
    to_bronze: Callable[..., DataFrame],
    partition_of_valid_line: Callable[[], Column] | None = None,
) -> LineIngestSpec:
    """The ingest spec of an event source: bronze keyed by ``event_id`` (the earliest
    delivery of an id wins) and partitioned by ``event_date``, the column ``build_sessions``
    prunes its window on."""
    return LineIngestSpec(
        landing_dir=landing_dir,
        bronze_schema=bronze_schema,
        key="event_id",
        order_by=("event_ts", "source_file"),
        partition_by=("event_date",),
        validate=validate,
        to_bronze=to_bronze,
        partition_of_valid_line=partition_of_valid_line,
    )


@dataclass(frozen=True)
class EnabledSource:
    """A source enabled in the config, with its module loaded and its tables named."""

    name: str
    config: SourceConfig
    source: Source

    @property
    def bronze_table(self) -> str:
        return source_tables(self.name, self.config)[0]

    @property
    def quarantine_table(self) -> str:
        return source_tables(self.name, self.config)[1]

    @property
    def target(self) -> IngestTarget:
        """Where the ingest runner writes, with this source's limits."""
        return IngestTarget(
            source=self.name,
            bronze_table=self.bronze_table,
            quarantine_table=self.quarantine_table,
            limits=self.config,
            quarantined_files=self.config.quarantined_files,
        )


def enabled_source(cfg: AppConfig, name: str) -> EnabledSource:
    """The source ``name`` of ``ingest.<name>``, its module imported and checked."""
    if name not in cfg.ingest:
        known = ", ".join(sorted(cfg.ingest)) or "none"
        raise ConfigError(
            f"ingest.{name}: unknown source (enabled: {known}); add an ingest.{name} entry"
        )
    config = cfg.ingest[name]
    module_name = source_module(name, config)
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        raise ConfigError(f"ingest.{name}.module: cannot import {module_name!r} ({exc})") from None
    source = getattr(module, "SOURCE", None)
    if not isinstance(source, Source):
        raise ConfigError(
            f"ingest.{name}.module: {module_name} defines no SOURCE (a decisionlake.sources.Source)"
        )
    return EnabledSource(name, config, source)


def enabled_sources(cfg: AppConfig) -> list[EnabledSource]:
    """Every source of ``ingest``, sorted by name."""
    return [enabled_source(cfg, name) for name in sorted(cfg.ingest)]


def event_sources(cfg: AppConfig) -> list[EnabledSource]:
    """The enabled sources whose rows are web behaviour (they declare ``events``)."""
    return [s for s in enabled_sources(cfg) if s.source.events is not None]
