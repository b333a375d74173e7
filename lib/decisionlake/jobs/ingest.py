"""ingest: one raw source's delivery of one day -> its bronze table and quarantine.

``ingest --source NAME`` ingests any source enabled in ``ingest.NAME`` (see
:mod:`decisionlake.sources`): reads ``<landing>/<landing_dir>/date=<run-date>/`` (or the whole
folder for a snapshot), validates every line with the source's rules, writes valid rows to its
bronze table (insert-only MERGE on its key, or an upsert of changed rows for a dimension) and
rejected lines to its quarantine (the run date's slice replaced), then checks: lines read =
accepted + quarantined + header lines, files in = read + quarantined. Tables the source
derives from bronze (the CRM's ``silver.advisors``) are rebuilt after it.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from typing import Any

from decisionlake.core.aws import pseudonymisation_key
from decisionlake.core.runtime import JobContext, job_parser, run_job
from decisionlake.io import lake
from decisionlake.io.ingest import run_line_ingest
from decisionlake.sources import enabled_source

NAME = "ingest"


def parser() -> argparse.ArgumentParser:
    """The common job arguments plus ``--source``."""
    parser = job_parser(NAME, __doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--source", required=True, help="a source of the ingest config")
    return parser


def run(ctx: JobContext) -> dict[str, Any]:
    """Ingest one source's delivery; returns the accounting summary."""
    source = enabled_source(ctx.cfg, ctx.args.source)
    summary = run_line_ingest(ctx, source.source.ingest, source.target)
    for derived in source.source.derived:
        uri = ctx.cfg.table_uri(derived.table)
        with ctx.log.stage("write_derived", table=uri) as st:
            bronze = lake.read_delta(ctx.spark, ctx.cfg.table_uri(source.bronze_table))
            rows = bronze.transform(derived.build, key=pseudonymisation_key(ctx.cfg))
            metrics = lake.overwrite_table(rows, uri)
            st.add(rows_written=metrics.get("numOutputRows"), version=metrics.get("version"))
        summary["tables"][derived.table] = uri
        summary.setdefault("derived_rows", {})[derived.table] = metrics.get("numOutputRows")
    return summary


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point for spark-submit, ``decisionlake run`` and notebooks."""
    return run_job(NAME, argv, run, parser=parser())


if __name__ == "__main__":
    sys.exit(main())
