"""The text path end to end: generated notes and emails, the planted-PII scan, determinism,
and a slice of the real CFPB complaint narratives."""

from __future__ import annotations

import json
import re
from datetime import date, timedelta
from pathlib import Path

import pandas as pd
import pytest
from chispa import assert_df_equality
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from decisionlake.config import AppConfig
from decisionlake.dev.generate import build_spec, generate
from decisionlake.io.lake import delta_table_exists, read_delta
from decisionlake.jobs import (
    build_advisor_360,
    build_identity,
    build_sessions,
    build_text_features,
    ingest,
    ingest_text,
)
from decisionlake.text import pipeline_store
from decisionlake.text.features import score_notes, vocabulary

from .conftest import REAL_DATA, make_config, run_ok

pytestmark = pytest.mark.integration
END = date(2026, 11, 24)
DAYS = [END - timedelta(days=1), END]


def _args(cfg: AppConfig, day: date, *extra: str) -> list[str]:
    return [
        "--env", "test", "--run-date", day.isoformat(),
        "--set", f"paths.landing={cfg.paths.landing}",
        "--set", f"paths.lake={cfg.paths.lake}",
        "--set", f"paths.artifacts={cfg.paths.artifacts}",
        "--set", f"services.mlflow_tracking_uri={cfg.services.mlflow_tracking_uri}",
        *extra,
    ]  # fmt: skip


@pytest.fixture(scope="module")
def text_lake(
    spark: SparkSession, tmp_path_factory: pytest.TempPathFactory, moto_server: object
) -> dict:
    """Two generated days; the jobs read the pseudonymisation key from Secrets Manager (moto)."""
    root = tmp_path_factory.mktemp("text")
    cfg = make_config(
        "test", root, **{"services.mlflow_tracking_uri": f"sqlite:///{root}/mlflow/mlflow.db"}
    )
    manifest = generate(spark, cfg, build_spec(cfg, end_date=END, days=2, advisors=60, seed=5))
    # The whole path once, here: every test below reads it, in any order.
    assert ingest.main(["--source", "crm", *_args(cfg, END)]) == 0
    ingested = {day: run_ok(ingest_text, _args(cfg, day)) for day in DAYS}
    for day in DAYS:
        assert ingest.main(["--source", "web", *_args(cfg, day)]) == 0
    for job in (build_sessions, build_identity, build_text_features, build_advisor_360):
        assert job.main(_args(cfg, END)) == 0
    return {"cfg": cfg, "manifest": manifest, "root": root, "ingested": ingested}


def test_text_ingest_accounts_for_every_line_and_file(spark: SparkSession, text_lake: dict) -> None:
    cfg, root = text_lake["cfg"], text_lake["root"]
    landing = Path(cfg.paths.landing)
    for day in DAYS:
        lines = sum(
            len(f.read_bytes().splitlines())
            for f in (landing / "crm_notes" / f"date={day}").glob("*.json")
        )
        files = len(list((landing / "crm_files" / f"date={day}").iterdir()))
        damaged = sum(
            json.loads(f["stats"]).get("malformed", 0)
            for f in json.loads(next((landing / "_manifests").glob("*.json")).read_text())["files"]
            if f["kind"] == "crm_notes" and f["date"] == day.isoformat()
        )
        summary = text_lake["ingested"][day]
        assert summary["rows_in"] == lines + files > 0
        assert summary["quarantined"] == damaged
        assert summary["accepted"] + summary["quarantined"] == summary["rows_in"]
        # A rerun of the day adds and changes nothing.
        again = run_ok(ingest_text, _args(cfg, day))
        assert (again["inserted"], again["updated"], again["silver_inserted"]) == (0, 0, 0)
    bronze = read_delta(spark, cfg.table_uri("bronze.crm_notes"))
    silver = read_delta(spark, cfg.table_uri("silver.crm_notes"))
    assert bronze.count() == silver.count() == bronze.select("note_id").distinct().count()
    kinds = {r["source_kind"] for r in bronze.select("source_kind").distinct().collect()}
    assert kinds == {"json", "txt", "eml"}
    encodings = {r["encoding"] for r in bronze.select("encoding").distinct().collect()}
    assert {"utf-8", "iso-8859-1"} <= encodings
    # Every email's quoted reply and signature is gone from the analysed text.
    assert silver.where(F.col("text").rlike(r"(?m)^> |wrote:|^-- ?$")).count() == 0
    assert silver.where("advisor_id IS NULL").count() == 0  # emails linked through the CRM
    del root


