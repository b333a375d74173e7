"""A champion in production: drift against its reference, decay once labels mature, outcomes.

- Drift: the champion's test snapshot (its reference) against the run date's snapshot: PSI,
  KS and Jensen-Shannon per numeric feature and for the score (both scored by the champion).
- Decay: the champion's own past scores whose label window has closed, against the realised
  labels (ROC-AUC, the spec's baseline rule's ROC-AUC, top-decile lift).
- Outcomes: realised conversion by score decile per scored date.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date, timedelta

from pyspark.ml import PipelineModel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from decisionlake.models import evaluate as ev
from decisionlake.models.estimators import LABEL
from decisionlake.models.scoring import predict
from decisionlake.models.spec import ModelSpec
from decisionlake.models.training_sets import with_labels
from decisionlake.quality.drift import Drift, drift


@dataclass(frozen=True)
class ChampionDrift:
    features: list[Drift]
    score: Drift

    def all(self) -> list[tuple[str, Drift]]:
        return [*(("feature", f) for f in self.features), ("score", self.score)]

    def breaches(self, psi_alert: float) -> list[str]:
        return [d.column for _, d in self.all() if d.psi >= psi_alert]


def champion_drift(
    model: PipelineModel, reference: DataFrame, current: DataFrame, *, spec: ModelSpec, bins: int
) -> ChampionDrift:
    """Feature drift of the spec's numeric features and score drift of the champion's output."""
    score_column = "prediction" if spec.task == "clustering" else ev.SCORE
    (score,) = drift(
        predict(model, reference, spec=spec),
        predict(model, current, spec=spec),
        [score_column],
        bins=bins,
    )
    return ChampionDrift(drift(reference, current, spec.features.numeric, bins=bins), score)


def matured_through(spec: ModelSpec, day: date) -> date:
    """The last as-of date whose label window has closed by ``day``."""
    assert spec.label is not None
    return day - timedelta(days=spec.label.horizon_days)


def matured_scores(scores: DataFrame, *, model: str, version: str, spec: ModelSpec,
                   day: date) -> DataFrame:  # fmt: skip
    """This champion's own scores whose label window closed by ``day`` (an earlier version's
    scores are not its record)."""
    matured = matured_through(spec, day)
    return scores.where(
        (F.col("model_name") == model)
        & (F.col("model_version") == version)
        & (F.col("as_of_date") <= F.lit(matured))
    )


def labelled_scores(
    past: DataFrame, snapshots: DataFrame, events: DataFrame, *, spec: ModelSpec, day: date
) -> tuple[DataFrame, DataFrame]:
    """(past scores joined with their realised labels and the baseline rule's value, the
    labels per advisor and as-of date). The scored advisors' snapshots are read so the spec's
    baseline can be evaluated on the same rows."""
    assert spec.label is not None
    src = spec.source
    keys = past.select(
        F.col("advisor_id").alias(src.id_column), F.col("as_of_date").alias(src.as_of_column)
    )
    baseline = F.expr(spec.baseline) if spec.baseline else F.lit(0.0)
    labelled = with_labels(
        snapshots.join(keys, [src.id_column, src.as_of_column]), events,
        source=src, label=spec.label, label_through=day,
    ).select(
        F.col(src.id_column).alias("advisor_id"),
        F.col(src.as_of_column).alias("as_of_date"),
        F.col(LABEL),
        baseline.cast("double").alias("_baseline"),
    )  # fmt: skip
    return past.join(labelled, ["advisor_id", "as_of_date"]), labelled


def decay_metrics(joined: DataFrame) -> dict[str, float]:
    """Realised ROC-AUC of the scores and of the baseline, and top-decile lift (actions)."""
    lift = ev.lift_table(joined, F.col("score"))
    return {
        "areaUnderROC": ev.auc(joined, F.col("score")),
        "baseline_areaUnderROC": ev.auc(joined, F.col("_baseline")),
        "top_decile_lift": lift[0]["lift"] if lift else 0.0,
    }


def outcomes(scores: DataFrame, labelled: DataFrame) -> DataFrame:
    """Realised conversion per model, as-of date and decile."""
    return (
        scores.join(
            labelled.select("advisor_id", "as_of_date", LABEL), ["advisor_id", "as_of_date"]
        )
        .groupBy("model_name", "model_version", "as_of_date", "decile")
        .agg(
            F.count("*").alias("advisors"),
            F.sum(LABEL).cast("long").alias("converted"),
            F.avg(LABEL).alias("conversion_rate"),
            F.avg("score").alias("mean_score"),
        )
    )
