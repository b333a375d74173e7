"""Text path units: decoding, email parsing, cleaning, redaction, lexicon, sentiment, language."""

from __future__ import annotations

import dataclasses
from email.message import EmailMessage
from pathlib import Path

import pandas as pd
import pytest
from chispa import assert_df_equality
from pyspark.sql import SparkSession
from pyspark.sql import functions as F

from decisionlake.config import SentimentConfig, load_config
from decisionlake.text import pipeline_store
from decisionlake.text.clean import analysed_text
from decisionlake.text.decode import with_decoded_text
from decisionlake.text.emails import parse_eml, parse_eml_bytes
from decisionlake.text.features import (
    build_pipeline,
    detect_language,
    dominant_topic,
    lexicon_scores,
    preparation,
    sentiment_scores,
    tokenize,
    vocabulary,
)
from decisionlake.text.redact import with_redacted
from tests.conftest import jobs_of


def test_decoding_detects_each_encoding(spark: SparkSession) -> None:
    text = "Réunion: café"
    cases = [
        ("utf8", text.encode("utf-8"), text, "utf-8"),
        ("bom", b"\xef\xbb\xbf" + text.encode("utf-8"), text, "utf-8-bom"),
        ("latin1", text.encode("latin-1"), text, "iso-8859-1"),
        ("broken", "Réunion: x".encode() + b"\xff", "Réunion: x\ufffd", "utf-8-repaired"),
    ]
    df = spark.createDataFrame([(n, b) for n, b, _, _ in cases], "name string, content binary")
    got = {r["name"]: (r["text"], r["encoding"])
           for r in with_decoded_text(df, content="content").collect()}  # fmt: skip
    assert got == {n: (t, e) for n, _, t, e in cases}


def _email(body: str, *, html: str | None = None, charset: str = "utf-8") -> bytes:
    msg = EmailMessage()
    msg["From"] = "Pat Lee <Pat.Lee@harbor.example>"
    msg["To"] = "Jordan <jordan@northwind-funds.example>"
    msg["Subject"] = "Fees"
    msg["Date"] = "Tue, 24 Nov 2026 10:00:00 +0000"
    msg["X-Note-Id"] = "N-1"
    if body:
        msg.set_content(body, charset=charset)
        if html:
            msg.add_alternative(html, subtype="html", charset=charset)
    elif html:
        msg.set_content(html, subtype="html", charset=charset)
    return bytes(msg)


def test_email_parsing_prefers_plain_text_and_keeps_headers() -> None:
    parsed = parse_eml_bytes(
        _email("Plain body café", html="<p>HTML body</p>", charset="iso-8859-1")
    )
    assert parsed["body"].strip() == "Plain body café"
    assert (parsed["note_id"], parsed["from_email"], parsed["body_format"]) == (
        "N-1",
        "Pat.Lee@harbor.example",
        "text",
    )
    assert parsed["charset"] == "iso-8859-1" and parsed["sent_at"].startswith("2026-11-24T10:00")
    html_only = parse_eml_bytes(_email("", html="<p>Only&nbsp;HTML</p>"))
    assert html_only["body_format"] == "html"
    assert parse_eml_bytes(b"\x00\x01 not an email")["error"].startswith("UNPARSEABLE_EMAIL")


def test_email_parsing_runs_on_arrow_batches(spark: SparkSession) -> None:
    df = spark.createDataFrame([(_email("Hello"),), (b"garbage",)], "content binary")
    rows = df.select(parse_eml("content").alias("e")).select("e.*").collect()
    assert rows[0]["body"].strip() == "Hello" and rows[0]["error"] is None
    assert rows[1]["error"].startswith("UNPARSEABLE_EMAIL")


def test_cleaning_drops_html_quoted_replies_and_signatures(spark: SparkSession) -> None:
    body = (
        "Thanks, we want the proposal.\n-- \nPat Lee\nHarbor Wealth\n\n"
        "On Mon, Nov 16, 2026 at 9:12 AM Jordan <j@x.example> wrote:\n> old text\n> more\n"
    )
    html = "<html><body><p>Line one<br>Line &amp; two</p><script>x()</script></body></html>"
    df = spark.createDataFrame([(body, "text"), (html, "html")], "body string, body_format string")
    got = [r[0] for r in df.select(analysed_text(F.col("body"), F.col("body_format"))).collect()]
    assert got == ["Thanks, we want the proposal.", "Line one\nLine & two"]


