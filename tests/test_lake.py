"""The I/O layer's commit figures: read from the commit file, equal to the table history."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pytest
from delta.tables import DeltaTable
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from decisionlake.io import lake

SCHEMA = T.StructType(
    [
        T.StructField("day", T.DateType(), False),
        T.StructField("key", T.StringType(), False),
        T.StructField("value", T.LongType()),
    ]
)


def _history(spark: SparkSession, uri: str) -> dict:
    row = DeltaTable.forPath(spark, uri).history(1).first()
    assert row is not None
    metrics = {k: int(v) for k, v in row["operationMetrics"].items() if v.isdigit()}
    return {"version": row["version"], "operation": row["operation"], **metrics}


def test_commit_figures_match_the_history(spark: SparkSession, tmp_path: Path) -> None:
    uri = str(tmp_path / "t")
    day = date(2026, 11, 24)
    rows = spark.createDataFrame([(day, "a", 1), (day, "b", 2)], SCHEMA)
    replaced = lake.replace_slice(rows, uri, predicate="day = '2026-11-24'", partition_by=["day"])
    assert replaced == _history(spark, uri)
    assert replaced["numOutputRows"] == 2

    more = spark.createDataFrame([(day, "b", 2), (day, "c", 3)], SCHEMA)
    merged = lake.merge_insert_new(
        spark, more, uri, keys=["key"], schema=SCHEMA, partition_by=["day"]
    )
    history = _history(spark, uri)
    commit = lake.latest_commit_info(spark, uri)  # read from the commit file, not the history
    assert commit is not None and commit["version"] == history["version"]
    assert merged["version"] == history["version"] == replaced["version"] + 1
    assert merged["numTargetRowsInserted"] == history["numTargetRowsInserted"] == 1
    assert merged["numSourceRows"] == history["numSourceRows"] == 2


def test_a_slice_is_written_as_one_file_per_partition_value(
    spark: SparkSession, tmp_path: Path
) -> None:
    """Delta's optimized write is on in every session the factory builds: rows of two dates
    spread over six tasks become two files (one per date), not twelve small ones (measured
    with it off); the rows are unchanged."""
    assert spark.conf.get("spark.databricks.delta.optimizeWrite.enabled") == "true"
    uri = str(tmp_path / "t")
    days = [date(2026, 11, 23), date(2026, 11, 24)]
    rows = spark.createDataFrame([(days[i % 2], f"k{i}", i) for i in range(60)], SCHEMA)
    written = lake.replace_slice(
        rows.repartition(6), uri, predicate="day >= '2026-11-23'", partition_by=["day"]
    )
    assert written["numFiles"] == 2 and written["numOutputRows"] == 60
    stored = sorted(tuple(r) for r in lake.read_delta(spark, uri).collect())
    assert stored == sorted(tuple(r) for r in rows.collect())
    # One write may leave it off (build_sessions' window, replaced whole on every run):
    # each of the six tasks then writes a file per date it holds.
    unshuffled = lake.replace_slice(
        rows.repartition(6), uri, predicate="day >= '2026-11-23'", partition_by=["day"],
        optimize_write=False,
    )  # fmt: skip
    assert unshuffled["numFiles"] == 12 and unshuffled["numOutputRows"] == 60
    assert spark.conf.get("spark.databricks.delta.optimizeWrite.enabled") == "true"


def test_writes_leave_the_session_able_to_run_a_forest(spark: SparkSession, tmp_path: Path) -> None:
    """Notebooks and the local runner train in the session that wrote the lake. A Spark
    Observation used by a write would break that: Spark 4.1's session then holds an
    unserializable ObservationManager, and a random forest (whose training summary refers to
    the session) fails with "Task not serializable" (CI failure at f4591cd)."""
    from pyspark.ml.classification import RandomForestClassifier
    from pyspark.ml.linalg import Vectors

    uri = str(tmp_path / "t")
    day = date(2026, 11, 24)
    rows = spark.createDataFrame([(day, "a", 1), (day, "b", 2)], SCHEMA)
    lake.replace_slice(rows, uri, predicate="day = '2026-11-24'", partition_by=["day"])
    lake.merge_insert_new(spark, rows, uri, keys=["key"], schema=SCHEMA, partition_by=["day"])
    data = spark.createDataFrame(
        [(float(i % 2), Vectors.dense([float(i), float(i % 3)])) for i in range(20)],
        ["label", "features"],
    )
    model = RandomForestClassifier(numTrees=3, seed=1).fit(data)
    assert model.transform(data).where("prediction = label").count() > 0


def test_no_module_uses_a_spark_observation() -> None:
    """The same hazard, caught where it starts: `.observe(` / `Observation(` in the package."""
    package = Path(lake.__file__).parent
    users = [
        str(p.relative_to(package))
        for p in package.rglob("*.py")
        if "Observation(" in p.read_text() or ".observe(" in p.read_text()
    ]
    assert not users, users


def test_commit_figures_fall_back_to_the_history_without_a_known_version(
    spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    uri = str(tmp_path / "t")
    spark.createDataFrame([(date(2026, 11, 24), "a", 1)], SCHEMA).write.format("delta").save(uri)
    assert lake.latest_commit_info(spark, str(tmp_path / "missing")) is None
    # The commit file cannot be read (Spark Connect, no JVM): the history answers instead.
    monkeypatch.setattr(lake, "latest_commit_info", lambda *_: None)
    found = lake.last_operation_metrics(spark, uri)
    assert found["numOutputRows"] == 1 and found["version"] == 0
    assert found["operation"] == _history(spark, uri)["operation"]


def test_text_lines_end_at_lf_only_and_lose_crlf_and_bom_but_nothing_else(
    spark: SparkSession, tmp_path: Path
) -> None:
    import gzip

    from decisionlake.io.lake import read_text_lines

    bom = "\ufeff".encode()
    content = (
        b'{"a": 1}\r\n'  # written on Windows
        b'{"note": "one\rvalue"}\n'  # a raw CR inside a value: still one line
        + bom
        + b'{"b": 2}\n'  # a later file's BOM, after concatenation
        + b'{"c": "\xff"}\n'  # invalid UTF-8 stays as it arrived
    )
    (tmp_path / "day").mkdir()
    with gzip.open(tmp_path / "day" / "events.json.gz", "wb") as out:
        out.write(content)
    rows = read_text_lines(spark, str(tmp_path / "day")).select(
        F.col("value").cast("binary").alias("b")
    )
    assert [bytes(r["b"]) for r in rows.collect()] == [
        b'{"a": 1}',
        b'{"note": "one\rvalue"}',
        b'{"b": 2}',
        b'{"c": "\xff"}',
    ]


def test_a_dimension_upsert_rerun_commits_nothing_and_a_change_updates_one_row(
    spark: SparkSession, tmp_path: Path
) -> None:
    uri = str(tmp_path / "dim")
    schema = T.StructType(
        [T.StructField("key", T.StringType(), False), T.StructField("value", T.LongType())]
    )
    rows = [(f"k{i}", i) for i in range(20)]

    def upsert(data: list[tuple]) -> dict:
        return lake.merge_insert_new(
            spark, spark.createDataFrame(data, schema), uri, keys=["key"], schema=schema,
            update_when_changed=["value"],
        )  # fmt: skip

    first = upsert(rows)
    assert first["numTargetRowsInserted"] == 20
    version = lake.table_version(spark, uri)
    again = upsert(rows)  # the same delivery again
    assert again == {"numTargetRowsInserted": 0, "numTargetRowsUpdated": 0, "numSourceRows": 20}
    assert lake.table_version(spark, uri) == version  # no commit, no file rewritten
    changed = upsert([*rows[:-1], ("k19", 190), ("k20", 20)])
    assert (changed["numTargetRowsInserted"], changed["numTargetRowsUpdated"]) == (1, 1)
    assert changed["numSourceRows"] == 21  # the delivery's rows, not only the changed ones
    assert lake.table_version(spark, uri) == version + 1
    values = dict(lake.read_delta(spark, uri).select("key", "value").collect())
    assert values["k19"] == 190 and values["k20"] == 20 and len(values) == 21


def test_a_delta_conflict_is_retried_and_a_persistent_one_says_so(monkeypatch) -> None:
    from delta.exceptions import ConcurrentAppendException

    monkeypatch.setattr(lake.time, "sleep", lambda _: None)
    calls: list[int] = []

    @lake.retry_conflicts
    def write(fail_times: int) -> str:
        calls.append(1)
        if len(calls) <= fail_times:
            raise ConcurrentAppendException("[DELTA_CONCURRENT_APPEND] files were added")
        return "committed"

    assert write(2) == "committed" and len(calls) == 3
    calls.clear()
    with pytest.raises(lake.ConcurrentWriteError, match="concurrent write, retried 3 times"):
        write(10)
    assert len(calls) == lake.CONFLICT_ATTEMPTS
    calls.clear()

    @lake.retry_conflicts
    def broken() -> None:
        calls.append(1)
        raise ValueError("not a conflict")

    with pytest.raises(ValueError):
        broken()
    assert len(calls) == 1  # anything else fails at once
    create_race = RuntimeError("[DELTA_CREATE_TABLE_WITH_NON_EMPTY_LOCATION] not empty")
    assert lake.is_conflict(create_race)
    # The other first writer's _delta_log folder exists, its first commit not yet.
    assert lake.is_conflict(
        RuntimeError("[DELTA_TABLE_NOT_FOUND] Delta table `/l/t` doesn't exist")
    )


def test_notebook_tables_are_queryable_in_sql_by_logical_name(
    spark: SparkSession, tmp_path: Path
) -> None:
    from decisionlake.ops.notebook import Tables, register_tables

    from .conftest import make_config

    cfg = make_config("test", tmp_path)
    rows = spark.createDataFrame([(date(2026, 11, 24), "A", 1)], SCHEMA)
    lake.overwrite_table(rows, cfg.table_uri("gold.advisor_360"))
    registered = register_tables(spark, Tables(spark, cfg))
    assert registered == ["gold.advisor_360"]  # only tables that exist
    assert spark.sql("SELECT count(*) AS n FROM gold.advisor_360").first()["n"] == 1
    again = make_config("test", tmp_path / "other")  # another lake: the name is re-pointed
    lake.overwrite_table(rows.union(rows), again.table_uri("gold.advisor_360"))
    register_tables(spark, Tables(spark, again))
    assert spark.sql("SELECT count(*) AS n FROM gold.advisor_360").first()["n"] == 2
    assert lake.read_delta(spark, cfg.table_uri("gold.advisor_360")).count() == 1  # untouched


def test_only_the_changed_dates_of_a_window_are_replaced_and_a_rerun_commits_nothing(
    spark: SparkSession, tmp_path: Path
) -> None:
    """replace_changed_slices: a date whose rows differ in any column (or in number) is
    replaced, an identical one is not rewritten, a date the source no longer has is emptied,
    and outside the window nothing is touched even when the source lacks it."""
    from decisionlake.core.frames import RunWindow

    uri = str(tmp_path / "sessions")
    d1, d2, d3, d4 = (date(2026, 11, d) for d in (1, 2, 3, 4))

    def replace(data: list[tuple], within: RunWindow) -> dict:
        return lake.replace_changed_slices(
            spark.createDataFrame(data, SCHEMA), uri, window=within, window_column="day",
            partition_by=["day"],
        )  # fmt: skip

    first = replace([(d1, "old", 1), (d2, "same", 2), (d3, "changes", 3), (d4, "goes", 4)],
                    RunWindow(d1, d4))  # fmt: skip
    assert first["datesReplaced"] == [d.isoformat() for d in (d1, d2, d3, d4)]
    d2_files = set(lake.read_delta(spark, uri).where(F.col("day") == d2).inputFiles())
    # d3's value changes (same key, same count); d4's row is gone; d1 is outside the window.
    rerun = [(d2, "same", 2), (d3, "changes", 30)]
    second = replace(rerun, RunWindow(d2, d4))
    assert second["datesReplaced"] == [d3.isoformat(), d4.isoformat()]
    rows = sorted(tuple(r) for r in lake.read_delta(spark, uri).collect())
    assert rows == sorted([(d1, "old", 1), *rerun])
    assert set(lake.read_delta(spark, uri).where(F.col("day") == d2).inputFiles()) == d2_files
    version = lake.table_version(spark, uri)
    assert replace(rerun, RunWindow(d2, d4)) == {"datesReplaced": [], "numOutputRows": 0}
    assert lake.table_version(spark, uri) == version  # no commit
    # One more row on a date: the count differs although every old row is the same.
    assert replace([*rerun, (d2, "extra", 7)], RunWindow(d2, d4))["datesReplaced"] == [
        d2.isoformat()
    ]
