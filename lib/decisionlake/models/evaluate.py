"""Model metrics computed in Spark; only small summaries (bins, deciles) reach the driver."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from pyspark.ml.evaluation import (
    BinaryClassificationEvaluator,
    ClusteringEvaluator,
    MulticlassClassificationEvaluator,
    RegressionEvaluator,
)
from pyspark.ml.functions import vector_to_array
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from decisionlake.models.estimators import LABEL

SCORE = "score"


def positive_probability(probability: str = "probability") -> Column:
    """P(class 1) from an MLlib probability vector."""
    return vector_to_array(F.col(probability))[1]


def auc(df: DataFrame, score: Column, metric: str = "areaUnderROC") -> float:
    """ROC/PR AUC of any numeric score column (higher = more likely positive)."""
    scored = df.select(score.cast("double").alias("_s"), F.col(LABEL))
    evaluator = BinaryClassificationEvaluator(
        rawPredictionCol="_s", labelCol=LABEL, metricName=metric
    )
    return float(evaluator.evaluate(scored))


def classification_metrics(predictions: DataFrame) -> dict[str, float]:
    """ROC-AUC, PR-AUC, log loss, Brier score and base rate of a scored test set."""
    p = positive_probability()
    summary = predictions.agg(
        F.avg(F.col(LABEL)).alias("rate"),
        F.avg((p - F.col(LABEL)) ** 2).alias("brier"),
        F.count("*").alias("rows"),
    ).first()
    log_loss = MulticlassClassificationEvaluator(
        labelCol=LABEL, probabilityCol="probability", metricName="logLoss"
    ).evaluate(predictions)
    return {
        "areaUnderROC": auc(predictions, p),
        "areaUnderPR": auc(predictions, p, "areaUnderPR"),
        "logLoss": float(log_loss),
        "brier": float(summary["brier"]),
        "positive_rate": float(summary["rate"]),
        "rows": float(summary["rows"]),
    }


def regression_metrics(predictions: DataFrame) -> dict[str, float]:
    """RMSE, MAE, R² of a scored test set."""
    out = {}
    for metric in ("rmse", "mae", "r2"):
        out[metric] = float(
            RegressionEvaluator(labelCol=LABEL, metricName=metric).evaluate(predictions)
        )
    out["rows"] = float(predictions.count())
    return out


def silhouette(predictions: DataFrame, features: str) -> float:
    """Silhouette (squared Euclidean) of cluster assignments in ``features`` space.

    -1 (the worst) when everything fell into one cluster, where silhouette is undefined.
    """
    if predictions.select("prediction").distinct().limit(2).count() < 2:
        return -1.0
    return float(ClusteringEvaluator(featuresCol=features).evaluate(predictions))


def decile_of(score: Column, cutpoints: list[float]) -> Column:
    """1 = the top tenth of scores ... 10 = the bottom tenth."""
    below = [F.when(score < F.lit(c), 1).otherwise(0) for c in cutpoints]
    return F.lit(1) + sum(below, F.lit(0))


def decile_cutpoints(df: DataFrame, score: Column) -> list[float]:
    """Approximate 10%..90% quantiles of the score, in descending order of rank."""
    row = df.agg(
        F.percentile_approx(score, [i / 10 for i in range(9, 0, -1)], 10_000).alias("q")
    ).first()  # one row
    return [float(v) for v in (row["q"] or [])]


def lift_table(predictions: DataFrame, score: Column) -> list[dict[str, Any]]:
    """Per decile: rows, positives, response rate, lift and cumulative gain (10 rows)."""
    cuts = decile_cutpoints(predictions, score)
    rows = (
        predictions.select(decile_of(score, cuts).alias("decile"), F.col(LABEL))
        .groupBy("decile")
        .agg(F.count("*").alias("rows"), F.sum(LABEL).alias("positives"))
        .orderBy("decile")
        .collect()  # ten rows
    )
    total = sum(r["rows"] for r in rows) or 1
    positives = sum(r["positives"] for r in rows) or 0.0
    base = positives / total if total else 0.0
    out, cumulative = [], 0.0
    for r in rows:
        cumulative += r["positives"]
        rate = r["positives"] / r["rows"] if r["rows"] else 0.0
        out.append(
            {
                "decile": int(r["decile"]),
                "rows": int(r["rows"]),
                "positives": float(r["positives"]),
                "response_rate": rate,
                "lift": rate / base if base else 0.0,
                "cumulative_gain": cumulative / positives if positives else 0.0,
            }
        )
    return out


def wilson_interval(positives: float, rows: float, *, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a rate (95% by default); (0, 1) when there are no rows."""
    if rows <= 0:
        return 0.0, 1.0
    p = positives / rows
    centre = (p + z * z / (2 * rows)) / (1 + z * z / rows)
    half = z / (1 + z * z / rows) * (p * (1 - p) / rows + z * z / (4 * rows * rows)) ** 0.5
    return max(0.0, centre - half), min(1.0, centre + half)


