"""PostgreSQL backend (local runs, tests): staged Parquet streamed with COPY FROM STDIN, one
row group at a time over parallel connections."""

from __future__ import annotations

import contextlib
import hashlib
import io
import re
import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from decisionlake.config import StorageConfig
from decisionlake.io.storage import filesystem_for
from decisionlake.warehouse.ddl import Column, create_table, qualified, quote
from decisionlake.warehouse.plan import LoadPlan, ReconciliationError, fault_point
from decisionlake.warehouse.reconcile import Totals, totals_sql
from decisionlake.warehouse.staging import StagedData

BATCH_ROWS = 50_000
STAGE_PREFIX = "_stage_"  # staging tables: _stage_<table, bounded>_<table hash>#<run id>


class PostgresBackend:
    """Loads into PostgreSQL in one transaction: stage table, delete-then-insert, verify."""

    dialect = "postgres"

    def __init__(
        self, credentials: dict[str, Any], storage: StorageConfig, *, connections: int = 4
    ) -> None:
        self.credentials = credentials
        self.storage = storage
        self.connections = max(1, connections)
        self.last: dict[str, Any] = {}

    def connect(self) -> Any:
        import psycopg2

        c = self.credentials
        conn = psycopg2.connect(
            host=c["host"],
            port=int(c["port"]),
            dbname=c.get("dbname") or c.get("database"),
            user=c["username"],
            password=c.get("password") or None,
            application_name="decisionlake-export",
        )
        conn.autocommit = False
        return conn

    def existing_columns(self, table: str) -> dict[str, str] | None:
        schema, _, name = table.rpartition(".")
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(
                    "SELECT column_name, data_type, character_maximum_length, "
                    "numeric_precision, numeric_scale FROM information_schema.columns "
                    "WHERE table_schema = %s AND table_name = %s ORDER BY ordinal_position",
                    (schema or "public", name),
                )
                rows = cur.fetchall()
        finally:
            conn.close()
        if not rows:
            return None
        out = {}
        for column, data_type, length, precision, scale in rows:
            kind = data_type.upper()
            if length:
                kind = f"VARCHAR({length})"
            elif kind == "NUMERIC" and precision:
                kind = f"DECIMAL({precision},{scale})"
            out[column] = kind
        return out

    def delete_where_in(self, table: str, column: str, values: list[str]) -> int:
        """Delete rows whose ``column`` is one of ``values`` (erasure); returns the count."""
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute(
                    f"DELETE FROM {qualified(table)} WHERE {quote(column)} = ANY(%s)", (values,)
                )
                deleted = cur.rowcount
            conn.commit()
            return int(deleted)
        finally:
            conn.close()

    def _row_groups(self, uris: list[str]) -> list[tuple[str, int, int]]:
        """(file, row group, rows) of every staged file, from the files' footers."""
        units = []
        for uri in uris:
            filesystem, path = filesystem_for(uri, self.storage)
            with filesystem.open_input_file(path) as handle:
                meta = pq.ParquetFile(handle).metadata
            units += [(uri, i, meta.row_group(i).num_rows) for i in range(meta.num_row_groups)]
        return units

    def _copy_lane(
        self, units: list[tuple[str, int, int]], stage_table: str, columns: list[Column]
    ) -> int:
        """Stream row groups into the staging table over one connection (committed)."""
        names = ", ".join(quote(c.name) for c in columns)
        copy_sql = f"COPY {stage_table} ({names}) FROM STDIN WITH (FORMAT csv)"
        rows = 0
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute("SET TIME ZONE 'UTC'")
                for uri, row_group, _ in units:
                    filesystem, path = filesystem_for(uri, self.storage)
                    with filesystem.open_input_file(path) as handle:
                        parquet = pq.ParquetFile(handle)
                        for batch in parquet.iter_batches(
                            batch_size=BATCH_ROWS,
                            row_groups=[row_group],
                            columns=[c.name for c in columns],
                        ):
                            buffer = io.BytesIO()
                            options = pacsv.WriteOptions(include_header=False)
                            pacsv.write_csv(batch, buffer, options)
                            buffer.seek(0)
                            cur.copy_expert(copy_sql, buffer)
                            rows += batch.num_rows
            conn.commit()
            return rows
        finally:
            conn.close()

    def copy_files(self, uris: list[str], table: str, columns: list[Column]) -> tuple[int, int]:
        """COPY staged files into ``table``; returns (rows, connections used).

        Row groups, not files, are the unit of work: a load of two files still uses every
        connection (staging writes row groups of warehouse.stage_row_group_mb).
        """
        lanes = balanced_lanes(self._row_groups(uris), self.connections)
        with ThreadPoolExecutor(max(len(lanes), 1)) as pool:
            copied = sum(pool.map(lambda lane: self._copy_lane(lane, table, columns), lanes))
        return copied, len(lanes)

    def _drop_stale_stages(self, cur: Any, plan: LoadPlan) -> None:
        """Staging tables a killed earlier load of this target left behind."""
        schema = plan.target.rpartition(".")[0]
        prefix = stage_prefix(plan.target)
        cur.execute(
            "SELECT schemaname, tablename FROM pg_tables WHERE schemaname = %s "
            "AND tablename LIKE %s ESCAPE '!'",
            (schema or "public", re.sub(r"([!%_])", r"!\1", prefix) + "%"),
        )
        for stale_schema, stale in cur.fetchall():
            cur.execute(f"DROP TABLE IF EXISTS {quote(stale_schema)}.{quote(stale)}")

    def _partitioned(self, cur: Any, table: str) -> bool:
        schema, _, name = table.rpartition(".")
        cur.execute(
            "SELECT 1 FROM pg_partitioned_table p JOIN pg_class c ON c.oid = p.partrelid "
            "JOIN pg_namespace n ON n.oid = c.relnamespace WHERE n.nspname = %s AND c.relname = %s",
            (schema or "public", name),
        )
        return cur.fetchone() is not None

    def _replace_slices(self, cur: Any, plan: LoadPlan, stage_name: str) -> int:
        """Swap the staged slice in; returns how many rows it replaced.

        One slice into a partitioned target (the daily case): the staging table becomes the
        slice's partition (DROP the old one, ATTACH) and no row is written twice. Otherwise
        delete-then-insert of the slices.
        """
        target = qualified(plan.target)
        stage_table = qualified(stage_name)
        partitioned = self._partitioned(cur, plan.target)
        if partitioned and len(plan.slices) == 1:
            part = partition_name(plan.target, plan.slices[0])
            cur.execute("SELECT to_regclass(%s)", (qualified(part),))
            replaced = 0
            if cur.fetchone()[0] is not None:
                cur.execute(f"SELECT count(*) FROM {qualified(part)}")
                replaced = int(cur.fetchone()[0])
                cur.execute(f"DROP TABLE {qualified(part)}")
            cur.execute(f"ALTER TABLE {stage_table} RENAME TO {quote(part.rpartition('.')[2])}")
            cur.execute(
                f"ALTER TABLE {target} ATTACH PARTITION {qualified(part)} "
                f"FOR VALUES IN ({literal(plan.slices[0])})"
            )
            return replaced
        if partitioned:
            for value in plan.slices:
                cur.execute(
                    f"CREATE TABLE IF NOT EXISTS {qualified(partition_name(plan.target, value))} "
                    f"PARTITION OF {target} FOR VALUES IN ({literal(value)})"
                )
        names = ", ".join(quote(c.name) for c in plan.columns)
        slice_col = quote(plan.slice_column)
        cur.execute(
            f"DELETE FROM {target} WHERE {slice_col} IN "
            f"(SELECT DISTINCT {slice_col} FROM {stage_table})"
        )
        replaced = int(cur.rowcount)
        cur.execute(f"INSERT INTO {target} ({names}) SELECT {names} FROM {stage_table}")
        return replaced

    def load(self, staged: StagedData, plan: LoadPlan) -> Totals:
        """COPY the files in parallel into a staging table, then one transaction.

        The transaction creates/evolves the target, replaces the slice from the staging table
        and verifies the target slice against the staged totals before COMMIT; any difference
        rolls it back. The target changes only at COMMIT.
        """
        schema = plan.target.rpartition(".")[0]
        stage_name = (
            f"{schema + '.' if schema else ''}{stage_prefix(plan.target)}{plan.run_id[:12]}"
        )
        stage_table = qualified(stage_name)
        timings: dict[str, float] = {}
        started = time.perf_counter()
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                if schema:
                    cur.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(schema)}")
                self._drop_stale_stages(cur, plan)
                # Logged: the staging table may become the slice's partition as it is, so its
                # columns are the target's own (a VARCHAR sized from today's data may differ)
                # plus the columns this load adds.
                existing = self.existing_columns(plan.target)
                if existing is None:
                    cur.execute(create_table(stage_name, plan.columns, dialect=self.dialect))
                else:
                    cur.execute(
                        f"CREATE TABLE {stage_table} (LIKE {qualified(plan.target)} "
                        "INCLUDING DEFAULTS INCLUDING CONSTRAINTS)"
                    )
                    for column in plan.columns:
                        if column.name not in existing:
                            cur.execute(f"ALTER TABLE {stage_table} ADD COLUMN {column.sql()}")
            conn.commit()
            timings["setup_s"] = time.perf_counter() - started
            started = time.perf_counter()
            uris = [uri for uri, _ in staged.files]
            copied, lanes = self.copy_files(uris, stage_table, plan.columns)
            timings["copy_s"] = time.perf_counter() - started
            fault_point("after_copy")
            with conn.cursor() as cur:
                cur.execute("SET TIME ZONE 'UTC'")
                cur.execute(
                    create_table(
                        plan.target,
                        plan.columns,
                        dialect=self.dialect,
                        partition_by=plan.slice_column,
                    )
                )
                for statement in plan.alters:
                    cur.execute(statement)
                mark = time.perf_counter()
                replaced = self._replace_slices(cur, plan, stage_name)
                timings["upsert_s"] = time.perf_counter() - mark
                mark = time.perf_counter()
                cur.execute(
                    totals_sql(
                        plan.target,
                        keys=plan.keys,
                        value=plan.value_column,
                        slice_column=plan.slice_column,
                        slices=plan.slices,
                        dialect=self.dialect,
                    )
                )
                rows, keys, value = cur.fetchone()
                timings["verify_s"] = time.perf_counter() - mark
                found = Totals(int(rows), int(keys), float(value))
                if not found.matches(plan.expected):
                    raise ReconciliationError(
                        f"{plan.target}: target slice {found} != staged {plan.expected}; "
                        "rolled back"
                    )
                fault_point("before_commit")
            conn.commit()
            self.last = {
                "copied": copied,
                "replaced": replaced,
                "files": len(uris),
                "lanes": lanes,
                **{k: round(v, 3) for k, v in timings.items()},
            }
            return found
        except BaseException:
            conn.rollback()
            raise
        finally:
            # Best effort: a staging table left here is dropped by the next load of the target.
            with contextlib.suppress(Exception), conn.cursor() as cur:
                cur.execute(f"DROP TABLE IF EXISTS {stage_table}")
                conn.commit()
            conn.close()