def test_no_planted_pii_in_any_silver_or_gold_table(spark: SparkSession, text_lake: dict) -> None:
    cfg = text_lake["cfg"]
    crm = read_delta(spark, cfg.table_uri("bronze.crm_advisors"))
    planted: set[str] = set()
    for row in crm.select("first_name", "last_name", "email", "phone").collect():  # 60 rows
        planted |= {f"{row['first_name']} {row['last_name']}", row["email"], row["phone"]}
    bodies = [r["body"] for r in read_delta(spark, cfg.table_uri("bronze.crm_notes")).collect()]
    in_text: set[str] = set()
    for pattern in (r"\b4\d{3}-\d{4}-\d{2}\b", r"\b\d{3}-\d{2}-\d{4}\b", r"token=\w+"):
        in_text |= {m for body in bodies for m in re.findall(pattern, body)}
    assert in_text  # account numbers, SSN-like numbers or personal links were planted
    planted |= in_text
    needle = "(?i)(" + "|".join(re.escape(p) for p in sorted(planted)) + ")"
    scanned = 0
    for name in cfg.catalog():
        if name.startswith("bronze.") or not delta_table_exists(spark, cfg.table_uri(name)):
            continue
        table = read_delta(spark, cfg.table_uri(name))
        as_text = F.to_json(F.struct(*[F.col(c) for c in table.columns]))
        leaks = table.where(as_text.rlike(needle)).count()
        assert leaks == 0, f"{name} holds raw PII"
        scanned += 1
    assert scanned >= 12
    # Every data file of every version too, read as plain Parquet (no Delta, no Spark).
    import pyarrow.parquet as pq

    pattern = re.compile(needle)
    files = 0
    for tier in ("silver", "gold"):
        for path in (Path(cfg.paths.lake) / tier).rglob("*.parquet"):
            if "_delta_log" not in path.parts:
                text = json.dumps(pq.read_table(path).to_pylist(), default=str)
                assert not pattern.search(text), f"raw PII in {path}"
                files += 1
    # The file walk found files: at least as many as the tables scanned above (a floor, not a
    # count: optimized writes make a written slice one file per partition value, so how many
    # files there are says more about the layout than about the scan).
    assert files >= scanned


def test_features_are_deterministic(spark: SparkSession, text_lake: dict) -> None:
    cfg = text_lake["cfg"]
    version = pipeline_store.find_version(cfg)
    assert version is not None
    notes = read_delta(spark, cfg.table_uri("silver.crm_notes"))
    model = pipeline_store.load(version)
    first = score_notes(notes, model, settings=cfg.text, model_version=version.version)
    second = score_notes(
        notes, pipeline_store.load(version), settings=cfg.text, model_version=version.version
    )
    assert_df_equality(first, second, ignore_row_order=True)
    stored = read_delta(spark, cfg.table_uri("silver.note_features")).select(*first.columns)
    assert_df_equality(first, stored, ignore_row_order=True, ignore_nullable=True)


def test_model_is_reused_unless_a_refit_is_asked(spark: SparkSession, text_lake: dict) -> None:
    cfg = text_lake["cfg"]
    current = pipeline_store.find_version(cfg).version
    again = run_ok(build_text_features, _args(cfg, END))
    assert (again["refit"], again["model_version"], again["notes_scored"]) == (False, current, 0)
    refit = run_ok(build_text_features, _args(cfg, END, "--set", "text.refit=true"))
    notes = read_delta(spark, cfg.table_uri("silver.crm_notes")).count()
    assert refit["refit"] and refit["model_version"] != current
    assert refit["notes_scored"] == notes  # every note rescored with the new version
    assert pipeline_store.find_version(cfg).version == refit["model_version"]
    topics = read_delta(spark, cfg.table_uri("gold.text_topics"))
    assert topics.select("model_version").distinct().count() == 2  # both versions readable


