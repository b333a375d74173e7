"""Right to erasure: remove one person from every table, purge deletion vectors, vacuum.

``decisionlake erase --env E --advisor-id X`` (or ``--email``). The person's ids, e-mail
addresses and linked web visitors are looked up in the restricted tables; then every Delta
table of the catalog that can hold them loses the matching rows (by id columns, and by the
raw text of quarantine and data-quality rows), deletion vectors are purged (``REORG ...
APPLY (PURGE)``) and old files are vacuumed without the retention window, so no Parquet file
of any version still holds the person. The warehouse table loses their rows too.

Only what this run removed is reported, and only tables it changed are purged and vacuumed
(the others keep their time travel). Raw text matches whole identifiers, never substrings;
ids and e-mails must look like one, and a person the CRM does not know is refused unless
``--force`` is given.
"""

from __future__ import annotations

import argparse
import hashlib
import hmac
import json
import re
import sys
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import reduce
from typing import Any

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F
from pyspark.sql import types as T

from decisionlake.config import AppConfig, ConfigError, load_config
from decisionlake.core.aws import pseudonymisation_key
from decisionlake.core.frames import project
from decisionlake.core.logs import JobLogger
from decisionlake.io import lake
from decisionlake.sources import event_sources

RAW_TEXT_COLUMNS = ("raw_line", "sample_failing", "detail")
ADVISOR_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.:\-]{0,99}")
EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+@[A-Za-z0-9\-]+(\.[A-Za-z0-9\-]+)+")
# A match must not continue an identifier or an e-mail address on either side (a dot that
# ends a sentence does not continue one; a dot before a letter or digit does).
_BEFORE = r"(?<![A-Za-z0-9_.@+\-])"
_AFTER = r"(?![A-Za-z0-9_@+\-]|\.[A-Za-z0-9])"


class ErasureRefusedError(ConfigError):
    """The request does not name one known person (exit 2, nothing touched)."""


def check_request(advisor_id: str | None, email: str | None) -> None:
    """An id or an e-mail that looks like one; anything else could match other people."""
    if advisor_id is not None and not ADVISOR_ID.fullmatch(advisor_id):
        raise ErasureRefusedError(
            f"--advisor-id {advisor_id!r} does not look like an advisor id "
            "(letters, digits and _ . : - only, at most 100 characters)"
        )
    if email is not None and not EMAIL.fullmatch(email.strip()):
        raise ErasureRefusedError(f"--email {email!r} does not look like an e-mail address")


def whole_token(column: Column, needle: str) -> Column:
    """``needle`` occurs in ``column`` as a whole identifier (not inside a longer one)."""
    # Quoted as java.util.regex.Pattern.quote does (a \\E inside the needle closes and reopens).
    literal = "\\Q" + needle.replace("\\E", "\\E\\\\E\\Q") + "\\E"
    flags = "(?i)" if "@" in needle else ""  # e-mail addresses compare without case
    return column.rlike(f"{flags}{_BEFORE}{literal}{_AFTER}")


@dataclass
class Person:
    """What identifies one person across the tables."""

    advisor_ids: set[str] = field(default_factory=set)
    emails: set[str] = field(default_factory=set)
    visitors: set[tuple[str, str]] = field(default_factory=set)
    known: bool = False
    """Found in the restricted CRM table."""

    def needles(self) -> list[str]:
        return sorted(self.advisor_ids | self.emails | {v for _, v in self.visitors})


def find_person(
    spark: SparkSession, cfg: AppConfig, *, advisor_id: str | None, email: str | None
) -> Person:
    """Ids and e-mails from the CRM, visitors from the identity links (small, bounded)."""
    person = Person()
    if advisor_id:
        person.advisor_ids.add(advisor_id)
    if email:
        person.emails.add(email.strip().lower())
    crm_uri = cfg.table_uri("bronze.crm_advisors")
    if lake.delta_table_exists(spark, crm_uri):
        crm = lake.read_delta(spark, crm_uri)
        match = F.col("advisor_id").isin(*person.advisor_ids) | F.lower(F.trim("email")).isin(
            *person.emails
        )
        for row in crm.where(match).select("advisor_id", "email").collect():  # one person
            person.known = True
            person.advisor_ids.add(row["advisor_id"])
            if row["email"]:
                person.emails.add(row["email"].strip().lower())
    for name in ("silver.identity_links", "silver.identity_map"):
        uri = cfg.table_uri(name)
        if person.advisor_ids and lake.delta_table_exists(spark, uri):
            links = lake.read_delta(spark, uri).where(F.col("advisor_id").isin(*person.advisor_ids))
            for row in links.select("source", "visitor_id").distinct().collect():  # their devices
                person.visitors.add((row["source"], row["visitor_id"]))
    return person


