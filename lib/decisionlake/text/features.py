"""Text features: a Spark ML pipeline (tokens, n-grams, term counts, LDA topics) plus a finance
lexicon, sentiment with negation, and language routing, all configured in ``conf/``.

LDA models raw term counts, so the pipeline has no IDF stage (pipelines fitted before
2026-12-06 carry one whose output nothing reads; they still load and score the same).

The fitted pipeline is saved and versioned (MLflow records each version), so a new day is
scored with the same vocabulary and topics until a refit is asked for.
"""

from __future__ import annotations

import math
import re
from typing import Any

import pandas as pd
from pyspark.ml import Pipeline, PipelineModel
from pyspark.ml.clustering import LDA, LDAModel
from pyspark.ml.feature import (
    CountVectorizer,
    CountVectorizerModel,
    SQLTransformer,
    StopWordsRemover,
)
from pyspark.ml.functions import vector_to_array
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from decisionlake.config import SentimentConfig, TextConfig

# Placeholders from redaction (<EMAIL>), publisher masks (XXXX, XX/XX/XXXX), amounts ({$1.00}),
# links and digits carry no topic: they are removed before tokens are made. Masks are matched
# in capitals before lower-casing, also where glued to a word or number (719XXXX,
# OpenedXX/XX/XXXX), which word boundaries would miss.
NORMALIZED_TEXT = (
    "trim(regexp_replace(regexp_replace(regexp_replace(regexp_replace("
    "regexp_replace(lower(regexp_replace(coalesce(text, ''), 'X{2,}(/X{2,})*', ' ')), "
    "'<[a-z_]+>', ' '), '\\\\bx{2,}(/x{2,})*\\\\b', ' '), "
    "'\\\\{\\\\$[0-9.,]+\\\\}', ' '), "
    "'https?://\\\\S+', ' '), '[0-9]+', ' '))"
)
# A token: letters, inner apostrophes and hyphens, at least two characters.
TOKENS = "regexp_extract_all(norm_text, '[a-z][a-z\\'\u2019-]*[a-z]', 0)"
# Consecutive pairs of terms, "a b" (none for fewer than two terms).
BIGRAMS = (
    "CASE WHEN size(terms) < 2 THEN CAST(array() AS array<string>) "
    "ELSE transform(slice(terms, 1, size(terms) - 1), (t, i) -> concat(t, ' ', terms[i + 1])) END"
)