def test_real_cfpb_narratives_through_the_text_path(spark: SparkSession, tmp_path: Path) -> None:
    cfg = make_config(
        "test", tmp_path, **{"services.mlflow_tracking_uri": f"sqlite:///{tmp_path}/mlflow.db"}
    )
    source = pd.read_csv(REAL_DATA / "cfpb" / "complaints_sample.csv")
    narratives = source.dropna(subset=["Consumer complaint narrative"]).head(400)
    day = date(2020, 3, 31)
    notes_dir = Path(cfg.paths.landing) / "crm_notes" / f"date={day}"
    notes_dir.mkdir(parents=True)
    with (notes_dir / "cfpb.json").open("w", encoding="utf-8") as out:
        for _, row in narratives.iterrows():
            note = {"note_id": f"CFPB-{row['Complaint ID']}", "advisor_id": "CONSUMER",
                    "author": "CFPB", "created_at": f"{row['Date received']}T00:00:00Z",
                    "channel": "complaint", "subject": row["Issue"],
                    "body": row["Consumer complaint narrative"]}  # fmt: skip
            out.write(json.dumps(note, ensure_ascii=False) + "\n")
    crm_dir = Path(cfg.paths.landing) / "crm" / "advisors"
    crm_dir.mkdir(parents=True)
    (crm_dir / "one.json").write_text(json.dumps({"advisor_id": "CONSUMER"}) + "\n")
    assert ingest.main(["--source", "crm", *_args(cfg, day)]) == 0
    summary = run_ok(ingest_text, _args(cfg, day))
    assert summary["rows_in"] == summary["accepted"] == len(narratives)  # nothing lost
    args = _args(cfg, day, "--set", "text.lda_topics=5", "--set", "text.min_doc_freq=3")
    topics = run_ok(build_text_features, args)["topics"]
    print("\nCFPB topics:\n" + "\n".join(f"  {k}: {', '.join(v)}" for k, v in topics.items()))
    terms = vocabulary(pipeline_store.load(pipeline_store.find_version(cfg)))
    assert not [t for t in terms if re.search(r"(^|\s)x{2,}(\s|$)", t)]  # masks are no words
    terms = {t for words in topics.values() for t in words}
    assert terms & {"credit", "report", "debt", "account", "collection", "loan", "payment"}
    assert read_delta(spark, cfg.table_uri("silver.note_features")).count() == len(narratives)


def test_erasure_removes_a_person_from_every_parquet_file(
    spark: SparkSession, text_lake: dict, tmp_path: Path
) -> None:
    """On a copy of the module's lake and landing zone: the other tests keep the person."""
    import shutil

    import pyarrow.parquet as pq

    from decisionlake.ops.erase import erase

    built = text_lake["cfg"]
    for part in ("landing", "lake"):
        shutil.copytree(getattr(built.paths, part), tmp_path / part)
    cfg = make_config(
        "test", tmp_path, **{"services.mlflow_tracking_uri": built.services.mlflow_tracking_uri}
    )
    linked = read_delta(spark, cfg.table_uri("silver.identity_map")).select("advisor_id")
    noted = read_delta(spark, cfg.table_uri("silver.crm_notes")).select("advisor_id")
    victim = linked.join(noted, "advisor_id").orderBy("advisor_id").first()["advisor_id"]
    crm = read_delta(spark, cfg.table_uri("bronze.crm_advisors")).where(
        F.col("advisor_id") == victim
    )
    person = crm.select("email", "phone").first()
    result = erase(spark, cfg, advisor_id=victim, warehouse=False)
    assert result["visitor_ids"]
    removed = result["removed"]
    assert removed["bronze.crm_advisors"] == 1 and removed["silver.advisors"] == 1
    assert removed["silver.crm_notes"] > 0 and removed["gold.advisor_360"] > 0
    assert removed["silver.events"] > 0 and result["visitors"] >= 1
    links = read_delta(spark, cfg.table_uri("silver.identity_links"))
    assert links.where(F.col("advisor_id") == victim).count() == 0
    assert result["visitors"] >= 1 and removed["bronze.clickstream"] > 0  # their raw web events
    needles = {victim, person["email"], person["phone"], *result["visitor_ids"]}
    lake_root = Path(cfg.paths.lake)
    scanned = 0
    for path in lake_root.rglob("*.parquet"):
        if "_delta_log" in path.parts:
            continue
        text = json.dumps(pq.read_table(path).to_pylist(), default=str)
        assert not [n for n in needles if n and n in text], path
        scanned += 1
    assert scanned > 20
