"""Training benchmark: ``train_models`` on a scale benchmark's lake, beside a single-machine
reference on the same rows and split.

    scripts/bench-scale --events 1000000     # the 50,000-advisor lake, in .cache/bench-history
    scripts/bench-training --root .cache/bench-history/1000000e-30d/run  [--out bench/results]

On the kept lake (its month of sessions, identity, text features), in one process:

1. Every history day the bulk build skipped gets the daily chain (``build_identity``,
   ``build_text_features``, ``build_advisor_360``, in date order; set-up, timed apart), so every
   mature as-of date has the snapshot a daily run would have made, and is there to train on.
2. ``train_models`` runs in process for the last day, each shipped spec alone and timed whole
   (training set, cross-validated grid search, evaluation on the test snapshot, MLflow record).
3. On the classification spec's rows and split (its own functions build them: train as-of
   dates, test snapshot): each candidate's parameter map fitted once on all training rows and
   timed, with its test ROC-AUC; scikit-learn's HistGradientBoosting on the same rows (the
   reference the issue names); and, if installed, ``xgboost.spark``'s ``SparkXGBClassifier``
   behind the same preparation stages (a ``pyspark.ml`` Estimator, a candidate measured here).

The figures are merged into ``<out>/scale-latest.json`` under ``training``. Run it alone.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import date, timedelta
from pathlib import Path
from typing import Any

from decisionlake.dev.bench.pipeline import END, _config, bench_services, lake_settings
from decisionlake.dev.bench.scale import _subset, must

REFERENCE_SPEC = "advisor_propensity"


def _seconds(started: float) -> float:
    return round(time.perf_counter() - started, 1)


DAILY_CHAIN = ("build_identity", "build_text_features", "build_advisor_360")


def ensure_snapshots(spark: Any, cfg: Any, first: date) -> dict[str, Any]:
    """Every history day from ``first`` gets the snapshot a daily run would have made.

    The scale bench builds its history in bulk, on the last history day only: one identity
    version and one day of text features. A 360 snapshot for an earlier as-of date reads the
    identity as known then (its latest version not after the date) and that date's text
    features, so each day without an identity version gets the daily chain (identity, text
    features, 360) in date order, as the daily pipeline would have run it.
    """
    from pyspark.sql import functions as F

    from decisionlake.io import lake
    from decisionlake.models.sources import resolve
    from decisionlake.ops.pipeline import date_range, in_process_executor, load_pipeline
    from decisionlake.ops.pipeline import run_pipeline as run_steps

    versions = {
        r[0]
        for r in lake.read_delta(spark, cfg.table_uri("silver.identity_map"))
        .select("identity_version")
        .distinct()
        .collect()
    }  # one row per version (day)
    missing = [d for d in date_range(first, END - timedelta(days=1)) if d not in versions]
    started = time.perf_counter()
    if missing:
        chain = _subset(load_pipeline(), DAILY_CHAIN)
        settings = lake_settings(cfg)
        executor = in_process_executor("local")
        must(run_steps(chain, missing, executor, settings=settings, max_retries=0), "daily chain")
    spec = cfg.models[REFERENCE_SPEC]
    as_of = spec.source.as_of_column
    snapshots = lake.read_delta(spark, resolve(cfg, spec.source)).where(F.col(as_of) <= F.lit(END))
    active = (
        snapshots.groupBy(as_of)
        .agg(F.sum((F.col("sessions_30d") > 0).cast("int")).alias("active"))
        .orderBy(as_of)
        .collect()
    )  # one row per as-of date
    return {
        "days_rebuilt": len(missing),
        "daily_chain": list(DAILY_CHAIN),
        "rebuild_s": _seconds(started),
        "as_of_dates": len(active),
        "advisors_active_by_as_of": {str(r[0]): int(r[1] or 0) for r in active},
    }


def train_each_spec(cfg: Any) -> dict[str, Any]:
    """``train_models`` for END, one spec at a time, timed whole, its summary kept."""
    from decisionlake.core.runtime import run_module
    from decisionlake.jobs import train_models

    out: dict[str, Any] = {}
    sets = [x for s in lake_settings(cfg) for x in ("--set", s)]
    for name in sorted(cfg.models):
        started = time.perf_counter()
        code, reason, summary = run_module(
            train_models, ["--env", "local", "--run-date", END.isoformat(), "--model", name, *sets]
        )
        figures: dict[str, Any] = {"s": _seconds(started), "exit_code": code}
        if code:
            figures["error"] = reason
        else:
            model = summary["models"][name]
            figures.update(
                champion=model["estimator"],
                params=model["params"],
                role=model["role"],
                decision=model["decision"],
                train_dates=len(model["train_dates"]),
                test_dates=model["test_dates"],
                metrics={k: v for k, v in model["metrics"].items() if not k.startswith("_")},
            )
        out[name] = figures
        print(f"  train_models {name}: {json.dumps(figures)[:400]}", flush=True)
    return out


def reference_rows(spark: Any, cfg: Any) -> tuple[Any, Any, Any, list[str]]:
    """The classification spec's training and test rows, built by the training code itself."""
    from pyspark import StorageLevel
    from pyspark.sql import functions as F

    from decisionlake.io import lake
    from decisionlake.models.estimators import LABEL, WEIGHT
    from decisionlake.models.fit import _event_label_rows
    from decisionlake.models.sources import resolve
    from decisionlake.models.training_sets import IS_TEST, feature_profile

    spec = cfg.models[REFERENCE_SPEC]
    assert spec.label is not None
    snapshots = lake.read_delta(spark, resolve(cfg, spec.source)).where(
        F.col(spec.source.as_of_column) <= F.lit(END)
    )
    events = lake.read_delta(spark, resolve(cfg, spec.label))
    data, _, _, _ = _event_label_rows(spec, REFERENCE_SPEC, snapshots, events, label_through=END)
    data = data.where(F.col(LABEL).isNotNull()).persist(StorageLevel.MEMORY_AND_DISK)
    # Unweighted, as fit_supervised trains a spec without balance_classes.
    train = data.where(~F.col(IS_TEST)).withColumn(WEIGHT, F.lit(1.0))
    test = data.where(F.col(IS_TEST))
    usable = feature_profile(train, spec.features)["usable"]
    return spec, train, test, usable


