"""gold.call_list and gold.campaign_uplift: whom to call, why, and whether calling made a
difference (pure transformations; the job wires them).

- The targeted advisors of a run date are the best-scored by the ranking model's champion,
  within per-region / per-channel limits. A stable, keyed hash of (advisor, campaign period)
  puts ``holdout_fraction`` of them in a control group: scored, recorded, never called. The
  assignment is the same in every run of the period and cannot be recomputed without the key.
- When outcomes mature, conversion of the contacted and the held-out advisors of the same
  deciles is compared: uplift with a 95% interval, and a plain "too few" below a floor.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from decisionlake.core.privacy import hmac_sha256

CONTACT = "contact"
HOLDOUT = "holdout"
_Z = 1.96


def campaign_period(day: date, *, period_days: int) -> int:
    """The campaign period a run date belongs to (assignments are stable within one)."""
    return (day - date(1970, 1, 1)).days // period_days


def assignment(advisor_id: Column, *, key: bytes, period: int, fraction: float) -> Column:
    """``holdout`` for the advisors whose keyed hash of (id, period) falls under ``fraction``."""
    message = F.concat_ws(":", F.lit("holdout"), advisor_id.cast("string"), F.lit(str(period)))
    digest = hmac_sha256(message, key)
    unit = F.conv(F.substring(digest, 1, 8), 16, 10).cast("double") / float(16**8)
    return F.when(unit < F.lit(fraction), F.lit(HOLDOUT)).otherwise(F.lit(CONTACT))


def _interest(snapshot_columns: list[str]) -> Column:
    """Product and topic interests from web and notes: top fund, top topic, note themes."""
    parts: list[Column] = []
    for fund in sorted(c for c in snapshot_columns if c.startswith("top_fund_"))[-1:]:
        parts.append(F.col(fund))
    topics = sorted(c for c in snapshot_columns if c.startswith("topic_share_"))
    if topics:
        best = F.greatest(*[F.coalesce(F.col(t), F.lit(0.0)) for t in topics])
        name = F.coalesce(
            *[F.when((F.col(t) == best) & (best > 0), F.lit(t.removeprefix("topic_share_")))
              for t in topics]
        )  # fmt: skip
        parts.append(F.regexp_replace(name, "_", " "))
    themes = [c for c in snapshot_columns if c.startswith("text_lex_") and c.endswith("_30d")]
    for lex in sorted(themes):
        theme = lex.removeprefix("text_lex_").rsplit("_", 1)[0].replace("_", " ")
        parts.append(F.when(F.col(lex) > 0, F.lit(f"notes: {theme}")))
    return F.filter(F.array(*parts), lambda x: x.isNotNull()) if parts else F.array()


def targeted(
    scores: DataFrame,
    snapshot: DataFrame,
    *,
    model: str,
    segment_model: str,
    segment_names: dict[int, str],
    size: int,
    limits: dict[str, dict[str, int]],
    key: bytes,
    period: int,
    holdout_fraction: float,
) -> DataFrame:
    """The run date's targeted advisors, ranked, with reasons, interests and assignment."""
    ranked_scores = scores.where(F.col("model_name") == model).select(
        "advisor_id", "score", "decile", "top_features", "model_version"
    )
    segments = scores.where(F.col("model_name") == segment_model).select(
        "advisor_id", F.col("segment")
    )
    name_map = F.create_map(
        *[x for k, v in sorted(segment_names.items()) for x in (F.lit(k), F.lit(v))]
    ) if segment_names else None  # fmt: skip
    columns = snapshot.columns
    profile = snapshot.select(
        "advisor_id",
        *[F.col(c) for c in ("region", "channel") if c in columns],
        F.col("text_days_since_last_note").cast("int").alias("days_since_last_contact")
        if "text_days_since_last_note" in columns
        else F.lit(None).cast("int").alias("days_since_last_contact"),
        _interest(columns).alias("interests"),
    )
    pool = ranked_scores.join(segments, "advisor_id", "left").join(profile, "advisor_id", "left")
    order = [F.desc("score"), F.asc("advisor_id")]
    for dimension, caps in sorted(limits.items()):
        if not caps or dimension not in pool.columns:
            continue
        cap = F.create_map(*[x for v, n in sorted(caps.items()) for x in (F.lit(v), F.lit(n))])
        within = F.row_number().over(Window.partitionBy(dimension).orderBy(*order))
        pool = (
            pool.withColumn("_within", within)
            .where(F.coalesce(cap[F.col(dimension)], F.lit(size)) >= F.col("_within"))
            .drop("_within")
        )
    rank = F.row_number().over(Window.orderBy(*order))
    chosen = pool.withColumn("rank", rank).where(F.col("rank") <= size)
    return chosen.select(
        "rank",
        "advisor_id",
        "score",
        "decile",
        F.col("segment").cast("int").alias("segment"),
        (name_map[F.col("segment")] if name_map is not None else F.lit(None))
        .cast("string")
        .alias("segment_name"),
        F.transform(F.coalesce("top_features", F.array()), lambda f: f["reason"]).alias("reasons"),
        F.coalesce("interests", F.array().cast("array<string>")).alias("interests"),
        "days_since_last_contact",
        *[c for c in ("region", "channel") if c in pool.columns],
        assignment(F.col("advisor_id"), key=key, period=period, fraction=holdout_fraction).alias(
            "assignment"
        ),
        F.lit(period).alias("campaign_period"),
        "model_version",
    )


