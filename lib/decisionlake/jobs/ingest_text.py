"""ingest_text: CRM notes (JSON lines) and note/email files of one day -> bronze -> silver.

- ``<landing>/crm_notes/date=D/*.json``: one note per line;
- ``<landing>/crm_files/date=D/*.txt|*.eml``: call notes and emails, one document per file.

The same ingest runner as every source (:data:`decisionlake.text.ingest.NOTES`): every line or
file is accepted into ``bronze.crm_notes`` (original text, restricted) or quarantined with a
reason. Then the accepted notes are cleaned (HTML, quoted replies, signatures), redacted and
linked to advisors in ``silver.crm_notes`` before the quarantine is written. Idempotent on
``note_id``.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from datetime import timedelta
from typing import Any

from pyspark.sql import DataFrame

from decisionlake.core.runtime import JobContext, run_job
from decisionlake.io import lake
from decisionlake.io.ingest import IngestTarget, dedupe_on, run_line_ingest
from decisionlake.text.ingest import NOTES, notes_to_retry, to_silver_notes

NAME = "ingest_text"
# pii_counts follows from text; maps cannot be compared in a MERGE condition.
SILVER_COMPARED = ("advisor_id", "note_date", "channel", "author", "subject", "text")


def redact_into_silver(ctx: JobContext, notes: DataFrame) -> dict[str, Any]:
    """The batch's notes, and those held back earlier for want of a CRM link (while recent),
    redacted with the CRM's names and upserted into ``silver.crm_notes``."""
    cfg, spark = ctx.cfg, ctx.spark
    with ctx.log.stage("redact_silver") as st:
        people = lake.read_delta(spark, cfg.table_uri("bronze.crm_advisors")).select(
            "advisor_id", "email", "first_name", "last_name"
        )
        silver_uri = cfg.table_uri("silver.crm_notes")
        todo = notes
        if lake.delta_table_exists(spark, silver_uri):
            # Both sides pruned to the retry window's note_date partitions.
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
    return {
        "silver_inserted": s["numTargetRowsInserted"],
        "silver_updated": s["numTargetRowsUpdated"],
    }


def run(ctx: JobContext) -> dict[str, Any]:
    """Ingest one day of notes; returns the accounting summary."""
    cfg = ctx.cfg
    crm_uri = cfg.table_uri("bronze.crm_advisors")
    if not lake.delta_table_exists(ctx.spark, crm_uri):
        raise RuntimeError(
            f"no CRM table at {crm_uri}: run `ingest --source crm` first (redaction needs "
            "the names it knows)"
        )
    target = IngestTarget(
        source="crm_notes",
        bronze_table="bronze.crm_notes",
        quarantine_table="bronze.crm_notes_quarantine",
        limits=cfg.text,
        quarantined_files=cfg.text.quarantined_files,
    )
    summary = run_line_ingest(ctx, NOTES, target, then=lambda notes: redact_into_silver(ctx, notes))
    summary["tables"]["silver.crm_notes"] = cfg.table_uri("silver.crm_notes")
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for spark-submit, ``decisionlake run`` and notebooks."""
    return run_job(NAME, argv, run)


if __name__ == "__main__":
    sys.exit(main())