def mllib_candidates(spec: Any, train: Any, test: Any, usable: list[str]) -> list[dict[str, Any]]:
    """Each candidate parameter map fitted once on every training row: seconds, test AUC."""
    from pyspark.ml import Pipeline

    from decisionlake.models import evaluate as ev
    from decisionlake.models.fit import _param_maps
    from decisionlake.models.training_sets import preparation_stages

    prep = preparation_stages(spec, usable)
    pipeline = Pipeline(stages=prep)
    maps, described = _param_maps(spec, pipeline, prep)
    out = []
    for param_map, about in zip(maps, described, strict=True):
        started = time.perf_counter()
        model = pipeline.fit(train, params=param_map)
        fit_s = _seconds(started)
        auc = ev.auc(model.transform(test), ev.positive_probability())
        out.append({**about, "fit_s": fit_s, "test_roc_auc": round(auc, 4)})
        print(f"  candidate {json.dumps(out[-1])}", flush=True)
    return out


def xgboost_candidate(spec: Any, train: Any, test: Any, usable: list[str]) -> dict[str, Any]:
    """``SparkXGBClassifier`` behind the same preparation stages, if xgboost is installed."""
    try:
        from xgboost.spark import SparkXGBClassifier
    except ImportError:
        return {"status": "xgboost not installed (pip install xgboost-cpu)"}
    from pyspark.ml import Pipeline

    from decisionlake.models import evaluate as ev
    from decisionlake.models.estimators import FEATURES, LABEL
    from decisionlake.models.training_sets import preparation_stages

    params = {"n_estimators": 200, "max_depth": 6, "learning_rate": 0.1, "num_workers": 1}
    xgb = SparkXGBClassifier(features_col=FEATURES, label_col=LABEL, **params)
    started = time.perf_counter()
    model = Pipeline(stages=[*preparation_stages(spec, usable), xgb]).fit(train)
    fit_s = _seconds(started)
    auc = ev.auc(model.transform(test), ev.positive_probability())
    return {"params": params, "fit_s": fit_s, "test_roc_auc": round(auc, 4)}


