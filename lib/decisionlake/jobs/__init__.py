"""Job entry points; each module has ``main(argv) -> int`` and ``run(ctx) -> dict``."""

JOBS: dict[str, str] = {
    "ingest": "decisionlake.jobs.ingest",
    "ingest_text": "decisionlake.jobs.ingest_text",
    "build_sessions": "decisionlake.jobs.build_sessions",
    "build_identity": "decisionlake.jobs.build_identity",
    "build_text_features": "decisionlake.jobs.build_text_features",
    "build_advisor_360": "decisionlake.jobs.build_advisor_360",
    "check_quality": "decisionlake.jobs.check_quality",
    "train_models": "decisionlake.jobs.train_models",
    "score": "decisionlake.jobs.score",
    "build_call_list": "decisionlake.jobs.build_call_list",
    "export_scores": "decisionlake.jobs.export_scores",
    "export_call_list": "decisionlake.jobs.export_call_list",
    "publish": "decisionlake.jobs.publish",
    "monitor": "decisionlake.jobs.monitor",
}