def top_decile_lift(lift: list[dict[str, Any]]) -> dict[str, float]:
    """Top-decile lift with the Wilson interval of the decile's response rate, over the base.

    A lift on few positives is wide: "3.8x (1.9 .. 6.5)" is not read as certain.
    """
    if not lift:
        return {"top_decile_lift": 0.0, "top_decile_lift_low": 0.0, "top_decile_lift_high": 0.0}
    rows = sum(r["rows"] for r in lift)
    base = sum(r["positives"] for r in lift) / rows if rows else 0.0
    top = lift[0]
    low, high = wilson_interval(top["positives"], top["rows"])
    return {
        "top_decile_lift": top["lift"],
        "top_decile_lift_low": low / base if base else 0.0,
        "top_decile_lift_high": high / base if base else 0.0,
        "top_decile_positives": float(top["positives"]),
    }


def expected_calibration_error(table: list[dict[str, Any]]) -> float:
    """Sum over bins of rows_b / rows * |mean predicted_b - observed rate_b|."""
    total = sum(r["rows"] for r in table)
    if not total:
        return float("nan")
    return float(sum(r["rows"] / total * abs(r["predicted"] - r["observed"]) for r in table))


def roc_points(predictions: DataFrame, score: Column, bins: int = 200) -> list[tuple[float, float]]:
    """(FPR, TPR) from positives/negatives per score bin (``bins`` rows to the driver)."""
    binned = (
        predictions.select(
            F.least(F.floor(score * bins), F.lit(bins - 1)).alias("bin"), F.col(LABEL)
        )
        .groupBy("bin")
        .agg(F.sum(LABEL).alias("pos"), F.sum(1 - F.col(LABEL)).alias("neg"))
        .orderBy(F.desc("bin"))
        .collect()  # at most `bins` rows
    )
    pos = sum(r["pos"] for r in binned) or 1.0
    neg = sum(r["neg"] for r in binned) or 1.0
    points, tp, fp = [(0.0, 0.0)], 0.0, 0.0
    for r in binned:
        tp += r["pos"]
        fp += r["neg"]
        points.append((fp / neg, tp / pos))
    return points


def calibration_table(predictions: DataFrame, score: Column, bins: int = 10) -> list[dict]:
    """Mean predicted vs observed rate per equal-width probability bin."""
    rows = (
        predictions.select(
            F.least(F.floor(score * bins), F.lit(bins - 1)).alias("bin"),
            score.alias("p"),
            F.col(LABEL),
        )
        .groupBy("bin")
        .agg(
            F.count("*").alias("rows"),
            F.avg("p").alias("predicted"),
            F.avg(LABEL).alias("observed"),
        )
        .orderBy("bin")
        .collect()  # at most `bins` rows
    )
    return [r.asDict() for r in rows]


def save_plots(
    folder: Path,
    *,
    roc: list[tuple[float, float]] | None = None,
    lift: list[dict[str, Any]] | None = None,
    calibration: list[dict[str, Any]] | None = None,
    importance: list[tuple[str, float]] | None = None,
    variance: list[float] | None = None,
    title: str = "",
) -> list[Path]:
    """PNG charts of whatever is given; returns their paths."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    folder.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []

    def save(fig: Any, name: str) -> None:
        path = folder / name
        fig.suptitle(f"{title} — {name.removesuffix('.png').replace('_', ' ')}", fontsize=10)
        fig.tight_layout()
        fig.savefig(path, dpi=90)
        plt.close(fig)
        written.append(path)

    if roc:
        fig, ax = plt.subplots(figsize=(4.5, 4))
        ax.plot([x for x, _ in roc], [y for _, y in roc], label="model")
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey", label="random")
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.legend(loc="lower right")
        save(fig, "roc.png")
    if lift:
        fig, ax = plt.subplots(figsize=(5, 4))
        ax.bar([r["decile"] for r in lift], [r["lift"] for r in lift], color="tab:blue")
        ax.axhline(1.0, color="grey", linestyle="--")
        ax2 = ax.twinx()
        ax2.plot([r["decile"] for r in lift], [r["cumulative_gain"] for r in lift], "o-",
                 color="tab:orange")  # fmt: skip
        ax.set_xlabel("score decile (1 = highest)")
        ax.set_ylabel("lift")
        ax2.set_ylabel("cumulative gain")
        save(fig, "lift.png")
    if calibration:
        fig, ax = plt.subplots(figsize=(4.5, 4))
        ax.plot([r["predicted"] for r in calibration], [r["observed"] for r in calibration], "o-")
        ax.plot([0, 1], [0, 1], linestyle="--", color="grey")
        ax.set_xlabel("mean predicted probability")
        ax.set_ylabel("observed rate")
        save(fig, "calibration.png")
    if importance:
        top = importance[:15][::-1]
        fig, ax = plt.subplots(figsize=(6, 0.3 * len(top) + 1.2))
        ax.barh([n for n, _ in top], [v for _, v in top])
        ax.set_xlabel("importance")
        save(fig, "feature_importance.png")
    if variance:
        fig, ax = plt.subplots(figsize=(5, 4))
        cumulative = [sum(variance[: i + 1]) for i in range(len(variance))]
        ax.bar(range(1, len(variance) + 1), variance, label="component")
        ax.plot(range(1, len(variance) + 1), cumulative, "o-", color="tab:orange",
                label="cumulative")  # fmt: skip
        ax.set_xlabel("principal component")
        ax.set_ylabel("explained variance ratio")
        ax.legend()
        save(fig, "pca_variance.png")
    return written