def _sql_string(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def stop_words(settings: TextConfig) -> list[str]:
    """Spark's English stop words and the domain's, lower-cased (tokens are)."""
    words = set(StopWordsRemover.loadDefaultStopWords("english")) | set(settings.domain_stop_words)
    return sorted({w.lower() for w in words})


def preparation(settings: TextConfig) -> SQLTransformer:
    """Text to vocabulary terms in one parameter-free stage: normalised text, tokens, terms
    (tokens less stop words), bigrams of terms, and both as ``vocab_terms``.

    One SQL statement rather than a tokenizer, a stop-word remover, an n-gram stage and a
    concatenation: the statement is one query plan, and the saved pipeline has one stage to
    load instead of five (each a Spark job for its metadata, twice, on every scoring run).
    The stop words are part of the statement, so a fitted pipeline keeps the ones it was
    fitted with whatever the configuration says later.
    """
    listed = ", ".join(_sql_string(w) for w in stop_words(settings))
    return SQLTransformer(
        statement=(
            f"SELECT *, concat(terms, bigrams) AS vocab_terms FROM (SELECT *, {BIGRAMS} AS bigrams "
            f"FROM (SELECT *, filter(tokens, t -> NOT array_contains(array({listed}), t)) AS terms "
            f"FROM (SELECT *, {TOKENS} AS tokens "
            f"FROM (SELECT *, {NORMALIZED_TEXT} AS norm_text FROM __THIS__))))"
        )
    )


def tokenize(notes: DataFrame) -> DataFrame:
    """Normalised text and tokens only (the preparation's first two columns)."""
    return notes.selectExpr("*", f"{NORMALIZED_TEXT} AS norm_text").selectExpr(
        "*", f"{TOKENS} AS tokens"
    )


def build_pipeline(settings: TextConfig) -> Pipeline:
    """The unfitted text pipeline: preparation, term counts, topics."""
    return Pipeline(
        stages=[
            preparation(settings),
            CountVectorizer(
                inputCol="vocab_terms",
                outputCol="tf",
                vocabSize=settings.vocab_size,
                minDF=float(settings.min_doc_freq),
            ),
            LDA(
                k=settings.lda_topics,
                maxIter=settings.lda_max_iterations,
                seed=settings.seed,
                featuresCol="tf",
                topicDistributionCol="topic_vector",
                optimizer="online",
            ),
        ]
    )


def dominant_topic(distribution: Column) -> Column:
    """The index of the largest topic weight, from 0 like LDA's topics in gold.text_topics.

    (``array_position`` counts from 1; the first of equal weights wins.)
    """
    return (F.array_position(distribution, F.array_max(distribution)) - 1).cast("int")


def vocabulary(model: PipelineModel) -> list[str]:
    """The fitted pipeline's vocabulary (its CountVectorizer's terms, by index)."""
    return next(s for s in model.stages if isinstance(s, CountVectorizerModel)).vocabulary


def topic_model(model: PipelineModel) -> LDAModel:
    """The fitted pipeline's topic model (its last stage, LDA on the term counts)."""
    return next(s for s in model.stages if isinstance(s, LDAModel))


def topic_terms(model: PipelineModel, *, top_terms: int) -> list[dict[str, Any]]:
    """Top terms per topic: k x top_terms small rows for people to read."""
    terms = vocabulary(model)
    lda = topic_model(model)
    rows = []
    for topic in lda.describeTopics(top_terms).collect():  # k rows
        for rank, (index, weight) in enumerate(
            zip(topic["termIndices"], topic["termWeights"], strict=True), start=1
        ):
            rows.append(
                {
                    "topic": int(topic["topic"]),
                    "rank": rank,
                    "term": terms[index],
                    "weight": float(weight),
                }
            )
    return rows


def _phrase_pattern(phrases: list[str]) -> str:
    alternatives = sorted({re.escape(p.lower()) for p in phrases}, key=len, reverse=True)
    return r"\b(" + "|".join(alternatives) + r")\b"


def lexicon_scores(
    df: DataFrame, *, lexicon: dict[str, list[str]], text: str = "norm_text"
) -> DataFrame:
    """Add ``lex_<category>``: how often the category's phrases occur."""
    return df.withColumns(
        {
            f"lex_{name}": F.size(
                F.regexp_extract_all(F.col(text), F.lit(_phrase_pattern(phrases)), 0)
            )
            for name, phrases in sorted(lexicon.items())
            if phrases
        }
    )


def vader_lexicon() -> dict[str, float]:
    """The single-word entries of VADER's lexicon (``vaderSentiment`` package): word -> valence
    (-4 .. +4, the mean of ten human ratings)."""
    from importlib.resources import files

    text = (files("vaderSentiment") / "vader_lexicon.txt").read_text(encoding="utf-8")
    lexicon = {}
    for line in text.splitlines():
        parts = line.split("\t")
        if len(parts) >= 2 and re.fullmatch(r"[a-z][a-z'-]*[a-z]", parts[0]):
            lexicon[parts[0]] = float(parts[1])
    return lexicon


# VADER: a negated word's valence is scaled by this; the sum is normalised by sqrt(x^2 + alpha).
_VADER_NEGATION = -0.74
_VADER_ALPHA = 15.0


def _vader_scores(lexicon: dict[str, float], negators: frozenset[str], window: int) -> Any:
    from pyspark.sql.functions import pandas_udf

    @pandas_udf("positive int, negative int, score double")  # type: ignore[call-overload]
    def score(token_lists: pd.Series) -> pd.DataFrame:
        out = []
        for tokens in token_lists:
            tokens = list(tokens) if tokens is not None else []
            total, pos, neg = 0.0, 0, 0
            for i, token in enumerate(tokens):
                valence = lexicon.get(token)
                if valence is None:
                    continue
                if negators.intersection(tokens[max(0, i - window) : i]):
                    valence *= _VADER_NEGATION
                total += valence
                pos += valence > 0
                neg += valence < 0
            out.append((pos, neg, total / math.sqrt(total * total + _VADER_ALPHA)))
        return pd.DataFrame(out, columns=["positive", "negative", "score"])

    return score


def sentiment_scores(
    df: DataFrame, *, sentiment: SentimentConfig, tokens: str = "tokens"
) -> DataFrame:
    """Add ``sentiment_positive``, ``sentiment_negative`` and ``sentiment_score`` in [-1, 1].

    A sentiment word preceded (within ``negation_window`` tokens) by a negator counts for the
    opposite side: "not happy" is negative, "never slow" is positive. With ``lexicon: vader``
    the words and their strengths are VADER's (an Arrow UDF over each note's tokens: a
    dictionary look-up per token, which no built-in does for a 7,500-word lexicon).
    """
    if sentiment.lexicon == "vader":
        udf = _vader_scores(
            vader_lexicon(), frozenset(sentiment.negators), sentiment.negation_window
        )
        scored = df.withColumn("_vader", udf(F.col(tokens)))
        return scored.withColumns(
            {
                "sentiment_positive": F.col("_vader.positive"),
                "sentiment_negative": F.col("_vader.negative"),
                "sentiment_score": F.col("_vader.score"),
            }
        ).drop("_vader")
    positive = F.array(*[F.lit(w) for w in sentiment.positive])
    negative = F.array(*[F.lit(w) for w in sentiment.negative])
    negators = F.array(*[F.lit(w) for w in sentiment.negators])
    window = sentiment.negation_window
    toks = F.col(tokens)

    def polarity(token: Column, index: Column) -> Column:
        start = F.greatest(index - window, F.lit(0))
        before = F.slice(toks, start + 1, index - start)
        flipped = F.when(F.arrays_overlap(before, negators), -1).otherwise(1)
        base = (
            F.when(F.array_contains(positive, token), 1)
            .when(F.array_contains(negative, token), -1)
            .otherwise(0)
        )
        return base * flipped

    signs = F.transform(toks, polarity)
    staged = df.withColumn("_signs", signs).withColumns(
        {
            "sentiment_positive": F.size(F.filter("_signs", lambda s: s > 0)),
            "sentiment_negative": F.size(F.filter("_signs", lambda s: s < 0)),
        }
    )
    total = F.col("sentiment_positive") + F.col("sentiment_negative")
    return staged.withColumn(
        "sentiment_score",
        F.when(
            total > 0, (F.col("sentiment_positive") - F.col("sentiment_negative")) / total
        ).otherwise(F.lit(0.0)),
    ).drop("_signs")


def detect_language(
    df: DataFrame, *, languages: dict[str, list[str]], tokens: str = "tokens"
) -> DataFrame:
    """Add ``language`` (most stop-word hits, ``unknown`` without any) and ``is_english``."""
    hits = [
        F.struct(
            F.size(F.array_intersect(F.col(tokens), F.array(*[F.lit(w) for w in words]))).alias(
                "n"
            ),
            F.lit(code).alias("code"),
        )
        for code, words in sorted(languages.items())
    ]
    best = F.greatest(*hits) if len(hits) > 1 else hits[0]
    language = F.when(best["n"] > 0, best["code"]).otherwise(F.lit("unknown"))
    return df.withColumn("language", language).withColumn("is_english", F.col("language") == "en")


def score_notes(
    notes: DataFrame, model: PipelineModel, *, settings: TextConfig, model_version: str
) -> DataFrame:
    """Per-note features: topics, lexicon, sentiment, language."""
    scored = model.transform(notes)
    scored = lexicon_scores(scored, lexicon=settings.lexicon)
    scored = sentiment_scores(scored, sentiment=settings.sentiment)
    scored = detect_language(scored, languages=settings.languages)
    topics = vector_to_array(F.col("topic_vector"))
    lex = sorted(c for c in scored.columns if c.startswith("lex_"))
    return scored.select(
        "note_id",
        "advisor_id",
        "note_date",
        "channel",
        "language",
        "is_english",
        topics.alias("topic_dist"),
        dominant_topic(topics).alias("dominant_topic"),
        *lex,
        "sentiment_positive",
        "sentiment_negative",
        "sentiment_score",
        F.size("tokens").alias("tokens"),
        F.lit(model_version).alias("model_version"),
    )


def advisor_text_features(
    note_features: DataFrame, *, as_of: Any, settings: TextConfig
) -> DataFrame:
    """Per advisor as of a date: rolling note counts, topic shares, lexicon and sentiment."""
    longest = max(settings.windows_days)
    day = F.lit(as_of).cast("date")
    recent = note_features.where(
        F.col("advisor_id").isNotNull()
        & (F.col("note_date") <= day)
        & (F.col("note_date") > F.date_sub(day, longest))
    )
    lex = sorted(c for c in note_features.columns if c.startswith("lex_"))
    aggs: list[Column] = []
    for w in settings.windows_days:
        inside = F.col("note_date") > F.date_sub(day, w)
        english = inside & F.col("is_english")
        aggs += [
            F.sum(inside.cast("int")).alias(f"notes_{w}d"),
            F.avg(F.when(inside, F.col("sentiment_score"))).alias(f"sentiment_{w}d"),
            *[F.sum(F.when(inside, F.col(c))).alias(f"{c}_{w}d") for c in lex],
            *[
                F.avg(F.when(english, F.col("topic_dist")[k])).alias(f"topic_{k}_share_{w}d")
                for k in range(settings.lda_topics)
            ],
        ]
    aggs += [
        F.datediff(day, F.max("note_date")).alias("days_since_last_note"),
        F.sum((~F.col("is_english")).cast("int")).alias(f"non_english_notes_{longest}d"),
    ]
    return recent.groupBy("advisor_id").agg(*aggs).withColumn("as_of_date", day)
