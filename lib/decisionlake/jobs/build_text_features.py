"""build_text_features: silver.crm_notes -> note features, topics, advisor text features.

Uses the latest recorded text pipeline (or ``text.model_version``); fits and records a new
version when none exists or when ``--set text.refit=true``. Notes not yet scored by the current
version are scored (all notes after a refit), so reruns add nothing and every note carries the
version that scored it. ``gold.advisor_text_features`` is replaced for the run date.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from pyspark.ml import PipelineModel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from decisionlake.core.runtime import JobContext, run_job
from decisionlake.io import lake
from decisionlake.text import pipeline_store
from decisionlake.text.features import (
    advisor_text_features,
    build_pipeline,
    detect_language,
    score_notes,
    tokenize,
    topic_model,
    topic_terms,
    vocabulary,
)

NAME = "build_text_features"


def fit_and_record(ctx: JobContext, notes: DataFrame) -> pipeline_store.TextModelVersion:
    """Fit the pipeline on English notes, save it, record it in MLflow, publish its topics."""
    settings = ctx.cfg.text
    english = (
        detect_language(tokenize(notes), languages=settings.languages)
        .where("is_english")
        .select(*notes.columns)
        .persist()
    )
    model = build_pipeline(settings).fit(english)
    counts = PipelineModel(stages=model.stages[:-1]).transform(english)  # all but LDA
    metrics = {
        "training_notes": float(english.count()),
        "log_perplexity": float(topic_model(model).logPerplexity(counts)),
        "vocabulary": float(len(vocabulary(model))),
    }
    english.unpersist()
    topics = topic_terms(model, top_terms=settings.top_terms)
    version = pipeline_store.record_version(
        ctx.cfg,
        model,
        version=f"v{ctx.run_date:%Y%m%d}-{ctx.run_id[:8]}",
        params={
            "lda_topics": settings.lda_topics,
            "vocab_size": settings.vocab_size,
            "min_doc_freq": settings.min_doc_freq,
            "seed": settings.seed,
        },
        metrics=metrics,
        topics=topics,
    )
    rows = ctx.spark.createDataFrame(
        [{**t, "model_version": version.version} for t in topics],
        "topic int, rank int, term string, weight double, model_version string",
    )
    lake.replace_slice(
        rows,
        ctx.cfg.table_uri("gold.text_topics"),
        predicate=f"model_version = '{version.version}'",
    )
    ctx.log.event("text_pipeline_fitted", version=version.version, **metrics)
    return version


def run(ctx: JobContext) -> dict[str, Any]:
    """Score unscored notes, refresh the advisor text features for the run date."""
    cfg, spark, log = ctx.cfg, ctx.spark, ctx.log
    notes = lake.read_delta(spark, cfg.table_uri("silver.crm_notes")).where(
        F.col("note_date") <= F.lit(ctx.run_date)
    )
    features_uri = cfg.table_uri("silver.note_features")

    with log.stage("model") as st:
        version = pipeline_store.find_version(cfg, cfg.text.model_version)
        refit = cfg.text.refit or version is None
        if refit:
            version = fit_and_record(ctx, notes)
        assert version is not None
        st.add(model_version=version.version, refit=refit, mlflow_run_id=version.mlflow_run_id)

    with log.stage("score_notes") as st:
        todo = notes
        if lake.delta_table_exists(spark, features_uri):
            done = lake.read_delta(spark, features_uri).where(
                F.col("model_version") == version.version
            )
            todo = notes.join(done.select("note_id"), "note_id", "left_anti")
        scored = score_notes(
            todo, pipeline_store.load(version), settings=cfg.text, model_version=version.version
        )
        metrics = lake.merge_insert_new(
            spark,
            scored,
            features_uri,
            keys=["note_id"],
            schema=scored.schema,
            partition_by=["note_date"],
            update_when_changed=["model_version"],
            match_partitions=False,
        )
        scored_now = metrics["numTargetRowsInserted"] + metrics["numTargetRowsUpdated"]
        st.add(notes_scored=scored_now)

    with log.stage("advisor_text_features") as st:
        rows = advisor_text_features(
            lake.read_delta(spark, features_uri), as_of=ctx.run_date, settings=cfg.text
        )
        gold_uri = cfg.table_uri("gold.advisor_text_features")
        written = lake.replace_slice(
            rows, gold_uri, predicate=f"as_of_date = '{ctx.run_date}'", partition_by=["as_of_date"]
        )
        st.add(advisors=written.get("numOutputRows", 0))

    topics = (
        lake.read_delta(spark, cfg.table_uri("gold.text_topics"))
        .where(F.col("model_version") == version.version)
        .orderBy("topic", "rank")
        .collect()  # k x top_terms rows
    )
    top_terms: dict[int, list[str]] = {}
    for row in topics:
        top_terms.setdefault(int(row["topic"]), []).append(row["term"])
    return {
        "run_date": ctx.run_date.isoformat(),
        "model_version": version.version,
        "refit": refit,
        "notes_scored": scored_now,
        "advisors": written.get("numOutputRows", 0),
        "topics": top_terms,
        "tables": {
            name: cfg.table_uri(name)
            for name in ("silver.note_features", "gold.text_topics", "gold.advisor_text_features")
        },
    }


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for spark-submit, ``decisionlake run`` and notebooks."""
    return run_job(NAME, argv, run)


if __name__ == "__main__":
    sys.exit(main())
