"""ingest_clickstream: raw web event JSON lines of one arrival date -> bronze Delta.

Reads ``<landing>/clickstream/date=<run-date>/``, validates every line, writes valid events to
``bronze.clickstream`` (insert-only MERGE on event_id, partitioned by event date) and rejected
lines to ``bronze.clickstream_quarantine`` (replaced per run date), then checks the accounting:
lines read = valid + quarantined, and valid unique events = inserted + already present.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import functions as F

from decisionlake import lake
from decisionlake.clickstream.contract import BRONZE_SCHEMA, QUARANTINE_SCHEMA
from decisionlake.clickstream.ingest import (
    dedupe_events,
    to_bronze_events,
    to_quarantine,
    validate_events,
)
from decisionlake.runtime import JobContext, run_job

NAME = "ingest_clickstream"


class AccountingError(RuntimeError):
    """Raised when rows in != rows accepted + rows quarantined."""


def run(ctx: JobContext) -> dict[str, Any]:
    """Ingest one arrival date; returns the accounting summary."""
    cfg, spark, log = ctx.cfg, ctx.spark, ctx.log
    source = f"{cfg.paths.landing.rstrip('/')}/clickstream/date={ctx.run_date.isoformat()}"
    bronze_uri = cfg.table_uri("bronze.clickstream")
    quarantine_uri = cfg.table_uri("bronze.clickstream_quarantine")
    ingested_at = F.current_timestamp()

    with log.stage("read_validate", source=source) as st:
        validated = validate_events(
            lake.read_text_lines(spark, source),
            ingest_date=ctx.run_date,
            limits=cfg.ingest.clickstream,
        ).persist(StorageLevel.MEMORY_AND_DISK)
        by_reason = {
            (r["reason"] or "VALID"): (int(r["rows"]), int(r["ids"]))
            for r in validated.groupBy("reason")
            .agg(F.count("*").alias("rows"), F.count_distinct("_p.event_id").alias("ids"))
            .collect()  # one row per reason code: bounded
        }
        lines_read = sum(rows for rows, _ in by_reason.values())
        valid_rows, valid_ids = by_reason.pop("VALID", (0, 0))
        quarantined = {reason: rows for reason, (rows, _) in sorted(by_reason.items())}
        st.add(rows_in=lines_read, valid=valid_rows, quarantined=sum(quarantined.values()))

    with log.stage("write_quarantine", table=quarantine_uri) as st:
        q_metrics = lake.replace_slice(
            to_quarantine(validated, ingest_date=ctx.run_date, run_id=ctx.run_id,
                          ingested_at=ingested_at),
            quarantine_uri,
            predicate=f"ingest_date = '{ctx.run_date.isoformat()}'",
            schema=QUARANTINE_SCHEMA,
            partition_by=["ingest_date"],
        )  # fmt: skip
        st.add(rows_written=q_metrics.get("numOutputRows", 0), version=q_metrics.get("version"))

    with log.stage("merge_bronze", table=bronze_uri) as st:
        events = to_bronze_events(
            validated, ingest_date=ctx.run_date, run_id=ctx.run_id, ingested_at=ingested_at
        ).transform(dedupe_events)
        b_metrics = lake.merge_insert_new(
            spark, events, bronze_uri, keys=["event_id"], schema=BRONZE_SCHEMA,
            partition_by=["event_date"],
        )  # fmt: skip
        inserted = b_metrics.get("numTargetRowsInserted", 0)
        st.add(unique_events=valid_ids, inserted=inserted, version=b_metrics.get("version"))
    validated.unpersist()

    summary = {
        "run_date": ctx.run_date.isoformat(),
        "source": source,
        "rows_in": lines_read,
        "accepted": valid_rows,
        "quarantined": sum(quarantined.values()),
        "quarantined_by_reason": quarantined,
        "duplicates_in_batch": valid_rows - valid_ids,
        "inserted": inserted,
        "already_present": valid_ids - inserted,
        "tables": {
            "bronze.clickstream": bronze_uri,
            "bronze.clickstream_quarantine": quarantine_uri,
        },
    }
    check_accounting(summary, quarantine_rows_written=q_metrics.get("numOutputRows", 0))
    return summary


def check_accounting(summary: dict[str, Any], *, quarantine_rows_written: int) -> None:
    """Fail loudly if any line is unaccounted for."""
    if summary["rows_in"] != summary["accepted"] + summary["quarantined"]:
        raise AccountingError(f"rows in {summary['rows_in']} != accepted + quarantined: {summary}")
    if quarantine_rows_written != summary["quarantined"]:
        raise AccountingError(
            f"quarantine wrote {quarantine_rows_written} rows, expected {summary['quarantined']}"
        )
    if summary["already_present"] < 0:
        raise AccountingError(f"inserted more events than were valid: {summary}")


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for spark-submit, ``decisionlake run`` and notebooks."""
    return run_job(NAME, argv, run)


if __name__ == "__main__":
    sys.exit(main())
