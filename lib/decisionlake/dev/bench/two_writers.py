"""Two drivers committing to one Delta table on S3, with and without the DynamoDB log store.

Each trial makes a fresh ``bronze.clickstream`` (one day ingested alone), then submits two
more days' ingests onto the local cluster at the same moment, and checks the table against
what both drivers reported: rows, distinct keys, and the commits in the Delta log. Without the
log store S3A cannot refuse a second writer of the same ``N.json``, so one commit can replace
the other; with it DynamoDB decides and the loser retries at ``N+1``.

Needs the running stack (`decisionlake services start --cluster`) and a deployed release; run
by ``scripts/bench-two-writers``. Figures, never a test: CI must not depend on a lost write.
"""

from __future__ import annotations

import argparse
import json
import sys
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from typing import Any

from decisionlake.config import load_config
from decisionlake.dev.cluster import stack_executor
from decisionlake.ops.pipeline import load_pipeline

NO_STORE = "storage.dynamodb_log_store_table"


def trial(executor: Any, days: list[date], settings: list[str], spark: Any) -> dict[str, Any]:
    ingest = load_pipeline().step("ingest_clickstream")
    code, reason, first = executor(ingest, days[0], settings)
    if code:
        return {"error": f"first ingest failed: {reason}"}
    with ThreadPoolExecutor(2) as pool:
        runs = list(pool.map(lambda d: executor(ingest, d, settings), days[1:3]))
    cfg = load_config("local-cluster", overrides=dict(s.split("=", 1) for s in settings))
    uri = cfg.table_uri("bronze.clickstream")
    table = spark.read.format("delta").load(uri)
    history = spark.sql(f"DESCRIBE HISTORY delta.`{uri}`").select("version", "operation")
    inserted = [first.get("inserted", 0), *(r[2].get("inserted", 0) for r in runs)]
    rows = table.count()
    return {
        "exit_codes": [r[0] for r in runs],
        "reasons": [r[1] for r in runs if r[0]],
        "inserted_reported": inserted,
        "rows": rows,
        "distinct_keys": table.select("event_id").distinct().count(),
        "commits": history.count(),
        "lost_rows": sum(inserted) - rows,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench-two-writers", description=__doc__)
    parser.add_argument("--days", nargs=3, type=date.fromisoformat, required=True,
                        help="three landed days: created alone, then two at once")  # fmt: skip
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    from decisionlake.core.spark import get_spark
    from decisionlake.dev import services

    services.apply_env(services.read_state())
    executor = stack_executor("local-cluster")
    spark = get_spark(load_config("local-s3"), "bench-two-writers")
    results: dict[str, list[dict[str, Any]]] = {"with_log_store": [], "without_log_store": []}
    for n in range(args.trials):
        modes = (("with_log_store", []), ("without_log_store", [f"{NO_STORE}="]))
        for mode, extra in modes:
            lake = f"paths.lake=s3a://decisionlake-lake/two-writers/{mode}-{n}"
            outcome = trial(executor, args.days, [lake, *extra], spark)
            results[mode].append(outcome)
            print(mode, n, json.dumps(outcome), flush=True)
    text = json.dumps(results, indent=1)
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            handle.write(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
