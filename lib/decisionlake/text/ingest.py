"""CRM notes from JSON lines and from raw files (.txt, .eml) -> one candidate shape -> bronze.

Every input (a JSON line or a file) becomes exactly one candidate row with either a ``reason``
(quarantined) or the note's fields (accepted), so rows in = accepted + quarantined.
"""

from __future__ import annotations

from datetime import date
from typing import Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from decisionlake.config import TextConfig
from decisionlake.io.ingest import DocumentInput, LineIngestSpec, dedupe_on, valid_to_bronze
from decisionlake.sources.lines import first_failing, line_rules, parse_json_lines
from decisionlake.text.clean import analysed_text
from decisionlake.text.decode import with_decoded_text
from decisionlake.text.emails import parse_eml
from decisionlake.text.redact import PATTERNS, with_redacted

CORRUPT_COLUMN = "_corrupt_record"
NOTE_FIELDS = (
    "note_id",
    "advisor_id",
    "email",
    "author",
    "created_at",
    "channel",
    "subject",
    "body",
)
JSON_SCHEMA = T.StructType(
    [T.StructField(n, T.StringType()) for n in NOTE_FIELDS]
    + [T.StructField(CORRUPT_COLUMN, T.StringType())]
)
CANDIDATE_COLUMNS = (
    *NOTE_FIELDS,
    "body_format",
    "encoding",
    "source_kind",
    "source_file",
    "value",
    "reason",
)

BRONZE_SCHEMA = T.StructType(
    [
        T.StructField("note_id", T.StringType(), False),
        T.StructField("advisor_id", T.StringType()),
        T.StructField("email", T.StringType()),
        T.StructField("author", T.StringType()),
        T.StructField("created_at", T.TimestampType(), False),
        T.StructField("note_date", T.DateType(), False),
        T.StructField("channel", T.StringType()),
        T.StructField("subject", T.StringType()),
        T.StructField("body", T.StringType(), False),
        T.StructField("body_format", T.StringType(), False),
        T.StructField("encoding", T.StringType(), False),
        T.StructField("source_kind", T.StringType(), False),
        T.StructField("source_file", T.StringType(), False),
        T.StructField("ingest_date", T.DateType(), False),
        T.StructField("ingested_at", T.TimestampType(), False),
        T.StructField("run_id", T.StringType(), False),
    ]
)
COMPARED_COLUMNS = (
    "advisor_id",
    "email",
    "author",
    "created_at",
    "channel",
    "subject",
    "body",
    "body_format",
    "encoding",
)


def _blank(c: Column) -> Column:
    return c.isNull() | (F.trim(c) == "")


def _note_rules(max_bytes: int) -> list[tuple[Column, str]]:
    """Rules on the note fields, shared by every input kind."""
    return [
        (F.octet_length(F.col("body")) > max_bytes, "OVERSIZED_DOCUMENT"),
        (_blank(F.col("note_id")), "MISSING_NOTE_ID"),
        (_blank(F.col("body")), "MISSING_BODY"),
        (_blank(F.col("advisor_id")) & _blank(F.col("email")), "MISSING_ADVISOR"),
        (F.try_to_timestamp(F.col("created_at")).isNull(), "BAD_TIMESTAMP"),
    ]


def json_note_candidates(raw: DataFrame, *, max_bytes: int) -> DataFrame:
    """JSON lines (``value``, ``source_file``) -> candidates; broken UTF-8 is repaired."""
    repaired = raw.withColumn("_repaired", ~F.is_valid_utf8("value")).withColumn(
        "value", F.make_valid_utf8("value")
    )
    parsed = parse_json_lines(repaired, JSON_SCHEMA, CORRUPT_COLUMN)
    # The line's delivered size, when the lines come from the ingest runner (it checks files).
    sizes = [c for c in ("line_bytes",) if c in raw.columns]
    p = F.col("_p")
    line_level = line_rules(F.col("value"), p, CORRUPT_COLUMN, max_line_bytes=max_bytes * 2)
    shaped = parsed.select(
        *[p[n].alias(n) for n in NOTE_FIELDS],
        F.lit("text").alias("body_format"),
        F.when(F.col("_repaired"), "utf-8-repaired").otherwise("utf-8").alias("encoding"),
        F.lit("json").alias("source_kind"),
        "source_file",
        "value",
        *sizes,
        first_failing(line_level).alias("_line_reason"),
    )
    return shaped.withColumn(
        "reason", F.coalesce(F.col("_line_reason"), first_failing(_note_rules(max_bytes)))
    ).select(*CANDIDATE_COLUMNS, *sizes)