def visitor_columns(cfg: AppConfig) -> dict[str, str]:
    """Each event source's bronze visitor-id column, mapped to the source's name."""
    return {s.source.events.visitor_column: s.name for s in event_sources(cfg) if s.source.events}


def predicate(
    df: DataFrame, person: Person, visitor_columns: dict[str, str] | None = None
) -> Column | None:
    """Rows of a table that belong to the person (None: the table cannot hold them).

    ``visitor_columns``: the bronze column of each event source's visitor id, by column
    (:func:`visitor_columns`)."""
    cols = set(df.columns)
    parts: list[Column] = []
    ids = sorted(person.advisor_ids)
    if "advisor_id" in cols and ids:
        parts.append(F.col("advisor_id").isin(*ids))
    if "user_id" in cols and ids:
        parts.append(F.col("user_id").isin(*ids))
    if "email" in cols and person.emails:
        parts.append(F.lower(F.trim("email")).isin(*sorted(person.emails)))
    # Bronze names of visitor ids, as each event source declares them.
    for column, source in (visitor_columns or {}).items():
        ids_of_source = sorted(v for s, v in person.visitors if s == source)
        if column in cols and ids_of_source:
            parts.append(F.col(column).isin(*ids_of_source))
    if "visitor_id" in cols and "source" not in cols and person.visitors:
        # Raw tables of one source: the visitor id alone identifies the device.
        parts.append(F.col("visitor_id").isin(*sorted({v for _, v in person.visitors})))
    if {"source", "visitor_id"} <= cols and person.visitors:
        parts.append(
            reduce(
                lambda a, b: a | b,
                [
                    (F.col("source") == s) & (F.col("visitor_id") == v)
                    for s, v in sorted(person.visitors)
                ],
            )
        )
    for text in RAW_TEXT_COLUMNS:
        if text in cols and person.needles():
            parts.append(
                reduce(lambda a, b: a | b, [whole_token(F.col(text), n) for n in person.needles()])
            )
    if not parts:
        return None
    return F.coalesce(reduce(lambda a, b: a | b, parts), F.lit(False))


ERASURES_SCHEMA = T.StructType(
    [
        T.StructField("request_token", T.StringType(), False),
        T.StructField("table", T.StringType(), False),
        T.StructField("rows_deleted", T.LongType()),
        T.StructField("status", T.StringType(), False),
        T.StructField("recorded_at", T.TimestampType(), False),
    ]
)


def request_token(cfg: AppConfig, *, advisor_id: str | None, email: str | None) -> str:
    """The request's keyed token: the erasure log names no person, only this."""
    subject = advisor_id if advisor_id is not None else (email or "").strip().lower()
    digest = hmac.new(pseudonymisation_key(cfg), f"erasure:{subject}".encode(), hashlib.sha256)
    return digest.hexdigest()


def pending_purges(spark: SparkSession, cfg: AppConfig, token: str) -> dict[str, int]:
    """Tables an earlier request for the person deleted from but did not purge yet."""
    uri = cfg.table_uri("ops.erasures")
    if not lake.delta_table_exists(spark, uri):
        return {}
    rows = (
        lake.read_delta(spark, uri)
        .where((F.col("request_token") == token) & (F.col("status") == "deleted"))
        .select("table", "rows_deleted")
        .collect()  # at most one row per table of the catalog
    )
    return {r["table"]: int(r["rows_deleted"] or 0) for r in rows}


def record_erasure(
    spark: SparkSession, cfg: AppConfig, token: str, entries: dict[str, tuple[int, str]]
) -> None:
    """Upsert the request's state per table (``deleted``, then ``purged``)."""
    if not entries:
        return
    rows = spark.createDataFrame(
        [(token, name, rows, status) for name, (rows, status) in sorted(entries.items())],
        "request_token string, table string, rows_deleted long, status string",
    ).withColumn("recorded_at", F.current_timestamp())
    lake.merge_insert_new(
        spark,
        project(rows, ERASURES_SCHEMA),
        cfg.table_uri("ops.erasures"),
        keys=["request_token", "table"],
        schema=ERASURES_SCHEMA,
        update_when_changed=["status"],
    )


