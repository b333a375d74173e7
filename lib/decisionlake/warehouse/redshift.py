"""Redshift backends: the Data API (batch = one transaction) and ``redshift_connector``.

Both send the same statements: create/evolve the target, a temp staging table, ``COPY ...
FORMAT AS PARQUET MANIFEST`` from the staged prefix, ``MERGE`` on the key, removal of the
slice's stale rows, and an assertion that fails the transaction unless the slice's totals
equal the staged ones (so a mismatch rolls back inside Redshift, not after the fact).
"""

from __future__ import annotations

import time
from typing import Any

from decisionlake.config import RedshiftConfig
from decisionlake.warehouse.ddl import Column, create_table, qualified, quote
from decisionlake.warehouse.plan import LoadPlan, ReconciliationError
from decisionlake.warehouse.reconcile import Totals, totals_sql
from decisionlake.warehouse.staging import StagedData, s3_url

DIALECT = "redshift"


def _stage_columns(columns: list[Column]) -> list[Column]:
    # Nested values arrive as JSON text; JSON_PARSE turns them into SUPER on the way in.
    return [
        Column(c.name, "VARCHAR(65535)" if c.type == "SUPER" else c.type, True) for c in columns
    ]


def load_statements(plan: LoadPlan, staged: StagedData, *, iam_role_arn: str) -> list[str]:
    """The statements of one load, in order (one transaction)."""
    target = qualified(plan.target)
    stage = quote(f"stage_{plan.run_id[:12]}")
    names = [quote(c.name) for c in plan.columns]
    source_exprs = [
        f"JSON_PARSE(s.{quote(c.name)})" if c.type == "SUPER" else f"s.{quote(c.name)}"
        for c in plan.columns
    ]
    on = " AND ".join(f"t.{quote(k)} = s.{quote(k)}" for k in plan.keys)
    updates = ", ".join(
        f"{quote(c.name)} = {e}"
        for c, e in zip(plan.columns, source_exprs, strict=True)
        if c.name not in plan.keys
    )
    expected = plan.expected
    totals = totals_sql(
        plan.target,
        keys=plan.keys,
        value=plan.value_column,
        slice_column=plan.slice_column,
        slices=plan.slices,
        dialect=DIALECT,
    )
    stage_body = ", ".join(c.sql() for c in _stage_columns(plan.columns))
    slice_col = quote(plan.slice_column)
    key_match = " AND ".join(f"x.{quote(k)} = {target}.{quote(k)}" for k in plan.keys)
    return [
        create_table(
            plan.target,
            plan.columns,
            dialect=DIALECT,
            distkey=plan.distkey,
            sortkey=plan.sortkey,
        ),
        *plan.alters,
        f"CREATE TEMP TABLE {stage} ({stage_body})",
        f"COPY {stage} ({', '.join(names)}) FROM '{s3_url(staged.manifest)}' "
        f"IAM_ROLE '{iam_role_arn}' FORMAT AS PARQUET MANIFEST",
        f"MERGE INTO {target} USING {stage} s ON {on} "
        f"WHEN MATCHED THEN UPDATE SET {updates} "
        f"WHEN NOT MATCHED THEN INSERT ({', '.join(names)}) VALUES ({', '.join(source_exprs)})",
        f"DELETE FROM {target} WHERE {slice_col} IN (SELECT DISTINCT {slice_col} FROM {stage}) "
        f"AND NOT EXISTS (SELECT 1 FROM {stage} x WHERE {key_match})",
        # Division by zero aborts the transaction unless the slice matches the staged totals.
        f"SELECT 1 / CASE WHEN c = {expected.rows} AND k = {expected.key_checksum} "
        f"AND ABS(v - {expected.value_sum!r}) <= {max(1e-3, abs(expected.value_sum) * 1e-3)!r} "
        f"THEN 1 ELSE 0 END FROM ({totals}) AS q (c, k, v)",
    ]


def delete_statement(table: str, column: str, values: list[str]) -> str:
    listed = ", ".join("'" + v.replace("'", "''") + "'" for v in values)
    return f"DELETE FROM {qualified(table)} WHERE {quote(column)} IN ({listed})"


