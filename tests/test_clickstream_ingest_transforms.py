"""Unit tests of the validation and shaping of raw web events (hand-built lines, chispa)."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime

import pytest
from chispa import assert_df_equality
from pyspark.sql import SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from decisionlake.config import SourceConfig
from decisionlake.io.ingest import (
    dedupe_on,
    partition_values_aggs,
    partition_values_from,
    to_quarantine,
)
from decisionlake.sources.web import (
    event_date_of_valid_line,
    to_bronze_events,
    validate_events,
)
from decisionlake.sources.web_contract import BRONZE_SCHEMA

RUN_DATE = date(2026, 11, 24)
LIMITS = SourceConfig(max_line_bytes=2_000)
RAW_SCHEMA = T.StructType(
    [T.StructField("value", T.BinaryType()), T.StructField("source_file", T.StringType())]
)
TS_OK = int(datetime(2026, 11, 24, 1, tzinfo=UTC).timestamp() * 1000)


def _event(**changes: object) -> dict:
    event = {
        "event_id": "e-1",
        "event_ts": TS_OK,
        "cookie_id": "ck-1",
        "user_id": None,
        "event_type": "page_view",
        "url": "https://x.example/funds/nwesx",
        "referrer": "",
        "user_agent": "ua",
        "ip": "10.1.2.3",
        "page": {"fund_ticker": "NWESX", "asset_class": "equity", "topic": "esg"},
        "properties": {"document_id": "nwesx-factsheet"},
    }
    event.update(changes)
    return {k: v for k, v in event.items() if v != "<drop>"}


def _raw(spark: SparkSession, lines: list[bytes]) -> object:
    rows = [(line, f"file-{i}") for i, line in enumerate(lines)]
    return spark.createDataFrame(rows, RAW_SCHEMA).select(
        F.col("value").cast("string").alias("value"), "source_file"
    )


def _line(event: dict) -> bytes:
    return json.dumps(event).encode()


CASES = [
    (_line(_event()), None),
    (_line(_event())[:40], "MALFORMED_JSON"),
    (b"", "EMPTY_LINE"),
    (b"[1, 2]", "MALFORMED_JSON"),
    (_line(_event(event_id="<drop>")), "MISSING_EVENT_ID"),
    (_line(_event(cookie_id="  ")), "MISSING_COOKIE_ID"),
    (_line(_event(event_ts="2026-11-24T01:00:00Z")), "BAD_TYPE_EVENT_TS"),
    (_line(_event(page="equity")), "BAD_TYPE_PAGE"),
    (_line(_event(event_type="teleport")), "UNKNOWN_EVENT_TYPE"),
    (_line(_event(event_ts=0)), "IMPOSSIBLE_TIMESTAMP"),
    (_line(_event(event_ts=10**17)), "IMPOSSIBLE_TIMESTAMP"),  # overflows as a TIMESTAMP
    (_line(_event(event_ts=TS_OK + 2 * 86_400_000)), "IMPOSSIBLE_TIMESTAMP"),
    (_line(_event(event_ts=TS_OK - 5 * 86_400_000)), "TOO_LATE"),
    (_line(_event(url="https://x.example/f\xff")).replace(b"\\u00ff", b"\xff"), "INVALID_UTF8"),
    (_line(_event(url="https://x.example/" + "a" * 3000)), "OVERSIZED_LINE"),
    # Types are the contract's JSON types, not castability: a number in a string is refused.
    (_line(_event(event_ts=str(TS_OK))), "BAD_TYPE_EVENT_TS"),
    (_line(_event(event_ts=float(TS_OK))), "BAD_TYPE_EVENT_TS"),
    # A key given twice (the parser would keep the last silently), nested ones are fine.
    (
        _line(_event()).replace(b'"event_id": "e-1"', b'"event_id": "e-1", "event_id": "e-2"'),
        "DUPLICATE_KEY",
    ),
    (_line(_event(properties={"event_id": "nested", "document_id": "d"})), None),
    # A lone surrogate escape would become "?": refused; a proper pair is kept.
    (_line(_event(url="https://x.example/\ud800")), "LONE_SURROGATE"),
    (_line(_event(event_id="e-pair", url="https://x.example/\U0001f600")), None),
    # Late but within max_late_days, and a client clock a few minutes ahead: both valid.
    (_line(_event(event_id="e-late", event_ts=TS_OK - 3 * 86_400_000)), None),
    (_line(_event(event_id="e-skew", event_ts=TS_OK + 23 * 3_600_000 + 5 * 60_000)), None),
]


def test_each_rule_yields_its_reason(spark: SparkSession) -> None:
    validated = validate_events(
        _raw(spark, [c[0] for c in CASES]), ingest_date=RUN_DATE, limits=LIMITS
    )
    got = dict(validated.select("source_file", "reason").collect())
    expected = {f"file-{i}": reason for i, (_, reason) in enumerate(CASES)}
    assert got == expected


def test_rows_in_equals_accepted_plus_quarantined(spark: SparkSession) -> None:
    validated = validate_events(
        _raw(spark, [c[0] for c in CASES]), ingest_date=RUN_DATE, limits=LIMITS
    )
    accepted = to_bronze_events(validated, ingest_date=RUN_DATE, run_id="r").count()
    quarantined = to_quarantine(validated, ingest_date=RUN_DATE, run_id="r")
    assert accepted == sum(1 for _, r in CASES if r is None)
    assert accepted + quarantined.count() == len(CASES)
    # The exact raw bytes survive in quarantine, invalid UTF-8 included.
    bad = quarantined.where("reason = 'INVALID_UTF8'").select("raw_bytes").first()
    assert bad is not None and b"\xff" in bytes(bad["raw_bytes"])


def test_validation_pass_lists_exactly_the_partitions_bronze_rows_land_in(
    spark: SparkSession,
) -> None:
    # The MERGE prunes the target to these values: a bronze row outside them would be
    # inserted again on every rerun.
    validated = validate_events(
        _raw(spark, [c[0] for c in CASES]), ingest_date=RUN_DATE, limits=LIMITS
    )
    # Grouped by reason over every line, as the ingest does: rejected lines are not evaluated.
    by_reason = validated.groupBy("reason").agg(*partition_values_aggs(event_date_of_valid_line()))
    listed = {r["reason"]: r.asDict() for r in by_reason.collect()}[None]
    bronze = to_bronze_events(validated, ingest_date=RUN_DATE, run_id="r")
    landed = sorted(r[0] for r in bronze.select("event_date").distinct().collect())
    assert partition_values_from(listed) == landed
    assert landed == [date(2026, 11, 21), date(2026, 11, 24), date(2026, 11, 25)]


def test_partition_values_are_not_listed_when_they_cannot_prune() -> None:
    assert partition_values_from({"_partitions": [1, 2], "_null_partition": False}) == [1, 2]
    assert partition_values_from({"_partitions": [1], "_null_partition": True}) is None
    assert partition_values_from({"_partitions": None}) is None
    too_many = list(range(1_001))
    assert partition_values_from({"_partitions": too_many, "_null_partition": False}) is None


def test_valid_line_becomes_typed_bronze_row(spark: SparkSession) -> None:
    validated = validate_events(_raw(spark, [CASES[0][0]]), ingest_date=RUN_DATE, limits=LIMITS)
    fixed_time = F.lit(datetime(2026, 11, 25, 6, 0)).cast("timestamp")
    actual = to_bronze_events(
        validated, ingest_date=RUN_DATE, run_id="run-1", ingested_at=fixed_time
    )
    expected = spark.createDataFrame(
        [
            (
                "e-1",
                datetime(2026, 11, 24, 1, 0),
                date(2026, 11, 24),
                "ck-1",
                None,
                "page_view",
                "https://x.example/funds/nwesx",
                None,
                "ua",
                "10.1.2.3",
                ("NWESX", "equity", "esg"),
                {"document_id": "nwesx-factsheet"},
                "file-0",
                RUN_DATE,
                datetime(2026, 11, 25, 6, 0),
                "run-1",
            )
        ],
        BRONZE_SCHEMA,
    )
    assert_df_equality(actual, expected, ignore_nullable=True)


def test_dedupe_keeps_one_row_per_event_id(spark: SparkSession) -> None:
    lines = [_line(_event()), _line(_event()), _line(_event(event_id="e-2"))]
    events = to_bronze_events(
        validate_events(_raw(spark, lines), ingest_date=RUN_DATE, limits=LIMITS),
        ingest_date=RUN_DATE,
        run_id="r",
    )
    deduped = events.transform(dedupe_on, key="event_id", order_by=("event_ts", "source_file"))
    assert sorted(r["event_id"] for r in deduped.collect()) == ["e-1", "e-2"]
    assert deduped.where("event_id = 'e-1'").first()["source_file"] == "file-0"


@pytest.mark.parametrize("reason_free_line", [b'{"event_id": "x"}'])
def test_first_missing_field_is_reported(spark: SparkSession, reason_free_line: bytes) -> None:
    validated = validate_events(
        _raw(spark, [reason_free_line]), ingest_date=RUN_DATE, limits=LIMITS
    )
    assert validated.first()["reason"] == "MISSING_EVENT_TS"