def file_note_candidates(files: DataFrame, *, max_bytes: int) -> DataFrame:
    """Raw files (``path``, ``length``, ``content``) -> candidates (.txt and .eml)."""
    kind = F.lower(F.regexp_extract("path", r"\.([A-Za-z0-9]+)$", 1))
    staged = files.select(
        F.col("path").alias("source_file"),
        kind.alias("_kind"),
        (F.col("length") > max_bytes).alias("_oversized"),
        F.col("content").cast("string").alias("value"),
        F.regexp_extract("path", r"([^/]+)\.[^./]+$", 1).alias("_stem"),
        F.col("content"),
    ).withColumn("content", F.when(~F.col("_oversized"), F.col("content")))
    is_txt, is_eml = F.col("_kind") == "txt", F.col("_kind") == "eml"
    # .txt: decoded text, "Key: value" header lines, a blank line, the body.
    staged = staged.withColumn("_txt_bytes", F.when(is_txt, F.col("content"))).transform(
        with_decoded_text, content="_txt_bytes", text="_txt", encoding="_txt_encoding"
    )
    staged = staged.withColumn(
        "_parts", F.split(F.regexp_replace("_txt", r"\r\n?", "\n"), "\n\n", 2)
    ).withColumn("_has_header", F.size("_parts") == 2)
    staged = staged.withColumns(
        {
            "_h": F.when(
                F.col("_has_header"), F.str_to_map(F.col("_parts")[0], F.lit("\n"), F.lit(": "))
            ),
            "_txt_body": F.when(F.col("_has_header"), F.col("_parts")[1]).otherwise(F.col("_txt")),
            # .eml: MIME parsing on Arrow batches.
            "_eml": F.when(is_eml, parse_eml(F.col("content"))),
        }
    )
    h, e = F.col("_h"), F.col("_eml")

    def pick(txt: Column, eml_value: Column) -> Column:
        return F.when(is_txt, txt).when(is_eml, eml_value)

    shaped = staged.select(
        pick(F.coalesce(h["Note-Id"], F.col("_stem")), e["note_id"]).alias("note_id"),
        pick(F.when(~_blank(h["Advisor-Id"]), h["Advisor-Id"]), F.lit(None)).alias("advisor_id"),
        pick(F.lit(None), F.lower(e["from_email"])).alias("email"),
        pick(h["Author"], F.coalesce(e["to_name"], e["to_email"])).alias("author"),
        pick(h["Created"], e["sent_at"]).alias("created_at"),
        pick(F.coalesce(h["Channel"], F.lit("call")), F.lit("email")).alias("channel"),
        pick(h["Subject"], e["subject"]).alias("subject"),
        pick(F.col("_txt_body"), e["body"]).alias("body"),
        pick(F.lit("text"), e["body_format"]).alias("body_format"),
        pick(F.col("_txt_encoding"), F.lower(e["charset"])).alias("encoding"),
        F.col("_kind").alias("source_kind"),
        "source_file",
        "value",
        F.when(F.col("_oversized"), "OVERSIZED_DOCUMENT")
        .when(~F.col("_kind").isin("txt", "eml"), "UNSUPPORTED_FILE_TYPE")
        .when(is_eml & e["error"].isNotNull(), F.split(e["error"], ":")[0])
        .alias("_file_reason"),
    )
    return shaped.withColumn(
        "reason", F.coalesce(F.col("_file_reason"), first_failing(_note_rules(max_bytes)))
    ).select(*CANDIDATE_COLUMNS)


def to_bronze_notes(candidates: DataFrame, **lineage: Any) -> DataFrame:
    """Accepted candidates in the bronze schema (original text kept: a restricted table)."""
    created = F.try_to_timestamp(F.col("created_at"))
    columns = {
        "note_id": F.trim("note_id"),
        "email": F.lower(F.trim("email")),
        "created_at": created,
        "note_date": F.to_date(created),
    }
    return valid_to_bronze(candidates, BRONZE_SCHEMA, columns, **lineage)