def test_redaction_types_counts_and_names(spark: SparkSession) -> None:
    text = (
        "Pat Lee (pat.lee@harbor.example, +1-212-555-0147, (646) 555-0199, +44 20 7946 0958) "
        "gave account 4512-8890-30 and SSN 123-45-6789; reset link "
        "https://portal.example/reset?token=abc123&user=pat. Met Pat on 2026-11-24."
    )
    df = spark.createDataFrame([(text, "Pat", "Lee")], "t string, first string, last string")
    row = with_redacted(
        df, text="t", first_name="first", last_name="last", out_text="r", out_counts="c"
    ).first()
    assert row["r"] == (
        "<NAME> (<EMAIL>, <PHONE>, <PHONE>, <PHONE>) gave account <ACCOUNT> and SSN <SSN>; "
        "reset link <URL> Met <NAME> on 2026-11-24."
    )
    assert row["c"] == {"URL": 1, "EMAIL": 1, "SSN": 1, "PHONE": 3, "ACCOUNT": 1, "NAME": 2}


def test_lexicon_sentiment_with_negation_and_language(spark: SparkSession) -> None:
    cfg = load_config("test")
    notes = spark.createDataFrame(
        [
            ("a", "The client is not happy with the fees; expense ratio too high versus Vanguard."),
            ("b", "They were never slow to respond and are interested in the NWESX ESG fund."),
            ("c", "Quiere una propuesta la próxima semana para los fondos de la jubilación."),
        ],
        "note_id string, text string",
    )
    scored = detect_language(
        sentiment_scores(
            lexicon_scores(tokenize(notes), lexicon=cfg.text.lexicon),
            sentiment=dataclasses.replace(cfg.text.sentiment, lexicon="hand"),  # its word lists
        ),
        languages=cfg.text.languages,
    )
    rows = {r["note_id"]: r for r in scored.collect()}
    a, b, c = rows["a"], rows["b"], rows["c"]
    assert (a["sentiment_positive"], a["sentiment_negative"]) == (0, 1)  # "not happy"
    assert (b["sentiment_positive"], b["sentiment_negative"]) == (
        2,
        0,
    )  # "never slow", "interested"
    assert a["lex_fee_sensitivity"] == 2 and a["lex_competitor_mention"] == 1
    assert b["lex_product_interest"] == 1 and b["lex_esg_interest"] == 1
    assert (a["language"], b["language"], c["language"]) == ("en", "en", "es")
    assert c["is_english"] is False


@pytest.mark.parametrize("window", [1, 3])
def test_negation_window(spark: SparkSession, window: int) -> None:
    settings = SentimentConfig(
        positive=["happy"], negative=[], negators=["not"], negation_window=window
    )
    notes = spark.createDataFrame([("not at all happy",)], "text string")
    row = sentiment_scores(tokenize(notes), sentiment=settings).first()
    assert row["sentiment_score"] == (1.0 if window == 1 else -1.0)


def test_candidates_quarantine_reasons_for_files_and_lines(spark: SparkSession) -> None:
    from decisionlake.text.ingest import file_note_candidates, json_note_candidates

    header = "Note-Id: {id}\nAdvisor-Id: {adv}\nAuthor: A\nCreated: 2026-11-24T10:00:00Z\n\n"
    files = [
        ("/l/ok.txt", (header.format(id="T1", adv="ADV1") + "Fine note").encode()),
        ("/l/big.txt", (header.format(id="T2", adv="ADV1") + "x" * 500).encode()),
        ("/l/anon.txt", (header.format(id="T3", adv="") + "No advisor").encode()),
        ("/l/scan.pdf", b"%PDF-1.7"),
        ("/l/bad.eml", b"\x00\x01\x02"),
        ("/l/ok.eml", _email("Body")),
    ]
    df = spark.createDataFrame(
        [(p, len(b), b) for p, b in files], "path string, length long, content binary"
    )
    got = {
        r["source_file"]: r["reason"]
        for r in file_note_candidates(df, max_bytes=300).select("source_file", "reason").collect()
    }
    assert got == {
        "/l/ok.txt": None,
        "/l/big.txt": "OVERSIZED_DOCUMENT",
        "/l/anon.txt": "MISSING_ADVISOR",
        "/l/scan.pdf": "UNSUPPORTED_FILE_TYPE",
        "/l/bad.eml": "UNPARSEABLE_EMAIL",
        "/l/ok.eml": None,
    }
    note = '{"note_id": "J1", "advisor_id": "ADV1", "created_at": "2026-11-24T10:00:00Z", '
    lines = spark.createDataFrame(
        [
            ((note + '"body": "caf\xc3\xa9 ok"}').encode("latin-1"), "f"),
            ((note + '"body": "broken \xff byte"}').encode("latin-1"), "f"),
            (note.encode(), "f"),
            ((note + '"body": ""}').encode(), "f"),
        ],
        "value binary, source_file string",
    ).select(F.col("value").cast("string").alias("value"), "source_file")
    rows = (
        json_note_candidates(lines, max_bytes=1000).select("reason", "encoding", "body").collect()
    )
    assert [(r["reason"], r["encoding"]) for r in rows] == [
        (None, "utf-8"),
        (None, "utf-8-repaired"),
        ("MALFORMED_JSON", "utf-8"),
        ("MISSING_BODY", "utf-8"),
    ]
    assert rows[0]["body"] == "café ok"


