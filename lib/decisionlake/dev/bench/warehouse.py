"""Warehouse writer vs Spark's JDBC writer: the same score rows into the same PostgreSQL.

    scripts/bench-warehouse [--rows 1000000] [--repeat 3]

Starts its own moto and embedded PostgreSQL, generates the rows with Spark (distributed),
loads them with (a) the staged-COPY writer and (b) ``DataFrame.write.jdbc`` with default
batching, after a small warm-up of both, ``--repeat`` rounds in alternating order; checks both
tables hold every row and prints the median times and the ratio.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import statistics
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import date
from pathlib import Path
from typing import Any

from pyspark.sql import DataFrame, SparkSession
from pyspark.sql import functions as F

from decisionlake.core.frames import project


def score_rows(spark: SparkSession, rows: int, *, day: date) -> DataFrame:
    """``rows`` rows shaped like gold.scores, built on the executors."""
    from decisionlake.models.scoring import SCORES_SCHEMA

    i = F.col("id")
    columns = {
        "advisor_id": F.format_string("ADV%07d", i % F.lit(max(rows // 3, 1))),
        "model_name": F.element_at(
            F.array(
                *[F.lit(m) for m in ("advisor_propensity", "advisor_net_flow", "advisor_segments")]
            ),
            (i % 3 + 1).cast("int"),
        ),
        "model_version": F.lit("7"),
        "as_of_date": F.lit(day),
        "score": F.rand(7),
        "decile": (i % 10 + 1).cast("int"),
        "segment": F.lit(None).cast("int"),
        "top_features": F.array(
            F.struct(
                F.lit("downloads_30d").alias("feature"),
                F.rand(8).alias("contribution"),
                F.lit("downloads_30d high").alias("reason"),
            )
        ),
        "run_id": F.lit("bench"),
        "scored_at": F.current_timestamp(),
    }
    base = spark.range(rows)
    return project(base, SCORES_SCHEMA, columns)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="bench-warehouse", description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--repeat", type=int, default=3, help="rounds; medians are reported")
    parser.add_argument("--json", default=None, help="also write the figures here")
    args = parser.parse_args(argv)

    import psycopg2

    from decisionlake.config import load_config
    from decisionlake.core.logs import JobLogger
    from decisionlake.core.spark import get_spark
    from decisionlake.dev import services
    from decisionlake.warehouse.writer import export, make_backend

    work = Path(tempfile.mkdtemp(prefix="bench-warehouse-"))
    os.environ.update(services.MOTO_ENV)
    moto = services.MotoServer(work / "moto.log").start()
    pg = services.EmbeddedPostgres(work / "pg").start()
    results: dict[str, Any] = {"rows": args.rows}
    try:
        moto.provision()
        services.store_warehouse_secret(moto.endpoint, pg.port)
        os.environ["DL_S3_ENDPOINT"] = moto.endpoint
        cfg = load_config(
            "local",
            overrides={
                "paths.landing": str(work / "landing"),
                "paths.lake": str(work / "lake"),
                "paths.artifacts": str(work / "artifacts"),
            },
        )
        spark = get_spark(cfg, "bench-warehouse")
        day = date(2026, 11, 24)
        table = cfg.warehouse.exports["scores"]
        backend = make_backend(cfg)
        log = JobLogger("bench", "b")

        def run_writer(rows: DataFrame, run_id: str) -> float:
            started = time.perf_counter()
            export(rows, table, cfg=cfg, backend=backend, run_id=run_id, log=log)
            return time.perf_counter() - started

        def run_jdbc(rows: DataFrame) -> float:
            with psycopg2.connect(pg.url) as conn, conn.cursor() as cur:
                cur.execute(
                    "CREATE TABLE IF NOT EXISTS analytics.jdbc_scores "
                    "(LIKE analytics.advisor_scores)"
                )
                cur.execute("TRUNCATE analytics.jdbc_scores")
            as_json = rows.withColumn("top_features", F.to_json("top_features"))
            started = time.perf_counter()
            (
                as_json.write.mode("append")
                .option("stringtype", "unspecified")  # PostgreSQL casts the JSON text to JSONB
                .jdbc(
                    pg.jdbc_url,
                    "analytics.jdbc_scores",
                    properties={"driver": "org.postgresql.Driver"},
                )
            )
            return time.perf_counter() - started

        def bare_copy_ceiling(rows: DataFrame) -> float:
            """The server's own limit: the same rows as ready CSV bytes, COPYed in parallel.

            No Spark, no staging, no verification: what no writer into this PostgreSQL on
            this machine can beat. The CSV is produced (untimed) by Spark, then held in memory.
            """
            folder = work / "ceiling-csv"
            as_json = rows.withColumn("top_features", F.to_json("top_features"))
            as_json.write.mode("overwrite").option("escape", '"').csv(str(folder))  # PG quoting
            data = b"".join(p.read_bytes() for p in sorted(folder.glob("part-*.csv")))
            groups, start = [], 0
            for i in range(1, backend.connections + 1):  # equal parts, cut at line ends
                end = (
                    len(data)
                    if i == backend.connections
                    else data.index(b"\n", len(data) * i // backend.connections) + 1
                )
                groups.append(data[start:end])
                start = end
            with psycopg2.connect(pg.url) as conn, conn.cursor() as cur:
                cur.execute("DROP TABLE IF EXISTS analytics.ceiling_scores")
                cur.execute("CREATE TABLE analytics.ceiling_scores (LIKE analytics.jdbc_scores)")

            def copy(data: bytes) -> None:
                with psycopg2.connect(pg.url) as conn, conn.cursor() as cur:
                    cur.copy_expert(
                        "COPY analytics.ceiling_scores FROM STDIN WITH (FORMAT csv)",
                        io.BytesIO(data),
                    )

            started = time.perf_counter()
            with ThreadPoolExecutor(len(groups)) as pool:
                list(pool.map(copy, [g for g in groups if g]))
            seconds = time.perf_counter() - started
            with psycopg2.connect(pg.url) as conn, conn.cursor() as cur:
                cur.execute("SELECT count(*) FROM analytics.ceiling_scores")
                results["ceiling_rows"] = cur.fetchone()[0]
            return seconds

        def staged_copy_floor(rows: DataFrame) -> dict[str, float]:
            """A Redshift-shaped floor: the rows written as Parquet by Spark, then COPYed.

            Redshift COPYs only from files in S3, never from the driver's memory, so every
            writer into it pays a staging write. This is that write (the writer's own
            ``staging.stage``, without its profile) and the backend's own parallel COPY into a
            bare table: no checks, no profile read-back, no staging table, no swap, no
            verification. What the writer adds to this is its safety.
            """
            from decisionlake.warehouse import staging
            from decisionlake.warehouse.ddl import Column

            started = time.perf_counter()
            staged = staging.stage(
                rows, str(work / "floor-stage"), storage=cfg.storage,
                row_group_bytes=int(cfg.warehouse.stage_row_group_mb * 2**20),
            )  # fmt: skip
            write_s = time.perf_counter() - started
            with psycopg2.connect(pg.url) as conn, conn.cursor() as cur:
                cur.execute("DROP TABLE IF EXISTS analytics.floor_scores")
                cur.execute("CREATE TABLE analytics.floor_scores (LIKE analytics.jdbc_scores)")
            columns = [Column(name, "") for name in rows.columns]
            started = time.perf_counter()
            copied, _ = backend.copy_files(
                [uri for uri, _ in staged.files], "analytics.floor_scores", columns
            )
            copy_s = time.perf_counter() - started
            results["floor_rows"] = copied
            return {"write_s": write_s, "copy_s": copy_s, "s": write_s + copy_s}

        # Warm-up on a small slice: JIT and connection set-up are not what is compared.
        small = score_rows(spark, 20_000, day=date(2026, 11, 23)).cache()
        run_writer(small, "warmup")
        run_jdbc(small)
        source = score_rows(spark, args.rows, day=day).cache()
        source.count()  # both writers start from the same cached rows
        writer_times, jdbc_times = [], []
        for round_ in range(args.repeat):
            with psycopg2.connect(pg.url) as conn, conn.cursor() as cur:
                cur.execute("TRUNCATE analytics.advisor_scores")  # each round loads 1M new rows
            # Alternate the order so neither side always runs on a warmer machine.
            if round_ % 2 == 0:
                writer_times.append(run_writer(source, f"bench{round_}"))
                jdbc_times.append(run_jdbc(source))
            else:
                jdbc_times.append(run_jdbc(source))
                writer_times.append(run_writer(source, f"bench{round_}"))
        ceiling_times = [bare_copy_ceiling(source) for _ in range(args.repeat)]
        floors = [staged_copy_floor(source) for _ in range(args.repeat)]
        results["staged_floor_seconds"] = round(statistics.median(f["s"] for f in floors), 2)
        results["staged_floor_runs"] = [{k: round(v, 2) for k, v in f.items()} for f in floors]
        results["bare_copy_seconds"] = round(statistics.median(ceiling_times), 2)
        results["bare_copy_runs"] = [round(t, 2) for t in ceiling_times]
        results["writer_seconds"] = round(statistics.median(writer_times), 2)
        results["jdbc_seconds"] = round(statistics.median(jdbc_times), 2)
        results["writer_runs"] = [round(t, 2) for t in writer_times]
        results["jdbc_runs"] = [round(t, 2) for t in jdbc_times]
        results["writer_load_breakdown"] = getattr(backend, "last", {})
        with psycopg2.connect(pg.url) as conn, conn.cursor() as cur:
            cur.execute("SELECT count(*) FROM analytics.jdbc_scores")
            results["jdbc_rows"] = cur.fetchone()[0]
            cur.execute(
                "SELECT count(*) FROM analytics.advisor_scores WHERE as_of_date = %s", (day,)
            )
            results["writer_rows_read_back"] = cur.fetchone()[0]
        results["speedup"] = round(results["jdbc_seconds"] / results["writer_seconds"], 2)
        results["writer_vs_ceiling"] = round(
            results["writer_seconds"] / results["bare_copy_seconds"], 2
        )
        results["writer_vs_staged_floor"] = round(
            results["writer_seconds"] / results["staged_floor_seconds"], 2
        )
        results["ceiling_speedup"] = round(
            results["jdbc_seconds"] / results["bare_copy_seconds"], 2
        )
        spark.stop()
    finally:
        pg.stop()
        moto.stop()
    print(f"rows                    {results['rows']:>12,}")
    print(f"staged-COPY writer      {results['writer_seconds']:>10.2f} s  "
          f"({results['writer_rows_read_back']:,} rows read back)")  # fmt: skip
    jdbc_rows = f"({results['jdbc_rows']:,} rows)"
    print(f"Spark JDBC (defaults)   {results['jdbc_seconds']:>10.2f} s  {jdbc_rows}")
    print(f"writer speed-up         {results['speedup']:>10.2f} x  "
          f"(medians of {args.repeat}: writer {results['writer_runs']}, "
          f"JDBC {results['jdbc_runs']})")  # fmt: skip
    print(f"bare COPY (ceiling)     {results['bare_copy_seconds']:>10.2f} s  "
          f"({results['ceiling_rows']:,} rows; ready CSV in memory, "
          f"{results['bare_copy_runs']})")  # fmt: skip
    print(f"ceiling speed-up        {results['ceiling_speedup']:>10.2f} x  "
          "(JDBC / bare COPY: the most any writer could gain here)")  # fmt: skip
    print(f"staged floor            {results['staged_floor_seconds']:>10.2f} s  "
          f"(Spark's Parquet, then COPY alone: {results['staged_floor_runs']})")  # fmt: skip
    print(f"writer / ceiling        {results['writer_vs_ceiling']:>10.2f} x")
    print(f"writer / staged floor   {results['writer_vs_staged_floor']:>10.2f} x")
    print(f"writer load breakdown   {results['writer_load_breakdown']}")
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(results, indent=1))
    ok = results["writer_rows_read_back"] == results["jdbc_rows"] == args.rows
    ok = ok and results["ceiling_rows"] == results["floor_rows"] == args.rows
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
