"""Promotion checks: each check's verdict, the champion/challenger/rejected decision, shadow mode,
honest splits and the per-spec config errors (no services: bare Spark session at most)."""

from __future__ import annotations

from datetime import date, timedelta
from pathlib import Path

import pytest
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from decisionlake.config import ConfigError, load_config
from decisionlake.models import evaluate as ev
from decisionlake.models import promotion as pr
from decisionlake.models.fit import check_split, split_stats
from decisionlake.models.sources import TrainingDataError, describe_files, selected_models
from decisionlake.models.training_sets import IS_TEST

D = date(2026, 11, 10)


def _check(name: str, passed: bool) -> pr.Check:
    return pr.Check(name, passed, 0.0, None, f"{name} detail")


def test_baseline_check_respects_direction_and_margin() -> None:
    assert pr.beats_baseline(0.80, 0.79, metric="areaUnderROC", margin=0.005).passed
    assert not pr.beats_baseline(0.792, 0.79, metric="areaUnderROC", margin=0.005).passed
    assert pr.beats_baseline(9.0, 10.0, metric="rmse", margin=0.5).passed
    # The shipped net-flow failure: RMSE 302,792 against predicting zero at 274,243.
    check = pr.beats_baseline(302_792.0, 274_243.0, metric="rmse", margin=0.0)
    assert not check.passed and check.bound == 274_243.0 and "302792" in check.detail
    assert not pr.reaches_floor(0.52, metric="areaUnderROC", floor=0.55).passed
    assert pr.reaches_floor(9.0, metric="rmse", floor=10.0).passed


def test_champion_check_passes_without_a_champion_and_names_the_one_it_lost_to() -> None:
    assert pr.beats_champion(0.7, None, version=None, metric="areaUnderROC", margin=0.0).passed
    lost = pr.beats_champion(0.70, 0.71, version="3", metric="areaUnderROC", margin=0.005)
    assert not lost.passed and "does not beat champion v3" in lost.detail


@pytest.mark.parametrize(
    ("failing", "mode", "role", "promoted"),
    [
        ([], "enforce", "champion", True),
        (["beats_champion"], "enforce", "challenger", False),
        (["beats_baseline"], "enforce", "rejected", False),
        (["beats_baseline", "beats_champion"], "enforce", "rejected", False),
        (["calibration"], "enforce", "rejected", False),
        (["beats_baseline"], "shadow", "champion", True),  # recorded, not enforced
        (["beats_baseline", "beats_champion"], "shadow", "challenger", False),
    ],
)
def test_decide(failing: list[str], mode: str, role: str, promoted: bool) -> None:
    names = ["beats_baseline", "beats_champion", "scores_production", "calibration", "artifacts"]
    verdict = pr.decide([_check(n, n not in failing) for n in names], mode=mode)
    assert (verdict.role, verdict.promoted) == (role, promoted)
    assert verdict.failed == failing
    if role == "rejected":
        assert all(name in verdict.reason for name in failing)
    if mode == "shadow" and promoted:
        assert "not enforced" in verdict.reason


def test_production_check_catches_empty_null_and_out_of_range_scores() -> None:
    good = {"rows": 10, "nulls": 0, "nans": 0, "min": 0.01, "max": 0.9}
    assert pr.scores_production(good, low=0.0, high=1.0, as_of="2026-11-24").passed
    for bad, words in [
        ({**good, "rows": 0, "min": None, "max": None}, "no rows"),
        ({**good, "nulls": 2}, "2 null"),
        ({**good, "nans": 1}, "1 NaN"),
        ({**good, "max": 1.5}, "outside"),
    ]:
        check = pr.scores_production(bad, low=0.0, high=1.0, as_of="2026-11-24")
        assert not check.passed and words in check.detail


def test_production_stats_are_one_aggregate_over_the_scored_rows(spark: SparkSession) -> None:
    schema = T.StructType([T.StructField("score", T.DoubleType())])
    rows = [(0.2,), (None,), (float("nan"),), (0.7,)]
    stats = pr.production_stats(spark.createDataFrame(rows, schema), score_column="score")
    assert stats == {"rows": 4, "nulls": 1, "nans": 1, "min": 0.2, "max": 0.7}


