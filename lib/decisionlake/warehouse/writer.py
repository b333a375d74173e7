"""Publish a DataFrame to a warehouse table: stage and check, load in one transaction, verify."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from decisionlake.config import AppConfig, ExportTableConfig
from decisionlake.core.aws import aws_client, warehouse_credentials
from decisionlake.core.logs import JobLogger
from decisionlake.warehouse import staging
from decisionlake.warehouse.ddl import columns_for, evolution, length_aggs
from decisionlake.warehouse.plan import ConstraintViolationError, LoadPlan
from decisionlake.warehouse.reconcile import Totals, totals_aggs, totals_from


def make_backend(cfg: AppConfig) -> Any:
    """The configured backend."""
    w = cfg.warehouse
    if w.backend == "postgres":
        from decisionlake.warehouse.postgres import PostgresBackend

        return PostgresBackend(
            warehouse_credentials(cfg), cfg.storage, connections=w.load_connections
        )
    from decisionlake.warehouse.redshift import ConnectorBackend, DataApiBackend

    if w.backend == "redshift_data_api":
        return DataApiBackend(aws_client(cfg, "redshift-data"), w.redshift)

    def connect() -> Any:
        import redshift_connector

        c = warehouse_credentials(cfg)
        return redshift_connector.connect(
            host=c["host"],
            port=int(c.get("port", 5439)),
            database=c.get("dbname", w.redshift.database),
            user=c["username"],
            password=c["password"],
        )

    return ConnectorBackend(connect, w.redshift)


def staging_prefix(cfg: AppConfig) -> str:
    return cfg.warehouse.staging or f"{cfg.paths.artifacts.rstrip('/')}/warehouse-staging"


def _key_text(keys: list[str]) -> Column:
    return F.concat_ws("|", *[F.coalesce(F.col(k).cast("string"), F.lit("NULL")) for k in keys])


def constraint_rules(
    schema: T.StructType, *, keys: list[str], limits: dict[str, int]
) -> dict[str, Column]:
    """Rule text -> condition true for rows the target would refuse.

    Conditions read the staged (JSON-shaped) columns: nested values are measured as the JSON
    text the warehouse receives.
    """
    rules: dict[str, Column] = {f"NULL key {k}": F.col(k).isNull() for k in keys}
    for name, limit in limits.items():
        if name in schema.fieldNames():
            rules[f"{name} longer than {limit} bytes"] = F.octet_length(F.col(name)) > limit
    return rules


def _describe(
    shaped: DataFrame, rules: dict[str, Column], counts: list[int], *, keys: list[str], sample: int
) -> list[str]:
    out = []
    for (rule, condition), n in zip(rules.items(), counts, strict=True):
        if n:
            offending = shaped.where(condition).select(_key_text(keys)).limit(sample)
            examples = [r[0] for r in offending.collect()]  # at most ``sample`` rows
            out.append(f"{n} row(s) with {rule}, e.g. keys {examples}")
    return out


@dataclass(frozen=True)
class Profile:
    """Everything the export needs to know about the staged rows, measured on the staged files."""

    counts: list[int]
    lengths: dict[str, int]
    totals: Totals
    slices: list[str]


def profile_metrics(
    rules: dict[str, Column],
    *,
    keys: list[str],
    value: str,
    slice_column: str,
) -> Callable[[DataFrame], list[Column]]:
    """Aggregates of violations, string lengths, totals and slices over the staged rows."""

    def build(shaped: DataFrame) -> list[Column]:
        measured = length_aggs(shaped, prefix="_len_")  # nested columns are JSON text here
        counts = [F.sum(c.cast("int")).alias(f"_v{i}") for i, c in enumerate(rules.values())]
        slices = F.collect_set(F.col(slice_column).cast("string")).alias("_slices")  # run dates
        return [*counts, *measured, *totals_aggs(keys=keys, value=value), slices]

    return build


def profile_from(metrics: dict[str, Any], rules: dict[str, Column]) -> Profile:
    return Profile(
        counts=[int(metrics[f"_v{i}"] or 0) for i in range(len(rules))],
        lengths={k[5:]: int(v or 0) for k, v in metrics.items() if k.startswith("_len_")},
        totals=totals_from(metrics),
        slices=sorted(metrics["_slices"]),
    )


@dataclass(frozen=True)
class ExportResult:
    """What an export did."""

    target: str
    rows: int
    files: int
    bytes: int
    alters: list[str]
    staged_prefix: str


def export(
    df: DataFrame,
    table: ExportTableConfig,
    *,
    cfg: AppConfig,
    backend: Any,
    run_id: str,
    log: JobLogger,
    value_column: str = "score",
) -> ExportResult:
    """Publish ``df`` (one or more slices of ``table.slice_column``) to ``table.target``."""
    w = cfg.warehouse
    prefix = f"{staging_prefix(cfg).rstrip('/')}/{table.target}/{run_id}"
    with log.stage("stage_and_check", target=table.target, prefix=prefix) as st:
        existing = backend.existing_columns(table.target)
        limits = {
            name: int(kind.split("(")[1].rstrip(")"))
            for name, kind in (existing or {}).items()
            if kind.startswith("VARCHAR(") and name in df.columns
        }
        value = value_column if value_column in df.columns else table.keys[0]
        numeric = isinstance(df.schema[value].dataType, T.NumericType)
        value = value if numeric else table.keys[0]
        rules = constraint_rules(df.schema, keys=table.keys, limits=limits)
        metrics = profile_metrics(rules, keys=table.keys, value=value,
                                  slice_column=table.slice_column)  # fmt: skip
        # The files are written once, then measured by reading them back (columnar): the
        # totals the load is verified against are those of exactly what is loaded.
        staged = staging.stage(
            df,
            prefix,
            storage=cfg.storage,
            rows_per_file=w.max_rows_per_file,
            row_group_bytes=int(w.stage_row_group_mb * 2**20),
            max_files=w.max_files,
            metrics=metrics,
        )
        found = profile_from(staged.metrics, rules)
        if any(found.counts):
            staged_rows = df.sparkSession.read.parquet(f"{prefix.rstrip('/')}/data")
            problems = _describe(staged_rows, rules, found.counts, keys=table.keys, sample=5)
            staging.clean(staged, cfg.storage)  # nothing was loaded; nothing to inspect
            raise ConstraintViolationError(
                f"{table.target}: refused before loading: " + "; ".join(problems)
            )
        lengths, expected, slices = found.lengths, found.totals, found.slices
        columns = columns_for(
            df.schema,
            lengths,
            dialect=backend.dialect,
            keys=table.keys,
            headroom=w.varchar_headroom,
            minimum=w.min_varchar,
        )
        alters = evolution(table.target, existing, columns, longest=lengths) if existing else []
        st.add(rows=expected.rows, slices=slices, alters=alters, new_table=existing is None,
               files=len(staged.files), bytes=staged.bytes, manifest=staged.manifest)  # fmt: skip

    plan = LoadPlan(
        target=table.target,
        keys=table.keys,
        columns=columns,
        slice_column=table.slice_column,
        slices=slices,
        value_column=value,
        expected=expected,
        run_id=run_id,
        alters=alters,
        distkey=table.distkey,
        sortkey=table.sortkey,
    )
    with log.stage("load", target=table.target, backend=type(backend).__name__) as st:
        try:
            found = backend.load(staged, plan)
        except BaseException:
            kept = "load failed; staged files kept for inspection and reruns"
            log.event("staging_kept", level="ERROR", prefix=prefix, reason=kept)
            raise
        st.add(rows=found.rows, key_checksum=found.key_checksum, **getattr(backend, "last", {}))
    staging.clean(staged, cfg.storage)
    # Files of loads killed or failed earlier: the target now holds this load, so theirs
    # are no longer needed for inspection or a rerun.
    stale = staging.clean_stale(
        prefix.rsplit("/", 1)[0],
        keep=run_id,
        storage=cfg.storage,
        older_than_minutes=w.stale_staging_minutes,
    )
    if stale:
        log.event("stale_staging_removed", target=table.target, runs=stale)
    return ExportResult(table.target, found.rows, len(staged.files), staged.bytes, alters, prefix)
