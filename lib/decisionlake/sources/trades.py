"""Source ``trades``: fund trades (the outcomes models learn from), JSON lines under
``<landing>/outcomes/date=D/`` -> bronze.fund_trades."""

from __future__ import annotations

from datetime import date
from typing import Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql import types as T

from decisionlake.config import SourceConfig
from decisionlake.io.ingest import LineIngestSpec, valid_to_bronze
from decisionlake.sources import Source
from decisionlake.sources.lines import first_failing, line_rules, parse_json_lines

CORRUPT_COLUMN = "_corrupt_record"
ACTIONS = ("purchase", "redemption")
RAW_SCHEMA = T.StructType(
    [
        T.StructField("advisor_id", T.StringType()),
        T.StructField("trade_date", T.StringType()),
        T.StructField("fund_ticker", T.StringType()),
        T.StructField("action", T.StringType()),
        T.StructField("amount_usd", T.DoubleType()),
        T.StructField(CORRUPT_COLUMN, T.StringType()),
    ]
)
BRONZE_SCHEMA = T.StructType(
    [
        T.StructField("trade_id", T.StringType(), False),
        T.StructField("advisor_id", T.StringType(), False),
        T.StructField("trade_date", T.DateType(), False),
        T.StructField("fund_ticker", T.StringType(), False),
        T.StructField("action", T.StringType(), False),
        T.StructField("amount_usd", T.DecimalType(18, 2), False),
        T.StructField("source_file", T.StringType(), False),
        T.StructField("ingest_date", T.DateType(), False),
        T.StructField("ingested_at", T.TimestampType(), False),
        T.StructField("run_id", T.StringType(), False),
    ]
)


def trade_key(p: Column) -> Column:
    """A content key: the feed has no trade id, and a re-delivered line must not count twice."""
    return F.sha2(
        F.concat_ws(
            "|",
            F.trim(p["advisor_id"]),
            p["trade_date"],
            F.upper(F.trim(p["fund_ticker"])),
            F.lower(p["action"]),
            F.format_number(p["amount_usd"], 2),
        ),
        256,
    )


def validate_trades(raw: DataFrame, *, ingest_date: date, limits: SourceConfig) -> DataFrame:
    """Parse trade lines; reason codes for missing fields, unknown actions, sign errors."""
    del ingest_date
    p = F.col("_p")
    amount = p["amount_usd"]
    action = F.lower(p["action"])
    rules = line_rules(F.col("value"), p, CORRUPT_COLUMN, max_line_bytes=limits.max_line_bytes)
    rules += [
        (p["advisor_id"].isNull() | (F.trim(p["advisor_id"]) == ""), "MISSING_ADVISOR_ID"),
        (F.try_to_date(p["trade_date"]).isNull(), "BAD_TRADE_DATE"),
        (p["fund_ticker"].isNull() | (F.trim(p["fund_ticker"]) == ""), "MISSING_FUND"),
        (action.isNull() | ~action.isin(*ACTIONS), "UNKNOWN_ACTION"),
        (
            amount.isNull()
            | F.isnan(amount)
            | ((action == "purchase") & (amount <= 0))
            | ((action == "redemption") & (amount >= 0)),
            "BAD_AMOUNT",
        ),
    ]
    return (
        parse_json_lines(raw, RAW_SCHEMA, CORRUPT_COLUMN)
        .withColumn("reason", first_failing(rules))
        .withColumn("_key", F.when(F.col("reason").isNull(), trade_key(p)))
    )


def to_bronze_trades(validated: DataFrame, **lineage: Any) -> DataFrame:
    """Valid trades in the bronze schema."""
    p = F.col("_p")
    columns = {
        "trade_id": F.col("_key"),
        "advisor_id": F.trim(p["advisor_id"]),
        "trade_date": F.try_to_date(p["trade_date"]),
        "fund_ticker": F.upper(F.trim(p["fund_ticker"])),
        "action": F.lower(p["action"]),
        "amount_usd": p["amount_usd"],
    }
    return valid_to_bronze(validated, BRONZE_SCHEMA, columns, **lineage)


SOURCE = Source(
    ingest=LineIngestSpec(
        landing_dir="outcomes",
        bronze_schema=BRONZE_SCHEMA,
        key="trade_id",
        order_by=("source_file",),
        partition_by=(),
        validate=validate_trades,
        to_bronze=to_bronze_trades,
        allow_empty=True,  # a day without trades is a normal day
    ),
)
