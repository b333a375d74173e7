"""Job entry points; each module has ``main(argv) -> int`` and ``run(ctx) -> dict``."""

JOBS: dict[str, str] = {
    "ingest_clickstream": "decisionlake.jobs.ingest_clickstream",
}
