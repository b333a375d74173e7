"""Tables for consumers outside Spark (gold, and every published copy) open with plain delta-rs."""

from __future__ import annotations

from typing import Any

import pytest
from pyspark.sql import SparkSession

from decisionlake.io import lake
from decisionlake.io.row_counts import delta_rs_row_count
from decisionlake.jobs.publish import curated_root

pytestmark = pytest.mark.integration


def test_every_gold_and_published_table_is_readable_without_spark(
    spark: SparkSession, history: dict[str, Any]
) -> None:
    cfg = history["cfg"]
    gold = {n: u for n, u in cfg.catalog().items() if n.startswith("gold.")}
    published = {f"curated:{n}": f"{curated_root(cfg)}/{n.replace('.', '/')}"
                 for n in cfg.publish.tables}  # fmt: skip
    checked = []
    for name, uri in {**gold, **published}.items():
        if not lake.delta_table_exists(spark, uri):
            continue
        # The plain dataset reader refuses deletion vectors: none may be in these tables.
        read = delta_rs_row_count(uri, cfg.storage)
        assert read["rows"] == lake.read_delta(spark, uri).count(), name
        checked.append(name)
    assert {"gold.advisor_360", "gold.advisor_text_features", "curated:gold.advisor_360"} <= set(
        checked
    ), checked
