"""Operations: the pipeline runner, orchestration, release, reports, erasure."""