def notes_to_retry(bronze: DataFrame, silver: DataFrame, *, since: date) -> DataFrame:
    """Bronze notes dated ``since`` or later that silver does not hold (held back for want of
    a CRM link). Both sides are filtered on ``note_date``, their partition column, so the
    scan covers the retry window, not the history."""
    recent = F.col("note_date") >= F.lit(since)
    return bronze.where(recent).join(silver.where(recent).select("note_id"), "note_id", "left_anti")


def to_silver_notes(bronze: DataFrame, crm_people: DataFrame) -> DataFrame:
    """Redacted notes linked to advisors; no original text and no direct identifiers.

    ``crm_people`` is (advisor_id, email, first_name, last_name) from the restricted CRM table.
    Notes that link to no CRM advisor are left out (their people's names are unknown, so they
    cannot be redacted yet); they stay in bronze and enter silver on a later run once the CRM
    knows them.
    """
    people = crm_people.select(
        F.col("advisor_id").alias("_crm_id"),
        F.lower(F.trim("email")).alias("_crm_email"),
        "first_name",
        "last_name",
    )
    # Two equi-joins, not one join on "same id OR (no id and same e-mail)": a disjunction has
    # no join key, so Spark compares every note with every CRM person (a nested loop: 900
    # million comparisons a day at 50,000 advisors, found by the scale bench). The branches
    # take disjoint notes (with and without an advisor id), so their union is the same rows.
    by_id = bronze.where(F.col("advisor_id").isNotNull()).join(
        people, F.col("advisor_id") == F.col("_crm_id"), "inner"
    )
    by_email = bronze.where(F.col("advisor_id").isNull()).join(
        people, F.col("email") == F.col("_crm_email"), "inner"
    )
    joined = by_id.unionByName(by_email)
    redacted = (
        joined.withColumn("_analysed", analysed_text(F.col("body"), F.col("body_format")))
        .transform(
            with_redacted,
            text="_analysed",
            first_name="first_name",
            last_name="last_name",
            out_text="_text",
            out_counts="pii_counts",
        )
        .transform(
            with_redacted,
            text="subject",
            first_name="first_name",
            last_name="last_name",
            out_text="_subject",
            out_counts="_subject_counts",
        )
    )
    return redacted.transform(dedupe_on, key="note_id", order_by=("_crm_id",)).select(
        "note_id",
        F.coalesce("advisor_id", "_crm_id").alias("advisor_id"),
        "note_date",
        "created_at",
        "channel",
        F.regexp_replace("author", dict(PATTERNS)["EMAIL"], "<EMAIL>").alias("author"),
        F.col("_subject").alias("subject"),
        F.col("_text").alias("text"),
        F.map_zip_with("pii_counts", "_subject_counts", lambda _k, a, b: a + b).alias("pii_counts"),
        F.length("body").alias("original_chars"),
        F.length("_text").alias("analysed_chars"),
        "encoding",
        "source_kind",
        "ingest_date",
    )


def validate_note_lines(raw: DataFrame, *, ingest_date: date, limits: TextConfig) -> DataFrame:
    """The ingest runner's contract for note lines (see :mod:`decisionlake.io.ingest`)."""
    del ingest_date  # notes are dated by their own timestamp, any past date is legitimate
    return json_note_candidates(raw, max_bytes=limits.max_document_bytes)


def validate_note_files(files: DataFrame, *, ingest_date: date, limits: TextConfig) -> DataFrame:
    """The ingest runner's contract for note and email files, one document each."""
    del ingest_date
    return file_note_candidates(files, max_bytes=limits.max_document_bytes)


# CRM notes: one note per JSON line under crm_notes/, call notes (.txt) and emails (.eml) as
# files under crm_files/. A note's date may be corrected by a later delivery, so the MERGE
# matches on note_id alone; changed notes are updated.
NOTES = LineIngestSpec(
    landing_dir="crm_notes",
    bronze_schema=BRONZE_SCHEMA,
    key="note_id",
    order_by=("source_file",),
    partition_by=("note_date",),
    validate=validate_note_lines,
    to_bronze=to_bronze_notes,
    upsert_columns=COMPARED_COLUMNS,
    match_partitions=False,
    documents=DocumentInput("crm_files", validate_note_files),
)