def test_dominant_topic_numbers_topics_from_zero_like_the_topics_table(
    spark: SparkSession,
) -> None:
    from pyspark.sql import types as T

    schema = T.StructType([T.StructField("dist", T.ArrayType(T.DoubleType()))])
    rows = [([0.9, 0.05, 0.05],), ([0.1, 0.2, 0.7],), ([0.4, 0.4, 0.2],)]
    got = [
        r["t"]
        for r in spark.createDataFrame(rows, schema)
        .select(dominant_topic(F.col("dist")).alias("t"))
        .collect()
    ]
    assert got == [0, 2, 0]  # LDA's describeTopics numbers the first topic 0


def test_publisher_masks_glued_to_words_or_numbers_never_become_tokens(
    spark: SparkSession,
) -> None:
    df = spark.createDataFrame(
        [("Balance 719XXXX was OpenedXX/XX/XXXX and the XXXX account closed",)], "text string"
    )
    tokens = tokenize(df).first()["tokens"]
    assert "opened" in tokens and "account" in tokens
    assert not [t for t in tokens if "xx" in t], tokens


def test_account_redaction_spares_citations_ranges_and_dates(spark: SparkSession) -> None:
    kept = (
        "Under 15 U.S.C. 6801-6805, paid $ 1000-2000 a month since 11-24-2026 and 2026-11-24, "
        "in 2018 2019 2020, ref 100-10-10."
    )
    redacted = (
        "Accounts 4512-8890-30, 123456789012 and card 4111 1111 1111 1111, "
        "amex 3782 822463 10005, id 12-34-5678-9012."
    )
    df = spark.createDataFrame([(kept, None, None), (redacted, None, None)],
                               "t string, first string, last string")  # fmt: skip
    rows = with_redacted(
        df, text="t", first_name="first", last_name="last", out_text="r", out_counts="c"
    ).collect()
    assert rows[0]["r"] == kept and rows[0]["c"]["ACCOUNT"] == 0
    assert rows[1]["r"] == (
        "Accounts <ACCOUNT>, <ACCOUNT> and card <ACCOUNT>, amex <ACCOUNT>, id <ACCOUNT>."
    )


def test_vader_and_hand_lexicons_on_real_complaints(spark: SparkSession) -> None:
    """Every CFPB narrative is a complaint: a sentiment lexicon should call most negative.

    One-class evidence (no positive texts to measure false alarms), printed for both lexicons;
    the shipped configuration keeps the one that finds more of them.
    """
    import pandas as pd

    from .conftest import REAL_DATA

    frame = pd.read_csv(REAL_DATA / "cfpb" / "complaints_sample.csv")
    narratives = frame["Consumer complaint narrative"].dropna().tolist()
    notes = tokenize(spark.createDataFrame([(t,) for t in narratives], "text string"))
    shipped = load_config("test").text.sentiment
    shares = {}
    for lexicon in ("hand", "vader"):
        settings = dataclasses.replace(shipped, lexicon=lexicon)
        scored = sentiment_scores(notes, sentiment=settings)
        row = scored.agg(
            F.avg((F.col("sentiment_score") < 0).cast("double")).alias("negative"),
            F.avg((F.col("sentiment_score") == 0).cast("double")).alias("neutral"),
        ).first()
        shares[lexicon] = (round(row["negative"], 3), round(row["neutral"], 3))
    print(f"\n{len(narratives)} CFPB complaints (negative, neutral share): {shares}")
    assert shares["vader"][0] > shares["hand"][0] + 0.2, shares
    assert shipped.lexicon == "vader"  # the better of the two is the shipped one
    # VADER keeps the negation rule: "not happy" is negative, "happy" positive.
    pair = tokenize(spark.createDataFrame([("not happy",), ("happy",)], "text string"))
    vader = dataclasses.replace(shipped, lexicon="vader")
    scores = [
        r[0] for r in sentiment_scores(pair, sentiment=vader).select("sentiment_score").collect()
    ]
    assert scores[0] < 0 < scores[1]


