"""The daily pipeline on real jobs: a backfill (the shared history) and a rerun of a day that
already succeeded, which must leave every table's content as it was.

Named to run before the model tests, which change the state a rerun would reproduce (a new
champion scores and monitors the day).
"""

from __future__ import annotations

from typing import Any

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from decisionlake.io.lake import delta_table_exists, read_delta
from decisionlake.ops.pipeline import in_process_executor, load_pipeline, run_pipeline

from .conftest import HISTORY_END, PIPELINE_PARALLELISM

pytestmark = [pytest.mark.integration, pytest.mark.slow]
# Columns that record when and by which run a row was written, not what it says.
VOLATILE = {"run_id", "ingested_at", "scored_at", "checked_at", "computed_at", "recorded_at"}
# ops.runs is the audit log: every run adds its own record, by design.
AUDIT_LOGS = {"ops.runs"}


def _fingerprints(spark: SparkSession, catalog: dict[str, str]) -> dict[str, tuple[int, int]]:
    """Row count and an order-independent hash of the stable columns of every table."""
    out = {}
    for name, uri in catalog.items():
        if name in AUDIT_LOGS or not delta_table_exists(spark, uri):
            continue
        table = read_delta(spark, uri)
        stable = [
            F.array_sort(F.map_entries(f.name))
            if isinstance(f.dataType, T.MapType)
            else F.col(f.name)
            for f in table.schema
            if f.name not in VOLATILE
        ]  # maps cannot be hashed; their sorted entries can
        row = table.agg(
            F.count("*").alias("n"), F.sum(F.xxhash64(*stable) % 1_000_003).alias("h")
        ).first()
        out[name] = (int(row["n"]), int(row["h"] or 0))
    return out


def test_backfill_succeeded_and_a_rerun_of_a_day_changes_nothing(
    spark: SparkSession, history: dict[str, Any]
) -> None:
    results = history["results"]
    days = {r.run_date for r in results}
    assert len(days) == 6 and all(r.status == "succeeded" for r in results)
    assert {r.step for r in results} == {s.name for s in load_pipeline().steps}
    cfg = history["cfg"]
    before = _fingerprints(spark, cfg.catalog())
    assert {"bronze.fund_trades", "gold.advisor_360", "silver.sessions"} <= set(before)
    again = run_pipeline(
        load_pipeline(), [HISTORY_END], in_process_executor("test"),
        settings=history["settings"], max_retries=0, parallelism=PIPELINE_PARALLELISM,
    )  # fmt: skip
    assert all(r.status == "succeeded" for r in again), [
        (r.step, r.reason) for r in again if r.status != "succeeded"
    ]
    after = _fingerprints(spark, cfg.catalog())
    changed = {
        name: (before.get(name), after[name]) for name in after if before.get(name) != after[name]
    }
    assert not changed


def test_a_failed_quality_gate_stops_scoring_and_publishing(
    history: dict[str, Any], tmp_path: Any
) -> None:
    """The shipped DAG from the gate on, with a fail-severity rule that cannot hold."""
    import yaml

    from decisionlake.ops.pipeline import main_exit_code

    shipped = yaml.safe_load((load_pipeline_path()).read_text())["pipeline"]
    keep = {"check_quality", "score", "build_call_list", "export_scores", "export_call_list",
            "publish", "monitor"}  # fmt: skip
    steps = [
        {**s, "depends_on": [d for d in s.get("depends_on", []) if d in keep]}
        for s in shipped["steps"]
        if s["name"] in keep
    ]
    path = tmp_path / "pipeline.yaml"
    path.write_text(yaml.safe_dump({"pipeline": {**shipped, "steps": steps}}))
    impossible = (
        "quality.expectations={gold.advisor_360: "
        "[{rule: range, column: sessions_90d, max: -1, severity: fail}]}"
    )
    results = run_pipeline(
        load_pipeline(path), [HISTORY_END], in_process_executor("test"),
        settings=[*history["settings"], impossible], max_retries=0,
        parallelism=PIPELINE_PARALLELISM,
    )  # fmt: skip
    status = {r.step: r.status for r in results}
    assert status["check_quality"] == "failed"
    gate = next(r for r in results if r.step == "check_quality")
    assert "sessions_90d" in gate.reason, gate.reason  # failed for this rule, nothing else
    stopped = ("score", "build_call_list", "export_scores", "export_call_list", "publish",
               "monitor")  # fmt: skip
    assert {status[s] for s in stopped} == {"skipped"}
    assert main_exit_code(results) == 1


def load_pipeline_path():
    from decisionlake.config import default_conf_dir

    return default_conf_dir() / "pipeline.yaml"