def segment_names(profiles: list[dict[str, Any]], *, features: list[str]) -> dict[int, str]:
    """A readable name per segment from its profile: its two most distinctive features.

    ``profiles``: one dict per segment with ``segment``, ``advisors`` and the mean of each
    feature. A feature is distinctive by how far the segment's mean is from the mean of all
    advisors, relative to it: "high downloads, high sessions".
    """
    if not profiles:
        return {}
    total = sum(p["advisors"] for p in profiles) or 1
    overall = {
        f: sum(float(p.get(f) or 0.0) * p["advisors"] for p in profiles) / total for f in features
    }

    def distinctness(p: dict[str, Any], f: str) -> float:
        # Relative to the all-advisor mean: "5x the downloads" matters more than "+0.1 notes".
        return abs(float(p.get(f) or 0.0) - overall[f]) / (abs(overall[f]) + 1e-9)

    names: dict[int, str] = {}
    for p in profiles:
        words = []
        for f in sorted(features, key=lambda f: (-distinctness(p, f), f))[:2]:
            level = "high" if float(p.get(f) or 0.0) >= overall[f] else "low"
            label = f.replace("_30d", "").replace("_90d", "").replace("topic_share_", "")
            words.append(f"{level} {label.replace('_', ' ')}")
        names[int(p["segment"])] = ", ".join(words)
    return names


def first_listing_per_period(lists: DataFrame) -> DataFrame:
    """Each advisor once per campaign period: the first date it was targeted.

    An advisor on the list every day of a period (in the same arm) is one trial, not many:
    counting every daily listing would count one purchase many times and make the interval
    far too narrow.
    """
    first = Window.partitionBy("campaign_period", "advisor_id").orderBy("run_date")
    return lists.withColumn("_n", F.row_number().over(first)).where(F.col("_n") == 1).drop("_n")


def outcomes_of(
    lists: DataFrame, events: DataFrame, *, id_column: str, time_column: str, horizon_days: int
) -> DataFrame:
    """Each targeted advisor of a matured list date with ``converted`` (1 when an event follows
    within the horizon)."""
    picked = events.select(
        F.col(id_column).alias("advisor_id"), F.to_date(F.col(time_column)).alias("_t")
    )
    window = (F.col("_t") > F.col("run_date")) & (
        F.col("_t") <= F.date_add(F.col("run_date"), horizon_days)
    )
    hits = (
        lists.select("run_date", "advisor_id")
        .join(picked, "advisor_id")
        .where(window)
        .select("run_date", "advisor_id")
        .distinct()
        .withColumn("converted", F.lit(1))
    )
    return lists.join(hits, ["run_date", "advisor_id"], "left").withColumn(
        "converted", F.coalesce(F.col("converted"), F.lit(0))
    )


def uplift(outcomes: DataFrame, *, min_per_arm: int) -> DataFrame:
    """Contacted vs held-out conversion per decile and overall (``decile`` NULL): uplift with
    a 95% interval (difference of two proportions), and what may be concluded."""

    def arm(name: str) -> list[Column]:
        here = F.col("assignment") == F.lit(name)
        return [
            F.sum(F.when(here, 1).otherwise(0)).alias(f"{name}_n"),
            F.sum(F.when(here, F.col("converted")).otherwise(0)).alias(f"{name}_conv"),
        ]

    aggregates = [*arm(CONTACT), *arm(HOLDOUT)]
    arms = outcomes.groupBy(F.col("decile")).agg(*aggregates)
    overall = (
        outcomes.groupBy()
        .agg(*aggregates)
        .select(F.lit(None).cast(outcomes.schema["decile"].dataType).alias("decile"), "*")
    )
    both = arms.unionByName(overall)
    nc = F.coalesce(F.col(f"{CONTACT}_n"), F.lit(0))
    nh = F.coalesce(F.col(f"{HOLDOUT}_n"), F.lit(0))
    rc = F.coalesce(F.col(f"{CONTACT}_conv"), F.lit(0)) / F.greatest(nc, F.lit(1))
    rh = F.coalesce(F.col(f"{HOLDOUT}_conv"), F.lit(0)) / F.greatest(nh, F.lit(1))
    diff = rc - rh
    half = F.lit(_Z) * F.sqrt(
        rc * (1 - rc) / F.greatest(nc, F.lit(1)) + rh * (1 - rh) / F.greatest(nh, F.lit(1))
    )
    enough = (nc >= min_per_arm) & (nh >= min_per_arm)
    verdict = (
        F.when(~enough, F.lit(f"too few matured outcomes (fewer than {min_per_arm} per arm)"))
        .when(diff - half > 0, F.lit("contacting raised conversion"))
        .when(diff + half < 0, F.lit("contacting lowered conversion"))
        .otherwise(F.lit("no difference that the sample can show"))
    )
    return both.select(
        "decile",
        nc.cast("long").alias("contacted"),
        nh.cast("long").alias("held_out"),
        rc.alias("contacted_rate"),
        rh.alias("held_out_rate"),
        diff.alias("uplift"),
        F.when(enough, diff - half).alias("uplift_low"),
        F.when(enough, diff + half).alias("uplift_high"),
        verdict.alias("conclusion"),
    )