def balanced_lanes(
    units: list[tuple[str, int, int]], lanes: int
) -> list[list[tuple[str, int, int]]]:
    """Units (file, row group, rows) dealt to at most ``lanes`` lanes, largest first to the
    least loaded lane, so the lanes carry about the same number of rows."""
    loads: list[list[tuple[str, int, int]]] = [[] for _ in range(min(lanes, len(units)))]
    totals = [0] * len(loads)
    for unit in sorted(units, key=lambda u: -u[2]):
        lightest = totals.index(min(totals))
        loads[lightest].append(unit)
        totals[lightest] += unit[2]
    return loads


def literal(value: str) -> str:
    """A SQL string literal."""
    return "'" + value.replace("'", "''") + "'"


def stage_prefix(table: str) -> str:
    """``_stage_<table>_<hash of the table>#``: one target's staging tables, within 63 bytes."""
    name = table.rpartition(".")[2]
    digest = hashlib.md5(table.encode()).hexdigest()[:8]
    return f"{STAGE_PREFIX}{name[:30]}_{digest}#"


def partition_name(table: str, value: str) -> str:
    """``<schema>.<table>__<slice>``, e.g. ``analytics.advisor_scores__2026-11-24``.

    The value is used as it is when it is short and plain (identifiers are quoted), else by its
    hash, so two slices never share a partition name.
    """
    schema, _, name = table.rpartition(".")
    suffix = value
    if not re.fullmatch(r"[A-Za-z0-9_-]+", value) or len(name) + 2 + len(value) > 63:
        suffix = "#" + hashlib.md5(value.encode()).hexdigest()[:12]
        name = name[: 63 - 2 - len(suffix)]
    return f"{schema + '.' if schema else ''}{name}__{suffix}"
