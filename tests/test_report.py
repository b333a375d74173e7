"""The run report: a self-contained HTML page with the run's sections and charts."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import SparkSession

from decisionlake.ops.report import SECTIONS, write_report

pytestmark = [pytest.mark.integration, pytest.mark.slow]


def test_report_of_the_backfill_has_every_section(
    spark: SparkSession, history: dict[str, Any]
) -> None:
    cfg = history["cfg"]
    uri = write_report(spark, cfg, history["results"], run_id="0123456789abcdef")
    page = Path(uri).read_text(encoding="utf-8")
    assert uri.startswith(cfg.paths.artifacts) and uri.endswith(".html")
    headings = re.findall(r"<h2>(.*?)</h2>", page)
    assert headings == list(SECTIONS)
    assert page.count("data:image/png;base64,") >= 1  # the step-time chart at least
    for step in ("ingest_clickstream", "build_sessions", "check_quality"):
        assert f"<td>{step}</td>" in page
    assert "rule results" in page and "<td>succeeded</td>" in page