def test_calibration_error_and_lift_interval() -> None:
    table = [
        {"rows": 80, "predicted": 0.05, "observed": 0.05},
        {"rows": 20, "predicted": 0.6, "observed": 0.3},
    ]
    assert ev.expected_calibration_error(table) == pytest.approx(0.2 * 0.3)
    assert pr.calibration(0.06, bound=0.1).passed and not pr.calibration(0.2, bound=0.1).passed
    low, high = ev.wilson_interval(10, 100)
    assert (round(low, 4), round(high, 4)) == (0.0552, 0.1744)
    lift = [
        {"rows": 10, "positives": 4.0, "lift": 4.0},
        {"rows": 90, "positives": 6.0, "lift": 2 / 3},
    ]
    figures = ev.top_decile_lift(lift)  # base rate 10%: 4 of 10 in the top decile
    assert figures["top_decile_lift"] == 4.0
    assert figures["top_decile_lift_low"] < 2.0 < 4.0 < figures["top_decile_lift_high"]


def test_artifacts_check_needs_model_signature_and_plots() -> None:
    logged = ["model", "spec.json", "inputs.json", "candidates.json", "plots"]
    assert pr.artifacts(logged, has_signature=True).passed
    missing = pr.artifacts(logged[:-1], has_signature=False)
    assert not missing.passed and "signature" in missing.detail and "plots" in missing.detail


# ---- honest splits -------------------------------------------------------------------------

LABELLED = T.StructType(
    [T.StructField("as_of_date", T.DateType()), T.StructField("label", T.DoubleType())]
)


def test_a_split_that_tests_on_training_dates_or_nothing_is_refused(spark: SparkSession) -> None:
    spec = load_config("test").models["advisor_propensity"]
    days = [D + timedelta(days=i) for i in range(4)]
    data = spark.createDataFrame(
        [(days[0], 0.0), (days[0], 1.0), (days[1], 1.0), (days[3], 0.0)], LABELLED
    )

    def stats_for(df, test_day):
        marked = df.withColumn(IS_TEST, F.col("as_of_date") == F.lit(test_day))
        return split_stats(marked)

    stats = stats_for(data, days[3])
    assert stats["train"]["rows"] == 3 and stats["test"]["rows"] == 1
    check_split("m", spec, days[:2], [days[3]], stats["train"], stats["test"])  # fine
    with pytest.raises(TrainingDataError, match="also training dates"):
        check_split("m", spec, days[:2], [days[1]], stats["train"], stats["test"])
    with pytest.raises(TrainingDataError, match="not before the test snapshot"):
        check_split("m", spec, [days[0], days[3]], [days[2]], stats["train"], stats["test"])
    empty = stats_for(data, days[2])
    with pytest.raises(TrainingDataError, match="0 test rows"):
        check_split("m", spec, days[:2], [days[2]], empty["train"], empty["test"])
    constant = stats_for(data.where("label = 1.0"), date(1999, 1, 1))
    with pytest.raises(TrainingDataError, match="label is constant"):
        check_split("m", spec, days[:2], [days[3]], constant["train"], {"rows": 1})
    assert issubclass(TrainingDataError, ConfigError)  # a job reports it with exit 2


# ---- config --------------------------------------------------------------------------------


def test_a_broken_spec_stops_only_the_jobs_that_use_it() -> None:
    cfg = load_config("test", overrides={"models.advisor_net_flow.task": "ranking"})
    assert "advisor_net_flow" not in cfg.models  # every other job loads its config as before
    assert "task: 'ranking' is not one of" in cfg.model_errors["advisor_net_flow"]
    assert selected_models(cfg, ["advisor_propensity"]) == ["advisor_propensity"]
    with pytest.raises(ConfigError, match=r"conf/models/advisor_net_flow\.yaml: .*ranking"):
        selected_models(cfg, [])  # all models, the broken one included
    with pytest.raises(ConfigError, match=r"no spec conf/models/nope\.yaml"):
        selected_models(cfg, ["nope"])


def test_promotion_settings_are_typed() -> None:
    spec = load_config("test").models["advisor_propensity"]
    assert spec.promotion.mode == "enforce" and spec.promotion.max_calibration_error > 0
    with pytest.raises(ConfigError, match=r"promotion\.mode"):
        selected_models(
            load_config("test", overrides={"models.advisor_propensity.promotion.mode": "maybe"}),
            ["advisor_propensity"],
        )


def test_a_csv_input_is_recorded_with_its_files(spark: SparkSession, tmp_path: Path) -> None:
    folder = tmp_path / "table"
    folder.mkdir()
    (folder / "part-1.csv").write_text("advisor_id,y\nA,1\n")
    (folder / "part-2.csv").write_text("advisor_id,y\nB,0\n")
    described = describe_files(spark, str(folder), "csv")
    size = sum(p.stat().st_size for p in folder.iterdir())
    assert described == {"format": "csv", "uri": str(folder), "files": 2, "bytes": size}
