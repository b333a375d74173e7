"""Warehouse export: DDL mapping, staged COPY into PostgreSQL, idempotent upsert,
reconciliation, a killed load, Redshift statements, and Glue registration."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from datetime import date, datetime, timezone
from pathlib import Path
from typing import Any

import psycopg2
import pytest
import sqlglot
from botocore.stub import ANY, Stubber
from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import types as T

from decisionlake.config import AppConfig
from decisionlake.core.aws import aws_client
from decisionlake.core.logs import JobLogger
from decisionlake.io.lake import overwrite_table
from decisionlake.jobs import publish
from decisionlake.models.scoring import SCORES_SCHEMA
from decisionlake.warehouse import ddl, staging
from decisionlake.warehouse.plan import ConstraintViolationError, LoadPlan, ReconciliationError
from decisionlake.warehouse.postgres import balanced_lanes, stage_prefix
from decisionlake.warehouse.reconcile import Totals, spark_totals
from decisionlake.warehouse.redshift import ConnectorBackend, DataApiBackend, load_statements
from decisionlake.warehouse.writer import export, make_backend

from .conftest import REPO, lake_args, make_config

pytestmark = pytest.mark.integration
DAY = date(2026, 11, 24)
AT = datetime(2026, 11, 25, 6, 0, tzinfo=timezone.utc)  # noqa: UP017


def _scores(spark: SparkSession, n: int = 40, *, day: date = DAY, shift: float = 0.0) -> DataFrame:
    rows = [
        (
            f"ADV{i:05d}",
            model,
            "3",
            day,
            round((i % 10) / 10 + shift, 4),
            1 + i % 10,
            None,
            [
                ("downloads_30d", 0.5, "downloads_30d high"),
                ("recency_days", -0.25, "recency_days low"),
            ],
            "run-1",
            AT,
        )
        for i in range(n)
        for model in ("advisor_propensity", "advisor_net_flow")
    ]
    return spark.createDataFrame(rows, SCORES_SCHEMA)


def _cfg(tmp_path: Path, **extra: Any) -> AppConfig:
    # Each test gets its own target table in the shared PostgreSQL.
    target = "analytics.t_" + re.sub(r"\W", "_", tmp_path.name)[:40]
    return make_config("test", tmp_path, **{"warehouse.exports.scores.target": target, **extra})


def _rows(url: str, sql: str) -> list[tuple]:
    with psycopg2.connect(url) as conn, conn.cursor() as cur:
        cur.execute(sql)
        return cur.fetchall()


def _target_sql(cfg: AppConfig) -> str:
    return (
        "SELECT model_name, advisor_id, as_of_date, score, decile, top_features::text "
        f"FROM {cfg.warehouse.exports['scores'].target} ORDER BY 1, 2"
    )


def test_ddl_types_from_the_spark_schema_and_data() -> None:
    schema = T.StructType(
        [
            T.StructField("id", T.StringType()),
            T.StructField("amount", T.DecimalType(18, 2)),
            T.StructField("day", T.DateType()),
            T.StructField("at", T.TimestampType()),
            T.StructField("local_at", T.TimestampNTZType()),
            T.StructField("n", T.LongType()),
            T.StructField("x", T.DoubleType()),
            T.StructField("tags", T.ArrayType(T.StringType())),
        ]
    )
    common = {"keys": ["id"], "headroom": 1.5, "minimum": 16}
    pg = ddl.columns_for(schema, {"id": 40, "tags": 10}, dialect="postgres", **common)
    rs = ddl.columns_for(schema, {"id": 40, "tags": 10}, dialect="redshift", **common)
    assert [c.type for c in pg] == ["VARCHAR(64)", "DECIMAL(18,2)", "DATE", "TIMESTAMPTZ",
                                   "TIMESTAMP", "BIGINT", "DOUBLE PRECISION", "JSONB"]  # fmt: skip
    assert rs[-1].type == "SUPER" and not pg[0].nullable and pg[1].nullable
    create = ddl.create_table("a.t", rs, dialect="redshift", distkey="id", sortkey=["day"])
    parsed = sqlglot.parse_one(create, read="redshift")
    assert isinstance(parsed, sqlglot.exp.Create)
    assert 'DISTKEY ("id")' in create and 'COMPOUND SORTKEY ("day")' in create

    wanted = [*pg, ddl.Column("new_col", "VARCHAR(16)")]
    existing = {c.name: c.type for c in pg}
    assert ddl.evolution("a.t", existing, wanted, longest={}) == [
        'ALTER TABLE "a"."t" ADD COLUMN "new_col" VARCHAR(16)'
    ]
    with pytest.raises(ddl.SchemaEvolutionError, match=r"a\.t\.n: is VARCHAR\(10\).*incompatible"):
        ddl.evolution("a.t", {**existing, "n": "VARCHAR(10)"}, pg, longest={})
    with pytest.raises(ddl.SchemaEvolutionError, match="dropping columns is not automatic"):
        ddl.evolution("a.t", {**existing, "gone": "DATE"}, pg, longest={})


def test_export_to_postgres_is_idempotent_and_evolves_additively(
    spark: SparkSession, warehouse_secret: dict, tmp_path: Path
) -> None:
    cfg = _cfg(tmp_path)
    table = cfg.warehouse.exports["scores"]
    log = JobLogger("test", "r1")
    first = export(_scores(spark), table, cfg=cfg, backend=make_backend(cfg), run_id="r1", log=log)
    assert first.rows == 80 and first.files >= 1
    loaded = _rows(warehouse_secret["url"], _target_sql(cfg))
    assert len(loaded) == 80 and json.loads(loaded[0][5])[0]["feature"] == "downloads_30d"
    assert not Path(first.staged_prefix).exists()  # staging cleaned on success

    # The same slice again: identical table, no duplicates.
    export(_scores(spark), table, cfg=cfg, backend=make_backend(cfg), run_id="r2", log=log)
    assert _rows(warehouse_secret["url"], _target_sql(cfg)) == loaded

    # A rescored slice with fewer advisors and a new nullable column: upserted, stale rows gone,
    # the column added by ALTER TABLE.
    from pyspark.sql import functions as F

    rescored = _scores(spark, n=30, shift=0.01).withColumn("segment_label", F.lit("growth"))
    result = export(rescored, table, cfg=cfg, backend=make_backend(cfg), run_id="r3", log=log)
    schema, name = table.target.split(".")
    assert result.alters == [
        f'ALTER TABLE "{schema}"."{name}" ADD COLUMN "segment_label" VARCHAR(16)'
    ]
    after = _rows(
        warehouse_secret["url"],
        f"SELECT count(*), count(segment_label), round(sum(score)::numeric, 4) FROM {table.target}",
    )
    expected = spark_totals(rescored, keys=table.keys, value="score")
    assert after[0][0] == 60 == expected.rows and after[0][1] == 60
    assert float(after[0][2]) == pytest.approx(expected.value_sum)

    # Each slice is a partition: the daily load swapped the staged table in (no second write);
    # an export holding two slices goes through delete-then-insert into both partitions.
    assert _partitions(warehouse_secret["url"], table.target) == [f"{name}__2026-11-24"]
    two_days = rescored.unionByName(
        _scores(spark, n=4, day=date(2026, 11, 25)).withColumn("segment_label", F.lit("new"))
    )
    export(two_days, table, cfg=cfg, backend=make_backend(cfg), run_id="r4", log=log)
    assert _partitions(warehouse_secret["url"], table.target) == [
        f"{name}__2026-11-24",
        f"{name}__2026-11-25",
    ]
    per_day = _rows(
        warehouse_secret["url"],
        f"SELECT as_of_date::text, count(*) FROM {table.target} GROUP BY 1 ORDER BY 1",
    )
    assert per_day == [("2026-11-24", 60), ("2026-11-25", 8)]

    # A later day whose strings size a different VARCHAR (still within the target's) swaps in:
    # the staging table takes the target's column types, not today's.
    longer = _scores(spark, n=4, day=date(2026, 11, 26)).withColumn(
        "run_id", F.lit("run-123456789")
    )
    export(longer.withColumn("segment_label", F.lit("x")), table, cfg=cfg,
           backend=make_backend(cfg), run_id="r5", log=log)  # fmt: skip
    assert _partitions(warehouse_secret["url"], table.target)[-1] == f"{name}__2026-11-26"
    assert not _stages(warehouse_secret["url"], table.target)  # staging tables dropped


def test_a_load_of_one_file_uses_every_connection_one_row_group_each(
    spark: SparkSession, warehouse_secret: dict, tmp_path: Path
) -> None:
    # Tiny row groups: the one staged file holds many, and the loader deals them to all three
    # connections instead of loading the file on one.
    cfg = _cfg(tmp_path, **{"warehouse.stage_row_group_mb": 0.002,
                            "warehouse.load_connections": 3})  # fmt: skip
    table = cfg.warehouse.exports["scores"]
    backend = make_backend(cfg)
    rows = _scores(spark, n=3000).coalesce(1)
    result = export(rows, table, cfg=cfg, backend=backend, run_id="one", log=JobLogger("t", "r"))
    assert result.files == 1 and result.rows == 6000
    assert backend.last["lanes"] == 3 and backend.last["copied"] == 6000
    loaded = _rows(warehouse_secret["url"], f"SELECT count(*), count(DISTINCT (advisor_id, "
                   f"model_name)) FROM {table.target}")  # fmt: skip
    assert loaded == [(6000, 6000)]


def test_row_groups_are_dealt_to_lanes_by_rows() -> None:
    units = [("a", 0, 100), ("a", 1, 100), ("a", 2, 10), ("b", 0, 90), ("b", 1, 5)]
    lanes = balanced_lanes(units, 3)
    assert sorted(u for lane in lanes for u in lane) == sorted(units)  # each unit exactly once
    assert sorted(sum(u[2] for u in lane) for lane in lanes) == [100, 100, 105]
    assert balanced_lanes(units[:1], 4) == [[units[0]]]  # never more lanes than units
    assert balanced_lanes([], 4) == []


def _stages(url: str, table: str) -> list[str]:
    schema = table.split(".")[0]
    names = _rows(url, f"SELECT tablename FROM pg_tables WHERE schemaname = '{schema}'")
    return [n for (n,) in names if n.startswith(stage_prefix(table))]


def _partitions(url: str, table: str) -> list[str]:
    return [
        r[0].split(".")[-1].strip('"')
        for r in _rows(
            url,
            f"SELECT inhrelid::regclass::text FROM pg_inherits "
            f"WHERE inhparent = '{table}'::regclass ORDER BY 1",
        )
    ]


def test_bad_rows_are_reported_with_their_keys_before_any_load(
    spark: SparkSession, warehouse_secret: dict, tmp_path: Path
) -> None:
    cfg = _cfg(tmp_path)
    table = cfg.warehouse.exports["scores"]
    log = JobLogger("test", "r")
    export(_scores(spark, n=5), table, cfg=cfg, backend=make_backend(cfg), run_id="base", log=log)
    before = _rows(warehouse_secret["url"], _target_sql(cfg))
    from pyspark.sql import functions as F

    bad = _scores(spark, n=5).withColumn(
        "advisor_id",
        F.when(F.col("advisor_id") == "ADV00001", F.lit(None))
        .when(F.col("advisor_id") == "ADV00002", F.lit("X" * 500))
        .otherwise(F.col("advisor_id")),
    )
    with pytest.raises(ConstraintViolationError) as caught:
        export(bad, table, cfg=cfg, backend=make_backend(cfg), run_id="bad", log=log)
    message = str(caught.value)
    assert "2 row(s) with NULL key advisor_id" in message and "NULL" in message
    assert "advisor_id longer than" in message and "XXXXXXXX" in message
    assert _rows(warehouse_secret["url"], _target_sql(cfg)) == before
    assert not (Path(cfg.paths.artifacts) / "warehouse-staging" / table.target / "bad").exists()


def test_reconciliation_mismatch_rolls_back_and_keeps_staging(
    spark: SparkSession, warehouse_secret: dict, tmp_path: Path
) -> None:
    cfg = _cfg(tmp_path)
    table = cfg.warehouse.exports["scores"]
    backend = make_backend(cfg)
    export(
        _scores(spark, n=8), table, cfg=cfg, backend=backend, run_id="ok", log=JobLogger("t", "r")
    )
    before = _rows(warehouse_secret["url"], _target_sql(cfg))
    df = _scores(spark, n=8, shift=0.05)
    staged = staging.stage(df, str(tmp_path / "stage"), storage=cfg.storage, files=2)
    good = spark_totals(df, keys=table.keys, value="score")
    lengths = ddl.string_lengths(df)
    plan = LoadPlan(
        target=table.target, keys=table.keys,
        columns=ddl.columns_for(df.schema, lengths, dialect="postgres", keys=table.keys,
                                headroom=1.5, minimum=16),
        slice_column="as_of_date", slices=[DAY.isoformat()], value_column="score",
        expected=Totals(good.rows, good.key_checksum + 1, good.value_sum), run_id="mismatch",
    )  # fmt: skip
    with pytest.raises(ReconciliationError, match="rolled back"):
        backend.load(staged, plan)
    assert _rows(warehouse_secret["url"], _target_sql(cfg)) == before
    assert all(Path(p).exists() for p, _ in staged.files)
    manifest = json.loads(Path(staged.manifest).read_text())
    assert len(manifest["entries"]) == 2
    assert all(e["mandatory"] and e["meta"]["content_length"] > 0 for e in manifest["entries"])


def test_a_load_killed_between_copy_and_commit_changes_nothing(
    spark: SparkSession, warehouse_secret: dict, tmp_path: Path
) -> None:
    cfg = _cfg(tmp_path)
    table = cfg.warehouse.exports["scores"]
    earlier = _scores(spark, n=6, day=date(2026, 11, 23))
    export(earlier, table, cfg=cfg, backend=make_backend(cfg), run_id="d1", log=JobLogger("t", "r"))
    before = _rows(warehouse_secret["url"], _target_sql(cfg))
    overwrite_table(_scores(spark, n=12), cfg.table_uri("gold.scores"))
    args = [sys.executable, "-m", "decisionlake.cli", "run", "export_scores", "--env", "test",
            "--run-date", DAY.isoformat(),
            "--set", f"warehouse.exports.scores.target={table.target}"]  # fmt: skip
    for setting in lake_args(cfg):
        args += ["--set", setting]
    env = {**os.environ, "DECISIONLAKE_FAULT": "after_copy"}
    killed = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert killed.returncode == 137, killed.stderr[-2000:]
    assert "fault injected at after_copy" in killed.stderr
    assert _rows(warehouse_secret["url"], _target_sql(cfg)) == before  # nothing committed
    staged = Path(cfg.paths.artifacts) / "warehouse-staging" / table.target
    assert any(staged.rglob("*.parquet"))  # the staging prefix is kept for inspection
    env.pop("DECISIONLAKE_FAULT")
    # A recent staging folder may be a load still running: kept (the default, 60 minutes).
    rerun = subprocess.run(args, env=env, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert any(staged.rglob("*.parquet"))
    after = _rows(warehouse_secret["url"], _target_sql(cfg))
    assert len(after) == len(before) + 24 and set(before) <= set(after)
    assert not _stages(warehouse_secret["url"], table.target)  # the killed load's table dropped
    # Old enough, the next successful load removes the killed load's staged files too.
    again = [*args, "--set", "warehouse.stale_staging_minutes=0"]
    rerun = subprocess.run(again, env=env, capture_output=True, text=True, timeout=300, cwd=REPO)
    assert rerun.returncode == 0, rerun.stderr[-2000:]
    assert not any(staged.rglob("*.parquet")) and not list(staged.iterdir())
    assert sorted(_rows(warehouse_secret["url"], _target_sql(cfg))) == sorted(after)  # exact


def _plan(df: DataFrame) -> LoadPlan:
    keys = ["model_name", "as_of_date", "advisor_id"]
    return LoadPlan(
        target="analytics.advisor_scores",
        keys=keys,
        columns=ddl.columns_for(df.schema, ddl.string_lengths(df), dialect="redshift", keys=keys,
                                headroom=1.5, minimum=16),
        slice_column="as_of_date", slices=[DAY.isoformat()], value_column="score",
        expected=spark_totals(df, keys=keys, value="score"), run_id="0123456789abcdef",
        distkey="advisor_id", sortkey=["as_of_date", "model_name"],
    )  # fmt: skip


def _staged() -> staging.StagedData:
    prefix = "s3a://decisionlake-artifacts/warehouse-staging/analytics.advisor_scores/r1"
    return staging.StagedData(
        prefix, f"{prefix}/manifest.json", [(f"{prefix}/data/p0.parquet", 10)], []
    )


def test_redshift_data_api_sends_one_transaction_in_order(spark: SparkSession) -> None:
    import boto3

    from decisionlake.config import RedshiftConfig

    plan = _plan(_scores(spark, n=3))
    client = boto3.client("redshift-data", region_name="us-east-1",
                          aws_access_key_id="testing", aws_secret_access_key="testing")  # fmt: skip
    settings = RedshiftConfig(
        workgroup="wg1",
        database="analytics",
        iam_role_arn="arn:aws:iam::123456789012:role/copy",
        secret_arn="arn:aws:secretsmanager:us-east-1:123456789012:secret:w",
    )
    sent: dict[str, Any] = {}
    with Stubber(client) as stub:
        stub.add_response(
            "batch_execute_statement",
            {"Id": "b1", "Database": "analytics", "WorkgroupName": "wg1"},
            {"WorkgroupName": "wg1", "Database": "analytics", "SecretArn": settings.secret_arn,
             "Sqls": ANY, "StatementName": "decisionlake-0123456789ab"},
        )  # fmt: skip
        stub.add_response("describe_statement", {"Id": "b1", "Status": "FINISHED"}, {"Id": "b1"})
        client.meta.events.register(
            "provide-client-params.redshift-data.BatchExecuteStatement",
            lambda params, **_: sent.update(params),
        )
        DataApiBackend(client, settings, poll_seconds=0).load(_staged(), plan)
        stub.assert_no_pending_responses()
    statements = [sqlglot.parse_one(s, read="redshift") for s in sent["Sqls"]]
    kinds = [type(s).__name__ for s in statements]
    assert kinds == ["Create", "Create", "Copy", "Merge", "Delete", "Select"]
    assert not any(isinstance(s, sqlglot.exp.Transaction | sqlglot.exp.Commit) for s in statements)
    copy = sent["Sqls"][2]
    assert "FROM 's3://decisionlake-artifacts/warehouse-staging/" in copy and copy.endswith(
        "FORMAT AS PARQUET MANIFEST"
    )
    assert "IAM_ROLE 'arn:aws:iam::123456789012:role/copy'" in copy
    assert 'JSON_PARSE(s."top_features")' in sent["Sqls"][3]
    assert f"c = {plan.expected.rows}" in sent["Sqls"][5]


class _FakeCursor:
    def __init__(self, log: list[str], fail_on: str) -> None:
        self.log, self.fail_on = log, fail_on

    def execute(self, sql: str, params: Any = None) -> None:
        self.log.append(sql)
        if self.fail_on and sql.startswith(self.fail_on):
            raise RuntimeError("ERROR: division by zero")


class _FakeConnection:
    def __init__(self, fail_on: str = "") -> None:
        self.log: list[str] = []
        self.fail_on = fail_on
        self.autocommit = True

    def cursor(self) -> _FakeCursor:
        return _FakeCursor(self.log, self.fail_on)

    def commit(self) -> None:
        self.log.append("COMMIT")

    def rollback(self) -> None:
        self.log.append("ROLLBACK")

    def close(self) -> None:
        self.log.append("CLOSE")


def test_redshift_connector_commits_once_and_rolls_back_a_mismatch(spark: SparkSession) -> None:
    from decisionlake.config import RedshiftConfig

    plan = _plan(_scores(spark, n=3))
    ok = _FakeConnection()
    ConnectorBackend(lambda: ok, RedshiftConfig(iam_role_arn="arn:r")).load(_staged(), plan)
    assert ok.autocommit is False and ok.log[-2:] == ["COMMIT", "CLOSE"]
    assert ok.log[:-2] == load_statements(plan, _staged(), iam_role_arn="arn:r")
    bad = _FakeConnection(fail_on="SELECT 1 /")
    with pytest.raises(ReconciliationError):
        ConnectorBackend(lambda: bad, RedshiftConfig(iam_role_arn="arn:r")).load(_staged(), plan)
    assert "COMMIT" not in bad.log and bad.log[-2:] == ["ROLLBACK", "CLOSE"]


def test_publish_copies_and_registers_in_glue(
    spark: SparkSession, moto_server: Any, tmp_path: Path
) -> None:
    cfg = _cfg(tmp_path)
    overwrite_table(_scores(spark, n=4), cfg.table_uri("gold.scores"))
    argv = ["--env", "test", "--run-date", DAY.isoformat(), "--set", "publish.tables=[gold.scores]"]
    for setting in lake_args(cfg):
        argv += ["--set", setting]
    for _ in range(2):  # a rerun updates the registration instead of failing
        assert publish.main(argv) == 0
    glue = aws_client(cfg, "glue")
    table = glue.get_table(DatabaseName="decisionlake_curated", Name="gold_scores")["Table"]
    location = table["StorageDescriptor"]["Location"]
    assert (
        location.endswith("/curated/gold/scores")
        and table["Parameters"]["classification"] == "delta"
    )
    columns = {c["Name"]: c["Type"] for c in table["StorageDescriptor"]["Columns"]}
    assert columns["score"] == "double" and columns["as_of_date"] == "date"
    assert spark.read.format("delta").load(location).count() == 8
