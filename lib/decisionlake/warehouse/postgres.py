"""PostgreSQL backend (local runs, tests): staged Parquet streamed with COPY FROM STDIN."""

from __future__ import annotations

import io
from typing import Any

import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from decisionlake.config import StorageConfig
from decisionlake.storage import filesystem_for
from decisionlake.warehouse.ddl import Column, create_table, qualified, quote
from decisionlake.warehouse.plan import LoadPlan, ReconciliationError, fault_point
from decisionlake.warehouse.reconcile import Totals, totals_sql
from decisionlake.warehouse.staging import StagedData

BATCH_ROWS = 50_000


class PostgresBackend:
    """Loads into PostgreSQL in one transaction: stage table, delete-then-insert, verify."""

    dialect = "postgres"

    def __init__(self, credentials: dict[str, Any], storage: StorageConfig) -> None:
        self.credentials = credentials
        self.storage = storage

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

    def _copy(self, cur: Any, staged: StagedData, stage_table: str, columns: list[Column]) -> int:
        names = ", ".join(quote(c.name) for c in columns)
        copy_sql = f"COPY {stage_table} ({names}) FROM STDIN WITH (FORMAT csv)"
        rows = 0
        for uri, _ in staged.files:
            filesystem, path = filesystem_for(uri, self.storage)
            with filesystem.open_input_file(path) as handle:
                parquet = pq.ParquetFile(handle)
                for batch in parquet.iter_batches(
                    batch_size=BATCH_ROWS, columns=[c.name for c in columns]
                ):
                    buffer = io.BytesIO()
                    pacsv.write_csv(batch, buffer, pacsv.WriteOptions(include_header=False))
                    buffer.seek(0)
                    cur.copy_expert(copy_sql, buffer)
                    rows += batch.num_rows
        return rows

    def load(self, staged: StagedData, plan: LoadPlan) -> Totals:
        """Run the load transaction; verify before COMMIT, roll back on any difference."""
        target = qualified(plan.target)
        schema = plan.target.rpartition(".")[0]
        conn = self.connect()
        try:
            with conn.cursor() as cur:
                cur.execute("SET TIME ZONE 'UTC'")
                if schema:
                    cur.execute(f"CREATE SCHEMA IF NOT EXISTS {quote(schema)}")
                cur.execute(create_table(plan.target, plan.columns, dialect=self.dialect))
                for statement in plan.alters:
                    cur.execute(statement)
                stage_table = quote(f"stage_{plan.run_id[:12]}")
                cur.execute(
                    f"CREATE TEMP TABLE {stage_table} (LIKE {target} INCLUDING DEFAULTS) "
                    "ON COMMIT DROP"
                )
                copied = self._copy(cur, staged, stage_table, plan.columns)
                fault_point("after_copy")
                names = ", ".join(quote(c.name) for c in plan.columns)
                slice_col = quote(plan.slice_column)
                cur.execute(
                    f"DELETE FROM {target} WHERE {slice_col} IN "
                    f"(SELECT DISTINCT {slice_col} FROM {stage_table})"
                )
                deleted = cur.rowcount
                cur.execute(f"INSERT INTO {target} ({names}) SELECT {names} FROM {stage_table}")
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
                found = Totals(int(rows), int(keys), float(value))
                if not found.matches(plan.expected):
                    raise ReconciliationError(
                        f"{plan.target}: target slice {found} != staged {plan.expected}; "
                        "rolled back"
                    )
                fault_point("before_commit")
            conn.commit()
            self.last = {"copied": copied, "replaced": deleted}
            return found
        except BaseException:
            conn.rollback()
            raise
        finally:
            conn.close()