def test_held_back_notes_are_retried_within_the_window_only(spark: SparkSession) -> None:
    from datetime import date

    from decisionlake.text.ingest import notes_to_retry

    bronze = spark.createDataFrame(
        [("linked", date(2026, 11, 20)), ("waiting", date(2026, 11, 20)),
         ("on_the_edge", date(2026, 10, 25)), ("too_old", date(2026, 10, 24))],
        "note_id string, note_date date",
    )  # fmt: skip
    silver = spark.createDataFrame(
        [("linked", date(2026, 11, 20))], "note_id string, note_date date"
    )
    retried = notes_to_retry(bronze, silver, since=date(2026, 10, 25))
    assert sorted(r["note_id"] for r in retried.collect()) == ["on_the_edge", "waiting"]
    # Both scans are pruned by note_date (the tables' partition column), not the whole history.
    import re

    plan = retried._jdf.queryExecution().optimizedPlan().toString()
    assert len(re.findall(r"note_date#\d+ >= 2026-10-25", plan)) == 2, plan


def test_fitted_text_pipeline_has_three_stages_and_loads_in_eleven_jobs(
    spark: SparkSession, tmp_path: Path
) -> None:
    """Every scoring run loads the fitted pipeline, and loading costs small Spark jobs per
    stage (the pipeline's metadata; each stage's twice, from Python and from the JVM; each
    fitted stage's data twice): 11 for preparation, term counts and LDA, where the eight stages
    before (five for the preparation, an unused IDF) took 23. It scores as fitted."""
    settings = dataclasses.replace(
        load_config("test").text, vocab_size=50, min_doc_freq=1, lda_topics=2, lda_max_iterations=3
    )
    words = ["fees", "portfolio", "rebalance", "retirement", "income", "bond", "equity", "tax"]
    notes = spark.createDataFrame(
        [(f"N{i}", " ".join(words[(i + j) % len(words)] for j in range(6))) for i in range(20)],
        "note_id string, text string",
    )
    fitted = build_pipeline(settings).fit(notes)
    assert not [s for s in fitted.stages if type(s).__name__.startswith("IDF")]
    path = str(tmp_path / "text_pipeline")
    fitted.write().save(path)

    version = pipeline_store.TextModelVersion("v-test", path, "run")
    loaded, jobs = jobs_of(spark, "load-text-pipeline", lambda: pipeline_store.load(version))
    assert len(fitted.stages) == 3
    assert jobs == 1 + 2 * 3 + 2 * 2, jobs

    assert [type(s) for s in loaded.stages] == [type(s) for s in fitted.stages]
    assert vocabulary(loaded) == vocabulary(fitted)
    topics = F.col("topic_vector").cast("string")
    assert_df_equality(
        loaded.transform(notes).select("note_id", topics),
        fitted.transform(notes).select("note_id", topics),
        ignore_row_order=True,
    )


def test_preparation_statement_matches_spark_ml_tokenizer_stop_words_and_bigrams(
    spark: SparkSession,
) -> None:
    """The one-statement preparation gives the same tokens, terms and bigrams as the ML stages
    it replaced (RegexTokenizer, StopWordsRemover, NGram), on real complaints and edge cases."""
    from pyspark.ml import PipelineModel
    from pyspark.ml.feature import NGram, RegexTokenizer, StopWordsRemover

    from .conftest import REAL_DATA

    settings = load_config("test").text
    frame = pd.read_csv(REAL_DATA / "cfpb" / "complaints_sample.csv")
    texts = frame["Consumer complaint narrative"].dropna().tolist()[:400]
    texts += [None, "", "a", "Fees", "the and of", "Don't can\u2019t won't-stop rock-n-roll",
              "x-ray  AB  a1b2 <EMAIL> XXXX/XX/XXXX {$1,200.00} https://x.example/y fees fees",
              "Élan naïve café ÜBER"]  # fmt: skip
    notes = spark.createDataFrame(list(enumerate(texts)), "note_id int, text string")
    prepared = preparation(settings).transform(notes)
    reference = PipelineModel(
        stages=[
            RegexTokenizer(inputCol="norm_text", outputCol="ref_tokens",
                           pattern="[a-z][a-z'\u2019-]*[a-z]", gaps=False, minTokenLength=2),
            StopWordsRemover(inputCol="ref_tokens", outputCol="ref_terms",
                             stopWords=sorted(set(StopWordsRemover.loadDefaultStopWords("english"))
                                              | set(settings.domain_stop_words))),
            NGram(n=2, inputCol="ref_terms", outputCol="ref_bigrams"),
        ]
    ).transform(prepared)  # fmt: skip
    columns = ["tokens", "terms", "bigrams"]
    assert_df_equality(
        reference.select("note_id", *columns),
        reference.select("note_id", *[F.col(f"ref_{c}").alias(c) for c in columns]),
        ignore_row_order=True,
        ignore_nullable=True,
    )
    joined = reference.select(F.concat("ref_terms", "ref_bigrams").alias("want"), "vocab_terms")
    assert joined.where(F.col("want") != F.col("vocab_terms")).count() == 0
    assert reference.where(F.size("terms") > 1).count() > 300  # the real texts were compared
