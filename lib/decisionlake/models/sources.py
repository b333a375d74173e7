"""The tables a model spec names: resolved, read once at a pinned version, recorded as inputs.

Shared by the model jobs (``train_models``, ``score``, ``monitor``) so that no job imports
another job.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from datetime import date
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from decisionlake.config import AppConfig, ConfigError
from decisionlake.core.runtime import JobContext, job_parser
from decisionlake.io import lake
from decisionlake.models.spec import ModelSpec, TableRef


class TrainingDataError(ConfigError):
    """The spec cannot be trained on this data (exit 2: fix the spec, the data or the date)."""


def resolve(cfg: AppConfig, ref: TableRef) -> str:
    """A spec's table: a logical name of the catalog, or a URI as given."""
    return cfg.table_uri(ref.table) if ref.table in cfg.table_names() else ref.table


def check_columns(df: DataFrame, columns: list[str], *, what: str, table: str) -> None:
    """Fail with the unknown names (and the table's columns) before any Spark job runs."""
    missing = [c for c in dict.fromkeys(columns) if c and c not in df.columns]
    if missing:
        raise TrainingDataError(
            f"{what}: unknown column(s) {', '.join(missing)} in {table} "
            f"(has: {', '.join(sorted(df.columns))})"
        )


def describe_files(spark: SparkSession, uri: str, fmt: str) -> dict[str, Any]:
    """What a non-Delta input was when read: format, URI, file count and bytes (one listing)."""
    jvm = spark.sparkContext._jvm  # type: ignore[union-attr]
    path = jvm.org.apache.hadoop.fs.Path(uri)
    fs = path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration())  # type: ignore[union-attr]
    summary = fs.getContentSummary(path)
    return {
        "format": fmt,
        "uri": uri,
        "files": int(summary.getFileCount()),
        "bytes": int(summary.getLength()),
    }


def read_ref(ctx: JobContext, ref: TableRef, versions: dict[str, Any]) -> DataFrame:
    """Read a spec's table and record what was read in ``versions`` (reproducibility).

    Delta tables are pinned to the version read (every later read in the job sees the same
    rows); other formats record their URI, file count and size.
    """
    uri = resolve(ctx.cfg, ref)
    if ref.format == "delta":
        version = lake.table_version(ctx.spark, uri)
        versions[ref.table] = version
        return lake.read_delta(ctx.spark, uri, version=version)
    df = lake.read_table(ctx.spark, uri, ref.format)
    versions[ref.table] = describe_files(ctx.spark, uri, ref.format)
    return df


def read_source(ctx: JobContext, name: str, spec: ModelSpec, versions: dict[str, Any]) -> DataFrame:
    """The spec's feature table, its columns checked against the spec before any Spark job."""
    df = read_ref(ctx, spec.source, versions)
    src = spec.source
    check_columns(
        df,
        [src.id_column, "" if uses_label_column(spec) else src.as_of_column, *spec.features.all()],
        what=f"models.{name}.source/features",
        table=src.table,
    )
    return df


def uses_label_column(spec: ModelSpec) -> bool:
    """A labelled table (label column, no as-of dates) rather than snapshots and events."""
    return spec.label is not None and spec.label.from_column


@dataclass(frozen=True)
class TrainingInputs:
    """What a model trains on, and today's production rows it must score sanely."""

    rows: DataFrame
    events: DataFrame | None
    production: DataFrame
    production_label: str
    latest: Any


def production_rows(spec: ModelSpec, rows: DataFrame, *, run_date: date) -> tuple[DataFrame, Any]:
    """The rows ``score`` scores on ``run_date``: the latest snapshot, or the whole table."""
    if uses_label_column(spec):
        return rows, None
    as_of = F.col(spec.source.as_of_column)
    latest = rows.where(as_of <= F.lit(run_date)).agg(F.max(as_of).alias("d")).first()["d"]
    if latest is None:
        raise TrainingDataError(
            f"{spec.source.table} has no snapshot on or before {run_date} to train or score"
        )
    return rows.where(as_of == F.lit(latest)), latest


def training_inputs(
    ctx: JobContext, name: str, spec: ModelSpec, versions: dict[str, Any]
) -> TrainingInputs:
    """Source rows up to the run date, the label events (if any), today's production rows."""
    rows = read_source(ctx, name, spec, versions)
    if not uses_label_column(spec):
        rows = rows.where(F.col(spec.source.as_of_column) <= F.lit(ctx.run_date))
    try:
        production, latest = production_rows(spec, rows, run_date=ctx.run_date)
    except TrainingDataError as exc:
        raise TrainingDataError(f"models.{name}: {exc}") from None
    events = None
    if spec.label is not None and not spec.label.from_column:
        events = read_ref(ctx, spec.label, versions)
    label = "the whole table" if latest is None else str(latest)
    return TrainingInputs(rows, events, production, label, latest)


def selected_models(cfg: AppConfig, names: list[str]) -> list[str]:
    """The ``--model`` names (default: every spec); a broken or unknown spec is exit 2."""
    chosen = names or sorted({*cfg.models, *cfg.model_errors})
    for name in chosen:
        if name in cfg.model_errors:
            raise ConfigError(f"conf/models/{name}.yaml: {cfg.model_errors[name]}")
        if name not in cfg.models:
            raise ConfigError(
                f"--model {name}: no spec conf/models/{name}.yaml "
                f"(known: {', '.join(sorted(cfg.models))})"
            )
    return chosen


def model_job_parser(name: str, description: str) -> argparse.ArgumentParser:
    """The job parser of the model jobs: ``--model`` picks specs (default: all)."""
    p = job_parser(name, description)
    p.add_argument("--model", action="append", help="model spec name (repeatable; default all)")
    return p
