"""Publish a DataFrame to a warehouse table: check, stage, load in one transaction, verify."""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from pyspark.sql import DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from decisionlake.config import AppConfig, ExportTableConfig
from decisionlake.logs import JobLogger
from decisionlake.warehouse import staging
from decisionlake.warehouse.ddl import columns_for, evolution, is_nested, length_aggs
from decisionlake.warehouse.plan import ConstraintViolationError, LoadPlan
from decisionlake.warehouse.reconcile import Totals, totals_aggs, totals_from

ROWS_PER_FILE = 2_000_000  # ~100 MB of score rows as Parquet: inside COPY's sweet spot


def aws_client(cfg: AppConfig, service: str) -> Any:
    """A boto3 client; the configured endpoint (moto locally) when there is one."""
    import boto3

    kwargs: dict[str, Any] = {"region_name": cfg.storage.region}
    if cfg.services.aws_endpoint:
        kwargs["endpoint_url"] = cfg.services.aws_endpoint
    return boto3.client(service, **kwargs)


def warehouse_credentials(cfg: AppConfig) -> dict[str, Any]:
    """Connection settings from Secrets Manager (never from config or the environment)."""
    secret = aws_client(cfg, "secretsmanager").get_secret_value(
        SecretId=cfg.services.warehouse_secret_id
    )
    return json.loads(secret["SecretString"])


def make_backend(cfg: AppConfig) -> Any:
    """The configured backend."""
    w = cfg.warehouse
    if w.backend == "postgres":
        from decisionlake.warehouse.postgres import PostgresBackend

        return PostgresBackend(warehouse_credentials(cfg), cfg.storage)
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


def _violation_aggs(
    df: DataFrame, keys: list[str], limits: dict[str, int], sample: int
) -> tuple[list[Any], Any]:
    key_text = F.concat_ws("|", *[F.coalesce(F.col(k).cast("string"), F.lit("NULL")) for k in keys])
    checks: dict[str, Any] = {f"NULL key {k}": F.col(k).isNull() for k in keys}
    for name, limit in limits.items():
        field = df.schema[name]
        value = F.to_json(F.col(name)) if is_nested(field.dataType) else F.col(name)
        checks[f"{name} longer than {limit} bytes"] = F.octet_length(value) > limit
    aggs = []
    for i, condition in enumerate(checks.values()):
        aggs += [
            F.sum(condition.cast("int")).alias(f"_v_n{i}"),
            F.slice(F.collect_list(F.when(condition, key_text)), 1, sample).alias(f"_v_s{i}"),
        ]

    def parse(row: Any) -> list[str]:
        return [
            f"{row[f'_v_n{i}']} row(s) with {rule}, e.g. keys {row[f'_v_s{i}']}"
            for i, rule in enumerate(checks)
            if row[f"_v_n{i}"]
        ]

    return aggs, parse


def violations(
    df: DataFrame, *, keys: list[str], limits: dict[str, int], sample: int = 5
) -> list[str]:
    """Rows the target would refuse (NULL key, value longer than its VARCHAR), with keys.

    One aggregate pass; only counts and a few sample keys reach the driver.
    """
    aggs, parse = _violation_aggs(df, keys, limits, sample)
    return parse(df.agg(*aggs).first()) if aggs else []


@dataclass(frozen=True)
class Profile:
    """Everything the export needs to know about the data before staging it."""

    problems: list[str]
    lengths: dict[str, int]
    totals: Totals
    slices: list[str]


def profile(
    df: DataFrame, *, keys: list[str], limits: dict[str, int], value: str, slice_column: str
) -> Profile:
    """Violations, string lengths, reconciliation totals and slices in ONE aggregate pass."""
    v_aggs, parse = _violation_aggs(df, keys, limits, 5)
    l_aggs = length_aggs(df)
    t_aggs = totals_aggs(keys=keys, value=value)
    slices = F.collect_set(F.col(slice_column).cast("string")).alias("_slices")  # run dates
    row = df.agg(*v_aggs, *l_aggs, *t_aggs, slices).first()  # one row
    return Profile(
        problems=parse(row),
        lengths={a: int(row[a] or 0) for a in (c.name for c in df.schema) if a in row.asDict()},
        totals=totals_from(row),
        slices=sorted(row["_slices"]),
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
    kept_staging: bool


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
    with log.stage("check", target=table.target) as st:
        existing = backend.existing_columns(table.target)
        limits = {
            name: int(kind.split("(")[1].rstrip(")"))
            for name, kind in (existing or {}).items()
            if kind.startswith("VARCHAR(") and name in df.columns
        }
        value = value_column if value_column in df.columns else table.keys[0]
        numeric = isinstance(df.schema[value].dataType, T.NumericType)
        value = value if numeric else table.keys[0]
        found = profile(df, keys=table.keys, limits=limits, value=value,
                        slice_column=table.slice_column)  # fmt: skip
        if found.problems:
            raise ConstraintViolationError(
                f"{table.target}: refused before loading: " + "; ".join(found.problems)
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
        st.add(rows=expected.rows, slices=slices, alters=alters, new_table=existing is None)

    prefix = f"{staging_prefix(cfg).rstrip('/')}/{table.target}/{run_id}"
    with log.stage("stage", prefix=prefix) as st:
        files = max(1, math.ceil(expected.rows / ROWS_PER_FILE))
        staged = staging.stage(df, prefix, storage=cfg.storage, files=files)
        st.add(files=len(staged.files), bytes=staged.bytes, manifest=staged.manifest)

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
        st.add(rows=found.rows, key_checksum=found.key_checksum)
    staging.clean(staged, cfg.storage)
    return ExportResult(
        table.target, found.rows, len(staged.files), staged.bytes, alters, prefix, False
    )