class DataApiBackend:
    """Redshift through the Data API: no driver, IAM/Secrets Manager auth, one batch."""

    dialect = DIALECT

    def __init__(self, client: Any, settings: RedshiftConfig, poll_seconds: float = 2.0) -> None:
        self.client = client
        self.settings = settings
        self.poll_seconds = poll_seconds

    def _where(self) -> dict[str, str]:
        s = self.settings
        where = {"Database": s.database}
        if s.workgroup:
            where["WorkgroupName"] = s.workgroup
        else:
            where["ClusterIdentifier"] = s.cluster_id
        if s.secret_arn:
            where["SecretArn"] = s.secret_arn
        return where

    def _wait(self, statement_id: str) -> dict[str, Any]:
        while True:
            state = self.client.describe_statement(Id=statement_id)
            if state["Status"] in ("FINISHED", "FAILED", "ABORTED"):
                return state
            time.sleep(self.poll_seconds)

    def existing_columns(self, table: str) -> dict[str, str] | None:
        schema, _, name = table.rpartition(".")
        started = self.client.execute_statement(
            **self._where(),
            Sql="SELECT column_name, data_type, character_maximum_length FROM "
            "information_schema.columns WHERE table_schema = :schema AND table_name = :name "
            "ORDER BY ordinal_position",
            Parameters=[
                {"name": "schema", "value": schema or "public"},
                {"name": "name", "value": name},
            ],
        )
        state = self._wait(started["Id"])
        if state["Status"] != "FINISHED":
            raise RuntimeError(f"reading {table}'s columns failed: {state.get('Error')}")
        result = self.client.get_statement_result(Id=started["Id"])
        out = {}
        for record in result.get("Records", []):
            column, kind = record[0]["stringValue"], record[1]["stringValue"].upper()
            length = record[2].get("longValue")
            out[column] = f"VARCHAR({length})" if length else kind
        return out or None

    def delete_where_in(self, table: str, column: str, values: list[str]) -> int:
        started = self.client.execute_statement(
            **self._where(), Sql=delete_statement(table, column, values)
        )
        state = self._wait(started["Id"])
        if state["Status"] != "FINISHED":
            raise RuntimeError(f"erasure in {table} failed: {state.get('Error')}")
        return int(state.get("ResultRows", 0))

    def load(self, staged: StagedData, plan: LoadPlan) -> Totals:
        statements = load_statements(plan, staged, iam_role_arn=self.settings.iam_role_arn)
        started = self.client.batch_execute_statement(
            **self._where(), Sqls=statements, StatementName=f"decisionlake-{plan.run_id[:12]}"
        )
        state = self._wait(started["Id"])
        if state["Status"] != "FINISHED":
            error = state.get("Error", "")
            if "division by zero" in error.lower():
                raise ReconciliationError(
                    f"{plan.target}: loaded slice does not match the staged data; Redshift "
                    "rolled the transaction back"
                )
            raise RuntimeError(f"load into {plan.target} failed ({state['Status']}): {error}")
        return plan.expected


class ConnectorBackend:
    """Redshift through a DB-API connection (``redshift_connector``): same statements."""

    dialect = DIALECT

    def __init__(self, connect: Any, settings: RedshiftConfig) -> None:
        self.connect = connect
        self.settings = settings

    def existing_columns(self, table: str) -> dict[str, str] | None:
        schema, _, name = table.rpartition(".")
        conn = self.connect()
        try:
            cur = conn.cursor()
            cur.execute(
                "SELECT column_name, data_type, character_maximum_length FROM "
                "information_schema.columns WHERE table_schema = %s AND table_name = %s "
                "ORDER BY ordinal_position",
                (schema or "public", name),
            )
            rows = cur.fetchall()
        finally:
            conn.close()
        return {c: f"VARCHAR({n})" if n else k.upper() for c, k, n in rows} or None

    def delete_where_in(self, table: str, column: str, values: list[str]) -> int:
        conn = self.connect()
        try:
            cur = conn.cursor()
            cur.execute(delete_statement(table, column, values))
            deleted = cur.rowcount
            conn.commit()
            return int(deleted)
        finally:
            conn.close()

    def load(self, staged: StagedData, plan: LoadPlan) -> Totals:
        conn = self.connect()
        conn.autocommit = False
        try:
            cur = conn.cursor()
            for statement in load_statements(plan, staged, iam_role_arn=self.settings.iam_role_arn):
                cur.execute(statement)
            conn.commit()
        except Exception as exc:
            conn.rollback()
            if "division by zero" in str(exc).lower():
                raise ReconciliationError(
                    f"{plan.target}: loaded slice does not match the staged data; rolled back"
                ) from exc
            raise
        finally:
            conn.close()
        return plan.expected
