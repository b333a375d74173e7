"""The line ingest commits bronze before the quarantine: never a quarantine without its day."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from delta.tables import DeltaTable
from pyspark.sql import SparkSession

from decisionlake import lake
from decisionlake.jobs import ingest_clickstream

from .conftest import make_config

DAY = date(2026, 11, 24)
TS = int(datetime(2026, 11, 24, 9, tzinfo=UTC).timestamp() * 1000)


def _landing(root: Path) -> None:
    folder = root / "landing" / "clickstream" / f"date={DAY}"
    folder.mkdir(parents=True)
    events = [
        {"event_id": f"e{i}", "event_ts": TS + i, "cookie_id": "c1", "event_type": "page_view",
         "url": "https://x.example/funds"}
        for i in range(2)
    ]  # fmt: skip
    lines = [json.dumps(e) for e in events] + ["{not json"]
    with gzip.open(folder / "part-0.json.gz", "wt") as out:
        out.write("\n".join(lines) + "\n")


def _args(root: Path) -> list[str]:
    return ["--env", "test", "--run-date", DAY.isoformat(),
            "--set", f"paths.landing={root / 'landing'}", "--set", f"paths.lake={root / 'lake'}",
            "--set", f"paths.artifacts={root / 'artifacts'}"]  # fmt: skip


def test_quarantine_commits_after_bronze_and_not_at_all_when_bronze_fails(
    spark: SparkSession, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _landing(tmp_path)
    cfg = make_config("test", tmp_path)
    quarantine = cfg.table_uri("bronze.clickstream_quarantine")
    bronze = cfg.table_uri("bronze.clickstream")

    def merge_fails(*args: object, **kwargs: object) -> dict:
        raise RuntimeError("killed before the bronze commit")

    with monkeypatch.context() as patch:
        patch.setattr(lake, "merge_insert_new", merge_fails)
        assert ingest_clickstream.main(_args(tmp_path)) == 1
    assert not lake.delta_table_exists(spark, quarantine)  # no quarantine for a missing day

    assert ingest_clickstream.main(_args(tmp_path)) == 0
    assert lake.read_delta(spark, bronze).count() == 2
    assert lake.read_delta(spark, quarantine).count() == 1

    def committed_at(uri: str) -> datetime:
        return DeltaTable.forPath(spark, uri).history(1).first()["timestamp"]

    assert committed_at(bronze) <= committed_at(quarantine)
