"""Any labelled table from a YAML spec alone: a real public table (scikit-learn's bundled
Wisconsin breast-cancer data), a label column with a positive value, a stratified split,
champion checks, scores; next to scikit-learn's HistGradientBoosting on the same split."""

from __future__ import annotations

import json
import re
import shutil
from datetime import date
from pathlib import Path

import pytest
import yaml
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from decisionlake.config import load_config
from decisionlake.io.lake import read_delta
from decisionlake.jobs import score, train_models
from decisionlake.models.training_sets import with_column_label, with_row_split

from .conftest import REPO, run_ok

DAY = date(2026, 11, 24)
FEATURES = [
    *(f"mean_{m}" for m in ("radius", "texture", "perimeter", "area", "smoothness", "compactness",
                           "concavity", "concave_points", "symmetry", "fractal_dimension")),
    "worst_radius", "worst_texture", "worst_concave_points",
]  # fmt: skip


def _write_table(folder: Path) -> Path:
    from sklearn.datasets import load_breast_cancer

    frame = load_breast_cancer(as_frame=True).frame
    frame.columns = [c.replace(" ", "_") for c in frame.columns]
    frame.insert(0, "patient_id", [f"P{i:04d}" for i in range(len(frame))])
    frame["diagnosis"] = frame.pop("target").map({0: "malignant", 1: "benign"})
    path = folder / "breast_cancer.csv"
    frame.to_csv(path, index=False)
    return path


def _spec(table: Path) -> dict:
    return {
        "task": "classification",
        "description": "Malignant diagnosis from cell measurements (a labelled table).",
        "source": {"table": str(table), "format": "csv", "id_column": "patient_id"},
        "features": {"numeric": FEATURES},
        "label": {"column": "diagnosis", "positive": "malignant"},
        "candidates": [
            {"estimator": "logistic_regression", "grid": {"regParam": [0.01, 0.1]}},
            {"estimator": "gbt", "params": {"maxIter": 20, "maxDepth": 3}},
        ],
        "selection": {
            "metric": "areaUnderROC",
            "folds": 3,
            "split": {"kind": "stratified", "test_fraction": 0.25, "seed": 42},
        },
        "promotion": {"max_calibration_error": 0.15},
        "seed": 42,
    }


@pytest.mark.slow
def test_a_labelled_table_trains_from_a_spec_alone(spark: SparkSession, tmp_path: Path) -> None:
    table = _write_table(tmp_path)
    conf = tmp_path / "conf"
    shutil.copytree(REPO / "conf", conf)
    (conf / "models" / "breast_cancer.yaml").write_text(yaml.safe_dump(_spec(table)))
    args = ["--env", "test", "--config", str(conf), "--run-date", DAY.isoformat(),
            "--model", "breast_cancer",
            "--set", f"paths.lake={tmp_path / 'lake'}",
            "--set", f"paths.artifacts={tmp_path / 'artifacts'}",
            "--set", f"services.mlflow_tracking_uri=sqlite:///{tmp_path}/mlflow.db"]  # fmt: skip
    trained = run_ok(train_models, args)["models"]["breast_cancer"]
    assert trained["role"] == "champion", trained["decision"]
    assert trained["train_dates"] == [] and trained["test_dates"] == []
    assert trained["inputs"][str(table)]["format"] == "csv"  # what was read is recorded
    mllib_auc = trained["metrics"]["areaUnderROC"]
    assert trained["metrics"]["baseline_areaUnderROC"] == 0.5  # the training prior

    # The same split, rebuilt from the spec, for scikit-learn's reference.
    cfg = load_config("test", conf_dir=conf)
    spec = cfg.models["breast_cancer"]
    rows = spark.read.option("header", "true").option("inferSchema", "true").csv(str(table))
    split = (
        rows.transform(with_column_label, label=spec.label)
        .transform(
            with_row_split,
            id_column="patient_id",
            kind="stratified",
            test_fraction=0.25,
            seed=42,
            folds=3,
        )
        .toPandas()  # 569 rows
    )
    train, test = split[~split["_is_test"]], split[split["_is_test"]]
    assert len(test) == trained["metrics"]["rows"]
    # Stratified: the test rows keep the table's share of malignant diagnoses.
    assert abs(test["label"].mean() - split["label"].mean()) < 0.01
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score

    reference = HistGradientBoostingClassifier(random_state=42).fit(train[FEATURES], train["label"])
    sk_auc = float(roc_auc_score(test["label"], reference.predict_proba(test[FEATURES])[:, 1]))
    print(f"\nbreast cancer test ROC-AUC: MLlib {mllib_auc:.4f} ({trained['estimator']}), "
          f"scikit-learn HistGradientBoosting {sk_auc:.4f}")  # fmt: skip
    assert mllib_auc >= sk_auc - 0.02, (mllib_auc, sk_auc)

    scored = run_ok(score, args)["models"]["breast_cancer"]
    assert scored["rows"] == len(split)  # the whole table is scored
    scores = read_delta(spark, str(tmp_path / "lake" / "gold" / "scores"))
    assert scores.where(F.col("score").between(0, 1)).count() == len(split)
    run = read_delta(spark, str(tmp_path / "lake" / "ops" / "runs")).first()
    assert json.loads(run["details"])["file_inputs"][str(table)]["files"] == 1


@pytest.mark.parametrize(
    ("label", "message"),
    [
        ({"column": "nope", "positive": "malignant"}, r"unknown column\(s\) nope"),
        ({"column": "mean_radius"}, "the label is not binary"),
        ({"column": "constant_flag"}, "the training label is constant"),
    ],
)
def test_a_missing_constant_or_non_binary_label_column_is_refused(
    tmp_path: Path, capfd: pytest.CaptureFixture[str], label: dict, message: str
) -> None:
    table = _write_table(tmp_path)
    frame = table.read_text().splitlines()
    lines = [frame[0] + ",constant_flag", *[row + ",1" for row in frame[1:]]]
    table.write_text("\n".join(lines) + "\n")
    conf = tmp_path / "conf"
    shutil.copytree(REPO / "conf", conf)
    spec = {**_spec(table), "label": label}
    (conf / "models" / "breast_cancer.yaml").write_text(yaml.safe_dump(spec))
    args = ["--env", "test", "--config", str(conf), "--run-date", DAY.isoformat(),
            "--model", "breast_cancer",
            "--set", f"services.mlflow_tracking_uri=sqlite:///{tmp_path}/mlflow.db"]  # fmt: skip
    assert train_models.main(args) == 2
    assert re.search(message, capfd.readouterr().err.splitlines()[-1])
