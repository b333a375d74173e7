"""The line ingest commits bronze before the quarantine: never a quarantine without its day."""

from __future__ import annotations

import gzip
import json
from datetime import UTC, date, datetime
from pathlib import Path
from urllib.parse import unquote

import pytest
from delta.tables import DeltaTable
from pyspark.sql import SparkSession

from decisionlake.io import lake
from decisionlake.jobs import ingest

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
        assert ingest.main(["--source", "web", *_args(tmp_path)]) == 1
    assert not lake.delta_table_exists(spark, quarantine)  # no quarantine for a missing day

    assert ingest.main(["--source", "web", *_args(tmp_path)]) == 0
    assert lake.read_delta(spark, bronze).count() == 2
    assert lake.read_delta(spark, quarantine).count() == 1

    def committed_at(uri: str) -> datetime:
        return DeltaTable.forPath(spark, uri).history(1).first()["timestamp"]

    assert committed_at(bronze) <= committed_at(quarantine)


def _event_line(i: int) -> str:
    return json.dumps({"event_id": f"f{i}", "event_ts": TS + i, "cookie_id": "c2",
                       "event_type": "page_view", "url": "https://x.example/"})  # fmt: skip


def test_a_corrupt_file_is_quarantined_and_the_rest_of_the_day_ingested(
    spark: SparkSession, tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    folder = tmp_path / "landing" / "clickstream" / f"date={DAY}"
    folder.mkdir(parents=True)
    good = gzip.compress(("\n".join(_event_line(i) for i in range(3)) + "\n").encode())
    (folder / "good.json.gz").write_bytes(good)
    cut = gzip.compress(("\n".join(_event_line(i) for i in range(10, 400)) + "\n").encode())
    # A transfer that broke off, under a name Spark writes URI-encoded (cut%20off.json.gz).
    (folder / "cut off.json.gz").write_bytes(cut[: len(cut) // 2])
    (folder / "plain.json.gz").write_text(_event_line(900) + "\n")  # named .gz, is not
    (folder / "empty.json.gz").write_bytes(b"")
    two_members = gzip.compress((_event_line(500) + "\n").encode()) + gzip.compress(
        _event_line(501).encode()  # and no final newline
    )
    (folder / "two_members.json.gz").write_bytes(two_members)
    cfg = make_config("test", tmp_path)

    assert ingest.main(["--source", "web", *_args(tmp_path)]) == 0
    summary = json.loads(
        [ln for ln in capfd.readouterr().err.splitlines() if '"job_succeeded"' in ln][-1]
    )["summary"]
    assert summary["files"]["in"] == 5 and summary["files"]["read"] == 3
    assert summary["files"]["by_reason"] == {"CORRUPT_GZIP": 1, "NOT_GZIP": 1, "EMPTY_FILE": 1}
    assert summary["rows_in"] == summary["accepted"] == 5  # good (3) + two members (2)
    bronze = lake.read_delta(spark, cfg.table_uri("bronze.clickstream"))
    ids = {r["event_id"] for r in bronze.select("event_id").collect()}
    assert ids == {"f0", "f1", "f2", "f500", "f501"}  # nothing of the cut file half-ingested
    files = {
        unquote(Path(r["path"]).name): r
        for r in lake.read_delta(spark, cfg.table_uri("ops.file_quarantine")).collect()
    }
    assert set(files) == {"cut off.json.gz", "plain.json.gz"}
    cut_row = files["cut off.json.gz"]
    assert cut_row["reason"] == "CORRUPT_GZIP" and cut_row["size_bytes"] == len(cut) // 2
    assert 0 < cut_row["lines_readable"] < 390 and cut_row["bytes_readable"] > 0
    assert files["plain.json.gz"]["reason"] == "NOT_GZIP"

    # Configured to fail: the good files are still ingested, then the job says what failed.
    fail = [*_args(tmp_path), "--set", "ingest.web.quarantined_files=fail"]
    assert ingest.main(["--source", "web", *fail]) == 1
    assert "2 file(s) of 2026-11-24 quarantined" in capfd.readouterr().err.splitlines()[-1]
    assert lake.read_delta(spark, cfg.table_uri("bronze.clickstream")).count() == 5


def test_a_sound_file_read_only_in_part_fails_the_run_instead_of_half_ingesting() -> None:
    from decisionlake.io.ingest import IncompleteReadError, file_verdicts

    plain = lake.LandingFile("file:/l/a.json", 1_000, path="/l/a.json")
    whole = lake.LandingFile("file:/l/b.json", 500, path="/l/b.json")
    empty = lake.LandingFile("file:/l/c.json", 0, path="/l/c.json")
    bad, by_reason, read = file_verdicts(
        [whole, empty], {"file:/l/b.json": (10, 501)}, lambda _: {}
    )  # the last line without a newline: whole
    assert (bad, by_reason, read) == ([], {"EMPTY_FILE": 1}, 2)
    with pytest.raises(IncompleteReadError, match=r"a\.json \(400 of 1000 bytes\)"):
        file_verdicts([plain, whole], {"file:/l/a.json": (4, 400), "file:/l/b.json": (10, 500)},
                      lambda _: {})  # fmt: skip
    member = lake.LandingFile("file:/l/d.json.gz", 80, gzip_size=7, path="/l/d.json.gz")
    verified = {"file:/l/d.json.gz": {"ok": True, "bytes_readable": 900, "error": None}}
    with pytest.raises(IncompleteReadError):  # sound gzip, but only 300 of 900 bytes read
        file_verdicts([member], {"file:/l/d.json.gz": (3, 300)}, lambda _: verified)
    assert file_verdicts([member], {"file:/l/d.json.gz": (9, 900)}, lambda _: verified)[2] == 1