def sklearn_reference(spec: Any, train: Any, test: Any, usable: list[str]) -> dict[str, Any]:
    """HistGradientBoosting on the same rows and features (numeric columns with values in the
    training rows, as the MLlib pipeline uses), collected: a single-machine reference."""
    import numpy as np
    import pandas as pd
    from sklearn.ensemble import HistGradientBoostingClassifier
    from sklearn.metrics import roc_auc_score

    from decisionlake.models.estimators import LABEL

    numeric = [c for c in spec.features.numeric if c in usable]
    categorical = spec.features.categorical

    def frame(df: Any) -> tuple[Any, Any]:
        from pyspark.sql import functions as F

        cols = [F.col(c).cast("double").alias(c) for c in numeric]
        pdf = df.select(*cols, *categorical, F.col(LABEL)).toPandas()  # bench only: the reference
        x = pdf[numeric + categorical].copy()
        for c in categorical:
            x[c] = x[c].astype("category")
        return x, pdf[LABEL].to_numpy(dtype=np.float64)

    started = time.perf_counter()
    x_train, y_train = frame(train)
    x_test, y_test = frame(test)
    collect_s = _seconds(started)
    # The test frame's categories aligned with the training frame's (unseen ones become NaN).
    for c in categorical:
        x_test[c] = pd.Categorical(x_test[c], categories=x_train[c].cat.categories)
    model = HistGradientBoostingClassifier(categorical_features="from_dtype", random_state=42)
    started = time.perf_counter()
    model.fit(x_train, y_train)
    fit_s = _seconds(started)
    auc = roc_auc_score(y_test, model.predict_proba(x_test)[:, 1])
    return {
        "estimator": "sklearn HistGradientBoostingClassifier (defaults)",
        "collect_s": collect_s,
        "fit_s": fit_s,
        "test_roc_auc": round(float(auc), 4),
        "train_rows": len(y_train),
        "test_rows": len(y_test),
        "train_positive_rate": round(float(y_train.mean()), 5),
    }


def write_training(out_dir: Path, figures: dict[str, Any]) -> Path:
    """``figures`` as ``training`` of ``scale-latest.json`` (after every phase: a long run
    that stops keeps what it measured)."""
    latest = out_dir / "scale-latest.json"
    report = json.loads(latest.read_text()) if latest.exists() else {}
    report["training"] = figures
    latest.parent.mkdir(parents=True, exist_ok=True)
    latest.write_text(json.dumps(report, indent=1))
    return latest


def run(root: Path, out_dir: Path, *, candidates: bool, train_models: bool) -> dict[str, Any]:
    from decisionlake.core.spark import get_spark

    scale = json.loads((root / "result.json").read_text())
    cfg = _config(root, scale["advisors"], **{"spark.driver_memory": scale["driver_memory"]})
    spark = get_spark(cfg, "bench-training")
    first = END - timedelta(days=scale["history_days"])
    out: dict[str, Any] = {
        "advisors": scale["advisors"],
        "history_days": scale["history_days"],
        "run_date": END.isoformat(),
    }
    out["setup"] = ensure_snapshots(spark, cfg, first)
    print(f"  snapshots: {out['setup']}", flush=True)
    if train_models:
        started = time.perf_counter()
        out["train_models"] = train_each_spec(cfg)
        out["train_models_s"] = _seconds(started)
        write_training(out_dir, out)
    if candidates:
        spec, train, test, usable = reference_rows(spark, cfg)
        out["reference_spec"] = REFERENCE_SPEC
        out["rows"] = {"train": train.count(), "test": test.count()}
        out["sklearn"] = sklearn_reference(spec, train, test, usable)
        write_training(out_dir, out)
        out["mllib_candidates"] = mllib_candidates(spec, train, test, usable)
        write_training(out_dir, out)
        out["xgboost_spark"] = xgboost_candidate(spec, train, test, usable)
        print(f"  sklearn {out['sklearn']}\n  xgboost.spark {out['xgboost_spark']}", flush=True)
        champion = out.get("train_models", {}).get(REFERENCE_SPEC, {}).get("metrics", {})
        if "areaUnderROC" in champion:
            out["champion_vs_sklearn_roc_auc"] = round(
                champion["areaUnderROC"] - out["sklearn"]["test_roc_auc"], 4
            )
    spark.stop()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench-training", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--root", required=True, help="a lake measured by scripts/bench-scale (its run folder)"
    )
    parser.add_argument("--out", default="bench/results")
    parser.add_argument("--no-candidates", action="store_true",
                        help="train_models only (no per-candidate fits, no reference)")  # fmt: skip
    parser.add_argument("--no-train-models", action="store_true",
                        help="the per-candidate fits and references only")  # fmt: skip
    args = parser.parse_args(argv)
    root = Path(args.root)
    if not (root / "result.json").exists():
        print(f"{root} holds no result.json: measure a scale with scripts/bench-scale first",
              file=sys.stderr)  # fmt: skip
        return 2
    with bench_services():
        figures = run(root, Path(args.out), candidates=not args.no_candidates,
                      train_models=not args.no_train_models)  # fmt: skip
    latest = write_training(Path(args.out), figures)
    print(f"training: {json.dumps(figures)[:2000]}\nwritten: {latest}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
