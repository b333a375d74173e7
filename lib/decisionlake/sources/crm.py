"""Source ``crm``: the CRM advisors snapshot (JSON lines under ``<landing>/crm/advisors/``) ->
bronze (restricted, PII) -> silver.advisors (no PII)."""

from __future__ import annotations

from datetime import date
from typing import Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from decisionlake.config import SourceConfig
from decisionlake.core.privacy import hmac_sha256
from decisionlake.io.ingest import LineIngestSpec, valid_to_bronze
from decisionlake.sources import Derived, Source
from decisionlake.sources.lines import first_failing, line_rules, parse_json_lines

CORRUPT_COLUMN = "_corrupt_record"
ATTRIBUTES = ("firm", "branch", "channel", "region", "aum_band")
PII = ("first_name", "last_name", "email", "phone")
RAW_SCHEMA = T.StructType(
    [T.StructField("advisor_id", T.StringType())]
    + [T.StructField(n, T.StringType()) for n in (*PII, *ATTRIBUTES, "created_at")]
    + [T.StructField(CORRUPT_COLUMN, T.StringType())]
)
BRONZE_SCHEMA = T.StructType(
    [T.StructField("advisor_id", T.StringType(), False)]
    + [T.StructField(n, T.StringType()) for n in (*PII, *ATTRIBUTES)]
    + [
        T.StructField("created_at", T.DateType()),
        T.StructField("source_file", T.StringType(), False),
        T.StructField("ingest_date", T.DateType(), False),
        T.StructField("ingested_at", T.TimestampType(), False),
        T.StructField("run_id", T.StringType(), False),
    ]
)
COMPARED_COLUMNS = ("first_name", "last_name", "email", "phone", *ATTRIBUTES, "created_at")
_EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"


def normalized_email_sha256(email: Column) -> Column:
    """SHA-256 of the trimmed, lower-cased address: the join key for web form submits."""
    return F.sha2(F.lower(F.trim(email)), 256)


def validate_advisors(raw: DataFrame, *, ingest_date: date, limits: SourceConfig) -> DataFrame:
    """Parse advisor lines; reason codes for missing ids and malformed emails."""
    del ingest_date
    p = F.col("_p")
    rules = line_rules(F.col("value"), p, CORRUPT_COLUMN, max_line_bytes=limits.max_line_bytes)
    rules += [
        (p["advisor_id"].isNull() | (F.trim(p["advisor_id"]) == ""), "MISSING_ADVISOR_ID"),
        (p["email"].isNotNull() & ~p["email"].rlike(_EMAIL), "BAD_EMAIL"),
    ]
    return (
        parse_json_lines(raw, RAW_SCHEMA, CORRUPT_COLUMN)
        .withColumn("reason", first_failing(rules))
        .withColumn("_key", F.when(F.col("reason").isNull(), F.trim(p["advisor_id"])))
    )


def to_bronze_advisors(validated: DataFrame, **lineage: Any) -> DataFrame:
    """Valid advisor rows, PII included (bronze is restricted)."""
    p = F.col("_p")
    columns = {
        "advisor_id": F.col("_key"),
        "created_at": F.try_to_date(p["created_at"]),
    }
    return valid_to_bronze(validated, BRONZE_SCHEMA, columns, otherwise=lambda n: p[n], **lineage)


def to_silver_advisors(bronze: DataFrame, *, key: bytes) -> DataFrame:
    """The analyst-facing dimension: attributes and a keyed e-mail token, no identifiers.

    ``email_token`` is HMAC(key, sha256(e-mail)): web form submits carry the SHA-256 the
    site computes, and get the same token in silver.events, so identity joins still work.
    """
    return bronze.select(
        "advisor_id",
        *ATTRIBUTES,
        "created_at",
        hmac_sha256(normalized_email_sha256(F.col("email")), key).alias("email_token"),
        F.col("ingest_date").alias("updated_on"),
    )


SOURCE = Source(
    ingest=LineIngestSpec(
        landing_dir="crm/advisors",
        bronze_schema=BRONZE_SCHEMA,
        key="advisor_id",
        order_by=("source_file",),
        partition_by=(),
        validate=validate_advisors,
        to_bronze=to_bronze_advisors,
        dated=False,  # a full snapshot, replaced when the CRM exports again
        upsert_columns=COMPARED_COLUMNS,
    ),
    derived=(Derived("silver.advisors", to_silver_advisors),),
)
