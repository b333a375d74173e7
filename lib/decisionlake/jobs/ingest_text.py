"""ingest_text: CRM notes (JSON lines) and note/email files of one day -> bronze -> silver.

- ``<landing>/crm_notes/date=D/*.json``: one note per line;
- ``<landing>/crm_files/date=D/*.txt|*.eml``: call notes and emails, one document per file.

Every line or file is accepted into ``bronze.crm_notes`` (original text, restricted) or
quarantined with a reason; accepted notes are cleaned (HTML, quoted replies, signatures),
redacted and linked to advisors in ``silver.crm_notes``. Idempotent on ``note_id``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import timedelta
from functools import reduce
from typing import Any

from pyspark import StorageLevel
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from decisionlake.core.runtime import JobContext, run_job
from decisionlake.io import lake
from decisionlake.io.ingest import (
    QUARANTINE_SCHEMA,
    QuarantinedFilesError,
    check_accounting,
    checked_text_lines,
    dedupe_on,
    to_quarantine,
    write_file_quarantine,
)
from decisionlake.text.ingest import (
    BRONZE_SCHEMA,
    COMPARED_COLUMNS,
    file_note_candidates,
    json_note_candidates,
    notes_to_retry,
    to_bronze_notes,
    to_silver_notes,
)

NAME = "ingest_text"
# pii_counts follows from text; maps cannot be compared in a MERGE condition.
SILVER_COMPARED = ("advisor_id", "note_date", "channel", "author", "subject", "text")


def read_candidates(ctx: JobContext) -> tuple[DataFrame, int, list[dict[str, Any]]]:
    """Candidates from every input kind present for the run date, how many inputs there are
    (lines plus files, counted on the raw read so the accounting can catch a loss), and the
    note files quarantined whole (not gzip despite the name, cut short)."""
    landing = ctx.cfg.paths.landing.rstrip("/")
    day = ctx.run_date.isoformat()
    max_bytes = ctx.cfg.text.max_document_bytes
    frames: list[DataFrame] = []
    inputs = 0
    bad_files: list[dict[str, Any]] = []
    try:
        lines, count, bad_files, by_reason = checked_text_lines(
            ctx, f"{landing}/crm_notes/date={day}"
        )
        inputs += count
        frames.append(json_note_candidates(lines, max_bytes=max_bytes))
        if by_reason:
            ctx.log.event("note_files", level="WARNING" if bad_files else "INFO", **by_reason)
    except lake.LandingDataMissingError as exc:
        ctx.log.event("input_missing", folder="crm_notes", reason=str(exc))
    try:
        files = lake.read_binary_files(ctx.spark, f"{landing}/crm_files/date={day}")
        inputs += files.count()
        frames.append(file_note_candidates(files, max_bytes=max_bytes))
    except lake.LandingDataMissingError as exc:
        ctx.log.event("input_missing", folder="crm_files", reason=str(exc))
    if not frames or inputs == 0:
        raise lake.LandingDataMissingError(f"no notes or note files for {day} under {landing}")
    return reduce(DataFrame.unionByName, frames), inputs, bad_files


def run(ctx: JobContext) -> dict[str, Any]:
    """Ingest one day of notes; returns the accounting summary."""
    cfg, spark, log = ctx.cfg, ctx.spark, ctx.log
    crm_uri = cfg.table_uri("bronze.crm_advisors")
    if not lake.delta_table_exists(spark, crm_uri):
        raise RuntimeError(
            f"no CRM table at {crm_uri}: run `ingest --source crm` first (redaction needs "
            "the names it knows)"
        )
    shaping = {
        "ingest_date": ctx.run_date,
        "run_id": ctx.run_id,
        "ingested_at": F.current_timestamp(),
    }

    with log.stage("read_validate") as st:
        candidates, rows_in, bad_files = read_candidates(ctx)
        candidates = candidates.persist(StorageLevel.MEMORY_AND_DISK)
        by_reason = {
            (r["reason"] or "VALID"): (int(r["rows"]), int(r["keys"]))
            for r in candidates.groupBy("reason")
            .agg(F.count("*").alias("rows"), F.count_distinct("note_id").alias("keys"))
            .collect()  # one row per reason: bounded
        }
        valid_rows, valid_keys = by_reason.pop("VALID", (0, 0))
        quarantined = {k: rows for k, (rows, _) in sorted(by_reason.items())}
        st.add(rows_in=rows_in, valid=valid_rows, quarantined=sum(quarantined.values()))

    def write_quarantine() -> dict[str, Any]:
        with log.stage("write_quarantine") as st:
            q = lake.replace_slice(
                to_quarantine(candidates, **shaping),
                cfg.table_uri("bronze.crm_notes_quarantine"),
                predicate=f"ingest_date = '{ctx.run_date.isoformat()}'",
                schema=QUARANTINE_SCHEMA,
                partition_by=["ingest_date"],
            )
            st.add(rows_written=q.get("numOutputRows", 0))
        return q

    def write_bronze_then_silver() -> tuple[dict[str, Any], dict[str, Any]]:
        with log.stage("merge_bronze") as st:
            notes = to_bronze_notes(candidates, **shaping).transform(
                dedupe_on, key="note_id", order_by=("source_file",)
            )
            b = lake.merge_insert_new(
                spark,
                notes,
                cfg.table_uri("bronze.crm_notes"),
                keys=["note_id"],
                schema=BRONZE_SCHEMA,
                partition_by=["note_date"],
                match_partitions=False,
                update_when_changed=COMPARED_COLUMNS,
            )
            st.add(inserted=b["numTargetRowsInserted"], updated=b["numTargetRowsUpdated"])

        with log.stage("redact_silver") as st:
            people = lake.read_delta(spark, crm_uri).select(
                "advisor_id", "email", "first_name", "last_name"
            )
            silver_uri = cfg.table_uri("silver.crm_notes")
            todo = notes
            if lake.delta_table_exists(spark, silver_uri):
                # Notes held back earlier (no CRM link yet) are tried again while recent: both
                # sides pruned to the retry window's note_date partitions.
                waiting = notes_to_retry(
                    lake.read_delta(spark, cfg.table_uri("bronze.crm_notes")),
                    lake.read_delta(spark, silver_uri),
                    since=ctx.run_date - timedelta(days=cfg.text.link_retry_days),
                )
                todo = notes.unionByName(waiting.select(*notes.columns)).transform(
                    dedupe_on, key="note_id", order_by=("ingest_date",)
                )
            silver = to_silver_notes(todo, people)
            s = lake.merge_insert_new(
                spark,
                silver,
                silver_uri,
                keys=["note_id"],
                schema=silver.schema,
                partition_by=["note_date"],
                update_when_changed=SILVER_COMPARED,
                match_partitions=False,
            )
            st.add(inserted=s["numTargetRowsInserted"], updated=s["numTargetRowsUpdated"])
        return b, s

    # Bronze (then silver) first, the quarantines after: a reader never finds a day's
    # quarantine beside tables without that day's notes.
    try:
        b, s = write_bronze_then_silver()
        q = write_quarantine()
        write_file_quarantine(ctx, NAME, bad_files)
    finally:
        candidates.unpersist()

    summary = {
        "run_date": ctx.run_date.isoformat(),
        "rows_in": rows_in,
        "accepted": valid_rows,
        "quarantined": sum(quarantined.values()),
        "quarantined_by_reason": quarantined,
        "duplicates_in_batch": valid_rows - valid_keys,
        "inserted": b["numTargetRowsInserted"],
        "updated": b["numTargetRowsUpdated"],
        "already_present": valid_keys - b["numTargetRowsInserted"],
        "silver_inserted": s["numTargetRowsInserted"],
        "silver_updated": s["numTargetRowsUpdated"],
        "files_quarantined": len(bad_files),
        "tables": {
            name: cfg.table_uri(name)
            for name in ("bronze.crm_notes", "bronze.crm_notes_quarantine", "silver.crm_notes")
        },
    }
    check_accounting(summary, quarantine_rows_written=q.get("numOutputRows", 0))
    if bad_files and cfg.text.quarantined_files == "fail":
        raise QuarantinedFilesError(
            f"{len(bad_files)} note file(s) of {ctx.run_date} quarantined; the readable ones "
            f"were ingested; see ops.file_quarantine (source {NAME})"
        )
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for spark-submit, ``decisionlake run`` and notebooks."""
    return run_job(NAME, argv, run)


if __name__ == "__main__":
    sys.exit(main())