def erase(
    spark: SparkSession,
    cfg: AppConfig,
    *,
    advisor_id: str | None = None,
    email: str | None = None,
    vacuum: bool = True,
    warehouse: bool = True,
    force: bool = False,
    log: JobLogger | None = None,
) -> dict[str, Any]:
    """Delete the person everywhere; returns the rows this run removed per table it changed."""
    log = log or JobLogger("erase", "erase")
    check_request(advisor_id, email)
    person = find_person(spark, cfg, advisor_id=advisor_id, email=email)
    if (
        not person.known
        and not force
        and not pending_purges(spark, cfg, request_token(cfg, advisor_id=advisor_id, email=email))
    ):
        raise ErasureRefusedError(
            f"{advisor_id or email!r} is not in bronze.crm_advisors: nothing erased; "
            "check the id, or give --force to erase whatever rows still name it"
        )
    token = request_token(cfg, advisor_id=advisor_id, email=email)
    pending = pending_purges(spark, cfg, token)
    removed: dict[str, int] = {}
    for name, uri in cfg.catalog().items():
        if not lake.delta_table_exists(spark, uri):
            continue
        condition = predicate(lake.read_delta(spark, uri), person, visitor_columns(cfg))
        if condition is None:
            continue
        with log.stage("erase", table=name) as st:
            deleted = lake.delete_rows(spark, uri, condition)
            st.add(rows=deleted)
        if deleted:
            removed[name] = deleted
    # Recorded before purging: a run stopped between DELETE and VACUUM (killed, --no-vacuum,
    # a failed VACUUM) leaves its tables pending, and the next request for the person purges
    # them although there is nothing left to delete.
    record_erasure(spark, cfg, token, {n: (r, "deleted") for n, r in removed.items()})
    purged: list[str] = []
    if vacuum:
        for name in sorted({*removed, *pending}):
            with log.stage("purge", table=name):
                lake.purge_history(spark, cfg.table_uri(name))
            purged.append(name)
        record_erasure(
            spark, cfg, token,
            {n: (removed.get(n, pending.get(n, 0)), "purged") for n in purged},
        )  # fmt: skip
    if warehouse and person.advisor_ids:
        removed.update(
            {k: v for k, v in _erase_from_warehouse(cfg, sorted(person.advisor_ids)).items() if v}
        )
    return {
        "advisor_ids": sorted(person.advisor_ids),
        "known": person.known,
        "emails": len(person.emails),
        "visitors": len(person.visitors),
        "visitor_ids": sorted({v for _, v in person.visitors}),
        "removed": removed,
        "purged": purged,
        "pending_before": sorted(pending),
    }


def _erase_from_warehouse(cfg: AppConfig, ids: list[str]) -> dict[str, int]:
    from decisionlake.warehouse.writer import make_backend

    out = {}
    backend = make_backend(cfg)
    for export in cfg.warehouse.exports.values():
        if backend.existing_columns(export.target) is None:
            continue
        out[f"warehouse:{export.target}"] = backend.delete_where_in(
            export.target, "advisor_id", ids
        )
    return out


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="decisionlake erase", description=__doc__.split("\n")[0])
    parser.add_argument("--env", default="local")
    parser.add_argument("--config", default=None)
    parser.add_argument("--set", dest="overrides", action="append", default=[])
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--advisor-id")
    who.add_argument("--email")
    parser.add_argument("--no-vacuum", action="store_true", help="delete only (keep old files)")
    parser.add_argument("--no-warehouse", action="store_true", help="leave the warehouse alone")
    parser.add_argument(
        "--force", action="store_true", help="erase even if the CRM does not know the person"
    )
    args = parser.parse_args(list(sys.argv[1:] if argv is None else argv))
    from decisionlake.core.spark import get_spark

    try:
        check_request(args.advisor_id, args.email)
        cfg = load_config(args.env, conf_dir=args.config, overrides=args.overrides)
        spark = get_spark(cfg, "decisionlake-erase")
        result = erase(spark, cfg, advisor_id=args.advisor_id, email=args.email,
                       vacuum=not args.no_vacuum, warehouse=not args.no_warehouse,
                       force=args.force)  # fmt: skip
    except ConfigError as exc:
        print(f"erase: {exc}", file=sys.stderr)
        return 2
    for table, rows in sorted(result["removed"].items()):
        print(f"  {table:<40} {rows:>8} row(s) removed")
    if not result["removed"]:
        print("  no rows held the person: nothing removed, nothing vacuumed")
    print(json.dumps({k: v for k, v in result.items() if k != "removed"}))
    return 0
