"""Run records (``ops.runs``): which table versions a run read and wrote.

Every row of ``gold.scores`` (and of the warehouse table) carries ``run_id`` and
``model_version``; the run's record holds the Delta versions of its inputs and outputs, and the
model version leads to the MLflow run, which holds the versions its training read. So a score
can be traced back to the exact data behind it.
"""

from __future__ import annotations

import json
from typing import Any

from pyspark.sql import functions as F
from pyspark.sql import types as T

from decisionlake.core.frames import project
from decisionlake.core.runtime import JobContext
from decisionlake.io import lake

RUNS_SCHEMA = T.StructType(
    [
        T.StructField("run_id", T.StringType(), False),
        T.StructField("job", T.StringType(), False),
        T.StructField("run_date", T.DateType(), False),
        T.StructField("inputs", T.MapType(T.StringType(), T.LongType())),
        T.StructField("outputs", T.MapType(T.StringType(), T.LongType())),
        T.StructField("details", T.StringType()),
        T.StructField("recorded_at", T.TimestampType(), False),
    ]
)


def record_run(
    ctx: JobContext,
    *,
    inputs: dict[str, Any],
    outputs: dict[str, int],
    details: dict[str, Any] | None = None,
) -> None:
    """Upsert this run's record (a retry of the same run id replaces it).

    ``inputs`` maps tables to the Delta version read; a non-Delta input (CSV, Parquet files)
    is described by a mapping (format, URI, files, bytes) kept in the details as ``file_inputs``.
    """
    versions = {k: int(v) for k, v in inputs.items() if not isinstance(v, dict)}
    files = {k: v for k, v in inputs.items() if isinstance(v, dict)}
    details = {**(details or {}), **({"file_inputs": files} if files else {})}
    row = ctx.spark.createDataFrame(
        [(ctx.run_id, ctx.log.job, ctx.run_date, versions,
          {k: int(v) for k, v in outputs.items()}, json.dumps(details, default=str))],
        "run_id string, job string, run_date date, inputs map<string,bigint>, "
        "outputs map<string,bigint>, details string",
    ).withColumn("recorded_at", F.current_timestamp())  # fmt: skip
    lake.merge_insert_new(
        ctx.spark,
        project(row, RUNS_SCHEMA),
        ctx.cfg.table_uri("ops.runs"),
        keys=["run_id"],
        schema=RUNS_SCHEMA,
        partition_by=[],
    )
